//! in-toto Statements whose predicate is an SBOM embedded byte for byte.
//!
//! The in-toto attestation framework wraps a *predicate* (here: a CycloneDX, SPDX or Syft document) in
//! a *Statement* that names the artifacts it is about (its *subjects*). This crate writes
//! [Statement v1](https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md) (v0.1 on
//! request) and reads both.
//!
//! The predicate is never re-serialised: the SBOM file's bytes, including any leading or trailing
//! whitespace, are spliced into the statement as they are, and [`Statement::from_json`] recovers that
//! exact span. A restore therefore writes files identical to the originals, and the same input always
//! gives the same statement bytes (and so the same DSSE signature and manifest digest).
//!
//! ```
//! use cnb_intoto::{Statement, StatementVersion, Subject};
//!
//! let sbom = b"{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\"}\n";
//! let subject = Subject::sha256("registry.example/app", &"a".repeat(64))?;
//! let statement = Statement::new(
//!     StatementVersion::V1,
//!     vec![subject],
//!     "https://cyclonedx.org/bom",
//!     sbom.to_vec(),
//! )?;
//! let json = statement.to_json();
//! let back = Statement::from_json(&json)?;
//! assert_eq!(back.predicate(), sbom);
//! assert_eq!(back, statement);
//! # Ok::<(), cnb_intoto::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most subjects a statement may name to be read.
pub const MAX_SUBJECTS: usize = 1024;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of an in-toto Statement v0.1 (accepted on read, written on request).
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

/// Largest statement [`Statement::from_json`] accepts: the biggest real CNB SBOM seen is about 1.2 MB,
/// and registries cap manifests and blobs far below this.
pub const MAX_STATEMENT_SIZE: usize = 256 * 1024 * 1024;

/// What can go wrong building or reading a statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The predicate bytes are not one JSON object.
    #[error("predicate is not a JSON object: {0}")]
    PredicateNotJson(String),
    /// The statement has no subject.
    #[error("statement has no subject")]
    NoSubject,
    /// A subject is malformed.
    #[error("subject `{name}`: {reason}")]
    BadSubject {
        /// The subject's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The predicate type is empty or not a URI.
    #[error("predicate type `{0}` is not an absolute URI")]
    BadPredicateType(String),
    /// The statement JSON could not be read.
    #[error("malformed in-toto statement: {0}")]
    Malformed(String),
    /// The `_type` is neither v1 nor v0.1.
    #[error("unknown statement type `{0}` (expected {STATEMENT_V1} or {STATEMENT_V0_1})")]
    UnknownType(String),
    /// The statement is larger than [`MAX_STATEMENT_SIZE`].
    #[error("statement of {0} bytes exceeds the {MAX_STATEMENT_SIZE}-byte limit")]
    TooLarge(usize),
}

/// The Statement layer version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatementVersion {
    /// `https://in-toto.io/Statement/v1` (the default).
    #[default]
    V1,
    /// `https://in-toto.io/Statement/v0.1`.
    V0_1,
}

impl StatementVersion {
    /// The `_type` URI of this version.
    pub fn type_uri(self) -> &'static str {
        match self {
            StatementVersion::V1 => STATEMENT_V1,
            StatementVersion::V0_1 => STATEMENT_V0_1,
        }
    }

    /// The version a `_type` URI names.
    pub fn from_type_uri(uri: &str) -> Result<Self, Error> {
        match uri {
            STATEMENT_V1 => Ok(StatementVersion::V1),
            STATEMENT_V0_1 => Ok(StatementVersion::V0_1),
            other => Err(Error::UnknownType(other.to_string())),
        }
    }
}

/// One artifact the statement is about: a name and its digests (`algorithm → lowercase hex`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The subject name: the image repository, or `<buildpack-id>:<layer>` for a layer.
    pub name: String,
    /// Digest set; keys are algorithm names (`sha256`), values lowercase hex.
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with a single sha256 digest given as 64 lowercase hex characters.
    pub fn sha256(name: &str, hex: &str) -> Result<Self, Error> {
        let subject = Subject {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
        };
        subject.validate()?;
        Ok(subject)
    }

    /// The sha256 digest as `sha256:<hex>`, if the subject has one.
    pub fn sha256_digest(&self) -> Option<String> {
        self.digest.get("sha256").map(|h| format!("sha256:{h}"))
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| Error::BadSubject {
            name: self.name.clone(),
            reason: reason.to_string(),
        };
        if self.digest.is_empty() {
            return Err(bad("empty digest set"));
        }
        for (algorithm, value) in &self.digest {
            let expected_len = match algorithm.as_str() {
                "sha256" => Some(64),
                "sha384" => Some(96),
                "sha512" => Some(128),
                _ => None,
            };
            let lower_hex = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !lower_hex {
                return Err(bad(&format!("{algorithm} digest is not lowercase hex")));
            }
            if let Some(len) = expected_len {
                if value.len() != len {
                    return Err(bad(&format!(
                        "{algorithm} digest has {} hex digits, expected {len}",
                        value.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// An in-toto Statement whose predicate is kept as the exact JSON bytes it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    version: StatementVersion,
    subjects: Vec<Subject>,
    predicate_type: String,
    predicate: Vec<u8>,
}

impl Statement {
    /// Builds a statement. `predicate` must be one JSON object, optionally surrounded by JSON
    /// whitespace; its bytes are kept exactly.
    pub fn new(
        version: StatementVersion,
        subjects: Vec<Subject>,
        predicate_type: &str,
        predicate: Vec<u8>,
    ) -> Result<Self, Error> {
        if subjects.is_empty() {
            return Err(Error::NoSubject);
        }
        for subject in &subjects {
            subject.validate()?;
        }
        check_predicate_type(predicate_type)?;
        check_predicate(&predicate)?;
        Ok(Statement {
            version,
            subjects,
            predicate_type: predicate_type.to_string(),
            predicate,
        })
    }

    /// The statement version.
    pub fn version(&self) -> StatementVersion {
        self.version
    }

    /// The subjects, in the order they were given.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The predicate type URI.
    pub fn predicate_type(&self) -> &str {
        &self.predicate_type
    }

    /// The predicate's exact bytes.
    pub fn predicate(&self) -> &[u8] {
        &self.predicate
    }

    /// Consumes the statement and returns the predicate bytes.
    pub fn into_predicate(self) -> Vec<u8> {
        self.predicate
    }

    /// Serialises the statement: compact JSON, fields in the order the specification lists them,
    /// the predicate spliced in verbatim. Deterministic.
    pub fn to_json(&self) -> Vec<u8> {
        // serde_json string escaping cannot fail for `&str`.
        let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = Vec::with_capacity(self.predicate.len() + 512);
        out.extend_from_slice(b"{\"_type\":");
        out.extend_from_slice(string(self.version.type_uri()).as_bytes());
        out.extend_from_slice(b",\"subject\":[");
        for (i, subject) in self.subjects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            out.extend_from_slice(string(&subject.name).as_bytes());
            out.extend_from_slice(b",\"digest\":{");
            for (j, (algorithm, value)) in subject.digest.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(string(algorithm).as_bytes());
                out.push(b':');
                out.extend_from_slice(string(value).as_bytes());
            }
            out.extend_from_slice(b"}}");
        }
        out.extend_from_slice(b"],\"predicateType\":");
        out.extend_from_slice(string(&self.predicate_type).as_bytes());
        out.extend_from_slice(b",\"predicate\":");
        out.extend_from_slice(&self.predicate);
        out.push(b'}');
        out
    }

    /// Reads a statement (v1 or v0.1). Strict where it matters for security: duplicate keys in the
    /// statement or a subject are rejected, `_type` must be known, subjects must be well formed.
    /// Unknown fields are ignored, as the specification requires. The predicate comes back as the
    /// exact byte span it occupies, including surrounding whitespace.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_STATEMENT_SIZE {
            return Err(Error::TooLarge(bytes.len()));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|e| Error::Malformed(format!("not UTF-8: {e}")))?;
        let raw: RawStatement<'_> =
            serde_json::from_str(text).map_err(|e| Error::Malformed(e.to_string()))?;
        let version = StatementVersion::from_type_uri(&raw.type_uri)?;
        if raw.subjects.len() > MAX_SUBJECTS {
            return Err(Error::Malformed(format!(
                "{} subjects (at most {MAX_SUBJECTS} are read)",
                raw.subjects.len()
            )));
        }
        let predicate = raw
            .predicate
            .ok_or_else(|| Error::Malformed("missing `predicate`".into()))?;
        let predicate_type = raw
            .predicate_type
            .ok_or_else(|| Error::Malformed("missing `predicateType`".into()))?;
        let span = whitespace_span(text, predicate.get())?;
        Statement::new(
            version,
            raw.subjects,
            &predicate_type,
            bytes[span.0..span.1].to_vec(),
        )
    }
}

fn check_predicate_type(predicate_type: &str) -> Result<(), Error> {
    let scheme_ok = predicate_type
        .split_once(':')
        .map(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
        })
        .unwrap_or(false);
    if !scheme_ok
        || predicate_type
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::BadPredicateType(predicate_type.to_string()));
    }
    Ok(())
}

fn check_predicate(predicate: &[u8]) -> Result<(), Error> {
    let first = predicate.iter().find(|b| !is_json_whitespace(**b)).copied();
    if first != Some(b'{') {
        return Err(Error::PredicateNotJson(
            "the document does not start with `{`".into(),
        ));
    }
    serde_json::from_slice::<IgnoredAny>(predicate)
        .map(|_| ())
        .map_err(|e| Error::PredicateNotJson(e.to_string()))
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Extends the span of `inner` (a sub-slice of `outer`) over the JSON whitespace around it, which is
/// where a writer that splices file bytes verbatim put the file's own leading and trailing whitespace.
fn whitespace_span(outer: &str, inner: &str) -> Result<(usize, usize), Error> {
    let outer_start = outer.as_ptr() as usize;
    let inner_start = inner.as_ptr() as usize;
    let start = inner_start
        .checked_sub(outer_start)
        .filter(|s| s + inner.len() <= outer.len())
        .ok_or_else(|| Error::Malformed("predicate span outside the statement".into()))?;
    let bytes = outer.as_bytes();
    let mut begin = start;
    while begin > 0 && is_json_whitespace(bytes[begin - 1]) {
        begin -= 1;
    }
    let mut end = start + inner.len();
    while end < bytes.len() && is_json_whitespace(bytes[end]) {
        end += 1;
    }
    Ok((begin, end))
}

/// The statement as read: the predicate is borrowed so its position in the input is known.
/// `_type` is borrowed when it has no escapes and owned when it has (`"https:\/\/..."`).
struct RawStatement<'a> {
    type_uri: Cow<'a, str>,
    subjects: Vec<Subject>,
    predicate_type: Option<String>,
    predicate: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for RawStatement<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatementVisitor;
        impl<'de> Visitor<'de> for StatementVisitor {
            type Value = RawStatement<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an in-toto statement object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut type_uri: Option<Cow<'de, str>> = None;
                let mut subjects: Option<Vec<Subject>> = None;
                let mut predicate_type: Option<String> = None;
                let mut predicate: Option<&'de RawValue> = None;
                let mut seen = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if seen.contains(&key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    match key.as_str() {
                        "_type" => type_uri = Some(map.next_value::<CowStr<'de>>()?.0),
                        "subject" => subjects = Some(map.next_value::<SubjectList>()?.0),
                        "predicateType" => predicate_type = Some(map.next_value()?),
                        "predicate" => predicate = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    seen.push(key);
                }
                Ok(RawStatement {
                    type_uri: type_uri.ok_or_else(|| de::Error::missing_field("_type"))?,
                    subjects: subjects.ok_or_else(|| de::Error::missing_field("subject"))?,
                    predicate_type,
                    predicate,
                })
            }
        }
        deserializer.deserialize_map(StatementVisitor)
    }
}

/// A JSON string, borrowed from the input when it has no escapes, owned otherwise. (serde's own
/// `Cow<str>` impl always allocates, and `&str` fails on escapes.)
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CowVisitor;
        impl<'de> Visitor<'de> for CowVisitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(CowVisitor)
    }
}

struct SubjectList(Vec<Subject>);

impl<'de> Deserialize<'de> for SubjectList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = SubjectList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of subjects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(StrictSubject(subject)) = seq.next_element()? {
                    out.push(subject);
                }
                Ok(SubjectList(out))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct StrictSubject(Subject);

impl<'de> Deserialize<'de> for StrictSubject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SubjectVisitor;
        impl<'de> Visitor<'de> for SubjectVisitor {
            type Value = StrictSubject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a subject object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut name: Option<String> = None;
                let mut digest: Option<BTreeMap<String, String>> = None;
                let mut seen = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if seen.contains(&key) {
                        return Err(de::Error::custom(format!(
                            "duplicate key `{key}` in subject"
                        )));
                    }
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "digest" => digest = Some(map.next_value::<DigestSet>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    seen.push(key);
                }
                Ok(StrictSubject(Subject {
                    name: name.unwrap_or_default(),
                    digest: digest.ok_or_else(|| de::Error::missing_field("digest"))?,
                }))
            }
        }
        deserializer.deserialize_map(SubjectVisitor)
    }
}

struct DigestSet(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for DigestSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DigestVisitor;
        impl<'de> Visitor<'de> for DigestVisitor {
            type Value = DigestSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a digest set object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((algorithm, value)) = map.next_entry::<String, String>()? {
                    if out.insert(algorithm.clone(), value).is_some() {
                        return Err(de::Error::custom(format!(
                            "duplicate digest algorithm `{algorithm}`"
                        )));
                    }
                }
                Ok(DigestSet(out))
            }
        }
        deserializer.deserialize_map(DigestVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn statement(predicate: &[u8]) -> Statement {
        Statement::new(
            StatementVersion::V1,
            vec![
                Subject::sha256("registry.example/app", HEX_A).unwrap(),
                Subject::sha256("paketo-buildpacks/node-engine:node", HEX_B).unwrap(),
            ],
            "https://cyclonedx.org/bom",
            predicate.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn predicate_with_surrounding_whitespace_round_trips_byte_for_byte() {
        for predicate in [
            &b"{\"a\":1}"[..],
            b"{\n  \"a\": 1\n}\n",
            b"\r\n\t {\"a\":[1,2,{\"b\":null}]}  \n\n",
        ] {
            let s = statement(predicate);
            let back = Statement::from_json(&s.to_json()).unwrap();
            assert_eq!(back.predicate(), predicate);
            assert_eq!(back, s);
        }
    }

    #[test]
    fn writes_v1_fields_in_spec_order_and_is_valid_json() {
        let json = statement(b"{\"a\":1}\n").to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.starts_with(
            "{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":\"registry.example/app\""
        ));
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["predicate"]["a"], 1);
        assert_eq!(value["subject"][1]["digest"]["sha256"], HEX_B);
    }

    #[test]
    fn reads_v0_1_and_pretty_printed_statements_from_other_writers() {
        let text = format!(
            "{{\n \"predicateType\": \"https://spdx.dev/Document\",\n \"extra\": [1],\n \"subject\": [{{\"name\": \"x\", \"digest\": {{\"sha256\": \"{HEX_A}\"}}}}],\n \"predicate\": {{\"spdxVersion\": \"SPDX-2.3\"}},\n \"_type\": \"{STATEMENT_V0_1}\"\n}}"
        );
        let s = Statement::from_json(text.as_bytes()).unwrap();
        assert_eq!(s.version(), StatementVersion::V0_1);
        assert_eq!(s.predicate_type(), "https://spdx.dev/Document");
        assert_eq!(s.predicate(), b" {\"spdxVersion\": \"SPDX-2.3\"}");
        assert_eq!(
            s.subjects()[0].sha256_digest().unwrap(),
            format!("sha256:{HEX_A}")
        );
    }

    #[test]
    fn reads_escaped_type_and_predicate_type() {
        // Valid JSON from another writer: `/` escaped as `\/`, a letter as `\u0065`.
        let text = format!(
            "{{\"_type\":\"https:\\/\\/in-toto.io\\/Statement\\/v1\",\"subject\":[{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],\"predicateType\":\"https:\\/\\/cyclon\\u0065dx.org\\/bom\",\"predicate\": {{\"a\":\"\\/\"}} }}"
        );
        assert!(text.contains(r#""_type":"https:\/\/in-toto.io\/Statement\/v1""#));
        let s = Statement::from_json(text.as_bytes()).unwrap();
        assert_eq!(s.version(), StatementVersion::V1);
        assert_eq!(s.predicate_type(), "https://cyclonedx.org/bom");
        assert_eq!(s.predicate(), br#" {"a":"\/"} "#);
        // v0.1 with an escaped `_type` too.
        let v01 = text.replace("Statement\\/v1", "Statement\\/v0.1");
        assert_eq!(
            Statement::from_json(v01.as_bytes()).unwrap().version(),
            StatementVersion::V0_1
        );
    }

    #[test]
    fn rejects_duplicate_keys_in_statement_subject_and_digest() {
        let subject = format!("{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}");
        let cases = [
            format!("{{\"_type\":\"{STATEMENT_V1}\",\"_type\":\"{STATEMENT_V1}\",\"subject\":[{subject}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{}}}}"),
            format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[{subject}],\"predicateType\":\"https://x.dev/y\",\"predicateType\":\"https://x.dev/z\",\"predicate\":{{}}}}"),
            format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[{{\"name\":\"x\",\"name\":\"y\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{}}}}"),
            format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\",\"sha256\":\"{HEX_B}\"}}}}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{}}}}"),
        ];
        for case in cases {
            let err = Statement::from_json(case.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("duplicate"), "{case}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_type_missing_subject_and_bad_digests() {
        let unknown = r#"{"_type":"https://in-toto.io/Statement/v9","subject":[],"predicateType":"https://x.dev/y","predicate":{}}"#;
        assert!(matches!(
            Statement::from_json(unknown.as_bytes()),
            Err(Error::UnknownType(_))
        ));
        let empty = format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{}}}}");
        assert!(matches!(
            Statement::from_json(empty.as_bytes()),
            Err(Error::NoSubject)
        ));
        for digest in ["ABC", "../../etc", &HEX_A[..63]] {
            let bad = format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{digest}\"}}}}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{}}}}");
            assert!(
                matches!(
                    Statement::from_json(bad.as_bytes()),
                    Err(Error::BadSubject { .. })
                ),
                "{digest}"
            );
        }
    }

    #[test]
    fn refuses_predicates_that_are_not_one_json_object() {
        for predicate in [
            &b""[..],
            b"[1]",
            b"{\"a\":",
            b"{} {}",
            b"\xef\xbb\xbf{}",
            b"nul",
        ] {
            let result = Statement::new(
                StatementVersion::V1,
                vec![Subject::sha256("x", HEX_A).unwrap()],
                "https://x.dev/y",
                predicate.to_vec(),
            );
            assert!(
                matches!(result, Err(Error::PredicateNotJson(_))),
                "{:?}",
                String::from_utf8_lossy(predicate)
            );
        }
    }

    #[test]
    fn refuses_predicate_types_that_are_not_uris() {
        for t in ["", "cyclonedx", "https://x.dev/a b", ":nothing"] {
            assert!(matches!(
                check_predicate_type(t),
                Err(Error::BadPredicateType(_))
            ));
        }
    }
}
