//! Following libraries loaded later: a process that loads a probe-carrying
//! library with `dlopen` after the trace started, fires its probes and
//! unloads it (`dlclose`), five times; every hit from the attach on is traced
//! with exact arguments, the unload detaches the library's links, and the
//! delay from `dlopen` to the first traced hit is measured. A command
//! started with `-c` is stopped at each load until the library is
//! attached: every hit of twelve loads is traced, constructors' included,
//! and a command left stopped by a tracer that no longer reads runs on once
//! the tracer is dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::{assert_failure, usdt};
use usdt_interop_tests::trace::{
    arg_texts, assert_trace_usage_error, build_shared_fixture, has_cookies, links_of, read_until,
    tracing_in_process,
};
use usdt_interop_tests::{Guard, compile_c, require_bpf, scaled};
use usdt_tracer::launch::StoppedCommand;
use usdt_tracer::{TraceConfig, Tracer};

/// What dlopen_loop reported about one round.
struct Round {
    loaded_ns: u64,
    fired: u64,
}

/// Builds `libsdt_lib.so` and `dlopen_loop` at `opt` into a fresh scratch
/// directory named `test`; returns (program, library).
fn build_loader(test: &str, opt: &str) -> (PathBuf, PathBuf) {
    let (_, library) = build_shared_fixture(test, opt);
    let dir = library.parent().expect("library directory");
    let program = compile_c("cc", "dlopen_loop.c", &[opt, "-ldl"], dir);
    (program, library)
}

/// The integer a JSON event argument holds.
fn int(text: &str) -> i64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not an integer: {text}"))
}

/// Asserts that `ks` (sorted) run without a gap up to `end` (exclusive),
/// and returns the first.
fn contiguous_to(ks: &[i64], end: i64, what: &str) -> i64 {
    let first = *ks.first().unwrap_or_else(|| panic!("no {what} traced"));
    let expected: Vec<i64> = (first..end).collect();
    assert_eq!(
        ks, expected,
        "{what}: a hit after the first traced one is missing"
    );
    first
}

#[test]
fn libraries_loaded_later_are_traced_and_unloaded_ones_detached() {
    if !require_bpf("trace_follow::libraries_loaded_later_are_traced_and_unloaded_ones_detached") {
        return;
    }
    let (program, library) = build_loader("trace_follow", "-O2");
    let rounds = 5;
    let mut target = Guard::spawn(Command::new(&program).arg(&library).arg(rounds.to_string()));
    let mut target_out = BufReader::new(target.0.stdout.take().expect("stdout"));
    let mut target_in = target.0.stdin.take().expect("stdin");
    read_until(&mut target_out, Duration::from_secs(10), |line| {
        line == "ready"
    });
    let pid = target.pid();

    let mut trace = Guard::spawn(usdt().args([
        "trace",
        "--json",
        "--pid",
        &pid.to_string(),
        "--str",
        "sdt_lib:call:2",
        "sdt_lib:*",
    ]));
    let stdout = trace.0.stdout.take().expect("stdout");
    let events = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|line| line.expect("read events"))
            .collect::<Vec<String>>()
    });
    let (sender, notices) = mpsc::channel();
    let stderr = trace.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let next_notice = |done: &dyn Fn(&str) -> bool| -> Result<Vec<String>, Vec<String>> {
        let mut seen = Vec::new();
        loop {
            let Ok(line) = notices.recv_timeout(scaled(Duration::from_secs(30))) else {
                return Err(seen);
            };
            seen.push(line.clone());
            if done(&line) {
                return Ok(seen);
            }
        }
    };
    // Nothing matches yet: a warning, and the trace starts.
    let start = next_notice(&|line| line.starts_with("usdt: tracing "))
        .unwrap_or_else(|seen| panic!("usdt did not start: {seen:?}"));
    assert!(
        start.iter().any(|line| line.contains(&format!(
            "no probe matches `sdt_lib:*` in process {pid} yet: following the libraries the process loads"
        ))),
        "{start:?}"
    );
    assert!(
        start
            .last()
            .unwrap()
            .starts_with("usdt: tracing 0 probes at 0 sites")
    );
    let links_before = links_of(trace.pid());

    let mut reports = Vec::new();
    for round in 0..rounds {
        writeln!(target_in, "go").expect("tell the program to load");
        let lines = read_until(&mut target_out, scaled(Duration::from_secs(10)), |line| {
            line.starts_with(&format!("unloaded {round}"))
        });
        let field = |prefix: &str| -> u64 {
            lines
                .iter()
                .find_map(|line| line.strip_prefix(&format!("{prefix} {round} ")))
                .unwrap_or_else(|| panic!("no `{prefix}` line in {lines:?}"))
                .parse()
                .expect("a number")
        };
        reports.push(Round {
            loaded_ns: field("loaded"),
            fired: field("fired"),
        });
        let attached = next_notice(&|line| {
            line.contains("libsdt_lib.so unmapped: its sites detached")
        })
        .unwrap_or_else(|seen| {
            panic!(
                "no unload reported in round {round} (the program: {:?}); usdt wrote {seen:?}",
                target.0.try_wait()
            )
        });
        assert!(
            attached
                .iter()
                .any(|line| line.contains("libsdt_lib.so: 3 sites attached in ")),
            "{attached:?}"
        );
        // The library's link closed: the trace holds what it held before.
        assert_eq!(links_of(trace.pid()), links_before, "round {round}");
    }
    writeln!(target_in, "exit").expect("tell the program to exit");
    let exit = target.0.wait().expect("wait for the program");
    assert!(exit.success());
    let output = trace.finish();
    assert_eq!(output.status.code(), Some(0));
    let events: Vec<serde_json::Value> = events
        .join()
        .expect("event reader")
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();

    let mut delays = Vec::new();
    for (round, report) in reports.iter().enumerate() {
        let end_ns = reports
            .get(round + 1)
            .map_or(u64::MAX, |next| next.loaded_ns);
        let in_round: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| {
                let ts = e["timestamp_ns"].as_u64().expect("timestamp");
                ts >= report.loaded_ns && ts < end_ns
            })
            .collect();
        let base = round as i64 * 1_000_000;
        let fired = report.fired as i64;
        let of = |name: &str| -> Vec<Vec<String>> {
            in_round
                .iter()
                .filter(|e| e["provider"] == "sdt_lib" && e["name"] == name)
                .map(|e| arg_texts(e))
                .collect()
        };
        let mut calls = Vec::new();
        for args in of("call") {
            assert_eq!(args[1..], ["-7777", "from the library"], "{args:?}");
            calls.push(int(&args[0]) - base);
        }
        calls.sort_unstable();
        let first = contiguous_to(&calls, fired, "sdt_lib:call");
        let mut counters: Vec<i64> = of("counter").iter().map(|a| int(&a[0]) + 5150).collect();
        counters.sort_unstable();
        let first_counter = contiguous_to(&counters, fired, "sdt_lib:counter");
        let mut guarded = Vec::new();
        for args in of("guarded") {
            assert_eq!(args[1], "4277009102", "{args:?}");
            guarded.push(int(&args[0]) - base);
        }
        guarded.sort_unstable();
        let first_guarded = contiguous_to(&guarded, fired, "sdt_lib:guarded");
        // One uprobe_multi link attaches the three sites: they start within
        // a call. Before 6.6 each is a perf-event uprobe of its own, made
        // one after another while the library runs.
        if usdt_tracer::KernelFeatures::get().multi_links {
            for other in [first_counter, first_guarded] {
                assert!(other.abs_diff(first) <= 1, "{first} {other}");
            }
        }
        let first_ns = in_round
            .iter()
            .map(|e| e["timestamp_ns"].as_u64().unwrap())
            .min()
            .unwrap();
        let delay_ms = (first_ns - report.loaded_ns) as f64 / 1e6;
        eprintln!(
            "round {round}: first traced hit {delay_ms:.2} ms after dlopen returned (call {first} of {fired})"
        );
        delays.push(delay_ms);
    }
    delays.sort_by(f64::total_cmp);
    eprintln!(
        "dlopen to first traced hit: median {:.2} ms, range {:.2} to {:.2} ms over {rounds} loads",
        delays[delays.len() / 2],
        delays[0],
        delays[delays.len() - 1]
    );
}

#[test]
fn a_command_is_followed_when_aggregating() {
    if !require_bpf("trace_follow::a_command_is_followed_when_aggregating") {
        return;
    }
    let (program, library) = build_loader("trace_follow_command", "-O0");
    let command = format!("{} {} 1", program.display(), library.display());
    // Without following, a pattern only a later library has matches nothing.
    assert_trace_usage_error(
        &["--no-follow", "-c", &command, "sdt_lib:call"],
        &format!("no probe matches `sdt_lib:call` in {}", program.display()),
    );

    let mut trace = Guard::spawn(usdt().args([
        "trace",
        "--json",
        "-c",
        &command,
        "--hits",
        "--by",
        "arg0",
        "sdt_lib:call",
    ]));
    // The command reads usdt's standard input: load once, then exit.
    let mut input = trace.0.stdin.take().expect("stdin");
    writeln!(input, "go").expect("tell the program to load");
    writeln!(input, "exit").expect("tell the program to exit");
    let output = trace.finish();
    if refused_without_cookies(&output, "sdt_lib:call") {
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "usdt: warning: no probe matches `sdt_lib:call` in {} yet: following the libraries the process loads",
            program.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("libsdt_lib.so: 1 site attached in "),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fired: i64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("fired 0 "))
        .unwrap_or_else(|| panic!("no `fired` line in {stdout}"))
        .parse()
        .expect("a count");
    // Counted by call number: each call from the attach on, once.
    let report: serde_json::Value = stdout
        .lines()
        .find(|line| line.starts_with("{\"aggregation\":\"hits\""))
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .unwrap_or_else(|| panic!("no counts in {stdout}"));
    let mut calls = Vec::new();
    for entry in report["counts"].as_array().expect("counts") {
        assert_eq!(entry["count"], 1, "{entry}");
        calls.push(entry["key"].as_i64().expect("a call number"));
    }
    calls.sort_unstable();
    contiguous_to(&calls, fired, "sdt_lib:call");
}

/// The median of `values` (sorted here), in milliseconds from nanoseconds.
fn median_ms(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    values[values.len() / 2] as f64 / 1e6
}

/// The dlopen times dlopen_rounds printed, one per round, in order.
fn dlopen_times(stdout: &str, rounds: u32) -> Vec<u64> {
    let times: Vec<u64> = (0..rounds)
        .map(|round| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("round {round} ")))
                .unwrap_or_else(|| panic!("no round {round} in {stdout}"))
                .parse()
                .expect("nanoseconds")
        })
        .collect();
    times
}

/// Whether the kernel has no BPF cookies (before 5.15), which following a
/// command's libraries needs; then checks that `output`, of `usdt trace -c`
/// with `pattern` only in a library the command loads later, is the one
/// line saying nothing matches, and why, with exit status 2.
fn refused_without_cookies(output: &std::process::Output, pattern: &str) -> bool {
    if has_cookies() {
        return false;
    }
    let line = assert_failure(output, 2, &format!("no probe matches `{pattern}` in "));
    assert!(
        line.contains("libraries loaded later are not followed: this kernel has no BPF cookies"),
        "{line}"
    );
    true
}

/// Builds `dlopen_rounds` and the library it loads into a fresh scratch
/// directory named `test`; returns (program, library).
fn build_rounds(test: &str) -> (PathBuf, PathBuf) {
    let dir = usdt_interop_tests::scratch_dir(test);
    let library = compile_c("cc", "ctor_lib.c", &["-O2", "-shared", "-fPIC"], &dir);
    let program = compile_c("cc", "dlopen_rounds.c", &["-O2", "-ldl"], &dir);
    (program, library)
}

#[test]
fn a_command_loses_no_hit_of_a_library_loaded_later() {
    if !require_bpf("trace_follow::a_command_loses_no_hit_of_a_library_loaded_later") {
        return;
    }
    let (program, library) = build_rounds("trace_follow_no_window");
    let (rounds, calls) = (12u32, 40u32);
    let command = format!(
        "{} {} {rounds} {calls}",
        program.display(),
        library.display()
    );
    let output = Guard::spawn(usdt().args([
        "trace",
        "--json",
        "-c",
        &command,
        "--str",
        "ctor_lib:call:2",
        "ctor_lib:*",
    ]))
    .finish();
    if refused_without_cookies(&output, "ctor_lib:*") {
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let attached = stderr
        .lines()
        .filter(|line| line.contains("ctor_lib_O2_shared_fPIC: 2 sites attached in "))
        .count();
    let detached = stderr
        .lines()
        .filter(|line| line.ends_with("ctor_lib_O2_shared_fPIC unmapped: its sites detached"))
        .count();
    assert_eq!(
        (attached, detached),
        (rounds as usize, rounds as usize),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut traced_ns = dlopen_times(&stdout, rounds);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();

    // Every hit, in order: each round's constructor, then its calls, the
    // first of them right after dlopen returned.
    let mut expected = Vec::new();
    for round in 0..rounds {
        expected.push(vec![round.to_string(), 0xc0ffee.to_string()]);
        for k in 0..calls {
            expected.push(vec![
                (round * 1_000_000 + k).to_string(),
                "-7777".into(),
                "from the library".into(),
            ]);
        }
    }
    let traced: Vec<Vec<String>> = events.iter().map(arg_texts).collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(traced, expected, "{names:?}");
    for (event, args) in events.iter().zip(&expected) {
        let name = if args.len() == 2 { "init" } else { "call" };
        assert_eq!(
            (event["provider"].as_str(), event["name"].as_str()),
            (Some("ctor_lib"), Some(name)),
            "{event}"
        );
    }

    // What the stops cost dlopen, against the same program untraced.
    let untraced = usdt_interop_tests::run(Command::new(&program).args([
        library.as_os_str(),
        rounds.to_string().as_ref(),
        calls.to_string().as_ref(),
    ]));
    let mut untraced_ns = dlopen_times(&untraced, rounds);
    eprintln!(
        "dlopen with usdt trace -c following: median {:.2} ms, at most {:.2} ms; untraced: median {:.3} ms ({rounds} loads)",
        median_ms(&mut traced_ns),
        traced_ns[traced_ns.len() - 1] as f64 / 1e6,
        median_ms(&mut untraced_ns),
    );
}

#[test]
fn a_command_stopped_at_a_load_runs_on_once_the_tracer_is_dropped() {
    if !require_bpf("trace_follow::a_command_stopped_at_a_load_runs_on_once_the_tracer_is_dropped")
        || !has_cookies()
    {
        // Without cookies a command's libraries are not followed, nor is
        // the command stopped (a_command_loses_no_hit... checks the
        // warning).
        return;
    }
    let _tracing = tracing_in_process();
    let (program, library) = build_rounds("trace_follow_let_go");
    let argv = [
        program.display().to_string(),
        library.display().to_string(),
        "100".into(),
        "1".into(),
    ];
    let mut command = StoppedCommand::spawn(&argv).expect("start the command");
    let mut config = TraceConfig::new().probe("ctor_lib:*").expect("a probe");
    config.pid = Some(command.pid());
    config.executable = Some(program.clone());
    config.stop_on_load = true;
    let mut tracer = Tracer::attach(&config).expect("attach");
    command
        .resume_with(|pid| tracer.raise_after_exec(pid))
        .expect("run the command");
    // Drained until the library's first hit: the command then goes on to
    // its next dlclose or dlopen, where the hook stops it again (the
    // tracer reads no more).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hits = 0;
    while hits == 0 {
        assert!(Instant::now() < deadline, "no hit of the library in 30 s");
        hits += tracer
            .poll(Duration::from_millis(100), |_| true)
            .expect("poll");
    }
    while process_state(command.pid()) != 'T' {
        assert!(
            Instant::now() < deadline,
            "the command did not stop at a load"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let go without reading the rest: nothing continues the command but
    // the tracer's drop, which reads the hook's records left.
    drop(tracer);
    let (sender, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(command.wait());
    });
    let status = exited
        .recv_timeout(Duration::from_secs(60))
        .expect("the command was left stopped: it did not finish its 100 rounds in 60 s")
        .expect("wait");
    assert_eq!(
        status,
        0,
        "{}",
        usdt_tracer::launch::describe_status(status)
    );
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, `Z`...),
/// from `/proc/PID/stat`; `?` when it cannot be read.
fn process_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .unwrap_or('?')
}
