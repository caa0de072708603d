//! Shared helpers of the `trace_*` tests: the `usdt` binary, C fixtures,
//! running and reading `usdt trace`, reading a traced process's memory.

#![allow(dead_code)] // Each test file uses a different subset.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use usdt_interop_tests::{compile_c, scratch_dir};

/// The environment variable naming an already built `usdt` command, which
/// the tests then use instead of building it (`cargo xtask vm-test` builds
/// it first: inside a virtual machine cargo takes minutes to find it
/// fresh).
pub const USDT_BINARY_ENV: &str = "USDT_TEST_BINARY";

/// The `usdt` command, built once per test binary (it belongs to another
/// package, so cargo does not hand its path to these tests), or the one
/// [`USDT_BINARY_ENV`] names.
pub fn usdt() -> Command {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    let path = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os(USDT_BINARY_ENV) {
            return PathBuf::from(path);
        }
        let out = Command::new(env!("CARGO"))
            .args(["build", "--package", "usdt-cli", "--bin", "usdt"])
            .args(["--message-format", "json-render-diagnostics"])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "building the usdt binary failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["name"] == "usdt")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the usdt executable")
    });
    Command::new(path)
}

/// Runs `usdt` with `args` and returns its output (stdin closed).
pub fn run_usdt(args: &[&str]) -> Output {
    usdt()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run usdt")
}

/// Builds C fixture `source` at -O2, linked by the Rust toolchain's lld
/// (which lays out segments differently from GNU ld), into a directory
/// named after `name`; `None` (after skipping `test`) when the toolchain
/// has no lld.
pub fn build_c_with_lld(test: &str, name: &str, source: &str) -> Option<PathBuf> {
    let Some(lld) = usdt_interop_tests::rust_lld_dir() else {
        usdt_interop_tests::skip(test, "the Rust toolchain has no gcc-ld/ld.lld");
        return None;
    };
    let lld_flag = format!("-B{}", lld.display());
    Some(build_c(name, source, &["-O2", "-fuse-ld=lld", &lld_flag]))
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

/// Asserts a successful run and returns its standard error.
pub fn assert_success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "usdt failed with {}: {stderr}",
        output.status
    );
    stderr
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

/// Compiles the C fixture `source` with `flags` into a fresh scratch
/// directory named `test`.
pub fn build_c(test: &str, source: &str, flags: &[&str]) -> PathBuf {
    let dir = scratch_dir(test);
    compile_c("cc", source, flags, &dir)
}

/// Builds `libsdt_lib.so` (at `opt`) and `sdt_lib_main` linked against it
/// (found next to it through `$ORIGIN`); returns (main, library).
pub fn build_shared_fixture(test: &str, opt: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(test);
    let library = dir.join("libsdt_lib.so");
    usdt_interop_tests::run(
        Command::new("cc")
            .arg(usdt_interop_tests::fixtures_dir().join("sdt_lib.c"))
            .args([opt, "-shared", "-fPIC", "-o"])
            .arg(&library),
    );
    let main = dir.join("sdt_lib_main");
    usdt_interop_tests::run(
        Command::new("cc")
            .arg(usdt_interop_tests::fixtures_dir().join("sdt_lib_main.c"))
            .args([opt, "-o"])
            .arg(&main)
            .arg("-L")
            .arg(&dir)
            .args(["-lsdt_lib", "-Wl,-rpath,$ORIGIN"]),
    );
    (main, library)
}

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Guard {
    /// Starts `command` with piped stdout and stderr.
    pub fn spawn(command: &mut Command) -> Guard {
        Guard(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        )
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the child to exit and returns its output.
    pub fn finish(mut self) -> Output {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_end(&mut stdout).expect("read stdout");
        }
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_end(&mut stderr).expect("read stderr");
        }
        let status = self.0.wait().expect("wait");
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Reads the `u16` at runtime address `address` of process `pid` (a
/// semaphore) through /proc/PID/mem.
pub fn read_u16(pid: u32, address: u64) -> u16 {
    let mut bytes = [0u8; 2];
    read_memory(pid, address, &mut bytes);
    u16::from_ne_bytes(bytes)
}

/// Reads the `u64` at runtime address `address` of process `pid`.
pub fn read_u64(pid: u32, address: u64) -> u64 {
    let mut bytes = [0u8; 8];
    read_memory(pid, address, &mut bytes);
    u64::from_ne_bytes(bytes)
}

fn read_memory(pid: u32, address: u64, buf: &mut [u8]) {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    mem.read_exact_at(buf, address)
        .unwrap_or_else(|e| panic!("read {:#x} of process {pid}: {e}", address));
}

/// The runtime address in process `pid` of the semaphore of probe
/// `provider:name` in the module whose path ends with `module`.
pub fn semaphore_address(pid: u32, module: &str, provider: &str, name: &str) -> u64 {
    let process = usdt_reader::Process::open(pid).expect("open process");
    let modules = process.modules().expect("modules");
    let module = modules
        .iter()
        .find(|m| m.path.to_string_lossy().ends_with(module))
        .unwrap_or_else(|| panic!("process {pid} maps no {module}"));
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
/// whose path ends with `module` (read from the file's symbol table).
pub fn symbol_address(pid: u32, module: &str, symbol: &str) -> u64 {
    let process = usdt_reader::Process::open(pid).expect("open process");
    let modules = process.modules().expect("modules");
    let module = modules
        .iter()
        .find(|m| m.path.to_string_lossy().ends_with(module))
        .unwrap_or_else(|| panic!("process {pid} maps no {module}"));
    let bytes = std::fs::read(&module.host_path).expect("read module");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse module");
    let value = elf
        .syms
        .iter()
        .find(|sym| elf.strtab.get_at(sym.st_name) == Some(symbol))
        .or_else(|| {
            elf.dynsyms
                .iter()
                .find(|sym| elf.dynstrtab.get_at(sym.st_name) == Some(symbol))
        })
        .map(|sym| sym.st_value)
        .unwrap_or_else(|| panic!("no symbol {symbol} in {}", module.path.display()));
    value + module.bias
}

/// Waits until `path` exists (a fixture writing a marker file).
pub fn wait_for_file(path: &Path, timeout: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < timeout,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts exit status `code` and one line on stderr starting with
/// `usdt: ` and containing `text`; returns that line.
pub fn assert_failure(output: &Output, code: i32, text: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("usdt: "), "{stderr}");
    assert!(stderr.contains(text), "expected `{text}` in: {stderr}");
    assert!(output.stdout.is_empty(), "output despite the error");
    stderr
}
