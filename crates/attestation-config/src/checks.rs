//! Value checks shared by parsing (which adds file, line and column) and validation.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::{sanitize, Error};
use crate::Digest;

/// An image reference pinned by digest: `<name>[:<tag>]@sha256:<hex>`. Returns the digest.
pub(crate) fn reference(s: &str) -> Result<Digest, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let Some((name, digest)) = s.rsplit_once('@') else {
        return Err(format!(
            "`{}` is not pinned by digest: expected `<name>[:<tag>]@sha256:<hex>`",
            sanitize(s)
        ));
    };
    if name.is_empty() {
        return Err("the name before `@` is empty".into());
    }
    digest
        .parse::<Digest>()
        .map_err(|e| Error::from(e).to_string())
}

/// The repository part of a reference: no digest, no tag.
pub(crate) fn repository(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &name[..colon],
        (Some(colon), None) => &name[..colon],
        _ => name,
    }
}

/// An absolute URI (RFC 3986 scheme, then something).
pub(crate) fn predicate_type(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(format!(
            "`{}` is not an absolute URI (expected e.g. `https://cyclonedx.org/bom`)",
            sanitize(s)
        ));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err(format!(
            "`{}` is not an absolute URI (expected e.g. `https://cyclonedx.org/bom`)",
            sanitize(s)
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    Ok(())
}

/// A lexically clean absolute path: `/` first, no `.` or `..` components, no NUL or control
/// characters. The reason is phrased to follow "uri `…`".
pub(crate) fn uri(s: &str) -> Result<PathBuf, String> {
    if s.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    if !s.starts_with('/') {
        return Err("is not an absolute path".into());
    }
    let mut parts = s.split('/');
    if parts.clone().any(|p| p == "..") {
        return Err("contains `..`".into());
    }
    if parts.any(|p| p == ".") {
        return Err("contains `.`".into());
    }
    if s.ends_with('/') {
        return Err("ends with `/` (it must name a file)".into());
    }
    Ok(PathBuf::from(s))
}

/// An inline predicate: one JSON object.
pub(crate) fn value(s: &str) -> Result<(), String> {
    match serde_json::from_str::<serde::de::IgnoredAny>(s) {
        Err(e) => Err(format!(
            "is not valid JSON (line {}, column {} of the value)",
            e.line(),
            e.column()
        )),
        Ok(_) if !s.trim_start().starts_with('{') => Err("must be a JSON object".into()),
        Ok(_) => Ok(()),
    }
}

/// A subject name: non-empty, no control characters.
pub(crate) fn subject_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// An annotation name: non-empty, no whitespace or control characters, not secret-looking
/// ([`is_secret_key`]) and not reserved for the storage formats ([`is_reserved_annotation`]).
/// The reason never contains the annotation's value.
pub(crate) fn annotation_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain whitespace or control characters".into())
    } else if is_secret_key(s) {
        Err(format!(
            "secret-looking annotation name `{}`: secrets are never read from configuration; use COSIGN_PASSWORD or a password file",
            sanitize(s)
        ))
    } else if is_reserved_annotation(s) {
        Err(format!(
            "annotation name `{}` is reserved for the storage formats (`dev.sigstore.*`, `dev.cosignproject.*`, `predicateType`, `in-toto.io/predicate-type`, `org.opencontainers.image.created`)",
            sanitize(s)
        ))
    } else {
        Ok(())
    }
}

/// Whether an annotation name belongs to the storage formats (`cnb-referrers` writes these
/// itself): anything starting with `dev.sigstore.` or `dev.cosignproject.`, `predicateType`,
/// `in-toto.io/predicate-type` and `org.opencontainers.image.created`. ASCII case is ignored, so
/// look-alikes such as `Dev.Sigstore.bundle.content` are refused too.
pub(crate) fn is_reserved_annotation(name: &str) -> bool {
    const PREFIXES: [&str; 2] = ["dev.sigstore.", "dev.cosignproject."];
    const NAMES: [&str; 3] = [
        "predicateType",
        "in-toto.io/predicate-type",
        "org.opencontainers.image.created",
    ];
    let starts_with = |prefix: &str| {
        name.len() >= prefix.len()
            && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    PREFIXES.iter().any(|p| starts_with(p)) || NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Tracks annotation names for uniqueness.
#[derive(Default)]
pub(crate) struct Unique<'a>(HashSet<&'a str>);

impl<'a> Unique<'a> {
    pub(crate) fn add(&mut self, name: &'a str) -> Result<(), String> {
        if self.0.insert(name) {
            Ok(())
        } else {
            Err(format!("duplicate annotation `{}`", sanitize(name)))
        }
    }
}

/// Whether a TOML key looks like it holds a secret (or points at one).
///
/// The key is split into lowercase words at `-`, `_`, `.`, other punctuation and camelCase
/// boundaries. It is secret-looking if a word is `password`, `passwd`, `passphrase`, `secret`,
/// `secrets`, `token`, `tokens`, `credential` or `credentials`; or a word contains `password`,
/// `passwd` or `passphrase`; or two adjacent words are `private key`, `key data`, `api key` or
/// `access key` (also written as one word).
pub(crate) fn is_secret_key(key: &str) -> bool {
    const WORDS: [&str; 9] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
    ];
    const FRAGMENTS: [&str; 3] = ["password", "passwd", "passphrase"];
    const PAIRS: [(&str, &str); 4] = [
        ("private", "key"),
        ("key", "data"),
        ("api", "key"),
        ("access", "key"),
    ];
    let words = split_words(key);
    if words
        .iter()
        .any(|w| WORDS.contains(&w.as_str()) || FRAGMENTS.iter().any(|f| w.contains(f)))
    {
        return true;
    }
    if words.iter().any(|w| {
        PAIRS
            .iter()
            .any(|(a, b)| w.len() == a.len() + b.len() && w.starts_with(a) && w.ends_with(b))
    }) {
        return true;
    }
    words
        .windows(2)
        .any(|pair| PAIRS.contains(&(pair[0].as_str(), pair[1].as_str())))
}

fn split_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "PASSWORD",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "private-key",
            "private_key",
            "privateKey",
            "privatekey",
            "key-data",
            "password-data",
            "credentials",
            "password-file",
            "cosign_password",
            "cosignPassword",
            "identity-token",
            "client.secret",
            "api-key",
            "accessKey",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "reference",
            "type",
            "uri",
            "value",
            "name",
            "digest",
            "key",
            "annotations",
            "subject",
            "statement",
            "keyless",
            "monkeydata",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn annotation_names() {
        for ok in [
            "io.buildpacks.buildpack.id",
            "io.buildpacks.sbom.digest",
            "io.buildpacks.layer.digest-kind",
            "org.opencontainers.image.source",
            "dev.sigstore",
            "dev.sigstorex.y",
            "predicateType2",
        ] {
            assert_eq!(annotation_name(ok), Ok(()), "{ok}");
        }
        for secret in ["password", "cosign.password", "io.example.apiKey", "token"] {
            let reason = annotation_name(secret).unwrap_err();
            assert!(
                reason.starts_with("secret-looking annotation name"),
                "{reason}"
            );
        }
        for reserved in [
            "dev.sigstore.bundle.predicateType",
            "dev.sigstore.bundle.content",
            "dev.cosignproject.cosign/signature",
            "Dev.Sigstore.bundle.content",
            "predicateType",
            "PREDICATETYPE",
            "in-toto.io/predicate-type",
            "org.opencontainers.image.created",
        ] {
            let reason = annotation_name(reserved).unwrap_err();
            assert!(
                reason.contains("is reserved for the storage formats"),
                "{reason}"
            );
        }
    }

    #[test]
    fn uris() {
        assert!(uri("/layers/sbom/launch/a/sbom.cdx.json").is_ok());
        assert_eq!(uri("/layers/../etc/passwd").unwrap_err(), "contains `..`");
        assert_eq!(uri("/layers/./x").unwrap_err(), "contains `.`");
        assert_eq!(uri("layers/x").unwrap_err(), "is not an absolute path");
        assert_eq!(uri("file:///x").unwrap_err(), "is not an absolute path");
        assert!(uri("/layers/\0x").is_err());
        assert!(uri("/layers/").is_err());
    }

    #[test]
    fn references() {
        let hex = "a".repeat(64);
        assert!(reference(&format!("r.io/ns/img:tag@sha256:{hex}")).is_ok());
        assert!(reference("r.io/ns/img:tag").is_err());
        assert!(reference(&format!("@sha256:{hex}")).is_err());
        assert_eq!(
            repository(&format!("r.io:5000/ns/img:tag@sha256:{hex}")),
            "r.io:5000/ns/img"
        );
        assert_eq!(repository("r.io:5000/ns/img"), "r.io:5000/ns/img");
        assert_eq!(repository("img:tag"), "img");
        assert_eq!(repository("/tmp/layout@sha256:x"), "/tmp/layout");
    }

    #[test]
    fn predicate_types() {
        assert!(predicate_type("https://cyclonedx.org/bom").is_ok());
        assert!(predicate_type("urn:example:x").is_ok());
        assert!(predicate_type("cyclonedx").is_err());
        assert!(predicate_type("1http://x").is_err());
        assert!(predicate_type("https:").is_err());
        assert!(predicate_type("https://x y").is_err());
    }
}
