//! Where a restored SBOM goes, built only from validated parts.

use std::path::PathBuf;

use cnb_sbom_discovery::{BuildpackId, BuildpackIndex, LayerName, SbomFormat};

use crate::Error;

/// The legacy BOM file the lifecycle writes beside the SBOMs (restored from the SBOM layer only).
pub const LEGACY_BOM: &str = "sbom.legacy.json";

/// The place of one file under `<layers>/sbom/launch/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SbomPath {
    /// `<esc-bp>/[<layer>/]sbom.<ext>`.
    Sbom {
        /// The buildpack (escaped for the directory name).
        buildpack: BuildpackId,
        /// The layer, for layer-scoped SBOMs.
        layer: Option<LayerName>,
        /// The format (the file extension).
        format: SbomFormat,
    },
    /// `sbom.legacy.json`.
    Legacy,
}

impl SbomPath {
    /// The path relative to `<layers>/sbom/launch/`. Every component is a validated single name.
    pub fn relative(&self) -> PathBuf {
        self.components().iter().collect()
    }

    /// The components of [`SbomPath::relative`], as strings (every one a validated single name).
    pub fn components(&self) -> Vec<String> {
        match self {
            SbomPath::Sbom {
                buildpack,
                layer,
                format,
            } => {
                let mut parts = vec![buildpack.escaped()];
                parts.extend(layer.as_ref().map(|l| l.as_str().to_string()));
                parts.push(format.file_name().to_string());
                parts
            }
            SbomPath::Legacy => vec![LEGACY_BOM.to_string()],
        }
    }

    /// Checks every component for characters a person cannot see or that reorder what is shown
    /// ([`hidden_character`]); the error names the character and the component.
    pub fn check_characters(&self) -> Result<(), String> {
        for component in self.components() {
            if let Some(c) = component.chars().find(|&c| hidden_character(c)) {
                return Err(format!(
                    "path component `{}` holds U+{:04X}, an invisible, bidirectional-control or control character: refused, so that no two names that look alike are written",
                    component.escape_default(),
                    u32::from(c)
                ));
            }
        }
        Ok(())
    }

    /// Parses a path relative to `sbom/launch/` as the lifecycle lays it out, mapping the escaped
    /// directory to a real buildpack ID through `index`. Anything else is refused.
    pub fn parse_relative(relative: &str, index: &BuildpackIndex) -> Result<Self, Error> {
        let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
        let bad = |reason: &str| Error::BadPath {
            path: relative.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        match parts.as_slice() {
            [name] if *name == LEGACY_BOM => Ok(SbomPath::Legacy),
            [bp, file] | [bp, _, file] => {
                let format = SbomFormat::from_file_name(file).ok_or_else(|| {
                    bad("not an SBOM file name (sbom.cdx.json, sbom.spdx.json, sbom.syft.json)")
                })?;
                let buildpack = index.resolve(bp).map_err(|e| bad(&e.to_string()))?;
                let layer = match parts.as_slice() {
                    [_, layer, _] => Some(LayerName::new(*layer).map_err(|e| bad(&e.to_string()))?),
                    _ => None,
                };
                Ok(SbomPath::Sbom {
                    buildpack,
                    layer,
                    format,
                })
            }
            _ => Err(bad("not <buildpack>/[<layer>/]sbom.<ext>")),
        }
    }
}

/// Whether `c` is refused in a path component written by a restore: a control character, or a
/// default-ignorable code point (Unicode's `Default_Ignorable_Code_Point`, DerivedCoreProperties
/// 15.1: zero-width spaces and joiners, the bidirectional embeddings, overrides, isolates and marks
/// such as U+202E, soft hyphen, variation selectors, fillers, tags). These render as nothing, or
/// reorder what is shown, so a file name holding one looks like another name
/// (`acme/tools` and `acme\u{200b}/tools`), or shows a different name than it is.
pub fn hidden_character(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x00AD
                | 0x034F
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFF8
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// The name a file system may take `component` to be: letter case folded (case-insensitive file
/// systems: macOS, Windows) and Unicode NFC (macOS normalises names, so `café` in NFC and in NFD
/// is one file there, and two different-looking-alike files elsewhere).
pub fn folded(component: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let nfc: String = component.nfc().collect();
    nfc.to_lowercase().nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnb_sbom_discovery::{BuildpackId, LayerName, SbomFormat};

    fn image_scoped(id: &str) -> SbomPath {
        SbomPath::Sbom {
            buildpack: BuildpackId::new(id).unwrap(),
            layer: None,
            format: SbomFormat::CycloneDx,
        }
    }

    #[test]
    fn nfc_and_nfd_and_letter_case_fold_to_one_name() {
        assert_eq!(folded("caf\u{e9}"), folded("cafe\u{301}"));
        assert_eq!(folded("CAF\u{c9}"), folded("cafe\u{301}"));
        assert_ne!(folded("cafe"), folded("caf\u{e9}"));
    }

    #[test]
    fn invisible_and_bidi_characters_are_refused_in_any_component() {
        assert!(image_scoped("acme/tools").check_characters().is_ok());
        assert!(image_scoped("acme/caf\u{e9}").check_characters().is_ok());
        for hidden in ['\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}', '\u{ad}'] {
            let path = image_scoped(&format!("acme{hidden}/tools"));
            let err = path.check_characters().unwrap_err();
            assert!(
                err.contains(&format!("U+{:04X}", u32::from(hidden))),
                "{err}"
            );
            assert!(!err.contains(hidden), "the message shows it raw: {err}");
            let layer = SbomPath::Sbom {
                buildpack: BuildpackId::new("acme/tools").unwrap(),
                layer: Some(LayerName::new(format!("node{hidden}")).unwrap()),
                format: SbomFormat::CycloneDx,
            };
            assert!(layer.check_characters().is_err());
        }
    }
}
