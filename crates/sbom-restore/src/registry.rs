//! Reading an image's referrers from a registry (feature `registry`): the Referrers API merged
//! with the tag-schema index, cosign 2's `.att` tag, and BuildKit attestation manifests.

use cnb_referrers::layout::Image;
use cnb_referrers::{Descriptor, ImageManifest};
use futures_util::stream::{self, StreamExt as _};

use crate::inspect::{
    buildkit_entries, buildkit_layers, dedupe, foreign_from_listing, skip_reason, within_limits,
    Blob, Blobs, Budget, Fetched, Unread, INTOTO_STATEMENT, MAX_REFERRERS,
};
use crate::{simple_signing, Error};

/// Downloads a blob over [`crate::spool::STREAM_READ_ABOVE`] bytes into a temporary file (the
/// client checks its digest and bounds it by its listed size as it streams).
async fn spool_blob(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    layer: &Descriptor,
) -> Result<Blob, Unread> {
    let mut file = tempfile::Builder::new()
        .prefix(".cnb-attest-spool-")
        .tempfile()
        .map_err(|e| Unread::fetch(format!("creating a temporary file: {e}")))?;
    client
        .get_blob_to(repo, &layer.digest, layer.size, file.as_file_mut())
        .await
        .map_err(unread)?;
    let spooled = crate::spool::Spooled::from_temp_file(file)
        .map_err(|e| Unread::fetch(format!("reading the temporary file back: {e}")))?;
    let actual = format!("sha256:{}", hex::encode(spooled.sha256()));
    if actual != layer.digest.to_string() {
        return Err(Unread::content(format!(
            "blob {} changed on disk after it was downloaded",
            layer.digest
        )));
    }
    Ok(Blob::Spooled(spooled))
}

/// Every referrer of `image` in a registry (Referrers API, else the tag-schema index), with its
/// attestation blob.
pub async fn fetch_registry(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    image: &Image,
) -> Result<Vec<Fetched>, Error> {
    fetch_registry_selected(client, repo, image, &|_| true).await
}

/// Why a registry read failed, by kind: what was read is wrong or missing ([`Unread::content`]:
/// too large, not matching its digest, malformed, a 404 for what a manifest names), or the
/// registry or the transport failed ([`Unread::fetch`]: any other status after the retries, a
/// connection or body cut short, the deadline, a redirect loop, access refused).
fn unread(error: cnb_registry::Error) -> Unread {
    use cnb_registry::Error as E;
    match error {
        E::TooLarge { .. }
        | E::DigestMismatch { .. }
        | E::Malformed(_)
        | E::Status { status: 404, .. } => Unread::content(error.to_string()),
        other => Unread::fetch(other.to_string()),
    }
}

/// Manifests and blobs read at once: the signer's upload concurrency.
const READ_CONCURRENCY: usize = 8;

/// Reads a blob through the run's [`Blobs`] (once per digest) and [`Budget`].
async fn blob(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    layer: &Descriptor,
    blobs: &mut Blobs,
    budget: &mut Budget,
) -> Result<Result<Blob, Unread>, Error> {
    if let Some(known) = blobs.before_read(layer, budget)? {
        return Ok(known);
    }
    let result = read_blob(client, repo, layer).await;
    Ok(blobs.remember(layer, result))
}

/// Reads one blob, bounded by its listed size (which the budget was charged): into memory, or
/// into a temporary file when it is over [`crate::spool::STREAM_READ_ABOVE`] bytes.
async fn read_blob(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    layer: &Descriptor,
) -> Result<Blob, Unread> {
    if layer.size > crate::spool::STREAM_READ_ABOVE {
        spool_blob(client, repo, layer).await
    } else {
        client
            .get_blob(repo, &layer.digest, layer.size)
            .await
            .map(Blob::from)
            .map_err(unread)
    }
}

/// Like [`fetch_registry`], fetching the manifest and blob only of referrers `select` accepts
/// (from their listed descriptor: annotations and artifact type, unsigned hints), so asking for one
/// buildpack's SBOMs downloads only those.
///
/// Bounded before anything is read: the listing is taken once per digest (a referrer listed a
/// thousand times is fetched and verified once), someone else's artifacts are recognised from the
/// listing and not fetched ([`foreign_from_listing`]), each distinct blob is read once, and every
/// manifest and blob is charged from its listed size against the run's cap
/// ([`crate::inspect::MAX_TOTAL_BLOB_BYTES`]) before it is read.
pub async fn fetch_registry_selected(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    image: &Image,
    select: &(dyn Fn(&Descriptor) -> bool + Sync),
) -> Result<Vec<Fetched>, Error> {
    let subject = &image.descriptor.digest;
    // Readers merge the Referrers API and the tag-schema index: a signer that saw no OCI-Subject
    // writes the index even where the API answers.
    let api = client.referrers(repo, subject).await?;
    let api_answered = api.is_some();
    let mut listed: Vec<Descriptor> = api.unwrap_or_default();
    let tag_index = match client.fallback_index(repo, subject).await {
        // Where the Referrers API answers, a `sha256-<hex>` tag holding something else (some
        // registries resolve it to the image itself) is simply not a referrers index.
        Err(cnb_registry::Error::FallbackTagTaken(_)) if api_answered => None,
        other => other?,
    };
    if let Some((index, _)) = tag_index {
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| Error::BadImage(format!("{repo}:{}: {e}", subject.fallback_tag())))?;
        let index = cnb_referrers::ImageIndex::from_json(&bytes)
            .map_err(|e| Error::BadImage(format!("{repo}:{}: {e}", subject.fallback_tag())))?;
        listed.extend(index.manifests);
    }
    let listed = dedupe(listed);
    if listed.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{repo}@{subject}: {} referrers listed, more than the {MAX_REFERRERS} read for one image",
            listed.len()
        )));
    }
    let mut budget = Budget::new(format!("{repo}@{subject}"));
    let mut blobs = Blobs::default();
    // 1. What to read, in listing order, each manifest charged from its listed size first.
    let mut slots: Vec<Option<Fetched>> = Vec::new();
    let mut to_read: Vec<(usize, Descriptor)> = Vec::new();
    for descriptor in listed.into_iter().filter(|d| select(d)) {
        // Someone else's artifact, known from the listing: reported, never fetched.
        if let Some(reason) = foreign_from_listing(&descriptor) {
            slots.push(Some(Fetched {
                descriptor,
                manifest: Err(reason.clone()),
                layer: Err(reason),
                source: "referrer",
            }));
            continue;
        }
        // Every listed entry claims to refer to this image: one that cannot be read is reported,
        // never silently dropped.
        budget.charge(
            &format!("referrer manifest {}", descriptor.digest),
            descriptor.size,
        )?;
        to_read.push((slots.len(), descriptor));
        slots.push(None);
    }
    // 2. The manifests, READ_CONCURRENCY at a time, answers kept in listing order.
    let manifests: Vec<_> =
        stream::iter(to_read.into_iter().map(|(slot, descriptor)| async move {
            let got = client.get_manifest(repo, descriptor.digest.as_str()).await;
            (slot, descriptor, got)
        }))
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    // 3. Which blobs to read: each distinct one once, charged before it is read.
    let mut pending: Vec<Descriptor> = Vec::new();
    let mut waiting: Vec<(usize, Descriptor, Result<ImageManifest, Unread>, Descriptor)> =
        Vec::new();
    for (slot, descriptor, got) in manifests {
        let manifest = match got {
            Ok(Some(fetched)) => {
                budget.settle(descriptor.size, fetched.bytes.len() as u64);
                ImageManifest::from_json(&fetched.bytes).map_err(|e| Unread::content(e.to_string()))
            }
            Ok(None) => Err(Unread::content(format!(
                "listed referrer {} does not exist",
                descriptor.digest
            ))),
            Err(e) => Err(unread(e)),
        };
        // A listed referrer whose manifest names another subject is not this image's.
        if let Ok(m) = &manifest {
            if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                continue;
            }
        }
        let layer = match &manifest {
            Err(problem) => Err(problem.clone()),
            Ok(manifest) => match skip_reason(manifest) {
                Some(reason) => Err(reason),
                None => {
                    let layer = manifest.layers[0].clone();
                    // Keyed by digest and listed size, as failed reads are remembered: a referrer
                    // that understates a blob's size never stands in for one that states it right.
                    if !pending
                        .iter()
                        .any(|p| p.digest == layer.digest && p.size == layer.size)
                    {
                        match blobs.before_read(&layer, &mut budget)? {
                            Some(known) => known,
                            None => {
                                pending.push(layer.clone());
                                waiting.push((slot, descriptor, Ok(manifest.clone()), layer));
                                continue;
                            }
                        }
                    } else {
                        waiting.push((slot, descriptor, Ok(manifest.clone()), layer));
                        continue;
                    }
                }
            },
        };
        slots[slot] = Some(Fetched {
            descriptor,
            manifest,
            layer,
            source: "referrer",
        });
    }
    // 4. The blobs, READ_CONCURRENCY at a time; then every referrer waiting for one gets it (a
    // second referrer naming the same digest with another size is told so by `before_read`).
    let read: Vec<_> = stream::iter(
        pending
            .iter()
            .map(|layer| async move { (layer, read_blob(client, repo, layer).await) }),
    )
    .buffered(READ_CONCURRENCY)
    .collect()
    .await;
    for (layer, result) in read {
        let _ = blobs.remember(layer, result);
    }
    for (slot, descriptor, manifest, layer) in waiting {
        let layer = match blobs.before_read(&layer, &mut budget)? {
            Some(known) => known,
            None => Err(Unread::fetch(format!("blob {} was not read", layer.digest))),
        };
        slots[slot] = Some(Fetched {
            descriptor,
            manifest,
            layer,
            source: "referrer",
        });
    }
    let mut out: Vec<Fetched> = slots.into_iter().flatten().collect();
    // cosign 2's tag: each layer of `sha256-<hex>.att` is one DSSE envelope, presented as a one-layer
    // manifest so listing and verification treat it like any referrer.
    let att = cnb_registry::cosign_tag::entries(client, repo, subject, "att").await?;
    for layer in dedupe(att) {
        let Some(manifest) = crate::inspect::cosign_att_layer(&layer, &image.descriptor) else {
            continue;
        };
        if !select(&layer) {
            continue;
        }
        let blob = blob(client, repo, &layer, &mut blobs, &mut budget).await?;
        out.push(Fetched {
            descriptor: layer,
            manifest: Ok(manifest),
            layer: blob,
            source: "cosign-att",
        });
    }
    // BuildKit attestation manifests, known from the index the image was reached through.
    for manifest in dedupe(image.buildkit.clone()) {
        let bytes = if manifest.size > cnb_registry::api::MAX_MANIFEST_SIZE {
            Err(format!(
                "manifest of {} bytes exceeds the {}-byte limit",
                manifest.size,
                cnb_registry::api::MAX_MANIFEST_SIZE
            ))
        } else {
            budget.charge(&format!("manifest {}", manifest.digest), manifest.size)?;
            client
                .get_manifest(repo, manifest.digest.as_str())
                .await
                .map_err(|e| e.to_string())
                .and_then(|m| m.map(|m| m.bytes).ok_or_else(|| "missing".to_string()))
        };
        if let Ok(b) = &bytes {
            budget.settle(manifest.size, b.len() as u64);
        }
        let mut layers = Vec::new();
        for layer in buildkit_layers(&bytes) {
            debug_assert_eq!(layer.media_type, INTOTO_STATEMENT);
            let blob = blob(client, repo, &layer, &mut blobs, &mut budget).await?;
            layers.push((layer.digest, blob));
        }
        out.extend(buildkit_entries(bytes, image, |layer| {
            layers
                .iter()
                .find(|(d, _)| *d == layer.digest)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| Err("not fetched".into()))
        }));
    }
    within_limits(&out)?;
    Ok(out)
}

/// cosign 2's image signatures of `image`: the simple-signing layers of its `sha256-<hex>.sig`
/// tag, each with its payload (bounded by [`simple_signing::MAX_PAYLOAD`], digest-checked).
pub async fn fetch_simple_signatures(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    image: &Image,
) -> Result<Vec<simple_signing::SimpleSignature>, Error> {
    let mut out = Vec::new();
    let layers =
        cnb_registry::cosign_tag::entries(client, repo, &image.descriptor.digest, "sig").await?;
    if layers.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{} image signatures listed: more than the {MAX_REFERRERS} read for one image",
            layers.len()
        )));
    }
    for layer in layers {
        if !simple_signing::is_simple_signing(&layer) {
            continue;
        }
        let payload = if layer.size > simple_signing::MAX_PAYLOAD {
            Err(format!(
                "simple-signing payload of {} bytes exceeds the {}-byte limit",
                layer.size,
                simple_signing::MAX_PAYLOAD
            ))
        } else {
            client
                .get_blob(repo, &layer.digest, layer.size)
                .await
                .map_err(|e| e.to_string())
        };
        out.push(simple_signing::SimpleSignature {
            descriptor: layer,
            payload,
        });
    }
    Ok(out)
}
