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
    let log = logs
        .iter()
        .find(|log| log.log_id == entry.log_id)
        .ok_or_else(|| {
            fail(
                TlogRule::UnknownLog,
                format!(
                    "no trusted transparency log has the log ID {}",
                    show_log_id(&entry.log_id)
                ),
            )
        })?;
    let time = entry.integrated_time;
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
    let mut blank = checkpoint.match_indices("\n\n");
    let split = match (blank.next(), blank.next()) {
        (Some((at, _)), None) => at,
        (None, _) => return Err(malformed("it has no blank line before its signatures")),
        (Some(_), Some(_)) => return Err(malformed("it has more than one blank line")),
    };
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
