//! Shared by the server's tests: the server as a child process and a
//! minimal HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use usdt_tracer::Value;

/// The server under test, killed when dropped.
pub(crate) struct Server {
    /// The server process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Server {
    /// Starts the server on a free loopback port.
    pub(crate) fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the server on a free loopback port with more arguments.
    pub(crate) fn start_with(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http_server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
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
    pub(crate) fn pid(&self) -> u32 {
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
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    /// Every byte of the response (head and body).
    pub bytes: usize,
}

/// Sends one request on a fresh connection (closed after the response)
/// and reads the whole response.
pub(crate) fn request(address: &str, method: &str, path: &str) -> Response {
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
pub(crate) fn get(address: &str, path: &str) -> u16 {
    request(address, "GET", path).status
}

/// The integer of an unsigned value.
pub(crate) fn unsigned(value: &Value) -> u64 {
    match value {
        Value::Unsigned(n) => *n,
        other => panic!("expected an unsigned integer, got {other:?}"),
    }
}

/// The text of a string value.
pub(crate) fn text(value: &Value) -> &str {
    match value {
        Value::Str { text, .. } => text,
        other => panic!("expected a string, got {other:?}"),
    }
}

/// A connection to the server for raw requests.
pub(crate) struct Connection {
    /// Responses are read from here.
    pub reader: BufReader<TcpStream>,
    /// Requests are written here.
    pub writer: TcpStream,
}

impl Connection {
    /// Connects to `address`; reads time out after 10 s so that a test
    /// waiting for an answer that never comes fails instead of hanging.
    pub(crate) fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        Connection {
            writer: stream.try_clone().expect("clone the socket"),
            reader: BufReader::new(stream),
        }
    }

    /// Sends `bytes` as they are.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Reads one response; `head_only` for the answer to a `HEAD`.
    pub(crate) fn reply(&mut self, head_only: bool) -> Reply {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a status line");
        let mut parts = line.trim_end().splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts
            .next()
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read a header");
            let line = line
                .strip_suffix("\r\n")
                .unwrap_or_else(|| panic!("header line {line:?} without CRLF"));
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(": ").expect("name: value");
            headers.push((name.to_owned(), value.to_owned()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if !head_only && let Some(length) = reply.header("content-length") {
            reply.body = vec![0; length.parse().expect("a Content-Length")];
            self.reader
                .read_exact(&mut reply.body)
                .expect("read a body");
        }
        reply
    }

    /// Whether the server has closed the connection: reading finds the
    /// end of the stream, with no bytes before it.
    pub(crate) fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

/// A response read off a [`Connection`].
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names and values in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
