//! cosign 2's image signatures: the layers of the `sha256-<hex>.sig` tag, each a simple-signing
//! payload (`application/vnd.dev.cosign.simplesigning.v1+json`) with its ECDSA signature in the
//! `dev.cosignproject.cosign/signature` annotation. Verified here as cosign verifies them: the
//! signature over the payload bytes with the key, then the signed payload must name this image's
//! manifest digest and be of cosign's container-signature type. Nothing unsigned decides.

use cnb_dsse::VerifyingKey;
use cnb_referrers::format::{COSIGN_SIGNATURE, SIMPLE_SIGNING};
use cnb_referrers::layout::Image;
use cnb_referrers::Descriptor;
use serde::Serialize;

/// The simple-signing payload type cosign writes.
pub const CONTAINER_SIGNATURE_TYPE: &str = "cosign container image signature";

/// Largest simple-signing payload read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 64 * 1024;

/// One layer of the `.sig` tag as fetched: its descriptor and its payload (digest-checked by the
/// store), or why it could not be had.
#[derive(Debug, Clone)]
pub struct SimpleSignature {
    /// The layer descriptor (its annotation carries the signature).
    pub descriptor: Descriptor,
    /// The payload bytes, or the reason they are missing.
    pub payload: Result<Vec<u8>, String>,
}

/// Whether a `.sig` layer holds a simple-signing payload this module reads.
pub fn is_simple_signing(descriptor: &Descriptor) -> bool {
    descriptor.media_type == SIMPLE_SIGNING
}

/// The verdict on one image signature.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignatureVerdict {
    /// The `.sig` layer's digest.
    pub digest: String,
    /// `critical.identity.docker-reference` of the signed payload (once the signature verified).
    pub docker_reference: Option<String>,
    /// `None` when verified; what failed otherwise.
    pub failure: Option<String>,
}

impl SignatureVerdict {
    /// Whether the signature verified.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Verifies one simple signature of `image` with any of `keys`.
pub fn verify(
    image: &Image,
    signature: &SimpleSignature,
    keys: &[VerifyingKey],
) -> SignatureVerdict {
    let mut verdict = SignatureVerdict {
        digest: signature.descriptor.digest.to_string(),
        docker_reference: None,
        failure: None,
    };
    match check(image, signature, keys) {
        Ok(reference) => verdict.docker_reference = reference,
        Err(failure) => verdict.failure = Some(failure),
    }
    verdict
}

fn check(
    image: &Image,
    signature: &SimpleSignature,
    keys: &[VerifyingKey],
) -> Result<Option<String>, String> {
    use base64::Engine as _;
    let payload = signature.payload.as_ref().map_err(Clone::clone)?;
    let encoded = signature
        .descriptor
        .annotation(COSIGN_SIGNATURE)
        .ok_or_else(|| format!("no {COSIGN_SIGNATURE} annotation"))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| format!("{COSIGN_SIGNATURE} is not base64"))?;
    // The signature is checked before the payload is parsed: nothing unsigned is interpreted.
    if !keys.iter().any(|key| key.verify(payload, &der).is_ok()) {
        return Err("not signed by a trusted key".into());
    }
    let value: serde_json::Value = cnb_untrusted::json::check_document(payload, 16)
        .map_err(|e| format!("signed payload: {e}"))
        .and_then(|()| {
            serde_json::from_slice(payload).map_err(|e| format!("signed payload: {e}"))
        })?;
    let critical = &value["critical"];
    if critical["type"] != CONTAINER_SIGNATURE_TYPE {
        return Err(format!(
            "signed payload type is not `{CONTAINER_SIGNATURE_TYPE}`"
        ));
    }
    let signed_digest = critical["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or_default();
    if signed_digest != image.descriptor.digest.as_str() {
        return Err(format!(
            "signs {}, not this image ({})",
            cnb_untrusted::text::sanitize(signed_digest, 80),
            image.descriptor.digest
        ));
    }
    Ok(critical["identity"]["docker-reference"]
        .as_str()
        .map(|r| cnb_untrusted::text::sanitize(r, 200)))
}
