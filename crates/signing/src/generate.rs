//! Signer configuration from a layers directory and an image: discovery plus the image's label.

use std::path::Path;

use cnb_attestation_config::{Digest, ImageDescription, SignerConfig};
use cnb_referrers::layout::Image;
use cnb_sbom_discovery::platform::{GroupToml, LifecycleMetadata, LIFECYCLE_METADATA_LABEL};
use cnb_sbom_discovery::{discover, BuildpackIndex, Discovery, DiscoveryOptions};

use crate::Error;

/// Where the pieces of a configuration come from.
#[derive(Debug, Clone)]
pub struct GenerateInput<'a> {
    /// The build's layers directory.
    pub layers_dir: &'a Path,
    /// `group.toml`, when there is one (its IDs join the label's to map escaped names).
    pub group: Option<&'a Path>,
    /// The `[image] reference` to write (where the signer finds the image, pinned to its digest).
    pub reference: &'a str,
    /// The name used as the image subject's name (a repository, without tag or digest).
    pub subject_name: &'a str,
    /// Discovery options (build/cache trees, size cap).
    pub discovery: DiscoveryOptions,
}

/// The `io.buildpacks.lifecycle.metadata` label of an image read from a layout.
pub fn lifecycle_label(image: &Image) -> Result<&str, Error> {
    image
        .config
        .labels
        .get(LIFECYCLE_METADATA_LABEL)
        .map(String::as_str)
        .ok_or_else(|| {
            Error::BadImage(format!(
                "image {} has no {LIFECYCLE_METADATA_LABEL} label: not a buildpacks-built image",
                image.descriptor.digest
            ))
        })
}

/// Discovers the SBOMs of a build and generates the signer configuration for the image whose
/// manifest digest is `image_digest` and whose lifecycle metadata label is `label`.
pub fn generate_config(
    input: &GenerateInput<'_>,
    image_digest: &str,
    label: &str,
) -> Result<(SignerConfig, Discovery), Error> {
    let metadata = LifecycleMetadata::from_json(label)?;
    let mut index = BuildpackIndex::from_metadata(&metadata)?;
    if let Some(group) = input.group {
        index.extend_from_group(&GroupToml::from_path(group)?);
    }
    let discovery = discover(input.layers_dir, &index, &input.discovery)?;
    let digest: Digest = image_digest
        .parse()
        .map_err(cnb_attestation_config::Error::from)?;
    let description = ImageDescription {
        reference: input.reference.to_string(),
        name: input.subject_name.to_string(),
        digest,
        metadata,
    };
    let config = cnb_attestation_config::generate(&description, &discovery.files)?;
    Ok((config, discovery))
}
