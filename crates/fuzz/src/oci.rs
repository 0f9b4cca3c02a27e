//! `oci`: image manifests, image indexes (and the Referrers API listing, which is an index read
//! strictly), image configs and the lifecycle metadata label. Every document read is written and
//! read again to the same value; no document is both a manifest and an index (CVE-2021-41190).

use cnb_referrers::platform::choose;
use cnb_referrers::{Descriptor, ImageConfig, ImageIndex, ImageManifest, StorageFormat};
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_restore::layer::{config_env, layers_mount, lifecycle_metadata, sbom_layer_position};
use cnb_untrusted::json::{check_document, MAX_DEPTH};

fn descriptors(list: &[Descriptor]) {
    for d in list {
        let _ = d.annotation("org.opencontainers.image.ref.name");
        let bare = d.bare();
        assert_eq!(bare.digest, d.digest);
        let _ = cnb_sbom_restore::inspect::foreign_from_listing(d);
        let _ = cnb_sbom_restore::simple_signing::is_simple_signing(d);
    }
}

/// The target.
pub fn oci(data: &[u8]) {
    let manifest = ImageManifest::from_json(data);
    let index = ImageIndex::from_json(data);
    assert!(
        !(manifest.is_ok() && index.is_ok()),
        "one document read both as a manifest and as an index"
    );
    if let Ok(m) = &manifest {
        let written = m.to_json();
        let again = ImageManifest::from_json(&written)
            .unwrap_or_else(|e| panic!("a manifest read does not read back once written: {e}"));
        assert_eq!(&again, m);
        assert!(ImageIndex::from_json(&written).is_err());
        let _ = StorageFormat::detect(m);
        let _ = m.effective_artifact_type();
        descriptors(&m.layers);
        descriptors(std::slice::from_ref(&m.config));
    }
    if let Ok(i) = &index {
        let written = serde_json::to_vec(i).expect("an index serialises");
        let again = ImageIndex::from_json(&written)
            .unwrap_or_else(|e| panic!("an index read does not read back once written: {e}"));
        assert_eq!(&again, i);
        assert!(ImageManifest::from_json(&written).is_err());
        descriptors(&i.manifests);
        if let Ok((chosen, others)) = choose(i, None) {
            assert!(i.manifests.contains(&chosen));
            assert!(others.iter().all(|o| i.manifests.contains(o)));
        }
        // The Referrers API listing: the index, read after the strict check.
        let _ = check_document(data, MAX_DEPTH);
    }
    if let Ok(config) = ImageConfig::from_json(data) {
        if let Ok(metadata) = lifecycle_metadata(&config) {
            let _ = sbom_layer_position(&config.diff_ids, &metadata);
            let _ = metadata.buildpack_ids();
        }
    }
    if let Ok(env) = config_env(data) {
        let mount = layers_mount(&env);
        assert!(!mount.is_empty(), "an empty layers mount");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(metadata) = LifecycleMetadata::from_json(text) {
            let _ = metadata.buildpack_ids();
            let _ = metadata.launcher_diff_id();
        }
    }
}
