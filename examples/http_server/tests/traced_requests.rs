//! End to end: start the server, trace it with the tracer library, send
//! real HTTP requests, and check that the traced request ids, paths and
//! statuses are the ones the server handled.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{Server, get, text, unsigned};
use usdt_tracer::{TraceConfig, Tracer};

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
