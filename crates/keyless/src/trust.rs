//! Trust material: a Sigstore `trusted_root.json` (certificate authorities, transparency logs,
//! CT logs), a signing config v0.2 (which Fulcio, OIDC provider and Rekor to use), and the
//! `ClientTrustConfig` that bundles both (sigstore-python's `--trust-config`), as defined by
//! `protobuf-specs` `sigstore_trustroot.proto` and written as proto3 JSON.
//!
//! The public-good instance's files are embedded ([`TrustedRoot::public_good`],
//! [`SigningConfig::public_good`]); see `src/public-good/README.md` for their origin.
//!
//! Only what Rekor v1 verification needs is kept: ECDSA P-256 transparency logs and CT logs. Other
//! logs (the Ed25519 Rekor v2 log of the public-good root, for example) and the timestamp
//! authorities are not an error: they are listed in [`TrustedRoot::skipped`] with the reason.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde::Deserialize;

use crate::tlog::LogKey;

/// The most bytes read from a trusted root, signing config or client trust config file.
pub const MAX_TRUST_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The trusted-root media types accepted (the spec's, the v0.1 one, and the legacy spelling the
/// public-good file still uses).
pub const TRUSTED_ROOT_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    "application/vnd.dev.sigstore.trustedroot.v0.1+json",
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
];

/// The signing-config media type accepted.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";

/// The client-trust-config media type accepted.
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("public-good/trusted_root.json");
const PUBLIC_GOOD_SIGNING_CONFIG: &[u8] = include_bytes!("public-good/signing_config.v0.2.json");

/// The `keyDetails` of the only log key kind kept.
const P256_KEY_DETAILS: &str = "PKIX_ECDSA_P256_SHA_256";

/// Why trust material cannot be used: which file (or which document) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct TrustError {
    /// The file (sanitized path) or document (`trusted root`, `signing config`) concerned.
    pub what: String,
    /// What is wrong, in words (untrusted text sanitized).
    pub reason: String,
}

fn trust_error(what: &str, reason: impl Into<String>) -> TrustError {
    TrustError {
        what: what.to_string(),
        reason: reason.into(),
    }
}

fn shown(s: &str) -> String {
    cnb_untrusted::text::sanitize(s, 200)
}

/// A certificate authority of a trusted root (Fulcio): its certificate chain and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateAuthority {
    /// The CA's URI (for messages).
    pub uri: String,
    /// The chain, DER: the first certificate issues leaf certificates, each is signed by the
    /// next, and the last is the self-signed trust anchor.
    pub chain: Vec<Vec<u8>>,
    /// Start of the CA's validity (Unix seconds, inclusive), if given.
    pub valid_from: Option<i64>,
    /// End of the CA's validity (Unix seconds, inclusive), if given.
    pub valid_until: Option<i64>,
}

impl CertificateAuthority {
    /// Whether the CA's `validFor` window contains `t` (inclusive at both ends).
    pub fn valid_at(&self, t: i64) -> bool {
        within(t, self.valid_from, self.valid_until)
    }
}

/// A certificate-transparency log of a trusted root (ECDSA P-256).
#[derive(Debug, Clone)]
pub struct CtLog {
    /// The log's base URL (for messages).
    pub base_url: String,
    /// The RFC 6962 log ID: SHA-256 of the key's SPKI DER.
    pub log_id: Vec<u8>,
    /// The log's key.
    pub key: p256::ecdsa::VerifyingKey,
    /// Start of the key's validity (Unix seconds, inclusive), if given.
    pub valid_from: Option<i64>,
    /// End of the key's validity (Unix seconds, inclusive), if given.
    pub valid_until: Option<i64>,
}

impl CtLog {
    /// Whether the key's validity window contains `t` (inclusive at both ends).
    pub fn valid_at(&self, t: i64) -> bool {
        within(t, self.valid_from, self.valid_until)
    }
}

/// Whether `t` lies in `[from, until]`, an absent bound being open.
pub(crate) fn within(t: i64, from: Option<i64>, until: Option<i64>) -> bool {
    from.is_none_or(|from| from <= t) && until.is_none_or(|until| t <= until)
}

/// A Sigstore trusted root: the CAs, transparency logs and CT logs verification trusts.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// The media type the file declared.
    pub media_type: String,
    /// The certificate authorities (Fulcio instances).
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// The transparency logs (Rekor v1, ECDSA P-256).
    pub tlogs: Vec<LogKey>,
    /// The CT logs (ECDSA P-256).
    pub ctlogs: Vec<CtLog>,
    /// What was left out and why (logs with other key kinds, timestamp authorities).
    pub skipped: Vec<String>,
}

/// A service of a signing config (a Fulcio, an OIDC provider, a Rekor, a TSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's URL (a base URL for Fulcio and Rekor).
    pub url: String,
    /// The major API version the service speaks (1 for Fulcio and Rekor v1, 2 for Rekor v2).
    pub major_api_version: u32,
    /// Start of the service's validity (Unix seconds, inclusive).
    pub valid_from: i64,
    /// End of the service's validity (Unix seconds, inclusive), if given.
    pub valid_until: Option<i64>,
    /// Who operates it (`sigstore.dev`).
    pub operator: String,
}

impl Service {
    /// Whether the service is valid at `now` (Unix seconds).
    pub fn valid_at(&self, now: i64) -> bool {
        within(now, Some(self.valid_from), self.valid_until)
    }
}

/// A signing config v0.2: where to get certificates, tokens and log entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningConfig {
    /// Certificate authorities (Fulcio).
    pub ca_urls: Vec<Service>,
    /// OIDC providers.
    pub oidc_urls: Vec<Service>,
    /// Transparency logs (Rekor v1 and v2).
    pub rekor_tlog_urls: Vec<Service>,
    /// Timestamp authorities.
    pub tsa_urls: Vec<Service>,
}

/// A client trust config: a trusted root and a signing config in one file.
#[derive(Debug, Clone)]
pub struct ClientTrustConfig {
    /// The trusted root.
    pub trusted_root: TrustedRoot,
    /// The signing config.
    pub signing_config: SigningConfig,
}

// ---- proto3 JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawValidFor {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    #[serde(default)]
    raw_bytes: Option<String>,
    #[serde(default)]
    key_details: Option<String>,
    #[serde(default)]
    valid_for: Option<RawValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawPublicKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: Option<RawValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawService {
    url: String,
    #[serde(default)]
    major_api_version: u32,
    #[serde(default)]
    valid_for: Option<RawValidFor>,
    #[serde(default)]
    operator: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSigningConfig {
    media_type: String,
    #[serde(default)]
    ca_urls: Vec<RawService>,
    #[serde(default)]
    oidc_urls: Vec<RawService>,
    #[serde(default)]
    rekor_tlog_urls: Vec<RawService>,
    #[serde(default)]
    tsa_urls: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClientTrustConfig {
    media_type: String,
    trusted_root: RawRoot,
    signing_config: RawSigningConfig,
}

fn decode_b64(value: &str, what: &str, doc: &str) -> Result<Vec<u8>, TrustError> {
    STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .map_err(|_| trust_error(doc, format!("{what} is not base64")))
}

fn window(
    valid_for: Option<&RawValidFor>,
    what: &str,
    doc: &str,
) -> Result<(Option<i64>, Option<i64>), TrustError> {
    let parse = |s: &Option<String>, end: &str| -> Result<Option<i64>, TrustError> {
        s.as_deref()
            .map(|s| {
                parse_rfc3339(s).map_err(|e| {
                    trust_error(doc, format!("{what}: validFor.{end} `{}`: {e}", shown(s)))
                })
            })
            .transpose()
    };
    match valid_for {
        None => Ok((None, None)),
        Some(v) => Ok((parse(&v.start, "start")?, parse(&v.end, "end")?)),
    }
}

impl TrustedRoot {
    /// Reads a `trusted_root.json` (any of [`TRUSTED_ROOT_MEDIA_TYPES`]).
    pub fn from_json(json: &[u8]) -> Result<TrustedRoot, TrustError> {
        Self::from_json_named(json, "trusted root")
    }

    fn from_json_named(json: &[u8], doc: &str) -> Result<TrustedRoot, TrustError> {
        let raw: RawRoot = serde_json::from_slice(json)
            .map_err(|e| trust_error(doc, format!("not a trusted root: {e}")))?;
        Self::from_raw(raw, doc)
    }

    fn from_raw(raw: RawRoot, doc: &str) -> Result<TrustedRoot, TrustError> {
        if !TRUSTED_ROOT_MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(trust_error(
                doc,
                format!(
                    "mediaType `{}` is not a trusted root's (expected {})",
                    shown(&raw.media_type),
                    TRUSTED_ROOT_MEDIA_TYPES[0]
                ),
            ));
        }
        let mut skipped = Vec::new();

        let mut certificate_authorities = Vec::new();
        for (i, ca) in raw.certificate_authorities.iter().enumerate() {
            let what = format!("certificate authority {} ({})", i + 1, shown(&ca.uri));
            if ca.cert_chain.certificates.is_empty() {
                return Err(trust_error(doc, format!("{what} has no certificates")));
            }
            let mut chain = Vec::with_capacity(ca.cert_chain.certificates.len());
            for cert in &ca.cert_chain.certificates {
                let der = decode_b64(&cert.raw_bytes, &what, doc)?;
                crate::cert::parse_certificate(&der).map_err(|e| {
                    trust_error(doc, format!("{what}: a chain certificate {}", e.message))
                })?;
                chain.push(der);
            }
            let (valid_from, valid_until) = window(ca.valid_for.as_ref(), &what, doc)?;
            certificate_authorities.push(CertificateAuthority {
                uri: ca.uri.clone(),
                chain,
                valid_from,
                valid_until,
            });
        }

        let mut tlogs = Vec::new();
        for log in &raw.tlogs {
            let what = format!("transparency log {}", shown(&log.base_url));
            let Some(key) = p256_key(log, &what, doc, &mut skipped)? else {
                continue;
            };
            let (from, until) = window(log.public_key.valid_for.as_ref(), &what, doc)?;
            match LogKey::new(log.base_url.clone(), &key, from, until) {
                Ok(key) => tlogs.push(key),
                Err(e) => skipped.push(format!("{what}: {}", e.message)),
            }
        }

        let mut ctlogs = Vec::new();
        for log in &raw.ctlogs {
            let what = format!("CT log {}", shown(&log.base_url));
            let Some(spki) = p256_key(log, &what, doc, &mut skipped)? else {
                continue;
            };
            let (valid_from, valid_until) = window(log.public_key.valid_for.as_ref(), &what, doc)?;
            use p256::pkcs8::DecodePublicKey as _;
            use sha2::Digest as _;
            match p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
                Ok(key) => ctlogs.push(CtLog {
                    base_url: log.base_url.clone(),
                    log_id: sha2::Sha256::digest(&spki).to_vec(),
                    key,
                    valid_from,
                    valid_until,
                }),
                Err(e) => skipped.push(format!("{what}: not an ECDSA P-256 key: {e}")),
            }
        }

        if !raw.timestamp_authorities.is_empty() {
            skipped.push(format!(
                "{} timestamp authorities: ignored (Rekor v1 verification takes its time from the log's signed entry timestamp)",
                raw.timestamp_authorities.len()
            ));
        }

        Ok(TrustedRoot {
            media_type: raw.media_type,
            certificate_authorities,
            tlogs,
            ctlogs,
            skipped,
        })
    }

    /// Reads a `trusted_root.json` file (at most [`MAX_TRUST_FILE_SIZE`] bytes).
    pub fn from_file(path: &Path) -> Result<TrustedRoot, TrustError> {
        let (bytes, what) = read_trust_file(path)?;
        Self::from_json_named(&bytes, &what)
    }

    /// The public-good instance's trusted root, embedded from `src/public-good/trusted_root.json`.
    pub fn public_good() -> TrustedRoot {
        // The embedded file is fixed at build time and a unit test proves it parses; the empty
        // root below can therefore not occur, and would only make every verification fail.
        Self::from_json_named(
            PUBLIC_GOOD_TRUSTED_ROOT,
            "embedded public-good trusted root",
        )
        .unwrap_or_else(|e| TrustedRoot {
            media_type: String::new(),
            certificate_authorities: Vec::new(),
            tlogs: Vec::new(),
            ctlogs: Vec::new(),
            skipped: vec![e.to_string()],
        })
    }
}

/// The SPKI DER of a log whose key is ECDSA P-256; `None` (with the reason recorded in
/// `skipped`) for any other key kind.
fn p256_key(
    log: &RawLog,
    what: &str,
    doc: &str,
    skipped: &mut Vec<String>,
) -> Result<Option<Vec<u8>>, TrustError> {
    match log.public_key.key_details.as_deref() {
        Some(P256_KEY_DETAILS) | None => {}
        Some(other) => {
            skipped.push(format!(
                "{what}: key kind {} is not supported (only {P256_KEY_DETAILS}, as Rekor v1 logs use)",
                shown(other)
            ));
            return Ok(None);
        }
    }
    match log.public_key.raw_bytes.as_deref() {
        Some(raw) => Ok(Some(decode_b64(raw, what, doc)?)),
        None => {
            skipped.push(format!("{what}: no public key"));
            Ok(None)
        }
    }
}

fn read_trust_file(path: &Path) -> Result<(Vec<u8>, String), TrustError> {
    let what = shown(&path.display().to_string());
    let bytes = cnb_local_files::read(path, MAX_TRUST_FILE_SIZE, cnb_local_files::Links::Follow)
        .map_err(|e| trust_error(&what, format!("cannot read: {e}")))?;
    Ok((bytes, what))
}

fn services(raw: &[RawService], what: &str, doc: &str) -> Result<Vec<Service>, TrustError> {
    raw.iter()
        .map(|s| {
            let name = format!("{what} {}", shown(&s.url));
            let (from, until) = window(s.valid_for.as_ref(), &name, doc)?;
            Ok(Service {
                url: s.url.clone(),
                major_api_version: s.major_api_version,
                valid_from: from
                    .ok_or_else(|| trust_error(doc, format!("{name} has no validFor.start")))?,
                valid_until: until,
                operator: s.operator.clone(),
            })
        })
        .collect()
}

/// Of `services` speaking major API version `major` and valid at `now`, the one whose validity
/// started last.
fn newest(services: &[Service], major: u32, now: i64) -> Option<&Service> {
    services
        .iter()
        .filter(|s| s.major_api_version == major && s.valid_at(now))
        .max_by_key(|s| s.valid_from)
}

impl SigningConfig {
    /// Reads a signing config v0.2 ([`SIGNING_CONFIG_MEDIA_TYPE`]).
    pub fn from_json(json: &[u8]) -> Result<SigningConfig, TrustError> {
        Self::from_json_named(json, "signing config")
    }

    fn from_json_named(json: &[u8], doc: &str) -> Result<SigningConfig, TrustError> {
        let raw: RawSigningConfig = serde_json::from_slice(json)
            .map_err(|e| trust_error(doc, format!("not a signing config: {e}")))?;
        Self::from_raw(&raw, doc)
    }

    fn from_raw(raw: &RawSigningConfig, doc: &str) -> Result<SigningConfig, TrustError> {
        if raw.media_type != SIGNING_CONFIG_MEDIA_TYPE {
            return Err(trust_error(
                doc,
                format!(
                    "mediaType `{}` is not a signing config v0.2's ({SIGNING_CONFIG_MEDIA_TYPE})",
                    shown(&raw.media_type)
                ),
            ));
        }
        Ok(SigningConfig {
            ca_urls: services(&raw.ca_urls, "CA", doc)?,
            oidc_urls: services(&raw.oidc_urls, "OIDC provider", doc)?,
            rekor_tlog_urls: services(&raw.rekor_tlog_urls, "transparency log", doc)?,
            tsa_urls: services(&raw.tsa_urls, "timestamp authority", doc)?,
        })
    }

    /// Reads a signing config file (at most [`MAX_TRUST_FILE_SIZE`] bytes).
    pub fn from_file(path: &Path) -> Result<SigningConfig, TrustError> {
        let (bytes, what) = read_trust_file(path)?;
        Self::from_json_named(&bytes, &what)
    }

    /// The public-good instance's signing config, embedded from
    /// `src/public-good/signing_config.v0.2.json`.
    pub fn public_good() -> SigningConfig {
        // Fixed at build time; a unit test proves it parses.
        Self::from_json_named(PUBLIC_GOOD_SIGNING_CONFIG, "embedded signing config").unwrap_or(
            SigningConfig {
                ca_urls: Vec::new(),
                oidc_urls: Vec::new(),
                rekor_tlog_urls: Vec::new(),
                tsa_urls: Vec::new(),
            },
        )
    }

    /// The Fulcio to use at `now`: major API version 1, valid at `now`, the newest start.
    pub fn select_fulcio(&self, now: i64) -> Option<&Service> {
        newest(&self.ca_urls, 1, now)
    }

    /// The Rekor v1 log to use at `now`: major API version 1, valid at `now`, the newest start.
    /// Rekor v2 logs are never selected (not supported): a config listing only v2 logs gives
    /// `None`, and the caller must say so.
    pub fn select_rekor_v1(&self, now: i64) -> Option<&Service> {
        newest(&self.rekor_tlog_urls, 1, now)
    }

    /// The OIDC provider to use at `now`: valid at `now`, the newest start (any API version).
    pub fn select_oidc(&self, now: i64) -> Option<&Service> {
        self.oidc_urls
            .iter()
            .filter(|s| s.valid_at(now))
            .max_by_key(|s| s.valid_from)
    }
}

impl ClientTrustConfig {
    /// Reads a client trust config ([`CLIENT_TRUST_CONFIG_MEDIA_TYPE`]).
    pub fn from_json(json: &[u8]) -> Result<ClientTrustConfig, TrustError> {
        Self::from_json_named(json, "client trust config")
    }

    fn from_json_named(json: &[u8], doc: &str) -> Result<ClientTrustConfig, TrustError> {
        let raw: RawClientTrustConfig = serde_json::from_slice(json)
            .map_err(|e| trust_error(doc, format!("not a client trust config: {e}")))?;
        if raw.media_type != CLIENT_TRUST_CONFIG_MEDIA_TYPE {
            return Err(trust_error(
                doc,
                format!(
                    "mediaType `{}` is not a client trust config's ({CLIENT_TRUST_CONFIG_MEDIA_TYPE})",
                    shown(&raw.media_type)
                ),
            ));
        }
        Ok(ClientTrustConfig {
            signing_config: SigningConfig::from_raw(
                &raw.signing_config,
                &format!("{doc}, signingConfig"),
            )?,
            trusted_root: TrustedRoot::from_raw(raw.trusted_root, &format!("{doc}, trustedRoot"))?,
        })
    }

    /// Reads a client trust config file (at most [`MAX_TRUST_FILE_SIZE`] bytes).
    pub fn from_file(path: &Path) -> Result<ClientTrustConfig, TrustError> {
        let (bytes, what) = read_trust_file(path)?;
        Self::from_json_named(&bytes, &what)
    }
}

// ---- RFC 3339 -----------------------------------------------------------------------------

fn digits(s: &[u8], at: usize, n: usize) -> Result<i64, String> {
    let field = s
        .get(at..at + n)
        .ok_or_else(|| "too short for RFC 3339".to_string())?;
    let mut value = 0i64;
    for &b in field {
        if !b.is_ascii_digit() {
            return Err(format!("expected a digit at position {}", at + 1));
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Ok(value)
}

fn expect(s: &[u8], at: usize, allowed: &[u8]) -> Result<(), String> {
    match s.get(at) {
        Some(b) if allowed.contains(b) => Ok(()),
        _ => Err(format!(
            "expected `{}` at position {}",
            String::from_utf8_lossy(allowed),
            at + 1
        )),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 timestamp (`2021-01-12T11:53:27.000Z`, `2025-09-23T00:00:00+02:00`) into
/// Unix seconds; fractional seconds are truncated. Strict: four-digit year, valid calendar date,
/// hour < 24, minute and second < 60, a `Z` or `±HH:MM` offset, nothing after it.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    expect(b, 4, b"-")?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b"-")?;
    let day = digits(b, 8, 2)?;
    expect(b, 10, b"Tt")?;
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b":")?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b":")?;
    let second = digits(b, 17, 2)?;
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err("no digits after the decimal point".into());
        }
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = digits(b, at + 1, 2)?;
            expect(b, at + 3, b":")?;
            let minutes = digits(b, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return Err("offset out of range".into());
            }
            at += 6;
            let offset = hours * 3600 + minutes * 60;
            if sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return Err("no time zone (`Z` or `±HH:MM`)".into()),
    };
    if at != b.len() {
        return Err("trailing characters after the time zone".into());
    }
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return Err(format!("month {month} out of range")),
    };
    if day < 1 || day > month_days {
        return Err(format!("day {day} out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range".into());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Formats Unix seconds as RFC 3339 UTC (`2025-02-28T19:18:11Z`), for messages.
pub fn format_unix(t: i64) -> String {
    cnb_untrusted::time::rfc3339_utc(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_are_read_strictly() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2021-01-12T11:53:27.000Z"), Ok(1_610_452_407));
        assert_eq!(parse_rfc3339("2021-01-12T11:53:27Z"), Ok(1_610_452_407));
        assert_eq!(
            parse_rfc3339("2021-01-12T13:53:27.5+02:00"),
            Ok(1_610_452_407)
        );
        assert_eq!(
            parse_rfc3339("2021-01-12T10:53:27-01:00"),
            Ok(1_610_452_407)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-01-12T24:00:00Z",
            "2021-01-12T11:53:27",
            "2021-01-12T11:53:27.Z",
            "2021-01-12 11:53:27Z",
            "2021-01-12T11:53:27Zjunk",
            "21-01-12T11:53:27Z",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn unix_times_format_as_rfc3339() {
        assert_eq!(format_unix(1_740_770_291), "2025-02-28T19:18:11Z");
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339(&format_unix(1_709_164_799)),
            Ok(1_709_164_799)
        );
    }

    #[test]
    fn the_public_good_root_parses_and_skips_the_ed25519_log() {
        let root = TrustedRoot::from_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
        let urls: Vec<&str> = root.tlogs.iter().map(|l| l.base_url.as_str()).collect();
        assert_eq!(urls, ["https://rekor.sigstore.dev"]);
        assert_eq!(
            STANDARD.encode(&root.tlogs[0].log_id),
            "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
        );
        assert_eq!(root.tlogs[0].valid_from, Some(1_610_452_407));
        assert!(
            root.skipped
                .iter()
                .any(|s| s.contains("https://log2025-1.rekor.sigstore.dev")
                    && s.contains("PKIX_ED25519")),
            "{:?}",
            root.skipped
        );
        assert!(root
            .skipped
            .iter()
            .any(|s| s.contains("timestamp authorities: ignored")));
        assert_eq!(root.certificate_authorities.len(), 2);
        assert_eq!(root.certificate_authorities[1].chain.len(), 2);
        assert_eq!(root.ctlogs.len(), 2);
        // The embedded accessor gives the same thing.
        assert_eq!(TrustedRoot::public_good().tlogs.len(), 1);
        assert!(TrustedRoot::public_good()
            .media_type
            .contains("trustedroot"));
    }

    #[test]
    fn the_public_good_signing_config_selects_fulcio_and_rekor_v1() {
        let config = SigningConfig::from_json(PUBLIC_GOOD_SIGNING_CONFIG).unwrap();
        let now = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            config.select_fulcio(now).map(|s| s.url.as_str()),
            Some("https://fulcio.sigstore.dev")
        );
        assert_eq!(
            config.select_rekor_v1(now).map(|s| s.url.as_str()),
            Some("https://rekor.sigstore.dev")
        );
        assert_eq!(
            config.select_oidc(now).map(|s| s.url.as_str()),
            Some("https://oauth2.sigstore.dev/auth")
        );
        // Before Fulcio's window opened, nothing is selected.
        assert_eq!(config.select_fulcio(0), None);
        assert_eq!(SigningConfig::public_good(), config);
    }

    fn service(url: &str, major: u32, start: &str, end: Option<&str>) -> serde_json::Value {
        let mut valid_for = serde_json::json!({ "start": start });
        if let Some(end) = end {
            valid_for["end"] = end.into();
        }
        serde_json::json!({"url": url, "majorApiVersion": major, "validFor": valid_for, "operator": "x"})
    }

    #[test]
    fn rekor_v2_only_gives_no_rekor_and_the_newest_valid_service_wins() {
        let config = serde_json::json!({
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [
                service("https://old", 1, "2020-01-01T00:00:00Z", None),
                service("https://new", 1, "2024-01-01T00:00:00Z", None),
                service("https://ended", 1, "2025-01-01T00:00:00Z", Some("2025-06-01T00:00:00Z")),
                service("https://v2", 2, "2025-02-01T00:00:00Z", None),
            ],
            "rekorTlogUrls": [service("https://log2025-1", 2, "2025-01-01T00:00:00Z", None)],
        });
        let config = SigningConfig::from_json(config.to_string().as_bytes()).unwrap();
        let now = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(config.select_fulcio(now).unwrap().url, "https://new");
        let during = parse_rfc3339("2025-03-01T00:00:00Z").unwrap();
        assert_eq!(config.select_fulcio(during).unwrap().url, "https://ended");
        assert_eq!(config.select_rekor_v1(now), None);
    }

    #[test]
    fn a_client_trust_config_holds_both() {
        let root: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
        let signing: serde_json::Value =
            serde_json::from_slice(PUBLIC_GOOD_SIGNING_CONFIG).unwrap();
        let config = serde_json::json!({
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": root,
            "signingConfig": signing,
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust_config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let config = ClientTrustConfig::from_file(&path).unwrap();
        assert_eq!(config.trusted_root.tlogs.len(), 1);
        assert_eq!(config.signing_config.ca_urls.len(), 1);

        let wrong = serde_json::json!({"mediaType": "x", "trustedRoot": {"mediaType": "y"}, "signingConfig": {"mediaType": "z"}});
        let e = ClientTrustConfig::from_json(wrong.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("mediaType `x`"), "{e}");
    }

    #[test]
    fn all_three_media_type_spellings_are_accepted_and_others_refused() {
        let mut root: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
        for media_type in TRUSTED_ROOT_MEDIA_TYPES {
            root["mediaType"] = media_type.into();
            TrustedRoot::from_json(root.to_string().as_bytes()).unwrap();
        }
        root["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json".into();
        let e = TrustedRoot::from_json(root.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("trusted root: mediaType"), "{e}");
    }

    #[test]
    fn a_bad_timestamp_names_the_log_and_field() {
        let mut root: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
        root["tlogs"][0]["publicKey"]["validFor"]["start"] = "2021-01-12".into();
        let e = TrustedRoot::from_json(root.to_string().as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("transparency log https://rekor.sigstore.dev: validFor.start"),
            "{e}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted_root.json");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_TRUST_FILE_SIZE + 1).unwrap();
        let e = TrustedRoot::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("trusted_root.json"), "{e}");
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
