//! Registry operations on manifests, blobs and referrers (OCI distribution spec v1.1).

use bytes::Bytes;
use cnb_referrers::manifest::{Descriptor, ImageIndex, OCI_INDEX, OCI_MANIFEST};
use cnb_referrers::Digest;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION,
};
use reqwest::{Method, StatusCode};

use crate::client::{body_error, check_document, read_bounded, Body, Client, Request};
use crate::Error;
use crate::Repository;

/// Largest manifest read (the common registry limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// Referrer pages followed (`Link: rel="next"`) before giving up.
pub const MAX_REFERRER_PAGES: usize = 16;
/// Bodies up to this size may be sent in a single `POST ...?digest=` while it is unknown whether
/// the registry completes uploads that way (a registry that does not may drop the body).
pub const SINGLE_POST_PROBE_MAX: usize = 4096;

/// Media types accepted when fetching manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// What a `DELETE` of a manifest did ([`Client::delete_manifest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The registry deleted it.
    Deleted,
    /// It was not there (404).
    NotFound,
    /// The registry does not allow deleting it (405, 401, 403).
    NotAllowed,
}

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Exact bytes.
    pub bytes: Vec<u8>,
    /// `Content-Type`.
    pub media_type: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// `ETag`, when the registry sent one (for `If-Match`).
    pub etag: Option<String>,
}

/// Where [`Client::get_blob_to`] writes a blob. A read cut short starts over from the
/// beginning, so a sink must be able to go back to where the blob started: [`BlobSink::mark`]
/// before the first byte, [`BlobSink::reset`] to it before each new attempt.
pub trait BlobSink: std::io::Write {
    /// Where the blob starts (a length, a file position).
    fn mark(&mut self) -> std::io::Result<u64>;
    /// Drops everything written after `mark` and continues writing there.
    fn reset(&mut self, mark: u64) -> std::io::Result<()>;
}

impl BlobSink for Vec<u8> {
    fn mark(&mut self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn reset(&mut self, mark: u64) -> std::io::Result<()> {
        self.truncate(usize::try_from(mark).unwrap_or(usize::MAX));
        Ok(())
    }
}

impl BlobSink for std::fs::File {
    fn mark(&mut self) -> std::io::Result<u64> {
        std::io::Seek::stream_position(self)
    }

    fn reset(&mut self, mark: u64) -> std::io::Result<()> {
        self.set_len(mark)?;
        std::io::Seek::seek(self, std::io::SeekFrom::Start(mark)).map(|_| ())
    }
}

/// What a manifest `PUT` said.
#[derive(Debug, Clone)]
pub struct Put {
    /// The `OCI-Subject` header: the registry processed the `subject` for the Referrers API.
    pub oci_subject: Option<String>,
}

fn header(
    name: &'static str,
    value: &str,
) -> Result<(reqwest::header::HeaderName, HeaderValue), Error> {
    Ok((
        reqwest::header::HeaderName::from_static(name),
        HeaderValue::from_str(value)
            .map_err(|_| Error::Malformed(format!("{name} header value {value:?}")))?,
    ))
}

impl Client {
    /// Fetches a manifest by tag or digest; `None` when it does not exist. A digest reference is
    /// checked against the bytes received, and the bytes must be one strict JSON document
    /// (`check_document`: no repeated key, bounded nesting, finite numbers). A body cut short is
    /// fetched again under the retry policy.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Fetched>, Error> {
        self.reading(|| self.get_manifest_once(repo, reference))
            .await
    }

    async fn get_manifest_once(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Fetched>, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let response = self
            .send(Request {
                method: Method::GET,
                url: format!("{}/manifests/{reference}", self.base(repo)),
                headers,
                body: None,
                kind: "GET manifest",
                repo,
                push: false,
                retry: true,
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(
                Client::failure(&format!("GET manifest {repo}:{reference}"), response).await,
            );
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let claimed = content_digest(&response);
        let bytes = read_bounded(response, MAX_MANIFEST_SIZE).await?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && digest.as_str() != reference {
            return Err(Error::DigestMismatch {
                what: format!("manifest {repo}@{reference}"),
                actual: digest.to_string(),
            });
        }
        // By tag, nothing else pins the bytes: the registry's own digest for them must agree.
        if let Some(claimed) = claimed.filter(|c| c.starts_with("sha256:")) {
            if claimed != digest.as_str() {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "manifest {repo}:{reference} (the registry's Docker-Content-Digest says {claimed})"
                    ),
                    actual: digest.to_string(),
                });
            }
        }
        check_document(&bytes, || format!("manifest {repo}:{reference}"))?;
        check_media_type(&bytes, &media_type)
            .map_err(|reason| Error::Malformed(format!("manifest {repo}:{reference}: {reason}")))?;
        Ok(Some(Fetched {
            bytes,
            media_type,
            digest,
            etag,
        }))
    }

    /// Pushes manifest bytes under `reference` (a tag or their digest). With `if_match`, the push
    /// is conditional; a registry that honours it answers 412 when the tag moved
    /// ([`Error::PreconditionFailed`]).
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
        if_match: Option<&str>,
    ) -> Result<Put, Error> {
        self.push_manifest(repo, reference, bytes, media_type, if_match, true)
            .await
    }

    /// [`Client::put_manifest`] sent once, without the retries of 408, 429, 5xx and connection
    /// failures: for a tag whose content is a merge of a read (the `sha256-<hex>` index, a cosign
    /// tag). Sending the same merge again after a backoff would land it later than other writers
    /// wait before reading their entries back, and drop what they wrote in between; the caller
    /// backs off and merges a fresh read instead. Check [`Error::is_retryable`].
    pub async fn put_merged_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
        if_match: Option<&str>,
    ) -> Result<Put, Error> {
        self.push_manifest(repo, reference, bytes, media_type, if_match, false)
            .await
    }

    async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
        if_match: Option<&str>,
        retry: bool,
    ) -> Result<Put, Error> {
        let mut headers = HeaderMap::new();
        let (k, v) = header("content-type", media_type)?;
        headers.insert(k, v);
        if let Some(etag) = if_match {
            let (k, v) = header("if-match", etag)?;
            headers.insert(k, v);
        }
        let response = self
            .send(Request {
                method: Method::PUT,
                url: format!("{}/manifests/{reference}", self.base(repo)),
                headers,
                body: Some(Bytes::copy_from_slice(bytes).into()),
                kind: "PUT manifest",
                repo,
                push: true,
                retry,
            })
            .await?;
        if response.status() == StatusCode::PRECONDITION_FAILED {
            if if_match.is_some() {
                self.set_if_match_honoured(&repo.host);
            }
            return Err(Error::PreconditionFailed(format!("{repo}:{reference}")));
        }
        if !response.status().is_success() {
            return Err(
                Client::failure(&format!("PUT manifest {repo}:{reference}"), response).await,
            );
        }
        if let Some(claimed) = content_digest(&response).filter(|c| c.starts_with("sha256:")) {
            let pushed = Digest::of(bytes);
            if claimed != pushed.as_str() {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "PUT manifest {repo}:{reference}: the registry stored {claimed}, not what was sent"
                    ),
                    actual: pushed.to_string(),
                });
            }
        }
        Ok(Put {
            oci_subject: response
                .headers()
                .get("oci-subject")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }

    /// Deletes the manifest `digest` (`DELETE /manifests/<digest>`): [`Deletion::Deleted`] (200,
    /// 202), [`Deletion::NotFound`] (404: already gone), [`Deletion::NotAllowed`] when the registry
    /// does not allow it: 405 `UNSUPPORTED` (Distribution without `storage.delete.enabled`), or
    /// 401/403 (these credentials may push but not delete; the token asked for is `pull,push`,
    /// and token registries want a `delete` action). Anything else is an error.
    pub async fn delete_manifest(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Deletion, Error> {
        let response = self
            .send(Request {
                method: Method::DELETE,
                url: format!("{}/manifests/{digest}", self.base(repo)),
                headers: HeaderMap::new(),
                body: None,
                kind: "DELETE manifest",
                repo,
                push: true,
                retry: true,
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Deletion::Deleted),
            StatusCode::NOT_FOUND => Ok(Deletion::NotFound),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Ok(Deletion::NotAllowed)
            }
            _ => Err(Client::failure(&format!("DELETE manifest {repo}@{digest}"), response).await),
        }
    }

    /// Whether a blob exists (`HEAD`).
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, Error> {
        self.exists(repo, digest, "blobs", HeaderMap::new(), "HEAD blob")
            .await
    }

    /// Whether `<repo>/<what>/<digest>` exists (`HEAD`: 2xx yes, 404 no, anything else an
    /// error). `what` is `blobs` or `manifests`.
    pub(crate) async fn exists(
        &self,
        repo: &Repository,
        digest: &Digest,
        what: &str,
        headers: HeaderMap,
        kind: &'static str,
    ) -> Result<bool, Error> {
        let response = self
            .send(Request {
                method: Method::HEAD,
                url: format!("{}/{what}/{digest}", self.base(repo)),
                headers,
                body: None,
                kind,
                repo,
                push: true,
                retry: true,
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Client::failure(&format!("{kind} {repo}@{digest}"), response).await),
        }
    }

    /// Fetches a blob, refusing more than `max` bytes or content that does not match `digest`. A
    /// body cut short is fetched again under the retry policy.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.get_blob_to(repo, digest, max, &mut bytes).await?;
        Ok(bytes)
    }

    /// Streams a blob into `out` (a temporary file, say), refusing more than `max` bytes or content
    /// that does not match `digest`; memory stays at one chunk whatever the blob's size. A body cut
    /// short (the connection closed before `Content-Length` bytes) is fetched again from the start
    /// under the retry policy, `out` first put back where it was ([`BlobSink`]); after the last
    /// attempt it is [`Error::Truncated`].
    pub async fn get_blob_to(
        &self,
        repo: &Repository,
        digest: &Digest,
        max: u64,
        out: &mut (impl BlobSink + ?Sized),
    ) -> Result<u64, Error> {
        let io = |source| Error::Io {
            what: format!("writing blob {repo}@{digest}"),
            source,
        };
        let start = out.mark().map_err(io)?;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.get_blob_once(repo, digest, max, out).await {
                Err(e @ Error::Truncated { .. }) => {
                    let wait = self.after_truncation(e, attempts)?;
                    out.reset(start).map_err(io)?;
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn get_blob_once(
        &self,
        repo: &Repository,
        digest: &Digest,
        max: u64,
        out: &mut (impl BlobSink + ?Sized),
    ) -> Result<u64, Error> {
        use sha2::Digest as _;
        let mut response = self
            .send(Request {
                method: Method::GET,
                url: format!("{}/blobs/{digest}", self.base(repo)),
                headers: HeaderMap::new(),
                body: None,
                kind: "GET blob",
                repo,
                push: false,
                retry: true,
            })
            .await?;
        let what = format!("GET blob {repo}@{digest}");
        if !response.status().is_success() {
            return Err(Client::failure(&what, response).await);
        }
        let announced = response.content_length();
        if let Some(len) = announced {
            if len > max {
                return Err(Error::TooLarge {
                    what,
                    size: len,
                    max,
                });
            }
        }
        let mut hasher = sha2::Sha256::new();
        let mut written: u64 = 0;
        // A status line for large blobs (an SBOM layer, a big attestation), on a terminal only.
        let expected = announced.unwrap_or(max);
        let progress = self.options.progress && expected >= crate::client::PROGRESS_MIN_BYTES;
        let mut drawn: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| body_error(&what, e, written, announced))?
        {
            written = written.saturating_add(chunk.len() as u64);
            if written > max {
                return Err(Error::TooLarge {
                    what,
                    size: written,
                    max,
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).map_err(|source| Error::Io {
                what: format!("writing blob {repo}@{digest}"),
                source,
            })?;
            if progress && written - drawn >= 256 * 1024 {
                drawn = written;
                eprint!(
                    "{}",
                    crate::client::progress_line(digest.as_str(), written, expected)
                );
            }
        }
        if progress && drawn > 0 {
            eprintln!(
                "{}",
                crate::client::progress_line(digest.as_str(), written, expected)
            );
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest.as_str() {
            return Err(Error::DigestMismatch {
                what: format!("blob {repo}@{digest}"),
                actual,
            });
        }
        Ok(written)
    }

    /// Uploads a blob. One `POST ...?digest=` with the body when the registry is known to complete
    /// uploads that way (learned on the first small blob of the run), else `POST` + `PUT`. A failed
    /// upload restarts its session from the `POST`, under the retry policy.
    pub async fn upload_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<(), Error> {
        self.upload(repo, digest, Body::Bytes(bytes)).await
    }

    /// Uploads a planned blob (see [`cnb_referrers::Blob`]): one held in memory as
    /// [`Client::upload_blob`] does, a streamed one without holding it: read from its source for
    /// each attempt, encoded on the fly and checked against `digest` and `size` as it is sent.
    pub async fn upload_planned_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        blob: &cnb_referrers::Blob,
    ) -> Result<(), Error> {
        let body = match blob {
            cnb_referrers::Blob::Bytes(b) => Body::Bytes(Bytes::copy_from_slice(b)),
            cnb_referrers::Blob::Stream(s) => Body::Stream {
                blob: s.clone(),
                digest: digest.clone(),
                size,
            },
        };
        self.upload(repo, digest, body).await
    }

    async fn upload(&self, repo: &Repository, digest: &Digest, body: Body) -> Result<(), Error> {
        let policy = self.retry_policy().clone();
        let mut attempt = 0;
        loop {
            match self.upload_once(repo, digest, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempt + 1 < policy.max_attempts => {
                    self.note_retry();
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Learns whether the registry completes single-`POST` uploads without committing anything:
    /// `POST ...?digest=` with `bytes` (which must be small and already stored): 201 means yes; 202
    /// means no, and the session it opened is left to expire (completing it would rewrite the blob's
    /// link, which Distribution does non-atomically).
    pub async fn probe_single_post(
        &self,
        repo: &Repository,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<bool, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let response = self
            .send(Request {
                method: Method::POST,
                url: format!("{}/blobs/uploads/?digest={digest}", self.base(repo)),
                headers,
                body: Some(bytes.into()),
                kind: "POST upload",
                repo,
                push: true,
                retry: true,
            })
            .await?;
        let single = match response.status() {
            StatusCode::CREATED => true,
            StatusCode::ACCEPTED => false,
            _ => {
                return Err(
                    Client::failure(&format!("POST upload {repo}@{digest}"), response).await,
                )
            }
        };
        self.set_single_post(&repo.host, single);
        Ok(single)
    }

    async fn upload_once(
        &self,
        repo: &Repository,
        digest: &Digest,
        bytes: Body,
    ) -> Result<(), Error> {
        let len = match &bytes {
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { size, .. } => *size,
        };
        let single = match self.single_post(&repo.host) {
            Some(known) => known,
            None => len <= SINGLE_POST_PROBE_MAX as u64,
        };
        let mut headers = HeaderMap::new();
        let body = if single {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Some(bytes.clone())
        } else {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            None
        };
        let url = if single {
            format!("{}/blobs/uploads/?digest={digest}", self.base(repo))
        } else {
            format!("{}/blobs/uploads/", self.base(repo))
        };
        let response = self
            .send(Request {
                method: Method::POST,
                url,
                headers,
                body,
                kind: "POST upload",
                repo,
                push: true,
                retry: false,
            })
            .await?;
        let status = response.status();
        if status == StatusCode::CREATED && single {
            self.set_single_post(&repo.host, true);
            return check_stored_digest(&response, digest, repo);
        }
        if status != StatusCode::ACCEPTED {
            return Err(Client::failure(&format!("POST upload {repo}@{digest}"), response).await);
        }
        if single {
            // 202: the registry started a session and ignored the body (distribution 2.8 does).
            self.set_single_post(&repo.host, false);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::protocol(
                    format!("POST upload {repo}@{digest}"),
                    "202 Accepted without a usable Location header",
                )
            })?;
        let base = reqwest::Url::parse(&self.base(repo)).map_err(|_| {
            Error::BadReference(crate::ReferenceError(format!("{repo}: not a registry URL")))
        })?;
        let mut url = base.join(location).map_err(|_| {
            Error::protocol(
                format!("POST upload {repo}@{digest}"),
                "the Location header is not a URL",
            )
        })?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let response = self
            .send(Request {
                method: Method::PUT,
                url: url.to_string(),
                headers,
                body: Some(bytes),
                kind: "PUT upload",
                repo,
                push: true,
                retry: false,
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(Client::failure(&format!("PUT upload {repo}@{digest}"), response).await);
        }
        check_stored_digest(&response, digest, repo)
    }

    /// The Referrers API: every referrer of `subject`, following `Link` pages (bounded). `None` when
    /// the registry does not serve the API (404).
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let mut url = format!("{}/referrers/{subject}", self.base(repo));
        let mut out = Vec::new();
        for page in 0..MAX_REFERRER_PAGES {
            let Some((bytes, next)) = self
                .reading(|| self.referrers_page(repo, subject, &url, page == 0))
                .await?
            else {
                return Ok(None);
            };
            check_document(&bytes, || format!("referrers of {repo}@{subject}"))?;
            let index = ImageIndex::from_json(&bytes)
                .map_err(|e| Error::Malformed(format!("referrers of {repo}@{subject}: {e}")))?;
            out.extend(index.manifests);
            match next {
                Some(link) => {
                    let what = || format!("GET referrers {repo}@{subject}");
                    let base = reqwest::Url::parse(&url)
                        .map_err(|_| Error::protocol(what(), "the page URL is not a URL"))?;
                    let next = base.join(&link).map_err(|_| {
                        Error::protocol(what(), "the Link header's next page is not a URL")
                    })?;
                    // The next page must come from the same registry, over the same scheme.
                    if next.scheme() != base.scheme()
                        || next.host_str() != base.host_str()
                        || next.port_or_known_default() != base.port_or_known_default()
                    {
                        return Err(Error::Malformed(format!(
                            "referrers of {repo}@{subject}: the next page points to another origin ({})",
                            next.origin().ascii_serialization()
                        )));
                    }
                    url = next.to_string();
                }
                None => return Ok(Some(out)),
            }
        }
        Err(Error::Malformed(format!(
            "referrers of {repo}@{subject}: more than {MAX_REFERRER_PAGES} pages"
        )))
    }

    /// One page of the Referrers API at `url`: its bytes and the `Link` to the next page; `None`
    /// when the first page is 404 or 405 (no Referrers API).
    async fn referrers_page(
        &self,
        repo: &Repository,
        subject: &Digest,
        url: &str,
        first: bool,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(OCI_INDEX));
        let response = self
            .send(Request {
                method: Method::GET,
                url: url.to_string(),
                headers,
                body: None,
                kind: "GET referrers",
                repo,
                push: false,
                retry: true,
            })
            .await?;
        let status = response.status();
        if first && (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(
                Client::failure(&format!("GET referrers {repo}@{subject}"), response).await,
            );
        }
        let next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let bytes = read_bounded(response, MAX_MANIFEST_SIZE).await?;
        Ok(Some((bytes, next)))
    }

    /// The Referrers Tag Schema index `sha256-<hex>` of `subject` as raw JSON (so a rewrite keeps
    /// entries and fields this client does not model), with its ETag; `None` when absent. Refuses a
    /// tag that holds anything but an image index, including the subject itself (one registry
    /// resolves `sha256-<hex>` to the digest).
    pub async fn fallback_index(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<(serde_json::Value, Option<String>)>, Error> {
        let tag = subject.fallback_tag();
        let Some(fetched) = self.get_manifest(repo, &tag).await? else {
            return Ok(None);
        };
        if fetched.digest == *subject {
            return Err(Error::FallbackTagTaken(format!(
                "{repo}:{tag} resolves to the image {subject} itself, not to a referrers index; this registry treats the tag as a digest, so the tag schema cannot be used"
            )));
        }
        // `get_manifest` read the bytes strictly (a repeated `manifests` key is refused there, as
        // in a Referrers API answer), so this value is the one document every reader sees.
        let value: serde_json::Value = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| Error::Malformed(format!("{repo}:{tag}: {e}")))?;
        let media_type = value
            .get("mediaType")
            .and_then(|v| v.as_str())
            .unwrap_or(&fetched.media_type);
        if media_type != OCI_INDEX || value.get("manifests").is_none() {
            return Err(Error::FallbackTagTaken(format!(
                "{repo}:{tag} holds a {media_type} ({}), not a referrers index; refusing to overwrite it",
                fetched.digest
            )));
        }
        // An index with its own `subject`, `config` or `layers` is an artifact (or an ambiguous
        // document), not a tag-schema referrers index: rewriting it would destroy it.
        if let Some(field) = ["subject", "config", "layers"]
            .into_iter()
            .find(|f| value.get(f).is_some())
        {
            return Err(Error::FallbackTagTaken(format!(
                "{repo}:{tag} ({}) is an index with its own `{field}`, not a referrers index; refusing to overwrite it",
                fetched.digest
            )));
        }
        if !value["manifests"].is_array() {
            return Err(Error::Malformed(format!(
                "{repo}:{tag}: `manifests` is not an array"
            )));
        }
        Ok(Some((value, fetched.etag)))
    }
}

/// A completed upload's `Docker-Content-Digest`, when given, must be the digest uploaded.
fn check_stored_digest(
    response: &reqwest::Response,
    digest: &Digest,
    repo: &Repository,
) -> Result<(), Error> {
    match content_digest(response).filter(|c| c.starts_with("sha256:")) {
        Some(claimed) if claimed != digest.as_str() => Err(Error::DigestMismatch {
            what: format!("upload {repo}@{digest}: the registry says it stored {claimed}"),
            actual: claimed,
        }),
        _ => Ok(()),
    }
}

/// The `Docker-Content-Digest` header, if any.
fn content_digest(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// A manifest's `mediaType` field, when it has one, must be the media type the registry served
/// it as: one document read as two kinds is how CVE-2021-41190 confused clients.
fn check_media_type(bytes: &[u8], content_type: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default, rename = "mediaType")]
        media_type: Option<serde_json::Value>,
    }
    let Ok(declared) = serde_json::from_slice::<Declared>(bytes) else {
        // Not JSON at all: whoever parses it reports that.
        return Ok(());
    };
    match declared.media_type {
        Some(serde_json::Value::String(m)) if !content_type.is_empty() && m != content_type => {
            Err(format!(
                "served as {content_type} but declares mediaType {m}; refusing an ambiguous manifest"
            ))
        }
        _ => Ok(()),
    }
}

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// An `OCI_MANIFEST` constant re-export for callers building descriptors.
pub const MANIFEST_MEDIA_TYPE: &str = OCI_MANIFEST;

/// Largest image config read.
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;

impl Client {
    /// The descriptor of an image manifest (by tag or digest): what a referrer's `subject` holds.
    /// One request. An index is refused: attestations attach to one platform manifest.
    pub async fn subject(&self, image: &crate::ImageRef) -> Result<Descriptor, Error> {
        let fetched = self
            .get_manifest(&image.repository, image.reference())
            .await?
            .ok_or_else(|| Error::Status {
                what: format!("GET manifest {image}"),
                status: 404,
                codes: Vec::new(),
                detail: "no such image".into(),
            })?;
        subject_descriptor(image, fetched).map(|(d, _)| d)
    }

    /// Reads an image manifest (by tag or digest) and its config. An image index resolves to its
    /// one platform manifest; one with several is [`Error::Platform`] listing them (see
    /// [`Client::read_image_for`] to name one).
    pub async fn read_image(
        &self,
        image: &crate::ImageRef,
    ) -> Result<cnb_referrers::layout::Image, Error> {
        self.read_image_for(image, None).await
    }

    /// Reads an image manifest (by tag or digest) and its config; an image index resolves to its
    /// manifest for `platform` ([`cnb_referrers::platform::choose`]: never a silent choice), with
    /// the BuildKit attestation manifests about it and the index it was reached through
    /// ([`cnb_referrers::layout::Image::index`]). A manifest named directly is taken as it is.
    pub async fn read_image_for(
        &self,
        image: &crate::ImageRef,
        platform: Option<&cnb_referrers::platform::PlatformSpec>,
    ) -> Result<cnb_referrers::layout::Image, Error> {
        let repo = &image.repository;
        let fetched = self
            .get_manifest(repo, image.reference())
            .await?
            .ok_or_else(|| Error::Status {
                what: format!("GET manifest {image}"),
                status: 404,
                codes: Vec::new(),
                detail: "no such image".into(),
            })?;
        // Through an image index (a multi-platform image, or BuildKit's attestation layout): the
        // platform manifest, and the BuildKit attestation manifests about it.
        let (fetched, buildkit, index_info) =
            if fetched.media_type == OCI_INDEX
                || fetched.media_type == cnb_referrers::manifest::DOCKER_MANIFEST_LIST
            {
                let index = ImageIndex::from_json(&fetched.bytes)
                    .map_err(|e| Error::Malformed(format!("{image}: {e}")))?;
                let (chosen, buildkit) = cnb_referrers::platform::choose(&index, platform)
                    .map_err(|source| Error::Platform {
                        image: image.to_string(),
                        source: Box::new(source),
                    })?;
                let index_descriptor = Descriptor {
                    media_type: fetched.media_type.clone(),
                    digest: fetched.digest.clone(),
                    size: fetched.bytes.len() as u64,
                    artifact_type: None,
                    annotations: None,
                    platform: None,
                };
                let info = cnb_referrers::platform::index_info(&index_descriptor, &index, &chosen);
                let fetched = self
                    .get_manifest(repo, chosen.digest.as_str())
                    .await?
                    .ok_or_else(|| Error::Status {
                        what: format!("GET manifest {repo}@{}", chosen.digest),
                        status: 404,
                        codes: Vec::new(),
                        detail: "the index names a manifest the registry does not have".into(),
                    })?;
                if fetched.digest != chosen.digest {
                    return Err(Error::Malformed(format!(
                        "{image}: the registry served {} for {}",
                        fetched.digest, chosen.digest
                    )));
                }
                (fetched, buildkit, Some(info))
            } else {
                (fetched, Vec::new(), None)
            };
        let (descriptor, manifest) = subject_descriptor(image, fetched)?;
        let config_bytes = self
            .get_blob(repo, &manifest.config.digest, MAX_CONFIG_SIZE)
            .await?;
        let config = cnb_referrers::ImageConfig::from_json(&config_bytes)
            .map_err(|e| Error::Malformed(format!("{image}: {e}")))?;
        Ok(cnb_referrers::layout::Image {
            descriptor,
            manifest,
            config,
            buildkit,
            index: index_info,
        })
    }
}

fn subject_descriptor(
    image: &crate::ImageRef,
    fetched: Fetched,
) -> Result<(Descriptor, cnb_referrers::ImageManifest), Error> {
    if fetched.media_type == OCI_INDEX
        || fetched.media_type == cnb_referrers::manifest::DOCKER_MANIFEST_LIST
    {
        return Err(Error::Malformed(format!(
            "{image} is an image index ({}); name one platform manifest by digest",
            fetched.digest
        )));
    }
    let manifest = cnb_referrers::ImageManifest::from_json(&fetched.bytes)
        .map_err(|e| Error::Malformed(format!("{image}: {e}")))?;
    let media_type = if fetched.media_type.is_empty() {
        manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_string())
    } else {
        fetched.media_type.clone()
    };
    Ok((
        Descriptor {
            media_type,
            digest: fetched.digest,
            size: fetched.bytes.len() as u64,
            artifact_type: None,
            annotations: None,
            platform: None,
        },
        manifest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_sink_goes_back_to_where_the_blob_started() {
        use std::io::{Read, Seek, Write};
        let mut vec = b"before".to_vec();
        let mark = vec.mark().unwrap();
        vec.write_all(b"cut sho").unwrap();
        vec.reset(mark).unwrap();
        vec.write_all(b"whole").unwrap();
        assert_eq!(vec, b"beforewhole");

        let mut file = tempfile_in_target();
        file.write_all(b"before").unwrap();
        let mark = file.mark().unwrap();
        file.write_all(b"a much longer cut-short attempt").unwrap();
        file.reset(mark).unwrap();
        file.write_all(b"whole").unwrap();
        file.rewind().unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "beforewhole");
    }

    /// A fresh read-write file in the system's temporary directory, removed at once (open
    /// handles keep it).
    fn tempfile_in_target() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "cnb-registry-sink-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file
    }

    #[test]
    fn a_manifest_served_as_one_type_but_declaring_another_is_refused() {
        let doc = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(check_media_type(doc.as_bytes(), OCI_INDEX).is_ok());
        let err = check_media_type(doc.as_bytes(), OCI_MANIFEST).unwrap_err();
        assert!(
            err.contains(OCI_MANIFEST) && err.contains(OCI_INDEX),
            "{err}"
        );
        // No declaration, or no Content-Type: nothing to disagree with.
        assert!(check_media_type(br#"{"schemaVersion":2}"#, OCI_MANIFEST).is_ok());
        assert!(check_media_type(doc.as_bytes(), "").is_ok());
    }
}
