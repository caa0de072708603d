//! bpftrace sees `probe_catalog`'s probes: it lists them, and attached to a
//! running example it reads their arguments and raises the semaphores of
//! typed probes, whose closures then run. Runs as root (CI sets
//! `USDT_REQUIRE_BPF=1`, which turns a skip into a failure).

use crate::catalog;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use usdt_interop_tests::macros::*;
use usdt_interop_tests::{Guard, require_bpf, require_tool, run, scratch_dir};

/// A running `probe_catalog --loop` (killed when dropped), with its stdout
/// lines.
struct Catalog {
    child: Guard,
    pid: u32,
    lines: Receiver<String>,
}

impl Catalog {
    /// Starts `path` (probe_catalog) with `--loop SECONDS --wait`; it fires
    /// nothing until [`Catalog::go`].
    fn start(path: &Path, seconds: u32) -> Catalog {
        let mut child = Guard(
            Command::new(path)
                .args(["--loop", &seconds.to_string(), "--wait"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start probe_catalog"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut catalog = Catalog {
            pid: child.pid(),
            child,
            lines,
        };
        catalog.expect_line("ready", Duration::from_secs(10));
        catalog
    }

    /// Lets the process start firing.
    fn go(&mut self) {
        use std::io::Write;
        let mut stdin = self.child.0.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    /// Waits for a line starting with `prefix`.
    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("probe_catalog never printed `{prefix}`; it printed {seen:?}"),
            }
        }
    }
}

/// A copy of probe_catalog in a scratch directory named `test`, for a
/// test that traces every process running the file: the kernel raises the
/// semaphores of such a trace in each of them, which must not reach the
/// processes of the other tests running the catalog at the same time.
fn private_catalog(test: &str) -> PathBuf {
    let copy = scratch_dir(test).join("probe_catalog");
    std::fs::copy(catalog(), &copy).expect("copy probe_catalog");
    copy
}

/// Runs bpftrace with `args` until it exits (at most `timeout`), returning
/// its standard output.
fn bpftrace(args: &[&str], timeout: Duration, while_running: impl FnOnce()) -> String {
    let mut child = Command::new("bpftrace")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bpftrace");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    while_running();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bpftrace did not finish in {timeout:?}; stdout:\n{}\nstderr:\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    eprintln!("bpftrace stderr:\n{stderr}");
    stdout
}

#[test]
fn bpftrace_lists_every_probe() {
    if !require_tool("bpftrace_lists_every_probe", "bpftrace") {
        return;
    }
    let path = catalog();
    let out = run(Command::new("bpftrace")
        .arg("-l")
        .arg(format!("usdt:{}:*", path.display())));
    let prefix = format!("usdt:{}:", path.display());
    let listed: BTreeSet<String> = out
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect();
    let expected: BTreeSet<String> = catalog_sites().iter().map(Site::probe).collect();
    assert_eq!(listed, expected);
}

#[test]
fn bpftrace_attached_to_a_running_process_reads_a_guarded_probe() {
    let test = "bpftrace_attached_to_a_running_process_reads_a_guarded_probe";
    if !require_bpf(test) || !require_tool(test, "bpftrace") {
        return;
    }
    let path = catalog();
    let mut running = Catalog::start(path, 60);
    let pid = running.pid.to_string();
    // Fifty hits: after the first, the kernel turns the 5-byte nop into a
    // call to its uprobe trampoline, which writes below the stack pointer;
    // every hit must still read the right values and the process live on.
    let script = format!(
        "usdt:{}:store:order_placed {{ printf(\"placed %lu %s %ld\\n\", arg0, str(arg1, arg2), arg3); @hits = @hits + 1; if (@hits >= 50) {{ exit(); }} }}",
        path.display()
    );
    let out = bpftrace(
        &["-p", &pid, "-e", &script],
        Duration::from_secs(60),
        || {
            // Fire once bpftrace has had time to attach (events before that are
            // missed, not wrong).
            std::thread::sleep(Duration::from_secs(2));
            running.go();
        },
    );
    let hits: Vec<&str> = out.lines().filter(|l| l.starts_with("placed ")).collect();
    assert_eq!(hits.len(), 50, "bpftrace printed:\n{out}");
    assert!(
        hits.iter().all(|l| *l == "placed 42 Ada Lovelace -1999"),
        "bpftrace printed:\n{out}"
    );
    // The process saw the semaphore raised, and is still running.
    running.expect_line("enabled: store:order_placed", Duration::from_secs(10));
    assert!(
        running.child.0.try_wait().unwrap().is_none(),
        "probe_catalog died"
    );
    // The kernel optimized the site: the process maps its trampoline.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", running.pid)).unwrap();
    assert!(
        maps.contains("[uprobes-trampoline]"),
        "the 5-byte nop was not optimized:\n{maps}"
    );
}

#[test]
fn bpftrace_attached_system_wide_enables_probes_through_the_kernel() {
    let test = "bpftrace_attached_system_wide_enables_probes_through_the_kernel";
    if !require_bpf(test) || !require_tool(test, "bpftrace") {
        return;
    }
    let path = private_catalog(test);
    let p = path.display();
    // Without -p, bpftrace never touches the process: the kernel raises the
    // semaphore (the uprobe's ref_ctr_offset) in every process mapping the
    // file. Events are filtered to the one process this test starts.
    let mut running = Catalog::start(&path, 60);
    let pid = running.pid;
    let script = format!(
        "usdt:{p}:catalog:text /pid == {pid} && !@text/ {{ @text = 1; printf(\"text %s|%s|%lu\\n\", str(arg0, arg1), str(arg2, arg3), arg5); }}
         usdt:{p}:catalog:negative /pid == {pid} && !@neg/ {{ @neg = 1; printf(\"negative %d %d %d %d %d\\n\", arg0, arg1, arg2, arg3, arg4); }}
         usdt:{p}:catalog:unsigned_max /pid == {pid} && !@max/ {{ @max = 1; printf(\"max %lu %lu %lu %lu %lu\\n\", arg0, arg1, (uint32)arg2, arg3, arg4); }}
         usdt:{p}:store:item_scanned /pid == {pid} && !@scan/ {{ @scan = 1; printf(\"scanned %lu %lu %lu %lu\\n\", arg0, arg1, arg2, arg3); }}
         interval:ms:100 {{ if (@text && @neg && @max && @scan) {{ exit(); }} }}"
    );
    let out = bpftrace(&["-e", &script], Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        running.go();
    });
    let lines: Vec<&str> = out.lines().collect();
    for expected in [
        "text hello, probe|owned \u{2603} text|4",
        "negative -1 -2 -3 -4 -5",
        "max 255 65535 4294967295 18446744073709551615 18446744073709551615",
        &format!("scanned 7000001 {} 1 66", 2.5f64.to_bits()),
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{out}");
    }
    running.expect_line("enabled: store:item_scanned", Duration::from_secs(10));
}
