//! DSSE envelopes, ECDSA P-256 signing and cosign key files.
//!
//! - [`pae`] and [`Envelope`]: the DSSE v1 pre-authentication encoding and the JSON envelope
//!   (deterministic writing, strict reading: duplicate keys anywhere, case variants of the
//!   field names and non-canonical base64 are rejected).
//! - [`SigningKey`] / [`VerifyingKey`] / [`Signer`]: ECDSA P-256 with SHA-256 and deterministic
//!   RFC 6979 nonces, ASN.1 DER signatures (what cosign and securesystemslib use); key
//!   fingerprints and the Sigstore bundle public-key [`hint`](VerifyingKey::hint).
//! - [`keyfile`]: cosign's encrypted private key files (scrypt + nacl/secretbox), unencrypted
//!   PKCS#8/SEC1 keys, `cosign.pub`, and `generate-key-pair`.
//! - [`PasswordSource`]: the key password from `COSIGN_PASSWORD`, another variable, or a file.
//!
//! No error message or `Debug` output contains a password, a private key or a payload.
//!
//! # Example
//!
//! ```
//! use cnb_dsse::{Envelope, Signer, SigningKey, IN_TOTO_PAYLOAD_TYPE};
//!
//! # fn main() -> Result<(), cnb_dsse::Error> {
//! let key = SigningKey::generate()?;
//! let statement = br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec();
//!
//! let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.clone(), &key)?;
//! let json = envelope.to_json();
//! assert!(json.starts_with(br#"{"payloadType":"application/vnd.in-toto+json","payload":""#));
//!
//! let read = Envelope::from_json(&json)?;
//! assert_eq!(read.payload_type, IN_TOTO_PAYLOAD_TYPE); // callers check the type
//! read.verify(&key.public_key())?;
//! assert_eq!(read.payload, statement);
//!
//! // The public key as cosign writes `cosign.pub`, and back.
//! let public = cnb_dsse::VerifyingKey::from_pem(&key.public_key().to_pem())?;
//! assert_eq!(public, key.public_key());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod b64;
pub use b64::{Base64Decoder, Base64Error};
mod envelope;
mod error;
pub mod keyfile;
mod keys;
mod password;

pub use envelope::{pae, pae_header, Envelope, Signature, IN_TOTO_PAYLOAD_TYPE, MAX_SIGNATURES};
pub use error::{Error, IN_MEMORY};
pub use keyfile::{
    generate_key_pair, read_private_key, read_public_key, write_key_pair, KeyPairFiles,
};
pub use keys::{Signer, SigningKey, VerifyingKey};
pub use password::{PasswordSource, DEFAULT_PASSWORD_ENV, MAX_PASSWORD_FILE_SIZE};
