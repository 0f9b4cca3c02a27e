//! Rekor v1 transparency-log evidence: the signed entry timestamp (SET), the Merkle inclusion
//! proof (RFC 6962/9162), the signed checkpoint, and the binding of a `dsse` 0.0.1 entry to the
//! envelope and certificate it is offered for.

use crate::bundle::TlogEntry;

/// A transparency log's public key, from a trusted root.
#[derive(Debug, Clone)]
pub struct LogKey {
    /// The log's base URL (checkpoint signer names must be contained in it).
    pub base_url: String,
    /// The log's ID: SHA-256 of the key's SPKI DER.
    pub log_id: Vec<u8>,
    /// The key (ECDSA P-256, as Rekor v1 logs use).
    key: p256::ecdsa::VerifyingKey,
    /// Start of the key's validity (Unix seconds), if given.
    pub valid_from: Option<i64>,
    /// End of the key's validity (Unix seconds), if given.
    pub valid_until: Option<i64>,
}

/// Which rule a log entry broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlogRule {
    /// No trusted log has this entry's log ID, or the key was not valid at the integrated time.
    UnknownLog,
    /// The entry is not a `dsse` 0.0.1 entry, or its kindVersion disagrees with its body.
    Kind,
    /// The entry has no inclusion promise (SET), so its time cannot be trusted.
    NoPromise,
    /// The SET does not verify.
    Set,
    /// The entry has no inclusion proof.
    NoProof,
    /// The inclusion proof does not lead to its root hash.
    InclusionProof,
    /// The checkpoint is malformed, not signed by the log, or for another root or size.
    Checkpoint,
    /// The entry's body is for another envelope, signature or certificate.
    Binding,
}

/// Why a log entry does not witness an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TlogError {
    /// The rule broken.
    pub rule: TlogRule,
    /// What, in words (untrusted text sanitized).
    pub message: String,
}

/// What a verified log entry establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// When the log integrated the entry (Unix seconds): the time the certificate must be valid at.
    pub integrated_time: i64,
    /// The entry's global log index.
    pub log_index: u64,
    /// The base URL of the log that witnessed it.
    pub log: String,
}

impl LogKey {
    /// A log key from its SPKI DER (an ECDSA P-256 key), with its validity window.
    pub fn new(
        base_url: String,
        spki_der: &[u8],
        valid_from: Option<i64>,
        valid_until: Option<i64>,
    ) -> Result<Self, TlogError> {
        use p256::pkcs8::DecodePublicKey as _;
        use sha2::Digest as _;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der).map_err(|e| TlogError {
            rule: TlogRule::UnknownLog,
            message: format!("log key of {base_url} is not an ECDSA P-256 key: {e}"),
        })?;
        Ok(LogKey {
            base_url,
            log_id: sha2::Sha256::digest(spki_der).to_vec(),
            key,
            valid_from,
            valid_until,
        })
    }

    /// The key itself.
    pub fn key(&self) -> &p256::ecdsa::VerifyingKey {
        &self.key
    }
}

/// Verifies that `entry` witnesses `envelope` signed by the certificate `leaf_der`: the entry is
/// a `dsse` 0.0.1 entry of a trusted log (key valid at the integrated time), its SET and inclusion
/// proof verify, its checkpoint is signed by the log and names the proof's root and size, and its
/// body names this envelope's payload hash, signature and certificate.
pub fn verify_entry(
    entry: &TlogEntry,
    logs: &[LogKey],
    envelope: &cnb_dsse::Envelope,
    leaf_der: &[u8],
) -> Result<Witnessed, TlogError> {
    let _ = (entry, logs, envelope, leaf_der);
    Err(TlogError {
        rule: TlogRule::UnknownLog,
        message: "log entry verification is not written yet".into(),
    })
}
