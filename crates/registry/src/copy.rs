//! Raw copies between a registry and local files that keep every digest: what an air-gap bundle
//! (`cnb-attest export` and `import`) needs beside [`crate::attach()`] and
//! [`crate::cosign_tag::append`].
//!
//! Every read is bounded (manifests by [`crate::api::MAX_MANIFEST_SIZE`], blobs by the size their
//! descriptor states) and digest-checked; blobs are streamed to and from files, never held whole.

use std::path::Path;

use cnb_referrers::manifest::Descriptor;
use cnb_referrers::Digest;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};

use crate::api::MANIFEST_ACCEPT;
use crate::client::Client;
use crate::{Error, Repository};

/// Whether the manifest `digest` is in `repo` (`HEAD /manifests/<digest>`).
pub async fn manifest_exists(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
) -> Result<bool, Error> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    client
        .exists(repo, digest, "manifests", headers, "HEAD manifest")
        .await
}

/// Every referrer of `subject` readers find: the Referrers API merged with the `sha256-<hex>`
/// index (a tag holding something else is ignored where the API answers, as readers ignore it),
/// each digest once, in listing order.
pub async fn listed_referrers(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
) -> Result<Vec<Descriptor>, Error> {
    let api = client.referrers(repo, subject).await?;
    let api_answered = api.is_some();
    let mut listed = api.unwrap_or_default();
    match client.fallback_index(repo, subject).await {
        Err(Error::FallbackTagTaken(_)) if api_answered => {}
        other => {
            if let Some((index, _)) = other? {
                let bytes = serde_json::to_vec(&index).map_err(|e| {
                    Error::Malformed(format!("{repo}:{}: {e}", subject.fallback_tag()))
                })?;
                let index = cnb_referrers::ImageIndex::from_json(&bytes).map_err(|e| {
                    Error::Malformed(format!("{repo}:{}: {e}", subject.fallback_tag()))
                })?;
                listed.extend(index.manifests);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    listed.retain(|d| seen.insert(d.digest.clone()));
    Ok(listed)
}

/// Streams the blob `descriptor` names from `repo` into the file `dest` (through a temporary file
/// beside it, renamed into place once its digest and size are checked). `dest` must be built from
/// the validated digest by the caller.
pub async fn pull_blob(
    client: &Client,
    repo: &Repository,
    descriptor: &Descriptor,
    dest: &Path,
) -> Result<(), Error> {
    let io = |source| Error::Io {
        what: format!(
            "writing blob {repo}@{} to {}",
            descriptor.digest,
            dest.display()
        ),
        source,
    };
    let dir = dest.parent().ok_or_else(|| {
        io(std::io::Error::other(
            "the destination has no parent directory",
        ))
    })?;
    let tmp = dir.join(format!(
        ".tmp-pull-{}-{}",
        descriptor.digest.hex(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io)?;
    let result = async {
        let written = client
            .get_blob_to(repo, &descriptor.digest, descriptor.size, &mut file)
            .await?;
        if written != descriptor.size {
            return Err(Error::Malformed(format!(
                "blob {repo}@{} is {written} bytes, its descriptor says {}",
                descriptor.digest, descriptor.size
            )));
        }
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, dest).map_err(io)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Uploads a blob unless `repo` has it already (`HEAD` first); returns whether it was uploaded. A
/// streamed [`cnb_referrers::Blob`] is read from its source for each attempt, never held whole.
pub async fn push_blob(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    blob: &cnb_referrers::Blob,
) -> Result<bool, Error> {
    if client.blob_exists(repo, digest).await? {
        return Ok(false);
    }
    client.upload_planned_blob(repo, digest, size, blob).await?;
    Ok(true)
}

/// Pushes manifest `bytes` by their digest unless `repo` has that manifest already (`HEAD`
/// first); returns whether it was pushed. The bytes are sent as they are, so the digest is kept.
pub async fn push_manifest(
    client: &Client,
    repo: &Repository,
    bytes: &[u8],
    media_type: &str,
) -> Result<bool, Error> {
    let digest = Digest::of(bytes);
    if manifest_exists(client, repo, &digest).await? {
        return Ok(false);
    }
    client
        .put_manifest(repo, digest.as_str(), bytes, media_type, None)
        .await?;
    Ok(true)
}

/// What [`push_tag`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPush {
    /// The tag was absent and now names the bytes.
    Pushed,
    /// The tag already named these exact bytes.
    AlreadyPresent,
    /// The tag names another manifest (its digest): nothing was written.
    Different(Digest),
}

/// Points `tag` at manifest `bytes` (sent as they are) when the tag is absent; never moves a tag
/// that names another manifest ([`TagPush::Different`]: the caller decides). The tag is read back
/// after the write: a concurrent writer whose write landed after this one's is reported as
/// [`TagPush::Different`] too (for a cosign tag, the caller merges into it).
pub async fn push_tag(
    client: &Client,
    repo: &Repository,
    tag: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<TagPush, Error> {
    let digest = Digest::of(bytes);
    match client.get_manifest(repo, tag).await? {
        Some(fetched) if fetched.digest == digest => Ok(TagPush::AlreadyPresent),
        Some(fetched) => Ok(TagPush::Different(fetched.digest)),
        None => {
            client
                .put_manifest(repo, tag, bytes, media_type, None)
                .await?;
            match client.get_manifest(repo, tag).await? {
                Some(fetched) if fetched.digest != digest => Ok(TagPush::Different(fetched.digest)),
                _ => Ok(TagPush::Pushed),
            }
        }
    }
}

/// Points `tag` at manifest `bytes` whatever it named before (the image's own tag, as
/// `skopeo copy` moves it); returns whether it moved.
pub async fn set_tag(
    client: &Client,
    repo: &Repository,
    tag: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<bool, Error> {
    match push_tag(client, repo, tag, bytes, media_type).await? {
        TagPush::AlreadyPresent => Ok(false),
        TagPush::Pushed => Ok(true),
        TagPush::Different(_) => {
            client
                .put_manifest(repo, tag, bytes, media_type, None)
                .await?;
            Ok(true)
        }
    }
}
