//! The inventory of an air-gap bundle: what `cnb-attest export` wrote into an OCI layout, so that a
//! reader of the layout (offline `verify`, `import`) can tell a complete bundle from one a copy
//! tool or a person thinned out.
//!
//! The inventory is a plain JSON file at the layout root, [`INVENTORY_FILE`], next to `index.json`
//! and `oci-layout`: not a blob and not listed in `index.json`, so no layout reader mistakes it for
//! an image or a referrer, `oci:<dir>` without a tag still names the one image, and a tar of the
//! directory carries it. It is not signed and is never trusted for anything but completeness: the
//! attestations are verified with the keys the user passes, as anywhere else.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layout::OciLayout;
use crate::manifest::REF_NAME;
use crate::{Digest, Error};

/// The file name of the inventory at the layout root.
pub const INVENTORY_FILE: &str = "cnb-attest-export.json";
/// Largest inventory read.
pub const MAX_INVENTORY_SIZE: u64 = 16 * 1024 * 1024;
/// The inventory's format version.
pub const INVENTORY_VERSION: u32 = 1;

/// What an inventory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An image index (the image itself, or a nested one).
    Index,
    /// An image manifest (the image, or a child of its index).
    Manifest,
    /// An image config blob.
    Config,
    /// An image layer blob.
    Layer,
    /// A referrer manifest (listed by the Referrers API or a `sha256-<hex>` index).
    Referrer,
    /// A config or layer blob of a referrer or of a cosign tag manifest.
    ReferrerBlob,
    /// A cosign 2 tag manifest (`sha256-<hex>.att` or `.sig`).
    CosignTag,
    /// A public key given to `export --key` (never trusted implicitly).
    PublicKey,
    /// A Sigstore trusted root given to `export --trusted-root` (never trusted implicitly).
    TrustedRoot,
}

impl Kind {
    /// The kebab-case name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Index => "index",
            Kind::Manifest => "manifest",
            Kind::Config => "config",
            Kind::Layer => "layer",
            Kind::Referrer => "referrer",
            Kind::ReferrerBlob => "referrer-blob",
            Kind::CosignTag => "cosign-tag",
            Kind::PublicKey => "public-key",
            Kind::TrustedRoot => "trusted-root",
        }
    }

    /// Whether it is a manifest or index (pushed as a manifest, not a blob).
    pub fn is_manifest(self) -> bool {
        matches!(
            self,
            Kind::Index | Kind::Manifest | Kind::Referrer | Kind::CosignTag
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One exported object: a blob of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Its digest (the blob's name in the layout).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The manifest it belongs to or refers to: a referrer's or a cosign tag's subject, a layer's
    /// or config's manifest, a child manifest's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// A referrer's artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The `org.opencontainers.image.ref.name` it is listed under in `index.json` (the image's
    /// tag, a cosign tag `sha256-<hex>.att`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_name: Option<String>,
}

/// The exported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportedImage {
    /// The image as it was named to `export`.
    pub source: String,
    /// Its tag in the layout (`org.opencontainers.image.ref.name`), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The top manifest's (or index's) digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
}

/// What `export` wrote: the image, every manifest and blob, and whether the image's layers were
/// left out (`--attestations-only`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Inventory {
    /// [`INVENTORY_VERSION`].
    pub version: u32,
    /// The image.
    pub image: ExportedImage,
    /// The image's layers were left out: importing needs the image in the destination already.
    pub attestations_only: bool,
    /// Every blob written, in the order they were written (children before their parents).
    pub entries: Vec<Entry>,
}

/// Something the inventory and the layout disagree about: an object the inventory lists that the
/// layout does not hold as listed ([`Inventory::check`]), or a referrer or cosign tag the layout
/// lists that the inventory does not ([`Inventory::not_in_inventory`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Missing {
    /// What it is.
    pub kind: Kind,
    /// Its digest.
    pub digest: Digest,
    /// What it is about (a referrer's subject), when the inventory says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// What is wrong: blob missing, wrong content, not listed in `index.json`.
    pub reason: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.digest)?;
        if let Some(subject) = &self.subject {
            write!(f, " (subject {subject})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl Inventory {
    /// Reads the inventory of `layout`; `None` when the layout has none (not an export bundle).
    pub fn read(layout: &OciLayout) -> Result<Option<Inventory>, Error> {
        let path = layout.root().join(INVENTORY_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let bytes = crate::layout::read_regular_file(&path, MAX_INVENTORY_SIZE)?;
        let inventory: Inventory = serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: path.clone(),
            reason: format!("malformed export inventory: {e}"),
        })?;
        if inventory.version != INVENTORY_VERSION {
            return Err(Error::Layout {
                path,
                reason: format!(
                    "export inventory version {} (this build reads {INVENTORY_VERSION})",
                    inventory.version
                ),
            });
        }
        Ok(Some(inventory))
    }

    /// Writes the inventory at the root of `layout` (atomically).
    pub fn write(&self, layout: &OciLayout) -> Result<(), Error> {
        let path = layout.root().join(INVENTORY_FILE);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Malformed(format!("export inventory: {e}")))?;
        bytes.push(b'\n');
        cnb_local_files::write_atomic(&path, &bytes).map_err(|e| Error::Layout {
            path,
            reason: e.to_string(),
        })
    }

    /// The entries of `kind`.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Whether `digest` is a referrer or cosign tag the inventory lists about `subject` that
    /// `index.json` (`listed`: digests and ref names) does not list. The cheap check layout
    /// readers make for the image they read: [`Inventory::check`] re-reads every blob too.
    pub fn unlisted_about(&self, subject: &Digest, listed: &BTreeSet<String>) -> Vec<Missing> {
        self.entries
            .iter()
            .filter(|e| e.subject.as_ref() == Some(subject))
            .filter_map(|e| unlisted(e, listed))
            .collect()
    }

    /// Checks `layout` against the inventory: every blob present with its digest and size (read
    /// again, streamed), every referrer listed in `index.json`, every cosign tag and the image
    /// listed under their ref names. Returns what is missing (empty: complete).
    pub fn check(&self, layout: &OciLayout) -> Result<Vec<Missing>, Error> {
        let listed = listed_in_index(layout)?;
        let mut missing = Vec::new();
        let image_listed = match &self.image.tag {
            Some(tag) => listed.contains(&format!("{}#{tag}", self.image.digest)),
            None => listed.contains(self.image.digest.as_str()),
        };
        if !image_listed {
            missing.push(Missing {
                kind: if self.image.media_type.contains("index")
                    || self.image.media_type.contains("list")
                {
                    Kind::Index
                } else {
                    Kind::Manifest
                },
                digest: self.image.digest.clone(),
                subject: None,
                reason: format!(
                    "the image is not listed in index.json{}",
                    self.image
                        .tag
                        .as_deref()
                        .map(|t| format!(" under the tag `{t}`"))
                        .unwrap_or_default()
                ),
            });
        }
        let mut seen = BTreeSet::new();
        for entry in &self.entries {
            if let Some(m) = unlisted(entry, &listed) {
                missing.push(m);
            }
            if !seen.insert(entry.digest.clone()) {
                continue;
            }
            if let Err(reason) = check_blob(layout, &entry.digest, entry.size) {
                missing.push(Missing {
                    kind: entry.kind,
                    digest: entry.digest.clone(),
                    subject: entry.subject.clone(),
                    reason,
                });
            }
        }
        Ok(missing)
    }
}

impl Inventory {
    /// The referrers and cosign tags `index.json` lists that the inventory does not (added to the
    /// layout after export, e.g. by signing `oci:<bundle>`): an entry with an `artifactType`, or
    /// whose manifest has a `subject`, whose digest the inventory does not hold; an entry under a
    /// cosign tag name (`sha256-<hex>.att`/`.sig`) that the inventory does not list under that
    /// name with that digest. Manifests are read bounded ([`crate::layout::MAX_MANIFEST_SIZE`]);
    /// one that cannot be read is judged by its listing alone.
    pub fn not_in_inventory(&self, layout: &OciLayout) -> Result<Vec<Missing>, Error> {
        let known: BTreeSet<&Digest> = self
            .entries
            .iter()
            .map(|e| &e.digest)
            .chain(std::iter::once(&self.image.digest))
            .collect();
        let mut extra = Vec::new();
        for d in layout.index()?.manifests {
            let name = d.annotation(REF_NAME);
            // The exported image under its own tag, whatever that tag looks like.
            if d.digest == self.image.digest && name == self.image.tag.as_deref() {
                continue;
            }
            if let Some(subject) = name.and_then(cosign_tag_subject) {
                let name = name.unwrap_or_default();
                let listed = self
                    .of_kind(Kind::CosignTag)
                    .any(|e| e.digest == d.digest && e.ref_name.as_deref() == Some(name));
                if !listed {
                    extra.push(Missing {
                        kind: Kind::CosignTag,
                        digest: d.digest.clone(),
                        subject: Some(subject),
                        reason: format!(
                            "listed in index.json under `{name}`, not in the inventory"
                        ),
                    });
                }
                continue;
            }
            if known.contains(&d.digest) {
                continue;
            }
            let subject = layout
                .read_blob(&d.digest, crate::layout::MAX_MANIFEST_SIZE)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .and_then(|v| v["subject"]["digest"].as_str().map(str::to_string))
                .and_then(|s| s.parse::<Digest>().ok());
            if subject.is_some() || d.artifact_type.is_some() {
                extra.push(Missing {
                    kind: Kind::Referrer,
                    digest: d.digest.clone(),
                    subject,
                    reason: "listed in index.json, not in the inventory".into(),
                });
            }
        }
        Ok(extra)
    }
}

/// The subject a cosign 2 tag name (`sha256-<hex>.att`, `.sig`) is about; `None` for any other
/// name.
pub fn cosign_tag_subject(name: &str) -> Option<Digest> {
    let (stem, suffix) = name.rsplit_once('.')?;
    if suffix != "att" && suffix != "sig" {
        return None;
    }
    Digest::sha256(stem.strip_prefix("sha256-")?).ok()
}

/// A writer that hashes what is written to it (SHA-256), for checking a blob streamed from
/// elsewhere (a tar entry) without holding it.
#[derive(Default)]
pub struct Sha256Writer {
    hasher: Sha256,
    len: u64,
}

impl Sha256Writer {
    /// The digest and length of everything written.
    pub fn finish(self) -> (Digest, u64) {
        let hex = hex::encode(self.hasher.finalize());
        let digest = Digest::sha256(&hex).expect("a SHA-256 is 64 hex digits");
        (digest, self.len)
    }
}

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `index.json` listing as a set: every digest, and `<digest>#<ref name>` for tagged entries.
pub fn listed_in_index(layout: &OciLayout) -> Result<BTreeSet<String>, Error> {
    let mut listed = BTreeSet::new();
    for d in layout.index()?.manifests {
        if let Some(name) = d.annotation(REF_NAME) {
            listed.insert(format!("{}#{name}", d.digest));
        }
        listed.insert(d.digest.to_string());
    }
    Ok(listed)
}

fn unlisted(entry: &Entry, listed: &BTreeSet<String>) -> Option<Missing> {
    let key = match (entry.kind, &entry.ref_name) {
        (Kind::CosignTag, Some(name)) => format!("{}#{name}", entry.digest),
        (Kind::Referrer, _) => entry.digest.to_string(),
        _ => return None,
    };
    (!listed.contains(&key)).then(|| Missing {
        kind: entry.kind,
        digest: entry.digest.clone(),
        subject: entry.subject.clone(),
        reason: match &entry.ref_name {
            Some(name) if entry.kind == Kind::CosignTag => {
                format!("not listed in index.json under `{name}`")
            }
            _ => "not listed in index.json".into(),
        },
    })
}

/// Re-reads a blob of the layout, streamed: present, a regular file, `size` bytes, `digest`.
pub fn check_blob(layout: &OciLayout, digest: &Digest, size: u64) -> Result<(), String> {
    let path = layout.blob_path(digest);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "its blob is missing".to_string(),
        _ => format!("{}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() != size {
        return Err(format!(
            "its blob is {} bytes, the inventory says {size}",
            meta.len()
        ));
    }
    let actual = sha256_of_file(&path, size).map_err(|e| format!("{}: {e}", path.display()))?;
    if actual != digest.as_str() {
        return Err(format!("its blob's content has digest {actual}"));
    }
    Ok(())
}

/// The `sha256:<hex>` of a file, reading at most `max` bytes (one more is an error).
pub fn sha256_of_file(path: &Path, max: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut reader = file.take(max.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            return Err(std::io::Error::other(format!("more than {max} bytes")));
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Descriptor;

    #[test]
    fn a_complete_layout_passes_and_a_thinned_one_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let (image, _) = layout.write_blob(b"{\"image\":1}").unwrap();
        let (referrer, _) = layout.write_blob(b"{\"referrer\":1}").unwrap();
        let mut tagged = Descriptor::for_bytes("application/x", b"{\"image\":1}");
        tagged.annotations = Some([(REF_NAME.to_string(), "v1".to_string())].into());
        layout.add_to_index(&[tagged]).unwrap();
        let listed = Descriptor::for_bytes("application/x", b"{\"referrer\":1}");
        layout.add_to_index(std::slice::from_ref(&listed)).unwrap();
        let inventory = Inventory {
            version: INVENTORY_VERSION,
            image: ExportedImage {
                source: "x".into(),
                tag: Some("v1".into()),
                digest: image.clone(),
                media_type: "application/x".into(),
                size: 11,
            },
            attestations_only: false,
            entries: vec![Entry {
                kind: Kind::Referrer,
                digest: referrer.clone(),
                size: 14,
                media_type: "application/x".into(),
                subject: Some(image.clone()),
                artifact_type: None,
                ref_name: None,
            }],
        };
        inventory.write(&layout).unwrap();
        let back = Inventory::read(&layout).unwrap().unwrap();
        assert_eq!(back, inventory);
        assert!(back.check(&layout).unwrap().is_empty());
        std::fs::remove_file(layout.blob_path(&referrer)).unwrap();
        let missing = back.check(&layout).unwrap();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].digest, referrer);
        assert!(missing[0].to_string().contains("blob is missing"));
        assert!(back.not_in_inventory(&layout).unwrap().is_empty());
    }

    #[test]
    fn referrers_and_cosign_tags_the_inventory_does_not_list_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let (image, _) = layout.write_blob(b"{\"image\":1}").unwrap();
        let mut tagged = Descriptor::for_bytes("application/x", b"{\"image\":1}");
        tagged.annotations = Some([(REF_NAME.to_string(), "v1".to_string())].into());
        // Added after export: a referrer with an artifactType, one known only by its subject,
        // a cosign tag.
        let typed = Descriptor {
            artifact_type: Some("application/x-sbom".into()),
            ..Descriptor::for_bytes("application/x", b"{\"typed\":1}")
        };
        let about = format!("{{\"subject\":{{\"digest\":\"{image}\"}}}}");
        let (untyped, _) = layout.write_blob(about.as_bytes()).unwrap();
        let untyped_listed = Descriptor::for_bytes("application/x", about.as_bytes());
        let mut att = Descriptor::for_bytes("application/x", b"{\"att\":1}");
        let att_name = format!("{}.att", image.fallback_tag());
        att.annotations = Some([(REF_NAME.to_string(), att_name)].into());
        // Another image (no artifactType, no subject) is not a referrer: not named.
        let (other, _) = layout.write_blob(b"{\"other\":1}").unwrap();
        let other_listed = Descriptor::for_bytes("application/x", b"{\"other\":1}");
        layout
            .add_to_index(&[
                tagged,
                typed.clone(),
                untyped_listed,
                att.clone(),
                other_listed,
            ])
            .unwrap();
        let inventory = Inventory {
            version: INVENTORY_VERSION,
            image: ExportedImage {
                source: "x".into(),
                tag: Some("v1".into()),
                digest: image.clone(),
                media_type: "application/x".into(),
                size: 11,
            },
            attestations_only: false,
            entries: Vec::new(),
        };
        let extra = inventory.not_in_inventory(&layout).unwrap();
        let named: Vec<(&Digest, Kind)> = extra.iter().map(|m| (&m.digest, m.kind)).collect();
        assert_eq!(
            named,
            vec![
                (&typed.digest, Kind::Referrer),
                (&untyped, Kind::Referrer),
                (&att.digest, Kind::CosignTag)
            ],
            "{extra:?}"
        );
        assert_eq!(extra[1].subject.as_ref(), Some(&image));
        assert_eq!(extra[2].subject.as_ref(), Some(&image));
        assert!(!extra.iter().any(|m| m.digest == other));
    }
}
