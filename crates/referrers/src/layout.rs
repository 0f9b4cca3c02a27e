//! OCI image layouts as an attestation store (the no-registry default).
//!
//! Referrer manifests are stored as blobs and listed in `index.json` with their `artifactType` and
//! annotations, as oras does, so any layout-aware tool (skopeo, oras, crane) keeps them and a later
//! push can carry them to a registry. `index.json` is rewritten atomically (temporary file + rename)
//! under an advisory lock on the layout directory, so two writers on one machine never lose each
//! other's entries, and entries this crate does not understand are kept as they are.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use cnb_local_files::{Links, ReadError};
use serde_json::Value;

use crate::blob::Blob;
use crate::format::Referrer;
use crate::manifest::{
    Descriptor, ImageConfig, ImageIndex, ImageManifest, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
    REF_NAME,
};
use crate::platform::{self, IndexInfo, PlatformSpec};
use crate::{Digest, Error};

/// Largest `index.json` read.
pub const MAX_INDEX_SIZE: u64 = 16 * 1024 * 1024;
/// Largest manifest read (the common registry limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// Largest image config read.
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

/// An image read from a layout: its manifest, config, labels and diffIDs.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor (as the `subject` of referrers).
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Labels and diffIDs from the config.
    pub config: ImageConfig,
    /// BuildKit attestation manifests for this image, when it was reached through an image index
    /// that holds them (`vnd.docker.reference.type: attestation-manifest` entries whose
    /// `vnd.docker.reference.digest` is this manifest).
    pub buildkit: Vec<Descriptor>,
    /// The image index this manifest was reached through (its descriptor and every platform it
    /// lists), when it was.
    pub index: Option<IndexInfo>,
}

/// What [`OciLayout::resolve`] found: the platform manifest to work on, the BuildKit attestation
/// manifests about it and, when it was reached through an image index, that index.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The image manifest's descriptor as listed.
    pub descriptor: Descriptor,
    /// BuildKit attestation manifests about it.
    pub buildkit: Vec<Descriptor>,
    /// The image index it was reached through.
    pub index: Option<IndexInfo>,
}

/// BuildKit's annotation on the index entry of an attestation manifest.
pub const BUILDKIT_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// BuildKit's annotation naming the platform manifest an attestation manifest is about.
pub const BUILDKIT_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// Whether `tag` names something attached to an image rather than an image: cosign's
/// `sha256-<hex>.att`, `.sig` and `.sbom` tags and the tag-schema `sha256-<hex>` index.
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = match rest.split_once('.') {
        Some((hex, "att" | "sig" | "sbom")) => hex,
        Some(_) => return false,
        None => rest,
    };
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What storing one referrer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The manifest was new and is now listed.
    Added,
    /// An identical manifest (same digest) was already listed; nothing was written.
    AlreadyPresent,
}

impl OciLayout {
    /// Opens an existing layout, checking `oci-layout` and `index.json`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let layout = OciLayout {
            root: path.to_path_buf(),
        };
        let marker = layout.read_bounded(&path.join("oci-layout"), 4096)?;
        let marker: Value = serde_json::from_slice(&marker).map_err(|e| Error::Layout {
            path: path.join("oci-layout"),
            reason: format!("not JSON: {e}"),
        })?;
        if marker.get("imageLayoutVersion").and_then(Value::as_str) != Some("1.0.0") {
            return Err(Error::Layout {
                path: path.join("oci-layout"),
                reason: "imageLayoutVersion is not 1.0.0".into(),
            });
        }
        layout.index()?;
        Ok(layout)
    }

    /// Creates an empty layout at `path` (which must not hold one already).
    pub fn create(path: &Path) -> Result<Self, Error> {
        let io = |e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        fs::create_dir_all(path.join("blobs").join("sha256")).map_err(io)?;
        if path.join("index.json").exists() {
            return Err(Error::Layout {
                path: path.to_path_buf(),
                reason: "already holds an index.json".into(),
            });
        }
        let layout = OciLayout {
            root: path.to_path_buf(),
        };
        layout.write_atomic(
            &path.join("oci-layout"),
            b"{\"imageLayoutVersion\":\"1.0.0\"}",
        )?;
        layout.write_atomic(
            &path.join("index.json"),
            b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}",
        )?;
        Ok(layout)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex, Error> {
        let path = self.root.join("index.json");
        let bytes = self.read_bounded(&path, MAX_INDEX_SIZE)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path,
            reason: format!("malformed index.json: {e}"),
        })
    }

    /// The `index.json` entries `selector` names: a tag (`org.opencontainers.image.ref.name`),
    /// a digest, or (none) every tagged entry that is not an attachment tag
    /// ([`is_attachment_tag`]), else every untagged entry that is not an artifact.
    pub fn named(&self, index: &ImageIndex, selector: Option<&str>) -> Vec<Descriptor> {
        let tag_of = |d: &Descriptor| d.annotation(REF_NAME).map(str::to_string);
        let found = index.manifests.iter().filter(|d| match selector {
            Some(s) if s.starts_with("sha256:") => d.digest.as_str() == s,
            Some(tag) => tag_of(d).as_deref() == Some(tag),
            None => tag_of(d).is_some_and(|t| !is_attachment_tag(&t)),
        });
        let found: Vec<Descriptor> = found.cloned().collect();
        if selector.is_some() || !found.is_empty() {
            return found;
        }
        index
            .manifests
            .iter()
            .filter(|d| d.artifact_type.is_none() && d.annotation(REF_NAME).is_none())
            .cloned()
            .collect()
    }

    /// Finds the image to work on: `selector` is a tag (`org.opencontainers.image.ref.name`) or a
    /// digest; with no selector the layout must hold exactly one tagged image manifest (or exactly
    /// one manifest that is not a referrer). An image index must hold one platform manifest; see
    /// [`OciLayout::resolve`] to name one.
    pub fn resolve_image(&self, selector: Option<&str>) -> Result<Descriptor, Error> {
        self.resolve(selector, None).map(|r| r.descriptor)
    }

    /// [`OciLayout::resolve_image`] with a platform: an image index resolves to its manifest for
    /// `platform` ([`platform::choose`]: without one, an index of several platforms is
    /// [`Error::Platform`] listing them). A digest also finds a manifest listed inside an image
    /// index that `index.json` lists (with the BuildKit attestation manifests about it there). A
    /// single manifest is taken as it is (`platform` is checked only against index entries).
    pub fn resolve(
        &self,
        selector: Option<&str>,
        wanted: Option<&PlatformSpec>,
    ) -> Result<Resolved, Error> {
        let index = self.index()?;
        let is_manifest =
            |d: &&Descriptor| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST;
        let digest_selector = match selector {
            Some(s) if s.starts_with("sha256:") => Some(s.parse::<Digest>()?),
            _ => None,
        };
        let named = self.named(&index, selector);
        let found: Vec<&Descriptor> = named.iter().collect();
        let what = selector.unwrap_or("(no tag given)");
        match found.as_slice() {
            [one] if is_manifest(one) => Ok(Resolved {
                descriptor: (*one).clone(),
                buildkit: Vec::new(),
                index: None,
            }),
            [one] if one.media_type == OCI_INDEX => {
                let (index, _) = self.read_index(one)?;
                let (chosen, buildkit) = platform::choose(&index, wanted)?;
                Ok(Resolved {
                    index: Some(platform::index_info(one, &index, &chosen)),
                    descriptor: chosen,
                    buildkit,
                })
            }
            [one] => Err(Error::Layout {
                path: self.root.clone(),
                reason: format!("`{what}` has unsupported media type {}", one.media_type),
            }),
            [] => match digest_selector {
                // A manifest listed inside an image index that index.json lists.
                Some(digest) => self.resolve_child(&index, &digest, wanted, what),
                None => Err(Error::NoSuchImage {
                    path: self.root.clone(),
                    selector: what.to_string(),
                }),
            },
            many => Err(Error::Layout {
                path: self.root.clone(),
                reason: format!(
                    "{} images match `{what}`; name one with :<tag> or @sha256:<digest>",
                    many.len()
                ),
            }),
        }
    }

    /// Reads the image index `entry` names (bounded, digest-checked).
    fn read_index(&self, entry: &Descriptor) -> Result<(ImageIndex, Vec<u8>), Error> {
        let bytes = self.read_blob(&entry.digest, MAX_MANIFEST_SIZE)?;
        let index = ImageIndex::from_json(&bytes).map_err(|e| Error::Layout {
            path: self.blob_path(&entry.digest),
            reason: e.to_string(),
        })?;
        Ok((index, bytes))
    }

    /// A platform manifest `digest` listed in an image index that `index.json` lists.
    fn resolve_child(
        &self,
        top: &ImageIndex,
        digest: &Digest,
        wanted: Option<&PlatformSpec>,
        what: &str,
    ) -> Result<Resolved, Error> {
        for entry in top.manifests.iter().filter(|d| d.media_type == OCI_INDEX) {
            if entry.size > MAX_MANIFEST_SIZE {
                continue;
            }
            let Ok((index, _)) = self.read_index(entry) else {
                continue;
            };
            let Some(child) = platform::platform_manifests(&index)
                .into_iter()
                .find(|d| d.digest == *digest)
                .cloned()
            else {
                continue;
            };
            if let Some(w) = wanted {
                if !child.platform.as_ref().is_some_and(|p| w.matches(p)) {
                    return Err(Error::from(platform::PlatformError::NoMatch {
                        wanted: w.clone(),
                        matching: 0,
                        platforms: platform::platforms(&index)
                            .into_iter()
                            .filter(|p| p.digest == *digest)
                            .collect(),
                    }));
                }
            }
            return Ok(Resolved {
                index: Some(platform::index_info(entry, &index, &child)),
                buildkit: platform::buildkit_about(&index, digest),
                descriptor: child,
            });
        }
        Err(Error::NoSuchImage {
            path: self.root.clone(),
            selector: what.to_string(),
        })
    }

    /// The BuildKit attestation manifests about `platform` in any image index listed in
    /// `index.json` (bounded reads; unreadable indexes are skipped).
    pub fn buildkit_attestations(&self, platform: &Digest) -> Result<Vec<Descriptor>, Error> {
        let mut out = Vec::new();
        for entry in self.index()?.manifests {
            if entry.media_type != OCI_INDEX || entry.size > MAX_MANIFEST_SIZE {
                continue;
            }
            let Ok(bytes) = self.read_blob(&entry.digest, MAX_MANIFEST_SIZE) else {
                continue;
            };
            let Ok(index) = ImageIndex::from_json(&bytes) else {
                continue;
            };
            out.extend(index.manifests.into_iter().filter(|d| {
                d.annotation(BUILDKIT_REFERENCE_TYPE) == Some("attestation-manifest")
                    && d.annotation(BUILDKIT_REFERENCE_DIGEST) == Some(platform.as_str())
            }));
        }
        Ok(out)
    }

    /// Reads the image manifest and config `descriptor` points at.
    pub fn read_image(&self, descriptor: &Descriptor) -> Result<Image, Error> {
        let manifest_bytes = self.read_blob(&descriptor.digest, MAX_MANIFEST_SIZE)?;
        if manifest_bytes.len() as u64 != descriptor.size {
            return Err(Error::Layout {
                path: self.blob_path(&descriptor.digest),
                reason: format!(
                    "manifest is {} bytes but index.json lists {}",
                    manifest_bytes.len(),
                    descriptor.size
                ),
            });
        }
        let manifest = ImageManifest::from_json(&manifest_bytes)?;
        let config_bytes = self.read_blob(&manifest.config.digest, MAX_CONFIG_SIZE)?;
        let config = ImageConfig::from_json(&config_bytes)?;
        // The subject every referrer will carry comes from the bytes read, not from index.json.
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| descriptor.media_type.clone());
        Ok(Image {
            descriptor: Descriptor::for_bytes(&media_type, &manifest_bytes),
            manifest,
            config,
            buildkit: Vec::new(),
            index: None,
        })
    }

    /// The path of a blob. Built only from a validated digest.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest))
            .map(|m| m.is_file())
            .unwrap_or(false)
    }

    /// Reads a blob, refusing more than `max` bytes and content that does not match its digest.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        let bytes = self.read_bounded(&path, max)?;
        if Digest::of(&bytes) != *digest {
            return Err(Error::Layout {
                path,
                reason: format!("content does not match digest {digest}"),
            });
        }
        Ok(bytes)
    }

    /// Writes a blob if it is not there yet; returns its digest and whether it was written.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<(Digest, bool), Error> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok((digest, false));
        }
        self.write_atomic(&self.blob_path(&digest), bytes)?;
        Ok((digest, true))
    }

    /// Writes a planned blob if it is not there yet (streamed ones without holding them), checking
    /// that what was written has the descriptor's digest and size; returns whether it was written.
    pub fn write_planned_blob(&self, descriptor: &Descriptor, blob: &Blob) -> Result<bool, Error> {
        if self.has_blob(&descriptor.digest) {
            return Ok(false);
        }
        let path = self.blob_path(&descriptor.digest);
        cnb_local_files::write_atomic_with(&path, |file| {
            blob.write_checked(file, &descriptor.digest, descriptor.size)
        })
        .map_err(|e| match e {
            cnb_local_files::WriteError::Io(source) => Error::Io { path, source },
            other => Error::Layout {
                path,
                reason: other.to_string(),
            },
        })?;
        Ok(true)
    }

    /// Manifests listed in `index.json` whose `subject` is `subject`, with the descriptor as listed.
    pub fn referrers(&self, subject: &Digest) -> Result<Vec<(Descriptor, ImageManifest)>, Error> {
        Ok(self
            .listed_referrers(subject)?
            .into_iter()
            .filter_map(|(d, m)| m.ok().map(|m| (d, m)))
            .collect())
    }

    /// Like [`OciLayout::referrers`], but also returns, as errors, the listed artifacts (entries
    /// with an `artifactType`, as referrers are listed) whose manifest cannot be read: missing,
    /// corrupt, oversized, or not matching its listed size. A verifier must count those as
    /// failures, or deleting or corrupting a referrer would hide it. Unreadable entries without an
    /// `artifactType` (for example the missing base-image blobs of a sparse layout) are left out.
    #[allow(clippy::type_complexity)]
    pub fn listed_referrers(
        &self,
        subject: &Digest,
    ) -> Result<Vec<(Descriptor, Result<ImageManifest, String>)>, Error> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for descriptor in self.index()?.manifests {
            // Each listed digest is read once, however often `index.json` lists it.
            if descriptor.media_type != OCI_MANIFEST || !seen.insert(descriptor.digest.clone()) {
                continue;
            }
            let read = if descriptor.size > MAX_MANIFEST_SIZE {
                Err(format!(
                    "listed manifest of {} bytes exceeds the {MAX_MANIFEST_SIZE}-byte limit",
                    descriptor.size
                ))
            } else {
                self.read_blob(&descriptor.digest, MAX_MANIFEST_SIZE)
                    .and_then(|b| {
                        if b.len() as u64 != descriptor.size {
                            return Err(Error::Malformed(format!(
                                "manifest {} is {} bytes but listed as {}",
                                descriptor.digest,
                                b.len(),
                                descriptor.size
                            )));
                        }
                        ImageManifest::from_json(&b)
                    })
                    .map_err(|e| e.to_string())
            };
            match read {
                Ok(manifest) if manifest.subject.as_ref().map(|s| &s.digest) == Some(subject) => {
                    out.push((descriptor, Ok(manifest)))
                }
                Ok(_) => {}
                Err(problem) if descriptor.artifact_type.is_some() => {
                    out.push((descriptor, Err(problem)))
                }
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Stores referrers: their blobs first, then ONE `index.json` update listing every new manifest.
    /// A manifest already listed (same digest) is left alone, so storing twice adds nothing.
    pub fn store_referrers(&self, referrers: &[Referrer]) -> Result<Vec<StoreOutcome>, Error> {
        for referrer in referrers {
            for (descriptor, blob) in &referrer.blobs {
                self.write_planned_blob(descriptor, blob)?;
            }
            self.write_blob(&referrer.manifest_bytes)?;
        }
        let descriptors: Vec<Descriptor> = referrers.iter().map(|r| r.descriptor.clone()).collect();
        self.add_to_index(&descriptors)
    }

    /// Lists `descriptors` in `index.json` in ONE atomic update under the layout lock. A descriptor
    /// whose digest is already listed is left alone (and reported as [`StoreOutcome::AlreadyPresent`]);
    /// every other entry, including ones this crate does not understand, is kept as it is.
    pub fn add_to_index(&self, descriptors: &[Descriptor]) -> Result<Vec<StoreOutcome>, Error> {
        self.update_index(|manifests| {
            let mut outcomes = Vec::with_capacity(descriptors.len());
            for descriptor in descriptors {
                let digest = descriptor.digest.as_str();
                let present = manifests
                    .iter()
                    .any(|m| m.get("digest").and_then(Value::as_str) == Some(digest));
                if present {
                    outcomes.push(StoreOutcome::AlreadyPresent);
                } else {
                    manifests.push(
                        serde_json::to_value(descriptor).map_err(|e| {
                            Error::Malformed(format!("descriptor for {digest}: {e}"))
                        })?,
                    );
                    outcomes.push(StoreOutcome::Added);
                }
            }
            Ok(outcomes)
        })
    }

    /// Unlists the referrers of `subject` whose manifest digest is in `digests` from `index.json`,
    /// in one atomic update under the layout lock; returns the digests it unlisted. Entries that
    /// are not referrers of `subject` (images, tags, others' referrers) are never touched. Blobs
    /// stay (a layout has no garbage collection here).
    pub fn remove_referrers(
        &self,
        subject: &Digest,
        digests: &[Digest],
    ) -> Result<Vec<Digest>, Error> {
        self.update_index(|manifests| {
            let mut removed = Vec::new();
            manifests.retain(|entry| {
                let digest = entry.get("digest").and_then(Value::as_str);
                let is_referrer = entry["subject"]["digest"].as_str() == Some(subject.as_str())
                    || self
                        .read_referrer_subject(digest)
                        .is_some_and(|s| s == subject.as_str());
                match digests.iter().find(|d| Some(d.as_str()) == digest) {
                    Some(d) if is_referrer => {
                        removed.push(d.clone());
                        false
                    }
                    _ => true,
                }
            });
            Ok(removed)
        })
    }

    /// The `subject` digest of the manifest blob `digest`, when it is a manifest with one.
    fn read_referrer_subject(&self, digest: Option<&str>) -> Option<String> {
        let digest: Digest = digest?.parse().ok()?;
        let bytes = self.read_blob(&digest, MAX_INDEX_SIZE).ok()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        value["subject"]["digest"].as_str().map(str::to_string)
    }

    /// One read-modify-write of `index.json` under the layout lock: `change` edits the `manifests`
    /// array (raw JSON, so entries this crate does not model are kept); the file is rewritten
    /// atomically only when it changed.
    fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Vec<Value>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _lock = self.lock()?;
        let path = self.root.join("index.json");
        let bytes = self.read_bounded(&path, MAX_INDEX_SIZE)?;
        let mut index: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: path.clone(),
            reason: format!("malformed index.json: {e}"),
        })?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::Layout {
                path: path.clone(),
                reason: "index.json has no `manifests` array".into(),
            })?;
        let before = manifests.clone();
        let result = change(manifests)?;
        if *manifests != before {
            let mut out = serde_json::to_vec(&index)
                .map_err(|e| Error::Malformed(format!("index.json: {e}")))?;
            out.push(b'\n');
            self.write_atomic(&path, &out)?;
        }
        Ok(result)
    }

    /// Points `tag` (`org.opencontainers.image.ref.name`) at `descriptor`: entries carrying that tag
    /// lose it (and are dropped when they carried nothing else), and `descriptor` is listed. One
    /// atomic `index.json` update under the layout lock; every other entry is kept as it is.
    pub fn retag(&self, tag: &str, descriptor: &Descriptor) -> Result<(), Error> {
        self.update_index(|manifests| {
            manifests.retain_mut(|entry| {
                if entry["annotations"][REF_NAME].as_str() != Some(tag) {
                    return true;
                }
                if let Some(annotations) = entry["annotations"].as_object_mut() {
                    annotations.remove(REF_NAME);
                    if annotations.is_empty() {
                        return false;
                    }
                }
                true
            });
            manifests.push(serde_json::to_value(descriptor).map_err(|e| {
                Error::Malformed(format!("descriptor for {}: {e}", descriptor.digest))
            })?);
            Ok(())
        })
    }

    /// Takes an exclusive advisory lock on the layout directory for an `index.json` update.
    fn lock(&self) -> Result<File, Error> {
        let dir = File::open(&self.root).map_err(|e| Error::Io {
            path: self.root.clone(),
            source: e,
        })?;
        dir.lock().map_err(|e| Error::Io {
            path: self.root.clone(),
            source: e,
        })?;
        Ok(dir)
    }

    fn read_bounded(&self, path: &Path, max: u64) -> Result<Vec<u8>, Error> {
        read_regular_file(path, max)
    }

    /// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
    /// reader never sees a half-written file. Refuses to replace a symlink.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        cnb_local_files::write_atomic(path, bytes).map_err(|e| match e {
            cnb_local_files::WriteError::Io(source) => Error::Io {
                path: path.to_path_buf(),
                source,
            },
            other => Error::Layout {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })
    }
}

/// Reads a regular file (never a symlink, FIFO or device) of at most `max` bytes.
pub(crate) fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    cnb_local_files::read(path, max, Links::Refuse).map_err(|e| match e {
        ReadError::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        ReadError::Symlink | ReadError::NotRegular => Error::Layout {
            path: path.to_path_buf(),
            reason: "is not a regular file".into(),
        },
        ReadError::TooLarge { size, .. } => Error::TooLarge {
            path: path.to_path_buf(),
            size,
            max,
        },
        ReadError::Replaced => Error::Layout {
            path: path.to_path_buf(),
            reason: "was replaced while it was being read".into(),
        },
        other => Error::Layout {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::is_attachment_tag;

    #[test]
    fn attachment_tags_are_told_from_image_tags() {
        let hex = "a".repeat(64);
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_attachment_tag(&tag), "{tag}");
        }
        for tag in [
            "latest".to_string(),
            "1.0".to_string(),
            format!("sha256-{hex}.txt"),
            format!("sha256-{}", "A".repeat(64)),
            format!("sha256-{}.att", "a".repeat(63)),
            "sha256-".to_string(),
        ] {
            assert!(!is_attachment_tag(&tag), "{tag}");
        }
    }
}
