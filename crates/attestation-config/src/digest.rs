//! `sha256:<hex>` digests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{sanitize, Error};

/// A content digest, `sha256:` followed by 64 lowercase hex digits.
///
/// Only sha256 is accepted for now; uppercase hex, other algorithms, whitespace and anything
/// else are refused rather than normalised, so that a digest is spelled exactly one way.
///
/// ```
/// use cnb_attestation_config::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// assert_eq!(d, Digest::of(b""));
/// assert_eq!(d.algorithm(), "sha256");
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// # Ok::<(), cnb_attestation_config::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The only algorithm accepted for now.
    pub const SHA256: &'static str = "sha256";

    /// A sha256 digest from its 64 lowercase hex digits.
    pub fn sha256(hex: &str) -> Result<Self, Error> {
        let reason = if hex.len() != 64 {
            Some("expected 64 hex digits after `sha256:`")
        } else if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Some("expected lowercase hex digits (0-9, a-f) after `sha256:`")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::Digest {
                value: sanitize(&format!("sha256:{hex}")),
                reason,
            }),
            None => Ok(Digest {
                hex: hex.to_string(),
            }),
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The algorithm (`sha256`).
    pub fn algorithm(&self) -> &str {
        Self::SHA256
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::sha256(hex),
            Some((alg, _)) if alg.eq_ignore_ascii_case("sha256") => Err(Error::Digest {
                value: sanitize(s),
                reason: "the algorithm must be spelled `sha256` (lowercase)",
            }),
            Some(_) => Err(Error::Digest {
                value: sanitize(s),
                reason: "only sha256 digests are supported",
            }),
            None => Err(Error::Digest {
                value: sanitize(s),
                reason: "expected `sha256:<64 lowercase hex digits>`",
            }),
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let hex = "a".repeat(64);
        let ok: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(ok.hex(), hex);
        assert_eq!(ok.to_string(), format!("sha256:{hex}"));
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
            assert!(err.starts_with("invalid digest"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
