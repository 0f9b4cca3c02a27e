//! `signer`: the RFC's new lifecycle phase. Reads the signer configuration the exporter wrote,
//! signs every attestation and attaches them to the image, and writes a report.
//!
//! Target: the image named by the configuration's `[image] reference`, which for now must be an OCI
//! layout (`oci:<dir>@sha256:<hex>`, as the exporter writes for `-layout-image`); `-layout-image`
//! points at a layout explicitly. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_attestation_config::AllowedRoots;
use cnb_dsse::PasswordSource;
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::OciLayout;
use cnb_signing::{LayoutImage, SignOptions};

/// Sign a build's attestations and attach them to the image.
#[derive(Parser)]
#[command(name = "signer", version, about)]
struct Cli {
    /// The layers directory (an allowed root for predicate `uri`s).
    #[arg(long, env = "CNB_LAYERS_DIR", default_value = "/layers")]
    layers: PathBuf,
    /// The platform directory (an allowed root for predicate `uri`s).
    #[arg(long, env = "CNB_PLATFORM_DIR", default_value = "/platform")]
    platform: PathBuf,
    /// The signer configuration (default `<layers>/signer.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The image's OCI layout, overriding the configuration's reference: `oci:<dir>`.
    #[arg(long)]
    layout_image: Option<String>,
    /// Private key: cosign encrypted key or PKCS#8 PEM.
    #[arg(long, env = "CNB_SIGNING_KEY")]
    key: PathBuf,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long, env = "CNB_SIGNING_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Storage format(s): bundle (cosign 3), dsse (the RFC's). Repeat or comma-separate.
    #[arg(long, value_delimiter = ',', default_value = "bundle")]
    format: Vec<String>,
    /// in-toto Statement version: v1 or v0.1.
    #[arg(long, default_value = "v1")]
    statement_version: String,
    /// Where to write the signer report (default `<layers>/signer-report.toml`).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    cnb_phase::main(|cli: Cli| {
        run(cli)
            .map(|()| exit::OK)
            .map_err(|(code, message)| Failure::new(code, message))
    })
}

fn run(cli: Cli) -> Result<(), (u8, String)> {
    let invalid = |e: &dyn std::fmt::Display| (exit::INVALID_ARGS, e.to_string());
    let options = SignOptions::from_flags(
        &cli.format,
        &cli.statement_version,
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
    )
    .map_err(|e| invalid(&e))?;

    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| cli.layers.join("signer.toml"));
    let bad_config = |e: &dyn std::fmt::Display| (exit::SIGN_BAD_CONFIG, e.to_string());
    let config = cnb_attestation_config::load(&config_path).map_err(|e| bad_config(&e))?;
    let mut root_dirs = vec![cli.layers.clone()];
    if cli.platform.is_dir() {
        root_dirs.push(cli.platform.clone());
    }
    let roots = AllowedRoots::new(&root_dirs).map_err(|e| bad_config(&e))?;

    let bad_image = |e: &dyn std::fmt::Display| (exit::SIGN_BAD_IMAGE, e.to_string());
    let target = match &cli.layout_image {
        Some(text) => LayoutImage::parse(text).map_err(|e| invalid(&e))?,
        None if config.image.reference.starts_with("oci:") => {
            LayoutImage::parse(&config.image.reference).map_err(|e| bad_config(&e))?
        }
        None => {
            return Err(bad_image(&format!(
            "[image] reference `{}` is a registry image; this signer writes to OCI layouts only \
                 (oci:<dir>@sha256:<hex>) until the registry store lands",
            config.image.reference
        )))
        }
    };
    let layout = OciLayout::open(&target.dir).map_err(|e| bad_image(&e))?;
    let descriptor = layout
        .resolve_image(target.selector.as_deref())
        .map_err(|e| bad_image(&e))?;
    let image = layout.read_image(&descriptor).map_err(|e| bad_image(&e))?;

    let password = match &cli.password_file {
        Some(path) => PasswordSource::File(path.clone()),
        None => PasswordSource::default_env(),
    };
    let key = cnb_dsse::read_private_key(&cli.key, &password)
        .map_err(|e| (exit::SIGN_BAD_KEY, e.to_string()))?;

    let report = cnb_signing::sign_layout(&layout, &image, &config, &roots, &key, &options)
        .map_err(|e| {
            let code = match e {
                cnb_signing::Error::Config(_) => exit::SIGN_BAD_CONFIG,
                cnb_signing::Error::BadImage(_) => exit::SIGN_BAD_IMAGE,
                _ => exit::SIGN_FAILED,
            };
            (code, e.to_string())
        })?;
    let report_path = cli
        .report
        .clone()
        .unwrap_or_else(|| cli.layers.join("signer-report.toml"));
    let text = toml::to_string(&report).map_err(|e| (exit::SIGN_FAILED, e.to_string()))?;
    std::fs::write(&report_path, text)
        .map_err(|e| (exit::SIGN_FAILED, format!("{}: {e}", report_path.display())))?;
    println!(
        "Attached {} attestation referrer(s) to {} ({} already present, {} blob(s) written); report: {}",
        report.pushed,
        image.descriptor.digest,
        report.already_present,
        report.blobs_written,
        report_path.display()
    );
    Ok(())
}
