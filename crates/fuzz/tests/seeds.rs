//! Writes the seed corpora (`fuzz/corpus/<target>/`) from the fixtures, the examples and the
//! hostile documents of the tests. Ignored: run it to rebuild the seeds, then minimise them
//! (`cargo fuzz cmin`, see docs/fuzzing.md):
//!
//! ```text
//! cargo test -p cnb-attest-fuzz --test seeds -- --ignored
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use cnb_dsse::{Envelope, SigningKey};
use cnb_fixtures::tar::{write as write_tar, Entry};
use cnb_intoto::{Statement, StatementVersion, Subject};
use sha2::{Digest as _, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = workspace().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A raw ustar header (for entry kinds the fixture writer does not make).
fn header(name: &str, size: usize, flag: u8, link: &str) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

fn padded(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.resize(body.len().div_ceil(512) * 512, 0);
    v
}

fn raw_tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, flag, body, link) in entries {
        out.extend(header(name, body.len(), *flag, link));
        out.extend(padded(body));
    }
    out.extend([0u8; 1024]);
    out
}

fn sbom_layer() -> Vec<u8> {
    write_tar(
        &[
            Entry::Dir("/layers".into()),
            Entry::Dir("/layers/sbom".into()),
            Entry::Dir("/layers/sbom/launch".into()),
            Entry::Dir("/layers/sbom/launch/acme_node".into()),
            Entry::File(
                "/layers/sbom/launch/acme_node/sbom.cdx.json".into(),
                br#"{"bomFormat":"CycloneDX"}"#.to_vec(),
            ),
            Entry::File(
                "/layers/sbom/launch/acme_node/node/sbom.spdx.json".into(),
                br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec(),
            ),
            Entry::File(
                "/layers/sbom/launch/sbom.legacy.json".into(),
                b"[]".to_vec(),
            ),
        ],
        0,
        0,
    )
    .unwrap()
}

fn tar_seeds() {
    put("tar_layer", "sbom-layer.tar", &sbom_layer());
    let pax = b"30 path=layers/sbom/launch/x/a\n";
    put(
        "tar_layer",
        "pax-gnu-links.tar",
        &raw_tar(&[
            ("pax", b'x', pax, ""),
            ("short", b'0', b"{}", ""),
            (
                "././@LongLink",
                b'L',
                b"layers/sbom/launch/acme_node/sbom.syft.json\0",
                "",
            ),
            ("x", b'0', b"{\"artifacts\":[]}", ""),
            ("layers/sbom/launch/l", b'2', b"", "../../etc/passwd"),
            ("layers/sbom/launch/h", b'1', b"", "layers/x"),
            ("global", b'g', b"20 comment=nothing\n", ""),
            ("dev", b'3', b"", ""),
        ]),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &sbom_layer()).unwrap();
    put("tar_layer", "sbom-layer.tar.gz", &gz.finish().unwrap());
    put("tar_layer", "empty.tar", &[0u8; 1024]);
}

fn docker_save_seed() {
    let layer = sbom_layer();
    let diff_id = format!("sha256:{}", hex_of(&layer));
    let label = serde_json::json!({"sbom": {"sha": diff_id}, "buildpacks": [{"key": "acme/node", "layers": {}}]});
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["CNB_LAYERS_DIR=/layers"], "Labels": {"io.buildpacks.lifecycle.metadata": label.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_name = format!("{}.json", hex_of(&config));
    let layer_name = format!("{}/layer.tar", hex_of(&layer));
    let manifest = serde_json::to_vec(&serde_json::json!([{"Config": config_name, "RepoTags": ["app:1"], "Layers": [layer_name]}])).unwrap();
    let archive = write_tar(
        &[
            Entry::File(config_name.clone(), config.clone()),
            Entry::File(layer_name.clone(), layer.clone()),
            Entry::File("manifest.json".into(), manifest.clone()),
        ],
        0,
        0,
    )
    .unwrap();
    put("docker_save", "one-image.tar", &archive);
    // The OCI style (Docker 25+), with the layer linked from its legacy name.
    let oci_config = format!("blobs/sha256/{}", hex_of(&config));
    let oci_layer = format!("blobs/sha256/{}", hex_of(&layer));
    let manifest = serde_json::to_vec(&serde_json::json!([{"Config": oci_config, "RepoTags": null, "Layers": ["legacy/layer.tar"]}])).unwrap();
    let mut entries = Vec::new();
    entries.extend(header(&oci_config, config.len(), b'0', ""));
    entries.extend(padded(&config));
    entries.extend(header(&oci_layer, layer.len(), b'0', ""));
    entries.extend(padded(&layer));
    entries.extend(header(
        "legacy/layer.tar",
        0,
        b'2',
        &format!("../{oci_layer}"),
    ));
    entries.extend(header("manifest.json", manifest.len(), b'0', ""));
    entries.extend(padded(&manifest));
    entries.extend([0u8; 1024]);
    put("docker_save", "oci-style-linked.tar", &entries);
}

fn json_seeds() {
    let docs: &[&[u8]] = &[
        br#"{"a":[1,2.5,-0,1e10,{"b":null,"c":true,"d":false}],"e":"caf\u00e9 \ud83d\ude00 \"\\\/\b\f\n\r\t"}"#,
        br#"{"a":1,"\u0061":2}"#,
        b"[[[[[[[[1]]]]]]]]",
        b"[1e400]",
        "{\"k\":\"\u{e9}\u{202e}\"}".as_bytes(),
        b" 123 ",
        br#"{"bomFormat":"CycloneDX","spdxVersion":"SPDX-2.3","artifacts":[]}"#,
    ];
    for (i, d) in docs.iter().enumerate() {
        put("json", &format!("doc-{i}.json"), d);
    }
}

fn statement() -> Statement {
    Statement::new(
        StatementVersion::V1,
        vec![Subject::sha256("registry.example/app", &"ab".repeat(32)).unwrap()],
        "https://cyclonedx.org/bom",
        br#" {"bomFormat":"CycloneDX","components":[{"name":"x","version":"1.0"}]} "#.to_vec(),
    )
    .unwrap()
}

fn statement_seeds() {
    put("statement", "v1.json", &statement().to_json());
    put(
        "statement",
        "v01-two-digests.json",
        br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"a","digest":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000","sha512":"00"}}],"predicateType":"https://spdx.dev/Document","predicate":{"spdxVersion":"SPDX-2.3"},"x":[1]}"#,
    );
    put(
        "statement",
        "case-variant-key.json",
        br#"{"_type":"https://in-toto.io/Statement/v1","Subject":[],"subject":[{"name":"a","digest":{"sha256":"00"}}],"predicateType":"x:y","predicate":{}}"#,
    );
}

fn envelope_seeds() -> Envelope {
    let key = SigningKey::generate().unwrap().with_keyid("key-1");
    let envelope =
        Envelope::sign(cnb_dsse::IN_TOTO_PAYLOAD_TYPE, statement().to_json(), &key).unwrap();
    put("envelope", "signed.json", &envelope.to_json());
    put(
        "envelope",
        "escaped-payload.json",
        br#"{"payloadType":"t","payload":"aGVsbG8\/","signatures":[{"keyid":"","sig":"AA"}]}"#,
    );
    put("envelope", "base64-url.txt", b"-_-_aGVsbG8");
    put("envelope", "base64-padded.txt", b"aGVsbG8=");
    envelope
}

fn bundle_seeds(envelope: &Envelope) {
    put(
        "bundle",
        "key-bundle.json",
        &cnb_referrers::format::bundle_json(envelope, "hint"),
    );
    let keyless = workspace().join("crates/keyless/testdata/cosign-oci-attestation.sigstore.json");
    if let Ok(bytes) = fs::read(&keyless) {
        put("bundle", "cosign-keyless.sigstore.json", &bytes);
    }
}

fn oci_seeds() {
    let blobs = workspace().join("examples/node-express/image/blobs/sha256");
    for entry in fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if bytes.first() == Some(&b'{') && bytes.len() < 8192 {
            let name = path.file_name().unwrap().to_string_lossy()[..12].to_string();
            put("oci", &format!("{name}.json"), &bytes);
        }
    }
    put(
        "oci",
        "index.json",
        &fs::read(workspace().join("examples/node-express/image/index.json")).unwrap(),
    );
    put(
        "oci",
        "referrers-listing.json",
        format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":700,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{{"dev.sigstore.bundle.predicateType":"https://cyclonedx.org/bom"}}}}]}}"#, "0".repeat(64)).as_bytes(),
    );
    put(
        "oci",
        "ambiguous.json",
        format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"a","digest":"sha256:{0}","size":2}},"layers":[],"manifests":[]}}"#, "0".repeat(64)).as_bytes(),
    );
}

fn signer_toml_seeds() {
    let d = "0".repeat(64);
    put(
        "signer_toml",
        "full.toml",
        format!(
            r#"[image]
reference = "registry.example/app:1@sha256:{d}"

[[attestations]]
[[attestations.predicate]]
type = "https://cyclonedx.org/bom"
value = '{{"bomFormat":"CycloneDX"}}'
[[attestations.statement.subject]]
name = "registry.example/app"
digest = {{ sha256 = "{d}" }}
[[attestations.annotations]]
name = "io.buildpacks.buildpack.id"
value = "acme/node"
"#
        )
        .as_bytes(),
    );
    put(
        "signer_toml",
        "secret.toml",
        b"[image]\nreference = \"x\"\npassword = \"hunter2\"\n",
    );
    put("signer_toml", "uri.toml", format!("[image]\nreference = \"a@sha256:{d}\"\n[[attestations]]\n[[attestations.predicate]]\ntype = \"x:y\"\nuri = \"file:///p.json\"\n").as_bytes());
}

fn restore_path_seeds() {
    put(
        "restore_path",
        "layer-scoped",
        b"acme/node\nacme_node/node/sbom.cdx.json",
    );
    put(
        "restore_path",
        "image-scoped",
        b"paketo-buildpacks/node-engine\npaketo-buildpacks_node-engine/sbom.syft.json",
    );
    put("restore_path", "legacy", b"sbom.legacy.json");
    put(
        "restore_path",
        "lifecycle",
        b"\nbuildpacksio_lifecycle/launcher/sbom.spdx.json",
    );
    put(
        "restore_path",
        "ambiguous-escape",
        b"a/b\na_b\na_b/sbom.cdx.json",
    );
    put(
        "restore_path",
        "hidden",
        "acme/no\u{200b}de\nacme_no\u{200b}de/l\u{202e}/sbom.cdx.json".as_bytes(),
    );
}

fn reference_seeds() {
    let d = "a".repeat(64);
    for (i, r) in [
        "alpine".to_string(),
        "index.docker.io/team/app:1".into(),
        format!("localhost:5000/app@sha256:{d}"),
        format!("reg.example/a/b/c:v1.2-rc_3@sha256:{d}"),
        "[::1]:5000/app".into(),
        "a:b:c".into(),
        format!("a@sha512:{}", "b".repeat(128)),
    ]
    .iter()
    .enumerate()
    {
        put("reference", &format!("ref-{i}"), r.as_bytes());
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand to rebuild the seeds"]
fn write_seed_corpus() {
    tar_seeds();
    docker_save_seed();
    json_seeds();
    statement_seeds();
    let envelope = envelope_seeds();
    bundle_seeds(&envelope);
    oci_seeds();
    signer_toml_seeds();
    restore_path_seeds();
    reference_seeds();
}
