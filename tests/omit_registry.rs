//! `-omit-sbom` on registry images (the exporter, and `cnb-attest strip-sbom-layer`), against
//! both real registries, with the recording proxy counting what went over the wire and skopeo and
//! curl as the independent readers: the image loses its SBOM layer (and only that: no blob but the
//! new config is uploaded), every tag `report.toml` lists moves, `report.toml` gets the new digest,
//! the signer configuration is for it, and the analyzer, with no layer to fall back to, restores
//! every SBOM from the attestations. Without the flag nothing changes; a second run finds no SBOM
//! layer and changes nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use cnb_attest_tests::proxy::{Action, Plan, Proxy, Recorded};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{
    bin, fresh_example, key_pair, ok, run, sbom_files, sha256, snapshot, text, which,
};
use serde_json::Value;

const LABEL: &str = "io.buildpacks.lifecycle.metadata";
/// What the lifecycle records as the SBOM layer's history.
const SBOM_HISTORY: &str = "Software Bill-of-Materials";
/// `report.toml` keys the rewrite must keep.
const EXTRA: &str = "\n[run-image]\nreference = \"registry.example/run@sha256:0000\"\n";

/// The example with a history entry per layer (and one empty-layer entry, as a run image's `ENV`
/// leaves), as the lifecycle writes them: the rewrite must drop exactly the SBOM layer's.
fn with_history(layout: &Path) {
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest[7..]);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config: Value =
        serde_json::from_slice(&fs::read(blob(&config_digest)).unwrap()).unwrap();
    let label: Value =
        serde_json::from_str(config["config"]["Labels"][LABEL].as_str().unwrap()).unwrap();
    let sbom = label["sbom"]["sha"].as_str().unwrap().to_string();
    let mut history = vec![serde_json::json!({"created_by": "ENV run image", "empty_layer": true})];
    for diff_id in config["rootfs"]["diff_ids"].as_array().unwrap() {
        let created_by = if diff_id == sbom.as_str() {
            SBOM_HISTORY.to_string()
        } else {
            format!("layer {}", &diff_id.as_str().unwrap()[7..19])
        };
        history
            .push(serde_json::json!({"created": "1980-01-01T00:00:01Z", "created_by": created_by}));
    }
    config["history"] = Value::Array(history);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    fs::write(blob(&sha256(&config_bytes)), &config_bytes).unwrap();
    manifest["config"]["digest"] = Value::String(sha256(&config_bytes));
    manifest["config"]["size"] = Value::from(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    fs::write(blob(&sha256(&manifest_bytes)), &manifest_bytes).unwrap();
    index["manifests"][0]["digest"] = Value::String(sha256(&manifest_bytes));
    index["manifests"][0]["size"] = Value::from(manifest_bytes.len());
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A registry with the example (with history) pushed by skopeo under three names in two
/// repositories, a proxy in front, a key pair, and the lifecycle's `report.toml` naming the
/// three through the proxy.
struct Exported {
    registry: Registry,
    proxy: Proxy,
    tmp: tempfile::TempDir,
    layers: PathBuf,
    /// `omit/app:1.0`, `omit/app:latest`, `omit/mirror:2.0` (repository paths, no host).
    names: Vec<&'static str>,
    /// The exported digest.
    digest: String,
    report: PathBuf,
}

impl Exported {
    fn new(kind: Kind, plan: Plan) -> Option<Exported> {
        which("skopeo").or_else(|| cnb_attest_tests::missing("skopeo"))?;
        let registry = Registry::start(kind)?;
        let proxy = Proxy::start(&registry.host, plan);
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        with_history(&image);
        key_pair(&tmp.path().join("k"), "");
        let names = vec!["omit/app:1.0", "omit/app:latest", "omit/mirror:2.0"];
        for name in &names {
            let (repo, tag) = name.split_once(':').unwrap();
            registry.push_layout(&image, repo, tag);
        }
        let digest = registry.digest_of(&format!("{}/{}", registry.host, names[0]));
        let manifest = skopeo(&registry, &["inspect", "--raw"], names[0]);
        let tags: Vec<String> = names
            .iter()
            .map(|n| format!("\"{}/{n}\"", proxy.host))
            .collect();
        let report = layers.join("report.toml");
        fs::write(
            &report,
            format!(
                "[image]\ntags = [{}]\ndigest = \"{digest}\"\nmanifest-size = {}\n{EXTRA}",
                tags.join(", "),
                manifest.len()
            ),
        )
        .unwrap();
        Some(Exported {
            registry,
            proxy,
            tmp,
            layers,
            names,
            digest,
            report,
        })
    }

    /// A client's environment for the proxy host: the registry's credentials, plain HTTP.
    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        let auth = match self.registry.creds() {
            Some(creds) => format!(
                "{{\"{}\": \"Basic {}\"}}",
                self.proxy.host,
                base64::engine::general_purpose::STANDARD.encode(creds)
            ),
            None => "{}".to_string(),
        };
        command
            .env("CNB_REGISTRY_AUTH", auth)
            .env("CNB_INSECURE_REGISTRIES", &self.proxy.host)
            .env("DOCKER_CONFIG", "/nonexistent")
    }

    fn exporter(&self, extra: &[&str]) -> Output {
        run(self
            .env(&mut Command::new(bin("exporter")))
            .arg("-layers")
            .arg(&self.layers)
            .arg("-report")
            .arg(&self.report)
            .args(extra))
    }

    fn analyzer(&self, out: &Path, extra: &[&str]) -> Output {
        run(self
            .env(&mut Command::new(bin("analyzer")))
            .arg("-previous-image")
            .arg(format!("{}/{}", self.proxy.host, self.names[0]))
            .arg("-layers")
            .arg(out)
            .arg("-key")
            .arg(self.tmp.path().join("k/cosign.pub"))
            .args(extra))
    }

    /// Where each name points now, as skopeo reads it straight from the registry.
    fn digests(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|n| {
                self.registry
                    .digest_of(&format!("{}/{n}", self.registry.host))
            })
            .collect()
    }
}

/// `skopeo <args> docker://<registry>/<name>` straight from the registry, stdout.
fn skopeo(registry: &Registry, args: &[&str], name: &str) -> String {
    let mut command = Command::new("skopeo");
    command
        .args(args)
        .arg("--tls-verify=false")
        .arg(format!("docker://{}/{name}", registry.host));
    if let Some(creds) = registry.creds() {
        command.arg("--creds").arg(creds);
    }
    ok(run(&mut command))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn label(config: &Value) -> Value {
    json(config["config"]["Labels"][LABEL].as_str().unwrap())
}

fn layer_bytes(manifest: &Value) -> u64 {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum()
}

/// The blob uploads completed among `requests` (201 Created): `(repository path, digest
/// uploaded)`, the digest from the `?digest=` of the request that completed the upload (a
/// single-`POST` probe a registry answers with 202 completes nothing).
fn uploads(requests: &[Recorded]) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r.request.path().contains("/blobs/uploads"))
        .filter(|r| r.status == Some(201) && r.request.query().contains("digest="))
        .map(|r| {
            let repo = r.request.path()["/v2/".len()..]
                .split("/blobs/uploads")
                .next()
                .unwrap()
                .to_string();
            let digest = r
                .request
                .query()
                .split('&')
                .find_map(|p| p.strip_prefix("digest="))
                .unwrap_or_default()
                .replace("%3A", ":");
            (repo, digest)
        })
        .collect()
}

fn count(requests: &[Recorded], method: &str, part: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.request.method == method && r.request.path().contains(part))
        .count()
}

#[test]
fn omit_sbom_rewrites_the_registry_image_moves_every_tag_and_the_attestations_restore_all() {
    for kind in [Kind::Distribution, Kind::Ferro] {
        let Some(e) = Exported::new(kind, Plan::new()) else {
            continue;
        };
        let old_raw = skopeo(&e.registry, &["inspect", "--raw"], e.names[0]);
        let old_manifest = json(&old_raw);
        let old_config = json(&skopeo(
            &e.registry,
            &["inspect", "--config", "--raw"],
            e.names[0],
        ));
        let sbom_sha = label(&old_config)["sbom"]["sha"]
            .as_str()
            .unwrap()
            .to_string();
        let position = old_config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .position(|d| d == sbom_sha.as_str())
            .unwrap();
        let sbom_layer = old_manifest["layers"][position].clone();

        // Without the flag nothing changes: no request at all, tags and report.toml as they were.
        let label_file = e.tmp.path().join("label.json");
        fs::write(
            &label_file,
            old_config["config"]["Labels"][LABEL].as_str().unwrap(),
        )
        .unwrap();
        let report_before = fs::read(&e.report).unwrap();
        let plain = e.exporter(&["-image-label", label_file.to_str().unwrap()]);
        assert!(plain.status.success(), "{kind:?}: {}", text(&plain));
        assert!(
            e.proxy.requests().is_empty(),
            "{kind:?}: {}",
            e.proxy.summary()
        );
        assert_eq!(e.digests(), vec![e.digest.clone(); 3]);
        assert_eq!(fs::read(&e.report).unwrap(), report_before);
        let config = fs::read_to_string(e.layers.join("signer.toml")).unwrap();
        assert!(config.contains(&e.digest), "{config}");

        // Analyzer before: the image still has its SBOM layer, the fallback restores from it.
        let from_layer = e.tmp.path().join("from-layer");
        let out = e.analyzer(&from_layer, &[]);
        assert!(out.status.success(), "{kind:?}: {}", text(&out));
        assert_eq!(sbom_files(&from_layer), sbom_files(&e.layers));

        // -omit-sbom.
        let before = e.proxy.requests().len();
        let exported = e.exporter(&["-omit-sbom", "-json"]);
        assert!(exported.status.success(), "{kind:?}: {}", text(&exported));
        let requests: Vec<Recorded> = e.proxy.requests().split_off(before);
        let result = json(&String::from_utf8_lossy(&exported.stdout));
        let new_digest = result["image-digest"].as_str().unwrap().to_string();
        assert_ne!(new_digest, e.digest);

        // skopeo: every name now points to the new manifest.
        assert_eq!(e.digests(), vec![new_digest.clone(); 3], "{kind:?}");
        let raw = skopeo(&e.registry, &["inspect", "--raw"], e.names[0]);
        assert_eq!(sha256(raw.as_bytes()), new_digest);
        let new_manifest = json(&raw);
        let new_config = json(&skopeo(
            &e.registry,
            &["inspect", "--config", "--raw"],
            e.names[0],
        ));
        // The layers are the old ones less exactly the SBOM layer, so the image is smaller by its
        // size (the config changes by the bytes of the label key and history entry).
        let mut expected_layers = old_manifest["layers"].as_array().unwrap().clone();
        expected_layers.remove(position);
        assert_eq!(new_manifest["layers"], Value::Array(expected_layers));
        let sbom_size = sbom_layer["size"].as_u64().unwrap();
        assert_eq!(
            layer_bytes(&old_manifest) - layer_bytes(&new_manifest),
            sbom_size
        );
        let config_delta = old_manifest["config"]["size"].as_i64().unwrap()
            - new_manifest["config"]["size"].as_i64().unwrap();
        eprintln!(
            "{kind:?}: layers {} -> {} bytes (SBOM layer {sbom_size} bytes), config {config_delta} bytes smaller, manifest {} -> {} bytes",
            layer_bytes(&old_manifest),
            layer_bytes(&new_manifest),
            old_raw.len(),
            raw.len()
        );
        // The label has no `sbom` key, everything else in it is as it was.
        let mut expected_label = label(&old_config);
        expected_label.as_object_mut().unwrap().remove("sbom");
        assert_eq!(label(&new_config), expected_label);
        // diff_ids and history: one fewer each, exactly the SBOM layer's.
        let old_ids = old_config["rootfs"]["diff_ids"].as_array().unwrap();
        let new_ids = new_config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(new_ids.len() + 1, old_ids.len());
        assert!(!new_ids.iter().any(|d| d == sbom_sha.as_str()));
        let old_history = old_config["history"].as_array().unwrap();
        let new_history = new_config["history"].as_array().unwrap();
        assert_eq!(new_history.len() + 1, old_history.len());
        assert!(!new_history.iter().any(|h| h["created_by"] == SBOM_HISTORY));
        assert!(old_history.iter().any(|h| h["created_by"] == SBOM_HISTORY));
        // Every other key of the config is kept, in its order.
        let keys = |c: &Value| c.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&new_config), keys(&old_config));

        // The wire: one manifest read, one config read, the new config (the only new blob) in
        // each repository: uploaded, or already there by the registry's own HEAD answer (ferro
        // keeps one blob store for all repositories); one PUT per tag; no layer uploaded.
        let uploaded = uploads(&requests);
        let config_digest = new_manifest["config"]["digest"].as_str().unwrap();
        assert!(
            uploaded.iter().all(|(_, d)| d == config_digest),
            "{kind:?}: only the config is uploaded: {uploaded:?}"
        );
        let present: Vec<String> = requests
            .iter()
            .filter(|r| r.request.method == "HEAD" && r.status == Some(200))
            .filter(|r| r.request.path().ends_with(config_digest))
            .map(|r| {
                r.request.path()["/v2/".len()..]
                    .split("/blobs/")
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut repos: Vec<&str> = uploaded.iter().map(|(r, _)| r.as_str()).collect();
        repos.extend(present.iter().map(String::as_str));
        repos.sort();
        assert_eq!(
            repos,
            ["omit/app", "omit/mirror"],
            "{kind:?}: {}",
            e.proxy.summary()
        );
        let said: Vec<&str> = result["omitted"]["config-uploaded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let seen: Vec<String> = uploaded
            .iter()
            .map(|(r, _)| format!("{}/{r}", e.proxy.host))
            .collect();
        assert_eq!(said, seen, "the report names the uploads the proxy saw");
        let layer_digests: BTreeSet<&str> = old_manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert!(uploaded
            .iter()
            .all(|(_, d)| !layer_digests.contains(d.as_str())));
        assert_eq!(
            count(&requests, "PUT", "/manifests/"),
            3,
            "{}",
            e.proxy.summary()
        );
        assert_eq!(
            count(&requests, "GET", "/blobs/sha256:"),
            1,
            "{}",
            e.proxy.summary()
        );
        let uploads_sent = requests
            .iter()
            .filter(|r| r.request.path().contains("/blobs/uploads"))
            .count();
        eprintln!(
            "{kind:?}: -omit-sbom sent {} request(s): {} manifest GET, {} blob GET, {} blob HEAD, {} upload request(s) (config only), {} manifest PUT",
            requests.len(),
            count(&requests, "GET", "/manifests/"),
            count(&requests, "GET", "/blobs/sha256:"),
            count(&requests, "HEAD", "/blobs/"),
            uploads_sent,
            count(&requests, "PUT", "/manifests/")
        );
        assert_eq!(
            result["requests"].as_u64(),
            Some(requests.len() as u64),
            "the report counts what the proxy saw"
        );

        // report.toml: the new digest and manifest size; the tags and every other key kept.
        let report = fs::read_to_string(&e.report).unwrap();
        assert!(
            report.contains(&format!("digest = \"{new_digest}\"")),
            "{report}"
        );
        assert!(
            report.contains(&format!("manifest-size = {}", raw.len())),
            "{report}"
        );
        assert!(
            report.contains("reference = \"registry.example/run@sha256:0000\""),
            "{report}"
        );
        for name in &e.names {
            assert!(
                report.contains(&format!("{}/{name}", e.proxy.host)),
                "{report}"
            );
        }
        // The signer configuration is for the new digest.
        let config = fs::read_to_string(e.layers.join("signer.toml")).unwrap();
        assert!(
            config.contains(&new_digest) && !config.contains(&e.digest),
            "{config}"
        );

        // The analyzer: no attestations yet, and no SBOM layer to fall back to.
        let nothing = e.tmp.path().join("nothing");
        let out = e.analyzer(&nothing, &[]);
        assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
        assert!(
            text(&out).contains("has neither SBOM attestations nor an SBOM layer"),
            "{kind:?}: {}",
            text(&out)
        );
        assert!(!nothing.exists() || snapshot(&nothing).is_empty());
        let strict = e.analyzer(&nothing, &["-strict"]);
        assert_eq!(
            strict.status.code(),
            Some(36),
            "{kind:?}: {}",
            text(&strict)
        );
        // `download --sbom-layer-fallback` says the same (exit 4: nothing to download).
        let download = run(e
            .env(&mut Command::new(bin("cnb-attest")))
            .args(["download", "--sbom-layer-fallback", "-o"])
            .arg(&nothing)
            .arg("--key")
            .arg(e.tmp.path().join("k/cosign.pub"))
            .arg(format!("{}/{}", e.proxy.host, e.names[0])));
        assert_eq!(
            download.status.code(),
            Some(4),
            "{kind:?}: {}",
            text(&download)
        );
        assert!(
            text(&download).contains("has neither SBOM attestations nor an SBOM layer"),
            "{}",
            text(&download)
        );
        assert!(!nothing.exists() || snapshot(&nothing).is_empty());

        // The signer signs the new digest (in both repositories report.toml names); the analyzer
        // then restores every SBOM from the attestations, byte for byte.
        ok(run(e
            .env(&mut Command::new(bin("signer")))
            .arg("-layers")
            .arg(&e.layers)
            .arg("-report")
            .arg(&e.report)
            .arg("-key")
            .arg(e.tmp.path().join("k/cosign.key"))
            .env("COSIGN_PASSWORD", "")));
        let restored = e.tmp.path().join("restored");
        let out = e.analyzer(&restored, &["-strict", "-require-all-layers"]);
        assert!(out.status.success(), "{kind:?}: {}", text(&out));
        assert!(
            text(&out).contains("from verified attestations"),
            "{}",
            text(&out)
        );
        assert_eq!(sbom_files(&restored), sbom_files(&e.layers));
        assert!(!sbom_files(&restored).is_empty());

        // Twice: the second run finds no SBOM layer and changes nothing, saying so.
        let report_after = fs::read(&e.report).unwrap();
        let before = e.proxy.requests().len();
        let again = e.exporter(&["-omit-sbom"]);
        assert!(again.status.success(), "{kind:?}: {}", text(&again));
        assert!(
            text(&again).contains("has no SBOM layer; nothing to omit"),
            "{}",
            text(&again)
        );
        let second: Vec<Recorded> = e.proxy.requests().split_off(before);
        assert!(
            second.iter().all(|r| r.request.method == "GET"),
            "{kind:?}: the second run only reads: {}",
            e.proxy.summary()
        );
        assert_eq!(e.digests(), vec![new_digest.clone(); 3]);
        assert_eq!(fs::read(&e.report).unwrap(), report_after);
        let config = fs::read_to_string(e.layers.join("signer.toml")).unwrap();
        assert!(config.contains(&new_digest), "{config}");
    }
}

#[test]
fn a_tag_that_cannot_move_is_named_and_nothing_else_is_rewritten_until_a_rerun_finishes() {
    for kind in [Kind::Distribution, Kind::Ferro] {
        // The registry refuses the manifest PUT of one tag (once).
        let plan = Plan::new().on(
            |r| r.method == "PUT" && r.path() == "/v2/omit/mirror/manifests/2.0",
            |_, n| {
                if n == 0 {
                    Action::Respond {
                        status: 403,
                        headers: vec![("Content-Type".into(), "application/json".into())],
                        body: br#"{"errors":[{"code":"DENIED","message":"tag is protected"}]}"#
                            .to_vec(),
                    }
                } else {
                    Action::Forward
                }
            },
        );
        let Some(e) = Exported::new(kind, plan) else {
            continue;
        };
        let report_before = fs::read(&e.report).unwrap();
        let failed = e.exporter(&["-omit-sbom"]);
        assert_eq!(
            failed.status.code(),
            Some(68),
            "{kind:?}: {}",
            text(&failed)
        );
        let message = text(&failed);
        let host = &e.proxy.host;
        assert!(
            message.contains(&format!(
                "moved {host}/omit/app:1.0, {host}/omit/app:latest;"
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "not moved (still the old image) {host}/omit/mirror:2.0"
            )),
            "{message}"
        );
        // As said: two names moved, one did not; report.toml and the configuration untouched.
        let digests = e.digests();
        assert_eq!(digests[2], e.digest);
        assert_ne!(digests[0], e.digest);
        assert_eq!(digests[0], digests[1]);
        assert_eq!(fs::read(&e.report).unwrap(), report_before);
        assert!(!e.layers.join("signer.toml").exists());

        // A rerun (the registry now accepts) finishes: the same rewrite, every tag moved.
        let rerun = e.exporter(&["-omit-sbom"]);
        assert!(rerun.status.success(), "{kind:?}: {}", text(&rerun));
        assert_eq!(e.digests(), vec![digests[0].clone(); 3]);
        let report = fs::read_to_string(&e.report).unwrap();
        assert!(
            report.contains(&format!("digest = \"{}\"", digests[0])),
            "{report}"
        );
    }
}

#[test]
fn strip_sbom_layer_moves_the_named_tag_and_a_second_run_changes_nothing() {
    for kind in [Kind::Distribution, Kind::Ferro] {
        let Some(e) = Exported::new(kind, Plan::new()) else {
            continue;
        };
        let reference = format!("{}/omit/app:latest", e.proxy.host);
        let cli = |args: &[&str]| run(e.env(&mut Command::new(bin("cnb-attest"))).args(args));
        let first = cli(&["strip-sbom-layer", &reference, "--json"]);
        assert!(first.status.success(), "{kind:?}: {}", text(&first));
        let result = json(&String::from_utf8_lossy(&first.stdout));
        assert_eq!(result["omitted"]["outcome"], "rewritten", "{result}");
        let to = result["omitted"]["to"].as_str().unwrap();
        // Only the named tag moved; the others still name the exported image.
        assert_eq!(
            e.digests(),
            vec![e.digest.clone(), to.to_string(), e.digest.clone()]
        );
        let config = json(&skopeo(
            &e.registry,
            &["inspect", "--config", "--raw"],
            "omit/app:latest",
        ));
        assert!(label(&config).get("sbom").is_none());
        let second = cli(&["strip-sbom-layer", &reference]);
        assert!(second.status.success(), "{kind:?}: {}", text(&second));
        assert!(
            text(&second).contains("has no SBOM layer; nothing to strip"),
            "{}",
            text(&second)
        );
        assert_eq!(
            e.digests(),
            vec![e.digest.clone(), to.to_string(), e.digest.clone()]
        );
    }
}
