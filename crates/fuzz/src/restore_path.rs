//! `restore_path`: where a restored SBOM goes. The input is lines: buildpack IDs, then the path
//! under `sbom/launch/` to map. A path built never escapes the launch directory: every component
//! is one normal name (no `..`, `.`, empty, absolute or prefix part, no `/`, `\` or NUL), there
//! are one to three of them, the buildpack directory is the ID's escaped name, and the path parses
//! again to the same place. IDs and layer names are checked as the lifecycle's directory names
//! need them.

use std::path::{Component, Path};

use cnb_sbom_discovery::{BuildpackId, BuildpackIndex, LayerName};
use cnb_sbom_restore::path::{hidden_character, SbomPath};

fn one_name(component: &str) {
    assert!(!component.is_empty(), "empty component");
    assert!(
        component != "." && component != "..",
        "component {component:?}"
    );
    assert!(
        !component.contains(['/', '\\', '\0']),
        "separator or NUL in {component:?}"
    );
}

/// The target.
pub fn restore_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let relative = lines.pop().unwrap_or_default();
    let mut index = BuildpackIndex::new();
    for line in &lines {
        if let Ok(id) = BuildpackId::new(*line) {
            let escaped = id.escaped();
            one_name(&escaped);
            index.insert(id);
        }
        if let Ok(layer) = LayerName::new(*line) {
            one_name(layer.as_str());
        }
    }
    let Ok(path) = SbomPath::parse_relative(relative, &index) else {
        return;
    };
    let components = path.components();
    assert!((1..=3).contains(&components.len()));
    for c in &components {
        one_name(c);
    }
    let built = path.relative();
    assert!(built.is_relative());
    let parts: Vec<Component<'_>> = built.components().collect();
    assert_eq!(
        parts.len(),
        components.len(),
        "{built:?} from {components:?}"
    );
    for part in &parts {
        assert!(
            matches!(part, Component::Normal(_)),
            "{built:?} has {part:?}"
        );
    }
    let root = Path::new("/restore/sbom/launch");
    let joined = root.join(&built);
    assert!(
        joined.starts_with(root) && joined != root,
        "{joined:?} escapes {root:?}"
    );
    if let SbomPath::Sbom { buildpack, .. } = &path {
        assert_eq!(components[0], buildpack.escaped());
        let given: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
        assert_eq!(given[0], components[0]);
    }
    let written = components.join("/");
    let again = SbomPath::parse_relative(&written, &index)
        .unwrap_or_else(|e| panic!("{written:?} (built from {relative:?}) does not parse: {e}"));
    assert_eq!(again, path);
    let hidden = components.iter().any(|c| c.chars().any(hidden_character));
    assert_eq!(path.check_characters().is_err(), hidden);
}
