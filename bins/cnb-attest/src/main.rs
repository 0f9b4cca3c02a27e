//! `cnb-attest`: sign, verify and list the SBOM attestations of a buildpacks-built image.
//!
//! Images are OCI image layouts for now: `oci:<dir>[:<tag>|@sha256:<hex>]` or a directory path.
//! Exit codes are in `docs/exit-codes.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cnb_attestation_config::AllowedRoots;
use cnb_dsse::{PasswordSource, SigningKey};
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::manifest::REF_NAME;
use cnb_registry::{AttachOptions, Client, ImageRef};
use cnb_sbom_discovery::DiscoveryOptions;
use cnb_sbom_restore::archive::{ArchiveLimits, DockerArchive};
use cnb_sbom_restore::inspect::{self, Listed};
use cnb_sbom_restore::source::ImageSource;
use cnb_signing::cli::{RegistryFlags, SignFlags};
use cnb_signing::generate::{generate_config, lifecycle_label, GenerateInput};
use cnb_signing::{LayoutImage, Target};

/// Sign, verify and list the SBOM attestations of Cloud Native Buildpacks images.
#[derive(Parser)]
#[command(name = "cnb-attest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn a build's SBOMs into signed in-toto attestations attached to the image.
    Sign(Box<SignArgs>),
    /// Verify every attestation of an image with a public key.
    Verify(VerifyArgs),
    /// List the attestations of an image.
    Ls(LsArgs),
    /// Write a cosign-compatible key pair (cosign.key, cosign.pub).
    GenerateKeyPair(KeyPairArgs),
    /// Find out what a registry supports (Referrers API, OCI-Subject, If-Match, DELETE, sizes).
    Doctor(DoctorArgs),
    /// Verify an image's SBOM attestations and write the SBOMs as `pack sbom download` does:
    /// `<out>/layers/sbom/launch/<buildpack>/[<layer>/]sbom.<ext>`.
    Download(DownloadArgs),
}

#[derive(Args)]
struct DownloadArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Output directory (the SBOMs go to `<dir>/layers/sbom/launch/`).
    #[arg(short = 'o', long = "output-dir", default_value = ".")]
    output_dir: PathBuf,
    /// Public key (PEM) the attestations must be signed with.
    #[arg(long)]
    key: PathBuf,
    /// Only this buildpack's SBOMs (its real ID, e.g. paketo-buildpacks/node-engine).
    #[arg(long)]
    buildpack: Option<String>,
    /// Only this format: cdx, spdx or syft.
    #[arg(long)]
    format: Option<String>,
    /// Fail unless every launch layer of each SBOM-producing buildpack has a verified SBOM.
    #[arg(long)]
    require_all_layers: bool,
    /// Several attestations for one SBOM: `all` must verify and agree (default), or the `newest`
    /// verified one wins (failures are reported, not fatal).
    #[arg(long, default_value = "all")]
    policy: String,
    /// When the image has no SBOM attestations at all, write its SBOM layer instead (what `pack
    /// sbom download` does; checked against the label's diffID, but not signed).
    #[arg(long)]
    sbom_layer_fallback: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DoctorArgs {
    /// `host[:port]`, or `host[:port]/repository` to use that repository as the scratch space
    /// (default `<host>/cnb-attest/doctor`). Test manifests are written there and deleted where the
    /// registry allows it.
    registry: String,
    #[command(flatten)]
    registry_args: RegistryFlags,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    /// The image: a registry reference, `oci:<dir>[:<tag>|@sha256:<hex>]` or a layout directory.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The build's layers directory: its SBOMs are discovered and attested.
    #[arg(long, env = "CNB_LAYERS_DIR", conflicts_with = "config")]
    layers: Option<PathBuf>,
    /// A signer configuration to use instead of discovering SBOMs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directories `uri`s in --config may point into (default: the configuration's directory).
    #[arg(long = "allow-root")]
    allow_roots: Vec<PathBuf>,
    /// `group.toml` (default: `<layers>/group.toml` when present).
    #[arg(long)]
    group: Option<PathBuf>,
    /// Subject name of the image (a repository, e.g. `registry.example/team/app`).
    #[arg(long)]
    name: Option<String>,
    /// Private key: cosign encrypted key or PKCS#8 PEM. Without it a throw-away key is used.
    #[arg(long)]
    key: Option<PathBuf>,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Where the throw-away key pair is kept (created on first use, reused afterwards).
    #[arg(long, default_value = ".")]
    throwaway_key_dir: PathBuf,
    #[command(flatten)]
    signing: SignFlags,
    /// Also attest `sbom/build` SBOMs.
    #[arg(long)]
    include_build_sboms: bool,
    /// Also attest `sbom/cache` SBOMs.
    #[arg(long)]
    include_cache_sboms: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Public key (PEM), e.g. cosign.pub.
    #[arg(long)]
    key: PathBuf,
    /// Print the verdicts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LsArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KeyPairArgs {
    /// Directory to write cosign.key and cosign.pub into.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// File holding the password (default: COSIGN_PASSWORD, which must be set; it may be empty).
    #[arg(long)]
    password_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    cnb_phase::main(|cli: Cli| match cli.command {
        Command::Sign(args) => sign(*args),
        Command::Verify(args) => verify(args),
        Command::Ls(args) => ls(args),
        Command::GenerateKeyPair(args) => generate_key_pair(args),
        Command::Doctor(args) => doctor(args),
        Command::Download(args) => download(args),
    })
}

/// An opened image: where it is (an `ImageSource`), its name for messages, and the runtime that
/// drives registry requests.
struct Opened {
    source: ImageSource,
    runtime: tokio::runtime::Runtime,
    name: String,
    /// The layout location, for layouts.
    location: Option<LayoutImage>,
}

impl Opened {
    /// The image with its manifest; a saved daemon image has none (and no attestations).
    fn image(&self) -> Result<&Image, Failure> {
        self.source.image().ok_or_else(|| {
            Failure::new(
                exit::INVALID_ARGS,
                format!(
                    "{} is a saved daemon image: it has no attestations (download --sbom-layer-fallback reads its SBOM layer)",
                    self.name
                ),
            )
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    /// Every referrer of the image, with its attestation blob.
    fn fetch(&self) -> Result<Vec<inspect::Fetched>, Failure> {
        self.runtime
            .block_on(self.source.fetch(&|_| true))
            .map_err(|e| Failure::new(exit::FAILED, e))
    }
}

/// A registry client and a runtime to drive it, configured from the flags and environment.
fn registry_client(registry: &RegistryFlags) -> Result<(Client, tokio::runtime::Runtime), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, format!("cannot start the async runtime: {e}")))?;
    let client = registry
        .client()
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    Ok((client, runtime))
}

fn download(args: DownloadArgs) -> Result<u8, Failure> {
    use cnb_sbom_discovery::{BuildpackId, SbomFormat};
    use cnb_sbom_restore::select::{missing_layers, plan_restore, Request};

    let key = cnb_dsse::read_public_key(&args.key).map_err(|e| Failure::new(exit::FAILED, e))?;
    let request = Request {
        buildpack: args
            .buildpack
            .as_deref()
            .map(BuildpackId::new)
            .transpose()
            .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?,
        format: args
            .format
            .as_deref()
            .map(|f| {
                SbomFormat::from_extension(&format!("{f}.json"))
                    .or_else(|| SbomFormat::from_media_type(f))
                    .ok_or_else(|| {
                        Failure::new(
                            exit::INVALID_ARGS,
                            format!("--format `{f}`: expected cdx, spdx or syft"),
                        )
                    })
            })
            .transpose()?,
    };
    let policy: cnb_sbom_restore::select::Policy = args
        .policy
        .parse()
        .map_err(|e: cnb_sbom_restore::PolicyError| Failure::new(exit::INVALID_ARGS, e))?;
    let opened = open(&args.image, &args.registry)?;
    let metadata = opened
        .source
        .metadata()
        .map_err(|e| Failure::new(exit::FAILED, format!("{}: {e}", opened.name)))?;
    let select = |d: &cnb_referrers::Descriptor| request.wants(d);
    let fetched = opened
        .runtime
        .block_on(opened.source.fetch(&select))
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    let mut plan = match opened.source.image() {
        Some(image) => plan_restore(image, &metadata, &fetched, &key, &request, policy),
        None => Default::default(),
    };
    let mut unsigned = false;
    // Only when there is no SBOM attestation at all: never in place of ones that failed.
    if fetched.is_empty() && args.sbom_layer_fallback {
        // No attestation at all: what `pack sbom download` reads, the SBOM layer, is the last
        // resort, checked against the label's diffID but not signed.
        let layer = opened
            .runtime
            .block_on(opened.source.sbom_layer(&metadata))
            .map_err(|e| Failure::new(exit::FAILED, e))?;
        eprintln!(
            "Warning: {} has no SBOM attestations; writing its SBOM layer, which is not signed",
            opened.name
        );
        plan.files = layer
            .files
            .into_iter()
            .filter(|f| request.accepts(&f.path))
            .collect();
        unsigned = true;
    }
    let missing = if !args.require_all_layers {
        Vec::new()
    } else if metadata.sbom.is_some() && !unsigned {
        // The SBOM layer (fixed by the image digest) is the trusted list of what must be there.
        let layer = opened
            .runtime
            .block_on(opened.source.sbom_layer(&metadata))
            .map_err(|e| Failure::new(exit::FAILED, e))?;
        // missing_from_layer leaves the unattested legacy BOM out.
        let expected: Vec<_> = layer
            .files
            .into_iter()
            .filter(|f| request.accepts(&f.path))
            .collect();
        cnb_sbom_restore::select::missing_from_layer(&plan, &expected)
    } else {
        missing_layers(&plan, &metadata)
    };
    // Fail closed: when anything failed, nothing is written at all.
    let written = if plan.failures.is_empty() && missing.is_empty() && !plan.files.is_empty() {
        // The output directory is the user's to name (and may sit below a symlink they chose);
        // from `<out>/layers` down, write_tree creates every directory itself and follows no
        // symlink.
        std::fs::create_dir_all(&args.output_dir).map_err(|e| {
            Failure::new(exit::FAILED, format!("{}: {e}", args.output_dir.display()))
        })?;
        cnb_sbom_restore::write_tree(&args.output_dir.join("layers"), &plan.files)
            .map_err(|e| Failure::new(exit::FAILED, e))?
    } else {
        Vec::new()
    };
    let root = args.output_dir.join("layers");
    let requests = opened.source.requests();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "plan": plan,
                "unsigned-sbom-layer": unsigned,
                "written": written,
                "missing-layers": missing,
                "requests": requests,
            }))
            .unwrap_or_default()
        );
    } else {
        for path in &written {
            println!("{}", path.display());
        }
        for p in &plan.failures {
            eprintln!("FAILED {}: {}", p.attestation, p.failure);
        }
        for p in &plan.warnings {
            eprintln!("Warning: {}: {}", p.attestation, p.failure);
        }
    }
    let location = opened.name();
    if !plan.failures.is_empty() {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: {} attestation(s) failed verification; nothing was written",
                plan.failures.len()
            ),
        ));
    }
    if plan.files.is_empty() {
        return Err(Failure::new(
            exit::NO_ATTESTATIONS,
            format!("{location}: no verified SBOM attestation matches"),
        ));
    }
    if !missing.is_empty() {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: launch layers without a verified SBOM: {}; nothing was written",
                missing.join(", ")
            ),
        ));
    }
    eprintln!(
        "{location}: {} verified SBOM(s) written under {}{}",
        written.len(),
        root.join("sbom").join("launch").display(),
        requests
            .map(|r| format!(" ({r} request(s))"))
            .unwrap_or_default()
    );
    Ok(exit::OK)
}

fn doctor(args: DoctorArgs) -> Result<u8, Failure> {
    let text = if args.registry.contains('/') {
        args.registry.clone()
    } else {
        format!("{}/cnb-attest/doctor", args.registry)
    };
    let reference = ImageRef::parse(&text).map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let (client, runtime) = registry_client(&args.registry_args)?;
    let diagnosis = runtime
        .block_on(cnb_registry::doctor::diagnose(
            &client,
            &reference.repository,
        ))
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&diagnosis).unwrap_or_default()
        );
    } else {
        println!("{} (scratch repository)", diagnosis.repository);
        for check in &diagnosis.checks {
            let verdict = match check.supported {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            println!("  {:<42} {:<8} {}", check.name, verdict, check.evidence);
        }
        println!("signer path: {}", diagnosis.signer_path);
        println!("({} request(s))", client.stats().total());
    }
    Ok(exit::OK)
}

fn open(text: &str, registry: &RegistryFlags) -> Result<Opened, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, format!("cannot start the async runtime: {e}")))?;
    // `docker-archive:<path>[:<tag or image ID>]`, as skopeo names saved daemon images.
    if let Some(rest) = text.strip_prefix("docker-archive:") {
        let (path, selector) = match rest.split_once(':') {
            Some((path, selector)) if !path.is_empty() => (path, Some(selector)),
            _ => (rest, None),
        };
        let archive = DockerArchive::open(Path::new(path), &ArchiveLimits::default())
            .map_err(|e| Failure::new(exit::FAILED, e))?;
        let image = archive
            .select(selector)
            .map_err(|e| Failure::new(exit::FAILED, e))?;
        return Ok(Opened {
            source: ImageSource::Archive {
                archive: Box::new(archive),
                image: Box::new(image),
            },
            runtime,
            name: text.to_string(),
            location: None,
        });
    }
    match Target::parse(text).map_err(|e| Failure::new(exit::INVALID_ARGS, e))? {
        Target::Layout(location) => {
            let layout =
                OciLayout::open(&location.dir).map_err(|e| Failure::new(exit::FAILED, e))?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            let image = layout
                .read_image(&descriptor)
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            Ok(Opened {
                name: location.to_string(),
                source: ImageSource::Layout {
                    layout: Box::new(layout),
                    image: Box::new(image),
                },
                runtime,
                location: Some(location),
            })
        }
        Target::Registry(reference) => {
            let client = registry
                .client()
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            let image = runtime
                .block_on(client.read_image(&reference))
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            Ok(Opened {
                name: reference.to_string(),
                source: ImageSource::Registry {
                    client: Box::new(client),
                    reference,
                    image: Box::new(image),
                },
                runtime,
                location: None,
            })
        }
    }
}

fn password_source(file: Option<&Path>) -> PasswordSource {
    match file {
        Some(path) => PasswordSource::File(path.to_path_buf()),
        None => PasswordSource::default_env(),
    }
}

/// Loads `--key`, or the throw-away key pair in `dir` (created unencrypted-equivalent: cosign format
/// with an empty password, on first use).
fn load_key(args: &SignArgs) -> Result<SigningKey, Failure> {
    if let Some(path) = &args.key {
        return cnb_dsse::read_private_key(path, &password_source(args.password_file.as_deref()))
            .map_err(|e| Failure::new(exit::FAILED, e));
    }
    let dir = &args.throwaway_key_dir;
    let key_path = dir.join("cnb-attest-throwaway.key");
    let empty = PasswordSource::Value(String::new().into());
    if key_path.exists() {
        eprintln!(
            "note: no --key given; signing with the throw-away key {}",
            key_path.display()
        );
        return cnb_dsse::read_private_key(&key_path, &empty)
            .map_err(|e| Failure::new(exit::FAILED, e));
    }
    let key = SigningKey::generate().map_err(|e| Failure::new(exit::FAILED, e))?;
    let pem = key
        .to_encrypted_pem(b"")
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(exit::FAILED, format!("{}: {e}", dir.display())))?;
    let pub_path = dir.join("cnb-attest-throwaway.pub");
    write_new(&key_path, pem.as_bytes())?;
    write_new(&pub_path, key.verifying_key().to_pem().as_bytes())?;
    eprintln!(
        "note: no --key given; created the throw-away key pair {} / {} (empty password)",
        key_path.display(),
        pub_path.display()
    );
    Ok(key)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::new(exit::FAILED, format!("{}: {e}", path.display())))
}

fn sign(args: SignArgs) -> Result<u8, Failure> {
    let options = args
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let opened = open(&args.image, &args.registry)?;
    let image = opened.image()?;
    let (config, roots) = match (&args.config, &args.layers) {
        (Some(path), _) => {
            let config =
                cnb_attestation_config::load(path).map_err(|e| Failure::new(exit::FAILED, e))?;
            let mut dirs = args.allow_roots.clone();
            if dirs.is_empty() {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                dirs.push(parent.unwrap_or(Path::new(".")).to_path_buf());
            }
            let roots = AllowedRoots::new(&dirs).map_err(|e| Failure::new(exit::FAILED, e))?;
            (config, roots)
        }
        (None, Some(layers)) => {
            let group_default = layers.join("group.toml");
            let group = args
                .group
                .clone()
                .or_else(|| group_default.exists().then_some(group_default));
            let (reference, default_name) = match (&opened.source, &opened.location) {
                (ImageSource::Layout { layout, .. }, Some(location)) => {
                    let dir = std::fs::canonicalize(&location.dir).map_err(|e| {
                        Failure::new(exit::FAILED, format!("{}: {e}", location.dir.display()))
                    })?;
                    let ref_name = layout
                        .index()
                        .ok()
                        .and_then(|i| {
                            i.manifests
                                .into_iter()
                                .find(|d| d.digest == image.descriptor.digest)
                        })
                        .and_then(|d| d.annotation(REF_NAME).map(str::to_string));
                    (
                        format!("oci:{}@{}", dir.display(), image.descriptor.digest),
                        location.default_subject_name(ref_name.as_deref()),
                    )
                }
                (ImageSource::Registry { reference, .. }, _) => (
                    format!("{}@{}", reference.repository, image.descriptor.digest),
                    reference.repository.to_string(),
                ),
                _ => {
                    return Err(Failure::new(
                        exit::INVALID_ARGS,
                        "only images in a registry or an OCI layout can be signed",
                    ))
                }
            };
            let name = args.name.clone().unwrap_or(default_name);
            let input = GenerateInput {
                layers_dir: layers,
                group: group.as_deref(),
                reference: &reference,
                subject_name: &name,
                discovery: DiscoveryOptions {
                    include_build: args.include_build_sboms,
                    include_cache: args.include_cache_sboms,
                    ..DiscoveryOptions::default()
                },
            };
            let label = lifecycle_label(image).map_err(|e| Failure::new(exit::FAILED, e))?;
            let (config, _) = generate_config(&input, image.descriptor.digest.as_str(), label)
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            let roots = AllowedRoots::new(std::slice::from_ref(layers))
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            (config, roots)
        }
        (None, None) => {
            return Err(Failure::new(
                exit::INVALID_ARGS,
                "nothing to sign: give --layers <dir> or --config <signer.toml>",
            ))
        }
    };
    // Everything that can be checked without the key is checked before a throw-away key is made.
    if matches!(opened.source, ImageSource::Layout { .. }) {
        options
            .check_layout_target()
            .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    }
    let configured = config
        .image
        .digest()
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    if configured.to_string() != image.descriptor.digest.to_string() {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "the signer configuration is for image {configured}, but {} is {}",
                opened.name(),
                image.descriptor.digest
            ),
        ));
    }
    let key = load_key(&args)?;
    let report = match &opened.source {
        ImageSource::Layout { layout, .. } => {
            cnb_signing::sign_layout(layout, image, &config, &roots, &key, &options)
        }
        ImageSource::Archive { .. } => return Err(Failure::new(
            exit::INVALID_ARGS,
            "a saved daemon image cannot carry attestations; push it or save it as an OCI layout",
        )),
        ImageSource::Registry {
            reference, client, ..
        } => opened.runtime.block_on(cnb_signing::sign_registry(
            client,
            reference,
            &image.descriptor,
            Some(&image.config.diff_ids),
            &config,
            &roots,
            &key,
            &options,
            &AttachOptions::with_progress_on_terminal(),
        )),
    }
    .map_err(|e| Failure::new(exit::FAILED, e))?;
    let location = opened.name();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{location}: {} attestation referrer(s) stored, {} already present, {} blob(s) written (key {})",
            report.pushed,
            report.already_present,
            report.blobs_written,
            &report.key_fingerprint[..16]
        );
        for a in &report.attestations {
            println!(
                "  {:<15} {:<6} {:<27} {}{}",
                match a.status {
                    cnb_signing::Status::Pushed => "pushed",
                    cnb_signing::Status::AlreadyPresent => "already present",
                },
                a.format,
                a.predicate_type,
                a.buildpack.as_deref().unwrap_or("-"),
                a.layer
                    .as_deref()
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default()
            );
        }
        if let Some(requests) = report.requests {
            println!(
                "  {requests} registry request(s); referrers {}",
                if report.referrers_api == Some(true) {
                    "API".to_string()
                } else {
                    format!(
                        "tag-schema index ({} write(s))",
                        report.index_writes.unwrap_or(0)
                    )
                }
            );
        }
    }
    if !report.all_discoverable() {
        let missing = report
            .attestations
            .iter()
            .filter(|a| !a.discoverable)
            .count();
        return Err(Failure::new(
            exit::NOT_DISCOVERABLE,
            format!("{location}: {missing} attestation(s) were stored but are not listed where readers look"),
        ));
    }
    Ok(exit::OK)
}

fn short(subject: &str) -> String {
    match subject.split_once("@sha256:") {
        Some((name, hex)) => format!("{name}@sha256:{}", &hex[..hex.len().min(12)]),
        None => subject.to_string(),
    }
}

fn print_listed(listed: &[Listed]) {
    println!(
        "{:<7} {:<27} {:<36} {:<16} {:>9}  SUBJECTS",
        "FORMAT", "PREDICATE TYPE", "BUILDPACK", "LAYER", "SIZE"
    );
    for l in listed {
        println!(
            "{:<7} {:<27} {:<36} {:<16} {:>9}  {}",
            l.format.as_deref().unwrap_or("other"),
            l.predicate_type.as_deref().unwrap_or("-"),
            l.buildpack.as_deref().unwrap_or("-"),
            l.layer.as_deref().unwrap_or("-"),
            l.size,
            l.subjects
                .iter()
                .map(|s| short(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(problem) = &l.problem {
            println!("        ! {problem}");
        }
    }
}

fn ls(args: LsArgs) -> Result<u8, Failure> {
    let opened = open(&args.image, &args.registry)?;
    let listed = inspect::list(&opened.fetch()?);
    let (location, image) = (opened.name(), opened.image()?);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
    } else {
        let signatures = listed
            .iter()
            .filter(|l| l.predicate_type.as_deref() == Some(cnb_signing::COSIGN_SIGN_V1))
            .count();
        // Referrers in no format this tool reads (another tool's artifacts) are not attestations.
        let others = listed.iter().filter(|l| l.format.is_none()).count();
        let others = if others > 0 {
            format!(", {others} other referrer(s)")
        } else {
            String::new()
        };
        println!(
            "{location}@{}: {} attestation(s), {signatures} image signature(s){others}",
            image.descriptor.digest,
            listed
                .iter()
                .filter(|l| l.format.is_some()
                    && l.predicate_type.as_deref() != Some(cnb_signing::COSIGN_SIGN_V1))
                .count()
        );
        print_listed(&listed);
    }
    Ok(if listed.is_empty() {
        exit::NO_ATTESTATIONS
    } else {
        exit::OK
    })
}

fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let key = cnb_dsse::read_public_key(&args.key).map_err(|e| Failure::new(exit::FAILED, e))?;
    let opened = open(&args.image, &args.registry)?;
    let verdicts = inspect::verify(opened.image()?, &opened.fetch()?, &key);
    let location = opened.name();
    let failed = verdicts.iter().filter(|v| !v.ok()).count();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        );
    } else {
        for v in &verdicts {
            match &v.failure {
                None => println!("verified  {}", v.name()),
                Some(reason) => println!("FAILED    {}: {reason}", v.name()),
            }
        }
    }
    if verdicts.is_empty() {
        return Err(Failure::new(
            exit::NO_ATTESTATIONS,
            format!("{location}: no attestations to verify"),
        ));
    }
    if failed > 0 {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: {failed} of {} attestation(s) failed verification with key {}",
                verdicts.len(),
                &key.fingerprint()[..16]
            ),
        ));
    }
    eprintln!(
        "{location}: all {} attestation(s) verified with key {}",
        verdicts.len(),
        &key.fingerprint()[..16]
    );
    Ok(exit::OK)
}

fn generate_key_pair(args: KeyPairArgs) -> Result<u8, Failure> {
    let password = password_source(args.password_file.as_deref())
        .resolve()
        .map_err(|e| {
            Failure::new(exit::INVALID_ARGS, e)
                .hint("set COSIGN_PASSWORD (it may be empty) or pass --password-file")
        })?;
    let files = cnb_dsse::generate_key_pair(&args.output_dir, &password)
        .map_err(|e| Failure::new(exit::FAILED, e))?;
    println!("Private key written to {}", files.private_key.display());
    println!("Public key written to {}", files.public_key.display());
    Ok(exit::OK)
}
