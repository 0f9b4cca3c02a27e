//! Air-gapped transfer: [`export`] an image with every referrer and the trust material to verify
//! it offline into an OCI image layout (a directory or a tar), and [`import`] such a bundle into a
//! registry, every digest kept.
//!
//! The bundle is an ordinary OCI image layout: the image (manifests, config, layers; with
//! `attestations_only` no layers) listed in `index.json` under its tag, every referrer listed as
//! the layout store lists them (with `artifactType` and annotations), cosign 2's
//! `sha256-<hex>.att`/`.sig` manifests listed under those names, public keys and a trusted root
//! as blobs, and the inventory ([`cnb_referrers::inventory`], `cnb-attest-export.json` at the
//! root) naming everything written. Layout readers (`verify oci:<bundle>`, `download`, skopeo)
//! read it as any layout; a reader of this project also compares it with the inventory, so a
//! referrer a copy dropped fails verification by name instead of going unnoticed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cnb_referrers::inventory::{self, Entry, ExportedImage, Inventory, INVENTORY_FILE};
pub use cnb_referrers::inventory::{Kind, Missing};
use cnb_referrers::layout::{OciLayout, MAX_MANIFEST_SIZE};
use cnb_referrers::manifest::{Descriptor, ImageManifest, REF_NAME};
use cnb_referrers::{Blob, Digest};
use cnb_sbom_restore::source::ImageSource;
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Image};

/// Largest public key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Largest trusted root read.
const MAX_TRUSTED_ROOT: u64 = 4 * 1024 * 1024;
/// Largest blob taken from a bundle or a tar (a layer).
const MAX_BUNDLE_BLOB: u64 = 64 * 1024 * 1024 * 1024;
/// Blobs up to this size are pushed from memory, larger ones streamed from their file.
const IN_MEMORY_BLOB: u64 = 1024 * 1024;
/// Media type of a public key in the bundle.
pub const PUBLIC_KEY_MEDIA_TYPE: &str = "application/x-pem-file";
/// Media type of a Sigstore trusted root in the bundle.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

/// What [`export`] writes.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// A directory, or a file ending in `.tar` (the same layout as a tar archive).
    pub output: PathBuf,
    /// Leave the image's layers out: the manifests and config only (the destination of an import
    /// must then hold the image already).
    pub attestations_only: bool,
    /// Public keys to put in the bundle (never trusted implicitly by a reader).
    pub keys: Vec<PathBuf>,
    /// A Sigstore trusted root to put in the bundle, for offline keyless verification.
    pub trusted_root: Option<PathBuf>,
    /// Replace what is at `output` when it is an earlier bundle (a directory holding both
    /// `oci-layout` and the inventory), or a regular file whose name ends in `.tar`. An empty
    /// directory is replaced without it; anything else is refused even with it.
    pub force: bool,
}

/// One referrer (or cosign tag manifest) exported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportedReferrer {
    /// Its manifest digest.
    pub digest: Digest,
    /// What it refers to.
    pub subject: Digest,
    /// `referrer` or `cosign-tag`.
    pub kind: Kind,
    /// Its artifact type (referrers) or tag (`sha256-<hex>.att`).
    pub what: String,
}

/// A trust file put in the bundle: where, and its fingerprint to pin it by.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrustFile {
    /// `public-key` or `trusted-root`.
    pub kind: Kind,
    /// The file given.
    pub source: PathBuf,
    /// Its path inside the bundle (`blobs/sha256/<hex>`).
    pub path: String,
    /// The SHA-256 of the file: compare it (`sha256sum`) with the one published before trusting
    /// the copy in a bundle.
    pub sha256: Digest,
}

/// What [`export`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportReport {
    /// Where the bundle is.
    pub output: PathBuf,
    /// Written as a tar archive.
    pub tar: bool,
    /// The image exported.
    pub image: ExportedImage,
    /// Layers were left out.
    pub attestations_only: bool,
    /// Objects written, per kind.
    pub written: BTreeMap<Kind, usize>,
    /// Bytes of blobs written.
    pub bytes: u64,
    /// The referrers and cosign tags exported.
    pub referrers: Vec<ExportedReferrer>,
    /// The trust files put in the bundle.
    pub trust: Vec<TrustFile>,
}

/// Opens `target` for [`export`]: an image index is exported whole, with every platform, so no
/// platform is chosen and an index of several platforms is not refused as ambiguous (as
/// [`Image::open`] refuses it). The image returned is one of the index's platforms, opened by
/// `target` as named; [`export`] reads the index again through that name.
pub async fn open_for_export(target: &str, options: &crate::OpenOptions) -> Result<Image, Error> {
    // Only the store and the name matter to `export`: one platform is opened, not every one.
    let platforms = match Image::open(target, options).await {
        Err(Error::AmbiguousPlatform { platforms, .. }) => platforms,
        opened => return opened,
    };
    let platform = platforms
        .into_iter()
        .find_map(|p| p.platform)
        .ok_or_else(|| {
            Error::BadImage(format!(
                "{target}: the image index lists no entry with a platform; name it by digest"
            ))
        })?;
    let with = crate::OpenOptions {
        platform: Some(platform),
        ..options.clone()
    };
    Image::open(target, &with).await
}

/// Writes `image` as it was named (an image reached through an index: the whole index; open a
/// multi-platform target with [`open_for_export`]), all its referrers (the Referrers API, the
/// `sha256-<hex>` index, cosign's `.att` and `.sig` tags; of an index, of every child too;
/// referrers of referrers too) and the
/// trust files into an OCI layout at `request.output`, then re-reads every blob it wrote and
/// checks the layout against the inventory it records. The layout is built beside the output
/// and moved into place whole: nothing half-written is left at `output`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), &dir.path().join("image")).unwrap();
/// use cnb_attest::bundle::{export, ExportRequest, Kind};
/// use cnb_attest::{Image, OpenOptions};
/// let target = format!("oci:{}:latest", dir.path().join("image").display());
/// let request = ExportRequest {
///     output: dir.path().join("bundle.tar"),
///     ..ExportRequest::default()
/// };
/// let report = cnb_attest::block_on(async {
///     export(&Image::open(&target, &OpenOptions::default()).await?, &request).await
/// })??;
/// assert!(report.tar && report.written[&Kind::Manifest] == 1 && report.referrers.is_empty());
/// // Refused the second time: the file exists and `force` is not set.
/// let again = cnb_attest::block_on(async {
///     export(&Image::open(&target, &OpenOptions::default()).await?, &request).await
/// })?;
/// assert!(matches!(again, Err(cnb_attest::Error::InvalidRequest(_))));
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn export(image: &Image, request: &ExportRequest) -> Result<ExportReport, Error> {
    let output = &request.output;
    let tar = output.extension().is_some_and(|e| e == "tar");
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "-o {}: not a file or directory name",
                output.display()
            ))
        })?
        .to_string();
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::InvalidRequest(format!(
            "-o {}: the directory {} does not exist",
            output.display(),
            parent.display()
        )));
    }
    refuse_overwrite(output, request.force)?;
    if let ImageSource::Layout { layout, .. } = &image.source {
        refuse_overlap(output, &parent, &name, layout.root())?;
    }
    // The trust files are checked before anything is read: a file that is not a key, or a
    // trusted root that is not JSON, is refused here, not at verify time.
    crate::keys::read_public_keys(&request.keys)?;
    if let Some(root) = &request.trusted_root {
        serde_json::from_slice::<Value>(&read_file(root, MAX_TRUSTED_ROOT)?).map_err(|e| {
            Error::InvalidRequest(format!("--trusted-root {}: not JSON: {e}", root.display()))
        })?;
    }
    // Built in a private directory beside the output (same file system: moved into place by a
    // rename), removed with everything in it on any error.
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.export-"))
        .tempdir_in(&parent)
        .map_err(|e| {
            Error::InvalidRequest(format!(
                "-o {}: cannot create a directory beside it: {e}",
                output.display()
            ))
        })?;
    let staging = work.path().join("layout");
    // Errors about the staging directory name `-o`, where the bundle was to go.
    let at_output = |e: Error| -> Error {
        let staged = staging.display().to_string();
        let shown = output.display().to_string();
        match e {
            Error::BadImage(m) => Error::BadImage(m.replace(&staged, &shown)),
            Error::Io { path, source } if path.starts_with(&staging) => Error::Io {
                path: output.clone(),
                source,
            },
            other => other,
        }
    };
    let out = OciLayout::create(&staging)
        .map_err(layout_error)
        .map_err(at_output)?;
    let mut exporter = Exporter {
        out: &out,
        entries: Vec::new(),
        attestations_only: request.attestations_only,
        tar,
        referrers: Vec::new(),
        listed: Vec::new(),
        bytes: 0,
    };
    let exported = async {
        Ok::<_, Error>(match &image.source {
            ImageSource::Layout { layout, .. } => {
                let selector = image.layout().and_then(|l| l.selector.clone());
                let top = find_in_layout(layout, image.name(), selector.as_deref())?;
                let tag = selector
                    .filter(|s| !s.starts_with("sha256:"))
                    .or_else(|| top.annotation(REF_NAME).map(str::to_string));
                exporter
                    .walk(&Source::Layout(layout), image.name(), top, tag)
                    .await?
            }
            ImageSource::Registry {
                client, reference, ..
            } => {
                let repo = &reference.repository;
                let fetched = client
                    .get_manifest(repo, reference.reference())
                    .await?
                    .ok_or_else(|| {
                        Error::ImageNotFound(format!("{}: no such image", image.name()))
                    })?;
                let media_type = media_type_of(&fetched.bytes, &fetched.media_type);
                let top = Descriptor::for_bytes(&media_type, &fetched.bytes);
                // A reference by digest keeps no tag (the parser's `latest` is not the image's).
                let tag = reference
                    .digest
                    .is_none()
                    .then(|| reference.tag.clone())
                    .flatten();
                exporter
                    .walk(&Source::Registry(client, repo), image.name(), top, tag)
                    .await?
            }
            ImageSource::Archive { .. } => {
                return Err(Error::InvalidRequest(format!(
                    "{} is a saved daemon image: it has no manifest and no referrers to export",
                    image.name()
                )))
            }
        })
    }
    .await
    .map_err(at_output)?;
    let mut trust = Vec::new();
    // The trust files, index.json, the inventory and the check, in the staging directory.
    let inventory = (|| -> Result<Inventory, Error> {
        for key in &request.keys {
            trust.push(exporter.trust_file(
                key,
                Kind::PublicKey,
                MAX_KEY_FILE,
                PUBLIC_KEY_MEDIA_TYPE,
            )?);
        }
        if let Some(root) = &request.trusted_root {
            let file = exporter.trust_file(
                root,
                Kind::TrustedRoot,
                MAX_TRUSTED_ROOT,
                TRUSTED_ROOT_MEDIA_TYPE,
            )?;
            trust.push(file);
        }
        // index.json: the image under its tag, then every referrer and cosign tag in one update.
        let mut top = Descriptor {
            media_type: exported.media_type.clone(),
            digest: exported.digest.clone(),
            size: exported.size,
            artifact_type: None,
            annotations: None,
            platform: None,
        };
        if let Some(tag) = &exported.tag {
            top.annotations = Some([(REF_NAME.to_string(), tag.clone())].into());
        }
        out.add_to_index(std::slice::from_ref(&top))
            .map_err(layout_error)?;
        out.add_to_index(&exporter.listed).map_err(layout_error)?;
        let inventory = Inventory {
            version: inventory::INVENTORY_VERSION,
            image: exported.clone(),
            attestations_only: request.attestations_only,
            entries: exporter.entries.clone(),
        };
        inventory.write(&out).map_err(layout_error)?;
        // The check: every blob read again (digest and size), every referrer and tag listed.
        let reopened = OciLayout::open(&staging).map_err(layout_error)?;
        let missing = inventory.check(&reopened).map_err(layout_error)?;
        if !missing.is_empty() {
            return Err(Error::BundleIncomplete {
                bundle: output.display().to_string(),
                missing,
            });
        }
        // Still readable as this project reads referrers: every listed one.
        for subject in inventory
            .of_kind(Kind::Referrer)
            .filter_map(|e| e.subject.clone())
        {
            for (descriptor, manifest) in
                reopened.listed_referrers(&subject).map_err(layout_error)?
            {
                if let Err(problem) = manifest {
                    return Err(Error::BundleIncomplete {
                        bundle: output.display().to_string(),
                        missing: vec![Missing {
                            kind: Kind::Referrer,
                            digest: descriptor.digest,
                            subject: Some(subject.clone()),
                            reason: problem,
                        }],
                    });
                }
            }
        }
        Ok(inventory)
    })()
    .map_err(at_output)?;
    if tar {
        // Inside the private directory: removed with it on any error.
        let tmp = work.path().join("bundle.tar");
        write_tar(&staging, &tmp, output)?;
        check_tar(&tmp, &staging, output)?;
        replace(output, &tmp, &parent, request.force)?;
    } else {
        replace(output, &staging, &parent, request.force)?;
    }
    drop(work);
    let mut written = BTreeMap::new();
    for entry in &inventory.entries {
        *written.entry(entry.kind).or_insert(0) += 1;
    }
    Ok(ExportReport {
        output: output.clone(),
        tar,
        image: exported,
        attestations_only: request.attestations_only,
        written,
        bytes: exporter.bytes,
        referrers: exporter.referrers,
        trust,
    })
}

fn layout_error(e: cnb_referrers::Error) -> Error {
    Error::BadImage(e.to_string())
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses to replace what is at `output`: anything without `force` but an empty directory;
/// with `force`, anything but an earlier bundle (a directory holding both `oci-layout` and the
/// inventory) or a regular file whose name ends in `.tar`. A symbolic link is always refused.
fn refuse_overwrite(output: &Path, force: bool) -> Result<(), Error> {
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    let shown = output.display();
    if meta.file_type().is_symlink() {
        return Err(Error::InvalidRequest(format!(
            "-o {shown}: is a symbolic link; refusing to replace it"
        )));
    }
    if meta.is_dir() {
        let empty = std::fs::read_dir(output)
            .map_err(io_error(output))?
            .next()
            .is_none();
        if empty {
            return Ok(());
        }
        if !force {
            return Err(Error::InvalidRequest(format!(
                "-o {shown}: a non-empty directory already exists; pass --force to replace an earlier bundle"
            )));
        }
        let is_file =
            |name: &str| std::fs::symlink_metadata(output.join(name)).is_ok_and(|m| m.is_file());
        if is_file("oci-layout") && is_file(INVENTORY_FILE) {
            return Ok(());
        }
        return Err(Error::InvalidRequest(format!(
            "-o {shown}: a non-empty directory that is not a bundle (no oci-layout and {INVENTORY_FILE}): refusing to replace it, even with --force"
        )));
    }
    if !force {
        return Err(Error::InvalidRequest(format!(
            "-o {shown}: a file already exists; pass --force to replace it"
        )));
    }
    if meta.is_file() && output.extension().is_some_and(|e| e == "tar") {
        return Ok(());
    }
    Err(Error::InvalidRequest(format!(
        "-o {shown}: exists and is not a regular file ending in .tar: refusing to replace it, even with --force"
    )))
}

/// Refuses an output that is the source layout, inside it, or holds it (canonical paths): the
/// bundle would be written into what is read, or replace it.
fn refuse_overlap(output: &Path, parent: &Path, name: &str, source: &Path) -> Result<(), Error> {
    let canonical = |p: &Path| std::fs::canonicalize(p).map_err(io_error(p));
    let source = canonical(source)?;
    let out = match std::fs::canonicalize(output) {
        Ok(p) => p,
        Err(_) => canonical(parent)?.join(name),
    };
    if out == source || out.starts_with(&source) || source.starts_with(&out) {
        return Err(Error::InvalidRequest(format!(
            "-o {}: is, holds or lies inside the layout exported ({}): write the bundle elsewhere",
            output.display(),
            source.display()
        )));
    }
    Ok(())
}

/// Moves `built` (a directory or file) to `output`, checking again what is there now (the export
/// may have taken a while: what appeared since is judged as at the start). A tar file replaces
/// an earlier one in one rename. An earlier bundle directory is first renamed aside (into a
/// private directory beside it), the new one renamed in, then the old one deleted; if the new one
/// cannot be moved in, the old one is put back, and if even that fails it is kept where it was
/// moved and the error says where.
fn replace(output: &Path, built: &Path, parent: &Path, force: bool) -> Result<(), Error> {
    let io = io_error(output);
    refuse_overwrite(output, force)?;
    let existing = std::fs::symlink_metadata(output).ok();
    if existing.is_none() || (built.is_file() && existing.is_some_and(|m| m.is_file())) {
        std::fs::rename(built, output).map_err(&io)?;
        cnb_local_files::sync_dir(parent);
        return Ok(());
    }
    let aside = tempfile::Builder::new()
        .prefix(".cnb-attest-replaced-")
        .tempdir_in(parent)
        .map_err(&io)?;
    let old = aside.path().join("old");
    std::fs::rename(output, &old).map_err(&io)?;
    if let Err(e) = std::fs::rename(built, output) {
        if std::fs::rename(&old, output).is_err() {
            let kept = aside.keep();
            return Err(Error::InvalidRequest(format!(
                "-o {}: the new bundle could not be moved in ({e}) and the earlier one could not be \
                 put back: it is at {}",
                output.display(),
                kept.join("old").display()
            )));
        }
        return Err(io(e));
    }
    cnb_local_files::sync_dir(parent);
    // The old bundle goes with the private directory.
    drop(aside);
    Ok(())
}

/// Where the image is read from.
enum Source<'a> {
    Layout(&'a OciLayout),
    Registry(&'a cnb_registry::Client, &'a cnb_registry::Repository),
}

impl Source<'_> {
    /// A manifest by digest: its exact bytes (digest-checked) and media type.
    async fn manifest(&self, descriptor: &Descriptor) -> Result<(Vec<u8>, String), Error> {
        let bytes = match self {
            Source::Layout(layout) => layout
                .read_blob(&descriptor.digest, MAX_MANIFEST_SIZE)
                .map_err(layout_error)?,
            Source::Registry(client, repo) => {
                client
                    .get_manifest(repo, descriptor.digest.as_str())
                    .await?
                    .ok_or_else(|| {
                        Error::BadImage(format!(
                            "{repo}@{}: listed, but the registry does not have it",
                            descriptor.digest
                        ))
                    })?
                    .bytes
            }
        };
        if Digest::of(&bytes) != descriptor.digest {
            return Err(Error::BadImage(format!(
                "manifest {} does not match its digest",
                descriptor.digest
            )));
        }
        let media_type = media_type_of(&bytes, &descriptor.media_type);
        Ok((bytes, media_type))
    }

    /// A manifest by tag (`None`: absent).
    async fn tag(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>, Error> {
        match self {
            Source::Layout(layout) => {
                let index = layout.index().map_err(layout_error)?;
                let Some(entry) = index
                    .manifests
                    .iter()
                    .find(|d| d.annotation(REF_NAME) == Some(tag))
                else {
                    return Ok(None);
                };
                self.manifest(entry).await.map(Some)
            }
            Source::Registry(client, repo) => Ok(client.get_manifest(repo, tag).await?.map(|f| {
                let media_type = media_type_of(&f.bytes, &f.media_type);
                (f.bytes, media_type)
            })),
        }
    }

    /// Every referrer of `subject` as listed.
    async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>, Error> {
        match self {
            Source::Layout(layout) => {
                let mut out = Vec::new();
                for (descriptor, manifest) in
                    layout.listed_referrers(subject).map_err(layout_error)?
                {
                    if let Err(problem) = manifest {
                        return Err(Error::BadImage(format!(
                            "{}: referrer {} of {subject} is listed but cannot be read: {problem}",
                            layout.root().display(),
                            descriptor.digest
                        )));
                    }
                    out.push(descriptor);
                }
                Ok(out)
            }
            Source::Registry(client, repo) => {
                Ok(cnb_registry::copy::listed_referrers(client, repo, subject).await?)
            }
        }
    }

    /// Copies the blob `descriptor` names into `out` (streamed, digest- and size-checked).
    async fn blob(&self, descriptor: &Descriptor, out: &OciLayout) -> Result<(), Error> {
        if out.has_blob(&descriptor.digest) {
            return Ok(());
        }
        match self {
            Source::Layout(layout) => {
                let blob = file_blob(layout, &descriptor.digest, descriptor.size);
                out.write_planned_blob(descriptor, &blob)
                    .map_err(layout_error)?;
                Ok(())
            }
            Source::Registry(client, repo) => Ok(cnb_registry::copy::pull_blob(
                client,
                repo,
                descriptor,
                &out.blob_path(&descriptor.digest),
            )
            .await?),
        }
    }
}

/// The media type a manifest declares, else the one it was listed or served as.
fn media_type_of(bytes: &[u8], listed: &str) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| listed.to_string())
}

/// The image `selector` names in a layout's `index.json` ([`OciLayout::named`]): exactly one.
fn find_in_layout(
    layout: &OciLayout,
    name: &str,
    selector: Option<&str>,
) -> Result<Descriptor, Error> {
    let index = layout.index().map_err(layout_error)?;
    let found = layout.named(&index, selector);
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::ImageNotFound(format!(
            "{name}: no such image in the layout"
        ))),
        many => Err(Error::InvalidRequest(format!(
            "{name}: {} images match; name one with :<tag> or @sha256:<digest>",
            many.len()
        ))),
    }
}

/// A layout blob read again from its file each time it is needed (checked by whoever stores it).
#[derive(Debug)]
struct FileBlob {
    path: PathBuf,
    len: u64,
}

impl cnb_referrers::blob::StreamedBlob for FileBlob {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(&self.path)?;
        if !meta.is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file",
                self.path.display()
            )));
        }
        let file = std::fs::File::open(&self.path)?;
        // One byte more than planned, so that a longer file fails the size check.
        std::io::copy(&mut file.take(self.len.saturating_add(1)), out)?;
        Ok(())
    }
}

fn file_blob(layout: &OciLayout, digest: &Digest, size: u64) -> Blob {
    Blob::Stream(Arc::new(FileBlob {
        path: layout.blob_path(digest),
        len: size,
    }))
}

/// The export in progress.
struct Exporter<'a> {
    out: &'a OciLayout,
    entries: Vec<Entry>,
    attestations_only: bool,
    /// Written as a tar: every blob must fit a ustar entry.
    tar: bool,
    referrers: Vec<ExportedReferrer>,
    /// Descriptors to list in `index.json` (referrers, cosign tags).
    listed: Vec<Descriptor>,
    bytes: u64,
}

impl Exporter<'_> {
    /// Refuses, before it is read, a blob too large for a tar entry when writing a tar.
    fn fits(&self, name: &str, blob: &Descriptor) -> Result<(), Error> {
        let max = cnb_sbom_restore::tar_write::MAX_ENTRY_SIZE;
        if self.tar && blob.size > max {
            return Err(Error::InvalidRequest(format!(
                "{name}: blob {} is {} bytes, over the {max} bytes a tar entry holds: export to a directory bundle instead (an -o not ending in .tar)",
                blob.digest, blob.size
            )));
        }
        Ok(())
    }

    fn record(&mut self, entry: Entry) {
        if !self
            .entries
            .iter()
            .any(|e| e.digest == entry.digest && e.kind == entry.kind)
        {
            self.bytes += entry.size;
            self.entries.push(entry);
        }
    }

    fn entry(kind: Kind, d: &Descriptor, subject: Option<&Digest>) -> Entry {
        Entry {
            kind,
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
            subject: subject.cloned(),
            artifact_type: None,
            ref_name: None,
        }
    }

    /// The image graph (an index, its children, their configs and layers), then every referrer
    /// and cosign tag of each manifest met (and of each referrer).
    async fn walk(
        &mut self,
        source: &Source<'_>,
        name: &str,
        top: Descriptor,
        tag: Option<String>,
    ) -> Result<ExportedImage, Error> {
        let mut subjects = Vec::new();
        let mut queue: VecDeque<(Descriptor, Option<Digest>, bool)> = VecDeque::new();
        queue.push_back((top.bare(), None, false));
        let mut top_media_type = top.media_type.clone();
        let mut first = true;
        while let Some((descriptor, parent, attestation)) = queue.pop_front() {
            if subjects.len() > cnb_sbom_restore::inspect::MAX_REFERRERS {
                return Err(Error::BadImage(format!(
                    "{name}: more than {} manifests",
                    cnb_sbom_restore::inspect::MAX_REFERRERS
                )));
            }
            let (bytes, media_type) = source.manifest(&descriptor).await?;
            if first {
                top_media_type = media_type.clone();
                first = false;
            }
            self.out.write_blob(&bytes).map_err(layout_error)?;
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::BadImage(format!("{name}: manifest {}: {e}", descriptor.digest))
            })?;
            let described = Descriptor {
                media_type: media_type.clone(),
                ..descriptor.bare()
            };
            if let Some(children) = value.get("manifests") {
                let children: Vec<Descriptor> =
                    serde_json::from_value(children.clone()).map_err(|e| {
                        Error::BadImage(format!("{name}: index {}: {e}", descriptor.digest))
                    })?;
                self.record(Self::entry(Kind::Index, &described, parent.as_ref()));
                for child in children {
                    let buildkit = child.annotation(cnb_referrers::layout::BUILDKIT_REFERENCE_TYPE)
                        == Some("attestation-manifest");
                    queue.push_back((child, Some(descriptor.digest.clone()), buildkit));
                }
            } else {
                let manifest: ImageManifest = serde_json::from_value(value).map_err(|e| {
                    Error::BadImage(format!("{name}: manifest {}: {e}", descriptor.digest))
                })?;
                self.fits(name, &manifest.config)?;
                source.blob(&manifest.config, self.out).await?;
                self.record(Self::entry(
                    Kind::Config,
                    &manifest.config,
                    Some(&descriptor.digest),
                ));
                if !self.attestations_only || attestation {
                    for layer in &manifest.layers {
                        self.fits(name, layer)?;
                        source.blob(layer, self.out).await?;
                        self.record(Self::entry(Kind::Layer, layer, Some(&descriptor.digest)));
                    }
                }
                self.record(Self::entry(Kind::Manifest, &described, parent.as_ref()));
            }
            subjects.push(descriptor.digest.clone());
        }
        // Referrers, breadth first: of every manifest above, then of every referrer found.
        let mut pending: VecDeque<Digest> = subjects.into_iter().collect();
        let mut done = BTreeSet::new();
        while let Some(subject) = pending.pop_front() {
            if !done.insert(subject.clone()) {
                continue;
            }
            if self.referrers.len() > cnb_sbom_restore::inspect::MAX_REFERRERS {
                return Err(Error::BadImage(format!(
                    "{name}: more than {} referrers",
                    cnb_sbom_restore::inspect::MAX_REFERRERS
                )));
            }
            for listed in source.referrers(&subject).await? {
                if self
                    .entries
                    .iter()
                    .any(|e| e.digest == listed.digest && e.kind == Kind::Referrer)
                {
                    continue;
                }
                let (bytes, media_type) = source.manifest(&listed).await?;
                let manifest = ImageManifest::from_json(&bytes).map_err(|e| {
                    Error::BadImage(format!("{name}: referrer {}: {e}", listed.digest))
                })?;
                // A listing entry whose manifest is about another subject is not this one's.
                if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject) {
                    continue;
                }
                self.out.write_blob(&bytes).map_err(layout_error)?;
                for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                    referrer_blob_within_limit(name, blob)?;
                    source.blob(blob, self.out).await?;
                    self.record(Self::entry(Kind::ReferrerBlob, blob, Some(&listed.digest)));
                }
                let artifact_type = manifest.effective_artifact_type().to_string();
                let descriptor = Descriptor {
                    media_type: media_type.clone(),
                    digest: listed.digest.clone(),
                    size: bytes.len() as u64,
                    artifact_type: Some(artifact_type.clone()),
                    annotations: manifest.annotations.clone().or(listed.annotations.clone()),
                    platform: None,
                };
                self.record(Entry {
                    artifact_type: Some(artifact_type.clone()),
                    ..Self::entry(Kind::Referrer, &descriptor, Some(&subject))
                });
                self.listed.push(descriptor);
                self.referrers.push(ExportedReferrer {
                    digest: listed.digest.clone(),
                    subject: subject.clone(),
                    kind: Kind::Referrer,
                    what: artifact_type,
                });
                pending.push_back(listed.digest.clone());
            }
            for suffix in ["att", "sig"] {
                let tag = format!("{}.{suffix}", subject.fallback_tag());
                let Some((bytes, media_type)) = source.tag(&tag).await? else {
                    continue;
                };
                let manifest = ImageManifest::from_json(&bytes)
                    .map_err(|e| Error::BadImage(format!("{name}: {tag}: {e}")))?;
                let (digest, _) = self.out.write_blob(&bytes).map_err(layout_error)?;
                for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                    referrer_blob_within_limit(name, blob)?;
                    source.blob(blob, self.out).await?;
                    self.record(Self::entry(Kind::ReferrerBlob, blob, Some(&digest)));
                }
                let descriptor = Descriptor {
                    media_type,
                    digest: digest.clone(),
                    size: bytes.len() as u64,
                    artifact_type: None,
                    annotations: Some([(REF_NAME.to_string(), tag.clone())].into()),
                    platform: None,
                };
                self.record(Entry {
                    ref_name: Some(tag.clone()),
                    ..Self::entry(Kind::CosignTag, &descriptor, Some(&subject))
                });
                self.listed.push(descriptor);
                self.referrers.push(ExportedReferrer {
                    digest,
                    subject: subject.clone(),
                    kind: Kind::CosignTag,
                    what: tag,
                });
            }
        }
        let digest = top.digest.clone();
        let size = top.size;
        Ok(ExportedImage {
            source: name.to_string(),
            tag,
            digest,
            media_type: top_media_type,
            size,
        })
    }

    /// Puts a trust file (a public key, a trusted root) in the bundle as a blob.
    fn trust_file(
        &mut self,
        path: &Path,
        kind: Kind,
        max: u64,
        media_type: &str,
    ) -> Result<TrustFile, Error> {
        let bytes = read_file(path, max)?;
        let (digest, _) = self.out.write_blob(&bytes).map_err(layout_error)?;
        let descriptor = Descriptor::for_bytes(media_type, &bytes);
        self.record(Self::entry(kind, &descriptor, None));
        Ok(TrustFile {
            kind,
            source: path.to_path_buf(),
            path: format!("blobs/sha256/{}", digest.hex()),
            sha256: digest,
        })
    }
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    cnb_local_files::read(path, max, cnb_local_files::Links::Follow)
        .map_err(|e| Error::InvalidRequest(format!("{}: {e}", path.display())))
}

/// A referrer's (or cosign tag's) blob is an attestation, a signature or another small artifact:
/// one over the largest attestation blob this project reads is refused before it is downloaded.
fn referrer_blob_within_limit(name: &str, blob: &Descriptor) -> Result<(), Error> {
    let max = cnb_sbom_restore::inspect::MAX_BLOB;
    if blob.size > max {
        return Err(Error::BadImage(format!(
            "{name}: a referrer names blob {} of {} bytes, over the {max}-byte limit",
            blob.digest, blob.size
        )));
    }
    Ok(())
}

/// Writes the layout at `dir` as a deterministic ustar archive at `path`: `oci-layout`,
/// `index.json`, the inventory, then `blobs/sha256/` and its blobs in name order. Errors name
/// `output`, where the archive is to go.
fn write_tar(dir: &Path, path: &Path, output: &Path) -> Result<(), Error> {
    use cnb_sbom_restore::tar_write::TarWriter;
    let io = io_error(output);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(&io)?;
    let mut tar = TarWriter::new(std::io::BufWriter::new(file));
    for name in ["oci-layout", "index.json", INVENTORY_FILE] {
        let bytes = read_file(&dir.join(name), inventory::MAX_INVENTORY_SIZE)?;
        tar.file(name, bytes.len() as u64, &mut &bytes[..])
            .map_err(&io)?;
    }
    tar.directory("blobs/").map_err(&io)?;
    tar.directory("blobs/sha256/").map_err(&io)?;
    for name in blob_names(dir)? {
        let source = dir.join("blobs").join("sha256").join(&name);
        let mut file = std::fs::File::open(&source).map_err(&io)?;
        let size = file.metadata().map_err(&io)?.len();
        tar.file(&format!("blobs/sha256/{name}"), size, &mut file)
            .map_err(&io)?;
    }
    let file = tar.finish().map_err(&io)?;
    let file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(&io)
}

/// The blob file names (`<hex>`) of the layout at `dir`, sorted.
fn blob_names(dir: &Path) -> Result<Vec<String>, Error> {
    let blobs = dir.join("blobs").join("sha256");
    let mut names: Vec<String> = std::fs::read_dir(&blobs)
        .map_err(io_error(&blobs))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| Digest::sha256(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the finished archive at `path` back through the project's tar reader: `oci-layout`,
/// `index.json` and the inventory present, every `blobs/sha256/<hex>` entry hashing to its name,
/// and exactly the blobs of the layout at `dir`, each once.
fn check_tar(path: &Path, dir: &Path, output: &Path) -> Result<(), Error> {
    use cnb_sbom_restore::tar::{EntryKind, TarReader};
    let bad = |reason: String| {
        Error::BadImage(format!(
            "-o {}: the archive written does not read back: {reason}",
            output.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(io_error(output))?;
    let mut reader = TarReader::new_seekable(std::io::BufReader::new(file));
    let mut blobs = Vec::new();
    let mut files = BTreeSet::new();
    while let Some(entry) = reader.next_entry().map_err(|e| bad(e.to_string()))? {
        if entry.kind != EntryKind::File {
            continue;
        }
        if let Some(hex) = entry.path.strip_prefix("blobs/sha256/") {
            let mut hasher = inventory::Sha256Writer::default();
            reader
                .copy_body(&mut hasher, MAX_BUNDLE_BLOB)
                .map_err(|e| bad(format!("`{}`: {e}", entry.path)))?;
            let (digest, _) = hasher.finish();
            if digest.hex() != hex {
                return Err(bad(format!("`{}` has digest {digest}", entry.path)));
            }
            blobs.push(hex.to_string());
        } else {
            files.insert(entry.path.clone());
        }
    }
    for name in ["oci-layout", "index.json", INVENTORY_FILE] {
        if !files.contains(name) {
            return Err(bad(format!("`{name}` is missing")));
        }
    }
    if blobs != blob_names(dir)? {
        return Err(bad(
            "its blobs are not the layout's, each once in name order".into(),
        ));
    }
    Ok(())
}

/// What [`import`] pushes.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The bundle: a layout directory, or a tar of one.
    pub bundle: PathBuf,
    /// `registry/repository[:tag]`. A tag named here is moved to the image; without one, the
    /// bundle's tag is created but never moved off another manifest (an `attestations_only`
    /// bundle sets none): see [`import`].
    pub destination: String,
    /// How to reach the registry.
    pub registry: crate::registry::RegistryOptions,
}

/// What [`import`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImportReport {
    /// The destination repository.
    pub destination: String,
    /// The image (its digest, unchanged).
    pub image: Digest,
    /// The tag the image was to be given, if any: the destination's tag when it names one, else
    /// the bundle's (none for a bundle exported with `attestations_only`).
    pub tag: Option<String>,
    /// Whether the tag was moved or created (false: it named the image already, or see
    /// `tag_left`).
    pub tag_moved: bool,
    /// The manifest the bundle's tag names in the destination, left as it was: a tag that names
    /// another manifest is moved only when the destination names the tag.
    pub tag_left: Option<Digest>,
    /// Objects pushed, per kind.
    pub pushed: BTreeMap<Kind, usize>,
    /// Objects the destination had already, per kind.
    pub already_present: BTreeMap<Kind, usize>,
    /// Subjects whose referrers the registry indexes itself (it answered `OCI-Subject`).
    pub referrers_api: usize,
    /// Writes of `sha256-<hex>` indexes (at most one update per subject).
    pub index_writes: u32,
    /// cosign tags that held other entries and were merged (their digest changes).
    pub merged_tags: Vec<String>,
    /// Referrers pushed that readers do not find (neither the API nor the index lists them).
    pub not_discoverable: Vec<Digest>,
    /// Registry requests made.
    pub requests: u64,
}

impl ImportReport {
    /// Objects pushed in all.
    pub fn pushed_total(&self) -> usize {
        self.pushed.values().sum::<usize>() + self.merged_tags.len()
    }

    /// Objects already present in all.
    pub fn already_present_total(&self) -> usize {
        self.already_present.values().sum()
    }
}

/// Pushes a bundle [`export`] wrote into `request.destination`, keeping every digest.
///
/// It first checks the bundle, and pushes nothing from one that fails: against its inventory
/// ([`Error::BundleIncomplete`] names what is missing); for referrers and cosign tags `index.json`
/// lists that the inventory does not ([`Error::BundleUnlisted`] names them: they would be left
/// behind); for an image entry that is not a manifest or index, for cosign tag entries whose
/// name is not `sha256-<hex>.att`/`.sig` of their subject, and for referrers whose manifest is
/// about another subject than the inventory gives ([`Error::BadImage`]). Then it pushes
/// the image's blobs (those the registry has are skipped) and its manifests (children before the
/// index); then each subject's referrers through [`cnb_registry::attach()`] (the Referrers API
/// where the registry answers `OCI-Subject`, else one merged update of the `sha256-<hex>` index
/// per subject; the descriptors written are built from the manifests' checked bytes); then cosign
/// tags as they were (merged with a different tag already there); the image's tag last, so that a
/// failed import leaves no tag on an image without its attestations.
///
/// The tag: the destination's when it names one (moved whatever it named); else the bundle's,
/// created or left where it is when it names the image, never moved off another manifest
/// ([`ImportReport::tag_left`]); none for a bundle exported with `attestations_only` unless the
/// destination names one. Importing again pushes nothing. A bundle exported with
/// `attestations_only` needs the image in the destination already ([`Error::ImageNotFound`]
/// names the missing manifest's digest).
pub async fn import(request: &ImportRequest) -> Result<ImportReport, Error> {
    let (layout, _extracted) = open_bundle(&request.bundle)?;
    let bundle = request.bundle.display().to_string();
    let inventory = Inventory::read(&layout)
        .map_err(layout_error)?
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{bundle}: no {INVENTORY_FILE}: not a bundle `cnb-attest export` wrote"
            ))
        })?;
    let missing = inventory.check(&layout).map_err(layout_error)?;
    if !missing.is_empty() {
        return Err(Error::BundleIncomplete { bundle, missing });
    }
    let unlisted = inventory.not_in_inventory(&layout).map_err(layout_error)?;
    if !unlisted.is_empty() {
        return Err(Error::BundleUnlisted { bundle, unlisted });
    }
    // The image: one of the inventory's manifests or indexes, and a manifest or index by its bytes.
    if !inventory.entries.iter().any(|e| {
        e.digest == inventory.image.digest && matches!(e.kind, Kind::Manifest | Kind::Index)
    }) {
        return Err(Error::BadImage(format!(
            "{bundle}: the inventory's image {} is not one of its manifests or indexes",
            inventory.image.digest
        )));
    }
    let image_bytes = read_manifest(&layout, &inventory.image.digest, &bundle)?;
    let image_media_type = media_type_of(&image_bytes, &inventory.image.media_type);
    if !image_media_type.contains("manifest") && !image_media_type.contains("index") {
        return Err(Error::BadImage(format!(
            "{bundle}: the image {} is a {image_media_type}, not a manifest or index",
            inventory.image.digest
        )));
    }
    // cosign tags: the name is the subject's `sha256-<hex>.att` or `.sig`, nothing else, and the
    // subject is something the bundle exported (the image, a child, a referrer).
    let exported: BTreeSet<&Digest> = inventory
        .entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::Manifest | Kind::Index | Kind::Referrer))
        .map(|e| &e.digest)
        .chain(std::iter::once(&inventory.image.digest))
        .collect();
    for entry in inventory.of_kind(Kind::CosignTag) {
        let tied = match (&entry.ref_name, &entry.subject) {
            (Some(name), Some(subject)) => {
                exported.contains(subject)
                    && ["att", "sig"]
                        .iter()
                        .any(|suffix| *name == format!("{}.{suffix}", subject.fallback_tag()))
            }
            _ => false,
        };
        let bytes = read_manifest(&layout, &entry.digest, &bundle)?;
        ImageManifest::from_json(&bytes)
            .map_err(|e| Error::BadImage(format!("{bundle}: cosign tag {}: {e}", entry.digest)))?;
        if !tied {
            return Err(Error::BadImage(format!(
                "{bundle}: cosign tag {} is listed as `{}` about {}: not that subject's sha256-<hex>.att or .sig tag",
                entry.digest,
                entry.ref_name.as_deref().unwrap_or("(no name)"),
                entry
                    .subject
                    .as_ref()
                    .map(Digest::as_str)
                    .unwrap_or("(no subject)")
            )));
        }
    }
    let destination = cnb_registry::ImageRef::parse(&request.destination)
        .map_err(|e| Error::InvalidRequest(format!("{}: {e}", request.destination)))?;
    if destination.digest.is_some() {
        return Err(Error::InvalidRequest(format!(
            "{}: name a repository (and a tag), not a digest: digests are kept",
            request.destination
        )));
    }
    let repo = &destination.repository;
    // The parser defaults a missing tag to `latest`; without one here, the bundle's tag is kept
    // (none for an attestations-only bundle: the destination's tags are its own).
    let explicit_tag = request
        .destination
        .split('@')
        .next()
        .and_then(|rest| rest.rsplit('/').next())
        .is_some_and(|last| last.contains(':'));
    let tag = if explicit_tag {
        destination.tag.clone()
    } else if inventory.attestations_only {
        None
    } else {
        inventory.image.tag.clone()
    };
    let client = request.registry.client()?;
    let mut report = ImportReport {
        destination: repo.to_string(),
        image: inventory.image.digest.clone(),
        tag: tag.clone(),
        tag_moved: false,
        tag_left: None,
        pushed: BTreeMap::new(),
        already_present: BTreeMap::new(),
        referrers_api: 0,
        index_writes: 0,
        merged_tags: Vec::new(),
        not_discoverable: Vec::new(),
        requests: 0,
    };
    let count = |report: &mut ImportReport, kind: Kind, pushed: bool| {
        let map = if pushed {
            &mut report.pushed
        } else {
            &mut report.already_present
        };
        *map.entry(kind).or_insert(0) += 1;
    };
    // The referrers, read and checked before anything is pushed: a referrer the inventory lists
    // whose manifest is about another subject (or none) refuses the bundle, never skipped.
    let mut by_subject: Vec<(Descriptor, Vec<cnb_referrers::Referrer>)> = Vec::new();
    for entry in inventory.of_kind(Kind::Referrer) {
        let bytes = read_manifest(&layout, &entry.digest, &bundle)?;
        let manifest = ImageManifest::from_json(&bytes)
            .map_err(|e| Error::BadImage(format!("{bundle}: referrer {}: {e}", entry.digest)))?;
        let subject = match &manifest.subject {
            Some(subject) if entry.subject.as_ref() == Some(&subject.digest) => subject.clone(),
            other => {
                return Err(Error::BadImage(format!(
                    "{bundle}: referrer {} is about {}, the inventory says {}",
                    entry.digest,
                    other
                        .as_ref()
                        .map(|s| s.digest.as_str())
                        .unwrap_or("nothing"),
                    entry
                        .subject
                        .as_ref()
                        .map(Digest::as_str)
                        .unwrap_or("nothing")
                )))
            }
        };
        let mut blobs = Vec::new();
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let data = if blob.size <= IN_MEMORY_BLOB {
                Blob::Bytes(
                    layout
                        .read_blob(&blob.digest, IN_MEMORY_BLOB)
                        .map_err(layout_error)?,
                )
            } else {
                file_blob(&layout, &blob.digest, blob.size)
            };
            blobs.push((blob.clone(), data));
        }
        // The descriptor the destination's `sha256-<hex>` index lists: from the checked bytes,
        // as export builds it, never from the bundle's index.json.
        let descriptor = Descriptor {
            media_type: media_type_of(&bytes, &entry.media_type),
            digest: entry.digest.clone(),
            size: bytes.len() as u64,
            artifact_type: Some(manifest.effective_artifact_type().to_string()),
            annotations: manifest.annotations.clone(),
            platform: None,
        };
        let referrer = cnb_referrers::Referrer {
            format: cnb_referrers::StorageFormat::detect(&manifest)
                .unwrap_or(cnb_referrers::StorageFormat::Bundle),
            manifest,
            manifest_bytes: bytes,
            descriptor,
            blobs,
        };
        match by_subject
            .iter_mut()
            .find(|(s, _)| s.digest == subject.digest)
        {
            Some((_, referrers)) => referrers.push(referrer),
            None => by_subject.push((subject.bare(), vec![referrer])),
        }
    }
    let manifests: Vec<&Entry> = inventory
        .entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::Manifest | Kind::Index))
        .collect();
    // 1. The image.
    if inventory.attestations_only {
        for entry in &manifests {
            if !cnb_registry::copy::manifest_exists(&client, repo, &entry.digest).await? {
                return Err(Error::ImageNotFound(format!(
                    "{repo}: the bundle holds attestations only (exported with --attestations-only) and the destination lacks the image {} {}: push the image first",
                    entry.kind, entry.digest
                )));
            }
            count(&mut report, entry.kind, false);
        }
    } else {
        for entry in inventory
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Config | Kind::Layer))
        {
            let blob = file_blob(&layout, &entry.digest, entry.size);
            let pushed =
                cnb_registry::copy::push_blob(&client, repo, &entry.digest, entry.size, &blob)
                    .await?;
            count(&mut report, entry.kind, pushed);
        }
        // Children before the index that lists them: the reverse of the order they were met.
        for entry in manifests.iter().rev() {
            let bytes = read_manifest(&layout, &entry.digest, &bundle)?;
            let media_type = media_type_of(&bytes, &entry.media_type);
            let pushed =
                cnb_registry::copy::push_manifest(&client, repo, &bytes, &media_type).await?;
            count(&mut report, entry.kind, pushed);
        }
    }
    // 2. Referrers, per subject, through the one attach path.
    let options = cnb_registry::AttachOptions::default();
    for (subject, referrers) in &by_subject {
        let attached = cnb_registry::attach(&client, repo, subject, referrers, &options).await?;
        if attached.referrers_api {
            report.referrers_api += 1;
        }
        report.index_writes += attached.index_writes;
        if attached.blobs_uploaded > 0 {
            *report.pushed.entry(Kind::ReferrerBlob).or_insert(0) += attached.blobs_uploaded;
        }
        for outcome in &attached.outcomes {
            count(
                &mut report,
                Kind::Referrer,
                outcome.status == cnb_referrers::Status::Pushed,
            );
            if !outcome.discoverable {
                if let Ok(d) = outcome.digest.parse() {
                    report.not_discoverable.push(d);
                }
            }
        }
    }
    // 3. cosign tags, as they were; merged into a different tag already there.
    for entry in inventory.of_kind(Kind::CosignTag) {
        let (Some(tag), Some(subject)) = (&entry.ref_name, &entry.subject) else {
            continue;
        };
        let bytes = read_manifest(&layout, &entry.digest, &bundle)?;
        let media_type = media_type_of(&bytes, &entry.media_type);
        let manifest = ImageManifest::from_json(&bytes)
            .map_err(|e| Error::BadImage(format!("{bundle}: {tag}: {e}")))?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let data = file_blob(&layout, &blob.digest, blob.size);
            let pushed =
                cnb_registry::copy::push_blob(&client, repo, &blob.digest, blob.size, &data)
                    .await?;
            count(&mut report, Kind::ReferrerBlob, pushed);
        }
        match cnb_registry::copy::push_tag(&client, repo, tag, &bytes, &media_type).await? {
            cnb_registry::copy::TagPush::Pushed => count(&mut report, Kind::CosignTag, true),
            cnb_registry::copy::TagPush::AlreadyPresent => {
                count(&mut report, Kind::CosignTag, false)
            }
            cnb_registry::copy::TagPush::Different(_) => {
                let suffix = tag.rsplit('.').next().unwrap_or_default();
                let mut layers = Vec::new();
                for layer in &manifest.layers {
                    let bytes = layout
                        .read_blob(&layer.digest, cnb_sbom_restore::inspect::MAX_BLOB)
                        .map_err(layout_error)?;
                    layers.push((layer.clone(), bytes));
                }
                let appended = cnb_registry::cosign_tag::append(
                    &client, repo, subject, suffix, &layers, &options,
                )
                .await?;
                if appended.writes > 0 {
                    report.merged_tags.push(tag.clone());
                } else {
                    count(&mut report, Kind::CosignTag, false);
                }
            }
        }
    }
    // 4. The tag, last.
    if let Some(tag) = &tag {
        if explicit_tag {
            report.tag_moved =
                cnb_registry::copy::set_tag(&client, repo, tag, &image_bytes, &image_media_type)
                    .await?;
        } else {
            match cnb_registry::copy::push_tag(&client, repo, tag, &image_bytes, &image_media_type)
                .await?
            {
                cnb_registry::copy::TagPush::Pushed => report.tag_moved = true,
                cnb_registry::copy::TagPush::AlreadyPresent => {}
                cnb_registry::copy::TagPush::Different(other) => report.tag_left = Some(other),
            }
        }
    }
    report.requests = client.stats().total();
    Ok(report)
}

/// A manifest of the bundle: read bounded, its bytes checked against `digest`.
fn read_manifest(layout: &OciLayout, digest: &Digest, bundle: &str) -> Result<Vec<u8>, Error> {
    let bytes = layout
        .read_blob(digest, MAX_MANIFEST_SIZE)
        .map_err(layout_error)?;
    if Digest::of(&bytes) != *digest {
        return Err(Error::BadImage(format!(
            "{bundle}: manifest {digest} does not match its digest"
        )));
    }
    Ok(bytes)
}

/// Opens a bundle: a layout directory, or a tar extracted into a temporary directory (removed
/// when the returned guard is dropped).
fn open_bundle(path: &Path) -> Result<(OciLayout, Option<tempfile::TempDir>), Error> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::ImageNotFound(format!("{}: no such bundle", path.display()))
        }
        _ => Error::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Ok((OciLayout::open(path).map_err(layout_error)?, None));
    }
    // A private directory (random name, mode 0700) in the temporary directory (TMPDIR), removed
    // when dropped: the tar may be on read-only or full transfer media.
    let staging = tempfile::Builder::new()
        .prefix("cnb-attest-import-")
        .tempdir()
        .map_err(|e| {
            Error::InvalidRequest(format!(
                "{}: cannot create a temporary directory (TMPDIR) to extract it into: {e}",
                path.display()
            ))
        })?;
    extract_tar(path, staging.path())?;
    let layout = OciLayout::open(staging.path()).map_err(layout_error)?;
    Ok((layout, Some(staging)))
}

/// Extracts the entries of an OCI layout tar (`oci-layout`, `index.json`, the inventory,
/// `blobs/sha256/<hex>`; a leading `./` allowed) into `dir`, streamed and bounded; other entries
/// are ignored, a duplicate or a link where a file belongs is refused.
fn extract_tar(path: &Path, dir: &Path) -> Result<(), Error> {
    use cnb_sbom_restore::tar::{EntryKind, TarReader};
    let bad = |reason: String| Error::BadImage(format!("{}: {reason}", path.display()));
    std::fs::create_dir_all(dir.join("blobs").join("sha256")).map_err(io_error(dir))?;
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut reader = TarReader::new_seekable(std::io::BufReader::new(file));
    while let Some(entry) = reader.next_entry().map_err(|e| bad(e.to_string()))? {
        let name = entry.path.trim_start_matches("./");
        let (target, cap) = match name {
            "oci-layout" => (dir.join(name), 4096),
            "index.json" => (dir.join(name), cnb_referrers::layout::MAX_INDEX_SIZE),
            INVENTORY_FILE => (dir.join(name), inventory::MAX_INVENTORY_SIZE),
            _ => match name.strip_prefix("blobs/sha256/") {
                Some(hex) if Digest::sha256(hex).is_ok() => {
                    (dir.join("blobs").join("sha256").join(hex), MAX_BUNDLE_BLOB)
                }
                _ => continue,
            },
        };
        if entry.kind != EntryKind::File {
            return Err(bad(format!(
                "`{name}` is not a regular file in the archive"
            )));
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| bad(format!("`{name}`: {e}")))?;
        reader
            .copy_body(&mut out, cap)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenOptions;

    /// The example image as an OCI layout at `<dir>/image`; its `oci:` name.
    fn image(dir: &Path) -> String {
        let layers =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
        cnb_fixtures::build(&cnb_fixtures::node_express(&layers), &dir.join("image")).unwrap();
        format!("oci:{}:latest", dir.join("image").display())
    }

    fn run(target: &str, output: &Path, force: bool) -> Result<ExportReport, Error> {
        let request = ExportRequest {
            output: output.to_path_buf(),
            force,
            ..ExportRequest::default()
        };
        crate::block_on(async {
            export(
                &Image::open(target, &OpenOptions::default()).await?,
                &request,
            )
            .await
        })
        .and_then(|r| r)
    }

    /// Names in `dir` starting with `.` (staging or aside directories left behind).
    fn hidden(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    fn refused(result: Result<ExportReport, Error>, says: &str) {
        match result {
            Err(Error::InvalidRequest(message)) => {
                assert!(message.contains(says), "{message}")
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn force_replaces_an_earlier_bundle_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = image(dir.path());
        // A directory that is not a bundle: refused even with force, left as it was.
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("main.rs"), "fn main() {}").unwrap();
        refused(run(&target, &src, true), "not a bundle");
        assert_eq!(std::fs::read(src.join("main.rs")).unwrap(), b"fn main() {}");
        // A file not ending in .tar: refused even with force.
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "keep").unwrap();
        refused(
            run(&target, &notes, true),
            "not a regular file ending in .tar",
        );
        assert_eq!(std::fs::read(&notes).unwrap(), b"keep");

        // An earlier bundle: refused without force, replaced with it.
        let bundle = dir.path().join("bundle");
        run(&target, &bundle, false).unwrap();
        std::fs::write(bundle.join("stale"), "old").unwrap();
        refused(run(&target, &bundle, false), "--force");
        assert!(bundle.join("stale").is_file());
        let report = run(&target, &bundle, true).unwrap();
        assert_eq!(report.written[&Kind::Manifest], 1);
        assert!(!bundle.join("stale").exists(), "the old bundle is gone");
        assert!(bundle.join(INVENTORY_FILE).is_file());
        // An earlier tar, the same.
        let tar = dir.path().join("bundle.tar");
        run(&target, &tar, false).unwrap();
        let first = std::fs::read(&tar).unwrap();
        refused(run(&target, &tar, false), "--force");
        run(&target, &tar, true).unwrap();
        assert_eq!(std::fs::read(&tar).unwrap(), first);
        assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    }

    #[test]
    fn what_appeared_at_the_output_during_the_export_is_judged_again() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path();
        let built = parent.join("built");
        std::fs::create_dir(&built).unwrap();
        std::fs::write(built.join("oci-layout"), "{}").unwrap();
        // Nothing was at -o when the export started; someone's files are there now.
        let output = parent.join("out");
        std::fs::create_dir(&output).unwrap();
        std::fs::write(output.join("notes"), "mine").unwrap();
        let refused = replace(&output, &built, parent, false).unwrap_err();
        assert!(refused.to_string().contains("--force"), "{refused}");
        let refused = replace(&output, &built, parent, true).unwrap_err();
        assert!(refused.to_string().contains("not a bundle"), "{refused}");
        assert_eq!(std::fs::read(output.join("notes")).unwrap(), b"mine");
        assert!(built.join("oci-layout").is_file());
    }

    #[test]
    fn the_source_layout_is_never_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let target = image(dir.path());
        let bundle = dir.path().join("bundle");
        run(&target, &bundle, false).unwrap();
        let from_bundle = format!("oci:{}:latest", bundle.display());
        let before = std::fs::read(bundle.join("index.json")).unwrap();
        // The bundle itself (a bundle, so --force alone would allow it), inside it, its parent.
        refused(run(&from_bundle, &bundle, true), "the layout exported");
        refused(
            run(&from_bundle, &bundle.join("inner"), false),
            "the layout exported",
        );
        refused(
            run(&target, &dir.path().join("image").join("blobs.tar"), false),
            "the layout exported",
        );
        let from_inner = format!("oci:{}:latest", dir.path().join("image").display());
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::rename(dir.path().join("image"), dir.path().join("empty/image")).unwrap();
        let moved = from_inner.replace("/image:", "/empty/image:");
        refused(run(&moved, &dir.path().join("empty"), true), "not a bundle");
        assert_eq!(std::fs::read(bundle.join("index.json")).unwrap(), before);
        assert!(dir.path().join("empty/image/index.json").is_file());
        assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    }

    #[test]
    fn a_blob_too_large_for_a_tar_entry_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(&dir.path().join("big")).unwrap();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let (config_digest, _) = layout.write_blob(config).unwrap();
        let huge = Digest::of(b"never written");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": huge,
                "size": cnb_sbom_restore::tar_write::MAX_ENTRY_SIZE + 1,
            }],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        layout.write_blob(&bytes).unwrap();
        let mut listed =
            Descriptor::for_bytes("application/vnd.oci.image.manifest.v1+json", &bytes);
        listed.annotations = Some([(REF_NAME.to_string(), "latest".to_string())].into());
        layout.add_to_index(&[listed]).unwrap();
        let target = format!("oci:{}:latest", dir.path().join("big").display());
        let out = dir.path().join("big.tar");
        refused(run(&target, &out, false), huge.as_str());
        refused(run(&target, &out, false), "directory bundle");
        assert!(!out.exists());
        assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    }
}
