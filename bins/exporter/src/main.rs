//! `exporter`: write the signer configuration for a build (the RFC's exporter addition).
//!
//! Finds every SBOM in `<layers>/sbom/launch/` (and `build/`, `cache/` on request), works out each
//! file's buildpack, layer and scope, and writes the signer configuration TOML with one attestation per
//! SBOM file. The image comes from an OCI layout (`-layout-image`) or from `report.toml` plus the
//! image's lifecycle metadata label (`-image-label`). Exit codes: `docs/exit-codes.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::OciLayout;
use cnb_referrers::manifest::REF_NAME;
use cnb_sbom_discovery::platform::Report;
use cnb_sbom_discovery::DiscoveryOptions;
use cnb_signing::generate::{generate_config, lifecycle_label, GenerateInput};
use cnb_signing::LayoutImage;

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
    /// Find the image in the lifecycle's layout directory (`-layout-dir`), from its name
    /// (experimental, as in the lifecycle: needs CNB_EXPERIMENTAL_MODE=warn or quiet).
    #[arg(long, env = "CNB_USE_LAYOUT")]
    layout: bool,
    /// The lifecycle's OCI layout directory.
    #[arg(long, env = "CNB_LAYOUT_DIR")]
    layout_dir: Option<PathBuf>,
    /// Rewrite the image without its SBOM layer (and the label's `sbom` key), so the attestations
    /// carry the SBOMs alone; OCI layout images (the tag moves to the rewritten manifest).
    #[arg(long)]
    omit_sbom: bool,
    /// With report.toml: a file holding the image's io.buildpacks.lifecycle.metadata label JSON.
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
}

fn main() -> ExitCode {
    cnb_phase::phase_main(|cli: Cli| {
        run(cli)
            .map(|()| exit::OK)
            .map_err(|(code, message)| Failure::new(code, message))
    })
}

/// The repository part of an image reference: no tag, no digest.
fn repository(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    }
}

fn run(cli: Cli) -> Result<(), (u8, String)> {
    let bad_image = |e: &dyn std::fmt::Display| (exit::EXPORT_BAD_IMAGE, e.to_string());
    let layout_location = match (&cli.layout_image, cli.layout) {
        (Some(text), _) => {
            Some(LayoutImage::parse(text).map_err(|e| (exit::INVALID_ARGS, e.to_string()))?)
        }
        (None, true) => {
            cnb_phase::guard_experimental("exporting to an OCI layout").map_err(|f| {
                let hint = f.hint.map(|h| format!(" ({h})")).unwrap_or_default();
                (f.code, format!("{}{hint}", f.message))
            })?;
            let dir = cli.layout_dir.clone().ok_or((
                exit::INVALID_ARGS,
                "-layout needs -layout-dir (CNB_LAYOUT_DIR)".to_string(),
            ))?;
            let image = cli.image.clone().ok_or((
                exit::INVALID_ARGS,
                "-layout needs the image name (-image) to find it in the layout directory"
                    .to_string(),
            ))?;
            Some(LayoutImage::in_layout_dir(&dir, &image).map_err(|e| bad_image(&e))?)
        }
        (None, false) => None,
    };
    let (reference, name, digest, label) = if let Some(location) = layout_location {
        let layout = OciLayout::open(&location.dir).map_err(|e| bad_image(&e))?;
        let descriptor = layout
            .resolve_image(location.selector.as_deref())
            .map_err(|e| bad_image(&e))?;
        let mut image = layout.read_image(&descriptor).map_err(|e| bad_image(&e))?;
        if cli.omit_sbom {
            let tag = descriptor.annotation(REF_NAME).ok_or_else(|| {
                bad_image(&"-omit-sbom rewrites a tagged image: name it by tag (oci:<dir>:<tag>)")
            })?;
            match cnb_signing::omit::omit_sbom_layer(&layout, &image, tag)
                .map_err(|e| bad_image(&e))?
            {
                Some(rewritten) => {
                    eprintln!(
                        "Omitted the SBOM layer: {tag} is now {} (was {})",
                        rewritten.descriptor.digest, image.descriptor.digest
                    );
                    image = rewritten;
                }
                None => eprintln!("The image has no SBOM layer; nothing to omit"),
            }
        }
        let label = lifecycle_label(&image)
            .map_err(|e| bad_image(&e))?
            .to_string();
        let dir = std::fs::canonicalize(&location.dir)
            .map_err(|e| bad_image(&format!("{}: {e}", location.dir.display())))?;
        let digest = image.descriptor.digest.to_string();
        let name = match &cli.image {
            Some(n) => repository(n).to_string(),
            None => location.default_subject_name(descriptor.annotation(REF_NAME)),
        };
        (
            format!("oci:{}@{digest}", dir.display()),
            name,
            digest,
            label,
        )
    } else {
        if cli.omit_sbom {
            return Err((
                exit::INVALID_ARGS,
                "-omit-sbom rewrites the image, which this exporter does for OCI layout images \
                 (-layout-image or -layout); a registry image is exported by the lifecycle"
                    .to_string(),
            ));
        }
        let report_path = cli
            .report
            .clone()
            .unwrap_or_else(|| cli.layers.join("report.toml"));
        let report = Report::from_path(&report_path).map_err(|e| bad_image(&e))?;
        let digest = report.image.digest.clone().ok_or_else(|| {
            bad_image(&format!(
                "{} has no [image] digest (daemon and layout exports have none); use -layout-image",
                report_path.display()
            ))
        })?;
        let name = match (&cli.image, report.image.tags.first()) {
            (Some(n), _) => repository(n).to_string(),
            (None, Some(tag)) => repository(tag).to_string(),
            (None, None) => {
                return Err(bad_image(&format!(
                    "{} lists no tags; name the image with -image",
                    report_path.display()
                )))
            }
        };
        let label_path = cli.image_label.as_ref().ok_or_else(|| {
            bad_image(&"with report.toml, give the image's lifecycle metadata label with -image-label <file>")
        })?;
        let label = read_small(label_path).map_err(|e| bad_image(&e))?;
        (format!("{name}@{digest}"), name, digest, label)
    };
    let group_default = cli.layers.join("group.toml");
    let group = cli
        .group
        .clone()
        .or_else(|| group_default.exists().then_some(group_default));
    let input = GenerateInput {
        layers_dir: &cli.layers,
        group: group.as_deref(),
        reference: &reference,
        subject_name: &name,
        discovery: DiscoveryOptions {
            include_build: cli.include_build_sboms,
            include_cache: cli.include_cache_sboms,
            ..DiscoveryOptions::default()
        },
    };
    let (config, discovery) = generate_config(&input, &digest, &label).map_err(|e| {
        let code = match e {
            cnb_signing::Error::Discovery(_) => exit::EXPORT_BAD_SBOM,
            cnb_signing::Error::BadImage(_) => exit::EXPORT_BAD_IMAGE,
            _ => exit::EXPORT_CONFIG,
        };
        (code, e.to_string())
    })?;
    for (path, reason) in &discovery.skipped {
        eprintln!("Skipping {}: {reason}", path.display());
    }
    let out = cli
        .signer_config
        .clone()
        .unwrap_or_else(|| cli.layers.join("signer.toml"));
    config
        .write(&out)
        .map_err(|e| (exit::EXPORT_CONFIG, e.to_string()))?;
    println!(
        "Wrote {} attestation(s) for {digest} to {}",
        config.attestations.len(),
        out.display()
    );
    Ok(())
}

fn read_small(path: &Path) -> Result<String, String> {
    let bytes = cnb_bounded_read::read(path, MAX_LABEL_FILE, cnb_bounded_read::Links::Follow)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}

/// Largest label file read.
const MAX_LABEL_FILE: u64 = 4 * 1024 * 1024;
