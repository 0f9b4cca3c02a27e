//! cosign 2's tag layout: `sha256-<hex>.att` (attestations) and `sha256-<hex>.sig` (signatures),
//! ONE manifest per image whose layers are the entries. Adding an entry is a read-modify-write of
//! that tag, racing other writers exactly like the referrers tag schema, so it gets the same
//! treatment: append only what is missing, keep every layer others wrote (as raw JSON), `If-Match`
//! when an ETag is offered, read back and repair, bounded. Each write merges a read made just
//! before it (the layer blobs go up first), and the wait before the read back follows the
//! measured read→write gap ([`crate::settle`]).

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use cnb_referrers::format::legacy_config;
use cnb_referrers::manifest::{Descriptor, OCI_IMAGE_CONFIG, OCI_MANIFEST};
use cnb_referrers::Digest;
use serde_json::Value;

use crate::attach::AttachOptions;
use crate::client::Client;
use crate::settle::{self, Written};
use crate::Error;
use crate::Repository;

/// cosign refuses more layers than this in one `.sig`/`.att` manifest.
pub const MAX_LAYERS: usize = 1000;

/// What appending to a cosign tag did.
#[derive(Debug, Clone, Default)]
pub struct TagReport {
    /// Layer digests that were already in the tag before this run.
    pub present_before: BTreeSet<String>,
    /// Layer digests in the tag at the end.
    pub present_after: BTreeSet<String>,
    /// Blobs uploaded (layers and configs).
    pub blobs_uploaded: usize,
    /// Writes of the tag.
    pub writes: u32,
}

/// Appends `layers` to the `sha256-<hex>.<suffix>` manifest of `subject` in `repo`.
pub async fn append(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    suffix: &str,
    layers: &[(Descriptor, Vec<u8>)],
    options: &AttachOptions,
) -> Result<TagReport, Error> {
    let tag = format!("{}.{suffix}", subject.fallback_tag());
    let mut report = TagReport::default();
    let mut first = true;
    // Layer blobs known to be in the repository: uploaded (or found) before a fresh read, so they
    // never sit between the read a write merges and the write.
    let mut ensured: BTreeSet<String> = BTreeSet::new();
    let mut read_started = Instant::now();
    let mut current = client.get_manifest(repo, &tag).await?;
    let mut failed_writes = 0u32;
    // The read a failed write merged, when that write may have landed all the same (its answer
    // was lost): found listed afterwards, our entries get the wait and read back of a write.
    let mut unsettled: Option<Instant> = None;
    loop {
        let (mut manifest, etag) = match current.take() {
            Some(fetched) => {
                let value: Value = serde_json::from_slice(&fetched.bytes)
                    .map_err(|e| Error::Malformed(format!("{repo}:{tag}: {e}")))?;
                if !value["layers"].is_array() || !value["config"].is_object() {
                    return Err(Error::FallbackTagTaken(format!(
                        "{repo}:{tag} is not a cosign {suffix} manifest; refusing to overwrite it"
                    )));
                }
                (value, fetched.etag)
            }
            None => (
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}),
                None,
            ),
        };
        let present: BTreeSet<String> = manifest["layers"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l["digest"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if first {
            report.present_before = present.clone();
            first = false;
        }
        let missing: Vec<&(Descriptor, Vec<u8>)> = layers
            .iter()
            .filter(|(d, _)| !present.contains(d.digest.as_str()))
            .collect();
        if missing.is_empty() {
            if settle::after_lost_answer(client, &repo.host, &mut unsettled, options.settle).await {
                read_started = Instant::now();
                current = client.get_manifest(repo, &tag).await?;
                continue;
            }
            report.present_after = present;
            return Ok(report);
        }
        if report.writes >= options.max_index_writes {
            return Err(Error::IndexContention(format!(
                "{repo}:{tag}: {} entr(ies) still missing after {} writes",
                missing.len(),
                report.writes
            )));
        }
        let entries = manifest["layers"]
            .as_array_mut()
            .ok_or_else(|| Error::Malformed(format!("{repo}:{tag}: layers")))?;
        if entries.len() + missing.len() > MAX_LAYERS {
            return Err(Error::Malformed(format!(
                "{repo}:{tag} would hold more than cosign's {MAX_LAYERS} layers"
            )));
        }
        let unensured: Vec<&&(Descriptor, Vec<u8>)> = missing
            .iter()
            .filter(|(d, _)| !ensured.contains(d.digest.as_str()))
            .collect();
        if !unensured.is_empty() {
            for (descriptor, bytes) in unensured {
                // The same envelope may already be up as a `dsse` referrer's layer: never
                // re-upload (a re-upload rewrites the blob's link, see `attach`).
                if !client.blob_exists(repo, &descriptor.digest).await? {
                    client
                        .upload_blob(repo, &descriptor.digest, Bytes::copy_from_slice(bytes))
                        .await?;
                    report.blobs_uploaded += 1;
                }
                ensured.insert(descriptor.digest.to_string());
            }
            // The uploads took time: merge a read made now, not the one before them.
            read_started = Instant::now();
            current = client.get_manifest(repo, &tag).await?;
            continue;
        }
        for (descriptor, _) in &missing {
            entries.push(
                serde_json::to_value(descriptor)
                    .map_err(|e| Error::Malformed(format!("layer descriptor: {e}")))?,
            );
        }
        let diff_ids: Vec<String> = entries
            .iter()
            .filter_map(|l| l["digest"].as_str().map(str::to_string))
            .collect();
        // The config lists every layer, so it can only be made after the merge: it is the one
        // upload inside the read→write gap, and the measured gap includes it.
        let config = legacy_config(&diff_ids);
        let config_descriptor = Descriptor::for_bytes(OCI_IMAGE_CONFIG, &config);
        if !client.blob_exists(repo, &config_descriptor.digest).await? {
            client
                .upload_blob(repo, &config_descriptor.digest, Bytes::from(config))
                .await?;
            report.blobs_uploaded += 1;
        }
        manifest["config"] = serde_json::to_value(&config_descriptor)
            .map_err(|e| Error::Malformed(format!("config descriptor: {e}")))?;
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Malformed(format!("{repo}:{tag}: {e}")))?;
        let backoff = client.retry_policy().delay(failed_writes, None);
        let written = match client
            .put_merged_manifest(repo, &tag, &bytes, &media_type, etag.as_deref())
            .await
        {
            Ok(_) if etag.is_some() && client.if_match_honoured(&repo.host) => Written::Guarded,
            Ok(_) => Written::Unguarded,
            Err(Error::PreconditionFailed(_)) => Written::Refused,
            // Failed on the way: never the same merge again (see `settle::after_failed_write`).
            Err(e) => {
                if !settle::after_failed_write(
                    client,
                    &e,
                    &mut failed_writes,
                    &mut unsettled,
                    read_started,
                    backoff,
                )
                .await
                {
                    return Err(e);
                }
                read_started = Instant::now();
                current = client.get_manifest(repo, &tag).await?;
                continue;
            }
        };
        unsettled = None;
        report.writes += 1;
        settle::after_write(client, &repo.host, read_started, written, options.settle).await;
        read_started = Instant::now();
        current = client.get_manifest(repo, &tag).await?;
    }
}

/// The entries of a cosign tag: `(layer descriptor, manifest)`, empty when the tag is absent.
pub async fn entries(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    suffix: &str,
) -> Result<Vec<Descriptor>, Error> {
    let tag = format!("{}.{suffix}", subject.fallback_tag());
    let Some(fetched) = client.get_manifest(repo, &tag).await? else {
        return Ok(Vec::new());
    };
    let manifest = cnb_referrers::ImageManifest::from_json(&fetched.bytes)
        .map_err(|e| Error::Malformed(format!("{repo}:{tag}: {e}")))?;
    Ok(manifest.layers)
}
