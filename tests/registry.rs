//! The signer's real job against real registries started by the tests: Debian's `docker-registry`
//! (Distribution 2.8.2, htpasswd basic auth, no Referrers API: the tag-schema fallback) and
//! `ferro-oci-server` (the Referrers API). Independent readers (curl) check what is stored.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cnb_attest_tests::registry::{Kind, Registry, PASSWORD, USER};
use cnb_attest_tests::{
    bin, fresh_example, fresh_spring_boot, is_image_signature, key_pair, ok, run, sha256,
    split_image_signatures, text, toml_to_json, COSIGN_SIGN_V1,
};
use serde_json::Value;

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn registries() -> Vec<Registry> {
    [Kind::Distribution, Kind::Ferro]
        .into_iter()
        .filter_map(Registry::start)
        .collect()
}

fn with_registry_env<'a>(command: &'a mut Command, registry: &Registry) -> &'a mut Command {
    command
        .env("CNB_REGISTRY_AUTH", registry.cnb_registry_auth())
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", "/nonexistent")
}

fn sign(registry: &Registry, reference: &str, layers: &Path, keys: &Path, extra: &[&str]) -> Value {
    let out = ok(run(with_registry_env(
        Command::new(bin("cnb-attest"))
            .args(["sign", reference, "--json", "--layers"])
            .arg(layers)
            .arg("--key")
            .arg(keys.join("cosign.key"))
            .args(extra)
            .env("COSIGN_PASSWORD", ""),
        registry,
    )));
    serde_json::from_str(&out).unwrap()
}

/// What an independent reader sees: the raw Referrers API answer, or the raw `sha256-<hex>` index.
fn listed_by_plain_http(registry: &Registry, repo: &str, digest: &str) -> Vec<Value> {
    registry.listing(repo, digest)
}

#[test]
fn signs_on_both_registries_and_plain_http_readers_see_every_attestation() {
    for registry in registries() {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        key_pair(&tmp.path().join("k"), "");
        let reference = registry.push_layout(&image, "demo/app", "1.0");
        let digest = registry.digest_of(&reference);
        let report = sign(&registry, &reference, &layers, &tmp.path().join("k"), &[]);
        let kind = registry.kind;
        // 7 SBOM attestations + the image signature, each its own bundle referrer.
        assert_eq!(report["pushed"], 8, "{kind:?}: {report:#}");
        let (attestations, signatures) =
            split_image_signatures(report["attestations"].as_array().unwrap());
        assert_eq!(attestations.len(), 7, "{kind:?}: {report:#}");
        assert_eq!(signatures.len(), 1, "{kind:?}: {report:#}");
        assert_eq!(signatures[0]["index"], 0);
        assert_eq!(signatures[0]["format"], "bundle");
        assert!(signatures[0]["buildpack"].is_null() && signatures[0]["layer"].is_null());
        assert_eq!(report["referrers-api"], kind == Kind::Ferro, "{kind:?}");
        assert_eq!(
            report["index-writes"],
            if kind == Kind::Ferro { 0 } else { 1 }
        );

        let listed = listed_by_plain_http(&registry, "demo/app", &digest);
        assert_eq!(listed.len(), 8, "{kind:?}: {listed:#?}");
        let ours: Vec<&str> = report["attestations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["manifest-digest"].as_str().unwrap())
            .collect();
        for entry in &listed {
            assert!(ours.contains(&entry["digest"].as_str().unwrap()), "{entry}");
            assert_eq!(entry["artifactType"], BUNDLE);
            let annotations = &entry["annotations"];
            if annotations["dev.sigstore.bundle.predicateType"] == COSIGN_SIGN_V1 {
                assert_eq!(
                    entry["digest"], signatures[0]["manifest-digest"],
                    "{kind:?}"
                );
                assert!(
                    annotations
                        .as_object()
                        .unwrap()
                        .keys()
                        .all(|k| !k.starts_with("io.buildpacks.")),
                    "{kind:?}: the image signature carries buildpacks annotations: {entry}"
                );
                continue;
            }
            for name in [
                "dev.sigstore.bundle.content",
                "dev.sigstore.bundle.predicateType",
                "io.buildpacks.buildpack.id",
                "io.buildpacks.layer.name",
                "io.buildpacks.sbom.media-type",
                "io.buildpacks.sbom.digest",
            ] {
                assert!(
                    annotations[name].is_string(),
                    "{kind:?}: {name} missing in {entry}"
                );
            }
        }

        let verified = run(with_registry_env(
            Command::new(bin("cnb-attest"))
                .args(["verify", &reference, "--key"])
                .arg(tmp.path().join("k/cosign.pub")),
            &registry,
        ));
        assert!(verified.status.success(), "{kind:?}: {}", text(&verified));
        let verdicts = text(&verified);
        assert_eq!(
            verdicts.matches("verified  sha256:").count(),
            8,
            "{kind:?}: 7 attestations + the image signature: {verdicts}"
        );
        let signature_line = format!(
            "verified  {} (no buildpack, {COSIGN_SIGN_V1}, bundle)",
            signatures[0]["manifest-digest"].as_str().unwrap()
        );
        assert!(verdicts.contains(&signature_line), "{kind:?}: {verdicts}");

        // Re-running uploads nothing and creates nothing.
        let again = sign(&registry, &reference, &layers, &tmp.path().join("k"), &[]);
        assert_eq!(again["pushed"], 0, "{kind:?}: {again:#}");
        assert_eq!(again["already-present"], 8);
        assert_eq!(again["blobs-written"], 0);
        assert_eq!(again["index-writes"], 0);
        let kinds = &again["requests-by-kind"];
        assert!(
            kinds["PUT manifest"].is_null() && kinds["POST upload"].is_null(),
            "{kinds}"
        );
        assert_eq!(
            listed_by_plain_http(&registry, "demo/app", &digest).len(),
            8
        );
    }
}

/// The phase flow on the Paketo spring-boot tree (10 attestations, plus the image signature: 11
/// referrers): exporter from report.toml + label, then signer. Prints the request figure and holds
/// it to the budget, which is per referrer pushed: at most 3 per referrer + 9 on the fallback
/// registry (two-request uploads; the 9th is the fresh read of the index just before it is
/// written, which keeps every writer's read→write gap one round trip and so lets the wait before
/// the read back be tens of milliseconds instead of 1.5 s: docs/decisions/referrers-fallback.md),
/// 2 + 8 on the Referrers API one.
#[test]
fn signer_request_budget_for_the_spring_boot_tree() {
    for registry in registries() {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_spring_boot(tmp.path());
        key_pair(&tmp.path().join("k"), "pw");
        let reference = registry.push_layout(&image, "demo/spring", "1.0");
        let digest = registry.digest_of(&reference);
        phase_flow(
            &registry,
            &layers,
            &image,
            &[&reference],
            &digest,
            tmp.path(),
        );
        let report: Value = toml_to_json(&layers.join("signer-report.toml"));
        let image_report = &report["image"][0];
        let requests = image_report["requests"].as_u64().unwrap();
        let kind = registry.kind;
        let (attestations, signatures) =
            split_image_signatures(image_report["attestations"].as_array().unwrap());
        assert_eq!(attestations.len(), 10, "{image_report:#}");
        assert_eq!(signatures.len(), 1, "{image_report:#}");
        // The budget is per referrer pushed: the 10 attestations and the image signature.
        let referrers = (attestations.len() + signatures.len()) as u64;
        eprintln!(
            "{kind:?}: {requests} requests for {referrers} referrers (10 attestations + 1 image signature): {}",
            image_report["requests-by-kind"]
        );
        assert_eq!(image_report["pushed"], referrers, "{image_report:#}");
        let (per_referrer, per_run) = if kind == Kind::Distribution {
            (3, 9)
        } else {
            (2, 8)
        };
        assert!(
            requests <= per_referrer * referrers + per_run,
            "{kind:?}: {requests} requests, over the budget of {per_referrer} per referrer \
             ({referrers} = 10 attestations + 1 image signature) + {per_run}"
        );
        if kind == Kind::Ferro {
            assert_eq!(image_report["index-writes"], 0);
        }
    }
}

/// report.toml tags in two repositories: both get the attestations and the image signature.
#[test]
fn every_repository_in_report_toml_gets_the_attestations() {
    for registry in registries() {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        key_pair(&tmp.path().join("k"), "pw");
        let first = registry.push_layout(&image, "team-a/app", "1.0");
        let second = registry.push_layout(&image, "team-b/mirror", "latest");
        let digest = registry.digest_of(&first);
        phase_flow(
            &registry,
            &layers,
            &image,
            &[&first, &second],
            &digest,
            tmp.path(),
        );
        for repo in ["team-a/app", "team-b/mirror"] {
            let listed = listed_by_plain_http(&registry, repo, &digest);
            let signatures = listed
                .iter()
                .filter(|e| e["annotations"]["dev.sigstore.bundle.predicateType"] == COSIGN_SIGN_V1)
                .count();
            assert_eq!(
                (listed.len() - signatures, signatures),
                (7, 1),
                "{:?} {repo}: 7 attestations and 1 image signature expected: {listed:#?}",
                registry.kind
            );
        }
    }
}

/// exporter (report.toml + label file) then signer, with `tags` in report.toml.
fn phase_flow(
    registry: &Registry,
    layers: &Path,
    image: &Path,
    tags: &[&str],
    digest: &str,
    tmp: &Path,
) {
    let layout = cnb_referrers::layout::OciLayout::open(image).unwrap();
    let descriptor = layout.resolve_image(None).unwrap();
    let label = layout.read_image(&descriptor).unwrap().config.labels
        ["io.buildpacks.lifecycle.metadata"]
        .clone();
    let label_path = tmp.join("label.json");
    fs::write(&label_path, label).unwrap();
    let tags_toml: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    fs::write(
        layers.join("report.toml"),
        format!(
            "[image]\n  tags = [{}]\n  digest = \"{digest}\"\n  manifest-size = 2000\n",
            tags_toml.join(", ")
        ),
    )
    .unwrap();
    let exported = ok(run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(layers)
        .arg("-image-label")
        .arg(&label_path)));
    assert!(exported.contains("Wrote"), "{exported}");
    ok(run(with_registry_env(
        Command::new(bin("signer"))
            .arg("-layers")
            .arg(layers)
            .arg("-key")
            .arg(tmp.join("k/cosign.key"))
            .env("COSIGN_PASSWORD", "pw"),
        registry,
    )));
}

/// The config of one concurrent signer: one CycloneDX attestation of the image at
/// `<host>/race/app@<digest>`, unique by `round` and `i`.
fn race_config(
    dir: &Path,
    host: &str,
    repo: &str,
    digest: &str,
    round: usize,
    i: usize,
) -> std::path::PathBuf {
    let config = dir.join(format!("c-{host}-{repo}-{round}-{i}.toml").replace([':', '/'], "_"));
    fs::write(
        &config,
        format!(
            "[image]\nreference = \"{host}/{repo}@{digest}\"\n\n[[attestations]]\n  [[attestations.predicate]]\n  type = \"https://cyclonedx.org/bom\"\n  value = '{{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\"version\":1,\"serialNumber\":\"urn:uuid:00000000-0000-4000-8000-{round:06}{i:06}\"}}'\n  [[attestations.statement.subject]]\n  name = \"{host}/{repo}\"\n  digest = \"{digest}\"\n"
        ),
    )
    .unwrap();
    config
}

/// Starts `cnb-attest sign --config <config>` against `host` (the registry or a proxy in front
/// of it), with the registry's credentials for that host.
fn spawn_race_signer(
    registry: &Registry,
    host: &str,
    reference: &str,
    config: &Path,
    keys: &Path,
) -> std::process::Child {
    use base64::Engine as _;
    let auth = format!(
        "{{\"{host}\": \"Basic {}\"}}",
        base64::engine::general_purpose::STANDARD.encode(registry.creds().unwrap())
    );
    Command::new(bin("cnb-attest"))
        .args(["sign", reference, "--json", "--config"])
        .arg(config)
        .arg("--key")
        .arg(keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", "")
        .env("CNB_REGISTRY_AUTH", auth)
        .env("CNB_INSECURE_REGISTRIES", host)
        .env("DOCKER_CONFIG", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `signers` signer processes at once on the same image, each with its own attestation, against
/// the fallback registry, `rounds` times: after every round the final `sha256-<hex>` index lists
/// every attestation of every round. Every process also signs the image itself; with the same key
/// and image that signature is the same deterministic referrer for all of them, so the index holds
/// `signers` per round + 1. Prints each round's wall time and the slowest signer's.
fn concurrent_signers_lose_no_update(signers: usize, rounds: usize) {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = registry.push_layout(&image, "race/app", "1.0");
    let digest = registry.digest_of(&reference);
    let mut all_expected = Vec::new();
    let mut image_signature: Option<String> = None;
    let mut index_writes = 0u64;
    for round in 0..rounds {
        let started = std::time::Instant::now();
        let children: Vec<_> = (0..signers)
            .map(|i| {
                let config = race_config(tmp.path(), &registry.host, "race/app", &digest, round, i);
                let child = spawn_race_signer(
                    &registry,
                    &registry.host,
                    &reference,
                    &config,
                    &tmp.path().join("k"),
                );
                (std::time::Instant::now(), child)
            })
            .collect();
        let mut slowest = std::time::Duration::ZERO;
        for (spawned, child) in children {
            let out: Output = cnb_attest_tests::finished(child);
            slowest = slowest.max(spawned.elapsed());
            let report: Value = serde_json::from_str(&ok(out)).unwrap();
            index_writes += report["index-writes"].as_u64().unwrap_or(0);
            let (attestations, signatures) =
                split_image_signatures(report["attestations"].as_array().unwrap());
            assert_eq!(attestations.len(), 1, "{report:#}");
            assert_eq!(signatures.len(), 1, "{report:#}");
            all_expected.push(
                attestations[0]["manifest-digest"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            let signature = signatures[0]["manifest-digest"].as_str().unwrap();
            let first = image_signature.get_or_insert_with(|| signature.to_string());
            assert_eq!(
                first, signature,
                "round {round}: same key and image, yet a different image signature"
            );
        }
        eprintln!(
            "{signers} signers, round {round}: {} ms in all, slowest signer {} ms",
            started.elapsed().as_millis(),
            slowest.as_millis()
        );
        let listed: Vec<String> = listed_by_plain_http(&registry, "race/app", &digest)
            .iter()
            .map(|e| e["digest"].as_str().unwrap().to_string())
            .collect();
        let signature = image_signature.as_ref().unwrap();
        for expected in all_expected.iter().chain([signature]) {
            assert!(
                listed.contains(expected),
                "round {round}: {expected} lost; index has {}",
                listed.len()
            );
        }
        assert_eq!(
            listed.len(),
            all_expected.len() + 1,
            "round {round}: duplicates or strangers (expected {signers} per round + the one image signature)"
        );
    }
    eprintln!(
        "{signers} signers × {rounds} rounds: {index_writes} index writes in all ({} signer runs)",
        signers * rounds
    );
}

/// 8 signer processes at once on the same image, 20 rounds in a row: no update is lost.
#[test]
fn eight_concurrent_signers_lose_no_update_twenty_runs_in_a_row() {
    concurrent_signers_lose_no_update(8, 20);
}

/// 32 signer processes at once on the same image, against the fallback registry: every
/// attestation of every signer is listed at the end of each round. The wait before each signer
/// reads the index back is a few times its own measured read→write gap, not a constant; 32 writers
/// finishing together on two cores are the case where a stale write is most likely to land late.
#[test]
fn thirty_two_concurrent_signers_lose_no_update() {
    concurrent_signers_lose_no_update(32, 1);
}

/// When the stale write of the attack below reaches the registry.
#[derive(Clone, Copy, Debug)]
enum Release {
    /// This many milliseconds after the registry answered our index write: within our wait.
    AfterOurWrite(u64),
    /// After our signer has exited: later than any wait of ours.
    AfterOurRun,
}

/// What one [`stale_write_race`] left behind.
struct Race {
    ours: Value,
    theirs: Value,
    ours_attestation: String,
    listed: Vec<String>,
    /// Milliseconds from the registry's answer to our first index write to: the stale write
    /// answered, and our read back arriving.
    timeline: String,
}

/// Two signers on one image in `repo`. Theirs goes through a proxy that holds its index `PUT`
/// (made right after its fresh read, so the read is from before ours) until `release`: its
/// read→write gap is stretched far beyond one round trip, and its write drops our entry. Ours goes
/// through a recording proxy, so the test sees when our write and our read back happened.
fn stale_write_race(registry: &Registry, repo: &str, release: Release) -> Race {
    use cnb_attest_tests::proxy::{Action, Plan, Proxy};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = registry.push_layout(&image, repo, "1.0");
    let digest = registry.digest_of(&reference);
    let index_path = format!("/v2/{repo}/manifests/sha256-{}", &digest[7..]);
    let is_index_put = {
        let index_path = index_path.clone();
        move |r: &cnb_attest_tests::proxy::RequestInfo| r.method == "PUT" && r.path() == index_path
    };

    let ours_proxy = Arc::new(Proxy::start(&registry.host, Plan::new()));
    let held = Arc::new(AtomicBool::new(false));
    let ours_done = Arc::new(AtomicBool::new(false));
    let plan = {
        let (held, ours_done, ours_proxy) = (held.clone(), ours_done.clone(), ours_proxy.clone());
        let is_index_put_ours = is_index_put.clone();
        Plan::new().on(is_index_put.clone(), move |_, n| {
            if n > 0 {
                return Action::Forward;
            }
            held.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(120);
            match release {
                Release::AfterOurWrite(lag) => {
                    while !ours_proxy
                        .matching(&is_index_put_ours)
                        .iter()
                        .any(|r| r.answered_at.is_some())
                    {
                        assert!(Instant::now() < deadline, "our index write never came");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(Duration::from_millis(lag));
                }
                Release::AfterOurRun => {
                    while !ours_done.load(Ordering::SeqCst) {
                        assert!(Instant::now() < deadline, "our signer never finished");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            Action::Forward
        })
    };
    let theirs_proxy = Proxy::start(&registry.host, plan);

    let keys = tmp.path().join("k");
    let theirs_config = race_config(tmp.path(), &theirs_proxy.host, repo, &digest, 0, 1);
    let theirs = spawn_race_signer(
        registry,
        &theirs_proxy.host,
        &format!("{}/{repo}@{digest}", theirs_proxy.host),
        &theirs_config,
        &keys,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !held.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "their index write never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ours_config = race_config(tmp.path(), &ours_proxy.host, repo, &digest, 0, 0);
    let ours = spawn_race_signer(
        registry,
        &ours_proxy.host,
        &format!("{}/{repo}@{digest}", ours_proxy.host),
        &ours_config,
        &keys,
    );
    let ours: Value = serde_json::from_str(&ok(cnb_attest_tests::finished(ours))).unwrap();
    ours_done.store(true, Ordering::SeqCst);
    let theirs: Value = serde_json::from_str(&ok(cnb_attest_tests::finished(theirs))).unwrap();

    let attestation = |report: &Value| {
        let (attestations, _) = split_image_signatures(report["attestations"].as_array().unwrap());
        attestations[0]["manifest-digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ours_log = ours_proxy.matching(|r| r.path() == index_path);
    let our_write = ours_log
        .iter()
        .find(|r| r.request.method == "PUT")
        .and_then(|r| r.answered_at)
        .expect("our index write");
    let our_read_back = ours_log
        .iter()
        .find(|r| r.request.method == "GET" && r.request.at > our_write)
        .map(|r| r.request.at);
    let stale = theirs_proxy
        .matching(&is_index_put)
        .first()
        .and_then(|r| r.answered_at);
    let since = |t: Option<Instant>| {
        t.map(|t| format!("{} ms", t.saturating_duration_since(our_write).as_millis()))
            .unwrap_or_else(|| "never".into())
    };
    Race {
        ours_attestation: attestation(&ours),
        ours,
        theirs,
        listed: listed_by_plain_http(registry, repo, &digest)
            .iter()
            .map(|e| e["digest"].as_str().unwrap().to_string())
            .collect(),
        timeline: format!(
            "after our index write was answered: their stale write answered at {}, our read back at {}",
            since(stale),
            since(our_read_back)
        ),
    }
}

/// The attack on the measured wait. Their signer read the index before ours wrote it and writes
/// it (without our entry) a few milliseconds after ours did: a read→write gap far longer than the
/// round trip a writer of this version takes, but still inside our wait (at least 50 ms). Our read
/// back sees our entry gone and writes it again, and the index ends up listing both. With no wait
/// (read back at once) our read back comes before the stale write and the entry is lost.
#[test]
fn a_stale_index_write_landing_within_our_wait_is_seen_and_repaired() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let race = stale_write_race(&registry, "stale/within", Release::AfterOurWrite(5));
    eprintln!("{}", race.timeline);
    assert!(
        race.listed.contains(&race.ours_attestation),
        "our attestation was lost to the stale write ({}): {:#?}",
        race.timeline,
        race.listed
    );
    // Both signers' referrers, and nothing else: the two attestations and the image signatures
    // (one per signer, since the signature names the host it was made through, a proxy each).
    let mut expected: Vec<String> = [&race.ours, &race.theirs]
        .iter()
        .flat_map(|r| r["attestations"].as_array().unwrap().iter())
        .map(|a| a["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    expected.dedup();
    let mut listed = race.listed.clone();
    listed.sort();
    assert_eq!(listed, expected, "{}", race.timeline);
    assert_eq!(
        race.ours["index-writes"], 2,
        "our read back should have caught the stale write and repaired it ({}): {:#}",
        race.timeline, race.ours
    );
    assert_eq!(race.theirs["index-writes"], 1, "{:#}", race.theirs);
}

/// The bound of the same design, stated as a test: a writer whose read→write gap is longer than
/// our whole run (here a proxy holds its index write until our signer has exited; in life, an old
/// cnb-attest that merged the index it read before its uploads, or a tool that reads early) drops
/// our entry after our read back, and nothing of ours sees it. Our run reported the attestation
/// discoverable, because it was listed when read back. `docs/decisions/referrers-fallback.md` says
/// this in words; a signer that must be sure re-runs `sign`, which re-adds what is missing.
#[test]
fn a_stale_index_write_landing_after_our_run_is_the_documented_bound() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let race = stale_write_race(&registry, "stale/after", Release::AfterOurRun);
    eprintln!("{}", race.timeline);
    assert_eq!(race.ours["index-writes"], 1, "{:#}", race.ours);
    let (attestations, _) = split_image_signatures(race.ours["attestations"].as_array().unwrap());
    assert_eq!(attestations[0]["discoverable"], true, "{:#}", race.ours);
    // Exactly what their stale write held: their referrers (their fresh read was of an index
    // with none of ours yet); ours, the attestation and our image signature, are gone.
    let mut theirs: Vec<String> = race.theirs["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["manifest-digest"].as_str().unwrap().to_string())
        .collect();
    theirs.sort();
    let mut listed = race.listed.clone();
    listed.sort();
    assert_eq!(listed, theirs, "{}", race.timeline);
    assert!(
        !race.listed.contains(&race.ours_attestation),
        "a write held past our run did not drop our entry ({}): the bound in the decision record \
         is out of date",
        race.timeline
    );
}

#[test]
fn credentials_never_appear_in_the_most_verbose_output() {
    use base64::Engine as _;
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "key-password-xyz");
    let reference = registry.push_layout(&image, "demo/app", "1.0");
    let digest = registry.digest_of(&reference);
    let label_dir = tmp.path().join("label");
    fs::create_dir(&label_dir).unwrap();
    // Through docker's config.json this time, the other credential source.
    let docker_config = tmp.path().join("docker");
    fs::create_dir(&docker_config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        docker_config.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            registry.host
        ),
    )
    .unwrap();
    let out = run(Command::new(bin("cnb-attest"))
        .args(["sign", &reference, "--layers"])
        .arg(&layers)
        .arg("--key")
        .arg(tmp.path().join("k/cosign.key"))
        .env("COSIGN_PASSWORD", "key-password-xyz")
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", &docker_config)
        .env("RUST_LOG", "trace"));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let _ = digest;
    // The signer phase with --debug logs every request.
    fs::write(
        layers.join("report.toml"),
        format!("[image]\n  tags = [\"{reference}\"]\n  digest = \"{digest}\"\n"),
    )
    .unwrap();
    let verbose = run(Command::new(bin("cnb-attest"))
        .args(["ls", &reference])
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", &docker_config));
    let mut everything = all.clone();
    everything.push_str(&text(&verbose));
    let label_path = label_dir.join("l.json");
    let layout = cnb_referrers::layout::OciLayout::open(&image).unwrap();
    let descriptor = layout.resolve_image(None).unwrap();
    fs::write(
        &label_path,
        &layout.read_image(&descriptor).unwrap().config.labels["io.buildpacks.lifecycle.metadata"],
    )
    .unwrap();
    ok(run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&layers)
        .arg("-image-label")
        .arg(&label_path)));
    let signer = run(Command::new(bin("signer"))
        .arg("-layers")
        .arg(&layers)
        .arg("-key")
        .arg(tmp.path().join("k/cosign.key"))
        .arg("-debug")
        .env("COSIGN_PASSWORD", "key-password-xyz")
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", &docker_config));
    assert!(signer.status.success(), "{}", text(&signer));
    assert!(
        text(&signer).contains("DEBUG GET http://"),
        "debug log missing: {}",
        text(&signer)
    );
    everything.push_str(&text(&signer));
    everything.push_str(&fs::read_to_string(layers.join("signer-report.toml")).unwrap());
    for secret in [PASSWORD, auth.as_str(), "key-password-xyz"] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked:\n{everything}"
        );
    }
}

/// `cnb-attest doctor` tells the two registries apart by behaviour.
#[test]
fn doctor_reports_what_each_registry_really_supports() {
    for registry in registries() {
        let out = ok(run(with_registry_env(
            Command::new(bin("cnb-attest")).args(["doctor", &registry.host, "--json"]),
            &registry,
        )));
        let diagnosis: Value = serde_json::from_str(&out).unwrap();
        let supported = |name: &str| {
            diagnosis["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("no check {name}: {diagnosis:#}"))["supported"]
                .clone()
        };
        let api = registry.kind == Kind::Ferro;
        assert_eq!(supported("Referrers API"), api, "{diagnosis:#}");
        assert_eq!(
            supported("OCI-Subject header on push"),
            api,
            "{diagnosis:#}"
        );
        assert_eq!(supported("single-POST blob upload"), api, "{diagnosis:#}");
        assert_eq!(supported("manifest DELETE"), true, "{diagnosis:#}");
        assert_eq!(supported("sha256-<hex> tag free for the tag schema"), true);
        assert!(diagnosis["signer-path"]
            .as_str()
            .unwrap()
            .starts_with(if api {
                "Referrers API"
            } else {
                "Referrers Tag Schema"
            }));
    }
}

/// cosign 2's `.att` tag: our entries are appended, another writer's layer is kept, every format
/// verifies, and a re-run adds nothing.
#[test]
fn cosign_legacy_att_tag_is_appended_without_dropping_others() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let reference = registry.push_layout(&image, "legacy/app", "1.0");
    let digest = registry.digest_of(&reference);
    // Someone else's .att tag with one layer (the empty JSON blob stands in for their envelope).
    let foreign_layer = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let config =
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    for blob in [&b"{}"[..], &config[..]] {
        registry.upload_with_curl("legacy/app", blob);
    }
    let att = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": foreign_layer, "size": 2,
                    "annotations": {"predicateType": "https://example.com/other"}}]
    });
    let tag = format!("sha256-{}.att", &digest[7..]);
    registry.put_manifest_with_curl("legacy/app", &tag, &serde_json::to_vec(&att).unwrap());

    let report = sign(
        &registry,
        &reference,
        &layers,
        &tmp.path().join("k"),
        &["--format", "bundle,cosign-legacy"],
    );
    // 7 attestations in 2 formats, and the image signature once, as a bundle referrer (never an
    // `.att` layer: cosign-legacy is a format for attestations).
    assert_eq!(report["pushed"], 7 * 2 + 1, "{report:#}");
    let (_, signatures) = split_image_signatures(report["attestations"].as_array().unwrap());
    assert_eq!(signatures.len(), 1, "{report:#}");
    assert_eq!(signatures[0]["format"], "bundle", "{report:#}");
    let (status, body) = registry.curl(
        &format!("/v2/legacy/app/manifests/{tag}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_str(&body).unwrap();
    let digests: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 8, "{manifest:#}");
    assert_eq!(
        digests[0], foreign_layer,
        "the other writer's layer must stay first and intact"
    );
    assert_eq!(
        manifest["layers"][0]["annotations"]["predicateType"],
        "https://example.com/other"
    );
    for layer in &manifest["layers"].as_array().unwrap()[1..] {
        assert_eq!(
            layer["annotations"]["dev.cosignproject.cosign/signature"],
            ""
        );
        assert!(layer["annotations"]["io.buildpacks.buildpack.id"].is_string());
    }
    let ls = ok(run(with_registry_env(
        Command::new(bin("cnb-attest")).args(["ls", &reference, "--json"]),
        &registry,
    )));
    let listed: Vec<Value> = serde_json::from_str(&ls).unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|l| l["format"] == "cosign-legacy")
            .count(),
        8
    );
    assert_eq!(
        listed
            .iter()
            .filter(|l| is_image_signature(l))
            .map(|l| l["format"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["bundle"]
    );
    let again = sign(
        &registry,
        &reference,
        &layers,
        &tmp.path().join("k"),
        &["--format", "bundle,cosign-legacy"],
    );
    assert_eq!(again["pushed"], 0, "{again:#}");
    assert_eq!(again["index-writes"], 0);
}

/// Checks an ECDSA P-256 / SHA-256 signature (ASN.1 DER, base64) over `payload` with the PEM public
/// key in `public_key`, using Python's `cryptography` (independent of cnb-attest).
fn cryptography_verifies(
    python: &Path,
    public_key: &Path,
    payload: &[u8],
    signature: &str,
) -> bool {
    const SCRIPT: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1", key
payload = open(sys.argv[2], "rb").read()
key.verify(base64.b64decode(sys.argv[3], validate=True), payload, ec.ECDSA(hashes.SHA256()))
print("verified")
"#;
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), payload).unwrap();
    let out = run(Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(public_key)
        .arg(file.path())
        .arg(signature));
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "verified"
}

/// `--image-signature simple-signing`: cosign 2's `sha256-<hex>.sig` tag gets one simple-signing
/// layer whose payload names the image digest and whose annotation is an ECDSA signature over the
/// exact payload bytes (checked with Python's `cryptography`); no sign/v1 referrer is written, and
/// a re-run adds no layer.
#[test]
fn image_signature_simple_signing_appends_to_the_sig_tag() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let Some(python) = cnb_attest_tests::python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    let keys = tmp.path().join("k");
    key_pair(&keys, "");
    let repo = "simple/app";
    let reference = registry.push_layout(&image, repo, "1.0");
    let digest = registry.digest_of(&reference);
    let flags = ["--image-signature", "simple-signing"];

    let report = sign(&registry, &reference, &layers, &keys, &flags);
    assert_eq!(
        report["pushed"], 8,
        "7 bundles + the .sig layer: {report:#}"
    );
    let (attestations, signatures) =
        split_image_signatures(report["attestations"].as_array().unwrap());
    assert!(signatures.is_empty(), "no sign/v1 bundle: {report:#}");
    let simple: Vec<&Value> = attestations
        .iter()
        .filter(|a| a["format"] == "simple-signing")
        .collect();
    assert_eq!(simple.len(), 1, "{report:#}");
    assert_eq!(simple[0]["index"], 0);
    assert_eq!(attestations.len(), 8, "{report:#}");
    // The referrers index holds the 7 attestations only.
    let listed = listed_by_plain_http(&registry, repo, &digest);
    assert_eq!(listed.len(), 7, "{listed:#?}");
    assert!(listed
        .iter()
        .all(|e| e["annotations"]["dev.sigstore.bundle.predicateType"] != COSIGN_SIGN_V1));

    let sig_path = format!("/v2/{repo}/manifests/sha256-{}.sig", &digest[7..]);
    let accept =
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let (status, body) = registry.curl(&sig_path, accept);
    assert_eq!(status, 200, "{body}");
    let manifest: Value = serde_json::from_str(&body).unwrap();
    let layers_of_sig = manifest["layers"].as_array().unwrap();
    assert_eq!(layers_of_sig.len(), 1, "{manifest:#}");
    let layer = &layers_of_sig[0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap_or_else(|| panic!("no signature annotation: {layer}"));
    let layer_digest = layer["digest"].as_str().unwrap();
    let (status, payload) = registry.curl(&format!("/v2/{repo}/blobs/{layer_digest}"), "*/*");
    assert_eq!(status, 200, "{payload}");
    let payload = payload.into_bytes();
    assert_eq!(sha256(&payload), layer_digest, "the blob is the layer");
    assert_eq!(layer["size"], payload.len());
    let simple_signing: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        simple_signing["critical"]["image"]["docker-manifest-digest"],
        digest.as_str(),
        "{simple_signing:#}"
    );
    assert_eq!(
        simple_signing["critical"]["type"],
        "cosign container image signature"
    );

    let public_key = keys.join("cosign.pub");
    assert!(
        cryptography_verifies(&python, &public_key, &payload, signature),
        "cryptography does not accept the signature over the payload"
    );
    // The check can fail: one payload byte changed, or another key.
    let mut tampered = payload.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    assert!(!cryptography_verifies(
        &python,
        &public_key,
        &tampered,
        signature
    ));
    key_pair(&tmp.path().join("other"), "");
    assert!(!cryptography_verifies(
        &python,
        &tmp.path().join("other/cosign.pub"),
        &payload,
        signature
    ));

    // A re-run stores nothing and leaves the `.sig` manifest as it was.
    let again = sign(&registry, &reference, &layers, &keys, &flags);
    assert_eq!(again["pushed"], 0, "{again:#}");
    assert_eq!(again["already-present"], 8, "{again:#}");
    let (status, body_again) = registry.curl(&sig_path, accept);
    assert_eq!(status, 200);
    let manifest_again: Value = serde_json::from_str(&body_again).unwrap();
    assert_eq!(
        manifest_again["layers"].as_array().unwrap().len(),
        1,
        "{manifest_again:#}"
    );
    assert_eq!(body_again, body, "the .sig manifest changed on a re-run");

    // cnb-attest reads the `.sig` back: verified with the signing key, refused with another.
    let verify = |key: &Path| {
        run(with_registry_env(
            Command::new(bin("cnb-attest"))
                .args(["verify", &reference, "--json", "--key"])
                .arg(key),
            &registry,
        ))
    };
    let verified = verify(&public_key);
    assert!(verified.status.success(), "{}", text(&verified));
    let verdicts: Value = serde_json::from_slice(&verified.stdout).unwrap();
    let sig: Vec<&Value> = verdicts
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["format"] == "simple-signing")
        .collect();
    assert_eq!(sig.len(), 1, "{verdicts:#}");
    assert_eq!(sig[0]["digest"], layer_digest);
    assert!(sig[0]["failure"].is_null(), "{verdicts:#}");
    let refused = verify(&tmp.path().join("other/cosign.pub"));
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    let verdicts: Value = serde_json::from_slice(&refused.stdout).unwrap();
    let sig = verdicts
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["format"] == "simple-signing")
        .unwrap();
    assert_eq!(
        sig["failure"], "not signed by a trusted key",
        "{verdicts:#}"
    );
}

/// A registry sign without `--key` would push attestations nobody can verify later: it is refused
/// before anything is pushed, with a hint; `--throwaway-key` asks for it explicitly.
#[test]
fn a_registry_sign_without_a_key_is_refused_unless_the_throwaway_key_is_asked_for() {
    for registry in registries() {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        let reference = registry.push_layout(&image, "demo/nokey", "1.0");
        let digest = registry.digest_of(&reference);
        let kind = registry.kind;
        let refused = run(with_registry_env(
            Command::new(bin("cnb-attest"))
                .args(["sign", &reference, "--layers"])
                .arg(&layers)
                .arg("--throwaway-key-dir")
                .arg(tmp.path()),
            &registry,
        ));
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{kind:?}: {}",
            text(&refused)
        );
        assert!(
            text(&refused).contains("--throwaway-key"),
            "{}",
            text(&refused)
        );
        assert!(!tmp.path().join("cnb-attest-throwaway.key").exists());
        let (status, body) = match kind {
            Kind::Ferro => registry.curl(
                &format!("/v2/demo/nokey/referrers/{digest}"),
                "application/vnd.oci.image.index.v1+json",
            ),
            Kind::Distribution => registry.curl(
                &format!("/v2/demo/nokey/manifests/sha256-{}", &digest[7..]),
                "application/vnd.oci.image.index.v1+json",
            ),
        };
        let listed = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["manifests"].as_array().map(Vec::len))
            .unwrap_or(0);
        assert!(
            status == 404 || listed == 0,
            "{kind:?}: pushed anyway: {status} {body}"
        );

        let asked = ok(run(with_registry_env(
            Command::new(bin("cnb-attest"))
                .args(["sign", &reference, "--json", "--throwaway-key", "--layers"])
                .arg(&layers)
                .arg("--throwaway-key-dir")
                .arg(tmp.path()),
            &registry,
        )));
        let report: Value = serde_json::from_str(&asked).unwrap();
        assert_eq!(report["pushed"], 8, "{kind:?}: {report:#}");
        assert!(tmp.path().join("cnb-attest-throwaway.pub").exists());
    }
}
