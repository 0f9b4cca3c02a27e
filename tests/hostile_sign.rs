//! Signing against registries whose listing does not show what they claim (issue 14, item 5): a
//! registry that answers `OCI-Subject` on every referrer push — the claim that it indexes referrers
//! itself — while its Referrers API lists nothing. Against real registries started by the test
//! (CNCF Distribution with htpasswd, no Referrers API; ferro, with it) behind the fault-injecting
//! proxy (`support/proxy.rs`), which adds the header, answers the Referrers API, and hides or
//! refuses the `sha256-<hex>` tag as each case needs.
//!
//! `sign` must decide discoverability from reading the listing back, never from the header: where
//! the tag-schema index can be written it falls back to it and readers (`ls`, `verify`, and curl, an
//! independent reader) find every attestation; where nothing it writes is ever listed it exits
//! non-zero, reports each attestation not discoverable and says why. Signing stores 8 referrers:
//! the example's 7 SBOM attestations and the image signature.

use std::process::{Command, Output};

use cnb_attest_tests::proxy::{get, Action, Plan, Proxy, RequestInfo};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::signed::{SignedImage, OCI_INDEX, REPO};
use cnb_attest_tests::{bin, ok, reported, run, text, toml_to_json};
use serde_json::{json, Value};

/// `cnb-attest sign`'s exit code for attestations stored but not listed (`docs/exit-codes.md`).
const NOT_DISCOVERABLE: i32 = 5;
/// The `signer` phase's.
const SIGN_NOT_DISCOVERABLE: i32 = 94;
/// `cnb-attest ls`: the image has no attestations.
const NO_ATTESTATIONS: i32 = 4;

/// What the proxy makes of the Referrers API.
#[derive(Debug, Clone, Copy)]
enum Api {
    /// 200 with an empty index, whatever was pushed.
    Empty,
    /// 404, as a registry without the API.
    Missing,
}

/// What the proxy makes of the `sha256-<hex>` tag.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tag {
    /// Forwarded: the registry stores and serves it.
    Served,
    /// Writes forwarded (and accepted), reads answered 404 `MANIFEST_UNKNOWN`.
    Hidden,
    /// Writes refused with 405 `UNSUPPORTED`, reads forwarded.
    Refused,
}

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

fn tag_path(image: &SignedImage) -> String {
    manifest_path(&format!("sha256-{}", &image.digest[7..]))
}

fn referrers_path(image: &SignedImage) -> String {
    format!("/v2/{REPO}/referrers/{}", image.digest)
}

fn is_referrer_push(r: &RequestInfo) -> bool {
    r.method == "PUT" && r.path().starts_with(&manifest_path("sha256:"))
}

/// A proxy in front of `image`'s registry that claims, on every manifest push by digest, that
/// the registry indexed it for the image (`OCI-Subject`), while the Referrers API answers as `api`
/// says and the `sha256-<hex>` tag is treated as `tag` says.
fn claiming(image: &SignedImage, api: Api, tag: Tag) -> Proxy {
    let subject = image.digest.clone();
    let tag_reads = tag_path(image);
    let tag_writes = tag_path(image);
    let mut plan = Plan::new()
        .on(is_referrer_push, move |_, _| Action::Amend {
            status: None,
            headers: vec![("OCI-Subject".into(), subject.clone())],
        })
        .on(get(referrers_path(image)), move |_, _| match api {
            Api::Empty => Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                body: json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
                    .to_string()
                    .into_bytes(),
            },
            Api::Missing => Action::Respond {
                status: 404,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#.to_vec(),
            },
        });
    match tag {
        Tag::Served => {}
        Tag::Hidden => {
            plan = plan.on(
                move |r| (r.method == "GET" || r.method == "HEAD") && r.path() == tag_reads,
                |_, _| Action::Respond {
                    status: 404,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                        .to_vec(),
                },
            )
        }
        Tag::Refused => {
            plan = plan.on(
                move |r| r.method == "PUT" && r.path() == tag_writes,
                |_, _| Action::Respond {
                    status: 405,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: br#"{"errors":[{"code":"UNSUPPORTED","message":"tags that look like digests are not accepted"}]}"#
                        .to_vec(),
                },
            )
        }
    }
    Proxy::start(&image.registry.host, plan)
}

/// The digests a `sha256-<hex>` index lists, as curl (an independent reader) gets it from `host`
/// (the registry itself or the proxy), sorted; `None` when there is no index.
fn tag_listed(image: &SignedImage, host: &str) -> Option<Vec<String>> {
    listed_at(image, host, &tag_path(image))
}

/// The digests the Referrers API lists at `host`, as curl gets them, sorted; `None` on 404.
fn api_listed(image: &SignedImage, host: &str) -> Option<Vec<String>> {
    listed_at(image, host, &referrers_path(image))
}

/// The digests the image index at `path` on `host` lists, sorted; `None` on 404.
fn listed_at(image: &SignedImage, host: &str, path: &str) -> Option<Vec<String>> {
    let (status, body) = curl(image, host, path, OCI_INDEX);
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{path}: {body}");
    let index: Value = serde_json::from_str(&body).unwrap();
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    Some(listed)
}

/// A GET with curl, with the registry's credentials, to `host` (the registry or the proxy).
fn curl(image: &SignedImage, host: &str, path: &str, accept: &str) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!("http://{host}{path}"));
    if let Some(creds) = image.registry.creds() {
        command.arg("-u").arg(creds);
    }
    let out = run(&mut command);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", text(out)))
}

/// Case (a): the registry answers `OCI-Subject` on every push while its Referrers API answers an
/// empty index (or 404), on Distribution and on ferro. `sign` reads the listing back, finds none
/// of what it pushed, writes the `sha256-<hex>` index and reads that back: exit 0, every
/// attestation reported discoverable, no Referrers API claimed. curl finds the index listing
/// exactly the report's 8 referrers at the registry; `ls` and `verify` through the same proxy find
/// and verify all 8; a second run is a no-op (nothing pushed, no index write).
#[test]
fn a_claimed_oci_subject_with_an_empty_listing_falls_back_to_the_tag_schema() {
    for kind in [Kind::Distribution, Kind::Ferro] {
        for api in [Api::Empty, Api::Missing] {
            let Some(image) = SignedImage::pushed(kind) else {
                return;
            };
            let case = format!("{kind:?}, Referrers API {api:?}");
            let proxy = claiming(&image, api, Tag::Served);
            let out = image.sign_at(&proxy.host, &image.reference(&proxy), &["--json"]);
            assert!(out.status.success(), "{case}: {}", text(&out));
            let report = json_of(&out);
            assert_eq!(report["pushed"], 8, "{case}: {report:#}");
            assert_eq!(report["referrers-api"], false, "{case}: {report:#}");
            assert!(
                report["index-writes"].as_u64() >= Some(1),
                "{case}: {report:#}"
            );
            for a in report["attestations"].as_array().unwrap() {
                assert_eq!(a["discoverable"], true, "{case}: {a:#}");
                assert!(a.get("not-listed").is_none(), "{case}: {a:#}");
            }
            let pushes = proxy.matching(is_referrer_push);
            assert_eq!(pushes.len(), 8, "{case}:\n{}", proxy.summary());
            assert!(
                pushes.iter().all(|r| r.action == "amend"),
                "{case}: every push carried the claim:\n{}",
                proxy.summary()
            );
            if let Api::Empty = api {
                // The probe, then the read back (retried while the listing lacks ours).
                let reads =
                    proxy.matching(|r| r.method == "GET" && r.path() == referrers_path(&image));
                assert!(
                    reads.len() >= 2,
                    "{case}: no read back:\n{}",
                    proxy.summary()
                );
            }

            // An independent reader at the registry itself: the index lists exactly ours.
            assert_eq!(
                tag_listed(&image, &image.registry.host),
                Some(reported(&report)),
                "{case}: the sha256-<hex> index at the registry"
            );
            // Readers through the same registry find and verify every one.
            let listed = ok(image.cli(&proxy, &["ls", "--json", &image.reference(&proxy)]));
            let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
            let mut digests: Vec<String> = listed
                .iter()
                .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
                .collect();
            digests.sort();
            assert_eq!(digests, reported(&report), "{case}: ls");
            let key = image.keys().join("cosign.pub");
            let verified = image.cli(
                &proxy,
                &[
                    "verify",
                    &image.reference(&proxy),
                    "--key",
                    key.to_str().unwrap(),
                ],
            );
            assert!(verified.status.success(), "{case}: {}", text(&verified));
            assert_eq!(
                text(&verified).matches("verified  sha256:").count(),
                8,
                "{case}: {}",
                text(&verified)
            );

            // A second run finds everything where readers look: nothing pushed, nothing written.
            let before = proxy.requests().len();
            let again = image.sign_at(&proxy.host, &image.reference(&proxy), &["--json"]);
            assert!(again.status.success(), "{case}: {}", text(&again));
            let again = json_of(&again);
            assert_eq!(again["pushed"], 0, "{case}: {again:#}");
            assert_eq!(again["already-present"], 8, "{case}: {again:#}");
            assert_eq!(again["index-writes"], 0, "{case}: {again:#}");
            assert!(
                proxy.requests()[before..]
                    .iter()
                    .all(|r| r.request.method != "PUT"),
                "{case}: the second run wrote:\n{}",
                proxy.summary()
            );
        }
    }
}

/// Case (b): the registry claims `OCI-Subject` on every push, its Referrers API stays empty, and
/// the `sha256-<hex>` index is hidden (written, never served) or refused (405). Nothing `sign`
/// writes is ever listed: it exits 5, its JSON report marks each of the 8 referrers not
/// discoverable with the reason (`tag-index-absent`, `tag-index-refused` with the registry's
/// answer), and the error line says so. curl through the proxy (what every reader of this
/// registry sees) finds an empty Referrers API and no index, and `ls` finds no attestation. A
/// hidden index is written once and read back a bounded number of times, never rewritten blindly.
#[test]
fn a_listing_that_stays_empty_fails_sign_and_says_why() {
    for kind in [Kind::Distribution, Kind::Ferro] {
        for tag in [Tag::Hidden, Tag::Refused] {
            let Some(image) = SignedImage::pushed(kind) else {
                return;
            };
            let case = format!("{kind:?}, sha256-<hex> tag {tag:?}");
            let proxy = claiming(&image, Api::Empty, tag);
            let out = image.sign_at(&proxy.host, &image.reference(&proxy), &["--json"]);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(NOT_DISCOVERABLE), "{case}: {all}");
            let api_reads =
                proxy.matching(|r| r.method == "GET" && r.path() == referrers_path(&image));
            assert!(
                (2..=5).contains(&api_reads.len()),
                "{case}: the probe and at most 4 reads back:\n{}",
                proxy.summary()
            );
            let report = json_of(&out);
            assert_eq!(report["pushed"], 8, "{case}: {report:#}");
            assert_eq!(report["referrers-api"], false, "{case}: {report:#}");
            let (reason, said) = match tag {
                Tag::Hidden => ("tag-index-absent", "serves none at that tag"),
                _ => ("tag-index-refused", "refused the index"),
            };
            for a in report["attestations"].as_array().unwrap() {
                assert_eq!(a["discoverable"], false, "{case}: {a:#}");
                assert_eq!(a["not-listed"]["reason"], reason, "{case}: {a:#}");
                if tag == Tag::Refused {
                    let detail = a["not-listed"]["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("405"), "{case}: {a:#}");
                }
            }
            assert_eq!(reported(&report).len(), 8);
            let stderr = String::from_utf8_lossy(&out.stderr);
            eprintln!("{case}: sign said:\n{stderr}");
            assert!(
                stderr.contains("ERROR:")
                    && stderr.contains("8 attestation(s) were stored but are not listed")
                    && stderr.contains(said),
                "{case}: the error must say what is missing and why:\n{stderr}"
            );

            // What readers of this registry see, read with curl through it.
            assert_eq!(api_listed(&image, &proxy.host), Some(Vec::new()), "{case}");
            assert_eq!(tag_listed(&image, &proxy.host), None, "{case}");
            let ls = image.cli(&proxy, &["ls", "--json", &image.reference(&proxy)]);
            assert_eq!(
                ls.status.code(),
                Some(NO_ATTESTATIONS),
                "{case}: {}",
                text(&ls)
            );

            let tag_puts = proxy.matching(|r| r.method == "PUT" && r.path() == tag_path(&image));
            assert_eq!(
                tag_puts.len(),
                1,
                "{case}: one index write, no blind rewrites:\n{}",
                proxy.summary()
            );
            if tag == Tag::Refused {
                assert_eq!(
                    tag_listed(&image, &image.registry.host),
                    None,
                    "{case}: nothing may be stored at the refused tag"
                );
            }
        }
    }
}

/// A registry that indexes referrers a moment after the push (ferro, whose Referrers API the proxy
/// answers with an empty index for the probe and the first read back, then forwards): the bounded
/// read back waits for it. Exit 0, all 8 discoverable, the Referrers API counted as present, and no
/// `sha256-<hex>` index written; curl finds the 8 in ferro's own listing.
#[test]
fn a_listing_that_catches_up_within_the_read_back_needs_no_fallback() {
    let Some(image) = SignedImage::pushed(Kind::Ferro) else {
        return;
    };
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(get(referrers_path(&image)), |_, n| {
            if n < 2 {
                Action::Respond {
                    status: 200,
                    headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                    body: json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
                        .to_string()
                        .into_bytes(),
                }
            } else {
                Action::Forward
            }
        }),
    );
    let out = image.sign_at(&proxy.host, &image.reference(&proxy), &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json_of(&out);
    assert_eq!(report["referrers-api"], true, "{report:#}");
    assert_eq!(report["index-writes"], 0, "{report:#}");
    assert!(
        report["attestations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["discoverable"] == true),
        "{report:#}"
    );
    let api_reads = proxy.matching(|r| r.method == "GET" && r.path() == referrers_path(&image));
    assert_eq!(
        api_reads.len(),
        3,
        "the probe, an empty read back, then the listing:\n{}",
        proxy.summary()
    );
    assert!(
        proxy
            .matching(|r| r.method == "PUT" && r.path() == tag_path(&image))
            .is_empty(),
        "{}",
        proxy.summary()
    );
    assert_eq!(
        api_listed(&image, &image.registry.host),
        Some(reported(&report)),
        "ferro's own listing"
    );
}

/// The `signer` phase on the same registries (Distribution): its report's `discoverable` comes
/// from the read back. With the index served, the phase succeeds and `signer-report.toml` marks
/// all 8 discoverable, which curl confirms at the registry; with it hidden, the phase exits 94,
/// the report marks all 8 not discoverable with the reason, and the error line says why.
#[test]
fn the_signer_report_takes_discoverable_from_the_read_back() {
    for tag in [Tag::Served, Tag::Hidden] {
        let Some(image) = SignedImage::pushed(Kind::Distribution) else {
            return;
        };
        let case = format!("sha256-<hex> tag {tag:?}");
        let proxy = claiming(&image, Api::Empty, tag);
        let out = signer_phase(&image, &proxy);
        let report = toml_to_json(&image.layers.join("signer-report.toml"));
        let image_report = &report["image"][0];
        let entries = image_report["attestations"].as_array().unwrap();
        assert_eq!(entries.len(), 8, "{case}: {image_report:#}");
        match tag {
            Tag::Served => {
                assert!(out.status.success(), "{case}: {}", text(&out));
                assert!(
                    entries.iter().all(|a| a["discoverable"] == true),
                    "{case}: {image_report:#}"
                );
                assert_eq!(
                    tag_listed(&image, &image.registry.host),
                    Some(reported(image_report)),
                    "{case}"
                );
            }
            _ => {
                assert_eq!(
                    out.status.code(),
                    Some(SIGN_NOT_DISCOVERABLE),
                    "{case}: {}",
                    text(&out)
                );
                assert!(
                    entries.iter().all(|a| a["discoverable"] == false
                        && a["not-listed"]["reason"] == "tag-index-absent"),
                    "{case}: {image_report:#}"
                );
                let stderr = String::from_utf8_lossy(&out.stderr);
                eprintln!("{case}: the signer said:\n{stderr}");
                assert!(
                    stderr.contains("8 attestation(s) were pushed but are not listed")
                        && stderr.contains("serves none at that tag"),
                    "{case}: {stderr}"
                );
                assert_eq!(tag_listed(&image, &proxy.host), None, "{case}");
            }
        }
    }
}

/// exporter (report.toml naming the image through the proxy, and the label) then signer.
fn signer_phase(image: &SignedImage, proxy: &Proxy) -> Output {
    let layout_dir = image.tmp.path().join("image");
    let layout = cnb_referrers::layout::OciLayout::open(&layout_dir).unwrap();
    let descriptor = layout.resolve_image(None).unwrap();
    let label = layout.read_image(&descriptor).unwrap().config.labels
        ["io.buildpacks.lifecycle.metadata"]
        .clone();
    let label_path = image.tmp.path().join("label.json");
    std::fs::write(&label_path, label).unwrap();
    std::fs::write(
        image.layers.join("report.toml"),
        format!(
            "[image]\n  tags = [\"{}\"]\n  digest = \"{}\"\n  manifest-size = 2000\n",
            image.reference(proxy),
            image.digest
        ),
    )
    .unwrap();
    ok(run(Command::new(bin("exporter"))
        .arg("-layers")
        .arg(&image.layers)
        .arg("-image-label")
        .arg(&label_path)));
    run(image
        .env_for(&proxy.host, &mut Command::new(bin("signer")))
        .arg("-layers")
        .arg(&image.layers)
        .arg("-key")
        .arg(image.keys().join("cosign.key"))
        .env("COSIGN_PASSWORD", ""))
}
