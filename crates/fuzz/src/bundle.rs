//! `bundle`: Sigstore bundles (cnb-keyless). The streamed bundle reader decides as the in-memory
//! one; keyless material read from a bundle is written back (`to_verification_material_json`) and
//! read again to the same material; the certificate and inclusion-proof readers take what the
//! bundle holds (or, for input starting with a DER SEQUENCE, the input itself) without panicking.

use cnb_keyless::bundle::{KeylessMaterial, MAX_TLOG_ENTRIES};
use cnb_keyless::{cert, tlog};
use cnb_referrers::format::{decode_layer, StorageFormat};

use crate::envelope::streamed_vs_memory;

fn certificates(der: &[u8]) {
    let parsed = cert::parse_certificate(der);
    let leaf = cert::Leaf::parse(der);
    if leaf.is_ok() {
        assert!(parsed.is_ok(), "a leaf that is not a certificate");
    }
}

/// The target.
pub fn bundle(data: &[u8]) {
    if data.first() == Some(&0x30) {
        certificates(data);
        return;
    }
    streamed_vs_memory(StorageFormat::Bundle, data);
    let material = KeylessMaterial::from_bundle_json(data);
    if let Ok(stored) = decode_layer(StorageFormat::Bundle, data) {
        // One document, one reading: the material of the stored envelope is the bundle's.
        if let Some(value) = &stored.verification_material {
            let again = KeylessMaterial::from_verification_material(value);
            assert_eq!(again, material, "two readings of one bundle's material");
        }
    }
    let Ok(Some(m)) = material else { return };
    assert!(m.tlog_entries.len() <= MAX_TLOG_ENTRIES);
    let written = m.to_verification_material_json();
    let value: serde_json::Value =
        serde_json::from_str(&written).expect("to_verification_material_json writes JSON");
    let back = KeylessMaterial::from_verification_material(&value)
        .unwrap_or_else(|e| panic!("material written does not read back: {e}"))
        .expect("material written has a certificate");
    assert_eq!(back.certificate, m.certificate);
    assert!(back.chain.is_empty());
    assert_eq!(
        back.tlog_entries, m.tlog_entries,
        "write then read changed the log entries"
    );
    certificates(&m.certificate);
    for c in &m.chain {
        certificates(c);
    }
    for entry in &m.tlog_entries {
        if let Some(proof) = &entry.inclusion_proof {
            let leaf = tlog::leaf_hash(&entry.canonicalized_body);
            let _ = tlog::verify_inclusion(
                proof.log_index,
                proof.tree_size,
                &leaf,
                &proof.hashes,
                &proof.root_hash,
            );
        }
    }
}
