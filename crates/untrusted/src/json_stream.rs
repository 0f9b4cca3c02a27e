//! A JSON validator fed in chunks, for documents too large to hold in memory.
//!
//! [`Validator`] checks the same things the in-memory readers of the workspace check on a value
//! they skip (`serde_json`'s grammar, UTF-8 inside strings, the nesting limit of
//! [`check_nesting_and_numbers`](crate::json::check_nesting_and_numbers) and finite numbers) in
//! one pass over bytes that arrive in pieces of any size, keeping only a few bytes of state (the
//! open brackets, a partial number, a partial UTF-8 sequence). It does not check repeated keys:
//! it is meant for values a reader passes through whole (an in-toto predicate), not for the
//! fields a reader interprets.
//!
//! ```
//! use cnb_untrusted::json_stream::{Top, Validator};
//!
//! let mut v = Validator::new(Top::Object, 127);
//! v.feed(br#"{"components":[{"name":"caf"#)?;
//! v.feed("é\",\"size\":1.5e3}]}\n".as_bytes())?;
//! v.finish()?;
//!
//! let mut v = Validator::new(Top::Object, 127);
//! assert!(v.feed(b"{\"a\":1e400}").and_then(|()| v.finish()).is_err());
//! # Ok::<(), cnb_untrusted::json_stream::StreamError>(())
//! ```

use std::fmt;

use crate::text::sanitize;

/// What the document must be at its top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Top {
    /// One JSON object.
    Object,
    /// Any one JSON value.
    Any,
}

/// Why a streamed document was refused, and where (byte offset from the start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset}")]
pub struct StreamError {
    /// Byte offset of the offending byte (or of the end, for a truncated document).
    pub offset: u64,
    /// What is wrong.
    pub reason: StreamErrorKind,
}

/// The kinds of [`StreamError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// A byte that the grammar does not allow here.
    #[error("unexpected {0}")]
    Unexpected(Shown),
    /// The document does not start with the required value.
    #[error("the document does not start with `{{`")]
    NotAnObject,
    /// The document ended inside a value.
    #[error("unexpected end of the document")]
    Truncated,
    /// A string holds bytes that are not UTF-8.
    #[error("invalid UTF-8 in a string")]
    Utf8,
    /// A control character inside a string.
    #[error("control character (\\u0000-\\u001F) in a string")]
    Control,
    /// Arrays and objects nested deeper than the limit.
    #[error("arrays and objects nested more than {0} levels deep")]
    TooDeep(usize),
    /// A number that is not a finite IEEE double, or longer than [`MAX_NUMBER_LEN`].
    #[error("number `{0}` is out of range")]
    Number(String),
}

/// A byte, shown for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown(pub u8);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b @ 0x21..=0x7e => write!(f, "`{}`", b as char),
            b => write!(f, "byte 0x{b:02x}"),
        }
    }
}

/// The longest number accepted, in characters. `serde_json` and
/// [`check_nesting_and_numbers`](crate::json::check_nesting_and_numbers) have no limit, so this is
/// the one place the validator is stricter than the in-memory readers: a finite number written
/// with more than 1024 characters (`0.000…1`) is refused here and accepted there. No honest
/// document has one.
pub const MAX_NUMBER_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value.
    Start,
    /// Expecting a value (after `:` or `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrClose,
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,`, the closing bracket, or (at the top) the end.
    After,
    /// Inside a string (`key`: it is an object key, so a `:` follows).
    Str { key: bool },
    /// After a backslash in a string.
    Escape { key: bool },
    /// Inside `\uXXXX`: hex digits still expected.
    Unicode { key: bool, left: u8 },
    /// Inside a number.
    Number,
    /// Inside `true`, `false` or `null`: the rest of the literal still expected.
    Literal { rest: &'static [u8] },
    /// After the top-level value: only whitespace.
    Done,
}

/// A streaming JSON validator; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Validator {
    top: Top,
    limit: usize,
    /// Open brackets, innermost last (`true` for an object).
    stack: Vec<bool>,
    state: State,
    /// Continuation bytes still expected in a UTF-8 sequence, and the range of the next one.
    utf8_need: u8,
    utf8_range: (u8, u8),
    number: Vec<u8>,
    offset: u64,
    /// Top-level keys to report ([`Validator::watch_top_keys`]), what was seen of them, the key
    /// being read at the top level, and the string value being captured.
    watch: &'static [&'static str],
    seen: Vec<TopValue>,
    key: Option<Vec<u8>>,
    pending: Option<&'static str>,
    capture: Option<Vec<u8>>,
}

/// The longest top-level key, and string value, that [`Validator::watch_top_keys`] records.
pub const MAX_WATCHED: usize = 64;

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// A watched top-level key and its value, as [`Validator::top_values`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopValue {
    /// The key, as given to [`Validator::watch_top_keys`].
    pub key: &'static str,
    /// The value's kind.
    pub kind: Kind,
    /// For a string without escapes of at most [`MAX_WATCHED`] bytes: its text.
    pub text: Option<String>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Validator {
    /// A validator for one document whose top level is `top`, with arrays and objects nested at
    /// most `max_depth` levels.
    pub fn new(top: Top, max_depth: usize) -> Self {
        Validator {
            top,
            limit: max_depth,
            stack: Vec::new(),
            state: State::Start,
            utf8_need: 0,
            utf8_range: (0x80, 0xbf),
            number: Vec::new(),
            offset: 0,
            watch: &[],
            seen: Vec::new(),
            key: None,
            pending: None,
            capture: None,
        }
    }

    /// Also records the kind (and a short string's text) of each value whose key, at the top
    /// level of the document, is one of `keys` (compared byte for byte; a key written with
    /// escapes is not recognised), in document order; see [`Validator::top_values`].
    #[must_use]
    pub fn watch_top_keys(mut self, keys: &'static [&'static str]) -> Self {
        self.watch = keys;
        self
    }

    /// The watched top-level values seen so far, in document order.
    pub fn top_values(&self) -> &[TopValue] {
        &self.seen
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn err(&self, at: usize, reason: StreamErrorKind) -> StreamError {
        StreamError {
            offset: self.offset + at as u64,
            reason,
        }
    }

    /// Checks the next piece of the document.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), StreamError> {
        let mut i = 0;
        let n = chunk.len();
        while i < n {
            match self.state {
                State::Str { key } => {
                    // The common case, fast: printable ASCII that neither ends nor escapes.
                    if self.utf8_need == 0 {
                        let start = i;
                        i = plain_run(chunk, i);
                        if self.key.is_some() || self.capture.is_some() {
                            self.record(&chunk[start..i], key);
                        }
                        if i == n {
                            break;
                        }
                    }
                    let b = chunk[i];
                    if self.utf8_need > 0 {
                        let (lo, hi) = self.utf8_range;
                        if b < lo || b > hi {
                            return Err(self.err(i, StreamErrorKind::Utf8));
                        }
                        self.utf8_need -= 1;
                        self.utf8_range = (0x80, 0xbf);
                        self.record(&chunk[i..i + 1], key);
                    } else if b == b'"' {
                        self.end_string(key);
                        self.state = if key {
                            State::Colon
                        } else {
                            self.after_value()
                        };
                    } else if b == b'\\' {
                        self.spoil(key);
                        self.state = State::Escape { key };
                    } else if b < 0x20 {
                        return Err(self.err(i, StreamErrorKind::Control));
                    } else {
                        // A UTF-8 lead byte: how many continuation bytes, and the first one's range
                        // (no overlong forms, no surrogates, nothing above U+10FFFF).
                        let (need, range) = match b {
                            0xc2..=0xdf => (1, (0x80, 0xbf)),
                            0xe0 => (2, (0xa0, 0xbf)),
                            0xe1..=0xec | 0xee..=0xef => (2, (0x80, 0xbf)),
                            0xed => (2, (0x80, 0x9f)),
                            0xf0 => (3, (0x90, 0xbf)),
                            0xf1..=0xf3 => (3, (0x80, 0xbf)),
                            0xf4 => (3, (0x80, 0x8f)),
                            _ => return Err(self.err(i, StreamErrorKind::Utf8)),
                        };
                        self.utf8_need = need;
                        self.utf8_range = range;
                        self.record(&chunk[i..i + 1], key);
                    }
                    i += 1;
                }
                State::Escape { key } => {
                    let b = chunk[i];
                    self.state = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                            State::Str { key }
                        }
                        b'u' => State::Unicode { key, left: 4 },
                        _ => return Err(self.err(i, StreamErrorKind::Unexpected(Shown(b)))),
                    };
                    i += 1;
                }
                State::Unicode { key, left } => {
                    let b = chunk[i];
                    if !b.is_ascii_hexdigit() {
                        return Err(self.err(i, StreamErrorKind::Unexpected(Shown(b))));
                    }
                    self.state = if left == 1 {
                        State::Str { key }
                    } else {
                        State::Unicode {
                            key,
                            left: left - 1,
                        }
                    };
                    i += 1;
                }
                State::Number => {
                    let b = chunk[i];
                    if matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        if self.number.len() >= MAX_NUMBER_LEN {
                            return Err(self.err(i, self.number_error()));
                        }
                        self.number.push(b);
                        i += 1;
                    } else {
                        // The number ends here; this byte is read again in the next state.
                        self.end_number(i)?;
                    }
                }
                State::Literal { rest } => {
                    let b = chunk[i];
                    if b != rest[0] {
                        return Err(self.err(i, StreamErrorKind::Unexpected(Shown(b))));
                    }
                    self.state = if rest.len() == 1 {
                        self.after_value()
                    } else {
                        State::Literal { rest: &rest[1..] }
                    };
                    i += 1;
                }
                _ => {
                    let b = chunk[i];
                    if is_ws(b) {
                        i += 1;
                        continue;
                    }
                    self.structural(b, i)?;
                    i += 1;
                }
            }
        }
        self.offset += n as u64;
        Ok(())
    }

    /// One byte outside strings, numbers and literals (never whitespace).
    fn structural(&mut self, b: u8, at: usize) -> Result<(), StreamError> {
        let unexpected = |v: &Self| v.err(at, StreamErrorKind::Unexpected(Shown(b)));
        match self.state {
            State::Start => {
                if self.top == Top::Object && b != b'{' {
                    return Err(self.err(at, StreamErrorKind::NotAnObject));
                }
                self.value(b, at)
            }
            State::Value => self.value(b, at),
            State::ValueOrClose => {
                if b == b']' {
                    self.close(b, at)
                } else {
                    self.value(b, at)
                }
            }
            State::KeyOrClose | State::Key => match b {
                b'"' => {
                    if self.stack.len() == 1 && !self.watch.is_empty() {
                        self.key = Some(Vec::new());
                    }
                    self.state = State::Str { key: true };
                    Ok(())
                }
                b'}' if self.state == State::KeyOrClose => self.close(b, at),
                _ => Err(unexpected(self)),
            },
            State::Colon => {
                if b != b':' {
                    return Err(unexpected(self));
                }
                self.state = State::Value;
                Ok(())
            }
            State::After => match (b, self.stack.last()) {
                (b',', Some(true)) => {
                    self.state = State::Key;
                    Ok(())
                }
                (b',', Some(false)) => {
                    self.state = State::Value;
                    Ok(())
                }
                (b'}' | b']', Some(_)) => self.close(b, at),
                _ => Err(unexpected(self)),
            },
            State::Done => Err(unexpected(self)),
            State::Str { .. }
            | State::Escape { .. }
            | State::Unicode { .. }
            | State::Number
            | State::Literal { .. } => Err(unexpected(self)),
        }
    }

    /// Appends string bytes to the watched key or value being read.
    fn record(&mut self, bytes: &[u8], key: bool) {
        let slot = if key {
            &mut self.key
        } else {
            &mut self.capture
        };
        if let Some(buf) = slot {
            if buf.len() + bytes.len() > MAX_WATCHED {
                *slot = None;
                if !key {
                    self.spoil(false);
                }
            } else {
                buf.extend_from_slice(bytes);
            }
        }
    }

    /// The watched string being read has escapes or is too long: its text is not kept.
    fn spoil(&mut self, key: bool) {
        if key {
            self.key = None;
        } else if self.capture.take().is_some() {
            if let Some(last) = self.seen.last_mut() {
                last.text = None;
            }
        }
    }

    fn end_string(&mut self, key: bool) {
        if key {
            if let Some(name) = self.key.take() {
                self.pending = self.watch.iter().copied().find(|w| w.as_bytes() == name);
            }
        } else if let Some(text) = self.capture.take() {
            if let Some(last) = self.seen.last_mut() {
                last.text = String::from_utf8(text).ok();
            }
        }
    }

    /// The first byte of a value.
    fn value(&mut self, b: u8, at: usize) -> Result<(), StreamError> {
        if let Some(key) = self.pending.take() {
            let kind = match b {
                b'{' => Kind::Object,
                b'[' => Kind::Array,
                b'"' => Kind::String,
                b't' | b'f' => Kind::Bool,
                b'n' => Kind::Null,
                _ => Kind::Number,
            };
            if kind == Kind::String {
                self.capture = Some(Vec::new());
            }
            self.seen.push(TopValue {
                key,
                kind,
                text: None,
            });
        }
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= self.limit {
                    return Err(self.err(at, StreamErrorKind::TooDeep(self.limit)));
                }
                self.stack.push(b == b'{');
                self.state = if b == b'{' {
                    State::KeyOrClose
                } else {
                    State::ValueOrClose
                };
            }
            b'"' => self.state = State::Str { key: false },
            b'-' | b'0'..=b'9' => {
                self.number.clear();
                self.number.push(b);
                self.state = State::Number;
            }
            b't' => self.state = State::Literal { rest: b"rue" },
            b'f' => self.state = State::Literal { rest: b"alse" },
            b'n' => self.state = State::Literal { rest: b"ull" },
            _ => return Err(self.err(at, StreamErrorKind::Unexpected(Shown(b)))),
        }
        Ok(())
    }

    fn close(&mut self, b: u8, at: usize) -> Result<(), StreamError> {
        match self.stack.pop() {
            Some(true) if b == b'}' => {}
            Some(false) if b == b']' => {}
            _ => return Err(self.err(at, StreamErrorKind::Unexpected(Shown(b)))),
        }
        self.state = self.after_value();
        Ok(())
    }

    fn after_value(&self) -> State {
        if self.stack.is_empty() {
            State::Done
        } else {
            State::After
        }
    }

    fn number_error(&self) -> StreamErrorKind {
        let text = String::from_utf8_lossy(&self.number);
        StreamErrorKind::Number(sanitize(&text, crate::json::MAX_SHOWN))
    }

    /// The number collected so far is complete: check its grammar and range.
    fn end_number(&mut self, at: usize) -> Result<(), StreamError> {
        if !number_grammar(&self.number) {
            return Err(self.err(at, self.number_error()));
        }
        let finite = std::str::from_utf8(&self.number)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite);
        if !finite {
            return Err(self.err(at, self.number_error()));
        }
        self.state = self.after_value();
        Ok(())
    }

    /// The document is complete: it must hold exactly one finished value.
    pub fn finish(mut self) -> Result<(), StreamError> {
        if self.state == State::Number {
            self.end_number(0)?;
        }
        match self.state {
            State::Done => Ok(()),
            State::Start if self.top == Top::Object => {
                Err(self.err(0, StreamErrorKind::NotAnObject))
            }
            _ => Err(self.err(0, StreamErrorKind::Truncated)),
        }
    }
}

/// The end of the run of plain string bytes (printable ASCII other than `"` and `\\`) that starts
/// at `i`: eight bytes at a time while none of them is special (the usual SWAR tests, exact as a
/// yes/no for the whole word), then byte by byte.
#[inline]
fn plain_run(chunk: &[u8], i: usize) -> usize {
    use crate::json::{has_byte, skip_run, HIGH, ONES};
    skip_run(
        chunk,
        i,
        // No byte >= 0x80, none < 0x20, no quote, no backslash.
        |x| {
            (x & HIGH)
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
                | has_byte(x, b'"')
                | has_byte(x, b'\\')
                == 0
        },
        |b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\',
    )
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn number_grammar(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if s.first() == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(doc: &[u8], top: Top, depth: usize) -> Result<(), StreamError> {
        let mut v = Validator::new(top, depth);
        v.feed(doc)?;
        v.finish()
    }

    /// The same document fed whole, byte by byte, and in pieces of 7, gives one answer.
    fn all_ways(doc: &[u8], top: Top, depth: usize) -> Result<(), StreamError> {
        let whole = check(doc, top, depth);
        for size in [1usize, 2, 3, 7] {
            let mut v = Validator::new(top, depth);
            let mut result = Ok(());
            for piece in doc.chunks(size) {
                result = v.feed(piece);
                if result.is_err() {
                    break;
                }
            }
            let result = result.and_then(|()| v.finish());
            assert_eq!(
                result.is_ok(),
                whole.is_ok(),
                "{size}-byte pieces of {:?}",
                String::from_utf8_lossy(doc)
            );
        }
        whole
    }

    /// serde_json's verdict on the same text, with the workspace's other limits.
    fn reference(doc: &[u8], depth: usize) -> bool {
        let Ok(text) = std::str::from_utf8(doc) else {
            return false;
        };
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
            && crate::json::check_nesting_and_numbers(doc, depth, 0).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_and_the_workspace_limits() {
        let docs: &[&[u8]] = &[
            b"{}",
            b" {\"a\" : [1, -0.5, 2e10, 1E-3, true, false, null, \"x\\u00e9\\n\"]} \n",
            b"{\"a\":{\"b\":{\"c\":[[[]]]}}}",
            "{\"k\":\"é€𝄞\"}".as_bytes(),
            b"{\"lone\":\"\\ud800\"}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":.5}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":+1}",
            b"{\"a\":1e400}",
            b"{\"a\":-1e400}",
            b"{\"a\":1,}",
            b"{\"a\":[1,]}",
            b"{,}",
            b"{\"a\" 1}",
            b"{\"a\":tru}",
            b"{\"a\":nul}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\u12g4\"}",
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":1}{}",
            b"{\"a\":1} x",
            b"{\"a\":[}",
            b"{\"a\":]",
            b"{\"a\"",
            b"{\"a\":\"\xc3\x28\"}",
            b"{\"a\":\"\xe0\x80\xaf\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":\"\xf4\x90\x80\x80\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"\xc3\xa9\":1}",
            b"{\"a\":1}\xc3\xa9",
            b"{\"a\":[[[[[[1]]]]]]}",
        ];
        for doc in docs {
            let ours = all_ways(doc, Top::Object, 127).is_ok();
            assert_eq!(
                ours,
                reference(doc, 127),
                "{:?}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn the_top_level_and_depth_limits() {
        assert_eq!(
            check(b"[1]", Top::Object, 127).unwrap_err().reason,
            StreamErrorKind::NotAnObject
        );
        assert_eq!(
            check(b"  ", Top::Object, 127).unwrap_err().reason,
            StreamErrorKind::NotAnObject
        );
        check(b"[1]", Top::Any, 127).unwrap();
        check(b"12", Top::Any, 127).unwrap();
        assert_eq!(
            check(b"12", Top::Any, 127).map(|()| 0),
            Ok(0),
            "a number at the end is finished by finish()"
        );
        check(b"{\"a\":[[1]]}", Top::Object, 3).unwrap();
        let err = check(b"{\"a\":[[[1]]]}", Top::Object, 3).unwrap_err();
        assert_eq!(err.reason, StreamErrorKind::TooDeep(3));
        assert_eq!(err.offset, 7, "{err}");
        let long = format!("{{\"a\":1{}}}", "0".repeat(MAX_NUMBER_LEN));
        assert!(matches!(
            check(long.as_bytes(), Top::Object, 127).unwrap_err().reason,
            StreamErrorKind::Number(_)
        ));
    }

    #[test]
    fn errors_say_where() {
        let err = check(b"{\"a\":\"x\x01\"}", Top::Object, 127).unwrap_err();
        assert_eq!(
            err.to_string(),
            "control character (\\u0000-\\u001F) in a string at byte 7"
        );
        let err = check(b"{\"a\":1", Top::Object, 127).unwrap_err();
        assert_eq!(err.to_string(), "unexpected end of the document at byte 6");
    }

    #[test]
    fn watched_top_level_values() {
        static KEYS: &[&str] = &["bomFormat", "artifacts", "spdxVersion"];
        let doc = br#"{"x":{"bomFormat":"no"},"bomFormat":"CycloneDX","artifacts":[{"a":1}],"spdxVersion":"SPDX-\u0032","n":1}"#;
        for size in [1usize, 3, 1000] {
            let mut v = Validator::new(Top::Object, 127).watch_top_keys(KEYS);
            for piece in doc.chunks(size) {
                v.feed(piece).unwrap();
            }
            let seen = v.top_values().to_vec();
            v.finish().unwrap();
            assert_eq!(
                seen,
                vec![
                    TopValue {
                        key: "bomFormat",
                        kind: Kind::String,
                        text: Some("CycloneDX".into())
                    },
                    TopValue {
                        key: "artifacts",
                        kind: Kind::Array,
                        text: None
                    },
                    TopValue {
                        key: "spdxVersion",
                        kind: Kind::String,
                        text: None
                    },
                ],
                "{size}-byte pieces"
            );
        }
        let long = format!("{{\"bomFormat\":\"{}\"}}", "é".repeat(40));
        let mut v = Validator::new(Top::Object, 127).watch_top_keys(KEYS);
        v.feed(long.as_bytes()).unwrap();
        assert_eq!(v.top_values()[0].text, None);
    }

    #[test]
    fn plain_runs_stop_at_every_special_byte() {
        for special in [0u8, 0x1f, b'"', b'\\', 0x80, 0xc3, 0xff] {
            for at in 0..20 {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                assert_eq!(plain_run(&text, 0), at, "{special:#x} at {at}");
            }
        }
        for plain in [0x20u8, b'!', b'#', b'[', b']', 0x7e, 0x7f] {
            assert_eq!(plain_run(&[plain; 19], 0), 19, "{plain:#x}");
        }
    }
}
