//! The RFC's exporter option `-omit-sbom`: the image loses its SBOM layer, the attestations carry
//! the SBOMs alone, and the analyzer restores them from the attestations.

use std::fs;
use std::process::Command;

use cnb_attest_tests::{bin, fresh_example, key_pair, missing, ok, run, sbom_files, text, which};
use serde_json::Value;

#[test]
fn omit_sbom_rewrites_the_image_and_the_attestations_carry_the_sboms() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "pw");
    let before = cnb_referrers::layout::OciLayout::open(&image).unwrap();
    let old = before
        .read_image(&before.resolve_image(Some("latest")).unwrap())
        .unwrap();

    let exported = run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&layers)
        .arg("-layout-image")
        .arg(format!("oci:{}:latest", image.display()))
        .arg("-omit-sbom"));
    assert!(exported.status.success(), "{}", text(&exported));
    let layout = cnb_referrers::layout::OciLayout::open(&image).unwrap();
    let new = layout
        .read_image(&layout.resolve_image(Some("latest")).unwrap())
        .unwrap();
    assert_ne!(new.descriptor.digest, old.descriptor.digest);
    assert_eq!(new.manifest.layers.len() + 1, old.manifest.layers.len());
    let label: Value =
        serde_json::from_str(&new.config.labels["io.buildpacks.lifecycle.metadata"]).unwrap();
    let old_label: Value =
        serde_json::from_str(&old.config.labels["io.buildpacks.lifecycle.metadata"]).unwrap();
    let sbom_sha = old_label["sbom"]["sha"].as_str().unwrap();
    assert!(label.get("sbom").is_none(), "{label}");
    assert!(!new.config.diff_ids.iter().any(|d| d == sbom_sha));
    assert_eq!(
        label["buildpacks"], old_label["buildpacks"],
        "the layer diffIDs are untouched"
    );
    let config = fs::read_to_string(layers.join("signer.toml")).unwrap();
    assert!(
        config.contains(new.descriptor.digest.as_str()),
        "the configuration is for the new image"
    );

    // An independent reader accepts the rewritten image.
    if which("skopeo").is_some() {
        ok(run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:latest", image.display()))));
    } else {
        missing("skopeo");
    }

    ok(run(Command::new(bin("signer"))
        .arg("-layers")
        .arg(&layers)
        .arg("-key")
        .arg(tmp.path().join("k/cosign.key"))
        .env("COSIGN_PASSWORD", "pw")));
    let restored = tmp.path().join("restored");
    fs::create_dir(&restored).unwrap();
    let analyzed = run(Command::new(bin("analyzer"))
        .args([
            "-previous-image",
            &format!("oci:{}:latest", image.display()),
            "-layers",
        ])
        .arg(&restored)
        .arg("-key")
        .arg(tmp.path().join("k/cosign.pub"))
        .arg("-strict"));
    assert!(analyzed.status.success(), "{}", text(&analyzed));
    assert_eq!(sbom_files(&restored), sbom_files(&layers));
}

#[test]
fn without_attestations_an_omitted_image_has_nothing_to_fall_back_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    ok(run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&layers)
        .arg("-layout-image")
        .arg(format!("oci:{}:latest", image.display()))
        .arg("-omit-sbom")));
    let restored = tmp.path().join("restored");
    fs::create_dir(&restored).unwrap();
    let analyze = |extra: &[&str]| {
        run(Command::new(bin("analyzer"))
            .args([
                "-previous-image",
                &format!("oci:{}:latest", image.display()),
                "-layers",
            ])
            .arg(&restored)
            .arg("-key")
            .arg(tmp.path().join("k/cosign.pub"))
            .args(extra))
    };
    // As the lifecycle: nothing to restore is a warning; -strict makes it an error.
    let lenient = analyze(&[]);
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient));
    assert!(
        text(&lenient).contains("neither SBOM attestations nor an SBOM layer"),
        "{}",
        text(&lenient)
    );
    assert!(cnb_attest_tests::snapshot(&restored).is_empty());
    let strict = analyze(&["-strict"]);
    assert_eq!(strict.status.code(), Some(36), "{}", text(&strict));
}
