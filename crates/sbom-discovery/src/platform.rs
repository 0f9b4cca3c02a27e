//! The CNB platform files a signer needs: the `io.buildpacks.lifecycle.metadata` label,
//! `group.toml` and `report.toml`, read the way the lifecycle writes them.
//!
//! Reading is tolerant (unknown keys are ignored, `null` where the Go lifecycle writes a nil
//! slice is accepted) but bounded: `from_path` refuses files over [`MAX_PLATFORM_FILE_SIZE`].
//!
//! ```
//! use cnb_sbom_discovery::platform::{GroupToml, LifecycleMetadata, Report};
//! use cnb_sbom_discovery::{BuildpackId, LayerName};
//!
//! let group: GroupToml = r#"
//! [[group]]
//! id = "paketo-buildpacks/node-engine"
//! version = "1.2.3"
//! api = "0.8"
//! "#.parse()?;
//! assert_eq!(group.buildpack_ids()[0].as_str(), "paketo-buildpacks/node-engine");
//!
//! let label = LifecycleMetadata::from_json(r#"{"buildpacks":[{"key":"paketo-buildpacks/node-engine",
//!   "layers":{"node":{"sha":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
//!   "launch":true}}}], "launcher":{"sha":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}"#)?;
//! let bp = BuildpackId::new("paketo-buildpacks/node-engine")?;
//! assert!(label.layer_diff_id(&bp, &LayerName::new("node")?).is_some());
//! assert!(label.launcher_diff_id().is_some());
//!
//! let report: Report = "[image]\ntags = [\"r.io/app:latest\"]\ndigest = \"sha256:ab\"\nmanifest-size = 1234\n".parse()?;
//! assert_eq!(report.image.manifest_size, Some(1234));
//! # Ok::<(), cnb_sbom_discovery::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use cnb_local_files::Links;
use serde::{Deserialize, Deserializer, Serialize};

use crate::discover::read_error;
use crate::error::Error;
use crate::ids::BuildpackId;
use crate::LayerName;

/// Largest platform file (`group.toml`, `report.toml`, a label dump) `from_path` reads: 4 MiB.
pub const MAX_PLATFORM_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The name of the image label that [`LifecycleMetadata`] models.
pub const LIFECYCLE_METADATA_LABEL: &str = "io.buildpacks.lifecycle.metadata";

const LABEL_ORIGIN: &str = "the io.buildpacks.lifecycle.metadata label";
const INPUT_ORIGIN: &str = "<input>";

/// Read a whole platform file, refusing anything over the cap or that is not a regular file.
/// Links are followed here: platform files are platform input (Kubernetes mounts them through
/// links).
fn read_platform_file(path: &Path) -> Result<String, Error> {
    let bytes = cnb_local_files::read(path, MAX_PLATFORM_FILE_SIZE, Links::Follow)
        .map_err(read_error(path, MAX_PLATFORM_FILE_SIZE))?;
    String::from_utf8(bytes).map_err(|e| Error::Platform {
        origin: path.display().to_string(),
        reason: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Deserialize `null` (what Go writes for a nil slice or map) as the default value.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{"sha": "<diffID>"}`: the record of one lifecycle-owned layer in the label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSha {
    /// The layer's diffID (`sha256:<hex>` of the uncompressed tar); may be empty in old labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sha: String,
}

/// One buildpack layer in the label (`buildpacks[].layers.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The layer's diffID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sha: String,
    /// The buildpack's `<layer>.toml` `[metadata]`, as written.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// `types.build`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub build: bool,
    /// `types.launch`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub launch: bool,
    /// `types.cache`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache: bool,
}

/// One buildpack in the label (`buildpacks[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildpackLayers {
    /// The real (unescaped) buildpack ID. Not validated on read; see
    /// [`LifecycleMetadata::buildpack_ids`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    /// The buildpack version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub version: String,
    /// Launch layers by name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: BTreeMap<String, LayerRecord>,
    /// The buildpack's `store.toml` content, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<serde_json::Value>,
}

/// `runImage` in the label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImageRecord {
    /// diffID of the run image's top layer.
    #[serde(rename = "topLayer", default, deserialize_with = "null_as_default")]
    pub top_layer: String,
    /// A digest reference, a daemon image ID or `<layout>@<digest>`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reference: String,
    /// The run image name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub image: String,
    /// Mirrors of the run image.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mirrors: Vec<String>,
}

/// The `io.buildpacks.lifecycle.metadata` label (the lifecycle's `LayersMetadata`).
///
/// Every key is optional and unknown keys are ignored. Every `sha` is a diffID; values are
/// kept as written and validated by whoever uses them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleMetadata {
    /// App slice layers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub app: Vec<LayerSha>,
    /// The SBOM layer; absent when the image has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<LayerSha>,
    /// Buildpack launch layers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub buildpacks: Vec<BuildpackLayers>,
    /// The config layer (`buildpacksio/lifecycle:config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<LayerSha>,
    /// The launcher layer (`buildpacksio/lifecycle:launcher`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<LayerSha>,
    /// The process-types layer (`buildpacksio/lifecycle:process-types`).
    #[serde(
        rename = "process-types",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub process_types: Option<LayerSha>,
    /// The run image.
    #[serde(rename = "runImage", default, skip_serializing_if = "Option::is_none")]
    pub run_image: Option<RunImageRecord>,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl LifecycleMetadata {
    /// Parse the label's JSON value.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::parse_json(text, LABEL_ORIGIN)
    }

    /// Read the label JSON from a file (at most [`MAX_PLATFORM_FILE_SIZE`] bytes).
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let text = read_platform_file(path)?;
        Self::parse_json(&text, &path.display().to_string())
    }

    fn parse_json(text: &str, origin: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::json(origin, &e))
    }

    /// The diffID recorded for `buildpack`'s layer `layer`; `None` if the buildpack or layer is
    /// not in the label or its `sha` is empty. For `buildpacksio/lifecycle` and the layer
    /// `launcher`, this is [`LifecycleMetadata::launcher_diff_id`].
    pub fn layer_diff_id(&self, buildpack: &BuildpackId, layer: &LayerName) -> Option<&str> {
        if buildpack.is_lifecycle() && layer.as_str() == "launcher" {
            if let Some(sha) = self.launcher_diff_id() {
                return Some(sha);
            }
        }
        self.buildpacks
            .iter()
            .filter(|bp| bp.key == buildpack.as_str())
            .find_map(|bp| bp.layers.get(layer.as_str()))
            .and_then(|record| non_empty(&record.sha))
    }

    /// The launcher layer's diffID (`launcher.sha`), if recorded.
    pub fn launcher_diff_id(&self) -> Option<&str> {
        self.launcher.as_ref().and_then(|l| non_empty(&l.sha))
    }

    /// The real buildpack IDs of the label (`buildpacks[].key`), validated, in label order.
    pub fn buildpack_ids(&self) -> Result<Vec<BuildpackId>, Error> {
        self.buildpacks
            .iter()
            .map(|bp| {
                BuildpackId::new(bp.key.clone()).map_err(|e| Error::Platform {
                    origin: LABEL_ORIGIN.to_string(),
                    reason: format!("buildpacks[].key: {e}"),
                })
            })
            .collect()
    }
}

/// One `[[group]]` or `[[group-extensions]]` entry of `group.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// The real buildpack (or extension) ID, validated on read.
    pub id: BuildpackId,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// The Buildpack API it implements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Its homepage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Whether it was optional in the order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// The lifecycle's `group.toml`: the buildpacks (and extensions) that took part in the build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupToml {
    /// `[[group]]`: the buildpacks, in order.
    #[serde(default)]
    pub group: Vec<GroupEntry>,
    /// `[[group-extensions]]`: the image extensions, in order.
    #[serde(rename = "group-extensions", default)]
    pub group_extensions: Vec<GroupEntry>,
}

impl GroupToml {
    /// Parse `group.toml` text; errors name `origin`, line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::toml(&origin.display().to_string(), text, &e))
    }

    /// Read `group.toml` (at most [`MAX_PLATFORM_FILE_SIZE`] bytes).
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let text = read_platform_file(path)?;
        Self::parse(&text, path)
    }

    /// The IDs of `[[group]]` (extensions write no SBOMs and are left out).
    pub fn buildpack_ids(&self) -> Vec<BuildpackId> {
        self.group.iter().map(|e| e.id.clone()).collect()
    }
}

impl FromStr for GroupToml {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text, Path::new(INPUT_ORIGIN))
    }
}

/// `manifest-size` is an integer in the lifecycle but a string in the spec's example.
fn manifest_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match Option::<IntOrString>::deserialize(d)? {
        None => Ok(None),
        Some(IntOrString::Int(n)) => u64::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom("manifest-size must not be negative")),
        Some(IntOrString::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(IntOrString::Str(s)) => {
            s.trim().parse::<u64>().map(Some).map_err(|_| {
                serde::de::Error::custom("manifest-size must be a non-negative integer")
            })
        }
    }
}

/// The `[image]` table of `report.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportImage {
    /// Every name the image was saved under successfully.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The manifest digest (registry exports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The image ID (daemon exports only).
    #[serde(rename = "image-id", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The manifest size in bytes; integer or string on read.
    #[serde(
        rename = "manifest-size",
        default,
        deserialize_with = "manifest_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub manifest_size: Option<u64>,
}

/// The exporter's `report.toml` (only `[image]` is modelled; other tables are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `[image]`.
    #[serde(default)]
    pub image: ReportImage,
}

impl Report {
    /// Parse `report.toml` text; errors name `origin`, line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::toml(&origin.display().to_string(), text, &e))
    }

    /// Read `report.toml` (at most [`MAX_PLATFORM_FILE_SIZE`] bytes).
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let text = read_platform_file(path)?;
        Self::parse(&text, path)
    }

    /// Rewrites `[image] digest` and `manifest-size` of the `report.toml` at `path` (read as
    /// [`Report::from_path`] reads it) for an image pushed again under the same tags (the
    /// exporter's `-omit-sbom`), keeping every other key and table. The file is replaced
    /// atomically: a reader sees the old report or the new one, never a mix. Returns the new
    /// report.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use cnb_sbom_discovery::platform::Report;
    /// let path = dir.path().join("report.toml");
    /// std::fs::write(&path, "[image]\ntags = [\"r.io/app:1\"]\ndigest = \"sha256:aa\"\nmanifest-size = 9\n\n[extra]\nkept = true\n")?;
    /// let report = Report::rewrite_digest(&path, "sha256:bb", 7)?;
    /// assert_eq!((report.image.digest.as_deref(), report.image.manifest_size), (Some("sha256:bb"), Some(7)));
    /// assert!(std::fs::read_to_string(&path)?.contains("kept = true"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rewrite_digest(path: &Path, digest: &str, manifest_size: u64) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let text = read_platform_file(path)?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| Error::toml(&origin, &text, &e))?;
        let image = table
            .get_mut("image")
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| Error::Platform {
                origin: origin.clone(),
                reason: "no [image] table".into(),
            })?;
        image.insert("digest".into(), toml::Value::String(digest.to_string()));
        image.insert(
            "manifest-size".into(),
            toml::Value::Integer(i64::try_from(manifest_size).unwrap_or(i64::MAX)),
        );
        let text = toml::to_string(&table).map_err(|e| Error::Platform {
            origin: origin.clone(),
            reason: format!("cannot serialize: {e}"),
        })?;
        let report = Self::parse(&text, path)?;
        cnb_local_files::write_atomic(path, text.as_bytes()).map_err(|e| Error::Platform {
            origin,
            reason: format!("cannot write: {e}"),
        })?;
        Ok(report)
    }
}

impl FromStr for Report {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text, Path::new(INPUT_ORIGIN))
    }
}
