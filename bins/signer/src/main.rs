//! `signer`: the RFC's new lifecycle phase. Reads the signer configuration the exporter wrote,
//! signs every attestation, attaches them to the image, and writes a report.
//!
//! Target: the image the configuration's `[image] reference` names. A registry reference
//! (`<registry>/<repo>@sha256:<hex>`) is attached in that repository and in every other repository
//! `report.toml` lists a tag in (same digest); `oci:<dir>@sha256:<hex>` (or `-layout-image`) is an
//! OCI layout. Exit codes: `docs/exit-codes.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cnb_attestation_config::AllowedRoots;
use cnb_dsse::PasswordSource;
use cnb_phase::{exit, Failure};
use cnb_referrers::layout::OciLayout;
use cnb_registry::{AttachOptions, ImageRef};
use cnb_sbom_discovery::platform::Report;
use cnb_signing::cli::{RegistryFlags, SignFlags};
use cnb_signing::{LayoutImage, SignReport, Target};

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
    /// Private key: cosign encrypted key or PKCS#8 PEM.
    #[arg(long, env = "CNB_SIGNING_KEY")]
    key: PathBuf,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long, env = "CNB_SIGNING_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    signing: SignFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Where to write the signer report (default `<layers>/signer-report.toml`).
    #[arg(long)]
    signer_report: Option<PathBuf>,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let options = cli
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;

    let bad_config = |e: &dyn std::fmt::Display| Failure::new(exit::SIGN_BAD_CONFIG, e);
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| cli.layers.join("signer.toml"));
    let config = cnb_attestation_config::load(&config_path).map_err(|e| bad_config(&e))?;
    let mut root_dirs = vec![cli.layers.clone()];
    root_dirs.extend(cli.allow_roots.iter().cloned());
    let roots = AllowedRoots::new(&root_dirs).map_err(|e| bad_config(&e))?;

    let password = match &cli.password_file {
        Some(path) => PasswordSource::File(path.clone()),
        None => PasswordSource::default_env(),
    };
    let key = cnb_dsse::read_private_key(&cli.key, &password)
        .map_err(|e| Failure::new(exit::SIGN_BAD_KEY, e))?;

    let bad_image = |e: &dyn std::fmt::Display| Failure::new(exit::SIGN_BAD_IMAGE, e);
    let target = match &cli.layout_image {
        Some(text) => Target::Layout(
            LayoutImage::parse(text).map_err(|e| Failure::new(exit::INVALID_ARGS, e))?,
        ),
        None => Target::parse(&config.image.reference).map_err(|e| bad_config(&e))?,
    };
    let failed = |e: cnb_signing::Error| {
        let code = match e {
            cnb_signing::Error::Config(_) => exit::SIGN_BAD_CONFIG,
            cnb_signing::Error::BadImage(_) => exit::SIGN_BAD_IMAGE,
            _ => exit::SIGN_FAILED,
        };
        Failure::new(code, e)
    };

    let reports: Vec<SignReport> = match target {
        Target::Layout(location) => {
            let layout = OciLayout::open(&location.dir).map_err(|e| bad_image(&e))?;
            let descriptor = layout
                .resolve_image(location.selector.as_deref())
                .map_err(|e| bad_image(&e))?;
            let image = layout.read_image(&descriptor).map_err(|e| bad_image(&e))?;
            vec![
                cnb_signing::sign_layout(&layout, &image, &config, &roots, &key, &options)
                    .map_err(failed)?,
            ]
        }
        Target::Registry(reference) => {
            let references = repositories(&cli, &config.image.reference, &reference)?;
            let client = cli
                .registry
                .client()
                .map_err(|e| Failure::new(exit::FAILED, e))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::new(exit::FAILED, format!("async runtime: {e}")))?;
            let mut reports = Vec::new();
            for reference in references {
                let report = runtime.block_on(async {
                    let subject = client
                        .subject(&reference)
                        .await
                        .map_err(|e| bad_image(&e))?;
                    cnb_signing::sign_registry(
                        &client,
                        &reference,
                        &subject,
                        // The exporter generated the layer subjects from the image's own label;
                        // the signer reads only the manifest, to keep the request budget.
                        None,
                        &config,
                        &roots,
                        &key,
                        &options,
                        &AttachOptions::with_progress_on_terminal(),
                    )
                    .await
                    .map_err(failed)
                })?;
                reports.push(report);
            }
            reports
        }
    };

    let report_path = cli
        .signer_report
        .clone()
        .unwrap_or_else(|| cli.layers.join("signer-report.toml"));
    #[derive(serde::Serialize)]
    struct Reports<'a> {
        image: &'a [SignReport],
    }
    let text = toml::to_string(&Reports { image: &reports })
        .map_err(|e| Failure::new(exit::SIGN_FAILED, e))?;
    write_report(&report_path, &text)?;
    let mut undiscoverable = 0;
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
    }
    println!("Report: {}", report_path.display());
    if undiscoverable > 0 {
        return Err(Failure::new(
            exit::SIGN_NOT_DISCOVERABLE,
            format!(
                "{undiscoverable} attestation(s) were pushed but are not listed where readers look"
            ),
        ));
    }
    Ok(exit::OK)
}

/// The registry images to attach to: the configuration's, plus one per other repository that
/// `report.toml` lists a tag in, all at the configuration's digest.
fn repositories(
    cli: &Cli,
    configured: &str,
    reference: &ImageRef,
) -> Result<Vec<ImageRef>, Failure> {
    let digest = reference.digest.clone().ok_or_else(|| {
        Failure::new(
            exit::SIGN_BAD_CONFIG,
            format!("[image] reference `{configured}` is not pinned by digest"),
        )
    })?;
    let mut seen = BTreeSet::from([reference.repository.to_string()]);
    let mut out = vec![reference.clone()];
    let report_path = cli
        .report
        .clone()
        .unwrap_or_else(|| cli.layers.join("report.toml"));
    if cli.report.is_none() && !report_path.is_file() {
        return Ok(out);
    }
    let report =
        Report::from_path(&report_path).map_err(|e| Failure::new(exit::SIGN_BAD_IMAGE, e))?;
    if let Some(reported) = &report.image.digest {
        if *reported != digest {
            return Err(Failure::new(
                exit::SIGN_BAD_IMAGE,
                format!(
                    "{} records digest {reported}, but the signer configuration is for {digest}",
                    report_path.display()
                ),
            ));
        }
    }
    for tag in &report.image.tags {
        let tagged = ImageRef::parse(tag).map_err(|e| Failure::new(exit::SIGN_BAD_IMAGE, e))?;
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

fn write_report(path: &std::path::Path, text: &str) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".signer-report-{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::new(exit::SIGN_FAILED, format!("{}: {e}", path.display()))
        })
}
