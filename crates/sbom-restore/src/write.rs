//! Writing restored files, all or nothing, through directory handles.
//!
//! The directory holding the layers directory is opened once; from there every directory is
//! opened relative to the handle of its parent with `O_NOFOLLOW | O_DIRECTORY`, every file is
//! created relative to its directory's handle with `O_CREAT | O_EXCL | O_NOFOLLOW`, and the tree
//! is moved into place with `renameat` between handles: after the first open nothing is looked up
//! by its full path again, so a symlink swapped in after the checks is never followed (the writes
//! stay in the directories that were checked). Before the move the directories on the way are
//! looked up by name once more and must still be the ones opened, or the restore fails closed.
//!
//! The whole tree is built in a temporary directory beside its destination (same file system),
//! every file and directory synced, then moved into place: with one `renameat`, or, when an earlier
//! tree is replaced, with one `renameat2(RENAME_EXCHANGE)` that swaps the two trees (the earlier
//! one is removed afterwards), so at every instant the destination holds the earlier tree or the
//! new one, whole. A file system that refuses the exchange gets two renames instead (the earlier
//! tree aside, the new one in). A failure, an I/O error partway included, or an interruption
//! ([`interrupt`], called on SIGINT or SIGTERM) removes the temporary tree and leaves the
//! destination as it was.
//!
//! Directories other users could change under the writer are refused before anything is written
//! unless the caller accepts them ([`SharedOutput`]): see [`write_tree_with`].

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::os::unix::ffi::OsStrExt as _;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::path::SbomPath;
use crate::Error;

/// Mode asked for the directories created (less the umask).
const DIR_MODE: u32 = 0o755;
/// Mode asked for the files created (less the umask).
const FILE_MODE: u32 = 0o644;

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Where it goes under `sbom/launch/`.
    pub path: SbomPath,
    /// Its exact bytes (empty when [`Restored::spooled`] holds them).
    pub bytes: Vec<u8>,
    /// Its exact bytes in a temporary file, for an SBOM too large to hold
    /// ([`crate::spool`]): copied into the temporary tree and checked against the length and
    /// SHA-256 taken when it was verified.
    pub spooled: Option<crate::spool::Spooled>,
    /// Where it came from (an attestation digest, or `sbom-layer`), for reports.
    pub source: String,
    /// What decided its place.
    pub placement: Placement,
}

/// What decided where a restored file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Signed data: a subject naming the buildpack (and layer), checked against the image's label.
    Signed,
    /// The unsigned `io.buildpacks.buildpack.id` annotation of a verified statement whose only
    /// subject is the image (nothing signed can say more). The bytes are verified; their place is
    /// not.
    UnsignedAnnotation,
    /// The path inside the image's SBOM layer (digest-checked against the label, not signed).
    SbomLayer,
}

/// What to do when the destination `<root>/sbom/launch` already holds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Existing {
    /// Write nothing and fail with [`Error::Occupied`]: never mix two images' SBOMs.
    #[default]
    Refuse,
    /// Replace the whole tree: afterwards it holds the restored files and nothing else (what the
    /// lifecycle's analyzer does with `<layers>/sbom/launch`). [`Written::removed`] lists what
    /// was there.
    Replace,
}

/// What [`write_tree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The files written, as `<root>/sbom/launch/...` paths.
    pub files: Vec<PathBuf>,
    /// With [`Existing::Replace`]: the entries of the earlier tree that were removed with it
    /// (files, links, anything but directories), relative to `<root>/sbom/launch`.
    pub removed: Vec<PathBuf>,
}

/// Whether directories that other users can change are accepted on the way to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedOutput {
    /// Refuse ([`Error::SharedOutput`]) a directory owned by another user (not the effective user,
    /// nor root) or writable by group or others without the sticky bit: whoever can change it can
    /// swap the restored tree, or a directory on its way, for their own.
    #[default]
    Refuse,
    /// Accept them (the caller trusts everyone who can write there).
    Allow,
}

/// Which directory the caller named as the output directory: checked for [`SharedOutput`] with
/// every directory of `root`, `root/sbom` and `root/sbom/launch` that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputDir {
    /// `root` itself (the analyzer's layers directory); its parent is not checked.
    #[default]
    Root,
    /// The parent of `root` (`cnb-attest download -o <dir>` writes `<dir>/layers`).
    Parent,
}

/// Why a directory was refused as shared ([`Error::SharedOutput`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shared {
    /// Owned by a user other than the effective user and root.
    OtherOwner,
    /// Writable by its group or by others, without the sticky bit.
    Writable,
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shared::OtherOwner => "is owned by another user",
            Shared::Writable => "is writable by other users (group or others, no sticky bit)",
        })
    }
}

/// Test hooks of [`write_tree_with`]: not part of the API.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Hooks {
    /// Called once every check passed, before the first write (a test swaps a directory here).
    pub after_check: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Fails the write of the file at this index (0-based) with an I/O error after half its
    /// bytes.
    pub fail_file: Option<usize>,
    /// Called at each point of the move into place where a crash could strike: before and after
    /// each rename of the destination.
    pub at_commit: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Takes the two-rename path, as on a file system that refuses `RENAME_EXCHANGE`.
    pub no_exchange: bool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("after_check", &self.after_check.is_some())
            .field("fail_file", &self.fail_file)
            .field("at_commit", &self.at_commit.is_some())
            .field("no_exchange", &self.no_exchange)
            .finish()
    }
}

/// How [`write_tree_with`] writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// What to do when the destination already holds something.
    pub existing: Existing,
    /// Whether directories other users can change are accepted.
    pub shared: SharedOutput,
    /// Which directory the caller named as the output directory.
    pub output: OutputDir,
    #[doc(hidden)]
    pub hooks: Hooks,
}

/// [`write_tree_with`] with `existing`, [`SharedOutput::Refuse`] and [`OutputDir::Root`].
pub fn write_tree(root: &Path, files: &[Restored], existing: Existing) -> Result<Written, Error> {
    write_tree_with(
        root,
        files,
        &WriteOptions {
            existing,
            ..WriteOptions::default()
        },
    )
}

/// Writes `files` under `<root>/sbom/launch/`, where `root` is a layers directory (the analyzer) or
/// `<out>/layers` (a download), all or nothing, through directory handles.
///
/// The parent of `root` is opened once (it must exist); `root`, `root/sbom` and
/// `root/sbom/launch` are opened from it, each relative to its parent's handle and never through
/// a symlink. With [`SharedOutput::Refuse`], the output directory ([`OutputDir`]) and each of
/// those that exists must be owned by the effective user (or root) and not writable by group or
/// others unless sticky ([`Error::SharedOutput`]). Every target is then checked: no directory on
/// its way may be a symlink or a file, no target anything but a regular file (a refusal names the
/// attestation whose file it blocks). When `<root>/sbom/launch` already holds entries,
/// [`Existing::Refuse`] fails with [`Error::Occupied`].
///
/// The tree is built in a temporary directory `.tmp-<name>-…` beside the topmost of `root`,
/// `root/sbom`, `root/sbom/launch` that does not exist yet (or beside `root/sbom/launch`), each
/// file created exclusively and synced, each directory synced; the directories on the way are
/// checked to be still the ones opened (or [`Error::Unsafe`], nothing moved), and the tree is
/// moved into place: one `renameat`, or for [`Existing::Replace`] of an existing tree one
/// `renameat2(RENAME_EXCHANGE)` (two renames where the file system refuses the exchange), then the
/// earlier tree is removed. On any error, and on [`interrupt`], the temporary tree is removed and
/// the destination is as it was.
pub fn write_tree_with(
    root: &Path,
    files: &[Restored],
    options: &WriteOptions,
) -> Result<Written, Error> {
    let launch = root.join("sbom").join("launch");
    let (parent, root_name) = match (root.parent(), root.file_name()) {
        (Some(parent), Some(name)) => (
            if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            },
            name.to_os_string(),
        ),
        _ => {
            return Err(Error::Unsafe {
                path: root.to_path_buf(),
                reason: "has no parent directory".into(),
            })
        }
    };
    let paths = [root.to_path_buf(), root.join("sbom"), launch.clone()];
    let names = [root_name.as_os_str(), "sbom".as_ref(), "launch".as_ref()];
    // The one lookup by full path: the directory holding `root`, as the caller named it.
    let base = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(parent, e))?;
    if options.output == OutputDir::Parent {
        check_shared(&base, parent, options.shared)?;
    }
    // handles[i] is the parent of paths[i]; handles[i + 1], when there, is paths[i] itself.
    let mut handles = vec![base];
    for (name, path) in names.iter().zip(&paths) {
        let Some(dir) = open_dir_at(last(&handles), name, path)? else {
            break;
        };
        check_shared(&dir, path, options.shared)?;
        handles.push(dir);
    }
    let existing_dirs = handles.len() - 1;
    if existing_dirs == paths.len() {
        // Every target is checked before anything is written, so a planted link refuses the whole
        // restore.
        let launch_dir = last(&handles);
        for file in files {
            check_target(launch_dir, &launch, &file.path.relative())
                .map_err(|e| blocks(e, file))?;
        }
    }
    let earlier = if existing_dirs == paths.len() {
        entries_at(last(&handles), &launch)?
    } else {
        Vec::new()
    };
    if options.existing == Existing::Refuse {
        if let Some(example) = earlier.first() {
            return Err(Error::Occupied {
                path: launch,
                count: earlier.len(),
                example: example.clone(),
            });
        }
    }
    if let Some(hook) = &options.hooks.after_check {
        hook();
    }
    // The topmost missing directory of the chain is what the temporary tree becomes; when the
    // whole chain exists, `sbom/launch` is replaced.
    let top = existing_dirs.min(paths.len() - 1);
    if top == 0 && options.output == OutputDir::Root {
        // The root itself is missing: the tree is built in, and moved within, its parent.
        check_shared(&handles[0], parent, options.shared)?;
    }
    let staging = Staging::create(&handles[top], names[top], &paths[top], &launch)?;
    let mut created: Vec<PathBuf> = vec![PathBuf::new()];
    let mut base_rel = PathBuf::new();
    for name in &names[top + 1..] {
        base_rel.push(name);
        mkdir_at(&staging.dir, &base_rel, &staging.path)?;
        created.push(base_rel.clone());
    }
    let new_launch = open_rel(&staging.dir, &base_rel, &staging.path)?
        .ok_or_else(|| io_error(&staging.path.join(&base_rel), Errno::NOENT))?;
    let mut written = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        staging.check()?;
        let relative = file.path.relative();
        let shown = launch.join(&relative);
        let mut rel = base_rel.clone();
        let mut dir: Option<OwnedFd> = None;
        for component in relative.parent().into_iter().flat_map(|p| p.components()) {
            let from = dir.as_ref().map_or(new_launch.as_fd(), |d| d.as_fd());
            let name = component.as_os_str();
            rel.push(name);
            let path = launch.join(rel.strip_prefix(&base_rel).unwrap_or(&rel));
            match rustix::fs::mkdirat(from, name, Mode::from_bits_truncate(DIR_MODE)) {
                Ok(()) => created.push(rel.clone()),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(blocks(io_error(&path, e), file)),
            }
            let next = open_dir_at(from, name, &path)
                .map_err(|e| blocks(e, file))?
                .ok_or_else(|| io_error(&path, Errno::NOENT))?;
            dir = Some(next);
        }
        let from = dir.as_ref().map_or(new_launch.as_fd(), |d| d.as_fd());
        let name = relative.file_name().unwrap_or_default();
        create_file_at(from, name, file, options.hooks.fail_file == Some(index))
            .map_err(|source| Error::Io {
                path: shown.clone(),
                source,
            })
            .map_err(|e| blocks(e, file))?;
        written.push(shown);
    }
    for rel in created.iter().rev() {
        if let Some(dir) = open_rel(&staging.dir, rel, &staging.path)? {
            let _ = rustix::fs::fsync(&dir);
        }
    }
    staging.check()?;
    // The directories on the way must still be the ones opened: one swapped for a symlink or
    // another directory since the checks fails the restore before anything is moved.
    for i in 0..existing_dirs {
        still_there(&handles[i], names[i], &handles[i + 1], &paths[i])?;
    }
    // Only a tree that was there at the check is replaced: one that appeared since is never
    // swapped out (the move then fails as occupied).
    let existing = if existing_dirs == paths.len() {
        options.existing
    } else {
        Existing::Refuse
    };
    let removed = staging.commit(existing, &options.hooks)?;
    Ok(Written {
        files: written,
        removed: if removed {
            earlier_files(&earlier)
        } else {
            Vec::new()
        },
    })
}

/// The last handle opened.
fn last(handles: &[OwnedFd]) -> BorrowedFd<'_> {
    handles[handles.len() - 1].as_fd()
}

fn io_error(path: &Path, e: Errno) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn is_symlink(dir: BorrowedFd<'_>, name: &OsStr) -> Option<bool> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Opens the directory `name` of `dir`, never through a symlink (`path` is its name in messages);
/// `None` when there is nothing by that name.
fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Option<OwnedFd>, Error> {
    match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => Err(match is_symlink(dir, name) {
            Some(true) => Error::Unsafe {
                path: path.to_path_buf(),
                reason: "is a symbolic link; refusing to write through it".into(),
            },
            Some(false) => Error::Unsafe {
                path: path.to_path_buf(),
                reason: "exists and is not a directory".into(),
            },
            None => io_error(path, e),
        }),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Opens `rel` below `dir` one component at a time, never through a symlink (`shown` is `dir`'s
/// name in messages); `None` when a component is missing.
fn open_rel(dir: &OwnedFd, rel: &Path, shown: &Path) -> Result<Option<OwnedFd>, Error> {
    let mut current = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(shown, e))?;
    let mut path = shown.to_path_buf();
    for component in rel.components() {
        path.push(component);
        match open_dir_at(current.as_fd(), component.as_os_str(), &path)? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Checks that `relative` below the existing `launch` directory can be written: each directory on
/// its way that exists is a real directory, and the target, if it exists, is a regular file.
fn check_target(launch_dir: BorrowedFd<'_>, launch: &Path, relative: &Path) -> Result<(), Error> {
    let mut dir: Option<OwnedFd> = None;
    let mut path = launch.to_path_buf();
    for component in relative.parent().into_iter().flat_map(|p| p.components()) {
        path.push(component);
        let from = dir.as_ref().map_or(launch_dir, |d| d.as_fd());
        match open_dir_at(from, component.as_os_str(), &path)? {
            Some(next) => dir = Some(next),
            None => return Ok(()),
        }
    }
    let from = dir.as_ref().map_or(launch_dir, |d| d.as_fd());
    let name = relative.file_name().unwrap_or_default();
    match rustix::fs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(_) => Ok(()),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => Ok(()),
        Ok(_) => Err(Error::Unsafe {
            path: launch.join(relative),
            reason: "exists and is not a regular file (a symlink or special file); refusing to replace it".into(),
        }),
    }
}

/// With [`SharedOutput::Refuse`]: the directory open as `dir` must be owned by the effective user
/// or root, and not writable by others, nor by a group other than its owner's private group,
/// unless sticky.
fn check_shared(dir: &OwnedFd, path: &Path, shared: SharedOutput) -> Result<(), Error> {
    if shared == SharedOutput::Allow {
        return Ok(());
    }
    let st = rustix::fs::fstat(dir).map_err(|e| io_error(path, e))?;
    let euid = rustix::process::geteuid().as_raw();
    let mode = st.st_mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let by_others = mode & 0o002 != 0;
    let by_group = mode & 0o020 != 0 && !private_group(st.st_uid, st.st_gid);
    let why = if st.st_uid != euid && st.st_uid != 0 {
        Shared::OtherOwner
    } else if (by_others || by_group) && !sticky {
        Shared::Writable
    } else {
        return Ok(());
    };
    Err(Error::SharedOutput {
        path: path.to_path_buf(),
        owner: st.st_uid,
        mode,
        why,
    })
}

/// Whether `gid` is the private group of the user `uid` (the user-private-group scheme of
/// Debian, Ubuntu and Fedora, whose umask 002 makes every new directory group-writable): the
/// group has the user's name, lists no other member, and is no other user's primary group, as
/// `/etc/passwd` and `/etc/group` say (each read up to 4 MiB). Anything else, including a group
/// these files do not hold (a directory service), counts as shared.
fn private_group(uid: u32, gid: u32) -> bool {
    fn lines(path: &str) -> Option<String> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(4 << 20)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }
    let (Some(passwd), Some(group)) = (lines("/etc/passwd"), lines("/etc/group")) else {
        return false;
    };
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let Some(name) = users.iter().find(|f| f[2].parse() == Ok(uid)).map(|f| f[0]) else {
        return false;
    };
    let others_primary = users
        .iter()
        .any(|f| f[2].parse() != Ok(uid) && f[3].parse() == Ok(gid));
    let entry = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[2].parse() == Ok(gid));
    match entry {
        Some(f) => {
            f[0] == name && !others_primary && f[3].split(',').all(|m| m.is_empty() || m == name)
        }
        None => false,
    }
}

/// The name `name` in `parent` must still be the directory open as `opened` (same device and
/// inode, not a symlink).
fn still_there(parent: &OwnedFd, name: &OsStr, opened: &OwnedFd, path: &Path) -> Result<(), Error> {
    let now = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let then = rustix::fs::fstat(opened).map_err(|e| io_error(path, e))?;
    match now {
        Some(now) if now.st_dev == then.st_dev && now.st_ino == then.st_ino => Ok(()),
        _ => Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "was replaced while the restore was being written (a symlink or another directory in its place); nothing was moved into place".into(),
        }),
    }
}

/// Creates `name` in `dir` (never through a symlink, never over anything) with the file's bytes,
/// checked as they are copied when spooled, and syncs it. `fail` (a test hook) fails it after half
/// its bytes.
fn create_file_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file: &Restored,
    fail: bool,
) -> std::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(FILE_MODE),
    )?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, fs::File::from(fd));
    if fail {
        out.write_all(&file.bytes[..file.bytes.len() / 2])?;
        out.flush()?;
        return Err(std::io::Error::other("write failed (injected by a test)"));
    }
    match &file.spooled {
        Some(spooled) => spooled.copy_checked(&mut out)?,
        None => out.write_all(&file.bytes)?,
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// The entries of a directory other than `.` and `..`, and whether each is a directory (a link
/// is not).
fn list(dir: &OwnedFd) -> rustix::io::Result<Vec<(OsString, bool)>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                .unwrap_or(false),
            _ => false,
        };
        out.push((name.to_os_string(), is_dir));
    }
    Ok(out)
}

/// The entries below the directory open as `dir` (named `path`), relative to it; directories end
/// in `/` so that [`earlier_files`] can leave them out. Links are listed, never followed.
fn entries_at(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(path, e))?;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let Some(sub) = open_rel(&dir, &relative, path)? else {
            continue;
        };
        for (name, is_dir) in list(&sub).map_err(|e| io_error(&path.join(&relative), e))? {
            let entry = relative.join(name);
            if is_dir {
                stack.push(entry.clone());
                let mut marked = entry.into_os_string();
                marked.push("/");
                out.push(PathBuf::from(marked));
            } else {
                out.push(entry);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn earlier_files(entries: &[PathBuf]) -> Vec<PathBuf> {
    entries
        .iter()
        .filter(|p| !p.as_os_str().to_string_lossy().ends_with('/'))
        .cloned()
        .collect()
}

/// Removes `name` in `dir` and everything below it, never following a link.
fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for (entry, _) in list(&sub)? {
        match remove_all_at(sub.as_fd(), &entry) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Removes a temporary tree, retrying while a writer still adds to it.
fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) {
    for _ in 0..100 {
        match remove_all_at(dir, name) {
            Ok(()) | Err(Errno::NOENT) => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// Temporary trees being built or set aside by [`write_tree_with`], for [`interrupt`]: each the
/// handle of the directory holding it and its name there.
struct Pending {
    interrupted: bool,
    /// A tree was moved into place by this process.
    committed: bool,
    trees: Vec<(Arc<OwnedFd>, OsString)>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    interrupted: false,
    committed: false,
    trees: Vec::new(),
});
/// Set by [`interrupt`]: checked by the writer before each file, without taking the lock.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn pending() -> MutexGuard<'static, Pending> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops every restore write of this process for good: each temporary tree being built is removed
/// (a tree being moved into place is first moved completely), and later writes fail with
/// [`Error::Interrupted`] before creating anything. For the binaries' SIGINT and SIGTERM handling:
/// call it from a thread that received the signal (never from the signal handler itself), then exit.
/// Returns whether a restored tree had already been moved into place (the signal came after the
/// write was complete), so that the message says what happened.
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let mut pending = pending();
    pending.interrupted = true;
    for (dir, name) in pending.trees.drain(..) {
        remove_tree_at(dir.as_fd(), &name);
    }
    pending.committed
}

/// A temporary tree in the directory open as `parent`, beside the destination `target` there,
/// removed on drop unless committed.
struct Staging {
    parent: Arc<OwnedFd>,
    name: OsString,
    target: OsString,
    target_path: PathBuf,
    /// The temporary tree's name, for messages.
    path: PathBuf,
    /// The handle of the temporary tree.
    dir: OwnedFd,
    destination: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates `.tmp-<target>-<pid>-<n>` in `parent` and registers it, under the lock, so that
    /// [`interrupt`] never misses it.
    fn create(
        parent: &OwnedFd,
        target: &OsStr,
        target_path: &Path,
        destination: &Path,
    ) -> Result<Staging, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let holder = target_path.parent().unwrap_or(Path::new("."));
        let parent = Arc::new(parent.try_clone().map_err(|source| Error::Io {
            path: holder.to_path_buf(),
            source,
        })?);
        let mut pending = pending();
        if pending.interrupted {
            return Err(Error::Interrupted {
                path: destination.to_path_buf(),
            });
        }
        for _ in 0..16 {
            let name = OsString::from(format!(
                ".tmp-{}-{}-{}",
                target.to_string_lossy(),
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let path = holder.join(&name);
            match rustix::fs::mkdirat(&*parent, &name, Mode::from_bits_truncate(DIR_MODE)) {
                Ok(()) => {
                    pending.trees.push((parent.clone(), name.clone()));
                    let dir = open_dir_at(parent.as_fd(), &name, &path)?
                        .ok_or_else(|| io_error(&path, Errno::NOENT))?;
                    return Ok(Staging {
                        parent,
                        name,
                        target: target.to_os_string(),
                        target_path: target_path.to_path_buf(),
                        path,
                        dir,
                        destination: destination.to_path_buf(),
                        committed: false,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Err(Error::Unsafe {
            path: holder.to_path_buf(),
            reason: "no free temporary directory name".into(),
        })
    }

    /// Fails once [`interrupt`] was called.
    fn check(&self) -> Result<(), Error> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Error::Interrupted {
                path: self.destination.clone(),
            });
        }
        Ok(())
    }

    /// Moves the tree to its target, under the lock (an [`interrupt`] waits for it). With
    /// [`Existing::Replace`] and an existing target, the two trees are swapped in one
    /// `renameat2(RENAME_EXCHANGE)` (where the file system refuses it: the earlier tree renamed
    /// aside, then the new one in), and the earlier tree is removed afterwards; otherwise one
    /// `renameat`, which replaces only an empty directory. Returns whether an earlier tree was
    /// replaced.
    fn commit(mut self, existing: Existing, hooks: &Hooks) -> Result<bool, Error> {
        let crash_point = || {
            if let Some(hook) = &hooks.at_commit {
                hook();
            }
        };
        let parent = self.parent.clone();
        let parent = parent.as_fd();
        // The name of the earlier tree once it is out of the way (removed after the lock).
        let mut earlier = None;
        let result = {
            let mut pending = pending();
            if pending.interrupted {
                Err(Error::Interrupted {
                    path: self.destination.clone(),
                })
            } else {
                let replacing = existing == Existing::Replace
                    && rustix::fs::statat(parent, &self.target, AtFlags::SYMLINK_NOFOLLOW).is_ok();
                crash_point();
                let moved = if replacing {
                    self.exchange(parent, &mut pending, &crash_point, hooks.no_exchange)
                } else {
                    rustix::fs::renameat(parent, &self.name, parent, &self.target)
                        .map(|()| None)
                        .map_err(|e| e.into())
                };
                match moved {
                    Ok(aside) => {
                        crash_point();
                        let name = self.name.clone();
                        pending.trees.retain(|(_, n)| *n != name);
                        if let Some(aside) = &aside {
                            pending.trees.push((self.parent.clone(), aside.clone()));
                        }
                        pending.committed = true;
                        self.committed = true;
                        earlier = aside;
                        Ok(replacing)
                    }
                    Err(source) => {
                        let earlier =
                            open_rel(&self.parent, Path::new(&self.target), &self.target_path)
                                .ok()
                                .flatten()
                                .and_then(|dir| entries_at(dir.as_fd(), &self.target_path).ok())
                                .unwrap_or_default();
                        Err(match earlier.first() {
                            // Something was written there since the check: never mixed.
                            Some(example) if !replacing => Error::Occupied {
                                path: self.target_path.clone(),
                                count: earlier.len(),
                                example: example.clone(),
                            },
                            _ => Error::Io {
                                path: self.target_path.clone(),
                                source,
                            },
                        })
                    }
                }
            }
        };
        let _ = rustix::fs::fsync(parent);
        if let Some(aside) = earlier {
            remove_tree_at(parent, &aside);
            pending().trees.retain(|(_, n)| *n != aside);
        }
        result
    }

    /// Swaps the new tree with the existing target; returns the name the earlier tree now has.
    fn exchange(
        &self,
        parent: BorrowedFd<'_>,
        pending: &mut Pending,
        crash_point: &dyn Fn(),
        no_exchange: bool,
    ) -> std::io::Result<Option<OsString>> {
        let flags = if no_exchange {
            // Refused as a file system without the exchange refuses it.
            Err(Errno::INVAL)
        } else {
            Ok(rustix::fs::RenameFlags::EXCHANGE)
        };
        match flags.and_then(|flags| {
            rustix::fs::renameat_with(parent, &self.name, parent, &self.target, flags)
        }) {
            // The earlier tree now has the temporary tree's name.
            Ok(()) => return Ok(Some(self.name.clone())),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
        // The file system cannot swap: the earlier tree aside, then the new one in.
        let mut aside = self.name.clone();
        aside.push("-replaced");
        rustix::fs::renameat(parent, &self.target, parent, &aside)?;
        pending.trees.push((self.parent.clone(), aside.clone()));
        crash_point();
        match rustix::fs::renameat(parent, &self.name, parent, &self.target) {
            Ok(()) => Ok(Some(aside)),
            Err(e) => {
                // Put the earlier tree back where it was; never remove it, even when it cannot
                // be put back (the error then says where it is).
                pending.trees.retain(|(_, n)| *n != aside);
                match rustix::fs::renameat(parent, &aside, parent, &self.target) {
                    Ok(()) => Err(e.into()),
                    Err(back) => Err(std::io::Error::new(
                        std::io::Error::from(e).kind(),
                        format!(
                            "{e}; the earlier tree could not be put back ({back}) and is kept as {}",
                            self.target_path.with_file_name(&aside).display()
                        ),
                    )),
                }
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let name = self.name.clone();
            pending().trees.retain(|(_, n)| *n != name);
            remove_tree_at(self.parent.as_fd(), &self.name);
        }
    }
}

/// Adds to a refusal the attestation(s) whose SBOM it blocks.
fn blocks(e: Error, file: &Restored) -> Error {
    match e {
        Error::Unsafe { path, reason } => Error::Unsafe {
            path,
            reason: format!("{reason} (blocks the SBOM of {})", file.source),
        },
        other => other,
    }
}

/// Creates the directory `rel` (whose parent exists) in the tree open as `dir` (named `shown`).
fn mkdir_at(dir: &OwnedFd, rel: &Path, shown: &Path) -> Result<(), Error> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let from = open_rel(dir, parent, shown)?.ok_or_else(|| io_error(shown, Errno::NOENT))?;
    let shown = shown.join(rel);
    let shown = shown.as_path();
    rustix::fs::mkdirat(
        &from,
        rel.file_name().unwrap_or_default(),
        Mode::from_bits_truncate(DIR_MODE),
    )
    .map_err(|e| io_error(shown, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnb_sbom_discovery::{BuildpackId, LayerName, SbomFormat};

    fn file() -> Restored {
        Restored {
            path: SbomPath::Sbom {
                buildpack: BuildpackId::new("acme/node").unwrap(),
                layer: Some(LayerName::new("node").unwrap()),
                format: SbomFormat::CycloneDx,
            },
            bytes: b"{}\\n".to_vec(),
            spooled: None,
            source: "test".into(),
            placement: Placement::Signed,
        }
    }

    #[test]
    fn writes_the_lifecycle_layout() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_tree(dir.path(), &[file()], Existing::Refuse).unwrap();
        assert_eq!(
            written.files,
            [dir.path().join("sbom/launch/acme_node/node/sbom.cdx.json")]
        );
        assert_eq!(fs::read(&written.files[0]).unwrap(), b"{}\\n");
        assert!(written.removed.is_empty());
        // Nothing but the tree: no temporary file or directory is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sbom"]);
    }

    #[test]
    fn refuses_a_symlink_planted_anywhere_on_the_way() {
        for planted in [
            "sbom",
            "sbom/launch",
            "sbom/launch/acme_node",
            "sbom/launch/acme_node/node/sbom.cdx.json",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let link = dir.path().join(planted);
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(outside.path(), &link).unwrap();
            let err = write_tree(dir.path(), &[file()], Existing::Replace).unwrap_err();
            assert!(
                err.to_string().contains("symbolic link")
                    || err.to_string().contains("not a regular file"),
                "{planted}: {err}"
            );
            assert_eq!(
                fs::read_dir(outside.path()).unwrap().count(),
                0,
                "{planted}: wrote outside"
            );
        }
    }

    fn stale(dir: &Path) {
        let earlier = dir.join("sbom/launch/other_image/sbom.cdx.json");
        fs::create_dir_all(earlier.parent().unwrap()).unwrap();
        fs::write(&earlier, "an earlier image's SBOM").unwrap();
    }

    #[test]
    fn an_occupied_destination_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        stale(dir.path());
        let err = write_tree(dir.path(), &[file()], Existing::Refuse).unwrap_err();
        let Error::Occupied {
            path,
            count,
            example,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*path, dir.path().join("sbom/launch"));
        assert_eq!(*count, 2);
        assert_eq!(*example, PathBuf::from("other_image/"));
        assert!(!dir.path().join("sbom/launch/acme_node").exists());
        assert_eq!(fs::read_dir(dir.path().join("sbom")).unwrap().count(), 1);
    }

    #[test]
    fn replace_swaps_the_whole_tree_and_reports_what_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        stale(dir.path());
        let written = write_tree(dir.path(), &[file()], Existing::Replace).unwrap();
        assert_eq!(
            written.removed,
            [PathBuf::from("other_image/sbom.cdx.json")]
        );
        assert!(!dir.path().join("sbom/launch/other_image").exists());
        assert!(written.files[0].is_file());
        let names: Vec<_> = fs::read_dir(dir.path().join("sbom"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["launch"]);
    }

    #[test]
    fn a_failed_write_leaves_no_file_and_no_temporary_tree() {
        let dir = tempfile::tempdir().unwrap();
        // The second file's directory is the first file: the write fails half way.
        let mut inside = file();
        inside.path = SbomPath::Sbom {
            buildpack: BuildpackId::new("acme/node").unwrap(),
            layer: Some(LayerName::new("sbom.cdx.json").unwrap()),
            format: SbomFormat::CycloneDx,
        };
        let mut outer = file();
        outer.path = SbomPath::Sbom {
            buildpack: BuildpackId::new("acme/node").unwrap(),
            layer: None,
            format: SbomFormat::CycloneDx,
        };
        assert!(write_tree(dir.path(), &[outer, inside], Existing::Replace).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Two files in two directories, with these bytes.
    fn two(tag: &str) -> Vec<Restored> {
        let mut second = file();
        second.path = SbomPath::Sbom {
            buildpack: BuildpackId::new("acme/java").unwrap(),
            layer: None,
            format: SbomFormat::CycloneDx,
        };
        let mut first = file();
        first.bytes = format!("{{\"first\":\"{tag}\"}}").into_bytes();
        second.bytes = format!("{{\"second\":\"{tag}\"}}").into_bytes();
        vec![first, second]
    }

    /// Every file below `dir` with its bytes (links listed as `-> target`), none followed.
    fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(read) = fs::read_dir(&d) else { continue };
            for entry in read {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).unwrap();
                    out.insert(relative, format!("-> {}", target.display()).into_bytes());
                } else if meta.is_dir() {
                    stack.push(path);
                } else {
                    out.insert(relative, fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    fn with_hook(existing: Existing, hook: impl Fn() + Send + Sync + 'static) -> WriteOptions {
        WriteOptions {
            existing,
            hooks: Hooks {
                after_check: Some(Arc::new(hook)),
                ..Hooks::default()
            },
            ..WriteOptions::default()
        }
    }

    /// Case 57, the race: a directory on the way is swapped for a symlink to another directory
    /// after the checks and before the writes. Nothing is written through it: the restore fails
    /// closed and the other directory stays empty.
    #[test]
    fn a_directory_swapped_for_a_symlink_after_the_checks_is_not_followed() {
        for (swapped, existing) in [
            ("layers/sbom", Existing::Refuse),
            ("layers", Existing::Replace),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let root = dir.path().join("layers");
            fs::create_dir_all(root.join("sbom")).unwrap();
            if existing == Existing::Replace {
                stale(&root);
            }
            let before = tree(dir.path());
            let victim = dir.path().join(swapped);
            let aside = dir.path().join(format!("{swapped}-real"));
            let link_to = outside.path().to_path_buf();
            let options = with_hook(existing, move || {
                fs::rename(&victim, &aside).unwrap();
                std::os::unix::fs::symlink(&link_to, &victim).unwrap();
            });
            let result = write_tree_with(&root, &two("new"), &options);
            assert_eq!(
                tree(outside.path()),
                Default::default(),
                "{swapped}: written through the symlink ({result:?})"
            );
            let err = result.unwrap_err();
            assert!(
                err.to_string()
                    .contains("was replaced while the restore was being written"),
                "{swapped}: {err}"
            );
            // What was there is untouched, where the swap moved it, and no temporary tree is left.
            let after: std::collections::BTreeMap<_, _> = tree(dir.path())
                .into_iter()
                .filter(|(p, _)| {
                    !p.starts_with(swapped) || p.starts_with(format!("{swapped}-real"))
                })
                .map(|(p, b)| {
                    let p = match p.strip_prefix(format!("{swapped}-real")) {
                        Ok(rest) => Path::new(swapped).join(rest),
                        Err(_) => p,
                    };
                    (p, b)
                })
                .collect();
            assert_eq!(after, before, "{swapped}");
        }
    }

    /// Case 59: an I/O error on the second file, replacing an earlier tree: no new file, no
    /// temporary tree, the earlier tree byte for byte.
    #[test]
    fn an_io_error_partway_leaves_the_earlier_tree_and_no_temporary_tree() {
        for existing in [Existing::Replace, Existing::Refuse] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("layers");
            if existing == Existing::Replace {
                stale(&root);
            }
            let before = tree(dir.path());
            let options = WriteOptions {
                existing,
                hooks: Hooks {
                    fail_file: Some(1),
                    ..Hooks::default()
                },
                ..WriteOptions::default()
            };
            let err = write_tree_with(&root, &two("new"), &options).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err}");
            assert!(err.to_string().contains("acme_java/sbom.cdx.json"), "{err}");
            assert_eq!(tree(dir.path()), before, "{existing:?}");
            let names: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                names
                    .iter()
                    .all(|n| !n.to_string_lossy().starts_with(".tmp-")),
                "{names:?}"
            );
        }
    }

    /// Case 59, the move into place: at every point where a crash could strike, `sbom/launch`
    /// holds the earlier tree or the new one, whole, never neither.
    #[test]
    fn replacing_a_tree_leaves_the_earlier_or_the_new_one_at_every_crash_point() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layers");
        let launch = root.join("sbom/launch");
        write_tree(&root, &two("old"), Existing::Refuse).unwrap();
        let old = tree(&launch);
        let files = two("new");
        let new: std::collections::BTreeMap<_, _> = files
            .iter()
            .map(|f| (f.path.relative(), f.bytes.clone()))
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let options = WriteOptions {
            existing: Existing::Replace,
            hooks: Hooks {
                at_commit: Some(Arc::new(move || {
                    let now = tree(&launch);
                    record.lock().unwrap().push(if now == old {
                        "old"
                    } else if now == new {
                        "new"
                    } else {
                        "neither"
                    });
                })),
                ..Hooks::default()
            },
            ..WriteOptions::default()
        };
        write_tree_with(&root, &files, &options).unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.first(), Some(&"old"), "{seen:?}");
        assert_eq!(seen.last(), Some(&"new"), "{seen:?}");
        assert!(!seen.contains(&"neither"), "{seen:?}");
        let names: Vec<_> = fs::read_dir(root.join("sbom"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["launch"]);
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Case 58: an output directory, or a directory on the way, that other users can write to (no
    /// sticky bit) or that another user owns is refused before anything is written, unless
    /// allowed; a sticky world-writable directory (as `/tmp`) and the lifecycle's 0755 layers
    /// directory pass.
    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn egid() -> u32 {
        rustix::process::getegid().as_raw()
    }

    /// The user-private-group reading of `/etc/passwd` and `/etc/group`: root's own group is
    /// private here; `users` (shared by name) and an unknown group are not.
    #[test]
    fn a_private_group_is_the_users_own_and_nothing_else() {
        if euid() == 0
            && std::fs::read_to_string("/etc/group")
                .is_ok_and(|g| g.contains("\nroot:x:0:\n") || g.starts_with("root:x:0:\n"))
        {
            assert!(private_group(0, 0));
        }
        assert!(!private_group(euid(), 100));
        assert!(!private_group(euid(), 4_000_000_000));
        assert!(!private_group(4_000_000_000, 4_000_000_000));
    }

    #[test]
    fn directories_other_users_can_change_are_refused_unless_allowed() {
        // Group 100 (`users` on Debian) is shared; a directory's own group when the tests run as
        // root is root's private group (`root:x:0:`, no member, no other user's primary group).
        let cases: [(&str, u32, Option<u32>, OutputDir, bool); 9] = [
            ("layers", 0o755, None, OutputDir::Root, true),
            ("layers", 0o777, None, OutputDir::Root, false),
            ("layers", 0o775, Some(100), OutputDir::Root, false),
            (
                "layers",
                0o775,
                None,
                OutputDir::Root,
                private_group(euid(), egid()),
            ),
            ("layers", 0o1777, None, OutputDir::Root, true),
            ("layers/sbom", 0o757, None, OutputDir::Root, false),
            ("layers/sbom", 0o770, Some(100), OutputDir::Root, false),
            ("", 0o777, None, OutputDir::Root, true),
            ("", 0o777, None, OutputDir::Parent, false),
        ];
        for (which, mode, group, output, passes) in cases {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("layers");
            fs::create_dir_all(root.join("sbom")).unwrap();
            let changed = dir.path().join(which);
            chmod(&changed, mode);
            if let Some(gid) = group {
                std::os::unix::fs::chown(&changed, None, Some(gid)).unwrap();
            }
            let mut options = WriteOptions {
                existing: Existing::Refuse,
                output,
                ..WriteOptions::default()
            };
            let result = write_tree_with(&root, &two("new"), &options);
            if passes {
                assert!(result.is_ok(), "{which} {mode:o}: {result:?}");
                continue;
            }
            let err = result.unwrap_err();
            let Error::SharedOutput {
                path,
                mode: shown,
                why,
                ..
            } = &err
            else {
                panic!("{which} {mode:o}: {err}")
            };
            assert_eq!((path, *shown, *why), (&changed, mode, Shared::Writable));
            assert!(
                err.to_string().contains(&format!("mode {mode:04o}")),
                "{err}"
            );
            assert_eq!(tree(dir.path()), Default::default(), "nothing written");
            options.shared = SharedOutput::Allow;
            write_tree_with(&root, &two("new"), &options).unwrap();
        }
    }

    /// Case 58: a directory owned by another user (faked with `chown 65534`, which needs root) is
    /// refused, root included.
    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layers");
        fs::create_dir_all(&root).unwrap();
        if std::os::unix::fs::chown(&root, Some(65534), Some(65534)).is_err() {
            eprintln!("chown needs root; skipped");
            return;
        }
        let err = write_tree(&root, &two("new"), Existing::Refuse).unwrap_err();
        let Error::SharedOutput {
            path, owner, why, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((path, *owner, *why), (&root, 65534, Shared::OtherOwner));
        assert!(err.to_string().contains("owner uid 65534"), "{err}");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }

    /// Where the file system refuses `RENAME_EXCHANGE`, the earlier tree is renamed aside and the
    /// new one in: the result is the same, and nothing is left beside it.
    #[test]
    fn without_the_exchange_two_renames_replace_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layers");
        stale(&root);
        let options = WriteOptions {
            existing: Existing::Replace,
            hooks: Hooks {
                no_exchange: true,
                ..Hooks::default()
            },
            ..WriteOptions::default()
        };
        let written = write_tree_with(&root, &two("new"), &options).unwrap();
        assert_eq!(
            written.removed,
            [PathBuf::from("other_image/sbom.cdx.json")]
        );
        let expected: std::collections::BTreeMap<_, _> = two("new")
            .into_iter()
            .map(|f| (f.path.relative(), f.bytes))
            .collect();
        assert_eq!(tree(&root.join("sbom/launch")), expected);
        let names: Vec<_> = fs::read_dir(root.join("sbom"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["launch"]);
    }
}
