//! Image references, parsed by oci-spec's `Reference` (the one oci-client uses; docker's
//! normalisation rules: a name without a registry is on Docker Hub, a single-component Hub name gets
//! `library/`). Pure: naming an image needs no network stack.

use std::fmt;

use oci_spec::distribution::Reference;

/// An image reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {0}")]
pub struct ReferenceError(pub String);

/// A repository on a registry: the API host (`host[:port]`) and the repository name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// API host, e.g. `ghcr.io`, `127.0.0.1:5000`, `index.docker.io`.
    pub host: String,
    /// Repository name, e.g. `team/app`.
    pub name: String,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Where the image lives.
    pub repository: Repository,
    /// The tag, if the reference has one.
    pub tag: Option<String>,
    /// The digest, if the reference has one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `[host[:port]/]name[:tag][@sha256:<hex>]`.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let reference: Reference = text
            .parse()
            .map_err(|e| ReferenceError(format!("`{text}`: {e}")))?;
        Ok(ImageRef {
            repository: Repository {
                host: reference.resolve_registry().to_string(),
                name: reference.repository().to_string(),
            },
            tag: reference.tag().map(str::to_string),
            digest: reference.digest().map(str::to_string),
        })
    }

    /// Tag or digest to fetch: the digest when there is one, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/team/app:1.0@{d}")).unwrap();
        assert_eq!(r.repository.host, "127.0.0.1:5000");
        assert_eq!(r.repository.name, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.reference(), d);
        let hub = ImageRef::parse("alpine").unwrap();
        assert_eq!(hub.repository.name, "library/alpine");
        assert_eq!(hub.reference(), "latest");
        assert!(ImageRef::parse("team/App").is_err());
        assert!(ImageRef::parse("reg.example/a:bad tag").is_err());
    }
}
