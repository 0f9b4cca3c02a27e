//! The signer configuration of the buildpacks RFC draft "Refactor SBOM": the TOML file that
//! tells the signer which image to sign and which in-toto attestations to attach.
//!
//! The exporter [`generate`]s it from the SBOM files that `cnb-sbom-discovery` found (one
//! attestation per file) and [`SignerConfig::write`]s it; platforms may add their own entries
//! (a run-image SBOM, provenance); the signer [`load`]s it, [`SignerConfig::validate`]s it
//! against the [`AllowedRoots`] and reads each predicate with
//! [`AttestationSpec::read_predicate`].
//!
//! The shape is the RFC's:
//!
//! ```toml
//! [image]
//! reference = "my.registry.io/ns/app:latest@sha256:<manifest digest>"
//!
//! [[attestations]]
//!   [[attestations.predicate]]          # exactly one entry
//!   type = "https://cyclonedx.org/bom"  # absolute URI
//!   uri = "/layers/sbom/launch/my-buildpack/launch-dep/sbom.cdx.json"
//!   # or: value = "<inline JSON object>" (exactly one of uri/value)
//!   [[attestations.statement.subject]]  # at least one
//!   name = "my.registry.io/ns/app"
//!   digest = "sha256:<64 lowercase hex>"
//!   [[attestations.annotations]]        # names unique
//!   name = "io.buildpacks.buildpack.id"
//!   value = "my-buildpack"
//! ```
//!
//! Parsing is strict: unknown fields are errors, every error names the file, line, column and
//! field path, and a key that looks like a secret (`password`, `token`, `private-key`, ...)
//! is refused before anything else, because secrets never come from this file.
//!
//! No network access, no global state.
//!
//! ```
//! use std::path::Path;
//! use cnb_attestation_config::{parse, annotations, PredicateSource};
//!
//! let text = r#"
//! [image]
//! reference = "r.io/app:1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
//! [[attestations]]
//!   [[attestations.predicate]]
//!   type = "https://slsa.dev/provenance/v1"
//!   value = '{"buildDefinition":{}}'
//!   [[attestations.statement.subject]]
//!   name = "r.io/app"
//!   digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
//!   [[attestations.annotations]]
//!   name = "io.buildpacks.buildpack.id"
//!   value = "platform"
//! "#;
//! let config = parse(text, Path::new("signer.toml"))?;
//! assert_eq!(config.image.repository(), "r.io/app");
//! let a = &config.attestations[0];
//! assert!(matches!(a.predicate.source, PredicateSource::Value(_)));
//! assert_eq!(a.annotation(annotations::BUILDPACK_ID), Some("platform"));
//! assert_eq!(parse(&config.to_toml(), Path::new("again.toml"))?, config);
//!
//! let err = parse("[image]\npassword = \"x\"\n", Path::new("signer.toml")).unwrap_err();
//! assert!(err.to_string().starts_with("secret-looking field `password` at signer.toml:2:1"));
//! # Ok::<(), cnb_attestation_config::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checks;
mod error;
mod generate;
mod model;
mod parse;
mod validate;

/// The validated `sha256:<64 lowercase hex>` digest, shared by every crate of the workspace.
pub use cnb_untrusted::Digest;
pub use error::Error;
pub use generate::{generate, ImageDescription};
pub use model::{
    AttestationSpec, ImageSection, PredicateSource, PredicateSpec, SignerConfig, SubjectSpec,
};
pub use parse::{load, parse, MAX_CONFIG_SIZE};
pub use validate::{AllowedRoots, PredicateFile, DEFAULT_MAX_PREDICATE_SIZE};

/// The annotation names this project puts on attestations (and on the referrer manifests that
/// carry them). They are hints for selection only; every security decision uses signed bytes.
pub mod annotations {
    /// The real (unescaped) buildpack ID, e.g. `paketo-buildpacks/node-engine`.
    pub const BUILDPACK_ID: &str = "io.buildpacks.buildpack.id";
    /// The layer name of a layer-scoped SBOM, e.g. `node`.
    pub const LAYER_NAME: &str = "io.buildpacks.layer.name";
    /// What kind of digest the layer subject carries; always [`DIGEST_KIND_DIFF_ID`].
    pub const LAYER_DIGEST_KIND: &str = "io.buildpacks.layer.digest-kind";
    /// The value of [`LAYER_DIGEST_KIND`]: the layer subject's digest is the diffID (sha256 of
    /// the uncompressed tar), as the lifecycle label records it.
    pub const DIGEST_KIND_DIFF_ID: &str = "diffID";
    /// The SBOM media type, e.g. `application/vnd.cyclonedx+json`.
    pub const SBOM_MEDIA_TYPE: &str = "io.buildpacks.sbom.media-type";
    /// `sha256:<hex>` of the SBOM file's bytes.
    pub const SBOM_DIGEST: &str = "io.buildpacks.sbom.digest";
    /// `build` or `cache` for SBOMs from `<layers>/sbom/build` or `sbom/cache`; absent for
    /// launch SBOMs.
    pub const SBOM_KIND: &str = "io.buildpacks.sbom.kind";
}
