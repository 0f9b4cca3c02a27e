//! Transport (hostile-input cases 51–53): certificates are always verified, HTTPS is the default
//! for every registry (loopback included), and plain HTTP is a per-registry opt-in. The HTTPS
//! registry is Debian's `docker-registry` with a self-signed certificate made by `openssl`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cnb_attest_tests::proxy::{Action, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{bin, fresh_example, missing, ok, run, text, which};

/// Distribution serving HTTPS with a certificate no trust store holds.
struct TlsRegistry {
    host: String,
    /// The CA that issued the server's certificate.
    ca: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_tls_registry() -> Option<TlsRegistry> {
    let binary = which("docker-registry").or_else(|| missing("docker-registry"))?;
    let openssl = which("openssl").or_else(|| missing("openssl"))?;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    // A CA no trust store holds, and the server's certificate it issued for 127.0.0.1.
    ok(run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=cnb-attest test CA",
        ])
        .args(ec)
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign"])
        .arg("-keyout")
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("ca.pem"))));
    ok(run(Command::new(&openssl)
        .args(["req", "-new", "-subj", "/CN=127.0.0.1"])
        .args(ec)
        .arg("-keyout")
        .arg(path("key.pem"))
        .arg("-out")
        .arg(path("server.csr"))));
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ok(run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "1", "-CAcreateserial", "-in"])
        .arg(path("server.csr"))
        .arg("-CA")
        .arg(path("ca.pem"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-extfile")
        .arg(path("server.ext"))
        .arg("-out")
        .arg(path("cert.pem"))));
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    let host = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {host}, tls: {{certificate: {}, key: {}}}}}\n",
        dir.path().join("data").display(),
        cert.display(),
        key.display()
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(binary)
        .arg("serve")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = TlsRegistry {
        host,
        ca,
        child,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&registry.ca)
            .arg(format!("https://{}/v2/", registry.host))
            .output()
            .unwrap();
        if out.stdout == b"200" {
            return Some(registry);
        }
        assert!(
            Instant::now() < deadline,
            "the HTTPS registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn push(layout: &Path, reference: &str) {
    ok(run(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{reference}"))));
}

/// `cnb-attest ls --debug` with only the given environment for registries.
fn ls(reference: &str, insecure: &str, ssl_cert_file: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(bin("cnb-attest"));
    command
        .args(["ls", "--debug", reference])
        .env("CNB_INSECURE_REGISTRIES", insecure)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("CNB_ATTEST_TIMEOUT", "30")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    if let Some(file) = ssl_cert_file {
        command.env("SSL_CERT_FILE", file);
    }
    run(&mut command)
}

/// The URLs of the requests `--debug` logged.
fn requested(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|line| line.strip_prefix("DEBUG "))
        .filter_map(|line| line.split(' ').nth(1).map(str::to_string))
        .collect()
}

/// Case 51: a certificate no trust store holds fails the run, naming the certificate problem;
/// nothing is retried over plain HTTP. The same registry, its certificate trusted through the
/// system store's `SSL_CERT_FILE`, is read: the failure was the certificate, not the server.
#[test]
fn an_untrusted_certificate_fails_and_is_never_retried_over_http() {
    let Some(registry) = start_tls_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let reference = format!("{}/tls/app:1.0", registry.host);
    push(&image, &reference);

    let refused = ls(&reference, "", None);
    let all = text(&refused);
    assert!(!refused.status.success(), "{all}");
    assert!(all.to_lowercase().contains("certificate"), "{all}");
    let urls = requested(&refused);
    assert!(!urls.is_empty(), "--debug logged no request: {all}");
    assert!(
        urls.iter().all(|u| u.starts_with("https://")),
        "a request went out without TLS: {urls:?}"
    );

    let trusted = ls(&reference, "", Some(&registry.ca));
    assert_eq!(trusted.status.code(), Some(4), "{}", text(&trusted));
    assert!(!text(&trusted).contains("-> error"), "{}", text(&trusted));
    assert!(requested(&trusted)
        .iter()
        .all(|u| u.starts_with(&format!("https://{}/", registry.host))));
}

/// Cases 52 and 53: a loopback registry is reached over HTTPS unless it is named insecure, and
/// naming another registry (another port of the same address) does not make this one plain HTTP;
/// there is no option that turns certificate checks off.
#[test]
fn plain_http_only_for_the_registry_named_insecure() {
    let Some(registry) = Registry::start(Kind::Ferro) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let reference = registry.push_layout(&image, "plain/app", "1.0");
    let other = format!("127.0.0.1:{}", free_port());

    // Named insecure: the exact `host:port`; the address alone or another port is another
    // registry.
    for insecure in ["", other.as_str(), "127.0.0.1"] {
        let out = ls(&reference, insecure, None);
        assert_eq!(
            out.status.code(),
            Some(1),
            "insecure = {insecure:?}: {}",
            text(&out)
        );
        let urls = requested(&out);
        assert!(
            !urls.is_empty() && urls.iter().all(|u| u.starts_with("https://")),
            "insecure = {insecure:?}: {urls:?}"
        );
    }
    // Read over plain HTTP: the image has no attestations (exit 4), every request answered.
    let named = ls(&reference, &registry.host, None);
    assert_eq!(named.status.code(), Some(4), "{}", text(&named));
    let urls = requested(&named);
    assert!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u.starts_with(&format!("http://{}/", registry.host))),
        "{urls:?}"
    );
    assert!(!text(&named).contains("-> error"), "{}", text(&named));

    let help = ok(run(Command::new(bin("cnb-attest")).args(["ls", "--help"])));
    for flag in ["tls-verify", "skip-tls", "insecure-skip"] {
        assert!(!help.contains(flag), "ls offers {flag}: {help}");
    }
}

/// Case 47: layer descriptors with foreign `urls` (as Windows base layers carry) are never
/// followed: every blob is fetched from the registry by digest, so no request, with or without
/// credentials, goes to the host the manifest names. The image's manifest is rewritten with curl
/// (an independent writer) to give every layer a URL on another host; `download
/// --sbom-layer-fallback` restores the same files as from the image without URLs, and the other
/// host sees no request.
#[test]
fn foreign_layer_urls_are_never_followed() {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let Some(registry) = Registry::start(Kind::Ferro) else {
        return;
    };
    let foreign = Proxy::other_host(Plan::all(|_, _| Action::status(404)));
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let plain = registry.push_layout(&image, "foreign/app", "1.0");
    let (status, manifest) = registry.curl("/v2/foreign/app/manifests/1.0", OCI_MANIFEST);
    assert_eq!(status, 200, "{manifest}");
    let mut manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    for layer in manifest["layers"].as_array_mut().unwrap() {
        let digest = layer["digest"].as_str().unwrap().to_string();
        layer["urls"] = serde_json::json!([format!("http://{}/layers/{digest}", foreign.host)]);
    }
    let body = tmp.path().join("manifest-with-urls.json");
    std::fs::write(&body, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let put = run(Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {OCI_MANIFEST}"))
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!(
            "http://{}/v2/foreign/app/manifests/urls",
            registry.host
        )));
    assert!(put.status.success(), "{}", text(&put));
    let with_urls = format!("{}/foreign/app:urls", registry.host);
    let (_, served) = registry.curl("/v2/foreign/app/manifests/urls", OCI_MANIFEST);
    assert!(
        served.contains(&foreign.host),
        "the registry dropped the urls: {served}"
    );

    let keys = tmp.path().join("k");
    cnb_attest_tests::key_pair(&keys, "");
    let download = |reference: &str, out: &Path| {
        run(Command::new(bin("cnb-attest"))
            .args(["download", reference, "--sbom-layer-fallback", "--key"])
            .arg(keys.join("cosign.pub"))
            .arg("-o")
            .arg(out)
            .env("CNB_INSECURE_REGISTRIES", &registry.host)
            .env("DOCKER_CONFIG", "/nonexistent"))
    };
    let (expected, got) = (tmp.path().join("plain"), tmp.path().join("urls"));
    ok(download(&plain, &expected));
    let out = download(&with_urls, &got);
    assert!(out.status.success(), "{}", text(&out));
    let files = cnb_attest_tests::sbom_files(&got.join("layers"));
    assert!(!files.is_empty(), "{}", text(&out));
    assert_eq!(
        files,
        cnb_attest_tests::sbom_files(&expected.join("layers"))
    );
    assert_eq!(foreign.count(), 0, "{:?}", foreign.requests());
}
