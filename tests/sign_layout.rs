//! The offline pipeline end to end through the binaries: discover → configure → state → sign →
//! store in an OCI layout → list → verify.

use std::fs;
use std::path::Path;
use std::process::Command;

use cnb_attest_tests::{bin, fresh_example, key_pair, ok, run, snapshot, text};
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
    assert_eq!(listed.len(), 7, "{listed:#?}");
    let mut seen: Vec<(String, String, String)> = listed
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

    let verified = verify(&image, &tmp.path().join(PUB));
    assert!(verified.status.success(), "{}", text(&verified));
    assert_eq!(text(&verified).matches("verified  sha256:").count(), 7);
}

#[test]
fn signing_twice_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    sign(&image, &layers, tmp.path(), &["--format", "bundle,dsse"]);
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
    assert_eq!(report["already-present"], 14);
    assert_eq!(report["blobs-written"], 0);
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
    assert_eq!(report.matches("verified  sha256:").count(), 6);
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
    assert!(
        signed.contains("Attached 7 attestation referrer(s)"),
        "{signed}"
    );
    let report = fs::read_to_string(layers.join("signer-report.toml")).unwrap();
    assert_eq!(report.matches("status = \"pushed\"").count(), 7, "{report}");

    let out = verify(&image, &keys.join("cosign.pub"));
    assert!(out.status.success(), "{}", text(&out));
    let listed = ls_json(&image);
    assert!(listed.iter().all(|l| l["format"] == "dsse"));
    assert!(listed.iter().all(|l| l["subjects"][0]
        .as_str()
        .unwrap()
        .starts_with("registry.example/team/node-express@sha256:")));
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
    assert_eq!(text(&out).matches("signature does not verify").count(), 7);
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
