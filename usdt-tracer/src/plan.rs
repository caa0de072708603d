//! Per-site plans: how the BPF program reads each argument of a probe site,
//! and how user space turns the values it sends into [`Value`]s.
//!
//! A site's note arguments ("slots") become argument specs
//! ([`usdt_tracer_common::ArgPlan`], planned by `usdt_aya::spec`, which
//! `usdt-aya` attaches with too): a constant, a register, or memory at a
//! register (+ index * scale, the index extended from 32 bits for aarch64's
//! `sxtw` and `uxtw`) + displacement, relative to the instruction pointer
//! for operands at a link-time address.
//!
//! Typed metadata (`.usdt.types`) groups slots into Rust arguments: strings,
//! byte slices and JSON are (pointer, length) pairs whose bytes the BPF
//! program copies; `&CStr` is a pointer to a NUL-terminated string; `u128`
//! and `i128` are (low, high) pairs; floats are IEEE bits. Without metadata
//! every slot is an integer, unless the user asked for a C string.

use crate::aggregate::KeyDecoder;
use crate::cancel::Cancel;
use crate::decode::{Decoder, SiteDecoding, SiteState};
use crate::error::TraceError;
use crate::event::ProbeInfo;
use crate::filter::Filter;
use crate::role::{self, Role};
use crate::select::{SelectedSite, StringRequest};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use usdt_reader::{Arch, ArgKind, ArgSpec, Probe};
use usdt_tracer_common::{
    ACTION_STREAM, STRING_CSTR, STRING_NONE, STRING_PTR_LEN, SiteOptions, SitePlan,
};

/// Why a site cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanError(pub String);

/// Plans `probe` (a site of an `arch` module) for the BPF program. Note
/// argument indices in `cstr_slots` are read as C strings when the site has
/// no typed metadata; for typed sites, `cstr_slots` turns raw pointer
/// arguments (by declared position) into C strings.
pub(crate) fn plan_site(
    arch: Arch,
    probe: &Probe,
    probe_id: u32,
    cstr_slots: &[usize],
) -> Result<(SitePlan, SiteDecoding), PlanError> {
    let args = usdt_aya::spec::arg_specs(arch, probe).map_err(|e| PlanError(e.0))?;
    // Planned: the note's specs parsed.
    let specs = probe.arg_specs.as_deref().unwrap_or_default();
    let mut plan = SitePlan {
        probe_id,
        action: ACTION_STREAM,
        arg_count: args.len() as u8,
        ..SitePlan::default()
    };
    plan.args[..args.len()].copy_from_slice(&args);

    let typed = probe.signature.as_ref().and_then(|signature| {
        let kinds: Vec<ArgKind> = signature.args.iter().map(|arg| arg.kind).collect();
        typed_decoders(&kinds, specs, cstr_slots).map(|decoders| {
            let names: Vec<String> = signature.args.iter().map(|arg| arg.name.clone()).collect();
            (decoders, names)
        })
    });
    let (decoders, names) = match typed {
        Some(typed) => typed,
        None => (untyped_decoders(specs, cstr_slots), Vec::new()),
    };
    for decoder in &decoders {
        match *decoder {
            Decoder::Str { slot, pair: true } | Decoder::Bytes(slot) | Decoder::Json(slot) => {
                plan.args[slot].string = STRING_PTR_LEN;
            }
            Decoder::Str { slot, pair: false } => plan.args[slot].string = STRING_CSTR,
            _ => {}
        }
    }
    plan.string_count = plan
        .args
        .iter()
        .filter(|arg| arg.string != STRING_NONE)
        .count() as u8;
    Ok((
        plan,
        SiteDecoding {
            decoders,
            names: names.into(),
        },
    ))
}

/// One integer (or float, for `4f@`/`8f@` operands) per note argument, or
/// a C string where asked.
fn untyped_decoders(specs: &[ArgSpec], cstr_slots: &[usize]) -> Vec<Decoder> {
    specs
        .iter()
        .enumerate()
        .map(|(slot, spec)| {
            if cstr_slots.contains(&slot) {
                Decoder::Str { slot, pair: false }
            } else if spec.float && spec.size == 4 {
                // `4f@`: a float (newer sys/sdt.h marks floating operands).
                Decoder::F32(slot)
            } else if spec.float && spec.size == 8 {
                Decoder::F64(slot)
            } else {
                Decoder::Int {
                    slot,
                    signed: spec.signed,
                }
            }
        })
        .collect()
}

/// Decoders from typed metadata, or `None` when the metadata does not fit
/// the site's note arguments (then the site is decoded untyped).
fn typed_decoders(
    kinds: &[ArgKind],
    specs: &[ArgSpec],
    cstr_args: &[usize],
) -> Option<Vec<Decoder>> {
    let slots: usize = kinds.iter().map(|kind| kind.slots()).sum();
    if slots != specs.len() {
        return None;
    }
    let mut slot = 0;
    let mut decoders = Vec::with_capacity(kinds.len());
    for (position, kind) in kinds.iter().enumerate() {
        let decoder = match kind {
            ArgKind::U8 | ArgKind::U16 | ArgKind::U32 | ArgKind::U64 | ArgKind::Usize => {
                Decoder::Int {
                    slot,
                    signed: false,
                }
            }
            ArgKind::I8 | ArgKind::I16 | ArgKind::I32 | ArgKind::I64 | ArgKind::Isize => {
                Decoder::Int { slot, signed: true }
            }
            ArgKind::U128 => Decoder::Wide {
                low: slot,
                signed: false,
            },
            ArgKind::I128 => Decoder::Wide {
                low: slot,
                signed: true,
            },
            ArgKind::Bool => Decoder::Bool(slot),
            ArgKind::Char => Decoder::Char(slot),
            ArgKind::F32 => Decoder::F32(slot),
            ArgKind::F64 => Decoder::F64(slot),
            ArgKind::Ptr if cstr_args.contains(&position) => Decoder::Str { slot, pair: false },
            ArgKind::Ptr => Decoder::Pointer(slot),
            ArgKind::CStr => Decoder::Str { slot, pair: false },
            ArgKind::Str => Decoder::Str { slot, pair: true },
            ArgKind::Bytes => Decoder::Bytes(slot),
            ArgKind::Json => Decoder::Json(slot),
        };
        decoders.push(decoder);
        slot += kind.slots();
    }
    Some(decoders)
}

/// The plans of the selected sites (in cookie order), the probes they
/// belong to, what user space keeps per site, and per aggregation the probe
/// ids it covers with how to show their keys.
pub(crate) struct Planned {
    pub plans: Vec<SitePlan>,
    /// Per site, its filter and stack option.
    pub options: Vec<SiteOptions>,
    pub probes: Vec<Arc<ProbeInfo>>,
    pub sites: Vec<SiteState>,
    pub keys: Vec<Vec<(u32, KeyDecoder)>>,
    /// The probes so far, to plan the sites of libraries loaded later.
    pub table: ProbeTable,
}

/// The probes planned so far (sites grouped by module, provider and name)
/// and, per aggregation, the probe ids it covers with how to show their
/// keys: kept while the trace runs, so that sites planned later join the
/// same probes.
#[derive(Debug, Default)]
pub(crate) struct ProbeTable {
    index: HashMap<(PathBuf, String, String), usize>,
    counted: HashSet<(PathBuf, u64, bool)>,
    pub infos: Vec<ProbeInfo>,
    pub keys: Vec<Vec<(u32, KeyDecoder)>>,
    /// (aggregation, probe id) pairs already in `keys`.
    covered: HashSet<(usize, u32)>,
}

/// The plans of some sites: the program's plan and options and user
/// space's state, per site in order.
pub(crate) type SitePlans = (Vec<SitePlan>, Vec<SiteOptions>, Vec<SiteState>);

/// Whether a trace has options (a filter, user stacks): the program is then
/// loaded with them switched on (`USDT_OPTIONS`), for every site.
pub(crate) fn has_options(filter: Option<&Filter>, stack: bool) -> bool {
    filter.is_some() || stack
}

/// Whether, in a trace with options, the records of a site carry a
/// [`usdt_tracer_common::StackArea`] after the header (its user stack if
/// `stack`, else empty) and then their strings in the largest string
/// class: streamed sites with a stack or strings do. That one layout keeps
/// the program with options within what older verifiers follow.
fn stack_area(plan: &SitePlan, stack: bool) -> bool {
    plan.action == ACTION_STREAM && (stack || plan.string_count != 0)
}

/// Plans every site for its role; groups sites into probes by (module,
/// provider, name). Gives up when `cancel` is set.
pub(crate) fn plan_all(
    selected: &[SelectedSite],
    roles: &[Role],
    strings: &[StringRequest],
    aggregations: usize,
    filter: Option<&Filter>,
    stack: bool,
    cancel: Cancel<'_>,
) -> Result<Planned, TraceError> {
    let mut table = ProbeTable {
        keys: vec![Vec::new(); aggregations],
        ..ProbeTable::default()
    };
    let (plans, options, sites) =
        plan_sites(&mut table, selected, roles, strings, filter, stack, cancel)?;
    Ok(Planned {
        plans,
        options,
        probes: table.infos.iter().cloned().map(Arc::new).collect(),
        sites,
        keys: table.keys.clone(),
        table,
    })
}

/// Plans `selected` sites for their `roles`, adding their probes to
/// `table`. Gives up when `cancel` is set.
pub(crate) fn plan_sites(
    table: &mut ProbeTable,
    selected: &[SelectedSite],
    roles: &[Role],
    strings: &[StringRequest],
    filter: Option<&Filter>,
    stack: bool,
    cancel: Cancel<'_>,
) -> Result<SitePlans, TraceError> {
    let options_on = has_options(filter, stack);
    let mut options = Vec::with_capacity(selected.len());
    let mut plans = Vec::with_capacity(selected.len());
    let mut sites = Vec::with_capacity(selected.len());
    for (index, (site, role)) in selected.iter().zip(roles).enumerate() {
        cancel.check_at(index)?;
        let probe = &site.probe;
        let key = (
            site.display_path.clone(),
            probe.provider.clone(),
            probe.name.clone(),
        );
        let infos = &mut table.infos;
        let id = *table.index.entry(key).or_insert_with(|| {
            infos.push(ProbeInfo {
                provider: probe.provider.clone(),
                name: probe.name.clone(),
                path: site.display_path.clone(),
                signature: probe.signature.clone(),
                sites: 0,
                semaphore: probe.semaphore_offset.is_some(),
            });
            infos.len() - 1
        });
        if table
            .counted
            .insert((site.attach_path.clone(), probe.file_offset, site.ret))
        {
            table.infos[id].sites += 1;
        }
        let unsupported = |reason: String| TraceError::Unsupported {
            path: site.display_path.clone(),
            provider: probe.provider.clone(),
            name: probe.name.clone(),
            address: probe.address,
            reason,
        };
        let cstr = StringRequest::args_for(strings, &probe.provider, &probe.name);
        let (mut plan, decoding) =
            plan_site(site.arch, probe, id as u32, &cstr).map_err(|e| unsupported(e.0))?;
        let shown = role::apply_role(&mut plan, &decoding, role).map_err(unsupported)?;
        if let Some(index) = role.aggregation().map(|index| index as usize)
            && let Some(probes) = table.keys.get_mut(index)
            && !matches!(role, Role::LatencyStart { .. } | Role::LatencyEnd { .. })
            && table.covered.insert((index, id as u32))
        {
            probes.push((id as u32, shown));
        }
        let mut site_options = SiteOptions::default();
        if let Some(filter) = filter {
            filter
                .compile(&plan, &decoding, &mut site_options)
                .map_err(|error| in_probe(error, &probe.provider, &probe.name))?;
        }
        let stack = stack && matches!(role, Role::Stream);
        site_options.stack = stack as u8;
        options.push(site_options);
        sites.push(SiteState {
            probe: id,
            address: probe.address,
            decoding,
            stack_area: options_on && stack_area(&plan, stack),
            stack,
        });
        plans.push(plan);
    }
    Ok((plans, options, sites))
}

/// A filter error naming the probe it does not fit.
fn in_probe(error: TraceError, provider: &str, name: &str) -> TraceError {
    match error {
        TraceError::BadFilter {
            filter,
            column,
            reason,
        } => TraceError::BadFilter {
            filter,
            column,
            reason: format!("{reason}, in probe {provider}:{name}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usdt_reader::{NoSymbols, Signature, SymbolError, SymbolResolver, TypedArg, parse_args};
    use usdt_tracer_common::{
        ARG_CONSTANT, ARG_MEMORY, ARG_REGISTER, INDEX_SXTW, INDEX_UXTW, INDEX_WHOLE, NO_REG,
        STRING_PTR_LEN,
    };

    /// Knows one symbol, as a file's symbol table would.
    struct OneSymbol(&'static str, u64);

    impl SymbolResolver for OneSymbol {
        fn resolve(&self, name: &str) -> Result<u64, SymbolError> {
            if name == self.0 {
                Ok(self.1)
            } else {
                Err(SymbolError::NotFound)
            }
        }
    }

    fn probe(args: &str, address: u64, symbols: &dyn SymbolResolver) -> Probe {
        Probe {
            provider: "p".into(),
            name: "n".into(),
            address,
            file_offset: address,
            semaphore: None,
            semaphore_offset: None,
            args: args.into(),
            arg_specs: parse_args(Arch::X86_64, args, symbols),
            signature: None,
        }
    }

    fn plan(args: &str) -> (SitePlan, SiteDecoding) {
        plan_site(Arch::X86_64, &probe(args, 0x1000, &NoSymbols), 3, &[]).unwrap()
    }

    #[test]
    fn registers_of_every_width() {
        let (site, decoding) = plan("-1@%ah 2@%cx -4@%edi 8@%r15");
        assert_eq!(site.probe_id, 3);
        assert_eq!(site.arg_count, 4);
        assert_eq!(site.string_count, 0);
        let ah = site.args[0];
        assert_eq!(
            (ah.kind, ah.reg, ah.shift, ah.size, ah.signed),
            (ARG_REGISTER, 80, 8, 1, 1)
        );
        let cx = site.args[1];
        assert_eq!(
            (cx.kind, cx.reg, cx.shift, cx.size, cx.signed),
            (ARG_REGISTER, 88, 0, 2, 0)
        );
        assert_eq!((site.args[2].reg, site.args[2].size), (112, 4));
        assert_eq!(site.args[3].reg, 0);
        assert_eq!(
            decoding.decoders[0],
            Decoder::Int {
                slot: 0,
                signed: true
            }
        );
        assert_eq!(
            decoding.decoders[1],
            Decoder::Int {
                slot: 1,
                signed: false
            }
        );
        assert!(decoding.names.is_empty());
    }

    #[test]
    fn memory_operands() {
        let (site, _) = plan("-4@-12(%rsp) -8@(%rcx,%rax,8) 2@16(%rbp,%rdx)");
        let stack = site.args[0];
        assert_eq!(
            (stack.kind, stack.reg, stack.value, stack.index_reg),
            (ARG_MEMORY, 152, -12, NO_REG)
        );
        let indexed = site.args[1];
        assert_eq!(
            (indexed.reg, indexed.index_reg, indexed.scale, indexed.value),
            (88, 80, 8, 0)
        );
        let scale_one = site.args[2];
        assert_eq!(
            (
                scale_one.reg,
                scale_one.index_reg,
                scale_one.scale,
                scale_one.value
            ),
            (32, 96, 1, 16)
        );
    }

    #[test]
    fn aarch64_extended_index_registers() {
        // aarch64 pt_regs: x0..x30 at 8 * n.
        let args = "-1@[x3, w0, sxtw] 1@[x2, w1, uxtw #2] -8@[sp, x7, lsl #3]";
        let mut site_probe = probe(args, 0x1000, &NoSymbols);
        site_probe.arg_specs = parse_args(Arch::AArch64, args, &NoSymbols);
        let (site, _) = plan_site(Arch::AArch64, &site_probe, 0, &[]).unwrap();
        let planned: Vec<_> = site.args[..3]
            .iter()
            .map(|a| (a.kind, a.reg, a.index_reg, a.index_extend, a.scale))
            .collect();
        assert_eq!(
            planned,
            [
                (ARG_MEMORY, 24, 0, INDEX_SXTW, 1),
                (ARG_MEMORY, 16, 8, INDEX_UXTW, 4),
                (ARG_MEMORY, 248, 56, INDEX_WHOLE, 8),
            ]
        );
    }

    #[test]
    fn link_time_addresses_are_relative_to_the_probe() {
        let symbols = OneSymbol("g_i32", 0x40b0);
        let (site, _) = plan_site(
            Arch::X86_64,
            &probe("-4@g_i32(%rip) 8@g_i32+8(%rip)", 0x1310, &symbols),
            0,
            &[],
        )
        .unwrap();
        assert_eq!((site.args[0].kind, site.args[0].reg), (ARG_MEMORY, 128));
        assert_eq!(site.args[0].value, 0x40b0 - 0x1310);
        assert_eq!(site.args[1].value, 0x40b8 - 0x1310);
        // An address below the probe gives a negative displacement.
        let (site, _) = plan_site(
            Arch::X86_64,
            &probe("8@g_i32(%rip)", 0x9000, &symbols),
            0,
            &[],
        )
        .unwrap();
        assert_eq!(site.args[0].value, 0x40b0 - 0x9000);
    }

    #[test]
    fn indexed_globals_without_a_base_are_relative_to_the_probe() {
        // Non-PIE `g_array32(,%rax,4)`: ip + (address - probe) + rax*4.
        let symbols = OneSymbol("g_array32", 0x404060);
        let (site, _) = plan_site(
            Arch::X86_64,
            &probe(
                "-4@g_array32(,%rax,4) 8@g_array32+8(,%rdx)",
                0x401136,
                &symbols,
            ),
            0,
            &[],
        )
        .unwrap();
        let first = site.args[0];
        assert_eq!(
            (
                first.kind,
                first.reg,
                first.value,
                first.index_reg,
                first.scale
            ),
            (ARG_MEMORY, 128, 0x404060 - 0x401136, 80, 4)
        );
        let second = site.args[1];
        assert_eq!(
            (second.value, second.index_reg, second.scale),
            (0x404068 - 0x401136, 96, 1)
        );
    }

    #[test]
    fn constants_are_truncated_and_extended_like_registers() {
        let (site, _) = plan("-4@$-1 4@$-1 -1@$255 8@$-9223372036854775808 2@$65536");
        let values: Vec<i64> = site.args[..5].iter().map(|a| a.value).collect();
        assert_eq!(values, [-1, 0xffff_ffff, -1, i64::MIN, 0]);
        assert!(site.args[..5].iter().all(|a| a.kind == ARG_CONSTANT));
    }

    #[test]
    fn typed_metadata_turns_pairs_into_strings() {
        let mut site_probe = probe(
            "8@%rax 8@0(%rdx) 8@8(%rdx) 8@%rcx 4@%esi",
            0x1000,
            &NoSymbols,
        );
        site_probe.signature = Some(Signature {
            guarded: true,
            args: vec![
                TypedArg {
                    name: "id".into(),
                    kind: ArgKind::U64,
                },
                TypedArg {
                    name: "path".into(),
                    kind: ArgKind::Str,
                },
                TypedArg {
                    name: "label".into(),
                    kind: ArgKind::CStr,
                },
                TypedArg {
                    name: "ratio".into(),
                    kind: ArgKind::F32,
                },
            ],
        });
        let (site, decoding) = plan_site(Arch::X86_64, &site_probe, 0, &[]).unwrap();
        assert_eq!(
            decoding.decoders,
            [
                Decoder::Int {
                    slot: 0,
                    signed: false
                },
                Decoder::Str {
                    slot: 1,
                    pair: true
                },
                Decoder::Str {
                    slot: 3,
                    pair: false
                },
                Decoder::F32(4),
            ]
        );
        assert_eq!(&*decoding.names, ["id", "path", "label", "ratio"]);
        assert_eq!(site.args[1].string, STRING_PTR_LEN);
        assert_eq!(site.args[2].string, STRING_NONE);
        assert_eq!(site.args[3].string, STRING_CSTR);
        assert_eq!(site.string_count, 2);
    }

    #[test]
    fn metadata_that_does_not_fit_is_ignored() {
        let mut site_probe = probe("8@%rax 8@%rdx", 0x1000, &NoSymbols);
        site_probe.signature = Some(Signature {
            guarded: false,
            args: vec![
                TypedArg {
                    name: "path".into(),
                    kind: ArgKind::Str,
                },
                TypedArg {
                    name: "x".into(),
                    kind: ArgKind::U8,
                },
            ],
        });
        let (_, decoding) = plan_site(Arch::X86_64, &site_probe, 0, &[1]).unwrap();
        assert_eq!(
            decoding.decoders,
            [
                Decoder::Int {
                    slot: 0,
                    signed: false
                },
                Decoder::Str {
                    slot: 1,
                    pair: false
                }
            ]
        );
        assert!(decoding.names.is_empty());
    }

    #[test]
    fn float_operands_decode_as_floats() {
        let (_, decoding) = plan("8f@%rax 4f@%edx 8@%rcx");
        assert_eq!(decoding.decoders[..2], [Decoder::F64(0), Decoder::F32(1)]);
    }

    #[test]
    fn unreadable_operands_are_errors_naming_the_argument() {
        let error = plan_site(
            Arch::X86_64,
            &probe("-4@$1 8@%xmm0", 0x1000, &NoSymbols),
            0,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            error.0,
            "unsupported argument 1 `8@%xmm0`: register xmm0 cannot be read"
        );
        let error =
            plan_site(Arch::AArch64, &probe("8@%rax", 0x1000, &NoSymbols), 0, &[]).unwrap_err();
        assert!(error.0.contains("is not a AArch64 register"), "{}", error.0);
        let error = plan_site(
            Arch::X86_64,
            &probe("8@unknown_symbol(%rip)", 0x1000, &NoSymbols),
            0,
            &[],
        )
        .unwrap_err();
        assert!(error.0.starts_with("unsupported argument: "), "{}", error.0);
    }
}
