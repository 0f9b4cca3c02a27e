//! Lifecycle phase conventions shared by the `exporter`, `signer` and `cnb-attest` binaries.
//!
//! The CNB lifecycle's phases take Go-style flags (`-layers /layers`); people also type
//! `--layers`. [`normalize_args`] turns every single-dash long flag into its double-dash form so one
//! clap definition accepts both. Exit codes live here so each binary's are documented in one place
//! (`docs/exit-codes.md`).
//!
//! ```
//! let args = cnb_phase::normalize_args(["signer", "-config", "c.toml", "--layers", "/l", "-", "-v"]);
//! assert_eq!(args, ["signer", "--config", "c.toml", "--layers", "/l", "-", "-v"]);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod flags;
#[cfg(feature = "registry")]
pub mod rebase;

use std::ffi::OsString;
use std::fmt;
use std::process::ExitCode;

/// The most characters of one remote-derived value [`shown`] prints: generous, so only a flood
/// is cut.
pub const MAX_SHOWN: usize = 4096;

/// `text` as a terminal or log may show it: every control, bidi and line-separator character
/// escaped (`\r`, `\u{1b}`, `\u{202e}`, ...; see [`cnb_untrusted::text::sanitize`]) and cut
/// after [`MAX_SHOWN`] characters. The one function every text renderer of the binaries passes
/// remote-derived text through (annotations, subject names, media types, failure reasons), so a
/// registry cannot forge a `verified` line or rewrite what is on screen. Escaping twice changes
/// nothing: the escaped form holds no character it would escape. JSON output is not passed
/// through it (JSON encoding escapes control characters itself).
///
/// ```
/// let forged = "bp\r\x1b[2Kverified  sha256:00\u{202e}";
/// assert_eq!(cnb_phase::shown(forged), "bp\\r\\u{1b}[2Kverified  sha256:00\\u{202e}");
/// assert_eq!(cnb_phase::shown(&cnb_phase::shown(forged)), cnb_phase::shown(forged));
/// assert_eq!(cnb_phase::shown("paketo-buildpacks/node-engine"), "paketo-buildpacks/node-engine");
/// ```
pub fn shown(text: &str) -> String {
    cnb_untrusted::text::sanitize(text, MAX_SHOWN)
}

/// An error for the user: one line, an optional hint, and the exit code it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code (see [`exit`]).
    pub code: u8,
    /// What failed, and where.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Whether the command already printed its JSON result (which says what failed): `--json`
    /// then adds no error object, so stdout stays one JSON document.
    pub rendered: bool,
}

impl Failure {
    /// A failure with exit `code`.
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
            hint: None,
            rendered: false,
        }
    }

    /// Marks the failure as already rendered as JSON by the command (see [`Failure::rendered`]).
    pub fn already_printed(mut self, json: bool) -> Self {
        self.rendered = json;
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure as the JSON object printed under `--json`:
    /// `{"error": {"code": .., "message": .., "hint": ..}}`.
    ///
    /// ```
    /// let f = cnb_phase::Failure::new(3, "x: failed").hint("try y");
    /// assert_eq!(f.to_json()["error"]["code"], 3);
    /// assert_eq!(f.to_json()["error"]["hint"], "try y");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "hint": self.hint,
            }
        })
    }
}

/// Runs a binary: parses the process arguments (after [`normalize_args`]) into `T`, calls `run`, and
/// turns its result into the process exit code, printing a failure as `ERROR: <message>` and
/// `hint: <hint>` on stderr. Usage errors exit with [`exit::INVALID_ARGS`].
pub fn main<T: clap::Parser>(run: impl FnOnce(T) -> Result<u8, Failure>) -> ExitCode {
    quiet_on_closed_stdout();
    let args = normalize_args(std::env::args_os());
    let json = wants_json(&args);
    let parsed = match T::try_parse_from(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::INVALID_ARGS
            } else {
                exit::OK
            });
        }
    };
    match run(parsed) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // The one place errors reach the terminal: whatever remote text a message embeds is
            // escaped here, once.
            eprintln!("ERROR: {}", shown(&failure.message));
            if let Some(hint) = &failure.hint {
                eprintln!("hint: {}", shown(hint));
            }
            if json && !failure.rendered {
                // Under --json, stdout is one JSON document on failure too.
                println!("{}", failure.to_json());
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Whether `--json` is among the arguments (before a bare `--`).
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Rewrites `-name[=value]` (a single dash followed by two or more characters, not a number) to
/// `--name[=value]`. Everything after a bare `--` is left alone, as are `-` and short flags like `-v`.
pub fn normalize_args<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        let arg: OsString = arg.into();
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            let rest = s.strip_prefix('-')?;
            let name = rest.split('=').next().unwrap_or("");
            let is_long_single_dash = !rest.starts_with('-')
                && name.len() >= 2
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
            is_long_single_dash.then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// [`main`] for a lifecycle phase: `CNB_PLATFORM_API` is checked before anything is parsed.
pub fn phase_main<T: clap::Parser>(run: impl FnOnce(T) -> Result<u8, Failure>) -> ExitCode {
    if let Err(f) = check_platform_api() {
        eprintln!("ERROR: {}", shown(&f.message));
        return ExitCode::from(f.code);
    }
    main(run)
}

/// `cnb-attest ls | head` closes stdout early; `println!` then panics. Exit as a Unix tool does on
/// SIGPIPE (status 141), silently, instead of printing a panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Platform API versions the phases accept: 0.8 introduced the SBOM layout they read, 0.15 is the
/// newest published.
pub const SUPPORTED_PLATFORM_APIS: std::ops::RangeInclusive<(u32, u32)> = (0, 8)..=(0, 15);

/// Checks `CNB_PLATFORM_API` (when set) before anything else, as lifecycle phases do.
pub fn check_platform_api() -> Result<(), Failure> {
    let Ok(value) = std::env::var("CNB_PLATFORM_API") else {
        return Ok(());
    };
    let parsed = value
        .trim()
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    match parsed {
        Some(version) if SUPPORTED_PLATFORM_APIS.contains(&version) => Ok(()),
        _ => Err(Failure::new(
            exit::INCOMPATIBLE_PLATFORM_API,
            format!("CNB_PLATFORM_API `{value}` is not supported (supported: 0.8 to 0.15)"),
        )),
    }
}

/// The lifecycle's guard for experimental features (`CNB_EXPERIMENTAL_MODE`: `quiet`, `warn`,
/// `error`; the lifecycle's default is `error`).
pub fn guard_experimental(feature: &str) -> Result<(), Failure> {
    match std::env::var("CNB_EXPERIMENTAL_MODE")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "quiet" => Ok(()),
        "warn" => {
            eprintln!("Warning: {} is experimental", shown(feature));
            Ok(())
        }
        _ => Err(
            Failure::new(exit::INVALID_ARGS, format!("{feature} is experimental"))
                .hint("set CNB_EXPERIMENTAL_MODE=warn (or quiet) to use it, as with the lifecycle"),
        ),
    }
}

/// Parses a boolean as the lifecycle does (Go's `strconv.ParseBool`): `1`, `t`, `T`, `TRUE`, `true`,
/// `True` and `0`, `f`, `F`, `FALSE`, `false`, `False`; anything else is an error. Use it as the
/// clap value parser of every `CNB_*` boolean, so `CNB_USE_LAYOUT=1` means what it means to the
/// lifecycle.
///
/// ```
/// assert_eq!(cnb_phase::parse_bool("1"), Ok(true));
/// assert_eq!(cnb_phase::parse_bool("False"), Ok(false));
/// assert!(cnb_phase::parse_bool("yes").is_err());
/// ```
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "`{other}` is not a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
        )),
    }
}

/// Exit codes. Each binary uses the common ones plus its own range; see `docs/exit-codes.md`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A failure not covered by a more specific code.
    pub const FAILED: u8 = 1;
    /// Invalid arguments or environment.
    pub const INVALID_ARGS: u8 = 2;

    /// Phases: `CNB_PLATFORM_API` names a version they do not support (the lifecycle's code).
    pub const INCOMPATIBLE_PLATFORM_API: u8 = 11;

    /// `cnb-attest verify`: at least one attestation failed verification.
    pub const VERIFY_FAILED: u8 = 3;
    /// `cnb-attest verify`/`ls`: the image has no attestations.
    pub const NO_ATTESTATIONS: u8 = 4;

    /// `cnb-attest sign`: attestations were stored but are not listed where readers look.
    pub const NOT_DISCOVERABLE: u8 = 5;
    /// `cnb-attest rebase`: the new image is not a rebase of the previous one; nothing written.
    pub const NOT_A_REBASE: u8 = 6;
    /// `cnb-attest sign`, `rebase`: keyless signing failed (the identity token, Fulcio, Rekor, an
    /// attestation too large for the log, or a bundle that does not verify against the trusted
    /// root); nothing was stored.
    pub const KEYLESS_FAILED: u8 = 7;

    /// `cnb-attest export`, `import`: the bundle does not hold everything its inventory lists
    /// (each missing object named); nothing was pushed or moved into place.
    pub const BUNDLE_INCOMPLETE: u8 = 12;

    /// A restore (`cnb-attest download`, `analyzer`) interrupted by SIGINT (128 + 2): nothing was
    /// written.
    pub const INTERRUPTED: u8 = 130;
    /// A restore interrupted by SIGTERM (128 + 15): nothing was written.
    pub const TERMINATED: u8 = 143;

    /// `analyzer`: the previous image cannot be read (or is not a buildpacks image).
    pub const ANALYZE_BAD_IMAGE: u8 = 34;
    /// `analyzer`: an attestation failed verification; nothing was restored.
    pub const ANALYZE_VERIFY_FAILED: u8 = 35;
    /// `analyzer`: no SBOM could be restored (strict mode, or no SBOM layer either).
    pub const ANALYZE_NO_SBOMS: u8 = 36;
    /// `analyzer`: `-require-all-layers` found a launch layer without a verified SBOM.
    pub const ANALYZE_COVERAGE: u8 = 37;
    /// `analyzer`: the layers directory is not safe to write (a planted symlink, say).
    pub const ANALYZE_WRITE: u8 = 38;

    /// `exporter`: the layers directory holds input the discovery refuses (symlink, bad JSON, ...).
    pub const EXPORT_BAD_SBOM: u8 = 65;
    /// `exporter`: the image (report.toml, layout, label) cannot be read or does not match.
    pub const EXPORT_BAD_IMAGE: u8 = 66;
    /// `exporter`: the signer configuration could not be generated or written.
    pub const EXPORT_CONFIG: u8 = 67;
    /// `exporter -omit-sbom` on a registry image did not finish: a registry error, not every tag
    /// moved (the message lists which did and which did not), or report.toml not rewritten.
    pub const EXPORT_OMIT_FAILED: u8 = 68;

    /// `rebaser`: the previous or the rebased image cannot be read, or is not a buildpacks image.
    pub const REBASE_BAD_IMAGE: u8 = 74;
    /// `rebaser`: the new image is not a rebase of the previous one; nothing was written.
    pub const REBASE_NOT_A_REBASE: u8 = 75;
    /// `rebaser`: the previous image's attestations exist but none verified; nothing was written.
    pub const REBASE_NOTHING_VERIFIED: u8 = 76;
    /// `rebaser`: the platform's signer configuration is invalid or not for the rebased image.
    pub const REBASE_BAD_CONFIG: u8 = 77;
    /// `rebaser`: the signing or a verification key cannot be read.
    pub const REBASE_BAD_KEY: u8 = 78;
    /// `rebaser`: signing or storing an attestation failed, or one stored is not listed where
    /// readers look.
    pub const REBASE_FAILED: u8 = 79;

    /// `signer`: the signer configuration is invalid.
    pub const SIGN_BAD_CONFIG: u8 = 90;
    /// `signer`: the signing key cannot be read (missing, wrong password, corrupt).
    pub const SIGN_BAD_KEY: u8 = 91;
    /// `signer`: the image cannot be read or its digest does not match the configuration.
    pub const SIGN_BAD_IMAGE: u8 = 92;
    /// `signer`: signing or storing an attestation failed.
    pub const SIGN_FAILED: u8 = 93;
    /// `signer`: attestations were pushed but are not listed where readers look.
    pub const SIGN_NOT_DISCOVERABLE: u8 = 94;
    /// `signer -keyless`: keyless signing failed (the identity token, Fulcio, Rekor, an
    /// attestation too large for the log, or a bundle that does not verify against the trusted
    /// root); nothing was stored.
    pub const SIGN_KEYLESS: u8 = 95;
}

/// SIGINT and SIGTERM during a restore: the tree being built is removed, the destination is left
/// as it was, and the process exits 130 or 143 ([`exit::INTERRUPTED`], [`exit::TERMINATED`]).
///
/// signal-hook's iterator receives the signals on a thread of its own (its handler only writes to
/// a pipe, which is async-signal-safe); that thread calls [`cnb_attest::restore::interrupt`], which
/// takes the writer's lock, so a tree being moved into place is moved completely first, and then
/// exits. Installed by the binaries that restore, before they start.
pub mod interrupt {
    use std::sync::atomic::{AtomicU8, Ordering};

    use signal_hook::consts::{SIGINT, SIGTERM};

    static RECEIVED: AtomicU8 = AtomicU8::new(0);

    /// Starts the thread that handles SIGINT and SIGTERM. Without it (or if it cannot be
    /// installed) a signal ends the process as by default, without removing a temporary tree.
    pub fn install() {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let (code, name) = if signal == SIGTERM {
                        (super::exit::TERMINATED, "SIGTERM")
                    } else {
                        (super::exit::INTERRUPTED, "SIGINT")
                    };
                    RECEIVED.store(code, Ordering::SeqCst);
                    if cnb_attest::restore::interrupt() {
                        eprintln!(
                            "ERROR: interrupted by {name} after the restored SBOMs were moved into place; they are complete"
                        );
                    } else {
                        eprintln!("ERROR: interrupted by {name}; no SBOM was written");
                    }
                    std::process::exit(i32::from(code));
                }
            });
        drop(spawned);
    }

    /// The exit code for a signal received ([`exit::INTERRUPTED`](super::exit::INTERRUPTED) or
    /// [`exit::TERMINATED`](super::exit::TERMINATED)), if one was: an error the interrupted write
    /// returned meanwhile exits with it too.
    pub fn received() -> Option<u8> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            code => Some(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double_dash_and_values_stay() {
        let args = normalize_args(["x", "-layers=/l", "-1", "-v", "--", "-keep"]);
        assert_eq!(args, ["x", "--layers=/l", "-1", "-v", "--", "-keep"]);
    }
}
