//! `-omit-sbom`: rewrite an image without its SBOM layer (the RFC's exporter option), so the
//! attestations become the only carrier of the SBOMs. In an OCI layout ([`omit_sbom_layer`]) or
//! (feature `registry`) a registry ([`omit_sbom_layer_in_registry`]); both go through the one
//! rewrite, [`without_sbom_layer`].
//!
//! The layer the label's `sbom.sha` names is dropped from the manifest, its diffID from
//! `rootfs.diff_ids`, its entry from `history`, and the `sbom` key from the
//! `io.buildpacks.lifecycle.metadata` label; everything else in the config and the manifest is
//! kept as it is (raw JSON, key order preserved). The rewrite is deterministic: the same image
//! always gives the same new digest, so a run that stopped midway can simply be run again.
//!
//! ```
//! use cnb_signing::omit::without_sbom_layer;
//! let sbom = format!("sha256:{}", "b".repeat(64));
//! let label = format!(r#"{{"app":[],"sbom":{{"sha":"{sbom}"}}}}"#);
//! let config = serde_json::json!({
//!     "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "a".repeat(64)), sbom]},
//!     "config": {"Labels": {"io.buildpacks.lifecycle.metadata": label}},
//! });
//! let layer = |c: char| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
//!     "digest": format!("sha256:{}", c.to_string().repeat(64)), "size": 10});
//! let manifest = serde_json::json!({"schemaVersion": 2,
//!     "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
//!                "digest": format!("sha256:{}", "c".repeat(64)), "size": 1},
//!     "layers": [layer('d'), layer('e')]});
//! let rewrite = without_sbom_layer(&serde_json::to_vec(&manifest)?, &serde_json::to_vec(&config)?)?
//!     .expect("the image has an SBOM layer");
//! assert_eq!(rewrite.sbom_layer.digest.as_str(), format!("sha256:{}", "e".repeat(64)));
//! assert_eq!(rewrite.label, r#"{"app":[]}"#);
//! // Once rewritten, there is nothing left to omit.
//! assert!(without_sbom_layer(&rewrite.manifest, &rewrite.config)?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::manifest::{Descriptor, ImageManifest, REF_NAME};
use cnb_sbom_discovery::platform::LIFECYCLE_METADATA_LABEL;
use cnb_untrusted::json::{check_document, MAX_DEPTH};
use cnb_untrusted::Digest;
use serde_json::Value;

use crate::Error;

/// Largest config rewritten.
pub const MAX_CONFIG: u64 = 8 * 1024 * 1024;
/// Largest manifest rewritten (the common registry limit).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// An image rewritten without its SBOM layer: the bytes to store, and what was dropped.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The new config: the old one's JSON (key order kept) without the SBOM layer's diffID, its
    /// history entry and the label's `sbom` key.
    pub config: Vec<u8>,
    /// The new manifest: the old one's JSON without the layer, naming the new config.
    pub manifest: Vec<u8>,
    /// The SBOM layer as the old manifest listed it (its stored digest and size).
    pub sbom_layer: Descriptor,
    /// Its diffID (the label's `sbom.sha`).
    pub sbom_diff_id: String,
    /// The new `io.buildpacks.lifecycle.metadata` label JSON.
    pub label: String,
}

/// The label JSON of an image config; [`Error::BadImage`] without one.
pub fn label_of(config: &[u8]) -> Result<String, Error> {
    let config = parse("image config", config)?;
    config["config"]["Labels"][LIFECYCLE_METADATA_LABEL]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad(format!("no {LIFECYCLE_METADATA_LABEL} label")))
}

fn bad(reason: String) -> Error {
    Error::BadImage(format!("omit-sbom: {reason}"))
}

/// Parses untrusted JSON after the strict checks (no duplicate keys, bounded nesting, finite
/// numbers): a key read twice would make the rewrite keep a value other readers do not see.
fn parse(what: &str, bytes: &[u8]) -> Result<Value, Error> {
    check_document(bytes, MAX_DEPTH).map_err(|e| bad(format!("{what}: {e}")))?;
    serde_json::from_slice(bytes).map_err(|e| bad(format!("{what}: {e}")))
}

/// The one rewrite behind `-omit-sbom`: `manifest` and `config` (as stored) without the SBOM
/// layer the label's `sbom.sha` names. `None` when the label has no `sbom` key (nothing to omit).
/// Refused ([`Error::BadImage`]): no label, an `sbom.sha` that is not exactly one layer of the
/// image, a manifest and config that disagree on the number of layers, or a history whose
/// non-empty entries cannot be matched to the layers one to one.
pub fn without_sbom_layer(manifest: &[u8], config: &[u8]) -> Result<Option<Rewrite>, Error> {
    // The typed reader refuses anything that is not an image manifest (an index, an ambiguous
    // document) before the raw JSON is edited.
    ImageManifest::from_json(manifest).map_err(|e| bad(e.to_string()))?;
    let mut manifest: Value = parse("image manifest", manifest)?;
    let mut config: Value = parse("image config", config)?;
    let label_text = config["config"]["Labels"][LIFECYCLE_METADATA_LABEL]
        .as_str()
        .ok_or_else(|| bad(format!("no {LIFECYCLE_METADATA_LABEL} label")))?
        .to_string();
    let mut label = parse("label", label_text.as_bytes())?;
    // `"sbom": null` is how a Go writer without `omitempty` says "no SBOM layer".
    let Some(sbom) = label
        .as_object_mut()
        .and_then(|l| l.remove("sbom"))
        .filter(|s| !s.is_null())
    else {
        return Ok(None);
    };
    let sbom = sbom["sha"]
        .as_str()
        .ok_or_else(|| bad("the label's sbom key has no sha".into()))?
        .to_string();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad("the config has no rootfs.diff_ids".into()))?;
    let matches: Vec<usize> = diff_ids
        .iter()
        .enumerate()
        .filter(|(_, d)| d.as_str() == Some(&sbom))
        .map(|(i, _)| i)
        .collect();
    let position = match matches[..] {
        [one] => one,
        [] => {
            return Err(bad(format!(
                "the label's sbom.sha {sbom} is not a layer of the image"
            )))
        }
        _ => {
            return Err(bad(format!(
                "the label's sbom.sha {sbom} is {} layers of the image; cannot tell which to drop",
                matches.len()
            )))
        }
    };
    let layer_count = diff_ids.len();
    let layers = manifest["layers"]
        .as_array_mut()
        .filter(|l| l.len() == layer_count)
        .ok_or_else(|| {
            bad("the manifest and the config disagree on the number of layers".into())
        })?;
    let sbom_layer: Descriptor = serde_json::from_value(layers.remove(position))
        .map_err(|e| bad(format!("the SBOM layer's descriptor: {e}")))?;
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        ids.remove(position);
    }
    // History: one non-empty entry per layer, in order. An image without history has nothing to
    // drop; one whose entries do not line up with the layers cannot say which is the SBOM's.
    if let Some(history) = config
        .get_mut("history")
        .and_then(Value::as_array_mut)
        .filter(|h| !h.is_empty())
    {
        let non_empty: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(_, h)| h["empty_layer"].as_bool() != Some(true))
            .map(|(i, _)| i)
            .collect();
        if non_empty.len() != layer_count {
            return Err(bad(format!(
                "the history has {} non-empty entries for {layer_count} layers; cannot tell which is the SBOM layer's",
                non_empty.len()
            )));
        }
        history.remove(non_empty[position]);
    }
    let label = serde_json::to_string(&label).map_err(|e| bad(format!("label: {e}")))?;
    config["config"]["Labels"][LIFECYCLE_METADATA_LABEL] = Value::String(label.clone());
    let config = serde_json::to_vec(&config).map_err(|e| bad(format!("config: {e}")))?;
    manifest["config"]["digest"] = Value::String(Digest::of(&config).to_string());
    manifest["config"]["size"] = Value::from(config.len() as u64);
    let manifest = serde_json::to_vec(&manifest).map_err(|e| bad(format!("manifest: {e}")))?;
    Ok(Some(Rewrite {
        config,
        manifest,
        sbom_layer,
        sbom_diff_id: sbom,
        label,
    }))
}

/// Rewrites `image` (tagged `tag` in `layout`) without its SBOM layer and moves the tag to the
/// new manifest; the old manifest's blobs stay, as layouts keep unreferenced blobs until
/// collected. Returns the new image, or `None` when the image has no SBOM layer (nothing to omit).
pub fn omit_sbom_layer(
    layout: &OciLayout,
    image: &Image,
    tag: &str,
) -> Result<Option<Image>, Error> {
    let manifest = layout.read_blob(&image.descriptor.digest, MAX_MANIFEST)?;
    let config = layout.read_blob(&image.manifest.config.digest, MAX_CONFIG)?;
    let Some(rewrite) = without_sbom_layer(&manifest, &config)? else {
        return Ok(None);
    };
    layout.write_blob(&rewrite.config)?;
    layout.write_blob(&rewrite.manifest)?;
    let mut descriptor = Descriptor::for_bytes(&image.descriptor.media_type, &rewrite.manifest);
    descriptor.annotations = Some([(REF_NAME.to_string(), tag.to_string())].into());
    layout.retag(tag, &descriptor)?;
    Ok(Some(layout.read_image(&descriptor)?))
}

/// Tags that `-omit-sbom` could not all move: the rewritten manifest is stored, these tags name
/// it, those still name the old one. Running again finishes the move (the rewrite is
/// deterministic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartlyMoved {
    /// The rewritten manifest's digest.
    pub digest: String,
    /// Tags that now name it.
    pub moved: Vec<String>,
    /// Tags that still name the old manifest, with why each did not move.
    pub not_moved: Vec<(String, String)>,
}

impl std::fmt::Display for PartlyMoved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not_moved: Vec<String> = self
            .not_moved
            .iter()
            .map(|(tag, why)| format!("{tag} ({why})"))
            .collect();
        write!(
            f,
            "omit-sbom: the rewritten image {} is pushed, but not every tag moved: moved {}; not moved (still the old image) {}",
            self.digest,
            if self.moved.is_empty() {
                "none".to_string()
            } else {
                self.moved.join(", ")
            },
            not_moved.join(", ")
        )
    }
}

/// What [`omit_sbom_layer_in_registry`] did.
#[cfg(feature = "registry")]
#[derive(Debug, Clone)]
pub enum RegistryOmit {
    /// The image has no SBOM layer: nothing was pushed, no tag moved.
    NoSbomLayer {
        /// The image's digest.
        digest: Digest,
        /// Its label JSON.
        label: String,
    },
    /// The rewritten image is pushed and every tag names it.
    Rewritten(Box<RegistryRewrite>),
}

/// A registry image rewritten without its SBOM layer.
#[cfg(feature = "registry")]
#[derive(Debug, Clone)]
pub struct RegistryRewrite {
    /// The old digest.
    pub from: Digest,
    /// The new digest.
    pub to: Digest,
    /// The new manifest's size.
    pub manifest_size: u64,
    /// The SBOM layer dropped.
    pub sbom_layer: Descriptor,
    /// Its diffID.
    pub sbom_diff_id: String,
    /// The tags moved (`<registry>/<repository>:<tag>`).
    pub tags: Vec<String>,
    /// Repositories the new config was uploaded to (it was already in the others).
    pub config_uploaded: Vec<String>,
    /// The new label JSON.
    pub label: String,
}

/// Rewrites the registry image `image` (by tag or digest) without its SBOM layer: reads its
/// manifest and config, uploads the new config to every repository of `tags` (and `image`'s)
/// that lacks it, and pushes the new manifest under each tag (by digest when `tags` is empty).
/// No layer is uploaded: the layers the new manifest names are the old image's, already there.
/// A tag that cannot be moved does not stop the others; [`Error::PartlyMoved`] then says which
/// moved and which did not.
#[cfg(feature = "registry")]
pub async fn omit_sbom_layer_in_registry(
    client: &cnb_registry::Client,
    image: &cnb_registry::ImageRef,
    tags: &[cnb_registry::ImageRef],
) -> Result<RegistryOmit, Error> {
    let repo = &image.repository;
    let fetched = client
        .get_manifest(repo, image.reference())
        .await?
        .ok_or_else(|| Error::BadImage(format!("{image}: no such image")))?;
    let typed = ImageManifest::from_json(&fetched.bytes)
        .map_err(|e| Error::BadImage(format!("{image}: {e}")))?;
    let config = client
        .get_blob(repo, &typed.config.digest, MAX_CONFIG)
        .await?;
    let Some(rewrite) = without_sbom_layer(&fetched.bytes, &config)? else {
        return Ok(RegistryOmit::NoSbomLayer {
            digest: fetched.digest,
            label: label_of(&config)?,
        });
    };
    let media_type = if fetched.media_type.is_empty() {
        typed
            .media_type
            .clone()
            .unwrap_or_else(|| cnb_referrers::manifest::OCI_MANIFEST.to_string())
    } else {
        fetched.media_type.clone()
    };
    let new_digest = Digest::of(&rewrite.manifest);
    let config_digest = Digest::of(&rewrite.config);
    // The config is the one new blob: once per repository, unless a run before put it there.
    let mut repositories = vec![repo.clone()];
    for tag in tags {
        if !repositories.contains(&tag.repository) {
            repositories.push(tag.repository.clone());
        }
    }
    let mut config_uploaded = Vec::new();
    for repository in &repositories {
        if !client.blob_exists(repository, &config_digest).await? {
            client
                .upload_blob(
                    repository,
                    &config_digest,
                    bytes::Bytes::copy_from_slice(&rewrite.config),
                )
                .await?;
            config_uploaded.push(repository.to_string());
        }
    }
    let mut moved = Vec::new();
    let mut not_moved = Vec::new();
    // Pushed by digest when no entry names a tag, so "the rewritten image is pushed" holds even
    // when every entry is a digest reference.
    if !tags.iter().any(|t| t.tag.is_some() || t.digest.is_none()) {
        client
            .put_manifest(
                repo,
                new_digest.as_str(),
                &rewrite.manifest,
                &media_type,
                None,
            )
            .await?;
    }
    for tag in tags {
        let name = tag.to_string();
        let reference = match (&tag.tag, &tag.digest) {
            (Some(t), _) => t.as_str(),
            (None, Some(_)) => {
                not_moved.push((name, "a digest reference, not a tag".to_string()));
                continue;
            }
            (None, None) => "latest",
        };
        match client
            .put_manifest(
                &tag.repository,
                reference,
                &rewrite.manifest,
                &media_type,
                None,
            )
            .await
        {
            Ok(_) => moved.push(name),
            Err(e) => not_moved.push((name, e.to_string())),
        }
    }
    if !not_moved.is_empty() {
        return Err(Error::PartlyMoved(PartlyMoved {
            digest: new_digest.to_string(),
            moved,
            not_moved,
        }));
    }
    Ok(RegistryOmit::Rewritten(Box::new(RegistryRewrite {
        from: fetched.digest,
        to: new_digest,
        manifest_size: rewrite.manifest.len() as u64,
        sbom_layer: rewrite.sbom_layer,
        sbom_diff_id: rewrite.sbom_diff_id,
        tags: moved,
        config_uploaded,
        label: rewrite.label,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// A three-layer image whose middle layer is the SBOM layer, with `history` as given.
    fn image(history: Option<Value>, sbom: Value) -> (Vec<u8>, Vec<u8>) {
        let label =
            json!({"app": [{"sha": digest('1')}], "sbom": sbom, "launcher": {"sha": digest('3')}});
        let mut config = json!({
            "created": "1980-01-01T00:00:01Z",
            "architecture": "amd64",
            "config": {"Labels": {LIFECYCLE_METADATA_LABEL: label.to_string(), "other": "kept"}},
            "rootfs": {"type": "layers", "diff_ids": [digest('1'), digest('2'), digest('3')]},
            "os": "linux",
        });
        if let Some(history) = history {
            config["history"] = history;
        }
        let layer = |c| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(c), "size": 7, "annotations": {"x": "y"}});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c'), "size": 1},
            "layers": [layer('a'), layer('b'), layer('d')],
            "annotations": {"org.opencontainers.image.created": "now"},
        });
        (
            serde_json::to_vec(&manifest).unwrap(),
            serde_json::to_vec(&config).unwrap(),
        )
    }

    #[test]
    fn the_sbom_layer_its_diff_id_and_history_entry_go_and_the_rest_stays_in_order() {
        let history = json!([
            {"created_by": "ENV", "empty_layer": true},
            {"created_by": "app"},
            {"created_by": "Software Bill-of-Materials"},
            {"created_by": "launcher"},
        ]);
        let (manifest, config) = image(Some(history), json!({"sha": digest('2')}));
        let rewrite = without_sbom_layer(&manifest, &config).unwrap().unwrap();
        let new_config: Value = serde_json::from_slice(&rewrite.config).unwrap();
        let new_manifest: Value = serde_json::from_slice(&rewrite.manifest).unwrap();
        assert_eq!(
            new_config.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "created",
                "architecture",
                "config",
                "rootfs",
                "os",
                "history"
            ]
        );
        assert_eq!(
            new_config["rootfs"]["diff_ids"],
            json!([digest('1'), digest('3')])
        );
        let created_by: Vec<&str> = new_config["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created_by"].as_str().unwrap())
            .collect();
        assert_eq!(created_by, ["ENV", "app", "launcher"]);
        assert_eq!(new_config["config"]["Labels"]["other"], "kept");
        assert_eq!(
            rewrite.label,
            json!({"app": [{"sha": digest('1')}], "launcher": {"sha": digest('3')}}).to_string()
        );
        assert_eq!(rewrite.sbom_layer.digest.as_str(), digest('b'));
        assert_eq!(rewrite.sbom_diff_id, digest('2'));
        let layers: Vec<&str> = new_manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(layers, [digest('a'), digest('d')]);
        assert_eq!(new_manifest["layers"][0]["annotations"]["x"], "y");
        assert_eq!(
            new_manifest["annotations"]["org.opencontainers.image.created"],
            "now"
        );
        assert_eq!(
            new_manifest["config"]["digest"],
            Digest::of(&rewrite.config).to_string()
        );
        assert_eq!(new_manifest["config"]["size"], rewrite.config.len());
        // Deterministic: the same image gives the same bytes.
        let again = without_sbom_layer(&manifest, &config).unwrap().unwrap();
        assert_eq!(
            (again.manifest, again.config),
            (rewrite.manifest, rewrite.config)
        );
    }

    #[test]
    fn no_sbom_key_or_a_null_one_is_nothing_to_omit() {
        let (manifest, config) = image(None, Value::Null);
        assert!(without_sbom_layer(&manifest, &config).unwrap().is_none());
    }

    #[test]
    fn what_cannot_be_rewritten_exactly_is_refused() {
        let refused = |history: Option<Value>, sbom: Value| {
            let (manifest, config) = image(history, sbom);
            without_sbom_layer(&manifest, &config)
                .unwrap_err()
                .to_string()
        };
        let err = refused(None, json!({"sha": digest('9')}));
        assert!(err.contains("is not a layer of the image"), "{err}");
        let err = refused(None, json!({}));
        assert!(err.contains("has no sha"), "{err}");
        let err = refused(
            Some(json!([{"created_by": "app"}, {"created_by": "sbom"}])),
            json!({"sha": digest('2')}),
        );
        assert!(err.contains("2 non-empty entries for 3 layers"), "{err}");
        let (manifest, config) = image(None, json!({"sha": digest('2')}));
        let twice = String::from_utf8(config)
            .unwrap()
            .replacen("\"os\"", "\"os\":\"x\",\"os\"", 1);
        let err = without_sbom_layer(&manifest, twice.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate key"), "{err}");
    }
}
