//! Image references, parsed as oci-spec's `Reference` (the one oci-client uses) parses them, with
//! docker's normalisation rules: a name without a registry is on Docker Hub, a single-component Hub
//! name gets `library/`. Pure: naming an image needs no network stack.
//!
//! The grammar is distribution's (`distribution/reference`), written out by hand: oci-spec
//! matches it with one large regular expression whose compilation took most of a process's start
//! (60–90 ms before the first request, measured by `scripts/bench`). The tests compare the two
//! parsers on a corpus of valid and invalid references; the one difference is on purpose: a tag
//! is the distribution specification's ASCII `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, where oci-spec's
//! `\w` also takes Unicode letters that no registry accepts in a tag.

use std::fmt;

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
        let fail = |why: &str| ReferenceError(format!("`{text}`: {why}"));
        if text.is_empty() {
            return Err(fail("repository name must have at least one component"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        // The tag follows the last `:` that no `/` follows (a `:` before a `/` is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let invalid = || fail("invalid reference format");
        if !valid_name(name) || tag.is_some_and(|t| !valid_tag(t)) {
            return Err(invalid());
        }
        if let Some(digest) = digest {
            let (algorithm, hex) = digest.split_once(':').ok_or_else(invalid)?;
            if !valid_algorithm(algorithm)
                || hex.len() < 32
                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(invalid());
            }
            let expected = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return Err(fail("unsupported digest algorithm")),
            };
            if hex.len() != expected {
                return Err(fail("invalid checksum digest length"));
            }
        }
        let (host, name) = split_domain(name);
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(&format!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }
        Ok(ImageRef {
            repository: Repository {
                host: if host == DOCKER_HUB {
                    DOCKER_HUB_API.to_string()
                } else {
                    host
                },
                name,
            },
            tag: match (tag, digest) {
                (None, None) => Some("latest".to_string()),
                (tag, _) => tag.map(str::to_string),
            },
            digest: digest.map(str::to_string),
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

const NAME_TOTAL_LENGTH_MAX: usize = 255;
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// Where Docker Hub's API is (`resolve_registry` in oci-spec).
const DOCKER_HUB_API: &str = "index.docker.io";

/// `[domain "/"] path-component ("/" path-component)*`
fn valid_name(name: &str) -> bool {
    if let Some((first, rest)) = name.split_once('/') {
        if valid_domain(first) && valid_path(rest) {
            return true;
        }
    }
    valid_path(name)
}

/// `component ("." component)* (":" digits)?`, a component being `[A-Za-z0-9]` or
/// `[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`.
fn valid_domain(domain: &str) -> bool {
    let host = match domain.split_once(':') {
        Some((host, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            host
        }
        None => domain,
    };
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    })
}

/// `component ("/" component)*`, a component being `[a-z0-9]+` joined by `.`, `_`, `__` or any
/// number of `-`.
fn valid_path(path: &str) -> bool {
    path.split('/').all(|c| {
        let b = c.as_bytes();
        let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(&b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(&b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: &u8| x.is_ascii_alphanumeric() || *x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(&b[0])
        && b[1..].iter().all(|x| word(x) || *x == b'.' || *x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*`
fn valid_algorithm(algorithm: &str) -> bool {
    algorithm.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    })
}

/// Docker's normalisation (distribution's `splitDomain`): the first component is a registry
/// only when it has a `.` or a `:` or is `localhost`; Hub names of one component get `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, remainder) = match name.split_once('/') {
        Some((left, right)) if left.contains('.') || left.contains(':') || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_string();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        return (domain, format!("library/{remainder}"));
    }
    (domain, remainder)
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

    /// The same answers as oci-spec's parser (host as resolved, repository, tag, digest; or an
    /// error) on references of every shape, valid and not.
    #[test]
    fn agrees_with_oci_spec() {
        let d256 = format!("sha256:{}", "a".repeat(64));
        let d512 = format!("sha512:{}", "B".repeat(128));
        let mut cases: Vec<String> = [
            "alpine",
            "alpine:3",
            "library/alpine",
            "docker.io/alpine",
            "index.docker.io/alpine",
            "index.docker.io/team/app:1",
            "localhost/app",
            "localhost:5000/app",
            "localhost:5000",
            "127.0.0.1:5000/team/app:1.0",
            "reg.example/a/b/c:v1.2-rc_3",
            "Reg.Example/a",
            "reg.example/A",
            "reg.example/a__b",
            "reg.example/a___b",
            "reg.example/a--b",
            "reg.example/a-",
            "reg.example/-a",
            "reg.example/a..b",
            "reg.example/a._b",
            "reg.example/a/",
            "reg.example//a",
            "reg.example:/a",
            "reg.example:50x/a",
            "-reg.example/a",
            "reg-.example/a",
            "re-g.example/a",
            "a:b:c",
            "a:",
            "a:.x",
            "a:_x",
            "a:x y",
            ":tag",
            "@sha256:abc",
            "a@sha256:abc",
            "a@sha256",
            "a@md5:",
            "team/app:tag:more",
            "UPPER",
            "x/y/z",
            "a b",
            "a/b@",
            "a/b:t@",
            "reg.example/a:t",
            "registry.example.com:443/ns/img",
            "1.2.3.4/app",
            "[::1]:5000/app",
            "a.b",
            "a.b/c",
            "a:1/b",
            "a_b/c",
            "ab/c.d/e",
            "éé/a",
            "a/é",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for base in ["alpine", "reg.example:5000/team/app", "team/app:1.0"] {
            cases.push(format!("{base}@{d256}"));
            cases.push(format!("{base}@{d512}"));
            cases.push(format!("{base}@sha256:{}", "a".repeat(63)));
            cases.push(format!("{base}@sha384:{}", "a".repeat(96)));
            cases.push(format!("{base}@foo+bar:{}", "a".repeat(64)));
            cases.push(format!("{base}@Sha256:{}", "a".repeat(64)));
        }
        cases.push(format!("reg.example/{}", "a".repeat(255)));
        cases.push(format!("reg.example/{}", "a".repeat(256)));
        cases.push(format!("a:{}", "t".repeat(128)));
        cases.push(format!("a:{}", "t".repeat(129)));
        for case in &cases {
            let ours = ImageRef::parse(case);
            let theirs: Result<oci_spec::distribution::Reference, _> = case.parse();
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => {
                    assert_eq!(o.repository.host, t.resolve_registry(), "{case}");
                    assert_eq!(o.repository.name, t.repository(), "{case}");
                    assert_eq!(o.tag.as_deref(), t.tag(), "{case}");
                    assert_eq!(o.digest.as_deref(), t.digest(), "{case}");
                }
                (Err(o), Err(t)) => {
                    assert!(o.0.ends_with(&t.to_string()), "{case}: {o} vs {t}");
                }
                _ => panic!("{case}: ours {ours:?}, oci-spec {theirs:?}"),
            }
        }
        // The one difference, on purpose: Unicode letters in a tag.
        assert!(ImageRef::parse("a:é").is_err());
        assert!("a:é".parse::<oci_spec::distribution::Reference>().is_ok());
    }
}
