//! One measured run: a child process (cnb-attest, the floor client, sha256sum…) started through
//! `support/rss.rs` (peak RSS and user + system CPU by `wait4`), with the requests it sent as the
//! proxy in front of the registry recorded them (method, request body bytes, response body bytes,
//! arrival time). Bytes are HTTP bodies; heads are not counted.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cnb_attest_tests::proxy::{Proxy, Recorded};
use cnb_attest_tests::rss::run_measured;
use serde_json::{json, Value};

/// `--trace`: print every run's requests as the proxy saw them.
pub(crate) static TRACE: AtomicBool = AtomicBool::new(false);

/// What one run cost.
#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    /// `None`, or `error: <first line of stderr>`.
    pub(crate) error: Option<String>,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
    pub(crate) peak_rss: u64,
    /// Spawn to the first request the proxy saw.
    pub(crate) first_request: Option<Duration>,
    pub(crate) by_method: BTreeMap<String, u64>,
    /// Request body bytes (client to registry).
    pub(crate) sent: u64,
    /// Response body bytes (registry to client).
    pub(crate) received: u64,
    /// Request body bytes of blob uploads (`/blobs/uploads`).
    pub(crate) blob_bytes_sent: u64,
    /// Manifest PUTs.
    pub(crate) manifest_puts: u64,
    /// Blob GETs.
    pub(crate) blob_gets: u64,
    /// The child's stdout.
    pub(crate) stdout: String,
    /// The proxy's record of this run.
    pub(crate) log: Vec<Recorded>,
}

impl Figures {
    pub(crate) fn requests(&self) -> u64 {
        self.by_method.values().sum()
    }

    /// Adds another run's figures (the per-SBOM baseline's many processes); peak RSS is the max.
    pub(crate) fn add(&mut self, other: &Figures) {
        if self.error.is_none() {
            self.error.clone_from(&other.error);
        }
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.peak_rss = self.peak_rss.max(other.peak_rss);
        if self.first_request.is_none() {
            self.first_request = other.first_request;
        }
        for (k, v) in &other.by_method {
            *self.by_method.entry(k.clone()).or_default() += v;
        }
        self.sent += other.sent;
        self.received += other.received;
        self.blob_bytes_sent += other.blob_bytes_sent;
        self.manifest_puts += other.manifest_puts;
        self.blob_gets += other.blob_gets;
    }

    /// Multiplies the additive figures by `factor` (an estimate of all runs from a sample of
    /// them); peak RSS and the first request stay the sample's.
    pub(crate) fn scale(&mut self, factor: f64) {
        let n = |v: u64| (v as f64 * factor).round() as u64;
        self.wall = self.wall.mul_f64(factor);
        self.cpu = self.cpu.mul_f64(factor);
        for v in self.by_method.values_mut() {
            *v = n(*v);
        }
        self.sent = n(self.sent);
        self.received = n(self.received);
        self.blob_bytes_sent = n(self.blob_bytes_sent);
        self.manifest_puts = n(self.manifest_puts);
        self.blob_gets = n(self.blob_gets);
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "error": self.error,
            "wall_s": self.wall.as_secs_f64(),
            "cpu_s": self.cpu.as_secs_f64(),
            "peak_rss_bytes": self.peak_rss,
            "first_request_ms": self.first_request.map(|d| d.as_secs_f64() * 1000.0),
            "requests": self.requests(),
            "requests_by_method": self.by_method,
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "blob_bytes_sent": self.blob_bytes_sent,
            "manifest_puts": self.manifest_puts,
            "blob_gets": self.blob_gets,
        })
    }
}

/// Runs `command` to completion and measures it; `proxy` (when the run goes through one) is
/// asked for the requests that arrived during the run.
pub(crate) fn run(command: &mut Command, proxy: Option<&Proxy>) -> Figures {
    let before = proxy.map(Proxy::count).unwrap_or(0);
    let started = Instant::now();
    let measured = run_measured(command);
    let wall = started.elapsed();
    let log = proxy.map(|p| settled(p, before)).unwrap_or_default();
    let error = (!measured.output.status.success()).then(|| {
        let stderr = String::from_utf8_lossy(&measured.output.stderr);
        let stdout = String::from_utf8_lossy(&measured.output.stdout);
        let line = stderr
            .lines()
            .chain(stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        format!("error: {line} ({})", measured.output.status)
    });
    let mut figures = Figures {
        error,
        wall,
        cpu: measured.cpu,
        peak_rss: measured.peak_rss,
        first_request: log
            .first()
            .map(|r| r.request.at.saturating_duration_since(started)),
        stdout: String::from_utf8_lossy(&measured.output.stdout).into_owned(),
        ..Figures::default()
    };
    for r in &log {
        let q = &r.request;
        *figures.by_method.entry(q.method.clone()).or_default() += 1;
        figures.sent += r.body.len() as u64;
        figures.received += r.sent;
        if q.path().contains("/blobs/uploads") {
            figures.blob_bytes_sent += r.body.len() as u64;
        }
        if q.method == "PUT" && q.path().contains("/manifests/") {
            figures.manifest_puts += 1;
        }
        if q.method == "GET" && q.path().contains("/blobs/sha256:") {
            figures.blob_gets += 1;
        }
    }
    if TRACE.load(Ordering::Relaxed) && !log.is_empty() {
        let args: Vec<String> = command
            .get_args()
            .take(2)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!(
            "  trace: {} {} ({} requests, {:.1} ms)",
            command.get_program().to_string_lossy(),
            args.join(" "),
            log.len(),
            wall.as_secs_f64() * 1000.0
        );
        for r in &log {
            let q = &r.request;
            let at = q.at.saturating_duration_since(started).as_secs_f64() * 1000.0;
            let took = r
                .answered_at
                .map(|a| {
                    format!(
                        "{:.1} ms",
                        a.saturating_duration_since(q.at).as_secs_f64() * 1000.0
                    )
                })
                .unwrap_or_else(|| "-".into());
            // The path, and of the query only the digest (upload `_state`s are long).
            let target = match query_digest(&q.target) {
                Some(d) => format!("{}?digest={d}", q.path()),
                None if q.query().is_empty() => q.path().to_string(),
                None => format!("{}?…", q.path()),
            };
            println!(
                "    +{at:8.1} ms {:<5} {target} -> {} ({took}; {} B up, {} B down)",
                q.method,
                r.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| r.action.to_string()),
                r.body.len(),
                r.sent
            );
        }
    }
    figures.log = log;
    figures
}

/// The proxy's records from `from` on, once each has been answered (the proxy notes the answer
/// just after writing it, so the client may have exited a moment before).
fn settled(proxy: &Proxy, from: usize) -> Vec<Recorded> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if proxy.answered_since(from) || Instant::now() > deadline {
            return proxy.requests_since(from);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The median of `runs` by wall time, with the median CPU time (the other figures are the
/// median-wall run's).
pub(crate) fn median(mut runs: Vec<Figures>) -> Figures {
    let mut cpus: Vec<Duration> = runs.iter().map(|f| f.cpu).collect();
    cpus.sort();
    runs.sort_by_key(|f| f.wall);
    let mid = runs.len() / 2;
    let mut out = runs.swap_remove(mid);
    out.cpu = cpus[mid];
    out
}

/// The `digest` parameter of a request target's query, shortened to 19 characters.
fn query_digest(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":").chars().take(19).collect())
}
