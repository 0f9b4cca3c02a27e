//! The stable fuzz harness CI runs every time: for each target, (a) every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` is replayed, then (b) a deterministic
//! mutation loop (bit flips, byte inserts and deletes, interesting values, splices between corpus
//! entries) runs for `CNB_FUZZ_SECONDS` seconds (default 2) and prints its executions per second.
//!
//! A panic in a target fails the test: the input is written to a temporary file, whose path is
//! printed with the input's first bytes in hex (copy it to `fuzz/regressions/<target>/` once
//! fixed). An input that takes more than `CNB_FUZZ_SLOW_SECONDS` (default 10) is a failure too
//! (super-linear time). `CNB_FUZZ_SEED` changes the mutation seed (default fixed, so every run
//! tries the same inputs for the same time budget on the same machine).

use cnb_attest_fuzz::Rng;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest input the mutation loop makes (libFuzzer's default `-max_len` is 4096 too).
const MAX_LEN: usize = 4096;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("fuzz")
}

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

const INTERESTING: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"0",
    b"-",
    b"1e400",
    b"-0",
    b"9999999999999999999999",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"=",
    b"==",
    b"+",
    b"/",
    b"_",
    b"..",
    b"/",
    b"@",
    b"sha256:",
    b"\xc3\xa9",
    b"\xe2\x80\xae",
    b"\xef\xbb\xbf",
    b"\n",
    b"\r\n",
    b"\t",
    b"ustar\x0000",
    b"ustar  \x00",
    b"\x1f\x8b\x08",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            4 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 || i + value.len() > len {
                    input.splice(i..i, value.iter().copied());
                } else {
                    input[i..i + value.len()].copy_from_slice(value);
                }
            }
            5 if !corpus.is_empty() => {
                // Splice: a prefix of this input, a suffix of another.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                // Repeat a piece (nesting, long runs).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let piece = input[i..i + n].to_vec();
                for _ in 0..1 + rng.below(64) {
                    input.splice(i..i, piece.iter().copied());
                }
            }
            7 if len > 0 => {
                // An ASCII digit or letter changed (sizes, checksums, octal fields).
                let i = rng.below(len);
                input[i] = b"0123456789abcdefABCDEF "[rng.below(23)];
            }
            _ => {
                let i = rng.below(len + 1);
                input.truncate(i);
            }
        }
    }
    input.truncate(MAX_LEN);
}

/// Runs `target` on `input`; on a panic or a slow input, writes the input to a temporary file and
/// returns the failure.
fn run_one(
    name: &str,
    target: fn(&[u8]),
    input: &[u8],
    origin: &str,
    slow: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = start.elapsed();
    let problem = match outcome {
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            format!("panicked: {message}")
        }
        Ok(()) if took > slow => format!("took {took:?} (over {slow:?}: super-linear time?)"),
        Ok(()) => return Ok(()),
    };
    let saved = std::env::temp_dir().join(format!(
        "cnb-fuzz-{name}-{:016x}",
        input
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b))
                .wrapping_mul(0x0100_0000_01b3))
    ));
    let _ = std::fs::write(&saved, input);
    let shown: String = input.iter().take(256).map(|b| format!("{b:02x}")).collect();
    Err(format!(
        "target `{name}` {problem}\n  input: {origin} ({} bytes), saved to {}\n  hex (first 256 bytes): {shown}\n  replay it: copy the file to fuzz/regressions/{name}/ and run `cargo test -p cnb-attest-fuzz`",
        input.len(),
        saved.display()
    ))
}

fn check(name: &str) {
    let (_, target) = *cnb_attest_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let slow = Duration::from_secs_f64(env_number("CNB_FUZZ_SLOW_SECONDS", 10.0));
    // Quiet panics: the harness reports them itself, once.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));

    let mut corpus = Vec::new();
    let mut failures = Vec::new();
    for dir in ["corpus", "regressions"] {
        for path in files(&root().join(dir).join(name)) {
            let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(e) = run_one(name, target, &input, &path.display().to_string(), slow) {
                failures.push(e);
            }
            corpus.push(input);
        }
    }
    let replayed = corpus.len();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }

    let seconds = env_number("CNB_FUZZ_SECONDS", 2.0);
    let seed = env_number("CNB_FUZZ_SEED", 0.0) as u64;
    let mut rng = Rng::seeded(
        name.bytes().fold(0x9e37_79b9_7f4a_7c15u64 ^ seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }) | 1,
    );
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut executions = 0u64;
    while failures.is_empty() && Instant::now() < deadline {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        executions += 1;
        if let Err(e) = run_one(
            name,
            target,
            &input,
            &format!("mutation {executions}"),
            slow,
        ) {
            failures.push(e);
        }
    }
    panic::set_hook(hook);
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{name}: replayed {replayed} files; {executions} mutated inputs in {elapsed:.1} s ({:.0} exec/s)",
        executions as f64 / elapsed
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// Every target of the library has a test here, and a cargo-fuzz target.
        #[test]
        fn every_target_is_run() {
            let here = [$(stringify!($name)),*];
            for (name, _) in cnb_attest_fuzz::TARGETS {
                assert!(here.contains(name), "{name} has no test in this harness");
                let fuzz_target = root().join("fuzz_targets").join(format!("{name}.rs"));
                assert!(fuzz_target.is_file(), "{} is missing", fuzz_target.display());
            }
            assert_eq!(here.len(), cnb_attest_fuzz::TARGETS.len());
        }
    };
}

targets!(
    tar_layer,
    docker_save,
    json,
    statement,
    envelope,
    bundle,
    oci,
    signer_toml,
    restore_path,
    reference,
);
