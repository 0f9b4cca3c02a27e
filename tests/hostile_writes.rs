//! Hostile inputs to the restore writes (issue 14, items 4, 10a and 10d): one plan check refuses,
//! before anything is written, SBOMs that cannot all be written side by side (a file and a
//! directory with one name, names equal under Unicode normalisation, names with invisible or
//! bidirectional-control characters), and the writer is all or nothing (the tree is built beside
//! its destination and moved into place), also on SIGINT and SIGTERM. Commands agree on buildpack
//! IDs (`..` is refused only as a whole path component), and a restore never mixes two images'
//! SBOMs in one tree.
//!
//! Every case runs against a real registry the test starts (CNCF Distribution, with htpasswd
//! auth): images are built by `cnb-fixtures` with the buildpack IDs and layers each case needs,
//! pushed with skopeo, and signed there by the CLI with the test's key from a signer
//! configuration (`sign --config`, whose subjects are whatever the configuration says), so the
//! hostile property is the only thing wrong with them. `cnb-attest download`, `verify` and the
//! `analyzer` then run against the registry as a user would run them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cnb_attest_tests::closed::files;
use cnb_attest_tests::proxy::{Action, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{bin, key_pair, ok, run, snapshot, text};
use cnb_fixtures::tar::Entry;
use cnb_fixtures::{AppImage, BuildpackSpec};
use serde_json::Value;

const REPO: &str = "hostile/writes";
const CDX: &str = "https://cyclonedx.org/bom";
/// The name of the image's own subject in the statements signed here.
const IMAGE: &str = "registry.example/hostile/writes";

/// A small CycloneDX document, recognisable by `tag`, padded with `padding` components.
fn cdx(tag: &str, padding: usize) -> Vec<u8> {
    let components: Vec<String> = (0..padding)
        .map(|i| format!(r#"{{"type":"library","name":"pad-{i}","version":"1.0.{i}"}}"#))
        .collect();
    format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{{"component":{{"type":"application","name":"cnb-hostile-{tag}"}}}},"components":[{}]}}"#,
        components.join(",")
    )
    .into_bytes()
}

/// One attestation of a signer configuration: subjects `(name, sha256:<hex>)`, a CycloneDX
/// predicate.
struct Attestation {
    subjects: Vec<(String, String)>,
    predicate: Vec<u8>,
}

/// An image built by `cnb-fixtures`, pushed to a fresh registry, with a key pair.
struct Pushed {
    registry: Registry,
    tmp: tempfile::TempDir,
    /// `<registry>/hostile/writes:1.0`.
    reference: String,
    /// The image manifest digest.
    digest: String,
    /// The `io.buildpacks.lifecycle.metadata` label.
    label: Value,
}

impl Pushed {
    /// `buildpacks` (ID, launch layers) in an image without SBOM layer (or with exactly
    /// `sbom_layer`), pushed. `None` when the registry is not installed (skipped).
    fn new(buildpacks: &[(&str, &[&str])], sbom_layer: Option<&[Entry]>) -> Option<Pushed> {
        let spec = AppImage {
            tag: "latest".into(),
            buildpacks: buildpacks
                .iter()
                .map(|(id, layers)| BuildpackSpec::new(id, "1.0.0", layers))
                .collect(),
            launcher: false,
            sbom_tree: None,
        };
        Pushed::of(&spec, sbom_layer)
    }

    fn of(spec: &AppImage, sbom_layer: Option<&[Entry]>) -> Option<Pushed> {
        let registry = Registry::start(Kind::Distribution)?;
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("image");
        let built = match sbom_layer {
            Some(entries) => cnb_fixtures::build_with_sbom_layer(spec, entries, &layout),
            None => cnb_fixtures::build(spec, &layout),
        }
        .unwrap();
        key_pair(&tmp.path().join("k"), "");
        let reference = registry.push_layout(&layout, REPO, "1.0");
        let digest = registry.digest_of(&reference);
        Some(Pushed {
            label: serde_json::from_str(&built.label).unwrap(),
            registry,
            tmp,
            reference,
            digest,
        })
    }

    /// The environment of a client of the registry at `host` (itself or a proxy).
    fn env_for<'a>(&self, host: &str, command: &'a mut Command) -> &'a mut Command {
        let auth = self
            .registry
            .cnb_registry_auth()
            .replace(&self.registry.host, host);
        command
            .env("CNB_REGISTRY_AUTH", auth)
            .env("CNB_INSECURE_REGISTRIES", host)
            .env("DOCKER_CONFIG", "/nonexistent")
    }

    /// `cnb-attest <args...>` against the registry.
    fn cli(&self, args: &[&str]) -> Output {
        run(self
            .env_for(&self.registry.host, &mut Command::new(bin("cnb-attest")))
            .args(args))
    }

    fn public_key(&self) -> String {
        self.tmp.path().join("k/cosign.pub").display().to_string()
    }

    /// The diffID (`sha256:<hex>`) the label records for a buildpack's layer.
    fn diff_id(&self, buildpack: &str, layer: &str) -> String {
        let bp = self.label["buildpacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["key"] == buildpack)
            .unwrap_or_else(|| panic!("{buildpack} is not in the label"));
        bp["layers"][layer]["sha"].as_str().unwrap().to_string()
    }

    /// The statement subjects of an image-scoped SBOM of `buildpack`.
    fn image_scoped(&self, buildpack: &str, tag: &str) -> Attestation {
        Attestation {
            subjects: vec![
                (IMAGE.into(), self.digest.clone()),
                (buildpack.into(), self.digest.clone()),
            ],
            predicate: cdx(tag, 0),
        }
    }

    /// The statement subjects of the SBOM of `buildpack`'s layer.
    fn layer_scoped(&self, buildpack: &str, layer: &str, tag: &str) -> Attestation {
        Attestation {
            subjects: vec![
                (IMAGE.into(), self.digest.clone()),
                (
                    format!("{buildpack}:{layer}"),
                    self.diff_id(buildpack, layer),
                ),
            ],
            predicate: cdx(tag, 0),
        }
    }

    /// Signs `attestations` with the CLI from a signer configuration, and returns the manifest
    /// digest of each (in order), found in `ls --json` by its predicate's tag.
    fn sign(&self, attestations: &[Attestation]) -> Vec<String> {
        let dir = self.tmp.path().join("config");
        fs::create_dir_all(&dir).unwrap();
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        let mut toml = format!(
            "[image]\nreference = {}\n",
            quote(&format!("{}@{}", self.reference, self.digest))
        );
        for (i, a) in attestations.iter().enumerate() {
            let file = dir.join(format!("predicate-{i}.cdx.json"));
            fs::write(&file, &a.predicate).unwrap();
            toml.push_str(&format!(
                "\n[[attestations]]\n  [[attestations.predicate]]\n  type = {}\n  uri = {}\n",
                quote(CDX),
                quote(&file.display().to_string())
            ));
            for (name, digest) in &a.subjects {
                toml.push_str(&format!(
                    "  [[attestations.statement.subject]]\n  name = {}\n  digest = {}\n",
                    quote(name),
                    quote(digest)
                ));
            }
        }
        let config = dir.join("signer.toml");
        fs::write(&config, toml).unwrap();
        ok(run(self
            .env_for(&self.registry.host, &mut Command::new(bin("cnb-attest")))
            .args(["sign", &self.reference, "--config"])
            .arg(&config)
            .arg("--key")
            .arg(self.tmp.path().join("k/cosign.key"))
            .env("COSIGN_PASSWORD", "")));
        let listed: Vec<Value> =
            serde_json::from_str(&ok(self.cli(&["ls", "--json", &self.reference]))).unwrap();
        attestations
            .iter()
            .map(|a| {
                listed
                    .iter()
                    .find(|l| same_subjects(l, a))
                    .unwrap_or_else(|| panic!("not listed: {listed:#?}"))["manifest-digest"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// `cnb-attest download <image> -o <out> --key cosign.pub <extra...>`.
    fn download(&self, out: &Path, extra: &[&str]) -> Output {
        let key = self.public_key();
        let mut args = vec![
            "download",
            &self.reference,
            "-o",
            out.to_str().unwrap(),
            "--key",
            &key,
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// `analyzer -previous-image <image> -layers <layers> -key cosign.pub`.
    fn analyze(&self, layers: &Path) -> Output {
        run(self
            .env_for(&self.registry.host, &mut Command::new(bin("analyzer")))
            .args(["-previous-image", &self.reference, "-layers"])
            .arg(layers)
            .arg("-key")
            .arg(self.public_key()))
    }
}

/// Whether an `ls --json` entry's subjects are the attestation's.
fn same_subjects(listed: &Value, a: &Attestation) -> bool {
    let wanted: Vec<String> = a
        .subjects
        .iter()
        .map(|(name, digest)| format!("{name}@{digest}"))
        .collect();
    listed["subjects"].as_array().is_some_and(|s| {
        s.iter()
            .map(|v| v.as_str().unwrap_or(""))
            .eq(wanted.iter().map(String::as_str))
    })
}

/// Every path below `dir` whose name starts with `.tmp-` (a temporary file or tree left behind).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .collect()
}

/// Asserts `output` failed with `code`, naming every digest in `attestations` and each of
/// `reasons`, and that nothing at all was written below `out` (an empty directory, or none).
fn refused_writing_nothing(
    output: &Output,
    code: i32,
    attestations: &[String],
    reasons: &[&str],
    out: &Path,
) {
    let report = text(output);
    assert_eq!(output.status.code(), Some(code), "{report}");
    for digest in attestations {
        assert!(
            report.contains(digest.as_str()),
            "{digest} is not named:\n{report}"
        );
    }
    for reason in reasons {
        assert!(report.contains(reason), "no `{reason}` in:\n{report}");
    }
    assert_eq!(
        snapshot_or_empty(out),
        BTreeMap::new(),
        "something was written:\n{report}"
    );
}

/// `verify --json` fails (exit 3) and gives `rule` for at least one of `attestations`, as
/// `download` refuses them: the commands agree. Returns the verdicts that fail with `rule`.
fn verify_agrees(image: &Pushed, attestations: &[String], rule: &str) -> Vec<Value> {
    let verified = image.cli(&[
        "verify",
        "--json",
        &image.reference,
        "--key",
        &image.public_key(),
    ]);
    assert_eq!(verified.status.code(), Some(3), "{}", text(&verified));
    let verdicts: Vec<Value> = serde_json::from_slice(&verified.stdout).unwrap();
    let failed: Vec<Value> = verdicts
        .iter()
        .filter(|v| {
            attestations
                .iter()
                .any(|d| v.to_string().contains(d.as_str()))
                && v.to_string().contains(rule)
        })
        .cloned()
        .collect();
    assert!(!failed.is_empty(), "no `{rule}` verdict in {verdicts:#?}");
    // Every attestation involved fails, as `download` refuses every one of them: both sides of a
    // collision, not only the one its problem names.
    for digest in attestations {
        assert!(
            verdicts
                .iter()
                .any(|v| v["manifest-digest"] == digest.as_str() && v["rule"] == rule),
            "{digest} has no `{rule}` verdict of its own in {verdicts:#?}"
        );
    }
    failed
}

fn snapshot_or_empty(dir: &Path) -> BTreeMap<PathBuf, String> {
    if dir.exists() {
        snapshot(dir)
    } else {
        BTreeMap::new()
    }
}

// ---------------------------------------------------------------------------------------------
// A file and a directory with one name (item 4).
// ---------------------------------------------------------------------------------------------

/// A signed image-scoped `acme_tools/sbom.cdx.json` and the signed SBOM of the buildpack's layer
/// named `sbom.cdx.json` (`acme_tools/sbom.cdx.json/sbom.cdx.json`): the first is a file where the
/// second needs a directory. Both are valid alone; the plan check refuses the pair (exit 3, both
/// attestations named) before anything is written, and `verify` fails the pair with the same rule.
/// Before the fix the write failed half way, one file written, exit 1.
#[test]
fn a_file_and_a_directory_with_one_name_are_refused_before_anything_is_written() {
    let Some(image) = Pushed::new(&[("acme/tools", &["sbom.cdx.json"])], None) else {
        return;
    };
    let digests = image.sign(&[
        image.image_scoped("acme/tools", "image-scoped"),
        image.layer_scoped("acme/tools", "sbom.cdx.json", "layer"),
    ]);
    let out = image.tmp.path().join("out");
    let output = image.download(&out, &[]);
    refused_writing_nothing(
        &output,
        3,
        &digests,
        &["one name is a file and the other's directory"],
        &out,
    );
    assert_eq!(temporaries(image.tmp.path()), Vec::<PathBuf>::new());
    verify_agrees(&image, &digests, "file-and-directory");
}

/// The analyzer's SBOM-layer fallback: an unsigned image whose SBOM layer holds
/// `acme_tools/sbom.cdx.json` and `acme_tools/sbom.cdx.json/sbom.cdx.json` (a tar can hold both).
/// The layer's files pass the same plan check: refused with exit 35, both paths named, the layers
/// directory left as it was. Before the fix two files were written and the analyzer exited 38.
#[test]
fn the_sbom_layer_fallback_with_a_file_and_a_directory_with_one_name_restores_nothing() {
    let launch = "/layers/sbom/launch";
    let entries = [
        Entry::Dir("/layers".into()),
        Entry::Dir("/layers/sbom".into()),
        Entry::Dir(launch.into()),
        Entry::Dir(format!("{launch}/acme_tools")),
        Entry::File(
            format!("{launch}/acme_tools/sbom.cdx.json"),
            cdx("image-scoped", 0),
        ),
        Entry::File(
            format!("{launch}/acme_tools/sbom.cdx.json/sbom.cdx.json"),
            cdx("layer", 0),
        ),
    ];
    let Some(image) = Pushed::new(&[("acme/tools", &["sbom.cdx.json"])], Some(&entries)) else {
        return;
    };
    let layers = image.tmp.path().join("layers");
    fs::create_dir_all(&layers).unwrap();
    fs::write(layers.join("group.toml"), "[[group]]\n").unwrap();
    let before = snapshot(&layers);
    let output = image.analyze(&layers);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(35), "{report}");
    assert!(
        report.contains("acme_tools/sbom.cdx.json/sbom.cdx.json")
            && report.contains("one name is a file and the other's directory"),
        "{report}"
    );
    assert_eq!(
        snapshot(&layers),
        before,
        "the layers directory changed:\n{report}"
    );
    assert_eq!(temporaries(image.tmp.path()), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// Names that look alike (item 4).
// ---------------------------------------------------------------------------------------------

/// An image of buildpacks `ids` (no layers), an image-scoped SBOM of each signed, and
/// `download` run: the image, the attestations' digests (in the order of `ids`), the output and
/// the output directory.
fn image_scoped_downloaded(ids: [&str; 2]) -> Option<(Pushed, Vec<String>, Output, PathBuf)> {
    let image = Pushed::new(&[(ids[0], &[]), (ids[1], &[])], None)?;
    let attestations: Vec<Attestation> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| image.image_scoped(id, &format!("id-{i}")))
        .collect();
    let digests = image.sign(&attestations);
    let out = image.tmp.path().join("out");
    let output = image.download(&out, &[]);
    Some((image, digests, output, out))
}

/// `acme/café` spelled in NFC (`é`, U+00E9) and in NFD (`e` + U+0301) are two buildpacks of the
/// label and two directories on Linux, but one name to a person and one directory on macOS: the
/// plan check refuses both (exit 3, each attestation named), nothing written; `verify` fails
/// them with the same rule. Before the fix both were written.
#[test]
fn buildpack_ids_equal_under_unicode_normalisation_are_refused() {
    let nfc = "acme/caf\u{e9}";
    let nfd = "acme/cafe\u{301}";
    let Some((image, digests, output, out)) = image_scoped_downloaded([nfc, nfd]) else {
        return;
    };
    refused_writing_nothing(
        &output,
        3,
        &digests[1..],
        &["would be the same file", "Unicode normalisation"],
        &out,
    );
    // The message names both attestations (one per line, the other inside it).
    let report = text(&output);
    assert!(report.contains(digests[0].as_str()), "{report}");
    verify_agrees(&image, &digests, "same-file");
}

/// Buildpack IDs holding a zero-width space (U+200B) or a right-to-left override (U+202E) are in
/// the label and correctly signed, but a name holding them shows as another name: each
/// attestation is refused by name with the code point (exit 3), nothing written; `verify` refuses
/// them with the same rule (`hidden-character`). Before the fix both were written.
#[test]
fn buildpack_ids_with_invisible_or_bidi_characters_are_refused_by_every_command() {
    let zero_width = "acme/to\u{200b}ols";
    let override_ = "acme/\u{202e}sloot";
    let Some((image, digests, output, out)) = image_scoped_downloaded([zero_width, override_])
    else {
        return;
    };
    refused_writing_nothing(&output, 3, &digests, &["U+200B", "U+202E"], &out);
    // Shown escaped, never raw.
    let report = text(&output);
    assert!(
        !report.contains('\u{202e}') && !report.contains('\u{200b}'),
        "{report}"
    );

    let failed = verify_agrees(&image, &digests, "hidden-character");
    for digest in &digests {
        assert!(
            failed
                .iter()
                .any(|v| v.to_string().contains(digest.as_str())),
            "{digest} does not fail with hidden-character: {failed:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `..` inside a component (item 10a).
// ---------------------------------------------------------------------------------------------

/// `acme..tools/extra` is a valid buildpack ID: `..` is only refused as a whole path component,
/// and its directory `acme..tools_extra` is one safe component. `verify`, `download` and the
/// analyzer agree: all verified, both SBOMs restored byte for byte. Before the fix `verify` said
/// verified and `download` refused every attestation.
#[test]
fn dot_dot_inside_a_buildpack_id_is_accepted_by_every_command() {
    let id = "acme..tools/extra";
    let Some(image) = Pushed::new(&[(id, &["tools"])], None) else {
        return;
    };
    let image_scoped = image.image_scoped(id, "dotted-image");
    let layer = image.layer_scoped(id, "tools", "dotted-layer");
    let expected = BTreeMap::from([
        (
            "layers/sbom/launch/acme..tools_extra/sbom.cdx.json".to_string(),
            image_scoped.predicate.clone(),
        ),
        (
            "layers/sbom/launch/acme..tools_extra/tools/sbom.cdx.json".to_string(),
            layer.predicate.clone(),
        ),
    ]);
    image.sign(&[image_scoped, layer]);

    let verified = image.cli(&["verify", &image.reference, "--key", &image.public_key()]);
    assert!(verified.status.success(), "{}", text(&verified));

    let out = image.tmp.path().join("out");
    let downloaded = image.download(&out, &[]);
    assert!(downloaded.status.success(), "{}", text(&downloaded));
    assert_eq!(files(&out), expected);

    let layers = image.tmp.path().join("analyzed");
    let analyzed = image.analyze(&layers);
    assert!(analyzed.status.success(), "{}", text(&analyzed));
    let restored: BTreeMap<String, Vec<u8>> = files(&layers)
        .into_iter()
        .map(|(path, bytes)| (format!("layers/{path}"), bytes))
        .collect();
    assert_eq!(restored, expected);
}

// ---------------------------------------------------------------------------------------------
// An output directory holding an earlier image's SBOMs (item 10d).
// ---------------------------------------------------------------------------------------------

/// `download` into a directory whose `layers/sbom/launch/` holds another image's SBOMs: refused
/// (exit 1, the directory named, a `--replace` hint), nothing changed; with `--replace` the tree
/// is this image's SBOMs and nothing else, and each removed file is reported. The analyzer
/// replaces `<layers>/sbom/launch` as the lifecycle does, reporting what it removed. Before the
/// fix the earlier SBOMs stayed beside the new ones without a word.
#[test]
fn sboms_of_an_earlier_image_are_never_mixed_with_the_restored_ones() {
    let Some(image) = Pushed::new(&[("acme/tools", &[])], None) else {
        return;
    };
    let attestation = image.image_scoped("acme/tools", "current");
    let expected = BTreeMap::from([(
        "layers/sbom/launch/acme_tools/sbom.cdx.json".to_string(),
        attestation.predicate.clone(),
    )]);
    image.sign(&[attestation]);
    let stale = "layers/sbom/launch/other_buildpack/sbom.cdx.json";
    let plant = |root: &Path| {
        let path = root.join(stale);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, cdx("an-earlier-image", 0)).unwrap();
    };

    let out = image.tmp.path().join("out");
    plant(&out);
    let before = snapshot(&out);
    let refused = image.download(&out, &[]);
    let report = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&out.join("layers/sbom/launch").display().to_string())
            && report.contains("--replace"),
        "{report}"
    );
    assert_eq!(snapshot(&out), before, "{report}");

    let replaced = image.download(&out, &["--replace"]);
    let report = text(&replaced);
    assert!(replaced.status.success(), "{report}");
    assert_eq!(files(&out), expected, "{report}");
    assert!(
        report.contains("other_buildpack/sbom.cdx.json"),
        "the removed file is not reported:\n{report}"
    );
    assert_eq!(temporaries(&out), Vec::<PathBuf>::new());

    let analyzed_root = image.tmp.path().join("analyzed");
    plant(&analyzed_root);
    let layers = analyzed_root.join("layers");
    let analyzed = image.analyze(&layers);
    let report = text(&analyzed);
    assert!(analyzed.status.success(), "{report}");
    assert_eq!(files(&analyzed_root), expected, "{report}");
    assert!(report.contains("other_buildpack/sbom.cdx.json"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// Interrupted downloads (item 4).
// ---------------------------------------------------------------------------------------------

/// `acme/many`, 250 launch layers with a CycloneDX and an SPDX SBOM each (500 files, ~10 KiB
/// each), built, pushed and signed by the CLI from its layers directory.
fn five_hundred() -> Option<Pushed> {
    let layer_names: Vec<String> = (0..250).map(|i| format!("l{i:03}")).collect();
    let names: Vec<&str> = layer_names.iter().map(String::as_str).collect();
    let spec = AppImage {
        tag: "latest".into(),
        buildpacks: vec![BuildpackSpec::new("acme/many", "1.0.0", &names)],
        launcher: false,
        sbom_tree: None,
    };
    let image = Pushed::of(&spec, None)?;
    let layers = image.tmp.path().join("build-layers");
    for name in &names {
        let dir = layers.join("sbom/launch/acme_many").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("sbom.cdx.json"), cdx(name, 120)).unwrap();
        fs::write(
            dir.join("sbom.spdx.json"),
            format!(
                r#"{{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"cnb-hostile-{name}","comment":"{}"}}"#,
                "x".repeat(10_000)
            ),
        )
        .unwrap();
    }
    fs::write(
        layers.join("group.toml"),
        cnb_fixtures::group_toml(&spec.buildpacks),
    )
    .unwrap();
    ok(run(image
        .env_for(&image.registry.host, &mut Command::new(bin("cnb-attest")))
        .args(["sign", &image.reference, "--layers"])
        .arg(&layers)
        .arg("--key")
        .arg(image.tmp.path().join("k/cosign.key"))
        .env("COSIGN_PASSWORD", "")));
    Some(image)
}

/// Starts `cnb-attest download` of `image` (through `host`) into `out`.
fn spawn_download(image: &Pushed, host: &str, out: &Path) -> Child {
    let reference = image.reference.replace(&image.registry.host, host);
    image
        .env_for(host, &mut Command::new(bin("cnb-attest")))
        .args(["download", &reference, "-o"])
        .arg(out)
        .arg("--key")
        .arg(image.public_key())
        // Its output is read only once it exits: the suite's request log (one line per request,
        // over a thousand here) would fill the pipe and stall it.
        .env_remove("CNB_ATTEST_DEBUG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} failed");
}

/// SIGTERM while the attestations are being fetched (each blob GET delayed by the proxy), and
/// SIGINT while the 500 files are being written (sent as soon as anything appears in the output
/// directory): each time the process exits 143 or 130 and the output directory is as it was,
/// empty, with no partial tree and no `.tmp-` file. Before the fix the signal killed the process
/// (no exit code) and, during the write, left a partial tree.
#[test]
fn an_interrupted_500_file_download_exits_130_or_143_and_writes_nothing() {
    let Some(image) = five_hundred() else {
        return;
    };

    // SIGTERM while fetching.
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(
            |r| r.method == "GET" && r.path().contains("/blobs/"),
            |_, _| Action::Delayed(100),
        ),
    );
    let out = image.tmp.path().join("out-term");
    fs::create_dir_all(&out).unwrap();
    let child = spawn_download(&image, &proxy.host, &out);
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.matching(|r| r.path().contains("/blobs/")).len() < 3 {
        assert!(Instant::now() < deadline, "no blob was fetched");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    let output = cnb_attest_tests::finished(child);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(143), "{report}");
    assert!(report.contains("interrupted by SIGTERM"), "{report}");
    assert_eq!(snapshot(&out), BTreeMap::new(), "{report}");

    // SIGINT while writing: as soon as the write shows in the output directory (the tree being
    // built beside its destination, or the destination itself).
    let mut caught = false;
    for attempt in 0..3 {
        let out = image.tmp.path().join(format!("out-int-{attempt}"));
        fs::create_dir_all(&out).unwrap();
        let child = spawn_download(&image, &image.registry.host, &out);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut sent = false;
        while Instant::now() < deadline {
            if fs::read_dir(&out).unwrap().next().is_some() {
                signal(&child, "INT");
                sent = true;
                break;
            }
            if fs::metadata(&out).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let output = cnb_attest_tests::finished(child);
        let report = text(&output);
        if !sent || output.status.code() == Some(0) {
            // The write finished before the signal could land: try again.
            continue;
        }
        caught = true;
        let left = snapshot(&out);
        assert_eq!(
            (left.len(), temporaries(&out)),
            (0, Vec::new()),
            "a partial tree or a temporary file was left ({:?}):\n{report}",
            output.status
        );
        assert_eq!(output.status.code(), Some(130), "{report}");
        assert!(report.contains("interrupted by SIGINT"), "{report}");
        break;
    }
    assert!(
        caught,
        "the download never ran long enough to be interrupted while writing"
    );
}
