//! `docker save` archives: the images of a saved tar, their configs, and their layers as bounded
//! streams, read in place (nothing is extracted).
//!
//! [`DockerArchive::open`] indexes the archive once (entry name → offset and size, bounded number
//! of entries; symbolic and hard links between entries, which `docker save` writes for a layer
//! saved twice, are resolved inside the archive, never on disk) and reads `manifest.json`
//! (`[{"Config", "RepoTags", "Layers"}]`). The image ID is the sha256 of the config, which must
//! match the config's entry name (`<hex>.json` or `blobs/sha256/<hex>`).
//! [`DockerArchive::select`] picks an image by tag or (possibly abbreviated) image ID, and
//! [`DockerArchive::layer_reader`] streams one of its layers (uncompressed tars in the classic
//! `<id>/layer.tar` and Docker 25+ `blobs/sha256/<hex>` layouts; a gzip or zstd layer is
//! recognised by its magic bytes and reported by media type).
//!
//! Docker 25+ archives also hold an OCI image layout (`oci-layout`, `index.json`, `blobs/`) beside
//! `manifest.json`; only `manifest.json` is read, which every `docker save` since 1.10 writes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cnb_referrers::ImageConfig;
use cnb_sbom_discovery::BuildpackIndex;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::layer::{
    config_env, extract_sbom_layer, layers_mount, lifecycle_metadata, open_regular,
    sbom_layer_position, LayerLimits, SbomLayer, DOCKER_LAYER_TAR, DOCKER_LAYER_TAR_GZIP,
    OCI_LAYER_TAR_ZSTD,
};
use crate::tar::{shown, EntryKind, TarReader};
use crate::Error;

/// The archive's index of images.
pub const MANIFEST_JSON: &str = "manifest.json";
/// Most links followed to reach one entry.
const MAX_LINK_HOPS: usize = 8;

/// Caps on reading a `docker save` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most tar entries in the archive: 100 000.
    pub max_entries: usize,
    /// Largest `manifest.json` or image config read: 8 MiB.
    pub max_json: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_entries: 100_000,
            max_json: 8 << 20,
        }
    }
}

/// One entry of the archive index.
#[derive(Debug, Clone)]
enum Indexed {
    File { offset: u64, size: u64 },
    Link { target: String },
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

/// An image listed in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImageInfo {
    /// The image ID: `sha256:<hex>` of the config.
    pub id: String,
    /// The tags it was saved with (may be empty).
    pub repo_tags: Vec<String>,
    config_entry: String,
    layers: Vec<String>,
}

/// A selected image: its config and where its layers are.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The image ID: `sha256:<hex>` of the config.
    pub id: String,
    /// The tags it was saved with.
    pub repo_tags: Vec<String>,
    /// Labels and diffIDs of the config.
    pub config: ImageConfig,
    /// The config's bytes (for the environment, see [`ArchiveImage::layers_mount`]).
    pub config_json: Vec<u8>,
    /// The archive entries of the layers, in `rootfs.diff_ids` order.
    pub layers: Vec<String>,
}

impl ArchiveImage {
    /// The layers directory of the build (`CNB_LAYERS_DIR` in the config, default `/layers`).
    pub fn layers_mount(&self) -> Result<String, Error> {
        Ok(layers_mount(&config_env(&self.config_json)?))
    }
}

/// Which layer of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerRef<'a> {
    /// The layer with this diffID (the first, if the image has it twice).
    DiffId(&'a str),
    /// The layer at this index of `rootfs.diff_ids`.
    Index(usize),
}

/// One layer of an image, ready to stream.
#[derive(Debug)]
pub struct ArchiveLayer {
    /// The entry's bytes, bounded to the entry.
    pub reader: EntryReader,
    /// [`DOCKER_LAYER_TAR`], or [`DOCKER_LAYER_TAR_GZIP`] / [`OCI_LAYER_TAR_ZSTD`] when the entry
    /// starts with the gzip or zstd magic bytes.
    pub media_type: &'static str,
    /// The layer's diffID, from the config.
    pub diff_id: String,
    /// The entry's size in bytes.
    pub size: u64,
}

/// A bounded [`Read`] of one archive entry, by positional reads (it does not move other readers
/// of the same archive).
#[derive(Debug)]
pub struct EntryReader {
    file: Arc<File>,
    position: u64,
    end: u64,
}

impl Read for EntryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.position;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = read_at(&self.file, &mut buf[..want], self.position)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive is shorter than its index says",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::Seek as _;
    file.seek(io::SeekFrom::Start(offset))?;
    file.read(buf)
}

/// A `docker save` archive, indexed. See the [module documentation](self).
#[derive(Debug)]
pub struct DockerArchive {
    path: PathBuf,
    file: Arc<File>,
    entries: BTreeMap<String, Indexed>,
    images: Vec<ArchiveImageInfo>,
    limits: ArchiveLimits,
}

impl DockerArchive {
    /// Indexes the archive at `path` (a regular file; a link to one is followed) and reads its
    /// `manifest.json` and image configs. Refuses more than `limits.max_entries` entries, the same
    /// file name twice, an entry that reaches past the end of the file, a missing or malformed
    /// `manifest.json`, and a config that does not match its name's digest.
    pub fn open(path: &Path, limits: &ArchiveLimits) -> Result<Self, Error> {
        let file = open_regular(path, true)?;
        let len = file
            .metadata()
            .map_err(|e| Error::Io {
                path: path.to_path_buf(),
                source: e,
            })?
            .len();
        let mut archive = DockerArchive {
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries: BTreeMap::new(),
            images: Vec::new(),
            limits: limits.clone(),
        };
        archive.index(len)?;
        archive.read_manifest()?;
        Ok(archive)
    }

    fn malformed(&self, message: impl std::fmt::Display) -> Error {
        Error::Malformed(format!("docker archive {}: {message}", self.path.display()))
    }

    fn index(&mut self, len: u64) -> Result<(), Error> {
        let file = Arc::clone(&self.file);
        let mut tar = TarReader::new_seekable(&*file);
        let mut count = 0usize;
        loop {
            let entry = tar.next_entry().map_err(|e| self.malformed(e))?;
            let Some(entry) = entry else { break };
            count += 1;
            if count > self.limits.max_entries {
                return Err(
                    self.malformed(format!("more than {} entries", self.limits.max_entries))
                );
            }
            // Keys are cleaned as lookups are; a name that climbs above the root is unreachable.
            let Some(name) = clean_lexically(&entry.path) else {
                continue;
            };
            let indexed = match entry.kind {
                EntryKind::File => {
                    if entry.data_offset.saturating_add(entry.size) > len {
                        return Err(self.malformed(format!(
                            "entry `{}` reaches past the end of the file (truncated archive)",
                            shown(&entry.path)
                        )));
                    }
                    Indexed::File {
                        offset: entry.data_offset,
                        size: entry.size,
                    }
                }
                EntryKind::Symlink => {
                    let target = entry.link_name.unwrap_or_default();
                    let base = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    Indexed::Link {
                        target: if let Some(absolute) = target.strip_prefix('/') {
                            absolute.to_string()
                        } else if base.is_empty() {
                            target
                        } else {
                            format!("{base}/{target}")
                        },
                    }
                }
                EntryKind::Hardlink => Indexed::Link {
                    target: entry.link_name.unwrap_or_default(),
                },
                _ => continue,
            };
            if self.entries.insert(name.clone(), indexed).is_some() {
                return Err(self.malformed(format!("entry `{}` appears twice", shown(&entry.path))));
            }
        }
        Ok(())
    }

    /// The entry `name` refers to, links resolved inside the archive.
    fn locate(&self, name: &str) -> Result<(u64, u64), Error> {
        let mut current = clean_lexically(name)
            .ok_or_else(|| self.malformed(format!("`{}` leaves the archive", shown(name))))?;
        for _ in 0..=MAX_LINK_HOPS {
            match self.entries.get(&current) {
                Some(Indexed::File { offset, size }) => return Ok((*offset, *size)),
                Some(Indexed::Link { target }) => {
                    current = clean_lexically(target).ok_or_else(|| {
                        self.malformed(format!(
                            "the link `{}` points outside the archive",
                            shown(&current)
                        ))
                    })?;
                }
                None => {
                    return Err(self.malformed(format!(
                        "no entry `{}` (named by manifest.json)",
                        shown(&current)
                    )))
                }
            }
        }
        Err(self.malformed(format!(
            "more than {MAX_LINK_HOPS} links to follow from `{}`",
            shown(name)
        )))
    }

    fn reader(&self, name: &str) -> Result<EntryReader, Error> {
        let (offset, size) = self.locate(name)?;
        Ok(EntryReader {
            file: Arc::clone(&self.file),
            position: offset,
            end: offset + size,
        })
    }

    fn read_entry(&self, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        let (_, size) = self.locate(name)?;
        if size > max {
            return Err(self.malformed(format!(
                "`{}` is {size} bytes, over the {max}-byte limit",
                shown(name)
            )));
        }
        let mut bytes = Vec::new();
        self.reader(name)?
            .read_to_end(&mut bytes)
            .map_err(|e| self.malformed(format!("reading `{}`: {e}", shown(name))))?;
        Ok(bytes)
    }

    fn read_manifest(&mut self) -> Result<(), Error> {
        if !self.entries.contains_key(MANIFEST_JSON) {
            return Err(self.malformed(
                "no manifest.json (not a `docker save` archive; OCI-layout-only archives are not \
                 supported)",
            ));
        }
        let bytes = self.read_entry(MANIFEST_JSON, self.limits.max_json)?;
        let manifest: Vec<ManifestEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| self.malformed(format!("malformed manifest.json: {e}")))?;
        let mut images = Vec::with_capacity(manifest.len());
        for entry in manifest {
            let config = self.read_config(&entry.config)?;
            images.push(ArchiveImageInfo {
                id: format!("sha256:{}", hex::encode(Sha256::digest(&config))),
                repo_tags: entry.repo_tags.unwrap_or_default(),
                config_entry: entry.config,
                layers: entry.layers.unwrap_or_default(),
            });
        }
        self.images = images;
        Ok(())
    }

    /// Reads a config, checking it against the digest in its name.
    fn read_config(&self, name: &str) -> Result<Vec<u8>, Error> {
        let bytes = self.read_entry(name, self.limits.max_json)?;
        let cleaned = clean_lexically(name).unwrap_or_default();
        let named = cleaned
            .strip_prefix("blobs/sha256/")
            .or_else(|| cleaned.strip_suffix(".json"))
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let actual = hex::encode(Sha256::digest(&bytes));
        if let Some(named) = named {
            if named != actual {
                return Err(self.malformed(format!(
                    "config `{}` does not match its digest (sha256:{actual})",
                    shown(name)
                )));
            }
        }
        Ok(bytes)
    }

    /// The path of the archive.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images of `manifest.json`, in its order.
    pub fn images(&self) -> &[ArchiveImageInfo] {
        &self.images
    }

    /// Picks an image: by tag (`app:1.0`, `app` meaning `app:latest`, with or without
    /// `docker.io/[library/]`), by image ID (`sha256:<hex>`, or at least 12 hex digits of it), or,
    /// with `None`, the only image of the archive. Reads and checks its config.
    pub fn select(&self, reference_or_id: Option<&str>) -> Result<ArchiveImage, Error> {
        let mut found: Vec<&ArchiveImageInfo> = Vec::new();
        for image in &self.images {
            let matches = match reference_or_id {
                None => true,
                Some(s) => {
                    id_matches(&image.id, s)
                        || image.repo_tags.iter().any(|t| familiar(t) == familiar(s))
                }
            };
            if matches && !found.iter().any(|f| f.id == image.id) {
                found.push(image);
            }
        }
        let what = reference_or_id.unwrap_or("(no image named)");
        let info = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(self.malformed(format!(
                    "no image `{}` (images: {})",
                    shown(what),
                    self.describe_images()
                )))
            }
            many => {
                return Err(self.malformed(format!(
                    "{} images match `{}`; name one by tag or image ID (images: {})",
                    many.len(),
                    shown(what),
                    self.describe_images()
                )))
            }
        };
        let config_json = self.read_config(&info.config_entry)?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&config_json)));
        if actual != info.id {
            return Err(self.malformed(format!(
                "config `{}` changed while the archive was open",
                shown(&info.config_entry)
            )));
        }
        let config = ImageConfig::from_json(&config_json)
            .map_err(|e| self.malformed(format!("image {}: {e}", info.id)))?;
        if config.diff_ids.len() != info.layers.len() {
            return Err(self.malformed(format!(
                "image {}: manifest.json lists {} layers but its config {} diffIDs",
                info.id,
                info.layers.len(),
                config.diff_ids.len()
            )));
        }
        Ok(ArchiveImage {
            id: info.id.clone(),
            repo_tags: info.repo_tags.clone(),
            config,
            config_json,
            layers: info.layers.clone(),
        })
    }

    fn describe_images(&self) -> String {
        if self.images.is_empty() {
            return "none".into();
        }
        self.images
            .iter()
            .map(|i| {
                let short = i.id.get(7..19).unwrap_or(&i.id);
                match i.repo_tags.as_slice() {
                    [] => short.to_string(),
                    tags => format!("{short} ({})", tags.join(", ")),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A bounded stream of one layer of `image` (chosen by diffID or index), with its media type
    /// guessed from its first bytes.
    pub fn layer_reader(
        &self,
        image: &ArchiveImage,
        layer: LayerRef<'_>,
    ) -> Result<ArchiveLayer, Error> {
        let position = match layer {
            LayerRef::DiffId(diff_id) => image
                .config
                .diff_ids
                .iter()
                .position(|d| d == diff_id)
                .ok_or_else(|| {
                    self.malformed(format!(
                        "image {}: no layer with diffID `{}`",
                        image.id,
                        shown(diff_id)
                    ))
                })?,
            LayerRef::Index(i) if i < image.layers.len() => i,
            LayerRef::Index(i) => {
                return Err(self.malformed(format!(
                    "image {}: no layer {i} (it has {})",
                    image.id,
                    image.layers.len()
                )))
            }
        };
        let name = image.layers.get(position).ok_or_else(|| {
            self.malformed(format!("image {}: fewer layers than diffIDs", image.id))
        })?;
        let diff_id = image.config.diff_ids[position].clone();
        let mut magic = [0u8; 4];
        let mut probe = self.reader(name)?;
        let size = probe.end - probe.position;
        let mut got = 0;
        while got < magic.len() {
            match probe.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(self.malformed(format!("reading `{}`: {e}", shown(name)))),
            }
        }
        let media_type = match &magic[..got] {
            [0x1f, 0x8b, ..] => DOCKER_LAYER_TAR_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_TAR_ZSTD,
            _ => DOCKER_LAYER_TAR,
        };
        Ok(ArchiveLayer {
            reader: self.reader(name)?,
            media_type,
            diff_id,
            size,
        })
    }

    /// The SBOM files of `image`'s SBOM layer: the label's `sbom.sha` located in the image, the
    /// layer streamed out of the archive and read with
    /// [`extract_sbom_layer`].
    pub fn sbom_layer(
        &self,
        image: &ArchiveImage,
        index: &BuildpackIndex,
        limits: &LayerLimits,
    ) -> Result<SbomLayer, Error> {
        let metadata = lifecycle_metadata(&image.config)?;
        let (position, diff_id) = sbom_layer_position(&image.config.diff_ids, &metadata)?;
        let layer = self.layer_reader(image, LayerRef::Index(position))?;
        extract_sbom_layer(
            io::BufReader::new(layer.reader),
            layer.media_type,
            &diff_id,
            &image.layers_mount()?,
            index,
            limits,
        )
    }
}

/// A name with `.`, empty and `..` components resolved; `None` if it climbs above the root.
fn clean_lexically(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

fn id_matches(id: &str, wanted: &str) -> bool {
    let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    hex.len() >= 12
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id["sha256:".len()..].starts_with(hex)
}

/// A reference in Docker's familiar form: no `docker.io/library/`, `:latest` when untagged.
fn familiar(reference: &str) -> String {
    let mut r = reference;
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = r.strip_prefix(prefix) {
            r = rest;
            break;
        }
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_references() {
        assert_eq!(clean_lexically("./a/b/").as_deref(), Some("a/b"));
        assert_eq!(clean_lexically("/x").as_deref(), Some("x"));
        assert_eq!(clean_lexically("a/../b/./c").as_deref(), Some("b/c"));
        assert_eq!(clean_lexically("../x"), None);
        assert_eq!(familiar("app"), "app:latest");
        assert_eq!(familiar("docker.io/library/app:1"), "app:1");
        assert_eq!(familiar("localhost:5000/app"), "localhost:5000/app:latest");
        let id = format!("sha256:{}", "ab".repeat(32));
        assert!(id_matches(&id, "ababababab"[..].repeat(2).as_str()));
        assert!(id_matches(&id, &id));
        assert!(!id_matches(&id, "abab"));
    }
}
