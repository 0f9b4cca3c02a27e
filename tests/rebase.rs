//! Rebase: an app image signed on run image A, rebased onto run image B (a new digest, the same
//! app, buildpack and launcher layers), and the `rebaser` phase carrying its attestations over.
//!
//! The rebase itself is done here by a test helper that rewrites the OCI layout's config, manifest
//! and index with `serde_json` alone (as the lifecycle's rebaser rewrites an image), independent of
//! the product's crates. Everything else is checked from outside: `cnb-attest verify`, `download`
//! and `ls`, the raw manifests (layout blob files, or `curl` against the registry), and
//! securesystemslib verifying the re-issued DSSE envelopes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use cnb_attest_tests::proxy::{Action, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{
    bin, fresh_spring_boot, key_pair, ok, oracle, python, run, sbom_files, sha256, snapshot, text,
};
use serde_json::{json, Value};

const REPLACES: &str = "dev.cnb-attest.replaces";
const PREVIOUS_IMAGE: &str = "dev.cnb-attest.previous-image";
const LABEL: &str = "io.buildpacks.lifecycle.metadata";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REPO: &str = "team/spring-boot";
const NAME: &str = "registry.example/team/spring-boot";

/// A one-file uncompressed tar, written by hand (ustar header, content, two zero blocks).
fn tar_one(path: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..path.len()].copy_from_slice(path.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 1000);
    octal(&mut header[116..124], 1000);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 315_532_801);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Writes `bytes` as a blob of `layout`; returns its descriptor's `(digest, size)`.
fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    fs::write(blob_path(layout, &digest), bytes).unwrap();
    (digest, bytes.len())
}

/// The manifest digest tagged `tag` in `layout`'s index.
fn tagged(layout: &Path, tag: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"][REF_NAME] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What the lifecycle's rebaser does to an image, on an OCI layout: the run-image layers (up to
/// and including the label's `runImage.topLayer`) are replaced by run image B's one layer, the
/// label's `runImage` is updated, every other layer is kept; the result is tagged `to`. With
/// `change_app`, the app layer is replaced too (then it is not a rebase). Returns the new manifest
/// digest and run image B's layer diffID.
fn rebase_layout(layout: &Path, from: &str, to: &str, change_app: bool) -> (String, String) {
    let manifest_digest = tagged(layout, from);
    let mut manifest = read_json(&blob_path(layout, &manifest_digest));
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&blob_path(layout, &config_digest));
    let mut label: Value =
        serde_json::from_str(config["config"]["Labels"][LABEL].as_str().unwrap()).unwrap();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let layers = manifest["layers"].as_array().unwrap().clone();
    let top = label["runImage"]["topLayer"].as_str().unwrap().to_string();
    let position = diff_ids.iter().position(|d| *d == top).unwrap();

    let run_b = tar_one(
        "etc/os-release",
        b"NAME=\"run image B\"\nID=run-image-b\nVERSION_ID=2\n",
    );
    let (run_b_digest, run_b_size) = write_blob(layout, &run_b);
    let media_type = layers[0]["mediaType"].clone();
    let mut new_diff_ids = vec![run_b_digest.clone()];
    let mut new_layers =
        vec![json!({"mediaType": media_type, "digest": run_b_digest, "size": run_b_size})];
    new_diff_ids.extend(diff_ids[position + 1..].iter().cloned());
    new_layers.extend(layers[position + 1..].iter().cloned());
    if change_app {
        let app = label["app"][0]["sha"].as_str().unwrap().to_string();
        let other = tar_one("workspace/app.jar", b"a different application\n");
        let (digest, size) = write_blob(layout, &other);
        let at = new_diff_ids.iter().position(|d| *d == app).unwrap();
        new_diff_ids[at] = digest.clone();
        new_layers[at] = json!({"mediaType": media_type, "digest": digest, "size": size});
        label["app"][0]["sha"] = json!(digest);
    }
    label["runImage"]["topLayer"] = json!(run_b_digest);
    label["runImage"]["reference"] = json!(format!(
        "registry.invalid/cnb-attest/run-image-b@{run_b_digest}"
    ));
    label["runImage"]["image"] = json!("registry.invalid/cnb-attest/run-image-b:2");
    config["rootfs"]["diff_ids"] = json!(new_diff_ids);
    config["config"]["Labels"][LABEL] = json!(serde_json::to_string(&label).unwrap());
    let (config_digest, config_size) = write_blob(layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    manifest["layers"] = json!(new_layers);
    let (digest, size) = write_blob(layout, &serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "annotations": {REF_NAME: to},
    }));
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    (digest, run_b_digest)
}

/// A run image's SBOM (CycloneDX) and a signer configuration attesting it for `image` and its run
/// layer `run_layer`, as a platform writes one; returns the configuration's path.
fn run_image_config(
    dir: &Path,
    reference: &str,
    digest: &str,
    run_layer: &str,
    which: &str,
) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let sbom = dir.join("sbom.cdx.json");
    fs::write(
        &sbom,
        serde_json::to_vec(&json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {"component": {"type": "operating-system", "name": format!("run image {which}")}},
            "components": [{"type": "library", "name": format!("libc-{which}"), "version": "1"}],
        }))
        .unwrap(),
    )
    .unwrap();
    let config = dir.join("platform.toml");
    fs::write(
        &config,
        format!(
            "[image]\nreference = \"{reference}\"\n\n[[attestations]]\n  [[attestations.predicate]]\n  type = \"https://cyclonedx.org/bom\"\n  uri = \"{}\"\n  [[attestations.statement.subject]]\n  name = \"{NAME}\"\n  digest = \"{digest}\"\n  [[attestations.statement.subject]]\n  name = \"run-image\"\n  digest = \"{run_layer}\"\n",
            sbom.display()
        ),
    )
    .unwrap();
    config
}

/// Where the images are: one OCI layout, or a registry the test started (the layout is pushed
/// there with skopeo).
struct Flow {
    tmp: tempfile::TempDir,
    layers: PathBuf,
    layout: PathBuf,
    registry: Option<Registry>,
    old: String,
    old_digest: String,
    new: String,
    new_digest: String,
    other: String,
    run_a: String,
    run_b: String,
    platform_b: PathBuf,
}

impl Flow {
    /// Builds the spring-boot app image on run image A, its rebase onto B (tag `rebased`) and an
    /// image whose app layer differs too (tag `other`); signs the first with key `a` (every
    /// buildpack and launcher SBOM, and a run-image-A SBOM from a platform configuration).
    fn new(kind: Option<Kind>) -> Option<Flow> {
        match kind {
            Some(kind) => Flow::with(Some(Registry::start(kind)?)),
            None => Flow::with(None),
        }
    }

    /// [`Flow::new`] on `registry` (or a layout).
    fn with(registry: Option<Registry>) -> Option<Flow> {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, layout) = fresh_spring_boot(tmp.path());
        // Exported as the RFC proposes, with `-omit-sbom`: the attestations alone carry the SBOMs.
        let layer_count = |layout: &Path| {
            read_json(&blob_path(layout, &tagged(layout, "latest")))["layers"]
                .as_array()
                .unwrap()
                .len()
        };
        let with_sbom_layer = layer_count(&layout);
        ok(run(Command::new(bin("exporter"))
            .arg("-layers")
            .arg(&layers)
            .arg("-layout-image")
            .arg(format!("oci:{}:latest", layout.display()))
            .arg("-omit-sbom")));
        assert_eq!(
            layer_count(&layout) + 1,
            with_sbom_layer,
            "-omit-sbom kept the SBOM layer"
        );
        for keys in ["a", "b", "c"] {
            key_pair(&tmp.path().join(keys), "");
        }
        let old_digest = tagged(&layout, "latest");
        let old_config = read_json(&blob_path(
            &layout,
            read_json(&blob_path(&layout, &old_digest))["config"]["digest"]
                .as_str()
                .unwrap(),
        ));
        let label: Value =
            serde_json::from_str(old_config["config"]["Labels"][LABEL].as_str().unwrap()).unwrap();
        let run_a = label["runImage"]["topLayer"].as_str().unwrap().to_string();
        let (new_digest, run_b) = rebase_layout(&layout, "latest", "rebased", false);
        let (other_digest, _) = rebase_layout(&layout, "latest", "other", true);
        let pinned = |digest: &str| match &registry {
            Some(r) => format!("{}/{REPO}@{digest}", r.host),
            None => format!("oci:{}@{digest}", layout.display()),
        };
        if let Some(r) = &registry {
            for tag in ["latest", "rebased", "other"] {
                r.push_layout_tag(&layout, tag, REPO, tag);
            }
            assert_eq!(
                r.digest_of(&format!("{}/{REPO}:rebased", r.host)),
                new_digest
            );
        }
        let flow = Flow {
            old: pinned(&old_digest),
            new: pinned(&new_digest),
            other: pinned(&other_digest),
            platform_b: run_image_config(
                &tmp.path().join("platform-b"),
                &pinned(&new_digest),
                &new_digest,
                &run_b,
                "B",
            ),
            tmp,
            layers,
            layout,
            registry,
            old_digest,
            new_digest,
            run_a,
            run_b,
        };
        let platform_a = run_image_config(
            &flow.tmp.path().join("platform-a"),
            &flow.old,
            &flow.old_digest,
            &flow.run_a,
            "A",
        );
        flow.sign_layers("a", &[]);
        flow.sign_config(&platform_a, "a");
        Some(flow)
    }

    /// `cnb-attest sign` of the previous image's build (every buildpack and launcher SBOM) with
    /// key `which`, and `extra` flags.
    fn sign_layers(&self, which: &str, extra: &[&str]) {
        let key = self.keys(which).join("cosign.key");
        ok(self.cli(
            &[
                "sign",
                &self.old,
                "--layers",
                self.layers.to_str().unwrap(),
                "--name",
                NAME,
                "--key",
                key.to_str().unwrap(),
            ]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>(),
        ));
    }

    /// `cnb-attest sign --config <config>` of the previous image with key `which`.
    fn sign_config(&self, config: &Path, which: &str) {
        let key = self.keys(which).join("cosign.key");
        ok(self.cli(&[
            "sign",
            &self.old,
            "--config",
            config.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]));
    }

    fn keys(&self, which: &str) -> PathBuf {
        self.tmp.path().join(which)
    }

    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("COSIGN_PASSWORD", "");
        if let Some(r) = &self.registry {
            command
                .env("CNB_REGISTRY_AUTH", r.cnb_registry_auth())
                .env("CNB_INSECURE_REGISTRIES", &r.host)
                .env("DOCKER_CONFIG", "/nonexistent");
        }
        command
    }

    fn cli(&self, args: &[&str]) -> Output {
        run(self.env(&mut Command::new(bin("cnb-attest"))).args(args))
    }

    /// `rebaser -previous-image <old> <target...> -verify-key <verify>/cosign.pub -key b/cosign.key
    /// -config <platform B>`, not yet run.
    fn rebaser_command(&self, target: &[&str], verify: &str) -> Command {
        let mut command = Command::new(bin("rebaser"));
        self.env(&mut command)
            .args(["-previous-image", &self.old])
            .args(target)
            .arg("-verify-key")
            .arg(self.keys(verify).join("cosign.pub"))
            .arg("-key")
            .arg(self.keys("b").join("cosign.key"))
            .arg("-config")
            .arg(&self.platform_b);
        command
    }

    /// [`Flow::rebaser_command`] with `-json`.
    fn rebaser(&self, target: &[&str], verify: &str) -> Output {
        run(self.rebaser_command(target, verify).arg("-json"))
    }

    /// [`Flow::rebaser_command`] with `-verify-key a`, printing text.
    fn rebaser_text(&self, target: &[&str]) -> Output {
        run(&mut self.rebaser_command(target, "a"))
    }

    /// `ls --json` of `image` (empty when it has no attestations).
    fn ls(&self, image: &str) -> Vec<Value> {
        let out = self.cli(&["ls", "--json", image]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// What a refused run must leave as it was: the whole layout, or the registry's tags and the
    /// image's listing.
    fn state(&self, image: &str) -> String {
        match &self.registry {
            None => format!("{:?}", snapshot(&self.layout)),
            Some(r) => format!(
                "{:?} {:?}",
                r.curl(&format!("/v2/{REPO}/tags/list"), "application/json"),
                self.ls(image)
            ),
        }
    }

    /// A manifest, read from the layout's blob file or with curl from the registry.
    fn manifest(&self, digest: &str) -> Value {
        match &self.registry {
            None => read_json(&blob_path(&self.layout, digest)),
            Some(r) => {
                let (status, body) =
                    r.curl(&format!("/v2/{REPO}/manifests/{digest}"), OCI_MANIFEST);
                assert_eq!(status, 200, "{body}");
                serde_json::from_str(&body).unwrap()
            }
        }
    }

    /// A blob, read from the layout or with curl from the registry.
    fn blob(&self, digest: &str) -> Vec<u8> {
        match &self.registry {
            None => fs::read(blob_path(&self.layout, digest)).unwrap(),
            Some(r) => {
                let (status, body) = r.curl(&format!("/v2/{REPO}/blobs/{digest}"), "*/*");
                assert_eq!(status, 200, "{body}");
                body.into_bytes()
            }
        }
    }
}

fn report_of(out: &Output) -> Value {
    assert!(out.status.success(), "rebaser failed:\n{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn subjects_name(entries: &[Value], diff_id: &str) -> usize {
    entries
        .iter()
        .filter(|e| {
            e["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s.as_str().unwrap_or("").ends_with(diff_id))
        })
        .count()
}

/// The whole flow on one store; `target` names the rebased image for the rebaser.
fn rebase_flow(flow: &Flow, target: &[&str]) {
    let old_listing = flow.ls(&flow.old);
    let sboms = sbom_files(&flow.layers);
    // Every SBOM, the run-image-A SBOM and the image signature.
    assert_eq!(old_listing.len(), sboms.len() + 2, "{old_listing:#?}");
    assert_eq!(subjects_name(&old_listing, &flow.run_a), 1);

    // A wrong verification key: nothing verifies, nothing is carried or written.
    let before = flow.state(&flow.new);
    let out = flow.rebaser(target, "c");
    assert_eq!(out.status.code(), Some(76), "{}", text(&out));
    assert!(
        text(&out).contains("none of the previous image's")
            && text(&out).contains("not signed by a trusted key"),
        "{}",
        text(&out)
    );
    assert_eq!(
        flow.state(&flow.new),
        before,
        "a refused run wrote something"
    );
    assert!(flow.ls(&flow.new).is_empty());

    // An image whose app layer differs is not a rebase: refused, nothing written.
    let before = flow.state(&flow.other);
    let out = flow.rebaser(&["-image", &flow.other], "a");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(
        text(&out).contains("not a rebase of the previous one") && text(&out).contains("app[0]"),
        "{}",
        text(&out)
    );
    assert_eq!(
        flow.state(&flow.other),
        before,
        "a refused run wrote something"
    );

    // The rebase.
    let report = report_of(&flow.rebaser(target, "a"));
    assert_eq!(report["image-digest"], flow.new_digest.as_str());
    assert_eq!(report["previous-digest"], flow.old_digest.as_str());
    let carried = report["carried"].as_array().unwrap();
    assert_eq!(carried.len(), sboms.len(), "{report:#}");
    let dropped = report["dropped"].as_array().unwrap();
    let gone: Vec<&Value> = dropped
        .iter()
        .filter(|d| d["reason"] == "layer-gone")
        .collect();
    assert_eq!(gone.len(), 1, "{report:#}");
    assert_eq!(gone[0]["digest"], flow.run_a.as_str());
    assert_eq!(gone[0]["subject"], "run-image");
    assert_eq!(
        dropped
            .iter()
            .filter(|d| d["reason"] == "image-signature")
            .count(),
        1,
        "{report:#}"
    );
    assert_eq!(dropped.len(), 2, "{report:#}");
    assert_eq!(report["added"].as_array().unwrap().len(), 1, "{report:#}");
    // The text form says the same.
    let out = run(flow
        .env(&mut Command::new(bin("cnb-attest")))
        .arg("rebase")
        .args(["--previous-image", &flow.old])
        .args(target.iter().map(|a| match a.strip_prefix('-') {
            Some(flag) if !flag.starts_with('-') => format!("--{flag}"),
            _ => a.to_string(),
        }))
        .arg("--verify-key")
        .arg(flow.keys("a").join("cosign.pub"))
        .arg("--key")
        .arg(flow.keys("b").join("cosign.key"))
        .arg("--config")
        .arg(&flow.platform_b));
    let shown = ok(out);
    assert!(
        shown.contains("dropped  ")
            && shown.contains(&flow.run_a)
            && shown.contains("previous run image"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{} carried, 2 dropped, 1 added", sboms.len())),
        "{shown}"
    );

    // The new digest verifies, layers all covered, with the rebaser's key.
    let new_key = flow.keys("b").join("cosign.pub");
    let verify_new = || {
        ok(flow.cli(&[
            "verify",
            &flow.new,
            "--key",
            new_key.to_str().unwrap(),
            "--require-all-layers",
        ]))
    };
    verify_new();
    // Every buildpack and launcher SBOM is there, byte for byte.
    let out_dir = flow.tmp.path().join("downloaded");
    ok(flow.cli(&[
        "download",
        &flow.new,
        "-o",
        out_dir.to_str().unwrap(),
        "--key",
        new_key.to_str().unwrap(),
        "--require-all-layers",
    ]));
    assert_eq!(sbom_files(&out_dir.join("layers")), sboms);
    // Run image A's SBOM is gone, run image B's is there.
    let new_listing = flow.ls(&flow.new);
    assert_eq!(new_listing.len(), sboms.len() + 2, "{new_listing:#?}");
    assert_eq!(
        subjects_name(&new_listing, &flow.run_a),
        0,
        "{new_listing:#?}"
    );
    assert_eq!(
        subjects_name(&new_listing, &flow.run_b),
        1,
        "{new_listing:#?}"
    );

    // Each re-issued manifest names its predecessor (a referrer of the old image) and the old
    // image; its envelope verifies with securesystemslib.
    let old_referrers: Vec<&str> = old_listing
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap())
        .collect();
    let envelopes = flow.tmp.path().join("envelopes");
    fs::create_dir_all(&envelopes).unwrap();
    let mut files = Vec::new();
    for entry in carried {
        let replaces = entry["replaces"].as_str().unwrap();
        assert!(old_referrers.contains(&replaces), "{replaces}");
        for reissued in entry["reissued"].as_array().unwrap() {
            let digest = reissued["manifest-digest"].as_str().unwrap();
            let manifest = flow.manifest(digest);
            assert_eq!(manifest["annotations"][REPLACES], replaces, "{manifest:#}");
            assert_eq!(
                manifest["annotations"][PREVIOUS_IMAGE],
                flow.old_digest.as_str(),
                "{manifest:#}"
            );
            assert_eq!(manifest["subject"]["digest"], flow.new_digest.as_str());
            let bundle: Value = serde_json::from_slice(
                &flow.blob(manifest["layers"][0]["digest"].as_str().unwrap()),
            )
            .unwrap();
            let mut envelope = bundle["dsseEnvelope"].clone();
            // A bundle's envelope omits the empty `keyid`, which securesystemslib requires.
            for signature in envelope["signatures"].as_array_mut().unwrap() {
                if signature.get("keyid").is_none() {
                    signature["keyid"] = Value::from("");
                }
            }
            // The statement: the same predicate as the old one, the new image as subject.
            let payload = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str().unwrap())
                .unwrap();
            let statement: Value = serde_json::from_slice(&payload).unwrap();
            assert!(statement["subject"]
                .as_array()
                .unwrap()
                .iter()
                .any(
                    |s| format!("sha256:{}", s["digest"]["sha256"].as_str().unwrap())
                        == flow.new_digest
                ));
            let file = envelopes.join(format!("{}.json", &digest[7..]));
            fs::write(&file, serde_json::to_vec(&envelope).unwrap()).unwrap();
            files.push(file);
        }
    }
    if let Some(python) = python() {
        let out = ok(run(Command::new(python)
            .arg(oracle("dsse_verify.py"))
            .arg(&new_key)
            .args(&files)));
        assert_eq!(out.matches("verified ").count(), sboms.len(), "{out}");
    }

    // A second run adds nothing.
    let again = report_of(&flow.rebaser(target, "a"));
    assert_eq!(again["signed"]["pushed"], 0, "{again:#}");
    assert_eq!(again["carried"].as_array().unwrap().len(), sboms.len());
    assert_eq!(flow.ls(&flow.new).len(), new_listing.len());
    // The old image's referrers are left alone.
    assert_eq!(flow.ls(&flow.old).len(), old_listing.len());

    // -prune-previous: the old image's (all verified) referrers are deleted and unlisted; the new
    // image keeps everything.
    let mut pruning: Vec<&str> = target.to_vec();
    pruning.push("-prune-previous");
    let pruned = report_of(&flow.rebaser(&pruning, "a"));
    assert_eq!(pruned["signed"]["pushed"], 0, "{pruned:#}");
    let deleted: Vec<&str> = pruned["pruned"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let mut expected = old_referrers.clone();
    expected.sort();
    let mut got = deleted.clone();
    got.sort();
    assert_eq!(got, expected, "{pruned:#}");
    assert!(flow.ls(&flow.old).is_empty(), "{:#?}", flow.ls(&flow.old));
    if let Some(r) = &flow.registry {
        // Each deleted manifest is gone, and the tag-schema index (when there is one) lists none.
        for digest in &deleted {
            let (status, _) = r.curl(&format!("/v2/{REPO}/manifests/{digest}"), OCI_MANIFEST);
            assert_eq!(status, 404, "{digest}");
        }
        let tag = format!("sha256-{}", &flow.old_digest[7..]);
        let (status, body) = r.curl(
            &format!("/v2/{REPO}/manifests/{tag}"),
            "application/vnd.oci.image.index.v1+json",
        );
        if r.kind == Kind::Distribution {
            assert_eq!(status, 200, "{body}");
            let index: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(index["manifests"], json!([]), "{index:#}");
        }
    } else {
        // Unlisted from index.json (the re-issues still name them in `dev.cnb-attest.replaces`).
        let index = read_json(&flow.layout.join("index.json"));
        let listed: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert!(deleted.iter().all(|d| !listed.contains(d)), "{index:#}");
    }
    verify_new();
    assert_eq!(flow.ls(&flow.new).len(), new_listing.len());
}

#[test]
fn rebase_on_a_layout_carries_buildpack_sboms_drops_run_image_a_and_adds_run_image_b() {
    let flow = Flow::new(None).unwrap();
    let new = flow.new.clone();
    rebase_flow(&flow, &["-image", &new]);
}

#[test]
fn rebase_on_distribution_from_the_lifecycle_report() {
    let Some(flow) = Flow::new(Some(Kind::Distribution)) else {
        return;
    };
    let registry = flow.registry.as_ref().unwrap();
    let report = flow.tmp.path().join("report.toml");
    fs::write(
        &report,
        format!(
            "[image]\ntags = [\"{}/{REPO}:rebased\"]\ndigest = \"{}\"\n",
            registry.host, flow.new_digest
        ),
    )
    .unwrap();
    rebase_flow(&flow, &["-report", report.to_str().unwrap()]);
}

#[test]
fn rebase_on_ferro_with_the_referrers_api() {
    let Some(flow) = Flow::new(Some(Kind::Ferro)) else {
        return;
    };
    let new = flow.new.clone();
    rebase_flow(&flow, &["-image", &new]);
}

#[test]
fn the_same_image_twice_is_refused() {
    let flow = Flow::new(None).unwrap();
    let before = flow.state(&flow.old);
    let out = flow.rebaser(&["-image", &flow.old.clone()], "a");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(text(&out).contains("same manifest"), "{}", text(&out));
    assert_eq!(flow.state(&flow.old), before);
}

#[test]
fn an_attestation_no_given_key_verifies_is_reported_not_carried_and_not_pruned() {
    let flow = Flow::new(None).unwrap();
    // Another signer (key `c`) adds its own run-image-A SBOM and image signature.
    let foreign = run_image_config(
        &flow.tmp.path().join("platform-c"),
        &flow.old,
        &flow.old_digest,
        &flow.run_a,
        "C",
    );
    flow.sign_config(&foreign, "c");
    let sboms = sbom_files(&flow.layers).len();
    let old_listing = flow.ls(&flow.old);
    assert_eq!(old_listing.len(), sboms + 4, "{old_listing:#?}");

    // `cnb-attest rebase`, no platform configuration: nothing added.
    let verify_key = flow.keys("a").join("cosign.pub");
    let key_b = flow.keys("b").join("cosign.key");
    let report = report_of(&flow.cli(&[
        "rebase",
        "--previous-image",
        &flow.old,
        "--image",
        &flow.new,
        "--verify-key",
        verify_key.to_str().unwrap(),
        "--key",
        key_b.to_str().unwrap(),
        "--prune-previous",
        "--json",
    ]));
    assert_eq!(report["carried"].as_array().unwrap().len(), sboms);
    assert_eq!(report["added"], json!([]), "{report:#}");
    let unverified: Vec<&Value> = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["reason"] == "unverified")
        .collect();
    assert_eq!(unverified.len(), 2, "{report:#}");
    assert!(
        unverified.iter().all(|d| d["rule"] == "signature"),
        "{report:#}"
    );
    // Pruning took the verified ones only: the other signer's two are still there.
    assert_eq!(
        report["pruned"]["deleted"].as_array().unwrap().len(),
        sboms + 2,
        "{report:#}"
    );
    let left: Vec<String> = flow
        .ls(&flow.old)
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = unverified
        .iter()
        .map(|d| d["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let mut left = left;
    left.sort();
    assert_eq!(left, expected);
}

#[test]
fn pruning_where_the_registry_refuses_delete_keeps_and_reports_every_referrer() {
    let Some(registry) = Registry::start_with(Kind::Distribution, false) else {
        return;
    };
    let flow = Flow::with(Some(registry)).unwrap();
    let old_listing = flow.ls(&flow.old);
    let new = flow.new.clone();
    let out = flow.rebaser(&["-image", &new, "-prune-previous"], "a");
    let report = report_of(&out);
    assert_eq!(report["pruned"]["deleted"], json!([]), "{report:#}");
    assert_eq!(
        report["pruned"]["not-deletable"].as_array().unwrap().len(),
        old_listing.len(),
        "{report:#}"
    );
    assert_eq!(report["pruned"]["index-writes"], 0, "{report:#}");
    // Still there, still listed; the new image has everything.
    assert_eq!(flow.ls(&flow.old).len(), old_listing.len());
    assert_eq!(flow.ls(&flow.new).len(), old_listing.len());
    let text = ok(flow.rebaser_text(&["-image", &new, "-prune-previous"]));
    assert_eq!(
        text.matches("the registry does not allow DELETE").count(),
        old_listing.len(),
        "{text}"
    );
}

/// SBOMs stored in two formats (a bundle and a bare DSSE referrer per statement): each signed
/// statement is re-issued once, the other copy reported as the same statement, so attestations do
/// not multiply with every rebase; pruning takes both old copies.
#[test]
fn a_statement_stored_in_two_formats_is_re_issued_once() {
    let flow = Flow::new(None).unwrap();
    flow.sign_layers("a", &["--format", "dsse"]);
    let sboms = sbom_files(&flow.layers).len();
    let old_listing = flow.ls(&flow.old).len();
    assert!(old_listing >= 2 * sboms + 2, "{old_listing}");
    let mut command = flow.rebaser_command(&["-image", &flow.new.clone()], "a");
    let report = report_of(&run(command.args(["-prune-previous", "-json"])));
    let carried = report["carried"].as_array().unwrap();
    assert_eq!(carried.len(), sboms, "{report:#}");
    let same: Vec<&Value> = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["reason"] == "same-statement")
        .collect();
    assert_eq!(same.len(), sboms, "{report:#}");
    for dropped in &same {
        assert!(
            carried
                .iter()
                .any(|c| c["replaces"] == dropped["carried-as"]),
            "{dropped:#} names no carried re-issue"
        );
    }
    // The new image: each SBOM once, the run-image-B SBOM and the image signature.
    assert_eq!(flow.ls(&flow.new).len(), sboms + 2);
    // Every old referrer verified and is superseded (both copies of each SBOM): all pruned.
    assert_eq!(
        report["pruned"]["deleted"].as_array().unwrap().len(),
        old_listing,
        "{report:#}"
    );
}

/// A `DELETE` that keeps failing (500 from a proxy in front of Distribution) does not stop the
/// others: every other old referrer is deleted and unlisted, the failed one is kept, still listed
/// and named with its error, the report is still printed, and the rebaser exits 79 with the new
/// image's attestations complete.
#[test]
fn a_failed_delete_is_reported_and_the_other_referrers_are_still_pruned_and_unlisted() {
    let Some(registry) = Registry::start_with(Kind::Distribution, true) else {
        return;
    };
    let upstream = registry.host.clone();
    let basic = registry.cnb_registry_auth();
    let flow = Flow::with(Some(registry)).unwrap();
    let old_listing: Vec<String> = flow
        .ls(&flow.old)
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    let victim = old_listing[0].clone();
    let path = format!("/v2/{REPO}/manifests/{victim}");
    let proxy = Proxy::start(
        &upstream,
        Plan::new().on(
            move |r| r.method == "DELETE" && r.path() == path,
            |_, _| Action::status(500),
        ),
    );
    let via = |reference: &str| reference.replace(&upstream, &proxy.host);
    let out = run(flow
        .env(&mut Command::new(bin("rebaser")))
        .env("CNB_REGISTRY_AUTH", basic.replace(&upstream, &proxy.host))
        .env("CNB_INSECURE_REGISTRIES", &proxy.host)
        .args([
            "-previous-image",
            &via(&flow.old),
            "-image",
            &via(&flow.new),
        ])
        .arg("-verify-key")
        .arg(flow.keys("a").join("cosign.pub"))
        .arg("-key")
        .arg(flow.keys("b").join("cosign.key"))
        .args(["-prune-previous", "-json"]));
    assert_eq!(out.status.code(), Some(79), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(&out)));
    let pruned = &report["pruned"];
    assert_eq!(pruned["failed"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(pruned["failed"][0]["digest"], victim.as_str(), "{report:#}");
    assert!(
        pruned["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{report:#}"
    );
    assert_eq!(
        pruned["deleted"].as_array().unwrap().len(),
        old_listing.len() - 1,
        "{report:#}"
    );
    assert_eq!(pruned["unlist-error"], Value::Null, "{report:#}");
    // The previous image keeps exactly the one that could not be deleted, still readable.
    let left: Vec<String> = flow
        .ls(&flow.old)
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![victim]);
    // The new image's attestations are complete: every SBOM and the image signature.
    assert_eq!(flow.ls(&flow.new).len(), sbom_files(&flow.layers).len() + 1);
}

/// Keyless on both sides of a rebase: the previous image signed keyless (besides key `a`), the
/// rebaser verifying by identity and issuer (no `-verify-key`) and signing keyless (no `-key`):
/// every buildpack SBOM is carried, the key-based copies are left unverified (no key given), and
/// the rebased image's attestations verify by identity with `cnb-attest verify`.
#[test]
fn a_keyless_previous_image_is_carried_by_identity_and_re_signed_keyless() {
    use cnb_attest_tests::sigstore::{mint_token, FakeSigstore, ISSUER};
    let Some(fake) = FakeSigstore::start() else {
        return;
    };
    let flow = Flow::new(None).unwrap();
    let identity = "https://ci.cnb-attest.test/workflows/rebase@refs/heads/main";
    let token = flow.tmp.path().join("oidc-token");
    fs::write(&token, mint_token(identity, ISSUER, 600)).unwrap();
    let trust_config = fake.trust_config();
    let keyless = [
        "--keyless",
        "--identity-token-file",
        token.to_str().unwrap(),
        "--trust-config",
        trust_config.to_str().unwrap(),
    ];
    ok(flow.cli(
        &[
            "sign",
            &flow.old,
            "--layers",
            flow.layers.to_str().unwrap(),
            "--name",
            NAME,
        ]
        .iter()
        .chain(&keyless)
        .copied()
        .collect::<Vec<_>>(),
    ));
    let sboms = sbom_files(&flow.layers).len();
    let policy = [
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        ISSUER,
        "--trust-config",
        trust_config.to_str().unwrap(),
    ];
    let out = flow.cli(
        &[
            "rebase",
            "--previous-image",
            &flow.old,
            "--image",
            &flow.new,
            "--json",
        ]
        .iter()
        .chain(&[
            "--keyless",
            "--identity-token-file",
            token.to_str().unwrap(),
        ])
        .chain(&policy)
        .copied()
        .collect::<Vec<_>>(),
    );
    let report = report_of(&out);
    assert_eq!(
        report["carried"].as_array().unwrap().len(),
        sboms,
        "{report:#}"
    );
    let unverified = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["reason"] == "unverified")
        .count();
    assert!(
        unverified >= sboms,
        "key-based copies not reported: {report:#}"
    );
    let verified = flow.cli(
        &["verify", "--json", &flow.new]
            .iter()
            .chain(&policy)
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(verified.status.success(), "{}", text(&verified));
    let verdicts: Vec<Value> = serde_json::from_slice(&verified.stdout).unwrap();
    // The carried SBOMs and the new image signature, all keyless.
    assert_eq!(verdicts.len(), sboms + 1, "{verdicts:#?}");
    assert!(verdicts
        .iter()
        .all(|v| v["signer"].as_str().unwrap_or_default().contains(identity)));
}
