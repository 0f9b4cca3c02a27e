//! The facade on an OCI layout, through its public API only. CI runs these with and without the
//! `registry` feature: without it, the facade has no network stack and must still sign, verify and
//! restore layouts.

use std::path::{Path, PathBuf};

use cnb_attest::keys::KeySource;
use cnb_attest::restore::{restore, Origin, RestoreRequest};
use cnb_attest::sign::{sign, LayersInput, SignInput, SignRequest};
use cnb_attest::{inspect, Error, Image, OpenOptions, SignOptions, SigningKey};

fn example_layers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express/layers")
}

/// A fresh copy of the example image in `dir`, as `oci:<dir>:latest`.
fn example_image(dir: &Path) -> String {
    cnb_fixtures::build(&cnb_fixtures::node_express(&example_layers()), dir).unwrap();
    format!("oci:{}:latest", dir.display())
}

fn request(key: SigningKey) -> SignRequest {
    SignRequest {
        input: SignInput::Layers(LayersInput {
            dir: example_layers(),
            ..LayersInput::default()
        }),
        key: KeySource::Key(Box::new(key)),
        options: SignOptions::default(),
        progress: false,
    }
}

#[test]
fn signs_verifies_and_restores_a_layout_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let target = example_image(&tmp.path().join("image"));
    let key = SigningKey::generate().unwrap();
    let public = key.verifying_key();
    let out = tmp.path().join("out").join("layers");
    let (signed, again, verdicts, restored) = cnb_attest::block_on(async {
        let image = Image::open(&target, &OpenOptions::default()).await?;
        let request = request(key);
        let signed = sign(&image, &request).await?;
        let again = sign(&image, &request).await?;
        let verdicts = inspect::verify(&image, std::slice::from_ref(&public)).await?;
        let restored = restore(&image, &RestoreRequest::new(public.clone()), &out).await?;
        Ok::<_, Error>((signed, again, verdicts, restored))
    })
    .unwrap()
    .unwrap();
    // 7 SBOMs and the image signature; a second run stores nothing new.
    assert_eq!(
        (signed.report.pushed, signed.report.already_present),
        (8, 0)
    );
    assert_eq!((again.report.pushed, again.report.already_present), (0, 8));
    assert_eq!(verdicts.len(), 8);
    assert!(verdicts.iter().all(|v| v.ok()), "{verdicts:?}");
    assert_eq!(restored.origin, Origin::Attestations);
    assert!(restored.refusal.is_none(), "{:?}", restored.refusal);
    assert_eq!(restored.written.len(), 7);
    for path in &restored.written {
        let relative = path.strip_prefix(&out).unwrap();
        let original = std::fs::read(example_layers().join(relative)).unwrap();
        assert_eq!(
            std::fs::read(path).unwrap(),
            original,
            "{}",
            relative.display()
        );
    }
}

#[test]
fn another_key_verifies_nothing_and_restore_refuses_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let target = example_image(&tmp.path().join("image"));
    let other = SigningKey::generate().unwrap().verifying_key();
    let out = tmp.path().join("out").join("layers");
    let (verdicts, restored) = cnb_attest::block_on(async {
        let image = Image::open(&target, &OpenOptions::default()).await?;
        sign(&image, &request(SigningKey::generate()?)).await?;
        let verdicts = inspect::verify(&image, std::slice::from_ref(&other)).await?;
        let restored = restore(&image, &RestoreRequest::new(other.clone()), &out).await?;
        Ok::<_, Error>((verdicts, restored))
    })
    .unwrap()
    .unwrap();
    assert!(!verdicts.is_empty() && verdicts.iter().all(|v| !v.ok()));
    // Signed by no trusted key: all left out, nothing verified, nothing written.
    assert!(matches!(
        restored.refusal,
        Some(cnb_attest::restore::Refusal::NoneVerified { attestations: 7 })
    ));
    assert_eq!(restored.left_out, 7);
    assert!(restored.plan.failures.is_empty());
    assert!(restored.written.is_empty() && !out.exists());
}

#[test]
fn a_missing_image_is_a_typed_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let target = example_image(&tmp.path().join("image"));
    let missing_tag = target.replace(":latest", ":nope");
    for target in [
        missing_tag,
        format!("oci:{}", tmp.path().join("absent").display()),
    ] {
        let opened = cnb_attest::block_on(Image::open(&target, &OpenOptions::default())).unwrap();
        assert!(
            matches!(opened, Err(Error::ImageNotFound(_))),
            "{target}: {:?}",
            opened.err()
        );
    }
}

#[cfg(not(feature = "registry"))]
#[test]
fn without_the_registry_feature_a_registry_image_is_refused_by_type() {
    let opened = cnb_attest::block_on(Image::open(
        "registry.example/team/app:1.0",
        &OpenOptions::default(),
    ))
    .unwrap();
    assert!(matches!(opened, Err(Error::RegistryUnsupported(_))));
}

/// Predicates signed from a stream (never held in memory) are stored byte for byte as the ones
/// signed in memory: the same envelopes, bundles, manifests and digests, so everything proven of
/// the in-memory form (cosign, sigstore-python, securesystemslib read it) holds for the streamed
/// one. Signing the same image both ways, the second run finds every attestation present.
#[test]
fn streamed_and_in_memory_signing_store_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let public = key.verifying_key();
    let target = example_image(&tmp.path().join("image"));
    for (first, second) in [(u64::MAX, 0), (0, u64::MAX)] {
        let image_dir = tmp.path().join(format!("image-{first}"));
        copy_dir(&tmp.path().join("image"), &image_dir);
        let target = target.replace(
            &tmp.path().join("image").display().to_string(),
            &image_dir.display().to_string(),
        );
        let run = |stream_above: u64| {
            let mut request = request(key.clone());
            request.options.stream_above = stream_above;
            cnb_attest::block_on(async {
                let image = Image::open(&target, &OpenOptions::default()).await?;
                let signed = sign(&image, &request).await?;
                let verdicts = inspect::verify(&image, std::slice::from_ref(&public)).await?;
                Ok::<_, Error>((signed, verdicts))
            })
            .unwrap()
            .unwrap()
        };
        let (signed, verdicts) = run(first);
        assert_eq!(signed.report.pushed, 8);
        assert!(verdicts.iter().all(|v| v.ok()), "{verdicts:?}");
        let (again, verdicts) = run(second);
        assert_eq!(
            (again.report.pushed, again.report.already_present),
            (0, 8),
            "signed with stream_above = {first}, then {second}"
        );
        assert!(verdicts.iter().all(|v| v.ok()), "{verdicts:?}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
