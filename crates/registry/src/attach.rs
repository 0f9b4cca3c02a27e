//! Attaching referrers to an image: the Referrers API, or the Referrers Tag Schema where a
//! registry lacks it, batched, concurrent and idempotent.
//!
//! 1. Find what is already attached: `GET /referrers/<subject>` (which also probes the API), merged,
//!    as readers merge it, with the `sha256-<hex>` index when the API is missing (404) or does not
//!    list every referrer of the run. Referrers are content-addressed and deterministic, so one
//!    already listed is skipped entirely: a re-run uploads nothing and creates nothing.
//! 2. Upload the blobs of the new referrers, concurrently (bounded). The first, smallest blob (the
//!    2-byte empty config) learns whether the registry completes single-`POST` uploads.
//! 3. Push each new manifest by digest, concurrently. The registry's `OCI-Subject` answer on *every*
//!    push, plus a successful probe, is its claim that it indexes referrers itself.
//! 4. A claim is not a listing: read the Referrers API back ONCE for the run (retried a few times
//!    with backoff while something is missing, for registries that index asynchronously). What it
//!    still does not list goes into the `sha256-<hex>` index, as the distribution spec has clients
//!    do where the registry does not process the subject.
//! 5. Otherwise (no claim, or the claim not borne out) update the `sha256-<hex>` index ONCE for the
//!    run: read it afresh, union-merge with what is there (never dropping others' entries) and
//!    write it at once, `If-Match` when the registry offers an ETag. Then read it back and repair
//!    if a concurrent writer lost our entries (bounded). Only a writer that read before our write
//!    and wrote after it can lose them, and every writer writes one round trip after its read, so
//!    the read back waits a small multiple of the longest read→write gap measured in the run
//!    ([`crate::settle`]; capped by [`AttachOptions::settle`]), and not at all after a write a
//!    registry that honours `If-Match` guarded. An index that reads back absent after it was
//!    written is read again with backoff, never rewritten blindly.
//!
//! A referrer is reported discoverable only when one of these reads listed it; otherwise its
//! [`Outcome::not_listed`] says what became of the index.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cnb_referrers::manifest::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use cnb_referrers::{Blob, Digest, Referrer};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::settle::{self, Written};
use crate::Error;
use crate::Repository;

/// Blobs at least this large are checked with `HEAD` before upload; smaller ones are uploaded
/// directly, which costs the same requests as checking and keeps re-uploads cheap.
pub const HEAD_BEFORE_UPLOAD: usize = 4 * 1024 * 1024;

/// Settings for [`attach`].
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Uploads and manifest pushes in flight at once.
    pub concurrency: usize,
    /// The cap on the wait after writing the fallback index (or a cosign tag) before reading it
    /// back. The wait itself follows the read→write gap measured in the run ([`crate::settle`]):
    /// 4 × the longest one, at least 50 ms, at most this, jittered up by at most half; never less
    /// than twice a gap measured longer than half of this; none after a write the registry
    /// guarded with `If-Match`.
    pub settle: Duration,
    /// Fallback index rewrites allowed before giving up.
    pub max_index_writes: u32,
    /// Reads of a listing after writing it, while what was written is missing (at least 1): the
    /// Referrers API after the pushes, the `sha256-<hex>` index when it reads back absent.
    pub readback_attempts: u32,
    /// Wait before the second read back; doubled for each further one (4 attempts from 200 ms wait
    /// 1.4 s in all).
    pub readback_delay: Duration,
    /// Show upload progress on stderr (set it when stderr is a terminal; CI stays quiet).
    pub progress: bool,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            concurrency: 8,
            settle: Duration::from_millis(1500),
            max_index_writes: 12,
            readback_attempts: 4,
            readback_delay: Duration::from_millis(200),
            progress: false,
        }
    }
}

impl AttachOptions {
    /// The defaults, with progress shown when stderr is a terminal (silent in CI and pipes).
    pub fn with_progress_on_terminal() -> Self {
        AttachOptions {
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ..AttachOptions::default()
        }
    }
}

pub use cnb_referrers::{NotListed, Status};

/// One referrer's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Outcome {
    /// The referrer manifest digest.
    pub digest: String,
    /// What happened.
    pub status: Status,
    /// Whether readers find it: the Referrers API or the `sha256-<hex>` index listed it when read
    /// back in this run.
    pub discoverable: bool,
    /// When it is not discoverable: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_listed: Option<NotListed>,
}

/// What [`attach`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AttachReport {
    /// The registry indexes referrers itself: it answered `OCI-Subject` and its Referrers API, read
    /// back, lists every referrer of the run.
    pub referrers_api: bool,
    /// Writes of the `sha256-<hex>` index (0 on the API path and on a re-run).
    pub index_writes: u32,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Manifests pushed.
    pub manifests_created: usize,
    /// Per referrer, in input order.
    pub outcomes: Vec<Outcome>,
}

impl AttachReport {
    /// Whether every referrer is discoverable.
    pub fn all_discoverable(&self) -> bool {
        self.outcomes.iter().all(|o| o.discoverable)
    }
}

/// One status line on stderr, rewritten in place.
struct Progress {
    enabled: bool,
    blobs: (AtomicUsize, usize),
    manifests: (AtomicUsize, usize),
    bytes: (AtomicUsize, usize),
}

impl Progress {
    fn new(enabled: bool, blobs: usize, manifests: usize, bytes: usize) -> Self {
        Progress {
            enabled,
            blobs: (AtomicUsize::new(0), blobs),
            manifests: (AtomicUsize::new(0), manifests),
            bytes: (AtomicUsize::new(0), bytes),
        }
    }

    fn blob(&self, size: usize) {
        self.blobs.0.fetch_add(1, Ordering::Relaxed);
        self.bytes.0.fetch_add(size, Ordering::Relaxed);
        self.draw();
    }

    fn manifest(&self) {
        self.manifests.0.fetch_add(1, Ordering::Relaxed);
        self.draw();
    }

    fn draw(&self) {
        if !self.enabled {
            return;
        }
        let kib = |n: usize| n.div_ceil(1024);
        eprint!(
            "\r  blobs {}/{} ({}/{} KiB), manifests {}/{}   ",
            self.blobs.0.load(Ordering::Relaxed),
            self.blobs.1,
            kib(self.bytes.0.load(Ordering::Relaxed)),
            kib(self.bytes.1),
            self.manifests.0.load(Ordering::Relaxed),
            self.manifests.1
        );
    }

    fn finish(&self) {
        if self.enabled && (self.blobs.1 > 0 || self.manifests.1 > 0) {
            eprintln!();
        }
    }
}

/// Attaches `referrers` (all with `subject` as their subject) to the image in `repo`.
pub async fn attach(
    client: &Client,
    repo: &Repository,
    subject: &Descriptor,
    referrers: &[Referrer],
    options: &AttachOptions,
) -> Result<AttachReport, Error> {
    // 1. What is attached already: the Referrers API, merged with the tag-schema index as readers
    // merge them when the API is missing or does not list all of ours (a registry whose API omits
    // what it was sent keeps this run's referrers in the index, and a re-run must find them there).
    let api_listing = client.referrers(repo, &subject.digest).await?;
    let probe_ok = api_listing.is_some();
    let mut api_listed: BTreeSet<String> = api_listing
        .iter()
        .flatten()
        .map(|d| d.digest.to_string())
        .collect();
    let mut existing = api_listed.clone();
    let mut fallback = None;
    if !probe_ok
        || referrers
            .iter()
            .any(|r| !existing.contains(r.descriptor.digest.as_str()))
    {
        match client.fallback_index(repo, &subject.digest).await {
            // Where the API answers, readers ignore a tag holding something else; so does this
            // look, and a later write to it is refused by the same check.
            Err(Error::FallbackTagTaken(_)) if probe_ok => {}
            index => {
                let index = index?;
                if let Some((value, _)) = &index {
                    existing.extend(entry_digests(value));
                }
                fallback = Some(index);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let new: Vec<&Referrer> = referrers
        .iter()
        .filter(|r| {
            let d = r.descriptor.digest.to_string();
            !existing.contains(&d) && seen.insert(d)
        })
        .collect();

    // 2. Blobs, smallest first so the empty config probes single-POST support.
    let mut blobs: BTreeMap<Digest, (u64, &Blob)> = BTreeMap::new();
    for r in &new {
        for (descriptor, blob) in &r.blobs {
            blobs
                .entry(descriptor.digest.clone())
                .or_insert((descriptor.size, blob));
        }
    }
    let mut ordered: Vec<(Digest, (u64, &Blob))> = blobs.into_iter().collect();
    ordered.sort_by_key(|(_, (size, _))| *size);
    let progress = Progress::new(
        options.progress,
        ordered.len(),
        new.len(),
        ordered.iter().map(|(_, (size, _))| *size as usize).sum(),
    );
    let progress = &progress;
    let mut blobs_uploaded = 0;
    let mut rest = ordered.into_iter();
    if let Some((digest, (size, blob))) = rest.next() {
        // The smallest blob is the 2-byte empty config every referrer shares, so every signer of
        // every image uploads it: check first and never re-upload it (a re-upload rewrites its link
        // in the repository, and Distribution does that non-atomically, so a concurrent signer's
        // manifest push can find the blob "unknown"). It still teaches single-POST support.
        if client.blob_exists(repo, &digest).await? {
            if let Some(bytes) = blob.as_bytes() {
                if client.single_post(&repo.host).is_none()
                    && bytes.len() <= crate::api::SINGLE_POST_PROBE_MAX
                {
                    client
                        .probe_single_post(repo, &digest, Bytes::copy_from_slice(bytes))
                        .await?;
                }
            }
        } else {
            client
                .upload_planned_blob(repo, &digest, size, blob)
                .await?;
            blobs_uploaded += 1;
            progress.blob(size as usize);
        }
    }
    blobs_uploaded += stream::iter(rest.map(|(digest, (size, blob))| async move {
        let uploaded = upload(client, repo, &digest, size, blob).await?;
        progress.blob(size as usize);
        Ok::<bool, Error>(uploaded)
    }))
    .buffer_unordered(options.concurrency.max(1))
    .try_fold(
        0usize,
        |n, uploaded| async move { Ok(n + uploaded as usize) },
    )
    .await?;

    // 3. Manifests by digest.
    let subjects_seen: Vec<bool> = stream::iter(new.iter().map(|r| async move {
        let mut attempt = 0;
        let put = loop {
            match client
                .put_manifest(
                    repo,
                    r.descriptor.digest.as_str(),
                    &r.manifest_bytes,
                    OCI_MANIFEST,
                    None,
                )
                .await
            {
                // We uploaded every blob this manifest names; "unknown" is the registry catching up.
                Err(e) if e.is_blob_unknown() && attempt < 4 => {
                    client.note_retry();
                    tokio::time::sleep(client.retry_policy().delay(attempt, None)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        progress.manifest();
        Ok::<bool, Error>(put.oci_subject.as_deref() == Some(subject.digest.as_str()))
    }))
    .buffer_unordered(options.concurrency.max(1))
    .try_collect()
    .await?;
    progress.finish();
    let claims_api = probe_ok && subjects_seen.iter().all(|s| *s);

    // 4. The claim, read back: the listing readers see, not the header, decides.
    let mut listed = existing.clone();
    if claims_api && !new.is_empty() {
        let wanted: BTreeSet<String> = new
            .iter()
            .map(|r| r.descriptor.digest.to_string())
            .collect();
        api_listed.extend(read_back_api(client, repo, &subject.digest, &wanted, options).await?);
        listed.extend(api_listed.iter().cloned());
    }
    let unlisted = |listed: &BTreeSet<String>| -> Vec<&Descriptor> {
        let mut seen = BTreeSet::new();
        referrers
            .iter()
            .map(|r| &r.descriptor)
            .filter(|d| !listed.contains(d.digest.as_str()) && seen.insert(d.digest.clone()))
            .collect()
    };
    let referrers_api = claims_api && unlisted(&api_listed).is_empty();

    // 5. The tag-schema index, when the registry does not index referrers itself (no claim), or
    // did not list what it claimed to.
    let mut index_writes = 0;
    let mut not_listed = None;
    let ours: Vec<&Descriptor> = if claims_api {
        unlisted(&listed)
    } else {
        referrers.iter().map(|r| &r.descriptor).collect()
    };
    if !ours.is_empty() {
        let updated =
            update_fallback_index(client, repo, &subject.digest, &ours, fallback, options).await;
        match updated {
            Ok(update) => {
                index_writes = update.writes;
                if update.absent {
                    not_listed = Some(NotListed::TagIndexAbsent);
                }
                listed.extend(update.listed);
            }
            // The manifests are pushed and the registry claimed to list them: its refusal of the
            // index is this run's finding, reported per referrer. Without a claim it stays an
            // error, as it always was (nothing of the run could be listed at all).
            Err(e) if claims_api && index_refusal(&e) => {
                not_listed = Some(match e {
                    Error::IndexContention(_) => NotListed::TagIndexOmits,
                    other => NotListed::TagIndexRefused {
                        detail: other.to_string(),
                    },
                });
            }
            Err(e) => return Err(e),
        }
    }

    let outcomes = referrers
        .iter()
        .map(|r| {
            let digest = r.descriptor.digest.to_string();
            let discoverable = listed.contains(&digest);
            Outcome {
                status: if existing.contains(&digest) {
                    Status::AlreadyPresent
                } else {
                    Status::Pushed
                },
                discoverable,
                not_listed: if discoverable {
                    None
                } else {
                    Some(not_listed.clone().unwrap_or(NotListed::TagIndexOmits))
                },
                digest,
            }
        })
        .collect();
    Ok(AttachReport {
        referrers_api,
        index_writes,
        blobs_uploaded,
        manifests_created: new.len(),
        outcomes,
    })
}

async fn upload(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    blob: &Blob,
) -> Result<bool, Error> {
    if size >= HEAD_BEFORE_UPLOAD as u64 && client.blob_exists(repo, digest).await? {
        return Ok(false);
    }
    client.upload_planned_blob(repo, digest, size, blob).await?;
    Ok(true)
}

/// Reads the Referrers API until it lists every one of `wanted` or
/// [`AttachOptions::readback_attempts`] reads were made (waiting [`AttachOptions::readback_delay`],
/// doubled each time, between them); returns every digest it listed. A registry that stops serving
/// the API (404) lists nothing.
async fn read_back_api(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    wanted: &BTreeSet<String>,
    options: &AttachOptions,
) -> Result<BTreeSet<String>, Error> {
    let mut listed = BTreeSet::new();
    for attempt in 0..options.readback_attempts.max(1) {
        if attempt > 0 {
            client.note_retry();
            tokio::time::sleep(readback_wait(options, attempt)).await;
        }
        let Some(page) = client.referrers(repo, subject).await? else {
            break;
        };
        listed.extend(page.iter().map(|d| d.digest.to_string()));
        if wanted.is_subset(&listed) {
            break;
        }
    }
    Ok(listed)
}

/// The wait before read back number `attempt` (1-based retries): the delay, doubled each time.
fn readback_wait(options: &AttachOptions, attempt: u32) -> Duration {
    options
        .readback_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(8))
}

/// Whether writing the `sha256-<hex>` index failed because the registry will not keep it (a
/// refusal, a tag holding something else, an index that never lists ours), as opposed to a
/// transport failure or a protocol violation, which stay errors.
fn index_refusal(e: &Error) -> bool {
    match e {
        // 408 and 429 are "not now", never a refusal to keep the index.
        Error::Status { status, .. } => (400..500).contains(status) && !e.is_retryable(),
        Error::Denied { .. } | Error::FallbackTagTaken(_) | Error::IndexContention(_) => true,
        _ => false,
    }
}

fn entry_digests(index: &Value) -> BTreeSet<String> {
    index
        .get("manifests")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|e| e.get("digest").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Index writes refused because a listed manifest read as unknown, retried before giving up.
const MAX_UNKNOWN_CHILD_RETRIES: u32 = 5;

/// What [`update_fallback_index`] left behind.
struct IndexUpdate {
    /// The digests the index listed when last read.
    listed: BTreeSet<String>,
    /// Writes made.
    writes: u32,
    /// After a write, the index read back absent every time it was read.
    absent: bool,
}

/// Read-merge-write of the `sha256-<hex>` index until every one of `ours` is listed and stays
/// listed after a wait that follows the measured read→write gap ([`crate::settle`]).
///
/// `held` is the index as step 1 read it, before the uploads: enough to see that nothing is
/// missing (a re-run writes nothing and reads nothing more), never merged into a write. Every
/// write merges a read made immediately before it, so this writer's own read→write gap, which
/// bounds how late its stale write can land on another signer's entries, is one round trip.
async fn update_fallback_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    ours: &[&Descriptor],
    held: Option<Option<(Value, Option<String>)>>,
    options: &AttachOptions,
) -> Result<IndexUpdate, Error> {
    let tag = subject.fallback_tag();
    // The index to merge and when its read started; `None` while only the stale one is held.
    let mut read_started = None;
    let mut current = match held {
        Some(index) => index,
        None => {
            read_started = Some(Instant::now());
            client.fallback_index(repo, subject).await?
        }
    };
    let mut writes = 0u32;
    let mut unknown_child_retries = 0u32;
    let mut failed_writes = 0u32;
    // The read a failed write merged, when that write may have landed all the same (its answer
    // was lost): found listed afterwards, our entries get the wait and read back of a write.
    let mut unsettled: Option<Instant> = None;
    loop {
        let present = current
            .as_ref()
            .map(|(index, _)| entry_digests(index))
            .unwrap_or_default();
        if ours.iter().all(|d| present.contains(d.digest.as_str())) {
            if settle::after_lost_answer(client, &repo.host, &mut unsettled, options.settle).await {
                read_started = Some(Instant::now());
                current = client.fallback_index(repo, subject).await?;
                continue;
            }
            return Ok(IndexUpdate {
                listed: present,
                writes,
                absent: false,
            });
        }
        let Some(started) = read_started else {
            // Something is missing and the index held was read before the uploads: read it again
            // now, so the merge below is of a read one round trip old.
            read_started = Some(Instant::now());
            current = client.fallback_index(repo, subject).await?;
            continue;
        };
        let (mut index, etag) = current.take().unwrap_or_else(|| {
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
                None,
            )
        });
        let missing: Vec<&&Descriptor> = ours
            .iter()
            .filter(|d| !present.contains(d.digest.as_str()))
            .collect();
        if writes >= options.max_index_writes {
            return Err(Error::IndexContention(format!(
                "{repo}:{tag}: {} referrer(s) still missing after {writes} writes",
                missing.len()
            )));
        }
        let entries = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::Malformed(format!("{repo}:{tag} has no manifests array")))?;
        for descriptor in missing {
            entries.push(
                serde_json::to_value(descriptor)
                    .map_err(|e| Error::Malformed(format!("descriptor: {e}")))?,
            );
        }
        if let Some(object) = index.as_object_mut() {
            object.insert("mediaType".into(), Value::String(OCI_INDEX.into()));
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| Error::Malformed(format!("index: {e}")))?;
        let backoff = client.retry_policy().delay(failed_writes, None);
        let written = match client
            .put_merged_manifest(repo, &tag, &bytes, OCI_INDEX, etag.as_deref())
            .await
        {
            Ok(_) => {
                writes += 1;
                if etag.is_some() && client.if_match_honoured(&repo.host) {
                    Written::Guarded
                } else {
                    Written::Unguarded
                }
            }
            // Someone else wrote first: start again from a fresh read.
            Err(Error::PreconditionFailed(_)) => {
                writes += 1;
                Written::Refused
            }
            // Distribution checks that every manifest an index lists exists, reading each one's
            // link file; a concurrent signer pushing the same manifest (an image signature is the
            // same deterministic referrer for every signer with that key) rewrites that file
            // non-atomically, so for a moment the child reads as unknown. Nothing was written:
            // wait and start again from a fresh read, a bounded number of times.
            Err(e) if e.is_blob_unknown() && unknown_child_retries < MAX_UNKNOWN_CHILD_RETRIES => {
                unknown_child_retries += 1;
                client.note_retry();
                tokio::time::sleep(client.retry_policy().delay(unknown_child_retries - 1, None))
                    .await;
                read_started = Some(Instant::now());
                current = client.fallback_index(repo, subject).await?;
                continue;
            }
            // Failed on the way: never the same merge again (see `settle::after_failed_write`).
            Err(e) => {
                if !settle::after_failed_write(
                    client,
                    &e,
                    &mut failed_writes,
                    &mut unsettled,
                    started,
                    backoff,
                )
                .await
                {
                    return Err(e);
                }
                read_started = Some(Instant::now());
                current = client.fallback_index(repo, subject).await?;
                continue;
            }
        };
        unsettled = None;
        settle::after_write(client, &repo.host, started, written, options.settle).await;
        read_started = Some(Instant::now());
        current = client.fallback_index(repo, subject).await?;
        // Concurrent writers merge, none removes the tag: an index absent right after a write is
        // a registry that is slow to show it (read again, with backoff) or one that does not
        // serve it (stop; rewriting would change nothing).
        let mut attempt = 1;
        while current.is_none() && attempt < options.readback_attempts {
            client.note_retry();
            tokio::time::sleep(readback_wait(options, attempt)).await;
            read_started = Some(Instant::now());
            current = client.fallback_index(repo, subject).await?;
            attempt += 1;
        }
        if current.is_none() {
            return Ok(IndexUpdate {
                listed: BTreeSet::new(),
                writes,
                absent: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lasting_refusal_of_the_index_is_a_reason_never_a_request_to_come_back_later() {
        let status = |code: u16| Error::status("PUT manifest", code, b"");
        for refused in [400, 403, 404, 405] {
            assert!(index_refusal(&status(refused)), "{refused}");
        }
        for later in [408, 429, 500, 503] {
            assert!(!index_refusal(&status(later)), "{later}");
        }
    }

    #[test]
    fn the_read_back_waits_are_doubled_and_bounded() {
        let options = AttachOptions::default();
        let total: Duration = (1..options.readback_attempts)
            .map(|attempt| readback_wait(&options, attempt))
            .sum();
        assert_eq!(readback_wait(&options, 1), Duration::from_millis(200));
        assert_eq!(readback_wait(&options, 3), Duration::from_millis(800));
        assert_eq!(total, Duration::from_millis(1400));
    }

    #[test]
    fn only_refusals_of_the_index_become_a_reason() {
        let refusal = Error::Status {
            what: "PUT manifest".into(),
            status: 405,
            codes: Vec::new(),
            detail: String::new(),
        };
        let unavailable = Error::Status {
            what: "PUT manifest".into(),
            status: 503,
            codes: Vec::new(),
            detail: String::new(),
        };
        assert!(index_refusal(&refusal));
        assert!(index_refusal(&Error::FallbackTagTaken("x".into())));
        assert!(index_refusal(&Error::IndexContention("x".into())));
        assert!(!index_refusal(&unavailable));
        assert!(!index_refusal(&Error::Malformed("x".into())));
    }
}
