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

pub mod subjects;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use cnb_untrusted::{json, json_stream};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most subjects a statement may name (sigstore-go's bound). Enforced while reading, before the
/// 1025th subject is parsed, and when building a [`Statement`].
pub const MAX_SUBJECTS: usize = 1024;

/// Most digests one subject may carry (sigstore-go's bound). Enforced while reading and when
/// building a [`Statement`].
pub const MAX_DIGESTS_PER_SUBJECT: usize = 32;

/// Deepest nesting of JSON arrays and objects a statement may have, counting the statement object
/// itself as level 1 (so a predicate may nest one level less). The deepest real CNB SBOM seen nests
/// 8 levels; Go's `encoding/json` stops at 10,000 and Python's `json` at about 1,000, so a statement
/// this crate accepts can be read by recursive parsers without exhausting their stack.
pub const MAX_NESTING_DEPTH: usize = 256;

/// Longest digest algorithm name accepted in a subject's digest set.
pub const MAX_ALGORITHM_NAME_LEN: usize = 64;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of an in-toto Statement v0.1 (accepted on read, written on request).
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

/// Largest statement [`Statement::from_json`] accepts: the biggest real CNB SBOM seen is about 1.2 MB,
/// and registries cap manifests and blobs far below this.
pub const MAX_STATEMENT_SIZE: usize = 256 * 1024 * 1024;

/// What can go wrong building or reading a statement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The predicate bytes are not one JSON object.
    #[error("predicate is not a JSON object: {0}")]
    PredicateNotJson(String),
    /// The statement has no subject.
    #[error("statement has no subject")]
    NoSubject,
    /// A subject is malformed (or there are too many of them: `name` is then empty).
    #[error("subject `{}`: {reason}", Shown(name))]
    BadSubject {
        /// The subject's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The predicate type is empty or not a URI.
    #[error("predicate type `{}` is not an absolute URI", Shown(.0))]
    BadPredicateType(String),
    /// The statement JSON could not be read.
    #[error("malformed in-toto statement: {0}")]
    Malformed(String),
    /// The `_type` is neither v1 nor v0.1.
    #[error(
        "unknown statement type `{}` (expected {STATEMENT_V1} or {STATEMENT_V0_1})",
        Shown(.0)
    )]
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
///
/// Digest policy (checked by [`Subject::sha256`], [`Statement::new`] and [`Statement::from_json`]):
///
/// - 1 to [`MAX_DIGESTS_PER_SUBJECT`] digests;
/// - algorithm names start with an ASCII letter, continue with ASCII letters, digits, `_` or `-`,
///   and are at most [`MAX_ALGORITHM_NAME_LEN`] long; a name that differs from a standard in-toto
///   name only in letter case (`SHA256`, `Sha512`, `dirhash`) is refused as ambiguous;
/// - values are non-empty lowercase hex, of the exact length for the fixed-size standard algorithms
///   (64 digits for `sha256`, 96 for `sha384`, 128 for `sha512`, …).
///
/// Other algorithms (`sha512` alone, or a name this crate does not know) are kept as data but never
/// used for matching: only [`Subject::sha256_digest`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The subject name: the image repository, or `<buildpack-id>:<layer>` for a layer.
    pub name: String,
    /// Digest set; keys are algorithm names (`sha256`), values lowercase hex.
    pub digest: BTreeMap<String, String>,
}

/// The standard in-toto digest algorithm names, spelled as the specification spells them.
const STANDARD_ALGORITHMS: &[&str] = &[
    "sha256",
    "sha224",
    "sha384",
    "sha512",
    "sha512_224",
    "sha512_256",
    "sha3_224",
    "sha3_256",
    "sha3_384",
    "sha3_512",
    "shake128",
    "shake256",
    "blake2b",
    "blake2s",
    "ripemd160",
    "sm3",
    "gost",
    "sha1",
    "md5",
    "dirHash",
    "gitCommit",
    "gitTree",
    "gitBlob",
    "gitTag",
    "goModuleH1",
];

/// Hex digits of a fixed-size standard algorithm's digest.
fn hex_len(algorithm: &str) -> Option<usize> {
    Some(match algorithm {
        "md5" => 32,
        "sha1" | "ripemd160" => 40,
        "sha224" | "sha512_224" | "sha3_224" => 56,
        "sha256" | "sha512_256" | "sha3_256" | "sm3" => 64,
        "sha384" | "sha3_384" => 96,
        "sha512" | "sha3_512" => 128,
        _ => return None,
    })
}

/// Checks a digest algorithm name against the policy documented on [`Subject`].
fn check_algorithm_name(algorithm: &str) -> Result<(), String> {
    if algorithm.is_empty() {
        return Err("empty digest algorithm name".into());
    }
    if algorithm.len() > MAX_ALGORITHM_NAME_LEN {
        return Err(format!(
            "digest algorithm name `{}` is longer than {MAX_ALGORITHM_NAME_LEN} characters",
            Shown(algorithm)
        ));
    }
    let mut chars = algorithm.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!(
            "digest algorithm name `{}` must start with an ASCII letter and contain only ASCII \
             letters, digits, `_` and `-`",
            Shown(algorithm)
        ));
    }
    if let Some(standard) = STANDARD_ALGORITHMS
        .iter()
        .find(|s| **s != algorithm && s.eq_ignore_ascii_case(algorithm))
    {
        return Err(format!(
            "digest algorithm name `{}` differs from the standard name `{standard}` only in \
             letter case",
            Shown(algorithm)
        ));
    }
    Ok(())
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

    /// The sha256 digest as `sha256:<hex>`, if the subject has one. This is the only digest used
    /// to match a subject with an artifact; other algorithms are ignored.
    pub fn sha256_digest(&self) -> Option<String> {
        self.digest.get("sha256").map(|h| format!("sha256:{h}"))
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Error::BadSubject {
            name: self.name.clone(),
            reason,
        };
        if self.digest.is_empty() {
            return Err(bad("empty digest set".into()));
        }
        if self.digest.len() > MAX_DIGESTS_PER_SUBJECT {
            return Err(bad(format!(
                "{} digests (at most {MAX_DIGESTS_PER_SUBJECT} are allowed)",
                self.digest.len()
            )));
        }
        for (algorithm, value) in &self.digest {
            check_algorithm_name(algorithm).map_err(bad)?;
            let lower_hex = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !lower_hex {
                return Err(bad(format!("{algorithm} digest is not lowercase hex")));
            }
            if let Some(len) = hex_len(algorithm) {
                if value.len() != len {
                    return Err(bad(format!(
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
        check_parts(&subjects, predicate_type)?;
        check_predicate(&predicate)?;
        Ok(Statement {
            version,
            subjects,
            predicate_type: predicate_type.to_string(),
            predicate,
        })
    }

    /// The statement's JSON without its predicate, for writers that stream a predicate too large
    /// to hold: [`Statement::to_json`] of the same statement is `head + predicate + tail`. The
    /// subjects and the predicate type are checked as [`Statement::new`] checks them; the
    /// predicate must be checked by the caller as it streams (one JSON object, nested at most
    /// [`MAX_NESTING_DEPTH`] `- 1` levels, as [`predicate_validator`] does).
    pub fn frame(
        version: StatementVersion,
        subjects: &[Subject],
        predicate_type: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        check_parts(subjects, predicate_type)?;
        Ok(frame(version, subjects, predicate_type))
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
        let (head, tail) = frame(self.version, &self.subjects, &self.predicate_type);
        let mut out = Vec::with_capacity(head.len() + self.predicate.len() + tail.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.predicate);
        out.extend_from_slice(&tail);
        out
    }

    /// Reads a statement (v1 or v0.1). Strict where it matters for security:
    ///
    /// - the bytes must be UTF-8 and one JSON object, at most [`MAX_STATEMENT_SIZE`] long, nested
    ///   at most [`MAX_NESTING_DEPTH`] levels, with every number a finite IEEE double (`1e400` is
    ///   refused: Go, JavaScript and Python readers cannot represent it);
    /// - a key repeated in the statement or a subject is rejected (keys are compared after
    ///   unescaping, so `"subject"` and `"\u0073ubject"` collide);
    /// - a key that is not one of the fields this crate reads (`_type`, `subject`, `predicateType`,
    ///   `predicate`; `name`, `digest` in a subject) but matches one case-insensitively (`Subject`,
    ///   `PREDICATETYPE`, `Digest`, or with the Unicode folds `ſ` = `s`, `K` = `k`) is rejected: Go's
    ///   `encoding/json` matches keys that way, so a Go verifier would read such a statement
    ///   differently;
    /// - `_type` must be known, there are at most [`MAX_SUBJECTS`] subjects (the limit is enforced
    ///   while reading), and subjects must follow the digest policy documented on [`Subject`].
    ///
    /// Other unknown fields are ignored, as the specification requires. The predicate comes back as
    /// the exact byte span it occupies, including surrounding whitespace.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_STATEMENT_SIZE {
            return Err(Error::TooLarge(bytes.len()));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|e| Error::Malformed(format!("not UTF-8: {e}")))?;
        // serde_json skips unknown values and the raw predicate without recursing, so this never
        // exhausts the stack; the depth and number limits are checked on the validated text next.
        let raw: RawStatement<'_> =
            serde_json::from_str(text).map_err(|e| Error::Malformed(e.to_string()))?;
        json::check_nesting_and_numbers(bytes, MAX_NESTING_DEPTH, 0)
            .map_err(|e| Error::Malformed(e.to_string()))?;
        let version = StatementVersion::from_type_uri(&raw.type_uri)?;
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

fn check_parts(subjects: &[Subject], predicate_type: &str) -> Result<(), Error> {
    if subjects.is_empty() {
        return Err(Error::NoSubject);
    }
    if subjects.len() > MAX_SUBJECTS {
        return Err(Error::BadSubject {
            name: String::new(),
            reason: format!(
                "{} subjects (at most {MAX_SUBJECTS} are allowed)",
                subjects.len()
            ),
        });
    }
    for subject in subjects {
        subject.validate()?;
    }
    check_predicate_type(predicate_type)
}

/// Compact JSON, fields in the order the specification lists them, around the predicate.
fn frame(
    version: StatementVersion,
    subjects: &[Subject],
    predicate_type: &str,
) -> (Vec<u8>, Vec<u8>) {
    // serde_json string escaping cannot fail for `&str`.
    let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"_type\":");
    out.extend_from_slice(string(version.type_uri()).as_bytes());
    out.extend_from_slice(b",\"subject\":[");
    for (i, subject) in subjects.iter().enumerate() {
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
    out.extend_from_slice(string(predicate_type).as_bytes());
    out.extend_from_slice(b",\"predicate\":");
    (out, b"}".to_vec())
}

/// A streaming check of a predicate, the one [`Statement::new`] applies: one JSON object, nested
/// at most [`MAX_NESTING_DEPTH`] levels counting the statement around it, finite numbers, UTF-8.
pub fn predicate_validator() -> json_stream::Validator {
    json_stream::Validator::new(json_stream::Top::Object, MAX_NESTING_DEPTH - 1)
}

fn check_predicate(predicate: &[u8]) -> Result<(), Error> {
    let first = predicate.iter().find(|b| !is_json_whitespace(**b)).copied();
    if first != Some(b'{') {
        return Err(Error::PredicateNotJson(
            "the document does not start with `{`".into(),
        ));
    }
    // `from_slice` does not check the UTF-8 of strings it skips; a statement is text.
    let text = std::str::from_utf8(predicate)
        .map_err(|e| Error::PredicateNotJson(format!("not UTF-8: {e}")))?;
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| Error::PredicateNotJson(e.to_string()))?;
    // The predicate sits one level deep in the statement.
    json::check_nesting_and_numbers(predicate, MAX_NESTING_DEPTH, 1)
        .map_err(|e| Error::PredicateNotJson(e.to_string()))
}

/// Longest attacker-controlled string quoted in an error message, in characters.
const MAX_SHOWN: usize = 64;

/// Displays an untrusted string for an error message: escaped (no control characters reach a
/// terminal) and cut after [`MAX_SHOWN`] characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Quotes and backslashes are escaped too, so a shown key stays unambiguous.
        f.write_str(&cnb_untrusted::text::sanitize_quoted(self.0, MAX_SHOWN))
    }
}

/// The statement fields this crate reads.
const STATEMENT_FIELDS: &[&str] = &["_type", "subject", "predicateType", "predicate"];
/// The subject fields this crate reads.
const SUBJECT_FIELDS: &[&str] = &["name", "digest"];

/// Checks one key of an object a typed visitor reads (see [`json::Keys`]), with this crate's
/// messages (untrusted keys quoted in backticks, escaped and shortened).
fn check_key<E: de::Error>(keys: &mut json::Keys<'_>, key: &str) -> Result<(), E> {
    keys.check(key).map_err(|e| match e {
        json::KeyError::Duplicate { key, place } => {
            de::Error::custom(format!("duplicate key `{}` in {place}", Shown(&key)))
        }
        json::KeyError::CaseVariant { key, field, place } => de::Error::custom(format!(
            "key `{}` in {place} differs from the field `{field}` only in letter case; Go's \
             encoding/json would read it as `{field}`, so the statement is ambiguous",
            Shown(&key)
        )),
        other => de::Error::custom(other),
    })
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
                let mut keys = json::Keys::new(STATEMENT_FIELDS, "the statement");
                while let Some(key) = map.next_key::<String>()? {
                    check_key(&mut keys, &key)?;
                    match key.as_str() {
                        "_type" => type_uri = Some(map.next_value::<CowStr<'de>>()?.0),
                        "subject" => subjects = Some(map.next_value::<SubjectList>()?.0),
                        "predicateType" => predicate_type = Some(map.next_value()?),
                        "predicate" => predicate = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
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
                    if out.len() == MAX_SUBJECTS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_SUBJECTS} subjects (at most {MAX_SUBJECTS} are read)"
                        )));
                    }
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
                let mut keys = json::Keys::new(SUBJECT_FIELDS, "a subject");
                while let Some(key) = map.next_key::<String>()? {
                    check_key(&mut keys, &key)?;
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "digest" => digest = Some(map.next_value::<DigestSet>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
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
                    if out.len() == MAX_DIGESTS_PER_SUBJECT && !out.contains_key(&algorithm) {
                        return Err(de::Error::custom(format!(
                            "a subject has more than {MAX_DIGESTS_PER_SUBJECT} digests (at most \
                             {MAX_DIGESTS_PER_SUBJECT} are read)"
                        )));
                    }
                    if out.insert(algorithm.clone(), value).is_some() {
                        return Err(de::Error::custom(format!(
                            "duplicate digest algorithm `{}`",
                            Shown(&algorithm)
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

    /// One subject `x` with a sha256 digest, as JSON.
    fn subject_json() -> String {
        format!("{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}")
    }

    /// A v1 statement with the given subject list (without brackets) and predicate text.
    fn statement_text(subjects: &str, predicate: &str) -> String {
        format!("{{\"_type\":\"{STATEMENT_V1}\",\"subject\":[{subjects}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{predicate}}}")
    }

    /// A subject `x` whose digest set is `digests` (without braces), as JSON.
    fn subject_with_digests(digests: &str) -> String {
        format!("{{\"name\":\"x\",\"digest\":{{{digests}}}}}")
    }

    fn malformed(text: &str) -> String {
        match Statement::from_json(text.as_bytes()) {
            Ok(s) => panic!("accepted {text}: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Runs `f` on a new thread with the default stack size (2 MiB, far less than the main
    /// thread's), so a recursive parser would overflow it.
    fn on_default_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .spawn(f)
            .unwrap()
            .join()
            .expect("no panic and no stack overflow")
    }

    #[test]
    fn rejects_every_known_field_given_twice_also_when_one_spelling_is_escaped() {
        let subject = subject_json();
        let t = format!("\"{STATEMENT_V1}\"");
        let tail = "\"predicateType\":\"https://x.dev/y\",\"predicate\":{}";
        let cases = [
            // `subject` twice, plain and with one letter escaped.
            format!("{{\"_type\":{t},\"subject\":[{subject}],\"subject\":[{subject}],{tail}}}"),
            format!("{{\"_type\":{t},\"subject\":[{subject}],\"\\u0073ubject\":[{subject}],{tail}}}"),
            // `predicateType` twice.
            format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"predicateType\":\"https://x.dev/z\"}}"),
            format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"predicate\\u0054ype\":\"https://x.dev/z\"}}"),
            // `predicate` twice.
            format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"predicate\":{{\"b\":1}}}}"),
            format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"\\u0070redicate\":{{\"b\":1}}}}"),
            // `_type` twice.
            format!("{{\"_type\":{t},\"\\u005ftype\":\"{STATEMENT_V0_1}\",\"subject\":[{subject}],{tail}}}"),
            // `name` and `digest` twice in a subject, one escaped.
            format!("{{\"_type\":{t},\"subject\":[{{\"name\":\"x\",\"n\\u0061me\":\"y\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],{tail}}}"),
            format!("{{\"_type\":{t},\"subject\":[{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}},\"\\u0064igest\":{{\"sha256\":\"{HEX_B}\"}}}}],{tail}}}"),
            // An algorithm twice in a digest set, one escaped.
            format!("{{\"_type\":{t},\"subject\":[{}],{tail}}}", subject_with_digests(&format!("\"sha256\":\"{HEX_A}\",\"sh\\u0061256\":\"{HEX_B}\""))),
            // An unknown key twice.
            format!("{{\"_type\":{t},\"x\":1,\"subject\":[{subject}],{tail},\"x\":2}}"),
        ];
        for case in cases {
            let message = malformed(&case);
            assert!(message.contains("duplicate"), "{case}: {message}");
        }
    }

    #[test]
    fn rejects_keys_that_go_would_match_case_insensitively_to_a_known_field() {
        let subject = subject_json();
        let t = format!("\"{STATEMENT_V1}\"");
        let tail = "\"predicateType\":\"https://x.dev/y\",\"predicate\":{}";
        // (document, the offending key as it appears in the message)
        let cases = [
            (format!("{{\"_type\":{t},\"subject\":[{subject}],\"Subject\":[],{tail}}}"), "Subject"),
            (format!("{{\"_type\":{t},\"SUBJECT\":[{subject}],{tail}}}"), "SUBJECT"),
            (format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"PREDICATETYPE\":\"https://x.dev/z\"}}"), "PREDICATETYPE"),
            (format!("{{\"_type\":{t},\"_Type\":\"{STATEMENT_V0_1}\",\"subject\":[{subject}],{tail}}}"), "_Type"),
            (format!("{{\"_type\":{t},\"subject\":[{subject}],{tail},\"Predicate\":{{\"b\":1}}}}"), "Predicate"),
            (format!("{{\"_type\":{t},\"subject\":[{{\"name\":\"x\",\"Digest\":{{\"sha256\":\"{HEX_B}\"}},\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],{tail}}}"), "Digest"),
            (format!("{{\"_type\":{t},\"subject\":[{{\"Name\":\"y\",\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],{tail}}}"), "Name"),
            // Go folds `ſ` (U+017F) with `s`; raw and escaped.
            (format!("{{\"_type\":{t},\"subject\":[{subject}],\"\u{17f}ubject\":[],{tail}}}"), "\u{17f}ubject"),
            (format!("{{\"_type\":{t},\"subject\":[{subject}],\"\\u017fubject\":[],{tail}}}"), "\u{17f}ubject"),
            (format!("{{\"_type\":{t},\"subject\":[{{\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}},\"dige\u{17f}t\":{{}}}}],{tail}}}"), "dige\u{17f}t"),
        ];
        for (case, key) in cases {
            let message = malformed(&case);
            assert!(
                message.contains(&format!("key `{key}`")) && message.contains("letter case"),
                "{case}: {message}"
            );
        }
    }

    #[test]
    fn keeps_ignoring_unknown_keys_that_are_not_case_variants_of_known_fields() {
        let text = format!(
            "{{\"_type\":\"{STATEMENT_V1}\",\"type\":1,\"Type\":2,\"subjects\":[],\"predicate_type\":\"z\",\"subject\":[{{\"name\":\"x\",\"uri\":\"u\",\"names\":[],\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}],\"predicateType\":\"https://x.dev/y\",\"predicate\":{{\"Subject\":1,\"subject\":2}}}}"
        );
        let s = Statement::from_json(text.as_bytes()).unwrap();
        assert_eq!(s.predicate_type(), "https://x.dev/y");
        assert_eq!(s.predicate(), br#"{"Subject":1,"subject":2}"#);
    }

    #[test]
    fn rejects_type_uris_that_differ_from_the_known_ones_in_any_way() {
        for t in [
            "https://in-toto.io/statement/v1",
            "https://in-toto.io/Statement/v1/",
            "https://in-toto.io/Statement/V1",
            " https://in-toto.io/Statement/v1",
            "https://in-toto.io/Statement/v0.2",
            "",
        ] {
            let text = statement_text(&subject_json(), "{}").replace(STATEMENT_V1, t);
            assert!(
                matches!(
                    Statement::from_json(text.as_bytes()),
                    Err(Error::UnknownType(_))
                ),
                "{t}"
            );
        }
    }

    #[test]
    fn error_messages_quote_untrusted_strings_escaped_and_shortened() {
        // A JSON-escaped ESC (a terminal control sequence once unescaped) and 10,000 more characters.
        let long_type = format!("https://evil.example/\\u001b[31m{}", "x".repeat(10_000));
        let text = statement_text(&subject_json(), "{}").replace(STATEMENT_V1, &long_type);
        let message = malformed(&text);
        assert!(message.len() < 300, "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.contains("…"), "{message}");
    }

    #[test]
    fn accepts_1024_subjects_and_refuses_the_1025th_while_reading() {
        let subjects = |n: usize| vec![subject_json(); n].join(",");
        let s =
            Statement::from_json(statement_text(&subjects(MAX_SUBJECTS), "{}").as_bytes()).unwrap();
        assert_eq!(s.subjects().len(), MAX_SUBJECTS);

        let message = malformed(&statement_text(&subjects(MAX_SUBJECTS + 1), "{}"));
        assert!(message.contains("more than 1024 subjects"), "{message}");
        // Reading stops at the 1025th subject: what follows is never looked at.
        let message = malformed(&statement_text(
            &format!("{},5,\"not a subject\"", subjects(MAX_SUBJECTS + 1)),
            "{}",
        ));
        assert!(message.contains("more than 1024 subjects"), "{message}");

        let build = |n: usize| {
            Statement::new(
                StatementVersion::V1,
                vec![Subject::sha256("x", HEX_A).unwrap(); n],
                "https://x.dev/y",
                b"{}".to_vec(),
            )
        };
        assert!(build(MAX_SUBJECTS).is_ok());
        let err = build(MAX_SUBJECTS + 1).unwrap_err();
        assert!(
            err.to_string().contains("1025 subjects (at most 1024"),
            "{err}"
        );
    }

    #[test]
    fn accepts_32_digests_per_subject_and_refuses_33() {
        let digests = |n: usize| {
            (0..n)
                .map(|i| format!("\"alg{i}\":\"{HEX_A}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let s = Statement::from_json(
            statement_text(
                &subject_with_digests(&digests(MAX_DIGESTS_PER_SUBJECT)),
                "{}",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(s.subjects()[0].digest.len(), MAX_DIGESTS_PER_SUBJECT);
        let message = malformed(&statement_text(
            &subject_with_digests(&digests(MAX_DIGESTS_PER_SUBJECT + 1)),
            "{}",
        ));
        assert!(message.contains("more than 32 digests"), "{message}");

        let mut subject = Subject::sha256("x", HEX_A).unwrap();
        for i in 0..MAX_DIGESTS_PER_SUBJECT {
            subject.digest.insert(format!("alg{i}"), HEX_A.into());
        }
        let err = Statement::new(
            StatementVersion::V1,
            vec![subject],
            "https://x.dev/y",
            b"{}".to_vec(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("33 digests (at most 32"), "{err}");
    }

    #[test]
    fn keeps_sha512_only_and_unknown_algorithms_as_data_but_never_matches_them() {
        let sha512 = "c".repeat(128);
        let sha384 = "d".repeat(96);
        for digests in [
            format!("\"sha512\":\"{sha512}\""),
            format!("\"sha384\":\"{sha384}\""),
            format!("\"blake3\":\"{HEX_A}\""),
            format!(
                "\"gitCommit\":\"{}\",\"sha3_256\":\"{HEX_B}\"",
                &HEX_A[..40]
            ),
            "\"my-hash_2\":\"0123456789abcdef\"".to_string(),
        ] {
            let s = Statement::from_json(
                statement_text(&subject_with_digests(&digests), "{}").as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{digests}: {e}"));
            assert_eq!(s.subjects()[0].sha256_digest(), None, "{digests}");
        }
    }

    #[test]
    fn refuses_odd_or_case_variant_algorithm_names_and_bad_hex_without_panicking() {
        let long_name = "a".repeat(MAX_ALGORITHM_NAME_LEN + 1);
        let bad_names = [
            "SHA256",
            "Sha256",
            "SHA512_256",
            "DIRHASH",
            "",
            "sha 256",
            "sha256:",
            "../sha256",
            "1sha",
            "_sha",
            "\u{17f}ha256",
            "sha256\u{0}",
            "sha256\u{200b}",
            long_name.as_str(),
        ];
        for name in bad_names {
            let text = statement_text(
                &subject_with_digests(&format!(
                    "{}:\"{HEX_A}\"",
                    serde_json::to_string(name).unwrap()
                )),
                "{}",
            );
            let err = Statement::from_json(text.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, Error::BadSubject { reason, .. } if reason.contains("algorithm name")),
                "{name:?}: {err}"
            );
        }
        let bad_values = [
            ("sha256", HEX_A.to_uppercase()),
            ("sha256", format!("{HEX_A}0")),
            ("sha256", format!(" {HEX_A}")),
            ("sha384", "d".repeat(95)),
            ("sha512", HEX_A.to_string()),
            ("sha512", "C".repeat(128)),
            ("blake3", String::new()),
            ("blake3", "xyz".into()),
            ("blake3", "é".into()),
        ];
        for (algorithm, value) in bad_values {
            let text = statement_text(
                &subject_with_digests(&format!("\"{algorithm}\":\"{value}\"")),
                "{}",
            );
            assert!(
                matches!(
                    Statement::from_json(text.as_bytes()),
                    Err(Error::BadSubject { .. })
                ),
                "{algorithm}: {value}"
            );
        }
    }

    #[test]
    fn deep_nesting_anywhere_is_an_error_not_a_stack_overflow() {
        on_default_stack(|| {
            const DEEP: usize = 10_000;
            let arrays = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
            let objects = format!("{}1{}", "{\"a\":".repeat(DEEP), "}".repeat(DEEP));
            let subject = subject_json();
            let mut documents = vec![
                statement_text(&subject, &objects),
                statement_text(&subject, &format!("{{\"a\":{arrays}}}")),
                statement_text(&format!("{subject},{arrays}"), "{}"),
                statement_text(&subject, "{}").replacen('{', &format!("{{\"x\":{arrays},"), 1),
                statement_text(
                    &format!(
                        "{{\"x\":{objects},\"name\":\"x\",\"digest\":{{\"sha256\":\"{HEX_A}\"}}}}"
                    ),
                    "{}",
                ),
                statement_text(&subject_with_digests(&format!("\"sha256\":{arrays}")), "{}"),
                statement_text(&subject, "{}").replace(&format!("\"{STATEMENT_V1}\""), &arrays),
                arrays.clone(),
                objects.clone(),
            ];
            // Unbalanced: only openings.
            documents.push(statement_text(&subject, &"{\"a\":[".repeat(DEEP)));
            for document in &documents {
                assert!(Statement::from_json(document.as_bytes()).is_err());
            }
            let built = Statement::new(
                StatementVersion::V1,
                vec![Subject::sha256("x", HEX_A).unwrap()],
                "https://x.dev/y",
                objects.into_bytes(),
            );
            assert!(matches!(built, Err(Error::PredicateNotJson(_))));
        });
    }

    #[test]
    fn nesting_is_limited_to_max_nesting_depth_including_the_statement_object() {
        let nested = |depth: usize| {
            format!(
                "{}{{}}{}",
                "{\"a\":".repeat(depth - 1),
                "}".repeat(depth - 1)
            )
        };
        let subject = subject_json();
        // The predicate sits at level 2, so it may nest MAX_NESTING_DEPTH - 1 levels.
        let deepest = nested(MAX_NESTING_DEPTH - 1);
        let s = Statement::from_json(statement_text(&subject, &deepest).as_bytes()).unwrap();
        assert_eq!(Statement::from_json(&s.to_json()).unwrap(), s);
        let message = malformed(&statement_text(&subject, &nested(MAX_NESTING_DEPTH)));
        assert!(message.contains("nested more than 256 levels"), "{message}");
        let err = Statement::new(
            StatementVersion::V1,
            vec![Subject::sha256("x", HEX_A).unwrap()],
            "https://x.dev/y",
            nested(MAX_NESTING_DEPTH).into_bytes(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("nested more than 256 levels"),
            "{err}"
        );
        // Brackets inside strings do not count.
        let in_string = format!("{{\"a\":\"{}\"}}", "[{\\\"".repeat(1000));
        Statement::from_json(statement_text(&subject, &in_string).as_bytes()).unwrap();
    }

    #[test]
    fn numbers_beyond_an_ieee_double_are_an_error_and_big_finite_ones_are_data() {
        on_default_stack(|| {
            let subject = subject_json();
            for predicate in [
                "{\"n\":1e400}",
                "{\"n\":-1e400}",
                "{\"n\":[1,2,1E+999]}",
                &format!("{{\"n\":1{}}}", "0".repeat(400)),
            ] {
                let message = malformed(&statement_text(&subject, predicate));
                assert!(
                    message.contains("out of the range"),
                    "{predicate}: {message}"
                );
                let built = Statement::new(
                    StatementVersion::V1,
                    vec![Subject::sha256("x", HEX_A).unwrap()],
                    "https://x.dev/y",
                    predicate.as_bytes().to_vec(),
                );
                assert!(
                    matches!(built, Err(Error::PredicateNotJson(_))),
                    "{predicate}"
                );
            }
            // An unknown field is checked too.
            let text = statement_text(&subject, "{}").replacen('{', "{\"x\":1e400,", 1);
            assert!(malformed(&text).contains("out of the range"));
            // 2^128 is a finite double: Go, Python and JavaScript read it, so the predicate keeps it.
            let two_128 = "340282366920938463463374607431768211456";
            let predicate = format!("{{\"n\":{two_128},\"m\":-{two_128}.5e3}}");
            let s = Statement::from_json(statement_text(&subject, &predicate).as_bytes()).unwrap();
            assert_eq!(s.predicate(), predicate.as_bytes());
            // Where a string is expected, a number of any size is an error.
            let text =
                statement_text(&subject, "{}").replace(&format!("\"{STATEMENT_V1}\""), two_128);
            malformed(&text);
            let text = statement_text(
                &subject_with_digests(&format!("\"sha256\":{two_128}")),
                "{}",
            );
            malformed(&text);
        });
    }

    #[test]
    fn invalid_utf8_is_an_error_in_the_statement_and_in_a_built_predicate() {
        on_default_stack(|| {
            for bad in [&b"\xff"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"] {
                let mut predicate = b"{\"a\":\"".to_vec();
                predicate.extend_from_slice(bad);
                predicate.extend_from_slice(b"\"}");
                let mut text = statement_text(&subject_json(), "PRED").into_bytes();
                let at = text.windows(4).position(|w| w == b"PRED").unwrap();
                text.splice(at..at + 4, predicate.iter().copied());
                let err = Statement::from_json(&text).unwrap_err();
                assert!(err.to_string().contains("not UTF-8"), "{err}");
                // In a key, too.
                let mut key = b"{\"".to_vec();
                key.extend_from_slice(bad);
                key.extend_from_slice(b"\":1}");
                for document in [predicate.clone(), key] {
                    let built = Statement::new(
                        StatementVersion::V1,
                        vec![Subject::sha256("x", HEX_A).unwrap()],
                        "https://x.dev/y",
                        document,
                    );
                    assert!(
                        matches!(&built, Err(Error::PredicateNotJson(m)) if m.contains("UTF-8")),
                        "{built:?}"
                    );
                }
            }
        });
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
