//! [`Semaphore`]: the per-probe counter tracers raise to enable a probe.

use core::sync::atomic::{AtomicU16, Ordering};

/// A probe's semaphore: the `u16` that sys/sdt.h-aware tracers increment
/// while they have the probe enabled and decrement when they detach.
///
/// Typed providers place one per probe in the `.probes` section under the
/// symbol `<provider>_<name>_semaphore`; its address is written in every
/// one of the probe's stapsdt notes. The kernel raises it for a uprobe
/// created with a `ref_ctr_offset` (and tools such as bpftrace do that), in
/// every process that maps the file.
///
/// On targets where probes compile to nothing the semaphore always reads
/// disabled.
#[repr(transparent)]
#[derive(Debug)]
pub struct Semaphore(AtomicU16);

impl Semaphore {
    /// A semaphore that no tracer has raised.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Semaphore {
        Semaphore(AtomicU16::new(0))
    }

    /// Whether at least one tracer has the probe enabled: one load compared
    /// with zero and a branch (on x86-64 `movzwl`, then `test` and `jne`,
    /// which the CPU fuses into one operation).
    #[inline(always)]
    pub fn is_enabled(&self) -> bool {
        crate::PROBES_SUPPORTED && self.read() != 0
    }

    /// The counter, read with one relaxed 16-bit load: only tracers (through
    /// the kernel, from outside this program) write it, and nothing else
    /// needs ordering against it. An atomic load is kept apart from the
    /// comparison; a volatile read would be folded into it (`cmpw $0` on
    /// memory, which cannot fuse with the branch, and measured 10% slower
    /// per untraced hit in `cargo xtask bench-probes`).
    #[inline(always)]
    fn read(&self) -> u16 {
        self.0.load(Ordering::Relaxed)
    }

    /// How many tracers have the probe enabled, as they counted themselves
    /// in.
    #[inline]
    pub fn count(&self) -> u16 {
        self.read()
    }
}
