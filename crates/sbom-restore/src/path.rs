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
        match self {
            SbomPath::Sbom {
                buildpack,
                layer,
                format,
            } => {
                let mut path = PathBuf::from(buildpack.escaped());
                if let Some(layer) = layer {
                    path.push(layer.as_str());
                }
                path.push(format.file_name());
                path
            }
            SbomPath::Legacy => PathBuf::from(LEGACY_BOM),
        }
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
