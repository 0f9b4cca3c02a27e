//! `cnb-attest rebase`.

use clap::Args;
use cnb_attest::rebase::Refusal;
use cnb_attest::Error;
use cnb_phase::flags::{RegistryFlags, SignFlags};
use cnb_phase::rebase::{finish, rebase, RebaseFlags};
use cnb_phase::{exit, Failure};

#[derive(Args)]
pub(crate) struct RebaseArgs {
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

fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::InvalidRequest(_)
        | Error::AmbiguousPlatform { .. }
        | Error::NoSuchPlatform { .. } => exit::INVALID_ARGS,
        Error::Rebase(Refusal::NothingVerified { .. }) => exit::VERIFY_FAILED,
        Error::Rebase(_) => exit::NOT_A_REBASE,
        Error::Keyless(_) | Error::KeylessUntrusted(_) => exit::KEYLESS_FAILED,
        _ => exit::FAILED,
    };
    Failure::new(code, e)
}

pub(crate) fn run(args: RebaseArgs) -> Result<u8, Failure> {
    let options = args
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let report = rebase(&args.rebase, options, &args.registry.open_options()).map_err(failure)?;
    finish(&report, args.json, exit::NOT_DISCOVERABLE, exit::FAILED)
}
