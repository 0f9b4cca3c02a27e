//! "Hollowing" a JSON document too large to hold: one pass over bytes that arrive in pieces copies
//! the document into memory except one large value, which it hands to a sink as it passes and
//! replaces by an empty one, so that the strict in-memory readers of the workspace can then read
//! the small hollow document with every one of their checks.
//!
//! The value is found by its path of object keys from the top (`["dsseEnvelope", "payload"]`).
//! Two kinds of value can be taken out:
//!
//! - [`Take::StringContent`]: a string, whose unescaped content goes to the sink (escapes are
//!   decoded as `serde_json` decodes them, except that a `\u` escape of a character beyond ASCII
//!   yields the byte `0xff`, which no text format taken out this way allows); the hollow document
//!   holds `""` in its place;
//! - [`Take::Value`]: any value, whose exact bytes, from just after the `:` to just before the `,`
//!   or `}` that ends its member (whitespace on both sides included, as
//!   `cnb_intoto::Statement::from_json` keeps a predicate), go to the sink; the hollow document
//!   holds `{}` in its place. The sink must check those bytes itself (they are not interpreted
//!   here beyond finding where they end).
//!
//! Nothing here checks the grammar: every byte outside the value taken out is kept, so the reader
//! of the hollow document refuses what it would refuse in the whole one. What is checked here is
//! only what the hollow document no longer shows: a string taken out holds no raw control
//! character and only valid escapes. A value found twice at the path is refused (the in-memory
//! readers refuse repeated keys), and so is any other string longer than the limit, and a hollow
//! document longer than its limit: what is kept stays small.
//!
//! ```
//! use cnb_untrusted::hollow::{Hollower, Take};
//!
//! let mut taken = Vec::new();
//! let mut h = Hollower::new(&["payload"], Take::StringContent, 1024, 1 << 20);
//! h.feed(br#"{"payloadType":"t","payload":"aGV"#, &mut |b| {
//!     taken.extend_from_slice(b);
//!     Ok(())
//! })?;
//! h.feed(br#"sbG8\/","signatures":[]}"#, &mut |b| {
//!     taken.extend_from_slice(b);
//!     Ok(())
//! })?;
//! let (hollow, found) = h.finish()?;
//! assert_eq!(hollow, br#"{"payloadType":"t","payload":"","signatures":[]}"#);
//! assert_eq!((taken.as_slice(), found), (&b"aGVsbG8/"[..], 1));
//! # Ok::<(), cnb_untrusted::hollow::HollowError>(())
//! ```

/// What to take out of the document at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The unescaped content of a string (left as `""`).
    StringContent,
    /// The exact bytes of any value with the whitespace around it (left as `{}`).
    Value,
}

/// Why a document could not be hollowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HollowError {
    /// A string other than the one taken out is longer than the limit.
    #[error("a string of more than {max} bytes at byte {offset} (only the one at `{path}` may be that large)")]
    StringTooLarge {
        /// The limit.
        max: usize,
        /// Where the string starts.
        offset: u64,
        /// The path of the value taken out, dot-separated.
        path: String,
    },
    /// What is kept of the document is longer than the limit.
    #[error("the document without `{path}` is more than {max} bytes")]
    HollowTooLarge {
        /// The limit.
        max: usize,
        /// The path of the value taken out, dot-separated.
        path: String,
    },
    /// The value at the path appears twice.
    #[error("`{path}` appears twice")]
    Repeated {
        /// The path, dot-separated.
        path: String,
    },
    /// A string taken out holds a raw control character or an invalid escape.
    #[error("the string at `{path}` is not a valid JSON string at byte {offset}")]
    BadString {
        /// The path, dot-separated.
        path: String,
        /// Where.
        offset: u64,
    },
    /// The sink refused what it was given.
    #[error("`{path}`: {reason}")]
    Sink {
        /// The path, dot-separated.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Longest key kept for matching against the path (longer keys never match).
const MAX_KEY: usize = 256;

#[derive(Debug)]
struct Frame {
    object: bool,
    expect_key: bool,
    key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Outside strings.
    Normal,
    /// Inside a string kept in the hollow document (a key when `key` is set).
    Kept,
    /// Inside the string taken out.
    Taken,
}

/// Escape decoding state inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Just after `\`.
    Start,
    /// Reading the hex digits of `\u`: how many are read, and the value so far.
    Unicode(u8, u32),
}

/// The hollowing pass; see the [module documentation](self).
#[derive(Debug)]
pub struct Hollower {
    path: &'static [&'static str],
    take: Take,
    max_string: usize,
    max_hollow: usize,
    out: Vec<u8>,
    stack: Vec<Frame>,
    lex: Lex,
    escape: Escape,
    /// In a kept string: whether it is a key, its unescaped bytes (while short), its length.
    in_key: bool,
    key: Vec<u8>,
    string_len: usize,
    string_start: u64,
    /// Taking a value out ([`Take::Value`]): the depth of the object holding it.
    capturing: Option<usize>,
    /// Inside a string within a captured value.
    captured_string: bool,
    captured_escape: bool,
    found: usize,
    offset: u64,
}

/// What the sink is given: a piece of the value taken out.
pub type Sink<'a> = dyn FnMut(&[u8]) -> Result<(), String> + 'a;

impl Hollower {
    /// A pass taking out the value at `path` (object keys from the top; not empty), refusing other
    /// strings over `max_string` bytes and a hollow document over `max_hollow` bytes.
    pub fn new(
        path: &'static [&'static str],
        take: Take,
        max_string: usize,
        max_hollow: usize,
    ) -> Self {
        Hollower {
            path,
            take,
            max_string,
            max_hollow,
            out: Vec::new(),
            stack: Vec::new(),
            lex: Lex::Normal,
            escape: Escape::None,
            in_key: false,
            key: Vec::new(),
            string_len: 0,
            string_start: 0,
            capturing: None,
            captured_string: false,
            captured_escape: false,
            found: 0,
            offset: 0,
        }
    }

    fn shown_path(&self) -> String {
        self.path.join(".")
    }

    /// Whether the innermost open value position is the path (every frame an object whose current
    /// key is the path's).
    fn at_path(&self) -> bool {
        self.stack.len() == self.path.len()
            && self
                .stack
                .iter()
                .zip(self.path)
                .all(|(f, k)| f.object && f.key.as_deref() == Some(k.as_bytes()))
    }

    fn push_out(&mut self, bytes: &[u8]) -> Result<(), HollowError> {
        if self.out.len() + bytes.len() > self.max_hollow {
            return Err(HollowError::HollowTooLarge {
                max: self.max_hollow,
                path: self.shown_path(),
            });
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Feeds the next piece of the document; pieces of the value taken out go to `sink`.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut Sink<'_>) -> Result<(), HollowError> {
        let mut i = 0;
        while i < chunk.len() {
            if self.capturing.is_some() {
                i = self.capture(chunk, i, sink)?;
                continue;
            }
            match self.lex {
                Lex::Taken => i = self.taken(chunk, i, sink)?,
                Lex::Kept => i = self.kept(chunk, i)?,
                Lex::Normal => {
                    self.normal(chunk[i])?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn normal(&mut self, byte: u8) -> Result<(), HollowError> {
        let offset = self.offset;
        self.offset += 1;
        match byte {
            b'"' => {
                let value_at_path = self
                    .stack
                    .last()
                    .is_some_and(|f| !(f.object && f.expect_key))
                    && self.at_path();
                self.push_out(b"\"")?;
                if value_at_path && self.take == Take::StringContent {
                    if self.found > 0 {
                        return Err(HollowError::Repeated {
                            path: self.shown_path(),
                        });
                    }
                    self.found += 1;
                    self.lex = Lex::Taken;
                } else {
                    self.in_key = self.stack.last().is_some_and(|f| f.object && f.expect_key);
                    self.key.clear();
                    self.string_len = 0;
                    self.string_start = offset;
                    self.lex = Lex::Kept;
                }
                self.escape = Escape::None;
                return Ok(());
            }
            b'{' | b'[' => self.stack.push(Frame {
                object: byte == b'{',
                expect_key: byte == b'{',
                key: None,
            }),
            b'}' | b']' => {
                self.stack.pop();
            }
            b',' => {
                if let Some(f) = self.stack.last_mut() {
                    if f.object {
                        f.expect_key = true;
                        f.key = None;
                    }
                }
            }
            b':' => {
                if let Some(f) = self.stack.last_mut() {
                    f.expect_key = false;
                }
                if self.take == Take::Value && self.at_path() {
                    self.push_out(b":{}")?;
                    if self.found > 0 {
                        return Err(HollowError::Repeated {
                            path: self.shown_path(),
                        });
                    }
                    self.found += 1;
                    self.capturing = Some(self.stack.len());
                    self.captured_string = false;
                    self.captured_escape = false;
                    return Ok(());
                }
            }
            _ => {}
        }
        self.push_out(&[byte])
    }

    /// Inside a kept string from `chunk[i]`: copies up to and including its closing quote.
    fn kept(&mut self, chunk: &[u8], mut i: usize) -> Result<usize, HollowError> {
        let start = i;
        while i < chunk.len() {
            let byte = chunk[i];
            i += 1;
            self.string_len += 1;
            if self.string_len > self.max_string {
                return Err(HollowError::StringTooLarge {
                    max: self.max_string,
                    offset: self.string_start,
                    path: self.shown_path(),
                });
            }
            let closed = self.escape == Escape::None && byte == b'"';
            if self.in_key && !closed {
                if let Some(b) = self.unescape(byte) {
                    if self.key.len() <= MAX_KEY {
                        self.key.push(b);
                    }
                }
            } else if !closed {
                self.track_escape(byte);
            }
            if closed {
                self.lex = Lex::Normal;
                if self.in_key {
                    let key = std::mem::take(&mut self.key);
                    if let Some(f) = self.stack.last_mut() {
                        f.key = (key.len() <= MAX_KEY).then_some(key);
                    }
                }
                break;
            }
        }
        self.offset += (i - start) as u64;
        self.push_out(&chunk[start..i])?;
        Ok(i)
    }

    /// Escape tracking without decoding (kept strings that are not keys).
    fn track_escape(&mut self, byte: u8) {
        self.escape = match self.escape {
            Escape::None if byte == b'\\' => Escape::Start,
            Escape::None => Escape::None,
            Escape::Start if byte == b'u' => Escape::Unicode(0, 0),
            Escape::Start => Escape::None,
            Escape::Unicode(3, _) => Escape::None,
            Escape::Unicode(n, v) => Escape::Unicode(n + 1, v),
        };
    }

    /// Decodes one byte of string content: `Some(byte)` when a byte of content is complete,
    /// `None` inside an escape. Invalid escapes give `0xff` (kept strings are checked by the
    /// reader of the hollow document; the taken string is checked by [`Hollower::taken`]).
    fn unescape(&mut self, byte: u8) -> Option<u8> {
        match self.escape {
            Escape::None if byte == b'\\' => {
                self.escape = Escape::Start;
                None
            }
            Escape::None => Some(byte),
            Escape::Start => {
                self.escape = Escape::None;
                Some(match byte {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.escape = Escape::Unicode(0, 0);
                        return None;
                    }
                    _ => 0xff,
                })
            }
            Escape::Unicode(n, v) => {
                let digit = (byte as char).to_digit(16).unwrap_or(0x1_0000);
                let v = (v << 4) | digit;
                if n < 3 {
                    self.escape = Escape::Unicode(n + 1, v);
                    None
                } else {
                    self.escape = Escape::None;
                    Some(if v < 0x80 { v as u8 } else { 0xff })
                }
            }
        }
    }

    /// Inside the string taken out from `chunk[i]`: its content goes to the sink, unescaped,
    /// up to its closing quote.
    fn taken(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        sink: &mut Sink<'_>,
    ) -> Result<usize, HollowError> {
        let shown = self.path;
        let path = move || shown.join(".");
        while i < chunk.len() {
            if self.escape == Escape::None {
                // The common case: a run of plain bytes.
                let run = chunk[i..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                    .unwrap_or(chunk.len() - i);
                if run > 0 {
                    sink(&chunk[i..i + run]).map_err(|reason| HollowError::Sink {
                        path: path(),
                        reason,
                    })?;
                    i += run;
                    self.offset += run as u64;
                    continue;
                }
            }
            let byte = chunk[i];
            let offset = self.offset;
            i += 1;
            self.offset += 1;
            if self.escape == Escape::None && byte == b'"' {
                self.lex = Lex::Normal;
                self.push_out(b"\"")?;
                return Ok(i);
            }
            let bad = || HollowError::BadString {
                path: path(),
                offset,
            };
            if byte < 0x20 {
                return Err(bad());
            }
            let valid = match self.escape {
                Escape::Start => b"\"\\/bfnrtu".contains(&byte),
                Escape::Unicode(..) => byte.is_ascii_hexdigit(),
                Escape::None => true,
            };
            if !valid {
                return Err(bad());
            }
            if let Some(b) = self.unescape(byte) {
                sink(&[b]).map_err(|reason| HollowError::Sink {
                    path: path(),
                    reason,
                })?;
            }
        }
        Ok(i)
    }

    /// Inside the value taken out from `chunk[i]`: its bytes go to the sink until the `,` or `}`
    /// that ends its member, which is then read as usual.
    fn capture(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        sink: &mut Sink<'_>,
    ) -> Result<usize, HollowError> {
        let depth = self.capturing.unwrap_or(0);
        let start = i;
        let mut ended = false;
        while i < chunk.len() {
            let byte = chunk[i];
            if self.captured_string {
                if self.captured_escape {
                    self.captured_escape = false;
                } else if byte == b'\\' {
                    self.captured_escape = true;
                } else if byte == b'"' {
                    self.captured_string = false;
                }
                i += 1;
                continue;
            }
            match byte {
                b'"' => self.captured_string = true,
                b'{' | b'[' => self.stack.push(Frame {
                    object: false,
                    expect_key: false,
                    key: None,
                }),
                b'}' | b']' if self.stack.len() > depth => {
                    self.stack.pop();
                }
                b',' | b'}' | b']' if self.stack.len() == depth => {
                    ended = true;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        if i > start {
            sink(&chunk[start..i]).map_err(|reason| HollowError::Sink {
                path: self.shown_path(),
                reason,
            })?;
        }
        self.offset += (i - start) as u64;
        if ended {
            self.capturing = None;
        }
        Ok(i)
    }

    /// Ends the pass: the hollow document, and how many times the value was found (0 or 1).
    ///
    /// A document that ends inside the value taken out keeps it open in the hollow document
    /// (which its reader then refuses as truncated).
    pub fn finish(self) -> Result<(Vec<u8>, usize), HollowError> {
        Ok((self.out, self.found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hollow(
        doc: &[u8],
        path: &'static [&'static str],
        take: Take,
        piece: usize,
    ) -> Result<(Vec<u8>, Vec<u8>, usize), HollowError> {
        let mut taken = Vec::new();
        let mut h = Hollower::new(path, take, 64, 4096);
        for chunk in doc.chunks(piece.max(1)) {
            h.feed(chunk, &mut |b| {
                taken.extend_from_slice(b);
                Ok(())
            })?;
        }
        let (out, found) = h.finish()?;
        Ok((out, taken, found))
    }

    #[test]
    fn a_string_is_taken_out_whatever_the_pieces() {
        let doc = br#" {"a":{"payload":"x"},"dsseEnvelope":{"payloadType":"t","p\u0061yload":"QUJ\u0044\/+","signatures":[{"sig":"c2ln"}]}} "#;
        for piece in [1, 2, 3, 7, 1000] {
            let (out, taken, found) = hollow(
                doc,
                &["dsseEnvelope", "payload"],
                Take::StringContent,
                piece,
            )
            .unwrap();
            assert_eq!(
                out,
                br#" {"a":{"payload":"x"},"dsseEnvelope":{"payloadType":"t","p\u0061yload":"","signatures":[{"sig":"c2ln"}]}} "#
            );
            assert_eq!(taken, b"QUJD/+");
            assert_eq!(found, 1);
        }
    }

    #[test]
    fn a_value_is_taken_out_with_its_whitespace() {
        let doc = br#"{"_type":"t","predicate": {"a":[1,{"b":"}\"]"}]} ,"subject":[]}"#;
        for piece in [1, 2, 5, 1000] {
            let (out, taken, found) = hollow(doc, &["predicate"], Take::Value, piece).unwrap();
            assert_eq!(out, br#"{"_type":"t","predicate":{},"subject":[]}"#);
            assert_eq!(taken, br#" {"a":[1,{"b":"}\"]"}]} "#);
            assert_eq!(found, 1);
        }
        let (out, taken, _) =
            hollow(br#"{"predicate":"s"}"#, &["predicate"], Take::Value, 1).unwrap();
        assert_eq!(
            (out.as_slice(), taken.as_slice()),
            (&b"{\"predicate\":{}}"[..], &b"\"s\""[..])
        );
    }

    #[test]
    fn refusals() {
        let twice = br#"{"payload":"QQ","payload":"QQ"}"#;
        assert!(matches!(
            hollow(twice, &["payload"], Take::StringContent, 3),
            Err(HollowError::Repeated { .. })
        ));
        let big = format!(r#"{{"payload":"QQ","other":"{}"}}"#, "a".repeat(65));
        assert!(matches!(
            hollow(big.as_bytes(), &["payload"], Take::StringContent, 3),
            Err(HollowError::StringTooLarge { .. })
        ));
        for bad in [
            &b"{\"payload\":\"a\nb\"}"[..],
            br#"{"payload":"\x"}"#,
            br#"{"payload":"\u00g0"}"#,
        ] {
            assert!(matches!(
                hollow(bad, &["payload"], Take::StringContent, 1),
                Err(HollowError::BadString { .. })
            ));
        }
        let twice = br#"{"predicate":{},"predicate":{}}"#;
        assert!(hollow(twice, &["predicate"], Take::Value, 1).is_err());
        // A non-ASCII escape yields a byte no base64 text has.
        let (_, taken, _) = hollow(
            br#"{"payload":"\u00e9"}"#,
            &["payload"],
            Take::StringContent,
            1,
        )
        .unwrap();
        assert_eq!(taken, [0xff]);
    }
}
