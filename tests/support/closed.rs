//! What "failing closed" means for a `download` or restore, checked the same way by every
//! hostile-input test: the exit code, one `FAILED` line per refused attestation naming the reason,
//! exactly the expected files written, and nothing changed outside the output directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::{sha256, snapshot, text};

/// Every regular file (and symlink, as `-> target`) under `dir`, relative to it, with its bytes;
/// empty when `dir` does not exist.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    if !dir.exists() {
        return BTreeMap::new();
    }
    snapshot(dir)
        .into_iter()
        .filter(|(_, kind)| kind != "dir")
        .map(|(rel, kind)| {
            let path = dir.join(&rel);
            let bytes = if kind.starts_with("-> ") {
                kind.into_bytes()
            } else {
                fs::read(&path).unwrap()
            };
            (rel.to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// Everything under `root` except `out` (and what is below it): kind and content hash, or, for
/// files over 64 MiB (the sparse 5 GiB blobs), size and modification time.
pub fn outside(root: &Path, out: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &Path, into: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with(out) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let state = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out, into);
                "dir".to_string()
            } else if meta.len() > 64 << 20 {
                format!(
                    "{} bytes, modified {:?}",
                    meta.len(),
                    meta.modified().unwrap()
                )
            } else {
                sha256(&fs::read(&path).unwrap())
            };
            into.insert(rel, state);
        }
    }
    let mut into = BTreeMap::new();
    walk(root, root, out.strip_prefix(root).unwrap(), &mut into);
    into
}

/// Names of files in `tree` only (for messages).
pub fn names(tree: &BTreeMap<String, Vec<u8>>) -> Vec<&String> {
    tree.keys().collect()
}

/// Runs `download` into `out` (a fresh directory below `root`) and checks that it failed closed:
/// exit `code`; one `FAILED <digest> (...): <reason>` line per expected failure and no other; the
/// files under `out` are exactly `expected`; nothing under `root` outside `out` changed.
pub fn assert_fails_closed(
    root: &Path,
    out: &Path,
    download: impl FnOnce() -> Output,
    code: i32,
    failures: &[(&str, &str)],
    expected: &BTreeMap<String, Vec<u8>>,
) -> String {
    assert_trust_policy(root, out, download, code, failures, &[], expected)
}

/// Like [`assert_fails_closed`] for attestations that no given key verifies (unreadable,
/// tampered, oversized, signed by another key): each is left out, with one
/// `Warning: left out <digest> (...): <reason>` line and no `FAILED` line, and never blocks: the
/// verified SBOMs are written, exactly `expected` byte for byte (nothing of a left-out one: nothing
/// unverified is ever written); nothing under `root` outside `out` changed.
pub fn assert_leaves_out(
    root: &Path,
    out: &Path,
    download: impl FnOnce() -> Output,
    code: i32,
    left_out: &[(&str, &str)],
    expected: &BTreeMap<String, Vec<u8>>,
) -> String {
    assert_trust_policy(root, out, download, code, &[], left_out, expected)
}

/// The trust policy of a restore (issue 8): attestations no key verifies are left out (one
/// `Warning: left out` line each, exactly `left_out`); verified attestations that break a rule are
/// `FAILED` (exactly `failures`) and, when there are any, nothing at all is written (the good
/// SBOMs included); otherwise the files under `out` are exactly `expected`. Exit `code`; nothing
/// under `root` outside `out` changed.
pub fn assert_trust_policy(
    root: &Path,
    out: &Path,
    download: impl FnOnce() -> Output,
    code: i32,
    failures: &[(&str, &str)],
    left_out: &[(&str, &str)],
    expected: &BTreeMap<String, Vec<u8>>,
) -> String {
    let before = outside(root, out);
    let output = download();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(code), "exit code:\n{report}");
    for (prefix, expected_lines) in [("FAILED ", failures), ("Warning: left out ", left_out)] {
        let lines: Vec<&str> = report.lines().filter(|l| l.starts_with(prefix)).collect();
        for (digest, reason) in expected_lines {
            let named: Vec<&&str> = lines.iter().filter(|l| l.contains(digest)).collect();
            assert_eq!(
                named.len(),
                1,
                "one `{prefix}` line naming {digest}:\n{report}"
            );
            assert!(
                named[0].contains(reason),
                "the `{prefix}` line for {digest} does not give the reason `{reason}`:\n{report}"
            );
        }
        assert_eq!(
            lines.len(),
            expected_lines.len(),
            "`{prefix}` lines other than the expected ones:\n{report}"
        );
    }
    if !left_out.is_empty() {
        assert!(
            report.contains(&format!(
                "{} attestation(s) left out: not signed by a trusted key",
                left_out.len()
            )),
            "no summary of what was left out:\n{report}"
        );
    }
    let written = files(out);
    // Fail closed: when a verified attestation breaks a rule, download writes nothing at all (the
    // good SBOMs included); `expected` is what a run without such failures writes.
    let expected_now = if failures.is_empty() {
        expected.clone()
    } else {
        BTreeMap::new()
    };
    assert!(
        written == expected_now,
        "files under {}: {:?}, expected {:?}\n{report}",
        out.display(),
        names(&written),
        names(&expected_now)
    );
    assert_eq!(
        outside(root, out),
        before,
        "something changed outside {}",
        out.display()
    );
    report
}

/// Mebibytes, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
