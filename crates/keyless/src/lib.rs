//! Keyless (Sigstore) signing and verification for cnb-attest.
//!
//! * [`bundle`]: the keyless `verificationMaterial` of a Sigstore bundle v0.3 (a Fulcio leaf
//!   certificate and a Rekor v1 entry with its SET and inclusion proof), read and written.
//! * [`trust`]: `trusted_root.json`, signing config v0.2 and `ClientTrustConfig` (cosign's and
//!   sigstore-python's file formats), and the embedded public-good trusted root.
//! * [`policy`]: the identity policy (`--certificate-identity[-regexp]`,
//!   `--certificate-oidc-issuer[-regexp]`; regexps are anchored).
//! * [`verify`]: the offline verifier: chain, SCT, SET, inclusion proof, checkpoint, binding of
//!   the log entry to the envelope and certificate, identity policy.
//! * `sign` (feature `sign`): an OIDC token from the environment or a file, an ephemeral P-256 key,
//!   a Fulcio v2 certificate, a Rekor v1 `dsse` entry per envelope.

pub mod bundle;
pub mod cert;
pub mod policy;
pub mod sct;
pub mod tlog;
pub mod trust;
pub mod verify;

#[cfg(feature = "sign")]
pub mod fulcio;
#[cfg(feature = "sign")]
pub mod rekor;
#[cfg(feature = "sign")]
pub mod sign;
pub mod token;
