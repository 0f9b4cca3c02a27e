//! Embedded signed certificate timestamps (RFC 6962 §3.2–3.3): the proof that a CT log saw the
//! Fulcio certificate before it was issued.
//!
//! The SCT signs the *precertificate*: the leaf's TBSCertificate without the SCT list extension
//! (`1.3.6.1.4.1.11129.2.4.2`, other extensions in order), bound to the issuing CA's key by
//! `issuer_key_hash` = SHA-256 of that CA certificate's SubjectPublicKeyInfo DER. The signature is
//! ECDSA P-256 over SHA-256, by the CT log of the trusted root whose log ID (SHA-256 of its key's
//! SPKI DER) the SCT names. At least one SCT must verify.

use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode as _, Encode as _};
use ecdsa::signature::Verifier as _;
use sha2::Digest as _;
use x509_cert::Certificate;

use crate::trust::{format_unix, CtLog};

/// The SCT list extension.
pub const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// The most SCTs looked at in one list.
const MAX_SCTS: usize = 16;

/// Why the certificate's SCTs do not show that a trusted CT log saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SctError {
    /// What, in words.
    pub message: String,
}

fn err(message: impl Into<String>) -> SctError {
    SctError {
        message: message.into(),
    }
}

/// An SCT that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSct {
    /// The base URL of the CT log that signed it.
    pub log: String,
    /// The SCT's timestamp (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
}

/// One SCT as read from the list (RFC 6962 §3.2 `SignedCertificateTimestamp`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sct<'a> {
    version: u8,
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_algorithm: u8,
    signature_algorithm: u8,
    signature: &'a [u8],
}

/// A bounded reader over TLS-encoded bytes: every read checks the length left.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SctError> {
        if n > self.0.len() {
            return Err(err(format!(
                "SCT list: {what} needs {n} bytes, {} left",
                self.0.len()
            )));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn uint(&mut self, n: usize, what: &str) -> Result<u64, SctError> {
        Ok(self
            .take(n, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn vector(&mut self, len_bytes: usize, what: &str) -> Result<&'a [u8], SctError> {
        let len = usize::try_from(self.uint(len_bytes, what)?)
            .map_err(|_| err(format!("SCT list: {what} too long")))?;
        self.take(len, what)
    }
}

/// Parses `SignedCertificateTimestampList`: `u16 len ‖ (u16 len ‖ SCT)*`.
fn parse_list(list: &[u8]) -> Result<Vec<Sct<'_>>, SctError> {
    let mut outer = Bytes(list);
    let mut items = Bytes(outer.vector(2, "the list")?);
    if !outer.0.is_empty() {
        return Err(err("SCT list: bytes after the list"));
    }
    let mut scts = Vec::new();
    while !items.0.is_empty() {
        if scts.len() == MAX_SCTS {
            return Err(err(format!("SCT list holds more than {MAX_SCTS} SCTs")));
        }
        let mut sct = Bytes(items.vector(2, "an SCT")?);
        let parsed = Sct {
            version: sct.uint(1, "the version")? as u8,
            log_id: sct.take(32, "the log ID")?,
            timestamp_ms: sct.uint(8, "the timestamp")?,
            extensions: sct.vector(2, "the extensions")?,
            hash_algorithm: sct.uint(1, "the hash algorithm")? as u8,
            signature_algorithm: sct.uint(1, "the signature algorithm")? as u8,
            signature: sct.vector(2, "the signature")?,
        };
        if !sct.0.is_empty() {
            return Err(err("SCT list: bytes after an SCT"));
        }
        scts.push(parsed);
    }
    if scts.is_empty() {
        return Err(err("the certificate's SCT list is empty"));
    }
    Ok(scts)
}

/// RFC 6962 §3.2 `digitally-signed` data of a precertificate entry.
fn signed_data(sct: &Sct<'_>, issuer_key_hash: &[u8], tbs: &[u8]) -> Result<Vec<u8>, SctError> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|len| *len < 1 << 24)
        .ok_or_else(|| err("the certificate is too large for an SCT"))?;
    let ext_len =
        u16::try_from(sct.extensions.len()).map_err(|_| err("SCT extensions too long"))?;
    let mut data = Vec::with_capacity(tbs.len() + 64 + sct.extensions.len());
    data.push(0); // sct_version v1
    data.push(0); // signature_type certificate_timestamp
    data.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    data.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    data.extend_from_slice(issuer_key_hash);
    data.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    data.extend_from_slice(tbs);
    data.extend_from_slice(&ext_len.to_be_bytes());
    data.extend_from_slice(sct.extensions);
    Ok(data)
}

/// The leaf's SCT list bytes and its TBSCertificate re-encoded without the SCT extension.
fn precert_parts(leaf: &Certificate) -> Result<(Vec<u8>, Vec<u8>), SctError> {
    let extensions = leaf
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default();
    let sct_ext = extensions
        .iter()
        .find(|e| e.extn_id == OID_SCT_LIST)
        .ok_or_else(|| {
            err(format!(
                "the certificate has no signed certificate timestamp (extension {OID_SCT_LIST})"
            ))
        })?;
    let list = OctetString::from_der(sct_ext.extn_value.as_bytes())
        .map_err(|e| err(format!("the SCT extension is not an OCTET STRING: {e}")))?
        .into_bytes();
    let mut tbs = leaf.tbs_certificate.clone();
    let rest: Vec<_> = extensions
        .iter()
        .filter(|e| e.extn_id != OID_SCT_LIST)
        .cloned()
        .collect();
    tbs.extensions = if rest.is_empty() { None } else { Some(rest) };
    let tbs = tbs
        .to_der()
        .map_err(|e| err(format!("cannot re-encode the certificate: {e}")))?;
    Ok((list, tbs))
}

/// Verifies the SCTs embedded in `leaf`, issued by the CA certificate whose SubjectPublicKeyInfo
/// DER is `issuer_spki_der`, against the CT logs `ctlogs`: at least one SCT must be signed by a
/// CT log of the list whose key was valid at the SCT's time.
pub fn verify_embedded_sct(
    leaf: &Certificate,
    issuer_spki_der: &[u8],
    ctlogs: &[CtLog],
) -> Result<VerifiedSct, SctError> {
    let (list, tbs) = precert_parts(leaf)?;
    let issuer_key_hash = sha2::Sha256::digest(issuer_spki_der);
    verify_list(&list, &issuer_key_hash, &tbs, ctlogs)
}

fn verify_list(
    list: &[u8],
    issuer_key_hash: &[u8],
    tbs: &[u8],
    ctlogs: &[CtLog],
) -> Result<VerifiedSct, SctError> {
    let scts = parse_list(list)?;
    let mut reasons = Vec::new();
    for sct in &scts {
        match verify_one(sct, issuer_key_hash, tbs, ctlogs) {
            Ok(verified) => return Ok(verified),
            Err(why) => reasons.push(why),
        }
    }
    Err(err(format!(
        "no signed certificate timestamp of the certificate verifies: {}",
        reasons.join("; ")
    )))
}

fn verify_one(
    sct: &Sct<'_>,
    issuer_key_hash: &[u8],
    tbs: &[u8],
    ctlogs: &[CtLog],
) -> Result<VerifiedSct, String> {
    let id = hex::encode(sct.log_id);
    if sct.version != 0 {
        return Err(format!(
            "SCT from log {id} has version {} (only v1)",
            sct.version
        ));
    }
    if (sct.hash_algorithm, sct.signature_algorithm) != (4, 3) {
        return Err(format!(
            "SCT from log {id} is signed with algorithm ({}, {}) (only SHA-256 with ECDSA)",
            sct.hash_algorithm, sct.signature_algorithm
        ));
    }
    let log = ctlogs
        .iter()
        .find(|log| log.log_id == sct.log_id)
        .ok_or_else(|| format!("SCT from log {id}, which is not a CT log of the trusted root"))?;
    let seconds = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
    if !log.valid_at(seconds) {
        return Err(format!(
            "SCT from CT log {} at {}, outside the log key's validity",
            log.base_url,
            format_unix(seconds)
        ));
    }
    let signature = p256::ecdsa::Signature::from_der(sct.signature).map_err(|_| {
        format!(
            "SCT from CT log {}: not a DER ECDSA P-256 signature",
            log.base_url
        )
    })?;
    let data = signed_data(sct, issuer_key_hash, tbs).map_err(|e| e.message)?;
    log.key.verify(&data, &signature).map_err(|_| {
        format!(
            "SCT from CT log {}: the signature does not verify",
            log.base_url
        )
    })?;
    Ok(VerifiedSct {
        log: log.base_url.clone(),
        timestamp_ms: sct.timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::{leaf_der, root, INTEGRATED};
    use crate::cert::{verify_chain, Leaf};

    fn issuer_spki() -> Vec<u8> {
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        verify_chain(&leaf, &[], &root().certificate_authorities, INTEGRATED)
            .unwrap()
            .issuer_spki_der
    }

    fn check(der: &[u8]) -> Result<VerifiedSct, SctError> {
        let cert = Certificate::from_der(der).unwrap();
        verify_embedded_sct(&cert, &issuer_spki(), &root().ctlogs)
    }

    /// Where the SCT's log ID (ctfe.sigstore.dev/2022) starts in the leaf's DER.
    fn log_id_at(der: &[u8]) -> usize {
        let id = hex::decode("dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e")
            .unwrap();
        der.windows(32).position(|w| w == id).unwrap()
    }

    #[test]
    fn the_real_leaf_sct_verifies() {
        let verified = check(&leaf_der()).unwrap();
        assert_eq!(verified.log, "https://ctfe.sigstore.dev/2022");
        // Feb 28 19:18:11.145 2025 GMT (openssl x509 -text).
        assert_eq!(verified.timestamp_ms, 1_740_770_291_145);
    }

    #[test]
    fn one_changed_byte_of_the_sct_fails() {
        let mut der = leaf_der();
        let at = log_id_at(&der) + 32 + 7; // the timestamp's last byte
        der[at] ^= 1;
        let e = check(&der).unwrap_err();
        assert!(e.message.contains("the signature does not verify"), "{e}");
        let mut der = leaf_der();
        let at = log_id_at(&der);
        der[at] ^= 1; // another log ID
        let e = check(&der).unwrap_err();
        assert!(
            e.message.contains("not a CT log of the trusted root"),
            "{e}"
        );
    }

    #[test]
    fn one_changed_byte_of_the_tbs_fails() {
        let mut der = leaf_der();
        // A byte of the certified public key point (inside the TBSCertificate).
        let leaf = Leaf::parse(&der).unwrap();
        let point = leaf.key.to_spki_der();
        let at = der.windows(point.len()).position(|w| w == point).unwrap() + point.len() - 1;
        der[at] ^= 1;
        let e = check(&der).unwrap_err();
        assert!(e.message.contains("the signature does not verify"), "{e}");
    }

    #[test]
    fn another_issuer_key_fails() {
        let cert = Certificate::from_der(&leaf_der()).unwrap();
        let other = cnb_dsse::SigningKey::generate().unwrap().verifying_key();
        let e = verify_embedded_sct(&cert, &other.to_spki_der(), &root().ctlogs).unwrap_err();
        assert!(e.message.contains("does not verify"), "{e}");
    }

    #[test]
    fn an_expired_ct_log_key_fails() {
        let mut root = root();
        for log in &mut root.ctlogs {
            log.valid_until = Some(INTEGRATED - 10);
        }
        let cert = Certificate::from_der(&leaf_der()).unwrap();
        let e = verify_embedded_sct(&cert, &issuer_spki(), &root.ctlogs).unwrap_err();
        assert!(e.message.contains("outside the log key's validity"), "{e}");
    }

    #[test]
    fn hostile_lists_are_refused_without_panics() {
        let hash = [0u8; 32];
        for list in [
            &b""[..],
            b"\x00",
            b"\x00\x00",
            b"\x00\x05\x00\x10abc",
            b"\xff\xff",
            b"\x00\x02\x00\x00",
            b"\x00\x03\x00\x01\x00",
        ] {
            assert!(verify_list(list, &hash, b"tbs", &[]).is_err(), "{list:?}");
        }
        // A well-formed SCT from an unknown log.
        let mut sct = vec![0u8];
        sct.extend_from_slice(&[7; 32]);
        sct.extend_from_slice(&[0; 8]);
        sct.extend_from_slice(&[0, 0, 4, 3, 0, 2, 0x30, 0]);
        let mut list = (sct.len() as u16 + 2).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let e = verify_list(&list, &hash, b"tbs", &[]).unwrap_err();
        assert!(
            e.message.contains("not a CT log of the trusted root"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_without_scts_is_refused() {
        // The intermediate CA certificate has no SCT list.
        let ca = &root().certificate_authorities[1].chain[0];
        let cert = Certificate::from_der(ca).unwrap();
        let e = verify_embedded_sct(&cert, &issuer_spki(), &root().ctlogs).unwrap_err();
        assert!(e.message.contains("no signed certificate timestamp"), "{e}");
    }
}
