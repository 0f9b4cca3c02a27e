//! Signed SBOM attestations for Cloud Native Buildpacks images: the one API a Rust program uses.
//!
//! The `signer`, `exporter`, `analyzer` and `cnb-attest` binaries are thin wrappers around this
//! crate: each parses its flags, calls one function here, renders the typed result and maps typed
//! errors to its exit codes. Everything they do, a platform embedding this crate can do:
//!
//! - [`Image::open`]: an image in an OCI layout (`oci:<dir>[:<tag>|@sha256:<hex>]` or a directory),
//!   a registry (`registry.example/team/app:1.0`, feature `registry`) or a `docker save` archive
//!   (`docker-archive:<file>[:<tag>]`).
//! - [`sign::sign`]: discover a build's SBOMs (or take a signer configuration), sign each as an
//!   in-toto statement in a DSSE envelope and attach them as referrers; [`sign::sign_configured`]
//!   is the `signer` phase (configuration in, reports out).
//! - [`inspect::list`], [`inspect::verify`]: the attestations of an image, and typed verdicts.
//! - [`restore::restore`]: verify and write the SBOM files (`pack sbom download`, the analyzer),
//!   one fail-closed policy with a typed [`restore::Refusal`].
//! - [`export::export`]: the exporter's signer configuration (and `-omit-sbom`);
//!   [`export::strip_sbom_layer`]: an image rewritten without its SBOM layer.
//! - [`rebase::rebase`]: carry an image's verified attestations over to its rebase (the `rebaser`
//!   phase).
//! - [`keys`]: cosign key pairs, key files, the throw-away key.
//!
//! The functions that may talk to a registry are `async`. From synchronous code, run a whole
//! command in one [`block_on`] (one runtime for the open and what follows, so registry
//! connections are reused):
//!
//! ```
//! # fn main() -> Result<(), cnb_attest::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
//! # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
//! # let target = format!("oci:{}:latest", dir.path().display());
//! use cnb_attest::{inspect, Image, OpenOptions};
//!
//! let listing = cnb_attest::block_on(async {
//!     let image = Image::open(&target, &OpenOptions::default()).await?;
//!     inspect::list(&image).await
//! })??;
//! assert_eq!(listing.attestations(), 0);
//! # Ok(()) }
//! ```
//!
//! With `default-features = false` (no `registry` feature) the crate builds without tokio, reqwest
//! or hyper, and signs, verifies and restores OCI layouts; [`block_on`] then polls the future on
//! the calling thread.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

#[cfg(feature = "registry")]
pub mod bundle;
pub mod export;
mod image;
pub mod inspect;
pub mod keyless;
pub mod keys;
pub mod rebase;
#[cfg(feature = "registry")]
pub mod registry;
pub mod restore;
pub mod sign;

pub use image::{Image, OpenOptions, Platforms};

pub use cnb_dsse::{PasswordSource, SigningKey, VerifyingKey};
pub use cnb_referrers::platform::{self, IndexInfo, IndexPlatform, PlatformSpec};
pub use cnb_referrers::{Digest, StorageFormat};
pub use cnb_sbom_restore::inspect::{Listed, Verdict};
pub use cnb_sbom_restore::select::{Plan, Policy, Request as Selection};
pub use cnb_signing::{
    AttestationOutcome, ImageSignature, LayoutImage, NotListed, SignOptions, SignReport,
    StatementVersion, Status, COSIGN_SIGN_V1,
};

/// What can go wrong. Callers branch on the variant (the binaries map each to an exit code); the
/// message names the image, file or attestation concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request or option is invalid (a bad value, or a combination the target cannot take).
    #[error("{0}")]
    InvalidRequest(String),
    /// The image does not exist: no layout at that path, no such tag or digest, a 404. For a
    /// lifecycle analyzer this is a first build, not a failure.
    #[error("{0}")]
    ImageNotFound(String),
    /// The image exists but cannot be read, or is not the image the request is for.
    #[error("{0}")]
    BadImage(String),
    /// The image has no usable `io.buildpacks.lifecycle.metadata` label: not a buildpacks image.
    #[error("{0}")]
    NotBuildpacksImage(String),
    /// The signer configuration cannot be used.
    #[error(transparent)]
    Config(#[from] cnb_attestation_config::Error),
    /// The signer configuration is readable but not usable for this run (e.g. not pinned).
    #[error("{0}")]
    ConfigMismatch(String),
    /// A key cannot be read, decrypted or written.
    #[error(transparent)]
    Key(#[from] cnb_dsse::Error),
    /// SBOM discovery or a platform file refused the layers directory.
    #[error(transparent)]
    Discovery(#[from] cnb_sbom_discovery::Error),
    /// Signing or storing an attestation failed.
    #[error(transparent)]
    Sign(cnb_signing::Error),
    /// Reading the image's referrers or attestations failed.
    #[error("{image}: {source}")]
    Read {
        /// The image.
        image: String,
        /// The cause.
        source: cnb_sbom_restore::Error,
    },
    /// The image's SBOM layer cannot be read.
    #[error("{0}")]
    SbomLayer(cnb_sbom_restore::Error),
    /// Writing restored SBOMs was refused or failed; nothing unsafe was written.
    #[error("{0}")]
    Write(cnb_sbom_restore::Error),
    /// A registry failed.
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Registry(#[from] cnb_registry::Error),
    /// `-omit-sbom` pushed the rewritten image, but not every tag moved: the value lists which
    /// moved and which did not (those still name the old image). report.toml and the signer
    /// configuration were left as they were; running again finishes the move.
    #[error("{0}; report.toml and the signer configuration were left as they were (run again to finish: the rewrite is deterministic)")]
    TagsPartlyMoved(Box<cnb_signing::omit::PartlyMoved>),
    /// `-omit-sbom` pushed the rewritten image and moved every tag, but report.toml could not be
    /// rewritten (no signer configuration was written).
    #[error(transparent)]
    ReportNotRewritten(Box<export::ReportNotRewritten>),
    /// A registry image was named, but this build has no registry support (feature `registry`).
    #[error("{0}: this build has no registry support (cargo feature `registry`)")]
    RegistryUnsupported(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Keyless signing failed: the identity token, Fulcio, Rekor, or an envelope too large for
    /// the log (refused before any log request). Nothing was stored.
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Keyless(#[from] keyless::SignError),
    /// A keyless bundle just made does not verify against the trusted root given for the
    /// instance; nothing was stored.
    #[error("{0}")]
    KeylessUntrusted(String),
    /// A rebase was refused ([`rebase::rebase`]); nothing was written.
    #[error(transparent)]
    Rebase(#[from] rebase::Refusal),
    /// The image is an image index of several platform manifests and no platform was named
    /// (`OpenOptions::platform`, `--platform`): nothing is chosen silently. The CLIs exit 2.
    #[error("{image}: the image index holds {} platform manifests; name one with --platform: {}", platforms.len(), list_platforms(platforms))]
    AmbiguousPlatform {
        /// The image as named.
        image: String,
        /// Every platform manifest of the index (`os/arch[/variant]` and digest).
        platforms: Vec<IndexPlatform>,
    },
    /// The platform named is not in the image index (or is there more than once). The CLIs
    /// exit 2 (the analyzer treats it as no previous image for this platform).
    #[error(
        "{image}: no one manifest for platform {wanted} in the image index; it holds: {}",
        list_platforms(platforms)
    )]
    NoSuchPlatform {
        /// The image as named.
        image: String,
        /// The platform asked for (boxed: the error stays small).
        wanted: Box<PlatformSpec>,
        /// Every platform manifest of the index.
        platforms: Vec<IndexPlatform>,
    },
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// An export bundle does not hold everything its inventory lists (a referrer unlisted from
    /// `index.json`, a blob deleted or changed): `missing` names each (kind, digest, subject).
    /// Nothing was pushed (import) or moved into place (export).
    #[error("{bundle}: the bundle is incomplete, {} object(s) its inventory lists are missing: {}", missing.len(), shown_missing(missing))]
    BundleIncomplete {
        /// The bundle.
        bundle: String,
        /// What is missing.
        missing: Vec<cnb_referrers::inventory::Missing>,
    },
    /// An export bundle lists referrers or cosign tags its inventory does not (added to the layout
    /// after export, e.g. by signing `oci:<bundle>`): importing would leave them behind without a
    /// word, so nothing was pushed. `unlisted` names each (kind, digest, subject).
    #[error("{bundle}: the bundle holds {} referrer(s) its inventory does not list (added after export?): {}; export again", unlisted.len(), shown_missing(unlisted))]
    BundleUnlisted {
        /// The bundle.
        bundle: String,
        /// What `index.json` lists that the inventory does not.
        unlisted: Vec<cnb_referrers::inventory::Missing>,
    },
}

fn shown_missing(missing: &[cnb_referrers::inventory::Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn list_platforms(platforms: &[IndexPlatform]) -> String {
    if platforms.is_empty() {
        return "no platform manifest".into();
    }
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// The facade's error for a platform that could not be chosen from `image`'s index.
    /// A layout's refusal to resolve `image`: a platform choice it cannot make is typed
    /// ([`Error::AmbiguousPlatform`], [`Error::NoSuchPlatform`]), anything else
    /// [`Error::BadImage`].
    pub(crate) fn resolving(image: &str, e: cnb_referrers::Error) -> Self {
        match e {
            cnb_referrers::Error::Platform(e) => Error::platform(image, *e),
            other => Error::BadImage(other.to_string()),
        }
    }

    pub(crate) fn platform(image: &str, e: cnb_referrers::platform::PlatformError) -> Self {
        use cnb_referrers::platform::PlatformError;
        match e {
            PlatformError::Ambiguous { platforms } => Error::AmbiguousPlatform {
                image: image.to_string(),
                platforms,
            },
            PlatformError::NoMatch {
                wanted, platforms, ..
            } => Error::NoSuchPlatform {
                image: image.to_string(),
                wanted: Box::new(wanted),
                platforms,
            },
            e @ PlatformError::NoPlatformManifest => Error::BadImage(format!("{image}: {e}")),
        }
    }
}

impl From<cnb_signing::Error> for Error {
    fn from(e: cnb_signing::Error) -> Self {
        match e {
            cnb_signing::Error::Config(e) => Error::Config(e),
            cnb_signing::Error::Discovery(e) => Error::Discovery(e),
            cnb_signing::Error::BadImage(m) => Error::BadImage(m),
            cnb_signing::Error::BadOption(m) => Error::InvalidRequest(m),
            other => Error::Sign(other),
        }
    }
}

/// Runs `future` to completion on the calling thread: the one way to call this crate's async
/// functions from synchronous code. With the `registry` feature, a current-thread tokio runtime
/// drives it (run a whole command in one call, so registry connections are reused); without it,
/// the future (which then never waits on I/O) is polled in place.
///
/// ```
/// assert_eq!(cnb_attest::block_on(async { 40 + 2 })?, 42);
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    #[cfg(feature = "registry")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(runtime.block_on(future))
    }
    #[cfg(not(feature = "registry"))]
    {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return Ok(output);
            }
            std::thread::yield_now();
        }
    }
}
