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
    /// Log every registry request (method, URL, status; never headers or bodies) to stderr. Also
    /// CNB_ATTEST_DEBUG (any value but empty, 0, false, no, off).
    #[arg(long, env = "CNB_ATTEST_DEBUG", value_parser = clap::builder::FalseyValueParser::new())]
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

/// The Sigstore instance's trust material, for keyless signing and verifying.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SigstoreTrustFlags {
    /// Sigstore trusted root (`trusted_root.json`: Fulcio CAs, Rekor and CT log keys), for a
    /// private or air-gapped instance or a rotated root; default: the public-good instance's
    /// embedded copy.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<std::path::PathBuf>,
    /// Sigstore client trust config (a trusted root and a signing config in one file, as
    /// sigstore-python's `--trust-config` takes it).
    #[arg(long, value_name = "FILE", conflicts_with = "trusted_root")]
    pub trust_config: Option<std::path::PathBuf>,
}

impl SigstoreTrustFlags {
    fn client_config(&self) -> Result<Option<cnb_attest::keyless::ClientTrustConfig>, Error> {
        self.trust_config
            .as_deref()
            .map(|path| {
                cnb_attest::keyless::ClientTrustConfig::from_file(path)
                    .map_err(|e| Error::InvalidRequest(e.to_string()))
            })
            .transpose()
    }

    /// The trusted root: `--trusted-root`, the trust config's, or the public-good one.
    pub fn trusted_root(&self) -> Result<cnb_attest::keyless::TrustedRoot, Error> {
        if let Some(config) = self.client_config()? {
            return Ok(config.trusted_root);
        }
        match &self.trusted_root {
            Some(path) => cnb_attest::keyless::TrustedRoot::from_file(path)
                .map_err(|e| Error::InvalidRequest(e.to_string())),
            None => Ok(cnb_attest::keyless::TrustedRoot::public_good()),
        }
    }
}

/// Who keyless attestations must be signed by (`cosign verify-attestation`'s flags; regexps here
/// are anchored: one that matches only part of the identity does not match).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IdentityFlags {
    /// The certificate identity keyless attestations must carry, exactly: an email, or a URI such
    /// as a CI workflow's `https://github.com/org/repo/.github/workflows/build.yml@refs/heads/main`.
    #[arg(
        long,
        value_name = "IDENTITY",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,
    /// A regular expression the whole certificate identity must match (anchored).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,
    /// The OIDC issuer keyless certificates must carry, exactly (e.g.
    /// `https://token.actions.githubusercontent.com`).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// A regular expression the whole OIDC issuer must match (anchored).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_oidc_issuer_regexp: Option<String>,
}

impl IdentityFlags {
    /// Whether any identity flag was given.
    pub fn given(&self) -> bool {
        self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
    }

    /// The keyless verifier these flags ask for (`None` when no identity flag is given: keyless
    /// attestations are then not trusted). An identity without an issuer, or the reverse, is
    /// refused: both decide who signed.
    pub fn verifier(
        &self,
        trust: &SigstoreTrustFlags,
    ) -> Result<Option<std::sync::Arc<cnb_attest::keyless::Verifier>>, Error> {
        use cnb_attest::keyless::{IdentityPolicy, Matcher, Verifier};
        if !self.given() {
            return Ok(None);
        }
        let matcher =
            |exact: &Option<String>, regexp: &Option<String>, what: &str, flag: &str| match (
                exact, regexp,
            ) {
                (Some(exact), _) => Ok(Matcher::exact(exact)),
                (None, Some(regexp)) => {
                    Matcher::regex(regexp).map_err(|e| Error::InvalidRequest(e.to_string()))
                }
                (None, None) => Err(Error::InvalidRequest(format!(
                    "keyless verification needs the {what} too: give --{flag} (or --{flag}-regexp)"
                ))),
            };
        let policy = IdentityPolicy {
            identity: matcher(
                &self.certificate_identity,
                &self.certificate_identity_regexp,
                "certificate identity",
                "certificate-identity",
            )?,
            issuer: matcher(
                &self.certificate_oidc_issuer,
                &self.certificate_oidc_issuer_regexp,
                "OIDC issuer",
                "certificate-oidc-issuer",
            )?,
        };
        Ok(Some(std::sync::Arc::new(Verifier::new(
            trust.trusted_root()?,
            policy,
        ))))
    }
}

/// Keyless signing: a Sigstore certificate for an OIDC identity instead of a key file.
#[cfg(feature = "registry")]
#[derive(clap::Args, Debug, Clone)]
pub struct KeylessSignFlags {
    /// Sign keyless: an ephemeral key certified by Fulcio for the OIDC identity token, each
    /// attestation logged in Rekor, stored as Sigstore bundles (what `cosign attest` does without
    /// a key).
    #[arg(long)]
    pub keyless: bool,
    /// Environment variable holding the OIDC identity token (audience `sigstore`).
    #[arg(long, value_name = "NAME", default_value = "SIGSTORE_ID_TOKEN")]
    pub identity_token_env: String,
    /// File holding the OIDC identity token, read when signing (a mounted, refreshed token, e.g.
    /// a Kubernetes projected service-account token). Never a configuration file.
    #[arg(long, value_name = "FILE")]
    pub identity_token_file: Option<std::path::PathBuf>,
    /// Sigstore signing config (`signing_config.json` v0.2): the Fulcio and Rekor instances to
    /// use; default: the public-good instance (or the one in --trust-config).
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<std::path::PathBuf>,
    /// The largest request sent to the transparency log, in bytes: a Rekor v1 entry carries the
    /// whole envelope, and the public instance refuses a few megabytes. A larger attestation is
    /// refused before any log request.
    #[arg(long, value_name = "BYTES", default_value_t = cnb_attest::keyless::DEFAULT_MAX_LOG_REQUEST)]
    pub max_log_request: u64,
}

#[cfg(feature = "registry")]
impl KeylessSignFlags {
    /// The keyless source these flags ask for, or `None` without `--keyless`.
    pub fn source(
        &self,
        trust: &SigstoreTrustFlags,
    ) -> Result<Option<cnb_attest::keyless::KeylessSource>, Error> {
        use cnb_attest::keyless::{KeylessSource, SigningConfig, TokenSource};
        if !self.keyless {
            return Ok(None);
        }
        let token = match &self.identity_token_file {
            Some(path) => TokenSource::File(path.clone()),
            None => TokenSource::Env(self.identity_token_env.clone()),
        };
        let trusted_root = trust.trusted_root()?;
        let signing_config = match (&self.signing_config, trust.client_config()?) {
            (Some(path), _) => Some(
                SigningConfig::from_file(path).map_err(|e| Error::InvalidRequest(e.to_string()))?,
            ),
            (None, Some(config)) => Some(config.signing_config),
            (None, None) => None,
        };
        let mut source = match signing_config {
            Some(config) => KeylessSource::from_signing_config(token, &config, trusted_root)?,
            None => {
                if trust.trusted_root.is_some() {
                    return Err(Error::InvalidRequest(
                        "--trusted-root names a private instance's root, but no --signing-config \
                         says where its Fulcio and Rekor are"
                            .into(),
                    ));
                }
                KeylessSource::public_good(token)
            }
        };
        source.options.max_log_request = self.max_log_request;
        Ok(Some(source))
    }
}

/// `--platform` values: `os/arch[/variant]`, repeatable or comma-separated.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PlatformFlags {
    /// For an image index: the platform(s) to work on, `os/arch[/variant]` (e.g. linux/arm64);
    /// repeat or comma-separate. Default: every platform of the index, reported one by one.
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',', value_parser = platform)]
    pub platforms: Vec<cnb_attest::PlatformSpec>,
}

/// Parses one `os/arch[/variant]` (a clap value parser).
pub fn platform(text: &str) -> Result<cnb_attest::PlatformSpec, String> {
    text.trim()
        .parse()
        .map_err(|e: cnb_attest::platform::BadPlatform| e.to_string())
}

/// The lifecycle's build target as a platform: `CNB_TARGET_OS`/`CNB_TARGET_ARCH` (and
/// `CNB_TARGET_ARCH_VARIANT` when set and not empty); `None` unless both are set.
pub fn target_platform_from_env() -> Result<Option<cnb_attest::PlatformSpec>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("CNB_TARGET_OS"), var("CNB_TARGET_ARCH")) {
        (Some(os), Some(arch)) => {
            let text = match var("CNB_TARGET_ARCH_VARIANT") {
                Some(variant) => format!("{os}/{arch}/{variant}"),
                None => format!("{os}/{arch}"),
            };
            platform(&text)
                .map(Some)
                .map_err(|e| format!("CNB_TARGET_OS/CNB_TARGET_ARCH: {e}"))
        }
        _ => Ok(None),
    }
}
