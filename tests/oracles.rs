//! Interoperability: what cnb-attest stores is checked by tools this project did not write.
//!
//! * securesystemslib verifies every DSSE envelope (and rejects a tampered one);
//! * @sigstore/verify verifies every Sigstore bundle with the public key (and rejects a tampered one);
//! * every predicate read back is byte-identical to its SBOM file, and the CycloneDX and SPDX ones
//!   pass cyclonedx-python-lib and spdx-tools validation.
//!
//! The image signature signing also stores (a sign/v1 bundle) is told apart by predicate type: both
//! verifiers check it as well; the predicate checks are for the SBOM attestations only.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cnb_attest_tests::{
    bin, fresh_example, fresh_spring_boot, node_modules, ok, oracle, python, run, sbom_files, text,
    COSIGN_SIGN_V1,
};
use cnb_referrers::format::{decode_layer, MAX_ATTESTATION_BLOB};
use cnb_referrers::layout::OciLayout;
use cnb_referrers::StorageFormat;

struct Signed {
    _tmp: tempfile::TempDir,
    layers: PathBuf,
    public_key: PathBuf,
    /// The SBOM attestations: (format, layer blob path, decoded envelope, manifest annotations)
    stored: Vec<(
        StorageFormat,
        PathBuf,
        cnb_dsse::Envelope,
        BTreeMap<String, String>,
    )>,
    /// The image signature's bundle: its layer blob path and decoded envelope.
    image_signature: (PathBuf, cnb_dsse::Envelope),
}

fn signed_example() -> Signed {
    signed(fresh_example)
}

fn signed(make: fn(&Path) -> (PathBuf, PathBuf)) -> Signed {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = make(tmp.path());
    ok(run(Command::new(bin("cnb-attest"))
        .arg("sign")
        .arg(format!("oci:{}", image.display()))
        .arg("--layers")
        .arg(&layers)
        .arg("--throwaway-key-dir")
        .arg(tmp.path())
        .args(["--format", "bundle,dsse"])));
    let layout = OciLayout::open(&image).unwrap();
    let subject = layout.resolve_image(Some("latest")).unwrap();
    let mut stored = Vec::new();
    let mut signatures = Vec::new();
    for (_, manifest) in layout.referrers(&subject.digest).unwrap() {
        let format = StorageFormat::detect(&manifest).unwrap();
        let layer = &manifest.layers[0];
        let bytes = layout
            .read_blob(&layer.digest, MAX_ATTESTATION_BLOB)
            .unwrap();
        let envelope = decode_layer(format, &bytes).unwrap().envelope;
        let annotations = manifest.annotations.clone().unwrap_or_default();
        let statement = cnb_intoto::Statement::from_json(&envelope.payload).unwrap();
        if statement.predicate_type() == COSIGN_SIGN_V1 {
            // The image signature: a bundle (whatever --format says) of an empty predicate about
            // the image alone, with no buildpacks annotation.
            assert_eq!(format, StorageFormat::Bundle);
            assert_eq!(statement.predicate(), b"{}");
            let subjects = statement.subjects();
            assert_eq!(subjects.len(), 1);
            assert_eq!(
                subjects[0].digest.get("sha256").map(String::as_str),
                Some(subject.digest.hex())
            );
            assert!(
                annotations.keys().all(|k| !k.starts_with("io.buildpacks.")),
                "{annotations:?}"
            );
            signatures.push((layout.blob_path(&layer.digest), envelope));
        } else {
            stored.push((
                format,
                layout.blob_path(&layer.digest),
                envelope,
                annotations,
            ));
        }
    }
    assert_eq!(stored.len(), 2 * sbom_files(&layers).len());
    assert_eq!(signatures.len(), 1, "exactly one image signature");
    Signed {
        public_key: tmp.path().join("cnb-attest-throwaway.pub"),
        layers,
        stored,
        image_signature: signatures.remove(0),
        _tmp: tmp,
    }
}

fn blobs_of(signed: &Signed, format: StorageFormat) -> Vec<PathBuf> {
    signed
        .stored
        .iter()
        .filter(|(f, ..)| *f == format)
        .map(|(_, path, ..)| path.clone())
        .collect()
}

/// A copy of `path` with one byte of the signed payload changed (re-encoded, so it still parses).
fn tampered_copy(path: &Path, dir: &Path, bundle: bool) -> PathBuf {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut value: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let envelope = if bundle {
        &mut value["dsseEnvelope"]
    } else {
        &mut value
    };
    let mut payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let last = payload.len() - 2;
    payload[last] ^= 0x20;
    envelope["payload"] = serde_json::Value::String(b64.encode(payload));
    let out = dir.join("tampered.json");
    fs::write(&out, serde_json::to_vec(&value).unwrap()).unwrap();
    out
}

#[test]
fn securesystemslib_verifies_every_dsse_envelope_and_rejects_a_tampered_one() {
    let Some(python) = python() else { return };
    let signed = signed_example();
    let envelopes = blobs_of(&signed, StorageFormat::Dsse);
    assert_eq!(envelopes.len(), 7);
    // The image signature is stored only as a bundle: its DSSE envelope, taken out of the bundle,
    // is checked by securesystemslib too.
    let tmp = tempfile::tempdir().unwrap();
    let bundle: serde_json::Value =
        serde_json::from_slice(&fs::read(&signed.image_signature.0).unwrap()).unwrap();
    let mut envelope = bundle["dsseEnvelope"].clone();
    // A bundle's envelope omits the empty `keyid` (protobuf JSON), which securesystemslib
    // requires; `keyid` is not covered by the signature.
    for signature in envelope["signatures"].as_array_mut().unwrap() {
        if signature.get("keyid").is_none() {
            signature["keyid"] = serde_json::Value::from("");
        }
    }
    let signature_envelope = tmp.path().join("image-signature.dsse.json");
    fs::write(&signature_envelope, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let out = ok(run(Command::new(&python)
        .arg(oracle("dsse_verify.py"))
        .arg(&signed.public_key)
        .args(&envelopes)
        .arg(&signature_envelope)));
    assert_eq!(
        out.matches("verified ").count(),
        8,
        "7 attestations + the image signature: {out}"
    );
    assert!(
        out.contains(&format!("verified {}", signature_envelope.display())),
        "{out}"
    );
    assert_eq!(
        signed.image_signature.1.payload_type,
        "application/vnd.in-toto+json"
    );

    let tmp = tempfile::tempdir().unwrap();
    let bad = tampered_copy(&envelopes[0], tmp.path(), false);
    let out = run(Command::new(&python)
        .arg(oracle("dsse_verify.py"))
        .arg(&signed.public_key)
        .arg(&bad));
    assert!(
        !out.status.success(),
        "tampering went unnoticed: {}",
        text(&out)
    );
    assert!(text(&out).contains("FAILED"), "{}", text(&out));
    let bad = tampered_copy(&signature_envelope, tmp.path(), false);
    let out = run(Command::new(&python)
        .arg(oracle("dsse_verify.py"))
        .arg(&signed.public_key)
        .arg(&bad));
    assert!(
        !out.status.success() && text(&out).contains("FAILED"),
        "a tampered image signature went unnoticed: {}",
        text(&out)
    );
}

#[test]
fn sigstore_verify_accepts_every_bundle_and_rejects_a_tampered_one() {
    let Some(modules) = node_modules() else {
        return;
    };
    let signed = signed_example();
    let bundles = blobs_of(&signed, StorageFormat::Bundle);
    assert_eq!(bundles.len(), 7);
    let signature = &signed.image_signature.0;
    let out = ok(run(Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(oracle("verify_bundle.js"))
        .arg(&signed.public_key)
        .args(&bundles)
        .arg(signature)));
    assert_eq!(
        out.matches("verified ").count(),
        8,
        "7 attestations + the image signature: {out}"
    );
    assert!(
        out.contains(&format!("verified {}", signature.display())),
        "{out}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let bad = tampered_copy(&bundles[0], tmp.path(), true);
    let out = run(Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(oracle("verify_bundle.js"))
        .arg(&signed.public_key)
        .arg(&bad));
    assert!(
        !out.status.success(),
        "tampering went unnoticed: {}",
        text(&out)
    );
    let bad = tampered_copy(signature, tmp.path(), true);
    let out = run(Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(oracle("verify_bundle.js"))
        .arg(&signed.public_key)
        .arg(&bad));
    assert!(
        !out.status.success(),
        "a tampered image signature went unnoticed: {}",
        text(&out)
    );
}

/// The one finding spdx-tools reports on Paketo's packit-made SPDX 2.2 documents as shipped: an
/// empty `packageVerificationCodeValue`. It is in the buildpack's output, not ours.
const UPSTREAM_SPDX_DEFECT: &str = "value of verification_code must consist of 40 lowercase hexadecimal digits, but is:  (length: 0 digits)";

/// Validates `files`, returning `file -> findings` (empty when valid).
fn validate(python: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    let out = run(Command::new(python)
        .arg(oracle("validate_sbom.py"))
        .args(files));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut findings = BTreeMap::new();
    for line in report.lines() {
        if let Some(path) = line.strip_prefix("valid ") {
            findings.insert(PathBuf::from(path), String::new());
        } else if let Some(rest) = line.strip_prefix("INVALID ") {
            let (path, problems) = rest.split_once(": ").unwrap();
            findings.insert(PathBuf::from(path), problems.to_string());
        }
    }
    assert_eq!(
        findings.len(),
        files.len(),
        "validator output:\n{}",
        text(&out)
    );
    findings
}

#[test]
fn restored_predicates_are_byte_identical_and_validate_as_their_originals_do() {
    let python = python();
    let mut valid = 0;
    for make in [
        fresh_example as fn(&Path) -> (PathBuf, PathBuf),
        fresh_spring_boot,
    ] {
        let signed = signed(make);
        let originals = sbom_files(&signed.layers);
        let tmp = tempfile::tempdir().unwrap();
        let mut pairs = Vec::new();
        for (format, _, envelope, annotations) in &signed.stored {
            let statement = cnb_intoto::Statement::from_json(&envelope.payload).unwrap();
            let bp = annotations["io.buildpacks.buildpack.id"].replace('/', "_");
            let dir = match annotations.get("io.buildpacks.layer.name") {
                Some(layer) => format!("{bp}/{layer}"),
                None => bp.clone(),
            };
            let ext = match statement.predicate_type() {
                "https://cyclonedx.org/bom" => "cdx.json",
                "https://spdx.dev/Document" => "spdx.json",
                "https://syft.dev/bom" => "syft.json",
                other => panic!("unexpected predicate type {other}"),
            };
            let rel = format!("{dir}/sbom.{ext}");
            let original = originals
                .get(&rel)
                .unwrap_or_else(|| panic!("no original for {rel}"));
            assert!(
                statement.predicate() == original.as_slice(),
                "{format} predicate for {rel} differs from the file"
            );
            if *format == StorageFormat::Bundle && ext != "syft.json" {
                let restored = tmp.path().join(format!("{}.{ext}", rel.replace('/', "-")));
                fs::write(&restored, statement.predicate()).unwrap();
                pairs.push((signed.layers.join("sbom/launch").join(&rel), restored));
            }
        }
        let Some(python) = &python else { continue };
        let restored: Vec<PathBuf> = pairs.iter().map(|(_, r)| r.clone()).collect();
        let originals: Vec<PathBuf> = pairs.iter().map(|(o, _)| o.clone()).collect();
        let restored_findings = validate(python, &restored);
        let original_findings = validate(python, &originals);
        for (original, restored) in &pairs {
            let found = &restored_findings[restored];
            assert_eq!(
                found,
                &original_findings[original],
                "{}",
                restored.display()
            );
            if found.is_empty() {
                valid += 1;
            } else {
                assert!(
                    found.contains(UPSTREAM_SPDX_DEFECT)
                        && original.to_string_lossy().ends_with(".spdx.json"),
                    "{}: {found}",
                    restored.display()
                );
            }
        }
    }
    if let Some(python) = &python {
        // node-express: 2 CycloneDX; spring-boot: 2 CycloneDX + 1 SPDX 2.3 (the launcher's).
        assert_eq!(valid, 5);
        // The validators can fail: a CycloneDX document with a wrong type must be rejected.
        let tmp = tempfile::tempdir().unwrap();
        let broken = tmp.path().join("broken.cdx.json");
        fs::write(
            &broken,
            br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":"one"}"#,
        )
        .unwrap();
        assert!(!validate(python, std::slice::from_ref(&broken))[&broken].is_empty());
    }
}
