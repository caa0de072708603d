//! In-kernel aggregations: what to aggregate, and how a site's plan adds to
//! an aggregation instead of streaming its hits.
//!
//! Each aggregation has an index (its position in the configuration) that
//! the plans of its sites carry, so one counter map serves them all. A site
//! selected by several aggregations (or streamed too) is attached once per
//! use, each with its own plan and cookie.

use crate::error::TraceError;
use crate::plan::{Decoder, SiteDecoding};
use crate::select::ProbeSpec;
use crate::value::Value;
use std::fmt;
use std::str::FromStr;
use usdt_tracer_common::{
    ACTION_COUNT, ACTION_HISTOGRAM, ACTION_LATENCY_END, ACTION_LATENCY_START, AggKey, KEY_ARG,
    KEY_NONE, KEY_PID, KEY_STRING, KEY_TID, STRING_NONE, SitePlan,
};

/// Default entry limit of the aggregation maps.
pub const DEFAULT_MAP_ENTRIES: u32 = 10240;

/// Where an aggregation's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The process id.
    Pid,
    /// The thread id.
    Tid,
    /// An argument: its declared name (typed probes), or `argN` with N
    /// counting arguments from 0.
    Arg(String),
}

impl FromStr for KeySource {
    type Err = TraceError;

    /// `pid`, `tid`, or an argument name (letters, digits, `_`).
    fn from_str(text: &str) -> Result<KeySource, TraceError> {
        match text {
            "pid" => Ok(KeySource::Pid),
            "tid" => Ok(KeySource::Tid),
            name if is_name(name) => Ok(KeySource::Arg(name.to_owned())),
            _ => Err(TraceError::BadKey {
                text: text.to_owned(),
                reason: "expected `pid`, `tid`, or an argument name such as `status` or `arg1`"
                    .into(),
            }),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Pid => f.write_str("pid"),
            KeySource::Tid => f.write_str("tid"),
            KeySource::Arg(name) => f.write_str(name),
        }
    }
}

/// Whether `text` can name an argument.
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// An aggregation computed in the kernel: the hits it covers are added to
/// counters in a BPF map instead of being streamed, and read with
/// [`crate::Tracer::aggregates`].
#[derive(Debug, Clone)]
pub enum Aggregation {
    /// Hits of every probe `probes` select, counted per probe, and per key
    /// when `by` is given (bcc's `BPF_HASH` counts, bpftrace's
    /// `@[key] = count()`).
    Hits {
        /// The probes counted.
        probes: Vec<ProbeSpec>,
        /// The key to count by, if any.
        by: Option<KeySource>,
    },
    /// A log2 histogram of the integer argument `arg` of every probe
    /// `probes` select, one per probe (bcc's `BPF_HISTOGRAM` of
    /// `bpf_log2l()`).
    Histogram {
        /// The probes whose argument is bucketed.
        probes: Vec<ProbeSpec>,
        /// The argument: a declared name or `argN`.
        arg: String,
    },
    /// The time from a hit of `start` to the next hit of `end` with the
    /// same key in the same process, as a log2 histogram in microseconds.
    Latency {
        /// The probes that start a measurement.
        start: Box<ProbeSpec>,
        /// The probes that end it.
        end: Box<ProbeSpec>,
        /// The key at `start`.
        start_key: KeySource,
        /// The key at `end` (usually the same argument).
        end_key: KeySource,
    },
}

impl Aggregation {
    /// Counts the hits of `probes` per probe (`by` `None`) or per key.
    pub fn hits(probes: &[&str], by: Option<&str>) -> Result<Aggregation, TraceError> {
        Ok(Aggregation::Hits {
            probes: parse_specs(probes)?,
            by: by.map(str::parse).transpose()?,
        })
    }

    /// A log2 histogram of argument `arg` of `probes`.
    pub fn histogram(probes: &[&str], arg: &str) -> Result<Aggregation, TraceError> {
        if !is_name(arg) {
            return Err(TraceError::BadKey {
                text: arg.to_owned(),
                reason: "expected an argument name such as `bytes` or `arg2`".into(),
            });
        }
        Ok(Aggregation::Histogram {
            probes: parse_specs(probes)?,
            arg: arg.to_owned(),
        })
    }

    /// The latency from `start` to `end`, paired by `key` (`pid`, `tid`, an
    /// argument name, or `START_ARG,END_ARG` when the names differ).
    pub fn latency(start: &str, end: &str, key: &str) -> Result<Aggregation, TraceError> {
        let (start_key, end_key) = match key.split_once(',') {
            Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
            None => (key.parse()?, key.parse()?),
        };
        Ok(Aggregation::Latency {
            start: Box::new(start.parse()?),
            end: Box::new(end.parse()?),
            start_key,
            end_key,
        })
    }
}

fn parse_specs(probes: &[&str]) -> Result<Vec<ProbeSpec>, TraceError> {
    if probes.is_empty() {
        return Err(TraceError::BadSpec {
            spec: String::new(),
            reason: "an aggregation needs at least one probe".into(),
        });
    }
    probes.iter().map(|p| p.parse()).collect()
}

/// What one attached site does.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// Stream every hit.
    Stream,
    /// Count hits for aggregation `index`.
    Count { index: u32, by: Option<KeySource> },
    /// Bucket argument `arg` for aggregation `index`.
    Histogram { index: u32, arg: String },
    /// Start latencies of aggregation `index`.
    LatencyStart { index: u32, key: KeySource },
    /// End latencies of aggregation `index`.
    LatencyEnd { index: u32, key: KeySource },
}

/// How to show the key value of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyDecoder {
    /// No key.
    Nothing,
    /// An unsigned integer (pid, tid, unsigned argument).
    Unsigned,
    /// A signed integer.
    Signed,
    /// A `bool`.
    Bool,
    /// A `char`.
    Char,
    /// A pointer.
    Pointer,
    /// A string.
    Str,
    /// Bytes.
    Bytes,
    /// JSON text.
    Json,
}

impl KeyDecoder {
    /// The key of `key` as a value; `None` when there is no key.
    pub(crate) fn decode(self, key: &AggKey) -> Option<Value> {
        let text = || {
            let end = key
                .text
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1);
            &key.text[..end]
        };
        let truncated = key.value != 0;
        Some(match self {
            KeyDecoder::Nothing => return None,
            KeyDecoder::Unsigned => Value::Unsigned(key.value),
            KeyDecoder::Signed => Value::Signed(key.value as i64),
            KeyDecoder::Bool => Value::Bool(key.value != 0),
            KeyDecoder::Char => Value::Char(key.value as u32),
            KeyDecoder::Pointer => Value::Pointer(key.value),
            KeyDecoder::Str => Value::Str {
                text: String::from_utf8_lossy(text()).into_owned(),
                truncated,
            },
            KeyDecoder::Bytes => Value::Bytes {
                bytes: text().to_vec(),
                truncated,
            },
            KeyDecoder::Json => Value::Json {
                text: String::from_utf8_lossy(text()).into_owned(),
                truncated,
            },
        })
    }
}

/// Turns a site's streaming plan into the plan of `role`; returns how to
/// show its counters' keys.
pub(crate) fn apply_role(
    plan: &mut SitePlan,
    decoding: &SiteDecoding,
    role: &Role,
) -> Result<KeyDecoder, String> {
    match role {
        Role::Stream => Ok(KeyDecoder::Nothing),
        Role::Count { index, by } => {
            plan.action = ACTION_COUNT;
            plan.aggregation = *index;
            match by {
                None => {
                    plan.key = KEY_NONE;
                    Ok(KeyDecoder::Nothing)
                }
                Some(source) => set_key(plan, decoding, source, true),
            }
        }
        Role::Histogram { index, arg } => {
            plan.action = ACTION_HISTOGRAM;
            plan.aggregation = *index;
            match find_arg(decoding, arg)? {
                Decoder::Int { slot, .. } => {
                    plan.value_arg = slot as u8;
                    Ok(KeyDecoder::Nothing)
                }
                other => Err(format!(
                    "argument `{arg}` is {}; a histogram needs an integer",
                    describe(other)
                )),
            }
        }
        Role::LatencyStart { index, key } | Role::LatencyEnd { index, key } => {
            plan.action = if matches!(role, Role::LatencyStart { .. }) {
                ACTION_LATENCY_START
            } else {
                ACTION_LATENCY_END
            };
            plan.aggregation = *index;
            set_key(plan, decoding, key, false)?;
            Ok(KeyDecoder::Nothing)
        }
    }
}

/// Sets the plan's key; strings are allowed only where `strings`.
fn set_key(
    plan: &mut SitePlan,
    decoding: &SiteDecoding,
    source: &KeySource,
    strings: bool,
) -> Result<KeyDecoder, String> {
    let name = match source {
        KeySource::Pid => {
            plan.key = KEY_PID;
            return Ok(KeyDecoder::Unsigned);
        }
        KeySource::Tid => {
            plan.key = KEY_TID;
            return Ok(KeyDecoder::Unsigned);
        }
        KeySource::Arg(name) => name,
    };
    let decoder = find_arg(decoding, name)?;
    let (slot, key, shown) = match decoder {
        Decoder::Int { slot, signed } => (
            slot,
            KEY_ARG,
            if signed {
                KeyDecoder::Signed
            } else {
                KeyDecoder::Unsigned
            },
        ),
        Decoder::Bool(slot) => (slot, KEY_ARG, KeyDecoder::Bool),
        Decoder::Char(slot) => (slot, KEY_ARG, KeyDecoder::Char),
        Decoder::Pointer(slot) => (slot, KEY_ARG, KeyDecoder::Pointer),
        Decoder::Str { slot, .. } if strings => (slot, KEY_STRING, KeyDecoder::Str),
        Decoder::Bytes(slot) if strings => (slot, KEY_STRING, KeyDecoder::Bytes),
        Decoder::Json(slot) if strings => (slot, KEY_STRING, KeyDecoder::Json),
        other => {
            return Err(format!(
                "argument `{name}` is {}, which cannot be {}",
                describe(other),
                if strings {
                    "a key"
                } else {
                    "a latency key (integers, pid or tid)"
                }
            ));
        }
    };
    if key == KEY_STRING && plan.args[slot].string == STRING_NONE {
        return Err(format!("argument `{name}` is not copied as a string"));
    }
    plan.key = key;
    plan.key_arg = slot as u8;
    Ok(shown)
}

/// The decoder of the argument called `name` (declared name, or `argN`).
fn find_arg(decoding: &SiteDecoding, name: &str) -> Result<Decoder, String> {
    let position = decoding.names.iter().position(|n| n == name).or_else(|| {
        name.strip_prefix("arg")
            .and_then(|n| n.parse::<usize>().ok())
    });
    match position.and_then(|p| decoding.decoders.get(p)) {
        Some(decoder) => Ok(*decoder),
        None => {
            let names: Vec<String> = if decoding.names.is_empty() {
                (0..decoding.decoders.len())
                    .map(|i| format!("arg{i}"))
                    .collect()
            } else {
                decoding.names.to_vec()
            };
            Err(if names.is_empty() {
                format!("no argument `{name}`: the probe has no arguments")
            } else {
                format!("no argument `{name}` (its arguments: {})", names.join(", "))
            })
        }
    }
}

/// What kind of value a decoder produces, for messages.
fn describe(decoder: Decoder) -> &'static str {
    match decoder {
        Decoder::Int { .. } => "an integer",
        Decoder::Wide { .. } => "a 128-bit integer",
        Decoder::Bool(_) => "a bool",
        Decoder::Char(_) => "a char",
        Decoder::F32(_) | Decoder::F64(_) => "a float",
        Decoder::Pointer(_) => "a pointer",
        Decoder::Str { .. } => "a string",
        Decoder::Bytes(_) => "a byte string",
        Decoder::Json(_) => "JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usdt_tracer_common::STRING_PTR_LEN;

    fn typed() -> (SitePlan, SiteDecoding) {
        let mut plan = SitePlan::default();
        plan.args[2].string = STRING_PTR_LEN;
        let decoding = SiteDecoding {
            decoders: vec![
                Decoder::Int {
                    slot: 0,
                    signed: false,
                },
                Decoder::Int {
                    slot: 1,
                    signed: true,
                },
                Decoder::Str {
                    slot: 2,
                    pair: true,
                },
                Decoder::F64(4),
            ],
            names: vec![
                "id".to_owned(),
                "delta".into(),
                "path".into(),
                "ratio".into(),
            ]
            .into(),
        };
        (plan, decoding)
    }

    #[test]
    fn counts_by_name_position_pid_and_string() {
        let (mut plan, decoding) = typed();
        let role = Role::Count {
            index: 3,
            by: Some(KeySource::Arg("delta".into())),
        };
        assert_eq!(
            apply_role(&mut plan, &decoding, &role),
            Ok(KeyDecoder::Signed)
        );
        assert_eq!(
            (plan.action, plan.aggregation, plan.key, plan.key_arg),
            (ACTION_COUNT, 3, KEY_ARG, 1)
        );

        let role = Role::Count {
            index: 0,
            by: Some(KeySource::Arg("arg2".into())),
        };
        assert_eq!(apply_role(&mut plan, &decoding, &role), Ok(KeyDecoder::Str));
        assert_eq!((plan.key, plan.key_arg), (KEY_STRING, 2));

        let role = Role::Count {
            index: 0,
            by: Some(KeySource::Pid),
        };
        assert_eq!(
            apply_role(&mut plan, &decoding, &role),
            Ok(KeyDecoder::Unsigned)
        );
        assert_eq!(plan.key, KEY_PID);

        let role = Role::Count {
            index: 0,
            by: Some(KeySource::Arg("nope".into())),
        };
        let error = apply_role(&mut plan, &decoding, &role).unwrap_err();
        assert!(error.contains("id, delta, path, ratio"), "{error}");
        let role = Role::Count {
            index: 0,
            by: Some(KeySource::Arg("ratio".into())),
        };
        assert!(apply_role(&mut plan, &decoding, &role).is_err());
    }

    #[test]
    fn histograms_and_latencies_need_integers() {
        let (mut plan, decoding) = typed();
        let role = Role::Histogram {
            index: 1,
            arg: "id".into(),
        };
        apply_role(&mut plan, &decoding, &role).unwrap();
        assert_eq!((plan.action, plan.value_arg), (ACTION_HISTOGRAM, 0));
        let role = Role::Histogram {
            index: 1,
            arg: "path".into(),
        };
        assert!(apply_role(&mut plan, &decoding, &role).is_err());

        let role = Role::LatencyEnd {
            index: 2,
            key: KeySource::Arg("id".into()),
        };
        apply_role(&mut plan, &decoding, &role).unwrap();
        assert_eq!(
            (plan.action, plan.key, plan.key_arg),
            (ACTION_LATENCY_END, KEY_ARG, 0)
        );
        let role = Role::LatencyStart {
            index: 2,
            key: KeySource::Arg("path".into()),
        };
        assert!(apply_role(&mut plan, &decoding, &role).is_err());
        let role = Role::LatencyStart {
            index: 2,
            key: KeySource::Tid,
        };
        apply_role(&mut plan, &decoding, &role).unwrap();
        assert_eq!((plan.action, plan.key), (ACTION_LATENCY_START, KEY_TID));
    }

    #[test]
    fn string_keys_decode_without_padding() {
        let mut key = AggKey::default();
        key.text[..3].copy_from_slice(b"/a/");
        assert_eq!(
            KeyDecoder::Str.decode(&key),
            Some(Value::Str {
                text: "/a/".into(),
                truncated: false
            })
        );
        key.value = 1;
        assert!(KeyDecoder::Str.decode(&key).unwrap().is_truncated());
        key.value = -5i64 as u64;
        assert_eq!(KeyDecoder::Signed.decode(&key), Some(Value::Signed(-5)));
        assert_eq!(KeyDecoder::Nothing.decode(&key), None);
    }

    #[test]
    fn key_sources_and_latency_keys() {
        assert_eq!("pid".parse::<KeySource>().unwrap(), KeySource::Pid);
        assert_eq!(
            "request_id".parse::<KeySource>().unwrap(),
            KeySource::Arg("request_id".into())
        );
        assert!("a b".parse::<KeySource>().is_err());
        match Aggregation::latency("p:start", "p:end", "arg0,id").unwrap() {
            Aggregation::Latency {
                start_key, end_key, ..
            } => {
                assert_eq!(start_key, KeySource::Arg("arg0".into()));
                assert_eq!(end_key, KeySource::Arg("id".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(Aggregation::hits(&[], None).is_err());
    }
}
