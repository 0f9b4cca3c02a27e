//! The fallback for images without attestations: the SBOM files of the image's SBOM layer.
//!
//! The lifecycle's exporter packs `<layers>/sbom/launch/` into one layer with absolute paths
//! (`/layers`, `/layers/sbom`, `/layers/sbom/launch/<esc-bp>/[<layer>/]sbom.<ext>`,
//! `/layers/sbom/launch/sbom.legacy.json`), where `/layers` is the build's layers directory
//! (recorded in the image config as `CNB_LAYERS_DIR`, see [`layers_mount`]), and records the
//! layer's diffID as `sbom.sha` in the `io.buildpacks.lifecycle.metadata` label
//! ([`sbom_layer_descriptor`] finds the layer from it).
//!
//! [`extract_sbom_layer`] reads that layer as a stream, never extracting to disk: it decompresses
//! by media type, hashes the uncompressed stream and refuses the layer unless the hash is the
//! expected diffID, and maps each file under `<mount>/sbom/launch/` to an
//! [`SbomPath`] through the buildpack index; where a file goes is always built
//! from that validated path, never from the entry name. It fails closed, returning nothing, on
//! `..` or unclean entry names, on links and devices under `sbom/launch`, on a file of an unknown
//! buildpack, and when a cap ([`LayerLimits`]) is reached; caps are enforced while reading, so a
//! decompression bomb stops at the cap without being held in memory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use cnb_referrers::layout::{Image, OciLayout, MAX_CONFIG_SIZE};
use cnb_referrers::{Descriptor, Digest, ImageConfig};
use cnb_sbom_discovery::platform::{LifecycleMetadata, LIFECYCLE_METADATA_LABEL};
use cnb_sbom_discovery::{BuildpackIndex, SbomFormat};
use sha2::{Digest as _, Sha256};

use crate::path::{SbomPath, LEGACY_BOM};
use crate::tar::{shown, EntryKind, TarReader};
use crate::write::Restored;
use crate::Error;

/// `Restored::source` of every file taken from the SBOM layer.
pub const SOURCE: &str = "sbom-layer";
/// The layers directory when the image config does not record `CNB_LAYERS_DIR`.
pub const DEFAULT_LAYERS_MOUNT: &str = "/layers";
/// `application/vnd.oci.image.layer.v1.tar`
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `application/vnd.oci.image.layer.v1.tar+zstd` (recognised, not supported).
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// `application/vnd.docker.image.rootfs.diff.tar.gzip`
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// `application/vnd.docker.image.rootfs.diff.tar` (uncompressed Docker layers, as in `docker save`).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Caps on reading one SBOM layer, enforced while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLimits {
    /// Most bytes read from the blob (compressed): 1 GiB.
    pub max_compressed: u64,
    /// Most bytes of the uncompressed tar stream: 1 GiB.
    pub max_uncompressed: u64,
    /// Largest file restored: 256 MiB.
    pub max_file: u64,
    /// Most tar entries: 100 000.
    pub max_entries: usize,
}

impl Default for LayerLimits {
    fn default() -> Self {
        LayerLimits {
            max_compressed: 1 << 30,
            max_uncompressed: 1 << 30,
            max_file: 256 << 20,
            max_entries: 100_000,
        }
    }
}

/// What an SBOM layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomLayer {
    /// The SBOM files (and `sbom.legacy.json`), in layer order; `source` is [`SOURCE`].
    pub files: Vec<Restored>,
    /// Regular files not restored, with the reason: names that are not
    /// `<esc-bp>/[<layer>/]sbom.<ext>` or `sbom.legacy.json`, and files outside
    /// `<mount>/sbom/launch/`.
    pub skipped: Vec<(String, String)>,
}

/// Layer compression, from the media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

impl Compression {
    fn of(media_type: &str) -> Result<Self, Error> {
        match media_type {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Ok(Compression::None),
            OCI_LAYER_TAR_GZIP | DOCKER_LAYER_TAR_GZIP => Ok(Compression::Gzip),
            OCI_LAYER_TAR_ZSTD => Err(Error::Malformed(format!(
                "SBOM layer: zstd-compressed layers ({OCI_LAYER_TAR_ZSTD}) are not supported; \
                 supported: uncompressed and gzip tar layers"
            ))),
            other => Err(Error::Malformed(format!(
                "SBOM layer: unsupported media type `{}` (supported: {OCI_LAYER_TAR}, \
                 {OCI_LAYER_TAR_GZIP}, {DOCKER_LAYER_TAR}, {DOCKER_LAYER_TAR_GZIP})",
                shown(other)
            ))),
        }
    }
}

/// Reads the SBOM files out of an SBOM layer blob.
///
/// `media_type` chooses the decompression (uncompressed or gzip tar; zstd and anything else are
/// refused); the sha256 of the uncompressed stream (all of it, through the end-of-archive
/// padding) must equal `expected_diff_id` (the label's `sbom.sha`), or nothing is returned.
/// Entries are considered under `<layers_mount>/sbom/launch/` (`layers_mount` as recorded in the
/// image config, see [`layers_mount`]; a leading `/` or `./` on entry names is ignored).
/// Regular files there are mapped with [`SbomPath::parse_relative`]; a file of the
/// `<esc-bp>/[<layer>/]sbom.<ext>` shape whose buildpack is not in `index` (or whose layer name is
/// invalid) is an error, other names are listed in [`SbomLayer::skipped`].
///
/// Errors (each naming the entry, and returning no files): a `..`, `.` or empty component or a
/// name still absolute after stripping, anywhere in the layer; a symbolic or hard link, device or
/// other special entry under `sbom/launch` (or in place of one of its parent directories); the
/// same SBOM path twice; a file over `max_file`; more than `max_entries` entries; more than
/// `max_compressed` or `max_uncompressed` bytes; a malformed tar or gzip stream; a diffID mismatch.
pub fn extract_sbom_layer(
    blob: impl Read,
    media_type: &str,
    expected_diff_id: &str,
    layers_mount: &str,
    index: &BuildpackIndex,
    limits: &LayerLimits,
) -> Result<SbomLayer, Error> {
    let expected: Digest = expected_diff_id.parse().map_err(|_| {
        Error::Malformed(format!(
            "SBOM layer: the expected diffID `{}` is not a sha256 digest",
            shown(expected_diff_id)
        ))
    })?;
    let compression = Compression::of(media_type)?;
    let launch = launch_prefix(layers_mount)?;
    let compressed = Metered::new(blob, limits.max_compressed, "compressed SBOM layer", false);
    let decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(compressed),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
    };
    let mut stream = Metered::new(
        decoded,
        limits.max_uncompressed,
        "uncompressed SBOM layer",
        true,
    );
    let layer = {
        let mut tar = TarReader::new(&mut stream);
        read_entries(&mut tar, &launch, index, limits).map_err(in_layer)?
    };
    // The diffID covers the whole uncompressed stream, padding after the end marker included.
    io::copy(&mut stream, &mut io::sink())
        .map_err(|e| Error::Malformed(format!("SBOM layer: after the end of the archive: {e}")))?;
    let actual = stream.digest();
    if actual != expected.as_str() {
        return Err(Error::Malformed(format!(
            "SBOM layer: the uncompressed layer's digest {actual} is not the expected diffID \
             {expected} (the label's sbom.sha); nothing restored"
        )));
    }
    Ok(layer)
}

fn in_layer(e: Error) -> Error {
    match e {
        Error::Malformed(m) => Error::Malformed(format!("SBOM layer: {m}")),
        other => other,
    }
}

/// `<mount>/sbom/launch` without leading or trailing `/`, the mount validated.
fn launch_prefix(layers_mount: &str) -> Result<String, Error> {
    let trimmed = layers_mount.trim_end_matches('/');
    let relative = trimmed.strip_prefix('/').unwrap_or(trimmed);
    if relative.is_empty() {
        return Ok("sbom/launch".into());
    }
    if relative
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(Error::BadPath {
            path: shown(layers_mount),
            reason: "the layers directory (CNB_LAYERS_DIR) is not a clean path".into(),
        });
    }
    Ok(format!("{relative}/sbom/launch"))
}

/// An entry name without one leading `/` or `./` and a trailing `/`; refuses unclean names.
fn normalize(name: &str) -> Result<&str, Error> {
    let stripped = name
        .strip_prefix('/')
        .or_else(|| name.strip_prefix("./"))
        .unwrap_or(name);
    let stripped = stripped.strip_suffix('/').unwrap_or(stripped);
    let bad = |reason: &str| Error::BadPath {
        path: shown(name),
        reason: format!("SBOM layer entry {reason}; refusing the layer"),
    };
    if stripped.is_empty() {
        return Ok(stripped);
    }
    if stripped.starts_with('/') {
        return Err(bad("is still absolute after stripping one leading `/`"));
    }
    for component in stripped.split('/') {
        match component {
            ".." => return Err(bad("has a `..` component")),
            "." | "" => return Err(bad("is not a clean path (`.` or empty component)")),
            _ => {}
        }
    }
    Ok(stripped)
}

fn read_entries<R: Read>(
    tar: &mut TarReader<R>,
    launch: &str,
    index: &BuildpackIndex,
    limits: &LayerLimits,
) -> Result<SbomLayer, Error> {
    let shown_launch = format!("/{launch}");
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = BTreeSet::new();
    let mut count = 0usize;
    while let Some(entry) = tar.next_entry()? {
        count += 1;
        if count > limits.max_entries {
            return Err(Error::Malformed(format!(
                "more than {} entries (at `{}`)",
                limits.max_entries,
                shown(&entry.path)
            )));
        }
        let name = normalize(&entry.path)?;
        let refuse = |reason: String| Error::BadPath {
            path: shown(&entry.path),
            reason,
        };
        let parent_of_launch = name.is_empty()
            || name == launch
            || launch
                .strip_prefix(name)
                .is_some_and(|r| r.starts_with('/'));
        if parent_of_launch {
            if entry.kind != EntryKind::Directory {
                return Err(refuse(format!(
                    "is a {} where {shown_launch} or one of its parent directories must be a \
                     directory; refusing the layer",
                    entry.kind
                )));
            }
            continue;
        }
        let Some(rest) = name.strip_prefix(launch).and_then(|r| r.strip_prefix('/')) else {
            if entry.kind == EntryKind::File {
                skipped.push((entry.path.clone(), format!("outside {shown_launch}/")));
            }
            continue;
        };
        match entry.kind {
            EntryKind::Directory => continue,
            EntryKind::File => {}
            other => {
                return Err(refuse(format!(
                    "is a {other} under {shown_launch}; only regular files and directories are \
                     restored; refusing the layer"
                )))
            }
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let sbom_shaped = match parts.as_slice() {
            [only] => *only == LEGACY_BOM,
            [_, file] | [_, _, file] => SbomFormat::from_file_name(file).is_some(),
            _ => false,
        };
        let path = match SbomPath::parse_relative(rest, index) {
            Ok(path) => path,
            Err(Error::BadPath { reason, .. }) if !sbom_shaped => {
                skipped.push((entry.path.clone(), reason));
                continue;
            }
            Err(Error::BadPath { reason, .. }) => {
                return Err(refuse(format!("{reason}; refusing the layer")))
            }
            Err(e) => return Err(e),
        };
        if entry.size > limits.max_file {
            return Err(refuse(format!(
                "is {} bytes, over the {}-byte limit for one SBOM file",
                entry.size, limits.max_file
            )));
        }
        if !seen.insert(path.clone()) {
            return Err(refuse(
                "is in the layer twice (or two entries name the same SBOM); refusing the layer"
                    .into(),
            ));
        }
        let bytes = tar.read_body(limits.max_file)?;
        files.push(Restored {
            path,
            bytes,
            spooled: None,
            source: SOURCE.into(),
            placement: crate::write::Placement::SbomLayer,
        });
    }
    Ok(SbomLayer { files, skipped })
}

/// Counts (and optionally hashes) what is read, failing once more than `max` bytes come through.
struct Metered<R> {
    inner: R,
    count: u64,
    max: u64,
    what: &'static str,
    hasher: Option<Sha256>,
}

impl<R: Read> Metered<R> {
    fn new(inner: R, max: u64, what: &'static str, hash: bool) -> Self {
        Metered {
            inner,
            count: 0,
            max,
            what,
            hasher: hash.then(Sha256::new),
        }
    }

    fn digest(&mut self) -> String {
        let hasher = self.hasher.take().unwrap_or_default();
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for at most one byte past the cap, so reaching it is noticed without reading on.
        let allowed = (self.max - self.count.min(self.max)).saturating_add(1);
        let take = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..take])?;
        self.count += n as u64;
        if self.count > self.max {
            return Err(io::Error::other(format!(
                "the {} exceeds the {}-byte limit",
                self.what, self.max
            )));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The diffID of the image's SBOM layer: the label's `sbom.sha`, validated.
pub fn sbom_diff_id(metadata: &LifecycleMetadata) -> Result<String, Error> {
    let sha = metadata
        .sbom
        .as_ref()
        .map(|s| s.sha.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::Malformed(format!(
                "the image has no SBOM layer: its {LIFECYCLE_METADATA_LABEL} label records no \
                 `sbom.sha`"
            ))
        })?;
    let digest: Digest = sha.parse().map_err(|_| {
        Error::Malformed(format!(
            "the label's `sbom.sha` `{}` is not a sha256 digest",
            shown(sha)
        ))
    })?;
    Ok(digest.to_string())
}

/// The image's `io.buildpacks.lifecycle.metadata` label, parsed.
pub fn lifecycle_metadata(config: &ImageConfig) -> Result<LifecycleMetadata, Error> {
    let label = config.labels.get(LIFECYCLE_METADATA_LABEL).ok_or_else(|| {
        Error::Malformed(format!(
            "the image has no {LIFECYCLE_METADATA_LABEL} label (not a buildpacks image?)"
        ))
    })?;
    LifecycleMetadata::from_json(label).map_err(|e| Error::Malformed(e.to_string()))
}

/// The position of the SBOM layer among the image's layers, and its diffID: the label's
/// `sbom.sha` looked up in `diff_ids` (`rootfs.diff_ids`).
pub fn sbom_layer_position(
    diff_ids: &[String],
    metadata: &LifecycleMetadata,
) -> Result<(usize, String), Error> {
    let diff_id = sbom_diff_id(metadata)?;
    let position = diff_ids.iter().position(|d| *d == diff_id).ok_or_else(|| {
        Error::Malformed(format!(
            "the SBOM layer {diff_id} (the label's sbom.sha) is not in the image's \
             rootfs.diff_ids"
        ))
    })?;
    Ok((position, diff_id))
}

/// The manifest's descriptor of the SBOM layer and its diffID: the label's `sbom.sha` is found in
/// the config's `rootfs.diff_ids`, and the manifest layer at the same index is the blob. Errors
/// when the label records no SBOM layer, when the diffID is not in the image, or when the manifest
/// and config disagree on the number of layers.
pub fn sbom_layer_descriptor(
    image: &Image,
    metadata: &LifecycleMetadata,
) -> Result<(Descriptor, String), Error> {
    let (position, diff_id) = sbom_layer_position(&image.config.diff_ids, metadata)?;
    if image.manifest.layers.len() != image.config.diff_ids.len() {
        return Err(Error::Malformed(format!(
            "the image manifest lists {} layers but its config {} diffIDs",
            image.manifest.layers.len(),
            image.config.diff_ids.len()
        )));
    }
    Ok((image.manifest.layers[position].clone(), diff_id))
}

/// The environment (`config.Env`) of an image config.
pub fn config_env(config_json: &[u8]) -> Result<Vec<String>, Error> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        config: Option<RawConfig>,
    }
    #[derive(serde::Deserialize)]
    struct RawConfig {
        #[serde(default, rename = "Env")]
        env: Option<Vec<String>>,
    }
    let raw: Raw = serde_json::from_slice(config_json)
        .map_err(|e| Error::Malformed(format!("image config: {e}")))?;
    Ok(raw.config.and_then(|c| c.env).unwrap_or_default())
}

/// The layers directory the SBOM layer's paths start with: the last `CNB_LAYERS_DIR=` in the
/// image config's environment (see [`config_env`]), or [`DEFAULT_LAYERS_MOUNT`].
pub fn layers_mount<S: AsRef<str>>(env: &[S]) -> String {
    env.iter()
        .rev()
        .find_map(|v| v.as_ref().strip_prefix("CNB_LAYERS_DIR="))
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_LAYERS_MOUNT)
        .to_string()
}

/// Opens a file to read a blob from: it must be a regular file (a link is followed only when
/// `follow`), and the file opened must be the one checked.
pub(crate) fn open_regular(path: &Path, follow: bool) -> Result<File, Error> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let checked = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(io)?;
    if !checked.is_file() {
        return Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "is not a regular file (a link, directory or special file)".into(),
        });
    }
    let file = File::open(path).map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    if !opened.is_file() || !same_file(&checked, &opened) {
        return Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "was replaced while it was being opened".into(),
        });
    }
    Ok(file)
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

/// The SBOM layer of an image in an OCI layout: finds the layer from the label
/// ([`sbom_layer_descriptor`]), the layers directory from the config ([`layers_mount`]), and
/// extracts it ([`extract_sbom_layer`]) from the blob file, streamed.
pub fn extract_from_layout(
    layout: &OciLayout,
    image: &Image,
    index: &BuildpackIndex,
    limits: &LayerLimits,
) -> Result<SbomLayer, Error> {
    let metadata = lifecycle_metadata(&image.config)?;
    let (descriptor, diff_id) = sbom_layer_descriptor(image, &metadata)?;
    let config = layout
        .read_blob(&image.manifest.config.digest, MAX_CONFIG_SIZE)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    let mount = layers_mount(&config_env(&config)?);
    let blob = open_regular(&layout.blob_path(&descriptor.digest), false)?;
    extract_sbom_layer(
        io::BufReader::new(blob),
        &descriptor.media_type,
        &diff_id,
        &mount,
        index,
        limits,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_unclean_ones_refused() {
        assert_eq!(normalize("/layers/sbom/").unwrap(), "layers/sbom");
        assert_eq!(normalize("./layers").unwrap(), "layers");
        assert_eq!(normalize("layers").unwrap(), "layers");
        assert_eq!(normalize("./").unwrap(), "");
        for bad in [
            "//etc/passwd",
            "/layers/../etc",
            "/layers/./sbom",
            "/layers//sbom",
            "../x",
        ] {
            let err = normalize(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_mount_gives_the_launch_prefix() {
        assert_eq!(launch_prefix("/layers").unwrap(), "layers/sbom/launch");
        assert_eq!(launch_prefix("/layers/").unwrap(), "layers/sbom/launch");
        assert_eq!(
            launch_prefix("/cnb/layers").unwrap(),
            "cnb/layers/sbom/launch"
        );
        assert_eq!(launch_prefix("/").unwrap(), "sbom/launch");
        assert!(launch_prefix("/a/../b").is_err());
    }

    #[test]
    fn the_mount_comes_from_the_environment() {
        let env = config_env(br#"{"config":{"Env":["PATH=/bin","CNB_LAYERS_DIR=/cnb/layers"]}}"#)
            .unwrap();
        assert_eq!(layers_mount(&env), "/cnb/layers");
        assert_eq!(layers_mount(&config_env(b"{}").unwrap()), "/layers");
        assert_eq!(layers_mount::<&str>(&[]), DEFAULT_LAYERS_MOUNT);
    }

    #[test]
    fn metering_stops_one_byte_past_the_cap() {
        let mut m = Metered::new(&[1u8; 100][..], 10, "thing", true);
        let mut sink = Vec::new();
        let err = m.read_to_end(&mut sink).unwrap_err().to_string();
        assert_eq!(err, "the thing exceeds the 10-byte limit");
        assert_eq!(m.count, 11);
        let mut m = Metered::new(&[1u8; 10][..], 10, "thing", true);
        assert_eq!(io::copy(&mut m, &mut io::sink()).unwrap(), 10);
    }
}
