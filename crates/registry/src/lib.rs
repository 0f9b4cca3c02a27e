//! OCI registry access for attestations.
//!
//! A small distribution-spec client built for the write path oci-client does not cover (see
//! `docs/decisions/registry-client.md`): every request goes through one place that authenticates
//! (Basic, or bearer tokens reused per scope until they expire), retries 408/429/5xx and connection
//! failures with jittered exponential backoff honouring `Retry-After`, follows redirects without
//! carrying credentials to another host, bounds every body it reads, and counts requests by kind.
//! On top of it, [`attach()`] attaches referrers through the Referrers API or the Referrers Tag
//! Schema, race-safely and idempotently.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cnb_registry::Error> {
//! use cnb_registry::{Client, ClientOptions, ImageRef, Keychain};
//!
//! let client = Client::new(Keychain::from_env()?, ClientOptions::default().with_insecure_from_env())?;
//! let image = ImageRef::parse("registry.example/team/app:latest")?;
//! let manifest = client.get_manifest(&image.repository, image.reference()).await?;
//! println!("{:?} after {} request(s)", manifest.map(|m| m.digest), client.stats().total());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod attach;
pub mod auth;
mod client;
pub mod cosign_tag;
pub mod doctor;
pub mod retry;

pub use attach::{attach, AttachOptions, AttachReport};
pub use auth::{Credential, Keychain};
pub use client::{Client, ClientOptions, Stats};
pub use cnb_referrers::reference::{ImageRef, ReferenceError, Repository};
pub use retry::RetryPolicy;

/// What can go wrong talking to a registry. Messages name the operation, repository and digest;
/// they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request was redirected more often than allowed (a loop, most likely); not retried.
    #[error("more than {max} redirects for {url}", max = client::MAX_REDIRECTS)]
    TooManyRedirects {
        /// The last URL, without its query.
        url: String,
    },
    /// The run's overall deadline ([`ClientOptions::deadline`]) passed.
    #[error(
        "{0}: the run's deadline passed (set a longer one with --timeout or CNB_ATTEST_TIMEOUT)"
    )]
    Deadline(String),
    /// An image reference does not parse.
    #[error(transparent)]
    BadReference(#[from] ReferenceError),
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
    /// A transport failure (connection refused or reset, timeout, TLS).
    #[error("{0}")]
    Http(String),
    /// The registry answered an unexpected status.
    #[error("{what}: registry answered {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// The operation.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
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
    /// A registry document is malformed.
    #[error("malformed {0}")]
    Malformed(String),
    /// A conditional write lost a race (412).
    #[error("{0}: changed since it was read (412 Precondition Failed)")]
    PreconditionFailed(String),
    /// The `sha256-<hex>` fallback tag holds something that must not be overwritten.
    #[error("{0}")]
    FallbackTagTaken(String),
    /// The fallback index could not be brought to contain every referrer.
    #[error("{0}")]
    IndexContention(String),
}

impl Error {
    /// Whether a manifest push failed because the registry does not (yet) see a blob it references:
    /// after our own upload this is a registry race or eventual consistency, worth a retry.
    pub fn is_blob_unknown(&self) -> bool {
        matches!(self, Error::Status { status: 400 | 404, detail, .. } if detail.contains("BLOB_UNKNOWN"))
    }

    /// Whether retrying the operation may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Http(_) => true,
            Error::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
