//! The server as an HTTP/1.1 client sees it, over raw TCP on loopback:
//! keep-alive, pipelining, body framing, `HEAD`, `Expect: 100-continue`,
//! HTTP/1.0, the error answers, timeouts and the connection limit.

use crate::support::{Connection, Server};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// `GET path` with a Host.
fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// `POST /echo` with `body` framed by Content-Length.
fn echo(body: &str) -> String {
    format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    for name in ["first", "second"] {
        conn.send(get(&format!("/hello/{name}")).as_bytes());
        let reply = conn.reply(false);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("connection"), Some("keep-alive"));
        assert_eq!(reply.body, format!("hello, {name}\n").as_bytes());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    let pipeline = [get("/hello/a"), echo("pipelined"), get("/status/503")].concat();
    conn.send(pipeline.as_bytes());
    assert_eq!(conn.reply(false).body, b"hello, a\n");
    assert_eq!(conn.reply(false).body, b"pipelined");
    assert_eq!(conn.reply(false).status, 503);
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_are_decoded() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          4;ext=\"v\"\r\nping\r\n6 ; a ; b=c\r\n, pong\r\n0\r\nChecksum: none\r\nOther: x\r\n\r\n",
    );
    let reply = conn.reply(false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"ping, pong");
    // The body and trailers were consumed exactly: the next request works.
    conn.send(get("/hello/after").as_bytes());
    assert_eq!(conn.reply(false).body, b"hello, after\n");
}

#[test]
fn content_length_frames_the_body_exactly() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    // The next request follows the 5 body bytes in the same write.
    conn.send(format!("{}{}", echo("hello"), get("/hello/next")).as_bytes());
    assert_eq!(conn.reply(false).body, b"hello");
    assert_eq!(conn.reply(false).body, b"hello, next\n");
}

#[test]
fn head_sends_the_get_headers_without_a_body() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    conn.send(b"HEAD /bytes/1234 HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = conn.reply(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1234"));
    // No body followed: the next response starts right after the head.
    conn.send(get("/bytes/3").as_bytes());
    let get = conn.reply(false);
    assert_eq!(get.body, b"xxx");
    let without_length = |r: &crate::support::Reply| {
        let mut h = r.headers.clone();
        h.retain(|(n, _)| n != "Content-Length");
        h
    };
    assert_eq!(without_length(&head), without_length(&get));
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    conn.send(b"GET /hello/old HTTP/1.0\r\n\r\n");
    let reply = conn.reply(false);
    assert_eq!(
        (reply.status, reply.header("connection")),
        (200, Some("close"))
    );
    assert!(conn.closed_by_server());

    let mut conn = Connection::open(&server.address);
    conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(conn.reply(false).header("connection"), Some("keep-alive"));
    conn.send(b"GET /hello/again HTTP/1.0\r\n\r\n");
    assert_eq!(conn.reply(false).body, b"hello, again\n");
    assert!(conn.closed_by_server());
}

#[test]
fn errors_are_answered_with_their_status_then_closed() {
    let server = Server::start();
    let oversized = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    let cases: [(&str, &str, u16); 10] = [
        ("malformed request line", "GET /\r\n\r\n", 400),
        ("no version", "BROKEN\r\n\r\n", 400),
        (
            "bad Content-Length",
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 12abc\r\n\r\n",
            400,
        ),
        (
            "two Content-Length values",
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        ("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400),
        ("oversized body", &oversized, 413),
        (
            "unsupported transfer coding",
            "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        (
            "unknown expectation",
            "POST /echo HTTP/1.1\r\nHost: test\r\nExpect: x\r\nContent-Length: 1\r\n\r\na",
            417,
        ),
        (
            "unknown method",
            "BREW / HTTP/1.1\r\nHost: test\r\n\r\n",
            405,
        ),
        (
            "unknown path",
            "GET /no/such/page HTTP/1.1\r\nHost: test\r\n\r\n",
            404,
        ),
    ];
    for (what, request, status) in cases {
        let mut conn = Connection::open(&server.address);
        conn.send(request.as_bytes());
        let reply = conn.reply(false);
        assert_eq!(reply.status, status, "{what}");
        if status == 405 {
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{what}");
        } else if status >= 400 && status != 404 {
            // Malformed input: the server closes rather than guess where
            // the next request starts.
            assert_eq!(reply.header("connection"), Some("close"), "{what}");
            assert!(conn.closed_by_server(), "{what}");
        }
    }
    let mut conn = Connection::open(&server.address);
    conn.send(b"GET /echo HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(conn.reply(false).header("allow"), Some("POST"));
}

#[test]
fn an_overflowing_chunk_size_is_refused_and_the_server_keeps_serving() {
    let server = Server::start();
    // Each on its own connection, whose thread would have died.
    for _ in 0..5 {
        let mut conn = Connection::open(&server.address);
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              1\r\na\r\nffffffffffffffff\r\n",
        );
        assert_eq!(conn.reply(false).status, 413);
        assert!(conn.closed_by_server());
    }
    let mut conn = Connection::open(&server.address);
    conn.send(get("/hello/still").as_bytes());
    assert_eq!(conn.reply(false).body, b"hello, still\n");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = Server::start();
    let mut conn = Connection::open(&server.address);
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    // The interim response comes while the body has not been sent.
    assert_eq!(conn.reply(false).status, 100);
    conn.send(b"body");
    assert_eq!(conn.reply(false).body, b"body");

    // Refused before the body: the final status at once, then a close.
    let mut conn = Connection::open(&server.address);
    conn.send(
        b"POST /nope HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let reply = conn.reply(false);
    assert_eq!(
        (reply.status, reply.header("connection")),
        (404, Some("close"))
    );
    assert!(conn.closed_by_server());
}

#[test]
fn an_idle_connection_closes_and_a_slow_request_gets_408() {
    let server = Server::start_with(&["--idle-timeout", "0.3", "--request-timeout", "0.6"]);
    let mut conn = Connection::open(&server.address);
    conn.send(get("/").as_bytes());
    assert_eq!(conn.reply(false).status, 200);
    let idle = Instant::now();
    assert!(conn.closed_by_server());
    let waited = idle.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // A request that trickles in: the deadline holds however often bytes
    // arrive.
    let mut conn = Connection::open(&server.address);
    let started = Instant::now();
    for byte in b"GET / HTTP/1.1\r\nHost: t" {
        // The server may have answered and closed already.
        let _ = conn.writer.write_all(&[*byte]);
        std::thread::sleep(Duration::from_millis(40));
        if started.elapsed() > Duration::from_millis(800) {
            break;
        }
    }
    let reply = conn.reply(false);
    assert_eq!(reply.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn idle_clients_do_not_stall_the_server() {
    let server = Server::start();
    let idle: Vec<Connection> = (0..16).map(|_| Connection::open(&server.address)).collect();
    let started = Instant::now();
    let mut conn = Connection::open(&server.address);
    conn.send(get("/hello/busy").as_bytes());
    assert_eq!(conn.reply(false).body, b"hello, busy\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let server = Server::start_with(&["--max-connections", "2"]);
    let mut first = Connection::open(&server.address);
    first.send(get("/").as_bytes());
    assert_eq!(first.reply(false).status, 200);
    let mut second = Connection::open(&server.address);
    second.send(get("/").as_bytes());
    assert_eq!(second.reply(false).status, 200);
    let mut third = Connection::open(&server.address);
    let reply = third.reply(false);
    assert_eq!(
        (reply.status, reply.header("connection")),
        (503, Some("close"))
    );
    // Once a connection closes its place is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut conn = Connection::open(&server.address);
        conn.send(get("/hello/again").as_bytes());
        let mut peek = [0u8; 12];
        conn.reader
            .read_exact(&mut peek)
            .expect("read a status line");
        if &peek == b"HTTP/1.1 200" {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not given back");
        std::thread::sleep(Duration::from_millis(20));
    }
}
