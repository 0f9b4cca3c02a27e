//! Writing restored files, all or nothing: the whole tree is built in a temporary directory beside
//! its destination (same file system), synced, then moved into place with `rename`. A failure or an
//! interruption ([`interrupt`], called on SIGINT or SIGTERM) removes the temporary tree and leaves
//! the destination as it was. Every path is built from validated components, and nothing at or
//! below the target is a symlink that gets followed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::path::SbomPath;
use crate::Error;
/// Creates `path` (which must not exist) with the content of `spooled`, checked as it is copied,
/// and syncs it.
fn create_synced_from(path: &Path, spooled: &crate::spool::Spooled) -> std::io::Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    spooled.copy_checked(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

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

/// Writes `files` under `<root>/sbom/launch/`, where `root` is a layers directory (the analyzer) or
/// `<out>/layers` (a download), all or nothing.
///
/// First every directory and target on the way is checked: `root` and every directory below it
/// must be real directories, never symlinks, and no target may be anything but a regular file (a
/// refusal names the attestation whose file it blocks). Then, when `<root>/sbom/launch` already
/// holds entries, [`Existing::Refuse`] fails with [`Error::Occupied`]. The tree is then built in a
/// temporary directory `.tmp-<name>-…` beside the topmost directory of `root`, `root/sbom`,
/// `root/sbom/launch` that does not exist yet (or beside `root/sbom/launch`), every file and
/// directory synced, and moved into place with one `rename` (two for [`Existing::Replace`]: the
/// earlier tree aside, the new one in; the earlier one is then removed). On any error, and on
/// [`interrupt`], the temporary tree is removed and the destination is as it was.
pub fn write_tree(root: &Path, files: &[Restored], existing: Existing) -> Result<Written, Error> {
    let launch = root.join("sbom").join("launch");
    let chain = [root.to_path_buf(), root.join("sbom"), launch.clone()];
    // Check every directory and target first, so a planted link refuses the whole restore before
    // anything is written.
    for dir in &chain {
        check_existing(dir, true)?;
    }
    for file in files {
        let relative = file.path.relative();
        let mut dir = launch.clone();
        for component in relative.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(component);
            check_existing(&dir, true).map_err(|e| blocks(e, file))?;
        }
        check_existing(&launch.join(&relative), false).map_err(|e| blocks(e, file))?;
    }
    let earlier = entries(&launch)?;
    if existing == Existing::Refuse {
        if let Some(example) = earlier.first() {
            return Err(Error::Occupied {
                path: launch,
                count: earlier.len(),
                example: example.clone(),
            });
        }
    }
    // The topmost missing directory of the chain is what the temporary tree becomes; when the
    // whole chain exists, `sbom/launch` is replaced.
    let top = chain
        .iter()
        .position(|d| fs::symlink_metadata(d).is_err())
        .unwrap_or(chain.len() - 1);
    let staging = Staging::create(&chain[top], &launch)?;
    let mut base = staging.path.clone();
    let mut dirs = vec![base.clone()];
    for dir in &chain[top + 1..] {
        base.push(dir.file_name().unwrap_or_default());
        create_dir(&base)?;
        dirs.push(base.clone());
    }
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        staging.check()?;
        let relative = file.path.relative();
        let mut dir = base.clone();
        for component in relative.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(component);
            if fs::symlink_metadata(&dir).is_err() {
                create_dir(&dir).map_err(|e| blocks(e, file))?;
                dirs.push(dir.clone());
            }
        }
        let target = base.join(&relative);
        match &file.spooled {
            Some(spooled) => create_synced_from(&target, spooled)
                .map_err(|source| Error::Io {
                    path: launch.join(&relative),
                    source,
                })
                .map_err(|e| blocks(e, file))?,
            None => cnb_local_files::create_synced(&target, &file.bytes)
                .map_err(|e| local(e, &launch.join(&relative)))
                .map_err(|e| blocks(e, file))?,
        }
        written.push(launch.join(&relative));
    }
    for dir in dirs.iter().rev() {
        cnb_local_files::sync_dir(dir);
    }
    staging.check()?;
    let removed = staging.commit(&chain[top], existing)?;
    Ok(Written {
        files: written,
        removed: if removed {
            earlier_files(&earlier)
        } else {
            Vec::new()
        },
    })
}

/// The entries below `dir` (none when it does not exist), relative to it; directories end in `/`
/// so that [`earlier_files`] can leave them out. Links are listed, never followed.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let read = match fs::read_dir(dir.join(&relative)) {
            Ok(read) => read,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && relative.as_os_str().is_empty() =>
            {
                return Ok(out)
            }
            Err(source) => {
                return Err(Error::Io {
                    path: dir.join(&relative),
                    source,
                })
            }
        };
        for entry in read {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.join(&relative),
                source,
            })?;
            let path = relative.join(entry.file_name());
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                stack.push(path.clone());
                let mut marked = path.into_os_string();
                marked.push("/");
                out.push(PathBuf::from(marked));
            } else {
                out.push(path);
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

/// Temporary trees being built or set aside by [`write_tree`], for [`interrupt`].
struct Pending {
    interrupted: bool,
    /// A tree was moved into place by this process.
    committed: bool,
    trees: Vec<PathBuf>,
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
    for tree in pending.trees.drain(..) {
        remove_tree(&tree);
    }
    pending.committed
}

/// Removes a temporary tree, retrying while a writer still adds to it.
fn remove_tree(tree: &Path) {
    for _ in 0..100 {
        match fs::remove_dir_all(tree) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            _ => return,
        }
    }
}

/// A temporary tree beside `target`, removed on drop unless committed.
struct Staging {
    path: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates `.tmp-<name of target>-<pid>-<n>` beside `target` and registers it, under the lock,
    /// so that [`interrupt`] never misses it.
    fn create(target: &Path, destination: &Path) -> Result<Staging, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let parent = target.parent().ok_or_else(|| Error::Unsafe {
            path: target.to_path_buf(),
            reason: "has no parent directory".into(),
        })?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut pending = pending();
        if pending.interrupted {
            return Err(Error::Interrupted {
                path: destination.to_path_buf(),
            });
        }
        for _ in 0..16 {
            let path = parent.join(format!(
                ".tmp-{name}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::create_dir(&path) {
                Ok(()) => {
                    pending.trees.push(path.clone());
                    return Ok(Staging {
                        path,
                        destination: destination.to_path_buf(),
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
        Err(Error::Unsafe {
            path: parent.to_path_buf(),
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

    /// Moves the tree to `target`, under the lock (an [`interrupt`] waits for it). Replaces an
    /// existing `target` with [`Existing::Replace`] (the earlier tree is set aside, then removed);
    /// with [`Existing::Refuse`], only an empty directory is replaced (`rename` itself refuses a
    /// non-empty one). Returns whether an earlier tree was replaced.
    fn commit(mut self, target: &Path, existing: Existing) -> Result<bool, Error> {
        let mut aside = None;
        let result = {
            let mut pending = pending();
            if pending.interrupted {
                Err(Error::Interrupted {
                    path: self.destination.clone(),
                })
            } else {
                let replacing =
                    existing == Existing::Replace && fs::symlink_metadata(target).is_ok();
                let moved_aside = if replacing {
                    let old = self.path.with_file_name(format!(
                        "{}-replaced",
                        self.path.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    fs::rename(target, &old)
                        .map(|()| Some(old))
                        .map_err(|source| Error::Io {
                            path: target.to_path_buf(),
                            source,
                        })
                } else {
                    Ok(None)
                };
                match moved_aside {
                    Err(e) => Err(e),
                    Ok(old) => match fs::rename(&self.path, target) {
                        Ok(()) => {
                            pending.trees.retain(|t| *t != self.path);
                            if let Some(old) = &old {
                                pending.trees.push(old.clone());
                            }
                            pending.committed = true;
                            self.committed = true;
                            aside = old;
                            Ok(replacing)
                        }
                        Err(source) => {
                            // Put the earlier tree back where it was.
                            if let Some(old) = &old {
                                let _ = fs::rename(old, target);
                            }
                            let earlier = entries(target).unwrap_or_default();
                            Err(match earlier.first() {
                                // Something was written there since the check: never mixed.
                                Some(example) if !replacing => Error::Occupied {
                                    path: target.to_path_buf(),
                                    count: earlier.len(),
                                    example: example.clone(),
                                },
                                _ => Error::Io {
                                    path: target.to_path_buf(),
                                    source,
                                },
                            })
                        }
                    },
                }
            }
        };
        if let Some(parent) = target.parent() {
            cnb_local_files::sync_dir(parent);
        }
        if let Some(old) = aside {
            remove_tree(&old);
            pending().trees.retain(|t| *t != old);
        }
        result
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            pending().trees.retain(|t| *t != self.path);
            remove_tree(&self.path);
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

/// When `path` exists: it must be a real directory (`dir`) or a regular file, never a symlink.
fn check_existing(path: &Path, dir: bool) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "is a symbolic link; refusing to write through it".into(),
        }),
        Ok(meta) if dir && !meta.is_dir() => Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "exists and is not a directory".into(),
        }),
        Ok(meta) if !dir && !meta.is_file() => Err(Error::Unsafe {
            path: path.to_path_buf(),
            reason: "exists and is not a regular file (a symlink or special file); refusing to replace it".into(),
        }),
        Ok(_) => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn local(e: cnb_local_files::WriteError, path: &Path) -> Error {
    match e {
        cnb_local_files::WriteError::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => Error::Unsafe {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
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
}
