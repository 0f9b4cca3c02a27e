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

// --- PAE: only the exact encoding of (payloadType, payload) verifies ---

/// An envelope whose only signature is `key`'s signature over `message` (instead of the PAE).
fn signed_over(key: &SigningKey, payload_type: &str, payload: &[u8], message: &[u8]) -> Envelope {
    Envelope {
        payload_type: payload_type.into(),
        payload: payload.to_vec(),
        signatures: vec![Signature {
            keyid: String::new(),
            sig: key.sign(message).unwrap(),
        }],
    }
}

#[test]
fn signature_over_pae_with_wrong_length_prefixes_does_not_verify() {
    let key = key();
    let payload = br#"{"a":1}"#;
    let t = IN_TOTO_PAYLOAD_TYPE;
    let (tl, pl) = (t.len(), payload.len());
    let text = std::str::from_utf8(payload).unwrap();
    // The correct encoding, spelled out by hand, verifies.
    let good = format!("DSSEv1 {tl} {t} {pl} {text}");
    assert_eq!(good.as_bytes(), pae(t, payload));
    signed_over(&key, t, payload, good.as_bytes())
        .verify(&key.public_key())
        .unwrap();
    for wrong in [
        format!("DSSEv1 {} {t} {pl} {text}", tl + 1),
        format!("DSSEv1 {} {t} {pl} {text}", tl - 1),
        format!("DSSEv1 {tl} {t} {} {text}", pl + 1),
        format!("DSSEv1 {tl} {t} {} {text}", pl - 1),
        format!("DSSEv1 0{tl} {t} {pl} {text}"),
        format!("DSSEv1 {tl} {t} 0{pl} {text}"),
        format!("DSSEv1 {tl:x} {t} {pl:x} {text}"),
        format!("DSSEv1 {tl} {t} {pl} {text} "),
        format!("DSSEv1  {tl} {t} {pl} {text}"),
        format!("DSSEv1 {t} {text}"),
        format!("DSSEv0 {tl} {t} {pl} {text}"),
        // The raw payload, as a signer that skipped PAE would sign it.
        text.to_string(),
    ] {
        let err = signed_over(&key, t, payload, wrong.as_bytes())
            .verify(&key.public_key())
            .unwrap_err();
        assert!(
            matches!(err, Error::NoValidSignature { .. }),
            "{wrong}: {err}"
        );
    }
}

#[test]
fn signature_over_pae_with_another_payload_type_does_not_verify() {
    let key = key();
    let payload = br#"{"a":1}"#;
    for other in ["application/json", "application/vnd.in-toto+json ", ""] {
        let envelope = signed_over(&key, IN_TOTO_PAYLOAD_TYPE, payload, &pae(other, payload));
        assert!(envelope.verify(&key.public_key()).is_err(), "{other:?}");
    }
    // Two (type, payload) pairs whose naive "type payload" concatenations are equal: the length
    // prefixes keep their PAEs, and so their signatures, apart.
    assert_ne!(pae("x", b"y z"), pae("x y", b"z"));
    let envelope = signed_over(&key, "x y", b"z", &pae("x", b"y z"));
    assert!(envelope.verify(&key.public_key()).is_err());
}

// --- Signature lists: "one trusted key, any of its signatures", no threshold ---

#[test]
fn envelope_without_signatures_is_refused_when_read_and_never_verifies_when_built() {
    let message = parse_err(r#"{"payloadType":"a","payload":"","signatures":[]}"#);
    assert!(message.contains("\"signatures\" is empty"), "{message}");
    let key = key();
    let mut envelope = signed(&key);
    envelope.signatures.clear();
    let err = envelope.verify(&key.public_key()).unwrap_err();
    assert!(
        matches!(err, Error::NoValidSignature { count: 0, .. }),
        "{err}"
    );
}

#[test]
fn invalid_first_signature_is_skipped_and_a_valid_second_one_by_the_key_verifies() {
    let (key, other) = (key(), key());
    let valid = signed(&key).signatures[0].clone();
    let invalid_ones = [
        Signature {
            keyid: "bogus".into(),
            sig: b"not DER".to_vec(),
        },
        signed(&other).signatures[0].clone(),
        Signature {
            keyid: String::new(),
            sig: key.sign(br#"{"a":1}"#).unwrap(),
        },
    ];
    for invalid in invalid_ones {
        let mut envelope = signed(&key);
        envelope.signatures = vec![invalid.clone(), valid.clone()];
        let read = Envelope::from_json(&envelope.to_json()).unwrap();
        read.verify(&key.public_key()).unwrap();
        // Only invalid signatures left: nothing verifies.
        let mut only_invalid = read.clone();
        only_invalid.signatures = vec![invalid.clone(), invalid];
        let err = only_invalid.verify(&key.public_key()).unwrap_err();
        assert!(
            matches!(err, Error::NoValidSignature { count: 2, .. }),
            "{err}"
        );
    }
    // A key that made neither signature is refused even though one of them is valid.
    let mut envelope = signed(&key);
    envelope
        .signatures
        .insert(0, signed(&other).signatures[0].clone());
    assert!(envelope.verify(&self::key().public_key()).is_err());
}

#[test]
fn duplicated_valid_signature_counts_once_and_stands_in_for_no_other_key() {
    let (key, other) = (key(), key());
    let mut envelope = signed(&key);
    envelope.signatures = vec![envelope.signatures[0].clone(); cnb_dsse::MAX_SIGNATURES];
    let read = Envelope::from_json(&envelope.to_json()).unwrap();
    assert_eq!(read.signatures.len(), cnb_dsse::MAX_SIGNATURES);
    read.verify(&key.public_key()).unwrap();
    // No threshold exists, so copies buy nothing: another key still finds no signature of its own.
    let err = read.verify(&other.public_key()).unwrap_err();
    assert!(
        matches!(err, Error::NoValidSignature { count, .. } if count == cnb_dsse::MAX_SIGNATURES),
        "{err}"
    );
}

#[test]
fn more_signatures_than_max_signatures_are_refused_before_any_is_decoded() {
    let entries = |n: usize, sig: &str| vec![format!(r#"{{"sig":"{sig}"}}"#); n].join(",");
    let at_cap = format!(
        r#"{{"payloadType":"a","payload":"","signatures":[{}]}}"#,
        entries(cnb_dsse::MAX_SIGNATURES, "AQ==")
    );
    Envelope::from_json(at_cap.as_bytes()).unwrap();
    for sig in ["AQ==", "not base64!"] {
        let over = format!(
            r#"{{"payloadType":"a","payload":"","signatures":[{}]}}"#,
            entries(cnb_dsse::MAX_SIGNATURES + 1, sig)
        );
        let message = parse_err(&over);
        assert!(
            message.contains("\"signatures\" has 17 entries, more than the 16"),
            "{message}"
        );
    }
}

// --- Base64: the forms DSSE allows, decoded once ---

#[test]
fn from_json_rejects_extra_padding_whitespace_line_breaks_and_mixed_alphabets() {
    let long = "QUFB".repeat(30); // 120 characters, as a MIME encoder would break them
    let wrapped = format!("{}\\n{}", &long[..76], &long[76..]);
    let bad = [
        "aGk==",
        "aGk===",
        "aGk=a",
        "=aGk",
        "aG=k",
        "aGk=aGk=",
        "aGk=\\n",
        "aG\\nk=",
        "aG\\r\\nk=",
        "aGk\\t",
        " aGk=",
        "aGk= ",
        "aGk%3D",
        "-/8=",
        "+_8",
        "aGl=",
        "aGl",
        "a",
        "====",
        &wrapped,
    ];
    for text in bad {
        let payload =
            format!(r#"{{"payloadType":"a","payload":"{text}","signatures":[{{"sig":"AQ=="}}]}}"#);
        let message = parse_err(&payload);
        assert!(
            message.contains("\"payload\" is not valid base64"),
            "{text}: {message}"
        );
        let sig =
            format!(r#"{{"payloadType":"a","payload":"","signatures":[{{"sig":"{text}"}}]}}"#);
        let message = parse_err(&sig);
        assert!(
            message.contains("\"signatures[0].sig\" is not valid base64"),
            "{text}: {message}"
        );
    }
    // The same text unbroken is fine.
    Envelope::from_json(
        format!(r#"{{"payloadType":"a","payload":"{long}","signatures":[{{"sig":"AQ=="}}]}}"#)
            .as_bytes(),
    )
    .unwrap();
}

#[test]
fn from_json_accepts_standard_and_url_safe_base64_padded_and_unpadded() {
    for (payload, sig) in [
        ("+/8=", "+/+/AQ=="),
        ("+/8", "+/+/AQ"),
        ("-_8=", "-_-_AQ=="),
        ("-_8", "-_-_AQ"),
        // A JSON escape is undone before base64 is decoded.
        ("\\u002b/8=", "+\\/+\\/AQ=="),
    ] {
        let envelope = Envelope::from_json(
            format!(
                r#"{{"payloadType":"a","payload":"{payload}","signatures":[{{"sig":"{sig}"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{payload} {sig}: {e}"));
        assert_eq!(envelope.payload, vec![0xfb, 0xff], "{payload}");
        assert_eq!(
            envelope.signatures[0].sig,
            vec![0xfb, 0xff, 0xbf, 0x01],
            "{sig}"
        );
    }
}

#[test]
fn payload_is_decoded_exactly_once_and_the_verified_bytes_are_the_parsed_bytes() {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;

    let key = key();
    // Bytes whose base64 uses `+` and `/`, so the alphabets differ.
    let statement = b"{\"a\":\"\xfb\xff\xbf?>\"}".to_vec();
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.clone(), &key).unwrap();
    let sig = STANDARD.encode(&envelope.signatures[0].sig);
    let json = |payload: &str, sig: &str| {
        format!(
            r#"{{"payloadType":"{IN_TOTO_PAYLOAD_TYPE}","payload":"{payload}","signatures":[{{"sig":"{sig}"}}]}}"#
        )
    };
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        let read = Envelope::from_json(json(&engine.encode(&statement), &sig).as_bytes()).unwrap();
        read.verify(&key.public_key()).unwrap();
        assert_eq!(read.payload, statement);
    }
    // Encoded twice: one decoding leaves base64 text, which is not what was signed.
    let twice = STANDARD.encode(STANDARD.encode(&statement));
    let read = Envelope::from_json(json(&twice, &sig).as_bytes()).unwrap();
    assert_eq!(read.payload, STANDARD.encode(&statement).into_bytes());
    assert!(read.verify(&key.public_key()).is_err());
    // A signature over the base64 text instead of the decoded bytes does not verify either.
    let encoded = STANDARD.encode(&statement);
    let over_text = STANDARD.encode(
        key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, encoded.as_bytes()))
            .unwrap(),
    );
    let read = Envelope::from_json(json(&encoded, &over_text).as_bytes()).unwrap();
    assert!(read.verify(&key.public_key()).is_err());
}

// --- Field names: exact spelling only ---

#[test]
fn from_json_rejects_keys_that_go_would_match_case_insensitively_to_a_field() {
    for (json, key) in [
        (r#"{"payloadType":"a","PayloadType":"b","payload":"","signatures":[{"sig":"AQ=="}]}"#, "PayloadType"),
        (r#"{"PAYLOADTYPE":"b","payload":"","signatures":[{"sig":"AQ=="}]}"#, "PAYLOADTYPE"),
        (r#"{"payloadType":"a","payload":"","Payload":"AQ==","signatures":[{"sig":"AQ=="}]}"#, "Payload"),
        (r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"Signatures":[]}"#, "Signatures"),
        (r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ==","Sig":"Ag=="}]}"#, "Sig"),
        (r#"{"payloadType":"a","payload":"","signatures":[{"KeyID":"x","sig":"AQ=="}]}"#, "KeyID"),
        // Go also folds the Kelvin sign with `k` and `ſ` with `s`; raw and escaped.
        (r#"{"payloadType":"a","payload":"","signatures":[{"\u212Aeyid":"x","sig":"AQ=="}]}"#, "\u{212a}eyid"),
        ("{\"payloadType\":\"a\",\"payload\":\"\",\"signatures\":[{\"sig\":\"AQ==\",\"\u{17f}ig\":\"Ag==\"}]}", "\u{17f}ig"),
        (r#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"\u017fignatures":[]}"#, "\u{17f}ignatures"),
    ] {
        let message = parse_err(json);
        assert!(
            message.contains(&format!("key \"{}\"", key.escape_debug())) && message.contains("letter case"),
            "{json}: {message}"
        );
    }
}

// --- Hostile JSON: errors, never a panic or a stack overflow ---

/// Runs `f` on a new thread with the default stack size (2 MiB), so a recursive parser would
/// overflow it.
fn on_default_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic and no stack overflow");
}

#[test]
fn deep_nesting_huge_numbers_and_invalid_utf8_are_errors_not_panics() {
    on_default_stack(|| {
        const DEEP: usize = 10_000;
        let arrays = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
        let objects = format!("{}1{}", "{\"a\":".repeat(DEEP), "}".repeat(DEEP));
        let envelope = |extra: &str| {
            format!(r#"{{"payloadType":"a","payload":"","signatures":[{{"sig":"AQ=="}}]{extra}}}"#)
        };
        for json in [
            envelope(&format!(",\"x\":{arrays}")),
            envelope(&format!(",\"x\":{objects}")),
            format!(r#"{{"payloadType":"a","payload":"","signatures":{arrays}}}"#),
            format!(r#"{{"payloadType":"a","payload":"","signatures":[{{"sig":"AQ==","x":{objects}}}]}}"#),
            arrays.clone(),
            objects.clone(),
            "[".repeat(DEEP),
            envelope(",\"x\":1e400"),
            envelope(",\"x\":-1e400"),
            r#"{"payloadType":340282366920938463463374607431768211456,"payload":"","signatures":[{"sig":"AQ=="}]}"#.into(),
        ] {
            let err = Envelope::from_json(json.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::InvalidEnvelope { .. }), "{err}");
        }
        // 2^128 where no string is expected is a finite double: data, like any unknown field.
        Envelope::from_json(envelope(",\"x\":340282366920938463463374607431768211456").as_bytes())
            .unwrap();
        for bad in [&b"\xff"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"] {
            for template in [
                &br#"{"payloadType":"aXX","payload":"","signatures":[{"sig":"AQ=="}]}"#[..],
                br#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ==","XX":1}]}"#,
                br#"{"payloadType":"a","payload":"","signatures":[{"sig":"AQ=="}],"x":"XX"}"#,
            ] {
                let at = template.windows(2).position(|w| w == b"XX").unwrap();
                let mut json = template.to_vec();
                json.splice(at..at + 2, bad.iter().copied());
                let err = Envelope::from_json(&json).unwrap_err();
                assert!(matches!(err, Error::InvalidEnvelope { .. }), "{err}");
            }
        }
    });
}

/// The digest form of verification (used when the payload streams through a temporary file)
/// decides as the whole-payload form does: the right PAE digest verifies; the digest of another
/// payload, of another payload type, of the payload without PAE, or another key does not.
#[test]
fn verify_prehashed_decides_as_verify_does() {
    use sha2::{Digest, Sha256};
    let key = key();
    let envelope = signed(&key);
    let digest = |bytes: &[u8]| -> [u8; 32] { Sha256::digest(bytes).into() };
    let right = digest(&pae(&envelope.payload_type, &envelope.payload));
    envelope
        .verify_prehashed(&key.public_key(), &right)
        .unwrap();
    key.public_key()
        .verify_prehashed(&right, &envelope.signatures[0].sig)
        .unwrap();

    for wrong in [
        digest(&pae(&envelope.payload_type, br#"{"a":2}"#)),
        digest(&pae("text/plain", &envelope.payload)),
        digest(&envelope.payload),
    ] {
        let err = envelope
            .verify_prehashed(&key.public_key(), &wrong)
            .unwrap_err();
        assert!(matches!(err, Error::NoValidSignature { .. }), "{err}");
        assert!(key
            .public_key()
            .verify_prehashed(&wrong, &envelope.signatures[0].sig)
            .is_err());
    }
    let other = SigningKey::generate().unwrap().public_key();
    assert!(matches!(
        envelope.verify_prehashed(&other, &right).unwrap_err(),
        Error::NoValidSignature { .. }
    ));
}
