//! `usdt trace` failures: one line on stderr, the documented exit status
//! (2 for bad usage or input, 1 for other failures) and nothing left
//! attached; and the ends of a trace (target exit, duration).

use crate::CATALOG;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::*;
use usdt_interop_tests::elf::edit_notes;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, require_bpf, scaled};
use usdt_tracer::launch::StoppedCommand;
use usdt_tracer::{TraceConfig, TraceError, Tracer};

#[test]
fn bad_input_exits_with_status_2() {
    let catalog_probe = format!("{CATALOG}:store:order_placed");
    let missing = run_usdt(&["trace", "/no/such/file:p:n"]);
    assert_failure(&missing, 2, "/no/such/file");
    let no_path = run_usdt(&["trace", "store:order_placed"]);
    assert_failure(&no_path, 2, "no file given");
    let bad_str = run_usdt(&["trace", "--str", "x", &catalog_probe]);
    assert_failure(&bad_str, 2, "bad probe `x`");
    let bad_count = run_usdt(&["trace", "--count", "0", &catalog_probe]);
    assert_failure(&bad_count, 2, "--count 0");
    let bad_duration = run_usdt(&["trace", "--duration=-1", &catalog_probe]);
    assert_failure(&bad_duration, 2, "--duration");
    let bad_command = run_usdt(&["trace", "-c", "no-such-command-xyz", "p:n"]);
    assert_failure(&bad_command, 2, "command not found");
    // Numbers too large for their option are usage errors, never panics.
    let long_duration = run_usdt(&["trace", "--duration", "1e300", &catalog_probe]);
    assert_failure(&long_duration, 2, "--duration 1e300: too long");
    let long_interval = run_usdt(&["trace", "--interval=1e300", "--hits", &catalog_probe]);
    assert_failure(&long_interval, 2, "--interval 1e300: too long");
    let nan = run_usdt(&["trace", "--duration", "NaN", &catalog_probe]);
    assert_failure(&nan, 2, "--duration NaN: expected a positive number");
    for (option, value) in [
        ("--count", "99999999999999999999999"),
        ("--map-entries", "99999999999"),
        ("--buffer-mib", "4294967296"),
    ] {
        let output = run_usdt(&["trace", option, value, &catalog_probe]);
        assert_failure(&output, 2, &format!("'{value}' for '{option} "));
    }
    let big_buffer = run_usdt(&["trace", "--buffer-mib", "4294967295", &catalog_probe]);
    assert_failure(&big_buffer, 2, "expected a power of two up to 1024");
}

#[test]
fn input_errors_that_need_privileges_to_reach() {
    if !require_bpf("input_errors_that_need_privileges_to_reach") {
        return;
    }
    let nothing = format!("{CATALOG}:nope:*");
    let output = run_usdt(&["trace", &nothing]);
    assert_failure(&output, 2, "no probe matches `nope:*` in ");

    // String requests that would read nothing.
    let order = format!("{CATALOG}:store:order_placed");
    let output = run_usdt(&["trace", "--str", "nomatch:x:0", &order]);
    assert_failure(&output, 2, "--str nomatch:x:0: no traced probe matches it");
    let output = run_usdt(&["trace", "--str", "store:order_placed:5", &order]);
    assert_failure(
        &output,
        2,
        "--str store:order_placed:5: argument 5 does not exist: the probes it matches have at most 3 arguments",
    );
    let output = run_usdt(&["trace", "--str", "0,3", &order]);
    assert_failure(&output, 2, "--str 0,3: argument 3 does not exist");

    // A process that has exited (not yet reaped) is as gone.
    let mut zombie = Command::new("true").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let output = run_usdt(&["trace", "--pid", &zombie.id().to_string(), "p:n"]);
    assert_failure(
        &output,
        2,
        &format!("process {} does not exist", zombie.id()),
    );
    zombie.wait().unwrap();

    // A pid that does not exist.
    let mut pid = 4_000_000;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        pid += 1;
    }
    let output = run_usdt(&["trace", "--pid", &pid.to_string(), "p:n"]);
    assert_failure(&output, 2, &format!("process {pid} does not exist"));
    // The same with a probe given by path (searched in the file, not the
    // process).
    let by_path = format!("{CATALOG}:store:order_placed");
    let output = run_usdt(&["trace", "--pid", &pid.to_string(), &by_path]);
    assert_failure(&output, 2, &format!("process {pid} does not exist"));

    // An operand no uprobe can read, named with its probe; the command was
    // never let run.
    let binary = build_c(
        "trace_errors_operand",
        "trace_bad_operand.c",
        &["-std=gnu99"],
    );
    let command = binary.display().to_string();
    let output = run_usdt(&["trace", "-c", &command, "trace_bad:*"]);
    assert_failure(&output, 2, "trace_bad:vector_register at 0x");
    let line = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(line.contains("unsupported argument 0 `8@%xmm0`"), "{line}");
    // The other probe of the same program is fine.
    let output = run_usdt(&["trace", "--json", "-c", &command, "trace_bad:good"]);
    assert_success(&output);
    assert_eq!(arg_texts(&json_events(&output)[0]), ["5"]);
}

#[test]
fn a_pattern_matching_nothing_leaves_the_process_untouched() {
    if !require_bpf("a_pattern_matching_nothing_leaves_the_process_untouched") {
        return;
    }
    usdt();
    let mut catalog = Guard::spawn(Command::new(CATALOG).args(["--loop", "3"]));
    let mut out = std::io::BufReader::new(catalog.0.stdout.take().unwrap());
    read_until(&mut out, Duration::from_secs(10), |l| {
        l.starts_with("ready ")
    });
    let pid = catalog.pid();
    let pid_text = pid.to_string();
    // Following libraries loaded later would make it a warning.
    let output = run_usdt(&[
        "trace",
        "--no-follow",
        "--pid",
        &pid_text,
        "store:order_placed",
        "nope:nothing",
    ]);
    assert_failure(
        &output,
        2,
        &format!("no probe matches `nope:nothing` in process {pid}"),
    );
    let rest = read_until(&mut out, Duration::from_secs(10), |l| {
        l.starts_with("lazy evaluations: ")
    });
    assert_eq!(rest, ["lazy evaluations: 0"], "the probe was enabled");
}

#[test]
fn missing_privileges_name_the_capability() {
    if !require_bpf("missing_privileges_name_the_capability") {
        return;
    }
    let probe = format!("{CATALOG}:store:order_placed");
    // `nobody` may not be able to reach the build's directory: run a copy
    // of the binary from a directory anyone can enter.
    let built = PathBuf::from(usdt().get_program());
    let dir = std::env::temp_dir().join(format!("usdt-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.join("usdt");
    std::fs::copy(&built, &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(&binary);
    command.args(["trace", &probe]).stdin(Stdio::null());
    // SAFETY: setgid/setuid are async-signal-safe; dropping to `nobody`
    // clears every capability.
    unsafe {
        command.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().expect("run usdt as nobody");
    let _ = std::fs::remove_dir_all(&dir);
    assert_failure(&output, 1, "missing capability CAP_BPF and CAP_PERFMON");
}

#[test]
fn the_trace_ends_with_the_process_or_the_duration() {
    if !require_bpf("the_trace_ends_with_the_process_or_the_duration") {
        return;
    }
    let binary = build_c("trace_errors_end", "sdt_args.c", &["-O2"]);
    usdt();
    // 200 iterations 25 ms apart: about five seconds (scaled where the
    // attach alone takes longer).
    let interval = scaled(Duration::from_millis(25)).as_millis().to_string();
    let target = Guard::spawn(Command::new(&binary).args(["200", &interval]));
    let pid = target.pid().to_string();
    let output = run_usdt(&["trace", "--json", "--pid", &pid, "sdt_args:iteration"]);
    let stderr = assert_success(&output);
    assert!(
        stderr.contains(&format!("(process {pid} exited)")),
        "{stderr}"
    );
    let iterations: Vec<u64> = json_events(&output)
        .iter()
        .map(|e| arg_texts(e)[0].parse().unwrap())
        .collect();
    assert_eq!(iterations.last(), Some(&199), "{iterations:?}");
    drop(target);

    // Nothing fires: the duration ends the trace. Without BPF cookies
    // (before 5.15) a PIE traced by path is refused.
    let spec = format!("{}:sdt_args:iteration", binary.display());
    if !cookies_or_refused(&["--duration", "0.5", &spec], "sdt_args:iteration in ") {
        return;
    }
    let start = std::time::Instant::now();
    let output = run_usdt(&["trace", "--duration", "0.5", &spec]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("usdt: 0 events, 0 dropped"), "{stderr}");
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(output.stdout.is_empty());
}

#[test]
fn a_failure_while_attaching_leaves_nothing_attached() {
    let test = "a_failure_while_attaching_leaves_nothing_attached";
    if !require_bpf(test) {
        return;
    }
    // Two tracers at one site must agree on its semaphore offset. A system
    // wide tracer hands the kernel the semaphore of `guarded`; a tracer of a
    // command started with -c raises that semaphore itself when the kernel
    // cannot (lld's layout), so the kernel refuses its uprobe at `guarded`
    // after `iteration` was attached.
    let Some(binary) = build_c_with_lld(test, "trace_errors_attach", "sdt_args.c") else {
        return;
    };
    let spec = format!("{}:sdt_args:guarded", binary.display());
    // Without BPF cookies (before 5.15) the system-wide trace of a PIE by
    // path is refused: there is no second tracer to disagree with.
    if !cookies_or_refused(&[&spec], "sdt_args:guarded in ") {
        return;
    }
    let (system_wide, _stderr) = start_trace(&[&spec]);

    // No other test attaches in this process while this one counts links.
    let _alone = alone_tracing_in_process();
    let me = std::process::id();
    assert_eq!(links_of(me), 0);
    let command = StoppedCommand::spawn(&[binary.display().to_string()]).unwrap();
    let mut config = TraceConfig::new()
        .probe("sdt_args:iteration")
        .unwrap()
        .probe("sdt_args:guarded")
        .unwrap();
    config.pid = Some(command.pid());
    config.executable = Some(binary.clone());
    let error = Tracer::attach(&config).err().expect("the attach must fail");
    assert!(matches!(error, TraceError::Attach { .. }), "{error}");
    assert!(error.to_string().contains("sdt_args:guarded"), "{error}");
    assert_eq!(links_of(me), 0, "links left after a failed attach");
    drop(command);
    drop(system_wide);
}

/// The cross compiler for the other architecture the tracer supports, and
/// that architecture as the error names it.
const FOREIGN: (&str, &str) = if cfg!(target_arch = "aarch64") {
    ("x86_64-linux-gnu-gcc", "x86_64")
} else {
    ("aarch64-linux-gnu-gcc", "aarch64")
};

#[test]
fn a_file_of_another_architecture_is_refused() {
    let test = "a_file_of_another_architecture_is_refused";
    let (compiler, arch) = FOREIGN;
    if !require_bpf(test) || !usdt_interop_tests::require_tool(test, compiler) {
        return;
    }
    // sys/sdt.h is installed for the host only: hand the cross compiler a
    // directory holding it alone.
    let dir = usdt_interop_tests::scratch_dir(test);
    let include = format!("-I{}", usdt_interop_tests::sdt_include_dir(&dir).display());
    let binary = usdt_interop_tests::compile_c(compiler, "sdt_args.c", &["-O2", &include], &dir);
    let spec = format!("{}:sdt_args:iteration", binary.display());
    let line = assert_failure(
        &run_usdt(&["trace", &spec]),
        2,
        &binary.display().to_string(),
    );
    assert!(line.contains(&format!("is an {arch} file")), "{line}");
    // Aggregations select their sites the same way.
    let output = run_usdt(&["trace", "--hits", "--duration", "0.1", &spec]);
    assert_failure(&output, 2, &format!("is an {arch} file"));
}

/// The pids of the events of a `--json` run.
fn event_pids(output: &Output) -> Vec<u64> {
    json_events(output)
        .iter()
        .map(|e| e["pid"].as_u64().unwrap())
        .collect()
}

/// Asserts that the trace of a command ended by usdt says so and left the
/// command neither running nor unreaped.
fn assert_command_ended(output: &Output, reason: &str) {
    let stderr = assert_success(output);
    let summary = stderr.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(&format!(
            "{reason}; command was killed by signal 15 (usdt sent it SIGTERM)"
        )),
        "{stderr}"
    );
    let pids = event_pids(output);
    let pid = pids.first().expect("events before the end");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the command {pid} is still there"
    );
}

#[test]
fn a_command_the_trace_outlives_is_ended() {
    if !require_bpf("a_command_the_trace_outlives_is_ended") {
        return;
    }
    let binary = build_c("trace_errors_outlived", "sdt_args.c", &["-O2"]);
    usdt();
    // A thousand iterations 10 ms apart: ten seconds, unless ended.
    let interval = scaled(Duration::from_millis(10)).as_millis();
    let command = format!("{} 1000 {interval}", binary.display());
    let quick = scaled(Duration::from_secs(5));

    let start = Instant::now();
    let output = run_usdt(&[
        "trace",
        "--json",
        "--duration",
        "0.5",
        "-c",
        &command,
        "sdt_args:iteration",
    ]);
    assert!(start.elapsed() < quick, "took {:?}", start.elapsed());
    assert_command_ended(&output, "dropped");

    let start = Instant::now();
    let output = run_usdt(&[
        "trace",
        "--json",
        "--count",
        "3",
        "-c",
        &command,
        "sdt_args:iteration",
    ]);
    assert!(start.elapsed() < quick, "took {:?}", start.elapsed());
    assert_eq!(event_pids(&output).len(), 3);
    assert_command_ended(&output, "3 events, 0 dropped");

    let (mut trace, mut stderr) = start_trace(&["--json", "-c", &command, "sdt_args:iteration"]);
    // SIGTERM once an event is out, however long that takes.
    let mut stdout = std::io::BufReader::new(trace.0.stdout.take().unwrap());
    let first = read_until(&mut stdout, Duration::from_secs(60), |line| {
        line.starts_with("{\"provider\":")
    });
    let start = Instant::now();
    // SAFETY: signals the child this test started and still owns.
    unsafe { libc::kill(trace.pid() as libc::pid_t, libc::SIGTERM) };
    let mut output = trace.finish();
    assert!(start.elapsed() < quick, "took {:?}", start.elapsed());
    // The lines read before, then the rest; start_trace read the
    // "tracing" line from stderr: the rest is the summary.
    let mut all = first.join("\n").into_bytes();
    all.push(b'\n');
    std::io::Read::read_to_end(&mut stdout, &mut all).unwrap();
    output.stdout = all;
    std::io::Read::read_to_end(&mut stderr, &mut output.stderr).unwrap();
    assert_command_ended(&output, "(SIGTERM received)");
}

#[test]
fn a_closed_output_ends_the_trace_and_counts_what_was_written() {
    if !require_bpf("a_closed_output_ends_the_trace_and_counts_what_was_written") {
        return;
    }
    use std::io::BufRead;
    let binary = build_c("trace_errors_closed", "sdt_args.c", &["-O2"]);
    usdt();
    let command = format!("{} 100000 1", binary.display());
    let mut trace =
        Guard::spawn(usdt().args(["trace", "--json", "-c", &command, "sdt_args:iteration"]));
    let stdout = trace.0.stdout.take().unwrap();
    // SAFETY: F_GETPIPE_SZ on the pipe this test holds.
    let pipe_size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(pipe_size > 0);
    let mut reader = std::io::BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    // Wait until usdt has filled the pipe, then close it (as `head -1`).
    std::thread::sleep(Duration::from_millis(1500));
    let read = first.len() + reader.buffer().len();
    drop(reader);
    let output = trace.finish();
    let stderr = assert_success(&output);
    let summary = stderr.lines().last().unwrap();
    let delivered: usize = summary
        .strip_prefix("usdt: output closed after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        summary.ends_with("0 dropped; command was killed by signal 15 (usdt sent it SIGTERM)"),
        "{stderr}"
    );
    // Every event counted went into the pipe: what was read plus what the
    // pipe held (the lines only grow longer).
    assert!(delivered >= 1);
    assert!(
        delivered * first.len() <= read + pipe_size as usize,
        "{delivered} events of {} bytes cannot fit in {read} bytes read and a {pipe_size}-byte pipe",
        first.len()
    );
}

#[test]
fn a_bad_note_is_skipped_with_a_warning_and_the_rest_traced() {
    if !require_bpf("a_bad_note_is_skipped_with_a_warning_and_the_rest_traced") {
        return;
    }
    usdt();
    let binary = build_c("trace_errors_bad_note", "sdt_args.c", &["-O2"]);
    // A copy whose `stack` note has a provider that is not UTF-8.
    let mut edited = 0;
    let bytes = edit_notes(&binary, |note, descriptor| {
        if note.name == "stack" {
            descriptor[24] = 0xff;
            edited += 1;
        }
    });
    assert_eq!(edited, 1);
    let copy = binary.with_file_name("trace_errors_bad_note_copy");
    std::fs::write(&copy, &bytes).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();

    let command = format!("{} 3", copy.display());
    // Not following libraries: no warning that it cannot (before 5.15).
    let output = run_usdt(&[
        "trace",
        "--json",
        "--no-follow",
        "-c",
        &command,
        "sdt_args:iteration",
    ]);
    let stderr = assert_success(&output);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("usdt: warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!("usdt: warning: skipped: {}: ", copy.display()))
            && warnings[0].ends_with("the provider string is not UTF-8"),
        "{stderr}"
    );
    assert_eq!(json_events(&output).len(), 3, "{stderr}");
}
