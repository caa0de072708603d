//! Untraced cost per probe hit. Run it with `cargo xtask bench-probes`,
//! which builds every loop aligned to a cache line so that code placement
//! does not decide the result (`cargo bench -p usdt-bench --bench untraced`
//! runs it without that).
//!
//! Every case of `usdt_bench::CASES` (our probes and the peers') is timed in
//! pairs with the empty loop: empty then case, or case then empty, in
//! alternating order, for the same number of iterations (a few milliseconds
//! each). The ratio of each pair cancels what the machine was doing at that
//! moment (a busy sibling hardware thread, frequency changes); the table
//! shows the median of those ratios, the minimum and median nanoseconds per
//! hit, and the ratio of the minimums (the cost on a quiet machine: on a
//! loaded one, every loop slows down to the same bottleneck and the paired
//! ratios drift towards 1). `ITERATIONS` and `ROUNDS` in the environment override the
//! defaults. The process asks for the highest scheduling priority it is
//! allowed (nice -20 as root) to keep other processes out of its way.

use std::time::Instant;
use usdt_bench::{CASES, Case, EXPENSIVE_CALLS};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// Nanoseconds per iteration of one run of `case`.
fn time(case: &Case, iterations: u64) -> f64 {
    let start = Instant::now();
    (case.run)(iterations);
    start.elapsed().as_nanos() as f64 / iterations as f64
}

/// Raises this process's priority as far as allowed; returns the nice value
/// in effect.
fn raise_priority() -> i32 {
    // SAFETY: setpriority and getpriority take plain integers and only
    // change or read this process's scheduling priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, -20);
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once
    // with few iterations as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let iterations = env_or("ITERATIONS", if smoke { 1_000 } else { 20_000_000 });
    let rounds = env_or("ROUNDS", if smoke { 2 } else { 100 }) as usize;
    let nice = raise_priority();

    let empty = &CASES[0];
    for case in CASES {
        (case.run)(iterations);
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    for round in 0..rounds {
        for k in 1..CASES.len() {
            let index = 1 + (k - 1 + round) % (CASES.len() - 1);
            let case = &CASES[index];
            let (base, this) = if round % 2 == 0 {
                let base = time(empty, iterations);
                (base, time(case, iterations))
            } else {
                let this = time(case, iterations);
                (time(empty, iterations), this)
            };
            ns[0].push(base);
            ns[index].push(this);
            ratios[index].push(this / base);
        }
    }
    assert_eq!(
        EXPENSIVE_CALLS.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a lazy probe evaluated its arguments with no tracer attached"
    );

    println!(
        "{rounds} rounds, {iterations} iterations per run, {}, nice {nice}",
        cpu_model()
    );
    println!();
    println!(
        "| case | min ns/hit | median ns/hit | min / empty min | median of paired ratios to empty |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let empty_min = min(&ns[0]);
    for (index, case) in CASES.iter().enumerate() {
        let ratio = if index == 0 {
            "1 (baseline)".to_string()
        } else {
            format!("{:.3}", median(&ratios[index]))
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {} |",
            case.name,
            min(&ns[index]),
            median(&ns[index]),
            min(&ns[index]) / empty_min,
            ratio
        );
    }
}
