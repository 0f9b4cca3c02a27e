//! Transport (hostile-input cases 51–53): certificates are always verified, HTTPS is the default
//! for every registry (loopback included), and plain HTTP is a per-registry opt-in. The HTTPS
//! registry is Debian's `docker-registry` with a self-signed certificate made by `openssl`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
