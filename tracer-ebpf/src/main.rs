//! The USDT tracer's BPF program.
//!
//! One generic uprobe program, [`usdt_site`], is attached to every probe
//! site. The attach cookie is the site's index in the `USDT_SITES` array,
//! whose entry (a [`SitePlan`] computed by user space) says where each
//! argument lives. The program reserves a record in the `USDT_EVENTS` ring
//! buffer, reads the arguments into it, copies the strings the plan asks
//! for and submits it; when the buffer is full it counts a drop in
//! `USDT_DROPS`. See `tracer-common` for the layouts.
//!
//! The program is sleepable: a read that fails because the page is not
//! mapped in yet (a string literal or a global the process never touched)
//! is retried with `bpf_copy_from_user`, which faults the page in.
#![no_std]
#![no_main]
// The BPF target has no atomic read-modify-write in `core::sync::atomic`;
// the intrinsic lowers to the BPF atomic add instruction.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use aya_ebpf::EbpfContext;
use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel,
    generated,
};
use aya_ebpf::macros::{map, uprobe};
use aya_ebpf::maps::{Array, PerCpuArray, RingBuf};
use aya_ebpf::programs::ProbeContext;
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use core::mem::MaybeUninit;
use tracer_common::{
    ACTION_STREAM, ARG_CONSTANT, ARG_MEMORY, ARG_REGISTER, ArgPlan, EVENT_FIXED_SIZE,
    EVENT_HEADER_SIZE, EventHeader, MAX_ARGS, NO_REG, STRING_CAP, STRING_CLASSES, STRING_CSTR,
    STRING_PTR_LEN, SitePlan,
};

/// Default ring buffer size; user space sets the real one at load time.
const DEFAULT_RING_BYTES: u32 = 1 << 22;

/// Records per CPU between two reader wake-ups (see [`wakeup_flags`]).
const WAKEUP_EVERY: u64 = 1024;

/// Page size assumed when faulting in the second page of a string.
const PAGE: u64 = 4096;

/// Site plans, indexed by attach cookie. User space sets the size.
#[map(name = "USDT_SITES")]
static USDT_SITES: Array<SitePlan> = Array::with_max_entries(1, 0);

/// Event records for user space.
#[map(name = "USDT_EVENTS")]
static USDT_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Records that did not fit in `USDT_EVENTS`, at index 0.
#[map(name = "USDT_DROPS")]
static USDT_DROPS: Array<u64> = Array::with_max_entries(1, 0);

/// Records written on each CPU, for [`wakeup_flags`].
#[map(name = "USDT_RECORDS")]
static USDT_RECORDS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Non-zero at index 0 once user space has attached every site.
#[map(name = "USDT_CONTROL")]
static USDT_CONTROL: Array<u32> = Array::with_max_entries(1, 0);

/// The uprobe program attached to every probe site.
#[uprobe(sleepable)]
pub fn usdt_site(ctx: ProbeContext) -> u32 {
    if USDT_CONTROL.get(0).is_none_or(|armed| *armed == 0) {
        return 0;
    }
    // SAFETY: the helper only reads the cookie of the running program's link.
    let cookie = unsafe { generated::bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let Some(plan) = USDT_SITES.get(cookie) else {
        return 0;
    };
    if plan.action != ACTION_STREAM {
        return 0;
    }
    // The fixed part is built once, on the stack; then one copy of the
    // record code per string-area class reserves a size the verifier knows.
    let mut header = MaybeUninit::<EventHeader>::uninit();
    // SAFETY: fill_header writes every field of the header (no zeroing
    // first: that would cost a memset call).
    let header = unsafe {
        fill_header(&ctx, plan, cookie, header.as_mut_ptr());
        header.assume_init()
    };
    let strings = plan.string_count as usize;
    if strings == STRING_CLASSES[0] {
        // No strings: a short record, the fixed part and the site's
        // arguments, copied from the stack by the helper.
        // arg_count <= MAX_ARGS < 16; the mask shows the verifier that the
        // length stays inside the header.
        let count = header.arg_count as usize & 15;
        // SAFETY: the header is initialized and EVENT_FIXED_SIZE + 8 * 15
        // bytes fit in it.
        let record = unsafe {
            core::slice::from_raw_parts(
                (&header as *const EventHeader).cast::<u8>(),
                EVENT_FIXED_SIZE + 8 * count,
            )
        };
        if USDT_EVENTS.output::<[u8]>(record, wakeup_flags()).is_err() {
            count_drop();
        }
    } else if strings <= STRING_CLASSES[1] {
        stream::<{ STRING_CLASSES[1] * STRING_CAP }>(plan, &header);
    } else if strings <= STRING_CLASSES[2] {
        stream::<{ STRING_CLASSES[2] * STRING_CAP }>(plan, &header);
    } else if strings <= STRING_CLASSES[3] {
        stream::<{ STRING_CLASSES[3] * STRING_CAP }>(plan, &header);
    } else {
        stream::<{ STRING_CLASSES[4] * STRING_CAP }>(plan, &header);
    }
    0
}

/// Builds and submits one record with a string area of `AREA` bytes.
#[inline(always)]
fn stream<const AREA: usize>(plan: &SitePlan, fixed: &EventHeader) {
    let Some(mut entry) = USDT_EVENTS.reserve_bytes(EVENT_HEADER_SIZE + AREA, 0) else {
        count_drop();
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: the entry holds EVENT_HEADER_SIZE + AREA bytes and ring buffer
    // records are 8-byte aligned, as EventHeader needs.
    let header = unsafe { &mut *record.cast::<EventHeader>() };
    *header = *fixed;
    if AREA > 0 {
        // SAFETY: the string area follows the header inside the entry.
        let area = unsafe { record.add(EVENT_HEADER_SIZE) };
        copy_strings::<AREA>(plan, header, area);
    } else {
        header.string_bytes = 0;
    }
    entry.submit(wakeup_flags());
}

/// Wake-up flags for a record: the reader is woken for one record in
/// [`WAKEUP_EVERY`] on each CPU and otherwise finds the records on its next
/// periodic poll, which keeps wake-ups (run on the traced thread's CPU) off
/// the per-hit cost.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let wake = match USDT_RECORDS.get_ptr_mut(0) {
        Some(count) => {
            // SAFETY: this CPU's counter; a lost increment only shifts the
            // next wake-up.
            unsafe {
                *count = (*count).wrapping_add(1);
                *count % WAKEUP_EVERY == 0
            }
        }
        None => true,
    };
    (if wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }) as u64
}

/// Fills the fixed part of a record: who, when, and every argument.
///
/// # Safety
/// `header` must be valid for writes; every field is written.
#[inline(always)]
unsafe fn fill_header(ctx: &ProbeContext, plan: &SitePlan, cookie: u32, header: *mut EventHeader) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let count = if (plan.arg_count as usize) < MAX_ARGS {
        plan.arg_count as usize
    } else {
        MAX_ARGS
    };
    // SAFETY: plain writes through a valid pointer; the helpers have no
    // preconditions.
    unsafe {
        (*header).timestamp_ns = bpf_ktime_get_ns();
        (*header).pid = (pid_tgid >> 32) as u32;
        (*header).tid = pid_tgid as u32;
        (*header).cpu = bpf_get_smp_processor_id();
        (*header).probe_id = plan.probe_id;
        (*header).site = cookie;
        (*header).arg_count = count as u8;
        (*header)._reserved = 0;
        (*header).string_bytes = 0;
        (*header).truncated = 0;
        (*header)._pad = 0;
        let mut faults: u16 = 0;
        for i in 0..MAX_ARGS {
            (*header).string_len[i] = 0;
            let value = if i < count {
                read_arg(ctx, &plan.args[i])
            } else {
                Some(0)
            };
            (*header).args[i] = match value {
                Some(value) => value,
                None => {
                    faults |= 1 << i;
                    0
                }
            };
        }
        (*header).faults = faults;
    }
}

/// Copies the strings the plan asks for into the `AREA`-byte area, packed
/// in argument order.
#[inline(always)]
fn copy_strings<const AREA: usize>(plan: &SitePlan, header: &mut EventHeader, area: *mut u8) {
    let count = header.arg_count as usize;
    // The running length lives in the record, not in a register: the
    // verifier then sees the same (unknown, bounded) offset on every path
    // through the loop and can prune its states.
    header.string_bytes = 0;
    for i in 0..MAX_ARGS {
        if i >= count {
            break;
        }
        let mode = plan.args[i].string;
        if mode != STRING_CSTR && mode != STRING_PTR_LEN {
            continue;
        }
        // SAFETY: a plain read of a field of our record.
        let used = unsafe { core::ptr::read_volatile(&header.string_bytes) } as usize;
        // Strings before this one took at most STRING_CAP bytes each and
        // user space sized the class for every string, so the clamp only
        // ever tells the verifier what holds anyway.
        let start = if used > AREA - STRING_CAP {
            AREA - STRING_CAP
        } else {
            used
        };
        // SAFETY: start + STRING_CAP <= AREA, inside the record.
        let dst = unsafe { area.add(start) };
        let src = header.args[i];
        let copied = if mode == STRING_CSTR {
            copy_cstr(dst, src)
        } else {
            let len = match header.args.get(i + 1) {
                Some(&len) if i + 1 < count => len,
                _ => 0,
            };
            copy_bytes(dst, src, len)
        };
        match copied {
            Some((n, cut)) => {
                header.string_len[i] = n as u16;
                if cut {
                    header.truncated |= 1 << i;
                }
                // SAFETY: a plain write of a field of our record.
                unsafe { core::ptr::write_volatile(&mut header.string_bytes, (start + n) as u32) };
            }
            None => header.faults |= 1 << i,
        }
    }
}

/// Adds one to the drop counter.
#[inline(always)]
fn count_drop() {
    if let Some(drops) = USDT_DROPS.get_ptr_mut(0) {
        // SAFETY: the pointer is the map value, valid and 8-byte aligned
        // for the program's run; the add is atomic across CPUs.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(drops, 1) };
    }
}

/// Reads one argument as its plan says, extended to 64 bits; `None` when
/// a register or user memory cannot be read.
#[inline(always)]
fn read_arg(ctx: &ProbeContext, arg: &ArgPlan) -> Option<u64> {
    let raw = match arg.kind {
        ARG_CONSTANT => return Some(arg.value as u64),
        ARG_REGISTER => read_reg(ctx, arg.reg)? >> (arg.shift & 63),
        ARG_MEMORY => {
            let base = if arg.reg == NO_REG {
                0
            } else {
                read_reg(ctx, arg.reg)?
            };
            let index = if arg.index_reg == NO_REG {
                0
            } else {
                read_reg(ctx, arg.index_reg)?.wrapping_mul(arg.scale as u64)
            };
            let address = base.wrapping_add(index).wrapping_add(arg.value as u64);
            read_user(address, arg.size)?
        }
        _ => 0,
    };
    Some(extend(raw, arg.size, arg.signed != 0))
}

/// Reads the saved user register at byte offset `offset` of `struct pt_regs`.
///
/// The first 21 words (every x86-64 register; aarch64 x0 to x20) are loaded
/// straight from the context at constant offsets, which the verifier allows
/// on every architecture and which costs no helper call; the rest (aarch64
/// x21 to x30, sp, pc) go through `bpf_probe_read_kernel`.
#[inline(always)]
fn read_reg(ctx: &ProbeContext, offset: u16) -> Option<u64> {
    let regs = ctx.as_ptr().cast::<u64>().cast_const();
    // SAFETY: each arm loads one aligned word of the context at a constant
    // offset inside every architecture's `struct pt_regs` (volatile, so the
    // compiler keeps the offsets constant instead of merging the arms).
    match offset / 8 {
        0 => Some(unsafe { core::ptr::read_volatile(regs.add(0)) }),
        1 => Some(unsafe { core::ptr::read_volatile(regs.add(1)) }),
        2 => Some(unsafe { core::ptr::read_volatile(regs.add(2)) }),
        3 => Some(unsafe { core::ptr::read_volatile(regs.add(3)) }),
        4 => Some(unsafe { core::ptr::read_volatile(regs.add(4)) }),
        5 => Some(unsafe { core::ptr::read_volatile(regs.add(5)) }),
        6 => Some(unsafe { core::ptr::read_volatile(regs.add(6)) }),
        7 => Some(unsafe { core::ptr::read_volatile(regs.add(7)) }),
        8 => Some(unsafe { core::ptr::read_volatile(regs.add(8)) }),
        9 => Some(unsafe { core::ptr::read_volatile(regs.add(9)) }),
        10 => Some(unsafe { core::ptr::read_volatile(regs.add(10)) }),
        11 => Some(unsafe { core::ptr::read_volatile(regs.add(11)) }),
        12 => Some(unsafe { core::ptr::read_volatile(regs.add(12)) }),
        13 => Some(unsafe { core::ptr::read_volatile(regs.add(13)) }),
        14 => Some(unsafe { core::ptr::read_volatile(regs.add(14)) }),
        15 => Some(unsafe { core::ptr::read_volatile(regs.add(15)) }),
        16 => Some(unsafe { core::ptr::read_volatile(regs.add(16)) }),
        17 => Some(unsafe { core::ptr::read_volatile(regs.add(17)) }),
        18 => Some(unsafe { core::ptr::read_volatile(regs.add(18)) }),
        19 => Some(unsafe { core::ptr::read_volatile(regs.add(19)) }),
        20 => Some(unsafe { core::ptr::read_volatile(regs.add(20)) }),
        // SAFETY: bpf_probe_read_kernel checks the address itself; user
        // space only plans offsets inside `struct pt_regs`.
        _ => unsafe {
            bpf_probe_read_kernel(
                ctx.as_ptr()
                    .cast::<u8>()
                    .wrapping_add(offset as usize)
                    .cast::<u64>(),
            )
        }
        .ok(),
    }
}

/// Reads `size` bytes (1, 2, 4 or 8) of user memory at `address`.
#[inline(always)]
fn read_user(address: u64, size: u8) -> Option<u64> {
    let mut value: u64 = 0;
    let dst = (&mut value as *mut u64).cast::<u8>();
    let src = address as *const u8;
    let ok = match size {
        1 => user_bytes::<1>(dst, src),
        2 => user_bytes::<2>(dst, src),
        4 => user_bytes::<4>(dst, src),
        _ => user_bytes::<8>(dst, src),
    };
    // Little endian: the low N bytes of `value` hold the N-byte value.
    if ok { Some(value) } else { None }
}

/// Copies `N` bytes of user memory, faulting the page in if needed.
#[inline(always)]
fn user_bytes<const N: u32>(dst: *mut u8, src: *const u8) -> bool {
    // SAFETY: `dst` has room for N bytes (a local u64, N <= 8); the helpers
    // check `src` themselves.
    unsafe {
        generated::bpf_probe_read_user(dst.cast(), N, src.cast()) == 0
            || generated::bpf_copy_from_user(dst.cast(), N, src.cast()) == 0
    }
}

/// Truncates `raw` to `size` bytes and sign- or zero-extends it.
#[inline(always)]
fn extend(raw: u64, size: u8, signed: bool) -> u64 {
    match (size, signed) {
        (1, true) => raw as i8 as i64 as u64,
        (1, false) => raw as u8 as u64,
        (2, true) => raw as i16 as i64 as u64,
        (2, false) => raw as u16 as u64,
        (4, true) => raw as i32 as i64 as u64,
        (4, false) => raw as u32 as u64,
        _ => raw,
    }
}

/// Copies the NUL-terminated user string at `src` to `dst` (room for
/// STRING_CAP bytes); returns its length without the NUL and whether it was
/// cut. Pages not mapped in yet are faulted in (at most two: the string's
/// first page and the next one).
#[inline(always)]
fn copy_cstr(dst: *mut u8, src: u64) -> Option<(usize, bool)> {
    let mut n = read_user_str(dst, src);
    if n <= 0 {
        fault_in(dst, src)?;
        n = read_user_str(dst, src);
    }
    if n <= 0 {
        let next_page = (src | (PAGE - 1)).wrapping_add(1);
        if next_page.wrapping_sub(src) >= STRING_CAP as u64 {
            return None;
        }
        fault_in(dst, next_page)?;
        n = read_user_str(dst, src);
    }
    if n <= 0 {
        return None;
    }
    let n = n as usize;
    if n >= STRING_CAP {
        // The helper stopped at the cap: the string was longer unless its
        // NUL sits exactly at the last copied position.
        let mut next = 1u8;
        let next_ptr = (&mut next as *mut u8).cast();
        // SAFETY: reads one byte into a local; the helper checks `src`.
        let read = unsafe {
            generated::bpf_probe_read_user(next_ptr, 1, (src + STRING_CAP as u64 - 1) as *const _)
        };
        return Some((STRING_CAP - 1, read != 0 || next != 0));
    }
    Some((n - 1, false))
}

/// `bpf_probe_read_user_str` of at most STRING_CAP bytes.
#[inline(always)]
fn read_user_str(dst: *mut u8, src: u64) -> i64 {
    // SAFETY: `dst` has room for STRING_CAP bytes (see the callers); the
    // helper checks `src` and writes at most STRING_CAP bytes.
    unsafe { generated::bpf_probe_read_user_str(dst.cast(), STRING_CAP as u32, src as *const _) }
}

/// Faults in the user page holding `address` by copying one byte of it to
/// `scratch` (overwritten afterwards); `None` if the address is invalid.
#[inline(always)]
fn fault_in(scratch: *mut u8, address: u64) -> Option<()> {
    // SAFETY: `scratch` has room for one byte; the helper checks `address`
    // and may sleep, which this (sleepable) program allows.
    let r = unsafe { generated::bpf_copy_from_user(scratch.cast(), 1, address as *const _) };
    if r == 0 { Some(()) } else { None }
}

/// Copies `len` bytes of user memory at `src` to `dst` (room for
/// STRING_CAP bytes), truncated to STRING_CAP; returns the bytes copied and
/// whether that was fewer than `len`.
#[inline(always)]
fn copy_bytes(dst: *mut u8, src: u64, len: u64) -> Option<(usize, bool)> {
    let cut = len > STRING_CAP as u64;
    let n = if cut { STRING_CAP } else { len as usize };
    if n == 0 {
        return Some((0, false));
    }
    // SAFETY: `dst` has room for STRING_CAP bytes and n <= STRING_CAP; the
    // helpers check `src`; copy_from_user may fault pages in (sleepable).
    let ok = unsafe {
        generated::bpf_probe_read_user(dst.cast(), n as u32, src as *const _) == 0
            || generated::bpf_copy_from_user(dst.cast(), n as u32, src as *const _) == 0
    };
    if ok { Some((n, cut)) } else { None }
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
