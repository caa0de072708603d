//! Argument specs: where the BPF program finds each argument of a probe
//! site, computed from the site's note (as libbpf's `usdt.c` parses
//! `usdt_arg_spec`s).
//!
//! A site's note arguments ("slots") become [`UsdtArgSpec`]s: a constant, a
//! register, or memory at a register (+ index * scale) + displacement,
//! the index the whole register or, on aarch64, its low 32 bits sign- or
//! zero-extended (`[sp, w0, sxtw]`, `[x2, w1, uxtw]`).
//! Operands at a fixed link-time address (x86-64 `sym(%rip)`, non-PIE
//! `sym` and `sym(,%rax,4)`) are planned relative to the instruction
//! pointer: at a probe hit it holds the probe's runtime address, so
//! `ip + (address - probe address) [+ index * scale]` is the operand's
//! runtime address in every process, whatever its load bias.

use crate::regs;
use usdt_aya_common::{
    ARG_CONSTANT, ARG_MEMORY, ARG_REGISTER, INDEX_SXTW, INDEX_UXTW, INDEX_WHOLE, MAX_ARGS, NO_REG,
    STRING_CSTR, STRING_NONE, STRING_PTR_LEN, UsdtArgSpec, UsdtSpec, extend,
};
use usdt_reader::{Arch, ArgKind, ArgLocation, ArgSpec, Index, IndexExtend, Probe, Register};

/// Why a probe site's arguments cannot be read by a BPF program: the
/// message names the argument and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// The specs of every argument of `probe`, a site of an `arch` module, in
/// note order.
pub fn arg_specs(arch: Arch, probe: &Probe) -> Result<Vec<UsdtArgSpec>, SpecError> {
    let specs = probe
        .arg_specs
        .as_ref()
        .map_err(|e| SpecError(format!("unsupported argument: {e}")))?;
    if specs.len() > MAX_ARGS {
        return Err(SpecError(format!(
            "{} arguments (at most {MAX_ARGS})",
            specs.len()
        )));
    }
    specs
        .iter()
        .enumerate()
        .map(|(slot, spec)| {
            arg_spec(arch, spec, probe.address).map_err(|reason| {
                SpecError(format!(
                    "unsupported argument {slot} `{}`: {reason}",
                    probe.args.split_whitespace().nth(slot).unwrap_or("")
                ))
            })
        })
        .collect()
}

/// The whole spec of `probe` for `usdt-aya-ebpf`: its arguments, the
/// strings typed metadata declares ([`UsdtArgSpec::string`]) and `cookie`.
pub fn site_spec(arch: Arch, probe: &Probe, cookie: u64) -> Result<UsdtSpec, SpecError> {
    let args = arg_specs(arch, probe)?;
    let mut spec = UsdtSpec {
        cookie,
        arg_count: args.len() as u8,
        ..UsdtSpec::default()
    };
    spec.args[..args.len()].copy_from_slice(&args);
    if let Some(signature) = &probe.signature {
        let kinds: Vec<ArgKind> = signature.args.iter().map(|arg| arg.kind).collect();
        if let Some(hints) = string_slots(&kinds, args.len()) {
            for (slot, hint) in hints {
                spec.args[slot].string = hint;
            }
        }
    }
    Ok(spec)
}

/// The note slot (the index [`UsdtContext::arg`] takes) of the declared
/// argument `name` of `probe`, a site emitted by this SDK with typed
/// metadata: `status` is slot 3 in `(id: u64, path: &str, status: u16)`,
/// as the string takes two slots (pointer and length). `None` without
/// such an argument, or when the metadata does not fit the note.
///
/// [`UsdtContext::arg`]: https://docs.rs/usdt-aya-ebpf
pub fn arg_slot(probe: &Probe, name: &str) -> Option<usize> {
    let signature = probe.signature.as_ref()?;
    let specs = probe.arg_specs.as_ref().ok()?;
    let slots: usize = signature.args.iter().map(|arg| arg.kind.slots()).sum();
    if slots != specs.len() {
        return None;
    }
    let mut slot = 0;
    for arg in &signature.args {
        if arg.name == name {
            return Some(slot);
        }
        slot += arg.kind.slots();
    }
    None
}

/// The string slots typed metadata declares: `(slot, STRING_*)` for each
/// `&str`, `&[u8]` or JSON (pointer and length) and `&CStr`; `None` when
/// the kinds do not fit `slots` note arguments.
fn string_slots(kinds: &[ArgKind], slots: usize) -> Option<Vec<(usize, u8)>> {
    if kinds.iter().map(|kind| kind.slots()).sum::<usize>() != slots {
        return None;
    }
    let mut slot = 0;
    let mut hints = Vec::new();
    for kind in kinds {
        match kind {
            ArgKind::Str | ArgKind::Bytes | ArgKind::Json => hints.push((slot, STRING_PTR_LEN)),
            ArgKind::CStr => hints.push((slot, STRING_CSTR)),
            _ => {}
        }
        slot += kind.slots();
    }
    Some(hints)
}

/// The spec of one note argument of a probe at link-time address
/// `probe_address`; the error says why no uprobe can read it.
pub fn arg_spec(arch: Arch, spec: &ArgSpec, probe_address: u64) -> Result<UsdtArgSpec, String> {
    if !matches!(spec.size, 1 | 2 | 4 | 8) {
        return Err(format!("size {} (expected 1, 2, 4 or 8)", spec.size));
    }
    let mut plan = UsdtArgSpec {
        size: spec.size,
        signed: spec.signed as u8,
        index_reg: NO_REG,
        scale: 1,
        string: STRING_NONE,
        ..UsdtArgSpec::default()
    };
    match &spec.location {
        ArgLocation::Constant(value) => {
            plan.kind = ARG_CONSTANT;
            plan.value = extend(*value as u64, spec.size, spec.signed) as i64;
        }
        ArgLocation::Register(register) => {
            plan.kind = ARG_REGISTER;
            plan.reg = register_offset(arch, register)?;
            plan.shift = register.bit_shift;
        }
        ArgLocation::Memory {
            base,
            index,
            offset,
        } => {
            plan.kind = ARG_MEMORY;
            plan.reg = register_offset(arch, base)?;
            plan.value = *offset;
            plan_index(arch, index, &mut plan)?;
        }
        ArgLocation::Address { address, index, .. } => {
            plan.kind = ARG_MEMORY;
            plan.reg = regs::ip_offset(arch)
                .ok_or_else(|| format!("no instruction pointer on {arch:?}"))?;
            plan.value = address.wrapping_sub(probe_address) as i64;
            plan_index(arch, index, &mut plan)?;
        }
    }
    Ok(plan)
}

/// Sets the plan's index register, extension and scale, if the operand
/// has an index.
fn plan_index(arch: Arch, index: &Option<Index>, plan: &mut UsdtArgSpec) -> Result<(), String> {
    if let Some(index) = index {
        if !matches!(index.scale, 1 | 2 | 4 | 8) {
            return Err(format!("index scale {}", index.scale));
        }
        plan.index_reg = register_offset(arch, &index.register)?;
        plan.index_extend = match index.extend {
            IndexExtend::Whole => INDEX_WHOLE,
            IndexExtend::ZeroExtend32 => INDEX_UXTW,
            IndexExtend::SignExtend32 => INDEX_SXTW,
        };
        plan.scale = index.scale;
    }
    Ok(())
}

fn register_offset(arch: Arch, register: &Register) -> Result<u16, String> {
    if register.arch != arch {
        return Err(format!(
            "register {} is not a {arch:?} register",
            register.name()
        ));
    }
    regs::register_offset(arch, register.dwarf)
        .ok_or_else(|| format!("register {} cannot be read", register.name()))
}
