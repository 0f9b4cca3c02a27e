//! Storage formats: how one signed attestation becomes a referrer manifest and its blobs.
//!
//! * [`StorageFormat::Bundle`] (default): the layout cosign 3 writes and reads. One manifest per
//!   attestation, `artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`, the OCI empty config,
//!   one layer holding a Sigstore bundle v0.3 (the DSSE envelope plus verification material).
//! * [`StorageFormat::Dsse`]: the RFC's own shape: one manifest whose single layer is the bare DSSE
//!   envelope, `application/vnd.dsse.envelope.v1+json`.
//!
//! Both manifests carry the caller's annotations (the `io.buildpacks.*` selection hints) plus the
//! format's own, and a `subject` pointing at the image manifest. The format's own annotations always
//! win: a caller annotation with a [reserved name](is_reserved_annotation) is dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cnb_dsse::Envelope;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::blob::Blob;
use crate::manifest::{Descriptor, ImageManifest, OCI_MANIFEST};
use crate::Error;

/// Media type (and artifact type) of a Sigstore bundle v0.3.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Media type of a bare DSSE envelope.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Bundle manifest annotation: what the bundle holds (`dsse-envelope`).
pub const BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
/// Bundle manifest annotation: the statement's predicate type.
pub const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
/// The RFC's and cosign `.att`'s predicate type annotation.
pub const PREDICATE_TYPE: &str = "predicateType";
/// BuildKit's predicate type annotation on attestation layers.
pub const INTOTO_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// Whether `name` is reserved for the storage formats: `dev.sigstore.*`, `dev.cosignproject.*`,
/// [`PREDICATE_TYPE`], [`INTOTO_PREDICATE_TYPE`] and `org.opencontainers.image.created` (ASCII case
/// ignored). [`build_referrer`] never takes these from the caller's annotations.
pub fn is_reserved_annotation(name: &str) -> bool {
    const PREFIXES: [&str; 2] = ["dev.sigstore.", "dev.cosignproject."];
    const NAMES: [&str; 3] = [
        PREDICATE_TYPE,
        INTOTO_PREDICATE_TYPE,
        crate::manifest::CREATED,
    ];
    let starts_with = |prefix: &str| {
        name.len() >= prefix.len()
            && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    PREFIXES.iter().any(|p| starts_with(p)) || NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// The largest bundle or envelope blob read back (the largest real CNB SBOM is about 1.2 MB; base64
/// makes it 1.6 MB).
pub const MAX_ATTESTATION_BLOB: u64 = 64 * 1024 * 1024;

/// Attestation blobs larger than this are read through a temporary file rather than held
/// ([`decode_layer_streamed`]); smaller ones are read whole ([`decode_layer`]).
pub const STREAM_READ_ABOVE: u64 = 8 * 1024 * 1024;

/// The largest bundle or envelope blob read back through a temporary file (a 512 MiB SBOM is a
/// 683 MiB bundle).
pub const MAX_STREAMED_ATTESTATION_BLOB: u64 = 1024 * 1024 * 1024;

/// The largest blob readers accept in `format`: [`MAX_STREAMED_ATTESTATION_BLOB`] for what they
/// read through a temporary file, [`MAX_ATTESTATION_BLOB`] for keyless bundles (verified in
/// memory: the transparency-log entry binds the whole envelope).
pub fn reader_limit(format: StorageFormat, keyless: bool) -> u64 {
    match format {
        StorageFormat::Bundle if keyless => MAX_ATTESTATION_BLOB,
        StorageFormat::Bundle | StorageFormat::Dsse | StorageFormat::CosignLegacy => {
            MAX_STREAMED_ATTESTATION_BLOB
        }
    }
}

/// Longest string other than the payload kept while a streamed blob is read.
pub const MAX_KEPT_STRING: usize = 64 * 1024;
/// Longest document kept once the payload is taken out of a streamed blob.
pub const MAX_HOLLOW_DOCUMENT: usize = 4 * 1024 * 1024;

/// Like [`decode_layer`], for a blob too large to hold: `blob` is read once, in pieces, and the
/// envelope's payload (a bundle's `dsseEnvelope.payload`, an envelope's `payload`) is base64-
/// decoded into `payload` as it passes; the rest of the document, with `""` for the payload, is
/// then read by [`decode_layer`], every one of its checks applying. The base64 text is held to
/// the rules of [`Envelope::from_json`] ([`cnb_dsse::Base64Decoder`]); a payload given twice, or
/// any other string over [`MAX_KEPT_STRING`] bytes, is refused.
///
/// Returns the envelope with an empty [`Envelope::payload`] and the length of the payload written.
pub fn decode_layer_streamed(
    format: StorageFormat,
    blob: &mut dyn std::io::Read,
    payload: &mut dyn std::io::Write,
) -> Result<(StoredEnvelope, u64), Error> {
    use cnb_untrusted::hollow::{Hollower, Take};
    let (what, path): (&str, &'static [&'static str]) = match format {
        StorageFormat::Bundle => (
            "Sigstore bundle DSSE envelope",
            &["dsseEnvelope", "payload"],
        ),
        StorageFormat::Dsse | StorageFormat::CosignLegacy => ("DSSE envelope", &["payload"]),
    };
    let malformed = |reason: String| Error::Malformed(format!("{what}: {reason}"));
    let mut hollower = Hollower::new(
        path,
        Take::StringContent,
        MAX_KEPT_STRING,
        MAX_HOLLOW_DOCUMENT,
    );
    let mut decoder = cnb_dsse::Base64Decoder::new();
    let mut decoded = Vec::new();
    let mut written = 0u64;
    let mut chunk = vec![0u8; crate::blob::CHUNK];
    loop {
        let n = match blob.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(malformed(format!("reading the blob: {e}"))),
        };
        hollower
            .feed(&chunk[..n], &mut |text| {
                decoded.clear();
                decoder
                    .feed(text, &mut decoded)
                    .map_err(|e| format!("\"payload\" is not valid base64: {e}"))?;
                written += decoded.len() as u64;
                payload
                    .write_all(&decoded)
                    .map_err(|e| format!("writing the payload: {e}"))
            })
            .map_err(|e| malformed(e.to_string()))?;
    }
    let (hollow, found) = hollower.finish().map_err(|e| malformed(e.to_string()))?;
    let stored = decode_layer(format, &hollow)?;
    if found != 1 || !stored.envelope.payload.is_empty() {
        return Err(malformed(
            "no payload string where the payload belongs".into(),
        ));
    }
    decoded.clear();
    decoder
        .finish(&mut decoded)
        .map_err(|e| malformed(format!("\"payload\" is not valid base64: {e}")))?;
    written += decoded.len() as u64;
    payload
        .write_all(&decoded)
        .and_then(|()| payload.flush())
        .map_err(|e| malformed(format!("writing the payload: {e}")))?;
    Ok((stored, written))
}

/// How an attestation is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StorageFormat {
    /// Sigstore bundle v0.3 referrer (cosign 3).
    Bundle,
    /// Bare DSSE envelope referrer (the RFC's shape).
    Dsse,
    /// A layer of cosign 2's `sha256-<hex>.att` tag manifest (registries only).
    CosignLegacy,
}

impl StorageFormat {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            StorageFormat::Bundle => "bundle",
            StorageFormat::Dsse => "dsse",
            StorageFormat::CosignLegacy => "cosign-legacy",
        }
    }

    /// Whether this format is stored as a referrer manifest (not as a layer of a cosign tag).
    pub fn is_referrer(self) -> bool {
        !matches!(self, StorageFormat::CosignLegacy)
    }

    /// The `artifactType` of this format's manifests.
    pub fn artifact_type(self) -> &'static str {
        match self {
            StorageFormat::Bundle => BUNDLE_V03,
            StorageFormat::Dsse | StorageFormat::CosignLegacy => DSSE_ENVELOPE,
        }
    }

    /// Recognises an attestation manifest by what it holds: the media type of its first layer
    /// (a Sigstore bundle v0.3, or a bare DSSE envelope) decides, whatever the config media type
    /// (the OCI empty config, `application/vnd.oci.image.config.v1+json` as the RFC shows it, ...)
    /// and with or without `artifactType`.
    pub fn detect(manifest: &ImageManifest) -> Option<Self> {
        match manifest.layers.first()?.media_type.as_str() {
            BUNDLE_V03 => Some(StorageFormat::Bundle),
            DSSE_ENVELOPE => Some(StorageFormat::Dsse),
            _ => None,
        }
    }
}

impl fmt::Display for StorageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StorageFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "bundle" => Ok(StorageFormat::Bundle),
            "dsse" => Ok(StorageFormat::Dsse),
            "cosign-legacy" => Ok(StorageFormat::CosignLegacy),
            other => Err(Error::UnknownFormat(other.to_string())),
        }
    }
}

/// A referrer ready to store: its manifest, the manifest's descriptor as a referrers list shows it
/// (with `artifactType` and every manifest annotation), and the blobs it needs.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The storage format.
    pub format: StorageFormat,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The manifest's exact bytes.
    pub manifest_bytes: Vec<u8>,
    /// The descriptor of the manifest, as listed by the Referrers API or a tag-schema index.
    pub descriptor: Descriptor,
    /// The blobs the manifest references (config and layer), with their bytes.
    pub blobs: Vec<(Descriptor, Blob)>,
}

/// What a referrer needs besides the envelope.
#[derive(Debug, Clone)]
pub struct ReferrerParts<'a> {
    /// The image manifest the attestation is about.
    pub subject: &'a Descriptor,
    /// The statement's predicate type.
    pub predicate_type: &'a str,
    /// Selection annotations (`io.buildpacks.*`). Names reserved for the formats
    /// ([`is_reserved_annotation`]) are ignored.
    pub annotations: &'a BTreeMap<String, String>,
    /// The signing key's hint (cosign 3: base64 of the SHA-256 of the SPKI DER).
    pub key_hint: &'a str,
    /// A bundle's whole `verificationMaterial` object (JSON) for keyless signatures: the Fulcio
    /// certificate and the transparency-log entry. `None` writes a public-key hint instead.
    pub verification_material: Option<&'a str>,
    /// `org.opencontainers.image.created`, only when the caller has a reproducible time
    /// (`SOURCE_DATE_EPOCH`); `None` keeps manifests byte-identical across runs.
    pub created: Option<&'a str>,
}

/// Builds the referrer for one signed envelope.
///
/// The caller's annotations go in first (minus reserved names), then the format's own and
/// `created`, so the format's always win.
pub fn build_referrer(
    format: StorageFormat,
    envelope: &Envelope,
    parts: &ReferrerParts<'_>,
) -> Referrer {
    let (prefix, suffix) = layer_json_around_payload(
        format,
        &envelope.payload_type,
        &envelope.signatures,
        parts.key_hint,
        parts.verification_material,
    );
    let encoded = STANDARD.encode(&envelope.payload);
    let mut layer_bytes = Vec::with_capacity(prefix.len() + encoded.len() + suffix.len());
    layer_bytes.extend_from_slice(&prefix);
    layer_bytes.extend_from_slice(encoded.as_bytes());
    layer_bytes.extend_from_slice(&suffix);
    let layer = Descriptor::for_bytes(format.artifact_type(), &layer_bytes);
    referrer_for_layer(format, layer, Blob::Bytes(layer_bytes), parts)
}

/// The JSON of `format`'s attestation layer before and after the payload's base64: the layer is
/// `prefix + base64(payload) + suffix`. What [`build_referrer`] writes, for callers that stream a
/// payload too large to hold and hash the layer as they go. `key_hint` and
/// `verification_material` are [`ReferrerParts`]' fields; the prefix does not depend on the
/// signatures.
pub fn layer_json_around_payload(
    format: StorageFormat,
    payload_type: &str,
    signatures: &[cnb_dsse::Signature],
    key_hint: &str,
    verification_material: Option<&str>,
) -> (Vec<u8>, Vec<u8>) {
    match format {
        StorageFormat::Bundle => {
            let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
            let hint;
            let material = match verification_material {
                Some(material) => material,
                None => {
                    hint = format!("{{\"publicKey\":{{\"hint\":{}}}}}", string(key_hint));
                    &hint
                }
            };
            bundle_json_around_payload(payload_type, signatures, material)
        }
        // A cosign-legacy entry is a layer, not a referrer (see `legacy_attestation_layer`); asked
        // for a referrer anyway, it gets the bare-DSSE one, which holds the same layer.
        StorageFormat::Dsse | StorageFormat::CosignLegacy => {
            Envelope::json_around_payload(payload_type, signatures)
        }
    }
}

/// The referrer whose one layer is `layer` (its descriptor and bytes), in `format`.
pub fn referrer_for_layer(
    format: StorageFormat,
    layer: Descriptor,
    layer_bytes: Blob,
    parts: &ReferrerParts<'_>,
) -> Referrer {
    let mut annotations: BTreeMap<String, String> = parts
        .annotations
        .iter()
        .filter(|(name, _)| !is_reserved_annotation(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let own = match format {
        StorageFormat::Bundle => vec![
            (BUNDLE_CONTENT, "dsse-envelope"),
            (BUNDLE_PREDICATE_TYPE, parts.predicate_type),
        ],
        StorageFormat::Dsse | StorageFormat::CosignLegacy => {
            vec![(PREDICATE_TYPE, parts.predicate_type)]
        }
    };
    for (name, value) in own {
        annotations.insert(name.to_string(), value.to_string());
    }
    if let Some(created) = parts.created {
        annotations.insert(crate::manifest::CREATED.to_string(), created.to_string());
    }
    let config = Descriptor::empty();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: Some(format.artifact_type().to_string()),
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: Some(parts.subject.bare()),
        annotations: Some(annotations.clone()),
    };
    let manifest_bytes = manifest.to_json();
    let mut descriptor = Descriptor::for_bytes(OCI_MANIFEST, &manifest_bytes);
    descriptor.artifact_type = manifest.artifact_type.clone();
    descriptor.annotations = Some(annotations);
    Referrer {
        format,
        manifest,
        manifest_bytes,
        descriptor,
        blobs: vec![
            (config, Blob::Bytes(crate::manifest::EMPTY_JSON.to_vec())),
            (layer, layer_bytes),
        ],
    }
}

/// A Sigstore bundle v0.3 holding `envelope`, verified by the public key named by `key_hint`.
///
/// Written the way protobuf JSON writes it (sigstore-go, so cosign 3): empty lists and empty
/// `keyid`s are left out, fields in declaration order.
pub fn bundle_json(envelope: &Envelope, key_hint: &str) -> Vec<u8> {
    let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
    bundle_json_with_material(
        envelope,
        &format!("{{\"publicKey\":{{\"hint\":{}}}}}", string(key_hint)),
    )
}

/// A Sigstore bundle v0.3 holding `envelope` and the given `verificationMaterial` object (JSON,
/// written as given): a keyless bundle's certificate and transparency-log entry.
pub fn bundle_json_with_material(envelope: &Envelope, verification_material: &str) -> Vec<u8> {
    let (prefix, suffix) = bundle_json_around_payload(
        &envelope.payload_type,
        &envelope.signatures,
        verification_material,
    );
    let encoded = STANDARD.encode(&envelope.payload);
    let mut out = Vec::with_capacity(prefix.len() + encoded.len() + suffix.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(&suffix);
    out
}

/// A bundle's JSON before and after the payload's base64.
fn bundle_json_around_payload(
    payload_type: &str,
    signatures: &[cnb_dsse::Signature],
    verification_material: &str,
) -> (Vec<u8>, Vec<u8>) {
    let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut prefix = String::with_capacity(128 + verification_material.len());
    prefix.push_str("{\"mediaType\":");
    prefix.push_str(&string(BUNDLE_V03));
    prefix.push_str(",\"verificationMaterial\":");
    prefix.push_str(verification_material);
    prefix.push_str(",\"dsseEnvelope\":{\"payload\":\"");
    let mut suffix = String::with_capacity(128);
    suffix.push_str("\",\"payloadType\":");
    suffix.push_str(&string(payload_type));
    suffix.push_str(",\"signatures\":[");
    for (i, signature) in signatures.iter().enumerate() {
        if i > 0 {
            suffix.push(',');
        }
        suffix.push_str("{\"sig\":\"");
        suffix.push_str(&STANDARD.encode(&signature.sig));
        suffix.push('"');
        if !signature.keyid.is_empty() {
            suffix.push_str(",\"keyid\":");
            suffix.push_str(&string(&signature.keyid));
        }
        suffix.push('}');
    }
    suffix.push_str("]}}");
    (prefix.into_bytes(), suffix.into_bytes())
}

/// What a stored attestation layer holds once decoded (nothing is verified yet).
#[derive(Debug, Clone)]
pub struct StoredEnvelope {
    /// The envelope.
    pub envelope: Envelope,
    /// The public-key hint of a bundle, if any.
    pub key_hint: Option<String>,
    /// A bundle's whole `verificationMaterial` object (certificate, transparency-log entries),
    /// for keyless verification; `None` for bare envelopes and bundles without one.
    pub verification_material: Option<serde_json::Value>,
}

/// Decodes the layer of a referrer in `format`.
pub fn decode_layer(format: StorageFormat, bytes: &[u8]) -> Result<StoredEnvelope, Error> {
    match format {
        StorageFormat::Dsse | StorageFormat::CosignLegacy => Ok(StoredEnvelope {
            envelope: Envelope::from_json(bytes)
                .map_err(|e| Error::Malformed(format!("DSSE envelope: {e}")))?,
            key_hint: None,
            verification_material: None,
        }),
        StorageFormat::Bundle => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Bundle<'a> {
                media_type: String,
                #[serde(default)]
                verification_material: Option<serde_json::Value>,
                #[serde(borrow)]
                dsse_envelope: Option<&'a RawValue>,
            }
            let bundle: Bundle<'_> = serde_json::from_slice(bytes)
                .map_err(|e| Error::Malformed(format!("Sigstore bundle: {e}")))?;
            if !bundle
                .media_type
                .starts_with("application/vnd.dev.sigstore.bundle")
            {
                return Err(Error::Malformed(format!(
                    "Sigstore bundle: unexpected mediaType `{}`",
                    bundle.media_type
                )));
            }
            let raw = bundle
                .dsse_envelope
                .ok_or_else(|| Error::Malformed("Sigstore bundle holds no DSSE envelope".into()))?;
            let envelope = Envelope::from_json(raw.get().as_bytes())
                .map_err(|e| Error::Malformed(format!("Sigstore bundle DSSE envelope: {e}")))?;
            let key_hint = bundle
                .verification_material
                .as_ref()
                .and_then(|m| m.get("publicKey"))
                .and_then(|k| k.get("hint"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            Ok(StoredEnvelope {
                envelope,
                key_hint,
                verification_material: bundle.verification_material,
            })
        }
    }
}

/// cosign's layer annotation holding a signature (empty on attestation layers).
pub const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Media type of a cosign simple-signing payload (`.sig` layers).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// One layer of a cosign 2 `sha256-<hex>.att` manifest: the bare DSSE envelope, annotated as cosign
/// annotates it (`predicateType`, an empty `dev.cosignproject.cosign/signature`) plus the selection
/// annotations.
pub fn legacy_attestation_layer(
    envelope: &Envelope,
    predicate_type: &str,
    annotations: &BTreeMap<String, String>,
) -> (Descriptor, Vec<u8>) {
    let bytes = envelope.to_json();
    let mut all: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(name, _)| !is_reserved_annotation(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    all.insert(PREDICATE_TYPE.into(), predicate_type.into());
    all.insert(COSIGN_SIGNATURE.into(), String::new());
    let mut descriptor = Descriptor::for_bytes(DSSE_ENVELOPE, &bytes);
    descriptor.annotations = Some(all);
    (descriptor, bytes)
}

/// The image config cosign writes for its `.sig`/`.att` manifests: one diffID per layer.
pub fn legacy_config(layer_digests: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": layer_digests.iter().map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
        "config": {},
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::CREATED;

    fn envelope() -> Envelope {
        Envelope {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: b"{}".to_vec(),
            signatures: vec![cnb_dsse::Signature {
                keyid: String::new(),
                sig: vec![1, 2, 3],
            }],
        }
    }

    fn build(
        format: StorageFormat,
        annotations: &[(&str, &str)],
        created: Option<&str>,
    ) -> Referrer {
        let subject = Descriptor::for_bytes(OCI_MANIFEST, b"{}");
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let parts = ReferrerParts {
            subject: &subject,
            predicate_type: "https://cyclonedx.org/bom",
            annotations: &annotations,
            key_hint: "hint",
            verification_material: None,
            created,
        };
        build_referrer(format, &envelope(), &parts)
    }

    /// Decodes `bytes` streamed in pieces of `piece`, as `decode_layer` gives it: the envelope
    /// with its payload put back.
    fn streamed(
        format: StorageFormat,
        bytes: &[u8],
        piece: usize,
    ) -> Result<StoredEnvelope, Error> {
        struct Pieces<'a>(&'a [u8], usize);
        impl std::io::Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut payload = Vec::new();
        let (mut stored, len) =
            decode_layer_streamed(format, &mut Pieces(bytes, piece), &mut payload)?;
        assert_eq!(len, payload.len() as u64);
        stored.envelope.payload = payload;
        Ok(stored)
    }

    #[test]
    fn streamed_and_in_memory_decoding_give_the_same_verdicts() {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":"\u00e9"}}"#;
        let e = Envelope {
            payload: payload.to_vec(),
            ..envelope()
        };
        let good_bare = String::from_utf8(e.to_json()).unwrap();
        let good_bundle = String::from_utf8(bundle_json(&e, "hint")).unwrap();
        let b64 = STANDARD.encode(payload);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"\xfb\xff\xbf\xfb\xff");
        let mixed = format!("{}+", &url[..url.len() - 1]);
        let escaped = b64.replace('/', "\\/");
        let bare = |payload: &str| {
            format!(
                r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{payload}","signatures":[{{"keyid":"","sig":"AQID"}}]}}"#
            )
        };
        let mut bare_cases = vec![
            good_bare.clone(),
            bare(&b64),
            bare(&url),
            bare(&mixed),
            bare(&escaped),
            bare("aGk=aGk="),
            bare("aGk=\\n"),
            bare("aGl="),
            bare("\\u0061Gk="),
            bare("\\u00e9Gk="),
            // Repeated and case-folded keys.
            good_bare.replacen(
                "\"payload\":",
                &format!("\"payload\":\"{b64}\",\"payload\":"),
                1,
            ),
            good_bare.replacen(
                "\"payload\":",
                &format!("\"Payload\":\"{b64}\",\"payload\":"),
                1,
            ),
            good_bare.replacen("\"payload\":", "\"p\\u0061yload\":", 1),
            good_bare.replacen("\"payloadType\":", "\"PayloadType\":", 1),
            good_bare.replacen(
                "\"payloadType\":",
                "\"payloadType\":\"x\",\"payloadType\":",
                1,
            ),
            // Trailing garbage, truncation, a payload that is no string.
            format!("{good_bare} x"),
            format!("{good_bare}{{}}"),
            good_bare[..good_bare.len() - 1].to_string(),
            good_bare[..good_bare.len() / 2].to_string(),
            bare("x").replace("\"x\"", "12"),
            bare("x").replace("\"x\"", "[\"aGk=\"]"),
            good_bare.replacen("{", "{\"nested\":{\"payload\":\"aGk=\"},", 1),
            format!("[{good_bare}]"),
            String::new(),
        ];
        bare_cases.push(bare_cases[0].replace("\"signatures\"", "\"Signatures\""));
        let mut bundle_cases = vec![
            good_bundle.clone(),
            good_bundle.replacen("\"dsseEnvelope\":", "\"DsseEnvelope\":", 1),
            good_bundle.replacen(
                "\"payload\":",
                &format!("\"payload\":\"{b64}\",\"payload\":"),
                1,
            ),
            good_bundle.replacen("\"payload\":", "\"payloadType\":\"x\",\"payload\":", 1),
            good_bundle.replacen(&b64, &mixed, 1),
            format!("{good_bundle}]"),
            good_bundle.replacen("{", "{\"payload\":\"aGk=\",", 1),
        ];
        bundle_cases.push(good_bundle.replacen(
            "\"dsseEnvelope\":",
            "\"dsseEnvelope\":{},\"dsseEnvelope\":",
            1,
        ));
        let mut accepted = 0;
        for (format, cases) in [
            (StorageFormat::Dsse, &bare_cases),
            (StorageFormat::Bundle, &bundle_cases),
        ] {
            for case in cases {
                let whole = decode_layer(format, case.as_bytes());
                for piece in [1, 3, 17, 1 << 20] {
                    let piecewise = streamed(format, case.as_bytes(), piece);
                    match (&whole, &piecewise) {
                        (Ok(w), Ok(p)) => {
                            assert_eq!(w.envelope, p.envelope, "{case}");
                            assert_eq!(w.key_hint, p.key_hint, "{case}");
                        }
                        (Err(_), Err(_)) => {}
                        _ => panic!("{format} {case:?} in pieces of {piece}: in memory {whole:?}, streamed {piecewise:?}"),
                    }
                }
                accepted += usize::from(whole.is_ok());
            }
        }
        // The good ones (twice as given, standard, URL-safe, escaped key and content, an unknown
        // field holding another `payload`), the good bundle and one with an unknown `payload`.
        assert_eq!(accepted, 9, "cases that decode");
    }

    #[test]
    fn reader_limits() {
        assert_eq!(
            reader_limit(StorageFormat::Bundle, true),
            MAX_ATTESTATION_BLOB
        );
        for format in [
            StorageFormat::Bundle,
            StorageFormat::Dsse,
            StorageFormat::CosignLegacy,
        ] {
            assert_eq!(reader_limit(format, false), MAX_STREAMED_ATTESTATION_BLOB);
        }
    }

    #[test]
    fn caller_annotations_cannot_override_the_formats_own() {
        let evil = [
            (BUNDLE_PREDICATE_TYPE, "https://evil.example"),
            (BUNDLE_CONTENT, "message-signature"),
            (PREDICATE_TYPE, "https://evil.example"),
            (INTOTO_PREDICATE_TYPE, "https://evil.example"),
            (CREATED, "1970-01-01T00:00:00Z"),
            ("dev.cosignproject.cosign/signature", "x"),
            ("DEV.SIGSTORE.bundle.predicateType", "https://evil.example"),
            ("io.buildpacks.buildpack.id", "bp"),
        ];
        let created = "2024-01-01T00:00:00Z";
        let r = build(StorageFormat::Bundle, &evil, Some(created));
        for annotations in [
            r.manifest.annotations.as_ref().unwrap(),
            r.descriptor.annotations.as_ref().unwrap(),
        ] {
            let expected = BTreeMap::from([
                (BUNDLE_CONTENT.to_string(), "dsse-envelope".to_string()),
                (
                    BUNDLE_PREDICATE_TYPE.to_string(),
                    "https://cyclonedx.org/bom".to_string(),
                ),
                (CREATED.to_string(), created.to_string()),
                ("io.buildpacks.buildpack.id".to_string(), "bp".to_string()),
            ]);
            assert_eq!(annotations, &expected);
        }
        // The other format's names do not slip through either, and without a `created` the
        // caller's is not used.
        let r = build(StorageFormat::Dsse, &evil, None);
        let expected = BTreeMap::from([
            (
                PREDICATE_TYPE.to_string(),
                "https://cyclonedx.org/bom".to_string(),
            ),
            ("io.buildpacks.buildpack.id".to_string(), "bp".to_string()),
        ]);
        assert_eq!(r.manifest.annotations.as_ref().unwrap(), &expected);
        assert_eq!(r.descriptor.annotations.as_ref().unwrap(), &expected);
    }

    /// The RFC's literal shape: an image config, no `artifactType`, one DSSE layer annotated as
    /// cosign `.att` annotates it.
    fn rfc_literal() -> ImageManifest {
        let mut layer = Descriptor::for_bytes(DSSE_ENVELOPE, b"{}");
        layer.annotations = Some(BTreeMap::from([
            (
                PREDICATE_TYPE.to_string(),
                "https://cyclonedx.org/bom".to_string(),
            ),
            (COSIGN_SIGNATURE.to_string(), String::new()),
        ]));
        ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            artifact_type: None,
            config: Descriptor::for_bytes("application/vnd.oci.image.config.v1+json", b"{}"),
            layers: vec![layer],
            subject: Some(Descriptor::for_bytes(OCI_MANIFEST, b"{}")),
            annotations: None,
        }
    }

    #[test]
    fn the_first_layer_decides_the_format() {
        let mut manifest = rfc_literal();
        assert_eq!(StorageFormat::detect(&manifest), Some(StorageFormat::Dsse));
        // Whatever the artifact type says.
        manifest.artifact_type = Some("application/example".into());
        assert_eq!(StorageFormat::detect(&manifest), Some(StorageFormat::Dsse));
        manifest.layers[0].media_type = BUNDLE_V03.into();
        assert_eq!(
            StorageFormat::detect(&manifest),
            Some(StorageFormat::Bundle)
        );
        manifest.artifact_type = None;
        manifest.config = Descriptor::empty();
        assert_eq!(
            StorageFormat::detect(&manifest),
            Some(StorageFormat::Bundle)
        );
        // Someone else's artifact, even with an attestation artifact type.
        manifest.artifact_type = Some(DSSE_ENVELOPE.into());
        manifest.layers[0].media_type = "application/spdx+json".into();
        assert_eq!(StorageFormat::detect(&manifest), None);
        manifest.layers.clear();
        assert_eq!(StorageFormat::detect(&manifest), None);
        // What this project writes is still recognised.
        for format in [StorageFormat::Bundle, StorageFormat::Dsse] {
            let r = build(format, &[], None);
            assert_eq!(StorageFormat::detect(&r.manifest), Some(format));
        }
    }

    #[test]
    fn reserved_annotation_names() {
        for name in [
            "dev.sigstore.bundle.content",
            "dev.sigstore.anything",
            "Dev.Cosignproject.cosign/signature",
            "predicateType",
            "predicatetype",
            "in-toto.io/predicate-type",
            "org.opencontainers.image.created",
        ] {
            assert!(is_reserved_annotation(name), "{name}");
        }
        for name in [
            "io.buildpacks.buildpack.id",
            "dev.sigstore",
            "dev.sigstorex",
            "org.opencontainers.image.source",
            "predicateType2",
            "é",
        ] {
            assert!(!is_reserved_annotation(name), "{name}");
        }
    }
}
