//! Validation against the file system, and reading predicates safely.

use std::fs::{self, Metadata};
use std::path::{Component, Path, PathBuf};

use cnb_local_files::ReadError;
use cnb_sbom_discovery::SbomFormat;

use crate::annotations;
use crate::checks;
use crate::error::{sanitize, Error};
use crate::model::{AttestationSpec, PredicateSource, SignerConfig};
use crate::Digest;

/// Default cap on one predicate read (into memory) by [`AttestationSpec::read_predicate`]:
/// 256 MiB. Signers stream larger predicate files up to a cap of their own.
pub const DEFAULT_MAX_PREDICATE_SIZE: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    /// The directory as given, when it is absolute and has no `..`.
    given: Option<PathBuf>,
    /// The canonical directory; everything below it is checked link by link.
    canonical: PathBuf,
}

/// The directories a predicate `uri` may point into (the layers directory, the platform
/// directory). Each root is canonicalized once; a `uri` must lie lexically below a root (as
/// given or as canonicalized), and no component below the root may be a symbolic link.
///
/// ```
/// use cnb_attestation_config::AllowedRoots;
/// let layers = tempfile::tempdir()?;
/// let platform = tempfile::tempdir()?;
/// let roots = AllowedRoots::new(&[layers.path(), platform.path()])?;
/// assert_eq!(roots.dirs().count(), 2);
/// assert_eq!(AllowedRoots::default().dirs().count(), 0); // refuses every `uri`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedRoots {
    roots: Vec<Root>,
}

impl AllowedRoots {
    /// The given root directories, each canonicalized now (each must exist and be a
    /// directory). [`AllowedRoots::default`] has no roots and refuses every `uri`.
    pub fn new<P: AsRef<Path>>(dirs: &[P]) -> Result<Self, Error> {
        let mut roots = Self::default();
        for dir in dirs {
            roots.add(dir.as_ref())?;
        }
        Ok(roots)
    }

    /// Add a root directory (canonicalized now; it must exist and be a directory).
    pub fn add(&mut self, dir: &Path) -> Result<(), Error> {
        let canonical = dir.canonicalize().map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let meta = fs::metadata(&canonical).map_err(|source| Error::Read {
            path: canonical.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::Invalid {
                field: "allowed root".into(),
                reason: format!("{} is not a directory", dir.display()),
            });
        }
        let given = (dir.is_absolute()
            && !dir
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir)))
        .then(|| dir.components().collect::<PathBuf>());
        self.roots.push(Root { given, canonical });
        Ok(())
    }

    /// Builder form of [`AllowedRoots::add`].
    pub fn with(mut self, dir: &Path) -> Result<Self, Error> {
        self.add(dir)?;
        Ok(self)
    }

    /// The canonical root directories.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|r| r.canonical.as_path())
    }

    /// Check a `uri` and return the canonical path to open plus its (link-free) metadata.
    fn resolve(&self, field: &str, uri: &Path) -> Result<(PathBuf, Metadata), Error> {
        let shown = sanitize(&uri.to_string_lossy());
        let refuse = |reason: String| Error::Uri {
            field: field.to_string(),
            uri: shown.clone(),
            reason,
        };
        let s = uri
            .to_str()
            .ok_or_else(|| refuse("is not valid UTF-8".into()))?;
        checks::uri(s).map_err(refuse)?;
        let found = self.roots.iter().find_map(|root| {
            root.given
                .iter()
                .chain(std::iter::once(&root.canonical))
                .find_map(|form| uri.strip_prefix(form).ok())
                .map(|rel| (root, rel))
        });
        let Some((root, rel)) = found else {
            let list = self
                .roots
                .iter()
                .map(|r| r.canonical.display().to_string())
                .collect::<Vec<_>>();
            return Err(refuse(if list.is_empty() {
                "is outside the allowed roots (none were given)".into()
            } else {
                format!("is outside the allowed roots ({})", list.join(", "))
            }));
        };
        let components: Vec<_> = rel.components().collect();
        if components.is_empty() {
            return Err(refuse("names a root directory, not a file".into()));
        }
        let mut current = root.canonical.clone();
        let last = components.len() - 1;
        for (i, component) in components.into_iter().enumerate() {
            current.push(component);
            let meta = match fs::symlink_metadata(&current) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(refuse(format!(
                        "does not exist ({} is missing)",
                        current.display()
                    )))
                }
                Err(e) => {
                    return Err(refuse(format!(
                        "cannot be read ({}: {e})",
                        current.display()
                    )))
                }
            };
            let ft = meta.file_type();
            if ft.is_symlink() {
                return Err(refuse(format!(
                    "is a symbolic link or passes through one ({})",
                    current.display()
                )));
            }
            if i < last && !ft.is_dir() {
                return Err(refuse(format!(
                    "is not below a directory ({} is not one)",
                    current.display()
                )));
            }
            if i == last {
                if !ft.is_file() {
                    return Err(refuse("is not a regular file".into()));
                }
                return Ok((current, meta));
            }
        }
        Err(refuse("names a root directory, not a file".into()))
    }
}

impl SignerConfig {
    /// Check everything [`crate::parse`] checks (for values built in code) plus the file
    /// system: every predicate `uri` lies inside `roots`, exists, is a regular file, and no
    /// component below its root is a symbolic link.
    pub fn validate(&self, roots: &AllowedRoots) -> Result<(), Error> {
        checks::reference(&self.image.reference).map_err(|reason| Error::Invalid {
            field: "image.reference".into(),
            reason,
        })?;
        for (i, a) in self.attestations.iter().enumerate() {
            let path = format!("attestations[{i}]");
            let invalid = |field: String, reason: String| Error::Invalid { field, reason };
            checks::predicate_type(&a.predicate.predicate_type)
                .map_err(|r| invalid(format!("{path}.predicate[0].type"), r))?;
            match &a.predicate.source {
                PredicateSource::Uri(uri) => {
                    roots.resolve(&format!("{path}.predicate[0].uri"), uri)?;
                }
                PredicateSource::Value(v) => {
                    checks::value(v)
                        .map_err(|r| invalid(format!("{path}.predicate[0].value"), r))?;
                }
            }
            if a.subjects.is_empty() {
                return Err(invalid(
                    format!("{path}.statement.subject"),
                    "at least one subject is required".into(),
                ));
            }
            for (j, s) in a.subjects.iter().enumerate() {
                checks::subject_name(&s.name)
                    .map_err(|r| invalid(format!("{path}.statement.subject[{j}].name"), r))?;
            }
            let mut seen = checks::Unique::default();
            for (j, (name, _)) in a.annotations.iter().enumerate() {
                let field = format!("{path}.annotations[{j}].name");
                checks::annotation_name(name).map_err(|r| invalid(field.clone(), r))?;
                seen.add(name).map_err(|r| invalid(field, r))?;
            }
        }
        Ok(())
    }

    /// Same as [`AttestationSpec::read_predicate`] (convenience for callers holding the
    /// configuration).
    pub fn read_predicate(
        &self,
        spec: &AttestationSpec,
        roots: &AllowedRoots,
        cap: u64,
    ) -> Result<Vec<u8>, Error> {
        spec.read_predicate(roots, cap)
    }
}

impl AttestationSpec {
    /// The predicate bytes, exactly as stored, for the signer to embed.
    ///
    /// A `uri` is re-checked against `roots` (inside a root, no links, a regular file), opened,
    /// confirmed to be the file that was checked, and read with at most `cap` bytes. An inline
    /// `value` must be at most `cap` bytes. The bytes must be a JSON object; for the three SBOM
    /// predicate types they must also be of that format. When the attestation carries
    /// `io.buildpacks.sbom.digest`, the bytes must still have that digest.
    pub fn read_predicate(&self, roots: &AllowedRoots, cap: u64) -> Result<Vec<u8>, Error> {
        let (bytes, name) = match &self.predicate.source {
            PredicateSource::Uri(uri) => {
                let (path, meta) = roots.resolve("predicate[0].uri", uri)?;
                (read_checked(&path, &meta, cap)?, path)
            }
            PredicateSource::Value(v) => {
                let name = PathBuf::from("<inline predicate value>");
                if v.len() as u64 > cap {
                    return Err(Error::TooLarge { path: name, cap });
                }
                (v.as_bytes().to_vec(), name)
            }
        };
        match SbomFormat::from_predicate_type(&self.predicate.predicate_type) {
            Some(format) => format.check_content_of(&name, &bytes)?,
            None => {
                let text = std::str::from_utf8(&bytes).map_err(|e| Error::NotUtf8 {
                    path: name.clone(),
                    offset: e.valid_up_to(),
                })?;
                checks::value(text).map_err(|reason| Error::Invalid {
                    field: format!("predicate from {}", name.display()),
                    reason,
                })?;
            }
        }
        if let Some(expected) = self.annotation(annotations::SBOM_DIGEST) {
            let actual = Digest::of(&bytes).to_string();
            if actual != expected {
                return Err(Error::PredicateChanged {
                    path: name,
                    expected: sanitize(expected),
                    actual,
                });
            }
        }
        Ok(bytes)
    }
}

/// A predicate file checked against the allowed roots, for a signer that streams it instead of
/// reading it whole ([`AttestationSpec::predicate_file`]).
#[derive(Debug, Clone)]
pub struct PredicateFile {
    path: PathBuf,
    checked: Metadata,
    cap: u64,
}

impl PredicateFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length when it was checked.
    pub fn len(&self) -> u64 {
        self.checked.len()
    }

    /// Whether it was empty when it was checked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens it, making sure it is still the file that was checked (not a link, not replaced).
    /// Reads must stop at [`PredicateFile::len`] and check that they got that many bytes.
    pub fn open(&self) -> Result<std::fs::File, Error> {
        cnb_local_files::open_checked(&self.path, self.cap, &self.checked)
            .map_err(read_error(&self.path, self.cap))
    }
}

impl AttestationSpec {
    /// For a predicate given by `uri`: the checked file (inside a root, no links, a regular file
    /// of at most `cap` bytes), to stream. `None` for an inline value. Its content is not checked:
    /// the caller checks it as it streams, as [`AttestationSpec::read_predicate`] would.
    pub fn predicate_file(
        &self,
        roots: &AllowedRoots,
        cap: u64,
    ) -> Result<Option<PredicateFile>, Error> {
        match &self.predicate.source {
            PredicateSource::Uri(uri) => {
                let (path, checked) = roots.resolve("predicate[0].uri", uri)?;
                let file = PredicateFile { path, checked, cap };
                // The same refusals as a read, before anything is streamed.
                file.open()?;
                Ok(Some(file))
            }
            PredicateSource::Value(_) => Ok(None),
        }
    }
}

/// Read a file whose link-free metadata was just taken, bounded, and make sure the opened
/// file is that file.
fn read_checked(path: &Path, checked: &Metadata, cap: u64) -> Result<Vec<u8>, Error> {
    cnb_local_files::read_checked(path, cap, checked).map_err(read_error(path, cap))
}

/// The crate's error for a failed bounded read of `path` (capped at `cap`): `TooLarge`, or
/// `Read` with the I/O error or the refusal ("not a regular file", "the file was replaced
/// while it was being read").
pub(crate) fn read_error(path: &Path, cap: u64) -> impl FnOnce(ReadError) -> Error + '_ {
    move |e| match e {
        ReadError::TooLarge { .. } => Error::TooLarge {
            path: path.to_path_buf(),
            cap,
        },
        e => Error::Read {
            path: path.to_path_buf(),
            source: e.into(),
        },
    }
}
