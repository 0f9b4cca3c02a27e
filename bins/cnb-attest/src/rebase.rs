//! `cnb-attest rebase`.

use clap::Args;
use cnb_attest::rebase::{rebase, Refusal};
use cnb_attest::{Error, Image};
use cnb_phase::flags::{RegistryFlags, SignFlags};
use cnb_phase::rebase::{render, RebaseFlags};
use cnb_phase::{exit, Failure};

use crate::print_json;

#[derive(Args)]
pub(crate) struct RebaseArgs {
    #[command(flatten)]
    rebase: RebaseFlags,
    #[command(flatten)]
    signing: SignFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Print the report as JSON (carried, dropped with reasons, added).
    #[arg(long)]
    json: bool,
}

fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::InvalidRequest(_) => exit::INVALID_ARGS,
        Error::Rebase(Refusal::NothingVerified { .. }) => exit::VERIFY_FAILED,
        Error::Rebase(_) => exit::NOT_A_REBASE,
        _ => exit::FAILED,
    };
    Failure::new(code, e)
}

pub(crate) fn run(args: RebaseArgs) -> Result<u8, Failure> {
    let options = args
        .signing
        .options()
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let progress = args.registry.options().progress;
    let (previous, image, request) = args.rebase.request(options, progress).map_err(failure)?;
    let open = args.registry.open_options();
    let report = cnb_attest::block_on(async {
        let previous = Image::open(&previous, &open).await?;
        let new = Image::open(&image, &open).await?;
        rebase(&previous, &new, &request).await
    })
    .and_then(|r| r)
    .map_err(failure)?;
    if args.json {
        print_json(&report);
    } else {
        for line in render(&report) {
            println!("{line}");
        }
    }
    if !report.signed.all_discoverable() {
        return Err(Failure::new(
            exit::NOT_DISCOVERABLE,
            "attestation(s) were pushed but are not listed where readers look (see the report)",
        )
        .already_printed(args.json));
    }
    Ok(exit::OK)
}
