//! An offline Sigstore instance started by the tests on 127.0.0.1 (`tests/tools/fake-sigstore.js`:
//! a fake Fulcio from `@sigstore/mock`, and a Rekor v1 with a real Merkle tree), and the
//! independent keyless oracles: sigstore-python (sign with `tests/oracles/keyless_sign.py`, verify
//! with its CLI) and `@sigstore/verify` (`tests/oracles/verify_keyless_bundle.js`). None of them
//! uses this project's crates. The server is stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{missing, oracle, run, tools_dir, which, workspace_root};

/// The OIDC issuer of the tokens the tests mint (the fake does not check it against a list).
pub const ISSUER: &str = "https://issuer.cnb-attest.test";

/// The offset between Rekor's global `logIndex` and the tree-local `inclusionProof.logIndex` in
/// the fake (they differ in production too).
pub const LOG_INDEX_OFFSET: u64 = 1000;

/// How the fake misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeOptions {
    /// Rekor refuses request bodies above this many bytes with 413 (as rekor PR #2813 does).
    pub rekor_max_body: Option<u64>,
    /// The CA's clock is shifted by this many seconds: with −3600 a certificate is valid from 1 h
    /// ago to 50 min ago while Rekor's `integratedTime` is now.
    pub cert_clock_offset: i64,
}

/// A running fake Sigstore.
pub struct FakeSigstore {
    /// `http://127.0.0.1:<port>`: the Fulcio and Rekor base URL.
    pub url: String,
    /// Holds `trusted_root.json`, `signing_config.json`, `trust_config.json` and `requests.jsonl`.
    pub dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

/// The tools this module drives: `(node_modules, venv python)`, or `None` (skip, or fail under
/// CI) when one is missing.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let modules = tools_dir().join("npm/node_modules");
    if which("node").is_none() || !modules.join("@sigstore/mock").is_dir() {
        return missing("node with @sigstore/mock").and(None);
    }
    if !modules.join("@sigstore/verify").is_dir() || !modules.join("@sigstore/sign").is_dir() {
        return missing("node with @sigstore/verify and @sigstore/sign").and(None);
    }
    let python = tools_dir().join("venv/bin/python");
    if !python.is_file() || !tools_dir().join("venv/bin/sigstore").is_file() {
        return missing("sigstore-python (sigstore 4.5.1 in the test venv)").and(None);
    }
    Some((modules, python))
}

impl FakeSigstore {
    /// Starts a well-behaved fake, or returns `None` (skipping, or failing under CI) when node,
    /// `@sigstore/mock`, `@sigstore/verify` or sigstore-python is not installed.
    pub fn start() -> Option<FakeSigstore> {
        FakeSigstore::start_with(FakeOptions::default())
    }

    /// [`FakeSigstore::start`] with [`FakeOptions`].
    pub fn start_with(options: FakeOptions) -> Option<FakeSigstore> {
        let (modules, _) = tools()?;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sigstore");
        let stderr = std::fs::File::create(tmp.path().join("fake-sigstore.stderr")).unwrap();
        let mut command = Command::new("node");
        command
            .arg(workspace_root().join("tests/tools/fake-sigstore.js"))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0"])
            .args([
                "--cert-clock-offset",
                &options.cert_clock_offset.to_string(),
            ])
            .env("NODE_PATH", &modules)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(max) = options.rekor_max_body {
            command.args(["--rekor-max-body", &max.to_string()]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start node: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        // The server prints this line once it listens and the trust files are written; on a
        // startup failure it exits and the read ends empty.
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("listening ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fake-sigstore did not start (stdout {line:?}):\n{}",
                std::fs::read_to_string(tmp.path().join("fake-sigstore.stderr"))
                    .unwrap_or_default()
            );
        };
        Some(FakeSigstore {
            url,
            dir,
            child,
            _tmp: tmp,
        })
    }

    /// `trusted_root.json` (a TrustedRoot: the mock CA, this Rekor, the mock CT log).
    pub fn trusted_root(&self) -> PathBuf {
        self.dir.join("trusted_root.json")
    }

    /// `signing_config.json` (signing config v0.2 pointing Fulcio, OIDC and Rekor v1 here).
    pub fn signing_config(&self) -> PathBuf {
        self.dir.join("signing_config.json")
    }

    /// `trust_config.json` (a ClientTrustConfig: the two above, for sigstore-python).
    pub fn trust_config(&self) -> PathBuf {
        self.dir.join("trust_config.json")
    }

    /// The request log: one `{method, path, bytes, status}` per request served so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many entries were submitted to Rekor (POSTs to `/api/v1/log/entries`, any status).
    pub fn log_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/log/entries")
            .count()
    }
}

impl Drop for FakeSigstore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HMAC-SHA256 (RFC 2104), by hand from `sha2` so the tests need no `hmac` dependency.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// A JWT with these claims, signed HS256 with a throwaway secret (nothing verifies it; real
/// tokens are RS256/ES256 from the CI's issuer).
pub fn jwt(claims: &serde_json::Value) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let signature = hmac_sha256(b"cnb-attest-test-secret", signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An OIDC identity token as a CI system would mint it: `aud` "sigstore", `iss`, `sub`, `iat`,
/// `exp` = now + `lifetime_seconds` (negative: already expired). The fake does not verify its
/// signature.
pub fn mint_token(subject: &str, issuer: &str, lifetime_seconds: i64) -> String {
    let now = now();
    let exp = now + lifetime_seconds;
    let token = jwt(&serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": "sigstore",
        "iat": now.min(exp - 60),
        "exp": exp,
    }));
    crate::secret(&token);
    token
}

/// Signs the in-toto statement `statement` (JSON bytes) keylessly with sigstore-python against
/// `fake`, writing the bundle to `out` (`tests/oracles/keyless_sign.py`).
pub fn python_sign(fake: &FakeSigstore, token: &str, statement: &[u8], out: &Path) -> Output {
    python_sign_with(&fake.trust_config(), token, statement, out)
}

/// [`python_sign`] with another client trust config (e.g. one instance's Fulcio and another's
/// Rekor).
pub fn python_sign_with(trust_config: &Path, token: &str, statement: &[u8], out: &Path) -> Output {
    let (_, python) = tools().expect("FakeSigstore::start checked the tools");
    let inputs = tempfile::tempdir().unwrap();
    let token_file = inputs.path().join("token");
    let statement_file = inputs.path().join("statement.json");
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&statement_file, statement).unwrap();
    run(Command::new(python)
        .arg(oracle("keyless_sign.py"))
        .arg(trust_config)
        .arg(&token_file)
        .arg(&statement_file)
        .arg(out))
}

/// The sigstore-js signer run by [`node_sign`]: `@sigstore/sign`'s `DSSEBundleBuilder` with a
/// `FulcioSigner` (a public-key request with proof of possession, not a CSR) and a `RekorWitness`
/// (`dsse` entries).
const NODE_SIGN: &str = r#"
const fs = require('fs');
const { DSSEBundleBuilder, FulcioSigner, RekorWitness } = require('@sigstore/sign');
const { bundleToJSON } = require('@sigstore/bundle');
const [url, tokenFile, statementFile, out] = process.argv.slice(1);
const token = fs.readFileSync(tokenFile, 'utf8').trim();
const builder = new DSSEBundleBuilder({
  signer: new FulcioSigner({ fulcioBaseURL: url, identityProvider: { getToken: async () => token } }),
  witnesses: [new RekorWitness({ rekorBaseURL: url, entryType: 'dsse' })],
});
builder.create({ data: fs.readFileSync(statementFile), type: 'application/vnd.in-toto+json' })
  .then((bundle) => { fs.writeFileSync(out, JSON.stringify(bundleToJSON(bundle))); console.log(`signed ${out}`); })
  .catch((e) => {
    console.log(`FAILED: ${e.code || e.name}: ${e.message}${e.cause ? ` (${e.cause.message})` : ''}`);
    process.exit(1);
  });
"#;

/// Signs the in-toto statement `statement` keylessly with sigstore-js (`@sigstore/sign`, a
/// second signer independent of this project and of sigstore-python) against `fake`, writing the
/// bundle to `out`. Note: sigstore-js writes proto3 JSON, which omits an empty
/// `inclusionProof.hashes` (the first entry of a tree), and sigstore-python 4.5.1 then refuses to
/// parse the bundle ("Field required"); bundles from later entries have hashes.
pub fn node_sign(fake: &FakeSigstore, token: &str, statement: &[u8], out: &Path) -> Output {
    let (modules, _) = tools().expect("FakeSigstore::start checked the tools");
    let inputs = tempfile::tempdir().unwrap();
    let token_file = inputs.path().join("token");
    let statement_file = inputs.path().join("statement.json");
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&statement_file, statement).unwrap();
    run(Command::new("node")
        .args(["-e", NODE_SIGN])
        .arg(&fake.url)
        .arg(&token_file)
        .arg(&statement_file)
        .arg(out)
        .env("NODE_PATH", modules))
}

/// Verifies a DSSE bundle offline with sigstore-python's CLI (`sigstore verify identity
/// --offline`): identity and issuer compared exactly, and the statement must have a subject with
/// sha256 `subject_sha256_hex`.
pub fn python_verify(
    fake: &FakeSigstore,
    bundle: &Path,
    identity: &str,
    issuer: &str,
    subject_sha256_hex: &str,
) -> Output {
    let (_, python) = tools().expect("FakeSigstore::start checked the tools");
    run(Command::new(python)
        .args(["-m", "sigstore", "--trust-config"])
        .arg(fake.trust_config())
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity, "--cert-oidc-issuer", issuer])
        .arg(format!("sha256:{subject_sha256_hex}"))
        // Rich wraps its messages at the terminal width; one line per message.
        .env("COLUMNS", "1000"))
}

/// Verifies bundles with `@sigstore/verify` (`tests/oracles/verify_keyless_bundle.js`) against
/// `fake`'s trusted root: chain, SCT, SET, inclusion proof, checkpoint, signature, and the
/// identity and issuer compared exactly.
pub fn node_verify(
    fake: &FakeSigstore,
    identity: &str,
    issuer: &str,
    bundles: &[PathBuf],
) -> Output {
    let (modules, _) = tools().expect("FakeSigstore::start checked the tools");
    run(Command::new("node")
        .arg(oracle("verify_keyless_bundle.js"))
        .arg(fake.trusted_root())
        .arg(identity)
        .arg(issuer)
        .args(bundles)
        .env("NODE_PATH", modules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha256_hashes_a_long_key_first() {
        // RFC 4231 test case 6: a 131-byte key.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
