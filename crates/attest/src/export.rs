//! The exporter's part: the signer configuration for a build (the RFC's TOML), and `-omit-sbom`.
//! Local files only: this module never needs a network stack.

use std::path::{Path, PathBuf};

use cnb_referrers::layout::OciLayout;
use cnb_referrers::manifest::REF_NAME;
use cnb_sbom_discovery::platform::Report;
use cnb_sbom_discovery::DiscoveryOptions;
use cnb_signing::generate::{generate_config, lifecycle_label, GenerateInput};
use cnb_signing::LayoutImage;
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
    /// Rewrite a layout image without its SBOM layer (the tag moves to the rewritten manifest).
    pub omit_sbom: bool,
    /// Also attest `sbom/build`.
    pub include_build: bool,
    /// Also attest `sbom/cache`.
    pub include_cache: bool,
    /// Where to write the configuration (default `<layers>/signer.toml`).
    pub output: Option<PathBuf>,
}

/// What `-omit-sbom` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Omitted {
    /// The tag now names the rewritten manifest.
    Rewritten {
        /// The tag.
        tag: String,
        /// The digest before.
        from: String,
        /// The digest after.
        to: String,
    },
    /// The image had no SBOM layer.
    NoSbomLayer,
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
}

/// Largest label file read.
const MAX_LABEL_FILE: u64 = 4 * 1024 * 1024;

/// Discovers the build's SBOMs and writes the signer configuration for the exported image.
/// Errors: [`Error::Discovery`] for refused input in the layers directory, [`Error::BadImage`]
/// for an image that cannot be read or described, [`Error::InvalidRequest`] for `omit_sbom` on a
/// registry export, the rest for the configuration.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::export::{export, ExportRequest, ExportedImage};
/// use cnb_attest::LayoutImage;
/// let out = dir.path().join("signer.toml");
/// let report = export(&ExportRequest {
///     layers,
///     group: None,
///     image: ExportedImage::Layout(LayoutImage::parse(&format!("oci:{}:latest", dir.path().display()))?),
///     name: Some("registry.example/team/app".into()),
///     omit_sbom: false,
///     include_build: false,
///     include_cache: false,
///     output: Some(out.clone()),
/// })?;
/// assert_eq!((report.attestations, report.config), (7, out));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export(request: &ExportRequest) -> Result<ExportReport, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::BadImage(e.to_string());
    let mut omitted = None;
    let (reference, name, digest, label) = match &request.image {
        ExportedImage::Layout(location) => {
            let layout = OciLayout::open(&location.dir).map_err(|e| bad(&e))?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| bad(&e))?;
            let mut image = layout.read_image(&descriptor).map_err(|e| bad(&e))?;
            if request.omit_sbom {
                let tag = descriptor.annotation(REF_NAME).ok_or_else(|| {
                    bad(&"-omit-sbom rewrites a tagged image: name it by tag (oci:<dir>:<tag>)")
                })?;
                omitted = Some(
                    match cnb_signing::omit::omit_sbom_layer(&layout, &image, tag)
                        .map_err(|e| bad(&e))?
                    {
                        Some(rewritten) => {
                            let from = image.descriptor.digest.to_string();
                            image = rewritten;
                            Omitted::Rewritten {
                                tag: tag.to_string(),
                                from,
                                to: image.descriptor.digest.to_string(),
                            }
                        }
                        None => Omitted::NoSbomLayer,
                    },
                );
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
            if request.omit_sbom {
                return Err(Error::InvalidRequest(
                    "-omit-sbom rewrites the image, which this exporter does for OCI layout images \
                     (-layout-image or -layout); a registry image is exported by the lifecycle"
                        .into(),
                ));
            }
            let report_path = report
                .clone()
                .unwrap_or_else(|| request.layers.join("report.toml"));
            let report = Report::from_path(&report_path).map_err(|e| bad(&e))?;
            let digest = report.image.digest.clone().ok_or_else(|| {
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
            let label_path = label.as_ref().ok_or_else(|| {
                bad(&"with report.toml, give the image's lifecycle metadata label with -image-label <file>")
            })?;
            let label = read_label(label_path).map_err(|e| bad(&e))?;
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

fn read_label(path: &Path) -> Result<String, String> {
    let bytes = cnb_local_files::read(path, MAX_LABEL_FILE, cnb_local_files::Links::Follow)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}
