//! Shared by the server's tests: the server as a child process and a
//! minimal HTTP client.

#![allow(dead_code)] // Each test file uses a different subset.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use usdt_tracer::Value;

/// The server under test, killed when dropped.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Server {
    /// Starts the server on a free port with two workers.
    pub fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http_server"))
            .args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start http_server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        // "listening on http://127.0.0.1:PORT (pid N)"
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, address }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as the client received it.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Every byte of the response (head and body).
    pub bytes: usize,
}

/// Sends one request on a fresh connection (closed after the response)
/// and reads the whole response.
pub fn request(address: &str, method: &str, path: &str) -> Response {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad response {text:?}"));
    Response {
        status,
        bytes: response.len(),
    }
}

/// Sends a GET and returns the status code.
pub fn get(address: &str, path: &str) -> u16 {
    request(address, "GET", path).status
}

/// The integer of an unsigned value.
pub fn unsigned(value: &Value) -> u64 {
    match value {
        Value::Unsigned(n) => *n,
        other => panic!("expected an unsigned integer, got {other:?}"),
    }
}

/// The text of a string value.
pub fn text(value: &Value) -> &str {
    match value {
        Value::Str { text, .. } => text,
        other => panic!("expected a string, got {other:?}"),
    }
}
