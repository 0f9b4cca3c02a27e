//! Listing and verifying the attestations stored for an image.
//!
//! Listing decodes what it can without trusting it (it is a view for people); verification checks,
//! for every referrer in a known format (recognised by its first layer's media type): the blob
//! digest, the DSSE payload type, the signature over PAE with any of the given keys, the
//! statement's strict parse, that one subject is the image manifest digest, that every other
//! subject is a layer of this image (a diffID, or a compressed digest of the image manifest), and
//! that the selection annotations (on the manifest or its layer descriptor) agree with the signed
//! statement. Annotations never make a decision on their own; they can only make a verification
//! fail (the one exception, placing a statement whose only subject is the image, is
//! `select::place`'s, and is reported as unsigned).

use cnb_dsse::IN_TOTO_PAYLOAD_TYPE;
use cnb_intoto::{Statement, Subject};
use cnb_referrers::format::{
    decode_layer, StoredEnvelope, BUNDLE_PREDICATE_TYPE, MAX_STREAMED_ATTESTATION_BLOB,
    PREDICATE_TYPE, STREAM_READ_ABOVE,
};
use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::{Descriptor, ImageManifest, StorageFormat};
use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use cnb_attestation_config::annotations;

use crate::spool::Spooled;
pub use crate::trust::NOT_TRUSTED;
use crate::{Error, Failure, Rule, Trust};

/// An annotation of an attestation manifest: on the manifest, or else on its attestation layer's
/// descriptor (where the RFC and cosign's `.att` put them). Unsigned either way.
pub fn annotation_of<'a>(manifest: &'a ImageManifest, name: &str) -> Option<&'a str> {
    manifest
        .annotation(name)
        .or_else(|| manifest.layers.first().and_then(|l| l.annotation(name)))
}

/// One referrer of an image, as stored (nothing verified).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Listed {
    /// The referrer manifest digest.
    pub manifest_digest: String,
    /// Storage format, when it is one this project reads.
    pub format: Option<String>,
    /// The manifest's artifact type.
    pub artifact_type: String,
    /// Predicate type, from the statement when it decodes, else from the annotations.
    pub predicate_type: Option<String>,
    /// Buildpack ID annotation.
    pub buildpack: Option<String>,
    /// Layer name annotation.
    pub layer: Option<String>,
    /// SBOM media type annotation.
    pub sbom_media_type: Option<String>,
    /// Size of the attestation blob.
    pub size: u64,
    /// Subjects of the (unverified) statement, as `name@sha256:<hex>`.
    pub subjects: Vec<String>,
    /// Why the referrer could not be decoded, if it could not.
    pub problem: Option<String>,
    /// `org.opencontainers.image.created` (unsigned), when the referrer carries it.
    pub created: Option<String>,
    /// Who signed it, once verified keyless: the certificate identity and issuer, and the
    /// transparency-log entry that witnessed it. `None` for key-based signatures and anything not
    /// verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

/// The verdict on one referrer.
///
/// Serialised as the [`Listed`] fields, then `"failure"`: the message (or `null` when verified),
/// then `"rule"`: the kebab-case [`Rule`] (left out when verified).
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What is stored.
    pub listed: Listed,
    /// `None` when verified; the rule that failed and why otherwise.
    pub failure: Option<Failure>,
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            listed: &'a Listed,
            failure: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rule: Option<Rule>,
        }
        Shown {
            listed: &self.listed,
            failure: self.failure.as_ref().map(|f| f.message.as_str()),
            rule: self.failure.as_ref().map(|f| f.rule),
        }
        .serialize(serializer)
    }
}

impl Verdict {
    /// Whether verification passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// A one-line name for the attestation, for messages.
    pub fn name(&self) -> String {
        describe(&self.listed)
    }
}

/// A one-line name for a listed attestation: `<digest> (<buildpack>[:<layer>], <predicate type>, <format>)`.
///
/// The buildpack, layer, predicate type and format are unsigned remote text, kept as read: the
/// name also goes into JSON reports ([`crate::select::Problem`]), which escape it themselves.
/// Text renderers show it through `cnb_phase::shown`.
pub fn describe(listed: &Listed) -> String {
    let who = match (&listed.buildpack, &listed.layer) {
        (Some(bp), Some(layer)) => format!("{bp}:{layer}"),
        (Some(bp), None) => bp.clone(),
        _ => "no buildpack".into(),
    };
    format!(
        "{} ({who}, {}, {})",
        listed.manifest_digest,
        listed
            .predicate_type
            .as_deref()
            .unwrap_or("unknown predicate"),
        listed.format.as_deref().unwrap_or(&listed.artifact_type)
    )
}

fn listed_from(fetched: &Fetched) -> Listed {
    let descriptor = &fetched.descriptor;
    let manifest = fetched.manifest.as_ref().ok();
    let annotation = |name: &str| {
        manifest
            .and_then(|m| annotation_of(m, name))
            .or_else(|| descriptor.annotation(name))
            .map(str::to_string)
    };
    Listed {
        manifest_digest: descriptor.digest.to_string(),
        format: if fetched.source == "cosign-att" {
            Some(StorageFormat::CosignLegacy.name().to_string())
        } else if fetched.source == "buildkit" {
            Some("buildkit".to_string())
        } else {
            manifest
                .and_then(StorageFormat::detect)
                .map(|f| f.name().to_string())
        },
        artifact_type: manifest
            .map(|m| m.effective_artifact_type().to_string())
            .or_else(|| descriptor.artifact_type.clone())
            .unwrap_or_default(),
        predicate_type: annotation(BUNDLE_PREDICATE_TYPE)
            .or_else(|| annotation(PREDICATE_TYPE))
            .or_else(|| annotation(cnb_referrers::format::INTOTO_PREDICATE_TYPE)),
        buildpack: annotation(annotations::BUILDPACK_ID),
        layer: annotation(annotations::LAYER_NAME),
        sbom_media_type: annotation(annotations::SBOM_MEDIA_TYPE),
        size: manifest
            .and_then(|m| m.layers.first())
            .map(|l| l.size)
            .unwrap_or(0),
        subjects: Vec::new(),
        problem: None,
        created: annotation(cnb_referrers::manifest::CREATED),
        signer: None,
    }
}

/// An attestation blob as read (bounded, digest-checked), shared between the referrers that list
/// the same blob: a blob is fetched and held once, whatever the number of referrers naming it.
/// Blobs over [`STREAM_READ_ABOVE`] bytes are held in a temporary file.
#[derive(Debug, Clone)]
pub enum Blob {
    /// Held in memory.
    Memory(std::sync::Arc<Vec<u8>>),
    /// Held in a temporary file ([`crate::spool`]).
    Spooled(Spooled),
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob::Memory(std::sync::Arc::new(bytes))
    }
}

impl Blob {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(bytes) => bytes.len() as u64,
            Blob::Spooled(spooled) => spooled.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its bytes, when held in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Blob::Memory(bytes) => Some(bytes),
            Blob::Spooled(_) => None,
        }
    }

    /// Whether both are the same read (one shared blob).
    pub fn same_read(&self, other: &Blob) -> bool {
        match (self, other) {
            (Blob::Memory(a), Blob::Memory(b)) => std::sync::Arc::ptr_eq(a, b),
            (Blob::Spooled(a), Blob::Spooled(b)) => a.same_file(b),
            _ => false,
        }
    }
}

/// The most attestation bytes read through temporary files for one image (charged from the
/// listed sizes before each read, as [`MAX_TOTAL_BLOB_BYTES`] is for blobs held in memory).
pub const MAX_TOTAL_SPOOLED_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The largest attestation blob read: [`MAX_STREAMED_ATTESTATION_BLOB`] (blobs over
/// [`STREAM_READ_ABOVE`] bytes are read through a temporary file; keyless bundles over
/// [`MAX_ATTESTATION_BLOB`](cnb_referrers::format::MAX_ATTESTATION_BLOB) are refused when
/// verified).
pub const MAX_BLOB: u64 = MAX_STREAMED_ATTESTATION_BLOB;

/// Why a referrer's manifest or blob is not there to verify: what callers branch on is
/// [`Unread::kind`]; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// What kind of reason.
    pub kind: UnreadKind,
    /// What happened, for people.
    pub message: String,
}

/// The kinds of [`Unread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnreadKind {
    /// The registry or the transport failed while it was fetched (a 5xx or other unexpected
    /// status, a refused or reset connection, a body cut short, the run's deadline): nothing is
    /// known of its content. Not a verification failure ([`Rule::FetchFailed`]).
    Fetch,
    /// What was read, or what the listing says of it, is wrong: missing although listed,
    /// malformed, over a size limit, not matching its digest or its descriptor.
    Content,
    /// Someone else's artifact, recognised from its listed descriptor (an image index, an
    /// artifact type no attestation has, a manifest over the size limit) or from its manifest (a
    /// layer in no format this tool reads): skipped, reported by listings, never verified, never
    /// blocking.
    Foreign,
}

impl Unread {
    /// A [`UnreadKind::Content`] reason.
    pub fn content(message: impl Into<String>) -> Self {
        Unread {
            kind: UnreadKind::Content,
            message: message.into(),
        }
    }

    /// A [`UnreadKind::Fetch`] reason.
    pub fn fetch(message: impl Into<String>) -> Self {
        Unread {
            kind: UnreadKind::Fetch,
            message: message.into(),
        }
    }

    /// A [`UnreadKind::Foreign`] reason.
    pub fn foreign(message: impl Into<String>) -> Self {
        Unread {
            kind: UnreadKind::Foreign,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A content problem (what stores other than registries report: a layout's missing or corrupt
/// blob).
impl From<String> for Unread {
    fn from(message: String) -> Self {
        Unread::content(message)
    }
}

/// A content problem (see the `String` conversion).
impl From<&str> for Unread {
    fn from(message: &str) -> Self {
        Unread::content(message)
    }
}

/// One referrer of an image as fetched from a store: its descriptor as listed, its manifest, and
/// its attestation blob (or why it could not be had). Listing and verification work on these, so
/// they are the same whatever the store.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The descriptor as listed (layout index, Referrers API or tag-schema index).
    pub descriptor: Descriptor,
    /// The referrer manifest, or why it is not there (not read: foreign; or unreadable although
    /// listed).
    pub manifest: Result<ImageManifest, Unread>,
    /// The attestation blob (bounded and digest-checked by the store, shared with every referrer
    /// naming the same blob), or the reason it is missing.
    pub layer: Result<Blob, Unread>,
    /// Where it was found: `referrer` (layout index, Referrers API, tag-schema index),
    /// `cosign-att` (a layer of cosign 2's `sha256-<hex>.att` manifest) or `buildkit` (a layer of a
    /// BuildKit attestation manifest in the image's index: a bare, unsigned statement) or
    /// `inventory` (listed by an export bundle's inventory but missing from the layout: always a
    /// failure).
    pub source: &'static str,
}

impl Fetched {
    /// Whether this is someone else's artifact (recognised from the listing, or from a manifest in
    /// no format this tool reads), not an attestation: listings show it, verification and
    /// restores ignore it.
    pub fn is_foreign(&self) -> bool {
        match &self.manifest {
            Ok(manifest) => StorageFormat::detect(manifest).is_none(),
            Err(unread) => unread.kind == UnreadKind::Foreign,
        }
    }
}

/// Why a referrer's layer is not fetched, or `None` when it should be.
pub(crate) fn skip_reason(manifest: &ImageManifest) -> Option<Unread> {
    if StorageFormat::detect(manifest).is_none() {
        return Some(Unread::foreign(format!(
            "not an attestation format this tool reads (artifactType {}, layer {})",
            manifest.effective_artifact_type(),
            manifest
                .layers
                .first()
                .map_or("none", |l| l.media_type.as_str())
        )));
    }
    let layer = &manifest.layers[0];
    (layer.size > MAX_BLOB).then(|| {
        Unread::content(format!(
            "attestation blob of {} bytes exceeds the {MAX_BLOB}-byte limit",
            layer.size
        ))
    })
}

/// Artifact types a referrer holding an attestation this tool reads may be listed with: the two
/// storage formats' own, and the config media types a manifest without `artifactType` is listed
/// by (the RFC's literal shape has an image config and no `artifactType`). Anything else is
/// another tool's artifact.
const ATTESTATION_ARTIFACT_TYPES: [&str; 6] = [
    cnb_referrers::format::BUNDLE_V03,
    cnb_referrers::format::DSSE_ENVELOPE,
    "application/vnd.oci.empty.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
    INTOTO_STATEMENT,
];

/// Whether a listed referrer is someone else's artifact, judged from its listed descriptor alone
/// so that it is never fetched: an image index (attestations are image manifests), any other
/// media type that is not an image manifest, an artifact type no attestation has, or a manifest
/// over the registry manifest limit that is not listed as an attestation. `None`: fetch it.
///
/// A descriptor listed as an attestation but over the manifest limit is not foreign: it is
/// unreadable ([`UnreadKind::Content`]), and reported as such, still without a request.
pub fn foreign_from_listing(descriptor: &Descriptor) -> Option<Unread> {
    use cnb_referrers::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
    let media_type = descriptor.media_type.as_str();
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Some(Unread::foreign(format!(
            "not an attestation format this tool reads (listed as {media_type}, not an image manifest; not fetched)"
        )));
    }
    let listed_as_attestation = descriptor.artifact_type.as_deref().is_some_and(|t| {
        t == cnb_referrers::format::BUNDLE_V03 || t == cnb_referrers::format::DSSE_ENVELOPE
    });
    if descriptor.size > cnb_referrers::layout::MAX_MANIFEST_SIZE {
        let too_large = format!(
            "listed manifest of {} bytes exceeds the {}-byte limit",
            descriptor.size,
            cnb_referrers::layout::MAX_MANIFEST_SIZE
        );
        return Some(if listed_as_attestation {
            Unread::content(too_large)
        } else {
            Unread::foreign(format!(
                "not an attestation format this tool reads ({too_large}; not fetched)"
            ))
        });
    }
    match descriptor.artifact_type.as_deref() {
        Some(t) if !ATTESTATION_ARTIFACT_TYPES.contains(&t) => Some(Unread::foreign(format!(
            "not an attestation format this tool reads (artifactType {t}; not fetched)"
        ))),
        _ => None,
    }
}

/// The listing with each digest once (its first entry): a registry listing one referrer a
/// thousand times gets it fetched, verified and counted once.
pub(crate) fn dedupe(listed: Vec<Descriptor>) -> Vec<Descriptor> {
    let mut seen = std::collections::HashSet::new();
    listed
        .into_iter()
        .filter(|d| seen.insert(d.digest.clone()))
        .collect()
}

/// The running total of bytes read for one image's attestations (referrer manifests and blobs),
/// charged from the listed size before each read, so that the [`MAX_TOTAL_BLOB_BYTES`] cap is
/// enforced before memory is used, not after.
#[derive(Debug)]
pub(crate) struct Budget {
    what: String,
    spent: u64,
    spooled: u64,
}

impl Budget {
    /// A budget for the attestations of `what` (the image, for messages).
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Budget {
            what: what.into(),
            spent: 0,
            spooled: 0,
        }
    }

    /// Charges `size` bytes about to be read through a temporary file for `item`; refuses
    /// (nothing read) when the run would go over [`MAX_TOTAL_SPOOLED_BYTES`].
    pub(crate) fn charge_spooled(&mut self, item: &str, size: u64) -> Result<(), Error> {
        let total = self.spooled.saturating_add(size);
        if total > MAX_TOTAL_SPOOLED_BYTES {
            return Err(Error::Malformed(format!(
                "{}: reading {item} ({size} bytes) would bring the attestations read through temporary files to {total} bytes, more than the {MAX_TOTAL_SPOOLED_BYTES} read for one image",
                self.what
            )));
        }
        self.spooled = total;
        Ok(())
    }

    /// Charges `size` bytes about to be read for `item`; refuses (nothing read) when the run
    /// would go over [`MAX_TOTAL_BLOB_BYTES`].
    pub(crate) fn charge(&mut self, item: &str, size: u64) -> Result<(), Error> {
        let total = self.spent.saturating_add(size);
        if total > MAX_TOTAL_BLOB_BYTES {
            return Err(Error::Malformed(format!(
                "{}: reading {item} ({size} bytes) would bring the attestations read to {total} bytes, more than the {MAX_TOTAL_BLOB_BYTES} read for one image",
                self.what
            )));
        }
        self.spent = total;
        Ok(())
    }

    /// After a read of `read` bytes charged as `charged`: what the listing understated is charged
    /// too (the read itself was bounded by the store's own limit).
    pub(crate) fn settle(&mut self, charged: u64, read: u64) {
        self.spent = self.spent.saturating_add(read.saturating_sub(charged));
    }
}

/// The blobs read in one run, by digest: each is read once, however many referrers name it.
/// Failures are remembered by digest and listed size.
#[derive(Debug, Default)]
pub(crate) struct Blobs {
    read: std::collections::HashMap<cnb_referrers::Digest, Blob>,
    failed: std::collections::HashMap<(cnb_referrers::Digest, u64), Unread>,
}

impl Blobs {
    /// The blob `layer` describes: from memory when it was read already, else through `read`
    /// (bounded by the listed size, charged to `budget` first). `Err` only when the budget is
    /// spent: the run stops there.
    pub(crate) fn get<E>(
        &mut self,
        layer: &Descriptor,
        budget: &mut Budget,
        read: impl FnOnce(u64) -> Result<Vec<u8>, E>,
        reason: impl FnOnce(E) -> Unread,
    ) -> Result<Result<Blob, Unread>, Error> {
        if let Some(known) = self.before_read(layer, budget)? {
            return Ok(known);
        }
        let result = read(layer.size).map(Blob::from).map_err(reason);
        Ok(self.remember(layer, result))
    }

    /// Before reading `layer`'s blob: what is already known of it (an earlier read, or a listed
    /// size over [`MAX_BLOB`]), or `None` when it is to be read, its listed size
    /// charged to `budget` (`Err` when the budget is spent).
    pub(crate) fn before_read(
        &mut self,
        layer: &Descriptor,
        budget: &mut Budget,
    ) -> Result<Option<Result<Blob, Unread>>, Error> {
        if let Some(cached) = self.cached(layer) {
            return Ok(Some(cached));
        }
        if layer.size > MAX_BLOB {
            return Ok(Some(Err(Unread::content(format!(
                "attestation blob of {} bytes exceeds the {MAX_BLOB}-byte limit",
                layer.size
            )))));
        }
        if layer.size > STREAM_READ_ABOVE {
            budget.charge_spooled(&format!("blob {}", layer.digest), layer.size)?;
        } else {
            budget.charge(&format!("blob {}", layer.digest), layer.size)?;
        }
        Ok(None)
    }

    /// What an earlier read of this blob gave, if any.
    fn cached(&self, layer: &Descriptor) -> Option<Result<Blob, Unread>> {
        if let Some(blob) = self.read.get(&layer.digest) {
            // The bytes match the digest; a descriptor giving another size is wrong about them.
            return Some(if blob.len() == layer.size {
                Ok(blob.clone())
            } else {
                Err(Unread::content(format!(
                    "blob {} is {} bytes but the manifest says {}",
                    layer.digest,
                    blob.len(),
                    layer.size
                )))
            });
        }
        self.failed
            .get(&(layer.digest.clone(), layer.size))
            .map(|u| Err(u.clone()))
    }

    /// Records the outcome of reading `layer`'s blob.
    pub(crate) fn remember(
        &mut self,
        layer: &Descriptor,
        result: Result<Blob, Unread>,
    ) -> Result<Blob, Unread> {
        match &result {
            Ok(blob) => {
                self.read.insert(layer.digest.clone(), blob.clone());
            }
            Err(unread) => {
                self.failed
                    .insert((layer.digest.clone(), layer.size), unread.clone());
            }
        }
        result
    }
}

/// Every referrer of `image` in `layout`, with its attestation blob.
pub fn fetch_layout(layout: &OciLayout, image: &Image) -> Result<Vec<Fetched>, Error> {
    fetch_layout_selected(layout, image, &|_| true)
}

/// cosign 2's `sha256-<hex>.att` tag holds one DSSE envelope per layer: `layer` presented as a
/// one-layer referrer manifest about `subject`, so listing and verification treat it like any
/// referrer (registries and layouts alike); `None` for a layer that is not a DSSE envelope.
pub(crate) fn cosign_att_layer(layer: &Descriptor, subject: &Descriptor) -> Option<ImageManifest> {
    (layer.media_type == cnb_referrers::format::DSSE_ENVELOPE).then(|| ImageManifest {
        schema_version: 2,
        media_type: None,
        artifact_type: Some(cnb_referrers::format::DSSE_ENVELOPE.into()),
        config: Descriptor::empty(),
        layers: vec![layer.clone()],
        subject: Some(subject.clone()),
        annotations: layer.annotations.clone(),
    })
}

/// Like [`fetch_layout`], reading the attestation blob only of referrers `select` accepts (from
/// their listed descriptor: annotations and artifact type, unsigned hints).
pub fn fetch_layout_selected(
    layout: &OciLayout,
    image: &Image,
    select: &dyn Fn(&Descriptor) -> bool,
) -> Result<Vec<Fetched>, Error> {
    let mut budget = Budget::new(format!(
        "{}@{}",
        layout.root().display(),
        image.descriptor.digest
    ));
    let mut blobs = Blobs::default();
    let mut read_blob = |layer: &Descriptor, budget: &mut Budget| {
        if layer.size <= STREAM_READ_ABOVE {
            return blobs.get(
                layer,
                budget,
                |max| layout.read_blob(&layer.digest, max),
                |e| Unread::content(e.to_string()),
            );
        }
        if let Some(known) = blobs.before_read(layer, budget)? {
            return Ok(known);
        }
        let result = spool_layout_blob(layout, layer).map(Blob::Spooled);
        Ok(blobs.remember(layer, result))
    };
    let mut buildkit = Vec::new();
    for manifest in layout.buildkit_attestations(&image.descriptor.digest)? {
        let bytes = layout
            .read_blob(&manifest.digest, cnb_referrers::layout::MAX_MANIFEST_SIZE)
            .map_err(|e| e.to_string());
        let mut layers = Vec::new();
        for layer in buildkit_layers(&bytes) {
            let blob = read_blob(&layer, &mut budget)?;
            layers.push((layer.digest, blob));
        }
        buildkit.extend(buildkit_entries(bytes, image, |layer| {
            layers
                .iter()
                .find(|(d, _)| *d == layer.digest)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| Err("not fetched".into()))
        }));
    }
    // `listed_referrers` reads each listed digest once.
    let listed = layout.listed_referrers(&image.descriptor.digest)?;
    if listed.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{} referrers listed: more than the {MAX_REFERRERS} read for one image",
            listed.len()
        )));
    }
    let mut referrers = Vec::new();
    for (descriptor, manifest) in listed.into_iter().filter(|(d, _)| select(d)) {
        let manifest = manifest.map_err(Unread::content);
        let layer = match &manifest {
            Err(problem) => Err(problem.clone()),
            Ok(manifest) => match skip_reason(manifest) {
                Some(reason) => Err(reason),
                None => read_blob(&manifest.layers[0], &mut budget)?,
            },
        };
        referrers.push(Fetched {
            descriptor,
            manifest,
            layer,
            source: "referrer",
        });
    }
    // cosign 2's tag in a layout: an `index.json` entry named `sha256-<hex>.att` (as `export`
    // lists it); each DSSE layer is presented as a one-layer manifest, as the registry reader does.
    let tag = format!("{}.att", image.descriptor.digest.fallback_tag());
    let mut att = Vec::new();
    for entry in layout.index()?.manifests {
        if entry.annotation(cnb_referrers::manifest::REF_NAME) != Some(tag.as_str()) {
            continue;
        }
        let read = if entry.size > cnb_referrers::layout::MAX_MANIFEST_SIZE {
            Err(format!(
                "{tag}: manifest of {} bytes is over the limit",
                entry.size
            ))
        } else {
            layout
                .read_blob(&entry.digest, cnb_referrers::layout::MAX_MANIFEST_SIZE)
                .and_then(|b| ImageManifest::from_json(&b))
                .map_err(|e| format!("{tag}: {e}"))
        };
        let tag_manifest = match read {
            Ok(m) => m,
            Err(problem) => {
                att.push(Fetched {
                    descriptor: entry,
                    manifest: Err(Unread::content(problem.clone())),
                    layer: Err(Unread::content(problem)),
                    source: "cosign-att",
                });
                continue;
            }
        };
        for layer in dedupe(tag_manifest.layers) {
            let Some(manifest) = cosign_att_layer(&layer, &image.descriptor) else {
                continue;
            };
            if !select(&layer) {
                continue;
            }
            let blob = read_blob(&layer, &mut budget)?;
            att.push(Fetched {
                descriptor: layer,
                manifest: Ok(manifest),
                layer: blob,
                source: "cosign-att",
            });
        }
    }
    // An export bundle's inventory: a referrer or cosign tag it lists about this image that
    // `index.json` no longer lists is reported as unreadable (verification fails naming it), never
    // silently absent. Deleted blobs of listed ones already fail as unreadable above.
    let mut lost = Vec::new();
    if let Some(inventory) = cnb_referrers::inventory::Inventory::read(layout)? {
        // A listed referrer the inventory knows, unreadable (its manifest or blob deleted or
        // changed): the message says so, with its kind and subject.
        for fetched in referrers.iter_mut().chain(att.iter_mut()) {
            let Some(entry) = inventory
                .entries
                .iter()
                .find(|e| e.digest == fetched.descriptor.digest)
            else {
                continue;
            };
            let subject = entry
                .subject
                .as_ref()
                .map(|s| format!(" (subject {s})"))
                .unwrap_or_default();
            for unread in [
                fetched.manifest.as_mut().err(),
                fetched.layer.as_mut().err(),
            ]
            .into_iter()
            .flatten()
            {
                if unread.kind == UnreadKind::Content {
                    unread.message = format!(
                        "damaged in the bundle: the export inventory lists {} {}{subject}: {}",
                        entry.kind, entry.digest, unread.message
                    );
                }
            }
        }
        let listed = cnb_referrers::inventory::listed_in_index(layout)?;
        for missing in inventory.unlisted_about(&image.descriptor.digest, &listed) {
            let Some(entry) = inventory
                .entries
                .iter()
                .find(|e| e.digest == missing.digest)
            else {
                continue;
            };
            let problem = format!("missing from the bundle: the export inventory lists {missing}");
            lost.push(Fetched {
                descriptor: Descriptor {
                    media_type: entry.media_type.clone(),
                    digest: entry.digest.clone(),
                    size: entry.size,
                    artifact_type: entry.artifact_type.clone(),
                    annotations: None,
                    platform: None,
                },
                manifest: Err(Unread::content(problem.clone())),
                layer: Err(Unread::content(problem)),
                source: "inventory",
            });
        }
    }
    let all: Vec<Fetched> = referrers
        .into_iter()
        .chain(att)
        .chain(buildkit)
        .chain(lost)
        .collect();
    within_limits(&all)?;
    Ok(all)
}

/// Copies a layout blob over [`STREAM_READ_ABOVE`] bytes into a temporary file, bounded by its
/// listed size and checked against its digest as it is copied (what is verified is the copy, which
/// nothing else writes).
fn spool_layout_blob(layout: &OciLayout, layer: &Descriptor) -> Result<Spooled, Unread> {
    let path = layout.blob_path(&layer.digest);
    let shown = |e: std::io::Error| Unread::content(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(&path).map_err(shown)?;
    let spooled = Spooled::copy_from(&mut file, layer.size.min(MAX_BLOB)).map_err(shown)?;
    let actual = format!("sha256:{}", hex::encode(spooled.sha256()));
    if layer.digest.algorithm() != "sha256" || actual != layer.digest.to_string() {
        return Err(Unread::content(format!(
            "{}: content does not match digest {}",
            path.display(),
            layer.digest
        )));
    }
    Ok(spooled)
}

/// Most referrers read for one image (distinct digests), and most attestation bytes (referrer
/// manifests and distinct blobs, charged from their listed sizes before they are read) for one
/// run: a registry that lists endless referrers, or many pointing at huge blobs, is refused before
/// memory runs out.
pub const MAX_REFERRERS: usize = 1024;
/// See [`MAX_REFERRERS`].
pub const MAX_TOTAL_BLOB_BYTES: u64 = 512 * 1024 * 1024;

/// Enforces [`MAX_REFERRERS`] over what was fetched (the byte cap is enforced before each read, by
/// [`Budget`]).
pub(crate) fn within_limits(fetched: &[Fetched]) -> Result<(), Error> {
    if fetched.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{} referrers listed: more than the {MAX_REFERRERS} read for one image",
            fetched.len()
        )));
    }
    Ok(())
}

/// BuildKit's layer media type: a bare, unsigned in-toto statement.
pub(crate) const INTOTO_STATEMENT: &str = "application/vnd.in-toto+json";

/// The in-toto layers of a BuildKit attestation manifest (none when it cannot be read or parsed).
pub(crate) fn buildkit_layers(manifest_bytes: &Result<Vec<u8>, String>) -> Vec<Descriptor> {
    manifest_bytes
        .as_ref()
        .ok()
        .and_then(|b| ImageManifest::from_json(b).ok())
        .map(|m| {
            m.layers
                .into_iter()
                .filter(|l| l.media_type == INTOTO_STATEMENT)
                .collect()
        })
        .unwrap_or_default()
}

/// One entry per in-toto layer of a BuildKit attestation manifest, presented as a one-layer
/// manifest about `image`; `blob` gives a layer's blob (bounded, digest-checked, read once).
pub(crate) fn buildkit_entries(
    manifest_bytes: Result<Vec<u8>, String>,
    image: &Image,
    mut blob: impl FnMut(&Descriptor) -> Result<Blob, Unread>,
) -> Vec<Fetched> {
    buildkit_layers(&manifest_bytes)
        .into_iter()
        .map(|layer| Fetched {
            manifest: Ok(ImageManifest {
                schema_version: 2,
                media_type: None,
                artifact_type: Some(INTOTO_STATEMENT.into()),
                config: Descriptor::empty(),
                layers: vec![layer.clone()],
                subject: Some(image.descriptor.clone()),
                annotations: layer.annotations.clone(),
            }),
            layer: blob(&layer),
            descriptor: layer,
            source: "buildkit",
        })
        .collect()
}

/// The failure for a manifest or blob that is not there: [`Rule::FetchFailed`] when the registry
/// or the transport failed, else `rule`.
fn unread_failure(problem: &Unread, rule: Rule) -> Failure {
    match problem.kind {
        UnreadKind::Fetch => Failure::new(
            Rule::FetchFailed,
            format!("{FETCH_FAILED}: {}", problem.message),
        ),
        _ => Failure::new(rule, problem.message.clone()),
    }
}

/// The start of every [`Rule::FetchFailed`] message.
pub const FETCH_FAILED: &str = "could not be read from the registry";

/// A fetched referrer's storage format and blob, or why it has none.
fn blob_of(fetched: &Fetched) -> Result<(StorageFormat, &Blob), Failure> {
    let manifest = fetched
        .manifest
        .as_ref()
        .map_err(|problem| unread_failure(problem, Rule::UnreadableReferrer))?;
    let format = StorageFormat::detect(manifest).ok_or_else(|| {
        Failure::new(
            Rule::UnknownFormat,
            "not an attestation format this tool reads",
        )
    })?;
    let blob = fetched
        .layer
        .as_ref()
        .map_err(|problem| unread_failure(problem, Rule::Blob))?;
    Ok((format, blob))
}

/// Decodes an envelope held in memory and its bundle's verification material (nothing verified).
fn stored_of(format: StorageFormat, bytes: &[u8]) -> Result<StoredEnvelope, Failure> {
    let stored =
        decode_layer(format, bytes).map_err(|e| Failure::new(Rule::Undecodable, e.to_string()))?;
    check_payload_type(&stored)?;
    Ok(stored)
}

/// An envelope must carry an in-toto statement.
pub(crate) fn check_payload_type(stored: &StoredEnvelope) -> Result<(), Failure> {
    if stored.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Failure::new(
            Rule::PayloadType,
            format!(
                "DSSE payloadType is `{}`, expected `{IN_TOTO_PAYLOAD_TYPE}`",
                stored.envelope.payload_type
            ),
        ));
    }
    Ok(())
}

fn parse_statement(envelope: &cnb_dsse::Envelope) -> Result<Statement, Failure> {
    Statement::from_json(&envelope.payload)
        .map_err(|e| Failure::new(Rule::Statement, e.to_string()))
}

/// A verified statement, with its predicate held in the statement or, for an attestation read
/// through a temporary file, in a temporary file of its own.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The statement. When [`Verified::spooled`] is set, its predicate is `{}`: the predicate's
    /// bytes are in that file.
    pub statement: Statement,
    /// The predicate's exact bytes, for an attestation read through a temporary file.
    pub spooled: Option<Spooled>,
}

impl Verified {
    /// SHA-256 of the predicate's exact bytes.
    pub fn predicate_sha256(&self) -> [u8; 32] {
        match &self.spooled {
            Some(spooled) => spooled.sha256(),
            None => Sha256::digest(self.statement.predicate()).into(),
        }
    }

    /// The statement with its predicate, read into memory from its temporary file when it has
    /// one (for callers that need the bytes, such as a rebase re-signing them).
    pub fn into_statement(self) -> Result<Statement, Failure> {
        let Some(spooled) = self.spooled else {
            return Ok(self.statement);
        };
        let failure = |e: String| Failure::new(Rule::Statement, e);
        let predicate = spooled
            .read_all()
            .map_err(|e| failure(format!("reading the predicate: {e}")))?;
        Statement::new(
            self.statement.version(),
            self.statement.subjects().to_vec(),
            self.statement.predicate_type(),
            predicate,
        )
        .map_err(|e| failure(e.to_string()))
    }
}

/// Decodes and (with `trust`) verifies a fetched referrer's blob and reads its statement; without
/// `trust` nothing is verified (listings). Nothing unsigned is interpreted when verifying: the
/// signature is checked before the payload is parsed.
fn read_statement(
    fetched: &Fetched,
    trust: Option<&Trust>,
    signer: &mut Option<String>,
) -> Result<Verified, Failure> {
    let (format, blob) = blob_of(fetched)?;
    let in_memory = |bytes: &[u8], signer: &mut Option<String>| {
        let stored = stored_of(format, bytes)?;
        if let Some(trust) = trust {
            *signer = trust.verify(&stored)?;
        }
        Ok(Verified {
            statement: parse_statement(&stored.envelope)?,
            spooled: None,
        })
    };
    match blob {
        Blob::Memory(bytes) => in_memory(bytes, signer),
        Blob::Spooled(spooled) => {
            let within_memory_limit = spooled.len() <= cnb_referrers::format::MAX_ATTESTATION_BLOB;
            match read_spooled(format, spooled, trust, signer) {
                Ok(Some(verified)) => Ok(verified),
                // A blob the in-memory path would take gets its verdict, whatever the streamed
                // path's own limits refuse (a large string outside the payload, a large hollow
                // document) or cannot do (keyless verification).
                Ok(None) | Err(_) if within_memory_limit => {
                    let bytes = spooled.read_all().map_err(|e| {
                        Failure::new(
                            Rule::Undecodable,
                            format!("reading the attestation blob: {e}"),
                        )
                    })?;
                    *signer = None;
                    in_memory(&bytes, signer)
                }
                Ok(None) => Err(Failure::new(
                    Rule::Keyless,
                    "keyless bundle over the in-memory limit",
                )),
                Err(failure) => Err(failure),
            }
        }
    }
}

/// The streamed path of [`read_statement`]: `Ok(None)` for a keyless bundle within the in-memory
/// limit, which is verified in memory as it always was (its transparency-log entry binds the
/// whole envelope).
fn read_spooled(
    format: StorageFormat,
    spooled: &Spooled,
    trust: Option<&Trust>,
    signer: &mut Option<String>,
) -> Result<Option<Verified>, Failure> {
    let opened = crate::spool::open(format, spooled)?;
    if crate::trust::is_keyless(&opened.stored)
        && spooled.len() <= cnb_referrers::format::MAX_ATTESTATION_BLOB
    {
        return Ok(None);
    }
    if let Some(trust) = trust {
        *signer = trust.verify_prehashed(&opened.stored, &opened.pae_sha256, spooled.len())?;
    }
    let (statement, predicate) = crate::spool::statement(&opened)?;
    Ok(Some(Verified {
        statement,
        spooled: Some(predicate),
    }))
}

fn subject_text(subject: &Subject) -> String {
    match subject.sha256_digest() {
        Some(d) => format!("{}@{d}", subject.name),
        None => subject.name.clone(),
    }
}

/// Lists fetched referrers, decoding what can be decoded (nothing is verified).
pub fn list(fetched: &[Fetched]) -> Vec<Listed> {
    fetched
        .iter()
        .map(|f| {
            let mut listed = listed_from(f);
            if f.source == "buildkit" {
                match f
                    .layer
                    .as_ref()
                    .map_err(|u| u.message.clone())
                    .and_then(|b| match b {
                        Blob::Memory(bytes) => Ok(bytes.to_vec()),
                        // Spooled by size alone; a bare statement within the in-memory limit is
                        // read back as it was read before blobs were spooled.
                        Blob::Spooled(s)
                            if s.len() <= cnb_referrers::format::MAX_ATTESTATION_BLOB =>
                        {
                            s.read_all().map_err(|e| format!("BuildKit statement: {e}"))
                        }
                        Blob::Spooled(s) => Err(format!(
                            "BuildKit statement of {} bytes: over the {}-byte \
                             limit for unsigned statements",
                            s.len(),
                            cnb_referrers::format::MAX_ATTESTATION_BLOB
                        )),
                    })
                    .and_then(|b| Statement::from_json(&b).map_err(|e| e.to_string()))
                {
                    Ok(statement) => {
                        listed.predicate_type = Some(statement.predicate_type().to_string());
                        listed.subjects = statement.subjects().iter().map(subject_text).collect();
                        listed.problem =
                            Some("unsigned: BuildKit attestations carry no signature".into());
                    }
                    Err(problem) => listed.problem = Some(problem),
                }
                return listed;
            }
            if let Err(Unread {
                kind: UnreadKind::Foreign,
                message,
            }) = &f.manifest
            {
                listed.problem = Some(message.clone());
                return listed;
            }
            match read_statement(f, None, &mut None).map(|v| v.statement) {
                Ok(statement) => {
                    listed.predicate_type = Some(statement.predicate_type().to_string());
                    listed.subjects = statement.subjects().iter().map(subject_text).collect();
                }
                Err(failure) => listed.problem = Some(failure.message),
            }
            listed
        })
        .collect()
}

/// Verifies every fetched referrer in a format this tool reads. Referrers in other formats are left
/// out (they are someone else's); an empty result means there was nothing to verify. A referrer
/// counts as signed when any of `keys` verifies it (key rotation, several signers).
pub fn verify(image: &Image, fetched: &[Fetched], trust: &Trust) -> Vec<Verdict> {
    verify_each(image, fetched, trust)
        .into_iter()
        .map(|(verdict, _)| verdict)
        .collect()
}

/// Like [`verify`], also returning each verified statement (`None` when verification failed).
pub fn verify_each(
    image: &Image,
    fetched: &[Fetched],
    trust: &Trust,
) -> Vec<(Verdict, Option<Verified>)> {
    verify_results(image, fetched, trust)
        .into_iter()
        .map(|(listed, result)| match result {
            Ok(statement) => (
                Verdict {
                    listed,
                    failure: None,
                },
                Some(statement),
            ),
            Err(failure) => (
                Verdict {
                    listed,
                    failure: Some(failure),
                },
                None,
            ),
        })
        .collect()
}

/// Verifies every fetched referrer in a format this tool reads: what is stored, and the verified
/// statement or the rule it failed.
pub(crate) fn verify_results(
    image: &Image,
    fetched: &[Fetched],
    trust: &Trust,
) -> Vec<(Listed, Result<Verified, Failure>)> {
    let mut out = Vec::new();
    for f in fetched {
        let manifest = match &f.manifest {
            // Someone else's artifacts: not verified, never blocking (listings show them).
            Ok(m) if StorageFormat::detect(m).is_none() => continue,
            Err(Unread {
                kind: UnreadKind::Foreign,
                ..
            }) => continue,
            Ok(m) => m,
            Err(problem) => {
                let failure = match problem.kind {
                    UnreadKind::Fetch => unread_failure(problem, Rule::UnreadableReferrer),
                    _ => Failure::new(
                        Rule::UnreadableReferrer,
                        format!("listed referrer cannot be read: {problem}"),
                    ),
                };
                out.push((listed_from(f), Err(failure)));
                continue;
            }
        };
        let mut listed = listed_from(f);
        let annotated_type = listed.predicate_type.clone();
        // The signature is checked before the payload is parsed: nothing unsigned is interpreted.
        let verified = read_statement(f, Some(trust), &mut listed.signer);
        let result = verified.and_then(|verified| {
            let statement = &verified.statement;
            listed.subjects = statement.subjects().iter().map(subject_text).collect();
            listed.predicate_type = Some(statement.predicate_type().to_string());
            check(
                image,
                manifest,
                statement,
                &verified.predicate_sha256(),
                annotated_type.as_deref(),
            )
            .map(|()| verified)
        });
        out.push((listed, result));
    }
    out
}

/// Lists every referrer of `image` stored in `layout`.
pub fn list_layout(layout: &OciLayout, image: &Image) -> Result<Vec<Listed>, Error> {
    Ok(list(&fetch_layout(layout, image)?))
}

/// Verifies every referrer of `image` stored in `layout` (see [`verify`]).
pub fn verify_layout(
    layout: &OciLayout,
    image: &Image,
    trust: &Trust,
) -> Result<Vec<Verdict>, Error> {
    Ok(verify(image, &fetch_layout(layout, image)?, trust))
}

/// The checks on a statement whose signature verified.
fn check(
    image: &Image,
    manifest: &ImageManifest,
    statement: &Statement,
    predicate_sha256: &[u8; 32],
    annotated_predicate_type: Option<&str>,
) -> Result<(), Failure> {
    if let Some(annotated) = annotated_predicate_type {
        if annotated != statement.predicate_type() {
            return Err(Failure::new(
                Rule::PredicateType,
                format!(
                    "manifest says predicate type `{annotated}` but the signed statement says `{}`",
                    statement.predicate_type()
                ),
            ));
        }
    }
    use cnb_intoto::subjects::{check as subject_rule, ImageSubject, SubjectError, SubjectRole};
    let subjects = statement.subjects();
    // A layer subject names a layer by its diffID or by its compressed digest in the image
    // manifest (the RFC says "layer digest" without saying which).
    let layer_digests: Vec<String> = image
        .config
        .diff_ids
        .iter()
        .cloned()
        .chain(image.manifest.layers.iter().map(|l| l.digest.to_string()))
        .collect();
    let roles = subject_rule(
        subjects
            .iter()
            .map(|s| (s.name.as_str(), s.digest.get("sha256").map(String::as_str))),
        image.descriptor.digest.hex(),
        Some(&layer_digests),
        // Liberal on shape: the RFC's layer-scoped statements name only their layer.
        ImageSubject::Optional,
    )
    .map_err(|e| match e {
        SubjectError::NoSha256 { name } => Failure::new(
            Rule::SubjectWithoutSha256,
            format!("subject `{name}` has no sha256 digest"),
        ),
        SubjectError::Foreign { name, diff_id } => Failure::new(
            Rule::ForeignSubject,
            format!(
                "subject `{name}` ({diff_id}) is neither this image ({}) nor one of its layers",
                image.descriptor.digest
            ),
        ),
        SubjectError::NoImage => Failure::new(
            Rule::NoImageSubject,
            format!(
                "no subject is this image's digest {}",
                image.descriptor.digest
            ),
        ),
    })?;
    if let (Some(bp), Some(layer)) = (
        annotation_of(manifest, annotations::BUILDPACK_ID),
        annotation_of(manifest, annotations::LAYER_NAME),
    ) {
        for (subject, _) in subjects
            .iter()
            .zip(roles)
            .filter(|(_, role)| *role == SubjectRole::Layer)
        {
            // `<bp-id>:<layer>`, or the RFC's bare `<layer>` (whose buildpack comes from the label).
            if subject.name != format!("{bp}:{layer}") && subject.name != layer {
                return Err(Failure::new(
                    Rule::LayerAnnotation,
                    format!(
                        "manifest annotations name layer `{bp}:{layer}` but the signed subject is `{}`",
                        subject.name
                    ),
                ));
            }
        }
    }
    if let Some(annotated) = annotation_of(manifest, annotations::SBOM_DIGEST) {
        let actual = format!("sha256:{}", hex::encode(predicate_sha256));
        if annotated != actual {
            return Err(Failure::new(
                Rule::SbomDigest,
                format!(
                    "manifest says SBOM digest {annotated} but the signed predicate has {actual}"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    //! One test per verification rule, on referrers built in memory, and the JSON shape of a
    //! verdict. The fixtures are shared with `select`'s tests.

    use std::collections::BTreeMap;

    use cnb_dsse::{Envelope, SigningKey};
    use cnb_intoto::StatementVersion;
    use cnb_referrers::format::{build_referrer, ReferrerParts};
    use cnb_referrers::manifest::OCI_MANIFEST;
    use cnb_referrers::ImageConfig;

    use super::*;

    /// The run's budgets refuse the read that would go over them, naming it, and charge nothing
    /// for it: what fits exactly is still taken.
    #[test]
    fn the_read_budgets_refuse_past_their_totals() {
        let mut budget = Budget::new("img");
        budget
            .charge_spooled("first", MAX_TOTAL_SPOOLED_BYTES - 1)
            .unwrap();
        let e = budget.charge_spooled("second", 2).unwrap_err().to_string();
        assert!(
            e.contains("second (2 bytes)") && e.starts_with("img: "),
            "{e}"
        );
        budget.charge_spooled("third", 1).unwrap();
        assert!(budget.charge_spooled("fourth", 1).is_err());

        budget.charge("a", MAX_TOTAL_BLOB_BYTES).unwrap();
        let e = budget.charge("b", 1).unwrap_err().to_string();
        assert!(e.contains("b (1 bytes)"), "{e}");
    }

    /// sha256 hex of `bytes`.
    pub(crate) fn hex_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// The diffID hex of the image's one buildpack layer.
    pub(crate) fn layer_hex() -> String {
        hex_of(b"the modules layer")
    }

    /// A subject with a sha256 digest.
    pub(crate) fn subject(name: &str, hex: &str) -> Subject {
        Subject::sha256(name, hex).unwrap()
    }

    /// A v1 statement.
    pub(crate) fn statement(
        subjects: Vec<Subject>,
        predicate_type: &str,
        predicate: &str,
    ) -> Statement {
        Statement::new(
            StatementVersion::V1,
            subjects,
            predicate_type,
            predicate.as_bytes().to_vec(),
        )
        .unwrap()
    }

    /// An image with one layer ([`layer_hex`]) and a signing key.
    pub(crate) struct Fixture {
        pub(crate) key: SigningKey,
        pub(crate) image: Image,
    }

    impl Fixture {
        pub(crate) fn new() -> Self {
            Fixture {
                key: SigningKey::generate().unwrap(),
                image: Image {
                    descriptor: Descriptor::for_bytes(OCI_MANIFEST, b"{\"the\":\"image\"}"),
                    manifest: ImageManifest {
                        schema_version: 2,
                        media_type: Some(OCI_MANIFEST.into()),
                        artifact_type: None,
                        config: Descriptor::empty(),
                        layers: Vec::new(),
                        subject: None,
                        annotations: None,
                    },
                    config: ImageConfig {
                        labels: BTreeMap::new(),
                        diff_ids: vec![format!("sha256:{}", layer_hex())],
                        platform: None,
                    },
                    buildkit: Vec::new(),
                    index: None,
                },
            }
        }

        pub(crate) fn key(&self) -> cnb_dsse::VerifyingKey {
            self.key.verifying_key()
        }

        pub(crate) fn image_hex(&self) -> String {
            self.image.descriptor.digest.hex().to_string()
        }

        /// The image subject, named as the signer names it.
        pub(crate) fn image_subject(&self) -> Subject {
            subject("example.com/app", &self.image_hex())
        }

        /// A bare-DSSE referrer holding `envelope`, annotated with `predicate_type` and
        /// `annotations` (and `created`, when given).
        pub(crate) fn referrer(
            &self,
            envelope: &Envelope,
            predicate_type: &str,
            annotations: &[(&str, &str)],
            created: Option<&str>,
        ) -> Fetched {
            let annotations: BTreeMap<String, String> = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let referrer = build_referrer(
                StorageFormat::Dsse,
                envelope,
                &ReferrerParts {
                    subject: &self.image.descriptor,
                    predicate_type,
                    annotations: &annotations,
                    key_hint: "",
                    verification_material: None,
                    created,
                },
            );
            Fetched {
                descriptor: referrer.descriptor,
                manifest: Ok(referrer.manifest),
                layer: Ok(referrer.blobs[1]
                    .1
                    .as_bytes()
                    .expect("in memory")
                    .to_vec()
                    .into()),
                source: "referrer",
            }
        }

        /// `statement` signed with the fixture's key, in a referrer annotated with its predicate
        /// type and `annotations`.
        pub(crate) fn attest(
            &self,
            statement: &Statement,
            annotations: &[(&str, &str)],
        ) -> Fetched {
            self.attest_at(statement, annotations, None)
        }

        /// Like [`Fixture::attest`], with a `created` annotation.
        pub(crate) fn attest_at(
            &self,
            statement: &Statement,
            annotations: &[(&str, &str)],
            created: Option<&str>,
        ) -> Fetched {
            let envelope =
                Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &self.key).unwrap();
            self.referrer(&envelope, statement.predicate_type(), annotations, created)
        }

        /// A valid statement about the image and its layer.
        pub(crate) fn layer_statement(&self) -> Statement {
            statement(
                vec![
                    self.image_subject(),
                    subject("example/node:modules", &layer_hex()),
                ],
                "https://cyclonedx.org/bom",
                r#"{"bomFormat":"CycloneDX"}"#,
            )
        }

        /// The one verdict on `fetched`.
        pub(crate) fn verdict(&self, fetched: Fetched) -> Verdict {
            let mut verdicts = verify(&self.image, &[fetched], &Trust::keys(&[self.key()]));
            assert_eq!(verdicts.len(), 1);
            verdicts.remove(0)
        }

        /// The rule `fetched` fails.
        fn rule(&self, fetched: Fetched) -> Rule {
            let verdict = self.verdict(fetched);
            let name = verdict.name();
            verdict
                .failure
                .unwrap_or_else(|| panic!("{name} verified"))
                .rule
        }
    }

    /// `fetched` with its blob in a temporary file, as blobs over [`STREAM_READ_ABOVE`] are read.
    fn spooled(fetched: &Fetched) -> Fetched {
        let mut spooled = fetched.clone();
        if let Ok(blob) = &fetched.layer {
            let bytes = blob.as_bytes().expect("in memory").to_vec();
            spooled.layer = Ok(Blob::Spooled(
                Spooled::copy_from(&mut bytes.as_slice(), MAX_BLOB).unwrap(),
            ));
        }
        spooled
    }

    /// `fetched` with its blob's text edited by `edit`.
    fn edited(fetched: &Fetched, edit: impl Fn(String) -> String) -> Fetched {
        let mut out = fetched.clone();
        let text = String::from_utf8(fetched.layer.as_ref().unwrap().as_bytes().unwrap().to_vec());
        out.layer = Ok(edit(text.unwrap()).into_bytes().into());
        out
    }

    #[test]
    fn streamed_and_in_memory_verification_give_the_same_verdicts() {
        let f = Fixture::new();
        let sign = |payload_type: &str, payload: &[u8], key: &SigningKey| {
            let envelope = Envelope::sign(payload_type, payload.to_vec(), key).unwrap();
            f.referrer(&envelope, "https://cyclonedx.org/bom", &[], None)
        };
        let good_statement = f.layer_statement();
        let good = f.attest(&good_statement, &[]);
        let json = String::from_utf8(good_statement.to_json()).unwrap();
        let other = SigningKey::generate().unwrap();
        let with_predicate =
            |predicate: &str| json.replace(r#""predicate":{"bomFormat":"CycloneDX"}"#, predicate);
        let right_digest = format!("sha256:{}", hex_of(good_statement.predicate()));
        let wrong_digest = format!("sha256:{}", hex_of(b"other"));
        let cases: Vec<(&str, Fetched)> = vec![
            ("good", good.clone()),
            (
                "good, SBOM digest annotated",
                f.attest(
                    &good_statement,
                    &[(annotations::SBOM_DIGEST, &right_digest)],
                ),
            ),
            (
                "wrong SBOM digest",
                f.attest(
                    &good_statement,
                    &[(annotations::SBOM_DIGEST, &wrong_digest)],
                ),
            ),
            (
                "another key",
                sign(IN_TOTO_PAYLOAD_TYPE, json.as_bytes(), &other),
            ),
            ("text/plain", sign("text/plain", json.as_bytes(), &f.key)),
            ("no statement", sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &f.key)),
            (
                "whitespace around the predicate",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    with_predicate("\"predicate\" : \n {\"bomFormat\":\"CycloneDX\"} \t")
                        .as_bytes(),
                    &f.key,
                ),
            ),
            (
                "a predicate that is not an object",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    with_predicate(r#""predicate":"CycloneDX""#).as_bytes(),
                    &f.key,
                ),
            ),
            (
                "a predicate that is not JSON",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    with_predicate(r#""predicate":{"a":1e400}"#).as_bytes(),
                    &f.key,
                ),
            ),
            (
                "two predicates",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    with_predicate(r#""predicate":{},"predicate":{"bomFormat":"CycloneDX"}"#)
                        .as_bytes(),
                    &f.key,
                ),
            ),
            (
                "Predicate",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    with_predicate(r#""Predicate":{},"predicate":{"bomFormat":"CycloneDX"}"#)
                        .as_bytes(),
                    &f.key,
                ),
            ),
            (
                "garbage after the statement",
                sign(IN_TOTO_PAYLOAD_TYPE, format!("{json}x").as_bytes(), &f.key),
            ),
            (
                "a statement cut short",
                sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    &json.as_bytes()[..json.len() - 1],
                    &f.key,
                ),
            ),
            (
                "two payloads",
                edited(&good, |t| {
                    t.replacen("\"payload\":", "\"payload\":\"e30=\",\"payload\":", 1)
                }),
            ),
            (
                "PayloadType",
                edited(&good, |t| {
                    t.replacen("\"payloadType\":", "\"PayloadType\":", 1)
                }),
            ),
            (
                "garbage after the envelope",
                edited(&good, |t| format!("{t} x")),
            ),
            (
                "mixed base64 alphabets",
                edited(&good, |t| {
                    let start = t.find("\"payload\":\"").unwrap() + 11;
                    let mut t = t.into_bytes();
                    t[start] = b'-';
                    t[start + 4] = b'+';
                    String::from_utf8(t).unwrap()
                }),
            ),
            ("URL-safe base64", {
                let envelope =
                    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, json.clone().into_bytes(), &f.key)
                        .unwrap();
                let fetched = f.referrer(&envelope, "https://cyclonedx.org/bom", &[], None);
                let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.as_bytes());
                let standard = base64::engine::general_purpose::STANDARD.encode(json.as_bytes());
                edited(&fetched, |t| t.replacen(&standard, &url, 1))
            }),
            (
                "a tampered payload",
                edited(&good, |t| {
                    let standard =
                        base64::engine::general_purpose::STANDARD.encode(json.as_bytes());
                    let tampered = base64::engine::general_purpose::STANDARD
                        .encode(json.replace("CycloneDX", "CycloneDY").as_bytes());
                    t.replacen(&standard, &tampered, 1)
                }),
            ),
        ];
        use base64::Engine as _;
        let trust = Trust::keys(&[f.key()]);
        let mut verified = 0;
        for (name, fetched) in cases {
            // The streamed path alone (no in-memory fallback), on what it decides: decoding, the
            // signature, the statement.
            let memory = read_statement(&fetched, Some(&trust), &mut None);
            let Ok(Blob::Spooled(file)) = &spooled(&fetched).layer else {
                panic!("{name}: not spooled");
            };
            let (format, _) = blob_of(&fetched).unwrap();
            let alone = read_spooled(format, file, Some(&trust), &mut None);
            match (&memory, &alone) {
                (Ok(m), Ok(Some(s))) => {
                    assert_eq!(m.predicate_sha256(), s.predicate_sha256(), "{name}")
                }
                (Err(m), Err(s)) => assert_eq!(m.rule, s.rule, "{name}: {m} / {s}"),
                (m, s) => panic!("{name}: in memory {m:?}, streamed alone {s:?}"),
            }
            // And the whole verification, fallback included.
            let whole = verify_results(&f.image, std::slice::from_ref(&fetched), &trust);
            let streamed = verify_results(&f.image, &[spooled(&fetched)], &trust);
            assert_eq!(whole.len(), 1, "{name}");
            assert_eq!(streamed.len(), 1, "{name}");
            match (&whole[0].1, &streamed[0].1) {
                (Ok(w), Ok(s)) => {
                    verified += 1;
                    assert!(s.spooled.is_some(), "{name}");
                    assert_eq!(w.predicate_sha256(), s.predicate_sha256(), "{name}");
                    assert_eq!(w.statement, s.clone().into_statement().unwrap(), "{name}");
                    assert_eq!(whole[0].0.subjects, streamed[0].0.subjects, "{name}");
                }
                (Err(w), Err(s)) => assert_eq!(w.rule, s.rule, "{name}: {w} / {s}"),
                (w, s) => panic!("{name}: in memory {w:?}, streamed {s:?}"),
            }
        }
        // good, annotated, whitespace, URL-safe.
        assert_eq!(verified, 4);
    }

    #[test]
    fn a_large_keyless_bundle_is_refused_with_its_reason() {
        let f = Fixture::new();
        let envelope =
            Envelope::sign(IN_TOTO_PAYLOAD_TYPE, f.layer_statement().to_json(), &f.key).unwrap();
        let material =
            r#"{"x509CertificateChain":{"certificates":[{"rawBytes":"MAA="}]},"tlogEntries":[]}"#;
        let bundle = cnb_referrers::format::bundle_json_with_material(&envelope, material);
        let mut fetched = f.referrer(&envelope, "https://cyclonedx.org/bom", &[], None);
        if let Ok(manifest) = &mut fetched.manifest {
            manifest.layers[0].media_type = cnb_referrers::format::BUNDLE_V03.into();
        }
        fetched.layer = Ok(bundle.clone().into());
        // Read through a temporary file but within the in-memory limit: the in-memory verdict.
        let trust = Trust::keys(&[f.key()]);
        let whole = verify_results(&f.image, std::slice::from_ref(&fetched), &trust);
        let streamed = verify_results(&f.image, &[spooled(&fetched)], &trust);
        let (whole, streamed) = (
            whole[0].1.as_ref().unwrap_err(),
            streamed[0].1.as_ref().unwrap_err(),
        );
        assert_eq!(whole, streamed);
        // Over it: refused, with the reason.
        let stored = decode_layer(StorageFormat::Bundle, &bundle).unwrap();
        let failure = trust
            .verify_prehashed(&stored, &[0; 32], MAX_BLOB)
            .unwrap_err();
        assert_eq!(failure.rule, Rule::Keyless, "{failure}");
        assert!(
            failure
                .message
                .contains("keyless attestations are verified only up to 67108864 bytes"),
            "{failure}"
        );
    }

    #[test]
    fn a_valid_attestation_verifies() {
        let f = Fixture::new();
        let verdict = f.verdict(f.attest(&f.layer_statement(), &[]));
        assert!(verdict.ok(), "{:?}", verdict.failure);
        assert_eq!(verdict.listed.subjects.len(), 2);
    }

    #[test]
    fn an_unreadable_listed_referrer() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.manifest = Err("manifest unknown".into());
        let failure = f.verdict(fetched).failure.unwrap();
        assert_eq!(failure.rule, Rule::UnreadableReferrer);
        assert_eq!(
            failure.message,
            "listed referrer cannot be read: manifest unknown"
        );
    }

    #[test]
    fn a_blob_that_cannot_be_had() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Err("blob does not match its digest".into());
        let failure = f.verdict(fetched).failure.unwrap();
        assert_eq!(failure.rule, Rule::Blob);
        assert_eq!(failure.message, "blob does not match its digest");
    }

    #[test]
    fn an_unknown_format_is_not_verified_and_lists_its_rule() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        if let Ok(manifest) = &mut fetched.manifest {
            manifest.layers[0].media_type = "application/example".into();
        }
        let failure = blob_of(&fetched).unwrap_err();
        assert_eq!(failure.rule, Rule::UnknownFormat);
        assert_eq!(failure.message, "not an attestation format this tool reads");
        // Someone else's referrer: left out of verification.
        assert!(verify(&f.image, &[fetched], &Trust::keys(&[f.key()])).is_empty());
    }

    #[test]
    fn an_undecodable_layer() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Ok(b"not an envelope".to_vec().into());
        assert_eq!(f.rule(fetched), Rule::Undecodable);
    }

    #[test]
    fn another_payload_type() {
        let f = Fixture::new();
        let statement = f.layer_statement();
        let envelope = Envelope::sign("text/plain", statement.to_json(), &f.key).unwrap();
        let failure = f
            .verdict(f.referrer(&envelope, statement.predicate_type(), &[], None))
            .failure
            .unwrap();
        assert_eq!(failure.rule, Rule::PayloadType);
        assert_eq!(
            failure.message,
            format!("DSSE payloadType is `text/plain`, expected `{IN_TOTO_PAYLOAD_TYPE}`")
        );
    }

    #[test]
    fn another_key() {
        let f = Fixture::new();
        let statement = f.layer_statement();
        let other = SigningKey::generate().unwrap();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &other).unwrap();
        let failure = f
            .verdict(f.referrer(&envelope, statement.predicate_type(), &[], None))
            .failure
            .unwrap();
        assert_eq!(failure.rule, Rule::Signature);
        assert!(
            failure
                .message
                .starts_with("not signed by a trusted key (signature does not verify"),
            "{failure}"
        );
    }

    #[test]
    fn a_signed_payload_that_is_no_statement() {
        let f = Fixture::new();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}".to_vec(), &f.key).unwrap();
        let fetched = f.referrer(&envelope, "https://cyclonedx.org/bom", &[], None);
        assert_eq!(f.rule(fetched), Rule::Statement);
    }

    #[test]
    fn an_annotated_predicate_type_that_is_not_the_signed_one() {
        let f = Fixture::new();
        let statement = f.layer_statement();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &f.key).unwrap();
        let failure = f
            .verdict(f.referrer(&envelope, "https://spdx.dev/Document", &[], None))
            .failure
            .unwrap();
        assert_eq!(failure.rule, Rule::PredicateType);
        assert_eq!(
            failure.message,
            "manifest says predicate type `https://spdx.dev/Document` but the signed statement says `https://cyclonedx.org/bom`"
        );
    }

    #[test]
    fn a_subject_without_sha256() {
        let f = Fixture::new();
        let sha512 = Subject {
            name: "example/node:modules".into(),
            digest: BTreeMap::from([("sha512".to_string(), "ab".repeat(64))]),
        };
        let statement = statement(
            vec![f.image_subject(), sha512],
            "https://cyclonedx.org/bom",
            "{}",
        );
        let failure = f.verdict(f.attest(&statement, &[])).failure.unwrap();
        assert_eq!(failure.rule, Rule::SubjectWithoutSha256);
        assert_eq!(
            failure.message,
            "subject `example/node:modules` has no sha256 digest"
        );
    }

    #[test]
    fn a_statement_naming_only_a_layer_of_the_image_is_bound_through_that_layer() {
        // The RFC's layer-scoped statements name only their layer; the image's config, fixed by
        // its digest, holds that layer, so the statement is about this image.
        let f = Fixture::new();
        let layer_only = statement(
            vec![subject("example/node:modules", &layer_hex())],
            "https://cyclonedx.org/bom",
            "{}",
        );
        let verdict = f.verdict(f.attest(&layer_only, &[]));
        assert!(
            verdict
                .failure
                .as_ref()
                .is_none_or(|f| f.rule != Rule::NoImageSubject),
            "{verdict:?}"
        );
        // A statement naming neither the image nor a layer of it is still refused.
        let foreign = statement(
            vec![subject("example/node:modules", &"c".repeat(64))],
            "https://cyclonedx.org/bom",
            "{}",
        );
        let failure = f.verdict(f.attest(&foreign, &[])).failure.unwrap();
        assert_eq!(failure.rule, Rule::ForeignSubject);
    }

    #[test]
    fn a_subject_of_another_image() {
        let f = Fixture::new();
        let statement = statement(
            vec![
                f.image_subject(),
                subject("example/node:modules", &hex_of(b"elsewhere")),
            ],
            "https://cyclonedx.org/bom",
            "{}",
        );
        assert_eq!(f.rule(f.attest(&statement, &[])), Rule::ForeignSubject);
    }

    #[test]
    fn layer_annotations_that_are_not_the_signed_subject() {
        let f = Fixture::new();
        let fetched = f.attest(
            &f.layer_statement(),
            &[
                (annotations::BUILDPACK_ID, "example/node"),
                (annotations::LAYER_NAME, "other"),
            ],
        );
        let failure = f.verdict(fetched).failure.unwrap();
        assert_eq!(failure.rule, Rule::LayerAnnotation);
        assert_eq!(
            failure.message,
            "manifest annotations name layer `example/node:other` but the signed subject is `example/node:modules`"
        );
    }

    #[test]
    fn an_sbom_digest_annotation_that_is_not_the_signed_predicate() {
        let f = Fixture::new();
        let wrong = format!("sha256:{}", hex_of(b"another SBOM"));
        let fetched = f.attest(&f.layer_statement(), &[(annotations::SBOM_DIGEST, &wrong)]);
        assert_eq!(f.rule(fetched), Rule::SbomDigest);
        // The right digest verifies.
        let statement = f.layer_statement();
        let right = format!("sha256:{}", hex_of(statement.predicate()));
        let fetched = f.attest(&statement, &[(annotations::SBOM_DIGEST, &right)]);
        assert!(f.verdict(fetched).ok());
    }

    #[test]
    fn a_verdict_serialises_its_message_and_rule() {
        let f = Fixture::new();
        let ok = serde_json::to_value(f.verdict(f.attest(&f.layer_statement(), &[]))).unwrap();
        assert!(ok["failure"].is_null());
        assert!(ok.get("rule").is_none(), "{ok}");
        assert!(ok["manifest-digest"].is_string(), "{ok}");

        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.manifest = Err("gone".into());
        let failed = serde_json::to_value(f.verdict(fetched)).unwrap();
        assert_eq!(failed["failure"], "listed referrer cannot be read: gone");
        assert_eq!(failed["rule"], "unreadable-referrer");
    }

    #[test]
    fn listing_keeps_the_message_as_the_problem() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Err("blob does not match its digest".into());
        let listed = list(&[fetched]);
        assert_eq!(
            listed[0].problem.as_deref(),
            Some("blob does not match its digest")
        );
    }

    #[test]
    fn a_fetch_failure_is_not_a_verification_failure() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.manifest = Err(Unread::fetch("GET manifest: registry answered 503"));
        let failure = f.verdict(fetched).failure.unwrap();
        assert_eq!(failure.rule, Rule::FetchFailed);
        assert!(failure.rule.is_fetch_failure() && failure.rule.is_unverified());
        assert_eq!(
            failure.message,
            "could not be read from the registry: GET manifest: registry answered 503"
        );
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Err(Unread::fetch("reading blob: connection reset"));
        assert_eq!(f.rule(fetched), Rule::FetchFailed);
        // What was read and is wrong stays a content failure.
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.layer = Err(Unread::content("content has digest sha256:..."));
        assert_eq!(f.rule(fetched), Rule::Blob);
    }

    #[test]
    fn a_foreign_referrer_is_listed_never_verified() {
        let f = Fixture::new();
        let mut fetched = f.attest(&f.layer_statement(), &[]);
        fetched.manifest = Err(Unread::foreign("an index; not fetched"));
        fetched.layer = Err(Unread::foreign("an index; not fetched"));
        assert!(fetched.is_foreign());
        assert!(verify(
            &f.image,
            std::slice::from_ref(&fetched),
            &Trust::keys(&[f.key()])
        )
        .is_empty());
        let listed = list(&[fetched]);
        assert_eq!(listed[0].format, None);
        assert_eq!(listed[0].problem.as_deref(), Some("an index; not fetched"));
    }

    fn listed(media_type: &str, artifact_type: Option<&str>, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: Descriptor::for_bytes(media_type, &size.to_be_bytes()).digest,
            size,
            artifact_type: artifact_type.map(str::to_string),
            annotations: None,
            platform: None,
        }
    }

    #[test]
    fn foreign_artifacts_are_known_from_the_listing() {
        use cnb_referrers::format::{BUNDLE_V03, DSSE_ENVELOPE};
        use cnb_referrers::manifest::OCI_INDEX;
        let cap = cnb_referrers::layout::MAX_MANIFEST_SIZE;
        let config = "application/vnd.oci.image.config.v1+json";
        // Fetched: the formats' own artifact types, a manifest listed by its config, none at all.
        for artifact_type in [Some(BUNDLE_V03), Some(DSSE_ENVELOPE), Some(config), None] {
            assert_eq!(
                foreign_from_listing(&listed(OCI_MANIFEST, artifact_type, 1000)),
                None
            );
        }
        // Someone else's: an index, another artifact type, a manifest over the limit.
        for d in [
            listed(OCI_INDEX, Some("application/vnd.example+json"), 1000),
            listed(OCI_MANIFEST, Some("application/vnd.example+json"), 1000),
            listed(OCI_MANIFEST, Some(config), cap + 1),
        ] {
            let reason = foreign_from_listing(&d).unwrap();
            assert_eq!(reason.kind, UnreadKind::Foreign, "{d:?}");
            assert!(reason.message.contains("not fetched"), "{reason}");
        }
        // Listed as an attestation, but over the limit: unreadable, still not fetched.
        let reason =
            foreign_from_listing(&listed(OCI_MANIFEST, Some(BUNDLE_V03), cap + 1)).unwrap();
        assert_eq!(reason.kind, UnreadKind::Content);
    }

    #[test]
    fn a_listing_is_taken_once_per_digest() {
        let a = listed(OCI_MANIFEST, None, 1);
        let b = listed(OCI_MANIFEST, None, 2);
        let taken = dedupe(vec![a.clone(), b.clone(), a.clone(), a.clone(), b]);
        assert_eq!(taken.iter().map(|d| d.size).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn the_budget_refuses_before_reading_and_counts_understatements() {
        let mut budget = Budget::new("image");
        budget.charge("a", MAX_TOTAL_BLOB_BYTES - 10).unwrap();
        budget.charge("b", 10).unwrap();
        let refused = budget.charge("c", 1).unwrap_err().to_string();
        assert!(
            refused.contains("more than the 536870912 read for one image"),
            "{refused}"
        );
        let mut budget = Budget::new("image");
        budget.charge("a", 1).unwrap();
        // The listing said 1 byte; 100 were read.
        budget.settle(1, 100);
        budget.charge("b", MAX_TOTAL_BLOB_BYTES - 100).unwrap();
        assert!(budget.charge("c", 1).is_err());
    }

    #[test]
    fn a_blob_is_read_once_and_shared() {
        let bytes = b"attestation".to_vec();
        let layer = Descriptor::for_bytes("application/example", &bytes);
        let mut blobs = Blobs::default();
        let mut budget = Budget::new("image");
        let reads = std::cell::Cell::new(0);
        let read = |_max: u64| {
            reads.set(reads.get() + 1);
            Ok::<_, String>(bytes.clone())
        };
        let first = blobs
            .get(&layer, &mut budget, read, Unread::content)
            .unwrap()
            .unwrap();
        let second = blobs
            .get(&layer, &mut budget, read, Unread::content)
            .unwrap()
            .unwrap();
        assert_eq!(reads.get(), 1);
        assert!(first.same_read(&second));
        assert_eq!(budget.spent, bytes.len() as u64);
        // Another descriptor of the same digest with another size is wrong about it.
        let mut other = layer.clone();
        other.size += 1;
        let wrong = blobs
            .get(&other, &mut budget, read, Unread::content)
            .unwrap()
            .unwrap_err();
        assert_eq!(wrong.kind, UnreadKind::Content);
        assert_eq!(reads.get(), 1);
        // Over the per-blob limit: refused without a read.
        let mut huge = layer.clone();
        huge.digest = Descriptor::for_bytes("x", b"other").digest;
        huge.size = MAX_BLOB + 1;
        assert!(blobs
            .get(&huge, &mut budget, read, Unread::content)
            .unwrap()
            .is_err());
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn every_rule_serialises_as_its_name() {
        use Rule::*;
        let all = [
            UnreadableReferrer,
            FetchFailed,
            Blob,
            UnknownFormat,
            Undecodable,
            PayloadType,
            Signature,
            Statement,
            PredicateType,
            SubjectWithoutSha256,
            NoImageSubject,
            ForeignSubject,
            LayerAnnotation,
            SbomDigest,
            BadLabel,
            LayerSubjectName,
            UnknownBuildpack,
            UnrecordedLayer,
            TwoPlaces,
            NoPlace,
            Conflict,
            SameFile,
            FileAndDirectory,
            HiddenCharacter,
            Superseded,
            AmbiguousLayer,
            NoBuildpack,
            UnsignedPlacement,
        ];
        for rule in all {
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.name());
            assert_eq!(rule.to_string(), rule.name());
        }
    }
}
