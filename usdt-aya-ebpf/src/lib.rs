//! Read USDT probe arguments from aya BPF programs: the BPF half of
//! `usdt-aya`, as `bpf_usdt_arg()`, `bpf_usdt_arg_cnt()` and
//! `bpf_usdt_cookie()` are for libbpf programs.
//!
//! Attach the program from user space with `usdt_aya::Usdt::attach`, which
//! stores one argument spec per probe site in this crate's map
//! (`USDT_AYA_SPECS`, found by name, as aya-log finds its buffer) and gives
//! each site's link the spec's id as its BPF cookie.
//!
//! ```no_run
//! use aya_ebpf::{macros::uprobe, programs::ProbeContext};
//! use usdt_aya_ebpf::UsdtContext;
//!
//! #[uprobe]
//! pub fn on_probe(ctx: ProbeContext) -> u32 {
//!     let Ok(usdt) = UsdtContext::new(&ctx) else { return 1 };
//!     let n: usize = usdt.arg_count();
//!     let v: Result<i64, _> = usdt.arg(3); // widened by the operand's size and sign
//!     let c: u64 = usdt.cookie(); // the cookie the user gave at attach time
//!     let mut buf = [0u8; 32];
//!     let s: Result<&[u8], _> = usdt.read_str(8, &mut buf); // without the NUL
//!     0
//! }
//! ```
//!
//! Plain `#[uprobe]` programs get one perf-event link per site;
//! `#[uprobe(multi)]` programs (loaded by aya for uprobe_multi links) get
//! one uprobe_multi link per file on kernels that have them (6.6+).
//! Sleepable programs (`#[uprobe(sleepable)]`, `#[uprobe(multi, sleepable)]`)
//! work too, and can read strings on pages the process never touched (a
//! string literal in a freshly started program) with
//! [`UsdtContext::read_str_sleepable`] and
//! [`UsdtContext::read_slice_sleepable`]; elsewhere, as with libbpf, such a
//! read is a [`UsdtError::Fault`].
//!
//! Programs that keep argument specs in maps of their own read with the
//! free functions ([`read_arg`], [`read_cstr`], [`read_bytes`]) that
//! `UsdtContext` reads through; built without the default `context`
//! feature, the crate declares no maps (the `usdt` tracer's program reads
//! so).
//!
//! Kernels without BPF cookies (before 5.15): user space sets the
//! `USDT_AYA_NO_COOKIE` global at load time and the spec is found by the
//! hit's instruction pointer instead (see `usdt_aya`).
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "context")]
mod context;
mod read;

#[cfg(feature = "context")]
pub use context::UsdtContext;
pub use read::{Paging, read_arg, read_bytes, read_cstr, read_register};
pub use usdt_aya_common::{
    ARG_CONSTANT, ARG_INDEX_MASK, ARG_MEMORY, ARG_REGISTER, INDEX_SXTW, INDEX_UXTW, INDEX_WHOLE,
    MAX_ARGS, NO_REG, STRING_CSTR, STRING_NONE, STRING_PTR_LEN, UsdtArgSpec, UsdtSpec,
};

/// Why an argument could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsdtError {
    /// No spec for this hit: the program was not attached by `usdt-aya`, or
    /// the site was detached meanwhile.
    NoSpec,
    /// The probe has no argument of this index (or, for a pointer and
    /// length pair, none after it).
    NoArgument,
    /// A register or user memory could not be read.
    Fault,
}
