//! The keyless half of a Sigstore bundle: its `verificationMaterial` with a Fulcio certificate and
//! a Rekor transparency-log entry (`protobuf-specs` `sigstore_bundle.proto`, `sigstore_rekor.proto`,
//! written as proto3 JSON: 64-bit integers as decimal strings, bytes as standard base64).
//!
//! Reading is liberal on shape (numbers or strings for integers, either base64 alphabet, bundle
//! v0.1–v0.3 spellings, a leaf certificate or a chain) and strict on size: at most
//! [`MAX_TLOG_ENTRIES`] entries and [`MAX_PROOF_HASHES`] proof hashes are accepted, so a hostile
//! bundle cannot make verification do unbounded work.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// Media type of a Sigstore bundle v0.3 (what this crate writes).
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The most transparency-log entries read from one bundle (sigstore-python and sigstore-rs accept
/// exactly one; a bundle with more is refused before any of them is looked at).
pub const MAX_TLOG_ENTRIES: usize = 8;

/// The most hashes in one inclusion proof (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_HASHES: usize = 64;

/// A Rekor inclusion proof with its signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the entry in the log's active tree (not the global index).
    pub log_index: u64,
    /// The tree's root hash.
    pub root_hash: Vec<u8>,
    /// The tree's size.
    pub tree_size: u64,
    /// The audit path, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed checkpoint (signed note) text.
    pub checkpoint: String,
}

/// One transparency-log entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// The global log index (what the SET signs).
    pub log_index: u64,
    /// The log's ID: SHA-256 of its public key's SPKI DER.
    pub log_id: Vec<u8>,
    /// The entry's kind (`dsse`).
    pub kind: String,
    /// The entry's version (`0.0.1`).
    pub version: String,
    /// When the log integrated the entry (Unix seconds).
    pub integrated_time: i64,
    /// The signed entry timestamp (SET), DER ECDSA, if any.
    pub signed_entry_timestamp: Option<Vec<u8>>,
    /// The inclusion proof, if any.
    pub inclusion_proof: Option<InclusionProof>,
    /// The canonicalized entry body, as the log stores it.
    pub canonicalized_body: Vec<u8>,
}

/// Keyless verification material: a certificate and the log entries that witnessed the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessMaterial {
    /// The leaf certificate (DER).
    pub certificate: Vec<u8>,
    /// Further certificates a pre-v0.3 bundle carried after the leaf (DER, leaf's issuer first).
    pub chain: Vec<Vec<u8>>,
    /// The transparency-log entries (at most [`MAX_TLOG_ENTRIES`]).
    pub tlog_entries: Vec<TlogEntry>,
}

/// Why a bundle's verification material cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bundle verification material: {0}")]
pub struct MaterialError(pub String);

fn bad(message: impl Into<String>) -> MaterialError {
    MaterialError(message.into())
}

/// Standard base64, or the URL-safe alphabet that proto3 JSON also allows.
fn bytes(value: &str, what: &str) -> Result<Vec<u8>, MaterialError> {
    STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim_end_matches('='))
        })
        .map_err(|_| bad(format!("{what} is not base64")))
}

/// A proto3 JSON int64: a decimal string or a JSON number.
fn int(value: Option<&Value>, what: &str) -> Result<i64, MaterialError> {
    match value {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| bad(format!("{what} `{s}` is not an integer"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(format!("{what} {n} is not an integer"))),
        None => Ok(0),
        Some(_) => Err(bad(format!("{what} is neither a string nor a number"))),
    }
}

fn uint(value: Option<&Value>, what: &str) -> Result<u64, MaterialError> {
    u64::try_from(int(value, what)?).map_err(|_| bad(format!("{what} is negative")))
}

fn text<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a str, MaterialError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{what}: no `{key}` string")))
}

impl KeylessMaterial {
    /// Reads the keyless material of a bundle's `verificationMaterial` object. `Ok(None)` when it
    /// holds no certificate (a public-key bundle: key-based verification applies).
    pub fn from_verification_material(material: &Value) -> Result<Option<Self>, MaterialError> {
        let (certificate, chain) = if let Some(cert) = material.get("certificate") {
            (
                bytes(text(cert, "rawBytes", "certificate")?, "certificate")?,
                Vec::new(),
            )
        } else if let Some(chain) = material.get("x509CertificateChain") {
            let certs = chain
                .get("certificates")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("x509CertificateChain has no certificates"))?;
            if certs.is_empty() || certs.len() > 8 {
                return Err(bad(format!(
                    "x509CertificateChain holds {} certificates (1 to 8 accepted)",
                    certs.len()
                )));
            }
            let mut ders = certs
                .iter()
                .map(|c| {
                    bytes(
                        text(c, "rawBytes", "chain certificate")?,
                        "chain certificate",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let leaf = ders.remove(0);
            (leaf, ders)
        } else {
            return Ok(None);
        };
        let entries = match material.get("tlogEntries") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => {
                if entries.len() > MAX_TLOG_ENTRIES {
                    return Err(bad(format!(
                        "{} transparency-log entries (at most {MAX_TLOG_ENTRIES} are read)",
                        entries.len()
                    )));
                }
                entries
                    .iter()
                    .map(TlogEntry::from_json)
                    .collect::<Result<_, _>>()?
            }
            Some(_) => return Err(bad("tlogEntries is not a list")),
        };
        Ok(Some(KeylessMaterial {
            certificate,
            chain,
            tlog_entries: entries,
        }))
    }

    /// Reads the keyless material of a whole bundle (`Ok(None)`: not a keyless bundle).
    pub fn from_bundle_json(bundle: &[u8]) -> Result<Option<Self>, MaterialError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Bundle {
            #[serde(default)]
            verification_material: Option<Value>,
        }
        let bundle: Bundle =
            serde_json::from_slice(bundle).map_err(|e| bad(format!("not a bundle: {e}")))?;
        match bundle.verification_material {
            Some(material) => Self::from_verification_material(&material),
            None => Ok(None),
        }
    }

    /// The `verificationMaterial` object of a bundle v0.3, as protobuf JSON writes it
    /// (sigstore-go, sigstore-python): the leaf certificate only, then the log entries.
    pub fn to_verification_material_json(&self) -> String {
        let mut out = String::from("{\"certificate\":{\"rawBytes\":\"");
        out.push_str(&STANDARD.encode(&self.certificate));
        out.push_str("\"},\"tlogEntries\":[");
        for (i, entry) in self.tlog_entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&entry.to_json());
        }
        out.push_str("]}");
        out
    }
}

impl TlogEntry {
    fn from_json(entry: &Value) -> Result<Self, MaterialError> {
        let kind_version = entry
            .get("kindVersion")
            .ok_or_else(|| bad("tlog entry has no kindVersion"))?;
        let proof = match entry.get("inclusionProof") {
            None | Some(Value::Null) => None,
            Some(proof) => {
                let hashes = match proof.get("hashes") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(hashes)) => {
                        if hashes.len() > MAX_PROOF_HASHES {
                            return Err(bad(format!(
                                "inclusion proof holds {} hashes (at most {MAX_PROOF_HASHES})",
                                hashes.len()
                            )));
                        }
                        hashes
                            .iter()
                            .map(|h| {
                                h.as_str()
                                    .ok_or_else(|| bad("inclusion proof hash is not a string"))
                                    .and_then(|h| bytes(h, "inclusion proof hash"))
                            })
                            .collect::<Result<_, _>>()?
                    }
                    Some(_) => return Err(bad("inclusion proof hashes is not a list")),
                };
                let checkpoint = proof
                    .get("checkpoint")
                    .and_then(|c| c.get("envelope"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Some(InclusionProof {
                    log_index: uint(proof.get("logIndex"), "inclusion proof logIndex")?,
                    root_hash: bytes(text(proof, "rootHash", "inclusion proof")?, "rootHash")?,
                    tree_size: uint(proof.get("treeSize"), "inclusion proof treeSize")?,
                    hashes,
                    checkpoint,
                })
            }
        };
        let set = match entry
            .get("inclusionPromise")
            .and_then(|p| p.get("signedEntryTimestamp"))
        {
            Some(Value::String(set)) => Some(bytes(set, "signedEntryTimestamp")?),
            _ => None,
        };
        Ok(TlogEntry {
            log_index: uint(entry.get("logIndex"), "logIndex")?,
            log_id: bytes(
                entry
                    .get("logId")
                    .and_then(|l| l.get("keyId"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("tlog entry has no logId.keyId"))?,
                "logId",
            )?,
            kind: text(kind_version, "kind", "kindVersion")?.to_string(),
            version: text(kind_version, "version", "kindVersion")?.to_string(),
            integrated_time: int(entry.get("integratedTime"), "integratedTime")?,
            signed_entry_timestamp: set,
            inclusion_proof: proof,
            canonicalized_body: bytes(
                text(entry, "canonicalizedBody", "tlog entry")?,
                "canonicalizedBody",
            )?,
        })
    }

    /// The entry as protobuf JSON (`TransparencyLogEntry`).
    pub fn to_json(&self) -> String {
        let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = format!(
            "{{\"logIndex\":\"{}\",\"logId\":{{\"keyId\":\"{}\"}},\"kindVersion\":{{\"kind\":{},\"version\":{}}},\"integratedTime\":\"{}\"",
            self.log_index,
            STANDARD.encode(&self.log_id),
            string(&self.kind),
            string(&self.version),
            self.integrated_time
        );
        if let Some(set) = &self.signed_entry_timestamp {
            out.push_str(&format!(
                ",\"inclusionPromise\":{{\"signedEntryTimestamp\":\"{}\"}}",
                STANDARD.encode(set)
            ));
        }
        if let Some(proof) = &self.inclusion_proof {
            let hashes: Vec<String> = proof
                .hashes
                .iter()
                .map(|h| format!("\"{}\"", STANDARD.encode(h)))
                .collect();
            out.push_str(&format!(
                ",\"inclusionProof\":{{\"logIndex\":\"{}\",\"rootHash\":\"{}\",\"treeSize\":\"{}\",\"hashes\":[{}],\"checkpoint\":{{\"envelope\":{}}}}}",
                proof.log_index,
                STANDARD.encode(&proof.root_hash),
                proof.tree_size,
                hashes.join(","),
                string(&proof.checkpoint)
            ));
        }
        out.push_str(&format!(
            ",\"canonicalizedBody\":\"{}\"}}",
            STANDARD.encode(&self.canonicalized_body)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> TlogEntry {
        TlogEntry {
            log_index: 175508996,
            log_id: vec![1, 2, 3],
            kind: "dsse".into(),
            version: "0.0.1".into(),
            integrated_time: 1740770291,
            signed_entry_timestamp: Some(vec![4, 5]),
            inclusion_proof: Some(InclusionProof {
                log_index: 53604734,
                root_hash: vec![6; 32],
                tree_size: 53604735,
                hashes: vec![vec![7; 32], vec![8; 32]],
                checkpoint: "origin\n1\nroot\n\n— origin sig\n".into(),
            }),
            canonicalized_body: b"{\"kind\":\"dsse\"}".to_vec(),
        }
    }

    #[test]
    fn material_round_trips_through_its_json() {
        let material = KeylessMaterial {
            certificate: vec![0x30, 0x82, 1, 2],
            chain: Vec::new(),
            tlog_entries: vec![entry()],
        };
        let json: Value = serde_json::from_str(&material.to_verification_material_json()).unwrap();
        assert_eq!(json["tlogEntries"][0]["logIndex"], "175508996");
        let back = KeylessMaterial::from_verification_material(&json)
            .unwrap()
            .unwrap();
        assert_eq!(back, material);
    }

    #[test]
    fn integers_as_numbers_and_url_safe_base64_are_read() {
        let json = serde_json::json!({
            "certificate": {"rawBytes": "-_8"},
            "tlogEntries": [{"logIndex": 5, "logId": {"keyId": "AQ=="},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": 7,
                "canonicalizedBody": "e30="}]
        });
        let material = KeylessMaterial::from_verification_material(&json)
            .unwrap()
            .unwrap();
        assert_eq!(material.certificate, vec![0xfb, 0xff]);
        assert_eq!(material.tlog_entries[0].log_index, 5);
        assert_eq!(material.tlog_entries[0].integrated_time, 7);
    }

    #[test]
    fn a_public_key_bundle_has_no_keyless_material() {
        let json = serde_json::json!({"publicKey": {"hint": "abc"}});
        assert_eq!(
            KeylessMaterial::from_verification_material(&json).unwrap(),
            None
        );
    }

    #[test]
    fn thousands_of_tlog_entries_are_refused_before_any_is_read() {
        let entries: Vec<Value> = (0..5000).map(|_| serde_json::json!({})).collect();
        let json = serde_json::json!({"certificate": {"rawBytes": "AA=="}, "tlogEntries": entries});
        let error = KeylessMaterial::from_verification_material(&json).unwrap_err();
        assert!(error.0.contains("5000 transparency-log entries"), "{error}");
    }
}
