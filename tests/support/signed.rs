//! The shipped example pushed to a real registry started by the test (and signed there by the
//! CLI), and the CLI run against it directly or through a proxy: what the hostile-registry tests
//! over HTTP share, with the lookup of an attestation in an `ls --json` listing and the SBOM files
//! a successful `download` writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::proxy::{get, Action, Plan, Proxy};
use crate::registry::{Kind, Registry};
use crate::{bin, fresh_example, key_pair, ok, run, sbom_files};

/// The repository the example is pushed to (tag `1.0`).
pub const REPO: &str = "hostile/app";
/// The predicate type of a CycloneDX SBOM attestation.
pub const CDX: &str = "https://cyclonedx.org/bom";
/// The predicate type of an SPDX SBOM attestation.
pub const SPDX: &str = "https://spdx.dev/Document";
/// The example's node-engine buildpack (layer `node` has CycloneDX and SPDX SBOMs).
pub const NODE: &str = "paketo-buildpacks/node-engine";
/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The artifact type of a Sigstore bundle referrer.
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// 5 GiB, the size hostile answers announce.
pub const FIVE_GIB: u64 = 5 << 30;
/// What the error says of a manifest over the 4 MiB limit.
pub const MAX_MANIFEST: &str = "exceeds the 4194304-byte limit";

/// The example pushed to a fresh registry (and, for [`SignedImage::signed`], signed there by the
/// CLI), with a key pair under `k/` of its scratch directory.
pub struct SignedImage {
    /// The registry holding the image.
    pub registry: Registry,
    /// Scratch directory: the example's copy, the key pair, output directories.
    pub tmp: tempfile::TempDir,
    /// The example's layers directory (its SBOMs are what `download` must write).
    pub layers: PathBuf,
    /// The image manifest digest.
    pub digest: String,
    /// `ls --json` of the signed image (empty when unsigned).
    pub listed: Vec<Value>,
}

impl SignedImage {
    /// The example pushed with skopeo as `<registry>/hostile/app:1.0`, and a key pair; no
    /// attestations. `None` when the registry cannot be started (the test is skipped).
    pub fn pushed(kind: Kind) -> Option<SignedImage> {
        let registry = Registry::start(kind)?;
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let reference = registry.push_layout(&image, REPO, "1.0");
        let digest = registry.digest_of(&reference);
        Some(SignedImage {
            registry,
            tmp,
            layers,
            digest,
            listed: Vec::new(),
        })
    }

    /// [`SignedImage::pushed`], then signed by the CLI talking to the registry directly (the
    /// example's SBOM attestations and the image signature), and listed with `ls --json`.
    pub fn signed(kind: Kind) -> Option<SignedImage> {
        let mut image = SignedImage::pushed(kind)?;
        let host = image.registry.host.clone();
        let reference = format!("{host}/{REPO}:1.0");
        ok(image.sign_at(&host, &reference, &[]));
        let listed = ok(image.cli_at(&host, &["ls", "--json", &reference]));
        image.listed = serde_json::from_str(&listed).unwrap();
        Some(image)
    }

    /// The directory holding `cosign.key` and `cosign.pub`.
    pub fn keys(&self) -> PathBuf {
        self.tmp.path().join("k")
    }

    /// The environment of a client reaching the registry at `host` (itself or a proxy): the
    /// registry's credentials keyed by that host, plain HTTP, no docker config.
    pub fn env_for<'a>(&self, host: &str, command: &'a mut Command) -> &'a mut Command {
        let auth = match self.registry.creds() {
            Some(creds) => format!(
                "{{\"{host}\": \"Basic {}\"}}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            ),
            None => "{}".to_string(),
        };
        command
            .env("CNB_REGISTRY_AUTH", auth)
            .env("CNB_INSECURE_REGISTRIES", host)
            .env("DOCKER_CONFIG", "/nonexistent")
    }

    /// `<proxy>/hostile/app:1.0`.
    pub fn reference(&self, proxy: &Proxy) -> String {
        format!("{}/{REPO}:1.0", proxy.host)
    }

    /// `cnb-attest <args...>` reaching the registry at `host` (itself or a proxy).
    pub fn cli_at(&self, host: &str, args: &[&str]) -> Output {
        run(self
            .env_for(host, &mut Command::new(bin("cnb-attest")))
            .args(args))
    }

    /// `cnb-attest <args...>` reaching the registry through `proxy`.
    pub fn cli(&self, proxy: &Proxy, args: &[&str]) -> Output {
        self.cli_at(&proxy.host, args)
    }

    /// `cnb-attest sign <reference> <extra...>` with the example's layers and key, reaching the
    /// registry at `host`.
    pub fn sign_at(&self, host: &str, reference: &str, extra: &[&str]) -> Output {
        run(self
            .env_for(host, &mut Command::new(bin("cnb-attest")))
            .args(["sign", reference])
            .args(extra)
            .arg("--layers")
            .arg(&self.layers)
            .arg("--key")
            .arg(self.keys().join("cosign.key"))
            .env("COSIGN_PASSWORD", ""))
    }

    /// `cnb-attest download <proxy>/hostile/app:1.0 -o <out> --key cosign.pub`.
    pub fn download(&self, proxy: &Proxy, out: &Path) -> Output {
        let key = self.keys().join("cosign.pub");
        self.cli(
            proxy,
            &[
                "download",
                &self.reference(proxy),
                "-o",
                out.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        )
    }

    /// A proxy in front of the registry that answers every GET of `path` itself, with `status`,
    /// `content_type` and a body of `length` bytes (`None`: an endless chunked body), ready to
    /// send 1 GiB of it; other requests are forwarded.
    pub fn streaming(
        &self,
        path: &str,
        status: u16,
        content_type: &str,
        length: Option<u64>,
    ) -> Proxy {
        let content_type = content_type.to_string();
        Proxy::start(
            &self.registry.host,
            Plan::new().on(get(path.to_string()), move |_, _| Action::Stream {
                status,
                headers: vec![("Content-Type".into(), content_type.clone())],
                length,
                limit: 1 << 30,
            }),
        )
    }

    /// The manifest digest of the attestation for a buildpack, layer and predicate type, from
    /// [`SignedImage::listed`].
    pub fn attestation(&self, buildpack: &str, layer: &str, predicate_type: &str) -> String {
        attestation_in(&self.listed, buildpack, layer, predicate_type)
    }

    /// The input SBOMs as `download` must write them: `layers/sbom/launch/...`.
    pub fn good(&self) -> BTreeMap<String, Vec<u8>> {
        good_files(&self.layers)
    }
}

/// The manifest digest of the attestation an `ls --json` listing gives for a buildpack, layer and
/// predicate type; panics, showing the listing, when there is none.
pub fn attestation_in(
    listed: &[Value],
    buildpack: &str,
    layer: &str,
    predicate_type: &str,
) -> String {
    listed
        .iter()
        .find(|l| {
            l["buildpack"] == buildpack
                && l["layer"] == layer
                && l["predicate-type"] == predicate_type
        })
        .unwrap_or_else(|| {
            panic!(
                "{buildpack}:{layer} {predicate_type} is not listed in {}",
                serde_json::to_string_pretty(listed).unwrap_or_default()
            )
        })["manifest-digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The SBOMs of a layers directory as `download` must write them: `layers/sbom/launch/...`.
pub fn good_files(layers: &Path) -> BTreeMap<String, Vec<u8>> {
    sbom_files(layers)
        .into_iter()
        .map(|(rel, bytes)| (format!("layers/sbom/launch/{rel}"), bytes))
        .collect()
}

/// Adds to an image index (a referrers listing) a copy of its entry for `digest`, made to describe
/// `manifest` instead: its digest and size.
pub fn list_like(index: &mut Value, digest: &str, manifest: &[u8]) {
    let mut entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == digest)
        .unwrap_or_else(|| panic!("{digest} is not listed in {index:#}"))
        .clone();
    entry["digest"] = json!(crate::sha256(manifest));
    entry["size"] = json!(manifest.len());
    index["manifests"].as_array_mut().unwrap().push(entry);
}
