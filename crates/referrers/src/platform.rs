//! Platforms of an image index: naming one (`os/arch[/variant]`), and choosing the platform
//! manifest an attestation is about, never silently.
//!
//! An index with one platform manifest (BuildKit attestation manifests beside it do not count)
//! opens without a platform; one with several needs one named, else [`PlatformError::Ambiguous`]
//! lists them all. Matching follows containerd's normalisation: `linux/arm64` matches an entry
//! with variant `v8`, `linux/arm` one with `v7`.

use std::fmt;

use serde::Serialize;

use crate::layout::{BUILDKIT_REFERENCE_DIGEST, BUILDKIT_REFERENCE_TYPE};
use crate::manifest::{Descriptor, ImageIndex, Platform, DOCKER_MANIFEST, OCI_MANIFEST};
use crate::Digest;

/// A platform as users name it: `os/arch[/variant]` (e.g. `linux/amd64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlatformSpec {
    /// `os` (e.g. `linux`).
    pub os: String,
    /// `architecture` (e.g. `arm64`).
    pub architecture: String,
    /// `variant`, if any (e.g. `v7`).
    pub variant: Option<String>,
}

/// A platform text that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{text}`: expected os/arch[/variant] (e.g. linux/arm64), each part [a-z0-9][a-z0-9._-]*")]
pub struct BadPlatform {
    /// The text given (shortened to 80 characters).
    pub text: String,
}

impl std::str::FromStr for PlatformSpec {
    type Err = BadPlatform;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPlatform {
            text: text.chars().take(80).collect(),
        };
        let part = |p: &str| {
            p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.len() <= 64
                && p.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        };
        let parts: Vec<&str> = text.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| part(p)) {
            return Err(bad());
        }
        Ok(PlatformSpec {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl Serialize for PlatformSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The variant an architecture has when none is written (containerd's normalisation).
fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

impl PlatformSpec {
    /// Parses a comma-separated list (`linux/amd64,linux/arm64`); empty items are refused.
    pub fn parse_list(text: &str) -> Result<Vec<PlatformSpec>, BadPlatform> {
        text.split(',').map(|p| p.trim().parse()).collect()
    }

    /// The platform an index entry declares.
    pub fn of(platform: &Platform) -> PlatformSpec {
        PlatformSpec {
            os: platform.os.clone(),
            architecture: platform.architecture.clone(),
            variant: platform.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// Whether an index entry's platform is this one: os and architecture equal, and the
    /// variants equal once an absent variant reads as the architecture's default (`arm64` is
    /// `v8`, `arm` is `v7`); a spec without variant, for an architecture with no default, matches
    /// any variant.
    pub fn matches(&self, platform: &Platform) -> bool {
        if self.os != platform.os || self.architecture != platform.architecture {
            return false;
        }
        let theirs = platform.variant.as_deref().filter(|v| !v.is_empty());
        let default = default_variant(&self.architecture);
        match (self.variant.as_deref(), theirs) {
            (None, None) => true,
            (None, Some(v)) => default.is_none_or(|d| d == v),
            (Some(ours), None) => default == Some(ours),
            (Some(ours), Some(v)) => ours == v,
        }
    }

    /// The directory name this platform's layers have in a per-platform layers directory:
    /// `os-arch[-variant]` (e.g. `linux-arm-v7`).
    pub fn dir_name(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

/// One platform manifest of an index, as errors and reports list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexPlatform {
    /// Its platform; `None` when the entry declares none.
    pub platform: Option<PlatformSpec>,
    /// Its manifest digest.
    pub digest: Digest,
}

impl fmt::Display for IndexPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.platform {
            Some(p) => write!(f, "{p} ({})", self.digest),
            None => write!(f, "(no platform) ({})", self.digest),
        }
    }
}

/// The index an image was reached through: the index's own descriptor and every platform it
/// lists, so a caller can go on to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    /// The image index (media type, digest, size).
    pub descriptor: Descriptor,
    /// Its platform manifests, in index order.
    pub platforms: Vec<IndexPlatform>,
    /// The platform of the manifest chosen, if its entry declares one.
    pub chosen: Option<PlatformSpec>,
}

/// Why no platform manifest was chosen from an index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The index holds several platform manifests and none was named.
    #[error("the image index holds {} platform manifests and no platform was named (--platform): {}", platforms.len(), list(platforms))]
    Ambiguous {
        /// Every platform manifest.
        platforms: Vec<IndexPlatform>,
    },
    /// The index holds no platform manifest at all (empty, only BuildKit attestation manifests,
    /// or only nested indexes, which are not followed).
    #[error("the image index holds no platform manifest (nested indexes are not followed)")]
    NoPlatformManifest,
    /// No platform manifest matches the platform named (or several do).
    #[error(
        "the image index has {} manifest(s) for platform {wanted}; it holds: {}",
        matching,
        list(platforms)
    )]
    NoMatch {
        /// The platform asked for.
        wanted: PlatformSpec,
        /// How many entries matched (0, or more than 1).
        matching: usize,
        /// Every platform manifest.
        platforms: Vec<IndexPlatform>,
    },
}

fn list(platforms: &[IndexPlatform]) -> String {
    if platforms.is_empty() {
        return "none".into();
    }
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an index entry is a BuildKit attestation manifest.
pub fn is_buildkit_attestation(d: &Descriptor) -> bool {
    d.annotation(BUILDKIT_REFERENCE_TYPE) == Some("attestation-manifest")
}

/// The platform manifests of an index: image manifests that are not BuildKit attestations.
pub fn platform_manifests(index: &ImageIndex) -> Vec<&Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| !is_buildkit_attestation(d))
        .filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
        .collect()
}

/// The index's platform manifests, as lists show them.
pub fn platforms(index: &ImageIndex) -> Vec<IndexPlatform> {
    platform_manifests(index)
        .into_iter()
        .map(|d| IndexPlatform {
            platform: d.platform.as_ref().map(PlatformSpec::of),
            digest: d.digest.clone(),
        })
        .collect()
}

/// The BuildKit attestation manifests in `index` about the manifest `digest`.
pub fn buildkit_about(index: &ImageIndex, digest: &Digest) -> Vec<Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| is_buildkit_attestation(d))
        .filter(|d| d.annotation(BUILDKIT_REFERENCE_DIGEST) == Some(digest.as_str()))
        .cloned()
        .collect()
}

/// Chooses the platform manifest of `index`: the one matching `wanted`, or without `wanted`
/// the only one there is. Returns it and the BuildKit attestation manifests about it. Never a
/// silent choice: several without `wanted` is [`PlatformError::Ambiguous`], none or several
/// matching is [`PlatformError::NoMatch`] (both list every platform; of several matching once
/// variants are normalised, the one declaring exactly `wanted` is taken); an index without any
/// platform manifest is [`PlatformError::NoPlatformManifest`].
pub fn choose(
    index: &ImageIndex,
    wanted: Option<&PlatformSpec>,
) -> Result<(Descriptor, Vec<Descriptor>), PlatformError> {
    let all = platform_manifests(index);
    if all.is_empty() {
        return Err(PlatformError::NoPlatformManifest);
    }
    let mut candidates: Vec<&Descriptor> = match wanted {
        None => all.clone(),
        Some(w) => all
            .iter()
            .copied()
            .filter(|d| d.platform.as_ref().is_some_and(|p| w.matches(p)))
            .collect(),
    };
    // Several match once variants are normalised (`linux/amd64` and `linux/amd64/v3`): the one
    // declaring exactly the platform named is meant.
    if let (Some(w), true) = (wanted, candidates.len() > 1) {
        let exact: Vec<&Descriptor> = candidates
            .iter()
            .copied()
            .filter(|d| d.platform.as_ref().map(PlatformSpec::of).as_ref() == Some(w))
            .collect();
        if exact.len() == 1 {
            candidates = exact;
        }
    }
    let chosen = match (candidates.as_slice(), wanted) {
        ([one], _) => (*one).clone(),
        (_, None) => {
            return Err(PlatformError::Ambiguous {
                platforms: platforms(index),
            })
        }
        (many, Some(w)) => {
            return Err(PlatformError::NoMatch {
                wanted: w.clone(),
                matching: many.len(),
                platforms: platforms(index),
            })
        }
    };
    let attestations = buildkit_about(index, &chosen.digest);
    Ok((chosen, attestations))
}

/// The index information for `chosen` reached through `index` (described by `descriptor`).
pub fn index_info(descriptor: &Descriptor, index: &ImageIndex, chosen: &Descriptor) -> IndexInfo {
    IndexInfo {
        descriptor: descriptor.bare(),
        platforms: platforms(index),
        chosen: chosen.platform.as_ref().map(PlatformSpec::of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(byte: u8, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        let mut d = Descriptor::for_bytes(OCI_MANIFEST, &[byte]);
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: variant.map(str::to_string),
        });
        d
    }

    fn index(manifests: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(crate::manifest::OCI_INDEX.into()),
            manifests,
            annotations: None,
        }
    }

    #[test]
    fn platforms_parse_and_show() {
        let p: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(p.dir_name(), "linux-arm-v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "Linux/amd64",
            "linux/../x",
        ] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
        assert_eq!(
            PlatformSpec::parse_list("linux/amd64, linux/arm64")
                .unwrap()
                .len(),
            2
        );
        assert!(PlatformSpec::parse_list("linux/amd64,").is_err());
    }

    #[test]
    fn arm64_matches_v8_as_containerd_normalises() {
        let arm64: PlatformSpec = "linux/arm64".parse().unwrap();
        let v8 = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        assert!(arm64.matches(&v8));
        assert!("linux/arm64/v8"
            .parse::<PlatformSpec>()
            .unwrap()
            .matches(&Platform {
                variant: None,
                ..v8.clone()
            }));
        assert!(!"linux/arm/v6"
            .parse::<PlatformSpec>()
            .unwrap()
            .matches(&Platform {
                architecture: "arm".into(),
                variant: Some("v7".into()),
                ..v8.clone()
            }));
        assert!(!"linux/amd64".parse::<PlatformSpec>().unwrap().matches(&v8));
    }

    #[test]
    fn no_silent_choice() {
        let amd = entry(1, "linux", "amd64", None);
        let arm = entry(2, "linux", "arm64", Some("v8"));
        let mut att = Descriptor::for_bytes(OCI_MANIFEST, &[3]);
        att.annotations = Some(BTreeMap::from([
            (
                BUILDKIT_REFERENCE_TYPE.into(),
                "attestation-manifest".into(),
            ),
            (BUILDKIT_REFERENCE_DIGEST.into(), arm.digest.to_string()),
        ]));
        let both = index(vec![amd.clone(), arm.clone(), att.clone()]);
        let err = choose(&both, None).unwrap_err();
        assert!(matches!(&err, PlatformError::Ambiguous { platforms } if platforms.len() == 2));
        let text = err.to_string();
        assert!(
            text.contains("linux/amd64") && text.contains("linux/arm64/v8"),
            "{text}"
        );
        let (chosen, buildkit) = choose(&both, Some(&"linux/arm64".parse().unwrap())).unwrap();
        assert_eq!((chosen, buildkit), (arm.clone(), vec![att.clone()]));
        let missing = choose(&both, Some(&"linux/s390x".parse().unwrap())).unwrap_err();
        assert!(matches!(
            missing,
            PlatformError::NoMatch { matching: 0, .. }
        ));
        // One platform manifest and its attestation manifest: no platform needed.
        let one = index(vec![arm.clone(), att.clone()]);
        assert_eq!(choose(&one, None).unwrap().0, arm);
    }

    #[test]
    fn an_index_without_platform_manifests_is_not_ambiguous_but_empty() {
        assert_eq!(
            choose(&index(Vec::new()), None).unwrap_err(),
            PlatformError::NoPlatformManifest
        );
        let wanted: PlatformSpec = "linux/amd64".parse().unwrap();
        assert_eq!(
            choose(&index(Vec::new()), Some(&wanted)).unwrap_err(),
            PlatformError::NoPlatformManifest
        );
    }

    #[test]
    fn the_entry_declaring_exactly_the_platform_named_wins_over_other_variants() {
        let plain = entry(1, "linux", "amd64", None);
        let v3 = entry(2, "linux", "amd64", Some("v3"));
        let both = index(vec![plain.clone(), v3.clone()]);
        let amd64: PlatformSpec = "linux/amd64".parse().unwrap();
        let amd64_v3: PlatformSpec = "linux/amd64/v3".parse().unwrap();
        assert_eq!(choose(&both, Some(&amd64)).unwrap().0.digest, plain.digest);
        assert_eq!(choose(&both, Some(&amd64_v3)).unwrap().0.digest, v3.digest);
        // Two entries declaring the same platform stay refused, listed.
        let twice = index(vec![plain.clone(), entry(3, "linux", "amd64", None)]);
        assert!(matches!(
            choose(&twice, Some(&amd64)),
            Err(PlatformError::NoMatch { matching: 2, .. })
        ));
    }
}
