//! `analyzer`: the RFC's analyzer addition. Verifies the previous image's SBOM attestations and
//! restores the SBOM files to `<layers>/sbom/launch/<esc-bp>/[<layer>/]sbom.<ext>`, so the restorer
//! works as today; falls back to the previous image's SBOM layer (with a warning) when it has no
//! attestations, unless `-strict`. One call to `cnb_attest::restore::restore`, the policy
//! `cnb-attest download` uses too. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_attest::restore::{
    restore, Existing, Fallback, Origin, OutputDir, Refusal, RestoreRequest, SharedOutput,
};
use cnb_attest::{Error, Image, OpenOptions, Policy};
use cnb_phase::flags::{LayoutFlags, RegistryFlags};
use cnb_phase::{exit, shown, Failure};

/// Restore the previous image's verified SBOMs into the layers directory.
#[derive(Parser)]
#[command(name = "analyzer", version, about)]
struct Cli {
    /// The previous image: a registry reference, `oci:<dir>[:<tag>|@sha256:<hex>]`, or, with
    /// `-previous-image-archive`, a tag or image ID in that `docker save` archive.
    #[arg(long, env = "CNB_PREVIOUS_IMAGE")]
    previous_image: String,
    /// A `docker save` archive holding the previous image (daemon images have no attestations:
    /// their SBOMs come from the SBOM layer).
    #[arg(long)]
    previous_image_archive: Option<PathBuf>,
    /// The layers directory to restore into.
    #[arg(long, env = "CNB_LAYERS_DIR", default_value = "/layers")]
    layers: PathBuf,
    /// Trusted public key (PEM); repeat for several (key rotation). An attestation counts if any
    /// of them verifies it; the others are left out, never restored.
    /// Not needed for keyless attestations (-certificate-identity, -certificate-oidc-issuer).
    #[arg(
        long,
        env = "CNB_ATTESTATION_PUBLIC_KEY",
        required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"]
    )]
    key: Vec<PathBuf>,
    #[command(flatten)]
    identity: cnb_phase::flags::IdentityFlags,
    #[command(flatten)]
    sigstore: cnb_phase::flags::SigstoreTrustFlags,
    /// Refuse SBOMs whose place only the unsigned `io.buildpacks.buildpack.id` annotation gives
    /// (statements whose only subject is the image): they are reported and not restored.
    #[arg(long)]
    signed_placement_only: bool,
    /// Fail instead of falling back to the SBOM layer when the image has no attestations.
    #[arg(long)]
    strict: bool,
    /// Several attestations for one SBOM: `all` must verify and agree (default), or the `newest`
    /// verified one wins (failures are warnings).
    #[arg(long, default_value = "all")]
    policy: String,
    /// Fail unless every launch layer of each SBOM-producing buildpack has a verified SBOM and,
    /// when the previous image has an SBOM layer, each verified SBOM has the bytes of the layer's
    /// file at its place.
    #[arg(long)]
    require_all_layers: bool,
    /// Write even when the layers directory, or `sbom` or `sbom/launch` in it, is owned by
    /// another user (not this user, nor root) or writable by others or by a shared group (not the owner's private group) without the sticky
    /// bit; refused by default (exit 38), as whoever can change it can swap the restored SBOMs.
    #[arg(long)]
    allow_shared_output: bool,
    /// When the previous image is an image index: the platform whose SBOMs to restore
    /// (`os/arch[/variant]`). Default: the lifecycle's build target (`CNB_TARGET_OS`,
    /// `CNB_TARGET_ARCH`, `CNB_TARGET_ARCH_VARIANT`) when set. An index of several platforms
    /// without either is refused (exit 2), listing them; an index without this platform is no
    /// previous image for it.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = cnb_phase::flags::platform)]
    platform: Option<cnb_attest::PlatformSpec>,
    #[command(flatten)]
    layout: LayoutFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the restore report as JSON (an error too).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    cnb_phase::interrupt::install();
    let name = cli.previous_image.clone();
    let keys = cnb_attest::keys::read_public_keys(&cli.key)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let keyless = cli
        .identity
        .verifier(&cli.sigstore)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let policy: Policy = cli
        .policy
        .parse()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let platform = match &cli.platform {
        Some(p) => Some(p.clone()),
        None => cnb_phase::flags::target_platform_from_env()
            .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?,
    };
    let mut open = OpenOptions {
        platform,
        archive: cli.previous_image_archive.clone(),
        registry: cli.registry.options(),
        ..OpenOptions::default()
    };
    if cli.layout.layout && open.archive.is_none() {
        cnb_phase::guard_experimental("reading the previous image from an OCI layout")
            .map_err(|f| Failure::new(exit::ANALYZE_BAD_IMAGE, format!("{name}: {}", f.message)))?;
        open.layout_dir = Some(cli.layout.layout_dir.clone().ok_or_else(|| {
            Failure::new(
                exit::ANALYZE_BAD_IMAGE,
                format!("{name}: -layout needs -layout-dir (CNB_LAYOUT_DIR)"),
            )
        })?);
    }
    let request = RestoreRequest {
        policy,
        require_all_layers: cli.require_all_layers,
        fallback: if cli.strict {
            Fallback::Never
        } else {
            Fallback::SbomLayer
        },
        signed_placement_only: cli.signed_placement_only,
        // As the lifecycle: the restored tree replaces what `<layers>/sbom/launch` held.
        existing: Existing::Replace,
        shared_output: if cli.allow_shared_output {
            SharedOutput::Allow
        } else {
            SharedOutput::Refuse
        },
        output: OutputDir::Root,
        keyless,
        ..RestoreRequest::with_keys(keys)
    };
    // As the lifecycle's analyzer: no previous image (a first build) or one that is not a
    // buildpacks image means nothing to restore, not a failure, unless strict.
    let nothing = |why: String| -> Result<u8, Failure> {
        if cli.strict {
            return Err(Failure::new(exit::ANALYZE_NO_SBOMS, why));
        }
        eprintln!("Warning: {}; no SBOM restored", shown(&why));
        Ok(exit::OK)
    };
    let result = cnb_attest::block_on(async {
        let image = Image::open(&cli.previous_image, &open).await?;
        restore(&image, &request, &cli.layers).await
    })
    .and_then(|r| r);
    let report = match result {
        Ok(report) => report,
        Err(e) if cnb_phase::interrupt::received().is_some() => {
            return Err(Failure::new(
                cnb_phase::interrupt::received().unwrap_or(exit::INTERRUPTED),
                e,
            ))
        }
        Err(Error::ImageNotFound(why)) => return nothing(why),
        Err(Error::NotBuildpacksImage(why)) => return nothing(why),
        // No manifest for this platform: a first build for it.
        Err(e @ Error::NoSuchPlatform { .. }) => return nothing(e.to_string()),
        Err(e @ Error::AmbiguousPlatform { .. }) => {
            return Err(Failure::new(exit::INVALID_ARGS, e)
                .hint("name the platform with -platform or CNB_TARGET_OS/CNB_TARGET_ARCH"))
        }
        Err(e @ Error::SbomLayer(_)) => return Err(Failure::new(exit::ANALYZE_NO_SBOMS, e)),
        Err(e @ Error::Write(_)) => return Err(Failure::new(exit::ANALYZE_WRITE, e)),
        Err(e) => {
            return Err(Failure::new(
                exit::ANALYZE_BAD_IMAGE,
                format!("{name}: {e}"),
            ))
        }
    };
    let unsigned = report.origin == Origin::SbomLayer;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": report,
                "unsigned-sbom-layer": unsigned,
            }))
            .unwrap_or_default()
        );
    }
    // Every line below shows remote-derived text (attestation names, reasons, paths): escaped.
    let name = shown(&name);
    for problem in &report.plan.failures {
        eprintln!("ERROR: {}", shown(&problem.to_string()));
    }
    for problem in &report.plan.warnings {
        eprintln!("Warning: {}", shown(&problem.to_string()));
    }
    for problem in &report.plan.left_out {
        eprintln!("Warning: left out {}", shown(&problem.to_string()));
    }
    if report.left_out > 0 {
        eprintln!(
            "Warning: {} attestation(s) of {name} left out: not signed by a trusted key",
            report.left_out
        );
    }
    for problem in &report.plan.unreadable {
        eprintln!("Warning: not read {}", shown(&problem.to_string()));
    }
    if report.unreadable > 0 && report.refusal.is_none() {
        eprintln!(
            "Warning: {} attestation(s) of {name} left out: could not be read from the registry",
            report.unreadable
        );
    }
    for problem in &report.plan.not_restored {
        eprintln!("Skipped {}", shown(&problem.to_string()));
    }
    for path in &report.unsigned_placement {
        eprintln!(
            "Warning: {}: placed by the unsigned io.buildpacks.buildpack.id annotation (the SBOM is signed, its place is not)",
            shown(path)
        );
    }
    if unsigned {
        eprintln!(
            "Warning: {name} has no SBOM attestations; restoring from its SBOM layer, which is not signed"
        );
        for (path, reason) in &report.sbom_layer_skipped {
            eprintln!(
                "Skipping {} in the SBOM layer: {}",
                shown(&path.to_string()),
                shown(&reason.to_string())
            );
        }
    }
    let outcome = match &report.refusal {
        Some(Refusal::Unreadable { count }) => Err(Failure::new(
            exit::ANALYZE_BAD_IMAGE,
            format!(
                "{count} attestation(s) of {name} could not be read from the registry and none verified; no SBOM was restored"
            ),
        )),
        Some(Refusal::VerificationFailed { count }) => Err(Failure::new(
            exit::ANALYZE_VERIFY_FAILED,
            format!("{count} attestation(s) of {name} failed verification; no SBOM was restored"),
        )),
        Some(Refusal::NoneVerified { attestations }) if *attestations > 0 => Err(Failure::new(
            exit::ANALYZE_VERIFY_FAILED,
            format!(
                "none of the {attestations} SBOM attestation(s) of {name} verified; the unsigned SBOM layer is not used in their place"
            ),
        )),
        Some(Refusal::NoSboms { sbom_layer: true }) => Err(Failure::new(
            exit::ANALYZE_NO_SBOMS,
            format!(
                "{name} has no verified SBOM attestations (strict mode: the SBOM layer is not used)"
            ),
        )),
        Some(Refusal::NoSboms { .. }) => nothing(format!(
            "{name} has neither SBOM attestations nor an SBOM layer"
        )),
        Some(Refusal::NoneVerified { .. }) => nothing(format!(
            "{name} has no SBOM attestations and its SBOM layer holds no SBOM"
        )),
        Some(Refusal::SbomLayerRejected { count }) => Err(Failure::new(
            exit::ANALYZE_VERIFY_FAILED,
            format!("{count} file(s) of the SBOM layer of {name} cannot be written as they are; no SBOM was restored"),
        )),
        Some(Refusal::MissingLayers { missing }) => Err(Failure::new(
            exit::ANALYZE_COVERAGE,
            format!("launch layers without a verified SBOM: {}", missing.join(", ")),
        )),
        Some(Refusal::DiffersFromLayer { differing }) => Err(Failure::new(
            exit::ANALYZE_COVERAGE,
            format!(
                "verified SBOMs that differ from the SBOM layer of {name}: {}; no SBOM was restored",
                shown(&differing.join(", "))
            ),
        )),
        // With the earlier tree replaced as a rule, this is a tree that appeared at the place
        // while the restore was being written (another writer, a swap): never mixed with.
        Some(Refusal::Occupied {
            path,
            count,
            example,
        }) => Err(Failure::new(
            exit::ANALYZE_WRITE,
            format!(
                "{} changed while the SBOMs of {name} were being restored: it now holds {count} entries (e.g. {}) it did not hold when checked; nothing was written or mixed with them",
                shown(&path.display().to_string()),
                shown(&example.display().to_string())
            ),
        )),
        Some(other) => Err(Failure::new(exit::FAILED, format!("{name}: {other:?}"))),
        None => {
            let from = match report.origin {
                Origin::Attestations => "verified attestations",
                Origin::SbomLayer => "the SBOM layer",
            };
            if !cli.json {
                for path in &report.removed {
                    eprintln!(
                        "Removed {} of an earlier restore",
                        shown(&path.display().to_string())
                    );
                }
                println!(
                    "Restored {} SBOM file(s) from {from} of {name}",
                    report.written.len()
                );
            }
            Ok(exit::OK)
        }
    };
    outcome.map_err(|f| f.already_printed(cli.json))
}
