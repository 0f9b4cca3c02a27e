//! Key files, passwords and secret hygiene.

use std::path::Path;

use cnb_dsse::keyfile::{COSIGN_PRIVATE_KEY_LABEL, SIGSTORE_PRIVATE_KEY_LABEL};
use cnb_dsse::{
    generate_key_pair, read_private_key, read_public_key, Error, PasswordSource, Signer,
    SigningKey, VerifyingKey,
};
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery staple";

fn value(password: &str) -> PasswordSource {
    PasswordSource::Value(Zeroizing::new(password.to_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The raw private scalar, from the PKCS#8 DER (the 32 bytes after `04 20`).
fn scalar(key: &SigningKey) -> Vec<u8> {
    let der = key.to_pkcs8_der().unwrap();
    let at = der
        .windows(2)
        .position(|w| w == [0x04, 0x20])
        .expect("OCTET STRING of 32 bytes");
    der[at + 2..at + 34].to_vec()
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// One real-cost (N=65536) encrypted key shared by the tests below.
fn encrypted_key_file(dir: &Path) -> (SigningKey, std::path::PathBuf) {
    let key = SigningKey::generate().unwrap();
    let pem = key.to_encrypted_pem(PASSWORD.as_bytes()).unwrap();
    let path = write(dir, "cosign.key", pem.as_bytes());
    (key, path)
}

#[test]
fn encrypted_key_round_trips_with_real_scrypt_cost() {
    let dir = tempfile::tempdir().unwrap();
    let (key, path) = encrypted_key_file(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(text.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(!text.contains('\r'));
    let body = pem::parse(&text).unwrap();
    let json: serde_json::Value = serde_json::from_slice(body.contents()).unwrap();
    assert_eq!(json["kdf"]["params"]["N"], 65536);
    assert_eq!(json["kdf"]["params"]["r"], 8);
    assert_eq!(json["kdf"]["params"]["p"], 1);

    let read = read_private_key(&path, &value(PASSWORD)).unwrap();
    assert_eq!(read.public_key(), key.public_key());
    assert_eq!(read.sign(b"m").unwrap(), key.sign(b"m").unwrap());
}

#[test]
fn wrong_password_error_names_the_path_and_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = encrypted_key_file(dir.path());
    let wrong = "hunter2-wrong-password";
    let err = read_private_key(&path, &value(wrong)).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("wrong password or corrupted key file"));
    assert!(!message.contains(wrong), "{message}");
    assert!(!format!("{err:?}").contains(wrong));
}

#[test]
fn cosign_1_label_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let pem = key
        .to_encrypted_pem(b"")
        .unwrap()
        .replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
    let path = write(dir.path(), "old.key", pem.as_bytes());
    let read = read_private_key(&path, &value("")).unwrap();
    assert_eq!(read.public_key(), key.public_key());
}

#[test]
fn truncated_key_file_gives_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = encrypted_key_file(dir.path());
    let text = std::fs::read(&path).unwrap();
    let cut = write(dir.path(), "cut.key", &text[..text.len() / 2]);
    let err = read_private_key(&cut, &value(PASSWORD)).unwrap_err();
    assert!(matches!(err, Error::NotPem { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cut.key"), "{message}");
    assert!(message.contains("not a PEM key file"), "{message}");
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn garbled_and_empty_key_files_are_rejected_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in [
        ("empty.key", &b""[..]),
        ("text.key", b"hello\n"),
        (
            "badb64.key",
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        ),
        (
            "mismatch.key",
            b"-----BEGIN PRIVATE KEY-----\nAQ==\n-----END PUBLIC KEY-----\n",
        ),
    ] {
        let path = write(dir.path(), name, contents);
        let message = read_private_key(&path, &value("")).unwrap_err().to_string();
        assert!(message.contains(name), "{message}");
        assert!(message.contains("not a PEM key file"), "{message}");
    }
}

#[test]
fn encrypted_key_with_garbled_json_or_hostile_scrypt_params_is_rejected_before_decrypting() {
    let dir = tempfile::tempdir().unwrap();
    let pem_of = |json: &str| pem::encode(&pem::Pem::new(SIGSTORE_PRIVATE_KEY_LABEL, json));
    // An env var that does not exist: resolving the password would fail, so these errors show
    // that parsing happens before the password is needed.
    let password = PasswordSource::Env("CNB_DSSE_TEST_NEVER_SET_1".into());
    let path = write(dir.path(), "json.key", pem_of("{not json").as_bytes());
    let err = read_private_key(&path, &password).unwrap_err();
    assert!(matches!(err, Error::MalformedEncryptedKey { .. }), "{err}");

    let hostile = r#"{"kdf":{"name":"scrypt","params":{"N":1099511627776,"r":8,"p":1},"salt":"AAAA"},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    let path = write(dir.path(), "hostile.key", pem_of(hostile).as_bytes());
    let err = read_private_key(&path, &password).unwrap_err();
    assert!(
        matches!(err, Error::ScryptParamsOutOfBounds { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("hostile.key"));

    let bad_nonce = hostile
        .replace("1099511627776", "1024")
        .replace("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},", "AAAA\"},");
    let path = write(dir.path(), "nonce.key", pem_of(&bad_nonce).as_bytes());
    let err = read_private_key(&path, &password).unwrap_err();
    assert!(err.to_string().contains("nonce"), "{err}");

    let other_kdf = hostile.replace("\"scrypt\"", "\"argon2\"");
    let path = write(dir.path(), "kdf.key", pem_of(&other_kdf).as_bytes());
    let err = read_private_key(&path, &password).unwrap_err();
    assert!(err.to_string().contains("argon2"), "{err}");
}

#[test]
fn unencrypted_pkcs8_and_sec1_keys_are_read_without_a_password() {
    use p256::pkcs8::EncodePrivateKey as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let expected = VerifyingKey::P256(p256::ecdsa::VerifyingKey::from(secret.public_key()));
    let never = PasswordSource::Env("CNB_DSSE_TEST_NEVER_SET_2".into());

    let pkcs8 = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let path = write(dir.path(), "pkcs8.key", pkcs8.as_bytes());
    assert_eq!(
        read_private_key(&path, &never).unwrap().public_key(),
        expected
    );

    let sec1 = secret.to_sec1_pem(p256::pkcs8::LineEnding::CRLF).unwrap();
    let path = write(dir.path(), "sec1.key", sec1.as_bytes());
    assert_eq!(
        read_private_key(&path, &never).unwrap().public_key(),
        expected
    );
}

#[test]
fn unsupported_labels_and_key_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "rsa.key",
        b"-----BEGIN RSA PRIVATE KEY-----\nAQ==\n-----END RSA PRIVATE KEY-----\n",
    );
    let message = read_private_key(&path, &value("")).unwrap_err().to_string();
    assert!(message.contains("RSA PRIVATE KEY"), "{message}");

    // An Ed25519 PKCS#8 key (RFC 8410 example).
    let ed25519 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let path = write(dir.path(), "ed.key", ed25519.as_bytes());
    let err = read_private_key(&path, &value("")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedKeyType { .. }), "{err:?}");
    assert!(err.to_string().contains("Ed25519"), "{err}");

    // A P-384 public key (the point is not checked before the curve).
    let mut der = vec![
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04,
    ];
    der.extend_from_slice(&[0x11; 96]);
    let p384 = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
    let p384 = p384.as_str();
    let err = VerifyingKey::from_pem(p384).unwrap_err();
    assert!(err.to_string().contains("P-384"), "{err}");

    let err =
        VerifyingKey::from_pem("-----BEGIN CERTIFICATE-----\nAQ==\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert!(matches!(err, Error::UnsupportedLabel { .. }), "{err:?}");
}

#[test]
fn oversized_key_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big.key", &vec![b'A'; 64 * 1024 + 1]);
    let err = read_private_key(&path, &value("")).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    let err = read_public_key(&path).unwrap_err();
    assert!(err.to_string().contains("big.key"), "{err}");
}

#[test]
fn missing_key_file_error_names_the_path() {
    let err = read_public_key(Path::new("/nonexistent/cosign.pub")).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/cosign.pub"));
}

#[test]
fn generate_key_pair_writes_files_cosign_layout_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate_key_pair(dir.path(), b"pw").unwrap();
    assert_eq!(files.private_key, dir.path().join("cosign.key"));
    assert_eq!(files.public_key, dir.path().join("cosign.pub"));
    let key = read_private_key(&files.private_key, &value("pw")).unwrap();
    let public = read_public_key(&files.public_key).unwrap();
    assert_eq!(key.public_key(), public);
    assert_eq!(
        std::fs::read_to_string(&files.public_key).unwrap(),
        public.to_pem()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.private_key), 0o600);
        assert_eq!(mode(&files.public_key), 0o644);
    }
    // Only the two files, no temporary leftovers.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn generate_key_pair_refuses_to_overwrite_and_names_the_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cosign.pub", b"keep me");
    let err = generate_key_pair(dir.path(), b"").unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("cosign.pub"), "{err}");
    assert!(!dir.path().join("cosign.key").exists(), "nothing written");
    assert_eq!(
        std::fs::read(dir.path().join("cosign.pub")).unwrap(),
        b"keep me"
    );

    let dir = tempfile::tempdir().unwrap();
    generate_key_pair(dir.path(), b"").unwrap();
    let before = std::fs::read(dir.path().join("cosign.key")).unwrap();
    let err = generate_key_pair(dir.path(), b"").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("cosign.key") && message.contains("cosign.pub"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("cosign.key")).unwrap(),
        before
    );
}

#[test]
fn debug_output_never_contains_secrets() {
    let key = SigningKey::generate().unwrap();
    let debug = format!("{key:?}");
    assert_eq!(
        debug,
        format!("SigningKey(P-256, {})", key.public_key().fingerprint())
    );
    let scalar = scalar(&key);
    assert!(!debug.contains(&hex(&scalar)));
    assert!(!debug.to_uppercase().contains(&hex(&scalar).to_uppercase()));
    assert!(!debug.contains(&format!("{scalar:?}")));

    let source = value(PASSWORD);
    let debug = format!("{source:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(!debug.contains(&hex(PASSWORD.as_bytes())));
    assert!(format!("{:?}", PasswordSource::default_env()).contains("COSIGN_PASSWORD"));
}

#[test]
fn password_file_strips_one_trailing_newline_and_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    for (contents, expected) in [
        (&b"secret\n"[..], &b"secret"[..]),
        (b"secret\r\n", b"secret"),
        (b"secret\n\n", b"secret\n"),
        (b"secret", b"secret"),
        (b"", b""),
        (b"\n", b""),
    ] {
        let path = write(dir.path(), "pw", contents);
        let got = PasswordSource::File(path).resolve().unwrap();
        assert_eq!(got.as_slice(), expected);
    }
    let path = write(dir.path(), "big", &vec![b'x'; 4097]);
    let err = PasswordSource::File(path).resolve().unwrap_err();
    assert!(err.to_string().contains("big"), "{err}");
    assert!(!err.to_string().contains("xxxx"), "{err}");
    write(dir.path(), "max", &vec![b'x'; 4096]);
    assert_eq!(
        PasswordSource::File(dir.path().join("max"))
            .resolve()
            .unwrap()
            .len(),
        4096
    );
}

#[test]
fn password_env_var_is_read_and_a_missing_one_is_named() {
    let err = PasswordSource::Env("CNB_DSSE_TEST_NEVER_SET_3".into())
        .resolve()
        .unwrap_err();
    assert!(matches!(err, Error::PasswordEnvNotSet { .. }));
    assert!(err.to_string().contains("CNB_DSSE_TEST_NEVER_SET_3"));

    std::env::set_var("CNB_DSSE_TEST_PASSWORD_4", "from-env");
    let got = PasswordSource::Env("CNB_DSSE_TEST_PASSWORD_4".into())
        .resolve()
        .unwrap();
    assert_eq!(got.as_slice(), b"from-env");
    std::env::set_var("CNB_DSSE_TEST_PASSWORD_5", "");
    let got = PasswordSource::Env("CNB_DSSE_TEST_PASSWORD_5".into())
        .resolve()
        .unwrap();
    assert!(got.is_empty(), "empty password allowed");
}

#[test]
fn encrypted_key_reads_its_password_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, path) = encrypted_key_file(dir.path());
    let pw = write(
        dir.path(),
        "password.txt",
        format!("{PASSWORD}\n").as_bytes(),
    );
    let read = read_private_key(&path, &PasswordSource::File(pw)).unwrap();
    assert_eq!(read.public_key(), key.public_key());
}

#[test]
fn pkcs8_der_round_trips() {
    let key = SigningKey::generate().unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let back = SigningKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    let err = SigningKey::from_pkcs8_der(&der[..der.len() / 2]).unwrap_err();
    assert!(err.to_string().contains(cnb_dsse::IN_MEMORY), "{err}");
}
