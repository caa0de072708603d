//! The argument specs shared by the two halves of USDT support for aya:
//! `usdt-aya-ebpf`, which BPF programs link to read a probe's arguments, and
//! `usdt-aya`, which attaches those programs to probe sites.
//!
//! The contract, in libbpf's terms (`usdt.bpf.h`):
//!
//! - User space computes one [`UsdtSpec`] per attached probe site (sites of
//!   one probe differ in where their arguments live) and stores it in the
//!   [`SPECS_MAP`] array under a spec id of its choosing. The spec id is the
//!   BPF cookie of the site's uprobe link; the cookie the user asked for is
//!   kept in the spec ([`UsdtSpec::cookie`]).
//! - On kernels without BPF cookies (before 5.15) the program finds the
//!   spec id by the hit's instruction pointer in the [`IP_MAP`] hash map
//!   instead, when user space has set [`NO_COOKIE_GLOBAL`] at load time.
//! - Each argument ([`UsdtArgSpec`]) is a constant, a register (a byte offset
//!   into the kernel's `struct pt_regs`), or user memory at a register plus
//!   an optional index register (whole, or its low 32 bits sign- or
//!   zero-extended, as aarch64's `sxtw` and `uxtw` say) times a scale plus
//!   a displacement. Operands
//!   relative to a link-time address (x86-64 `sym(%rip)`) are planned
//!   relative to the instruction pointer, so one spec is right in every
//!   process whatever its load bias.
//!
//! The BPF side declares the maps (named by the constants here, so user
//! space finds them by name, as `aya-log` finds its ring buffer); every type
//! is plain old data with explicit padding, so both sides agree byte for
//! byte. The `user` feature implements `aya::Pod` for them.
#![no_std]
#![deny(missing_docs)]

/// Most arguments a probe site can carry: the format's limit (sys/sdt.h's).
pub use usdt_format::MAX_ARGS;

/// Name of the BPF array map of [`UsdtSpec`]s, indexed by spec id.
pub const SPECS_MAP: &str = "USDT_AYA_SPECS";
/// Name of the BPF hash map from a site's runtime instruction pointer (a
/// `u64`) to its spec id (a `u32`), used only on kernels without cookies.
pub const IP_MAP: &str = "USDT_AYA_IP_TO_SPEC";
/// Name of the read-only global (`u8`) that user space sets to 1 at load
/// time on kernels without BPF cookies: the program then finds the spec by
/// instruction pointer, and the verifier drops the cookie helper call it
/// would refuse.
pub const NO_COOKIE_GLOBAL: &str = "USDT_AYA_NO_COOKIE";
/// Entries of [`SPECS_MAP`]: the most probe sites attached at once
/// through one loaded object (raise it with aya's
/// `EbpfLoader::map_max_entries`).
pub const MAX_SPECS: u32 = 4096;
/// Entries of [`IP_MAP`].
pub const MAX_IPS: u32 = MAX_SPECS;

/// The smallest all-ones mask that keeps every argument index below
/// [`MAX_ARGS`] reachable: `n & ARG_INDEX_MASK` shows the verifier that an
/// index already checked against [`MAX_ARGS`] is bounded.
pub const ARG_INDEX_MASK: usize = MAX_ARGS.next_power_of_two() - 1;

/// The argument is absent (beyond the site's argument count).
pub const ARG_NONE: u8 = 0;
/// The argument is the constant [`UsdtArgSpec::value`].
pub const ARG_CONSTANT: u8 = 1;
/// The argument is the register at `pt_regs` offset [`UsdtArgSpec::reg`],
/// shifted right by [`UsdtArgSpec::shift`] bits.
pub const ARG_REGISTER: u8 = 2;
/// The argument is in user memory at `reg + index * scale + value`.
pub const ARG_MEMORY: u8 = 3;

/// No index register in a memory operand.
pub const NO_REG: u16 = u16::MAX;

/// The index register is used whole (x86-64, aarch64 `[x0, x1, lsl #3]`).
pub const INDEX_WHOLE: u8 = 0;
/// The index is the register's low 32 bits, zero-extended (aarch64
/// `[x0, w1, uxtw]`).
pub const INDEX_UXTW: u8 = 1;
/// The index is the register's low 32 bits, sign-extended (aarch64
/// `[sp, w0, sxtw]`).
pub const INDEX_SXTW: u8 = 2;

/// Nothing says the argument is a string.
pub const STRING_NONE: u8 = 0;
/// The argument is a pointer to a NUL-terminated string (typed metadata
/// says `CStr`, or the user asked for it).
pub const STRING_CSTR: u8 = 1;
/// The argument is a pointer to bytes whose length is the next argument
/// (this SDK's Rust `&str`, `&[u8]` and JSON arguments).
pub const STRING_PTR_LEN: u8 = 2;

/// Where one argument's value lives and how to extend it to 64 bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsdtArgSpec {
    /// The constant (for [`ARG_CONSTANT`], already truncated and extended)
    /// or the displacement (for [`ARG_MEMORY`]).
    pub value: i64,
    /// One of `ARG_*`.
    pub kind: u8,
    /// Size of the value in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// 1 when the value is signed (sign-extended), 0 when zero-extended.
    pub signed: u8,
    /// Right shift applied to a register before truncation (8 for the x86
    /// high-byte registers `%ah`..`%dh`).
    pub shift: u8,
    /// Byte offset in `struct pt_regs` of the register or base register.
    pub reg: u16,
    /// Byte offset in `struct pt_regs` of the index register, or [`NO_REG`].
    pub index_reg: u16,
    /// Scale of the index register (1, 2, 4 or 8).
    pub scale: u8,
    /// One of `STRING_*`: what is known of the argument being a string.
    pub string: u8,
    /// One of `INDEX_*`: how the index register becomes a 64-bit offset.
    pub index_extend: u8,
    /// Reserved, zero.
    pub _pad: [u8; 5],
}

/// One probe site's arguments and the user's cookie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsdtSpec {
    /// The cookie the user gave when attaching.
    pub cookie: u64,
    /// Number of arguments (at most [`MAX_ARGS`]).
    pub arg_count: u8,
    /// Reserved, zero.
    pub _pad: [u8; 7],
    /// One spec per argument; entries past `arg_count` are [`ARG_NONE`].
    pub args: [UsdtArgSpec; MAX_ARGS],
}

/// Whether two names are the same, in a `const` context (`str` equality is
/// not `const`): BPF crates check with it, at build time, that the statics
/// aya names their maps and globals after carry the names user space looks
/// up.
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Truncates `raw` to `size` bytes (1, 2, 4; anything else keeps all 8)
/// and sign- or zero-extends it to 64 bits, as an argument of that size and
/// sign is read.
#[inline(always)]
pub fn extend(raw: u64, size: u8, signed: bool) -> u64 {
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

/// The offset a memory operand's index adds: the index register's value
/// `raw`, extended as `index_extend` (one of `INDEX_*`) says, times `scale`.
#[inline(always)]
pub fn scaled_index(raw: u64, index_extend: u8, scale: u8) -> u64 {
    let index = match index_extend {
        INDEX_UXTW => extend(raw, 4, false),
        INDEX_SXTW => extend(raw, 4, true),
        _ => raw,
    };
    index.wrapping_mul(scale as u64)
}

const _: () = assert!(core::mem::size_of::<UsdtArgSpec>() == 24);
const _: () = assert!(core::mem::size_of::<UsdtSpec>() == 16 + 24 * MAX_ARGS);
const _: () = assert!(ARG_INDEX_MASK + 1 >= MAX_ARGS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_extend_their_low_32_bits_as_planned() {
        // -3 in the low half, something else in the high half.
        let raw = 0x5a5a_5a5a_ffff_fffd;
        assert_eq!(scaled_index(raw, INDEX_SXTW, 1), -3i64 as u64);
        assert_eq!(scaled_index(raw, INDEX_SXTW, 4), -12i64 as u64);
        assert_eq!(scaled_index(raw, INDEX_UXTW, 1), 0xffff_fffd);
        assert_eq!(scaled_index(raw, INDEX_UXTW, 8), 0xffff_fffd * 8);
        assert_eq!(scaled_index(raw, INDEX_WHOLE, 2), raw.wrapping_mul(2));
        assert_eq!(scaled_index(0x5a5a_5a5a_0000_0003, INDEX_SXTW, 2), 6);
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: the types are `repr(C)`, `Copy`, made only of integers and
    // arrays of integers with explicit padding fields, so every bit pattern
    // is a valid value and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::UsdtArgSpec {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::UsdtSpec {}
}
