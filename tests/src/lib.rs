//! Support code for the workspace's cross-crate and interoperability tests
//! (the `interop` test binary, one module per subject, and the example
//! server's tests).
//!
//! This root holds what every kind of test uses: skipping, scratch
//! directories, running commands, compiling the C fixtures, child processes.
//! The modules hold what tests of one subject share: [`cli`] the `usdt`
//! command, [`elf`] independent readings of ELF files (goblin, readelf),
//! [`macros`] the binary contract of the probe macros and gdb, [`reader`]
//! the C fixtures built for every architecture, [`serve`] `usdt serve` and
//! a real Prometheus scraping it, [`trace`] traced programs and what `usdt
//! trace` prints.
//!
//! Tests that need root and BPF, or an external tool such as `gdb` or
//! `bpftrace`, call [`require_bpf`] or [`require_tool`] first. Without the
//! privilege or the tool they print why they are skipped and return early;
//! with `USDT_REQUIRE_BPF=1` in the environment (as in CI) they fail instead,
//! so a missing capability can never pass silently.

#![deny(missing_docs)]

pub mod cli;
pub mod custom;
pub mod elf;
pub mod macros;
pub mod reader;
pub mod serve;
pub mod trace;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "USDT_REQUIRE_BPF";

/// Whether skipping is forbidden (`USDT_REQUIRE_BPF=1`).
pub fn skipping_forbidden() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run because of `reason`: fails the test when
/// skipping is forbidden, otherwise prints the reason and returns `false`.
pub fn skip(test: &str, reason: &str) -> bool {
    if skipping_forbidden() {
        panic!("{test}: {reason} ({REQUIRE_ENV}=1 forbids skipping)");
    }
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// `duration` stretched by `USDT_TEST_TIME_SCALE` (a whole factor, 1 when
/// unset), which `cargo xtask vm-test` sets in its emulated virtual
/// machines, where loading and verifying the BPF program alone takes
/// seconds: for the tests that bound how long a trace takes to begin or
/// end.
pub fn scaled(duration: std::time::Duration) -> std::time::Duration {
    let scale = std::env::var("USDT_TEST_TIME_SCALE")
        .ok()
        .and_then(|value| value.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    duration * scale
}

/// Whether this process may load BPF programs and open uprobe perf events:
/// it must run as root (CAP_SYS_ADMIN covers CAP_BPF and CAP_PERFMON) on a
/// kernel with the uprobe PMU. Otherwise skips `test` (see [`skip`]).
pub fn require_bpf(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return skip(
            test,
            "needs root (CAP_BPF and CAP_PERFMON) to attach BPF programs",
        );
    }
    if !Path::new("/sys/bus/event_source/devices/uprobe/type").exists() {
        return skip(test, "the kernel has no uprobe PMU");
    }
    true
}

/// Whether the external program `tool` can be run. Otherwise skips `test`
/// (see [`skip`]); `cargo xtask test` installs every tool the tests use.
pub fn require_tool(test: &str, tool: &str) -> bool {
    if find_in_path(tool).is_some() {
        return true;
    }
    skip(
        test,
        &format!("`{tool}` is not installed (cargo xtask test installs it)"),
    )
}

/// The full path of `program` if it is on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A scratch directory for one test's build products, under the target
/// directory so `cargo clean` removes it. Created empty.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = target_dir().join("usdt-test-scratch").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// Cargo's target directory for this build.
pub fn target_dir() -> PathBuf {
    // A relative CARGO_TARGET_DIR is relative to where cargo ran, not to
    // the test's working directory (its package), so only trust absolute.
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir;
    }
    // Test binaries live in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary inside a target directory")
        .to_path_buf()
}

/// Runs `cmd`, panicking with its stderr if it fails; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The directory of C sources and other fixtures shared by the tests.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Compiles the C fixture `source` (relative to [`fixtures_dir`]) with
/// `compiler` (`cc`, `aarch64-linux-gnu-gcc`, ...) and extra `flags` into
/// `out_dir`, returning the output path (named after the source and flags).
pub fn compile_c(compiler: &str, source: &str, flags: &[&str], out_dir: &Path) -> PathBuf {
    let stem = Path::new(source)
        .file_stem()
        .expect("source file name")
        .to_string_lossy()
        .into_owned();
    let suffix: String = flags
        .iter()
        .map(|f| f.trim_start_matches('-').replace(['=', '/', ','], "_"))
        .collect::<Vec<_>>()
        .join("_");
    let out = out_dir.join(if suffix.is_empty() {
        stem
    } else {
        format!("{stem}_{suffix}")
    });
    run(Command::new(compiler)
        .arg(fixtures_dir().join(source))
        .args(flags)
        .arg("-o")
        .arg(&out));
    out
}

/// The `cc` flag `-BDIR` that, with `-fuse-ld=lld`, links with the Rust
/// toolchain's `ld.lld` wrapper (lld lays out segments differently from GNU
/// ld); `None`, after skipping `test` (see [`skip`]), when the toolchain has
/// no lld.
pub fn lld_flag(test: &str) -> Option<String> {
    let sysroot = run(Command::new("rustc").args(["--print", "sysroot"]));
    let version = run(Command::new("rustc").arg("-vV"));
    let host = version.lines().find_map(|l| l.strip_prefix("host: "));
    let dir = host.map(|host| {
        Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(host)
            .join("bin/gcc-ld")
    });
    match dir {
        Some(dir) if dir.join("ld.lld").exists() => Some(format!("-B{}", dir.display())),
        _ => {
            skip(test, "the Rust toolchain has no gcc-ld/ld.lld");
            None
        }
    }
}

/// A directory under `out` holding `sys/sdt.h` and `sys/sdt-config.h`
/// alone, for cross compilers (the header is installed only in the host's
/// multiarch include directory); pass it with `-I`.
pub fn sdt_include_dir(out: &Path) -> PathBuf {
    let candidates = [
        "/usr/include/sys",
        "/usr/include/x86_64-linux-gnu/sys",
        "/usr/include/aarch64-linux-gnu/sys",
    ];
    let source = candidates
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("sdt.h").is_file())
        .expect("sys/sdt.h (systemtap-sdt-dev) is installed");
    let include = out.join("include");
    std::fs::create_dir_all(include.join("sys")).unwrap();
    for header in ["sdt.h", "sdt-config.h"] {
        std::fs::copy(source.join(header), include.join("sys").join(header)).unwrap();
    }
    include
}

/// `provider:name` of a probe or event printed by `usdt list --json` or
/// `usdt trace --json`.
pub fn json_probe_name(object: &serde_json::Value) -> String {
    format!(
        "{}:{}",
        object["provider"].as_str().expect("a provider string"),
        object["name"].as_str().expect("a name string")
    )
}

/// A child process, killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Guard {
    /// Starts `command` with piped stdin, stdout and stderr.
    pub fn spawn(command: &mut Command) -> Guard {
        Guard(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}")),
        )
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the child to exit and returns its output (what is left
    /// of the streams not taken).
    pub fn finish(mut self) -> Output {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut out) = self.0.stdout.take() {
            std::io::Read::read_to_end(&mut out, &mut stdout).expect("read stdout");
        }
        if let Some(mut err) = self.0.stderr.take() {
            std::io::Read::read_to_end(&mut err, &mut stderr).expect("read stderr");
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

/// Waits (up to 10 s) until process `pid` maps a file whose path contains
/// `file` (its dynamic loader has run).
pub fn wait_for_mapping(pid: u32, file: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .contains(file)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} never mapped {file}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `len` bytes at address `address` of process `pid`, read through
/// `/proc/PID/mem`.
pub fn read_memory(pid: u32, address: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("open /proc/{pid}/mem: {e}"));
    let mut buf = vec![0; len];
    mem.read_exact_at(&mut buf, address)
        .unwrap_or_else(|e| panic!("read {address:#x} of process {pid}: {e}"));
    buf
}
