//! `json`: the strict in-memory reader ([`cnb_untrusted::json`]) against `serde_json`, and the
//! chunked [`Validator`] fed in random pieces against the same validator fed the whole document
//! and against the in-memory check of a skipped value.

use cnb_untrusted::json::{self, MAX_DEPTH};
use cnb_untrusted::json_stream::{
    StreamError, StreamErrorKind, Top, TopValue, Validator, MAX_NUMBER_LEN,
};
use serde::de::IgnoredAny;

use crate::util::{pieces, text, Rng};

/// Top-level keys watched while validating (what the SBOM sniffing watches, and more).
const WATCHED: &[&str] = &[
    "bomFormat",
    "spdxVersion",
    "artifacts",
    "a",
    "_type",
    "predicate",
];

fn validate(top: Top, depth: usize, parts: &[&[u8]]) -> (Result<(), StreamError>, Vec<TopValue>) {
    let mut v = Validator::new(top, depth).watch_top_keys(WATCHED);
    let mut fed = 0u64;
    for part in parts {
        if let Err(e) = v.feed(part) {
            return (Err(e), v.top_values().to_vec());
        }
        fed += part.len() as u64;
        assert_eq!(v.offset(), fed, "Validator::offset is not the bytes fed");
    }
    let seen = v.top_values().to_vec();
    (v.finish(), seen)
}

/// What the in-memory readers decide for a value they skip: `serde_json`'s grammar on UTF-8
/// text, then the depth and number limits.
fn in_memory_skip(data: &[u8], top: Top, depth: usize) -> bool {
    let Some(text) = text(data) else { return false };
    if top == Top::Object && data.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return false;
    }
    serde_json::from_str::<IgnoredAny>(text).is_ok()
        && json::check_nesting_and_numbers(data, depth, 0).is_ok()
}

/// The documented difference: the validator refuses numbers longer than [`MAX_NUMBER_LEN`].
fn long_number(e: &StreamError) -> bool {
    matches!(&e.reason, StreamErrorKind::Number(_))
}

/// Whether some run of number characters is longer than [`MAX_NUMBER_LEN`].
fn any_long_number_run(data: &[u8]) -> bool {
    let mut run = 0usize;
    for &b in data {
        if matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            run += 1;
            if run > MAX_NUMBER_LEN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The target.
pub fn json(data: &[u8]) {
    // The strict reader accepts only what serde_json reads, and only UTF-8.
    let strict = json::check_document(data, MAX_DEPTH);
    if strict.is_ok() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(data).is_ok(),
            "check_document accepted what serde_json refuses"
        );
        assert!(text(data).is_some(), "check_document accepted non-UTF-8");
        assert!(json::check_nesting_and_numbers(data, MAX_DEPTH, 0).is_ok());
    }
    // The depth check never panics on any bytes, at any limit.
    let _ = json::check_nesting_and_numbers(data, 3, 1);
    let _ = json::check_nesting_and_numbers(data, 0, 5);

    let mut rng = Rng::from_data(data);
    for (top, depth) in [
        (Top::Any, MAX_DEPTH),
        (Top::Object, MAX_DEPTH),
        (Top::Any, 3),
    ] {
        let (whole, whole_seen) = validate(top, depth, &[data]);
        for max in [1, 7, 64] {
            let parts = pieces(data, &mut rng, max);
            let (split, split_seen) = validate(top, depth, &parts);
            assert_eq!(
                whole, split,
                "{top:?}/{depth}: fed whole vs in pieces of at most {max}"
            );
            assert_eq!(
                whole_seen, split_seen,
                "{top:?}/{depth}: watched values differ"
            );
        }
        let memory = in_memory_skip(data, top, depth);
        match &whole {
            Ok(()) => assert!(
                memory,
                "{top:?}/{depth}: the validator accepts what the in-memory readers refuse"
            ),
            Err(e) => assert!(
                !memory || (long_number(e) && any_long_number_run(data)),
                "{top:?}/{depth}: the validator refuses ({e}) what the in-memory readers accept"
            ),
        }
        if top == Top::Any && depth == MAX_DEPTH && strict.is_ok() {
            assert!(
                whole.is_ok() || any_long_number_run(data),
                "check_document accepts what the validator refuses: {whole:?}"
            );
        }
    }

    // Go's case folding: an ASCII field name folds to itself in any letter case (a non-ASCII
    // "field" need not fold to itself: `ſ` folds to `s`, and fields are ASCII names), and a key
    // check never panics.
    if let Some(key) = text(data).filter(|t| t.len() <= 64) {
        if key.is_ascii() {
            assert!(json::go_folds_to(key, key));
            assert!(json::go_folds_to(&key.to_ascii_uppercase(), key));
            assert!(json::go_folds_to(key, &key.to_ascii_lowercase()));
        }
        let mut keys = json::Keys::new(&["payloadType", "payload", "signatures"], "fuzz");
        let _ = keys.check(key);
        assert!(keys.check(key).is_err(), "a repeated key is accepted");
    }
}
