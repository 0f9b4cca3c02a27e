//! The analyzer phase: verified attestations restored into a layers directory give the same SBOM
//! files the lifecycle's own analyzer extracts from the SBOM layer (`sbom.legacy.json` aside, as it
//! is not attested); the fallback, strict mode, saved daemon images, tampering and planted links.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{
    bin, fresh_example, fresh_spring_boot, key_pair, missing, ok, run, sbom_files, snapshot, text,
    which,
};

type Make = fn(&Path) -> (PathBuf, PathBuf);

fn analyze(
    previous: &str,
    layers: &Path,
    keys: &Path,
    extra: &[&str],
    registry: Option<&Registry>,
) -> Output {
    let mut command = Command::new(bin("analyzer"));
    command
        .args(["-previous-image", previous, "-layers"])
        .arg(layers)
        .arg("-key")
        .arg(keys.join("cosign.pub"))
        .args(extra)
        .env("DOCKER_CONFIG", "/nonexistent");
    if let Some(r) = registry {
        command
            .env("CNB_REGISTRY_AUTH", r.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &r.host);
    }
    run(&mut command)
}

fn sign(image: &str, layers: &Path, keys: &Path, registry: Option<&Registry>) {
    let mut command = Command::new(bin("cnb-attest"));
    command
        .args(["sign", image, "--layers"])
        .arg(layers)
        .arg("--key")
        .arg(keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", "")
        .env("DOCKER_CONFIG", "/nonexistent");
    if let Some(r) = registry {
        command
            .env("CNB_REGISTRY_AUTH", r.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &r.host);
    }
    ok(run(&mut command));
}

/// Every file under `<layers>/sbom/launch`, legacy BOM included.
fn restored(layers: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    snapshot(&layers.join("sbom/launch"))
}

#[test]
fn attestations_restore_what_the_lifecycle_extracts_from_the_sbom_layer() {
    for make in [fresh_example as Make, fresh_spring_boot] {
        let tmp = tempfile::tempdir().unwrap();
        let (source, image) = make(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let unsigned = tmp.path().join("unsigned");
        cnb_attest_tests::copy_dir(&image, &unsigned);
        let reference = format!("oci:{}", image.display());
        sign(&reference, &source, &tmp.path().join("k"), None);

        // The lifecycle's way: the SBOM layer (absolute paths, built as the lifecycle builds it).
        let from_layer = tmp.path().join("from-layer");
        fs::create_dir(&from_layer).unwrap();
        let out = analyze(
            &format!("oci:{}", unsigned.display()),
            &from_layer,
            &tmp.path().join("k"),
            &[],
            None,
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("Warning"),
            "the fallback must warn: {}",
            text(&out)
        );
        // The layer holds exactly the source tree, legacy BOM included.
        assert_eq!(restored(&from_layer), snapshot(&source.join("sbom/launch")));

        // Through verified attestations.
        let from_attestations = tmp.path().join("from-attestations");
        fs::create_dir(&from_attestations).unwrap();
        let out = analyze(
            &reference,
            &from_attestations,
            &tmp.path().join("k"),
            &["-require-all-layers", "-strict"],
            None,
        );
        assert!(out.status.success(), "{}", text(&out));
        let mut expected = restored(&from_layer);
        expected.remove(Path::new("sbom.legacy.json"));
        assert_eq!(
            restored(&from_attestations),
            expected,
            "the trees differ beyond sbom.legacy.json"
        );
    }
}

#[test]
fn analyzer_restores_from_both_registries_and_falls_back_without_attestations() {
    for registry in [Kind::Distribution, Kind::Ferro]
        .into_iter()
        .filter_map(Registry::start)
    {
        let tmp = tempfile::tempdir().unwrap();
        let (source, image) = fresh_example(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let unsigned = registry.push_layout(&image, "an/unsigned", "1.0");
        let signed = registry.push_layout(&image, "an/signed", "1.0");
        sign(&signed, &source, &tmp.path().join("k"), Some(&registry));
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let out = analyze(
            &signed,
            &a,
            &tmp.path().join("k"),
            &["-strict"],
            Some(&registry),
        );
        assert!(out.status.success(), "{:?}: {}", registry.kind, text(&out));
        assert_eq!(sbom_files(&a), sbom_files(&source));
        let out = analyze(&unsigned, &b, &tmp.path().join("k"), &[], Some(&registry));
        assert!(out.status.success(), "{:?}: {}", registry.kind, text(&out));
        assert_eq!(restored(&b), snapshot(&source.join("sbom/launch")));
        let strict = analyze(
            &unsigned,
            &tmp.path().join("c"),
            &tmp.path().join("k"),
            &["-strict"],
            Some(&registry),
        );
        assert_eq!(strict.status.code(), Some(36), "{}", text(&strict));
    }
}

#[test]
fn a_tampered_attestation_restores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    sign(
        &format!("oci:{}", image.display()),
        &source,
        &tmp.path().join("k"),
        None,
    );
    // Another key: every attestation fails; nothing may be written, not even the good fallback.
    key_pair(&tmp.path().join("other"), "");
    let layers = tmp.path().join("layers-out");
    fs::create_dir(&layers).unwrap();
    let out = analyze(
        &format!("oci:{}", image.display()),
        &layers,
        &tmp.path().join("other"),
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(35), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("signature does not verify"), "{report}");
    // Each is left out as signed by no trusted key; nothing verified, so nothing is restored.
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("Warning: left out ")
                && l.contains("not signed by a trusted key"))
            .count(),
        7,
        "{report}"
    );
    assert!(
        report.contains("7 attestation(s) of")
            && report.contains("left out: not signed by a trusted key"),
        "{report}"
    );
    assert!(
        report.contains("none of the 7 SBOM attestation(s)"),
        "{report}"
    );
    assert!(snapshot(&layers).is_empty(), "something was written");
}

/// Key rotation: an image signed with key 1 and key 2 (every SBOM twice) restores everything with
/// either key, and with both; with a third key nothing verifies and nothing is written (exit 35).
#[test]
fn a_rotated_key_restores_everything_and_an_untrusted_one_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    let reference = format!("oci:{}", image.display());
    for name in ["k1", "k2", "k3"] {
        key_pair(&tmp.path().join(name), "");
    }
    sign(&reference, &source, &tmp.path().join("k1"), None);
    sign(&reference, &source, &tmp.path().join("k2"), None);
    let key = |name: &str| tmp.path().join(name).join("cosign.pub");
    for (i, extra) in [
        vec![],
        vec!["-key".to_string(), key("k1").display().to_string()],
    ]
    .into_iter()
    .enumerate()
    {
        // `analyze` passes k2 (or k3) first; the extra `-key` adds k1.
        let layers = tmp.path().join(format!("both-{i}"));
        fs::create_dir(&layers).unwrap();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = analyze(&reference, &layers, &tmp.path().join("k2"), &extra, None);
        assert!(out.status.success(), "{}", text(&out));
        // With k2 alone, k1's 7 are left out (reported, not written); with both, none.
        let left_out = text(&out)
            .lines()
            .filter(|l| l.starts_with("Warning: left out "))
            .count();
        assert_eq!(left_out, if i == 0 { 7 } else { 0 }, "{}", text(&out));
        assert_eq!(sbom_files(&layers), sbom_files(&source));
    }
    let layers = tmp.path().join("untrusted");
    fs::create_dir(&layers).unwrap();
    let out = analyze(&reference, &layers, &tmp.path().join("k3"), &[], None);
    assert_eq!(out.status.code(), Some(35), "{}", text(&out));
    assert!(
        text(&out).contains("14 attestation(s) of") && text(&out).contains("none of the 14"),
        "{}",
        text(&out)
    );
    assert!(snapshot(&layers).is_empty(), "something was written");
}

#[test]
fn a_symlink_planted_in_the_layers_directory_stops_the_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    sign(
        &format!("oci:{}", image.display()),
        &source,
        &tmp.path().join("k"),
        None,
    );
    let layers = tmp.path().join("layers-out");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(layers.join("sbom")).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, layers.join("sbom/launch")).unwrap();
    let out = analyze(
        &format!("oci:{}", image.display()),
        &layers,
        &tmp.path().join("k"),
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(38), "{}", text(&out));
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    assert!(
        snapshot(&elsewhere).is_empty(),
        "wrote through the planted link"
    );
}

/// A saved daemon image (written by skopeo's docker-archive transport, an independent writer) has
/// no attestations: the analyzer restores its SBOM layer, or refuses in strict mode.
#[test]
fn a_saved_daemon_image_restores_from_its_sbom_layer() {
    let Some(_) = which("skopeo").or_else(|| missing("skopeo")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let archive = tmp.path().join("app.tar");
    ok(run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:latest", image.display()))
        .arg(format!(
            "docker-archive:{}:registry.example/team/app:1.0",
            archive.display()
        ))));
    let layers = tmp.path().join("layers-out");
    fs::create_dir(&layers).unwrap();
    let archive_arg = archive.display().to_string();
    let out = analyze(
        "registry.example/team/app:1.0",
        &layers,
        &tmp.path().join("k"),
        &["-previous-image-archive", &archive_arg],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(restored(&layers), snapshot(&source.join("sbom/launch")));
    let strict = analyze(
        "registry.example/team/app:1.0",
        &tmp.path().join("s"),
        &tmp.path().join("k"),
        &["-previous-image-archive", &archive_arg, "-strict"],
        None,
    );
    assert_eq!(strict.status.code(), Some(36), "{}", text(&strict));
}

/// `-require-all-layers` takes what must be there from the image's SBOM layer (fixed by the image
/// digest), not from what happens to be attached: with one buildpack's attestations missing (never
/// attached, or deleted by someone with push access), the restore fails and names every file.
#[test]
fn require_all_layers_checks_against_the_sbom_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    // Sign from a copy of the layers without npm-install's SBOMs.
    let partial = tmp.path().join("partial");
    cnb_attest_tests::copy_dir(&source, &partial);
    fs::remove_dir_all(partial.join("sbom/launch/paketo-buildpacks_npm-install")).unwrap();
    sign(
        &format!("oci:{}", image.display()),
        &partial,
        &tmp.path().join("k"),
        None,
    );
    let layers = tmp.path().join("layers-out");
    fs::create_dir(&layers).unwrap();
    let out = analyze(
        &format!("oci:{}", image.display()),
        &layers,
        &tmp.path().join("k"),
        &["-require-all-layers"],
        None,
    );
    assert_eq!(out.status.code(), Some(37), "{}", text(&out));
    for missing in ["sbom.cdx.json", "sbom.spdx.json", "sbom.syft.json"] {
        assert!(
            text(&out).contains(&format!(
                "paketo-buildpacks_npm-install/launch-modules/{missing}"
            )),
            "{}",
            text(&out)
        );
    }
    assert!(snapshot(&layers).is_empty(), "nothing may be written");
}

/// Case 6, by content: `-require-all-layers` compares each verified SBOM with the SBOM layer's file
/// at its place, byte for byte, not only that there is one. The image's SBOM layer holds
/// npm-install's CycloneDX SBOM as built; the attestation signed for that place (with a trusted
/// key) holds another one, with a component the image does not have. The analyzer refuses it
/// (exit 37), naming the file, and restores nothing; `verify` and `download` with
/// `--require-all-layers` fail it too (exit 3).
/// Without the flag the verified SBOMs are restored as signed (the flag is what compares).
#[test]
fn require_all_layers_compares_each_verified_sbom_with_the_sbom_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let changed = tmp.path().join("changed");
    cnb_attest_tests::copy_dir(&source, &changed);
    let place = "paketo-buildpacks_npm-install/launch-modules/sbom.cdx.json";
    let file = changed.join("sbom/launch").join(place);
    let mut cdx: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    cdx["components"]
        .as_array_mut()
        .expect("a CycloneDX SBOM with components")
        .push(
            serde_json::json!({"type": "library", "name": "not-in-this-image", "version": "6.6.6"}),
        );
    let signed = serde_json::to_vec_pretty(&cdx).unwrap();
    assert_ne!(
        signed,
        fs::read(source.join("sbom/launch").join(place)).unwrap()
    );
    fs::write(&file, &signed).unwrap();
    let reference = format!("oci:{}", image.display());
    sign(&reference, &changed, &tmp.path().join("k"), None);

    let layers = tmp.path().join("layers-out");
    fs::create_dir(&layers).unwrap();
    let out = analyze(
        &reference,
        &layers,
        &tmp.path().join("k"),
        &["-require-all-layers"],
        None,
    );
    assert_eq!(out.status.code(), Some(37), "{}", text(&out));
    assert!(
        text(&out).contains("differ from the SBOM layer"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(place), "{}", text(&out));
    // Only the changed file is named: the others have the layer's bytes.
    assert!(!text(&out).contains("sbom.spdx.json"), "{}", text(&out));
    assert!(snapshot(&layers).is_empty(), "nothing may be written");

    let verify = run(Command::new(bin("cnb-attest"))
        .args(["verify", &reference, "--require-all-layers", "--key"])
        .arg(tmp.path().join("k/cosign.pub")));
    assert_eq!(verify.status.code(), Some(3), "{}", text(&verify));
    assert!(text(&verify).contains(place), "{}", text(&verify));
    let out_dir = tmp.path().join("downloaded");
    let download = run(Command::new(bin("cnb-attest"))
        .args(["download", &reference, "--require-all-layers", "-o"])
        .arg(&out_dir)
        .arg("--key")
        .arg(tmp.path().join("k/cosign.pub")));
    assert_eq!(download.status.code(), Some(3), "{}", text(&download));
    assert!(text(&download).contains(place), "{}", text(&download));
    assert!(
        !out_dir.join("layers/sbom").exists(),
        "nothing may be written"
    );

    let out = analyze(&reference, &layers, &tmp.path().join("k"), &[], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(layers.join("sbom/launch").join(place)).unwrap(),
        signed
    );
}
