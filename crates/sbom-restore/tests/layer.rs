//! The SBOM-layer fallback: lifecycle parity on both real Paketo trees, and every refusal.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use cnb_fixtures::tar::{write as write_tar, Entry};
use cnb_referrers::layout::{Image, OciLayout, MAX_CONFIG_SIZE};
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_discovery::BuildpackIndex;
use cnb_sbom_restore::layer::{
    config_env, extract_from_layout, extract_sbom_layer, layers_mount, lifecycle_metadata,
    sbom_layer_descriptor, LayerLimits, SbomLayer, DOCKER_LAYER_TAR_GZIP, OCI_LAYER_TAR,
    OCI_LAYER_TAR_GZIP, OCI_LAYER_TAR_ZSTD, SOURCE,
};
use cnb_sbom_restore::{write_tree, Error, Existing};
use sha2::{Digest as _, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn diff_id(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Every file below `root`, by relative path; links and special files fail the test.
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
                assert!(meta.is_file(), "{rel} is not a regular file");
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// An image of a layout, its label, the buildpack index of the label, and the SBOM layer blob.
struct Subject {
    layout: OciLayout,
    image: Image,
    metadata: LifecycleMetadata,
    index: BuildpackIndex,
    media_type: String,
    diff_id: String,
    blob: Vec<u8>,
    mount: String,
}

fn subject(layout_dir: &Path) -> Subject {
    let layout = OciLayout::open(layout_dir).unwrap();
    let image = layout
        .read_image(&layout.resolve_image(None).unwrap())
        .unwrap();
    let metadata = lifecycle_metadata(&image.config).unwrap();
    let index = BuildpackIndex::from_metadata(&metadata).unwrap();
    let (descriptor, diff_id) = sbom_layer_descriptor(&image, &metadata).unwrap();
    let blob = fs::read(layout.blob_path(&descriptor.digest)).unwrap();
    let config = layout
        .read_blob(&image.manifest.config.digest, MAX_CONFIG_SIZE)
        .unwrap();
    let mount = layers_mount(&config_env(&config).unwrap());
    Subject {
        layout,
        image,
        metadata,
        index,
        media_type: descriptor.media_type,
        diff_id,
        blob,
        mount,
    }
}

fn example() -> Subject {
    subject(&workspace().join("examples/node-express/image"))
}

fn extract(
    s: &Subject,
    blob: &[u8],
    media_type: &str,
    limits: &LayerLimits,
) -> Result<SbomLayer, Error> {
    extract_sbom_layer(blob, media_type, &s.diff_id, &s.mount, &s.index, limits)
}

/// Writes what was extracted into a fresh layers directory and compares its `sbom/launch` tree
/// byte for byte with the tree the lifecycle would have extracted (the build's own tree).
fn assert_parity(layer: &SbomLayer, expected_layers: &Path) {
    let out = tempfile::tempdir().unwrap();
    let written = write_tree(out.path(), &layer.files, Existing::Refuse).unwrap();
    assert_eq!(written.files.len(), layer.files.len());
    let got = tree(&out.path().join("sbom/launch"));
    let want = tree(&expected_layers.join("sbom/launch"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(got[name] == *bytes, "{name} differs");
    }
}

#[test]
fn the_example_images_sbom_layer_restores_the_lifecycles_tree() {
    let s = example();
    assert_eq!(s.mount, "/layers");
    assert_eq!(s.media_type, OCI_LAYER_TAR);
    // The layout's SBOM layer is the one cnb_fixtures builds from the tree, the lifecycle's way.
    let layers_dir = workspace().join("examples/node-express/layers");
    let rebuilt = write_tar(
        &cnb_fixtures::sbom_layer_entries(&layers_dir).unwrap(),
        cnb_fixtures::CNB_USER,
        cnb_fixtures::CNB_USER,
    )
    .unwrap();
    assert!(
        rebuilt == s.blob,
        "the example's SBOM layer is not the fixture's"
    );
    let layer = extract(&s, &s.blob, &s.media_type, &LayerLimits::default()).unwrap();
    assert_eq!(layer.files.len(), 8, "7 SBOMs and sbom.legacy.json");
    assert!(layer.skipped.is_empty(), "{:?}", layer.skipped);
    assert!(layer.files.iter().all(|f| f.source == SOURCE));
    assert_parity(&layer, &layers_dir);

    // The same through the layout helper, streamed from the blob file.
    let streamed =
        extract_from_layout(&s.layout, &s.image, &s.index, &LayerLimits::default()).unwrap();
    assert_eq!(streamed, layer);
}

#[test]
fn the_spring_boot_images_sbom_layer_restores_the_lifecycles_tree() {
    let tree_root = workspace().join("tests/fixtures/sboms/spring-boot/layers");
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("image");
    cnb_fixtures::build(&cnb_fixtures::spring_boot(&tree_root), &layout_dir).unwrap();
    let s = subject(&layout_dir);
    let layer = extract(&s, &s.blob, &s.media_type, &LayerLimits::default()).unwrap();
    assert_eq!(layer.files.len(), 11, "10 SBOMs and sbom.legacy.json");
    assert!(layer.skipped.is_empty(), "{:?}", layer.skipped);
    assert!(layer
        .files
        .iter()
        .any(|f| f.path.relative() == Path::new("buildpacksio_lifecycle/launcher/sbom.cdx.json")));
    assert_parity(&layer, &tree_root);
}

#[test]
fn gzip_layers_give_the_same_files_and_the_diff_id_is_of_the_uncompressed_tar() {
    let s = example();
    let plain = extract(&s, &s.blob, &s.media_type, &LayerLimits::default()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&s.blob).unwrap();
    let gz = gz.finish().unwrap();
    for media_type in [OCI_LAYER_TAR_GZIP, DOCKER_LAYER_TAR_GZIP] {
        let layer = extract(&s, &gz, media_type, &LayerLimits::default()).unwrap();
        assert_eq!(layer, plain);
    }
    // Two gzip members (as `pigz` or a concatenation writes) read as one stream, as in Go.
    let (a, b) = s.blob.split_at(s.blob.len() / 2);
    let mut two = Vec::new();
    for part in [a, b] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(part).unwrap();
        two.extend(gz.finish().unwrap());
    }
    assert_eq!(
        extract(&s, &two, OCI_LAYER_TAR_GZIP, &LayerLimits::default()).unwrap(),
        plain
    );
}

#[test]
fn a_layer_that_is_not_the_labels_diff_id_is_refused_and_nothing_returned() {
    let s = example();
    let mut blob = s.blob.clone();
    let at = blob
        .windows(11)
        .position(|w| w == b"\"bomFormat\"")
        .expect("a CycloneDX file in the layer");
    blob[at + 1] ^= 0x20;
    let err = extract(&s, &blob, &s.media_type, &LayerLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not the expected diffID") && err.contains(&s.diff_id),
        "{err}"
    );
    // Padding after the end-of-archive marker is part of the diffID too.
    let mut padded = s.blob.clone();
    padded.extend_from_slice(&[0u8; 512]);
    let err = extract(&s, &padded, &s.media_type, &LayerLimits::default()).unwrap_err();
    assert!(
        err.to_string().contains("is not the expected diffID"),
        "{err}"
    );
}

/// A raw ustar header with a valid checksum (base-256 size from 8 GiB on).
fn header(name: &str, flag: u8, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    if size < 8u64.pow(11) {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        // GNU base-256, for sizes of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// The lifecycle's parent directories, then `extra` entries given as raw blocks.
fn crafted(extra: &[[u8; 512]]) -> Vec<u8> {
    let mut tar = write_tar(
        &[
            Entry::Dir("/layers".into()),
            Entry::Dir("/layers/sbom".into()),
            Entry::Dir("/layers/sbom/launch".into()),
            Entry::File(
                "/layers/sbom/launch/sbom.legacy.json".into(),
                b"null".to_vec(),
            ),
        ],
        1000,
        1000,
    )
    .unwrap();
    tar.truncate(tar.len() - 1024);
    for block in extra {
        tar.extend_from_slice(block);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn extract_crafted(tar: &[u8], index: &BuildpackIndex) -> Result<SbomLayer, Error> {
    extract_sbom_layer(
        tar,
        OCI_LAYER_TAR,
        &diff_id(tar),
        "/layers",
        index,
        &LayerLimits::default(),
    )
}

#[test]
fn links_and_devices_under_sbom_launch_are_refused_naming_the_entry() {
    let index = example().index;
    let name = "/layers/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json";
    for (flag, kind) in [
        (b'2', "symbolic link"),
        (b'1', "hard link"),
        (b'3', "character device"),
        (b'6', "FIFO"),
    ] {
        let tar = crafted(&[header(name, flag, 0, "/etc/shadow")]);
        let err = extract_crafted(&tar, &index).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(kind), "{err}");
    }
    // A link in place of a parent directory would redirect the whole tree.
    let tar = crafted(&[header("/layers/sbom/launch", b'2', 0, "/etc")]);
    let err = extract_crafted(&tar, &index).unwrap_err().to_string();
    assert!(
        err.contains("`/layers/sbom/launch`") && err.contains("symbolic link"),
        "{err}"
    );
    // Links elsewhere in a layer are none of our business.
    let tar = crafted(&[header("/layers/elsewhere", b'2', 0, "/etc")]);
    assert_eq!(extract_crafted(&tar, &index).unwrap().files.len(), 1);
}

#[test]
fn dot_dot_and_unclean_names_are_refused_naming_the_entry() {
    let index = example().index;
    for name in [
        "/layers/sbom/launch/../../../etc/cron.d/evil",
        "/layers/sbom/launch/paketo-buildpacks_node-engine/../x/sbom.cdx.json",
        "//etc/passwd",
        "/layers/sbom/./launch/sbom.legacy.json",
    ] {
        let tar = crafted(&[header(name, b'0', 0, "")]);
        let err = extract_crafted(&tar, &index).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn a_file_over_max_file_is_refused_before_it_is_read() {
    let s = example();
    let limits = LayerLimits {
        max_file: 100,
        ..LayerLimits::default()
    };
    let err = extract(&s, &s.blob, &s.media_type, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/layers/sbom/launch/paketo-buildpacks_ca-certificates/helper/sbom.syft.json")
            && err.contains("over the 100-byte limit"),
        "{err}"
    );
    // A 10 GiB claim is refused from the header alone.
    let name = "/layers/sbom/launch/sbom.legacy.json";
    let mut tar = Vec::new();
    tar.extend_from_slice(&header(name, b'0', 10 << 30, ""));
    tar.extend_from_slice(&[b'x'; 4096]);
    let err = extract_crafted(&tar, &s.index).unwrap_err().to_string();
    assert!(
        err.contains(name) && err.contains("over the 268435456-byte limit"),
        "{err}"
    );
}

/// A gzip stream whose tar holds one file outside `sbom/launch` claiming `size` bytes of zeros,
/// built from independent deflate blocks, so `size` can be far beyond what is ever materialised.
fn gzip_bomb(size: u64) -> Vec<u8> {
    fn deflate_flushed(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.flush().unwrap(); // a sync flush: byte-aligned and not final
        encoder.get_ref().clone()
    }
    const CHUNK: usize = 1 << 20;
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend(deflate_flushed(&header("/layers/padding", b'0', size, "")));
    let zeros = deflate_flushed(&vec![0u8; CHUNK]);
    for _ in 0..size.div_ceil(CHUNK as u64) {
        gz.extend_from_slice(&zeros);
    }
    gz.extend_from_slice(&[0x03, 0x00]); // the final (empty) block; CRC and size never reached
    gz.extend_from_slice(&[0u8; 8]);
    gz
}

#[test]
fn a_gzip_bomb_stops_at_the_uncompressed_cap_naming_the_entry() {
    let s = example();
    let bomb = gzip_bomb(10 << 30);
    assert!(bomb.len() < 16 << 20, "{} bytes compressed", bomb.len());
    // The default caps: 1 GiB of the 10 GiB is inflated, through a fixed buffer, and then it stops.
    let err = extract(&s, &bomb, OCI_LAYER_TAR_GZIP, &LayerLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`/layers/padding`")
            && err.contains("uncompressed SBOM layer exceeds the 1073741824-byte limit"),
        "{err}"
    );
    // The compressed cap is enforced as well.
    let limits = LayerLimits {
        max_compressed: 1 << 20,
        ..LayerLimits::default()
    };
    let err = extract(&s, &bomb, OCI_LAYER_TAR_GZIP, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("compressed SBOM layer exceeds the 1048576-byte limit"),
        "{err}"
    );
}

#[test]
fn zstd_and_unknown_media_types_are_refused() {
    let s = example();
    let err = extract(&s, &s.blob, OCI_LAYER_TAR_ZSTD, &LayerLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("zstd") && err.contains("not supported"),
        "{err}"
    );
    let err = extract(
        &s,
        &s.blob,
        "application/octet-stream",
        &LayerLimits::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unsupported media type `application/octet-stream`"),
        "{err}"
    );
}

#[test]
fn a_label_without_sbom_or_with_a_diff_id_not_in_the_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tree_root = workspace().join("examples/node-express/layers");
    let mut spec = cnb_fixtures::node_express(&tree_root);
    spec.sbom_tree = None;
    cnb_fixtures::build(&spec, &dir.path().join("image")).unwrap();
    let layout = OciLayout::open(&dir.path().join("image")).unwrap();
    let image = layout
        .read_image(&layout.resolve_image(None).unwrap())
        .unwrap();
    let metadata = lifecycle_metadata(&image.config).unwrap();
    let err = sbom_layer_descriptor(&image, &metadata)
        .unwrap_err()
        .to_string();
    assert!(err.contains("records no `sbom.sha`"), "{err}");
    let err = extract_from_layout(
        &layout,
        &image,
        &BuildpackIndex::new(),
        &LayerLimits::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("records no `sbom.sha`"), "{err}");

    let s = example();
    let mut metadata = s.metadata.clone();
    let other = format!("sha256:{}", "0".repeat(64));
    metadata.sbom.as_mut().unwrap().sha = other.clone();
    let err = sbom_layer_descriptor(&s.image, &metadata)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&other) && err.contains("not in the image's rootfs.diff_ids"),
        "{err}"
    );
    metadata.sbom.as_mut().unwrap().sha = "sha256:../../etc".into();
    let err = sbom_layer_descriptor(&s.image, &metadata).unwrap_err();
    assert!(err.to_string().contains("is not a sha256 digest"), "{err}");
}

#[test]
fn an_unknown_escaped_buildpack_directory_is_refused_naming_the_entry() {
    let s = example();
    let mut index = BuildpackIndex::new();
    for id in s.index.ids() {
        if id.as_str() != "paketo-buildpacks/node-engine" {
            index.insert(id.clone());
        }
    }
    let err = extract_sbom_layer(
        &s.blob[..],
        &s.media_type,
        &s.diff_id,
        &s.mount,
        &index,
        &LayerLimits::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/layers/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json")
            && err.contains("unknown buildpack directory `paketo-buildpacks_node-engine`"),
        "{err}"
    );
}

#[test]
fn other_names_are_skipped_with_a_reason_and_the_mount_matters() {
    let index = example().index;
    let tar = crafted(&[
        header("/layers/sbom/launch/README", b'0', 0, ""),
        header("/layers/sbom/launch/a/b/c/sbom.cdx.json", b'0', 0, ""),
        header("/layers/sbom/build/x/sbom.cdx.json", b'0', 0, ""),
        header(
            "/layers/sbom/launch/paketo-buildpacks_node-engine/node",
            b'5',
            0,
            "",
        ),
    ]);
    let layer = extract_crafted(&tar, &index).unwrap();
    assert_eq!(layer.files.len(), 1, "sbom.legacy.json");
    let skipped: Vec<&str> = layer.skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "/layers/sbom/launch/README",
            "/layers/sbom/launch/a/b/c/sbom.cdx.json",
            "/layers/sbom/build/x/sbom.cdx.json"
        ]
    );
    assert!(
        layer.skipped[2].1.contains("outside /layers/sbom/launch/"),
        "{:?}",
        layer.skipped
    );

    // The same layer read for a build whose layers directory was elsewhere restores nothing.
    let s = example();
    let layer = extract_sbom_layer(
        &s.blob[..],
        &s.media_type,
        &s.diff_id,
        "/workspace/layers",
        &s.index,
        &LayerLimits::default(),
    )
    .unwrap();
    assert!(layer.files.is_empty());
    assert_eq!(layer.skipped.len(), 8);

    // A layer written under another CNB_LAYERS_DIR is read under that mount.
    let tar = write_tar(
        &[
            Entry::Dir("/cnb/layers/sbom/launch".into()),
            Entry::File(
                "/cnb/layers/sbom/launch/sbom.legacy.json".into(),
                b"null".to_vec(),
            ),
        ],
        0,
        0,
    )
    .unwrap();
    let layer = extract_sbom_layer(
        &tar[..],
        OCI_LAYER_TAR,
        &diff_id(&tar),
        "/cnb/layers/",
        &index,
        &LayerLimits::default(),
    )
    .unwrap();
    assert_eq!(layer.files.len(), 1);
}

#[test]
fn duplicates_and_too_many_entries_are_refused() {
    let index = example().index;
    let tar = crafted(&[header("/layers/sbom/launch/sbom.legacy.json", b'0', 0, "")]);
    let err = extract_crafted(&tar, &index).unwrap_err().to_string();
    assert!(
        err.contains("/layers/sbom/launch/sbom.legacy.json") && err.contains("twice"),
        "{err}"
    );

    let s = example();
    let limits = LayerLimits {
        max_entries: 3,
        ..LayerLimits::default()
    };
    let err = extract(&s, &s.blob, &s.media_type, &limits)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 3 entries"), "{err}");
}
