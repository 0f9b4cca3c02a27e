//! Reading the RFC's TOML shape, with file, line, column and field path in every error.

use std::ops::Range;
use std::path::Path;

use cnb_local_files::Links;
use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::Spanned;

use cnb_untrusted::text::line_col;

use crate::checks;
use crate::Digest;

use crate::error::{sanitize, Error};
use crate::model::{
    AttestationSpec, ImageSection, PredicateSource, PredicateSpec, SignerConfig, SubjectSpec,
};
use crate::validate::read_error;

/// Largest configuration file [`load`] reads: 16 MiB.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;

struct Ctx<'t> {
    text: &'t str,
    file: String,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Ctx<'_> {
    fn at(&self, span: &Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }

    fn field(&self, span: &Range<usize>, field: &str, reason: impl Into<String>) -> Error {
        let (line, column) = self.at(span);
        Error::Field {
            field: field.to_string(),
            reason: reason.into(),
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// Refuse keys outside `allowed`, first in file order.
    fn deny_unknown(&self, table: &DeTable<'_>, path: &str, allowed: &[&str]) -> Result<(), Error> {
        let mut keys: Vec<&Key<'_>> = table.keys().collect();
        keys.sort_by_key(|k| k.span().start);
        if let Some(key) = keys
            .into_iter()
            .find(|k| !allowed.contains(&k.get_ref().as_ref()))
        {
            let (line, column) = self.at(&key.span());
            return Err(Error::UnknownField {
                field: join(path, &sanitize(key.get_ref())),
                expected: allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                file: self.file.clone(),
                line,
                column,
            });
        }
        Ok(())
    }

    fn table<'a, 'i>(&self, v: &'a Value<'i>, field: &str) -> Result<&'a DeTable<'i>, Error> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            other => Err(self.field(
                &v.span(),
                field,
                format!("expected a table, found {}", article(other.type_str())),
            )),
        }
    }

    fn array<'a, 'i>(&self, v: &'a Value<'i>, field: &str) -> Result<&'a DeArray<'i>, Error> {
        match v.get_ref() {
            DeValue::Array(a) => Ok(a),
            other => Err(self.field(
                &v.span(),
                field,
                format!(
                    "expected an array of tables, found {}",
                    article(other.type_str())
                ),
            )),
        }
    }

    fn string<'a>(&self, v: &'a Value<'_>, field: &str) -> Result<&'a str, Error> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            other => Err(self.field(
                &v.span(),
                field,
                format!("expected a string, found {}", article(other.type_str())),
            )),
        }
    }

    /// A required string field of `table` (whose own span is `span`).
    fn required_str<'a>(
        &self,
        table: &'a DeTable<'_>,
        span: &Range<usize>,
        path: &str,
        key: &str,
    ) -> Result<(&'a str, Range<usize>), Error> {
        let field = join(path, key);
        match table.get(key) {
            Some(v) => Ok((self.string(v, &field)?, v.span())),
            None => Err(self.field(span, &field, "missing (required)")),
        }
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        other => format!("a {other}"),
    }
}

/// Parse a signer configuration. `origin` names the text in errors (a file path, or anything
/// descriptive such as `<stdin>`).
///
/// Order of checks: TOML syntax, then secret-looking keys anywhere in the document, then the
/// schema (unknown fields, types, required fields) and every check that needs no file system:
/// digests, the reference pinned by digest, absolute predicate types, exactly one of
/// `uri`/`value`, `uri` absolute without `.`/`..`, inline `value` a JSON object, at least one
/// subject, annotation names non-empty, unique, not secret-looking and not reserved for the
/// storage formats (`dev.sigstore.*`, `dev.cosignproject.*`, `predicateType`,
/// `in-toto.io/predicate-type`, `org.opencontainers.image.created`).
pub fn parse(text: &str, origin: &Path) -> Result<SignerConfig, Error> {
    let ctx = Ctx {
        text,
        file: origin.display().to_string(),
    };
    let root = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| ctx.at(&s));
        Error::Syntax {
            file: ctx.file.clone(),
            line,
            column,
            message: e.message().trim_end().to_string(),
        }
    })?;
    let root_span = root.span();
    let root = root.get_ref();

    let mut secrets = Vec::new();
    find_secrets(root, "", &mut secrets);
    if let Some((span, key, field)) = secrets.into_iter().min_by_key(|(s, _, _)| s.start) {
        let (line, column) = ctx.at(&span);
        return Err(Error::SecretField {
            key,
            field,
            file: ctx.file.clone(),
            line,
            column,
        });
    }

    ctx.deny_unknown(root, "", &["image", "attestations"])?;
    let image = match root.get("image") {
        Some(v) => parse_image(&ctx, v)?,
        None => return Err(ctx.field(&root_span, "image", "missing (required)")),
    };
    let mut attestations = Vec::new();
    if let Some(v) = root.get("attestations") {
        for (i, item) in ctx.array(v, "attestations")?.iter().enumerate() {
            attestations.push(parse_attestation(
                &ctx,
                item,
                &format!("attestations[{i}]"),
            )?);
        }
    }
    Ok(SignerConfig {
        image,
        attestations,
    })
}

/// Read and [`parse`] a configuration file (at most [`MAX_CONFIG_SIZE`] bytes).
pub fn load(path: &Path) -> Result<SignerConfig, Error> {
    let bytes = cnb_local_files::read(path, MAX_CONFIG_SIZE, Links::Follow)
        .map_err(read_error(path, MAX_CONFIG_SIZE))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    parse(&text, path)
}

impl SignerConfig {
    /// Same as the free function [`parse`].
    pub fn parse(text: &str, origin: &Path) -> Result<SignerConfig, Error> {
        parse(text, origin)
    }

    /// Same as the free function [`load`].
    pub fn load(path: &Path) -> Result<SignerConfig, Error> {
        load(path)
    }
}

fn find_secrets(table: &DeTable<'_>, path: &str, out: &mut Vec<(Range<usize>, String, String)>) {
    for (key, value) in table.iter() {
        let name = key.get_ref();
        let field = join(path, &sanitize(name));
        if checks::is_secret_key(name) {
            out.push((key.span(), sanitize(name), field.clone()));
        }
        find_secrets_in_value(value, &field, out);
    }
}

fn find_secrets_in_value(
    value: &Value<'_>,
    path: &str,
    out: &mut Vec<(Range<usize>, String, String)>,
) {
    match value.get_ref() {
        DeValue::Table(t) => find_secrets(t, path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                find_secrets_in_value(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn parse_image(ctx: &Ctx<'_>, v: &Value<'_>) -> Result<ImageSection, Error> {
    let table = ctx.table(v, "image")?;
    ctx.deny_unknown(table, "image", &["reference"])?;
    let (reference, span) = ctx.required_str(table, &v.span(), "image", "reference")?;
    checks::reference(reference).map_err(|r| ctx.field(&span, "image.reference", r))?;
    Ok(ImageSection {
        reference: reference.to_string(),
    })
}

fn parse_attestation(ctx: &Ctx<'_>, v: &Value<'_>, path: &str) -> Result<AttestationSpec, Error> {
    let table = ctx.table(v, path)?;
    ctx.deny_unknown(table, path, &["predicate", "statement", "annotations"])?;

    let predicate_path = join(path, "predicate");
    let predicate = match table.get("predicate") {
        None => return Err(ctx.field(&v.span(), &predicate_path, "missing (required)")),
        // The RFC writes `[[attestations.predicate]]`: an array that must hold one entry.
        Some(p) if matches!(p.get_ref(), DeValue::Array(_)) => {
            let entries = ctx.array(p, &predicate_path)?;
            match entries.len() {
                1 => parse_predicate(ctx, &entries[0], &format!("{predicate_path}[0]"))?,
                0 => {
                    return Err(ctx.field(
                        &p.span(),
                        &predicate_path,
                        "must hold exactly one entry, found none",
                    ))
                }
                n => {
                    return Err(ctx.field(
                        &entries[1].span(),
                        &predicate_path,
                        format!("must hold exactly one entry, found {n}"),
                    ))
                }
            }
        }
        // A single `[attestations.predicate]` table is accepted as well.
        Some(p) => parse_predicate(ctx, p, &predicate_path)?,
    };

    let statement_path = join(path, "statement");
    let subject_path = join(&statement_path, "subject");
    let mut subjects = Vec::new();
    if let Some(s) = table.get("statement") {
        let statement = ctx.table(s, &statement_path)?;
        ctx.deny_unknown(statement, &statement_path, &["subject"])?;
        if let Some(list) = statement.get("subject") {
            for (i, item) in ctx.array(list, &subject_path)?.iter().enumerate() {
                subjects.push(parse_subject(ctx, item, &format!("{subject_path}[{i}]"))?);
            }
        }
    }
    if subjects.is_empty() {
        return Err(ctx.field(&v.span(), &subject_path, "at least one subject is required"));
    }

    let annotations_path = join(path, "annotations");
    let mut annotations = Vec::new();
    if let Some(list) = table.get("annotations") {
        let mut seen = checks::Unique::default();
        for (i, item) in ctx.array(list, &annotations_path)?.iter().enumerate() {
            let item_path = format!("{annotations_path}[{i}]");
            let t = ctx.table(item, &item_path)?;
            ctx.deny_unknown(t, &item_path, &["name", "value"])?;
            let (name, name_span) = ctx.required_str(t, &item.span(), &item_path, "name")?;
            let (value, _) = ctx.required_str(t, &item.span(), &item_path, "value")?;
            let name_field = join(&item_path, "name");
            checks::annotation_name(name).map_err(|r| ctx.field(&name_span, &name_field, r))?;
            seen.add(name)
                .map_err(|r| ctx.field(&name_span, &name_field, r))?;
            annotations.push((name.to_string(), value.to_string()));
        }
    }

    Ok(AttestationSpec {
        predicate,
        subjects,
        annotations,
    })
}

fn parse_predicate(ctx: &Ctx<'_>, v: &Value<'_>, path: &str) -> Result<PredicateSpec, Error> {
    let table = ctx.table(v, path)?;
    ctx.deny_unknown(table, path, &["type", "uri", "value"])?;
    let (predicate_type, type_span) = ctx.required_str(table, &v.span(), path, "type")?;
    checks::predicate_type(predicate_type)
        .map_err(|r| ctx.field(&type_span, &join(path, "type"), r))?;
    let uri = table.get_key_value("uri");
    let value = table.get_key_value("value");
    let source = match (uri, value) {
        (Some((uk, _)), Some((vk, _))) => {
            let later = if uk.span().start > vk.span().start {
                uk.span()
            } else {
                vk.span()
            };
            return Err(ctx.field(&later, path, "has both `uri` and `value`: give exactly one"));
        }
        (None, None) => {
            return Err(ctx.field(
                &v.span(),
                path,
                "has neither `uri` nor `value`: give exactly one",
            ))
        }
        (Some((_, uv)), None) => {
            let field = join(path, "uri");
            let s = ctx.string(uv, &field)?;
            let p = checks::uri(s)
                .map_err(|r| ctx.field(&uv.span(), &field, format!("uri `{}` {r}", sanitize(s))))?;
            PredicateSource::Uri(p)
        }
        (None, Some((_, vv))) => {
            let field = join(path, "value");
            let s = ctx.string(vv, &field)?;
            checks::value(s).map_err(|r| ctx.field(&vv.span(), &field, r))?;
            PredicateSource::Value(s.to_string())
        }
    };
    Ok(PredicateSpec {
        predicate_type: predicate_type.to_string(),
        source,
    })
}

fn parse_subject(ctx: &Ctx<'_>, v: &Value<'_>, path: &str) -> Result<SubjectSpec, Error> {
    let table = ctx.table(v, path)?;
    ctx.deny_unknown(table, path, &["name", "digest"])?;
    let (name, name_span) = ctx.required_str(table, &v.span(), path, "name")?;
    checks::subject_name(name).map_err(|r| ctx.field(&name_span, &join(path, "name"), r))?;
    let (digest, digest_span) = ctx.required_str(table, &v.span(), path, "digest")?;
    let digest: Digest = digest.parse().map_err(|e: cnb_untrusted::DigestError| {
        ctx.field(
            &digest_span,
            &join(path, "digest"),
            Error::from(e).to_string(),
        )
    })?;
    Ok(SubjectSpec {
        name: name.to_string(),
        digest,
    })
}
