//! Where the password of an encrypted key comes from.

use std::fmt;
use std::path::PathBuf;

use cnb_local_files::Links;
use zeroize::Zeroizing;

use crate::error::{owned, Error};

/// The environment variable cosign reads the key password from.
pub const DEFAULT_PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The largest password file accepted, in bytes.
pub const MAX_PASSWORD_FILE_SIZE: u64 = 4 * 1024;

/// Where to find the password of an encrypted private key.
///
/// `Debug` never shows a password (the variable's name or the file's path only).
/// An empty password is allowed, as in cosign.
#[derive(Clone)]
pub enum PasswordSource {
    /// An environment variable, by name (cosign: `COSIGN_PASSWORD`); its value is used as is.
    Env(String),
    /// A file (for example a mounted secret), read with a 4 KiB cap; one trailing `"\n"` or
    /// `"\r\n"` is removed.
    File(PathBuf),
    /// The password itself.
    Value(Zeroizing<String>),
}

impl PasswordSource {
    /// The environment variable `COSIGN_PASSWORD`.
    pub fn default_env() -> Self {
        PasswordSource::Env(DEFAULT_PASSWORD_ENV.to_owned())
    }

    /// Reads the password.
    ///
    /// Errors name the variable or file, never the password.
    pub fn resolve(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self {
            PasswordSource::Env(var) => {
                let value = std::env::var_os(var)
                    .ok_or_else(|| Error::PasswordEnvNotSet { var: var.clone() })?;
                os_string_bytes(value, var)
            }
            PasswordSource::File(path) => {
                let file_error = |reason: String| Error::PasswordFile {
                    path: owned(path),
                    reason,
                };
                let mut bytes = Zeroizing::new(Vec::new());
                cnb_local_files::read_into(path, MAX_PASSWORD_FILE_SIZE, Links::Follow, &mut bytes)
                    .map_err(|e| file_error(e.to_string()))?;
                let strip = if bytes.ends_with(b"\r\n") {
                    2
                } else if bytes.ends_with(b"\n") {
                    1
                } else {
                    0
                };
                let keep = bytes.len() - strip;
                bytes.truncate(keep);
                Ok(bytes)
            }
            PasswordSource::Value(value) => Ok(Zeroizing::new(value.as_bytes().to_vec())),
        }
    }
}

#[cfg(unix)]
fn os_string_bytes(value: std::ffi::OsString, _var: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    use std::os::unix::ffi::OsStringExt as _;
    Ok(Zeroizing::new(value.into_vec()))
}

#[cfg(not(unix))]
fn os_string_bytes(value: std::ffi::OsString, var: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    match value.into_string() {
        Ok(s) => Ok(Zeroizing::new(s.into_bytes())),
        Err(_) => Err(Error::PasswordEnvNotUnicode {
            var: var.to_owned(),
        }),
    }
}

impl Default for PasswordSource {
    /// [`PasswordSource::default_env`].
    fn default() -> Self {
        Self::default_env()
    }
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(var) => f.debug_tuple("Env").field(var).finish(),
            PasswordSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PasswordSource::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}
