//! Generating the configuration from discovered SBOM files (what the exporter does).

use cnb_sbom_discovery::platform::{LifecycleMetadata, Report};
use cnb_sbom_discovery::{SbomFile, SbomKind, Scope};

use crate::annotations;
use crate::checks;
use crate::error::{sanitize, Error};
use crate::model::{
    AttestationSpec, ImageSection, PredicateSource, PredicateSpec, SignerConfig, SubjectSpec,
};
use crate::Digest;
use cnb_untrusted::DigestError;

/// What [`generate`] needs to know about the exported image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDescription {
    /// The reference pinned by digest, e.g. `my.registry.io/ns/app:latest@sha256:<hex>`.
    pub reference: String,
    /// The image subject's name: the repository without tag or digest.
    pub name: String,
    /// The image manifest digest (the image subject's digest).
    pub digest: Digest,
    /// The image's `io.buildpacks.lifecycle.metadata` label (layer diffIDs).
    pub metadata: LifecycleMetadata,
}

impl ImageDescription {
    /// Describe the image the exporter just saved, from `report.toml` and the label it wrote:
    /// the first tag pinned by `digest`. Fails when the report has no tag or no digest (daemon
    /// and OCI-layout exports have no manifest digest in the report).
    pub fn from_report(report: &Report, metadata: LifecycleMetadata) -> Result<Self, Error> {
        let Some(tag) = report.image.tags.first() else {
            return Err(Error::Invalid {
                field: "report.toml image.tags".into(),
                reason: "no tag was saved, so there is no image to attest".into(),
            });
        };
        let Some(digest) = report.image.digest.as_deref() else {
            return Err(Error::Invalid {
                field: "report.toml image.digest".into(),
                reason: "missing: the export has no manifest digest (daemon and OCI layout exports have none)".into(),
            });
        };
        let digest: Digest = digest.parse().map_err(|e: DigestError| Error::Invalid {
            field: "report.toml image.digest".into(),
            reason: Error::from(e).to_string(),
        })?;
        let base = tag.split_once('@').map_or(tag.as_str(), |(n, _)| n);
        Ok(ImageDescription {
            reference: format!("{base}@{digest}"),
            name: checks::repository(base).to_string(),
            digest,
            metadata,
        })
    }
}

/// One attestation per SBOM file, in the order given.
///
/// - predicate type from the format, `uri` = the file's absolute path;
/// - subjects: the image (`name` + manifest digest); for a *launch* layer SBOM also
///   `<buildpack-id>:<layer>` with the layer's diffID from the label (the launcher:
///   `buildpacksio/lifecycle:launcher` with `launcher.sha`). A launch layer missing from the
///   label is an error. Build and cache SBOMs get only the image subject: their layers are not
///   in the image;
/// - annotations, in this order: [`annotations::BUILDPACK_ID`], [`annotations::LAYER_NAME`]
///   (layer scope), [`annotations::LAYER_DIGEST_KIND`] = `diffID` (when there is a layer
///   subject), [`annotations::SBOM_MEDIA_TYPE`], [`annotations::SBOM_DIGEST`],
///   [`annotations::SBOM_KIND`] (build and cache only).
pub fn generate(image: &ImageDescription, files: &[SbomFile]) -> Result<SignerConfig, Error> {
    let pinned = checks::reference(&image.reference).map_err(|reason| Error::Invalid {
        field: "image.reference".into(),
        reason,
    })?;
    if pinned != image.digest {
        return Err(Error::Invalid {
            field: "image.reference".into(),
            reason: format!("pins {pinned} but the image digest is {}", image.digest),
        });
    }
    checks::subject_name(&image.name).map_err(|reason| Error::Invalid {
        field: "image name".into(),
        reason,
    })?;
    if image.name.contains('@') {
        return Err(Error::Invalid {
            field: "image name".into(),
            reason: "must be a repository without tag or digest".into(),
        });
    }

    let mut attestations = Vec::with_capacity(files.len());
    for file in files {
        attestations.push(attestation(image, file)?);
    }
    Ok(SignerConfig {
        image: ImageSection {
            reference: image.reference.clone(),
        },
        attestations,
    })
}

fn attestation(image: &ImageDescription, file: &SbomFile) -> Result<AttestationSpec, Error> {
    let shown = sanitize(&file.path.to_string_lossy());
    let uri_err = |reason: String| Error::Uri {
        field: format!("SBOM file {}", file.relative.display()),
        uri: shown.clone(),
        reason,
    };
    let uri = file
        .path
        .to_str()
        .ok_or_else(|| uri_err("is not valid UTF-8".into()))?;
    let uri = checks::uri(uri).map_err(uri_err)?;
    let sbom_digest = Digest::sha256(&file.sha256)?;

    let mut subjects = vec![SubjectSpec {
        name: image.name.clone(),
        digest: image.digest.clone(),
    }];
    let mut notes = vec![(
        annotations::BUILDPACK_ID.to_string(),
        file.buildpack.to_string(),
    )];
    if file.kind != SbomKind::Launch {
        // A build or cache SBOM says so in a signed subject (`<bp-id>[:<layer>]#build`, with the
        // image digest): a restore must never mistake it for a launch SBOM, and the
        // `io.buildpacks.sbom.kind` annotation is not signed.
        let place = match &file.scope {
            Scope::Layer(layer) => format!("{}:{layer}", file.buildpack),
            Scope::Image => file.buildpack.to_string(),
        };
        subjects.push(SubjectSpec {
            name: format!("{place}#{}", file.kind.dir_name()),
            digest: image.digest.clone(),
        });
    } else if file.scope == Scope::Image {
        // An image-scoped SBOM also names its buildpack in a signed subject (the buildpack ID, with
        // the image digest): a restore places the file from signed data, never from an annotation
        // anyone with push access could rewrite. Layer subjects carry it as `<bp-id>:<layer>`.
        subjects.push(SubjectSpec {
            name: file.buildpack.to_string(),
            digest: image.digest.clone(),
        });
    }
    if let Scope::Layer(layer) = &file.scope {
        notes.push((annotations::LAYER_NAME.to_string(), layer.to_string()));
        if file.kind == SbomKind::Launch {
            let Some(diff_id) = image.metadata.layer_diff_id(&file.buildpack, layer) else {
                return Err(Error::LayerNotInLabel {
                    buildpack: file.buildpack.to_string(),
                    layer: layer.to_string(),
                    path: file.path.clone(),
                });
            };
            let digest: Digest = diff_id.parse().map_err(|e: DigestError| Error::Invalid {
                field: format!(
                    "io.buildpacks.lifecycle.metadata diffID of {}:{layer}",
                    file.buildpack
                ),
                reason: Error::from(e).to_string(),
            })?;
            subjects.push(SubjectSpec {
                name: format!("{}:{layer}", file.buildpack),
                digest,
            });
            notes.push((
                annotations::LAYER_DIGEST_KIND.to_string(),
                annotations::DIGEST_KIND_DIFF_ID.to_string(),
            ));
        }
    }
    notes.push((
        annotations::SBOM_MEDIA_TYPE.to_string(),
        file.format.media_type().to_string(),
    ));
    notes.push((
        annotations::SBOM_DIGEST.to_string(),
        sbom_digest.to_string(),
    ));
    if file.kind != SbomKind::Launch {
        notes.push((annotations::SBOM_KIND.to_string(), file.kind.to_string()));
    }

    Ok(AttestationSpec {
        predicate: PredicateSpec {
            predicate_type: file.format.predicate_type().to_string(),
            source: PredicateSource::Uri(uri),
        },
        subjects,
        annotations: notes,
    })
}
