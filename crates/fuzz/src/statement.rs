//! `statement`: in-toto statements. A statement read is written back and read again to the same
//! statement; the streamed reader (the predicate taken out by the hollower and checked by the
//! chunked validator, the rest read in memory, as `cnb-sbom-restore` reads a spooled payload)
//! decides as the in-memory reader does; the streaming predicate check decides as
//! `Statement::new`'s in-memory one.

use cnb_intoto::{predicate_validator, Statement, StatementVersion, Subject};
use cnb_untrusted::hollow::{Hollower, Take};
use cnb_untrusted::json_stream::StreamErrorKind;

use crate::util::{pieces, Rng};

/// What the streamed reader keeps besides the predicate (as `cnb-sbom-restore` keeps).
const MAX_STRING: usize = 64 * 1024;
const MAX_HOLLOW: usize = 4 * 1024 * 1024;

/// The streamed reader: (statement with `{}` for a predicate, predicate bytes), or why not.
fn streamed(parts: &[&[u8]]) -> Result<(Statement, Vec<u8>), String> {
    let mut hollower = Hollower::new(&["predicate"], Take::Value, MAX_STRING, MAX_HOLLOW);
    let mut validator = predicate_validator();
    let mut predicate = Vec::new();
    for part in parts {
        hollower
            .feed(part, &mut |piece| {
                validator.feed(piece).map_err(|e| e.to_string())?;
                predicate.extend_from_slice(piece);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    let (hollow, found) = hollower.finish().map_err(|e| e.to_string())?;
    let statement = Statement::from_json(&hollow).map_err(|e| e.to_string())?;
    if found != 1 {
        return Err("missing `predicate`".into());
    }
    validator.finish().map_err(|e| format!("predicate: {e}"))?;
    Ok((statement, predicate))
}

fn is_subslice(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The target.
pub fn statement(data: &[u8]) {
    let memory = Statement::from_json(data);
    if let Ok(s) = &memory {
        assert!(!s.subjects().is_empty());
        assert!(
            is_subslice(data, s.predicate()),
            "the predicate is not bytes of the document"
        );
        let written = s.to_json();
        let again = Statement::from_json(&written)
            .unwrap_or_else(|e| panic!("a statement read does not read back once written: {e}"));
        assert_eq!(&again, s, "write then read changed the statement");
        assert_eq!(again.to_json(), written, "to_json is not deterministic");
        let (head, tail) = Statement::frame(s.version(), s.subjects(), s.predicate_type())
            .expect("the parts of a statement read are valid");
        assert_eq!([&head[..], s.predicate(), &tail[..]].concat(), written);
        let rebuilt = Statement::new(
            s.version(),
            s.subjects().to_vec(),
            s.predicate_type(),
            s.predicate().to_vec(),
        )
        .expect("Statement::new refuses the parts of a statement read");
        assert_eq!(&rebuilt, s);
    }

    let mut rng = Rng::from_data(data);
    if data.len() < MAX_STRING {
        let parts = pieces(data, &mut rng, 97);
        match (&memory, streamed(&parts)) {
            (Ok(m), Ok((hollow, predicate))) => {
                assert_eq!(hollow.version(), m.version());
                assert_eq!(hollow.subjects(), m.subjects());
                assert_eq!(hollow.predicate_type(), m.predicate_type());
                assert_eq!(predicate, m.predicate(), "streamed predicate bytes differ");
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => {
                // The one documented difference: numbers over MAX_NUMBER_LEN characters.
                assert!(
                    e.contains("out of range"),
                    "the streamed reader refuses ({e}) a statement the in-memory reader reads"
                );
            }
            (Err(e), Ok(_)) => {
                panic!("the streamed reader reads a statement the in-memory reader refuses: {e}")
            }
        }
    }

    // The predicate alone: the streaming check decides as Statement::new's in-memory one.
    let subject = Subject::sha256("fuzz", &"0".repeat(64)).expect("a valid subject");
    let whole = Statement::new(
        StatementVersion::V1,
        vec![subject],
        "https://example.com/predicate",
        data.to_vec(),
    );
    let mut v = predicate_validator();
    let mut verdict = Ok(());
    for part in pieces(data, &mut rng, 33) {
        verdict = v.feed(part);
        if verdict.is_err() {
            break;
        }
    }
    let verdict = verdict.and_then(|()| v.finish());
    match (&whole, &verdict) {
        (Ok(_), Ok(())) | (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => assert!(
            matches!(e.reason, StreamErrorKind::Number(_)),
            "predicate_validator refuses ({e}) a predicate Statement::new accepts"
        ),
        (Err(e), Ok(())) => {
            panic!("predicate_validator accepts a predicate Statement::new refuses: {e}")
        }
    }
}
