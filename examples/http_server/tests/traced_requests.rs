//! End to end: start the server, trace it with the tracer library, send
//! real HTTP requests, and check that the traced request ids, paths and
//! statuses are the ones the server handled.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use usdt_tracer::{TraceConfig, Tracer, Value};

/// The server under test, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start() -> Server {
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request on a fresh connection and returns the status code.
fn get(address: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"))
}

fn unsigned(value: &Value) -> u64 {
    match value {
        Value::Unsigned(n) => *n,
        other => panic!("expected an unsigned integer, got {other:?}"),
    }
}

fn text(value: &Value) -> &str {
    match value {
        Value::Str { text, .. } => text,
        other => panic!("expected a string, got {other:?}"),
    }
}

#[test]
fn traced_requests_match_the_requests_sent() {
    if !usdt_interop_tests::require_bpf("traced_requests_match_the_requests_sent") {
        return;
    }
    let server = Server::start();
    let config = TraceConfig::new()
        .pid(server.child.id())
        .probe("http:request_start")
        .and_then(|c| c.probe("http:request_done"))
        .expect("probe specs");
    let mut tracer = Tracer::attach(&config).expect("attach to the server");

    let requests = [
        ("/", 200),
        ("/hello/usdt", 200),
        ("/bytes/1234", 200),
        ("/status/503", 503),
        ("/no/such/page", 404),
    ];
    for (path, status) in requests {
        assert_eq!(get(&server.address, path), status, "GET {path}");
    }

    // request id -> (path, status)
    let mut started: BTreeMap<u64, String> = BTreeMap::new();
    let mut done: BTreeMap<u64, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.len() < requests.len() && Instant::now() < deadline {
        tracer
            .poll(Duration::from_millis(100), |event| {
                let id = unsigned(&event.args[0]);
                match event.probe.name.as_str() {
                    "request_start" => {
                        assert_eq!(text(&event.args[2]), "GET");
                        started.insert(id, text(&event.args[3]).to_owned());
                    }
                    "request_done" => {
                        done.insert(id, unsigned(&event.args[1]));
                    }
                    other => panic!("unexpected probe {other}"),
                }
                true
            })
            .expect("poll events");
    }
    assert_eq!(tracer.drops().expect("read drops"), 0);

    // Request ids are assigned in order from 1 by the server.
    let expected_started: BTreeMap<u64, String> = requests
        .iter()
        .enumerate()
        .map(|(i, (path, _))| (i as u64 + 1, path.to_string()))
        .collect();
    let expected_done: BTreeMap<u64, u64> = requests
        .iter()
        .enumerate()
        .map(|(i, (_, status))| (i as u64 + 1, *status as u64))
        .collect();
    assert_eq!(started, expected_started);
    assert_eq!(done, expected_done);
}
