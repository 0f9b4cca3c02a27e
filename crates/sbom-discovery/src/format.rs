//! The three SBOM formats the CNB spec knows, and the content check.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{json_reason, sanitize, Error};

/// An SBOM format as the CNB buildpack spec defines it (by file extension).
///
/// ```
/// use cnb_sbom_discovery::SbomFormat;
/// let f = SbomFormat::from_file_name("sbom.cdx.json").unwrap();
/// assert_eq!(f, SbomFormat::CycloneDx);
/// assert_eq!(f.media_type(), "application/vnd.cyclonedx+json");
/// assert_eq!(f.predicate_type(), "https://cyclonedx.org/bom");
/// assert!(f.check_content(br#"{"bomFormat":"CycloneDX"}"#).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SbomFormat {
    /// CycloneDX JSON (`cdx.json`).
    CycloneDx,
    /// SPDX JSON (`spdx.json`).
    Spdx,
    /// Syft JSON (`syft.json`), modern or libpak's capitalised shape.
    Syft,
}

impl SbomFormat {
    /// All formats, in their sort order.
    pub const ALL: [SbomFormat; 3] = [SbomFormat::CycloneDx, SbomFormat::Spdx, SbomFormat::Syft];

    /// The file extension after `sbom.` (`cdx.json`, `spdx.json`, `syft.json`).
    pub fn extension(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "cdx.json",
            SbomFormat::Spdx => "spdx.json",
            SbomFormat::Syft => "syft.json",
        }
    }

    /// The file name the lifecycle gives this format (`sbom.cdx.json`, ...).
    pub fn file_name(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "sbom.cdx.json",
            SbomFormat::Spdx => "sbom.spdx.json",
            SbomFormat::Syft => "sbom.syft.json",
        }
    }

    /// The media type of the spec (`application/vnd.cyclonedx+json`, ...).
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
            SbomFormat::Spdx => "application/spdx+json",
            SbomFormat::Syft => "application/vnd.syft+json",
        }
    }

    /// The in-toto predicate type (`https://cyclonedx.org/bom`, ...).
    pub fn predicate_type(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "https://cyclonedx.org/bom",
            SbomFormat::Spdx => "https://spdx.dev/Document",
            SbomFormat::Syft => "https://syft.dev/bom",
        }
    }

    /// The format of a lifecycle SBOM file name (`sbom.cdx.json` → CycloneDX).
    /// Any other name, including `sbom.legacy.json`, gives `None`.
    pub fn from_file_name(name: &str) -> Option<SbomFormat> {
        Self::ALL.into_iter().find(|f| f.file_name() == name)
    }

    /// The format of an extension (`cdx.json` → CycloneDX).
    pub fn from_extension(ext: &str) -> Option<SbomFormat> {
        Self::ALL.into_iter().find(|f| f.extension() == ext)
    }

    /// The format of an in-toto predicate type. Exact match only.
    pub fn from_predicate_type(predicate_type: &str) -> Option<SbomFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.predicate_type() == predicate_type)
    }

    /// The format of a media type. Parameters (`; charset=...`) and ASCII case are ignored.
    pub fn from_media_type(media_type: &str) -> Option<SbomFormat> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|f| f.media_type().eq_ignore_ascii_case(essence))
    }

    /// Check that `bytes` is one complete JSON value of this format:
    /// CycloneDX needs `"bomFormat": "CycloneDX"`, SPDX a `spdxVersion` starting with `SPDX-`,
    /// Syft an `artifacts` (or `Artifacts`) array plus a `descriptor`/`Descriptor` or
    /// `schema`/`Schema` object. Errors name the input as `<input>`; see
    /// [`SbomFormat::check_content_of`] to name a file.
    pub fn check_content(self, bytes: &[u8]) -> Result<(), Error> {
        self.check_content_of(Path::new("<input>"), bytes)
    }

    /// Like [`SbomFormat::check_content`], with errors that name `path`.
    pub fn check_content_of(self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let sniff: Sniff = serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            reason: json_reason(&e),
        })?;
        self.verdict(path, &sniff)
    }

    /// Whether what was sniffed is this format, as an error naming `path` when not.
    fn verdict(self, path: &Path, sniff: &Sniff) -> Result<(), Error> {
        if sniff.matches(self) {
            Ok(())
        } else {
            Err(Error::ContentMismatch {
                path: path.to_path_buf(),
                claimed: self,
                found: sniff.describe(),
            })
        }
    }
}

/// The top-level keys [`SbomFormat::check_top_values`] needs, for
/// [`Validator::watch_top_keys`](cnb_untrusted::json_stream::Validator::watch_top_keys).
pub const SNIFF_KEYS: &[&str] = &[
    "bomFormat",
    "spdxVersion",
    "artifacts",
    "Artifacts",
    "descriptor",
    "Descriptor",
    "schema",
    "Schema",
];

impl SbomFormat {
    /// Like [`SbomFormat::check_content_of`], for a document validated in a stream: decides from
    /// the top-level values a [`Validator`](cnb_untrusted::json_stream::Validator) watching
    /// [`SNIFF_KEYS`] recorded, with the same rules.
    pub fn check_top_values(
        self,
        path: &Path,
        values: &[cnb_untrusted::json_stream::TopValue],
    ) -> Result<(), Error> {
        use cnb_untrusted::json_stream::Kind;
        let mut s = Sniff::default();
        for v in values {
            let slot = match v.key {
                "bomFormat" => &mut s.bom_format,
                "spdxVersion" => &mut s.spdx_version,
                "artifacts" | "Artifacts" => &mut s.artifacts,
                "descriptor" | "Descriptor" => &mut s.descriptor,
                _ => &mut s.schema,
            };
            let shape = match v.kind {
                Kind::Null => Shape::Null,
                Kind::Bool => Shape::Bool,
                Kind::Number => Shape::Number,
                Kind::String => Shape::String(v.text.clone()),
                Kind::Array => Shape::Array,
                Kind::Object => Shape::Object,
            };
            if slot.is_none() || matches!(shape, Shape::Array | Shape::Object) {
                *slot = Some(shape);
            }
        }
        self.verdict(path, &s)
    }
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SbomFormat::CycloneDx => "CycloneDX",
            SbomFormat::Spdx => "SPDX",
            SbomFormat::Syft => "Syft JSON",
        })
    }
}

/// The JSON type of a value, with short strings kept.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Null,
    Bool,
    Number,
    String(Option<String>),
    Array,
    Object,
}

impl Shape {
    fn name(&self) -> &'static str {
        match self {
            Shape::Null => "null",
            Shape::Bool => "a boolean",
            Shape::Number => "a number",
            Shape::String(_) => "a string",
            Shape::Array => "an array",
            Shape::Object => "an object",
        }
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Bool)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Number)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Number)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Number)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Shape, E> {
        Ok(Shape::String((v.len() <= 64).then(|| v.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

/// What the top level of a JSON document looks like: only the keys that tell the
/// SBOM formats apart are kept; everything else is validated and dropped.
#[derive(Debug, Default)]
struct Sniff {
    top: Option<&'static str>,
    bom_format: Option<Shape>,
    spdx_version: Option<Shape>,
    artifacts: Option<Shape>,
    descriptor: Option<Shape>,
    schema: Option<Shape>,
}

impl Sniff {
    fn matches(&self, format: SbomFormat) -> bool {
        match format {
            SbomFormat::CycloneDx => self.is_cyclonedx(),
            SbomFormat::Spdx => self.is_spdx(),
            SbomFormat::Syft => self.is_syft(),
        }
    }

    fn is_cyclonedx(&self) -> bool {
        matches!(&self.bom_format, Some(Shape::String(Some(s))) if s == "CycloneDX")
    }

    fn is_spdx(&self) -> bool {
        matches!(&self.spdx_version, Some(Shape::String(Some(s))) if s.starts_with("SPDX-"))
    }

    fn is_syft(&self) -> bool {
        self.artifacts == Some(Shape::Array)
            && (self.descriptor == Some(Shape::Object) || self.schema == Some(Shape::Object))
    }

    fn describe(&self) -> String {
        if let Some(top) = self.top {
            return format!("is {top}, not a JSON object");
        }
        if self.is_cyclonedx() {
            return "looks like CycloneDX (`bomFormat` is \"CycloneDX\")".into();
        }
        if self.is_spdx() {
            return "looks like SPDX (it has `spdxVersion`)".into();
        }
        if self.is_syft() {
            return "looks like Syft JSON (it has `artifacts` and `descriptor`/`schema`)".into();
        }
        let mut clues = Vec::new();
        match &self.bom_format {
            Some(Shape::String(Some(s))) => {
                clues.push(format!("`bomFormat` is \"{}\"", sanitize(s)));
            }
            Some(other) => clues.push(format!("`bomFormat` is {}", other.name())),
            None => {}
        }
        match &self.spdx_version {
            Some(Shape::String(Some(s))) => {
                clues.push(format!("`spdxVersion` is \"{}\"", sanitize(s)));
            }
            Some(other) => clues.push(format!("`spdxVersion` is {}", other.name())),
            None => {}
        }
        match &self.artifacts {
            Some(Shape::Array) => {
                clues.push("it has `artifacts` but no `descriptor` or `schema` object".into())
            }
            Some(other) => clues.push(format!("`artifacts` is {}", other.name())),
            None => {}
        }
        if clues.is_empty() {
            "is a JSON object with none of the CycloneDX, SPDX or Syft markers".into()
        } else {
            format!("matches no known SBOM format ({})", clues.join("; "))
        }
    }
}

struct SniffVisitor;

impl<'de> Visitor<'de> for SniffVisitor {
    type Value = Sniff;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sniff, A::Error> {
        let mut s = Sniff::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "bomFormat" => &mut s.bom_format,
                "spdxVersion" => &mut s.spdx_version,
                "artifacts" | "Artifacts" => &mut s.artifacts,
                "descriptor" | "Descriptor" => &mut s.descriptor,
                "schema" | "Schema" => &mut s.schema,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let shape = map.next_value::<Shape>()?;
            // With duplicate or both-case keys the first one that fits wins.
            if slot.is_none() || matches!(shape, Shape::Array | Shape::Object) {
                *slot = Some(shape);
            }
        }
        Ok(s)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Sniff, A::Error> {
        ShapeVisitor.visit_seq(seq).map(|_| top("an array"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Sniff, E> {
        Ok(top("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Sniff, E> {
        Ok(top("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Sniff, E> {
        Ok(top("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Sniff, E> {
        Ok(top("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Sniff, E> {
        Ok(top("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Sniff, E> {
        Ok(top("a string"))
    }
}

fn top(name: &'static str) -> Sniff {
    Sniff {
        top: Some(name),
        ..Sniff::default()
    }
}

impl<'de> Deserialize<'de> for Sniff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sniff, D::Error> {
        d.deserialize_any(SniffVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_round_trip() {
        for f in SbomFormat::ALL {
            assert_eq!(SbomFormat::from_file_name(f.file_name()), Some(f));
            assert_eq!(SbomFormat::from_extension(f.extension()), Some(f));
            assert_eq!(SbomFormat::from_media_type(f.media_type()), Some(f));
            assert_eq!(SbomFormat::from_predicate_type(f.predicate_type()), Some(f));
        }
        assert_eq!(SbomFormat::from_file_name("sbom.legacy.json"), None);
        assert_eq!(
            SbomFormat::from_media_type("Application/SPDX+json; charset=utf-8"),
            Some(SbomFormat::Spdx)
        );
    }

    #[test]
    fn content_checks() {
        let cdx = br#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#;
        let spdx = br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#;
        let syft = br#"{"artifacts":[],"descriptor":{"name":"syft"},"schema":{}}"#;
        let libpak = br#"{"Artifacts":[{"ID":"x"}],"Source":{},"Descriptor":{},"Schema":{}}"#;
        assert!(SbomFormat::CycloneDx.check_content(cdx).is_ok());
        assert!(SbomFormat::Spdx.check_content(spdx).is_ok());
        assert!(SbomFormat::Syft.check_content(syft).is_ok());
        assert!(SbomFormat::Syft.check_content(libpak).is_ok());

        let err = SbomFormat::Spdx.check_content(cdx).unwrap_err().to_string();
        assert!(
            err.contains("spdx.json") && err.contains("CycloneDX"),
            "{err}"
        );
        let err = SbomFormat::CycloneDx
            .check_content(b"[1,2]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is an array, not a JSON object"), "{err}");
        let err = SbomFormat::CycloneDx
            .check_content(b"null")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is null"), "{err}");
        let err = SbomFormat::CycloneDx
            .check_content(br#"{"bomFormat":"Other"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Other\""), "{err}");
        let err = SbomFormat::Syft
            .check_content(br#"{"artifacts":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `descriptor`"), "{err}");
        let err = SbomFormat::Syft
            .check_content(b"{\n\"artifacts\": [,]}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid JSON at line 2"), "{err}");
        assert!(SbomFormat::CycloneDx
            .check_content(br#"{"bomFormat":"CycloneDX"} x"#)
            .is_err());
    }
}
