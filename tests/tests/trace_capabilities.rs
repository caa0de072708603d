//! `usdt trace` with exactly the capabilities the README documents, run
//! through util-linux's `setpriv` (root's uid, every other capability
//! dropped from the bounding set): CAP_BPF and CAP_PERFMON trace a path, a
//! command and a process of the same privileges; `--pid` of a process that
//! holds more capabilities also needs CAP_SYS_PTRACE; a missing capability
//! is named in a one-line error. Kernels before 6.6 have no uprobe_multi
//! links and open uprobes as perf events, which take CAP_SYS_ADMIN: there
//! the documented set is refused with a message that says so, and the rest
//! runs with CAP_SYS_ADMIN added. Before 5.15 (no BPF cookies) the path,
//! a PIE, is refused instead of traced.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, find_in_path, require_bpf, require_tool};

/// The documented set.
const TRACING: &str = "+bpf,+perfmon";

/// What traces on the running kernel: [`TRACING`] where the tracer uses
/// uprobe_multi links (6.6+); before, uprobes are perf events, which the
/// kernel opens only for CAP_SYS_ADMIN.
fn tracing_caps() -> String {
    if has_multi_links() {
        TRACING.into()
    } else {
        format!("{TRACING},+sys_admin")
    }
}

/// Whether the tracer uses uprobe_multi links on this kernel, as it probes
/// it (`USDT_DISABLE_FEATURES` included), not by version number.
fn has_multi_links() -> bool {
    usdt_tracer::KernelFeatures::get().multi_links
}

/// `command` run with only the capabilities `caps` (setpriv syntax).
fn with_caps(caps: &str, command: &Command) -> Command {
    let mut setpriv = Command::new("setpriv");
    setpriv
        .arg(format!("--bounding-set=-all,{caps}"))
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    setpriv
}

/// Runs `usdt ARGS` with only `caps`.
fn usdt_with_caps(caps: &str, args: &[&str]) -> Output {
    let mut command = usdt();
    command.args(args);
    with_caps(caps, &command)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// The `iteration` values of the events of a `--json` run.
fn iterations(output: &Output) -> Vec<u64> {
    named(&json_events(output), "sdt_args:iteration")
        .iter()
        .map(|e| arg_texts(e)[0].parse().unwrap())
        .collect()
}

/// Starts sdt_args `binary` firing an iteration every 10 ms until the
/// guard kills it (a hundred million iterations: however slowly a trace
/// attaches, an emulated machine's perf-event uprobes included, the target
/// outlives it), with only `caps` when given, and waits until it runs
/// (setpriv, when used, has executed it), then a little more, so its
/// libraries are mapped.
fn start_target(binary: &Path, caps: Option<&str>) -> Guard {
    let mut command = Command::new(binary);
    command.args(["100000000", "10"]);
    let mut command = match caps {
        Some(caps) => with_caps(caps, &command),
        None => command,
    };
    let guard = Guard::spawn(&mut command);
    wait_for_exec(guard.pid(), binary);
    std::thread::sleep(Duration::from_millis(200));
    guard
}

/// Waits until process `pid` runs `program` (a setpriv it was started
/// through has executed it): a fixed pause is too short on a slow machine,
/// such as an emulated one.
fn wait_for_exec(pid: u32, program: &Path) {
    let program = program.canonicalize().expect("canonical path");
    let start = Instant::now();
    while std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&program) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process {pid} did not execute {} in 30 s",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn capability_effective(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[test]
fn cap_bpf_and_cap_perfmon_trace_paths_commands_and_processes() {
    let test = "cap_bpf_and_cap_perfmon_trace_paths_commands_and_processes";
    if !require_bpf(test) || !require_tool(test, "setpriv") {
        return;
    }
    let binary = build_c("trace_caps_ok", "sdt_args.c", &["-O2"]);
    usdt();

    // setpriv really leaves only the two capabilities.
    let mut sleeper = Command::new("sleep");
    sleeper.arg("5");
    let sleeper = Guard::spawn(&mut with_caps(TRACING, &sleeper));
    wait_for_exec(sleeper.pid(), &find_in_path("sleep").expect("sleep"));
    assert_eq!(
        capability_effective(sleeper.pid()),
        (1 << 38) | (1 << 39),
        "setpriv did not leave exactly CAP_BPF and CAP_PERFMON"
    );
    drop(sleeper);

    // A path: every process running the file (one started before).
    let target = start_target(&binary, None);
    let spec = format!("{}:sdt_args:iteration", binary.display());
    let trace = ["trace", "--json", "--count", "3", spec.as_str()];
    let caps = tracing_caps();
    // Without BPF cookies (before 5.15) a PIE traced by path is refused.
    if cookies_or_refused(&trace[1..], "sdt_args:iteration in ") {
        let output = usdt_with_caps(&caps, &trace);
        assert_success(&output);
        let seen = iterations(&output);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    }
    drop(target);

    // A command, with its semaphore-guarded probe switched on.
    let command = format!("{} 3", binary.display());
    let trace = [
        "trace",
        "--json",
        "-c",
        &command,
        "sdt_args:iteration",
        "sdt_args:guarded",
    ];
    if !has_multi_links() {
        // Before 6.6 the documented set is refused, and the message says why.
        let output = usdt_with_caps(TRACING, &trace);
        assert_failure(
            &output,
            1,
            "opens uprobe perf events only for CAP_SYS_ADMIN",
        );
    }
    let output = usdt_with_caps(&caps, &trace);
    let stderr = assert_success(&output);
    assert!(stderr.contains("command exited with status 0"), "{stderr}");
    assert_eq!(iterations(&output), [0, 1, 2]);
    let guarded = named(&json_events(&output), "sdt_args:guarded").len();
    assert_eq!(guarded, 3, "the semaphore was not raised");

    // A running process with the same capabilities.
    let target = start_target(&binary, Some(&caps));
    let pid = target.pid().to_string();
    let output = usdt_with_caps(
        &caps,
        &[
            "trace",
            "--json",
            "--count",
            "2",
            "--pid",
            &pid,
            "sdt_args:guarded",
        ],
    );
    assert_success(&output);
    assert_eq!(named(&json_events(&output), "sdt_args:guarded").len(), 2);
}

#[test]
fn a_missing_capability_is_named() {
    let test = "a_missing_capability_is_named";
    if !require_bpf(test) || !require_tool(test, "setpriv") {
        return;
    }
    let binary = build_c("trace_caps_missing", "sdt_args.c", &["-O2"]);
    usdt();
    let spec = format!("{}:sdt_args:iteration", binary.display());
    let output = usdt_with_caps("+bpf", &["trace", "--duration", "0.2", &spec]);
    assert_failure(&output, 1, "missing capability CAP_PERFMON ");
    let output = usdt_with_caps("+perfmon", &["trace", "--duration", "0.2", &spec]);
    assert_failure(&output, 1, "missing capability CAP_BPF ");

    // A process holding every capability (started by root): reading its
    // memory takes CAP_SYS_PTRACE as well.
    let target = start_target(&binary, None);
    let pid = target.pid().to_string();
    let args = [
        "trace",
        "--json",
        "--count",
        "2",
        "--pid",
        &pid,
        "sdt_args:iteration",
    ];
    let output = usdt_with_caps(&tracing_caps(), &args);
    assert_failure(&output, 1, "missing capability CAP_SYS_PTRACE");
    // The refused trace left the process running (not a zombie).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
    assert!(matches!(state, Some("S" | "R")), "process {pid}: {stat}");
    let output = usdt_with_caps(&format!("{},+sys_ptrace", tracing_caps()), &args);
    assert_success(&output);
    assert_eq!(iterations(&output).len(), 2);
}
