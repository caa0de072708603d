//! The USDT tracer's BPF program.
//!
//! One generic uprobe program, [`usdt_site`], is attached to every probe
//! site. The attach cookie is the site's index in the `USDT_SITES` array,
//! whose entry (a [`SitePlan`] computed by user space) says where each
//! argument lives and what to do with the hit:
//!
//! - stream it: reserve a record in the `USDT_EVENTS` ring buffer, read the
//!   arguments into it, copy the strings the plan asks for and submit it;
//!   when the buffer is full count a drop in `USDT_DROPS`;
//! - or aggregate it in place: count it under a key (nothing, the pid or
//!   tid, an integer or string argument), add it to a log2 histogram of an
//!   argument, or pair a latency start with its end by key and add the
//!   elapsed microseconds to a histogram. Counters live in the
//!   `USDT_AGGREGATES` hash map, pending starts in `USDT_STARTS`; a full
//!   map is counted in `USDT_AGG_ERRORS`.
//!
//! See `usdt-tracer-common` for the layouts and the map and program names.
//!
//! Arguments and the strings they point to are read by `usdt-aya-ebpf`'s
//! functions, which `UsdtContext` reads through too, from each argument's
//! spec in the plan. The program is sleepable: a read that fails because
//! the page is not mapped in yet (a string literal or a global the process
//! never touched) is retried with `bpf_copy_from_user`, which faults the
//! page in.
//!
//! Older kernels get the same program under two read-only switches user
//! space sets at load time, which the verifier knows and prunes by:
//! `USDT_SLEEPABLE` 0 (kernels before 6.0, no sleepable uprobes; loaded as
//! [`usdt_site_nosleep`]) reports such a page's memory unreadable, and
//! `USDT_COOKIES` 0 (before 5.15, no BPF cookies) finds the site's index by
//! the instruction pointer in `USDT_SITE_IPS` instead of the cookie.
//! Others spare the verifier code a trace cannot reach: `USDT_OPTIONS`
//! (filters, stacks), `USDT_STACK_COUNTS`, `USDT_ACTIONS` (the actions any
//! site may take) and `USDT_STRING_CLASS` (the largest string area a
//! streamed site may need).
#![no_std]
#![no_main]
// The BPF target has no atomic read-modify-write in `core::sync::atomic`;
// the intrinsic lowers to the BPF atomic add instruction.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use aya_ebpf::EbpfContext;
use aya_ebpf::bindings::{BPF_ANY, BPF_F_NO_PREALLOC, BPF_NOEXIST};
use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, generated,
};
use aya_ebpf::macros::{map, uprobe};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::ProbeContext;
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use core::mem::MaybeUninit;
use usdt_aya_common::same_name;
use usdt_aya_ebpf::{Paging, read_bytes, read_cstr, read_register};
use usdt_tracer_common::{
    ACTION_COUNT, ACTION_HISTOGRAM, ACTION_LATENCY_END, ACTION_LATENCY_START, ACTION_STREAM,
    AGG_ERR_COUNT, AGG_ERR_FAULT, AGG_ERR_FULL, AGG_ERR_STARTS_FULL, AGG_ERR_UNMATCHED,
    AGG_ERRORS_MAP, AGGREGATES_MAP, ARG_COUNT_MASK, AggKey, ArgPlan, CONTROL_MAP, COOKIES_GLOBAL,
    CounterKey, TEXT_AGGREGATES_MAP,
    Control, DROPS_MAP, EVENT_FIXED_SIZE, EVENT_HEADER_SIZE, EVENTS_MAP, EventHeader,
    HISTOGRAM_SUM, KEY_ARG, KEY_NONE, KEY_PID, KEY_STRING, KEY_TEXT_CAP, KEY_TID, MAX_ARGS,
    OPTIONS_GLOBAL, PENDING_MAP, PROGRAM_NAME, PROGRAM_NAME_MULTI, PROGRAM_NAME_NOSLEEP,
    SITE_IPS_MAP, SITES_MAP, SLEEPABLE_GLOBAL, STACK_COUNTS_GLOBAL, STARTS_MAP, STRING_CAP,
    STRING_CLASSES, STRING_CSTR, STRING_PTR_LEN, SiteIpKey, SitePlan, StartKey, histogram_slot,
    log2_bucket,
};
use usdt_tracer_common::{ACTIONS_GLOBAL, STRING_CLASS_GLOBAL, action_bit};
use usdt_tracer_common::{
    CMP_EQ, CMP_GE, CMP_GT, CMP_LE, CMP_LT, CMP_NE, FILTER_AND, FILTER_COMPARE, FILTER_MAX_INSNS,
    FILTER_MAX_STRINGS, FILTER_NOT, FILTER_OR, FILTER_STRING, FILTER_STRING_CAP, FilterOperand,
    FilterString, NO_LENGTH, OPERAND_ARG, OPERAND_CONSTANT, OPERAND_PID, OPERAND_TID,
    SITE_OPTIONS_MAP, STACK_AREA_SIZE, STACK_DEPTH, SiteOptions,
};
use usdt_tracer_common::{
    CountedStack, KEY_STACK, STACK_SCRATCH_MAP, STACKS_MAP, StackScratch, stack_hash,
};

/// Default ring buffer size; user space sets the real one at load time.
const DEFAULT_RING_BYTES: u32 = 1 << 22;

/// Fails the build unless the item `$item` (a map or the program, which aya
/// names after their static or function) has the name the shared constant
/// `$name` gives user space.
macro_rules! named {
    ($item:ident, $name:path) => {
        const _: () = assert!(
            same_name(stringify!($item), $name),
            concat!(
                "`",
                stringify!($item),
                "` is not named as `",
                stringify!($name),
                "` says"
            )
        );
    };
}

/// Declares a map (named after its static) whose name is the shared
/// constant `$name`.
macro_rules! shared_map {
    ($name:path, $(#[$attr:meta])* static $ident:ident: $ty:ty = $init:expr;) => {
        $(#[$attr])*
        #[map]
        static $ident: $ty = $init;
        named!($ident, $name);
    };
}

shared_map! {
    SITES_MAP,
    /// Site plans, indexed by attach cookie. User space sets the size.
    static USDT_SITES: Array<SitePlan> = Array::with_max_entries(1, 0);
}

shared_map! {
    SITE_IPS_MAP,
    /// Site indexes by runtime address, without BPF cookies. User space sets
    /// the size.
    static USDT_SITE_IPS: HashMap<SiteIpKey, u32> = HashMap::with_max_entries(1, 0);
}

/// Whether the program may fault pages in (see the crate's docs); set by
/// user space, read-only to the program.
#[unsafe(no_mangle)]
static USDT_SLEEPABLE: u8 = 1;
named!(USDT_SLEEPABLE, SLEEPABLE_GLOBAL);

/// Whether the kernel has BPF cookies (see the crate's docs); set by user
/// space, read-only to the program.
#[unsafe(no_mangle)]
static USDT_COOKIES: u8 = 1;
named!(USDT_COOKIES, COOKIES_GLOBAL);

/// Whether the trace has options (a filter, user stacks); set by user
/// space, read-only to the program. At 1 streamed hits take
/// [`stream_with_options`] instead of [`stream_site`], so that the verifier
/// follows the filter and stack code in place of three string classes:
/// older verifiers (6.1's, 5.10's) could not follow both within their
/// limit. At 0 it skips the filter and stack code.
#[unsafe(no_mangle)]
static USDT_OPTIONS: u8 = 1;
named!(USDT_OPTIONS, OPTIONS_GLOBAL);

/// Whether hits are counted by user stack; set by user space, read-only to
/// the program (at 0 the verifier skips the stack-counting code).
#[unsafe(no_mangle)]
static USDT_STACK_COUNTS: u8 = 1;
named!(USDT_STACK_COUNTS, STACK_COUNTS_GLOBAL);

/// Which actions any site may take ([`ACTIONS_GLOBAL`]); set by user
/// space, read-only to the program. The verifier skips the code of the
/// actions whose bit is 0.
#[unsafe(no_mangle)]
static USDT_ACTIONS: u8 = u8::MAX;
named!(USDT_ACTIONS, ACTIONS_GLOBAL);

/// Whether any site may take `action`, read where the verifier sees the
/// load.
#[inline(always)]
fn may(action: u8) -> bool {
    global(&USDT_ACTIONS) & action_bit(action) != 0
}

/// The largest string class (an index into [`STRING_CLASSES`]) any
/// streamed site may need ([`STRING_CLASS_GLOBAL`]); set by user space,
/// read-only to the program. The verifier skips the larger classes' code.
#[unsafe(no_mangle)]
static USDT_STRING_CLASS: u8 = (STRING_CLASSES.len() - 1) as u8;
named!(USDT_STRING_CLASS, STRING_CLASS_GLOBAL);

/// Whether a streamed site may need string class `class`, read where the
/// verifier sees the load.
#[inline(always)]
fn may_need_class(class: u8) -> bool {
    global(&USDT_STRING_CLASS) >= class
}

/// A read-only global's value, read where the verifier sees the load
/// (volatile, so the compiler neither folds it nor moves it).
#[inline(always)]
fn global(value: &u8) -> u8 {
    // SAFETY: a read of a static.
    unsafe { core::ptr::read_volatile(value) }
}

/// Whether the switch `value` is on.
#[inline(always)]
fn flag(value: &u8) -> bool {
    global(value) != 0
}

/// How user memory is read: pages not mapped in yet are faulted in when
/// the program is sleepable ([`USDT_SLEEPABLE`], read where the verifier
/// sees the load).
#[inline(always)]
fn paging() -> Paging {
    if flag(&USDT_SLEEPABLE) {
        Paging::FaultIn
    } else {
        Paging::Resident
    }
}

/// Reads one argument as its plan says, extended to 64 bits; `None` when
/// a register or user memory cannot be read.
#[inline(always)]
fn read_arg(ctx: &ProbeContext, arg: &ArgPlan) -> Option<u64> {
    usdt_aya_ebpf::read_arg(ctx, arg, paging()).ok()
}

/// Copies the NUL-terminated user string at `src` into the CAP bytes at
/// `dst`; its length without the NUL and whether it was cut.
///
/// # Safety
/// `dst` must be valid for writes of CAP bytes.
#[inline(always)]
unsafe fn copy_cstr<const CAP: usize>(dst: *mut u8, src: u64) -> Option<(usize, bool)> {
    // SAFETY: the caller's promise.
    let buf = unsafe { &mut *dst.cast::<[u8; CAP]>() };
    read_cstr(src, buf, paging()).ok()
}

/// Copies `len` bytes of user memory at `src` into the CAP bytes at `dst`,
/// cut to CAP; the bytes copied and whether that was fewer than `len`.
///
/// # Safety
/// `dst` must be valid for writes of CAP bytes.
#[inline(always)]
unsafe fn copy_bytes<const CAP: usize>(dst: *mut u8, src: u64, len: u64) -> Option<(usize, bool)> {
    // SAFETY: the caller's promise.
    let buf = unsafe { &mut *dst.cast::<[u8; CAP]>() };
    read_bytes(src, len, buf, paging()).ok()
}

shared_map! {
    EVENTS_MAP,
    /// Event records for user space.
    static USDT_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);
}

shared_map! {
    DROPS_MAP,
    /// Records that did not fit in `USDT_EVENTS`, at index 0.
    static USDT_DROPS: Array<u64> = Array::with_max_entries(1, 0);
}

shared_map! {
    PENDING_MAP,
    /// Bytes of records written on each CPU since it last woke the reader,
    /// for [`wakeup_flags`].
    static USDT_PENDING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
}

shared_map! {
    CONTROL_MAP,
    /// The program's settings, at index 0: armed once user space has
    /// attached every site, how often to wake the reader, and the traced process.
    static USDT_CONTROL: Array<Control> = Array::with_max_entries(1, 0);
}

shared_map! {
    AGGREGATES_MAP,
    /// Aggregation counters. User space sets the size; entries are
    /// allocated as keys appear (a key's first hit pays for it), not when
    /// the map is created.
    static USDT_AGGREGATES: HashMap<CounterKey, u64> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);
}

shared_map! {
    TEXT_AGGREGATES_MAP,
    /// The counters keyed by a string, as [`USDT_AGGREGATES`].
    static USDT_TEXT_AGGREGATES: HashMap<AggKey, u64> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);
}

shared_map! {
    STARTS_MAP,
    /// Pending latency starts. User space sets the size; entries are
    /// allocated as starts appear (an end frees its start's for the next).
    static USDT_STARTS: HashMap<StartKey, u64> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);
}

shared_map! {
    SITE_OPTIONS_MAP,
    /// Per-site options (the compiled filter, whether hits carry a user
    /// stack), indexed by cookie like `USDT_SITES`. User space sets the
    /// size.
    static USDT_SITE_OPTIONS: Array<SiteOptions> = Array::with_max_entries(1, 0);
}

shared_map! {
    STACKS_MAP,
    /// The stacks hits are counted by, under their hash. User space sets
    /// the size; entries are allocated as stacks appear.
    static USDT_STACKS: HashMap<u64, CountedStack> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);
}

shared_map! {
    STACK_SCRATCH_MAP,
    /// Where [`stack_key`] reads a hit's stack, at index 0.
    static USDT_STACK_SCRATCH: PerCpuArray<StackScratch> = PerCpuArray::with_max_entries(1, 0);
}

shared_map! {
    AGG_ERRORS_MAP,
    /// Aggregation error counters, indexed by `AGG_ERR_*`.
    static USDT_AGG_ERRORS: Array<u64> = Array::with_max_entries(AGG_ERR_COUNT, 0);
}

/// The uprobe program attached to every probe site through perf-event
/// uprobes. Everything is inlined into it (no BPF-to-BPF calls).
#[uprobe(sleepable)]
#[inline(always)]
pub fn usdt_site(ctx: ProbeContext) -> u32 {
    site(&ctx)
}

/// [`usdt_site`] for uprobe_multi links (Linux 6.6): the kernel takes a
/// program for those links only when it was loaded for them.
#[uprobe(sleepable, multi)]
#[inline(always)]
pub fn usdt_site_multi(ctx: ProbeContext) -> u32 {
    site(&ctx)
}

/// [`usdt_site`], not sleepable: for kernels before 6.0, loaded with
/// `USDT_SLEEPABLE` 0.
#[uprobe]
#[inline(always)]
pub fn usdt_site_nosleep(ctx: ProbeContext) -> u32 {
    site(&ctx)
}

/// One hit of a site: its plan found and followed.
#[inline(always)]
fn site(ctx: &ProbeContext) -> u32 {
    let Some(control) = USDT_CONTROL.get(0) else {
        return 0;
    };
    // Only the traced process, when there is one, whatever the kernel's pid
    // filter let through: one comparison per hit.
    // The steps below that need the pid or tid call the helper again (a few
    // ns each): passed this value instead, the verifier followed the
    // filter and stack code up to four times over (this value has been
    // compared with the traced process).
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if control.tgid != 0 && tgid != control.tgid {
        return 0;
    }
    if control.armed == 0 {
        return 0;
    }
    let Some(site) = site_index(ctx, control, tgid) else {
        return 0;
    };
    if site == control.notify_site {
        linker_hook(control, site);
        return 0;
    }
    let Some(plan) = USDT_SITES.get(site) else {
        return 0;
    };
    let options = if flag(&USDT_OPTIONS) {
        USDT_SITE_OPTIONS.get(site)
    } else {
        None
    };
    if let Some(options) = options
        && !filter_keeps(ctx, plan, options)
    {
        return 0;
    }
    match plan.action {
        ACTION_STREAM if may(ACTION_STREAM) && flag(&USDT_OPTIONS) => {
            if let Some(options) = options {
                stream_with_options(ctx, plan, site, options)
            }
        }
        ACTION_STREAM if may(ACTION_STREAM) => stream_site(ctx, plan, site),
        ACTION_COUNT if may(ACTION_COUNT) => count_site(ctx, plan),
        ACTION_HISTOGRAM if may(ACTION_HISTOGRAM) => histogram_site(ctx, plan),
        ACTION_LATENCY_START if may(ACTION_LATENCY_START) => latency_start(ctx, plan),
        ACTION_LATENCY_END if may(ACTION_LATENCY_END) => latency_end(ctx, plan),
        _ => {}
    }
    0
}

/// The index of the hit's site: the link's cookie, or without cookies the
/// entry of the instruction pointer in `USDT_SITE_IPS`, in this process or
/// in every process.
#[inline(always)]
fn site_index(ctx: &ProbeContext, control: &Control, tgid: u32) -> Option<u32> {
    if flag(&USDT_COOKIES) {
        // SAFETY: the helper only reads the cookie of the running program's
        // link.
        return Some(unsafe { generated::bpf_get_attach_cookie(ctx.as_ptr()) } as u32);
    }
    let ip = read_register(ctx, control.ip_offset as u16).ok()?;
    let mut key = SiteIpKey { tgid, _pad: 0, ip };
    // SAFETY: the values are map values, valid for the program's run.
    if let Some(site) = unsafe { USDT_SITE_IPS.get(&key) } {
        return Some(*site);
    }
    key.tgid = 0;
    // SAFETY: as above.
    unsafe { USDT_SITE_IPS.get(&key) }.copied()
}

/// `SIGSTOP` (19 on every architecture the tracer runs on: x86-64, aarch64).
const SIGSTOP: u32 = 19;

/// A hit of the dynamic linker's hook (`Control::notify_site`): a record
/// with no arguments that wakes the reader at once, which then looks for
/// libraries mapped or unmapped since. With `Control::stop_on_hook` the
/// process is also stopped (SIGSTOP, delivered as the hook's thread returns
/// to user space) until the reader has attached the new libraries' sites
/// and sends SIGCONT. The signal is sent only once the record is reserved
/// and before it is submitted: every stop has a record, and the reader,
/// which continues the process after reading it, cannot do so before the
/// stop was sent (a SIGCONT discards a stop still pending).
///
/// Kept apart from the other sites' paths, with its own small record, so
/// the verifier follows it once and the states of those paths stay alike.
#[inline(always)]
fn linker_hook(control: &Control, site: u32) {
    let Some(mut entry) = USDT_EVENTS.reserve_bytes(EVENT_FIXED_SIZE, 0) else {
        count_drop();
        return;
    };
    let header = entry.as_mut_ptr().cast::<EventHeader>();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the entry holds the EVENT_FIXED_SIZE bytes before `args`,
    // 8-byte aligned; only fields inside them are written. The zeros are
    // volatile writes, which the compiler cannot merge into a call of
    // `memset` (BPF has none).
    unsafe {
        (*header).timestamp_ns = bpf_ktime_get_ns();
        (*header).pid = (pid_tgid >> 32) as u32;
        (*header).tid = pid_tgid as u32;
        (*header).cpu = bpf_get_smp_processor_id();
        (*header).probe_id = u32::MAX;
        (*header).site = site;
        core::ptr::write_volatile(&raw mut (*header).arg_count, 0);
        core::ptr::write_volatile(&raw mut (*header)._reserved, 0);
        core::ptr::write_volatile(&raw mut (*header).faults, 0);
        core::ptr::write_volatile(&raw mut (*header).string_bytes, 0);
        core::ptr::write_volatile(&raw mut (*header).truncated, 0);
        core::ptr::write_volatile(&raw mut (*header)._pad, 0);
    }
    if control.stop_on_hook != 0 {
        // SAFETY: the helper signals the current process; it has no memory
        // arguments.
        unsafe { generated::bpf_send_signal(SIGSTOP) };
    }
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
}

// The programs' functions: the ones the entry points name, named as user
// space expects.
const _: fn(*mut core::ffi::c_void) -> u32 = usdt_site;
named!(usdt_site, PROGRAM_NAME);
const _: fn(*mut core::ffi::c_void) -> u32 = usdt_site_nosleep;
named!(usdt_site_nosleep, PROGRAM_NAME_NOSLEEP);
const _: fn(*mut core::ffi::c_void) -> u32 = usdt_site_multi;
named!(usdt_site_multi, PROGRAM_NAME_MULTI);

/// Streams one hit to the ring buffer.
#[inline(always)]
fn stream_site(ctx: &ProbeContext, plan: &SitePlan, site: u32) {
    // The record is built on the stack, in place (a move would copy it),
    // then copied once into the ring buffer.
    let mut header = MaybeUninit::<EventHeader>::uninit();
    let header = header.as_mut_ptr();
    // SAFETY: fill_header writes the fixed part and the site's arguments.
    let count = unsafe { fill_header(ctx, plan, site, header) };
    let strings = plan.string_count as usize;
    if strings == STRING_CLASSES[0] || !may_need_class(1) {
        output_short(header, count);
        return;
    }
    // SAFETY: fill_header wrote the fixed part and `count` arguments.
    let header = unsafe { complete_header(header, count) };
    // User space sets the largest class to one every site fits in.
    if strings <= STRING_CLASSES[1] || !may_need_class(2) {
        stream::<{ STRING_CLASSES[1] * STRING_CAP }>(plan, header);
    } else if strings <= STRING_CLASSES[2] || !may_need_class(3) {
        stream::<{ STRING_CLASSES[2] * STRING_CAP }>(plan, header);
    } else if strings <= STRING_CLASSES[3] || !may_need_class(4) {
        stream::<{ STRING_CLASSES[3] * STRING_CAP }>(plan, header);
    } else {
        stream::<{ STRING_CLASSES[4] * STRING_CAP }>(plan, header);
    }
}

/// Sends a short record: the fixed part of `header` and its `count`
/// arguments, all of it written (only written bytes are sent), for a site
/// without strings. count <= MAX_ARGS <= ARG_COUNT_MASK; the mask shows
/// the verifier that the length stays inside the header. Its unwritten
/// tail lies in the range the verifier checks, which it allows: programs
/// loaded with CAP_PERFMON may pass partly written stack to helpers.
#[inline(always)]
fn output_short(header: *const EventHeader, count: usize) {
    // SAFETY: EVENT_FIXED_SIZE + 8 * ARG_COUNT_MASK bytes fit in the
    // header.
    let record = unsafe {
        core::slice::from_raw_parts(
            header.cast::<u8>(),
            EVENT_FIXED_SIZE + 8 * (count & ARG_COUNT_MASK),
        )
    };
    let flags = wakeup_flags(record.len());
    if USDT_EVENTS.output::<[u8]>(record, flags).is_err() {
        count_drop();
    }
}

/// Counts one hit under its key.
#[inline(always)]
fn count_site(ctx: &ProbeContext, plan: &SitePlan) {
    if plan.key == KEY_STRING {
        count_text(ctx, plan);
        return;
    }
    let value = if flag(&USDT_STACK_COUNTS) && plan.key == KEY_STACK {
        stack_key(ctx)
    } else {
        key_value(ctx, plan).ok_or(AGG_ERR_FAULT)
    };
    match value {
        Ok(value) => add_to_counter(plan.aggregation, plan.probe_id, value, 1),
        Err(index) => count_error(index),
    }
}

/// Counts one hit under its string key.
#[inline(always)]
fn count_text(ctx: &ProbeContext, plan: &SitePlan) {
    let mut key = MaybeUninit::<AggKey>::uninit();
    // SAFETY: new_text_key writes every field; the key is used in place (a
    // move would copy it with a call to memset, which the program has none
    // of).
    let key = unsafe {
        new_text_key(key.as_mut_ptr(), plan.aggregation, plan.probe_id);
        &mut *key.as_mut_ptr()
    };
    if fill_text(ctx, plan, key).is_none() {
        count_error(AGG_ERR_FAULT);
        return;
    }
    add(&USDT_TEXT_AGGREGATES, key, 1);
}

/// Adds one hit to the histogram bucket of its value argument (a negative
/// value of a signed argument to the mirror bucket of its magnitude), and
/// the value to the histogram's sum.
#[inline(always)]
fn histogram_site(ctx: &ProbeContext, plan: &SitePlan) {
    let Some(arg) = plan.args.get(plan.value_arg as usize) else {
        return;
    };
    let Some(value) = read_arg(ctx, arg) else {
        count_error(AGG_ERR_FAULT);
        return;
    };
    let slot = histogram_slot(value, arg.signed != 0);
    add_to_counter(plan.aggregation, plan.probe_id, slot, 1);
    add_to_counter(plan.aggregation, plan.probe_id, HISTOGRAM_SUM, value);
}

/// Stores the start time of this hit's key.
#[inline(always)]
fn latency_start(ctx: &ProbeContext, plan: &SitePlan) {
    let Some(key) = start_key(ctx, plan) else {
        count_error(AGG_ERR_FAULT);
        return;
    };
    let now = ktime_ns();
    if USDT_STARTS.insert(&key, &now, BPF_ANY as u64).is_err() {
        count_error(AGG_ERR_STARTS_FULL);
    }
}

/// Ends the latency of this hit's key: the microseconds since its start go
/// into the pair's histogram, the nanoseconds into its sum.
#[inline(always)]
fn latency_end(ctx: &ProbeContext, plan: &SitePlan) {
    let now = ktime_ns();
    let Some(key) = start_key(ctx, plan) else {
        count_error(AGG_ERR_FAULT);
        return;
    };
    let Some(start) = USDT_STARTS.get_ptr(&key) else {
        count_error(AGG_ERR_UNMATCHED);
        return;
    };
    // SAFETY: the pointer is the map value, valid for the program's run.
    let start = unsafe { *start };
    let _ = USDT_STARTS.remove(&key);
    let elapsed = now.saturating_sub(start);
    add_to_counter(plan.aggregation, 0, log2_bucket(elapsed / 1000), 1);
    add_to_counter(plan.aggregation, 0, HISTOGRAM_SUM, elapsed);
}

/// Adds `amount` to the counter `value` (a key, a histogram's bucket or
/// its sum) of `probe_id` in `aggregation`.
#[inline(always)]
fn add_to_counter(aggregation: u32, probe_id: u32, value: u64, amount: u64) {
    let key = CounterKey {
        aggregation,
        probe_id,
        value,
    };
    add(&USDT_AGGREGATES, &key, amount);
}

/// Writes a string counter's key with an all-zero text.
///
/// # Safety
/// `key` must be valid for writes.
#[inline(always)]
unsafe fn new_text_key(key: *mut AggKey, aggregation: u32, probe_id: u32) {
    // SAFETY: plain writes through a valid pointer. The text is zeroed one
    // word at a time with volatile stores, which the compiler cannot merge
    // into a call to memset (the BPF program has none).
    unsafe {
        (*key).aggregation = aggregation;
        (*key).probe_id = probe_id;
        (*key).value = 0;
        let words = (&raw mut (*key).text).cast::<u64>();
        for i in 0..KEY_TEXT_CAP / 8 {
            core::ptr::write_volatile(words.add(i), 0);
        }
    }
}

/// The pending-start key of a latency hit: the process and the key value.
#[inline(always)]
fn start_key(ctx: &ProbeContext, plan: &SitePlan) -> Option<StartKey> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = match plan.key {
        KEY_TID => pid_tgid as u32 as u64,
        KEY_PID => pid_tgid >> 32,
        KEY_ARG => read_arg(ctx, plan.args.get(plan.key_arg as usize)?)?,
        _ => 0,
    };
    Some(StartKey {
        aggregation: plan.aggregation,
        pid: (pid_tgid >> 32) as u32,
        key,
    })
}

/// The value of a counter's key as the plan says (none, the pid, the tid
/// or an argument); `None` when an argument cannot be read.
#[inline(always)]
fn key_value(ctx: &ProbeContext, plan: &SitePlan) -> Option<u64> {
    match plan.key {
        KEY_NONE => Some(0),
        KEY_PID => Some(bpf_get_current_pid_tgid() >> 32),
        KEY_TID => Some(bpf_get_current_pid_tgid() as u32 as u64),
        KEY_ARG => read_arg(ctx, plan.args.get(plan.key_arg as usize)?),
        _ => None,
    }
}

/// Copies a string key's bytes into `key.text` and whether it was cut into
/// `key.value`; `None` when the string cannot be read.
#[inline(always)]
fn fill_text(ctx: &ProbeContext, plan: &SitePlan, key: &mut AggKey) -> Option<()> {
    let index = plan.key_arg as usize;
    let arg = plan.args.get(index)?;
    let src = read_arg(ctx, arg)?;
    let (_, cut) = if arg.string == STRING_CSTR {
        read_cstr(src, &mut key.text, paging()).ok()?
    } else {
        // The length is the next argument. Its index goes through the stack
        // so the compiler indexes the array afresh (an offset from argument
        // `index` would hide the bounds check from the verifier).
        let mut next = 0usize;
        // SAFETY: a write and a read of a local.
        let next = unsafe {
            core::ptr::write_volatile(&mut next, index + 1);
            core::ptr::read_volatile(&next)
        };
        let len = read_arg(ctx, plan.args.get(next)?)?;
        read_bytes(src, len, &mut key.text, paging()).ok()?
    };
    key.value = cut as u64;
    Some(())
}

/// Adds `amount` to the counter of `key` in `map`, creating it; a full map
/// is counted.
#[inline(always)]
fn add<K>(map: &HashMap<K, u64>, key: &K, amount: u64) {
    if let Some(count) = map.get_ptr_mut(key) {
        // SAFETY: the pointer is the map value, valid and 8-byte aligned for
        // the program's run; the add is atomic across CPUs.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, amount) };
        return;
    }
    // A volatile stack slot: a constant would be placed in .rodata, which
    // the program does not load.
    let mut initial = 0u64;
    // SAFETY: a write to a local.
    unsafe { core::ptr::write_volatile(&mut initial, amount) };
    match map.insert(key, &initial, BPF_NOEXIST as u64) {
        Ok(()) => {}
        // Another CPU created it meanwhile: add to it.
        Err(error) if error == -(EEXIST as i32) => {
            if let Some(count) = map.get_ptr_mut(key) {
                // SAFETY: as above.
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, amount) };
            }
        }
        Err(_) => count_error(AGG_ERR_FULL),
    }
}

/// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC now.
#[inline(always)]
fn ktime_ns() -> u64 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// `EEXIST`: the key is already in the map.
const EEXIST: u32 = 17;

/// Adds one to aggregation error counter `index`.
#[inline(always)]
fn count_error(index: u32) {
    if let Some(errors) = USDT_AGG_ERRORS.get_ptr_mut(index) {
        // SAFETY: the pointer is the map value, valid and 8-byte aligned
        // for the program's run; the add is atomic across CPUs.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(errors, 1) };
    }
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
    entry.submit(wakeup_flags(EVENT_HEADER_SIZE + AREA));
}

/// Wake-up flags for a record of `size` bytes: the reader is woken once
/// this CPU has written `Control::wake_bytes` since it last woke it, and
/// otherwise finds the records on its next periodic poll. Wake-ups run on
/// the traced thread's CPU (an interrupt, microseconds in a virtual
/// machine): few of them keep the per-hit cost down.
#[inline(always)]
fn wakeup_flags(size: usize) -> u64 {
    let wake_bytes = match USDT_CONTROL.get(0) {
        Some(control) => control.wake_bytes,
        None => 0,
    };
    let wake = match USDT_PENDING.get_ptr_mut(0) {
        Some(pending) => {
            // SAFETY: this CPU's counter; a lost update only shifts the next
            // wake-up.
            unsafe {
                let bytes = *pending + size as u64;
                let wake = bytes >= u64::from(wake_bytes);
                *pending = if wake { 0 } else { bytes };
                wake
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

/// Fills the fixed part of a record (who, when) and the site's arguments;
/// returns how many arguments there are. The rest of `args` and
/// `string_len` is left unwritten.
///
/// # Safety
/// `header` must be valid for writes.
#[inline(always)]
unsafe fn fill_header(
    ctx: &ProbeContext,
    plan: &SitePlan,
    site: u32,
    header: *mut EventHeader,
) -> usize {
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
        (*header).site = site;
        (*header).arg_count = count as u8;
        (*header)._reserved = 0;
        (*header).string_bytes = 0;
        (*header).truncated = 0;
        (*header)._pad = 0;
        let mut faults: u16 = 0;
        for i in 0..MAX_ARGS {
            if i >= count {
                break;
            }
            (*header).args[i] = match read_arg(ctx, &plan.args[i]) {
                Some(value) => value,
                None => {
                    faults |= 1 << i;
                    0
                }
            };
        }
        (*header).faults = faults;
    }
    count
}

/// Zeroes the argument slots past `count` and every string length: the
/// header is then whole.
///
/// # Safety
/// `header` must be valid for writes, its fixed part and first `count`
/// arguments written (by [`fill_header`]).
#[inline(always)]
unsafe fn complete_header<'a>(header: *mut EventHeader, count: usize) -> &'a EventHeader {
    // SAFETY: plain writes through a valid pointer; every field is then
    // written (the caller's promise for the others).
    unsafe {
        for i in 0..MAX_ARGS {
            if i >= count {
                (*header).args[i] = 0;
            }
            (*header).string_len[i] = 0;
        }
        &*header
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
            // SAFETY: `dst` has room for STRING_CAP bytes (above).
            unsafe { copy_cstr::<STRING_CAP>(dst, src) }
        } else {
            let len = match header.args.get(i + 1) {
                Some(&len) if i + 1 < count => len,
                _ => 0,
            };
            // SAFETY: as above.
            unsafe { copy_bytes::<STRING_CAP>(dst, src, len) }
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

// Per-site options: filters and user stacks.

/// Whether the site's filter keeps this hit: always when it has none. The
/// string tests run first, then the instructions on a stack of one-bit
/// results (see `usdt_tracer_common::SiteOptions`). An argument that cannot
/// be read drops the hit.
#[inline(always)]
fn filter_keeps(ctx: &ProbeContext, plan: &SitePlan, options: &SiteOptions) -> bool {
    let insns = options.insn_count as usize;
    if insns == 0 {
        return true;
    }
    let Some(strings) = filter_strings(ctx, plan, options) else {
        return false;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let mut stack: u64 = 0;
    for i in 0..FILTER_MAX_INSNS {
        if i >= insns {
            break;
        }
        let insn = &options.insns[i];
        let bit = match insn.op {
            FILTER_COMPARE => {
                let Some(lhs) = filter_operand(ctx, plan, &insn.lhs, pid_tgid) else {
                    return false;
                };
                let Some(rhs) = filter_operand(ctx, plan, &insn.rhs, pid_tgid) else {
                    return false;
                };
                compare(
                    lhs,
                    insn.lhs.signed != 0,
                    rhs,
                    insn.rhs.signed != 0,
                    insn.cmp,
                )
            }
            FILTER_STRING => (strings >> (insn.string & 63)) & 1 != 0,
            FILTER_AND => {
                let bit = stack & (stack >> 1) & 1 != 0;
                stack >>= 2;
                bit
            }
            FILTER_OR => {
                let bit = (stack | (stack >> 1)) & 1 != 0;
                stack >>= 2;
                bit
            }
            FILTER_NOT => {
                let bit = stack & 1 == 0;
                stack >>= 1;
                bit
            }
            _ => return false,
        };
        stack = (stack << 1) | bit as u64;
    }
    stack & 1 != 0
}

/// The value of one side of a filter comparison; `None` when an argument
/// cannot be read.
#[inline(always)]
fn filter_operand(
    ctx: &ProbeContext,
    plan: &SitePlan,
    operand: &FilterOperand,
    pid_tgid: u64,
) -> Option<u64> {
    match operand.kind {
        OPERAND_CONSTANT => Some(operand.value),
        OPERAND_ARG => read_arg(ctx, plan.args.get(operand.slot as usize)?),
        OPERAND_PID => Some(pid_tgid >> 32),
        OPERAND_TID => Some(pid_tgid as u32 as u64),
        _ => None,
    }
}

/// Compares two extended values as mathematical integers: a signed value
/// that is negative is below every unsigned one; otherwise two's
/// complement orders values of the same sign as unsigned comparison does.
#[inline(always)]
fn compare(lhs: u64, lhs_signed: bool, rhs: u64, rhs_signed: bool, cmp: u8) -> bool {
    let lhs_negative = lhs_signed && (lhs as i64) < 0;
    let rhs_negative = rhs_signed && (rhs as i64) < 0;
    let less = if lhs_negative != rhs_negative {
        lhs_negative
    } else {
        lhs < rhs
    };
    let equal = lhs == rhs && lhs_negative == rhs_negative;
    match cmp {
        CMP_EQ => equal,
        CMP_NE => !equal,
        CMP_LT => less,
        CMP_LE => less || equal,
        CMP_GT => !(less || equal),
        CMP_GE => !less,
        _ => false,
    }
}

/// Runs the filter's string tests: bit N of the result is string test N's
/// outcome; `None` when a string cannot be read.
#[inline(always)]
fn filter_strings(ctx: &ProbeContext, plan: &SitePlan, options: &SiteOptions) -> Option<u64> {
    let count = options.string_count as usize;
    if count == 0 {
        return Some(0);
    }
    let mut text = MaybeUninit::<[u64; FILTER_STRING_CAP / 8]>::uninit();
    let words = text.as_mut_ptr().cast::<u64>();
    // SAFETY: volatile stores of zeros into a local (no memset, which the
    // program has none of); afterwards every byte is written.
    unsafe {
        for i in 0..FILTER_STRING_CAP / 8 {
            core::ptr::write_volatile(words.add(i), 0);
        }
    }
    let dst = words.cast::<u8>();
    let mut bits = 0u64;
    for j in 0..FILTER_MAX_STRINGS {
        if j >= count {
            break;
        }
        let test = &options.strings[j];
        let src = read_arg(ctx, plan.args.get(test.arg as usize)?)?;
        let (n, cut) = if test.length_arg == NO_LENGTH {
            // SAFETY: `dst` is the FILTER_STRING_CAP bytes of `text`.
            unsafe { copy_cstr::<FILTER_STRING_CAP>(dst, src) }?
        } else {
            let len = read_arg(ctx, plan.args.get(test.length_arg as usize)?)?;
            // SAFETY: as above.
            unsafe { copy_bytes::<FILTER_STRING_CAP>(dst, src, len) }?
        };
        let len = test.len as usize;
        let fits = if test.prefix != 0 {
            n >= len
        } else {
            n == len && !cut
        };
        // SAFETY: the buffer holds FILTER_STRING_CAP initialized bytes.
        let text = unsafe { &*words.cast::<[u64; FILTER_STRING_CAP / 8]>() };
        if fits && same_prefix(text, &test.bytes, len) {
            bits |= 1 << j;
        }
    }
    Some(bits)
}

// A string test's literal lies 8-byte aligned in the (8-byte aligned) map
// value: [`same_prefix`] reads it a word at a time.
const _: () = assert!(
    core::mem::offset_of!(SiteOptions, strings) % 8 == 0
        && size_of::<FilterString>() % 8 == 0
        && core::mem::offset_of!(FilterString, bytes) % 8 == 0
);

/// Whether the first `len` bytes of `a` and `b` are equal.
///
/// Compared eight bytes at a time at constant offsets, the bytes past
/// `len` masked off: `len` never bounds a loop over memory. Older verifiers
/// (6.1's, 5.10's) lose the bound of such a loop when the compiler derives
/// its counter from `len`, and then refuse the read of `b` past its end.
#[inline(always)]
fn same_prefix(a: &[u64; FILTER_STRING_CAP / 8], b: &[u8; FILTER_STRING_CAP], len: usize) -> bool {
    let mut diff = 0u64;
    for (word, &a) in a.iter().enumerate() {
        let bytes = len.saturating_sub(word * 8);
        let mask = if bytes >= 8 {
            u64::MAX
        } else {
            (1u64 << (bytes * 8)) - 1
        };
        // SAFETY: word * 8 + 8 <= FILTER_STRING_CAP: eight bytes inside `b`,
        // 8-byte aligned (asserted above).
        let b = unsafe { core::ptr::read(b.as_ptr().add(word * 8).cast::<u64>()) };
        diff |= (a ^ b) & mask;
    }
    diff == 0
}

/// Streams one hit of a trace with options (`USDT_OPTIONS`): a short
/// record for a site with neither strings nor a stack; otherwise the whole
/// header, the [`usdt_tracer_common::StackArea`] (the user stack if the
/// site wants it, else 0 bytes of it), then the strings in the largest
/// string class. One string class instead of [`stream_site`]'s four keeps
/// the options' code within what older verifiers (6.1's, 5.10's) follow.
#[inline(always)]
fn stream_with_options(ctx: &ProbeContext, plan: &SitePlan, site: u32, options: &SiteOptions) {
    let mut header = MaybeUninit::<EventHeader>::uninit();
    let header = header.as_mut_ptr();
    // SAFETY: fill_header writes the fixed part and the site's arguments.
    let count = unsafe { fill_header(ctx, plan, site, header) };
    if !wants_stack(options) && plan.string_count == 0 {
        output_short(header, count);
        return;
    }
    // SAFETY: fill_header wrote the fixed part and `count` arguments.
    let header = unsafe { complete_header(header, count) };
    if plan.string_count == 0 || !may_need_class(1) {
        stream_stack::<0>(ctx, plan, header, options);
    } else {
        stream_stack::<{ STRING_CLASSES[4] * STRING_CAP }>(ctx, plan, header, options);
    }
}

/// Whether the site's hits carry the user stack, read afresh where it is
/// tested: a value the verifier had seen tested before would be precise to
/// it, and it would then follow the string code once per value instead of
/// once.
#[inline(always)]
fn wants_stack(options: &SiteOptions) -> bool {
    // SAFETY: a read of a field of a valid reference.
    unsafe { core::ptr::read_volatile(&options.stack) != 0 }
}

/// Builds and submits one record with a stack area (the user stack if the
/// site wants it) and a string area of `AREA` bytes.
#[inline(always)]
fn stream_stack<const AREA: usize>(
    ctx: &ProbeContext,
    plan: &SitePlan,
    fixed: &EventHeader,
    options: &SiteOptions,
) {
    const SIZE: usize = EVENT_HEADER_SIZE + STACK_AREA_SIZE;
    let Some(mut entry) = USDT_EVENTS.reserve_bytes(SIZE + AREA, 0) else {
        count_drop();
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: the entry holds SIZE + AREA bytes, 8-byte aligned; the stack
    // area (an i64 then STACK_DEPTH u64s) follows the header.
    unsafe {
        let header = &mut *record.cast::<EventHeader>();
        *header = *fixed;
        let area = record.add(EVENT_HEADER_SIZE);
        let ips = area.add(8);
        let bytes = if wants_stack(options) {
            generated::bpf_get_stack(
                ctx.as_ptr(),
                ips.cast(),
                (STACK_DEPTH * 8) as u32,
                BPF_F_USER_STACK,
            )
        } else {
            0
        };
        core::ptr::write(area.cast::<i64>(), bytes);
        if AREA > 0 {
            copy_strings::<AREA>(plan, header, record.add(SIZE));
        } else {
            header.string_bytes = 0;
        }
    }
    entry.submit(wakeup_flags(SIZE + AREA));
}

/// The key of a hit counted by its stack: the [`stack_hash`] of the
/// process and its user stack, which is stored in `USDT_STACKS` at its
/// first hit. Otherwise the `AGG_ERR_*` index of the reason: the stack
/// could not be read (or another thread's hit took the scratch area
/// meanwhile: see [`StackScratch`]), or it is new and the map is full.
#[inline(always)]
fn stack_key(ctx: &ProbeContext) -> Result<u64, u32> {
    let scratch = USDT_STACK_SCRATCH.get_ptr_mut(0).ok_or(AGG_ERR_FAULT)?;
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the pointer is this CPU's map value, valid for the program's
    // run; bpf_get_stack writes at most STACK_DEPTH addresses into `ips`
    // and zeroes the rest of them. The owner is written and read with
    // volatile accesses: another program run may change it meanwhile.
    let stack = unsafe {
        core::ptr::write_volatile(&raw mut (*scratch).owner, pid_tgid);
        let stack = &raw mut (*scratch).stack;
        (*stack).tgid = (pid_tgid >> 32) as u32;
        (*stack)._pad = 0;
        let bytes = generated::bpf_get_stack(
            ctx.as_ptr(),
            (*stack).area.ips.as_mut_ptr().cast(),
            (STACK_DEPTH * 8) as u32,
            BPF_F_USER_STACK,
        );
        if bytes <= 0 {
            return Err(AGG_ERR_FAULT);
        }
        (*stack).area.bytes = bytes;
        &*stack
    };
    // SAFETY: as above.
    let still_ours = || unsafe { core::ptr::read_volatile(&raw const (*scratch).owner) } == pid_tgid;
    let hash = stack_hash(stack);
    if !still_ours() {
        return Err(AGG_ERR_FAULT);
    }
    // SAFETY: a lookup; the value is not kept.
    if unsafe { USDT_STACKS.get(&hash) }.is_some() {
        return Ok(hash);
    }
    match USDT_STACKS.insert(&hash, stack, BPF_NOEXIST as u64) {
        // Stored while another hit may have taken the area: maybe not this
        // stack under this hash.
        Ok(()) if !still_ours() => {
            let _ = USDT_STACKS.remove(&hash);
            Err(AGG_ERR_FAULT)
        }
        Ok(()) => Ok(hash),
        Err(error) if error == -(EEXIST as i32) => Ok(hash),
        Err(_) => Err(AGG_ERR_FULL),
    }
}

/// `bpf_get_stack` flag: the user stack.
const BPF_F_USER_STACK: u64 = 1 << 8;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// License of the program: GPL, so it may call GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
