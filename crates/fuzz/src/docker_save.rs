//! `docker_save`: the `docker save` archive reader (its tar index, `manifest.json`, configs,
//! links between entries, layer readers and the SBOM layer in it). The input is written to a
//! temporary file (the reader takes a path). Every image listed has an ID that is a sha256
//! digest; an image selected has as many layers as diffIDs; a layer reader stays inside the file.

use std::io::{Read, Write};

use cnb_sbom_discovery::{BuildpackId, BuildpackIndex};
use cnb_sbom_restore::archive::{ArchiveLimits, DockerArchive, LayerRef};
use cnb_sbom_restore::layer::LayerLimits;
use cnb_untrusted::Digest;

fn temp_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The target.
pub fn docker_save(data: &[u8]) {
    let mut file = tempfile::Builder::new()
        .prefix("cnb-fuzz-docker-save-")
        .tempfile_in(temp_dir())
        .expect("a temporary file");
    file.write_all(data).expect("writing the temporary file");
    file.flush().expect("writing the temporary file");
    let limits = ArchiveLimits {
        max_entries: 4096,
        max_json: 1 << 20,
    };
    let Ok(archive) = DockerArchive::open(file.path(), &limits) else {
        return;
    };
    let mut index = BuildpackIndex::new();
    index.insert(BuildpackId::new("acme/node").expect("a valid ID"));
    let layer_limits = LayerLimits {
        max_compressed: 4 << 20,
        max_uncompressed: 16 << 20,
        max_file: 1 << 20,
        max_entries: 4096,
    };
    let infos = archive.images().to_vec();
    for info in &infos {
        assert!(info.id.parse::<Digest>().is_ok(), "image ID {:?}", info.id);
    }
    let mut selectors: Vec<Option<String>> = vec![None];
    for info in infos.iter().take(4) {
        selectors.push(Some(info.id.clone()));
        selectors.extend(info.repo_tags.iter().take(2).cloned().map(Some));
    }
    for selector in selectors {
        let Ok(image) = archive.select(selector.as_deref()) else {
            continue;
        };
        assert!(
            infos.iter().any(|i| i.id == image.id),
            "an image not listed"
        );
        assert_eq!(image.layers.len(), image.config.diff_ids.len());
        let _ = image.layers_mount();
        for i in 0..image.layers.len().min(8) {
            if let Ok(mut layer) = archive.layer_reader(&image, LayerRef::Index(i)) {
                assert!(layer.size <= data.len() as u64);
                let mut bytes = Vec::new();
                if layer
                    .reader
                    .by_ref()
                    .take(2 << 20)
                    .read_to_end(&mut bytes)
                    .is_ok()
                {
                    assert!(bytes.len() as u64 <= layer.size);
                }
            }
        }
        if let Some(first) = image.config.diff_ids.first() {
            let _ = archive.layer_reader(&image, LayerRef::DiffId(first));
        }
        let _ = archive.sbom_layer(&image, &index, &layer_limits);
    }
}
