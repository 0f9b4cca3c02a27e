//! The crate's single error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// The pseudo path used in errors about keys that were parsed from memory rather than read from a
/// file (for example [`VerifyingKey::from_pem`](crate::VerifyingKey::from_pem)).
pub const IN_MEMORY: &str = "<in-memory key>";

/// Everything that can go wrong in this crate.
///
/// Messages name the file (or [`IN_MEMORY`]) and what was wrong with it. They never contain a
/// password, a private key, or the payload of an envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is larger than the limit for its kind.
    #[error("{}: file is larger than the {limit}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// The input is not a PEM file (or it is truncated: no complete BEGIN/END block).
    #[error("{}: not a PEM key file: {reason}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The PEM block has a label this crate does not read.
    #[error("{}: unsupported PEM label \"{label}\" (expected {expected})", path.display())]
    UnsupportedLabel {
        /// The file.
        path: PathBuf,
        /// The label found.
        label: String,
        /// The labels accepted in this place.
        expected: &'static str,
    },

    /// A cosign encrypted key whose JSON body is malformed or names an unknown KDF or cipher.
    #[error("{}: malformed encrypted key: {reason}", path.display())]
    MalformedEncryptedKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A cosign encrypted key asks for scrypt parameters outside the accepted bounds (which
    /// protect against key files crafted to exhaust memory or CPU).
    #[error(
        "{}: scrypt parameters N={n}, r={r}, p={p} are outside the accepted bounds ({bounds})",
        path.display()
    )]
    ScryptParamsOutOfBounds {
        /// The file.
        path: PathBuf,
        /// scrypt N (cost).
        n: u64,
        /// scrypt r (block size).
        r: u64,
        /// scrypt p (parallelism).
        p: u64,
        /// A description of the bounds.
        bounds: &'static str,
    },

    /// Authenticated decryption of a cosign encrypted key failed.
    #[error("{}: decryption failed: wrong password or corrupted key file", path.display())]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },

    /// The key material is not a valid key of the kind its label claims.
    #[error("{}: invalid key: {reason}", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A well-formed key of a type this crate does not support (yet).
    #[error("{}: unsupported key type {algorithm} (only ECDSA P-256 is supported)", path.display())]
    UnsupportedKeyType {
        /// The file.
        path: PathBuf,
        /// The algorithm found, for example `Ed25519` or `ECDSA P-384`.
        algorithm: String,
    },

    /// The environment variable that should hold the password is not set.
    #[error("password environment variable {var} is not set")]
    PasswordEnvNotSet {
        /// The variable's name.
        var: String,
    },

    /// The environment variable that should hold the password is not valid Unicode (on platforms
    /// where passwords must be).
    #[error("password environment variable {var} is not valid UTF-8")]
    PasswordEnvNotUnicode {
        /// The variable's name.
        var: String,
    },

    /// The password file cannot be used.
    #[error("password file {}: {reason}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The bytes are not a valid DSSE envelope.
    #[error("invalid DSSE envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong.
        reason: String,
    },

    /// No signature of an envelope verifies with the given key.
    #[error(
        "no signature in the envelope verifies with key sha256:{fingerprint} ({count} signature(s) tried)"
    )]
    NoValidSignature {
        /// [`VerifyingKey::fingerprint`](crate::VerifyingKey::fingerprint) of the key.
        fingerprint: String,
        /// How many signatures were tried.
        count: usize,
    },

    /// One signature does not verify with the given key.
    #[error("signature does not verify with key sha256:{fingerprint}: {reason}")]
    BadSignature {
        /// [`VerifyingKey::fingerprint`](crate::VerifyingKey::fingerprint) of the key.
        fingerprint: String,
        /// Why (malformed DER or mismatch).
        reason: &'static str,
    },

    /// Producing a signature failed.
    #[error("signing with key sha256:{fingerprint} failed: {reason}")]
    Signing {
        /// Fingerprint of the signing key's public key.
        fingerprint: String,
        /// What went wrong.
        reason: String,
    },

    /// Encrypting or encoding a private key failed.
    #[error("cannot encode the private key: {reason}")]
    KeyEncoding {
        /// What went wrong.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed: {reason}")]
    Random {
        /// What went wrong.
        reason: String,
    },

    /// Files that [`generate_key_pair`](crate::keyfile::generate_key_pair) would write already
    /// exist; nothing was written.
    #[error("refusing to overwrite existing file(s): {}", DisplayPaths(paths))]
    AlreadyExists {
        /// The existing files.
        paths: Vec<PathBuf>,
    },

    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file (or the directory, when the temporary file could not be created).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

struct DisplayPaths<'a>(&'a [PathBuf]);

impl fmt::Display for DisplayPaths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", p.display())?;
        }
        Ok(())
    }
}

/// The path used in errors for in-memory inputs.
pub(crate) fn in_memory() -> PathBuf {
    PathBuf::from(IN_MEMORY)
}

pub(crate) fn owned(path: &Path) -> PathBuf {
    path.to_path_buf()
}
