//! The server: an accept loop that gives each connection its own thread,
//! serving requests on it with keep-alive.
//!
//! A thread per connection, up to [`Config::max_connections`] at once, so
//! that idle keep-alive clients cannot keep others waiting: a connection
//! beyond the limit is answered `503` and closed at once. A connection
//! stays open between requests for [`Config::idle_timeout`] (5 s), then
//! closes normally (`conn_close` with reason `idle timeout`); once a
//! request's first byte has arrived, the whole request must arrive within
//! [`Config::request_timeout`] (10 s) or it is answered `408`. A panic while serving a connection (a bug) closes
//! only that connection, with the `error` and `conn_close` probes fired.

use crate::http::{self, ReadError, Request, Response};
use crate::probes;
use std::cell::Cell;
use std::io::{self, BufRead, BufReader, BufWriter, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long writing a response may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body `/bytes/N` produces.
const MAX_GENERATED: usize = 16 * 1024 * 1024;
/// Longest delay `/sleep/MS` accepts.
const MAX_SLEEP_MS: u64 = 10_000;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections served at once, each on its own thread; more are
    /// answered `503 Service Unavailable`.
    pub max_connections: usize,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request may take to arrive once its first byte has.
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 256,
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// How often the probes' costly arguments were computed (see
/// [`costly_arguments`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostlyArguments {
    /// Peer addresses formatted for `conn_accept`.
    pub peers: u64,
    /// Header lists handed to `request_headers` (serialized to JSON).
    pub headers: u64,
}

static PEERS_FORMATTED: AtomicU64 = AtomicU64::new(0);
static HEADERS_SERIALIZED: AtomicU64 = AtomicU64::new(0);

/// How often, in this process, the server computed a probe argument that
/// costs something (the peer address as text, the headers as JSON). The
/// probes compute them only while a tracer has them enabled, so the counts
/// stay at zero in an untraced server.
pub fn costly_arguments() -> CostlyArguments {
    CostlyArguments {
        peers: PEERS_FORMATTED.load(Ordering::Relaxed),
        headers: HEADERS_SERIALIZED.load(Ordering::Relaxed),
    }
}

/// Serves connections from `listener` until the process exits.
pub fn serve(listener: TcpListener, config: &Config) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let request_ids = Arc::new(AtomicU64::new(1));
    let mut next_conn = 1u64;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                probes::error(|| (0, 0, format!("accept: {e}")));
                // Out of file descriptors, say: let connections close.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let conn_id = next_conn;
        next_conn += 1;
        // Formatting the peer address costs an allocation: the probe's
        // closure runs only while a tracer has the probe enabled.
        probes::conn_accept(|| {
            PEERS_FORMATTED.fetch_add(1, Ordering::Relaxed);
            (conn_id, peer.to_string())
        });
        if active.load(Ordering::Acquire) >= config.max_connections.max(1) {
            refuse(conn_id, stream);
            continue;
        }
        let slot = Slot::take(&active);
        let request_ids = Arc::clone(&request_ids);
        let timeouts = (config.idle_timeout, config.request_timeout);
        let spawned = thread::Builder::new()
            .name(format!("conn-{conn_id}"))
            .spawn(move || {
                let _slot = slot;
                run_connection(conn_id, stream, &request_ids, timeouts);
            });
        if let Err(e) = spawned {
            probes::error(|| (conn_id, 0, format!("cannot start a thread: {e}")));
            probes::conn_close(|| (conn_id, 0, "no thread"));
        }
    }
    Ok(())
}

/// One of the [`Config::max_connections`] places, given back when dropped
/// (also when its thread panics).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        active.fetch_add(1, Ordering::AcqRel);
        Slot(Arc::clone(active))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection beyond the limit with `503` and closes it, on a
/// short-lived thread of its own so the accept loop does not wait: the
/// answer is written, then what the client sent is read (for at most
/// [`LINGER`]) before closing, so the kernel does not reset the connection
/// and discard the answer before the client reads it.
fn refuse(conn_id: u64, mut stream: TcpStream) {
    probes::error(|| (conn_id, 503, "too many connections"));
    let answer = move || {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let response = Response::text(503, "too many connections\n");
        let _ = http::write_response(&mut stream, &response, false, false);
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(LINGER));
        drain(&mut stream);
        probes::conn_close(|| (conn_id, 0, "too many connections"));
    };
    // Without a thread to spare, the connection is just closed.
    let _ = thread::Builder::new().name("refuse".into()).spawn(answer);
}

/// Serves `stream` and fires `conn_close`, also if serving it panics.
fn run_connection(
    conn_id: u64,
    stream: TcpStream,
    request_ids: &AtomicU64,
    timeouts: (Duration, Duration),
) {
    let served = Cell::new(0);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        serve_connection(conn_id, stream, request_ids, timeouts, &served)
    }));
    let reason = outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown cause");
        probes::error(|| (conn_id, 0, format!("internal error: {message}")));
        "internal error"
    });
    probes::conn_close(|| (conn_id, served.get(), reason));
}

/// A socket whose reads fail with `TimedOut` once `deadline` has passed,
/// however slowly the peer trickles bytes in.
struct Timed {
    stream: TcpStream,
    /// `None`: a timeout too far away to be represented, so none.
    deadline: Option<Instant>,
}

impl Timed {
    fn expire_after(&mut self, timeout: Duration) {
        self.deadline = Instant::now().checked_add(timeout);
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(left)?;
        self.stream.read(buf)
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Serves requests on one connection until it closes; returns why it
/// closed. `timeouts` are the idle and request timeouts; `served` counts
/// the responses written.
fn serve_connection(
    conn_id: u64,
    stream: TcpStream,
    request_ids: &AtomicU64,
    (idle_timeout, request_timeout): (Duration, Duration),
    served: &Cell<u64>,
) -> &'static str {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(write_half) = stream.try_clone() else {
        return "cannot clone the socket";
    };
    let mut reader = BufReader::new(Timed {
        stream,
        deadline: None,
    });
    let mut writer = BufWriter::new(write_half);
    loop {
        // Wait for the next request's first byte (it may be buffered
        // already, pipelined behind the last one).
        reader.get_mut().expire_after(idle_timeout);
        match reader.fill_buf() {
            Ok([]) => return "peer closed",
            Ok(_) => {}
            Err(e) if timed_out(&e) => return "idle timeout",
            Err(e) => {
                return read_failed(conn_id, ReadError::Io(e), &mut reader, &mut writer, None);
            }
        }
        reader.get_mut().expire_after(request_timeout);
        let request = match http::read_head(&mut reader) {
            Ok(request) => request,
            Err(e) => return read_failed(conn_id, e, &mut reader, &mut writer, None),
        };
        let started = Instant::now();
        let request_id = request_ids.fetch_add(1, Ordering::Relaxed);
        probes::request_start(|| (request_id, conn_id, request.method.as_str(), request.path()));
        probes::request_headers(|| {
            HEADERS_SERIALIZED.fetch_add(1, Ordering::Relaxed);
            (request_id, &request.headers)
        });
        let routed = route(&request);
        // Refused before the client sends its body: answer and close, as
        // what it sends next may be that body.
        let refused = request.expects_continue() && routed.is_err();
        let mut body = Vec::new();
        if !refused {
            if request.expects_continue() && http::write_continue(&mut writer).is_err() {
                return "write error";
            }
            body = match http::read_body(&mut reader, request.framing) {
                Ok(body) => body,
                Err(e) => {
                    let request = Some((request_id, started));
                    return read_failed(conn_id, e, &mut reader, &mut writer, request);
                }
            };
        }
        let response = match routed {
            Ok(route) => respond(route, &body),
            Err(refusal) => refusal,
        };
        let keep_alive = !refused && request.keep_alive();
        let head_only = request.method == "HEAD";
        if !write(
            conn_id,
            &mut writer,
            &response,
            keep_alive,
            head_only,
            (request_id, started),
        ) {
            return "write error";
        }
        served.set(served.get() + 1);
        match (refused, keep_alive) {
            (true, _) => return linger(&mut reader, "refused before the body"),
            (false, false) => return "not keep-alive",
            (false, true) => {}
        }
    }
}

/// Writes `response` on connection `conn_id` to the request `(request_id, started)` and fires
/// `request_done`, or `error` if the write fails; returns whether it
/// succeeded.
fn write(
    conn_id: u64,
    writer: &mut BufWriter<TcpStream>,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
    (request_id, started): (u64, Instant),
) -> bool {
    match http::write_response(writer, response, keep_alive, head_only) {
        Ok(bytes) => {
            probes::request_done(|| {
                let micros = started.elapsed().as_micros() as u64;
                (request_id, response.status, bytes, micros)
            });
            true
        }
        Err(e) => {
            probes::error(|| (conn_id, response.status, format!("write: {e}")));
            false
        }
    }
}

/// Handles a request that could not be read: fires `error`, answers the
/// statuses that have an answer (and `request_done` for a request whose
/// `request_start` fired), and returns why the connection closes.
fn read_failed(
    conn_id: u64,
    error: ReadError,
    reader: &mut BufReader<Timed>,
    writer: &mut BufWriter<TcpStream>,
    request: Option<(u64, Instant)>,
) -> &'static str {
    let (status, message) = match &error {
        ReadError::Closed => return "peer closed",
        ReadError::Io(_) => (0, ""),
        ReadError::Bad(status, message) => (*status, *message),
    };
    probes::error(|| match &error {
        ReadError::Io(e) => (conn_id, status, format!("read: {e}")),
        _ => (conn_id, status, message.to_owned()),
    });
    if status == 0 {
        return "read error";
    }
    let response = Response::text(status, format!("{message}\n"));
    match request {
        Some(request) => {
            write(conn_id, writer, &response, false, false, request);
        }
        None => {
            let _ = http::write_response(writer, &response, false, false);
        }
    }
    linger(
        reader,
        if status == 408 {
            "request timeout"
        } else {
            "bad request"
        },
    )
}

/// How long, and for how many bytes, a connection closed with input left
/// unread waits for the client to stop sending.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Closes a connection whose client may still be sending (a refused body,
/// the rest of a malformed request) so that it can read the answer: closing
/// a socket with unread input makes the kernel reset the connection, which
/// can discard the answer before the client reads it. So: shut down the
/// sending side, then read and drop what still arrives for a moment.
/// Returns `reason`.
fn linger(reader: &mut BufReader<Timed>, reason: &'static str) -> &'static str {
    let _ = reader.get_ref().stream.shutdown(Shutdown::Write);
    reader.get_mut().expire_after(LINGER);
    drain(reader);
    reason
}

/// Reads and discards what the client still sends, up to [`LINGER_BYTES`],
/// until it closes, a read fails or times out.
fn drain(reader: &mut impl Read) {
    let mut sink = [0; 8192];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// What a request asks for, once its method and path are known good.
enum Route<'a> {
    Root,
    Hello(&'a str),
    Bytes(&'a str),
    Sleep(&'a str),
    Status(&'a str),
    Echo,
}

/// Methods the `GET` routes allow.
const READ_ONLY: &str = "GET, HEAD";

/// Finds the route for `request`'s method and path, or the response that
/// refuses it (404, or 405 with `Allow`). Decided before the body is read,
/// so that `Expect: 100-continue` can be refused.
fn route(request: &Request) -> Result<Route<'_>, Response> {
    let segments: Vec<&str> = request.path().trim_start_matches('/').split('/').collect();
    let (route, allow) = match segments.as_slice() {
        [""] => (Route::Root, READ_ONLY),
        ["hello", name] => (Route::Hello(name), READ_ONLY),
        ["bytes", n] => (Route::Bytes(n), READ_ONLY),
        ["sleep", ms] => (Route::Sleep(ms), READ_ONLY),
        ["status", code] => (Route::Status(code), READ_ONLY),
        ["echo"] => (Route::Echo, "POST"),
        _ => return Err(Response::text(404, "not found\n")),
    };
    if allow.split(", ").any(|m| m == request.method) {
        Ok(route)
    } else {
        let mut refusal = Response::text(405, "method not allowed\n");
        refusal.allow = Some(allow);
        Err(refusal)
    }
}

/// Produces the response for `route`; `body` is the request's body.
fn respond(route: Route, body: &[u8]) -> Response {
    match route {
        Route::Root => Response::text(200, "hello from the usdt example server\n"),
        Route::Hello(name) => Response::text(200, format!("hello, {name}\n")),
        Route::Bytes(n) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_GENERATED => Response {
                body: vec![b'x'; n],
                ..octets()
            },
            _ => Response::text(400, format!("/bytes/N takes N up to {MAX_GENERATED}\n")),
        },
        Route::Sleep(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms <= MAX_SLEEP_MS => {
                thread::sleep(Duration::from_millis(ms));
                Response::text(200, format!("slept {ms} ms\n"))
            }
            _ => Response::text(400, format!("/sleep/MS takes MS up to {MAX_SLEEP_MS}\n")),
        },
        Route::Status(code) => match code.parse::<u16>() {
            // 204 and 304 have no body: write_response leaves it out.
            Ok(code @ 200..=599) => Response::text(code, format!("{}\n", http::reason(code))),
            _ => Response::text(400, "/status/CODE takes a code from 200 to 599\n"),
        },
        Route::Echo => Response {
            body: body.to_vec(),
            ..octets()
        },
    }
}

/// An empty `application/octet-stream` 200.
fn octets() -> Response {
    Response {
        status: 200,
        content_type: "application/octet-stream",
        allow: None,
        body: Vec::new(),
    }
}
