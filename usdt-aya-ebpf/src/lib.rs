//! Read USDT probe arguments from aya BPF programs: the BPF half of
//! `usdt-aya`, as `bpf_usdt_arg()`, `bpf_usdt_arg_cnt()` and
//! `bpf_usdt_cookie()` are for libbpf programs.
//!
//! Attach the program from user space with `usdt_aya::Usdt::attach`, which
//! stores one argument spec per probe site in this crate's map
//! (`USDT_AYA_SPECS`, found by name, as aya-log finds its buffer) and gives
//! each site's link the spec's id as its BPF cookie.
//!
//! ```ignore
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
//! Kernels without BPF cookies (before 5.15): user space sets the
//! `USDT_AYA_NO_COOKIE` global at load time and the spec is found by the
//! hit's instruction pointer instead (see `usdt_aya`).
#![no_std]
#![deny(missing_docs)]

use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::{
    bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_buf,
    bpf_probe_read_user_str_bytes, generated,
};
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap};
use aya_ebpf::programs::ProbeContext;
pub use usdt_aya_common::{
    ARG_CONSTANT, ARG_INDEX_MASK, ARG_MEMORY, ARG_REGISTER, INDEX_SXTW, INDEX_UXTW, INDEX_WHOLE,
    MAX_ARGS, NO_REG, STRING_CSTR, STRING_NONE, STRING_PTR_LEN, UsdtArgSpec, UsdtSpec,
};
use usdt_aya_common::{
    IP_MAP, MAX_IPS, MAX_SPECS, NO_COOKIE_GLOBAL, SPECS_MAP, extend, same_name, scaled_index,
};

/// Argument specs, indexed by spec id (the link's cookie).
#[map]
static USDT_AYA_SPECS: Array<UsdtSpec> = Array::with_max_entries(MAX_SPECS, 0);

/// Spec ids by runtime instruction pointer, for kernels without cookies.
#[map]
static USDT_AYA_IP_TO_SPEC: HashMap<u64, u32> = HashMap::with_max_entries(MAX_IPS, 0);

/// 1 when the spec is found by instruction pointer (no BPF cookies); set
/// by user space at load time. Read through `read_volatile` so the
/// compiler does not fold it; the verifier knows its value and drops the
/// branch not taken.
#[unsafe(no_mangle)]
static USDT_AYA_NO_COOKIE: u8 = 0;

// aya names maps and globals after their statics: they must carry the names
// user space looks for.
const _: () = assert!(same_name("USDT_AYA_SPECS", SPECS_MAP));
const _: () = assert!(same_name("USDT_AYA_IP_TO_SPEC", IP_MAP));
const _: () = assert!(same_name("USDT_AYA_NO_COOKIE", NO_COOKIE_GLOBAL));

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

/// A probe hit with its argument spec: reads the probe's arguments.
pub struct UsdtContext<'a> {
    ctx: &'a ProbeContext,
    spec: &'a UsdtSpec,
}

impl<'a> UsdtContext<'a> {
    /// Finds the argument spec of the site that fired: by the link's
    /// cookie, or by instruction pointer on kernels without cookies.
    #[inline(always)]
    pub fn new(ctx: &'a ProbeContext) -> Result<UsdtContext<'a>, UsdtError> {
        let id = spec_id(ctx).ok_or(UsdtError::NoSpec)?;
        let spec = USDT_AYA_SPECS.get(id).ok_or(UsdtError::NoSpec)?;
        Ok(UsdtContext { ctx, spec })
    }

    /// The number of arguments the probe site has (at most [`MAX_ARGS`]).
    #[inline(always)]
    pub fn arg_count(&self) -> usize {
        (self.spec.arg_count as usize).min(MAX_ARGS)
    }

    /// The cookie the user gave when attaching this program to the probe.
    #[inline(always)]
    pub fn cookie(&self) -> u64 {
        self.spec.cookie
    }

    /// The site's spec (where each argument lives), as user space stored it.
    #[inline(always)]
    pub fn spec(&self) -> &UsdtSpec {
        self.spec
    }

    /// What typed metadata says of argument `n` being a string: one of
    /// [`STRING_NONE`], [`STRING_CSTR`] (a C string pointer) or
    /// [`STRING_PTR_LEN`] (this SDK's `&str`/`&[u8]`: pointer here, length
    /// in the next argument).
    #[inline(always)]
    pub fn string_kind(&self, n: usize) -> u8 {
        match self.arg_spec(n) {
            Ok(spec) => spec.string,
            Err(_) => STRING_NONE,
        }
    }

    /// Argument `n` (from 0), truncated to its operand's size and sign- or
    /// zero-extended to 64 bits; an unsigned 64-bit value keeps its bits
    /// (read it back with `as u64`).
    #[inline(always)]
    pub fn arg(&self, n: usize) -> Result<i64, UsdtError> {
        let spec = self.arg_spec(n)?;
        let raw = match spec.kind {
            ARG_CONSTANT => return Ok(spec.value),
            ARG_REGISTER => read_reg(self.ctx, spec.reg)? >> (spec.shift & 63),
            ARG_MEMORY => {
                let base = if spec.reg == NO_REG {
                    0
                } else {
                    read_reg(self.ctx, spec.reg)?
                };
                let index = if spec.index_reg == NO_REG {
                    0
                } else {
                    scaled_index(read_reg(self.ctx, spec.index_reg)?, spec.index_extend, spec.scale)
                };
                let address = base.wrapping_add(index).wrapping_add(spec.value as u64);
                read_user(address, spec.size)?
            }
            _ => return Err(UsdtError::NoArgument),
        };
        Ok(extend(raw, spec.size, spec.signed != 0) as i64)
    }

    /// Copies the NUL-terminated string argument `n` points to into `buf`
    /// and returns its bytes without the NUL; a longer string is cut to
    /// `N - 1` bytes.
    #[inline(always)]
    pub fn read_str<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
    ) -> Result<&'b [u8], UsdtError> {
        let address = self.arg(n)? as u64;
        // SAFETY: the helper checks the user address itself and writes at
        // most N bytes into `buf`.
        unsafe { bpf_probe_read_user_str_bytes(address as *const u8, buf) }
            .map_err(|_| UsdtError::Fault)
    }

    /// Copies the bytes of a Rust `&str` or `&[u8]` argument (this SDK's
    /// probes pass it as two arguments: the pointer at `n`, the length at
    /// `n + 1`) into `buf`; a longer value is cut to `N` bytes. Returns the
    /// bytes copied and the value's full length.
    #[inline(always)]
    pub fn read_slice<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
    ) -> Result<(&'b [u8], u64), UsdtError> {
        let (address, len, copied) = self.slice_arg::<N>(n)?;
        if copied == 0 {
            return Ok((&buf[..0], len));
        }
        let dst = buf.get_mut(..copied).ok_or(UsdtError::Fault)?;
        // SAFETY: the helper checks the user address itself and writes
        // `dst.len()` bytes into `dst`.
        unsafe { bpf_probe_read_user_buf(address as *const u8, dst) }
            .map_err(|_| UsdtError::Fault)?;
        Ok((&buf[..copied], len))
    }

    /// [`read_str`](Self::read_str) for sleepable programs
    /// (`#[uprobe(sleepable)]`): a string on a page the process has not
    /// touched yet (a literal in a freshly started program) is faulted in
    /// and read. The verifier refuses this call in other programs.
    #[inline(always)]
    pub fn read_str_sleepable<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
    ) -> Result<&'b [u8], UsdtError> {
        let address = self.arg(n)? as u64;
        // SAFETY (both reads): the helper checks the user address itself
        // and writes at most N bytes into `buf`.
        if unsafe { bpf_probe_read_user_str_bytes(address as *const u8, buf) }.is_err() {
            fault_in(address)?;
        }
        unsafe { bpf_probe_read_user_str_bytes(address as *const u8, buf) }
            .map_err(|_| UsdtError::Fault)
    }

    /// [`read_slice`](Self::read_slice) for sleepable programs: pages the
    /// process has not touched yet are faulted in (see
    /// [`read_str_sleepable`](Self::read_str_sleepable)).
    #[inline(always)]
    pub fn read_slice_sleepable<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
    ) -> Result<(&'b [u8], u64), UsdtError> {
        let (address, len, copied) = self.slice_arg::<N>(n)?;
        if copied == 0 {
            return Ok((&buf[..0], len));
        }
        let dst = buf.get_mut(..copied).ok_or(UsdtError::Fault)?;
        // SAFETY: `dst` has room for `copied` bytes; the helper checks the
        // user address itself and may sleep, which the caller's program
        // allows.
        let r = unsafe {
            generated::bpf_copy_from_user(
                dst.as_mut_ptr().cast(),
                copied as u32,
                address as *const _,
            )
        };
        if r != 0 {
            return Err(UsdtError::Fault);
        }
        Ok((&buf[..copied], len))
    }

    /// A pointer and length pair at `n`: the address, the length and the
    /// bytes that fit in `N`.
    #[inline(always)]
    fn slice_arg<const N: usize>(&self, n: usize) -> Result<(u64, u64, usize), UsdtError> {
        let address = self.arg(n)? as u64;
        let len = self.arg(n + 1)? as u64;
        Ok((address, len, bounded::<N>(len)))
    }

    /// The spec of argument `n`, bounded for the verifier.
    #[inline(always)]
    fn arg_spec(&self, n: usize) -> Result<&UsdtArgSpec, UsdtError> {
        if n >= self.arg_count() {
            return Err(UsdtError::NoArgument);
        }
        // The compiler knows `n < MAX_ARGS` from the test above and would
        // drop the mask and the bound check of `get`; the verifier would
        // then have only the test against the count, which 5.10's loses (it
        // follows a path where the count's bounds contradict each other).
        // Read back through memory, the index is checked here, where every
        // verifier sees it bounded.
        // SAFETY: a volatile read of a local.
        let index = unsafe { core::ptr::read_volatile(&n) } & ARG_INDEX_MASK;
        self.spec.args.get(index).ok_or(UsdtError::NoArgument)
    }
}

/// The spec id of the hit: the link's cookie, or the id stored under the
/// instruction pointer when user space says the kernel has no cookies.
#[inline(always)]
fn spec_id(ctx: &ProbeContext) -> Option<u32> {
    // SAFETY: a read of an initialized static.
    let no_cookie = unsafe { core::ptr::read_volatile(&USDT_AYA_NO_COOKIE) };
    if no_cookie == 0 {
        // SAFETY: the helper only reads the cookie of the running program's
        // link.
        return Some(unsafe { generated::bpf_get_attach_cookie(ctx.as_ptr()) } as u32);
    }
    let ip = read_reg(ctx, IP_OFFSET?).ok()?;
    // SAFETY: the value is copied out at once; user space alone updates
    // the map.
    unsafe { USDT_AYA_IP_TO_SPEC.get(&ip) }.copied()
}

/// Byte offset of the instruction pointer in `struct pt_regs`.
#[cfg(usdt_arch = "x86_64")]
const IP_OFFSET: Option<u16> = Some(16 * 8);
/// Byte offset of the instruction pointer (`pc`) in `struct user_pt_regs`.
#[cfg(usdt_arch = "aarch64")]
const IP_OFFSET: Option<u16> = Some(32 * 8);
/// No known instruction pointer offset.
#[cfg(usdt_arch = "other")]
const IP_OFFSET: Option<u16> = None;

/// Reads the saved user register at byte offset `offset` of `struct pt_regs`.
#[inline(always)]
fn read_reg(ctx: &ProbeContext, offset: u16) -> Result<u64, UsdtError> {
    let at = ctx
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(offset as usize)
        .cast::<u64>();
    // SAFETY: the helper checks the address itself; user space plans only
    // offsets inside `struct pt_regs`.
    unsafe { bpf_probe_read_kernel(at.cast_const()) }.map_err(|_| UsdtError::Fault)
}

/// Reads `size` bytes (1, 2, 4 or 8) of user memory at `address`, as the
/// low bytes of a `u64` (little endian).
#[inline(always)]
fn read_user(address: u64, size: u8) -> Result<u64, UsdtError> {
    // SAFETY (each arm): the helper checks the user address itself.
    let value = unsafe {
        match size {
            1 => bpf_probe_read_user(address as *const u8).map(u64::from),
            2 => bpf_probe_read_user(address as *const u16).map(u64::from),
            4 => bpf_probe_read_user(address as *const u32).map(u64::from),
            _ => bpf_probe_read_user(address as *const u64),
        }
    };
    value.map_err(|_| UsdtError::Fault)
}

/// Faults in the user page holding `address` (sleepable programs only).
#[inline(always)]
fn fault_in(address: u64) -> Result<(), UsdtError> {
    let mut byte = 0u8;
    // SAFETY: writes one byte into a local; the helper checks `address`
    // and may sleep.
    let r = unsafe {
        generated::bpf_copy_from_user((&mut byte as *mut u8).cast(), 1, address as *const _)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(UsdtError::Fault)
    }
}

/// `len`, at most `N`, read back through a volatile slot so that older
/// verifiers see the bound where the value is used.
#[inline(always)]
fn bounded<const N: usize>(len: u64) -> usize {
    let mut slot = if len > N as u64 { N as u64 } else { len };
    // SAFETY: a write and a read of a local.
    let value = unsafe {
        core::ptr::write_volatile(&mut slot, slot);
        core::ptr::read_volatile(&slot)
    };
    if value > N as u64 { N } else { value as usize }
}
