//! The HTTP core: one place where every registry request is authenticated, retried, bounded and
//! counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use zeroize::Zeroizing;

use crate::auth::{Challenge, Credential, Keychain};
use crate::error::{retryable_status, MAX_ERROR_BODY_PARSED};
use crate::numbers;
use crate::retry::RetryPolicy;
use crate::Error;
use crate::Repository;
use cnb_referrers::Digest;

/// Largest token response read.
const MAX_TOKEN_RESPONSE: u64 = 64 * 1024;
/// Bytes of an error body read (for its error codes and the message); the rest is not read.
const MAX_ERROR_BODY: usize = MAX_ERROR_BODY_PARSED;
/// Redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) reached over plain HTTP. Everything else is HTTPS.
    pub insecure: HashSet<String>,
    /// Retry policy for 408/429/5xx and connection failures.
    pub retry: RetryPolicy,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for one request.
    pub request_timeout: Duration,
    /// Print one line per request to stderr (method, URL without query, status, time). Never
    /// prints headers or bodies, so no credential can appear.
    pub debug: bool,
    /// When the whole run must be over: no request starts after it, none runs past it (its body
    /// read included), and no retry waits beyond it. `None`: only the per-request timeout.
    pub deadline: Option<Instant>,
    /// Show a status line on stderr while a blob of [`PROGRESS_MIN_BYTES`] or more is read (set it
    /// when stderr is a terminal; CI and pipes stay quiet).
    pub progress: bool,
}

/// Blobs smaller than this are read without a progress line.
pub const PROGRESS_MIN_BYTES: u64 = 1024 * 1024;

/// The progress line for a blob read: `digest` shortened, bytes so far and expected, in MiB.
pub(crate) fn progress_line(digest: &str, read: u64, total: u64) -> String {
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    let short: String = digest.chars().take(19).collect();
    format!(
        "\r  reading {short}… {:.1}/{:.1} MiB   ",
        mib(read),
        mib(total)
    )
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: HashSet::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            debug: false,
            deadline: None,
            progress: false,
        }
    }
}

impl ClientOptions {
    /// Adds the registries named in `CNB_INSECURE_REGISTRIES` (comma-separated `host[:port]`).
    pub fn with_insecure_from_env(mut self) -> Self {
        if let Ok(list) = std::env::var("CNB_INSECURE_REGISTRIES") {
            self.insecure.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
        self
    }

    /// Sets the deadline `seconds` from now (`0`, or a value past what the clock can represent
    /// such as `u64::MAX`: none).
    pub fn with_timeout(mut self, seconds: u64) -> Self {
        self.deadline = if seconds == 0 {
            None
        } else {
            numbers::deadline_after(seconds)
        };
        self
    }

    /// Whether the deadline is set and has passed.
    pub fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Time left before the deadline for one request to `what`, at most the per-request
    /// timeout; an error once the deadline has passed.
    fn time_left(&self, what: impl FnOnce() -> String) -> Result<Duration, Error> {
        match self.deadline {
            None => Ok(self.request_timeout),
            Some(deadline) => {
                let left = numbers::time_left(deadline);
                if left.is_zero() {
                    Err(Error::Deadline(what()))
                } else {
                    Ok(left.min(self.request_timeout))
                }
            }
        }
    }
}

/// Request counts by kind, for reports and budgets.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    total: AtomicU64,
    retries: AtomicU64,
}

impl Stats {
    fn count(&self, kind: &'static str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(kind).or_default() += 1;
        }
    }

    /// Requests sent (including retries and token requests).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Retries made after a retriable failure.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Requests by kind (`GET manifest`, `PUT manifest`, `POST upload`, ...).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct HostState {
    credential: Option<Credential>,
    /// Send Basic credentials up front (the registry asked for Basic once).
    basic: bool,
    /// The registry answered with a Bearer challenge: Basic is never sent up front again.
    bearer: bool,
    /// Bearer tokens by scope, with expiry.
    tokens: HashMap<String, (Zeroizing<String>, Instant)>,
    /// Whether `POST ...?digest=` with a body completes an upload (201), learned once per run.
    single_post: Option<bool>,
    /// The registry answered a conditional write with 412 in this run: it honours `If-Match`.
    if_match_honoured: bool,
    /// The longest read→write gap of a shared-tag write measured in this run (see
    /// [`crate::settle`]).
    write_gap: Duration,
    /// The longest answer to a single manifest or referrers read in this run (never an upload,
    /// a download or one of the pushes a run makes many at once): how slow the registry, or this
    /// machine, answers a read now.
    latency: Duration,
}

/// The requests whose answer time [`Client::note_write_gap`] counts as the registry's latency:
/// reads like the one a shared-tag writer makes before its write, made one at a time.
const LATENCY_KINDS: [&str; 2] = ["GET manifest", "GET referrers"];

/// One request to make.
/// A request body: bytes in memory, or a planned blob produced again for every attempt (read from
/// its source, encoded on the fly, checked against its digest as it goes) so it is never held.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Bytes(Bytes),
    Stream {
        blob: Arc<dyn cnb_referrers::blob::StreamedBlob>,
        digest: Digest,
        size: u64,
    },
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::Bytes(bytes)
    }
}

/// Pieces of a streamed body in flight between the thread producing them and the connection.
const STREAM_PIECES_IN_FLIGHT: usize = 4;

impl Body {
    fn to_reqwest(&self) -> reqwest::Body {
        match self {
            Body::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            Body::Stream { blob, digest, size } => {
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STREAM_PIECES_IN_FLIGHT);
                let (blob, digest, size) = (blob.clone(), digest.clone(), *size);
                tokio::task::spawn_blocking(move || {
                    let mut out = ChannelWriter {
                        tx: tx.clone(),
                        buf: Vec::new(),
                        held: None,
                    };
                    let written = cnb_referrers::Blob::Stream(blob)
                        .write_checked(&mut out, &digest, size)
                        .and_then(|()| out.finish());
                    if let Err(e) = written {
                        // The request fails with this error instead of sending a short body.
                        let _ = tx.blocking_send(Err(e));
                    }
                });
                reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|piece| (piece, rx))
                }))
            }
        }
    }
}

/// Hands what is written to a streamed request body, in pieces of
/// [`cnb_referrers::blob::CHUNK`] bytes. The last full piece is held back until [`finish`] (called
/// once the bytes were checked against their digest), so a body whose check fails never reaches
/// its `Content-Length`: the request fails instead of completing with changed bytes.
///
/// [`finish`]: ChannelWriter::finish
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    held: Option<Bytes>,
}

impl ChannelWriter {
    fn send(&self, piece: Bytes) -> std::io::Result<()> {
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    /// Sends the piece held back and the rest: the bytes passed their check.
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(piece) = self.held.take() {
            self.send(piece)?;
        }
        if !self.buf.is_empty() {
            let rest = Bytes::from(std::mem::take(&mut self.buf));
            self.send(rest)?;
        }
        Ok(())
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(cnb_referrers::blob::CHUNK);
        }
        let room = cnb_referrers::blob::CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == cnb_referrers::blob::CHUNK {
            let full = Bytes::from(std::mem::take(&mut self.buf));
            if let Some(previous) = self.held.replace(full) {
                self.send(previous)?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Body>,
    pub kind: &'static str,
    pub repo: &'a Repository,
    pub push: bool,
    /// Retry this request on retriable failures (uploads retry at the session level instead).
    pub retry: bool,
}

/// A registry client: authentication, retries, bounded reads, request accounting.
pub struct Client {
    http: reqwest::Client,
    keychain: Keychain,
    pub(crate) options: ClientOptions,
    hosts: Mutex<HashMap<String, HostState>>,
    stats: Stats,
    /// What this client has waited on `Retry-After` so far, every request together (bounded by
    /// [`RetryPolicy::retry_after_budget`]).
    retry_after_waited: Mutex<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("keychain", &self.keychain)
            .field("options", &self.options)
            .finish()
    }
}

impl Client {
    /// A client with the given credentials and options.
    pub fn new(keychain: Keychain, options: ClientOptions) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("cnb-attest/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        Ok(Client {
            http,
            keychain,
            options,
            hosts: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            retry_after_waited: Mutex::new(Duration::ZERO),
        })
    }

    /// Request statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// `http` for registries named insecure, `https` otherwise.
    pub fn scheme(&self, host: &str) -> &'static str {
        if self.options.insecure.contains(host) {
            "http"
        } else {
            "https"
        }
    }

    /// The base URL of a repository's API: `<scheme>://<host>/v2/<name>`.
    pub fn base(&self, repo: &Repository) -> String {
        format!(
            "{}://{}/v2/{}",
            self.scheme(&repo.host),
            repo.host,
            repo.name
        )
    }

    /// Whether the registry at `host` completes single-`POST` uploads, once learned this run.
    pub fn single_post(&self, host: &str) -> Option<bool> {
        self.hosts
            .lock()
            .ok()
            .and_then(|h| h.get(host).and_then(|s| s.single_post))
    }

    pub(crate) fn set_single_post(&self, host: &str, value: bool) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.entry(host.to_string()).or_default().single_post = Some(value);
        }
    }

    /// Whether the registry at `host` has refused a stale `If-Match` with 412 in this run (a
    /// registry that ignores `If-Match`, like Distribution 2.8, never does). Learned from the
    /// conditional writes the run makes anyway, never from an extra request.
    pub fn if_match_honoured(&self, host: &str) -> bool {
        self.hosts
            .lock()
            .ok()
            .is_some_and(|h| h.get(host).is_some_and(|s| s.if_match_honoured))
    }

    pub(crate) fn set_if_match_honoured(&self, host: &str) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.entry(host.to_string()).or_default().if_match_honoured = true;
        }
    }

    /// Records the read→write gap of one shared-tag write on `host`; returns the longest one
    /// recorded there in this run (this one included), or the longest answer to a single manifest
    /// read there in this run when that is longer (a concurrent writer's gap is such a read and a
    /// write: when the registry, or this machine, answers slowly, so do theirs).
    pub(crate) fn note_write_gap(&self, host: &str, gap: Duration) -> Duration {
        match self.hosts.lock() {
            Ok(mut hosts) => {
                let state = hosts.entry(host.to_string()).or_default();
                state.write_gap = state.write_gap.max(gap);
                state.write_gap.max(state.latency)
            }
            Err(_) => gap,
        }
    }

    fn note_latency(&self, host: &str, kind: &str, latency: Duration) {
        if !LATENCY_KINDS.contains(&kind) {
            return;
        }
        if let Ok(mut hosts) = self.hosts.lock() {
            let state = hosts.entry(host.to_string()).or_default();
            state.latency = state.latency.max(latency);
        }
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    pub(crate) fn note_retry(&self) {
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn credential(&self, host: &str) -> Credential {
        let mut hosts = match self.hosts.lock() {
            Ok(h) => h,
            Err(_) => return Credential::Anonymous,
        };
        let state = hosts.entry(host.to_string()).or_default();
        state
            .credential
            .get_or_insert_with(|| self.keychain.resolve(host))
            .clone()
    }

    fn scope(repo: &Repository, push: bool) -> String {
        format!(
            "repository:{}:{}",
            repo.name,
            if push { "pull,push" } else { "pull" }
        )
    }

    /// The `Authorization` header to send up front, if any is known for this host and scope.
    fn auth_header(&self, repo: &Repository, push: bool) -> Option<Zeroizing<String>> {
        let credential = self.credential(&repo.host);
        let hosts = self.hosts.lock().ok()?;
        let state = hosts.get(&repo.host)?;
        if let Some((token, expiry)) = state.tokens.get(&Self::scope(repo, push)) {
            if *expiry > Instant::now() {
                return Some(Zeroizing::new(format!("Bearer {}", token.as_str())));
            }
        }
        // Credentials configured for this very host are sent from the first request on, which saves
        // a 401 round trip per run: Basic from a user name and password, or a CNB_REGISTRY_AUTH
        // header as the platform gave it. Once the host asks for Bearer, only tokens are sent.
        if state.bearer {
            return None;
        }
        match credential {
            Credential::Header(h) => Some(h),
            other => other.basic_header(),
        }
    }

    /// Answers a 401: learns Basic, or fetches a bearer token for the scope. Returns whether a
    /// retry with credentials makes sense.
    async fn authenticate(
        &self,
        repo: &Repository,
        push: bool,
        challenge: Option<&str>,
    ) -> Result<bool, Error> {
        let credential = self.credential(&repo.host);
        let Some(challenge) = challenge.and_then(Challenge::parse) else {
            return Ok(false);
        };
        match &challenge {
            Challenge::Basic => {
                if credential.basic_header().is_none()
                    && !matches!(credential, Credential::Header(_))
                {
                    return Ok(false);
                }
                if let Ok(mut hosts) = self.hosts.lock() {
                    let state = hosts.entry(repo.host.clone()).or_default();
                    if state.basic {
                        return Ok(false);
                    }
                    state.basic = true;
                }
                Ok(true)
            }
            Challenge::Bearer { realm, service, .. } => {
                if let Ok(mut hosts) = self.hosts.lock() {
                    hosts.entry(repo.host.clone()).or_default().bearer = true;
                }
                let scope = Self::scope(repo, push);
                let mut url = reqwest::Url::parse(realm)
                    .map_err(|_| Error::Auth(format!("token realm `{realm}` is not a URL")))?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", &scope);
                }
                let left = self
                    .options
                    .time_left(|| format!("token request to {}", redact_url(&url)))?;
                let mut request = self.http.get(url.clone());
                // A docker identity token is an OAuth2 refresh token: POST it to the realm
                // (distribution's token spec), and only to a realm on the registry's own host.
                if let (Credential::IdentityToken(refresh), true) = (
                    &credential,
                    challenge.may_receive(&repo.host, self.scheme(&repo.host)),
                ) {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", refresh.to_string()),
                        ("client_id", "cnb-attest".to_string()),
                        ("scope", scope.clone()),
                    ];
                    if let Some(service) = service {
                        form.push(("service", service.clone()));
                    }
                    let body = form
                        .iter()
                        .map(|(k, v)| format!("{k}={}", form_escape(v)))
                        .collect::<Vec<_>>()
                        .join("&");
                    let mut base = url.clone();
                    base.set_query(None);
                    request = self
                        .http
                        .post(base)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body);
                } else if challenge.may_receive(&repo.host, self.scheme(&repo.host)) {
                    match &credential {
                        Credential::Basic { .. } => {
                            if let Some(h) = credential.basic_header() {
                                request = request.header(AUTHORIZATION, h.as_str());
                            }
                        }
                        Credential::Header(h) => {
                            request = request.header(AUTHORIZATION, h.as_str());
                        }
                        _ => {}
                    }
                }
                self.stats.count("GET token");
                if self.options.debug {
                    eprintln!("DEBUG GET {} (token, scope {scope})", redact_url(&url));
                }
                let response = request.timeout(left).send().await.map_err(|e| {
                    Error::transport(
                        format!("token request to {}", url.host_str().unwrap_or("?")),
                        e,
                    )
                })?;
                if !response.status().is_success() {
                    return Err(Error::Auth(format!(
                        "token realm {} answered {} for scope {scope}",
                        url.host_str().unwrap_or("?"),
                        response.status()
                    )));
                }
                let body = read_bounded(response, MAX_TOKEN_RESPONSE).await?;
                let (token, lifetime) = parse_token_response(&body, &redact_url(&url))?;
                if let (Ok(mut hosts), Some(expiry)) =
                    (self.hosts.lock(), Instant::now().checked_add(lifetime))
                {
                    hosts
                        .entry(repo.host.clone())
                        .or_default()
                        .tokens
                        .insert(scope, (token, expiry));
                }
                Ok(true)
            }
        }
    }

    /// Sends a request: authenticates on 401 (once), retries 408/429/5xx and connection failures
    /// per the policy (honouring `Retry-After`), follows redirects itself (never sending
    /// credentials to another host). Returns the final response whatever its status.
    pub(crate) async fn send(&self, request: Request<'_>) -> Result<reqwest::Response, Error> {
        let policy = self.options.retry.clone();
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            let result = self.send_once(&request).await;
            match result {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    if self
                        .authenticate(request.repo, request.push, challenge.as_deref())
                        .await?
                    {
                        continue;
                    }
                    return Ok(response);
                }
                Ok(response) if request.retry && retryable_status(response.status().as_u16()) => {
                    if attempt + 1 >= policy.max_attempts {
                        return Ok(response);
                    }
                    let asked = retry_after(response.headers());
                    let wait = policy.delay(attempt, asked);
                    if !self.may_wait(wait) {
                        return Ok(response);
                    }
                    if asked.is_some() {
                        self.spend_retry_after(wait)
                            .map_err(|waited| Error::RetryLater {
                                what: format!("{} {}", request.method, redact_str(&request.url)),
                                status: response.status().as_u16(),
                                retry_after: wait,
                                waited,
                                budget: policy.retry_after_budget,
                            })?;
                    }
                    self.note_retry();
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => return Ok(response),
                // Transport failures only: a redirect loop, a refused credential, a registry
                // breaking the protocol or a passed deadline will not go away by asking again.
                Err(e)
                    if request.retry && e.is_retryable() && attempt + 1 < policy.max_attempts =>
                {
                    let wait = policy.delay(attempt, None);
                    if !self.may_wait(wait) {
                        return Err(e);
                    }
                    self.note_retry();
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes `wait` from the run's `Retry-After` budget; when it does not fit in what is left,
    /// takes nothing and returns what was waited so far.
    fn spend_retry_after(&self, wait: Duration) -> Result<(), Duration> {
        let budget = self.options.retry.retry_after_budget;
        let Ok(mut waited) = self.retry_after_waited.lock() else {
            return Err(budget);
        };
        match waited.checked_add(wait).filter(|total| *total <= budget) {
            Some(total) => {
                *waited = total;
                Ok(())
            }
            None => Err(*waited),
        }
    }

    /// After a body read cut short ([`Error::Truncated`]) on attempt `attempts` (counting from
    /// 1): the wait before the next attempt, or the error to give up with (the attempts are used
    /// up, or the wait would pass the deadline), counting the attempts made. Other errors are
    /// returned as they are.
    pub(crate) fn after_truncation(&self, error: Error, attempts: u32) -> Result<Duration, Error> {
        let Error::Truncated {
            what,
            received,
            expected,
            ..
        } = error
        else {
            return Err(error);
        };
        let policy = &self.options.retry;
        let wait = policy.delay(attempts.saturating_sub(1), None);
        if attempts >= policy.max_attempts || !self.may_wait(wait) {
            return Err(Error::Truncated {
                what,
                received,
                expected,
                attempts,
            });
        }
        self.note_retry();
        Ok(wait)
    }

    /// Runs `read` (a request and the read of its body) again when its body is cut short
    /// ([`Error::Truncated`]), under the retry policy. `send` retries a request until it has an
    /// answer; a body cut off after that costs a new request, and is retried here.
    pub(crate) async fn reading<T, F, Fut>(&self, mut read: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match read().await {
                Err(e @ Error::Truncated { .. }) => {
                    let wait = self.after_truncation(e, attempts)?;
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Whether waiting `wait` before a retry still leaves the deadline ahead.
    pub(crate) fn may_wait(&self, wait: Duration) -> bool {
        self.options
            .deadline
            .is_none_or(|deadline| numbers::time_left(deadline) > wait)
    }

    async fn send_once(&self, request: &Request<'_>) -> Result<reqwest::Response, Error> {
        let mut url = reqwest::Url::parse(&request.url).map_err(|_| {
            Error::protocol(
                format!("{} in {}", request.kind, request.repo),
                "the request URL (from the reference or a registry header) is not a URL",
            )
        })?;
        // The registry's origin, not the request's: an upload `Location` on another host is
        // followed, but without credentials.
        let origin = reqwest::Url::parse(&self.base(request.repo))
            .ok()
            .and_then(|base| origin_of(&base));
        let mut method = request.method.clone();
        for _ in 0..=MAX_REDIRECTS {
            let left = self
                .options
                .time_left(|| format!("{method} {}", redact_url(&url)))?;
            let mut builder = self.http.request(method.clone(), url.clone()).timeout(left);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            // Credentials go only to the registry's own origin: same scheme, host and port, so
            // never to another host, and never over plain HTTP after an HTTPS start.
            if same_origin(&url, &origin) {
                if let Some(h) = self.auth_header(request.repo, request.push) {
                    // Tokens are checked when they arrive (`parse_token_response`), so what fails
                    // here is a configured credential.
                    let mut value = HeaderValue::from_str(h.as_str()).map_err(|_| {
                        Error::Auth(format!(
                            "the credential configured for {} is not a valid header value",
                            request.repo.host
                        ))
                    })?;
                    value.set_sensitive(true);
                    builder = builder.header(AUTHORIZATION, value);
                }
            }
            if let Some(body) = &request.body {
                if let Body::Stream { size, .. } = body {
                    builder = builder.header(reqwest::header::CONTENT_LENGTH, *size);
                }
                builder = builder.body(body.to_reqwest());
            }
            self.stats.count(request.kind);
            let started = Instant::now();
            let response = builder.send().await.map_err(|e| {
                if self.options.debug {
                    eprintln!("DEBUG {method} {} -> error", redact_url(&url));
                }
                if e.is_timeout() && self.options.deadline_passed() {
                    return Error::Deadline(format!("{method} {}", redact_url(&url)));
                }
                Error::transport(format!("{method} {}", redact_url(&url)), e)
            })?;
            let status = response.status();
            self.note_latency(&request.repo.host, request.kind, started.elapsed());
            if self.options.debug {
                eprintln!(
                    "DEBUG {method} {} -> {} ({} ms)",
                    redact_url(&url),
                    status.as_u16(),
                    started.elapsed().as_millis()
                );
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Error::protocol(
                            format!("{method} {}", redact_url(&url)),
                            format!("{status} without a usable Location header"),
                        )
                    })?;
                url = url.join(location).map_err(|_| {
                    Error::protocol(
                        format!("{method} {}", redact_url(&url)),
                        format!("{status} with a Location header that is not a URL"),
                    )
                })?;
                if status == StatusCode::SEE_OTHER {
                    method = Method::GET;
                }
                continue;
            }
            return Ok(response);
        }
        Err(Error::TooManyRedirects {
            url: redact_url(&url),
        })
    }

    /// Turns a non-success response into an error naming the operation, with the registry's error
    /// codes parsed from the start of the body.
    pub(crate) async fn failure(what: &str, response: reqwest::Response) -> Error {
        let status = response.status();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Denied {
                what: what.to_string(),
                status: status.as_u16(),
            },
            _ => {
                let body = read_prefix(response, MAX_ERROR_BODY).await;
                Error::status(what, status.as_u16(), &body)
            }
        }
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether `url` is on `origin`: same scheme, host and port (default ports made explicit).
/// Credentials and tokens go only there, so a redirect to another host, another port, or from
/// HTTPS down to HTTP carries none.
fn same_origin(url: &reqwest::Url, origin: &Origin) -> bool {
    origin.is_some() && origin_of(url) == *origin
}

/// Scheme, host and port of a URL with a host; `None` otherwise (never an origin).
type Origin = Option<(String, String, u16)>;

fn origin_of(url: &reqwest::Url) -> Origin {
    Some((
        url.scheme().to_string(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// A URL without query (upload URLs carry session state; signed URLs carry credentials).
fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// [`redact_url`] of a URL given as text (the text itself, up to any query, when it does not parse).
fn redact_str(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| redact_url(&u))
        .unwrap_or_else(|_| url.split('?').next().unwrap_or_default().to_string())
}

/// A token endpoint's answer (`{"token": ...}` or `{"access_token": ...}`, `expires_in`): the
/// token, checked to be sendable as `Authorization: Bearer <token>`, and how long it may be
/// reused. `realm` (without its query) names the endpoint in errors: a token that is not a valid
/// header value is the endpoint's fault, not the user's credential's.
///
/// Read with the strict reader's key rule ([`cnb_untrusted::json::Keys`]): a repeated key, or one
/// Go would take for `token`, `access_token` or `expires_in`, is refused, as in every other
/// registry document. Numbers are not refused here: `expires_in` is kept as raw text, so `1e400`
/// or `-1` falls back to the default lifetime (`numbers::token_lifetime`).
fn parse_token_response(body: &[u8], realm: &str) -> Result<(Zeroizing<String>, Duration), Error> {
    let not_a_token = || {
        Error::Auth(format!(
            "token endpoint {realm} answered something that is not a token"
        ))
    };
    // Only an object gets as far as the field checks, whose messages quote no value (serde's
    // own message for a top-level string would quote it).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(not_a_token());
    }
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Error::Malformed(format!("token response from {realm}: {e}"))
        } else {
            not_a_token()
        }
    })?;
    let token = parsed
        .token
        .or(parsed.access_token)
        .map(Zeroizing::new)
        .ok_or_else(|| Error::Auth(format!("token endpoint {realm} answered no token")))?;
    if HeaderValue::from_str(&Zeroizing::new(format!("Bearer {}", token.as_str()))).is_err() {
        return Err(Error::InvalidToken {
            realm: realm.to_string(),
        });
    }
    // Tokens are reused until shortly before they expire (default lifetime 60 s, at most an
    // hour, whatever the endpoint says).
    let lifetime = numbers::token_lifetime(parsed.expires_in.as_deref().map(|r| r.get()));
    Ok((token, lifetime))
}

/// A token response's fields.
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    // Raw text, so that no value (negative, 1e400, a string) fails the token or overflows the
    // expiry: see `numbers::token_lifetime`.
    expires_in: Option<Box<serde_json::value::RawValue>>,
}

impl<'de> serde::Deserialize<'de> for TokenResponse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = TokenResponse;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token response object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TokenResponse, A::Error> {
                const FIELDS: &[&str] = &["token", "access_token", "expires_in"];
                let mut keys = cnb_untrusted::json::Keys::new(FIELDS, "the token response");
                let mut out = TokenResponse {
                    token: None,
                    access_token: None,
                    expires_in: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    keys.check(&key).map_err(serde::de::Error::custom)?;
                    // Values are read as JSON values and checked here, so that no error message
                    // quotes one (it may be a secret).
                    let text = |value: serde_json::Value| match value {
                        serde_json::Value::String(s) => Ok(Some(s)),
                        serde_json::Value::Null => Ok(None),
                        _ => Err(serde::de::Error::custom(format!("`{key}` is not a string"))),
                    };
                    match key.as_str() {
                        "token" => out.token = text(map.next_value()?)?,
                        "access_token" => out.access_token = text(map.next_value()?)?,
                        "expires_in" => out.expires_in = Some(map.next_value()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The one strict reader for every JSON document a registry sends (manifests, the
/// `sha256-<hex>` index, the Referrers API answer): [`cnb_untrusted::json::check_document`], so
/// that a document means one thing to every reader: no object repeating a key (serde_json would
/// keep the last), bounded nesting, every number a finite double. `what` names the document in the
/// error ([`Error::Malformed`]).
///
/// Bytes that are not JSON at all pass here: the typed reader that parses them next refuses them
/// with a message saying what it expected (an image manifest, an index), as it always has.
pub(crate) fn check_document(bytes: &[u8], what: impl FnOnce() -> String) -> Result<(), Error> {
    use cnb_untrusted::json;
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Ok(());
    }
    json::check_document(bytes, json::MAX_DEPTH)
        .map_err(|e| Error::Malformed(format!("{}: {e}", what())))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    numbers::retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// Reads a response body, refusing more than `max` bytes (checked while streaming, not trusting
/// `Content-Length`).
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, Error> {
    let what = format!("GET {}", redact_url(response.url()));
    if let Some(len) = response.content_length() {
        if len > max {
            return Err(Error::TooLarge {
                what,
                size: len,
                max,
            });
        }
    }
    let expected = response.content_length();
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| body_error(&what, e, out.len() as u64, expected))?
    {
        let size = (out.len() as u64).saturating_add(chunk.len() as u64);
        if size > max {
            return Err(Error::TooLarge { what, size, max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A failure reading a response body after `received` bytes of `expected`: a time-out (the
/// request's, or the run's deadline) is [`Error::Transport`]; anything else means the connection
/// closed or broke before the body was complete, [`Error::Truncated`], which is worth a new
/// request.
pub(crate) fn body_error(
    what: &str,
    error: reqwest::Error,
    received: u64,
    expected: Option<u64>,
) -> Error {
    if error.is_timeout() {
        return Error::transport(format!("reading the body of {what}"), error);
    }
    Error::Truncated {
        what: what.to_string(),
        received,
        expected,
        attempts: 1,
    }
}

/// At most the first `max` bytes of a response body, for an error message: what arrived before a
/// failure, and nothing past `max` (the rest is never read).
async fn read_prefix(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk[..chunk.len().min(max - out.len())]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_streamed_body_holds_its_last_full_piece_until_the_check_passed() {
        use std::io::Write as _;
        let chunk = cnb_referrers::blob::CHUNK;
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut out = ChannelWriter {
            tx,
            buf: Vec::new(),
            held: None,
        };
        out.write_all(&vec![7u8; 2 * chunk]).unwrap();
        let mut sent = 0;
        while let Ok(piece) = rx.try_recv() {
            sent += piece.unwrap().len();
        }
        // Everything but one full piece: a body checked too late never reaches its length.
        assert_eq!(sent, chunk);
        out.write_all(&[1, 2, 3]).unwrap();
        out.finish().unwrap();
        while let Ok(piece) = rx.try_recv() {
            sent += piece.unwrap().len();
        }
        assert_eq!(sent, 2 * chunk + 3);
    }

    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    const REALM: &str = "https://registry.example/token";

    #[test]
    fn a_token_holding_cr_lf_is_the_token_endpoints_fault_naming_its_realm() {
        for body in [
            r#"{"token":"t\r\nX-Injected: 1"}"#,
            r#"{"access_token":"t\n"}"#,
            r#"{"token":"t\u0000"}"#,
        ] {
            let err = parse_token_response(body.as_bytes(), REALM).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidToken { realm } if realm == REALM),
                "{err}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("token endpoint {REALM} sent an invalid token"))
                    && message.contains("not of your credentials")
                    && !message.contains("X-Injected"),
                "{message}"
            );
        }
        let (token, _) = parse_token_response(br#"{"token":"abc.def"}"#, REALM).unwrap();
        assert_eq!(token.as_str(), "abc.def");
    }

    #[test]
    fn a_token_response_is_read_strictly_but_quotes_no_value() {
        for body in [
            r#"{"token":"a","token":"b"}"#,
            r#"{"token":"a","\u0074oken":"b"}"#,
            r#"{"Token":"b","token":"a"}"#,
        ] {
            let err = parse_token_response(body.as_bytes(), REALM).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{body}: {err}");
            assert!(err.to_string().contains("token response from"), "{err}");
        }
        // Nothing of a value appears in the message, whatever the shape.
        for body in [r#""s3cret""#, r#"{"token":12345678}"#, "s3cret"] {
            let err = parse_token_response(body.as_bytes(), REALM).unwrap_err();
            assert!(
                !err.to_string().contains("s3cret") && !err.to_string().contains("12345678"),
                "{err}"
            );
        }
        // expires_in stays raw text: out-of-range numbers fall back to the default lifetime.
        let (_, lifetime) =
            parse_token_response(br#"{"token":"t","expires_in":1e400}"#, REALM).unwrap();
        assert_eq!(lifetime, numbers::token_lifetime(None));
    }

    #[test]
    fn registry_documents_are_read_by_the_strict_reader() {
        let doc = br#"{"schemaVersion":2,"manifests":[{"digest":"a"}],"manifests":[]}"#;
        let err = check_document(doc, || "manifest r:sha256-ab".into()).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)));
        assert!(
            err.to_string()
                .starts_with(r#"malformed manifest r:sha256-ab: duplicate key "manifests""#),
            "{err}"
        );
        check_document(br#"{"schemaVersion":2,"manifests":[]}"#, String::new).unwrap();
        // Not JSON at all: left to the typed reader, which says what it expected.
        check_document(b"\x1f\x8b\x08 not json", String::new).unwrap();
    }

    fn client(retry: RetryPolicy) -> Client {
        Client::new(
            Keychain::anonymous(),
            ClientOptions {
                retry,
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn the_retry_after_budget_is_shared_by_every_request_and_never_overdrawn() {
        let client = client(RetryPolicy::default());
        let thirty = Duration::from_secs(30);
        assert_eq!(client.spend_retry_after(thirty), Ok(()));
        assert_eq!(client.spend_retry_after(thirty), Ok(()));
        // Full: a wait that does not fit takes nothing, and says what was waited.
        assert_eq!(
            client.spend_retry_after(Duration::from_secs(1)),
            Err(Duration::from_secs(60))
        );
        assert_eq!(client.spend_retry_after(Duration::ZERO), Ok(()));
        let client = self::client(RetryPolicy::default());
        assert_eq!(
            client.spend_retry_after(Duration::from_secs(61)),
            Err(Duration::ZERO)
        );
        assert_eq!(client.spend_retry_after(Duration::MAX), Err(Duration::ZERO));
    }

    #[test]
    fn a_cut_body_is_retried_up_to_the_attempts_then_counts_them() {
        let client = client(RetryPolicy {
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        });
        let cut = || Error::Truncated {
            what: "GET blob r@sha256:ab".into(),
            received: 10,
            expected: Some(20),
            attempts: 1,
        };
        for attempt in 1..5 {
            assert!(client.after_truncation(cut(), attempt).is_ok(), "{attempt}");
        }
        let err = client.after_truncation(cut(), 5).unwrap_err();
        assert!(matches!(err, Error::Truncated { attempts: 5, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "GET blob r@sha256:ab: transport failure: the connection closed after 10 of 20 bytes (5 attempts)"
        );
        assert_eq!(client.stats().retries(), 4);
        // Anything else is not retried here.
        let other = client
            .after_truncation(Error::Malformed("x".into()), 1)
            .unwrap_err();
        assert!(matches!(other, Error::Malformed(_)));
    }

    #[test]
    fn the_progress_line_shows_the_short_digest_and_mebibytes() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            progress_line(&digest, 3 * 1024 * 1024 / 2, 4 * 1024 * 1024),
            "\r  reading sha256:abababababab… 1.5/4.0 MiB   "
        );
    }

    #[test]
    fn credentials_follow_a_redirect_only_to_the_same_scheme_host_and_port() {
        let start = origin_of(&url("https://registry.example/v2/a/manifests/1"));
        assert!(same_origin(&url("https://registry.example/v2/b"), &start));
        assert!(same_origin(&url("https://REGISTRY.example:443/x"), &start));
        assert!(!same_origin(&url("http://registry.example/x"), &start));
        assert!(!same_origin(&url("http://registry.example:443/x"), &start));
        assert!(!same_origin(
            &url("https://registry.example:8443/x"),
            &start
        ));
        assert!(!same_origin(&url("https://storage.example/x"), &start));
        let plain = origin_of(&url("http://127.0.0.1:5000/v2/"));
        assert!(same_origin(&url("http://127.0.0.1:5000/v2/x"), &plain));
        assert!(!same_origin(&url("http://127.0.0.1:5001/v2/x"), &plain));
    }
}
