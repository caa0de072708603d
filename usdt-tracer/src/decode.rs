//! Decoding what the BPF program sends: ring-buffer records into
//! [`Event`]s, and each site's raw argument slots into [`Value`]s as its
//! typed metadata (or the user's `--str` requests) say.

use crate::event::{Event, ProbeInfo};
use crate::stack::{StackFrame, stack_addresses};
use crate::value::Value;
use std::sync::Arc;
use usdt_tracer_common::{
    EVENT_FIXED_SIZE, EVENT_HEADER_SIZE, EventHeader, MAX_ARGS, STACK_AREA_SIZE,
};

/// How to turn a site's raw slots into one [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    /// An integer slot, already extended by the BPF program.
    Int { slot: usize, signed: bool },
    /// A 128-bit integer from (low, high) slots.
    Wide { low: usize, signed: bool },
    /// `bool`.
    Bool(usize),
    /// `char`.
    Char(usize),
    /// `f32` bits in the low half of the slot.
    F32(usize),
    /// `f64` bits.
    F64(usize),
    /// A raw pointer.
    Pointer(usize),
    /// A string copied through the slot's pointer: a (pointer, length)
    /// pair when `pair` (`&str`), else NUL-terminated (`&CStr`, C strings).
    Str { slot: usize, pair: bool },
    /// Bytes copied through a (pointer, length) pair (`&[u8]`).
    Bytes(usize),
    /// JSON text copied through a (pointer, length) pair.
    Json(usize),
}

impl Decoder {
    /// The slots whose values this decoder reads.
    fn slots(self) -> std::ops::RangeInclusive<usize> {
        match self {
            Decoder::Wide { low, .. } => low..=low + 1,
            Decoder::Str { slot, pair: true } => slot..=slot + 1,
            Decoder::Bytes(s) | Decoder::Json(s) => s..=s + 1,
            Decoder::Str { slot, pair: false } => slot..=slot,
            Decoder::Int { slot, .. } => slot..=slot,
            Decoder::Bool(s)
            | Decoder::Char(s)
            | Decoder::F32(s)
            | Decoder::F64(s)
            | Decoder::Pointer(s) => s..=s,
        }
    }
}

/// How to decode the events of one site.
#[derive(Debug, Clone)]
pub(crate) struct SiteDecoding {
    /// One decoder per argument shown to the user.
    pub decoders: Vec<Decoder>,
    /// Declared argument names (from typed metadata); empty when unknown.
    pub names: Arc<[String]>,
}

/// What user space keeps per attached site (indexed by the site's cookie).
#[derive(Debug, Clone)]
pub(crate) struct SiteState {
    /// Index of the site's probe in the tracer's probes.
    pub probe: usize,
    /// The site's link-time address.
    pub address: u64,
    /// How to decode its records.
    pub decoding: SiteDecoding,
    /// Whether the site's records carry a stack area after the header
    /// (see [`crate::plan::stack_area`]).
    pub stack_area: bool,
    /// Whether its events show the user stack (from the stack area).
    pub stack: bool,
}

/// Decodes one event's values. `strings` is the record's string area.
pub(crate) fn decode(header: &EventHeader, strings: &[u8], decoding: &SiteDecoding) -> Vec<Value> {
    let count = (header.arg_count as usize).min(MAX_ARGS);
    // Start of each slot's string in the packed area.
    let mut starts = [0usize; MAX_ARGS];
    let mut offset = 0;
    for (slot, start) in starts.iter_mut().enumerate().take(count) {
        *start = offset;
        offset += header.string_len[slot] as usize;
    }
    let copied = |slot: usize| -> &[u8] {
        let start = starts[slot].min(strings.len());
        let end = (starts[slot] + header.string_len[slot] as usize).min(strings.len());
        &strings[start..end]
    };
    let cut = |slot: usize| header.truncated & (1 << slot) != 0;
    decoding
        .decoders
        .iter()
        .map(|&decoder| {
            if decoder
                .slots()
                .any(|slot| slot >= count || header.faults & (1 << slot) != 0)
            {
                return Value::Fault;
            }
            match decoder {
                Decoder::Int { slot, signed: true } => Value::Signed(header.args[slot] as i64),
                Decoder::Int {
                    slot,
                    signed: false,
                } => Value::Unsigned(header.args[slot]),
                Decoder::Wide { low, signed } => {
                    let wide = (header.args[low] as u128) | ((header.args[low + 1] as u128) << 64);
                    if signed {
                        Value::I128(wide as i128)
                    } else {
                        Value::U128(wide)
                    }
                }
                Decoder::Bool(slot) => Value::Bool(header.args[slot] != 0),
                Decoder::Char(slot) => Value::Char(header.args[slot] as u32),
                Decoder::F32(slot) => Value::F32(f32::from_bits(header.args[slot] as u32)),
                Decoder::F64(slot) => Value::F64(f64::from_bits(header.args[slot])),
                Decoder::Pointer(slot) => Value::Pointer(header.args[slot]),
                Decoder::Str { slot, .. } => Value::Str {
                    text: String::from_utf8_lossy(copied(slot)).into_owned(),
                    truncated: cut(slot),
                },
                Decoder::Bytes(slot) => Value::Bytes {
                    bytes: copied(slot).to_vec(),
                    truncated: cut(slot),
                },
                Decoder::Json(slot) => Value::Json {
                    text: String::from_utf8_lossy(copied(slot)).into_owned(),
                    truncated: cut(slot),
                },
            }
        })
        .collect()
}

/// The site (plan slot) a ring buffer record comes from.
pub(crate) fn record_site(bytes: &[u8]) -> Option<u32> {
    let at = std::mem::offset_of!(EventHeader, site);
    let raw = bytes.get(at..at + 4)?;
    Some(u32::from_ne_bytes(raw.try_into().ok()?))
}

/// Decodes one ring buffer record; `None` for a record too short or of an
/// unknown site (which the BPF program never writes).
pub(crate) fn decode_record(
    bytes: &[u8],
    sites: &[SiteState],
    probes: &[Arc<ProbeInfo>],
) -> Option<Event> {
    if bytes.len() < EVENT_FIXED_SIZE {
        return None;
    }
    // A short record (a site without strings) carries the fixed part and
    // its arguments; the rest of the header stays zero.
    let mut header = EventHeader::default();
    let size = bytes.len().min(EVENT_HEADER_SIZE);
    // SAFETY: copies `size` bytes, no more than either side holds, into a
    // plain-old-data struct valid for any bit pattern.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (&mut header as *mut EventHeader).cast::<u8>(),
            size,
        )
    };
    let site = sites.get(header.site as usize)?;
    let stack = site.stack.then(|| {
        let area = bytes.get(EVENT_HEADER_SIZE..).unwrap_or(&[]);
        stack_addresses(area)
            .into_iter()
            .map(|address| StackFrame {
                address,
                symbol: None,
                file: None,
                line: None,
            })
            .collect()
    });
    let strings_at = if site.stack_area {
        EVENT_HEADER_SIZE + STACK_AREA_SIZE
    } else {
        EVENT_HEADER_SIZE
    };
    let strings = bytes.get(strings_at..).unwrap_or(&[]);
    let strings = &strings[..(header.string_bytes as usize).min(strings.len())];
    Some(Event {
        probe: probes[site.probe].clone(),
        address: site.address,
        pid: header.pid,
        tid: header.tid,
        cpu: header.cpu,
        timestamp_ns: header.timestamp_ns,
        args: decode(&header, strings, &site.decoding),
        arg_names: site.decoding.names.clone(),
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(args: &[u64]) -> EventHeader {
        let mut header = EventHeader {
            arg_count: args.len() as u8,
            ..EventHeader::default()
        };
        header.args[..args.len()].copy_from_slice(args);
        header
    }

    #[test]
    fn decodes_integers_wide_values_and_faults() {
        let decoding = SiteDecoding {
            decoders: vec![
                Decoder::Int {
                    slot: 0,
                    signed: true,
                },
                Decoder::Wide {
                    low: 1,
                    signed: true,
                },
                Decoder::Bool(3),
                Decoder::Char(4),
                Decoder::F64(5),
                Decoder::Int {
                    slot: 6,
                    signed: false,
                },
            ],
            names: Vec::new().into(),
        };
        let mut h = header(&[
            -5i64 as u64,
            1,
            u64::MAX,
            2,
            'é' as u64,
            (-0.5f64).to_bits(),
            9,
        ]);
        h.faults = 1 << 6;
        let values = decode(&h, &[], &decoding);
        assert_eq!(
            values,
            [
                Value::Signed(-5),
                Value::I128(-(1i128 << 64) + 1),
                Value::Bool(true),
                Value::Char('é' as u32),
                Value::F64(-0.5),
                Value::Fault,
            ]
        );
    }

    #[test]
    fn decodes_packed_strings() {
        let decoding = SiteDecoding {
            decoders: vec![
                Decoder::Str {
                    slot: 0,
                    pair: true,
                },
                Decoder::Bytes(2),
                Decoder::Str {
                    slot: 4,
                    pair: false,
                },
                Decoder::Json(5),
            ],
            names: Vec::new().into(),
        };
        let mut h = header(&[0x1000, 5, 0x2000, 300, 0x3000, 0x4000, 2]);
        h.string_len[0] = 5;
        h.string_len[2] = 3;
        h.string_len[4] = 2;
        h.string_len[5] = 2;
        h.truncated = 1 << 2;
        h.faults = 0;
        let strings = b"hello\x00\x01\x02okno";
        let values = decode(&h, strings, &decoding);
        assert_eq!(
            values[0],
            Value::Str {
                text: "hello".into(),
                truncated: false
            }
        );
        assert_eq!(
            values[1],
            Value::Bytes {
                bytes: vec![0, 1, 2],
                truncated: true
            }
        );
        assert_eq!(
            values[2],
            Value::Str {
                text: "ok".into(),
                truncated: false
            }
        );
        assert_eq!(
            values[3],
            Value::Json {
                text: "no".into(),
                truncated: false
            }
        );
        // A record shorter than its lengths claim never panics.
        let values = decode(&h, b"he", &decoding);
        assert_eq!(
            values[0],
            Value::Str {
                text: "he".into(),
                truncated: false
            }
        );
    }

    /// The bytes the BPF program writes for `header` followed by
    /// `strings`: the whole header, or only its fixed part and arguments
    /// (a short record, for sites without strings) when `short`.
    fn record(header: &EventHeader, strings: &[u8], short: bool) -> Vec<u8> {
        use core::mem::offset_of;
        let mut bytes = vec![0u8; EVENT_HEADER_SIZE];
        let mut put = |offset: usize, field: &[u8]| {
            bytes[offset..offset + field.len()].copy_from_slice(field);
        };
        put(
            offset_of!(EventHeader, timestamp_ns),
            &header.timestamp_ns.to_ne_bytes(),
        );
        put(offset_of!(EventHeader, pid), &header.pid.to_ne_bytes());
        put(offset_of!(EventHeader, tid), &header.tid.to_ne_bytes());
        put(offset_of!(EventHeader, cpu), &header.cpu.to_ne_bytes());
        put(
            offset_of!(EventHeader, probe_id),
            &header.probe_id.to_ne_bytes(),
        );
        put(offset_of!(EventHeader, site), &header.site.to_ne_bytes());
        put(offset_of!(EventHeader, arg_count), &[header.arg_count]);
        put(
            offset_of!(EventHeader, faults),
            &header.faults.to_ne_bytes(),
        );
        put(
            offset_of!(EventHeader, string_bytes),
            &header.string_bytes.to_ne_bytes(),
        );
        put(
            offset_of!(EventHeader, truncated),
            &header.truncated.to_ne_bytes(),
        );
        for (i, arg) in header.args.iter().enumerate() {
            put(offset_of!(EventHeader, args) + 8 * i, &arg.to_ne_bytes());
        }
        for (i, len) in header.string_len.iter().enumerate() {
            put(
                offset_of!(EventHeader, string_len) + 2 * i,
                &len.to_ne_bytes(),
            );
        }
        if short {
            bytes.truncate(EVENT_FIXED_SIZE + 8 * header.arg_count as usize);
        } else {
            bytes.extend_from_slice(strings);
        }
        bytes
    }

    fn probe_and_site(
        decoders: Vec<Decoder>,
        names: &[&str],
    ) -> (Vec<Arc<ProbeInfo>>, Vec<SiteState>) {
        let probes = vec![Arc::new(ProbeInfo {
            provider: "http".into(),
            name: "request_start".into(),
            path: "/srv/app".into(),
            signature: None,
            sites: 1,
            semaphore: false,
        })];
        let sites = vec![SiteState {
            probe: 0,
            address: 0x4010,
            decoding: SiteDecoding {
                decoders,
                names: names
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .into(),
            },
            stack_area: false,
            stack: false,
        }];
        (probes, sites)
    }

    #[test]
    fn short_records_carry_the_fixed_part_and_their_arguments() {
        let (probes, sites) = probe_and_site(
            vec![
                Decoder::Int {
                    slot: 0,
                    signed: false,
                },
                Decoder::Int {
                    slot: 1,
                    signed: true,
                },
            ],
            &["id", "delta"],
        );
        let mut h = header(&[7, -3i64 as u64]);
        h.timestamp_ns = 123_456_789;
        h.pid = 40;
        h.tid = 41;
        h.cpu = 1;
        let bytes = record(&h, &[], true);
        assert_eq!(bytes.len(), EVENT_FIXED_SIZE + 16);
        let event = decode_record(&bytes, &sites, &probes).unwrap();
        assert_eq!((event.pid, event.tid, event.cpu), (40, 41, 1));
        assert_eq!(event.timestamp_ns, 123_456_789);
        assert_eq!(event.address, 0x4010);
        assert_eq!(event.probe.name, "request_start");
        assert_eq!(event.args, [Value::Unsigned(7), Value::Signed(-3)]);
        assert_eq!(event.arg_name(1), "delta");
        assert_eq!(event.arg_name(2), "arg2");
    }

    #[test]
    fn whole_records_carry_their_strings() {
        let (probes, sites) = probe_and_site(
            vec![Decoder::Str {
                slot: 0,
                pair: true,
            }],
            &["path"],
        );
        let mut h = header(&[0x7000, 5]);
        h.string_len[0] = 5;
        h.string_bytes = 5;
        let bytes = record(&h, b"/indexPADDING", false);
        let event = decode_record(&bytes, &sites, &probes).unwrap();
        assert_eq!(
            event.args,
            [Value::Str {
                text: "/inde".into(),
                truncated: false
            }]
        );
        // A string area shorter than the header claims is cut, not read past.
        h.string_bytes = 64;
        h.string_len[0] = 64;
        let bytes = record(&h, b"/ab", false);
        let event = decode_record(&bytes, &sites, &probes).unwrap();
        assert_eq!(
            event.args,
            [Value::Str {
                text: "/ab".into(),
                truncated: false
            }]
        );
    }

    #[test]
    fn records_too_short_or_of_unknown_sites_are_skipped() {
        let (probes, sites) = probe_and_site(Vec::new(), &[]);
        let h = header(&[]);
        let bytes = record(&h, &[], true);
        assert!(decode_record(&bytes, &sites, &probes).is_some());
        assert!(decode_record(&bytes[..EVENT_FIXED_SIZE - 1], &sites, &probes).is_none());
        assert!(decode_record(&[], &sites, &probes).is_none());
        let mut other = h;
        other.site = 1;
        assert!(decode_record(&record(&other, &[], true), &sites, &probes).is_none());
    }

    #[test]
    fn arguments_past_a_short_record_read_as_zero() {
        // A record claiming more arguments than it carries never panics.
        let (probes, sites) = probe_and_site(
            vec![Decoder::Int {
                slot: 3,
                signed: false,
            }],
            &[],
        );
        let h = header(&[1, 2, 3, 4]);
        let mut bytes = record(&h, &[], true);
        bytes.truncate(EVENT_FIXED_SIZE + 8);
        let event = decode_record(&bytes, &sites, &probes).unwrap();
        assert_eq!(event.args, [Value::Unsigned(0)]);
    }
}
