//! Registry faults and credential safety, against real registries behind a fault-injecting proxy
//! (`support/proxy.rs`): the client talks to the proxy, the proxy decides per request whether to
//! forward it to the real registry, answer it itself, reset it or redirect it, and records
//! everything. Setup (pushing the example image) goes to the registry directly; what the signer
//! left behind is read back with plain HTTP requests (curl), independent of our client.
//!
//! Signing stores 8 referrers for the example: its 7 SBOM attestations and the image signature
//! (cosign 3's sign/v1 bundle, the default).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use cnb_attest_tests::proxy::{Action, Plan, Proxy, Recorded, RequestInfo};
use cnb_attest_tests::registry::{Kind, Registry, PASSWORD, USER};
use cnb_attest_tests::{
    bin, fresh_example, key_pair, ok, run, split_image_signatures, text, COSIGN_SIGN_V1,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const REPO: &str = "demo/app";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The example image pushed to a fresh registry, with its build's layers and a key pair.
struct Pushed {
    registry: Registry,
    _tmp: tempfile::TempDir,
    layers: PathBuf,
    keys: PathBuf,
    digest: String,
}

impl Pushed {
    fn start(kind: Kind) -> Option<Pushed> {
        let registry = Registry::start(kind)?;
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image) = fresh_example(tmp.path());
        let keys = tmp.path().join("k");
        key_pair(&keys, "");
        let reference = registry.push_layout(&image, REPO, "1.0");
        let digest = registry.digest_of(&reference);
        Some(Pushed {
            registry,
            _tmp: tmp,
            layers,
            keys,
            digest,
        })
    }

    /// `sha256-<hex>`: the Referrers Tag Schema tag of the image.
    fn fallback_tag(&self) -> String {
        format!("sha256-{}", &self.digest[7..])
    }

    /// The path of the fallback tag's manifest.
    fn fallback_path(&self) -> String {
        format!("/v2/{REPO}/manifests/{}", self.fallback_tag())
    }

    /// A proxy in front of the registry that answers reads of the `sha256-<hex>` tag with `body`
    /// (served as `media_type`, with its true digest), as a registry holding that there would.
    fn serving_at_the_tag(&self, body: Vec<u8>, media_type: &'static str) -> Proxy {
        let index_path = self.fallback_path();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let plan = Plan::new().on(
            move |r| (r.method == "GET" || r.method == "HEAD") && r.path() == index_path,
            move |_, _| Action::Rewrite {
                status: Some(200),
                headers: vec![
                    ("Content-Type".into(), media_type.into()),
                    ("Docker-Content-Digest".into(), digest.clone()),
                ],
                body: body.clone(),
            },
        );
        Proxy::start(&self.registry.host, plan)
    }

    /// What a plain HTTP reader finds in the `sha256-<hex>` index (None: no index).
    fn listed(&self) -> Option<Vec<String>> {
        let (status, body) = self.registry.curl(&self.fallback_path(), OCI_INDEX);
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{body}");
        let index: Value = serde_json::from_str(&body).unwrap();
        Some(
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["digest"].as_str().unwrap().to_string())
                .collect(),
        )
    }

    /// `cnb-attest sign <proxy>/demo/app:1.0 --json --debug`, credentials keyed by the proxy host.
    fn sign_through(&self, proxy: &Proxy) -> Output {
        run(through(
            Command::new(bin("cnb-attest"))
                .args(["sign", &format!("{}/{REPO}:1.0", proxy.host)])
                .args(["--json", "--debug", "--layers"])
                .arg(&self.layers)
                .arg("--key")
                .arg(self.keys.join("cosign.key"))
                .env("COSIGN_PASSWORD", ""),
            proxy,
        ))
    }

    /// Asserts the index lists exactly the report's referrers (7 attestations + the image
    /// signature), once each.
    fn assert_exactly_ours_listed(&self, report: &Value) {
        let mut listed = self.listed().expect("no sha256-<hex> index");
        let (attestations, signatures) =
            split_image_signatures(report["attestations"].as_array().unwrap());
        assert_eq!(attestations.len(), 7, "{report:#}");
        assert_eq!(signatures.len(), 1, "{report:#}");
        let mut ours = manifest_digests(report);
        listed.sort();
        ours.sort();
        assert_eq!(
            listed, ours,
            "the index must list our 7 attestations and the image signature, once each"
        );
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// The environment of a client that reaches the registry through `proxy`.
fn through<'a>(command: &'a mut Command, proxy: &Proxy) -> &'a mut Command {
    command
        .env("CNB_REGISTRY_AUTH", proxy.registry_auth(&basic()))
        .env("CNB_INSECURE_REGISTRIES", &proxy.host)
        .env("DOCKER_CONFIG", "/nonexistent")
}

fn report_of(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn manifest_digests(report: &Value) -> Vec<String> {
    report["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["manifest-digest"].as_str().unwrap().to_string())
        .collect()
}

fn is_manifest_put_by_digest(r: &RequestInfo) -> bool {
    r.method == "PUT" && r.path().contains("/manifests/sha256:")
}

fn unavailable() -> Action {
    Action::Respond {
        status: 503,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}"#.to_vec(),
    }
}

fn statuses(records: &[Recorded]) -> Vec<Option<u16>> {
    records.iter().map(|r| r.status).collect()
}

/// Debug log lines (`DEBUG <method> <url> -> <status>`) for `method` answered with `status`.
fn debug_lines(out: &Output, method: &str, status: u16) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| {
            l.starts_with(&format!("DEBUG {method} ")) && l.contains(&format!("-> {status} "))
        })
        .count()
}

/// 503 twice on the same manifest push and twice on the index push, then success: the run
/// succeeds, every attestation is listed once, and the report and the debug log show the retries.
#[test]
fn a_registry_answering_503_twice_then_succeeding() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let index_path = image.fallback_path();
    let first_put: Arc<Mutex<Option<String>>> = Arc::default();
    let plan = Plan::new()
        .on(
            move |r| r.method == "PUT" && r.path() == index_path,
            |_, n| {
                if n < 2 {
                    unavailable()
                } else {
                    Action::Forward
                }
            },
        )
        .on(
            move |r| {
                is_manifest_put_by_digest(r)
                    && first_put
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| r.path().to_string())
                        == r.path()
            },
            |_, n| {
                if n < 2 {
                    unavailable()
                } else {
                    Action::Forward
                }
            },
        );
    let proxy = Proxy::start(&image.registry.host, plan);
    let out = image.sign_through(&proxy);
    let log = text(&out);
    let report = report_of(out.clone());
    // 7 attestations + the image signature.
    assert_eq!(report["pushed"], 8, "{report:#}\n{}", proxy.summary());
    image.assert_exactly_ours_listed(&report);

    let index_puts = proxy.matching(|r| r.method == "PUT" && r.path() == image.fallback_path());
    assert_eq!(
        statuses(&index_puts),
        [Some(503), Some(503), Some(201)],
        "{}",
        proxy.summary()
    );
    let first_path = proxy
        .matching(is_manifest_put_by_digest)
        .iter()
        .find(|r| r.status == Some(503))
        .map(|r| r.request.path().to_string())
        .unwrap_or_else(|| panic!("no manifest push got a 503:\n{}", proxy.summary()));
    let same = proxy.matching(|r| r.method == "PUT" && r.path() == first_path);
    assert_eq!(
        statuses(&same),
        [Some(503), Some(503), Some(201)],
        "{}",
        proxy.summary()
    );
    // 8 referrers (7 attestations + the image signature) + 1 index, plus 2 + 2 retries.
    assert_eq!(report["requests-by-kind"]["PUT manifest"], 13, "{report:#}");
    assert_eq!(debug_lines(&out, "PUT", 503), 4, "{log}");
}

/// Distribution refuses an index whose listed manifest it momentarily cannot read (a concurrent
/// signer re-pushing that same manifest rewrites its link file non-atomically) with a 400 naming
/// the child as unknown. The index update starts again from a fresh read and succeeds; this is the
/// answer Distribution 2.8 really gave when 8 signers shared one image signature.
#[test]
fn an_index_refused_because_a_listed_manifest_reads_as_unknown() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let index_path = image.fallback_path();
    let plan = Plan::new().on(
        move |r| r.method == "PUT" && r.path() == index_path,
        |_, n| {
            if n == 0 {
                Action::Respond {
                    status: 400,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:486af621377f95072c588c66c13b2d2ba1577a2472454e1e1c9f90f28ff49be6"}]}"#.to_vec(),
                }
            } else {
                Action::Forward
            }
        },
    );
    let proxy = Proxy::start(&image.registry.host, plan);
    let report = report_of(image.sign_through(&proxy));
    assert_eq!(report["pushed"], 8, "{report:#}\n{}", proxy.summary());
    image.assert_exactly_ours_listed(&report);

    let index_path = image.fallback_path();
    let index_requests = proxy.matching(|r| r.path() == index_path);
    let sequence: Vec<(String, Option<u16>)> = index_requests
        .iter()
        .map(|r| (r.request.method.clone(), r.status))
        .collect();
    let refused = sequence
        .iter()
        .position(|(m, s)| m == "PUT" && *s == Some(400))
        .unwrap_or_else(|| panic!("the index PUT was never refused:\n{}", proxy.summary()));
    let after = &sequence[refused + 1..];
    let reread = after.iter().position(|(m, _)| m == "GET");
    let written = after
        .iter()
        .position(|(m, s)| m == "PUT" && *s == Some(201));
    assert!(
        matches!((reread, written), (Some(g), Some(w)) if g < w),
        "after the refusal the index must be read again, then written: {sequence:?}"
    );
    assert_eq!(
        sequence
            .iter()
            .filter(|(m, s)| m == "PUT" && *s == Some(201))
            .count(),
        1,
        "{sequence:?}"
    );
}

/// 429 with `Retry-After: 1` once: the run succeeds, and the retry arrived at least a second after
/// the 429 was sent (the policy's own first backoff is at most 200 ms).
#[test]
fn a_registry_answering_429_with_retry_after() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let plan = Plan::new().on(is_manifest_put_by_digest, |_, n| {
        if n == 0 {
            Action::Respond {
                status: 429,
                headers: vec![("Retry-After".into(), "1".into())],
                body: br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_vec(),
            }
        } else {
            Action::Forward
        }
    });
    let proxy = Proxy::start(&image.registry.host, plan);
    let report = report_of(image.sign_through(&proxy));
    assert_eq!(report["pushed"], 8, "{report:#}");
    image.assert_exactly_ours_listed(&report);

    let all = proxy.requests();
    let limited = all
        .iter()
        .find(|r| r.status == Some(429))
        .unwrap_or_else(|| panic!("no 429 sent:\n{}", proxy.summary()));
    let retry = all
        .iter()
        .find(|r| {
            r.request.seq > limited.request.seq
                && r.request.method == "PUT"
                && r.request.target == limited.request.target
        })
        .unwrap_or_else(|| panic!("the 429'd request was not retried:\n{}", proxy.summary()));
    let waited = retry.request.at - limited.answered_at.unwrap();
    // The proxy stamps `answered_at` once it has written the answer, which on a loaded machine is
    // a few milliseconds after the client has read it and started its wait: allow for that skew,
    // far below the gap to the policy's own first backoff (at most 200 ms).
    assert!(
        waited >= Duration::from_millis(950),
        "retried {waited:?} after a 429 with Retry-After: 1"
    );
    assert_eq!(retry.status, Some(201), "{}", proxy.summary());
}

/// The `digest=` parameter of an upload `PUT`.
fn upload_digest(r: &RequestInfo) -> Option<String> {
    r.query()
        .split('&')
        .find_map(|p| p.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
}

/// The connection drops halfway through the first upload of a real (≥ 1 KiB) blob: the upload
/// restarts from a new session (`POST`), the blob arrives intact, and every attestation is listed.
#[test]
fn a_connection_reset_in_the_middle_of_an_upload() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let plan = Plan::new().on(
        |r| r.method == "PUT" && r.path().contains("/blobs/uploads/") && r.content_length >= 1024,
        |_, n| {
            if n == 0 {
                Action::ResetMidBody
            } else {
                Action::Forward
            }
        },
    );
    let proxy = Proxy::start(&image.registry.host, plan);
    let out = image.sign_through(&proxy);
    let log = text(&out);
    let report = report_of(out);
    assert_eq!(report["pushed"], 8, "{report:#}");
    image.assert_exactly_ours_listed(&report);

    let all = proxy.requests();
    let reset = all
        .iter()
        .find(|r| r.action == "reset")
        .unwrap_or_else(|| panic!("no upload was reset:\n{}", proxy.summary()));
    assert!(
        !reset.body.is_empty() && reset.body.len() < reset.request.content_length,
        "the reset came mid-body"
    );
    let digest = upload_digest(&reset.request).expect("upload PUT without digest");
    let completed = all
        .iter()
        .find(|r| {
            r.request.seq > reset.request.seq
                && r.request.method == "PUT"
                && upload_digest(&r.request).as_deref() == Some(digest.as_str())
        })
        .unwrap_or_else(|| panic!("{digest} was not uploaded again:\n{}", proxy.summary()));
    assert_eq!(completed.status, Some(201), "{}", proxy.summary());
    assert_ne!(
        completed.request.path(),
        reset.request.path(),
        "the retry must open a new upload session, not reuse the broken one"
    );
    assert!(
        all.iter().any(|r| r.request.seq > reset.request.seq
            && r.request.seq < completed.request.seq
            && r.request.method == "POST"
            && r.request.path().ends_with("/blobs/uploads/")),
        "no new upload session between the reset and the retry:\n{}",
        proxy.summary()
    );
    // The blob is there, intact, for a plain reader.
    let (status, blob) = image
        .registry
        .curl(&format!("/v2/{REPO}/blobs/{digest}"), "*/*");
    assert_eq!(status, 200);
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(blob.as_bytes()))),
        digest
    );
    assert!(log.contains("DEBUG PUT "), "{log}");
}

/// The registry goes away after the first manifest push (every later connection is closed
/// unanswered): the run fails, non-zero, naming the registry and the operation; once it is back, a
/// re-run completes, and the index lists each attestation exactly once; a third run stores nothing.
#[test]
fn a_registry_that_stops_in_the_middle_of_a_run() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    // 0: up, waiting for the first manifest push; 1: gone; 2: back.
    let state = Arc::new(AtomicU8::new(0));
    let seen = Arc::clone(&state);
    let plan = Plan::all(move |r, _| {
        // The first manifest push goes through; the registry is gone right after it. Manifest
        // pushes are concurrent: exactly one wins the 0 -> 1 switch, all others see it gone.
        if is_manifest_put_by_digest(r)
            && seen
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return Action::Forward;
        }
        if seen.load(Ordering::SeqCst) == 1 {
            return Action::Drop;
        }
        Action::Forward
    });
    let proxy = Proxy::start(&image.registry.host, plan);

    let failed = image.sign_through(&proxy);
    let message = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        !failed.status.success(),
        "a run against a vanished registry must fail:\n{}",
        text(&failed)
    );
    let error = message
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{message}"));
    assert!(
        error.contains(&proxy.host) && (error.contains("PUT") || error.contains("GET")),
        "the error must name the registry and the operation: {error}"
    );
    let forwarded_puts = proxy
        .matching(is_manifest_put_by_digest)
        .iter()
        .filter(|r| r.action == "forward")
        .count();
    assert_eq!(forwarded_puts, 1, "{}", proxy.summary());
    assert!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.action == "drop")
            .count()
            >= 5,
        "the client gave up without retrying:\n{}",
        proxy.summary()
    );
    assert_eq!(
        image.listed(),
        None,
        "no index may be written by the failed run"
    );

    state.store(2, Ordering::SeqCst);
    let report = report_of(image.sign_through(&proxy));
    assert_eq!(report["pushed"], 8, "{report:#}");
    assert_eq!(report["index-writes"], 1, "{report:#}");
    image.assert_exactly_ours_listed(&report);

    let again = report_of(image.sign_through(&proxy));
    assert_eq!(again["pushed"], 0, "{again:#}");
    assert_eq!(
        again["already-present"], 8,
        "7 attestations + the image signature"
    );
    assert_eq!(again["blobs-written"], 0);
    image.assert_exactly_ours_listed(&again);
}

/// A registry that resolves the `sha256-<hex>` tag to the image itself (as one treats the tag as a
/// digest): signing refuses with a message saying so, and never writes the tag.
#[test]
fn a_fallback_tag_that_resolves_to_the_subject_itself() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let (status, manifest) = image.registry.curl(
        &format!("/v2/{REPO}/manifests/{}", image.digest),
        OCI_MANIFEST,
    );
    assert_eq!(status, 200);
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(manifest.as_bytes()))
        ),
        image.digest
    );
    let proxy = image.serving_at_the_tag(manifest.into_bytes(), OCI_MANIFEST);
    let out = image.sign_through(&proxy);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("resolves to the image") && all.contains(&image.digest),
        "the message must say the tag resolves to the image itself:\n{all}"
    );
    let writes = proxy.matching(|r| r.method == "PUT" && r.path() == image.fallback_path());
    assert!(
        writes.is_empty(),
        "the tag was written:\n{}",
        proxy.summary()
    );
    assert!(
        proxy
            .matching(|r| r.method == "GET" && r.path() == image.fallback_path())
            .len()
            == 1,
        "{}",
        proxy.summary()
    );
    assert_eq!(image.listed(), None, "nothing may be stored at the tag");
}

/// Case 39: the `sha256-<hex>` tag holds something that is not a referrers index: another
/// image's manifest, or an index that has its own `subject` (an artifact, which a rewrite would
/// destroy). The signer refuses, names the tag and what is there, and never writes the tag.
#[test]
fn a_fallback_tag_holding_something_else_is_never_overwritten() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let other_image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{z}","size":2}},"layers":[]}}"#,
        z = "4".repeat(64)
    );
    let artifact_index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{z}","size":10}}}}"#,
        z = "5".repeat(64)
    );
    for (body, media_type, expect) in [
        (other_image, OCI_MANIFEST, "not a referrers index"),
        (artifact_index, OCI_INDEX, "its own `subject`"),
    ] {
        let proxy = image.serving_at_the_tag(body.into_bytes(), media_type);
        let out = image.sign_through(&proxy);
        let all = text(&out);
        assert!(!out.status.success(), "{all}");
        assert!(
            all.contains(&image.fallback_tag()) && all.contains(expect),
            "the message must name the tag and say `{expect}`:\n{all}"
        );
        let writes = proxy.matching(|r| r.method == "PUT" && r.path() == image.fallback_path());
        assert!(
            writes.is_empty(),
            "the tag was written:\n{}",
            proxy.summary()
        );
        assert_eq!(image.listed(), None, "nothing may be stored at the tag");
    }
}

/// Case 38, reader side: on a registry with the Referrers API (ferro), a `sha256-<hex>` tag that
/// resolves to the image itself is not a referrers index and is ignored; `download` still finds,
/// verifies and writes all 7 SBOMs through the API.
#[test]
fn readers_ignore_a_fallback_tag_resolving_to_the_image_where_the_api_answers() {
    let Some(image) = Pushed::start(Kind::Ferro) else {
        return;
    };
    let direct = Proxy::start(&image.registry.host, Plan::new());
    let report = report_of(image.sign_through(&direct));
    assert_eq!(report["referrers-api"], true, "{report:#}");
    let (status, manifest) = image.registry.curl(
        &format!("/v2/{REPO}/manifests/{}", image.digest),
        OCI_MANIFEST,
    );
    assert_eq!(status, 200);
    let proxy = image.serving_at_the_tag(manifest.into_bytes(), OCI_MANIFEST);
    let out_dir = image._tmp.path().join("out");
    let out = run(through(
        Command::new(bin("cnb-attest"))
            .args(["download", &format!("{}/{REPO}:1.0", proxy.host), "-o"])
            .arg(&out_dir)
            .arg("--key")
            .arg(image.keys.join("cosign.pub")),
        &proxy,
    ));
    ok(out);
    assert!(
        !proxy
            .matching(|r| r.method == "GET" && r.path() == image.fallback_path())
            .is_empty(),
        "the tag was never read, so this proved nothing:\n{}",
        proxy.summary()
    );
    let written = cnb_attest_tests::sbom_files(&out_dir.join("layers"));
    let source = cnb_attest_tests::sbom_files(&image.layers);
    assert_eq!(written.len(), 7, "{:?}", written.keys());
    for (name, bytes) in &written {
        assert_eq!(
            Some(bytes),
            source.get(name),
            "{name} differs from the source"
        );
    }
}

/// Case 22: the registry's `Docker-Content-Digest` disagrees with the bytes: on the image
/// manifest fetched by tag (nothing else pins those bytes), and on a manifest push (the registry
/// says it stored something other than what was sent). Both runs fail, naming the manifest and
/// the digest the registry claimed; the first stores nothing.
#[test]
fn a_docker_content_digest_that_disagrees_with_the_bytes_is_refused() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let liar = format!("sha256:{}", "0".repeat(64));
    let (status, manifest) = image
        .registry
        .curl(&format!("/v2/{REPO}/manifests/1.0"), OCI_MANIFEST);
    assert_eq!(status, 200);
    let claimed = liar.clone();
    let by_tag = Plan::new().on(
        |r| r.method == "GET" && r.path() == format!("/v2/{REPO}/manifests/1.0"),
        move |_, _| Action::Rewrite {
            status: Some(200),
            headers: vec![
                ("Content-Type".into(), OCI_MANIFEST.into()),
                ("Docker-Content-Digest".into(), claimed.clone()),
            ],
            body: manifest.clone().into_bytes(),
        },
    );
    let proxy = Proxy::start(&image.registry.host, by_tag);
    let out = image.sign_through(&proxy);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("Docker-Content-Digest") && all.contains(&liar) && all.contains("1.0"),
        "the message must name the manifest and the claimed digest:\n{all}"
    );
    assert!(
        proxy.matching(|r| r.method == "PUT").is_empty(),
        "nothing may be stored:\n{}",
        proxy.summary()
    );

    let claimed = liar.clone();
    let on_push = Plan::new().on(is_manifest_put_by_digest, move |_, n| {
        if n == 0 {
            Action::Rewrite {
                status: None,
                headers: vec![("Docker-Content-Digest".into(), claimed.clone())],
                body: Vec::new(),
            }
        } else {
            Action::Forward
        }
    });
    let proxy = Proxy::start(&image.registry.host, on_push);
    let out = image.sign_through(&proxy);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("PUT manifest") && all.contains(&liar) && all.contains("not what was sent"),
        "the message must name the push and the claimed digest:\n{all}"
    );
}

/// Case 31: a registry that stalls (every referrers-index read answered only after 60 s) cannot
/// hold a run past its overall deadline (`--timeout 3`): the run fails naming the request and the
/// deadline, well before the stall would have ended, and does not keep retrying.
#[test]
fn a_stalling_registry_cannot_hold_a_run_past_its_deadline() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    let index_path = image.fallback_path();
    let plan = Plan::new().on(
        move |r| r.method == "GET" && r.path() == index_path,
        |_, _| Action::Delayed(60_000),
    );
    let proxy = Proxy::start(&image.registry.host, plan);
    let started = std::time::Instant::now();
    let out = run(through(
        Command::new(bin("cnb-attest"))
            .args(["sign", &format!("{}/{REPO}:1.0", proxy.host)])
            .args(["--timeout", "3", "--layers"])
            .arg(&image.layers)
            .arg("--key")
            .arg(image.keys.join("cosign.key"))
            .env("COSIGN_PASSWORD", ""),
        &proxy,
    ));
    let elapsed = started.elapsed();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("deadline passed") && all.contains(&image.fallback_tag()),
        "the message must name the stalled request and the deadline:\n{all}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "the run waited {elapsed:?} for a stalled registry despite --timeout 3"
    );
    let stalled = proxy.matching(|r| r.method == "GET" && r.path() == image.fallback_path());
    assert_eq!(
        stalled.len(),
        1,
        "retried past the deadline:\n{}",
        proxy.summary()
    );
}

/// Whether any header of `r` is `Authorization` or carries the test credential.
fn carries_credentials(r: &RequestInfo) -> bool {
    let encoded = basic();
    r.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("authorization") || v.contains(PASSWORD) || v.contains(&encoded[6..])
    })
}

/// Blob GETs redirected (307) to another host, as registries do to their storage: `ls` and
/// `verify` follow, and the other host never receives the registry's credentials.
#[test]
fn credentials_are_not_sent_to_another_host_after_a_redirect() {
    let Some(image) = Pushed::start(Kind::Distribution) else {
        return;
    };
    ok(run(Command::new(bin("cnb-attest"))
        .args([
            "sign",
            &format!("{}/{REPO}:1.0", image.registry.host),
            "--layers",
        ])
        .arg(&image.layers)
        .arg("--key")
        .arg(image.keys.join("cosign.key"))
        .env("COSIGN_PASSWORD", "")
        .env("CNB_REGISTRY_AUTH", image.registry.cnb_registry_auth())
        .env("CNB_INSECURE_REGISTRIES", &image.registry.host)
        .env("DOCKER_CONFIG", "/nonexistent")));

    // The "storage" host serves the blobs it is redirected to (fetching them from the registry
    // with its own access, as a signed storage URL would grant).
    let registry_host = image.registry.host.clone();
    let creds = image.registry.creds().unwrap();
    let storage = Proxy::other_host(Plan::all(move |r, _| {
        if r.method != "GET" || !r.path().contains("/blobs/sha256:") {
            return Action::status(404);
        }
        let out = Command::new("curl")
            .args(["-s", "-f", "-u", &creds])
            .arg(format!("http://{registry_host}{}", r.path()))
            .output();
        match out {
            Ok(out) if out.status.success() => Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: out.stdout,
            },
            _ => Action::status(502),
        }
    }));
    let storage_host = storage.host.clone();
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(
            |r| r.method == "GET" && r.path().contains("/blobs/sha256:"),
            move |r, _| Action::redirect(format!("http://{storage_host}{}", r.target)),
        ),
    );
    let reference = format!("{}/{REPO}:1.0", proxy.host);
    let listed = run(through(
        Command::new(bin("cnb-attest")).args(["ls", &reference, "--debug"]),
        &proxy,
    ));
    let verified = run(through(
        Command::new(bin("cnb-attest"))
            .args(["verify", &reference, "--key"])
            .arg(image.keys.join("cosign.pub")),
        &proxy,
    ));

    let received = storage.requests();
    // config + 7 attestation blobs + the image signature's, for each of ls and verify
    assert!(
        received.len() >= 18,
        "the redirects were not followed:\n{}\n{}",
        proxy.summary(),
        text(&listed)
    );
    for r in &received {
        assert!(
            !carries_credentials(&r.request),
            "{} {} on the other host carried credentials: {:?}",
            r.request.method,
            r.request.target,
            r.request.headers
        );
    }
    // The credentials were in play: the registry's own host received them.
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.request.header("authorization") == Some(basic().as_str())),
        "{}",
        proxy.summary()
    );
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains(": 7 attestation(s), 1 image signature(s)"),
        "{}",
        text(&listed)
    );
    assert!(verified.status.success(), "{}", text(&verified));
    let verdicts = text(&verified);
    assert_eq!(
        verdicts.matches("verified  sha256:").count(),
        8,
        "7 attestations + the image signature: {verdicts}"
    );
    assert!(
        verdicts
            .lines()
            .any(|l| l.starts_with("verified  ") && l.contains(COSIGN_SIGN_V1)),
        "{verdicts}"
    );
}

/// A Bearer challenge whose token realm is on another host: the token is fetched there without the
/// registry's credentials, and the run works with the token.
#[test]
fn credentials_are_not_sent_to_a_token_realm_on_another_host() {
    let Some(image) = Pushed::start(Kind::Ferro) else {
        return;
    };
    let realm = Proxy::other_host(Plan::all(|r, _| {
        if r.path() == "/token" {
            Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"token":"t","expires_in":300}"#.to_vec(),
            }
        } else {
            Action::status(404)
        }
    }));
    let challenge = format!("Bearer realm=\"http://{}/token\",service=\"x\"", realm.host);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(
            |r| r.header("authorization") != Some("Bearer t"),
            move |_, _| Action::Respond {
                status: 401,
                headers: vec![
                    ("WWW-Authenticate".into(), challenge.clone()),
                    ("Content-Type".into(), "application/json".into()),
                ],
                body:
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
            },
        ),
    );
    let out = image.sign_through(&proxy);
    let log = text(&out);
    let tokens = realm.requests();
    assert!(
        !tokens.is_empty(),
        "no token was requested:\n{}\n{log}",
        proxy.summary()
    );
    for r in &tokens {
        assert_eq!(r.request.path(), "/token");
        assert!(
            r.request.query().contains("service=x") && r.request.query().contains("scope="),
            "{}",
            r.request.target
        );
        assert!(
            !carries_credentials(&r.request),
            "the token request to another host carried credentials: {:?}",
            r.request.headers
        );
    }
    let report = report_of(out);
    assert_eq!(report["pushed"], 8, "{report:#}");
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .any(|r| r.request.header("authorization") == Some(basic().as_str())),
        "the credentials were never offered to the registry itself, so the test proves nothing:\n{}",
        proxy.summary()
    );
    assert!(
        seen.iter()
            .any(|r| r.request.header("authorization") == Some("Bearer t")
                && r.status.is_some_and(|s| s < 300)),
        "{}",
        proxy.summary()
    );
}
