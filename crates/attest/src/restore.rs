//! Restoring an image's SBOM files from its verified attestations: the one policy behind
//! `cnb-attest download` (the verified `pack sbom download`) and the lifecycle `analyzer`.
//!
//! Strict on trust: only verified bytes are written (or, when the request allows it and the image
//! has no SBOM attestation at all, its digest-checked but unsigned SBOM layer). An attestation no
//! given key verifies is reported and left out; it never blocks restoring what did verify. A
//! verified attestation that breaks a rule (subject binding, foreign layer, two SBOMs for one place)
//! refuses the whole restore (fail closed). Paths are built from signed data and the image's label
//! (`cnb_sbom_restore::SbomPath`); only a statement whose one subject is the image is placed by the
//! unsigned buildpack annotation, and that placement is reported
//! ([`RestoreReport::unsigned_placement`]) and can be refused
//! ([`RestoreRequest::signed_placement_only`]). Platform SBOMs that belong to no buildpack are
//! verified, noted and not restored.
//!
//! Writes are all or nothing: one plan check ([`cnb_sbom_restore::select::check_places`]) refuses,
//! before anything is written, files that would be one file or one the directory of the other
//! (letter case, Unicode normalisation, escaping) and names with invisible or bidirectional-control
//! characters; the tree is then built beside its destination through directory handles and moved
//! into place ([`cnb_sbom_restore::write_tree_with`]); directories other users can change are
//! refused unless [`RestoreRequest::shared_output`] allows them. What `sbom/launch` held before is refused
//! ([`Existing::Refuse`], `cnb-attest download` without `--replace`) or replaced as a whole
//! ([`Existing::Replace`], the analyzer, as the lifecycle replaces it), never mixed with the
//! restored files. [`interrupt`] (the binaries call it on SIGINT and SIGTERM) removes a tree being
//! built and leaves the destination as it was.

use std::path::{Path, PathBuf};

use cnb_dsse::VerifyingKey;
use cnb_sbom_discovery::{BuildpackId, SbomFormat};
use cnb_sbom_restore::inspect::foreign_from_listing;
use cnb_sbom_restore::select::{
    check_places, differing_from_layer, missing_from_layer, missing_layers, plan_restore, Plan,
    Policy,
};
pub use cnb_sbom_restore::write::interrupt;
use cnb_sbom_restore::Restored;
pub use cnb_sbom_restore::{Existing, OutputDir, SharedOutput};
use serde::Serialize;

use crate::{Error, Image, Selection};

/// What to restore and by which rules.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The trusted keys: an attestation counts if any of them verifies it (key rotation, several
    /// signers). Attestations none of them verifies are left out.
    pub keys: Vec<VerifyingKey>,
    /// The keyless verifier (trusted root and identity policy) for attestations signed with a
    /// Sigstore certificate; `None` trusts none of them.
    pub keyless: Option<std::sync::Arc<cnb_keyless::verify::Verifier>>,
    /// Refuse placements taken from the unsigned `io.buildpacks.buildpack.id` annotation (statements
    /// whose only subject is the image): they are reported in [`Plan::not_restored`], not written.
    pub signed_placement_only: bool,
    /// Which SBOMs (buildpack, format); the default is all.
    pub selection: Selection,
    /// Several attestations for one SBOM: all must verify and agree, or the newest wins.
    pub policy: Policy,
    /// Refuse unless every launch layer of each SBOM-producing buildpack has a restored SBOM
    /// (checked against the image's SBOM layer when it has one, else against its label). Against
    /// the SBOM layer, each verified SBOM must also have the bytes of the layer's file at its
    /// place ([`Refusal::DiffersFromLayer`]).
    pub require_all_layers: bool,
    /// Whether the image's SBOM layer may stand in when it has no SBOM attestation at all.
    pub fallback: Fallback,
    /// What to do when `<layers_root>/sbom/launch` already holds entries: refuse (the default;
    /// [`Refusal::Occupied`]) or replace the whole tree ([`RestoreReport::removed`] lists what was
    /// there).
    pub existing: Existing,
    /// Whether directories other users can change (owned by another user, or writable by others
    /// or by a shared group without the sticky bit) are accepted on the way to `sbom/launch`; refused by
    /// default ([`cnb_sbom_restore::Error::SharedOutput`], in [`Error::Write`]).
    pub shared_output: SharedOutput,
    /// Which directory the user named: `layers_root` itself (the analyzer's layers directory, the
    /// default) or its parent (`download -o <dir>`); it is checked with those below it.
    pub output: OutputDir,
}

impl RestoreRequest {
    /// Every SBOM, [`Policy::All`], no coverage gate, no fallback, one trusted key.
    pub fn new(key: VerifyingKey) -> Self {
        Self::with_keys(vec![key])
    }

    /// Like [`RestoreRequest::new`], trusting each of `keys`.
    pub fn with_keys(keys: Vec<VerifyingKey>) -> Self {
        RestoreRequest {
            keys,
            keyless: None,
            signed_placement_only: false,
            selection: Selection::default(),
            policy: Policy::All,
            require_all_layers: false,
            fallback: Fallback::Never,
            existing: Existing::Refuse,
            shared_output: SharedOutput::Refuse,
            output: OutputDir::Root,
        }
    }
}

/// Whether the unsigned SBOM layer may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// Only verified attestations.
    #[default]
    Never,
    /// The SBOM layer (checked against the label's diffID, but not signed) when the image has no
    /// SBOM attestation at all; never in place of attestations that failed.
    SbomLayer,
}

/// Where the restored files came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Verified, signed attestations.
    Attestations,
    /// The image's SBOM layer: digest-checked, not signed.
    SbomLayer,
}

/// Why nothing was written. Each is a decision of the policy, not an I/O failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "refusal")]
#[non_exhaustive]
pub enum Refusal {
    /// Verified attestations broke a rule: subject binding, placement, conflicting SBOMs
    /// ([`Plan::failures`] names each). Attestations no key verifies are not counted here: they
    /// are left out ([`Plan::left_out`]).
    VerificationFailed {
        /// How many.
        count: usize,
    },
    /// SBOM attestations exist, but none verified one that matches the request (those no key
    /// verifies are in [`Plan::left_out`]).
    NoneVerified {
        /// SBOM attestations found.
        attestations: usize,
    },
    /// SBOM attestations exist, none verified, and these could not be read from the registry
    /// ([`Plan::unreadable`]): a transport or registry failure, not a verdict on them.
    Unreadable {
        /// How many could not be read.
        count: usize,
    },
    /// The image has no SBOM attestation, and its SBOM layer was not used.
    NoSboms {
        /// Whether the image has an SBOM layer (not used: the request does not allow it).
        sbom_layer: bool,
    },
    /// `require_all_layers`: these launch layers (`<bp-id>:<layer>` or SBOM paths) have none.
    MissingLayers {
        /// What is missing.
        missing: Vec<String>,
    },
    /// `require_all_layers` against the image's SBOM layer: the verified SBOMs at these places
    /// (paths under `sbom/launch/`) differ, byte for byte, from the SBOM layer's files there.
    DiffersFromLayer {
        /// The SBOM paths whose verified SBOM differs from the layer's file.
        differing: Vec<String>,
    },
    /// The files of the image's SBOM layer (the fallback) fail the plan check: two would be one
    /// file, one would be the directory of another, or a name holds an invisible,
    /// bidirectional-control or control character ([`Plan::failures`] names each).
    SbomLayerRejected {
        /// How many problems.
        count: usize,
    },
    /// [`Existing::Refuse`]: `<layers_root>/sbom/launch` already holds entries (an earlier
    /// restore, another image's SBOMs); nothing was written and nothing removed.
    Occupied {
        /// The directory.
        path: PathBuf,
        /// How many entries it holds (files and directories).
        count: usize,
        /// One of them, relative to `path` (a directory ends in `/`).
        example: PathBuf,
    },
}

/// What a restore decided and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RestoreReport {
    /// The verification and placement decisions.
    pub plan: Plan,
    /// Where the files came from.
    pub origin: Origin,
    /// SBOM attestations found (before verification).
    pub attestations: usize,
    /// Entries of the SBOM layer that were skipped, with the reason (fallback only).
    pub sbom_layer_skipped: Vec<(String, String)>,
    /// `require_all_layers` gaps (empty when not asked).
    pub missing_layers: Vec<String>,
    /// `require_all_layers` against the SBOM layer: SBOM paths whose verified SBOM differs from
    /// the layer's file (empty when not asked).
    pub differing_layers: Vec<String>,
    /// Why nothing was written, if nothing was.
    pub refusal: Option<Refusal>,
    /// Attestations left out because no given key verifies them ([`Plan::left_out`] names each
    /// and why): "N attestation(s) left out: not signed by a trusted key".
    pub left_out: usize,
    /// Attestations left out because they could not be read from the registry
    /// ([`Plan::unreadable`] names each and why): "N attestation(s) could not be read from the
    /// registry".
    pub unreadable: usize,
    /// Files written (or, on a refusal, that would have been) whose place comes from the unsigned
    /// buildpack annotation, as relative paths under `sbom/launch/`.
    pub unsigned_placement: Vec<String>,
    /// The files written (empty on a refusal).
    pub written: Vec<PathBuf>,
    /// With [`Existing::Replace`]: what the replaced `sbom/launch` tree held besides directories,
    /// relative to it (all of it was removed; the restored files are all that is there now).
    pub removed: Vec<PathBuf>,
    /// Registry requests sent, for registry images.
    pub requests: Option<u64>,
}

/// Verifies `image`'s SBOM attestations under `request` and, when nothing is refused, writes the
/// SBOMs below `layers_root` as `sbom/launch/<escaped-bp-id>/[<layer>/]sbom.<ext>` (the directory
/// holding `layers_root` is created if missing; from `layers_root` down no symlink is followed).
/// A refusal is in [`RestoreReport::refusal`] and nothing is written; errors are I/O, registry or
/// unreadable images.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::restore::{restore, Fallback, Origin, RestoreRequest};
/// use cnb_attest::{Image, OpenOptions, SigningKey};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let out = tempfile::tempdir().unwrap();
/// let mut request = RestoreRequest::new(SigningKey::generate()?.verifying_key());
/// request.fallback = Fallback::SbomLayer; // unsigned image: its SBOM layer stands in
/// let report = cnb_attest::block_on(async {
///     let image = Image::open(&target, &OpenOptions::default()).await?;
///     restore(&image, &request, &out.path().join("layers")).await
/// })??;
/// assert_eq!(report.origin, Origin::SbomLayer);
/// assert!(report.refusal.is_none() && !report.written.is_empty());
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn restore(
    image: &Image,
    request: &RestoreRequest,
    layers_root: &Path,
) -> Result<RestoreReport, Error> {
    let metadata = image.metadata()?;
    let selection = &request.selection;
    // Whether the image has SBOM attestations at all is decided before the selection filters
    // them: a request for one buildpack never turns "other buildpacks are signed" into "nothing
    // is signed" and so into the unsigned fallback.
    // Someone else's artifacts (known from the listing, or from their manifest) are not SBOM
    // attestations: they never stand between an image and its SBOM layer.
    let any = Selection::default();
    let unselected = std::sync::atomic::AtomicUsize::new(0);
    let fetched = image
        .fetch(&|d| {
            let wanted = selection.wants(d);
            if !wanted && any.wants(d) && foreign_from_listing(d).is_none() {
                unselected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            wanted
        })
        .await?;
    let attestations = fetched.iter().filter(|f| !f.is_foreign()).count();
    let mut plan = match image.manifest() {
        Some(manifest) => plan_restore(
            manifest,
            &metadata,
            &fetched,
            &cnb_sbom_restore::Trust::new(&request.keys, request.keyless.as_ref()),
            selection,
            request.policy,
            request.signed_placement_only,
        ),
        None => Plan::default(),
    };
    let mut report = RestoreReport {
        plan: Plan::default(),
        origin: Origin::Attestations,
        attestations,
        sbom_layer_skipped: Vec::new(),
        missing_layers: Vec::new(),
        differing_layers: Vec::new(),
        refusal: None,
        left_out: plan.left_out.len(),
        unreadable: plan.unreadable.len(),
        unsigned_placement: plan.unsigned_placement.clone(),
        written: Vec::new(),
        removed: Vec::new(),
        requests: None,
    };
    let mut refusal = if !plan.failures.is_empty() {
        Some(Refusal::VerificationFailed {
            count: plan.failures.len(),
        })
    } else if !plan.files.is_empty() {
        None
    } else if !plan.unreadable.is_empty() {
        // Nothing verified, and the registry failed to give some: a registry failure, never
        // "none verified", and never the unsigned layer in their place.
        Some(Refusal::Unreadable {
            count: plan.unreadable.len(),
        })
    } else if attestations > 0 || unselected.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        // There are SBOM attestations but none verified (or none selected): never the unsigned
        // layer in their place.
        Some(Refusal::NoneVerified { attestations })
    } else if request.fallback == Fallback::Never || metadata.sbom.is_none() {
        Some(Refusal::NoSboms {
            sbom_layer: metadata.sbom.is_some(),
        })
    } else {
        let layer = image
            .source
            .sbom_layer(&metadata)
            .await
            .map_err(Error::SbomLayer)?;
        report.origin = Origin::SbomLayer;
        report.sbom_layer_skipped = layer.skipped;
        plan.files = only_selected(layer.files, selection);
        // The layer's files pass the same plan check as attested ones.
        let places: Vec<_> = plan
            .files
            .iter()
            .map(|f| (f.path.clone(), f.source.clone()))
            .collect();
        let (problems, _) = check_places(&places);
        if !problems.is_empty() {
            plan.files.clear();
            let count = problems.len();
            plan.failures.extend(problems);
            Some(Refusal::SbomLayerRejected { count })
        } else {
            plan.files
                .is_empty()
                .then_some(Refusal::NoneVerified { attestations: 0 })
        }
    };
    if refusal.is_none() && request.require_all_layers {
        let coverage = if report.origin == Origin::Attestations {
            missing(image, &metadata, &plan, selection).await?
        } else {
            Coverage {
                missing: missing_layers(&plan, &metadata),
                differing: Vec::new(),
            }
        };
        report.missing_layers = coverage.missing;
        report.differing_layers = coverage.differing;
        if !report.missing_layers.is_empty() {
            refusal = Some(Refusal::MissingLayers {
                missing: report.missing_layers.clone(),
            });
        } else if !report.differing_layers.is_empty() {
            refusal = Some(Refusal::DiffersFromLayer {
                differing: report.differing_layers.clone(),
            });
        }
    }
    if refusal.is_none() {
        if let Some(parent) = layers_root.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Created 0755 (less the umask): a directory this restore makes passes its own check.
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let options = cnb_sbom_restore::WriteOptions {
            existing: request.existing,
            shared: request.shared_output,
            output: request.output,
            ..cnb_sbom_restore::WriteOptions::default()
        };
        match cnb_sbom_restore::write_tree_with(layers_root, &plan.files, &options) {
            Ok(written) => {
                report.written = written.files;
                report.removed = written.removed;
            }
            Err(cnb_sbom_restore::Error::Occupied {
                path,
                count,
                example,
            }) => {
                refusal = Some(Refusal::Occupied {
                    path,
                    count,
                    example,
                })
            }
            Err(e) => return Err(Error::Write(e)),
        }
    }
    report.plan = plan;
    report.refusal = refusal;
    report.requests = image.requests();
    Ok(report)
}

/// What `require_all_layers` found.
pub(crate) struct Coverage {
    /// Launch layers (or SBOM paths) without a verified SBOM.
    pub(crate) missing: Vec<String>,
    /// SBOM paths whose verified SBOM differs from the SBOM layer's file.
    pub(crate) differing: Vec<String>,
}

/// The `require_all_layers` gaps of `plan` (files from attestations). The SBOM layer, when the
/// image has one, is the trusted list of what must be there and of what it must hold (its content
/// is fixed by the image digest): each of its files needs a verified SBOM with the same bytes.
/// Without one, every launch layer of each SBOM-producing buildpack in the label needs one.
pub(crate) async fn missing(
    image: &Image,
    metadata: &cnb_sbom_discovery::platform::LifecycleMetadata,
    plan: &Plan,
    selection: &Selection,
) -> Result<Coverage, Error> {
    Ok(if metadata.sbom.is_some() {
        let layer = image
            .source
            .sbom_layer(metadata)
            .await
            .map_err(Error::SbomLayer)?;
        let layer = only_selected(layer.files, selection);
        Coverage {
            missing: missing_from_layer(plan, &layer),
            differing: differing_from_layer(plan, &layer),
        }
    } else {
        Coverage {
            missing: missing_layers(plan, metadata),
            differing: Vec::new(),
        }
    })
}

/// A [`Selection`] from a buildpack ID and a format name (`cdx`, `spdx`, `syft`, or an SBOM media
/// type), as users type them.
///
/// ```
/// let only = cnb_attest::restore::selection(Some("paketo-buildpacks/node-engine"), Some("cdx"))?;
/// assert!(only.buildpack.is_some() && only.format.is_some());
/// assert!(cnb_attest::restore::selection(None, Some("xml")).is_err());
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub fn selection(buildpack: Option<&str>, format: Option<&str>) -> Result<Selection, Error> {
    Ok(Selection {
        buildpack: buildpack
            .map(BuildpackId::new)
            .transpose()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?,
        format: format
            .map(|f| {
                SbomFormat::from_extension(&format!("{f}.json"))
                    .or_else(|| SbomFormat::from_media_type(f))
                    .ok_or_else(|| {
                        Error::InvalidRequest(format!("--format `{f}`: expected cdx, spdx or syft"))
                    })
            })
            .transpose()?,
    })
}

fn only_selected(files: Vec<Restored>, selection: &Selection) -> Vec<Restored> {
    files
        .into_iter()
        .filter(|f| selection.accepts(&f.path))
        .collect()
}
