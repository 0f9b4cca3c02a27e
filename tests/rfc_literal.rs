//! Issue 8's must-shows: attestations written by an independent writer exactly as the RFC draft
//! shows them (`tests/oracles/rfc_writer.py`, Python `cryptography` only) are listed, verified and
//! restored; image-only subjects are placed from the annotation and marked unsigned; key rotation,
//! platform attestations and a mislabelled layer subject; cosign 2's `.att` restored.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{
    bin, fresh_example, fresh_spring_boot, key_pair, missing, ok, oracle, python, run, sbom_files,
    text, which,
};
use serde_json::Value;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Where the image lives: a layout directory or a registry reference (`host/repo@sha256:…`).
enum Target<'a> {
    Layout(&'a Path),
    Registry(&'a Registry, String),
}

impl Target<'_> {
    /// The reference cnb-attest and the analyzer take.
    fn reference(&self) -> String {
        match self {
            Target::Layout(dir) => format!("oci:{}", dir.display()),
            Target::Registry(_, reference) => reference.clone(),
        }
    }

    fn registry(&self) -> Option<&Registry> {
        match self {
            Target::Layout(_) => None,
            Target::Registry(registry, _) => Some(registry),
        }
    }

    fn label(&self) -> String {
        match self {
            Target::Layout(_) => "layout".into(),
            Target::Registry(registry, _) => format!("{:?}", registry.kind),
        }
    }
}

fn env<'a>(command: &'a mut Command, registry: Option<&Registry>) -> &'a mut Command {
    if let Some(registry) = registry {
        command
            .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &registry.host);
    }
    command.env("DOCKER_CONFIG", "/nonexistent")
}

/// `cnb-attest ARGS… IMAGE`.
fn cli(target: &Target, args: &[&str]) -> Output {
    run(env(
        Command::new(bin("cnb-attest"))
            .args(args)
            .arg(target.reference()),
        target.registry(),
    ))
}

/// `--key a --key b …`.
fn key_args(keys: &[&Path]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| ["--key".to_string(), k.display().to_string()])
        .collect()
}

/// `cnb-attest download IMAGE --json -o OUT --key …  EXTRA…`.
fn download(target: &Target, out: &Path, keys: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["download".to_string(), "--json".into(), "-o".into()];
    args.push(out.display().to_string());
    args.extend(key_args(keys));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(target, &args)
}

/// The analyzer restoring into a fresh layers directory `into`, with `-key` per key.
fn analyze(target: &Target, into: &Path, keys: &[&Path]) -> Output {
    fs::create_dir_all(into).unwrap();
    let mut command = Command::new(bin("analyzer"));
    command
        .args(["-previous-image", &target.reference(), "-layers"])
        .arg(into);
    for key in keys {
        command.arg("-key").arg(key);
    }
    run(env(&mut command, target.registry()))
}

/// The Python writer's `key.pem` / `key.pub` in `dir` (a P-256 key made by `cryptography`).
fn writer_key(py: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    ok(run(Command::new(py)
        .arg(oracle("rfc_writer.py"))
        .arg("gen-key")
        .arg(dir)));
    (dir.join("key.pem"), dir.join("key.pub"))
}

/// Runs `rfc_writer.py write IMAGE --key KEY EXTRA…` against `target`, checks every envelope it
/// wrote with the securesystemslib oracle, and returns its JSON description of what it stored.
fn write_rfc(py: &Path, target: &Target, key: &Path, public: &Path, extra: &[&str]) -> Vec<Value> {
    let envelopes = tempfile::tempdir().unwrap();
    let mut command = Command::new(py);
    command.arg(oracle("rfc_writer.py")).arg("write");
    match target {
        Target::Layout(dir) => {
            command.arg(dir);
        }
        Target::Registry(registry, reference) => {
            command.arg(reference);
            if let Some(creds) = registry.creds() {
                command.arg("--creds").arg(creds);
            }
        }
    }
    command
        .arg("--key")
        .arg(key)
        .arg("--envelopes-dir")
        .arg(envelopes.path())
        .args(extra);
    let written: Vec<Value> = serde_json::from_str(&ok(run(&mut command))).unwrap();
    assert!(!written.is_empty());
    // The writer's envelopes verify with an independent DSSE implementation.
    let mut files: Vec<PathBuf> = fs::read_dir(envelopes.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), written.len());
    ok(run(Command::new(py)
        .arg(oracle("dsse_verify.py"))
        .arg(public)
        .args(&files)));
    // And what it stored is readable by a plain reader, in the RFC's shape.
    for entry in &written {
        let manifest = read_manifest(target, entry["manifest"].as_str().unwrap());
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert!(manifest.get("artifactType").is_none(), "{manifest:#}");
        assert!(manifest.get("annotations").is_none(), "{manifest:#}");
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.dsse.envelope.v1+json"
        );
        assert_eq!(
            layers[0]["annotations"]["predicateType"],
            entry["predicateType"]
        );
        assert_eq!(
            layers[0]["annotations"]["dev.cosignproject.cosign/signature"],
            ""
        );
        assert_eq!(
            layers[0]["annotations"]["io.buildpacks.buildpack.id"],
            entry["buildpack"]
        );
    }
    if let Target::Registry(registry, reference) = target {
        // Where readers look: the sha256-<hex> index (Distribution) or the Referrers API (ferro).
        let (repo, digest) = repo_and_digest(registry, reference);
        let path = match registry.kind {
            Kind::Distribution => format!("/v2/{repo}/manifests/sha256-{}", &digest[7..]),
            Kind::Ferro => format!("/v2/{repo}/referrers/{digest}"),
        };
        let (status, body) = registry.curl(&path, OCI_INDEX);
        assert_eq!(status, 200, "{path}: {body}");
        let index: Value = serde_json::from_str(&body).unwrap();
        for entry in &written {
            assert!(
                index["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["digest"] == entry["manifest"]),
                "{:?}: {} is not listed at {path}: {index:#}",
                registry.kind,
                entry["manifest"]
            );
        }
    }
    written
}

fn repo_and_digest(registry: &Registry, reference: &str) -> (String, String) {
    let rest = reference
        .strip_prefix(&format!("{}/", registry.host))
        .unwrap();
    let (repo, digest) = rest.split_once('@').unwrap();
    (repo.to_string(), digest.to_string())
}

/// A manifest read back by something other than cnb-attest: the layout's blob, or a plain GET.
fn read_manifest(target: &Target, digest: &str) -> Value {
    match target {
        Target::Layout(dir) => {
            let bytes = fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap();
            let index: Value =
                serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
            assert!(
                index["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["digest"] == digest),
                "{digest} is not in index.json"
            );
            serde_json::from_slice(&bytes).unwrap()
        }
        Target::Registry(registry, reference) => {
            let (repo, _) = repo_and_digest(registry, reference);
            let (status, body) =
                registry.curl(&format!("/v2/{repo}/manifests/{digest}"), OCI_MANIFEST);
            assert_eq!(status, 200, "{body}");
            serde_json::from_str(&body).unwrap()
        }
    }
}

/// An image pushed to `registry` by skopeo, as `host/repo@sha256:…`.
fn push(registry: &Registry, image: &Path, repo: &str) -> String {
    let tagged = registry.push_layout(image, repo, "1.0");
    let digest = registry.digest_of(&tagged);
    format!("{}/{repo}@{digest}", registry.host)
}

fn skopeo_ok() -> bool {
    which("skopeo").is_some() || missing("skopeo").is_some()
}

/// `relative path -> bytes` of a downloaded tree.
fn downloaded(out: &Path) -> BTreeMap<String, Vec<u8>> {
    if out.join("layers/sbom/launch").is_dir() {
        sbom_files(&out.join("layers"))
    } else {
        BTreeMap::new()
    }
}

fn restored(layers: &Path) -> BTreeMap<String, Vec<u8>> {
    if layers.join("sbom/launch").is_dir() {
        sbom_files(layers)
    } else {
        BTreeMap::new()
    }
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(output)))
}

/// The first value under `key` anywhere in `value` (the report's nesting is the product's choice).
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

/// The must-show of item 1: ls, verify, download and the analyzer on RFC-literal attestations.
fn check_rfc_literal(target: &Target, layers: &Path, public: &Path, written: &[Value]) {
    let label = target.label();
    let expected = sbom_files(layers);
    assert_eq!(written.len(), expected.len(), "{label}");

    let ls = cli(target, &["ls", "--json"]);
    assert!(ls.status.success(), "{label}: {}", text(&ls));
    let listed: Vec<Value> = serde_json::from_slice(&ls.stdout).unwrap();
    for entry in written {
        let found = listed
            .iter()
            .find(|l| l["manifest-digest"] == entry["manifest"])
            .unwrap_or_else(|| panic!("{label}: {} not listed: {listed:#?}", entry["manifest"]));
        assert_eq!(found["format"], "dsse", "{label}: {found:#}");
    }

    let verify = cli(target, &["verify", "--key", &public.display().to_string()]);
    assert_eq!(verify.status.code(), Some(0), "{label}: {}", text(&verify));

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = download(target, &out, &[public], &[]);
    assert_eq!(result.status.code(), Some(0), "{label}: {}", text(&result));
    same_files(&downloaded(&out), &expected, &format!("{label}: download"));

    let into = tmp.path().join("layers");
    let result = analyze(target, &into, &[public]);
    assert_eq!(result.status.code(), Some(0), "{label}: {}", text(&result));
    assert_eq!(restored(&into), expected, "{label}: analyzer");
}

/// a. RFC-literal attestations (Statement v0.1, image or bare layer name as only subject, the
/// buildpack only on the layer descriptor, no artifactType) for the spring-boot tree in a layout
/// and the node-express tree on both registries: listed as `dsse`, verified, restored byte for
/// byte by `download` and by the analyzer.
#[test]
fn rfc_literal_attestations_are_listed_verified_and_restored() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = writer_key(&py, &tmp.path().join("k"));
    let registries: Vec<Registry> = if skopeo_ok() {
        [Kind::Distribution, Kind::Ferro]
            .into_iter()
            .filter_map(Registry::start)
            .collect()
    } else {
        Vec::new()
    };

    // Everything is written first, so the writer is exercised on every store even while the
    // product's checks below fail.
    let (spring_layers, spring_image) = fresh_spring_boot(&tmp.path().join("spring"));
    let mut cases = vec![(spring_layers, Target::Layout(&spring_image))];
    for registry in &registries {
        let dir = tmp.path().join(format!("{:?}", registry.kind));
        let (layers, image) = fresh_example(&dir);
        let reference = push(registry, &image, "rfc/app");
        cases.push((layers, Target::Registry(registry, reference)));
    }
    let mut all = Vec::new();
    for (layers, target) in &cases {
        let written = write_rfc(
            &py,
            target,
            &key,
            &public,
            &["--layers", layers.to_str().unwrap()],
        );
        // The shape: layer-scoped SBOMs (`<bp>/<layer>/sbom.<ext>`) carry the bare layer name
        // and a diffID, image-scoped ones the image's manifest digest.
        let image_digest = match target {
            Target::Layout(dir) => {
                let index: Value =
                    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
                index["manifests"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            Target::Registry(registry, reference) => repo_and_digest(registry, reference).1,
        };
        for entry in &written {
            let name = entry["subject"]["name"].as_str().unwrap();
            let digest = format!(
                "sha256:{}",
                entry["subject"]["digest"]["sha256"].as_str().unwrap()
            );
            let layer_scoped = entry["file"].as_str().unwrap().matches('/').count() == 2;
            assert_eq!(digest != image_digest, layer_scoped, "{entry}");
            if layer_scoped {
                assert!(!name.contains(':') && !name.contains('/'), "{entry}");
            }
        }
        all.push(written);
    }
    for ((layers, target), written) in cases.iter().zip(&all) {
        check_rfc_literal(target, layers, &public, written);
    }
}

/// b. Every SBOM image-scoped (the image as only subject, the buildpack only in the unsigned
/// annotation): restored, the report lists each placement under `unsigned-placement`, and
/// `--signed-placement-only` writes none of them.
#[test]
fn image_only_subjects_are_placed_from_the_annotation_and_marked_unsigned() {
    let Some(py) = python() else { return };
    if !skopeo_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = writer_key(&py, &tmp.path().join("k"));
    let registry = Registry::start(Kind::Distribution);
    let (layers, image) = fresh_example(&tmp.path().join("layout"));
    let mut targets = vec![(layers, Target::Layout(&image))];
    if let Some(registry) = &registry {
        let (layers, image) = fresh_example(&tmp.path().join("dist"));
        let reference = push(registry, &image, "rfc/image-only");
        targets.push((layers, Target::Registry(registry, reference)));
    }
    for (layers, target) in &targets {
        let written = write_rfc(
            &py,
            target,
            &key,
            &public,
            &["--layers", layers.to_str().unwrap(), "--only-image-subject"],
        );
        let image_digest = written[0]["subject"]["digest"].clone();
        assert!(
            written
                .iter()
                .all(|w| w["subject"]["digest"] == image_digest && !w["buildpack"].is_null()),
            "{written:#?}"
        );
    }
    for (layers, target) in &targets {
        let label = target.label();
        // Nothing signed names the layer: each SBOM is placed image-scoped, under its buildpack.
        let expected: BTreeMap<String, Vec<u8>> = sbom_files(layers)
            .into_iter()
            .map(|(path, bytes)| (image_scoped(&path), bytes))
            .collect();

        let out = tmp.path().join(format!("out-{label}"));
        let result = download(target, &out, &[&public], &[]);
        assert_eq!(result.status.code(), Some(0), "{label}: {}", text(&result));
        same_files(&downloaded(&out), &expected, &label.to_string());
        let report = json_of(&result);
        let unsigned = find_key(&report, "unsigned-placement")
            .unwrap_or_else(|| panic!("{label}: no \"unsigned-placement\" in {report:#}"));
        let mut marked: Vec<String> = unsigned
            .as_array()
            .unwrap_or_else(|| panic!("{label}: not an array: {unsigned}"))
            .iter()
            .map(|p| {
                let p = p.as_str().unwrap();
                p.strip_prefix("layers/sbom/launch/")
                    .unwrap_or(p)
                    .to_string()
            })
            .collect();
        marked.sort();
        marked.dedup();
        assert_eq!(
            marked,
            expected.keys().cloned().collect::<Vec<_>>(),
            "{label}: every placement came from the unsigned annotation"
        );

        let strict = tmp.path().join(format!("strict-{label}"));
        let result = download(target, &strict, &[&public], &["--signed-placement-only"]);
        assert_ne!(
            result.status.code(),
            Some(2),
            "{label}: --signed-placement-only must be accepted: {}",
            text(&result)
        );
        assert!(
            downloaded(&strict).is_empty(),
            "{label}: image-only statements were placed under --signed-placement-only"
        );
    }
}

/// The same files (names first, for a readable failure), byte for byte.
fn same_files(
    actual: &BTreeMap<String, Vec<u8>>,
    expected: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: file names"
    );
    for (name, bytes) in expected {
        assert!(actual[name] == *bytes, "{what}: {name} differs");
    }
}

/// `<bp>/<layer>/sbom.<ext>` as an image-scoped SBOM: `<bp>/sbom.<ext>`.
fn image_scoped(path: &str) -> String {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [buildpack, _layer, file] => format!("{buildpack}/{file}"),
        _ => path.to_string(),
    }
}

fn sign_with(target: &Target, layers: &Path, key: &Path, extra: &[&str]) {
    let mut command = Command::new(bin("cnb-attest"));
    command
        .args(["sign", &target.reference(), "--layers"])
        .arg(layers)
        .arg("--key")
        .arg(key)
        .args(extra)
        .env("COSIGN_PASSWORD", "");
    ok(run(env(&mut command, target.registry())));
}

/// c. Key rotation: an image signed with key 1 and again with key 2. Either key (or both) restores
/// everything; a third key writes nothing and exits 4 ("nothing verified"); the analyzer with key 1
/// restores everything.
#[test]
fn key_rotation_any_given_key_restores_and_an_unknown_key_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    for k in ["k1", "k2", "k3"] {
        key_pair(&tmp.path().join(k), "");
    }
    let target = Target::Layout(&image);
    sign_with(&target, &layers, &tmp.path().join("k1/cosign.key"), &[]);
    sign_with(&target, &layers, &tmp.path().join("k2/cosign.key"), &[]);
    let pubs: Vec<PathBuf> = ["k1", "k2", "k3"]
        .iter()
        .map(|k| tmp.path().join(k).join("cosign.pub"))
        .collect();
    let expected = sbom_files(&layers);

    let out = tmp.path().join("one");
    let result = download(&target, &out, &[&pubs[0]], &[]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    same_files(&downloaded(&out), &expected, "--key key1.pub");

    let out = tmp.path().join("both");
    let result = download(&target, &out, &[&pubs[0], &pubs[1]], &[]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    same_files(
        &downloaded(&out),
        &expected,
        "--key key1.pub --key key2.pub",
    );

    let out = tmp.path().join("neither");
    let result = download(&target, &out, &[&pubs[2]], &[]);
    assert_eq!(result.status.code(), Some(4), "{}", text(&result));
    assert!(downloaded(&out).is_empty(), "--key key3.pub wrote files");

    let into = tmp.path().join("analyzed");
    let result = analyze(&target, &into, &[&pubs[0]]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    assert_eq!(restored(&into), expected, "analyzer -key key1.pub");
}

/// d. A platform attestation (a run-image CycloneDX SBOM with only the image subject and no
/// buildpack annotation) beside the buildpack attestations blocks neither `download` nor the
/// analyzer, and is not written under `layers/sbom/launch`; it is listed and verified as an
/// attestation, and the download report names it (written elsewhere or skipped with a note).
#[test]
fn a_platform_attestation_does_not_block_the_restore() {
    let Some(py) = python() else { return };
    if !skopeo_ok() {
        return;
    }
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = writer_key(&py, &tmp.path().join("k"));
    let (layers, image) = fresh_example(&tmp.path().join("app"));
    let reference = push(&registry, &image, "rfc/platform");
    let target = Target::Registry(&registry, reference);
    // The buildpack attestations: cnb-attest's own (signed with the same PKCS#8 key).
    sign_with(&target, &layers, &key, &["--format", "dsse"]);
    // The platform's: a run-image SBOM.
    let platform = tmp.path().join("run-image.cdx.json");
    let run_image_sbom = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "metadata": {"component": {"type": "container", "name": "run-image", "version": "base"}},
        "components": [{"type": "library", "name": "libc6", "version": "2.35-0ubuntu3.8",
                        "purl": "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.8?arch=amd64"}]
    });
    let platform_bytes = serde_json::to_vec_pretty(&run_image_sbom).unwrap();
    fs::write(&platform, &platform_bytes).unwrap();
    let written = write_rfc(
        &py,
        &target,
        &key,
        &public,
        &["--platform-sbom", platform.to_str().unwrap()],
    );
    assert_eq!(written.len(), 1);
    assert!(written[0]["buildpack"].is_null());
    let platform_manifest = written[0]["manifest"].as_str().unwrap().to_string();
    let expected = sbom_files(&layers);

    // It is an attestation like the others: listed as one, and verified.
    let ls = cli(&target, &["ls", "--json"]);
    assert!(ls.status.success(), "{}", text(&ls));
    let listed: Vec<Value> = serde_json::from_slice(&ls.stdout).unwrap();
    let entry = listed
        .iter()
        .find(|l| l["manifest-digest"] == platform_manifest.as_str())
        .unwrap_or_else(|| panic!("the platform attestation is not listed: {listed:#?}"));
    assert_eq!(entry["format"], "dsse", "{entry:#}");
    let verify = cli(&target, &["verify", "--key", public.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    let out = tmp.path().join("out");
    let result = download(&target, &out, &[&public], &[]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    same_files(&downloaded(&out), &expected, "download");
    // Written elsewhere or skipped with a note: either way the report names it.
    assert!(
        text(&result).contains(&platform_manifest),
        "the report does not mention the platform attestation {platform_manifest}: {}",
        text(&result)
    );

    let into = tmp.path().join("analyzed");
    let result = analyze(&target, &into, &[&public]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    assert_eq!(restored(&into), expected, "analyzer");
    // Not anywhere under layers/sbom/launch, under any name.
    for tree in [out.join("layers/sbom/launch"), into.join("sbom/launch")] {
        for (rel, _) in cnb_attest_tests::snapshot(&tree) {
            let path = tree.join(&rel);
            assert!(
                !path.is_file() || fs::read(&path).unwrap() != platform_bytes,
                "the platform SBOM was written to {}",
                path.display()
            );
        }
    }
}

/// e. A correctly signed statement whose layer subject names `paketo-buildpacks/node-engine:node`
/// with ca-certificates' diffID: `verify` fails (exit 3), naming the node-engine subject and the
/// rule it broke, as `download` refuses it.
#[test]
fn verify_fails_on_a_layer_subject_with_another_layers_diff_id() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = writer_key(&py, &tmp.path().join("k"));
    let (layers, image) = fresh_example(tmp.path());
    let target = Target::Layout(&image);
    let written = write_rfc(
        &py,
        &target,
        &key,
        &public,
        &["--layers", layers.to_str().unwrap(), "--mislabel"],
    );
    let mislabelled: Vec<&Value> = written
        .iter()
        .filter(|w| w["subject"]["name"] == "paketo-buildpacks/node-engine:node")
        .collect();
    assert_eq!(mislabelled.len(), 3, "{written:#?}");

    let result = cli(&target, &["verify", "--key", public.to_str().unwrap()]);
    let output = text(&result);
    assert_eq!(result.status.code(), Some(3), "{output}");
    assert!(
        output.contains("node-engine"),
        "the failed subject is named: {output}"
    );
    assert!(
        output.contains("is not the layer the image's label records for it"),
        "the broken rule is said: {output}"
    );
    // The JSON names the rule, for the three mislabelled statements and no other.
    let result = cli(
        &target,
        &["verify", "--json", "--key", public.to_str().unwrap()],
    );
    assert_eq!(result.status.code(), Some(3), "{}", text(&result));
    let verdicts: Value = serde_json::from_slice(&result.stdout).unwrap();
    let rules: Vec<&Value> = verdicts
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v["failure"].is_null())
        .map(|v| &v["rule"])
        .collect();
    assert_eq!(rules, vec!["unrecorded-layer"; 3], "{verdicts:#}");
}

/// f. cosign 2's `.att` tag (`sign --format cosign-legacy`) on Distribution: `download` restores
/// every SBOM byte for byte.
#[test]
fn cosign_legacy_att_is_restored_on_distribution() {
    if !skopeo_ok() {
        return;
    }
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = push(&registry, &image, "rfc/legacy");
    let target = Target::Registry(&registry, reference);
    sign_with(
        &target,
        &layers,
        &tmp.path().join("k/cosign.key"),
        &["--format", "cosign-legacy"],
    );
    let (repo, digest) = repo_and_digest(&registry, &target.reference());
    let (status, body) = registry.curl(
        &format!("/v2/{repo}/manifests/sha256-{}.att", &digest[7..]),
        OCI_MANIFEST,
    );
    assert_eq!(status, 200, "the .att tag exists: {body}");
    let out = tmp.path().join("out");
    let result = download(&target, &out, &[&tmp.path().join("k/cosign.pub")], &[]);
    assert_eq!(result.status.code(), Some(0), "{}", text(&result));
    assert_eq!(downloaded(&out), sbom_files(&layers));
}
