//! Fulcio certificates: the leaf's identity (SANs, OIDC issuer extensions), key usage and key,
//! and the chain from the leaf to a certificate authority of the trusted root at a given time.
//!
//! Signatures: ecdsa-with-SHA256 and ecdsa-with-SHA384 by P-256 or P-384 keys (the public-good
//! chain is P-384/SHA-384; `@sigstore/mock` signs with a P-256 key and SHA-384, verified here on
//! the 48-byte SHA-384 digest, which ECDSA truncates to the curve's 32 bytes as X9.62 requires).

use const_oid::ObjectIdentifier;
use der::asn1::Utf8StringRef;
use der::{Decode as _, Encode as _, Reader as _};
use ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::Digest as _;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::Certificate;

use crate::trust::{format_unix, CertificateAuthority};

/// OtherName SAN type of Fulcio's username identities (a UTF8String).
pub const OID_OTHERNAME_USERNAME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");
/// The OIDC issuer extension (V2, a DER UTF8String).
pub const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// The deprecated OIDC issuer extension (raw UTF-8 bytes).
pub const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// The most certificates in a path (leaf, carried intermediates, CA chain).
const MAX_PATH: usize = 10;

/// Which rule a certificate broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertRule {
    /// The bytes are not a certificate.
    Malformed,
    /// The bytes are a bare public key (SubjectPublicKeyInfo), not a certificate.
    BareKey,
    /// The OIDC issuer extensions disagree or are malformed.
    Issuer,
    /// No certificate authority of the trusted root issued the certificate.
    UnknownCa,
    /// A signature, algorithm or CA constraint of the chain does not hold.
    Chain,
    /// The time is outside a certificate's or CA's validity.
    Expired,
    /// The leaf lacks KeyUsage digitalSignature or EKU codeSigning.
    KeyUsage,
}

/// Why a certificate or chain is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CertError {
    /// The rule broken.
    pub rule: CertRule,
    /// What, in words (untrusted text sanitized).
    pub message: String,
}

fn err(rule: CertRule, message: impl Into<String>) -> CertError {
    CertError {
        rule,
        message: message.into(),
    }
}

fn shown(s: &str) -> String {
    cnb_untrusted::text::sanitize(s, 200)
}

/// Parses a DER certificate. A bare SubjectPublicKeyInfo gives [`CertRule::BareKey`] ("holds a
/// public key, not a certificate"), anything else that is not a certificate
/// [`CertRule::Malformed`].
pub fn parse_certificate(der: &[u8]) -> Result<Certificate, CertError> {
    match Certificate::from_der(der) {
        Ok(cert) => Ok(cert),
        Err(e) => {
            if spki::SubjectPublicKeyInfoRef::from_der(der).is_ok() {
                Err(err(
                    CertRule::BareKey,
                    "holds a public key, not a certificate (keyless verification needs a Fulcio certificate; verify a key-signed bundle with its key instead)",
                ))
            } else {
                Err(err(
                    CertRule::Malformed,
                    format!("is not a DER X.509 certificate: {e}"),
                ))
            }
        }
    }
}

/// The DER TBSCertificate of a DER certificate, exactly as signed.
fn tbs_bytes(der: &[u8]) -> Result<&[u8], CertError> {
    let mut reader = der::SliceReader::new(der)
        .map_err(|e| err(CertRule::Malformed, format!("certificate: {e}")))?;
    reader
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            r.tlv_bytes()?;
            r.tlv_bytes()?;
            Ok(tbs)
        })
        .map_err(|e| err(CertRule::Malformed, format!("certificate: {e}")))
}

fn unix(time: x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A parsed certificate with its DER.
#[derive(Debug, Clone)]
struct Parsed {
    der: Vec<u8>,
    cert: Certificate,
}

impl Parsed {
    fn new(der: &[u8]) -> Result<Self, CertError> {
        let cert = parse_certificate(der)?;
        check_unique_extensions(&cert)?;
        Ok(Parsed {
            der: der.to_vec(),
            cert,
        })
    }

    fn subject(&self) -> String {
        shown(&self.cert.tbs_certificate.subject.to_string())
    }

    fn not_before(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_before)
    }

    fn not_after(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_after)
    }

    fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    fn spki_der(&self) -> Result<Vec<u8>, CertError> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| err(CertRule::Malformed, format!("public key: {e}")))
    }

    /// Whether `issuer`'s key signed this certificate; `Err` says why not.
    fn signed_by(&self, issuer: &Parsed) -> Result<(), String> {
        let algorithm = &self.cert.signature_algorithm;
        if algorithm.oid != self.cert.tbs_certificate.signature.oid {
            return Err("its outer and inner signature algorithms differ".into());
        }
        let tbs = tbs_bytes(&self.der).map_err(|e| e.message)?;
        let digest = match algorithm.oid {
            ECDSA_WITH_SHA256 => sha2::Sha256::digest(tbs).to_vec(),
            ECDSA_WITH_SHA384 => sha2::Sha384::digest(tbs).to_vec(),
            other => {
                return Err(format!(
                    "its signature algorithm {other} is not supported (only ecdsa-with-SHA256 and ecdsa-with-SHA384)"
                ))
            }
        };
        let signature = self
            .cert
            .signature
            .as_bytes()
            .ok_or("its signature bit string has unused bits")?;
        let spki = &issuer.cert.tbs_certificate.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the issuer's key bit string has unused bits")?;
        match (spki.algorithm.oid, curve) {
            (EC_PUBLIC_KEY, Some(SECP256R1)) => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| "the issuer's key is not a P-256 point")?;
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "its signature is not a DER ECDSA P-256 signature")?;
                key.verify_prehash(&digest, &signature)
                    .map_err(|_| "the signature does not verify".to_string())
            }
            (EC_PUBLIC_KEY, Some(SECP384R1)) => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| "the issuer's key is not a P-384 point")?;
                let signature = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "its signature is not a DER ECDSA P-384 signature")?;
                key.verify_prehash(&digest, &signature)
                    .map_err(|_| "the signature does not verify".to_string())
            }
            _ => Err(format!(
                "the issuer `{}` has a key that is neither ECDSA P-256 nor P-384",
                issuer.subject()
            )),
        }
    }
}

impl Parsed {
    /// Refuses a critical extension this verifier does not process (RFC 5280 §4.2).
    fn check_critical_extensions(&self) -> Result<(), CertError> {
        const UNDERSTOOD: [ObjectIdentifier; 4] = [
            KEY_USAGE,
            SUBJECT_ALT_NAME,
            BASIC_CONSTRAINTS,
            EXT_KEY_USAGE,
        ];
        for e in self.cert.tbs_certificate.extensions.iter().flatten() {
            if e.critical && !UNDERSTOOD.contains(&e.extn_id) {
                return Err(err(
                    CertRule::Chain,
                    format!(
                        "certificate `{}` has a critical extension {} this verifier does not understand",
                        self.subject(),
                        e.extn_id
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn check_unique_extensions(cert: &Certificate) -> Result<(), CertError> {
    if let Some(extensions) = &cert.tbs_certificate.extensions {
        for (i, e) in extensions.iter().enumerate() {
            if extensions
                .iter()
                .skip(i + 1)
                .any(|o| o.extn_id == e.extn_id)
            {
                return Err(err(
                    CertRule::Malformed,
                    format!("certificate has extension {} twice", e.extn_id),
                ));
            }
        }
    }
    Ok(())
}

/// A Fulcio leaf certificate: who it names and what it allows.
#[derive(Debug, Clone)]
pub struct Leaf {
    parsed: Parsed,
    /// The subject alternative names: every rfc822Name, URI and username OtherName
    /// (`1.3.6.1.4.1.57264.1.7`) value, in certificate order.
    pub sans: Vec<String>,
    /// The OIDC issuer: extension `1.3.6.1.4.1.57264.1.8` (DER UTF8String), else `.1.1` (raw
    /// UTF-8); `None` when the certificate has neither.
    pub issuer: Option<String>,
    /// Whether KeyUsage has digitalSignature.
    pub digital_signature: bool,
    /// Whether ExtendedKeyUsage has codeSigning.
    pub code_signing: bool,
    /// Start of validity (Unix seconds, inclusive).
    pub not_before: i64,
    /// End of validity (Unix seconds, inclusive).
    pub not_after: i64,
    /// The certified key (ECDSA P-256).
    pub key: cnb_dsse::VerifyingKey,
}

impl Leaf {
    /// Parses a DER leaf certificate and reads its identity, usage and key.
    pub fn parse(der: &[u8]) -> Result<Leaf, CertError> {
        let parsed = Parsed::new(der)?;
        let mut sans = Vec::new();
        if let Some(value) = parsed.extension(SUBJECT_ALT_NAME) {
            let names = SubjectAltName::from_der(value).map_err(|e| {
                err(
                    CertRule::Malformed,
                    format!("subject alternative names: {e}"),
                )
            })?;
            for name in names.0 {
                match name {
                    GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                        sans.push(s.to_string())
                    }
                    GeneralName::OtherName(other) if other.type_id == OID_OTHERNAME_USERNAME => {
                        let name = other.value.decode_as::<Utf8StringRef<'_>>().map_err(|e| {
                            err(
                                CertRule::Malformed,
                                format!("username subject alternative name: {e}"),
                            )
                        })?;
                        sans.push(name.as_str().to_string());
                    }
                    _ => {}
                }
            }
        }
        let v2 = parsed
            .extension(OID_ISSUER_V2)
            .map(|value| {
                Utf8StringRef::from_der(value)
                    .map(|s| s.as_str().to_string())
                    .map_err(|e| {
                        err(
                            CertRule::Issuer,
                            format!("OIDC issuer extension {OID_ISSUER_V2} is not a DER UTF8String: {e}"),
                        )
                    })
            })
            .transpose()?;
        let v1 = parsed
            .extension(OID_ISSUER_V1)
            .map(|value| {
                std::str::from_utf8(value).map(str::to_string).map_err(|_| {
                    err(
                        CertRule::Issuer,
                        format!("OIDC issuer extension {OID_ISSUER_V1} is not UTF-8"),
                    )
                })
            })
            .transpose()?;
        let issuer = match (v2, v1) {
            (Some(v2), Some(v1)) if v2 != v1 => {
                return Err(err(
                    CertRule::Issuer,
                    format!(
                        "the certificate names two OIDC issuers: `{}` ({OID_ISSUER_V2}) and `{}` ({OID_ISSUER_V1})",
                        shown(&v2),
                        shown(&v1)
                    ),
                ))
            }
            (Some(v2), _) => Some(v2),
            (None, v1) => v1,
        };
        let digital_signature = match parsed.extension(KEY_USAGE) {
            Some(value) => KeyUsage::from_der(value)
                .map_err(|e| err(CertRule::Malformed, format!("key usage: {e}")))?
                .digital_signature(),
            None => false,
        };
        let code_signing = match parsed.extension(EXT_KEY_USAGE) {
            Some(value) => ExtendedKeyUsage::from_der(value)
                .map_err(|e| err(CertRule::Malformed, format!("extended key usage: {e}")))?
                .0
                .contains(&CODE_SIGNING),
            None => false,
        };
        let key = cnb_dsse::VerifyingKey::from_spki_der(&parsed.spki_der()?).map_err(|e| {
            err(
                CertRule::Malformed,
                format!("the certificate's key is not usable (only ECDSA P-256 is): {e}"),
            )
        })?;
        Ok(Leaf {
            not_before: parsed.not_before(),
            not_after: parsed.not_after(),
            parsed,
            sans,
            issuer,
            digital_signature,
            code_signing,
            key,
        })
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.parsed.der
    }

    /// The parsed certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.parsed.cert
    }

    /// The issuer's distinguished name (RFC 4514, sanitized), for messages.
    pub fn issuer_name(&self) -> String {
        shown(&self.parsed.cert.tbs_certificate.issuer.to_string())
    }
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The URI of the certificate authority the leaf chains to.
    pub ca_uri: String,
    /// The SPKI DER of the certificate that signed the leaf (what the SCT's `issuer_key_hash`
    /// is computed over).
    pub issuer_spki_der: Vec<u8>,
}

fn window(what: &str, from: i64, to: i64, t: i64) -> Result<(), CertError> {
    if from <= t && t <= to {
        Ok(())
    } else {
        Err(err(
            CertRule::Expired,
            format!(
                "{what} valid {}..{}, log integrated it at {}",
                format_unix(from),
                format_unix(to),
                format_unix(t)
            ),
        ))
    }
}

/// Verifies that `leaf` (with any `intermediates` its bundle carried, leaf's issuer first)
/// chains to one of `cas` at time `t` (Unix seconds): each certificate signed by the next
/// (ecdsa-with-SHA256/384, P-256/P-384), the last a self-signed anchor; every certificate valid at
/// `t` and the CA's `validFor` containing `t` (inclusive); CA certificates with BasicConstraints
/// CA (pathLen respected) and KeyUsage keyCertSign; the leaf with KeyUsage digitalSignature and
/// EKU codeSigning.
pub fn verify_chain(
    leaf: &Leaf,
    intermediates: &[Vec<u8>],
    cas: &[CertificateAuthority],
    t: i64,
) -> Result<VerifiedChain, CertError> {
    // Carried certificates that are already in the trusted root add nothing; the rest are
    // intermediates to place between the leaf and a CA's chain.
    let extra: Vec<&Vec<u8>> = intermediates
        .iter()
        .filter(|der| !cas.iter().any(|ca| ca.chain.contains(der)))
        .collect();
    let extra = extra
        .into_iter()
        .map(|der| Parsed::new(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            err(
                e.rule,
                format!("a certificate the bundle carried {}", e.message),
            )
        })?;

    let leaf_issuer = &leaf.parsed.cert.tbs_certificate.issuer;
    let mut candidates = Vec::new();
    let mut notes = Vec::new();
    for ca in cas {
        let chain = ca
            .chain
            .iter()
            .map(|der| Parsed::new(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                err(
                    CertRule::Chain,
                    format!("certificate authority {}: {}", shown(&ca.uri), e.message),
                )
            })?;
        // With the carried intermediates first, and (if there are any) without them, so an
        // unrelated carried certificate does not hide a direct path.
        let mut paths: Vec<Vec<Parsed>> =
            vec![extra.iter().cloned().chain(chain.clone()).collect()];
        if !extra.is_empty() {
            paths.push(chain);
        }
        for path in paths {
            let Some(issuer) = path.first() else { continue };
            if issuer.cert.tbs_certificate.subject != *leaf_issuer {
                continue;
            }
            match leaf.parsed.signed_by(issuer) {
                Ok(()) => candidates.push((ca, path)),
                Err(why) => notes.push(format!(
                    "certificate authority {} has the issuer's name but did not sign it ({why})",
                    shown(&ca.uri)
                )),
            }
        }
    }
    if candidates.is_empty() {
        let mut message = format!(
            "no certificate authority of the trusted root issued the certificate (its issuer is `{}`)",
            leaf.issuer_name()
        );
        for note in notes {
            message.push_str("; ");
            message.push_str(&note);
        }
        return Err(err(CertRule::UnknownCa, message));
    }
    let mut first_error = None;
    for (ca, path) in candidates {
        match check_path(leaf, ca, &path, t) {
            Ok(spki) => {
                return Ok(VerifiedChain {
                    ca_uri: ca.uri.clone(),
                    issuer_spki_der: spki,
                })
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| err(CertRule::UnknownCa, "no certificate authority")))
}

/// Checks a path (the CA certificates above the leaf, leaf's issuer first) once the leaf's
/// issuer is known to have signed it; returns the issuer's SPKI DER.
fn check_path(
    leaf: &Leaf,
    ca: &CertificateAuthority,
    path: &[Parsed],
    t: i64,
) -> Result<Vec<u8>, CertError> {
    if path.len() + 1 > MAX_PATH {
        return Err(err(
            CertRule::Chain,
            format!("the chain is longer than {MAX_PATH} certificates"),
        ));
    }
    let ca_name = shown(&ca.uri);
    for cert in std::iter::once(&leaf.parsed).chain(path) {
        cert.check_critical_extensions()?;
    }
    for (depth, cert) in path.iter().enumerate() {
        let subject = cert.subject();
        let constraints = cert
            .extension(BASIC_CONSTRAINTS)
            .map(BasicConstraints::from_der)
            .transpose()
            .map_err(|e| {
                err(
                    CertRule::Chain,
                    format!("CA certificate `{subject}`: basic constraints: {e}"),
                )
            })?;
        match constraints {
            Some(BasicConstraints { ca: true, path_len_constraint }) => {
                // `depth` CA certificates stand between this one and the leaf.
                if let Some(limit) = path_len_constraint {
                    if depth > usize::from(limit) {
                        return Err(err(
                            CertRule::Chain,
                            format!("CA certificate `{subject}` allows {limit} intermediate CA certificates below it, the chain has {depth}"),
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    CertRule::Chain,
                    format!("certificate `{subject}` of the chain is not a CA certificate (no BasicConstraints CA)"),
                ))
            }
        }
        let cert_sign = cert
            .extension(KEY_USAGE)
            .map(KeyUsage::from_der)
            .transpose()
            .map_err(|e| {
                err(
                    CertRule::Chain,
                    format!("CA certificate `{subject}`: key usage: {e}"),
                )
            })?
            .is_some_and(|ku| ku.key_cert_sign());
        if !cert_sign {
            return Err(err(
                CertRule::Chain,
                format!("CA certificate `{subject}` may not sign certificates (no KeyUsage keyCertSign)"),
            ));
        }
        let issuer = path.get(depth + 1).unwrap_or(cert);
        if cert.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(err(
                CertRule::Chain,
                if depth + 1 == path.len() {
                    format!("the anchor `{subject}` of certificate authority {ca_name} is not self-signed")
                } else {
                    format!(
                        "CA certificate `{subject}` is not issued by the next certificate of the chain, `{}`",
                        issuer.subject()
                    )
                },
            ));
        }
        cert.signed_by(issuer).map_err(|why| {
            err(
                CertRule::Chain,
                format!("CA certificate `{subject}` of certificate authority {ca_name}: {why}"),
            )
        })?;
    }

    window("certificate", leaf.not_before, leaf.not_after, t)?;
    for cert in path {
        window(
            &format!("CA certificate `{}`", cert.subject()),
            cert.not_before(),
            cert.not_after(),
            t,
        )?;
    }
    if !ca.valid_at(t) {
        return Err(err(
            CertRule::Expired,
            format!(
                "certificate authority {ca_name} trusted {}..{}, log integrated the certificate at {}",
                ca.valid_from.map(format_unix).unwrap_or_default(),
                ca.valid_until.map(format_unix).unwrap_or_default(),
                format_unix(t)
            ),
        ));
    }

    if !leaf.digital_signature {
        return Err(err(
            CertRule::KeyUsage,
            "the certificate does not allow digital signatures (no KeyUsage digitalSignature)",
        ));
    }
    if !leaf.code_signing {
        return Err(err(
            CertRule::KeyUsage,
            "the certificate is not for code signing (no ExtendedKeyUsage codeSigning)",
        ));
    }
    path.first()
        .ok_or_else(|| err(CertRule::UnknownCa, "empty chain"))?
        .spki_der()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    pub(crate) const BUNDLE: &[u8] =
        include_bytes!("../testdata/cosign-oci-attestation.sigstore.json");
    pub(crate) const ROOT: &[u8] = include_bytes!("../testdata/cosign-trusted_root_pgi.json");
    /// The bundle entry's integratedTime (2025-02-28T19:18:11Z).
    pub(crate) const INTEGRATED: i64 = 1_740_770_291;

    pub(crate) fn leaf_der() -> Vec<u8> {
        let bundle: serde_json::Value = serde_json::from_slice(BUNDLE).unwrap();
        STANDARD
            .decode(
                bundle["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap()
    }

    pub(crate) fn root() -> crate::trust::TrustedRoot {
        crate::trust::TrustedRoot::from_json(ROOT).unwrap()
    }

    #[test]
    fn the_real_leaf_names_its_identity_and_issuer() {
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        assert_eq!(leaf.sans, ["cody@soyland.com"]);
        assert_eq!(
            leaf.issuer.as_deref(),
            Some("https://github.com/login/oauth")
        );
        assert!(leaf.digital_signature && leaf.code_signing);
        assert_eq!(
            crate::trust::format_unix(leaf.not_before),
            "2025-02-28T19:18:11Z"
        );
        assert_eq!(
            crate::trust::format_unix(leaf.not_after),
            "2025-02-28T19:28:11Z"
        );
        assert_eq!(
            leaf.issuer_name(),
            "CN=sigstore-intermediate,O=sigstore.dev"
        );
    }

    #[test]
    fn the_real_leaf_chains_to_the_public_good_ca_at_its_integrated_time() {
        let root = root();
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let chain = verify_chain(&leaf, &[], &root.certificate_authorities, INTEGRATED).unwrap();
        assert_eq!(chain.ca_uri, "https://fulcio.sigstore.dev");
        // The issuer is the intermediate, whose chain entry is the CA's first certificate.
        let intermediate = Parsed::new(&root.certificate_authorities[1].chain[0]).unwrap();
        assert_eq!(chain.issuer_spki_der, intermediate.spki_der().unwrap());
        // Inclusive at both ends of the leaf's validity.
        verify_chain(&leaf, &[], &root.certificate_authorities, leaf.not_after).unwrap();
        verify_chain(&leaf, &[], &root.certificate_authorities, leaf.not_before).unwrap();
    }

    #[test]
    fn one_hour_later_the_leaf_has_expired() {
        let root = root();
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let e =
            verify_chain(&leaf, &[], &root.certificate_authorities, INTEGRATED + 3600).unwrap_err();
        assert_eq!(e.rule, CertRule::Expired);
        assert_eq!(
            e.message,
            "certificate valid 2025-02-28T19:18:11Z..2025-02-28T19:28:11Z, log integrated it at 2025-02-28T20:18:11Z"
        );
        let e = verify_chain(
            &leaf,
            &[],
            &root.certificate_authorities,
            leaf.not_before - 1,
        )
        .unwrap_err();
        assert_eq!(e.rule, CertRule::Expired);
    }

    #[test]
    fn carried_copies_of_the_trusted_chain_are_accepted() {
        let root = root();
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let carried = root.certificate_authorities[1].chain.clone();
        verify_chain(&leaf, &carried, &root.certificate_authorities, INTEGRATED).unwrap();
    }

    #[test]
    fn an_unrelated_carried_certificate_does_not_hide_the_direct_path() {
        let root = root();
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let unrelated = std::fs::read(format!(
            "{}/testdata/chain/root.der",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        verify_chain(
            &leaf,
            &[unrelated],
            &root.certificate_authorities,
            INTEGRATED,
        )
        .unwrap();
    }

    #[test]
    fn a_root_without_the_issuing_ca_gives_unknown_ca() {
        let mut root = root();
        root.certificate_authorities.remove(1);
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let e = verify_chain(&leaf, &[], &root.certificate_authorities, INTEGRATED).unwrap_err();
        assert_eq!(e.rule, CertRule::UnknownCa);
        assert!(
            e.message
                .contains("CN=sigstore-intermediate,O=sigstore.dev"),
            "{e}"
        );
    }

    #[test]
    fn a_ca_window_that_ended_gives_expired() {
        let mut root = root();
        root.certificate_authorities[1].valid_until = Some(INTEGRATED - 1);
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let e = verify_chain(&leaf, &[], &root.certificate_authorities, INTEGRATED).unwrap_err();
        assert_eq!(e.rule, CertRule::Expired);
        assert!(
            e.message
                .contains("certificate authority https://fulcio.sigstore.dev trusted"),
            "{e}"
        );
    }

    #[test]
    fn a_forged_leaf_signature_is_not_accepted() {
        let mut der = leaf_der();
        // The last byte belongs to the CA's signature over the leaf.
        let last = der.len() - 1;
        der[last] ^= 1;
        let leaf = Leaf::parse(&der).unwrap();
        let e = verify_chain(&leaf, &[], &root().certificate_authorities, INTEGRATED).unwrap_err();
        assert_eq!(e.rule, CertRule::UnknownCa);
        assert!(e.message.contains("did not sign it"), "{e}");
    }

    #[test]
    fn a_ca_chain_in_the_wrong_order_is_refused() {
        let mut root = root();
        root.certificate_authorities[1].chain.reverse();
        // Put the intermediate first again but with the anchor missing: not self-signed.
        let intermediate = root.certificate_authorities[1].chain[1].clone();
        root.certificate_authorities[1].chain = vec![intermediate];
        let leaf = Leaf::parse(&leaf_der()).unwrap();
        let e = verify_chain(&leaf, &[], &root.certificate_authorities, INTEGRATED).unwrap_err();
        assert_eq!(e.rule, CertRule::Chain);
        assert!(e.message.contains("is not self-signed"), "{e}");
    }

    #[test]
    fn a_bare_public_key_is_named_as_such() {
        let key = cnb_dsse::SigningKey::generate().unwrap().verifying_key();
        let e = parse_certificate(&key.to_spki_der()).unwrap_err();
        assert_eq!(e.rule, CertRule::BareKey);
        assert!(e.message.contains("holds a public key, not a certificate"));
        let e = Leaf::parse(b"\x30\x03\x02\x01\x01").unwrap_err();
        assert_eq!(e.rule, CertRule::Malformed);
        // Truncated input never panics.
        let der = leaf_der();
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(Leaf::parse(&der[..cut]).is_err());
        }
    }

    #[test]
    fn tbs_bytes_are_the_signed_span() {
        let der = leaf_der();
        let tbs = tbs_bytes(&der).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(tbs, cert.tbs_certificate.to_der().unwrap());
    }
    fn mock(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/chain/{name}.der", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    fn ca(chain: &[&str]) -> Vec<CertificateAuthority> {
        vec![CertificateAuthority {
            uri: "https://fulcio.mock".into(),
            chain: chain.iter().map(|n| mock(n)).collect(),
            valid_from: None,
            valid_until: None,
        }]
    }

    #[test]
    fn a_p256_ca_signing_with_sha384_verifies_as_the_mock_does() {
        let leaf = Leaf::parse(&mock("leaf")).unwrap();
        assert_eq!(
            leaf.sans,
            ["https://github.com/example/repo/.github/workflows/release.yml@refs/heads/main"]
        );
        assert_eq!(
            leaf.issuer.as_deref(),
            Some("https://token.actions.githubusercontent.com")
        );
        let t = leaf.not_before + 60;
        let chain = verify_chain(&leaf, &[], &ca(&["root"]), t).unwrap();
        let root = Parsed::new(&mock("root")).unwrap();
        assert_eq!(chain.issuer_spki_der, root.spki_der().unwrap());
        // A CA of another name did not issue it.
        let e = verify_chain(&leaf, &[], &ca(&["root_nosign"]), t).unwrap_err();
        assert_eq!(e.rule, CertRule::UnknownCa);
    }

    #[test]
    fn a_leaf_without_code_signing_gives_key_usage() {
        let leaf = Leaf::parse(&mock("leaf_nocodesign")).unwrap();
        assert!(leaf.digital_signature && !leaf.code_signing);
        let e = verify_chain(&leaf, &[], &ca(&["root"]), leaf.not_before + 60).unwrap_err();
        assert_eq!(e.rule, CertRule::KeyUsage);
        assert!(e.message.contains("codeSigning"), "{e}");
    }

    #[test]
    fn a_username_san_and_the_raw_issuer_extension_are_read() {
        let leaf = Leaf::parse(&mock("leaf_username")).unwrap();
        assert_eq!(leaf.sans, ["alice!example.com"]);
        assert_eq!(leaf.issuer.as_deref(), Some("https://issuer.example"));
    }

    #[test]
    fn two_different_issuer_extensions_are_refused() {
        let e = Leaf::parse(&mock("leaf_mismatch")).unwrap_err();
        assert_eq!(e.rule, CertRule::Issuer);
        assert!(e.message.contains("`https://two.example`"), "{e}");
        assert!(e.message.contains("`https://one.example`"), "{e}");
    }

    #[test]
    fn path_length_constraints_are_respected() {
        let leaf = Leaf::parse(&mock("leaf_via_inter")).unwrap();
        let t = leaf.not_before + 60;
        // The intermediate in the trusted chain, or carried by the bundle: the same violation.
        let e = verify_chain(&leaf, &[], &ca(&["inter", "root_pl0"]), t).unwrap_err();
        assert_eq!(e.rule, CertRule::Chain);
        assert!(
            e.message
                .contains("allows 0 intermediate CA certificates below it, the chain has 1"),
            "{e}"
        );
        let e = verify_chain(&leaf, &[mock("inter")], &ca(&["root_pl0"]), t).unwrap_err();
        assert_eq!(e.rule, CertRule::Chain);
        // Without the intermediate, no CA issued the leaf.
        let e = verify_chain(&leaf, &[], &ca(&["root_pl0"]), t).unwrap_err();
        assert_eq!(e.rule, CertRule::UnknownCa);
    }

    #[test]
    fn a_ca_without_key_cert_sign_is_refused() {
        let leaf = Leaf::parse(&mock("leaf_nosign")).unwrap();
        let e = verify_chain(&leaf, &[], &ca(&["root_nosign"]), leaf.not_before + 60).unwrap_err();
        assert_eq!(e.rule, CertRule::Chain);
        assert!(e.message.contains("no KeyUsage keyCertSign"), "{e}");
    }

    #[test]
    fn an_extension_given_twice_is_refused_as_malformed() {
        let mut cert = Certificate::from_der(&mock("leaf")).unwrap();
        let extensions = cert.tbs_certificate.extensions.as_mut().unwrap();
        let eku = extensions
            .iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .unwrap()
            .clone();
        extensions.push(eku);
        let e = Leaf::parse(&cert.to_der().unwrap()).unwrap_err();
        assert_eq!(e.rule, CertRule::Malformed);
        assert!(e.message.contains("extension 2.5.29.37 twice"), "{e}");
    }

    #[test]
    fn an_unknown_critical_extension_is_refused() {
        let leaf = Leaf::parse(&mock("leaf_critical")).unwrap();
        let e = verify_chain(&leaf, &[], &ca(&["root"]), leaf.not_before + 60).unwrap_err();
        assert_eq!(e.rule, CertRule::Chain);
        assert!(e.message.contains("critical extension 1.2.3.4"), "{e}");
    }
}
