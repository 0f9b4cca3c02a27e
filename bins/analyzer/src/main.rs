//! `analyzer`: the RFC's analyzer addition. Verifies the previous image's SBOM attestations and
//! restores the SBOM files to `<layers>/sbom/launch/<esc-bp>/[<layer>/]sbom.<ext>`, so the restorer
//! works as today; falls back to the previous image's SBOM layer (with a warning) when it has no
//! attestations, unless `-strict`. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::OciLayout;
use cnb_sbom_restore::archive::{ArchiveLimits, DockerArchive};
use cnb_sbom_restore::select::{missing_from_layer, missing_layers, plan_restore, Request};
use cnb_sbom_restore::source::ImageSource;
use cnb_signing::cli::RegistryFlags;
use cnb_signing::{LayoutImage, Target};

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
    /// Public key (PEM) the attestations must be signed with.
    #[arg(long, env = "CNB_ATTESTATION_PUBLIC_KEY")]
    key: PathBuf,
    /// Fail instead of falling back to the SBOM layer when the image has no attestations.
    #[arg(long)]
    strict: bool,
    /// Several attestations for one SBOM: `all` must verify and agree (default), or the `newest`
    /// verified one wins (failures are warnings).
    #[arg(long, default_value = "all")]
    policy: String,
    /// Fail unless every launch layer of each SBOM-producing buildpack has a verified SBOM.
    #[arg(long)]
    require_all_layers: bool,
    /// Find the previous image in the lifecycle's layout directory (experimental).
    #[arg(long, env = "CNB_USE_LAYOUT")]
    layout: bool,
    /// The lifecycle's OCI layout directory.
    #[arg(long, env = "CNB_LAYOUT_DIR")]
    layout_dir: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let key =
        cnb_dsse::read_public_key(&cli.key).map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let bad_image = |e: &dyn std::fmt::Display| {
        Failure::new(
            exit::ANALYZE_BAD_IMAGE,
            format!("{}: {e}", cli.previous_image),
        )
    };
    let policy: cnb_sbom_restore::select::Policy = cli
        .policy
        .parse()
        .map_err(|e: cnb_sbom_restore::PolicyError| Failure::new(exit::INVALID_ARGS, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, format!("async runtime: {e}")))?;
    // As the lifecycle's analyzer: no previous image (a first build) or one that is not a
    // buildpacks image means nothing to restore, not a failure, unless strict.
    let nothing = |why: String| -> Result<u8, Failure> {
        if cli.strict {
            return Err(Failure::new(exit::ANALYZE_NO_SBOMS, why));
        }
        eprintln!("Warning: {why}; no SBOM restored");
        Ok(exit::OK)
    };
    let source = match open(&cli, &runtime) {
        Ok(source) => source,
        Err(Opening::NotFound(why)) => return nothing(why),
        Err(Opening::Failed(why)) => return Err(bad_image(&why)),
    };
    let metadata = match source.metadata() {
        Ok(metadata) => metadata,
        Err(e) => return nothing(format!("{}: {e}", cli.previous_image)),
    };

    // Verified attestations first (a saved daemon image has none). Only referrers that may be
    // SBOMs are read: another party's provenance or image signature is not ours to judge.
    let request = Request::default();
    let sbom_candidates = |d: &cnb_referrers::Descriptor| request.wants(d);
    let fetched = runtime
        .block_on(source.fetch(&sbom_candidates))
        .map_err(|e| bad_image(&e))?;
    let plan = match source.image() {
        Some(image) => plan_restore(
            image,
            &metadata,
            &fetched,
            &key,
            &Request::default(),
            policy,
        ),
        None => Default::default(),
    };
    for p in &plan.failures {
        eprintln!("ERROR: {}: {}", p.attestation, p.failure);
    }
    for p in &plan.warnings {
        eprintln!("Warning: {}: {}", p.attestation, p.failure);
    }
    if !plan.failures.is_empty() {
        return Err(Failure::new(
            exit::ANALYZE_VERIFY_FAILED,
            format!(
                "{} attestation(s) of {} failed verification; no SBOM was restored",
                plan.failures.len(),
                cli.previous_image
            ),
        ));
    }
    let (files, from) = if !plan.files.is_empty() {
        (plan.files, "verified attestations")
    } else if !fetched.is_empty() {
        // There are SBOM attestations but none verified: never fall back to the unsigned layer.
        return Err(Failure::new(
            exit::ANALYZE_VERIFY_FAILED,
            format!(
                "none of the {} SBOM attestation(s) of {} verified; the unsigned SBOM layer is not used in their place",
                fetched.len(),
                cli.previous_image
            ),
        ));
    } else if metadata.sbom.is_none() {
        return nothing(format!(
            "{} has neither SBOM attestations nor an SBOM layer",
            cli.previous_image
        ));
    } else if cli.strict {
        return Err(Failure::new(
            exit::ANALYZE_NO_SBOMS,
            format!(
                "{} has no verified SBOM attestations (strict mode: the SBOM layer is not used)",
                cli.previous_image
            ),
        ));
    } else {
        eprintln!(
            "Warning: {} has no SBOM attestations; restoring from its SBOM layer, which is not signed",
            cli.previous_image
        );
        let layer = runtime
            .block_on(source.sbom_layer(&metadata))
            .map_err(|e| Failure::new(exit::ANALYZE_NO_SBOMS, e))?;
        for (path, reason) in &layer.skipped {
            eprintln!("Skipping {path} in the SBOM layer: {reason}");
        }
        (layer.files, "the SBOM layer")
    };
    if cli.require_all_layers {
        let restored = cnb_sbom_restore::select::Plan {
            files: files.clone(),
            ..Default::default()
        };
        // The SBOM layer, when the image has one, is the trusted list of what must be there;
        // without it (-omit-sbom), every launch layer of each SBOM-producing buildpack.
        let missing = if metadata.sbom.is_some() {
            let layer = runtime
                .block_on(source.sbom_layer(&metadata))
                .map_err(|e| Failure::new(exit::ANALYZE_COVERAGE, e))?;
            missing_from_layer(&restored, &layer.files)
        } else {
            missing_layers(&restored, &metadata)
        };
        if !missing.is_empty() {
            return Err(Failure::new(
                exit::ANALYZE_COVERAGE,
                format!(
                    "launch layers without a verified SBOM: {}",
                    missing.join(", ")
                ),
            ));
        }
    }
    let written = cnb_sbom_restore::write_tree(&cli.layers, &files)
        .map_err(|e| Failure::new(exit::ANALYZE_WRITE, e))?;
    println!(
        "Restored {} SBOM file(s) from {from} of {}",
        written.len(),
        cli.previous_image
    );
    Ok(exit::OK)
}

/// Why the previous image could not be opened.
enum Opening {
    /// It does not exist (a first build): nothing to restore.
    NotFound(String),
    /// It exists but cannot be read.
    Failed(String),
}

impl From<String> for Opening {
    fn from(why: String) -> Self {
        Opening::Failed(why)
    }
}

impl From<&str> for Opening {
    fn from(why: &str) -> Self {
        Opening::Failed(why.to_string())
    }
}

fn open(cli: &Cli, runtime: &tokio::runtime::Runtime) -> Result<ImageSource, Opening> {
    let name = &cli.previous_image;
    if let Some(path) = &cli.previous_image_archive {
        let archive =
            DockerArchive::open(path, &ArchiveLimits::default()).map_err(|e| e.to_string())?;
        let image = archive
            .select(Some(&cli.previous_image))
            .map_err(|e| Opening::NotFound(format!("{name} is not in {}: {e}", path.display())))?;
        return Ok(ImageSource::Archive {
            archive: Box::new(archive),
            image: Box::new(image),
        });
    }
    let target = if cli.layout {
        cnb_phase::guard_experimental("reading the previous image from an OCI layout")
            .map_err(|f| Opening::Failed(f.message))?;
        let dir = cli
            .layout_dir
            .as_ref()
            .ok_or("-layout needs -layout-dir (CNB_LAYOUT_DIR)")?;
        Target::Layout(
            LayoutImage::in_layout_dir(dir, &cli.previous_image)
                .map_err(|e| Opening::Failed(e.to_string()))?,
        )
    } else {
        Target::parse(&cli.previous_image).map_err(|e| Opening::Failed(e.to_string()))?
    };
    match target {
        Target::Layout(location) => {
            if !location.dir.exists() {
                return Err(Opening::NotFound(format!(
                    "{name}: no OCI layout at {}",
                    location.dir.display()
                )));
            }
            let layout = OciLayout::open(&location.dir).map_err(|e| e.to_string())?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| match &e {
                    cnb_referrers::Error::Layout { reason, .. }
                        if reason.starts_with("no image") =>
                    {
                        Opening::NotFound(format!("{name}: {e}"))
                    }
                    _ => Opening::Failed(e.to_string()),
                })?;
            let image = layout.read_image(&descriptor).map_err(|e| e.to_string())?;
            Ok(ImageSource::Layout {
                layout: Box::new(layout),
                image: Box::new(image),
            })
        }
        Target::Registry(reference) => {
            let client = cli.registry.client().map_err(|e| e.to_string())?;
            let image = runtime
                .block_on(client.read_image(&reference))
                .map_err(|e| match &e {
                    cnb_registry::Error::Status { status: 404, .. } => {
                        Opening::NotFound(format!("{name}: {e}"))
                    }
                    _ => Opening::Failed(e.to_string()),
                })?;
            Ok(ImageSource::Registry {
                client: Box::new(client),
                reference,
                image: Box::new(image),
            })
        }
    }
}
