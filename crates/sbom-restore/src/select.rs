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
use serde::Serialize;

use cnb_attestation_config::annotations;

use crate::inspect::{self, Fetched};
use crate::path::SbomPath;
use crate::write::Restored;

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
) -> Result<Option<SbomPath>, String> {
    let Some(format) = SbomFormat::from_predicate_type(statement.predicate_type()) else {
        return Ok(None);
    };
    // A build or cache SBOM names its kind in a signed subject (`...#build`, `...#cache`): it is
    // never restored as a launch SBOM.
    if statement.subjects().iter().any(|s| s.name.contains('#')) {
        return Ok(None);
    }
    let image_hex = image.descriptor.digest.hex();
    let in_label: Vec<BuildpackId> = metadata.buildpack_ids().map_err(|e| e.to_string())?;
    let known = |id: &BuildpackId| id.is_lifecycle() || in_label.contains(id);
    let mut placed: Option<(BuildpackId, Option<LayerName>)> = None;
    let mut set = |candidate: (BuildpackId, Option<LayerName>)| -> Result<(), String> {
        match &placed {
            Some(existing) if *existing != candidate => Err(format!(
                "the statement names two places: {} and {}",
                describe(existing),
                describe(&candidate)
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
            let (bp, layer) = subject.name.rsplit_once(':').ok_or_else(|| {
                format!(
                    "layer subject `{}` is not <buildpack>:<layer>",
                    subject.name
                )
            })?;
            let buildpack = BuildpackId::new(bp).map_err(|e| e.to_string())?;
            let layer = LayerName::new(layer).map_err(|e| e.to_string())?;
            if !known(&buildpack) {
                return Err(format!(
                    "buildpack `{buildpack}` is not in the image's label"
                ));
            }
            let recorded = if buildpack.is_lifecycle() && layer.as_str() == "launcher" {
                metadata.launcher_diff_id()
            } else {
                metadata.layer_diff_id(&buildpack, &layer)
            };
            let diff_id = format!("sha256:{hex}");
            if recorded != Some(diff_id.as_str()) {
                return Err(format!(
                    "subject `{}` ({diff_id}) is not the layer the image's label records for it ({})",
                    subject.name,
                    recorded.unwrap_or("none")
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
        "no signed subject names a buildpack of this image: cannot tell where the SBOM goes"
            .to_string()
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Policy::All),
            "newest" => Ok(Policy::Newest),
            other => Err(format!("policy `{other}`: expected all or newest")),
        }
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
    /// Attestations that failed, with the reason; nothing is written for them.
    pub failures: Vec<(String, String)>,
    /// Under [`Policy::Newest`]: attestations that failed, or lost to a newer one, reported only.
    pub warnings: Vec<(String, String)>,
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
    for (order, (verdict, statement)) in inspect::verify_each(image, fetched, key)
        .into_iter()
        .enumerate()
    {
        let name = verdict.name();
        let digest = verdict.listed.manifest_digest.clone();
        let rank = (verdict.listed.created.clone().unwrap_or_default(), order);
        let (Some(statement), None) = (statement, &verdict.failure) else {
            let reason = verdict.failure.clone().unwrap_or_default();
            match policy {
                Policy::All => plan.failures.push((name, reason)),
                Policy::Newest => plan.warnings.push((name, reason)),
            }
            continue;
        };
        match place(&statement, image, metadata) {
            Err(reason) => plan.failures.push((name, reason)),
            Ok(None) => plan.skipped += 1,
            Ok(Some(path)) if !request.accepts(&path) => plan.skipped += 1,
            Ok(Some(path)) => {
                let bytes = statement.into_predicate();
                match chosen.get_mut(&path) {
                    Some((existing, sources, _)) if *existing == bytes => sources.push(digest),
                    Some((existing, sources, best)) if policy == Policy::Newest => {
                        let place = path.relative().display().to_string();
                        if rank > *best {
                            plan.warnings.push((
                                sources.join(", "),
                                format!("older than {digest} for {place}; not restored"),
                            ));
                            *existing = bytes;
                            *sources = vec![digest];
                            *best = rank;
                        } else {
                            plan.warnings.push((
                                name,
                                format!(
                                    "older than {} for {place}; not restored",
                                    sources.join(", ")
                                ),
                            ));
                        }
                    }
                    Some((_, sources, _)) => {
                        plan.failures.push((
                            name,
                            format!(
                                "conflicts with {} for {}: two different signed SBOMs for one place",
                                sources.join(", "),
                                path.relative().display()
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
            plan.failures.push((
                relative,
                format!(
                    "{} and {} would be the same file (their buildpack IDs escape to one directory, or the paths differ only in letter case)",
                    describe_path(&other),
                    describe_path(path)
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
