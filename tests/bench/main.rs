//! `scripts/bench`: what batching buys, measured against a baseline run in the same process.
//!
//! Corpus: the Paketo spring-boot tree (10 SBOMs, 1.2 MB and 0.6 MB among them) in an app image
//! pushed to real registries started here (Distribution 2.8.2 with htpasswd: the tag-schema
//! fallback; ferro-oci-server: the Referrers API), reached through a proxy that adds a fixed
//! per-request delay (0 ms loopback, and 20 ms, a same-region round trip).
//!
//! - batched: one `cnb-attest sign` run for all 10 SBOMs (+ the image signature);
//! - baseline: the common CI pattern of one signing process per SBOM (what `cosign attest` does per
//!   file), played by the same tool given one SBOM per run, so only the batching differs;
//! - re-run: the batched run again (idempotency: nothing should be sent but the listing).
//!
//! Prints requests and wall time for each, and the ratios baseline / batched. Wall times are
//! medians of `RUNS` fresh repositories; request counts are the client's own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cnb_attest_tests::proxy::{Action, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{fresh_spring_boot, key_pair_with, ok, run};
use serde_json::Value;

const RUNS: usize = 3;

fn bin(name: &str) -> PathBuf {
    std::env::current_exe()
        .expect("current_exe")
        .parent()
        .expect("target dir")
        .join(name)
}

/// One signing run: (requests, wall time).
fn sign(
    reference: &str,
    layers: &Path,
    keys: &Path,
    proxy: &Proxy,
    registry: &Registry,
) -> (u64, Duration) {
    let started = Instant::now();
    let out = ok(run(Command::new(bin("cnb-attest"))
        .args(["sign", reference, "--json", "--layers"])
        .arg(layers)
        .arg("--key")
        .arg(keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", "")
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("CNB_INSECURE_REGISTRIES", &proxy.host)
        .env("CNB_REGISTRY_AUTH", proxy_auth(proxy, registry))));
    let elapsed = started.elapsed();
    let report: Value = serde_json::from_str(&out).expect("report");
    (report["requests"].as_u64().unwrap_or(0), elapsed)
}

fn proxy_auth(proxy: &Proxy, registry: &Registry) -> String {
    use base64::Engine as _;
    match registry.creds() {
        Some(c) => proxy.registry_auth(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(c)
        )),
        None => "{}".into(),
    }
}

/// Layers directories holding one SBOM file each (the per-SBOM baseline's inputs).
fn one_sbom_each(layers: &Path, dir: &Path) -> Vec<PathBuf> {
    let files: Vec<String> = cnb_attest_tests::sbom_files(layers).into_keys().collect();
    files
        .iter()
        .enumerate()
        .map(|(i, keep)| {
            let copy = dir.join(format!("one-{i}"));
            cnb_attest_tests::copy_dir(layers, &copy);
            for other in files.iter().filter(|f| *f != keep) {
                std::fs::remove_file(copy.join("sbom/launch").join(other)).unwrap();
            }
            copy
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    println!("corpus: Paketo spring-boot, 10 SBOMs (+1 image signature); {RUNS} fresh repositories per cell, median wall time");
    println!(
        "{:<13} {:>5} | {:>8} {:>9} | {:>8} {:>9} | {:>6} {:>6} | {:>6}",
        "registry", "delay", "batched", "", "per-SBOM", "", "req x", "time x", "re-run"
    );
    for kind in [Kind::Distribution, Kind::Ferro] {
        let Some(registry) = Registry::start(kind) else {
            continue;
        };
        for delay in [0u64, 20] {
            let proxy = Proxy::start(
                &registry.host,
                Plan::new().on(
                    |_| true,
                    move |_, _| {
                        if delay == 0 {
                            Action::Forward
                        } else {
                            Action::Delayed(delay)
                        }
                    },
                ),
            );
            let (mut batched, mut single, mut rerun) = (Vec::new(), Vec::new(), 0);
            let (mut batched_requests, mut single_requests) = (0, 0);
            for round in 0..RUNS {
                let tmp = tempfile::tempdir().unwrap();
                let (layers, image) = fresh_spring_boot(tmp.path());
                key_pair_with(&bin("cnb-attest"), &tmp.path().join("k"), "");
                let push = |repo: &str| {
                    registry
                        .push_layout(&image, repo, "1.0")
                        .replace(&registry.host, &proxy.host)
                };
                let a = push(&format!("bench/batched-{delay}-{round}"));
                let (requests, time) = sign(&a, &layers, &tmp.path().join("k"), &proxy, &registry);
                batched.push(time);
                batched_requests = requests;
                rerun = sign(&a, &layers, &tmp.path().join("k"), &proxy, &registry).0;

                let b = push(&format!("bench/single-{delay}-{round}"));
                let (mut requests, mut time) = (0, Duration::ZERO);
                for one in one_sbom_each(&layers, tmp.path()) {
                    let (r, t) = sign(&b, &one, &tmp.path().join("k"), &proxy, &registry);
                    requests += r;
                    time += t;
                }
                single.push(time);
                single_requests = requests;
            }
            let (tb, ts) = (median(batched), median(single));
            println!(
                "{:<13} {:>3}ms | {:>4} req {:>7.2}s | {:>4} req {:>7.2}s | {:>6.2} {:>6.2} | {:>2} req",
                format!("{kind:?}"),
                delay,
                batched_requests,
                tb.as_secs_f64(),
                single_requests,
                ts.as_secs_f64(),
                single_requests as f64 / batched_requests as f64,
                ts.as_secs_f64() / tb.as_secs_f64(),
                rerun
            );
        }
    }
}
