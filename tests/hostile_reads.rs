//! Hostile registries on the read path (issue 14, items 3, 6, 9 and 10b), against real registries
//! started by the test — CNCF Distribution (the `sha256-<hex>` tag-schema index) and ferro (the
//! Referrers API) — with the fault-injecting proxy (`support/proxy.rs`) in front to alter the
//! listing or answer for the registry. Each case checks what the client did (requests the proxy
//! recorded), what it said (exit code, message), what it wrote, and, for the memory cases, the
//! child's peak RSS (`support/rss.rs`: `wait4` on its pid), which must be bounded by the caps,
//! not by what the registry serves.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use cnb_attest_tests::closed::files;
use cnb_attest_tests::proxy::{get, Action, Plan, Proxy};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::rss::{mib, run_measured, Measured};
use cnb_attest_tests::signed::{
    manifest_path, SignedImage, BUNDLE, CDX, NODE, OCI_INDEX, OCI_MANIFEST, REPO,
};
use cnb_attest_tests::{bin, error_line, ok, run, sha256, text};
use serde_json::{json, Value};

const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// An artifact type no attestation reader of this project knows.
const FOREIGN: &str = "application/vnd.example.scan-report.v1+json";
/// `MAX_ATTESTATION_BLOB`: the largest attestation blob a reader accepts (64 MiB).
const MAX_BLOB: u64 = 64 << 20;
/// The registry manifest limit (4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Memory of a run besides the attestations it holds (the program, its runtime, one decode).
const PROGRAM: u64 = 64 << 20;

/// The signed example in a real registry, with curl helpers to add what a hostile registry holds.
struct Image(SignedImage);

impl std::ops::Deref for Image {
    type Target = SignedImage;

    fn deref(&self) -> &SignedImage {
        &self.0
    }
}

impl Image {
    /// The example pushed, unsigned.
    fn pushed(kind: Kind) -> Option<Image> {
        SignedImage::pushed(kind).map(Image)
    }

    /// The example pushed and signed by the CLI (7 SBOM attestations and the image signature).
    fn signed(kind: Kind) -> Option<Image> {
        let image = SignedImage::signed(kind)?;
        assert_eq!(image.listed.len(), 8, "{:#?}", image.listed);
        Some(Image(image))
    }

    /// The image's descriptor, as a `subject`.
    fn subject(&self) -> Value {
        let (status, body) = self.curl("GET", &manifest_path(&self.digest), OCI_MANIFEST, None);
        assert_eq!(status, 200);
        json!({"mediaType": OCI_MANIFEST, "digest": self.digest, "size": body.len()})
    }

    /// Where readers find the image's referrers on this registry: the Referrers API (ferro) or
    /// the `sha256-<hex>` index (Distribution).
    fn listing_path(&self) -> String {
        match self.registry.kind {
            Kind::Ferro => format!("/v2/{REPO}/referrers/{}", self.digest),
            Kind::Distribution => manifest_path(&format!("sha256-{}", &self.digest[7..])),
        }
    }

    /// The image's referrers listing as the registry serves it (an empty one where it has none:
    /// Distribution without a `sha256-<hex>` tag).
    fn listing(&self) -> Value {
        let (status, body) = self.curl("GET", &self.listing_path(), OCI_INDEX, None);
        if status == 404 && self.registry.kind == Kind::Distribution {
            return json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// A proxy in front of the registry serving the listing with `entries` appended; `extra` adds
    /// rules after the listing's (answers for the registry).
    fn proxy_listing(&self, entries: Vec<Value>, extra: impl FnOnce(Plan) -> Plan) -> Proxy {
        let mut listing = self.listing();
        listing["manifests"].as_array_mut().unwrap().extend(entries);
        let body = serde_json::to_vec(&listing).unwrap();
        // A tag pull is checked against the registry's digest for it: the rewritten listing comes
        // with its own.
        let digest = sha256(&body);
        let plan = Plan::new().on(get(self.listing_path()), move |_, _| Action::Rewrite {
            status: Some(200),
            headers: vec![
                ("Content-Type".into(), OCI_INDEX.into()),
                ("Docker-Content-Digest".into(), digest.clone()),
            ],
            body: body.clone(),
        });
        Proxy::start(&self.registry.host, extra(plan))
    }

    /// Whether the registry's own listing holds `digest`.
    fn lists(&self, digest: &str) -> bool {
        self.listing()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == digest)
    }

    /// `cnb-attest <args>` through `proxy`, measured.
    fn measured(&self, proxy: &Proxy, args: &[&str]) -> Measured {
        run_measured(
            self.env_for(&proxy.host, &mut Command::new(bin("cnb-attest")))
                .args(args),
        )
    }

    /// `cnb-attest ls --json <proxy>/hostile/app:1.0`.
    fn ls(&self, proxy: &Proxy) -> Output {
        self.cli(proxy, &["ls", "--json", &self.reference(proxy)])
    }

    /// `cnb-attest verify <proxy>/hostile/app:1.0 --key cosign.pub`.
    fn verify(&self, proxy: &Proxy) -> Output {
        let key = self.keys().join("cosign.pub");
        self.cli(
            proxy,
            &[
                "verify",
                &self.reference(proxy),
                "--key",
                key.to_str().unwrap(),
            ],
        )
    }

    /// The analyzer restoring the image through `proxy` into `layers`.
    fn analyzer(&self, proxy: &Proxy, layers: &Path) -> Output {
        run(self
            .env_for(&proxy.host, &mut Command::new(bin("analyzer")))
            .args(["-previous-image", &self.reference(proxy), "-layers"])
            .arg(layers)
            .arg("-key")
            .arg(self.keys().join("cosign.pub")))
    }

    /// The digests of the image's 8 referrers.
    fn referrer_digests(&self) -> Vec<String> {
        self.listed
            .iter()
            .map(|l| l["manifest-digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// The layer descriptor of referrer `digest`.
    fn layer_of(&self, digest: &str) -> Value {
        let (status, body) = self.curl("GET", &manifest_path(digest), OCI_MANIFEST, None);
        assert_eq!(status, 200);
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        manifest["layers"][0].clone()
    }
}

/// GET requests `proxy` saw for exactly `path`.
fn gets(proxy: &Proxy, path: &str) -> usize {
    proxy
        .matching(|r| r.method == "GET" && r.path() == path)
        .len()
}

/// Lines of `report` starting with `prefix`.
fn lines_with<'a>(report: &'a str, prefix: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.starts_with(prefix)).collect()
}

// ---------------------------------------------------------------------------------------------
// Item 3: memory before caps.
// ---------------------------------------------------------------------------------------------

/// A 64 MiB blob (the reader's per-blob limit, so accepted by size; zeros, so no attestation) and
/// `count` bundle referrers of the image naming it as their one layer, pushed to the registry
/// with curl: their listing entries (with the artifact type and annotations a listing gives).
fn referrers_of_one_huge_blob(image: &Image, count: usize) -> (Value, Vec<Value>) {
    let blob = image.push_blob(&vec![0; MAX_BLOB as usize], BUNDLE);
    let config = image.push_blob(b"{}", OCI_EMPTY);
    let subject = image.subject();
    let entries = (0..count)
        .map(|i| {
            let annotations = json!({
                "dev.sigstore.bundle.predicateType": CDX,
                "org.example.copy": i.to_string(),
            });
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": BUNDLE,
                "config": config,
                "layers": [blob],
                "subject": subject,
                "annotations": annotations,
            });
            let mut entry = {
                let bytes = serde_json::to_vec(&manifest).unwrap();
                image.put_manifest(&sha256(&bytes), OCI_MANIFEST, &bytes)
            };
            entry["artifactType"] = json!(BUNDLE);
            entry["annotations"] = annotations;
            entry
        })
        .collect();
    (blob, entries)
}

/// `referrers` hostile referrers of one 64 MiB blob, each listed `times` times (the registry's
/// own listing counts), beside the image's 8 real ones: `download` reads the blob once and each
/// manifest once, leaves the hostile referrers out (one line each, not one per listing entry),
/// writes exactly the input SBOMs, and its peak RSS is bounded by one blob, not by
/// `referrers × times × 64 MiB`. Returns the peak RSS.
fn one_huge_blob(kind: Kind, referrers: usize, times: usize) -> Option<u64> {
    let image = Image::signed(kind)?;
    let (blob, entries) = referrers_of_one_huge_blob(&image, referrers);
    let mut listed = Vec::new();
    for entry in &entries {
        let already = usize::from(image.lists(entry["digest"].as_str().unwrap()));
        listed.extend(std::iter::repeat_n(entry.clone(), times - already));
    }
    let proxy = image.proxy_listing(listed, |plan| plan);
    let out = image.tmp.path().join("out");
    let key = image.keys().join("cosign.pub");
    let measured = image.measured(
        &proxy,
        &[
            "download",
            &image.reference(&proxy),
            "-o",
            out.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let report = text(&measured.output);
    eprintln!(
        "{kind:?}: {referrers} referrer(s) of one 64 MiB blob, each listed {times} time(s): download peak RSS {}",
        mib(measured.peak_rss)
    );
    assert!(measured.output.status.success(), "{kind:?}:\n{report}");
    assert!(files(&out) == image.good(), "{kind:?}: written:\n{report}");
    assert_eq!(
        lines_with(&report, "Warning: left out ").len(),
        referrers,
        "{kind:?}: one line per distinct referrer:\n{report}"
    );
    let blob_path = format!("/v2/{REPO}/blobs/{}", blob["digest"].as_str().unwrap());
    assert_eq!(gets(&proxy, &blob_path), 1, "{}", proxy.summary());
    for entry in &entries {
        let path = manifest_path(entry["digest"].as_str().unwrap());
        assert_eq!(gets(&proxy, &path), 1, "{path}:\n{}", proxy.summary());
    }
    assert!(
        measured.peak_rss <= MAX_BLOB + PROGRAM,
        "{kind:?}: peak RSS {} is more than one 64 MiB blob and the program ({}): the registry's \
         listing decided the memory, not the caps",
        mib(measured.peak_rss),
        mib(MAX_BLOB + PROGRAM)
    );
    Some(measured.peak_rss)
}

/// Item 3: 24 referrers pointing at one 64 MiB blob (it used to be read 24 times, 1.6 GB, before
/// the total cap refused the run). The blob is read once and held once; the 24 are left out as
/// undecodable; the real attestations are written; peak RSS is one blob plus the program.
#[test]
fn twenty_four_referrers_of_one_64_mib_blob_read_it_once() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        if one_huge_blob(kind, 24, 1).is_none() {
            return;
        }
    }
}

/// Item 3: one referrer (of a 64 MiB blob) listed 40 times (listings were not de-duplicated: 40
/// manifest and 40 blob reads, 2.65 GB). Its manifest and blob are read once, it is left out
/// once, and peak RSS is one blob plus the program.
#[test]
fn a_referrer_listed_40_times_is_read_once() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        if one_huge_blob(kind, 1, 40).is_none() {
            return;
        }
    }
}

/// A foreign referrer manifest of the image (another tool's artifact type), `size` bytes long
/// (padded with an annotation), numbered `n`.
fn foreign_manifest(subject: &Value, artifact_type: Option<&str>, n: usize, size: u64) -> Vec<u8> {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{
            "mediaType": "application/json",
            "digest": sha256(format!("report {n}").as_bytes()),
            "size": 10,
        }],
        "subject": subject,
        "annotations": {"org.example.n": n.to_string(), "org.example.pad": ""},
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    let bare = serde_json::to_vec(&manifest).unwrap().len() as u64;
    let pad = usize::try_from(size.checked_sub(bare).expect("size too small")).unwrap();
    manifest["annotations"]["org.example.pad"] = json!("x".repeat(pad));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    assert_eq!(bytes.len() as u64, size);
    bytes
}

/// Manifests a proxy answers for the registry: path → media type and a generator of the bytes.
type Served = HashMap<String, (&'static str, Box<dyn Fn() -> Vec<u8> + Send + Sync>)>;

/// A proxy rule answering GETs of the manifests in `served`, generated on each request so that
/// the test holds none of them.
fn serve_manifests(plan: Plan, served: Arc<Served>) -> Plan {
    let matcher = Arc::clone(&served);
    plan.on(
        move |r| r.method == "GET" && matcher.contains_key(r.path()),
        move |r, _| {
            let (media_type, bytes) = &served[r.path()];
            Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), (*media_type).into())],
                body: bytes(),
            }
        },
    )
}

/// Item 3: 200 foreign referrers of about 4 MiB each (just under the manifest limit, another
/// tool's artifact type), served by the proxy beside the image's 8. `ls` used to fetch and hold
/// every one (871 MB). They are known from the listing: never fetched, listed as other referrers
/// with the reason; peak RSS stays at the program's.
#[test]
fn two_hundred_foreign_4_mib_manifests_are_listed_without_being_fetched() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::signed(kind) else {
            return;
        };
        let subject = image.subject();
        let size = MAX_MANIFEST - 1024;
        let mut served = Served::new();
        let mut entries = Vec::new();
        for n in 0..200 {
            let digest = sha256(&foreign_manifest(&subject, Some(FOREIGN), n, size));
            let subject = subject.clone();
            served.insert(
                manifest_path(&digest),
                (
                    OCI_MANIFEST,
                    Box::new(move || foreign_manifest(&subject, Some(FOREIGN), n, size)),
                ),
            );
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "artifactType": FOREIGN,
            }));
        }
        let served = Arc::new(served);
        let paths: Vec<String> = served.keys().cloned().collect();
        let proxy = image.proxy_listing(entries, |plan| serve_manifests(plan, served));
        let measured = image.measured(&proxy, &["ls", "--json", &image.reference(&proxy)]);
        let report = text(&measured.output);
        eprintln!(
            "{kind:?}: 200 foreign 4 MiB referrers: ls peak RSS {}",
            mib(measured.peak_rss)
        );
        assert!(measured.output.status.success(), "{kind:?}:\n{report}");
        let listed: Vec<Value> = serde_json::from_slice(&measured.output.stdout).unwrap();
        assert_eq!(listed.len(), 208, "{kind:?}");
        let foreign: Vec<&Value> = listed
            .iter()
            .filter(|l| l["artifact-type"] == FOREIGN)
            .collect();
        assert_eq!(foreign.len(), 200, "{kind:?}");
        for entry in foreign {
            assert_eq!(entry["format"], Value::Null, "{entry:#}");
            assert!(
                entry["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("not fetched")),
                "{entry:#}"
            );
        }
        let fetched: usize = paths.iter().map(|p| gets(&proxy, p)).sum();
        assert_eq!(fetched, 0, "{kind:?}: foreign manifests were fetched");
        assert!(
            measured.peak_rss <= PROGRAM,
            "{kind:?}: ls peak RSS {} is more than the program's {}: foreign manifests were held",
            mib(measured.peak_rss),
            mib(PROGRAM)
        );
    }
}

/// A proxy in front of `image`'s registry listing, beside its referrers, another tool's OCI index
/// with a `subject` (listed as an index) and a foreign manifest just over 4 MiB (listed with an
/// image config artifact type, as a manifest without `artifactType` is), and serving both: the
/// proxy and their digests.
fn foreign_index_and_manifest_over_4_mib(image: &Image) -> (Proxy, [String; 2]) {
    let subject = image.subject();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": FOREIGN,
        "manifests": [],
        "subject": subject,
    }))
    .unwrap();
    let config_type = "application/vnd.oci.image.config.v1+json";
    let big_size = MAX_MANIFEST + 1;
    let big = foreign_manifest(&subject, None, 0, big_size);
    let (index_digest, big_digest) = (sha256(&index), sha256(&big));
    let entries = vec![
        json!({"mediaType": OCI_INDEX, "digest": index_digest, "size": index.len(), "artifactType": FOREIGN}),
        json!({"mediaType": OCI_MANIFEST, "digest": big_digest, "size": big_size, "artifactType": config_type}),
    ];
    let mut served = Served::new();
    served.insert(
        manifest_path(&index_digest),
        (OCI_INDEX, Box::new(move || index.clone())),
    );
    served.insert(
        manifest_path(&big_digest),
        (OCI_MANIFEST, Box::new(move || big.clone())),
    );
    let proxy = image.proxy_listing(entries, |plan| serve_manifests(plan, Arc::new(served)));
    (proxy, [index_digest, big_digest])
}

// ---------------------------------------------------------------------------------------------
// Item 6: one foreign referrer blocks every read.
// ---------------------------------------------------------------------------------------------

/// Item 6: the listing holds, beside the image's 8 referrers, another tool's OCI index with a
/// `subject` (listed as an index) and a foreign manifest just over 4 MiB (listed with an image
/// config artifact type, as a manifest without `artifactType` is). Both used to be fetched as
/// image manifests and counted as unreadable attestations: `verify` exit 3. Now neither is
/// fetched: `verify` verifies all 8 (exit 0), `download` and the analyzer write exactly the input
/// SBOMs with no warning about them, and `ls` lists them as other referrers with the reason.
#[test]
fn a_foreign_index_or_a_foreign_manifest_over_4_mib_blocks_nothing() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::signed(kind) else {
            return;
        };
        let (proxy, [index_digest, big_digest]) = foreign_index_and_manifest_over_4_mib(&image);

        let verified = image.verify(&proxy);
        let report = text(&verified);
        assert_eq!(
            verified.status.code(),
            Some(0),
            "{kind:?}: verify:\n{report}"
        );
        assert!(
            report.contains("all 8 attestation(s) verified")
                && report.contains("2 other referrer(s) skipped"),
            "{kind:?}:\n{report}"
        );

        let out = image.tmp.path().join("out");
        let downloaded = image.download(&proxy, &out);
        let report = text(&downloaded);
        assert_eq!(
            downloaded.status.code(),
            Some(0),
            "{kind:?}: download:\n{report}"
        );
        assert!(files(&out) == image.good(), "{kind:?}:\n{report}");
        assert!(
            !report.contains(&index_digest) && !report.contains(&big_digest),
            "{kind:?}: download reported a foreign referrer:\n{report}"
        );

        let analyzed_dir = image.tmp.path().join("analyzed");
        let analyzed = image.analyzer(&proxy, &analyzed_dir.join("layers"));
        let report = text(&analyzed);
        assert_eq!(
            analyzed.status.code(),
            Some(0),
            "{kind:?}: analyzer:\n{report}"
        );
        assert!(files(&analyzed_dir) == image.good(), "{kind:?}:\n{report}");
        assert!(
            report.contains("from verified attestations"),
            "{kind:?}:\n{report}"
        );

        let listed: Vec<Value> = serde_json::from_str(&ok(image.ls(&proxy))).unwrap();
        assert_eq!(listed.len(), 10, "{kind:?}: {listed:#?}");
        for digest in [&index_digest, &big_digest] {
            let entry = listed
                .iter()
                .find(|l| l["manifest-digest"] == digest.as_str())
                .unwrap_or_else(|| panic!("{digest} is not listed"));
            assert_eq!(entry["format"], Value::Null, "{entry:#}");
            assert!(
                entry["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("not fetched")),
                "{entry:#}"
            );
            assert_eq!(
                gets(&proxy, &manifest_path(digest)),
                0,
                "{kind:?}: {digest} was fetched:\n{}",
                proxy.summary()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 10b: one referrer listed a thousand times.
// ---------------------------------------------------------------------------------------------

/// Item 10b: the listing holds 1000 entries, 993 of them copies of one attestation's. `verify`
/// used to fetch and verify each (2,005 requests) and report "all 1000 attestation(s)
/// verified". It reports the 8 distinct ones, fetching each referrer manifest and each blob once.
#[test]
fn a_referrer_listed_1000_times_is_fetched_verified_and_counted_once() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::signed(kind) else {
            return;
        };
        let target = image.attestation(NODE, "node", CDX);
        let entry = image.listing()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == target.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{target} is not in the registry's listing"));
        let proxy = image.proxy_listing(vec![entry; 1000 - 8], |plan| plan);
        let verified = image.verify(&proxy);
        let report = text(&verified);
        assert_eq!(verified.status.code(), Some(0), "{kind:?}:\n{report}");
        assert!(
            report.contains("all 8 attestation(s) verified"),
            "{kind:?}: not the true count:\n{report}"
        );
        assert_eq!(lines_with(&report, "verified  ").len(), 8, "{report}");
        for digest in image.referrer_digests() {
            assert_eq!(
                gets(&proxy, &manifest_path(&digest)),
                1,
                "{kind:?}: {digest}:\n{}",
                proxy.summary()
            );
            let blob = image.layer_of(&digest)["digest"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(gets(&proxy, &format!("/v2/{REPO}/blobs/{blob}")), 1);
        }
        eprintln!(
            "{kind:?}: 1000 listed, 8 distinct: verify sent {} request(s)",
            proxy.requests().len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Item 9 (first part): a fetch failure is not a verification failure.
// ---------------------------------------------------------------------------------------------

/// Item 9: the registry answers 503 to every referrer manifest (after the client's retries), then
/// one attestation's blob is cut short (its `Content-Length` promises the whole blob, half is
/// sent). Neither is "failed verification" (which reads as tampering): `verify` exits 1 and says
/// how many "could not be read from the registry", marking each `NOT READ`; `download` of the
/// 503 case writes nothing and says the same (exit 1, not 3 or 4); with the blob cut short it
/// writes every other SBOM and names the one not read, never as "not signed by a trusted key".
#[test]
fn a_fetch_failure_is_not_a_verification_failure() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::signed(kind) else {
            return;
        };
        let referrers: Vec<String> = image
            .referrer_digests()
            .iter()
            .map(|d| manifest_path(d))
            .collect();
        let unavailable = Proxy::start(
            &image.registry.host,
            Plan::new().on(
                move |r| r.method == "GET" && referrers.contains(&r.path().to_string()),
                |_, _| Action::status(503),
            ),
        );
        let verified = image.verify(&unavailable);
        let report = text(&verified);
        assert_eq!(
            verified.status.code(),
            Some(1),
            "{kind:?}: verify:\n{report}"
        );
        assert!(
            error_line(&report)
                .contains("8 of 8 attestation(s) could not be read from the registry"),
            "{kind:?}:\n{report}"
        );
        assert!(
            !report.contains("failed verification"),
            "{kind:?}:\n{report}"
        );
        assert_eq!(
            lines_with(&report, "NOT READ  ").len(),
            8,
            "{kind:?}:\n{report}"
        );

        let out = image.tmp.path().join("out-503");
        let downloaded = image.download(&unavailable, &out);
        let report = text(&downloaded);
        assert_eq!(
            downloaded.status.code(),
            Some(1),
            "{kind:?}: download:\n{report}"
        );
        assert!(
            // The 7 SBOM attestations (the image signature is not one).
            error_line(&report).contains("7 attestation(s) could not be read from the registry"),
            "{kind:?}:\n{report}"
        );
        assert!(
            !report.contains("failed verification")
                && !report.contains("not signed by a trusted key"),
            "{kind:?}:\n{report}"
        );
        assert!(files(&out).is_empty(), "{kind:?}: written:\n{report}");

        let target = image.attestation(NODE, "node", CDX);
        let layer = image.layer_of(&target);
        let size = layer["size"].as_u64().unwrap();
        let blob_path = format!("/v2/{REPO}/blobs/{}", layer["digest"].as_str().unwrap());
        let cut = Proxy::start(
            &image.registry.host,
            Plan::new().on(get(blob_path.clone()), move |_, _| Action::Stream {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                length: Some(size),
                limit: size / 2,
            }),
        );
        let verified = image.verify(&cut);
        let report = text(&verified);
        assert_eq!(
            verified.status.code(),
            Some(1),
            "{kind:?}: verify:\n{report}"
        );
        assert!(
            error_line(&report)
                .contains("1 of 8 attestation(s) could not be read from the registry"),
            "{kind:?}:\n{report}"
        );
        let not_read = lines_with(&report, "NOT READ  ");
        assert!(
            not_read.len() == 1 && not_read[0].contains(&target),
            "{kind:?}:\n{report}"
        );
        assert!(
            !report.contains("failed verification"),
            "{kind:?}:\n{report}"
        );

        let out = image.tmp.path().join("out-cut");
        let downloaded = image.download(&cut, &out);
        let report = text(&downloaded);
        assert_eq!(
            downloaded.status.code(),
            Some(0),
            "{kind:?}: download:\n{report}"
        );
        let mut good = image.good();
        good.retain(|path, _| !path.ends_with("node-engine/node/sbom.cdx.json"));
        assert!(files(&out) == good, "{kind:?}: written:\n{report}");
        assert!(
            report.contains("1 attestation(s) left out: could not be read from the registry"),
            "{kind:?}:\n{report}"
        );
        let not_read = lines_with(&report, "Warning: not read ");
        assert!(
            not_read.len() == 1 && not_read[0].contains(&target),
            "{kind:?}:\n{report}"
        );
        assert!(
            !report.contains("not signed by a trusted key"),
            "{kind:?}:\n{report}"
        );
    }
}

/// Item 6, with nothing signed: an unsigned image whose only referrers are another tool's (the
/// index and the manifest over 4 MiB above). They are not SBOM attestations, so they do not stand
/// between the image and its SBOM layer: the analyzer restores from the SBOM layer, as for any
/// unsigned image (it used to fetch them, count them as attestations none of which verified, and
/// exit 35); neither is fetched.
#[test]
fn foreign_referrers_never_stand_between_an_unsigned_image_and_its_sbom_layer() {
    for kind in [Kind::Ferro, Kind::Distribution] {
        let Some(image) = Image::pushed(kind) else {
            return;
        };
        let (proxy, foreign) = foreign_index_and_manifest_over_4_mib(&image);
        let layers = image.tmp.path().join("analyzed/layers");
        let analyzed = image.analyzer(&proxy, &layers);
        let report = text(&analyzed);
        assert_eq!(
            analyzed.status.code(),
            Some(0),
            "{kind:?}: analyzer:\n{report}"
        );
        assert!(
            report.contains("from the SBOM layer"),
            "{kind:?}: not restored from the SBOM layer:\n{report}"
        );
        assert!(
            !cnb_attest_tests::sbom_files(&layers).is_empty(),
            "{kind:?}: nothing restored:\n{report}"
        );
        for digest in &foreign {
            assert_eq!(
                gets(&proxy, &manifest_path(digest)),
                0,
                "{kind:?}: {digest} was fetched:\n{}",
                proxy.summary()
            );
        }
    }
}
