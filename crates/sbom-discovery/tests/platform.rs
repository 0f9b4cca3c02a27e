//! The platform files as the lifecycle writes them.

use std::fs;
use std::path::Path;

use cnb_sbom_discovery::platform::{GroupToml, LifecycleMetadata, Report, MAX_PLATFORM_FILE_SIZE};
use cnb_sbom_discovery::{BuildpackId, BuildpackIndex, Error, LayerName};

const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn label() -> String {
    format!(
        r#"{{
  "app": [{{"sha": "{SHA_A}"}}],
  "sbom": {{"sha": "{SHA_A}"}},
  "config": {{"sha": "{SHA_A}"}},
  "launcher": {{"sha": "{SHA_B}"}},
  "process-types": {{"sha": ""}},
  "buildpacks": [
    {{"key": "paketo-buildpacks/node-engine", "version": "1.3.0",
      "layers": {{"node": {{"sha": "{SHA_C}", "data": {{"version": "18"}}, "launch": true, "build": false, "cache": true}}}},
      "store": {{"metadata": {{"x": 1}}}}}},
    {{"key": "paketo-buildpacks/npm-install", "version": "1.1.0", "layers": null}}
  ],
  "runImage": {{"topLayer": "{SHA_A}", "reference": "index.docker.io/paketobuildpacks/run@sha256:00", "image": "paketobuildpacks/run", "mirrors": null}},
  "stack": {{"runImage": {{"image": "paketobuildpacks/run"}}}},
  "somethingNew": 42
}}"#
    )
}

#[test]
fn label_is_read_tolerantly() {
    let md = LifecycleMetadata::from_json(&label()).unwrap();
    let node = BuildpackId::new("paketo-buildpacks/node-engine").unwrap();
    let npm = BuildpackId::new("paketo-buildpacks/npm-install").unwrap();
    assert_eq!(
        md.layer_diff_id(&node, &LayerName::new("node").unwrap()),
        Some(SHA_C)
    );
    assert_eq!(
        md.layer_diff_id(&node, &LayerName::new("other").unwrap()),
        None
    );
    assert_eq!(
        md.layer_diff_id(&npm, &LayerName::new("node").unwrap()),
        None
    );
    assert_eq!(md.launcher_diff_id(), Some(SHA_B));
    assert_eq!(
        md.layer_diff_id(
            &BuildpackId::lifecycle(),
            &LayerName::new("launcher").unwrap()
        ),
        Some(SHA_B)
    );
    let ids: Vec<_> = md
        .buildpack_ids()
        .unwrap()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        ids,
        [
            "paketo-buildpacks/node-engine",
            "paketo-buildpacks/npm-install"
        ]
    );
    assert_eq!(md.run_image.as_ref().unwrap().top_layer, SHA_A);
    assert!(md.process_types.is_some());

    let index = BuildpackIndex::from_metadata(&md).unwrap();
    assert_eq!(index.resolve("paketo-buildpacks_npm-install").unwrap(), npm);
    assert!(index
        .resolve("buildpacksio_lifecycle")
        .unwrap()
        .is_lifecycle());

    // Round trip through our own serialisation.
    let again = LifecycleMetadata::from_json(&serde_json::to_string(&md).unwrap()).unwrap();
    assert_eq!(md, again);

    // The empty label is fine too.
    let empty = LifecycleMetadata::from_json("{}").unwrap();
    assert_eq!(empty.launcher_diff_id(), None);
}

#[test]
fn label_errors_name_line_and_column() {
    let err = LifecycleMetadata::from_json("{\n \"buildpacks\": 7\n}").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Json { line: 2, .. }), "{msg}");
    assert!(
        msg.starts_with("the io.buildpacks.lifecycle.metadata label: invalid JSON at line 2"),
        "{msg}"
    );

    let md = LifecycleMetadata::from_json(r#"{"buildpacks":[{"key":"bad id"}]}"#).unwrap();
    let msg = md.buildpack_ids().unwrap_err().to_string();
    assert!(msg.contains("invalid buildpack ID `bad id`"), "{msg}");
}

#[test]
fn group_toml_as_the_lifecycle_writes_it() {
    let text = r#"
[[group]]
  id = "paketo-buildpacks/ca-certificates"
  version = "3.6.0"
  api = "0.7"
  homepage = "https://github.com/paketo-buildpacks/ca-certificates"
  optional = true

[[group]]
  id = "paketo-buildpacks/node-engine"
  version = "1.3.0"
  api = "0.7"

[[group-extensions]]
  id = "samples/curl"
  version = "0.0.1"
  api = "0.9"
"#;
    let group: GroupToml = text.parse().unwrap();
    assert_eq!(group.group.len(), 2);
    assert!(group.group[0].optional);
    assert_eq!(group.group_extensions[0].id.as_str(), "samples/curl");
    let ids: Vec<_> = group
        .buildpack_ids()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        ids,
        [
            "paketo-buildpacks/ca-certificates",
            "paketo-buildpacks/node-engine"
        ]
    );

    let err = "[[group]]\nid = \"bad id\"\n"
        .parse::<GroupToml>()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("<input>:2:"), "{msg}");
    assert!(msg.contains("invalid buildpack ID"), "{msg}");

    let err = GroupToml::parse("[[group]\n", Path::new("/layers/group.toml")).unwrap_err();
    assert!(
        err.to_string().starts_with("/layers/group.toml:1:"),
        "{err}"
    );
}

#[test]
fn report_toml_manifest_size_integer_or_string() {
    let int: Report = r#"
[image]
  tags = ["registry.example/app:latest", "registry.example/app:1.0"]
  digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
  manifest-size = 2037

[build]
  [[build.bom]]
  name = "x"
"#
    .parse()
    .unwrap();
    assert_eq!(int.image.tags.len(), 2);
    assert_eq!(int.image.manifest_size, Some(2037));
    let string: Report = "[image]\ntags = []\nmanifest-size = \"2037\"\n"
        .parse()
        .unwrap();
    assert_eq!(string.image.manifest_size, Some(2037));
    let daemon: Report = "[image]\ntags = [\"app\"]\nimage-id = \"sha256:1234\"\n"
        .parse()
        .unwrap();
    assert_eq!(daemon.image.digest, None);
    assert_eq!(daemon.image.image_id.as_deref(), Some("sha256:1234"));
    let err = "[image]\nmanifest-size = -1\n"
        .parse::<Report>()
        .unwrap_err();
    assert!(err.to_string().contains("<input>:2:"), "{err}");
    assert!("[image]\nmanifest-size = \"big\"\n"
        .parse::<Report>()
        .is_err());
}

#[test]
fn platform_files_are_read_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("report.toml");
    fs::write(&path, "[image]\ntags = [\"a\"]\n").unwrap();
    assert_eq!(Report::from_path(&path).unwrap().image.tags, ["a"]);

    let big = tmp.path().join("group.toml");
    let f = fs::File::create(&big).unwrap();
    f.set_len(MAX_PLATFORM_FILE_SIZE + 1).unwrap();
    let err = GroupToml::from_path(&big).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }));
    assert!(err.to_string().contains(&big.display().to_string()));

    let missing = tmp.path().join("nope.json");
    let err = LifecycleMetadata::from_path(&missing).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("cannot read {}", missing.display())));

    let label_file = tmp.path().join("label.json");
    fs::write(&label_file, label()).unwrap();
    assert!(LifecycleMetadata::from_path(&label_file).is_ok());
}
