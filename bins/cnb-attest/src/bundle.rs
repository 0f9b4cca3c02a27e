//! `cnb-attest export` and `cnb-attest import`: air-gapped transfer through an OCI layout bundle.

use std::path::PathBuf;

use clap::Args;
use cnb_attest::bundle::{self, ExportRequest, ImportRequest};
use cnb_phase::flags::RegistryFlags;
use cnb_phase::{exit, shown, Failure};

use crate::{failure, print_json};

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The image: a registry reference or an OCI layout (`oci:<dir>[:<tag>]`).
    image: String,
    /// The bundle to write: a directory, or a file ending in `.tar`.
    #[arg(short, long)]
    output: PathBuf,
    /// Leave the image's layers out (manifests and config only): the destination of an import
    /// must hold the image already.
    #[arg(long)]
    attestations_only: bool,
    /// Public key (PEM) to put in the bundle for offline verification; repeatable. A reader never
    /// trusts it implicitly: pin its SHA-256 (printed here).
    #[arg(long)]
    key: Vec<PathBuf>,
    /// Sigstore trusted root (`trusted_root.json`) to put in the bundle for offline keyless
    /// verification.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Replace an earlier bundle at --output (a directory holding oci-layout and
    /// cnb-attest-export.json, or a regular file ending in .tar); anything else is refused.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The bundle `cnb-attest export` wrote: a directory or a `.tar`.
    bundle: PathBuf,
    /// Where to push: `registry/repository[:tag]`. A tag named here is moved to the image; without
    /// one, the bundle's tag is created but never moved off another image (an --attestations-only
    /// bundle sets no tag).
    destination: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit codes of the bundle errors; the rest as every command maps them.
fn bundle_failure(e: cnb_attest::Error) -> Failure {
    match e {
        cnb_attest::Error::BundleIncomplete { .. } | cnb_attest::Error::BundleUnlisted { .. } => {
            Failure::new(exit::BUNDLE_INCOMPLETE, e)
        }
        other => failure(other),
    }
}

fn counts(map: &std::collections::BTreeMap<bundle::Kind, usize>) -> String {
    if map.is_empty() {
        return "nothing".into();
    }
    map.iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn export(args: ExportArgs) -> Result<u8, Failure> {
    let request = ExportRequest {
        output: args.output.clone(),
        attestations_only: args.attestations_only,
        keys: args.key.clone(),
        trusted_root: args.trusted_root.clone(),
        force: args.force,
    };
    let open = args.registry.open_options();
    let report = cnb_attest::block_on(async {
        let image = bundle::open_for_export(&args.image, &open).await?;
        bundle::export(&image, &request).await
    })
    .and_then(|r| r)
    .map_err(bundle_failure)?;
    if args.json {
        print_json(&report);
        return Ok(exit::OK);
    }
    println!(
        "Exported {}@{} to {}{}",
        shown(&report.image.source),
        report.image.digest,
        report.output.display(),
        if report.tar { " (tar)" } else { "" }
    );
    println!(
        "  {} ({} bytes of blobs){}",
        counts(&report.written),
        report.bytes,
        if report.attestations_only {
            "; layers left out (--attestations-only)"
        } else {
            ""
        }
    );
    for referrer in &report.referrers {
        println!(
            "  {} {} of {} ({})",
            referrer.kind,
            referrer.digest,
            referrer.subject,
            shown(&referrer.what)
        );
    }
    for file in &report.trust {
        println!(
            "  {} {} -> {} (pin it: sha256 {})",
            file.kind,
            file.source.display(),
            file.path,
            file.sha256.hex()
        );
    }
    println!(
        "  checked: every blob re-read, every referrer listed (inventory cnb-attest-export.json)"
    );
    Ok(exit::OK)
}

pub(crate) fn import(args: ImportArgs) -> Result<u8, Failure> {
    let request = ImportRequest {
        bundle: args.bundle.clone(),
        destination: args.destination.clone(),
        registry: args.registry.options(),
    };
    let report = cnb_attest::block_on(bundle::import(&request))
        .and_then(|r| r)
        .map_err(bundle_failure)?;
    let code = if report.not_discoverable.is_empty() {
        exit::OK
    } else {
        exit::NOT_DISCOVERABLE
    };
    if args.json {
        print_json(&report);
        return Ok(code);
    }
    println!(
        "Imported {} into {}{}",
        report.image,
        shown(&report.destination),
        report
            .tag
            .as_deref()
            .filter(|_| report.tag_left.is_none())
            .map(|t| format!(":{}", shown(t)))
            .unwrap_or_default()
    );
    println!(
        "  pushed: {} ({} in all)",
        counts(&report.pushed),
        report.pushed_total()
    );
    println!(
        "  already present: {} ({} in all)",
        counts(&report.already_present),
        report.already_present_total()
    );
    if let (Some(tag), Some(other)) = (&report.tag, &report.tag_left) {
        println!(
            "  tag {} left as it was: it names {other}; name the tag in the destination to move it",
            shown(tag)
        );
    }
    if report.pushed_total() == 0 {
        println!("  nothing to push: the destination already holds the whole bundle");
    }
    println!(
        "  referrers: {} subject(s) through the Referrers API, {} sha256-<hex> index write(s)",
        report.referrers_api, report.index_writes
    );
    for tag in &report.merged_tags {
        println!("  merged into the existing {}", shown(tag));
    }
    for digest in &report.not_discoverable {
        println!("  NOT DISCOVERABLE: {digest} (neither the Referrers API nor the index lists it)");
    }
    println!("  ({} request(s))", report.requests);
    Ok(code)
}
