//! `tar_layer`: the hand-written tar reader and the SBOM layer reader (tar, and tar in gzip).
//!
//! - The streaming reader (short reads, `Interrupted`) and the seeking reader return the same
//!   entries and bodies, and refuse the same archives.
//! - Every entry's offsets are block-aligned and in order, a body read is exactly the bytes at
//!   the entry's `data_offset`, directories and links have no body.
//! - `extract_sbom_layer` decides the same on the tar and on the same tar gzipped (the diffID is
//!   taken from the input, so the fuzzer reaches past the digest check); input starting with the
//!   gzip magic is read as a hostile gzip stream. A layer read keeps every file under its cap and
//!   maps every one to a clean path under `sbom/launch/`.

use std::io::{Cursor, Read, Write};

use cnb_sbom_discovery::{BuildpackId, BuildpackIndex};
use cnb_sbom_restore::layer::{extract_sbom_layer, LayerLimits, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP};
use cnb_sbom_restore::tar::{EntryKind, TarEntry, TarReader, BLOCK_SIZE};
use sha2::{Digest as _, Sha256};

use crate::util::{ChoppyReader, Rng};

/// What one pass over an archive gave: entries (with the body when it was read), and whether it
/// ended in an error.
type Walk = (Vec<(TarEntry, Option<Vec<u8>>)>, bool);

fn walk<R: Read>(mut tar: TarReader<R>, data: &[u8], rng: &mut Rng) -> Walk {
    let mut out = Vec::new();
    let mut end_of_last = 0u64;
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                // After the end, the reader stays at the end.
                assert!(matches!(tar.next_entry(), Ok(None)));
                return (out, false);
            }
            Err(_) => {
                assert!(
                    tar.next_entry().is_err(),
                    "the reader goes on after an error"
                );
                return (out, true);
            }
        };
        assert_eq!(entry.header_offset % BLOCK_SIZE, 0, "{entry:?}");
        assert_eq!(entry.data_offset % BLOCK_SIZE, 0, "{entry:?}");
        assert!(entry.header_offset < entry.data_offset, "{entry:?}");
        assert!(
            entry.header_offset >= end_of_last,
            "{entry:?} overlaps the entry before"
        );
        assert!(
            entry.data_offset <= data.len() as u64,
            "{entry:?} starts past the end"
        );
        if matches!(
            entry.kind,
            EntryKind::Directory | EntryKind::Symlink | EntryKind::Hardlink
        ) {
            assert_eq!(entry.size, 0, "{entry:?} has a body");
        }
        end_of_last = entry.data_offset + entry.size.div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
        let body = if rng.next_u64().is_multiple_of(2) {
            match tar.read_body(1 << 24) {
                Ok(body) => {
                    let start = entry.data_offset as usize;
                    assert_eq!(body.len() as u64, entry.size, "{entry:?}");
                    assert_eq!(
                        body,
                        data[start..start + body.len()],
                        "the body is not the bytes at data_offset"
                    );
                    Some(body)
                }
                Err(_) => {
                    out.push((entry, None));
                    return (out, true);
                }
            }
        } else {
            None
        };
        out.push((entry, body));
    }
}

fn index() -> BuildpackIndex {
    let mut index = BuildpackIndex::new();
    for id in ["acme/node", "paketo-buildpacks/node-engine", "a_b", "x"] {
        index.insert(BuildpackId::new(id).expect("a valid ID"));
    }
    index
}

fn limits() -> LayerLimits {
    LayerLimits {
        max_compressed: 4 << 20,
        max_uncompressed: 16 << 20,
        max_file: 1 << 20,
        max_entries: 4096,
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn extract(
    blob: &[u8],
    media_type: &str,
    diff_id: &str,
    mount: &str,
) -> Result<cnb_sbom_restore::layer::SbomLayer, String> {
    let limits = limits();
    let layer = extract_sbom_layer(
        ChoppyReader::new(blob, 1500, false),
        media_type,
        diff_id,
        mount,
        &index(),
        &limits,
    )
    .map_err(|e| e.to_string())?;
    for file in &layer.files {
        assert!(file.bytes.len() as u64 <= limits.max_file);
        for c in file.path.components() {
            assert!(
                !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']),
                "{c:?}"
            );
        }
    }
    let mut paths: Vec<_> = layer.files.iter().map(|f| &f.path).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        layer.files.len(),
        "one SBOM path restored twice"
    );
    Ok(layer)
}

/// At most this many bytes are decompressed to compute a hostile gzip stream's diffID.
const MAX_GUNZIP: u64 = 32 << 20;

/// The target.
pub fn tar_layer(data: &[u8]) {
    let mut rng = Rng::from_data(data);
    if data.starts_with(&[0x1f, 0x8b]) {
        // A hostile gzip stream: read as the layer reader reads it, and compared with its
        // decompressed bytes read as a plain tar.
        let mut plain = Vec::new();
        let decoded = flate2::read::MultiGzDecoder::new(data)
            .take(MAX_GUNZIP)
            .read_to_end(&mut plain);
        let diff_id = sha256(&plain);
        let gz = extract(data, OCI_LAYER_TAR_GZIP, &diff_id, "/layers");
        if decoded.is_ok() && (plain.len() as u64) < MAX_GUNZIP && data.len() < (4 << 20) {
            let tar = extract(&plain, OCI_LAYER_TAR, &diff_id, "/layers");
            assert_eq!(gz.is_ok(), tar.is_ok(), "gzip: {gz:?}\ntar: {tar:?}");
            if let (Ok(a), Ok(b)) = (gz, tar) {
                assert_eq!(a, b);
            }
        }
        return;
    }

    let streamed = walk(
        TarReader::new(ChoppyReader::new(data, 1100, true)),
        data,
        &mut rng.clone(),
    );
    let seeking = walk(
        TarReader::new_seekable(Cursor::new(data)),
        data,
        &mut rng.clone(),
    );
    assert_eq!(streamed.1, seeking.1, "one reader refuses, the other not");
    if !streamed.1 {
        assert_eq!(
            streamed.0, seeking.0,
            "the two readers return different entries"
        );
        for (entry, _) in &streamed.0 {
            assert!(
                entry.data_offset + entry.size <= data.len() as u64,
                "{entry:?} ends past the end"
            );
        }
    }

    let diff_id = sha256(data);
    let mount = if rng.next_u64().is_multiple_of(4) {
        "/"
    } else {
        "/layers"
    };
    let tar = extract(data, OCI_LAYER_TAR, &diff_id, mount);
    let mut gz = flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::new((rng.next_u64() % 10) as u32),
    );
    gz.write_all(data).expect("gzip into memory");
    let compressed = gz.finish().expect("gzip into memory");
    let gzipped = extract(&compressed, OCI_LAYER_TAR_GZIP, &diff_id, mount);
    assert_eq!(
        tar.is_ok(),
        gzipped.is_ok(),
        "tar: {tar:?}\ngzip: {gzipped:?}"
    );
    if let (Ok(a), Ok(b)) = (&tar, &gzipped) {
        assert_eq!(a, b, "the same layer gzipped reads differently");
    }
    if tar.is_ok() {
        assert!(
            !streamed.1,
            "the layer reader reads an archive the tar reader refuses"
        );
    }
    // A wrong diffID is always refused.
    let wrong = sha256(b"not this layer");
    if diff_id != wrong {
        assert!(extract(data, OCI_LAYER_TAR, &wrong, mount).is_err());
    }
}
