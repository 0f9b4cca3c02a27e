//! Attestation referrers: the storage formats and the stores they live in.
//!
//! An attestation is stored as a *referrer*: an OCI manifest whose `subject` is the image manifest.
//! [`mod@format`] turns a signed DSSE envelope into such a manifest (Sigstore bundle v0.3 as cosign 3
//! writes it, or the RFC's bare DSSE layer); [`layout`] stores and lists referrers in an OCI image
//! layout, the no-registry default.
//!
//! ```
//! use cnb_referrers::{Digest, layout::OciLayout};
//!
//! let dir = tempfile::tempdir()?;
//! let layout = OciLayout::create(dir.path())?;
//! let (digest, written) = layout.write_blob(b"{}")?;
//! assert!(written);
//! assert_eq!(digest, Digest::of(b"{}"));
//! assert!(layout.referrers(&digest)?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod blob;
pub mod format;
pub mod inventory;
pub mod layout;
pub mod manifest;
pub mod platform;
pub mod reference;

pub use blob::Blob;
/// The validated `sha256:<64 lowercase hex>` digest, shared by every crate of the workspace.
pub use cnb_untrusted::Digest;
pub use format::{build_referrer, decode_layer, Referrer, ReferrerParts, StorageFormat};
pub use manifest::{Descriptor, ImageConfig, ImageIndex, ImageManifest};
pub use reference::{ImageRef, ReferenceError, Repository};

/// What happened to one stored referrer, in a layout or a registry.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Newly stored (pushed).
    Pushed,
    /// Already there before this run.
    AlreadyPresent,
}

/// Why a stored referrer is not listed where readers look (they merge the Referrers API with the
/// `sha256-<hex>` index), as found by reading both back after the push: neither lists it, and
/// this is what became of the `sha256-<hex>` index written to list it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NotListed {
    /// The registry accepted the `sha256-<hex>` index, but reading it back (a bounded number of
    /// times, with backoff) finds no index at that tag.
    TagIndexAbsent,
    /// The registry refused to store the `sha256-<hex>` index, or the tag holds something else
    /// that must not be overwritten.
    TagIndexRefused {
        /// What the registry answered (untrusted text: escape it before printing).
        detail: String,
    },
    /// The `sha256-<hex>` index reads back without it after every rewrite allowed.
    TagIndexOmits,
}

impl std::fmt::Display for NotListed {
    /// Said of one or several referrers at once: "... are not listed where readers look: `this`".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "neither the Referrers API nor the sha256-<hex> index lists them when read back: ",
        )?;
        match self {
            NotListed::TagIndexAbsent => {
                f.write_str("the registry accepted the index but serves none at that tag")
            }
            NotListed::TagIndexRefused { detail } => {
                write!(f, "the registry refused the index ({detail})")
            }
            NotListed::TagIndexOmits => {
                f.write_str("the index still lacks them after every rewrite allowed")
            }
        }
    }
}

#[cfg(test)]
mod not_listed_tests {
    use super::NotListed;

    #[test]
    fn a_reason_serializes_as_a_tagged_table() {
        assert_eq!(
            serde_json::to_value(NotListed::TagIndexAbsent).unwrap(),
            serde_json::json!({"reason": "tag-index-absent"})
        );
        let refused = NotListed::TagIndexRefused {
            detail: "405".into(),
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            serde_json::json!({"reason": "tag-index-refused", "detail": "405"})
        );
        assert!(refused.to_string().contains("refused the index (405)"));
    }
}

impl From<platform::PlatformError> for Error {
    fn from(e: platform::PlatformError) -> Self {
        Error::Platform(Box::new(e))
    }
}

/// What can go wrong storing or reading referrers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that should be a `sha256:<hex>` digest is not one (the error quotes it, escaped
    /// and shortened, and says why).
    #[error(transparent)]
    BadDigest(#[from] cnb_untrusted::DigestError),
    /// A storage format name is unknown.
    #[error("unknown storage format `{0}` (known: bundle, dsse, cosign-legacy)")]
    UnknownFormat(String),
    /// A manifest, config, bundle or envelope is malformed.
    #[error("malformed {0}")]
    Malformed(String),
    /// The OCI layout is not usable.
    #[error("OCI layout {}: {reason}", path.display())]
    Layout {
        /// The file or directory at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The layout's `index.json` lists no image by that tag or digest.
    #[error("OCI layout {}: no image `{selector}` in index.json", path.display())]
    NoSuchImage {
        /// The layout directory.
        path: PathBuf,
        /// The tag or digest asked for.
        selector: String,
    },
    /// No one platform manifest could be chosen from an image index (several and none named, or
    /// none matching the one named); the error lists every platform.
    #[error(transparent)]
    Platform(Box<platform::PlatformError>),
    /// A file is larger than allowed.
    #[error("{}: {size} bytes exceeds the {max}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or the bytes read before stopping).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
