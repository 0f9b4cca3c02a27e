//! Command-line flags shared by `signer` and `cnb-attest` (feature `cli`), so both spell, document
//! and interpret them the same way.

use cnb_registry::{Client, ClientOptions, Keychain};

use crate::{Error, SignOptions};

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
        SignOptions::from_flags(
            &self.format,
            &self.statement_version,
            &self.image_signature,
            std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        )
    }
}

/// How to reach registries.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryFlags {
    /// Registry (`host[:port]`) to reach over plain HTTP; repeatable. Also CNB_INSECURE_REGISTRIES.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Log every registry request (method, URL, status; never headers or bodies) to stderr.
    #[arg(long)]
    pub debug: bool,
    /// Overall deadline for the run's registry work, in seconds: no request starts or runs past
    /// it, retries included (0: none, only the per-request timeout of 300 s).
    #[arg(
        long,
        env = "CNB_ATTEST_TIMEOUT",
        default_value_t = 900,
        value_name = "SECONDS"
    )]
    pub timeout: u64,
}

impl RegistryFlags {
    /// A client with these flags, `CNB_INSECURE_REGISTRIES`, and the environment's credentials.
    pub fn client(&self) -> Result<Client, Error> {
        let mut options = ClientOptions::default().with_insecure_from_env();
        options
            .insecure
            .extend(self.insecure_registries.iter().cloned());
        options.debug = self.debug;
        let options = options.with_timeout(self.timeout);
        Ok(Client::new(Keychain::from_env()?, options)?)
    }
}
