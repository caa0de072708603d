//! Tracing: the C programs traced (built into scratch directories), `usdt
//! trace` started in the background and its output read, a traced
//! process's memory (semaphores, symbols) read, and the lock that keeps a
//! test counting this process's BPF links from seeing another test's.

use crate::cli::{assert_failure, run_usdt, usdt};
use crate::{Guard, compile_c, read_memory, scratch_dir, skip};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, Command, Output};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use usdt_reader::Module;

/// Compiles the C fixture `source` with `flags` into a fresh scratch
/// directory named `test`.
pub fn build_c(test: &str, source: &str, flags: &[&str]) -> PathBuf {
    let dir = scratch_dir(test);
    compile_c("cc", source, flags, &dir)
}

/// The C fixture `source` at -O0 and -O2, in that order, in a fresh
/// scratch directory named `test`.
pub fn build_c_at_o0_and_o2(test: &str, source: &str) -> Vec<PathBuf> {
    let dir = scratch_dir(test);
    ["-O0", "-O2"]
        .iter()
        .map(|opt| compile_c("cc", source, &[opt], &dir))
        .collect()
}

/// Builds C fixture `source` at -O2, linked by the Rust toolchain's lld
/// (which lays out segments differently from GNU ld), into a directory
/// named after `name`; `None` (after skipping `test`) when the toolchain
/// has no lld.
pub fn build_c_with_lld(test: &str, name: &str, source: &str) -> Option<PathBuf> {
    let lld_flag = crate::lld_flag(test)?;
    Some(build_c(name, source, &["-O2", "-fuse-ld=lld", &lld_flag]))
}

/// Builds `sdt_args.c` as [`build_c_with_lld`] does, into a directory named
/// after `name`, and checks that `sdt_args:guarded`'s semaphore shares its
/// file page with an earlier writable `PT_LOAD` segment (read here with
/// goblin, apart from the reader): the layout in which the kernel raises
/// the RELRO copy of a semaphore in processes mapping the file later.
pub fn build_sdt_args_with_shared_semaphore_page(test: &str, name: &str) -> Option<PathBuf> {
    let binary = build_c_with_lld(test, name, "sdt_args.c")?;
    let file = usdt_reader::ElfFile::open(&binary).unwrap();
    let guarded = file
        .probes()
        .unwrap()
        .into_iter()
        .find(|p| p.name == "guarded")
        .unwrap();
    let (vaddr, offset) = (
        guarded.semaphore.unwrap(),
        guarded.semaphore_offset.unwrap(),
    );
    assert!(
        semaphore_page_is_shared(&binary, vaddr, offset),
        "the fixture no longer has the layout the tests are about"
    );
    Some(binary)
}

/// Whether the semaphore at `vaddr` (file offset `offset`) shares its file
/// page with an earlier writable PT_LOAD segment.
fn semaphore_page_is_shared(binary: &std::path::Path, vaddr: u64, offset: u64) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .collect();
    let own = loads
        .iter()
        .find(|p| p.p_vaddr <= vaddr && vaddr < p.p_vaddr + p.p_memsz)
        .unwrap();
    let page = offset & !0xfff;
    loads.iter().any(|p| {
        p.p_vaddr < own.p_vaddr
            && p.p_flags & goblin::elf::program_header::PF_W != 0
            && p.p_offset & !0xfff <= page
            && page < (p.p_offset + p.p_filesz).div_ceil(0x1000) * 0x1000
    })
}

/// Sites per generated library in the tests of many sites: 10,000 where
/// the kernel has uprobe_multi links (6.6), which it removes with one RCU
/// grace period per link; 200 where each site is a perf-event uprobe,
/// which the kernel removes with a grace period each (tens of
/// milliseconds: detaching 40,000 of them takes most of an hour).
pub fn many_sites() -> usize {
    if usdt_tracer::KernelFeatures::get().multi_links {
        10_000
    } else {
        200
    }
}

/// Builds a shared library of `sites` probe sites (`sites` rounded down to
/// hundreds) into `dir`: functions `generated_F(long x)` of 100
/// `DTRACE_PROBE2(generated, probe_F, x, S)` sites each, compiled at -O0
/// (quick to build, and the sites are the same).
pub fn generated_library(dir: &Path, sites: usize) -> PathBuf {
    let mut source = String::from("#include <sys/sdt.h>\n");
    for function in 0..sites / 100 {
        source.push_str(&format!("void generated_{function}(long x)\n{{\n"));
        for site in 0..100 {
            source.push_str(&format!(
                "\tDTRACE_PROBE2(generated, probe_{function}, x, {site});\n"
            ));
        }
        source.push_str("}\n");
    }
    let c = dir.join("generated.c");
    std::fs::write(&c, source).expect("write the generated source");
    let library = dir.join("libgenerated.so");
    crate::run(
        std::process::Command::new("cc")
            .args(["-O0", "-shared", "-fPIC"])
            .arg(&c)
            .arg("-o")
            .arg(&library),
    );
    library
}

/// Builds `libsdt_lib.so` (at `opt`) and `sdt_lib_main` linked against it
/// (found next to it through `$ORIGIN`) into a fresh scratch directory
/// named `test`; returns (main, library).
pub fn build_shared_fixture(test: &str, opt: &str) -> (PathBuf, PathBuf) {
    crate::reader::build_library_and_main("cc", &[opt], &scratch_dir(test))
}

/// Runs `usdt trace ARGS` and checks that it fails as a usage error: exit
/// status 2, one line on stderr containing `text`, nothing on stdout.
pub fn assert_trace_usage_error(args: &[&str], text: &str) {
    let mut full = vec!["trace"];
    full.extend_from_slice(args);
    let output = run_usdt(&full);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(text), "expected `{text}` in {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}: output on stdout");
}

/// The events of a `usdt trace --json` run, one JSON object per line (a
/// command run with `-c` shares the standard output: its lines are skipped).
pub fn json_events(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .expect("utf-8 output")
        .lines()
        .filter(|line| line.starts_with("{\"provider\":"))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The events named `provider:name` among `events`.
pub fn named<'a>(events: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    let (provider, probe) = name.split_once(':').expect("provider:name");
    events
        .iter()
        .filter(|e| e["provider"] == provider && e["name"] == probe)
        .collect()
}

/// The `args` array of an event as text values, each exactly as the JSON
/// line wrote it (integers of any width stay exact).
pub fn arg_texts(event: &serde_json::Value) -> Vec<String> {
    event["args"]
        .as_array()
        .expect("args array")
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// A Python program that calls `usdt_traced_function` every 5 ms for up to a
/// minute, printing `ready` first.
///
/// CPython 3.11 fires `function__entry` only while a profile or trace
/// function is installed (its function-entry hook moved under the tracing
/// path), so the script installs a no-op profiler; `function__return` fires
/// either way.
pub const PYTHON_SCRIPT: &str = r#"import sys, time
sys.setprofile(lambda frame, event, arg: None)

def usdt_traced_function(n):
    return n + 1

print("ready", flush=True)
deadline = time.time() + 60
while time.time() < deadline:
    usdt_traced_function(1)
    time.sleep(0.005)
"#;

/// Line of `def usdt_traced_function` in [`PYTHON_SCRIPT`].
pub const FUNCTION_LINE: &str = "4";

/// The Python that fires `python:function__entry` (Debian's, with USDT
/// probes).
pub const PYTHON: &str = "/usr/bin/python3.11";

/// Starts [`PYTHON_SCRIPT`] under [`PYTHON`] from scratch directory `dir`
/// and waits for its `ready`; returns it and the script's path, or `None`
/// when `test` skips for want of that Python (see [`skip`]).
pub fn start_python(test: &str, dir: &str) -> Option<(Guard, PathBuf)> {
    if !Path::new(PYTHON).exists() {
        skip(test, &format!("{PYTHON} is not installed"));
        return None;
    }
    let script = scratch_dir(dir).join("traced.py");
    std::fs::write(&script, PYTHON_SCRIPT).unwrap();
    let mut target = Guard::spawn(Command::new(PYTHON).arg(&script));
    let mut out = BufReader::new(target.0.stdout.take().unwrap());
    read_until(&mut out, Duration::from_secs(20), |l| l == "ready");
    Some((target, script))
}

/// Reads lines of a child's stream until one satisfies `done` or `timeout`
/// passes; returns the lines read.
pub fn read_until(
    stream: &mut BufReader<impl Read>,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut line = String::new();
    while start.elapsed() < timeout {
        line.clear();
        if stream.read_line(&mut line).expect("read line") == 0 {
            break;
        }
        let finished = done(line.trim_end());
        lines.push(line.trim_end().to_owned());
        if finished {
            return lines;
        }
    }
    panic!("timed out or stream ended; lines so far: {lines:?}");
}

/// Starts `usdt trace ARGS` in the background and waits until it reports
/// that it attached (its "tracing ..." line on stderr).
pub fn start_trace(args: &[&str]) -> (Guard, BufReader<ChildStderr>) {
    let mut guard = Guard::spawn(usdt().arg("trace").args(args));
    let mut stderr = BufReader::new(guard.0.stderr.take().expect("stderr"));
    read_until(&mut stderr, Duration::from_secs(60), |line| {
        line.starts_with("usdt: tracing ")
    });
    (guard, stderr)
}

/// The start of the one line a trace that needs BPF cookies is refused
/// with on a kernel without them (before 5.15).
pub const NEEDS_COOKIES: &str = "this kernel has no BPF cookies (Linux 5.15), needed for ";

/// Whether the tracer uses BPF cookies on this kernel
/// (`USDT_DISABLE_FEATURES` included). Without them a PIE or shared object
/// traced by path, a return probe and a site traced for two purposes at
/// once are refused.
pub fn has_cookies() -> bool {
    usdt_tracer::KernelFeatures::get().cookies
}

/// Whether the kernel has BPF cookies; if not, checks that `usdt trace
/// ARGS`, which needs them, is refused with the one line naming `what`
/// (and the test has nothing more to trace).
pub fn cookies_or_refused(args: &[&str], what: &str) -> bool {
    if has_cookies() {
        return true;
    }
    assert_refused(args, NEEDS_COOKIES, what);
    false
}

/// Checks that `usdt trace ARGS` fails with the one line that contains
/// `reason` and names `what`.
fn assert_refused(args: &[&str], reason: &str, what: &str) {
    let mut full = vec!["trace"];
    full.extend_from_slice(args);
    let line = assert_failure(&run_usdt(&full), 1, reason);
    assert!(line.contains(what), "expected `{what}` in: {line}");
}

/// Whether the kernel has BPF cookies; if not, checks that `attached`, the
/// tracer library's attempt at a trace that needs them, was refused naming
/// `what`.
pub fn cookies_or_refused_attach<T>(
    attached: &Result<T, usdt_tracer::TraceError>,
    what: &str,
) -> bool {
    if has_cookies() {
        return true;
    }
    let Err(error) = attached else {
        panic!("attached without BPF cookies: {what}");
    };
    let line = error.to_string();
    assert!(
        line.contains(NEEDS_COOKIES) && line.contains(what),
        "expected the refusal of `{what}` for want of BPF cookies: {line}"
    );
    false
}

/// Checks that the kernel log has no warning that a BPF tracing program
/// allocates map entries at run time (a warning with a stack trace from
/// Linux 5.7 to 6.0, for hash maps not preallocated; the tracer
/// preallocates there). Needs root, as reading the kernel log does.
pub fn assert_no_runtime_allocation_warning() {
    let output = std::process::Command::new("dmesg")
        .output()
        .expect("run dmesg");
    assert!(output.status.success(), "dmesg: {output:?}");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        !log.contains("uses run-time allocation"),
        "the kernel warned: {}",
        log.lines()
            .find(|line| line.contains("uses run-time allocation"))
            .unwrap_or_default()
    );
}

/// Reads the `u16` at runtime address `address` of process `pid` (a
/// semaphore).
pub fn read_u16(pid: u32, address: u64) -> u16 {
    u16::from_ne_bytes(read_memory(pid, address, 2).try_into().unwrap())
}

/// Reads the `u64` at runtime address `address` of process `pid`.
pub fn read_u64(pid: u32, address: u64) -> u64 {
    u64::from_ne_bytes(read_memory(pid, address, 8).try_into().unwrap())
}

/// The module of process `pid` whose path ends with `module`.
fn module_of(pid: u32, module: &str) -> Module {
    let process = usdt_reader::Process::open(pid).expect("open process");
    let modules = process.modules().expect("modules");
    modules
        .into_iter()
        .find(|m| m.path.to_string_lossy().ends_with(module))
        .unwrap_or_else(|| panic!("process {pid} maps no {module}"))
}

/// The runtime address in process `pid` of the semaphore of probe
/// `provider:name` in the module whose path ends with `module`.
pub fn semaphore_address(pid: u32, module: &str, provider: &str, name: &str) -> u64 {
    let module = module_of(pid, module);
    let probe = module
        .probes
        .iter()
        .find(|p| p.provider == provider && p.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no probe {provider}:{name} in {module:?}",
                module = module.path
            )
        });
    probe.semaphore.expect("the probe has a semaphore") + module.bias
}

/// The runtime address in process `pid` of symbol `symbol` of the module
/// whose path ends with `module` (read from the file's symbol table, or
/// its dynamic one).
pub fn runtime_symbol_address(pid: u32, module: &str, symbol: &str) -> u64 {
    let module = module_of(pid, module);
    let bytes = crate::elf::read(&module.host_path);
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse module");
    let value = crate::elf::symbol_address(&elf, symbol)
        .or_else(|| {
            elf.dynsyms
                .iter()
                .find(|sym| elf.dynstrtab.get_at(sym.st_name) == Some(symbol))
                .map(|sym| sym.st_value)
        })
        .unwrap_or_else(|| panic!("no symbol {symbol} in {}", module.path.display()));
    value + module.bias
}

/// The BPF links process `pid` holds (aya lists every link of the system,
/// so the process's descriptors are counted).
pub fn links_of(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:bpf_link")
        .count()
}

/// Waits (up to 60 s) until process `pid` catches signal `signal` (its
/// handler is installed: `SigCgt` in `/proc/PID/status`).
pub fn wait_until_catching(pid: u32, signal: i32) {
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (signal - 1)) != 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "process {pid} never caught signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Tests that attach the tracer library in this process, against the one
/// that counts this process's BPF links.
static IN_PROCESS: RwLock<()> = RwLock::new(());

/// For a test attaching the tracer library in this process: while the
/// guard lives, no test counts this process's BPF links (see
/// [`alone_tracing_in_process`]). Such tests may run together.
pub fn tracing_in_process() -> RwLockReadGuard<'static, ()> {
    IN_PROCESS.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a test counting this process's BPF links: while the guard lives,
/// no other test attaches the tracer library in this process (see
/// [`tracing_in_process`]).
pub fn alone_tracing_in_process() -> RwLockWriteGuard<'static, ()> {
    IN_PROCESS.write().unwrap_or_else(PoisonError::into_inner)
}

/// The arguments of sdt_index's seven `sdt_index:element` hits, in order:
/// for I from -3 to 3, the signed byte `table[128 + I]`, the unsigned byte
/// `table[I + 3]` and I, where `table[K] = (uint8_t)(K * 37 + 11)`.
pub fn expected_sdt_index() -> Vec<[i64; 3]> {
    let table = |k: i64| (k * 37 + 11) as u8;
    (-3..=3)
        .map(|i| [i64::from(table(128 + i) as i8), i64::from(table(i + 3)), i])
        .collect()
}

/// The values sdt_args passes in iteration `i`, per probe, as the JSON text
/// of each argument.
pub fn expected_sdt_args(i: u64) -> BTreeMap<&'static str, Vec<String>> {
    let texts = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    BTreeMap::from([
        ("iteration", vec![i.to_string()]),
        (
            "min_values",
            texts(&[
                "-128",
                "-32768",
                "-2147483648",
                "-9223372036854775808",
                "0",
                "0",
                "0",
                "0",
            ]),
        ),
        (
            "max_values",
            texts(&[
                "127",
                "32767",
                "2147483647",
                "9223372036854775807",
                "255",
                "65535",
                "4294967295",
                "18446744073709551615",
            ]),
        ),
        (
            "small_values",
            texts(&["-1", "-2", "-3", "-4", "5", "6", "7", "8"]),
        ),
        ("stack", texts(&["-100", "-200", "300", "-4"])),
        (
            "globals",
            texts(&["-12345", "1234605616436508552", "-32000", "200"]),
        ),
        ("indexed", texts(&["-3003", "-4004"])),
        (
            "constants",
            texts(&[
                "0",
                "-1",
                "42",
                "-9223372036854775808",
                "18446744073709551615",
                "120",
            ]),
        ),
        ("string", texts(&["hello, usdt", "11"])),
        (
            "twelve",
            texts(&[
                "-1", "2", "-3", "4", "-5", "6", "-7", "8", "-9", "10", "-11", "12",
            ]),
        ),
        ("no_args", vec![]),
        ("guarded", vec![i.to_string(), "-424242".into()]),
    ])
}

/// The order in which sdt_args fires its probes in one iteration.
pub const FIRING_ORDER: [&str; 12] = [
    "iteration",
    "min_values",
    "max_values",
    "small_values",
    "stack",
    "globals",
    "indexed",
    "constants",
    "string",
    "twelve",
    "no_args",
    "guarded",
];
