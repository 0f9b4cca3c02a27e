//! `exporter`: write the signer configuration for a build (the RFC's exporter addition).
//!
//! Finds every SBOM in `<layers>/sbom/launch/` (and `build/`, `cache/` on request), works out each
//! file's buildpack, layer and scope, and writes the signer configuration TOML with one attestation per
//! SBOM file. The image comes from an OCI layout (`-layout-image`) or from `report.toml` plus the
//! image's lifecycle metadata label (`-image-label`). `-omit-sbom` first rewrites the image without
//! its SBOM layer: in the layout, or (feature `registry`, on by default) in the registry, moving
//! every tag report.toml lists and rewriting report.toml with the new digest. One call to
//! `cnb_attest::export::export`. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_attest::export::{export, ExportRequest, ExportedImage, Omitted};
use cnb_attest::{Error, LayoutImage};
use cnb_phase::flags::LayoutFlags;
use cnb_phase::{exit, Failure};

/// Write the signer configuration for a build's SBOMs.
#[derive(Parser)]
#[command(name = "exporter", version, about)]
struct Cli {
    /// The layers directory.
    #[arg(long, env = "CNB_LAYERS_DIR", default_value = "/layers")]
    layers: PathBuf,
    /// group.toml (default `<layers>/group.toml`).
    #[arg(long, env = "CNB_GROUP_PATH")]
    group: Option<PathBuf>,
    /// report.toml with the exported image's digest and tags (default `<layers>/report.toml`).
    #[arg(long, env = "CNB_REPORT_PATH")]
    report: Option<PathBuf>,
    /// The exported image as an OCI layout: `oci:<dir>[:<tag>|@sha256:<hex>]`.
    #[arg(long)]
    layout_image: Option<String>,
    #[command(flatten)]
    layout: LayoutFlags,
    /// Rewrite the image without its SBOM layer (and the label's `sbom` key), so the attestations
    /// carry the SBOMs alone. An OCI layout image: its tag moves to the rewritten manifest. A
    /// registry image (report.toml): every tag report.toml lists moves, and report.toml gets the
    /// new digest; the label is then read from the registry (no -image-label needed).
    #[arg(long)]
    omit_sbom: bool,
    /// With report.toml (without -omit-sbom): a file holding the image's
    /// io.buildpacks.lifecycle.metadata label JSON.
    #[arg(long)]
    image_label: Option<PathBuf>,
    /// The image name used for the image subject (default: the first tag in report.toml).
    #[arg(long)]
    image: Option<String>,
    /// Where to write the signer configuration (default `<layers>/signer.toml`).
    #[arg(long)]
    signer_config: Option<PathBuf>,
    /// Also attest `<layers>/sbom/build`.
    #[arg(long)]
    include_build_sboms: bool,
    /// Also attest `<layers>/sbom/cache`.
    #[arg(long)]
    include_cache_sboms: bool,
    #[cfg(feature = "registry")]
    #[command(flatten)]
    registry: cnb_phase::flags::RegistryFlags,
    /// Print the result as JSON (an error too).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

/// The exporter's exit code for a library error.
fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::InvalidRequest(_) => exit::INVALID_ARGS,
        Error::Discovery(_) => exit::EXPORT_BAD_SBOM,
        Error::BadImage(_) | Error::ImageNotFound(_) | Error::NotBuildpacksImage(_) => {
            exit::EXPORT_BAD_IMAGE
        }
        Error::TagsPartlyMoved(_)
        | Error::ReportNotRewritten(_)
        | Error::RegistryUnsupported(_) => exit::EXPORT_OMIT_FAILED,
        #[cfg(feature = "registry")]
        Error::Registry(_) => exit::EXPORT_OMIT_FAILED,
        _ => exit::EXPORT_CONFIG,
    };
    Failure::new(code, e)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let image = match (cli.layout_image, cli.layout.layout) {
        (Some(text), _) => ExportedImage::Layout(
            LayoutImage::parse(&text).map_err(|e| Failure::new(exit::INVALID_ARGS, e))?,
        ),
        (None, true) => {
            cnb_phase::guard_experimental("exporting to an OCI layout")?;
            let dir = cli.layout.layout_dir.ok_or_else(|| {
                Failure::new(
                    exit::INVALID_ARGS,
                    "-layout needs -layout-dir (CNB_LAYOUT_DIR)",
                )
            })?;
            let image = cli.image.as_deref().ok_or_else(|| {
                Failure::new(
                    exit::INVALID_ARGS,
                    "-layout needs the image name (-image) to find it in the layout directory",
                )
            })?;
            ExportedImage::Layout(
                LayoutImage::in_layout_dir(&dir, image)
                    .map_err(|e| Failure::new(exit::EXPORT_BAD_IMAGE, e))?,
            )
        }
        (None, false) => ExportedImage::Report {
            report: cli.report,
            label: cli.image_label,
        },
    };
    let request = ExportRequest {
        layers: cli.layers,
        group: cli.group,
        image,
        name: cli.image,
        omit_sbom: cli.omit_sbom,
        include_build: cli.include_build_sboms,
        include_cache: cli.include_cache_sboms,
        output: cli.signer_config,
        #[cfg(feature = "registry")]
        registry: cli.registry.options(),
    };
    let report = cnb_attest::block_on(export(&request))
        .and_then(|r| r)
        .map_err(failure)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    match &report.omitted {
        Some(Omitted::Rewritten {
            image,
            from,
            to,
            tags,
            sbom_layer,
            report: rewritten,
            ..
        }) => {
            eprintln!(
                "Omitted the SBOM layer {} ({} bytes) of {image}: {} now name {to} (was {from})",
                sbom_layer.digest,
                sbom_layer.size,
                tags.join(", ")
            );
            if let Some(path) = rewritten {
                eprintln!("Rewrote {} with digest {to}", path.display());
            }
        }
        Some(Omitted::NoSbomLayer { image, digest }) => eprintln!(
            "{image}@{digest} has no SBOM layer; nothing to omit: no tag moved, nothing rewritten"
        ),
        None => {}
    }
    for (path, reason) in &report.skipped {
        eprintln!(
            "Skipping {}: {}",
            cnb_phase::shown(&path.display().to_string()),
            cnb_phase::shown(&reason.to_string())
        );
    }
    println!(
        "Wrote {} attestation(s) for {} to {}",
        report.attestations,
        report.image_digest,
        report.config.display()
    );
    Ok(exit::OK)
}
