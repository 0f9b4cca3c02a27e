//! A duplicate-key detector for JSON documents.
//!
//! `serde_json` keeps the last value when an object repeats a key (both for maps and for
//! `serde_json::Value`), so two parsers can disagree about what a signed document says. This
//! module walks the whole document once with a visitor and rejects any object, at any depth, that
//! names a key twice (keys are compared after unescaping, so `"a"` and `"\u0061"` collide).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Longest key quoted in an error message.
const MAX_KEY_IN_MESSAGE: usize = 64;

/// Checks that no JSON object in `bytes` repeats a key. Also fails on invalid JSON, on invalid
/// UTF-8 in any string, and on documents nested deeper than serde_json's recursion limit (128),
/// with an error rather than a stack overflow.
pub(crate) fn check_no_duplicate_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<NoDuplicates>(bytes).map(|_| ())
}

/// Whether Go's `encoding/json` would match `key` to the ASCII field name `field`: equal under
/// Unicode simple case folding, whose only non-ASCII members that fold to ASCII letters are `ſ`
/// (U+017F, folds with `s`) and the Kelvin sign `K` (U+212A, folds with `k`).
fn go_folds_to(key: &str, field: &str) -> bool {
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

/// Rejects a key that Go's case-insensitive `encoding/json` would take for one of `fields` but
/// that is not spelled exactly like it (exact matches and unrelated keys are fine). The message
/// names the key (escaped and shortened) and the field.
pub(crate) fn check_key_spelling(key: &str, fields: &[&str], place: &str) -> Result<(), String> {
    match fields
        .iter()
        .find(|field| **field != key && go_folds_to(key, field))
    {
        None => Ok(()),
        Some(field) => {
            let shown: String = key.chars().take(MAX_KEY_IN_MESSAGE).collect();
            Err(format!(
                "key \"{}\" in {place} differs from the field \"{field}\" only in letter case; \
                 Go's encoding/json would read it as \"{field}\", so the envelope is ambiguous",
                shown.escape_debug()
            ))
        }
    }
}

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
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let shown: String = key.chars().take(MAX_KEY_IN_MESSAGE).collect();
                let ellipsis = if shown.len() < key.len() { "..." } else { "" };
                return Err(de::Error::custom(format_args!(
                    "duplicate key \"{}{ellipsis}\"",
                    shown.escape_debug()
                )));
            }
            map.next_value::<NoDuplicates>()?;
            seen.insert(key);
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_key_spelling, check_no_duplicate_keys, go_folds_to};

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
        let message = check_key_spelling("KeyId", &fields, "signatures[0]").unwrap_err();
        assert!(
            message.contains("key \"KeyId\" in signatures[0]") && message.contains("\"keyid\""),
            "{message}"
        );
    }

    #[test]
    fn accepts_documents_without_duplicates() {
        check_no_duplicate_keys(br#"{"a":1,"b":[{"a":2},{"a":3}],"c":{"d":null,"e":true}}"#)
            .unwrap();
        check_no_duplicate_keys(b"[1,2.5,-3,\"x\"]").unwrap();
    }

    #[test]
    fn rejects_duplicates_at_top_level_nested_and_in_arrays() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"b":1,"b":1}}"#,
            r#"{"x":[{"c":1},{"c":1,"c":2}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let err = check_no_duplicate_keys(doc.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{doc}: {err}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(check_no_duplicate_keys(b"{\"a\":").is_err());
        assert!(check_no_duplicate_keys(b"{} {}").is_err());
    }
}
