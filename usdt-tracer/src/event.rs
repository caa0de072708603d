//! What a trace delivers: the traced probes ([`ProbeInfo`]) and their hits
//! ([`Event`]).

use crate::stack::StackFrame;
use crate::value::Value;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use usdt_reader::Signature;

/// A traced probe: one provider:name in one module (all its sites).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// The provider.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// The module holding the probe, as the user or the process names it.
    pub path: PathBuf,
    /// Typed metadata of the first site, when the module carries it.
    pub signature: Option<Signature>,
    /// Number of attached sites.
    pub sites: usize,
    /// Whether the probe has a semaphore the tracer raised.
    pub semaphore: bool,
}

/// One probe hit.
///
/// It serializes (with serde) as the `usdt trace --json` object: `provider`,
/// `name`, `path`, `pid`, `tid`, `cpu`, `timestamp_ns` (CLOCK_MONOTONIC),
/// `address` (the site's link-time address), `args` (one value per
/// argument, see [`Value`]'s serialization: integers exact at any width,
/// strings where the argument is a string), `arg_names` when the site has
/// typed metadata, and, when a string, byte or JSON argument was cut at the
/// copy bound, `truncated: true` with `truncated_args`, the indices of the
/// arguments cut (a cut JSON argument is then a string, not embedded);
/// with stacks, `stack`: one object per frame, innermost first, each with
/// `address`, `symbol`, `file` and `line` (null when unknown).
#[derive(Debug, Clone)]
pub struct Event {
    /// The probe that fired.
    pub probe: Arc<ProbeInfo>,
    /// Link-time address of the site that fired.
    pub address: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// CPU that ran the probe.
    pub cpu: u32,
    /// CLOCK_MONOTONIC time of the hit, in nanoseconds.
    pub timestamp_ns: u64,
    /// Decoded arguments: one per declared argument for sites with typed
    /// metadata, else one per note argument.
    pub args: Vec<Value>,
    /// Declared argument names (typed sites), else empty.
    pub arg_names: Arc<[String]>,
    /// The user stack, innermost frame (the probe site) first, when the
    /// trace asked for stacks ([`TraceConfig::stack`](crate::TraceConfig)).
    pub stack: Option<Vec<StackFrame>>,
}

impl Event {
    /// The name of argument `index`: the declared name, or `argN`.
    pub fn arg_name(&self, index: usize) -> String {
        self.arg_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("arg{index}"))
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(flatten)]
            probe: ProbeName<'a>,
            pid: u32,
            tid: u32,
            cpu: u32,
            timestamp_ns: u64,
            address: u64,
            args: &'a [Value],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            arg_names: &'a [String],
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            truncated: bool,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            truncated_args: Vec<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            stack: Option<&'a [StackFrame]>,
        }
        let truncated_args: Vec<usize> = (self.args.iter().enumerate())
            .filter(|(_, arg)| arg.is_truncated())
            .map(|(index, _)| index)
            .collect();
        Line {
            probe: ProbeName::of(&self.probe),
            pid: self.pid,
            tid: self.tid,
            cpu: self.cpu,
            timestamp_ns: self.timestamp_ns,
            address: self.address,
            args: &self.args,
            arg_names: &self.arg_names,
            truncated: !truncated_args.is_empty(),
            truncated_args,
            stack: self.stack.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The fields naming a probe in JSON output: `provider`, `name` and `path`
/// (a path that is not UTF-8 has its other bytes replaced).
#[derive(Serialize)]
pub(crate) struct ProbeName<'a> {
    provider: &'a str,
    name: &'a str,
    path: Cow<'a, str>,
}

impl<'a> ProbeName<'a> {
    /// The name fields of `probe`.
    pub(crate) fn of(probe: &'a ProbeInfo) -> ProbeName<'a> {
        ProbeName {
            provider: &probe.provider,
            name: &probe.name,
            path: probe.path.to_string_lossy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            stack: None,
        }
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
        let line = serde_json::to_string(&e).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["provider"], "http");
        assert_eq!(parsed["name"], "request_start");
        assert_eq!(parsed["path"], "/srv/app");
        assert_eq!(parsed["pid"], 42);
        assert_eq!(parsed["tid"], 43);
        assert_eq!(parsed["timestamp_ns"], 5_001_234_567u64);
        assert_eq!(parsed["address"], 0x1234);
        assert_eq!(parsed["args"][0], u64::MAX);
        assert_eq!(parsed["args"][1], "a\"b");
        assert_eq!(parsed["arg_names"][1], "path");
        assert_eq!(parsed["truncated"], true);
        assert_eq!(parsed["truncated_args"], serde_json::json!([1]));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn untyped_complete_events_leave_out_names_and_truncation() {
        let line = serde_json::to_string(&event(&[], vec![Value::Signed(-1)])).unwrap();
        assert!(line.ends_with(r#""args":[-1]}"#), "{line}");
    }
}
