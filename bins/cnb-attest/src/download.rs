//! `cnb-attest download`: the verified `pack sbom download`.

use std::path::PathBuf;

use clap::Args;
use cnb_attest::restore::{
    restore, selection, Existing, Fallback, Origin, OutputDir, Refusal, RestoreRequest,
    SharedOutput,
};
use cnb_attest::{Image, Policy};
use cnb_phase::flags::RegistryFlags;
use cnb_phase::{exit, shown, Failure};

use crate::{failure, print_json, run as block_on};

#[derive(Args)]
pub(crate) struct DownloadArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// For an image index of several platforms: the one to download (`os/arch[/variant]`, e.g.
    /// linux/arm64). Required there: one tree holds one platform's SBOMs.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = cnb_phase::flags::platform)]
    platform: Option<cnb_attest::PlatformSpec>,
    /// Output directory (the SBOMs go to `<dir>/layers/sbom/launch/`).
    #[arg(short = 'o', long = "output-dir", default_value = ".")]
    output_dir: PathBuf,
    /// Trusted public key (PEM); repeat for several (key rotation, several signers). An
    /// attestation counts if any of them verifies it; the others are left out, never written.
    /// Not needed for keyless attestations (--certificate-identity, --certificate-oidc-issuer).
    #[arg(long, required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"])]
    key: Vec<PathBuf>,
    #[command(flatten)]
    identity: cnb_phase::flags::IdentityFlags,
    #[command(flatten)]
    sigstore: cnb_phase::flags::SigstoreTrustFlags,
    /// Refuse SBOMs whose place only the unsigned `io.buildpacks.buildpack.id` annotation gives
    /// (statements whose only subject is the image): they are reported and not written.
    #[arg(long)]
    signed_placement_only: bool,
    /// Only this buildpack's SBOMs (its real ID, e.g. paketo-buildpacks/node-engine).
    #[arg(long)]
    buildpack: Option<String>,
    /// Only this format: cdx, spdx or syft.
    #[arg(long)]
    format: Option<String>,
    /// Fail unless every launch layer of each SBOM-producing buildpack has a verified SBOM and,
    /// when the image has an SBOM layer, each verified SBOM has the bytes of the layer's file at
    /// its place.
    #[arg(long)]
    require_all_layers: bool,
    /// Several attestations for one SBOM: `all` must verify and agree (default), or the `newest`
    /// verified one wins (failures are reported, not fatal).
    #[arg(long, default_value = "all")]
    policy: String,
    /// When the image has no SBOM attestations at all, write its SBOM layer instead (what `pack
    /// sbom download` does; checked against the label's diffID, but not signed).
    #[arg(long)]
    sbom_layer_fallback: bool,
    /// Replace what `<dir>/layers/sbom/launch/` holds (an earlier download, another image's
    /// SBOMs) with this image's SBOMs, as one move; the files removed are listed. Without it, a
    /// non-empty `sbom/launch/` is refused and nothing is written.
    #[arg(long)]
    replace: bool,
    /// Write even when the output directory, or `layers`, `layers/sbom` or
    /// `layers/sbom/launch` in it, is owned by another user (not this user, nor root) or
    /// writable by others or by a shared group (not the owner's private group) without the sticky bit; refused by default, as whoever can
    /// change it can swap the SBOMs written.
    #[arg(long)]
    allow_shared_output: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: DownloadArgs) -> Result<u8, Failure> {
    cnb_phase::interrupt::install();
    let keys = cnb_attest::keys::read_public_keys(&args.key).map_err(failure)?;
    let invalid = |e: &dyn std::fmt::Display| Failure::new(exit::INVALID_ARGS, e);
    let keyless = args
        .identity
        .verifier(&args.sigstore)
        .map_err(|e| invalid(&e))?;
    let selection =
        selection(args.buildpack.as_deref(), args.format.as_deref()).map_err(|e| invalid(&e))?;
    let policy: Policy = args.policy.parse().map_err(|e| invalid(&e))?;
    let request = RestoreRequest {
        selection,
        policy,
        require_all_layers: args.require_all_layers,
        fallback: if args.sbom_layer_fallback {
            Fallback::SbomLayer
        } else {
            Fallback::Never
        },
        signed_placement_only: args.signed_placement_only,
        existing: if args.replace {
            Existing::Replace
        } else {
            Existing::Refuse
        },
        shared_output: if args.allow_shared_output {
            SharedOutput::Allow
        } else {
            SharedOutput::Refuse
        },
        output: OutputDir::Parent,
        keyless,
        ..RestoreRequest::with_keys(keys)
    };
    let root = args.output_dir.join("layers");
    let open = cnb_attest::OpenOptions {
        platform: args.platform.clone(),
        ..args.registry.open_options()
    };
    let (report, location) = block_on(async {
        let image = Image::open(&args.image, &open).await?;
        let report = restore(&image, &request, &root).await?;
        Ok((report, image.name().to_string()))
    })?;
    let location = shown(&location);
    let unsigned = report.origin == Origin::SbomLayer;
    if unsigned {
        eprintln!(
            "Warning: {location} has no SBOM attestations; writing its SBOM layer, which is not signed"
        );
    }
    if args.json {
        print_json(&serde_json::json!({
            "plan": report.plan,
            "unsigned-sbom-layer": unsigned,
            "written": report.written,
            "removed": report.removed,
            "missing-layers": report.missing_layers,
            "differing-layers": report.differing_layers,
            "refusal": report.refusal,
            "left-out": report.left_out,
            "unreadable": report.unreadable,
            "unsigned-placement": report.unsigned_placement,
            "requests": report.requests,
        }));
    } else {
        for path in &report.written {
            println!("{}", shown(&path.display().to_string()));
        }
        for path in &report.removed {
            eprintln!(
                "Replaced {} (it was in the earlier tree)",
                shown(&path.display().to_string())
            );
        }
        for problem in &report.plan.failures {
            eprintln!("FAILED {}", shown(&problem.to_string()));
        }
        for problem in &report.plan.warnings {
            eprintln!("Warning: {}", shown(&problem.to_string()));
        }
        for problem in &report.plan.left_out {
            eprintln!("Warning: left out {}", shown(&problem.to_string()));
        }
        for problem in &report.plan.unreadable {
            eprintln!("Warning: not read {}", shown(&problem.to_string()));
        }
        for problem in &report.plan.not_restored {
            eprintln!("Skipped {}", shown(&problem.to_string()));
        }
        for path in &report.unsigned_placement {
            eprintln!(
                "Warning: {}: placed by the unsigned io.buildpacks.buildpack.id annotation (the SBOM is signed, its place is not)",
                shown(&path.to_string())
            );
        }
    }
    if report.left_out > 0 {
        eprintln!(
            "Warning: {location}: {} attestation(s) left out: not signed by a trusted key",
            report.left_out
        );
    }
    if report.unreadable > 0 && report.refusal.is_none() {
        eprintln!(
            "Warning: {location}: {} attestation(s) left out: could not be read from the registry",
            report.unreadable
        );
    }
    match &report.refusal {
        Some(Refusal::Unreadable { count }) => Err(Failure::new(
            exit::FAILED,
            format!(
                "{location}: {count} attestation(s) could not be read from the registry and none verified; nothing was written"
            ),
        )
        .already_printed(args.json)),
        Some(Refusal::VerificationFailed { count }) => Err(Failure::new(
            exit::VERIFY_FAILED,
            format!("{location}: {count} attestation(s) failed verification; nothing was written"),
        )
        .already_printed(args.json)),
        Some(Refusal::MissingLayers { missing }) => Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: launch layers without a verified SBOM: {}; nothing was written",
                shown(&missing.join(", "))
            ),
        )
        .already_printed(args.json)),
        Some(Refusal::DiffersFromLayer { differing }) => Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: verified SBOMs that differ from the image's SBOM layer: {}; nothing was written",
                shown(&differing.join(", "))
            ),
        )
        .already_printed(args.json)),
        Some(Refusal::SbomLayerRejected { count }) => Err(Failure::new(
            exit::VERIFY_FAILED,
            format!("{location}: {count} file(s) of the SBOM layer cannot be written as they are; nothing was written"),
        )
        .already_printed(args.json)),
        Some(Refusal::Occupied {
            path,
            count,
            example,
        }) => Err(Failure::new(
            exit::FAILED,
            format!(
                "{} already holds {count} entries (e.g. {}): refusing to mix them with the SBOMs of {location}; nothing was written",
                shown(&path.display().to_string()),
                shown(&example.display().to_string())
            ),
        )
        .hint("pass --replace to replace that tree, or choose an empty --output-dir")
        .already_printed(args.json)),
        Some(Refusal::NoSboms { sbom_layer: false }) => Err(Failure::new(
            exit::NO_ATTESTATIONS,
            format!(
                "{location} has neither SBOM attestations nor an SBOM layer; nothing was written"
            ),
        )
        .already_printed(args.json)),
        Some(_) => Err(Failure::new(
            exit::NO_ATTESTATIONS,
            format!("{location}: no verified SBOM attestation matches"),
        )
        .already_printed(args.json)),
        None => {
            eprintln!(
                "{location}: {} {} written under {}{}",
                report.written.len(),
                // Unsigned output is never called verified.
                if unsigned {
                    "SBOM(s) from the unsigned SBOM layer"
                } else {
                    "verified SBOM(s)"
                },
                shown(&root.join("sbom").join("launch").display().to_string()),
                report
                    .requests
                    .map(|r| format!(" ({r} request(s))"))
                    .unwrap_or_default()
            );
            Ok(exit::OK)
        }
    }
}
