//! From verified attestations to files: which SBOMs were asked for, and where each one goes.
//!
//! Selection happens twice. Before anything is downloaded, [`Request::wants`] reads the unsigned
//! annotations of each listed referrer, to skip blobs that cannot be what was asked for. After
//! verification, [`place`] decides from signed data wherever signed data can say: the predicate
//! type gives the format, and the subjects give the buildpack and layer. The image's own label is
//! the cross-check: the buildpack must be in it, and a layer subject's diffID must be the one the
//! label records for that layer (for the RFC's bare layer names, the label gives the buildpack).
//! Only a statement whose one subject is the image is placed by the unsigned buildpack annotation,
//! marked [`Placement::UnsignedAnnotation`].

use std::collections::BTreeMap;

use crate::Trust;
use cnb_intoto::Statement;
use cnb_referrers::format::{BUNDLE_PREDICATE_TYPE, PREDICATE_TYPE};
use cnb_referrers::layout::Image;
use cnb_referrers::Descriptor;
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_discovery::{BuildpackId, LayerName, SbomFormat};
use serde::{Serialize, Serializer};

use cnb_attestation_config::annotations;

use crate::inspect::{self, Fetched};
use crate::path::{folded, SbomPath};
use crate::write::{Placement, Restored};
use crate::{Failure, Rule};

/// What to restore: everything, or one buildpack's, or one format's SBOMs.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Only this buildpack's SBOMs.
    pub buildpack: Option<BuildpackId>,
    /// Only this format.
    pub format: Option<SbomFormat>,
}

impl Request {
    /// Whether a listed referrer may hold a requested SBOM, judged from its (unsigned) annotations.
    /// Missing annotations mean "cannot tell", so the referrer is fetched; a mismatch skips it. The
    /// signed statement decides again after verification.
    pub fn wants(&self, descriptor: &Descriptor) -> bool {
        let predicate = descriptor
            .annotation(BUNDLE_PREDICATE_TYPE)
            .or_else(|| descriptor.annotation(PREDICATE_TYPE));
        if let Some(predicate) = predicate {
            match SbomFormat::from_predicate_type(predicate) {
                None => return false,
                Some(format) if self.format.is_some_and(|f| f != format) => return false,
                Some(_) => {}
            }
        }
        if let (Some(wanted), Some(annotated)) = (
            &self.buildpack,
            descriptor.annotation(annotations::BUILDPACK_ID),
        ) {
            if wanted.as_str() != annotated {
                return false;
            }
        }
        true
    }

    /// Whether a file placed at `path` is one that was asked for (the legacy BOM only when nothing
    /// narrower was asked).
    pub fn accepts(&self, path: &SbomPath) -> bool {
        match path {
            SbomPath::Sbom {
                buildpack, format, ..
            } => {
                self.buildpack.as_ref().is_none_or(|b| b == buildpack)
                    && self.format.is_none_or(|f| f == *format)
            }
            SbomPath::Legacy => self.buildpack.is_none() && self.format.is_none(),
        }
    }
}

/// Where a verified statement goes ([`place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Not a launch SBOM: an image signature, provenance, a build or cache SBOM. Nothing to restore.
    NotLaunchSbom,
    /// A launch SBOM that belongs to no buildpack of this image (a platform attestation: no
    /// subject names a buildpack of the label, and no usable annotation). Verified, not restored;
    /// never blocks a restore.
    NoBuildpack,
    /// The SBOM goes here.
    At {
        /// The place.
        path: SbomPath,
        /// What decided it: signed data, or (for a statement whose only subject is the image) the
        /// unsigned buildpack annotation.
        placement: Placement,
    },
}

/// The diffID of the image layer whose diffID or compressed digest (in the image manifest) is
/// `hex`; a compressed digest maps to the diffID at its position in `rootfs.diff_ids`.
pub fn diff_id_of(image: &Image, hex: &str) -> Option<String> {
    let diff_id = format!("sha256:{hex}");
    if image.config.diff_ids.contains(&diff_id) {
        return Some(diff_id);
    }
    let position = image
        .manifest
        .layers
        .iter()
        .position(|l| l.digest.hex() == hex)?;
    image.config.diff_ids.get(position).cloned()
}

/// Whether `diff_id` is a layer of the run image: at or below the label's `runImage.topLayer` in
/// `rootfs.diff_ids` (the lifecycle's rebaser replaces exactly these layers).
fn is_run_image_layer(image: &Image, metadata: &LifecycleMetadata, diff_id: &str) -> bool {
    let Some(top) = metadata
        .run_image
        .as_ref()
        .map(|r| r.top_layer.as_str())
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    let diff_ids = &image.config.diff_ids;
    match (
        diff_ids.iter().position(|d| d == top),
        diff_ids.iter().position(|d| d == diff_id),
    ) {
        (Some(top), Some(at)) => at <= top,
        _ => false,
    }
}

/// Where a verified SBOM statement's predicate goes, from signed data and the image's label
/// wherever signed data can say:
///
/// * a layer subject `<bp-id>:<layer>` or the RFC's bare `<layer>`, whose digest is a diffID of
///   the image or a compressed layer digest of its manifest, and which the image's label records
///   for that layer (for a bare name, the label's one buildpack with that layer and diffID gives the
///   buildpack: never an annotation);
/// * a subject with the image digest named by a buildpack of the label (image-scoped);
/// * a layer subject that is a run-image layer (at or below the label's `runImage.topLayer`):
///   the platform's attestation about the run image, [`Place::NoBuildpack`] (never restored);
/// * only when the image is the statement's only place: `annotated_buildpack` (the unsigned
///   `io.buildpacks.buildpack.id` annotation), when that buildpack is in the label, marked
///   [`Placement::UnsignedAnnotation`].
pub fn place(
    statement: &Statement,
    image: &Image,
    metadata: &LifecycleMetadata,
    annotated_buildpack: Option<&str>,
) -> Result<Place, Failure> {
    let Some(format) = SbomFormat::from_predicate_type(statement.predicate_type()) else {
        return Ok(Place::NotLaunchSbom);
    };
    // A build or cache SBOM names its kind in a signed subject (`...#build`, `...#cache`): it is
    // never restored as a launch SBOM.
    if statement.subjects().iter().any(|s| s.name.contains('#')) {
        return Ok(Place::NotLaunchSbom);
    }
    let image_hex = image.descriptor.digest.hex();
    let in_label: Vec<BuildpackId> = metadata
        .buildpack_ids()
        .map_err(|e| Failure::new(Rule::BadLabel, e.to_string()))?;
    let known = |id: &BuildpackId| id.is_lifecycle() || in_label.contains(id);
    let mut placed: Option<(BuildpackId, Option<LayerName>)> = None;
    let mut about_run_image: Option<String> = None;
    let mut set = |candidate: (BuildpackId, Option<LayerName>)| -> Result<(), Failure> {
        match &placed {
            Some(existing) if *existing != candidate => Err(Failure::new(
                Rule::TwoPlaces,
                format!(
                    "the statement names two places: {} and {}",
                    describe(existing),
                    describe(&candidate)
                ),
            )),
            _ => {
                placed = Some(candidate);
                Ok(())
            }
        }
    };
    for subject in statement.subjects() {
        let Some(hex) = subject.digest.get("sha256") else {
            continue;
        };
        if hex != image_hex {
            // A layer subject, named `<bp-id>:<layer>` or by the bare `<layer>`, whose digest is a
            // layer of this image that the label records for that layer.
            let diff_id = diff_id_of(image, hex).ok_or_else(|| {
                Failure::new(
                    Rule::ForeignSubject,
                    format!(
                        "subject `{}` (sha256:{hex}) is neither this image ({}) nor one of its layers",
                        subject.name, image.descriptor.digest
                    ),
                )
            })?;
            // A layer of the run image (at or below the label's `runImage.topLayer`): a
            // platform's attestation about its base (e.g. the run image's SBOM), whatever the
            // subject's name. Verified, never restored; a rebase drops it with the run image.
            if is_run_image_layer(image, metadata, &diff_id) {
                about_run_image = Some(subject.name.clone());
                continue;
            }
            let bad_name = |message: String| Failure::new(Rule::LayerSubjectName, message);
            let Some((bp, layer)) = subject.name.rsplit_once(':') else {
                let layer = LayerName::new(subject.name.as_str()).map_err(|e| {
                    bad_name(format!(
                        "layer subject `{}` is neither <buildpack>:<layer> nor a layer name: {e}",
                        subject.name
                    ))
                })?;
                let mut owners: Vec<&str> = metadata
                    .buildpacks
                    .iter()
                    .filter(|bp| {
                        bp.layers
                            .get(layer.as_str())
                            .is_some_and(|l| l.sha == diff_id)
                    })
                    .map(|bp| bp.key.as_str())
                    .collect();
                // The launcher layer is the lifecycle's, recorded apart from the buildpacks'.
                if layer.as_str() == "launcher"
                    && metadata.launcher_diff_id() == Some(diff_id.as_str())
                {
                    owners.push(BuildpackId::LIFECYCLE);
                }
                let buildpack = match owners.as_slice() {
                    [] => {
                        return Err(Failure::new(
                            Rule::UnrecordedLayer,
                            format!(
                                "subject `{}` ({diff_id}) is no layer the image's label records under that name",
                                subject.name
                            ),
                        ))
                    }
                    [one] => BuildpackId::new(*one)
                        .map_err(|e| Failure::new(Rule::BadLabel, e.to_string()))?,
                    several => {
                        return Err(Failure::new(
                            Rule::AmbiguousLayer,
                            format!(
                                "subject `{}` ({diff_id}) is that layer of several buildpacks in the image's label: {}",
                                subject.name,
                                several.join(" and ")
                            ),
                        ))
                    }
                };
                set((buildpack, Some(layer)))?;
                continue;
            };
            let buildpack = BuildpackId::new(bp).map_err(|e| bad_name(e.to_string()))?;
            let layer = LayerName::new(layer).map_err(|e| bad_name(e.to_string()))?;
            if !known(&buildpack) {
                return Err(Failure::new(
                    Rule::UnknownBuildpack,
                    format!("buildpack `{buildpack}` is not in the image's label"),
                ));
            }
            let recorded = if buildpack.is_lifecycle() && layer.as_str() == "launcher" {
                metadata.launcher_diff_id()
            } else {
                metadata.layer_diff_id(&buildpack, &layer)
            };
            if recorded != Some(diff_id.as_str()) {
                return Err(Failure::new(
                    Rule::UnrecordedLayer,
                    format!(
                        "subject `{}` ({diff_id}) is not the layer the image's label records for it ({})",
                        subject.name,
                        recorded.unwrap_or("none")
                    ),
                ));
            }
            set((buildpack, Some(layer)))?;
        } else if let Ok(buildpack) = BuildpackId::new(subject.name.as_str()) {
            // An image-scoped SBOM names its buildpack in a subject with the image digest; the
            // image's own subject (its repository) is not a buildpack of the label.
            if known(&buildpack) && !subject.name.contains(':') {
                set((buildpack, None))?;
            }
        }
    }
    if let Some(run_layer) = about_run_image {
        return match placed {
            None => Ok(Place::NoBuildpack),
            Some(place) => Err(Failure::new(
                Rule::TwoPlaces,
                format!(
                    "the statement names two places: {} and the run image layer `{run_layer}`",
                    describe(&place)
                ),
            )),
        };
    }
    if let Some((buildpack, layer)) = placed {
        return at(
            SbomPath::Sbom {
                buildpack,
                layer,
                format,
            },
            Placement::Signed,
        );
    }
    // Only the image is signed: nothing signed can say more than the annotation.
    let annotated = annotated_buildpack
        .and_then(|id| BuildpackId::new(id).ok())
        .filter(|id| in_label.contains(id));
    match annotated {
        Some(buildpack) => at(
            SbomPath::Sbom {
                buildpack,
                layer: None,
                format,
            },
            Placement::UnsignedAnnotation,
        ),
        None => Ok(Place::NoBuildpack),
    }
}

/// A place, once its names passed [`SbomPath::check_characters`]: `verify` and every restore
/// refuse the same names.
fn at(path: SbomPath, placement: Placement) -> Result<Place, Failure> {
    path.check_characters()
        .map_err(|reason| Failure::new(Rule::HiddenCharacter, reason))?;
    Ok(Place::At { path, placement })
}

/// The message of a [`Place::NoBuildpack`] note.
pub const NO_BUILDPACK: &str = "belongs to no buildpack of this image: not restored";

/// Verifies `fetched` as [`inspect::verify`] does, then holds every verified SBOM statement to
/// the placement rules of a restore ([`place`], against the image's label when it has one): a
/// correctly signed statement that a restore would refuse fails here too, naming the rule.
pub fn verify_placed(
    image: &Image,
    metadata: Option<&LifecycleMetadata>,
    fetched: &[Fetched],
    trust: &Trust,
) -> Vec<inspect::Verdict> {
    verify_and_place(image, metadata, fetched, trust)
        .into_iter()
        .map(|(verdict, _)| verdict)
        .collect()
}

/// Like [`verify_placed`], also returning where each verified statement goes (`None` when it
/// failed, or when there is no label to place it with).
///
/// The places of the verified statements then get the plan check of a restore
/// ([`check_places`]): statements whose places would be one file, or one the directory of the
/// other, fail with that rule, as a restore refuses them (several statements for one place, such
/// as one SBOM in two storage formats, are one place).
pub fn verify_and_place(
    image: &Image,
    metadata: Option<&LifecycleMetadata>,
    fetched: &[Fetched],
    trust: &Trust,
) -> Vec<(inspect::Verdict, Option<Place>)> {
    let mut placed: Vec<(inspect::Verdict, Option<Place>)> =
        inspect::verify_each(image, fetched, trust)
            .into_iter()
            .map(|(mut verdict, statement)| {
                let mut placed = None;
                if let (Some(verified), Some(metadata)) = (statement, metadata) {
                    match place(
                        &verified.statement,
                        image,
                        metadata,
                        verdict.listed.buildpack.as_deref(),
                    ) {
                        Ok(place) => placed = Some(place),
                        Err(failure) => verdict.failure = Some(failure),
                    }
                }
                (verdict, placed)
            })
            .collect();
    let mut at: BTreeMap<SbomPath, Vec<usize>> = BTreeMap::new();
    for (i, (verdict, place)) in placed.iter().enumerate() {
        if let (true, Some(Place::At { path, .. })) = (verdict.ok(), place) {
            at.entry(path.clone()).or_default().push(i);
        }
    }
    let places: Vec<(SbomPath, String)> = at
        .iter()
        .map(|(path, verdicts)| {
            let digests: Vec<&str> = verdicts
                .iter()
                .map(|&i| placed[i].0.listed.manifest_digest.as_str())
                .collect();
            (path.clone(), digests.join(", "))
        })
        .collect();
    let (problems, refused) = check_places(&places);
    // Both sides of a collision are refused, as `plan_restore` refuses both: `refused` holds, per
    // problem in order, its other side first (a collision; none for a hidden character), then
    // the place of the attestation the problem names.
    let mut sides = refused.iter();
    for problem in problems {
        let other = match problem.failure.rule {
            Rule::HiddenCharacter => None,
            _ => sides.next(),
        };
        let own = sides.next();
        for path in other.into_iter().chain(own) {
            for &i in at.get(path).into_iter().flatten() {
                if placed[i].0.failure.is_none() {
                    placed[i].0.failure = Some(problem.failure.clone());
                }
                placed[i].1 = None;
            }
        }
    }
    placed
}

fn describe(place: &(BuildpackId, Option<LayerName>)) -> String {
    match &place.1 {
        Some(layer) => format!("{}:{layer}", place.0),
        None => place.0.to_string(),
    }
}

/// What to do when several attestations are about the same SBOM (one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Every attestation must verify, and all those for one place must hold the same SBOM.
    #[default]
    All,
    /// Per place, the newest verified attestation wins (by `org.opencontainers.image.created`,
    /// then by listing order). The annotation is unsigned, so it only chooses among SBOMs the key
    /// signed for that exact place. Attestations that fail are reported, not fatal.
    Newest,
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        match s {
            "all" => Ok(Policy::All),
            "newest" => Ok(Policy::Newest),
            other => Err(PolicyError {
                given: other.to_string(),
            }),
        }
    }
}

/// A [`Policy`] name that is neither `all` nor `newest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{given}`: expected all or newest")]
pub struct PolicyError {
    /// The name given.
    pub given: String,
}

/// One attestation (or file) that a restore did not accept: what it is, and why.
///
/// Serialised as `[attestation, message]`, the shape reports have always had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A one-line name for the attestation ([`inspect::describe`]), or the attestations' digests,
    /// or the relative path of the file, as the message needs.
    pub attestation: String,
    /// The rule it failed, and why.
    pub failure: Failure,
}

impl Problem {
    fn new(attestation: impl Into<String>, failure: Failure) -> Self {
        Problem {
            attestation: attestation.into(),
            failure,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.attestation, self.failure)
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.attestation, &self.failure.message).serialize(serializer)
    }
}

/// What a restore decided.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    /// Verified files to write.
    #[serde(skip)]
    pub files: Vec<Restored>,
    /// Files to write, for reports: relative path -> attestation digests it came from.
    pub restored: BTreeMap<String, Vec<String>>,
    /// Verified attestations that broke a rule, with the rule and reason: the restore is refused.
    pub failures: Vec<Problem>,
    /// Attestations that no given key verifies (unreadable, tampered, or signed by no trusted key;
    /// [`Rule::is_unverified`]): reported and left out, never written, never blocking.
    pub left_out: Vec<Problem>,
    /// Attestations that could not be read from the registry ([`Rule::FetchFailed`]: a transport
    /// or registry failure, not a verdict): reported and left out, never written, never blocking
    /// what did verify.
    pub unreadable: Vec<Problem>,
    /// Verified SBOM attestations not restored: platform attestations that belong to no buildpack
    /// ([`Rule::NoBuildpack`]), and placements refused as unsigned ([`Rule::UnsignedPlacement`]).
    pub not_restored: Vec<Problem>,
    /// Files to write whose place comes from the unsigned buildpack annotation (relative paths).
    pub unsigned_placement: Vec<String>,
    /// Under [`Policy::Newest`]: attestations that failed, or lost to a newer one, reported only.
    pub warnings: Vec<Problem>,
    /// Verified referrers that are not SBOMs (image signatures, provenance), or not requested.
    pub skipped: usize,
}

/// The SBOM chosen so far for one place: its content, the attestations backing it, its rank
/// (`created` annotation, listing order) for [`Policy::Newest`], and what placed it.
type Candidate = (Content, Vec<String>, (String, usize), Placement);

/// A verified SBOM's exact bytes: in memory, or in a temporary file ([`crate::spool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Bytes(Vec<u8>),
    Spooled(crate::spool::Spooled),
}

impl Content {
    fn of(verified: inspect::Verified) -> Self {
        match verified.spooled {
            Some(spooled) => Content::Spooled(spooled),
            None => Content::Bytes(verified.statement.into_predicate()),
        }
    }

    /// Whether both hold the same bytes (by their SHA-256 when one is a file).
    fn same(&self, other: &Content) -> bool {
        use sha2::Digest as _;
        let digest = |c: &Content| match c {
            Content::Bytes(b) => (b.len() as u64, <[u8; 32]>::from(sha2::Sha256::digest(b))),
            Content::Spooled(s) => (s.len(), s.sha256()),
        };
        match (self, other) {
            (Content::Bytes(a), Content::Bytes(b)) => a == b,
            _ => digest(self) == digest(other),
        }
    }
}

/// Verifies `fetched` with `keys` (any one of them verifying an attestation is enough) and decides
/// the files to restore. Attestations no key verifies are left out ([`Plan::left_out`]); platform
/// SBOMs that belong to no buildpack are noted ([`Plan::not_restored`]); with
/// `signed_placement_only`, so are SBOMs only the unsigned annotation could place. Several verified
/// attestations of the same SBOM (one per storage format) collapse into one file; different bytes
/// for the same place fail closed, naming both.
pub fn plan_restore(
    image: &Image,
    metadata: &LifecycleMetadata,
    fetched: &[Fetched],
    trust: &Trust,
    request: &Request,
    policy: Policy,
    signed_placement_only: bool,
) -> Plan {
    let mut plan = Plan::default();
    // Per place: the bytes, the attestations backing them, and (created, listing order) to rank.
    let mut chosen: BTreeMap<SbomPath, Candidate> = BTreeMap::new();
    let mut conflicted: Vec<SbomPath> = Vec::new();
    for (order, (listed, verified)) in inspect::verify_results(image, fetched, trust)
        .into_iter()
        .enumerate()
    {
        let name = inspect::describe(&listed);
        let digest = listed.manifest_digest.clone();
        let rank = (listed.created.clone().unwrap_or_default(), order);
        let verified = match verified {
            Ok(verified) => verified,
            Err(failure) if failure.rule.is_fetch_failure() => {
                plan.unreadable.push(Problem::new(name, failure));
                continue;
            }
            Err(failure) if failure.rule.is_unverified() => {
                plan.left_out.push(Problem::new(name, failure));
                continue;
            }
            Err(failure) => {
                match policy {
                    Policy::All => plan.failures.push(Problem::new(name, failure)),
                    Policy::Newest => plan.warnings.push(Problem::new(name, failure)),
                }
                continue;
            }
        };
        match place(
            &verified.statement,
            image,
            metadata,
            listed.buildpack.as_deref(),
        ) {
            Err(failure) => plan.failures.push(Problem::new(name, failure)),
            Ok(Place::NotLaunchSbom) => plan.skipped += 1,
            Ok(Place::NoBuildpack) => {
                plan.skipped += 1;
                plan.not_restored.push(Problem::new(
                    name,
                    Failure::new(Rule::NoBuildpack, NO_BUILDPACK),
                ));
            }
            Ok(Place::At { path, .. }) if !request.accepts(&path) => plan.skipped += 1,
            Ok(Place::At {
                path,
                placement: Placement::UnsignedAnnotation,
            }) if signed_placement_only => {
                plan.skipped += 1;
                plan.not_restored.push(Problem::new(
                    name,
                    Failure::new(
                        Rule::UnsignedPlacement,
                        format!(
                            "only the unsigned buildpack annotation places it at {}: refused (signed placement only)",
                            path.relative().display()
                        ),
                    ),
                ));
            }
            Ok(Place::At { path, placement }) => {
                let bytes = Content::of(verified);
                match chosen.get_mut(&path) {
                    Some((existing, sources, _, placed)) if existing.same(&bytes) => {
                        sources.push(digest);
                        if placement == Placement::Signed {
                            *placed = Placement::Signed;
                        }
                    }
                    Some((existing, sources, best, placed)) if policy == Policy::Newest => {
                        let place = path.relative().display().to_string();
                        if rank > *best {
                            plan.warnings.push(Problem::new(
                                sources.join(", "),
                                Failure::new(
                                    Rule::Superseded,
                                    format!("older than {digest} for {place}; not restored"),
                                ),
                            ));
                            *existing = bytes;
                            *sources = vec![digest];
                            *best = rank;
                            *placed = placement;
                        } else {
                            plan.warnings.push(Problem::new(
                                name,
                                Failure::new(
                                    Rule::Superseded,
                                    format!(
                                        "older than {} for {place}; not restored",
                                        sources.join(", ")
                                    ),
                                ),
                            ));
                        }
                    }
                    Some((_, sources, _, _)) => {
                        plan.failures.push(Problem::new(
                            name,
                            Failure::new(
                                Rule::Conflict,
                                format!(
                                    "conflicts with {} for {}: two different signed SBOMs for one place",
                                    sources.join(", "),
                                    path.relative().display()
                                ),
                            ),
                        ));
                        conflicted.push(path);
                    }
                    None => {
                        chosen.insert(path, (bytes, vec![digest], rank, placement));
                    }
                }
            }
        }
    }
    let places: Vec<(SbomPath, String)> = chosen
        .iter()
        .map(|(path, (_, sources, _, _))| (path.clone(), sources.join(", ")))
        .collect();
    let (problems, refused) = check_places(&places);
    plan.failures.extend(problems);
    conflicted.extend(refused);
    for path in conflicted {
        chosen.remove(&path);
    }
    for (path, (bytes, sources, _, placement)) in chosen {
        let relative = path.relative().display().to_string();
        if placement == Placement::UnsignedAnnotation {
            plan.unsigned_placement.push(relative.clone());
        }
        plan.restored.insert(relative, sources.clone());
        let (bytes, spooled) = match bytes {
            Content::Bytes(bytes) => (bytes, None),
            Content::Spooled(spooled) => (Vec::new(), Some(spooled)),
        };
        plan.files.push(Restored {
            path,
            bytes,
            spooled,
            source: sources.join(","),
            placement,
        });
    }
    plan
}

/// `<relative path> (buildpack <id>)`, for messages.
fn describe_path(path: &SbomPath) -> String {
    match path {
        SbomPath::Sbom { buildpack, .. } => {
            format!("{} (buildpack {buildpack})", path.relative().display())
        }
        SbomPath::Legacy => path.relative().display().to_string(),
    }
}

/// The one plan check over every file a restore would write, from attestations or from the SBOM
/// layer, run before anything is written. `places` are the places with what each came from
/// (attestation digests, or `sbom-layer`), which each problem names. Refused:
///
/// * a component holding an invisible, bidirectional-control or control character
///   ([`Rule::HiddenCharacter`]);
/// * two places that are one file on some file system ([`Rule::SameFile`]): buildpack IDs that
///   escape to one directory (`a/b` and `a_b`), or names equal once letter case is folded and
///   Unicode normalised to NFC ([`crate::path::folded`]: `café` in NFC and in NFD);
/// * a place that is, on disk, a directory on the way to another ([`Rule::FileAndDirectory`]): an
///   image-scoped `<bp>/sbom.cdx.json` and the SBOM of that buildpack's layer named
///   `sbom.cdx.json`.
///
/// Returns the problems and every place involved in one (both sides of a collision): none of them
/// may be written, and the restore is refused. `refused` is in problem order: for each problem,
/// the other side of a collision first (none for a hidden character), then the problem's own place
/// ([`verify_and_place`] relies on this).
pub fn check_places(places: &[(SbomPath, String)]) -> (Vec<Problem>, Vec<SbomPath>) {
    let mut problems = Vec::new();
    let mut refused = Vec::new();
    let mut by_name: BTreeMap<Vec<String>, (&SbomPath, &str)> = BTreeMap::new();
    for (path, source) in places {
        if let Err(reason) = path.check_characters() {
            problems.push(Problem::new(
                source.as_str(),
                Failure::new(Rule::HiddenCharacter, reason),
            ));
            refused.push(path.clone());
            continue;
        }
        let name: Vec<String> = path.components().iter().map(|c| folded(c)).collect();
        if let Some((other, other_source)) = by_name.get(&name) {
            problems.push(Problem::new(
                source.as_str(),
                Failure::new(
                    Rule::SameFile,
                    format!(
                        "{} and {} (from {other_source}) would be the same file (their buildpack IDs escape to one directory, or the names differ only in letter case or Unicode normalisation)",
                        describe_path(path),
                        describe_path(other),
                    ),
                ),
            ));
            refused.push((*other).clone());
            refused.push(path.clone());
            continue;
        }
        by_name.insert(name, (path, source));
    }
    for (name, (path, source)) in &by_name {
        for end in 1..name.len() {
            if let Some((file, file_source)) = by_name.get(&name[..end]) {
                problems.push(Problem::new(
                    *source,
                    Failure::new(
                        Rule::FileAndDirectory,
                        format!(
                            "{} would be written inside {} (from {file_source}), a file: one name is a file and the other's directory, so neither can be written",
                            describe_path(path),
                            describe_path(file),
                        ),
                    ),
                ));
                refused.push((*file).clone());
                refused.push((*path).clone());
            }
        }
    }
    (problems, refused)
}

/// `--require-all-layers` against a trusted expected set: every SBOM file of the image's SBOM layer
/// (whose content the image digest fixes), per format, that `plan` does not restore. The legacy BOM
/// is not attested and so not expected.
pub fn missing_from_layer(plan: &Plan, layer: &[Restored]) -> Vec<String> {
    let restored: std::collections::BTreeSet<&SbomPath> =
        plan.files.iter().map(|f| &f.path).collect();
    layer
        .iter()
        .filter(|f| !matches!(f.path, SbomPath::Legacy))
        .filter(|f| !restored.contains(&f.path))
        .map(|f| f.path.relative().display().to_string())
        .collect()
}

/// `--require-all-layers` against the image's SBOM layer, by content: the SBOM paths where `plan`
/// restores a verified SBOM whose bytes (SHA-256) differ from the SBOM layer's file at that place.
/// The layer's content is fixed by the image digest, so a verified SBOM that differs from it was
/// not made by the build of this image.
pub fn differing_from_layer(plan: &Plan, layer: &[Restored]) -> Vec<String> {
    let restored: std::collections::BTreeMap<&SbomPath, [u8; 32]> = plan
        .files
        .iter()
        .map(|f| (&f.path, content_sha256(f)))
        .collect();
    layer
        .iter()
        .filter(|f| !matches!(f.path, SbomPath::Legacy))
        .filter(|f| {
            restored
                .get(&f.path)
                .is_some_and(|verified| *verified != content_sha256(f))
        })
        .map(|f| f.path.relative().display().to_string())
        .collect()
}

/// SHA-256 of a restored file's bytes (taken when it was spooled, for a spooled one).
fn content_sha256(file: &Restored) -> [u8; 32] {
    use sha2::Digest as _;
    match &file.spooled {
        Some(spooled) => spooled.sha256(),
        None => sha2::Sha256::digest(&file.bytes).into(),
    }
}

/// `--require-all-layers`: the launch layers of SBOM-producing buildpacks (those with at least one
/// restored SBOM) that have no restored SBOM, as `<bp-id>:<layer>`.
pub fn missing_layers(plan: &Plan, metadata: &LifecycleMetadata) -> Vec<String> {
    let mut producing = std::collections::BTreeSet::new();
    let mut covered = std::collections::BTreeSet::new();
    for file in &plan.files {
        if let SbomPath::Sbom {
            buildpack, layer, ..
        } = &file.path
        {
            producing.insert(buildpack.to_string());
            if let Some(layer) = layer {
                covered.insert(format!("{buildpack}:{layer}"));
            }
        }
    }
    let mut missing = Vec::new();
    for bp in &metadata.buildpacks {
        if !producing.contains(bp.key.as_str()) {
            continue;
        }
        for (name, layer) in &bp.layers {
            let launch = layer.launch;
            let id = format!("{}:{name}", bp.key);
            if launch && !covered.contains(&id) {
                missing.push(id);
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    //! One test per placement and plan rule, on attestations built in memory.

    use super::*;
    use crate::inspect::tests::{hex_of, layer_hex, statement, subject, Fixture};

    const CDX: &str = "https://cyclonedx.org/bom";

    /// A label with `example/node` (layer `modules`, [`layer_hex`]) and `example/java`.
    fn label() -> LifecycleMetadata {
        label_of(&["example/node", "example/java"])
    }

    /// A label with these buildpacks, the first having layer `modules` ([`layer_hex`]).
    fn label_of(ids: &[&str]) -> LifecycleMetadata {
        let buildpacks: Vec<serde_json::Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let layers = if i == 0 {
                    serde_json::json!({"modules": {"sha": format!("sha256:{}", layer_hex()), "launch": true}})
                } else {
                    serde_json::json!({})
                };
                serde_json::json!({"key": id, "version": "1", "layers": layers})
            })
            .collect();
        LifecycleMetadata::from_json(&serde_json::json!({ "buildpacks": buildpacks }).to_string())
            .unwrap()
    }

    /// The rule `statement` fails when placed.
    fn place_rule(f: &Fixture, statement: &Statement, metadata: &LifecycleMetadata) -> Failure {
        place(statement, &f.image, metadata, None).unwrap_err()
    }

    #[test]
    fn a_layer_sbom_is_placed_under_its_layer() {
        let f = Fixture::new();
        let Place::At { path, placement } =
            place(&f.layer_statement(), &f.image, &label(), None).unwrap()
        else {
            panic!("not placed")
        };
        assert_eq!(placement, Placement::Signed);
        assert_eq!(
            path.relative().display().to_string(),
            "example_node/modules/sbom.cdx.json"
        );
    }

    #[test]
    fn a_run_image_layer_subject_is_a_platform_attestation_never_restored() {
        let mut f = Fixture::new();
        let run_layer = hex_of(b"run image layer");
        f.image
            .config
            .diff_ids
            .insert(0, format!("sha256:{run_layer}"));
        let mut metadata = label();
        metadata.run_image = Some(cnb_sbom_discovery::platform::RunImageRecord {
            top_layer: format!("sha256:{run_layer}"),
            ..Default::default()
        });
        let run_image = statement(
            vec![f.image_subject(), subject("run-image", &run_layer)],
            CDX,
            r#"{"bomFormat":"CycloneDX"}"#,
        );
        assert_eq!(
            place(&run_image, &f.image, &metadata, Some("example/node")),
            Ok(Place::NoBuildpack)
        );
        // Without the label's topLayer the same subject is no layer the label records.
        assert_eq!(
            place_rule(&f, &run_image, &label()).rule,
            Rule::UnrecordedLayer
        );
        // A run-image layer and a buildpack layer in one statement: two places.
        let both = statement(
            vec![
                f.image_subject(),
                subject("run-image", &run_layer),
                subject("example/node:modules", &layer_hex()),
            ],
            CDX,
            r#"{"bomFormat":"CycloneDX"}"#,
        );
        assert_eq!(place_rule(&f, &both, &metadata).rule, Rule::TwoPlaces);
    }

    #[test]
    fn a_label_with_an_invalid_buildpack_id() {
        let f = Fixture::new();
        let failure = place_rule(&f, &f.layer_statement(), &label_of(&["example/node", ""]));
        assert_eq!(failure.rule, Rule::BadLabel);
    }

    /// The path `place` gives `statement`, and what decided it.
    fn placed(
        f: &Fixture,
        statement: &Statement,
        metadata: &LifecycleMetadata,
        annotated: Option<&str>,
    ) -> (String, Placement) {
        match place(statement, &f.image, metadata, annotated).unwrap() {
            Place::At { path, placement } => (path.relative().display().to_string(), placement),
            other => panic!("not placed: {other:?}"),
        }
    }

    #[test]
    fn a_bare_layer_name_takes_its_buildpack_from_the_label() {
        let f = Fixture::new();
        let s = statement(
            vec![f.image_subject(), subject("modules", &layer_hex())],
            CDX,
            "{}",
        );
        // The annotation plays no part: the label's one buildpack with that layer and diffID does.
        for annotated in [None, Some("example/java")] {
            assert_eq!(
                placed(&f, &s, &label(), annotated),
                (
                    "example_node/modules/sbom.cdx.json".into(),
                    Placement::Signed
                )
            );
        }
        // A name that is no layer name, and a layer name the label does not record with that
        // diffID, fail.
        let s = statement(
            vec![f.image_subject(), subject("..", &layer_hex())],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::LayerSubjectName);
        assert!(
            failure
                .message
                .starts_with("layer subject `..` is neither <buildpack>:<layer> nor a layer name"),
            "{failure}"
        );
        let s = statement(
            vec![f.image_subject(), subject("jre", &layer_hex())],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::UnrecordedLayer);
        assert_eq!(
            failure.message,
            format!(
                "subject `jre` (sha256:{}) is no layer the image's label records under that name",
                layer_hex()
            )
        );
        let s = statement(
            vec![f.image_subject(), subject("example/node:..", &layer_hex())],
            CDX,
            "{}",
        );
        assert_eq!(place_rule(&f, &s, &label()).rule, Rule::LayerSubjectName);
    }

    #[test]
    fn a_bare_layer_name_two_buildpacks_record_is_ambiguous() {
        let f = Fixture::new();
        let layer = serde_json::json!({"modules": {"sha": format!("sha256:{}", layer_hex()), "launch": true}});
        let metadata = LifecycleMetadata::from_json(
            &serde_json::json!({"buildpacks": [
                {"key": "example/node", "version": "1", "layers": layer},
                {"key": "example/yarn", "version": "1", "layers": layer},
            ]})
            .to_string(),
        )
        .unwrap();
        let s = statement(
            vec![f.image_subject(), subject("modules", &layer_hex())],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &metadata);
        assert_eq!(failure.rule, Rule::AmbiguousLayer);
        assert_eq!(
            failure.message,
            format!(
                "subject `modules` (sha256:{}) is that layer of several buildpacks in the image's label: example/node and example/yarn",
                layer_hex()
            )
        );
        // Named with its buildpack, it is not ambiguous.
        let s = statement(
            vec![
                f.image_subject(),
                subject("example/yarn:modules", &layer_hex()),
            ],
            CDX,
            "{}",
        );
        assert_eq!(
            placed(&f, &s, &metadata, None).0,
            "example_yarn/modules/sbom.cdx.json"
        );
    }

    #[test]
    fn a_compressed_layer_digest_maps_to_its_diff_id() {
        let mut f = Fixture::new();
        let compressed = Descriptor::for_bytes(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            b"gzip of modules",
        );
        let compressed_hex = compressed.digest.hex().to_string();
        f.image.manifest.layers = vec![compressed];
        assert_eq!(
            diff_id_of(&f.image, &compressed_hex),
            Some(format!("sha256:{}", layer_hex()))
        );
        for name in ["modules", "example/node:modules"] {
            let s = statement(
                vec![f.image_subject(), subject(name, &compressed_hex)],
                CDX,
                r#"{"bomFormat":"CycloneDX"}"#,
            );
            assert_eq!(
                placed(&f, &s, &label(), None),
                (
                    "example_node/modules/sbom.cdx.json".into(),
                    Placement::Signed
                )
            );
            // And it verifies: a layer of this image.
            assert!(f.verdict(f.attest(&s, &[])).ok(), "{name}");
        }
        // A digest that is neither: foreign.
        let s = statement(
            vec![f.image_subject(), subject("modules", &hex_of(b"elsewhere"))],
            CDX,
            "{}",
        );
        assert_eq!(place_rule(&f, &s, &label()).rule, Rule::ForeignSubject);
    }

    #[test]
    fn an_image_only_statement_is_placed_by_the_annotation_marked_unsigned() {
        let f = Fixture::new();
        let s = statement(vec![f.image_subject()], CDX, "{}");
        assert_eq!(
            placed(&f, &s, &label(), Some("example/java")),
            (
                "example_java/sbom.cdx.json".into(),
                Placement::UnsignedAnnotation
            )
        );
        // An annotation naming no buildpack of the label, or none: no buildpack, not a failure.
        for annotated in [None, Some("example/other"), Some("")] {
            assert_eq!(
                place(&s, &f.image, &label(), annotated).unwrap(),
                Place::NoBuildpack
            );
        }
        // A signed buildpack subject wins over the annotation.
        let s = statement(
            vec![f.image_subject(), subject("example/node", &f.image_hex())],
            CDX,
            "{}",
        );
        assert_eq!(
            placed(&f, &s, &label(), Some("example/java")),
            ("example_node/sbom.cdx.json".into(), Placement::Signed)
        );
    }

    #[test]
    fn a_buildpack_not_in_the_label() {
        let f = Fixture::new();
        let s = statement(
            vec![
                f.image_subject(),
                subject("example/other:modules", &layer_hex()),
            ],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::UnknownBuildpack);
        assert_eq!(
            failure.message,
            "buildpack `example/other` is not in the image's label"
        );
    }

    #[test]
    fn a_layer_the_label_does_not_record() {
        let f = Fixture::new();
        let s = statement(
            vec![f.image_subject(), subject("example/java:jre", &layer_hex())],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::UnrecordedLayer);
        assert_eq!(
            failure.message,
            format!(
                "subject `example/java:jre` (sha256:{}) is not the layer the image's label records for it (none)",
                layer_hex()
            )
        );
    }

    #[test]
    fn two_places_in_one_statement() {
        let f = Fixture::new();
        let s = statement(
            vec![
                subject("example/node", &f.image_hex()),
                subject("example/java", &f.image_hex()),
            ],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::TwoPlaces);
        assert_eq!(
            failure.message,
            "the statement names two places: example/node and example/java"
        );
    }

    #[test]
    fn no_place_at_all() {
        let f = Fixture::new();
        let s = statement(vec![f.image_subject()], CDX, "{}");
        assert_eq!(
            place(&s, &f.image, &label(), None).unwrap(),
            Place::NoBuildpack
        );
        // Not an SBOM, or a build SBOM: nothing to place, and no failure.
        let provenance = statement(
            vec![f.image_subject()],
            "https://slsa.dev/provenance/v1",
            "{}",
        );
        assert_eq!(
            place(&provenance, &f.image, &label(), None).unwrap(),
            Place::NotLaunchSbom
        );
    }

    fn plan(
        f: &Fixture,
        fetched: &[Fetched],
        keys: &[cnb_dsse::VerifyingKey],
        policy: Policy,
    ) -> Plan {
        plan_restore(
            &f.image,
            &label(),
            fetched,
            &Trust::keys(keys),
            &Request::default(),
            policy,
            false,
        )
    }

    #[test]
    fn an_attestation_the_registry_failed_to_give_is_unreadable_not_left_out() {
        let f = Fixture::new();
        let mut unread = f.attest(&f.layer_statement(), &[]);
        unread.manifest = Err(crate::inspect::Unread::fetch("registry answered 503"));
        let java = statement(
            vec![subject("example/java", &f.image_hex())],
            CDX,
            r#"{"bomFormat":"CycloneDX","by":"java"}"#,
        );
        let fetched = [unread, f.attest(&java, &[])];
        for policy in [Policy::All, Policy::Newest] {
            let plan = plan(&f, &fetched, &[f.key()], policy);
            assert!(plan.failures.is_empty() && plan.warnings.is_empty());
            assert!(plan.left_out.is_empty(), "{:?}", plan.left_out);
            assert_eq!(plan.unreadable.len(), 1);
            assert_eq!(plan.unreadable[0].failure.rule, Rule::FetchFailed);
            // What verified is written.
            assert_eq!(plan.files.len(), 1);
        }
    }

    #[test]
    fn an_unverifiable_attestation_is_left_out_under_either_policy() {
        let f = Fixture::new();
        let mut tampered = f.attest(&f.layer_statement(), &[]);
        tampered.layer = Err("blob does not match its digest".into());
        let java = statement(
            vec![subject("example/java", &f.image_hex())],
            CDX,
            r#"{"bomFormat":"CycloneDX","by":"java"}"#,
        );
        let fetched = [tampered, f.attest(&java, &[])];
        for policy in [Policy::All, Policy::Newest] {
            let plan = plan(&f, &fetched, &[f.key()], policy);
            assert!(plan.failures.is_empty() && plan.warnings.is_empty());
            assert_eq!(plan.left_out.len(), 1);
            assert_eq!(plan.left_out[0].failure.rule, Rule::Blob);
            // Only the verified one is written, byte for byte.
            assert_eq!(plan.files.len(), 1);
            assert_eq!(plan.files[0].bytes, java.predicate());
            assert_eq!(
                plan.files[0].path.relative().display().to_string(),
                "example_java/sbom.cdx.json"
            );
        }
    }

    #[test]
    fn any_given_key_verifies_and_unsigned_ones_are_left_out() {
        let f = Fixture::new();
        let other = cnb_dsse::SigningKey::generate().unwrap();
        let third = cnb_dsse::SigningKey::generate().unwrap();
        let java = statement(
            vec![subject("example/java", &f.image_hex())],
            CDX,
            r#"{"bomFormat":"CycloneDX","by":"java"}"#,
        );
        let by_other = {
            let envelope =
                cnb_dsse::Envelope::sign(cnb_dsse::IN_TOTO_PAYLOAD_TYPE, java.to_json(), &other)
                    .unwrap();
            f.referrer(&envelope, CDX, &[], None)
        };
        let fetched = [f.attest(&f.layer_statement(), &[]), by_other];
        // Both keys: everything.
        let both = plan(&f, &fetched, &[f.key(), other.verifying_key()], Policy::All);
        assert_eq!(both.files.len(), 2);
        assert!(both.left_out.is_empty() && both.failures.is_empty());
        // One key: the other's attestation is left out, the rest restored.
        let one = plan(&f, &fetched, &[f.key()], Policy::All);
        assert_eq!(one.files.len(), 1);
        assert!(one.failures.is_empty());
        assert_eq!(one.left_out.len(), 1);
        assert_eq!(one.left_out[0].failure.rule, Rule::Signature);
        assert!(
            one.left_out[0]
                .failure
                .message
                .starts_with(inspect::NOT_TRUSTED),
            "{}",
            one.left_out[0]
        );
        // No trusted key: nothing.
        let none = plan(&f, &fetched, &[third.verifying_key()], Policy::All);
        assert!(none.files.is_empty() && none.failures.is_empty());
        assert_eq!(none.left_out.len(), 2);
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["left-out"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_platform_attestation_is_noted_and_never_blocks() {
        let f = Fixture::new();
        let run_image = statement(
            vec![f.image_subject()],
            CDX,
            r#"{"bomFormat":"CycloneDX","by":"run image"}"#,
        );
        let provenance = statement(
            vec![f.image_subject()],
            "https://slsa.dev/provenance/v1",
            "{}",
        );
        let fetched = [
            f.attest(&run_image, &[]),
            f.attest(&provenance, &[]),
            f.attest(&f.layer_statement(), &[]),
        ];
        let plan = plan(&f, &fetched, &[f.key()], Policy::All);
        assert!(plan.failures.is_empty(), "{:?}", plan.failures);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.skipped, 2);
        assert_eq!(plan.not_restored.len(), 1);
        assert_eq!(plan.not_restored[0].failure.rule, Rule::NoBuildpack);
        assert_eq!(
            plan.not_restored[0].failure.message,
            "belongs to no buildpack of this image: not restored"
        );
    }

    #[test]
    fn unsigned_placement_is_reported_and_can_be_refused() {
        let f = Fixture::new();
        let s = statement(vec![f.image_subject()], CDX, r#"{"bomFormat":"CycloneDX"}"#);
        // The annotation on the layer descriptor, as the RFC and cosign write it.
        let mut fetched = f.attest(&s, &[]);
        if let Ok(manifest) = &mut fetched.manifest {
            manifest.layers[0].annotations = Some(BTreeMap::from([(
                annotations::BUILDPACK_ID.to_string(),
                "example/java".to_string(),
            )]));
        }
        let fetched = [fetched];
        let open = plan(&f, &fetched, &[f.key()], Policy::All);
        assert_eq!(open.unsigned_placement, vec!["example_java/sbom.cdx.json"]);
        assert_eq!(open.files.len(), 1);
        assert_eq!(open.files[0].placement, Placement::UnsignedAnnotation);
        let json = serde_json::to_value(&open).unwrap();
        assert_eq!(
            json["unsigned-placement"],
            serde_json::json!(["example_java/sbom.cdx.json"])
        );
        let strict = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::All,
            true,
        );
        assert!(strict.files.is_empty() && strict.failures.is_empty());
        assert!(strict.unsigned_placement.is_empty());
        assert_eq!(strict.not_restored[0].failure.rule, Rule::UnsignedPlacement);
    }

    #[test]
    fn an_rfc_literal_attestation_verifies_and_restores() {
        use cnb_referrers::format::{COSIGN_SIGNATURE, DSSE_ENVELOPE, PREDICATE_TYPE};
        use cnb_referrers::manifest::OCI_MANIFEST;
        use cnb_referrers::ImageManifest;
        let f = Fixture::new();
        // In-toto v0.1, the bare layer name, the buildpack only on the layer descriptor.
        let s = Statement::new(
            cnb_intoto::StatementVersion::V0_1,
            vec![
                subject("registry.example/app@sha256:x", &f.image_hex()),
                subject("modules", &layer_hex()),
            ],
            CDX,
            br#"{"bomFormat":"CycloneDX","specVersion":"1.4"}"#.to_vec(),
        )
        .unwrap();
        let envelope =
            cnb_dsse::Envelope::sign(cnb_dsse::IN_TOTO_PAYLOAD_TYPE, s.to_json(), &f.key).unwrap();
        let bytes = envelope.to_json();
        let mut layer = Descriptor::for_bytes(DSSE_ENVELOPE, &bytes);
        layer.annotations = Some(BTreeMap::from([
            (PREDICATE_TYPE.to_string(), CDX.to_string()),
            (COSIGN_SIGNATURE.to_string(), String::new()),
            (
                annotations::BUILDPACK_ID.to_string(),
                "example/node".to_string(),
            ),
        ]));
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::for_bytes("application/vnd.oci.image.config.v1+json", b"{}"),
            layers: vec![layer],
            subject: Some(f.image.descriptor.bare()),
            annotations: None,
        };
        let fetched = Fetched {
            descriptor: Descriptor::for_bytes(OCI_MANIFEST, &manifest.to_json()),
            manifest: Ok(manifest),
            layer: Ok(bytes.into()),
            source: "referrer",
        };
        let listed = inspect::list(std::slice::from_ref(&fetched));
        assert_eq!(listed[0].format.as_deref(), Some("dsse"));
        assert_eq!(listed[0].predicate_type.as_deref(), Some(CDX));
        assert_eq!(listed[0].buildpack.as_deref(), Some("example/node"));
        let verdicts = verify_placed(
            &f.image,
            Some(&label()),
            std::slice::from_ref(&fetched),
            &Trust::keys(&[f.key()]),
        );
        assert!(verdicts[0].ok(), "{:?}", verdicts[0].failure);
        let plan = plan(&f, &[fetched], &[f.key()], Policy::All);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].placement, Placement::Signed);
        assert_eq!(plan.files[0].bytes, s.predicate());
        assert_eq!(
            plan.files[0].path.relative().display().to_string(),
            "example_node/modules/sbom.cdx.json"
        );
    }

    #[test]
    fn verify_holds_to_the_placement_rules() {
        let f = Fixture::new();
        // Correctly signed, about a layer of this image, but under another buildpack's name.
        let s = statement(
            vec![f.image_subject(), subject("example/java:jre", &layer_hex())],
            CDX,
            "{}",
        );
        let fetched = [f.attest(&s, &[])];
        assert!(inspect::verify(&f.image, &fetched, &Trust::keys(&[f.key()]))[0].ok());
        let verdicts = verify_placed(&f.image, Some(&label()), &fetched, &Trust::keys(&[f.key()]));
        let failure = verdicts[0].failure.as_ref().unwrap();
        assert_eq!(failure.rule, Rule::UnrecordedLayer);
        // A platform attestation and an annotation-placed one pass.
        let platform = statement(vec![f.image_subject()], CDX, "{}");
        let verdicts = verify_placed(
            &f.image,
            Some(&label()),
            &[f.attest(&platform, &[])],
            &Trust::keys(&[f.key()]),
        );
        assert!(verdicts[0].ok());
    }

    #[test]
    fn a_placement_failure_names_the_attestation() {
        let f = Fixture::new();
        let s = statement(
            vec![
                f.image_subject(),
                subject("example/other:modules", &layer_hex()),
            ],
            CDX,
            "{}",
        );
        let fetched = [f.attest(&s, &[])];
        let plan = plan(&f, &fetched, &[f.key()], Policy::All);
        assert_eq!(plan.failures.len(), 1);
        let problem = &plan.failures[0];
        assert_eq!(problem.failure.rule, Rule::UnknownBuildpack);
        assert_eq!(
            problem.attestation,
            format!(
                "{} (no buildpack, {CDX}, dsse)",
                fetched[0].descriptor.digest
            )
        );
    }

    /// Two signed SBOMs for the layer, with different bytes, the second one newer.
    fn two_versions(f: &Fixture) -> [Fetched; 2] {
        let older = f.layer_statement();
        let newer = statement(
            older.subjects().to_vec(),
            CDX,
            r#"{"bomFormat":"CycloneDX","version":2}"#,
        );
        [
            f.attest_at(&older, &[], Some("2024-01-01T00:00:00Z")),
            f.attest_at(&newer, &[], Some("2025-01-01T00:00:00Z")),
        ]
    }

    #[test]
    fn two_signed_sboms_for_one_place_conflict() {
        let f = Fixture::new();
        let fetched = two_versions(&f);
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::All,
            false,
        );
        assert!(plan.files.is_empty());
        assert_eq!(plan.failures.len(), 1);
        let failure = &plan.failures[0].failure;
        assert_eq!(failure.rule, Rule::Conflict);
        assert_eq!(
            failure.message,
            format!(
                "conflicts with {} for example_node/modules/sbom.cdx.json: two different signed SBOMs for one place",
                fetched[0].descriptor.digest
            )
        );
    }

    #[test]
    fn under_newest_the_older_sbom_is_superseded() {
        let f = Fixture::new();
        let fetched = two_versions(&f);
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::Newest,
            false,
        );
        assert!(plan.failures.is_empty());
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.warnings.len(), 1);
        let warning = &plan.warnings[0];
        assert_eq!(warning.failure.rule, Rule::Superseded);
        assert_eq!(
            warning.attestation,
            fetched[0].descriptor.digest.to_string()
        );
        assert_eq!(
            warning.failure.message,
            format!(
                "older than {} for example_node/modules/sbom.cdx.json; not restored",
                fetched[1].descriptor.digest
            )
        );
        // Listed the other way round, the older one loses all the same.
        let reversed = [fetched[1].clone(), fetched[0].clone()];
        let plan = plan_restore(
            &f.image,
            &label(),
            &reversed,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::Newest,
            false,
        );
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].failure.rule, Rule::Superseded);
    }

    /// Image-scoped SBOMs of `a/b` and `a_b`: both escape to the directory `a_b`.
    fn escaping_to_one_directory(f: &Fixture) -> Vec<Fetched> {
        ["a/b", "a_b"]
            .iter()
            .map(|id| {
                let s = statement(
                    vec![subject(id, &f.image_hex())],
                    CDX,
                    &format!(r#"{{"bomFormat":"CycloneDX","by":"{id}"}}"#),
                );
                f.attest(&s, &[])
            })
            .collect()
    }

    #[test]
    fn two_places_that_are_one_file() {
        let f = Fixture::new();
        let metadata = label_of(&["example/node", "a/b", "a_b"]);
        let fetched = escaping_to_one_directory(&f);
        let plan = plan_restore(
            &f.image,
            &metadata,
            &fetched,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::All,
            false,
        );
        assert!(plan.files.is_empty());
        assert_eq!(plan.failures.len(), 1);
        let problem = &plan.failures[0];
        assert_eq!(problem.failure.rule, Rule::SameFile);
        // The problem names the attestations, as every plan problem does.
        assert_eq!(
            problem.attestation,
            fetched[1].descriptor.digest.to_string()
        );
        assert_eq!(
            problem.failure.message,
            format!(
                "a_b/sbom.cdx.json (buildpack a_b) and a_b/sbom.cdx.json (buildpack a/b) (from {}) would be the same file (their buildpack IDs escape to one directory, or the names differ only in letter case or Unicode normalisation)",
                fetched[0].descriptor.digest
            )
        );
    }

    #[test]
    fn verify_refuses_places_a_restore_refuses_as_one_file() {
        let f = Fixture::new();
        let metadata = label_of(&["example/node", "a/b", "a_b"]);
        let fetched = escaping_to_one_directory(&f);
        let verdicts = verify_placed(
            &f.image,
            Some(&metadata),
            &fetched,
            &Trust::keys(&[f.key()]),
        );
        let rules: Vec<Option<Rule>> = verdicts
            .iter()
            .map(|v| v.failure.as_ref().map(|f| f.rule))
            .collect();
        assert!(rules.contains(&Some(Rule::SameFile)), "{rules:?}");
        // One SBOM stored twice is one place, not a collision.
        let s = f.layer_statement();
        let twice = [f.attest(&s, &[]), f.attest(&s, &[])];
        let verdicts = verify_placed(&f.image, Some(&label()), &twice, &Trust::keys(&[f.key()]));
        assert!(verdicts.iter().all(|v| v.ok()), "{verdicts:?}");
    }

    /// The plan check over places, as attested files and SBOM-layer files both get it.
    fn places(paths: &[(&str, Option<&str>)]) -> Vec<(SbomPath, String)> {
        paths
            .iter()
            .enumerate()
            .map(|(i, (id, layer))| {
                (
                    SbomPath::Sbom {
                        buildpack: BuildpackId::new(*id).unwrap(),
                        layer: layer.map(|l| LayerName::new(l).unwrap()),
                        format: SbomFormat::CycloneDx,
                    },
                    format!("source-{i}"),
                )
            })
            .collect()
    }

    #[test]
    fn a_file_that_is_the_directory_of_another_refuses_both() {
        let (problems, refused) = check_places(&places(&[
            ("acme/tools", None),
            ("acme/tools", Some("sbom.cdx.json")),
        ]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].failure.rule, Rule::FileAndDirectory);
        assert_eq!(problems[0].attestation, "source-1");
        assert_eq!(
            problems[0].failure.message,
            "acme_tools/sbom.cdx.json/sbom.cdx.json (buildpack acme/tools) would be written inside acme_tools/sbom.cdx.json (buildpack acme/tools) (from source-0), a file: one name is a file and the other's directory, so neither can be written"
        );
        assert_eq!(refused.len(), 2);
        // Letter case folded: the same on a case-insensitive file system.
        let (problems, _) = check_places(&places(&[
            ("acme/tools", None),
            ("Acme/Tools", Some("SBOM.cdx.json")),
        ]));
        assert_eq!(problems[0].failure.rule, Rule::FileAndDirectory);
    }

    #[test]
    fn nfc_and_nfd_spellings_are_one_file_and_hidden_characters_are_refused() {
        let (problems, refused) = check_places(&places(&[
            ("acme/caf\u{e9}", None),
            ("acme/cafe\u{301}", None),
        ]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].failure.rule, Rule::SameFile);
        assert_eq!(refused.len(), 2);
        let (problems, refused) = check_places(&places(&[
            ("acme/to\u{200b}ols", None),
            ("acme/\u{202e}sloot", None),
            ("acme/tools", None),
        ]));
        let rules: Vec<Rule> = problems.iter().map(|p| p.failure.rule).collect();
        assert_eq!(rules, [Rule::HiddenCharacter, Rule::HiddenCharacter]);
        assert!(problems[0].failure.message.contains("U+200B"));
        assert!(problems[1].failure.message.contains("U+202E"));
        assert_eq!(refused.len(), 2);
    }

    #[test]
    fn a_plan_serialises_problems_as_name_and_reason() {
        let f = Fixture::new();
        let fetched = two_versions(&f);
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &Trust::keys(&[f.key()]),
            &Request::default(),
            Policy::All,
            false,
        );
        let json = serde_json::to_value(&plan).unwrap();
        let problem = &plan.failures[0];
        assert_eq!(
            json["failures"],
            serde_json::json!([[problem.attestation, problem.failure.message]])
        );
        assert_eq!(json["warnings"], serde_json::json!([]));
    }

    #[test]
    fn an_unknown_policy() {
        assert_eq!("newest".parse::<Policy>(), Ok(Policy::Newest));
        let error = "latest".parse::<Policy>().unwrap_err();
        assert_eq!(error.given, "latest");
        assert_eq!(error.to_string(), "policy `latest`: expected all or newest");
    }
}
