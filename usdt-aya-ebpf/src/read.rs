//! Reading a probe hit's arguments as their [`UsdtArgSpec`]s say: the
//! registers saved at the hit, user memory, and the strings arguments point
//! to.
//!
//! [`UsdtContext`](crate::UsdtContext) reads through these functions; they
//! are public for programs that keep their specs in maps of their own (the
//! `usdt` tracer's program, which stores a whole plan per site, is one).

use crate::UsdtError;
use aya_ebpf::EbpfContext;
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated};
use aya_ebpf::programs::ProbeContext;
use usdt_aya_common::{
    ARG_CONSTANT, ARG_MEMORY, ARG_REGISTER, NO_REG, UsdtArgSpec, extend, scaled_index,
};

/// What a read does with user memory the process has not touched yet (a
/// string literal or a global on a page not mapped in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Reads only what is mapped in; anything else is a
    /// [`UsdtError::Fault`]. Any program may read so.
    Resident,
    /// Faults the page in (`bpf_copy_from_user`) and reads it. Only
    /// sleepable programs may: the verifier refuses the helper elsewhere,
    /// unless it knows the value is `Resident` (a constant, or a read-only
    /// global set at load time).
    FaultIn,
}

/// Size of the pages faulted in when a string runs onto the next one.
const PAGE: u64 = 4096;

/// Reads the argument `spec` describes, truncated to its size and sign- or
/// zero-extended to 64 bits.
#[inline(always)]
pub fn read_arg(ctx: &ProbeContext, spec: &UsdtArgSpec, paging: Paging) -> Result<u64, UsdtError> {
    let raw = match spec.kind {
        ARG_CONSTANT => return Ok(spec.value as u64),
        ARG_REGISTER => read_register(ctx, spec.reg)? >> (spec.shift & 63),
        ARG_MEMORY => {
            let base = if spec.reg == NO_REG {
                0
            } else {
                read_register(ctx, spec.reg)?
            };
            let index = if spec.index_reg == NO_REG {
                0
            } else {
                scaled_index(
                    read_register(ctx, spec.index_reg)?,
                    spec.index_extend,
                    spec.scale,
                )
            };
            let address = base.wrapping_add(index).wrapping_add(spec.value as u64);
            read_user(address, spec.size, paging)?
        }
        _ => return Err(UsdtError::NoArgument),
    };
    Ok(extend(raw, spec.size, spec.signed != 0))
}

/// Reads the user register saved at byte offset `offset` of the kernel's
/// `struct pt_regs` (as [`UsdtArgSpec::reg`] gives it).
///
/// One helper call whatever the register. Loading the word straight from
/// the context would save the call, but the verifier allows context loads
/// only at constant offsets: a match over the registers' offsets doubled
/// the instructions it follows for a program reading a dozen arguments
/// (and its load time), for no cost per hit that could be measured.
#[inline(always)]
pub fn read_register(ctx: &ProbeContext, offset: u16) -> Result<u64, UsdtError> {
    let at = ctx
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(offset as usize)
        .cast::<u64>();
    // SAFETY: the helper checks the address itself; user space plans only
    // offsets inside `struct pt_regs`.
    unsafe { bpf_probe_read_kernel(at.cast_const()) }.map_err(|_| UsdtError::Fault)
}

/// Reads `size` bytes (1, 2, 4; anything else 8) of user memory at
/// `address`, as the low bytes of a `u64`.
#[inline(always)]
fn read_user(address: u64, size: u8, paging: Paging) -> Result<u64, UsdtError> {
    let mut value: u64 = 0;
    let dst = (&mut value as *mut u64).cast::<u8>();
    let ok = match size {
        1 => user_bytes::<1>(dst, address, paging),
        2 => user_bytes::<2>(dst, address, paging),
        4 => user_bytes::<4>(dst, address, paging),
        _ => user_bytes::<8>(dst, address, paging),
    };
    // Little endian: the low N bytes of `value` hold the N-byte value.
    if ok { Ok(value) } else { Err(UsdtError::Fault) }
}

/// Copies `N` (at most 8) bytes of user memory at `src` to the local at
/// `dst`.
#[inline(always)]
fn user_bytes<const N: u32>(dst: *mut u8, src: u64, paging: Paging) -> bool {
    // SAFETY: `dst` has room for N bytes (a local u64, N <= 8).
    unsafe { copy_user(dst, N, src, paging) }
}

/// Copies `len` bytes of user memory at `src` to `dst`; with
/// [`Paging::FaultIn`] a read that fails is retried with
/// `bpf_copy_from_user`, which faults the pages in.
///
/// # Safety
/// `dst` must have room for `len` bytes.
#[inline(always)]
unsafe fn copy_user(dst: *mut u8, len: u32, src: u64, paging: Paging) -> bool {
    // SAFETY: the caller's promise for `dst`; the helpers check `src`
    // themselves; copy_from_user only where `paging` allows.
    unsafe {
        generated::bpf_probe_read_user(dst.cast(), len, src as *const _) == 0
            || (paging == Paging::FaultIn
                && generated::bpf_copy_from_user(dst.cast(), len, src as *const _) == 0)
    }
}

/// Copies the NUL-terminated user string at `address` into `buf`; returns
/// its length without the NUL and whether it was cut to `N - 1` bytes.
/// With [`Paging::FaultIn`] the string's page and the next are faulted in
/// when needed.
#[inline(always)]
pub fn read_cstr<const N: usize>(
    address: u64,
    buf: &mut [u8; N],
    paging: Paging,
) -> Result<(usize, bool), UsdtError> {
    let dst = buf.as_mut_ptr();
    let mut n = read_user_str::<N>(dst, address);
    if n < 0 {
        fault_in(dst, address, paging)?;
        n = read_user_str::<N>(dst, address);
    }
    if n < 0 {
        let next_page = (address | (PAGE - 1)).wrapping_add(1);
        if next_page.wrapping_sub(address) >= N as u64 {
            return Err(UsdtError::Fault);
        }
        fault_in(dst, next_page, paging)?;
        n = read_user_str::<N>(dst, address);
    }
    if n < 0 {
        return Err(UsdtError::Fault);
    }
    // The helper counts the NUL, so an empty string is 1, except on older
    // kernels (6.1's), whose strncpy_from_user_nofault counts it only after
    // a character: there an empty string is 0 (and 0 is no failure).
    if n == 0 {
        return Ok((0, false));
    }
    let n = n as usize;
    if n >= N {
        // The helper stopped at the cap: the string was longer unless its
        // NUL sits exactly at the last copied position.
        let mut next = 1u8;
        let next_ptr = (&mut next as *mut u8).cast();
        // SAFETY: reads one byte into a local; the helper checks the
        // address.
        let read = unsafe {
            generated::bpf_probe_read_user(next_ptr, 1, (address + N as u64 - 1) as *const _)
        };
        return Ok((N - 1, read != 0 || next != 0));
    }
    Ok((n - 1, false))
}

/// Copies `len` bytes of user memory at `address` into `buf`, cut to `N`;
/// returns the bytes copied and whether that was fewer than `len`.
#[inline(always)]
pub fn read_bytes<const N: usize>(
    address: u64,
    len: u64,
    buf: &mut [u8; N],
    paging: Paging,
) -> Result<(usize, bool), UsdtError> {
    let cut = len > N as u64;
    let n = at_most::<N>(if cut { N as u64 } else { len })?;
    if n == 0 {
        return Ok((0, false));
    }
    // SAFETY: `buf` has room for N bytes and n <= N.
    if unsafe { copy_user(buf.as_mut_ptr(), n, address, paging) } {
        Ok((n as usize, cut))
    } else {
        Err(UsdtError::Fault)
    }
}

/// `bpf_probe_read_user_str` of at most N bytes into `dst`.
#[inline(always)]
fn read_user_str<const N: usize>(dst: *mut u8, src: u64) -> i64 {
    // SAFETY: `dst` has room for N bytes (the callers' buffer); the helper
    // checks `src` and writes at most N bytes.
    unsafe { generated::bpf_probe_read_user_str(dst.cast(), N as u32, src as *const _) }
}

/// Faults in the user page holding `address` by copying one byte of it to
/// `scratch` (overwritten afterwards); a fault where `paging` does not
/// allow it.
#[inline(always)]
fn fault_in(scratch: *mut u8, address: u64, paging: Paging) -> Result<(), UsdtError> {
    if paging != Paging::FaultIn {
        return Err(UsdtError::Fault);
    }
    // SAFETY: `scratch` has room for one byte; the helper checks `address`
    // and may sleep, which the caller's program allows.
    let r = unsafe { generated::bpf_copy_from_user(scratch.cast(), 1, address as *const _) };
    if r == 0 {
        Ok(())
    } else {
        Err(UsdtError::Fault)
    }
}

/// `value`, which the caller has already limited to `MAX`, checked again
/// where the verifier sees it.
///
/// The compiler may pass a value chosen between two (such as `min(len,
/// MAX)`) through a stack slot written before the comparison. Older
/// verifiers (6.1's, 5.10's) keep no range for an unbounded value stored
/// on the stack and do not narrow it by the later comparison, so the
/// value read back at the helper call is unbounded ("R2 min value is
/// negative"). Read afresh through a volatile slot and compared here, it
/// is bounded in the register the call uses, and stays bounded if spilled.
#[inline(always)]
fn at_most<const MAX: usize>(value: u64) -> Result<u32, UsdtError> {
    let mut slot = 0u64;
    // SAFETY: a write and a read of a local.
    let value = unsafe {
        core::ptr::write_volatile(&mut slot, value);
        core::ptr::read_volatile(&slot)
    };
    if value > MAX as u64 {
        return Err(UsdtError::Fault);
    }
    Ok(value as u32)
}
