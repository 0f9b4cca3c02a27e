//! The crate's single error type.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::format::SbomFormat;

/// Everything that can go wrong while reading platform files or discovering SBOM files.
///
/// Every variant names the file, directory or value it is about and says why it was refused.
/// Discovery never returns a partial result: the first refusal ends the walk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read (missing, permissions, I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A symbolic link was found below the layers directory; discovery never follows links.
    #[error(
        "refusing {}: it is a symbolic link (discovery never follows links below the layers directory)",
        path.display()
    )]
    Symlink {
        /// The link itself.
        path: PathBuf,
    },

    /// A fifo, socket or device was found where a regular file or directory was expected.
    #[error("refusing {}: it is a {kind}, not a regular file or directory", path.display())]
    NotRegular {
        /// The offending entry.
        path: PathBuf,
        /// What it is (`fifo`, `socket`, `block device`, ...).
        kind: &'static str,
    },

    /// A file is larger than the configured cap.
    #[error("refusing {}: it is larger than the limit of {cap} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },

    /// An SBOM file is not valid JSON.
    #[error("refusing {}: invalid JSON at line {line}, column {column}: {reason}", path.display())]
    InvalidJson {
        /// The file (or `<input>` for in-memory content).
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        reason: String,
    },

    /// An SBOM file's content does not match the format its extension claims.
    #[error(
        "refusing {}: the extension `{}` claims {claimed} but the content {found}",
        path.display(),
        claimed.extension()
    )]
    ContentMismatch {
        /// The file (or `<input>` for in-memory content).
        path: PathBuf,
        /// The format the file name claims.
        claimed: SbomFormat,
        /// What the content looks like instead.
        found: String,
    },

    /// A file named `sbom.<ext>` whose extension is not one of the three SBOM formats.
    #[error(
        "refusing {}: unsupported SBOM file format `{extension}` (expected sbom.cdx.json, sbom.spdx.json or sbom.syft.json)",
        path.display()
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The part of the name after `sbom.`.
        extension: String,
    },

    /// A directory below `<layers>/sbom/<kind>/` whose name is no known escaped buildpack ID.
    #[error(
        "unknown buildpack directory `{name}`{}: not in group.toml or the image label",
        in_dir(dir.as_deref())
    )]
    UnknownBuildpackDir {
        /// The directory name (escaped buildpack ID).
        name: String,
        /// The directory that holds it, when known.
        dir: Option<PathBuf>,
    },

    /// Several known buildpack IDs escape to the same directory name.
    #[error(
        "ambiguous buildpack directory `{name}`{}: the buildpack IDs {} all escape to it",
        in_dir(dir.as_deref()),
        candidates.join(", ")
    )]
    AmbiguousBuildpackDir {
        /// The directory name (escaped buildpack ID).
        name: String,
        /// The directory that holds it, when known.
        dir: Option<PathBuf>,
        /// The real IDs that escape to `name`.
        candidates: Vec<String>,
    },

    /// A string is not a valid buildpack ID.
    #[error("invalid buildpack ID `{id}`: {reason}")]
    InvalidBuildpackId {
        /// The rejected ID (control characters escaped).
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A string is not a valid layer name.
    #[error("invalid layer name `{name}`: {reason}")]
    InvalidLayerName {
        /// The rejected name (control characters escaped).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Any other entry below the layers directory that cannot be accepted
    /// (unexpected nesting, a file where a directory is required, an invalid name).
    #[error("refusing {}: {reason}", path.display())]
    Refused {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A platform TOML file (`group.toml`, `report.toml`) could not be parsed.
    #[error("{origin}:{line}:{column}: {message}")]
    Toml {
        /// The file (or `<input>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },

    /// The lifecycle metadata label JSON could not be parsed.
    #[error("{origin}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// The file, or `io.buildpacks.lifecycle.metadata label`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },

    /// A value in a platform file has the right type but an unusable value.
    #[error("{origin}: {reason}")]
    Platform {
        /// The file, or `io.buildpacks.lifecycle.metadata label`.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

fn in_dir(dir: Option<&Path>) -> String {
    match dir {
        Some(d) => format!(" in {}", d.display()),
        None => String::new(),
    }
}

/// Escape control characters so that untrusted names cannot garble a terminal.
pub(crate) fn sanitize(s: &str) -> String {
    cnb_untrusted::text::sanitize(s, 256)
}

/// Strip serde_json's own " at line X column Y" suffix (we report line and column separately).
pub(crate) fn json_reason(err: &serde_json::Error) -> String {
    let mut message = err.to_string();
    if let Some(idx) = message.rfind(" at line ") {
        message.truncate(idx);
    }
    message
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn refused(path: &Path, reason: impl fmt::Display) -> Self {
        Error::Refused {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn toml(origin: &str, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err.span().map_or((1, 1), |span| {
            cnb_untrusted::text::line_col(text, span.start)
        });
        Error::Toml {
            origin: origin.to_string(),
            line,
            column,
            message: err.message().trim_end().to_string(),
        }
    }

    pub(crate) fn json(origin: &str, err: &serde_json::Error) -> Self {
        Error::Json {
            origin: origin.to_string(),
            line: err.line(),
            column: err.column(),
            message: json_reason(err),
        }
    }
}
