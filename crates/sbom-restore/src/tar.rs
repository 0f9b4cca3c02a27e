//! A minimal, bounded, streaming tar reader: entries are listed from any [`Read`], nothing is
//! extracted to disk.
//!
//! Reads ustar, GNU and PAX archives as Go's `archive/tar` does (the lifecycle, Docker and
//! go-containerregistry write and read layers with it): every header's checksum is verified; the
//! name is the ustar `prefix` + `name`, replaced by a GNU long name (`L`) and then by a PAX `path`
//! record; a PAX `size` record overrides the header's size; links, directories and devices have no
//! body whatever their size field says; a zero block followed by a zero block (or the end of the
//! input) ends the archive, and so does a clean end of input at a header boundary.
//!
//! Everything is bounded: a size (header field or PAX `size` record) over 2^63 - 1 is refused, as
//! in Go; an extended header (PAX `x`/`g`, GNU `L`/`K`) is at most
//! [`MAX_EXTENSION_SIZE`] bytes and at most [`MAX_EXTENSION_HEADERS`] of them precede one entry; a
//! body is read only up to the cap the caller gives ([`TarReader::read_body`]) and otherwise skipped
//! through a fixed buffer (or by seeking, [`TarReader::new_seekable`]), never held in memory.
//!
//! ```
//! use cnb_sbom_restore::tar::{EntryKind, TarReader};
//!
//! let mut tar = Vec::new();
//! let mut header = [0u8; 512];
//! header[..5].copy_from_slice(b"hello");
//! header[100..108].copy_from_slice(b"0000644\0");
//! header[124..136].copy_from_slice(b"00000000003\0");
//! header[156] = b'0';
//! header[257..263].copy_from_slice(b"ustar\0");
//! header[263..265].copy_from_slice(b"00");
//! header[148..156].copy_from_slice(b"        ");
//! let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
//! header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
//! tar.extend_from_slice(&header);
//! tar.extend_from_slice(b"hi\n");
//! tar.resize(512 * 4, 0);
//!
//! let mut reader = TarReader::new(&tar[..]);
//! let entry = reader.next_entry()?.unwrap();
//! assert_eq!((entry.path.as_str(), entry.kind, entry.size), ("hello", EntryKind::File, 3));
//! assert_eq!(reader.read_body(1024)?, b"hi\n");
//! assert!(reader.next_entry()?.is_none());
//! # Ok::<(), cnb_sbom_restore::Error>(())
//! ```

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use crate::Error;

/// The tar block size.
pub const BLOCK_SIZE: u64 = 512;
/// Largest body of one extended header (PAX `x` or `g`, GNU `L` or `K`): 64 KiB.
pub const MAX_EXTENSION_SIZE: u64 = 64 * 1024;
/// Most extended headers before one entry.
pub const MAX_EXTENSION_HEADERS: usize = 16;
/// Largest size an entry may declare (header field or PAX `size` record): 2^63 - 1, as in Go's
/// `archive/tar`. A larger one could not be rounded up to a whole block without overflowing.
const MAX_SIZE: u64 = i64::MAX as u64;

const LONGEST_SHOWN: usize = 200;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`, NUL without a trailing `/`, or `7`).
    File,
    /// A directory (`5`, or NUL with a trailing `/`).
    Directory,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link (`1`).
    Hardlink,
    /// Anything else (devices, FIFOs, GNU sparse files, unknown types), with its type flag.
    Other(u8),
}

impl EntryKind {
    fn from_flag(flag: u8, name: &str) -> Self {
        match flag {
            0 if name.ends_with('/') => EntryKind::Directory,
            b'0' | 0 | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'2' => EntryKind::Symlink,
            b'1' => EntryKind::Hardlink,
            other => EntryKind::Other(other),
        }
    }

    /// Whether the entry never has a body, whatever its size field says (as in Go's
    /// `archive/tar`: links, devices, directories and FIFOs).
    fn header_only(self) -> bool {
        matches!(
            self,
            EntryKind::Directory
                | EntryKind::Symlink
                | EntryKind::Hardlink
                | EntryKind::Other(b'3' | b'4' | b'6')
        )
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryKind::File => f.write_str("regular file"),
            EntryKind::Directory => f.write_str("directory"),
            EntryKind::Symlink => f.write_str("symbolic link"),
            EntryKind::Hardlink => f.write_str("hard link"),
            EntryKind::Other(b'3') => f.write_str("character device"),
            EntryKind::Other(b'4') => f.write_str("block device"),
            EntryKind::Other(b'6') => f.write_str("FIFO"),
            EntryKind::Other(b'S') => f.write_str("GNU sparse file"),
            EntryKind::Other(flag) if flag.is_ascii_graphic() => {
                write!(f, "entry of type `{}`", char::from(*flag))
            }
            EntryKind::Other(flag) => write!(f, "entry of type 0x{flag:02x}"),
        }
    }
}

/// One entry's header, after extended headers are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The name as recorded (PAX `path`, GNU long name, or ustar `prefix/name`), not normalised.
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Bytes of body that follow the header (0 for links, directories and devices).
    pub size: u64,
    /// The link target of a symbolic or hard link.
    pub link_name: Option<String>,
    /// Offset of the entry's first header (extended headers included) in the stream.
    pub header_offset: u64,
    /// Offset of the body in the stream.
    pub data_offset: u64,
}

/// How the reader skips bytes it does not return.
type Skipper<R> = fn(&mut R, u64) -> io::Result<()>;

fn skip_by_reading<R: Read>(inner: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut inner.by_ref().take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn skip_by_seeking<R: Read + Seek>(inner: &mut R, n: u64) -> io::Result<()> {
    let n = i64::try_from(n).map_err(|_| io::Error::other("skip too large"))?;
    let target = inner.seek(SeekFrom::Current(n))?;
    // Seeking past the end succeeds, and a read there returns nothing, as at a clean end of the
    // archive: a body or padding cut short must be refused here, as skipping by reading does.
    let end = inner.seek(SeekFrom::End(0))?;
    if target > end {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    inner.seek(SeekFrom::Start(target)).map(drop)
}

/// A streaming tar reader. See the [module documentation](self).
pub struct TarReader<R> {
    inner: R,
    skip: Skipper<R>,
    position: u64,
    /// Unread body bytes of the current entry.
    remaining: u64,
    /// Padding after the current entry's body.
    padding: u64,
    /// The current entry's name, for messages.
    current: Option<String>,
    finished: bool,
    failed: bool,
}

impl<R: fmt::Debug> fmt::Debug for TarReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarReader")
            .field("inner", &self.inner)
            .field("position", &self.position)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<R: Read> TarReader<R> {
    /// A reader over `inner`; unwanted bodies are skipped by reading them through a fixed buffer.
    pub fn new(inner: R) -> Self {
        Self::with_skipper(inner, skip_by_reading::<R>)
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// A reader over a seekable `inner` (at the archive's start); unwanted bodies are skipped by
    /// seeking. A body or padding that reaches past the end is refused as the streaming reader
    /// refuses it.
    pub fn new_seekable(inner: R) -> Self {
        Self::with_skipper(inner, skip_by_seeking::<R>)
    }
}

impl<R: Read> TarReader<R> {
    fn with_skipper(inner: R, skip: Skipper<R>) -> Self {
        TarReader {
            inner,
            skip,
            position: 0,
            remaining: 0,
            padding: 0,
            current: None,
            finished: false,
            failed: false,
        }
    }

    /// Bytes of the stream consumed (or skipped) so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The underlying reader, positioned after what was consumed.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, skipping what is left of the current one's body; `None` at the end of the
    /// archive. After an error the reader refuses to go on.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, Error> {
        if self.failed {
            return Err(malformed(
                "the reader stopped after an earlier error".into(),
            ));
        }
        if self.finished {
            return Ok(None);
        }
        let result = self.advance();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Reads the rest of the current entry's body, refusing (without reading it) a body of more
    /// than `cap` bytes.
    pub fn read_body(&mut self, cap: u64) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        self.copy_body(&mut body, cap)?;
        Ok(body)
    }

    /// Copies the rest of the current entry's body to `out` through a fixed buffer (never held
    /// whole), refusing (without reading it) a body of more than `cap` bytes; returns its length.
    pub fn copy_body(&mut self, out: &mut dyn io::Write, cap: u64) -> Result<u64, Error> {
        let Some(name) = self.current.clone() else {
            return Err(malformed("no current entry to read".into()));
        };
        if self.remaining > cap {
            return Err(malformed(format!(
                "entry `{}` is {} bytes, over the {cap}-byte limit",
                shown(&name),
                self.remaining
            )));
        }
        let want = self.remaining;
        let copied = io::copy(&mut (&mut self.inner).take(want), out).map_err(|e| {
            self.failed = true;
            malformed(format!("reading entry `{}`: {e}", shown(&name)))
        })?;
        self.position += copied;
        self.remaining -= copied;
        if copied < want {
            self.failed = true;
            return Err(malformed(format!(
                "entry `{}` is truncated ({copied} of {want} bytes)",
                shown(&name)
            )));
        }
        Ok(copied)
    }

    fn advance(&mut self) -> Result<Option<TarEntry>, Error> {
        self.skip_rest()?;
        self.current = None;
        let mut ext = Extensions::default();
        let mut extensions = 0usize;
        let header_offset = self.position;
        loop {
            let offset = self.position;
            let Some(block) = self.read_block()? else {
                if extensions > 0 {
                    return Err(malformed(format!(
                        "the archive ends after an extended header at offset {header_offset}"
                    )));
                }
                self.finished = true;
                return Ok(None);
            };
            if block.iter().all(|b| *b == 0) {
                if extensions > 0 {
                    return Err(malformed(format!(
                        "a zero block follows the extended header at offset {header_offset}"
                    )));
                }
                match self.read_block()? {
                    Some(second) if second.iter().any(|b| *b != 0) => {
                        return Err(malformed(format!(
                            "a lone zero block at offset {offset} is followed by data"
                        )));
                    }
                    _ => {}
                }
                self.finished = true;
                return Ok(None);
            }
            verify_checksum(&block, offset)?;
            let flag = block[156];
            let declared = parse_numeric(&block[124..136])
                .filter(|size| *size <= MAX_SIZE)
                .ok_or_else(|| {
                    malformed(format!("bad size field in the header at offset {offset}"))
                })?;
            if matches!(flag, b'x' | b'g' | b'L' | b'K') {
                extensions += 1;
                if extensions > MAX_EXTENSION_HEADERS {
                    return Err(malformed(format!(
                        "more than {MAX_EXTENSION_HEADERS} extended headers in a row at offset {header_offset}"
                    )));
                }
                if declared > MAX_EXTENSION_SIZE {
                    return Err(malformed(format!(
                        "extended header at offset {offset} is {declared} bytes, over the {MAX_EXTENSION_SIZE}-byte limit"
                    )));
                }
                let body = self.read_exact_vec(declared as usize, offset)?;
                self.skip_exact(padding(declared), offset)?;
                match flag {
                    b'x' => ext.apply_pax(&body, offset)?,
                    // Global headers are parsed (so a malformed one is refused) but, as in Go's
                    // archive/tar, not applied to the entries that follow.
                    b'g' => {
                        Extensions::default().apply_pax(&body, offset)?;
                    }
                    b'L' => ext.long_name = Some(c_string(&body).to_vec()),
                    _ => ext.long_link = Some(c_string(&body).to_vec()),
                }
                continue;
            }
            return self
                .finish_entry(&block, ext, declared, header_offset)
                .map(Some);
        }
    }

    fn finish_entry(
        &mut self,
        block: &[u8; 512],
        ext: Extensions,
        declared: u64,
        header_offset: u64,
    ) -> Result<TarEntry, Error> {
        let ustar = &block[257..263] == b"ustar\0" && &block[263..265] == b"00";
        let mut name = c_string(&block[..100]).to_vec();
        if ustar {
            let prefix = c_string(&block[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        let mut link = c_string(&block[157..257]).to_vec();
        if let Some(long) = ext.long_name {
            name = long;
        }
        if let Some(long) = ext.long_link {
            link = long;
        }
        if let Some(path) = ext.path {
            name = path;
        }
        if let Some(path) = ext.link_path {
            link = path;
        }
        let name = text(name, "name", header_offset)?;
        let kind = EntryKind::from_flag(block[156], &name);
        let link_name = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                Some(text(link, "link target", header_offset)?)
            }
            _ => None,
        };
        if kind == EntryKind::Other(b'S') {
            self.skip_sparse_map(block, header_offset)?;
        }
        let size = if kind.header_only() {
            0
        } else {
            ext.size.unwrap_or(declared)
        };
        self.remaining = size;
        self.padding = padding(size);
        self.current = Some(name.clone());
        Ok(TarEntry {
            path: name,
            kind,
            size,
            link_name,
            header_offset,
            data_offset: self.position,
        })
    }

    /// Skips the extension blocks of an old GNU sparse header's map, which follow the header and
    /// are not counted in its size, as Go's `archive/tar` does: read as headers, they could hide
    /// entries. The map is at most [`MAX_EXTENSION_SIZE`] bytes; a sparse entry without the GNU
    /// magic (STAR uses the same flag with another layout) is refused, as in Go.
    fn skip_sparse_map(&mut self, block: &[u8; 512], header_offset: u64) -> Result<(), Error> {
        if &block[257..265] != b"ustar  \0" {
            return Err(malformed(format!(
                "the GNU sparse entry at offset {header_offset} has no GNU header magic"
            )));
        }
        let mut extended = block[482] != 0;
        let mut blocks = 1u64;
        while extended {
            blocks += 1;
            if blocks * BLOCK_SIZE > MAX_EXTENSION_SIZE {
                return Err(malformed(format!(
                    "the sparse map of the entry at offset {header_offset} is over the \
                     {MAX_EXTENSION_SIZE}-byte limit"
                )));
            }
            let Some(ext) = self.read_block()? else {
                return Err(malformed(format!(
                    "the archive ends in the sparse map of the entry at offset {header_offset}"
                )));
            };
            extended = ext[504] != 0;
        }
        Ok(())
    }

    /// Skips the unread body and padding of the current entry.
    fn skip_rest(&mut self) -> Result<(), Error> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let name = self.current.clone().unwrap_or_default();
            (self.skip)(&mut self.inner, n).map_err(|e| {
                malformed(format!(
                    "reading entry `{}`: {}",
                    shown(&name),
                    eof_text(&e)
                ))
            })?;
            self.position += n;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn skip_exact(&mut self, n: u64, offset: u64) -> Result<(), Error> {
        (self.skip)(&mut self.inner, n).map_err(|e| {
            malformed(format!(
                "reading the extended header at offset {offset}: {}",
                eof_text(&e)
            ))
        })?;
        self.position += n;
        Ok(())
    }

    fn read_exact_vec(&mut self, n: usize, offset: u64) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf).map_err(|e| {
            malformed(format!(
                "reading the extended header at offset {offset}: {}",
                eof_text(&e)
            ))
        })?;
        self.position += n as u64;
        Ok(buf)
    }

    /// One block; `None` at a clean end of input.
    fn read_block(&mut self) -> Result<Option<[u8; 512]>, Error> {
        let mut block = [0u8; 512];
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(malformed(format!(
                        "reading the header at offset {}{}: {e}",
                        self.position,
                        self.after()
                    )))
                }
            }
        }
        self.position += filled as u64;
        match filled {
            0 => Ok(None),
            512 => Ok(Some(block)),
            n => Err(malformed(format!(
                "the archive is truncated: {n} bytes of a header at offset {}",
                self.position - n as u64
            ))),
        }
    }

    fn after(&self) -> String {
        self.current
            .as_deref()
            .map(|c| format!(" (after entry `{}`)", shown(c)))
            .unwrap_or_default()
    }
}

/// What extended headers say about the next entry.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link_path: Option<Vec<u8>>,
    size: Option<u64>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extensions {
    /// Applies PAX records (`<len> <key>=<value>\n`, `len` counting the whole record).
    fn apply_pax(&mut self, mut body: &[u8], offset: u64) -> Result<(), Error> {
        let bad = |why: &str| malformed(format!("PAX header at offset {offset}: {why}"));
        while !body.is_empty() {
            // Trailing NUL padding is tolerated, as GNU tar writes none but some writers do.
            if body.iter().all(|b| *b == 0) {
                break;
            }
            let space = body
                .iter()
                .position(|b| *b == b' ')
                .ok_or_else(|| bad("record without a length"))?;
            let len: usize = std::str::from_utf8(&body[..space])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad record length"))?;
            if len <= space + 1 || len > body.len() || body[len - 1] != b'\n' {
                return Err(bad("bad record length"));
            }
            let record = &body[space + 1..len - 1];
            let eq = record
                .iter()
                .position(|b| *b == b'=')
                .ok_or_else(|| bad("record without `=`"))?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.link_path = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                        .filter(|size| *size <= MAX_SIZE)
                        .ok_or_else(|| bad("bad size record"))?;
                    self.size = Some(size);
                }
                _ => {}
            }
            body = &body[len..];
        }
        Ok(())
    }
}

fn verify_checksum(block: &[u8; 512], offset: u64) -> Result<(), Error> {
    let stored = parse_octal(&block[148..156]);
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    match stored {
        Some(sum) if sum == unsigned || i64::try_from(sum).ok() == Some(signed) => Ok(()),
        _ => Err(malformed(format!(
            "bad header checksum at offset {offset} (not a tar archive, or corrupted)"
        ))),
    }
}

/// A numeric field: octal (NUL- or space-padded), or GNU base-256 (high bit set, positive only).
fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return None;
        }
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    parse_octal(field)
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let trimmed: &[u8] = {
        let start = field
            .iter()
            .position(|b| *b != 0 && *b != b' ')
            .unwrap_or(field.len());
        let end = field
            .iter()
            .rposition(|b| *b != 0 && *b != b' ')
            .map_or(start, |e| e + 1);
        &field[start..end.max(start)]
    };
    if trimmed.is_empty() {
        return Some(0);
    }
    let mut value: u64 = 0;
    for b in trimmed {
        if !(b'0'..=b'7').contains(b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// The bytes before the first NUL.
fn c_string(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn text(bytes: Vec<u8>, what: &str, offset: u64) -> Result<String, Error> {
    if bytes.contains(&0) {
        return Err(malformed(format!(
            "the {what} of the entry at offset {offset} contains a NUL byte"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        malformed(format!(
            "the {what} `{}` of the entry at offset {offset} is not UTF-8",
            shown(&String::from_utf8_lossy(e.as_bytes()))
        ))
    })
}

fn padding(size: u64) -> u64 {
    (BLOCK_SIZE - size % BLOCK_SIZE) % BLOCK_SIZE
}

fn eof_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "the archive is truncated".into()
    } else {
        e.to_string()
    }
}

fn malformed(message: String) -> Error {
    Error::Malformed(format!("tar: {message}"))
}

/// A name for messages: at most 200 characters, control characters, escape sequences and bidi
/// controls escaped (see [`cnb_untrusted::text::sanitize`]).
pub(crate) fn shown(name: &str) -> String {
    cnb_untrusted::text::sanitize(name, LONGEST_SHOWN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnb_fixtures::tar::{write, Entry};

    /// A raw header block with a valid checksum.
    fn header(name: &str, flag: u8, size: u64, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        seal(&mut h);
        h
    }

    fn seal(h: &mut [u8; 512]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    fn push(out: &mut Vec<u8>, block: [u8; 512], body: &[u8]) {
        out.extend_from_slice(&block);
        out.extend_from_slice(body);
        out.resize(out.len() + padding(body.len() as u64) as usize, 0);
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in records {
            let body = format!(" {k}={v}\n");
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            out.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        out
    }

    fn all(tar: &[u8]) -> Result<Vec<(TarEntry, Vec<u8>)>, Error> {
        let mut reader = TarReader::new(tar);
        let mut out = Vec::new();
        while let Some(entry) = reader.next_entry()? {
            let body = reader.read_body(1 << 20)?;
            out.push((entry, body));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_fixture_writer_writes() {
        let long = format!("/layers/sbom/launch/{}/layer/sbom.cdx.json", "b".repeat(90));
        let tar = write(
            &[
                Entry::Dir("/layers".into()),
                Entry::File("/layers/a.json".into(), b"{\"a\":1}".to_vec()),
                Entry::File(long.clone(), vec![7u8; 1000]),
                Entry::File("/layers/empty".into(), Vec::new()),
            ],
            1000,
            1000,
        )
        .unwrap();
        let entries = all(&tar).unwrap();
        let names: Vec<_> = entries.iter().map(|(e, _)| e.path.as_str()).collect();
        assert_eq!(
            names,
            ["/layers/", "/layers/a.json", long.as_str(), "/layers/empty"]
        );
        assert_eq!(entries[0].0.kind, EntryKind::Directory);
        assert_eq!(entries[1].0.kind, EntryKind::File);
        assert_eq!(entries[1].1, b"{\"a\":1}");
        assert_eq!(entries[2].1, vec![7u8; 1000]);
        assert_eq!(entries[2].0.data_offset, 512 * 4);
        assert_eq!(entries[3].1, b"");
    }

    #[test]
    fn unread_bodies_are_skipped_and_seeking_gives_the_same_offsets() {
        let tar = write(
            &[
                Entry::File("a".into(), vec![1u8; 5000]),
                Entry::File("b".into(), b"bee".to_vec()),
            ],
            0,
            0,
        )
        .unwrap();
        let mut streamed = TarReader::new(&tar[..]);
        let mut seeking = TarReader::new_seekable(io::Cursor::new(&tar));
        for reader_entries in [
            std::iter::from_fn(|| streamed.next_entry().unwrap()).collect::<Vec<_>>(),
            std::iter::from_fn(|| seeking.next_entry().unwrap()).collect::<Vec<_>>(),
        ] {
            assert_eq!(reader_entries.len(), 2);
            let b = &reader_entries[1];
            assert_eq!(b.path, "b");
            assert_eq!(&tar[b.data_offset as usize..][..3], b"bee");
        }
    }

    /// Found by the `tar_layer` fuzz target (fuzz/regressions/tar_layer/seek-past-end-in-padding):
    /// a seek past the end succeeded and the next header read found "nothing", the end of a clean
    /// archive, so the seeking reader accepted an archive cut in its last entry's padding.
    #[test]
    fn an_archive_cut_in_the_padding_is_refused_by_both_readers() {
        let tar = write(&[Entry::File("a".into(), b"abc".to_vec())], 0, 0).unwrap();
        let cut = &tar[..512 + 100];
        let streamed = std::iter::from_fn({
            let mut r = TarReader::new(cut);
            move || Some(r.next_entry()).filter(|e| !matches!(e, Ok(None)))
        })
        .take(2)
        .collect::<Vec<_>>();
        let seeking = std::iter::from_fn({
            let mut r = TarReader::new_seekable(io::Cursor::new(cut));
            move || Some(r.next_entry()).filter(|e| !matches!(e, Ok(None)))
        })
        .take(2)
        .collect::<Vec<_>>();
        for entries in [streamed, seeking] {
            assert_eq!(entries.len(), 2, "{entries:?}");
            assert!(entries[0].is_ok());
            let err = entries[1].as_ref().unwrap_err().to_string();
            assert!(err.contains("truncated"), "{err}");
        }
    }

    #[test]
    fn pax_path_and_size_and_gnu_long_names_apply_to_the_next_entry() {
        let long = format!("layers/sbom/launch/{}/sbom.cdx.json", "x/".repeat(150));
        let mut tar = Vec::new();
        let records = pax(&[("path", &long), ("mtime", "1.5"), ("size", "4")]);
        push(
            &mut tar,
            header("PaxHeaders/x", b'x', records.len() as u64, ""),
            &records,
        );
        // The ustar size field says 0; the PAX size record says 4.
        push(&mut tar, header("short", b'0', 0, ""), b"abcd");
        let gnu = format!("{}/gnu-long\0", "g".repeat(300));
        push(
            &mut tar,
            header("././@LongLink", b'L', gnu.len() as u64, ""),
            gnu.as_bytes(),
        );
        push(&mut tar, header("trunc", b'0', 2, ""), b"ok");
        push(&mut tar, header("link", b'2', 99, "target"), b"");
        tar.resize(tar.len() + 1024, 0);
        let entries = all(&tar).unwrap();
        assert_eq!(entries[0].0.path, long);
        assert_eq!(entries[0].1, b"abcd");
        assert_eq!(entries[0].0.header_offset, 0);
        assert_eq!(entries[1].0.path, format!("{}/gnu-long", "g".repeat(300)));
        assert_eq!(entries[1].1, b"ok");
        assert_eq!(entries[2].0.kind, EntryKind::Symlink);
        assert_eq!(entries[2].0.link_name.as_deref(), Some("target"));
        assert_eq!(
            entries[2].0.size, 0,
            "links have no body whatever the size field says"
        );
    }

    #[test]
    fn a_bad_checksum_is_refused() {
        let mut tar = write(&[Entry::File("a".into(), b"x".to_vec())], 0, 0).unwrap();
        tar[0] = b'b';
        let err = all(&tar).unwrap_err().to_string();
        assert!(err.contains("bad header checksum at offset 0"), "{err}");
    }

    #[test]
    fn oversized_and_malformed_extended_headers_are_refused() {
        let mut tar = Vec::new();
        let big = vec![b'a'; MAX_EXTENSION_SIZE as usize + 1];
        push(&mut tar, header("L", b'L', big.len() as u64, ""), &big);
        let err = all(&tar).unwrap_err().to_string();
        assert!(err.contains("over the 65536-byte limit"), "{err}");

        let mut tar = Vec::new();
        push(&mut tar, header("x", b'x', 12, ""), b"99 path=abc\n");
        push(&mut tar, header("a", b'0', 0, ""), b"");
        let err = all(&tar).unwrap_err().to_string();
        assert!(err.contains("bad record length"), "{err}");

        let mut tar = Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            push(&mut tar, header("L", b'L', 2, ""), b"a\0");
        }
        let err = all(&tar).unwrap_err().to_string();
        assert!(err.contains("extended headers in a row"), "{err}");
    }

    #[test]
    fn bodies_over_the_cap_and_truncation_are_refused() {
        let tar = write(&[Entry::File("big".into(), vec![0u8; 2048])], 0, 0).unwrap();
        let mut reader = TarReader::new(&tar[..]);
        reader.next_entry().unwrap();
        let err = reader.read_body(1024).unwrap_err().to_string();
        assert_eq!(
            err,
            "tar: entry `big` is 2048 bytes, over the 1024-byte limit"
        );

        let err = all(&tar[..1000]).unwrap_err().to_string();
        assert!(err.contains("entry `big` is truncated"), "{err}");
        let mut reader = TarReader::new(&tar[..1000]);
        reader.next_entry().unwrap();
        let err = reader.next_entry().unwrap_err().to_string();
        assert!(
            err.contains("reading entry `big`: the archive is truncated"),
            "{err}"
        );
        let err = all(&tar[..300]).unwrap_err().to_string();
        assert!(err.contains("truncated: 300 bytes of a header"), "{err}");
    }

    #[test]
    fn the_end_marker_and_a_clean_end_of_input_both_end_the_archive() {
        let tar = write(&[Entry::Dir("d".into())], 0, 0).unwrap();
        assert_eq!(all(&tar).unwrap().len(), 1);
        assert_eq!(all(&tar[..512]).unwrap().len(), 1);
        assert_eq!(all(&tar[..1024]).unwrap().len(), 1);
        let mut bad = tar.clone();
        bad.truncate(1024);
        bad.extend_from_slice(&header("after", b'0', 0, ""));
        let err = all(&bad).unwrap_err().to_string();
        assert!(err.contains("lone zero block"), "{err}");
    }

    #[test]
    fn base256_sizes_and_kinds() {
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]),
            Some(2 << 16)
        );
        assert_eq!(parse_numeric(b"  0017 \0"), Some(15));
        assert_eq!(parse_numeric(b"0019"), None);
        assert_eq!(EntryKind::from_flag(0, "dir/"), EntryKind::Directory);
        assert_eq!(EntryKind::Other(b'3').to_string(), "character device");
        assert_eq!(EntryKind::Hardlink.to_string(), "hard link");
    }

    /// A header whose size field is `size` in GNU base-256 (for sizes no octal field holds).
    fn header_base256(name: &str, flag: u8, size: u64) -> [u8; 512] {
        let mut h = header(name, flag, 0, "");
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
        seal(&mut h);
        h
    }

    // The hostile inputs of docs/decisions/tar-reader.md. The `tar` crate (0.4.46) reads a whole
    // GNU long name or PAX header into memory, whatever its size: for a 1 GiB one (1 MiB gzip'd)
    // it holds 1 GiB before returning the first entry. Ours refuses it from its header block.

    #[test]
    fn huge_extended_headers_are_refused_without_reading_their_bodies() {
        const GIB: u64 = 1 << 30;
        for (flag, declared, present) in [
            // GNU long name saying 8 GiB, of which the stream holds 1 GiB (truncated).
            (b'L', 8 * GIB, GIB),
            // PAX header saying 1 GiB (our default uncompressed-layer cap), all present.
            (b'x', GIB, GIB),
            (b'K', 8 * GIB, GIB),
            (b'g', GIB, GIB),
        ] {
            // 8 GiB does not fit the 11 octal digits: GNU tar writes it in base-256.
            let block = if declared < 8 * GIB {
                header("././@LongLink", flag, declared, "")
            } else {
                header_base256("././@LongLink", flag, declared)
            };
            // The body is produced lazily: `limit()` afterwards tells how much was pulled.
            let mut source = (&block[..]).chain(io::repeat(0).take(present));
            let mut reader = TarReader::new(&mut source);
            let err = reader.next_entry().unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "tar: extended header at offset 0 is {declared} bytes, over the \
                     65536-byte limit"
                )
            );
            assert_eq!(reader.position(), BLOCK_SIZE);
            assert!(reader.next_entry().is_err(), "the reader stops");
            drop(reader);
            assert_eq!(source.get_ref().1.limit(), present, "no body byte was read");
        }
    }

    #[test]
    fn a_size_that_overflows_when_rounded_to_a_block_is_refused() {
        // `size + padding` overflows u64 for these; the body of `big` hides a header `next`.
        for size in [u64::MAX, u64::MAX - 510, MAX_SIZE + 1] {
            let mut tar = Vec::new();
            tar.extend_from_slice(&header_base256("big", b'0', size));
            push(&mut tar, header("next", b'0', 0, ""), b"");
            tar.resize(tar.len() + 1024, 0);
            let err = all(&tar).unwrap_err().to_string();
            assert_eq!(err, "tar: bad size field in the header at offset 0");

            let records = pax(&[("size", &size.to_string())]);
            let mut tar = Vec::new();
            push(
                &mut tar,
                header("PaxHeaders/big", b'x', records.len() as u64, ""),
                &records,
            );
            push(&mut tar, header("big", b'0', 0, ""), b"");
            push(&mut tar, header("next", b'0', 0, ""), b"");
            let err = all(&tar).unwrap_err().to_string();
            assert_eq!(err, "tar: PAX header at offset 0: bad size record");
        }
        // The largest size Go accepts is accepted, and skipping it finds the archive truncated.
        let mut tar = header_base256("big", b'0', MAX_SIZE).to_vec();
        tar.resize(4096, 0);
        let mut reader = TarReader::new(&tar[..]);
        assert_eq!(reader.next_entry().unwrap().unwrap().size, MAX_SIZE);
        let err = reader.next_entry().unwrap_err().to_string();
        assert!(err.contains("the archive is truncated"), "{err}");
    }

    #[test]
    fn sizes_the_tar_crate_reads_leniently_are_refused() {
        // A base-256 size of 2^64 + 1: the `tar` crate keeps the low 64 bits and reads 1.
        let mut h = header("wide", b'0', 0, "");
        h[124..136].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        seal(&mut h);
        let mut tar = Vec::new();
        push(&mut tar, h, b"X");
        let err = all(&tar).unwrap_err().to_string();
        assert_eq!(err, "tar: bad size field in the header at offset 0");

        // A PAX size that is not a decimal number: the `tar` crate ignores it and uses the
        // header's size (0); Go refuses the header, and so do we.
        let records = pax(&[("size", "1e3")]);
        let mut tar = Vec::new();
        push(
            &mut tar,
            header("PaxHeaders/a", b'x', records.len() as u64, ""),
            &records,
        );
        push(&mut tar, header("a", b'0', 0, ""), b"");
        let err = all(&tar).unwrap_err().to_string();
        assert_eq!(err, "tar: PAX header at offset 0: bad size record");
    }

    #[test]
    fn a_pax_value_holding_a_newline_is_one_record() {
        // One `comment` record whose value holds text shaped like a `path` record. Records are
        // delimited by their length, as in Go: the entry is `benign`. The `tar` crate splits the
        // header at newlines and names the entry `evil`.
        let smuggled = pax(&[("path", "evil")]);
        let value = format!("x\n{}", String::from_utf8(smuggled).unwrap().trim_end());
        let records = pax(&[("comment", &value)]);
        let mut tar = Vec::new();
        push(
            &mut tar,
            header("PaxHeaders/benign", b'x', records.len() as u64, ""),
            &records,
        );
        push(&mut tar, header("benign", b'0', 0, ""), b"");
        tar.resize(tar.len() + 1024, 0);
        let entries = all(&tar).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0.path, "benign");
    }

    /// An old GNU sparse header of `size` archive bytes; `extended` sets its `isextended` flag.
    fn gnu_sparse(name: &str, size: u64, extended: bool) -> [u8; 512] {
        let mut h = header(name, b'S', size, "");
        h[257..265].copy_from_slice(b"ustar  \0");
        h[386..398].copy_from_slice(b"00000000000\0");
        h[398..410].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[482] = u8::from(extended);
        h[483..495].copy_from_slice(format!("{size:011o}\0").as_bytes());
        seal(&mut h);
        h
    }

    #[test]
    fn old_gnu_sparse_map_blocks_are_not_read_as_headers() {
        // One extension block (not counted in the size), then 512 data bytes that are a valid
        // header `hidden`. Go and the `tar` crate list `sparse` and `after`; so do we.
        let mut tar = Vec::new();
        tar.extend_from_slice(&gnu_sparse("sparse", 512, true));
        tar.extend_from_slice(&[0u8; 512]);
        tar.extend_from_slice(&header("hidden", b'0', 0, ""));
        push(&mut tar, header("after", b'0', 0, ""), b"");
        tar.resize(tar.len() + 1024, 0);
        let entries = all(&tar).unwrap();
        let names: Vec<_> = entries.iter().map(|(e, _)| e.path.as_str()).collect();
        assert_eq!(names, ["sparse", "after"]);
        assert_eq!(entries[0].0.kind, EntryKind::Other(b'S'));
        assert_eq!(entries[0].0.data_offset, 1024);
        assert_eq!(entries[0].1, header("hidden", b'0', 0, ""));

        // A map that never ends stops at the cap; a sparse entry without the GNU magic is
        // refused (STAR uses the flag with another layout).
        let mut tar = gnu_sparse("sparse", 0, true).to_vec();
        let mut ext = [0u8; 512];
        ext[504] = 1;
        for _ in 0..200 {
            tar.extend_from_slice(&ext);
        }
        let err = all(&tar).unwrap_err().to_string();
        assert!(
            err.contains("sparse map of the entry at offset 0 is over"),
            "{err}"
        );
        let mut tar = Vec::new();
        push(&mut tar, header("star", b'S', 0, ""), b"");
        let err = all(&tar).unwrap_err().to_string();
        assert!(err.contains("has no GNU header magic"), "{err}");
    }
}
