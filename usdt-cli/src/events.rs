//! Events on standard output: one line each, readable text or JSON, and a
//! count of the lines the output took.

use std::fmt::Write as _;
use std::io::{self, Write};
use usdt_tracer::Event;

/// Appends the readable line of `event` to `line` (no newline): seconds
/// since `start_ns` (a CLOCK_MONOTONIC time), pid, tid, `provider:name` and
/// the arguments as `name=value`.
///
/// ```text
///    0.001234    4242    4242 http:request_start id=7 method="GET" path="/"
/// ```
pub fn write_text_line(line: &mut String, event: &Event, start_ns: u64) {
    let elapsed = event.timestamp_ns.saturating_sub(start_ns);
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "{:>4}.{:06} {:>7} {:>7} {}:{}",
        elapsed / 1_000_000_000,
        (elapsed % 1_000_000_000) / 1_000,
        event.pid,
        event.tid,
        event.probe.provider,
        event.probe.name
    );
    for (index, value) in event.args.iter().enumerate() {
        let _ = match event.arg_names.get(index) {
            Some(name) => write!(line, " {name}={value}"),
            None => write!(line, " arg{index}={value}"),
        };
    }
}

/// Standard output, buffered, knowing how many event lines reached it (the
/// rest of the buffer is lost when the reader goes away). Every event is
/// one line, and while events stream nothing else is written, so the lines
/// the output took are the newlines it took.
pub struct EventOutput<'a> {
    buffer: io::BufWriter<LineCounter<io::StdoutLock<'a>>>,
    /// Event lines handed to the buffer.
    pub accepted: u64,
    /// The first write error.
    pub error: Option<io::Error>,
}

impl<'a> EventOutput<'a> {
    /// Buffered output to `stdout`.
    pub fn new(stdout: io::StdoutLock<'a>) -> EventOutput<'a> {
        EventOutput {
            buffer: io::BufWriter::with_capacity(
                1 << 16,
                LineCounter {
                    inner: stdout,
                    lines: 0,
                },
            ),
            accepted: 0,
            error: None,
        }
    }

    /// Writes one event line; `false` (and the error kept) if it failed.
    pub fn write_event(&mut self, line: &[u8]) -> bool {
        if let Err(e) = self.buffer.write_all(line) {
            self.error = Some(e);
            return false;
        }
        self.accepted += 1;
        true
    }

    /// Flushes the buffer, unless writing already failed.
    pub fn flush_events(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.buffer.flush()
        {
            self.error = Some(e);
        }
    }

    /// The event lines the output took.
    pub fn delivered(&self) -> u64 {
        self.buffer.get_ref().lines
    }
}

impl Write for EventOutput<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.buffer.flush()
    }
}

/// A writer counting the lines (newlines) its inner writer took.
struct LineCounter<W> {
    inner: W,
    lines: u64,
}

impl<W: Write> Write for LineCounter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.lines += bytes[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;
    use usdt_tracer::{ProbeInfo, Value};

    fn event(names: &[&str], args: Vec<Value>) -> Event {
        let probe = ProbeInfo {
            provider: "http".into(),
            name: "request_start".into(),
            path: PathBuf::from("/srv/app"),
            signature: None,
            sites: 1,
            semaphore: false,
        };
        Event {
            probe: Arc::new(probe),
            address: 0x1234,
            pid: 42,
            tid: 43,
            cpu: 1,
            timestamp_ns: 5_001_234_567,
            args,
            arg_names: names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    fn text_line(event: &Event, start_ns: u64) -> String {
        let mut line = String::new();
        write_text_line(&mut line, event, start_ns);
        line
    }

    #[test]
    fn text_lines() {
        let e = event(
            &["id", "path"],
            vec![
                Value::Unsigned(7),
                Value::Str {
                    text: "/".into(),
                    truncated: false,
                },
            ],
        );
        assert_eq!(
            text_line(&e, 4_000_000_000),
            "   1.001234      42      43 http:request_start id=7 path=\"/\""
        );
        let e = event(&[], vec![Value::Signed(-1)]);
        assert!(text_line(&e, 0).ends_with(" http:request_start arg0=-1"));
    }
}
