//! Rekor v1: logging a signed DSSE envelope as a `dsse` 0.0.1 entry
//! (`POST /api/v1/log/entries`) and reading the answer into a bundle's [`TlogEntry`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cnb_untrusted::text::sanitize;
use serde_json::{Map, Value};

use crate::bundle::{InclusionProof, TlogEntry, MAX_PROOF_HASHES};
use crate::sign::{
    check_url, endpoint, send, server_message, sha256_hex, SignError, LARGE_REQUEST,
};

/// The API path of log entries.
pub const ENTRIES_PATH: &str = "/api/v1/log/entries";

/// The entry kind written.
pub const KIND: &str = "dsse";

/// The entry kind's version written.
pub const API_VERSION: &str = "0.0.1";

/// A certificate as PEM in the layout of Go's `pem.EncodeToMemory` and Python's `cryptography`:
/// `-----BEGIN CERTIFICATE-----\n`, base64 in 64-column lines, `-----END CERTIFICATE-----\n`.
pub fn certificate_pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // Base64 is ASCII: every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The proposed `dsse` 0.0.1 entry for `envelope` signed by the key of the certificate
/// `leaf_der`:
/// `{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"<envelope JSON as a string>","verifiers":["<base64 of the PEM certificate>"]}}}`.
pub fn dsse_entry_request(envelope: &cnb_dsse::Envelope, leaf_der: &[u8]) -> Vec<u8> {
    let envelope_json = String::from_utf8_lossy(&envelope.to_json()).into_owned();
    // Serialising a string cannot fail.
    let envelope_string = serde_json::to_string(&envelope_json).unwrap_or_default();
    let verifier = STANDARD.encode(certificate_pem(leaf_der));
    let mut out = String::with_capacity(envelope_string.len() + verifier.len() + 128);
    out.push_str("{\"apiVersion\":\"");
    out.push_str(API_VERSION);
    out.push_str("\",\"kind\":\"");
    out.push_str(KIND);
    out.push_str("\",\"spec\":{\"proposedContent\":{\"envelope\":");
    out.push_str(&envelope_string);
    out.push_str(",\"verifiers\":[\"");
    out.push_str(&verifier);
    out.push_str("\"]}}}");
    out.into_bytes()
}

/// The length in bytes of [`dsse_entry_request`]`(envelope, leaf_der)`, computed without building
/// it (so an oversized envelope is refused without a second copy of it in memory).
pub fn dsse_entry_request_len(envelope: &cnb_dsse::Envelope, leaf_der: &[u8]) -> u64 {
    let envelope_json = envelope.to_json();
    // The envelope JSON as a JSON string: quotes, plus the escapes serde_json writes (`\"`, `\\`,
    // the short forms of \b \t \n \f \r, `\u00XX` for the other control characters).
    let escaped: u64 = envelope_json
        .iter()
        .map(|&b| match b {
            b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<u64>()
        + 2;
    let pem_len = certificate_pem_len(leaf_der.len() as u64);
    let verifier = pem_len.div_ceil(3) * 4;
    let fixed = r#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":,"verifiers":[""]}}}"#;
    fixed.len() as u64 + escaped + verifier
}

/// The length of [`certificate_pem`] for a DER of `der_len` bytes.
fn certificate_pem_len(der_len: u64) -> u64 {
    let base64 = der_len.div_ceil(3) * 4;
    let lines = base64.div_ceil(64);
    "-----BEGIN CERTIFICATE-----\n".len() as u64
        + base64
        + lines
        + "-----END CERTIFICATE-----\n".len() as u64
}

/// Sends a proposed entry to Rekor v1 at `base_url` and returns the logged entry.
///
/// - `201` (any 2xx): the answer `{"<uuid>": {body, integratedTime, logID, logIndex,
///   verification: {inclusionProof, signedEntryTimestamp}}}` is mapped to a [`TlogEntry`].
/// - `409 Conflict` (the entry exists): the entry at the `Location` header (same origin as
///   `base_url`) is fetched and mapped the same way.
/// - `413`, and `502` to a request of at least [`LARGE_REQUEST`] bytes:
///   [`SignError::TooLargeForLog`], never retried.
/// - Any other status: [`SignError::Rekor`] with the sanitised server message.
///
/// Transport errors and 500/502/503/504 are retried up to three times; bodies read are at most
/// 1 MiB.
pub async fn upload(
    client: &reqwest::Client,
    base_url: &str,
    request_body: Vec<u8>,
) -> Result<TlogEntry, SignError> {
    let url = endpoint("Rekor", base_url, ENTRIES_PATH)?;
    let size = request_body.len() as u64;
    let reply = send("POST Rekor", &url, size, || {
        client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(request_body.clone())
    })
    .await?;
    let shown = sanitize(&url, 200);
    match reply.status {
        200..=299 => parse_entry(&reply.body)
            .map_err(|reason| SignError::RekorResponse { url: shown, reason }),
        409 => {
            let location = reply.location.ok_or_else(|| SignError::RekorResponse {
                url: shown.clone(),
                reason: "409 Conflict (the entry exists) without a Location header".into(),
            })?;
            let existing = resolve_location(base_url, &url, &location)?;
            let reply = send("GET Rekor", &existing, 0, || {
                client
                    .get(&existing)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
            let shown = sanitize(&existing, 200);
            if reply.status != 200 {
                return Err(SignError::Rekor {
                    url: shown,
                    status: reply.status,
                    message: format!(
                        "fetching the existing entry after 409 Conflict: {}",
                        server_message(&reply.body)
                    ),
                });
            }
            parse_entry(&reply.body)
                .map_err(|reason| SignError::RekorResponse { url: shown, reason })
        }
        413 => Err(SignError::TooLargeForLog {
            what: "the entry".into(),
            size,
            max: None,
            status: Some(413),
            detail: server_message(&reply.body),
        }),
        502 if size >= LARGE_REQUEST => Err(SignError::TooLargeForLog {
            what: "the entry".into(),
            size,
            max: None,
            status: Some(502),
            detail: String::new(),
        }),
        status => Err(SignError::Rekor {
            url: shown,
            status,
            message: server_message(&reply.body),
        }),
    }
}

/// The URL of a `Location` header, resolved against the request URL; it must stay on the log's
/// origin (scheme, host and port of `base_url`).
fn resolve_location(
    base_url: &str,
    request_url: &str,
    location: &str,
) -> Result<String, SignError> {
    let base = check_url("Rekor", base_url)?;
    let bad = |reason: &str| SignError::RekorResponse {
        url: sanitize(request_url, 200),
        reason: format!(
            "409 Conflict with Location `{}`: {reason}",
            sanitize(location, 200)
        ),
    };
    let request = reqwest::Url::parse(request_url).map_err(|_| bad("bad request URL"))?;
    let resolved = request
        .join(location)
        .map_err(|e| bad(&format!("not a URL: {e}")))?;
    if resolved.origin() != base.origin() {
        return Err(bad("it points away from the log's origin"));
    }
    Ok(resolved.to_string())
}

/// Maps a Rekor v1 `LogEntry` answer (one UUID key) to a bundle entry (research §2.5).
pub fn parse_entry(body: &[u8]) -> Result<TlogEntry, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(entries) = value else {
        return Err("the body is not a JSON object".into());
    };
    if entries.len() != 1 {
        return Err(format!(
            "the body holds {} entries (exactly one expected)",
            entries.len()
        ));
    }
    let Some((uuid, Value::Object(entry))) = entries.into_iter().next() else {
        return Err("the entry is not a JSON object".into());
    };
    let uuid = sanitize(&uuid, 100);
    let at = |what: &str| format!("entry {uuid}: {what}");

    let body_b64 = string(&entry, "body").map_err(|e| at(&e))?;
    let canonicalized_body = STANDARD
        .decode(body_b64)
        .map_err(|_| at("`body` is not base64"))?;
    let decoded: Value = serde_json::from_slice(&canonicalized_body)
        .map_err(|_| at("`body` does not decode to JSON"))?;
    let kind = decoded
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| at("the decoded body has no `kind`"))?
        .to_string();
    let version = decoded
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| at("the decoded body has no `apiVersion`"))?
        .to_string();

    let integrated_time = entry
        .get("integratedTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| at("`integratedTime` is not an integer"))?;
    let log_index = unsigned(&entry, "logIndex").map_err(|e| at(&e))?;
    let log_id = hash(string(&entry, "logID").map_err(|e| at(&e))?, "logID").map_err(|e| at(&e))?;

    let verification = match entry.get("verification") {
        Some(Value::Object(v)) => v,
        _ => return Err(at("no `verification` object")),
    };
    let set = STANDARD
        .decode(string(verification, "signedEntryTimestamp").map_err(|e| at(&e))?)
        .map_err(|_| at("`signedEntryTimestamp` is not base64"))?;
    let proof = match verification.get("inclusionProof") {
        Some(Value::Object(p)) => p,
        _ => return Err(at("no `verification.inclusionProof` object")),
    };
    let hashes = match proof.get("hashes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            if list.len() > MAX_PROOF_HASHES {
                return Err(at(&format!(
                    "the inclusion proof holds {} hashes (at most {MAX_PROOF_HASHES})",
                    list.len()
                )));
            }
            list.iter()
                .map(|h| {
                    h.as_str()
                        .ok_or_else(|| "an inclusion proof hash is not a string".to_string())
                        .and_then(|h| hash(h, "inclusion proof hash"))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| at(&e))?
        }
        Some(_) => return Err(at("the inclusion proof `hashes` is not a list")),
    };
    let inclusion_proof = InclusionProof {
        log_index: unsigned(proof, "logIndex").map_err(|e| at(&format!("inclusion proof {e}")))?,
        root_hash: hash(string(proof, "rootHash").map_err(|e| at(&e))?, "rootHash")
            .map_err(|e| at(&e))?,
        tree_size: unsigned(proof, "treeSize").map_err(|e| at(&format!("inclusion proof {e}")))?,
        hashes,
        checkpoint: string(proof, "checkpoint").map_err(|e| at(&e))?.to_string(),
    };
    Ok(TlogEntry {
        log_index,
        log_id,
        kind,
        version,
        integrated_time,
        signed_entry_timestamp: Some(set),
        inclusion_proof: Some(inclusion_proof),
        canonicalized_body,
    })
}

fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no `{key}` string"))
}

fn unsigned(object: &Map<String, Value>, key: &str) -> Result<u64, String> {
    object
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("`{key}` is not a non-negative integer"))
}

/// A SHA-256 value in hex (32 bytes).
fn hash(hex_text: &str, what: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(hex_text).map_err(|_| format!("`{what}` is not hex"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "`{what}` is {} bytes (a SHA-256 hash has 32)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Checks that a logged entry is a `dsse` 0.0.1 entry of `envelope`: its payload hash is the
/// SHA-256 of the payload, and it holds each of the envelope's signatures. The error completes
/// "the entry returned for X …".
pub(crate) fn check_entry_matches(
    entry: &TlogEntry,
    envelope: &cnb_dsse::Envelope,
) -> Result<(), String> {
    if entry.kind != KIND || entry.version != API_VERSION {
        return Err(format!(
            "is a `{}` {} entry (`{KIND}` {API_VERSION} expected)",
            sanitize(&entry.kind, 40),
            sanitize(&entry.version, 40)
        ));
    }
    let body: Value = serde_json::from_slice(&entry.canonicalized_body)
        .map_err(|_| "has a body that is not JSON".to_string())?;
    let spec = body.get("spec");
    let payload_hash = spec
        .and_then(|s| s.get("payloadHash"))
        .and_then(|h| h.get("value"))
        .and_then(Value::as_str);
    if payload_hash != Some(sha256_hex(&envelope.payload).as_str()) {
        return Err("does not hold this envelope's payload hash".into());
    }
    let logged: Vec<&str> = spec
        .and_then(|s| s.get("signatures"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| s.get("signature").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    for signature in &envelope.signatures {
        if !logged.contains(&STANDARD.encode(&signature.sig).as_str()) {
            return Err("does not hold this envelope's signature".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::KeylessMaterial;
    use crate::sign::test_server::{answer, serve};
    use std::time::Duration;

    const RESPONSE: &str = include_str!("../testdata/sign-rekor-response.json");
    const BUNDLE: &[u8] = include_bytes!("../testdata/cosign-oci-attestation.sigstore.json");

    fn bundle_entry() -> TlogEntry {
        KeylessMaterial::from_bundle_json(BUNDLE)
            .unwrap()
            .unwrap()
            .tlog_entries
            .remove(0)
    }

    fn bundle_envelope() -> cnb_dsse::Envelope {
        let bundle: Value = serde_json::from_slice(BUNDLE).unwrap();
        cnb_dsse::Envelope::from_json(bundle["dsseEnvelope"].to_string().as_bytes()).unwrap()
    }

    fn client() -> reqwest::Client {
        crate::sign::http_client(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn the_request_has_the_dsse_shape_with_the_envelope_as_a_string() {
        let key = cnb_dsse::SigningKey::generate().unwrap();
        let envelope = cnb_dsse::Envelope::sign(
            cnb_dsse::IN_TOTO_PAYLOAD_TYPE,
            br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
            &key,
        )
        .unwrap();
        let leaf: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let request = dsse_entry_request(&envelope, &leaf);
        let text = std::str::from_utf8(&request).unwrap();
        assert!(
            text.starts_with(
                r#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{\"payloadType\":"#
            ),
            "{text}"
        );
        let value: Value = serde_json::from_slice(&request).unwrap();
        let content = &value["spec"]["proposedContent"];
        assert_eq!(value.as_object().unwrap().len(), 3);
        // The envelope is a string holding exactly our envelope JSON.
        let envelope_string = content["envelope"].as_str().unwrap();
        assert_eq!(envelope_string.as_bytes(), envelope.to_json());
        // One verifier: base64 of the Go/Python PEM layout.
        let verifiers = content["verifiers"].as_array().unwrap();
        assert_eq!(verifiers.len(), 1);
        let pem_text =
            String::from_utf8(STANDARD.decode(verifiers[0].as_str().unwrap()).unwrap()).unwrap();
        assert!(pem_text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem_text.ends_with("\n-----END CERTIFICATE-----\n"));
        let lines: Vec<&str> = pem_text.lines().collect();
        let body = &lines[1..lines.len() - 1];
        assert_eq!(body.len(), 700usize.div_ceil(3) * 4 / 64 + 1);
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body.last().unwrap().len() <= 64);
        assert_eq!(pem::parse(&pem_text).unwrap().contents(), leaf);
    }

    #[test]
    fn the_request_length_is_computed_exactly_without_building_it() {
        let key = cnb_dsse::SigningKey::generate()
            .unwrap()
            .with_keyid("k\"\\\u{1}\n\u{7f}é");
        for (payload_type, payload, leaf_len) in [
            (cnb_dsse::IN_TOTO_PAYLOAD_TYPE, b"{}".to_vec(), 700usize),
            ("t\"y\\p\te\u{0}\u{1f}ü\u{2028}", vec![0u8; 1000], 1),
            ("x", Vec::new(), 0),
            ("x", vec![7u8; 100_001], 48),
            ("x", vec![7u8; 3], 49),
        ] {
            let envelope = cnb_dsse::Envelope::sign(payload_type, payload, &key).unwrap();
            let leaf = vec![0x30u8; leaf_len];
            assert_eq!(
                dsse_entry_request_len(&envelope, &leaf),
                dsse_entry_request(&envelope, &leaf).len() as u64,
                "{payload_type:?} {leaf_len}"
            );
        }
    }

    #[test]
    fn the_pem_matches_the_verifier_in_a_real_rekor_body() {
        // The real entry's canonicalized body holds Rekor's own PEM of the leaf in the bundle.
        let entry = bundle_entry();
        let body: Value = serde_json::from_slice(&entry.canonicalized_body).unwrap();
        let verifier = body["spec"]["signatures"][0]["verifier"].as_str().unwrap();
        let bundle: Value = serde_json::from_slice(BUNDLE).unwrap();
        let leaf = STANDARD
            .decode(
                bundle["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(STANDARD.encode(certificate_pem(&leaf)), verifier);
    }

    #[test]
    fn a_captured_response_maps_to_the_bundle_entry() {
        let entry = parse_entry(RESPONSE.as_bytes()).unwrap();
        assert_eq!(entry.log_index, 175508996);
        assert_eq!(entry.integrated_time, 1740770291);
        assert_eq!(
            entry.log_id,
            hex::decode("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
                .unwrap()
        );
        assert_eq!(
            (entry.kind.as_str(), entry.version.as_str()),
            ("dsse", "0.0.1")
        );
        let proof = entry.inclusion_proof.as_ref().unwrap();
        assert_eq!(proof.log_index, 53604734);
        assert_eq!(proof.tree_size, 53604735);
        assert_eq!(
            proof.root_hash,
            hex::decode("9ddfd5d4813079796ed2b7884066862b5779d715b8463f1f5324eb99c524acc6")
                .unwrap()
        );
        assert_eq!(proof.hashes.len(), 16);
        assert_eq!(
            proof.hashes[0],
            hex::decode("a7b69d06e2f0887cb1140eec8e3c7d26df9827d349ea93d1b2aae516ffcfae5e")
                .unwrap()
        );
        assert_eq!(
            proof.hashes[1],
            hex::decode("57c9135616431d4d2831bf12a221be209cdf8b5fb3b3c934eedee6b1f764dc35")
                .unwrap()
        );
        assert!(proof
            .checkpoint
            .starts_with("rekor.sigstore.dev - 1193050959916656506\n53604735\n"));
        // Exactly the entry the real bundle carries (its proto JSON, read by `bundle`).
        assert_eq!(entry, bundle_entry());
        // And the entry is the real envelope's.
        check_entry_matches(&entry, &bundle_envelope()).unwrap();
    }

    #[test]
    fn an_entry_of_another_envelope_is_noticed() {
        let entry = parse_entry(RESPONSE.as_bytes()).unwrap();
        let mut other = bundle_envelope();
        other.payload.push(b' ');
        assert!(check_entry_matches(&entry, &other)
            .unwrap_err()
            .contains("payload hash"));
        let mut other = bundle_envelope();
        other.signatures[0].sig[5] ^= 1;
        assert!(check_entry_matches(&entry, &other)
            .unwrap_err()
            .contains("signature"));
        let mut intoto = entry.clone();
        intoto.kind = "intoto".into();
        assert!(check_entry_matches(&intoto, &bundle_envelope()).is_err());
    }

    #[test]
    fn malformed_responses_are_refused() {
        let good: Value = serde_json::from_str(RESPONSE).unwrap();
        let (uuid, entry) = good.as_object().unwrap().iter().next().unwrap();
        let mutate = |f: &dyn Fn(&mut Value)| {
            let mut entry = entry.clone();
            f(&mut entry);
            serde_json::json!({ uuid.clone(): entry }).to_string()
        };
        let cases = [
            ("[]".to_string(), "not a JSON object"),
            ("{}".to_string(), "0 entries"),
            (mutate(&|e| e["body"] = "%%".into()), "`body` is not base64"),
            (mutate(&|e| e["body"] = "e30=".into()), "no `kind`"),
            (mutate(&|e| e["logID"] = "abcd".into()), "2 bytes"),
            (mutate(&|e| e["logID"] = "zz".into()), "not hex"),
            (mutate(&|e| e["logIndex"] = (-1).into()), "logIndex"),
            (
                mutate(&|e| e["integratedTime"] = "x".into()),
                "integratedTime",
            ),
            (
                mutate(&|e| e["verification"]["inclusionProof"]["hashes"] = vec!["00"; 65].into()),
                "65 hashes",
            ),
            (
                mutate(&|e| e["verification"]["inclusionProof"]["rootHash"] = "00".into()),
                "rootHash",
            ),
            (
                mutate(&|e| {
                    e["verification"]
                        .as_object_mut()
                        .unwrap()
                        .remove("inclusionProof");
                }),
                "inclusionProof",
            ),
            (
                mutate(&|e| e["verification"]["signedEntryTimestamp"] = 5.into()),
                "signedEntryTimestamp",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_entry(body.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[tokio::test]
    async fn a_201_is_read_into_the_entry_and_the_request_is_json() {
        let (base, seen) = serve(vec![answer(
            "201 Created",
            "etag: 108e9186e8c5677a\r\nlocation: /api/v1/log/entries/108e9186e8c5677a\r\n",
            RESPONSE,
        )])
        .await;
        let entry = upload(&client(), &base, br#"{"kind":"dsse"}"#.to_vec())
            .await
            .unwrap();
        assert_eq!(entry, bundle_entry());
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].line, "POST /api/v1/log/entries HTTP/1.1");
        assert_eq!(seen[0].header("content-type"), Some("application/json"));
        assert_eq!(seen[0].body, br#"{"kind":"dsse"}"#);
    }

    #[tokio::test]
    async fn a_409_fetches_the_existing_entry_at_its_location() {
        let (base, seen) = serve(vec![
            answer(
                "409 Conflict",
                "location: /api/v1/log/entries/108e9186e8c5677a\r\n",
                r#"{"code":409,"message":"an equivalent entry already exists in the transparency log"}"#,
            ),
            answer("200 OK", "", RESPONSE),
        ])
        .await;
        let entry = upload(&client(), &base, b"{}".to_vec()).await.unwrap();
        assert_eq!(entry, bundle_entry());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1].line,
            "GET /api/v1/log/entries/108e9186e8c5677a HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn a_409_pointing_elsewhere_is_refused() {
        let (base, seen) = serve(vec![answer(
            "409 Conflict",
            "location: https://elsewhere.example/api/v1/log/entries/1\r\n",
            "{}",
        )])
        .await;
        let error = upload(&client(), &base, b"{}".to_vec()).await.unwrap_err();
        assert!(
            error.to_string().contains("away from the log's origin"),
            "{error}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_413_is_too_large_for_the_log_and_not_retried() {
        let (base, seen) = serve(vec![answer(
            "413 Payload Too Large",
            "",
            r#"{"code":413,"message":"Request Entity Too Large. Limit set to 10597713"}"#,
        )])
        .await;
        let error = upload(&client(), &base, vec![b'x'; 1000])
            .await
            .unwrap_err();
        match &error {
            SignError::TooLargeForLog {
                size,
                status,
                detail,
                ..
            } => {
                assert_eq!(*size, 1000);
                assert_eq!(*status, Some(413));
                assert!(detail.contains("Limit set to 10597713"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_502_after_a_large_request_is_explained_and_not_retried() {
        let (base, seen) = serve(vec![answer(
            "502 Bad Gateway",
            "",
            "<html>bad gateway</html>",
        )])
        .await;
        let error = upload(&client(), &base, vec![b'x'; LARGE_REQUEST as usize])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                SignError::TooLargeForLog {
                    status: Some(502),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("load balancer"), "{error}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_400_is_a_rekor_error_with_the_sanitised_message() {
        let (base, _seen) = serve(vec![answer(
            "400 Bad Request",
            "",
            r#"{"code":400,"message":"verifying signature: invalid signature when validating ASN.1 encoded signature\r\nforged"}"#,
        )])
        .await;
        let error = upload(&client(), &base, b"{}".to_vec()).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SignError::Rekor { status: 400, .. }),
            "{error:?}"
        );
        assert!(message.contains("invalid signature"), "{message}");
        assert!(message.contains("\\r\\nforged"), "{message}");
    }

    #[tokio::test]
    async fn a_500_is_retried_three_times_then_reported() {
        let answers = (0..4)
            .map(|_| answer("500 Internal Server Error", "", r#"{"message":"db down"}"#))
            .collect();
        let (base, seen) = serve(answers).await;
        let error = upload(&client(), &base, b"{}".to_vec()).await.unwrap_err();
        assert!(
            matches!(error, SignError::Rekor { status: 500, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("db down"));
        assert_eq!(seen.lock().unwrap().len(), 4);
    }
}
