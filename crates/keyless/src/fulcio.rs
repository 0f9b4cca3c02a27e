//! Fulcio v2: a short-lived code-signing certificate for an ephemeral key, issued against an
//! OIDC identity token (`POST /api/v2/signingCert`).
//!
//! The request carries a PKCS#10 certificate request (CSR) signed by the key, which is the proof
//! of possession Fulcio checks; the token goes both in the body (`credentials.oidcIdentityToken`)
//! and in an `Authorization: Bearer` header, as real Fulcio and `@sigstore/mock` each need one of
//! them. Only a certificate with an embedded SCT is accepted: a Sigstore bundle v0.3 has no place
//! for a detached one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cnb_untrusted::text::sanitize;
use der::{Decode as _, Encode as _, EncodePem as _};
use serde_json::Value;
use x509_cert::builder::{Builder as _, RequestBuilder};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::sign::{endpoint, send, server_message, SignError};
use crate::token::IdentityToken;

/// The API path of certificate requests.
pub const SIGNING_CERT_PATH: &str = "/api/v2/signingCert";

/// The most certificates accepted in the chain Fulcio returns (leaf included).
pub const MAX_CHAIN: usize = 10;

/// A certificate Fulcio issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The leaf certificate (DER), with its embedded SCT.
    pub leaf_der: Vec<u8>,
    /// The rest of the chain Fulcio returned, leaf's issuer first, root last (DER; at least one).
    pub chain_der: Vec<Vec<u8>>,
}

/// The CSR Fulcio is sent, as PEM (`CERTIFICATE REQUEST`, LF line endings): an empty subject
/// (Fulcio ignores it), a critical `BasicConstraints CA:FALSE` extension as sigstore-python sends,
/// the key's public key, signed with ECDSA P-256 / SHA-256 by `key` (the proof of possession).
pub fn certificate_request_pem(key: &p256::ecdsa::SigningKey) -> Result<String, SignError> {
    let failed = |e: &dyn std::fmt::Display| SignError::Key {
        reason: format!("building the certificate request: {e}"),
    };
    let mut builder = RequestBuilder::new(Name::default(), key).map_err(|e| failed(&e))?;
    builder
        .add_extension(&BasicConstraints {
            ca: false,
            path_len_constraint: None,
        })
        .map_err(|e| failed(&e))?;
    let request = builder
        .build::<p256::ecdsa::DerSignature>()
        .map_err(|e| failed(&e))?;
    request
        .to_pem(der::pem::LineEnding::LF)
        .map_err(|e| failed(&e))
}

/// The JSON body of the certificate request.
fn request_body(token: &IdentityToken, csr_pem: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "credentials": { "oidcIdentityToken": token.secret() },
        "certificateSigningRequest": STANDARD.encode(csr_pem),
    });
    body.to_string().into_bytes()
}

/// Asks Fulcio at `base_url` for a certificate for `key`, with `token`.
///
/// Any 2xx is success; its body (at most 1 MiB) must hold `signedCertificateEmbeddedSct` with a
/// chain of at least two PEM certificates, leaf first. A detached SCT is
/// [`SignError::DetachedSct`]; an error status is [`SignError::Fulcio`] with the server's message
/// (401 and 403 say the token was refused). Transport errors and 500/502/503/504 are retried up
/// to three times.
pub async fn request_certificate(
    client: &reqwest::Client,
    base_url: &str,
    token: &IdentityToken,
    key: &p256::ecdsa::SigningKey,
) -> Result<IssuedCertificate, SignError> {
    let url = endpoint("Fulcio", base_url, SIGNING_CERT_PATH)?;
    let csr = certificate_request_pem(key)?;
    let body = request_body(token, &csr);
    let reply = send("POST Fulcio", &url, body.len() as u64, || {
        client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(token.secret())
            .body(body.clone())
    })
    .await?;
    let shown = sanitize(&url, 200);
    if !(200..300).contains(&reply.status) {
        let hint = match reply.status {
            401 | 403 => " (the identity token was refused by Fulcio)",
            _ => "",
        };
        return Err(SignError::Fulcio {
            url: shown,
            status: reply.status,
            hint,
            message: server_message(&reply.body),
        });
    }
    parse_response(&reply.body).map_err(|e| match e {
        Parse::Detached => SignError::DetachedSct { url: shown },
        Parse::Bad(reason) => SignError::FulcioResponse { url: shown, reason },
    })
}

/// Why a Fulcio answer is unusable.
#[derive(Debug)]
enum Parse {
    Detached,
    Bad(String),
}

/// Reads a `SigningCertificate` answer.
fn parse_response(body: &[u8]) -> Result<IssuedCertificate, Parse> {
    let bad = |reason: &str| Parse::Bad(reason.to_string());
    let value: Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let embedded = match value.get("signedCertificateEmbeddedSct") {
        Some(embedded) => embedded,
        None if value.get("signedCertificateDetachedSct").is_some() => return Err(Parse::Detached),
        None => {
            return Err(bad(
                "it holds neither signedCertificateEmbeddedSct nor signedCertificateDetachedSct",
            ))
        }
    };
    let certificates = embedded
        .get("chain")
        .and_then(|c| c.get("certificates"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("signedCertificateEmbeddedSct has no chain.certificates list"))?;
    if certificates.len() < 2 || certificates.len() > MAX_CHAIN {
        return Err(Parse::Bad(format!(
            "the chain holds {} certificates (2 to {MAX_CHAIN} expected: the leaf, then its \
             issuers)",
            certificates.len()
        )));
    }
    let mut ders = Vec::with_capacity(certificates.len());
    for (i, pem_text) in certificates.iter().enumerate() {
        let pem_text = pem_text
            .as_str()
            .ok_or_else(|| Parse::Bad(format!("certificate {i} of the chain is not a string")))?;
        let block = pem::parse(pem_text)
            .map_err(|e| Parse::Bad(format!("certificate {i} of the chain is not PEM: {e}")))?;
        if block.tag() != "CERTIFICATE" {
            return Err(Parse::Bad(format!(
                "certificate {i} of the chain is a PEM `{}`, not a CERTIFICATE",
                sanitize(block.tag(), 40)
            )));
        }
        Certificate::from_der(block.contents()).map_err(|e| {
            Parse::Bad(format!(
                "certificate {i} of the chain is not an X.509 certificate: {e}"
            ))
        })?;
        ders.push(block.into_contents());
    }
    let leaf_der = ders.remove(0);
    Ok(IssuedCertificate {
        leaf_der,
        chain_der: ders,
    })
}

/// The public key of a certificate (DER), as a DSSE verifying key (P-256 only).
pub(crate) fn leaf_public_key(leaf_der: &[u8]) -> Result<cnb_dsse::VerifyingKey, String> {
    let certificate = Certificate::from_der(leaf_der)
        .map_err(|e| format!("the leaf is not an X.509 certificate: {e}"))?;
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the leaf's public key cannot be encoded: {e}"))?;
    cnb_dsse::VerifyingKey::from_spki_der(&spki)
        .map_err(|e| format!("the leaf's public key is not the P-256 key requested: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::test_server::{answer, serve};
    use crate::token::test_jwt;
    use p256::ecdsa::signature::Verifier as _;
    use std::time::Duration;
    use x509_cert::request::CertReq;

    fn key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn token() -> IdentityToken {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        IdentityToken::parse(&test_jwt(&serde_json::json!({
            "iss": "https://issuer.example", "sub": "ci@example.com", "aud": "sigstore",
            "iat": now, "exp": now + 600,
        })))
        .unwrap()
    }

    /// A self-signed certificate for `key`, as PEM (what a chain entry looks like).
    fn certificate_pem(key: &p256::ecdsa::SigningKey) -> String {
        use std::str::FromStr as _;
        use x509_cert::builder::{CertificateBuilder, Profile};
        let builder = CertificateBuilder::new(
            Profile::Root,
            x509_cert::serial_number::SerialNumber::from(11182004u32),
            x509_cert::time::Validity::from_now(Duration::from_secs(600)).unwrap(),
            Name::from_str("CN=sigstore,O=sigstore.mock").unwrap(),
            spki::SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).unwrap(),
            key,
        )
        .unwrap();
        builder
            .build::<p256::ecdsa::DerSignature>()
            .unwrap()
            .to_pem(der::pem::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn the_csr_holds_the_key_and_its_self_signature_verifies() {
        let key = key();
        let pem_text = certificate_request_pem(&key).unwrap();
        assert!(pem_text.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
        let block = pem::parse(&pem_text).unwrap();
        let request = CertReq::from_der(block.contents()).unwrap();
        // The key's SPKI, byte for byte.
        assert_eq!(
            request.info.public_key.to_der().unwrap(),
            cnb_dsse::VerifyingKey::P256(*key.verifying_key()).to_spki_der()
        );
        assert!(request.info.subject.0.is_empty(), "empty subject");
        // ecdsa-with-SHA256
        assert_eq!(request.algorithm.oid.to_string(), "1.2.840.10045.4.3.2");
        // The self-signature over the DER CertificationRequestInfo verifies with the public key.
        let signed = request.info.to_der().unwrap();
        let signature =
            p256::ecdsa::DerSignature::from_bytes(request.signature.raw_bytes()).unwrap();
        key.verifying_key().verify(&signed, &signature).unwrap();
        let mut tampered = signed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.verifying_key().verify(&tampered, &signature).is_err());
        // The extension request holds a critical BasicConstraints CA:FALSE.
        let attribute = request.info.attributes.iter().next().unwrap();
        assert_eq!(attribute.oid.to_string(), "1.2.840.113549.1.9.14");
        let extensions: x509_cert::ext::Extensions =
            attribute.values.iter().next().unwrap().decode_as().unwrap();
        assert_eq!(extensions.len(), 1);
        assert_eq!(extensions[0].extn_id.to_string(), "2.5.29.19");
        assert!(extensions[0].critical);
        let constraints = BasicConstraints::from_der(extensions[0].extn_value.as_bytes()).unwrap();
        assert!(!constraints.ca);
    }

    #[tokio::test]
    async fn a_certificate_is_requested_with_the_token_and_the_csr_and_read_back() {
        let key = key();
        let leaf = certificate_pem(&key);
        let root = certificate_pem(&p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap());
        let body = serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [leaf, root]}}});
        let (base, seen) = serve(vec![answer("201 Created", "", &body.to_string())]).await;
        let client = crate::sign::http_client(Duration::from_secs(10)).unwrap();
        let token = token();
        let issued = request_certificate(&client, &format!("{base}/"), &token, &key)
            .await
            .unwrap();
        assert_eq!(issued.leaf_der, pem::parse(&leaf).unwrap().contents());
        assert_eq!(issued.chain_der.len(), 1);
        assert_eq!(
            leaf_public_key(&issued.leaf_der).unwrap(),
            cnb_dsse::VerifyingKey::P256(*key.verifying_key())
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].line, "POST /api/v2/signingCert HTTP/1.1");
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("Bearer {}", token.secret()).as_str())
        );
        let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(sent["credentials"]["oidcIdentityToken"], token.secret());
        let csr = STANDARD
            .decode(sent["certificateSigningRequest"].as_str().unwrap())
            .unwrap();
        assert!(csr.starts_with(b"-----BEGIN CERTIFICATE REQUEST-----\n"));
    }

    #[tokio::test]
    async fn a_certificate_for_another_key_is_refused_by_obtain() {
        // The canned leaf certifies a fixed key, never the ephemeral key `obtain` generates.
        let leaf = certificate_pem(&key());
        let root = certificate_pem(&p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap());
        let body = serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [leaf, root]}}});
        let (base, seen) = serve(vec![answer("201 Created", "", &body.to_string())]).await;
        let instances = crate::sign::Instances {
            fulcio_url: base.clone(),
            rekor_url: base,
        };
        let error = crate::sign::KeylessSigner::obtain(
            &instances,
            &token(),
            &crate::sign::KeylessOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, SignError::FulcioResponse { reason, .. } if reason.contains("another public key")),
            "{error:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_detached_sct_is_refused_as_such() {
        let body = br#"{"signedCertificateDetachedSct":{"chain":{"certificates":["a","b"]},"signedCertificateTimestamp":"e30="}}"#;
        assert!(matches!(parse_response(body), Err(Parse::Detached)));
        let error = SignError::DetachedSct {
            url: "https://fulcio.example/api/v2/signingCert".into(),
        };
        assert!(error.to_string().contains("detached SCT"));
        assert!(error.to_string().contains("bundle v0.3"));
    }

    #[test]
    fn unusable_answers_are_refused() {
        let leaf = certificate_pem(&key());
        let cases: Vec<(Value, &str)> = vec![
            (serde_json::json!({}), "neither"),
            (
                serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [leaf]}}}),
                "holds 1 certificates",
            ),
            (
                serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [leaf, 5]}}}),
                "certificate 1 of the chain is not a string",
            ),
            (
                serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [leaf, "junk"]}}}),
                "certificate 1 of the chain is not PEM",
            ),
            (
                serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates":
                    [leaf, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]}}}),
                "not an X.509 certificate",
            ),
            (
                serde_json::json!({"signedCertificateEmbeddedSct": {"chain": {"certificates":
                    [leaf, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}}}),
                "not a CERTIFICATE",
            ),
        ];
        for (body, expected) in cases {
            match parse_response(body.to_string().as_bytes()) {
                Err(Parse::Bad(reason)) => assert!(reason.contains(expected), "{reason}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(parse_response(b"<html>"), Err(Parse::Bad(_))));
    }

    #[tokio::test]
    async fn a_401_says_the_token_was_refused_and_shows_the_sanitised_message() {
        let (base, _seen) = serve(vec![answer(
            "401 Unauthorized",
            "",
            r#"{"code":16,"message":"There was an error processing the identity token\u001b[31m"}"#,
        )])
        .await;
        let client = crate::sign::http_client(Duration::from_secs(10)).unwrap();
        let token = token();
        let error = request_certificate(&client, &base, &token, &key())
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SignError::Fulcio { status: 401, .. }),
            "{error:?}"
        );
        assert!(
            message.contains("the identity token was refused by Fulcio"),
            "{message}"
        );
        assert!(
            message.contains("error processing the identity token\\u{1b}[31m"),
            "{message}"
        );
        assert!(!message.contains(token.secret()));
    }
}
