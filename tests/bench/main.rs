//! `scripts/bench`: cnb-attest against the floor, measured in the same run.
//!
//! Registries started here on 127.0.0.1 (Distribution 2.8.2 with htpasswd: the tag-schema
//! fallback; ferro-oci-server: the Referrers API), every request through the recording proxy of
//! `tests/support/proxy.rs`, which adds a fixed delay per request (0 ms, and 20 ms: a same-region
//! round trip) and counts requests by method and body bytes each way.
//!
//! Scenarios: the Paketo `node-express` and `spring-boot` trees, a deterministic corpus of 100
//! CycloneDX SBOMs (sizes log-spaced 1 KiB–8 MiB), and one 512 MiB SBOM (signed into an OCI
//! layout: no registry or proxy, see `big`). Steps per registry and delay:
//!
//! - cold sign: `cnb-attest sign` of a freshly pushed image; floor: the same blobs and manifests
//!   (those cnb-attest pushed, read back) pushed by a plain reqwest client with the minimal request
//!   sequence (POST + PUT per blob, or one POST where the registry completes it; PUT per manifest;
//!   one GET and one PUT of the fallback index), 8 at a time, into a fresh repository of the same
//!   registry; second column: the per-SBOM baseline (one `cnb-attest sign` process per SBOM, as
//!   `cosign attest` is used per file);
//! - warm re-run: the same `sign` again; floor: one GET of the listing;
//! - verify + download all: `cnb-attest download`; floor: the same successful GETs by reqwest, 8 at
//!   a time (listings and tags, then manifests, then blobs);
//! - download one buildpack: `download --buildpack`; floor likewise.
//!
//! Every process (cnb-attest and the floor client, which is this binary run as `bench floor
//! <plan>`) is started through `support/rss.rs`: peak RSS and user + system CPU by `wait4`. "first
//! request" is spawn to the first request the proxy saw.

mod corpus;
mod floor;
mod measure;

use std::path::{Path, PathBuf};
use std::process::Command;

use cnb_attest_tests::proxy::{Action, Plan, Proxy};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::rss::mib;
use cnb_attest_tests::{key_pair_with, ok, run};
use measure::Figures;
use serde_json::{json, Value};

const USAGE: &str =
    "usage: bench [--only node-express,spring-boot,corpus,big] [--registry distribution,ferro]
             [--delay 0,20] [--rounds N] [--steps cold,warm,download,download-one]
             [--no-baseline] [--per-sbom-sample N] [--big-mib N] [--json] [--trace]
Defaults: every scenario, both registries, delays 0 and 20 ms, 1 round, every step, baseline on,
512 MiB big SBOM. --trace prints every run's requests (time from spawn, method, target, status,
time to answer, body bytes). The per-SBOM baseline runs one process per SBOM; with more than N SBOMs
(default 10; 0 = all) it runs N of them spread evenly over the SBOMs by size and scales the sums
to all (marked `est.`): the corpus's 100 runs alone take minutes per cell. The cold sign always
runs (the other steps need its attestations) and is printed when selected. --json adds one
`BENCH-JSON {...}` line per cell.";

struct Options {
    scenarios: Vec<String>,
    registries: Vec<Kind>,
    delays: Vec<u64>,
    rounds: usize,
    steps: Vec<String>,
    baseline: bool,
    sample: usize,
    big_mib: u64,
    json: bool,
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .unwrap_or_else(|| {
            eprintln!("{USAGE}");
            std::process::exit(2)
        })
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn options(args: &[String]) -> Options {
    let mut o = Options {
        scenarios: ["node-express", "spring-boot", "corpus", "big"]
            .map(String::from)
            .to_vec(),
        registries: vec![Kind::Distribution, Kind::Ferro],
        delays: vec![0, 20],
        rounds: 1,
        steps: ["cold", "warm", "download", "download-one"]
            .map(String::from)
            .to_vec(),
        baseline: true,
        sample: 10,
        big_mib: 512,
        json: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let bad = |what: &str| -> ! {
            eprintln!("bench: bad {what}\n{USAGE}");
            std::process::exit(2)
        };
        match arg.as_str() {
            "--only" => o.scenarios = list(it.next()),
            "--registry" => {
                o.registries = list(it.next())
                    .iter()
                    .map(|r| match r.as_str() {
                        "distribution" => Kind::Distribution,
                        "ferro" => Kind::Ferro,
                        _ => bad("--registry"),
                    })
                    .collect()
            }
            "--delay" => {
                o.delays = list(it.next())
                    .iter()
                    .map(|d| d.parse().unwrap_or_else(|_| bad("--delay")))
                    .collect()
            }
            "--rounds" => {
                o.rounds = list(it.next())[0]
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| bad("--rounds"))
            }
            "--steps" => o.steps = list(it.next()),
            "--no-baseline" => o.baseline = false,
            "--per-sbom-sample" => {
                o.sample = list(it.next())[0]
                    .parse()
                    .unwrap_or_else(|_| bad("--per-sbom-sample"))
            }
            "--big-mib" => {
                o.big_mib = list(it.next())[0]
                    .parse()
                    .unwrap_or_else(|_| bad("--big-mib"))
            }
            "--json" => o.json = true,
            "--trace" => measure::TRACE.store(true, std::sync::atomic::Ordering::Relaxed),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            _ => bad(arg),
        }
    }
    for s in &o.steps {
        if !["cold", "warm", "download", "download-one"].contains(&s.as_str()) {
            eprintln!("bench: unknown step {s}\n{USAGE}");
            std::process::exit(2)
        }
    }
    for s in &o.scenarios {
        if !["node-express", "spring-boot", "corpus", "big"].contains(&s.as_str()) {
            bad_scenario(s);
        }
    }
    o
}

fn bad_scenario(s: &str) -> ! {
    eprintln!("bench: unknown scenario {s}\n{USAGE}");
    std::process::exit(2)
}

fn bin(name: &str) -> PathBuf {
    std::env::current_exe()
        .expect("current_exe")
        .parent()
        .expect("target dir")
        .join(name)
}

fn basic(registry: &Registry) -> Option<String> {
    use base64::Engine as _;
    registry.creds().map(|c| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(c)
        )
    })
}

/// A cnb-attest command reaching the registry through `proxy`.
fn cli(proxy: Option<(&Proxy, &Registry)>) -> Command {
    let mut command = Command::new(bin("cnb-attest"));
    command
        .env("COSIGN_PASSWORD", "")
        .env("DOCKER_CONFIG", "/nonexistent");
    if let Some((proxy, registry)) = proxy {
        command.env("CNB_INSECURE_REGISTRIES", &proxy.host).env(
            "CNB_REGISTRY_AUTH",
            match basic(registry) {
                Some(b) => proxy.registry_auth(&b),
                None => "{}".into(),
            },
        );
    }
    command
}

fn sign(
    reference: &str,
    layers: &Path,
    keys: &Path,
    proxy: Option<(&Proxy, &Registry)>,
) -> Figures {
    measure::run(
        cli(proxy)
            .args(["sign", reference, "--json", "--layers"])
            .arg(layers)
            .arg("--key")
            .arg(keys.join("cosign.key")),
        proxy.map(|p| p.0),
    )
}

fn download(
    reference: &str,
    out: &Path,
    keys: &Path,
    buildpack: Option<&str>,
    proxy: Option<(&Proxy, &Registry)>,
) -> Figures {
    let mut command = cli(proxy);
    command
        .args(["download", reference, "--json", "-o"])
        .arg(out)
        .arg("--key")
        .arg(keys.join("cosign.pub"));
    if let Some(bp) = buildpack {
        command.args(["--buildpack", bp]);
    }
    measure::run(&mut command, proxy.map(|p| p.0))
}

fn floor_run(
    dir: &Path,
    name: &str,
    proxy: &Proxy,
    auth: Option<&str>,
    phases: Vec<Value>,
) -> Figures {
    let plan = dir.join(format!("{name}.plan.json"));
    floor::write_plan(&plan, &proxy.host, auth, phases);
    measure::run(
        Command::new(std::env::current_exe().unwrap())
            .arg("floor")
            .arg(&plan),
        Some(proxy),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("floor") {
        floor::main(Path::new(args.get(2).expect("bench floor <plan.json>")));
    }
    let o = options(&args[1..]);
    header(&o);
    let work = tempfile::Builder::new()
        .prefix("cnb-bench-")
        .tempdir()
        .unwrap();
    let keys = work.path().join("keys");
    key_pair_with(&bin("cnb-attest"), &keys, "");
    for scenario in &o.scenarios {
        let dir = work.path().join(scenario);
        std::fs::create_dir_all(&dir).unwrap();
        let started = std::time::Instant::now();
        let input = match scenario.as_str() {
            "node-express" => corpus::node_express(&dir),
            "spring-boot" => corpus::spring_boot(&dir),
            "corpus" => corpus::corpus(&dir),
            "big" => corpus::big(&dir, o.big_mib << 20),
            other => bad_scenario(other),
        };
        println!(
            "\n#### {scenario}: {} SBOM(s), {} of SBOM (inputs made in {:.1}s)",
            input.sboms,
            human(input.sbom_bytes),
            started.elapsed().as_secs_f64()
        );
        if scenario == "big" {
            big(&o, &input, &dir, &keys);
        } else {
            for kind in &o.registries {
                let Some(registry) = Registry::start(*kind) else {
                    println!("{kind:?}: not installed, skipped");
                    continue;
                };
                for delay in &o.delays {
                    cells(&o, scenario, &input, &registry, *delay, &dir, &keys);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn header(o: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let date =
        String::from_utf8_lossy(&run(Command::new("date").args(["-u", "+%F %T UTC"])).stdout)
            .trim()
            .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let version = ok(run(Command::new(bin("cnb-attest")).arg("--version")));
    println!(
        "cnb-attest bench — {date}; {nproc} CPU(s): {cpu}; load average {}",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!("{}", version.trim());
    println!(
        "scenarios {:?}, registries {:?}, delays {:?} ms, {} round(s) (median wall), steps {:?}",
        o.scenarios, o.registries, o.delays, o.rounds, o.steps
    );
    println!("ratio = cnb-attest / floor; per-SBOM x = per-SBOM baseline / cnb-attest. Bytes are HTTP bodies.");
}

/// Everything measured for one scenario on one registry with one delay, per round.
#[derive(Default)]
struct Round {
    attestations: usize,
    cold: Figures,
    cold_floor: Figures,
    baseline: Option<Figures>,
    /// `(run, of)` when the baseline was estimated from a sample.
    baseline_sample: Option<(usize, usize)>,
    warm: Figures,
    warm_floor: Figures,
    download: Figures,
    download_floor: Figures,
    one: Figures,
    one_floor: Figures,
    /// Whether download one buildpack fetched only its attestations' blobs, said in words.
    one_check: String,
}

/// Of the blob GETs in `log`: how many are blobs of `buildpack`'s attestations, how many of other
/// attestations (the referrer manifests cnb-attest PUT in `cold`, told apart by its report), and
/// the number of blobs `buildpack`'s attestations have.
fn blob_split(
    cold: &Figures,
    log: &[cnb_attest_tests::proxy::Recorded],
    buildpack: &str,
) -> String {
    use std::collections::{BTreeMap, BTreeSet};
    let report: Value = serde_json::from_str(&cold.stdout).unwrap_or(Value::Null);
    let mut blobs_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &cold.log {
        if r.request.method == "PUT" && r.request.path().contains("/manifests/") {
            let manifest: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let mut blobs = vec![manifest["config"]["digest"]
                .as_str()
                .unwrap_or("")
                .to_string()];
            for l in manifest["layers"].as_array().into_iter().flatten() {
                blobs.push(l["digest"].as_str().unwrap_or("").to_string());
            }
            blobs_of.insert(cnb_attest_tests::sha256(&r.body), blobs);
        }
    }
    let (mut mine, mut all) = (BTreeSet::new(), BTreeSet::new());
    for a in report["attestations"].as_array().into_iter().flatten() {
        let blobs = blobs_of
            .get(a["manifest-digest"].as_str().unwrap_or(""))
            .cloned()
            .unwrap_or_default();
        if a["buildpack"] == buildpack {
            mine.extend(blobs.iter().cloned());
        }
        all.extend(blobs);
    }
    let fetched: Vec<String> = log
        .iter()
        .filter(|r| r.request.method == "GET")
        .filter_map(|r| r.request.path().split("/blobs/").nth(1).map(str::to_string))
        .collect();
    let own = fetched.iter().filter(|d| mine.contains(*d)).count();
    let foreign = fetched
        .iter()
        .filter(|d| all.contains(*d) && !mine.contains(*d))
        .count();
    let other = fetched.len() - own - foreign;
    format!(
        "{buildpack}: fetched {own} of its {} attestation blobs (config blobs included), {foreign} of other buildpacks' attestations, {other} other blob(s) (the image config) ({})",
        mine.len(),
        if foreign == 0 && own <= mine.len() { "only its blobs: met" } else { "NOT met" }
    )
}

fn cells(
    o: &Options,
    scenario: &str,
    input: &corpus::Input,
    registry: &Registry,
    delay: u64,
    dir: &Path,
    keys: &Path,
) {
    let step = |s: &str| o.steps.iter().any(|x| x == s);
    let mut rounds = Vec::new();
    for round in 0..o.rounds {
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
        let via = Some((&proxy, registry));
        let auth = basic(registry);
        let tag = format!("{}-{delay}-{round}", scenario.replace('_', "-"));
        let push = |repo: &str| {
            registry
                .push_layout(&input.image, repo, "1.0")
                .replace(&registry.host, &proxy.host)
        };
        let repo_a = format!("bench/{tag}-a");
        let reference = push(&repo_a);
        let mut r = Round {
            cold: sign(&reference, &input.layers, keys, via),
            ..Round::default()
        };
        r.attestations = serde_json::from_str::<Value>(&r.cold.stdout)
            .ok()
            .and_then(|v| v["attestations"].as_array().map(Vec::len))
            .unwrap_or(0);
        if step("warm") {
            r.warm = sign(&reference, &input.layers, keys, via);
        }
        let plans = dir.join(format!("plans-{tag}"));
        std::fs::create_dir_all(&plans).unwrap();
        if step("cold") {
            let repo_b = format!("bench/{tag}-floor");
            push(&repo_b);
            let phases = floor::sign_plan(
                &r.cold.log,
                &repo_a,
                &repo_b,
                &registry.host,
                auth.as_deref(),
                &plans,
            );
            r.cold_floor = floor_run(&plans, "sign", &proxy, auth.as_deref(), phases);
            if o.baseline {
                let c = push(&format!("bench/{tag}-per-sbom"));
                let mut total = Figures::default();
                let ones = dir.join(format!("one-{tag}"));
                let all = corpus::one_sbom_each(&input.layers, &ones);
                let count = all.len();
                let picked: Vec<&PathBuf> = if o.sample == 0 || count <= o.sample {
                    all.iter().collect()
                } else {
                    // A sample spread over the sizes: the SBOMs by size, the middle one of each
                    // of `sample` equal slices.
                    let sizes: Vec<u64> = corpus::sbom_paths(&input.layers)
                        .iter()
                        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                        .collect();
                    let mut by_size: Vec<usize> = (0..count).collect();
                    by_size.sort_by_key(|&i| sizes[i]);
                    (0..o.sample)
                        .map(|k| &all[by_size[(2 * k + 1) * count / (2 * o.sample)]])
                        .collect()
                };
                for one in &picked {
                    let mut f = sign(&c, one, keys, via);
                    f.log.clear();
                    total.add(&f);
                }
                if picked.len() < count {
                    total.scale(count as f64 / picked.len() as f64);
                    r.baseline_sample = Some((picked.len(), count));
                }
                let _ = std::fs::remove_dir_all(&ones);
                r.baseline = Some(total);
            }
        }
        if step("warm") {
            let digest = registry.digest_of(&format!("{}/{repo_a}:1.0", registry.host));
            let listing = match registry.kind {
                Kind::Ferro => format!("/v2/{repo_a}/referrers/{digest}"),
                Kind::Distribution => format!(
                    "/v2/{repo_a}/manifests/{}",
                    digest.replace("sha256:", "sha256-")
                ),
            };
            let accept = "application/vnd.oci.image.index.v1+json";
            r.warm_floor = floor_run(
                &plans,
                "warm",
                &proxy,
                auth.as_deref(),
                vec![json!([{"op": "get", "path": listing, "accept": accept}])],
            );
        }
        if step("download") {
            let out = dir.join(format!("download-{tag}"));
            r.download = download(&reference, &out, keys, None, via);
            r.download_floor = floor_run(
                &plans,
                "download",
                &proxy,
                auth.as_deref(),
                floor::get_plan(&r.download.log),
            );
            let _ = std::fs::remove_dir_all(&out);
        }
        if step("download-one") {
            let out = dir.join(format!("download-one-{tag}"));
            r.one = download(&reference, &out, keys, Some(&input.one_buildpack), via);
            r.one_check = blob_split(&r.cold, &r.one.log, &input.one_buildpack);
            r.one_floor = floor_run(
                &plans,
                "download-one",
                &proxy,
                auth.as_deref(),
                floor::get_plan(&r.one.log),
            );
            let _ = std::fs::remove_dir_all(&out);
        }
        let _ = std::fs::remove_dir_all(&plans);
        for f in [
            &mut r.cold,
            &mut r.cold_floor,
            &mut r.warm,
            &mut r.warm_floor,
            &mut r.download,
            &mut r.download_floor,
            &mut r.one,
            &mut r.one_floor,
        ] {
            f.log.clear();
        }
        rounds.push(r);
    }
    let pick =
        |f: fn(&Round) -> &Figures| measure::median(rounds.iter().map(|r| f(r).clone()).collect());
    let at = format!("{scenario} · {:?} · {delay} ms", registry.kind);
    let n = rounds[0].attestations;
    let json = |step: &str, ours: &Figures, floor: &Figures, baseline: Option<&Figures>| {
        if o.json {
            println!(
                "BENCH-JSON {}",
                json!({"scenario": scenario, "registry": format!("{:?}", registry.kind),
                    "delay_ms": delay, "step": step, "attestations": n,
                    "ours": ours.to_json(), "floor": floor.to_json(),
                    "per_sbom": baseline.map(Figures::to_json),
                    "per_sbom_sample": rounds[0].baseline_sample})
            );
        }
    };
    if step("cold") {
        let (ours, floor) = (pick(|r| &r.cold), pick(|r| &r.cold_floor));
        let baseline = rounds[0]
            .baseline
            .is_some()
            .then(|| measure::median(rounds.iter().filter_map(|r| r.baseline.clone()).collect()));
        let budget = 3 * n as u64 + 8;
        let mut checks = vec![format!(
            "wall {:.2}x floor (target ≤{} on {:?})",
            ratio(ours.wall.as_secs_f64(), floor.wall.as_secs_f64()),
            if registry.kind == Kind::Ferro {
                "1.3"
            } else {
                "1.5"
            },
            registry.kind
        )];
        checks.push(format!(
            "requests {} for {n} attestations; budget 3×{n}+8 = {budget}{}",
            ours.requests(),
            if registry.kind == Kind::Distribution {
                if ours.requests() <= budget {
                    " (met)"
                } else {
                    " (NOT met)"
                }
            } else {
                " (target set for Distribution)"
            }
        ));
        if let Some(b) = &baseline {
            checks.push(format!(
                "per-SBOM baseline / batched wall = {:.1}x (target ≥10x on the corpus){}",
                ratio(b.wall.as_secs_f64(), ours.wall.as_secs_f64()),
                match rounds[0].baseline_sample {
                    Some((run, of)) => format!(
                        "; per-SBOM column est.: {run} of the {of} runs made, sums scaled by {:.0}",
                        of as f64 / run as f64
                    ),
                    None => String::new(),
                }
            ));
        }
        print_cell(
            &format!("{at} · cold sign ({n} attestations)"),
            &ours,
            Some(&floor),
            baseline.as_ref(),
            &checks,
        );
        json("cold", &ours, &floor, baseline.as_ref());
    }
    if step("warm") {
        let (ours, floor) = (pick(|r| &r.warm), pick(|r| &r.warm_floor));
        let checks = vec![format!(
            "blob bytes sent {}, manifest PUTs {} (target 0 and 0: {})",
            ours.blob_bytes_sent,
            ours.manifest_puts,
            if ours.blob_bytes_sent == 0 && ours.manifest_puts == 0 && ours.error.is_none() {
                "met"
            } else {
                "NOT met"
            }
        )];
        print_cell(
            &format!("{at} · warm re-run (floor: one GET of the listing)"),
            &ours,
            Some(&floor),
            None,
            &checks,
        );
        json("warm", &ours, &floor, None);
    }
    if step("download") {
        let (ours, floor) = (pick(|r| &r.download), pick(|r| &r.download_floor));
        let checks = vec![format!(
            "wall {:.2}x the download floor (target ≤1.3)",
            ratio(ours.wall.as_secs_f64(), floor.wall.as_secs_f64())
        )];
        print_cell(
            &format!("{at} · verify + download all"),
            &ours,
            Some(&floor),
            None,
            &checks,
        );
        json("download", &ours, &floor, None);
    }
    if step("download-one") {
        let (ours, floor) = (pick(|r| &r.one), pick(|r| &r.one_floor));
        let checks = vec![rounds[0].one_check.clone()];
        print_cell(
            &format!("{at} · download one buildpack"),
            &ours,
            Some(&floor),
            None,
            &checks,
        );
        json("download-one", &ours, &floor, None);
    }
}

/// The big SBOM, signed into an OCI layout (no registry: nothing to proxy), against the compute
/// floor: `sha256sum` and `base64` of the same file, timed in the same run.
fn big(o: &Options, input: &corpus::Input, dir: &Path, keys: &Path) {
    let file = corpus::sbom_paths(&input.layers).remove(0);
    let mut floor = measure::run(Command::new("sha256sum").arg(&file), None);
    let b64 = measure::run(
        Command::new("sh")
            .args(["-c", "base64 -w0 \"$1\" > /dev/null", "sh"])
            .arg(&file),
        None,
    );
    floor.add(&b64);
    floor.peak_rss = floor.peak_rss.max(b64.peak_rss);
    let (mut signs, mut downloads) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        let layout = dir.join(format!("layout-{round}"));
        corpus::layout_copy(&input.image, &layout);
        let reference = layout.display().to_string();
        signs.push(sign(&reference, &input.layers, keys, None));
        let out = dir.join(format!("out-{round}"));
        downloads.push(download(&reference, &out, keys, None, None));
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&layout);
    }
    let (ours, down) = (measure::median(signs), measure::median(downloads));
    println!(
        "(signed into an OCI layout only: the recording proxy buffers bodies of at most 256 MiB, so \
         the registry steps are not run for this SBOM)"
    );
    let at = format!("big · {} OCI layout", human(input.sbom_bytes));
    let checks = vec![
        format!(
            "wall {:.2}x the compute floor (sha256sum {:.2}s + base64 {:.2}s; target ≤2.5)",
            ratio(ours.wall.as_secs_f64(), floor.wall.as_secs_f64()),
            floor.wall.as_secs_f64() - b64.wall.as_secs_f64(),
            b64.wall.as_secs_f64()
        ),
        format!("peak RSS {} (target < 96 MiB)", mib(ours.peak_rss)),
    ];
    print_cell(
        &format!("{at} · sign into the layout"),
        &ours,
        Some(&floor),
        None,
        &checks,
    );
    let checks = vec![format!("peak RSS {} (target < 96 MiB)", mib(down.peak_rss))];
    print_cell(
        &format!("{at} · verify + download all (floor: the compute floor)"),
        &down,
        Some(&floor),
        None,
        &checks,
    );
    if o.json {
        for (step, ours) in [("sign-layout", &ours), ("download-layout", &down)] {
            println!(
                "BENCH-JSON {}",
                json!({"scenario": "big", "registry": "layout", "delay_ms": 0, "step": step,
                    "ours": ours.to_json(), "floor": floor.to_json(), "per_sbom": null})
            );
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn print_cell(
    title: &str,
    ours: &Figures,
    floor: Option<&Figures>,
    baseline: Option<&Figures>,
    checks: &[String],
) {
    match &ours.error {
        Some(_) => println!("\n== {title} — FAILED (figures are up to the failure)"),
        None => println!("\n== {title}"),
    }
    println!(
        "  {:<16} {:>14} {:>14} {:>7}   {:>14} {:>8}",
        "", "cnb-attest", "floor", "ratio", "per-SBOM", "x"
    );
    let cell = |f: Option<&Figures>, v: &dyn Fn(&Figures) -> String| f.map(v).unwrap_or_default();
    type Row = (
        String,
        Box<dyn Fn(&Figures) -> String>,
        Box<dyn Fn(&Figures) -> f64>,
    );
    let mut rows: Vec<Row> = vec![
        (
            "wall".into(),
            Box::new(|f| format!("{:.3} s", f.wall.as_secs_f64())),
            Box::new(|f| f.wall.as_secs_f64()),
        ),
        (
            "cpu (user+sys)".into(),
            Box::new(|f| format!("{:.3} s", f.cpu.as_secs_f64())),
            Box::new(|f| f.cpu.as_secs_f64()),
        ),
        (
            "requests".into(),
            Box::new(|f| f.requests().to_string()),
            Box::new(|f| f.requests() as f64),
        ),
    ];
    let mut methods: Vec<String> = [Some(ours), floor, baseline]
        .into_iter()
        .flatten()
        .flat_map(|f| f.by_method.keys().cloned())
        .collect();
    methods.sort();
    methods.dedup();
    for m in methods {
        let (a, b) = (m.clone(), m.clone());
        rows.push((
            format!("  {m}"),
            Box::new(move |f| f.by_method.get(&a).copied().unwrap_or(0).to_string()),
            Box::new(move |f| f.by_method.get(&b).copied().unwrap_or(0) as f64),
        ));
    }
    rows.push((
        "bytes sent".into(),
        Box::new(|f| human(f.sent)),
        Box::new(|f| f.sent as f64),
    ));
    rows.push((
        "bytes received".into(),
        Box::new(|f| human(f.received)),
        Box::new(|f| f.received as f64),
    ));
    rows.push((
        "peak RSS".into(),
        Box::new(|f| mib(f.peak_rss)),
        Box::new(|f| f.peak_rss as f64),
    ));
    rows.push((
        "first request".into(),
        Box::new(|f| {
            f.first_request
                .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        }),
        Box::new(|f| f.first_request.map(|d| d.as_secs_f64()).unwrap_or(0.0)),
    ));
    for (name, show, value) in &rows {
        let r = floor.map(|fl| ratio(value(ours), value(fl)));
        let x = baseline.map(|b| ratio(value(b), value(ours)));
        let fmt_ratio = |r: Option<f64>| match r {
            Some(r) if r.is_finite() => format!("{r:.2}x"),
            _ => String::new(),
        };
        println!(
            "  {:<16} {:>14} {:>14} {:>7}   {:>14} {:>8}",
            name,
            show(ours),
            cell(floor, &**show),
            fmt_ratio(r),
            cell(baseline, &**show),
            fmt_ratio(x)
        );
    }
    for (who, f) in [
        ("cnb-attest", Some(ours)),
        ("floor", floor),
        ("per-SBOM", baseline),
    ] {
        if let Some(e) = f.and_then(|f| f.error.as_ref()) {
            println!("  {who}: {e}");
        }
    }
    for c in checks {
        println!("  check: {c}");
    }
}
