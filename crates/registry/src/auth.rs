//! Registry credentials and authentication challenges.
//!
//! Credentials come, in this order, from `CNB_REGISTRY_AUTH` (a JSON map from registry host to the
//! value of an `Authorization` header, as the lifecycle reads it), from docker's `config.json`
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with `auths`, `credsStore` and
//! `credHelpers`), else anonymous. A [`Credential`] never prints its secret (`Debug` is redacted),
//! and it is only ever sent to the registry host it belongs to (see [`Challenge::may_receive`]).

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::Error;

/// Largest `config.json` or `CNB_REGISTRY_AUTH` value read.
pub const MAX_AUTH_CONFIG_SIZE: u64 = 1024 * 1024;

/// A secret to authenticate to one registry with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credential.
    Anonymous,
    /// User name and password (HTTP Basic, or exchanged for a bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Zeroizing<String>,
    },
    /// A full `Authorization` header value (`CNB_REGISTRY_AUTH`).
    Header(Zeroizing<String>),
    /// A docker identity token (OAuth2 refresh token), exchanged at the token realm.
    IdentityToken(Zeroizing<String>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::Header(_) => f.write_str("Header(<redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// The `Authorization` value for HTTP Basic, if this credential can produce one.
    pub(crate) fn basic_header(&self) -> Option<Zeroizing<String>> {
        match self {
            Credential::Basic { username, password } => Some(Zeroizing::new(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{}", password.as_str()))
            ))),
            Credential::Header(value) if value.starts_with("Basic ") => Some(value.clone()),
            _ => None,
        }
    }
}

/// Where credentials come from; resolved once per registry host and cached by the client.
#[derive(Clone, Default)]
pub struct Keychain {
    cnb_registry_auth: HashMap<String, Zeroizing<String>>,
    docker_config: Option<Zeroizing<Vec<u8>>>,
    explicit: HashMap<String, Credential>,
}

impl fmt::Debug for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keychain")
            .field("cnb_registry_auth_hosts", &self.cnb_registry_auth.keys())
            .field("docker_config", &self.docker_config.is_some())
            .field("explicit_hosts", &self.explicit.keys())
            .finish()
    }
}

impl Keychain {
    /// An empty keychain: every registry is anonymous unless [`Keychain::insert`] says otherwise.
    pub fn anonymous() -> Self {
        Keychain::default()
    }

    /// The keychain of the environment: `CNB_REGISTRY_AUTH` and docker's `config.json`.
    pub fn from_env() -> Result<Self, Error> {
        let mut keychain = Keychain::default();
        if let Ok(value) = std::env::var("CNB_REGISTRY_AUTH") {
            keychain.cnb_registry_auth = parse_cnb_registry_auth(&value)?;
        }
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        if let Some(dir) = dir {
            let path = dir.join("config.json");
            if let Ok(file) = std::fs::File::open(&path) {
                let mut bytes = Zeroizing::new(Vec::new());
                file.take(MAX_AUTH_CONFIG_SIZE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::Auth(format!("{}: {e}", path.display())))?;
                if bytes.len() as u64 > MAX_AUTH_CONFIG_SIZE {
                    return Err(Error::Auth(format!(
                        "{}: larger than {MAX_AUTH_CONFIG_SIZE} bytes",
                        path.display()
                    )));
                }
                keychain.docker_config = Some(bytes);
            }
        }
        Ok(keychain)
    }

    /// Sets the credential for `host` explicitly (it wins over the environment).
    pub fn insert(&mut self, host: &str, credential: Credential) {
        self.explicit.insert(host.to_string(), credential);
    }

    /// The credential for a registry host (`host[:port]`).
    pub fn resolve(&self, host: &str) -> Credential {
        if let Some(c) = self.explicit.get(host) {
            return c.clone();
        }
        if let Some(header) = self.cnb_registry_auth.get(host) {
            return Credential::Header(header.clone());
        }
        if let Some(config) = &self.docker_config {
            // docker keys Docker Hub as https://index.docker.io/v1/.
            let server = if host == "registry-1.docker.io" || host == "docker.io" {
                "https://index.docker.io/v1/"
            } else {
                host
            };
            if let Ok(credential) =
                docker_credential::get_credential_from_reader(config.as_slice(), server)
            {
                return match credential {
                    docker_credential::DockerCredential::UsernamePassword(username, password) => {
                        Credential::Basic {
                            username,
                            password: Zeroizing::new(password),
                        }
                    }
                    docker_credential::DockerCredential::IdentityToken(token) => {
                        Credential::IdentityToken(Zeroizing::new(token))
                    }
                };
            }
        }
        Credential::Anonymous
    }
}

/// Parses `CNB_REGISTRY_AUTH`: `{"<host>": "<Authorization header value>", ...}`.
fn parse_cnb_registry_auth(value: &str) -> Result<HashMap<String, Zeroizing<String>>, Error> {
    if value.len() as u64 > MAX_AUTH_CONFIG_SIZE {
        return Err(Error::Auth("CNB_REGISTRY_AUTH is too large".into()));
    }
    let map: HashMap<String, String> = serde_json::from_str(value).map_err(|e| {
        // serde_json's message quotes no input beyond a position; the value stays unprinted.
        Error::Auth(format!(
            "CNB_REGISTRY_AUTH is not a JSON object of strings (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(map
        .into_iter()
        .map(|(host, header)| (host, Zeroizing::new(header)))
        .collect())
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic,
    /// Bearer token from a realm.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
        /// `scope` parameter the registry asked for, if any.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value (RFC 7235 auth-params; quoted or token values).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }

    /// Whether credentials for `registry_host`, reached over `registry_scheme`, may be sent to
    /// this challenge's token realm: only when the realm is on the registry's own host, and over
    /// HTTPS unless the registry itself was named insecure (plain HTTP). Docker Hub's
    /// `auth.docker.io` realm for `registry-1.docker.io` is the one known exception.
    pub fn may_receive(&self, registry_host: &str, registry_scheme: &str) -> bool {
        match self {
            Challenge::Basic => true,
            Challenge::Bearer { realm, .. } => {
                let Ok(url) = reqwest::Url::parse(realm) else {
                    return false;
                };
                if url.scheme() != "https" && !(url.scheme() == "http" && registry_scheme == "http")
                {
                    return false;
                }
                let realm_host = match (url.host_str(), url.port()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (Some(h), None) => h.to_string(),
                    _ => return false,
                };
                realm_host == registry_host
                    || (registry_host == "registry-1.docker.io" && realm_host == "auth.docker.io")
            }
        }
    }
}

fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn credentials_go_only_to_a_realm_on_the_registry_host() {
        let realm = |r: &str| Challenge::Bearer {
            realm: r.into(),
            service: None,
            scope: None,
        };
        assert!(realm("http://127.0.0.1:5000/token").may_receive("127.0.0.1:5000", "http"));
        assert!(!realm("http://127.0.0.1:6000/token").may_receive("127.0.0.1:5000", "http"));
        assert!(!realm("https://evil.example/token").may_receive("registry.example", "https"));
        assert!(realm("https://auth.docker.io/token").may_receive("registry-1.docker.io", "https"));
        assert!(realm("https://registry.example/token").may_receive("registry.example", "https"));
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_of_an_https_registry() {
        let realm = |r: &str| Challenge::Bearer {
            realm: r.into(),
            service: None,
            scope: None,
        };
        assert!(!realm("http://registry.example/token").may_receive("registry.example", "https"));
        assert!(!realm("http://auth.docker.io/token").may_receive("registry-1.docker.io", "https"));
        assert!(!realm("ftp://registry.example/token").may_receive("registry.example", "https"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::Basic {
            username: "user".into(),
            password: Zeroizing::new("s3cret-pw".into()),
        };
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        let mut k = Keychain::anonymous();
        k.insert(
            "h",
            Credential::Header(Zeroizing::new("Bearer tok3n".into())),
        );
        assert!(!format!("{k:?}").contains("tok3n"));
        assert!(!format!("{:?}", k.resolve("h")).contains("tok3n"));
    }

    #[test]
    fn cnb_registry_auth_errors_do_not_echo_the_value() {
        let err = parse_cnb_registry_auth(r#"{"h": "Basic c2VjcmV0"#).unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
        let ok = parse_cnb_registry_auth(r#"{"reg.example": "Basic dTpw"}"#).unwrap();
        assert_eq!(ok["reg.example"].as_str(), "Basic dTpw");
    }
}
