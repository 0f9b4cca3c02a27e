//! Key files as cosign reads and writes them.
//!
//! - Private keys: cosign's encrypted format (PEM label `ENCRYPTED SIGSTORE PRIVATE KEY`, or
//!   `ENCRYPTED COSIGN PRIVATE KEY` from cosign 1.x), unencrypted PKCS#8 `PRIVATE KEY`, and SEC1
//!   `EC PRIVATE KEY`, all ECDSA P-256.
//! - Public keys: PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
//!
//! The encrypted format is a PEM block whose body is JSON:
//! `{"kdf":{"name":"scrypt","params":{"N":…,"r":…,"p":…},"salt":"<b64>"},
//! "cipher":{"name":"nacl/secretbox","nonce":"<b64>"},"ciphertext":"<b64>"}`. The secretbox key is
//! `scrypt(password, salt, N, r, p, 32)`; the plaintext is the PKCS#8 DER of the key.
//!
//! Every read is bounded ([`MAX_KEY_FILE_SIZE`]), and the scrypt parameters of a file are bounded
//! before any work is done, so a hostile key file cannot exhaust memory or CPU.

use std::path::{Path, PathBuf};

use cnb_local_files::{Links, ReadError};
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::XSalsa20Poly1305;
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::b64;
use crate::error::{in_memory, owned, Error};
use crate::keys::{SigningKey, VerifyingKey};
use crate::password::PasswordSource;

/// The largest key file accepted, in bytes.
pub const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// PEM label of encrypted keys written by cosign ≥ 2 (and by this crate).
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of encrypted keys written by cosign 1.x.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// File name of the private key written by [`generate_key_pair`] (as `cosign generate-key-pair`).
pub const PRIVATE_KEY_FILE_NAME: &str = "cosign.key";
/// File name of the public key written by [`generate_key_pair`].
pub const PUBLIC_KEY_FILE_NAME: &str = "cosign.pub";

const PKCS8_LABEL: &str = "PRIVATE KEY";
const SEC1_LABEL: &str = "EC PRIVATE KEY";
const PRIVATE_LABELS: &str =
    "\"ENCRYPTED SIGSTORE PRIVATE KEY\", \"ENCRYPTED COSIGN PRIVATE KEY\", \
     \"PRIVATE KEY\" or \"EC PRIVATE KEY\"";

const KDF_SCRYPT: &str = "scrypt";
const CIPHER_SECRETBOX: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// log2 of scrypt N written by this crate (N = 65536, as cosign ≥ 2).
const WRITE_LOG_N: u8 = 16;
const WRITE_R: u32 = 8;
const WRITE_P: u32 = 1;

/// Bounds on the scrypt parameters of a key file that is read.
const MAX_LOG_N: u32 = 20;
const MAX_R: u64 = 32;
const MAX_P: u64 = 16;
/// 128·N·r, the size of scrypt's main buffer: 256 MiB.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// N·r·p, proportional to the work: 8 times cosign's default (2^16 · 8 · 1).
const MAX_SCRYPT_WORK: u64 = 1 << 22;
const SCRYPT_BOUNDS: &str = "N a power of two, 2 <= N <= 2^20, 1 <= r <= 32, 1 <= p <= 16, \
     128*N*r <= 256 MiB, N*r*p <= 2^22";

/// Paths of the files written by [`generate_key_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// The encrypted private key (`cosign.key`, mode 0600 on Unix).
    pub private_key: PathBuf,
    /// The public key (`cosign.pub`).
    pub public_key: PathBuf,
}

/// Reads a private key file (see the [module documentation](self) for the formats).
///
/// The password is resolved only when the key is encrypted. A wrong password gives
/// [`Error::WrongPassword`]; a truncated or garbled file gives [`Error::NotPem`] (or
/// [`Error::MalformedEncryptedKey`]); all errors name `path`.
pub fn read_private_key(path: &Path, password: &PasswordSource) -> Result<SigningKey, Error> {
    let bytes = read_bounded(path, MAX_KEY_FILE_SIZE)?;
    parse_private_key(&bytes, password, path)
}

/// Reads a public key file (PEM `PUBLIC KEY`, as cosign's `cosign.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, Error> {
    let bytes = read_bounded(path, MAX_KEY_FILE_SIZE)?;
    VerifyingKey::from_pem_at(&bytes, path)
}

/// Writes a new key pair to `dir` as `cosign generate-key-pair` does: `cosign.key` (encrypted
/// with `password`, see [`SigningKey::to_encrypted_pem`]; mode 0600 on Unix) and `cosign.pub`.
///
/// Refuses to overwrite: if either file exists, nothing is written and the error names the
/// existing files. Each file is written to a temporary file in `dir` and then moved into place
/// without replacing anything, so a file is either complete or absent.
pub fn generate_key_pair(dir: &Path, password: &[u8]) -> Result<KeyPairFiles, Error> {
    let files = KeyPairFiles {
        private_key: dir.join(PRIVATE_KEY_FILE_NAME),
        public_key: dir.join(PUBLIC_KEY_FILE_NAME),
    };
    write_key_pair(&files, password).map(|(files, _)| files)
}

/// Like [`generate_key_pair`], to the paths in `files` (in one directory), returning the key too.
pub fn write_key_pair(
    files: &KeyPairFiles,
    password: &[u8],
) -> Result<(KeyPairFiles, SigningKey), Error> {
    let existing: Vec<PathBuf> = [&files.private_key, &files.public_key]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .cloned()
        .collect();
    if !existing.is_empty() {
        return Err(Error::AlreadyExists { paths: existing });
    }

    let key = SigningKey::generate()?;
    let private_pem = key.to_encrypted_pem(password)?;
    let public_pem = key.verifying_key().to_pem();

    write_new_file(&files.private_key, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new_file(&files.public_key, public_pem.as_bytes(), 0o644) {
        // Do not leave half a key pair behind.
        let _ = std::fs::remove_file(&files.private_key);
        return Err(e);
    }
    Ok((files.clone(), key))
}

impl SigningKey {
    /// Parses a private key from PEM bytes (any format [`read_private_key`] accepts). Errors use
    /// the pseudo path [`IN_MEMORY`](crate::IN_MEMORY).
    pub fn from_pem(pem: &[u8], password: &PasswordSource) -> Result<Self, Error> {
        parse_private_key(pem, password, &in_memory())
    }

    /// The key in cosign's encrypted format, PEM label `ENCRYPTED SIGSTORE PRIVATE KEY`, LF line
    /// endings: scrypt N=65536, r=8, p=1 with a random 32-byte salt, nacl/secretbox with a random
    /// 24-byte nonce, over the PKCS#8 DER. The JSON body has cosign's field order.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<Zeroizing<String>, Error> {
        self.to_encrypted_pem_with_log_n(password, WRITE_LOG_N)
    }

    /// [`to_encrypted_pem`](Self::to_encrypted_pem) with another scrypt cost (tests only).
    pub(crate) fn to_encrypted_pem_with_log_n(
        &self,
        password: &[u8],
        log_n: u8,
    ) -> Result<Zeroizing<String>, Error> {
        let encoding = |reason: String| Error::KeyEncoding { reason };
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        for buf in [&mut salt[..], &mut nonce[..]] {
            OsRng.try_fill_bytes(buf).map_err(|e| Error::Random {
                reason: e.to_string(),
            })?;
        }
        let params = scrypt::Params::new(log_n, WRITE_R, WRITE_P, KEY_LEN)
            .map_err(|e| encoding(format!("scrypt parameters: {e}")))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        scrypt::scrypt(password, &salt, &params, key.as_mut())
            .map_err(|e| encoding(format!("scrypt: {e}")))?;
        let plaintext = self.to_pkcs8_der()?;
        let cipher = XSalsa20Poly1305::new(&(*key).into());
        let ciphertext = cipher
            .encrypt(&nonce.into(), plaintext.as_slice())
            .map_err(|_| encoding("secretbox encryption failed".into()))?;

        let body = EncryptedKey {
            kdf: Kdf {
                name: KDF_SCRYPT.into(),
                params: ScryptParams {
                    n: 1u64 << log_n,
                    r: u64::from(WRITE_R),
                    p: u64::from(WRITE_P),
                },
                salt: b64::encode(&salt),
            },
            cipher: Cipher {
                name: CIPHER_SECRETBOX.into(),
                nonce: b64::encode(&nonce),
            },
            ciphertext: b64::encode(&ciphertext),
        };
        let json = serde_json::to_vec(&body).map_err(|e| encoding(e.to_string()))?;
        let block = pem::Pem::new(SIGSTORE_PRIVATE_KEY_LABEL, json);
        Ok(Zeroizing::new(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )))
    }
}

/// The JSON body of a cosign encrypted key. Field order is the order cosign (go-tuf's
/// `encrypted` package) marshals: `kdf{name, params{N, r, p}, salt}, cipher{name, nonce},
/// ciphertext`. Unknown fields are ignored on read.
#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn parse_private_key(
    bytes: &[u8],
    password: &PasswordSource,
    path: &Path,
) -> Result<SigningKey, Error> {
    let block = parse_single_pem(bytes, path)?;
    let der = Zeroizing::new(block.contents().to_vec());
    match block.tag() {
        SIGSTORE_PRIVATE_KEY_LABEL | COSIGN_PRIVATE_KEY_LABEL => {
            let plaintext = decrypt(&der, password, path)?;
            SigningKey::from_pkcs8_der_at(&plaintext, path)
        }
        PKCS8_LABEL => SigningKey::from_pkcs8_der_at(&der, path),
        SEC1_LABEL => SigningKey::from_sec1_der_at(&der, path),
        other => Err(Error::UnsupportedLabel {
            path: owned(path),
            label: other.to_owned(),
            expected: PRIVATE_LABELS,
        }),
    }
}

fn decrypt(
    body: &[u8],
    password: &PasswordSource,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let malformed = |reason: String| Error::MalformedEncryptedKey {
        path: owned(path),
        reason,
    };
    let data: EncryptedKey = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the PEM body is not cosign's JSON: {e}")))?;
    if data.kdf.name != KDF_SCRYPT {
        return Err(malformed(format!(
            "unsupported kdf {:?} (expected \"scrypt\")",
            truncate(&data.kdf.name)
        )));
    }
    if data.cipher.name != CIPHER_SECRETBOX {
        return Err(malformed(format!(
            "unsupported cipher {:?} (expected \"nacl/secretbox\")",
            truncate(&data.cipher.name)
        )));
    }
    let log_n = check_scrypt_params(&data.kdf.params, path)?;
    let salt = b64::decode(&data.kdf.salt)
        .map_err(|e| malformed(format!("kdf.salt is not valid base64: {e}")))?;
    if salt.is_empty() || salt.len() > 1024 {
        return Err(malformed(format!(
            "kdf.salt has {} bytes (expected 1 to 1024)",
            salt.len()
        )));
    }
    let nonce: [u8; NONCE_LEN] = b64::decode(&data.cipher.nonce)
        .map_err(|e| malformed(format!("cipher.nonce is not valid base64: {e}")))?
        .try_into()
        .map_err(|v: Vec<u8>| {
            malformed(format!(
                "cipher.nonce has {} bytes (expected {NONCE_LEN})",
                v.len()
            ))
        })?;
    let ciphertext = b64::decode(&data.ciphertext)
        .map_err(|e| malformed(format!("ciphertext is not valid base64: {e}")))?;
    if ciphertext.len() <= TAG_LEN {
        return Err(malformed(format!(
            "ciphertext has {} bytes, too short (truncated?)",
            ciphertext.len()
        )));
    }

    let password = password.resolve()?;
    let params = scrypt::Params::new(
        log_n,
        data.kdf.params.r as u32,
        data.kdf.params.p as u32,
        KEY_LEN,
    )
    .map_err(|_| scrypt_bounds_error(&data.kdf.params, path))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(&password, &salt, &params, key.as_mut())
        .map_err(|e| malformed(format!("scrypt: {e}")))?;
    let cipher = XSalsa20Poly1305::new(&(*key).into());
    cipher
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| Error::WrongPassword { path: owned(path) })
}

/// Returns log2(N) when the parameters are within bounds.
fn check_scrypt_params(params: &ScryptParams, path: &Path) -> Result<u8, Error> {
    let ScryptParams { n, r, p } = *params;
    let log_n = n.trailing_zeros();
    let ok = n >= 2
        && n.is_power_of_two()
        && log_n <= MAX_LOG_N
        && (1..=MAX_R).contains(&r)
        && (1..=MAX_P).contains(&p)
        && 128 * n * r <= MAX_SCRYPT_MEMORY
        && n * r * p <= MAX_SCRYPT_WORK;
    match u8::try_from(log_n) {
        Ok(log_n) if ok => Ok(log_n),
        _ => Err(scrypt_bounds_error(params, path)),
    }
}

fn scrypt_bounds_error(params: &ScryptParams, path: &Path) -> Error {
    Error::ScryptParamsOutOfBounds {
        path: owned(path),
        n: params.n,
        r: params.r,
        p: params.p,
        bounds: SCRYPT_BOUNDS,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses exactly one PEM block.
pub(crate) fn parse_single_pem(bytes: &[u8], path: &Path) -> Result<pem::Pem, Error> {
    let not_pem = |reason: String| Error::NotPem {
        path: owned(path),
        reason,
    };
    let blocks = pem::parse_many(bytes).map_err(|e| not_pem(describe_pem_error(&e)))?;
    let mut blocks = blocks.into_iter();
    match (blocks.next(), blocks.next()) {
        (Some(block), None) => Ok(block),
        (Some(_), Some(_)) => Err(not_pem("more than one PEM block".into())),
        (None, _) => {
            let reason = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                "truncated: a BEGIN line without a matching END line"
            } else {
                "no \"-----BEGIN …-----\" line"
            };
            Err(not_pem(reason.into()))
        }
    }
}

fn describe_pem_error(e: &pem::PemError) -> String {
    match e {
        pem::PemError::MismatchedTags(begin, end) => format!(
            "BEGIN label {:?} does not match END label {:?}",
            truncate(begin),
            truncate(end)
        ),
        pem::PemError::InvalidData(e) => {
            format!("the body is not valid base64 (truncated or garbled?): {e}")
        }
        pem::PemError::MissingData => "the PEM block is empty".into(),
        other => format!("garbled PEM framing ({other})"),
    }
}

/// Reads at most `limit` bytes of `path`; more is an error. Links are followed (mounted
/// secrets are links), but the file must be a regular file.
fn read_bounded(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(Vec::new());
    cnb_local_files::read_into(path, limit, Links::Follow, &mut bytes).map_err(|e| match e {
        ReadError::TooLarge { .. } => Error::TooLarge {
            path: owned(path),
            limit,
        },
        e => Error::Read {
            path: owned(path),
            source: e.into(),
        },
    })?;
    Ok(bytes)
}

/// Writes `contents` to `target` unless something is there (complete or not at all).
fn write_new_file(target: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    cnb_local_files::write_new(target, contents, mode).map_err(|e| match e {
        cnb_local_files::WriteError::AlreadyExists => Error::AlreadyExists {
            paths: vec![owned(target)],
        },
        cnb_local_files::WriteError::Io(source) => Error::Write {
            path: owned(target),
            source,
        },
        other => Error::Write {
            path: owned(target),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: u64, r: u64, p: u64) -> ScryptParams {
        ScryptParams { n, r, p }
    }

    #[test]
    fn scrypt_bounds_accept_cosign_parameters() {
        let path = Path::new("k");
        assert_eq!(check_scrypt_params(&params(32768, 8, 1), path).unwrap(), 15);
        assert_eq!(check_scrypt_params(&params(65536, 8, 1), path).unwrap(), 16);
        assert_eq!(
            check_scrypt_params(&params(1 << 18, 8, 1), path).unwrap(),
            18
        );
        assert_eq!(
            check_scrypt_params(&params(1 << 20, 2, 1), path).unwrap(),
            20
        );
    }

    #[test]
    fn scrypt_bounds_reject_hostile_parameters() {
        let path = Path::new("hostile.key");
        for (n, r, p) in [
            (0, 8, 1),
            (1, 8, 1),
            (65535, 8, 1),
            (1 << 21, 1, 1),
            (1 << 40, 8, 1),
            (u64::MAX, u64::MAX, u64::MAX),
            (65536, 0, 1),
            (65536, 8, 0),
            (65536, 33, 1),
            (65536, 8, 17),
            (1 << 20, 8, 1),
            (1 << 19, 8, 1),
            (65536, 8, 16),
        ] {
            let err = check_scrypt_params(&params(n, r, p), path).unwrap_err();
            assert!(
                matches!(err, Error::ScryptParamsOutOfBounds { .. }),
                "{n} {r} {p}: {err}"
            );
            assert!(err.to_string().contains("hostile.key"));
        }
    }

    #[test]
    fn small_cost_encrypted_key_round_trips() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_encrypted_pem_with_log_n(b"pw", 10).unwrap();
        let back = SigningKey::from_pem(
            pem.as_bytes(),
            &PasswordSource::Value(Zeroizing::new("pw".into())),
        )
        .unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
    }

    #[test]
    fn encrypted_json_has_cosign_field_order() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_encrypted_pem_with_log_n(b"", 10).unwrap();
        let block = pem::parse(pem.as_bytes()).unwrap();
        let json = std::str::from_utf8(block.contents()).unwrap();
        let prefix = r#"{"kdf":{"name":"scrypt","params":{"N":1024,"r":8,"p":1},"salt":""#;
        assert!(json.starts_with(prefix), "{json}");
        let cipher = r#""},"cipher":{"name":"nacl/secretbox","nonce":""#;
        assert!(json.contains(cipher), "{json}");
        assert!(json.contains(r#""},"ciphertext":""#), "{json}");
        assert!(json.ends_with(r#""}"#));
    }
}
