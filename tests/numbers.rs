//! Numbers from a registry or a flag (issue 14 item 1): every numeric value the client reads —
//! a token's `expires_in`, `Retry-After`, `Content-Length`, `--timeout` / `CNB_ATTEST_TIMEOUT` —
//! driven with `u64::MAX`, negative and non-numeric values against a real registry (ferro) behind
//! the scripted proxy (`support/proxy.rs`). No run may panic (exit 101, "panicked" on stderr) or
//! hang: each ends in success or a normal error. The arithmetic rule is in
//! `crates/registry/src/numbers.rs`.

use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cnb_attest_tests::proxy::{bearer_realm, Action, Plan, Proxy};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::signed::{SignedImage, REPO};
use cnb_attest_tests::text;

const U64_MAX: &str = "18446744073709551615";

/// The run did not panic: no exit 101, no "panicked" anywhere in its output.
fn assert_no_panic(case: &str, out: &Output) {
    let all = text(out);
    assert_ne!(out.status.code(), Some(101), "{case}: panicked\n{all}");
    assert!(out.status.code().is_some(), "{case}: killed\n{all}");
    assert!(!all.contains("panicked"), "{case}:\n{all}");
}

/// The run succeeded, without a panic.
fn assert_works(case: &str, out: &Output) {
    assert_no_panic(case, out);
    assert!(out.status.success(), "{case}: failed\n{}", text(out));
}

/// The run failed with a normal error: exit code neither 0 nor 101, an `ERROR` line.
fn assert_normal_error(case: &str, out: &Output) -> String {
    assert_no_panic(case, out);
    let all = text(out);
    assert!(!out.status.success(), "{case}: succeeded\n{all}");
    all.lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("{case}: no ERROR line\n{all}"))
        .to_string()
}

/// A proxy in front of the registry that, as the registry, asks for a Bearer token from a realm
/// on its own host (`/token`) and answers that token request itself with `token_body`; requests
/// carrying the token are forwarded.
fn token_proxy(image: &SignedImage, token_body: String) -> Proxy {
    bearer_realm(&image.registry.host, move |_, _| Action::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: token_body.clone().into_bytes(),
    })
}

/// A token endpoint answering `expires_in` = u64::MAX, -1, "soon", 1e400 (and u64::MAX + 1):
/// the token is used (the lifetime is clamped, or the default when not whole seconds) and `ls`
/// lists every attestation; `download` too with u64::MAX. Was: a panic ("overflow when adding
/// duration to instant", exit 101) for u64::MAX, "not a token" for the others.
#[test]
fn token_expires_in_out_of_range_or_not_a_number_does_not_panic() {
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    for expires_in in [
        U64_MAX,
        "18446744073709551616",
        "-1",
        "\"soon\"",
        "1e400",
        "2.5",
    ] {
        let body = format!("{{\"token\":\"t\",\"expires_in\":{expires_in}}}");
        let proxy = token_proxy(&image, body);
        let case = format!("expires_in {expires_in}");
        let listed = image.cli(&proxy, &["ls", "--json", &image.reference(&proxy)]);
        assert_works(&case, &listed);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(image.listed.len()),
            "{case}: {listed}"
        );
        assert!(
            !proxy.matching(|r| r.path() == "/token").is_empty(),
            "{case}: no token asked for\n{}",
            proxy.summary()
        );
        if expires_in == U64_MAX {
            let out = image.tmp.path().join("out-max");
            assert_works(&case, &image.download(&proxy, &out));
        }
    }
}

/// `Retry-After` of u64::MAX, u64::MAX + 1, -5, "tomorrow" and 1e400 on a 429 to every manifest
/// GET, with `--timeout 5`: `ls` ends within the deadline (plus slack), with a normal error naming
/// the 429, never a panic or a wait of u64::MAX seconds.
#[test]
fn retry_after_out_of_range_or_not_a_number_is_bounded() {
    let Some(image) = SignedImage::pushed(Kind::Ferro) else {
        return;
    };
    for retry_after in [U64_MAX, "18446744073709551616", "-5", "tomorrow", "1e400"] {
        let value = retry_after.to_string();
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(
                |r| r.method == "GET" && r.path().contains("/manifests/"),
                move |_, _| Action::Respond {
                    status: 429,
                    headers: vec![("Retry-After".into(), value.clone())],
                    body: br#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#.to_vec(),
                },
            ),
        );
        let case = format!("Retry-After {retry_after}");
        let started = Instant::now();
        let out = image.cli(
            &proxy,
            &["ls", "--json", &image.reference(&proxy), "--timeout", "5"],
        );
        let took = started.elapsed();
        let error = assert_normal_error(&case, &out);
        assert!(took < Duration::from_secs(20), "{case}: took {took:?}");
        assert!(
            error.contains("429") || error.contains("deadline"),
            "{case}: {error}"
        );
    }
}

/// A blob whose `Content-Length` is u64::MAX (and u64::MAX - 1): `download` refuses it with a
/// normal error (never a panic, never an attempt to allocate it), having read next to nothing.
#[test]
fn a_blob_content_length_of_u64_max_is_a_normal_error() {
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    for length in [u64::MAX, u64::MAX - 1] {
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(
                |r| r.method == "GET" && r.path().contains("/blobs/"),
                move |_, _| Action::Stream {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                    length: Some(length),
                    limit: 1 << 20,
                },
            ),
        );
        let case = format!("Content-Length {length}");
        let out = image.tmp.path().join(format!("out-{length}"));
        let started = Instant::now();
        let result = image.download(&proxy, &out);
        assert_normal_error(&case, &result);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{case}: took {:?}",
            started.elapsed()
        );
        // Nothing of the refused blobs was written.
        let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "{case}: wrote into {}", out.display());
    }
}

/// A token response whose `Content-Length` is u64::MAX: refused at the token limit, no panic.
#[test]
fn a_token_content_length_of_u64_max_is_a_normal_error() {
    let Some(image) = SignedImage::pushed(Kind::Ferro) else {
        return;
    };
    let proxy_host = Arc::new(OnceLock::<String>::new());
    let host = Arc::clone(&proxy_host);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new()
            .on(
                |r| r.path() == "/token",
                |_, _| Action::Stream {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    length: Some(u64::MAX),
                    limit: 1 << 20,
                },
            )
            .on(
                |_| true,
                move |_, _| Action::Respond {
                    status: 401,
                    headers: vec![(
                        "WWW-Authenticate".into(),
                        format!("Bearer realm=\"http://{}/token\"", host.get().unwrap()),
                    )],
                    body: Vec::new(),
                },
            ),
    );
    proxy_host.set(proxy.host.clone()).unwrap();
    let out = image.cli(&proxy, &["ls", "--json", &image.reference(&proxy)]);
    let error = assert_normal_error("token Content-Length u64::MAX", &out);
    assert!(error.contains("token"), "{error}");
}

/// `--timeout 18446744073709551615` and `CNB_ATTEST_TIMEOUT=18446744073709551615`: no deadline
/// (as `0`), and `ls` and `download` work. Was: a panic ("overflow when adding duration to
/// instant", exit 101) before the first request.
#[test]
fn a_timeout_of_u64_max_is_no_deadline() {
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    let host = image.registry.host.clone();
    let reference = format!("{host}/{REPO}:1.0");
    let flag = image.cli_at(&host, &["ls", "--json", &reference, "--timeout", U64_MAX]);
    assert_works("--timeout u64::MAX", &flag);
    let env = cnb_attest_tests::run(
        image
            .env_for(
                &host,
                &mut std::process::Command::new(cnb_attest_tests::bin("cnb-attest")),
            )
            .args(["ls", "--json", &reference])
            .env("CNB_ATTEST_TIMEOUT", U64_MAX),
    );
    assert_works("CNB_ATTEST_TIMEOUT u64::MAX", &env);
    assert_eq!(flag.stdout, env.stdout);
    let out = image.tmp.path().join("out");
    let key = image.keys().join("cosign.pub");
    let download = cnb_attest_tests::run(
        image
            .env_for(
                &host,
                &mut std::process::Command::new(cnb_attest_tests::bin("cnb-attest")),
            )
            .args(["download", &reference, "-o"])
            .arg(&out)
            .arg("--key")
            .arg(&key)
            .env("CNB_ATTEST_TIMEOUT", U64_MAX),
    );
    assert_works("download, CNB_ATTEST_TIMEOUT u64::MAX", &download);
    // A value past u64 is refused by the flag parser as a usage error, not a panic.
    let over = image.cli_at(
        &host,
        &[
            "ls",
            "--json",
            &reference,
            "--timeout",
            "18446744073709551616",
        ],
    );
    assert_no_panic("--timeout u64::MAX + 1", &over);
    assert!(!over.status.success(), "{}", text(&over));
    for bad in ["-1", "soon"] {
        let out = image.cli_at(&host, &["ls", "--json", &reference, "--timeout", bad]);
        assert_no_panic(&format!("--timeout {bad}"), &out);
        assert!(!out.status.success(), "{}", text(&out));
    }
}
