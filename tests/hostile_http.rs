//! Hostile registry behaviour over HTTP (research §3.2 cases 19, 21, 24–27, 32–37, 40, 43), against
//! real registries started by the test — CNCF Distribution (htpasswd, no Referrers API: the
//! `sha256-<hex>` tag-schema index) and ferro (the Referrers API) — with the fault-injecting proxy
//! (`support/proxy.rs`) in front where a misbehaving server is needed. The proxy answers for the
//! registry or alters its answers, and records every request, so each case checks what the client
//! did as well as what it said: the exit code, a message naming what failed and why, what was
//! written (nothing, or exactly the input SBOMs), that reads stayed bounded (bytes the proxy got
//! out), and that no request went where it must not. Setup and the independent reads afterwards
//! use the registry directly (skopeo, curl).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cnb_attest_tests::closed::{assert_fails_closed, assert_leaves_out, files, mib};
use cnb_attest_tests::proxy::{bearer_realm, get, Action, Plan, Proxy, RequestInfo};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::signed::{
    list_like, manifest_path, SignedImage, BUNDLE, CDX, FIVE_GIB, MAX_MANIFEST, NODE, OCI_INDEX,
    OCI_MANIFEST, REPO, SPDX,
};
use cnb_attest_tests::{error_line, ok, reported, sha256, text};
use serde_json::{json, Value};

const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// An artifact type no attestation reader of this project knows.
const FOREIGN: &str = "application/vnd.example.scan-report.v1+json";
/// What socket buffers let go out beyond what the client reads.
const SLACK: u64 = 24 << 20;

// ---------------------------------------------------------------------------------------------
// The example image in a real registry, and the CLI run against it through a proxy.
// ---------------------------------------------------------------------------------------------

/// The example in a real registry ([`SignedImage`]), with what these cases do to it besides.
struct Image(SignedImage);

impl std::ops::Deref for Image {
    type Target = SignedImage;

    fn deref(&self) -> &SignedImage {
        &self.0
    }
}

impl Image {
    /// The example pushed with skopeo, and a key pair; no attestations.
    fn pushed(kind: Kind) -> Option<Image> {
        SignedImage::pushed(kind).map(Image)
    }

    /// [`Image::pushed`], then signed by the CLI talking to the registry directly (7 SBOM
    /// attestations and the image signature).
    fn signed(kind: Kind) -> Option<Image> {
        let image = SignedImage::signed(kind)?;
        assert_eq!(image.listed.len(), 8, "{:#?}", image.listed);
        Some(Image(image))
    }

    /// `cnb-attest ls --json <proxy>/hostile/app:1.0`.
    fn ls(&self, proxy: &Proxy) -> Output {
        self.cli(proxy, &["ls", "--json", &self.reference(proxy)])
    }

    /// `cnb-attest sign <proxy>/hostile/app:1.0 --json` with the example's layers and key.
    fn sign(&self, proxy: &Proxy) -> Output {
        self.sign_at(&proxy.host, &self.reference(proxy), &["--json"])
    }

    /// A referrer manifest, read with curl.
    fn manifest(&self, digest: &str) -> Value {
        let (status, body) = self.curl("GET", &manifest_path(digest), OCI_MANIFEST, None);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// The Referrers API path of the image.
    fn referrers_path(&self) -> String {
        format!("/v2/{REPO}/referrers/{}", self.digest)
    }

    /// The manifest path of the image's `sha256-<hex>` tag.
    fn fallback_path(&self) -> String {
        manifest_path(&format!("sha256-{}", &self.digest[7..]))
    }

    /// What the image's descriptor is as a `subject`.
    fn subject(&self) -> Value {
        let (status, body) = self.curl("GET", &manifest_path(&self.digest), OCI_MANIFEST, None);
        assert_eq!(status, 200);
        json!({"mediaType": OCI_MANIFEST, "digest": self.digest, "size": body.len()})
    }

    /// A referrer of the image that is not an attestation (a scan report, say), pushed with curl:
    /// its manifest bytes and digest.
    fn push_foreign_referrer(&self, tag: &str) -> (Vec<u8>, String) {
        let config = self.push_blob(b"{}", OCI_EMPTY);
        let layer = self.push_blob(
            format!("{{\"report\":\"{tag}\"}}").as_bytes(),
            "application/json",
        );
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": FOREIGN,
            "config": config,
            "layers": [layer],
            "subject": self.subject(),
            "annotations": {"org.example.report": tag},
        }))
        .unwrap();
        let digest = sha256(&manifest);
        self.put_manifest(&digest, OCI_MANIFEST, &manifest);
        (manifest, digest)
    }
}

/// The node layer's CycloneDX SBOM, below the output directory.
const NODE_CDX: &str = "layers/sbom/launch/paketo-buildpacks_node-engine/node/sbom.cdx.json";

/// The good files minus `except`.
fn good_except(image: &Image, except: &str) -> BTreeMap<String, Vec<u8>> {
    let mut good = image.good();
    assert!(good.remove(except).is_some(), "{except}");
    good
}

/// [`assert_fails_closed`] for a run that must write nothing at all: exit `code`, one `FAILED`
/// line per expected failure and no other, nothing under `out`, nothing else under `root` changed.
fn fails_closed(
    root: &Path,
    out: &Path,
    code: i32,
    failures: &[(&str, &str)],
    command: impl FnOnce() -> Output,
) -> String {
    assert_fails_closed(root, out, command, code, failures, &BTreeMap::new())
}

/// `download` through `proxy` into `out` must fail (exit 1) writing nothing, naming no
/// attestation ([`fails_closed`]): its `ERROR` line.
fn download_error(image: &Image, proxy: &Proxy, out: &Path) -> String {
    let report = fails_closed(image.tmp.path(), out, 1, &[], || image.download(proxy, out));
    error_line(&report).to_string()
}

/// [`download_error`], and `ls --json` through the same proxy must fail (exit 1) too: the `ERROR`
/// lines of both, by command. `case` labels a failure.
fn download_and_ls_errors(
    image: &Image,
    proxy: &Proxy,
    out: &Path,
    case: &str,
) -> [(&'static str, String); 2] {
    let download = download_error(image, proxy, out);
    let listed = image.ls(proxy);
    assert_eq!(listed.status.code(), Some(1), "{case}:\n{}", text(&listed));
    [
        ("download", download),
        ("ls", error_line(&text(&listed)).to_string()),
    ]
}

/// `proxy` was asked for `path` exactly `times` times.
fn assert_asked(proxy: &Proxy, path: &str, times: usize) {
    assert_eq!(
        proxy.matching(|r| r.path() == path).len(),
        times,
        "{}",
        proxy.summary()
    );
}

/// `download` succeeded and wrote exactly the input SBOMs.
fn assert_downloaded_all(image: &Image, out: &Path, output: &Output) {
    let report = text(output);
    assert!(output.status.success(), "{report}");
    assert!(
        !report.contains("FAILED"),
        "an attestation failed:\n{report}"
    );
    let files = files(out);
    assert!(
        files == image.good(),
        "written: {:?}, expected {:?}\n{report}",
        files.keys().collect::<Vec<_>>(),
        image.good().keys().collect::<Vec<_>>()
    );
}

/// An image index JSON listing `entries`.
fn index_of(entries: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// B. Registry responses: sizes, digests, listings (cases 19, 21, 24–27).
// ---------------------------------------------------------------------------------------------

/// Serves the referrers listing of a pushed image — the Referrers API page (ferro) or the
/// `sha256-<hex>` index (Distribution) — with a 5 GiB `Content-Length`, then with an endless
/// chunked body, and checks `download` and `ls` fail closed (exit 1) at the 4 MiB manifest limit
/// with a message giving it, each fetching the listing once, the proxy (ready to send 1 GiB)
/// getting out no more than the limit plus what socket buffers hold. Returns the image digest and
/// the `ERROR` lines, by case.
fn oversized_listing(kind: Kind) -> Option<(String, Vec<(String, String)>)> {
    let image = Image::pushed(kind)?;
    let path = match kind {
        Kind::Ferro => image.referrers_path(),
        Kind::Distribution => image.fallback_path(),
    };
    let mut errors = Vec::new();
    for length in [Some(FIVE_GIB), None] {
        let case = format!(
            "{kind:?}, {}",
            if length.is_some() { "5 GiB" } else { "endless" }
        );
        let proxy = image.streaming(&path, 200, OCI_INDEX, length);
        let out = image.tmp.path().join(format!("out-{}", length.is_some()));
        for (command, error) in download_and_ls_errors(&image, &proxy, &out, &case) {
            assert!(error.contains(MAX_MANIFEST), "{case}, {command}: {error}");
            errors.push((format!("{case}, {command}"), error));
        }
        let served = proxy.matching(|r| r.path() == path);
        assert_eq!(
            served.len(),
            2,
            "{case}: once per command, not retried:\n{}",
            proxy.summary()
        );
        for r in &served {
            assert!(
                r.sent <= (4 << 20) + SLACK,
                "{case}: {} of the listing went out: it was read past the limit",
                mib(r.sent)
            );
        }
        eprintln!(
            "{case}: {} of the listing went out",
            mib(served.iter().map(|r| r.sent).max().unwrap())
        );
    }
    Some((image.digest.clone(), errors))
}

/// Case 19 for indexes: the listing of referrers — the Referrers API page (ferro) and the
/// `sha256-<hex>` index (Distribution) — is answered with a 5 GiB `Content-Length`, then with an
/// endless chunked body. `download` and `ls` fail (exit 1) at the 4 MiB manifest limit, saying so;
/// nothing is written; each command fetched the listing once, and read no more than the limit.
#[test]
fn an_oversized_referrers_index_is_refused_at_the_limit() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        if oversized_listing(kind).is_none() {
            return;
        }
    }
}

/// Case 19, the message: refusing an oversized listing, the error must say what was too large —
/// the referrers (or `sha256-<hex>` index) of which image — not only a byte count.
#[test]
fn an_oversized_referrers_index_error_names_the_listing() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some((digest, errors)) = oversized_listing(kind) else {
            return;
        };
        for (case, error) in errors {
            assert!(
                error.contains(&digest[7..])
                    && (error.contains("referrers") || error.contains("sha256-")),
                "{case}: the listing is not named: {error}"
            );
        }
    }
}

/// Case 21 over HTTP: one attestation's blob is served with bytes of the right length that do not
/// hash to its digest (one byte changed). `download` refuses that attestation by name, giving the
/// digest the bytes have, before parsing them, and leaves it out: nothing of it is written, every
/// verified SBOM is (the node layer's CycloneDX SBOM is not); the blob was fetched once. `ls` shows
/// the same problem on that attestation.
#[test]
fn an_attestation_blob_that_does_not_match_its_digest_is_refused_by_name() {
    let Some(image) = Image::signed(Kind::Distribution) else {
        return;
    };
    let target = image.attestation(NODE, "node", CDX);
    let layer = &image.manifest(&target)["layers"][0];
    let blob = layer["digest"].as_str().unwrap().to_string();
    let path = format!("/v2/{REPO}/blobs/{blob}");
    let (status, mut bytes) = image.curl("GET", &path, "*/*", None);
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = sha256(&bytes);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(get(path.clone()), move |_, _| Action::Rewrite {
            status: None,
            headers: vec![],
            body: bytes.clone(),
        }),
    );
    let out = image.tmp.path().join("out");
    assert_leaves_out(
        image.tmp.path(),
        &out,
        || image.download(&proxy, &out),
        0,
        &[(&target, &format!("content has digest {tampered}"))],
        &good_except(&image, NODE_CDX),
    );
    assert_asked(&proxy, &path, 1);

    let listed: Vec<Value> = serde_json::from_str(&ok(image.ls(&proxy))).unwrap();
    let entry = listed
        .iter()
        .find(|l| l["manifest-digest"] == target.as_str())
        .unwrap_or_else(|| panic!("{target} is not listed: {listed:#?}"));
    assert!(
        entry["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("content has digest {tampered}"))),
        "{entry:#}"
    );
}

/// 1025 well-formed referrer descriptors (a few hundred KiB of JSON, far under the 4 MiB limit).
fn listing_of_1025() -> Vec<u8> {
    let entries = (0..1025)
        .map(|i| {
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": sha256(format!("referrer {i}").as_bytes()),
                "size": 1049,
                "artifactType": BUNDLE,
                "annotations": {"dev.sigstore.bundle.predicateType": CDX},
            })
        })
        .collect();
    let body = index_of(entries);
    assert!(body.len() < 1 << 20, "{}", body.len());
    body
}

/// Case 24: a listing of 1025 referrers that is well under 4 MiB — as the Referrers API page
/// (ferro) and as the `sha256-<hex>` index (Distribution): `download` and `ls` refuse it (exit 1)
/// with a message naming the image and the 1024-referrer cap, before fetching a single listed
/// manifest; nothing is written.
#[test]
fn a_listing_of_more_than_1024_referrers_is_refused_before_any_is_fetched() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::pushed(kind) else {
            return;
        };
        let path = match kind {
            Kind::Ferro => image.referrers_path(),
            Kind::Distribution => image.fallback_path(),
        };
        let body = listing_of_1025();
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(get(path.clone()), move |_, _| Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                body: body.clone(),
            }),
        );
        let out = image.tmp.path().join(format!("out-{kind:?}"));
        for (_, error) in download_and_ls_errors(&image, &proxy, &out, &format!("{kind:?}")) {
            assert!(
                error.contains("1025 referrers listed, more than the 1024")
                    && error.contains(&image.digest),
                "{kind:?}: {error}"
            );
        }
        let fetched =
            proxy.matching(|r| r.method == "GET" && r.path().contains("/manifests/sha256:"));
        assert!(
            fetched.is_empty(),
            "{kind:?}: listed manifests were fetched:\n{}",
            proxy.summary()
        );
    }
}

/// Case 25: the Referrers API's first page (ferro's real answer) carries a `Link: rel="next"` to
/// another origin — another port on 127.0.0.1 (a second proxy in front of the same registry,
/// which would answer) and another host, 127.0.0.2. `download` and `ls` refuse (exit 1) naming
/// the other origin; nothing is written, and not one request reaches it.
#[test]
fn a_referrers_link_to_another_origin_is_refused_without_a_request_there() {
    let Some(image) = Image::signed(Kind::Ferro) else {
        return;
    };
    let other_port = Proxy::start(&image.registry.host, Plan::new());
    let other_host = Proxy::other_host(Plan::new());
    for other in [&other_port, &other_host] {
        let origin = format!("http://{}", other.host);
        let link = format!(
            "<{origin}{}?n=8&last=x>; rel=\"next\"",
            image.referrers_path()
        );
        let path = image.referrers_path();
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(get(path.clone()), move |_, _| Action::Amend {
                status: None,
                headers: vec![("Link".into(), link.clone())],
            }),
        );
        let out = image.tmp.path().join(format!("out-{}", other.host));
        for (_, error) in download_and_ls_errors(&image, &proxy, &out, &origin) {
            assert!(
                error.contains(&format!("points to another origin ({origin})"))
                    && error.contains(&image.digest),
                "{error}"
            );
        }
        assert_asked(&proxy, &path, 2);
        assert!(
            other.requests().is_empty(),
            "{origin} was asked:\n{}",
            other.summary()
        );
    }
}

/// Case 26: the Referrers API listing (ferro's, plus one entry) names a referrer whose manifest —
/// fetched, digest-checked — has another image as its `subject`. It is dropped: `download` writes
/// exactly the input SBOMs (exit 0) and `ls` lists the 8 real referrers only. Were it not dropped
/// it would fail verification (its annotations say node-engine's CycloneDX SBOM, its blob is the
/// SPDX one) and `download` would exit 3.
#[test]
fn a_listed_referrer_of_another_subject_is_dropped() {
    let Some(image) = Image::signed(Kind::Ferro) else {
        return;
    };
    let cdx = image.attestation(NODE, "node", CDX);
    let spdx = image.attestation(NODE, "node", SPDX);
    let mut manifest = image.manifest(&cdx);
    manifest["layers"] = image.manifest(&spdx)["layers"].clone();
    manifest["subject"] = json!({
        "mediaType": OCI_MANIFEST,
        "digest": sha256(b"another image"),
        "size": 1234,
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let crafted = sha256(&bytes);

    let (status, listing) = image.curl("GET", &image.referrers_path(), OCI_INDEX, None);
    assert_eq!(status, 200);
    let mut listing: Value = serde_json::from_slice(&listing).unwrap();
    list_like(&mut listing, &cdx, &bytes);
    let listing = serde_json::to_vec(&listing).unwrap();
    let crafted_path = manifest_path(&crafted);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new()
            .on(get(image.referrers_path()), move |_, _| Action::Rewrite {
                status: None,
                headers: vec![],
                body: listing.clone(),
            })
            .on(get(crafted_path.clone()), move |_, _| Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
                body: bytes.clone(),
            }),
    );
    let out = image.tmp.path().join("out");
    let output = image.download(&proxy, &out);
    assert_downloaded_all(&image, &out, &output);
    let listed: Vec<Value> = serde_json::from_str(&ok(image.ls(&proxy))).unwrap();
    let digests: Vec<&str> = listed
        .iter()
        .map(|l| l["manifest-digest"].as_str().unwrap())
        .collect();
    assert!(!digests.contains(&crafted.as_str()), "{digests:?}");
    assert_eq!(listed.len(), 8, "{digests:?}");
    // It was looked at (once per command), not skipped unread.
    assert_asked(&proxy, &crafted_path, 2);
}

/// Case 27: the image tag resolves to an index whose entry is another index — listed as one, and
/// listed as a platform manifest — and to an index "pointing at itself" (the proxy answers its
/// entry's digest with the index's own bytes, as a cycle needs a server that lies). `download`
/// fails (exit 1) with a message saying what is wrong, after at most two manifest requests; no
/// blob is read and nothing is written.
#[test]
fn nested_and_self_referencing_image_indexes_are_refused_without_recursion() {
    let Some(image) = Image::pushed(Kind::Distribution) else {
        return;
    };
    let platform = json!({"os": "linux", "architecture": "amd64"});
    let mut inner = image.subject();
    inner["platform"] = platform.clone();
    let inner = image.put_manifest("inner", OCI_INDEX, &index_of(vec![inner]));
    let mut as_index = inner.clone();
    as_index["platform"] = platform.clone();
    image.put_manifest("nested", OCI_INDEX, &index_of(vec![as_index]));
    let mut as_manifest = inner.clone();
    as_manifest["mediaType"] = json!(OCI_MANIFEST);
    as_manifest["platform"] = platform.clone();
    image.put_manifest("disguised", OCI_INDEX, &index_of(vec![as_manifest]));
    // Only a lying server can serve a cycle: the entry's digest answers with these very bytes.
    let looped = sha256(b"an index that lists itself");
    let cycle = index_of(vec![json!({
        "mediaType": OCI_MANIFEST,
        "digest": looped,
        "size": 1000,
        "platform": platform,
    })]);
    let cycle_digest = sha256(&cycle);

    let looped_path = manifest_path(&looped);
    let proxy = Proxy::start(
        &image.registry.host,
        Plan::new().on(
            move |r| {
                r.method == "GET" && (r.path() == manifest_path("cycle") || r.path() == looped_path)
            },
            move |_, _| Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                body: cycle.clone(),
            },
        ),
    );
    for (tag, reason) in [
        (
            "nested",
            "the image index holds no platform manifest".to_string(),
        ),
        (
            "disguised",
            format!("is an image index ({})", inner["digest"].as_str().unwrap()),
        ),
        (
            "cycle",
            format!("{looped}: content has digest {cycle_digest}"),
        ),
    ] {
        let before = proxy.requests().len();
        let out = image.tmp.path().join(format!("out-{tag}"));
        let key = image.keys().join("cosign.pub");
        let report = fails_closed(image.tmp.path(), &out, 1, &[], || {
            image.cli(
                &proxy,
                &[
                    "download",
                    &format!("{}/{REPO}:{tag}", proxy.host),
                    "-o",
                    out.to_str().unwrap(),
                    "--key",
                    key.to_str().unwrap(),
                ],
            )
        });
        let error = error_line(&report);
        assert!(error.contains(&reason), "{tag}: {error}");
        let requests = &proxy.requests()[before..];
        let manifests = requests
            .iter()
            .filter(|r| r.request.path().contains("/manifests/"))
            .count();
        assert!(
            (1..=2).contains(&manifests),
            "{tag}: {manifests} manifest requests:\n{}",
            proxy.summary()
        );
        assert!(
            !requests
                .iter()
                .any(|r| r.request.path().contains("/blobs/")),
            "{tag}:\n{}",
            proxy.summary()
        );
        eprintln!("{tag}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// B. Registry responses: encodings, redirects, error bodies, tokens (cases 32–35).
// ---------------------------------------------------------------------------------------------

/// Bits packed least significant first, as DEFLATE writes them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, bits: u32) {
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which DEFLATE writes most significant bit first.
    fn code(&mut self, code: u64, bits: u32) {
        let reversed = (0..bits).fold(0, |r, i| r | ((code >> i) & 1) << (bits - 1 - i));
        self.put(reversed, bits);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// CRC-32 (gzip's) of `n` copies of `byte`, without going through them: one byte is an affine
/// map of the CRC register over GF(2)^32, raised to the `n`th power by squaring.
fn crc32_of_repeated(byte: u8, n: u64) -> u32 {
    #[derive(Clone, Copy)]
    struct Affine {
        columns: [u32; 32],
        constant: u32,
    }
    fn apply(f: &Affine, x: u32) -> u32 {
        (0..32)
            .filter(|i| (x >> i) & 1 == 1)
            .fold(f.constant, |acc, i| acc ^ f.columns[i])
    }
    /// `g` after `f`.
    fn then(f: &Affine, g: &Affine) -> Affine {
        Affine {
            columns: f.columns.map(|c| apply(g, c) ^ g.constant),
            constant: apply(g, f.constant),
        }
    }
    let shift8 = |mut x: u32| {
        for _ in 0..8 {
            x = if x & 1 == 1 {
                (x >> 1) ^ 0xEDB8_8320
            } else {
                x >> 1
            };
        }
        x
    };
    let mut step = Affine {
        columns: std::array::from_fn(|i| shift8(1 << i)),
        constant: shift8(u32::from(byte)),
    };
    let mut power = Affine {
        columns: std::array::from_fn(|i| 1 << i),
        constant: 0,
    };
    let mut n = n;
    while n > 0 {
        if n & 1 == 1 {
            power = then(&power, &step);
        }
        step = then(&step, &step);
        n >>= 1;
    }
    apply(&power, 0xFFFF_FFFF) ^ 0xFFFF_FFFF
}

/// A valid gzip stream of `size` spaces (JSON whitespace) in about `size / 1032` bytes: one
/// dynamic-Huffman DEFLATE block whose codes give the literal ` `, the length 258 and the distance
/// 1 one or two bits each, so each 258 spaces cost two bits.
fn gzip_bomb(size: u64) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // BFINAL
    bits.put(2, 2); // dynamic Huffman
    bits.put(29, 5); // HLIT: 286 literal/length codes
    bits.put(1, 5); // HDIST: 2 distance codes
    bits.put(14, 4); // HCLEN: 18 code length codes
                     // Code length code lengths, in DEFLATE's order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1:
                     // `18` (a run of zeros) one bit, `1` and `2` two bits each.
    for length in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] {
        bits.put(length, 3);
    }
    // Canonical codes: 18 -> 0, 1 -> 10, 2 -> 11.
    let zeros = |bits: &mut Bits, n: u64| {
        bits.code(0, 1);
        bits.put(n - 11, 7);
    };
    zeros(&mut bits, 32); // literals 0..=31
    bits.code(3, 2); // ` ` (32): 2 bits
    zeros(&mut bits, 138); // 33..=170
    zeros(&mut bits, 85); // 171..=255
    bits.code(3, 2); // end of block (256): 2 bits
    zeros(&mut bits, 28); // lengths 257..=284
    bits.code(2, 2); // length 258 (285): 1 bit
    bits.code(2, 2); // distance code 0 (distance 1): 1 bit
    bits.code(2, 2); // distance code 1: 1 bit
                     // Canonical codes: 285 -> 0, ` ` -> 10, end -> 11; distance 0 -> 0.
    bits.code(2, 2);
    let matches = (size - 1) / 258;
    for _ in 0..matches {
        bits.put(0, 2);
    }
    for _ in 0..(size - 1) % 258 {
        bits.code(2, 2);
    }
    bits.code(3, 2);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(bits.finish());
    out.extend(crc32_of_repeated(b' ', size).to_le_bytes());
    out.extend((size as u32).to_le_bytes());
    out
}

/// Case 32: JSON answers with `Content-Encoding: gzip` whose body is a gzip bomb (1 MiB that
/// inflates to 1 GiB of JSON whitespace) — the image manifest and the Referrers API page (ferro).
/// The client never asks for a compressed answer and does not inflate one: `download` fails
/// (exit 1) on the bytes as sent, quickly, naming what it was reading; nothing is written.
#[test]
fn a_gzip_bomb_json_answer_is_not_inflated() {
    let Some(image) = Image::pushed(Kind::Ferro) else {
        return;
    };
    let bomb = Arc::new(gzip_bomb(1 << 30));
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    for (what, path, media_type, reason) in [
        (
            "image manifest",
            manifest_path("1.0"),
            OCI_MANIFEST,
            format!("/{REPO}:1.0: malformed image manifest"),
        ),
        (
            "referrers page",
            image.referrers_path(),
            OCI_INDEX,
            format!("/{REPO}@{}: malformed image index", image.digest),
        ),
    ] {
        let bomb = Arc::clone(&bomb);
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(get(path.clone()), move |_, _| Action::Respond {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), media_type.into()),
                    ("Content-Encoding".into(), "gzip".into()),
                ],
                body: bomb.to_vec(),
            }),
        );
        let out = image
            .tmp
            .path()
            .join(format!("out-{}", what.replace(' ', "-")));
        let started = Instant::now();
        let error = download_error(&image, &proxy, &out);
        let took = started.elapsed();
        assert!(error.contains(&reason), "{what}: {error}");
        assert!(
            took < Duration::from_secs(20),
            "{what}: took {took:?}: was it inflated?"
        );
        let served = proxy.matching(|r| r.path() == path);
        assert_eq!(served.len(), 1, "{what}:\n{}", proxy.summary());
        for r in proxy.requests() {
            let encodings = r.request.header("accept-encoding").unwrap_or_default();
            assert!(
                !encodings.contains("gzip") && !encodings.contains("deflate"),
                "{} {} asked for {encodings}",
                r.request.method,
                r.request.target
            );
        }
        eprintln!("{what}: {error} ({took:?})");
    }
}

/// Redirects the image manifest GET of a pushed image back to itself, then along an endless chain
/// of new URLs on the same host, and checks `download` stops (exit 1) with a message naming the
/// redirect limit of 5 and the URL, nothing written. Returns the requests the proxy saw for that
/// path, per variant.
fn redirect_loop() -> Option<Vec<usize>> {
    let image = Image::pushed(Kind::Distribution)?;
    let path = manifest_path("1.0");
    let mut hops = Vec::new();
    for endless in [false, true] {
        let target = path.clone();
        let proxy = Proxy::start(
            &image.registry.host,
            Plan::new().on(get(path.clone()), move |_, n| {
                if endless {
                    Action::redirect(format!("{target}?hop={}", n + 1))
                } else {
                    Action::redirect(target.clone())
                }
            }),
        );
        let out = image.tmp.path().join(format!("out-{endless}"));
        let error = download_error(&image, &proxy, &out);
        assert!(
            error.contains("more than 5 redirects") && error.contains(&path),
            "{error}"
        );
        let seen = proxy.matching(|r| r.path() == path).len();
        eprintln!("endless {endless}: {seen} requests: {error}");
        hops.push(seen);
    }
    Some(hops)
}

/// Case 33: the image manifest GET redirects to itself, and along an endless chain of new URLs on
/// the same host: `download` stops (exit 1) with a message naming the limit of 5 redirects, after
/// a bounded number of requests (6 per attempt, under the retry policy's 5 attempts).
#[test]
fn a_redirect_loop_stops_after_5_redirects() {
    let Some(hops) = redirect_loop() else {
        return;
    };
    for seen in hops {
        assert!((6..=30).contains(&seen), "{seen} requests");
    }
}

/// Case 33, strictly: a redirect loop is the server's answer, not a transport failure worth
/// retrying — the client makes the first request and follows at most 5 redirects, 6 requests.
#[test]
fn a_redirect_loop_is_not_retried() {
    let Some(hops) = redirect_loop() else {
        return;
    };
    assert_eq!(hops, [6, 6], "the first request and 5 redirects, once");
}

/// Case 34: error answers with huge bodies. One attestation's blob GET is answered 404 with an
/// endless chunked body: that attestation is refused by name with the status and left out (the
/// others are written). The image
/// manifest GET is answered 500 with a 5 GiB `Content-Length`, then with an endless body: the
/// run fails (exit 1) naming the operation and the status. Each error body went out only as far
/// as socket buffers take it (the client reads at most a few KiB of it); nothing is written.
#[test]
fn huge_error_bodies_are_read_bounded() {
    let Some(image) = Image::signed(Kind::Distribution) else {
        return;
    };
    let target = image.attestation(NODE, "node", CDX);
    let blob = image.manifest(&target)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob_path = format!("/v2/{REPO}/blobs/{blob}");
    let proxy = image.streaming(&blob_path, 404, "application/json", None);
    let out = image.tmp.path().join("out-blob");
    assert_leaves_out(
        image.tmp.path(),
        &out,
        || image.download(&proxy, &out),
        0,
        &[(&target, "registry answered 404")],
        &good_except(&image, NODE_CDX),
    );
    let served = proxy.matching(|r| r.path() == blob_path);
    assert_eq!(served.len(), 1, "{}", proxy.summary());
    assert!(served[0].sent <= SLACK, "{} went out", mib(served[0].sent));

    let path = manifest_path("1.0");
    for length in [Some(FIVE_GIB), None] {
        let proxy = image.streaming(&path, 500, "text/plain", length);
        let out = image.tmp.path().join(format!("out-{}", length.is_some()));
        let error = download_error(&image, &proxy, &out);
        assert!(
            error.contains("GET manifest ")
                && error.contains(&format!("/{REPO}:1.0: registry answered 500")),
            "{error}"
        );
        assert!(error.len() < 1024, "the error line holds the body: {error}");
        let served = proxy.matching(|r| r.path() == path);
        // 5xx is retried under the policy (5 attempts in all).
        assert!((1..=5).contains(&served.len()), "{}", proxy.summary());
        for r in &served {
            assert!(r.sent <= SLACK, "{} of an error body went out", mib(r.sent));
        }
    }
}

/// Makes the registry (the proxy) ask a pushed image's client for a Bearer token from a realm on
/// its own host, and answers the token request 200 with a 5 GiB `Content-Length`, then with an
/// endless chunked body. Checks `download` fails closed (exit 1) with a message giving the 64 KiB
/// token limit, asked once, the proxy getting out no more than socket buffers hold. Returns the
/// `ERROR` lines.
fn endless_token() -> Option<Vec<String>> {
    let image = Image::pushed(Kind::Ferro)?;
    let mut errors = Vec::new();
    for length in [Some(FIVE_GIB), None] {
        let proxy = bearer_realm(&image.registry.host, move |_, _| Action::Stream {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            length,
            limit: 1 << 30,
        });
        let out = image.tmp.path().join(format!("out-{}", length.is_some()));
        let error = download_error(&image, &proxy, &out);
        assert!(error.contains("exceeds the 65536-byte limit"), "{error}");
        let tokens = proxy.matching(|r| r.path() == "/token");
        assert_eq!(tokens.len(), 1, "{}", proxy.summary());
        assert!(
            tokens[0].sent <= SLACK,
            "{} of the token response went out",
            mib(tokens[0].sent)
        );
        // Nothing was let through without the token.
        assert!(
            proxy.requests().iter().all(|r| r.action != "forward"),
            "{}",
            proxy.summary()
        );
        errors.push(error);
    }
    Some(errors)
}

/// Case 35: the token endpoint of a Bearer challenge (a realm on the registry's own host) answers
/// with a 5 GiB `Content-Length`, then with an endless chunked body: `download` fails (exit 1) at
/// the 64 KiB token limit, saying so, after one token request that read no more than the limit;
/// nothing is written.
#[test]
fn an_endless_token_response_is_read_bounded() {
    endless_token();
}

/// Case 35, the message: the error must say that the token request failed, and where it went —
/// not only a byte count.
#[test]
fn an_endless_token_response_error_names_the_token_realm() {
    let Some(errors) = endless_token() else {
        return;
    };
    for error in errors {
        assert!(error.contains("token"), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// C. Referrers API detection and the fallback index (cases 36, 37, 40, 43).
// ---------------------------------------------------------------------------------------------

/// What a plain HTTP reader finds in the image's `sha256-<hex>` index: the listed digests.
fn fallback_listed(image: &Image) -> Vec<String> {
    let (status, body) = image.curl("GET", &image.fallback_path(), OCI_INDEX, None);
    assert_eq!(status, 200, "no sha256-<hex> index");
    let index: Value = serde_json::from_slice(&body).unwrap();
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    listed
}

/// Case 36: Distribution (no Referrers API) behind a proxy that adds `OCI-Subject` to every
/// referrer manifest push — with another digest than the image's while the proxy makes the
/// referrers endpoint answer (an empty page), and with the image's own digest while the endpoint
/// 404s as Distribution's does. Neither is a registry that indexes referrers: `sign` reports no
/// Referrers API and writes the `sha256-<hex>` index, which a plain HTTP reader finds listing
/// every attestation and the image signature; `ls` through the same proxy lists all 8.
#[test]
fn an_oci_subject_header_that_cannot_be_trusted_leads_to_the_fallback_index() {
    for wrong_digest in [true, false] {
        let Some(image) = Image::pushed(Kind::Distribution) else {
            return;
        };
        let announced = if wrong_digest {
            sha256(b"another image")
        } else {
            image.digest.clone()
        };
        let referrers = image.referrers_path();
        let mut plan = Plan::new().on(
            |r| r.method == "PUT" && r.path().contains("/manifests/sha256:"),
            move |_, _| Action::Rewrite {
                status: None,
                headers: vec![("OCI-Subject".into(), announced.clone())],
                body: Vec::new(),
            },
        );
        if wrong_digest {
            plan = plan.on(get(referrers.clone()), |_, _| Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), OCI_INDEX.into())],
                body: index_of(Vec::new()),
            });
        }
        let proxy = Proxy::start(&image.registry.host, plan);
        let report: Value = serde_json::from_str(&ok(image.sign(&proxy))).unwrap();
        let case = if wrong_digest {
            "OCI-Subject with another digest"
        } else {
            "OCI-Subject without a Referrers API"
        };
        assert_eq!(report["referrers-api"], false, "{case}: {report:#}");
        assert_eq!(report["pushed"], 8, "{case}: {report:#}");
        assert!(
            report["index-writes"].as_u64() >= Some(1),
            "{case}: {report:#}"
        );
        let pushes =
            proxy.matching(|r| r.method == "PUT" && r.path().contains("/manifests/sha256:"));
        assert_eq!(pushes.len(), 8, "{case}: {}", proxy.summary());
        assert!(
            pushes
                .iter()
                .all(|r| r.action == "rewrite" && r.status == Some(201)),
            "{case}: {}",
            proxy.summary()
        );
        assert_eq!(fallback_listed(&image), reported(&report), "{case}");
        let listed: Vec<Value> = serde_json::from_str(&ok(image.ls(&proxy))).unwrap();
        assert_eq!(listed.len(), 8, "{case}: {listed:#?}");
    }
}

/// Case 37: the Referrers API answers 401 even with credentials, 200 with an HTML login page, and
/// a redirect to such a page — on Distribution, whose `sha256-<hex>` index does hold the signed
/// attestations. `download` and `ls` fail (exit 1) naming the referrers request; they do not fall
/// back silently (to the index: success, or to nothing: exit 4). Nothing is written.
#[test]
fn a_referrers_endpoint_answering_401_or_a_login_page_is_an_error() {
    let Some(image) = Image::signed(Kind::Distribution) else {
        return;
    };
    let path = image.referrers_path();
    let html = b"<!DOCTYPE html><html><body><form action=\"/login\">Sign in</form></body></html>";
    let login = |_: &RequestInfo, _: usize| Action::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body: html.to_vec(),
    };
    let variants: Vec<(&str, Plan, &str)> = vec![
        (
            "401",
            Plan::new().on(get(path.clone()), |_, _| Action::Respond {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), "Basic realm=\"cnb-test\"".into())],
                body: br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
            }),
            "access denied (401)",
        ),
        (
            "login page",
            Plan::new().on(get(path.clone()), login),
            "malformed referrers of",
        ),
        (
            "redirect to a login page",
            Plan::new()
                .on(get(path.clone()), |_, _| {
                    Action::redirect("/login?next=referrers")
                })
                .on(|r| r.path() == "/login", login),
            "malformed referrers of",
        ),
    ];
    for (case, plan, reason) in variants {
        let proxy = Proxy::start(&image.registry.host, plan);
        let out = image
            .tmp
            .path()
            .join(format!("out-{}", case.replace(' ', "-")));
        for (_, error) in download_and_ls_errors(&image, &proxy, &out, case) {
            assert!(
                error.contains(reason) && error.contains(&image.digest),
                "{case}: {error}"
            );
        }
        // The credentials were offered to the endpoint, and refused.
        let asked = proxy.matching(|r| r.path() == path);
        assert!(
            asked
                .iter()
                .any(|r| r.request.header("authorization").is_some()),
            "{case}:\n{}",
            proxy.summary()
        );
    }
}

/// Case 40: Distribution behind a proxy that behaves like a registry honouring `If-Match`: it
/// gives every read of the `sha256-<hex>` index an ETag, and answers the first conditional index
/// write with 412 after another writer changed the index in between (adding its own referrer).
/// The signer reads the index again and writes it with the new ETag; it succeeds, and a plain
/// HTTP reader finds the index listing the other writers' referrers (the one there before and the
/// one added during the race) and every one of ours.
#[test]
fn a_412_on_a_conditional_index_write_is_retried_from_a_fresh_read() {
    let Some(image) = Image::pushed(Kind::Distribution) else {
        return;
    };
    // Another tool's referrer is listed already, so the signer reads an index with an ETag.
    let (_, before) = image.push_foreign_referrer("before");
    let (raced_bytes, raced) = image.push_foreign_referrer("raced");
    let entry = |digest: &str, size: usize| json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "artifactType": FOREIGN});
    let (_, before_bytes) = image.curl("GET", &manifest_path(&before), OCI_MANIFEST, None);
    let fallback_tag = format!("sha256-{}", &image.digest[7..]);
    image.put_manifest(
        &fallback_tag,
        OCI_INDEX,
        &index_of(vec![entry(&before, before_bytes.len())]),
    );

    let index_path = image.fallback_path();
    let registry = image.registry.host.clone();
    let creds = image.registry.creds().unwrap();
    let raced_entry = entry(&raced, raced_bytes.len());
    let concurrent_writes = Arc::new(AtomicUsize::new(0));
    let writes = Arc::clone(&concurrent_writes);
    let race_path = index_path.clone();
    let url = format!("http://{registry}{index_path}");
    let plan = Plan::new()
        .on(get(index_path.clone()), |_, n| Action::Amend {
            status: None,
            headers: vec![("ETag".into(), format!("\"read-{n}\""))],
        })
        .on(
            move |r| r.method == "PUT" && r.path() == race_path && r.header("if-match").is_some(),
            move |_, n| {
                if n > 0 {
                    return Action::Forward;
                }
                // Another writer gets in between the signer's read and its write.
                let current = Command::new("curl")
                    .args(["-s", "-f", "-u", &creds, "-H"])
                    .arg(format!("Accept: {OCI_INDEX}"))
                    .arg(&url)
                    .output()
                    .unwrap();
                let mut index: Value = serde_json::from_slice(&current.stdout).unwrap();
                index["manifests"]
                    .as_array_mut()
                    .unwrap()
                    .push(raced_entry.clone());
                let mut put = Command::new("curl")
                    .args(["-s", "-f", "-X", "PUT", "-u", &creds, "-H"])
                    .arg(format!("Content-Type: {OCI_INDEX}"))
                    .args(["--data-binary", "@-"])
                    .arg(&url)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap();
                put.stdin
                    .take()
                    .unwrap()
                    .write_all(&serde_json::to_vec(&index).unwrap())
                    .unwrap();
                assert!(put.wait().unwrap().success());
                writes.fetch_add(1, Ordering::SeqCst);
                Action::Respond {
                    status: 412,
                    headers: vec![],
                    body: br#"{"errors":[{"code":"PRECONDITION_FAILED"}]}"#.to_vec(),
                }
            },
        );
    let proxy = Proxy::start(&image.registry.host, plan);
    let out = image.sign(&proxy);
    let report: Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(report["pushed"], 8, "{report:#}\n{}", proxy.summary());
    assert_eq!(
        concurrent_writes.load(Ordering::SeqCst),
        1,
        "{}",
        proxy.summary()
    );

    // Every index write was conditional on the ETag of the read just before it.
    let on_index = proxy.matching(|r| r.path() == index_path);
    let mut last_etag = None;
    let mut puts = Vec::new();
    let mut reads = 0;
    for r in &on_index {
        match r.request.method.as_str() {
            "GET" => {
                last_etag = Some(format!("\"read-{reads}\""));
                reads += 1;
            }
            "PUT" => {
                assert_eq!(
                    r.request.header("if-match").map(str::to_string),
                    last_etag,
                    "{}",
                    proxy.summary()
                );
                puts.push(r.status);
            }
            _ => {}
        }
    }
    assert_eq!(puts, [Some(412), Some(201)], "{}", proxy.summary());
    let refused = on_index.iter().position(|r| r.status == Some(412)).unwrap();
    assert!(
        on_index[refused + 1..]
            .iter()
            .take_while(|r| r.request.method != "PUT")
            .any(|r| r.request.method == "GET"),
        "the index was not read again after the 412:\n{}",
        proxy.summary()
    );

    let mut expected = reported(&report);
    expected.extend([before, raced]);
    expected.sort();
    assert_eq!(fallback_listed(&image), expected);
}

/// Case 43: the Referrers API listing (ferro, which applies no `artifactType` filter since none is
/// asked for) holds, besides our referrers, a foreign artifact about the image (a scan report with
/// its own artifact type). `download` ignores it — it never fetches its blob — and writes exactly
/// the input SBOMs (exit 0). `ls` shows it for what it is: listed with no attestation format, its
/// artifact type, and the problem that it is not a format this tool reads.
#[test]
fn a_foreign_referrer_is_ignored_by_download_and_shown_as_foreign_by_ls() {
    let Some(image) = Image::signed(Kind::Ferro) else {
        return;
    };
    let (manifest, foreign) = image.push_foreign_referrer("scan");
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let foreign_blob = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, listing) = image.curl("GET", &image.referrers_path(), OCI_INDEX, None);
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&listing).contains(&foreign),
        "ferro does not list the foreign referrer"
    );
    let proxy = Proxy::start(&image.registry.host, Plan::new());
    let out = image.tmp.path().join("out");
    let output = image.download(&proxy, &out);
    assert_downloaded_all(&image, &out, &output);
    assert!(
        !text(&output).contains(&foreign),
        "download reported the foreign referrer:\n{}",
        text(&output)
    );
    assert!(
        proxy
            .matching(|r| r.path().ends_with(&foreign_blob))
            .is_empty(),
        "the foreign artifact's blob was fetched:\n{}",
        proxy.summary()
    );

    let listed: Vec<Value> = serde_json::from_str(&ok(image.ls(&proxy))).unwrap();
    assert_eq!(listed.len(), 9, "{listed:#?}");
    let entry = listed
        .iter()
        .find(|l| l["manifest-digest"] == foreign.as_str())
        .unwrap_or_else(|| panic!("{foreign} is not listed: {listed:#?}"));
    assert_eq!(entry["format"], Value::Null, "{entry:#}");
    assert_eq!(entry["artifact-type"], FOREIGN, "{entry:#}");
    assert_eq!(entry["predicate-type"], Value::Null, "{entry:#}");
    assert!(
        entry["problem"]
            .as_str()
            .is_some_and(|p| p.contains("not an attestation format this tool reads")),
        "{entry:#}"
    );
    let table = ok(image.cli(&proxy, &["ls", &image.reference(&proxy)]));
    assert!(
        table.lines().any(|l| l.starts_with("other ")),
        "the table does not show it as `other`:\n{table}"
    );
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.ends_with(": 7 attestation(s), 1 image signature(s), 1 other referrer(s)"),
        "the header must not count the foreign artifact as an attestation: {header}"
    );
}
