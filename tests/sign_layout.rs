//! The offline pipeline end to end through the binaries: discover → configure → state → sign →
//! store in an OCI layout → list → verify.

use std::fs;
use std::path::Path;
use std::process::Command;

use cnb_attest_tests::{
    bin, fresh_example, key_pair, ok, run, snapshot, split_image_signatures, text, COSIGN_SIGN_V1,
};
use serde_json::Value;

const PUB: &str = "cnb-attest-throwaway.pub";

fn sign(image: &Path, layers: &Path, keys: &Path, extra: &[&str]) -> String {
    ok(run(Command::new(bin("cnb-attest"))
        .arg("sign")
        .arg(format!("oci:{}", image.display()))
        .arg("--layers")
        .arg(layers)
        .arg("--throwaway-key-dir")
        .arg(keys)
        .args(extra)))
}

fn ls_json(image: &Path) -> Vec<Value> {
    let out = ok(run(Command::new(bin("cnb-attest"))
        .args(["ls", "--json"])
        .arg(format!("oci:{}", image.display()))));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn verify(image: &Path, key: &Path) -> std::process::Output {
    run(Command::new(bin("cnb-attest"))
        .arg("verify")
        .arg(format!("oci:{}", image.display()))
        .arg("--key")
        .arg(key))
}

#[test]
fn signs_the_example_with_a_throwaway_key_and_lists_one_attestation_per_sbom_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(&image, &layers, tmp.path(), &[]);
    let listed = ls_json(&image);
    // By default the image itself is signed too: 7 SBOM attestations + 1 image signature.
    let (attestations, signatures) = split_image_signatures(&listed);
    assert_eq!(attestations.len(), 7, "{listed:#?}");
    assert_eq!(
        signatures.len(),
        1,
        "exactly one image signature: {listed:#?}"
    );
    let mut seen: Vec<(String, String, String)> = attestations
        .iter()
        .map(|l| {
            assert_eq!(l["format"], "bundle");
            assert!(l["problem"].is_null(), "{l}");
            let subjects = l["subjects"].as_array().unwrap();
            // Layer-scoped: the image digest, then `<bp-id>:<layer>` with its diffID.
            assert_eq!(subjects.len(), 2, "{l}");
            let bp = l["buildpack"].as_str().unwrap().to_string();
            let layer = l["layer"].as_str().unwrap().to_string();
            assert!(subjects[1]
                .as_str()
                .unwrap()
                .starts_with(&format!("{bp}:{layer}@sha256:")));
            (bp, layer, l["predicate-type"].as_str().unwrap().to_string())
        })
        .collect();
    seen.sort();
    let expected = [
        (
            "paketo-buildpacks/ca-certificates",
            "helper",
            "https://syft.dev/bom",
        ),
        (
            "paketo-buildpacks/node-engine",
            "node",
            "https://cyclonedx.org/bom",
        ),
        (
            "paketo-buildpacks/node-engine",
            "node",
            "https://spdx.dev/Document",
        ),
        (
            "paketo-buildpacks/node-engine",
            "node",
            "https://syft.dev/bom",
        ),
        (
            "paketo-buildpacks/npm-install",
            "launch-modules",
            "https://cyclonedx.org/bom",
        ),
        (
            "paketo-buildpacks/npm-install",
            "launch-modules",
            "https://spdx.dev/Document",
        ),
        (
            "paketo-buildpacks/npm-install",
            "launch-modules",
            "https://syft.dev/bom",
        ),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(seen, expected);

    // The image signature: a bundle whose only subject is the image (the attestations' first
    // subject), with no buildpack or layer.
    let signature = &signatures[0];
    assert_eq!(signature["format"], "bundle", "{signature}");
    assert!(signature["problem"].is_null(), "{signature}");
    assert!(signature["buildpack"].is_null() && signature["layer"].is_null());
    assert!(signature["sbom-media-type"].is_null(), "{signature}");
    let image_subject = &attestations[0]["subjects"][0];
    assert!(attestations
        .iter()
        .all(|a| &a["subjects"][0] == image_subject));
    assert_eq!(
        signature["subjects"],
        Value::Array(vec![image_subject.clone()]),
        "{signature}"
    );
    assert_image_signature_as_stored(&image, signature);

    let verified = verify(&image, &tmp.path().join(PUB));
    assert!(verified.status.success(), "{}", text(&verified));
    let report = text(&verified);
    assert_eq!(
        report.matches("verified  sha256:").count(),
        8,
        "7 attestations + the image signature: {report}"
    );
    let signature_line = format!(
        "verified  {} (no buildpack, {COSIGN_SIGN_V1}, bundle)",
        signature["manifest-digest"].as_str().unwrap()
    );
    assert!(report.contains(&signature_line), "{report}");
}

/// Reads the image signature back from the layout by hand (no cnb-attest code): its `index.json`
/// entry and manifest carry no `io.buildpacks.*` annotation, and the bundle's signed statement has
/// predicate type sign/v1, the predicate `{}` and the image digest as its single subject.
fn assert_image_signature_as_stored(image: &Path, signature: &Value) {
    use base64::Engine as _;
    let digest = signature["manifest-digest"].as_str().unwrap();
    let index: Value =
        serde_json::from_slice(&fs::read(image.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == digest)
        .unwrap_or_else(|| panic!("{digest} not in index.json"));
    let image_digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].is_string())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value =
        serde_json::from_slice(&fs::read(image.join("blobs/sha256").join(&digest[7..])).unwrap())
            .unwrap();
    assert_eq!(manifest["subject"]["digest"], image_digest.as_str());
    for annotations in [&entry["annotations"], &manifest["annotations"]] {
        let names: Vec<&String> = annotations
            .as_object()
            .map(|a| a.keys().collect())
            .unwrap_or_default();
        assert!(
            names.iter().all(|n| !n.starts_with("io.buildpacks.")),
            "{names:?}"
        );
    }
    assert_eq!(
        entry["annotations"]["dev.sigstore.bundle.predicateType"],
        COSIGN_SIGN_V1
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    let layer = &manifest["layers"][0]["digest"].as_str().unwrap()[7..];
    let bundle: Value =
        serde_json::from_slice(&fs::read(image.join("blobs/sha256").join(layer)).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], COSIGN_SIGN_V1);
    assert_eq!(statement["predicate"], serde_json::json!({}));
    let subjects = statement["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 1, "{statement}");
    assert_eq!(
        format!(
            "sha256:{}",
            subjects[0]["digest"]["sha256"].as_str().unwrap()
        ),
        image_digest
    );
}

#[test]
fn signing_twice_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let first = sign(
        &image,
        &layers,
        tmp.path(),
        &["--format", "bundle,dsse", "--json"],
    );
    let first: Value = serde_json::from_str(&first).unwrap();
    // 7 attestations in 2 formats, and the image signature once (always a bundle).
    assert_eq!(first["pushed"], 7 * 2 + 1, "{first:#}");
    let index_after_first = fs::read(image.join("index.json")).unwrap();
    let tree_after_first = snapshot(&image);
    let report = sign(
        &image,
        &layers,
        tmp.path(),
        &["--format", "bundle,dsse", "--json"],
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["pushed"], 0, "{report:#}");
    assert_eq!(
        report["already-present"],
        7 * 2 + 1,
        "7 attestations × 2 formats + 1 image signature"
    );
    assert_eq!(report["blobs-written"], 0);
    let (attestations, signatures) =
        split_image_signatures(report["attestations"].as_array().unwrap());
    assert_eq!(attestations.len(), 14, "{report:#}");
    for format in ["bundle", "dsse"] {
        assert_eq!(
            attestations
                .iter()
                .filter(|a| a["format"] == format)
                .count(),
            7,
            "{report:#}"
        );
    }
    assert_eq!(signatures.len(), 1, "{report:#}");
    assert_eq!(signatures[0]["format"], "bundle");
    assert_eq!(signatures[0]["index"], 0);
    assert_eq!(signatures[0]["status"], "already-present");
    assert!(signatures[0]["buildpack"].is_null() && signatures[0]["layer"].is_null());
    assert_eq!(
        fs::read(image.join("index.json")).unwrap(),
        index_after_first
    );
    assert_eq!(snapshot(&image), tree_after_first);
}

#[test]
fn flipping_one_byte_of_a_stored_envelope_fails_verification_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(&image, &layers, tmp.path(), &[]);
    let listed = ls_json(&image);
    let victim = listed
        .iter()
        .find(|l| {
            l["layer"] == "launch-modules" && l["predicate-type"] == "https://spdx.dev/Document"
        })
        .unwrap();
    let manifest_digest = victim["manifest-digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &fs::read(image.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let blob = image
        .join("blobs/sha256")
        .join(&manifest["layers"][0]["digest"].as_str().unwrap()[7..]);
    let mut bytes = fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&blob, bytes).unwrap();

    let out = verify(&image, &tmp.path().join(PUB));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = text(&out);
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains(manifest_digest), "{report}");
    assert!(
        failed[0].contains("paketo-buildpacks/npm-install:launch-modules"),
        "{report}"
    );
    assert!(failed[0].contains("https://spdx.dev/Document"), "{report}");
    // The 6 untouched attestations and the image signature still verify.
    assert_eq!(report.matches("verified  sha256:").count(), 7, "{report}");
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("verified  ") && l.contains(COSIGN_SIGN_V1))
            .count(),
        1,
        "{report}"
    );
}

#[test]
fn exporter_then_signer_then_verify_with_a_cosign_key_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    key_pair(&keys, "correct horse");
    let exported = ok(run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&layers)
        .arg("-layout-image")
        .arg(format!("oci:{}:latest", image.display()))
        .args(["-image", "registry.example/team/node-express:1.0"])));
    assert!(exported.contains("Wrote 7 attestation(s)"), "{exported}");
    let config = fs::read_to_string(layers.join("signer.toml")).unwrap();
    assert!(
        config.contains("[[attestations.statement.subject]]"),
        "{config}"
    );
    assert!(
        config.contains("name = \"registry.example/team/node-express\""),
        "{config}"
    );

    let signed = ok(run(Command::new(bin("signer"))
        .arg("-layers")
        .arg(&layers)
        .arg("-key")
        .arg(keys.join("cosign.key"))
        .args(["-format", "dsse"])
        .env("COSIGN_PASSWORD", "correct horse")));
    // 7 dsse attestations + the image signature (a bundle whatever `-format` says).
    assert!(
        signed.contains("Attached 8 attestation referrer(s)"),
        "{signed}"
    );
    let report = fs::read_to_string(layers.join("signer-report.toml")).unwrap();
    assert_eq!(report.matches("status = \"pushed\"").count(), 8, "{report}");
    assert_eq!(
        report
            .matches(&format!("predicate-type = \"{COSIGN_SIGN_V1}\""))
            .count(),
        1,
        "{report}"
    );

    let out = verify(&image, &keys.join("cosign.pub"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("verified  sha256:").count(), 8);
    let listed = ls_json(&image);
    let (attestations, signatures) = split_image_signatures(&listed);
    assert_eq!(attestations.len(), 7, "{listed:#?}");
    assert!(attestations.iter().all(|l| l["format"] == "dsse"));
    assert_eq!(signatures.len(), 1, "{listed:#?}");
    assert_eq!(signatures[0]["format"], "bundle");
    // Every subject naming the image uses the configured name, the signature's too.
    assert!(listed.iter().all(|l| l["subjects"][0]
        .as_str()
        .unwrap()
        .starts_with("registry.example/team/node-express@sha256:")));
    assert_eq!(signatures[0]["subjects"].as_array().unwrap().len(), 1);
}

#[test]
fn a_different_key_does_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(&image, &layers, tmp.path(), &[]);
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    key_pair(&other, "");
    let out = verify(&image, &other.join("cosign.pub"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = text(&out);
    // 7 attestations + the image signature, all signed with the other key.
    assert_eq!(report.matches("signature does not verify").count(), 8);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("FAILED") && l.contains(COSIGN_SIGN_V1)),
        "{report}"
    );
    assert!(!report.contains("verified  "), "{report}");
}

#[test]
fn statement_v0_1_on_request_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(
        &image,
        &layers,
        tmp.path(),
        &["--statement-version", "v0.1"],
    );
    let out = verify(&image, &tmp.path().join(PUB));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn verify_on_an_image_without_attestations_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let keys = tmp.path().join("k");
    fs::create_dir(&keys).unwrap();
    key_pair(&keys, "");
    let out = verify(&image, &keys.join("cosign.pub"));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no attestations"), "{}", text(&out));
}

/// Rewrites one stored bundle so that every digest is consistent again (blob, manifest, index) but
/// one byte of the signed payload differs: only the signature check can catch it.
#[test]
fn a_tampered_payload_with_consistent_digests_fails_the_signature_check() {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(&image, &layers, tmp.path(), &[]);
    let blobs = image.join("blobs/sha256");
    let digest_of = |bytes: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(bytes)));

    let mut index: Value =
        serde_json::from_slice(&fs::read(image.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| {
            m["annotations"]["io.buildpacks.layer.name"] == "node"
                && m["annotations"]["dev.sigstore.bundle.predicateType"]
                    == "https://cyclonedx.org/bom"
        })
        .unwrap();
    let old_manifest_digest = entry["digest"].as_str().unwrap().to_string();
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(blobs.join(&old_manifest_digest[7..])).unwrap()).unwrap();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bundle: Value =
        serde_json::from_slice(&fs::read(blobs.join(&layer_digest[7..])).unwrap()).unwrap();
    let mut payload = b64
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    // One byte inside the SBOM text, keeping the JSON well formed.
    let at = payload
        .windows(9)
        .position(|w| w == b"CycloneDX")
        .expect("a CycloneDX statement")
        + 8;
    payload[at] = b'Y';
    bundle["dsseEnvelope"]["payload"] = Value::String(b64.encode(&payload));
    let bundle_bytes = serde_json::to_vec(&bundle).unwrap();
    fs::write(blobs.join(&digest_of(&bundle_bytes)[7..]), &bundle_bytes).unwrap();
    manifest["layers"][0]["digest"] = Value::String(digest_of(&bundle_bytes));
    manifest["layers"][0]["size"] = Value::from(bundle_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    fs::write(
        blobs.join(&digest_of(&manifest_bytes)[7..]),
        &manifest_bytes,
    )
    .unwrap();
    entry["digest"] = Value::String(digest_of(&manifest_bytes));
    entry["size"] = Value::from(manifest_bytes.len());
    let new_digest = entry["digest"].as_str().unwrap().to_string();
    fs::write(
        image.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let out = verify(&image, &tmp.path().join(PUB));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = text(&out);
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains(&new_digest), "{report}");
    assert!(failed[0].contains("signature does not verify"), "{report}");
}
