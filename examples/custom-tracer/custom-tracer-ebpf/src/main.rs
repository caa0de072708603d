//! The custom-tracer example's BPF program: for every hit of the probes it
//! is attached to, sends the cookie, every argument and the string
//! arguments to user space through the `HITS` ring buffer.
#![no_std]
#![no_main]

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use aya_ebpf::macros::{map, uprobe, uretprobe};
use aya_ebpf::maps::RingBuf;
use aya_ebpf::programs::{ProbeContext, RetProbeContext};
use custom_tracer_common::{CSTR_SHIFT, Hit, MAX_ARGS, MAX_STRINGS};
use usdt_aya_ebpf::{STRING_CSTR, STRING_PTR_LEN, UsdtContext};

/// Hits on their way to user space.
#[map]
static HITS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// One perf-event uprobe per site. Sleepable, so that it can read strings
/// the process has not touched yet.
#[uprobe(sleepable)]
pub fn on_probe(ctx: ProbeContext) -> u32 {
    record::<true>(&ctx)
}

/// A plain (not sleepable) uprobe: strings on pages the process has not
/// touched read as faults.
#[uprobe]
pub fn on_probe_plain(ctx: ProbeContext) -> u32 {
    record::<false>(&ctx)
}

/// One uprobe_multi link per file (kernels 6.6+).
#[uprobe(multi, sleepable)]
pub fn on_probe_multi(ctx: ProbeContext) -> u32 {
    record::<true>(&ctx)
}

/// A return probe: `usdt-aya` refuses to attach it to a USDT probe, which
/// is a point inside a function rather than its return (the tests check
/// the refusal). It does nothing.
#[uretprobe]
pub fn on_return(_ctx: RetProbeContext) -> u32 {
    0
}

/// Sends one [`Hit`]; `SLEEPABLE` programs fault in the pages of
/// arguments in memory and of strings.
#[inline(always)]
fn record<const SLEEPABLE: bool>(ctx: &ProbeContext) -> u32 {
    let Ok(usdt) = UsdtContext::new(ctx) else {
        return 1;
    };
    let Some(mut entry) = HITS.reserve::<Hit>(0) else {
        return 1;
    };
    let hit = entry.as_mut_ptr();
    // SAFETY: `hit` points at a reserved record of the size of `Hit`, which
    // is plain data; every field is written before the record is submitted.
    let hit = unsafe {
        core::ptr::write_bytes(hit, 0, 1);
        &mut *hit
    };
    hit.cookie = usdt.cookie();
    hit.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    hit.arg_count = usdt.arg_count() as u32;
    let cstrs = (hit.cookie >> CSTR_SHIFT) as u32;
    for n in 0..MAX_ARGS {
        if n >= usdt.arg_count() {
            break;
        }
        let value = if SLEEPABLE {
            usdt.arg_sleepable(n)
        } else {
            usdt.arg(n)
        };
        match value {
            Ok(value) => hit.args[n] = value,
            Err(_) => hit.faults |= 1 << n,
        }
        let kind = usdt.string_kind(n);
        let cstr = kind == STRING_CSTR || cstrs & (1 << n) != 0;
        if !cstr && kind != STRING_PTR_LEN {
            continue;
        }
        let index = hit.string_count as usize;
        if index >= MAX_STRINGS {
            continue;
        }
        let text = &mut hit.strings[index];
        text.arg = n as u32;
        let read = match (cstr, SLEEPABLE) {
            (true, true) => usdt
                .read_str_sleepable(n, &mut text.bytes)
                .map(|s| s.len() as u64),
            (true, false) => usdt.read_str(n, &mut text.bytes).map(|s| s.len() as u64),
            (false, true) => usdt
                .read_slice_sleepable(n, &mut text.bytes)
                .map(|(_, len)| len),
            (false, false) => usdt.read_slice(n, &mut text.bytes).map(|(_, len)| len),
        };
        match read {
            Ok(len) => text.len = len as u32,
            Err(_) => hit.faults |= 1 << n,
        }
        hit.string_count += 1;
    }
    entry.submit(0);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// License of the program: GPL, so it may call GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
