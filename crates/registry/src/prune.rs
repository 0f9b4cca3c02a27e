//! Removing referrers of an image: `DELETE` each referrer manifest where the registry allows it,
//! then unlist the deleted ones from the `sha256-<hex>` tag-schema index by the same rules every
//! writer of that index follows (`attach`): read, change only our entries, write with `If-Match`
//! when the registry gave an ETag, start again from a fresh read when someone else wrote first.
//! Entries of other writers are never dropped, and a referrer the registry refused to delete stays
//! listed (it still exists).

use std::collections::BTreeSet;

use cnb_referrers::manifest::OCI_INDEX;
use cnb_referrers::Digest;
use serde::Serialize;
use serde_json::Value;

use crate::{AttachOptions, Client, Error, Repository};

/// What [`prune`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PruneReport {
    /// Referrer manifests deleted (or already gone).
    pub deleted: Vec<String>,
    /// Referrer manifests the registry does not allow to delete (405, 401, 403): kept, and kept
    /// listed.
    pub not_deletable: Vec<String>,
    /// Writes of the `sha256-<hex>` index (0 when there is none, or it listed none of them).
    pub index_writes: u32,
}

/// Deletes the referrers `digests` of `subject` in `repo` and unlists the deleted ones from its
/// tag-schema index (see the [module docs](self)).
pub async fn prune(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    digests: &[Digest],
    options: &AttachOptions,
) -> Result<PruneReport, Error> {
    let mut report = PruneReport::default();
    for digest in digests {
        if client.delete_manifest(repo, digest).await? {
            report.deleted.push(digest.to_string());
        } else {
            report.not_deletable.push(digest.to_string());
        }
    }
    let gone: BTreeSet<&str> = report.deleted.iter().map(String::as_str).collect();
    if gone.is_empty() {
        return Ok(report);
    }
    let tag = subject.fallback_tag();
    loop {
        let Some((mut index, etag)) = client.fallback_index(repo, subject).await? else {
            return Ok(report);
        };
        let entries = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::Malformed(format!("{repo}:{tag} has no manifests array")))?;
        let before = entries.len();
        entries.retain(|e| {
            !e.get("digest")
                .and_then(Value::as_str)
                .is_some_and(|d| gone.contains(d))
        });
        if entries.len() == before {
            return Ok(report);
        }
        if report.index_writes >= options.max_index_writes {
            return Err(Error::IndexContention(format!(
                "{repo}:{tag}: pruned referrers still listed after {} writes",
                report.index_writes
            )));
        }
        if let Some(object) = index.as_object_mut() {
            object.insert("mediaType".into(), Value::String(OCI_INDEX.into()));
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| Error::Malformed(format!("index: {e}")))?;
        report.index_writes += 1;
        match client
            .put_manifest(repo, &tag, &bytes, OCI_INDEX, etag.as_deref())
            .await
        {
            // Read again: done when none of ours is listed any more.
            Ok(_) | Err(Error::PreconditionFailed(_)) => continue,
            Err(e) => return Err(e),
        }
    }
}
