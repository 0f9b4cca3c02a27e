//! `cnb-attest sign`.

use std::path::PathBuf;

use clap::Args;
use cnb_attest::keys::KeySource;
use cnb_attest::sign::{
    LayersInput, PlatformsSignRequest, SignInput, SignRequest, SignedPlatforms,
};
use cnb_attest::{Image, Status};
use cnb_phase::flags::{
    password_source, KeylessSignFlags, PlatformFlags, RegistryFlags, SignFlags, SigstoreTrustFlags,
};
use cnb_phase::{exit, Failure};

use crate::{print_json, run as block_on};

#[derive(Args)]
pub(crate) struct SignArgs {
    /// The image: a registry reference, `oci:<dir>[:<tag>|@sha256:<hex>]` or a layout directory.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The build's layers directory: its SBOMs are discovered and attested. For an image index:
    /// `<os/arch[/variant]>=<dir>` per platform (repeat), or one directory holding a layers
    /// directory per platform named `os-arch[-variant]` (`linux-amd64/`, `linux-arm64/`,
    /// `linux-arm-v7/`).
    #[arg(
        long,
        env = "CNB_LAYERS_DIR",
        conflicts_with = "config",
        value_name = "[PLATFORM=]DIR"
    )]
    layers: Vec<String>,
    #[command(flatten)]
    platform: PlatformFlags,
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
    /// Private key: cosign encrypted key or PKCS#8 PEM. Without it (and without --keyless) a
    /// throw-away key is used.
    #[arg(long, conflicts_with = "keyless")]
    key: Option<PathBuf>,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Sign with the throw-away key pair (empty password; nobody can verify what it signs
    /// later): implicit for OCI layouts without --key, required for registry images.
    #[arg(long, conflicts_with_all = ["key", "keyless"])]
    throwaway_key: bool,
    /// Where the throw-away key pair is kept (created on first use, reused afterwards).
    #[arg(long, default_value = ".")]
    throwaway_key_dir: PathBuf,
    #[command(flatten)]
    signing: SignFlags,
    #[command(flatten)]
    keyless: KeylessSignFlags,
    #[command(flatten)]
    sigstore: SigstoreTrustFlags,
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

pub(crate) fn run(args: SignArgs) -> Result<u8, Failure> {
    let options = args
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let layers = LayersInput {
        dir: PathBuf::new(),
        group: args.group,
        subject_name: args.name,
        include_build: args.include_build_sboms,
        include_cache: args.include_cache_sboms,
    };
    let input = match (args.config, args.layers.is_empty()) {
        (Some(path), _) => Some(SignInput::Config {
            path,
            allow_roots: args.allow_roots,
        }),
        (None, false) => None,
        (None, true) => {
            return Err(Failure::new(
                exit::INVALID_ARGS,
                "nothing to sign: give --layers <dir> or --config <signer.toml>",
            ))
        }
    };
    // `<os/arch[/variant]>=<dir>`, or a directory (whose name may hold `=`: a prefix that is a
    // path, `/data/run=3/layers` or `./a=b`, is not taken for a platform).
    let layers: Vec<(Option<cnb_attest::PlatformSpec>, LayersInput)> = args
        .layers
        .iter()
        .map(|text| {
            let (platform, dir) = match text.split_once('=') {
                Some((p, dir)) if p.contains('/') && !p.starts_with(['/', '.', '~']) => (
                    Some(
                        cnb_phase::flags::platform(p)
                            .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?,
                    ),
                    dir,
                ),
                _ => (None, text.as_str()),
            };
            Ok((
                platform,
                LayersInput {
                    dir: PathBuf::from(dir),
                    ..layers.clone()
                },
            ))
        })
        .collect::<Result<_, Failure>>()?;
    let keyless = args
        .keyless
        .source(&args.sigstore)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let key = match (keyless, args.key) {
        (Some(keyless), _) => KeySource::Keyless(Box::new(keyless)),
        (None, Some(path)) => KeySource::File {
            path,
            password: password_source(args.password_file.as_deref()),
        },
        (None, None) => KeySource::Throwaway {
            dir: args.throwaway_key_dir,
            requested: args.throwaway_key,
        },
    };
    let open = args.registry.open_options();
    let signed = match input {
        Some(input) => {
            let request = SignRequest {
                input,
                key,
                options,
                progress: true,
            };
            let open = cnb_attest::OpenOptions {
                platform: match args.platform.platforms.as_slice() {
                    [one] => Some(one.clone()),
                    [] => None,
                    _ => {
                        return Err(Failure::new(
                            exit::INVALID_ARGS,
                            "--config signs one manifest: give at most one --platform",
                        ))
                    }
                },
                ..open
            };
            block_on(async {
                let image = Image::open(&args.image, &open).await?;
                let signed = cnb_attest::sign::sign(&image, &request).await?;
                Ok(SignedPlatforms::single(&image, signed))
            })?
        }
        None => {
            let request = PlatformsSignRequest {
                layers,
                platforms: args.platform.platforms.clone(),
                key,
                options,
                progress: true,
            };
            block_on(cnb_attest::sign::sign_platforms(
                &args.image,
                &open,
                &request,
            ))?
        }
    };
    match &signed.throwaway_key {
        Some(key) if key.created => eprintln!(
            "note: no --key given; created the throw-away key pair {} / {} (empty password)",
            key.private_key.display(),
            key.public_key.display()
        ),
        Some(key) => eprintln!(
            "note: no --key given; signing with the throw-away key {}",
            key.private_key.display()
        ),
        None => {}
    }
    if args.json {
        if signed.per_platform() {
            print_json(&signed);
        } else {
            print_json(&signed.platforms[0].report);
        }
    } else {
        for p in &signed.platforms {
            if signed.per_platform() {
                println!(
                    "== platform {} {} ==",
                    p.platform
                        .as_ref()
                        .map_or_else(|| "(none declared)".to_string(), |p| p.to_string()),
                    p.report.image_digest
                );
            }
            print_report(&p.image, &p.report);
        }
        if let Some(report) = &signed.index_signature {
            println!("== image index {} ==", report.image_digest);
            print_report(&report.image, report);
        }
    }
    let names = signed
        .platforms
        .iter()
        .map(|p| p.image.as_str())
        .chain(signed.index_signature.iter().map(|r| r.image.as_str()));
    for (location, report) in names.zip(signed.reports()) {
        if !report.all_discoverable() {
            let missing = report
                .attestations
                .iter()
                .filter(|a| !a.discoverable)
                .count();
            return Err(Failure::new(
                exit::NOT_DISCOVERABLE,
                format!(
                    "{location}: {missing} attestation(s) were stored but are not listed where readers look: {}",
                    why_not_listed(report)
                ),
            )
            .hint(NOT_LISTED_HINT)
            .already_printed(args.json));
        }
    }
    Ok(exit::OK)
}

fn print_report(location: &str, report: &cnb_attest::SignReport) {
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
                Status::Pushed => "pushed",
                Status::AlreadyPresent => "already present",
            },
            a.format,
            cnb_phase::shown(&a.predicate_type.to_string()),
            a.buildpack
                .as_deref()
                .map_or_else(|| "-".into(), cnb_phase::shown),
            a.layer
                .as_deref()
                .map(|l| format!(":{}", cnb_phase::shown(l)))
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

/// What to do about attestations that were stored but are not listed.
pub(crate) const NOT_LISTED_HINT: &str =
    "readers find attestations through the registry's Referrers \
API or its sha256-<hex> tag; check that the registry (and any proxy in front of it) serves both as \
written; `cnb-attest doctor <registry>` shows what it supports";

/// The report's reasons for attestations not being listed, escaped, `; `-separated.
fn why_not_listed(report: &cnb_attest::SignReport) -> String {
    let reasons: Vec<String> = report
        .not_listed()
        .iter()
        .map(|r| cnb_phase::shown(&r.to_string()))
        .collect();
    if reasons.is_empty() {
        "not found where readers look when read back".into()
    } else {
        reasons.join("; ")
    }
}
