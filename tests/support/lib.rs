//! Shared helpers for the flow tests: locating the built binaries and the independent test tools,
//! fresh copies of the example, and snapshots that prove nothing was written.
// `deny`, not `forbid`: `rss` holds the one `unsafe` call (`wait4`), allowed there alone.
#![deny(unsafe_code)]

pub mod closed;
pub mod platforms;
pub mod proxy;
pub mod registry;
pub mod rss;
pub mod signed;
pub mod sigstore;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The predicate type of cosign 3's image signature (`cosign sign` with the new bundle format): an
/// in-toto statement with an empty predicate whose one subject is the image digest. Spelled out
/// here rather than imported from the product, so the tests hold the product to the published name.
pub const COSIGN_SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

/// Whether a report entry (`sign --json`, `signer-report.toml`) or an `ls --json` entry is the
/// image signature rather than an SBOM attestation: told apart by predicate type.
pub fn is_image_signature(entry: &serde_json::Value) -> bool {
    entry["predicate-type"] == COSIGN_SIGN_V1
}

/// Splits report or `ls --json` entries into `(SBOM attestations, image signatures)`.
pub fn split_image_signatures(
    entries: &[serde_json::Value],
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    entries
        .iter()
        .cloned()
        .partition(|e| !is_image_signature(e))
}

/// The referrer manifest digests of a `sign --json` report of the example (its 7 SBOM
/// attestations and the image signature, which this checks), sorted.
pub fn reported(report: &serde_json::Value) -> Vec<String> {
    let entries = report["attestations"].as_array().unwrap();
    let (attestations, signatures) = split_image_signatures(entries);
    assert_eq!((attestations.len(), signatures.len()), (7, 1), "{report:#}");
    let mut digests: Vec<String> = entries
        .iter()
        .map(|a| a["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    digests.sort();
    digests
}

/// A TOML file (the signer report) as JSON, read by Python's `tomllib`: an independent reader,
/// and no TOML dependency in the tests.
pub fn toml_to_json(path: &Path) -> serde_json::Value {
    let out = ok(run(Command::new("python3")
        .args([
            "-c",
            "import json,sys,tomllib;print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(path)));
    serde_json::from_str(&out).unwrap()
}

/// The `ERROR:` line of a failed run's output.
pub fn error_line(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{report}"))
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary of this workspace, built by `cargo build --workspace --bins` (the test script does it
/// first; `cargo test --workspace` also builds every package's binaries before running tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs a command, returning its output (never panics on a non-zero exit). The output goes to the
/// secrets audit ([`record`]).
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    record(command.get_program(), &output);
    output
}

/// Waits for a child started with piped output and returns its output, recorded for the secrets
/// audit as [`run`] records it.
pub fn finished(child: std::process::Child) -> Output {
    let output = child.wait_with_output().expect("wait for the child");
    record(std::ffi::OsStr::new("child"), &output);
    output
}

/// The directory of the suite-wide secrets audit, when `scripts/test` asks for one.
fn audit_dir() -> Option<PathBuf> {
    std::env::var_os("CNB_ATTEST_OUTPUT_LOG")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// Keeps a child's stdout and stderr for the secrets audit (`scripts/check-secrets`), when
/// `CNB_ATTEST_OUTPUT_LOG` names a directory: one file per child. Every runner of this crate's
/// children calls it ([`run`], [`rss::run_measured`](crate::rss), the concurrent signers).
pub fn record(program: &std::ffi::OsStr, output: &Output) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some(dir) = audit_dir() else {
        return;
    };
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut log = format!("# {name} ({})\n", output.status).into_bytes();
    log.extend_from_slice(&output.stdout);
    log.extend_from_slice(b"\n# stderr\n");
    log.extend_from_slice(&output.stderr);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("out-{}-{n}.log", std::process::id())), log).unwrap();
}

/// Names a secret the tests handed to a child (a password, a token, a private key), for the
/// secrets audit to look for in every recorded output. Values shorter than 8 characters are too
/// common to look for and are skipped; the tests' real credentials are longer.
pub fn secret(value: &str) {
    use std::io::Write as _;
    let Some(dir) = audit_dir() else {
        return;
    };
    if value.len() < 8 {
        return;
    }
    fs::create_dir_all(&dir).unwrap();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("secrets-{}.txt", std::process::id())))
        .unwrap();
    writeln!(file, "{}", hex::encode(value)).unwrap();
}

/// stdout + stderr of an output, as text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts success and returns stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\n{}",
        output.status,
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `cosign.key` / `cosign.pub` into `dir` with `cnb-attest generate-key-pair`.
pub fn key_pair(dir: &Path, password: &str) {
    key_pair_with(&bin("cnb-attest"), dir, password)
}

/// [`key_pair`] with a given `cnb-attest` binary.
pub fn key_pair_with(cli: &Path, dir: &Path, password: &str) {
    fs::create_dir_all(dir).unwrap();
    secret(password);
    ok(run(Command::new(cli)
        .args(["generate-key-pair", "--output-dir"])
        .arg(dir)
        .env("COSIGN_PASSWORD", password)));
    // The encrypted private key's base64 lines: none may be shown by any command.
    for line in fs::read_to_string(dir.join("cosign.key")).unwrap().lines() {
        if !line.starts_with("-----") {
            secret(line);
        }
    }
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh, writable copy of the shipped example: `(layers dir, image layout dir)`.
pub fn fresh_example(dir: &Path) -> (PathBuf, PathBuf) {
    let root = workspace_root().join("examples/node-express");
    let layers = dir.join("layers");
    let image = dir.join("image");
    copy_dir(&root.join("layers"), &layers);
    copy_dir(&root.join("image"), &image);
    (layers, image)
}

/// A fresh Paketo `spring-boot` build: its real SBOM tree as a layers directory (with `group.toml`)
/// and an app image built from it by `cnb-fixtures`: `(layers dir, image layout dir)`.
pub fn fresh_spring_boot(dir: &Path) -> (PathBuf, PathBuf) {
    let layers = dir.join("layers");
    let image = dir.join("image");
    copy_dir(
        &workspace_root().join("tests/fixtures/sboms/spring-boot/layers"),
        &layers,
    );
    let spec = cnb_fixtures::spring_boot(&layers);
    fs::write(
        layers.join("group.toml"),
        cnb_fixtures::group_toml(&spec.buildpacks),
    )
    .unwrap();
    cnb_fixtures::build(&spec, &image).unwrap();
    (layers, image)
}

/// Every file under `dir` with the sha256 of its content (symlinks recorded by target).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &path, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                rel,
                format!("-> {}", fs::read_link(&path).unwrap().display()),
            );
        } else {
            out.insert(rel, hex::encode(Sha256::digest(fs::read(&path).unwrap())));
        }
    }
}

/// The SBOM files of a layers directory, `relative path -> bytes`, `sbom.legacy.json` excluded.
pub fn sbom_files(layers: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (rel, _) in snapshot(&layers.join("sbom/launch")) {
        let path = layers.join("sbom/launch").join(&rel);
        let name = rel.to_string_lossy().into_owned();
        if path.is_file() && name.ends_with(".json") && !name.ends_with("sbom.legacy.json") {
            out.insert(name, fs::read(path).unwrap());
        }
    }
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where `scripts/install-test-tools` put the independent tools.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CNB_ATTEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".ci/tools"))
}

fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Handles a missing tool: under `CI=true` the test fails; locally it is skipped with the reason.
pub fn missing(tool: &str) -> Option<PathBuf> {
    assert!(
        !in_ci(),
        "{tool} is missing and CI=true: run scripts/install-test-tools"
    );
    eprintln!("SKIP: {tool} is missing (run scripts/install-test-tools)");
    None
}

/// The Python of the test-tools venv.
pub fn python() -> Option<PathBuf> {
    let path = tools_dir().join("venv/bin/python");
    if path.is_file() {
        Some(path)
    } else {
        missing("the Python test venv (securesystemslib, cyclonedx, spdx-tools)")
    }
}

/// The `node_modules` folder holding @sigstore/verify and @sigstore/bundle.
pub fn node_modules() -> Option<PathBuf> {
    let path = tools_dir().join("npm/node_modules");
    if path.join("@sigstore/verify").is_dir() && which("node").is_some() {
        Some(path)
    } else {
        missing("node with @sigstore/verify")
    }
}

/// A program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// An oracle script shipped in `tests/oracles/`.
pub fn oracle(name: &str) -> PathBuf {
    workspace_root().join("tests/oracles").join(name)
}
