//! `docker save` archives built from the example image: opened, selected, and their SBOM layer
//! restored to the lifecycle's tree.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use cnb_fixtures::tar::{write as write_tar, Entry};
use cnb_referrers::layout::{OciLayout, MAX_CONFIG_SIZE};
use cnb_sbom_discovery::BuildpackIndex;
use cnb_sbom_restore::archive::{ArchiveLimits, DockerArchive, LayerRef};
use cnb_sbom_restore::layer::{
    lifecycle_metadata, LayerLimits, DOCKER_LAYER_TAR, DOCKER_LAYER_TAR_GZIP,
};
use cnb_sbom_restore::{write_tree, Existing};
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The example image's config and uncompressed layers, and its buildpack index.
struct Example {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    sbom_diff_id: String,
    index: BuildpackIndex,
}

fn example() -> Example {
    let layout = OciLayout::open(&workspace().join("examples/node-express/image")).unwrap();
    let image = layout
        .read_image(&layout.resolve_image(None).unwrap())
        .unwrap();
    let config = layout
        .read_blob(&image.manifest.config.digest, MAX_CONFIG_SIZE)
        .unwrap();
    let layers = image
        .manifest
        .layers
        .iter()
        .map(|l| fs::read(layout.blob_path(&l.digest)).unwrap())
        .collect();
    let metadata = lifecycle_metadata(&image.config).unwrap();
    Example {
        config,
        layers,
        diff_ids: image.config.diff_ids.clone(),
        sbom_diff_id: metadata.sbom.clone().unwrap().sha,
        index: BuildpackIndex::from_metadata(&metadata).unwrap(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// `<hex>.json` and `<diffid-hex>/layer.tar`, as Docker before 25 writes.
    Legacy,
    /// `blobs/sha256/<hex>` and an OCI layout beside `manifest.json`, as Docker 25+ writes.
    Oci,
}

/// One image to save: config, layers, tags.
type Saved<'a> = (&'a [u8], &'a [Vec<u8>], &'a [&'a str]);

/// A `docker save` archive of `images`.
fn docker_save(images: &[Saved<'_>], style: Style) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut manifest = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    if style == Style::Oci {
        entries.push(Entry::Dir("blobs".into()));
        entries.push(Entry::Dir("blobs/sha256".into()));
    }
    for (config, layers, tags) in images {
        let config_name = match style {
            Style::Legacy => format!("{}.json", hex_of(config)),
            Style::Oci => format!("blobs/sha256/{}", hex_of(config)),
        };
        entries.push(Entry::File(config_name.clone(), config.to_vec()));
        let mut names = Vec::new();
        for layer in layers.iter() {
            let hex = hex_of(layer);
            let name = match style {
                Style::Legacy => format!("{hex}/layer.tar"),
                Style::Oci => format!("blobs/sha256/{hex}"),
            };
            if seen.insert(name.clone()) {
                if style == Style::Legacy {
                    entries.push(Entry::Dir(hex.clone()));
                    entries.push(Entry::File(format!("{hex}/VERSION"), b"1.0".to_vec()));
                }
                entries.push(Entry::File(name.clone(), layer.clone()));
            }
            names.push(name);
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": names}));
    }
    entries.push(Entry::File(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    if style == Style::Oci {
        entries.push(Entry::File(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        entries.push(Entry::File(
            "index.json".into(),
            br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
        ));
    }
    write_tar(&entries, 0, 0).unwrap()
}

fn save(dir: &Path, name: &str, tar: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, tar).unwrap();
    path
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                walk(&path, root, out);
            } else {
                assert!(meta.is_file(), "{rel}");
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_restores_the_example_tree(archive: &DockerArchive, selector: Option<&str>, ex: &Example) {
    let image = archive.select(selector).unwrap();
    let layer = archive
        .sbom_layer(&image, &ex.index, &LayerLimits::default())
        .unwrap();
    assert_eq!(layer.files.len(), 8);
    assert!(layer.skipped.is_empty(), "{:?}", layer.skipped);
    let out = tempfile::tempdir().unwrap();
    write_tree(&out.path().join("layers"), &layer.files, Existing::Refuse).unwrap();
    assert!(
        tree(&out.path().join("layers/sbom/launch"))
            == tree(&workspace().join("examples/node-express/layers/sbom/launch")),
        "the restored tree differs from the lifecycle's"
    );
}

#[test]
fn a_saved_example_image_restores_the_lifecycles_tree_in_both_archive_styles() {
    let ex = example();
    let dir = tempfile::tempdir().unwrap();
    for (style, name) in [(Style::Legacy, "legacy.tar"), (Style::Oci, "oci.tar")] {
        let path = save(
            dir.path(),
            name,
            &docker_save(&[(&ex.config, &ex.layers, &["app:latest"])], style),
        );
        let archive = DockerArchive::open(&path, &ArchiveLimits::default()).unwrap();
        let id = format!("sha256:{}", hex_of(&ex.config));
        assert_eq!(archive.images().len(), 1);
        assert_eq!(archive.images()[0].id, id);
        assert_eq!(archive.images()[0].repo_tags, ["app:latest"]);
        for selector in [
            None,
            Some("app"),
            Some("app:latest"),
            Some("docker.io/library/app"),
        ] {
            assert_restores_the_example_tree(&archive, selector, &ex);
        }
        assert_restores_the_example_tree(&archive, Some(&id), &ex);
        assert_restores_the_example_tree(&archive, Some(&id[7..19]), &ex);

        let image = archive.select(None).unwrap();
        assert_eq!(image.layers_mount().unwrap(), "/layers");
        assert_eq!(image.config.diff_ids, ex.diff_ids);
        // Every layer streams back to its diffID, by diffID or by index.
        for (i, diff_id) in ex.diff_ids.iter().enumerate() {
            for which in [LayerRef::DiffId(diff_id), LayerRef::Index(i)] {
                let mut layer = archive.layer_reader(&image, which).unwrap();
                assert_eq!(layer.media_type, DOCKER_LAYER_TAR);
                assert_eq!(&layer.diff_id, diff_id);
                let mut bytes = Vec::new();
                layer.reader.read_to_end(&mut bytes).unwrap();
                assert_eq!(bytes.len() as u64, layer.size);
                assert_eq!(format!("sha256:{}", hex_of(&bytes)), *diff_id);
            }
        }
        let err = archive
            .layer_reader(&image, LayerRef::Index(99))
            .unwrap_err();
        assert!(err.to_string().contains("no layer 99"), "{err}");
    }
}

#[test]
fn a_gzip_layer_in_an_archive_is_recognised_and_checked_against_the_uncompressed_diff_id() {
    let ex = example();
    let position = ex
        .diff_ids
        .iter()
        .position(|d| *d == ex.sbom_diff_id)
        .unwrap();
    let mut layers = ex.layers.clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&layers[position]).unwrap();
    layers[position] = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = save(
        dir.path(),
        "gz.tar",
        &docker_save(&[(&ex.config, &layers, &["app:latest"])], Style::Oci),
    );
    let archive = DockerArchive::open(&path, &ArchiveLimits::default()).unwrap();
    let image = archive.select(None).unwrap();
    let layer = archive
        .layer_reader(&image, LayerRef::DiffId(&ex.sbom_diff_id))
        .unwrap();
    assert_eq!(layer.media_type, DOCKER_LAYER_TAR_GZIP);
    assert_restores_the_example_tree(&archive, None, &ex);
}

/// A raw ustar header with a valid checksum.
fn header(name: &str, flag: u8, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Renames the entry `name` (its first four characters become `copy`), keeping its header valid.
fn rename_entry(tar: &mut [u8], name: &str) -> String {
    let at = tar
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap();
    assert_eq!(at % 512, 0, "the name starts a header");
    tar[at..at + 4].copy_from_slice(b"copy");
    let block = &mut tar[at..at + 512];
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    format!("copy{}", &name[4..])
}

/// Appends a symlink entry before the end-of-archive marker.
fn append_symlink(tar: &mut Vec<u8>, name: &str, target: &str) {
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(&header(name, b'2', 0, target));
    tar.extend_from_slice(&[0u8; 1024]);
}

#[test]
fn a_layer_saved_as_a_link_to_another_is_followed_inside_the_archive() {
    // Docker before 25 writes a layer it already saved as a symlink `../<id>/layer.tar`.
    let ex = example();
    let original = format!("{}/layer.tar", &ex.sbom_diff_id["sha256:".len()..]);
    let dir = tempfile::tempdir().unwrap();

    let mut tar = docker_save(&[(&ex.config, &ex.layers, &["app:latest"])], Style::Legacy);
    let renamed = rename_entry(&mut tar, &original);
    append_symlink(&mut tar, &original, &format!("../{renamed}"));
    let archive = DockerArchive::open(
        &save(dir.path(), "linked.tar", &tar),
        &ArchiveLimits::default(),
    )
    .unwrap();
    assert_restores_the_example_tree(&archive, None, &ex);

    // A link that climbs out of the archive is refused.
    let mut tar = docker_save(&[(&ex.config, &ex.layers, &["app:latest"])], Style::Legacy);
    rename_entry(&mut tar, &original);
    append_symlink(&mut tar, &original, "../../../etc/passwd");
    let archive = DockerArchive::open(
        &save(dir.path(), "escaping.tar", &tar),
        &ArchiveLimits::default(),
    )
    .unwrap();
    let image = archive.select(None).unwrap();
    let err = archive
        .sbom_layer(&image, &ex.index, &LayerLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("points outside the archive"), "{err}");
}

#[test]
fn selection_and_malformed_archives() {
    let ex = example();
    let other_config = br#"{"config":{"Labels":{}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = save(
        dir.path(),
        "two.tar",
        &docker_save(
            &[
                (&ex.config, &ex.layers, &["app:latest"]),
                (other_config, &[], &["other:1"]),
            ],
            Style::Legacy,
        ),
    );
    let archive = DockerArchive::open(&path, &ArchiveLimits::default()).unwrap();
    assert_eq!(archive.images().len(), 2);
    let err = archive.select(None).unwrap_err().to_string();
    assert!(
        err.contains("2 images match") && err.contains("app:latest"),
        "{err}"
    );
    let err = archive.select(Some("nope")).unwrap_err().to_string();
    assert!(
        err.contains("no image `nope`") && err.contains("other:1"),
        "{err}"
    );
    let other = archive.select(Some("other:1")).unwrap();
    let err = archive
        .sbom_layer(&other, &ex.index, &LayerLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no io.buildpacks.lifecycle.metadata label"),
        "{err}"
    );

    // Too many entries.
    let limits = ArchiveLimits {
        max_entries: 5,
        ..ArchiveLimits::default()
    };
    let err = DockerArchive::open(&path, &limits).unwrap_err().to_string();
    assert!(err.contains("more than 5 entries"), "{err}");

    // Truncated: an entry reaches past the end of the file.
    let full = fs::read(&path).unwrap();
    let cut = save(dir.path(), "cut.tar", &full[..700]);
    let err = DockerArchive::open(&cut, &ArchiveLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "entry `{}.json` reaches past the end of the file",
            hex_of(&ex.config)
        )),
        "{err}"
    );

    // No manifest.json.
    let bare = save(
        dir.path(),
        "bare.tar",
        &write_tar(&[Entry::File("oci-layout".into(), b"{}".to_vec())], 0, 0).unwrap(),
    );
    let err = DockerArchive::open(&bare, &ArchiveLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no manifest.json"), "{err}");

    // A config that is not what its name says.
    let config_name = format!("{}.json", hex_of(&ex.config));
    let manifest = json!([{"Config": config_name, "RepoTags": ["x:1"], "Layers": []}]);
    let forged = save(
        dir.path(),
        "forged.tar",
        &write_tar(
            &[
                Entry::File(config_name.clone(), other_config.to_vec()),
                Entry::File(
                    "manifest.json".into(),
                    serde_json::to_vec(&manifest).unwrap(),
                ),
            ],
            0,
            0,
        )
        .unwrap(),
    );
    let err = DockerArchive::open(&forged, &ArchiveLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match its digest"), "{err}");

    // Not a tar at all.
    let junk = save(dir.path(), "junk.tar", &[b'x'; 2048]);
    let err = DockerArchive::open(&junk, &ArchiveLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad header checksum"), "{err}");
}

/// skopeo, or `None` (skipping locally; under `CI=true` a missing tool fails, as in `tests/`).
fn skopeo() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("skopeo"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "skopeo is missing and CI=true: run scripts/install-test-tools"
        );
        eprintln!("SKIP: skopeo is missing (run scripts/install-test-tools)");
    }
    found
}

/// An archive written by an independent writer: skopeo's `docker-archive:` transport (`<hex>.tar`
/// layers at the top level, legacy `<id>/layer.tar` symlinks to them, a `docker.io/library/` tag).
#[test]
fn an_archive_written_by_skopeo_restores_the_lifecycles_tree() {
    let Some(skopeo) = skopeo() else { return };
    let ex = example();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let source = workspace().join("examples/node-express/image");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for name in ["oci-layout", "index.json"] {
        fs::copy(source.join(name), layout.join(name)).unwrap();
    }
    for blob in fs::read_dir(source.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        fs::copy(
            blob.path(),
            layout.join("blobs/sha256").join(blob.file_name()),
        )
        .unwrap();
    }
    let archive_path = dir.path().join("app.tar");
    let status = std::process::Command::new(skopeo)
        .arg("copy")
        .arg("--quiet")
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!(
            "docker-archive:{}:app:latest",
            archive_path.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy failed");
    let archive = DockerArchive::open(&archive_path, &ArchiveLimits::default()).unwrap();
    assert_eq!(archive.images().len(), 1);
    assert_eq!(
        archive.images()[0].id,
        format!("sha256:{}", hex_of(&ex.config))
    );
    assert_restores_the_example_tree(&archive, Some("app"), &ex);
    assert_restores_the_example_tree(&archive, None, &ex);
}
