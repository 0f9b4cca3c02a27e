//! `signer_toml`: the signer configuration (cnb-attestation-config). A configuration read is
//! written (`to_toml`) and read again to the same configuration; an error's line and column point
//! into the text.

use std::path::Path;

use cnb_attestation_config::{Error, SignerConfig};
use cnb_referrers::format::is_reserved_annotation;

/// The target.
pub fn signer_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.toml");
    match SignerConfig::parse(text, origin) {
        Ok(config) => {
            let _ = config.image.digest();
            let _ = config.image.repository();
            for a in &config.attestations {
                assert!(!a.subjects.is_empty(), "an attestation without a subject");
                for (name, _) in &a.annotations {
                    assert!(!name.is_empty());
                    assert!(
                        !is_reserved_annotation(name),
                        "reserved annotation {name:?} accepted"
                    );
                }
            }
            let written = config.to_toml();
            let again = SignerConfig::parse(&written, origin).unwrap_or_else(|e| {
                panic!("a configuration read does not read back once written: {e}\n{written}")
            });
            assert_eq!(again, config, "write then read changed the configuration");
        }
        Err(
            Error::Syntax { line, column, .. }
            | Error::SecretField { line, column, .. }
            | Error::UnknownField { line, column, .. }
            | Error::Field { line, column, .. },
        ) => {
            let lines = text.split('\n').count();
            assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
            assert!(column >= 1, "column {column}");
        }
        Err(_) => {}
    }
}
