//! Tracing probes we did not emit: the `probe` crate (`probe!` and the
//! semaphore-guarded `probe_lazy!`), oxidecomputer's `usdt` crate, and a
//! real program, `/usr/bin/python3.11`, whose semaphore-guarded
//! `python:function__entry` is traced by pid with its strings decoded.

use std::process::Command;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{require_bpf, run};

#[test]
fn probe_and_usdt_crate_probes_are_traced_with_correct_values() {
    if !require_bpf("probe_and_usdt_crate_probes_are_traced_with_correct_values") {
        return;
    }
    // Untraced, probe_lazy!'s arguments are never evaluated.
    assert_eq!(
        run(Command::new(crate::PEERS).arg("3")),
        "lazy evaluations: 0\n"
    );
    let command = format!("{} 3", crate::PEERS);
    let output = run_usdt(&[
        "trace",
        "--json",
        "--str",
        "peer_usdt:text:1",
        "-c",
        &command,
        "peer_probe:*",
        "peer_usdt:*",
    ]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("usdt: 12 events, 0 dropped"), "{stderr}");
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    // Traced, the lazy probe's semaphore was raised: evaluated every time.
    assert!(stdout.contains("lazy evaluations: 3\n"), "{stdout}");
    let events = json_events(&output);
    assert_eq!(events.len(), 12);
    for (i, chunk) in events.chunks(4).enumerate() {
        let i = i.to_string();
        let names: Vec<String> = chunk
            .iter()
            .map(usdt_interop_tests::json_probe_name)
            .collect();
        assert_eq!(
            names,
            [
                "peer_probe:numbers",
                "peer_probe:lazy",
                "peer_usdt:numbers",
                "peer_usdt:text"
            ]
        );
        assert_eq!(arg_texts(&chunk[0]), [&*i, "-42", "255", "-9000000000"]);
        assert_eq!(arg_texts(&chunk[1]), [&*i, "-7"]);
        assert_eq!(
            arg_texts(&chunk[2]),
            ["200", "-12345", "4000000000", "-9000000000"]
        );
        assert_eq!(arg_texts(&chunk[3]), [&*i, "usdt crate text"]);
    }
}

#[test]
fn python_function_entry_by_pid_decodes_the_function_name() {
    let test = "python_function_entry_by_pid_decodes_the_function_name";
    if !require_bpf(test) {
        return;
    }
    usdt(); // Built before the script's clock starts.
    let Some((target, script)) = start_python(test, "trace_peers_python") else {
        return;
    };
    let pid = target.pid();
    let semaphore = semaphore_address(pid, "python3.11", "python", "function__entry");
    assert_eq!(read_u16(pid, semaphore), 0);

    let pid_text = pid.to_string();
    let output = run_usdt(&[
        "trace",
        "--pid",
        &pid_text,
        "--json",
        "--count",
        "5",
        "--str",
        "python:function__entry:0,1",
        "python:function__entry",
    ]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("usdt: 5 events, 0 dropped"), "{stderr}");
    let events = json_events(&output);
    assert_eq!(events.len(), 5);
    let script_text = script.to_string_lossy();
    for event in &events {
        assert_eq!(event["provider"], "python");
        assert_eq!(event["name"], "function__entry");
        assert_eq!(event["pid"].as_u64(), Some(pid as u64));
        assert_eq!(
            arg_texts(event),
            [&*script_text, "usdt_traced_function", FUNCTION_LINE],
            "{event}"
        );
    }
    // The kernel lowered the semaphore when the tracer exited.
    assert_eq!(read_u16(pid, semaphore), 0, "semaphore left raised");
}
