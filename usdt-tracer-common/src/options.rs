//! Per-site options beside the [`crate::SitePlan`]s: the compiled filter of
//! a site, and whether its hits carry a user stack.
//!
//! User space parses and type-checks a filter expression once, then
//! compiles it for each site (argument names become the site's slots, with
//! their sizes and signs) into a [`SiteOptions`] stored in the
//! [`SITE_OPTIONS_MAP`] array at the site's index (its cookie). The program
//! evaluates it before anything else the site does:
//!
//! 1. string tests first: each [`FilterString`] copies at most
//!    [`FILTER_STRING_CAP`] bytes of a string argument and compares them
//!    with its literal (equality or prefix), setting bit N of a mask;
//! 2. then the instructions, in order, on a stack of one-bit results kept
//!    in a `u64`: [`FILTER_COMPARE`] pushes the comparison of two operands
//!    (an argument, the pid, the tid, a constant), [`FILTER_STRING`] pushes
//!    bit N of the string mask, [`FILTER_AND`], [`FILTER_OR`] and
//!    [`FILTER_NOT`] combine the top of the stack. The hit is kept when the
//!    top bit is 1.
//!
//! Both loops are bounded by constants ([`FILTER_MAX_STRINGS`],
//! [`FILTER_MAX_INSNS`]); no value read from the map becomes a memory
//! offset without a bound check. An argument that cannot be read (a
//! fault) drops the hit, whatever the expression says.

/// Name of the array map of [`SiteOptions`], indexed by cookie like
/// [`crate::SITES_MAP`].
pub const SITE_OPTIONS_MAP: &str = "USDT_SITE_OPTIONS";

/// Most instructions of a compiled filter.
pub const FILTER_MAX_INSNS: usize = 32;
/// Most string tests in a filter.
pub const FILTER_MAX_STRINGS: usize = 4;
/// Bytes of a string argument a string test copies and compares; a
/// literal has at most `FILTER_STRING_CAP - 1` bytes.
pub const FILTER_STRING_CAP: usize = 64;

/// Push the comparison [`FilterInsn::cmp`] of `lhs` with `rhs`.
pub const FILTER_COMPARE: u8 = 1;
/// Push the result of string test [`FilterInsn::string`].
pub const FILTER_STRING: u8 = 2;
/// Pop two results, push their conjunction.
pub const FILTER_AND: u8 = 3;
/// Pop two results, push their disjunction.
pub const FILTER_OR: u8 = 4;
/// Negate the top result.
pub const FILTER_NOT: u8 = 5;

/// `lhs == rhs`.
pub const CMP_EQ: u8 = 0;
/// `lhs != rhs`.
pub const CMP_NE: u8 = 1;
/// `lhs < rhs`.
pub const CMP_LT: u8 = 2;
/// `lhs <= rhs`.
pub const CMP_LE: u8 = 3;
/// `lhs > rhs`.
pub const CMP_GT: u8 = 4;
/// `lhs >= rhs`.
pub const CMP_GE: u8 = 5;

/// The operand is the constant [`FilterOperand::value`].
pub const OPERAND_CONSTANT: u8 = 0;
/// The operand is argument slot [`FilterOperand::slot`] of the site plan,
/// read and extended as its [`crate::ArgPlan`] says.
pub const OPERAND_ARG: u8 = 1;
/// The operand is the process id.
pub const OPERAND_PID: u8 = 2;
/// The operand is the thread id.
pub const OPERAND_TID: u8 = 3;

/// A string test's string is NUL-terminated: no length argument.
pub const NO_LENGTH: u8 = u8::MAX;

/// One side of a comparison. Values compare as mathematical integers: a
/// signed operand whose value is negative is below every unsigned one,
/// otherwise the 64-bit values compare unsigned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterOperand {
    /// The constant, for [`OPERAND_CONSTANT`] (a negative constant is
    /// stored as its two's complement with `signed` 1).
    pub value: u64,
    /// One of `OPERAND_*`.
    pub kind: u8,
    /// The argument slot, for [`OPERAND_ARG`].
    pub slot: u8,
    /// 1 when the value is signed.
    pub signed: u8,
    /// Reserved, zero.
    pub _pad: [u8; 5],
}

/// One instruction of a compiled filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterInsn {
    /// One of `FILTER_*`.
    pub op: u8,
    /// For [`FILTER_COMPARE`]: one of `CMP_*`.
    pub cmp: u8,
    /// For [`FILTER_STRING`]: the string test's index.
    pub string: u8,
    /// Reserved, zero.
    pub _pad: [u8; 5],
    /// The left operand of a comparison.
    pub lhs: FilterOperand,
    /// The right operand of a comparison.
    pub rhs: FilterOperand,
}

/// One string test: the string of argument `arg` equals, or starts with,
/// the literal.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterString {
    /// The argument slot holding the string's address.
    pub arg: u8,
    /// The slot holding its length (a `&str`, `&[u8]`), or [`NO_LENGTH`]
    /// for a NUL-terminated string.
    pub length_arg: u8,
    /// 1: a prefix test; 0: equality.
    pub prefix: u8,
    /// Bytes of the literal, less than [`FILTER_STRING_CAP`].
    pub len: u8,
    /// Reserved, zero.
    pub _pad: [u8; 4],
    /// The literal, zero-padded.
    pub bytes: [u8; FILTER_STRING_CAP],
}

impl Default for FilterString {
    fn default() -> Self {
        FilterString {
            arg: 0,
            length_arg: NO_LENGTH,
            prefix: 0,
            len: 0,
            _pad: [0; 4],
            bytes: [0; FILTER_STRING_CAP],
        }
    }
}

/// What a site does besides its plan.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteOptions {
    /// Instructions of the filter; 0: every hit is kept.
    pub insn_count: u8,
    /// String tests of the filter.
    pub string_count: u8,
    /// Non-zero: a streamed hit carries the user stack ([`StackArea`]
    /// after the header).
    pub stack: u8,
    /// Reserved, zero.
    pub _pad: [u8; 5],
    /// The filter's instructions.
    pub insns: [FilterInsn; FILTER_MAX_INSNS],
    /// The filter's string tests.
    pub strings: [FilterString; FILTER_MAX_STRINGS],
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            insn_count: 0,
            string_count: 0,
            stack: 0,
            _pad: [0; 5],
            insns: [FilterInsn::default(); FILTER_MAX_INSNS],
            strings: [FilterString::default(); FILTER_MAX_STRINGS],
        }
    }
}

/// Most user stack frames a streamed hit carries (the kernel's default
/// `perf_event_max_stack`).
pub const STACK_DEPTH: usize = 127;

/// The user stack of a streamed hit, between the [`crate::EventHeader`]
/// (always whole for such sites) and the string area: what
/// `bpf_get_stack(BPF_F_USER_STACK)` wrote.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackArea {
    /// Bytes of `ips` written (8 per frame), or a negative error.
    pub bytes: i64,
    /// Return addresses, innermost (the probe site) first.
    pub ips: [u64; STACK_DEPTH],
}

/// Size in bytes of [`StackArea`].
pub const STACK_AREA_SIZE: usize = core::mem::size_of::<StackArea>();

/// Name of the BPF hash map of the stacks that hits are counted by
/// ([`crate::KEY_STACK`]): a stack's [`stack_hash`] to its
/// [`CountedStack`], stored at the first hit with that stack.
pub const STACKS_MAP: &str = "USDT_STACKS";
/// Name of the per-CPU array map (one [`StackScratch`] at index 0) where
/// the program reads a hit's stack before it hashes it: a stack is larger
/// than the 512 bytes of a BPF program's own stack.
pub const STACK_SCRATCH_MAP: &str = "USDT_STACK_SCRATCH";
/// Most distinct stacks [`STACKS_MAP`] holds (about 2 KiB of kernel memory
/// each, allocated as stacks appear); hits with a stack that finds the
/// map full are counted as lost.
pub const MAX_COUNTED_STACKS: u32 = 16384;

/// A user stack that hits are counted by, and its process: the addresses
/// mean something only in that process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountedStack {
    /// The process (its tgid, as the initial pid namespace numbers it).
    pub tgid: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// The stack, as `bpf_get_stack(BPF_F_USER_STACK)` wrote it (the kernel
    /// zeroes the addresses past the last frame).
    pub area: StackArea,
}

/// The value of [`STACK_SCRATCH_MAP`]: a hit's stack while the program
/// hashes and stores it, and the thread using it. A sleepable program can
/// be preempted meanwhile, and a hit of another thread on the same CPU then
/// takes the same area: the program finds `owner` changed and does not
/// count a stack that may be the other thread's, or a mix of both.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackScratch {
    /// `bpf_get_current_pid_tgid()` of the hit that last took the area.
    pub owner: u64,
    /// The stack being counted.
    pub stack: CountedStack,
}

/// The key a hit counted by its stack is counted under: FNV-1a over the
/// process and every address of the stack (zeroes past its last frame
/// included), so the same stack in the same process always gives the same
/// key. Distinct stacks share a key with a chance of about one in 2^64 per
/// pair, and then count together.
#[inline(always)]
pub fn stack_hash(stack: &CountedStack) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    hash = (hash ^ u64::from(stack.tgid)).wrapping_mul(PRIME);
    let mut i = 0;
    while i < STACK_DEPTH {
        hash = (hash ^ stack.area.ips[i]).wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

const _: () = assert!(core::mem::size_of::<FilterOperand>() == 16);
const _: () = assert!(core::mem::size_of::<FilterInsn>() == 40);
const _: () = assert!(core::mem::size_of::<FilterString>() == 8 + FILTER_STRING_CAP);
const _: () = assert!(FILTER_STRING_CAP.is_multiple_of(8) && FILTER_STRING_CAP <= 256);
const _: () = assert!(FILTER_MAX_INSNS <= 64);
const _: () = assert!(STACK_AREA_SIZE == 1024);
const _: () = assert!(core::mem::size_of::<CountedStack>() == 8 + STACK_AREA_SIZE);
const _: () = assert!(core::mem::size_of::<StackScratch>() == 16 + STACK_AREA_SIZE);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: the types are `repr(C)`, `Copy`, made only of integers and
    // arrays of integers with explicit padding fields, so every bit pattern
    // is a valid value and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::SiteOptions {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StackArea {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CountedStack {}
}
