//! Real registries started by the tests on 127.0.0.1: Debian's `docker-registry` (CNCF
//! Distribution 2.8: no Referrers API, htpasswd basic auth) and `ferro-oci-server` (the OCI 1.1
//! Referrers API, no auth). Each owns a temporary storage directory and is stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{missing, tools_dir, which};

/// User name of the htpasswd-protected registry.
pub const USER: &str = "cnb";
/// Its password (a test credential, also used to check nothing prints it).
pub const PASSWORD: &str = "cnb-test-password";
/// bcrypt of [`PASSWORD`] (cost 5).
const HTPASSWD: &str = "cnb:$2b$05$HbexRwN00IA93Xio/WwmqeENCVGXrFvB26a7NEgdLN0ZeiDuduKta\n";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// CNCF Distribution 2.8 with htpasswd: the tag-schema fallback path.
    Distribution,
    /// ferro-oci-server: the Referrers API path.
    Ferro,
}

/// A running registry.
pub struct Registry {
    /// Which server it is.
    pub kind: Kind,
    /// `127.0.0.1:<port>`.
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry of `kind`, or returns `None` (skipping, or failing under CI) when the
    /// server is not installed.
    pub fn start(kind: Kind) -> Option<Registry> {
        Registry::start_with(kind, true)
    }

    /// [`Registry::start`]; with `delete` false, Distribution refuses `DELETE` (405 `UNSUPPORTED`,
    /// its default), as many private registries do. ferro-oci-server always allows it.
    pub fn start_with(kind: Kind, delete: bool) -> Option<Registry> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let child = match kind {
            Kind::Distribution => {
                let binary = which("docker-registry").or_else(|| missing("docker-registry"))?;
                std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
                let config = format!(
                    "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: {delete}}}}}\nhttp: {{addr: {host}}}\nauth: {{htpasswd: {{realm: cnb-test, path: {}}}}}\n",
                    dir.path().join("data").display(),
                    dir.path().join("htpasswd").display()
                );
                let path = dir.path().join("config.yml");
                std::fs::write(&path, config).unwrap();
                Command::new(binary)
                    .arg("serve")
                    .arg(&path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            }
            Kind::Ferro => {
                let binary: PathBuf = tools_dir().join("ferro/bin/ferro-oci-server");
                if !binary.is_file() {
                    missing("ferro-oci-server")?;
                }
                Command::new(binary)
                    .env("FERRO_OCI_LISTEN", &host)
                    .env("FERRO_OCI_STORAGE_DIR", dir.path().join("data"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            }
        };
        let registry = Registry {
            kind,
            host,
            child,
            _dir: dir,
        };
        registry.wait_ready();
        Some(registry)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                let out = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!("http://{}/v2/", self.host))
                    .output();
                if let Ok(out) = out {
                    let code = String::from_utf8_lossy(&out.stdout).to_string();
                    if code == "200" || code == "401" {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{:?} registry on {} did not start", self.kind, self.host);
    }

    /// The `user:password` for skopeo and curl, if the registry needs one.
    pub fn creds(&self) -> Option<String> {
        (self.kind == Kind::Distribution).then(|| {
            use base64::Engine as _;
            let creds = format!("{USER}:{PASSWORD}");
            crate::secret(PASSWORD);
            crate::secret(&base64::engine::general_purpose::STANDARD.encode(&creds));
            creds
        })
    }

    /// `CNB_REGISTRY_AUTH` for this registry.
    pub fn cnb_registry_auth(&self) -> String {
        use base64::Engine as _;
        match self.creds() {
            Some(c) => format!(
                "{{\"{}\": \"Basic {}\"}}",
                self.host,
                base64::engine::general_purpose::STANDARD.encode(c)
            ),
            None => "{}".to_string(),
        }
    }

    /// Copies an OCI layout image into this registry with skopeo (an independent writer), keeping
    /// digests. Returns the pushed reference `<host>/<repo>:<tag>`.
    pub fn push_layout(&self, layout: &std::path::Path, repo: &str, tag: &str) -> String {
        self.push_layout_tag(layout, "latest", repo, tag)
    }

    /// [`Registry::push_layout`] of the layout's image tagged `from`.
    pub fn push_layout_tag(
        &self,
        layout: &std::path::Path,
        from: &str,
        repo: &str,
        tag: &str,
    ) -> String {
        let reference = format!("{}/{repo}:{tag}", self.host);
        let mut command = Command::new("skopeo");
        command
            .args([
                "copy",
                "-q",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:{from}", layout.display()))
            .arg(format!("docker://{reference}"));
        if let Some(creds) = self.creds() {
            command.arg("--dest-creds").arg(creds);
        }
        crate::ok(crate::run(&mut command));
        reference
    }

    /// The manifest digest `reference` resolves to, as skopeo (an independent reader) sees it.
    pub fn digest_of(&self, reference: &str) -> String {
        let mut command = Command::new("skopeo");
        command
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{reference}"));
        if let Some(creds) = self.creds() {
            command.arg("--creds").arg(creds);
        }
        crate::ok(crate::run(&mut command)).trim().to_string()
    }

    /// GET `path` on the registry with curl (an independent reader), returning the body.
    pub fn curl(&self, path: &str, accept: &str) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Accept: {accept}"))
            .arg(format!("http://{}{path}", self.host));
        if let Some(creds) = self.creds() {
            command.arg("-u").arg(creds);
        }
        let out = crate::run(&mut command);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// What an independent reader sees of `digest`'s referrers, read with curl: the raw Referrers
    /// API answer (ferro) or the raw `sha256-<hex>` index (Distribution), its `manifests`.
    pub fn listing(&self, repo: &str, digest: &str) -> Vec<serde_json::Value> {
        let accept = "application/vnd.oci.image.index.v1+json";
        let (status, body) = match self.kind {
            Kind::Ferro => self.curl(&format!("/v2/{repo}/referrers/{digest}"), accept),
            Kind::Distribution => self.curl(
                &format!("/v2/{repo}/manifests/sha256-{}", &digest[7..]),
                accept,
            ),
        };
        assert_eq!(status, 200, "{body}");
        let index: serde_json::Value = serde_json::from_str(&body).unwrap();
        index["manifests"].as_array().unwrap().clone()
    }

    /// Uploads `blob` to `repo` with curl (an independent writer): `POST` an upload, `PUT` it
    /// with its digest.
    pub fn upload_with_curl(&self, repo: &str, blob: &[u8]) {
        let mut post = Command::new("curl");
        post.args(["-s", "-o", "/dev/null", "-D", "-", "-X", "POST"])
            .arg(format!("http://{}/v2/{repo}/blobs/uploads/", self.host));
        if let Some(c) = self.creds() {
            post.arg("-u").arg(c);
        }
        let headers = crate::ok(crate::run(&mut post));
        let location = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
            })
            .expect("the upload's Location")
            .trim()
            .to_string();
        self.put_with_curl(
            &format!("{location}&digest={}", crate::sha256(blob)),
            "application/octet-stream",
            blob,
        );
    }

    /// `PUT`s an OCI image manifest as `repo:reference` with curl (an independent writer).
    pub fn put_manifest_with_curl(&self, repo: &str, reference: &str, bytes: &[u8]) {
        self.put_with_curl(
            &format!("http://{}/v2/{repo}/manifests/{reference}", self.host),
            "application/vnd.oci.image.manifest.v1+json",
            bytes,
        );
    }

    /// `PUT` of `bytes` as `content_type` to `url` with curl, with this registry's credentials.
    fn put_with_curl(&self, url: &str, content_type: &str, bytes: &[u8]) {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), bytes).unwrap();
        let mut put = Command::new("curl");
        put.args(["-s", "-f", "-X", "PUT", "-H"])
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", path.path().display()))
            .arg(url);
        if let Some(c) = self.creds() {
            put.arg("-u").arg(c);
        }
        crate::ok(crate::run(&mut put));
    }

    /// Stops the server (as a crash would) without removing its storage.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
