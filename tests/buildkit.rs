//! BuildKit's attestation layout (docs/attestations/attestation-storage.md in moby/buildkit): an
//! image index holding the platform manifest and, beside it, an attestation manifest annotated
//! `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <platform
//! manifest>`, whose layers are bare in-toto statements (`application/vnd.in-toto+json`, annotated
//! `in-toto.io/predicate-type`). cnb-attest finds them (unsigned, so never restored as verified).

use std::fs;
use std::process::Command;

use cnb_attest_tests::registry::{Kind, Registry};
use cnb_attest_tests::{bin, fresh_example, ok, run, sha256, workspace_root};
use cnb_referrers::layout::OciLayout;
use cnb_referrers::manifest::{Descriptor, ImageManifest, OCI_INDEX, OCI_MANIFEST, REF_NAME};
use serde_json::{json, Value};

const SPDX: &str = "https://spdx.dev/Document";

/// Adds a BuildKit-style index (tag `bk`) over the example image to its layout.
fn add_buildkit_index(layout: &OciLayout) -> String {
    add_buildkit_index_padded(layout, 0)
}

/// The same, with a `pad` field of `pad` bytes in the predicate.
fn add_buildkit_index_padded(layout: &OciLayout, pad: usize) -> String {
    let platform = layout.resolve_image(Some("latest")).unwrap();
    let spdx = fs::read(workspace_root().join(
        "examples/node-express/layers/sbom/launch/paketo-buildpacks_node-engine/node/sbom.spdx.json",
    ))
    .unwrap();
    let mut predicate = serde_json::from_slice::<Value>(&spdx).unwrap();
    if pad > 0 {
        predicate["pad"] = Value::String("x".repeat(pad));
    }
    let statement = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SPDX,
        "subject": [{"name": "pkg:docker/example/app@latest?platform=linux%2Famd64",
                     "digest": {"sha256": platform.digest.hex()}}],
        "predicate": predicate,
    }))
    .unwrap();
    let (statement_digest, _) = layout.write_blob(&statement).unwrap();
    let (config_digest, _) = layout.write_blob(b"{}").unwrap();
    let mut layer = Descriptor::for_bytes("application/vnd.in-toto+json", &statement);
    layer.annotations = Some([("in-toto.io/predicate-type".to_string(), SPDX.to_string())].into());
    assert_eq!(layer.digest, statement_digest);
    let attestation = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            digest: config_digest,
            ..Descriptor::empty()
        },
        layers: vec![layer],
        subject: None,
        annotations: None,
    };
    let attestation_bytes = attestation.to_json();
    layout.write_blob(&attestation_bytes).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": platform.digest.as_str(), "size": platform.size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256(&attestation_bytes), "size": attestation_bytes.len(),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": platform.digest.as_str()}}
        ]
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    layout.write_blob(&index_bytes).unwrap();
    let mut entry = Descriptor::for_bytes(OCI_INDEX, &index_bytes);
    entry.annotations = Some([(REF_NAME.to_string(), "bk".to_string())].into());
    layout.add_to_index(&[entry]).unwrap();
    platform.digest.to_string()
}

/// Copies the layout's `bk` index to `repo:1.0` with skopeo (an independent writer) and lists it.
fn copy_and_list(image: &std::path::Path, registry: &Registry, repo: &str) -> String {
    ok(run(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:bk", image.display()))
        .arg(format!("docker://{}/{repo}:1.0", registry.host))));
    ok(run(Command::new(bin("cnb-attest"))
        .args(["ls", "--json", &format!("{}/{repo}:1.0", registry.host)])
        .env("CNB_INSECURE_REGISTRIES", &registry.host)
        .env("DOCKER_CONFIG", "/nonexistent")))
}

fn buildkit_entries(listing: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(listing)
        .unwrap()
        .into_iter()
        .filter(|l| l["format"] == "buildkit")
        .collect()
}

#[test]
fn buildkit_attestation_manifests_in_an_image_index_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let layout = OciLayout::open(&image).unwrap();
    let platform = add_buildkit_index(&layout);

    let listing = ok(run(Command::new(bin("cnb-attest"))
        .args(["ls", "--json"])
        .arg(format!("oci:{}:bk", image.display()))));
    let found = buildkit_entries(&listing);
    assert_eq!(found.len(), 1, "{listing}");
    assert_eq!(found[0]["predicate-type"], SPDX);
    assert!(found[0]["subjects"][0]
        .as_str()
        .unwrap()
        .ends_with(&platform[7..]));
    assert!(found[0]["problem"].as_str().unwrap().contains("unsigned"));

    // The same through a registry: skopeo copies the whole index (an independent writer).
    let Some(registry) = Registry::start(Kind::Ferro) else {
        return;
    };
    let listing = copy_and_list(&image, &registry, "bk/app");
    let found = buildkit_entries(&listing);
    assert_eq!(found.len(), 1, "{listing}");
    assert_eq!(found[0]["predicate-type"], SPDX);
}

/// A bare statement over the 8 MiB above which attestation blobs are read through a temporary
/// file is still listed, as it was when every blob was read into memory: from a layout, and from
/// a registry (skopeo copies the index there).
#[test]
fn a_buildkit_statement_over_eight_mib_is_still_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, image) = fresh_example(tmp.path());
    let layout = OciLayout::open(&image).unwrap();
    add_buildkit_index_padded(&layout, 9 * 1024 * 1024);
    let check = |listing: &str| {
        let found = buildkit_entries(listing);
        assert_eq!(found.len(), 1, "{listing}");
        assert_eq!(found[0]["predicate-type"], SPDX, "{listing}");
        assert!(
            found[0]["problem"].as_str().unwrap().contains("unsigned"),
            "{listing}"
        );
    };
    check(&ok(run(Command::new(bin("cnb-attest"))
        .args(["ls", "--json"])
        .arg(format!("oci:{}:bk", image.display())))));
    let Some(registry) = Registry::start(Kind::Ferro) else {
        return;
    };
    check(&copy_and_list(&image, &registry, "bk/big"));
}
