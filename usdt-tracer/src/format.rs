//! Output lines for events: readable text and JSON.

use crate::tracer::Event;
use crate::value::write_json_string;
use std::fmt::Write as _;

/// A readable line: seconds since `start_ns` (a CLOCK_MONOTONIC time), pid,
/// tid, `provider:name` and the arguments as `name=value`.
///
/// ```text
///     0.001234  4242  4242 http:request_start id=7 method="GET" path="/"
/// ```
pub fn text_line(event: &Event, start_ns: u64) -> String {
    let mut line = String::with_capacity(96);
    write_text_line(&mut line, event, start_ns);
    line
}

/// Appends [`text_line`] to `line` (no newline), for callers that reuse one
/// buffer for many events.
pub fn write_text_line(line: &mut String, event: &Event, start_ns: u64) {
    let elapsed = event.timestamp_ns.saturating_sub(start_ns);
    write!(
        line,
        "{:>4}.{:06} {:>7} {:>7} {}:{}",
        elapsed / 1_000_000_000,
        (elapsed % 1_000_000_000) / 1_000,
        event.pid,
        event.tid,
        event.probe.provider,
        event.probe.name
    )
    .unwrap();
    for (index, value) in event.args.iter().enumerate() {
        match event.arg_names.get(index) {
            Some(name) => write!(line, " {name}={value}"),
            None => write!(line, " arg{index}={value}"),
        }
        .unwrap();
    }
}

/// A JSON object on one line: `provider`, `name`, `path`, `pid`, `tid`,
/// `cpu`, `timestamp_ns` (CLOCK_MONOTONIC), `args` (an array of values:
/// exact integers, strings where the argument is a string, see
/// [`crate::Value::write_json`]), `arg_names` when the site has typed
/// metadata, and `truncated: true` when a string was cut at the copy bound.
pub fn json_line(event: &Event) -> String {
    let mut line = String::with_capacity(160);
    write_json_line(&mut line, event);
    line
}

/// Appends [`json_line`] to `line` (no newline), for callers that reuse one
/// buffer for many events.
pub fn write_json_line(line: &mut String, event: &Event) {
    line.push_str("{\"provider\":");
    write_json_string(line, &event.probe.provider);
    line.push_str(",\"name\":");
    write_json_string(line, &event.probe.name);
    line.push_str(",\"path\":");
    write_json_string(line, &event.probe.path.to_string_lossy());
    write!(
        line,
        ",\"pid\":{},\"tid\":{},\"cpu\":{},\"timestamp_ns\":{},\"address\":{},\"args\":[",
        event.pid, event.tid, event.cpu, event.timestamp_ns, event.address
    )
    .unwrap();
    for (index, value) in event.args.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        value.write_json(line);
    }
    line.push(']');
    if !event.arg_names.is_empty() {
        line.push_str(",\"arg_names\":[");
        for (index, name) in event.arg_names.iter().enumerate() {
            if index > 0 {
                line.push(',');
            }
            write_json_string(line, name);
        }
        line.push(']');
    }
    if event.args.iter().any(|v| v.is_truncated()) {
        line.push_str(",\"truncated\":true");
    }
    line.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::ProbeInfo;
    use crate::value::Value;
    use std::sync::Arc;

    fn event(names: &[&str], args: Vec<Value>) -> Event {
        Event {
            probe: Arc::new(ProbeInfo {
                provider: "http".into(),
                name: "request_start".into(),
                path: "/srv/app".into(),
                signature: None,
                sites: 1,
                semaphore: false,
            }),
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

    #[test]
    fn json_lines_parse_back() {
        let e = event(
            &["id", "path"],
            vec![
                Value::Unsigned(u64::MAX),
                Value::Str {
                    text: "a\"b".into(),
                    truncated: true,
                },
            ],
        );
        let line = json_line(&e);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["provider"], "http");
        assert_eq!(parsed["pid"], 42);
        assert_eq!(parsed["timestamp_ns"], 5_001_234_567u64);
        assert_eq!(parsed["args"][0], u64::MAX);
        assert_eq!(parsed["args"][1], "a\"b");
        assert_eq!(parsed["arg_names"][1], "path");
        assert_eq!(parsed["truncated"], true);
        assert!(!line.contains('\n'));
    }
}
