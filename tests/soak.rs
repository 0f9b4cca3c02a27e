//! The fault soak: mixed operations (sign, re-sign, verify, download, analyzer) by 32 concurrent
//! signers on one image, through a proxy that injects seeded random faults (drops, resets, 5xx,
//! 429 with `Retry-After`, latency, a stop mid-upload) into a tenth of the requests, against the
//! fallback registry (Distribution 2.8, the `sha256-<hex>` index) and the Referrers API registry
//! (ferro-oci-server). Then an audit of the registry's state, read directly (no proxy):
//!
//! * every attestation a sign run reported stored (its own `--json` report, made after its read
//!   back, entry `discoverable: true`) is listed, once: none lost, none duplicated (no digest
//!   twice, no two manifests for one signer's SBOM);
//! * every failed operation exited with a code documented for it (docs/exit-codes.md), never 0
//!   with a failure, never a panic or a signal, and said why (an `ERROR:` line);
//! * no `download` or `analyzer` output directory holds a partial tree: after success exactly the
//!   SBOMs the run reported written, byte for byte; after a failure no file; never a `.tmp-` entry;
//! * a final clean `verify` and `download` (no proxy) restore everything stored.
//!
//! `CNB_SOAK_OPS` operations per registry (default 48, sized for CI: both registries in about
//! four minutes on two cores in a debug build; 500 is the long local setting), `CNB_SOAK_SEED`
//! (default 12), `CNB_SOAK_FAULT_RATE` (default 0.10). Each registry's audit is printed as a
//! table. The two registries run one after the other (a lock), whatever the test threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cnb_attest_tests::proxy::{Faults, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::rss::{mib, run_measured};
use cnb_attest_tests::{bin, is_image_signature, key_pair, ok, run, text};
use cnb_fixtures::{AppImage, BuildpackSpec};
use serde_json::Value;

/// Concurrent signers, each a worker thread with its own SBOM set (one buildpack of the image).
const SIGNERS: usize = 32;
/// The launch layers of each signer's buildpack, one CycloneDX SBOM each.
const LAYERS: [&str; 2] = ["l", "m"];
/// Each operation's own deadline (`--timeout`): a hung run cannot hold the soak.
const OP_TIMEOUT_SECS: &str = "180";
/// The deadline of the operations (one in eight after a signer's first sign) run to miss it.
const SHORT_TIMEOUT_SECS: &str = "1";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_fallback_index_distribution() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(registry) = Registry::start(Kind::Distribution) {
        soak(&registry);
    }
}

#[test]
fn soak_referrers_api_ferro() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(registry) = Registry::start(Kind::Ferro) {
        soak(&registry);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Sign,
    Resign,
    Verify,
    Download,
    Analyzer,
}

impl Op {
    const ALL: [Op; 5] = [Op::Sign, Op::Resign, Op::Verify, Op::Download, Op::Analyzer];

    fn name(self) -> &'static str {
        match self {
            Op::Sign => "sign",
            Op::Resign => "re-sign",
            Op::Verify => "verify",
            Op::Download => "download",
            Op::Analyzer => "analyzer",
        }
    }

    /// The exit codes docs/exit-codes.md gives this operation for a failure that faults between
    /// client and registry can cause (never a verification verdict: faults change no byte).
    fn failure_codes(self) -> &'static [i32] {
        match self {
            // 1: a registry or transport failure; 5: stored but not listed when read back.
            Op::Sign | Op::Resign => &[1, 5],
            // 1: could not be read; 4: no attestations (yet, or none readable to list).
            Op::Verify | Op::Download => &[1, 4],
            // 34: the previous image cannot be read, or none verified and some unreadable.
            Op::Analyzer => &[34],
        }
    }
}

/// One operation's run.
struct Ran {
    op: Op,
    signer: usize,
    /// Run under [`SHORT_TIMEOUT_SECS`].
    short: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    started: Instant,
    ended: Instant,
    peak_rss: u64,
    /// The output directory of a download or analyzer run.
    out: Option<PathBuf>,
}

/// What the soak knows about the signers' SBOMs.
struct Sboms {
    /// `soak_sNN/<layer>/sbom.cdx.json` -> bytes.
    files: BTreeMap<String, Vec<u8>>,
}

fn buildpack(i: usize) -> String {
    format!("soak/s{i:02}")
}

/// The SBOM of signer `i`'s `layer`: distinct per signer and layer.
fn sbom(i: usize, layer: &str) -> Vec<u8> {
    format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"serialNumber":"urn:uuid:00000000-0000-4000-8000-{i:06}{:06}","metadata":{{"component":{{"type":"library","name":"soak-{i}-{layer}"}}}}}}"#,
        layer.as_bytes()[0]
    )
    .into_bytes()
}

/// The image (one buildpack per signer, no SBOM layer) and each signer's layers directory.
fn setup(dir: &Path) -> (PathBuf, Vec<PathBuf>, Sboms) {
    let spec = AppImage {
        tag: "latest".into(),
        buildpacks: (0..SIGNERS)
            .map(|i| BuildpackSpec::new(&buildpack(i), "1.0.0", &LAYERS))
            .collect(),
        launcher: false,
        sbom_tree: None,
    };
    let image = dir.join("image");
    cnb_fixtures::build(&spec, &image).unwrap();
    let mut files = BTreeMap::new();
    let layers = (0..SIGNERS)
        .map(|i| {
            let layers = dir.join(format!("layers-{i:02}"));
            for layer in LAYERS {
                let rel = format!("soak_s{i:02}/{layer}/sbom.cdx.json");
                let path = layers.join("sbom/launch").join(&rel);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, sbom(i, layer)).unwrap();
                files.insert(rel, sbom(i, layer));
            }
            layers
        })
        .collect();
    (image, layers, Sboms { files })
}

/// Registry environment for `host` (the proxy or the registry) with `registry`'s credentials.
fn registry_env<'a>(command: &'a mut Command, registry: &Registry, host: &str) -> &'a mut Command {
    use base64::Engine as _;
    let auth = match registry.creds() {
        Some(c) => format!(
            "{{\"{host}\": \"Basic {}\"}}",
            base64::engine::general_purpose::STANDARD.encode(c)
        ),
        None => "{}".into(),
    };
    command
        .env("CNB_REGISTRY_AUTH", auth)
        .env("CNB_INSECURE_REGISTRIES", host)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("COSIGN_PASSWORD", "")
}

struct Ctx<'a> {
    registry: &'a Registry,
    host: String,
    reference: String,
    keys: PathBuf,
    layers: Vec<PathBuf>,
    work: PathBuf,
}

/// Signer `i`'s key pair directory.
fn keys_of(keys: &Path, i: usize) -> PathBuf {
    keys.join(format!("{i:02}"))
}

/// `--key <pub>` for every signer (readers trust all 32).
fn trust_all(command: &mut Command, keys: &Path, flag: &str) {
    for i in 0..SIGNERS {
        command.arg(flag).arg(keys_of(keys, i).join("cosign.pub"));
    }
}

fn command_for(
    ctx: &Ctx<'_>,
    op: Op,
    signer: usize,
    n: usize,
    timeout: &str,
) -> (Command, Option<PathBuf>) {
    match op {
        Op::Sign | Op::Resign => {
            let mut c = Command::new(bin("cnb-attest"));
            c.args(["sign", &ctx.reference, "--json", "--timeout", timeout])
                .arg("--layers")
                .arg(&ctx.layers[signer])
                .arg("--key")
                .arg(keys_of(&ctx.keys, signer).join("cosign.key"));
            (c, None)
        }
        Op::Verify => {
            let mut c = Command::new(bin("cnb-attest"));
            c.args(["verify", &ctx.reference, "--json", "--timeout", timeout]);
            trust_all(&mut c, &ctx.keys, "--key");
            (c, None)
        }
        Op::Download => {
            let out = ctx.work.join(format!("download-{n:04}"));
            let mut c = Command::new(bin("cnb-attest"));
            c.args(["download", &ctx.reference, "--json", "--timeout", timeout])
                .arg("-o")
                .arg(&out);
            trust_all(&mut c, &ctx.keys, "--key");
            // Every other download asks for its signer's buildpack only.
            if n % 2 == 1 {
                c.args(["--buildpack", &buildpack(signer)]);
            }
            (c, Some(out))
        }
        Op::Analyzer => {
            let out = ctx.work.join(format!("analyzer-{n:04}"));
            let mut c = Command::new(bin("analyzer"));
            c.args([
                "-previous-image",
                &ctx.reference,
                "-json",
                "-timeout",
                timeout,
            ])
            .arg("-layers")
            .arg(out.join("layers"));
            trust_all(&mut c, &ctx.keys, "-key");
            (c, Some(out))
        }
    }
}

/// Runs operation `n`; with `short`, under a deadline of one second (`--timeout 1`), which a
/// run on a loaded machine often misses: the failure path (exit code, message, nothing written)
/// is exercised on purpose, not only when retries run out.
fn run_op(ctx: &Ctx<'_>, op: Op, signer: usize, n: usize, short: bool) -> Ran {
    let timeout = if short {
        SHORT_TIMEOUT_SECS
    } else {
        OP_TIMEOUT_SECS
    };
    let (mut command, out) = command_for(ctx, op, signer, n, timeout);
    registry_env(&mut command, ctx.registry, &ctx.host);
    let started = Instant::now();
    let measured = run_measured(&mut command);
    Ran {
        op,
        signer,
        code: measured.output.status.code(),
        stdout: String::from_utf8_lossy(&measured.output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&measured.output.stderr).into_owned(),
        short,
        started,
        ended: Instant::now(),
        peak_rss: measured.peak_rss,
        out,
    }
}

/// A deterministic draw for operation `n` (the soak's seed mixed in).
fn draw(seed: u64, n: usize) -> u64 {
    let mut z = seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every file and directory under `dir`, relative, with `/` separators.
fn tree(dir: &Path) -> Vec<(String, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.push((rel, true));
                walk(root, &path, out);
            } else {
                out.push((rel, false));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Why an output directory is not what its run reported (None: it is).
fn partial_tree(ran: &Ran, sboms: &Sboms) -> Option<String> {
    let out = ran.out.as_ref()?;
    let entries = tree(out);
    if let Some((tmp, _)) = entries.iter().find(|(p, _)| p.contains(".tmp-")) {
        return Some(format!("a temporary entry is left: {tmp}"));
    }
    let files: BTreeMap<String, Vec<u8>> = entries
        .iter()
        .filter(|(_, dir)| !dir)
        .map(|(p, _)| (p.clone(), fs::read(out.join(p)).unwrap()))
        .collect();
    if ran.code != Some(0) {
        return (!files.is_empty()).then(|| {
            format!(
                "failed (exit {:?}), yet wrote {:?}",
                ran.code,
                files.keys().collect::<Vec<_>>()
            )
        });
    }
    let report: Value = match serde_json::from_str(&ran.stdout) {
        Ok(v) => v,
        Err(e) => return Some(format!("no JSON report ({e})")),
    };
    // What the run says it restored (`plan.restored`, paths relative to `sbom/launch/`); the
    // analyzer nests its report under `report`.
    let plan = if ran.op == Op::Analyzer {
        &report["report"]["plan"]
    } else {
        &report["plan"]
    };
    let Some(restored) = plan["restored"].as_object() else {
        return Some("exit 0 without plan.restored in its report".into());
    };
    let reported: BTreeSet<String> = restored.keys().cloned().collect();
    let prefix = "layers/sbom/launch/";
    let mut found = BTreeSet::new();
    for (path, bytes) in &files {
        let Some(rel) = path.strip_prefix(prefix) else {
            return Some(format!("a file outside layers/sbom/launch: {path}"));
        };
        match sboms.files.get(rel) {
            Some(expected) if expected == bytes => {}
            Some(_) => return Some(format!("{rel}: bytes differ from the signed SBOM")),
            None => return Some(format!("{rel}: no SBOM of any signer")),
        }
        found.insert(rel.to_string());
    }
    (found != reported).then(|| format!("reported {reported:?}, found {found:?}"))
}

/// Whether a run's exit is right for what it says: 0 only when its report shows no failure; a
/// failure a documented code with an `ERROR:` line saying why.
fn wrong_exit(ran: &Ran) -> Option<String> {
    let Some(code) = ran.code else {
        return Some("killed by a signal".into());
    };
    if code == 0 {
        let report: Value = match serde_json::from_str(&ran.stdout) {
            Ok(v) => v,
            Err(e) => return Some(format!("exit 0 without a JSON report ({e})")),
        };
        return match ran.op {
            Op::Sign | Op::Resign => report["attestations"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map_or(Some("exit 0, no attestations reported".into()), |a| {
                    a.iter()
                        .any(|a| a["discoverable"] != true)
                        .then(|| "exit 0 with an attestation not discoverable".into())
                }),
            // One verdict per attestation; a verified one has neither a failure nor a problem.
            Op::Verify => report.as_array().filter(|v| !v.is_empty()).map_or(
                Some("exit 0 without verdicts".into()),
                |v| {
                    v.iter()
                        .any(|v| !v["failure"].is_null() || !v["problem"].is_null())
                        .then(|| "exit 0 with an attestation not verified".into())
                },
            ),
            Op::Download | Op::Analyzer => None,
        };
    }
    if !ran.op.failure_codes().contains(&code) {
        return Some(format!(
            "exit {code}, not one of {:?}",
            ran.op.failure_codes()
        ));
    }
    let said_why = ran
        .stderr
        .lines()
        .any(|l| l.strip_prefix("ERROR:").is_some_and(|m| m.trim().len() > 8));
    (!said_why).then(|| format!("exit {code} without an ERROR line saying why"))
}

/// The listing readers see, read directly: `(manifest digest, annotations)` per entry.
/// How many times each digest is listed, and which of the entries reported stored (SBOM
/// attestations, `digest -> place`, and image signatures) the listing lacks.
fn seen_and_lost<'a>(
    listing: &'a [(String, Value)],
    stored: &'a BTreeMap<String, String>,
    image_signatures: &'a BTreeSet<String>,
) -> (BTreeMap<&'a str, usize>, Vec<(&'a String, &'a String)>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (d, _) in listing {
        *seen.entry(d.as_str()).or_default() += 1;
    }
    let lost = stored
        .iter()
        .chain(image_signatures.iter().map(|d| (d, d)))
        .filter(|(d, _)| !seen.contains_key(d.as_str()))
        .collect();
    (seen, lost)
}

fn listed(registry: &Registry, repo: &str, digest: &str) -> Vec<(String, Value)> {
    registry
        .listing(repo, digest)
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap().to_string(),
                e["annotations"].clone(),
            )
        })
        .collect()
}

/// For each lost entry, which write dropped it and what that write had merged, from the index
/// writes that went through the proxy (each `PUT` body is the writer's merge: the state it read
/// plus its own entries). The state it read is the latest committed write whose entries its body
/// holds; the commit after that one bounds its read→write gap from below.
fn loss_timeline(
    proxy: &Proxy,
    digest: &str,
    lost: &[(&String, &String)],
    reported_at: &BTreeMap<String, Instant>,
) -> String {
    let index = format!("/manifests/sha256-{}", &digest[7..]);
    let mut writes: Vec<(cnb_attest_tests::proxy::Recorded, BTreeSet<String>)> = proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r.request.method == "PUT"
                && r.request.path().ends_with(&index)
                && matches!(r.status, Some(200..=299))
        })
        .map(|r| {
            let entries = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| {
                    v["manifests"].as_array().map(|m| {
                        m.iter()
                            .filter_map(|e| e["digest"].as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            (r, entries)
        })
        .collect();
    writes.sort_by_key(|(r, _)| r.answered_at);
    let at = |r: &cnb_attest_tests::proxy::Recorded| r.answered_at.unwrap();
    let mut out = String::new();
    for (d, place) in lost {
        let d = d.as_str();
        let Some(first) = writes.iter().position(|(_, e)| e.contains(d)) else {
            out.push_str(&format!(
                "{d} ({place}): no write through the proxy listed it\n"
            ));
            continue;
        };
        let zero = at(&writes[first].0);
        let ms = |t: Instant| {
            if t >= zero {
                format!("+{} ms", (t - zero).as_millis())
            } else {
                format!("-{} ms", (zero - t).as_millis())
            }
        };
        let last = writes.iter().rposition(|(_, e)| e.contains(d)).unwrap();
        out.push_str(&format!(
            "{d} ({place}): first listed by write #{} (committed +0 ms), last by #{} ({}), {} \
             write(s) in between lacked it; the last run reporting it stored ended {}\n",
            writes[first].0.request.seq,
            writes[last].0.request.seq,
            ms(at(&writes[last].0)),
            writes[first..last]
                .iter()
                .filter(|(_, e)| !e.contains(d))
                .count(),
            reported_at
                .get(d)
                .map(|t| ms(*t))
                .unwrap_or_else(|| "?".into()),
        ));
        let Some(w) = (last + 1..writes.len()).find(|i| !writes[*i].1.contains(d)) else {
            out.push_str("  no write after the last one lacks it (listed?)\n");
            continue;
        };
        let (wr, we) = &writes[w];
        let merged = (0..w)
            .filter(|i| at(&writes[*i].0) <= wr.request.at && writes[*i].1.is_subset(we))
            .max_by_key(|i| at(&writes[*i].0));
        out.push_str(&format!(
            "  dropped by write #{} ({}, arrived {}, committed {}, {} entries)\n",
            wr.request.seq,
            wr.action,
            ms(wr.request.at),
            ms(at(wr)),
            we.len()
        ));
        match merged {
            Some(v) => {
                let next = writes.get(v + 1).map(|(r, _)| at(r));
                out.push_str(&format!(
                    "  which merged the state write #{} committed at {} ({}); the next commit came \
                     at {}: its read→write gap was at least {} ms\n",
                    writes[v].0.request.seq,
                    ms(at(&writes[v].0)),
                    if v < first {
                        "before the entry was first written"
                    } else {
                        "after it, by a write that lacked it: a chain"
                    },
                    next.map(ms).unwrap_or_default(),
                    next.map(|n| at(wr).saturating_duration_since(n).as_millis())
                        .unwrap_or_default()
                ));
            }
            None => {
                out.push_str("  which merged no state written through the proxy (an empty index)\n")
            }
        }
    }
    out
}

/// `line` with hex runs and numbers replaced by `#` (so that failures group by reason), at most
/// 200 characters.
fn elide(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.trim().chars() {
        if c.is_ascii_hexdigit() && (c.is_ascii_digit() || in_number) {
            if !in_number {
                out.push('#');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.chars().take(200).collect()
}

/// Where a `sign --json` entry puts its SBOM: `soak_sNN/<layer>/sbom.cdx.json`.
fn place_of(entry: &Value) -> Option<String> {
    let bp = entry["buildpack"].as_str()?;
    let layer = entry["layer"].as_str()?;
    Some(format!("{}/{layer}/sbom.cdx.json", bp.replace('/', "_")))
}

fn soak(registry: &Registry) {
    let ops: usize = env_or("CNB_SOAK_OPS", 48);
    let seed: u64 = env_or("CNB_SOAK_SEED", 12);
    let rate: f64 = env_or("CNB_SOAK_FAULT_RATE", 0.10);
    let wall = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (image, layers, sboms) = setup(tmp.path());
    // Each signer its own key: 32 signers are 32 identities, and their image signatures differ.
    let keys = tmp.path().join("k");
    std::thread::scope(|scope| {
        for i in 0..SIGNERS {
            let dir = keys_of(&keys, i);
            scope.spawn(move || key_pair(&dir, ""));
        }
    });
    let direct = registry.push_layout(&image, "soak/app", "1.0");
    let digest = registry.digest_of(&direct);
    let faults = Faults::new(seed, rate);
    let proxy = Proxy::start(&registry.host, Plan::new().with_faults(Arc::clone(&faults)));
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let ctx = Ctx {
        registry,
        host: proxy.host.clone(),
        reference: format!("{}/soak/app@{digest}", proxy.host),
        keys: keys.clone(),
        layers,
        work,
    };

    // 32 workers, one per signer: each signs its set first (until a sign succeeds), then draws
    // among re-sign, verify, download and analyzer, until `ops` operations have started.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Ran>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for signer in 0..SIGNERS {
            let (ctx, next, results) = (&ctx, &next, &results);
            scope.spawn(move || {
                let mut signed = false;
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= ops {
                        break;
                    }
                    let op = if !signed {
                        Op::Sign
                    } else {
                        [Op::Resign, Op::Verify, Op::Download, Op::Analyzer]
                            [(draw(seed, n) % 4) as usize]
                    };
                    let short = op != Op::Sign && draw(seed ^ 0xD1, n).is_multiple_of(8);
                    let ran = run_op(ctx, op, signer, n, short);
                    if op == Op::Sign && ran.code == Some(0) {
                        signed = true;
                    }
                    results.lock().unwrap().push(ran);
                }
            });
        }
    });
    let soak_time = wall.elapsed();
    faults.set_enabled(false);
    let results = results.into_inner().unwrap();

    // What the sign runs reported stored (discoverable after their own read back), by place.
    let mut stored: BTreeMap<String, String> = BTreeMap::new(); // digest -> place
    let mut places: BTreeMap<String, BTreeSet<String>> = BTreeMap::new(); // place -> digests
    let mut image_signatures = BTreeSet::new();
    let mut reported_at: BTreeMap<String, Instant> = BTreeMap::new(); // digest -> last run's end
    let mut owner: BTreeMap<String, usize> = BTreeMap::new(); // digest -> signer
    let mut new_on_resign = Vec::new();
    let mut first_sign: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut sorted: Vec<&Ran> = results.iter().collect();
    sorted.sort_by_key(|r| r.started);
    for ran in &sorted {
        if !matches!(ran.op, Op::Sign | Op::Resign) {
            continue;
        }
        let Ok(report) = serde_json::from_str::<Value>(&ran.stdout) else {
            continue;
        };
        let mut digests = BTreeSet::new();
        for entry in report["attestations"].as_array().into_iter().flatten() {
            let Some(d) = entry["manifest-digest"].as_str() else {
                continue;
            };
            digests.insert(d.to_string());
            if entry["discoverable"] != true {
                continue;
            }
            let end = reported_at.entry(d.to_string()).or_insert(ran.ended);
            *end = (*end).max(ran.ended);
            owner.insert(d.to_string(), ran.signer);
            if is_image_signature(entry) {
                image_signatures.insert(d.to_string());
                continue;
            }
            let place = place_of(entry).unwrap_or_else(|| format!("unplaced {entry}"));
            stored.insert(d.to_string(), place.clone());
            places.entry(place).or_default().insert(d.to_string());
        }
        if ran.code == Some(0) {
            match first_sign.get(&ran.signer) {
                None => {
                    first_sign.insert(ran.signer, digests);
                }
                Some(first) if ran.op == Op::Resign && *first != digests => {
                    new_on_resign.push(format!(
                        "signer {}: re-sign reported {digests:?}, first sign {first:?}",
                        ran.signer
                    ))
                }
                Some(_) => {}
            }
        }
    }

    // The registry's state, read directly.
    let listing = listed(registry, "soak/app", &digest);
    let (seen, lost) = seen_and_lost(&listing, &stored, &image_signatures);
    drop(seen);
    // The documented bound (docs/decisions/referrers-fallback.md): on a registry that ignores
    // `If-Match`, a chain of overlapping stale index writes can drop an entry after its signer
    // read it back and exited; "a re-run of `sign` re-adds whatever is missing". Shown with the
    // writes that dropped it, then repaired by one re-sign of each signer concerned (through the
    // same proxy, faults off, so the image signature names the same host); after that nothing
    // may be missing.
    let lost_at_end = lost.len();
    if !lost.is_empty() {
        eprintln!("{}", loss_timeline(&proxy, &digest, &lost, &reported_at));
    }
    let concerned: BTreeSet<usize> = lost
        .iter()
        .filter_map(|(d, _)| owner.get(*d))
        .copied()
        .collect();
    let mut repairs = Vec::new();
    for signer in &concerned {
        let ran = run_op(&ctx, Op::Resign, *signer, ops + signer, false);
        let report: Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("repair of signer {signer}: {e}\n{}", ran.stderr));
        let digests: BTreeSet<String> = report["attestations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["manifest-digest"].as_str().map(str::to_string))
            .collect();
        if first_sign.get(signer) != Some(&digests) {
            new_on_resign.push(format!("signer {signer}: the repair reported {digests:?}"));
        }
        repairs.push(ran);
    }
    let listing = if concerned.is_empty() {
        listing
    } else {
        listed(registry, "soak/app", &digest)
    };
    let (seen, lost) = seen_and_lost(&listing, &stored, &image_signatures);
    let twice: Vec<(&&str, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let two_for_one_place: Vec<(&String, &BTreeSet<String>)> =
        places.iter().filter(|(_, d)| d.len() > 1).collect();
    let duplicated = twice.len() + two_for_one_place.len() + new_on_resign.len();
    let wrong: Vec<(usize, String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| wrong_exit(r).map(|why| (i, why)))
        .collect();
    let partial: Vec<(usize, String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| partial_tree(r, &sboms).map(|why| (i, why)))
        .collect();
    let peak = results.iter().map(|r| r.peak_rss).max().unwrap_or(0);

    // A final clean verify and download, no proxy: everything stored is restored.
    let mut verify = Command::new(bin("cnb-attest"));
    verify.args(["verify", &direct]);
    trust_all(&mut verify, &keys, "--key");
    let verify_out = run(registry_env(&mut verify, registry, &registry.host));
    let final_dir = tmp.path().join("final");
    let mut download = Command::new(bin("cnb-attest"));
    download
        .args(["download", &direct, "--json", "-o"])
        .arg(&final_dir);
    trust_all(&mut download, &keys, "--key");
    let download_out = run(registry_env(&mut download, registry, &registry.host));
    let restored = cnb_attest_tests::sbom_files(&final_dir.join("layers"));
    let expected: BTreeMap<String, Vec<u8>> = stored
        .values()
        .map(|place| {
            (
                place.clone(),
                sboms.files.get(place).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let not_restored: Vec<&String> = expected
        .iter()
        .filter(|(p, bytes)| restored.get(*p) != Some(*bytes))
        .map(|(p, _)| p)
        .collect();

    // The audit.
    let mut table = String::new();
    let line = |t: &mut String, k: &str, v: String| t.push_str(&format!("  {k:<34} {v}\n"));
    table.push_str(&format!(
        "soak audit, {:?} ({}), seed {seed}, fault rate {rate}, {SIGNERS} signers\n",
        registry.kind,
        if registry.kind == Kind::Ferro {
            "Referrers API"
        } else {
            "sha256-<hex> fallback index"
        }
    ));
    line(&mut table, "operations run", results.len().to_string());
    for op in Op::ALL {
        let of: Vec<&Ran> = results.iter().filter(|r| r.op == op).collect();
        let okay = of.iter().filter(|r| r.code == Some(0)).count();
        let mut codes: BTreeMap<i32, usize> = BTreeMap::new();
        for r in of.iter().filter(|r| r.code != Some(0)) {
            *codes.entry(r.code.unwrap_or(-1)).or_default() += 1;
        }
        let short = of.iter().filter(|r| r.short).count();
        line(
            &mut table,
            &format!("  {}", op.name()),
            format!(
                "{} run ({short} with a {SHORT_TIMEOUT_SECS} s deadline), {okay} ok, failed by exit code {codes:?}",
                of.len()
            ),
        );
    }
    line(
        &mut table,
        "requests through the proxy",
        faults.requests().to_string(),
    );
    line(&mut table, "faults injected", faults.total().to_string());
    for (fault, n) in faults.counts() {
        line(&mut table, &format!("  {}", fault.name()), n.to_string());
    }
    line(
        &mut table,
        "attestations reported stored",
        format!(
            "{} SBOM attestations of {} signers, {} image signature(s)",
            stored.len(),
            first_sign.len(),
            image_signatures.len()
        ),
    );
    line(
        &mut table,
        "listed by the registry",
        listing.len().to_string(),
    );
    line(
        &mut table,
        "lost",
        format!(
            "{} (at the end of the soak: {lost_at_end}, repaired by {} re-sign(s))",
            lost.len(),
            repairs.len()
        ),
    );
    line(&mut table, "duplicated", duplicated.to_string());
    line(&mut table, "partial trees", partial.len().to_string());
    line(&mut table, "wrong exit codes", wrong.len().to_string());
    line(
        &mut table,
        "final clean verify / download",
        format!(
            "exit {:?} / exit {:?}, {} of {} stored SBOMs restored",
            verify_out.status.code(),
            download_out.status.code(),
            expected.len() - not_restored.len(),
            expected.len()
        ),
    );
    line(&mut table, "peak RSS of one child", mib(peak));
    line(
        &mut table,
        "wall time",
        format!(
            "{:.1} s of operations, {:.1} s in all",
            soak_time.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        ),
    );
    table.push_str("  failures by reason (first ERROR line, digests and numbers elided):\n");
    let mut reasons: BTreeMap<(String, i32, String), usize> = BTreeMap::new();
    for r in results.iter().filter(|r| r.code != Some(0)) {
        let line = r
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("ERROR:"))
            .unwrap_or("(no ERROR line)");
        let key = (
            format!("{}{}", r.op.name(), if r.short { " (1 s)" } else { "" }),
            r.code.unwrap_or(-1),
            elide(line),
        );
        *reasons.entry(key).or_default() += 1;
    }
    for ((op, code, why), n) in &reasons {
        table.push_str(&format!("    {n:>4} × {op}, exit {code}: {why}\n"));
    }
    eprintln!("{table}");

    let show = |list: &[(usize, String)]| {
        list.iter()
            .take(5)
            .map(|(i, why)| {
                let r = &results[*i];
                format!(
                    "#{i} {} (signer {}): {why}\nstderr: {}\nstdout: {}\n",
                    r.op.name(),
                    r.signer,
                    r.stderr
                        .lines()
                        .rev()
                        .take(6)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    r.stdout.chars().take(1500).collect::<String>()
                )
            })
            .collect::<String>()
    };
    if !wrong.is_empty() || !partial.is_empty() {
        eprintln!(
            "wrong exit codes:\n{}\npartial trees:\n{}",
            show(&wrong),
            show(&partial)
        );
    }
    assert!(lost.is_empty(), "lost: {lost:?}\n{table}");
    assert!(
        twice.is_empty() && two_for_one_place.is_empty() && new_on_resign.is_empty(),
        "duplicated: listed twice {twice:?}; two manifests for one place {two_for_one_place:?}; \
         new on re-sign {new_on_resign:?}\n{table}"
    );
    assert!(
        wrong.is_empty(),
        "wrong exit codes:\n{}{table}",
        show(&wrong)
    );
    assert!(
        partial.is_empty(),
        "partial trees:\n{}{table}",
        show(&partial)
    );
    assert!(
        verify_out.status.success(),
        "final verify:\n{}",
        text(&verify_out)
    );
    ok(download_out);
    assert!(
        not_restored.is_empty(),
        "the final download did not restore {not_restored:?}\n{table}"
    );
    // A soak in which nothing was stored, or no fault struck, would prove nothing.
    assert!(!stored.is_empty() && faults.total() > 0, "{table}");
}

/// What the first Distribution soak found (9 of 96 stored entries lost): an index write that
/// failed on the way (here a 429 with `Retry-After: 1`; a reset, a drop or a 5xx alike) was sent
/// again by the transport's retry with the same bytes, a merge of a read made before the backoff.
/// Another signer that wrote in between and read its entry back within its (measured, short) wait
/// saw it listed, reported it stored, and exited; the stale retry then dropped it. Here signer A's
/// first index `PUT` is held until signer B's index write has been answered, then refused with 429;
/// A's next index `PUT` is held until B has exited. A retry of the old merge drops B's entry; a
/// write merged from a read made after the failure keeps it.
#[test]
fn a_failed_index_write_is_not_sent_again_with_its_stale_merge() {
    use cnb_attest_tests::proxy::{Action, RequestInfo};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (image, layers, _) = setup(tmp.path());
    let keys = tmp.path().join("k");
    for i in 0..2 {
        key_pair(&keys_of(&keys, i), "");
    }
    let direct = registry.push_layout(&image, "soak/app", "1.0");
    let digest = registry.digest_of(&direct);
    let index_path = format!("/v2/soak/app/manifests/sha256-{}", &digest[7..]);
    let is_index_put = move |r: &RequestInfo| r.method == "PUT" && r.path() == index_path;

    let b_proxy = Arc::new(Proxy::start(&registry.host, Plan::new()));
    let a_held = Arc::new(AtomicBool::new(false));
    let b_done = Arc::new(AtomicBool::new(false));
    let a_plan = {
        let (a_held, b_done, b_proxy) = (a_held.clone(), b_done.clone(), b_proxy.clone());
        let is_index_put_b = is_index_put.clone();
        Plan::new().on(is_index_put.clone(), move |_, n| {
            let deadline = Instant::now() + Duration::from_secs(120);
            if n == 0 {
                a_held.store(true, Ordering::SeqCst);
                while !b_proxy
                    .matching(&is_index_put_b)
                    .iter()
                    .any(|r| r.answered_at.is_some())
                {
                    assert!(Instant::now() < deadline, "B's index write never came");
                    std::thread::sleep(Duration::from_millis(2));
                }
                return Action::Respond {
                    status: 429,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: Vec::new(),
                };
            }
            while !b_done.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "B never finished");
                std::thread::sleep(Duration::from_millis(5));
            }
            Action::Forward
        })
    };
    let a_proxy = Proxy::start(&registry.host, a_plan);
    let sign = |i: usize, proxy: &Proxy| {
        let mut c = Command::new(bin("cnb-attest"));
        c.args([
            "sign",
            &format!("{}/soak/app@{digest}", proxy.host),
            "--json",
        ])
        .arg("--layers")
        .arg(&layers[i])
        .arg("--key")
        .arg(keys_of(&keys, i).join("cosign.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        registry_env(&mut c, &registry, &proxy.host);
        c.spawn().unwrap()
    };
    let a = sign(0, &a_proxy);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !a_held.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "A's index write never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    let b: Value =
        serde_json::from_str(&ok(cnb_attest_tests::finished(sign(1, &b_proxy)))).unwrap();
    b_done.store(true, Ordering::SeqCst);
    let a: Value = serde_json::from_str(&ok(cnb_attest_tests::finished(a))).unwrap();

    let listed: BTreeSet<String> = listed(&registry, "soak/app", &digest)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    eprintln!(
        "A: {} index write(s), B: {} index write(s); A's index requests:\n{}",
        a["index-writes"],
        b["index-writes"],
        a_proxy
            .requests()
            .iter()
            .filter(|r| r.request.path().contains("sha256-"))
            .map(|r| format!("  {} {} -> {:?}\n", r.request.method, r.action, r.status))
            .collect::<String>()
    );
    for (who, report) in [("A", &a), ("B", &b)] {
        for entry in report["attestations"].as_array().unwrap() {
            assert_eq!(entry["discoverable"], true, "{who}: {report:#}");
            let d = entry["manifest-digest"].as_str().unwrap();
            assert!(
                listed.contains(d),
                "{who}'s {d} ({}) was reported stored and is lost: A's retried index write sent \
                 a merge from before B's write; listed: {listed:#?}",
                entry["layer"]
            );
        }
    }
    assert_eq!(listed.len(), 6, "{listed:#?}");
}
