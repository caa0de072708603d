//! An HTTP/1.1 server instrumented with USDT probes.
//!
//! The server is small but speaks real HTTP/1.1 (keep-alive and pipelining,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`,
//! `HEAD`, error statuses for malformed input; see [`server`] for its
//! threads and timeouts). Its
//! probes, declared in [`probes`], mark the moments an operator cares about:
//! connections accepted and closed, requests started and finished, errors.
//!
//! Routes:
//!
//! | route | response |
//! | --- | --- |
//! | `GET /` | a greeting |
//! | `GET /hello/NAME` | `hello, NAME` |
//! | `GET /bytes/N` | N bytes |
//! | `GET /sleep/MS` | answers after MS milliseconds |
//! | `GET /status/CODE` | that status, its reason phrase as the body (no body for 204 and 304) |
//! | `POST /echo` | the request body |
#![deny(missing_docs)]

pub mod http;
pub mod server;

/// The server's USDT probes, provider `http`.
///
/// Arguments are closures: they run only while a tracer has the probe
/// enabled, so formatting a peer address or serializing headers to JSON
/// costs nothing in normal operation.
#[usdt_runtime::provider(name = "http")]
pub mod probes {
    /// A connection was accepted from `peer` (formatted `ip:port`).
    pub fn conn_accept(conn_id: u64, peer: &str);
    /// A connection closed after serving `requests` requests.
    pub fn conn_close(conn_id: u64, requests: u64, reason: &str);
    /// A request arrived.
    pub fn request_start(request_id: u64, conn_id: u64, method: &str, path: &str);
    /// The request's headers, as JSON.
    pub fn request_headers(request_id: u64, #[json] headers: &Vec<(String, String)>);
    /// A response was written: status, bytes on the wire, microseconds spent.
    pub fn request_done(request_id: u64, status: u16, bytes: u64, micros: u64);
    /// Something went wrong on a connection (`status` is 0 when no response was sent).
    pub fn error(conn_id: u64, status: u16, message: &str);
}

pub use server::{Config, serve};
