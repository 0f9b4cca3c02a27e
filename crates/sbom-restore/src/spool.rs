//! Attestations too large to hold, read through temporary files.
//!
//! A blob over [`STREAM_READ_ABOVE`] is fetched into a temporary file while it is hashed
//! ([`Spooled`]); `open` then takes the DSSE payload out of it in one pass (base64-decoded into
//! a second temporary file, the rest of the document read by the in-memory decoder) and hashes
//! the DSSE pre-authentication encoding from the decoded file, so the signature is verified from
//! that digest ([`crate::Trust::verify_prehashed`]). Only after the signature verified,
//! `statement` takes the predicate out of the statement the same way (its bytes checked by
//! [`cnb_intoto::predicate_validator`] and hashed as they pass into a third temporary file) and
//! reads the rest with [`Statement::from_json`]. The predicate file is what the restore writer
//! copies into its temporary tree, checked against the digest taken here.
//!
//! Temporary files are deleted when the last handle to them is dropped, on success and on every
//! error.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use cnb_intoto::Statement;
use cnb_referrers::format::{decode_layer_streamed, StorageFormat, StoredEnvelope};
use sha2::{Digest as _, Sha256};

use crate::{Failure, Rule};

pub use cnb_referrers::format::{MAX_STREAMED_ATTESTATION_BLOB, STREAM_READ_ABOVE};

/// Pieces read and written at a time.
const CHUNK: usize = 256 * 1024;

/// Longest statement kept once its predicate is taken out.
const MAX_HOLLOW_STATEMENT: usize = 4 * 1024 * 1024;
/// Longest string of a statement other than inside its predicate.
const MAX_STATEMENT_STRING: usize = 64 * 1024;

/// A temporary file of known length and SHA-256, deleted when the last clone is dropped. Two are
/// equal when their lengths and digests are.
#[derive(Clone)]
pub struct Spooled(Arc<Inner>);

struct Inner {
    path: tempfile::TempPath,
    len: u64,
    sha256: [u8; 32],
}

impl std::fmt::Debug for Spooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Spooled({} bytes, sha256:{})",
            self.0.len,
            hex::encode(self.0.sha256)
        )
    }
}

impl PartialEq for Spooled {
    fn eq(&self, other: &Self) -> bool {
        self.0.len == other.0.len && self.0.sha256 == other.0.sha256
    }
}

impl Eq for Spooled {}

/// A writer into a new temporary file that hashes what it is given.
struct Spooling {
    file: io::BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    len: u64,
}

impl Spooling {
    fn new() -> io::Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(".cnb-attest-spool-")
            .tempfile()?;
        Ok(Spooling {
            file: io::BufWriter::with_capacity(CHUNK, file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    fn done(self) -> io::Result<Spooled> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok(Spooled(Arc::new(Inner {
            path: file.into_temp_path(),
            len: self.len,
            sha256: self.hasher.finalize().into(),
        })))
    }
}

impl Write for Spooling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Spooled {
    /// Copies at most `max` bytes of `from` into a new temporary file; more is an error.
    pub fn copy_from(from: &mut dyn Read, max: u64) -> io::Result<Spooled> {
        let mut spooling = Spooling::new()?;
        let copied = io::copy(&mut from.take(max.saturating_add(1)), &mut spooling)?;
        if copied > max {
            return Err(io::Error::other(format!("more than {max} bytes")));
        }
        spooling.done()
    }

    /// A temporary file written by someone else (a registry download), hashed as it is read
    /// back: the caller compares [`Spooled::sha256`] with what it expects.
    pub fn from_temp_file(file: tempfile::NamedTempFile) -> io::Result<Spooled> {
        let path = file.into_temp_path();
        let (len, sha256) = hash_file(&path)?;
        Ok(Spooled(Arc::new(Inner { path, len, sha256 })))
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.0.len
    }

    /// Whether both are handles to one temporary file.
    pub fn same_file(&self, other: &Spooled) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// SHA-256 of its content.
    pub fn sha256(&self) -> [u8; 32] {
        self.0.sha256
    }

    /// Opens it for reading.
    pub fn open(&self) -> io::Result<fs::File> {
        fs::File::open(&self.0.path)
    }

    /// Reads it whole (for callers that need the bytes, such as a rebase re-signing them).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        fs::read(&self.0.path)
    }

    /// Copies it to `out`, checking that what was copied has the length and SHA-256 taken when
    /// it was written: a temporary file changed in between is an error.
    pub fn copy_checked(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut file = io::BufReader::with_capacity(CHUNK, self.open()?);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            len += n as u64;
            out.write_all(&buf[..n])?;
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        if len != self.0.len || sha256 != self.0.sha256 {
            return Err(io::Error::other(
                "the temporary file changed after it was verified",
            ));
        }
        Ok(())
    }
}

fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let len = io::copy(&mut fs::File::open(path)?, &mut HashWriter(&mut hasher))?;
    Ok((len, hasher.finalize().into()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streamed blob's envelope, its payload taken out (nothing verified yet).
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    /// The envelope, its [`cnb_dsse::Envelope::payload`] empty.
    pub(crate) stored: StoredEnvelope,
    /// The decoded payload.
    pub(crate) payload: Spooled,
    /// SHA-256 of the DSSE PAE of the payload type and the payload.
    pub(crate) pae_sha256: [u8; 32],
}

/// Decodes a streamed blob in `format` ([`decode_layer_streamed`]), checks the payload type and
/// hashes the PAE (nothing verified).
pub(crate) fn open(format: StorageFormat, blob: &Spooled) -> Result<Opened, Failure> {
    let undecodable = |e: String| Failure::new(Rule::Undecodable, e);
    let io = |e: io::Error| undecodable(format!("reading the attestation blob: {e}"));
    let mut reader = io::BufReader::with_capacity(CHUNK, blob.open().map_err(io)?);
    let mut spooling = Spooling::new().map_err(io)?;
    let (stored, len) = decode_layer_streamed(format, &mut reader, &mut spooling)
        .map_err(|e| undecodable(e.to_string()))?;
    let payload = spooling.done().map_err(io)?;
    debug_assert_eq!(payload.len(), len);
    crate::inspect::check_payload_type(&stored)?;
    let mut hasher = Sha256::new();
    hasher.update(cnb_dsse::pae_header(
        &stored.envelope.payload_type,
        payload.len(),
    ));
    let mut file = payload.open().map_err(io)?;
    io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(io)?;
    Ok(Opened {
        stored,
        payload,
        pae_sha256: hasher.finalize().into(),
    })
}

/// Reads the statement of an opened blob, its predicate taken out into a temporary file: the
/// statement comes back with `{}` for a predicate, and the predicate file with the exact bytes
/// (whitespace around them included, as [`Statement::from_json`] keeps them). Checked as the
/// in-memory reader checks them: the predicate by [`cnb_intoto::predicate_validator`] as it
/// passes, the rest by [`Statement::from_json`].
pub(crate) fn statement(opened: &Opened) -> Result<(Statement, Spooled), Failure> {
    use cnb_untrusted::hollow::{Hollower, Take};
    let failure = |e: String| Failure::new(Rule::Statement, e);
    let io = |e: io::Error| failure(format!("reading the statement: {e}"));
    let mut reader = io::BufReader::with_capacity(CHUNK, opened.payload.open().map_err(io)?);
    let mut hollower = Hollower::new(
        &["predicate"],
        Take::Value,
        MAX_STATEMENT_STRING,
        MAX_HOLLOW_STATEMENT,
    );
    let mut validator = cnb_intoto::predicate_validator();
    let mut spooling = Spooling::new().map_err(io)?;
    let mut buf = vec![0u8; CHUNK];
    // The payload file is read again here: what is parsed must be the bytes whose PAE digest the
    // signature verified, so they are hashed as they pass and compared at the end.
    let mut reread = Sha256::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        reread.update(&buf[..n]);
        hollower
            .feed(&buf[..n], &mut |piece| {
                validator
                    .feed(piece)
                    .map_err(|e| format!("predicate is not valid JSON: {e}"))?;
                spooling
                    .write_all(piece)
                    .map_err(|e| format!("writing the predicate: {e}"))
            })
            .map_err(|e| failure(e.to_string()))?;
    }
    if <[u8; 32]>::from(reread.finalize()) != opened.payload.sha256() {
        return Err(failure(
            "the payload's temporary file changed after its signature was verified".into(),
        ));
    }
    let (hollow, found) = hollower.finish().map_err(|e| failure(e.to_string()))?;
    // The hollow statement first: its own errors (a missing predicate, a repeated key) are the
    // ones the in-memory reader gives.
    let statement = Statement::from_json(&hollow).map_err(|e| failure(e.to_string()))?;
    if found != 1 {
        return Err(failure("missing `predicate`".into()));
    }
    validator
        .finish()
        .map_err(|e| failure(format!("predicate is not valid JSON: {e}")))?;
    let predicate = spooling.done().map_err(io)?;
    Ok((statement, predicate))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is copied out is what was spooled, and a temporary file changed after it was hashed
    /// (same length or not) is refused instead of copied.
    #[test]
    fn copy_checked_copies_the_spooled_bytes_and_refuses_a_changed_file() {
        let bytes: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let spooled = Spooled::copy_from(&mut bytes.as_slice(), bytes.len() as u64).unwrap();
        assert_eq!(spooled.len(), bytes.len() as u64);
        let mut out = Vec::new();
        spooled.copy_checked(&mut out).unwrap();
        assert_eq!(out, bytes);

        let mut changed = bytes.clone();
        changed[CHUNK + 1] ^= 1;
        fs::write(&spooled.0.path, &changed).unwrap();
        let err = spooled.copy_checked(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        fs::write(&spooled.0.path, &bytes[1..]).unwrap();
        assert!(spooled.copy_checked(&mut Vec::new()).is_err());
    }

    /// More than `max` bytes is refused; exactly `max` is taken.
    #[test]
    fn copy_from_takes_at_most_max_bytes() {
        let bytes = vec![7u8; 1000];
        assert_eq!(
            Spooled::copy_from(&mut bytes.as_slice(), 1000)
                .unwrap()
                .read_all()
                .unwrap(),
            bytes
        );
        assert!(Spooled::copy_from(&mut bytes.as_slice(), 999).is_err());
    }
}
