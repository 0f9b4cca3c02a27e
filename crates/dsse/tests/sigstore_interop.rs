//! Cross-checks against an independent implementation: the `sigstore` crate (sigstore-rs 0.14,
//! no features), which reads and writes cosign key files and signs ECDSA P-256 ASN.1.

use cnb_dsse::keyfile::{COSIGN_PRIVATE_KEY_LABEL, SIGSTORE_PRIVATE_KEY_LABEL};
use cnb_dsse::{
    generate_key_pair, pae, read_private_key, Envelope, PasswordSource, Signature, Signer,
    SigningKey, VerifyingKey, IN_TOTO_PAYLOAD_TYPE,
};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{CosignVerificationKey, SigningScheme};
use zeroize::Zeroizing;

const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

fn value(password: &str) -> PasswordSource {
    PasswordSource::Value(Zeroizing::new(password.to_owned()))
}

#[test]
fn sigstore_decrypts_keys_we_encrypt_and_sees_the_same_public_key() {
    let key = SigningKey::generate().unwrap();
    let pem = key.to_encrypted_pem(b"interop").unwrap();
    let theirs = SigStoreKeyPair::from_encrypted_pem(pem.as_bytes(), b"interop").unwrap();
    assert_eq!(
        theirs.public_key_to_der().unwrap(),
        key.public_key().to_spki_der()
    );
    assert!(SigStoreKeyPair::from_encrypted_pem(pem.as_bytes(), b"wrong").is_err());
}

#[test]
fn sigstore_decrypts_generate_key_pair_output_and_its_pae_signature_verifies_with_our_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate_key_pair(dir.path(), b"").unwrap();
    let private = std::fs::read(&files.private_key).unwrap();
    let theirs = SigStoreKeyPair::from_encrypted_pem(&private, b"").unwrap();
    let ours = cnb_dsse::read_public_key(&files.public_key).unwrap();
    assert_eq!(theirs.public_key_to_der().unwrap(), ours.to_spki_der());
    assert_eq!(
        VerifyingKey::from_pem(&theirs.public_key_to_pem().unwrap()).unwrap(),
        ours
    );

    // sigstore signs a DSSE PAE; our verifier accepts it, in an envelope too.
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec();
    let message = pae(IN_TOTO_PAYLOAD_TYPE, &payload);
    let signer = theirs.to_sigstore_signer(&SCHEME).unwrap();
    let sig = signer.sign(&message).unwrap();
    ours.verify(&message, &sig).unwrap();
    let envelope = Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        payload,
        signatures: vec![Signature {
            keyid: String::new(),
            sig,
        }],
    };
    Envelope::from_json(&envelope.to_json())
        .unwrap()
        .verify(&ours)
        .unwrap();
}

#[test]
fn sigstore_verifies_our_pae_signatures() {
    let key = SigningKey::generate().unwrap();
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}".to_vec(), &key).unwrap();
    let theirs =
        CosignVerificationKey::from_pem(key.public_key().to_pem().as_bytes(), &SCHEME).unwrap();
    theirs
        .verify_signature(
            sigstore::crypto::Signature::Raw(&envelope.signatures[0].sig),
            &pae(&envelope.payload_type, &envelope.payload),
        )
        .unwrap();
    assert!(theirs
        .verify_signature(
            sigstore::crypto::Signature::Raw(&envelope.signatures[0].sig),
            &envelope.payload,
        )
        .is_err());
}

fn sigstore_written_key(password: &[u8]) -> (SigStoreKeyPair, Zeroizing<String>) {
    let signer = SCHEME.create_signer().unwrap();
    let pair = signer.to_sigstore_keypair().unwrap();
    let pem = pair.private_key_to_encrypted_pem(password).unwrap();
    (pair, pem)
}

#[test]
fn we_decrypt_keys_sigstore_writes_with_the_sigstore_label() {
    let dir = tempfile::tempdir().unwrap();
    let (pair, pem) = sigstore_written_key(b"their password");
    assert!(pem.contains(SIGSTORE_PRIVATE_KEY_LABEL));
    let path = dir.path().join("sigstore.key");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let ours = read_private_key(&path, &value("their password")).unwrap();
    assert_eq!(
        ours.public_key().to_spki_der(),
        pair.public_key_to_der().unwrap()
    );

    // And what we sign with it, sigstore verifies.
    let sig = ours.sign(b"message").unwrap();
    pair.to_verification_key(&SCHEME)
        .unwrap()
        .verify_signature(sigstore::crypto::Signature::Raw(&sig), b"message")
        .unwrap();
}

#[test]
fn we_decrypt_keys_sigstore_writes_with_the_cosign_1_label() {
    let dir = tempfile::tempdir().unwrap();
    let (pair, pem) = sigstore_written_key(b"");
    let relabelled = pem.replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
    assert!(relabelled.contains(COSIGN_PRIVATE_KEY_LABEL));
    let path = dir.path().join("cosign1.key");
    std::fs::write(&path, relabelled.as_bytes()).unwrap();
    let ours = read_private_key(&path, &value("")).unwrap();
    assert_eq!(
        ours.public_key().to_spki_der(),
        pair.public_key_to_der().unwrap()
    );
    let err = read_private_key(&path, &value("not empty")).unwrap_err();
    assert!(
        matches!(err, cnb_dsse::Error::WrongPassword { .. }),
        "{err}"
    );
}

#[test]
fn unencrypted_pkcs8_pem_from_sigstore_is_read() {
    let (pair, _) = sigstore_written_key(b"");
    let pem = pair.private_key_to_pem().unwrap();
    let ours = SigningKey::from_pem(pem.as_bytes(), &value("")).unwrap();
    assert_eq!(
        ours.public_key().to_spki_der(),
        pair.public_key_to_der().unwrap()
    );
}

/// A key written by the Go cosign CLI (empty password, N=65536); see `tests/data/README.md`.
const COSIGN_GENERATED_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cosign_generated_encrypted_empty_private.key"
);

#[test]
fn we_decrypt_a_key_written_by_the_cosign_cli_like_sigstore_does() {
    let path = std::path::Path::new(COSIGN_GENERATED_KEY);
    let ours = read_private_key(path, &value("")).unwrap();
    let theirs = SigStoreKeyPair::from_encrypted_pem(&std::fs::read(path).unwrap(), b"").unwrap();
    assert_eq!(
        ours.public_key().to_spki_der(),
        theirs.public_key_to_der().unwrap()
    );
    let err = read_private_key(path, &value("x")).unwrap_err();
    assert!(
        matches!(err, cnb_dsse::Error::WrongPassword { .. }),
        "{err}"
    );
}

#[test]
fn our_encrypted_json_has_the_same_shape_as_cosigns() {
    let shape = |pem_text: &[u8]| {
        let block = pem::parse(pem_text).unwrap();
        let json = String::from_utf8(block.contents().to_vec()).unwrap();
        // Replace every base64 value by a placeholder, keep keys, order and numbers.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut masked = json.clone();
        for b64 in [
            &value["kdf"]["salt"],
            &value["cipher"]["nonce"],
            &value["ciphertext"],
        ] {
            masked = masked.replace(b64.as_str().unwrap(), "B64");
        }
        (block.tag().to_owned(), masked)
    };
    let cosign = shape(&std::fs::read(COSIGN_GENERATED_KEY).unwrap());
    let key = SigningKey::generate().unwrap();
    let ours = shape(key.to_encrypted_pem(b"").unwrap().as_bytes());
    assert_eq!(ours, cosign);
}
