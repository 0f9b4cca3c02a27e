//! Where an image is: for now an OCI image layout (`oci:<dir>[:<tag>|@sha256:<hex>]`, or a bare
//! directory path); registry references arrive with the registry store.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;

/// An image in an OCI image layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutImage {
    /// The layout directory.
    pub dir: PathBuf,
    /// A tag (`org.opencontainers.image.ref.name`) or `sha256:<hex>` digest; `None` picks the only image.
    pub selector: Option<String>,
}

impl LayoutImage {
    /// Parses `oci:<dir>[:<tag>]`, `oci:<dir>@sha256:<hex>`, or a plain path to a layout directory.
    ///
    /// As with skopeo's `oci:` transport, a `:` followed by text without `/` ends the path and starts
    /// the tag, so a directory whose name contains `:` must be written with a trailing `:<tag>`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let body = text.strip_prefix("oci:").unwrap_or(text);
        if body.is_empty() {
            return Err(Error::BadImage(format!("`{text}`: empty layout path")));
        }
        if let Some((dir, digest)) = body.rsplit_once('@') {
            return Ok(LayoutImage {
                dir: PathBuf::from(dir),
                selector: Some(digest.to_string()),
            });
        }
        if text.starts_with("oci:") {
            if let Some((dir, tag)) = body.rsplit_once(':') {
                if !tag.contains('/') && !dir.is_empty() {
                    if tag.is_empty() {
                        return Err(Error::BadImage(format!("`{text}`: empty tag")));
                    }
                    return Ok(LayoutImage {
                        dir: PathBuf::from(dir),
                        selector: Some(tag.to_string()),
                    });
                }
            }
        }
        Ok(LayoutImage {
            dir: PathBuf::from(body),
            selector: None,
        })
    }

    /// The image subject's name when none is given: the layout's
    /// `org.opencontainers.image.ref.name` when it is a full reference (`registry/repo:tag`), else
    /// the layout directory's own name. Never a filesystem path: statements are signed and
    /// published, and must not change when the layout is moved or carry the build host's paths.
    pub fn default_subject_name(&self, ref_name: Option<&str>) -> String {
        if let Some(name) = ref_name.filter(|n| n.contains('/')) {
            let without_digest = name.split('@').next().unwrap_or(name);
            return match without_digest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
                _ => without_digest.to_string(),
            };
        }
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or("image")
            .to_string()
    }

    /// Where the lifecycle keeps `image` in an OCI layout directory (`-layout-dir`,
    /// `CNB_LAYOUT_DIR`): `<dir>/<registry>/<repository>/<tag>`, or
    /// `<dir>/<registry>/<repository>/sha256/<hex>` for a digest reference, with docker's
    /// normalisation (`index.docker.io`, `library/`), as imgutil's `ParseRefToPath` does.
    pub fn in_layout_dir(layout_dir: &Path, image: &str) -> Result<Self, Error> {
        let reference =
            cnb_referrers::ImageRef::parse(image).map_err(|e| Error::BadImage(e.to_string()))?;
        let mut dir = layout_dir.join(&reference.repository.host);
        for part in reference.repository.name.split('/') {
            dir.push(part);
        }
        match (&reference.digest, &reference.tag) {
            (Some(digest), _) => {
                let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
                dir.push(algorithm);
                dir.push(hex);
            }
            (None, tag) => dir.push(tag.as_deref().unwrap_or("latest")),
        }
        Ok(LayoutImage {
            dir,
            selector: None,
        })
    }

    /// The same image, pinned to a digest.
    pub fn pinned(dir: &Path, digest: &str) -> Self {
        LayoutImage {
            dir: dir.to_path_buf(),
            selector: Some(digest.to_string()),
        }
    }
}

impl fmt::Display for LayoutImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}", self.dir.display())?;
        match &self.selector {
            Some(s) if s.starts_with("sha256:") => write!(f, "@{s}"),
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_bare_paths() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            LayoutImage::parse("oci:/x/y:latest").unwrap(),
            LayoutImage {
                dir: "/x/y".into(),
                selector: Some("latest".into())
            }
        );
        assert_eq!(
            LayoutImage::parse(&format!("oci:rel/dir@{d}")).unwrap(),
            LayoutImage {
                dir: "rel/dir".into(),
                selector: Some(d.clone())
            }
        );
        assert_eq!(
            LayoutImage::parse("examples/img").unwrap(),
            LayoutImage {
                dir: "examples/img".into(),
                selector: None
            }
        );
        assert_eq!(
            LayoutImage::parse(&format!("oci:/a@{d}"))
                .unwrap()
                .to_string(),
            format!("oci:/a@{d}")
        );
        assert!(LayoutImage::parse("oci:").is_err());
        assert_eq!(
            LayoutImage::in_layout_dir(Path::new("/layout"), "team/app:1.0")
                .unwrap()
                .dir,
            PathBuf::from("/layout/index.docker.io/team/app/1.0")
        );
        assert_eq!(
            LayoutImage::in_layout_dir(Path::new("/l"), &format!("reg.example:5000/a/b@{d}"))
                .unwrap()
                .dir,
            PathBuf::from(format!("/l/reg.example:5000/a/b/sha256/{}", "a".repeat(64)))
        );
        let l = LayoutImage::parse("/builds/42/out/app").unwrap();
        assert_eq!(l.default_subject_name(Some("latest")), "app");
        assert_eq!(
            l.default_subject_name(Some("registry.example/team/app:1.0")),
            "registry.example/team/app"
        );
        assert!(LayoutImage::parse("oci:/x:").is_err());
    }
}

/// Where an image is: an OCI layout or a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An image in an OCI image layout.
    Layout(LayoutImage),
    /// An image in a registry.
    Registry(cnb_referrers::ImageRef),
}

impl Target {
    /// `oci:<dir>...` or an existing directory is a layout; `docker://<ref>` or any other text is a
    /// registry reference.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.starts_with("oci:") || Path::new(text).is_dir() {
            return LayoutImage::parse(text).map(Target::Layout);
        }
        let reference = text.strip_prefix("docker://").unwrap_or(text);
        cnb_referrers::ImageRef::parse(reference)
            .map(Target::Registry)
            .map_err(|e| Error::BadImage(format!("{e} (an OCI layout is written oci:<dir>)")))
    }
}
