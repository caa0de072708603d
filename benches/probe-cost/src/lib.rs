//! The loops measured by `cargo xtask bench-probes` (which runs
//! `cargo bench -p usdt-bench --bench untraced` with aligned loops): the
//! same loop with nothing in it, with one of our probes, and with the
//! peers' probes (the `probe` crate's `probe!` and `probe_lazy!`, the `usdt`
//! crate's provider probes). Every loop passes its counter through
//! [`black_box`] so all of them do the same work besides the probe; the
//! lazy probes' arguments include [`expensive`], which must never run while
//! no tracer listens.
//!
//! The `usdt` crate emits stapsdt notes on Linux too: each of its probes is
//! a 1-byte `nop` guarded by a semaphore of its own naming
//! (`__usdt_sema_<provider>_<name>`), with arguments evaluated only while
//! the semaphore is raised, so it has no always-firing form.

#![deny(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

/// How many times [`expensive`] ran.
pub static EXPENSIVE_CALLS: AtomicU64 = AtomicU64::new(0);

/// Arguments a tracer might want but that cost real work: 256 rounds of
/// mixing. Counted in [`EXPENSIVE_CALLS`].
#[inline(never)]
pub fn expensive(seed: u64) -> u64 {
    EXPENSIVE_CALLS.fetch_add(1, Ordering::Relaxed);
    let mut x = seed;
    for round in 0..256u64 {
        x = black_box(x.rotate_left(7) ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    x
}

/// Our typed provider.
#[usdt_runtime::provider(name = "bench")]
pub mod ours {
    /// A guarded probe whose arguments are expensive.
    pub fn lazy(i: u64, value: u64);
}

/// The `usdt` crate's provider (its probes are macros: `peer::lazy!`).
#[usdt::provider(provider = "bench_usdt")]
pub mod peer {
    fn lazy(i: u64, value: u64) {}
}

/// One measured case: a name and a loop of `n` iterations.
pub struct Case {
    /// What the row shows.
    pub name: &'static str,
    /// Runs the loop `n` times.
    pub run: fn(u64),
}

/// Every case, the empty loop first.
pub const CASES: &[Case] = &[
    Case {
        name: "empty loop",
        run: empty_loop,
    },
    Case {
        name: "empty loop, counter not read back from `black_box`",
        run: empty_loop_unread,
    },
    Case {
        name: "usdt-runtime `probe!` (plain)",
        run: our_plain,
    },
    Case {
        name: "usdt-runtime typed provider (guarded, expensive lazy args)",
        run: our_guarded,
    },
    Case {
        name: "hand-written guard, no probe: `if SEMAPHORE.load(Relaxed) != 0`",
        run: manual_guard,
    },
    Case {
        name: "hand-written guard, no probe: volatile read `!= 0` (`cmpw` on memory)",
        run: manual_guard_volatile,
    },
    Case {
        name: "`probe` crate `probe!`",
        run: probe_crate_plain,
    },
    Case {
        name: "`probe` crate `probe_lazy!` (expensive lazy args)",
        run: probe_crate_lazy,
    },
    Case {
        name: "`usdt` crate probe (guarded, expensive lazy args)",
        run: usdt_crate_lazy,
    },
];

/// The loop with no probe: the counter goes through [`black_box`] and is
/// read back into a register, as every probe's loop reads it for its
/// argument, by an empty `asm!` that emits nothing.
#[inline(never)]
pub fn empty_loop(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        // SAFETY: the template is a comment: no instruction, no memory, no
        // stack, no flags touched.
        unsafe {
            std::arch::asm!("/* {0} */", in(reg) i, options(nomem, nostack, preserves_flags))
        };
    }
}

/// The loop with no probe whose counter is stored by [`black_box`] but
/// never read back (the baseline before 2026-12-07: on some CPUs the
/// read-back costs a fraction of a cycle the probes' loops pay for their
/// argument).
#[inline(never)]
pub fn empty_loop_unread(n: u64) {
    for i in 0..n {
        black_box(i);
    }
}

/// Our plain probe: always fires, the counter in a register.
#[inline(never)]
pub fn our_plain(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        usdt_runtime::probe!(bench, plain, i);
    }
}

/// Our typed provider's probe: one load and branch, arguments never built.
#[inline(never)]
pub fn our_guarded(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        ours::lazy(|| (i, expensive(i)));
    }
}

/// A semaphore that nothing raises, for the hand-written guards.
static MANUAL_SEMAPHORE: AtomicU16 = AtomicU16::new(0);

/// A guard written by hand, no probe at all, as our typed providers write
/// it: one relaxed 16-bit load, compared with zero, and a branch not taken
/// to a cold path (on x86-64 a `movzwl`, then `test` and `jne`, which
/// fuse).
#[inline(never)]
pub fn manual_guard(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        if MANUAL_SEMAPHORE.load(Ordering::Relaxed) != 0 {
            core::hint::cold_path();
            black_box(expensive(i));
        }
    }
}

/// The same guard with a volatile read, which the compiler folds into the
/// comparison (on x86-64 one `cmpw $0` on memory, which cannot fuse with
/// the branch).
#[inline(never)]
pub fn manual_guard_volatile(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        // SAFETY: a live, aligned static; a volatile read, as tracers write
        // semaphores from outside the program.
        if unsafe { MANUAL_SEMAPHORE.as_ptr().read_volatile() } != 0 {
            core::hint::cold_path();
            black_box(expensive(i));
        }
    }
}

/// The `probe` crate's plain probe.
#[inline(never)]
pub fn probe_crate_plain(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        probe::probe!(bench_probe, plain, i);
    }
}

/// The `probe` crate's lazy probe.
#[inline(never)]
pub fn probe_crate_lazy(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        probe::probe_lazy!(bench_probe, lazy, i, expensive(i));
    }
}

/// The `usdt` crate's probe.
#[inline(never)]
pub fn usdt_crate_lazy(n: u64) {
    for i in 0..n {
        let i = black_box(i);
        peer::lazy!(|| (i, expensive(i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untraced_lazy_arguments_are_never_built() {
        for case in CASES {
            (case.run)(1000);
        }
        assert_eq!(EXPENSIVE_CALLS.load(Ordering::Relaxed), 0);
        expensive(1);
        assert_eq!(EXPENSIVE_CALLS.load(Ordering::Relaxed), 1);
    }
}
