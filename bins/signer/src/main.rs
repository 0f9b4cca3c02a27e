//! `signer`: the RFC's new lifecycle phase. Reads the signer configuration the exporter wrote,
//! signs every attestation, attaches them to the image, and writes a report.
//!
//! Target: the image the configuration's `[image] reference` names. A registry reference
//! (`<registry>/<repo>@sha256:<hex>`) is attached in that repository and in every other repository
//! `report.toml` lists a tag in (same digest); `oci:<dir>@sha256:<hex>` (or `-layout-image`) is an
//! OCI layout. One call to `cnb_attest::sign::sign_configured`. Exit codes: `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_attest::keys::KeySource;
use cnb_attest::sign::{sign_configured, write_signer_report, ConfiguredSignRequest};
use cnb_attest::Error;
use cnb_phase::flags::{
    password_source, KeylessSignFlags, RegistryFlags, SignFlags, SigstoreTrustFlags,
};
use cnb_phase::{exit, Failure};

/// Sign a build's attestations and attach them to the image.
#[derive(Parser)]
#[command(name = "signer", version, about)]
struct Cli {
    /// The layers directory (an allowed root for predicate `uri`s).
    #[arg(long, env = "CNB_LAYERS_DIR", default_value = "/layers")]
    layers: PathBuf,
    /// More directories predicate `uri`s may point into (e.g. where the platform put a run-image
    /// SBOM); repeatable. The platform directory as a whole is not allowed by default: it holds
    /// service-binding secrets (`<platform>/bindings`), which must never end up in an attestation.
    #[arg(long = "allow-root")]
    allow_roots: Vec<PathBuf>,
    /// The signer configuration (default `<layers>/signer.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The lifecycle's report.toml: every repository it lists a tag in gets the attestations
    /// (default `<layers>/report.toml`, when present).
    #[arg(long, env = "CNB_REPORT_PATH")]
    report: Option<PathBuf>,
    /// The image's OCI layout, overriding the configuration's reference: `oci:<dir>`.
    #[arg(long)]
    layout_image: Option<String>,
    /// Private key: cosign encrypted key or PKCS#8 PEM. Not with -keyless.
    #[arg(
        long,
        env = "CNB_SIGNING_KEY",
        required_unless_present = "keyless",
        conflicts_with = "keyless"
    )]
    key: Option<PathBuf>,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long, env = "CNB_SIGNING_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    signing: SignFlags,
    #[command(flatten)]
    keyless: KeylessSignFlags,
    #[command(flatten)]
    sigstore: SigstoreTrustFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Where to write the signer report (default `<layers>/signer-report.toml`).
    #[arg(long)]
    signer_report: Option<PathBuf>,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

/// The signer's exit code for a library error.
fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::InvalidRequest(_) => exit::INVALID_ARGS,
        Error::Config(_) | Error::ConfigMismatch(_) => exit::SIGN_BAD_CONFIG,
        Error::Key(_) => exit::SIGN_BAD_KEY,
        Error::Keyless(_) | Error::KeylessUntrusted(_) => exit::SIGN_KEYLESS,
        Error::BadImage(_) | Error::ImageNotFound(_) => exit::SIGN_BAD_IMAGE,
        Error::Registry(_) | Error::Runtime(_) => exit::FAILED,
        _ => exit::SIGN_FAILED,
    };
    Failure::new(code, e)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let options = cli
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let keyless = cli
        .keyless
        .source(&cli.sigstore)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let key = match (keyless, cli.key) {
        (Some(keyless), _) => KeySource::Keyless(Box::new(keyless)),
        (None, Some(path)) => KeySource::File {
            path,
            password: password_source(cli.password_file.as_deref()),
        },
        (None, None) => {
            return Err(Failure::new(
                exit::INVALID_ARGS,
                "no signing key: give -key (or CNB_SIGNING_KEY), or -keyless",
            ))
        }
    };
    let request = ConfiguredSignRequest {
        config: cli
            .config
            .clone()
            .unwrap_or_else(|| cli.layers.join("signer.toml")),
        layers: cli.layers.clone(),
        allow_roots: cli.allow_roots,
        report: cli.report,
        layout_image: cli.layout_image,
        key,
        options,
        registry: cli.registry.options(),
        progress: true,
    };
    let reports = cnb_attest::block_on(sign_configured(&request))
        .and_then(|r| r)
        .map_err(failure)?;
    let report_path = cli
        .signer_report
        .unwrap_or_else(|| cli.layers.join("signer-report.toml"));
    write_signer_report(&report_path, &reports).map_err(|e| Failure::new(exit::SIGN_FAILED, e))?;
    let mut undiscoverable = 0;
    let mut reasons: Vec<String> = Vec::new();
    for report in &reports {
        println!(
            "Attached {} attestation referrer(s) to {}@{} ({} already present, {} blob(s) uploaded{})",
            report.pushed,
            report.image,
            report.image_digest,
            report.already_present,
            report.blobs_written,
            report
                .requests
                .map(|r| format!(", {r} request(s)"))
                .unwrap_or_default()
        );
        undiscoverable += report
            .attestations
            .iter()
            .filter(|a| !a.discoverable)
            .count();
        for reason in report.not_listed() {
            let reason = format!(
                "{}: {}",
                report.image,
                cnb_phase::shown(&reason.to_string())
            );
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    println!("Report: {}", report_path.display());
    if undiscoverable > 0 {
        return Err(Failure::new(
            exit::SIGN_NOT_DISCOVERABLE,
            format!(
                "{undiscoverable} attestation(s) were pushed but are not listed where readers look \
                 (see {}){}",
                report_path.display(),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", reasons.join("; "))
                }
            ),
        )
        .hint(
            "readers find attestations through the registry's Referrers API or its sha256-<hex> \
             tag; check that the registry (and any proxy in front of it) serves both as written",
        ));
    }
    Ok(exit::OK)
}
