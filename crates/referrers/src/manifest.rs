//! The OCI types this crate writes and reads: descriptors, image manifests, image indexes.
//!
//! Own serde structs rather than `oci-spec`'s, because manifests we sign and push must serialise to
//! the same bytes every time: `oci-spec` keeps annotations in a `HashMap`, whose order changes from
//! run to run, and would change the manifest digest (see `docs/decisions/deterministic-manifests.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, Error};

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.oci.empty.v1+json`: the two-byte `{}` config of artifact manifests.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Annotation holding a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding the creation time.
pub const CREATED: &str = "org.opencontainers.image.created";

/// The body of the OCI empty descriptor.
pub const EMPTY_JSON: &[u8] = b"{}";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type, for manifests listed as referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations (ordered, so serialisation is deterministic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform of an image index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `architecture`.
    pub architecture: String,
    /// `os`.
    pub os: String,
    /// `variant`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
            platform: None,
        }
    }

    /// The OCI empty descriptor (`{}`).
    pub fn empty() -> Self {
        Descriptor::for_bytes(OCI_EMPTY, EMPTY_JSON)
    }

    /// One annotation's value.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(name).map(String::as_str)
    }

    /// The same descriptor without artifact type and annotations (as a `subject` is written).
    pub fn bare(&self) -> Self {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            artifact_type: None,
            annotations: None,
            platform: None,
        }
    }
}

/// An OCI image manifest (also used for artifacts: `artifactType` + empty config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` (or Docker's v2 type when read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type of an artifact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageManifest {
    /// Parses manifest bytes, refusing anything that is not an image manifest.
    ///
    /// A document that is also shaped like an index (it has `manifests`) or that declares another
    /// `mediaType` is refused as ambiguous (CVE-2021-41190): readers of the same bytes must never
    /// disagree on what they are.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        refuse_ambiguity(
            bytes,
            "image manifest",
            &["manifests"],
            &[OCI_MANIFEST, DOCKER_MANIFEST],
        )?;
        let manifest: ImageManifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Malformed(format!("image manifest: {e}")))?;
        if manifest.schema_version != 2 {
            return Err(Error::Malformed(format!(
                "image manifest: schemaVersion {} (expected 2)",
                manifest.schema_version
            )));
        }
        Ok(manifest)
    }

    /// Serialises the manifest to compact JSON. Deterministic.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// One annotation's value.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(name).map(String::as_str)
    }

    /// The manifest's `artifactType`, or its config media type, as the Referrers API reports it.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

/// An OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// Parses index bytes, refusing anything that is not an image index: a document that also has
    /// `config` or `layers`, or declares another `mediaType`, is ambiguous (CVE-2021-41190).
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        refuse_ambiguity(
            bytes,
            "image index",
            &["config", "layers"],
            &[OCI_INDEX, DOCKER_MANIFEST_LIST],
        )?;
        let index: ImageIndex = serde_json::from_slice(bytes)
            .map_err(|e| Error::Malformed(format!("image index: {e}")))?;
        if index.schema_version != 2 {
            return Err(Error::Malformed(format!(
                "image index: schemaVersion {} (expected 2)",
                index.schema_version
            )));
        }
        Ok(index)
    }
}

/// Refuses a `what` document that has any of the `foreign` fields of the other kind, or a
/// `mediaType` outside `media_types`.
fn refuse_ambiguity(
    bytes: &[u8],
    what: &str,
    foreign: &[&str],
    media_types: &[&str],
) -> Result<(), Error> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| Error::Malformed(format!("{what}: {e}")))?;
    if let Some(field) = foreign.iter().find(|f| value.contains_key(**f)) {
        return Err(Error::Malformed(format!(
            "{what}: has `{field}` as well, so it could be read as another kind of document; refusing an ambiguous manifest"
        )));
    }
    match value.get("mediaType") {
        None => Ok(()),
        Some(serde_json::Value::String(m)) if media_types.contains(&m.as_str()) => Ok(()),
        Some(other) => Err(Error::Malformed(format!(
            "{what}: mediaType {other} is not one of {}",
            media_types.join(", ")
        ))),
    }
}

/// What is known about an image once its config is read.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    /// The platform the config declares (`os`, `architecture`, `variant`), when it names both
    /// `os` and `architecture`.
    pub platform: Option<Platform>,
}

impl ImageConfig {
    /// Reads the parts of an image config this project needs.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            config: Option<RawConfig>,
            #[serde(default)]
            rootfs: Option<RawRootfs>,
            #[serde(default)]
            os: Option<String>,
            #[serde(default)]
            architecture: Option<String>,
            #[serde(default)]
            variant: Option<String>,
        }
        #[derive(Deserialize)]
        struct RawConfig {
            #[serde(default, rename = "Labels")]
            labels: Option<BTreeMap<String, String>>,
        }
        #[derive(Deserialize)]
        struct RawRootfs {
            #[serde(default)]
            diff_ids: Vec<String>,
        }
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| Error::Malformed(format!("image config: {e}")))?;
        let platform = match (raw.os, raw.architecture) {
            (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
                Some(Platform {
                    architecture,
                    os,
                    variant: raw.variant.filter(|v| !v.is_empty()),
                })
            }
            _ => None,
        };
        Ok(ImageConfig {
            labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
            diff_ids: raw.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
            platform,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#;

    #[test]
    fn a_manifest_that_is_also_shaped_like_an_index_is_refused() {
        let plain = format!(r#"{{"schemaVersion":2,"config":{CONFIG},"layers":[]}}"#);
        assert!(ImageManifest::from_json(plain.as_bytes()).is_ok());
        let both = format!(r#"{{"schemaVersion":2,"config":{CONFIG},"layers":[],"manifests":[]}}"#);
        let err = ImageManifest::from_json(both.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`manifests`") && err.contains("ambiguous"),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_declaring_another_media_type_is_refused() {
        let declared = |m: &str| {
            format!(r#"{{"schemaVersion":2,"mediaType":"{m}","config":{CONFIG},"layers":[]}}"#)
        };
        assert!(ImageManifest::from_json(declared(OCI_MANIFEST).as_bytes()).is_ok());
        assert!(ImageManifest::from_json(declared(DOCKER_MANIFEST).as_bytes()).is_ok());
        let err = ImageManifest::from_json(declared(OCI_INDEX).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains(OCI_INDEX), "{err}");
        let numeric = format!(r#"{{"schemaVersion":2,"mediaType":7,"config":{CONFIG}}}"#);
        assert!(ImageManifest::from_json(numeric.as_bytes()).is_err());
    }

    #[test]
    fn an_index_that_is_also_shaped_like_a_manifest_is_refused() {
        assert!(ImageIndex::from_json(br#"{"schemaVersion":2,"manifests":[]}"#).is_ok());
        for extra in [
            format!(r#""config":{CONFIG}"#),
            r#""layers":[]"#.to_string(),
            format!(r#""mediaType":"{OCI_MANIFEST}""#),
        ] {
            let doc = format!(r#"{{"schemaVersion":2,"manifests":[],{extra}}}"#);
            let err = ImageIndex::from_json(doc.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("malformed image index"), "{extra}: {err}");
        }
        let err = ImageIndex::from_json(br#"{"schemaVersion":1,"manifests":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schemaVersion 1"), "{err}");
    }
}
