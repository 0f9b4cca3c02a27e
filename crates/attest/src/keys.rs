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
    /// No key: keyless signing with an OIDC identity (a Fulcio certificate, each envelope logged
    /// in Rekor). Needs the network (feature `registry`).
    #[cfg(feature = "registry")]
    Keyless(Box<crate::keyless::KeylessSource>),
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
            #[cfg(feature = "registry")]
            KeySource::Keyless(_) => Err(Error::InvalidRequest(
                "a keyless signer has no key to load: its certificate is obtained when signing"
                    .into(),
            )),
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

/// The signer of one run: a loaded key, or a keyless run with its certificate.
pub(crate) struct RunSigner<'a> {
    key: RunKey<'a>,
    /// The throw-away key pair used, if any.
    pub(crate) throwaway: Option<ThrowawayKey>,
}

enum RunKey<'a> {
    Key(LoadedKey<'a>),
    #[cfg(feature = "registry")]
    Keyless(Box<crate::keyless::KeylessRun>),
}

impl<'a> RunSigner<'a> {
    /// Loads the key, or (keyless) reads the token and obtains the run's one certificate.
    pub(crate) async fn open(source: &'a KeySource) -> Result<RunSigner<'a>, Error> {
        #[cfg(feature = "registry")]
        if let KeySource::Keyless(keyless) = source {
            return Ok(RunSigner {
                key: RunKey::Keyless(Box::new(crate::keyless::KeylessRun::obtain(keyless).await?)),
                throwaway: None,
            });
        }
        let (key, throwaway) = source.load()?;
        Ok(RunSigner {
            key: RunKey::Key(key),
            throwaway,
        })
    }

    /// The key envelopes are signed with (keyless: the certificate's ephemeral key).
    pub(crate) fn key(&self) -> &SigningKey {
        match &self.key {
            RunKey::Key(key) => key,
            #[cfg(feature = "registry")]
            RunKey::Keyless(run) => run.key(),
        }
    }

    /// The options to store `subject`'s attestations with: `options` as given for a key; for a
    /// keyless run, with every envelope's certificate and log entry (see
    /// `KeylessRun::options_for`).
    pub(crate) async fn options_for(
        &self,
        subject: &cnb_referrers::Descriptor,
        location: &str,
        config: &cnb_attestation_config::SignerConfig,
        roots: &cnb_attestation_config::AllowedRoots,
        options: &cnb_signing::SignOptions,
    ) -> Result<cnb_signing::SignOptions, Error> {
        match &self.key {
            RunKey::Key(_) => {
                let _ = (subject, location, config, roots);
                Ok(options.clone())
            }
            #[cfg(feature = "registry")]
            RunKey::Keyless(run) => {
                run.options_for(subject, location, config, roots, options)
                    .await
            }
        }
    }
}
