//! The signing pipeline, shared by the `signer` phase and `cnb-attest sign`.
//!
//! A signer configuration (see `cnb-attestation-config`) lists attestations; [`prepare`] reads each
//! predicate (bounded, inside the allowed roots), wraps it in an in-toto Statement and signs it into
//! a DSSE envelope — all of them before anything is written, so bad input leaves the target as it was.
//! [`sign_layout`] then stores one referrer per attestation and storage format in an OCI image
//! layout, in one `index.json` update. `cnb_sbom_restore::inspect` lists and verifies what is stored.
//!
//! Every step is deterministic (RFC 6979 signatures, fixed serialisation, no wall-clock time unless
//! `SOURCE_DATE_EPOCH` provides one), so signing the same input twice stores nothing new.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;

use cnb_attestation_config::{AllowedRoots, AttestationSpec, SignerConfig};
use cnb_dsse::{Envelope, Signer, IN_TOTO_PAYLOAD_TYPE};
use cnb_intoto::{Statement, Subject};
use cnb_referrers::layout::{Image, OciLayout, StoreOutcome};
use cnb_referrers::{build_referrer, Descriptor, Referrer, ReferrerParts, StorageFormat};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub mod generate;
pub mod location;
pub mod omit;
mod stream;

pub use cnb_intoto::StatementVersion;
pub use location::{LayoutImage, Target};
pub use stream::StreamedEnvelope;

/// The `io.buildpacks.*` annotation names, re-exported from the configuration crate.
pub use cnb_attestation_config::annotations;

pub use cnb_attestation_config::DEFAULT_MAX_PREDICATE_SIZE;

/// What can go wrong in the pipeline. Each variant names the attestation or image concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] cnb_attestation_config::Error),
    /// SBOM discovery or a platform file refused the input.
    #[error(transparent)]
    Discovery(#[from] cnb_sbom_discovery::Error),
    /// An attestation could not be turned into a statement.
    #[error("attestation #{index} ({what}): {source}")]
    Statement {
        /// Position in the configuration (1-based).
        index: usize,
        /// Predicate type or file.
        what: String,
        /// The cause.
        source: cnb_intoto::Error,
    },
    /// Signing failed.
    #[error("attestation #{index}: signing failed: {source}")]
    Sign {
        /// Position in the configuration (1-based).
        index: usize,
        /// The cause.
        source: cnb_dsse::Error,
    },
    /// The image or storage failed.
    #[error(transparent)]
    Store(#[from] cnb_referrers::Error),
    /// The image is not the one the configuration names, or cannot be named.
    #[error("{0}")]
    BadImage(String),
    /// The registry failed.
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Registry(#[from] cnb_registry::Error),
    /// A signing option is invalid.
    #[error("{0}")]
    BadOption(String),
    /// `-omit-sbom` pushed the rewritten image but could not move every tag.
    #[error("{0}")]
    PartlyMoved(omit::PartlyMoved),
    /// A stored attestation would be larger than readers accept: it could be signed, but never
    /// downloaded or restored.
    #[error(
        "attestation #{index} ({what}): its stored {format} would be {size} bytes, over the \
         {max}-byte limit that readers (download, the analyzer) accept; nothing was stored"
    )]
    TooLargeForReaders {
        /// Position in the configuration (1-based).
        index: usize,
        /// Predicate type or file.
        what: String,
        /// Storage format.
        format: &'static str,
        /// Its size.
        size: u64,
        /// [`cnb_referrers::format::reader_limit`] of the format.
        max: u64,
    },
}

/// Choices for a signing run.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Storage formats to write (each attestation is stored once per format).
    pub formats: Vec<StorageFormat>,
    /// Statement version to write.
    pub statement_version: StatementVersion,
    /// `org.opencontainers.image.created` for the manifests; set only from `SOURCE_DATE_EPOCH`.
    pub created: Option<String>,
    /// Largest predicate read into memory (predicates that are not streamed).
    pub max_predicate_size: u64,
    /// Largest predicate file streamed (see [`SignOptions::stream_above`]).
    pub max_streamed_predicate_size: u64,
    /// How the image itself is signed.
    pub image_signature: ImageSignature,
    /// Keyless signing: each envelope's bundle `verificationMaterial` (the Fulcio certificate and
    /// its transparency-log entry), keyed by the envelope's signature bytes. Envelopes are
    /// deterministic for one key, so the material obtained for a first [`plan`] applies to the
    /// envelopes of the next. `None`: key-based bundles (a public-key hint).
    pub keyless: Option<std::sync::Arc<KeylessMaterials>>,
    /// Predicate files larger than this are signed from a stream, never held in memory
    /// ([`DEFAULT_STREAM_ABOVE`]); smaller ones are read whole.
    pub stream_above: u64,
}

/// Default [`SignOptions::max_streamed_predicate_size`]: 768 MiB, discovery's cap on an SBOM file
/// (its bundle is then at most the 1 GiB readers take through a temporary file).
pub const DEFAULT_MAX_STREAMED_PREDICATE_SIZE: u64 = cnb_sbom_discovery::DEFAULT_MAX_FILE_SIZE;

/// Default [`SignOptions::stream_above`]: 1 MiB.
pub const DEFAULT_STREAM_ABOVE: u64 = 1024 * 1024;

/// Keyless verification material per envelope signature (see [`SignOptions::keyless`]).
pub type KeylessMaterials = BTreeMap<Vec<u8>, String>;

/// `https://sigstore.dev/cosign/sign/v1`: the predicate type of a cosign 3 image signature.
pub const COSIGN_SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

/// How the image itself is signed, beside its attestations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSignature {
    /// cosign 3: an in-toto statement with predicate type [`COSIGN_SIGN_V1`], an empty predicate
    /// and the image digest as subject, in a Sigstore bundle referrer (the default).
    Bundle,
    /// cosign 2: a simple-signing payload appended to the `sha256-<hex>.sig` tag (registries only).
    SimpleSigning,
    /// No image signature.
    None,
}

impl std::str::FromStr for ImageSignature {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "bundle" => Ok(ImageSignature::Bundle),
            "simple-signing" => Ok(ImageSignature::SimpleSigning),
            "none" => Ok(ImageSignature::None),
            other => Err(Error::BadOption(format!(
                "image signature `{other}`: expected bundle, simple-signing or none"
            ))),
        }
    }
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            formats: vec![StorageFormat::Bundle],
            statement_version: StatementVersion::V1,
            created: None,
            max_predicate_size: DEFAULT_MAX_PREDICATE_SIZE,
            max_streamed_predicate_size: DEFAULT_MAX_STREAMED_PREDICATE_SIZE,
            image_signature: ImageSignature::Bundle,
            keyless: None,
            stream_above: DEFAULT_STREAM_ABOVE,
        }
    }
}

impl SignOptions {
    /// Refuses what keyless signing cannot store: a keyless signature needs its certificate and
    /// log entry next to it, which only a Sigstore bundle carries.
    pub fn check_keyless(&self) -> Result<(), Error> {
        if let Some(format) = self.formats.iter().find(|f| **f != StorageFormat::Bundle) {
            return Err(Error::BadOption(format!(
                "keyless signing stores Sigstore bundles only: a `{format}` attestation cannot carry \
                 the certificate and transparency-log entry that verify it (use --format bundle)"
            )));
        }
        if self.image_signature == ImageSignature::SimpleSigning {
            return Err(Error::BadOption(
                "keyless signing cannot write a cosign 2 simple-signing image signature (it has no \
                 place for the certificate); use --image-signature bundle or none"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The keyless material for `envelope` when this is a keyless run (`Ok(None)` otherwise).
    fn material_for(&self, envelope: &Envelope, index: usize) -> Result<Option<&str>, Error> {
        let Some(materials) = &self.keyless else {
            return Ok(None);
        };
        let signature = envelope.signatures.first().map(|s| s.sig.as_slice());
        match signature.and_then(|sig| materials.get(sig)) {
            Some(material) => Ok(Some(material.as_str())),
            None => Err(Error::BadOption(format!(
                "attestation #{index}: its envelope was not logged in the transparency log of \
                 this keyless run (the signature differs from the one logged)"
            ))),
        }
    }

    /// Refuses what only a registry can store (cosign tags) when the target is an OCI layout.
    pub fn check_layout_target(&self) -> Result<(), Error> {
        if self.formats.iter().any(|f| !f.is_referrer())
            || self.image_signature == ImageSignature::SimpleSigning
        {
            return Err(Error::BadOption(
                "cosign-legacy entries and simple-signing image signatures live in registry tags; \
                 an OCI layout takes bundle and dsse"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Options from command-line values: storage format names (`bundle`, `dsse`), the statement
    /// version (`v1`, `v0.1`) and `SOURCE_DATE_EPOCH` (seconds since 1970), shared by every binary.
    pub fn from_flags(
        formats: &[String],
        statement_version: &str,
        image_signature: &str,
        source_date_epoch: Option<&str>,
    ) -> Result<Self, Error> {
        let mut formats = formats
            .iter()
            .map(|f| f.parse::<StorageFormat>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::BadOption(e.to_string()))?;
        formats.sort();
        formats.dedup();
        if formats.is_empty() {
            return Err(Error::BadOption("no storage format given".into()));
        }
        let statement_version = match statement_version {
            "v1" => StatementVersion::V1,
            "v0.1" => StatementVersion::V0_1,
            other => {
                return Err(Error::BadOption(format!(
                    "statement version `{other}`: expected v1 or v0.1"
                )))
            }
        };
        let created = match source_date_epoch {
            Some(v) => {
                let seconds: i64 = v.trim().parse().map_err(|_| {
                    Error::BadOption(format!("SOURCE_DATE_EPOCH `{v}` is not an integer"))
                })?;
                Some(rfc3339_utc(seconds))
            }
            None => None,
        };
        Ok(SignOptions {
            formats,
            statement_version,
            created,
            image_signature: image_signature.parse()?,
            ..SignOptions::default()
        })
    }
}

/// One attestation, signed and ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Position in the configuration (1-based).
    pub index: usize,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The configuration's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The signed envelope.
    pub signed: Signed,
    /// sha256 (hex) of the predicate bytes.
    pub predicate_sha256: String,
}

/// A signed attestation: held in memory, or signed from a stream and stored from it.
#[derive(Debug, Clone)]
pub enum Signed {
    /// The whole envelope, in memory.
    Envelope(Envelope),
    /// The predicate stays in its file ([`SignOptions::stream_above`]).
    Streamed(std::sync::Arc<StreamedEnvelope>),
}

impl Prepared {
    /// The envelope, when it is held in memory.
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.signed {
            Signed::Envelope(e) => Some(e),
            Signed::Streamed(_) => None,
        }
    }
}

/// Reads, states and signs every attestation of `config`. Fails on the first bad one, before
/// anything is stored.
pub fn prepare(
    config: &SignerConfig,
    roots: &AllowedRoots,
    signer: &dyn Signer,
    options: &SignOptions,
) -> Result<Vec<Prepared>, Error> {
    config.validate(roots)?;
    let mut out = Vec::with_capacity(config.attestations.len());
    let hint = signer.public_key().hint();
    for (i, spec) in config.attestations.iter().enumerate() {
        let index = i + 1;
        let annotations: BTreeMap<String, String> = spec.annotations.iter().cloned().collect();
        // Streamed files may be larger than what is read into memory; a file that is not
        // streamed after all is read below, under `max_predicate_size`.
        let streamed_cap = options
            .max_streamed_predicate_size
            .max(options.max_predicate_size);
        if let Some(file) = spec.predicate_file(roots, streamed_cap)? {
            if stream::streams(&file, options) {
                if let Some((streamed, predicate_sha256)) =
                    stream::prepare_streamed(index, spec, file, signer, options, &hint)?
                {
                    out.push(Prepared {
                        index,
                        predicate_type: spec.predicate.predicate_type.clone(),
                        annotations,
                        signed: Signed::Streamed(std::sync::Arc::new(streamed)),
                        predicate_sha256,
                    });
                    continue;
                }
            }
        }
        let predicate = config.read_predicate(spec, roots, options.max_predicate_size)?;
        let predicate_sha256 = hex::encode(Sha256::digest(&predicate));
        let statement = Statement::new(
            options.statement_version,
            subjects_of(spec),
            &spec.predicate.predicate_type,
            predicate,
        )
        .map_err(|source| Error::Statement {
            index,
            what: describe(spec),
            source,
        })?;
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), signer)
            .map_err(|source| Error::Sign { index, source })?;
        out.push(Prepared {
            index,
            predicate_type: spec.predicate.predicate_type.clone(),
            annotations,
            signed: Signed::Envelope(envelope),
            predicate_sha256,
        });
    }
    Ok(out)
}

/// The checks verification will apply to subjects, applied before signing: an attestation that
/// would never verify is refused instead of stored.
fn check_subjects(
    config: &SignerConfig,
    image_digest: &str,
    diff_ids: Option<&[String]>,
    location: &str,
) -> Result<(), Error> {
    use cnb_intoto::subjects::{check, ImageSubject, SubjectError};
    let image_hex = image_digest.strip_prefix("sha256:").unwrap_or(image_digest);
    for (i, spec) in config.attestations.iter().enumerate() {
        let subjects = spec
            .subjects
            .iter()
            .map(|s| (s.name.as_str(), Some(s.digest.hex())));
        match check(subjects, image_hex, diff_ids, ImageSubject::Required) {
            Ok(_) => {}
            Err(SubjectError::NoImage) | Err(SubjectError::NoSha256 { .. }) => {
                return Err(Error::BadImage(format!(
                    "attestation #{} ({}) names no subject with the image digest {image_digest}; \
                     cosign verify-attestation and `cnb-attest verify` would reject it",
                    i + 1,
                    describe(spec)
                )))
            }
            Err(SubjectError::Foreign { name, diff_id }) => {
                return Err(Error::BadImage(format!(
                "attestation #{} ({}): subject `{name}` ({diff_id}) is not a layer of {location}",
                i + 1,
                describe(spec),
            )))
            }
        }
    }
    Ok(())
}

fn subjects_of(spec: &AttestationSpec) -> Vec<Subject> {
    spec.subjects
        .iter()
        .map(|s| Subject {
            name: s.name.clone(),
            digest: BTreeMap::from([(
                s.digest.algorithm().to_string(),
                s.digest.hex().to_string(),
            )]),
        })
        .collect()
}

fn describe(spec: &AttestationSpec) -> String {
    match &spec.predicate.source {
        cnb_attestation_config::PredicateSource::Uri(path) => path.display().to_string(),
        cnb_attestation_config::PredicateSource::Value(_) => {
            format!("inline {}", spec.predicate.predicate_type)
        }
    }
}

/// Result of one stored referrer (the same for layouts and registries), and why one is not listed.
pub use cnb_referrers::{NotListed, Status};

/// One line of a signing report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AttestationOutcome {
    /// Position in the configuration (1-based).
    pub index: usize,
    /// Storage format.
    pub format: String,
    /// Predicate type.
    pub predicate_type: String,
    /// Buildpack ID, from the annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildpack: Option<String>,
    /// Layer name, from the annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The referrer manifest digest.
    pub manifest_digest: String,
    /// Size of the stored bundle or envelope.
    pub size: u64,
    /// What happened.
    pub status: Status,
    /// Whether readers find it through the path they use: the layout index, or in a registry the
    /// Referrers API or the tag-schema index as read back after the push (a registry's
    /// `OCI-Subject` answer alone never makes it discoverable).
    pub discoverable: bool,
    /// When it is not discoverable: why, when the read back found out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_listed: Option<NotListed>,
}

/// What a signing run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignReport {
    /// The image signed: a layout directory, or `<registry>/<repository>[:<tag>]`.
    pub image: String,
    /// Its manifest digest.
    pub image_digest: String,
    /// SHA-256 fingerprint of the signing key's SPKI.
    pub key_fingerprint: String,
    /// Referrers newly stored.
    pub pushed: usize,
    /// Referrers that were already there.
    pub already_present: usize,
    /// Blobs written or uploaded (0 on a re-run).
    pub blobs_written: usize,
    /// Registry only: whether the registry indexes referrers itself (Referrers API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers_api: Option<bool>,
    /// Registry only: writes of the `sha256-<hex>` fallback index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_writes: Option<u32>,
    /// Registry only: HTTP requests the client sent in this run so far (reading the image included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Registry only: requests by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_by_kind: Option<BTreeMap<String, u64>>,
    /// One entry per attestation and format.
    pub attestations: Vec<AttestationOutcome>,
}

impl SignReport {
    /// Whether every attestation is discoverable by readers.
    pub fn all_discoverable(&self) -> bool {
        self.attestations.iter().all(|a| a.discoverable)
    }

    /// Why attestations are not discoverable: each distinct [`NotListed`] reason once, in report
    /// order.
    pub fn not_listed(&self) -> Vec<&NotListed> {
        let mut out: Vec<&NotListed> = Vec::new();
        for reason in self
            .attestations
            .iter()
            .filter_map(|a| a.not_listed.as_ref())
        {
            if !out.contains(&reason) {
                out.push(reason);
            }
        }
        out
    }
}

/// One attestation in one storage format, signed and built, ready to store.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The signed attestation.
    pub prepared: Prepared,
    /// How it is stored.
    pub stored: Stored,
}

/// How one planned attestation is stored.
#[derive(Debug, Clone)]
pub enum Stored {
    /// A referrer manifest (`bundle`, `dsse`).
    Referrer(Box<Referrer>),
    /// A layer of cosign 2's `sha256-<hex>.att` manifest (`cosign-legacy`).
    CosignTagLayer(Descriptor, Vec<u8>),
    /// A simple-signing layer of cosign 2's `sha256-<hex>.sig` manifest (the image signature).
    CosignSigLayer(Descriptor, Vec<u8>),
}

impl Stored {
    fn format_name(&self) -> &'static str {
        match self {
            Stored::Referrer(r) => r.format.name(),
            Stored::CosignTagLayer(..) => StorageFormat::CosignLegacy.name(),
            Stored::CosignSigLayer(..) => "simple-signing",
        }
    }

    fn digest(&self) -> String {
        match self {
            Stored::Referrer(r) => r.descriptor.digest.to_string(),
            Stored::CosignTagLayer(d, _) | Stored::CosignSigLayer(d, _) => d.digest.to_string(),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Stored::Referrer(r) => r.manifest.layers.first().map(|l| l.size).unwrap_or(0),
            Stored::CosignTagLayer(d, _) | Stored::CosignSigLayer(d, _) => d.size,
        }
    }

    fn referrer(&self) -> Option<&Referrer> {
        match self {
            Stored::Referrer(r) => Some(r),
            Stored::CosignTagLayer(..) | Stored::CosignSigLayer(..) => None,
        }
    }
}

impl Planned {
    fn outcome(
        &self,
        status: Status,
        discoverable: bool,
        not_listed: Option<NotListed>,
    ) -> AttestationOutcome {
        let p = &self.prepared;
        AttestationOutcome {
            index: p.index,
            format: self.stored.format_name().to_string(),
            predicate_type: p.predicate_type.clone(),
            buildpack: p.annotations.get(annotations::BUILDPACK_ID).cloned(),
            layer: p.annotations.get(annotations::LAYER_NAME).cloned(),
            manifest_digest: self.stored.digest(),
            size: self.stored.size(),
            status,
            discoverable,
            not_listed,
        }
    }
}

/// Checks that `config` is for the image manifest `subject` and that every attestation would pass
/// verification against it (one subject is the image digest; with `diff_ids`, every other subject
/// is a layer of the image), then signs every attestation and builds its referrer(s). Nothing is
/// signed when any check fails. `location` names the image in messages.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    subject: &Descriptor,
    diff_ids: Option<&[String]>,
    location: &str,
    config: &SignerConfig,
    roots: &AllowedRoots,
    signer: &dyn Signer,
    options: &SignOptions,
) -> Result<Vec<Planned>, Error> {
    let image_digest = subject.digest.to_string();
    let configured = config.image.digest()?;
    if configured != subject.digest {
        return Err(Error::BadImage(format!(
            "the signer configuration is for image {configured}, but {location} is {image_digest}"
        )));
    }
    check_subjects(config, &image_digest, diff_ids, location)?;
    if options.keyless.is_some() {
        options.check_keyless()?;
    }
    let prepared = prepare(config, roots, signer, options)?;
    let hint = signer.public_key().hint();
    let mut out = Vec::new();
    for p in prepared {
        let material = match p.envelope() {
            Some(envelope) => options.material_for(envelope, p.index)?,
            None => None,
        };
        for format in &options.formats {
            let parts = ReferrerParts {
                subject,
                predicate_type: &p.predicate_type,
                annotations: &p.annotations,
                key_hint: &hint,
                verification_material: material,
                created: options.created.as_deref(),
            };
            let stored = match &p.signed {
                Signed::Streamed(streamed) => {
                    let (_, layer, blob) = streamed
                        .layers
                        .iter()
                        .find(|(f, _, _)| f == format)
                        .ok_or_else(|| {
                            Error::BadOption(format!(
                                "attestation #{}: no streamed layer in format {}",
                                p.index,
                                format.name()
                            ))
                        })?;
                    Stored::Referrer(Box::new(cnb_referrers::format::referrer_for_layer(
                        *format,
                        layer.clone(),
                        cnb_referrers::Blob::Stream(blob.clone()),
                        &parts,
                    )))
                }
                Signed::Envelope(envelope) if format.is_referrer() => {
                    Stored::Referrer(Box::new(build_referrer(*format, envelope, &parts)))
                }
                Signed::Envelope(envelope) => {
                    let (descriptor, bytes) = cnb_referrers::format::legacy_attestation_layer(
                        envelope,
                        &p.predicate_type,
                        &p.annotations,
                    );
                    Stored::CosignTagLayer(descriptor, bytes)
                }
            };
            // One limit for both sides: what readers refuse is never signed. Readers take key-
            // signed blobs through a temporary file up to a larger size than keyless bundles,
            // which they verify in memory.
            let max = cnb_referrers::format::reader_limit(*format, options.keyless.is_some());
            if stored.size() > max {
                return Err(Error::TooLargeForReaders {
                    index: p.index,
                    what: p.predicate_type.clone(),
                    format: stored.format_name(),
                    size: stored.size(),
                    max,
                });
            }
            out.push(Planned {
                prepared: p.clone(),
                stored,
            });
        }
    }
    if let Some(signature) = image_signature(subject, config, signer, options, &hint)? {
        out.push(signature);
    }
    Ok(out)
}

/// The image signature, as [`SignOptions::image_signature`] asks. Deterministic like every other
/// attestation, so a re-run finds it already present.
fn image_signature(
    subject: &Descriptor,
    config: &SignerConfig,
    signer: &dyn Signer,
    options: &SignOptions,
    hint: &str,
) -> Result<Option<Planned>, Error> {
    // The image's name as the attestations call it, else the configured repository.
    let name = config
        .attestations
        .iter()
        .flat_map(|a| &a.subjects)
        .find(|s| s.digest == subject.digest)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| config.image.repository().to_string());
    let sign_error = |source| Error::Sign { index: 0, source };
    match options.image_signature {
        ImageSignature::None => Ok(None),
        ImageSignature::Bundle => {
            let statement = Statement::new(
                StatementVersion::V1,
                vec![
                    Subject::sha256(&name, subject.digest.hex()).map_err(|source| {
                        Error::Statement {
                            index: 0,
                            what: "image signature".into(),
                            source,
                        }
                    })?,
                ],
                COSIGN_SIGN_V1,
                b"{}".to_vec(),
            )
            .map_err(|source| Error::Statement {
                index: 0,
                what: "image signature".into(),
                source,
            })?;
            let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), signer)
                .map_err(sign_error)?;
            let material = options.material_for(&envelope, 0)?;
            let referrer = build_referrer(
                StorageFormat::Bundle,
                &envelope,
                &ReferrerParts {
                    subject,
                    predicate_type: COSIGN_SIGN_V1,
                    annotations: &BTreeMap::new(),
                    key_hint: hint,
                    verification_material: material,
                    created: options.created.as_deref(),
                },
            );
            Ok(Some(Planned {
                prepared: Prepared {
                    index: 0,
                    predicate_type: COSIGN_SIGN_V1.into(),
                    annotations: BTreeMap::new(),
                    signed: Signed::Envelope(envelope),
                    predicate_sha256: hex::encode(Sha256::digest(b"{}")),
                },
                stored: Stored::Referrer(Box::new(referrer)),
            }))
        }
        ImageSignature::SimpleSigning => {
            // cosign's simple-signing payload, fields in the order cosign writes them.
            let payload = serde_json::to_vec(&serde_json::json!({
                "critical": {
                    "identity": {"docker-reference": name},
                    "image": {"docker-manifest-digest": subject.digest.as_str()},
                    "type": "cosign container image signature",
                },
                "optional": null,
            }))
            .map_err(|e| Error::BadOption(format!("simple-signing payload: {e}")))?;
            let signature = signer.sign(&payload).map_err(sign_error)?;
            let mut descriptor =
                Descriptor::for_bytes(cnb_referrers::format::SIMPLE_SIGNING, &payload);
            descriptor.annotations = Some(BTreeMap::from([(
                cnb_referrers::format::COSIGN_SIGNATURE.to_string(),
                base64_standard(&signature),
            )]));
            let prepared = Prepared {
                index: 0,
                predicate_type: "cosign container image signature".into(),
                annotations: BTreeMap::new(),
                signed: Signed::Envelope(Envelope {
                    payload_type: cnb_referrers::format::SIMPLE_SIGNING.into(),
                    payload: payload.clone(),
                    signatures: vec![cnb_dsse::Signature {
                        keyid: String::new(),
                        sig: signature,
                    }],
                }),
                predicate_sha256: hex::encode(Sha256::digest(&payload)),
            };
            Ok(Some(Planned {
                prepared,
                stored: Stored::CosignSigLayer(descriptor, payload),
            }))
        }
    }
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn report(
    image: String,
    image_digest: String,
    signer: &dyn Signer,
    attestations: Vec<AttestationOutcome>,
    blobs_written: usize,
) -> SignReport {
    SignReport {
        image,
        image_digest,
        key_fingerprint: signer.public_key().fingerprint(),
        pushed: attestations
            .iter()
            .filter(|a| a.status == Status::Pushed)
            .count(),
        already_present: attestations
            .iter()
            .filter(|a| a.status == Status::AlreadyPresent)
            .count(),
        blobs_written,
        referrers_api: None,
        index_writes: None,
        requests: None,
        requests_by_kind: None,
        attestations,
    }
}

/// Signs `config`'s attestations and stores them as referrers of `image` in `layout`.
///
/// The configuration's `[image] reference` must name `image`'s digest: a configuration generated for
/// one image is never applied to another.
pub fn sign_layout(
    layout: &OciLayout,
    image: &Image,
    config: &SignerConfig,
    roots: &AllowedRoots,
    signer: &dyn Signer,
    options: &SignOptions,
) -> Result<SignReport, Error> {
    sign_layout_subject(
        layout,
        &image.descriptor,
        Some(&image.config.diff_ids),
        config,
        roots,
        signer,
        options,
    )
}

/// [`sign_layout`] for any subject in `layout`: an image manifest (with `diff_ids`, layer
/// subjects are checked against them) or an image index (a configuration with no attestations:
/// only the image signature is stored, about the index digest).
#[allow(clippy::too_many_arguments)]
pub fn sign_layout_subject(
    layout: &OciLayout,
    subject: &Descriptor,
    diff_ids: Option<&[String]>,
    config: &SignerConfig,
    roots: &AllowedRoots,
    signer: &dyn Signer,
    options: &SignOptions,
) -> Result<SignReport, Error> {
    let location = layout.root().display().to_string();
    options.check_layout_target()?;
    let planned = plan(subject, diff_ids, &location, config, roots, signer, options)?;
    let needed: std::collections::BTreeSet<_> = planned
        .iter()
        .filter_map(|p| p.stored.referrer())
        .flat_map(|r| {
            r.blobs
                .iter()
                .map(|(d, _)| d.digest.clone())
                .chain(std::iter::once(r.descriptor.digest.clone()))
        })
        .collect();
    let blobs_written = needed.iter().filter(|d| !layout.has_blob(d)).count();
    let referrers: Vec<Referrer> = planned
        .iter()
        .filter_map(|p| p.stored.referrer().cloned())
        .collect();
    let outcomes = layout.store_referrers(&referrers)?;
    let attestations = planned
        .iter()
        .zip(outcomes)
        .map(|(p, outcome)| {
            p.outcome(
                match outcome {
                    StoreOutcome::Added => Status::Pushed,
                    StoreOutcome::AlreadyPresent => Status::AlreadyPresent,
                },
                true,
                None,
            )
        })
        .collect();
    Ok(report(
        location,
        subject.digest.to_string(),
        signer,
        attestations,
        blobs_written,
    ))
}

/// Signs `config`'s attestations and attaches them to `image` in a registry: every referrer
/// pushed by digest, listed through the Referrers API or the tag-schema index (see
/// [`cnb_registry::attach()`]). Nothing is pushed unless every attestation could be signed. With
/// `diff_ids` (the image config's `rootfs.diff_ids`), layer subjects are checked against them.
///
/// Each attestation's [`AttestationOutcome::discoverable`] comes from reading the listing back
/// once in the run, never from the registry's `OCI-Subject` answer; one that is stored but not
/// listed is reported with its [`NotListed`] reason, not as an error (callers check
/// [`SignReport::all_discoverable`]).
#[cfg(feature = "registry")]
#[allow(clippy::too_many_arguments)]
pub async fn sign_registry(
    client: &cnb_registry::Client,
    reference: &cnb_registry::ImageRef,
    subject: &Descriptor,
    diff_ids: Option<&[String]>,
    config: &SignerConfig,
    roots: &AllowedRoots,
    signer: &dyn Signer,
    options: &SignOptions,
    attach_options: &cnb_registry::AttachOptions,
) -> Result<SignReport, Error> {
    let location = match &reference.tag {
        Some(tag) => format!("{}:{tag}", reference.repository),
        None => reference.repository.to_string(),
    };
    let planned = plan(subject, diff_ids, &location, config, roots, signer, options)?;
    let referrers: Vec<Referrer> = planned
        .iter()
        .filter_map(|p| p.stored.referrer().cloned())
        .collect();
    let attached = cnb_registry::attach(
        client,
        &reference.repository,
        subject,
        &referrers,
        attach_options,
    )
    .await?;
    let layers: Vec<(Descriptor, Vec<u8>)> = planned
        .iter()
        .filter_map(|p| match &p.stored {
            Stored::CosignTagLayer(d, b) => Some((d.clone(), b.clone())),
            _ => None,
        })
        .collect();
    let sig_layers: Vec<(Descriptor, Vec<u8>)> = planned
        .iter()
        .filter_map(|p| match &p.stored {
            Stored::CosignSigLayer(d, b) => Some((d.clone(), b.clone())),
            _ => None,
        })
        .collect();
    let sig = if sig_layers.is_empty() {
        None
    } else {
        Some(
            cnb_registry::cosign_tag::append(
                client,
                &reference.repository,
                &subject.digest,
                "sig",
                &sig_layers,
                attach_options,
            )
            .await?,
        )
    };
    let tag = if layers.is_empty() {
        None
    } else {
        Some(
            cnb_registry::cosign_tag::append(
                client,
                &reference.repository,
                &subject.digest,
                "att",
                &layers,
                attach_options,
            )
            .await?,
        )
    };
    let mut referrer_outcomes = attached.outcomes.iter();
    let attestations = planned
        .iter()
        .map(|p| match &p.stored {
            Stored::Referrer(_) => {
                let o = referrer_outcomes
                    .next()
                    .expect("one outcome per referrer, in order");
                p.outcome(o.status.clone(), o.discoverable, o.not_listed.clone())
            }
            Stored::CosignTagLayer(d, _) | Stored::CosignSigLayer(d, _) => {
                let tag = if matches!(p.stored, Stored::CosignSigLayer(..)) {
                    sig.as_ref()
                } else {
                    tag.as_ref()
                }
                .expect("layers were appended");
                let digest = d.digest.to_string();
                p.outcome(
                    if tag.present_before.contains(&digest) {
                        Status::AlreadyPresent
                    } else {
                        Status::Pushed
                    },
                    tag.present_after.contains(&digest),
                    None,
                )
            }
        })
        .collect();
    let blobs = attached.blobs_uploaded
        + tag.as_ref().map(|t| t.blobs_uploaded).unwrap_or(0)
        + sig.as_ref().map(|t| t.blobs_uploaded).unwrap_or(0);
    let mut out = report(
        location,
        subject.digest.to_string(),
        signer,
        attestations,
        blobs,
    );
    out.referrers_api = Some(attached.referrers_api);
    out.index_writes = Some(
        attached.index_writes
            + tag.map(|t| t.writes).unwrap_or(0)
            + sig.map(|t| t.writes).unwrap_or(0),
    );
    out.requests = Some(client.stats().total());
    out.requests_by_kind = Some(client.stats().by_kind());
    Ok(out)
}

/// Formats seconds since the epoch as an RFC 3339 UTC time (`1980-01-01T00:00:01Z`).
pub use cnb_untrusted::time::rfc3339_utc;
