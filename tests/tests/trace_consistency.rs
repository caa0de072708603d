//! `usdt trace` agrees with `usdt list` and with the tools it stands beside:
//! a loop of symbolic links is bad input like a missing file, a file of the
//! current directory needs no `./`, `-c` exits with the command's status as
//! `time` does, and event times count from the instant the probes were
//! armed (no event is earlier, so none is clamped to 0).

use std::process::Command;
use std::time::Duration;
use usdt_interop_tests::cli::{assert_failure, assert_success, run_usdt, usdt};
use usdt_interop_tests::trace::{build_c, cookies_or_refused};
use usdt_interop_tests::{Guard, require_bpf, scratch_dir};

#[test]
fn a_loop_of_symbolic_links_is_bad_input() {
    let dir = scratch_dir("trace_consistency_loop");
    let link = dir.join("loop");
    std::os::unix::fs::symlink("loop", &link).unwrap();
    let path = link.display().to_string();
    for args in [
        vec!["list".to_owned(), path.clone()],
        vec!["trace".to_owned(), format!("{path}:p:n")],
        vec!["trace".to_owned(), format!("{path}/x:p:n")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_usdt(&args);
        assert_failure(&output, 2, "Too many levels of symbolic links");
    }
}

#[test]
fn a_file_of_the_current_directory_needs_no_slash() {
    let test = "a_file_of_the_current_directory_needs_no_slash";
    let binary = build_c(test, "sdt_args.c", &["-O2"]);
    let dir = binary.parent().unwrap();
    let name = binary.file_name().unwrap().to_str().unwrap();
    // What usdt list accepts...
    let output = usdt()
        .current_dir(dir)
        .args(["list", name, "sdt_args:string"])
        .output()
        .unwrap();
    assert_success(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains(" string "));
    // ...usdt trace takes as the same file.
    let missing = usdt()
        .current_dir(dir)
        .args(["trace", "no_such_file:sdt_args:string"])
        .output()
        .unwrap();
    assert_failure(&missing, 2, "no_such_file: No such file or directory");
    if !require_bpf(test) {
        return;
    }
    let spec = format!("{name}:sdt_args:string");
    let output = usdt()
        .current_dir(dir)
        .args(["trace", "-c", &format!("./{name} 2"), &spec])
        .output()
        .unwrap();
    assert_success(&output);
    let events = String::from_utf8_lossy(&output.stdout);
    assert_eq!(events.matches(" sdt_args:string ").count(), 2, "{events}");
}

#[test]
fn a_command_gives_the_trace_its_exit_status() {
    let test = "a_command_gives_the_trace_its_exit_status";
    if !require_bpf(test) {
        return;
    }
    let binary = build_c(test, "sdt_args.c", &["-O2"]);
    let spec = format!("{}:sdt_args:string", binary.display());
    // Without BPF cookies (before 5.15) a file the command has yet to load
    // (here the commands are shells) is refused.
    if !cookies_or_refused(&["-c", "sh -c 'exit 7'", &spec], "sdt_args:string in ") {
        return;
    }
    let status = |command: &str, extra: &[&str]| {
        let mut args = vec!["trace", "-c", command];
        args.extend_from_slice(extra);
        args.push(&spec);
        let output = run_usdt(&args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let last = stderr.lines().last().unwrap_or_default().to_owned();
        (output.status.code(), last)
    };
    // Its own exit, as `time` and `timeout` report it.
    let (code, last) = status("sh -c 'exit 7'", &[]);
    assert_eq!(code, Some(7), "{last}");
    assert!(last.ends_with("; command exited with status 7"), "{last}");
    let (code, last) = status("sh -c 'kill -USR1 $$'", &[]);
    assert_eq!(code, Some(128 + libc::SIGUSR1), "{last}");
    assert!(
        last.ends_with(&format!("; command was killed by signal {}", libc::SIGUSR1)),
        "{last}"
    );
    let (code, last) = status(&format!("{} 2", binary.display()), &[]);
    assert_eq!(code, Some(0), "{last}");
    // Ended by usdt (--duration): the trace went as asked.
    let (code, last) = status("sleep 30", &["--duration", "0.2"]);
    assert_eq!(code, Some(0), "{last}");
    assert!(last.contains("(usdt sent it SIGTERM)"), "{last}");
}

#[test]
fn event_times_count_from_the_arming() {
    let test = "event_times_count_from_the_arming";
    if !require_bpf(test) {
        return;
    }
    let binary = build_c(test, "sdt_args.c", &["-O2"]);
    // A process firing sdt_args:iteration every microsecond or so: hits
    // arrive from the instant the probes are armed.
    let target = Guard::spawn(Command::new(&binary).arg("4000000000"));
    std::thread::sleep(Duration::from_millis(50));
    let pid = target.pid().to_string();
    for _ in 0..3 {
        let output = run_usdt(&[
            "trace",
            "--pid",
            &pid,
            "--count",
            "100",
            "sdt_args:iteration",
        ]);
        assert_success(&output);
        let times: Vec<f64> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(times.len(), 100);
        // Each line's time is its own: none clamped to the start (only a
        // hit within the first microsecond prints 0.000000).
        let zeros = times.iter().filter(|&&t| t == 0.0).count();
        assert!(zeros <= 1, "{zeros} events at 0.000000: {times:?}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        // And they count from the start of this trace.
        assert!(times[99] < 10.0, "{times:?}");
    }
    drop(target);
}
