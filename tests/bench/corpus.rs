//! The bench's inputs: the Paketo trees, a deterministic corpus of 100 CycloneDX SBOMs (sizes
//! log-spaced 1 KiB–8 MiB) and one 512 MiB SBOM, each as a CNB layers directory with an app image
//! (OCI layout) whose SBOM layer and launch layers match it.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cnb_fixtures::{AppImage, BuildpackSpec};

/// One scenario's inputs.
pub(crate) struct Input {
    /// The layers directory (`sbom/launch/...`, `group.toml`).
    pub(crate) layers: PathBuf,
    /// The app image, an OCI layout tagged `latest`.
    pub(crate) image: PathBuf,
    /// The buildpack whose SBOMs "download one buildpack" fetches.
    pub(crate) one_buildpack: String,
    /// How many SBOM files the tree holds.
    pub(crate) sboms: usize,
    /// Bytes of SBOM in the tree.
    pub(crate) sbom_bytes: u64,
}

/// Writes a valid CycloneDX 1.5 JSON document of exactly `size` bytes (at least ~400) to `path`,
/// streamed: components named after `seed` and their index, the last one padded with a
/// `description` to reach the size.
pub(crate) fn write_cyclonedx(path: &Path, seed: usize, size: u64) {
    let file = fs::File::create(path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let head = format!(
        "{{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\"serialNumber\":\"urn:uuid:00000000-0000-4000-8000-{seed:012x}\",\"version\":1,\"metadata\":{{\"timestamp\":\"2024-01-01T00:00:00Z\",\"component\":{{\"type\":\"application\",\"bom-ref\":\"app\",\"name\":\"bench-{seed}\",\"version\":\"1.0.0\"}}}},\"components\":["
    );
    let tail = "]}";
    let component = |n: u64, description: &str| {
        format!(
            "{{\"type\":\"library\",\"bom-ref\":\"c{n}\",\"name\":\"pkg-{seed}-{n}\",\"version\":\"1.{}.{}\",\"purl\":\"pkg:generic/pkg-{seed}-{n}@1.{}.{}\",\"description\":\"{description}\"}}",
            n % 97,
            n % 89,
            n % 97,
            n % 89
        )
    };
    out.write_all(head.as_bytes()).unwrap();
    let mut written = head.len() as u64 + tail.len() as u64;
    let mut n = 0u64;
    loop {
        let sep = if n == 0 { "" } else { "," };
        let plain = component(n, "");
        let left = size.saturating_sub(written);
        // The component after this one would not fit with its smallest form: pad this one.
        if left < (sep.len() + plain.len()) as u64 * 2 + 8 {
            let pad = left.saturating_sub((sep.len() + plain.len()) as u64) as usize;
            let last = component(n, &"x".repeat(pad));
            out.write_all(sep.as_bytes()).unwrap();
            out.write_all(last.as_bytes()).unwrap();
            break;
        }
        out.write_all(sep.as_bytes()).unwrap();
        out.write_all(plain.as_bytes()).unwrap();
        written += (sep.len() + plain.len()) as u64;
        n += 1;
    }
    out.write_all(tail.as_bytes()).unwrap();
    out.flush().unwrap();
}

fn finish(layers: PathBuf, dir: &Path, spec: AppImage, one_buildpack: &str) -> Input {
    fs::write(
        layers.join("group.toml"),
        cnb_fixtures::group_toml(&spec.buildpacks),
    )
    .unwrap();
    let image = dir.join("image");
    cnb_fixtures::build(&spec, &image).unwrap();
    let files = sbom_paths(&layers);
    let sbom_bytes = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    Input {
        layers,
        image,
        one_buildpack: one_buildpack.to_string(),
        sboms: files.len(),
        sbom_bytes,
    }
}

/// The shipped node-express example.
pub(crate) fn node_express(dir: &Path) -> Input {
    let (layers, image) = cnb_attest_tests::fresh_example(dir);
    let files = sbom_paths(&layers);
    Input {
        layers,
        image,
        one_buildpack: "paketo-buildpacks/node-engine".into(),
        sboms: files.len(),
        sbom_bytes: files
            .iter()
            .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum(),
    }
}

/// The Paketo spring-boot build.
pub(crate) fn spring_boot(dir: &Path) -> Input {
    let (layers, image) = cnb_attest_tests::fresh_spring_boot(dir);
    let files = sbom_paths(&layers);
    Input {
        layers,
        image,
        one_buildpack: "paketo-buildpacks/bellsoft-liberica".into(),
        sboms: files.len(),
        sbom_bytes: files
            .iter()
            .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum(),
    }
}

/// 100 CycloneDX SBOMs, sizes `1 KiB × 8192^(i/99)`, spread over 10 buildpacks × 10 launch layers
/// (`bench/bp-<b>`, layer `layer-<l>`, file `i = 10 l + b`, so every buildpack has small and large
/// SBOMs).
pub(crate) fn corpus(dir: &Path) -> Input {
    let layers = dir.join("layers");
    let mut buildpacks = Vec::new();
    for b in 0..10 {
        let id = format!("bench/bp-{b}");
        let names: Vec<String> = (0..10).map(|l| format!("layer-{l}")).collect();
        for (l, name) in names.iter().enumerate() {
            let i = 10 * l + b;
            let size = (1024.0 * 8192f64.powf(i as f64 / 99.0)).round() as u64;
            let at = layers
                .join("sbom/launch")
                .join(id.replace('/', "_"))
                .join(name);
            fs::create_dir_all(&at).unwrap();
            write_cyclonedx(&at.join("sbom.cdx.json"), i, size);
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        buildpacks.push(BuildpackSpec::new(&id, "1.0.0", &refs));
    }
    let spec = AppImage {
        tag: "latest".into(),
        buildpacks,
        launcher: false,
        sbom_tree: Some(layers.clone()),
    };
    finish(layers, dir, spec, "bench/bp-5")
}

/// One SBOM of `size` bytes (512 MiB in the default run), in one buildpack's one launch layer.
pub(crate) fn big(dir: &Path, size: u64) -> Input {
    let layers = dir.join("layers");
    let at = layers.join("sbom/launch/bench_big/data");
    fs::create_dir_all(&at).unwrap();
    write_cyclonedx(&at.join("sbom.cdx.json"), 512, size);
    let spec = AppImage {
        tag: "latest".into(),
        buildpacks: vec![BuildpackSpec::new("bench/big", "1.0.0", &["data"])],
        launcher: false,
        sbom_tree: Some(layers.clone()),
    };
    finish(layers, dir, spec, "bench/big")
}

/// The SBOM files under `<layers>/sbom/launch` (`sbom.legacy.json` excluded), sorted.
pub(crate) fn sbom_paths(layers: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".json") && name != "sbom.legacy.json" {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&layers.join("sbom/launch"), &mut out);
    out.sort();
    out
}

/// Layers directories holding one SBOM file each (the per-SBOM baseline's inputs): every other
/// file copied, the one SBOM hard-linked (copied where links fail), the other SBOMs left out.
pub(crate) fn one_sbom_each(layers: &Path, dir: &Path) -> Vec<PathBuf> {
    let sboms = sbom_paths(layers);
    sboms
        .iter()
        .enumerate()
        .map(|(i, keep)| {
            let copy = dir.join(format!("one-{i}"));
            link_tree(layers, &copy, &|p: &Path| {
                p == keep || !sboms.contains(&p.to_path_buf())
            });
            copy
        })
        .collect()
}

fn link_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            link_tree(&path, &target, keep);
        } else if keep(&path) && fs::hard_link(&path, &target).is_err() {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// A copy of an OCI layout whose blobs are hard links (the signer adds blobs and rewrites
/// `index.json`, which is copied).
pub(crate) fn layout_copy(from: &Path, to: &Path) {
    link_tree(from, to, &|_| true);
    let index = to.join("index.json");
    fs::remove_file(&index).unwrap();
    fs::copy(from.join("index.json"), &index).unwrap();
}
