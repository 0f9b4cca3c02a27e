//! Strict JSON reading: one document, one meaning, for every reader.
//!
//! `serde_json` keeps the last value when an object repeats a key, Go's `encoding/json` matches
//! keys to fields case-insensitively (so cosign and other Go verifiers read `"PayloadType"` as
//! `payloadType`), and recursive parsers in other languages overflow their stack on deep nesting
//! or cannot represent `1e400`. A signed document that two readers understand differently is a
//! forgery waiting to happen, so this module refuses all of it:
//!
//! - [`check_document`]: the whole document at once: valid UTF-8 JSON, no object anywhere
//!   repeats a key (compared after unescaping, so `"a"` and `"\u0061"` collide), nested at most
//!   the given depth, every number a finite IEEE double;
//! - [`check_nesting_and_numbers`]: the depth and number limits alone, without recursion, for
//!   readers that parse with their own typed visitors;
//! - [`Keys`] and [`check_key_spelling`]: per object, for typed readers: a repeated key, or a key
//!   that Go would take for one of the fields the reader knows but that is not spelled exactly
//!   like it, is refused.
//!
//! ```
//! use cnb_untrusted::json::{self, Keys};
//!
//! json::check_document(br#"{"a":[1,2.5,{"b":null}]}"#, json::MAX_DEPTH)?;
//! assert!(json::check_document(br#"{"a":1,"\u0061":2}"#, json::MAX_DEPTH).is_err());
//! assert!(json::check_document(b"[[[1]]]", 2).is_err());
//! assert!(json::check_document(b"[1e400]", json::MAX_DEPTH).is_err());
//!
//! let mut keys = Keys::new(&["payloadType", "payload"], "the envelope");
//! keys.check("payloadType")?;
//! keys.check("x-unknown")?; // unknown keys are fine
//! let err = keys.check("PayloadType").unwrap_err();
//! assert!(err.to_string().contains("only in letter case"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::text::{sanitize, sanitize_quoted};

/// The nesting limit [`check_document`] callers use unless they have a reason for another one:
/// the deepest document `serde_json` reads (its recursion limit), so every reader in the
/// workspace agrees on what is too deep.
pub const MAX_DEPTH: usize = 127;

/// Longest key or number quoted in an error message, in characters.
pub const MAX_SHOWN: usize = 64;

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not JSON, not UTF-8, more than one value, or refused while reading (a repeated key, a
    /// number out of range): `serde_json`'s message, with its line and column.
    #[error("{0}")]
    Syntax(String),
    /// Arrays and objects nested deeper than the limit.
    #[error("arrays and objects nested more than {limit} levels deep")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A number that is not a finite IEEE double (`1e400`).
    #[error("number `{number}` is out of the range of an IEEE double")]
    Number {
        /// The number as written (shortened).
        number: String,
    },
    /// A refused key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A refused object key. The key is kept as read; [`Display`](fmt::Display) shows it escaped and
/// shortened.
///
/// ```
/// use cnb_untrusted::json::{check_key_spelling, KeyError};
///
/// let err = check_key_spelling("Sig", &["keyid", "sig"], "signatures[0]").unwrap_err();
/// assert!(matches!(&err, KeyError::CaseVariant { field, .. } if field == "sig"));
/// assert_eq!(
///     err.to_string(),
///     "key \"Sig\" in signatures[0] differs from the field \"sig\" only in letter case; \
///      Go's encoding/json would read it as \"sig\", so the document is ambiguous"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The object already has this key (compared after unescaping).
    #[error("duplicate key \"{}\" in {place}", sanitize_quoted(key, MAX_SHOWN))]
    Duplicate {
        /// The key as read (untrusted: escape it before printing).
        key: String,
        /// Where the object is, for example `the envelope` or `signatures[0]`.
        place: String,
    },
    /// The key is not one of the known fields but Go's `encoding/json` would read it as one.
    #[error(
        "key \"{}\" in {place} differs from the field \"{field}\" only in letter case; Go's \
         encoding/json would read it as \"{field}\", so the document is ambiguous",
        sanitize_quoted(key, MAX_SHOWN)
    )]
    CaseVariant {
        /// The key as read (untrusted: escape it before printing).
        key: String,
        /// The field Go would read it as.
        field: String,
        /// Where the object is.
        place: String,
    },
}

impl KeyError {
    /// The key as read (untrusted: escape it before printing, see [`crate::text`]).
    ///
    /// ```
    /// let err = cnb_untrusted::json::check_key_spelling("KEYID", &["keyid"], "x").unwrap_err();
    /// assert_eq!(err.key(), "KEYID");
    /// ```
    pub fn key(&self) -> &str {
        match self {
            KeyError::Duplicate { key, .. } | KeyError::CaseVariant { key, .. } => key,
        }
    }
}

/// Checks a whole document: valid JSON (one value, UTF-8 everywhere, strings included), nested at
/// most `max_depth` levels (and never deeper than [`MAX_DEPTH`]), every number a finite IEEE
/// double, and no object at any depth repeating a key. The depth is checked first and without
/// recursion, so hostile nesting is an error, never a stack overflow.
///
/// ```
/// use cnb_untrusted::json::{check_document, MAX_DEPTH};
/// check_document(br#"{"a":1,"b":[{"a":2},{"a":3}]}"#, MAX_DEPTH)?;
/// let err = check_document(br#"{"x":[{"c":1,"c":2}]}"#, MAX_DEPTH).unwrap_err();
/// assert!(err.to_string().contains("duplicate key \"c\""), "{err}");
/// # Ok::<(), cnb_untrusted::json::Error>(())
/// ```
pub fn check_document(bytes: &[u8], max_depth: usize) -> Result<(), Error> {
    check_nesting_and_numbers(bytes, max_depth.min(MAX_DEPTH), 0)?;
    serde_json::from_slice::<NoDuplicates>(bytes)
        .map(|_| ())
        .map_err(|e| Error::Syntax(e.to_string()))
}

/// Checks, without recursion, that `json` nests at most `max_depth - enclosing_depth` levels
/// (it sits inside `enclosing_depth` levels of a larger document whose limit is `max_depth`; the
/// message names `max_depth`) and that every number is a finite IEEE double (`1e400` is refused:
/// Go, JavaScript and Python readers cannot represent it).
///
/// Meant for text already known to be JSON (it does not check the syntax), and safe on any
/// bytes: it never panics and never recurses.
///
/// ```
/// use cnb_untrusted::json::check_nesting_and_numbers;
/// check_nesting_and_numbers(b"[[1]]", 2, 0)?;
/// assert!(check_nesting_and_numbers(b"[[1]]", 2, 1).is_err());
/// assert!(check_nesting_and_numbers(b"[-1e400]", 8, 0).is_err());
/// assert!(check_nesting_and_numbers(br#"["[[[", 1e400]"#, 8, 0)
///     .unwrap_err()
///     .to_string()
///     .contains("`1e400`"));
/// # Ok::<(), cnb_untrusted::json::Error>(())
/// ```
pub fn check_nesting_and_numbers(
    json: &[u8],
    max_depth: usize,
    enclosing_depth: usize,
) -> Result<(), Error> {
    let limit = max_depth.saturating_sub(enclosing_depth);
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() {
                    i = to_quote_or_backslash(json, i);
                    match json.get(i) {
                        Some(b'\\') => i += 2,
                        _ => break,
                    }
                }
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(Error::TooDeep { limit: max_depth });
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let number = std::str::from_utf8(&json[start..i]).unwrap_or_default();
                if !number.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(Error::Number {
                        number: sanitize(number, MAX_SHOWN),
                    });
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The first `"` or `\\` at or after `i` (or the end), eight bytes at a time while a word holds
/// neither (the SWAR zero-byte test, exact as a yes/no for the whole word).
fn to_quote_or_backslash(json: &[u8], i: usize) -> usize {
    skip_run(
        json,
        i,
        |x| has_byte(x, b'"') | has_byte(x, b'\\') == 0,
        |b| b != b'"' && b != b'\\',
    )
}

/// Every byte of the word `x` repeated.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// Non-zero when some byte of `x` is `byte` (the SWAR zero-byte test, exact as a yes/no).
pub(crate) fn has_byte(x: u64, byte: u8) -> u64 {
    let v = x ^ (ONES * u64::from(byte));
    v.wrapping_sub(ONES) & !v & HIGH
}

/// The end of the run of bytes starting at `i` that `byte_ok` accepts: eight bytes at a time while
/// `word_ok` accepts the whole little-endian word, then byte by byte.
pub(crate) fn skip_run(
    bytes: &[u8],
    mut i: usize,
    word_ok: impl Fn(u64) -> bool,
    byte_ok: impl Fn(u8) -> bool,
) -> usize {
    while let Some(word) = bytes.get(i..i + 8) {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        if !word_ok(u64::from_le_bytes(buf)) {
            break;
        }
        i += 8;
    }
    while bytes.get(i).is_some_and(|b| byte_ok(*b)) {
        i += 1;
    }
    i
}

/// Whether Go's `encoding/json` would match `key` to the ASCII field name `field`: equal under
/// Unicode simple case folding, whose only non-ASCII members that fold to ASCII letters are `ſ`
/// (U+017F, folds with `s`) and the Kelvin sign `K` (U+212A, folds with `k`).
///
/// ```
/// use cnb_untrusted::json::go_folds_to;
/// assert!(go_folds_to("PAYLOADTYPE", "payloadType"));
/// assert!(go_folds_to("\u{212a}eyid", "keyid"));
/// assert!(!go_folds_to("payload_type", "payloadType"));
/// ```
pub fn go_folds_to(key: &str, field: &str) -> bool {
    let mut chars = key.chars();
    for expected in field.chars() {
        let folded = match chars.next() {
            None => return false,
            Some('\u{17f}') => 's',
            Some('\u{212a}') => 'k',
            Some(c) => c.to_ascii_lowercase(),
        };
        if folded != expected.to_ascii_lowercase() {
            return false;
        }
    }
    chars.next().is_none()
}

/// Refuses a key that Go's case-insensitive `encoding/json` would take for one of `fields` but
/// that is not spelled exactly like it. Exact matches and unrelated keys are fine. `place` says
/// where the object is, for the message.
///
/// ```
/// use cnb_untrusted::json::check_key_spelling;
/// let fields = ["sig", "keyid"];
/// check_key_spelling("sig", &fields, "signatures[0]")?;
/// check_key_spelling("cert", &fields, "signatures[0]")?;
/// assert!(check_key_spelling("\u{17f}ig", &fields, "signatures[0]").is_err());
/// # Ok::<(), cnb_untrusted::json::KeyError>(())
/// ```
pub fn check_key_spelling(key: &str, fields: &[&str], place: &str) -> Result<(), KeyError> {
    match fields
        .iter()
        .find(|field| **field != key && go_folds_to(key, field))
    {
        None => Ok(()),
        Some(field) => Err(KeyError::CaseVariant {
            key: key.to_string(),
            field: field.to_string(),
            place: place.to_string(),
        }),
    }
}

/// The keys of one JSON object as a typed reader meets them: each is refused if the object
/// already had it, or if it is a case variant of one of the reader's `fields`
/// ([`check_key_spelling`]).
///
/// ```
/// use cnb_untrusted::json::{KeyError, Keys};
///
/// let mut keys = Keys::new(&["name", "digest"], "a subject");
/// keys.check("name")?;
/// keys.check("uri")?;
/// assert!(matches!(keys.check("name"), Err(KeyError::Duplicate { .. })));
/// assert!(matches!(keys.check("Digest"), Err(KeyError::CaseVariant { .. })));
/// # Ok::<(), KeyError>(())
/// ```
#[derive(Debug)]
pub struct Keys<'a> {
    fields: &'a [&'a str],
    place: &'a str,
    seen: HashSet<String>,
}

impl<'a> Keys<'a> {
    /// No keys seen yet, in an object at `place` whose reader knows `fields` (may be empty).
    ///
    /// ```
    /// let keys = cnb_untrusted::json::Keys::new(&[], "an object");
    /// # drop(keys);
    /// ```
    pub fn new(fields: &'a [&'a str], place: &'a str) -> Self {
        Keys {
            fields,
            place,
            seen: HashSet::new(),
        }
    }

    /// Accepts `key` or says why not (a repeat is reported before a spelling problem).
    ///
    /// ```
    /// let mut keys = cnb_untrusted::json::Keys::new(&["a"], "an object");
    /// assert!(keys.check("a").is_ok() && keys.check("a").is_err());
    /// ```
    pub fn check(&mut self, key: &str) -> Result<(), KeyError> {
        if self.seen.contains(key) {
            return Err(KeyError::Duplicate {
                key: key.to_string(),
                place: self.place.to_string(),
            });
        }
        check_key_spelling(key, self.fields, self.place)?;
        self.seen.insert(key.to_string());
        Ok(())
    }
}

/// Any JSON value, read only to check that no object in it repeats a key.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_none<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NoDuplicates, D::Error> {
        NoDuplicates::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut keys = Keys::new(&[], "an object");
        while let Some(key) = map.next_key::<String>()? {
            keys.check(&key).map_err(de::Error::custom)?;
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(doc: &[u8]) -> Result<(), Error> {
        check_document(doc, MAX_DEPTH)
    }

    #[test]
    fn go_folding_matches_ascii_case_and_the_two_non_ascii_folds() {
        assert!(go_folds_to("payloadType", "payloadType"));
        assert!(go_folds_to("PAYLOADTYPE", "payloadType"));
        assert!(go_folds_to("\u{212a}eyid", "keyid"));
        assert!(go_folds_to("\u{17f}ig", "sig"));
        assert!(!go_folds_to("payload_type", "payloadType"));
        assert!(!go_folds_to("sigs", "sig"));
        assert!(!go_folds_to("si", "sig"));
        assert!(!go_folds_to("\u{130}d", "id"), "only simple folds count");
    }

    #[test]
    fn key_spelling_accepts_exact_and_unrelated_keys_and_names_a_case_variant() {
        let fields = ["sig", "keyid"];
        check_key_spelling("sig", &fields, "x").unwrap();
        check_key_spelling("cert", &fields, "x").unwrap();
        let message = check_key_spelling("KeyId", &fields, "signatures[0]")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("key \"KeyId\" in signatures[0]") && message.contains("\"keyid\""),
            "{message}"
        );
    }

    #[test]
    fn a_payload_type_pair_differing_in_case_is_refused() {
        let mut keys = Keys::new(&["payloadType", "payload", "signatures"], "the envelope");
        keys.check("payloadType").unwrap();
        let err = keys.check("PayloadType").unwrap_err();
        assert_eq!(err.key(), "PayloadType");
        assert!(err.to_string().contains("letter case"), "{err}");
    }

    #[test]
    fn keys_in_messages_are_escaped_and_shortened() {
        let key = format!("\"\r\x1b[2K{}", "k".repeat(1000));
        let message = KeyError::Duplicate {
            key,
            place: "an object".into(),
        }
        .to_string();
        assert!(
            !message.contains('\r') && !message.contains('\x1b'),
            "{message:?}"
        );
        assert!(message.starts_with("duplicate key \"\\\"\\r"), "{message}");
        assert!(message.len() < 200 && message.contains('…'), "{message}");
    }

    #[test]
    fn accepts_documents_without_duplicates() {
        check(br#"{"a":1,"b":[{"a":2},{"a":3}],"c":{"d":null,"e":true}}"#).unwrap();
        check(b"[1,2.5,-3,\"x\"]").unwrap();
        // 2^128 is a finite double.
        check(b"[340282366920938463463374607431768211456]").unwrap();
    }

    #[test]
    fn rejects_duplicates_at_top_level_nested_and_in_arrays() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"b":1,"b":1}}"#,
            r#"{"x":[{"c":1},{"c":1,"c":2}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let err = check(doc.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{doc}: {err}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(check(b"{\"a\":").is_err());
        assert!(check(b"{} {}").is_err());
        for bad in [&b"\xff"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"] {
            let mut doc = b"{\"a\":\"".to_vec();
            doc.extend_from_slice(bad);
            doc.extend_from_slice(b"\"}");
            assert!(check(&doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn the_depth_limit_is_exact_and_deep_documents_do_not_overflow_the_stack() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        check(nested(MAX_DEPTH).as_bytes()).unwrap();
        let err = check(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err, Error::TooDeep { limit: MAX_DEPTH });
        check_document(nested(3).as_bytes(), 3).unwrap();
        assert!(check_document(nested(4).as_bytes(), 3).is_err());
        // A larger limit than serde_json can read is clamped.
        assert!(check_document(nested(200).as_bytes(), 500).is_err());
        std::thread::Builder::new()
            .spawn(|| {
                let deep = "{\"a\":".repeat(100_000);
                assert!(check(deep.as_bytes()).is_err());
                assert!(check_nesting_and_numbers(deep.as_bytes(), 256, 0).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn numbers_must_be_finite_doubles() {
        for doc in ["[1e400]", "[-1e400]", "{\"a\":1E999}"] {
            let err = check(doc.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("out of the range"), "{doc}: {err}");
        }
        check_nesting_and_numbers(b"[1e308, -0.0, 0, \"1e400\"]", 8, 0).unwrap();
    }

    #[test]
    fn the_string_scan_stops_at_quotes_and_backslashes_wherever_they_are() {
        for special in [b'"', b'\\'] {
            for at in 0..20 {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                assert_eq!(to_quote_or_backslash(&text, 0), at);
            }
        }
        assert_eq!(to_quote_or_backslash(&[0xff; 19], 0), 19);
        // Depth and numbers are still checked after long strings with escapes in them.
        let doc = format!("[\"{}\\\"{}\",[[1e400]]]", "x".repeat(37), "y".repeat(9));
        assert!(check_nesting_and_numbers(doc.as_bytes(), 127, 0).is_err());
        assert!(check_nesting_and_numbers(doc.as_bytes(), 2, 0).is_err());
        let fine = doc.replace("1e400", "1");
        assert!(check_nesting_and_numbers(fine.as_bytes(), 3, 0).is_ok());
    }
}
