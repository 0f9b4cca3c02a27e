//! The registry client's own failures, named for what they are (issue 14, items 9 and 10c): a body
//! cut short (a `Content-Length` lie, a connection closed mid-body) is a transport failure, retried
//! and, when it persists, reported as one; waiting on `Retry-After` is bounded per run; a token
//! the token endpoint sends with CR LF in it is the endpoint's fault, not the user's credential's;
//! and every registry document is read by one strict JSON reader, so a repeated `manifests` key is
//! refused alike in the `sha256-<hex>` index and in a Referrers API answer.
//!
//! Against real registries started by the test (CNCF Distribution: the tag-schema index; ferro: the
//! Referrers API), with the fault-injecting proxy (`support/proxy.rs`) in front where a
//! misbehaving server is needed. Each case checks what the client did (the requests the proxy
//! recorded, and when) as well as what it said.

use std::process::Output;
use std::time::Duration;

use cnb_attest_tests::closed::files;
use cnb_attest_tests::proxy::{bearer_realm, get, Action, Plan, Proxy, Recorded};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::signed::{SignedImage, CDX, NODE, OCI_INDEX, OCI_MANIFEST, REPO, SPDX};
use cnb_attest_tests::{ok, run, text};
use serde_json::Value;

/// Attempts the client makes for one read (`RetryPolicy::default().max_attempts`).
const MAX_ATTEMPTS: usize = 5;
/// The most a run waits on `Retry-After` (`RetryPolicy::default().retry_after_budget`).
const RETRY_AFTER_BUDGET: Duration = Duration::from_secs(60);
/// What scheduling may add to the waits the proxy observes.
const SLACK: Duration = Duration::from_secs(5);

/// The node layer's CycloneDX SBOM, below the output directory.
const NODE_CDX: &str = "layers/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json";

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

fn blob_path(digest: &str) -> String {
    format!("/v2/{REPO}/blobs/{digest}")
}

/// GET `path` on the registry itself with curl (an independent reader): the body, which must be a
/// 200.
fn curl_get(image: &SignedImage, path: &str, accept: &str) -> Vec<u8> {
    let (status, body) = image.registry.curl(path, accept);
    assert_eq!(status, 200, "GET {path}: {body}");
    body.into_bytes()
}

/// The first layer (the attestation blob) of a referrer manifest: its digest and size.
fn attestation_blob(image: &SignedImage, manifest: &str) -> (String, u64) {
    let manifest: Value =
        serde_json::from_slice(&curl_get(image, &manifest_path(manifest), OCI_MANIFEST)).unwrap();
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

/// Cuts a GET of `path` short: the head announces the full `size` as `Content-Length`, half of it
/// goes out, and the connection closes.
fn cut_short(size: u64, content_type: &str) -> Action {
    Action::Stream {
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        length: Some(size),
        limit: size / 2,
    }
}

/// The `ERROR` line of a failed run.
fn error_line(out: &Output) -> String {
    let all = text(out);
    all.lines()
        .find(|l| l.starts_with("ERROR"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{all}"))
        .to_string()
}

/// `download` through `proxy` into `<tmp>/<name>`.
fn download(image: &SignedImage, proxy: &Proxy, name: &str) -> (Output, std::path::PathBuf) {
    let out = image.tmp.path().join(name);
    (image.download(proxy, &out), out)
}

/// Item 9, retried: the blob of one attestation (node CycloneDX) and the manifest of another (node
/// SPDX) are each cut short once: the head announces the full length, half of it arrives, the
/// connection closes. Each is fetched again, and `download` succeeds writing exactly the input
/// SBOMs. Was: the cut reads were not retried, and both attestations were left out ("not signed
/// by a trusted key").
#[test]
fn a_blob_or_manifest_cut_short_once_is_fetched_again() {
    let Some(image) = SignedImage::signed(Kind::Distribution) else {
        return;
    };
    let cdx = image.attestation(NODE, "node", CDX);
    let (blob, blob_size) = attestation_blob(&image, &cdx);
    let spdx = image.attestation(NODE, "node", SPDX);
    let spdx_size = curl_get(&image, &manifest_path(&spdx), OCI_MANIFEST).len() as u64;
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new()
            .on(get(blob_path(&blob)), move |_, n| {
                if n == 0 {
                    cut_short(blob_size, "application/octet-stream")
                } else {
                    Action::Forward
                }
            })
            .on(get(manifest_path(&spdx)), move |_, n| {
                if n == 0 {
                    cut_short(spdx_size, OCI_MANIFEST)
                } else {
                    Action::Forward
                }
            }),
    );
    let (result, out) = download(&image, &proxy, "out");
    let report = text(&result);
    assert!(result.status.success(), "{report}\n{}", proxy.summary());
    assert!(!report.contains("FAILED"), "{report}");
    assert!(files(&out) == image.good(), "{report}");
    for path in [blob_path(&blob), manifest_path(&spdx)] {
        let asked: Vec<Recorded> = proxy.matching(|r| r.path() == path);
        assert_eq!(asked.len(), 2, "{path}:\n{}", proxy.summary());
        assert_eq!(asked[0].action, "stream", "{}", proxy.summary());
        assert_eq!(asked[1].status, Some(200), "{}", proxy.summary());
    }
}

/// Item 9, persistent: every GET of one attestation blob is cut short (half of the announced
/// length, then the connection closes). The client tries it [`MAX_ATTEMPTS`] times, then reports
/// a transport failure naming the blob and how much of it arrived: "transport failure: the
/// connection closed after N of M bytes"; that attestation's SBOM is not written. Was: one
/// attempt, and an error reading as a body that failed to decode. (How `download` sums the
/// attestation up — today "left out: not signed by a trusted key" — is sbom-restore's and the
/// facade's part; here the client's detail, which `download` prints, is checked.)
#[test]
fn a_blob_cut_short_every_time_is_reported_as_a_transport_failure() {
    let Some(image) = SignedImage::signed(Kind::Distribution) else {
        return;
    };
    let cdx = image.attestation(NODE, "node", CDX);
    let (blob, size) = attestation_blob(&image, &cdx);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(get(blob_path(&blob)), move |_, _| {
            cut_short(size, "application/octet-stream")
        }),
    );
    let (result, out) = download(&image, &proxy, "out");
    let report = text(&result);
    let expected = format!(
        "{REPO}@{blob}: transport failure: the connection closed after {} of {size} bytes ({MAX_ATTEMPTS} attempts)",
        size / 2,
    );
    assert!(
        report.contains(&expected),
        "expected {expected:?} in:\n{report}"
    );
    assert!(!files(&out).contains_key(NODE_CDX), "{report}");
    let asked = proxy.matching(|r| r.path() == blob_path(&blob));
    assert_eq!(asked.len(), MAX_ATTEMPTS, "{}", proxy.summary());
    assert!(asked.iter().all(|r| r.action == "stream"));
}

/// Item 9, `Retry-After`: every referrer manifest is answered 503 with `Retry-After: 30`. The
/// client honours it while the run's budget lasts (60 s in all, every request together), then
/// gives up on each with an error saying the registry kept asking to retry later. From the
/// proxy's timestamps: the waits between an answer and the next request for the same manifest add
/// up to no more than the budget, and no more than two retries were made (two 30 s waits fill
/// it). Was: each manifest retried four times, 30 s apart, so one registry could hold a run for
/// its whole 900 s deadline; here (`--timeout 200`) the waits added up to about 180 s.
#[test]
fn retry_after_on_every_referrer_is_bounded_by_the_run_budget() {
    let Some(image) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    let referrers: Vec<String> = image
        .listed
        .iter()
        .map(|l| manifest_path(l["manifest-digest"].as_str().unwrap()))
        .collect();
    let matched = referrers.clone();
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(
            move |r| r.method == "GET" && matched.iter().any(|p| p == r.path()),
            |_, _| Action::Respond {
                status: 503,
                headers: vec![("Retry-After".into(), "30".into())],
                body: br#"{"errors":[{"code":"UNAVAILABLE","message":"come back later"}]}"#
                    .to_vec(),
            },
        ),
    );
    let result = image.cli(
        &proxy,
        &["ls", "--json", &image.reference(&proxy), "--timeout", "200"],
    );
    let report = text(&result);
    let asked = proxy.matching(|r| referrers.iter().any(|p| p == r.path()));
    let mut waited = Duration::ZERO;
    let mut retries = 0;
    for (i, r) in asked.iter().enumerate() {
        if let Some(before) = asked[..i]
            .iter()
            .rev()
            .find(|b| b.request.path() == r.request.path())
        {
            retries += 1;
            waited += r.request.at - before.answered_at.unwrap();
        }
    }
    assert!(
        waited <= RETRY_AFTER_BUDGET + SLACK,
        "waited {waited:?} on Retry-After:\n{}",
        proxy.summary()
    );
    assert!(retries <= 2, "{retries} retries:\n{}", proxy.summary());
    assert_eq!(
        asked.len(),
        referrers.len() + retries,
        "every referrer asked once, plus the retries:\n{}",
        proxy.summary()
    );
    assert!(
        report.contains(
            "the registry kept asking to retry later (answered 503 with Retry-After: 30 s)"
        ),
        "{report}"
    );
}

/// Item 9, tokens: the registry's token endpoint (a realm on its own host) answers a token holding
/// CR LF. The run fails naming the token endpoint and its realm as the culprit, not the user's
/// credential, and nothing is sent with the token (no header is injected). Was: "credential is not
/// a valid header value".
#[test]
fn a_token_holding_cr_lf_is_blamed_on_the_token_endpoint() {
    let Some(image) = SignedImage::pushed(Kind::Ferro) else {
        return;
    };
    let proxy = bearer_realm(&image.registry.host, |_, _| Action::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"token":"t\r\nX-Injected: 1"}"#.to_vec(),
    });
    let result = image.cli(&proxy, &["ls", "--json", &image.reference(&proxy)]);
    assert!(!result.status.success(), "{}", text(&result));
    let error = error_line(&result);
    let realm = format!("http://{}/token", proxy.host);
    assert!(
        error.contains(&format!("the token endpoint {realm} sent an invalid token")),
        "{error}"
    );
    assert!(!error.contains("credential is not"), "{error}");
    assert!(!error.contains("check the credentials"), "{error}");
    assert_eq!(
        proxy.matching(|r| r.path() == "/token").len(),
        1,
        "{}",
        proxy.summary()
    );
    assert!(
        proxy
            .requests()
            .iter()
            .all(|r| r.request.header("x-injected").is_none()
                && r.request
                    .header("authorization")
                    .is_none_or(|a| !a.starts_with("Bearer t"))),
        "{}",
        proxy.summary()
    );
}

/// An image index whose `manifests` key appears twice: the real entries of `index`, then an
/// empty list. serde_json (and Go) keep the last: a reader that does not refuse it sees no
/// referrers at all.
fn with_duplicate_manifests(index: &[u8]) -> Vec<u8> {
    let index: Value = serde_json::from_slice(index).unwrap();
    let entries = serde_json::to_string(&index["manifests"]).unwrap();
    assert_ne!(entries, "[]", "nothing listed to hide");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{entries},"manifests":[]}}"#
    )
    .into_bytes()
}

/// Item 10c: the same document — an index whose `manifests` key appears twice, the real entries
/// first and an empty list last — as the `sha256-<hex>` tag-schema index on Distribution (pushed
/// with curl) and as the Referrers API answer on ferro (served by the proxy). `ls` refuses both
/// alike: exit 1, an error naming the duplicate key. Was: the tag index was read last-key-wins (an
/// empty listing, exit 0, every attestation hidden), while the Referrers API answer was refused.
#[test]
fn a_duplicate_manifests_key_is_refused_alike_in_the_tag_index_and_the_referrers_answer() {
    // Distribution: the tag-schema index, rewritten with curl.
    let Some(distribution) = SignedImage::signed(Kind::Distribution) else {
        return;
    };
    let tag = format!("sha256-{}", &distribution.digest[7..]);
    let duplicated =
        with_duplicate_manifests(&curl_get(&distribution, &manifest_path(&tag), OCI_INDEX));
    let mut put = std::process::Command::new("curl");
    put.args(["-s", "-f", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {OCI_INDEX}"))
        .arg("-u")
        .arg(distribution.registry.creds().unwrap())
        .arg("--data-binary")
        .arg(String::from_utf8(duplicated.clone()).unwrap())
        .arg(format!(
            "http://{}{}",
            distribution.registry.host,
            manifest_path(&tag)
        ));
    ok(run(&mut put));
    assert_eq!(
        curl_get(&distribution, &manifest_path(&tag), OCI_INDEX),
        duplicated,
        "Distribution stores the index byte for byte"
    );
    let host = distribution.registry.host.clone();
    let tag_index = distribution.cli_at(&host, &["ls", "--json", &format!("{host}/{REPO}:1.0")]);

    // ferro: the Referrers API answer, served by the proxy.
    let Some(ferro) = SignedImage::signed(Kind::Ferro) else {
        return;
    };
    let path = format!("/v2/{REPO}/referrers/{}", ferro.digest);
    let answer = with_duplicate_manifests(&curl_get(&ferro, &path, OCI_INDEX));
    let proxy = Proxy::start(
        &ferro.registry.host,
        Plan::new().on(get(path.clone()), move |_, _| Action::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_INDEX.into())],
            body: answer.clone(),
        }),
    );
    let api = ferro.cli(&proxy, &["ls", "--json", &ferro.reference(&proxy)]);

    for (case, out, names) in [
        ("tag-schema index", &tag_index, tag.clone()),
        (
            "Referrers API",
            &api,
            format!("referrers of {}/{REPO}@{}", proxy.host, ferro.digest),
        ),
    ] {
        assert_eq!(out.status.code(), Some(1), "{case}:\n{}", text(out));
        let error = error_line(out);
        assert!(
            error.contains(r#"duplicate key "manifests""#) && error.contains(&names),
            "{case}: {error}"
        );
    }
    assert_eq!(proxy.matching(|r| r.path() == path).len(), 1);
}
