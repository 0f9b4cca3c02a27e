//! DSSE v1: the pre-authentication encoding and the JSON envelope.

use cnb_untrusted::json;
use serde_json::{Map, Value};

use crate::b64;
use crate::error::Error;
use crate::keys::{Signer, VerifyingKey};

/// The `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Most signatures an envelope may carry to be read: each costs a verification.
pub const MAX_SIGNATURES: usize = 16;

/// The envelope fields this crate reads.
const ENVELOPE_FIELDS: &[&str] = &["payloadType", "payload", "signatures"];
/// The signature fields this crate reads.
const SIGNATURE_FIELDS: &[&str] = &["keyid", "sig"];

/// The DSSE v1 pre-authentication encoding (PAE), the byte string that is actually signed:
///
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where `LEN` is the length in bytes,
/// written as ASCII decimal without leading zeros.
///
/// ```
/// assert_eq!(
///     cnb_dsse::pae("http://example.com/HelloWorld", b"hello world"),
///     b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
/// );
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = pae_header(payload_type, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The [`pae`] bytes that come before the payload, for a payload of `payload_len` bytes: what a
/// signer hashes first when it streams the payload.
///
/// ```
/// assert_eq!(cnb_dsse::pae_header("t", 11), b"DSSEv1 1 t 11 ");
/// ```
pub fn pae_header(payload_type: &str, payload_len: u64) -> Vec<u8> {
    format!(
        "DSSEv1 {} {payload_type} {payload_len} ",
        payload_type.len()
    )
    .into_bytes()
}

/// A DSSE envelope: a payload, its type, and signatures over [`pae`] of the two.
///
/// The `payload_type` is authenticated by the signatures but not checked by [`Envelope::verify`]:
/// callers must compare it with what they expect (usually [`IN_TOTO_PAYLOAD_TYPE`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The media type of the payload, for example [`IN_TOTO_PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The payload bytes (decoded; base64 only exists in the JSON form).
    pub payload: Vec<u8>,
    /// The signatures (at least one in any envelope read by [`Envelope::from_json`]).
    pub signatures: Vec<Signature>,
}

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// An unauthenticated hint naming the key; cosign writes `""`, and so do we by default.
    pub keyid: String,
    /// The signature bytes; for ECDSA an ASN.1 DER `Ecdsa-Sig-Value`.
    pub sig: Vec<u8>,
}

impl Envelope {
    /// Signs `payload` with one signer: one signature over `pae(payload_type, payload)`, with the
    /// signer's [`keyid`](Signer::keyid).
    pub fn sign(payload_type: &str, payload: Vec<u8>, signer: &dyn Signer) -> Result<Self, Error> {
        let sig = signer.sign(&pae(payload_type, &payload))?;
        Ok(Envelope {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: vec![Signature {
                keyid: signer.keyid().to_owned(),
                sig,
            }],
        })
    }

    /// The envelope as compact JSON with a fixed key order,
    /// `{"payloadType":…,"payload":…,"signatures":[{"keyid":…,"sig":…}]}`, binary fields in
    /// standard base64 with padding. The same envelope always gives the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let (head, tail) = Self::json_around_payload(&self.payload_type, &self.signatures);
        let payload = b64::encode(&self.payload);
        let mut out = Vec::with_capacity(head.len() + payload.len() + tail.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(&tail);
        out
    }

    /// What [`Envelope::to_json`] writes before and after the payload's base64, for writers that
    /// stream a payload too large to hold: `head + base64(payload) + tail` is the envelope's JSON.
    pub fn json_around_payload(payload_type: &str, signatures: &[Signature]) -> (Vec<u8>, Vec<u8>) {
        let mut head = String::with_capacity(64);
        head.push_str("{\"payloadType\":");
        push_json_string(&mut head, payload_type);
        head.push_str(",\"payload\":\"");
        let mut tail = String::with_capacity(32 + 128 * signatures.len());
        tail.push_str("\",\"signatures\":[");
        for (i, signature) in signatures.iter().enumerate() {
            if i > 0 {
                tail.push(',');
            }
            tail.push_str("{\"keyid\":");
            push_json_string(&mut tail, &signature.keyid);
            tail.push_str(",\"sig\":\"");
            tail.push_str(&b64::encode(&signature.sig));
            tail.push_str("\"}");
        }
        tail.push_str("]}");
        (head.into_bytes(), tail.into_bytes())
    }

    /// Parses an envelope strictly.
    ///
    /// - The document must be one UTF-8 JSON object, nested at most
    ///   [`MAX_DEPTH`](cnb_untrusted::json::MAX_DEPTH) (127) levels deep, every number a finite
    ///   IEEE double, and no object in it may repeat a key (keys are compared after unescaping);
    ///   see [`cnb_untrusted::json::check_document`].
    /// - `payloadType` (string), `payload` (base64 string) and `signatures` (array of 1 to
    ///   [`MAX_SIGNATURES`] objects with a base64 string `sig` and an optional string `keyid`) are
    ///   required.
    /// - A key that differs from one of those field names only in letter case (`PayloadType`,
    ///   `Sig`, `KEYID`, or with the Unicode folds `ſ` = `s`, `K` = `k`) is rejected: Go's
    ///   `encoding/json`, which DSSE verifiers in Go use, matches keys case-insensitively and would
    ///   read such an envelope differently.
    /// - Base64 may be standard or URL-safe, padded or not; anything else (mixed alphabets, extra
    ///   padding, whitespace or line breaks, non-canonical trailing bits) is rejected. Each field
    ///   is decoded exactly once, and [`Envelope::verify`] checks the very bytes stored in
    ///   [`Envelope::payload`].
    /// - Other unknown fields are ignored.
    ///
    /// It does not check the payload type or any signature; see [`Envelope::verify`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        json::check_document(bytes, json::MAX_DEPTH).map_err(|e| invalid(e.to_string()))?;
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(invalid("the document is not a JSON object".into()));
        };
        check_field_spelling(&object, ENVELOPE_FIELDS, "the envelope")?;

        let payload_type = required_string(&object, "payloadType", "payloadType")?.to_owned();
        let payload = decode_field(required_string(&object, "payload", "payload")?, "payload")?;
        let signatures = match object.get("signatures") {
            None => return Err(invalid("missing field \"signatures\"".into())),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid("\"signatures\" is not an array".into())),
        };
        if signatures.is_empty() {
            return Err(invalid("\"signatures\" is empty".into()));
        }
        // Each signature costs a verification; a hostile envelope must not buy unbounded work.
        if signatures.len() > MAX_SIGNATURES {
            return Err(invalid(format!(
                "\"signatures\" has {} entries, more than the {MAX_SIGNATURES} an envelope may carry",
                signatures.len()
            )));
        }
        let signatures = signatures
            .iter()
            .enumerate()
            .map(|(i, item)| parse_signature(i, item))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Envelope {
            payload_type,
            payload,
            signatures,
        })
    }

    /// Succeeds iff at least one signature verifies with `key` over
    /// `pae(payload_type, payload)`. `keyid`s are ignored (they are unauthenticated hints).
    ///
    /// The policy is "one trusted key, any of its signatures": signatures that are malformed or
    /// made by other keys are skipped, wherever they stand in the list, and there is no threshold,
    /// so repeating a valid signature counts for nothing more than one copy.
    ///
    /// The error names the key's fingerprint, never the payload.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), Error> {
        let message = pae(&self.payload_type, &self.payload);
        if self
            .signatures
            .iter()
            .any(|signature| key.verify(&message, &signature.sig).is_ok())
        {
            Ok(())
        } else {
            Err(Error::NoValidSignature {
                fingerprint: key.fingerprint(),
                count: self.signatures.len(),
            })
        }
    }
}

impl Envelope {
    /// Like [`verify`](Self::verify), for an envelope whose payload is not held: `pae_sha256` is
    /// the SHA-256 of [`pae`]`(payload_type, payload)`, hashed by the caller as the payload
    /// streamed past ([`pae_header`] first). [`Envelope::payload`] is not looked at.
    pub fn verify_prehashed(&self, key: &VerifyingKey, pae_sha256: &[u8; 32]) -> Result<(), Error> {
        if self
            .signatures
            .iter()
            .any(|signature| key.verify_prehashed(pae_sha256, &signature.sig).is_ok())
        {
            Ok(())
        } else {
            Err(Error::NoValidSignature {
                fingerprint: key.fingerprint(),
                count: self.signatures.len(),
            })
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidEnvelope { reason }
}

/// Rejects keys of `object` that are case variants of `fields` (see [`Envelope::from_json`]).
fn check_field_spelling(
    object: &Map<String, Value>,
    fields: &[&str],
    place: &str,
) -> Result<(), Error> {
    object
        .keys()
        .try_for_each(|key| json::check_key_spelling(key, fields, place))
        .map_err(|e| invalid(e.to_string()))
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<&'a str, Error> {
    match object.get(key) {
        None => Err(invalid(format!("missing field \"{shown}\""))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!("\"{shown}\" is not a string"))),
    }
}

fn decode_field(text: &str, shown: &str) -> Result<Vec<u8>, Error> {
    b64::decode(text).map_err(|e| invalid(format!("\"{shown}\" is not valid base64: {e}")))
}

fn parse_signature(index: usize, item: &Value) -> Result<Signature, Error> {
    let Value::Object(object) = item else {
        return Err(invalid(format!("signatures[{index}] is not an object")));
    };
    check_field_spelling(object, SIGNATURE_FIELDS, &format!("signatures[{index}]"))?;
    let keyid = match object.get("keyid") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "signatures[{index}].keyid is not a string"
            )))
        }
    };
    let shown = format!("signatures[{index}].sig");
    let sig = decode_field(required_string(object, "sig", &shown)?, &shown)?;
    if sig.is_empty() {
        return Err(invalid(format!("{shown} is empty")));
    }
    Ok(Signature { keyid, sig })
}

/// Appends `s` as a JSON string literal, escaped the way `serde_json` does it.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_escaping_matches_serde_json() {
        for s in [
            "",
            "plain",
            "quote\" backslash\\ slash/",
            "controls \u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f}",
            "unicode é 😀 \u{2028}",
        ] {
            let mut ours = String::new();
            push_json_string(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn pae_of_empty_type_and_payload() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn pae_counts_bytes_not_chars() {
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }
}
