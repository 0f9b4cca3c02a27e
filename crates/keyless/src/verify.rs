//! The offline keyless verifier: a DSSE envelope and its bundle's keyless material (a Fulcio leaf
//! certificate and one Rekor v1 entry) against a trusted root and an identity policy.
//!
//! The order (research `keyless.md` §4.1, as sigstore-python):
//! 1. exactly one DSSE signature and exactly one log entry;
//! 2. the leaf certificate is parsed (a bare public key is refused as such);
//! 3. the log entry is verified ([`crate::tlog::verify_entry`]: SET, inclusion proof, checkpoint,
//!    binding to this envelope and certificate), which establishes the time: the entry's
//!    integrated time;
//! 4. the certificate chains to a CA of the trusted root at that time;
//! 5. an embedded SCT of a trusted CT log verifies;
//! 6. the certificate's identity and issuer satisfy the policy;
//! 7. the envelope's signature verifies with the certificate's key.

use std::fmt;

use crate::bundle::KeylessMaterial;
use crate::cert::{verify_chain, CertRule, Leaf};
use crate::policy::{IdentityPolicy, PolicyRule};
use crate::tlog::TlogRule;
use crate::trust::TrustedRoot;

/// Verifies keyless signatures against a trusted root and an identity policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    root: TrustedRoot,
    policy: IdentityPolicy,
}

/// What a verified keyless signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The certificate SAN that matched the policy (who signed).
    pub identity: String,
    /// The certificate's OIDC issuer.
    pub issuer: String,
    /// When the log integrated the entry (Unix seconds), the time the certificate was checked at.
    pub integrated_time: i64,
    /// The entry's global log index.
    pub log_index: u64,
    /// The base URL of the log that witnessed the signature.
    pub log: String,
}

/// Which verification rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The material or envelope is malformed or not of the accepted shape.
    Material,
    /// The bundle holds a public key, not a certificate.
    BareKey,
    /// A signature or CA constraint of the certificate chain does not hold.
    Chain,
    /// No CA of the trusted root issued the certificate.
    UnknownCa,
    /// The log's time is outside a certificate's or CA's validity.
    Expired,
    /// The certificate is not for code signing (KeyUsage / EKU).
    KeyUsage,
    /// No embedded SCT of a trusted CT log verifies.
    Sct,
    /// The bundle has no transparency-log entry.
    NoLogEntry,
    /// The bundle has more than one transparency-log entry.
    TooManyLogEntries,
    /// The entry's log is not in the trusted root (or its key was not valid then).
    UnknownLog,
    /// The entry is not a `dsse` 0.0.1 entry.
    LogKind,
    /// The signed entry timestamp is missing or does not verify.
    Set,
    /// The inclusion proof is missing or does not verify.
    InclusionProof,
    /// The checkpoint is malformed, unsigned, or for another tree.
    Checkpoint,
    /// The log entry is for another envelope, signature or certificate.
    LogBinding,
    /// The certificate's identity does not match the policy.
    Identity,
    /// The certificate's OIDC issuer does not match the policy (or is missing or ambiguous).
    Issuer,
    /// The envelope's signature does not verify with the certificate's key.
    Signature,
}

impl Rule {
    /// The rule's stable kebab-case name (used in reports and tests).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Material => "material",
            Rule::BareKey => "bare-key",
            Rule::Chain => "chain",
            Rule::UnknownCa => "unknown-ca",
            Rule::Expired => "expired",
            Rule::KeyUsage => "key-usage",
            Rule::Sct => "sct",
            Rule::NoLogEntry => "no-log-entry",
            Rule::TooManyLogEntries => "too-many-log-entries",
            Rule::UnknownLog => "unknown-log",
            Rule::LogKind => "log-kind",
            Rule::Set => "set",
            Rule::InclusionProof => "inclusion-proof",
            Rule::Checkpoint => "checkpoint",
            Rule::LogBinding => "log-binding",
            Rule::Identity => "identity",
            Rule::Issuer => "issuer",
            Rule::Signature => "signature",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a keyless signature does not verify: the rule and what, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", rule.name())]
pub struct VerifyError {
    /// The rule that failed.
    pub rule: Rule,
    /// What failed, in words (untrusted text sanitized).
    pub message: String,
}

fn fail(rule: Rule, message: impl Into<String>) -> VerifyError {
    VerifyError {
        rule,
        message: message.into(),
    }
}

fn cert_rule(rule: CertRule) -> Rule {
    match rule {
        CertRule::Malformed => Rule::Material,
        CertRule::BareKey => Rule::BareKey,
        CertRule::Issuer => Rule::Issuer,
        CertRule::UnknownCa => Rule::UnknownCa,
        CertRule::Chain => Rule::Chain,
        CertRule::Expired => Rule::Expired,
        CertRule::KeyUsage => Rule::KeyUsage,
    }
}

fn tlog_rule(rule: TlogRule) -> Rule {
    match rule {
        TlogRule::UnknownLog => Rule::UnknownLog,
        TlogRule::Kind => Rule::LogKind,
        TlogRule::NoPromise | TlogRule::Set => Rule::Set,
        TlogRule::NoProof | TlogRule::InclusionProof => Rule::InclusionProof,
        TlogRule::Checkpoint => Rule::Checkpoint,
        TlogRule::Binding => Rule::LogBinding,
    }
}

impl Verifier {
    /// A verifier trusting `root` and requiring signers that satisfy `policy`.
    pub fn new(root: TrustedRoot, policy: IdentityPolicy) -> Self {
        Verifier { root, policy }
    }

    /// The trusted root.
    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    /// The identity policy.
    pub fn policy(&self) -> &IdentityPolicy {
        &self.policy
    }

    /// Verifies `envelope` with its bundle's keyless `material` (see the module documentation
    /// for the order of the checks).
    pub fn verify(
        &self,
        envelope: &cnb_dsse::Envelope,
        material: &KeylessMaterial,
    ) -> Result<Verified, VerifyError> {
        if envelope.signatures.len() != 1 {
            return Err(fail(
                Rule::Material,
                format!(
                    "the envelope has {} signatures; a keyless bundle's envelope has exactly one",
                    envelope.signatures.len()
                ),
            ));
        }
        let entry =
            match material.tlog_entries.as_slice() {
                [] => return Err(fail(
                    Rule::NoLogEntry,
                    "the bundle has no transparency-log entry, so nothing shows when it was signed",
                )),
                [entry] => entry,
                entries => {
                    return Err(fail(
                        Rule::TooManyLogEntries,
                        format!(
                            "the bundle has {} transparency-log entries; exactly one is accepted",
                            entries.len()
                        ),
                    ))
                }
            };
        let leaf = Leaf::parse(&material.certificate).map_err(|e| {
            fail(
                cert_rule(e.rule),
                match e.rule {
                    CertRule::BareKey | CertRule::Malformed => {
                        format!("the bundle's certificate {}", e.message)
                    }
                    _ => e.message,
                },
            )
        })?;

        let witnessed = crate::tlog::verify_entry(entry, &self.root.tlogs, envelope, leaf.der())
            .map_err(|e| {
                let mut message = format!("transparency-log entry: {}", e.message);
                if e.rule == TlogRule::UnknownLog && !self.root.skipped.is_empty() {
                    message.push_str(&format!(
                        " (the trusted root's logs left out: {})",
                        self.root.skipped.join("; ")
                    ));
                }
                fail(tlog_rule(e.rule), message)
            })?;
        let t = witnessed.integrated_time;

        let chain = verify_chain(
            &leaf,
            &material.chain,
            &self.root.certificate_authorities,
            t,
        )
        .map_err(|e| fail(cert_rule(e.rule), e.message))?;

        crate::sct::verify_embedded_sct(
            leaf.certificate(),
            &chain.issuer_spki_der,
            &self.root.ctlogs,
        )
        .map_err(|e| fail(Rule::Sct, e.message))?;

        let issuer = leaf.issuer.clone().ok_or_else(|| {
            fail(
                Rule::Issuer,
                format!(
                    "the certificate names no OIDC issuer (no extension {} or {}); expected {}",
                    crate::cert::OID_ISSUER_V2,
                    crate::cert::OID_ISSUER_V1,
                    self.policy.issuer
                ),
            )
        })?;
        let identity = self.policy.check(&leaf.sans, &issuer).map_err(|e| {
            fail(
                match e.rule {
                    PolicyRule::Identity => Rule::Identity,
                    PolicyRule::Issuer => Rule::Issuer,
                },
                e.message,
            )
        })?;

        envelope.verify(&leaf.key).map_err(|e| {
            fail(
                Rule::Signature,
                format!("the envelope's signature does not verify with the certificate's key: {e}"),
            )
        })?;

        Ok(Verified {
            identity,
            issuer,
            integrated_time: t,
            log_index: witnessed.log_index,
            log: witnessed.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::{root, BUNDLE, INTEGRATED};
    use crate::policy::Matcher;

    const IDENTITY: &str = "cody@soyland.com";
    const ISSUER: &str = "https://github.com/login/oauth";

    fn envelope() -> cnb_dsse::Envelope {
        let bundle: serde_json::Value = serde_json::from_slice(BUNDLE).unwrap();
        cnb_dsse::Envelope::from_json(bundle["dsseEnvelope"].to_string().as_bytes()).unwrap()
    }

    fn material() -> KeylessMaterial {
        KeylessMaterial::from_bundle_json(BUNDLE).unwrap().unwrap()
    }

    fn verifier(identity: &str, issuer: &str) -> Verifier {
        Verifier::new(
            root(),
            IdentityPolicy::new(Matcher::exact(identity), Matcher::exact(issuer)),
        )
    }

    /// The whole verification of a real public-good bundle (needs `tlog::verify_entry`).
    #[test]
    fn the_real_bundle_verifies() {
        let verified = verifier(IDENTITY, ISSUER)
            .verify(&envelope(), &material())
            .unwrap();
        assert_eq!(
            verified,
            Verified {
                identity: IDENTITY.into(),
                issuer: ISSUER.into(),
                integrated_time: INTEGRATED,
                log_index: 175_508_996,
                log: "https://rekor.sigstore.dev".into(),
            }
        );
    }

    /// Policy failures on the real bundle come after the log and chain checks (needs
    /// `tlog::verify_entry`).
    #[test]
    fn the_real_bundle_fails_for_another_identity_or_issuer() {
        let e = verifier("alice@example.com", ISSUER)
            .verify(&envelope(), &material())
            .unwrap_err();
        assert_eq!(e.rule, Rule::Identity, "{e}");
        let e = verifier(IDENTITY, "https://accounts.google.com")
            .verify(&envelope(), &material())
            .unwrap_err();
        assert_eq!(e.rule, Rule::Issuer, "{e}");
    }

    #[test]
    fn a_bare_public_key_gives_bare_key() {
        let mut material = material();
        material.certificate = cnb_dsse::SigningKey::generate()
            .unwrap()
            .verifying_key()
            .to_spki_der();
        let e = verifier(IDENTITY, ISSUER)
            .verify(&envelope(), &material)
            .unwrap_err();
        assert_eq!(e.rule, Rule::BareKey);
        assert!(
            e.to_string().starts_with(
                "bare-key: the bundle's certificate holds a public key, not a certificate"
            ),
            "{e}"
        );
    }

    #[test]
    fn exactly_one_log_entry_and_one_signature_are_required() {
        let v = verifier(IDENTITY, ISSUER);
        let mut none = material();
        none.tlog_entries.clear();
        assert_eq!(
            v.verify(&envelope(), &none).unwrap_err().rule,
            Rule::NoLogEntry
        );
        let mut two = material();
        two.tlog_entries.push(two.tlog_entries[0].clone());
        let e = v.verify(&envelope(), &two).unwrap_err();
        assert_eq!(e.rule, Rule::TooManyLogEntries);
        assert_eq!(
            e.to_string(),
            "too-many-log-entries: the bundle has 2 transparency-log entries; exactly one is accepted"
        );
        let mut doubled = envelope();
        doubled.signatures.push(doubled.signatures[0].clone());
        assert_eq!(
            v.verify(&doubled, &material()).unwrap_err().rule,
            Rule::Material
        );
    }

    #[test]
    fn garbage_in_the_certificate_gives_material() {
        let mut material = material();
        material.certificate = b"not DER".to_vec();
        let e = verifier(IDENTITY, ISSUER)
            .verify(&envelope(), &material)
            .unwrap_err();
        assert_eq!(e.rule, Rule::Material);
        assert!(
            e.message
                .starts_with("the bundle's certificate is not a DER X.509 certificate"),
            "{e}"
        );
    }

    #[test]
    fn rule_names_are_kebab_case_and_distinct() {
        let rules = [
            Rule::Material,
            Rule::BareKey,
            Rule::Chain,
            Rule::UnknownCa,
            Rule::Expired,
            Rule::KeyUsage,
            Rule::Sct,
            Rule::NoLogEntry,
            Rule::TooManyLogEntries,
            Rule::UnknownLog,
            Rule::LogKind,
            Rule::Set,
            Rule::InclusionProof,
            Rule::Checkpoint,
            Rule::LogBinding,
            Rule::Identity,
            Rule::Issuer,
            Rule::Signature,
        ];
        let names: std::collections::HashSet<&str> = rules.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), rules.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        assert_eq!(Rule::UnknownCa.name(), "unknown-ca");
        assert_eq!(Rule::TooManyLogEntries.to_string(), "too-many-log-entries");
    }

    #[test]
    fn the_leaf_key_verifies_the_real_envelope() {
        // The last step of `verify`, proven without the log: the certificate's key signed it.
        let leaf = Leaf::parse(&material().certificate).unwrap();
        envelope().verify(&leaf.key).unwrap();
        let mut forged = envelope();
        forged.payload.push(b' ');
        assert!(forged.verify(&leaf.key).is_err());
    }
}
