//! Discovery over the real fixture trees and every refusal.

use std::fs;
use std::path::{Path, PathBuf};

use cnb_sbom_discovery::platform::GroupToml;
use cnb_sbom_discovery::{
    discover, BuildpackId, BuildpackIndex, Discovery, DiscoveryOptions, Error, SbomFormat,
    SbomKind, Scope,
};

const CDX: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.4","components":[]}"#;
const SPDX: &str = r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#;
const SYFT: &str = r#"{"artifacts":[],"descriptor":{"name":"syft"},"schema":{"version":"1"}}"#;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_express() -> PathBuf {
    manifest_dir().join("../../examples/node-express/layers")
}

fn spring_boot() -> PathBuf {
    manifest_dir().join("../../tests/fixtures/sboms/spring-boot/layers")
}

fn index(ids: &[&str]) -> BuildpackIndex {
    BuildpackIndex::from_ids(ids.iter().map(|id| BuildpackId::new(*id).unwrap()))
}

fn node_index() -> BuildpackIndex {
    let group: GroupToml = r#"
[[group]]
  id = "paketo-buildpacks/ca-certificates"
  version = "3.6.0"
  api = "0.7"
  homepage = "https://github.com/paketo-buildpacks/ca-certificates"
  optional = true

[[group]]
  id = "paketo-buildpacks/node-engine"
  version = "1.3.0"
  api = "0.7"

[[group]]
  id = "paketo-buildpacks/npm-install"
  version = "1.1.0"
  api = "0.7"
"#
    .parse()
    .unwrap();
    BuildpackIndex::from_group(&group)
}

fn spring_index() -> BuildpackIndex {
    index(&[
        "paketo-buildpacks/ca-certificates",
        "paketo-buildpacks/bellsoft-liberica",
        "paketo-buildpacks/executable-jar",
        "paketo-buildpacks/spring-boot",
    ])
}

fn summary(d: &Discovery) -> Vec<(String, String, String)> {
    d.files
        .iter()
        .map(|f| {
            (
                f.buildpack.to_string(),
                f.layer().map_or("-".to_string(), |l| l.to_string()),
                f.format.extension().to_string(),
            )
        })
        .collect()
}

/// A small, writable tree: one buildpack with one layer SBOM and one image SBOM.
fn small_tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    let layer = layers.join("sbom/launch/acme_bp/lay");
    fs::create_dir_all(&layer).unwrap();
    fs::write(layer.join("sbom.cdx.json"), CDX).unwrap();
    fs::write(layers.join("sbom/launch/acme_bp/sbom.spdx.json"), SPDX).unwrap();
    fs::write(layers.join("sbom/launch/sbom.legacy.json"), "null").unwrap();
    let layers = layers.canonicalize().unwrap();
    (tmp, layers)
}

fn small_index() -> BuildpackIndex {
    index(&["acme/bp"])
}

fn refuse(layers: &Path, options: &DiscoveryOptions) -> (Error, String) {
    let err = discover(layers, &small_index(), options).expect_err("discovery must refuse");
    let msg = err.to_string();
    (err, msg)
}

#[test]
fn node_express_gives_seven_files() {
    let d = discover(&node_express(), &node_index(), &DiscoveryOptions::default()).unwrap();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary(&d),
        vec![
            s("paketo-buildpacks/ca-certificates", "helper", "syft.json"),
            s("paketo-buildpacks/node-engine", "node", "cdx.json"),
            s("paketo-buildpacks/node-engine", "node", "spdx.json"),
            s("paketo-buildpacks/node-engine", "node", "syft.json"),
            s(
                "paketo-buildpacks/npm-install",
                "launch-modules",
                "cdx.json"
            ),
            s(
                "paketo-buildpacks/npm-install",
                "launch-modules",
                "spdx.json"
            ),
            s(
                "paketo-buildpacks/npm-install",
                "launch-modules",
                "syft.json"
            ),
        ]
    );
    let root = node_express().canonicalize().unwrap();
    for f in &d.files {
        assert_eq!(f.kind, SbomKind::Launch);
        assert!(f.path.is_absolute());
        assert_eq!(f.path, root.join(&f.relative));
        assert!(f.relative.starts_with("sbom/launch"));
        let bytes = fs::read(&f.path).unwrap();
        assert_eq!(f.size, bytes.len() as u64);
        assert_eq!(f.sha256.len(), 64);
        assert!(f
            .sha256
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}

#[test]
fn legacy_bom_is_skipped_with_a_reason() {
    let d = discover(&node_express(), &node_index(), &DiscoveryOptions::default()).unwrap();
    assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    let (path, reason) = &d.skipped[0];
    assert!(path.ends_with("sbom/launch/sbom.legacy.json"));
    assert!(reason.contains("legacy"), "{reason}");
}

#[test]
fn spring_boot_gives_ten_files_including_the_launcher() {
    let d = discover(
        &spring_boot(),
        &spring_index(),
        &DiscoveryOptions::default(),
    )
    .unwrap();
    assert_eq!(d.files.len(), 10, "{:#?}", summary(&d));
    let launcher: Vec<_> = d
        .files
        .iter()
        .filter(|f| f.buildpack.is_lifecycle())
        .collect();
    assert_eq!(launcher.len(), 3);
    for f in &launcher {
        assert_eq!(f.layer().unwrap().as_str(), "launcher");
    }
    let formats: Vec<_> = launcher.iter().map(|f| f.format).collect();
    assert_eq!(
        formats,
        vec![SbomFormat::CycloneDx, SbomFormat::Spdx, SbomFormat::Syft]
    );
    // Image-scoped SBOMs of executable-jar (buildpack level).
    let jar: Vec<_> = d
        .files
        .iter()
        .filter(|f| f.buildpack.as_str() == "paketo-buildpacks/executable-jar")
        .collect();
    assert_eq!(jar.len(), 2);
    assert!(jar.iter().all(|f| f.scope == Scope::Image));
    // Sorted: buildpack, then image before layers, then layer name, then format.
    let keys: Vec<_> = d
        .files
        .iter()
        .map(|f| (f.buildpack.clone(), f.scope.clone(), f.format))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(d
        .skipped
        .iter()
        .any(|(p, _)| p.ends_with("sbom.legacy.json")));
}

#[test]
fn discovery_is_deterministic() {
    let a = discover(
        &spring_boot(),
        &spring_index(),
        &DiscoveryOptions::default(),
    )
    .unwrap();
    let b = discover(
        &spring_boot(),
        &spring_index(),
        &DiscoveryOptions::default(),
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn missing_sbom_dir_gives_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = discover(tmp.path(), &small_index(), &DiscoveryOptions::default()).unwrap();
    assert!(d.files.is_empty() && d.skipped.is_empty());
}

#[test]
fn layers_dir_may_be_reached_through_a_link() {
    let (tmp, layers) = small_tree();
    let link = tmp.path().join("layers-link");
    std::os::unix::fs::symlink(&layers, &link).unwrap();
    let d = discover(&link, &small_index(), &DiscoveryOptions::default()).unwrap();
    assert_eq!(d.files.len(), 2);
    assert!(d.files.iter().all(|f| f.path.starts_with(&layers)));
}

#[test]
fn build_and_cache_only_when_asked() {
    let (_tmp, layers) = small_tree();
    let build = layers.join("sbom/build/acme_bp");
    fs::create_dir_all(&build).unwrap();
    fs::write(build.join("sbom.syft.json"), SYFT).unwrap();
    let cache = layers.join("sbom/cache/acme_bp/lay");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("sbom.cdx.json"), CDX).unwrap();

    let d = discover(&layers, &small_index(), &DiscoveryOptions::default()).unwrap();
    assert_eq!(d.files.len(), 2);
    assert!(d
        .skipped
        .iter()
        .any(|(p, r)| p.ends_with("sbom/build") && r.contains("not asked")));
    assert!(d
        .skipped
        .iter()
        .any(|(p, r)| p.ends_with("sbom/cache") && r.contains("not asked")));

    let options = DiscoveryOptions {
        include_build: true,
        include_cache: true,
        ..DiscoveryOptions::default()
    };
    let d = discover(&layers, &small_index(), &options).unwrap();
    let kinds: Vec<_> = d.files.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            SbomKind::Launch,
            SbomKind::Launch,
            SbomKind::Build,
            SbomKind::Cache
        ]
    );
    assert_eq!(d.files[2].scope, Scope::Image);
    assert_eq!(d.files[2].format, SbomFormat::Syft);
}

#[test]
fn unrelated_files_are_skipped() {
    let (_tmp, layers) = small_tree();
    fs::write(layers.join("sbom/launch/acme_bp/lay/README"), "hi").unwrap();
    fs::write(
        layers.join("sbom/launch/acme_bp/lay/sbom.legacy.json"),
        "null",
    )
    .unwrap();
    let d = discover(&layers, &small_index(), &DiscoveryOptions::default()).unwrap();
    assert_eq!(d.files.len(), 2);
    assert_eq!(d.skipped.len(), 3, "{:?}", d.skipped);
    assert!(d
        .skipped
        .iter()
        .any(|(p, r)| p.ends_with("README") && r == "not an SBOM file"));
}

#[test]
fn refuses_a_symlinked_file_pointing_outside() {
    let (tmp, layers) = small_tree();
    let outside = tmp.path().join("outside.json");
    fs::write(&outside, CDX).unwrap();
    let link = layers.join("sbom/launch/acme_bp/lay/sbom.syft.json");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(matches!(err, Error::Symlink { .. }));
    assert!(msg.contains(&link.display().to_string()), "{msg}");
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn refuses_a_symlinked_directory() {
    let (tmp, layers) = small_tree();
    let outside = tmp.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("sbom.cdx.json"), CDX).unwrap();
    let link = layers.join("sbom/launch/acme_bp/other");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let (_, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(msg.contains(&link.display().to_string()), "{msg}");
    assert!(msg.contains("symbolic link"), "{msg}");

    // A link at the `launch` level is refused as well.
    let (tmp2, layers2) = small_tree();
    let real = layers2.join("sbom/launch");
    let moved = tmp2.path().join("launch-real");
    fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &real).unwrap();
    let (_, msg) = refuse(&layers2, &DiscoveryOptions::default());
    assert!(
        msg.contains(&real.display().to_string()) && msg.contains("symbolic link"),
        "{msg}"
    );
}

#[test]
fn refuses_a_socket() {
    let (_tmp, layers) = small_tree();
    let sock = layers.join("sbom/launch/acme_bp/lay/sbom.syft.json");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(
        matches!(err, Error::NotRegular { kind: "socket", .. }),
        "{msg}"
    );
    assert!(msg.contains(&sock.display().to_string()), "{msg}");
    assert!(msg.contains("socket, not a regular file"), "{msg}");
}

#[test]
fn refuses_a_file_over_the_cap() {
    let (_tmp, layers) = small_tree();
    let options = DiscoveryOptions {
        max_file_size: 16,
        ..DiscoveryOptions::default()
    };
    let (err, msg) = refuse(&layers, &options);
    assert!(matches!(err, Error::TooLarge { cap: 16, .. }));
    assert!(msg.contains("sbom/launch/acme_bp/"), "{msg}");
    assert!(msg.contains("larger than the limit of 16 bytes"), "{msg}");
}

/// Discovery's refusal of `layers` as invalid JSON at line 3, column 18; its message.
fn refused_at_line_3_column_18(layers: &Path) -> String {
    let (err, msg) = refuse(layers, &DiscoveryOptions::default());
    assert!(
        matches!(
            err,
            Error::InvalidJson {
                line: 3,
                column: 18,
                ..
            }
        ),
        "{msg}"
    );
    msg
}

#[test]
fn refuses_invalid_json_with_line_and_column() {
    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/lay/sbom.cdx.json");
    fs::write(
        &path,
        "{\n  \"bomFormat\": \"CycloneDX\",\n  \"components\": [,]\n}",
    )
    .unwrap();
    let msg = refused_at_line_3_column_18(&layers);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("invalid JSON at line 3, column 18"), "{msg}");
}

#[test]
fn refuses_cyclonedx_content_in_an_spdx_file() {
    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/sbom.spdx.json");
    fs::write(&path, CDX).unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(matches!(
        err,
        Error::ContentMismatch {
            claimed: SbomFormat::Spdx,
            ..
        }
    ));
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("`spdx.json` claims SPDX but the content looks like CycloneDX"),
        "{msg}"
    );
}

#[test]
fn refuses_an_unknown_buildpack_directory() {
    let (_tmp, layers) = small_tree();
    fs::create_dir_all(layers.join("sbom/launch/someone_else")).unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(matches!(err, Error::UnknownBuildpackDir { .. }));
    assert_eq!(
        msg,
        format!(
            "unknown buildpack directory `someone_else` in {}: not in group.toml or the image label",
            layers.join("sbom/launch").display()
        )
    );
}

#[test]
fn refuses_an_ambiguous_buildpack_directory() {
    let (_tmp, layers) = small_tree();
    let idx = index(&["acme/bp", "acme_bp"]);
    let msg = discover(&layers, &idx, &DiscoveryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("ambiguous buildpack directory `acme_bp`"),
        "{msg}"
    );
}

#[test]
fn refuses_an_unsupported_sbom_extension() {
    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/lay/sbom.xml");
    fs::write(&path, "<bom/>").unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(matches!(err, Error::UnsupportedFormat { .. }));
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("unsupported SBOM file format `xml`"), "{msg}");
}

#[test]
fn refuses_deeper_nesting() {
    let (_tmp, layers) = small_tree();
    let deep = layers.join("sbom/launch/acme_bp/lay/deeper");
    fs::create_dir_all(&deep).unwrap();
    let (_, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(msg.contains(&deep.display().to_string()), "{msg}");
    assert!(msg.contains("unexpected nesting"), "{msg}");
}

#[test]
fn refuses_a_file_where_the_sbom_tree_should_be() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("sbom")).unwrap();
    fs::write(tmp.path().join("sbom/launch"), "x").unwrap();
    let msg = discover(tmp.path(), &small_index(), &DiscoveryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("sbom/launch") && msg.contains("expected a directory"),
        "{msg}"
    );
}

/// Files over 1 MiB are checked in a stream, never read whole: the same refusals, with the same
/// line and column, and the same digest for a good file.
#[test]
fn large_files_are_checked_in_a_stream_with_the_same_answers() {
    let pad = "x".repeat(1_200_000);
    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/lay/sbom.cdx.json");
    fs::write(
        &path,
        format!("{{\"pad\":\"{pad}\",\n  \"bomFormat\": \"CycloneDX\",\n  \"components\": [,]\n}}"),
    )
    .unwrap();
    refused_at_line_3_column_18(&layers);

    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/sbom.spdx.json");
    fs::write(&path, format!("{{\"pad\":\"{pad}\",{}", &CDX[1..])).unwrap();
    let (err, msg) = refuse(&layers, &DiscoveryOptions::default());
    assert!(
        matches!(
            err,
            Error::ContentMismatch {
                claimed: SbomFormat::Spdx,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("`spdx.json` claims SPDX but the content looks like CycloneDX"),
        "{msg}"
    );

    let (_tmp, layers) = small_tree();
    let path = layers.join("sbom/launch/acme_bp/lay/sbom.cdx.json");
    let good = format!("{{\"pad\":\"{pad}\",{}", &CDX[1..]);
    fs::write(&path, &good).unwrap();
    let found = discover(&layers, &small_index(), &DiscoveryOptions::default()).unwrap();
    let file = found.files.iter().find(|f| f.path == path).unwrap();
    use sha2::Digest as _;
    assert_eq!(
        file.sha256,
        hex::encode(sha2::Sha256::digest(good.as_bytes()))
    );
    assert_eq!(file.size, good.len() as u64);
}
