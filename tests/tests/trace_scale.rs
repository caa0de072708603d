//! Attaching many probe sites: the time to select, plan and attach grows
//! linearly with the sites (a library of 10,000 `DTRACE_PROBE` sites, once
//! and in four copies; 200 sites on kernels without uprobe_multi links,
//! whose perf-event uprobes take the kernel a grace period each to remove,
//! see `many_sites`). The time is the attaching thread's CPU time (user and
//! kernel, as `Tracer::attach` runs on the calling thread), which other
//! work on a loaded machine does not stretch as it stretches wall time.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use usdt_interop_tests::trace::{
    cookies_or_refused_attach, generated_library, many_sites, tracing_in_process,
};
use usdt_interop_tests::{require_bpf, scratch_dir};
use usdt_tracer::{TraceConfig, Tracer};

/// A configuration tracing every site of `files` (every process running
/// them).
fn every_site(files: &[PathBuf]) -> TraceConfig {
    let mut config = TraceConfig::new();
    for file in files {
        config = config.probe(&format!("{}:*:*", file.display())).unwrap();
    }
    config
}

/// Attaches to every site of `files` and detaches; returns the CPU time the
/// attach took, and its wall time.
fn attach_all(files: &[PathBuf]) -> (Duration, Duration) {
    let config = every_site(files);
    let start = Instant::now();
    let cpu = thread_cpu_time();
    let tracer = Tracer::attach(&config).unwrap();
    let took = (thread_cpu_time() - cpu, start.elapsed());
    assert_eq!(tracer.attached_sites(), many_sites() * files.len());
    drop(tracer);
    took
}

/// The CPU time the calling thread has used, in user space and the kernel.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[test]
fn attach_time_grows_linearly_with_the_sites() {
    if !require_bpf("attach_time_grows_linearly_with_the_sites") {
        return;
    }
    let dir = scratch_dir("trace_scale");
    let sites = many_sites();
    let library = generated_library(&dir, sites);
    let mut files = vec![library.clone()];
    for copy in 1..4 {
        let path = dir.join(format!("libgenerated{copy}.so"));
        std::fs::copy(&library, &path).unwrap();
        files.push(path);
    }
    let _in_process = tracing_in_process();
    // Without BPF cookies (before 5.15) a shared library traced by path is
    // refused.
    if !cookies_or_refused_attach(
        &Tracer::attach(&every_site(&files)),
        "generated:probe_0 in ",
    ) {
        return;
    }
    // Interleaved, the shortest of two each.
    let mut one = (Duration::MAX, Duration::MAX);
    let mut four = (Duration::MAX, Duration::MAX);
    for _ in 0..2 {
        one = one.min(attach_all(&files[..1]));
        four = four.min(attach_all(&files));
    }
    // Both include loading the BPF program once, so linear attaching gives
    // a ratio below 4; a scan of the selected sites per site gave 16.
    let ratio = four.0.as_secs_f64() / one.0.as_secs_f64();
    let times = format!(
        "{sites} sites attached in {:?} of CPU time ({:?} elapsed), {} in {:?} ({:?} elapsed)",
        one.0,
        one.1,
        4 * sites,
        four.0,
        four.1
    );
    eprintln!("{times}");
    assert!(ratio < 6.0, "{times}: {ratio:.1} times as long");
}
