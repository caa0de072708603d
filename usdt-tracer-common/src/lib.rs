//! `#[repr(C)]` types shared by the tracer's BPF program and user space.
//!
//! The contract between the two sides:
//!
//! - User space computes one [`SitePlan`] per attached probe site and stores
//!   it in the [`SITES_MAP`] array at the site's index. The site index is the
//!   BPF cookie of the site's uprobe link, so one generic BPF program serves
//!   every site: it reads the cookie, looks up the plan and follows it. On
//!   kernels without BPF cookies (before 5.15) the program finds the index
//!   by the hit's instruction pointer instead, in the [`SITE_IPS_MAP`] hash
//!   map ([`SiteIpKey`]), which user space fills with each site's runtime
//!   address.
//! - For each argument the plan says where the value lives ([`ArgPlan`]): a
//!   constant, a register (a byte offset into the kernel's `struct pt_regs`),
//!   or memory at a register plus an optional scaled index register (whole,
//!   or its low 32 bits sign- or zero-extended: aarch64 `sxtw`, `uxtw`) plus
//!   a displacement. Operands relative to a link-time address (x86-64
//!   `sym(%rip)`) are planned relative to the instruction pointer, which at a
//!   probe hit is the probe's own runtime address, so the same plan is right
//!   in every process whatever its load bias.
//! - The program reads every argument, truncates it to its size and sign- or
//!   zero-extends it, copies the strings the plan asks for (bounded by
//!   [`STRING_CAP`] bytes each) and sends one record to the [`EVENTS_MAP`]
//!   ring buffer: an [`EventHeader`] followed by the string bytes, packed in
//!   argument order, in a string area of one of the [`STRING_CLASSES`]. A
//!   record that does not fit is counted in the [`DROPS_MAP`] counter
//!   instead.
//! - Sites whose plan has an aggregating action send nothing to user space:
//!   they add to counters in the [`AGGREGATES_MAP`] hash map (hit counts per
//!   key, log2 histogram buckets; counts keyed by a string in
//!   [`TEXT_AGGREGATES_MAP`]), and latency pairs keep the start time of
//!   each key in the [`STARTS_MAP`] hash map until the matching end. The
//!   maps have fixed limits; an update that finds a map full is counted in
//!   the [`AGG_ERRORS_MAP`] array, never silently lost.
//!
//! Every type is plain old data with explicit padding so both sides agree on
//! the layout byte for byte; the `user` feature implements `aya::Pod` for
//! them. The maps and the program are named once, here ([`PROGRAM_NAME`],
//! [`PROGRAM_SECTION`] and the `*_MAP` constants): the BPF program's build
//! fails on a map or program named otherwise, and this crate's tests check
//! the committed object's maps (names, types, key and value sizes) and
//! program against them.
#![no_std]
#![deny(missing_docs)]

mod options;
pub use options::*;

/// Most arguments a probe site can carry: the format's limit (sys/sdt.h's).
pub use usdt_format::MAX_ARGS;

/// The smallest all-ones mask that keeps every argument count up to
/// [`MAX_ARGS`]: `count & ARG_COUNT_MASK` shows the verifier that a count
/// (at most [`MAX_ARGS`], so unchanged by the mask) is bounded.
pub const ARG_COUNT_MASK: usize = (MAX_ARGS + 1).next_power_of_two() - 1;

/// Most bytes copied for one string argument, including the terminating NUL
/// of a C string. Longer strings are truncated and flagged.
pub const STRING_CAP: usize = 256;

/// String-area size classes, in strings of [`STRING_CAP`] bytes. A record
/// for a site with `n` string arguments reserves the smallest class that
/// holds `n` strings: ring buffer reservations must have a size the
/// verifier knows, so the program has one code path per class.
pub const STRING_CLASSES: [usize; 5] = [0, 1, 2, 4, MAX_ARGS];

/// Name of the BPF array map of [`SitePlan`]s, indexed by cookie.
pub const SITES_MAP: &str = "USDT_SITES";
/// Name of the BPF ring buffer map carrying event records.
pub const EVENTS_MAP: &str = "USDT_EVENTS";
/// Name of the array map (one `u64` at index 0, updated atomically)
/// counting records that did not fit in the ring buffer.
pub const DROPS_MAP: &str = "USDT_DROPS";
/// Name of the per-CPU array map (one `u64` at index 0): bytes of records
/// each CPU has written since it last woke the reader. Only the program uses
/// it; user space never reads it, but loads it with the others.
pub const PENDING_MAP: &str = "USDT_PENDING";
/// Name of the array map (one [`Control`] at index 0) that arms the program
/// and says how often it wakes the reader.
pub const CONTROL_MAP: &str = "USDT_CONTROL";
/// Name of the BPF hash map of aggregation counters: [`CounterKey`] to a
/// `u64` count, added to atomically. Counters keyed by a string are in
/// [`TEXT_AGGREGATES_MAP`]: a key the size of the string's bytes would cost
/// every other counter its hashing and comparing on each hit.
pub const AGGREGATES_MAP: &str = "USDT_AGGREGATES";
/// Name of the BPF hash map of the counters keyed by a string: [`AggKey`]
/// to a `u64` count, added to atomically.
pub const TEXT_AGGREGATES_MAP: &str = "USDT_TEXT_AGGREGATES";
/// Name of the BPF hash map of pending latency starts: [`StartKey`] to the
/// start's `bpf_ktime_get_ns()`.
pub const STARTS_MAP: &str = "USDT_STARTS";
/// Name of the array map of aggregation error counters (`u64`, updated
/// atomically), indexed by the `AGG_ERR_*` constants.
pub const AGG_ERRORS_MAP: &str = "USDT_AGG_ERRORS";
/// Name of the BPF hash map from a site's runtime address ([`SiteIpKey`])
/// to its index in [`SITES_MAP`], for kernels without BPF cookies.
pub const SITE_IPS_MAP: &str = "USDT_SITE_IPS";
/// Name of the generic uprobe program serving every site. It is sleepable
/// (`uprobe.s`) so it can fault in user pages a probe points at but the
/// program never touched (string literals, untouched globals).
pub const PROGRAM_NAME: &str = "usdt_site";
/// ELF section of [`PROGRAM_NAME`] in the BPF object.
pub const PROGRAM_SECTION: &str = "uprobe.s";
/// Name of the same program loaded for uprobe_multi links (Linux 6.6),
/// sleepable too ([`PROGRAM_SECTION_MULTI`]).
pub const PROGRAM_NAME_MULTI: &str = "usdt_site_multi";
/// ELF section of [`PROGRAM_NAME_MULTI`] in the BPF object.
pub const PROGRAM_SECTION_MULTI: &str = "uprobe.multi.s";
/// ELF section of [`PROGRAM_NAME_NOSLEEP`] in the BPF object.
pub const PROGRAM_SECTION_NOSLEEP: &str = "uprobe";
/// Name of the same program, not sleepable ([`PROGRAM_SECTION_NOSLEEP`]), for kernels
/// before 6.0: loaded with [`SLEEPABLE_GLOBAL`] 0, it reports memory on a
/// page the process never touched as unreadable instead of faulting it in.
pub const PROGRAM_NAME_NOSLEEP: &str = "usdt_site_nosleep";
/// The read-only global (`u8`, 1 in the object) that says whether the
/// program may fault pages in (`bpf_copy_from_user`): user space sets it to
/// 0 to load [`PROGRAM_NAME_NOSLEEP`]. The verifier knows its value and
/// skips the code it rules out, helpers the kernel lacks included.
pub const SLEEPABLE_GLOBAL: &str = "USDT_SLEEPABLE";
/// The read-only global (`u8`, 1 in the object) that says whether the
/// kernel has BPF cookies (`bpf_get_attach_cookie`, 5.15): user space sets
/// it to 0 on older kernels, where the program finds the site by its
/// address in [`SITE_IPS_MAP`].
pub const COOKIES_GLOBAL: &str = "USDT_COOKIES";
/// The read-only global (`u8`, 1 in the object) that says whether any site
/// has options (a filter, a user stack): user space sets it to 0 when none
/// has, and the verifier then skips that code (older verifiers cannot
/// follow it within their instruction limit).
pub const OPTIONS_GLOBAL: &str = "USDT_OPTIONS";
/// The read-only global (`u8`, 1 in the object) that says whether hits are
/// counted by user stack; 0 lets the verifier skip that code.
pub const STACK_COUNTS_GLOBAL: &str = "USDT_STACK_COUNTS";
/// The read-only global (`u8`, all ones in the object) whose bit
/// `1 << ACTION_*` says whether any site may take that action: user space
/// clears the bits of actions the trace has no use for (a trace that only
/// streams, or only counts), and the verifier then skips their code, which
/// shortens the program's load.
pub const ACTIONS_GLOBAL: &str = "USDT_ACTIONS";

/// The read-only global (`u8`, the last index of [`STRING_CLASSES`] in the
/// object) that names the largest string class any streamed site may
/// need: user space lowers it when it knows every site (a trace that
/// follows no library loaded later), and the verifier then skips the
/// larger classes' code (all of it for sites without strings).
pub const STRING_CLASS_GLOBAL: &str = "USDT_STRING_CLASS";

/// The bit of `action` (one of `ACTION_*`) in [`ACTIONS_GLOBAL`].
pub const fn action_bit(action: u8) -> u8 {
    1 << action
}

/// The index of the smallest of the [`STRING_CLASSES`] that holds
/// `strings` strings.
pub fn string_class(strings: usize) -> u8 {
    STRING_CLASSES
        .iter()
        .position(|&class| strings <= class)
        .unwrap_or(STRING_CLASSES.len() - 1) as u8
}

/// The argument kinds (`ARG_*`), [`NO_REG`], the index extensions
/// (`INDEX_*`) and the string modes (`STRING_*`) of an [`ArgPlan`], defined
/// once for the tracer and every program built on `usdt-aya-ebpf`.
pub use usdt_aya_common::{
    ARG_CONSTANT, ARG_MEMORY, ARG_NONE, ARG_REGISTER, INDEX_SXTW, INDEX_UXTW, INDEX_WHOLE, NO_REG,
    STRING_CSTR, STRING_NONE, STRING_PTR_LEN,
};

/// Stream every hit of the site to the ring buffer.
pub const ACTION_STREAM: u8 = 0;
/// Count the hit: add one to the [`AggKey`] of the site's aggregation, its
/// probe and its key ([`SitePlan::key`]).
pub const ACTION_COUNT: u8 = 1;
/// Add the hit to a log2 histogram of argument [`SitePlan::value_arg`]: one
/// to the [`AggKey`] whose value is the value's slot ([`histogram_slot`]),
/// and the value to the histogram's sum ([`HISTOGRAM_SUM`]).
pub const ACTION_HISTOGRAM: u8 = 2;
/// Remember when this key started: store `bpf_ktime_get_ns()` under the
/// [`StartKey`] of the site's aggregation, the process and the key.
pub const ACTION_LATENCY_START: u8 = 3;
/// End the latency of this key: take the start stored under the same
/// [`StartKey`] (removing it) and add one to the bucket of the elapsed
/// microseconds, under probe id 0 of the site's aggregation, and the elapsed
/// nanoseconds to its sum ([`HISTOGRAM_SUM`]). An end without a start is
/// counted in [`AGG_ERR_UNMATCHED`].
pub const ACTION_LATENCY_END: u8 = 4;

/// The aggregation key is empty (one counter per probe).
pub const KEY_NONE: u8 = 0;
/// The key is the process id.
pub const KEY_PID: u8 = 1;
/// The key is the thread id.
pub const KEY_TID: u8 = 2;
/// The key is the integer argument [`SitePlan::key_arg`].
pub const KEY_ARG: u8 = 3;
/// The key is the string the argument [`SitePlan::key_arg`] points to (its
/// [`ArgPlan::string`] mode says how), copied into [`AggKey::text`].
pub const KEY_STRING: u8 = 4;
/// The key is the process and its user stack at the hit: their
/// [`stack_hash`], with the stack itself stored in [`STACKS_MAP`].
pub const KEY_STACK: u8 = 5;

/// Bytes of a string key kept in [`AggKey::text`]; longer strings are cut
/// (and [`AggKey::value`] is 1).
pub const KEY_TEXT_CAP: usize = 64;

/// [`AGG_ERRORS_MAP`] index: updates lost because [`AGGREGATES_MAP`] (or
/// [`STACKS_MAP`], for a new stack) was full (a new key found no room).
pub const AGG_ERR_FULL: u32 = 0;
/// [`AGG_ERRORS_MAP`] index: latency starts lost because [`STARTS_MAP`]
/// was full.
pub const AGG_ERR_STARTS_FULL: u32 = 1;
/// [`AGG_ERRORS_MAP`] index: latency ends whose start was never seen (it
/// happened before the trace began, or was lost).
pub const AGG_ERR_UNMATCHED: u32 = 2;
/// [`AGG_ERRORS_MAP`] index: hits skipped because the key or value
/// argument (or, for [`KEY_STACK`], the user stack) could not be read, or
/// because another thread's hit took the stack's scratch area meanwhile
/// ([`StackScratch`]).
pub const AGG_ERR_FAULT: u32 = 3;
/// Number of entries of [`AGG_ERRORS_MAP`].
pub const AGG_ERR_COUNT: u32 = 4;

/// Number of log2 histogram buckets of each sign, plus one: bucket `b` in
/// `1..=64` of the non-negative values holds the values from `2^(b-1)` to
/// `2^b - 1` (bucket 1 also holds 0), as bcc's `bpf_log2l()` places them;
/// negative bucket `b` holds their mirror image, from `-(2^b - 1)` to
/// `-2^(b-1)`. Index 0 is unused.
pub const HISTOGRAM_BUCKETS: usize = 65;

/// [`AggKey::value`] of negative bucket `b` is `NEGATIVE_SLOTS + b`; that of
/// non-negative bucket `b` is `b`.
pub const NEGATIVE_SLOTS: u64 = 64;

/// [`AggKey::value`] of the counter beside each histogram's buckets (same
/// aggregation and probe id) that holds the sum of the values bucketed,
/// added atomically and wrapping at 64 bits: the argument values as the
/// program read them (a negative value of a signed argument adds its two's
/// complement, so the sum reads as an `i64`), or for a latency histogram the
/// elapsed nanoseconds (its buckets count microseconds).
pub const HISTOGRAM_SUM: u64 = 2 * NEGATIVE_SLOTS + 1;

const _: () = assert!(HISTOGRAM_SUM > NEGATIVE_SLOTS + 64);

/// The [`AggKey::value`] a histogram counts `value` under: its
/// [`log2_bucket`], or when `signed` and negative, [`NEGATIVE_SLOTS`] plus
/// the bucket of its magnitude (`i64::MIN`'s magnitude, 2^63, is in bucket
/// 64).
#[inline(always)]
pub fn histogram_slot(value: u64, signed: bool) -> u64 {
    if signed && (value as i64) < 0 {
        NEGATIVE_SLOTS + log2_bucket(value.wrapping_neg())
    } else {
        log2_bucket(value)
    }
}

/// The log2 histogram bucket of the unsigned value `value`: 1 for 0 and 1,
/// otherwise the number of significant bits (2 for 2 and 3, 3 for 4 to 7,
/// ..., 64 from 2^63). Written without loops or a count-leading-zeros
/// instruction, which BPF lacks.
#[inline(always)]
pub fn log2_bucket(value: u64) -> u64 {
    if value <= 1 {
        return 1;
    }
    let mut v = value;
    let mut bits = 1u64;
    if v >= 1 << 32 {
        v >>= 32;
        bits += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        bits += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        bits += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        bits += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        bits += 2;
    }
    if v >= 1 << 1 {
        bits += 1;
    }
    bits
}

/// Where one argument's value lives and how to extend it to 64 bits: the
/// argument spec `usdt-aya` computes ([`usdt_aya_common::UsdtArgSpec`]);
/// its `string` field says which strings the tracer copies.
pub type ArgPlan = usdt_aya_common::UsdtArgSpec;

/// What the BPF program does at one probe site.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SitePlan {
    /// The probe's id, chosen by user space and copied into every event.
    pub probe_id: u32,
    /// One of `ACTION_*`.
    pub action: u8,
    /// Number of arguments (at most [`MAX_ARGS`]).
    pub arg_count: u8,
    /// Number of arguments with a `STRING_*` mode other than
    /// [`STRING_NONE`]; selects the record's string-area class.
    pub string_count: u8,
    /// For [`ACTION_COUNT`] and the latency actions: one of `KEY_*`.
    pub key: u8,
    /// The argument holding the key, for [`KEY_ARG`] and [`KEY_STRING`].
    pub key_arg: u8,
    /// For [`ACTION_HISTOGRAM`]: the argument whose value is bucketed.
    pub value_arg: u8,
    /// Reserved, zero.
    pub _pad: [u8; 2],
    /// For the aggregating actions: the aggregation (chosen by user space)
    /// the site adds to, copied into [`AggKey::aggregation`] or
    /// [`StartKey::aggregation`].
    pub aggregation: u32,
    /// One plan per argument; entries past `arg_count` are [`ARG_NONE`].
    pub args: [ArgPlan; MAX_ARGS],
}

/// The fixed part of every event record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()` at the hit (CLOCK_MONOTONIC).
    pub timestamp_ns: u64,
    /// The process (thread group) id.
    pub pid: u32,
    /// The thread id.
    pub tid: u32,
    /// The CPU that ran the probe.
    pub cpu: u32,
    /// [`SitePlan::probe_id`] of the site.
    pub probe_id: u32,
    /// The site index (the attach cookie).
    pub site: u32,
    /// Number of arguments read.
    pub arg_count: u8,
    /// Reserved, zero.
    pub _reserved: u8,
    /// Bit N set: argument N could not be read (its value is 0), or its
    /// string could not be copied.
    pub faults: u16,
    /// Bytes of string data following this header.
    pub string_bytes: u32,
    /// Bit N set: the string of argument N was longer than [`STRING_CAP`]
    /// (a C string: [`STRING_CAP`] - 1 bytes before its NUL) and was cut.
    pub truncated: u16,
    /// Reserved, zero.
    pub _pad: u16,
    /// Argument values, extended to 64 bits.
    pub args: [u64; MAX_ARGS],
    /// For arguments with a string, the number of bytes of it in the string
    /// area (a C string's count excludes its NUL); otherwise 0.
    pub string_len: [u16; MAX_ARGS],
}

/// The key of one counter in [`AGGREGATES_MAP`]: every counter but those
/// keyed by a string.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// [`SitePlan::aggregation`] of the site.
    pub aggregation: u32,
    /// [`SitePlan::probe_id`] of the site (0 for latency histograms).
    pub probe_id: u32,
    /// The key value: a pid, tid, argument or stack hash
    /// ([`ACTION_COUNT`]), or a slot (histograms: [`histogram_slot`], or
    /// [`HISTOGRAM_SUM`]).
    pub value: u64,
}

/// The key of one counter in [`TEXT_AGGREGATES_MAP`], a count keyed by a
/// string; user space reads the counters of [`AGGREGATES_MAP`] into it too,
/// with an all-zero text.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AggKey {
    /// [`SitePlan::aggregation`] of the site.
    pub aggregation: u32,
    /// [`SitePlan::probe_id`] of the site (0 for latency histograms).
    pub probe_id: u32,
    /// The key value: a pid, tid or argument ([`ACTION_COUNT`]), a slot
    /// (histograms: [`histogram_slot`], or [`HISTOGRAM_SUM`]), or for a string key 1 when the string was cut at
    /// [`KEY_TEXT_CAP`] bytes and 0 otherwise.
    pub value: u64,
    /// A string key's bytes, zero-padded; all zero for other keys.
    pub text: [u8; KEY_TEXT_CAP],
}

impl From<CounterKey> for AggKey {
    fn from(key: CounterKey) -> AggKey {
        AggKey {
            aggregation: key.aggregation,
            probe_id: key.probe_id,
            value: key.value,
            text: [0; KEY_TEXT_CAP],
        }
    }
}

impl Default for AggKey {
    fn default() -> Self {
        AggKey {
            aggregation: 0,
            probe_id: 0,
            value: 0,
            text: [0; KEY_TEXT_CAP],
        }
    }
}

/// The key of one pending latency start in [`STARTS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StartKey {
    /// [`SitePlan::aggregation`] of the latency pair.
    pub aggregation: u32,
    /// The process whose start this is: keys pair within one process.
    pub pid: u32,
    /// The key value (an integer argument, or the thread id).
    pub key: u64,
}

/// The key of a site's index in [`SITE_IPS_MAP`]: its runtime address in
/// process `tgid` (as the initial pid namespace numbers it), or in every
/// process mapping its file at its link-time address when `tgid` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SiteIpKey {
    /// The process, or 0 for every process.
    pub tgid: u32,
    /// Always 0 (explicit padding).
    pub _pad: u32,
    /// The probe's runtime address: the instruction pointer at its hit.
    pub ip: u64,
}

/// Size in bytes of [`EventHeader`].
pub const EVENT_HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();

/// Size of the part of [`EventHeader`] before `args`. A site without
/// strings sends only this part and its `arg_count` arguments (a "short
/// record": at most `EVENT_FIXED_SIZE + 8 * MAX_ARGS`, less than
/// [`EVENT_HEADER_SIZE`]); a site with strings sends the whole header, then
/// the strings.
pub const EVENT_FIXED_SIZE: usize = core::mem::offset_of!(EventHeader, args);

const _: () = assert!(core::mem::size_of::<ArgPlan>() == 24);
const _: () = assert!(core::mem::size_of::<SitePlan>() == 16 + 24 * MAX_ARGS);
const _: () = assert!(EVENT_HEADER_SIZE == 40 + 8 * MAX_ARGS + 2 * MAX_ARGS);
const _: () = assert!(EVENT_HEADER_SIZE.is_multiple_of(8));
const _: () = assert!(EVENT_FIXED_SIZE == 40);
const _: () = assert!(EVENT_FIXED_SIZE + 8 * ARG_COUNT_MASK <= EVENT_HEADER_SIZE);
// One bit per argument in `EventHeader::faults` and `truncated`.
const _: () = assert!(MAX_ARGS <= u16::BITS as usize);
const _: () = assert!(STRING_CLASSES[STRING_CLASSES.len() - 1] == MAX_ARGS);
const _: () = assert!(core::mem::size_of::<CounterKey>() == 16);
const _: () = assert!(core::mem::size_of::<AggKey>() == 16 + KEY_TEXT_CAP);
const _: () = assert!(core::mem::size_of::<StartKey>() == 16);
const _: () = assert!(KEY_TEXT_CAP.is_power_of_two() && KEY_TEXT_CAP <= STRING_CAP);
const _: () = assert!(core::mem::size_of::<Control>() == 24);
const _: () = assert!(core::mem::size_of::<SiteIpKey>() == 16);

/// The program's settings, at index 0 of [`CONTROL_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// Non-zero once user space has attached every site: sites fire only
    /// then, so a trace starts at one instant for all of them.
    pub armed: u32,
    /// Bytes of records a CPU writes between two wake-ups of the reader
    /// (see [`wake_bytes`]); the reader also polls on its own.
    pub wake_bytes: u32,
    /// The traced process (its tgid, as the initial pid namespace numbers
    /// it), or 0 for every process. The program drops the hits of every
    /// other process before anything else, whatever the kernel's own pid
    /// filter let through.
    pub tgid: u32,
    /// Byte offset of the instruction pointer in the kernel's `struct
    /// pt_regs`: the program finds a site by it when the kernel has no BPF
    /// cookies.
    pub ip_offset: u32,
    /// The dynamic linker's hook, when libraries loaded later are
    /// followed, or [`NO_SITE`]: each of its hits sends a record with no
    /// arguments that wakes the reader at once, whatever its plan says.
    pub notify_site: u32,
    /// Non-zero: each hit of `notify_site` also stops the process
    /// (SIGSTOP) once its record is reserved, and user space continues it
    /// (SIGCONT) after reading the record and attaching the libraries the
    /// process mapped. Set only for a process the tracer's user started
    /// (its parent sees the stops).
    pub stop_on_hook: u32,
}

/// [`Control::notify_site`] when no site wakes the reader at once.
pub const NO_SITE: u32 = u32::MAX;

/// The most bytes of records a CPU writes before it wakes the reader.
pub const MAX_WAKE_BYTES: u32 = 1 << 20;

/// [`Control::wake_bytes`] for a ring buffer of `ring_bytes` shared by
/// `cpus` CPUs: a quarter of the ring divided among the CPUs, at most
/// [`MAX_WAKE_BYTES`]. A wake-up interrupts the writing CPU (microseconds
/// in a virtual machine), so they should be rare; the ring must not fill
/// before one comes.
pub fn wake_bytes(ring_bytes: u32, cpus: u32) -> u32 {
    (ring_bytes / 4 / cpus.max(1)).clamp(1, MAX_WAKE_BYTES)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: the types are `repr(C)`, `Copy`, made only of integers and
    // arrays of integers with explicit padding fields, so every bit pattern
    // is a valid value and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::SitePlan {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AggKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CounterKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StartKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Control {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::SiteIpKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_classes_hold_their_strings() {
        let classes: [u8; MAX_ARGS + 1] = core::array::from_fn(string_class);
        assert_eq!(classes, [0, 1, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4]);
        for strings in 0..=MAX_ARGS {
            assert!(strings <= STRING_CLASSES[string_class(strings) as usize]);
        }
    }

    #[test]
    fn wake_ups_come_before_the_ring_fills() {
        assert_eq!(wake_bytes(8 << 20, 2), MAX_WAKE_BYTES);
        assert_eq!(wake_bytes(1 << 20, 2), 128 << 10);
        assert_eq!(wake_bytes(4096, 64), 16);
        assert_eq!(wake_bytes(4096, 0), 1024);
        assert_eq!(wake_bytes(0, 4), 1);
    }

    #[test]
    fn log2_buckets_follow_powers_of_two() {
        assert_eq!(log2_bucket(0), 1);
        assert_eq!(log2_bucket(1), 1);
        assert_eq!(log2_bucket(2), 2);
        assert_eq!(log2_bucket(3), 2);
        assert_eq!(log2_bucket(4), 3);
        assert_eq!(log2_bucket(7), 3);
        assert_eq!(log2_bucket(8), 4);
        assert_eq!(log2_bucket(u64::MAX), 64);
        assert_eq!(log2_bucket(1 << 63), 64);
        for bits in 1..64u32 {
            let low = 1u64 << bits;
            assert_eq!(log2_bucket(low), u64::from(bits) + 1, "2^{bits}");
            assert_eq!(log2_bucket(low - 1), u64::from(bits), "2^{bits} - 1");
            assert_eq!(log2_bucket(low), u64::from(64 - low.leading_zeros()));
        }
    }

    #[test]
    fn negative_values_have_mirror_buckets() {
        let slot = |value: i64| histogram_slot(value as u64, true);
        assert_eq!(slot(0), 1);
        assert_eq!(slot(1), 1);
        assert_eq!(slot(-1), NEGATIVE_SLOTS + 1);
        assert_eq!(slot(-2), NEGATIVE_SLOTS + 2);
        assert_eq!(slot(-3), NEGATIVE_SLOTS + 2);
        assert_eq!(slot(-4), NEGATIVE_SLOTS + 3);
        assert_eq!(slot(-1023), NEGATIVE_SLOTS + 10);
        assert_eq!(slot(-1024), NEGATIVE_SLOTS + 11);
        assert_eq!(slot(i64::MIN), NEGATIVE_SLOTS + 64);
        assert_eq!(slot(i64::MIN + 1), NEGATIVE_SLOTS + 63);
        // Unsigned: the same bits are a large value.
        assert_eq!(histogram_slot(-1i64 as u64, false), 64);
    }
}
