//! A tracer killed outright (SIGKILL, no chance to clean up) leaves no
//! semaphore raised: the kernel lowers the ones its uprobes raised, and a
//! command started with `-c`, whose semaphores the tracer may have raised
//! by writing its memory (lld's first data page), dies with it.

use std::time::{Duration, Instant};
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::{build_c_with_lld, read_u16, semaphore_address, start_trace};

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .map(|pid| pid.parse().expect("a pid"))
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether process `pid` still runs (exists and is no zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
        .unwrap_or(false)
}

#[test]
fn a_command_dies_with_its_killed_tracer() {
    let test = "a_command_dies_with_its_killed_tracer";
    if !require_bpf(test) {
        return;
    }
    let Some(binary) = build_c_with_lld(test, "trace_killed_lld", "sdt_args.c") else {
        return;
    };
    // Ten minutes of iterations, 10 ms apart.
    let command = format!("{} 60000 10", binary.display());
    let (mut tracer, _stderr) = start_trace(&["-c", &command, "sdt_args:guarded"]);
    let usdt = tracer.pid();
    let child = children(usdt);
    let [child] = child[..] else {
        panic!("usdt {usdt} has children {child:?}");
    };
    // The semaphore the tracer raised by hand, once the command runs.
    let exe = binary.file_name().unwrap().to_string_lossy().into_owned();
    let start = Instant::now();
    let semaphore = loop {
        let address = std::fs::read_to_string(format!("/proc/{child}/maps"))
            .unwrap_or_default()
            .contains(&exe)
            .then(|| semaphore_address(child, &exe, "sdt_args", "guarded"));
        if let Some(address) = address
            && read_u16(child, address) == 1
        {
            break address;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the semaphore of command {child} was never raised"
        );
        std::thread::sleep(Duration::from_millis(10));
    };

    tracer.0.kill().expect("SIGKILL usdt");
    tracer.0.wait().expect("reap usdt");
    let start = Instant::now();
    while running(child) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = running(child);
    let raised = alive && read_u16(child, semaphore) != 0;
    if alive {
        // Not this test's child: ended by pid.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .status();
    }
    assert!(
        !alive,
        "command {child} outlived its killed tracer (semaphore raised: {raised})"
    );
}
