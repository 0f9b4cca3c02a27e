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
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
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

/// What is known about an image once its config is read.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
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
        Ok(ImageConfig {
            labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
            diff_ids: raw.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
        })
    }
}
