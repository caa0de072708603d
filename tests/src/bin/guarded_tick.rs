//! `guarded_tick SECONDS`: a minimal program with one semaphore-guarded
//! probe, `tick:tick(n: u64)`, fired every 10 ms for SECONDS seconds. It
//! prints `enabled` the first time it sees the probe enabled and `fired N`
//! at the end (how many times the probe's arguments were evaluated).
//!
//! Small on purpose: in a small binary the `.probes` section would land in
//! the first file page of the data segment, the page lld's layout shares
//! with the RELRO segment.

use std::time::{Duration, Instant};

#[usdt_runtime::provider]
mod tick {
    /// One tick.
    pub fn tick(n: u64);
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut evaluated = 0u64;
    let mut announced = false;
    let mut n = 0u64;
    while Instant::now() < end {
        if !announced && tick::tick::enabled() {
            announced = true;
            println!("enabled");
        }
        tick::tick(|| {
            evaluated += 1;
            n
        });
        n += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("fired {evaluated}");
}
