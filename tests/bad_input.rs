//! Bad input, each with a clear message naming what and where, and nothing written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnb_attest_tests::{bin, fresh_example, key_pair, run, snapshot, text};

struct Case {
    _tmp: tempfile::TempDir,
    layers: PathBuf,
    image: PathBuf,
    keys: PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    Case {
        layers,
        image,
        keys,
        _tmp: tmp,
    }
}

fn sign_layers(c: &Case) -> Output {
    run(Command::new(bin("cnb-attest"))
        .arg("sign")
        .arg(format!("oci:{}", c.image.display()))
        .arg("--layers")
        .arg(&c.layers)
        .arg("--throwaway-key-dir")
        .arg(&c.keys))
}

/// Runs `action`, and asserts it failed with every `needle` in its output and left the image and the
/// key directory untouched.
fn refused(c: &Case, action: impl FnOnce(&Case) -> Output, needles: &[&str]) -> String {
    let image_before = snapshot(&c.image);
    let keys_before = snapshot(&c.keys);
    let out = action(c);
    let message = text(&out);
    assert!(!out.status.success(), "unexpectedly succeeded:\n{message}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "missing `{needle}` in:\n{message}"
        );
    }
    assert_eq!(snapshot(&c.image), image_before, "the image layout changed");
    assert_eq!(snapshot(&c.keys), keys_before, "the key directory changed");
    message
}

fn sbom(c: &Case, rel: &str) -> PathBuf {
    c.layers.join("sbom/launch").join(rel)
}

#[test]
fn a_symlinked_sbom_pointing_outside_is_refused() {
    let c = case();
    let target = sbom(&c, "paketo-buildpacks_node-engine/node/sbom.cdx.json");
    let outside = c.layers.parent().unwrap().join("outside.cdx.json");
    fs::rename(&target, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &target).unwrap();
    refused(
        &c,
        sign_layers,
        &[
            "paketo-buildpacks_node-engine/node/sbom.cdx.json",
            "symbolic link",
        ],
    );
}

#[test]
fn invalid_json_is_refused_with_its_position() {
    let c = case();
    let target = sbom(
        &c,
        "paketo-buildpacks_npm-install/launch-modules/sbom.syft.json",
    );
    let bytes = fs::read(&target).unwrap();
    fs::write(&target, &bytes[..bytes.len() / 2]).unwrap();
    refused(&c, sign_layers, &["launch-modules/sbom.syft.json", "line"]);
}

#[test]
fn content_that_does_not_match_its_extension_is_refused() {
    let c = case();
    let cdx = fs::read(sbom(&c, "paketo-buildpacks_node-engine/node/sbom.cdx.json")).unwrap();
    fs::write(
        sbom(&c, "paketo-buildpacks_node-engine/node/sbom.spdx.json"),
        cdx,
    )
    .unwrap();
    refused(
        &c,
        sign_layers,
        &["node/sbom.spdx.json", "SPDX", "CycloneDX"],
    );
}

#[test]
fn an_unknown_buildpack_directory_is_refused() {
    let c = case();
    let dir = sbom(&c, "acme_mystery/tools");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        sbom(&c, "paketo-buildpacks_node-engine/node/sbom.cdx.json"),
        dir.join("sbom.cdx.json"),
    )
    .unwrap();
    refused(&c, sign_layers, &["acme_mystery", "unknown buildpack"]);
}

fn write_config(c: &Case, body: &str) -> PathBuf {
    let path = c.layers.join("signer.toml");
    let digest = cnb_referrers::layout::OciLayout::open(&c.image)
        .unwrap()
        .resolve_image(None)
        .unwrap()
        .digest;
    let text = format!(
        "[image]\nreference = \"oci:{}@{digest}\"\n\n{}",
        c.image.display(),
        body.replace("DIGEST", digest.as_str())
            .replace("LAYERS", &c.layers.display().to_string())
    );
    fs::write(&path, text).unwrap();
    path
}

fn signer_with(c: &Case, config: &Path) -> Output {
    key_pair(&c.keys, "");
    run(Command::new(bin("signer"))
        .arg("-layers")
        .arg(&c.layers)
        .arg("-config")
        .arg(config)
        .arg("-key")
        .arg(c.keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", ""))
}

const ONE_ATTESTATION: &str = r#"[[attestations]]
  [[attestations.predicate]]
  type = "https://cyclonedx.org/bom"
  uri = "LAYERS/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json"
  [[attestations.statement.subject]]
  name = "registry.example/app"
  digest = "DIGEST"
"#;

#[test]
fn a_config_with_a_password_field_is_refused_without_echoing_it() {
    let c = case();
    let config = write_config(
        &c,
        &ONE_ATTESTATION.replace(
            "  [[attestations.statement.subject]]",
            "  password = \"hunter2-secret\"\n  [[attestations.statement.subject]]",
        ),
    );
    let image_before = snapshot(&c.image);
    let out = signer_with(&c, &config);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(90), "{message}");
    assert!(message.contains("password"), "{message}");
    assert!(message.contains("signer.toml"), "{message}");
    assert!(
        message.contains("signer.toml:8:3"),
        "line number missing: {message}"
    );
    assert!(
        !message.contains("hunter2-secret"),
        "secret echoed: {message}"
    );
    assert_eq!(snapshot(&c.image), image_before);
    assert!(!c.layers.join("signer-report.toml").exists());
}

#[test]
fn a_uri_with_dot_dot_is_refused() {
    let c = case();
    let config = write_config(
        &c,
        &ONE_ATTESTATION.replace(
            "LAYERS/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json",
            "LAYERS/sbom/launch/../../../etc/passwd",
        ),
    );
    let image_before = snapshot(&c.image);
    let out = signer_with(&c, &config);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(90), "{message}");
    assert!(message.contains(".."), "{message}");
    assert!(message.contains("uri"), "{message}");
    assert_eq!(snapshot(&c.image), image_before);
}

#[test]
fn a_wrong_key_password_is_refused_and_names_the_key_file() {
    let c = case();
    key_pair(&c.keys, "right");
    let key = c.keys.join("cosign.key");
    let message = refused(
        &c,
        |c| {
            run(Command::new(bin("cnb-attest"))
                .arg("sign")
                .arg(format!("oci:{}", c.image.display()))
                .arg("--layers")
                .arg(&c.layers)
                .arg("--key")
                .arg(&key)
                .env("COSIGN_PASSWORD", "wrong"))
        },
        &["cosign.key", "password"],
    );
    assert!(
        !message.contains("wrong\n") && !message.contains("\"wrong\""),
        "{message}"
    );
}

#[test]
fn a_truncated_key_file_is_refused() {
    let c = case();
    key_pair(&c.keys, "");
    let key = c.keys.join("cosign.key");
    let pem = fs::read(&key).unwrap();
    fs::write(&key, &pem[..pem.len() / 2]).unwrap();
    refused(
        &c,
        |c| {
            run(Command::new(bin("cnb-attest"))
                .arg("sign")
                .arg(format!("oci:{}", c.image.display()))
                .arg("--layers")
                .arg(&c.layers)
                .arg("--key")
                .arg(&key)
                .env("COSIGN_PASSWORD", ""))
        },
        &["cosign.key", "truncated"],
    );
}

#[test]
fn a_config_for_another_image_is_refused() {
    let c = case();
    let config = write_config(&c, ONE_ATTESTATION);
    let text_before = fs::read_to_string(&config).unwrap();
    let other = format!("sha256:{}", "0".repeat(64));
    let digest_start = text_before.find("@sha256:").unwrap() + 1;
    let edited = format!(
        "{}{other}{}",
        &text_before[..digest_start],
        &text_before[digest_start + 71..]
    );
    fs::write(&config, edited).unwrap();
    let image_before = snapshot(&c.image);
    let out = signer_with(&c, &config);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(92), "{message}");
    assert!(message.contains(&other), "{message}");
    assert_eq!(snapshot(&c.image), image_before);
}

#[test]
fn registry_only_formats_are_refused_for_a_layout_before_anything_is_written() {
    for flags in [
        ["--format", "cosign-legacy"],
        ["--image-signature", "simple-signing"],
    ] {
        let c = case();
        refused(
            &c,
            |c| {
                run(Command::new(bin("cnb-attest"))
                    .arg("sign")
                    .arg(format!("oci:{}", c.image.display()))
                    .arg("--layers")
                    .arg(&c.layers)
                    .arg("--throwaway-key-dir")
                    .arg(&c.keys)
                    .args(flags))
            },
            &["registry tags", "OCI"],
        );
    }
}

/// `CNB_*` booleans are read as the lifecycle reads them (Go's `strconv.ParseBool`): `1` and
/// `True` are true, `False` is false, and anything else is refused by name.
#[test]
fn lifecycle_booleans_parse_as_go_parse_bool() {
    let c = case();
    let exporter = |value: &str| {
        run(Command::new(bin("exporter"))
            .arg("-layers")
            .arg(&c.layers)
            .env("CNB_USE_LAYOUT", value)
            .env("CNB_EXPERIMENTAL_MODE", "quiet")
            .env_remove("CNB_LAYOUT_DIR"))
    };
    for truthy in ["1", "t", "True", "TRUE"] {
        let out = exporter(truthy);
        assert_eq!(out.status.code(), Some(2), "{truthy}: {}", text(&out));
        assert!(
            text(&out).contains("-layout needs -layout-dir"),
            "{truthy}: {}",
            text(&out)
        );
    }
    for falsy in ["0", "f", "False"] {
        // Not a layout export: the exporter looks for report.toml, which this build has none of.
        let out = exporter(falsy);
        assert_eq!(out.status.code(), Some(66), "{falsy}: {}", text(&out));
        assert!(
            text(&out).contains("report.toml"),
            "{falsy}: {}",
            text(&out)
        );
    }
    let out = exporter("yes");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a boolean"), "{}", text(&out));
}

/// Under `--json`, stdout is one JSON document whether the command succeeds or fails.
#[test]
fn under_json_an_error_is_a_json_object_and_results_are_json() {
    let c = case();
    let refused = run(Command::new(bin("cnb-attest"))
        .args(["generate-key-pair", "--json", "--output-dir"])
        .arg(&c.keys)
        .env_remove("COSIGN_PASSWORD"));
    assert_eq!(refused.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(error["error"]["code"], 2, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("COSIGN_PASSWORD"));
    assert!(error["error"]["hint"].is_string());

    let made = run(Command::new(bin("cnb-attest"))
        .args(["generate-key-pair", "--json", "--output-dir"])
        .arg(&c.keys)
        .env("COSIGN_PASSWORD", ""));
    assert!(made.status.success(), "{}", text(&made));
    let files: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert!(
        Path::new(files["public-key"].as_str().unwrap()).is_file(),
        "{files}"
    );

    let config = c.keys.join("signer.toml");
    let exported = run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&c.layers)
        .arg("-layout-image")
        .arg(format!("oci:{}", c.image.display()))
        .arg("-signer-config")
        .arg(&config)
        .arg("-json"));
    assert!(exported.status.success(), "{}", text(&exported));
    let report: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(report["attestations"], 7, "{report}");
    assert_eq!(report["config"], config.display().to_string());

    let analyzed = run(Command::new(bin("analyzer"))
        .arg("-previous-image")
        .arg(format!("oci:{}", c.image.display()))
        .arg("-layers")
        .arg(c.keys.join("restored"))
        .arg("-key")
        .arg(c.keys.join("cosign.pub"))
        .arg("-json"));
    assert!(analyzed.status.success(), "{}", text(&analyzed));
    let restored: serde_json::Value = serde_json::from_slice(&analyzed.stdout).unwrap();
    // The example is not signed: the analyzer falls back to the SBOM layer, and says so.
    assert_eq!(restored["unsigned-sbom-layer"], true, "{restored}");
    assert_eq!(restored["report"]["origin"], "sbom-layer", "{restored}");
    assert!(!restored["report"]["written"].as_array().unwrap().is_empty());
}
