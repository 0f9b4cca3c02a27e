//! Reading an image's referrers from a registry (feature `registry`): the Referrers API merged
//! with the tag-schema index, cosign 2's `.att` tag, and BuildKit attestation manifests.

use cnb_referrers::format::MAX_ATTESTATION_BLOB;
use cnb_referrers::layout::Image;
use cnb_referrers::{Descriptor, ImageManifest};

use crate::inspect::{
    buildkit_entries, skip_reason, within_limits, Fetched, INTOTO_STATEMENT, MAX_REFERRERS,
};
use crate::{simple_signing, Error};

/// Every referrer of `image` in a registry (Referrers API, else the tag-schema index), with its
/// attestation blob.
pub async fn fetch_registry(
    client: &cnb_registry::Client,
    repo: &cnb_registry::Repository,
    image: &Image,
) -> Result<Vec<Fetched>, Error> {
    fetch_registry_selected(client, repo, image, &|_| true).await
}

/// Like [`fetch_registry`], fetching the manifest and blob only of referrers `select` accepts
/// (from their listed descriptor: annotations and artifact type, unsigned hints), so asking for one
/// buildpack's SBOMs downloads only those.
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
        for d in index.manifests {
            if !listed.iter().any(|l| l.digest == d.digest) {
                listed.push(d);
            }
        }
    }
    let mut out = Vec::new();
    if listed.len() > MAX_REFERRERS {
        return Err(Error::Malformed(format!(
            "{repo}@{subject}: {} referrers listed, more than the {MAX_REFERRERS} read for one image",
            listed.len()
        )));
    }
    for descriptor in listed.into_iter().filter(|d| select(d)) {
        // Every listed entry claims to refer to this image: one that cannot be read is reported,
        // never silently dropped.
        let manifest = match client.get_manifest(repo, descriptor.digest.as_str()).await {
            Ok(Some(fetched)) => {
                ImageManifest::from_json(&fetched.bytes).map_err(|e| e.to_string())
            }
            Ok(None) => Err(format!(
                "listed referrer {} does not exist",
                descriptor.digest
            )),
            Err(e) => Err(e.to_string()),
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
                None => client
                    // Bounded by what the descriptor announces, not only by the global cap.
                    .get_blob(
                        repo,
                        &manifest.layers[0].digest,
                        manifest.layers[0].size.min(MAX_ATTESTATION_BLOB),
                    )
                    .await
                    .map_err(|e| e.to_string()),
            },
        };
        out.push(Fetched {
            descriptor,
            manifest,
            layer,
            source: "referrer",
        });
    }
    // cosign 2's tag: each layer of `sha256-<hex>.att` is one DSSE envelope, presented as a one-layer
    // manifest so listing and verification treat it like any referrer.
    for layer in cnb_registry::cosign_tag::entries(client, repo, subject, "att").await? {
        if layer.media_type != cnb_referrers::format::DSSE_ENVELOPE || !select(&layer) {
            continue;
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: None,
            artifact_type: Some(cnb_referrers::format::DSSE_ENVELOPE.into()),
            config: Descriptor::empty(),
            layers: vec![layer.clone()],
            subject: Some(image.descriptor.clone()),
            annotations: layer.annotations.clone(),
        };
        let blob = if layer.size > MAX_ATTESTATION_BLOB {
            Err(format!(
                "attestation blob of {} bytes exceeds the {MAX_ATTESTATION_BLOB}-byte limit",
                layer.size
            ))
        } else {
            client
                .get_blob(repo, &layer.digest, layer.size.min(MAX_ATTESTATION_BLOB))
                .await
                .map_err(|e| e.to_string())
        };
        out.push(Fetched {
            descriptor: layer,
            manifest: Ok(manifest),
            layer: blob,
            source: "cosign-att",
        });
    }
    // BuildKit attestation manifests, known from the index the image was reached through.
    for manifest in &image.buildkit {
        let bytes = client
            .get_manifest(repo, manifest.digest.as_str())
            .await
            .map_err(|e| e.to_string())
            .and_then(|m| m.map(|m| m.bytes).ok_or_else(|| "missing".to_string()));
        let mut layers = Vec::new();
        if let Ok(parsed) = bytes
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| ImageManifest::from_json(b).map_err(|e| e.to_string()))
        {
            for layer in parsed
                .layers
                .iter()
                .filter(|l| l.media_type == INTOTO_STATEMENT)
            {
                let blob = client
                    .get_blob(repo, &layer.digest, layer.size.min(MAX_ATTESTATION_BLOB))
                    .await
                    .map_err(|e| e.to_string());
                layers.push((layer.digest.clone(), blob));
            }
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
