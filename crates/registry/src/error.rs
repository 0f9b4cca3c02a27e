//! The registry error type, the distribution spec's error codes, and the retry decision.
//!
//! Failures are kept apart by kind so that callers and the retry loops decide from the type, never
//! from message text: a transport failure ([`Error::Transport`], with its `reqwest` source), a
//! registry that breaks the distribution spec ([`Error::Protocol`]; malformed documents are
//! [`Error::Malformed`], content that does not match its digest [`Error::DigestMismatch`]), and an
//! answer the registry gave on purpose ([`Error::Status`], with the [`ErrorCode`]s parsed from the
//! body).

use std::fmt;

/// Bytes of an error body parsed for error codes; anything after is ignored (and a JSON document
/// cut there does not parse, so it yields no codes).
pub(crate) const MAX_ERROR_BODY_PARSED: usize = 64 * 1024;
/// Error codes kept from one body.
const MAX_CODES: usize = 16;
/// Characters kept of an unknown error code.
const MAX_CODE_LEN: usize = 64;
/// Characters kept of the human-readable detail.
const MAX_DETAIL_LEN: usize = 300;

/// What can go wrong talking to a registry. Messages are one line and name the operation,
/// repository and digest; they never contain credentials or URL queries.
///
/// Whether retrying may help is [`Error::is_retryable`]; new variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request was redirected more often than allowed (a loop, most likely); not retried.
    #[error("more than {max} redirects for {url}", max = crate::client::MAX_REDIRECTS)]
    TooManyRedirects {
        /// The last URL, without its query.
        url: String,
    },
    /// The run's overall deadline ([`crate::ClientOptions::deadline`]) passed.
    #[error(
        "{0}: the run's deadline passed (set a longer one with --timeout or CNB_ATTEST_TIMEOUT)"
    )]
    Deadline(String),
    /// An image reference does not parse, or names no usable registry URL.
    #[error(transparent)]
    BadReference(#[from] crate::ReferenceError),
    /// Credentials could not be read or used.
    #[error("registry authentication: {0}")]
    Auth(String),
    /// The registry refused access.
    #[error("{what}: access denied ({status}); check the credentials for this registry")]
    Denied {
        /// The operation.
        what: String,
        /// 401 or 403.
        status: u16,
    },
    /// A transport failure: connection refused or reset, DNS, TLS, a timeout, a body cut off.
    /// Retried, unless the request could not even be built.
    ///
    /// The message ends with the source chain flattened to one line (the binaries print messages
    /// only); `source` is also the error's [`std::error::Error::source`]. The source carries no
    /// URL (it is removed when the error is made), so no query string can leak through it.
    #[error("{what}: transport failure: {}", cause_chain(source))]
    Transport {
        /// The operation: method and URL without its query, or what was being read.
        what: String,
        /// What `reqwest` reported, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// A transport failure while reading a body: the connection closed (or broke) before the
    /// announced `Content-Length` (or the end of a chunked body) arrived. Retried like
    /// [`Error::Transport`]; this error is what is left once the attempts are used up. It says
    /// nothing about the content: the bytes that did arrive were not checked.
    #[error(
        "{what}: transport failure: the connection closed after {}{}",
        received_of(*received, *expected),
        if *attempts > 1 { format!(" ({attempts} attempts)") } else { String::new() }
    )]
    Truncated {
        /// The operation: method and URL without its query, or the blob or manifest read.
        what: String,
        /// Body bytes received before the connection closed (in the last attempt).
        received: u64,
        /// The announced `Content-Length`, `None` for a chunked body.
        expected: Option<u64>,
        /// Attempts made in all.
        attempts: u32,
    },
    /// The registry kept answering "retry later" (408, 429 or 5xx with `Retry-After`) after this
    /// client had waited as long in all as a run may wait on `Retry-After`
    /// ([`crate::RetryPolicy::retry_after_budget`]), or asked for a wait longer than what is left of
    /// it. Not retried: the registry is unavailable for this run.
    #[error(
        "{what}: the registry kept asking to retry later (answered {status} with Retry-After: {} s); \
         this run already waited {} s on Retry-After, and waits at most {} s in all",
        retry_after.as_secs(),
        waited.as_secs(),
        budget.as_secs()
    )]
    RetryLater {
        /// The operation.
        what: String,
        /// The status answered (408, 429 or 5xx).
        status: u16,
        /// The wait the registry asked for (capped at [`crate::RetryPolicy::max_delay`]).
        retry_after: std::time::Duration,
        /// What the run had already waited on `Retry-After`, all requests together.
        waited: std::time::Duration,
        /// The most a run waits on `Retry-After`.
        budget: std::time::Duration,
    },
    /// The registry's token endpoint answered a bearer token that cannot be sent back in an
    /// `Authorization` header (it holds CR, LF or other bytes a header value may not contain). The
    /// registry's fault, not the user's credential's; not retried.
    #[error(
        "registry authentication: the token endpoint {realm} sent an invalid token (it holds \
         characters an HTTP header cannot carry, such as CR or LF); this is a fault of the \
         registry's token service, not of your credentials"
    )]
    InvalidToken {
        /// The token endpoint (the challenge's realm), without its query.
        realm: String,
    },
    /// The registry broke the distribution protocol at the HTTP level: a redirect or an upload
    /// session without a usable `Location`, a `Link` that is not a URL. Not retried: asking again
    /// gets the same answer.
    #[error("{what}: protocol violation: {violation}")]
    Protocol {
        /// The operation.
        what: String,
        /// What the registry did wrong (never the offending header's value, which may carry
        /// session state or a signed URL's credentials).
        violation: String,
    },
    /// The registry answered an unexpected status.
    #[error(
        "{what}: registry answered {status}{}{}",
        codes_suffix(codes),
        if detail.is_empty() { String::new() } else { format!(": {detail}") }
    )]
    Status {
        /// The operation.
        what: String,
        /// HTTP status.
        status: u16,
        /// The error codes of the body (`{"errors":[{"code":...}]}`), in order; empty when the body
        /// is not a distribution error document.
        codes: Vec<ErrorCode>,
        /// A short, sanitized text for the message: the errors' `message`s, else the start of the
        /// body. Decide nothing from it; use `status` and `codes`.
        detail: String,
    },
    /// A body was larger than allowed.
    #[error("{what}: response of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// What was being read (the URL, without its query).
        what: String,
        /// Size announced or read so far.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Content did not match its digest.
    #[error("{what}: content has digest {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A registry document is malformed (or a value taken from one cannot be sent back).
    #[error("malformed {0}")]
    Malformed(String),
    /// An image index from which no one platform manifest could be chosen (several and none
    /// named, or none matching the one named); the error lists every platform.
    #[error("{image}: {source}")]
    Platform {
        /// The image as named.
        image: String,
        /// Why, with the index's platforms.
        #[source]
        source: Box<cnb_referrers::platform::PlatformError>,
    },
    /// A conditional write lost a race (412).
    #[error("{0}: changed since it was read (412 Precondition Failed)")]
    PreconditionFailed(String),
    /// The `sha256-<hex>` fallback tag holds something that must not be overwritten.
    #[error("{0}")]
    FallbackTagTaken(String),
    /// The fallback index could not be brought to contain every referrer.
    #[error("{0}")]
    IndexContention(String),
    /// Writing fetched content locally failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A [`Error::Transport`] for `what`, with the URL removed from `source`.
    pub(crate) fn transport(what: impl Into<String>, source: reqwest::Error) -> Self {
        Error::Transport {
            what: what.into(),
            source: source.without_url(),
        }
    }

    /// A [`Error::Protocol`].
    pub(crate) fn protocol(what: impl Into<String>, violation: impl Into<String>) -> Self {
        Error::Protocol {
            what: what.into(),
            violation: violation.into(),
        }
    }

    /// A [`Error::Status`] from a status and an error body (bounded here again: at most
    /// [`MAX_ERROR_BODY_PARSED`] bytes are looked at).
    pub(crate) fn status(what: impl Into<String>, status: u16, body: &[u8]) -> Self {
        let (codes, detail) = parse_error_body(body);
        Error::Status {
            what: what.into(),
            status,
            codes,
            detail,
        }
    }

    /// Whether asking again may help: transport failures (except a request that could not be
    /// built), 408, 429 and 5xx answers, and a `TOOMANYREQUESTS` code whatever the status. A
    /// registry that breaks the protocol, a refusal, a passed deadline, a redirect loop or content
    /// that does not match its digest gives the same answer again.
    ///
    /// A manifest push refused because a blob is unknown is not retryable in general; only right
    /// after uploading that blob ourselves is it worth a retry: see [`Error::is_blob_unknown`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { source, .. } => !source.is_builder(),
            Error::Truncated { .. } => true,
            Error::Status { status, codes, .. } => {
                retryable_status(*status) || codes.contains(&ErrorCode::TooManyRequests)
            }
            _ => false,
        }
    }

    /// Whether this is a transport failure ([`Error::Transport`], [`Error::Truncated`]): the
    /// connection, not the registry's answer or the content, failed. Callers report it as "could
    /// not be read from the registry", never as content that failed a check.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. } | Error::Truncated { .. })
    }

    /// Whether a manifest push was refused (400 or 404) because the registry does not see a blob
    /// or manifest it references (`BLOB_UNKNOWN` or `MANIFEST_BLOB_UNKNOWN`). Right after our own
    /// upload this is a registry race or eventual consistency, worth a retry; Distribution answers
    /// an index push whose listed manifest is being re-pushed concurrently with 400 `DIGEST_INVALID`
    /// + `MANIFEST_BLOB_UNKNOWN`.
    pub fn is_blob_unknown(&self) -> bool {
        matches!(
            self,
            Error::Status { status: 400 | 404, codes, .. }
                if codes.iter().any(|c| matches!(c, ErrorCode::BlobUnknown | ErrorCode::ManifestBlobUnknown))
        )
    }

    /// The registry's error codes, when it answered with a distribution error body.
    pub fn codes(&self) -> &[ErrorCode] {
        match self {
            Error::Status { codes, .. } => codes,
            _ => &[],
        }
    }
}

/// Whether a response status is worth retrying: 408, 429 and 5xx.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// An error code of the OCI distribution spec ("Error Codes"), as a registry sends it in
/// `{"errors":[{"code":"...","message":"...","detail":...}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
    /// A code the spec does not define, upper-cased, limited to `A-Z 0-9 _ - .` and 64 characters.
    Other(String),
}

impl ErrorCode {
    /// The code for `code` as a registry spells it (case-insensitively).
    pub fn parse(code: &str) -> Self {
        let upper = code.trim().to_ascii_uppercase();
        match upper.as_str() {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            _ => ErrorCode::Other(
                upper
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    .take(MAX_CODE_LEN)
                    .collect(),
            ),
        }
    }

    /// The code as the spec spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error codes of a distribution error body and a short text for messages. At most the first
/// [`MAX_ERROR_BODY_PARSED`] bytes are parsed; a body that is not such a document (HTML, plain
/// text, cut off) gives no codes, and its start, sanitized, as the text.
pub(crate) fn parse_error_body(body: &[u8]) -> (Vec<ErrorCode>, String) {
    let body = &body[..body.len().min(MAX_ERROR_BODY_PARSED)];
    let errors = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(
            |mut v| match v.get_mut("errors").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(errors)) => Some(errors),
                _ => None,
            },
        );
    let Some(errors) = errors else {
        return (Vec::new(), sanitize(&String::from_utf8_lossy(body)));
    };
    let mut codes = Vec::new();
    let mut messages = Vec::new();
    for error in errors.iter().take(MAX_CODES) {
        if let Some(code) = error.get("code").and_then(serde_json::Value::as_str) {
            codes.push(ErrorCode::parse(code));
        }
        if let Some(message) = error.get("message").and_then(serde_json::Value::as_str) {
            messages.push(message);
        }
    }
    (codes, sanitize(&messages.join("; ")))
}

/// One line of at most [`MAX_DETAIL_LEN`] characters, without control characters.
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DETAIL_LEN)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `N of M bytes`, or `N bytes of a body of unannounced length`.
fn received_of(received: u64, expected: Option<u64>) -> String {
    match expected {
        Some(expected) => format!("{received} of {expected} bytes"),
        None => format!("{received} bytes of a body of unannounced length"),
    }
}

/// ` [CODE, CODE]`, or nothing without codes.
fn codes_suffix(codes: &[ErrorCode]) -> String {
    if codes.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = codes.iter().map(ErrorCode::as_str).collect();
    format!(" [{}]", names.join(", "))
}

/// An error and its sources on one line, `: `-separated, without control characters.
pub(crate) fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> Error {
        Error::status("PUT manifest r/x:1", status, body.as_bytes())
    }

    #[test]
    fn transport_failures_say_so_and_retry_later_and_bad_tokens_name_their_source() {
        let cut = Error::Truncated {
            what: "GET blob r/x@sha256:ab".into(),
            received: 5,
            expected: None,
            attempts: 1,
        };
        assert!(cut.is_retryable() && cut.is_transport());
        assert_eq!(
            cut.to_string(),
            "GET blob r/x@sha256:ab: transport failure: the connection closed after 5 bytes of a body of unannounced length"
        );
        let later = Error::RetryLater {
            what: "GET http://r/v2/x/manifests/sha256:ab".into(),
            status: 503,
            retry_after: std::time::Duration::from_secs(30),
            waited: std::time::Duration::from_secs(60),
            budget: std::time::Duration::from_secs(60),
        };
        assert!(!later.is_retryable() && !later.is_transport());
        assert_eq!(
            later.to_string(),
            "GET http://r/v2/x/manifests/sha256:ab: the registry kept asking to retry later \
             (answered 503 with Retry-After: 30 s); this run already waited 60 s on Retry-After, \
             and waits at most 60 s in all"
        );
        let token = Error::InvalidToken {
            realm: "https://r/token".into(),
        };
        assert!(!token.is_retryable());
        assert!(token
            .to_string()
            .contains("the token endpoint https://r/token sent an invalid token"));
        assert!(!status(503, "").is_transport());
    }

    #[test]
    fn a_spec_shaped_body_gives_its_code_and_message() {
        let (codes, detail) = parse_error_body(
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"}]}"#,
        );
        assert_eq!(codes, [ErrorCode::BlobUnknown]);
        assert_eq!(detail, "blob unknown to registry");
    }

    #[test]
    fn every_spec_code_parses_and_prints_as_spelled() {
        for name in [
            "BLOB_UNKNOWN",
            "BLOB_UPLOAD_INVALID",
            "BLOB_UPLOAD_UNKNOWN",
            "DIGEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_INVALID",
            "MANIFEST_UNKNOWN",
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "SIZE_INVALID",
            "UNAUTHORIZED",
            "DENIED",
            "UNSUPPORTED",
            "TOOMANYREQUESTS",
        ] {
            let code = ErrorCode::parse(name);
            assert!(!matches!(code, ErrorCode::Other(_)), "{name}");
            assert_eq!(code.to_string(), name);
        }
        assert_eq!(ErrorCode::parse("blob_unknown"), ErrorCode::BlobUnknown);
    }

    #[test]
    fn several_errors_keep_their_order() {
        // What Distribution 2.8 answered to an index push whose listed manifest was being re-pushed.
        let (codes, detail) = parse_error_body(
            br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:486a"}]}"#,
        );
        assert_eq!(
            codes,
            [ErrorCode::DigestInvalid, ErrorCode::ManifestBlobUnknown]
        );
        assert_eq!(
            detail,
            "provided digest did not match uploaded content; blob unknown to registry"
        );
    }

    #[test]
    fn an_unknown_code_is_kept_sanitized_and_truncated() {
        let (codes, _) = parse_error_body(br#"{"errors":[{"code":"quota_exceeded"}]}"#);
        assert_eq!(codes, [ErrorCode::Other("QUOTA_EXCEEDED".into())]);
        let hostile = format!(
            r#"{{"errors":[{{"code":"EVIL\u001b[31m\n{}","message":"x\u0007y"}}]}}"#,
            "A".repeat(1000)
        );
        let (codes, detail) = parse_error_body(hostile.as_bytes());
        let [ErrorCode::Other(code)] = codes.as_slice() else {
            panic!("{codes:?}");
        };
        assert!(code.starts_with("EVIL31"), "{code}");
        assert_eq!(code.len(), MAX_CODE_LEN);
        assert_eq!(detail, "xy");
        // A code that is not a string is skipped, the others kept; at most MAX_CODES kept.
        let (codes, _) = parse_error_body(
            br#"{"errors":[{"code":7},{"code":["BLOB_UNKNOWN"]},{"code":"NAME_UNKNOWN"}]}"#,
        );
        assert_eq!(codes, [ErrorCode::NameUnknown]);
        let many = format!(
            r#"{{"errors":[{}]}}"#,
            vec![r#"{"code":"DENIED"}"#; 100].join(",")
        );
        assert_eq!(parse_error_body(many.as_bytes()).0.len(), MAX_CODES);
    }

    #[test]
    fn a_body_that_is_not_a_distribution_error_gives_no_codes() {
        let (codes, detail) =
            parse_error_body(b"<html>\n<body>502 Bad Gateway: BLOB_UNKNOWN</body></html>");
        assert!(codes.is_empty());
        assert_eq!(
            detail,
            "<html><body>502 Bad Gateway: BLOB_UNKNOWN</body></html>"
        );
        for body in [
            &b""[..],
            b"null",
            b"[]",
            br#"{"errors":"BLOB_UNKNOWN"}"#,
            br#"{"code":"BLOB_UNKNOWN"}"#,
            b"\xff\xfe{",
        ] {
            assert!(parse_error_body(body).0.is_empty(), "{body:?}");
        }
        // Text mentioning a code is not a code.
        assert!(!status(404, "BLOB_UNKNOWN").is_blob_unknown());
    }

    #[test]
    fn an_oversized_body_is_parsed_only_up_to_the_bound() {
        // A valid document whose end lies past the bound: cut there, it is not JSON any more.
        let padding = " ".repeat(MAX_ERROR_BODY_PARSED);
        let big = format!(r#"{{"errors":[{{"code":"BLOB_UNKNOWN"}}]{padding}}}"#);
        assert!(big.len() > MAX_ERROR_BODY_PARSED);
        let (codes, detail) = parse_error_body(big.as_bytes());
        assert!(codes.is_empty(), "{codes:?}");
        assert!(detail.chars().count() <= MAX_DETAIL_LEN);
        // Within the bound, the same document parses.
        let small = r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#;
        assert_eq!(
            parse_error_body(small.as_bytes()).0,
            [ErrorCode::BlobUnknown]
        );
        // A long message is cut for the detail.
        let long = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"{}"}}]}}"#,
            "m".repeat(5000)
        );
        assert_eq!(parse_error_body(long.as_bytes()).1.len(), MAX_DETAIL_LEN);
    }

    #[test]
    fn status_errors_print_status_codes_and_detail_on_one_line() {
        let e = status(
            400,
            r#"{"errors":[{"code":"DIGEST_INVALID","message":"bad\ndigest"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"unknown"}]}"#,
        );
        assert_eq!(
            e.to_string(),
            "PUT manifest r/x:1: registry answered 400 [DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN]: baddigest; unknown"
        );
        assert_eq!(
            status(500, "").to_string(),
            "PUT manifest r/x:1: registry answered 500"
        );
        assert!(matches!(status(404, ""), Error::Status { status: 404, .. }));
    }

    #[test]
    fn the_retry_decision_follows_the_type() {
        // Statuses: 408, 429 and 5xx are retried, other answers not.
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(status(code, "").is_retryable(), "{code}");
        }
        for code in [400, 404, 405, 409, 412, 413, 600] {
            assert!(!status(code, "").is_retryable(), "{code}");
        }
        // A TOOMANYREQUESTS code is retried whatever the status; other codes change nothing.
        assert!(status(400, r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#).is_retryable());
        assert!(!status(400, r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#).is_retryable());
        assert!(status(503, r#"{"errors":[{"code":"UNSUPPORTED"}]}"#).is_retryable());
        // Message text decides nothing.
        assert!(!status(400, "TOOMANYREQUESTS, please retry").is_retryable());
        // A registry breaking the protocol, or one refusing, answers the same again.
        assert!(!Error::protocol("POST upload r/x", "202 without Location").is_retryable());
        assert!(!Error::Denied {
            what: "GET".into(),
            status: 401
        }
        .is_retryable());
        for e in [
            Error::Deadline("GET".into()),
            Error::TooManyRedirects { url: "u".into() },
            Error::Malformed("index".into()),
            Error::PreconditionFailed("r:t".into()),
            Error::TooLarge {
                what: "GET".into(),
                size: 2,
                max: 1,
            },
            Error::DigestMismatch {
                what: "blob".into(),
                actual: "sha256:0".into(),
            },
            Error::Io {
                what: "writing".into(),
                source: std::io::Error::other("disk full"),
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[tokio::test]
    async fn transport_failures_are_retried_and_keep_their_source_without_the_url() {
        // Nothing listens on a port that was just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/v2/r/blobs/uploads/x?_state=SECRET");
        let failure = reqwest::Client::new().get(&url).send().await.unwrap_err();
        let e = Error::transport(
            format!("GET http://127.0.0.1:{port}/v2/r/blobs/uploads/x"),
            failure,
        );
        assert!(e.is_retryable(), "{e}");
        let message = e.to_string();
        assert!(
            !message.contains("SECRET") && !message.contains('\n'),
            "{message}"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<reqwest::Error>().is_some());
        assert!(!cause_chain(source).contains("SECRET"));

        // A request that cannot be built is not retried.
        let built = reqwest::Client::new()
            .get("http://127.0.0.1/")
            .header("x", "a\nb")
            .send()
            .await
            .unwrap_err();
        assert!(built.is_builder());
        assert!(!Error::transport("GET", built).is_retryable());
    }

    #[test]
    fn blob_unknown_is_read_from_codes_and_status() {
        let race = r#"{"errors":[{"code":"DIGEST_INVALID"},{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#;
        assert!(status(400, race).is_blob_unknown());
        assert!(status(404, r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#).is_blob_unknown());
        // Another status, another code, or no code: not a blob the registry does not see yet.
        assert!(!status(500, race).is_blob_unknown());
        assert!(!status(400, r#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}"#).is_blob_unknown());
        assert!(!status(400, r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#).is_blob_unknown());
        assert!(!Error::protocol("PUT", "BLOB_UNKNOWN").is_blob_unknown());
        assert_eq!(
            status(400, race).codes(),
            [ErrorCode::DigestInvalid, ErrorCode::ManifestBlobUnknown]
        );
        assert!(Error::Malformed("x".into()).codes().is_empty());
    }
}
