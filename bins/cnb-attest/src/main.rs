//! `cnb-attest`: sign, verify, list and download the SBOM attestations of a buildpacks-built image.
//!
//! Images: `oci:<dir>[:<tag>|@sha256:<hex>]` or a layout directory, a registry reference, or
//! `docker-archive:<file>[:<tag>]`. Every command is one call into the `cnb_attest` library; this
//! binary parses flags, renders the result and maps typed errors to the exit codes in
//! `docs/exit-codes.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cnb_phase::flags::{password_source, RegistryFlags};
use cnb_phase::{exit, Failure};

mod bundle;
mod download;
mod inspect;
mod rebase;
mod sign;
mod strip;

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
    Sign(Box<sign::SignArgs>),
    /// Verify every attestation of an image with a public key.
    Verify(Box<inspect::VerifyArgs>),
    /// List the attestations of an image.
    Ls(inspect::LsArgs),
    /// Write a cosign-compatible key pair (cosign.key, cosign.pub).
    GenerateKeyPair(KeyPairArgs),
    /// Find out what a registry supports (Referrers API, OCI-Subject, If-Match, DELETE, sizes).
    Doctor(DoctorArgs),
    /// Verify an image's SBOM attestations and write the SBOMs as `pack sbom download` does:
    /// `<out>/layers/sbom/launch/<buildpack>/[<layer>/]sbom.<ext>`.
    Download(Box<download::DownloadArgs>),
    /// Rewrite an image without its SBOM layer (the exporter's -omit-sbom): the label's `sbom`
    /// key, the layer's diffID and history entry go; the tags (and report.toml) move to the new
    /// manifest. Only the new config is uploaded.
    StripSbomLayer(strip::StripArgs),
    /// Carry an image's verified attestations over to its rebase: re-issue them for the new
    /// digest, drop those about the old run image, add the platform's, sign the new image.
    Rebase(Box<rebase::RebaseArgs>),
    /// Write an image, all its referrers and the keys to verify them offline into an OCI layout
    /// bundle (a directory or a .tar), for an air-gapped registry.
    Export(Box<bundle::ExportArgs>),
    /// Push a bundle `export` wrote into a registry, every digest kept.
    Import(Box<bundle::ImportArgs>),
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
struct KeyPairArgs {
    /// Directory to write cosign.key and cosign.pub into.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// File holding the password (default: COSIGN_PASSWORD, which must be set; it may be empty).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Print the paths written as JSON (an error too).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    cnb_phase::main(|cli: Cli| match cli.command {
        Command::Sign(args) => sign::run(*args),
        Command::Verify(args) => inspect::verify(*args),
        Command::Ls(args) => inspect::ls(args),
        Command::GenerateKeyPair(args) => generate_key_pair(args),
        Command::Doctor(args) => doctor(args),
        Command::Download(args) => download::run(*args),
        Command::StripSbomLayer(args) => strip::run(args),
        Command::Rebase(args) => rebase::run(*args),
        Command::Export(args) => bundle::export(*args),
        Command::Import(args) => bundle::import(*args),
    })
}

/// The exit code for a library error: invalid requests are usage errors, the rest failures.
fn failure(e: cnb_attest::Error) -> Failure {
    if let Some(code) = cnb_phase::interrupt::received() {
        return Failure::new(code, e);
    }
    let code = match e {
        cnb_attest::Error::InvalidRequest(_)
        | cnb_attest::Error::AmbiguousPlatform { .. }
        | cnb_attest::Error::NoSuchPlatform { .. } => exit::INVALID_ARGS,
        cnb_attest::Error::Keyless(_) | cnb_attest::Error::KeylessUntrusted(_) => {
            exit::KEYLESS_FAILED
        }
        _ => exit::FAILED,
    };
    Failure::new(code, e)
}

/// Runs one command's async work on the calling thread.
fn run<T>(
    future: impl std::future::Future<Output = Result<T, cnb_attest::Error>>,
) -> Result<T, Failure> {
    cnb_attest::block_on(future)
        .and_then(|r| r)
        .map_err(failure)
}

/// Pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn doctor(args: DoctorArgs) -> Result<u8, Failure> {
    let options = args.registry_args.options();
    let (diagnosis, requests) = run(cnb_attest::registry::doctor(&args.registry, &options))?;
    if args.json {
        print_json(&diagnosis);
        return Ok(exit::OK);
    }
    println!("{} (scratch repository)", diagnosis.repository);
    for check in &diagnosis.checks {
        let verdict = match check.supported {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        // The evidence quotes the registry's answers: escaped.
        println!(
            "  {:<42} {:<8} {}",
            check.name,
            verdict,
            cnb_phase::shown(&check.evidence.to_string())
        );
    }
    println!("signer path: {}", diagnosis.signer_path);
    println!("({requests} request(s))");
    Ok(exit::OK)
}

fn generate_key_pair(args: KeyPairArgs) -> Result<u8, Failure> {
    let password = password_source(args.password_file.as_deref())
        .resolve()
        .map_err(|e| {
            Failure::new(exit::INVALID_ARGS, e)
                .hint("set COSIGN_PASSWORD (it may be empty) or pass --password-file")
        })?;
    let files =
        cnb_attest::keys::generate_key_pair(&args.output_dir, &password).map_err(failure)?;
    if args.json {
        print_json(&serde_json::json!({
            "private-key": files.private_key,
            "public-key": files.public_key,
        }));
    } else {
        println!("Private key written to {}", files.private_key.display());
        println!("Public key written to {}", files.public_key.display());
    }
    Ok(exit::OK)
}
