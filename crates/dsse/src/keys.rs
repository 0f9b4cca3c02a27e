//! Signing and verifying keys.

use std::fmt;
use std::path::Path;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use p256::pkcs8::ObjectIdentifier;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, PrivateKeyInfo};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::b64;
use crate::error::{in_memory, owned, Error};

/// Something that signs DSSE PAE messages.
///
/// Implementations produce signatures in the form cosign and securesystemslib use: for ECDSA an
/// ASN.1 DER `Ecdsa-Sig-Value` over the SHA-256 digest of the message.
pub trait Signer: Send + Sync {
    /// Signs `message` (the whole message; the signer hashes it).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
    /// Signs a message given only its SHA-256 digest, for messages too large to hold in memory:
    /// the same signature [`Signer::sign`] gives for the message. Signers that must see the
    /// message itself return `None`, and callers then sign it whole.
    fn sign_prehashed(&self, sha256: &[u8; 32]) -> Option<Result<Vec<u8>, Error>> {
        let _ = sha256;
        None
    }
    /// The `keyid` to put next to the signature (cosign uses `""`).
    fn keyid(&self) -> &str;
    /// The public key that verifies this signer's signatures.
    fn public_key(&self) -> VerifyingKey;
}

/// An ECDSA P-256 private key that signs with SHA-256 and deterministic nonces (RFC 6979): the
/// same key and message always give the same signature bytes.
///
/// `Debug` prints only the curve and the public key's fingerprint.
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    keyid: String,
}

impl SigningKey {
    /// Generates a new random key with the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(bytes.as_mut())
                .map_err(|e| Error::Random {
                    reason: e.to_string(),
                })?;
            // Fails only for zero or values >= the group order (probability ~2^-32).
            if let Ok(inner) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                return Ok(SigningKey {
                    inner,
                    keyid: String::new(),
                });
            }
        }
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (DER) holding an ECDSA P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_pkcs8_der_at(der, &in_memory())
    }

    pub(crate) fn from_pkcs8_der_at(der: &[u8], path: &Path) -> Result<Self, Error> {
        let info = PrivateKeyInfo::from_der(der).map_err(|e| Error::InvalidKey {
            path: owned(path),
            reason: format!("not a PKCS#8 private key: {e}"),
        })?;
        check_p256(&info.algorithm, path)?;
        let inner =
            p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| Error::InvalidKey {
                path: owned(path),
                reason: format!("invalid PKCS#8 P-256 private key: {e}"),
            })?;
        Ok(SigningKey {
            inner,
            keyid: String::new(),
        })
    }

    /// Reads a SEC1 `ECPrivateKey` (DER, PEM label `EC PRIVATE KEY`) on P-256.
    pub(crate) fn from_sec1_der_at(der: &[u8], path: &Path) -> Result<Self, Error> {
        let secret = p256::SecretKey::from_sec1_der(der).map_err(|_| Error::InvalidKey {
            path: owned(path),
            reason: "not a SEC1 P-256 private key (or a key on another curve)".into(),
        })?;
        Ok(SigningKey {
            inner: secret.into(),
            keyid: String::new(),
        })
    }

    /// The key as PKCS#8 `PrivateKeyInfo` DER (the plaintext inside cosign's encrypted key files).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let doc = self.inner.to_pkcs8_der().map_err(|e| Error::KeyEncoding {
            reason: e.to_string(),
        })?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Sets the `keyid` written next to this key's signatures (default `""`, as cosign).
    #[must_use]
    pub fn with_keyid(mut self, keyid: impl Into<String>) -> Self {
        self.keyid = keyid.into();
        self
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::P256(*self.inner.verifying_key())
    }

    /// The public key's [`VerifyingKey::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.verifying_key().fingerprint()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(P-256, {})", self.fingerprint())
    }
}

impl Signer for SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let signature: p256::ecdsa::Signature =
            self.inner.try_sign(message).map_err(|e| Error::Signing {
                fingerprint: self.fingerprint(),
                reason: e.to_string(),
            })?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn sign_prehashed(&self, sha256: &[u8; 32]) -> Option<Result<Vec<u8>, Error>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        // RFC 6979 nonces derive from the digest, so this equals `sign` of the whole message.
        let signed: Result<p256::ecdsa::Signature, _> = self.inner.sign_prehash(sha256);
        Some(
            signed
                .map(|s| s.to_der().as_bytes().to_vec())
                .map_err(|e| Error::Signing {
                    fingerprint: self.fingerprint(),
                    reason: e.to_string(),
                }),
        )
    }

    fn keyid(&self) -> &str {
        &self.keyid
    }

    fn public_key(&self) -> VerifyingKey {
        self.verifying_key()
    }
}

/// A public key that verifies signatures.
///
/// Only ECDSA P-256 exists for now; Ed25519 and RSA may follow, hence `non_exhaustive`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyingKey {
    /// ECDSA on NIST P-256 with SHA-256 (cosign's default).
    P256(p256::ecdsa::VerifyingKey),
}

/// DER of `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits, …) }`
/// up to the uncompressed point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

impl VerifyingKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as in cosign's `cosign.pub`.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        Self::from_pem_at(pem.as_bytes(), &in_memory())
    }

    pub(crate) fn from_pem_at(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        let block = crate::keyfile::parse_single_pem(bytes, path)?;
        if block.tag() != PUBLIC_KEY_LABEL {
            return Err(Error::UnsupportedLabel {
                path: owned(path),
                label: block.tag().to_owned(),
                expected: "\"PUBLIC KEY\"",
            });
        }
        Self::from_spki_der_at(block.contents(), path)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_spki_der_at(der, &in_memory())
    }

    fn from_spki_der_at(der: &[u8], path: &Path) -> Result<Self, Error> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| Error::InvalidKey {
            path: owned(path),
            reason: format!("not a SubjectPublicKeyInfo: {e}"),
        })?;
        check_p256(&spki.algorithm, path)?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::InvalidKey {
                path: owned(path),
                reason: "public key bit string has unused bits".into(),
            })?;
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| Error::InvalidKey {
                path: owned(path),
                reason: "not a point on P-256".into(),
            })?;
        Ok(VerifyingKey::P256(key))
    }

    /// The key as a DER SubjectPublicKeyInfo (uncompressed point, named curve), byte for byte
    /// what Go's `x509.MarshalPKIXPublicKey` writes.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            VerifyingKey::P256(key) => {
                let point = key.to_encoded_point(false);
                let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
                der.extend_from_slice(&P256_SPKI_PREFIX);
                der.extend_from_slice(point.as_bytes());
                der
            }
        }
    }

    /// The key as a PEM `PUBLIC KEY` with LF line endings, as cosign writes `cosign.pub`.
    pub fn to_pem(&self) -> String {
        let block = pem::Pem::new(PUBLIC_KEY_LABEL, self.to_spki_der());
        pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// Lowercase hex SHA-256 of [`to_spki_der`](Self::to_spki_der).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.to_spki_der());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// Standard base64 (padded) of the SHA-256 of [`to_spki_der`](Self::to_spki_der): what
    /// cosign 3 writes in a Sigstore bundle's `verificationMaterial.publicKey.hint`.
    pub fn hint(&self) -> String {
        b64::encode(&Sha256::digest(self.to_spki_der()))
    }

    /// Verifies an ASN.1 DER signature over `message` (hashed with SHA-256 here).
    pub fn verify(&self, message: &[u8], der_sig: &[u8]) -> Result<(), Error> {
        match self {
            VerifyingKey::P256(key) => {
                let signature = self.p256_signature(der_sig)?;
                key.verify(message, &signature).map_err(|_| self.mismatch())
            }
        }
    }

    fn p256_signature(&self, der_sig: &[u8]) -> Result<p256::ecdsa::Signature, Error> {
        p256::ecdsa::Signature::from_der(der_sig).map_err(|_| Error::BadSignature {
            fingerprint: self.fingerprint(),
            reason: "not an ASN.1 DER ECDSA P-256 signature",
        })
    }

    fn mismatch(&self) -> Error {
        Error::BadSignature {
            fingerprint: self.fingerprint(),
            reason: "signature mismatch",
        }
    }
}

impl VerifyingKey {
    /// Verifies an ASN.1 DER signature over a message given by its SHA-256 digest: what
    /// [`verify`](Self::verify) checks over the message itself, for messages streamed through a
    /// hash rather than held.
    pub fn verify_prehashed(&self, sha256: &[u8; 32], der_sig: &[u8]) -> Result<(), Error> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match self {
            VerifyingKey::P256(key) => {
                let signature = self.p256_signature(der_sig)?;
                key.verify_prehash(sha256, &signature)
                    .map_err(|_| self.mismatch())
            }
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyingKey::P256(_) => write!(f, "VerifyingKey(P-256, {})", self.fingerprint()),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Checks that an algorithm identifier is id-ecPublicKey on P-256; otherwise names what it is.
fn check_p256(algorithm: &AlgorithmIdentifierRef<'_>, path: &Path) -> Result<(), Error> {
    if algorithm.oid == ID_EC_PUBLIC_KEY {
        let curve = algorithm.parameters_oid().map_err(|_| Error::InvalidKey {
            path: owned(path),
            reason: "EC key without a named curve".into(),
        })?;
        if curve == SECP256R1 {
            return Ok(());
        }
        return Err(Error::UnsupportedKeyType {
            path: owned(path),
            algorithm: format!("ECDSA {}", curve_name(&curve)),
        });
    }
    Err(Error::UnsupportedKeyType {
        path: owned(path),
        algorithm: algorithm_name(&algorithm.oid),
    })
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => format!("curve {other}"),
    }
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".into(),
        other => format!("with algorithm OID {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey as _;

    #[test]
    fn both_low_s_and_high_s_signatures_verify_like_go() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        for message in [&b"a"[..], b"b", b"c", b"d"] {
            let der = Signer::sign(&key, message).unwrap();
            let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
            let (r, s) = sig.split_scalars();
            let flipped = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
            public.verify(message, &der).unwrap();
            public.verify(message, flipped.to_der().as_bytes()).unwrap();
        }
    }

    #[test]
    fn spki_der_matches_the_pkcs8_encoder() {
        let key = SigningKey::generate().unwrap();
        let VerifyingKey::P256(inner) = key.verifying_key();
        assert_eq!(
            key.verifying_key().to_spki_der(),
            inner.to_public_key_der().unwrap().as_bytes()
        );
    }

    #[test]
    fn spki_round_trips_through_der_and_pem() {
        let public = SigningKey::generate().unwrap().verifying_key();
        assert_eq!(
            VerifyingKey::from_spki_der(&public.to_spki_der()).unwrap(),
            public
        );
        assert_eq!(VerifyingKey::from_pem(&public.to_pem()).unwrap(), public);
    }

    #[test]
    fn to_pem_uses_lf_and_64_column_lines() {
        let pem = SigningKey::generate().unwrap().verifying_key().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
        assert!(!pem.contains('\r'));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }

    #[test]
    fn fingerprint_is_lowercase_hex_sha256_and_hint_is_its_base64() {
        let public = SigningKey::generate().unwrap().verifying_key();
        let digest = Sha256::digest(public.to_spki_der());
        let fingerprint = public.fingerprint();
        assert_eq!(fingerprint.len(), 64);
        assert!(fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(fingerprint, expected);
        assert_eq!(b64::decode(&public.hint()).unwrap(), digest.as_slice());
        assert_eq!(public.hint().len(), 44);
    }
}
