//! `-omit-sbom`: rewrite an image in an OCI layout without its SBOM layer (the RFC's exporter
//! option), so the attestations become the only carrier of the SBOMs.
//!
//! The layer the label's `sbom.sha` names is dropped from the manifest, its diffID from
//! `rootfs.diff_ids`, its entry from `history`, and the `sbom` key from the
//! `io.buildpacks.lifecycle.metadata` label; everything else in the config is kept as it is (raw
//! JSON, key order preserved). The new manifest is stored and the tag that named the old one moves
//! to it; the old manifest's blobs stay, as layouts keep unreferenced blobs until collected.

use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::manifest::{Descriptor, ImageManifest, OCI_IMAGE_CONFIG, REF_NAME};
use cnb_sbom_discovery::platform::LIFECYCLE_METADATA_LABEL;
use serde_json::Value;

use crate::Error;

/// Largest config rewritten.
const MAX_CONFIG: u64 = 8 * 1024 * 1024;

/// Rewrites `image` (tagged `tag` in `layout`) without its SBOM layer. Returns the new image, or
/// `None` when the image has no SBOM layer (nothing to omit).
pub fn omit_sbom_layer(
    layout: &OciLayout,
    image: &Image,
    tag: &str,
) -> Result<Option<Image>, Error> {
    let bad = |reason: String| Error::BadImage(format!("omit-sbom: {reason}"));
    let config_bytes = layout.read_blob(&image.manifest.config.digest, MAX_CONFIG)?;
    let mut config: Value =
        serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("image config: {e}")))?;
    let label_text = config["config"]["Labels"][LIFECYCLE_METADATA_LABEL]
        .as_str()
        .ok_or_else(|| bad(format!("no {LIFECYCLE_METADATA_LABEL} label")))?
        .to_string();
    let mut label: Value =
        serde_json::from_str(&label_text).map_err(|e| bad(format!("label: {e}")))?;
    let Some(sbom) = label
        .as_object_mut()
        .and_then(|l| l.remove("sbom"))
        .and_then(|s| s["sha"].as_str().map(str::to_string))
    else {
        return Ok(None);
    };
    let position = image
        .config
        .diff_ids
        .iter()
        .position(|d| *d == sbom)
        .ok_or_else(|| {
            bad(format!(
                "the label's sbom.sha {sbom} is not a layer of the image"
            ))
        })?;
    if image.manifest.layers.len() != image.config.diff_ids.len() {
        return Err(bad(
            "the manifest and the config disagree on the number of layers".into(),
        ));
    }
    // Drop the diffID, the layer's history entry (the position-th non-empty one) and the label key.
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        ids.remove(position);
    }
    if let Some(history) = config["history"].as_array_mut() {
        let mut layer = 0;
        let found = history.iter().position(|h| {
            if h["empty_layer"].as_bool() == Some(true) {
                return false;
            }
            layer += 1;
            layer - 1 == position
        });
        if let Some(i) = found {
            history.remove(i);
        }
    }
    config["config"]["Labels"][LIFECYCLE_METADATA_LABEL] =
        Value::String(serde_json::to_string(&label).map_err(|e| bad(format!("label: {e}")))?);
    let new_config = serde_json::to_vec(&config).map_err(|e| bad(format!("config: {e}")))?;
    layout.write_blob(&new_config)?;
    let mut manifest = image.manifest.clone();
    manifest.layers.remove(position);
    manifest.config = Descriptor::for_bytes(
        if image.manifest.config.media_type.is_empty() {
            OCI_IMAGE_CONFIG
        } else {
            &image.manifest.config.media_type
        },
        &new_config,
    );
    let manifest_bytes = ImageManifest::to_json(&manifest);
    layout.write_blob(&manifest_bytes)?;
    let mut descriptor = Descriptor::for_bytes(&image.descriptor.media_type, &manifest_bytes);
    descriptor.annotations = Some([(REF_NAME.to_string(), tag.to_string())].into());
    layout.retag(tag, &descriptor)?;
    Ok(Some(layout.read_image(&descriptor)?))
}
