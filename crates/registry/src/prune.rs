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

use crate::api::Deletion;
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
    /// Referrer manifests whose `DELETE` failed (after the client's retries): kept, and kept
    /// listed. The others are still deleted and unlisted.
    pub failed: Vec<PruneFailure>,
    /// Why the deleted referrers could not be unlisted from the `sha256-<hex>` index, when they
    /// could not (readers then find listed referrers that no longer exist).
    pub unlist_error: Option<String>,
}

impl PruneReport {
    /// Whether everything asked for was either deleted and unlisted, or is not deletable here.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.unlist_error.is_none()
    }
}

/// A referrer whose `DELETE` failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PruneFailure {
    /// The referrer manifest's digest.
    pub digest: String,
    /// The registry's or the transport's error.
    pub error: String,
}

/// Deletes the referrers `digests` of `subject` in `repo` and unlists the deleted ones from its
/// tag-schema index (see the [module docs](self)). A failed `DELETE` does not stop the others,
/// and whatever was deleted is unlisted; failures are in the report ([`PruneReport::complete`]),
/// never lost with it.
pub async fn prune(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    digests: &[Digest],
    options: &AttachOptions,
) -> PruneReport {
    let mut report = PruneReport::default();
    for digest in digests {
        match client.delete_manifest(repo, digest).await {
            Ok(Deletion::Deleted | Deletion::NotFound) => report.deleted.push(digest.to_string()),
            Ok(Deletion::NotAllowed) => report.not_deletable.push(digest.to_string()),
            Err(e) => report.failed.push(PruneFailure {
                digest: digest.to_string(),
                error: e.to_string(),
            }),
        }
    }
    if let Err(e) = unlist(client, repo, subject, options, &mut report).await {
        report.unlist_error = Some(e.to_string());
    }
    report
}

/// Unlists the deleted referrers of `report` from the `sha256-<hex>` index.
async fn unlist(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    options: &AttachOptions,
    report: &mut PruneReport,
) -> Result<(), Error> {
    let deleted = report.deleted.clone();
    let gone: BTreeSet<&str> = deleted.iter().map(String::as_str).collect();
    if gone.is_empty() {
        return Ok(());
    }
    let tag = subject.fallback_tag();
    let mut failed_writes = 0u32;
    loop {
        let Some((mut index, etag)) = client.fallback_index(repo, subject).await? else {
            return Ok(());
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
            return Ok(());
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
        let backoff = client.retry_policy().delay(failed_writes, None);
        match client
            .put_merged_manifest(repo, &tag, &bytes, OCI_INDEX, etag.as_deref())
            .await
        {
            // Read again: done when none of ours is listed any more.
            Ok(_) | Err(Error::PreconditionFailed(_)) => continue,
            // Failed on the way: never the same merge again after a backoff (it would drop what
            // signers added meanwhile); back off, then read again and merge that.
            Err(e)
                if e.is_retryable()
                    && failed_writes + 1 < client.retry_policy().max_attempts
                    && client.may_wait(backoff) =>
            {
                failed_writes += 1;
                client.note_retry();
                tokio::time::sleep(backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}
