//! The identity policy: which signer (certificate SAN) and which OIDC issuer a keyless signature
//! must come from (`--certificate-identity[-regexp]`, `--certificate-oidc-issuer[-regexp]`).
//!
//! Exact matchers compare the whole string. Regexp matchers are **anchored**: the pattern is
//! compiled as `^(?:PATTERN)$`, so it must match the whole value. That is stricter than cosign
//! (Go `regexp.MatchString`) and `@sigstore/verify` (JS `String.match`), which match anywhere in
//! the value: a pattern that would match only a substring (`soyland`, for
//! `cody@soyland.com`) does not match here, and `.*@example\.com` is needed where cosign takes
//! `@example\.com`.

use std::fmt;

/// How long untrusted certificate text may be in a message.
const SHOWN: usize = 200;

/// Matches one string: exactly, or by an anchored regular expression.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The value must equal this string.
    Exact(String),
    /// The whole value must match this expression (compiled anchored, `^(?:PATTERN)$`).
    Regex(regex::Regex),
}

/// Why a policy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression `{pattern}`: {reason}")]
pub struct PolicyError {
    /// The pattern as given (sanitized).
    pub pattern: String,
    /// What the regex compiler said.
    pub reason: String,
}

/// Which half of the policy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRule {
    /// The certificate's identity (SAN).
    Identity,
    /// The certificate's OIDC issuer.
    Issuer,
}

/// Why a certificate does not satisfy the policy: what was expected and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyFailure {
    /// The half that failed.
    pub rule: PolicyRule,
    /// Expected and found, in words (certificate text sanitized).
    pub message: String,
}

impl Matcher {
    /// A matcher for exactly `value`.
    pub fn exact(value: impl Into<String>) -> Matcher {
        Matcher::Exact(value.into())
    }

    /// A matcher for values `pattern` matches as a whole (compiled as `^(?:PATTERN)$`). The
    /// pattern must compile on its own first: one with an unbalanced `)` (`a)|(b`) would close the
    /// anchoring group and match far more than the whole value.
    pub fn regex(pattern: &str) -> Result<Matcher, PolicyError> {
        regex::Regex::new(pattern)
            .and_then(|_| regex::Regex::new(&format!("^(?:{pattern})$")))
            .map(Matcher::Regex)
            .map_err(|e| PolicyError {
                pattern: cnb_untrusted::text::sanitize(pattern, SHOWN),
                reason: e.to_string(),
            })
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(expected) => expected == value,
            Matcher::Regex(regex) => regex.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    /// `"value"` for an exact matcher, `matching /^(?:PATTERN)$/` for an expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(value) => write!(
                f,
                "\"{}\"",
                cnb_untrusted::text::sanitize_quoted(value, SHOWN)
            ),
            Matcher::Regex(regex) => write!(
                f,
                "matching /{}/",
                cnb_untrusted::text::sanitize(regex.as_str(), SHOWN)
            ),
        }
    }
}

/// Who must have signed: an identity (one of the certificate's SANs) and its OIDC issuer.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    /// Matches one of the certificate's subject alternative names.
    pub identity: Matcher,
    /// Matches the certificate's OIDC issuer.
    pub issuer: Matcher,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", cnb_untrusted::text::sanitize_quoted(s, SHOWN))
}

impl IdentityPolicy {
    /// A policy from its two matchers.
    pub fn new(identity: Matcher, issuer: Matcher) -> IdentityPolicy {
        IdentityPolicy { identity, issuer }
    }

    /// Checks a certificate's SANs and issuer; gives the SAN that matched. The issuer is checked
    /// first, then the SANs (any one of them may match).
    pub fn check(&self, sans: &[String], issuer: &str) -> Result<String, PolicyFailure> {
        if !self.issuer.matches(issuer) {
            return Err(PolicyFailure {
                rule: PolicyRule::Issuer,
                message: format!(
                    "expected OIDC issuer {}, the certificate names {}",
                    self.issuer,
                    quoted(issuer)
                ),
            });
        }
        if let Some(san) = sans.iter().find(|san| self.identity.matches(san)) {
            return Ok(san.clone());
        }
        let found = if sans.is_empty() {
            "the certificate names no identity (no email, URI or username SAN)".to_string()
        } else {
            let list: Vec<String> = sans.iter().take(8).map(|s| quoted(s)).collect();
            format!("the certificate names {}", list.join(", "))
        };
        Err(PolicyFailure {
            rule: PolicyRule::Identity,
            message: format!("expected identity {}, {found}", self.identity),
        })
    }

    /// The policy in words, for messages: `identity "…" issued by "…"`.
    pub fn describe(&self) -> String {
        format!("identity {} issued by {}", self.identity, self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str = "cody@soyland.com";
    const ISSUER: &str = "https://github.com/login/oauth";

    fn sans() -> Vec<String> {
        vec![IDENTITY.to_string()]
    }

    #[test]
    fn exact_identity_and_issuer_match() {
        let policy = IdentityPolicy::new(Matcher::exact(IDENTITY), Matcher::exact(ISSUER));
        assert_eq!(policy.check(&sans(), ISSUER).unwrap(), IDENTITY);
        assert_eq!(
            policy.describe(),
            "identity \"cody@soyland.com\" issued by \"https://github.com/login/oauth\""
        );
    }

    #[test]
    fn another_identity_fails_and_says_what_was_found() {
        let policy =
            IdentityPolicy::new(Matcher::exact("alice@example.com"), Matcher::exact(ISSUER));
        let e = policy.check(&sans(), ISSUER).unwrap_err();
        assert_eq!(e.rule, PolicyRule::Identity);
        assert_eq!(
            e.message,
            "expected identity \"alice@example.com\", the certificate names \"cody@soyland.com\""
        );
    }

    #[test]
    fn another_issuer_fails() {
        let policy = IdentityPolicy::new(
            Matcher::exact(IDENTITY),
            Matcher::exact("https://token.actions.githubusercontent.com"),
        );
        let e = policy.check(&sans(), ISSUER).unwrap_err();
        assert_eq!(e.rule, PolicyRule::Issuer);
        assert!(e
            .message
            .contains("the certificate names \"https://github.com/login/oauth\""));
    }

    #[test]
    fn regexps_are_anchored() {
        let issuer = Matcher::exact(ISSUER);
        // Matches only as a substring: refused here (cosign would accept it).
        let policy = IdentityPolicy::new(Matcher::regex("soyland").unwrap(), issuer.clone());
        assert_eq!(
            policy.check(&sans(), ISSUER).unwrap_err().rule,
            PolicyRule::Identity
        );
        let policy = IdentityPolicy::new(Matcher::regex("cody@soyland").unwrap(), issuer.clone());
        assert!(policy.check(&sans(), ISSUER).is_err());
        // An alternation cannot escape the anchors.
        let policy = IdentityPolicy::new(Matcher::regex("x|cody").unwrap(), issuer.clone());
        assert!(policy.check(&sans(), ISSUER).is_err());
        // Nor can a pattern that closes the anchoring group itself (it would match anything
        // once wrapped): refused as a pattern.
        for escaping in ["a)|(.*", "x)|(b", ".*)|(.*"] {
            assert!(Matcher::regex(escaping).is_err(), "{escaping}");
        }
        let policy = IdentityPolicy::new(Matcher::regex(r".*@soyland\.com").unwrap(), issuer);
        assert_eq!(policy.check(&sans(), ISSUER).unwrap(), IDENTITY);
        let policy = IdentityPolicy::new(
            Matcher::exact(IDENTITY),
            Matcher::regex(r"https://github\.com/.*").unwrap(),
        );
        assert!(policy.check(&sans(), ISSUER).is_ok());
        let policy =
            IdentityPolicy::new(Matcher::exact(IDENTITY), Matcher::regex("github").unwrap());
        assert_eq!(
            policy.check(&sans(), ISSUER).unwrap_err().rule,
            PolicyRule::Issuer
        );
    }

    #[test]
    fn any_san_may_match_and_untrusted_text_is_escaped() {
        let policy = IdentityPolicy::new(Matcher::exact("b"), Matcher::exact("i"));
        let sans = vec!["a\x1b[2K".to_string(), "b".to_string()];
        assert_eq!(policy.check(&sans, "i").unwrap(), "b");
        let e = policy.check(&sans[..1], "i").unwrap_err();
        assert!(e.message.contains("a\\u{1b}[2K"), "{e}");
        assert!(!e.message.contains('\x1b'));
        let e = policy.check(&[], "i").unwrap_err();
        assert!(e.message.contains("names no identity"), "{e}");
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        let e = Matcher::regex("(").unwrap_err();
        assert_eq!(e.pattern, "(");
        assert!(
            e.to_string().starts_with("invalid regular expression `(`"),
            "{e}"
        );
    }
}
