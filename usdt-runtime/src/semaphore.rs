//! [`Semaphore`]: the per-probe counter tracers raise to enable a probe.

use core::sync::atomic::AtomicU16;

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
    /// with zero (on x86-64 a single `cmpw $0, SEMAPHORE` and a branch).
    #[inline(always)]
    pub fn is_enabled(&self) -> bool {
        crate::PROBES_SUPPORTED && self.read() != 0
    }

    /// The counter, read with one volatile 16-bit load. Only tracers (through
    /// the kernel, outside this program) write it, as for memory-mapped
    /// device registers; unlike an atomic load, a volatile load lets the
    /// compiler fold the read into the comparison.
    #[inline(always)]
    fn read(&self) -> u16 {
        // SAFETY: the pointer comes from a live, aligned `AtomicU16`, valid
        // for reads for as long as `self` is borrowed; nothing in this
        // program writes it.
        unsafe { self.0.as_ptr().read_volatile() }
    }

    /// How many tracers have the probe enabled, as they counted themselves
    /// in.
    #[inline]
    pub fn count(&self) -> u16 {
        self.read()
    }
}
