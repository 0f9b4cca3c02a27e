//! Listing and verifying an image's attestations.

use std::sync::Arc;

use cnb_dsse::VerifyingKey;
use cnb_keyless::verify::Verifier;
use cnb_sbom_restore::inspect::{self as stored, Fetched, Listed, Verdict};
use cnb_sbom_restore::select::{plan_restore, verify_and_place, Place, Policy};
use cnb_sbom_restore::simple_signing;
pub use cnb_sbom_restore::simple_signing::SignatureVerdict;
use cnb_sbom_restore::Trust;
use serde::Serialize;

use crate::{Error, Image, Selection, COSIGN_SIGN_V1};

/// Every referrer of an image, decoded where it can be (nothing verified).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Listing {
    /// One entry per referrer (and per cosign 2 `.att` layer, BuildKit statement).
    pub entries: Vec<Listed>,
}

impl Listing {
    /// Entries in an attestation format this project reads that are not image signatures.
    pub fn attestations(&self) -> usize {
        self.entries
            .iter()
            .filter(|l| l.format.is_some() && !is_image_signature(l))
            .count()
    }

    /// cosign 3 image signatures (`sign/v1` statements).
    pub fn signatures(&self) -> usize {
        self.entries
            .iter()
            .filter(|l| is_image_signature(l))
            .count()
    }

    /// Referrers in no format this project reads (another tool's artifacts).
    pub fn others(&self) -> usize {
        self.entries.iter().filter(|l| l.format.is_none()).count()
    }
}

fn is_image_signature(listed: &Listed) -> bool {
    listed.predicate_type.as_deref() == Some(COSIGN_SIGN_V1)
}

/// Every referrer of `image`, with its attestation blob; a saved daemon image has none and is
/// refused.
async fn fetch_all(image: &Image) -> Result<Vec<Fetched>, Error> {
    image.with_manifest()?;
    image.fetch(&|_| true).await
}

/// Lists the attestations of `image` (nothing is verified: a view for people).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::{inspect, Image, OpenOptions};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let listing = cnb_attest::block_on(async {
///     inspect::list(&Image::open(&target, &OpenOptions::default()).await?).await
/// })??;
/// assert_eq!((listing.attestations(), listing.signatures()), (0, 0));
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn list(image: &Image) -> Result<Listing, Error> {
    Ok(Listing {
        entries: stored::list(&fetch_all(image).await?),
    })
}

/// Verifies every attestation of `image` in a format this project reads with `keys` (any one of
/// them verifying is enough): the blob digest, the signature over the DSSE envelope, the
/// statement's strict parse, its subjects (one is the image, every other a layer of it), the
/// agreement of the unsigned annotations with the signed statement and, for a buildpacks image,
/// the placement rules of [`crate::restore::restore`] (the same `place`): a statement a restore
/// would refuse fails here too, naming the rule. An empty result means there was nothing to verify.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::{inspect, Image, OpenOptions, SigningKey};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let key = SigningKey::generate()?;
/// let verdicts = cnb_attest::block_on(async {
///     inspect::verify(&Image::open(&target, &OpenOptions::default()).await?, &[key.verifying_key()]).await
/// })??;
/// assert!(verdicts.is_empty()); // nothing signed yet
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn verify(image: &Image, keys: &[VerifyingKey]) -> Result<Vec<Verdict>, Error> {
    Ok(verify_with(image, &VerifyRequest::new(keys.to_vec()))
        .await?
        .verdicts)
}

/// What [`verify_with`] checks: the keys, which attestations (the same selection `download` makes),
/// and the coverage gate.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The trusted keys: an attestation verifies if any of them verifies it.
    pub keys: Vec<VerifyingKey>,
    /// The keyless verifier (trusted root and identity policy) for attestations signed with a
    /// Sigstore certificate; `None` trusts none of them.
    pub keyless: Option<Arc<Verifier>>,
    /// Only attestations with this (signed) predicate type.
    pub predicate_type: Option<String>,
    /// Only this buildpack's attestations: chosen by the listing's annotations before anything is
    /// read, as `download` chooses; a verified SBOM counts only if its signed place is this
    /// buildpack's.
    pub selection: Selection,
    /// Also check, as `download --require-all-layers` does, that every launch layer of each
    /// SBOM-producing buildpack has a verified SBOM ([`VerifyReport::missing_layers`]) and, against
    /// the image's SBOM layer, one with the bytes of the layer's file
    /// ([`VerifyReport::differing_layers`]).
    pub require_all_layers: bool,
}

impl VerifyRequest {
    /// What this request trusts: its keys and its keyless verifier.
    pub fn trust(&self) -> Trust {
        Trust::new(&self.keys, self.keyless.as_ref())
    }

    /// Every attestation, with `keys`, no coverage gate.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        VerifyRequest {
            keys,
            keyless: None,
            predicate_type: None,
            selection: Selection::default(),
            require_all_layers: false,
        }
    }
}

/// What [`verify_with`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VerifyReport {
    /// One verdict per selected attestation (a failure names its rule).
    pub verdicts: Vec<Verdict>,
    /// With `require_all_layers`: the launch layers (or SBOM paths) without a verified SBOM.
    pub missing_layers: Vec<String>,
    /// With `require_all_layers`, against the image's SBOM layer: SBOM paths whose verified SBOM
    /// differs, byte for byte, from the layer's file there.
    pub differing_layers: Vec<String>,
    /// Referrers skipped as someone else's artifacts (in no format this project reads; most are
    /// known from the listing and never fetched): not verified, never a failure.
    pub others: usize,
}

/// [`verify`] under a [`VerifyRequest`]: the same rules, restricted to the attestations `download`
/// would consider for that selection, and (with `require_all_layers`) `download`'s coverage check.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::inspect::{verify_with, VerifyRequest};
/// use cnb_attest::{Image, OpenOptions, SigningKey};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let request = VerifyRequest::new(vec![SigningKey::generate()?.verifying_key()]);
/// let report = cnb_attest::block_on(async {
///     verify_with(&Image::open(&target, &OpenOptions::default()).await?, &request).await
/// })??;
/// assert!(report.verdicts.is_empty() && report.missing_layers.is_empty());
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn verify_with(image: &Image, request: &VerifyRequest) -> Result<VerifyReport, Error> {
    let manifest = image.with_manifest()?;
    let selection = &request.selection;
    let narrowed = selection.buildpack.is_some() || selection.format.is_some();
    let fetched: Vec<Fetched> = image.fetch(&|d| !narrowed || selection.wants(d)).await?;
    let others = fetched.iter().filter(|f| f.is_foreign()).count();
    let metadata = if request.require_all_layers || narrowed {
        Some(image.metadata()?)
    } else {
        image.metadata().ok()
    };
    let verdicts = verify_and_place(manifest, metadata.as_ref(), &fetched, &request.trust())
        .into_iter()
        .filter(|(verdict, place)| {
            let predicate_ok = request
                .predicate_type
                .as_deref()
                .is_none_or(|p| verdict.listed.predicate_type.as_deref() == Some(p));
            let place_ok = !narrowed
                || match place {
                    Some(Place::At { path, .. }) => selection.accepts(path),
                    Some(_) => false,
                    // Failed: reported, as download reports it.
                    None => true,
                };
            predicate_ok && place_ok
        })
        .map(|(verdict, _)| verdict)
        .collect();
    let mut missing_layers = Vec::new();
    let mut differing_layers = Vec::new();
    if let (true, Some(metadata)) = (request.require_all_layers, metadata.as_ref()) {
        let plan = plan_restore(
            manifest,
            metadata,
            &fetched,
            &request.trust(),
            selection,
            Policy::All,
            false,
        );
        let coverage = crate::restore::missing(image, metadata, &plan, selection).await?;
        missing_layers = coverage.missing;
        differing_layers = coverage.differing;
    }
    Ok(VerifyReport {
        verdicts,
        missing_layers,
        differing_layers,
        others,
    })
}

/// Verifies cosign 2's image signatures of `image` (the simple-signing layers of its
/// `sha256-<hex>.sig` tag) with any of `keys`: the signature over the payload, then the signed
/// payload must name this image's digest. Layouts have none (cosign 3's `sign/v1` bundles are
/// attestations, verified by [`verify`]).
pub async fn verify_image_signatures(
    image: &Image,
    keys: &[VerifyingKey],
) -> Result<Vec<SignatureVerdict>, Error> {
    let manifest = image.with_manifest()?;
    let signatures = image
        .source
        .simple_signatures()
        .await
        .map_err(|source| Error::Read {
            image: image.name().to_string(),
            source,
        })?;
    Ok(signatures
        .iter()
        .map(|s| simple_signing::verify(manifest, s, keys))
        .collect())
}

/// One subject's part of [`verify_platforms`]: a platform manifest, or the image index itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubjectReport {
    /// The platform (`os/arch[/variant]`); `None` for the index itself or an image not reached
    /// through an index.
    pub platform: Option<crate::PlatformSpec>,
    /// Whether this is the image index itself (its signature) rather than a platform manifest.
    pub index: bool,
    /// The manifest (or index) digest.
    pub digest: String,
    /// The image's name, for messages.
    pub image: String,
    /// What [`verify_with`] found.
    pub report: VerifyReport,
    /// cosign 2 image signatures ([`verify_image_signatures`]).
    pub signatures: Vec<SignatureVerdict>,
}

impl SubjectReport {
    /// Verified attestations whose predicate is an SBOM (CycloneDX, SPDX, Syft): image
    /// signatures and other predicates (a provenance signed with the same key) do not count.
    pub fn verified_sboms(&self) -> usize {
        self.report
            .verdicts
            .iter()
            .filter(|v| {
                v.ok()
                    && v.listed
                        .predicate_type
                        .as_deref()
                        .and_then(cnb_sbom_discovery::SbomFormat::from_predicate_type)
                        .is_some()
            })
            .count()
    }
}

/// What [`verify_platforms`] found: one report per subject, the index's first when it was opened
/// whole.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlatformsReport {
    /// The subjects: the index (when opened whole), then each platform in index order.
    pub subjects: Vec<SubjectReport>,
    /// The platforms with no verified SBOM attestation (what `--require-all-platforms` fails on),
    /// each with its manifest digest.
    pub unverified_platforms: Vec<crate::IndexPlatform>,
}

/// Verifies every image of `platforms` (and the index itself, when it was opened whole) under
/// `request`, with `keys` for cosign 2 image signatures. A platform with no verified SBOM is
/// named in [`PlatformsReport::unverified_platforms`].
pub async fn verify_platforms(
    platforms: &crate::Platforms,
    request: &VerifyRequest,
) -> Result<PlatformsReport, Error> {
    let mut subjects = Vec::new();
    if let Some(index) = &platforms.index_image {
        // The index has no label and no layers: its attestations are checked for binding and
        // signature only.
        let plain = VerifyRequest {
            require_all_layers: false,
            selection: Selection::default(),
            ..request.clone()
        };
        subjects.push(subject_report(index, None, true, &plain).await?);
    }
    for image in &platforms.images {
        subjects.push(subject_report(image, image.platform().cloned(), false, request).await?);
    }
    let unverified_platforms = subjects
        .iter()
        .filter(|s| !s.index && s.verified_sboms() == 0)
        .filter_map(|s| {
            Some(crate::IndexPlatform {
                platform: s.platform.clone(),
                digest: s.digest.parse().ok()?,
            })
        })
        .collect();
    Ok(PlatformsReport {
        subjects,
        unverified_platforms,
    })
}

async fn subject_report(
    image: &Image,
    platform: Option<crate::PlatformSpec>,
    index: bool,
    request: &VerifyRequest,
) -> Result<SubjectReport, Error> {
    Ok(SubjectReport {
        platform,
        index,
        digest: image.digest().map(|d| d.to_string()).unwrap_or_default(),
        image: image.name().to_string(),
        report: verify_with(image, request).await?,
        signatures: verify_image_signatures(image, &request.keys).await?,
    })
}

/// One subject's listing in [`list_platforms`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubjectListing {
    /// The platform; `None` for the index itself.
    pub platform: Option<crate::PlatformSpec>,
    /// Whether this is the image index itself.
    pub index: bool,
    /// The manifest (or index) digest.
    pub digest: String,
    /// The image's name.
    pub image: String,
    /// Its referrers.
    pub listing: Listing,
}

/// Lists the attestations of every image of `platforms` (the index's own first, when it was
/// opened whole).
pub async fn list_platforms(platforms: &crate::Platforms) -> Result<Vec<SubjectListing>, Error> {
    let mut out = Vec::new();
    let all = platforms
        .index_image
        .iter()
        .map(|i| (i, true))
        .chain(platforms.images.iter().map(|i| (i, false)));
    for (image, index) in all {
        out.push(SubjectListing {
            platform: if index {
                None
            } else {
                image.platform().cloned()
            },
            index,
            digest: image.digest().map(|d| d.to_string()).unwrap_or_default(),
            image: image.name().to_string(),
            listing: list(image).await?,
        });
    }
    Ok(out)
}
