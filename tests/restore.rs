//! The consumer side: sign, then download (the verified `pack sbom download`) gives back the input
//! SBOM tree byte for byte, on an OCI layout and on both registries, for both Paketo trees; asking
//! for one buildpack downloads only its blobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{
    bin, fresh_example, fresh_spring_boot, key_pair, ok, run, sbom_files, text,
};
use serde_json::Value;

type Make = fn(&Path) -> (std::path::PathBuf, std::path::PathBuf);

fn env<'a>(command: &'a mut Command, registry: Option<&Registry>) -> &'a mut Command {
    if let Some(registry) = registry {
        command
            .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
            .env("CNB_INSECURE_REGISTRIES", &registry.host);
    }
    command.env("DOCKER_CONFIG", "/nonexistent")
}

fn sign(image: &str, layers: &Path, keys: &Path, registry: Option<&Registry>) {
    ok(run(env(
        Command::new(bin("cnb-attest"))
            .args(["sign", image, "--format", "bundle,dsse", "--layers"])
            .arg(layers)
            .arg("--key")
            .arg(keys.join("cosign.key"))
            .env("COSIGN_PASSWORD", ""),
        registry,
    )));
}

fn download(
    image: &str,
    out: &Path,
    keys: &Path,
    registry: Option<&Registry>,
    extra: &[&str],
) -> Value {
    let stdout = ok(run(env(
        Command::new(bin("cnb-attest"))
            .args(["download", image, "--json", "-o"])
            .arg(out)
            .arg("--key")
            .arg(keys.join("cosign.pub"))
            .args(extra),
        registry,
    )));
    serde_json::from_str(&stdout).unwrap()
}

/// `relative path -> bytes` of a downloaded tree (`<out>/layers/sbom/launch`).
fn downloaded(out: &Path) -> BTreeMap<String, Vec<u8>> {
    sbom_files(&out.join("layers"))
}

#[test]
fn download_gives_back_both_paketo_trees_byte_for_byte_from_a_layout() {
    for make in [fresh_example as Make, fresh_spring_boot] {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = make(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let reference = format!("oci:{}", image.display());
        sign(&reference, &layers, &tmp.path().join("k"), None);
        let out = tmp.path().join("out");
        let report = download(
            &reference,
            &out,
            &tmp.path().join("k"),
            None,
            &["--require-all-layers"],
        );
        let expected = sbom_files(&layers);
        assert_eq!(downloaded(&out), expected, "{report:#}");
        assert!(report["plan"]["failures"].as_array().unwrap().is_empty());
        // Each file came from two verified attestations (bundle and dsse) that agree.
        for sources in report["plan"]["restored"].as_object().unwrap().values() {
            assert_eq!(sources.as_array().unwrap().len(), 2, "{report:#}");
        }
    }
}

#[test]
fn download_gives_back_both_paketo_trees_byte_for_byte_from_both_registries() {
    for registry in [Kind::Distribution, Kind::Ferro]
        .into_iter()
        .filter_map(Registry::start)
    {
        for (i, make) in [fresh_example as Make, fresh_spring_boot]
            .into_iter()
            .enumerate()
        {
            let tmp = tempfile::tempdir().unwrap();
            let (layers, image) = make(tmp.path());
            key_pair(&tmp.path().join("k"), "");
            let reference = registry.push_layout(&image, &format!("restore/app{i}"), "1.0");
            sign(&reference, &layers, &tmp.path().join("k"), Some(&registry));
            let out = tmp.path().join("out");
            download(
                &reference,
                &out,
                &tmp.path().join("k"),
                Some(&registry),
                &[],
            );
            assert_eq!(
                downloaded(&out),
                sbom_files(&layers),
                "{:?} tree {i}",
                registry.kind
            );
        }
    }
}

/// The 10 spring-boot attestations are listed; asking for one buildpack fetches the manifests and
/// blobs of its attestations only (the listing's annotations select, the signed statements decide).
#[test]
fn downloading_one_buildpack_fetches_only_that_buildpacks_blobs() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_spring_boot(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = registry.push_layout(&image, "restore/spring", "1.0");
    ok(run(env(
        Command::new(bin("cnb-attest"))
            .args(["sign", &reference, "--layers"])
            .arg(&layers)
            .arg("--key")
            .arg(tmp.path().join("k/cosign.key"))
            .env("COSIGN_PASSWORD", ""),
        Some(&registry),
    )));
    let all = download(
        &reference,
        &tmp.path().join("all"),
        &tmp.path().join("k"),
        Some(&registry),
        &[],
    );
    let one = download(
        &reference,
        &tmp.path().join("one"),
        &tmp.path().join("k"),
        Some(&registry),
        &["--buildpack", "paketo-buildpacks/bellsoft-liberica"],
    );
    let files: Vec<String> = downloaded(&tmp.path().join("one")).into_keys().collect();
    assert_eq!(
        files,
        [
            "paketo-buildpacks_bellsoft-liberica/helper/sbom.syft.json",
            "paketo-buildpacks_bellsoft-liberica/jre/sbom.syft.json"
        ]
    );
    let (all, one) = (
        all["requests"].as_u64().unwrap(),
        one["requests"].as_u64().unwrap(),
    );
    eprintln!("requests: all 10 SBOMs {all}, one buildpack (2 SBOMs) {one}");
    // Reading the image (manifest + config), the referrers probe, the sha256-<hex> index and the
    // .att tag: 5; then one manifest and one blob per selected attestation.
    assert_eq!(one, 5 + 2 * 2, "one buildpack");
    assert_eq!(
        all,
        5 + 2 * 10,
        "all SBOMs (the image signature is not fetched either)"
    );
}

#[test]
fn a_signed_statement_of_another_format_is_not_restored_under_a_format_filter() {
    // --format cdx: the SPDX and Syft attestations are skipped by their annotations; nothing but
    // CycloneDX files is written, and what is written is what the signed predicate type says.
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = format!("oci:{}", image.display());
    sign(&reference, &layers, &tmp.path().join("k"), None);
    let out = tmp.path().join("out");
    let report = download(
        &reference,
        &out,
        &tmp.path().join("k"),
        None,
        &["--format", "cdx"],
    );
    let files: Vec<String> = downloaded(&out).into_keys().collect();
    assert_eq!(files.len(), 2, "{report:#}");
    assert!(
        files.iter().all(|f| f.ends_with("sbom.cdx.json")),
        "{files:?}"
    );
    let _ = text;
}

/// Without attestations, download writes nothing unless asked; with `--sbom-layer-fallback` it
/// writes the SBOM layer (what `pack sbom download` reads), from a layout or a `docker save`
/// archive (written by skopeo, an independent writer).
#[test]
fn download_falls_back_to_the_sbom_layer_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = format!("oci:{}", image.display());
    let refused = run(env(
        Command::new(bin("cnb-attest"))
            .args(["download", &reference, "-o"])
            .arg(tmp.path().join("none"))
            .arg("--key")
            .arg(tmp.path().join("k/cosign.pub")),
        None,
    ));
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(!tmp.path().join("none/layers/sbom").exists());

    let source_tree = cnb_attest_tests::snapshot(&layers.join("sbom/launch"));
    let out = tmp.path().join("layer");
    let report = download(
        &reference,
        &out,
        &tmp.path().join("k"),
        None,
        &["--sbom-layer-fallback"],
    );
    assert_eq!(report["unsigned-sbom-layer"], true);
    assert_eq!(
        cnb_attest_tests::snapshot(&out.join("layers/sbom/launch")),
        source_tree
    );

    if cnb_attest_tests::which("skopeo").is_none() {
        cnb_attest_tests::missing("skopeo");
        return;
    }
    let archive = tmp.path().join("app.tar");
    ok(run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:latest", image.display()))
        .arg(format!(
            "docker-archive:{}:registry.example/team/app:1.0",
            archive.display()
        ))));
    let out = tmp.path().join("archive");
    download(
        &format!(
            "docker-archive:{}:registry.example/team/app:1.0",
            archive.display()
        ),
        &out,
        &tmp.path().join("k"),
        None,
        &["--sbom-layer-fallback", "--format", "spdx"],
    );
    let files: Vec<String> = downloaded(&out).into_keys().collect();
    assert_eq!(
        files,
        [
            "paketo-buildpacks_node-engine/node/sbom.spdx.json",
            "paketo-buildpacks_npm-install/launch-modules/sbom.spdx.json"
        ]
    );
}

/// Two signed SBOMs for one place (the build changed, and the image was signed again): `all`
/// refuses that place, `newest` restores the newer one; a foreign attestation fails `all` but is
/// only reported under `newest`.
#[test]
fn the_policy_decides_between_several_signed_sboms_for_one_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = format!("oci:{}", image.display());
    let sign_at = |epoch: &str, key: &str| {
        ok(run(env(
            Command::new(bin("cnb-attest"))
                .args(["sign", &reference, "--layers"])
                .arg(&layers)
                .arg("--key")
                .arg(tmp.path().join(key).join("cosign.key"))
                .env("COSIGN_PASSWORD", "")
                .env("SOURCE_DATE_EPOCH", epoch),
            None,
        )));
    };
    sign_at("1700000000", "k");
    let changed = "paketo-buildpacks_node-engine/node/sbom.cdx.json";
    let path = layers.join("sbom/launch").join(changed);
    let newer = fs_replace(&path, "\"bomFormat\"", "\"version\": 2, \"bomFormat\"");
    sign_at("1800000000", "k");

    let all = run(env(
        Command::new(bin("cnb-attest"))
            .args(["download", &reference, "-o"])
            .arg(tmp.path().join("all"))
            .arg("--key")
            .arg(tmp.path().join("k/cosign.pub")),
        None,
    ));
    assert_eq!(all.status.code(), Some(3), "{}", text(&all));
    assert!(
        text(&all).contains("two different signed SBOMs for one place"),
        "{}",
        text(&all)
    );
    // Fail closed: with a conflict, nothing at all is written.
    assert!(
        !tmp.path().join("all/layers").exists(),
        "fail closed: nothing written"
    );

    let report = download(
        &reference,
        &tmp.path().join("newest"),
        &tmp.path().join("k"),
        None,
        &["--policy", "newest"],
    );
    assert_eq!(
        downloaded(&tmp.path().join("newest"))[changed],
        newer,
        "{report:#}"
    );

    // A foreign attestation (another key): fatal under `all`, a warning under `newest`.
    key_pair(&tmp.path().join("other"), "");
    sign_at("1900000000", "other");
    let report = download(
        &reference,
        &tmp.path().join("foreign"),
        &tmp.path().join("k"),
        None,
        &["--policy", "newest"],
    );
    assert!(
        !report["plan"]["warnings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(downloaded(&tmp.path().join("foreign"))[changed], newer);
}

/// Rewrites `from` to `to` in a file, returning the new bytes.
fn fs_replace(path: &Path, from: &str, to: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    let changed = text.replacen(from, to, 1);
    std::fs::write(path, &changed).unwrap();
    changed.into_bytes()
}

/// Catalogue case 56: two buildpacks whose IDs differ only in letter case (`example/Tool` and
/// `example/tool`) are distinct on Linux, and both sign; on a case-insensitive file system their
/// SBOMs would be one file, so `download` refuses both (naming them and their buildpacks) rather
/// than let one silently replace the other, and, failing closed, writes nothing.
#[test]
fn sboms_whose_paths_differ_only_in_letter_case_are_both_refused() {
    use cnb_fixtures::{AppImage, BuildpackSpec};
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    let cdx = |tag: &str| {
        format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{{"component":{{"type":"library","name":"{tag}"}}}}}}"#
        )
    };
    for (dir, tag) in [
        ("example_Tool/l", "upper"),
        ("example_tool/l", "lower"),
        ("example_other/l", "other"),
    ] {
        let d = layers.join("sbom/launch").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("sbom.cdx.json"), cdx(tag)).unwrap();
    }
    let spec = AppImage {
        tag: "latest".into(),
        buildpacks: vec![
            BuildpackSpec::new("example/Tool", "1.0.0", &["l"]),
            BuildpackSpec::new("example/tool", "1.0.0", &["l"]),
            BuildpackSpec::new("example/other", "1.0.0", &["l"]),
        ],
        launcher: false,
        sbom_tree: Some(layers.clone()),
    };
    let image = tmp.path().join("image");
    cnb_fixtures::build(&spec, &image).unwrap();
    let keys = tmp.path().join("k");
    key_pair(&keys, "");
    let reference = format!("oci:{}", image.display());
    sign(&reference, &layers, &keys, None);

    let out = tmp.path().join("out");
    let failed = run(env(
        Command::new(bin("cnb-attest"))
            .args(["download", &reference, "-o"])
            .arg(&out)
            .arg("--key")
            .arg(keys.join("cosign.pub")),
        None,
    ));
    let all = text(&failed);
    assert!(!failed.status.success(), "{all}");
    assert!(
        all.contains("example_Tool/l/sbom.cdx.json (buildpack example/Tool)")
            && all.contains("example_tool/l/sbom.cdx.json (buildpack example/tool)")
            && all.contains("letter case"),
        "both files and the reason must be named:\n{all}"
    );
    assert!(
        !out.join("layers").exists(),
        "nothing may be written:\n{all}"
    );
    // The one without a twin is fine: asked for alone, it is restored.
    let report = download(
        &reference,
        &tmp.path().join("out-other"),
        &keys,
        None,
        &["--buildpack", "example/other"],
    );
    let written = downloaded(&tmp.path().join("out-other"));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        ["example_other/l/sbom.cdx.json"],
        "{report:#}"
    );
}

/// The unsigned fallback is taken only when the image has no SBOM attestation at all, decided
/// before `--buildpack` filters: asking for a buildpack that has none, on an image whose other
/// buildpacks are signed, writes nothing rather than that buildpack's unsigned SBOM-layer files;
/// and unsigned output is never called verified.
#[test]
fn a_buildpack_filter_never_downgrades_to_the_unsigned_sbom_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = format!("oci:{}", image.display());
    // Only node-engine's SBOMs are signed.
    let signed_only = tmp.path().join("node-engine-only");
    cnb_attest_tests::copy_dir(&layers, &signed_only);
    for other in [
        "paketo-buildpacks_ca-certificates",
        "paketo-buildpacks_npm-install",
    ] {
        std::fs::remove_dir_all(signed_only.join("sbom/launch").join(other)).unwrap();
    }
    sign(&reference, &signed_only, &tmp.path().join("k"), None);

    let out = tmp.path().join("npm-install");
    let refused = run(env(
        Command::new(bin("cnb-attest"))
            .args(["download", &reference, "-o"])
            .arg(&out)
            .arg("--key")
            .arg(tmp.path().join("k/cosign.pub"))
            .args([
                "--buildpack",
                "paketo-buildpacks/npm-install",
                "--sbom-layer-fallback",
            ]),
        None,
    ));
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(
        !text(&refused).contains("has no SBOM attestations"),
        "{}",
        text(&refused)
    );
    assert!(
        !out.join("layers/sbom").exists(),
        "unsigned files were written"
    );

    // Without the filter the signed ones are restored, and nothing from the unsigned layer.
    let out = tmp.path().join("all");
    let report = download(
        &reference,
        &out,
        &tmp.path().join("k"),
        None,
        &["--sbom-layer-fallback"],
    );
    assert_eq!(report["unsigned-sbom-layer"], false, "{report:#}");
    assert_eq!(
        downloaded(&out).into_keys().collect::<Vec<_>>(),
        [
            "paketo-buildpacks_node-engine/node/sbom.cdx.json",
            "paketo-buildpacks_node-engine/node/sbom.spdx.json",
            "paketo-buildpacks_node-engine/node/sbom.syft.json"
        ]
    );

    // On an unsigned image the fallback output says it is unsigned, not verified.
    let unsigned_image = tmp.path().join("unsigned");
    let (_, fresh) = fresh_example(&unsigned_image);
    let fell_back = run(env(
        Command::new(bin("cnb-attest"))
            .args(["download"])
            .arg(format!("oci:{}", fresh.display()))
            .arg("-o")
            .arg(tmp.path().join("fallback"))
            .arg("--key")
            .arg(tmp.path().join("k/cosign.pub"))
            .arg("--sbom-layer-fallback"),
        None,
    ));
    assert!(fell_back.status.success(), "{}", text(&fell_back));
    assert!(
        text(&fell_back).contains("SBOM(s) from the unsigned SBOM layer written")
            && !text(&fell_back).contains("verified SBOM(s) written"),
        "{}",
        text(&fell_back)
    );
}

/// A valid CycloneDX document of at least `size` bytes, written in pieces (never held): one
/// component per ~100 bytes.
fn write_large_cyclonedx(path: &Path, size: u64) {
    use std::io::Write as _;
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(br#"{"bomFormat":"CycloneDX","specVersion":"1.4","version":1,"components":["#)
        .unwrap();
    let mut written = 0u64;
    let mut i = 0u64;
    while written < size {
        let component = format!(
            r#"{}{{"type":"library","name":"pkg-{i}","version":"1.0.{i}","purl":"pkg:npm/pkg-{i}@1.0.{i}"}}"#,
            if i == 0 { "" } else { "," }
        );
        out.write_all(component.as_bytes()).unwrap();
        written += component.len() as u64;
        i += 1;
    }
    out.write_all(b"]}\n").unwrap();
    out.flush().unwrap();
}

/// SHA-256 hex of a file, read in pieces.
fn sha256_of_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// An SBOM over the 64 MiB that readers once held in memory (80 MiB of CycloneDX; its bundle is
/// 107 MiB) signs, and downloads back byte for byte through temporary files: the download's peak
/// RSS stays under 96 MiB, whatever the size of the SBOM.
#[test]
fn an_80_mib_sbom_downloads_byte_for_byte_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let relative = "paketo-buildpacks_node-engine/node/sbom.cdx.json";
    let sbom = layers.join("sbom/launch").join(relative);
    write_large_cyclonedx(&sbom, 80 << 20);
    let expected = sha256_of_file(&sbom);
    let keys = tmp.path().join("keys");
    key_pair(&keys, "");
    let reference = format!("oci:{}", image.display());
    ok(run(env(
        Command::new(bin("cnb-attest"))
            .args(["sign", &reference, "--format", "bundle", "--layers"])
            .arg(&layers)
            .arg("--key")
            .arg(keys.join("cosign.key"))
            .env("COSIGN_PASSWORD", ""),
        None,
    )));
    let out = tmp.path().join("out");
    bounded(
        env(
            Command::new(bin("cnb-attest"))
                .args(["download", &reference, "--json", "-o"])
                .arg(&out)
                .arg("--key")
                .arg(keys.join("cosign.pub")),
            None,
        )
        .env("TMPDIR", tmp.path()),
        "downloading an 80 MiB SBOM",
    );
    let restored = out.join("layers/sbom/launch").join(relative);
    assert_eq!(sha256_of_file(&restored), expected);
    assert_eq!(
        std::fs::metadata(&restored).unwrap().len(),
        std::fs::metadata(&sbom).unwrap().len()
    );
    // The other SBOMs of the example come back too.
    let files: Vec<String> = downloaded_names(&out);
    assert_eq!(files.len(), 7, "{files:?}");
    // Temporary files are gone.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cnb-attest-spool-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The analyzer restores it the same way, into `<layers>/sbom/launch`.
    let analyzed = tmp.path().join("analyzed");
    std::fs::create_dir(&analyzed).unwrap();
    bounded(
        env(
            Command::new(bin("analyzer"))
                .args(["-previous-image", &reference, "-layers"])
                .arg(&analyzed)
                .arg("-key")
                .arg(keys.join("cosign.pub")),
            None,
        )
        .env("TMPDIR", tmp.path()),
        "restoring an 80 MiB SBOM with the analyzer",
    );
    let restored = analyzed.join("sbom/launch").join(relative);
    assert_eq!(sha256_of_file(&restored), expected);
}

/// Runs `command`, which must succeed, and asserts its peak RSS stays under 96 MiB while `what`.
fn bounded(command: &mut Command, what: &str) {
    use cnb_attest_tests::rss::{mib, run_measured};
    let measured = run_measured(command);
    assert!(
        measured.output.status.success(),
        "{}",
        text(&measured.output)
    );
    eprintln!(
        "{what}: peak RSS {}, CPU {:?}",
        mib(measured.peak_rss),
        measured.cpu
    );
    assert!(
        measured.peak_rss < 96 << 20,
        "peak RSS {} while {what}",
        mib(measured.peak_rss)
    );
}

/// The relative paths of a downloaded tree, without reading the files.
fn downloaded_names(out: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, names: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, base, names);
            } else {
                names.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let base = out.join("layers/sbom/launch");
    let mut names = Vec::new();
    walk(&base, &base, &mut names);
    names.sort();
    names
}

/// Through a registry: an SBOM whose attestations are over the 8 MiB read in memory (12 MiB of
/// CycloneDX, in both storage formats: one place, two blobs read through temporary files and found
/// to hold the same SBOM) downloads back byte for byte.
#[test]
fn a_12_mib_sbom_in_both_formats_downloads_byte_for_byte_from_a_registry() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let relative = "paketo-buildpacks_npm-install/launch-modules/sbom.cdx.json";
    write_large_cyclonedx(&layers.join("sbom/launch").join(relative), 12 << 20);
    let keys = tmp.path().join("k");
    key_pair(&keys, "");
    let reference = registry.push_layout(&image, "restore/large", "1.0");
    sign(&reference, &layers, &keys, Some(&registry));
    let out = tmp.path().join("out");
    let report = download(&reference, &out, &keys, Some(&registry), &[]);
    assert_eq!(downloaded(&out), sbom_files(&layers), "{report:#}");
    assert!(report["plan"]["failures"].as_array().unwrap().is_empty());
    // Each file came from two verified attestations (bundle and dsse) that agree.
    for sources in report["plan"]["restored"].as_object().unwrap().values() {
        assert_eq!(sources.as_array().unwrap().len(), 2, "{report:#}");
    }
}
