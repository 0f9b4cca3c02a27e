//! Listing and verifying an image's attestations.

use cnb_dsse::VerifyingKey;
use cnb_sbom_restore::inspect::{self as stored, Fetched, Listed, Verdict};
use serde::Serialize;

use crate::{Error, Image, COSIGN_SIGN_V1};

/// Every referrer of an image, decoded where it can be (nothing verified).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Listing {
    /// One entry per referrer (and per cosign 2 `.att` layer, BuildKit statement).
    pub entries: Vec<Listed>,
}

impl Listing {
    /// Entries in an attestation format this project reads that are not image signatures.
    pub fn attestations(&self) -> usize {
        self.entries
            .iter()
            .filter(|l| l.format.is_some() && !is_image_signature(l))
            .count()
    }

    /// cosign 3 image signatures (`sign/v1` statements).
    pub fn signatures(&self) -> usize {
        self.entries
            .iter()
            .filter(|l| is_image_signature(l))
            .count()
    }

    /// Referrers in no format this project reads (another tool's artifacts).
    pub fn others(&self) -> usize {
        self.entries.iter().filter(|l| l.format.is_none()).count()
    }
}

fn is_image_signature(listed: &Listed) -> bool {
    listed.predicate_type.as_deref() == Some(COSIGN_SIGN_V1)
}

/// Every referrer of `image`, with its attestation blob; a saved daemon image has none and is
/// refused.
async fn fetch_all(image: &Image) -> Result<Vec<Fetched>, Error> {
    image.with_manifest()?;
    image
        .source
        .fetch(&|_| true)
        .await
        .map_err(|source| Error::Read {
            image: image.name().to_string(),
            source,
        })
}

/// Lists the attestations of `image` (nothing is verified: a view for people).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::{inspect, Image, OpenOptions};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let listing = cnb_attest::block_on(async {
///     inspect::list(&Image::open(&target, &OpenOptions::default()).await?).await
/// })??;
/// assert_eq!((listing.attestations(), listing.signatures()), (0, 0));
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn list(image: &Image) -> Result<Listing, Error> {
    Ok(Listing {
        entries: stored::list(&fetch_all(image).await?),
    })
}

/// Verifies every attestation of `image` in a format this project reads with `keys` (any one of
/// them verifying is enough): the blob digest, the signature over the DSSE envelope, the
/// statement's strict parse, its subjects (one is the image, every other a layer of it), the
/// agreement of the unsigned annotations with the signed statement and, for a buildpacks image,
/// the placement rules of [`crate::restore::restore`] (the same `place`): a statement a restore
/// would refuse fails here too, naming the rule. An empty result means there was nothing to verify.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::{inspect, Image, OpenOptions, SigningKey};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let key = SigningKey::generate()?;
/// let verdicts = cnb_attest::block_on(async {
///     inspect::verify(&Image::open(&target, &OpenOptions::default()).await?, &[key.verifying_key()]).await
/// })??;
/// assert!(verdicts.is_empty()); // nothing signed yet
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn verify(image: &Image, keys: &[VerifyingKey]) -> Result<Vec<Verdict>, Error> {
    let fetched = fetch_all(image).await?;
    let metadata = image.metadata().ok();
    Ok(cnb_sbom_restore::select::verify_placed(
        image.with_manifest()?,
        metadata.as_ref(),
        &fetched,
        keys,
    ))
}
