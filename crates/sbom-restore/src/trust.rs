//! What a verifier trusts: public keys (cosign key pairs, key rotation) and, for keyless
//! signatures, a Sigstore trusted root with an identity policy. One image may carry both kinds;
//! each attestation is verified by what its own verification material calls for.

use std::sync::Arc;

use cnb_dsse::VerifyingKey;
use cnb_keyless::bundle::KeylessMaterial;
use cnb_keyless::verify::Verifier;
use cnb_referrers::format::StoredEnvelope;

use crate::{Failure, Rule};

/// Whether a stored envelope carries keyless verification material (or material that does not
/// parse, which keyless verification reports).
pub(crate) fn is_keyless(stored: &StoredEnvelope) -> bool {
    stored
        .verification_material
        .as_ref()
        .is_some_and(|m| !matches!(KeylessMaterial::from_verification_material(m), Ok(None)))
}

/// The message of every [`Rule::Signature`] failure.
pub const NOT_TRUSTED: &str = "not signed by a trusted key";

/// The keys and the keyless policy a verification trusts.
#[derive(Clone, Default)]
pub struct Trust {
    /// Public keys: an envelope verified by any of them is trusted.
    pub keys: Vec<VerifyingKey>,
    /// The keyless verifier (trusted root and identity policy); `None` trusts no keyless
    /// signature: keyless attestations then fail with [`Rule::Signature`], saying what to give.
    pub keyless: Option<Arc<Verifier>>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("keys", &self.keys.len())
            .field("keyless", &self.keyless.is_some())
            .finish()
    }
}

impl From<Vec<VerifyingKey>> for Trust {
    fn from(keys: Vec<VerifyingKey>) -> Self {
        Trust {
            keys,
            keyless: None,
        }
    }
}

impl Trust {
    /// Trusts `keys` and, when given, the keyless verifier.
    pub fn new(keys: &[VerifyingKey], keyless: Option<&Arc<Verifier>>) -> Self {
        Trust {
            keys: keys.to_vec(),
            keyless: keyless.cloned(),
        }
    }

    /// Trusts `keys` only.
    pub fn keys(keys: &[VerifyingKey]) -> Self {
        Trust::new(keys, None)
    }

    /// Whether nothing at all is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.keyless.is_none()
    }

    /// Verifies the signature of a stored envelope: keyless when its bundle carries a certificate,
    /// else with the keys. `Ok(Some(signer))` names a verified keyless signer.
    pub fn verify(&self, stored: &StoredEnvelope) -> Result<Option<String>, Failure> {
        let material = match &stored.verification_material {
            Some(material) => KeylessMaterial::from_verification_material(material)
                .map_err(|e| Failure::new(Rule::Keyless, format!("keyless material: {}", e.0)))?,
            None => None,
        };
        if let Some(material) = material {
            let Some(verifier) = &self.keyless else {
                return Err(Failure::new(
                    Rule::Signature,
                    format!(
                        "{NOT_TRUSTED} (signed keyless, with a Sigstore certificate; give \
                         --certificate-identity (or --certificate-identity-regexp) and \
                         --certificate-oidc-issuer to verify keyless attestations)"
                    ),
                ));
            };
            return match verifier.verify(&stored.envelope, &material) {
                Ok(verified) => Ok(Some(format!(
                    "keyless: {} (issuer {}), logged at index {} of {} at {}",
                    cnb_untrusted::text::sanitize(&verified.identity, 256),
                    cnb_untrusted::text::sanitize(&verified.issuer, 256),
                    verified.log_index,
                    verified.log,
                    cnb_keyless::trust::format_unix(verified.integrated_time)
                ))),
                Err(e) => Err(Failure::new(
                    Rule::Keyless,
                    format!("keyless {}: {}", e.rule.name(), e.message),
                )),
            };
        }
        self.verify_with_keys(|key| stored.envelope.verify(key))
    }

    /// Like [`verify`](Self::verify), for an envelope read through a temporary file
    /// ([`crate::spool`]): its payload is not held, and `pae_sha256` is the SHA-256 of its DSSE
    /// PAE. Keyless bundles are refused: the signer never stores one this large, and their
    /// verification needs the whole envelope.
    pub fn verify_prehashed(
        &self,
        stored: &StoredEnvelope,
        pae_sha256: &[u8; 32],
        blob_size: u64,
    ) -> Result<Option<String>, Failure> {
        let keyless = match &stored.verification_material {
            Some(material) => KeylessMaterial::from_verification_material(material)
                .map_err(|e| Failure::new(Rule::Keyless, format!("keyless material: {}", e.0)))?
                .is_some(),
            None => false,
        };
        if keyless {
            return Err(Failure::new(
                Rule::Keyless,
                format!(
                    "keyless bundle of {blob_size} bytes: keyless attestations are verified only \
                     up to {} bytes",
                    cnb_referrers::format::MAX_ATTESTATION_BLOB
                ),
            ));
        }
        self.verify_with_keys(|key| stored.envelope.verify_prehashed(key, pae_sha256))
    }

    fn verify_with_keys(
        &self,
        verify: impl Fn(&VerifyingKey) -> Result<(), cnb_dsse::Error>,
    ) -> Result<Option<String>, Failure> {
        let mut reasons = Vec::new();
        for key in &self.keys {
            match verify(key) {
                Ok(_) => return Ok(None),
                Err(e) => reasons.push(format!("signature does not verify: {e}")),
            }
        }
        if reasons.is_empty() {
            reasons.push("no key given".into());
        }
        Err(Failure::new(
            Rule::Signature,
            format!("{NOT_TRUSTED} ({})", reasons.join("; ")),
        ))
    }
}
