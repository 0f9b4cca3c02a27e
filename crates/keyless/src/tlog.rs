//! Rekor v1 transparency-log evidence: the signed entry timestamp (SET), the Merkle inclusion
//! proof (RFC 6962/9162), the signed checkpoint, and the binding of a `dsse` 0.0.1 entry to the
//! envelope and certificate it is offered for.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cnb_untrusted::text::sanitize;
use p256::ecdsa::signature::Verifier as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::bundle::TlogEntry;

/// The largest canonicalized entry body read (it is already in memory; this bounds the parse).
pub const MAX_BODY: usize = 1 << 20;

/// The largest checkpoint (signed note) read.
pub const MAX_CHECKPOINT: usize = 64 << 10;

/// The most signature lines a checkpoint may carry.
pub const MAX_CHECKPOINT_SIGNATURES: usize = 32;

/// Untrusted text shown in a message is cut to this many characters.
const SHOWN: usize = 80;

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
        let key =
            p256::ecdsa::VerifyingKey::from_public_key_der(spki_der).map_err(|e| TlogError {
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
///
/// The checks run in this order, so that nothing untrusted is interpreted before it is
/// authenticated where possible: kind and version; the log and its key's validity; the SET (which
/// authenticates the body, the integrated time and the global index); the inclusion proof; the
/// checkpoint; the body's kind and its binding to the envelope and certificate.
pub fn verify_entry(
    entry: &TlogEntry,
    logs: &[LogKey],
    envelope: &cnb_dsse::Envelope,
    leaf_der: &[u8],
) -> Result<Witnessed, TlogError> {
    check_kind(entry)?;
    if entry.canonicalized_body.len() > MAX_BODY {
        return Err(fail(
            TlogRule::Kind,
            format!(
                "the log entry's body is {} bytes, more than the {MAX_BODY} read",
                entry.canonicalized_body.len()
            ),
        ));
    }
    let log = find_log(entry, logs)?;
    verify_set(entry, log)?;
    let proof = entry.inclusion_proof.as_ref().ok_or_else(|| {
        fail(
            TlogRule::NoProof,
            "the log entry has no inclusion proof".into(),
        )
    })?;
    let leaf = leaf_hash(&entry.canonicalized_body);
    verify_inclusion(
        proof.log_index,
        proof.tree_size,
        &leaf,
        &proof.hashes,
        &proof.root_hash,
    )
    .map_err(|e| {
        fail(
            TlogRule::InclusionProof,
            format!(
                "the inclusion proof of log entry {} does not verify: {e}",
                entry.log_index
            ),
        )
    })?;
    verify_checkpoint(&proof.checkpoint, log, &proof.root_hash, proof.tree_size)?;
    check_binding(entry, envelope, leaf_der)?;
    Ok(Witnessed {
        integrated_time: entry.integrated_time,
        log_index: entry.log_index,
        log: log.base_url.clone(),
    })
}

fn fail(rule: TlogRule, message: String) -> TlogError {
    TlogError { rule, message }
}

/// The entry must declare `dsse` 0.0.1 (its body is checked to agree once the SET authenticated it).
fn check_kind(entry: &TlogEntry) -> Result<(), TlogError> {
    if entry.kind == "dsse" && entry.version == "0.0.1" {
        return Ok(());
    }
    let what = format!(
        "a `{}` {} log entry",
        sanitize(&entry.kind, SHOWN),
        sanitize(&entry.version, SHOWN)
    );
    let message = if entry.kind == "hashedrekord" && entry.version == "0.0.2" {
        format!("{what} is a Rekor v2 entry; Rekor v2 entries are not verified by this version (only Rekor v1 `dsse` 0.0.1 entries are)")
    } else {
        format!("{what} is not verified: only Rekor v1 `dsse` 0.0.1 entries are")
    };
    Err(fail(TlogRule::Kind, message))
}

/// A log ID as shown in messages: base64, cut if a hostile bundle made it long.
fn show_log_id(log_id: &[u8]) -> String {
    const MAX: usize = 48;
    match log_id.get(..MAX) {
        Some(head) if log_id.len() > MAX => format!("{}…", STANDARD.encode(head)),
        _ => STANDARD.encode(log_id),
    }
}

/// The trusted log with the entry's log ID, its key valid at the integrated time.
fn find_log<'a>(entry: &TlogEntry, logs: &'a [LogKey]) -> Result<&'a LogKey, TlogError> {
    // A root may list one key twice (another base URL, another validity window): the one valid at
    // the integrated time is the one that counts.
    let time = entry.integrated_time;
    let valid_then = |log: &&LogKey| {
        log.valid_from.is_none_or(|from| time >= from)
            && log.valid_until.is_none_or(|until| time <= until)
    };
    let log = logs
        .iter()
        .filter(|log| log.log_id == entry.log_id)
        .find(valid_then)
        .or_else(|| logs.iter().find(|log| log.log_id == entry.log_id))
        .ok_or_else(|| {
            fail(
                TlogRule::UnknownLog,
                format!(
                    "no trusted transparency log has the log ID {}",
                    show_log_id(&entry.log_id)
                ),
            )
        })?;
    let before = log.valid_from.is_some_and(|from| time < from);
    let after = log.valid_until.is_some_and(|until| time > until);
    if before || after {
        let window = match (log.valid_from, log.valid_until) {
            (Some(from), Some(until)) => format!("valid from {from} until {until}"),
            (Some(from), None) => format!("valid from {from}"),
            (None, Some(until)) => format!("valid until {until}"),
            (None, None) => String::new(),
        };
        return Err(fail(
            TlogRule::UnknownLog,
            format!(
                "the key of the transparency log {} was not valid at the entry's integrated time {time} ({window}, Unix seconds)",
                log.base_url
            ),
        ));
    }
    Ok(log)
}

/// The payload a Rekor v1 SET signs: the RFC 8785 (JCS) form of
/// `{body, integratedTime, logID, logIndex}`. Every value is an ASCII string (base64, hex) or an
/// integer, so sorted keys without whitespace are exactly JCS.
fn set_payload(entry: &TlogEntry) -> Vec<u8> {
    format!(
        "{{\"body\":\"{}\",\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
        STANDARD.encode(&entry.canonicalized_body),
        entry.integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    )
    .into_bytes()
}

/// The SET: the log's ECDSA P-256 SHA-256 signature (DER) over [`set_payload`].
fn verify_set(entry: &TlogEntry, log: &LogKey) -> Result<(), TlogError> {
    let set = entry.signed_entry_timestamp.as_deref().ok_or_else(|| {
        fail(
            TlogRule::NoPromise,
            format!(
                "log entry {} has no inclusion promise (signed entry timestamp), so its integrated time cannot be trusted",
                entry.log_index
            ),
        )
    })?;
    let bad = |why: &str| {
        fail(
            TlogRule::Set,
            format!(
                "the signed entry timestamp of log entry {} {why} with the key of {}",
                entry.log_index, log.base_url
            ),
        )
    };
    let signature = p256::ecdsa::Signature::from_der(set)
        .map_err(|_| bad("is not a DER ECDSA P-256 signature, so it does not verify"))?;
    log.key
        .verify(&set_payload(entry), &signature)
        .map_err(|_| bad("does not verify (body, integrated time, log ID or index altered)"))
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Verifies an RFC 9162 §2.1.3.2 inclusion proof: `hashes` (leaf to root) lead from `leaf`, at
/// `index` in a tree of `size` leaves, to `root`. The path length is fixed by `index` and `size`,
/// and `hashes` must have exactly that length, so the work is bounded by 64 hashes.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    hashes: &[Vec<u8>],
    root: &[u8],
) -> Result<(), String> {
    if index >= size {
        return Err(format!(
            "leaf index {index} is not below the tree size {size}"
        ));
    }
    let last = size - 1;
    let inner = 64 - (index ^ last).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let expected = (inner + border) as usize;
    if hashes.len() != expected {
        return Err(format!(
            "it has {} hashes, where leaf {index} of a tree of {size} needs {expected}",
            hashes.len()
        ));
    }
    let mut path = Vec::with_capacity(expected);
    for (i, hash) in hashes.iter().enumerate() {
        let hash: [u8; 32] = hash
            .as_slice()
            .try_into()
            .map_err(|_| format!("hash {i} is {} bytes, not a SHA-256 hash", hash.len()))?;
        path.push(hash);
    }
    let (inner_path, border_path) = path.split_at(inner as usize);
    let mut node = *leaf;
    for (bit, sibling) in inner_path.iter().enumerate() {
        node = if (index >> bit) & 1 == 0 {
            node_hash(&node, sibling)
        } else {
            node_hash(sibling, &node)
        };
    }
    for sibling in border_path {
        node = node_hash(sibling, &node);
    }
    if node.as_slice() == root {
        Ok(())
    } else {
        Err(format!(
            "it leads to the root {}, not to the proof's root hash {}",
            hex::encode(node),
            hex::encode(root.get(..64).unwrap_or(root))
        ))
    }
}

/// One signature line of a signed note: `— <name> <base64(key hint || signature)>`.
struct NoteSignature<'a> {
    name: &'a str,
    hint: &'a [u8],
    signature: &'a [u8],
}

/// Verifies a Rekor v1 checkpoint (a signed note, C2SP `signed-note` / `tlog-checkpoint`): a
/// signature line by `log` (key hint = `log_id[..4]`, name contained in the log's base URL) that
/// verifies over the note text, and a body naming `root` and `size`.
fn verify_checkpoint(
    checkpoint: &str,
    log: &LogKey,
    root: &[u8],
    size: u64,
) -> Result<(), TlogError> {
    let bad = |why: String| fail(TlogRule::Checkpoint, format!("the checkpoint {why}"));
    let malformed = |why: &str| bad(format!("is malformed: {why}"));
    if checkpoint.len() > MAX_CHECKPOINT {
        return Err(malformed(&format!(
            "it is {} bytes, more than the {MAX_CHECKPOINT} read",
            checkpoint.len()
        )));
    }
    let split = checkpoint
        .find("\n\n")
        .ok_or_else(|| malformed("it has no blank line before its signatures"))?;
    let after = checkpoint.get(split + 2..).unwrap_or_default();
    if after.starts_with('\n') || after.contains("\n\n") {
        return Err(malformed("it has more than one blank line"));
    }
    // The signed text runs up to and including the newline that ends the last body line.
    let (note, rest) = checkpoint.split_at(split + 1);
    let signatures_text = rest
        .strip_prefix('\n')
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("it has no signature lines, or they do not end with a newline"))?;
    let lines: Vec<&str> = signatures_text
        .split('\n')
        .take(MAX_CHECKPOINT_SIGNATURES + 1)
        .collect();
    if lines.len() > MAX_CHECKPOINT_SIGNATURES {
        return Err(malformed(&format!(
            "it has more than {MAX_CHECKPOINT_SIGNATURES} signature lines"
        )));
    }
    let decoded: Vec<(&str, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let shape = || {
                malformed(&format!(
                    "signature line {} is not `— <name> <base64 signature>`: `{}`",
                    i + 1,
                    sanitize(line, SHOWN)
                ))
            };
            let (name, blob) = line
                .strip_prefix("\u{2014} ")
                .and_then(|l| l.split_once(' '))
                .ok_or_else(shape)?;
            if name.is_empty() || name.contains(char::is_whitespace) || blob.contains(' ') {
                return Err(shape());
            }
            let bytes = STANDARD.decode(blob).map_err(|_| shape())?;
            if bytes.len() < 5 {
                return Err(shape());
            }
            Ok((name, bytes))
        })
        .collect::<Result<_, _>>()?;
    let signatures = decoded.iter().filter_map(|(name, bytes)| {
        let (hint, signature) = bytes.split_at_checked(4)?;
        Some(NoteSignature {
            name,
            hint,
            signature,
        })
    });
    let hint = log.log_id.get(..4).unwrap_or(&log.log_id);
    let mut ours = signatures
        .filter(|s| s.hint == hint && log.base_url.contains(s.name))
        .peekable();
    if ours.peek().is_none() {
        return Err(bad(format!(
            "has no signature by the transparency log {} (key hint {})",
            log.base_url,
            hex::encode(hint)
        )));
    }
    let verified = ours.any(|s| {
        p256::ecdsa::Signature::from_der(s.signature)
            .is_ok_and(|signature| log.key.verify(note.as_bytes(), &signature).is_ok())
    });
    if !verified {
        return Err(bad(format!(
            "has a bad signature: it does not verify with the key of {}",
            log.base_url
        )));
    }

    // The note is now authenticated; read its body.
    let body = note.strip_suffix('\n').unwrap_or(note);
    let mut body_lines = body.split('\n');
    let origin = body_lines.next().unwrap_or_default();
    if origin.is_empty() {
        return Err(malformed("its origin line is empty"));
    }
    let size_line = body_lines
        .next()
        .ok_or_else(|| malformed("it has no tree size line"))?;
    if size_line.is_empty() || !size_line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(&format!(
            "its tree size `{}` is not a decimal number",
            sanitize(size_line, SHOWN)
        )));
    }
    let note_size: u64 = size_line.parse().map_err(|_| {
        malformed(&format!(
            "its tree size `{}` is not a 64-bit number",
            sanitize(size_line, SHOWN)
        ))
    })?;
    let root_line = body_lines
        .next()
        .ok_or_else(|| malformed("it has no root hash line"))?;
    let note_root = STANDARD.decode(root_line).map_err(|_| {
        malformed(&format!(
            "its root hash `{}` is not base64",
            sanitize(root_line, SHOWN)
        ))
    })?;
    if note_root != root {
        return Err(bad(format!(
            "is for another root: {}, not the inclusion proof's root {}",
            hex::encode(note_root.get(..64).unwrap_or(&note_root)),
            hex::encode(root.get(..64).unwrap_or(root))
        )));
    }
    if note_size != size {
        return Err(bad(format!(
            "is for another size: a tree of {note_size} entries, not the inclusion proof's {size}"
        )));
    }
    Ok(())
}

/// The body (now authenticated by the SET) must be the declared `dsse` 0.0.1 entry of this
/// envelope's payload, its one signature and the certificate `leaf_der`.
fn check_binding(
    entry: &TlogEntry,
    envelope: &cnb_dsse::Envelope,
    leaf_der: &[u8],
) -> Result<(), TlogError> {
    let binding = |why: &str| {
        fail(
            TlogRule::Binding,
            format!("log entry {}: {why}", entry.log_index),
        )
    };
    let body: Value = serde_json::from_slice(&entry.canonicalized_body).map_err(|e| {
        fail(
            TlogRule::Kind,
            format!(
                "the body of log entry {} is not JSON: {}",
                entry.log_index,
                sanitize(&e.to_string(), SHOWN)
            ),
        )
    })?;
    let kind = body.get("kind").and_then(Value::as_str);
    let api_version = body.get("apiVersion").and_then(Value::as_str);
    if kind != Some(entry.kind.as_str()) || api_version != Some(entry.version.as_str()) {
        return Err(fail(
            TlogRule::Kind,
            format!(
                "the body of log entry {} is a `{}` {} entry, not the `{}` {} its kindVersion declares",
                entry.log_index,
                sanitize(kind.unwrap_or("(no kind)"), SHOWN),
                sanitize(api_version.unwrap_or("(no apiVersion)"), SHOWN),
                sanitize(&entry.kind, SHOWN),
                sanitize(&entry.version, SHOWN)
            ),
        ));
    }
    let envelope_signature = match envelope.signatures.as_slice() {
        [one] => &one.sig,
        other => {
            return Err(binding(&format!(
                "the envelope has {} signatures; a keyless envelope has exactly one",
                other.len()
            )))
        }
    };
    let spec = body
        .get("spec")
        .ok_or_else(|| binding("the entry's body has no spec"))?;

    let payload_hash = spec.get("payloadHash");
    let algorithm = payload_hash
        .and_then(|h| h.get("algorithm"))
        .and_then(Value::as_str);
    let value = payload_hash
        .and_then(|h| h.get("value"))
        .and_then(Value::as_str);
    let digest = Sha256::digest(&envelope.payload);
    let same_payload = algorithm == Some("sha256")
        && value
            .and_then(|v| hex::decode(v).ok())
            .is_some_and(|v| v.as_slice() == digest.as_slice());
    if !same_payload {
        return Err(binding(
            "the log entry is for another envelope/payload (its payloadHash is not the SHA-256 of this envelope's payload)",
        ));
    }

    let signatures = match spec.get("signatures").and_then(Value::as_array) {
        Some(signatures) => signatures,
        None => return Err(binding("the entry's body has no signatures list")),
    };
    let signature = match signatures.as_slice() {
        [one] => one,
        other => {
            return Err(binding(&format!(
                "the entry's body has {} signatures, not exactly one",
                other.len()
            )))
        }
    };
    let logged_signature = signature
        .get("signature")
        .and_then(Value::as_str)
        .and_then(|s| STANDARD.decode(s).ok());
    if logged_signature.as_deref() != Some(envelope_signature.as_slice()) {
        return Err(binding(
            "the log entry is for another signature (its signature is not this envelope's)",
        ));
    }
    let logged_certificate = signature
        .get("verifier")
        .and_then(Value::as_str)
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|pem| pem::parse(pem).ok())
        .filter(|pem| pem.tag() == "CERTIFICATE");
    match logged_certificate {
        Some(pem) if pem.contents() == leaf_der => Ok(()),
        Some(_) => Err(binding(
            "the log entry is for another certificate (its verifier is not this bundle's certificate)",
        )),
        None => Err(binding(
            "the log entry is for another certificate (its verifier is not a PEM certificate)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::KeylessMaterial;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    const BUNDLE: &[u8] = include_bytes!("../testdata/cosign-oci-attestation.sigstore.json");
    const TRUSTED_ROOT: &[u8] = include_bytes!("../testdata/cosign-trusted_root_pgi.json");
    const REKOR: &str = "https://rekor.sigstore.dev";
    /// `validFor.start` of the Rekor key in the trusted root: 2021-01-12T11:53:27Z.
    const REKOR_KEY_START: i64 = 1610452407;

    struct Fixture {
        entry: TlogEntry,
        logs: Vec<LogKey>,
        envelope: cnb_dsse::Envelope,
        leaf: Vec<u8>,
    }

    fn trusted_root() -> Value {
        serde_json::from_slice(TRUSTED_ROOT).unwrap()
    }

    fn rekor_key(valid_from: Option<i64>, valid_until: Option<i64>) -> LogKey {
        let root = trusted_root();
        let tlog = root["tlogs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["baseUrl"] == REKOR)
            .unwrap();
        let der = STANDARD
            .decode(tlog["publicKey"]["rawBytes"].as_str().unwrap())
            .unwrap();
        LogKey::new(REKOR.into(), &der, valid_from, valid_until).unwrap()
    }

    fn fixture() -> Fixture {
        let material = KeylessMaterial::from_bundle_json(BUNDLE).unwrap().unwrap();
        let bundle: Value = serde_json::from_slice(BUNDLE).unwrap();
        let envelope =
            cnb_dsse::Envelope::from_json(bundle["dsseEnvelope"].to_string().as_bytes()).unwrap();
        Fixture {
            entry: material.tlog_entries[0].clone(),
            logs: vec![rekor_key(Some(REKOR_KEY_START), None)],
            envelope,
            leaf: material.certificate,
        }
    }

    impl Fixture {
        fn verify(&self) -> Result<Witnessed, TlogError> {
            verify_entry(&self.entry, &self.logs, &self.envelope, &self.leaf)
        }

        fn proof(&mut self) -> &mut crate::bundle::InclusionProof {
            self.entry.inclusion_proof.as_mut().unwrap()
        }
    }

    #[track_caller]
    fn assert_rule(result: Result<Witnessed, TlogError>, rule: TlogRule, says: &str) {
        let error = result.unwrap_err();
        assert_eq!(error.rule, rule, "{error}");
        assert!(error.message.contains(says), "`{says}` not in: {error}");
    }

    #[test]
    fn the_public_good_bundle_entry_verifies() {
        let witnessed = fixture().verify().unwrap();
        assert_eq!(
            witnessed,
            Witnessed {
                integrated_time: 1740770291,
                log_index: 175508996,
                log: REKOR.into(),
            }
        );
    }

    #[test]
    fn a_flipped_bit_in_the_set_fails_the_set() {
        let mut f = fixture();
        let set = f.entry.signed_entry_timestamp.as_mut().unwrap();
        let last = set.len() - 1;
        set[last] ^= 1;
        assert_rule(f.verify(), TlogRule::Set, "does not verify");
    }

    #[test]
    fn another_integrated_time_fails_the_set() {
        let mut f = fixture();
        f.entry.integrated_time += 1;
        assert_rule(f.verify(), TlogRule::Set, "does not verify");
    }

    #[test]
    fn another_global_index_fails_the_set() {
        let mut f = fixture();
        f.entry.log_index = f.proof().log_index;
        assert_rule(f.verify(), TlogRule::Set, "does not verify");
    }

    #[test]
    fn a_changed_proof_hash_fails_the_inclusion_proof() {
        let mut f = fixture();
        f.proof().hashes[3][0] ^= 0x80;
        assert_rule(f.verify(), TlogRule::InclusionProof, "leads to the root");
    }

    #[test]
    fn a_proof_one_hash_short_fails_the_inclusion_proof() {
        let mut f = fixture();
        f.proof().hashes.pop();
        assert_rule(f.verify(), TlogRule::InclusionProof, "has 15 hashes");
    }

    #[test]
    fn a_proof_at_another_leaf_index_fails() {
        let mut f = fixture();
        f.proof().log_index -= 1;
        assert_rule(f.verify(), TlogRule::InclusionProof, "does not verify");
        let mut f = fixture();
        f.proof().log_index = f.proof().tree_size;
        assert_rule(
            f.verify(),
            TlogRule::InclusionProof,
            "not below the tree size",
        );
    }

    /// The real checkpoint's note text (everything up to and including the blank line's first
    /// newline) and its signature lines.
    fn real_note(f: &Fixture) -> (String, String) {
        let checkpoint = &f.entry.inclusion_proof.as_ref().unwrap().checkpoint;
        let at = checkpoint.find("\n\n").unwrap();
        (
            checkpoint[..at + 1].to_string(),
            checkpoint[at + 2..].to_string(),
        )
    }

    fn other_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        key.verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// A signature line of a signed note.
    fn note_signature(
        key: &p256::ecdsa::SigningKey,
        hint: &[u8],
        name: &str,
        note: &str,
    ) -> String {
        let signature: p256::ecdsa::Signature = key.sign(note.as_bytes());
        let mut blob = hint.to_vec();
        blob.extend_from_slice(signature.to_der().as_bytes());
        format!("\u{2014} {name} {}\n", STANDARD.encode(blob))
    }

    #[test]
    fn a_checkpoint_signed_by_an_unknown_key_fails() {
        let (note, _) = real_note(&fixture());
        let key = other_key();
        // With the unknown key's own hint: no line is the log's.
        let hint = Sha256::digest(spki(&key))[..4].to_vec();
        let mut f = fixture();
        f.proof().checkpoint = format!(
            "{note}\n{}",
            note_signature(&key, &hint, "rekor.sigstore.dev", &note)
        );
        assert_rule(f.verify(), TlogRule::Checkpoint, "has no signature by");
        // Claiming the log's hint: the signature does not verify with the log's key.
        let mut f = fixture();
        let hint = f.entry.log_id[..4].to_vec();
        f.proof().checkpoint = format!(
            "{note}\n{}",
            note_signature(&key, &hint, "rekor.sigstore.dev", &note)
        );
        assert_rule(f.verify(), TlogRule::Checkpoint, "bad signature");
    }

    #[test]
    fn a_checkpoint_signed_under_a_name_the_log_url_lacks_fails() {
        let mut f = fixture();
        let (note, signatures) = real_note(&f);
        f.proof().checkpoint = format!(
            "{note}\n{}",
            signatures.replace("rekor.sigstore.dev", "rekor.example.dev")
        );
        assert_rule(f.verify(), TlogRule::Checkpoint, "has no signature by");
    }

    #[test]
    fn a_checkpoint_for_another_root_with_the_real_signature_fails() {
        let mut f = fixture();
        let (note, signatures) = real_note(&f);
        let real_root = STANDARD.encode(&f.proof().root_hash);
        let note = note.replace(&real_root, &STANDARD.encode([9u8; 32]));
        f.proof().checkpoint = format!("{note}\n{signatures}");
        assert_rule(f.verify(), TlogRule::Checkpoint, "bad signature");
    }

    #[test]
    fn a_malformed_checkpoint_fails() {
        let (note, signatures) = real_note(&fixture());
        let cases = [
            (format!("{note}{signatures}"), "no blank line"),
            (
                format!("{note}\n\n{signatures}"),
                "more than one blank line",
            ),
            (
                format!("{note}\n{}", signatures.trim_end()),
                "do not end with a newline",
            ),
            (
                format!("{note}\n{}", signatures.replace('\u{2014}', "-")),
                "signature line 1",
            ),
            (
                format!("{note}\n{}", signatures.repeat(33)),
                "more than 32 signature lines",
            ),
            (
                format!("{}\n\n{signatures}", "x".repeat(MAX_CHECKPOINT)),
                "more than the 65536",
            ),
        ];
        for (checkpoint, says) in cases {
            let mut f = fixture();
            f.proof().checkpoint = checkpoint;
            assert_rule(f.verify(), TlogRule::Checkpoint, says);
        }
        // 32 copies of the real line are accepted (the bound is not off by one).
        let mut f = fixture();
        f.proof().checkpoint = format!("{note}\n{}", signatures.repeat(32));
        f.verify().unwrap();
    }

    #[test]
    fn an_unknown_log_id_is_an_unknown_log() {
        let mut f = fixture();
        f.entry.log_id[0] ^= 1;
        let shown = STANDARD.encode(&f.entry.log_id);
        assert_rule(f.verify(), TlogRule::UnknownLog, &shown);
    }

    #[test]
    fn a_log_key_expired_before_the_integrated_time_is_an_unknown_log() {
        let mut f = fixture();
        f.logs = vec![rekor_key(Some(REKOR_KEY_START), Some(1740770290))];
        assert_rule(f.verify(), TlogRule::UnknownLog, "was not valid at");
        // Valid until exactly the integrated time is valid.
        f.logs = vec![rekor_key(Some(REKOR_KEY_START), Some(1740770291))];
        f.verify().unwrap();
        // A key that only became valid after it is not.
        f.logs = vec![rekor_key(Some(1740770292), None)];
        assert_rule(f.verify(), TlogRule::UnknownLog, "was not valid at");
    }

    #[test]
    fn one_key_listed_twice_counts_in_the_window_valid_at_the_integrated_time() {
        let mut f = fixture();
        f.logs = vec![
            rekor_key(Some(REKOR_KEY_START), Some(1740770290)),
            rekor_key(Some(1740770290), None),
        ];
        f.verify().unwrap();
        f.logs.reverse();
        f.verify().unwrap();
    }

    #[test]
    fn another_payload_is_another_envelope() {
        let mut f = fixture();
        f.envelope.payload.push(b' ');
        assert_rule(f.verify(), TlogRule::Binding, "another envelope/payload");
    }

    #[test]
    fn another_signature_fails_the_binding() {
        let mut f = fixture();
        f.envelope.signatures[0].sig[10] ^= 1;
        assert_rule(f.verify(), TlogRule::Binding, "another signature");
        let mut f = fixture();
        let second = f.envelope.signatures[0].clone();
        f.envelope.signatures.push(second);
        assert_rule(f.verify(), TlogRule::Binding, "exactly one");
    }

    #[test]
    fn another_certificate_fails_the_binding() {
        let mut f = fixture();
        let root = trusted_root();
        let ca = root["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"]
            .as_str()
            .unwrap();
        f.leaf = STANDARD.decode(ca).unwrap();
        assert_rule(f.verify(), TlogRule::Binding, "another certificate");
    }

    #[test]
    fn an_intoto_entry_is_refused_by_kind() {
        let mut f = fixture();
        f.entry.kind = "intoto".into();
        assert_rule(f.verify(), TlogRule::Kind, "`intoto` 0.0.1");
        let mut f = fixture();
        f.entry.version = "0.0.2".into();
        assert_rule(f.verify(), TlogRule::Kind, "`dsse` 0.0.2");
    }

    #[test]
    fn untrusted_kind_text_is_shown_escaped() {
        let mut f = fixture();
        f.entry.kind = "dsse\r\u{1b}[2Kverified".into();
        let error = f.verify().unwrap_err();
        assert_eq!(error.rule, TlogRule::Kind);
        assert!(
            error.message.contains("dsse\\r\\u{1b}[2Kverified"),
            "{error}"
        );
        assert!(!error.message.contains('\u{1b}'), "{error}");
    }

    #[test]
    fn a_rekor_v2_entry_is_refused_by_kind() {
        let mut f = fixture();
        f.entry.kind = "hashedrekord".into();
        f.entry.version = "0.0.2".into();
        assert_rule(
            f.verify(),
            TlogRule::Kind,
            "Rekor v2 entries are not verified",
        );
    }

    #[test]
    fn an_entry_without_set_has_no_promise() {
        let mut f = fixture();
        f.entry.signed_entry_timestamp = None;
        assert_rule(f.verify(), TlogRule::NoPromise, "no inclusion promise");
    }

    #[test]
    fn an_entry_without_proof_has_no_proof() {
        let mut f = fixture();
        f.entry.inclusion_proof = None;
        assert_rule(f.verify(), TlogRule::NoProof, "no inclusion proof");
    }

    #[test]
    fn an_oversized_body_is_refused_before_anything_else() {
        let mut f = fixture();
        f.entry.canonicalized_body = vec![b' '; MAX_BODY + 1];
        assert_rule(f.verify(), TlogRule::Kind, "more than the 1048576 read");
    }

    // A Merkle tree computed from RFC 6962 §2.1's recursive definitions (MTH and PATH), which
    // the verifier's bit arithmetic (RFC 9162 §2.1.3.2) must agree with.

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    /// The largest power of two smaller than `n` (n > 1).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        let (mut p, sibling) = if m < k {
            (path(m, &leaves[..k]), mth(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), mth(&leaves[..k]))
        };
        p.push(sibling.to_vec());
        p
    }

    #[test]
    fn inclusion_proofs_of_a_small_tree_verify_only_at_their_own_index() {
        for n in 1..=7usize {
            let leaves = leaves(n);
            let root = mth(&leaves);
            let size = n as u64;
            for i in 0..n {
                let proof = path(i, &leaves);
                verify_inclusion(i as u64, size, &leaves[i], &proof, &root)
                    .unwrap_or_else(|e| panic!("leaf {i} of {n}: {e}"));
                for j in (0..n).filter(|&j| j != i) {
                    assert!(
                        verify_inclusion(j as u64, size, &leaves[i], &proof, &root).is_err(),
                        "proof of leaf {i} verified at {j} in a tree of {n}"
                    );
                    assert!(
                        verify_inclusion(i as u64, size, &leaves[j], &proof, &root).is_err(),
                        "leaf {j} verified with the proof of {i} in a tree of {n}"
                    );
                }
                // The same proof does not verify against the root of a tree one larger.
                let bigger = mth(&self::leaves(n + 1));
                assert!(verify_inclusion(i as u64, size + 1, &leaves[i], &proof, &bigger).is_err());
            }
        }
    }

    #[test]
    fn hostile_proof_numbers_are_refused_without_work() {
        let leaf = leaf_hash(b"x");
        assert!(verify_inclusion(0, 0, &leaf, &[], &leaf).is_err());
        assert!(verify_inclusion(5, 5, &leaf, &[], &leaf).is_err());
        let error = verify_inclusion(u64::MAX - 1, u64::MAX, &leaf, &[], &leaf).unwrap_err();
        assert!(error.contains("needs 63"), "{error}");
        let error = verify_inclusion(0, u64::MAX, &leaf, &[], &leaf).unwrap_err();
        assert!(error.contains("needs 64"), "{error}");
        let error = verify_inclusion(0, 2, &leaf, &[vec![0u8; 31]], &leaf).unwrap_err();
        assert!(error.contains("hash 0 is 31 bytes"), "{error}");
        // A one-leaf tree: the leaf is the root, with no hashes.
        verify_inclusion(0, 1, &leaf, &[], &leaf).unwrap();
    }

    /// A log of our own: the real body (so the binding holds) as leaf 3 of a 5-leaf tree, with a
    /// SET and a checkpoint signed by `key`.
    struct OwnLog {
        f: Fixture,
        key: p256::ecdsa::SigningKey,
        root: [u8; 32],
    }

    impl OwnLog {
        fn new() -> Self {
            let mut f = fixture();
            let key = other_key();
            let log = LogKey::new(REKOR.into(), &spki(&key), None, None).unwrap();
            f.entry.log_id = log.log_id.clone();
            f.logs = vec![log];
            let mut own = OwnLog {
                f,
                key,
                root: [0; 32],
            };
            own.set_body(own.f.entry.canonicalized_body.clone());
            own
        }

        /// Puts `body` in the tree, and signs the SET and a checkpoint for it.
        fn set_body(&mut self, body: Vec<u8>) {
            let mut tree = leaves(5);
            tree[3] = leaf_hash(&body);
            self.root = mth(&tree);
            self.f.entry.canonicalized_body = body;
            let proof = self.f.proof();
            proof.log_index = 3;
            proof.tree_size = 5;
            proof.hashes = path(3, &tree);
            proof.root_hash = self.root.to_vec();
            let checkpoint = self.checkpoint(5, &self.root, "");
            self.f.proof().checkpoint = checkpoint;
            self.sign_set();
        }

        fn sign_set(&mut self) {
            let signature: p256::ecdsa::Signature = self.key.sign(&set_payload(&self.f.entry));
            self.f.entry.signed_entry_timestamp = Some(signature.to_der().as_bytes().to_vec());
        }

        fn checkpoint(&self, size: u64, root: &[u8], other: &str) -> String {
            let note = format!(
                "rekor.sigstore.dev - 1193050959916656506\n{size}\n{}\n{other}",
                STANDARD.encode(root)
            );
            let hint = self.f.logs[0].log_id[..4].to_vec();
            format!(
                "{note}\n{}",
                note_signature(&self.key, &hint, "rekor.sigstore.dev", &note)
            )
        }
    }

    #[test]
    fn an_entry_of_a_log_of_our_own_verifies() {
        let own = OwnLog::new();
        let witnessed = own.f.verify().unwrap();
        assert_eq!(witnessed.log_index, 175508996);
        // Other content lines (older Rekor, @sigstore/mock) and other signers' lines are allowed.
        let mut own = OwnLog::new();
        let checkpoint = own.checkpoint(5, &own.root, "Timestamp: 1740770291000000000\n");
        own.f.proof().checkpoint = format!("{}\u{2014} witness.example AAAAAAAAAA==\n", checkpoint);
        own.f.verify().unwrap();
    }

    #[test]
    fn a_signed_checkpoint_for_another_root_or_size_fails() {
        let mut own = OwnLog::new();
        own.f.proof().checkpoint = own.checkpoint(5, &[9u8; 32], "");
        assert_rule(own.f.verify(), TlogRule::Checkpoint, "is for another root");
        let mut own = OwnLog::new();
        own.f.proof().checkpoint = own.checkpoint(6, &own.root, "");
        assert_rule(own.f.verify(), TlogRule::Checkpoint, "is for another size");
    }

    #[test]
    fn a_signed_checkpoint_with_a_malformed_body_fails() {
        let own = OwnLog::new();
        let hint = own.f.logs[0].log_id[..4].to_vec();
        let root = STANDARD.encode(own.root);
        for (note, says) in [
            (format!("\n5\n{root}\n"), "origin line is empty"),
            (format!("o\n+5\n{root}\n"), "tree size `+5`"),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                "not a 64-bit number",
            ),
            ("o\n5\n".to_string(), "no root hash line"),
            ("o\n5\nnot base64!\n".to_string(), "is not base64"),
        ] {
            let mut own = OwnLog::new();
            own.f.proof().checkpoint = format!(
                "{note}\n{}",
                note_signature(&own.key, &hint, "rekor.sigstore.dev", &note)
            );
            assert_rule(own.f.verify(), TlogRule::Checkpoint, says);
        }
    }

    #[test]
    fn a_body_of_another_kind_than_declared_fails() {
        let mut own = OwnLog::new();
        let body = String::from_utf8(own.f.entry.canonicalized_body.clone())
            .unwrap()
            .replacen("\"apiVersion\":\"0.0.1\"", "\"apiVersion\":\"0.0.2\"", 1);
        own.set_body(body.into_bytes());
        assert_rule(own.f.verify(), TlogRule::Kind, "is a `dsse` 0.0.2 entry");
    }

    #[test]
    fn a_body_with_two_signatures_fails_the_binding() {
        let mut own = OwnLog::new();
        let mut body: Value = serde_json::from_slice(&own.f.entry.canonicalized_body).unwrap();
        let signatures = body["spec"]["signatures"].as_array_mut().unwrap();
        signatures.push(signatures[0].clone());
        own.set_body(serde_json::to_vec(&body).unwrap());
        assert_rule(own.f.verify(), TlogRule::Binding, "2 signatures");
    }

    #[test]
    fn the_verifier_pem_is_compared_by_der_whatever_its_line_layout() {
        let mut own = OwnLog::new();
        let mut body: Value = serde_json::from_slice(&own.f.entry.canonicalized_body).unwrap();
        let verifier = &mut body["spec"]["signatures"][0]["verifier"];
        let pem = String::from_utf8(STANDARD.decode(verifier.as_str().unwrap()).unwrap()).unwrap();
        // One long base64 line, CRLF line ends.
        let lines: Vec<&str> = pem.lines().collect();
        let rewrapped = format!(
            "{}\r\n{}\r\n{}\r\n",
            lines[0],
            lines[1..lines.len() - 1].concat(),
            lines[lines.len() - 1]
        );
        assert_ne!(rewrapped, pem);
        *verifier = Value::String(STANDARD.encode(rewrapped));
        own.set_body(serde_json::to_vec(&body).unwrap());
        own.f.verify().unwrap();
        // And a PEM public key (not a certificate) does not bind.
        let mut body: Value = serde_json::from_slice(&own.f.entry.canonicalized_body).unwrap();
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", own.f.leaf.clone()));
        body["spec"]["signatures"][0]["verifier"] = Value::String(STANDARD.encode(pem));
        own.set_body(serde_json::to_vec(&body).unwrap());
        assert_rule(own.f.verify(), TlogRule::Binding, "not a PEM certificate");
    }
}
