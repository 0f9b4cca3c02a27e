//! The configuration types and the TOML writer.

use std::fs;
use std::path::{Path, PathBuf};

use crate::checks;
use crate::error::Error;
use crate::Digest;

/// The signer configuration: which image to sign and which attestations to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerConfig {
    /// `[image]`.
    pub image: ImageSection,
    /// `[[attestations]]`, in file order.
    pub attestations: Vec<AttestationSpec>,
}

/// `[image]`: the image the attestations are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSection {
    /// A reference pinned by digest: `<name>[:<tag>]@sha256:<hex>`.
    pub reference: String,
}

impl ImageSection {
    /// The manifest digest the reference pins.
    pub fn digest(&self) -> Result<Digest, Error> {
        checks::reference(&self.reference).map_err(|reason| Error::Invalid {
            field: "image.reference".into(),
            reason,
        })
    }

    /// The repository part of the reference (no tag, no digest), e.g. `my.registry.io/ns/img`.
    pub fn repository(&self) -> &str {
        checks::repository(&self.reference)
    }
}

/// One `[[attestations]]` entry: one in-toto statement to sign and attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationSpec {
    /// `[[attestations.predicate]]` (exactly one entry).
    pub predicate: PredicateSpec,
    /// `[[attestations.statement.subject]]` (at least one).
    pub subjects: Vec<SubjectSpec>,
    /// `[[attestations.annotations]]`: ordered, names unique.
    pub annotations: Vec<(String, String)>,
}

impl AttestationSpec {
    /// The value of the annotation `name`, if present.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The predicate of one attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredicateSpec {
    /// The in-toto predicate type (`type`), an absolute URI.
    pub predicate_type: String,
    /// Where the predicate comes from (`uri` or `value`).
    pub source: PredicateSource,
}

/// Exactly one of `uri` and `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredicateSource {
    /// `uri`: an absolute path to a JSON file inside the allowed roots.
    Uri(PathBuf),
    /// `value`: the predicate JSON inline.
    Value(String),
}

/// One subject of the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSpec {
    /// The subject name (the image repository, or `<buildpack-id>:<layer>`).
    pub name: String,
    /// The subject digest (the manifest digest, or the layer's diffID).
    pub digest: Digest,
}

/// Quote a string as a TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl SignerConfig {
    /// The configuration in the RFC's TOML shape. [`crate::parse`] reads it back to an equal
    /// value (a `uri` that is not UTF-8 is written lossily; [`crate::generate`] never produces
    /// one).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("[image]\n");
        out.push_str(&format!("reference = {}\n", quote(&self.image.reference)));
        for a in &self.attestations {
            out.push_str("\n[[attestations]]\n");
            out.push_str("  [[attestations.predicate]]\n");
            out.push_str(&format!(
                "  type = {}\n",
                quote(&a.predicate.predicate_type)
            ));
            match &a.predicate.source {
                PredicateSource::Uri(path) => {
                    out.push_str(&format!("  uri = {}\n", quote(&path.to_string_lossy())));
                }
                PredicateSource::Value(value) => {
                    out.push_str(&format!("  value = {}\n", quote(value)));
                }
            }
            for s in &a.subjects {
                out.push_str("  [[attestations.statement.subject]]\n");
                out.push_str(&format!("  name = {}\n", quote(&s.name)));
                out.push_str(&format!("  digest = {}\n", quote(s.digest.as_str())));
            }
            for (name, value) in &a.annotations {
                out.push_str("  [[attestations.annotations]]\n");
                out.push_str(&format!("  name = {}\n", quote(name)));
                out.push_str(&format!("  value = {}\n", quote(value)));
            }
        }
        out
    }

    /// Write [`SignerConfig::to_toml`] to `path` atomically: a temporary file in the same
    /// directory, flushed, then renamed over the target. Refuses a target that is a symbolic
    /// link or not a regular file. The file gets mode 0644 (it holds no secrets).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::WriteRefused {
                    path: path.to_path_buf(),
                    reason: "it is a symbolic link".into(),
                })
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Error::WriteRefused {
                    path: path.to_path_buf(),
                    reason: "it exists and is not a regular file".into(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Write {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
        cnb_local_files::write_atomic(path, self.to_toml().as_bytes()).map_err(|e| {
            Error::Write {
                path: path.to_path_buf(),
                source: match e {
                    cnb_local_files::WriteError::Io(source) => source,
                    other => std::io::Error::other(other.to_string()),
                },
            }
        })?;
        Ok(())
    }
}
