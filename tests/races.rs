//! Restore writes against a hostile or failing file system (cases 57, 58 and 59 of
//! `docs/hostile-inputs.md`), through the `analyzer` and `cnb-attest download` binaries on the
//! shipped example image (an OCI layout), signed here with the test's key:
//!
//! - 57: a thread swaps `<layers>/sbom` for a symlink to another directory and back while restores
//!   run; nothing is ever written through the symlink (the writer works through directory
//!   handles opened once). The deterministic version of this race, with the swap made between
//!   the checks and the writes, is the sbom-restore unit test
//!   `a_directory_swapped_for_a_symlink_after_the_checks_is_not_followed`.
//! - 58: output directories other users can change are refused unless `--allow-shared-output`;
//!   the lifecycle's layout (0755, owned by the user) and a sticky world-writable directory pass.
//! - 59: a real I/O error partway (a full tmpfs: `ENOSPC`) leaves the earlier tree byte for byte
//!   and no temporary directory, for the analyzer and for `download --replace`.
//!
//! The tests run as root here: another owner is faked with `chown 65534`, and the tmpfs is
//! mounted by the test (skipped, with a message, where `mount` is refused).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cnb_attest_tests::{bin, fresh_example, key_pair, ok, run, snapshot, text};

/// The shipped example image, signed: `(tmp, "oci:<layout>", keys dir)`.
fn signed_example() -> (tempfile::TempDir, String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    let keys = tmp.path().join("k");
    key_pair(&keys, "");
    let reference = format!("oci:{}", image.display());
    ok(run(Command::new(bin("cnb-attest"))
        .args(["sign", &reference, "--layers"])
        .arg(&source)
        .arg("--key")
        .arg(keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", "")));
    (tmp, reference, keys)
}

fn analyze(reference: &str, layers: &Path, keys: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("analyzer"))
        .args(["-previous-image", reference, "-layers"])
        .arg(layers)
        .arg("-key")
        .arg(keys.join("cosign.pub"))
        .args(extra))
}

fn download(reference: &str, out: &Path, keys: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("cnb-attest"))
        .args(["download", reference, "-o"])
        .arg(out)
        .arg("--key")
        .arg(keys.join("cosign.pub"))
        .args(extra))
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Names in `dir` starting with `.tmp-` (none when `dir` is missing).
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|read| {
            read.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Case 57, end to end: while 30 analyzer restores run, a thread keeps swapping `<layers>/sbom`
/// for a symlink to another directory and back. Restores that meet the swap fail (exit 38:
/// refused, or the directory was replaced while writing) or write into the real directory; the
/// other directory never receives anything, and no temporary tree is left.
#[test]
fn a_directory_swapped_for_a_symlink_during_restores_is_never_written_through() {
    let (tmp, reference, keys) = signed_example();
    let layers = tmp.path().join("layers-out");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(layers.join("sbom")).unwrap();
    fs::create_dir(&outside).unwrap();
    let link = layers.join("sbom-link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, layers, link) = (stop.clone(), layers.clone(), link.clone());
        std::thread::spawn(move || {
            let (real, hold) = (layers.join("sbom"), layers.join("sbom-real"));
            let mut swaps = 0u64;
            // A rename that fails (a restore moved something on the way) ends the swapping; the
            // count says how far it got.
            let swap = || -> std::io::Result<()> {
                fs::rename(&real, &hold)?;
                fs::rename(&link, &real)?;
                std::thread::sleep(Duration::from_micros(300));
                fs::rename(&real, &link)?;
                fs::rename(&hold, &real)?;
                std::thread::sleep(Duration::from_micros(300));
                Ok(())
            };
            while !stop.load(Ordering::Relaxed) && swap().is_ok() {
                swaps += 1;
            }
            swaps
        })
    };
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let out = analyze(&reference, &layers, &keys, &[]);
        *codes.entry(out.status.code()).or_insert(0) += 1;
        assert!(matches!(out.status.code(), Some(0 | 38)), "{}", text(&out));
        assert!(
            snapshot(&outside).is_empty(),
            "written through the symlink: {:?}\n{}",
            snapshot(&outside),
            text(&out)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    // The swapping went on through the restores (hundreds of swaps per second).
    assert!(swaps > 100, "{swaps} swaps");
    assert!(temporaries(&layers.join("sbom")).is_empty());
    assert!(temporaries(&layers).is_empty());
    eprintln!("{swaps} swaps; exit codes {codes:?}");
}

/// Case 58: `download -o` into a world-writable directory (no sticky bit) is refused, naming the
/// directory, its owner and mode, and writes nothing; `--allow-shared-output` accepts it; a
/// sticky world-writable directory (as `/tmp`) passes. The analyzer refuses a layers directory
/// owned by another user (exit 38) unless `-allow-shared-output`; the lifecycle's layout (0755,
/// owned by the user) passes.
#[test]
fn output_directories_other_users_can_change_are_refused_unless_allowed() {
    let (tmp, reference, keys) = signed_example();

    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let out = download(&reference, &shared, &keys, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for part in [
        shared.display().to_string(),
        "writable by other users".into(),
        "mode 0777".into(),
        "allow-shared-output".into(),
    ] {
        assert!(text(&out).contains(&part), "{part}: {}", text(&out));
    }
    assert!(snapshot(&shared).is_empty(), "nothing may be written");
    let out = download(&reference, &shared, &keys, &["--allow-shared-output"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(shared.join("layers/sbom/launch").is_dir());

    let sticky = tmp.path().join("sticky");
    fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let out = download(&reference, &sticky, &keys, &[]);
    assert!(out.status.success(), "{}", text(&out));

    let lifecycle = tmp.path().join("layers-0755");
    fs::create_dir(&lifecycle).unwrap();
    chmod(&lifecycle, 0o755);
    let out = analyze(&reference, &lifecycle, &keys, &[]);
    assert!(out.status.success(), "{}", text(&out));

    let foreign = tmp.path().join("layers-foreign");
    fs::create_dir(&foreign).unwrap();
    if std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_err() {
        eprintln!("chown needs root; the other-owner case is skipped");
        return;
    }
    let out = analyze(&reference, &foreign, &keys, &[]);
    assert_eq!(out.status.code(), Some(38), "{}", text(&out));
    assert!(
        text(&out).contains("owned by another user"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("owner uid 65534"), "{}", text(&out));
    assert!(snapshot(&foreign).is_empty(), "nothing may be written");
    let out = analyze(&reference, &foreign, &keys, &["-allow-shared-output"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A tmpfs of 1 MiB mounted on a new directory, unmounted on drop; `None` where mounting is
/// refused (not root, no `CAP_SYS_ADMIN`).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        fs::create_dir(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }

    /// Fills the file system with `<dir>/filler`, then gives `free` bytes back.
    fn fill(&self, dir: &Path, free: u64) {
        use std::io::Write as _;
        let mut filler = fs::File::create(dir.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let len = filler.metadata().unwrap().len();
        filler.set_len(len.saturating_sub(free)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An earlier image's tree in `<layers>/sbom/launch`.
fn earlier_tree(layers: &Path) {
    let earlier = layers.join("sbom/launch/other-image_bp/sbom.cdx.json");
    fs::create_dir_all(earlier.parent().unwrap()).unwrap();
    fs::write(
        &earlier,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}"#,
    )
    .unwrap();
}

/// Case 59, a real I/O error: the file system fills up (`ENOSPC`) after 64 KiB of the ~190 KiB
/// of SBOMs. The analyzer (which replaces `<layers>/sbom/launch`) and `download --replace` fail,
/// naming the error; the earlier tree is there byte for byte, no file of the new one and no
/// temporary directory. With the space back, the same restores replace it.
#[test]
fn a_full_file_system_partway_leaves_the_earlier_tree_as_it_was() {
    let (tmp, reference, keys) = signed_example();
    let Some(fs_) = Tmpfs::mount(&tmp.path().join("mnt")) else {
        eprintln!("mount -t tmpfs refused; skipped");
        return;
    };
    let layers = fs_.0.join("layers");
    let out_dir = fs_.0.join("out");
    fs::create_dir(&layers).unwrap();
    earlier_tree(&layers);
    earlier_tree(&out_dir.join("layers"));
    let before = (snapshot(&layers), snapshot(&out_dir));
    fs_.fill(&fs_.0, 64 * 1024);

    let analyzer = analyze(&reference, &layers, &keys, &[]);
    assert_eq!(analyzer.status.code(), Some(38), "{}", text(&analyzer));
    assert!(
        text(&analyzer).contains("No space left on device"),
        "{}",
        text(&analyzer)
    );
    let downloaded = download(&reference, &out_dir, &keys, &["--replace"]);
    assert_eq!(downloaded.status.code(), Some(1), "{}", text(&downloaded));
    assert!(
        text(&downloaded).contains("No space left on device"),
        "{}",
        text(&downloaded)
    );

    assert_eq!((snapshot(&layers), snapshot(&out_dir)), before);
    for dir in [
        &fs_.0,
        &layers,
        &layers.join("sbom"),
        &out_dir.join("layers/sbom"),
    ] {
        assert!(temporaries(dir).is_empty(), "{}", dir.display());
    }

    fs::remove_file(fs_.0.join("filler")).unwrap();
    ok(analyze(&reference, &layers, &keys, &[]));
    ok(download(&reference, &out_dir, &keys, &["--replace"]));
    for tree in [&layers, &out_dir.join("layers")] {
        assert!(!tree.join("sbom/launch/other-image_bp").exists());
        assert!(tree
            .join("sbom/launch/paketo-buildpacks_npm-install/launch-modules/sbom.cdx.json")
            .is_file());
    }
}
