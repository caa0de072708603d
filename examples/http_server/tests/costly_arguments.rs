//! The semaphore guard at work in the server: the costly probe arguments
//! (the peer address as text, the headers as JSON) are computed only while
//! a tracer has their probe enabled. The server runs in this process, so
//! the test reads its count of those computations and the probes'
//! `enabled()` directly, and traces itself.

use crate::support::{Connection, text};
use http_server::probes;
use http_server::server::{CostlyArguments, costly_arguments};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use usdt_tracer::{TraceConfig, Tracer};

/// Sends a request on a new connection; returns the client's address.
fn request(address: &str, path: &str) -> String {
    let mut conn = Connection::open(address);
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: self\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(conn.reply(false).status, 200);
    conn.writer.local_addr().unwrap().to_string()
}

/// Waits (up to 10 s) until the counts are `expected`; returns them.
fn counts_reaching(expected: CostlyArguments) -> CostlyArguments {
    let deadline = Instant::now() + Duration::from_secs(10);
    while costly_arguments() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    costly_arguments()
}

#[test]
fn costly_arguments_are_computed_only_while_traced() {
    if !usdt_interop_tests::require_bpf("costly_arguments_are_computed_only_while_traced") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || http_server::serve(listener, &Default::default()));

    // Untraced: requests are served, nothing costly is computed.
    for _ in 0..3 {
        request(&address, "/hello/untraced");
    }
    assert!(!probes::conn_accept::enabled() && !probes::request_headers::enabled());
    assert_eq!(costly_arguments(), CostlyArguments::default());

    let config = TraceConfig::new()
        .pid(std::process::id())
        .probe("http:conn_accept")
        .and_then(|c| c.probe("http:request_headers"))
        .expect("probe specs");
    let mut tracer = Tracer::attach(&config).expect("trace this process");
    assert!(probes::conn_accept::enabled() && probes::request_headers::enabled());
    // Probes not traced keep their guard down.
    assert!(!probes::request_start::enabled());
    let peers = [
        request(&address, "/hello/traced"),
        request(&address, "/hello/traced"),
    ];
    let traced = CostlyArguments {
        peers: 2,
        headers: 2,
    };
    assert_eq!(counts_reaching(traced), traced);
    let mut accepted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.len() < 2 && Instant::now() < deadline {
        tracer
            .poll(Duration::from_millis(100), |event| {
                if event.probe.name == "conn_accept" {
                    accepted.push(text(&event.args[1]).to_owned());
                }
                true
            })
            .expect("poll events");
    }
    // What was computed is what the tracer received.
    assert_eq!(accepted, peers);

    drop(tracer);
    assert!(!probes::conn_accept::enabled() && !probes::request_headers::enabled());
    request(&address, "/hello/untraced-again");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(costly_arguments(), traced);
}
