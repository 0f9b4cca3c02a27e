//! Walking `<layers>/sbom/` and classifying what is there.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, FileType, Metadata};
use std::path::{Path, PathBuf};

use cnb_local_files::ReadError;
use sha2::{Digest as _, Sha256};

use crate::error::{sanitize, Error};
use crate::format::SbomFormat;
use crate::ids::{BuildpackId, LayerName};
use crate::index::BuildpackIndex;

/// Default cap on one SBOM file: 768 MiB, the largest whose Sigstore bundle (base64: 4/3 of it)
/// readers still take (`cnb_referrers::format::MAX_STREAMED_ATTESTATION_BLOB`, 1 GiB). Files over
/// 1 MiB are checked and hashed in pieces, never held.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 768 * 1024 * 1024;

/// The name of the legacy BOM file the lifecycle writes for Platform API ≥ 0.9 (never attested).
pub const LEGACY_BOM_FILE_NAME: &str = "sbom.legacy.json";

/// Which SBOM trees to walk and how large a file may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// Also walk `<layers>/sbom/build/` (build-time dependencies). Default: false.
    pub include_build: bool,
    /// Also walk `<layers>/sbom/cache/` (SBOMs of cached layers). Default: false.
    pub include_cache: bool,
    /// Largest accepted SBOM file in bytes. Default: [`DEFAULT_MAX_FILE_SIZE`].
    pub max_file_size: u64,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            include_build: false,
            include_cache: false,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Which tree below `<layers>/sbom/` a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SbomKind {
    /// `sbom/launch/`: what ends up in the app image.
    Launch,
    /// `sbom/build/`: build-time dependencies.
    Build,
    /// `sbom/cache/`: SBOMs of cached layers.
    Cache,
}

impl SbomKind {
    /// All kinds, in sort order.
    pub const ALL: [SbomKind; 3] = [SbomKind::Launch, SbomKind::Build, SbomKind::Cache];

    /// The directory name below `<layers>/sbom/` (`launch`, `build`, `cache`).
    pub fn dir_name(self) -> &'static str {
        match self {
            SbomKind::Launch => "launch",
            SbomKind::Build => "build",
            SbomKind::Cache => "cache",
        }
    }

    /// The kind of a directory name below `<layers>/sbom/`.
    pub fn from_dir_name(name: &str) -> Option<SbomKind> {
        Self::ALL.into_iter().find(|k| k.dir_name() == name)
    }
}

impl fmt::Display for SbomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// What an SBOM file describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `<kind>/<esc-bp>/sbom.<ext>`: dependencies of the buildpack not tied to one layer.
    Image,
    /// `<kind>/<esc-bp>/<layer>/sbom.<ext>`: the contents of one layer.
    Layer(LayerName),
}

/// One SBOM file found by [`discover`], read once, checked and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomFile {
    /// Absolute path (below the canonical layers directory).
    pub path: PathBuf,
    /// Path relative to the layers directory, e.g. `sbom/launch/<esc-bp>/<layer>/sbom.cdx.json`.
    pub relative: PathBuf,
    /// The tree it came from.
    pub kind: SbomKind,
    /// The real buildpack ID (resolved through the [`BuildpackIndex`]).
    pub buildpack: BuildpackId,
    /// Image or layer scope.
    pub scope: Scope,
    /// The format (from the name, confirmed by the content).
    pub format: SbomFormat,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the file's bytes.
    pub sha256: String,
}

impl SbomFile {
    /// The layer of a layer-scoped file.
    pub fn layer(&self) -> Option<&LayerName> {
        match &self.scope {
            Scope::Image => None,
            Scope::Layer(name) => Some(name),
        }
    }

    fn sort_key(&self) -> (SbomKind, &BuildpackId, &Scope, SbomFormat) {
        (self.kind, &self.buildpack, &self.scope, self.format)
    }
}

/// The result of [`discover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The SBOM files, sorted by kind, buildpack, scope (image first, then layers by name) and
    /// format.
    pub files: Vec<SbomFile>,
    /// Entries that were deliberately left out (`sbom.legacy.json`, unrelated files, trees not
    /// asked for), with the reason, sorted by path.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Find, classify, check and hash the SBOM files below `<layers_dir>/sbom/`.
///
/// `layers_dir` itself may be reached through links (it is canonicalized once); below it no
/// link is ever followed. Missing `<layers>/sbom` gives an empty result. Any refusal (a link,
/// a fifo/socket/device, a file over `max_file_size`, invalid JSON, content that does not
/// match the extension, an unknown buildpack directory, `sbom.<unknown>`, deeper nesting)
/// ends the walk with an error that names the path; no partial result is returned.
pub fn discover(
    layers_dir: &Path,
    index: &BuildpackIndex,
    options: &DiscoveryOptions,
) -> Result<Discovery, Error> {
    let root = layers_dir
        .canonicalize()
        .map_err(|e| Error::io(layers_dir, e))?;
    let meta = fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
    if !meta.is_dir() {
        return Err(Error::refused(
            &root,
            "the layers directory is not a directory",
        ));
    }
    let mut walker = Walker {
        index,
        options,
        out: Discovery::default(),
    };
    let sbom = Entry {
        path: root.join("sbom"),
        relative: PathBuf::from("sbom"),
    };
    match fs::symlink_metadata(&sbom.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(walker.out),
        Err(e) => return Err(Error::io(&sbom.path, e)),
        Ok(m) => expect_dir(&sbom.path, &m)?,
    }
    for (name, entry) in list(&sbom)? {
        let kind = name.to_str().and_then(SbomKind::from_dir_name);
        match kind {
            Some(kind) if walker.wants(kind) => walker.walk_kind(kind, &entry)?,
            Some(SbomKind::Build) => walker.skip(entry, "build SBOMs were not asked for"),
            Some(SbomKind::Cache) => walker.skip(entry, "cache SBOMs were not asked for"),
            _ => walker.skip(entry, "not an SBOM tree (launch, build or cache)"),
        }
    }
    let mut out = walker.out;
    out.files.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.skipped.sort();
    Ok(out)
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    relative: PathBuf,
}

impl Entry {
    fn child(&self, name: &OsString) -> Entry {
        Entry {
            path: self.path.join(name),
            relative: self.relative.join(name),
        }
    }
}

/// The entries of a directory, sorted by name (so that errors are deterministic too).
fn list(dir: &Entry) -> Result<Vec<(OsString, Entry)>, Error> {
    let mut names = Vec::new();
    for item in fs::read_dir(&dir.path).map_err(|e| Error::io(&dir.path, e))? {
        let item = item.map_err(|e| Error::io(&dir.path, e))?;
        names.push(item.file_name());
    }
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| {
            let child = dir.child(&n);
            (n, child)
        })
        .collect())
}

fn special_kind(ft: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "fifo";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_char_device() {
            return "character device";
        }
    }
    let _ = ft;
    "special file"
}

/// Refuse links and special files; `Ok` for regular files and directories.
fn check_type(path: &Path, meta: &Metadata) -> Result<(), Error> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        Err(Error::Symlink {
            path: path.to_path_buf(),
        })
    } else if ft.is_dir() || ft.is_file() {
        Ok(())
    } else {
        Err(Error::NotRegular {
            path: path.to_path_buf(),
            kind: special_kind(&ft),
        })
    }
}

fn expect_dir(path: &Path, meta: &Metadata) -> Result<(), Error> {
    check_type(path, meta)?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(Error::refused(path, "expected a directory, found a file"))
    }
}

fn lstat(path: &Path) -> Result<Metadata, Error> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    check_type(path, &meta)?;
    Ok(meta)
}

enum FileClass {
    Sbom(SbomFormat),
    Legacy,
    Unsupported(String),
    Other,
}

fn classify(name: &OsString) -> FileClass {
    let Some(name) = name.to_str() else {
        return FileClass::Other;
    };
    if name == LEGACY_BOM_FILE_NAME {
        return FileClass::Legacy;
    }
    match name.strip_prefix("sbom.") {
        Some(ext) => match SbomFormat::from_extension(ext) {
            Some(format) => FileClass::Sbom(format),
            None => FileClass::Unsupported(sanitize(ext)),
        },
        None => FileClass::Other,
    }
}

struct Walker<'a> {
    index: &'a BuildpackIndex,
    options: &'a DiscoveryOptions,
    out: Discovery,
}

impl Walker<'_> {
    fn wants(&self, kind: SbomKind) -> bool {
        match kind {
            SbomKind::Launch => true,
            SbomKind::Build => self.options.include_build,
            SbomKind::Cache => self.options.include_cache,
        }
    }

    fn skip(&mut self, entry: Entry, reason: &str) {
        self.out.skipped.push((entry.path, reason.to_string()));
    }

    fn walk_kind(&mut self, kind: SbomKind, dir: &Entry) -> Result<(), Error> {
        expect_dir(&dir.path, &lstat(&dir.path)?)?;
        for (name, entry) in list(dir)? {
            let meta = lstat(&entry.path)?;
            if meta.is_dir() {
                let Some(dir_name) = name.to_str() else {
                    return Err(Error::refused(
                        &entry.path,
                        "the directory name is not valid UTF-8",
                    ));
                };
                let buildpack = self.index.resolve_in(dir_name, &dir.path)?;
                self.walk_buildpack(kind, &buildpack, &entry)?;
                continue;
            }
            match classify(&name) {
                FileClass::Legacy => self.skip(
                    entry,
                    "legacy BOM (not a standard SBOM format): not attested",
                ),
                FileClass::Unsupported(extension) => {
                    return Err(Error::UnsupportedFormat {
                        path: entry.path,
                        extension,
                    })
                }
                FileClass::Sbom(_) => self.skip(
                    entry,
                    "an SBOM file outside any buildpack directory: not attested",
                ),
                FileClass::Other => self.skip(entry, "not an SBOM file"),
            }
        }
        Ok(())
    }

    fn walk_buildpack(
        &mut self,
        kind: SbomKind,
        buildpack: &BuildpackId,
        dir: &Entry,
    ) -> Result<(), Error> {
        for (name, entry) in list(dir)? {
            let meta = lstat(&entry.path)?;
            if meta.is_dir() {
                let layer = name
                    .to_str()
                    .ok_or_else(|| {
                        Error::refused(&entry.path, "the directory name is not valid UTF-8")
                    })
                    .and_then(|n| LayerName::new(n).map_err(|e| Error::refused(&entry.path, e)))?;
                self.walk_layer(kind, buildpack, &layer, &entry)?;
            } else {
                self.file(kind, buildpack, Scope::Image, &name, entry, &meta)?;
            }
        }
        Ok(())
    }

    fn walk_layer(
        &mut self,
        kind: SbomKind,
        buildpack: &BuildpackId,
        layer: &LayerName,
        dir: &Entry,
    ) -> Result<(), Error> {
        for (name, entry) in list(dir)? {
            let meta = lstat(&entry.path)?;
            if meta.is_dir() {
                return Err(Error::refused(
                    &entry.path,
                    "unexpected nesting: SBOM files live at <kind>/<buildpack>/sbom.<ext> or <kind>/<buildpack>/<layer>/sbom.<ext>",
                ));
            }
            let scope = Scope::Layer(layer.clone());
            self.file(kind, buildpack, scope, &name, entry, &meta)?;
        }
        Ok(())
    }

    fn file(
        &mut self,
        kind: SbomKind,
        buildpack: &BuildpackId,
        scope: Scope,
        name: &OsString,
        entry: Entry,
        meta: &Metadata,
    ) -> Result<(), Error> {
        match classify(name) {
            FileClass::Legacy => {
                self.skip(
                    entry,
                    "legacy BOM (not a standard SBOM format): not attested",
                );
                Ok(())
            }
            FileClass::Other => {
                self.skip(entry, "not an SBOM file");
                Ok(())
            }
            FileClass::Unsupported(extension) => Err(Error::UnsupportedFormat {
                path: entry.path,
                extension,
            }),
            FileClass::Sbom(format) => {
                let (size, sha256) = if meta.len() > STREAM_ABOVE {
                    check_streamed(&entry.path, meta, self.options.max_file_size, format)?
                } else {
                    let bytes = read_checked(&entry.path, meta, self.options.max_file_size)?;
                    format.check_content_of(&entry.path, &bytes)?;
                    (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)))
                };
                self.out.files.push(SbomFile {
                    path: entry.path,
                    relative: entry.relative,
                    kind,
                    buildpack: buildpack.clone(),
                    scope,
                    format,
                    size,
                    sha256,
                });
                Ok(())
            }
        }
    }
}

/// SBOM files larger than this are checked and hashed in one streaming pass, never held whole.
const STREAM_ABOVE: u64 = 1024 * 1024;

/// Checks an SBOM file as [`SbomFormat::check_content_of`] does, and hashes it, reading it in
/// pieces: its size and lowercase hex sha256.
fn check_streamed(
    path: &Path,
    checked: &Metadata,
    cap: u64,
    format: crate::SbomFormat,
) -> Result<(u64, String), Error> {
    use cnb_untrusted::json_stream::{Top, Validator};
    use std::io::Read as _;
    let file = cnb_local_files::open_checked(path, cap, checked).map_err(read_error(path, cap))?;
    let len = checked.len();
    let mut reader = file.take(len.saturating_add(1));
    let mut validator =
        Validator::new(Top::Any, cnb_untrusted::json::MAX_DEPTH).watch_top_keys(crate::SNIFF_KEYS);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let invalid = |e: cnb_untrusted::json_stream::StreamError| {
        let (line, column) = line_and_column(path, e.offset);
        Error::InvalidJson {
            path: path.to_path_buf(),
            line,
            column,
            reason: e.reason.to_string(),
        }
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        total += n as u64;
        if total > len {
            return Err(read_error(path, cap)(ReadError::Replaced));
        }
        hasher.update(&buf[..n]);
        validator.feed(&buf[..n]).map_err(invalid)?;
    }
    if total != len {
        return Err(read_error(path, cap)(ReadError::Replaced));
    }
    let values = validator.top_values().to_vec();
    validator.finish().map_err(invalid)?;
    format.check_top_values(path, &values)?;
    Ok((len, hex::encode(hasher.finalize())))
}

/// The 1-based line and column of byte `offset` of the file at `path`, for a message (read again
/// only when a streamed check failed; `(0, 0)` if it cannot be read).
fn line_and_column(path: &Path, offset: u64) -> (usize, usize) {
    use std::io::Read as _;
    let Ok(file) = fs::File::open(path) else {
        return (0, 0);
    };
    let (mut line, mut column) = (1usize, 1usize);
    let mut buf = vec![0u8; 256 * 1024];
    let mut reader = file.take(offset);
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
    }
    (line, column)
}

/// Read a regular file that `lstat` already vetted, at most `cap` bytes, and make sure the
/// file opened is the file that was checked (no link or other file swapped in meanwhile).
fn read_checked(path: &Path, checked: &Metadata, cap: u64) -> Result<Vec<u8>, Error> {
    cnb_local_files::read_checked(path, cap, checked).map_err(read_error(path, cap))
}

/// The crate's error for a failed bounded read of `path` (capped at `cap`).
pub(crate) fn read_error(path: &Path, cap: u64) -> impl FnOnce(ReadError) -> Error + '_ {
    move |e| match e {
        ReadError::Io(source) => Error::io(path, source),
        ReadError::TooLarge { .. } => Error::TooLarge {
            path: path.to_path_buf(),
            cap,
        },
        ReadError::Symlink | ReadError::NotRegular => {
            Error::refused(path, "it is not a regular file")
        }
        other => Error::refused(path, other),
    }
}
