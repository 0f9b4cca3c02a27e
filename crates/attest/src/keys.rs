//! Keys: cosign key files, key pairs, and the throw-away key of the no-registry tour.

use std::path::{Path, PathBuf};

use cnb_dsse::{PasswordSource, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::Error;

pub use cnb_dsse::{read_public_key, KeyPairFiles};

/// Where the signing key comes from.
#[derive(Debug)]
pub enum KeySource {
    /// A key file: cosign's encrypted format or PKCS#8 PEM, with its password.
    File {
        /// The key file.
        path: PathBuf,
        /// Where its password comes from (never a configuration file).
        password: PasswordSource,
    },
    /// The throw-away key pair in this directory, created on first use with an empty password:
    /// for trying the tool on a local layout, not for attestations anyone verifies later.
    Throwaway {
        /// Where the pair is kept.
        dir: PathBuf,
        /// Whether the user asked for it (`--throwaway-key`). An implicit throw-away key is
        /// refused for registry images: nobody could verify what it signs there later.
        requested: bool,
    },
    /// A key the caller holds.
    Key(Box<SigningKey>),
}

/// The throw-away key used by a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ThrowawayKey {
    /// Its private key file.
    pub private_key: PathBuf,
    /// Its public key file (give it to `verify --key`).
    pub public_key: PathBuf,
    /// Whether this run created it.
    pub created: bool,
}

/// File stem of the throw-away key pair (`.key`, `.pub`).
pub const THROWAWAY_KEY_STEM: &str = "cnb-attest-throwaway";

impl KeySource {
    /// Loads the key: reads and decrypts a file, or reads (creating it on first use) the
    /// throw-away pair.
    ///
    /// ```
    /// use cnb_attest::keys::KeySource;
    /// let dir = tempfile::tempdir().unwrap();
    /// let source = KeySource::Throwaway { dir: dir.path().to_path_buf(), requested: true };
    /// let (key, throwaway) = source.load()?;
    /// assert!(throwaway.unwrap().created);
    /// assert_eq!(key.verifying_key().fingerprint().len(), 64);
    /// # Ok::<(), cnb_attest::Error>(())
    /// ```
    pub fn load(&self) -> Result<(LoadedKey<'_>, Option<ThrowawayKey>), Error> {
        match self {
            KeySource::File { path, password } => Ok((
                LoadedKey::Owned(cnb_dsse::read_private_key(path, password)?),
                None,
            )),
            KeySource::Key(key) => Ok((LoadedKey::Borrowed(key), None)),
            KeySource::Throwaway { dir, .. } => {
                let (key, info) = throwaway_key(dir)?;
                Ok((LoadedKey::Owned(key), Some(info)))
            }
        }
    }
}

/// A loaded signing key, owned or the caller's.
#[derive(Debug)]
pub enum LoadedKey<'a> {
    /// Read or made by [`KeySource::load`].
    Owned(SigningKey),
    /// [`KeySource::Key`].
    Borrowed(&'a SigningKey),
}

impl std::ops::Deref for LoadedKey<'_> {
    type Target = SigningKey;
    fn deref(&self) -> &SigningKey {
        match self {
            LoadedKey::Owned(k) => k,
            LoadedKey::Borrowed(k) => k,
        }
    }
}

/// The throw-away key pair in `dir` (`cnb-attest-throwaway.key` / `.pub`, empty password),
/// created (mode 0600, never overwriting) when it does not exist yet.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let (first, made) = cnb_attest::keys::throwaway_key(dir.path())?;
/// let (again, found) = cnb_attest::keys::throwaway_key(dir.path())?;
/// assert!(made.created && !found.created);
/// assert_eq!(first.verifying_key().fingerprint(), again.verifying_key().fingerprint());
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub fn throwaway_key(dir: &Path) -> Result<(SigningKey, ThrowawayKey), Error> {
    let files = KeyPairFiles {
        private_key: dir.join(format!("{THROWAWAY_KEY_STEM}.key")),
        public_key: dir.join(format!("{THROWAWAY_KEY_STEM}.pub")),
    };
    let info = |created| ThrowawayKey {
        private_key: files.private_key.clone(),
        public_key: files.public_key.clone(),
        created,
    };
    let empty = PasswordSource::Value(String::new().into());
    if files.private_key.exists() {
        let key = cnb_dsse::read_private_key(&files.private_key, &empty)?;
        return Ok((key, info(false)));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (_, key) = cnb_dsse::write_key_pair(&files, b"")?;
    Ok((key, info(true)))
}

/// Writes a new cosign key pair (`cosign.key` encrypted with `password`, `cosign.pub`) to `dir`,
/// refusing to overwrite either file.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let files = cnb_attest::keys::generate_key_pair(dir.path(), b"secret")?;
/// let public = cnb_attest::keys::read_public_key(&files.public_key)?;
/// assert_eq!(public.fingerprint().len(), 64);
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub fn generate_key_pair(dir: &Path, password: &[u8]) -> Result<KeyPairFiles, Error> {
    Ok(cnb_dsse::generate_key_pair(dir, password)?)
}

/// Reads every trusted public key in `paths` (PEM, e.g. `cosign.pub`): several for key rotation,
/// where an attestation counts if any of them verifies it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let files = cnb_attest::keys::generate_key_pair(dir.path(), b"")?;
/// let keys = cnb_attest::keys::read_public_keys(&[files.public_key.clone(), files.public_key])?;
/// assert_eq!(keys.len(), 2);
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, Error> {
    paths.iter().map(|p| Ok(read_public_key(p)?)).collect()
}
