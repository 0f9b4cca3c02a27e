//! Listing and verifying the attestations stored for an image.
//!
//! Listing decodes what it can without trusting it (it is a view for people); verification checks,
//! for every referrer in a known format: the blob digest, the DSSE payload type, the signature over
//! PAE with the given key, the statement's strict parse, that one subject is the image manifest
//! digest, that every other subject is a layer (diffID) of this image, and that the manifest's
//! selection annotations agree with the signed statement. Annotations never make a decision on their
//! own; they can only make a verification fail.

use cnb_dsse::{VerifyingKey, IN_TOTO_PAYLOAD_TYPE};
use cnb_intoto::{Statement, Subject};
use cnb_referrers::format::{
    decode_layer, BUNDLE_PREDICATE_TYPE, MAX_ATTESTATION_BLOB, PREDICATE_TYPE,
};
use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::{Descriptor, ImageManifest, StorageFormat};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use cnb_attestation_config::annotations;

use crate::Error;

/// One referrer of an image, as stored (nothing verified).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Listed {
    /// The referrer manifest digest.
    pub manifest_digest: String,
    /// Storage format, when it is one this project reads.
    pub format: Option<String>,
    /// The manifest's artifact type.
    pub artifact_type: String,
    /// Predicate type, from the statement when it decodes, else from the annotations.
    pub predicate_type: Option<String>,
    /// Buildpack ID annotation.
    pub buildpack: Option<String>,
    /// Layer name annotation.
    pub layer: Option<String>,
    /// SBOM media type annotation.
    pub sbom_media_type: Option<String>,
    /// Size of the attestation blob.
    pub size: u64,
    /// Subjects of the (unverified) statement, as `name@sha256:<hex>`.
    pub subjects: Vec<String>,
    /// Why the referrer could not be decoded, if it could not.
    pub problem: Option<String>,
    /// `org.opencontainers.image.created` (unsigned), when the referrer carries it.
    pub created: Option<String>,
}

/// The verdict on one referrer.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// What is stored.
    #[serde(flatten)]
    pub listed: Listed,
    /// `None` when verified; the reason otherwise.
    pub failure: Option<String>,
}

impl Verdict {
    /// Whether verification passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// A one-line name for the attestation, for messages.
    pub fn name(&self) -> String {
        describe(&self.listed)
    }
}

/// A one-line name for a listed attestation: `<digest> (<buildpack>[:<layer>], <predicate type>, <format>)`.
pub fn describe(listed: &Listed) -> String {
    let who = match (&listed.buildpack, &listed.layer) {
        (Some(bp), Some(layer)) => format!("{bp}:{layer}"),
        (Some(bp), None) => bp.clone(),
        _ => "no buildpack".into(),
    };
    format!(
        "{} ({who}, {}, {})",
        listed.manifest_digest,
        listed
            .predicate_type
            .as_deref()
            .unwrap_or("unknown predicate"),
        listed.format.as_deref().unwrap_or(&listed.artifact_type)
    )
}

fn listed_from(fetched: &Fetched) -> Listed {
    let descriptor = &fetched.descriptor;
    let manifest = fetched.manifest.as_ref().ok();
    let annotation = |name: &str| {
        manifest
            .and_then(|m| m.annotation(name))
            .or_else(|| descriptor.annotation(name))
            .map(str::to_string)
    };
    Listed {
        manifest_digest: descriptor.digest.to_string(),
        format: if fetched.source == "cosign-att" {
            Some(StorageFormat::CosignLegacy.name().to_string())
        } else if fetched.source == "buildkit" {
            Some("buildkit".to_string())
        } else {
            manifest
                .and_then(StorageFormat::detect)
                .map(|f| f.name().to_string())
        },
        artifact_type: manifest
            .map(|m| m.effective_artifact_type().to_string())
            .or_else(|| descriptor.artifact_type.clone())
            .unwrap_or_default(),
        predicate_type: annotation(BUNDLE_PREDICATE_TYPE)
            .or_else(|| annotation(PREDICATE_TYPE))
            .or_else(|| annotation(cnb_referrers::format::INTOTO_PREDICATE_TYPE)),
        buildpack: annotation(annotations::BUILDPACK_ID),
        layer: annotation(annotations::LAYER_NAME),
        sbom_media_type: annotation(annotations::SBOM_MEDIA_TYPE),
        size: manifest
            .and_then(|m| m.layers.first())
            .map(|l| l.size)
            .unwrap_or(0),
        subjects: Vec::new(),
        problem: None,
        created: annotation(cnb_referrers::manifest::CREATED),
    }
}

/// One referrer of an image as fetched from a store: its descriptor as listed, its manifest, and
/// its attestation blob (or why it could not be had). Listing and verification work on these, so
/// they are the same whatever the store.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The descriptor as listed (layout index, Referrers API or tag-schema index).
    pub descriptor: Descriptor,
    /// The referrer manifest, or why it could not be read although it is listed.
    pub manifest: Result<ImageManifest, String>,
    /// The attestation blob (bounded and digest-checked by the store), or the reason it is missing.
    pub layer: Result<Vec<u8>, String>,
    /// Where it was found: `referrer` (layout index, Referrers API, tag-schema index),
    /// `cosign-att` (a layer of cosign 2's `sha256-<hex>.att` manifest) or `buildkit` (a layer of a
    /// BuildKit attestation manifest in the image's index: a bare, unsigned statement).
    pub source: &'static str,
}

/// Why a referrer's layer is not fetched, or `None` when it should be.
pub(crate) fn skip_reason(manifest: &ImageManifest) -> Option<String> {
    if StorageFormat::detect(manifest).is_none() {
        return Some(format!(
            "not an attestation format this tool reads (artifactType {})",
            manifest.effective_artifact_type()
        ));
    }
    let layer = &manifest.layers[0];
    (layer.size > MAX_ATTESTATION_BLOB).then(|| {
        format!(
            "attestation blob of {} bytes exceeds the {MAX_ATTESTATION_BLOB}-byte limit",
            layer.size
        )
    })
}

/// Every referrer of `image` in `layout`, with its attestation blob.
pub fn fetch_layout(layout: &OciLayout, image: &Image) -> Result<Vec<Fetched>, Error> {
    fetch_layout_selected(layout, image, &|_| true)
}

/// Like [`fetch_layout`], reading the attestation blob only of referrers `select` accepts (from
/// their listed descriptor: annotations and artifact type, unsigned hints).
pub fn fetch_layout_selected(
    layout: &OciLayout,
    image: &Image,
    select: &dyn Fn(&Descriptor) -> bool,
) -> Result<Vec<Fetched>, Error> {
    let mut buildkit = Vec::new();
    for manifest in layout.buildkit_attestations(&image.descriptor.digest)? {
        let bytes = layout
            .read_blob(&manifest.digest, cnb_referrers::layout::MAX_MANIFEST_SIZE)
            .map_err(|e| e.to_string());
        buildkit.extend(buildkit_entries(bytes, image, |layer| {
            layout
                .read_blob(&layer.digest, MAX_ATTESTATION_BLOB)
                .map_err(|e| e.to_string())
        }));
    }
    let referrers: Vec<Fetched> = layout
        .listed_referrers(&image.descriptor.digest)?
        .into_iter()
        .filter(|(descriptor, _)| select(descriptor))
        .map(|(descriptor, manifest)| {
            let layer = match &manifest {
                Err(problem) => Err(problem.clone()),
                Ok(manifest) => match skip_reason(manifest) {
                    Some(reason) => Err(reason),
                    None => layout
                        .read_blob(&manifest.layers[0].digest, MAX_ATTESTATION_BLOB)
                        .map_err(|e| e.to_string()),
                },
            };
            Fetched {
                descriptor,
                manifest,
                layer,
                source: "referrer",
            }
        })
        .collect();
    let all: Vec<Fetched> = referrers.into_iter().chain(buildkit).collect();
    within_limits(&all)?;
    Ok(all)
}

/// Most referrers read for one image, and most attestation bytes kept in memory for one run: a
/// registry that lists endless referrers, or many pointing at one huge blob, is refused, not
/// followed until memory runs out.
pub const MAX_REFERRERS: usize = 1024;
/// See [`MAX_REFERRERS`].
pub const MAX_TOTAL_BLOB_BYTES: u64 = 512 * 1024 * 1024;

/// Enforces [`MAX_REFERRERS`] and [`MAX_TOTAL_BLOB_BYTES`] over what was fetched.
pub(crate) fn within_limits(fetched: &[Fetched]) -> Result<(), Error> {
    if fetched.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{} referrers listed: more than the {MAX_REFERRERS} read for one image",
            fetched.len()
        )));
    }
    let total: u64 = fetched
        .iter()
        .filter_map(|f| f.layer.as_ref().ok())
        .map(|b| b.len() as u64)
        .sum();
    if total > MAX_TOTAL_BLOB_BYTES {
        return Err(Error::Malformed(format!(
            "{total} bytes of attestations: more than the {MAX_TOTAL_BLOB_BYTES} read for one image"
        )));
    }
    Ok(())
}

/// BuildKit's layer media type: a bare, unsigned in-toto statement.
pub(crate) const INTOTO_STATEMENT: &str = "application/vnd.in-toto+json";

/// One entry per in-toto layer of a BuildKit attestation manifest, presented as a one-layer
/// manifest about `image`; `blob` reads a layer (bounded, digest-checked).
pub(crate) fn buildkit_entries(
    manifest_bytes: Result<Vec<u8>, String>,
    image: &Image,
    mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>, String>,
) -> Vec<Fetched> {
    let manifest = match manifest_bytes
        .and_then(|b| ImageManifest::from_json(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    manifest
        .layers
        .iter()
        .filter(|l| l.media_type == INTOTO_STATEMENT)
        .map(|layer| Fetched {
            descriptor: layer.clone(),
            manifest: Ok(ImageManifest {
                schema_version: 2,
                media_type: None,
                artifact_type: Some(INTOTO_STATEMENT.into()),
                config: Descriptor::empty(),
                layers: vec![layer.clone()],
                subject: Some(image.descriptor.clone()),
                annotations: layer.annotations.clone(),
            }),
            layer: if layer.size > MAX_ATTESTATION_BLOB {
                Err(format!(
                    "attestation blob of {} bytes exceeds the {MAX_ATTESTATION_BLOB}-byte limit",
                    layer.size
                ))
            } else {
                blob(layer)
            },
            source: "buildkit",
        })
        .collect()
}

/// Decodes a fetched referrer's envelope (nothing verified).
fn envelope_of(fetched: &Fetched) -> Result<cnb_dsse::Envelope, String> {
    let manifest = fetched.manifest.as_ref().map_err(Clone::clone)?;
    let format = StorageFormat::detect(manifest)
        .ok_or_else(|| "not an attestation format this tool reads".to_string())?;
    let bytes = fetched.layer.as_ref().map_err(Clone::clone)?;
    let stored = decode_layer(format, bytes).map_err(|e| e.to_string())?;
    if stored.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payloadType is `{}`, expected `{IN_TOTO_PAYLOAD_TYPE}`",
            stored.envelope.payload_type
        ));
    }
    Ok(stored.envelope)
}

fn parse_statement(envelope: &cnb_dsse::Envelope) -> Result<Statement, String> {
    Statement::from_json(&envelope.payload).map_err(|e| e.to_string())
}

fn subject_text(subject: &Subject) -> String {
    match subject.sha256_digest() {
        Some(d) => format!("{}@{d}", subject.name),
        None => subject.name.clone(),
    }
}

/// Lists fetched referrers, decoding what can be decoded (nothing is verified).
pub fn list(fetched: &[Fetched]) -> Vec<Listed> {
    fetched
        .iter()
        .map(|f| {
            let mut listed = listed_from(f);
            if f.source == "buildkit" {
                match f
                    .layer
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|b| Statement::from_json(b).map_err(|e| e.to_string()))
                {
                    Ok(statement) => {
                        listed.predicate_type = Some(statement.predicate_type().to_string());
                        listed.subjects = statement.subjects().iter().map(subject_text).collect();
                        listed.problem =
                            Some("unsigned: BuildKit attestations carry no signature".into());
                    }
                    Err(problem) => listed.problem = Some(problem),
                }
                return listed;
            }
            match envelope_of(f).and_then(|e| parse_statement(&e)) {
                Ok(statement) => {
                    listed.predicate_type = Some(statement.predicate_type().to_string());
                    listed.subjects = statement.subjects().iter().map(subject_text).collect();
                }
                Err(problem) => listed.problem = Some(problem),
            }
            listed
        })
        .collect()
}

/// Verifies every fetched referrer in a format this tool reads. Referrers in other formats are left
/// out (they are someone else's); an empty result means there was nothing to verify.
pub fn verify(image: &Image, fetched: &[Fetched], key: &VerifyingKey) -> Vec<Verdict> {
    verify_each(image, fetched, key)
        .into_iter()
        .map(|(verdict, _)| verdict)
        .collect()
}

/// Like [`verify`], also returning each verified statement (`None` when verification failed).
pub fn verify_each(
    image: &Image,
    fetched: &[Fetched],
    key: &VerifyingKey,
) -> Vec<(Verdict, Option<Statement>)> {
    let mut out = Vec::new();
    for f in fetched {
        let manifest = match &f.manifest {
            Ok(m) if StorageFormat::detect(m).is_none() => continue,
            Ok(m) => m,
            Err(problem) => {
                out.push((
                    Verdict {
                        listed: listed_from(f),
                        failure: Some(format!("listed referrer cannot be read: {problem}")),
                    },
                    None,
                ));
                continue;
            }
        };
        let mut listed = listed_from(f);
        let annotated_type = listed.predicate_type.clone();
        let verified = envelope_of(f).and_then(|envelope| {
            // The signature is checked before the payload is parsed: nothing unsigned is interpreted.
            envelope
                .verify(key)
                .map_err(|e| format!("signature does not verify: {e}"))?;
            parse_statement(&envelope)
        });
        let (failure, statement) = match verified {
            Err(problem) => (Some(problem), None),
            Ok(statement) => {
                listed.subjects = statement.subjects().iter().map(subject_text).collect();
                listed.predicate_type = Some(statement.predicate_type().to_string());
                match check(image, manifest, &statement, annotated_type.as_deref()) {
                    Ok(()) => (None, Some(statement)),
                    Err(problem) => (Some(problem), None),
                }
            }
        };
        out.push((Verdict { listed, failure }, statement));
    }
    out
}

/// Lists every referrer of `image` stored in `layout`.
pub fn list_layout(layout: &OciLayout, image: &Image) -> Result<Vec<Listed>, Error> {
    Ok(list(&fetch_layout(layout, image)?))
}

/// Verifies every referrer of `image` stored in `layout` (see [`verify`]).
pub fn verify_layout(
    layout: &OciLayout,
    image: &Image,
    key: &VerifyingKey,
) -> Result<Vec<Verdict>, Error> {
    Ok(verify(image, &fetch_layout(layout, image)?, key))
}

/// The checks on a statement whose signature verified.
fn check(
    image: &Image,
    manifest: &ImageManifest,
    statement: &Statement,
    annotated_predicate_type: Option<&str>,
) -> Result<(), String> {
    if let Some(annotated) = annotated_predicate_type {
        if annotated != statement.predicate_type() {
            return Err(format!(
                "manifest says predicate type `{annotated}` but the signed statement says `{}`",
                statement.predicate_type()
            ));
        }
    }
    let image_hex = image.descriptor.digest.hex();
    let mut has_image = false;
    for subject in statement.subjects() {
        let Some(hex) = subject.digest.get("sha256") else {
            return Err(format!("subject `{}` has no sha256 digest", subject.name));
        };
        if hex == image_hex {
            has_image = true;
            continue;
        }
        let diff_id = format!("sha256:{hex}");
        if !image.config.diff_ids.contains(&diff_id) {
            return Err(format!(
                "subject `{}` ({diff_id}) is neither this image ({}) nor one of its layers",
                subject.name, image.descriptor.digest
            ));
        }
        if let (Some(bp), Some(layer)) = (
            manifest.annotation(annotations::BUILDPACK_ID),
            manifest.annotation(annotations::LAYER_NAME),
        ) {
            if subject.name != format!("{bp}:{layer}") {
                return Err(format!(
                    "manifest annotations name layer `{bp}:{layer}` but the signed subject is `{}`",
                    subject.name
                ));
            }
        }
    }
    if !has_image {
        return Err(format!(
            "no subject is this image's digest {}",
            image.descriptor.digest
        ));
    }
    if let Some(annotated) = manifest.annotation(annotations::SBOM_DIGEST) {
        let actual = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(statement.predicate()))
        );
        if annotated != actual {
            return Err(format!(
                "manifest says SBOM digest {annotated} but the signed predicate has {actual}"
            ));
        }
    }
    Ok(())
}
