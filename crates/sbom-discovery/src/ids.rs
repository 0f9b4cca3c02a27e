//! Validated buildpack IDs and layer names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{sanitize, Error};

/// Longest accepted buildpack ID or layer name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A buildpack ID as it appears in `group.toml` and the lifecycle label, e.g.
/// `paketo-buildpacks/node-engine`.
///
/// Accepted: non-empty, at most 255 bytes, no whitespace or control characters, no backslash, not
/// `.`, and no `/`-separated component that is `..` (so that the escaped form is always one safe
/// path component). `..` inside a component (`acme..tools/extra`) is an ordinary name: the
/// escaped form `acme..tools_extra` is one component that is neither `.` nor `..`.
///
/// ```
/// use cnb_sbom_discovery::BuildpackId;
/// let id = BuildpackId::new("paketo-buildpacks/node-engine").unwrap();
/// assert_eq!(id.escaped(), "paketo-buildpacks_node-engine");
/// assert!(BuildpackId::new("a/../b").is_err());
/// assert_eq!(BuildpackId::new("acme..tools/extra").unwrap().escaped(), "acme..tools_extra");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuildpackId(String);

impl BuildpackId {
    /// The ID RFC 0112 reserves for the lifecycle itself (owner of the launcher layer).
    pub const LIFECYCLE: &'static str = "buildpacksio/lifecycle";

    /// Validate and wrap an ID.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_NAME_LEN {
            Some("it is longer than 255 bytes")
        } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("it contains whitespace or control characters")
        } else if id.split('/').any(|component| component == "..") {
            Some("it has a `..` path component")
        } else if id == "." {
            Some("it is `.`")
        } else if id.contains('\\') {
            Some("it contains a backslash")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidBuildpackId {
                id: sanitize(&id),
                reason,
            }),
            None => Ok(BuildpackId(id)),
        }
    }

    /// `buildpacksio/lifecycle`.
    pub fn lifecycle() -> Self {
        BuildpackId(Self::LIFECYCLE.to_string())
    }

    /// Whether this is `buildpacksio/lifecycle`.
    pub fn is_lifecycle(&self) -> bool {
        self.0 == Self::LIFECYCLE
    }

    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lifecycle's directory name for this ID (`launch.EscapeID`): every `/` becomes `_`.
    /// The mapping is lossy; use [`crate::BuildpackIndex`] to go back.
    pub fn escaped(&self) -> String {
        self.0.replace('/', "_")
    }
}

impl fmt::Display for BuildpackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BuildpackId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        BuildpackId::new(s)
    }
}

impl TryFrom<String> for BuildpackId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        BuildpackId::new(s)
    }
}

impl From<BuildpackId> for String {
    fn from(id: BuildpackId) -> String {
        id.0
    }
}

impl AsRef<str> for BuildpackId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A layer name: exactly one path component (the `<layer>` of `<layers>/<bp>/<layer>/`).
///
/// Accepted: non-empty, at most 255 bytes, not `.` or `..`, no `/`, `\`, NUL or other
/// control characters.
///
/// ```
/// use cnb_sbom_discovery::LayerName;
/// assert_eq!(LayerName::new("launch-modules").unwrap().as_str(), "launch-modules");
/// assert!(LayerName::new("..").is_err());
/// assert!(LayerName::new("a/b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LayerName(String);

impl LayerName {
    /// Validate and wrap a layer name.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is longer than 255 bytes")
        } else if name == "." || name == ".." {
            Some("it is `.` or `..`")
        } else if name.contains('/') || name.contains('\\') {
            Some("it contains a path separator")
        } else if name.chars().any(char::is_control) {
            Some("it contains control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidLayerName {
                name: sanitize(&name),
                reason,
            }),
            None => Ok(LayerName(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LayerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        LayerName::new(s)
    }
}

impl TryFrom<String> for LayerName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        LayerName::new(s)
    }
}

impl From<LayerName> for String {
    fn from(name: LayerName) -> String {
        name.0
    }
}

impl AsRef<str> for LayerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpack_ids() {
        for ok in [
            "paketo-buildpacks/node-engine",
            "buildpacksio/lifecycle",
            "a.b-c_d",
            "x",
            "acme..tools/extra",
            "a/b..",
            "...",
        ] {
            assert!(BuildpackId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", " a", "a b", "a\tb", "a\0b", "..", "a/../b", "../a", "a/..", ".", "a\\b",
        ] {
            assert!(BuildpackId::new(bad).is_err(), "{bad:?}");
        }
        assert!(BuildpackId::new("a".repeat(256)).is_err());
        assert!(BuildpackId::new("a".repeat(255)).is_ok());
        let err = BuildpackId::new("a\u{1b}[31m").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
        let id: BuildpackId = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(id.escaped(), "a_b");
        assert!(serde_json::from_str::<BuildpackId>("\"\"").is_err());
    }

    #[test]
    fn layer_names() {
        for ok in ["node", "launch-modules", "a.b", "...", "launcher"] {
            assert!(LayerName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0", "a\nb"] {
            assert!(LayerName::new(bad).is_err(), "{bad:?}");
        }
        assert!(LayerName::new("l".repeat(256)).is_err());
    }
}
