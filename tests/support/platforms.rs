//! The two-platform image (linux/amd64 node-express, linux/arm64 spring-boot) the
//! multi-platform tests use: built as an OCI layout by `cnb-fixtures` and pushed whole to a
//! registry with skopeo (an independent writer).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::registry::Registry;
use crate::{copy_dir, workspace_root};

/// One platform of the fixture: its name, layers directory and manifest digest.
#[derive(Debug, Clone)]
pub struct Platform {
    /// `os/arch`.
    pub name: String,
    /// Its layers directory (SBOMs under `sbom/launch`, `group.toml`).
    pub layers: PathBuf,
    /// Its manifest digest.
    pub digest: String,
}

/// The fixture: the layout, the index digest, amd64 then arm64.
#[derive(Debug, Clone)]
pub struct TwoPlatforms {
    /// The OCI layout (the index tagged `latest`).
    pub layout: PathBuf,
    /// The image index digest.
    pub index: String,
    /// `linux/amd64` (node-express).
    pub amd64: Platform,
    /// `linux/arm64` (spring-boot).
    pub arm64: Platform,
}

/// Builds the two-platform layout under `dir`: `dir/amd64` and `dir/arm64` are the layers
/// directories (fresh copies, with `group.toml`), `dir/image` the layout.
pub fn two_platforms(dir: &Path) -> TwoPlatforms {
    let amd64 = dir.join("amd64");
    let arm64 = dir.join("arm64");
    copy_dir(
        &workspace_root().join("examples/node-express/layers"),
        &amd64,
    );
    copy_dir(
        &workspace_root().join("tests/fixtures/sboms/spring-boot/layers"),
        &arm64,
    );
    let specs = cnb_fixtures::two_platforms(&amd64, &arm64);
    for (layers, spec) in [(&amd64, &specs[0]), (&arm64, &specs[1])] {
        fs::write(
            layers.join("group.toml"),
            cnb_fixtures::group_toml(&spec.image.buildpacks),
        )
        .unwrap();
    }
    let layout = dir.join("image");
    let built = cnb_fixtures::build_index("latest", &specs, &layout).unwrap();
    let platform = |i: usize, layers: &Path| Platform {
        name: built.platforms[i].platform.clone(),
        layers: layers.to_path_buf(),
        digest: built.platforms[i].manifest.digest.to_string(),
    };
    TwoPlatforms {
        index: built.index.digest.to_string(),
        amd64: platform(0, &amd64),
        arm64: platform(1, &arm64),
        layout,
    }
}

/// Copies the layout's image index tagged `latest` with every platform manifest to
/// `<host>/<repo>:<tag>` (`skopeo copy --all --preserve-digests`); returns the reference.
pub fn push_all(registry: &Registry, layout: &Path, repo: &str, tag: &str) -> String {
    let reference = format!("{}/{repo}:{tag}", registry.host);
    let mut command = Command::new("skopeo");
    command
        .args([
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{reference}"));
    if let Some(creds) = registry.creds() {
        command.arg("--dest-creds").arg(creds);
    }
    crate::ok(crate::run(&mut command));
    reference
}

/// `DELETE /v2/<repo>/manifests/<digest>` with curl (an independent writer); the HTTP status.
pub fn delete_manifest(registry: &Registry, repo: &str, digest: &str) -> u16 {
    let mut command = Command::new("curl");
    command
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!(
            "http://{}/v2/{repo}/manifests/{digest}",
            registry.host
        ));
    if let Some(creds) = registry.creds() {
        command.arg("-u").arg(creds);
    }
    let out = crate::run(&mut command);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The referrer manifests a layout lists in `index.json` whose `subject` is `digest` (read from
/// the blobs with serde_json alone).
pub fn layout_referrers(layout: &Path, digest: &str) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| {
            let listed = d["digest"].as_str()?;
            let blob = layout
                .join("blobs/sha256")
                .join(listed.strip_prefix("sha256:")?);
            let manifest: serde_json::Value = serde_json::from_slice(&fs::read(blob).ok()?).ok()?;
            (manifest["subject"]["digest"] == digest).then(|| listed.to_string())
        })
        .collect()
}

/// Unlists from the layout's `index.json` every referrer whose subject is `digest` (the blobs
/// stay, as a reader that only follows `index.json` would no longer find them).
pub fn unlist_layout_referrers(layout: &Path, digest: &str) -> usize {
    let referrers = layout_referrers(layout, digest);
    let path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    let before = manifests.len();
    manifests.retain(|d| !referrers.iter().any(|r| d["digest"] == r.as_str()));
    let removed = before - manifests.len();
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    removed
}
