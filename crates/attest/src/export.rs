//! The exporter's part: the signer configuration for a build (the RFC's TOML), and `-omit-sbom`
//! ([`strip_sbom_layer`] on its own). Layout images need local files only; a registry image
//! (report.toml) needs the network only for `-omit-sbom` (feature `registry`).

use std::path::{Path, PathBuf};

use cnb_referrers::layout::OciLayout;
use cnb_referrers::manifest::REF_NAME;
use cnb_sbom_discovery::platform::Report;
use cnb_sbom_discovery::DiscoveryOptions;
use cnb_signing::generate::{generate_config, lifecycle_label, GenerateInput};
use cnb_signing::{LayoutImage, Target};
use serde::Serialize;

use crate::sign::default_group;
use crate::Error;

/// Where the exported image is described.
#[derive(Debug, Clone)]
pub enum ExportedImage {
    /// An OCI layout (the lifecycle's `-layout` export, or any layout).
    Layout(LayoutImage),
    /// A registry export: `report.toml` (digest, tags) and a file holding the image's
    /// `io.buildpacks.lifecycle.metadata` label.
    Report {
        /// `report.toml` (`None`: `<layers>/report.toml`).
        report: Option<PathBuf>,
        /// The label JSON file.
        label: Option<PathBuf>,
    },
}

/// An exporter run.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The layers directory.
    pub layers: PathBuf,
    /// `group.toml` (default `<layers>/group.toml` when present).
    pub group: Option<PathBuf>,
    /// The exported image.
    pub image: ExportedImage,
    /// The image name for the image subject (default: the first tag in `report.toml`, or a name
    /// derived from the layout); a tag or digest is dropped.
    pub name: Option<String>,
    /// Rewrite the image without its SBOM layer: in a layout the tag moves to the rewritten
    /// manifest; in a registry (report.toml, feature `registry`) every tag report.toml lists
    /// moves, and report.toml is rewritten with the new digest.
    pub omit_sbom: bool,
    /// Also attest `sbom/build`.
    pub include_build: bool,
    /// Also attest `sbom/cache`.
    pub include_cache: bool,
    /// Where to write the configuration (default `<layers>/signer.toml`).
    pub output: Option<PathBuf>,
    /// How to reach the registry (`-omit-sbom` on a registry image).
    #[cfg(feature = "registry")]
    pub registry: crate::registry::RegistryOptions,
}

/// What `-omit-sbom` (or [`strip_sbom_layer`]) did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Omitted {
    /// The rewritten image is stored and every tag names it.
    #[serde(rename_all = "kebab-case")]
    Rewritten {
        /// The layout directory or the registry repository.
        image: String,
        /// The digest before.
        from: String,
        /// The digest after.
        to: String,
        /// The tags moved (in a registry `<registry>/<repository>:<tag>`; in a layout the tag).
        tags: Vec<String>,
        /// The SBOM layer dropped.
        sbom_layer: OmittedLayer,
        /// The new manifest's size in bytes.
        manifest_size: u64,
        /// Registry repositories the new config was uploaded to (the one new blob; no layer is
        /// uploaded).
        config_uploaded: Vec<String>,
        /// The `report.toml` rewritten with the new digest, if any.
        report: Option<PathBuf>,
    },
    /// The image has no SBOM layer (the label has no `sbom` key): nothing was changed.
    #[serde(rename_all = "kebab-case")]
    NoSbomLayer {
        /// The layout directory or the registry repository.
        image: String,
        /// Its digest.
        digest: String,
    },
}

/// `-omit-sbom` pushed the rewritten image and moved every tag, but `report.toml` could not be
/// rewritten: it still names the old digest, and no signer configuration was written.
#[derive(Debug, thiserror::Error)]
#[error("omit-sbom: the rewritten image {digest} is pushed and every tag moved ({}), but {} was not rewritten: {source} (run again to finish)", tags.join(", "), report.display())]
pub struct ReportNotRewritten {
    /// The rewritten image's digest.
    pub digest: String,
    /// The tags that name it.
    pub tags: Vec<String>,
    /// The report.
    pub report: PathBuf,
    /// The cause.
    pub source: cnb_sbom_discovery::Error,
}

/// The SBOM layer `-omit-sbom` dropped.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OmittedLayer {
    /// Its digest as stored (the manifest's).
    pub digest: String,
    /// Its diffID (the label's `sbom.sha`).
    pub diff_id: String,
    /// Its size as stored, in bytes: what the image is smaller by.
    pub size: u64,
}

/// What [`export`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportReport {
    /// The configuration written.
    pub config: PathBuf,
    /// The image digest it is for.
    pub image_digest: String,
    /// Attestations listed (one per SBOM file).
    pub attestations: usize,
    /// Files discovery skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// What `-omit-sbom` did, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omitted: Option<Omitted>,
    /// Registry requests sent (`-omit-sbom` on a registry image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

/// Largest label file read.
const MAX_LABEL_FILE: u64 = 4 * 1024 * 1024;

/// Discovers the build's SBOMs and writes the signer configuration for the exported image.
/// With `omit_sbom`, the image is first rewritten without its SBOM layer ([`strip_sbom_layer`]'s
/// work: a layout's tag, or every tag `report.toml` lists, moves to the new manifest, and
/// `report.toml` is rewritten), and the configuration is for the new digest.
/// Errors: [`Error::Discovery`] for refused input in the layers directory, [`Error::BadImage`]
/// for an image that cannot be read or described, [`Error::TagsPartlyMoved`] and
/// [`Error::ReportNotRewritten`] for a registry rewrite that did not finish (no configuration is
/// written then), [`Error::RegistryUnsupported`] for `omit_sbom` on a registry image without the
/// `registry` feature, the rest for the configuration.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::export::{export, ExportRequest, ExportedImage};
/// use cnb_attest::LayoutImage;
/// let out = dir.path().join("signer.toml");
/// let report = cnb_attest::block_on(export(&ExportRequest {
///     layers,
///     group: None,
///     image: ExportedImage::Layout(LayoutImage::parse(&format!("oci:{}:latest", dir.path().display()))?),
///     name: Some("registry.example/team/app".into()),
///     omit_sbom: false,
///     include_build: false,
///     include_cache: false,
///     output: Some(out.clone()),
///     #[cfg(feature = "registry")]
///     registry: Default::default(),
/// }))??;
/// assert_eq!((report.attestations, report.config), (7, out));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn export(request: &ExportRequest) -> Result<ExportReport, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::BadImage(e.to_string());
    let mut omitted = None;
    // Only a registry rewrite sends requests.
    #[cfg_attr(not(feature = "registry"), allow(unused_mut))]
    let mut requests = None;
    let (reference, name, digest, label) = match &request.image {
        ExportedImage::Layout(location) => {
            let layout = OciLayout::open(&location.dir).map_err(|e| bad(&e))?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| Error::resolving(&location.to_string(), e))?;
            let mut image = layout.read_image(&descriptor).map_err(|e| bad(&e))?;
            if request.omit_sbom {
                let (outcome, rewritten) = strip_in_layout(location, &layout, &descriptor, &image)?;
                if let Some(rewritten) = rewritten {
                    image = rewritten;
                }
                omitted = Some(outcome);
            }
            let label = lifecycle_label(&image).map_err(|e| bad(&e))?.to_string();
            let dir = std::fs::canonicalize(&location.dir)
                .map_err(|e| bad(&format!("{}: {e}", location.dir.display())))?;
            let digest = image.descriptor.digest.to_string();
            let name = match &request.name {
                Some(n) => repository(n).to_string(),
                None => location.default_subject_name(descriptor.annotation(REF_NAME)),
            };
            (
                format!("oci:{}@{digest}", dir.display()),
                name,
                digest,
                label,
            )
        }
        ExportedImage::Report { report, label } => {
            let report_path = report
                .clone()
                .unwrap_or_else(|| request.layers.join("report.toml"));
            let report = Report::from_path(&report_path).map_err(|e| bad(&e))?;
            // Only a registry rewrite changes it.
            #[cfg_attr(not(feature = "registry"), allow(unused_mut))]
            let mut digest = report.image.digest.clone().ok_or_else(|| {
                bad(&format!(
                    "{} has no [image] digest (daemon and layout exports have none); use -layout-image",
                    report_path.display()
                ))
            })?;
            let name = match (&request.name, report.image.tags.first()) {
                (Some(n), _) => repository(n).to_string(),
                (None, Some(tag)) => repository(tag).to_string(),
                (None, None) => {
                    return Err(bad(&format!(
                        "{} lists no tags; name the image with -image",
                        report_path.display()
                    )))
                }
            };
            let label = if request.omit_sbom {
                #[cfg(feature = "registry")]
                {
                    // The image is where the lifecycle pushed it: the first tag's repository.
                    let at = report
                        .image
                        .tags
                        .first()
                        .map_or(name.as_str(), |t| repository(t));
                    // A name report.toml gives that does not parse is a bad report, not a bad flag.
                    let in_report = |e: Error| bad(&format!("{}: {e}", report_path.display()));
                    let source = parse_reference(&format!("{at}@{digest}")).map_err(in_report)?;
                    let tags = report
                        .image
                        .tags
                        .iter()
                        .map(|t| parse_reference(t).map_err(in_report))
                        .collect::<Result<Vec<_>, _>>()?;
                    let client = request.registry.client()?;
                    let outcome =
                        strip_in_registry(&client, &source, &tags, Some(&report_path)).await;
                    requests = Some(client.stats().total());
                    let (outcome, label) = outcome?;
                    if let Omitted::Rewritten { to, .. } = &outcome {
                        digest = to.clone();
                    }
                    omitted = Some(outcome);
                    label
                }
                #[cfg(not(feature = "registry"))]
                {
                    return Err(Error::RegistryUnsupported(format!(
                        "-omit-sbom on the registry image {name}@{digest}"
                    )));
                }
            } else {
                let label_path = label.as_ref().ok_or_else(|| {
                    bad(&"with report.toml, give the image's lifecycle metadata label with -image-label <file>")
                })?;
                read_label(label_path).map_err(|e| bad(&e))?
            };
            (format!("{name}@{digest}"), name, digest, label)
        }
    };
    let group = default_group(&request.layers, request.group.as_deref());
    let input = GenerateInput {
        layers_dir: &request.layers,
        group: group.as_deref(),
        reference: &reference,
        subject_name: &name,
        discovery: DiscoveryOptions {
            include_build: request.include_build,
            include_cache: request.include_cache,
            ..DiscoveryOptions::default()
        },
    };
    let (config, discovery) = generate_config(&input, &digest, &label)?;
    let out = request
        .output
        .clone()
        .unwrap_or_else(|| request.layers.join("signer.toml"));
    config.write(&out)?;
    Ok(ExportReport {
        config: out,
        image_digest: digest,
        attestations: config.attestations.len(),
        skipped: discovery.skipped,
        omitted,
        requests,
    })
}

/// What to rewrite without its SBOM layer.
#[derive(Debug, Clone)]
pub struct StripRequest {
    /// The image: a registry reference (by tag: that tag moves; by digest: the new manifest is
    /// pushed by digest) or `oci:<dir>:<tag>` (the tag moves).
    pub image: String,
    /// The lifecycle's `report.toml` for a registry image: the image rewritten is the one its
    /// digest names (in `image`'s repository; a digest in `image` must be the same), every tag it
    /// lists moves too, and it is rewritten with the new digest.
    pub report: Option<PathBuf>,
    /// How to reach the registry.
    #[cfg(feature = "registry")]
    pub registry: crate::registry::RegistryOptions,
}

/// What [`strip_sbom_layer`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StripReport {
    /// The rewrite, or that there was no SBOM layer.
    pub omitted: Omitted,
    /// Registry requests sent (registry images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

/// Rewrites an image without its SBOM layer, as the exporter's `-omit-sbom` does, on its own
/// (`cnb-attest strip-sbom-layer`): drops the layer the label's `sbom.sha` names, its diffID,
/// its history entry and the label's `sbom` key, stores the new config and manifest (in a
/// registry only the config is uploaded: the layers are already there) and moves the tags. An
/// image without an SBOM layer is left as it is ([`Omitted::NoSbomLayer`]), so running twice
/// changes nothing the second time.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::export::{strip_sbom_layer, Omitted, StripRequest};
/// let request = StripRequest {
///     image: format!("oci:{}:latest", dir.path().display()),
///     report: None,
///     #[cfg(feature = "registry")]
///     registry: Default::default(),
/// };
/// let first = cnb_attest::block_on(strip_sbom_layer(&request))??;
/// assert!(matches!(first.omitted, Omitted::Rewritten { .. }));
/// let second = cnb_attest::block_on(strip_sbom_layer(&request))??;
/// assert!(matches!(second.omitted, Omitted::NoSbomLayer { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn strip_sbom_layer(request: &StripRequest) -> Result<StripReport, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::BadImage(e.to_string());
    let target = Target::parse(&request.image).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    match target {
        Target::Layout(location) => {
            if request.report.is_some() {
                return Err(Error::InvalidRequest(
                    "report.toml describes a registry export; an OCI layout image has none".into(),
                ));
            }
            let layout = OciLayout::open(&location.dir).map_err(|e| bad(&e))?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| Error::resolving(&location.to_string(), e))?;
            let image = layout.read_image(&descriptor).map_err(|e| bad(&e))?;
            let (omitted, _) = strip_in_layout(&location, &layout, &descriptor, &image)?;
            Ok(StripReport {
                omitted,
                requests: None,
            })
        }
        #[cfg(feature = "registry")]
        Target::Registry(reference) => {
            let mut tags = Vec::new();
            let mut source = reference.clone();
            if let Some(path) = &request.report {
                let report = Report::from_path(path).map_err(|e| bad(&e))?;
                let digest = report
                    .image
                    .digest
                    .clone()
                    .ok_or_else(|| bad(&format!("{} has no [image] digest", path.display())))?;
                if let Some(named) = reference.digest.as_deref().filter(|d| *d != digest) {
                    return Err(Error::InvalidRequest(format!(
                        "{} describes {digest}, not {named}",
                        path.display()
                    )));
                }
                source.digest = Some(digest);
                for tag in &report.image.tags {
                    tags.push(parse_reference(tag)?);
                }
            }
            if reference.tag.is_some() {
                let mut tag = reference.clone();
                tag.digest = None;
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            let client = request.registry.client()?;
            let outcome =
                strip_in_registry(&client, &source, &tags, request.report.as_deref()).await;
            let requests = Some(client.stats().total());
            Ok(StripReport {
                omitted: outcome?.0,
                requests,
            })
        }
        #[cfg(not(feature = "registry"))]
        Target::Registry(_) => Err(Error::RegistryUnsupported(request.image.clone())),
    }
}

/// `-omit-sbom` in a layout: the one rewrite, and the tag moved. Returns the new image too.
fn strip_in_layout(
    location: &LayoutImage,
    layout: &OciLayout,
    descriptor: &cnb_referrers::Descriptor,
    image: &cnb_referrers::layout::Image,
) -> Result<(Omitted, Option<cnb_referrers::layout::Image>), Error> {
    let bad = |e: &dyn std::fmt::Display| Error::BadImage(e.to_string());
    let tag = descriptor.annotation(REF_NAME).ok_or_else(|| {
        bad(&"-omit-sbom rewrites a tagged image: name it by tag (oci:<dir>:<tag>)")
    })?;
    let shown = location.dir.display().to_string();
    let from = image.descriptor.digest.to_string();
    let Some(rewritten) =
        cnb_signing::omit::omit_sbom_layer(layout, image, tag).map_err(|e| bad(&e))?
    else {
        return Ok((
            Omitted::NoSbomLayer {
                image: shown,
                digest: from,
            },
            None,
        ));
    };
    // The layer the new manifest no longer lists.
    let sbom_layer = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.diff_ids)
        .find(|(layer, _)| !rewritten.manifest.layers.contains(layer))
        .map(|(layer, diff_id)| OmittedLayer {
            digest: layer.digest.to_string(),
            diff_id: diff_id.clone(),
            size: layer.size,
        })
        .ok_or_else(|| bad(&"-omit-sbom: the rewritten image lists every layer"))?;
    Ok((
        Omitted::Rewritten {
            image: shown,
            from,
            to: rewritten.descriptor.digest.to_string(),
            tags: vec![tag.to_string()],
            sbom_layer,
            manifest_size: rewritten.descriptor.size,
            config_uploaded: Vec::new(),
            report: None,
        },
        Some(rewritten),
    ))
}

/// `-omit-sbom` in a registry: the one rewrite pushed, every tag moved, then `report` rewritten.
/// Returns the label of the image the tags now name.
#[cfg(feature = "registry")]
async fn strip_in_registry(
    client: &cnb_registry::Client,
    source: &cnb_registry::ImageRef,
    tags: &[cnb_registry::ImageRef],
    report: Option<&Path>,
) -> Result<(Omitted, String), Error> {
    use cnb_signing::omit::{omit_sbom_layer_in_registry, RegistryOmit, RegistryRewrite};
    let shown = source.repository.to_string();
    let outcome = omit_sbom_layer_in_registry(client, source, tags)
        .await
        .map_err(|e| match e {
            cnb_signing::Error::Registry(e @ cnb_registry::Error::Status { status: 404, .. }) => {
                Error::ImageNotFound(format!("{source}: {e}"))
            }
            cnb_signing::Error::Registry(e) => Error::Registry(e),
            cnb_signing::Error::PartlyMoved(p) => Error::TagsPartlyMoved(Box::new(p)),
            other => Error::from(other),
        })?;
    match outcome {
        RegistryOmit::NoSbomLayer { digest, label } => Ok((
            Omitted::NoSbomLayer {
                image: shown,
                digest: digest.to_string(),
            },
            label,
        )),
        RegistryOmit::Rewritten(rewrite) => {
            let RegistryRewrite {
                from,
                to,
                manifest_size,
                sbom_layer,
                sbom_diff_id,
                tags,
                config_uploaded,
                label,
            } = *rewrite;
            if let Some(path) = report {
                Report::rewrite_digest(path, to.as_str(), manifest_size).map_err(|source| {
                    Error::ReportNotRewritten(Box::new(ReportNotRewritten {
                        digest: to.to_string(),
                        tags: tags.clone(),
                        report: path.to_path_buf(),
                        source,
                    }))
                })?;
            }
            Ok((
                Omitted::Rewritten {
                    image: shown,
                    from: from.to_string(),
                    to: to.to_string(),
                    tags,
                    sbom_layer: OmittedLayer {
                        digest: sbom_layer.digest.to_string(),
                        diff_id: sbom_diff_id,
                        size: sbom_layer.size,
                    },
                    manifest_size,
                    config_uploaded,
                    report: report.map(Path::to_path_buf),
                },
                label,
            ))
        }
    }
}

#[cfg(feature = "registry")]
fn parse_reference(text: &str) -> Result<cnb_registry::ImageRef, Error> {
    cnb_registry::ImageRef::parse(text).map_err(|e| Error::InvalidRequest(e.to_string()))
}

/// The repository part of an image reference: no tag, no digest.
fn repository(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    }
}

fn read_label(path: &Path) -> Result<String, String> {
    let bytes = cnb_local_files::read(path, MAX_LABEL_FILE, cnb_local_files::Links::Follow)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}
