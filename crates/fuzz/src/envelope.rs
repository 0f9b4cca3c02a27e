//! `envelope`: DSSE envelopes. An envelope read is written back and read again to the same
//! envelope; the streamed reader (`decode_layer_streamed`: the hollower takes the payload out, the
//! streaming base64 decoder decodes it) decides as the in-memory one (`decode_layer`) and yields
//! the same payload; the streaming base64 decoder, fed in random pieces, accepts exactly the text
//! `Envelope::from_json` accepts, with the same bytes.

use cnb_dsse::{Base64Decoder, Envelope, MAX_SIGNATURES};
use cnb_referrers::format::{decode_layer, decode_layer_streamed, StorageFormat, MAX_KEPT_STRING};

use crate::util::{pieces, ChoppyReader, Rng};

fn streamed_base64(parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut d = Base64Decoder::new();
    let mut out = Vec::new();
    for part in parts {
        let before = out.len();
        d.feed(part, &mut out).map_err(|e| e.to_string())?;
        assert!(out.len() >= before, "feed shrank the output");
    }
    d.finish(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The one-shot reading of `text` as an envelope's payload, when `text` can stand in a JSON
/// string as is.
fn one_shot_base64(text: &[u8]) -> Option<Result<Vec<u8>, String>> {
    if text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let doc =
        format!(r#"{{"payloadType":"t","payload":"{text}","signatures":[{{"sig":"AA=="}}]}}"#);
    Some(
        Envelope::from_json(doc.as_bytes())
            .map(|e| e.payload)
            .map_err(|e| e.to_string()),
    )
}

/// Compares the streamed and in-memory readings of one layer.
pub(crate) fn streamed_vs_memory(format: StorageFormat, data: &[u8]) {
    if data.len() >= MAX_KEPT_STRING {
        return;
    }
    let memory = decode_layer(format, data);
    let mut payload = Vec::new();
    let streamed =
        decode_layer_streamed(format, &mut ChoppyReader::new(data, 61, true), &mut payload);
    match (&memory, &streamed) {
        (Ok(m), Ok((s, written))) => {
            assert!(s.envelope.payload.is_empty());
            assert_eq!(
                *written,
                payload.len() as u64,
                "the length returned is not what was written"
            );
            assert_eq!(
                payload, m.envelope.payload,
                "{format:?}: streamed payload differs"
            );
            assert_eq!(s.envelope.payload_type, m.envelope.payload_type);
            assert_eq!(s.envelope.signatures, m.envelope.signatures);
            assert_eq!(s.key_hint, m.key_hint);
            assert_eq!(s.verification_material, m.verification_material);
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => {
            panic!("{format:?}: the streamed reader refuses ({e}) what the in-memory reader reads")
        }
        (Err(e), Ok(_)) => {
            panic!("{format:?}: the streamed reader reads what the in-memory reader refuses ({e})")
        }
    }
}

/// The target.
pub fn envelope(data: &[u8]) {
    let mut rng = Rng::from_data(data);
    let first = data.iter().find(|b| !b" \t\r\n".contains(b));
    if first != Some(&b'{') {
        // Base64 text: streamed in pieces against one-shot.
        let whole = streamed_base64(&[data]);
        for max in [1, 3, 5, 16] {
            let parts = pieces(data, &mut rng, max);
            // The verdict and the bytes; not the message (the base64 crate's offset in it is
            // counted from the start of the group decoded, which depends on the pieces).
            let split = streamed_base64(&parts);
            assert_eq!(
                split.is_ok(),
                whole.is_ok(),
                "pieces of at most {max}: {split:?} vs {whole:?}"
            );
            assert_eq!(split.ok(), whole.clone().ok(), "pieces of at most {max}");
        }
        if let Some(one_shot) = one_shot_base64(data) {
            assert_eq!(
                whole.is_ok(),
                one_shot.is_ok(),
                "streamed {whole:?} vs Envelope::from_json {one_shot:?}"
            );
            if let (Ok(a), Ok(b)) = (&whole, &one_shot) {
                assert_eq!(
                    a, b,
                    "streamed and one-shot base64 decode to different bytes"
                );
            }
        }
        return;
    }
    if let Ok(e) = Envelope::from_json(data) {
        assert!((1..=MAX_SIGNATURES).contains(&e.signatures.len()));
        let written = e.to_json();
        let again = Envelope::from_json(&written).unwrap_or_else(|err| {
            panic!("an envelope read does not read back once written: {err}")
        });
        assert_eq!(again, e, "write then read changed the envelope");
        let (head, tail) = Envelope::json_around_payload(&e.payload_type, &e.signatures);
        assert!(written.starts_with(&head) && written.ends_with(&tail));
    }
    streamed_vs_memory(StorageFormat::Dsse, data);
}
