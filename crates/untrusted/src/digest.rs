//! Content digests (`sha256:<hex>`), validated before they reach a path, a request or a message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::text::sanitize;

/// Longest rejected digest text quoted in a [`DigestError`], in characters (a valid digest has 71).
const MAX_SHOWN: usize = 128;

/// A content digest: `sha256:` followed by 64 lowercase hex digits.
///
/// Only sha256 is accepted. Upper case, other algorithms, whitespace, `..`, `/` and anything else
/// are refused rather than normalised, so a digest is spelled exactly one way and is always safe
/// to use as a file name, URL segment or tag.
///
/// ```
/// use cnb_untrusted::Digest;
///
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// assert_eq!(d, Digest::of(b""));
/// assert_eq!(d.algorithm(), "sha256");
/// assert_eq!(d.hex(), &d.as_str()["sha256:".len()..]);
/// assert_eq!(d.fallback_tag(), format!("sha256-{}", d.hex()));
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
/// # Ok::<(), cnb_untrusted::DigestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a string is not a [`Digest`]: the rejected text (shortened, control characters escaped)
/// and the reason.
///
/// ```
/// use cnb_untrusted::Digest;
///
/// let err = "sha256:abc".parse::<Digest>().unwrap_err();
/// assert_eq!(err.value(), "sha256:abc");
/// assert_eq!(err.reason(), "expected 64 hex digits after `sha256:`");
/// assert_eq!(
///     err.to_string(),
///     "`sha256:abc` is not a sha256 digest: expected 64 hex digits after `sha256:`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a sha256 digest: {reason}")]
pub struct DigestError {
    value: String,
    reason: &'static str,
}

impl DigestError {
    fn new(value: &str, reason: &'static str) -> Self {
        DigestError {
            value: sanitize(value, MAX_SHOWN),
            reason,
        }
    }

    /// The rejected text, shortened and with control characters escaped (safe to print).
    ///
    /// ```
    /// let err = "sha256:\x1b[2K".parse::<cnb_untrusted::Digest>().unwrap_err();
    /// assert_eq!(err.value(), "sha256:\\u{1b}[2K");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was rejected.
    ///
    /// ```
    /// let err = "sha512:00".parse::<cnb_untrusted::Digest>().unwrap_err();
    /// assert_eq!(err.reason(), "only sha256 digests are supported");
    /// ```
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl Digest {
    /// The only algorithm accepted.
    pub const SHA256: &'static str = "sha256";

    /// A sha256 digest from its 64 lowercase hex digits.
    ///
    /// ```
    /// use cnb_untrusted::Digest;
    /// let d = Digest::sha256(&"a".repeat(64))?;
    /// assert_eq!(d.to_string(), format!("sha256:{}", "a".repeat(64)));
    /// assert!(Digest::sha256(&"A".repeat(64)).is_err());
    /// # Ok::<(), cnb_untrusted::DigestError>(())
    /// ```
    pub fn sha256(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64 {
            return Err(DigestError::new(
                &format!("sha256:{hex}"),
                "expected 64 hex digits after `sha256:`",
            ));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::new(
                &format!("sha256:{hex}"),
                "expected lowercase hex digits (0-9, a-f) after `sha256:`",
            ));
        }
        Ok(Digest(format!("sha256:{hex}")))
    }

    /// The sha256 digest of `bytes`.
    ///
    /// ```
    /// assert_eq!(
    ///     cnb_untrusted::Digest::of(b"{}").as_str(),
    ///     "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    /// );
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The algorithm (always `sha256`).
    ///
    /// ```
    /// assert_eq!(cnb_untrusted::Digest::of(b"").algorithm(), "sha256");
    /// ```
    pub fn algorithm(&self) -> &str {
        Self::SHA256
    }

    /// The 64 lowercase hex digits.
    ///
    /// ```
    /// assert_eq!(cnb_untrusted::Digest::of(b"").hex().len(), 64);
    /// ```
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` form (the same text as [`Display`](fmt::Display)).
    ///
    /// ```
    /// let d = cnb_untrusted::Digest::of(b"");
    /// assert_eq!(d.as_str(), d.to_string());
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Referrers Tag Schema tag for this digest: `sha256-<hex>`.
    ///
    /// ```
    /// let d = cnb_untrusted::Digest::of(b"");
    /// assert_eq!(d.fallback_tag(), format!("sha256-{}", d.hex()));
    /// ```
    pub fn fallback_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::sha256(hex),
            Some((alg, _)) if alg.eq_ignore_ascii_case("sha256") => Err(DigestError::new(
                s,
                "the algorithm must be spelled `sha256` (lowercase)",
            )),
            Some(_) => Err(DigestError::new(s, "only sha256 digests are supported")),
            None => Err(DigestError::new(
                s,
                "expected `sha256:<64 lowercase hex digits>`",
            )),
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, DigestError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_digests_that_could_escape_a_path() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:aa/bb",
            "sha512:00",
            "SHA256:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:000000000000000000000000000000000000000000000000000000000000000A",
            "sha256:",
            "",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        let d = Digest::of(b"{}");
        assert_eq!(
            d.as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn parsing() {
        let hex = "a".repeat(64);
        let ok: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(ok.hex(), hex);
        assert_eq!(ok.to_string(), format!("sha256:{hex}"));
        assert_eq!(ok, Digest::sha256(&hex).unwrap());
        for bad in [
            String::new(),
            hex.clone(),
            format!("sha256:{}", "A".repeat(64)),
            format!("SHA256:{hex}"),
            format!("sha512:{hex}"),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha256: {}", "a".repeat(63)),
            format!("sha256:{}/..", "a".repeat(60)),
            format!("sha256:{hex}\n"),
        ] {
            let err = bad.parse::<Digest>().unwrap_err().to_string();
            assert!(err.contains("is not a sha256 digest"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn errors_say_why_and_quote_the_value_escaped_and_shortened() {
        let cases = [
            ("sha256:abc", "expected 64 hex digits"),
            (
                "sha256:000000000000000000000000000000000000000000000000000000000000000A",
                "lowercase hex",
            ),
            (
                "SHA256:0000000000000000000000000000000000000000000000000000000000000000",
                "spelled `sha256`",
            ),
            ("sha512:00", "only sha256"),
            ("nocolon", "expected `sha256:<64 lowercase hex digits>`"),
        ];
        for (bad, why) in cases {
            let err = bad.parse::<Digest>().unwrap_err();
            assert!(err.reason().contains(why), "{bad}: {err}");
            assert_eq!(err.value(), bad);
        }
        let forged = format!("sha256:\r\x1b[2K{}", "x".repeat(1000));
        let err = forged.parse::<Digest>().unwrap_err().to_string();
        assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
        assert!(err.len() < 300 && err.contains('…'), "{err}");
    }

    #[test]
    fn serde_uses_the_string_form_and_validates() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let err = serde_json::from_str::<Digest>("\"sha256:../../x\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("`sha256:../../x` is not a sha256 digest"),
            "{err}"
        );
    }
}
