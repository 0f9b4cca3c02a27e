//! `cnb-attest strip-sbom-layer`: the exporter's `-omit-sbom` on its own.

use std::path::PathBuf;

use clap::Args;
use cnb_attest::export::{strip_sbom_layer, Omitted, StripRequest};
use cnb_phase::exit;
use cnb_phase::flags::RegistryFlags;
use cnb_phase::Failure;

use crate::{print_json, run as block_on};

#[derive(Args)]
pub(crate) struct StripArgs {
    /// The image: a registry reference (by tag: the tag moves; by digest: the new manifest is
    /// pushed by digest) or `oci:<dir>:<tag>`.
    image: String,
    /// The lifecycle's report.toml for a registry image: the image rewritten is the one its digest
    /// names (in IMAGE's repository; a digest in IMAGE must be the same), every tag it lists moves
    /// too, and it is rewritten with the new digest.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: StripArgs) -> Result<u8, Failure> {
    let request = StripRequest {
        image: args.image,
        report: args.report,
        registry: args.registry.options(),
    };
    let report = block_on(strip_sbom_layer(&request))?;
    if args.json {
        print_json(&report);
        return Ok(exit::OK);
    }
    match &report.omitted {
        Omitted::Rewritten {
            image,
            from,
            to,
            tags,
            sbom_layer,
            report: rewritten,
            ..
        } => {
            println!(
                "Dropped the SBOM layer {} ({} bytes) of {image}: {from} -> {to}",
                sbom_layer.digest, sbom_layer.size
            );
            for tag in tags {
                println!("Moved {tag}");
            }
            if let Some(path) = rewritten {
                println!("Rewrote {}", path.display());
            }
        }
        Omitted::NoSbomLayer { image, digest } => println!(
            "{image}@{digest} has no SBOM layer; nothing to strip: no tag moved, nothing rewritten"
        ),
    }
    if let Some(requests) = report.requests {
        println!("({requests} request(s))");
    }
    Ok(exit::OK)
}
