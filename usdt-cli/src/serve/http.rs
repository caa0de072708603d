//! The HTTP side of `usdt serve`: a small synchronous server that answers
//! `GET /metrics` and nothing else (404). Each connection gets a thread (a
//! bounded number at once) that reads one request of bounded size within a
//! time limit, parses it with httparse, and asks the daemon's main thread
//! for the exposition through a channel; every response closes the
//! connection.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

/// The largest request head read; a longer one is refused (431).
pub(super) const MAX_REQUEST_BYTES: usize = 8 << 10;

/// The longest a client may take to send its request, and to read the
/// response.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed at once.
pub(super) const MAX_CONNECTIONS: usize = 32;

/// How long a connection waits for the main thread to build the
/// exposition.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

/// A scrape the main thread answers: whether the client takes OpenMetrics,
/// and where to send the body and its content type.
pub(super) struct Scrape {
    /// The client's `Accept` header asks for OpenMetrics.
    pub openmetrics: bool,
    /// Where the answer goes.
    pub reply: SyncSender<(String, &'static str)>,
}

/// Starts accepting connections on `listener` in a thread of its own;
/// scrapes arrive on the returned channel.
pub(super) fn serve(listener: TcpListener) -> Receiver<Scrape> {
    let (scrapes, receiver) = mpsc::channel();
    let active = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            let scrapes = scrapes.clone();
            let active = Arc::clone(&active);
            thread::spawn(move || {
                let _ = connection(stream, &scrapes);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    receiver
}

/// Serves one connection: one request, one response.
fn connection(mut stream: TcpStream, scrapes: &Sender<Scrape>) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buffer = vec![0u8; MAX_REQUEST_BYTES];
    let mut filled = 0;
    let request = loop {
        if filled == buffer.len() {
            return respond(&mut stream, 431, "text/plain", "request too large\n");
        }
        if Instant::now() >= deadline {
            return respond(&mut stream, 408, "text/plain", "request timeout\n");
        }
        let n = match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return respond(&mut stream, 408, "text/plain", "request timeout\n");
            }
            Err(error) => return Err(error),
        };
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                let accept = parsed
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("accept"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    .collect::<Vec<_>>()
                    .join(",");
                break (
                    parsed.method.unwrap_or("").to_owned(),
                    parsed.path.unwrap_or("").to_owned(),
                    accept,
                );
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return respond(&mut stream, 400, "text/plain", "bad request\n"),
        }
    };
    let (method, path, accept) = request;
    // Nothing but GET /metrics, whatever the query string.
    if method != "GET" || path.split('?').next() != Some("/metrics") {
        return respond(&mut stream, 404, "text/plain", "not found\n");
    }
    let (reply, answer) = mpsc::sync_channel(1);
    let scrape = Scrape {
        openmetrics: wants_openmetrics(&accept),
        reply,
    };
    if scrapes.send(scrape).is_err() {
        return respond(&mut stream, 503, "text/plain", "shutting down\n");
    }
    match answer.recv_timeout(SCRAPE_TIMEOUT) {
        Ok((body, content_type)) => respond(&mut stream, 200, content_type, &body),
        Err(_) => respond(&mut stream, 503, "text/plain", "no answer\n"),
    }
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus lists it
/// first when it takes it).
fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut fields = part.split(';').map(str::trim);
        let media = fields.next().unwrap_or("");
        let refused = fields.any(|f| f.replace(' ', "") == "q=0");
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// Writes a response with `body` and closes.
fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head_text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head_text.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_when_asked() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("application/openmetrics-text; q=0"));
    }
}
