//! The bodies of the fuzz targets: one function per target, taking any bytes, panicking when an
//! invariant breaks. cargo-fuzz (`fuzz/`, nightly) and the stable harness
//! (`tests/replay_and_mutate.rs`) call the same functions; see `docs/fuzzing.md`.
//!
//! Every target checks more than "it does not panic": a differential oracle where one exists
//! (`serde_json`, oci-spec, one-shot against streamed, in-memory against streamed), and a write
//! then read round trip where the API has a writer.

mod util;

mod bundle;
mod docker_save;
mod envelope;
mod json;
mod oci;
mod reference;
mod restore_path;
mod signer_toml;
mod statement;
mod tar_layer;

pub use bundle::bundle;
pub use docker_save::docker_save;
pub use envelope::envelope;
pub use json::json;
pub use oci::oci;
pub use reference::reference;
pub use restore_path::restore_path;
pub use signer_toml::signer_toml;
pub use statement::statement;
pub use tar_layer::tar_layer;
pub use util::Rng;

/// A target: any bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("tar_layer", tar_layer),
    ("docker_save", docker_save),
    ("json", json),
    ("statement", statement),
    ("envelope", envelope),
    ("bundle", bundle),
    ("oci", oci),
    ("signer_toml", signer_toml),
    ("restore_path", restore_path),
    ("reference", reference),
];
