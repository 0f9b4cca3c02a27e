//! Signing: a build's SBOMs (or a signer configuration) in, signed attestations attached to the
//! image out, in one batched, idempotent run.

use std::path::{Path, PathBuf};

use cnb_attestation_config::{AllowedRoots, SignerConfig};
use cnb_referrers::layout::OciLayout;
use cnb_referrers::manifest::REF_NAME;
use cnb_sbom_discovery::DiscoveryOptions;
use cnb_sbom_restore::source::ImageSource;
use cnb_signing::generate::{generate_config, lifecycle_label, GenerateInput};
use cnb_signing::{LayoutImage, SignOptions, SignReport, Target};
use serde::Serialize;

use std::collections::BTreeMap;

use crate::keys::{KeySource, ThrowawayKey};
use crate::{Error, Image, IndexInfo, OpenOptions, PlatformSpec};

/// What to attest.
#[derive(Debug, Clone)]
pub enum SignInput {
    /// Discover the SBOMs of a build's layers directory.
    Layers(LayersInput),
    /// A signer configuration (the RFC's TOML), with the directories its `uri`s may point into
    /// (default: the configuration's own directory).
    Config {
        /// The configuration file.
        path: PathBuf,
        /// Allowed roots for predicate `uri`s.
        allow_roots: Vec<PathBuf>,
    },
}

/// A build's layers directory and how to read it.
#[derive(Debug, Clone, Default)]
pub struct LayersInput {
    /// The layers directory.
    pub dir: PathBuf,
    /// `group.toml` (default: `<dir>/group.toml` when present).
    pub group: Option<PathBuf>,
    /// The image subject's name (a repository); default: the registry repository, or a name
    /// derived from the layout.
    pub subject_name: Option<String>,
    /// Also attest `sbom/build` SBOMs.
    pub include_build: bool,
    /// Also attest `sbom/cache` SBOMs.
    pub include_cache: bool,
}

/// A signing run.
#[derive(Debug)]
pub struct SignRequest {
    /// What to attest.
    pub input: SignInput,
    /// The signing key.
    pub key: KeySource,
    /// Formats, statement version, image signature.
    pub options: SignOptions,
    /// Show upload progress on a terminal.
    pub progress: bool,
}

/// What [`sign`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The report.
    #[serde(flatten)]
    pub report: SignReport,
    /// The throw-away key, when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throwaway_key: Option<ThrowawayKey>,
}

/// Signs an image's SBOMs and attaches them (OCI layout: one `index.json` update; registry:
/// Referrers API or tag-schema index, see `cnb_registry::attach`). Everything that can be checked
/// without the key (the configuration, its image digest, the formats the target can take) is
/// checked before the key is loaded; nothing is stored unless every attestation could be signed.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::keys::KeySource;
/// use cnb_attest::sign::{sign, LayersInput, SignInput, SignRequest};
/// use cnb_attest::{Image, OpenOptions, SignOptions, SigningKey};
/// let target = format!("oci:{}:latest", dir.path().display());
/// let request = SignRequest {
///     input: SignInput::Layers(LayersInput { dir: layers, ..LayersInput::default() }),
///     key: KeySource::Key(Box::new(SigningKey::generate()?)),
///     options: SignOptions::default(),
///     progress: false,
/// };
/// let signed = cnb_attest::block_on(async {
///     sign(&Image::open(&target, &OpenOptions::default()).await?, &request).await
/// })??;
/// assert_eq!(signed.report.pushed, 8); // 7 SBOMs and the image signature
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn sign(image: &Image, request: &SignRequest) -> Result<Signed, Error> {
    sign_one(
        image,
        &request.input,
        &request.key,
        &request.options,
        request.progress,
    )
    .await
}

/// [`sign`] with its parts borrowed: the configuration checked against the image before the key
/// is loaded, then one signer for the run.
async fn sign_one(
    image: &Image,
    input: &SignInput,
    key: &KeySource,
    options: &SignOptions,
    progress: bool,
) -> Result<Signed, Error> {
    let (config, roots) = checked_config(image, input, options)?;
    refuse_unverifiable_key(image, key)?;
    let run = crate::keys::RunSigner::open(key).await?;
    let report = store(image, &config, &roots, &run, options, progress).await?;
    Ok(Signed {
        report,
        throwaway_key: run.throwaway,
    })
}

/// The configuration for `input` on `image`, checked against the image (its digest) and the
/// target (the formats a layout can take), before any key is loaded.
fn checked_config(
    image: &Image,
    input: &SignInput,
    options: &SignOptions,
) -> Result<(SignerConfig, AllowedRoots), Error> {
    let manifest = image.with_manifest()?;
    let (config, roots) = configure(image, input)?;
    if matches!(image.source, ImageSource::Layout { .. }) {
        options.check_layout_target()?;
    }
    let configured = config.image.digest()?;
    if configured != manifest.descriptor.digest {
        return Err(Error::BadImage(format!(
            "the signer configuration is for image {configured}, but {} is {}",
            image.name(),
            manifest.descriptor.digest
        )));
    }
    Ok((config, roots))
}

/// A registry image is never signed with a throw-away key nobody asked for.
fn refuse_unverifiable_key(image: &Image, key: &KeySource) -> Result<(), Error> {
    #[cfg(feature = "registry")]
    if matches!(image.source, ImageSource::Registry { .. })
        && matches!(
            key,
            KeySource::Throwaway {
                requested: false,
                ..
            }
        )
    {
        return Err(Error::InvalidRequest(format!(
            "{}: no signing key given; attestations in a registry must be verifiable later: give \
             --key (see generate-key-pair), or --throwaway-key to sign with a throw-away key anyway",
            image.name()
        )));
    }
    let _ = (image, key);
    Ok(())
}

/// Signs `config` with the run's key and stores it on `image`'s manifest.
async fn store(
    image: &Image,
    config: &SignerConfig,
    roots: &AllowedRoots,
    run: &crate::keys::RunSigner<'_>,
    sign_options: &SignOptions,
    progress: bool,
) -> Result<SignReport, Error> {
    let manifest = image.with_manifest()?;
    let subject = Subject {
        descriptor: &manifest.descriptor,
        diff_ids: Some(&manifest.config.diff_ids),
        by_digest: false,
    };
    store_subject(image, subject, config, roots, run, sign_options, progress).await
}

/// What [`store_subject`] signs in `image`'s store: its manifest, or the index it was reached
/// through (no diffIDs; named by digest in a registry).
struct Subject<'a> {
    descriptor: &'a cnb_referrers::Descriptor,
    diff_ids: Option<&'a [String]>,
    by_digest: bool,
}

/// Signs `config` about `subject` and stores it where `image` is: the one place a layout or a
/// registry is chosen for a signing run.
async fn store_subject(
    image: &Image,
    subject: Subject<'_>,
    config: &SignerConfig,
    roots: &AllowedRoots,
    run: &crate::keys::RunSigner<'_>,
    sign_options: &SignOptions,
    progress: bool,
) -> Result<SignReport, Error> {
    #[cfg(not(feature = "registry"))]
    let _ = progress;
    let key = run.key();
    let options = run
        .options_for(
            subject.descriptor,
            image.name(),
            config,
            roots,
            sign_options,
        )
        .await?;
    let report = match &image.source {
        ImageSource::Layout { layout, .. } => cnb_signing::sign_layout_subject(
            layout,
            subject.descriptor,
            subject.diff_ids,
            config,
            roots,
            key,
            &options,
        )?,
        #[cfg(feature = "registry")]
        ImageSource::Registry {
            reference, client, ..
        } => {
            let by_digest;
            let reference = if subject.by_digest {
                by_digest = cnb_registry::ImageRef {
                    repository: reference.repository.clone(),
                    tag: None,
                    digest: Some(subject.descriptor.digest.to_string()),
                };
                &by_digest
            } else {
                reference
            };
            cnb_signing::sign_registry(
                client,
                reference,
                subject.descriptor,
                subject.diff_ids,
                config,
                roots,
                key,
                &options,
                &attach_options(progress),
            )
            .await?
        }
        ImageSource::Archive { .. } => return Err(Error::InvalidRequest(
            "a saved daemon image cannot carry attestations; push it or save it as an OCI layout"
                .into(),
        )),
        // Built without `registry` while cnb-sbom-restore has it (another package of the same
        // build asked for it): a registry image is still refused, by type.
        #[cfg(not(feature = "registry"))]
        #[allow(unreachable_patterns)]
        _ => return Err(Error::RegistryUnsupported(image.name().to_string())),
    };
    Ok(report)
}

/// A multi-platform signing run ([`sign_platforms`]).
#[derive(Debug)]
pub struct PlatformsSignRequest {
    /// The layers directories: each for the platform it names, or one without a platform: a
    /// plain layers directory (for a manifest, or an index of one platform), or a directory of
    /// per-platform layers directories named `os-arch[-variant]` (`linux-amd64/`,
    /// `linux-arm64/`, `linux-arm-v7/`), told apart by having no `sbom/` of its own.
    pub layers: Vec<(Option<PlatformSpec>, LayersInput)>,
    /// Only these platforms; default: every platform a layers directory was given for.
    pub platforms: Vec<PlatformSpec>,
    /// The signing key (one for the whole run).
    pub key: KeySource,
    /// Formats, statement version, image signature.
    pub options: SignOptions,
    /// Show upload progress on a terminal.
    pub progress: bool,
}

/// One platform's part of [`sign_platforms`].
#[derive(Debug, Clone, Serialize)]
pub struct PlatformSigned {
    /// The image as named (for messages).
    #[serde(skip)]
    pub image: String,
    /// The platform (`None` for an image not reached through an index, or an entry without one).
    pub platform: Option<PlatformSpec>,
    /// What signing its manifest did.
    pub report: SignReport,
}

/// What [`sign_platforms`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignedPlatforms {
    /// The image index signed, when several platforms were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexInfo>,
    /// The index's own image signature (a subject with no SBOMs), when several platforms were
    /// signed and an image signature is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_signature: Option<SignReport>,
    /// Each platform signed, in the index's order.
    pub platforms: Vec<PlatformSigned>,
    /// The throw-away key, when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throwaway_key: Option<ThrowawayKey>,
}

impl SignedPlatforms {
    /// What [`sign`] did to one image, as a run of one platform (no index signed).
    pub fn single(image: &Image, signed: Signed) -> Self {
        SignedPlatforms {
            index: None,
            index_signature: None,
            platforms: vec![PlatformSigned {
                image: image.name().to_string(),
                platform: image.platform().cloned(),
                report: signed.report,
            }],
            throwaway_key: signed.throwaway_key,
        }
    }

    /// Every report: each platform's, then the index signature's.
    pub fn reports(&self) -> impl Iterator<Item = &SignReport> {
        self.platforms
            .iter()
            .map(|p| &p.report)
            .chain(self.index_signature.iter())
    }

    /// Whether several platforms (and the index) were signed: callers report per platform.
    pub fn per_platform(&self) -> bool {
        self.index.is_some()
    }
}

/// Signs `target` whether it is a manifest or an image index, in one run with one key: for an
/// index of several platforms, each platform's manifest is attested with its own layers
/// directory's SBOMs (one listing update per manifest), then the index digest gets the image
/// signature ([`SignOptions::image_signature`]; a subject with no SBOMs). Every platform's
/// SBOMs are discovered and checked before the key is loaded and before anything is stored.
///
/// A plain layers directory for an index of several platforms is [`Error::AmbiguousPlatform`]
/// (listing them); a platform named that the index lacks is [`Error::NoSuchPlatform`]; a platform
/// chosen without a layers directory is [`Error::InvalidRequest`]. A manifest, or an index of one
/// platform, is signed as [`sign`] signs it.
pub async fn sign_platforms(
    target: &str,
    open: &OpenOptions,
    request: &PlatformsSignRequest,
) -> Result<SignedPlatforms, Error> {
    let (mut plain, mut dirs) = platform_dirs(&request.layers)?;
    // One plain directory and one platform named: that platform's directory.
    if let (Some(input), [one]) = (&plain, request.platforms.as_slice()) {
        if dirs.is_empty() {
            dirs.insert(one.clone(), input.clone());
            plain = None;
        }
    }
    let unplatformed = OpenOptions {
        platform: None,
        ..open.clone()
    };
    let platforms = match Image::open(target, &unplatformed).await {
        Ok(image) => {
            // One manifest to sign. A platform named must be its platform.
            if image.index().is_some() {
                for spec in &request.platforms {
                    let named = OpenOptions {
                        platform: Some(spec.clone()),
                        ..open.clone()
                    };
                    Image::open(target, &named).await?;
                }
            }
            let own = image.platform().and_then(|p| {
                dirs.keys()
                    .find(|d| {
                        d.matches(&cnb_referrers::manifest::Platform {
                            architecture: p.architecture.clone(),
                            os: p.os.clone(),
                            variant: p.variant.clone(),
                        })
                    })
                    .cloned()
            });
            let input = match (plain, own) {
                (Some(input), _) if dirs.is_empty() => input,
                (None, Some(own)) if dirs.len() == 1 || !request.platforms.is_empty() => {
                    dirs.remove(&own).expect("found above")
                }
                _ => {
                    return Err(Error::InvalidRequest(format!(
                        "{}: one image to sign{}; give one layers directory for it",
                        image.name(),
                        image
                            .platform()
                            .map(|p| format!(" (platform {p})"))
                            .unwrap_or_default()
                    )))
                }
            };
            let signed = sign_one(
                &image,
                &SignInput::Layers(input),
                &request.key,
                &request.options,
                request.progress,
            )
            .await?;
            return Ok(SignedPlatforms::single(&image, signed));
        }
        Err(Error::AmbiguousPlatform { image, platforms }) if plain.is_some() => {
            return Err(Error::AmbiguousPlatform { image, platforms })
        }
        Err(Error::AmbiguousPlatform { platforms, .. }) => platforms,
        Err(e) => return Err(e),
    };
    let chosen: Vec<PlatformSpec> = if request.platforms.is_empty() {
        dirs.keys().cloned().collect()
    } else {
        request.platforms.clone()
    };
    if chosen.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "{target}: no platform to sign; give --layers <os/arch>=<dir>"
        )));
    }
    // Every platform opened and its SBOMs discovered before the key is loaded.
    let mut planned = Vec::new();
    for spec in &chosen {
        let input = dirs.get(spec).cloned().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{target}: no layers directory for platform {spec} (give --layers {spec}=<dir>)"
            ))
        })?;
        let image = Image::open(
            target,
            &OpenOptions {
                platform: Some(spec.clone()),
                ..open.clone()
            },
        )
        .await?;
        // Two platforms named differently (`linux/arm64`, `linux/arm64/v8`) may be one
        // manifest: it gets one layers directory, never two.
        if let Some((other, ..)) =
            planned
                .iter()
                .find(|(_, earlier, ..): &&(PlatformSpec, Image, _, _, _)| {
                    earlier.digest() == image.digest()
                })
        {
            return Err(Error::InvalidRequest(format!(
                "{target}: platforms {other} and {spec} are the same manifest ({}); give one layers directory for it",
                image
                    .digest()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )));
        }
        let input = SignInput::Layers(input);
        let (config, roots) = checked_config(&image, &input, &request.options)?;
        refuse_unverifiable_key(&image, &request.key)?;
        planned.push((spec.clone(), image, input, config, roots));
    }
    // Index order, whatever order the flags came in.
    planned.sort_by_key(|(_, image, ..)| {
        platforms
            .iter()
            .position(|p| Some(&p.digest) == image.digest())
    });
    let info =
        planned[0].1.index().cloned().ok_or_else(|| {
            Error::BadImage(format!("{target}: not reached through an image index"))
        })?;
    if planned
        .iter()
        .any(|(_, image, ..)| image.index().map(|i| &i.descriptor) != Some(&info.descriptor))
    {
        return Err(Error::BadImage(format!(
            "{target} changed while its platforms were opened (another image index)"
        )));
    }
    let run = crate::keys::RunSigner::open(&request.key).await?;
    let mut signed = Vec::new();
    for (spec, image, _, config, roots) in &planned {
        signed.push(PlatformSigned {
            image: image.name().to_string(),
            platform: image.platform().cloned().or(Some(spec.clone())),
            report: store(
                image,
                config,
                roots,
                &run,
                &request.options,
                request.progress,
            )
            .await?,
        });
    }
    let index_signature = if request.options.image_signature == cnb_signing::ImageSignature::None {
        None
    } else {
        let (_, first, input, ..) = &planned[0];
        Some(sign_index(first, &info, input, &run, request).await?)
    };
    Ok(SignedPlatforms {
        index: Some(info),
        index_signature,
        platforms: signed,
        throwaway_key: run.throwaway,
    })
}

/// The layers directories by platform, and the plain one (no platform, not a directory of
/// per-platform directories) if given.
fn platform_dirs(
    layers: &[(Option<PlatformSpec>, LayersInput)],
) -> Result<(Option<LayersInput>, BTreeMap<PlatformSpec, LayersInput>), Error> {
    let mut plain = None;
    let mut dirs = BTreeMap::new();
    let mut add = |spec: PlatformSpec, input: LayersInput| {
        if dirs.insert(spec.clone(), input).is_some() {
            return Err(Error::InvalidRequest(format!(
                "two layers directories for platform {spec}"
            )));
        }
        Ok(())
    };
    for (spec, input) in layers {
        match spec {
            Some(spec) => add(spec.clone(), input.clone())?,
            None if input.dir.join("sbom").is_dir() || !input.dir.is_dir() => {
                if plain.replace(input.clone()).is_some() {
                    return Err(Error::InvalidRequest(
                        "several layers directories without a platform; name each one's platform (<os/arch>=<dir>)".into(),
                    ));
                }
            }
            None => {
                // A directory of per-platform layers directories: `os-arch[-variant]`.
                let entries = std::fs::read_dir(&input.dir).map_err(|source| Error::Io {
                    path: input.dir.clone(),
                    source,
                })?;
                let mut found = 0;
                for entry in entries {
                    let entry = entry.map_err(|source| Error::Io {
                        path: input.dir.clone(),
                        source,
                    })?;
                    let name = entry.file_name();
                    let Some(spec) = name.to_str().and_then(platform_of_dir) else {
                        continue;
                    };
                    // Only a directory that is a layers directory itself (it has `sbom/`): a
                    // name that merely parses as a platform (`tmp-old`) is not one.
                    if !entry.file_type().is_ok_and(|t| t.is_dir())
                        || !entry.path().join("sbom").is_dir()
                    {
                        continue;
                    }
                    found += 1;
                    add(
                        spec,
                        LayersInput {
                            dir: entry.path(),
                            // A group.toml given applies to every platform; else each
                            // directory's own.
                            group: input.group.clone(),
                            ..input.clone()
                        },
                    )?;
                }
                if found == 0 {
                    return Err(Error::InvalidRequest(format!(
                        "{}: neither a layers directory (no sbom/) nor a directory of per-platform layers directories (os-arch[-variant], e.g. linux-amd64)",
                        input.dir.display()
                    )));
                }
            }
        }
    }
    Ok((plain, dirs))
}

/// `linux-arm-v7` as `linux/arm/v7` ([`PlatformSpec::dir_name`] read back).
fn platform_of_dir(name: &str) -> Option<PlatformSpec> {
    let parts: Vec<&str> = name.split('-').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    parts.join("/").parse().ok()
}

/// The image signature of the index `info` describes (a subject with no SBOMs), stored where
/// `first` (one of its platforms) is.
async fn sign_index(
    first: &Image,
    info: &IndexInfo,
    input: &SignInput,
    run: &crate::keys::RunSigner<'_>,
    request: &PlatformsSignRequest,
) -> Result<SignReport, Error> {
    let digest = &info.descriptor.digest;
    let (reference, root) = match (&first.source, first.layout(), input) {
        (ImageSource::Layout { .. }, Some(location), SignInput::Layers(layers)) => {
            let dir = std::fs::canonicalize(&location.dir).map_err(|source| Error::Io {
                path: location.dir.clone(),
                source,
            })?;
            (
                format!("oci:{}@{digest}", dir.display()),
                layers.dir.clone(),
            )
        }
        #[cfg(feature = "registry")]
        (ImageSource::Registry { reference, .. }, _, SignInput::Layers(layers)) => (
            format!("{}@{digest}", reference.repository),
            layers.dir.clone(),
        ),
        _ => {
            return Err(Error::InvalidRequest(
                "only images in a registry or an OCI layout can be signed".into(),
            ))
        }
    };
    let config = SignerConfig {
        image: cnb_attestation_config::ImageSection { reference },
        attestations: Vec::new(),
    };
    let roots = AllowedRoots::new(std::slice::from_ref(&root))?;
    let subject = Subject {
        descriptor: &info.descriptor,
        diff_ids: None,
        by_digest: true,
    };
    store_subject(
        first,
        subject,
        &config,
        &roots,
        run,
        &request.options,
        request.progress,
    )
    .await
}

#[cfg(feature = "registry")]
pub(crate) fn attach_options(progress: bool) -> cnb_registry::AttachOptions {
    if progress {
        cnb_registry::AttachOptions::with_progress_on_terminal()
    } else {
        cnb_registry::AttachOptions::default()
    }
}

/// A signer configuration file and the roots its `uri`s may point into (default: its directory).
pub(crate) fn load_config(
    path: &Path,
    allow_roots: &[PathBuf],
) -> Result<(SignerConfig, AllowedRoots), Error> {
    let config = cnb_attestation_config::load(path)?;
    let mut dirs = allow_roots.to_vec();
    if dirs.is_empty() {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        dirs.push(parent.unwrap_or(Path::new(".")).to_path_buf());
    }
    Ok((config, AllowedRoots::new(&dirs)?))
}

/// The signer configuration and allowed roots for `input` on `image`.
fn configure(image: &Image, input: &SignInput) -> Result<(SignerConfig, AllowedRoots), Error> {
    match input {
        SignInput::Config { path, allow_roots } => load_config(path, allow_roots),
        SignInput::Layers(layers) => {
            let manifest = image.with_manifest()?;
            let (reference, default_name) = match (&image.source, image.layout()) {
                (ImageSource::Layout { layout, .. }, Some(location)) => {
                    let dir = std::fs::canonicalize(&location.dir).map_err(|source| Error::Io {
                        path: location.dir.clone(),
                        source,
                    })?;
                    let ref_name = layout
                        .index()
                        .ok()
                        .and_then(|i| {
                            i.manifests
                                .into_iter()
                                .find(|d| d.digest == manifest.descriptor.digest)
                        })
                        .and_then(|d| d.annotation(REF_NAME).map(str::to_string));
                    (
                        format!("oci:{}@{}", dir.display(), manifest.descriptor.digest),
                        location.default_subject_name(ref_name.as_deref()),
                    )
                }
                #[cfg(feature = "registry")]
                (ImageSource::Registry { reference, .. }, _) => (
                    format!("{}@{}", reference.repository, manifest.descriptor.digest),
                    reference.repository.to_string(),
                ),
                _ => {
                    return Err(Error::InvalidRequest(
                        "only images in a registry or an OCI layout can be signed".into(),
                    ))
                }
            };
            let group = default_group(&layers.dir, layers.group.as_deref());
            let name = layers.subject_name.clone().unwrap_or(default_name);
            let input = GenerateInput {
                layers_dir: &layers.dir,
                group: group.as_deref(),
                reference: &reference,
                subject_name: &name,
                discovery: DiscoveryOptions {
                    include_build: layers.include_build,
                    include_cache: layers.include_cache,
                    ..DiscoveryOptions::default()
                },
            };
            let label = lifecycle_label(manifest)?;
            let (config, _) = generate_config(&input, manifest.descriptor.digest.as_str(), label)?;
            Ok((
                config,
                AllowedRoots::new(std::slice::from_ref(&layers.dir))?,
            ))
        }
    }
}

/// `group` or, when there is none, `<layers>/group.toml` if it exists.
pub(crate) fn default_group(layers: &Path, group: Option<&Path>) -> Option<PathBuf> {
    let default = layers.join("group.toml");
    group
        .map(Path::to_path_buf)
        .or_else(|| default.exists().then_some(default))
}

/// The `signer` phase's run: the configuration the exporter wrote decides the image.
#[derive(Debug)]
pub struct ConfiguredSignRequest {
    /// The signer configuration.
    pub config: PathBuf,
    /// The layers directory (always an allowed root for predicate `uri`s).
    pub layers: PathBuf,
    /// More allowed roots (never the whole platform directory: it holds binding secrets).
    pub allow_roots: Vec<PathBuf>,
    /// The lifecycle's `report.toml`: every repository it lists a tag in gets the attestations
    /// too (same digest). `None`: `<layers>/report.toml` when present.
    pub report: Option<PathBuf>,
    /// `oci:<dir>...`: sign this layout instead of the configuration's reference.
    pub layout_image: Option<String>,
    /// The signing key.
    pub key: KeySource,
    /// Formats, statement version, image signature.
    pub options: SignOptions,
    /// How to reach registries.
    #[cfg(feature = "registry")]
    pub registry: crate::registry::RegistryOptions,
    /// Show upload progress on a terminal.
    pub progress: bool,
}

/// Signs what a signer configuration lists and attaches it to the image it names (and, for a
/// registry image, to every repository `report.toml` lists a tag in): one report per repository.
/// The configuration is checked ([`Error::Config`], [`Error::ConfigMismatch`]) before the key is
/// loaded ([`Error::Key`]) and the image is read ([`Error::BadImage`]).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let layers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers");
/// # cnb_fixtures::build(&cnb_fixtures::node_express(&layers), dir.path()).unwrap();
/// use cnb_attest::export::{export, ExportRequest, ExportedImage};
/// use cnb_attest::keys::KeySource;
/// use cnb_attest::sign::{sign_configured, write_signer_report, ConfiguredSignRequest};
/// use cnb_attest::{LayoutImage, SignOptions, SigningKey};
/// // The exporter's part: the configuration for the image in the layout.
/// let config = dir.path().join("signer.toml");
/// cnb_attest::block_on(export(&ExportRequest {
///     layers: layers.clone(),
///     group: None,
///     image: ExportedImage::Layout(LayoutImage::parse(&format!("oci:{}:latest", dir.path().display()))?),
///     name: None,
///     omit_sbom: false,
///     include_build: false,
///     include_cache: false,
///     output: Some(config.clone()),
///     #[cfg(feature = "registry")]
///     registry: Default::default(),
/// }))??;
/// // The signer's part: the configuration decides the image.
/// let request = ConfiguredSignRequest {
///     config,
///     layers,
///     allow_roots: Vec::new(),
///     report: None,
///     layout_image: None,
///     key: KeySource::Key(Box::new(SigningKey::generate()?)),
///     options: SignOptions::default(),
///     #[cfg(feature = "registry")]
///     registry: Default::default(),
///     progress: false,
/// };
/// let reports = cnb_attest::block_on(sign_configured(&request))??;
/// assert_eq!(reports[0].pushed, 8);
/// write_signer_report(&dir.path().join("signer-report.toml"), &reports)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn sign_configured(request: &ConfiguredSignRequest) -> Result<Vec<SignReport>, Error> {
    let config = cnb_attestation_config::load(&request.config)?;
    let mut root_dirs = vec![request.layers.clone()];
    root_dirs.extend(request.allow_roots.iter().cloned());
    let roots = AllowedRoots::new(&root_dirs)?;
    let run = crate::keys::RunSigner::open(&request.key).await?;
    let key = run.key();
    let target = match &request.layout_image {
        Some(text) => Target::Layout(
            LayoutImage::parse(text).map_err(|e| Error::InvalidRequest(e.to_string()))?,
        ),
        None => Target::parse(&config.image.reference)
            .map_err(|e| Error::ConfigMismatch(e.to_string()))?,
    };
    match target {
        Target::Layout(location) => {
            let bad = |e: cnb_referrers::Error| Error::BadImage(e.to_string());
            let layout = OciLayout::open(&location.dir).map_err(bad)?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| Error::resolving(&location.to_string(), e))?;
            let image = layout.read_image(&descriptor).map_err(bad)?;
            let options = run
                .options_for(
                    &image.descriptor,
                    &location.dir.display().to_string(),
                    &config,
                    &roots,
                    &request.options,
                )
                .await?;
            Ok(vec![cnb_signing::sign_layout(
                &layout, &image, &config, &roots, key, &options,
            )?])
        }
        #[cfg(feature = "registry")]
        Target::Registry(reference) => {
            let references = repositories(request, &config.image.reference, &reference)?;
            let client = request.registry.client()?;
            let mut reports = Vec::new();
            for reference in references {
                let subject = client
                    .subject(&reference)
                    .await
                    .map_err(|e| Error::BadImage(e.to_string()))?;
                let options = run
                    .options_for(
                        &subject,
                        &reference.to_string(),
                        &config,
                        &roots,
                        &request.options,
                    )
                    .await?;
                reports.push(
                    cnb_signing::sign_registry(
                        &client,
                        &reference,
                        &subject,
                        // The exporter generated the layer subjects from the image's own label;
                        // the signer reads only the manifest, to keep the request budget.
                        None,
                        &config,
                        &roots,
                        key,
                        &options,
                        &attach_options(request.progress),
                    )
                    .await?,
                );
            }
            Ok(reports)
        }
        #[cfg(not(feature = "registry"))]
        Target::Registry(_) => Err(Error::RegistryUnsupported(config.image.reference.clone())),
    }
}

/// The registry images to attach to: the configuration's, plus one per other repository that
/// `report.toml` lists a tag in, all at the configuration's digest.
#[cfg(feature = "registry")]
fn repositories(
    request: &ConfiguredSignRequest,
    configured: &str,
    reference: &cnb_registry::ImageRef,
) -> Result<Vec<cnb_registry::ImageRef>, Error> {
    use cnb_registry::ImageRef;
    use cnb_sbom_discovery::platform::Report;
    use std::collections::BTreeSet;

    let digest = reference.digest.clone().ok_or_else(|| {
        Error::ConfigMismatch(format!(
            "[image] reference `{configured}` is not pinned by digest"
        ))
    })?;
    let mut seen = BTreeSet::from([reference.repository.to_string()]);
    let mut out = vec![reference.clone()];
    let report_path = request
        .report
        .clone()
        .unwrap_or_else(|| request.layers.join("report.toml"));
    if request.report.is_none() && !report_path.is_file() {
        return Ok(out);
    }
    let report = Report::from_path(&report_path).map_err(|e| Error::BadImage(e.to_string()))?;
    if let Some(reported) = &report.image.digest {
        if *reported != digest {
            return Err(Error::BadImage(format!(
                "{} records digest {reported}, but the signer configuration is for {digest}",
                report_path.display()
            )));
        }
    }
    for tag in &report.image.tags {
        let tagged = ImageRef::parse(tag).map_err(|e| Error::BadImage(e.to_string()))?;
        if seen.insert(tagged.repository.to_string()) {
            out.push(ImageRef {
                repository: tagged.repository,
                tag: None,
                digest: Some(digest.clone()),
            });
        }
    }
    Ok(out)
}

/// Writes the `signer` phase's report (`[[image]]` tables, one per repository) atomically; see
/// [`sign_configured`] for an example. Each attestation's `discoverable` is what reading the
/// listing back after the push found (`not-listed` gives the reason when false), never the
/// registry's `OCI-Subject` answer.
pub fn write_signer_report(path: &Path, reports: &[SignReport]) -> Result<(), Error> {
    #[derive(Serialize)]
    struct Reports<'a> {
        image: &'a [SignReport],
    }
    let text = toml::to_string(&Reports { image: reports })
        .map_err(|e| Error::InvalidRequest(format!("signer report: {e}")))?;
    cnb_local_files::write_atomic(path, text.as_bytes()).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}
