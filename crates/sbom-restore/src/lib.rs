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
//! in remote data; [`write::write_tree`] never follows a symlink at or below the target, writes through directory
//! handles opened once, and refuses directories other users can change.
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
pub mod simple_signing;
pub mod source;
pub mod spool;
pub mod tar;
pub mod tar_write;
pub mod trust;
pub mod write;

pub use path::SbomPath;
pub use select::{PolicyError, Problem};
pub use trust::Trust;
pub use write::{
    write_tree, write_tree_with, Existing, OutputDir, Placement, Restored, Shared, SharedOutput,
    WriteOptions, Written,
};

/// The verification or placement rule an attestation failed: what callers branch on. The
/// [`Failure`] carrying it also has the message for people.
///
/// Serialised (and shown) as its kebab-case name, e.g. `signature` or `unknown-buildpack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// A listed referrer's manifest cannot be read (missing, malformed, over a size limit).
    UnreadableReferrer,
    /// A listed referrer's manifest or blob could not be read from the registry: a transport or
    /// registry failure (5xx, a connection reset, a body cut short), not a verdict on its content.
    /// Reported as such, never as "failed verification".
    FetchFailed,
    /// The attestation blob cannot be had: missing, over the size limit, or not matching its
    /// digest.
    Blob,
    /// The referrer is not in a storage format this tool reads.
    UnknownFormat,
    /// The attestation blob does not decode as its storage format (DSSE envelope, Sigstore bundle).
    Undecodable,
    /// The DSSE payload type is not the in-toto one.
    PayloadType,
    /// The signature does not verify with any given key: "not signed by a trusted key".
    Signature,
    /// A keyless (Sigstore) signature that does not verify: its certificate chain, SCT,
    /// transparency-log entry (SET, inclusion proof, checkpoint, binding to this envelope and
    /// certificate) or the identity policy failed; the message names the keyless rule
    /// (`cnb_keyless::verify::Rule`), e.g. `keyless identity: ...`.
    Keyless,
    /// The signed payload is not a valid in-toto statement.
    Statement,
    /// The manifest's predicate type annotation differs from the signed predicate type.
    PredicateType,
    /// A signed subject has no sha256 digest.
    SubjectWithoutSha256,
    /// No signed subject is the image manifest digest.
    NoImageSubject,
    /// A signed subject is neither the image nor one of its layers (diffIDs).
    ForeignSubject,
    /// The manifest's buildpack and layer annotations differ from the signed layer subject.
    LayerAnnotation,
    /// The manifest's SBOM digest annotation differs from the digest of the signed predicate.
    SbomDigest,
    /// The image's label holds a buildpack ID that is not valid.
    BadLabel,
    /// A layer subject's name is not `<buildpack>:<layer>` with a valid buildpack ID and layer name.
    LayerSubjectName,
    /// A signed subject names a buildpack that is not in the image's label.
    UnknownBuildpack,
    /// A layer subject's diffID is not the one the image's label records for that layer.
    UnrecordedLayer,
    /// The signed subjects name two different places for the SBOM.
    TwoPlaces,
    /// No signed subject names a buildpack of the image: the SBOM has no place.
    NoPlace,
    /// Two verified attestations hold different SBOMs for one place.
    Conflict,
    /// Two places would be one file on disk (buildpack IDs escaping to one directory, or paths
    /// differing only in letter case or Unicode normalisation, e.g. `café` in NFC and NFD).
    SameFile,
    /// One place is a file and, on disk, the directory of another (an image-scoped
    /// `<bp>/sbom.cdx.json` and a layer named `sbom.cdx.json` of the same buildpack): both
    /// cannot be written.
    FileAndDirectory,
    /// A component of the place holds an invisible, bidirectional-control or control character
    /// ([`path::hidden_character`]): a name that looks like another, or shows a different name.
    HiddenCharacter,
    /// Under [`select::Policy::Newest`]: a newer verified attestation for the same place wins.
    Superseded,
    /// A bare layer subject (`<layer>`) whose digest the image's label records for that layer name
    /// under two buildpacks: the signed data cannot say which.
    AmbiguousLayer,
    /// The SBOM belongs to no buildpack of the image (a platform attestation: run-image SBOM,
    /// provenance): verified, reported, not restored. Never blocks a restore.
    NoBuildpack,
    /// The SBOM could be placed only by the unsigned `io.buildpacks.buildpack.id` annotation, and
    /// the request wants signed placement only: reported, not restored.
    UnsignedPlacement,
}

impl Rule {
    /// The kebab-case name, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Rule::UnreadableReferrer => "unreadable-referrer",
            Rule::FetchFailed => "fetch-failed",
            Rule::Blob => "blob",
            Rule::UnknownFormat => "unknown-format",
            Rule::Undecodable => "undecodable",
            Rule::PayloadType => "payload-type",
            Rule::Signature => "signature",
            Rule::Keyless => "keyless",
            Rule::Statement => "statement",
            Rule::PredicateType => "predicate-type",
            Rule::SubjectWithoutSha256 => "subject-without-sha256",
            Rule::NoImageSubject => "no-image-subject",
            Rule::ForeignSubject => "foreign-subject",
            Rule::LayerAnnotation => "layer-annotation",
            Rule::SbomDigest => "sbom-digest",
            Rule::BadLabel => "bad-label",
            Rule::LayerSubjectName => "layer-subject-name",
            Rule::UnknownBuildpack => "unknown-buildpack",
            Rule::UnrecordedLayer => "unrecorded-layer",
            Rule::TwoPlaces => "two-places",
            Rule::NoPlace => "no-place",
            Rule::Conflict => "conflict",
            Rule::SameFile => "same-file",
            Rule::FileAndDirectory => "file-and-directory",
            Rule::HiddenCharacter => "hidden-character",
            Rule::Superseded => "superseded",
            Rule::AmbiguousLayer => "ambiguous-layer",
            Rule::NoBuildpack => "no-buildpack",
            Rule::UnsignedPlacement => "unsigned-placement",
        }
    }

    /// Whether the attestation could not be verified with any given key (unreadable, tampered,
    /// undecodable, or signed by no trusted key). Such an attestation is reported and left out;
    /// it never blocks restoring what did verify, and nothing of it is ever written. Every other
    /// rule is broken by a verified attestation, and refuses the restore (fail closed).
    pub fn is_unverified(self) -> bool {
        matches!(
            self,
            Rule::UnreadableReferrer
                | Rule::FetchFailed
                | Rule::Blob
                | Rule::UnknownFormat
                | Rule::Undecodable
                | Rule::PayloadType
                | Rule::Signature
                | Rule::Keyless
        )
    }
}

impl Rule {
    /// Whether the registry or the transport failed while the attestation was fetched: it was not
    /// verified, and nothing is known of its content (not tampering, not a key mismatch).
    pub fn is_fetch_failure(self) -> bool {
        self == Rule::FetchFailed
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one attestation was not accepted: the [`Rule`] it failed, and the message for people
/// (what [`Display`](std::fmt::Display) prints).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The rule that failed.
    pub rule: Rule,
    /// What failed, for people.
    pub message: String,
}

impl Failure {
    /// A failure of `rule`, explained by `message`.
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Failure {
            rule,
            message: message.into(),
        }
    }
}

/// What can go wrong restoring SBOMs. Messages name the attestation or file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The destination already holds SBOM files and the write was asked not to replace them
    /// ([`write::Existing::Refuse`]): nothing was written.
    #[error("{} already holds {count} file(s) (e.g. {}); refusing to mix them with this image's SBOMs", path.display(), example.display())]
    Occupied {
        /// The destination directory (`<root>/sbom/launch`).
        path: PathBuf,
        /// How many files it holds.
        count: usize,
        /// One of them, relative to `path`.
        example: PathBuf,
    },
    /// A directory on the way to the destination could be changed by another user, and
    /// [`write::SharedOutput::Refuse`] was asked for: nothing was written.
    #[error("refusing {}: it {why} (owner uid {owner}, mode {mode:04o}); whoever can change it can swap the restored SBOMs; nothing was written (accept it with allow-shared-output)", path.display())]
    SharedOutput {
        /// The directory.
        path: PathBuf,
        /// Its owner's user ID.
        owner: u32,
        /// Its permission bits (with setuid, setgid and sticky).
        mode: u32,
        /// What makes it shared.
        why: write::Shared,
    },
    /// The process was interrupted (SIGINT, SIGTERM) while writing: the temporary tree was removed
    /// and the destination left as it was.
    #[error("interrupted while writing {}; nothing was written", path.display())]
    Interrupted {
        /// The destination directory.
        path: PathBuf,
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
