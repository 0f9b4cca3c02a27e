//! A fault-injecting HTTP/1.1 proxy in front of a real registry, and a recording "other host"
//! server on 127.0.0.2, for the fault and credential-safety tests. Plain std threads and sockets.
//!
//! Every accepted connection carries one request: the proxy reads its head (at most 64 KiB) and its
//! body (`Content-Length` or chunked), asks the [`Plan`] what to do, does it, and closes the
//! connection (`Connection: close` both ways), so every request the client makes is seen and
//! decided on its own. Every request is recorded (method, target, headers, body, the status sent
//! and when) for the test to assert on.
//!
//! ```no_run
//! use cnb_attest_tests::proxy::{Action, Plan, Proxy};
//! // 503 to the first two manifest PUTs, everything else forwarded.
//! let proxy = Proxy::start("127.0.0.1:5000", Plan::new().on(
//!     |r| r.method == "PUT" && r.path().contains("/manifests/"),
//!     |_, n| if n < 2 { Action::status(503) } else { Action::Forward },
//! ));
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request or upstream response body read.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// How long a connection may sit idle.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A request as the proxy received it (the body is in [`Recorded`]).
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Position among all requests this server received (0-based).
    pub seq: usize,
    /// When its head had arrived.
    pub at: Instant,
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Headers in the order received (names as sent).
    pub headers: Vec<(String, String)>,
    /// The announced body length (`Content-Length`; 0 when absent or chunked).
    pub content_length: usize,
}

impl RequestInfo {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query, without `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    /// A header's value (case-insensitive name; the first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request and what became of it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request.
    pub request: RequestInfo,
    /// The body bytes received (only part of it for [`Action::ResetMidBody`]).
    pub body: Vec<u8>,
    /// What the proxy did: `forward`, `delayed` (forwarded after [`Action::Delayed`]), `respond`,
    /// `reset`, `redirect`, `rewrite`, `amend`, `drop`, `close`, `rst`, `stop-mid-body`, `stream`,
    /// `error`.
    pub action: &'static str,
    /// The status sent to the client, if one was.
    pub status: Option<u16>,
    /// When the answer had been written (or the connection dropped), before the proxy waits for
    /// the client to close.
    pub answered_at: Option<Instant>,
    /// Response body bytes the client's socket accepted (for [`Action::Stream`]: how much of the
    /// endless or oversized body went out before the client stopped reading).
    pub sent: u64,
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send it upstream on a new connection (`Host` rewritten, `Connection: close`) and relay the
    /// full response (`Location` headers pointing upstream are pointed back at the proxy).
    Forward,
    /// Wait this many milliseconds (a network round trip), then [`Action::Forward`].
    Delayed(u64),
    /// Answer without asking upstream.
    Respond {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Read only part of the body (half of `Content-Length`), then drop the connection unanswered.
    ResetMidBody,
    /// Answer a redirect to an absolute URL.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location`.
        location: String,
    },
    /// Forward, then replace the response: the status (when given), these headers (added or
    /// replacing same-named ones) and the body.
    Rewrite {
        /// New status, or keep upstream's.
        status: Option<u16>,
        /// Headers to set.
        headers: Vec<(String, String)>,
        /// The new body.
        body: Vec<u8>,
    },
    /// Forward, then change the response's status (when given) and set these headers (added or
    /// replacing same-named ones), keeping upstream's body.
    Amend {
        /// New status, or keep upstream's.
        status: Option<u16>,
        /// Headers to set.
        headers: Vec<(String, String)>,
    },
    /// Close the connection without answering (the request head has been read; the body is not).
    Drop,
    /// Read the whole request, then close the connection without answering: a clean close (FIN),
    /// as a proxy or load balancer that gave up on the request does.
    Close,
    /// Read the whole request, then reset the connection (`SO_LINGER` 0: the close sends a RST
    /// and nothing else).
    Reset,
    /// Read this many body bytes of the request (at most its `Content-Length`), then reset the
    /// connection: a server that stops in the middle of an upload.
    StopMidBody(usize),
    /// Answer without asking upstream with a body of spaces (JSON whitespace) that is larger than
    /// any client should read: the head announces `length` as `Content-Length` (it may lie), or,
    /// with `None`, a chunked body with no end. Bytes are written until `limit` have gone out or the
    /// client stops reading and closes; [`Recorded::sent`] says how many its socket accepted.
    Stream {
        /// Status code.
        status: u16,
        /// Extra headers (`Content-Length` and `Transfer-Encoding` are the proxy's).
        headers: Vec<(String, String)>,
        /// The announced length, or `None` for chunked.
        length: Option<u64>,
        /// The most body bytes to write.
        limit: u64,
    },
}

impl Action {
    /// A bodiless answer with `status`.
    pub fn status(status: u16) -> Action {
        Action::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A 307 to `location`.
    pub fn redirect(location: impl Into<String>) -> Action {
        Action::Redirect {
            status: 307,
            location: location.into(),
        }
    }
}

type Matcher = Box<dyn Fn(&RequestInfo) -> bool + Send + Sync>;
type Decider = Box<dyn Fn(&RequestInfo, usize) -> Action + Send + Sync>;

struct Rule {
    matches: Matcher,
    decide: Decider,
    seen: AtomicUsize,
}

/// Rules, tried in order: the first whose matcher accepts a request decides, given how many
/// earlier requests that rule decided (0 for the first). No rule: [`Action::Forward`] when there is
/// an upstream, else 404.
#[derive(Default)]
pub struct Plan {
    rules: Vec<Rule>,
}

impl Plan {
    /// No rules: forward everything.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds a rule.
    pub fn on(
        mut self,
        matches: impl Fn(&RequestInfo) -> bool + Send + Sync + 'static,
        decide: impl Fn(&RequestInfo, usize) -> Action + Send + Sync + 'static,
    ) -> Plan {
        self.rules.push(Rule {
            matches: Box::new(matches),
            decide: Box::new(decide),
            seen: AtomicUsize::new(0),
        });
        self
    }

    /// Answers every request with `decide` (for the other-host server).
    pub fn all(decide: impl Fn(&RequestInfo, usize) -> Action + Send + Sync + 'static) -> Plan {
        Plan::new().on(|_| true, decide)
    }

    fn decide(&self, request: &RequestInfo, upstream: bool) -> Action {
        for rule in &self.rules {
            if (rule.matches)(request) {
                let n = rule.seen.fetch_add(1, Ordering::SeqCst);
                return (rule.decide)(request, n);
            }
        }
        if upstream {
            Action::Forward
        } else {
            Action::status(404)
        }
    }
}

struct Shared {
    host: String,
    upstream: Option<String>,
    plan: Plan,
    log: Mutex<Vec<Recorded>>,
    seq: AtomicUsize,
    stop: AtomicBool,
}

/// A running proxy (or other-host server); stopped on drop.
pub struct Proxy {
    /// `<ip>:<port>` it listens on.
    pub host: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (a free port) in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, plan: Plan) -> Proxy {
        Proxy::serve("127.0.0.1", Some(upstream.to_string()), plan)
    }

    /// A recording server on 127.0.0.2, a different host from the registry's 127.0.0.1: answers
    /// as `plan` says (404 by default) and records what it receives.
    pub fn other_host(plan: Plan) -> Proxy {
        Proxy::serve("127.0.0.2", None, plan)
    }

    fn serve(ip: &str, upstream: Option<String>, plan: Plan) -> Proxy {
        let listener = TcpListener::bind((ip, 0)).expect("bind the proxy");
        let host = format!("{ip}:{}", listener.local_addr().unwrap().port());
        let shared = Arc::new(Shared {
            host: host.clone(),
            upstream,
            plan,
            log: Mutex::new(Vec::new()),
            seq: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || handle(&shared, stream));
            }
        });
        Proxy { host, shared }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        let mut all = self.shared.log.lock().unwrap().clone();
        all.sort_by_key(|r| r.request.seq);
        all
    }

    /// How many requests have arrived so far (cheap: nothing is copied).
    pub fn count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// The requests that arrived after the first `from`, in arrival order (for measuring one run
    /// of many through one proxy without copying the earlier runs' bodies).
    pub fn requests_since(&self, from: usize) -> Vec<Recorded> {
        let log = self.shared.log.lock().unwrap();
        let mut some = log[from.min(log.len())..].to_vec();
        drop(log);
        some.sort_by_key(|r| r.request.seq);
        some
    }

    /// Whether every request after the first `from` has been answered (or dropped).
    pub fn answered_since(&self, from: usize) -> bool {
        let log = self.shared.log.lock().unwrap();
        log[from.min(log.len())..]
            .iter()
            .all(|r| r.answered_at.is_some())
    }

    /// The requests so far that `filter` accepts.
    pub fn matching(&self, filter: impl Fn(&RequestInfo) -> bool) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| filter(&r.request))
            .collect()
    }

    /// `METHOD target -> status` per request, for failure messages.
    pub fn summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{:>3} {} {} -> {} {}\n",
                    r.request.seq,
                    r.request.method,
                    r.request.path(),
                    r.action,
                    r.status.map(|s| s.to_string()).unwrap_or_default()
                )
            })
            .collect()
    }

    /// `CNB_REGISTRY_AUTH` giving `authorization` (a full header value) for this proxy's host.
    pub fn registry_auth(&self, authorization: &str) -> String {
        format!("{{\"{}\": \"{authorization}\"}}", self.host)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

/// A connection with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The request or response head, up to and without the blank line.
    fn head(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::other("head too large"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n > MAX_BODY {
            return Err(io::Error::other("body too large"));
        }
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD || self.fill()? == 0 {
                return Err(io::Error::other("bad chunked encoding"));
            }
        }
    }

    fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let size_line = self.line()?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !self.line()?.is_empty() {}
                return Ok(out);
            }
            if out.len() + size > MAX_BODY {
                return Err(io::Error::other("body too large"));
            }
            out.extend(self.exact(size)?);
            self.line()?;
        }
    }

    fn until_eof(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? > 0 {
            if self.buf.len() > MAX_BODY {
                return Err(io::Error::other("body too large"));
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn has_header(headers: &[(String, String)], name: &str, value_contains: &str) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(value_contains)
    })
}

fn handle(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    let Ok(head) = conn.head() else { return };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers = parse_headers(lines);
    let content_length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let request = RequestInfo {
        seq: shared.seq.fetch_add(1, Ordering::SeqCst),
        at: Instant::now(),
        method,
        target,
        headers,
        content_length,
    };
    let index = {
        let mut log = shared.log.lock().unwrap();
        log.push(Recorded {
            request: request.clone(),
            body: Vec::new(),
            action: "error",
            status: None,
            answered_at: None,
            sent: 0,
        });
        log.len() - 1
    };
    let action = shared.plan.decide(&request, shared.upstream.is_some());
    let (name, status, body, answered_at, sent) = act(shared, &mut conn, &request, action);
    let mut log = shared.log.lock().unwrap();
    let entry = &mut log[index];
    entry.action = name;
    entry.status = status;
    entry.body = body;
    entry.answered_at = Some(answered_at);
    entry.sent = sent;
}

/// Carries out `action`; returns what was done, the status sent, the body received, when the
/// answer was written and how many response body bytes went out.
fn act(
    shared: &Shared,
    conn: &mut Conn,
    request: &RequestInfo,
    action: Action,
) -> (&'static str, Option<u16>, Vec<u8>, Instant, u64) {
    match action {
        Action::Drop => {
            let _ = conn.stream.shutdown(Shutdown::Both);
            ("drop", None, Vec::new(), Instant::now(), 0)
        }
        Action::Close => {
            let body = request_body(conn, request).unwrap_or_default();
            let _ = conn.stream.shutdown(Shutdown::Both);
            ("close", None, body, Instant::now(), 0)
        }
        Action::Reset => {
            let body = request_body(conn, request).unwrap_or_default();
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
            ("rst", None, body, Instant::now(), 0)
        }
        Action::StopMidBody(n) => {
            let body = conn
                .exact(n.min(request.content_length))
                .unwrap_or_default();
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
            ("stop-mid-body", None, body, Instant::now(), 0)
        }
        Action::ResetMidBody => {
            let half = request.content_length / 2;
            let body = conn.exact(half).unwrap_or_default();
            // Unread data in the receive buffer makes the kernel answer the close with a RST.
            ("reset", None, body, Instant::now(), 0)
        }
        Action::Stream {
            status,
            headers,
            length,
            limit,
        } => {
            let body = conn.exact(request.content_length).unwrap_or_default();
            let sent = stream_body(&mut conn.stream, status, &headers, length, limit);
            let answered_at = Instant::now();
            let _ = conn.stream.shutdown(Shutdown::Both);
            ("stream", Some(status), body, answered_at, sent)
        }
        other => {
            let Ok(body) = request_body(conn, request) else {
                return ("error", None, Vec::new(), Instant::now(), 0);
            };
            let (name, response) = match other {
                Action::Respond {
                    status,
                    headers,
                    body,
                } => (
                    "respond",
                    Response {
                        status,
                        headers,
                        body,
                    },
                ),
                Action::Redirect { status, location } => (
                    "redirect",
                    Response {
                        status,
                        headers: vec![("Location".into(), location)],
                        body: Vec::new(),
                    },
                ),
                Action::Forward => match forward(shared, request, &body) {
                    Ok(r) => ("forward", r),
                    Err(e) => ("forward", error_response(&e)),
                },
                Action::Delayed(ms) => {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    match forward(shared, request, &body) {
                        Ok(r) => ("delayed", r),
                        Err(e) => ("delayed", error_response(&e)),
                    }
                }
                Action::Rewrite {
                    status,
                    headers,
                    body: new_body,
                } => match forward(shared, request, &body) {
                    Ok(mut r) => {
                        if let Some(status) = status {
                            r.status = status;
                        }
                        for (name, value) in headers {
                            r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                            r.headers.push((name, value));
                        }
                        r.body = new_body;
                        ("rewrite", r)
                    }
                    Err(e) => ("rewrite", error_response(&e)),
                },
                Action::Amend { status, headers } => match forward(shared, request, &body) {
                    Ok(mut r) => {
                        if let Some(status) = status {
                            r.status = status;
                        }
                        for (name, value) in headers {
                            r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                            r.headers.push((name, value));
                        }
                        ("amend", r)
                    }
                    Err(e) => ("amend", error_response(&e)),
                },
                Action::Drop
                | Action::Close
                | Action::Reset
                | Action::StopMidBody(_)
                | Action::ResetMidBody
                | Action::Stream { .. } => unreachable!(),
            };
            let status = response.status;
            let head_only = request.method == "HEAD";
            let sent = match write_response(&mut conn.stream, &response, head_only) {
                Ok(()) if !head_only => response.body.len() as u64,
                _ => 0,
            };
            let answered_at = Instant::now();
            let _ = conn.stream.shutdown(Shutdown::Write);
            // Let the client close first, so that nothing it sent late turns our close into a RST.
            let _ = conn
                .stream
                .set_read_timeout(Some(Duration::from_millis(500)));
            let mut sink = [0u8; 1024];
            while matches!(conn.stream.read(&mut sink), Ok(n) if n > 0) {}
            (name, Some(status), body, answered_at, sent)
        }
    }
}

/// The whole request body (`Content-Length` or chunked).
fn request_body(conn: &mut Conn, request: &RequestInfo) -> io::Result<Vec<u8>> {
    if has_header(&request.headers, "transfer-encoding", "chunked") {
        conn.chunked()
    } else {
        conn.exact(request.content_length)
    }
}

/// Writes the head of an [`Action::Stream`] answer, then spaces until `limit` bytes are out or a
/// write fails (the client closed); returns the body bytes written.
fn stream_body(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    length: Option<u64>,
    limit: u64,
) -> u64 {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if !matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "content-length"
        ) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    match length {
        Some(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("Connection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    const CHUNK: usize = 64 * 1024;
    let spaces = [b' '; CHUNK];
    let mut sent = 0u64;
    while sent < limit {
        let n = CHUNK.min((limit - sent) as usize);
        let ok = match length {
            Some(_) => stream.write_all(&spaces[..n]),
            None => stream
                .write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| stream.write_all(&spaces[..n]))
                .and_then(|()| stream.write_all(b"\r\n")),
        };
        if ok.is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = stream.flush();
    sent
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn error_response(e: &io::Error) -> Response {
    Response {
        status: 502,
        headers: Vec::new(),
        body: format!("proxy: upstream failed: {e}").into_bytes(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    let mut has_length = false;
    for (name, value) in &response.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            continue;
        }
        if lower == "content-length" {
            // A HEAD answer keeps upstream's length of the body it does not send.
            if !head_only {
                continue;
            }
            has_length = true;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !head_only || !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes())?;
    if !head_only {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

/// Sends the request upstream on a fresh connection and reads the whole response.
fn forward(shared: &Shared, request: &RequestInfo, body: &[u8]) -> io::Result<Response> {
    let upstream = shared
        .upstream
        .as_deref()
        .ok_or_else(|| io::Error::other("no upstream"))?;
    let mut stream = TcpStream::connect(upstream)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut out = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "content-length"
                | "expect"
        ) {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Host: {upstream}\r\n"));
    if !body.is_empty() || request.header("content-length").is_some() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    let head = conn.head()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("bad upstream status line"))?;
    let mut headers = parse_headers(lines);
    let bodiless = request.method == "HEAD" || status == 204 || status == 304 || status < 200;
    let body = if bodiless {
        Vec::new()
    } else if has_header(&headers, "transfer-encoding", "chunked") {
        conn.chunked()?
    } else if let Some(length) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        conn.exact(length)?
    } else {
        conn.until_eof()?
    };
    // Absolute URLs the registry built from our Host header point back at the proxy.
    let from = format!("http://{upstream}");
    let to = format!("http://{}", shared.host);
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("location") && value.starts_with(&from) {
            *value = format!("{to}{}", &value[from.len()..]);
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A matcher for `GET` requests of exactly `path`.
pub fn get(path: String) -> impl Fn(&RequestInfo) -> bool + Send + Sync + 'static {
    move |r: &RequestInfo| r.method == "GET" && r.path() == path
}

/// A proxy in front of `upstream` that acts as a registry asking for a Bearer token from a realm
/// on its own host (`/token`), answers the token request itself with `token`, and forwards the
/// requests that carry the token (`Bearer t`).
pub fn bearer_realm(
    upstream: &str,
    token: impl Fn(&RequestInfo, usize) -> Action + Send + Sync + 'static,
) -> Proxy {
    let proxy_host = Arc::new(std::sync::OnceLock::<String>::new());
    let host = Arc::clone(&proxy_host);
    let proxy = Proxy::start(
        upstream,
        Plan::new().on(|r| r.path() == "/token", token).on(
            |r| r.header("authorization") != Some("Bearer t"),
            move |_, _| Action::Respond {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate".into(),
                    format!(
                        "Bearer realm=\"http://{}/token\",service=\"x\"",
                        host.get().expect("the proxy's host is set before requests")
                    ),
                )],
                body: br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
            },
        ),
    );
    proxy_host
        .set(proxy.host.clone())
        .expect("set once, right after the proxy starts");
    proxy
}

/// A kind of fault [`Faults`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The request read, then the connection closed with no answer (FIN).
    Drop,
    /// The request read, then the connection reset (RST, `SO_LINGER` 0).
    Reset,
    /// 500, 502 or 503, without asking upstream.
    ServerError,
    /// 429 with `Retry-After: 0` or `1`, without asking upstream.
    TooManyRequests,
    /// Forwarded after a delay of 50–750 ms.
    Latency,
    /// An upload (`PUT`, `PATCH` or `POST` with a body) read in part, then the connection reset.
    StopMidUpload,
}

impl Fault {
    /// Every kind, in report order.
    pub const ALL: [Fault; 6] = [
        Fault::Drop,
        Fault::Reset,
        Fault::ServerError,
        Fault::TooManyRequests,
        Fault::Latency,
        Fault::StopMidUpload,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Drop => "drop",
            Fault::Reset => "reset",
            Fault::ServerError => "5xx",
            Fault::TooManyRequests => "429",
            Fault::Latency => "latency",
            Fault::StopMidUpload => "stop mid-upload",
        }
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// Seeded random faults at a given rate, for a soak: each request, by its position among the
/// proxy's requests ([`RequestInfo::seq`]) and the seed, is either forwarded or meets one fault,
/// chosen uniformly among the [`Fault`] kinds that apply to it (a stop mid-upload only to a
/// request with a body). The same seed gives the same decision for the same position; which
/// request gets a position depends on the order concurrent clients reach the proxy. Every fault
/// is counted by kind.
///
/// ```no_run
/// use cnb_attest_tests::proxy::{Faults, Plan, Proxy};
/// let faults = Faults::new(42, 0.10);
/// let proxy = Proxy::start("127.0.0.1:5000", Plan::new().with_faults(faults.clone()));
/// // ... run clients through proxy.host ...
/// eprintln!("{} faults in {} requests", faults.total(), faults.requests());
/// ```
pub struct Faults {
    seed: u64,
    per_million: u64,
    enabled: AtomicBool,
    requests: AtomicUsize,
    counts: [AtomicUsize; 6],
}

impl Faults {
    /// Faults at `rate` (0.0–1.0 of requests), drawn from `seed`.
    pub fn new(seed: u64, rate: f64) -> Arc<Faults> {
        Arc::new(Faults {
            seed,
            per_million: (rate.clamp(0.0, 1.0) * 1_000_000.0) as u64,
            enabled: AtomicBool::new(true),
            requests: AtomicUsize::new(0),
            counts: Default::default(),
        })
    }

    /// Turns injection on or off (off: every request is forwarded and not counted).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// What to do with `request`: [`Action::Forward`], or the fault drawn for it (counted).
    pub fn decide(&self, request: &RequestInfo) -> Action {
        if !self.enabled.load(Ordering::SeqCst) {
            return Action::Forward;
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut state = self.seed ^ (request.seq as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut draw = || splitmix64(&mut state);
        if draw() % 1_000_000 >= self.per_million {
            return Action::Forward;
        }
        let upload = matches!(request.method.as_str(), "PUT" | "PATCH" | "POST")
            && request.content_length > 0;
        let kinds: &[Fault] = if upload {
            &Fault::ALL
        } else {
            &Fault::ALL[..5]
        };
        let fault = kinds[(draw() % kinds.len() as u64) as usize];
        self.counts[fault.index()].fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Drop => Action::Close,
            Fault::Reset => Action::Reset,
            Fault::ServerError => Action::status([500, 502, 503][(draw() % 3) as usize]),
            Fault::TooManyRequests => Action::Respond {
                status: 429,
                headers: vec![("Retry-After".into(), (draw() % 2).to_string())],
                body: br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}"#.to_vec(),
            },
            Fault::Latency => Action::Delayed(50 + draw() % 701),
            Fault::StopMidUpload => {
                Action::StopMidBody((draw() % request.content_length as u64) as usize)
            }
        }
    }

    /// Faults injected so far, by kind (every kind listed, zeros included).
    pub fn counts(&self) -> Vec<(Fault, usize)> {
        Fault::ALL
            .iter()
            .map(|f| (*f, self.counts[f.index()].load(Ordering::SeqCst)))
            .collect()
    }

    /// Faults injected so far, all kinds.
    pub fn total(&self) -> usize {
        self.counts.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }

    /// Requests decided on while enabled.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// SplitMix64: a small, well-mixed generator (enough to spread faults; not for secrets).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Plan {
    /// Adds a rule that sends every request not decided by an earlier rule through `faults`.
    pub fn with_faults(self, faults: Arc<Faults>) -> Plan {
        self.on(|_| true, move |request, _| faults.decide(request))
    }
}
