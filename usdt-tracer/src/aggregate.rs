//! In-kernel aggregations: what to aggregate ([`Aggregation`]), by which
//! key ([`KeySource`]), and how a counter's key shows ([`KeyDecoder`]).

use crate::error::TraceError;
use crate::select::ProbeSpec;
use crate::value::Value;
use std::fmt;
use std::str::FromStr;
use usdt_tracer_common::{AggKey, CounterKey, StartKey};

/// Default entry limit of the aggregation maps.
pub const DEFAULT_MAP_ENTRIES: u32 = 10240;

/// The most kernel memory the aggregation maps may take when full: 1 GiB.
pub const MAP_MEMORY_LIMIT: u64 = 1 << 30;

/// The largest entry limit of the aggregation maps
/// ([`TraceConfig::map_entries`](crate::TraceConfig::map_entries)): the
/// most whose maps, full, take at most [`MAP_MEMORY_LIMIT`] (see
/// [`map_memory`]).
pub const MAX_MAP_ENTRIES: u32 = {
    // The largest n with map_memory(n) <= the limit, by bisection.
    let (mut low, mut high) = (1u32, u32::MAX);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if map_memory(middle) <= MAP_MEMORY_LIMIT {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    low
};

/// The size of a kernel allocation of `bytes`: the smallest of the
/// allocator's size classes that holds it.
const fn allocation(bytes: u64) -> u64 {
    let classes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
    let mut i = 0;
    while i < classes.len() {
        if bytes <= classes[i] {
            return classes[i];
        }
        i += 1;
    }
    bytes.div_ceil(4096) * 4096
}

/// The kernel memory one used entry of a BPF hash map with `key` and
/// `value` bytes takes: the element (a 48-byte header, then key and value
/// each rounded up to 8 bytes) and the BPF allocator's 8-byte list link,
/// allocated from a size class.
const fn hash_entry(key: usize, value: usize) -> u64 {
    let element = 48 + key.next_multiple_of(8) + value.next_multiple_of(8);
    allocation(element as u64 + 8)
}

/// The kernel memory the aggregation maps take at most with `entries`
/// entries each: when full, the counters (a [`CounterKey`] and a count),
/// the counters keyed by a string (an [`AggKey`] and a count) and the
/// pending latency starts (a [`StartKey`] and a time), and the hash tables'
/// buckets (16 bytes, one per entry rounded up to a power of two),
/// allocated with the maps. Entries are allocated as keys appear: a map
/// that never fills takes less.
pub const fn map_memory(entries: u32) -> u64 {
    let entries = entries as u64;
    let per_entry = hash_entry(size_of::<CounterKey>(), 8)
        + hash_entry(size_of::<AggKey>(), 8)
        + hash_entry(size_of::<StartKey>(), 8);
    entries * per_entry + 3 * 16 * entries.next_power_of_two()
}

/// Checks an entry limit of the aggregation maps: at least 1, at most
/// [`MAX_MAP_ENTRIES`]; the error says what the maps would cost.
pub fn check_map_entries(entries: u32) -> Result<(), TraceError> {
    let reason = if entries == 0 {
        "need at least one entry".to_owned()
    } else if entries > MAX_MAP_ENTRIES {
        format!(
            "would take up to {} of kernel memory when full; at most {MAX_MAP_ENTRIES} entries ({})",
            bytes_text(map_memory(entries)),
            bytes_text(map_memory(MAX_MAP_ENTRIES)),
        )
    } else {
        return Ok(());
    };
    Err(TraceError::MapEntries { entries, reason })
}

/// `bytes` for people: `640 MiB`, `9.7 GiB`.
fn bytes_text(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let bytes = bytes as f64;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes / GIB)
    } else {
        format!("{:.0} MiB", (bytes / MIB).ceil())
    }
}

/// Where an aggregation's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The process id.
    Pid,
    /// The thread id.
    Tid,
    /// The process and its user stack at the hit (counting hits only).
    Stack,
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
            "stack" => Ok(KeySource::Stack),
            name if is_name(name) => Ok(KeySource::Arg(name.to_owned())),
            _ => Err(TraceError::BadKey {
                text: text.to_owned(),
                reason:
                    "expected `pid`, `tid`, `stack`, or an argument name such as `status` or `arg1`"
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
            KeySource::Stack => f.write_str("stack"),
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

    /// The probe specifications the aggregation covers.
    pub(crate) fn specs(&self) -> Vec<&ProbeSpec> {
        match self {
            Aggregation::Hits { probes, .. } | Aggregation::Histogram { probes, .. } => {
                probes.iter().collect()
            }
            Aggregation::Latency { start, end, .. } => vec![start.as_ref(), end.as_ref()],
        }
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
    /// A stack: the key is its hash, shown as an unsigned integer until
    /// the tracer puts the stack's frames beside it.
    Stack,
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
            KeyDecoder::Unsigned | KeyDecoder::Stack => Value::Unsigned(key.value),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_entries_are_bounded_by_their_memory() {
        // A used entry: a 96-byte counter, a 192-byte counter keyed by a
        // string and a 96-byte pending start.
        assert_eq!(map_memory(1), 96 + 192 + 96 + 3 * 16);
        assert_eq!(map_memory(1000), 1000 * 384 + 3 * 16 * 1024);
        assert!(map_memory(MAX_MAP_ENTRIES) <= MAP_MEMORY_LIMIT);
        assert!(map_memory(MAX_MAP_ENTRIES + 1) > MAP_MEMORY_LIMIT);
        check_map_entries(1).unwrap();
        check_map_entries(DEFAULT_MAP_ENTRIES).unwrap();
        check_map_entries(MAX_MAP_ENTRIES).unwrap();
        let error = check_map_entries(MAX_MAP_ENTRIES + 1).unwrap_err();
        assert!(error.is_input());
        assert_eq!(
            error.to_string(),
            format!(
                "aggregation maps of {} entries would take up to 1.0 GiB of kernel memory when full; at most {MAX_MAP_ENTRIES} entries (1024 MiB)",
                MAX_MAP_ENTRIES + 1
            )
        );
        let error = check_map_entries(u32::MAX).unwrap_err().to_string();
        assert!(error.contains("would take up to 1728.0 GiB"), "{error}");
        assert!(check_map_entries(0).is_err());
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
