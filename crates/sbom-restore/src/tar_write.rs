//! A small, deterministic ustar writer: the counterpart of the bounded reader in [`crate::tar`],
//! for `cnb-attest export -o bundle.tar`.
//!
//! Only what an OCI layout needs: directories and regular files with names of at most 100 bytes
//! (or 155 + 100 split at a `/`), sizes up to 8 GiB - 1 (ustar's 11 octal digits). Every header
//! is the same for the same input: mode 0644 (files) or 0755 (directories), uid and gid 0, no user
//! or group names, mtime 0. The archive ends with two zero blocks.
//!
//! ```
//! use cnb_sbom_restore::tar::{EntryKind, TarReader};
//! use cnb_sbom_restore::tar_write::TarWriter;
//!
//! let mut out = Vec::new();
//! let mut tar = TarWriter::new(&mut out);
//! tar.directory("blobs/")?;
//! tar.file("index.json", 2, &mut &b"{}"[..])?;
//! tar.finish()?;
//! let mut reader = TarReader::new(&out[..]);
//! assert_eq!(reader.next_entry()?.unwrap().kind, EntryKind::Directory);
//! let file = reader.next_entry()?.unwrap();
//! assert_eq!((file.path.as_str(), file.size), ("index.json", 2));
//! assert_eq!(reader.read_body(2)?, b"{}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read, Write};

/// Largest entry size ustar's 11 octal digits hold.
pub const MAX_ENTRY_SIZE: u64 = 0o77777777777;

/// Writes a ustar archive to `W`.
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    /// A writer appending entries to `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// A directory entry (`name` should end with `/`).
    pub fn directory(&mut self, name: &str) -> io::Result<()> {
        let header = header(name, 0, b'5', 0o755)?;
        self.out.write_all(&header)
    }

    /// A regular file of `size` bytes read from `body`; fewer or more bytes than `size` is an
    /// error (the archive is then unusable: the caller discards it).
    pub fn file(&mut self, name: &str, size: u64, body: &mut dyn Read) -> io::Result<()> {
        let header = header(name, size, b'0', 0o644)?;
        self.out.write_all(&header)?;
        let copied = io::copy(&mut body.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "{name}: {copied} bytes read, {size} announced"
            )));
        }
        let mut one = [0u8; 1];
        if body.read(&mut one)? != 0 {
            return Err(io::Error::other(format!(
                "{name}: longer than the {size} bytes announced"
            )));
        }
        let padding = (512 - size % 512) % 512;
        self.out.write_all(&vec![0u8; padding as usize])
    }

    /// Ends the archive (two zero blocks) and returns the writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn header(name: &str, size: u64, flag: u8, mode: u32) -> io::Result<[u8; 512]> {
    if size > MAX_ENTRY_SIZE {
        return Err(io::Error::other(format!(
            "{name}: {size} bytes is over ustar's {MAX_ENTRY_SIZE}-byte limit"
        )));
    }
    let mut h = [0u8; 512];
    let bytes = name.as_bytes();
    if bytes.len() <= 100 {
        h[..bytes.len()].copy_from_slice(bytes);
    } else {
        // Split at a `/` so that the prefix is at most 155 bytes and the rest at most 100.
        let split = (0..bytes.len())
            .rev()
            .filter(|i| bytes[*i] == b'/')
            .find(|i| *i <= 155 && bytes.len() - i - 1 <= 100 && bytes.len() - i > 1)
            .ok_or_else(|| io::Error::other(format!("{name}: too long for a ustar name")))?;
        h[..bytes.len() - split - 1].copy_from_slice(&bytes[split + 1..]);
        h[345..345 + split].copy_from_slice(&bytes[..split]);
    }
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::TarReader;

    #[test]
    fn what_is_written_reads_back_and_is_the_same_every_time() {
        let long = format!("blobs/sha256/{}", "a".repeat(64));
        let write = || {
            let mut tar = TarWriter::new(Vec::new());
            tar.directory("blobs/").unwrap();
            tar.file(&long, 3, &mut &b"abc"[..]).unwrap();
            let deep = format!("{}/{}", "d".repeat(120), "f".repeat(90));
            tar.file(&deep, 0, &mut &b""[..]).unwrap();
            tar.finish().unwrap()
        };
        let out = write();
        assert_eq!(out, write());
        let mut reader = TarReader::new(&out[..]);
        reader.next_entry().unwrap().unwrap();
        let entry = reader.next_entry().unwrap().unwrap();
        assert_eq!(entry.path, long);
        assert_eq!(reader.read_body(3).unwrap(), b"abc");
        let deep = reader.next_entry().unwrap().unwrap();
        assert!(deep.path.ends_with(&"f".repeat(90)) && deep.path.starts_with("ddd"));
        assert!(reader.next_entry().unwrap().is_none());
    }

    #[test]
    fn an_entry_over_the_ustar_size_limit_is_refused_before_anything_is_written() {
        let mut out = Vec::new();
        let mut tar = TarWriter::new(&mut out);
        let refused = tar
            .file("big", MAX_ENTRY_SIZE + 1, &mut &b""[..])
            .unwrap_err();
        assert!(refused.to_string().contains("ustar"), "{refused}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_body_shorter_or_longer_than_announced_is_an_error() {
        let mut tar = TarWriter::new(Vec::new());
        assert!(tar.file("x", 4, &mut &b"abc"[..]).is_err());
        let mut tar = TarWriter::new(Vec::new());
        assert!(tar.file("x", 2, &mut &b"abc"[..]).is_err());
    }
}
