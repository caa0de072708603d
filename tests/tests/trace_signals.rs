//! Signals while attaching: SIGINT during a long attach (40,000 sites)
//! gives the attach up within a fraction of a second (a few hundredths
//! when the machine is idle; the bound allows for a loaded one, against
//! the whole attach and a trace begun before), leaves nothing
//! attached, prints no event and ends with the usual summary and status 0;
//! the library's `Tracer::attach_until` does the same for a flag. On
//! kernels without uprobe_multi links (before 6.6) the four libraries have 800
//! sites (`many_sites`), and the bound adds what the kernel takes to
//! remove the perf-event uprobes made before the signal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::usdt;
use usdt_interop_tests::trace::{
    alone_tracing_in_process, cookies_or_refused, cookies_or_refused_attach, generated_library,
    links_of, many_sites, read_until, wait_until_catching,
};
use usdt_interop_tests::{Guard, require_bpf, scratch_dir};
use usdt_tracer::{TraceConfig, TraceError, Tracer};

/// Four copies of a library of [`many_sites`] sites (10,000 where the
/// kernel has uprobe_multi links), in a scratch directory named `test`.
fn four_libraries(test: &str) -> Vec<PathBuf> {
    let dir = scratch_dir(test);
    let library = generated_library(&dir, many_sites());
    let mut files = vec![library.clone()];
    for copy in 1..4 {
        let path = dir.join(format!("libgenerated{copy}.so"));
        std::fs::copy(&library, &path).unwrap();
        files.push(path);
    }
    files
}

/// How soon a cancelled attach must end: a second; on kernels without
/// uprobe_multi links, plus a tenth of a second for each perf-event uprobe
/// that may have been made (the kernel removes each with a grace period).
fn cancel_bound() -> Duration {
    let removal = if usdt_tracer::KernelFeatures::get().multi_links {
        Duration::ZERO
    } else {
        Duration::from_millis(100) * (4 * many_sites()) as u32
    };
    Duration::from_secs(1) + removal
}

/// `usdt trace` of every site of `files`, started; returns it once it
/// catches SIGINT (its attach begins then).
fn start_usdt(files: &[PathBuf]) -> Guard {
    let specs: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let trace = Guard::spawn(usdt().arg("trace").args(&specs));
    wait_until_catching(trace.pid(), libc::SIGINT);
    trace
}

#[test]
fn sigint_while_attaching_ends_the_trace_at_once() {
    let test = "sigint_while_attaching_ends_the_trace_at_once";
    if !require_bpf(test) {
        return;
    }
    let files = four_libraries("trace_signals_cli");
    usdt();
    // Without BPF cookies (before 5.15) a shared library traced by path is
    // refused.
    let specs: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    if !cookies_or_refused(&specs, "generated:probe_0 in ") {
        return;
    }
    // How long the attach takes here and now.
    let mut trace = start_usdt(&files);
    let start = Instant::now();
    let mut stderr = std::io::BufReader::new(trace.0.stderr.take().unwrap());
    let traced = format!(
        "usdt: tracing {} probes at {} sites",
        4 * many_sites() / 100,
        4 * many_sites()
    );
    read_until(&mut stderr, Duration::from_secs(120), |line| {
        line.starts_with(&traced)
    });
    let attach = start.elapsed();
    drop(trace);

    // SIGINT early, midway and late in the attach. Where each site is a
    // perf-event uprobe (before 6.6) an attach can end sooner than the one
    // measured, which loaded the program first: the signal then ends a
    // trace that has begun, and at least one of the three must have ended
    // an attach.
    let mut cancelled = 0;
    for fraction in [0.1, 0.25, 0.4] {
        let trace = start_usdt(&files);
        std::thread::sleep(attach.mul_f64(fraction));
        let signalled = Instant::now();
        // SAFETY: signals the child this test started and still owns.
        unsafe { libc::kill(trace.pid() as libc::pid_t, libc::SIGINT) };
        let output = trace.finish();
        let took = signalled.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let summary = "usdt: 0 events, 0 dropped (SIGINT received)\n";
        let begun = format!("{traced}; Ctrl-C to stop\n{summary}");
        if stderr == summary {
            cancelled += 1;
        } else if !(stderr == begun && !usdt_tracer::KernelFeatures::get().multi_links) {
            panic!("SIGINT {fraction} into an attach of {attach:?}: {stderr}");
        }
        assert!(output.stdout.is_empty(), "events printed");
        assert!(
            took < cancel_bound(),
            "SIGINT {fraction} into an attach of {attach:?} took {took:?} to end it"
        );
    }
    assert!(cancelled >= 1, "no SIGINT ended an attach of {attach:?}");
}

#[test]
fn a_cancelled_attach_leaves_nothing_attached() {
    let test = "a_cancelled_attach_leaves_nothing_attached";
    if !require_bpf(test) {
        return;
    }
    let files = four_libraries("trace_signals_library");
    let mut config = TraceConfig::new();
    for file in &files {
        config = config.probe(&format!("{}:*:*", file.display())).unwrap();
    }
    // No other test attaches in this process while this one counts links.
    let _alone = alone_tracing_in_process();
    let me = std::process::id();
    let start = Instant::now();
    let attached = Tracer::attach(&config);
    // Without BPF cookies (before 5.15) a shared library traced by path is
    // refused.
    if !cookies_or_refused_attach(&attached, "generated:probe_0 in ") {
        return;
    }
    let tracer = attached.unwrap();
    let attach = start.elapsed();
    drop(tracer);
    assert_eq!(links_of(me), 0);

    let cancel = AtomicBool::new(false);
    let (result, took) = std::thread::scope(|scope| {
        let attaching = scope.spawn(|| Tracer::attach_until(&config, &cancel));
        // Late in the attach: the files are read and planned, the links
        // being made.
        std::thread::sleep(attach.mul_f64(0.8));
        cancel.store(true, Ordering::Relaxed);
        let cancelled = Instant::now();
        let result = attaching.join().unwrap();
        (result, cancelled.elapsed())
    });
    match result {
        Err(TraceError::Cancelled) => {
            assert!(took < cancel_bound(), "took {took:?}");
        }
        // The attach may have finished first; then it is a tracer.
        Ok(tracer) => drop(tracer),
        Err(error) => panic!("{error}"),
    }
    assert_eq!(links_of(me), 0, "links left after a cancelled attach");
    // A flag already set attaches nothing.
    let error = Tracer::attach_until(&config, &AtomicBool::new(true))
        .err()
        .expect("a set flag cancels");
    assert!(matches!(error, TraceError::Cancelled), "{error}");
}
