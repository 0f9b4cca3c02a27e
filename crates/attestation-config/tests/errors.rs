//! Every refusal of the parser and the validator, with the message it gives.

use std::fs;
use std::path::{Path, PathBuf};

use cnb_attestation_config::{
    load, parse, AllowedRoots, AttestationSpec, Error, ImageSection, PredicateSource,
    PredicateSpec, SignerConfig, SubjectSpec, MAX_CONFIG_SIZE,
};

const HEX: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn origin() -> &'static Path {
    Path::new("/platform/signer.toml")
}

/// A valid configuration with `predicate` lines spliced in (line 5 onwards).
fn with_predicate(predicate_lines: &str) -> String {
    format!(
        r#"[image]
reference = "r.io/app:1@sha256:{HEX}"
[[attestations]]
  [[attestations.predicate]]
{predicate_lines}
  [[attestations.statement.subject]]
  name = "r.io/app"
  digest = "sha256:{HEX}"
"#
    )
}

fn err(text: &str) -> (Error, String) {
    let e = parse(text, origin()).expect_err("must be refused");
    let m = e.to_string();
    (e, m)
}

#[test]
fn the_rfc_example_parses() {
    let text = format!(
        r#"[image]
reference = "my.registry.io/my-namespace/my-image:my-tag@sha256:{HEX}"
[[attestations]]
  [[attestations.predicate]]
  type = "https://cyclonedx.org/bom"
  uri = "/layers/sbom/launch/my-buildpack/launch-dep/sbom.cdx.json"
  [[attestations.statement.subject]]
  name = "launch-dep"
  digest = "sha256:{HEX}"
  [[attestations.annotations]]
  name = "io.buildpacks.buildpack.id"
  value = "my-buildpack"
"#
    );
    let c = parse(&text, origin()).unwrap();
    assert_eq!(c.image.repository(), "my.registry.io/my-namespace/my-image");
    assert_eq!(c.image.digest().unwrap().hex(), HEX);
    assert_eq!(c.attestations.len(), 1);
    let a = &c.attestations[0];
    assert_eq!(a.predicate.predicate_type, "https://cyclonedx.org/bom");
    assert_eq!(
        a.predicate.source,
        PredicateSource::Uri(PathBuf::from(
            "/layers/sbom/launch/my-buildpack/launch-dep/sbom.cdx.json"
        ))
    );
    assert_eq!(a.subjects[0].name, "launch-dep");
    assert_eq!(
        a.annotations,
        vec![(
            "io.buildpacks.buildpack.id".to_string(),
            "my-buildpack".to_string()
        )]
    );
    // A single predicate table is accepted too and means the same.
    let table_form = text.replace("[[attestations.predicate]]", "[attestations.predicate]");
    assert_eq!(parse(&table_form, origin()).unwrap(), c);
}

#[test]
fn password_field_names_the_field_and_line() {
    let text = with_predicate("  type = \"https://cyclonedx.org/bom\"\n  password = \"hunter2\"\n  uri = \"/layers/x.json\"");
    let (e, m) = err(&text);
    assert!(
        matches!(
            e,
            Error::SecretField {
                line: 6,
                column: 3,
                ..
            }
        ),
        "{m}"
    );
    assert_eq!(
        m,
        "secret-looking field `password` at /platform/signer.toml:6:3 (`attestations[0].predicate[0].password`): secrets are never read from configuration; use COSIGN_PASSWORD or a password file"
    );
    assert!(!m.contains("hunter2"));
}

#[test]
fn secrets_are_reported_before_unknown_fields_and_anywhere() {
    // `colour` (unknown) comes first in the file, the secret is still what is reported.
    let text = format!(
        "[image]\nreference = \"r.io/app@sha256:{HEX}\"\ncolour = 1\n[signing]\nprivate_key = \"-----BEGIN\"\n"
    );
    let (e, m) = err(&text);
    assert!(matches!(e, Error::SecretField { line: 5, .. }), "{m}");
    assert!(
        m.contains("`private_key`") && m.contains("`signing.private_key`"),
        "{m}"
    );

    for key in [
        "Token",
        "password-file",
        "cosignPassword",
        "key-data",
        "credentials",
    ] {
        let text = format!("{key} = 1\n[image]\nreference = \"x\"\n");
        let (e, m) = err(&text);
        assert!(
            matches!(e, Error::SecretField { line: 1, .. }),
            "{key}: {m}"
        );
    }
    // Inline tables inside arrays are scanned as well.
    let text = "attestations = [{ annotations = [{ name = \"a\", passphrase = \"p\" }] }]\n[image]\nreference = \"x\"\n";
    let (_, m) = err(text);
    assert!(
        m.contains("`attestations[0].annotations[0].passphrase`"),
        "{m}"
    );
}

#[test]
fn uri_with_dot_dot() {
    let text = with_predicate(
        "  type = \"https://cyclonedx.org/bom\"\n  uri = \"/layers/sbom/../../etc/passwd\"",
    );
    let (e, m) = err(&text);
    assert!(
        matches!(
            e,
            Error::Field {
                line: 6,
                column: 9,
                ..
            }
        ),
        "{m}"
    );
    assert_eq!(
        m,
        "/platform/signer.toml:6:9: `attestations[0].predicate[0].uri`: uri `/layers/sbom/../../etc/passwd` contains `..`"
    );
    let text = with_predicate("  type = \"https://cyclonedx.org/bom\"\n  uri = \"layers/x.json\"");
    let (_, m) = err(&text);
    assert!(
        m.contains("uri `layers/x.json` is not an absolute path"),
        "{m}"
    );
}

#[test]
fn both_uri_and_value() {
    let text = with_predicate(
        "  type = \"https://cyclonedx.org/bom\"\n  uri = \"/layers/x.json\"\n  value = '{}'",
    );
    let (e, m) = err(&text);
    assert!(matches!(e, Error::Field { line: 7, .. }), "{m}");
    assert_eq!(
        m,
        "/platform/signer.toml:7:3: `attestations[0].predicate[0]`: has both `uri` and `value`: give exactly one"
    );
}

#[test]
fn neither_uri_nor_value() {
    let text = with_predicate("  type = \"https://cyclonedx.org/bom\"");
    let (e, m) = err(&text);
    assert!(matches!(e, Error::Field { line: 4, .. }), "{m}");
    assert!(
        m.ends_with(
            "`attestations[0].predicate[0]`: has neither `uri` nor `value`: give exactly one"
        ),
        "{m}"
    );
}

#[test]
fn bad_digest() {
    let upper = with_predicate("  type = \"https://cyclonedx.org/bom\"\n  value = '{}'").replace(
        &format!("digest = \"sha256:{HEX}\""),
        &format!("digest = \"sha256:{}\"", HEX.to_uppercase()),
    );
    let (e, m) = err(&upper);
    assert!(
        matches!(
            e,
            Error::Field {
                line: 9,
                column: 12,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("`attestations[0].statement.subject[0].digest`"),
        "{m}"
    );
    assert!(m.contains("lowercase hex"), "{m}");

    let short = with_predicate("  type = \"https://cyclonedx.org/bom\"\n  value = '{}'").replace(
        &format!("digest = \"sha256:{HEX}\""),
        "digest = \"sha256:abc\"",
    );
    let (_, m) = err(&short);
    assert!(
        m.contains("invalid digest `sha256:abc`: expected 64 hex digits"),
        "{m}"
    );

    let md5 = with_predicate("  type = \"https://cyclonedx.org/bom\"\n  value = '{}'").replace(
        &format!("digest = \"sha256:{HEX}\""),
        "digest = \"md5:abc\"",
    );
    let (_, m) = err(&md5);
    assert!(m.contains("only sha256"), "{m}");

    // The image reference must be pinned by a good digest too.
    let text = "[image]\nreference = \"r.io/app:latest\"\n";
    let (_, m) = err(text);
    assert!(
        m.starts_with("/platform/signer.toml:2:13: `image.reference`:"),
        "{m}"
    );
    assert!(m.contains("not pinned by digest"), "{m}");
}

#[test]
fn unknown_field_with_line_number() {
    let text = with_predicate(
        "  type = \"https://cyclonedx.org/bom\"\n  value = '{}'\n  media-type = \"x\"",
    );
    let (e, m) = err(&text);
    assert!(
        matches!(
            e,
            Error::UnknownField {
                line: 7,
                column: 3,
                ..
            }
        ),
        "{m}"
    );
    assert_eq!(
        m,
        "/platform/signer.toml:7:3: unknown field `attestations[0].predicate[0].media-type` (expected `type`, `uri`, `value`)"
    );
    let (_, m) = err(&format!(
        "version = 2\n{}",
        with_predicate("  type = \"x:y\"\n  value = '{}'")
    ));
    assert!(
        m.starts_with("/platform/signer.toml:1:1: unknown field `version`"),
        "{m}"
    );
}

#[test]
fn other_structural_errors() {
    // Two predicate entries.
    let text = format!(
        "{}  [[attestations.predicate]]\n  type = \"x:y\"\n  value = '{{}}'\n",
        with_predicate("  type = \"x:y\"\n  value = '{}'")
    );
    let (_, m) = err(&text);
    assert!(m.contains("must hold exactly one entry, found 2"), "{m}");

    // No subject.
    let text = format!(
        "[image]\nreference = \"r.io/app@sha256:{HEX}\"\n[[attestations]]\n  [[attestations.predicate]]\n  type = \"x:y\"\n  value = '{{}}'\n"
    );
    let (_, m) = err(&text);
    assert!(
        m.contains("`attestations[0].statement.subject`: at least one subject is required"),
        "{m}"
    );

    // Duplicate annotation names.
    let text = format!(
        "{}  [[attestations.annotations]]\n  name = \"a\"\n  value = \"1\"\n  [[attestations.annotations]]\n  name = \"a\"\n  value = \"2\"\n",
        with_predicate("  type = \"x:y\"\n  value = '{}'")
    );
    let (e, m) = err(&text);
    assert!(
        matches!(
            e,
            Error::Field {
                line: 14,
                column: 10,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("`attestations[0].annotations[1].name`: duplicate annotation `a`"),
        "{m}"
    );

    // Wrong types, relative predicate type, inline value that is not a JSON object.
    let (_, m) = err(&with_predicate("  type = 7\n  value = '{}'"));
    assert!(
        m.contains("`attestations[0].predicate[0].type`: expected a string, found an integer"),
        "{m}"
    );
    let (_, m) = err(&with_predicate("  type = \"cyclonedx\"\n  value = '{}'"));
    assert!(m.contains("is not an absolute URI"), "{m}");
    let (_, m) = err(&with_predicate("  type = \"x:y\"\n  value = '[1]'"));
    assert!(
        m.contains("`attestations[0].predicate[0].value`: must be a JSON object"),
        "{m}"
    );
    let (_, m) = err(&with_predicate("  type = \"x:y\"\n  value = '{'"));
    assert!(m.contains("is not valid JSON"), "{m}");

    // Missing [image].
    let (_, m) = err("");
    assert_eq!(m, "/platform/signer.toml:1:1: `image`: missing (required)");

    // TOML syntax.
    let (e, m) = err("[image]\nreference = \"unterminated\n");
    assert!(matches!(e, Error::Syntax { line: 2, .. }), "{m}");
    assert!(m.starts_with("/platform/signer.toml:2:"), "{m}");
}

/// A valid configuration with one annotation `name = "<name>"` (line 11, value at column 10) whose
/// value is a recognisable marker that must never appear in a message.
fn with_annotation(name: &str) -> String {
    format!(
        "{}  [[attestations.annotations]]\n  name = \"{name}\"\n  value = \"hunter2-do-not-echo\"\n",
        with_predicate("  type = \"x:y\"\n  value = '{}'")
    )
}

#[test]
fn secret_looking_annotation_names_are_refused() {
    for name in ["cosign.password", "io.example.token", "registry-api-key"] {
        let (e, m) = err(&with_annotation(name));
        assert!(
            matches!(
                e,
                Error::Field {
                    line: 11,
                    column: 10,
                    ..
                }
            ),
            "{m}"
        );
        assert_eq!(
            m,
            format!(
                "/platform/signer.toml:11:10: `attestations[0].annotations[0].name`: secret-looking annotation name `{name}`: secrets are never read from configuration; use COSIGN_PASSWORD or a password file"
            )
        );
    }
}

#[test]
fn reserved_annotation_names_are_refused() {
    for name in [
        "dev.sigstore.bundle.predicateType",
        "dev.sigstore.bundle.content",
        "dev.sigstore.anything-else",
        "dev.cosignproject.cosign/signature",
        "Dev.Sigstore.Bundle.PredicateType",
        "predicateType",
        "in-toto.io/predicate-type",
        "org.opencontainers.image.created",
    ] {
        let (e, m) = err(&with_annotation(name));
        assert!(
            matches!(
                e,
                Error::Field {
                    line: 11,
                    column: 10,
                    ..
                }
            ),
            "{m}"
        );
        assert!(
            m.starts_with(&format!(
                "/platform/signer.toml:11:10: `attestations[0].annotations[0].name`: annotation name `{name}` is reserved for the storage formats"
            )),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
    }
    // Names next to the reserved ones are fine.
    for name in [
        "io.buildpacks.buildpack.id",
        "dev.sigstore",
        "org.opencontainers.image.source",
    ] {
        parse(&with_annotation(name), origin()).unwrap();
    }
}

#[test]
fn validate_refuses_secret_and_reserved_annotation_names_built_in_code() {
    let (_tmp, layers, _) = tree();
    let roots = AllowedRoots::new(&[&layers]).unwrap();
    let mut c = config_with_uri(&layers.join("sbom/launch/bp/lay/sbom.cdx.json"));
    let value = "hunter2-do-not-echo".to_string();
    c.attestations[0].annotations = vec![
        ("io.buildpacks.buildpack.id".into(), "bp".into()),
        ("cosignPassword".into(), value.clone()),
    ];
    let m = c.validate(&roots).unwrap_err().to_string();
    assert_eq!(
        m,
        "invalid signer configuration: `attestations[0].annotations[1].name`: secret-looking annotation name `cosignPassword`: secrets are never read from configuration; use COSIGN_PASSWORD or a password file"
    );
    for name in [
        "dev.sigstore.bundle.predicateType",
        "dev.cosignproject.cosign/signature",
        "predicateType",
        "in-toto.io/predicate-type",
        "org.opencontainers.image.created",
    ] {
        c.attestations[0].annotations = vec![(name.into(), value.clone())];
        let e = c.validate(&roots).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Error::Invalid { .. }), "{m}");
        assert!(
            m.starts_with(&format!(
                "invalid signer configuration: `attestations[0].annotations[0].name`: annotation name `{name}` is reserved for the storage formats"
            )),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
    }
}

fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    let platform = tmp.path().join("platform");
    fs::create_dir_all(layers.join("sbom/launch/bp/lay")).unwrap();
    fs::create_dir_all(&platform).unwrap();
    fs::write(
        layers.join("sbom/launch/bp/lay/sbom.cdx.json"),
        r#"{"bomFormat":"CycloneDX"}"#,
    )
    .unwrap();
    fs::write(
        tmp.path().join("outside.json"),
        r#"{"bomFormat":"CycloneDX"}"#,
    )
    .unwrap();
    let layers = layers.canonicalize().unwrap();
    let platform = platform.canonicalize().unwrap();
    (tmp, layers, platform)
}

fn config_with_uri(uri: &Path) -> SignerConfig {
    SignerConfig {
        image: ImageSection {
            reference: format!("r.io/app@sha256:{HEX}"),
        },
        attestations: vec![AttestationSpec {
            predicate: PredicateSpec {
                predicate_type: "https://cyclonedx.org/bom".into(),
                source: PredicateSource::Uri(uri.to_path_buf()),
            },
            subjects: vec![SubjectSpec {
                name: "r.io/app".into(),
                digest: format!("sha256:{HEX}").parse().unwrap(),
            }],
            annotations: vec![],
        }],
    }
}

#[test]
fn uri_inside_the_roots_validates_and_reads() {
    let (_tmp, layers, platform) = tree();
    let roots = AllowedRoots::new(&[&layers, &platform]).unwrap();
    let file = layers.join("sbom/launch/bp/lay/sbom.cdx.json");
    let c = config_with_uri(&file);
    c.validate(&roots).unwrap();
    let bytes = c.attestations[0].read_predicate(&roots, 1024).unwrap();
    assert_eq!(bytes, fs::read(&file).unwrap());
    let e = c.read_predicate(&c.attestations[0], &roots, 4).unwrap_err();
    assert!(matches!(e, Error::TooLarge { cap: 4, .. }), "{e}");
}

#[test]
fn uri_outside_the_roots() {
    let (tmp, layers, platform) = tree();
    let roots = AllowedRoots::new(&[&layers, &platform]).unwrap();
    let outside = tmp.path().canonicalize().unwrap().join("outside.json");
    let e = config_with_uri(&outside).validate(&roots).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::Uri { .. }), "{m}");
    assert_eq!(
        m,
        format!(
            "`attestations[0].predicate[0].uri`: uri `{}` is outside the allowed roots ({}, {})",
            outside.display(),
            layers.display(),
            platform.display()
        )
    );
    // `..` is refused lexically even when it would land inside a root again.
    let sneaky = layers.join("sbom/../sbom/launch/bp/lay/sbom.cdx.json");
    let m = config_with_uri(&sneaky)
        .validate(&roots)
        .unwrap_err()
        .to_string();
    assert!(m.ends_with("contains `..`"), "{m}");
    // A missing file.
    let m = config_with_uri(&layers.join("sbom/nope.json"))
        .validate(&roots)
        .unwrap_err()
        .to_string();
    assert!(m.contains("does not exist"), "{m}");
}

#[test]
fn uri_symlink_is_refused() {
    let (tmp, layers, _platform) = tree();
    let roots = AllowedRoots::new(&[&layers]).unwrap();
    let link = layers.join("sbom/launch/bp/lay/sbom.syft.json");
    std::os::unix::fs::symlink(tmp.path().join("outside.json"), &link).unwrap();
    let c = config_with_uri(&link);
    let m = c.validate(&roots).unwrap_err().to_string();
    assert!(m.contains(&format!("uri `{}`", link.display())), "{m}");
    assert!(m.contains("symbolic link"), "{m}");
    let m = c.attestations[0]
        .read_predicate(&roots, 1 << 20)
        .unwrap_err()
        .to_string();
    assert!(m.contains("symbolic link"), "{m}");

    // A linked directory on the way is refused too.
    let dir_link = layers.join("sbom/launch/bp/linked");
    std::os::unix::fs::symlink(layers.join("sbom/launch/bp/lay"), &dir_link).unwrap();
    let m = config_with_uri(&dir_link.join("sbom.cdx.json"))
        .validate(&roots)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("symbolic link") && m.contains(&dir_link.display().to_string()),
        "{m}"
    );
}

#[test]
fn roots_given_through_a_link_still_match() {
    let (tmp, layers, _platform) = tree();
    let link = tmp.path().join("layers-link");
    std::os::unix::fs::symlink(&layers, &link).unwrap();
    let roots = AllowedRoots::default().with(&link).unwrap();
    // The uri as written through the linked root, and through the canonical one.
    config_with_uri(&link.join("sbom/launch/bp/lay/sbom.cdx.json"))
        .validate(&roots)
        .unwrap();
    config_with_uri(&layers.join("sbom/launch/bp/lay/sbom.cdx.json"))
        .validate(&roots)
        .unwrap();
}

#[test]
fn validate_rechecks_values_built_in_code() {
    let (_tmp, layers, _) = tree();
    let roots = AllowedRoots::new(&[&layers]).unwrap();
    let mut c = config_with_uri(&layers.join("sbom/launch/bp/lay/sbom.cdx.json"));
    c.attestations[0].annotations = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
    let m = c.validate(&roots).unwrap_err().to_string();
    assert_eq!(
        m,
        "invalid signer configuration: `attestations[0].annotations[1].name`: duplicate annotation `a`"
    );
    c.attestations[0].annotations = vec![(String::new(), "1".into())];
    assert!(c
        .validate(&roots)
        .unwrap_err()
        .to_string()
        .contains("must not be empty"));
    c.attestations[0].annotations.clear();
    c.attestations[0].subjects.clear();
    assert!(c
        .validate(&roots)
        .unwrap_err()
        .to_string()
        .contains("at least one subject is required"));
}

#[test]
fn load_is_bounded_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.toml");
    fs::File::create(&big)
        .unwrap()
        .set_len(MAX_CONFIG_SIZE + 1)
        .unwrap();
    let m = load(&big).unwrap_err().to_string();
    assert!(
        m.contains(&big.display().to_string()) && m.contains("larger than"),
        "{m}"
    );

    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "[image]\ntoken = \"x\"\n").unwrap();
    let m = load(&bad).unwrap_err().to_string();
    assert!(
        m.starts_with(&format!(
            "secret-looking field `token` at {}:2:1",
            bad.display()
        )),
        "{m}"
    );

    let m = load(&tmp.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(m.starts_with("cannot read"), "{m}");
}
