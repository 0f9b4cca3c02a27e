//! `rebaser`: the attestation half of the lifecycle's rebase. After the lifecycle's rebaser has
//! put an app image on a new run image (same app, buildpack and launcher layers, a new digest),
//! this phase verifies the previous image's attestations, re-issues every one that still describes
//! a layer of the rebased image for its new digest (lineage annotations `dev.cnb-attest.replaces`
//! and `dev.cnb-attest.previous-image`), drops those about the old run image, adds the platform's
//! (`-config`), and signs the rebased image. One call to `cnb_attest::rebase::rebase`. Exit codes:
//! `docs/exit-codes.md`.

use std::process::ExitCode;

use clap::Parser;
use cnb_attest::Error;
use cnb_phase::flags::{RegistryFlags, SignFlags};
use cnb_phase::rebase::{finish, rebase, RebaseFlags};
use cnb_phase::{exit, Failure};

/// Carry an image's signed attestations over to its rebase.
#[derive(Parser)]
#[command(name = "rebaser", version, about)]
struct Cli {
    #[command(flatten)]
    rebase: RebaseFlags,
    #[command(flatten)]
    signing: SignFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the report as JSON (carried, dropped with reasons, added, pruned).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    cnb_phase::phase_main(run)
}

/// The rebaser's exit code for a library error.
fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::InvalidRequest(_) => exit::INVALID_ARGS,
        Error::Rebase(cnb_attest::rebase::Refusal::NothingVerified { .. }) => {
            exit::REBASE_NOTHING_VERIFIED
        }
        Error::Rebase(_) => exit::REBASE_NOT_A_REBASE,
        Error::Config(_) | Error::ConfigMismatch(_) => exit::REBASE_BAD_CONFIG,
        Error::Key(_) => exit::REBASE_BAD_KEY,
        // The keyless signer's identity token, Fulcio, Rekor: the rebaser's signing credential.
        Error::Keyless(_) | Error::KeylessUntrusted(_) => exit::REBASE_BAD_KEY,
        Error::BadImage(_)
        | Error::ImageNotFound(_)
        | Error::NotBuildpacksImage(_)
        // An image index of several platforms: rebasing indexes is not supported.
        | Error::AmbiguousPlatform { .. }
        | Error::NoSuchPlatform { .. }
        | Error::Read { .. } => exit::REBASE_BAD_IMAGE,
        _ => exit::REBASE_FAILED,
    };
    Failure::new(code, e)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let options = cli
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let report = rebase(&cli.rebase, options, &cli.registry.open_options()).map_err(failure)?;
    finish(&report, cli.json, exit::REBASE_FAILED, exit::REBASE_FAILED)
}
