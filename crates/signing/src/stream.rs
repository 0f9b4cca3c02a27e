//! Signing a predicate too large to hold: one pass over its file checks it (JSON, SBOM format,
//! the configured digest), hashes the DSSE pre-authentication encoding for the signature and
//! hashes every storage format's layer (`prefix + base64(statement) + suffix`; the signature
//! comes after the payload in both layouts, so the prefix and the payload are hashed before the
//! signature exists). The layers are then written or uploaded from the file again, checked against
//! those digests, never held.

use std::io::Read;
use std::sync::Arc;

use cnb_attestation_config::{annotations, AttestationSpec, PredicateFile};
use cnb_dsse::{Signature, Signer, IN_TOTO_PAYLOAD_TYPE};
use cnb_intoto::Statement;
use cnb_referrers::blob::{EncodedPayload, Payload, Source, StreamedBlob, CHUNK};
use cnb_referrers::format::layer_json_around_payload;
use cnb_referrers::{Descriptor, StorageFormat};
use sha2::{Digest as _, Sha256};

use crate::{describe, subjects_of, Error, SignOptions};

/// An attestation signed from a stream: its payload stays in its file.
#[derive(Debug, Clone)]
pub struct StreamedEnvelope {
    /// The payload type.
    pub payload_type: String,
    /// The payload: the statement around the predicate file.
    pub payload: Arc<Payload>,
    /// The signatures.
    pub signatures: Vec<Signature>,
    /// Each storage format's layer: its descriptor and the blob that writes it.
    pub layers: Vec<(StorageFormat, Descriptor, Arc<EncodedPayload>)>,
}

/// The predicate file as a [`Source`] for a payload: opened again (and checked to be the same
/// file) each time it is read, and read no further than its checked length.
#[derive(Debug)]
struct FileSource(PredicateFile);

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let file = self.0.open().map_err(std::io::Error::other)?;
        Ok(Box::new(file.take(self.0.len())))
    }
}

/// Whether `spec` is signed from a stream: a predicate file over `options.stream_above` bytes,
/// in a run whose formats all take a streamed layer (bundle and bare DSSE referrers; not
/// keyless, whose transparency-log entry holds the whole envelope).
pub(crate) fn streams(file: &PredicateFile, options: &SignOptions) -> bool {
    file.len() > options.stream_above
        && options.keyless.is_none()
        && options
            .formats
            .iter()
            .all(|f| matches!(f, StorageFormat::Bundle | StorageFormat::Dsse))
}

/// Hashes base64 text as it is produced from bytes that arrive in pieces.
struct Base64Hashes {
    hashers: Vec<Sha256>,
    carry: Vec<u8>,
    out: Vec<u8>,
}

impl Base64Hashes {
    fn update(&mut self, mut bytes: &[u8]) {
        if !self.carry.is_empty() {
            let take = (3 - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.carry.len() < 3 {
                return;
            }
            let carry = std::mem::take(&mut self.carry);
            self.encode(&carry);
        }
        let whole = bytes.len() / 3 * 3;
        self.encode(&bytes[..whole]);
        self.carry.extend_from_slice(&bytes[whole..]);
    }

    fn encode(&mut self, bytes: &[u8]) {
        use base64::Engine as _;
        if bytes.is_empty() {
            return;
        }
        self.out.resize(bytes.len().div_ceil(3) * 4, 0);
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut self.out)
            .unwrap_or(0);
        for h in &mut self.hashers {
            h.update(&self.out[..n]);
        }
    }

    fn finish(mut self) -> Vec<Sha256> {
        let carry = std::mem::take(&mut self.carry);
        self.encode(&carry);
        self.hashers
    }
}

/// Checks, states and signs one attestation whose predicate is `file`, in one pass over the file,
/// and plans its layer in each of `options.formats` for a key with `key_hint`. `None` when
/// `signer` cannot sign a prehashed message (the caller then signs it in memory).
pub(crate) fn prepare_streamed(
    index: usize,
    spec: &AttestationSpec,
    file: PredicateFile,
    signer: &dyn Signer,
    options: &SignOptions,
    key_hint: &str,
) -> Result<Option<(StreamedEnvelope, String)>, Error> {
    let statement_error = |source| Error::Statement {
        index,
        what: describe(spec),
        source,
    };
    let (head, tail) = Statement::frame(
        options.statement_version,
        &subjects_of(spec),
        &spec.predicate.predicate_type,
    )
    .map_err(statement_error)?;
    let path = file.path().to_path_buf();
    let payload = Arc::new(Payload {
        head,
        body: Arc::new(FileSource(file)),
        tail,
    });
    let around = |format, signatures: &[Signature]| {
        layer_json_around_payload(format, IN_TOTO_PAYLOAD_TYPE, signatures, key_hint, None)
    };

    // The layers' JSON before the payload depends only on the key, so it is known now; what
    // follows the payload holds the signature.
    let prefixes: Vec<Vec<u8>> = options.formats.iter().map(|f| around(*f, &[]).0).collect();
    let mut layer_hashes = Base64Hashes {
        hashers: prefixes.iter().map(Sha256::new_with_prefix).collect(),
        carry: Vec::new(),
        out: Vec::with_capacity(CHUNK / 3 * 4 + 4),
    };
    let mut pae =
        Sha256::new_with_prefix(cnb_dsse::pae_header(IN_TOTO_PAYLOAD_TYPE, payload.len()));
    let mut predicate_hash = Sha256::new();
    let mut check =
        cnb_intoto::predicate_validator().watch_top_keys(cnb_sbom_discovery::SNIFF_KEYS);
    let (head_len, body_len) = (payload.head.len() as u64, payload.body.len());
    let mut seen = 0u64;
    let mut json_error = None;
    payload
        .for_each_piece(|piece| {
            pae.update(piece);
            layer_hashes.update(piece);
            let in_body = seen >= head_len && seen < head_len + body_len;
            seen += piece.len() as u64;
            if in_body && json_error.is_none() {
                predicate_hash.update(piece);
                if let Err(e) = check.feed(piece) {
                    json_error = Some(e);
                }
            }
            Ok(())
        })
        .map_err(|source| {
            Error::Config(cnb_attestation_config::Error::Read {
                path: path.clone(),
                source,
            })
        })?;
    let checked = match json_error {
        Some(e) => Err(e),
        None => {
            let values = check.top_values().to_vec();
            check.finish().map(|()| values)
        }
    };
    let top_values = checked.map_err(|e| {
        statement_error(cnb_intoto::Error::PredicateNotJson(format!(
            "{}: {e}",
            path.display()
        )))
    })?;
    if let Some(format) =
        cnb_sbom_discovery::SbomFormat::from_predicate_type(&spec.predicate.predicate_type)
    {
        format
            .check_top_values(&path, &top_values)
            .map_err(|e| Error::Config(e.into()))?;
    }
    let predicate_sha256 = hex::encode(predicate_hash.finalize());
    if let Some(expected) = spec.annotation(annotations::SBOM_DIGEST) {
        let actual = format!("sha256:{predicate_sha256}");
        if actual != expected {
            return Err(Error::Config(
                cnb_attestation_config::Error::PredicateChanged {
                    path,
                    expected: cnb_untrusted::text::sanitize(expected, 80),
                    actual,
                },
            ));
        }
    }
    let digest: [u8; 32] = pae.finalize().into();
    let Some(sig) = signer.sign_prehashed(&digest) else {
        return Ok(None);
    };
    let sig = sig.map_err(|source| Error::Sign { index, source })?;
    let signatures = vec![Signature {
        keyid: signer.keyid().to_owned(),
        sig,
    }];
    let mut layers = Vec::new();
    let formats = options.formats.iter().copied();
    for ((format, prefix), mut hasher) in formats.zip(prefixes).zip(layer_hashes.finish()) {
        let (_, suffix) = around(format, &signatures);
        hasher.update(&suffix);
        let blob = EncodedPayload {
            prefix,
            payload: payload.clone(),
            suffix,
        };
        let digest = cnb_referrers::Digest::sha256(&hex::encode(hasher.finalize()))
            .map_err(|e| Error::BadOption(e.to_string()))?;
        let descriptor = Descriptor {
            media_type: format.artifact_type().to_string(),
            digest,
            size: StreamedBlob::len(&blob),
            ..Descriptor::empty()
        };
        layers.push((format, descriptor, Arc::new(blob)));
    }
    Ok(Some((
        StreamedEnvelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
            payload,
            signatures,
            layers,
        },
        predicate_sha256,
    )))
}
