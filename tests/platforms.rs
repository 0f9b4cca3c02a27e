//! Multi-platform images: an image index of linux/amd64 (node-express) and linux/arm64
//! (spring-boot), built by `cnb-fixtures` and pushed whole with `skopeo copy --all`, signed in one
//! `cnb-attest sign` run (each platform with its own SBOMs, the index and both manifests signed),
//! then verified, listed and downloaded per platform, on Distribution (tag-schema fallback), ferro
//! (Referrers API) and an OCI layout. What was stored is checked from outside: the registries'
//! listings read with curl, the layout's `index.json` and blobs read with serde_json alone.

use std::process::{Command, Output};

use cnb_attest_tests::platforms::{
    delete_manifest, layout_referrers, push_all, two_platforms, unlist_layout_referrers,
    TwoPlatforms,
};
use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{bin, key_pair, ok, run, sbom_files, text};
use serde_json::Value;

const REPO: &str = "team/multi";

struct Flow {
    tmp: tempfile::TempDir,
    fixture: TwoPlatforms,
    registry: Option<Registry>,
    /// The index as named: `<host>/team/multi:latest` or `oci:<dir>:latest`.
    target: String,
}

impl Flow {
    fn new(kind: Option<Kind>) -> Option<Flow> {
        let registry = match kind {
            Some(kind) => Some(Registry::start(kind)?),
            None => None,
        };
        let tmp = tempfile::tempdir().unwrap();
        let fixture = two_platforms(tmp.path());
        key_pair(&tmp.path().join("keys"), "");
        let target = match &registry {
            Some(r) => {
                let reference = push_all(r, &fixture.layout, REPO, "latest");
                // skopeo (an independent reader) sees the index, digest kept.
                assert_eq!(r.digest_of(&reference), fixture.index);
                reference
            }
            None => format!("oci:{}:latest", fixture.layout.display()),
        };
        Some(Flow {
            tmp,
            fixture,
            registry,
            target,
        })
    }

    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("COSIGN_PASSWORD", "")
            .env_remove("CNB_TARGET_OS")
            .env_remove("CNB_TARGET_ARCH")
            .env_remove("CNB_TARGET_ARCH_VARIANT")
            .env_remove("CNB_LAYERS_DIR");
        if let Some(r) = &self.registry {
            command
                .env("CNB_REGISTRY_AUTH", r.cnb_registry_auth())
                .env("CNB_INSECURE_REGISTRIES", &r.host)
                .env("DOCKER_CONFIG", "/nonexistent");
        }
        command
    }

    fn cli(&self, args: &[&str]) -> Output {
        run(self.env(&mut Command::new(bin("cnb-attest"))).args(args))
    }

    fn key(&self) -> String {
        self.tmp
            .path()
            .join("keys/cosign.key")
            .display()
            .to_string()
    }

    fn public(&self) -> String {
        self.tmp
            .path()
            .join("keys/cosign.pub")
            .display()
            .to_string()
    }

    /// The target pinned to `digest` (a platform manifest or the index).
    fn pinned(&self, digest: &str) -> String {
        match &self.registry {
            Some(r) => format!("{}/{REPO}@{digest}", r.host),
            None => format!("oci:{}@{digest}", self.fixture.layout.display()),
        }
    }

    /// The referrer manifests listed for `digest`, as an independent reader finds them.
    fn listed(&self, digest: &str) -> Vec<String> {
        match &self.registry {
            // No fallback index yet: nothing listed.
            Some(r)
                if r.kind == Kind::Distribution
                    && r.curl(
                        &format!("/v2/{REPO}/manifests/sha256-{}", &digest[7..]),
                        "application/vnd.oci.image.index.v1+json",
                    )
                    .0 == 404 =>
            {
                Vec::new()
            }
            Some(r) => r
                .listing(REPO, digest)
                .iter()
                .map(|d| d["digest"].as_str().unwrap().to_string())
                .collect(),
            None => layout_referrers(&self.fixture.layout, digest),
        }
    }

    /// Removes every attestation of `digest` from where readers look.
    fn remove_attestations(&self, digest: &str) {
        match &self.registry {
            None => assert!(unlist_layout_referrers(&self.fixture.layout, digest) > 0),
            Some(r) if r.kind == Kind::Distribution => {
                // The `sha256-<hex>` fallback index: deleted by its digest, the tag goes with it.
                let (status, body) = r.curl(
                    &format!("/v2/{REPO}/manifests/sha256-{}", &digest[7..]),
                    "application/vnd.oci.image.index.v1+json",
                );
                assert_eq!(status, 200, "{body}");
                let index = cnb_attest_tests::sha256(body.as_bytes());
                assert_eq!(delete_manifest(r, REPO, &index), 202);
            }
            Some(r) => {
                for referrer in self.listed(digest) {
                    assert_eq!(delete_manifest(r, REPO, &referrer), 202, "{referrer}");
                }
            }
        }
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn sboms_and_signatures(report: &Value) -> (Vec<String>, Vec<String>) {
    let mut sboms = Vec::new();
    let mut signatures = Vec::new();
    for a in report["attestations"].as_array().unwrap() {
        let digest = a["manifest-digest"].as_str().unwrap().to_string();
        if a["predicate-type"] == cnb_attest_tests::COSIGN_SIGN_V1 {
            signatures.push(digest);
        } else {
            sboms.push(digest);
        }
    }
    sboms.sort();
    signatures.sort();
    (sboms, signatures)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every verdict's subjects name `digest` and none names `other`.
fn about_only(verdicts: &Value, digest: &str, other: &str) {
    let verdicts = verdicts.as_array().unwrap();
    assert!(!verdicts.is_empty());
    for v in verdicts {
        let shown = v.to_string();
        assert!(shown.contains(&digest[7..]), "{shown}");
        assert!(!shown.contains(&other[7..]), "{shown}");
    }
}

fn exit_code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn multi_platform_flow(flow: &Flow) {
    let f = &flow.fixture;
    let amd64 = f.amd64.layers.display().to_string();
    let arm64 = f.arm64.layers.display().to_string();

    // A plain layers directory for a two-platform index is ambiguous: refused before anything is
    // stored, the platforms listed.
    let plain = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &amd64,
        "--key",
        &flow.key(),
    ]);
    assert_eq!(exit_code(&plain), 2, "{}", text(&plain));
    for wanted in [
        "linux/amd64",
        "linux/arm64",
        &f.amd64.digest,
        &f.arm64.digest,
    ] {
        assert!(text(&plain).contains(wanted), "{}", text(&plain));
    }
    assert!(flow.listed(&f.amd64.digest).is_empty() && flow.listed(&f.index).is_empty());
    // A platform the index does not hold: refused, listing what it holds.
    let missing = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &format!("linux/s390x={amd64}"),
        "--key",
        &flow.key(),
    ]);
    assert_eq!(exit_code(&missing), 2, "{}", text(&missing));
    assert!(text(&missing).contains("linux/s390x") && text(&missing).contains("linux/arm64"));

    // One run: both platforms, each with its own SBOMs, and the index signed too.
    let signed = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &format!("linux/amd64={amd64}"),
        "--layers",
        &format!("linux/arm64={arm64}"),
        "--key",
        &flow.key(),
        "--json",
    ]);
    let report = json(&signed);
    assert!(signed.status.success(), "{}", text(&signed));
    assert_eq!(report["index"]["descriptor"]["digest"], f.index.as_str());
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{report:#}");
    for (entry, platform) in platforms.iter().zip([&f.amd64, &f.arm64]) {
        assert_eq!(entry["platform"], platform.name.as_str());
        assert_eq!(entry["report"]["image-digest"], platform.digest.as_str());
        let (sboms, signatures) = sboms_and_signatures(&entry["report"]);
        assert_eq!(signatures.len(), 1, "{entry:#}");
        assert_eq!(
            sboms.len(),
            sbom_files(&platform.layers).len(),
            "{}: one attestation per SBOM file",
            platform.name
        );
        // One listing update for this manifest (Distribution: its `sha256-<hex>` index).
        if flow
            .registry
            .as_ref()
            .is_some_and(|r| r.kind == Kind::Distribution)
        {
            assert_eq!(entry["report"]["index-writes"], 1, "{entry:#}");
        }
        // Listed where readers look, for this manifest.
        let mut all = sboms.clone();
        all.extend(signatures);
        assert_eq!(sorted(flow.listed(&platform.digest)), sorted(all));
    }
    let (sboms, signatures) = sboms_and_signatures(&report["index-signature"]);
    assert_eq!((sboms.len(), signatures.len()), (0, 1), "{report:#}");
    assert_eq!(report["index-signature"]["image-digest"], f.index.as_str());
    assert_eq!(flow.listed(&f.index), signatures);

    // One platform: only its SBOMs, all verified.
    let arm = flow.cli(&[
        "verify",
        &flow.target,
        "--platform",
        "linux/arm64",
        "--key",
        &flow.public(),
        "--json",
    ]);
    assert!(arm.status.success(), "{}", text(&arm));
    let verdicts = json(&arm);
    about_only(&verdicts, &f.arm64.digest, &f.amd64.digest);
    assert_eq!(
        verdicts.as_array().unwrap().len(),
        sbom_files(&f.arm64.layers).len() + 1
    );
    assert!(verdicts
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["failure"].is_null()));

    // Download one platform: its SBOMs byte for byte.
    let out = flow.tmp.path().join("arm64-out");
    ok(flow.cli(&[
        "download",
        &flow.target,
        "--platform",
        "linux/arm64",
        "--key",
        &flow.public(),
        "-o",
        out.to_str().unwrap(),
    ]));
    assert_eq!(sbom_files(&out.join("layers")), sbom_files(&f.arm64.layers));

    // The analyzer takes the platform from the lifecycle's target env.
    let restored = flow.tmp.path().join("analyzer-layers");
    std::fs::create_dir_all(&restored).unwrap();
    let analyzer = |target_env: bool| {
        let mut command = Command::new(bin("analyzer"));
        flow.env(&mut command)
            .arg("-previous-image")
            .arg(&flow.target)
            .arg("-layers")
            .arg(&restored)
            .arg("-key")
            .arg(flow.public())
            .arg("-strict");
        if target_env {
            command
                .env("CNB_TARGET_OS", "linux")
                .env("CNB_TARGET_ARCH", "arm64");
        }
        run(&mut command)
    };
    ok(analyzer(true));
    assert_eq!(sbom_files(&restored), sbom_files(&f.arm64.layers));

    // Without a platform, nothing is chosen silently: refused, the platforms listed.
    let refused = flow.tmp.path().join("refused");
    for out in [
        flow.cli(&[
            "download",
            &flow.target,
            "--key",
            &flow.public(),
            "-o",
            refused.to_str().unwrap(),
        ]),
        analyzer(false),
    ] {
        assert_eq!(exit_code(&out), 2, "{}", text(&out));
        assert!(
            text(&out).contains("linux/amd64") && text(&out).contains("linux/arm64"),
            "{}",
            text(&out)
        );
    }
    assert!(!refused.exists(), "nothing written");

    // Every platform, reported one by one (the index's own signature first).
    let all = flow.cli(&["verify", &flow.target, "--key", &flow.public(), "--json"]);
    assert!(all.status.success(), "{}", text(&all));
    let entries = json(&all);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert_eq!(entries[0]["index"], true);
    assert_eq!(entries[0]["digest"], f.index.as_str());
    assert_eq!(entries[0]["verdicts"].as_array().unwrap().len(), 1);
    for (entry, platform) in entries[1..].iter().zip([&f.amd64, &f.arm64]) {
        assert_eq!(entry["platform"], platform.name.as_str());
        assert_eq!(entry["digest"], platform.digest.as_str());
        assert_eq!(
            entry["verified-sboms"].as_u64().unwrap() as usize,
            sbom_files(&platform.layers).len()
        );
    }
    let text_report = flow.cli(&["verify", &flow.target, "--key", &flow.public()]);
    let shown = text(&text_report);
    assert!(text_report.status.success(), "{shown}");
    assert!(
        shown.contains("== platform linux/amd64")
            && shown.contains("== platform linux/arm64")
            && shown.contains("== image index"),
        "{shown}"
    );
    let listing = flow.cli(&["ls", &flow.target, "--json"]);
    let listing = json(&listing);
    assert_eq!(listing.as_array().unwrap().len(), 3, "{listing:#}");

    // The index's signature verifies on the index's digest alone.
    let index_only = flow.cli(&["verify", &flow.pinned(&f.index), "--key", &flow.public()]);
    assert!(index_only.status.success(), "{}", text(&index_only));

    // A platform manifest is addressable by its own digest.
    let child = flow.cli(&[
        "verify",
        &flow.pinned(&f.arm64.digest),
        "--key",
        &flow.public(),
        "--json",
    ]);
    assert!(child.status.success(), "{}", text(&child));
    about_only(&json(&child), &f.arm64.digest, &f.amd64.digest);

    // amd64's attestations gone: every platform required fails, naming it.
    flow.remove_attestations(&f.amd64.digest);
    let required = flow.cli(&[
        "verify",
        &flow.target,
        "--key",
        &flow.public(),
        "--require-all-platforms",
    ]);
    assert_eq!(exit_code(&required), 3, "{}", text(&required));
    let shown = text(&required);
    let error = shown
        .lines()
        .find(|l| l.contains("without a verified SBOM"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        error.contains("linux/amd64") && !error.contains("linux/arm64"),
        "{shown}"
    );
    // Without the requirement, what is there still verifies.
    let lenient = flow.cli(&["verify", &flow.target, "--key", &flow.public()]);
    assert!(lenient.status.success(), "{}", text(&lenient));
}

#[test]
fn a_multi_platform_layout_is_signed_verified_and_downloaded_per_platform() {
    let flow = Flow::new(None).unwrap();
    multi_platform_flow(&flow);
}

#[test]
fn a_multi_platform_image_on_distribution_with_the_fallback_index() {
    let Some(flow) = Flow::new(Some(Kind::Distribution)) else {
        return;
    };
    multi_platform_flow(&flow);
}

#[test]
fn a_multi_platform_image_on_ferro_with_the_referrers_api() {
    let Some(flow) = Flow::new(Some(Kind::Ferro)) else {
        return;
    };
    multi_platform_flow(&flow);
}

#[test]
fn a_per_platform_directory_signs_every_platform_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let f = two_platforms(tmp.path());
    let dir = tmp.path().join("per-platform");
    std::fs::create_dir(&dir).unwrap();
    for (platform, name) in [(&f.amd64, "linux-amd64"), (&f.arm64, "linux-arm64")] {
        std::fs::rename(&platform.layers, dir.join(name)).unwrap();
    }
    let target = format!("oci:{}:latest", f.layout.display());
    // --platform narrows the run to one platform of the directory.
    let one = run(Command::new(bin("cnb-attest")).args([
        "sign",
        &target,
        "--layers",
        dir.to_str().unwrap(),
        "--platform",
        "linux/arm64",
        "--json",
        "--throwaway-key-dir",
        tmp.path().to_str().unwrap(),
    ]));
    assert!(one.status.success(), "{}", text(&one));
    let report = json(&one);
    assert_eq!(report["platforms"].as_array().unwrap().len(), 1);
    assert_eq!(report["platforms"][0]["platform"], "linux/arm64");
    assert!(layout_referrers(&f.layout, &f.amd64.digest).is_empty());
    // Without it, every platform the directory holds.
    let both = run(Command::new(bin("cnb-attest")).args([
        "sign",
        &target,
        "--layers",
        dir.to_str().unwrap(),
        "--json",
        "--throwaway-key-dir",
        tmp.path().to_str().unwrap(),
    ]));
    assert!(both.status.success(), "{}", text(&both));
    let report = json(&both);
    assert_eq!(report["platforms"].as_array().unwrap().len(), 2);
    assert!(!layout_referrers(&f.layout, &f.amd64.digest).is_empty());
    // A second run finds everything already present.
    assert_eq!(
        report["platforms"][1]["report"]["pushed"], 0,
        "arm64 was signed by the first run: {report:#}"
    );
}

#[test]
fn the_index_signature_is_a_cosign_sign_v1_bundle_about_the_index_that_sigstore_verifies() {
    let Some(modules) = cnb_attest_tests::node_modules() else {
        return;
    };
    let flow = Flow::new(None).unwrap();
    let f = &flow.fixture;
    ok(flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &format!("linux/amd64={}", f.amd64.layers.display()),
        "--layers",
        &format!("linux/arm64={}", f.arm64.layers.display()),
        "--key",
        &flow.key(),
    ]));
    // The one referrer of the index, read from the layout's blobs with serde_json alone.
    let referrers = layout_referrers(&f.layout, &f.index);
    assert_eq!(referrers.len(), 1, "{referrers:?}");
    let blob = |digest: &str| f.layout.join("blobs/sha256").join(&digest[7..]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(&referrers[0])).unwrap()).unwrap();
    assert_eq!(manifest["subject"]["digest"], f.index.as_str());
    let bundle_path = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_path).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["predicateType"], cnb_attest_tests::COSIGN_SIGN_V1);
    let subjects = statement["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 1, "{statement:#}");
    assert_eq!(subjects[0]["digest"]["sha256"], &f.index[7..]);
    // @sigstore/verify (independent of this project) verifies the bundle with the public key.
    let out = ok(run(Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(cnb_attest_tests::oracle("verify_bundle.js"))
        .arg(flow.public())
        .arg(&bundle_path)));
    assert!(out.contains("verified "), "{out}");
}

#[test]
fn rebase_refuses_an_index_of_several_platforms_and_the_analyzer_treats_a_missing_platform_as_a_first_build(
) {
    let flow = Flow::new(None).unwrap();
    let f = &flow.fixture;
    // Rebasing indexes is out of scope: refused by the same typed error, the platforms listed.
    let rebase = flow.cli(&[
        "rebase",
        "--previous-image",
        &flow.target,
        "--image",
        &flow.target,
        "--verify-key",
        &flow.public(),
        "--key",
        &flow.key(),
    ]);
    assert_eq!(exit_code(&rebase), 2, "{}", text(&rebase));
    let mut rebaser = Command::new(bin("rebaser"));
    let rebaser = run(flow
        .env(&mut rebaser)
        .args(["-previous-image", &flow.target, "-image", &flow.target])
        .args(["-verify-key", &flow.public(), "-key", &flow.key()]));
    assert_eq!(exit_code(&rebaser), 74, "{}", text(&rebaser));
    for out in [&rebase, &rebaser] {
        for wanted in [
            "linux/amd64",
            "linux/arm64",
            &f.amd64.digest,
            &f.arm64.digest,
        ] {
            assert!(text(out).contains(wanted), "{}", text(out));
        }
    }

    // The analyzer, for a platform the previous image does not have: nothing to restore (a first
    // build for that platform), a failure only under -strict. -platform wins over the target env.
    let layers = flow.tmp.path().join("s390x-layers");
    std::fs::create_dir_all(&layers).unwrap();
    let analyzer = |strict: bool| {
        let mut command = Command::new(bin("analyzer"));
        flow.env(&mut command)
            .env("CNB_TARGET_OS", "linux")
            .env("CNB_TARGET_ARCH", "arm64")
            .arg("-previous-image")
            .arg(&flow.target)
            .arg("-platform")
            .arg("linux/s390x")
            .arg("-layers")
            .arg(&layers)
            .arg("-key")
            .arg(flow.public());
        if strict {
            command.arg("-strict");
        }
        run(&mut command)
    };
    let lenient = analyzer(false);
    assert!(lenient.status.success(), "{}", text(&lenient));
    assert!(text(&lenient).contains("linux/s390x"), "{}", text(&lenient));
    assert_eq!(exit_code(&analyzer(true)), 36);
    assert!(!layers.join("sbom").exists(), "nothing restored");
    // A bad platform is a usage error.
    let bad = flow.cli(&["ls", &flow.target, "--platform", "linux"]);
    assert_eq!(exit_code(&bad), 2, "{}", text(&bad));
}

/// The edges a review found: an image signature alone does not make a platform "verified" for
/// `--require-all-platforms`; `--platform` on a single manifest must be its config's platform;
/// two platform names for one manifest never attest it twice; a per-platform directory's entries
/// that are not layers directories are ignored.
#[test]
fn platform_edges_are_refused_or_counted_strictly() {
    let flow = Flow::new(None).unwrap();
    let f = &flow.fixture;
    let amd64 = f.amd64.layers.display().to_string();
    let arm64 = f.arm64.layers.display().to_string();

    // linux/arm64 and linux/arm64/v8 are one manifest: refused before anything is stored.
    let twice = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &format!("linux/arm64={arm64}"),
        "--layers",
        &format!("linux/arm64/v8={amd64}"),
        "--key",
        &flow.key(),
    ]);
    assert_eq!(exit_code(&twice), 2, "{}", text(&twice));
    assert!(
        text(&twice).contains("same manifest") && text(&twice).contains(&f.arm64.digest),
        "{}",
        text(&twice)
    );
    assert!(flow.listed(&f.arm64.digest).is_empty());

    let signed = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        &format!("linux/amd64={amd64}"),
        "--layers",
        &format!("linux/arm64={arm64}"),
        "--key",
        &flow.key(),
        "--json",
    ]);
    assert!(signed.status.success(), "{}", text(&signed));
    let report = json(&signed);
    let (sboms, signatures) = sboms_and_signatures(&report["platforms"][0]["report"]);
    assert_eq!(report["platforms"][0]["platform"], "linux/amd64");
    assert!(!sboms.is_empty() && signatures.len() == 1);

    // amd64 keeps its image signature, loses its SBOM attestations.
    let path = f.layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|d| !sboms.iter().any(|s| d["digest"] == s.as_str()));
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    assert_eq!(flow.listed(&f.amd64.digest), signatures);
    let all = flow.cli(&[
        "verify",
        &flow.target,
        "--require-all-platforms",
        "--key",
        &flow.public(),
    ]);
    assert_eq!(exit_code(&all), 3, "{}", text(&all));
    assert!(
        text(&all).contains("without a verified SBOM attestation: linux/amd64"),
        "{}",
        text(&all)
    );
    assert!(
        !text(&all).contains("attestation: linux/arm64"),
        "{}",
        text(&all)
    );

    // A single manifest named by digest: --platform must be its own.
    let child = format!("oci:{}@{}", f.layout.display(), f.amd64.digest);
    let wrong = flow.cli(&[
        "verify",
        &child,
        "--platform",
        "linux/arm64",
        "--key",
        &flow.public(),
    ]);
    assert_eq!(exit_code(&wrong), 2, "{}", text(&wrong));
    assert!(
        text(&wrong).contains("linux/arm64") && text(&wrong).contains("linux/amd64"),
        "{}",
        text(&wrong)
    );
    let right = flow.cli(&[
        "verify",
        &child,
        "--platform",
        "linux/amd64",
        "--key",
        &flow.public(),
    ]);
    assert!(right.status.success(), "{}", text(&right));

    // A per-platform directory: an entry named like a platform but holding no sbom/ is not one.
    let dir = flow.tmp.path().join("per-platform");
    std::fs::create_dir_all(dir.join("tmp-old")).unwrap();
    cnb_attest_tests::copy_dir(&f.arm64.layers, &dir.join("linux-arm64"));
    let only = flow.cli(&[
        "sign",
        &flow.target,
        "--layers",
        dir.to_str().unwrap(),
        "--key",
        &flow.key(),
        "--json",
    ]);
    assert!(only.status.success(), "{}", text(&only));
    let report = json(&only);
    assert_eq!(
        report["platforms"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    assert_eq!(report["platforms"][0]["platform"], "linux/arm64");
}
