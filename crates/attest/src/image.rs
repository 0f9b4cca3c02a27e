//! Opening an image from any store: an OCI layout, a registry, a `docker save` archive.

use std::path::{Path, PathBuf};

use cnb_referrers::layout::OciLayout;
use cnb_sbom_discovery::platform::LifecycleMetadata;
use cnb_sbom_restore::archive::{ArchiveLimits, DockerArchive};
use cnb_sbom_restore::source::ImageSource;
use cnb_signing::{LayoutImage, Target};

use crate::Error;

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// A `docker save` archive the image is in: the image text is then a tag or image ID in it.
    pub archive: Option<PathBuf>,
    /// The lifecycle's OCI layout directory: the image text is then an image name, found at
    /// `<dir>/<registry>/<repository>/<tag or digest>` as the lifecycle lays images out.
    pub layout_dir: Option<PathBuf>,
    /// How to reach registries.
    #[cfg(feature = "registry")]
    pub registry: crate::registry::RegistryOptions,
}

/// An opened image: the store it is in, its manifest and config, and its name for messages.
pub struct Image {
    pub(crate) source: ImageSource,
    name: String,
    layout: Option<LayoutImage>,
}

impl Image {
    /// Opens `target`: `oci:<dir>[:<tag>|@sha256:<hex>]` or a layout directory,
    /// `docker-archive:<file>[:<tag or image ID>]`, or a registry reference (feature `registry`).
    /// A missing image (no layout directory, no such tag or digest, a 404) is
    /// [`Error::ImageNotFound`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
    /// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
    /// use cnb_attest::{Error, Image, OpenOptions};
    /// let target = format!("oci:{}:latest", dir.path().display());
    /// let image = cnb_attest::block_on(Image::open(&target, &OpenOptions::default()))??;
    /// assert!(image.digest().is_some() && image.metadata().is_ok());
    /// let missing = format!("oci:{}:nope", dir.path().display());
    /// let opened = cnb_attest::block_on(Image::open(&missing, &OpenOptions::default()))?;
    /// assert!(matches!(opened, Err(Error::ImageNotFound(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn open(target: &str, options: &OpenOptions) -> Result<Image, Error> {
        if let Some(path) = &options.archive {
            return open_archive(target, path, Some(target));
        }
        // `docker-archive:<path>[:<tag or image ID>]`, as skopeo names saved daemon images.
        if let Some(rest) = target.strip_prefix("docker-archive:") {
            let (path, selector) = match rest.split_once(':') {
                Some((path, selector)) if !path.is_empty() => (path, Some(selector)),
                _ => (rest, None),
            };
            return open_archive(target, Path::new(path), selector);
        }
        let parsed = match &options.layout_dir {
            Some(dir) => Target::Layout(LayoutImage::in_layout_dir(dir, target)?),
            None => Target::parse(target).map_err(|e| Error::InvalidRequest(e.to_string()))?,
        };
        match parsed {
            Target::Layout(location) => open_layout(target, location),
            #[cfg(feature = "registry")]
            Target::Registry(reference) => {
                crate::registry::open(target, reference, &options.registry).await
            }
            #[cfg(not(feature = "registry"))]
            Target::Registry(_) => Err(Error::RegistryUnsupported(target.to_string())),
        }
    }

    /// The image as it was named (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its manifest digest; `None` for a saved daemon image, which has no manifest.
    pub fn digest(&self) -> Option<&cnb_referrers::Digest> {
        self.source.image().map(|i| &i.descriptor.digest)
    }

    /// The image with its manifest (`None` for a saved daemon image).
    pub fn manifest(&self) -> Option<&cnb_referrers::layout::Image> {
        self.source.image()
    }

    /// Where the image is in an OCI layout, for layout images.
    pub fn layout(&self) -> Option<&LayoutImage> {
        self.layout.as_ref()
    }

    /// The `io.buildpacks.lifecycle.metadata` label; [`Error::NotBuildpacksImage`] without one.
    pub fn metadata(&self) -> Result<LifecycleMetadata, Error> {
        self.source
            .metadata()
            .map_err(|e| Error::NotBuildpacksImage(format!("{}: {e}", self.name)))
    }

    /// Registry requests sent so far (`None` for local stores).
    pub fn requests(&self) -> Option<u64> {
        self.source.requests()
    }

    /// Every referrer `select` accepts (from its listed descriptor), with its attestation blob.
    pub(crate) async fn fetch(
        &self,
        select: &(dyn Fn(&cnb_referrers::Descriptor) -> bool + Sync),
    ) -> Result<Vec<cnb_sbom_restore::inspect::Fetched>, Error> {
        self.source
            .fetch(select)
            .await
            .map_err(|source| Error::Read {
                image: self.name.clone(),
                source,
            })
    }

    /// The image with its manifest, or an error saying a saved daemon image has none (it carries
    /// no attestations: `what` is refused).
    pub(crate) fn with_manifest(&self) -> Result<&cnb_referrers::layout::Image, Error> {
        self.source.image().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{} is a saved daemon image: it has no attestations (download --sbom-layer-fallback reads its SBOM layer)",
                self.name
            ))
        })
    }

    pub(crate) fn from_source(
        source: ImageSource,
        name: &str,
        layout: Option<LayoutImage>,
    ) -> Self {
        Image {
            source,
            name: name.to_string(),
            layout,
        }
    }
}

fn open_archive(name: &str, path: &Path, selector: Option<&str>) -> Result<Image, Error> {
    let archive = DockerArchive::open(path, &ArchiveLimits::default())
        .map_err(|e| Error::BadImage(e.to_string()))?;
    let image = archive
        .select(selector)
        .map_err(|e| Error::ImageNotFound(format!("{name} is not in {}: {e}", path.display())))?;
    Ok(Image::from_source(
        ImageSource::Archive {
            archive: Box::new(archive),
            image: Box::new(image),
        },
        name,
        None,
    ))
}

fn open_layout(name: &str, location: LayoutImage) -> Result<Image, Error> {
    if !location.dir.exists() {
        return Err(Error::ImageNotFound(format!(
            "{name}: no OCI layout at {}",
            location.dir.display()
        )));
    }
    let layout = OciLayout::open(&location.dir).map_err(|e| Error::BadImage(e.to_string()))?;
    let descriptor = layout
        .resolve_image(location.selector.as_deref())
        .map_err(|e| match e {
            cnb_referrers::Error::NoSuchImage { .. } => {
                Error::ImageNotFound(format!("{name}: {e}"))
            }
            other => Error::BadImage(other.to_string()),
        })?;
    let image = layout
        .read_image(&descriptor)
        .map_err(|e| Error::BadImage(e.to_string()))?;
    Ok(Image::from_source(
        ImageSource::Layout {
            layout: Box::new(layout),
            image: Box::new(image),
        },
        &location.to_string(),
        Some(location),
    ))
}
