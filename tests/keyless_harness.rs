//! The keyless test harness, proved with independent tools alone: sigstore-python signs against
//! the offline fake Sigstore (`tests/tools/fake-sigstore.js`), and sigstore-python's CLI and
//! `@sigstore/verify` check the bundles. Nothing here uses this project's crates, so a failure
//! is the harness's, not the product's.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use cnb_attest_tests::sigstore::{
    jwt, mint_token, node_sign, node_verify, now, python_sign, python_verify, FakeOptions,
    FakeSigstore, ISSUER, LOG_INDEX_OFFSET,
};
use cnb_attest_tests::{run, text};
use sha2::{Digest, Sha256};

const IDENTITY: &str = "https://ci.cnb-attest.test/workflows/build@refs/heads/main";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The sha256 hex a test image digest would have.
fn subject_hex(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

/// An in-toto statement about `registry.test/app` with a CycloneDX predicate of `components`
/// libraries.
fn statement(subject_sha256_hex: &str, components: usize) -> Vec<u8> {
    let components: Vec<serde_json::Value> = (0..components)
        .map(|i| {
            serde_json::json!({
                "type": "library",
                "name": format!("component-{i}"),
                "version": "1.0.0",
                "purl": format!("pkg:npm/component-{i}@1.0.0"),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.test/app", "digest": {"sha256": subject_sha256_hex}}],
        "predicateType": "https://cyclonedx.org/bom",
        "predicate": {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": components,
        },
    }))
    .unwrap()
}

/// Signs `statement` with sigstore-python as [`IDENTITY`], asserting success.
fn sign(fake: &FakeSigstore, statement: &[u8], out: &Path) -> serde_json::Value {
    let token = mint_token(IDENTITY, ISSUER, 600);
    let output = python_sign(fake, &token, statement, out);
    assert!(
        output.status.success(),
        "sigstore-python could not sign:\n{}",
        text(&output)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn assert_passes(output: std::process::Output, what: &str) {
    assert!(output.status.success(), "{what} failed:\n{}", text(&output));
}

fn assert_fails(output: std::process::Output, what: &str, reason: &str) -> String {
    let report = text(&output);
    assert!(!output.status.success(), "{what} passed:\n{report}");
    assert!(
        report.contains(reason),
        "{what} failed for another reason than {reason:?}:\n{report}"
    );
    report
}

/// `(status, lowercased headers, body)` of an HTTP request made with curl (an independent client).
fn curl(method: &str, url: &str, headers: &[&str], body: Option<&str>) -> (u16, String, String) {
    let scratch = tempfile::tempdir().unwrap();
    let mut command = Command::new("curl");
    command.args(["-s", "-i", "-X", method]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        let file = scratch.path().join("body");
        std::fs::write(&file, body).unwrap();
        command
            .arg("--data-binary")
            .arg(format!("@{}", file.display()));
    }
    let output = run(command.arg(url));
    let response = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_lowercase(), body.to_string())
}

fn tlog_entry(bundle: &serde_json::Value) -> &serde_json::Value {
    let entries = bundle["verificationMaterial"]["tlogEntries"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 1, "{bundle:#}");
    &entries[0]
}

fn int(value: &serde_json::Value) -> u64 {
    value.as_str().unwrap().parse().unwrap()
}

#[test]
fn python_signs_and_both_verifiers_check_identity_and_issuer() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let subject = subject_hex("app image");
    let bundle_path = dir.path().join("app.sigstore.json");
    let bundle = sign(&fake, &statement(&subject, 3), &bundle_path);
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let entry = tlog_entry(&bundle);
    assert_eq!(entry["kindVersion"]["kind"], "dsse");

    assert_passes(
        python_verify(&fake, &bundle_path, IDENTITY, ISSUER, &subject),
        "sigstore verify identity",
    );
    assert_fails(
        python_verify(
            &fake,
            &bundle_path,
            "https://ci.cnb-attest.test/workflows/other@refs/heads/main",
            ISSUER,
            &subject,
        ),
        "sigstore verify identity with another identity",
        "Certificate's SANs do not match",
    );
    assert_fails(
        python_verify(
            &fake,
            &bundle_path,
            IDENTITY,
            "https://other-issuer.cnb-attest.test",
            &subject,
        ),
        "sigstore verify identity with another issuer",
        "Certificate's OIDCIssuer does not match",
    );
    // The statement's subject is checked too: another digest does not pass.
    assert_fails(
        python_verify(
            &fake,
            &bundle_path,
            IDENTITY,
            ISSUER,
            &subject_hex("another image"),
        ),
        "sigstore verify identity of another digest",
        "in-toto statement has no subject for digest",
    );

    let bundles = [bundle_path.clone()];
    assert_passes(
        node_verify(&fake, IDENTITY, ISSUER, &bundles),
        "verify_keyless_bundle.js",
    );
    // A prefix of the identity would match @sigstore/verify's unanchored policy; the script's
    // exact comparison refuses it.
    assert_fails(
        node_verify(&fake, "https://ci.cnb-attest.test/", ISSUER, &bundles),
        "verify_keyless_bundle.js with a prefix of the identity",
        "is not exactly",
    );
    assert_fails(
        node_verify(
            &fake,
            "https://ci.cnb-attest.test/workflows/other@refs/heads/main",
            ISSUER,
            &bundles,
        ),
        "verify_keyless_bundle.js with another identity",
        "FAILED",
    );
    assert_fails(
        node_verify(
            &fake,
            IDENTITY,
            "https://other-issuer.cnb-attest.test",
            &bundles,
        ),
        "verify_keyless_bundle.js with another issuer",
        "issuer",
    );

    // One certificate and one log entry; the request log names no token.
    let requests = fake.requests();
    let calls: Vec<(String, u64)> = requests
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                ),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("POST /api/v2/signingCert".to_string(), 201),
            ("POST /api/v1/log/entries".to_string(), 201)
        ],
        "{requests:?}"
    );
    assert_eq!(fake.log_requests(), 1);
    let log = std::fs::read_to_string(fake.dir.join("requests.jsonl")).unwrap();
    assert!(!log.contains("eyJ"), "the request log holds a token: {log}");
}

#[test]
fn successive_signatures_get_proofs_in_a_growing_merkle_tree() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let subject = subject_hex("growing tree");
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("{i}.sigstore.json")))
        .collect();
    let bundles: Vec<serde_json::Value> = paths
        .iter()
        .map(|path| sign(&fake, &statement(&subject, 1), path))
        .collect();

    // (tree-local index, tree size, proof length) at each signature: RFC 6962 proofs for leaf
    // 0 of 1, leaf 1 of 2, leaf 2 of 3.
    let proofs: Vec<(u64, u64, usize)> = bundles
        .iter()
        .map(|b| {
            let proof = &tlog_entry(b)["inclusionProof"];
            (
                int(&proof["logIndex"]),
                int(&proof["treeSize"]),
                proof["hashes"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(proofs, [(0, 1, 0), (1, 2, 1), (2, 3, 1)]);
    for bundle in &bundles {
        let entry = tlog_entry(bundle);
        // The global index (signed in the SET) and the tree-local one differ, as in production.
        assert_eq!(
            int(&entry["logIndex"]),
            int(&entry["inclusionProof"]["logIndex"]) + LOG_INDEX_OFFSET
        );
        // The checkpoint commits to the proof's tree.
        let checkpoint = entry["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap();
        let lines: Vec<&str> = checkpoint.lines().collect();
        assert_eq!(
            lines[1],
            entry["inclusionProof"]["treeSize"].as_str().unwrap()
        );
        assert_eq!(
            lines[2],
            entry["inclusionProof"]["rootHash"].as_str().unwrap()
        );
        // Origin `<host:port> - <tree ID>` and a signature line named after the host, as Rekor
        // v1 writes them.
        let host = fake.url.strip_prefix("http://").unwrap();
        let (origin_host, tree_id) = lines[0].split_once(" - ").unwrap();
        assert_eq!(origin_host, host);
        assert!(tree_id.parse::<u64>().is_ok(), "{checkpoint}");
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with(&format!("\u{2014} {host} ")),
            "{checkpoint}"
        );
    }
    // The tree grew: each root differs.
    let roots: std::collections::BTreeSet<&str> = bundles
        .iter()
        .map(|b| {
            tlog_entry(b)["inclusionProof"]["rootHash"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(roots.len(), 3);

    // Every proof checks with both verifiers (sigstore-python recomputes the root from the
    // hashes; a wrong path or order would fail).
    for path in &paths {
        assert_passes(
            python_verify(&fake, path, IDENTITY, ISSUER, &subject),
            "sigstore verify identity",
        );
    }
    assert_passes(
        node_verify(&fake, IDENTITY, ISSUER, &paths),
        "verify_keyless_bundle.js",
    );

    // The entries' proofs in the grown tree, from GET: leaves 0 and 1 of 3 have two-hash paths,
    // in an order that matters. Bundles carrying them still verify.
    let refreshed: Vec<PathBuf> = bundles[..2]
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            let bundle = with_current_proof(&fake, bundle);
            let proof = &tlog_entry(&bundle)["inclusionProof"];
            assert_eq!(
                (int(&proof["logIndex"]), int(&proof["treeSize"])),
                (i as u64, 3)
            );
            assert_eq!(proof["hashes"].as_array().unwrap().len(), 2);
            let path = dir.path().join(format!("{i}-refreshed.sigstore.json"));
            std::fs::write(&path, bundle.to_string()).unwrap();
            path
        })
        .collect();
    for path in &refreshed {
        assert_passes(
            python_verify(&fake, path, IDENTITY, ISSUER, &subject),
            "sigstore verify identity with a proof in the grown tree",
        );
    }
    assert_passes(
        node_verify(&fake, IDENTITY, ISSUER, &refreshed),
        "verify_keyless_bundle.js with proofs in the grown tree",
    );

    // A proof with a sibling hash changed no longer verifies.
    let mut forged = bundles[2].clone();
    let hashes = forged["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
        .as_array_mut()
        .unwrap();
    let mut sibling = unb64(hashes[0].as_str().unwrap());
    sibling[0] ^= 1;
    hashes[0] = b64(&sibling).into();
    let forged_path = dir.path().join("forged.sigstore.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    assert_fails(
        python_verify(&fake, &forged_path, IDENTITY, ISSUER, &subject),
        "sigstore verify identity of a forged proof",
        "inclusion proof contains invalid root hash",
    );
    assert_fails(
        node_verify(&fake, IDENTITY, ISSUER, &[forged_path]),
        "verify_keyless_bundle.js of a forged proof",
        "FAILED",
    );
}

/// `bundle` with the inclusion proof of its entry in the current tree, fetched with `GET
/// /api/v1/log/entries/<leaf hash>` and mapped to the bundle's form (research §2.5).
fn with_current_proof(fake: &FakeSigstore, bundle: &serde_json::Value) -> serde_json::Value {
    let body = unb64(tlog_entry(bundle)["canonicalizedBody"].as_str().unwrap());
    let leaf = hex::encode(
        Sha256::new()
            .chain_update([0u8])
            .chain_update(&body)
            .finalize(),
    );
    let (status, _, response) = curl(
        "GET",
        &format!("{}/api/v1/log/entries/{leaf}", fake.url),
        &[],
        None,
    );
    assert_eq!(status, 200, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    let entry = response.as_object().unwrap().values().next().unwrap();
    assert_eq!(entry["body"], tlog_entry(bundle)["canonicalizedBody"]);
    let proof = &entry["verification"]["inclusionProof"];
    let hex_to_b64 = |h: &serde_json::Value| b64(&hex::decode(h.as_str().unwrap()).unwrap());
    let mut bundle = bundle.clone();
    bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] = serde_json::json!({
        "logIndex": proof["logIndex"].to_string(),
        "rootHash": hex_to_b64(&proof["rootHash"]),
        "treeSize": proof["treeSize"].to_string(),
        "hashes": proof["hashes"].as_array().unwrap().iter().map(hex_to_b64).collect::<Vec<_>>(),
        "checkpoint": {"envelope": proof["checkpoint"]},
    });
    bundle
}

#[test]
fn rekor_stores_the_dsse_entry_as_real_rekor_canonicalizes_it() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let subject = subject_hex("canonical body");
    let bundle = sign(
        &fake,
        &statement(&subject, 2),
        &dir.path().join("b.sigstore.json"),
    );
    let envelope = &bundle["dsseEnvelope"];
    let cert = unb64(
        bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap(),
    );
    let body: serde_json::Value = serde_json::from_slice(&unb64(
        tlog_entry(&bundle)["canonicalizedBody"].as_str().unwrap(),
    ))
    .unwrap();
    let payload = unb64(envelope["payload"].as_str().unwrap());
    let pem = {
        let lines: Vec<String> = b64(&cert)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    };
    assert_eq!(body["kind"], "dsse");
    assert_eq!(body["apiVersion"], "0.0.1");
    assert_eq!(
        body["spec"]["payloadHash"],
        serde_json::json!({"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))})
    );
    assert_eq!(
        body["spec"]["signatures"],
        serde_json::json!([{"signature": envelope["signatures"][0]["sig"], "verifier": b64(pem.as_bytes())}])
    );
    assert!(body["spec"].get("proposedContent").is_none());

    // The same envelope submitted by another client, as another string and with its
    // certificate on one PEM line: a new entry whose envelopeHash is the hash of that string,
    // and whose verifier is still the canonical PEM.
    let envelope_text = serde_json::to_string_pretty(&serde_json::json!({
        "payload": envelope["payload"],
        "payloadType": envelope["payloadType"],
        "signatures": [{"keyid": "", "sig": envelope["signatures"][0]["sig"]}],
    }))
    .unwrap();
    let one_line_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64(&cert)
    );
    let proposed = |envelope_text: &str| {
        serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {"proposedContent": {
                "envelope": envelope_text,
                "verifiers": [b64(one_line_pem.as_bytes())],
            }},
        })
        .to_string()
    };
    let entries = format!("{}/api/v1/log/entries", fake.url);
    let json = ["Content-Type: application/json"];
    let (status, headers, response) =
        curl("POST", &entries, &json, Some(&proposed(&envelope_text)));
    assert_eq!(status, 201, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    let (uuid, entry) = response.as_object().unwrap().iter().next().unwrap();
    assert!(
        headers.contains(&format!("location: /api/v1/log/entries/{uuid}")),
        "{headers}"
    );
    assert_eq!(entry["logIndex"], 1 + LOG_INDEX_OFFSET);
    assert_eq!(entry["verification"]["inclusionProof"]["logIndex"], 1);
    assert_eq!(entry["verification"]["inclusionProof"]["treeSize"], 2);
    let body: serde_json::Value =
        serde_json::from_slice(&unb64(entry["body"].as_str().unwrap())).unwrap();
    assert_eq!(
        body["spec"]["envelopeHash"]["value"],
        hex::encode(Sha256::digest(envelope_text.as_bytes()))
    );
    assert_eq!(
        body["spec"]["signatures"][0]["verifier"],
        b64(pem.as_bytes())
    );
    // JCS: sorted keys, no whitespace.
    let raw = String::from_utf8(unb64(entry["body"].as_str().unwrap())).unwrap();
    assert!(raw.starts_with(r#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256","value":""#), "{raw}");
    assert!(!raw.contains(' '), "{raw}");

    // Submitted again: 409 with the Location of the existing entry, which GET returns.
    let (status, headers, _) = curl("POST", &entries, &json, Some(&proposed(&envelope_text)));
    assert_eq!(status, 409);
    assert!(
        headers.contains(&format!("location: /api/v1/log/entries/{uuid}")),
        "{headers}"
    );
    let (status, _, got) = curl("GET", &format!("{entries}/{uuid}"), &[], None);
    assert_eq!(status, 200);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got[uuid]["body"], entry["body"]);
    assert_eq!(got[uuid]["logIndex"], entry["logIndex"]);

    // An envelope whose payload was changed after signing does not verify: 400, nothing logged.
    let mut statement_changed = payload.clone();
    statement_changed.extend_from_slice(b" ");
    let tampered = serde_json::json!({
        "payload": b64(&statement_changed),
        "payloadType": envelope["payloadType"],
        "signatures": [{"keyid": "", "sig": envelope["signatures"][0]["sig"]}],
    })
    .to_string();
    let (status, _, response) = curl("POST", &entries, &json, Some(&proposed(&tampered)));
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("does not verify"), "{response}");
    // Another kind: 400.
    let (status, _, _) = curl(
        "POST",
        &entries,
        &json,
        Some(r#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#),
    );
    assert_eq!(status, 400);
    // The tree did not grow: the next entry is tree index 2.
    let (status, _, response) = curl(
        "POST",
        &entries,
        &json,
        Some(&proposed(&format!("{envelope_text}\n"))),
    );
    assert_eq!(status, 201, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    let entry = response.as_object().unwrap().values().next().unwrap();
    assert_eq!(entry["verification"]["inclusionProof"]["treeSize"], 3);
}

#[test]
fn fulcio_refuses_tokens_a_real_fulcio_would_refuse() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let url = format!("{}/api/v2/signingCert", fake.url);
    let json = "Content-Type: application/json";
    let request = |token: &str| {
        serde_json::json!({
            "credentials": {"oidcIdentityToken": token},
            "certificateSigningRequest": b64(b"not a CSR"),
        })
        .to_string()
    };
    let now = now();
    let cases = [
        ("not-a-jwt".to_string(), "not a JWT"),
        (
            jwt(
                &serde_json::json!({"iss": ISSUER, "sub": IDENTITY, "aud": "other", "iat": now, "exp": now + 600}),
            ),
            "audience",
        ),
        (mint_token(IDENTITY, ISSUER, -60), "expired"),
        (
            jwt(
                &serde_json::json!({"iss": ISSUER, "sub": IDENTITY, "aud": "sigstore", "iat": now}),
            ),
            "exp",
        ),
    ];
    for (token, reason) in &cases {
        let (status, _, body) = curl("POST", &url, &[json], Some(&request(token)));
        assert_eq!(status, 401, "{reason}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], 401);
        assert!(body["message"].as_str().unwrap().contains(reason), "{body}");
    }
    // No token at all.
    let (status, _, _) = curl(
        "POST",
        &url,
        &[json],
        Some(&serde_json::json!({"certificateSigningRequest": b64(b"x")}).to_string()),
    );
    assert_eq!(status, 401);
    // A good token, in the Authorization header and with `aud` a list holding "sigstore", gets
    // past the token checks to the CSR, which this one is not.
    let good = jwt(
        &serde_json::json!({"iss": ISSUER, "sub": IDENTITY, "aud": ["other", "sigstore"], "iat": now, "exp": now + 600}),
    );
    let (status, _, body) = curl(
        "POST",
        &url,
        &[json, &format!("Authorization: Bearer {good}")],
        Some(&serde_json::json!({"certificateSigningRequest": b64(b"x")}).to_string()),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("CSR"), "{body}");
    // sigstore-python refuses an expired token itself before asking Fulcio.
    let dir = tempfile::tempdir().unwrap();
    let output = python_sign(
        &fake,
        &mint_token(IDENTITY, ISSUER, -60),
        &statement(&subject_hex("x"), 0),
        &dir.path().join("b.json"),
    );
    assert!(!output.status.success(), "{}", text(&output));
}

#[test]
fn rekor_max_body_refuses_a_big_entry_with_413() {
    let Some(fake) = FakeSigstore::start_with(FakeOptions {
        rekor_max_body: Some(4096),
        ..FakeOptions::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let subject = subject_hex("size");
    // A small statement fits under the limit...
    let small = dir.path().join("small.sigstore.json");
    sign(&fake, &statement(&subject, 1), &small);
    assert_passes(
        python_verify(&fake, &small, IDENTITY, ISSUER, &subject),
        "sigstore verify identity",
    );
    // ...a big one does not.
    let big = statement(&subject, 100);
    assert!(big.len() > 4096);
    let output = python_sign(
        &fake,
        &mint_token(IDENTITY, ISSUER, 600),
        &big,
        &dir.path().join("big.sigstore.json"),
    );
    assert_fails(output, "sigstore-python signing a big statement", "413");
    assert!(!dir.path().join("big.sigstore.json").exists());
    let requests = fake.requests();
    let last = requests.last().unwrap();
    assert_eq!(last["path"], "/api/v1/log/entries", "{requests:?}");
    assert_eq!(last["status"], 413, "{requests:?}");
    assert!(last["bytes"].as_u64().unwrap() > 4096, "{requests:?}");
    assert_eq!(fake.log_requests(), 2);

    // The refusal is the one rekor PR #2813 returns.
    let (status, _, body) = curl(
        "POST",
        &format!("{}/api/v1/log/entries", fake.url),
        &["Content-Type: application/json"],
        Some(&"x".repeat(5000)),
    );
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"code": 413, "message": "Request Entity Too Large. Limit set to 4096"})
    );
}

#[test]
fn a_backdated_certificate_is_refused_by_sigstore_python_and_expired_at_integration() {
    let Some(fake) = FakeSigstore::start_with(FakeOptions {
        cert_clock_offset: -3600,
        ..FakeOptions::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.sigstore.json");
    let output = python_sign(
        &fake,
        &mint_token(IDENTITY, ISSUER, 600),
        &statement(&subject_hex("late"), 1),
        &out,
    );
    // sigstore-python 4.5.1 checks its (cached) certificate's expiry before signing, so it
    // refuses to sign at all: the certificate was valid from 1 h ago to 50 min ago. (With
    // `cache=False` it would skip that check, but then signs with a key other than the
    // certificate's.) Fulcio issued the certificate; nothing reached Rekor.
    assert_fails(
        output,
        "sigstore-python with a backdated certificate",
        "ExpiredCertificate",
    );
    assert!(!out.exists());
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["path"], "/api/v2/signingCert");
    assert_eq!(requests[0]["status"], 201);
    assert_eq!(fake.log_requests(), 0);

    // sigstore-js signs with it; both verifiers then refuse the bundle: the certificate had
    // expired at Rekor's integrated time. (The second signature, whose inclusion proof has
    // hashes: see `node_sign` on sigstore-python and the first entry of a tree.)
    let token = mint_token(IDENTITY, ISSUER, 600);
    let subject = subject_hex("late");
    let paths: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("js-{i}.sigstore.json")))
        .collect();
    for path in &paths {
        let output = node_sign(&fake, &token, &statement(&subject, 1), path);
        assert_passes(output, "sigstore-js signing with a backdated certificate");
    }
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&paths[1]).unwrap()).unwrap();
    let integrated = int(&tlog_entry(&bundle)["integratedTime"]) as i64;
    assert!((integrated - now()).abs() < 120, "{bundle:#}");
    assert_fails(
        python_verify(&fake, &paths[1], IDENTITY, ISSUER, &subject),
        "sigstore verify identity of a certificate expired at the integrated time",
        "cert is not valid at validation time",
    );
    assert_fails(
        node_verify(&fake, IDENTITY, ISSUER, &paths),
        "verify_keyless_bundle.js of a certificate expired at the integrated time",
        "CERTIFICATE_ERROR",
    );
}

#[test]
fn sigstore_js_signs_with_a_public_key_request_and_both_verifiers_accept_it() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = mint_token(IDENTITY, ISSUER, 600);
    let subject = subject_hex("signed by sigstore-js");
    let paths: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("js-{i}.sigstore.json")))
        .collect();
    for path in &paths {
        assert_passes(
            node_sign(&fake, &token, &statement(&subject, 1), path),
            "sigstore-js signing",
        );
    }
    assert_passes(
        node_verify(&fake, IDENTITY, ISSUER, &paths),
        "verify_keyless_bundle.js",
    );
    assert_passes(
        python_verify(&fake, &paths[1], IDENTITY, ISSUER, &subject),
        "sigstore verify identity",
    );
    // A public-key request whose proof of possession is not over the token's subject: 400.
    let url = format!("{}/api/v2/signingCert", fake.url);
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
    let cert = unb64(
        bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap(),
    );
    // Any DER ECDSA signature will do as a wrong proof: the envelope's, over the PAE.
    let wrong_proof = bundle["dsseEnvelope"]["signatures"][0]["sig"].clone();
    let key = public_key_pem_of(&cert);
    let (status, _, body) = curl(
        "POST",
        &url,
        &["Content-Type: application/json"],
        Some(
            &serde_json::json!({
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": key}, "proofOfPossession": wrong_proof},
            })
            .to_string(),
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("proofOfPossession"), "{body}");
}

/// The PEM public key of a DER certificate, read by openssl (an independent reader).
fn public_key_pem_of(cert_der: &[u8]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("cert.der");
    std::fs::write(&file, cert_der).unwrap();
    let output = run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(&file));
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}
