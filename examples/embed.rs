//! Embedding cnb-attest: sign a copy of the shipped example image (an OCI layout of the Paketo
//! node-express build) with a freshly generated key, verify every attestation, and restore the
//! SBOMs, using only the `cnb_attest` facade's public API.
//!
//! `cargo run --example embed` (no registry, no network).

use std::path::{Path, PathBuf};

use cnb_attest::keys::KeySource;
use cnb_attest::restore::{restore, RestoreRequest};
use cnb_attest::sign::{sign, LayersInput, SignInput, SignRequest};
use cnb_attest::{inspect, Image, OpenOptions, SignOptions, SigningKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-express");
    let work = tempfile::tempdir()?;
    copy_dir(&shipped.join("image"), &work.path().join("image"))?;
    let target = format!("oci:{}:latest", work.path().join("image").display());

    let key = SigningKey::generate()?;
    let public = key.verifying_key();
    let request = SignRequest {
        input: SignInput::Layers(LayersInput {
            dir: shipped.join("layers"),
            ..LayersInput::default()
        }),
        key: KeySource::Key(Box::new(key)),
        options: SignOptions::default(),
        progress: false,
    };
    let out = work.path().join("restored").join("layers");

    // One runtime for the whole job: open once, then sign, verify and restore.
    let (signed, verdicts, restored) = cnb_attest::block_on(async {
        let image = Image::open(&target, &OpenOptions::default()).await?;
        let signed = sign(&image, &request).await?;
        let verdicts = inspect::verify(&image, std::slice::from_ref(&public)).await?;
        let restored = restore(&image, &RestoreRequest::new(public.clone()), &out).await?;
        Ok::<_, cnb_attest::Error>((signed, verdicts, restored))
    })??;

    println!(
        "signed {target}: {} referrer(s) stored with key {}",
        signed.report.pushed,
        &signed.report.key_fingerprint[..16]
    );
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.ok()).collect();
    println!(
        "verified {} attestation(s), {} failed",
        verdicts.len(),
        failed.len()
    );
    if let Some(refusal) = &restored.refusal {
        return Err(format!("restore refused: {refusal:?}").into());
    }
    for path in &restored.written {
        println!("restored {}", path.display());
    }
    if !failed.is_empty() || restored.written.is_empty() {
        return Err("the example did not verify and restore every SBOM".into());
    }
    Ok(())
}

/// Copies a directory tree of regular files (the shipped layout) to `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
