//! DSSE PAE, envelope JSON and sign/verify behaviour.

use cnb_dsse::{pae, Envelope, Error, Signature, Signer, SigningKey, IN_TOTO_PAYLOAD_TYPE};

fn key() -> SigningKey {
    SigningKey::generate().expect("OS RNG")
}

fn signed(key: &SigningKey) -> Envelope {
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, br#"{"a":1}"#.to_vec(), key).unwrap()
}

#[test]
fn pae_matches_the_dsse_spec_example() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}

#[test]
fn sign_then_verify_round_trips_through_json() {
    let key = key();
    let envelope = signed(&key);
    assert_eq!(envelope.signatures.len(), 1);
    assert_eq!(envelope.signatures[0].keyid, "");
    envelope.verify(&key.public_key()).unwrap();
    let read = Envelope::from_json(&envelope.to_json()).unwrap();
    assert_eq!(read, envelope);
    read.verify(&key.public_key()).unwrap();
}

#[test]
fn signature_is_over_pae_and_verifies_with_the_public_key() {
    let key = key();
    let envelope = signed(&key);
    key.public_key()
        .verify(
            &pae(&envelope.payload_type, &envelope.payload),
            &envelope.signatures[0].sig,
        )
        .unwrap();
    assert!(key
        .public_key()
        .verify(&envelope.payload, &envelope.signatures[0].sig)
        .is_err());
}

#[test]
fn tampered_payload_fails_verification() {
    let key = key();
    let mut envelope = signed(&key);
    envelope.payload = br#"{"a":2}"#.to_vec();
    let err = envelope.verify(&key.public_key()).unwrap_err();
    assert!(matches!(err, Error::NoValidSignature { .. }), "{err}");
}

#[test]
fn tampered_payload_type_fails_verification() {
    let key = key();
    let mut envelope = signed(&key);
    envelope.payload_type = "application/json".into();
    assert!(envelope.verify(&key.public_key()).is_err());
}

#[test]
fn tampered_signature_fails_verification() {
    let key = key();
    let mut envelope = signed(&key);
    let last = envelope.signatures[0].sig.len() - 1;
    envelope.signatures[0].sig[last] ^= 0x01;
    assert!(envelope.verify(&key.public_key()).is_err());
    envelope.signatures[0].sig = b"not DER".to_vec();
    assert!(envelope.verify(&key.public_key()).is_err());
}

#[test]
fn other_key_fails_and_error_names_its_fingerprint_not_the_payload() {
    let envelope = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        b"secret-payload-marker".to_vec(),
        &key(),
    )
    .unwrap();
    let other = key().public_key();
    let message = envelope.verify(&other).unwrap_err().to_string();
    assert!(message.contains(&other.fingerprint()), "{message}");
    assert!(!message.contains("secret-payload-marker"), "{message}");
}

#[test]
fn verify_succeeds_if_any_signature_matches() {
    let (a, b) = (key(), key());
    let mut envelope = signed(&a);
    let extra = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, envelope.payload.clone(), &b).unwrap();
    envelope.signatures.insert(0, extra.signatures[0].clone());
    envelope.verify(&a.public_key()).unwrap();
    envelope.verify(&b.public_key()).unwrap();
    assert!(envelope.verify(&key().public_key()).is_err());
}

#[test]
fn signatures_are_deterministic() {
    let key = key();
    let first = signed(&key);
    let second = signed(&key);
    assert_eq!(first, second);
    assert_eq!(first.to_json(), second.to_json());
    assert_eq!(key.sign(b"m").unwrap(), key.sign(b"m").unwrap());
    assert_ne!(key.sign(b"m").unwrap(), key.sign(b"n").unwrap());
}

#[test]
fn signatures_are_asn1_der() {
    let sig = key().sign(b"message").unwrap();
    assert_eq!(sig[0], 0x30, "DER SEQUENCE");
    assert_eq!(usize::from(sig[1]) + 2, sig.len());
}

#[test]
fn keyid_comes_from_the_signer() {
    let key = key().with_keyid("my-key");
    assert_eq!(signed(&key).signatures[0].keyid, "my-key");
}

#[test]
fn to_json_has_fixed_key_order_and_padded_standard_base64() {
    let envelope = Envelope {
        payload_type: "t\"x".into(),
        payload: vec![0xfb, 0xff],
        signatures: vec![
            Signature {
                keyid: String::new(),
                sig: vec![0xfb, 0xff, 0xbf],
            },
            Signature {
                keyid: "k".into(),
                sig: vec![1],
            },
        ],
    };
    assert_eq!(
        String::from_utf8(envelope.to_json()).unwrap(),
        r#"{"payloadType":"t\"x","payload":"+/8=","signatures":[{"keyid":"","sig":"+/+/"},{"keyid":"k","sig":"AQ=="}]}"#
    );
}

fn parse_err(json: &str) -> String {
    match Envelope::from_json(json.as_bytes()) {
        Ok(e) => panic!("accepted {json}: {e:?}"),
        Err(e) => {
            assert!(matches!(e, Error::InvalidEnvelope { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn from_json_rejects_duplicate_keys_at_every_level() {
    for json in [
        r#"{"payloadType":"a","payloadType":"b","payload":"","signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"","payload":"AQ==","signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"signatures":[]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ==","sig":"Ag=="}]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"keyid":"","keyid":"x","sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"x":{"y":1,"y":2}}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"x":1,"x":1}"#,
    ] {
        assert!(parse_err(json).contains("duplicate key"), "{json}");
    }
}

#[test]
fn from_json_rejects_bad_base64() {
    for json in [
        r#"{"payloadType":"a","payload":"not base64!","signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"+/-_","signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"AQ==","signatures":[{"sig":"A Q=="}]}"#,
        r#"{"payloadType":"a","payload":"AQ==","signatures":[{"sig":"AQ==\n"}]}"#,
    ] {
        assert!(parse_err(json).contains("base64"), "{json}");
    }
}

#[test]
fn from_json_accepts_url_safe_and_unpadded_base64() {
    let envelope = Envelope::from_json(
        br#"{"payloadType":"a","payload":"-_8","signatures":[{"sig":"-_-_"}]}"#,
    )
    .unwrap();
    assert_eq!(envelope.payload, vec![0xfb, 0xff]);
    assert_eq!(envelope.signatures[0].sig, vec![0xfb, 0xff, 0xbf]);
}

#[test]
fn from_json_rejects_missing_fields() {
    for (json, field) in [
        (
            r#"{"payload":"","signatures":[{"sig":"AQ=="}]}"#,
            "payloadType",
        ),
        (
            r#"{"payloadType":"a","signatures":[{"sig":"AQ=="}]}"#,
            "payload",
        ),
        (r#"{"payloadType":"a","payload":""}"#, "signatures"),
        (
            r#"{"payloadType":"a","payload":"","signatures":[{"keyid":""}]}"#,
            "signatures[0].sig",
        ),
    ] {
        let message = parse_err(json);
        assert!(message.contains(field), "{json}: {message}");
    }
}

#[test]
fn from_json_rejects_empty_signatures() {
    let message = parse_err(r#"{"payloadType":"a","payload":"","signatures":[]}"#);
    assert!(message.contains("empty"), "{message}");
    let message = parse_err(r#"{"payloadType":"a","payload":"","signatures":[{"sig":""}]}"#);
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn from_json_rejects_wrong_types_and_non_objects() {
    for json in [
        r#"["a","",[{"sig":"AQ=="}]]"#,
        r#"{"payloadType":1,"payload":"","signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":null,"signatures":[{"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"","signatures":{"sig":"AQ=="}}"#,
        r#"{"payloadType":"a","payload":"","signatures":[["k","AQ=="]]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"keyid":5,"sig":"AQ=="}]}"#,
        r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}]"#,
        "",
    ] {
        parse_err(json);
    }
}

#[test]
fn from_json_tolerates_unknown_fields_and_missing_or_null_keyid() {
    let envelope = Envelope::from_json(
        br#"{"extra":{"n":[1,2]},"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="},{"keyid":null,"sig":"Ag==","cert":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(envelope.payload_type, "a");
    assert_eq!(envelope.payload, b"");
    assert_eq!(envelope.signatures[0].keyid, "");
    assert_eq!(envelope.signatures[1].keyid, "");
    assert_eq!(envelope.signatures[1].sig, vec![2]);
}
