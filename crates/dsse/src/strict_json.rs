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

/// Checks that no JSON object in `bytes` repeats a key. Also fails on invalid JSON.
pub(crate) fn check_no_duplicate_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<NoDuplicates>(bytes).map(|_| ())
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
    use super::check_no_duplicate_keys;

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
