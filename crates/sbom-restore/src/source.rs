//! Where an image is read from: an OCI layout, a registry, or a `docker save` archive. One type so
//! that `download` and the analyzer read every storage path the same way.

use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::{Descriptor, ImageConfig};
#[cfg(feature = "registry")]
use cnb_registry::{Client, ImageRef};
use cnb_sbom_discovery::platform::{LifecycleMetadata, LIFECYCLE_METADATA_LABEL};
use cnb_sbom_discovery::{BuildpackId, BuildpackIndex};

use crate::archive::{ArchiveImage, DockerArchive};
use crate::inspect::{self, Fetched};
#[cfg(feature = "registry")]
use crate::layer::{config_env, extract_sbom_layer, layers_mount, sbom_layer_descriptor};
use crate::layer::{extract_from_layout, LayerLimits, SbomLayer};
use crate::Error;

/// An opened image and the store it is in.
pub enum ImageSource {
    /// An image in an OCI layout.
    Layout {
        /// The layout.
        layout: Box<OciLayout>,
        /// The image.
        image: Box<Image>,
    },
    /// An image in a registry.
    #[cfg(feature = "registry")]
    Registry {
        /// The client (its request counts are the run's).
        client: Box<Client>,
        /// The reference it was opened by.
        reference: ImageRef,
        /// The image.
        image: Box<Image>,
    },
    /// A saved daemon image: no referrers, only its layers.
    Archive {
        /// The archive.
        archive: Box<DockerArchive>,
        /// The image in it.
        image: Box<ArchiveImage>,
    },
}

impl ImageSource {
    /// The image config (labels, diffIDs).
    pub fn config(&self) -> &ImageConfig {
        match self {
            ImageSource::Layout { image, .. } => &image.config,
            #[cfg(feature = "registry")]
            ImageSource::Registry { image, .. } => &image.config,
            ImageSource::Archive { image, .. } => &image.config,
        }
    }

    /// The image with its manifest, for stores that have one (not a saved daemon image).
    pub fn image(&self) -> Option<&Image> {
        match self {
            ImageSource::Layout { image, .. } => Some(image),
            #[cfg(feature = "registry")]
            ImageSource::Registry { image, .. } => Some(image),
            ImageSource::Archive { .. } => None,
        }
    }

    /// The `io.buildpacks.lifecycle.metadata` label.
    pub fn metadata(&self) -> Result<LifecycleMetadata, Error> {
        let label = self
            .config()
            .labels
            .get(LIFECYCLE_METADATA_LABEL)
            .ok_or_else(|| {
                Error::BadImage(format!(
                    "no {LIFECYCLE_METADATA_LABEL} label: not a buildpacks-built image"
                ))
            })?;
        LifecycleMetadata::from_json(label).map_err(|e| Error::BadImage(e.to_string()))
    }

    /// Every referrer `select` accepts, with its attestation blob (none for a saved image).
    pub async fn fetch(
        &self,
        select: &(dyn Fn(&Descriptor) -> bool + Sync),
    ) -> Result<Vec<Fetched>, Error> {
        match self {
            ImageSource::Layout { layout, image } => {
                inspect::fetch_layout_selected(layout, image, select)
            }
            #[cfg(feature = "registry")]
            ImageSource::Registry {
                client,
                reference,
                image,
            } => {
                crate::registry::fetch_registry_selected(
                    client,
                    &reference.repository,
                    image,
                    select,
                )
                .await
            }
            ImageSource::Archive { .. } => Ok(Vec::new()),
        }
    }

    /// The files of the image's SBOM layer (the label's `sbom.sha`, checked against that diffID):
    /// the unsigned fallback.
    pub async fn sbom_layer(&self, metadata: &LifecycleMetadata) -> Result<SbomLayer, Error> {
        let mut index =
            BuildpackIndex::from_metadata(metadata).map_err(|e| Error::BadImage(e.to_string()))?;
        index.insert(BuildpackId::lifecycle());
        let limits = LayerLimits::default();
        match self {
            ImageSource::Layout { layout, image } => {
                extract_from_layout(layout, image, &index, &limits)
            }
            ImageSource::Archive { archive, image } => archive.sbom_layer(image, &index, &limits),
            #[cfg(feature = "registry")]
            ImageSource::Registry {
                client,
                reference,
                image,
            } => {
                let (descriptor, diff_id) = sbom_layer_descriptor(image, metadata)?;
                let repo = &reference.repository;
                let config = client
                    .get_blob(repo, &image.manifest.config.digest, 8 * 1024 * 1024)
                    .await?;
                // Streamed to a temporary file (bounded, digest-checked), never held in memory.
                let mut file = tempfile::tempfile().map_err(|e| Error::Io {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
                client
                    .get_blob_to(
                        repo,
                        &descriptor.digest,
                        descriptor.size.min(limits.max_compressed),
                        &mut file,
                    )
                    .await?;
                std::io::Seek::rewind(&mut file).map_err(|e| Error::Io {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
                let mount = layers_mount(&config_env(&config)?);
                extract_sbom_layer(
                    std::io::BufReader::new(file),
                    &descriptor.media_type,
                    &diff_id,
                    &mount,
                    &index,
                    &limits,
                )
            }
        }
    }

    /// cosign 2's image signatures (the `.sig` tag): registries only; layouts and saved images
    /// have none.
    pub async fn simple_signatures(
        &self,
    ) -> Result<Vec<crate::simple_signing::SimpleSignature>, Error> {
        match self {
            #[cfg(feature = "registry")]
            ImageSource::Registry {
                client,
                reference,
                image,
            } => {
                crate::registry::fetch_simple_signatures(client, &reference.repository, image).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Requests sent so far (registries only).
    pub fn requests(&self) -> Option<u64> {
        match self {
            #[cfg(feature = "registry")]
            ImageSource::Registry { client, .. } => Some(client.stats().total()),
            _ => None,
        }
    }
}
