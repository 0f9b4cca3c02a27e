//! `analyzer`: the RFC's analyzer addition. Verifies the previous image's SBOM attestations and
//! restores the SBOM files to `<layers>/sbom/launch/<esc-bp>/[<layer>/]sbom.<ext>`, so the restorer
//! works as today; falls back to the previous image's SBOM layer (with a warning) when it has no
//! attestations, unless `-strict`. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::{Image, OciLayout};
use cnb_registry::{Client, ImageRef};
use cnb_sbom_discovery::platform::{LifecycleMetadata, LIFECYCLE_METADATA_LABEL};
use cnb_sbom_discovery::BuildpackIndex;
use cnb_sbom_restore::archive::{ArchiveImage, ArchiveLimits, DockerArchive};
use cnb_sbom_restore::inspect::{self, Fetched};
use cnb_sbom_restore::layer::{
    config_env, extract_from_layout, extract_sbom_layer, layers_mount, sbom_layer_descriptor,
    LayerLimits, SbomLayer,
};
use cnb_sbom_restore::select::{missing_layers, plan_restore, Request};
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

/// Where the previous image is.
enum Source {
    Layout(Box<OciLayout>, Box<Image>),
    Registry {
        client: Box<Client>,
        reference: ImageRef,
        runtime: tokio::runtime::Runtime,
        image: Box<Image>,
    },
    Archive(Box<DockerArchive>, Box<ArchiveImage>),
}

fn main() -> ExitCode {
    if let Err(f) = cnb_phase::check_platform_api() {
        eprintln!("ERROR: {}", f.message);
        return ExitCode::from(f.code);
    }
    cnb_phase::main(run)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let key =
        cnb_dsse::read_public_key(&cli.key).map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let bad_image = |e: &dyn std::fmt::Display| Failure::new(exit::ANALYZE_BAD_IMAGE, e);
    let source = open(&cli).map_err(|e| bad_image(&e))?;
    let (files, from) = match &source {
        // A saved daemon image carries no referrers: only its SBOM layer can be restored.
        Source::Archive(archive, image) => {
            if cli.strict {
                return Err(Failure::new(
                    exit::ANALYZE_NO_SBOMS,
                    format!(
                        "{} is a saved daemon image, which has no attestations (strict mode: the SBOM layer is not used)",
                        cli.previous_image
                    ),
                ));
            }
            let metadata = metadata_of(&image.config, &cli.previous_image)?;
            eprintln!(
                "Warning: {} is a saved daemon image without attestations; restoring from its SBOM layer, which is not signed",
                cli.previous_image
            );
            let layer = archive
                .sbom_layer(image, &index_of(&metadata)?, &LayerLimits::default())
                .map_err(|e| Failure::new(exit::ANALYZE_NO_SBOMS, e))?;
            (layer_files(layer), "the SBOM layer")
        }
        Source::Layout(..) | Source::Registry { .. } => attested_or_layer(&cli, &source, &key)?,
    };
    let metadata = match &source {
        Source::Archive(_, image) => metadata_of(&image.config, &cli.previous_image)?,
        Source::Layout(_, image) | Source::Registry { image, .. } => {
            metadata_of(&image.config, &cli.previous_image)?
        }
    };
    if cli.require_all_layers {
        let restored = cnb_sbom_restore::select::Plan {
            files: files.clone(),
            ..Default::default()
        };
        let missing = missing_layers(&restored, &metadata);
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

fn metadata_of(
    config: &cnb_referrers::ImageConfig,
    name: &str,
) -> Result<LifecycleMetadata, Failure> {
    let label = config.labels.get(LIFECYCLE_METADATA_LABEL).ok_or_else(|| {
        Failure::new(
            exit::ANALYZE_BAD_IMAGE,
            format!("{name} has no {LIFECYCLE_METADATA_LABEL} label: not a buildpacks-built image"),
        )
    })?;
    LifecycleMetadata::from_json(label).map_err(|e| Failure::new(exit::ANALYZE_BAD_IMAGE, e))
}

fn index_of(metadata: &LifecycleMetadata) -> Result<BuildpackIndex, Failure> {
    let mut index = BuildpackIndex::from_metadata(metadata)
        .map_err(|e| Failure::new(exit::ANALYZE_BAD_IMAGE, e))?;
    index.insert(cnb_sbom_discovery::BuildpackId::lifecycle());
    Ok(index)
}

fn layer_files(layer: SbomLayer) -> Vec<cnb_sbom_restore::Restored> {
    for (path, reason) in &layer.skipped {
        eprintln!("Skipping {path} in the SBOM layer: {reason}");
    }
    layer.files
}

/// Verified attestations, or (with a warning, unless strict) the SBOM layer when there are none.
fn attested_or_layer(
    cli: &Cli,
    source: &Source,
    key: &cnb_dsse::VerifyingKey,
) -> Result<(Vec<cnb_sbom_restore::Restored>, &'static str), Failure> {
    let bad_image = |e: &dyn std::fmt::Display| Failure::new(exit::ANALYZE_BAD_IMAGE, e);
    let (image, fetched): (&Image, Vec<Fetched>) = match source {
        Source::Layout(layout, image) => (
            image,
            inspect::fetch_layout(layout, image).map_err(|e| bad_image(&e))?,
        ),
        Source::Registry {
            client,
            reference,
            runtime,
            image,
        } => (
            image,
            runtime
                .block_on(inspect::fetch_registry(
                    client,
                    &reference.repository,
                    image,
                ))
                .map_err(|e| bad_image(&e))?,
        ),
        Source::Archive(..) => unreachable!("archives are handled by the caller"),
    };
    let metadata = metadata_of(&image.config, &cli.previous_image)?;
    let plan = plan_restore(image, &metadata, &fetched, key, &Request::default());
    for (name, reason) in &plan.failures {
        eprintln!("ERROR: {name}: {reason}");
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
    if !plan.files.is_empty() {
        return Ok((plan.files, "verified attestations"));
    }
    if cli.strict {
        return Err(Failure::new(
            exit::ANALYZE_NO_SBOMS,
            format!(
                "{} has no verified SBOM attestations (strict mode: the SBOM layer is not used)",
                cli.previous_image
            ),
        ));
    }
    eprintln!(
        "Warning: {} has no SBOM attestations; restoring from its SBOM layer, which is not signed",
        cli.previous_image
    );
    let index = index_of(&metadata)?;
    let limits = LayerLimits::default();
    let failed = |e: &dyn std::fmt::Display| Failure::new(exit::ANALYZE_NO_SBOMS, e);
    let layer = match source {
        Source::Layout(layout, image) => {
            extract_from_layout(layout, image, &index, &limits).map_err(|e| failed(&e))?
        }
        Source::Registry {
            client,
            reference,
            runtime,
            image,
        } => {
            let (descriptor, diff_id) =
                sbom_layer_descriptor(image, &metadata).map_err(|e| failed(&e))?;
            let repo = &reference.repository;
            let (config, blob) = runtime
                .block_on(async {
                    let config = client
                        .get_blob(repo, &image.manifest.config.digest, 8 * 1024 * 1024)
                        .await?;
                    let blob = client
                        .get_blob(repo, &descriptor.digest, limits.max_compressed)
                        .await?;
                    Ok::<_, cnb_registry::Error>((config, blob))
                })
                .map_err(|e| failed(&e))?;
            let mount = layers_mount(&config_env(&config).map_err(|e| failed(&e))?);
            extract_sbom_layer(
                blob.as_slice(),
                &descriptor.media_type,
                &diff_id,
                &mount,
                &index,
                &limits,
            )
            .map_err(|e| failed(&e))?
        }
        Source::Archive(..) => unreachable!("archives are handled by the caller"),
    };
    Ok((layer_files(layer), "the SBOM layer"))
}

fn open(cli: &Cli) -> Result<Source, String> {
    if let Some(path) = &cli.previous_image_archive {
        let archive =
            DockerArchive::open(path, &ArchiveLimits::default()).map_err(|e| e.to_string())?;
        let image = archive
            .select(Some(&cli.previous_image))
            .map_err(|e| e.to_string())?;
        return Ok(Source::Archive(Box::new(archive), Box::new(image)));
    }
    let target = if cli.layout {
        cnb_phase::guard_experimental("reading the previous image from an OCI layout")
            .map_err(|f| f.message)?;
        let dir = cli
            .layout_dir
            .as_ref()
            .ok_or("-layout needs -layout-dir (CNB_LAYOUT_DIR)")?;
        Target::Layout(
            LayoutImage::in_layout_dir(dir, &cli.previous_image).map_err(|e| e.to_string())?,
        )
    } else {
        Target::parse(&cli.previous_image).map_err(|e| e.to_string())?
    };
    match target {
        Target::Layout(location) => {
            let layout = OciLayout::open(&location.dir).map_err(|e| e.to_string())?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| e.to_string())?;
            let image = layout.read_image(&descriptor).map_err(|e| e.to_string())?;
            Ok(Source::Layout(Box::new(layout), Box::new(image)))
        }
        Target::Registry(reference) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("async runtime: {e}"))?;
            let client = cli.registry.client().map_err(|e| e.to_string())?;
            let image = runtime
                .block_on(client.read_image(&reference))
                .map_err(|e| e.to_string())?;
            Ok(Source::Registry {
                client: Box::new(client),
                reference,
                runtime,
                image: Box::new(image),
            })
        }
    }
}
