//! Local files, read and written safely: bounded reads, atomic and no-clobber writes.
//!
//! Every read here is capped: at most `cap + 1` bytes are read, and a file with more than `cap`
//! bytes is refused ([`ReadError::TooLarge`]), even when it grows after its size was checked.
//! Only regular files are read: a FIFO, socket, device or directory is refused from its metadata,
//! before it is opened, so a read never blocks on a FIFO with no writer. After opening, the file
//! opened must still be the regular file that was checked (same device and inode on Unix), or the
//! read is refused ([`ReadError::Replaced`]).
//!
//! Links are the caller's choice ([`Links`]): input found below a directory being walked (SBOM
//! files, layout blobs) is never read through a link, while input named by the platform (key
//! files, password files, `group.toml`) may be a link, as Kubernetes Secret and ConfigMap
//! mounts are, as long as it resolves to a regular file.
//!
//! Errors carry no path: each caller maps a [`ReadError`] into its own error type, with the path.
//!
//! ```
//! use cnb_local_files::{read, Links, ReadError};
//!
//! let dir = std::env::temp_dir().join(format!("cnb-local-files-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("group.toml");
//! std::fs::write(&path, "[[group]]\n")?;
//!
//! assert_eq!(read(&path, 1024, Links::Refuse)?, b"[[group]]\n");
//! assert!(matches!(
//!     read(&path, 4, Links::Follow),
//!     Err(ReadError::TooLarge { size: 10, cap: 4 })
//! ));
//! assert!(matches!(read(&dir, 1024, Links::Follow), Err(ReadError::NotRegular)));
//! assert_eq!(
//!     read(&path, 4, Links::Follow).unwrap_err().to_string(),
//!     "larger than the 4-byte limit"
//! );
//!
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read as _};
use std::path::Path;

/// What to do when the path names a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Refuse a link ([`ReadError::Symlink`]); the path itself must be a regular file. For input
    /// found below a directory being walked (SBOM files, layout blobs).
    Refuse,
    /// Follow links; what the path resolves to must be a regular file. For input the platform
    /// names (key files, password files, platform files), which may be mounted through links.
    Follow,
}

/// Why a file was not read. Carries no path: the caller adds it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be inspected, opened or read. Displays as the I/O error.
    Io(io::Error),
    /// The path is a symbolic link and [`Links::Refuse`] was asked for.
    Symlink,
    /// The path (after resolution, with [`Links::Follow`]) is not a regular file: a directory,
    /// FIFO, socket or device.
    NotRegular,
    /// The file has more than `cap` bytes.
    TooLarge {
        /// The size from the file's metadata, or the bytes read before stopping (`cap + 1`) when
        /// the file grew after its size was checked.
        size: u64,
        /// The cap in bytes.
        cap: u64,
    },
    /// The file opened is not the regular file that was checked: it was replaced (by another
    /// file, a link or a special file) between the check and the open.
    Replaced,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::Symlink => f.write_str("it is a symbolic link"),
            ReadError::NotRegular => f.write_str("not a regular file"),
            ReadError::TooLarge { cap, .. } => write!(f, "larger than the {cap}-byte limit"),
            ReadError::Replaced => f.write_str("the file was replaced while it was being read"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ReadError> for io::Error {
    /// [`ReadError::Io`] gives back its I/O error; every other variant becomes an
    /// [`io::ErrorKind::Other`] error that displays as the [`ReadError`] does.
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// Reads the regular file at `path`, at most `cap` bytes; a link is refused or followed as
/// `links` says.
///
/// The file's metadata is taken first (without following a link for [`Links::Refuse`]); a link
/// ([`Links::Refuse`] only), a non-regular file or a file over `cap` is refused before it is
/// opened. Then as [`read_checked`] with that metadata.
pub fn read(path: &Path, cap: u64, links: Links) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    read_into(path, cap, links, &mut bytes)?;
    Ok(bytes)
}

/// As [`read`], into `buf` (cleared first), for secrets: the bytes read before an error stay in
/// `buf`, so a wrapper that wipes its buffer on drop (such as `zeroize::Zeroizing<Vec<u8>>`)
/// wipes them too.
pub fn read_into(path: &Path, cap: u64, links: Links, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    let meta = match links {
        Links::Refuse => fs::symlink_metadata(path),
        Links::Follow => fs::metadata(path),
    }
    .map_err(ReadError::Io)?;
    read_checked_into(path, cap, &meta, buf)
}

/// Reads the file at `path`, at most `cap` bytes, after the caller checked it: `checked` is
/// metadata the caller took earlier (typically with [`fs::symlink_metadata`] while walking a
/// directory).
///
/// Refuses a `checked` that is a link ([`ReadError::Symlink`]) or not a regular file, and a
/// `checked` size over `cap`, without opening the file. After opening, the open file must be a
/// regular file and the same file as `checked` (device and inode, on Unix), or
/// [`ReadError::Replaced`]. At most `cap + 1` bytes are read; more than `cap` is
/// [`ReadError::TooLarge`].
pub fn read_checked(path: &Path, cap: u64, checked: &Metadata) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    read_checked_into(path, cap, checked, &mut bytes)?;
    Ok(bytes)
}

/// Opens a file whose link-free metadata `checked` was taken when its path was checked, for a
/// caller that streams it: the same refusals as [`read_checked`] (a link, not a regular file,
/// over `cap`, or not the same file once opened); the caller bounds its reads by `checked.len()`.
pub fn open_checked(path: &Path, cap: u64, checked: &Metadata) -> Result<File, ReadError> {
    if checked.file_type().is_symlink() {
        return Err(ReadError::Symlink);
    }
    if !checked.is_file() {
        return Err(ReadError::NotRegular);
    }
    if checked.len() > cap {
        return Err(ReadError::TooLarge {
            size: checked.len(),
            cap,
        });
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    let opened = file.metadata().map_err(ReadError::Io)?;
    if !opened.is_file() || !same_file(checked, &opened) {
        return Err(ReadError::Replaced);
    }
    Ok(file)
}

fn read_checked_into(
    path: &Path,
    cap: u64,
    checked: &Metadata,
    buf: &mut Vec<u8>,
) -> Result<(), ReadError> {
    let file = open_checked(path, cap, checked)?;
    let opened = file.metadata().map_err(ReadError::Io)?;
    buf.clear();
    buf.reserve(usize::try_from(opened.len().min(cap)).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(buf)
        .map_err(ReadError::Io)?;
    let size = buf.len() as u64;
    if size > cap {
        return Err(ReadError::TooLarge { size, cap });
    }
    Ok(())
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Without device and inode numbers in std, any regular file passes.
#[cfg(not(unix))]
fn same_file(_: &Metadata, _: &Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("cnb-local-files-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str, len: usize) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, vec![b'x'; len]).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cap_is_enforced() {
        let tmp = TempDir::new();
        let at_cap = tmp.file("at", 10);
        let over = tmp.file("over", 11);
        for links in [Links::Refuse, Links::Follow] {
            assert_eq!(read(&at_cap, 10, links).unwrap().len(), 10);
            assert!(matches!(
                read(&over, 10, links),
                Err(ReadError::TooLarge { size: 11, cap: 10 })
            ));
        }
        assert_eq!(read(&tmp.file("empty", 0), 0, Links::Refuse).unwrap(), b"");
        let err = read(&over, 10, Links::Refuse).unwrap_err();
        assert_eq!(err.to_string(), "larger than the 10-byte limit");
    }

    #[test]
    fn a_file_that_grows_after_the_check_is_still_capped() {
        let tmp = TempDir::new();
        let path = tmp.file("grows", 4);
        let checked = fs::symlink_metadata(&path).unwrap();
        fs::write(&path, vec![b'y'; 100]).unwrap();
        assert!(matches!(
            read_checked(&path, 10, &checked),
            Err(ReadError::TooLarge { size: 11, cap: 10 })
        ));
    }

    #[test]
    fn read_into_clears_the_buffer() {
        let tmp = TempDir::new();
        let path = tmp.file("f", 3);
        let mut buf = b"old".to_vec();
        read_into(&path, 3, Links::Follow, &mut buf).unwrap();
        assert_eq!(buf, b"xxx");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_refused_or_followed() {
        let tmp = TempDir::new();
        let target = tmp.file("target", 5);
        let link = tmp.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            read(&link, 10, Links::Refuse),
            Err(ReadError::Symlink)
        ));
        assert_eq!(read(&link, 10, Links::Follow).unwrap(), b"xxxxx");
        let checked = fs::symlink_metadata(&link).unwrap();
        assert!(matches!(
            read_checked(&link, 10, &checked),
            Err(ReadError::Symlink)
        ));

        // Followed, a link must still end at a regular file.
        let dir_link = tmp.0.join("dir-link");
        std::os::unix::fs::symlink(&tmp.0, &dir_link).unwrap();
        assert!(matches!(
            read(&dir_link, 10, Links::Follow),
            Err(ReadError::NotRegular)
        ));
    }

    /// `path` is refused as not regular, with or without following links.
    fn assert_not_regular(path: &Path) {
        for links in [Links::Refuse, Links::Follow] {
            let err = read(path, 10, links).unwrap_err();
            assert!(matches!(err, ReadError::NotRegular), "{err:?}");
            assert_eq!(err.to_string(), "not a regular file");
        }
    }

    #[test]
    fn a_directory_is_not_regular() {
        assert_not_regular(&TempDir::new().0);
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_is_not_regular() {
        let tmp = TempDir::new();
        let path = tmp.0.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_not_regular(&path);
    }

    /// A FIFO with no writer is refused from its metadata; opening it would block forever.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = TempDir::new();
        let path = tmp.0.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !made {
            eprintln!("mkfifo unavailable; skipped");
            return;
        }
        assert_not_regular(&path);
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_is_detected() {
        let tmp = TempDir::new();
        let path = tmp.file("f", 3);
        let checked = fs::symlink_metadata(&path).unwrap();
        // Keep the old inode alive (so it cannot be reused) and put another file in its place.
        fs::rename(&path, tmp.0.join("old")).unwrap();
        tmp.file("f", 3);
        let err = read_checked(&path, 10, &checked).unwrap_err();
        assert!(matches!(err, ReadError::Replaced), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the file was replaced while it was being read"
        );

        // A link to another file swapped in for the checked file is caught the same way.
        fs::remove_file(&path).unwrap();
        let elsewhere = tmp.file("elsewhere", 3);
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(matches!(
            read_checked(&path, 10, &checked),
            Err(ReadError::Replaced)
        ));
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let tmp = TempDir::new();
        let err = read(&tmp.0.join("nope"), 10, Links::Follow).unwrap_err();
        let ReadError::Io(io) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), io.to_string());
        let back: io::Error = err.into();
        assert_eq!(back.kind(), io::ErrorKind::NotFound);
        let other: io::Error = ReadError::NotRegular.into();
        assert_eq!(other.to_string(), "not a regular file");
    }
}

#[cfg(all(test, unix))]
mod write_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn write_new_never_replaces_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.key");
        write_new(&path, b"first", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            write_new(&path, b"second", 0o600),
            Err(WriteError::AlreadyExists)
        ));
        // A dangling link counts as taken.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(matches!(
            write_new(&link, b"x", 0o600),
            Err(WriteError::AlreadyExists)
        ));
        assert_eq!(fs::read(&path).unwrap(), b"first");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn write_atomic_replaces_a_file_but_never_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            write_atomic(&link, b"x"),
            Err(WriteError::NotRegular)
        ));
        assert_eq!(fs::read(&path).unwrap(), b"two");
    }
}

/// Why [`write_atomic`] refused or failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError {
    /// The target exists and is not a regular file (a symlink, a directory, a device): it is never
    /// replaced or written through.
    NotRegular,
    /// The target has no parent directory.
    NoParent,
    /// [`write_new`]: the target exists; nothing was written.
    AlreadyExists,
    /// An I/O error.
    Io(std::io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotRegular => f.write_str(
                "exists and is not a regular file (a symlink or special file); refusing to replace it",
            ),
            WriteError::NoParent => f.write_str("has no parent directory"),
            WriteError::AlreadyExists => f.write_str("already exists; refusing to overwrite it"),
            WriteError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one, never a part:
/// a new file in the same directory (created exclusively, synced), then a rename over `path`, then
/// the directory synced. A target that exists and is not a regular file is refused, and the
/// temporary file is removed on failure. The file gets the process's default mode (0666 less the
/// umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    use std::io::Write as _;
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], for content too large to hold: `fill` writes it into the temporary file
/// (through its own buffering). When `fill` fails, nothing is written at `path`.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.is_file() {
            return Err(WriteError::NotRegular);
        }
    }
    let (tmp, dir) = write_temporary(path, fill, None)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        WriteError::Io(e)
    })?;
    sync_dir(dir);
    Ok(())
}

/// Writes `bytes` to `path` only if nothing is there (not even a dangling link), complete or not
/// at all: a synced temporary file with `mode` (Unix) in the same directory, hard-linked to `path`
/// (which fails if `path` exists), then removed. For key files: an existing key is never replaced.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(WriteError::AlreadyExists);
    }
    let (tmp, dir) = write_temporary(
        path,
        |file| std::io::Write::write_all(file, bytes),
        Some(mode),
    )?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::AlreadyExists),
        Err(e) => Err(WriteError::Io(e)),
    }
}

/// A new, synced temporary file beside `path` that `fill` wrote; its path and the directory.
fn write_temporary(
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
    mode: Option<u32>,
) -> Result<(std::path::PathBuf, &Path), WriteError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or(WriteError::NoParent)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for _ in 0..16 {
        let tmp = dir.join(format!(
            ".tmp-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = match options.open(&tmp) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(WriteError::Io(e)),
        };
        let written = fill(&mut file).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(WriteError::Io(e));
        }
        return Ok((tmp, dir));
    }
    Err(WriteError::Io(std::io::Error::other(
        "no free temporary file name",
    )))
}

/// Makes the entries of `dir` (renames, links, new files) durable; a failure here does not undo
/// them, and is not reported.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
