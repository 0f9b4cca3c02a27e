//! Hostile input to `cnb-attest download` (issue 4, research §3.2 cases 1–5, 7–8, 19–21, 24, 28,
//! 55, 57, 59): every case is refused with a message that names the attestation (its manifest
//! digest) and the reason; nothing is written for it, the files of the good attestations beside it
//! are exactly the input SBOMs, and nothing outside the output directory changes. Attestations no
//! key verifies (tampered, unreadable, oversized, another key) are left out and the verified ones
//! restored (issue 8); verified attestations that break a rule refuse the whole restore.
//!
//! Signed-but-hostile attestations are made here with the library crates and the SAME key the
//! test generated (so only the hostile property can make them fail) and stored next to the
//! example's real attestations in its OCI layout. The network cases (oversized bodies, endless
//! referrer pages, digests in registry documents) run against a real registry behind the
//! fault-injecting proxy, which also records how much of an oversized body went out.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnb_attest_tests::closed::{
    assert_fails_closed, assert_leaves_out, assert_trust_policy, files, mib, outside,
};
use cnb_attest_tests::proxy::{get, Action, Plan, Proxy, RequestInfo};
use cnb_attest_tests::registry::Kind;
use cnb_attest_tests::signed::{
    attestation_in, good_files, list_like, SignedImage, BUNDLE, CDX, FIVE_GIB, MAX_MANIFEST, NODE,
    OCI_INDEX, OCI_MANIFEST, REPO, SPDX,
};
use cnb_attest_tests::{bin, fresh_example, key_pair, ok, run, sha256, text};
use cnb_dsse::{Envelope, PasswordSource, Signature, Signer, SigningKey, IN_TOTO_PAYLOAD_TYPE};
use cnb_intoto::{Statement, StatementVersion, Subject};
use cnb_referrers::format::{build_referrer, ReferrerParts, StorageFormat};
use cnb_referrers::layout::{Image, OciLayout};
use cnb_referrers::{Descriptor, Digest};
use serde_json::{json, Value};

const CDX_MEDIA: &str = "application/vnd.cyclonedx+json";
const SPDX_MEDIA: &str = "application/spdx+json";
/// Its one layer, `helper`, has only a Syft SBOM: hostile CycloneDX attestations for it land where
/// no good attestation writes, so accepting one would show as an extra file.
const CA: &str = "paketo-buildpacks/ca-certificates";

// ---------------------------------------------------------------------------------------------
// The example in an OCI layout, and attestations crafted with its key.
// ---------------------------------------------------------------------------------------------

struct Example {
    tmp: tempfile::TempDir,
    layers: PathBuf,
    image_dir: PathBuf,
    key: SigningKey,
    layout: OciLayout,
    image: Image,
}

impl Example {
    /// The shipped example signed by the CLI (7 SBOM attestations and the image signature).
    fn signed() -> Example {
        let ex = Example::unsigned();
        ok(run(Command::new(bin("cnb-attest"))
            .arg("sign")
            .arg(ex.reference())
            .arg("--layers")
            .arg(&ex.layers)
            .arg("--key")
            .arg(ex.keys().join("cosign.key"))
            .env("COSIGN_PASSWORD", "")));
        ex
    }

    /// The shipped example with a fresh key pair and no attestations.
    fn unsigned() -> Example {
        let tmp = tempfile::tempdir().unwrap();
        let (layers, image_dir) = fresh_example(tmp.path());
        let keys = tmp.path().join("k");
        key_pair(&keys, "");
        fs::write(tmp.path().join("empty-password"), "").unwrap();
        let key = cnb_dsse::read_private_key(
            &keys.join("cosign.key"),
            &PasswordSource::File(tmp.path().join("empty-password")),
        )
        .unwrap();
        let layout = OciLayout::open(&image_dir).unwrap();
        let image = layout
            .read_image(&layout.resolve_image(None).unwrap())
            .unwrap();
        Example {
            tmp,
            layers,
            image_dir,
            key,
            layout,
            image,
        }
    }

    fn keys(&self) -> PathBuf {
        self.tmp.path().join("k")
    }

    fn reference(&self) -> String {
        format!("oci:{}", self.image_dir.display())
    }

    fn image_hex(&self) -> String {
        self.image.descriptor.digest.hex().to_string()
    }

    /// The diffID hex the image's label records for a buildpack's layer.
    fn diff_id(&self, buildpack: &str, layer: &str) -> String {
        let label: Value =
            serde_json::from_str(&self.image.config.labels["io.buildpacks.lifecycle.metadata"])
                .unwrap();
        let bp = label["buildpacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["key"] == buildpack)
            .unwrap();
        bp["layers"][layer]["sha"].as_str().unwrap()[7..].to_string()
    }

    /// `image@<this image>` and `<buildpack>:<layer>@<hex>`.
    fn layer_subjects(&self, buildpack: &str, layer: &str, hex: &str) -> Vec<Subject> {
        vec![
            Subject::sha256("image", &self.image_hex()).unwrap(),
            Subject::sha256(&format!("{buildpack}:{layer}"), hex).unwrap(),
        ]
    }

    /// A DSSE envelope over `payload`, signed with the example's key.
    fn sign(&self, payload: Vec<u8>) -> Envelope {
        Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &self.key).unwrap()
    }

    /// Stores `envelope` as a referrer of the image; `predicate_type` is what the manifest's
    /// annotation says. Returns the referrer manifest digest.
    fn store(
        &self,
        format: StorageFormat,
        envelope: &Envelope,
        predicate_type: &str,
        annotations: &BTreeMap<String, String>,
    ) -> String {
        let referrer = self.referrer(format, envelope, predicate_type, annotations);
        self.layout
            .store_referrers(std::slice::from_ref(&referrer))
            .unwrap();
        referrer.descriptor.digest.to_string()
    }

    fn referrer(
        &self,
        format: StorageFormat,
        envelope: &Envelope,
        predicate_type: &str,
        annotations: &BTreeMap<String, String>,
    ) -> cnb_referrers::Referrer {
        let hint = self.key.public_key().hint();
        build_referrer(
            format,
            envelope,
            &ReferrerParts {
                subject: &self.image.descriptor,
                predicate_type,
                annotations,
                key_hint: &hint,
                verification_material: None,
                created: None,
            },
        )
    }

    /// Signs a statement with the example's key and stores it as a bundle referrer.
    fn store_statement(
        &self,
        subjects: Vec<Subject>,
        predicate_type: &str,
        predicate: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> String {
        let statement = Statement::new(
            StatementVersion::V1,
            subjects,
            predicate_type,
            predicate.to_vec(),
        )
        .unwrap();
        let envelope = self.sign(statement.to_json());
        self.store(
            StorageFormat::Bundle,
            &envelope,
            predicate_type,
            annotations,
        )
    }

    /// Writes a manifest given as JSON (it may hold what the typed model refuses) as a blob and
    /// lists it in `index.json` like a referrer (`artifactType` and `annotations`). Returns its
    /// digest.
    fn store_raw_manifest(
        &self,
        manifest: &Value,
        annotations: &BTreeMap<String, String>,
    ) -> String {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let (digest, _) = self.layout.write_blob(&bytes).unwrap();
        let mut descriptor = Descriptor::for_bytes(OCI_MANIFEST, &bytes);
        descriptor.artifact_type = Some(BUNDLE.into());
        descriptor.annotations = Some(annotations.clone());
        self.layout.add_to_index(&[descriptor]).unwrap();
        digest.to_string()
    }

    /// A sparse file of `size` bytes at `blobs/sha256/<hex of sha256(name)>`; returns its digest.
    fn sparse_blob(&self, name: &str, size: u64) -> Digest {
        let digest = Digest::of(name.as_bytes());
        let file = fs::File::create(self.layout.blob_path(&digest)).unwrap();
        file.set_len(size).unwrap();
        digest
    }

    /// The ID of the attestation `ls --json` lists for a buildpack, layer and predicate type.
    fn listed(&self, buildpack: &str, layer: &str, predicate_type: &str) -> String {
        let out = ok(run(Command::new(bin("cnb-attest"))
            .args(["ls", "--json"])
            .arg(self.reference())));
        let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
        attestation_in(&listed, buildpack, layer, predicate_type)
    }

    fn download(&self, out: &Path, extra: &[&str]) -> Output {
        run(Command::new(bin("cnb-attest"))
            .arg("download")
            .arg(self.reference())
            .arg("-o")
            .arg(out)
            .arg("--key")
            .arg(self.keys().join("cosign.pub"))
            .args(extra)
            .env("DOCKER_CONFIG", "/nonexistent"))
    }

    /// The input SBOMs as they must appear under the output directory: `layers/sbom/launch/...`.
    fn good(&self) -> BTreeMap<String, Vec<u8>> {
        good_files(&self.layers)
    }
}

/// A small CycloneDX document, recognisable by `tag`.
fn cdx(tag: &str) -> Vec<u8> {
    format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{{"component":{{"type":"application","name":"cnb-hostile-{tag}"}}}}}}"#
    )
    .into_bytes()
}

/// A small SPDX document, recognisable by `tag`.
fn spdx(tag: &str) -> Vec<u8> {
    format!(
        r#"{{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"cnb-hostile-{tag}"}}"#
    )
    .into_bytes()
}

/// The `io.buildpacks.*` selection annotations the signer writes for a layer SBOM.
fn hints(
    buildpack: &str,
    layer: &str,
    media_type: &str,
    predicate: &[u8],
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "io.buildpacks.buildpack.id".to_string(),
            buildpack.to_string(),
        ),
        ("io.buildpacks.layer.name".to_string(), layer.to_string()),
        (
            "io.buildpacks.layer.digest-kind".to_string(),
            "diffID".to_string(),
        ),
        (
            "io.buildpacks.sbom.media-type".to_string(),
            media_type.to_string(),
        ),
        ("io.buildpacks.sbom.digest".to_string(), sha256(predicate)),
    ])
}

fn hex_of(bytes: &[u8]) -> String {
    sha256(bytes)[7..].to_string()
}

// ---------------------------------------------------------------------------------------------
// Signature and statement verification (cases 1–5, 7, 8).
// ---------------------------------------------------------------------------------------------

/// Cases 1 and 3: the referrer's OCI `subject` is this image, the signed statement is about
/// another one (its image subject has another digest); and a statement with only the layer
/// subject, naming no image at all.
#[test]
fn a_statement_about_another_image_is_refused() {
    let ex = Example::signed();
    let helper = Subject::sha256(&format!("{CA}:helper"), &ex.diff_id(CA, "helper")).unwrap();
    let predicate = cdx("other-image");
    let other_image = ex.store_statement(
        vec![
            Subject::sha256("image", &hex_of(b"another image manifest")).unwrap(),
            helper.clone(),
        ],
        CDX,
        &predicate,
        &hints(CA, "helper", CDX_MEDIA, &predicate),
    );
    let out = ex.tmp.path().join("out");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[(
            &other_image,
            &format!(
                "subject `image` (sha256:{}) is neither this image ({})",
                hex_of(b"another image manifest"),
                ex.image.descriptor.digest
            ),
        )],
        &ex.good(),
    );
}

/// A statement naming only a layer of this image (the RFC's layer-scoped shape, no image
/// subject) is bound to the image through that layer, which the image's config holds: it is
/// restored to that layer's place. (Before the RFC's shape was read, it was refused with "no
/// subject is this image's digest".)
#[test]
fn a_statement_naming_only_a_layer_of_this_image_is_restored_to_that_layer() {
    let ex = Example::signed();
    let helper = Subject::sha256(&format!("{CA}:helper"), &ex.diff_id(CA, "helper")).unwrap();
    let predicate = cdx("layer-only");
    ex.store_statement(
        vec![helper],
        CDX,
        &predicate,
        &hints(CA, "helper", CDX_MEDIA, &predicate),
    );
    let out = ex.tmp.path().join("out");
    let result = ex.download(&out, &[]);
    assert!(result.status.success(), "{}", text(&result));
    let restored = cnb_attest_tests::sbom_files(&out.join("layers"));
    let place = "paketo-buildpacks_ca-certificates/helper/sbom.cdx.json";
    assert_eq!(
        restored.get(place),
        Some(&predicate),
        "{:?}",
        restored.keys()
    );
}

/// Case 2: a layer subject whose diffID is not a layer of this image (replayed from another image
/// or a pre-rebase run image), and one whose diffID is in the image but belongs to another layer
/// than the one it names (replayed onto another layer of the same image).
#[test]
fn a_layer_diff_id_that_is_not_this_layer_of_this_image_is_refused() {
    let ex = Example::signed();
    let foreign = cdx("foreign-layer");
    let not_in_image = ex.store_statement(
        ex.layer_subjects(CA, "helper", &hex_of(b"a layer of another image")),
        CDX,
        &foreign,
        &hints(CA, "helper", CDX_MEDIA, &foreign),
    );
    let replayed = cdx("replayed-layer");
    let other_layer = ex.store_statement(
        ex.layer_subjects(CA, "helper", &ex.diff_id(NODE, "node")),
        CDX,
        &replayed,
        &hints(CA, "helper", CDX_MEDIA, &replayed),
    );
    let out = ex.tmp.path().join("out");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[
            (&not_in_image, "is neither this image"),
            (
                &other_layer,
                "is not the layer the image's label records for it",
            ),
        ],
        &ex.good(),
    );
}

/// Case 4: the annotations say CycloneDX, the signed statement is SPDX; asked for CycloneDX only
/// or for everything, in both storage formats, it is refused: annotations never decide.
#[test]
fn a_predicate_type_the_annotations_misstate_is_refused() {
    let ex = Example::signed();
    let predicate = spdx("misstated-type");
    let statement = Statement::new(
        StatementVersion::V1,
        ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper")),
        SPDX,
        predicate.clone(),
    )
    .unwrap();
    let envelope = ex.sign(statement.to_json());
    let annotations = hints(CA, "helper", CDX_MEDIA, &predicate);
    let bundle = ex.store(StorageFormat::Bundle, &envelope, CDX, &annotations);
    let dsse = ex.store(StorageFormat::Dsse, &envelope, CDX, &annotations);
    let reason =
        format!("manifest says predicate type `{CDX}` but the signed statement says `{SPDX}`");
    let failures = [
        (bundle.as_str(), reason.as_str()),
        (dsse.as_str(), reason.as_str()),
    ];

    let only_cdx: BTreeMap<String, Vec<u8>> = ex
        .good()
        .into_iter()
        .filter(|(path, _)| path.ends_with("sbom.cdx.json"))
        .collect();
    assert_eq!(only_cdx.len(), 2);
    let out = ex.tmp.path().join("out-cdx");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &["--format", "cdx"]),
        3,
        &failures,
        &only_cdx,
    );
    let out = ex.tmp.path().join("out-all");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &failures,
        &ex.good(),
    );
}

/// Case 5 (CVE-2022-35929): CycloneDX is asked for, only a (validly signed) SPDX attestation
/// exists: nothing matches, exit 4, nothing written; the same attestation does verify.
#[test]
fn asking_for_cyclonedx_when_only_spdx_is_signed_writes_nothing() {
    let ex = Example::unsigned();
    let predicate = spdx("only-spdx");
    ex.store_statement(
        ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper")),
        SPDX,
        &predicate,
        &hints(CA, "helper", SPDX_MEDIA, &predicate),
    );
    let out = ex.tmp.path().join("out-cdx");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &["--format", "cdx"]),
        4,
        &[],
        &BTreeMap::new(),
    );
    assert!(
        report.contains("no verified SBOM attestation matches"),
        "{report}"
    );

    let out = ex.tmp.path().join("out-all");
    ok(ex.download(&out, &[]));
    assert_eq!(
        files(&out),
        BTreeMap::from([(
            "layers/sbom/launch/paketo-buildpacks_ca-certificates/helper/sbom.spdx.json"
                .to_string(),
            predicate
        )])
    );
}

/// A well-formed statement signed by a key other than `--key`, in both storage formats: not signed
/// by a trusted key, so left out (never written) while every verified SBOM is restored.
#[test]
fn a_signature_by_another_key_is_left_out() {
    let ex = Example::signed();
    let other = SigningKey::generate().unwrap();
    let predicate = cdx("another-key");
    let statement = Statement::new(
        StatementVersion::V1,
        ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper")),
        CDX,
        predicate.clone(),
    )
    .unwrap();
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &other).unwrap();
    let annotations = hints(CA, "helper", CDX_MEDIA, &predicate);
    let hint = other.public_key().hint();
    let mut digests = Vec::new();
    for format in [StorageFormat::Bundle, StorageFormat::Dsse] {
        let referrer = build_referrer(
            format,
            &envelope,
            &ReferrerParts {
                subject: &ex.image.descriptor,
                predicate_type: CDX,
                annotations: &annotations,
                key_hint: &hint,
                verification_material: None,
                created: None,
            },
        );
        ex.layout
            .store_referrers(std::slice::from_ref(&referrer))
            .unwrap();
        digests.push(referrer.descriptor.digest.to_string());
    }
    let out = ex.tmp.path().join("out");
    assert_leaves_out(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        0,
        &[
            (
                &digests[0],
                "not signed by a trusted key (signature does not verify",
            ),
            (
                &digests[1],
                "not signed by a trusted key (signature does not verify",
            ),
        ],
        &ex.good(),
    );
}

/// A payload changed after signing (every digest recomputed, so only the signature can tell), a
/// signature over the raw payload instead of PAE (case 8), and a payload signed under another
/// payload type (case 7): none verifies, so each is left out (never written) while every verified
/// SBOM is restored.
#[test]
fn a_tampered_payload_is_left_out() {
    let ex = Example::signed();
    let subjects = ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper"));
    let statement = |predicate: &[u8]| {
        Statement::new(
            StatementVersion::V1,
            subjects.clone(),
            CDX,
            predicate.to_vec(),
        )
        .unwrap()
        .to_json()
    };

    let original = cdx("tampered");
    let mut envelope = ex.sign(statement(&original));
    let forged = cdx("TAMPERED");
    envelope.payload = statement(&forged);
    let tampered = ex.store(
        StorageFormat::Bundle,
        &envelope,
        CDX,
        &hints(CA, "helper", CDX_MEDIA, &forged),
    );

    let raw = cdx("raw-signature");
    let payload = statement(&raw);
    let raw_envelope = Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        signatures: vec![Signature {
            keyid: String::new(),
            sig: ex.key.sign(&payload).unwrap(),
        }],
        payload,
    };
    let not_pae = ex.store(
        StorageFormat::Dsse,
        &raw_envelope,
        CDX,
        &hints(CA, "helper", CDX_MEDIA, &raw),
    );

    let typed = cdx("payload-type");
    let json_envelope = Envelope::sign("application/json", statement(&typed), &ex.key).unwrap();
    let wrong_type = ex.store(
        StorageFormat::Bundle,
        &json_envelope,
        CDX,
        &hints(CA, "helper", CDX_MEDIA, &typed),
    );

    let out = ex.tmp.path().join("out");
    assert_leaves_out(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        0,
        &[
            (
                &tampered,
                "not signed by a trusted key (signature does not verify",
            ),
            (
                &not_pae,
                "not signed by a trusted key (signature does not verify",
            ),
            (&wrong_type, "DSSE payloadType is `application/json`"),
        ],
        &ex.good(),
    );
}

// ---------------------------------------------------------------------------------------------
// Oversized documents (cases 19, 20, 23): refused from their size, never read.
// ---------------------------------------------------------------------------------------------

/// In a layout, with 5 GiB sparse files: a referrer manifest listed as 5 GiB; one listed as small
/// whose file is 5 GiB; an attestation blob whose descriptor says 5 GiB; one whose descriptor says
/// 3000 bytes but whose file is 5 GiB. Each is refused at its limit, naming the attestation, and
/// left out: the verified SBOMs are restored.
#[test]
fn oversized_manifests_and_blobs_in_a_layout_are_refused_unread() {
    let ex = Example::signed();
    let listed_huge = ex.sparse_blob("manifest listed as 5 GiB", FIVE_GIB);
    let mut descriptor = Descriptor::for_bytes(OCI_MANIFEST, b"");
    descriptor.digest = listed_huge.clone();
    descriptor.size = FIVE_GIB;
    descriptor.artifact_type = Some(BUNDLE.into());
    let file_huge = ex.sparse_blob("manifest listed as small, 5 GiB on disk", FIVE_GIB);
    let mut small = descriptor.clone();
    small.digest = file_huge.clone();
    small.size = 1049;
    ex.layout
        .add_to_index(&[descriptor.clone(), small])
        .unwrap();

    // Real signed referrers whose layer descriptor is then made to point at a 5 GiB blob.
    let mut blob_referrer = |tag: &str, layer: Digest, size: u64| {
        let predicate = cdx(tag);
        let statement = Statement::new(
            StatementVersion::V1,
            ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper")),
            CDX,
            predicate.clone(),
        )
        .unwrap();
        let annotations = hints(CA, "helper", CDX_MEDIA, &predicate);
        let referrer = ex.referrer(
            StorageFormat::Bundle,
            &ex.sign(statement.to_json()),
            CDX,
            &annotations,
        );
        let mut manifest = referrer.manifest.clone();
        manifest.layers[0].digest = layer;
        manifest.layers[0].size = size;
        let bytes = manifest.to_json();
        ex.layout.write_blob(&bytes).unwrap();
        descriptor = Descriptor::for_bytes(OCI_MANIFEST, &bytes);
        descriptor.artifact_type = Some(BUNDLE.into());
        descriptor.annotations = referrer.descriptor.annotations.clone();
        ex.layout.add_to_index(&[descriptor.clone()]).unwrap();
        descriptor.digest.to_string()
    };
    let blob_listed_huge = blob_referrer(
        "blob-listed-huge",
        ex.sparse_blob("blob listed as 5 GiB", FIVE_GIB),
        FIVE_GIB,
    );
    let blob_file_huge = blob_referrer(
        "blob-file-huge",
        ex.sparse_blob("blob listed as 3000 bytes, 5 GiB on disk", FIVE_GIB),
        3000,
    );

    let out = ex.tmp.path().join("out");
    let mut took = std::time::Duration::ZERO;
    assert_leaves_out(
        ex.tmp.path(),
        &out,
        || {
            let started = std::time::Instant::now();
            let output = ex.download(&out, &[]);
            took = started.elapsed();
            output
        },
        0,
        &[
            (
                listed_huge.as_str(),
                "listed manifest of 5368709120 bytes exceeds the 4194304-byte limit",
            ),
            (
                file_huge.as_str(),
                "5368709120 bytes exceeds the 4194304-byte limit",
            ),
            (
                &blob_listed_huge,
                "attestation blob of 5368709120 bytes exceeds the 1073741824-byte limit",
            ),
            (
                // Read bounded by the size its descriptor gives, as from a registry.
                &blob_file_huge,
                "5368709120 bytes exceeds the 3000-byte limit",
            ),
        ],
        &ex.good(),
    );
    // Reading (or hashing) 20 GiB would take minutes and as much memory.
    assert!(
        took < std::time::Duration::from_secs(20),
        "refusing the 5 GiB files took {took:?}: were they read?"
    );
}

// ---------------------------------------------------------------------------------------------
// Digest strings that are paths (case 28).
// ---------------------------------------------------------------------------------------------

/// An `index.json` entry whose digest is a path: the layout is refused as a whole before any blob
/// path is built from it; nothing is written.
#[test]
fn a_layout_listing_a_digest_with_dot_dot_is_refused_before_use() {
    let ex = Example::signed();
    let path = ex.image_dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let bad = "sha256:../../../../escaped";
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": bad,
        "size": 1049,
        "artifactType": BUNDLE,
    }));
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    let out = ex.tmp.path().join("out");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        1,
        &[],
        &BTreeMap::new(),
    );
    assert!(
        report.contains(&format!("`{bad}` is not a sha256 digest")),
        "{report}"
    );
    assert!(!out.exists(), "the output directory was created");
}

/// Referrer manifests whose layer digest or subject digest holds `..` or `/`, and a signed
/// statement whose subject digest does: each attestation is refused by name. The manifests cannot
/// be verified and are left out; the signed statement breaks a rule and refuses the restore.
#[test]
fn digests_with_dot_dot_or_slash_inside_attestations_are_refused() {
    let ex = Example::signed();
    let template = {
        let predicate = cdx("digest-template");
        let statement = Statement::new(
            StatementVersion::V1,
            ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper")),
            CDX,
            predicate.clone(),
        )
        .unwrap();
        ex.referrer(
            StorageFormat::Bundle,
            &ex.sign(statement.to_json()),
            CDX,
            &hints(CA, "helper", CDX_MEDIA, &predicate),
        )
    };
    // Its blobs are stored, so only the hostile digest can make it fail.
    for (descriptor, blob) in &template.blobs {
        ex.layout.write_planned_blob(descriptor, blob).unwrap();
    }
    let annotations = template.descriptor.annotations.clone().unwrap();
    let manifest: Value = serde_json::from_slice(&template.manifest_bytes).unwrap();

    let mut layer_path = manifest.clone();
    layer_path["layers"][0]["digest"] = json!("sha256:../../../../escaped");
    let layer_path = ex.store_raw_manifest(&layer_path, &annotations);
    let mut subject_path = manifest.clone();
    subject_path["subject"]["digest"] = json!(format!("sha256:aa/../{}", ex.image_hex()));
    let subject_path = ex.store_raw_manifest(&subject_path, &annotations);

    // A signed statement (raw JSON: the typed model refuses to build it).
    let predicate = cdx("subject-path");
    let payload = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "image", "digest": {"sha256": ex.image_hex()}},
            {"name": format!("{CA}:helper"), "digest": {"sha256": "../../../../escaped"}},
        ],
        "predicateType": CDX,
        "predicate": serde_json::from_slice::<Value>(&predicate).unwrap(),
    });
    let statement_path = ex.store(
        StorageFormat::Bundle,
        &ex.sign(serde_json::to_vec(&payload).unwrap()),
        CDX,
        &hints(CA, "helper", CDX_MEDIA, &predicate),
    );

    let out = ex.tmp.path().join("out");
    assert_trust_policy(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[(&statement_path, "sha256 digest is not lowercase hex")],
        &[
            (
                &layer_path,
                "`sha256:../../../../escaped` is not a sha256 digest",
            ),
            (&subject_path, "is not a sha256 digest"),
        ],
        &ex.good(),
    );
}

// ---------------------------------------------------------------------------------------------
// Paths from remote data (case 55): annotations and signed names.
// ---------------------------------------------------------------------------------------------

/// Selection annotations naming a buildpack or layer that is a path out of the output directory
/// (relative, absolute) on a validly signed statement: refused, since they disagree with the
/// signed subject. A hostile `org.opencontainers.image.title` is never used as a path: the SBOM
/// goes where the signed subjects say.
#[test]
fn annotations_that_would_write_outside_the_output_directory_are_refused() {
    let ex = Example::signed();
    let subjects = ex.layer_subjects(CA, "helper", &ex.diff_id(CA, "helper"));
    let escape = "../../../../escaped";
    let absolute = ex.tmp.path().join("escaped-absolute");
    let absolute = absolute.to_str().unwrap();

    let relative_predicate = cdx("annotation-relative");
    let relative = ex.store_statement(
        subjects.clone(),
        CDX,
        &relative_predicate,
        &hints(escape, escape, CDX_MEDIA, &relative_predicate),
    );
    let absolute_predicate = cdx("annotation-absolute");
    let absolute = ex.store_statement(
        subjects.clone(),
        CDX,
        &absolute_predicate,
        &hints(absolute, "helper", CDX_MEDIA, &absolute_predicate),
    );
    let titled = cdx("annotation-title");
    let mut annotations = hints(CA, "helper", CDX_MEDIA, &titled);
    annotations.insert(
        "org.opencontainers.image.title".into(),
        "../../../../escaped-title.json".into(),
    );
    ex.store_statement(subjects, CDX, &titled, &annotations);

    let mut expected = ex.good();
    expected.insert(
        "layers/sbom/launch/paketo-buildpacks_ca-certificates/helper/sbom.cdx.json".into(),
        titled,
    );
    let out = ex.tmp.path().join("out");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[
            (
                &relative,
                "manifest annotations name layer `../../../../escaped:../../../../escaped`",
            ),
            (&absolute, "manifest annotations name layer"),
        ],
        &expected,
    );
}

/// Signed subject names that are paths out of the output directory, with annotations that agree
/// with them and diffIDs that are this image's: the buildpack or layer name is refused. An
/// image-scoped statement whose subject and annotation name no buildpack of the label belongs to
/// no buildpack: noted, never written.
#[test]
fn signed_subject_names_that_would_write_outside_are_refused() {
    let ex = Example::signed();
    let helper = ex.diff_id(CA, "helper");
    let escape = "../../../../escaped";
    let absolute = ex.tmp.path().join("escaped-absolute");
    let absolute = absolute.to_str().unwrap().to_string();

    let store = |tag: &str, buildpack: &str, layer: Option<&str>| {
        let predicate = cdx(tag);
        let (subjects, annotations) = match layer {
            Some(layer) => (
                ex.layer_subjects(buildpack, layer, &helper),
                hints(buildpack, layer, CDX_MEDIA, &predicate),
            ),
            None => {
                let mut annotations = hints(buildpack, "-", CDX_MEDIA, &predicate);
                annotations.remove("io.buildpacks.layer.name");
                annotations.remove("io.buildpacks.layer.digest-kind");
                (
                    vec![
                        Subject::sha256("image", &ex.image_hex()).unwrap(),
                        Subject::sha256(buildpack, &ex.image_hex()).unwrap(),
                    ],
                    annotations,
                )
            }
        };
        ex.store_statement(subjects, CDX, &predicate, &annotations)
    };
    let bad_buildpack = store("subject-buildpack", escape, Some("helper"));
    let bad_layer = store("subject-layer", CA, Some(escape));
    let absolute_buildpack = store("subject-absolute", &absolute, Some("helper"));
    let image_scoped = store("subject-image-scoped", escape, None);

    let out = ex.tmp.path().join("out");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[
            (&bad_buildpack, "`..`"),
            (&bad_layer, "path separator"),
            (&absolute_buildpack, "is not in the image's label"),
        ],
        &ex.good(),
    );
    assert!(
        report.lines().any(|l| l.starts_with("Skipped ")
            && l.contains(&image_scoped)
            && l.contains("belongs to no buildpack of this image: not restored")),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Links planted in the output directory (case 57).
// ---------------------------------------------------------------------------------------------

/// Plants a symlink at `planted` (relative to a fresh output directory `out-<i>`) pointing to a
/// fresh directory `outside-<i>` (or, for an SBOM file, to `outside-<i>/secret`, created when
/// `existing`), downloads the signed example, and checks the download failed without following
/// it: the reason and the path are named, nothing outside changed, the link is still there, and
/// every file written is a good SBOM with its exact bytes, none below the link. Returns the report.
fn plant_and_download(ex: &Example, i: usize, planted: &str, existing: bool) -> String {
    let out = ex.tmp.path().join(format!("out-{i}"));
    let target_dir = ex.tmp.path().join(format!("outside-{i}"));
    fs::create_dir_all(&target_dir).unwrap();
    fs::write(target_dir.join("keep"), "outside").unwrap();
    let link = out.join(planted);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    let target = if planted.ends_with(".json") {
        if existing {
            fs::write(target_dir.join("secret"), "do not overwrite").unwrap();
        }
        target_dir.join("secret")
    } else {
        target_dir.clone()
    };
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let before = outside(ex.tmp.path(), &out);
    let output = ex.download(&out, &[]);
    let report = text(&output);
    assert!(!output.status.success(), "{planted}: {report}");
    assert!(
        report.contains("symbolic link") || report.contains("not a regular file"),
        "{planted}: no reason given:\n{report}"
    );
    assert!(
        report.contains(&link.display().to_string()),
        "{planted}: the path is not named:\n{report}"
    );
    assert_eq!(
        outside(ex.tmp.path(), &out),
        before,
        "{planted}: wrote outside"
    );
    assert_eq!(
        fs::read_link(&link).unwrap(),
        target,
        "{planted}: link replaced"
    );
    let good = ex.good();
    for (path, bytes) in files(&out) {
        if path == planted {
            continue;
        }
        assert!(
            !Path::new(&path).starts_with(planted),
            "{planted}: {path} written below the link"
        );
        assert_eq!(
            good.get(&path),
            Some(&bytes),
            "{planted}: unexpected file {path}"
        );
    }
    report
}

const NODE_DIR: &str = "layers/sbom/launch/paketo-buildpacks_node-engine";

/// Case 57: a symlink at every level from `<out>/layers` down to an SBOM file (to a directory
/// outside, to a missing file outside, to an existing file outside) is refused, never followed;
/// a hard link at an SBOM's place is replaced, never written through.
#[test]
fn a_symlink_planted_in_the_output_directory_is_not_followed() {
    let ex = Example::signed();
    let file = format!("{NODE_DIR}/node/sbom.cdx.json");
    let plants = [
        ("layers", true),
        ("layers/sbom", true),
        ("layers/sbom/launch", true),
        (NODE_DIR, true),
        (&format!("{NODE_DIR}/node"), true),
        (&file, false),
        (&file, true),
    ];
    for (i, (planted, existing)) in plants.into_iter().enumerate() {
        plant_and_download(&ex, i, planted, existing);
    }

    let out = ex.tmp.path().join("out-hard");
    let secret = ex.tmp.path().join("outside-hard");
    fs::write(&secret, "do not overwrite").unwrap();
    fs::create_dir_all(out.join(&file).parent().unwrap()).unwrap();
    fs::hard_link(&secret, out.join(&file)).unwrap();
    // The earlier tree is replaced as a whole (issue 14, item 10d): the link is removed, never
    // written through.
    let _ = ex.download(&out, &["--replace"]);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "do not overwrite");
    assert_eq!(fs::read(out.join(&file)).unwrap(), ex.good()[&file]);
}

/// Case 57, the message: where the refused link is below `sbom/launch/`, it blocks particular
/// attestations' files, and the message must name the attestation (its digest) as well as the
/// path and the reason.
#[test]
fn a_refused_symlink_names_the_attestation_whose_file_it_blocks() {
    let ex = Example::signed();
    let node: Vec<String> = [CDX, SPDX, "https://syft.dev/bom"]
        .iter()
        .map(|p| ex.listed(NODE, "node", p))
        .collect();
    let file = format!("{NODE_DIR}/node/sbom.cdx.json");
    let plants: [(&str, &[String]); 3] = [
        (NODE_DIR, &node),
        (&format!("{NODE_DIR}/node"), &node),
        (&file, &node[..1]),
    ];
    let mut unnamed = Vec::new();
    for (i, (planted, owners)) in plants.into_iter().enumerate() {
        let report = plant_and_download(&ex, i, planted, true);
        if !owners.iter().any(|d| report.contains(d.as_str())) {
            unnamed.push(format!(
                "{planted}: names none of the attestations whose file is refused {owners:?}:\n{report}"
            ));
        }
    }
    assert!(unnamed.is_empty(), "{}", unnamed.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Over the network: a real registry behind the fault-injecting proxy.
// ---------------------------------------------------------------------------------------------

/// The example pushed to a CNCF Distribution registry and signed there by the CLI.
fn remote() -> Option<SignedImage> {
    SignedImage::signed(Kind::Distribution)
}

/// The attestation blob's descriptor (digest, size) of a referrer manifest, read with curl.
fn layer_of(remote: &SignedImage, manifest: &str) -> (String, u64) {
    let (status, body) = remote
        .registry
        .curl(&format!("/v2/{REPO}/manifests/{manifest}"), OCI_MANIFEST);
    assert_eq!(status, 200, "{body}");
    let manifest: Value = serde_json::from_str(&body).unwrap();
    (
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
        manifest["layers"][0]["size"].as_u64().unwrap(),
    )
}

/// The good files minus `except` (relative to `sbom/launch`).
fn good_except(remote: &SignedImage, except: &str) -> BTreeMap<String, Vec<u8>> {
    let mut good = remote.good();
    assert!(good
        .remove(&format!("layers/sbom/launch/{except}"))
        .is_some());
    good
}

/// Cases 19 and 23: the referrer manifest of one attestation is answered with a 5 GiB
/// `Content-Length`, then with an endless chunked body. The first is refused from its header, the
/// second at the 4 MiB manifest limit; the proxy, ready to send 1 GiB, sends only a little; it is
/// left out and the other attestations are written.
#[test]
fn an_oversized_referrer_manifest_over_http_is_refused_at_the_limit() {
    let Some(remote) = remote() else {
        return;
    };
    let target = remote.attestation(NODE, "node", CDX);
    for (case, length, most) in [
        ("5 GiB Content-Length", Some(FIVE_GIB), 16u64 << 20),
        ("endless chunked body", None, 4u64 << 20),
    ] {
        let path = format!("/v2/{REPO}/manifests/{target}");
        let proxy = remote.streaming(&path, 200, OCI_MANIFEST, length);
        let out = remote.tmp.path().join(format!("out-{}", length.is_some()));
        assert_leaves_out(
            remote.tmp.path(),
            &out,
            || remote.download(&proxy, &out),
            0,
            &[(&target, MAX_MANIFEST)],
            &good_except(&remote, "paketo-buildpacks_node-engine/node/sbom.cdx.json"),
        );
        let served = proxy.matching(|r| r.path() == path);
        assert_eq!(
            served.len(),
            1,
            "{case}: fetched once, not retried:\n{}",
            proxy.summary()
        );
        // What the client read is at most what went out; socket buffers hold a few MiB more.
        assert!(
            served[0].sent <= most + (24 << 20),
            "{case}: {} of the body went out: it was read past the limit",
            mib(served[0].sent)
        );
        eprintln!(
            "{case}: {} of the manifest body went out",
            mib(served[0].sent)
        );
    }
}

/// Serves one attestation's blob (its descriptor says a few KiB) as `length` says (`None`: an
/// endless chunked body) and checks the download leaves that attestation out, naming it, and
/// writes the others. Returns its report line, the bytes of the body that went out and the
/// descriptor size.
fn serve_blob(length: Option<u64>, reason: &str) -> Option<(String, u64, u64)> {
    let remote = remote()?;
    let target = remote.attestation(NODE, "node", CDX);
    let (blob, size) = layer_of(&remote, &target);
    assert!(size < 64 * 1024, "{size}");
    let path = format!("/v2/{REPO}/blobs/{blob}");
    let proxy = remote.streaming(&path, 200, "application/octet-stream", length);
    let out = remote.tmp.path().join("out");
    let report = assert_leaves_out(
        remote.tmp.path(),
        &out,
        || remote.download(&proxy, &out),
        0,
        &[(&target, reason)],
        &good_except(&remote, "paketo-buildpacks_node-engine/node/sbom.cdx.json"),
    );
    let served = proxy.matching(|r| r.path() == path);
    assert_eq!(
        served.len(),
        1,
        "fetched once, not retried:\n{}",
        proxy.summary()
    );
    let failed = report
        .lines()
        .filter(|l| l.starts_with("Warning: left out"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "{} of the blob body went out; {failed}",
        mib(served[0].sent)
    );
    Some((failed, served[0].sent, size))
}

/// Cases 19 and 23: one attestation's blob is answered with a 5 GiB `Content-Length`: refused
/// from the header (above the size its descriptor announces, itself under the 64 MiB attestation
/// limit), the body left unread.
#[test]
fn an_attestation_blob_with_a_5_gib_content_length_is_refused_unread() {
    let Some((_, sent, _)) = serve_blob(Some(FIVE_GIB), "response of 5368709120 bytes exceeds the")
    else {
        return;
    };
    assert!(
        sent <= 24 << 20,
        "{} of the 5 GiB body went out: it was read",
        mib(sent)
    );
}

/// Case 20 ("blob bigger than its descriptor size → stop at descriptor size and fail digest
/// check; never trust Content-Length alone"): an endless chunked body for a blob whose descriptor
/// says a few KiB must be cut at (about) that size, not read to the 64 MiB attestation limit.
#[test]
fn an_attestation_blob_longer_than_its_descriptor_is_cut_at_the_descriptor_size() {
    let Some((_, sent, size)) = serve_blob(None, "") else {
        return;
    };
    // Socket buffers let a few MiB go out beyond what the client reads.
    assert!(
        sent <= size + (24 << 20),
        "{} of a blob whose descriptor says {size} bytes went out: the client read past the \
         descriptor size",
        mib(sent)
    );
}

/// Case 24: a Referrers API whose `Link: rel="next"` never ends (a new page each time, then a page
/// linking to itself): the listing stops after 16 pages with a message naming the image and the
/// limit; nothing is written.
#[test]
fn endless_referrer_pages_are_refused_after_the_page_limit() {
    let Some(remote) = remote() else {
        return;
    };
    let referrers = format!("/v2/{REPO}/referrers/{}", remote.digest);
    for looping in [false, true] {
        let page_path = referrers.clone();
        let proxy = Proxy::start(
            &remote.registry.host,
            Plan::new().on(
                {
                    let path = referrers.clone();
                    move |r: &RequestInfo| r.method == "GET" && r.path() == path
                },
                move |_, n| {
                    let next = if looping {
                        page_path.clone()
                    } else {
                        format!("{page_path}?n=1&last=page-{}", n + 1)
                    };
                    Action::Respond {
                        status: 200,
                        headers: vec![
                            ("Content-Type".into(), OCI_INDEX.into()),
                            ("Link".into(), format!("<{next}>; rel=\"next\"")),
                        ],
                        body: serde_json::to_vec(&json!({
                            "schemaVersion": 2,
                            "mediaType": OCI_INDEX,
                            "manifests": [],
                        }))
                        .unwrap(),
                    }
                },
            ),
        );
        let out = remote.tmp.path().join(format!("out-{looping}"));
        let report = assert_fails_closed(
            remote.tmp.path(),
            &out,
            || remote.download(&proxy, &out),
            1,
            &[],
            &BTreeMap::new(),
        );
        assert!(report.contains("more than 16 pages"), "{report}");
        assert!(
            report.contains(&remote.digest),
            "the image is not named:\n{report}"
        );
        let pages = proxy.matching(|r| r.path() == referrers).len();
        assert_eq!(pages, 16, "looping {looping}:\n{}", proxy.summary());
        assert!(!out.exists(), "the output directory was created");
    }
}

/// Case 28 over HTTP: the `sha256-<hex>` referrers index lists a digest that is a path (the whole
/// listing is refused), or a referrer manifest whose layer digest is one (that attestation is
/// refused and left out); no request is ever made to a path built from them.
#[test]
fn digests_with_dot_dot_in_registry_documents_are_refused_before_any_request() {
    let Some(remote) = remote() else {
        return;
    };
    let tag_path = format!("/v2/{REPO}/manifests/sha256-{}", &remote.digest[7..]);
    let (status, body) = remote.registry.curl(&tag_path, OCI_INDEX);
    assert_eq!(status, 200, "{body}");
    let index: Value = serde_json::from_str(&body).unwrap();
    let no_path_requests = |proxy: &Proxy| {
        for r in proxy.requests() {
            let target = r.request.target.to_ascii_lowercase();
            assert!(
                !target.contains("..") && !target.contains("%2e") && !target.contains("escaped"),
                "a request was built from a hostile digest:\n{}",
                proxy.summary()
            );
        }
    };

    // 1. A listed descriptor whose digest is a path.
    let bad = "sha256:../../../../escaped";
    let mut listed = index.clone();
    listed["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": bad,
        "size": 1049,
        "artifactType": BUNDLE,
    }));
    let proxy = Proxy::start(
        &remote.registry.host,
        Plan::new().on(get(tag_path.clone()), move |_, _| {
            // A consistent liar: the registry's digest header matches the bytes it serves.
            let body = serde_json::to_vec(&listed).unwrap();
            Action::Rewrite {
                status: None,
                headers: vec![("Docker-Content-Digest".into(), sha256(&body))],
                body,
            }
        }),
    );
    let out = remote.tmp.path().join("out-listed");
    let report = assert_fails_closed(
        remote.tmp.path(),
        &out,
        || remote.download(&proxy, &out),
        1,
        &[],
        &BTreeMap::new(),
    );
    assert!(
        report.contains(&format!("`{bad}` is not a sha256 digest")),
        "{report}"
    );
    no_path_requests(&proxy);

    // 2. A listed referrer (valid digest) whose manifest's layer digest is a path.
    let target = remote.attestation(NODE, "node", CDX);
    let (status, body) = remote
        .registry
        .curl(&format!("/v2/{REPO}/manifests/{target}"), OCI_MANIFEST);
    assert_eq!(status, 200);
    let mut manifest: Value = serde_json::from_str(&body).unwrap();
    manifest["layers"][0]["digest"] = json!(bad);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let crafted = sha256(&manifest);
    let mut listed = index.clone();
    list_like(&mut listed, &target, &manifest);
    let proxy = Proxy::start(
        &remote.registry.host,
        Plan::new()
            .on(get(tag_path.clone()), move |_, _| {
                let body = serde_json::to_vec(&listed).unwrap();
                Action::Rewrite {
                    status: None,
                    headers: vec![("Docker-Content-Digest".into(), sha256(&body))],
                    body,
                }
            })
            .on(
                get(format!("/v2/{REPO}/manifests/{crafted}")),
                move |_, _| Action::Respond {
                    status: 200,
                    headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
                    body: manifest.clone(),
                },
            ),
    );
    let out = remote.tmp.path().join("out-layer");
    assert_leaves_out(
        remote.tmp.path(),
        &out,
        || remote.download(&proxy, &out),
        0,
        &[(&crafted, &format!("`{bad}` is not a sha256 digest"))],
        &remote.good(),
    );
    no_path_requests(&proxy);
}

// ---------------------------------------------------------------------------------------------
// What other writers store (issue 8): image-only statements, platform attestations, and `verify`
// holding to download's placement rules.
// ---------------------------------------------------------------------------------------------

/// The buildpack annotation alone, without the layer annotations the signer adds.
fn buildpack_only(buildpack: &str, predicate: &[u8]) -> BTreeMap<String, String> {
    let mut annotations = hints(buildpack, "-", CDX_MEDIA, predicate);
    annotations.remove("io.buildpacks.layer.name");
    annotations.remove("io.buildpacks.layer.digest-kind");
    annotations
}

/// A statement whose only subject is the image (what `cosign attest` and `@sigstore/cli` write):
/// placed by its `io.buildpacks.buildpack.id` annotation (the buildpack is in the label), written
/// byte for byte and reported as an unsigned placement; `--signed-placement-only` refuses it
/// (reported, not written) and restores the rest.
#[test]
fn an_image_only_statement_is_placed_by_its_annotation_and_marked_unsigned() {
    let ex = Example::signed();
    let predicate = cdx("image-only");
    let digest = ex.store_statement(
        vec![Subject::sha256("registry.example/app", &ex.image_hex()).unwrap()],
        CDX,
        &predicate,
        &buildpack_only(CA, &predicate),
    );
    let place = "paketo-buildpacks_ca-certificates/sbom.cdx.json";
    let mut expected = ex.good();
    expected.insert(format!("layers/sbom/launch/{place}"), predicate);
    let out = ex.tmp.path().join("out");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        0,
        &[],
        &expected,
    );
    assert!(
        report.contains(&format!(
            "Warning: {place}: placed by the unsigned io.buildpacks.buildpack.id annotation"
        )),
        "{report}"
    );
    let json_out = ex.tmp.path().join("out-json");
    let json = ok(ex.download(&json_out, &["--json"]));
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["unsigned-placement"], json!([place]), "{json:#}");

    let strict = ex.tmp.path().join("out-strict");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &strict,
        || ex.download(&strict, &["--signed-placement-only"]),
        0,
        &[],
        &ex.good(),
    );
    assert!(
        report.lines().any(|l| l.starts_with("Skipped ")
            && l.contains(&digest)
            && l.contains("unsigned buildpack annotation")),
        "{report}"
    );
}

/// A platform attestation (a run-image CycloneDX SBOM, SLSA provenance) with only the image subject
/// and no buildpack annotation: verified, noted as belonging to no buildpack, never blocking.
#[test]
fn a_platform_attestation_never_blocks_the_restore() {
    let ex = Example::signed();
    let predicate = cdx("run-image");
    let mut annotations = buildpack_only(CA, &predicate);
    annotations.remove("io.buildpacks.buildpack.id");
    let run_image = ex.store_statement(
        vec![Subject::sha256("registry.example/app", &ex.image_hex()).unwrap()],
        CDX,
        &predicate,
        &annotations,
    );
    ex.store_statement(
        vec![Subject::sha256("registry.example/app", &ex.image_hex()).unwrap()],
        "https://slsa.dev/provenance/v1",
        br#"{"buildDefinition":{}}"#,
        &BTreeMap::new(),
    );
    let out = ex.tmp.path().join("out");
    let report = assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &["--require-all-layers"]),
        0,
        &[],
        &ex.good(),
    );
    assert!(
        report.lines().any(|l| l.starts_with("Skipped ")
            && l.contains(&run_image)
            && l.contains("belongs to no buildpack of this image: not restored")),
        "{report}"
    );
}

/// Issue 8 item 5: a correctly signed statement whose layer subject names
/// `paketo-buildpacks/node-engine:node` with ca-certificates' diffID. `download` refuses it, and
/// so does `verify` now, naming the rule.
#[test]
fn verify_refuses_what_download_refuses() {
    let ex = Example::signed();
    let predicate = cdx("wrong-layer");
    let wrong = ex.store_statement(
        ex.layer_subjects(NODE, "node", &ex.diff_id(CA, "helper")),
        CDX,
        &predicate,
        &hints(NODE, "node", CDX_MEDIA, &predicate),
    );
    let verify = run(Command::new(bin("cnb-attest"))
        .args(["verify", "--json", "--key"])
        .arg(ex.keys().join("cosign.pub"))
        .arg(ex.reference()));
    assert_eq!(verify.status.code(), Some(3), "{}", text(&verify));
    let verdicts: Vec<Value> = serde_json::from_slice(&verify.stdout).unwrap();
    let failed: Vec<&Value> = verdicts
        .iter()
        .filter(|v| !v["failure"].is_null())
        .collect();
    assert_eq!(failed.len(), 1, "{verdicts:#?}");
    assert_eq!(failed[0]["manifest-digest"], wrong.as_str());
    assert_eq!(failed[0]["rule"], "unrecorded-layer");
    let out = ex.tmp.path().join("out");
    assert_fails_closed(
        ex.tmp.path(),
        &out,
        || ex.download(&out, &[]),
        3,
        &[(&wrong, "is not the layer the image's label records for it")],
        &ex.good(),
    );
}

/// `verify --buildpack`, `--predicate-type` and `--require-all-layers` choose and check as
/// `download` does: only the chosen attestations are judged, and a launch SBOM whose attestation
/// is gone is named.
#[test]
fn verify_selects_and_checks_coverage_as_download_does() {
    let ex = Example::signed();
    let verify = |extra: &[&str]| {
        run(Command::new(bin("cnb-attest"))
            .args(["verify", "--json", "--key"])
            .arg(ex.keys().join("cosign.pub"))
            .arg(ex.reference())
            .args(extra))
    };
    let verdicts = |out: &Output| -> Vec<Value> {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(out)))
    };
    let all = verify(&["--require-all-layers"]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    assert_eq!(verdicts(&all).len(), 8, "7 SBOMs and the image signature");
    let ca = verify(&["--buildpack", CA]);
    assert_eq!(ca.status.code(), Some(0), "{}", text(&ca));
    let ca = verdicts(&ca);
    assert!(!ca.is_empty());
    assert!(ca.iter().all(|v| v["buildpack"] == CA), "{ca:#?}");
    let spdx = verify(&["--predicate-type", SPDX]);
    assert_eq!(spdx.status.code(), Some(0), "{}", text(&spdx));
    let spdx = verdicts(&spdx);
    assert!(!spdx.is_empty());
    assert!(
        spdx.iter().all(|v| v["predicate-type"] == SPDX),
        "{spdx:#?}"
    );

    // The node layer's CycloneDX attestation is no longer listed.
    let gone = ex.listed(NODE, "node", CDX);
    let path = ex.image_dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["digest"] != gone.as_str());
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    let out = verify(&["--require-all-layers"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(
            "launch layers without a verified SBOM: paketo-buildpacks_node-engine/node/sbom.cdx.json"
        ),
        "{}",
        text(&out)
    );
    // Without the gate, what is listed verifies.
    assert!(!ok(verify(&[])).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Terminal injection (issue 14 item 2).
// ---------------------------------------------------------------------------------------------

/// Issue 14 item 2: remote text holding escape sequences (a `\r` + `ESC[2K` that would overwrite
/// the line with a forged `verified  sha256:…`, an SGR colour, a bidi override) in the unsigned
/// annotations (buildpack ID, layer name, predicate type), in the statement's subject names and in
/// a DSSE `payloadType` reaches no terminal raw: `ls`, `verify`, `download` and the analyzer show
/// it escaped, on stdout and stderr, and no line of `verify` claims the forged attestations
/// verified.
#[test]
fn escape_sequences_in_remote_text_are_shown_escaped_by_every_command() {
    let ex = Example::signed();
    let fake = "0".repeat(64);
    let forged = format!("\r\x1b[2Kverified  sha256:{fake}");
    let predicate = cdx("escapes");
    let statement = Statement::new(
        StatementVersion::V1,
        vec![
            Subject::sha256("image", &ex.image_hex()).unwrap(),
            Subject::sha256(
                &format!("{CA}:helper\x1b[31m\u{202e}{forged}"),
                &ex.diff_id(CA, "helper"),
            )
            .unwrap(),
        ],
        CDX,
        predicate.clone(),
    )
    .unwrap();
    let annotations = hints(
        &format!("{CA}{forged}"),
        &format!("helper{forged}\u{202e}"),
        CDX_MEDIA,
        &predicate,
    );
    // The annotations' predicate type is the forged one: a bundle and a DSSE referrer.
    let lying_type = format!("{CDX}{forged}");
    let envelope = ex.sign(statement.to_json());
    let bundle = ex.store(StorageFormat::Bundle, &envelope, &lying_type, &annotations);
    // A DSSE referrer whose signed payloadType carries the sequence.
    let odd_type = format!("{IN_TOTO_PAYLOAD_TYPE}{forged}");
    let odd = Envelope::sign(&odd_type, statement.to_json(), &ex.key).unwrap();
    let dsse = ex.store(StorageFormat::Dsse, &odd, CDX, &annotations);

    let clean = |what: &str, output: &Output| {
        let shown = text(output);
        for raw in ['\x1b', '\r', '\u{202e}'] {
            assert!(
                !shown.contains(raw),
                "{what}: raw {raw:?} in its output:\n{}",
                shown.escape_debug()
            );
        }
        for line in shown.lines() {
            assert!(
                !(line.starts_with("verified")
                    && (line.contains(&fake)
                        || line.contains(&bundle[7..])
                        || line.contains(&dsse[7..]))),
                "{what}: a forged verified line: {line}"
            );
        }
        shown
    };

    let listed = run(Command::new(bin("cnb-attest"))
        .arg("ls")
        .arg(ex.reference()));
    assert!(listed.status.success(), "{}", text(&listed));
    let shown = clean("ls", &listed);
    assert!(
        shown.contains("\\r\\u{1b}[2Kverified  sha256:") && shown.contains("\\u{1b}[31m\\u{202e}"),
        "ls shows the annotations and subject names escaped:\n{shown}"
    );

    let verified = run(Command::new(bin("cnb-attest"))
        .arg("verify")
        .arg(ex.reference())
        .arg("--key")
        .arg(ex.keys().join("cosign.pub")));
    assert_eq!(verified.status.code(), Some(3), "{}", text(&verified));
    let shown = clean("verify", &verified);
    for digest in [&bundle, &dsse] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("FAILED") && l.contains(digest.as_str())),
            "verify reports {digest} as FAILED:\n{shown}"
        );
    }

    let out = ex.tmp.path().join("out");
    // The DSSE referrer (its payloadType is not in-toto's) is left out, named escaped.
    let downloaded = ex.download(&out, &[]);
    let shown = clean("download", &downloaded);
    assert!(
        shown.contains(&dsse) && shown.contains("\\r\\u{1b}[2Kverified  sha256:"),
        "{shown}"
    );

    let analyzed = run(Command::new(bin("analyzer"))
        .arg("-previous-image")
        .arg(ex.reference())
        .arg("-layers")
        .arg(ex.tmp.path().join("restored"))
        .arg("-key")
        .arg(ex.keys().join("cosign.pub"))
        .env("DOCKER_CONFIG", "/nonexistent"));
    let shown = clean("analyzer", &analyzed);
    assert!(
        shown.contains(&dsse) && shown.contains("\\r\\u{1b}[2Kverified  sha256:"),
        "{shown}"
    );
}
