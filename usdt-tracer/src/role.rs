//! Roles: which sites a configuration selects and what each does (stream
//! its hits, or add them to one of the in-kernel aggregations), and how a
//! role turns the site's streaming plan into an aggregating one.
//!
//! Each aggregation has an index (its position in the configuration) that
//! the plans of its sites carry, so one counter map serves them all. A site
//! selected by several aggregations (or streamed too) is attached once per
//! use, each with its own plan and cookie.

use crate::aggregate::{Aggregation, KeyDecoder, KeySource};
use crate::cancel::Cancel;
use crate::config::TraceConfig;
use crate::decode::{Decoder, SiteDecoding};
use crate::error::TraceError;
use crate::select::{self, ProbeSpec, SelectedSite};
use usdt_tracer_common::{
    ACTION_COUNT, ACTION_HISTOGRAM, ACTION_LATENCY_END, ACTION_LATENCY_START, KEY_ARG, KEY_NONE,
    KEY_PID, KEY_STACK, KEY_STRING, KEY_TID, STRING_NONE, SitePlan,
};

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

impl Role {
    /// The aggregation the site adds to, if it aggregates.
    pub(crate) fn aggregation(&self) -> Option<u32> {
        match self {
            Role::Stream => None,
            Role::Count { index, .. }
            | Role::Histogram { index, .. }
            | Role::LatencyStart { index, .. }
            | Role::LatencyEnd { index, .. } => Some(*index),
        }
    }
}

/// The sites of the streamed probes and of every aggregation, in cookie
/// order, with what each does. A site used twice is selected twice.
pub(crate) struct Selection {
    /// The sites, in order.
    pub sites: Vec<SelectedSite>,
    /// The role of each site.
    pub roles: Vec<Role>,
    /// Notes or modules the reader left out.
    pub warnings: Vec<String>,
}

/// The sites of every probe the configuration names, the role of each, and
/// warnings about notes or modules the reader left out. Gives up when
/// `cancel` is set.
pub(crate) fn select_all(
    config: &TraceConfig,
    cancel: Cancel<'_>,
) -> Result<Selection, TraceError> {
    let mut warnings = Vec::new();
    let follow = config.follows();
    let sites = select_with(config, |specs: &[ProbeSpec]| {
        select::select_sites(
            specs,
            config.pid,
            config.executable.as_deref(),
            follow,
            &mut warnings,
            cancel,
        )
    })?;
    Ok(Selection { warnings, ..sites })
}

/// The sites `select` finds for the streamed probes and for every
/// aggregation of `config`, each with its role, in cookie order.
pub(crate) fn select_with(
    config: &TraceConfig,
    mut select: impl FnMut(&[ProbeSpec]) -> Result<Vec<SelectedSite>, TraceError>,
) -> Result<Selection, TraceError> {
    let mut selected = Vec::new();
    let mut roles = Vec::new();
    let mut add = |sites: Vec<SelectedSite>, role: Role| {
        roles.extend(std::iter::repeat_n(role, sites.len()));
        selected.extend(sites);
    };
    if !config.probes.is_empty() {
        add(select(&config.probes)?, Role::Stream);
    }
    for (index, aggregation) in config.aggregations.iter().enumerate() {
        let index = index as u32;
        match aggregation {
            Aggregation::Hits { probes, by } => add(
                select(probes)?,
                Role::Count {
                    index,
                    by: by.clone(),
                },
            ),
            Aggregation::Histogram { probes, arg } => add(
                select(probes)?,
                Role::Histogram {
                    index,
                    arg: arg.clone(),
                },
            ),
            Aggregation::Latency {
                start,
                end,
                start_key,
                end_key,
            } => {
                add(
                    select(std::slice::from_ref(start.as_ref()))?,
                    Role::LatencyStart {
                        index,
                        key: start_key.clone(),
                    },
                );
                add(
                    select(std::slice::from_ref(end.as_ref()))?,
                    Role::LatencyEnd {
                        index,
                        key: end_key.clone(),
                    },
                );
            }
        }
    }
    Ok(Selection {
        sites: selected,
        roles,
        warnings: Vec::new(),
    })
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
                // The decoder tells how the histogram's sum reads.
                Decoder::Int { slot, signed } => {
                    plan.value_arg = slot as u8;
                    Ok(if signed {
                        KeyDecoder::Signed
                    } else {
                        KeyDecoder::Unsigned
                    })
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
        KeySource::Stack if strings => {
            plan.key = KEY_STACK;
            return Ok(KeyDecoder::Stack);
        }
        KeySource::Stack => {
            return Err("a stack cannot pair a latency start with its end".into());
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
pub(crate) fn find_arg(decoding: &SiteDecoding, name: &str) -> Result<Decoder, String> {
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
pub(crate) mod tests {
    use super::*;
    use usdt_tracer_common::STRING_PTR_LEN;

    /// A typed site: `id: u64`, `delta: i32`, `path: &str`, `ratio: f64`.
    pub(crate) fn typed() -> (SitePlan, SiteDecoding) {
        let mut plan = SitePlan::default();
        plan.args[1].signed = 1;
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
}
