//! Writing restored files: every path is built from validated components, nothing at or above the
//! target is a symlink that gets followed, and each file appears whole (temporary file + rename).

use std::fs;
use std::path::{Path, PathBuf};

use crate::path::SbomPath;
use crate::Error;

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Where it goes under `sbom/launch/`.
    pub path: SbomPath,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
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

/// Writes `files` under `<root>/sbom/launch/`, where `root` is a layers directory (the analyzer) or
/// `<out>/layers` (a download). `root` and every directory below it must be real directories,
/// never symlinks; existing files are replaced atomically, never written through.
/// Returns the paths written.
pub fn write_tree(root: &Path, files: &[Restored]) -> Result<Vec<PathBuf>, Error> {
    // Check every directory and target first, so a planted link refuses the whole restore before
    // anything is written (not after the files before it).
    for file in files {
        let relative = Path::new("sbom").join("launch").join(file.path.relative());
        let mut dir = root.to_path_buf();
        for component in relative.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(component);
            check_existing(&dir, true).map_err(|e| blocks(e, file))?;
        }
        check_existing(&root.join(&relative), false).map_err(|e| blocks(e, file))?;
    }
    ensure_dir(root, true)?;
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        let relative = Path::new("sbom").join("launch").join(file.path.relative());
        let blocked = |e: Error| blocks(e, file);
        let mut dir = root.to_path_buf();
        let parents: Vec<_> = relative
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .collect();
        for component in parents {
            dir.push(component);
            ensure_dir(&dir, true).map_err(blocked)?;
        }
        let target = root.join(&relative);
        write_atomic(&target, &file.bytes).map_err(blocked)?;
        written.push(target);
    }
    Ok(written)
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

/// Makes sure `dir` is a directory that is not a symlink (creating it when `create`).
fn ensure_dir(dir: &Path, create: bool) -> Result<(), Error> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Unsafe {
            path: dir.to_path_buf(),
            reason: "is a symbolic link; refusing to write through it".into(),
        }),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Unsafe {
            path: dir.to_path_buf(),
            reason: "exists and is not a directory".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => fs::create_dir(dir)
            .map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                source: e,
            }),
        Err(e) => Err(Error::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), Error> {
    cnb_local_files::write_atomic(target, bytes).map_err(|e| match e {
        cnb_local_files::WriteError::Io(source) => Error::Io {
            path: target.to_path_buf(),
            source,
        },
        other => Error::Unsafe {
            path: target.to_path_buf(),
            reason: other.to_string(),
        },
    })
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
            source: "test".into(),
            placement: Placement::Signed,
        }
    }

    #[test]
    fn writes_the_lifecycle_layout() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_tree(dir.path(), &[file()]).unwrap();
        assert_eq!(
            written,
            [dir.path().join("sbom/launch/acme_node/node/sbom.cdx.json")]
        );
        assert_eq!(fs::read(&written[0]).unwrap(), b"{}\\n");
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
            let err = write_tree(dir.path(), &[file()]).unwrap_err();
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
}
