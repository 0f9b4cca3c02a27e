//! Command-line flags shared by `signer`, `analyzer` and `cnb-attest`, so each spells, documents
//! and interprets them the same way; each turns into the facade's option type.

use cnb_attest::{Error, SignOptions};

/// How to sign: storage formats, statement version, image signature.
#[derive(clap::Args, Debug, Clone)]
pub struct SignFlags {
    /// Storage format(s): bundle (cosign 3), dsse (the RFC's), cosign-legacy (cosign 2's .att
    /// tag; registries only). Repeat or comma-separate.
    #[arg(long, value_delimiter = ',', default_value = "bundle")]
    pub format: Vec<String>,
    /// in-toto Statement version to write: v1 or v0.1.
    #[arg(long, default_value = "v1")]
    pub statement_version: String,
    /// How the image itself is signed: bundle (cosign 3: a sign/v1 statement in a bundle
    /// referrer), simple-signing (cosign 2's .sig tag; registries only) or none.
    #[arg(long, default_value = "bundle")]
    pub image_signature: String,
}

impl SignFlags {
    /// The signing options these flags (and `SOURCE_DATE_EPOCH`) ask for.
    pub fn options(&self) -> Result<SignOptions, Error> {
        Ok(SignOptions::from_flags(
            &self.format,
            &self.statement_version,
            &self.image_signature,
            std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        )?)
    }
}

/// How to reach registries.
#[cfg(feature = "registry")]
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryFlags {
    /// Registry (`host[:port]`) to reach over plain HTTP; repeatable. Also CNB_INSECURE_REGISTRIES.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Log every registry request (method, URL, status; never headers or bodies) to stderr.
    #[arg(long)]
    pub debug: bool,
    /// Overall deadline for the run's registry work, in seconds: no request starts or runs past
    /// it, retries included (0, or a value too large for the clock such as 18446744073709551615:
    /// none, only the per-request timeout of 300 s).
    #[arg(
        long,
        env = "CNB_ATTEST_TIMEOUT",
        default_value_t = 900,
        value_name = "SECONDS"
    )]
    pub timeout: u64,
}

#[cfg(feature = "registry")]
impl RegistryFlags {
    /// The facade's registry options.
    pub fn options(&self) -> cnb_attest::registry::RegistryOptions {
        cnb_attest::registry::RegistryOptions {
            insecure: self.insecure_registries.clone(),
            debug: self.debug,
            timeout_seconds: self.timeout,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// Options to open an image with these flags.
    pub fn open_options(&self) -> cnb_attest::OpenOptions {
        cnb_attest::OpenOptions {
            registry: self.options(),
            ..cnb_attest::OpenOptions::default()
        }
    }
}

/// The lifecycle's OCI layout export (`CNB_USE_LAYOUT`, `CNB_LAYOUT_DIR`), as the phases take it.
#[derive(clap::Args, Debug, Clone)]
pub struct LayoutFlags {
    /// Find the image in the lifecycle's layout directory (`-layout-dir`), from its name
    /// (experimental, as in the lifecycle: needs CNB_EXPERIMENTAL_MODE=warn or quiet).
    #[arg(
        long,
        env = "CNB_USE_LAYOUT",
        value_parser = crate::parse_bool,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub layout: bool,
    /// The lifecycle's OCI layout directory.
    #[arg(long, env = "CNB_LAYOUT_DIR")]
    pub layout_dir: Option<std::path::PathBuf>,
}

/// `--password-file`, or the `COSIGN_PASSWORD` environment variable.
pub fn password_source(file: Option<&std::path::Path>) -> cnb_attest::PasswordSource {
    match file {
        Some(path) => cnb_attest::PasswordSource::File(path.to_path_buf()),
        None => cnb_attest::PasswordSource::default_env(),
    }
}
