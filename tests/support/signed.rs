//! The shipped example pushed to a real registry started by the test (and signed there by the
//! CLI), and the CLI run against it directly or through a proxy: what the hostile-registry tests
//! over HTTP share, with the lookup of an attestation in an `ls --json` listing and the SBOM files
//! a successful `download` writes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
    /// An HTTP request to the registry itself with curl (an independent client): the status and
    /// the body. `content` is the `Accept` of a GET and the `Content-Type` of a body.
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        content: &str,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        self.curl_url(
            method,
            &format!("http://{}{path}", self.registry.host),
            content,
            body,
        )
    }

    /// [`SignedImage::curl`] to an absolute `url` (an upload location).
    pub fn curl_url(
        &self,
        method: &str,
        url: &str,
        content: &str,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        let mut command = Command::new("curl");
        command.args(["-s", "-X", method, "-w", "\n%{http_code}", url]);
        if let Some(creds) = self.registry.creds() {
            command.arg("-u").arg(creds);
        }
        match body {
            Some(_) => command
                .arg("-H")
                .arg(format!("Content-Type: {content}"))
                .args(["--data-binary", "@-"]),
            None => command.arg("-H").arg(format!("Accept: {content}")),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.unwrap_or_default())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let split = out.stdout.iter().rposition(|b| *b == b'\n').unwrap();
        let status = String::from_utf8_lossy(&out.stdout[split + 1..])
            .trim()
            .parse()
            .unwrap_or(0);
        (status, out.stdout[..split].to_vec())
    }

    /// Uploads `bytes` as a blob with curl (`POST`, then `PUT` to the upload location); returns
    /// its descriptor with `media_type`.
    pub fn push_blob(&self, bytes: &[u8], media_type: &str) -> Value {
        let digest = crate::sha256(bytes);
        let mut command = Command::new("curl");
        command
            .args(["-s", "-o", "/dev/null", "-D", "-", "-X", "POST"])
            .arg(format!(
                "http://{}/v2/{REPO}/blobs/uploads/",
                self.registry.host
            ));
        if let Some(creds) = self.registry.creds() {
            command.arg("-u").arg(creds);
        }
        let head = ok(run(&mut command));
        let location = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no upload location:\n{head}"));
        let url = if location.starts_with('/') {
            format!("http://{}{location}", self.registry.host)
        } else {
            location
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let (status, body) = self.curl_url(
            "PUT",
            &format!("{url}{separator}digest={digest}"),
            "application/octet-stream",
            Some(bytes),
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    /// Pushes manifest bytes under `reference` with curl; returns their descriptor.
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Value {
        let (status, body) = self.curl("PUT", &manifest_path(reference), media_type, Some(bytes));
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        json!({"mediaType": media_type, "digest": crate::sha256(bytes), "size": bytes.len()})
    }

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

/// The path of manifest `reference` (a tag or digest) of the image's repository.
pub fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}
