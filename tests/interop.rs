//! Interoperability with independent tools on real registries: `@sigstore/cli attach` (another
//! referrer writer) and skopeo (copies the attested image and a referrer out by digest).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cnb_attest_tests::registry::{Kind, Registry, PASSWORD, USER};
use cnb_attest_tests::{
    bin, copy_dir, fresh_example, key_pair, missing, ok, run, sha256, split_image_signatures, text,
    tools_dir, which, COSIGN_SIGN_V1,
};
use serde_json::Value;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

fn with_registry_env<'a>(command: &'a mut Command, registry: &Registry) -> &'a mut Command {
    command
        .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", "/nonexistent")
}

fn sign(registry: &Registry, reference: &str, layers: &Path, keys: &Path) -> Value {
    let out = ok(run(with_registry_env(
        Command::new(bin("cnb-attest"))
            .args(["sign", reference, "--json", "--layers"])
            .arg(layers)
            .arg("--key")
            .arg(keys.join("cosign.key"))
            .env("COSIGN_PASSWORD", ""),
        registry,
    )));
    serde_json::from_str(&out).unwrap()
}

fn skopeo() -> Option<PathBuf> {
    which("skopeo").or_else(|| missing("skopeo"))
}

/// The raw `sha256-<hex>` index entries, as a plain HTTP reader sees them.
fn fallback_entries(registry: &Registry, repo: &str, digest: &str) -> Vec<Value> {
    let (status, body) = registry.curl(
        &format!("/v2/{repo}/manifests/sha256-{}", &digest[7..]),
        OCI_INDEX,
    );
    assert_eq!(status, 200, "{body}");
    let index: Value = serde_json::from_str(&body).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// The first Sigstore bundle blob of a signed OCI layout that holds an SBOM attestation (not the
/// image signature, which is a bundle too).
fn bundle_blob(layout: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let predicate_type = |bundle: &Value| -> Option<String> {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(bundle["dsseEnvelope"]["payload"].as_str()?)
            .ok()?;
        let statement: Value = serde_json::from_slice(&payload).ok()?;
        statement["predicateType"].as_str().map(str::to_string)
    };
    let mut names: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|path| fs::read(path).ok())
        .find(|bytes| {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .filter(|v| {
                    v["mediaType"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(BUNDLE_PREFIX))
                })
                .and_then(|v| predicate_type(&v))
                .is_some_and(|t| t != COSIGN_SIGN_V1)
        })
        .expect("an SBOM attestation bundle blob in the signed layout")
}

/// `@sigstore/cli attach` (an independent writer) attaches a bundle to the image first; then
/// cnb-attest signs it: the `sha256-<hex>` index lists both the other tool's entry, untouched,
/// and all 8 of ours (7 attestations + the image signature), and `cnb-attest ls` shows all 9
/// referrers: 8 attestations and 1 image signature.
#[test]
fn sigstore_cli_attach_then_cnb_attest_both_are_listed() {
    let sigstore = tools_dir().join("npm/node_modules/.bin/sigstore");
    if !sigstore.is_file() || which("node").is_none() {
        missing("@sigstore/cli (sigstore attach) with node");
        return;
    }
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    key_pair(&tmp.path().join("other"), "");
    let repo = "interop/app";
    let reference = registry.push_layout(&image, repo, "1.0");
    let digest = registry.digest_of(&reference);

    // The bundle @sigstore/cli attaches: one signed offline with another key, in a copy.
    let copy = tmp.path().join("copy");
    copy_dir(&image, &copy);
    ok(run(Command::new(bin("cnb-attest"))
        .arg("sign")
        .arg(format!("oci:{}", copy.display()))
        .arg("--layers")
        .arg(&layers)
        .arg("--key")
        .arg(tmp.path().join("other/cosign.key"))
        .env("COSIGN_PASSWORD", "")));
    let bundle = tmp.path().join("bundle.json");
    fs::write(&bundle, bundle_blob(&copy)).unwrap();

    let attached = run(Command::new(&sigstore)
        .args(["attach", "--attestation"])
        .arg(&bundle)
        .args(["-u", USER, "-p", PASSWORD, &reference]));
    assert!(
        attached.status.success(),
        "sigstore attach failed:\n{}",
        text(&attached)
    );
    let before = fallback_entries(&registry, repo, &digest);
    assert_eq!(before.len(), 1, "{before:#?}");
    let theirs = before[0].clone();
    assert!(
        theirs["artifactType"]
            .as_str()
            .is_some_and(|t| t.starts_with(BUNDLE_PREFIX)),
        "{theirs}"
    );

    let report = sign(&registry, &reference, &layers, &tmp.path().join("k"));
    let (attestations, signatures) =
        split_image_signatures(report["attestations"].as_array().unwrap());
    assert_eq!((attestations.len(), signatures.len()), (7, 1), "{report:#}");
    assert_eq!(report["pushed"], 8, "{report:#}");
    let after = fallback_entries(&registry, repo, &digest);
    assert_eq!(after.len(), 1 + 8, "theirs + our 8: {after:#?}");
    assert!(
        after.contains(&theirs),
        "@sigstore/cli's entry was dropped or altered:\n{after:#?}"
    );
    let listed: Vec<&str> = after
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    for attestation in report["attestations"].as_array().unwrap() {
        let ours = attestation["manifest-digest"].as_str().unwrap();
        assert_eq!(
            listed.iter().filter(|d| **d == ours).count(),
            1,
            "{ours} not listed exactly once: {listed:?}"
        );
    }

    let ls = run(with_registry_env(
        Command::new(bin("cnb-attest")).args(["ls", &reference]),
        &registry,
    ));
    assert!(ls.status.success(), "{}", text(&ls));
    assert!(
        text(&ls).contains(": 8 attestation(s), 1 image signature(s)"),
        "cnb-attest ls must show their attestation, our 7 and our image signature:\n{}",
        text(&ls)
    );
    let json = ok(run(with_registry_env(
        Command::new(bin("cnb-attest")).args(["ls", &reference, "--json"]),
        &registry,
    )));
    let shown: Vec<String> = serde_json::from_str::<Vec<Value>>(&json)
        .unwrap()
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = listed.iter().map(|d| d.to_string()).collect();
    expected.sort();
    let mut shown_sorted = shown.clone();
    shown_sorted.sort();
    assert_eq!(shown_sorted, expected, "ls --json");

    // What @sigstore/cli wrote is verified given ITS key (ours, signed with another key, are not),
    // and its SBOM is restored from it, byte for byte.
    let verified = run(with_registry_env(
        Command::new(bin("cnb-attest"))
            .args(["verify", &reference, "--json", "--key"])
            .arg(tmp.path().join("other/cosign.pub")),
        &registry,
    ));
    let verdicts: Vec<Value> =
        serde_json::from_slice(&verified.stdout).unwrap_or_else(|_| panic!("{}", text(&verified)));
    let theirs_digest = theirs["digest"].as_str().unwrap();
    let ok_ones: Vec<&str> = verdicts
        .iter()
        .filter(|v| v["failure"].is_null())
        .map(|v| v["manifest-digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        ok_ones,
        [theirs_digest],
        "only their attestation verifies with their key"
    );
    let out = tmp.path().join("theirs");
    let download = |policy: &str| {
        run(with_registry_env(
            Command::new(bin("cnb-attest"))
                .args(["download", &reference, "--policy", policy, "-o"])
                .arg(&out)
                .arg("--key")
                .arg(tmp.path().join("other/cosign.pub")),
            &registry,
        ))
    };
    // Ours are not signed by their key: left out (reported, never written) under either policy,
    // and their verified SBOM is restored from what @sigstore/cli wrote, byte for byte.
    for policy in ["all", "newest"] {
        let _ = fs::remove_dir_all(&out);
        let downloaded = download(policy);
        let report = text(&downloaded);
        assert_eq!(downloaded.status.code(), Some(0), "{policy}: {report}");
        assert_eq!(
            report
                .lines()
                .filter(|l| l.starts_with("Warning: left out "))
                .count(),
            7,
            "{policy}: our 7 SBOM attestations are left out:\n{report}"
        );
        assert!(
            report.contains("7 attestation(s) left out: not signed by a trusted key"),
            "{policy}: {report}"
        );
        assert!(!report.contains("FAILED"), "{policy}: {report}");
        let written = cnb_attest_tests::sbom_files(&out.join("layers"));
        assert_eq!(written.len(), 1, "{policy}: {written:?}");
        let (path, bytes) = written.iter().next().unwrap();
        assert_eq!(
            bytes,
            &fs::read(layers.join("sbom/launch").join(path)).unwrap(),
            "{policy}: {path} differs from the source"
        );
    }
}

/// Copies `docker://<host>/<repo>@<digest>` into a fresh OCI layout with `--preserve-digests`;
/// returns the copied manifest's digest and bytes.
fn skopeo_copy(registry: &Registry, repo: &str, digest: &str, dir: &Path) -> (String, Vec<u8>) {
    let mut command = Command::new("skopeo");
    command
        .args(["copy", "-q", "--preserve-digests", "--src-tls-verify=false"])
        .arg(format!("docker://{}/{repo}@{digest}", registry.host))
        .arg(format!("oci:{}:copied", dir.display()));
    if let Some(creds) = registry.creds() {
        command.arg("--src-creds").arg(creds);
    }
    ok(run(&mut command));
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let copied = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = fs::read(dir.join("blobs/sha256").join(&copied[7..])).unwrap();
    (copied, bytes)
}

/// skopeo copies the attested image out by digest with `--preserve-digests`: same digest (attaching
/// did not touch the image); a referrer copied the same way has byte-identical manifest bytes.
#[test]
fn skopeo_copies_the_attested_image_and_a_referrer_unchanged() {
    if skopeo().is_none() {
        return;
    }
    for kind in [Kind::Distribution, Kind::Ferro] {
        let Some(registry) = Registry::start(kind) else {
            continue;
        };
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let repo = "interop/copy";
        let reference = registry.push_layout(&image, repo, "1.0");
        let digest = registry.digest_of(&reference);
        let report = sign(&registry, &reference, &layers, &tmp.path().join("k"));
        // 7 attestations + the image signature.
        assert_eq!(report["pushed"], 8, "{kind:?}: {report:#}");
        let (attestations, signatures) =
            split_image_signatures(report["attestations"].as_array().unwrap());
        assert_eq!(signatures.len(), 1, "{kind:?}: {report:#}");

        let (copied, bytes) = skopeo_copy(&registry, repo, &digest, &tmp.path().join("img"));
        assert_eq!(copied, digest, "{kind:?}: the image changed");
        assert_eq!(sha256(&bytes), digest);

        // An SBOM attestation and the image signature, each copied out the same way.
        for (dir, entry) in [("ref", &attestations[0]), ("sig", &signatures[0])] {
            let referrer = entry["manifest-digest"].as_str().unwrap().to_string();
            let (copied, bytes) = skopeo_copy(&registry, repo, &referrer, &tmp.path().join(dir));
            assert_eq!(copied, referrer, "{kind:?}");
            let (status, stored) =
                registry.curl(&format!("/v2/{repo}/manifests/{referrer}"), OCI_MANIFEST);
            assert_eq!(status, 200, "{kind:?}: {stored}");
            assert_eq!(bytes, stored.as_bytes(), "{kind:?}: manifest bytes differ");
            assert_eq!(sha256(&bytes), referrer);
            let manifest: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(manifest["subject"]["digest"], digest.as_str(), "{kind:?}");
        }
    }
}
