//! Registries (feature `registry`): how to reach them, and what one supports.

use cnb_registry::{Client, ClientOptions, ImageRef, Keychain};
use cnb_sbom_restore::source::ImageSource;

use crate::{Error, Image};

pub use cnb_registry::doctor::{Check, Diagnosis};
pub use cnb_registry::{ImageRef as Reference, Stats};

/// How to reach registries. Credentials always come from the environment (docker's
/// `config.json`, credential helpers, `CNB_REGISTRY_AUTH`), never from these options.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP, beside `CNB_INSECURE_REGISTRIES`.
    pub insecure: Vec<String>,
    /// Log every request (method, URL, status; never headers or bodies) to stderr.
    pub debug: bool,
    /// Overall deadline for the run's registry work, in seconds (0: none).
    pub timeout_seconds: u64,
    /// Show a status line on stderr while a large blob is read (for a terminal).
    pub progress: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            debug: false,
            timeout_seconds: 900,
            progress: false,
        }
    }
}

impl RegistryOptions {
    /// A client with these options, `CNB_INSECURE_REGISTRIES`, and the environment's credentials.
    ///
    /// ```
    /// let client = cnb_attest::registry::RegistryOptions::default().client()?;
    /// assert_eq!(client.stats().total(), 0);
    /// # Ok::<(), cnb_attest::Error>(())
    /// ```
    pub fn client(&self) -> Result<Client, Error> {
        let mut options = ClientOptions::default().with_insecure_from_env();
        options.insecure.extend(self.insecure.iter().cloned());
        options.debug = self.debug;
        options.progress = self.progress;
        let options = options.with_timeout(self.timeout_seconds);
        Ok(Client::new(Keychain::from_env()?, options)?)
    }
}

/// Opens a registry image; a 404 is [`Error::ImageNotFound`].
pub(crate) async fn open(
    name: &str,
    reference: ImageRef,
    options: &RegistryOptions,
    platform: Option<&cnb_referrers::platform::PlatformSpec>,
) -> Result<Image, Error> {
    let client = options.client()?;
    let shown = reference.to_string();
    let image = client
        .read_image_for(&reference, platform)
        .await
        .map_err(|e| match e {
            cnb_registry::Error::Status { status: 404, .. } => {
                Error::ImageNotFound(format!("{name}: {e}"))
            }
            cnb_registry::Error::Platform { source, .. } => Error::platform(name, *source),
            e => Error::Registry(e),
        })?;
    Ok(Image::from_source(
        ImageSource::Registry {
            client: Box::new(client),
            reference,
            image: Box::new(image),
        },
        &shown,
        None,
    ))
}

/// What `registry` (`host[:port]`, or `host[:port]/repository` to use that repository as the
/// scratch space; default `<host>/cnb-attest/doctor`) supports: the Referrers API, OCI-Subject,
/// conditional writes, deletes, sizes. Test manifests are written to the scratch repository and
/// deleted where the registry allows it.
///
/// ```no_run
/// use cnb_attest::registry::{doctor, RegistryOptions};
/// let options = RegistryOptions { insecure: vec!["127.0.0.1:5000".into()], ..RegistryOptions::default() };
/// let (diagnosis, requests) = cnb_attest::block_on(doctor("127.0.0.1:5000", &options))??;
/// println!("{}: {} ({requests} requests)", diagnosis.repository, diagnosis.signer_path);
/// # Ok::<(), cnb_attest::Error>(())
/// ```
pub async fn doctor(registry: &str, options: &RegistryOptions) -> Result<(Diagnosis, u64), Error> {
    let text = if registry.contains('/') {
        registry.to_string()
    } else {
        format!("{registry}/cnb-attest/doctor")
    };
    let reference = ImageRef::parse(&text).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let client = options.client()?;
    let diagnosis = cnb_registry::doctor::diagnose(&client, &reference.repository).await?;
    Ok((diagnosis, client.stats().total()))
}
