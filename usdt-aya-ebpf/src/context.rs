//! [`UsdtContext`]: a hit's argument spec, found in this crate's maps.

use crate::{Paging, UsdtError, read_arg, read_bytes, read_cstr, read_register};
use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::generated;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap};
use aya_ebpf::programs::ProbeContext;
use usdt_aya_common::{
    ARG_INDEX_MASK, IP_MAP, MAX_ARGS, MAX_IPS, MAX_SPECS, NO_COOKIE_GLOBAL, SPECS_MAP, STRING_NONE,
    UsdtArgSpec, UsdtSpec, same_name,
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
        Ok(read_arg(self.ctx, self.arg_spec(n)?, Paging::Resident)? as i64)
    }

    /// [`arg`](Self::arg) for sleepable programs (`#[uprobe(sleepable)]`):
    /// an argument in memory on a page the process has not touched yet (a
    /// global in a freshly started program) is faulted in and read. The
    /// verifier refuses this call in other programs.
    #[inline(always)]
    pub fn arg_sleepable(&self, n: usize) -> Result<i64, UsdtError> {
        Ok(read_arg(self.ctx, self.arg_spec(n)?, Paging::FaultIn)? as i64)
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
        self.str_arg(n, buf, Paging::Resident)
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
        self.slice_arg(n, buf, Paging::Resident)
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
        self.str_arg(n, buf, Paging::FaultIn)
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
        self.slice_arg(n, buf, Paging::FaultIn)
    }

    /// The C string argument `n` points to, copied into `buf`.
    #[inline(always)]
    fn str_arg<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
        paging: Paging,
    ) -> Result<&'b [u8], UsdtError> {
        let address = read_arg(self.ctx, self.arg_spec(n)?, paging)?;
        let (len, _) = read_cstr(address, buf, paging)?;
        buf.get(..len).ok_or(UsdtError::Fault)
    }

    /// The pointer and length pair at `n`, its bytes copied into `buf`.
    #[inline(always)]
    fn slice_arg<'b, const N: usize>(
        &self,
        n: usize,
        buf: &'b mut [u8; N],
        paging: Paging,
    ) -> Result<(&'b [u8], u64), UsdtError> {
        let address = read_arg(self.ctx, self.arg_spec(n)?, paging)?;
        let len = read_arg(self.ctx, self.arg_spec(n + 1)?, paging)?;
        let (copied, _) = read_bytes(address, len, buf, paging)?;
        Ok((buf.get(..copied).ok_or(UsdtError::Fault)?, len))
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
    let ip = read_register(ctx, IP_OFFSET?).ok()?;
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
