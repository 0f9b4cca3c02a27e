//! The floor client: the least a plain HTTP client has to do to move the same bytes, run as its
//! own process (`bench floor <plan.json>`) so that it is measured exactly like `cnb-attest`
//! (wall time, CPU and peak RSS by `wait4`, requests and bytes by the proxy).
//!
//! A plan is a list of phases run one after the other; the operations of a phase run 8 at a time
//! (`buffer_unordered(8)`, cnb-attest's concurrency) over one reqwest client (keep-alive; the
//! bench's proxy closes every connection, for cnb-attest too). One tokio current-thread runtime.
//!
//! Plans are made here from what `cnb-attest` did (the proxy's record of its run):
//! - sign: every blob it uploaded (read back from the registry, pushed as POST + PUT, or as one
//!   `POST ?digest=` where the registry completed cnb-attest's single-POST upload), every
//!   manifest it PUT (same bytes, same media type), and on the tag-schema fallback one GET and one
//!   PUT of the index, into a fresh repository holding the same image;
//! - download: the same successful GETs (listing/tags, then manifests by digest, then blobs);
//! - warm re-run: one GET of the listing.

use std::path::Path;

use cnb_attest_tests::proxy::Recorded;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

/// Concurrency of the floor, as cnb-attest's.
const CONCURRENCY: usize = 8;

/// `bench floor <plan.json>`: runs the plan, exits non-zero on the first failure.
pub(crate) fn main(plan: &Path) -> ! {
    let plan: Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(run(&plan)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::exit(1)
        }
    }
}

async fn run(plan: &Value) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .map_err(|e| e.to_string())?;
    let base = plan["base"].as_str().unwrap().to_string();
    let auth = plan["auth"].as_str().map(str::to_string);
    for phase in plan["phases"].as_array().unwrap() {
        let ops = phase.as_array().unwrap();
        let results: Vec<Result<(), String>> = futures_util::stream::iter(ops.iter())
            .map(|op| one(&client, &base, auth.as_deref(), op))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
    }
    Ok(())
}

fn with_auth(request: reqwest::RequestBuilder, auth: Option<&str>) -> reqwest::RequestBuilder {
    match auth {
        Some(a) => request.header("Authorization", a),
        None => request,
    }
}

async fn one(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&str>,
    op: &Value,
) -> Result<(), String> {
    let path = op["path"].as_str().unwrap();
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what} {path}: {e}");
    match op["op"].as_str().unwrap() {
        "get" => {
            let mut request = client.get(format!("{base}{path}"));
            if let Some(accept) = op["accept"].as_str() {
                request = request.header("Accept", accept);
            }
            let response = with_auth(request, auth)
                .send()
                .await
                .map_err(|e| fail("GET", &e))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| fail("GET", &e))?;
            // A 404 is an answer (the fallback index of a fresh repository).
            if !status.is_success() && status.as_u16() != 404 {
                return Err(fail("GET", &status));
            }
            drop(body);
            Ok(())
        }
        "put" => {
            let body = std::fs::read(op["file"].as_str().unwrap()).map_err(|e| fail("read", &e))?;
            let request = client
                .put(format!("{base}{path}"))
                .header("Content-Type", op["content-type"].as_str().unwrap_or(""))
                .body(body);
            let response = with_auth(request, auth)
                .send()
                .await
                .map_err(|e| fail("PUT", &e))?;
            if !response.status().is_success() {
                return Err(fail("PUT", &response.status()));
            }
            Ok(())
        }
        "blob" => {
            let body = std::fs::read(op["file"].as_str().unwrap()).map_err(|e| fail("read", &e))?;
            let digest = op["digest"].as_str().unwrap();
            if op["single"].as_bool() == Some(true) {
                let request = client
                    .post(format!(
                        "{base}{path}?digest={}",
                        digest.replace(':', "%3A")
                    ))
                    .header("Content-Type", "application/octet-stream")
                    .body(body);
                let response = with_auth(request, auth)
                    .send()
                    .await
                    .map_err(|e| fail("POST", &e))?;
                if response.status().as_u16() != 201 {
                    return Err(fail("POST", &response.status()));
                }
                return Ok(());
            }
            let started = with_auth(client.post(format!("{base}{path}")), auth)
                .header("Content-Length", "0")
                .send()
                .await
                .map_err(|e| fail("POST", &e))?;
            if started.status().as_u16() != 202 {
                return Err(fail("POST", &started.status()));
            }
            let location = started
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| fail("POST", &"no Location"))?
                .to_string();
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let request = client
                .put(format!("{url}{sep}digest={}", digest.replace(':', "%3A")))
                .header("Content-Type", "application/octet-stream")
                .body(body);
            let response = with_auth(request, auth)
                .send()
                .await
                .map_err(|e| fail("PUT", &e))?;
            if response.status().as_u16() != 201 {
                return Err(fail("PUT", &response.status()));
            }
            Ok(())
        }
        other => Err(format!("unknown op {other}")),
    }
}

/// The repository part of a `/v2/<repo>/(blobs|manifests|referrers|tags)/...` path.
fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in ["/blobs/", "/manifests/", "/referrers/", "/tags/"] {
        if let Some(i) = rest.find(kind) {
            return Some((&rest[..i], &rest[i..]));
        }
    }
    None
}

fn query_digest(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
}

/// The sign floor's plan: the blobs and manifests of `log` (cnb-attest's cold run into `from`),
/// pushed into `to`. Blob bytes are read back from the registry at `direct` (not through the proxy)
/// and manifests taken from the recorded bodies, all written under `dir`.
pub(crate) fn sign_plan(
    log: &[Recorded],
    from: &str,
    to: &str,
    direct: &str,
    auth: Option<&str>,
    dir: &Path,
) -> Vec<Value> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = |r: &&Recorded| r.status.is_some_and(|s| (200..300).contains(&s));
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut index = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in log.iter().filter(ok) {
        let q = &r.request;
        let Some((repo, rest)) = split(q.path()) else {
            continue;
        };
        if repo != from {
            continue;
        }
        if rest.starts_with("/blobs/uploads") && (q.method == "PUT" || q.method == "POST") {
            let Some(digest) = query_digest(&q.target) else {
                continue;
            };
            if !seen.insert(digest.clone()) {
                continue;
            }
            let file = dir.join(digest.replace(':', "-"));
            let bytes = fetch(
                &format!("http://{direct}/v2/{from}/blobs/{digest}"),
                auth,
                None,
            );
            std::fs::write(&file, bytes).unwrap();
            // One POST where the registry completed cnb-attest's single-POST upload.
            let single = q.method == "POST" && r.status == Some(201);
            blobs.push(
                json!({"op": "blob", "path": format!("/v2/{to}/blobs/uploads/"),
                "digest": digest, "file": file, "single": single}),
            );
        } else if let Some(reference) = rest.strip_prefix("/manifests/") {
            if q.method != "PUT" {
                continue;
            }
            let file = dir.join(format!("manifest-{}", q.seq));
            std::fs::write(&file, &r.body).unwrap();
            let op = json!({"op": "put", "path": format!("/v2/{to}/manifests/{reference}"),
                "content-type": q.header("content-type").unwrap_or(""), "file": file});
            if reference.starts_with("sha256-") {
                // The fallback index: one GET and one PUT (the last PUT of it wins).
                index = vec![
                    json!({"op": "get", "path": format!("/v2/{to}/manifests/{reference}"),
                        "accept": "application/vnd.oci.image.index.v1+json"}),
                    op,
                ];
            } else {
                manifests.push(op);
            }
        }
    }
    let mut phases = vec![Value::Array(blobs), Value::Array(manifests)];
    if let [get, put] = &index[..] {
        phases.push(json!([get]));
        phases.push(json!([put]));
    }
    phases
}

/// The download floor's plan: the successful GETs of `log`, in three phases (listings and tags,
/// manifests by digest, blobs), each with its `Accept`.
pub(crate) fn get_plan(log: &[Recorded]) -> Vec<Value> {
    let mut phases = vec![Vec::new(), Vec::new(), Vec::new()];
    for r in log {
        let q = &r.request;
        if q.method != "GET" || !r.status.is_some_and(|s| (200..300).contains(&s)) {
            continue;
        }
        let Some((_, rest)) = split(q.path()) else {
            continue;
        };
        let phase = if rest.starts_with("/blobs/") {
            2
        } else if rest.starts_with("/manifests/sha256:") {
            1
        } else {
            0
        };
        phases[phase].push(json!({"op": "get", "path": q.target, "accept": q.header("accept")}));
    }
    phases.into_iter().map(Value::Array).collect()
}

/// Writes a plan file.
pub(crate) fn write_plan(path: &Path, base: &str, auth: Option<&str>, phases: Vec<Value>) {
    let plan = json!({"base": format!("http://{base}"), "auth": auth, "phases": phases});
    std::fs::write(path, serde_json::to_vec(&plan).unwrap()).unwrap();
}

/// One GET, outside any measurement (reading back what cnb-attest pushed).
pub(crate) fn fetch(url: &str, auth: Option<&str>, accept: Option<&str>) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut request = with_auth(client.get(url), auth);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    })
}
