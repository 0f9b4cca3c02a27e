//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong with a signer configuration.
///
/// Parse errors name the file, the 1-based line and column, and the field path
/// (`attestations[2].predicate[0].uri`). Validation errors name the field path. No error ever
/// echoes the value of a secret-looking field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is larger than its cap.
    #[error("refusing {}: it is larger than the limit of {cap} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },

    /// A file that must be text is not UTF-8.
    #[error("{}: not valid UTF-8 (at byte {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },

    /// The text is not TOML.
    #[error("{file}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        /// The file (or `<input>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },

    /// A key that looks like it holds a secret. Reported before any other field error.
    #[error(
        "secret-looking field `{key}` at {file}:{line}:{column} (`{field}`): secrets are never read from configuration; use COSIGN_PASSWORD or a password file"
    )]
    SecretField {
        /// The key as written.
        key: String,
        /// Its full path, e.g. `attestations[0].password`.
        field: String,
        /// The file (or `<input>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },

    /// A key the schema does not know.
    #[error("{file}:{line}:{column}: unknown field `{field}` (expected {expected})")]
    UnknownField {
        /// Its full path.
        field: String,
        /// The keys allowed there.
        expected: String,
        /// The file (or `<input>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },

    /// A known field is missing, has the wrong type, or has an invalid value.
    #[error("{file}:{line}:{column}: `{field}`: {reason}")]
    Field {
        /// Its full path.
        field: String,
        /// What is wrong.
        reason: String,
        /// The file (or `<input>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },

    /// A configuration value (built in code or parsed) fails validation.
    #[error("invalid signer configuration: `{field}`: {reason}")]
    Invalid {
        /// Its full path.
        field: String,
        /// What is wrong.
        reason: String,
    },

    /// A predicate `uri` is not acceptable (not absolute, `..`, outside the roots, a link, ...).
    #[error("`{field}`: uri `{uri}` {reason}")]
    Uri {
        /// Its full path.
        field: String,
        /// The uri as given.
        uri: String,
        /// What is wrong.
        reason: String,
    },

    /// A string is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest `{value}`: {reason}")]
    Digest {
        /// The rejected text (shortened, control characters escaped).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A layer-scoped SBOM whose layer has no diffID in the lifecycle label.
    #[error(
        "{}: buildpack `{buildpack}` layer `{layer}` has an SBOM but no diffID in the io.buildpacks.lifecycle.metadata label",
        path.display()
    )]
    LayerNotInLabel {
        /// The real buildpack ID.
        buildpack: String,
        /// The layer name.
        layer: String,
        /// The SBOM file.
        path: PathBuf,
    },

    /// A predicate file no longer has the digest recorded in `io.buildpacks.sbom.digest`.
    #[error(
        "refusing {}: its digest is {actual} but the configuration recorded {expected} (the file changed after the configuration was written)",
        path.display()
    )]
    PredicateChanged {
        /// The file.
        path: PathBuf,
        /// `io.buildpacks.sbom.digest` from the configuration.
        expected: String,
        /// The digest of the bytes read now.
        actual: String,
    },

    /// Writing the configuration failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The target file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Writing was refused before anything was written.
    #[error("refusing to write {}: {reason}", path.display())]
    WriteRefused {
        /// The target file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// An SBOM predicate failed the discovery crate's checks (invalid JSON, wrong format, ...).
    #[error(transparent)]
    Sbom(#[from] cnb_sbom_discovery::Error),
}

/// Escape control characters and shorten untrusted text for messages.
pub(crate) fn sanitize(s: &str) -> String {
    cnb_untrusted::text::sanitize(s, 200)
}

/// A digest that did not parse, in this crate's words (`invalid digest `...`: why`).
impl From<cnb_untrusted::DigestError> for Error {
    fn from(e: cnb_untrusted::DigestError) -> Self {
        Error::Digest {
            value: e.value().to_string(),
            reason: e.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    #[test]
    fn digest_errors_say_invalid_digest_and_stay_on_one_line() {
        // One input for each reason a digest is refused (the parse cases themselves are tested
        // beside `cnb_untrusted::Digest`).
        for (bad, why) in [
            ("", "expected `sha256:<64 lowercase hex digits>`"),
            ("sha512:00", "only sha256 digests are supported"),
            (
                "SHA256:00",
                "the algorithm must be spelled `sha256` (lowercase)",
            ),
            ("sha256:00\n", "expected 64 hex digits after `sha256:`"),
            (
                &format!("sha256:{}", "A".repeat(64)),
                "expected lowercase hex digits",
            ),
        ] {
            let err = Error::from(bad.parse::<Digest>().unwrap_err()).to_string();
            assert!(err.starts_with("invalid digest `"), "{bad:?}: {err}");
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn digest_example_from_the_former_digest_module() -> Result<(), Error> {
        let d: Digest =
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.algorithm(), "sha256");
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        Ok(())
    }
}
