//! `cnb-attest ls` and `cnb-attest verify`.

use std::path::PathBuf;

use clap::Args;
use cnb_attest::{inspect, Image, Listed};
use cnb_phase::flags::{IdentityFlags, PlatformFlags, RegistryFlags, SigstoreTrustFlags};
use cnb_phase::{exit, shown, Failure};

use crate::{failure, print_json, run as block_on};

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Trusted public key (PEM), e.g. cosign.pub; repeat for several (key rotation). An
    /// attestation verifies if any of them verifies it. Not needed for keyless attestations
    /// (--certificate-identity and --certificate-oidc-issuer).
    #[arg(long, required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"])]
    key: Vec<PathBuf>,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    sigstore: SigstoreTrustFlags,
    /// Only attestations with this predicate type (e.g. `https://cyclonedx.org/bom`).
    #[arg(long)]
    predicate_type: Option<String>,
    /// Only this buildpack's attestations (its real ID), as `download --buildpack` chooses them.
    #[arg(long)]
    buildpack: Option<String>,
    /// Also fail unless every launch layer of each SBOM-producing buildpack has a verified SBOM,
    /// as `download --require-all-layers` checks.
    #[arg(long)]
    require_all_layers: bool,
    #[command(flatten)]
    platform: PlatformFlags,
    /// Fail (exit 3) when a platform verified has no verified SBOM attestation, naming it.
    #[arg(long)]
    require_all_platforms: bool,
    /// Print the verdicts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct LsArgs {
    /// The image.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    platform: PlatformFlags,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn ls(args: LsArgs) -> Result<u8, Failure> {
    let open = args.registry.open_options();
    let (subjects, per_platform) = block_on(async {
        let platforms = Image::open_platforms(&args.image, &open, &args.platform.platforms).await?;
        Ok((
            inspect::list_platforms(&platforms).await?,
            platforms.per_platform(),
        ))
    })?;
    if args.json {
        if per_platform {
            print_json(&subjects);
        } else {
            print_json(&subjects[0].listing);
        }
    } else {
        for subject in &subjects {
            let listing = &subject.listing;
            let others = match listing.others() {
                0 => String::new(),
                n => format!(", {n} other referrer(s)"),
            };
            if per_platform {
                println!(
                    "== {} ==",
                    section(subject.platform.as_ref(), subject.index)
                );
            }
            println!(
                "{}@{}: {} attestation(s), {} image signature(s){others}",
                shown(&subject.image),
                shown(&subject.digest),
                listing.attestations(),
                listing.signatures(),
            );
            print_listed(&listing.entries);
        }
    }
    Ok(if subjects.iter().all(|s| s.listing.entries.is_empty()) {
        exit::NO_ATTESTATIONS
    } else {
        exit::OK
    })
}

/// A per-platform section's title: `linux/arm64`, or `image index`.
fn section(platform: Option<&cnb_attest::PlatformSpec>, index: bool) -> String {
    match (index, platform) {
        (true, _) => "image index".into(),
        (false, Some(p)) => format!("platform {p}"),
        (false, None) => "platform (none declared)".into(),
    }
}

pub(crate) fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let keys = cnb_attest::keys::read_public_keys(&args.key).map_err(failure)?;
    let keyless = args
        .identity
        .verifier(&args.sigstore)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let selection = cnb_attest::restore::selection(args.buildpack.as_deref(), None)
        .map_err(|e| Failure::new(exit::INVALID_ARGS, e))?;
    let request = inspect::VerifyRequest {
        predicate_type: args.predicate_type.clone(),
        selection,
        require_all_layers: args.require_all_layers,
        keyless: keyless.clone(),
        ..inspect::VerifyRequest::new(keys.clone())
    };
    let open = args.registry.open_options();
    let (all, per_platform, location) = block_on(async {
        let platforms = Image::open_platforms(&args.image, &open, &args.platform.platforms).await?;
        let location = platforms
            .index_image
            .as_ref()
            .or(platforms.images.first())
            .map(|i| i.name().to_string())
            .unwrap_or_default();
        Ok((
            inspect::verify_platforms(&platforms, &request).await?,
            platforms.per_platform(),
            location,
        ))
    })?;
    let subjects = &all.subjects;
    // Not read from the registry (a transport or registry failure) is not "failed verification".
    let unread = |v: &&cnb_attest::Verdict| {
        v.failure
            .as_ref()
            .is_some_and(|f| f.rule.is_fetch_failure())
    };
    let verdicts = || subjects.iter().flat_map(|s| s.report.verdicts.iter());
    let signatures = || subjects.iter().flat_map(|s| s.signatures.iter());
    let unreadable = verdicts().filter(unread).count();
    let failed = verdicts().filter(|v| !v.ok()).count() - unreadable
        + signatures().filter(|s| !s.ok()).count();
    if args.json {
        let entries: Vec<serde_json::Value> = subjects.iter().map(verdicts_json).collect();
        if per_platform {
            // One entry per subject: the index itself first, then each platform.
            let entries: Vec<serde_json::Value> = subjects
                .iter()
                .zip(entries)
                .map(|(s, verdicts)| {
                    serde_json::json!({
                        "platform": s.platform,
                        "index": s.index,
                        "digest": s.digest,
                        "image": s.image,
                        "verdicts": verdicts,
                        "verified-sboms": s.verified_sboms(),
                    })
                })
                .collect();
            print_json(&entries);
        } else {
            print_json(&entries[0]);
        }
    } else {
        for subject in subjects {
            if per_platform {
                println!(
                    "== {} {} ==",
                    section(subject.platform.as_ref(), subject.index),
                    shown(&subject.digest)
                );
                if subject.report.verdicts.is_empty() && subject.signatures.is_empty() {
                    println!("(no attestations)");
                }
            }
            print_verdicts(subject);
        }
    }
    let others: usize = subjects.iter().map(|s| s.report.others).sum();
    if others > 0 && !args.json {
        eprintln!(
            "{}: {} other referrer(s) skipped: not an attestation format this tool reads",
            shown(&location),
            others
        );
    }
    let total = verdicts().count() + signatures().count();
    let fingerprint = trusted(&keys, keyless.as_deref());
    if total == 0 {
        return Err(Failure::new(
            exit::NO_ATTESTATIONS,
            format!("{location}: no attestations to verify"),
        )
        .already_printed(args.json));
    }
    let not_read = match unreadable {
        0 => String::new(),
        n => format!("; {n} could not be read from the registry"),
    };
    if failed > 0 {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: {failed} of {total} attestation(s) failed verification with {fingerprint}{not_read}",
            ),
        )
        .already_printed(args.json));
    }
    if unreadable > 0 {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "{location}: {unreadable} of {total} attestation(s) could not be read from the registry (not a verification failure); {} verified with {fingerprint}",
                total - unreadable
            ),
        )
        .already_printed(args.json));
    }
    let missing: Vec<String> = subjects
        .iter()
        .flat_map(|s| {
            s.report
                .missing_layers
                .iter()
                .map(|m| labelled(s, m, per_platform))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: launch layers without a verified SBOM: {}",
                missing.join(", ")
            ),
        )
        .already_printed(args.json));
    }
    let differing: Vec<String> = subjects
        .iter()
        .flat_map(|s| {
            s.report
                .differing_layers
                .iter()
                .map(|m| labelled(s, m, per_platform))
        })
        .collect();
    if !differing.is_empty() {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: verified SBOMs that differ from the image's SBOM layer: {}",
                shown(&differing.join(", "))
            ),
        )
        .already_printed(args.json));
    }
    if args.require_all_platforms && !all.unverified_platforms.is_empty() {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{location}: platform(s) without a verified SBOM attestation: {}",
                shown(
                    &all.unverified_platforms
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            ),
        )
        .already_printed(args.json));
    }
    eprintln!(
        "{}: all {total} attestation(s) verified with {fingerprint}",
        shown(&location)
    );
    Ok(exit::OK)
}

/// `what`, prefixed with the subject's platform when reporting per platform.
fn labelled(subject: &inspect::SubjectReport, what: &str, per_platform: bool) -> String {
    match (&subject.platform, per_platform) {
        (Some(p), true) => format!("{p}: {what}"),
        _ => what.to_string(),
    }
}

/// One subject's verdicts as JSON: the attestations, then cosign 2 image signatures (the `.sig`
/// tag), marked by format.
fn verdicts_json(subject: &inspect::SubjectReport) -> serde_json::Value {
    let mut all: Vec<serde_json::Value> = subject
        .report
        .verdicts
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect();
    all.extend(subject.signatures.iter().filter_map(|s| {
        let mut value = serde_json::to_value(s).ok()?;
        value["format"] = "simple-signing".into();
        Some(value)
    }));
    serde_json::Value::Array(all)
}

fn print_verdicts(subject: &inspect::SubjectReport) {
    for v in &subject.report.verdicts {
        match &v.failure {
            None => match &v.listed.signer {
                Some(signer) => println!("verified  {} ({})", shown(&v.name()), shown(signer)),
                None => println!("verified  {}", shown(&v.name())),
            },
            Some(reason) if reason.rule.is_fetch_failure() => println!(
                "NOT READ  {}: {}",
                shown(&v.name()),
                shown(&reason.to_string())
            ),
            Some(reason) => {
                println!(
                    "FAILED    {}: {}",
                    shown(&v.name()),
                    shown(&reason.to_string())
                )
            }
        }
    }
    for s in &subject.signatures {
        match &s.failure {
            None => println!(
                "verified  {} (image signature, cosign simple-signing)",
                shown(&s.digest.to_string())
            ),
            Some(reason) => println!(
                "FAILED    {} (image signature, cosign simple-signing): {}",
                shown(&s.digest.to_string()),
                shown(&reason.to_string())
            ),
        }
    }
}

/// What was trusted, for messages: `key <fp>`, `keys <fp>, <fp>`, the keyless identity policy, or
/// both.
pub(crate) fn trusted(
    keys: &[cnb_attest::VerifyingKey],
    keyless: Option<&cnb_attest::keyless::Verifier>,
) -> String {
    let fingerprints = keys
        .iter()
        .map(|key| key.fingerprint()[..16].to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let keys = match keys.len() {
        0 => None,
        1 => Some(format!("key {fingerprints}")),
        _ => Some(format!("keys {fingerprints}")),
    };
    let keyless = keyless.map(|v| format!("keyless identity {}", shown(&v.policy().describe())));
    match (keys, keyless) {
        (Some(k), Some(i)) => format!("{k} or {i}"),
        (Some(k), None) => k,
        (None, Some(i)) => i,
        (None, None) => "no key".into(),
    }
}

/// `name@sha256:<12 hex>`, escaped (the name is the unverified statement's).
fn short(subject: &str) -> String {
    shown(&match subject.split_once("@sha256:") {
        Some((name, hex)) => format!("{name}@sha256:{}", hex.chars().take(12).collect::<String>()),
        None => subject.to_string(),
    })
}

/// An optional listing cell, escaped, or `default`.
fn cell(value: Option<&str>, default: &str) -> String {
    value.map_or_else(|| default.to_string(), shown)
}

fn print_listed(listed: &[Listed]) {
    println!(
        "{:<7} {:<27} {:<36} {:<16} {:>9}  SUBJECTS",
        "FORMAT", "PREDICATE TYPE", "BUILDPACK", "LAYER", "SIZE"
    );
    for l in listed {
        println!(
            "{:<7} {:<27} {:<36} {:<16} {:>9}  {}",
            cell(l.format.as_deref(), "other"),
            cell(l.predicate_type.as_deref(), "-"),
            cell(l.buildpack.as_deref(), "-"),
            cell(l.layer.as_deref(), "-"),
            l.size,
            l.subjects
                .iter()
                .map(|s| short(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(problem) = &l.problem {
            println!("        ! {}", shown(problem));
        }
    }
}
