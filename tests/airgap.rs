//! Air-gapped transfer: `cnb-attest export` writes an image with every referrer into an OCI layout
//! bundle, `verify oci:<bundle>` works with the registry gone, `cnb-attest import` pushes it into
//! another registry with every digest kept. Real registries (Distribution: the tag-schema
//! fallback; ferro-oci-server: the Referrers API); skopeo and curl check what is stored.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{bin, fresh_example, key_pair, ok, run, sbom_files, text};
use serde_json::Value;

fn with_env<'a>(command: &'a mut Command, registries: &[&Registry]) -> &'a mut Command {
    let auth: serde_json::Map<String, Value> = registries
        .iter()
        .flat_map(|r| {
            serde_json::from_str::<serde_json::Map<String, Value>>(&r.cnb_registry_auth()).unwrap()
        })
        .collect();
    let insecure: Vec<&str> = registries.iter().map(|r| r.host.as_str()).collect();
    command
        .env("CNB_REGISTRY_AUTH", Value::Object(auth).to_string())
        .env("CNB_INSECURE_REGISTRIES", insecure.join(","))
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("CNB_ATTEST_DEBUG")
}

fn cli(args: &[&str], registries: &[&Registry]) -> Output {
    run(with_env(
        Command::new(bin("cnb-attest"))
            .args(args)
            .env("COSIGN_PASSWORD", ""),
        registries,
    ))
}

fn json(out: Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A signed image on `registry`: `(reference, digest, keys dir, layers dir)`.
fn signed(
    registry: &Registry,
    dir: &Path,
    repo: &str,
    extra: &[&str],
) -> (String, String, std::path::PathBuf, std::path::PathBuf) {
    let (layers, image) = fresh_example(dir);
    key_pair(&dir.join("k"), "");
    let reference = registry.push_layout(&image, repo, "1.0");
    let digest = registry.digest_of(&reference);
    let key = dir.join("k/cosign.key");
    let mut args = vec![
        "sign",
        &reference,
        "--json",
        "--layers",
        layers.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend(extra);
    let report = json(cli(&args, &[registry]));
    assert!(report["pushed"].as_u64().unwrap() >= 8, "{report:#}");
    (reference, digest, dir.join("k"), layers)
}

fn digests(listing: &[Value]) -> BTreeSet<String> {
    listing
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect()
}

fn verify(target: &str, key: &Path, registries: &[&Registry]) -> Output {
    cli(
        &["verify", target, "--key", key.to_str().unwrap()],
        registries,
    )
}

fn assert_verified(out: &Output, at_least: usize) {
    let shown = text(out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.matches("verified  sha256:").count() >= at_least,
        "{shown}"
    );
}

fn download_matches(target: &str, key: &Path, layers: &Path, out: &Path, registry: &Registry) {
    let result = cli(
        &[
            "download",
            target,
            "--key",
            key.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[registry],
    );
    assert!(result.status.success(), "{}", text(&result));
    assert_eq!(sbom_files(&out.join("layers")), sbom_files(layers));
}

/// Whether skopeo is here; a missing skopeo fails under CI (`missing` asserts) and skips locally.
fn skopeo_ok() -> bool {
    cnb_attest_tests::which("skopeo")
        .or_else(|| cnb_attest_tests::missing("skopeo"))
        .is_some()
}

/// Distribution (fallback index) → bundle directory → the registry killed → offline verify (with
/// the key given and with the bundle's copy of it) → ferro (Referrers API): verify and download
/// pass, every digest unchanged; importing again pushes nothing.
#[test]
fn distribution_to_ferro_through_a_directory_with_the_registry_gone() {
    if !skopeo_ok() {
        return;
    }
    let Some(mut source) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, keys, layers) = signed(&source, tmp.path(), "air/app", &[]);
    let before = digests(&source.listing("air/app", &digest));
    assert_eq!(before.len(), 8, "{before:?}");
    let bundle = tmp.path().join("bundle");
    let public = keys.join("cosign.pub");
    let report = json(cli(
        &[
            "export",
            &reference,
            "-o",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--json",
        ],
        &[&source],
    ));
    assert_eq!(report["image"]["digest"], digest.as_str(), "{report:#}");
    assert_eq!(report["written"]["referrer"], 8, "{report:#}");
    assert!(bundle.join("cnb-attest-export.json").is_file());
    // -o refuses to overwrite without --force.
    let again = cli(
        &["export", &reference, "-o", bundle.to_str().unwrap()],
        &[&source],
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("--force"), "{}", text(&again));

    source.kill();
    let target = format!("oci:{}", bundle.display());
    assert_verified(&verify(&target, &public, &[]), 8);
    // The key copy in the bundle, once its fingerprint is pinned (compared with the published one).
    let copy = bundle.join(report["trust"][0]["path"].as_str().unwrap());
    assert_eq!(
        cnb_attest_tests::sha256(&fs::read(&public).unwrap()),
        report["trust"][0]["sha256"].as_str().unwrap()
    );
    assert_verified(&verify(&target, &copy, &[]), 8);
    // Other tools read the bundle too.
    let inspected = ok(run(Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}"])
        .arg(format!("oci:{}:1.0", bundle.display()))));
    assert_eq!(inspected.trim(), digest);
    ok(run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1.0", bundle.display()))
        .arg(format!(
            "dir:{}",
            tmp.path().join("copied").display()
        ))));

    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let destination = format!("{}/air/app", ferro.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(imported["image"], digest.as_str(), "{imported:#}");
    assert_eq!(imported["pushed"]["referrer"], 8, "{imported:#}");
    assert_eq!(imported["index-writes"], 0, "{imported:#}");
    assert_eq!(imported["referrers-api"], 1, "{imported:#}");
    let on_ferro = format!("{destination}:1.0");
    assert_eq!(ferro.digest_of(&on_ferro), digest);
    assert_eq!(digests(&ferro.listing("air/app", &digest)), before);
    assert_verified(&verify(&on_ferro, &public, &[&ferro]), 8);
    download_matches(&on_ferro, &public, &layers, &tmp.path().join("out"), &ferro);

    // Twice: nothing more.
    let second = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(second["pushed"], serde_json::json!({}), "{second:#}");
    assert_eq!(second["tag-moved"], false, "{second:#}");
    assert_eq!(second["already-present"]["referrer"], 8, "{second:#}");
    assert_eq!(digests(&ferro.listing("air/app", &digest)), before);
    let shown = ok(cli(
        &["import", bundle.to_str().unwrap(), &destination],
        &[&ferro],
    ));
    assert!(shown.contains("nothing to push"), "{shown}");
}

/// ferro (Referrers API) → bundle tar → Distribution: verify and download pass, and the fallback
/// index lists every referrer (one write).
#[test]
fn ferro_to_distribution_through_a_tar() {
    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let Some(distribution) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, keys, layers) = signed(&ferro, tmp.path(), "air/tar", &[]);
    let before = digests(&ferro.listing("air/tar", &digest));
    let bundle = tmp.path().join("bundle.tar");
    let public = keys.join("cosign.pub");
    let report = json(cli(
        &[
            "export",
            &reference,
            "-o",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--json",
        ],
        &[&ferro],
    ));
    assert_eq!(report["tar"], true, "{report:#}");
    assert!(bundle.is_file());
    // The same tar every time.
    let second_tar = tmp.path().join("again.tar");
    ok(cli(
        &[
            "export",
            &reference,
            "-o",
            second_tar.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
        &[&ferro],
    ));
    assert_eq!(fs::read(&bundle).unwrap(), fs::read(&second_tar).unwrap());
    // `--force` replaces an earlier bundle tar, not a directory that is not a bundle.
    ok(cli(
        &[
            "export",
            &reference,
            "-o",
            second_tar.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--force",
        ],
        &[&ferro],
    ));
    assert!(fs::read(&bundle).unwrap() == fs::read(&second_tar).unwrap());
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("keep.rs"), "fn main() {}").unwrap();
    let refused = cli(
        &["export", &reference, "-o", src.to_str().unwrap(), "--force"],
        &[&ferro],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("not a bundle"),
        "{}",
        text(&refused)
    );
    assert_eq!(fs::read(src.join("keep.rs")).unwrap(), b"fn main() {}");

    let destination = format!("{}/moved/tar:2.0", distribution.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&distribution],
    ));
    assert_eq!(imported["index-writes"], 1, "{imported:#}");
    assert_eq!(imported["pushed"]["referrer"], before.len(), "{imported:#}");
    assert_eq!(distribution.digest_of(&destination), digest);
    assert_eq!(digests(&distribution.listing("moved/tar", &digest)), before);
    assert_verified(&verify(&destination, &public, &[&distribution]), 8);
    download_matches(
        &destination,
        &public,
        &layers,
        &tmp.path().join("out"),
        &distribution,
    );
    let second = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&distribution],
    ));
    assert_eq!(second["pushed"], serde_json::json!({}), "{second:#}");
    assert_eq!(second["index-writes"], 0, "{second:#}");
    assert_eq!(digests(&distribution.listing("moved/tar", &digest)), before);

    // The bundle's tag (1.0): created when absent; never moved off another manifest unless the
    // destination names it.
    let untagged = format!("{}/moved/tar", distribution.host);
    let created = json(cli(
        &["import", bundle.to_str().unwrap(), &untagged, "--json"],
        &[&distribution],
    ));
    assert_eq!(created["tag"], "1.0", "{created:#}");
    assert_eq!(created["tag-moved"], true, "{created:#}");
    assert_eq!(distribution.digest_of(&format!("{untagged}:1.0")), digest);
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let (status, body) =
        distribution.curl(&format!("/v2/moved/tar/manifests/{digest}"), manifest_type);
    assert_eq!(status, 200, "{body}");
    let mut other: Value = serde_json::from_str(&body).unwrap();
    other["annotations"] = serde_json::json!({"org.example.other": "yes"});
    let other = serde_json::to_vec(&other).unwrap();
    let other_digest = cnb_attest_tests::sha256(&other);
    distribution.put_manifest_with_curl("moved/tar", "1.0", &other);
    let left = json(cli(
        &["import", bundle.to_str().unwrap(), &untagged, "--json"],
        &[&distribution],
    ));
    assert_eq!(left["tag-moved"], false, "{left:#}");
    assert_eq!(left["tag-left"], other_digest.as_str(), "{left:#}");
    assert_eq!(
        distribution.digest_of(&format!("{untagged}:1.0")),
        other_digest
    );
    let named = json(cli(
        &[
            "import",
            bundle.to_str().unwrap(),
            &format!("{untagged}:1.0"),
            "--json",
        ],
        &[&distribution],
    ));
    assert_eq!(named["tag-moved"], true, "{named:#}");
    assert_eq!(distribution.digest_of(&format!("{untagged}:1.0")), digest);
}

/// A bundle that lost a referrer (unlisted from index.json; separately, its blob deleted) fails
/// `verify oci:<bundle>` and `import`, naming the referrer's digest; the failed import pushes
/// nothing.
#[test]
fn a_bundle_that_lost_a_referrer_fails_by_name() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, keys, layers) = signed(&registry, tmp.path(), "air/lost", &[]);
    let bundle = tmp.path().join("bundle");
    let public = keys.join("cosign.pub");
    ok(cli(
        &["export", &reference, "-o", bundle.to_str().unwrap()],
        &[&registry],
    ));
    let index: Value =
        serde_json::from_slice(&fs::read(bundle.join("index.json")).unwrap()).unwrap();
    let lost = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["artifactType"].is_string())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let unlisted = tmp.path().join("unlisted");
    cnb_attest_tests::copy_dir(&bundle, &unlisted);
    let mut thinned = index.clone();
    thinned["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["digest"] != lost.as_str());
    fs::write(
        unlisted.join("index.json"),
        serde_json::to_vec(&thinned).unwrap(),
    )
    .unwrap();

    let deleted = tmp.path().join("deleted");
    cnb_attest_tests::copy_dir(&bundle, &deleted);
    fs::remove_file(deleted.join("blobs/sha256").join(&lost[7..])).unwrap();

    let destination = format!("{}/air/elsewhere", registry.host);
    // A referrer added after export (the bundle signed again as a layout): not in the inventory,
    // so importing would leave it behind; refused by name, nothing pushed.
    let added = tmp.path().join("added");
    cnb_attest_tests::copy_dir(&bundle, &added);
    ok(cli(
        &[
            "sign",
            &format!("oci:{}:1.0", added.display()),
            "--layers",
            layers.to_str().unwrap(),
            "--key",
            keys.join("cosign.key").to_str().unwrap(),
        ],
        &[],
    ));
    let after: Value =
        serde_json::from_slice(&fs::read(added.join("index.json")).unwrap()).unwrap();
    let listed_before = digests(index["manifests"].as_array().unwrap());
    let new: Vec<String> = digests(after["manifests"].as_array().unwrap())
        .difference(&listed_before)
        .cloned()
        .collect();
    assert!(!new.is_empty(), "{after:#}");
    let imported = cli(
        &["import", added.to_str().unwrap(), &destination],
        &[&registry],
    );
    assert_eq!(imported.status.code(), Some(12), "{}", text(&imported));
    assert!(
        text(&imported).contains("inventory does not list"),
        "{}",
        text(&imported)
    );
    for digest in &new {
        assert!(
            text(&imported).contains(digest.as_str()),
            "{}",
            text(&imported)
        );
    }
    let (status, body) = registry.curl("/v2/air/elsewhere/tags/list", "application/json");
    assert_eq!(status, 404, "{body}");

    // A listing edited in the bundle (artifactType, annotations) is not what the destination's
    // `sha256-<hex>` index lists: the descriptors written come from the manifests' own bytes.
    let edited = tmp.path().join("edited");
    cnb_attest_tests::copy_dir(&bundle, &edited);
    let mut relisted = index.clone();
    let original = relisted["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["digest"] == lost.as_str())
        .unwrap()
        .clone();
    for entry in relisted["manifests"].as_array_mut().unwrap() {
        if entry["digest"] == lost.as_str() {
            entry["artifactType"] = "application/x-edited".into();
            entry["annotations"] = serde_json::json!({"org.example.edited": "yes"});
        }
    }
    fs::write(
        edited.join("index.json"),
        serde_json::to_vec(&relisted).unwrap(),
    )
    .unwrap();
    ok(cli(
        &[
            "import",
            edited.to_str().unwrap(),
            &format!("{}/air/edited", registry.host),
        ],
        &[&registry],
    ));
    let (status, body) = registry.curl(
        &format!("/v2/air/edited/manifests/sha256-{}", &digest[7..]),
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("edited"), "{body}");
    let fallback: Value = serde_json::from_str(&body).unwrap();
    let written = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["digest"] == lost.as_str())
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(written["artifactType"], original["artifactType"], "{body}");
    assert_eq!(
        written["size"],
        fs::metadata(bundle.join("blobs/sha256").join(&lost[7..]))
            .unwrap()
            .len(),
        "{body}"
    );

    for broken in [&unlisted, &deleted] {
        let verified = verify(&format!("oci:{}", broken.display()), &public, &[]);
        assert_eq!(verified.status.code(), Some(3), "{}", text(&verified));
        assert!(text(&verified).contains(&lost), "{}", text(&verified));
        let imported = cli(
            &["import", broken.to_str().unwrap(), &destination],
            &[&registry],
        );
        assert_eq!(imported.status.code(), Some(12), "{}", text(&imported));
        assert!(text(&imported).contains(&lost), "{}", text(&imported));
        assert!(text(&imported).contains(&digest), "{}", text(&imported));
        // Nothing pushed: the repository does not exist.
        let (status, body) = registry.curl("/v2/air/elsewhere/tags/list", "application/json");
        assert_eq!(status, 404, "{body}");
    }
    // The complete bundle still verifies.
    assert_verified(
        &verify(&format!("oci:{}", bundle.display()), &public, &[]),
        8,
    );
}

/// cosign 2's `.att` tag (written by `sign --format cosign-legacy`, this project's writer) goes
/// into the bundle under its tag name, verifies there offline, and is pushed as it was.
#[test]
fn a_cosign_att_tag_travels_as_it_was() {
    let Some(distribution) = Registry::start(Kind::Distribution) else {
        return;
    };
    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, keys, _) = signed(
        &distribution,
        tmp.path(),
        "air/att",
        &["--format", "bundle,cosign-legacy"],
    );
    let tag = format!("sha256-{}.att", &digest[7..]);
    let manifest = "application/vnd.oci.image.manifest.v1+json";
    let (status, att) = distribution.curl(&format!("/v2/air/att/manifests/{tag}"), manifest);
    assert_eq!(status, 200, "{att}");
    let att_digest = cnb_attest_tests::sha256(att.as_bytes());
    let bundle = tmp.path().join("bundle");
    let public = keys.join("cosign.pub");
    let report = json(cli(
        &[
            "export",
            &reference,
            "-o",
            bundle.to_str().unwrap(),
            "--json",
        ],
        &[&distribution],
    ));
    assert_eq!(report["written"]["cosign-tag"], 1, "{report:#}");
    let index = fs::read_to_string(bundle.join("index.json")).unwrap();
    assert!(index.contains(&tag), "{index}");
    // Offline: the bundle's `.att` entries are read as the registry's are (7 more verdicts).
    // No tag needed: the `.att` tag entries are attachments, not images to choose from.
    let verified = verify(&format!("oci:{}", bundle.display()), &public, &[]);
    assert_verified(&verified, 15);
    assert!(
        text(&verified).matches("cosign-legacy").count() >= 7
            || text(&verified).matches("dsse").count() >= 7,
        "{}",
        text(&verified)
    );

    let destination = format!("{}/air/att", ferro.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(imported["pushed"]["cosign-tag"], 1, "{imported:#}");
    let (status, pushed) = ferro.curl(&format!("/v2/air/att/manifests/{tag}"), manifest);
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(cnb_attest_tests::sha256(pushed.as_bytes()), att_digest);
    assert_verified(
        &verify(&format!("{destination}:1.0"), &public, &[&ferro]),
        15,
    );

    // A cosign tag renamed (in index.json and the inventory alike) away from its subject's
    // `sha256-<hex>.att`: refused by name before anything is pushed.
    let renamed = tmp.path().join("renamed");
    cnb_attest_tests::copy_dir(&bundle, &renamed);
    let wrong = format!("sha256-{}.att", "0".repeat(64));
    for file in ["index.json", "cnb-attest-export.json"] {
        let path = renamed.join(file);
        let edited = fs::read_to_string(&path).unwrap().replace(&tag, &wrong);
        fs::write(&path, edited).unwrap();
    }
    let refused = cli(
        &[
            "import",
            renamed.to_str().unwrap(),
            &format!("{}/air/renamed", ferro.host),
        ],
        &[&ferro],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains(&wrong), "{}", text(&refused));
    let (status, _) = ferro.curl(&format!("/v2/air/renamed/manifests/{digest}"), manifest);
    assert_eq!(status, 404);
}

/// `--attestations-only`: no layers in the bundle; importing into a registry without the image
/// fails naming its digest; once the image is there (skopeo), the import passes and verifies.
#[test]
fn attestations_only_needs_the_image_in_the_destination() {
    if !skopeo_ok() {
        return;
    }
    let Some(distribution) = Registry::start(Kind::Distribution) else {
        return;
    };
    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, keys, _) = signed(&distribution, tmp.path(), "air/only", &[]);
    let bundle = tmp.path().join("bundle");
    let public = keys.join("cosign.pub");
    let report = json(cli(
        &[
            "export",
            &reference,
            "-o",
            bundle.to_str().unwrap(),
            "--attestations-only",
            "--json",
        ],
        &[&distribution],
    ));
    assert!(report["written"]["layer"].is_null(), "{report:#}");
    assert_eq!(report["written"]["config"], 1, "{report:#}");
    let destination = format!("{}/air/only", ferro.host);
    let refused = cli(
        &["import", bundle.to_str().unwrap(), &destination],
        &[&ferro],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains(&digest), "{}", text(&refused));
    ferro.push_layout(&tmp.path().join("image"), "air/only", "1.0");
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(imported["pushed"]["referrer"], 8, "{imported:#}");
    // An attestations-only bundle sets no tag unless the destination names one.
    assert!(imported["tag"].is_null(), "{imported:#}");
    assert_eq!(imported["tag-moved"], false, "{imported:#}");
    assert_verified(
        &verify(&format!("{destination}:1.0"), &public, &[&ferro]),
        8,
    );
}

/// An image index in an OCI layout (layout → bundle): the index, its child, the child's referrers
/// (signed through the index) are exported; the bundle verifies offline; the import pushes the
/// child before the index and keeps the index's digest and tag.
#[test]
fn an_image_index_in_a_layout_travels_whole() {
    let Some(registry) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, image) = fresh_example(tmp.path());
    key_pair(&tmp.path().join("k"), "");
    let oci_index = "application/vnd.oci.image.index.v1+json";
    let mut listing: Value =
        serde_json::from_slice(&fs::read(image.join("index.json")).unwrap()).unwrap();
    let child = listing["manifests"][0].clone();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_index,
        "manifests": [{
            "mediaType": child["mediaType"],
            "digest": child["digest"],
            "size": child["size"],
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = cnb_attest_tests::sha256(&bytes);
    fs::write(image.join("blobs/sha256").join(&index_digest[7..]), &bytes).unwrap();
    listing["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": oci_index,
            "digest": index_digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    fs::write(
        image.join("index.json"),
        serde_json::to_vec(&listing).unwrap(),
    )
    .unwrap();
    let source = format!("oci:{}:multi", image.display());
    let key = tmp.path().join("k/cosign.key");
    ok(cli(
        &[
            "sign",
            &source,
            "--layers",
            layers.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        &[],
    ));
    let bundle = tmp.path().join("bundle");
    let root = tmp.path().join("trusted_root.json");
    fs::write(
        &root,
        br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
    )
    .unwrap();
    let report = json(cli(
        &[
            "export",
            &source,
            "-o",
            bundle.to_str().unwrap(),
            "--trusted-root",
            root.to_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    assert_eq!(report["written"]["trusted-root"], 1, "{report:#}");
    assert_eq!(
        fs::read(bundle.join(report["trust"][0]["path"].as_str().unwrap())).unwrap(),
        fs::read(&root).unwrap()
    );
    assert_eq!(
        report["image"]["digest"],
        index_digest.as_str(),
        "{report:#}"
    );
    assert_eq!(report["written"]["index"], 1, "{report:#}");
    assert_eq!(report["written"]["manifest"], 1, "{report:#}");
    assert_eq!(report["written"]["referrer"], 8, "{report:#}");
    let public = tmp.path().join("k/cosign.pub");
    assert_verified(
        &verify(&format!("oci:{}:multi", bundle.display()), &public, &[]),
        8,
    );

    let destination = format!("{}/multi/app", registry.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&registry],
    ));
    assert_eq!(imported["pushed"]["index"], 1, "{imported:#}");
    assert_eq!(imported["pushed"]["manifest"], 1, "{imported:#}");
    let (status, body) = registry.curl("/v2/multi/app/manifests/multi", oci_index);
    assert_eq!(status, 200, "{body}");
    assert_eq!(cnb_attest_tests::sha256(body.as_bytes()), index_digest);
    let child_digest = child["digest"].as_str().unwrap();
    assert_eq!(registry.listing("multi/app", child_digest).len(), 8);
    assert_verified(
        &verify(&format!("{destination}:multi"), &public, &[&registry]),
        8,
    );
}

/// The destination already has another writer's `.att` tag for the image: the bundle's layers are
/// merged into it (the other writer's layer kept first), never replacing it; a second import
/// finds nothing missing and pushes nothing.
#[test]
fn a_different_att_tag_in_the_destination_is_merged_not_replaced() {
    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let Some(distribution) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, _, _) = signed(
        &ferro,
        tmp.path(),
        "air/merge",
        &["--format", "bundle,cosign-legacy"],
    );
    let bundle = tmp.path().join("bundle");
    ok(cli(
        &["export", &reference, "-o", bundle.to_str().unwrap()],
        &[&ferro],
    ));
    // Someone else's .att tag in the destination (the empty JSON blob stands in for an envelope).
    distribution.push_layout(&tmp.path().join("image"), "merge/app", "1.0");
    let foreign = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let config =
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    for blob in [&b"{}"[..], &config[..]] {
        distribution.upload_with_curl("merge/app", blob);
    }
    let att = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cnb_attest_tests::sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": foreign, "size": 2,
                    "annotations": {"predicateType": "https://example.com/other"}}]
    });
    let tag = format!("sha256-{}.att", &digest[7..]);
    distribution.put_manifest_with_curl("merge/app", &tag, &serde_json::to_vec(&att).unwrap());
    let destination = format!("{}/merge/app", distribution.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&distribution],
    ));
    assert_eq!(
        imported["merged-tags"],
        serde_json::json!([tag]),
        "{imported:#}"
    );
    let (status, body) = distribution.curl(
        &format!("/v2/merge/app/manifests/{tag}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200, "{body}");
    let merged: Value = serde_json::from_str(&body).unwrap();
    let layers = merged["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 8, "{merged:#}");
    assert_eq!(
        layers[0]["digest"], foreign,
        "the other writer's layer stays first"
    );
    let second = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&distribution],
    ));
    assert_eq!(second["pushed"], serde_json::json!({}), "{second:#}");
    assert_eq!(second["merged-tags"], serde_json::json!([]), "{second:#}");
    assert_eq!(second["already-present"]["cosign-tag"], 1, "{second:#}");
}

/// The two features together: a two-platform index signed in one run on Distribution → bundle →
/// the registry gone → offline verify of every platform (`--require-all-platforms`) and of one
/// (`--platform linux/arm64`) → ferro: the index, both manifests and every subject's referrers
/// keep their digests; verify and download per platform pass; a second import adds nothing.
#[test]
fn a_signed_multi_platform_index_crosses_the_gap_whole() {
    if !skopeo_ok() {
        return;
    }
    let Some(mut source) = Registry::start(Kind::Distribution) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let f = cnb_attest_tests::platforms::two_platforms(tmp.path());
    let reference =
        cnb_attest_tests::platforms::push_all(&source, &f.layout, "air/multi", "latest");
    assert_eq!(source.digest_of(&reference), f.index);
    key_pair(&tmp.path().join("k"), "");
    let key = tmp.path().join("k/cosign.key");
    let public = tmp.path().join("k/cosign.pub");
    ok(cli(
        &[
            "sign",
            &reference,
            "--layers",
            &format!("linux/amd64={}", f.amd64.layers.display()),
            "--layers",
            &format!("linux/arm64={}", f.arm64.layers.display()),
            "--key",
            key.to_str().unwrap(),
        ],
        &[&source],
    ));
    let subjects = [&f.index, &f.amd64.digest, &f.arm64.digest];
    let before: Vec<BTreeSet<String>> = subjects
        .iter()
        .map(|d| digests(&source.listing("air/multi", d)))
        .collect();
    assert_eq!(before[0].len(), 1, "the index signature: {before:?}");
    assert_eq!(before[1].len(), sbom_files(&f.amd64.layers).len() + 1);
    assert_eq!(before[2].len(), sbom_files(&f.arm64.layers).len() + 1);

    let bundle = tmp.path().join("bundle");
    let report = json(cli(
        &[
            "export",
            &reference,
            "-o",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--json",
        ],
        &[&source],
    ));
    assert_eq!(report["image"]["digest"], f.index.as_str(), "{report:#}");
    let referrers: usize = before.iter().map(BTreeSet::len).sum();
    assert_eq!(report["written"]["referrer"], referrers, "{report:#}");
    source.kill();

    // Offline: every platform, then one.
    let offline = format!("oci:{}:latest", bundle.display());
    let all = cli(
        &[
            "verify",
            &offline,
            "--require-all-platforms",
            "--key",
            public.to_str().unwrap(),
        ],
        &[],
    );
    assert!(all.status.success(), "{}", text(&all));
    assert!(
        text(&all).contains("linux/amd64") && text(&all).contains("linux/arm64"),
        "{}",
        text(&all)
    );
    let arm = cli(
        &[
            "verify",
            &offline,
            "--platform",
            "linux/arm64",
            "--key",
            public.to_str().unwrap(),
        ],
        &[],
    );
    assert_verified(&arm, sbom_files(&f.arm64.layers).len() + 1);
    assert!(!text(&arm).contains(&f.amd64.digest), "{}", text(&arm));

    let Some(ferro) = Registry::start(Kind::Ferro) else {
        return;
    };
    let destination = format!("{}/air/multi", ferro.host);
    let imported = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(imported["image"], f.index.as_str(), "{imported:#}");
    assert_eq!(imported["pushed"]["referrer"], referrers, "{imported:#}");
    let on_ferro = format!("{destination}:latest");
    assert_eq!(ferro.digest_of(&on_ferro), f.index);
    for (digest, listed) in subjects.iter().zip(&before) {
        assert_eq!(&digests(&ferro.listing("air/multi", digest)), listed);
    }
    let verified = cli(
        &[
            "verify",
            &on_ferro,
            "--require-all-platforms",
            "--key",
            public.to_str().unwrap(),
        ],
        &[&ferro],
    );
    assert!(verified.status.success(), "{}", text(&verified));
    let out = tmp.path().join("arm64-out");
    ok(cli(
        &[
            "download",
            &on_ferro,
            "--platform",
            "linux/arm64",
            "--key",
            public.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[&ferro],
    ));
    assert_eq!(sbom_files(&out.join("layers")), sbom_files(&f.arm64.layers));
    let second = json(cli(
        &["import", bundle.to_str().unwrap(), &destination, "--json"],
        &[&ferro],
    ));
    assert_eq!(second["pushed"], serde_json::json!({}), "{second:#}");
    for (digest, listed) in subjects.iter().zip(&before) {
        assert_eq!(&digests(&ferro.listing("air/multi", digest)), listed);
    }
}
