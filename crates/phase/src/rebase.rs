//! The rebase flags and text rendering shared by the `rebaser` phase and `cnb-attest rebase`, so
//! both spell, read and print a rebase the same way.

use std::path::PathBuf;

use cnb_attest::keys::KeySource;
use cnb_attest::rebase::{PlatformAttestations, RebaseReport, RebaseRequest};
use cnb_attest::{Error, Image, OpenOptions};

use crate::{shown, Failure};

/// What to rebase and with which keys.
#[derive(clap::Args, Debug, Clone)]
pub struct RebaseFlags {
    /// The image before the rebase, pinned by digest: `<registry>/<repo>@sha256:<hex>` or
    /// `oci:<dir>@sha256:<hex>` (the lifecycle's rebaser takes the same flag).
    #[arg(long, env = "CNB_PREVIOUS_IMAGE")]
    pub previous_image: String,
    /// The rebased image: a registry reference or `oci:<dir>[:<tag>|@sha256:<hex>]`. Default: from
    /// the lifecycle rebaser's report (`-report`).
    #[arg(long)]
    pub image: Option<String>,
    /// The lifecycle rebaser's `report.toml`: the rebased image is the repository of its first tag
    /// at its `[image] digest`.
    #[arg(long, env = "CNB_REPORT_PATH")]
    pub report: Option<PathBuf>,
    /// Public key the previous image's attestations are verified with; repeatable (any one
    /// verifying is enough).
    /// Not needed for keyless attestations (-certificate-identity, -certificate-oidc-issuer).
    #[arg(
        long = "verify-key",
        required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"]
    )]
    pub verify_keys: Vec<PathBuf>,
    /// Who the previous image's keyless attestations must be signed by.
    #[command(flatten)]
    pub identity: crate::flags::IdentityFlags,
    /// Private key the new attestations are signed with: cosign encrypted key or PKCS#8 PEM. Not
    /// with -keyless.
    #[arg(
        long,
        env = "CNB_SIGNING_KEY",
        required_unless_present = "keyless",
        conflicts_with = "keyless"
    )]
    pub key: Option<PathBuf>,
    /// Keyless signing of the new attestations.
    #[command(flatten)]
    pub keyless: crate::flags::KeylessSignFlags,
    /// The Sigstore trust material, for keyless verifying and signing.
    #[command(flatten)]
    pub sigstore: crate::flags::SigstoreTrustFlags,
    /// File holding the key's password (default: the COSIGN_PASSWORD environment variable).
    #[arg(long, env = "CNB_SIGNING_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// A signer configuration (the RFC's TOML) of attestations the platform adds to the rebased
    /// image, e.g. the new run image's SBOM; its `[image] reference` names the rebased digest.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directories the configuration's predicate `uri`s may point into (default: its directory).
    #[arg(long = "allow-root")]
    pub allow_roots: Vec<PathBuf>,
    /// Once the rebased image's referrers are stored and discoverable, delete the previous image's
    /// verified referrers where the registry allows DELETE (and unlist them from its
    /// `sha256-<hex>` index), or unlist them from an OCI layout's `index.json`.
    #[arg(long)]
    pub prune_previous: bool,
}

impl RebaseFlags {
    /// `(previous image, rebased image, request)` from these flags and `options`; the rebased image
    /// comes from `-image`, else from `-report`.
    pub fn request(
        &self,
        options: cnb_attest::SignOptions,
        progress: bool,
    ) -> Result<(String, String, RebaseRequest), Error> {
        let image = match (&self.image, &self.report) {
            (Some(image), _) => image.clone(),
            (None, Some(report)) => cnb_attest::rebase::rebased_image_from_report(report)?,
            (None, None) => {
                return Err(Error::InvalidRequest(
                    "no rebased image: give -image, or -report with the lifecycle rebaser's \
                     report.toml"
                        .into(),
                ))
            }
        };
        let key = match (self.keyless.source(&self.sigstore)?, &self.key) {
            (Some(keyless), _) => KeySource::Keyless(Box::new(keyless)),
            (None, Some(path)) => KeySource::File {
                path: path.clone(),
                password: crate::flags::password_source(self.password_file.as_deref()),
            },
            (None, None) => {
                return Err(Error::InvalidRequest(
                    "no signing key: give -key (or CNB_SIGNING_KEY), or -keyless".into(),
                ))
            }
        };
        let request = RebaseRequest {
            verify_keys: cnb_attest::keys::read_public_keys(&self.verify_keys)?,
            verify_keyless: self.identity.verifier(&self.sigstore)?,
            key,
            platform: self.config.as_ref().map(|path| PlatformAttestations {
                path: path.clone(),
                allow_roots: self.allow_roots.clone(),
            }),
            options,
            progress,
            prune_previous: self.prune_previous,
        };
        Ok((self.previous_image.clone(), image, request))
    }
}

/// Opens both images and runs the rebase these flags ask for, in one [`cnb_attest::block_on`].
pub fn rebase(
    flags: &RebaseFlags,
    options: cnb_attest::SignOptions,
    open: &OpenOptions,
) -> Result<RebaseReport, Error> {
    let (previous, image, request) = flags.request(options, open.registry.progress)?;
    cnb_attest::block_on(async {
        let previous = Image::open(&previous, open).await?;
        let new = Image::open(&image, open).await?;
        cnb_attest::rebase::rebase(&previous, &new, &request).await
    })?
}

/// Prints `report` ([`print()`]) and gives the exit code: `not_discoverable` when a referrer stored
/// is not listed where readers look, `prune_failed` when `-prune-previous` did not finish (a
/// `DELETE` or the index rewrite failed; the new image's attestations are complete), else
/// success.
pub fn finish(
    report: &RebaseReport,
    json: bool,
    not_discoverable: u8,
    prune_failed: u8,
) -> Result<u8, Failure> {
    print(report, json);
    if !report.signed.all_discoverable() {
        return Err(Failure::new(
            not_discoverable,
            "attestation(s) were pushed but are not listed where readers look (see the report)",
        )
        .already_printed(json));
    }
    if report.pruned.as_ref().is_some_and(|p| !p.complete()) {
        return Err(Failure::new(
            prune_failed,
            "the new image's attestations are complete, but pruning the previous image's did not \
             finish (see the report)",
        )
        .already_printed(json));
    }
    Ok(crate::exit::OK)
}

/// Prints `report` on stdout: pretty JSON with `json`, else [`render`]'s lines.
pub fn print(report: &RebaseReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        for line in render(report) {
            println!("{line}");
        }
    }
}

/// The text rendering of a rebase: one line per carried, dropped and added attestation, then a
/// summary. Remote-derived text goes through [`shown`].
pub fn render(report: &RebaseReport) -> Vec<String> {
    let mut lines = Vec::new();
    let who = |buildpack: &Option<String>, layer: &Option<String>| match (buildpack, layer) {
        (Some(bp), Some(layer)) => shown(&format!("{bp}:{layer}")),
        (Some(bp), None) => shown(bp),
        _ => "no buildpack".into(),
    };
    for carried in &report.carried {
        let new: Vec<String> = carried
            .reissued
            .iter()
            .map(|o| format!("{} ({:?})", o.manifest_digest, o.status))
            .collect();
        lines.push(format!(
            "carried  {} ({}, {}) -> {}",
            shown(&carried.replaces),
            who(&carried.buildpack, &carried.layer),
            shown(&carried.predicate_type),
            new.join(", ")
        ));
    }
    for dropped in &report.dropped {
        lines.push(format!(
            "dropped  {} ({}, {}): {}",
            shown(&dropped.manifest_digest),
            who(&dropped.buildpack, &dropped.layer),
            shown(
                dropped
                    .predicate_type
                    .as_deref()
                    .unwrap_or("unknown predicate")
            ),
            shown(&dropped.reason.to_string())
        ));
    }
    for added in &report.added {
        let new: Vec<String> = added
            .stored
            .iter()
            .map(|o| format!("{} ({:?})", o.manifest_digest, o.status))
            .collect();
        lines.push(format!(
            "added    {} -> {}",
            shown(&added.predicate_type),
            new.join(", ")
        ));
    }
    if let Some(pruned) = &report.pruned {
        for digest in &pruned.deleted {
            lines.push(format!("pruned   {} (previous image)", shown(digest)));
        }
        for digest in &pruned.not_deletable {
            lines.push(format!(
                "kept     {} (previous image): the registry does not allow DELETE",
                shown(digest)
            ));
        }
        for failed in &pruned.failed {
            lines.push(format!(
                "kept     {} (previous image): DELETE failed: {}",
                shown(&failed.digest),
                shown(&failed.error)
            ));
        }
        if let Some(error) = &pruned.unlist_error {
            lines.push(format!(
                "warning  the pruned referrers are still listed in the previous image's index: {}",
                shown(error)
            ));
        }
    }
    lines.push(format!(
        "Rebased attestations of {}@{} onto {}@{}: {} carried, {} dropped, {} added; {} referrer(s) \
         stored, {} already present",
        shown(&report.previous_image),
        report.previous_digest,
        shown(&report.image),
        report.image_digest,
        report.carried.len(),
        report.dropped.len(),
        report.added.len(),
        report.signed.pushed,
        report.signed.already_present
    ));
    lines
}
