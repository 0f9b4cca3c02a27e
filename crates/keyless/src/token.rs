//! The OIDC identity token that keyless signing presents to Fulcio.
//!
//! The token is a JWT that Fulcio verifies (signature, issuer, audience, expiry); this module only
//! decodes its claims, to refuse early and clearly a token Fulcio would refuse (expired, for the
//! wrong audience, not a JWT at all) and to say whose identity a run signs with.
//!
//! Tokens come from an environment variable or a file, read when they are used and never cached
//! across runs: Kubernetes projected service-account tokens and CI systems mount a file that is
//! refreshed in place. Tokens never come from configuration files; a token file whose content looks
//! like TOML or JSON is refused.
//!
//! The raw token is a secret. It is held in a buffer wiped on drop (the copies in a Fulcio request
//! body and the HTTP client's buffers are not wiped), `Debug` and `Display` print only its issuer
//! and subject, and no [`TokenError`] ever contains it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cnb_untrusted::text::sanitize;
use serde_json::Value;
use zeroize::Zeroizing;

/// The audience Fulcio requires by default (the public instance's OIDC client ID).
pub const DEFAULT_AUDIENCE: &str = "sigstore";

/// The largest token read from a file or an environment variable (64 KiB).
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// Longest claim value shown in a message or in `Debug`/`Display`.
const SHOWN: usize = 200;

/// Where an identity token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The environment variable with this name (for example `SIGSTORE_ID_TOKEN`).
    Env(String),
    /// A file holding the token, read at use time (for example a Kubernetes projected
    /// service-account token or a CI system's OIDC token file).
    File(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(name) => write!(f, "environment variable {}", sanitize(name, SHOWN)),
            TokenSource::File(path) => {
                write!(f, "file {}", sanitize(&path.to_string_lossy(), 500))
            }
        }
    }
}

/// The claims of an identity token that matter here (decoded, not verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: the OIDC issuer.
    pub issuer: String,
    /// `sub`: the subject.
    pub subject: String,
    /// `aud`: the audiences (a JWT may hold one string or a list).
    pub audience: Vec<String>,
    /// `exp`: expiry, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// `iat`: issue time, in seconds since the Unix epoch, if present.
    pub issued_at: Option<i64>,
    /// `email`, if present.
    pub email: Option<String>,
}

/// An OIDC identity token (a JWT) and its decoded claims.
///
/// `Debug` and `Display` show the issuer and subject, never the token.
pub struct IdentityToken {
    raw: Zeroizing<String>,
    claims: Claims,
}

/// Why an identity token cannot be used. No variant holds the token or any part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The environment variable is not set.
    #[error("no identity token: environment variable {var} is not set")]
    EnvMissing {
        /// The variable's name.
        var: String,
    },
    /// The environment variable is set but empty (or only whitespace).
    #[error("no identity token: environment variable {var} is empty")]
    EnvEmpty {
        /// The variable's name.
        var: String,
    },
    /// The environment variable does not hold valid Unicode.
    #[error("identity token in environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable's name.
        var: String,
    },
    /// The token file cannot be read.
    #[error("cannot read the identity token file {path}: {reason}")]
    File {
        /// The file (sanitised for display).
        path: String,
        /// Why (the I/O error, or: not a regular file, too large).
        reason: String,
    },
    /// The token file is empty (or only whitespace).
    #[error("the identity token file {path} is empty")]
    FileEmpty {
        /// The file (sanitised for display).
        path: String,
    },
    /// The token file looks like a configuration file rather than a token.
    #[error(
        "the identity token file {path} looks like {format}, not a JWT: identity tokens are never \
         read from configuration files; point at a file that holds only the token (as Kubernetes \
         and CI systems mount it) or use an environment variable"
    )]
    ConfigurationFile {
        /// The file (sanitised for display).
        path: String,
        /// `TOML` or `JSON`.
        format: &'static str,
    },
    /// The token is not a JWT (three base64url parts holding JSON objects).
    #[error("the identity token from {origin} is not a JWT: {reason}")]
    NotAJwt {
        /// Where the token came from.
        origin: String,
        /// What is wrong with it (never quoting it).
        reason: String,
    },
    /// A required claim is missing.
    #[error("the identity token from {origin} has no `{claim}` claim (Fulcio requires it)")]
    MissingClaim {
        /// Where the token came from.
        origin: String,
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has the wrong type.
    #[error("the identity token from {origin}: claim `{claim}` {reason}")]
    BadClaim {
        /// Where the token came from.
        origin: String,
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The token has expired.
    #[error(
        "the identity token from {origin} (subject {subject}, issuer {issuer}) expired at \
         {expired_at} (it is now {now}): obtain a fresh token"
    )]
    Expired {
        /// Where the token came from.
        origin: String,
        /// The token's issuer (sanitised).
        issuer: String,
        /// The token's subject (sanitised).
        subject: String,
        /// The expiry, RFC 3339 UTC.
        expired_at: String,
        /// The current time, RFC 3339 UTC.
        now: String,
    },
    /// The token is not meant for Fulcio.
    #[error(
        "the identity token from {origin} has audience [{found}], but Fulcio requires the \
         audience `{expected}`: request the token for audience `{expected}`"
    )]
    WrongAudience {
        /// Where the token came from.
        origin: String,
        /// The audience required.
        expected: String,
        /// The token's audiences (sanitised, comma-separated).
        found: String,
    },
}

impl IdentityToken {
    /// Decodes a raw JWT (surrounding whitespace ignored) and checks it is usable for Fulcio's
    /// default audience [`DEFAULT_AUDIENCE`] now. The signature is not verified (Fulcio does).
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        Self::parse_for_audience(raw, DEFAULT_AUDIENCE)
    }

    /// As [`parse`](Self::parse), for an instance whose Fulcio requires `audience`.
    pub fn parse_for_audience(raw: &str, audience: &str) -> Result<Self, TokenError> {
        Self::parse_at(raw, audience, unix_now(), "the value given")
    }

    /// Reads the token from `source` now, for Fulcio's default audience.
    pub fn from_source(source: &TokenSource) -> Result<Self, TokenError> {
        Self::from_source_for_audience(source, DEFAULT_AUDIENCE)
    }

    /// Reads the token from `source` now, for an instance whose Fulcio requires `audience`.
    pub fn from_source_for_audience(
        source: &TokenSource,
        audience: &str,
    ) -> Result<Self, TokenError> {
        let origin = source.to_string();
        match source {
            TokenSource::Env(var) => {
                let shown = sanitize(var, SHOWN);
                let value = match std::env::var(var) {
                    Ok(value) => Zeroizing::new(value),
                    Err(std::env::VarError::NotPresent) => {
                        return Err(TokenError::EnvMissing { var: shown })
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(TokenError::EnvNotUnicode { var: shown })
                    }
                };
                let token = value.trim();
                if token.is_empty() {
                    return Err(TokenError::EnvEmpty { var: shown });
                }
                if token.len() as u64 > MAX_TOKEN_BYTES {
                    return Err(TokenError::NotAJwt {
                        origin,
                        reason: format!("longer than {MAX_TOKEN_BYTES} bytes"),
                    });
                }
                Self::parse_at(token, audience, unix_now(), &origin)
            }
            TokenSource::File(path) => {
                let content = read_token_file(path)?;
                Self::parse_at(&content, audience, unix_now(), &origin)
            }
        }
    }

    /// The decoding and checks, at the time `now` (Unix seconds); `origin` names the source.
    fn parse_at(raw: &str, audience: &str, now: i64, origin: &str) -> Result<Self, TokenError> {
        let raw = raw.trim();
        let not_jwt = |reason: &str| TokenError::NotAJwt {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        if raw.is_empty() {
            return Err(not_jwt("it is empty"));
        }
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 {
            return Err(not_jwt(&format!(
                "it has {} dot-separated parts (a JWT has 3)",
                parts.len()
            )));
        }
        let (header, payload, signature) = (parts[0], parts[1], parts[2]);
        if signature.is_empty() {
            return Err(not_jwt("its signature part is empty (an unsigned token)"));
        }
        if !signature.bytes().all(is_base64url) {
            return Err(not_jwt("its signature part is not base64url"));
        }
        decode_object(header).map_err(|reason| not_jwt(&format!("its header {reason}")))?;
        let claims =
            decode_object(payload).map_err(|reason| not_jwt(&format!("its payload {reason}")))?;

        let string_claim = |claim: &'static str| -> Result<Option<String>, TokenError> {
            match claims.get(claim) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(TokenError::BadClaim {
                    origin: origin.to_string(),
                    claim,
                    reason: "is not a string".into(),
                }),
            }
        };
        let required = |claim: &'static str| -> Result<String, TokenError> {
            match string_claim(claim)? {
                Some(s) if !s.is_empty() => Ok(s),
                _ => Err(TokenError::MissingClaim {
                    origin: origin.to_string(),
                    claim,
                }),
            }
        };
        let issuer = required("iss")?;
        let subject = required("sub")?;
        let email = string_claim("email")?;
        let expires_at = numeric_date(claims.get("exp"), "exp", origin)?.ok_or_else(|| {
            TokenError::MissingClaim {
                origin: origin.to_string(),
                claim: "exp",
            }
        })?;
        let issued_at = numeric_date(claims.get("iat"), "iat", origin)?;
        let audiences = match claims.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| {
                    a.as_str().map(str::to_string).ok_or(TokenError::BadClaim {
                        origin: origin.to_string(),
                        claim: "aud",
                        reason: "is a list holding something other than strings".into(),
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(TokenError::BadClaim {
                    origin: origin.to_string(),
                    claim: "aud",
                    reason: "is neither a string nor a list of strings".into(),
                })
            }
        };

        if expires_at <= now {
            return Err(TokenError::Expired {
                origin: origin.to_string(),
                issuer: sanitize(&issuer, SHOWN),
                subject: sanitize(&subject, SHOWN),
                expired_at: cnb_untrusted::time::rfc3339_utc(expires_at),
                now: cnb_untrusted::time::rfc3339_utc(now),
            });
        }
        if !audiences.iter().any(|a| a == audience) {
            let found = if audiences.is_empty() {
                "none".to_string()
            } else {
                audiences
                    .iter()
                    .take(8)
                    .map(|a| format!("`{}`", sanitize(a, 100)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(TokenError::WrongAudience {
                origin: origin.to_string(),
                expected: sanitize(audience, SHOWN),
                found,
            });
        }
        Ok(IdentityToken {
            raw: Zeroizing::new(raw.to_string()),
            claims: Claims {
                issuer,
                subject,
                audience: audiences,
                expires_at,
                issued_at,
                email,
            },
        })
    }

    /// The decoded claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.claims.issuer
    }

    /// The subject (`sub`).
    pub fn subject(&self) -> &str {
        &self.claims.subject
    }

    /// The raw token, for the HTTP layer that sends it to Fulcio (and nothing else).
    pub(crate) fn secret(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityToken")
            .field("issuer", &sanitize(&self.claims.issuer, SHOWN))
            .field("subject", &sanitize(&self.claims.subject, SHOWN))
            .field(
                "expires_at",
                &cnb_untrusted::time::rfc3339_utc(self.claims.expires_at),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Display for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "identity token for {} issued by {}",
            sanitize(&self.claims.subject, SHOWN),
            sanitize(&self.claims.issuer, SHOWN)
        )
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Decodes one base64url JWT part into a JSON object; the error says what is wrong, never what
/// the part holds.
fn decode_object(part: &str) -> Result<serde_json::Map<String, Value>, String> {
    let part = part.trim_end_matches('=');
    if part.is_empty() {
        return Err("is empty".into());
    }
    if !part.bytes().all(is_base64url) {
        return Err("is not base64url".into());
    }
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "is not valid base64url".to_string())?,
    );
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("is not a JSON object".into()),
        Err(_) => Err("is not JSON".into()),
    }
}

/// A JWT NumericDate claim (seconds since the epoch, possibly fractional), `None` when absent.
fn numeric_date(
    value: Option<&Value>,
    claim: &'static str,
    origin: &str,
) -> Result<Option<i64>, TokenError> {
    let bad = |reason: &str| TokenError::BadClaim {
        origin: origin.to_string(),
        claim,
        reason: reason.to_string(),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    // Within ±10^13 s (±300,000 years): a date, and exact as an i64.
                    Some(f) if f.is_finite() && f.abs() < 1e13 => Ok(Some(f.floor() as i64)),
                    _ => Err(bad("is not a date in seconds since the epoch")),
                }
            }
        }
        Some(_) => Err(bad("is not a number (seconds since the epoch)")),
    }
}

/// Reads a token file: bounded, trimmed, refusing configuration files. The bytes read are wiped.
fn read_token_file(path: &Path) -> Result<Zeroizing<String>, TokenError> {
    let shown = sanitize(&path.to_string_lossy(), 500);
    // Room for the whole cap up front, so no reallocation leaves an unwiped copy behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_BYTES as usize + 1));
    cnb_local_files::read_into(
        path,
        MAX_TOKEN_BYTES,
        cnb_local_files::Links::Follow,
        &mut bytes,
    )
    .map_err(|e| TokenError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::File {
        path: shown.clone(),
        reason: "not UTF-8 text".into(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::FileEmpty { path: shown });
    }
    if let Some(format) = config_format(token) {
        return Err(TokenError::ConfigurationFile {
            path: shown,
            format,
        });
    }
    Ok(Zeroizing::new(token.to_string()))
}

/// `Some("JSON")` or `Some("TOML")` when `text` (trimmed, not a JWT) looks like that format.
fn config_format(text: &str) -> Option<&'static str> {
    if text
        .bytes()
        .all(|b| is_base64url(b) || b == b'.' || b == b'=')
    {
        return None;
    }
    if text.starts_with('{')
        || (text.starts_with('[') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
    {
        return Some("JSON");
    }
    let tomlish = text.lines().map(str::trim).any(|line| {
        (line.starts_with('[') && line.ends_with(']'))
            || line.starts_with('#')
            || line.split_once('=').is_some_and(|(key, _)| {
                let key = key.trim();
                !key.is_empty()
                    && key.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'"')
                    })
            })
    });
    tomlish.then_some("TOML")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Builds an unsigned-looking test JWT (header, claims, a dummy signature part).
#[cfg(test)]
pub(crate) fn test_jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJlLWJ5dGVz")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good_claims() -> Value {
        json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:example/app:ref:refs/heads/main",
            "aud": "sigstore",
            "iat": unix_now() - 10,
            "exp": unix_now() + 600,
            "email": "dev@example.com",
        })
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    #[test]
    fn a_good_token_is_decoded_with_its_claims() {
        let raw = test_jwt(&good_claims());
        let token = IdentityToken::parse(&format!("  {raw}\n")).unwrap();
        assert_eq!(
            token.issuer(),
            "https://token.actions.githubusercontent.com"
        );
        assert_eq!(token.subject(), "repo:example/app:ref:refs/heads/main");
        assert_eq!(token.claims().audience, vec!["sigstore".to_string()]);
        assert_eq!(token.claims().email.as_deref(), Some("dev@example.com"));
        assert!(token.claims().issued_at.is_some());
        assert_eq!(token.secret(), raw);
    }

    #[test]
    fn an_audience_list_holding_sigstore_is_accepted() {
        let claims = with(good_claims(), "aud", json!(["other", "sigstore"]));
        let token = IdentityToken::parse(&test_jwt(&claims)).unwrap();
        assert_eq!(token.claims().audience, vec!["other", "sigstore"]);
    }

    #[test]
    fn an_expired_token_is_refused_with_its_expiry_time() {
        let claims = with(good_claims(), "exp", json!(1_700_000_000));
        let error = IdentityToken::parse(&test_jwt(&claims)).unwrap_err();
        assert!(matches!(error, TokenError::Expired { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("expired at 2023-11-14T22:13:20Z"),
            "{message}"
        );
        assert!(message.contains("repo:example/app"), "{message}");
    }

    #[test]
    fn a_token_for_another_audience_is_refused_naming_the_required_one() {
        let claims = with(good_claims(), "aud", json!(["https://github.com/example"]));
        let error = IdentityToken::parse(&test_jwt(&claims)).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, TokenError::WrongAudience { .. }),
            "{error:?}"
        );
        assert!(
            message.contains("Fulcio requires the audience `sigstore`"),
            "{message}"
        );
        assert!(
            message.contains("`https://github.com/example`"),
            "{message}"
        );
    }

    #[test]
    fn the_required_audience_is_a_parameter() {
        let claims = with(good_claims(), "aud", json!("private-fulcio"));
        let raw = test_jwt(&claims);
        assert!(IdentityToken::parse(&raw).is_err());
        let token = IdentityToken::parse_for_audience(&raw, "private-fulcio").unwrap();
        assert_eq!(token.claims().audience, vec!["private-fulcio"]);
    }

    #[test]
    fn a_token_without_issuer_subject_or_expiry_is_refused() {
        for claim in ["iss", "sub", "exp"] {
            let raw = test_jwt(&without(good_claims(), claim));
            match IdentityToken::parse(&raw) {
                Err(TokenError::MissingClaim { claim: missing, .. }) => assert_eq!(missing, claim),
                other => panic!("{claim}: {other:?}"),
            }
        }
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused() {
        let raw = test_jwt(&with(good_claims(), "exp", json!("tomorrow")));
        assert!(matches!(
            IdentityToken::parse(&raw),
            Err(TokenError::BadClaim { claim: "exp", .. })
        ));
        let raw = test_jwt(&with(good_claims(), "aud", json!(7)));
        assert!(matches!(
            IdentityToken::parse(&raw),
            Err(TokenError::BadClaim { claim: "aud", .. })
        ));
    }

    #[test]
    fn what_is_not_a_jwt_is_refused() {
        let good = test_jwt(&good_claims());
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            "not-a-token".to_string(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{}.{}.{}.x", parts[0], parts[1], parts[2]),
            format!("{}.{}.", parts[0], parts[1]),
            format!("{}.%%%.{}", parts[0], parts[2]),
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode("[1,2]"),
                parts[2]
            ),
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("nope"),
                parts[1],
                parts[2]
            ),
        ];
        for case in cases {
            match IdentityToken::parse(&case) {
                Err(TokenError::NotAJwt { .. }) => {}
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_fractional_expiry_is_read_as_seconds() {
        let exp = unix_now() + 100;
        let raw = test_jwt(&with(good_claims(), "exp", json!(exp as f64 + 0.5)));
        assert_eq!(IdentityToken::parse(&raw).unwrap().claims().expires_at, exp);
    }

    #[test]
    fn the_token_comes_from_a_file_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let raw = test_jwt(&good_claims());
        std::fs::write(&path, format!("{raw}\n")).unwrap();
        let token = IdentityToken::from_source(&TokenSource::File(path.clone())).unwrap();
        assert_eq!(token.secret(), raw);
        // Read at use time: a refreshed file gives the new token.
        let fresh = test_jwt(&with(good_claims(), "sub", json!("someone-else")));
        std::fs::write(&path, &fresh).unwrap();
        let token = IdentityToken::from_source(&TokenSource::File(path)).unwrap();
        assert_eq!(token.subject(), "someone-else");
    }

    #[test]
    fn a_configuration_file_is_refused_as_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = test_jwt(&good_claims());
        let cases = [
            ("toml", format!("[keyless]\ntoken = \"{raw}\"\n"), "TOML"),
            ("toml2", format!("token = \"{raw}\"\n"), "TOML"),
            ("json", format!("{{\"token\": \"{raw}\"}}"), "JSON"),
        ];
        for (name, content, format) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            let error = IdentityToken::from_source(&TokenSource::File(path)).unwrap_err();
            match &error {
                TokenError::ConfigurationFile { format: f, .. } => assert_eq!(*f, format),
                other => panic!("{name}: {other:?}"),
            }
            let message = error.to_string();
            assert!(
                message.contains(&format!("looks like {format}")),
                "{message}"
            );
            assert!(
                message.contains("never read from configuration files"),
                "{message}"
            );
            assert!(!message.contains(&raw));
        }
    }

    #[test]
    fn a_token_file_over_64_kib_or_empty_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "a".repeat(64 * 1024 + 1)).unwrap();
        let error = IdentityToken::from_source(&TokenSource::File(big)).unwrap_err();
        assert!(matches!(error, TokenError::File { .. }), "{error:?}");
        assert!(error.to_string().contains("65536-byte limit"), "{error}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n  \n").unwrap();
        assert!(matches!(
            IdentityToken::from_source(&TokenSource::File(empty)),
            Err(TokenError::FileEmpty { .. })
        ));

        let missing = dir.path().join("missing");
        let error = IdentityToken::from_source(&TokenSource::File(missing)).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn a_missing_or_empty_environment_variable_is_named() {
        let var = "CNB_KEYLESS_TEST_TOKEN_THAT_IS_NEVER_SET";
        let error = IdentityToken::from_source(&TokenSource::Env(var.into())).unwrap_err();
        assert!(matches!(error, TokenError::EnvMissing { .. }), "{error:?}");
        assert!(error.to_string().contains(var), "{error}");
        // PATH is set in every test environment and is not a JWT: the message names the variable.
        let error = IdentityToken::from_source(&TokenSource::Env("PATH".into())).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("from environment variable PATH is not a JWT"),
            "{error}"
        );
    }

    #[test]
    fn debug_and_display_show_issuer_and_subject_not_the_token() {
        let raw = test_jwt(&good_claims());
        let token = IdentityToken::parse(&raw).unwrap();
        let parts: Vec<&str> = raw.split('.').collect();
        for shown in [format!("{token:?}"), token.to_string()] {
            assert!(
                shown.contains("repo:example/app:ref:refs/heads/main"),
                "{shown}"
            );
            assert!(
                shown.contains("token.actions.githubusercontent.com"),
                "{shown}"
            );
            for part in &parts {
                assert!(!shown.contains(part), "{shown}");
            }
        }
    }

    /// Every error path, each with a token in its input: no message and no `Debug` holds it.
    #[test]
    fn no_error_shows_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let claims = good_claims();
        let raw = test_jwt(&claims);
        let parts: Vec<String> = raw.split('.').map(str::to_string).collect();
        let mut errors = Vec::new();
        let mut parse = |input: String| errors.push(IdentityToken::parse(&input).unwrap_err());
        parse(test_jwt(&with(claims.clone(), "exp", json!(1))));
        parse(test_jwt(&with(claims.clone(), "aud", json!("nope"))));
        parse(test_jwt(&without(claims.clone(), "aud")));
        parse(test_jwt(&without(claims.clone(), "iss")));
        parse(test_jwt(&without(claims.clone(), "sub")));
        parse(test_jwt(&without(claims.clone(), "exp")));
        parse(test_jwt(&with(claims.clone(), "exp", json!("x"))));
        parse(test_jwt(&with(claims.clone(), "iat", json!([1]))));
        parse(test_jwt(&with(claims.clone(), "email", json!(5))));
        parse(test_jwt(&with(claims.clone(), "aud", json!([1]))));
        parse(test_jwt(&with(claims.clone(), "aud", json!({}))));
        parse(format!("{raw}.{raw}"));
        parse(format!("{}.{}", parts[0], parts[1]));
        parse(format!("{}.{}.", parts[0], parts[1]));
        parse(format!("{}.{}!.{}", parts[0], parts[1], parts[2]));
        parse(format!("{}.{}.{}!", parts[0], parts[1], parts[2]));
        parse(format!("{}x.{}.{}", parts[0], parts[1], parts[2]));
        parse(format!("{}.{}x.{}", parts[0], parts[1], parts[2]));
        for (name, content) in [
            ("toml", format!("token = \"{raw}\"")),
            ("json", format!("{{\"token\":\"{raw}\"}}")),
            ("broken", format!("{raw} trailing")),
            ("expired", test_jwt(&with(claims.clone(), "exp", json!(1)))),
            ("big", format!("{raw}{}", "a".repeat(70_000))),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            errors.push(IdentityToken::from_source(&TokenSource::File(path)).unwrap_err());
        }
        assert_eq!(errors.len(), 23);
        let expired_token = test_jwt(&with(claims.clone(), "exp", json!(1)));
        let expired_parts: Vec<String> = expired_token.split('.').map(str::to_string).collect();
        for error in &errors {
            for shown in [error.to_string(), format!("{error:?}")] {
                for part in parts.iter().chain(&expired_parts) {
                    // The fixed JWT header part is 36 characters of base64url; any part of the
                    // token, header included, must be absent.
                    assert!(!shown.contains(part.as_str()), "{shown}");
                }
            }
        }
    }
}
