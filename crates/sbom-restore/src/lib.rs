//! Find, verify and restore an image's SBOMs.
//!
//! The consumer side of the buildpacks "Refactor SBOM" RFC: read the SBOM attestations of an image
//! from wherever they are stored, verify them, and write the SBOM files where a build (the
//! analyzer, into `<layers>/sbom/launch/`) or a person (`cnb-attest download`, into
//! `<out>/layers/sbom/launch/`, the tree `pack sbom download` writes) needs them; or, for images
//! without attestations, take them from the image's SBOM layer.
//!
//! Every path written is built from validated parts ([`path::SbomPath`]), taken from signed data
//! (statement subjects and predicate type) and the image's label, never from paths or annotations
//! in remote data; [`write::write_tree`] never follows a symlink at or below the target.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod archive;
pub mod inspect;
pub mod layer;
pub mod path;
#[cfg(feature = "registry")]
pub mod registry;
pub mod select;
pub mod source;
pub mod tar;
pub mod write;

pub use path::SbomPath;
pub use write::{write_tree, Restored};

/// What can go wrong restoring SBOMs. Messages name the attestation or file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path from the image or an attestation is not an SBOM path.
    #[error("`{path}`: {reason}")]
    BadPath {
        /// The offending path (truncated).
        path: String,
        /// Why.
        reason: String,
    },
    /// Writing would go through a symlink or replace something that is not a file.
    #[error("refusing {}: {reason}", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The SBOM layer or an archive is malformed or too large.
    #[error("{0}")]
    Malformed(String),
    /// An OCI layout or a stored document failed.
    #[error(transparent)]
    Store(#[from] cnb_referrers::Error),
    /// A registry failed.
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Registry(#[from] cnb_registry::Error),
    /// The image is not usable.
    #[error("{0}")]
    BadImage(String),
}
