//! Mapping escaped buildpack directory names back to real buildpack IDs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{sanitize, Error};
use crate::ids::BuildpackId;
use crate::platform::{GroupToml, LifecycleMetadata};

/// The known buildpack IDs, indexed by their escaped directory name.
///
/// `launch.EscapeID` is lossy (`a/b` and `a_b` both become `a_b`), so the real ID must come
/// from `group.toml` or the label's `buildpacks[].key`. The index always knows
/// `buildpacksio/lifecycle` (the owner of the launcher SBOM).
///
/// ```
/// use cnb_sbom_discovery::{BuildpackId, BuildpackIndex};
/// let mut index = BuildpackIndex::new();
/// index.insert(BuildpackId::new("paketo-buildpacks/node-engine")?);
/// assert_eq!(index.resolve("paketo-buildpacks_node-engine")?.as_str(), "paketo-buildpacks/node-engine");
/// assert_eq!(index.resolve("buildpacksio_lifecycle")?.as_str(), "buildpacksio/lifecycle");
/// assert!(index.resolve("someone_else").is_err());
/// # Ok::<(), cnb_sbom_discovery::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackIndex {
    by_escaped: BTreeMap<String, BTreeSet<BuildpackId>>,
}

impl Default for BuildpackIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildpackIndex {
    /// An index that knows only `buildpacksio/lifecycle`.
    pub fn new() -> Self {
        let mut index = BuildpackIndex {
            by_escaped: BTreeMap::new(),
        };
        index.insert(BuildpackId::lifecycle());
        index
    }

    /// An index of the given IDs (plus `buildpacksio/lifecycle`).
    pub fn from_ids(ids: impl IntoIterator<Item = BuildpackId>) -> Self {
        let mut index = Self::new();
        for id in ids {
            index.insert(id);
        }
        index
    }

    /// An index of the `[[group]]` buildpacks of `group.toml`.
    pub fn from_group(group: &GroupToml) -> Self {
        Self::from_ids(group.buildpack_ids())
    }

    /// An index of the label's `buildpacks[].key` values (fails on an invalid key).
    pub fn from_metadata(metadata: &LifecycleMetadata) -> Result<Self, Error> {
        Ok(Self::from_ids(metadata.buildpack_ids()?))
    }

    /// Add one ID.
    pub fn insert(&mut self, id: BuildpackId) {
        self.by_escaped.entry(id.escaped()).or_default().insert(id);
    }

    /// Add the `[[group]]` buildpacks of `group.toml`.
    pub fn extend_from_group(&mut self, group: &GroupToml) {
        for id in group.buildpack_ids() {
            self.insert(id);
        }
    }

    /// Add the label's `buildpacks[].key` values.
    pub fn extend_from_metadata(&mut self, metadata: &LifecycleMetadata) -> Result<(), Error> {
        for id in metadata.buildpack_ids()? {
            self.insert(id);
        }
        Ok(())
    }

    /// Every known ID, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &BuildpackId> {
        self.by_escaped.values().flatten()
    }

    /// The real ID of an escaped directory name. Fails if no known ID escapes to it, or if
    /// several do.
    pub fn resolve(&self, escaped_dir_name: &str) -> Result<BuildpackId, Error> {
        self.lookup(escaped_dir_name, None)
    }

    /// Like [`BuildpackIndex::resolve`], with errors that name the directory holding `name`.
    pub fn resolve_in(&self, escaped_dir_name: &str, dir: &Path) -> Result<BuildpackId, Error> {
        self.lookup(escaped_dir_name, Some(dir))
    }

    fn lookup(&self, name: &str, dir: Option<&Path>) -> Result<BuildpackId, Error> {
        let candidates = self.by_escaped.get(name);
        match candidates.map(|c| c.iter().collect::<Vec<_>>()) {
            Some(c) if c.len() == 1 => Ok(c[0].clone()),
            Some(c) if c.len() > 1 => Err(Error::AmbiguousBuildpackDir {
                name: sanitize(name),
                dir: dir.map(Path::to_path_buf),
                candidates: c.iter().map(|id| format!("`{id}`")).collect(),
            }),
            _ => Err(Error::UnknownBuildpackDir {
                name: sanitize(name),
                dir: dir.map(Path::to_path_buf),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguity_is_an_error() {
        let index = BuildpackIndex::from_ids([
            BuildpackId::new("a/b").unwrap(),
            BuildpackId::new("a_b").unwrap(),
            BuildpackId::new("c/d").unwrap(),
        ]);
        let err = index.resolve("a_b").unwrap_err().to_string();
        assert!(err.contains("ambiguous buildpack directory `a_b`"), "{err}");
        assert!(err.contains("`a/b`") && err.contains("`a_b`"), "{err}");
        assert_eq!(index.resolve("c_d").unwrap().as_str(), "c/d");
        let err = index
            .resolve_in("x_y", Path::new("/layers/sbom/launch"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown buildpack directory `x_y` in /layers/sbom/launch: not in group.toml or the image label"
        );
    }
}
