//! Blobs to store, in memory or streamed: an attestation whose predicate is too large to hold is
//! written from its file, through base64, straight into a layout or an upload.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::Digest;

/// The bytes of a blob to store.
#[derive(Debug, Clone)]
pub enum Blob {
    /// Held in memory.
    Bytes(Vec<u8>),
    /// Produced on demand, as many times as needed, by a [`StreamedBlob`].
    Stream(Arc<dyn StreamedBlob>),
}

/// A blob produced on demand (a file read again, encoded on the fly). Its digest and length were
/// computed when it was planned; whoever stores it checks the bytes against them, so content that
/// changed on disk in between is refused, never stored under the old digest.
pub trait StreamedBlob: Send + Sync + fmt::Debug {
    /// The blob's length in bytes.
    fn len(&self) -> u64;
    /// Whether the blob is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the blob's bytes to `out`.
    fn write_to(&self, out: &mut dyn Write) -> io::Result<()>;
}

impl Blob {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Bytes(b) => b.len() as u64,
            Blob::Stream(s) => s.len(),
        }
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Blob::Bytes(b) => Some(b),
            Blob::Stream(_) => None,
        }
    }

    /// Writes the bytes to `out`, then checks that they have `digest` and `size`: an error when
    /// streamed content changed since it was planned.
    pub fn write_checked(&self, out: &mut dyn Write, digest: &Digest, size: u64) -> io::Result<()> {
        let mut hashing = Hashing {
            inner: out,
            hasher: Sha256::new(),
            written: 0,
        };
        match self {
            Blob::Bytes(b) => hashing.write_all(b)?,
            Blob::Stream(s) => s.write_to(&mut hashing)?,
        }
        let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if hashing.written != size || actual != digest.as_str() {
            return Err(io::Error::other(format!(
                "the content changed while it was being stored: {} bytes with digest {actual}, \
                 planned {size} bytes with digest {digest}",
                hashing.written
            )));
        }
        Ok(())
    }
}

/// A writer that hashes and counts what passes through.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
    written: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The large middle of a payload: bytes read again from their source each time they are needed.
pub trait Source: Send + Sync + fmt::Debug {
    /// The length in bytes.
    fn len(&self) -> u64;
    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Opens the bytes for reading from the start.
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// A DSSE payload too large to hold: `head + body + tail` (a statement around its predicate).
#[derive(Debug, Clone)]
pub struct Payload {
    /// The bytes before the body.
    pub head: Vec<u8>,
    /// The body.
    pub body: Arc<dyn Source>,
    /// The bytes after the body.
    pub tail: Vec<u8>,
}

/// Size of the pieces streamed payloads are read in.
pub const CHUNK: usize = 256 * 1024;

impl Payload {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.body.len() + self.tail.len() as u64
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `each` with the payload's bytes in order, in pieces of at most [`CHUNK`] bytes. At
    /// most the body's planned length is read (a [`Source`] may stop there, as the signer's does);
    /// a body that yields fewer bytes is an error.
    pub fn for_each_piece(&self, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        each(&self.head)?;
        let mut reader = self.body.open()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            if total > self.body.len() {
                break;
            }
            each(&buf[..n])?;
        }
        if total != self.body.len() {
            return Err(io::Error::other(format!(
                "the predicate changed while it was being read: {total} bytes, planned {}",
                self.body.len()
            )));
        }
        each(&self.tail)
    }

    /// Writes `base64(payload)` (standard alphabet, padded) to `out`.
    pub fn write_base64(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut encoder = base64::write::EncoderWriter::new(out, &STANDARD);
        self.for_each_piece(|piece| encoder.write_all(piece))?;
        encoder.finish()?;
        Ok(())
    }

    /// The length of `base64(payload)`.
    pub fn base64_len(&self) -> u64 {
        self.len().div_ceil(3) * 4
    }
}

/// A layer that is `prefix + base64(payload) + suffix`: a DSSE envelope or a Sigstore bundle
/// around a streamed payload.
#[derive(Debug, Clone)]
pub struct EncodedPayload {
    /// The JSON before the payload's base64.
    pub prefix: Vec<u8>,
    /// The payload.
    pub payload: Arc<Payload>,
    /// The JSON after it.
    pub suffix: Vec<u8>,
}

impl StreamedBlob for EncodedPayload {
    fn len(&self) -> u64 {
        self.prefix.len() as u64 + self.payload.base64_len() + self.suffix.len() as u64
    }

    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(CHUNK, out);
        out.write_all(&self.prefix)?;
        self.payload.write_base64(&mut out)?;
        out.write_all(&self.suffix)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Mem(Vec<u8>);
    impl Source for Mem {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn open(&self) -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(self.0.clone())))
        }
    }

    #[test]
    fn an_encoded_payload_is_the_in_memory_encoding() {
        use base64::Engine as _;
        for body_len in [0usize, 1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 2, 3 * CHUNK + 1] {
            let body: Vec<u8> = (0..body_len).map(|i| (i * 7 % 251) as u8).collect();
            let payload = Payload {
                head: b"{\"p\":".to_vec(),
                body: Arc::new(Mem(body.clone())),
                tail: b"}".to_vec(),
            };
            let whole = [b"{\"p\":".as_slice(), &body, b"}"].concat();
            let expected = [
                b"<".as_slice(),
                STANDARD.encode(&whole).as_bytes(),
                b">".as_slice(),
            ]
            .concat();
            let blob = EncodedPayload {
                prefix: b"<".to_vec(),
                payload: Arc::new(payload),
                suffix: b">".to_vec(),
            };
            assert_eq!(blob.len(), expected.len() as u64, "{body_len}");
            let mut out = Vec::new();
            let blob = Blob::Stream(Arc::new(blob));
            let digest = Digest::of(&expected);
            blob.write_checked(&mut out, &digest, expected.len() as u64)
                .unwrap();
            assert_eq!(out, expected, "{body_len}");
            let wrong = Digest::of(b"other");
            assert!(blob
                .write_checked(&mut Vec::new(), &wrong, expected.len() as u64)
                .unwrap_err()
                .to_string()
                .contains("changed while it was being stored"));
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::layout::OciLayout;
    use crate::Descriptor;

    /// A source whose bytes change after the blob was planned.
    #[derive(Debug)]
    struct Changing(std::sync::atomic::AtomicBool);
    impl Source for Changing {
        fn len(&self) -> u64 {
            4
        }
        fn open(&self) -> io::Result<Box<dyn Read + Send>> {
            let changed = self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
            let bytes: &[u8] = if changed { b"{\"b\"" } else { b"{\"a\"" };
            Ok(Box::new(io::Cursor::new(bytes.to_vec())))
        }
    }

    #[test]
    fn a_streamed_blob_whose_source_changed_leaves_nothing_in_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let payload = Arc::new(Payload {
            head: Vec::new(),
            body: Arc::new(Changing(false.into())),
            tail: b":1}".to_vec(),
        });
        let blob = EncodedPayload {
            prefix: b"\"".to_vec(),
            payload,
            suffix: b"\"".to_vec(),
        };
        // Planned from the first read...
        let mut planned = Vec::new();
        blob.write_to(&mut planned).unwrap();
        let descriptor = Descriptor::for_bytes("application/json", &planned);
        // ...stored from the second, which differs.
        let err = layout
            .write_planned_blob(&descriptor, &Blob::Stream(Arc::new(blob)))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed while it was being stored"),
            "{err}"
        );
        assert!(!layout.has_blob(&descriptor.digest));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
