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
pub mod copy;
pub mod cosign_tag;
pub mod doctor;
mod error;
pub mod numbers;
pub mod prune;
pub mod retry;
pub mod settle;

pub use attach::{attach, AttachOptions, AttachReport};
pub use auth::{Credential, Keychain};
pub use client::{Client, ClientOptions, Stats, PROGRESS_MIN_BYTES};
pub use cnb_referrers::reference::{ImageRef, ReferenceError, Repository};
pub use error::{Error, ErrorCode};
pub use retry::RetryPolicy;
