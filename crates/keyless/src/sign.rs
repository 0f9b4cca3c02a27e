//! Keyless signing: one ephemeral key and one Fulcio certificate per run, one Rekor v1 `dsse`
//! entry per signed envelope.
//!
//! ```no_run
//! # async fn example(envelope_payload: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use cnb_keyless::sign::{Instances, KeylessOptions, KeylessSigner};
//! use cnb_keyless::token::{IdentityToken, TokenSource};
//!
//! let token = IdentityToken::from_source(&TokenSource::Env("SIGSTORE_ID_TOKEN".into()))?;
//! let signer =
//!     KeylessSigner::obtain(&Instances::public_good(), &token, &KeylessOptions::default()).await?;
//! let envelope = cnb_dsse::Envelope::sign(
//!     cnb_dsse::IN_TOTO_PAYLOAD_TYPE,
//!     envelope_payload,
//!     signer.signing_key(),
//! )?;
//! signer.check_log_size(&envelope, "the CycloneDX SBOM attestation")?;
//! let material = signer.witness(&envelope, "the CycloneDX SBOM attestation").await?;
//! println!("{}", material.to_verification_material_json());
//! # Ok(())
//! # }
//! ```
//!
//! The identity token is sent to Fulcio only, over HTTPS (plain HTTP only to a loopback address,
//! for local test instances), and appears in no error, log or `Debug` output.

use std::time::Duration;

use cnb_untrusted::text::sanitize;
use sha2::{Digest as _, Sha256};

use crate::bundle::KeylessMaterial;
use crate::fulcio::{self, IssuedCertificate};
use crate::rekor;
use crate::token::{Claims, IdentityToken, TokenError};

/// The default pre-flight limit on a Rekor request (2 MiB).
pub const DEFAULT_MAX_LOG_REQUEST: u64 = 2 * 1024 * 1024;

/// The default time-out of one HTTP request (60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest response body read from Fulcio or Rekor (1 MiB).
pub const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// How many times a request is retried after a transport error or a 500/502/503/504.
pub const RETRIES: u32 = 3;

/// A request at least this large that meets a 502 is taken as refused for its size (the public
/// Rekor's load balancer answers 502 to large requests, rekor#2915) and is not retried.
pub const LARGE_REQUEST: u64 = 1024 * 1024;

/// Longest server message kept in an error.
const MESSAGE_CHARS: usize = 300;

/// The Fulcio and Rekor instances to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instances {
    /// Fulcio's base URL (`https://fulcio.sigstore.dev`).
    pub fulcio_url: String,
    /// Rekor v1's base URL (`https://rekor.sigstore.dev`).
    pub rekor_url: String,
}

impl Instances {
    /// The public-good Sigstore instances.
    pub fn public_good() -> Self {
        Instances {
            fulcio_url: "https://fulcio.sigstore.dev".into(),
            rekor_url: "https://rekor.sigstore.dev".into(),
        }
    }
}

/// Options of keyless signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessOptions {
    /// The largest Rekor request sent, in bytes (default [`DEFAULT_MAX_LOG_REQUEST`]).
    pub max_log_request: u64,
    /// The time-out of each HTTP request (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl Default for KeylessOptions {
    fn default() -> Self {
        KeylessOptions {
            max_log_request: DEFAULT_MAX_LOG_REQUEST,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why keyless signing failed. No variant holds the identity token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The identity token cannot be used.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A Fulcio or Rekor URL is unusable.
    #[error("{what} URL {url}: {reason}")]
    Url {
        /// `Fulcio` or `Rekor`.
        what: &'static str,
        /// The URL (sanitised).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The ephemeral key or the certificate request could not be made.
    #[error("creating the ephemeral signing key or its certificate request: {reason}")]
    Key {
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
    /// Fulcio answered with an error status.
    #[error("Fulcio at {url} refused the certificate request: HTTP {status}{hint}: {message}")]
    Fulcio {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the status means for the user (for 401/403: the token was refused).
        hint: &'static str,
        /// The server's message (sanitised, at most 300 characters).
        message: String,
    },
    /// Fulcio returned a detached SCT, which a bundle v0.3 cannot carry.
    #[error(
        "Fulcio at {url} returned a certificate with a detached SCT (signedCertificateDetachedSct): \
         a Sigstore bundle v0.3 can only carry an SCT embedded in the certificate, so this \
         instance cannot be used for keyless signing (configure its CA to embed SCTs)"
    )]
    DetachedSct {
        /// The request's URL.
        url: String,
    },
    /// Fulcio's answer could not be used.
    #[error("Fulcio at {url} returned an unusable answer: {reason}")]
    FulcioResponse {
        /// The request's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Rekor answered with an error status.
    #[error("Rekor at {url} refused the entry: HTTP {status}: {message}")]
    Rekor {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message (sanitised, at most 300 characters).
        message: String,
    },
    /// Rekor's answer could not be used.
    #[error("Rekor at {url} returned an unusable answer: {reason}")]
    RekorResponse {
        /// The request's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The entry is too large for the transparency log: refused before sending (over
    /// `max_log_request`), or by the log (413, or 502 after a large request). Never retried.
    #[error("{}", too_large_text(.what, .size, .max, .status, .detail))]
    TooLargeForLog {
        /// The attestation the entry is for.
        what: String,
        /// The size of the Rekor request, in bytes.
        size: u64,
        /// The limit it exceeds (the pre-flight limit), if known.
        max: Option<u64>,
        /// The log's HTTP status (413 or 502), `None` when refused before sending.
        status: Option<u16>,
        /// The log's message (sanitised), if any.
        detail: String,
    },
    /// The request could not be sent or its answer could not be read.
    #[error("{what} {url}: {reason}")]
    Transport {
        /// The request (`POST Fulcio`, `POST Rekor`, `GET Rekor`).
        what: &'static str,
        /// The request's URL.
        url: String,
        /// Why (after retries, if any).
        reason: String,
    },
    /// A response body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("{what} {url}: the response is larger than {max} bytes")]
    ResponseTooLarge {
        /// The request.
        what: &'static str,
        /// The request's URL.
        url: String,
        /// The limit.
        max: u64,
    },
}

const WAYS_OUT: &str = "ways out: a private Rekor with a larger limit (--signing-config), a \
                        larger --max-log-request if the log accepts it, or key-based signing";

fn too_large_text(
    what: &str,
    size: &u64,
    max: &Option<u64>,
    status: &Option<u16>,
    detail: &str,
) -> String {
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    match (status, max) {
        (None, Some(max)) => format!(
            "{what}: its transparency-log (Rekor) entry request would be {size} bytes, over the \
             {max}-byte limit (--max-log-request); Rekor v1 takes the whole DSSE envelope and \
             the public instance refuses large requests; {WAYS_OUT}"
        ),
        (Some(502), _) => format!(
            "{what}: the transparency log answered 502 Bad Gateway to the {size}-byte entry \
             request{detail}, which is how the public Rekor's load balancer refuses requests that \
             are too large; {WAYS_OUT}"
        ),
        (Some(status), _) => format!(
            "{what}: the transparency log refused the {size}-byte entry request as too large \
             (HTTP {status}){detail}; {WAYS_OUT}"
        ),
        (None, None) => format!(
            "{what}: the {size}-byte transparency-log entry request is too large; {WAYS_OUT}"
        ),
    }
}

/// A run's keyless signer: an ephemeral P-256 key certified by Fulcio for the token's identity.
pub struct KeylessSigner {
    key: cnb_dsse::SigningKey,
    certificate: IssuedCertificate,
    client: reqwest::Client,
    instances: Instances,
    options: KeylessOptions,
    claims: Claims,
}

impl std::fmt::Debug for KeylessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessSigner")
            .field("key", &self.key)
            .field("instances", &self.instances)
            .field("options", &self.options)
            .field("issuer", &sanitize(&self.claims.issuer, 200))
            .field("subject", &sanitize(&self.claims.subject, 200))
            .finish_non_exhaustive()
    }
}

impl KeylessSigner {
    /// One certificate per run: generates an ephemeral P-256 key and asks Fulcio for a
    /// certificate with the token. The certificate must hold that key.
    pub async fn obtain(
        instances: &Instances,
        token: &IdentityToken,
        options: &KeylessOptions,
    ) -> Result<Self, SignError> {
        check_url("Fulcio", &instances.fulcio_url)?;
        check_url("Rekor", &instances.rekor_url)?;
        let client = http_client(options.timeout)?;
        let key = cnb_dsse::SigningKey::generate().map_err(|e| SignError::Key {
            reason: e.to_string(),
        })?;
        let pkcs8 = key.to_pkcs8_der().map_err(|e| SignError::Key {
            reason: e.to_string(),
        })?;
        let p256_key = {
            use p256::pkcs8::DecodePrivateKey as _;
            p256::ecdsa::SigningKey::from_pkcs8_der(&pkcs8).map_err(|e| SignError::Key {
                reason: e.to_string(),
            })?
        };
        let certificate =
            fulcio::request_certificate(&client, &instances.fulcio_url, token, &p256_key).await?;
        let url = sanitize(&instances.fulcio_url, 200);
        let certified = fulcio::leaf_public_key(&certificate.leaf_der).map_err(|reason| {
            SignError::FulcioResponse {
                url: url.clone(),
                reason,
            }
        })?;
        if certified != key.verifying_key() {
            return Err(SignError::FulcioResponse {
                url,
                reason: "the certificate is for another public key than the one requested".into(),
            });
        }
        Ok(KeylessSigner {
            key,
            certificate,
            client,
            instances: instances.clone(),
            options: options.clone(),
            claims: token.claims().clone(),
        })
    }

    /// The ephemeral key: sign envelopes with it (it implements [`cnb_dsse::Signer`]).
    pub fn signing_key(&self) -> &cnb_dsse::SigningKey {
        &self.key
    }

    /// The certificate Fulcio issued for the ephemeral key.
    pub fn certificate(&self) -> &IssuedCertificate {
        &self.certificate
    }

    /// The claims of the token the certificate was requested with (the raw token is not kept).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Refuses, before any request, an envelope whose Rekor request would exceed
    /// `max_log_request`; the message names `what` (the attestation), the size, the limit and
    /// the ways out.
    pub fn check_log_size(
        &self,
        envelope: &cnb_dsse::Envelope,
        what: &str,
    ) -> Result<(), SignError> {
        let size = rekor::dsse_entry_request_len(envelope, &self.certificate.leaf_der);
        self.check_size(size, what)
    }

    fn check_size(&self, size: u64, what: &str) -> Result<(), SignError> {
        check_size(size, self.options.max_log_request, what)
    }

    /// Logs one signed envelope in Rekor v1 (`dsse` 0.0.1) and returns the bundle's verification
    /// material: the leaf certificate and the log entry (with its SET and inclusion proof).
    ///
    /// The entry returned must be a `dsse` 0.0.1 entry of this envelope (payload hash and
    /// signature); its SET, proof and checkpoint are verified by the verifier, not here.
    pub async fn witness(
        &self,
        envelope: &cnb_dsse::Envelope,
        what: &str,
    ) -> Result<KeylessMaterial, SignError> {
        self.check_log_size(envelope, what)?;
        let request = rekor::dsse_entry_request(envelope, &self.certificate.leaf_der);
        let entry = rekor::upload(&self.client, &self.instances.rekor_url, request)
            .await
            .map_err(|e| match e {
                SignError::TooLargeForLog {
                    size,
                    max,
                    status,
                    detail,
                    ..
                } => SignError::TooLargeForLog {
                    what: what.to_string(),
                    size,
                    max,
                    status,
                    detail,
                },
                other => other,
            })?;
        rekor::check_entry_matches(&entry, envelope).map_err(|reason| {
            SignError::RekorResponse {
                url: sanitize(&self.instances.rekor_url, 200),
                reason: format!("the entry returned for {what} {reason}"),
            }
        })?;
        Ok(KeylessMaterial {
            certificate: self.certificate.leaf_der.clone(),
            chain: Vec::new(),
            tlog_entries: vec![entry],
        })
    }
}

fn check_size(size: u64, max: u64, what: &str) -> Result<(), SignError> {
    if size > max {
        return Err(SignError::TooLargeForLog {
            what: what.to_string(),
            size,
            max: Some(max),
            status: None,
            detail: String::new(),
        });
    }
    Ok(())
}

/// The HTTP client: rustls, the given time-out per request, no redirects followed (an answer
/// that redirects is reported, so the token never follows a redirect), proxies from the standard
/// environment variables.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, SignError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(30)))
        .timeout(timeout)
        .user_agent(concat!("cnb-attest/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SignError::Client {
            reason: error_chain(&e),
        })
}

/// Checks a service URL: HTTPS, or plain HTTP to a loopback address only (a local test
/// instance), without credentials, query or fragment.
pub(crate) fn check_url(what: &'static str, url: &str) -> Result<reqwest::Url, SignError> {
    let bad = |reason: &str| SignError::Url {
        what,
        url: sanitize(url, 200),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "plain http is only allowed to a loopback address (use https)",
                ));
            }
        }
        other => {
            return Err(bad(&format!(
                "scheme `{}` (https expected)",
                sanitize(other, 20)
            )))
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("it holds credentials"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    Ok(parsed)
}

/// `base` joined with an absolute API path (`/api/v1/log/entries`), keeping any path prefix of
/// `base`.
pub(crate) fn endpoint(what: &'static str, base: &str, path: &str) -> Result<String, SignError> {
    check_url(what, base)?;
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

/// A reqwest error with its causes (`error sending request …: connection refused`).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    sanitize(&out, 500)
}

/// An HTTP answer with its body read (bounded).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Whether a status is worth retrying.
fn retryable(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

#[cfg(not(test))]
const BACKOFF_BASE: Duration = Duration::from_millis(500);
#[cfg(test)]
const BACKOFF_BASE: Duration = Duration::from_millis(5);

/// Sends a request built by `build`, retrying transport errors and 500/502/503/504 up to
/// [`RETRIES`] times with a short backoff (0.5 s, 1 s, 2 s). A 502 to a request of at least
/// [`LARGE_REQUEST`] bytes (`request_size`) is returned at once, never retried. A 2xx body over
/// [`MAX_RESPONSE_BYTES`] is an error; an error body is cut to that size.
pub(crate) async fn send(
    what: &'static str,
    url: &str,
    request_size: u64,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, SignError> {
    let shown = sanitize(url, 200);
    let mut attempt = 0u32;
    loop {
        match build().send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let large_502 = status == 502 && request_size >= LARGE_REQUEST;
                if !(retryable(status) && !large_502 && attempt < RETRIES) {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let success = (200..300).contains(&status);
                    match read_bounded(response, MAX_RESPONSE_BYTES).await {
                        Ok(body) => {
                            return Ok(Reply {
                                status,
                                location,
                                body,
                            })
                        }
                        Err(BodyError::TooLarge(prefix)) => {
                            if success {
                                return Err(SignError::ResponseTooLarge {
                                    what,
                                    url: shown,
                                    max: MAX_RESPONSE_BYTES,
                                });
                            }
                            return Ok(Reply {
                                status,
                                location,
                                body: prefix,
                            });
                        }
                        Err(BodyError::Read(e)) => {
                            if attempt >= RETRIES {
                                return Err(SignError::Transport {
                                    what,
                                    url: shown,
                                    reason: format!(
                                        "reading the response (HTTP {status}) failed after {} \
                                         attempts: {}",
                                        attempt + 1,
                                        error_chain(&e)
                                    ),
                                });
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if attempt >= RETRIES {
                    return Err(SignError::Transport {
                        what,
                        url: shown,
                        reason: format!(
                            "failed after {} attempts: {}",
                            attempt + 1,
                            error_chain(&e)
                        ),
                    });
                }
            }
        }
        tokio::time::sleep(BACKOFF_BASE * 2u32.saturating_pow(attempt)).await;
        attempt += 1;
    }
}

enum BodyError {
    /// Over the cap: the bytes up to it.
    TooLarge(Vec<u8>),
    Read(reqwest::Error),
}

/// Reads a body, at most `max` bytes, checked while streaming (Content-Length is not trusted).
async fn read_bounded(mut response: reqwest::Response, max: u64) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        let room = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .saturating_sub(out.len());
        if chunk.len() > room {
            out.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Err(BodyError::TooLarge(out));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The message of an error body: the `message` (or `error`) field of a JSON body, else the text;
/// sanitised and cut to 300 characters.
pub(crate) fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "error", "detail"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_string))
        });
    let message = from_json.unwrap_or_else(|| text.trim().to_string());
    if message.is_empty() {
        return "(no message)".into();
    }
    sanitize(&message, MESSAGE_CHARS)
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A one-connection-per-answer HTTP/1.1 server on 127.0.0.1 that gives canned answers in
    //! order and records the requests, to unit-test the client's handling of statuses.

    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// A recorded request: the request line, the headers (lowercased names) and the body.
    #[derive(Debug, Clone)]
    pub(crate) struct Seen {
        pub(crate) line: String,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: Vec<u8>,
    }

    impl Seen {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Starts the server; returns its base URL and the requests seen so far.
    pub(crate) async fn serve(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, content_length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (buf.len(), 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                n.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (pos + 4, length);
                    }
                };
                while buf.len() < head_end + content_length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let line = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    })
                    .collect();
                record.lock().unwrap().push(Seen {
                    line,
                    headers,
                    body: buf[head_end.min(buf.len())..].to_vec(),
                });
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (base, seen)
    }

    /// An HTTP/1.1 answer with a JSON body and extra header lines.
    pub(crate) fn answer(status: &str, extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload: Vec<u8>) -> (cnb_dsse::SigningKey, cnb_dsse::Envelope) {
        let key = cnb_dsse::SigningKey::generate().unwrap();
        let envelope =
            cnb_dsse::Envelope::sign(cnb_dsse::IN_TOTO_PAYLOAD_TYPE, payload, &key).unwrap();
        (key, envelope)
    }

    fn signer_with(key: cnb_dsse::SigningKey, rekor_url: &str, max: u64) -> KeylessSigner {
        KeylessSigner {
            key,
            certificate: IssuedCertificate {
                leaf_der: vec![0x30; 700],
                chain_der: vec![vec![0x30; 500]],
            },
            client: http_client(Duration::from_secs(10)).unwrap(),
            instances: Instances {
                fulcio_url: "https://fulcio.example".into(),
                rekor_url: rekor_url.into(),
            },
            options: KeylessOptions {
                max_log_request: max,
                timeout: Duration::from_secs(10),
            },
            claims: Claims {
                issuer: "https://issuer.example".into(),
                subject: "ci@example.com".into(),
                audience: vec!["sigstore".into()],
                expires_at: 2_000_000_000,
                issued_at: None,
                email: None,
            },
        }
    }

    #[test]
    fn check_log_size_refuses_an_envelope_over_the_limit_naming_the_attestation() {
        let (key, envelope) = envelope(vec![b'x'; 300_000]);
        let signer = signer_with(key, "https://rekor.example", 200_000);
        let error = signer
            .check_log_size(&envelope, "the CycloneDX SBOM attestation of layer web")
            .unwrap_err();
        let SignError::TooLargeForLog { size, max, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(*size > 400_000, "base64 payload + envelope: {size}");
        assert_eq!(*max, Some(200_000));
        let message = error.to_string();
        for part in [
            "the CycloneDX SBOM attestation of layer web",
            &format!("{size} bytes"),
            "200000-byte limit",
            "--signing-config",
            "--max-log-request",
            "key-based signing",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        let small = signer_with(
            cnb_dsse::SigningKey::generate().unwrap(),
            "https://rekor.example",
            DEFAULT_MAX_LOG_REQUEST,
        );
        small.check_log_size(&envelope, "it").unwrap();
    }

    #[tokio::test]
    async fn witness_refuses_before_any_request_when_over_the_limit() {
        let (base, seen) = test_server::serve(vec![]).await;
        let (key, envelope) = envelope(vec![b'x'; 10_000]);
        let signer = signer_with(key, &base, 5_000);
        let error = signer
            .witness(&envelope, "the SPDX SBOM")
            .await
            .unwrap_err();
        assert!(
            matches!(error, SignError::TooLargeForLog { status: None, .. }),
            "{error:?}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_413_from_the_log_names_the_attestation_and_is_not_retried() {
        let (base, seen) = test_server::serve(vec![test_server::answer(
            "413 Request Entity Too Large",
            "",
            r#"{"code":413,"message":"Request Entity Too Large. Limit set to 10597713"}"#,
        )])
        .await;
        let (key, envelope) = envelope(b"{}".to_vec());
        let signer = signer_with(key, &base, DEFAULT_MAX_LOG_REQUEST);
        let error = signer
            .witness(&envelope, "the SPDX SBOM")
            .await
            .unwrap_err();
        let SignError::TooLargeForLog { what, status, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(what, "the SPDX SBOM");
        assert_eq!(*status, Some(413));
        let message = error.to_string();
        assert!(message.contains("Limit set to 10597713"), "{message}");
        assert!(message.contains("HTTP 413"), "{message}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(check_url("Rekor", "https://rekor.sigstore.dev").is_ok());
        assert!(check_url("Rekor", "http://127.0.0.1:5040").is_ok());
        assert!(check_url("Rekor", "http://localhost:5040/").is_ok());
        for bad in [
            "http://rekor.example",
            "ftp://rekor.example",
            "https://user:pw@rekor.example",
            "https://rekor.example/?q=1",
            "rekor.example",
        ] {
            let error = check_url("Rekor", bad).unwrap_err();
            assert!(matches!(error, SignError::Url { .. }), "{bad}: {error:?}");
        }
        assert_eq!(
            endpoint("Rekor", "https://r.example/prefix/", "/api/v1/log/entries").unwrap(),
            "https://r.example/prefix/api/v1/log/entries"
        );
    }

    #[test]
    fn server_messages_are_sanitised_and_cut() {
        assert_eq!(
            server_message(br#"{"code":400,"message":"bad\u001b[2J entry"}"#),
            "bad\\u{1b}[2J entry"
        );
        let long = "y".repeat(1000);
        assert_eq!(server_message(long.as_bytes()).chars().count(), 301);
        assert_eq!(server_message(b""), "(no message)");
    }

    #[tokio::test]
    async fn transport_errors_and_503_are_retried_then_succeed() {
        let (base, seen) = test_server::serve(vec![
            test_server::answer("503 Service Unavailable", "", "{}"),
            test_server::answer("502 Bad Gateway", "", "{}"),
            test_server::answer("200 OK", "", r#"{"ok":true}"#),
        ])
        .await;
        let client = http_client(Duration::from_secs(10)).unwrap();
        let url = format!("{base}/x");
        let reply = send("POST Rekor", &url, 10, || client.post(&url).body("{}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, br#"{"ok":true}"#);
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_connection_refused_is_a_transport_error_after_the_retries() {
        // Bind then drop: nothing listens on that port any more.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = http_client(Duration::from_secs(5)).unwrap();
        let url = format!("http://127.0.0.1:{port}/api/v1/log/entries");
        let error = send("POST Rekor", &url, 10, || client.post(&url))
            .await
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(matches!(error, SignError::Transport { .. }), "{error:?}");
        assert!(message.contains("after 4 attempts"), "{message}");
    }

    #[tokio::test]
    async fn a_2xx_body_over_one_mib_is_refused() {
        let big = "a".repeat(MAX_RESPONSE_BYTES as usize + 10);
        let (base, _seen) =
            test_server::serve(vec![test_server::answer("201 Created", "", &big)]).await;
        let client = http_client(Duration::from_secs(10)).unwrap();
        let url = format!("{base}/x");
        let error = send("POST Rekor", &url, 10, || client.post(&url))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, SignError::ResponseTooLarge { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn the_debug_of_a_signer_shows_no_secret_material() {
        let key = cnb_dsse::SigningKey::generate().unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let signer = signer_with(key, "https://rekor.example", 10);
        let shown = format!("{signer:?}");
        assert!(shown.contains("ci@example.com"), "{shown}");
        assert!(!shown.contains(&hex::encode(&pkcs8[pkcs8.len() - 40..])));
    }
}
