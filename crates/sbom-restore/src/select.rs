//! From verified attestations to files: which SBOMs were asked for, and where each one goes.
//!
//! Selection happens twice. Before anything is downloaded, [`Request::wants`] reads the unsigned
//! annotations of each listed referrer, to skip blobs that cannot be what was asked for. After
//! verification, [`place`] decides from signed data alone: the predicate type gives the format, and
//! the subjects give the buildpack and layer. The image's own label is the cross-check: the
//! buildpack must be in it, and a layer subject's diffID must be the one the label records for that
//! layer.

use std::collections::BTreeMap;

use cnb_dsse::VerifyingKey;
use cnb_intoto::Statement;
use cnb_referrers::format::{BUNDLE_PREDICATE_TYPE, PREDICATE_TYPE};
use cnb_referrers::layout::Image;
use cnb_referrers::Descriptor;
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_discovery::{BuildpackId, LayerName, SbomFormat};
use serde::{Serialize, Serializer};

use cnb_attestation_config::annotations;

use crate::inspect::{self, Fetched};
use crate::path::SbomPath;
use crate::write::Restored;
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

/// Where a verified SBOM statement's predicate goes, from signed data and the image's label only.
/// `Ok(None)` for a statement that is not an SBOM (an image signature, provenance).
pub fn place(
    statement: &Statement,
    image: &Image,
    metadata: &LifecycleMetadata,
) -> Result<Option<SbomPath>, Failure> {
    let Some(format) = SbomFormat::from_predicate_type(statement.predicate_type()) else {
        return Ok(None);
    };
    // A build or cache SBOM names its kind in a signed subject (`...#build`, `...#cache`): it is
    // never restored as a launch SBOM.
    if statement.subjects().iter().any(|s| s.name.contains('#')) {
        return Ok(None);
    }
    let image_hex = image.descriptor.digest.hex();
    let in_label: Vec<BuildpackId> = metadata
        .buildpack_ids()
        .map_err(|e| Failure::new(Rule::BadLabel, e.to_string()))?;
    let known = |id: &BuildpackId| id.is_lifecycle() || in_label.contains(id);
    let mut placed: Option<(BuildpackId, Option<LayerName>)> = None;
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
            // A layer subject: `<bp-id>:<layer>` whose diffID the label records for that layer.
            let bad_name = |message: String| Failure::new(Rule::LayerSubjectName, message);
            let (bp, layer) = subject.name.rsplit_once(':').ok_or_else(|| {
                bad_name(format!(
                    "layer subject `{}` is not <buildpack>:<layer>",
                    subject.name
                ))
            })?;
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
            let diff_id = format!("sha256:{hex}");
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
    let (buildpack, layer) = placed.ok_or_else(|| {
        Failure::new(
            Rule::NoPlace,
            "no signed subject names a buildpack of this image: cannot tell where the SBOM goes",
        )
    })?;
    Ok(Some(SbomPath::Sbom {
        buildpack,
        layer,
        format,
    }))
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
    /// Attestations that failed, with the rule and reason; nothing is written for them.
    pub failures: Vec<Problem>,
    /// Under [`Policy::Newest`]: attestations that failed, or lost to a newer one, reported only.
    pub warnings: Vec<Problem>,
    /// Verified referrers that are not SBOMs (image signatures, provenance), or not requested.
    pub skipped: usize,
}

/// The SBOM chosen so far for one place: its bytes, the attestations backing it, and its rank
/// (`created` annotation, listing order) for [`Policy::Newest`].
type Candidate = (Vec<u8>, Vec<String>, (String, usize));

/// Verifies `fetched` and decides the files to restore. Several verified attestations of the same
/// SBOM (one per storage format) collapse into one file; different bytes for the same place fail
/// closed, naming both.
pub fn plan_restore(
    image: &Image,
    metadata: &LifecycleMetadata,
    fetched: &[Fetched],
    key: &VerifyingKey,
    request: &Request,
    policy: Policy,
) -> Plan {
    let mut plan = Plan::default();
    // Per place: the bytes, the attestations backing them, and (created, listing order) to rank.
    let mut chosen: BTreeMap<SbomPath, Candidate> = BTreeMap::new();
    let mut conflicted: Vec<SbomPath> = Vec::new();
    for (order, (listed, verified)) in inspect::verify_results(image, fetched, key)
        .into_iter()
        .enumerate()
    {
        let name = inspect::describe(&listed);
        let digest = listed.manifest_digest.clone();
        let rank = (listed.created.clone().unwrap_or_default(), order);
        let statement = match verified {
            Ok(statement) => statement,
            Err(failure) => {
                match policy {
                    Policy::All => plan.failures.push(Problem::new(name, failure)),
                    Policy::Newest => plan.warnings.push(Problem::new(name, failure)),
                }
                continue;
            }
        };
        match place(&statement, image, metadata) {
            Err(failure) => plan.failures.push(Problem::new(name, failure)),
            Ok(None) => plan.skipped += 1,
            Ok(Some(path)) if !request.accepts(&path) => plan.skipped += 1,
            Ok(Some(path)) => {
                let bytes = statement.into_predicate();
                match chosen.get_mut(&path) {
                    Some((existing, sources, _)) if *existing == bytes => sources.push(digest),
                    Some((existing, sources, best)) if policy == Policy::Newest => {
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
                    Some((_, sources, _)) => {
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
                        chosen.insert(path, (bytes, vec![digest], rank));
                    }
                }
            }
        }
    }
    // Two buildpack IDs can escape to one directory (`a/b` and `a_b`), and two names differing
    // only in letter case are one file on a case-insensitive file system (macOS, Windows): never
    // let one overwrite the other; both are refused.
    let mut by_relative: BTreeMap<String, SbomPath> = BTreeMap::new();
    for path in chosen.keys() {
        let relative = path.relative().display().to_string();
        if let Some(other) = by_relative.insert(relative.to_lowercase(), path.clone()) {
            plan.failures.push(Problem::new(
                relative,
                Failure::new(
                    Rule::SameFile,
                    format!(
                        "{} and {} would be the same file (their buildpack IDs escape to one directory, or the paths differ only in letter case)",
                        describe_path(&other),
                        describe_path(path)
                    ),
                ),
            ));
            conflicted.push(other);
            conflicted.push(path.clone());
        }
    }
    for path in conflicted {
        chosen.remove(&path);
    }
    for (path, (bytes, sources, _)) in chosen {
        plan.restored
            .insert(path.relative().display().to_string(), sources.clone());
        plan.files.push(Restored {
            path,
            bytes,
            source: sources.join(","),
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
    use crate::inspect::tests::{layer_hex, statement, subject, Fixture};

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
        place(statement, &f.image, metadata).unwrap_err()
    }

    #[test]
    fn a_layer_sbom_is_placed_under_its_layer() {
        let f = Fixture::new();
        let path = place(&f.layer_statement(), &f.image, &label())
            .unwrap()
            .unwrap();
        assert_eq!(
            path.relative().display().to_string(),
            "example_node/modules/sbom.cdx.json"
        );
    }

    #[test]
    fn a_label_with_an_invalid_buildpack_id() {
        let f = Fixture::new();
        let failure = place_rule(&f, &f.layer_statement(), &label_of(&["example/node", ""]));
        assert_eq!(failure.rule, Rule::BadLabel);
    }

    #[test]
    fn a_layer_subject_that_is_not_buildpack_and_layer() {
        let f = Fixture::new();
        let s = statement(
            vec![f.image_subject(), subject("modules", &layer_hex())],
            CDX,
            "{}",
        );
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::LayerSubjectName);
        assert_eq!(
            failure.message,
            "layer subject `modules` is not <buildpack>:<layer>"
        );
        let s = statement(
            vec![f.image_subject(), subject("example/node:..", &layer_hex())],
            CDX,
            "{}",
        );
        assert_eq!(place_rule(&f, &s, &label()).rule, Rule::LayerSubjectName);
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
        let failure = place_rule(&f, &s, &label());
        assert_eq!(failure.rule, Rule::NoPlace);
        // Not an SBOM, or a build SBOM: nothing to place, and no failure.
        let provenance = statement(
            vec![f.image_subject()],
            "https://slsa.dev/provenance/v1",
            "{}",
        );
        assert_eq!(place(&provenance, &f.image, &label()).unwrap(), None);
    }

    #[test]
    fn a_failed_verification_is_a_failure_or_under_newest_a_warning() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Err("blob does not match its digest".into());
        let fetched = [fetched];
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &f.key(),
            &Request::default(),
            Policy::All,
        );
        assert_eq!(plan.failures.len(), 1);
        assert_eq!(plan.failures[0].failure.rule, Rule::Blob);
        assert!(plan.warnings.is_empty());
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &f.key(),
            &Request::default(),
            Policy::Newest,
        );
        assert!(plan.failures.is_empty());
        assert_eq!(plan.warnings[0].failure.rule, Rule::Blob);
    }

    #[test]
    fn a_placement_failure_names_the_attestation() {
        let f = Fixture::new();
        let s = statement(vec![f.image_subject()], CDX, "{}");
        let fetched = [f.attest(&s, &[])];
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &f.key(),
            &Request::default(),
            Policy::All,
        );
        assert_eq!(plan.failures.len(), 1);
        let problem = &plan.failures[0];
        assert_eq!(problem.failure.rule, Rule::NoPlace);
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
            &f.key(),
            &Request::default(),
            Policy::All,
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
            &f.key(),
            &Request::default(),
            Policy::Newest,
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
            &f.key(),
            &Request::default(),
            Policy::Newest,
        );
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].failure.rule, Rule::Superseded);
    }

    #[test]
    fn two_places_that_are_one_file() {
        let f = Fixture::new();
        let metadata = label_of(&["example/node", "a/b", "a_b"]);
        let fetched: Vec<Fetched> = ["a/b", "a_b"]
            .iter()
            .map(|id| {
                let s = statement(
                    vec![subject(id, &f.image_hex())],
                    CDX,
                    &format!(r#"{{"bomFormat":"CycloneDX","by":"{id}"}}"#),
                );
                f.attest(&s, &[])
            })
            .collect();
        let plan = plan_restore(
            &f.image,
            &metadata,
            &fetched,
            &f.key(),
            &Request::default(),
            Policy::All,
        );
        assert!(plan.files.is_empty());
        assert_eq!(plan.failures.len(), 1);
        let problem = &plan.failures[0];
        assert_eq!(problem.failure.rule, Rule::SameFile);
        assert_eq!(problem.attestation, "a_b/sbom.cdx.json");
        assert_eq!(
            problem.failure.message,
            "a_b/sbom.cdx.json (buildpack a/b) and a_b/sbom.cdx.json (buildpack a_b) would be the same file (their buildpack IDs escape to one directory, or the paths differ only in letter case)"
        );
    }

    #[test]
    fn a_plan_serialises_problems_as_name_and_reason() {
        let f = Fixture::new();
        let fetched = two_versions(&f);
        let plan = plan_restore(
            &f.image,
            &label(),
            &fetched,
            &f.key(),
            &Request::default(),
            Policy::All,
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
