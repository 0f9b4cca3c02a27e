//! Opening an image from any store: an OCI layout, a registry, a `docker save` archive.

use std::path::{Path, PathBuf};

use cnb_referrers::layout::OciLayout;
use cnb_referrers::platform::{IndexInfo, PlatformSpec};
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
    /// The platform to open when the image is an image index (`os/arch[/variant]`). Without one,
    /// an index of several platform manifests is [`Error::AmbiguousPlatform`]; an index of one
    /// (BuildKit attestation manifests beside it do not count) opens that one. A manifest named
    /// directly (by tag or digest) is taken as it is.
    pub platform: Option<PlatformSpec>,
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
            let image = open_archive(target, path, Some(target))?;
            image.check_platform(options.platform.as_ref())?;
            return Ok(image);
        }
        // `docker-archive:<path>[:<tag or image ID>]`, as skopeo names saved daemon images.
        if let Some(rest) = target.strip_prefix("docker-archive:") {
            let (path, selector) = match rest.split_once(':') {
                Some((path, selector)) if !path.is_empty() => (path, Some(selector)),
                _ => (rest, None),
            };
            let image = open_archive(target, Path::new(path), selector)?;
            image.check_platform(options.platform.as_ref())?;
            return Ok(image);
        }
        let parsed = match &options.layout_dir {
            Some(dir) => Target::Layout(LayoutImage::in_layout_dir(dir, target)?),
            None => Target::parse(target).map_err(|e| Error::InvalidRequest(e.to_string()))?,
        };
        let image = match parsed {
            Target::Layout(location) => open_layout(target, location, options.platform.as_ref()),
            #[cfg(feature = "registry")]
            Target::Registry(reference) => {
                crate::registry::open(
                    target,
                    reference,
                    &options.registry,
                    options.platform.as_ref(),
                )
                .await
            }
            #[cfg(not(feature = "registry"))]
            Target::Registry(_) => Err(Error::RegistryUnsupported(target.to_string())),
        }?;
        image.check_platform(options.platform.as_ref())?;
        Ok(image)
    }

    /// A platform named for an image that is one manifest (not reached through an index) must be
    /// the platform its config declares: `--platform linux/arm64` never reads an amd64 image's
    /// attestations. A config that declares no platform is taken as named.
    fn check_platform(&self, wanted: Option<&PlatformSpec>) -> Result<(), Error> {
        let (Some(wanted), None) = (wanted, self.index()) else {
            return Ok(());
        };
        let Some(declared) = &self.source.config().platform else {
            return Ok(());
        };
        if wanted.matches(declared) {
            return Ok(());
        }
        Err(Error::NoSuchPlatform {
            image: self.name.clone(),
            wanted: Box::new(wanted.clone()),
            platforms: vec![cnb_referrers::platform::IndexPlatform {
                platform: Some(PlatformSpec::of(declared)),
                digest: self
                    .digest()
                    .cloned()
                    .unwrap_or_else(|| cnb_referrers::Digest::of(&[])),
            }],
        })
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

    /// The image index this image was reached through (its descriptor, every platform it lists,
    /// the platform chosen), when it was: a caller can go on to the other platforms.
    pub fn index(&self) -> Option<&IndexInfo> {
        self.source.image().and_then(|i| i.index.as_ref())
    }

    /// The platform of this image, as its index entry declares it (`None` for an image not
    /// reached through an index, or an entry without a platform).
    pub fn platform(&self) -> Option<&PlatformSpec> {
        self.index().and_then(|i| i.chosen.as_ref())
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

fn open_layout(
    name: &str,
    location: LayoutImage,
    platform: Option<&PlatformSpec>,
) -> Result<Image, Error> {
    if !location.dir.exists() {
        return Err(Error::ImageNotFound(format!(
            "{name}: no OCI layout at {}",
            location.dir.display()
        )));
    }
    let layout = OciLayout::open(&location.dir).map_err(|e| Error::BadImage(e.to_string()))?;
    let resolved = layout
        .resolve(location.selector.as_deref(), platform)
        .map_err(|e| match e {
            cnb_referrers::Error::NoSuchImage { .. } => {
                Error::ImageNotFound(format!("{name}: {e}"))
            }
            cnb_referrers::Error::Platform(e) => Error::platform(name, *e),
            other => Error::BadImage(other.to_string()),
        })?;
    let mut image = layout
        .read_image(&resolved.descriptor)
        .map_err(|e| Error::BadImage(e.to_string()))?;
    image.buildkit = resolved.buildkit;
    image.index = resolved.index;
    Ok(Image::from_source(
        ImageSource::Layout {
            layout: Box::new(layout),
            image: Box::new(image),
        },
        &location.to_string(),
        Some(location),
    ))
}

/// Every platform of a target that [`Image::open_platforms`] opened.
pub struct Platforms {
    /// The image index the platforms were reached through, when the target is one.
    pub index: Option<IndexInfo>,
    /// The index itself as a subject (its image signature, anything attached to the index
    /// digest): present when every platform of an index was asked for.
    pub index_image: Option<Image>,
    /// One image per platform, in the index's order (one image for a target that is a single
    /// manifest).
    pub images: Vec<Image>,
}

impl Platforms {
    /// Whether this is more than one image, or an index opened whole: callers report per
    /// platform then.
    pub fn per_platform(&self) -> bool {
        self.images.len() > 1 || self.index_image.is_some()
    }
}

impl Image {
    /// Opens every platform of `target` that `wanted` names (each must be in the index:
    /// [`Error::NoSuchPlatform`]), or, with `wanted` empty, every platform of an image index (and
    /// the index itself as a subject, [`Platforms::index_image`]); a target that is one manifest,
    /// or an index of one platform, opens as [`Image::open`] opens it. `options.platform` is not
    /// used. Each platform is opened by its own resolution of `target` (a tag that moves between
    /// them is caught: every platform must come from the same index).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
    /// # cnb_fixtures::build_index("latest", &cnb_fixtures::two_platforms(&layers, &layers), dir.path()).unwrap();
    /// use cnb_attest::{Error, Image, OpenOptions};
    /// let target = format!("oci:{}:latest", dir.path().display());
    /// // One image wanted, none named: refused, every platform listed.
    /// let opened = cnb_attest::block_on(Image::open(&target, &OpenOptions::default()))?;
    /// assert!(matches!(opened, Err(Error::AmbiguousPlatform { ref platforms, .. }) if platforms.len() == 2));
    /// // A platform the index lacks.
    /// let s390x = OpenOptions { platform: Some("linux/s390x".parse().unwrap()), ..OpenOptions::default() };
    /// let opened = cnb_attest::block_on(Image::open(&target, &s390x))?;
    /// assert!(matches!(opened, Err(Error::NoSuchPlatform { .. })));
    /// // One named: that manifest, with the index it was reached through.
    /// let arm64 = OpenOptions { platform: Some("linux/arm64".parse().unwrap()), ..OpenOptions::default() };
    /// let image = cnb_attest::block_on(Image::open(&target, &arm64))??;
    /// assert_eq!(image.index().map(|i| i.platforms.len()), Some(2));
    /// // Every platform, and the index itself as a subject.
    /// let all = cnb_attest::block_on(Image::open_platforms(&target, &OpenOptions::default(), &[]))??;
    /// assert_eq!(all.images.len(), 2);
    /// assert_eq!(all.images[1].platform().map(ToString::to_string).as_deref(), Some("linux/arm64"));
    /// assert!(all.index_image.is_some() && all.per_platform());
    /// # Ok::<(), Error>(())
    /// ```
    pub async fn open_platforms(
        target: &str,
        options: &OpenOptions,
        wanted: &[PlatformSpec],
    ) -> Result<Platforms, Error> {
        let with = |platform: Option<PlatformSpec>| OpenOptions {
            platform,
            ..options.clone()
        };
        let mut images = Vec::new();
        let mut whole = false;
        if wanted.is_empty() {
            match Image::open(target, &with(None)).await {
                Ok(image) => images.push(image),
                Err(Error::AmbiguousPlatform { platforms, .. }) => {
                    whole = true;
                    for p in &platforms {
                        let spec = p.platform.clone().ok_or_else(|| {
                            Error::BadImage(format!(
                                "{target}: the image index lists {} without a platform; name it by digest",
                                p.digest
                            ))
                        })?;
                        images.push(Image::open(target, &with(Some(spec))).await?);
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            for spec in wanted {
                images.push(Image::open(target, &with(Some(spec.clone()))).await?);
            }
        }
        let index = images.first().and_then(|i| i.index().cloned());
        if let Some(first) = &index {
            if images
                .iter()
                .any(|i| i.index().map(|x| &x.descriptor.digest) != Some(&first.descriptor.digest))
            {
                return Err(Error::BadImage(format!(
                    "{target} changed while its platforms were opened (another image index)"
                )));
            }
        }
        let index_image = match (&index, whole) {
            (Some(info), true) => Some(images[0].index_subject(info, options).await?),
            _ => None,
        };
        Ok(Platforms {
            index,
            index_image,
            images,
        })
    }

    /// The index `info` describes as a subject of its own: no layers, no config, only what is
    /// attached to its digest (the image signature `sign` writes for it).
    async fn index_subject(&self, info: &IndexInfo, options: &OpenOptions) -> Result<Image, Error> {
        let subject = cnb_referrers::layout::Image {
            descriptor: info.descriptor.clone(),
            manifest: cnb_referrers::ImageManifest {
                schema_version: 2,
                media_type: None,
                artifact_type: None,
                config: cnb_referrers::Descriptor::empty(),
                layers: Vec::new(),
                subject: None,
                annotations: None,
            },
            config: cnb_referrers::ImageConfig {
                labels: Default::default(),
                diff_ids: Vec::new(),
                platform: None,
            },
            buildkit: Vec::new(),
            index: None,
        };
        let name = format!("{} (image index)", self.name);
        match &self.source {
            ImageSource::Layout { layout, .. } => Ok(Image::from_source(
                ImageSource::Layout {
                    layout: layout.clone(),
                    image: Box::new(subject),
                },
                &name,
                self.layout.as_ref().map(|l| LayoutImage {
                    dir: l.dir.clone(),
                    selector: Some(info.descriptor.digest.to_string()),
                }),
            )),
            #[cfg(feature = "registry")]
            ImageSource::Registry { reference, .. } => {
                let reference = cnb_registry::ImageRef {
                    repository: reference.repository.clone(),
                    tag: None,
                    digest: Some(info.descriptor.digest.to_string()),
                };
                Ok(Image::from_source(
                    ImageSource::Registry {
                        client: Box::new(options.registry.client()?),
                        reference,
                        image: Box::new(subject),
                    },
                    &name,
                    None,
                ))
            }
            _ => {
                let _ = options;
                Err(Error::InvalidRequest(format!(
                    "{}: only images in a registry or an OCI layout are reached through an index",
                    self.name
                )))
            }
        }
    }
}
