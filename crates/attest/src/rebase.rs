//! Rebase: carry an image's verified attestations over to its rebased successor.
//!
//! The lifecycle's rebaser swaps an app image's run-image layers and keeps every layer above them
//! (app, buildpack, launcher, config, process-types, SBOM): the layers keep their diffIDs, the
//! manifest digest changes, and every referrer of the old digest is left behind. [`rebase`]
//! re-issues them for the new digest:
//!
//! 1. both images are read, and the new one must be a rebase of the old one: every layer the
//!    old image's `io.buildpacks.lifecycle.metadata` label records above the run image has the
//!    same diffID in the new label and is in the new `rootfs.diff_ids` ([`Refusal::NotARebase`]
//!    otherwise, before anything is written);
//! 2. the old image's attestations are verified with the verification keys and the placement
//!    rules of [`crate::inspect::verify`] (what does not verify is [`DropReason::Unverified`]; when
//!    nothing verifies, [`Refusal::NothingVerified`] and nothing is written);
//! 3. each verified statement whose layer subjects are all layers of the new image is re-issued:
//!    the same predicate bytes, the same layer subjects, the image subject with the new digest,
//!    signed with the signing key and attached as a referrer of the new image, annotated with
//!    [`REPLACES`] (the old referrer manifest's digest) and [`PREVIOUS_IMAGE`] (the old image's
//!    digest). A statement naming a layer that is gone (the old run image's) is
//!    [`DropReason::LayerGone`];
//! 4. the platform's attestations (a signer configuration for the new image, e.g. the new run
//!    image's SBOM) are added, and the new image is signed as the signer signs it.
//!
//! Everything is deterministic (RFC 6979 signatures, fixed serialisation), so a second run finds
//! every referrer already present. The old image's referrers are left as they are, unless
//! [`RebaseRequest::prune_previous`] asks to delete the verified ones once the new referrers are
//! discoverable (a registry `DELETE` where it is allowed, then the deleted ones unlisted from the
//! `sha256-<hex>` index without touching other writers' entries; an OCI layout unlists them from
//! `index.json`).
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
//! # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
//! use cnb_attest::keys::KeySource;
//! use cnb_attest::rebase::{rebase, RebaseRequest, Refusal};
//! use cnb_attest::{Error, Image, OpenOptions, SignOptions, SigningKey};
//! let target = format!("oci:{}:latest", dir.path().display());
//! let key = SigningKey::generate()?;
//! let request = RebaseRequest {
//!     verify_keys: vec![key.verifying_key()],
//!     verify_keyless: None,
//!     key: KeySource::Key(Box::new(key)),
//!     platform: None,
//!     options: SignOptions::default(),
//!     progress: false,
//!     prune_previous: false,
//! };
//! let refused = cnb_attest::block_on(async {
//!     let image = Image::open(&target, &OpenOptions::default()).await?;
//!     rebase(&image, &image, &request).await
//! })?;
//! assert!(matches!(refused, Err(Error::Rebase(Refusal::SameImage { .. }))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cnb_attestation_config::{
    AllowedRoots, AttestationSpec, ImageSection, PredicateSource, PredicateSpec, SignerConfig,
    SubjectSpec,
};
use cnb_dsse::VerifyingKey;
use cnb_referrers::layout::Image as StoredImage;
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_restore::inspect::{annotation_of, verify_each, Fetched, Listed};
use cnb_sbom_restore::select::{diff_id_of, place};
use cnb_sbom_restore::source::ImageSource;
use cnb_sbom_restore::Rule;
use cnb_signing::{AttestationOutcome, SignOptions, SignReport, COSIGN_SIGN_V1};
use serde::Serialize;

use crate::keys::KeySource;
use crate::{Error, Image};

/// Annotation on a re-issued referrer manifest: the digest of the old image's referrer manifest
/// whose statement it re-issues.
pub const REPLACES: &str = "dev.cnb-attest.replaces";

/// Annotation on a re-issued referrer manifest: the digest of the image before the rebase.
pub const PREVIOUS_IMAGE: &str = "dev.cnb-attest.previous-image";

/// Prefix of the annotations carried from an old referrer to its re-issue (the RFC's
/// configuration annotations: buildpack ID, layer name, SBOM media type and digest, ...). The
/// storage formats' own annotations are written anew; others are not carried.
const CARRIED_PREFIX: &str = "io.buildpacks.";

/// A rebase run.
#[derive(Debug)]
pub struct RebaseRequest {
    /// The keys the previous image's attestations are verified with (any one verifying is enough).
    pub verify_keys: Vec<VerifyingKey>,
    /// The keyless verifier for the previous image's keyless attestations; `None` trusts none.
    pub verify_keyless: Option<std::sync::Arc<cnb_keyless::verify::Verifier>>,
    /// The key the re-issued attestations, the platform's and the image signature are signed with.
    pub key: KeySource,
    /// The platform's attestations for the new image (e.g. the new run image's SBOM).
    pub platform: Option<PlatformAttestations>,
    /// Storage formats, statement version and image signature of what is written.
    pub options: SignOptions,
    /// Show upload progress on a terminal.
    pub progress: bool,
    /// After the new image's referrers are stored and discoverable, delete the previous image's
    /// verified referrers (carried or dropped; unverified and foreign ones stay) where the store
    /// allows it, and unlist them from its tag-schema index.
    pub prune_previous: bool,
}

/// A signer configuration (the RFC's TOML) of attestations the platform adds to the new image.
/// Its `[image] reference` must be pinned to the new image's digest.
#[derive(Debug, Clone)]
pub struct PlatformAttestations {
    /// The configuration file.
    pub path: PathBuf,
    /// Directories its predicate `uri`s may point into (default: the configuration's directory).
    pub allow_roots: Vec<PathBuf>,
}

/// Why the rebase was refused. Nothing was written.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "refusal", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Refusal {
    /// The previous and the new image are the same manifest: there is nothing to rebase.
    #[error(
        "the previous image and the new image are the same manifest ({digest}): nothing to \
         rebase (name the previous image by digest: after a rebase its tag names the new image)"
    )]
    SameImage {
        /// The manifest digest.
        digest: String,
    },
    /// The new image is not a rebase of the previous one: a layer the previous image's label
    /// records above the run image differs or is missing.
    #[error(
        "the new image is not a rebase of the previous one: {layer} is {} in the previous image \
         but {} in the new one",
        previous.as_deref().unwrap_or("absent"),
        new.as_deref().unwrap_or("absent")
    )]
    NotARebase {
        /// Which layer, as the label names it (`app[0]`, `<buildpack>:<layer>`, `launcher`, ...).
        layer: String,
        /// Its diffID in the previous image.
        previous: Option<String>,
        /// Its diffID in the new image (`None`: not recorded, or not a layer of the new image).
        new: Option<String>,
    },
    /// The previous image has attestations, but none verified with the given keys (a wrong key,
    /// or none of them trusted): nothing would be carried.
    #[error(
        "none of the previous image's {attestations} attestation(s) verified with the given \
         key(s) (first failure: {first}); nothing was carried or written"
    )]
    NothingVerified {
        /// How many attestations were checked.
        attestations: usize,
        /// The first failure, for the message.
        first: String,
    },
}

/// What [`rebase`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RebaseReport {
    /// The image before the rebase, as named.
    pub previous_image: String,
    /// Its manifest digest.
    pub previous_digest: String,
    /// The rebased image, as named.
    pub image: String,
    /// Its manifest digest (the re-issued attestations' image subject).
    pub image_digest: String,
    /// Attestations re-issued for the new image.
    pub carried: Vec<Carried>,
    /// Attestations of the previous image not carried, each with its reason.
    pub dropped: Vec<Dropped>,
    /// The platform's attestations added to the new image.
    pub added: Vec<Added>,
    /// The signing run on the new image (every referrer stored, the image signature included).
    pub signed: SignReport,
    /// With [`RebaseRequest::prune_previous`]: what was removed from the previous image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<Pruned>,
}

/// The previous image's referrers removed by [`RebaseRequest::prune_previous`].
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pruned {
    /// Referrer manifests deleted (registry) or unlisted from `index.json` (layout).
    pub deleted: Vec<String>,
    /// Referrer manifests the registry does not allow to delete: kept, and kept listed.
    pub not_deletable: Vec<String>,
    /// Registry only: writes of the previous image's `sha256-<hex>` index.
    pub index_writes: u32,
    /// Registry only: referrer manifests whose `DELETE` failed (kept, and kept listed), with the
    /// error.
    pub failed: Vec<PruneFailed>,
    /// Registry only: why the deleted referrers could not be unlisted from the previous image's
    /// `sha256-<hex>` index, when they could not.
    pub unlist_error: Option<String>,
}

/// A referrer of the previous image whose `DELETE` failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PruneFailed {
    /// The referrer manifest's digest.
    pub digest: String,
    /// Why.
    pub error: String,
}

impl Pruned {
    /// Whether every referrer asked for was deleted and unlisted, or is not deletable there.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.unlist_error.is_none()
    }
}

impl RebaseReport {
    /// Referrers newly stored by this run (0 on a re-run).
    pub fn pushed(&self) -> usize {
        self.signed.pushed
    }
}

/// One attestation re-issued for the new image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Carried {
    /// The previous image's referrer manifest it replaces ([`REPLACES`]).
    pub replaces: String,
    /// The signed predicate type.
    pub predicate_type: String,
    /// The buildpack ID annotation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildpack: Option<String>,
    /// The layer name annotation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The re-issued referrer(s), one per storage format.
    pub reissued: Vec<AttestationOutcome>,
}

/// One attestation of the previous image that was not carried.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Dropped {
    /// Its referrer manifest digest.
    pub manifest_digest: String,
    /// Its predicate type (signed when it verified, else as annotated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The buildpack ID annotation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildpack: Option<String>,
    /// The layer name annotation, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Why.
    #[serde(flatten)]
    pub reason: DropReason,
}

/// Why an attestation was not carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DropReason {
    /// A layer subject is not a layer of the new image: the statement described the old run
    /// image.
    #[serde(rename_all = "kebab-case")]
    LayerGone {
        /// The subject's name.
        subject: String,
        /// The subject's digest.
        digest: String,
    },
    /// It did not verify with the given keys or broke a rule; nothing unverified is carried.
    Unverified {
        /// The rule that failed.
        rule: Rule,
        /// Why.
        message: String,
    },
    /// The previous image's own signature: the new image is signed anew.
    ImageSignature,
    /// It verified but cannot be re-issued as a statement (a predicate that is not UTF-8 JSON).
    NotReissuable {
        /// Why.
        message: String,
    },
    /// The same signed statement as another referrer (stored in another format, or twice): it is
    /// carried once, as the re-issue of `carried_as`, so attestations do not multiply with each
    /// rebase.
    #[serde(rename_all = "kebab-case")]
    SameStatement {
        /// The referrer manifest whose re-issue carries the statement.
        carried_as: String,
    },
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::LayerGone { subject, digest } => write!(
                f,
                "its subject {subject} ({digest}) is not a layer of the new image (it described \
                 the previous run image)"
            ),
            DropReason::Unverified { rule, message } => {
                write!(f, "not verified ({}): {message}", rule_name(*rule))
            }
            DropReason::ImageSignature => {
                f.write_str("the previous image's signature; the new image is signed anew")
            }
            DropReason::NotReissuable { message } => write!(f, "cannot be re-issued: {message}"),
            DropReason::SameStatement { carried_as } => write!(
                f,
                "the same signed statement as {carried_as}, which is re-issued once for both"
            ),
        }
    }
}

fn rule_name(rule: Rule) -> String {
    serde_json::to_value(rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{rule:?}"))
}

/// One platform attestation added to the new image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Added {
    /// Its predicate type.
    pub predicate_type: String,
    /// Its referrer(s), one per storage format.
    pub stored: Vec<AttestationOutcome>,
}

/// A verified statement to re-issue: its old referrer and the new attestation.
struct Reissue {
    listed: Listed,
    spec: AttestationSpec,
}

/// Carries `previous`'s verified attestations over to `new`, its rebase; see the [module
/// docs](self). Refusals ([`Error::Rebase`]) and every error before signing leave both images as
/// they were.
pub async fn rebase(
    previous: &Image,
    new: &Image,
    request: &RebaseRequest,
) -> Result<RebaseReport, Error> {
    let old = previous.with_manifest()?;
    let current = new.with_manifest()?;
    if old.descriptor.digest == current.descriptor.digest {
        return Err(Error::Rebase(Refusal::SameImage {
            digest: old.descriptor.digest.to_string(),
        }));
    }
    let old_label = previous.metadata()?;
    let new_label = new.metadata()?;
    check_rebase(&old_label, &new_label, current)?;
    if matches!(new.source, ImageSource::Layout { .. }) {
        request.options.check_layout_target()?;
    }
    let platform = match &request.platform {
        Some(p) => Some(platform_config(p, current)?),
        None => None,
    };

    let fetched: Vec<Fetched> = previous.fetch(&|_| true).await?;
    let mut reissues = Vec::new();
    let mut dropped = Vec::new();
    let mut checked = 0;
    let mut first_failure = None;
    for (mut verdict, statement) in verify_each(
        old,
        &fetched,
        &cnb_sbom_restore::Trust::new(&request.verify_keys, request.verify_keyless.as_ref()),
    ) {
        checked += 1;
        // The placement rules of verify and restore: a statement they refuse is not carried
        // either.
        let statement = match statement.filter(|_| verdict.ok()) {
            Some(verified) => {
                match place(
                    &verified.statement,
                    old,
                    &old_label,
                    verdict.listed.buildpack.as_deref(),
                )
                // A predicate read through a temporary file is read into memory to be re-signed.
                .and_then(|_| verified.into_statement())
                {
                    Ok(statement) => Some(statement),
                    Err(failure) => {
                        verdict.failure = Some(failure);
                        None
                    }
                }
            }
            None => None,
        };
        let (Some(statement), None) = (statement, &verdict.failure) else {
            let reason = unverified(&verdict);
            first_failure.get_or_insert_with(|| format!("{}: {reason}", verdict.name()));
            dropped.push(drop_entry(&verdict.listed, reason));
            continue;
        };
        if statement.predicate_type() == COSIGN_SIGN_V1 {
            dropped.push(drop_entry(&verdict.listed, DropReason::ImageSignature));
            continue;
        }
        let manifest = fetched
            .iter()
            .find(|f| f.descriptor.digest.as_str() == verdict.listed.manifest_digest)
            .and_then(|f| f.manifest.as_ref().ok());
        match reissue_spec(&statement, &verdict.listed, manifest, old, current)
            .and_then(|spec| reissuable(spec, current, &request.options))
        {
            Ok(spec) => {
                // One statement stored several times (in two formats, or pushed twice) is
                // re-issued once: otherwise each rebase would multiply it.
                let same = reissues.iter().find(|r: &&Reissue| {
                    r.spec.predicate == spec.predicate && r.spec.subjects == spec.subjects
                });
                match same {
                    Some(first) => {
                        let reason = DropReason::SameStatement {
                            carried_as: first.listed.manifest_digest.clone(),
                        };
                        dropped.push(drop_entry(&verdict.listed, reason));
                    }
                    None => reissues.push(Reissue {
                        listed: verdict.listed,
                        spec,
                    }),
                }
            }
            Err(reason) => dropped.push(drop_entry(&verdict.listed, reason)),
        }
    }
    let verified_attestations = reissues.len()
        + dropped
            .iter()
            .filter(|d| {
                matches!(
                    d.reason,
                    DropReason::LayerGone { .. }
                        | DropReason::NotReissuable { .. }
                        | DropReason::SameStatement { .. }
                        // The previous image's signature verified too: the key is right.
                        | DropReason::ImageSignature
                )
            })
            .count();
    if verified_attestations == 0 {
        if let Some(first) = first_failure {
            return Err(Error::Rebase(Refusal::NothingVerified {
                attestations: checked,
                first,
            }));
        }
    }

    // One signer configuration for the new image: the re-issues first, then the platform's.
    let carried_count = reissues.len();
    let (platform_specs, roots) = match platform {
        Some((config, roots)) => (config.attestations, roots),
        None => (Vec::new(), AllowedRoots::default()),
    };
    let config = SignerConfig {
        image: ImageSection {
            reference: format!("{}@{}", subject_repository(new), current.descriptor.digest),
        },
        attestations: reissues
            .iter()
            .map(|r| r.spec.clone())
            .chain(platform_specs.iter().cloned())
            .collect(),
    };
    let signed = sign_new(new, current, &config, &roots, request).await?;
    // Prune only what was verified (carried or dropped as superseded), and only once the new
    // referrers are where readers look: the old ones are never the only copy lost.
    let pruned = if request.prune_previous && signed.all_discoverable() {
        let ours: Vec<cnb_referrers::Digest> = fetched
            .iter()
            .filter(|f| f.source == "referrer")
            .map(|f| &f.descriptor.digest)
            .filter(|d| {
                reissues
                    .iter()
                    .any(|r| r.listed.manifest_digest == d.as_str())
                    || dropped.iter().any(|x| {
                        // Never what verified but was not carried (`NotReissuable`): the old
                        // referrer is its only signed copy.
                        x.manifest_digest == d.as_str()
                            && matches!(
                                x.reason,
                                DropReason::ImageSignature
                                    | DropReason::LayerGone { .. }
                                    | DropReason::SameStatement { .. }
                            )
                    })
            })
            .cloned()
            .collect();
        Some(prune(previous, old, &ours, request.progress).await?)
    } else {
        None
    };

    let outcomes = |index: usize| -> Vec<AttestationOutcome> {
        signed
            .attestations
            .iter()
            .filter(|a| a.index == index)
            .cloned()
            .collect()
    };
    let carried = reissues
        .iter()
        .enumerate()
        .map(|(i, r)| Carried {
            replaces: r.listed.manifest_digest.clone(),
            predicate_type: r.spec.predicate.predicate_type.clone(),
            buildpack: r.listed.buildpack.clone(),
            layer: r.listed.layer.clone(),
            reissued: outcomes(i + 1),
        })
        .collect();
    let added = platform_specs
        .iter()
        .enumerate()
        .map(|(i, spec)| Added {
            predicate_type: spec.predicate.predicate_type.clone(),
            stored: outcomes(carried_count + i + 1),
        })
        .collect();
    Ok(RebaseReport {
        previous_image: previous.name().to_string(),
        previous_digest: old.descriptor.digest.to_string(),
        image: new.name().to_string(),
        image_digest: current.descriptor.digest.to_string(),
        carried,
        dropped,
        added,
        signed,
        pruned,
    })
}

/// Removes `digests`, referrers of `old`, from the previous image's store.
async fn prune(
    previous: &Image,
    old: &StoredImage,
    digests: &[cnb_referrers::Digest],
    progress: bool,
) -> Result<Pruned, Error> {
    let subject = &old.descriptor.digest;
    match &previous.source {
        ImageSource::Layout { layout, .. } => Ok(Pruned {
            deleted: layout
                .remove_referrers(subject, digests)
                .map_err(|e| Error::BadImage(e.to_string()))?
                .iter()
                .map(|d| d.to_string())
                .collect(),
            ..Pruned::default()
        }),
        #[cfg(feature = "registry")]
        ImageSource::Registry {
            client, reference, ..
        } => {
            let report = cnb_registry::prune::prune(
                client,
                &reference.repository,
                subject,
                digests,
                &crate::sign::attach_options(progress),
            )
            .await;
            Ok(Pruned {
                deleted: report.deleted,
                not_deletable: report.not_deletable,
                index_writes: report.index_writes,
                failed: report
                    .failed
                    .into_iter()
                    .map(|f| PruneFailed {
                        digest: f.digest,
                        error: f.error,
                    })
                    .collect(),
                unlist_error: report.unlist_error,
            })
        }
        _ => {
            let _ = progress;
            Err(Error::InvalidRequest(format!(
                "{}: only referrers in a registry or an OCI layout can be pruned",
                previous.name()
            )))
        }
    }
}

/// The rebased image's reference from the lifecycle rebaser's `report.toml`: the repository of its
/// first tag, pinned to its `[image] digest`.
pub fn rebased_image_from_report(path: &Path) -> Result<String, Error> {
    use cnb_sbom_discovery::platform::Report;
    let report = Report::from_path(path)?;
    let digest = report.image.digest.ok_or_else(|| {
        Error::InvalidRequest(format!(
            "{}: no [image] digest (the rebaser writes one for registry images)",
            path.display()
        ))
    })?;
    let tag = report
        .image
        .tags
        .first()
        .ok_or_else(|| Error::InvalidRequest(format!("{}: no [image] tags", path.display())))?;
    let reference = cnb_referrers::reference::ImageRef::parse(tag)
        .map_err(|e| Error::InvalidRequest(format!("{}: {e}", path.display())))?;
    Ok(format!("{}@{digest}", reference.repository))
}

/// Every layer the label records above the run image, by the name the label gives it.
fn preserved_layers(label: &LifecycleMetadata) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, layer) in label.app.iter().enumerate() {
        out.insert(format!("app[{i}]"), layer.sha.clone());
    }
    for buildpack in &label.buildpacks {
        for (name, layer) in &buildpack.layers {
            if !layer.sha.is_empty() {
                out.insert(format!("{}:{name}", buildpack.key), layer.sha.clone());
            }
        }
    }
    for (name, layer) in [
        ("launcher", &label.launcher),
        ("config", &label.config),
        ("process-types", &label.process_types),
        ("sbom", &label.sbom),
    ] {
        if let Some(layer) = layer.as_ref().filter(|l| !l.sha.is_empty()) {
            out.insert(name.to_string(), layer.sha.clone());
        }
    }
    out
}

/// The new image is a rebase of the old one: every layer the old label records above the run
/// image is recorded with the same diffID by the new label, and is a layer of the new image.
fn check_rebase(
    old: &LifecycleMetadata,
    new: &LifecycleMetadata,
    current: &StoredImage,
) -> Result<(), Error> {
    let before = preserved_layers(old);
    let after = preserved_layers(new);
    for (layer, diff_id) in &before {
        let recorded = after.get(layer);
        let present = recorded
            .filter(|d| *d == diff_id && current.config.diff_ids.contains(d))
            .is_some();
        if !present {
            return Err(Error::Rebase(Refusal::NotARebase {
                layer: layer.clone(),
                previous: Some(diff_id.clone()),
                new: recorded
                    .filter(|d| current.config.diff_ids.contains(d))
                    .cloned(),
            }));
        }
    }
    if let Some((layer, diff_id)) = after.iter().find(|(l, _)| !before.contains_key(*l)) {
        return Err(Error::Rebase(Refusal::NotARebase {
            layer: layer.clone(),
            previous: None,
            new: Some(diff_id.clone()),
        }));
    }
    Ok(())
}

/// The platform's configuration, checked against the new image before any key is loaded.
fn platform_config(
    platform: &PlatformAttestations,
    current: &StoredImage,
) -> Result<(SignerConfig, AllowedRoots), Error> {
    let (config, roots) = crate::sign::load_config(&platform.path, &platform.allow_roots)?;
    let configured = config.image.digest()?;
    if configured != current.descriptor.digest {
        return Err(Error::ConfigMismatch(format!(
            "{}: the platform's attestations are for image {configured}, but the rebased image \
             is {}",
            platform.path.display(),
            current.descriptor.digest
        )));
    }
    Ok((config, roots))
}

fn unverified(verdict: &cnb_sbom_restore::inspect::Verdict) -> DropReason {
    match &verdict.failure {
        Some(failure) => DropReason::Unverified {
            rule: failure.rule,
            message: failure.message.clone(),
        },
        None => DropReason::NotReissuable {
            message: "no verified statement".into(),
        },
    }
}

fn drop_entry(listed: &Listed, reason: DropReason) -> Dropped {
    Dropped {
        manifest_digest: listed.manifest_digest.clone(),
        predicate_type: listed.predicate_type.clone(),
        buildpack: listed.buildpack.clone(),
        layer: listed.layer.clone(),
        reason,
    }
}

/// The re-issue of a verified statement for `current`: the same predicate bytes, the image subject
/// moved to the new digest, every layer subject kept (each must be a layer of `current`), the
/// `io.buildpacks.*` annotations of the old referrer, and the lineage annotations.
fn reissue_spec(
    statement: &cnb_intoto::Statement,
    listed: &Listed,
    manifest: Option<&cnb_referrers::ImageManifest>,
    old: &StoredImage,
    current: &StoredImage,
) -> Result<AttestationSpec, DropReason> {
    let not_reissuable = |message: String| DropReason::NotReissuable { message };
    let mut subjects = Vec::new();
    for subject in statement.subjects() {
        let Some(hex) = subject.digest.get("sha256") else {
            return Err(not_reissuable(format!(
                "subject {} has no sha256 digest",
                subject.name
            )));
        };
        let digest = if *hex == old.descriptor.digest.hex() {
            current.descriptor.digest.clone()
        } else {
            if diff_id_of(current, hex).is_none() {
                return Err(DropReason::LayerGone {
                    subject: subject.name.clone(),
                    digest: format!("sha256:{hex}"),
                });
            }
            format!("sha256:{hex}")
                .parse()
                .map_err(|e| not_reissuable(format!("subject {}: {e}", subject.name)))?
        };
        subjects.push(SubjectSpec {
            name: subject.name.clone(),
            digest,
        });
    }
    let predicate = String::from_utf8(statement.predicate().to_vec())
        .map_err(|e| not_reissuable(format!("the predicate is not UTF-8: {e}")))?;
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    if let Some(manifest) = manifest {
        let names = manifest
            .annotations
            .iter()
            .flatten()
            .chain(
                manifest
                    .layers
                    .first()
                    .and_then(|l| l.annotations.as_ref())
                    .into_iter()
                    .flatten(),
            )
            .map(|(name, _)| name.clone())
            .filter(|name| name.starts_with(CARRIED_PREFIX))
            .collect::<Vec<_>>();
        for name in names {
            if let Some(value) = annotation_of(manifest, &name) {
                annotations.insert(name, value.to_string());
            }
        }
    }
    annotations.insert(REPLACES.to_string(), listed.manifest_digest.clone());
    annotations.insert(
        PREVIOUS_IMAGE.to_string(),
        old.descriptor.digest.to_string(),
    );
    Ok(AttestationSpec {
        predicate: PredicateSpec {
            predicate_type: statement.predicate_type().to_string(),
            source: PredicateSource::Value(predicate),
        },
        subjects,
        annotations: annotations.into_iter().collect(),
    })
}

/// `spec` when the signer will take it: the checks of a signer configuration (annotation names,
/// predicate JSON, SBOM format and digest, size) applied to it alone, so one old attestation the
/// signer would refuse is dropped and reported instead of failing the whole rebase.
fn reissuable(
    spec: AttestationSpec,
    current: &StoredImage,
    options: &SignOptions,
) -> Result<AttestationSpec, DropReason> {
    let alone = SignerConfig {
        image: ImageSection {
            reference: format!("rebased@{}", current.descriptor.digest),
        },
        attestations: vec![spec],
    };
    let none = AllowedRoots::default();
    alone
        .validate(&none)
        .and_then(|()| alone.attestations[0].read_predicate(&none, options.max_predicate_size))
        .map_err(|e| DropReason::NotReissuable {
            message: e.to_string(),
        })?;
    let [spec] = <[AttestationSpec; 1]>::try_from(alone.attestations).map_err(|_| {
        DropReason::NotReissuable {
            message: "internal: one attestation expected".into(),
        }
    })?;
    Ok(spec)
}

/// The name part of the new image's signer configuration reference.
fn subject_repository(image: &Image) -> String {
    match &image.source {
        #[cfg(feature = "registry")]
        ImageSource::Registry { reference, .. } => reference.repository.to_string(),
        _ => match image.layout() {
            Some(location) => format!(
                "oci:{}",
                std::fs::canonicalize(&location.dir)
                    .unwrap_or_else(|_| location.dir.clone())
                    .display()
            ),
            None => image.name().to_string(),
        },
    }
}

/// Signs `config` onto the new image, as the signer does (the image signature included).
async fn sign_new(
    new: &Image,
    current: &StoredImage,
    config: &SignerConfig,
    roots: &AllowedRoots,
    request: &RebaseRequest,
) -> Result<SignReport, Error> {
    let run = crate::keys::RunSigner::open(&request.key).await?;
    let key = run.key();
    let options = run
        .options_for(
            &current.descriptor,
            new.name(),
            config,
            roots,
            &request.options,
        )
        .await?;
    match &new.source {
        ImageSource::Layout { layout, .. } => Ok(cnb_signing::sign_layout(
            layout, current, config, roots, key, &options,
        )?),
        #[cfg(feature = "registry")]
        ImageSource::Registry {
            reference, client, ..
        } => Ok(cnb_signing::sign_registry(
            client,
            reference,
            &current.descriptor,
            Some(&current.config.diff_ids),
            config,
            roots,
            key,
            &options,
            &crate::sign::attach_options(request.progress),
        )
        .await?),
        ImageSource::Archive { .. } => Err(Error::InvalidRequest(
            "a saved daemon image cannot carry attestations; rebase in a registry or an OCI layout"
                .into(),
        )),
        #[cfg(not(feature = "registry"))]
        #[allow(unreachable_patterns)]
        _ => Err(Error::RegistryUnsupported(new.name().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnb_referrers::manifest::{Descriptor, ImageConfig, ImageManifest};

    fn image(bytes: &[u8]) -> StoredImage {
        StoredImage {
            descriptor: Descriptor::for_bytes(cnb_referrers::manifest::OCI_MANIFEST, bytes),
            manifest: ImageManifest {
                schema_version: 2,
                media_type: None,
                artifact_type: None,
                config: Descriptor::empty(),
                layers: Vec::new(),
                subject: None,
                annotations: None,
            },
            config: ImageConfig {
                labels: BTreeMap::new(),
                diff_ids: Vec::new(),
                platform: None,
            },
            buildkit: Vec::new(),
            index: None,
        }
    }

    fn spec(annotation: &str, predicate: &str) -> AttestationSpec {
        AttestationSpec {
            predicate: PredicateSpec {
                predicate_type: "https://cyclonedx.org/bom".into(),
                source: PredicateSource::Value(predicate.into()),
            },
            subjects: vec![SubjectSpec {
                name: "registry.example/app".into(),
                digest: image(b"new").descriptor.digest,
            }],
            annotations: vec![(annotation.into(), "x".into())],
        }
    }

    #[test]
    fn an_attestation_the_signer_would_refuse_is_dropped_not_fatal() {
        let current = image(b"new");
        let options = SignOptions::default();
        let cdx = r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#;
        assert!(reissuable(spec(REPLACES, cdx), &current, &options).is_ok());
        // A secret-looking annotation name (carried from a hostile referrer) and a predicate that
        // is not the format its type says are each dropped with the signer's reason.
        for (annotation, predicate, says) in [
            ("io.buildpacks.token", cdx, "secret-looking"),
            (REPLACES, r#"{"spdxVersion":"SPDX-2.3"}"#, "CycloneDX"),
        ] {
            match reissuable(spec(annotation, predicate), &current, &options) {
                Err(DropReason::NotReissuable { message }) => {
                    assert!(message.contains(says), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
