//! The record the custom-tracer example's BPF program sends for each probe
//! hit, shared by the BPF crate and the user program.
#![no_std]

/// Most arguments of a probe site (sys/sdt.h's limit).
pub const MAX_ARGS: usize = 12;
/// Most string arguments copied per hit.
pub const MAX_STRINGS: usize = 4;
/// Bytes kept of each string.
pub const STRING_CAP: usize = 64;
/// Name of the ring buffer map carrying [`Hit`]s.
pub const HITS_MAP: &str = "HITS";
/// The sleepable uprobe program (one perf-event uprobe per site).
pub const PROGRAM: &str = "on_probe";
/// The same program as a plain, not sleepable, uprobe.
pub const PROGRAM_PLAIN: &str = "on_probe_plain";
/// The same program declared for uprobe_multi links (one link per file).
pub const PROGRAM_MULTI: &str = "on_probe_multi";

/// A return probe, which `usdt-aya` refuses to attach to USDT probes.
pub const PROGRAM_RETURN: &str = "on_return";

/// Cookie bits 32 to 43: argument N (bit 32 + N) is a pointer to a C
/// string, to copy. The low 32 bits are the user's own.
pub const CSTR_SHIFT: u32 = 32;

/// One string argument.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Text {
    /// The argument's slot.
    pub arg: u32,
    /// The string's full length (may exceed [`STRING_CAP`]).
    pub len: u32,
    /// The bytes copied (at most [`STRING_CAP`]).
    pub bytes: [u8; STRING_CAP],
}

/// One probe hit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    /// The cookie given at attach time.
    pub cookie: u64,
    /// The process id.
    pub pid: u32,
    /// The site's number of arguments.
    pub arg_count: u32,
    /// Bit N: argument N could not be read.
    pub faults: u32,
    /// Entries of `strings` used.
    pub string_count: u32,
    /// The arguments, widened to 64 bits.
    pub args: [i64; MAX_ARGS],
    /// The string arguments: this SDK's `&str`/`&[u8]` (typed metadata), C
    /// strings by typed metadata or by the cookie's [`CSTR_SHIFT`] bits.
    pub strings: [Text; MAX_STRINGS],
}

#[cfg(feature = "user")]
// SAFETY: `repr(C)`, `Copy`, only integers and arrays of integers, no
// implicit padding: every bit pattern is a valid value.
unsafe impl aya::Pod for Hit {}
