//! The server: an accept loop feeding a fixed pool of worker threads, each
//! serving one connection at a time with keep-alive.

use crate::http::{self, ReadError, Request, Response};
use crate::probes;
use std::io::{BufReader, BufWriter};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// How long an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest body `/bytes/N` produces.
const MAX_GENERATED: usize = 16 * 1024 * 1024;
/// Longest delay `/sleep/MS` accepts.
const MAX_SLEEP_MS: u64 = 10_000;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads serving connections.
    pub workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { workers: 4 }
    }
}

/// Serves connections from `listener` until the process exits.
pub fn serve(listener: TcpListener, config: &Config) -> std::io::Result<()> {
    let (sender, receiver) = mpsc::channel::<(u64, TcpStream, SocketAddr)>();
    let receiver = Arc::new(Mutex::new(receiver));
    let request_ids = Arc::new(AtomicU64::new(1));
    for worker in 0..config.workers.max(1) {
        let receiver = Arc::clone(&receiver);
        let request_ids = Arc::clone(&request_ids);
        thread::Builder::new()
            .name(format!("worker-{worker}"))
            .spawn(move || {
                loop {
                    let next = receiver.lock().map(|r| r.recv());
                    let Ok(Ok((conn_id, stream, peer))) = next else {
                        return;
                    };
                    serve_connection(conn_id, stream, peer, &request_ids);
                }
            })?;
    }
    let mut next_conn = 1u64;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                probes::error(|| (0, 0, e.to_string()));
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
        probes::conn_accept(|| (conn_id, peer.to_string()));
        if sender.send((conn_id, stream, peer)).is_err() {
            break;
        }
    }
    Ok(())
}

/// Serves requests on one connection until it closes.
fn serve_connection(conn_id: u64, stream: TcpStream, _peer: SocketAddr, request_ids: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = BufWriter::new(write_half);
    let mut served = 0u64;
    let close_reason = loop {
        let request = match http::read_request(&mut reader) {
            Ok(request) => request,
            Err(ReadError::Closed) => break "peer closed",
            Err(ReadError::Io(e)) => {
                probes::error(|| (conn_id, 0, format!("read: {e}")));
                break "read error";
            }
            Err(ReadError::Bad(status, message)) => {
                probes::error(|| (conn_id, status, message.to_owned()));
                let response = Response::text(status, format!("{message}\n"));
                let _ = http::write_response(&mut writer, &response, false, false);
                break "bad request";
            }
        };
        let started = Instant::now();
        let request_id = request_ids.fetch_add(1, Ordering::Relaxed);
        probes::request_start(|| (request_id, conn_id, request.method.as_str(), request.path()));
        probes::request_headers(|| (request_id, &request.headers));
        let response = route(&request);
        let keep_alive = request.keep_alive();
        let written =
            http::write_response(&mut writer, &response, keep_alive, request.method == "HEAD");
        served += 1;
        match written {
            Ok(bytes) => probes::request_done(|| {
                (
                    request_id,
                    response.status,
                    bytes,
                    started.elapsed().as_micros() as u64,
                )
            }),
            Err(e) => {
                probes::error(|| (conn_id, response.status, format!("write: {e}")));
                break "write error";
            }
        }
        if !keep_alive {
            break "not keep-alive";
        }
    };
    probes::conn_close(|| (conn_id, served, close_reason));
}

/// Produces the response for `request`.
fn route(request: &Request) -> Response {
    let path = request.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method.as_str();
    let read_only = matches!(method, "GET" | "HEAD");
    match (segments.as_slice(), read_only) {
        ([""], true) => Response::text(200, "hello from the usdt example server\n"),
        (["hello", name], true) => Response::text(200, format!("hello, {name}\n")),
        (["bytes", n], true) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_GENERATED => Response {
                status: 200,
                content_type: "application/octet-stream",
                body: vec![b'x'; n],
            },
            _ => Response::text(400, format!("/bytes/N takes N up to {MAX_GENERATED}\n")),
        },
        (["sleep", ms], true) => match ms.parse::<u64>() {
            Ok(ms) if ms <= MAX_SLEEP_MS => {
                thread::sleep(Duration::from_millis(ms));
                Response::text(200, format!("slept {ms} ms\n"))
            }
            _ => Response::text(400, format!("/sleep/MS takes MS up to {MAX_SLEEP_MS}\n")),
        },
        (["status", code], true) => match code.parse::<u16>() {
            Ok(code @ 200..=599) => Response::text(code, format!("{}\n", http::reason(code))),
            _ => Response::text(400, "/status/CODE takes a code from 200 to 599\n"),
        },
        (["echo"], _) if method == "POST" => Response {
            status: 200,
            content_type: "application/octet-stream",
            body: request.body.clone(),
        },
        (["echo"], _)
        | ([""] | ["hello", _] | ["bytes", _] | ["sleep", _] | ["status", _], false) => {
            Response::text(405, "method not allowed\n")
        }
        _ => Response::text(404, "not found\n"),
    }
}
