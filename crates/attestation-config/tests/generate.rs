//! Generation from the real fixture trees, the round trip, writing.

use std::fs;
use std::path::{Path, PathBuf};

use cnb_attestation_config::{
    annotations, generate, parse, AllowedRoots, Digest, Error, ImageDescription, PredicateSource,
    SignerConfig, DEFAULT_MAX_PREDICATE_SIZE,
};
use cnb_sbom_discovery::platform::{LifecycleMetadata, Report};
use cnb_sbom_discovery::{discover, BuildpackId, BuildpackIndex, DiscoveryOptions, SbomFile};

const IMAGE_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_express() -> PathBuf {
    manifest_dir().join("../../examples/node-express/layers")
}

fn spring_boot() -> PathBuf {
    manifest_dir().join("../../tests/fixtures/sboms/spring-boot/layers")
}

/// A deterministic fake diffID per (buildpack, layer).
fn diff_id(bp: &str, layer: &str) -> String {
    Digest::of(format!("{bp}:{layer}").as_bytes()).to_string()
}

/// A label like the lifecycle writes, with a diffID for every layer listed.
fn label(layers: &[(&str, &[&str])]) -> LifecycleMetadata {
    let buildpacks: Vec<serde_json::Value> = layers
        .iter()
        .map(|(bp, names)| {
            let map: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|l| {
                    (
                        l.to_string(),
                        serde_json::json!({"sha": diff_id(bp, l), "launch": true}),
                    )
                })
                .collect();
            serde_json::json!({"key": bp, "version": "1.0.0", "layers": map})
        })
        .collect();
    let json = serde_json::json!({
        "app": [{"sha": diff_id("app", "0")}],
        "sbom": {"sha": diff_id("sbom", "layer")},
        "buildpacks": buildpacks,
        "config": {"sha": diff_id("buildpacksio/lifecycle", "config")},
        "launcher": {"sha": diff_id("buildpacksio/lifecycle", "launcher")},
        "process-types": {"sha": diff_id("buildpacksio/lifecycle", "process-types")},
        "runImage": {"topLayer": diff_id("run", "top"), "reference": "r.io/run@sha256:00"},
    });
    LifecycleMetadata::from_json(&json.to_string()).unwrap()
}

fn node_label() -> LifecycleMetadata {
    label(&[
        ("paketo-buildpacks/ca-certificates", &["helper"]),
        ("paketo-buildpacks/node-engine", &["node"]),
        ("paketo-buildpacks/npm-install", &["launch-modules"]),
    ])
}

fn spring_label() -> LifecycleMetadata {
    label(&[
        ("paketo-buildpacks/ca-certificates", &["helper"]),
        ("paketo-buildpacks/bellsoft-liberica", &["helper", "jre"]),
        ("paketo-buildpacks/executable-jar", &[]),
        (
            "paketo-buildpacks/spring-boot",
            &["helper", "spring-cloud-bindings"],
        ),
    ])
}

fn image(metadata: LifecycleMetadata) -> ImageDescription {
    ImageDescription {
        reference: format!("registry.example/ns/app:latest@sha256:{IMAGE_HEX}"),
        name: "registry.example/ns/app".into(),
        digest: format!("sha256:{IMAGE_HEX}").parse().unwrap(),
        metadata,
    }
}

fn files(layers: &Path, metadata: &LifecycleMetadata) -> Vec<SbomFile> {
    let index = BuildpackIndex::from_metadata(metadata).unwrap();
    discover(layers, &index, &DiscoveryOptions::default())
        .unwrap()
        .files
}

fn round_trip(layers: &Path, metadata: LifecycleMetadata, expected: usize) -> SignerConfig {
    let found = files(layers, &metadata);
    assert_eq!(found.len(), expected);
    let config = generate(&image(metadata), &found).unwrap();
    let text = config.to_toml();
    let again = parse(&text, Path::new("generated.toml")).unwrap();
    assert_eq!(again, config, "{text}");
    // Stable output.
    assert_eq!(again.to_toml(), text);

    let roots = AllowedRoots::new(&[layers]).unwrap();
    config.validate(&roots).unwrap();
    for (a, f) in config.attestations.iter().zip(&found) {
        let bytes = a
            .read_predicate(&roots, DEFAULT_MAX_PREDICATE_SIZE)
            .unwrap();
        assert_eq!(bytes, fs::read(&f.path).unwrap());
    }
    config
}

#[test]
fn node_express_round_trip() {
    let config = round_trip(&node_express(), node_label(), 7);
    let a = &config.attestations[1]; // node-engine / node / cdx
    assert_eq!(a.predicate.predicate_type, "https://cyclonedx.org/bom");
    let PredicateSource::Uri(uri) = &a.predicate.source else {
        panic!("uri expected");
    };
    assert!(uri.is_absolute());
    assert!(uri.ends_with("sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json"));
    assert_eq!(a.subjects.len(), 2);
    assert_eq!(a.subjects[0].name, "registry.example/ns/app");
    assert_eq!(a.subjects[0].digest.hex(), IMAGE_HEX);
    assert_eq!(a.subjects[1].name, "paketo-buildpacks/node-engine:node");
    assert_eq!(
        a.subjects[1].digest.to_string(),
        diff_id("paketo-buildpacks/node-engine", "node")
    );
    let names: Vec<_> = a.annotations.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            annotations::BUILDPACK_ID,
            annotations::LAYER_NAME,
            annotations::LAYER_DIGEST_KIND,
            annotations::SBOM_MEDIA_TYPE,
            annotations::SBOM_DIGEST,
        ]
    );
    assert_eq!(
        a.annotation(annotations::BUILDPACK_ID),
        Some("paketo-buildpacks/node-engine")
    );
    assert_eq!(a.annotation(annotations::LAYER_NAME), Some("node"));
    assert_eq!(a.annotation(annotations::LAYER_DIGEST_KIND), Some("diffID"));
    assert_eq!(
        a.annotation(annotations::SBOM_MEDIA_TYPE),
        Some("application/vnd.cyclonedx+json")
    );
    let bytes = fs::read(uri).unwrap();
    assert_eq!(
        a.annotation(annotations::SBOM_DIGEST),
        Some(Digest::of(&bytes).to_string().as_str())
    );
}

#[test]
fn spring_boot_round_trip_with_launcher_and_image_scope() {
    let config = round_trip(&spring_boot(), spring_label(), 10);
    let launcher: Vec<_> = config
        .attestations
        .iter()
        .filter(|a| a.annotation(annotations::BUILDPACK_ID) == Some("buildpacksio/lifecycle"))
        .collect();
    assert_eq!(launcher.len(), 3);
    for a in launcher {
        assert_eq!(a.subjects[1].name, "buildpacksio/lifecycle:launcher");
        assert_eq!(
            a.subjects[1].digest.to_string(),
            diff_id("buildpacksio/lifecycle", "launcher")
        );
        assert_eq!(a.annotation(annotations::LAYER_NAME), Some("launcher"));
    }
    let jar: Vec<_> = config
        .attestations
        .iter()
        .filter(|a| {
            a.annotation(annotations::BUILDPACK_ID) == Some("paketo-buildpacks/executable-jar")
        })
        .collect();
    assert_eq!(jar.len(), 2);
    for a in jar {
        assert_eq!(
            a.subjects.len(),
            2,
            "image scope: the image, and the buildpack ID with the image digest"
        );
        assert_eq!(a.subjects[1].name, "paketo-buildpacks/executable-jar");
        assert_eq!(a.subjects[1].digest, a.subjects[0].digest);
        assert_eq!(a.annotation(annotations::LAYER_NAME), None);
        assert_eq!(a.annotation(annotations::LAYER_DIGEST_KIND), None);
    }
}

#[test]
fn synthetic_tree_with_build_and_cache_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    let cdx = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":"weird \"name\"\n\ttab"}}}"#;
    for dir in [
        "sbom/launch/acme_bp/lay",
        "sbom/launch/acme_bp",
        "sbom/build/acme_bp/tools",
        "sbom/cache/acme_bp/lay",
    ] {
        fs::create_dir_all(layers.join(dir)).unwrap();
        fs::write(layers.join(dir).join("sbom.cdx.json"), cdx).unwrap();
    }
    let metadata = label(&[("acme/bp", &["lay"])]);
    let options = DiscoveryOptions {
        include_build: true,
        include_cache: true,
        ..DiscoveryOptions::default()
    };
    let index = BuildpackIndex::from_ids([BuildpackId::new("acme/bp").unwrap()]);
    let found = discover(&layers, &index, &options).unwrap().files;
    assert_eq!(found.len(), 4);
    let config = generate(&image(metadata), &found).unwrap();
    assert_eq!(parse(&config.to_toml(), Path::new("x")).unwrap(), config);

    let kinds: Vec<_> = config
        .attestations
        .iter()
        .map(|a| a.annotation(annotations::SBOM_KIND))
        .collect();
    assert_eq!(kinds, [None, None, Some("build"), Some("cache")]);
    let build = &config.attestations[2];
    assert_eq!(build.subjects.len(), 2, "the image, and the signed kind");
    assert!(
        build.subjects[1].name.ends_with(":tools#build"),
        "{}",
        build.subjects[1].name
    );
    assert!(config.attestations[3].subjects[1].name.ends_with("#cache"));
    assert_eq!(build.annotation(annotations::LAYER_NAME), Some("tools"));
    assert_eq!(build.annotation(annotations::LAYER_DIGEST_KIND), None);
    assert_eq!(
        config.attestations[0].subjects.len(),
        2,
        "image scope first: the image and the buildpack"
    );
    assert_eq!(config.attestations[1].subjects.len(), 2);

    // A platform-added inline predicate with awkward characters survives the round trip.
    let mut extended = config.clone();
    let mut extra = config.attestations[0].clone();
    extra.predicate.source =
        PredicateSource::Value("{\"q\":\"\\\"'''\\u0000\",\n \"ünï\": [\"\\\\\"]}".to_string());
    extra.annotations = vec![("x.y/z".into(), "a \"b\"\u{7f}\n".into())];
    extended.attestations.push(extra);
    assert_eq!(
        parse(&extended.to_toml(), Path::new("x")).unwrap(),
        extended
    );
}

#[test]
fn a_launch_layer_missing_from_the_label_is_an_error() {
    let metadata = label(&[
        ("paketo-buildpacks/ca-certificates", &["helper"]),
        ("paketo-buildpacks/node-engine", &[]),
        ("paketo-buildpacks/npm-install", &["launch-modules"]),
    ]);
    let found = files(&node_express(), &metadata);
    let e = generate(&image(metadata), &found).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::LayerNotInLabel { .. }), "{m}");
    assert!(
        m.contains(
            "buildpack `paketo-buildpacks/node-engine` layer `node` has an SBOM but no diffID"
        ),
        "{m}"
    );
    assert!(m.contains("node-engine/node/sbom.cdx.json"), "{m}");

    // No launcher.sha → the launcher SBOM cannot be attested either.
    let mut md = spring_label();
    md.launcher = None;
    let found = files(&spring_boot(), &md);
    let m = generate(&image(md), &found).unwrap_err().to_string();
    assert!(
        m.contains("`buildpacksio/lifecycle` layer `launcher`"),
        "{m}"
    );

    // A malformed diffID in the label is named.
    let mut md = node_label();
    md.buildpacks[1].layers.get_mut("node").unwrap().sha = "sha256:nothex".into();
    let found = files(&node_express(), &md);
    let m = generate(&image(md), &found).unwrap_err().to_string();
    assert!(
        m.contains("paketo-buildpacks/node-engine:node") && m.contains("sha256:nothex"),
        "{m}"
    );
}

#[test]
fn image_description_from_report() {
    let report: Report = format!(
        "[image]\ntags = [\"registry.example:5000/ns/app:latest\", \"registry.example:5000/ns/app:1\"]\ndigest = \"sha256:{IMAGE_HEX}\"\nmanifest-size = 1234\n"
    )
    .parse()
    .unwrap();
    let d = ImageDescription::from_report(&report, node_label()).unwrap();
    assert_eq!(
        d.reference,
        format!("registry.example:5000/ns/app:latest@sha256:{IMAGE_HEX}")
    );
    assert_eq!(d.name, "registry.example:5000/ns/app");
    assert_eq!(d.digest.hex(), IMAGE_HEX);

    let daemon: Report = "[image]\ntags = [\"app:latest\"]\nimage-id = \"sha256:12\"\n"
        .parse()
        .unwrap();
    let m = ImageDescription::from_report(&daemon, node_label())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("image.digest") && m.contains("no manifest digest"),
        "{m}"
    );

    // The reference must pin the same digest as the image subject.
    let mut bad = image(node_label());
    bad.digest = Digest::of(b"other");
    assert!(generate(&bad, &[])
        .unwrap_err()
        .to_string()
        .contains("but the image digest is"));
}

#[test]
fn read_predicate_notices_a_changed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    let dir = layers.join("sbom/launch/acme_bp");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("sbom.spdx.json"), r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let index = BuildpackIndex::from_ids([BuildpackId::new("acme/bp").unwrap()]);
    let found = discover(&layers, &index, &DiscoveryOptions::default())
        .unwrap()
        .files;
    let config = generate(&image(LifecycleMetadata::default()), &found).unwrap();
    let roots = AllowedRoots::new(&[&layers]).unwrap();
    config.attestations[0]
        .read_predicate(&roots, 1 << 20)
        .unwrap();

    fs::write(dir.join("sbom.spdx.json"), r#"{"spdxVersion":"SPDX-2.2"}"#).unwrap();
    let e = config.attestations[0]
        .read_predicate(&roots, 1 << 20)
        .unwrap_err();
    assert!(matches!(e, Error::PredicateChanged { .. }), "{e}");

    fs::write(dir.join("sbom.spdx.json"), r#"{"bomFormat":"CycloneDX"}"#).unwrap();
    let m = config.attestations[0]
        .read_predicate(&roots, 1 << 20)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("claims SPDX but the content looks like CycloneDX"),
        "{m}"
    );
}

#[test]
fn write_is_atomic_and_refuses_links() {
    let tmp = tempfile::tempdir().unwrap();
    let config = generate(&image(node_label()), &files(&node_express(), &node_label())).unwrap();
    let target = tmp.path().join("signer.toml");
    fs::write(&target, "old").unwrap();
    config.write(&target).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), config.to_toml());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("signer.toml")]);

    let victim = tmp.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let link = tmp.path().join("link.toml");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let m = config.write(&link).unwrap_err().to_string();
    assert_eq!(
        m,
        format!(
            "refusing to write {}: it is a symbolic link",
            link.display()
        )
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");

    let m = config
        .write(&tmp.path().join("no/such/dir/signer.toml"))
        .unwrap_err()
        .to_string();
    assert!(m.starts_with("cannot write"), "{m}");
}
