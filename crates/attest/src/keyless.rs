//! Keyless (Sigstore) signing and verification: an OIDC identity instead of a key file.
//!
//! Signing ([`KeylessSource`], through [`crate::keys::KeySource::Keyless`]; feature `registry`,
//! which brings the network): one Fulcio certificate per run for an ephemeral P-256 key, each
//! envelope logged in Rekor v1 as a `dsse` 0.0.1 entry, stored as a Sigstore bundle v0.3 with the
//! certificate, the entry, its SET and inclusion proof. Every bundle is verified against the
//! trusted root before anything is stored.
//!
//! Verification ([`Verifier`], given to `VerifyRequest::keyless`, `RestoreRequest::keyless`,
//! `RebaseRequest::verify_keyless`): the certificate chain to the trusted root's Fulcio CA at the
//! log's integrated time, the SCT, the SET, the inclusion proof with a checkpoint signed by the
//! log, the log entry bound to this envelope and certificate, and the identity policy. Key-based
//! and keyless attestations can be mixed on one image.

pub use cnb_keyless::bundle::KeylessMaterial;
pub use cnb_keyless::policy::{IdentityPolicy, Matcher};
pub use cnb_keyless::token::{IdentityToken, TokenSource};
pub use cnb_keyless::trust::{ClientTrustConfig, SigningConfig, TrustedRoot};
pub use cnb_keyless::verify::{Rule, Verified, Verifier};

#[cfg(feature = "registry")]
pub use cnb_keyless::sign::{
    Instances, KeylessOptions, KeylessSigner, SignError, DEFAULT_MAX_LOG_REQUEST,
};

/// Where keyless signing gets its identity token, which Sigstore instance it uses, and the trusted
/// root its own bundles are checked against before they are stored.
#[cfg(feature = "registry")]
#[derive(Debug, Clone)]
pub struct KeylessSource {
    /// The OIDC identity token: an environment variable or a (mounted, refreshed) file; never a
    /// configuration file.
    pub token: TokenSource,
    /// The Fulcio and Rekor v1 instances.
    pub instances: Instances,
    /// The instance's trusted root.
    pub trusted_root: TrustedRoot,
    /// Log request size limit and timeout.
    pub options: KeylessOptions,
}

#[cfg(feature = "registry")]
impl KeylessSource {
    /// The public-good Sigstore instance (fulcio.sigstore.dev, rekor.sigstore.dev) and its
    /// embedded trusted root.
    pub fn public_good(token: TokenSource) -> Self {
        KeylessSource {
            token,
            instances: Instances::public_good(),
            trusted_root: TrustedRoot::public_good(),
            options: KeylessOptions::default(),
        }
    }

    /// The instance a signing config names (its Fulcio and its Rekor v1, valid now), trusted
    /// through `trusted_root`: a private or air-gapped instance.
    pub fn from_signing_config(
        token: TokenSource,
        config: &SigningConfig,
        trusted_root: TrustedRoot,
    ) -> Result<Self, crate::Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let fulcio = config.select_fulcio(now).ok_or_else(|| {
            crate::Error::InvalidRequest(
                "the signing config names no Fulcio instance (majorApiVersion 1) valid now".into(),
            )
        })?;
        let rekor = config.select_rekor_v1(now).ok_or_else(|| {
            crate::Error::InvalidRequest(
                "the signing config names no Rekor v1 log valid now (Rekor v2 logs are not \
                 supported for signing by this version)"
                    .into(),
            )
        })?;
        Ok(KeylessSource {
            token,
            instances: Instances {
                fulcio_url: fulcio.url.clone(),
                rekor_url: rekor.url.clone(),
            },
            trusted_root,
            options: KeylessOptions::default(),
        })
    }
}

/// One keyless run: the signer with its certificate, the self-check verifier, and the material
/// already logged for its envelopes (shared by every image the run signs).
#[cfg(feature = "registry")]
pub(crate) struct KeylessRun {
    signer: Box<KeylessSigner>,
    check: Verifier,
    logged: std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, String>>,
}

#[cfg(feature = "registry")]
impl KeylessRun {
    /// Reads the token and obtains the run's one certificate.
    pub(crate) async fn obtain(source: &KeylessSource) -> Result<KeylessRun, crate::Error> {
        let token = IdentityToken::from_source(&source.token).map_err(SignError::from)?;
        let signer = KeylessSigner::obtain(&source.instances, &token, &source.options).await?;
        // The self-check trusts any identity: it is about the instance (chain, SCT, log), not who.
        let any = || Matcher::regex(".+").expect("a valid regexp");
        let check = Verifier::new(
            source.trusted_root.clone(),
            IdentityPolicy {
                identity: any(),
                issuer: any(),
            },
        );
        Ok(KeylessRun {
            signer: Box::new(signer),
            check,
            logged: Default::default(),
        })
    }

    /// The ephemeral key of the certificate.
    pub(crate) fn key(&self) -> &cnb_dsse::SigningKey {
        self.signer.signing_key()
    }

    /// `options` plus the verification material of every envelope the run stores for `subject`,
    /// each logged in Rekor (once per run) and verified against the trusted root before anything
    /// is stored. Every envelope's log request size is checked before the first is sent.
    pub(crate) async fn options_for(
        &self,
        subject: &cnb_referrers::Descriptor,
        location: &str,
        config: &cnb_attestation_config::SignerConfig,
        roots: &cnb_attestation_config::AllowedRoots,
        options: &cnb_signing::SignOptions,
    ) -> Result<cnb_signing::SignOptions, crate::Error> {
        let lock = |m: &std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, String>>| {
            m.lock().unwrap_or_else(|e| e.into_inner()).clone()
        };
        options.check_keyless()?;
        // A transparency-log entry holds the whole envelope: keyless runs sign in memory.
        let options = &cnb_signing::SignOptions {
            stream_above: u64::MAX,
            ..options.clone()
        };
        // Envelopes are deterministic for one key: these are the ones the store will build.
        let planned =
            cnb_signing::plan(subject, None, location, config, roots, self.key(), options)?;
        let logged = lock(&self.logged);
        let mut todo: Vec<(Vec<u8>, &cnb_signing::Planned, &cnb_dsse::Envelope)> = Vec::new();
        for p in &planned {
            let Some(envelope) = p.prepared.envelope() else {
                continue;
            };
            let Some(sig) = envelope.signatures.first() else {
                continue;
            };
            if !logged.contains_key(&sig.sig) && !todo.iter().any(|(s, _, _)| *s == sig.sig) {
                todo.push((sig.sig.clone(), p, envelope));
            }
        }
        let what = |p: &cnb_signing::Planned| {
            if p.prepared.index == 0 {
                "the image signature".to_string()
            } else {
                format!(
                    "attestation #{} ({})",
                    p.prepared.index, p.prepared.predicate_type
                )
            }
        };
        for (_, p, envelope) in &todo {
            self.signer.check_log_size(envelope, &what(p))?;
        }
        for (sig, p, envelope) in todo {
            let material = self.signer.witness(envelope, &what(p)).await?;
            self.check.verify(envelope, &material).map_err(|e| {
                crate::Error::KeylessUntrusted(format!(
                    "{}: the bundle just made does not verify against the trusted root \
                         ({}: {}); nothing was stored (is --trusted-root the instance's?)",
                    what(p),
                    e.rule.name(),
                    e.message
                ))
            })?;
            self.logged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(sig, material.to_verification_material_json());
        }
        let mut options = options.clone();
        options.keyless = Some(std::sync::Arc::new(lock(&self.logged)));
        Ok(options)
    }
}
