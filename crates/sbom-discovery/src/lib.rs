//! Find and classify the SBOM files a Cloud Native Buildpacks build leaves in its layers
//! directory, and read the CNB platform files that tell whose they are.
//!
//! The lifecycle's builder copies every buildpack SBOM to
//! `<layers>/sbom/<kind>/<escaped-buildpack-id>[/<layer>]/sbom.<ext>` (`kind` is `launch`,
//! `build` or `cache`; `ext` is `cdx.json`, `spdx.json` or `syft.json`), and the exporter adds
//! the launcher's own SBOM at `sbom/launch/buildpacksio_lifecycle/launcher/`. [`discover`] walks
//! that tree and returns one [`SbomFile`] per SBOM: which buildpack (the real ID, taken from
//! `group.toml` or the image label through a [`BuildpackIndex`], since escaping `/` to `_` is
//! lossy), which layer if any, which [`SbomFormat`], its size and sha256. Each file is read
//! once, bounded, checked to be JSON of the format its name claims, and hashed.
//!
//! Discovery is strict: links, special files, oversized or invalid files, unknown buildpack
//! directories and unexpected nesting are refused with an error naming the path, and nothing is
//! returned. `sbom.legacy.json` and unrelated files are listed in [`Discovery::skipped`].
//!
//! The [`platform`] module reads `group.toml`, `report.toml` and the
//! `io.buildpacks.lifecycle.metadata` label, bounded and tolerant of unknown keys.
//!
//! No network access, no global state.
//!
//! ```
//! use std::fs;
//! use cnb_sbom_discovery::{discover, BuildpackIndex, DiscoveryOptions, Scope, SbomFormat};
//! use cnb_sbom_discovery::platform::GroupToml;
//!
//! let layers = tempfile::tempdir()?;
//! let dir = layers.path().join("sbom/launch/paketo-buildpacks_node-engine/node");
//! fs::create_dir_all(&dir)?;
//! fs::write(dir.join("sbom.cdx.json"), r#"{"bomFormat":"CycloneDX","specVersion":"1.4"}"#)?;
//!
//! let group: GroupToml = "[[group]]\nid = \"paketo-buildpacks/node-engine\"\nversion = \"1.0.0\"\n".parse()?;
//! let index = BuildpackIndex::from_group(&group);
//! let found = discover(layers.path(), &index, &DiscoveryOptions::default())?;
//!
//! assert_eq!(found.files.len(), 1);
//! let file = &found.files[0];
//! assert_eq!(file.buildpack.as_str(), "paketo-buildpacks/node-engine");
//! assert_eq!(file.layer().map(|l| l.as_str()), Some("node"));
//! assert_eq!(file.format, SbomFormat::CycloneDx);
//! assert!(matches!(file.scope, Scope::Layer(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod discover;
mod error;
mod format;
mod ids;
mod index;
pub mod platform;
/// Untrusted text in messages (escaped, shortened, located by line and column); the workspace's
/// one sanitizer, kept under this path for existing callers.
pub use cnb_untrusted::text;

pub use discover::{
    discover, Discovery, DiscoveryOptions, SbomFile, SbomKind, Scope, DEFAULT_MAX_FILE_SIZE,
    LEGACY_BOM_FILE_NAME,
};
pub use error::Error;
pub use format::{SbomFormat, SNIFF_KEYS};
pub use ids::{BuildpackId, LayerName, MAX_NAME_LEN};
pub use index::BuildpackIndex;
