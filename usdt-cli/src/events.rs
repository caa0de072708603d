//! Events on standard output: one line each, readable text or JSON, and a
//! count of the events the output took.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write};
use usdt_reader::escape_controls;
use usdt_tracer::Event;

/// Appends the readable line of `event` to `line` (no newline): seconds
/// since `start_ns` (a CLOCK_MONOTONIC time), pid, tid, `provider:name` and
/// the arguments as `name=value`.
///
/// ```text
///    0.001234    4242    4242 http:request_start id=7 method="GET" path="/"
/// ```
pub(crate) fn write_text_line(line: &mut String, event: &Event, start_ns: u64) {
    let elapsed = event.timestamp_ns.saturating_sub(start_ns);
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "{:>4}.{:06} {:>7} {:>7} {}:{}",
        elapsed / 1_000_000_000,
        (elapsed % 1_000_000_000) / 1_000,
        event.pid,
        event.tid,
        escape_controls(&event.probe.provider),
        escape_controls(&event.probe.name)
    );
    // Values escape their own text (strings quoted, JSON's control
    // characters escaped).
    for (index, value) in event.args.iter().enumerate() {
        let _ = match event.arg_names.get(index) {
            Some(name) => write!(line, " {}={value}", escape_controls(name)),
            None => write!(line, " arg{index}={value}"),
        };
    }
}

/// Appends the event's stack, if it has one, one frame a line under the
/// event line (which `line` ends with): `    #N ADDRESS SYMBOL (FILE:LINE)`,
/// innermost first; `?` for a frame without a symbol.
pub(crate) fn write_stack_lines(line: &mut String, event: &Event) {
    let Some(stack) = &event.stack else {
        return;
    };
    for (index, frame) in stack.iter().enumerate() {
        let symbol = frame.symbol.as_deref().unwrap_or("?");
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "\n    #{index:<2} {:#014x} {}",
            frame.address,
            escape_controls(symbol)
        );
        if let Some(file) = &frame.file {
            let _ = write!(line, " ({}", escape_controls(file));
            if let Some(number) = frame.line {
                let _ = write!(line, ":{number}");
            }
            line.push(')');
        }
    }
}

/// Standard output, buffered, knowing how many events reached it (the rest
/// of the buffer is lost when the reader goes away): the output's offset
/// at the end of each event is kept until the bytes up to it are written.
pub(crate) struct EventOutput<'a> {
    buffer: io::BufWriter<EventCounter<io::StdoutLock<'a>>>,
    /// Events handed to the buffer.
    pub accepted: u64,
    /// The first write error.
    pub error: Option<io::Error>,
    /// Bytes handed to the buffer (events and anything else).
    handed: u64,
}

impl<'a> EventOutput<'a> {
    /// Buffered output to `stdout`.
    pub(crate) fn new(stdout: io::StdoutLock<'a>) -> EventOutput<'a> {
        EventOutput {
            buffer: io::BufWriter::with_capacity(
                1 << 16,
                EventCounter {
                    inner: stdout,
                    written: 0,
                    ends: VecDeque::new(),
                    events: 0,
                },
            ),
            accepted: 0,
            error: None,
            handed: 0,
        }
    }

    /// Writes one event (its line, with the newline); `false` (and the
    /// error kept) if it failed.
    pub(crate) fn write_event(&mut self, line: &[u8]) -> bool {
        let end = self.handed + line.len() as u64;
        // Known before the bytes can reach the output.
        self.buffer.get_mut().ends.push_back(end);
        if let Err(e) = self.buffer.write_all(line) {
            self.error = Some(e);
            return false;
        }
        self.handed = end;
        self.accepted += 1;
        true
    }

    /// Flushes the buffer, unless writing already failed.
    pub(crate) fn flush_events(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.buffer.flush()
        {
            self.error = Some(e);
        }
    }

    /// The events the output took whole.
    pub(crate) fn delivered(&self) -> u64 {
        self.buffer.get_ref().events
    }
}

impl Write for EventOutput<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.buffer.write(bytes)?;
        self.handed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.buffer.flush()
    }
}

/// A writer counting the events its inner writer took whole: `ends` holds
/// the output offsets at which events not yet written end.
struct EventCounter<W> {
    inner: W,
    /// Bytes the inner writer took.
    written: u64,
    ends: VecDeque<u64>,
    events: u64,
}

impl<W: Write> Write for EventCounter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.written += n as u64;
        while self.ends.front().is_some_and(|&end| end <= self.written) {
            self.ends.pop_front();
            self.events += 1;
        }
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
            stack: None,
        }
    }

    fn text_line(event: &Event, start_ns: u64) -> String {
        let mut line = String::new();
        write_text_line(&mut line, event, start_ns);
        line
    }

    /// Takes `room` bytes, then fails as a closed pipe does.
    struct Pipe {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.taken.len() == self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = bytes.len().min(self.room - self.taken.len());
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_are_counted_whole_whatever_their_bytes() {
        let mut counter = EventCounter {
            inner: Pipe {
                taken: Vec::new(),
                room: 25,
            },
            written: 0,
            ends: VecDeque::new(),
            events: 0,
        };
        // Three events of 10 bytes, one holding newlines of its own: the
        // pipe takes two and a half.
        let lines: [&[u8]; 3] = [b"one\nline\n", b"a\n\n\n\n\n\n\nb", b"0123456789"];
        let mut end = 0;
        for line in lines {
            end += line.len() as u64;
            counter.ends.push_back(end);
        }
        let _ = counter.write_all(&lines.concat());
        assert_eq!((counter.written, counter.events), (25, 2));
    }

    #[test]
    fn text_lines_hold_no_control_character() {
        let mut e = event(
            &["na\nme"],
            vec![Value::Json {
                text: "{\"a\":\n1}\x1b[2J".into(),
                truncated: false,
            }],
        );
        Arc::get_mut(&mut e.probe).unwrap().name = "x\ny".into();
        let line = text_line(&e, 0);
        assert!(
            line.ends_with(r#" http:x\ny na\nme={"a":\n1}\e[2J"#),
            "{line}"
        );
        assert!(!line.contains(|c: char| c.is_control()), "{line}");
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
