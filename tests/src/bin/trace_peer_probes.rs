//! `trace_peer_probes [ITERATIONS [INTERVAL_MS]]`: fires probes of the two
//! existing Rust probe crates, so the tracer can be checked against them.
//!
//! Each iteration I (0, 1, ...) fires, in this order:
//!
//! - `peer_probe:numbers` (`probe` crate's `probe!`): I, -42, 255, -9000000000
//! - `peer_probe:lazy` (`probe_lazy!`, semaphore-guarded): I, -7; its
//!   arguments are evaluated only while a tracer has the probe enabled
//! - `peer_usdt:numbers` (`usdt` crate): 200u8, -12345i16, 4000000000u32,
//!   -9000000000i64
//! - `peer_usdt:text` (`usdt` crate): I as u64, "usdt crate text"
//!
//! At exit it prints `lazy evaluations: N` (how often `peer_probe:lazy`'s
//! arguments were evaluated).
//!
//! The `usdt` crate's Linux probes are x86-64 assembly: built for another
//! architecture (aarch64, for the tests in an arm64 virtual machine), the
//! program fires the `probe` crate's probes only.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static LAZY_EVALUATIONS: AtomicU64 = AtomicU64::new(0);

#[cfg(target_arch = "x86_64")]
#[usdt::provider]
mod peer_usdt {
    fn numbers(a: u8, b: i16, c: u32, d: i64) {}
    fn text(id: u64, message: &str) {}
}

fn lazy_value() -> i64 {
    LAZY_EVALUATIONS.fetch_add(1, Ordering::Relaxed);
    -7
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args
        .next()
        .map_or(1, |a| a.parse().expect("ITERATIONS: a number"));
    let interval = Duration::from_millis(
        args.next()
            .map_or(0, |a| a.parse().expect("INTERVAL_MS: a number")),
    );
    #[cfg(target_arch = "x86_64")]
    usdt::register_probes().expect("register usdt probes");
    for i in 0..iterations {
        probe::probe!(
            peer_probe,
            numbers,
            black_box(i),
            black_box(-42i64),
            black_box(255u8),
            black_box(-9_000_000_000i64)
        );
        probe::probe_lazy!(peer_probe, lazy, black_box(i), lazy_value());
        #[cfg(target_arch = "x86_64")]
        {
            peer_usdt::numbers!(|| (200u8, -12345i16, 4_000_000_000u32, -9_000_000_000i64));
            peer_usdt::text!(|| (i, "usdt crate text"));
        }
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
    println!(
        "lazy evaluations: {}",
        LAZY_EVALUATIONS.load(Ordering::Relaxed)
    );
}
