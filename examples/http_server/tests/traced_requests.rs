//! End to end: start the server, trace it with the tracer library, send
//! real HTTP requests, and check that the traced request ids, paths and
//! statuses are the ones the server handled, and that the connection and
//! error probes report the connections and errors the client saw.

use crate::support::{Connection, Server, get, text, unsigned};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use usdt_tracer::{Event, TraceConfig, Tracer, Value};

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

/// Polls `tracer` until `done` holds for the events so far or 10 s pass.
fn collect(tracer: &mut Tracer, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&events) && Instant::now() < deadline {
        tracer
            .poll(Duration::from_millis(100), |event| {
                events.push(event);
                true
            })
            .expect("poll events");
    }
    events
}

/// The arguments of every `name` event, in order.
fn hits<'a>(events: &'a [Event], name: &str) -> Vec<&'a [Value]> {
    events
        .iter()
        .filter(|e| e.probe.name == name)
        .map(|e| e.args.as_slice())
        .collect()
}

#[test]
fn traced_connections_and_errors_match_what_the_client_saw() {
    if !usdt_interop_tests::require_bpf("traced_connections_and_errors_match_what_the_client_saw") {
        return;
    }
    let server = Server::start_with(&["--idle-timeout", "0.5"]);
    let config = TraceConfig::new()
        .pid(server.pid())
        .probe("http:*")
        .expect("probe spec");
    let mut tracer = Tracer::attach(&config).expect("attach to the server");

    // Two requests on one connection, which the client then closes.
    let mut kept = Connection::open(&server.address);
    kept.send(b"GET /hello/one HTTP/1.1\r\nHost: traced\r\n\r\n");
    assert_eq!(kept.reply(false).status, 200);
    kept.send(b"POST /echo HTTP/1.1\r\nHost: traced\r\nContent-Length: 4\r\n\r\nping");
    assert_eq!(kept.reply(false).body, b"ping");
    let kept_peer = kept.writer.local_addr().unwrap().to_string();
    drop(kept);
    // A malformed request: answered 400, then closed by the server.
    let mut broken = Connection::open(&server.address);
    broken.send(b"BROKEN\r\n\r\n");
    assert_eq!(broken.reply(false).status, 400);
    assert!(broken.closed_by_server());
    let broken_peer = broken.writer.local_addr().unwrap().to_string();
    // One request, then left idle until the server closes it.
    let mut idle = Connection::open(&server.address);
    idle.send(b"GET / HTTP/1.1\r\nHost: traced\r\n\r\n");
    assert_eq!(idle.reply(false).status, 200);
    assert!(idle.closed_by_server());
    let idle_peer = idle.writer.local_addr().unwrap().to_string();

    let events = collect(&mut tracer, |events| hits(events, "conn_close").len() == 3);
    assert_eq!(tracer.drops().expect("read drops"), 0);

    // conn_accept: the peer is the client's own address.
    let conn_of: BTreeMap<String, u64> = hits(&events, "conn_accept")
        .iter()
        .map(|args| (text(&args[1]).to_owned(), unsigned(&args[0])))
        .collect();
    let id = |peer: &str| {
        *conn_of
            .get(peer)
            .unwrap_or_else(|| panic!("no conn_accept for {peer}: {conn_of:?}"))
    };
    let (kept_id, broken_id, idle_id) = (id(&kept_peer), id(&broken_peer), id(&idle_peer));

    // conn_close: requests served and why.
    let closes: BTreeMap<u64, (u64, String)> = hits(&events, "conn_close")
        .iter()
        .map(|args| {
            let close = (unsigned(&args[1]), text(&args[2]).to_owned());
            (unsigned(&args[0]), close)
        })
        .collect();
    assert_eq!(
        closes,
        BTreeMap::from([
            (kept_id, (2, "peer closed".to_owned())),
            (broken_id, (0, "bad request".to_owned())),
            (idle_id, (1, "idle timeout".to_owned())),
        ])
    );

    // request_start, including the POST, on the connection that sent it.
    let starts: Vec<(u64, String, String)> = hits(&events, "request_start")
        .iter()
        .map(|args| {
            let method = text(&args[2]).to_owned();
            (unsigned(&args[1]), method, text(&args[3]).to_owned())
        })
        .collect();
    assert_eq!(
        starts,
        [
            (kept_id, "GET".to_owned(), "/hello/one".to_owned()),
            (kept_id, "POST".to_owned(), "/echo".to_owned()),
            (idle_id, "GET".to_owned(), "/".to_owned()),
        ]
    );
    // request_headers: the JSON the server serialized from what was sent.
    let headers: Vec<&str> = hits(&events, "request_headers")
        .iter()
        .map(|args| match &args[1] {
            Value::Json { text, .. } => text.as_str(),
            other => panic!("headers are not JSON: {other:?}"),
        })
        .collect();
    assert_eq!(headers[1], r#"[["Host","traced"],["Content-Length","4"]]"#);

    // error: only the malformed request's, with its status and message;
    // the idle close is no error.
    let errors: Vec<(u64, u64, String)> = hits(&events, "error")
        .iter()
        .map(|args| {
            (
                unsigned(&args[0]),
                unsigned(&args[1]),
                text(&args[2]).to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [(broken_id, 400, "malformed request head".to_owned())]
    );
}
