//! Deterministic helpers: a seed taken from the input, pieces of random sizes, a reader that
//! returns short reads. The same input always takes the same path, so every crash replays.

use std::io::{self, Read};

/// xorshift64*, seeded from the input (or, for the mutation loop, a given seed): no dependency,
/// and reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a given non-zero seed.
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator seeded from `data` (FNV-1a), so one input always splits the same way.
    pub(crate) fn from_data(data: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `1..=max`.
    pub(crate) fn size(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }
}

/// `data` cut into pieces of 1 to `max` bytes (sizes from `rng`); one empty piece for empty data.
pub(crate) fn pieces<'a>(data: &'a [u8], rng: &mut Rng, max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    // Sometimes an empty piece first: feeding nothing must change nothing.
    if rng.next_u64().is_multiple_of(8) {
        out.push(&data[..0]);
    }
    while !rest.is_empty() {
        let n = rng.size(max).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// A reader over `data` that returns at most a few bytes per read (sizes from a seeded
/// generator) and sometimes an `Interrupted` error, as a pipe or socket may.
#[derive(Debug)]
pub(crate) struct ChoppyReader<'a> {
    data: &'a [u8],
    rng: Rng,
    max: usize,
    interrupt: bool,
}

impl<'a> ChoppyReader<'a> {
    /// Reads of 1 to `max` bytes; with `interrupt`, some reads fail with `Interrupted` (which
    /// every reader must retry).
    pub(crate) fn new(data: &'a [u8], max: usize, interrupt: bool) -> Self {
        ChoppyReader {
            data,
            rng: Rng::from_data(data),
            max,
            interrupt,
        }
    }
}

impl Read for ChoppyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        if self.interrupt && self.rng.next_u64().is_multiple_of(16) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.rng.size(self.max).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// `data` as text, if it is UTF-8.
pub(crate) fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
