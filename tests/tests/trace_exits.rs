//! Traced processes that exit at awkward times: while the tracer attaches
//! (the trace ends at once, status 0, as when it exits during the trace),
//! and a process whose main thread has exited while another runs (traced
//! like any other).

use std::io::BufReader;
use std::process::Command;
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::{assert_success, run_usdt, usdt};
use usdt_interop_tests::trace::{
    arg_texts, build_c, generated_library, json_events, many_sites, read_until,
};
use usdt_interop_tests::{Guard, require_bpf, scaled, scratch_dir};

/// Starts `sdt_hold LIBRARY MS` and waits until it has mapped the library.
fn hold(program: &std::path::Path, library: &std::path::Path, ms: u64) -> Guard {
    let mut guard = Guard::spawn(Command::new(program).arg(library).arg(ms.to_string()));
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    read_until(&mut stdout, Duration::from_secs(30), |line| line == "ready");
    guard
}

#[test]
fn a_process_exiting_while_attaching_ends_the_trace() {
    let test = "a_process_exiting_while_attaching_ends_the_trace";
    if !require_bpf(test) {
        return;
    }
    let sites = many_sites();
    let library = generated_library(&scratch_dir("trace_exits_library"), sites);
    let program = build_c("trace_exits_hold", "sdt_hold.c", &["-O2", "-ldl"]);
    usdt();
    // How long `usdt trace --pid` takes here and now to attach to the
    // library's sites (10,000 where the kernel has uprobe_multi links):
    // until it says it traces (detaching, which takes the kernel a grace
    // period per perf-event uprobe before 6.6, comes after).
    let target = hold(&program, &library, 600_000);
    let pid = target.pid().to_string();
    let start = Instant::now();
    let mut trace =
        Guard::spawn(usdt().args(["trace", "--pid", &pid, "--duration", "0.01", "generated:*"]));
    let mut stderr = BufReader::new(trace.0.stderr.take().unwrap());
    let traced = format!("usdt: tracing {} probes at {sites} sites", sites / 100);
    read_until(&mut stderr, scaled(Duration::from_secs(120)), |line| {
        line.starts_with(&traced)
    });
    let window = start.elapsed();
    assert!(trace.finish().status.success());
    drop(target);

    // Targets that exit from the start of the attach to after its end.
    let mut during = 0;
    for step in 0..12 {
        let lifetime = window.mul_f64(step as f64 / 9.0);
        let target = hold(&program, &library, lifetime.as_millis() as u64);
        let pid = target.pid();
        let output = run_usdt(&["trace", "--pid", &pid.to_string(), "generated:*"]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let last = stderr.lines().last().unwrap_or_default();
        match output.status.code() {
            // Gone before usdt looked: a process that does not exist.
            Some(2) => assert_eq!(
                stderr,
                format!("usdt: process {pid} does not exist\n"),
                "lifetime {lifetime:?}"
            ),
            Some(0) => {
                assert_eq!(
                    last,
                    format!("usdt: 0 events, 0 dropped (process {pid} exited)"),
                    "lifetime {lifetime:?}: {stderr}"
                );
                if !stderr.contains("usdt: tracing ") {
                    during += 1;
                }
            }
            _ => panic!("lifetime {lifetime:?} of an attach of {window:?}: {stderr}"),
        }
        assert!(output.stdout.is_empty());
        drop(target);
    }
    eprintln!("{during} of 12 targets exited while usdt attached ({window:?})");
    // Some of the exits fell inside the attach.
    assert!(
        during >= 2,
        "only {during} of 12 targets exited while usdt attached ({window:?})"
    );
}

#[test]
fn a_process_whose_main_thread_exited_is_traced() {
    let test = "a_process_whose_main_thread_exited_is_traced";
    if !require_bpf(test) {
        return;
    }
    let program = build_c(
        "trace_exits_leaderless",
        "sdt_leaderless.c",
        &["-O2", "-pthread"],
    );
    usdt();
    // 300 ticks 20 ms apart: six seconds (scaled where the attach alone
    // takes longer).
    let interval = scaled(Duration::from_millis(20)).as_millis().to_string();
    let mut target = Guard::spawn(Command::new(&program).args(["300", &interval]));
    let mut stdout = BufReader::new(target.0.stdout.take().unwrap());
    read_until(&mut stdout, Duration::from_secs(30), |line| {
        line == "leaderless"
    });
    let pid = target.pid().to_string();

    let listed = run_usdt(&["list", "--pid", &pid, "leaderless:*"]);
    assert_success(&listed);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains(" leaderless "), "{table}");

    let output = run_usdt(&["trace", "--json", "--pid", &pid, "leaderless:tick"]);
    let stderr = assert_success(&output);
    assert!(
        stderr
            .trim_end()
            .ends_with(&format!("(process {pid} exited)")),
        "{stderr}"
    );
    let ticks: Vec<u64> = json_events(&output)
        .iter()
        .map(|event| arg_texts(event)[0].parse().unwrap())
        .collect();
    assert!(!ticks.is_empty(), "no event: {stderr}");
    assert_eq!(ticks.last(), Some(&299), "{ticks:?}");
    assert!(
        ticks.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{ticks:?}"
    );
}
