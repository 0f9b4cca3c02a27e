//! Keyless signing and verification end to end, against the offline fake Sigstore
//! (`tests/tools/fake-sigstore.js`: Fulcio and CT log from `@sigstore/mock`, a Rekor v1 with a
//! real Merkle tree): the signer phase and `cnb-attest sign` keyless on a layout and on both
//! registries; `verify`, `download` and the analyzer with an identity policy; what we sign checked
//! by sigstore-python and `@sigstore/verify`, what sigstore-python signs verified and restored by
//! us; and each forgery failing closed with a message that names the rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::signed::SignedImage;
use cnb_attest_tests::sigstore::{
    mint_token, node_verify, python_sign, python_sign_with, python_verify, FakeOptions,
    FakeSigstore, ISSUER,
};
use cnb_attest_tests::{bin, fresh_example, run, sbom_files, snapshot, text};
use serde_json::Value;

const IDENTITY: &str = "https://ci.cnb-attest.test/workflows/build@refs/heads/main";
const OTHER_IDENTITY: &str = "https://ci.cnb-attest.test/workflows/other@refs/heads/main";
const OTHER_ISSUER: &str = "https://other-issuer.cnb-attest.test";

/// A token file for `IDENTITY`, and the token (to check that nothing prints it).
fn token_file(dir: &Path) -> (PathBuf, String) {
    let token = mint_token(IDENTITY, ISSUER, 600);
    let path = dir.join("oidc-token");
    fs::write(&path, &token).unwrap();
    (path, token)
}

/// The flags that sign keyless with `fake` (single-dash phase spelling works for the CLI too).
fn keyless_flags(fake: &FakeSigstore, token: &Path) -> Vec<String> {
    vec![
        "--keyless".into(),
        "--identity-token-file".into(),
        token.display().to_string(),
        "--trust-config".into(),
        fake.trust_config().display().to_string(),
    ]
}

/// The flags that verify keyless attestations signed for `identity` by `issuer` through `fake`.
fn identity_flags(fake: &FakeSigstore, identity: &str, issuer: &str) -> Vec<String> {
    vec![
        "--certificate-identity".into(),
        identity.into(),
        "--certificate-oidc-issuer".into(),
        issuer.into(),
        "--trusted-root".into(),
        fake.trusted_root().display().to_string(),
    ]
}

fn cli(args: &[String], registry: Option<&Registry>) -> Output {
    let mut command = Command::new(bin("cnb-attest"));
    command.args(args).env("DOCKER_CONFIG", "/nonexistent");
    if let Some(r) = registry {
        command
            .env("CNB_REGISTRY_AUTH", r.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &r.host);
    }
    run(&mut command)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The image's verdicts from `verify --json`.
fn verdicts(out: &Output) -> Vec<Value> {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(out)))
}

/// Exports the example's signer configuration for `image` (a layout, or a registry reference
/// with `report.toml`) and runs the signer phase keyless; returns its output.
fn export_and_sign(
    layers: &Path,
    image_layout: &Path,
    target: Target<'_>,
    fake: &FakeSigstore,
    token: &Path,
) -> Output {
    let label = layers.join("label.json");
    let layout = cnb_referrers::layout::OciLayout::open(image_layout).unwrap();
    let descriptor = layout.resolve_image(None).unwrap();
    fs::write(
        &label,
        &layout.read_image(&descriptor).unwrap().config.labels["io.buildpacks.lifecycle.metadata"],
    )
    .unwrap();
    let mut exporter = Command::new(bin("exporter"));
    exporter.arg("-layers").arg(layers);
    match target {
        Target::Layout => {
            exporter
                .arg("-layout-image")
                .arg(format!("oci:{}:latest", image_layout.display()))
                .args(["-image", "registry.example/team/node-express:1.0"]);
        }
        Target::Registry(registry, reference) => {
            let digest = registry.digest_of(reference);
            fs::write(
                layers.join("report.toml"),
                format!("[image]\n  tags = [\"{reference}\"]\n  digest = \"{digest}\"\n"),
            )
            .unwrap();
            exporter.arg("-image-label").arg(&label);
        }
    }
    let exported = run(&mut exporter);
    assert!(exported.status.success(), "{}", text(&exported));
    let mut signer = Command::new(bin("signer"));
    signer
        .arg("-layers")
        .arg(layers)
        .args(keyless_flags(fake, token))
        .env("DOCKER_CONFIG", "/nonexistent");
    if let Target::Registry(registry, _) = target {
        // Every registry request logged: the token must not be among what is printed.
        signer
            .arg("-debug")
            .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &registry.host);
    }
    run(&mut signer)
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Layout,
    Registry(&'a Registry, &'a str),
}

/// The bundle blobs of every bundle referrer `ls --json` lists, read from the layout.
fn layout_bundles(layout: &Path, listed: &[Value], out: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(out).unwrap();
    let mut bundles = Vec::new();
    for entry in listed {
        if entry["format"] != "bundle" {
            continue;
        }
        let digest = entry["manifest-digest"].as_str().unwrap();
        let manifest: Value = serde_json::from_slice(
            &fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap(),
        )
        .unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let path = out.join(format!("{}.sigstore.json", &layer[7..19]));
        fs::copy(layout.join("blobs/sha256").join(&layer[7..]), &path).unwrap();
        bundles.push(path);
    }
    bundles
}

/// Signed keyless on a layout by the signer phase: every bundle verifies with sigstore-python
/// and `@sigstore/verify` (identity and issuer exact), and with ours; `download` and the analyzer
/// restore every SBOM byte for byte; another identity, another issuer, or a regexp that matches
/// only unanchored fail closed. The token appears in no output.
#[test]
fn keyless_on_a_layout_verifies_with_sigstore_python_and_sigstore_js_and_restores() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let (token_path, token) = token_file(tmp.path());
    let mut everything = String::new();
    let signed = export_and_sign(&layers, &image, Target::Layout, &fake, &token_path);
    everything.push_str(&text(&signed));
    assert!(signed.status.success(), "{}", text(&signed));
    assert!(
        text(&signed).contains("Attached 8 attestation referrer(s)"),
        "{}",
        text(&signed)
    );
    // 7 SBOMs and the image signature: one certificate, 8 log entries.
    assert_eq!(fake.log_requests(), 8, "{:?}", fake.requests());
    let certificates = fake
        .requests()
        .iter()
        .filter(|r| r["path"] == "/api/v2/signingCert")
        .count();
    assert_eq!(
        certificates,
        1,
        "one certificate per run: {:?}",
        fake.requests()
    );
    let target = format!("oci:{}:latest", image.display());

    let listed = cli(&strings(&["ls", "--json", &target]), None);
    everything.push_str(&text(&listed));
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let bundles = layout_bundles(&image, &listed, &tmp.path().join("bundles"));
    assert_eq!(bundles.len(), 8);
    let digest = cnb_referrers::layout::OciLayout::open(&image)
        .unwrap()
        .resolve_image(None)
        .unwrap()
        .digest
        .hex()
        .to_string();
    for bundle in &bundles {
        let out = python_verify(&fake, bundle, IDENTITY, ISSUER, &digest);
        assert!(out.status.success(), "sigstore-python: {}", text(&out));
        let wrong = python_verify(&fake, bundle, OTHER_IDENTITY, ISSUER, &digest);
        assert!(!wrong.status.success(), "{}", text(&wrong));
    }
    let js = node_verify(&fake, IDENTITY, ISSUER, &bundles);
    assert!(js.status.success(), "@sigstore/verify: {}", text(&js));
    assert_eq!(text(&js).matches("verified ").count(), 8, "{}", text(&js));

    let mut verify = strings(&["verify", "--json", &target]);
    verify.extend(identity_flags(&fake, IDENTITY, ISSUER));
    let out = cli(&verify, None);
    everything.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let all = verdicts(&out);
    assert_eq!(all.len(), 8);
    for v in &all {
        let signer = v["signer"].as_str().unwrap_or_default();
        assert!(
            signer.starts_with(&format!("keyless: {IDENTITY} (issuer {ISSUER})")),
            "{v}"
        );
    }

    // Another identity, another issuer, an unanchored-only regexp: every attestation fails,
    // naming the keyless rule.
    let regexp = [
        "--certificate-identity-regexp",
        "ci\\.cnb-attest\\.test/workflows/build",
    ];
    let anchored = [
        "--certificate-identity-regexp",
        "https://ci\\.cnb-attest\\.test/workflows/[a-z]+@refs/heads/main",
    ];
    let issuer = ["--certificate-oidc-issuer", ISSUER];
    let root = fake.trusted_root().display().to_string();
    for (flags, rule) in [
        (
            identity_flags(&fake, OTHER_IDENTITY, ISSUER),
            "keyless identity",
        ),
        (
            identity_flags(&fake, IDENTITY, OTHER_ISSUER),
            "keyless issuer",
        ),
        (
            [&regexp[..], &issuer[..], &["--trusted-root", &root][..]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "keyless identity",
        ),
    ] {
        let mut args = strings(&["verify", "--json", &target]);
        args.extend(flags);
        let out = cli(&args, None);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        for v in verdicts(&out) {
            assert_eq!(v["rule"], "keyless", "{v}");
            assert!(v["failure"].as_str().unwrap().starts_with(rule), "{v}");
        }
    }
    let mut args = strings(&["verify", &target]);
    args.extend(
        [&anchored[..], &issuer[..], &["--trusted-root", &root][..]]
            .concat()
            .iter()
            .map(|s| s.to_string()),
    );
    let out = cli(&args, None);
    assert!(out.status.success(), "anchored regexp: {}", text(&out));
    // Without an identity policy a keyless attestation is not trusted, with a key or not.
    let keys = tmp.path().join("k");
    cnb_attest_tests::key_pair(&keys, "");
    let out = cli(
        &strings(&[
            "verify",
            &target,
            "--key",
            &keys.join("cosign.pub").display().to_string(),
        ]),
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("--certificate-identity"),
        "{}",
        text(&out)
    );

    // download and the analyzer: with the identity, every SBOM byte for byte; with another,
    // nothing.
    let mut download = strings(&["download", &target, "-o"]);
    download.push(tmp.path().join("out").display().to_string());
    download.extend(identity_flags(&fake, IDENTITY, ISSUER));
    let out = cli(&download, None);
    everything.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        sbom_files(&tmp.path().join("out/layers")),
        sbom_files(&layers)
    );
    let mut download = strings(&["download", &target, "-o"]);
    download.push(tmp.path().join("other").display().to_string());
    download.extend(identity_flags(&fake, IDENTITY, OTHER_ISSUER));
    let out = cli(&download, None);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(!tmp.path().join("other/layers/sbom/launch").exists());

    for (issuer, expected) in [(ISSUER, Some(0)), (OTHER_ISSUER, Some(35))] {
        let restore = tmp.path().join(format!("analyzed-{}", expected.unwrap()));
        fs::create_dir_all(&restore).unwrap();
        let out = run(Command::new(bin("analyzer"))
            .args(["-previous-image", &target, "-layers"])
            .arg(&restore)
            .args(identity_flags(&fake, IDENTITY, issuer))
            .arg("-strict")
            .env("DOCKER_CONFIG", "/nonexistent"));
        everything.push_str(&text(&out));
        assert_eq!(out.status.code(), expected, "{}", text(&out));
        if expected == Some(0) {
            assert_eq!(sbom_files(&restore), sbom_files(&layers));
        } else {
            assert!(!restore.join("sbom/launch").exists());
        }
    }
    assert!(
        !everything.contains(&token),
        "the identity token leaked:\n{everything}"
    );
}

/// The signer phase keyless on Distribution (tag-schema fallback) and ferro (Referrers API):
/// `verify`, `download` and the analyzer pass with the identity and issuer, and fail closed with
/// another.
#[test]
fn keyless_on_both_registries_restores_with_the_identity_and_fails_closed_with_another() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    for registry in [Kind::Distribution, Kind::Ferro]
        .into_iter()
        .filter_map(Registry::start)
    {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        let (token_path, token) = token_file(tmp.path());
        let reference = registry.push_layout(&image, "keyless/app", "1.0");
        let signed = export_and_sign(
            &layers,
            &image,
            Target::Registry(&registry, &reference),
            &fake,
            &token_path,
        );
        assert!(
            signed.status.success(),
            "{:?}: {}",
            registry.kind,
            text(&signed)
        );
        assert!(text(&signed).contains("DEBUG "), "{}", text(&signed));
        assert!(
            !text(&signed).contains(&token),
            "the token leaked: {}",
            text(&signed)
        );
        let mut verify = strings(&["verify", &reference]);
        verify.extend(identity_flags(&fake, IDENTITY, ISSUER));
        let out = cli(&verify, Some(&registry));
        assert!(out.status.success(), "{:?}: {}", registry.kind, text(&out));
        assert!(
            text(&out).contains("all 8 attestation(s) verified with keyless identity"),
            "{}",
            text(&out)
        );
        let mut other = strings(&["verify", &reference]);
        other.extend(identity_flags(&fake, OTHER_IDENTITY, ISSUER));
        let out = cli(&other, Some(&registry));
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let mut download = strings(&["download", &reference, "-o"]);
        download.push(tmp.path().join("out").display().to_string());
        download.extend(identity_flags(&fake, IDENTITY, ISSUER));
        let out = cli(&download, Some(&registry));
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            sbom_files(&tmp.path().join("out/layers")),
            sbom_files(&layers)
        );
        for (issuer, expected) in [(ISSUER, Some(0)), (OTHER_ISSUER, Some(35))] {
            let restore = tmp.path().join(format!("analyzed-{}", expected.unwrap()));
            fs::create_dir_all(&restore).unwrap();
            let out = run(Command::new(bin("analyzer"))
                .args(["-previous-image", &reference, "-layers"])
                .arg(&restore)
                .args(identity_flags(&fake, IDENTITY, issuer))
                .arg("-strict")
                .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
                .env("CNB_INSECURE_REGISTRIES", &registry.host)
                .env("DOCKER_CONFIG", "/nonexistent"));
            assert_eq!(
                out.status.code(),
                expected,
                "{:?}: {}",
                registry.kind,
                text(&out)
            );
            if expected == Some(0) {
                assert_eq!(sbom_files(&restore), sbom_files(&layers));
            }
        }
    }
}

/// The referrer manifest of a bundle (as cosign 3 writes one), about `subject`, with `annotations`.
fn bundle_manifest(image: &SignedImage, bundle: &[u8], annotations: &Value) -> (Vec<u8>, String) {
    let (_, subject) = image.curl(
        "GET",
        &format!("/v2/hostile/app/manifests/{}", image.digest),
        "application/vnd.oci.image.manifest.v1+json",
        None,
    );
    let empty = image.push_blob(b"{}", "application/vnd.oci.empty.v1+json");
    let layer = image.push_blob(bundle, "application/vnd.dev.sigstore.bundle.v0.3+json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": empty,
        "layers": [layer],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
            "size": subject.len(),
        },
        "annotations": annotations,
    }))
    .unwrap();
    let digest = cnb_attest_tests::sha256(&manifest);
    image.put_manifest(
        &digest,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    (manifest, digest)
}

/// The statement (payload) of each attestation the key-based signing of the example stored, with
/// its manifest annotations: what another signer is asked to sign.
fn statements_of(image: &SignedImage) -> Vec<(Vec<u8>, Value)> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for entry in &image.listed {
        if entry["format"] != "bundle" {
            continue;
        }
        let digest = entry["manifest-digest"].as_str().unwrap();
        let (_, manifest) = image.curl(
            "GET",
            &format!("/v2/hostile/app/manifests/{digest}"),
            "application/vnd.oci.image.manifest.v1+json",
            None,
        );
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let (_, bundle) = image.curl(
            "GET",
            &format!("/v2/hostile/app/blobs/{layer}"),
            "*/*",
            None,
        );
        let bundle: Value = serde_json::from_slice(&bundle).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        out.push((payload, manifest["annotations"].clone()));
    }
    out
}

/// DSSE bundles that sigstore-python signs against the fake instance (the same statements our
/// key-based run stored, pushed as cosign-3-shaped referrers with curl) verify with ours and their
/// SBOMs restore, beside the key-based ones; with the wrong identity only the key-based ones count.
#[test]
fn bundles_sigstore_python_signs_verify_here_and_their_sboms_restore() {
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let token = mint_token(IDENTITY, ISSUER, 600);
    let statements = statements_of(&image);
    assert_eq!(statements.len(), 8, "{:?}", image.listed);
    // A fresh image with only the python-signed referrers: push the same image again under a
    // second repository would need another digest; instead the key-based referrers stay, and
    // verification is asked with the identity only (no key): they fail, the keyless ones pass.
    for (i, (statement, annotations)) in statements.iter().enumerate() {
        let bundle = tmp.path().join(format!("python-{i}.sigstore.json"));
        let out = python_sign(&fake, &token, statement, &bundle);
        assert!(out.status.success(), "sigstore-python sign: {}", text(&out));
        bundle_manifest(&image, &fs::read(&bundle).unwrap(), annotations);
    }
    let host = image.registry.host.clone();
    let reference = format!("{host}/hostile/app:1.0");
    let mut args = strings(&["verify", "--json", &reference]);
    args.extend(identity_flags(&fake, IDENTITY, ISSUER));
    let out = image.cli_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let all = verdicts(&out);
    let keyless: Vec<&Value> = all.iter().filter(|v| v["signer"].is_string()).collect();
    assert_eq!(keyless.len(), 8, "{}", text(&out));
    // The key-based ones are not trusted by an identity-only verification.
    assert_eq!(all.len(), 16, "{}", text(&out));
    assert!(all
        .iter()
        .filter(|v| !v["signer"].is_string())
        .all(|v| v["rule"] == "signature"));
    // Key and identity together: key-based and keyless attestations of one image all verify,
    // each by what its bundle carries.
    let key = image.keys().join("cosign.pub");
    args.extend(strings(&["--key", &key.display().to_string()]));
    let out = image.cli_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let all = verdicts(&out);
    assert_eq!(all.len(), 16, "{}", text(&out));
    assert_eq!(
        all.iter().filter(|v| v["signer"].is_string()).count(),
        8,
        "{}",
        text(&out)
    );
    // Restored from the python-signed bundles alone (no key given): every SBOM byte for byte.
    let out_dir = tmp.path().join("out");
    let mut args = strings(&["download", &reference, "-o", &out_dir.display().to_string()]);
    args.extend(identity_flags(&fake, IDENTITY, ISSUER));
    let out = image.cli_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        sbom_files(&out_dir.join("layers")),
        sbom_files(&image.layers)
    );
}

/// A bundle of our keyless run, changed as a forger would, then pushed as another referrer of the
/// same image: each fails closed with a message that names the rule, and the untouched ones still
/// verify.
#[test]
fn forged_log_evidence_and_foreign_certificates_fail_closed_naming_the_rule() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let Some(other) = FakeSigstore::start() else {
        return;
    };
    let Some(image) = SignedImage::pushed(Kind::Ferro) else {
        return;
    };
    let host = image.registry.host.clone();
    let reference = format!("{host}/hostile/app:1.0");
    let (token_path, token) = token_file(image.tmp.path());
    let mut sign = strings(&[
        "sign",
        &reference,
        "--layers",
        &image.layers.display().to_string(),
    ]);
    sign.extend(keyless_flags(&fake, &token_path));
    let out = image.cli_at(&host, &sign.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let listed = image.cli_at(&host, &["ls", "--json", &reference]);
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let read = |digest: &str| -> (Value, Value) {
        let (_, manifest) = image.curl(
            "GET",
            &format!("/v2/hostile/app/manifests/{digest}"),
            "application/vnd.oci.image.manifest.v1+json",
            None,
        );
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, bundle) = image.curl(
            "GET",
            &format!("/v2/hostile/app/blobs/{layer}"),
            "*/*",
            None,
        );
        (manifest, serde_json::from_slice(&bundle).unwrap())
    };
    let originals: Vec<(Value, Value)> = listed
        .iter()
        .map(|e| read(e["manifest-digest"].as_str().unwrap()))
        .collect();
    let (manifest, first) = &originals[0];
    let (_, second) = &originals[1];
    let annotations = &manifest["annotations"];
    let flip = |text: &str| {
        let mut bytes = b64.decode(text).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        b64.encode(bytes)
    };
    let entry = |b: &Value| b["verificationMaterial"]["tlogEntries"][0].clone();
    let mut forgeries: Vec<(&str, Value)> = Vec::new();
    // A forged SET.
    let mut forged = first.clone();
    let set = entry(first)["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    forged["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"] =
        flip(&set).into();
    forgeries.push(("keyless set", forged));
    // The inclusion proof (with its checkpoint) of another entry: it leads to another root.
    let mut forged = first.clone();
    forged["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] =
        entry(second)["inclusionProof"].clone();
    forgeries.push(("keyless inclusion-proof", forged));
    // Another envelope's whole log entry (valid SET, proof and checkpoint, for another envelope).
    let mut forged = first.clone();
    forged["verificationMaterial"]["tlogEntries"] =
        second["verificationMaterial"]["tlogEntries"].clone();
    forgeries.push(("keyless log-binding", forged));
    // Thousands of log entries: refused before any is looked at.
    let mut forged = first.clone();
    forged["verificationMaterial"]["tlogEntries"] = Value::Array(vec![entry(first); 5000]);
    forgeries.push(("keyless material", forged));
    // A certificate of another CA (another instance), with that instance's own log evidence.
    let statement = b64
        .decode(first["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let foreign = image.tmp.path().join("foreign.sigstore.json");
    let out = python_sign(&other, &token, &statement, &foreign);
    assert!(out.status.success(), "{}", text(&out));
    let foreign: Value = serde_json::from_slice(&fs::read(&foreign).unwrap()).unwrap();
    forgeries.push(("keyless unknown-log", foreign.clone()));
    let mut forged = foreign;
    forged["verificationMaterial"]["tlogEntries"] =
        first["verificationMaterial"]["tlogEntries"].clone();
    forgeries.push(("keyless log-binding", forged));
    // A certificate of another CA with real evidence from our own log: the other instance's
    // Fulcio and CT log, this instance's Rekor.
    let ours: Value = serde_json::from_slice(&fs::read(fake.trust_config()).unwrap()).unwrap();
    let mut mixed: Value =
        serde_json::from_slice(&fs::read(other.trust_config()).unwrap()).unwrap();
    mixed["trustedRoot"]["tlogs"] = ours["trustedRoot"]["tlogs"].clone();
    mixed["signingConfig"]["rekorTlogUrls"] = ours["signingConfig"]["rekorTlogUrls"].clone();
    let mixed_path = image.tmp.path().join("mixed-trust-config.json");
    fs::write(&mixed_path, serde_json::to_vec(&mixed).unwrap()).unwrap();
    let other_ca = image.tmp.path().join("other-ca.sigstore.json");
    let out = python_sign_with(&mixed_path, &token, &statement, &other_ca);
    assert!(out.status.success(), "{}", text(&out));
    forgeries.push((
        "keyless unknown-ca",
        serde_json::from_slice(&fs::read(&other_ca).unwrap()).unwrap(),
    ));
    // A bare public key where the certificate belongs (the leaf's own key, as a signer holding
    // only the ephemeral key would write it).
    let python = cnb_attest_tests::python().unwrap();
    let leaf = first["verificationMaterial"]["certificate"]["rawBytes"]
        .as_str()
        .unwrap();
    let spki = run(Command::new(python).args([
        "-c",
        "import base64,sys\nfrom cryptography import x509\nfrom cryptography.hazmat.primitives import serialization as s\n\
         c=x509.load_der_x509_certificate(base64.b64decode(sys.argv[1]))\n\
         print(base64.b64encode(c.public_key().public_bytes(s.Encoding.DER,s.PublicFormat.SubjectPublicKeyInfo)).decode())",
        leaf,
    ]));
    assert!(spki.status.success(), "{}", text(&spki));
    let mut forged = first.clone();
    forged["verificationMaterial"]["certificate"]["rawBytes"] =
        String::from_utf8(spki.stdout).unwrap().trim().into();
    forgeries.push(("keyless bare-key", forged));
    let mut pushed = Vec::new();
    for (rule, bundle) in &forgeries {
        let (_, digest) =
            bundle_manifest(&image, &serde_json::to_vec(bundle).unwrap(), annotations);
        pushed.push((digest, *rule));
    }
    let mut args = strings(&["verify", "--json", &reference]);
    args.extend(identity_flags(&fake, IDENTITY, ISSUER));
    let started = std::time::Instant::now();
    let out = image.cli_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = started;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = verdicts(&out);
    for (digest, rule) in &pushed {
        let verdict = all
            .iter()
            .find(|v| v["manifest-digest"] == *digest)
            .unwrap_or_else(|| panic!("{digest} not verified: {}", text(&out)));
        assert_eq!(verdict["rule"], "keyless", "{verdict}");
        assert!(
            verdict["failure"].as_str().unwrap().starts_with(rule),
            "expected `{rule}`: {verdict}"
        );
    }
    let untouched = all.iter().filter(|v| v["failure"].is_null()).count();
    assert_eq!(untouched, 8, "{}", text(&out));
    let _ = snapshot;
}

/// A bundle whose certificate had expired when the log integrated it (signed by sigstore-js, which
/// signs with such a certificate; sigstore-python refuses to) fails closed as `expired`.
#[test]
fn a_certificate_expired_at_the_integrated_time_fails_closed() {
    let Some(expired) = FakeSigstore::start_with(FakeOptions {
        cert_clock_offset: -3600,
        ..FakeOptions::default()
    }) else {
        return;
    };
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    let token = mint_token(IDENTITY, ISSUER, 600);
    let (statement, annotations) = statements_of(&image).remove(0);
    let bundle = image.tmp.path().join("expired.sigstore.json");
    let out = cnb_attest_tests::sigstore::node_sign(&expired, &token, &statement, &bundle);
    assert!(out.status.success(), "sigstore-js sign: {}", text(&out));
    let (_, digest) = bundle_manifest(&image, &fs::read(&bundle).unwrap(), &annotations);
    let host = image.registry.host.clone();
    let reference = format!("{host}/hostile/app:1.0");
    let mut args = strings(&["verify", "--json", &reference]);
    args.extend(identity_flags(&expired, IDENTITY, ISSUER));
    let out = image.cli_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let verdict = verdicts(&out)
        .into_iter()
        .find(|v| v["manifest-digest"] == digest)
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert_eq!(verdict["rule"], "keyless", "{verdict}");
    let failure = verdict["failure"].as_str().unwrap();
    assert!(failure.starts_with("keyless expired"), "{verdict}");
    assert!(failure.contains("log integrated it at"), "{verdict}");
}

/// An envelope over the log's size limit is refused before any log request, naming the
/// attestation and the way out; nothing is stored. A certificate that the instance issues already
/// expired at the log's integrated time never gets stored either: the run's own bundle fails the
/// check against the trusted root. A token from a TOML file is refused.
#[test]
fn oversized_envelopes_expired_certificates_and_toml_tokens_are_refused_before_anything_is_stored()
{
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let (token_path, token) = token_file(tmp.path());
    let target = format!("oci:{}:latest", image.display());
    let before = snapshot(&image);
    // `cnb-attest sign` of the example layout, keyless with `fake` and the token in `token`.
    let sign_keyless = |fake: &FakeSigstore, token: &Path, extra: &[&str]| {
        let mut args = strings(&["sign", &target, "--layers", &layers.display().to_string()]);
        args.extend(keyless_flags(fake, token));
        args.extend(strings(extra));
        cli(&args, None)
    };
    let out = sign_keyless(&fake, &token_path, &["--max-log-request", "4000"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("attestation #"), "{}", text(&out));
    assert!(text(&out).contains("4000"), "{}", text(&out));
    assert_eq!(fake.log_requests(), 0, "{:?}", fake.requests());
    assert_eq!(snapshot(&image), before);

    // The log itself refuses the request as too large (413): named, not retried, nothing stored.
    let Some(small) = FakeSigstore::start_with(FakeOptions {
        rekor_max_body: Some(6000),
        ..FakeOptions::default()
    }) else {
        return;
    };
    let out = sign_keyless(&small, &token_path, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("attestation #"), "{}", text(&out));
    let refused: Vec<Value> = small
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/v1/log/entries")
        .collect();
    assert_eq!(
        refused.iter().filter(|r| r["status"] == 413).count(),
        1,
        "one 413, never retried: {refused:?}"
    );
    assert_eq!(snapshot(&image), before);

    let Some(expired) = FakeSigstore::start_with(FakeOptions {
        cert_clock_offset: -3600,
        ..FakeOptions::default()
    }) else {
        return;
    };
    let out = sign_keyless(&expired, &token_path, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    assert_eq!(snapshot(&image), before);

    let toml = tmp.path().join("token.toml");
    fs::write(&toml, format!("[sigstore]\nidentity-token = \"{token}\"\n")).unwrap();
    let out = sign_keyless(&fake, &toml, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(!text(&out).contains(&token), "{}", text(&out));
    assert_eq!(snapshot(&image), before);
}
