//! `cargo xtask vm-test [KERNEL...] [-- FILTER...]`: the BPF tests on other
//! kernels, each in a virtual machine.
//!
//! The tracing tests (every test file that calls `require_bpf` and traces
//! with `usdt` or `usdt-tracer`: in the workspace's test executables with a
//! module per file, such as `interop`, the modules selected by libtest
//! filters `MODULE::`) are built once on this machine with
//! `cargo test --no-run`; then, for each kernel, a QEMU virtual machine
//! (virtme-ng, which boots a kernel over this machine's own files) runs
//! those test executables as root with `USDT_REQUIRE_BPF=1`. `host` runs
//! them on the running kernel, without a virtual machine.
//!
//! The kernels are Debian's: `6.1` is bookworm's and `5.10` bullseye's
//! `linux-image-amd64`, `arm64` bookworm's `linux-image-arm64`,
//! downloaded from the Debian mirror this machine's apt uses (through a
//! private apt configuration, so the machine's own sources are left alone)
//! and unpacked under `~/.cache/usdt-sdk/kernels`. The arm64 machine runs
//! over an arm64 root file system, with tests cross-compiled for it (see
//! the [`arm64`] module). virtme-ng comes from PyPI into a virtual
//! environment of Debian's python3 beside them; QEMU, busybox and kmod are
//! Debian packages.
//!
//! The guest writes one line per test executable (its exit status and
//! time) to a result file in the target directory, which it shares read
//! and write with the host; a run passes only if the file names the
//! expected kernel, holds a status 0 for every executable and its closing
//! line. A kernel panic, a timeout or a missing line fails it. Each
//! executable's output is kept in `target/vm-test/KERNEL/NAME.out`, and the
//! summary counts its tests' results per module; the console (kernel
//! messages and test output) is kept in `target/vm-test/KERNEL/console.log`.

mod arm64;

use crate::deps;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Usage of `cargo xtask vm-test`.
const USAGE: &str = "\
usage: cargo xtask vm-test [--timeout SECS] [--verbose] [KERNEL...] [-- FILTER...]

Runs the tracing tests (every test file that calls require_bpf and traces
with usdt or usdt-tracer; in a test executable with a module per file, its
tracing modules) as root with USDT_REQUIRE_BPF=1 on each KERNEL, in a QEMU
virtual machine over this machine's files. Needs root.

kernels (default: host 6.1 5.10):
  host   the running kernel, no virtual machine
  6.1    Debian 12 (bookworm)'s linux-image-amd64
  5.10   Debian 11 (bullseye)'s linux-image-amd64
  arm64  Debian 12's linux-image-arm64, emulated aarch64 over an arm64
         Debian root file system, the tests cross-compiled for aarch64;
         without FILTERs only the few tests that cover what differs on
         aarch64 (operand forms, typed probes, semaphores)

options:
  --timeout SECS  stop a kernel's run after SECS seconds, as a failure (1800)
  --verbose       print the guest's kernel messages too (they always go to
                  target/vm-test/KERNEL/console.log)
  FILTER...       passed to every test executable instead of its tracing
                  modules' filters, its other modules skipped (libtest
                  name filters and options, such as --exact or --skip
                  NAME; with --exact, name tests in full: MODULE::TEST)
";

/// A Debian kernel the tests can run on.
struct Kernel {
    /// The name given on the command line.
    name: &'static str,
    /// The Debian release whose `linux-image-ARCH` it is.
    suite: &'static str,
    /// The machine it runs on.
    arch: VmArch,
    /// Whether a run without kernels named runs it.
    default: bool,
}

/// The kernels `vm-test` knows, besides `host`.
const KERNELS: &[Kernel] = &[
    Kernel {
        name: "6.1",
        suite: "bookworm",
        arch: VmArch::Amd64,
        default: true,
    },
    Kernel {
        name: "5.10",
        suite: "bullseye",
        arch: VmArch::Amd64,
        default: true,
    },
    Kernel {
        name: "arm64",
        suite: "bookworm",
        arch: VmArch::Arm64,
        default: false,
    },
];

/// The machine a virtual machine emulates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum VmArch {
    /// x86-64, this machine's own: the guest sees this machine's files.
    Amd64,
    /// aarch64: the guest runs over an arm64 Debian root file system, the
    /// tests cross-compiled for it.
    Arm64,
}

impl VmArch {
    /// Debian's name of the architecture (`linux-image-NAME`).
    fn debian(self) -> &'static str {
        match self {
            VmArch::Amd64 => "amd64",
            VmArch::Arm64 => "arm64",
        }
    }

    /// The Rust target the tests are built for, if not this machine's.
    fn rust_target(self) -> Option<&'static str> {
        match self {
            VmArch::Amd64 => None,
            VmArch::Arm64 => Some(arm64::RUST_TARGET),
        }
    }
}

/// Debian packages the virtual machines need, with a file each installs.
const VM_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    // virtme-ng builds an initramfs around a static busybox when the
    // kernel needs modules to mount its root file system (Debian's do).
    ("busybox-static", "/bin/busybox"),
    // depmod, for the modules of the downloaded kernels.
    ("kmod", "/usr/sbin/depmod"),
    // Debian's python3 with venv, for virtme-ng.
    ("python3-venv", "/usr/share/doc/python3-venv/copyright"),
];

/// The virtme-ng release, from PyPI.
const VIRTME_NG_VERSION: &str = "1.42";

/// Default time allowed for one kernel's run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Apt's package lists older than this are fetched again (a new kernel
/// ABI replaces the old package on the mirror).
const LISTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Tracing tests left out in the virtual machines, with why: they test
/// something else that emulation makes too slow, and run on the host.
const VM_SKIPS: &[(&str, &str)] = &[(
    "readme_project::a_new_application_follows_the_readme",
    "builds a new cargo project, which outlasts the test's timeouts when emulated",
)];

/// The last line the guest writes when every test executable has run.
const DONE: &str = "done";

/// One test executable: its target and path.
struct TestBinary {
    target: Target,
    path: PathBuf,
}

impl TestBinary {
    /// Its target's name.
    fn name(&self) -> &str {
        &self.target.name
    }

    /// The libtest arguments it runs with: its tracing modules' filters,
    /// or the user's `filters` with its other modules skipped.
    fn args(&self, filters: &[String]) -> Vec<String> {
        if filters.is_empty() {
            self.target
                .modules
                .iter()
                .map(|m| format!("{m}::"))
                .collect()
        } else {
            let mut args = filters.to_vec();
            for module in &self.target.other_modules {
                args.extend(["--skip".to_string(), format!("{module}::")]);
            }
            args
        }
    }

    /// The file, in `out_dir`, that keeps its output.
    fn output_file(&self, out_dir: &Path) -> PathBuf {
        out_dir.join(format!("{}.out", self.name()))
    }
}

/// The test executables and how each is run.
struct Tests {
    binaries: Vec<TestBinary>,
    /// The user's libtest arguments.
    filters: Vec<String>,
    /// The `usdt` command the tracing tests start.
    usdt: PathBuf,
}

/// One test executable's run on one kernel.
struct BinaryResult {
    name: String,
    /// Its exit status as reported (-1 if it could not run).
    code: i32,
    seconds: f64,
    /// Per module (the test name's first path segment): (module, passed,
    /// failed, ignored), from libtest's `test NAME ... VERDICT` lines.
    modules: Vec<(String, usize, usize, usize)>,
    /// The tests that failed, by name.
    failed: Vec<String>,
}

impl BinaryResult {
    /// Reads the per-test results of `binary` from its output in
    /// `out_dir`.
    fn new(binary: &TestBinary, out_dir: &Path, code: i32, seconds: f64) -> BinaryResult {
        let output = std::fs::read(binary.output_file(out_dir)).unwrap_or_default();
        let mut modules: Vec<(String, usize, usize, usize)> = Vec::new();
        let mut failed = Vec::new();
        for line in String::from_utf8_lossy(&output).lines() {
            let Some((test, verdict)) = line
                .trim_end_matches('\r')
                .strip_prefix("test ")
                .and_then(|rest| rest.split_once(" ... "))
            else {
                continue;
            };
            let verdict = verdict.split([' ', ',']).next().unwrap_or(verdict);
            let module = test.split("::").next().unwrap_or(test).to_string();
            let index = match modules.iter().position(|(m, ..)| *m == module) {
                Some(index) => index,
                None => {
                    modules.push((module, 0, 0, 0));
                    modules.len() - 1
                }
            };
            let entry = &mut modules[index];
            match verdict {
                "ok" => entry.1 += 1,
                "FAILED" => {
                    entry.2 += 1;
                    failed.push(test.to_string());
                }
                _ => entry.3 += 1,
            }
        }
        modules.sort();
        failed.sort();
        BinaryResult {
            name: binary.name().to_string(),
            code,
            seconds,
            modules,
            failed,
        }
    }
}

/// How one kernel's run went.
struct Outcome {
    kernel: String,
    seconds: f64,
    tests: Vec<BinaryResult>,
    /// Why the run failed, if it did.
    failure: Option<String>,
}

/// Runs `cargo xtask vm-test`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut kernels: Vec<String> = Vec::new();
    let mut filters: Vec<String> = Vec::new();
    let mut timeout = DEFAULT_TIMEOUT;
    let mut verbose = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--" => {
                filters = rest.cloned().collect();
                break;
            }
            "--timeout" => {
                let value = rest.next().ok_or("vm-test: --timeout needs SECS")?;
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("vm-test: `{value}` is not a number of seconds"))?;
                timeout = Duration::from_secs(secs);
            }
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            name if name == "host" || KERNELS.iter().any(|k| k.name == name) => {
                kernels.push(name.to_string());
            }
            other => {
                return Err(format!(
                    "vm-test: unknown kernel or option `{other}`\n\n{USAGE}"
                ));
            }
        }
    }
    if kernels.is_empty() {
        kernels.push("host".into());
        kernels.extend(
            KERNELS
                .iter()
                .filter(|k| k.default)
                .map(|k| k.name.to_string()),
        );
    }
    crate::http::require_root("vm-test")?;
    if kernels.iter().any(|k| k != "host") && std::env::consts::ARCH != "x86_64" {
        return Err(
            "vm-test: the virtual machines run on x86-64 (amd64 kernels over its files, \
             arm64 ones with tests cross-compiled there)"
                .into(),
        );
    }

    let root = deps::workspace_root();
    let metadata = metadata(&root)?;
    let target = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("cargo metadata has no target_directory")?;
    let targets = bpf_test_targets(&root, &metadata)?;
    // The tests, built once per architecture.
    let mut built: Vec<(VmArch, Tests)> = Vec::new();
    let mut outcomes = Vec::new();
    for kernel in &kernels {
        let out_dir = target.join("vm-test").join(kernel);
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
        let spec = KERNELS.iter().find(|k| k.name == kernel);
        let arch = spec.map_or(VmArch::Amd64, |k| k.arch);
        if !built.iter().any(|(a, _)| *a == arch) {
            let tests = build_for(arch, &root, &targets, &filters)?;
            built.push((arch, tests));
        }
        let tests = &built.iter().find(|(a, _)| *a == arch).expect("built").1;
        let outcome = match spec {
            None => run_on_host(tests, &out_dir),
            Some(spec) => run_in_vm(spec, tests, &root, &target, &out_dir, timeout, verbose),
        };
        outcomes.push(outcome);
    }
    report(&outcomes)
}

/// Builds the tests that run on `arch` with the user's `filters`: for
/// arm64 without filters, only the executables of its small set of tests
/// ([`arm64::TESTS`]), which it runs in place of every tracing test.
fn build_for(
    arch: VmArch,
    root: &Path,
    targets: &[Target],
    filters: &[String],
) -> Result<Tests, String> {
    let (targets, filters) = if arch == VmArch::Arm64 && filters.is_empty() {
        let filters: Vec<String> = arm64::TESTS.iter().map(|t| t.to_string()).collect();
        let targets = targets
            .iter()
            .filter(|t| {
                filters.iter().any(|f| {
                    let module = f.split("::").next().unwrap_or(f);
                    t.modules.iter().any(|m| m == module)
                })
            })
            .cloned()
            .collect();
        (targets, filters)
    } else {
        (targets.to_vec(), filters.to_vec())
    };
    if let Some(triple) = arch.rust_target() {
        arm64::install_cross_tools()?;
        deps::rustup_target(triple)?;
    }
    let (binaries, usdt) = build_tests(root, targets, arch.rust_target())?;
    Ok(Tests {
        binaries,
        filters,
        usdt,
    })
}

/// `cargo metadata` of the workspace's own packages.
fn metadata(root: &Path) -> Result<serde_json::Value, String> {
    let text = deps::output(
        Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root),
    )?;
    serde_json::from_str(&text).map_err(|e| format!("cannot parse cargo metadata: {e}"))
}

/// A test target that holds tracing tests.
#[derive(Clone)]
struct Target {
    package: String,
    name: String,
    package_dir: PathBuf,
    /// Its modules that trace (run with the filter `MODULE::`), or empty
    /// when the target's own source traces and is run whole.
    modules: Vec<String>,
    /// Its other modules, skipped when the filters are the user's.
    other_modules: Vec<String>,
}

/// The workspace's tracing tests: every test target whose source traces
/// (see [`traces`]), and every test target with a module per file
/// (`mod NAME;` beside it, as `NAME.rs` or `NAME/mod.rs`) some of whose
/// modules do.
fn bpf_test_targets(root: &Path, metadata: &serde_json::Value) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().unwrap_or(root).to_path_buf();
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_test = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "test"));
            let source = PathBuf::from(target["src_path"].as_str().unwrap_or_default());
            let Ok(text) = std::fs::read_to_string(&source) else {
                continue;
            };
            if !is_test {
                continue;
            }
            let (mut modules, mut other_modules) = (Vec::new(), Vec::new());
            if !traces(&text) {
                let source_dir = source.parent().unwrap_or(&dir);
                for module in declared_modules(&text) {
                    let file = source_dir.join(format!("{module}.rs"));
                    let file = if file.is_file() {
                        file
                    } else {
                        source_dir.join(&module).join("mod.rs")
                    };
                    let module_text = std::fs::read_to_string(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    if traces(&module_text) {
                        modules.push(module);
                    } else {
                        other_modules.push(module);
                    }
                }
                if modules.is_empty() {
                    continue;
                }
            }
            targets.push(Target {
                package: name.to_string(),
                name: target["name"].as_str().unwrap_or_default().to_string(),
                package_dir: dir.clone(),
                modules,
                other_modules,
            });
        }
    }
    if targets.is_empty() {
        return Err("vm-test: found no tracing test".into());
    }
    Ok(targets)
}

/// The modules a source file declares in files of their own (`mod NAME;`
/// at the start of a line, `pub` or not).
fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?.trim();
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_string())
        })
        .collect()
}

/// Whether a test's source is a tracing test: one that needs BPF
/// (`require_bpf`) and traces with `usdt` (the test library's `trace`
/// module) or the `usdt-tracer` library. bpftrace's interoperability tests
/// need BPF too but test bpftrace: emulated, its LLVM compilation alone
/// outlasts their timeouts.
fn traces(source: &str) -> bool {
    source.contains("require_bpf(")
        && (source.contains("usdt_interop_tests::trace") || source.contains("usdt_tracer"))
}

/// Builds the tracing tests (`cargo test --no-run`) and the `usdt` command
/// they start, for this machine or the Rust target `triple`; returns the
/// test executables and `usdt`.
fn build_tests(
    root: &Path,
    targets: Vec<Target>,
    triple: Option<&str>,
) -> Result<(Vec<TestBinary>, PathBuf), String> {
    let modules: usize = targets.iter().map(|t| t.modules.len().max(1)).sum();
    eprintln!(
        "xtask: building {} test executables ({modules} tracing test files) for {}",
        targets.len(),
        triple.unwrap_or("this machine")
    );
    // A cargo command for the target, cross-compiled with its C compiler
    // as linker (and for build scripts' C code).
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(args);
        if let Some(triple) = triple {
            let upper = triple.to_uppercase().replace('-', "_");
            cmd.args(["--target", triple])
                .env(format!("CARGO_TARGET_{upper}_LINKER"), arm64::CC)
                .env(format!("CC_{}", triple.replace('-', "_")), arm64::CC);
        }
        cmd
    };
    let mut cmd = cargo(&["test", "--locked", "--no-run"]);
    cmd.args(["--message-format", "json-render-diagnostics"])
        .current_dir(root)
        .stderr(Stdio::inherit());
    for target in &targets {
        cmd.args(["--package", &target.package, "--test", &target.name]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo test --no-run failed ({})", out.status));
    }
    let executables = artifacts(&out.stdout);
    let mut binaries = Vec::new();
    for target in targets {
        let path = executables
            .iter()
            .find(|(name, kind, _)| *name == target.name && kind == "test")
            .map(|(_, _, path)| path.clone())
            .ok_or_else(|| format!("cargo reported no executable for test {}", target.name))?;
        binaries.push(TestBinary { target, path });
    }
    // The tracing tests start `usdt`: built here (as they would build it),
    // it is named to them (USDT_BINARY_ENV) so they need not ask cargo.
    let out = cargo(&[
        "build",
        "--locked",
        "--package",
        "usdt-cli",
        "--bin",
        "usdt",
    ])
    .args(["--message-format", "json-render-diagnostics"])
    .current_dir(root)
    .stderr(Stdio::inherit())
    .output()
    .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build of usdt failed ({})", out.status));
    }
    let usdt = artifacts(&out.stdout)
        .into_iter()
        .find(|(name, kind, _)| name == "usdt" && kind == "bin")
        .map(|(_, _, path)| path)
        .ok_or("cargo reported no usdt executable")?;
    Ok((binaries, usdt))
}

/// The executables in cargo's JSON messages, as (target name, target kind,
/// path).
fn artifacts(messages: &[u8]) -> Vec<(String, String, PathBuf)> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_string();
            let kind = message["target"]["kind"][0].as_str()?.to_string();
            let path = PathBuf::from(message["executable"].as_str()?);
            Some((name, kind, path))
        })
        .collect()
}

/// Runs the test executables on the running kernel.
fn run_on_host(tests: &Tests, out_dir: &Path) -> Outcome {
    let start = Instant::now();
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for binary in &tests.binaries {
        eprintln!("xtask: host: {}", binary.name());
        let test_start = Instant::now();
        let status = run_teed(
            Command::new(&binary.path)
                .args(binary.args(&tests.filters))
                .current_dir(&binary.target.package_dir)
                .env("CARGO_MANIFEST_DIR", &binary.target.package_dir)
                .env(REQUIRE_ENV, "1")
                .env(USDT_BINARY_ENV, &tests.usdt),
            &binary.output_file(out_dir),
        );
        let code = match status {
            Ok(status) => status.code().unwrap_or(-1),
            Err(e) => {
                eprintln!("xtask: cannot run {}: {e}", binary.path.display());
                -1
            }
        };
        if code != 0 {
            failed.push(binary.name().to_string());
        }
        let seconds = test_start.elapsed().as_secs_f64();
        results.push(BinaryResult::new(binary, out_dir, code, seconds));
    }
    Outcome {
        kernel: format!("host ({})", host_release()),
        seconds: start.elapsed().as_secs_f64(),
        tests: results,
        failure: (!failed.is_empty()).then(|| format!("failed: {}", failed.join(", "))),
    }
}

/// Runs `cmd`, its standard output echoed and copied to `copy`.
fn run_teed(cmd: &mut Command, copy: &Path) -> Result<std::process::ExitStatus, String> {
    use std::io::{BufRead, Write};
    let mut file = std::fs::File::create(copy)
        .map_err(|e| format!("cannot create {}: {e}", copy.display()))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
    let stdout = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(stdout).split(b'\n') {
        let Ok(mut line) = line else { break };
        line.push(b'\n');
        let _ = std::io::stdout().write_all(&line);
        let _ = file.write_all(&line);
    }
    child.wait().map_err(|e| {
        format!(
            "cannot wait for {}: {e}",
            cmd.get_program().to_string_lossy()
        )
    })
}

/// The environment variable that turns the tests' skips into failures.
const REQUIRE_ENV: &str = "USDT_REQUIRE_BPF";

/// The environment variable by which the tests stretch the times they
/// bound: the guests are emulated (TCG), many times slower than the host
/// at loading and verifying a BPF program.
const TIME_SCALE_ENV: &str = "USDT_TEST_TIME_SCALE";

/// [`TIME_SCALE_ENV`] in the guests.
const GUEST_TIME_SCALE: u32 = 10;

/// The environment variable that names the built `usdt` command to the
/// tracing tests.
const USDT_BINARY_ENV: &str = "USDT_TEST_BINARY";

/// The running kernel's release.
fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Boots `kernel` in a virtual machine that runs the test executables.
fn run_in_vm(
    kernel: &Kernel,
    tests: &Tests,
    workspace: &Path,
    target: &Path,
    out_dir: &Path,
    timeout: Duration,
    verbose: bool,
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome {
        kernel: kernel.name.to_string(),
        seconds: 0.0,
        tests: Vec::new(),
        failure: None,
    };
    let result = (|| {
        deps::apt_install(VM_PACKAGES)?;
        let vng = virtme_ng()?;
        let (release, image) = fetch_kernel(kernel)?;
        outcome.kernel = format!("{} ({release})", kernel.name);
        let results = out_dir.join("results");
        let _ = std::fs::remove_file(&results);
        let script = out_dir.join("run.sh");
        for binary in &tests.binaries {
            let _ = std::fs::remove_file(binary.output_file(out_dir));
        }
        std::fs::write(&script, guest_script(kernel.arch, tests, out_dir, &results))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let mut cmd = Command::new(&vng);
        cmd.args(["--verbose", "--disable-kvm", "--force-9p"])
            .args(["--memory", "2G", "--cpus", "2"]);
        match kernel.arch {
            VmArch::Amd64 => {
                cmd.arg("--run")
                    .arg(&image)
                    // Emulated, on a busy machine, the timer may seem not to
                    // tick while 5.10 checks it, which it takes for a broken
                    // IO-APIC and panics.
                    .args(["--append", "no_timer_check"])
                    .arg(format!("--rwdir={}", target.display()));
            }
            VmArch::Arm64 => {
                // Over an arm64 root file system holding the kernel and its
                // modules; the workspace (test fixtures) and the target
                // directory (tests, `usdt`, their output) at the same paths
                // as here.
                let root = arm64::root_file_system(kernel.suite, &debian_mirror())?;
                let image = arm64::install_kernel(&root, &release, &image)?;
                let mut shared = vec![workspace];
                if !target.starts_with(workspace) {
                    shared.push(target);
                }
                cmd.args(["--arch", "arm64", "--root"])
                    .arg(&root)
                    .arg("--run")
                    .arg(&image);
                for dir in shared {
                    arm64::mount_point(&root, dir)?;
                    cmd.arg(format!("--rwdir={0}={0}", dir.display()));
                }
            }
        }
        let console = out_dir.join("console.log");
        eprintln!(
            "xtask: {}: booting {release} (console: {})",
            kernel.name,
            console.display()
        );
        cmd.arg("--exec")
            .arg(format!("sh {}", script.display()))
            .env("PATH", path_with(vng.parent().expect("vng in a directory")));
        let status = run_logged(&mut cmd, &console, timeout, verbose)?;
        let text = std::fs::read_to_string(&results).unwrap_or_default();
        outcome.tests = parse_results(&text)
            .into_iter()
            .filter_map(|(name, code, seconds)| {
                let binary = tests.binaries.iter().find(|b| b.name() == name)?;
                Some(BinaryResult::new(binary, out_dir, code, seconds))
            })
            .collect();
        check_results(&text, &release, &tests.binaries).map_err(|why| {
            format!(
                "{why} (virtme-ng exited with {status}; see {})",
                console.display()
            )
        })
    })();
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome.failure = result.err();
    outcome
}

/// The shell script the guest runs: each test executable from its
/// package's directory, its status and time appended to `results`. An
/// amd64 guest sees this machine's files and runs with its environment;
/// an arm64 one runs its own root file system's programs.
fn guest_script(arch: VmArch, tests: &Tests, out_dir: &Path, results: &Path) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by cargo xtask vm-test.\n");
    let results = quote(&results.to_string_lossy());
    let _ = writeln!(s, "echo \"kernel $(uname -r)\" > {results}");
    for (name, value) in std::env::vars() {
        let exported = match arch {
            VmArch::Amd64 => ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME"].as_slice(),
            VmArch::Arm64 => ["HOME"].as_slice(),
        };
        if exported.contains(&name.as_str()) {
            let _ = writeln!(s, "export {name}={}", quote(&value));
        }
    }
    if arch == VmArch::Arm64 {
        let _ = writeln!(s, "export PATH={}", quote(arm64::GUEST_PATH));
    }
    let _ = writeln!(s, "export {REQUIRE_ENV}=1");
    let _ = writeln!(s, "export {TIME_SCALE_ENV}={GUEST_TIME_SCALE}");
    let _ = writeln!(
        s,
        "export {USDT_BINARY_ENV}={}",
        quote(&tests.usdt.to_string_lossy())
    );
    for binary in &tests.binaries {
        let dir = quote(&binary.target.package_dir.to_string_lossy());
        let mut args = binary.args(&tests.filters);
        for (test, _) in VM_SKIPS {
            args.extend(["--skip".to_string(), test.to_string()]);
        }
        let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let output = quote(&binary.output_file(out_dir).to_string_lossy());
        let status = quote(&out_dir.join("status").to_string_lossy());
        let _ = writeln!(s, "echo \"xtask: guest: {}\"", binary.name());
        let _ = writeln!(s, "start=$(date +%s%N)");
        let _ = writeln!(
            s,
            "(cd {dir} && CARGO_MANIFEST_DIR={dir} {} {}; echo $? > {status}) 2>&1 | tee {output}",
            quote(&binary.path.to_string_lossy()),
            args.join(" ")
        );
        let _ = writeln!(
            s,
            "echo \"test {} $(cat {status}) $(( ($(date +%s%N) - start) / 1000000 ))\" >> {results}",
            binary.name()
        );
    }
    let _ = writeln!(s, "echo {DONE} >> {results}");
    s
}

/// `text` quoted for the shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// (test executable, status, seconds) of each `test` line of a result file.
fn parse_results(text: &str) -> Vec<(String, i32, f64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("test ")?.split_whitespace();
            let name = words.next()?.to_string();
            let code = words.next()?.parse().ok()?;
            let millis: f64 = words.next()?.parse().ok()?;
            Some((name, code, millis / 1000.0))
        })
        .collect()
}

/// Whether a result file shows a complete, passing run on `release`.
fn check_results(text: &str, release: &str, binaries: &[TestBinary]) -> Result<(), String> {
    let Some(first) = text.lines().next() else {
        return Err("the virtual machine wrote no result (no boot, or a panic?)".into());
    };
    if first != format!("kernel {release}") {
        return Err(format!("the guest ran `{first}`, not kernel {release}"));
    }
    let tests = parse_results(text);
    let mut failed = Vec::new();
    for binary in binaries {
        match tests.iter().find(|(name, _, _)| name == binary.name()) {
            Some((_, 0, _)) => {}
            Some(_) => failed.push(binary.name().to_string()),
            None => {
                return Err(format!(
                    "the guest stopped before {} reported (a panic?)",
                    binary.name()
                ));
            }
        }
    }
    if text.lines().last() != Some(DONE) {
        return Err("the guest stopped before its last line".into());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

/// Runs `cmd` in its own process group with its output in `log`, echoing
/// the log's lines (kernel messages only when `verbose`); kills the group
/// after `timeout`, which is an error.
fn run_logged(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    verbose: bool,
) -> Result<std::process::ExitStatus, String> {
    use std::os::unix::process::CommandExt;
    let file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
    let mut reader =
        std::fs::File::open(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let mut pending = String::new();
    let start = Instant::now();
    loop {
        let finished = child
            .try_wait()
            .map_err(|e| format!("cannot wait for the virtual machine: {e}"))?;
        echo_new_lines(&mut reader, &mut pending, verbose);
        if let Some(status) = finished {
            return Ok(status);
        }
        if start.elapsed() > timeout {
            // The whole group: virtme-ng, its helpers and QEMU.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            return Err(format!(
                "timed out after {} s (see {})",
                timeout.as_secs(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints the complete lines added to the log since the last call; kernel
/// messages (`[   1.234] ...`) only when `verbose`.
fn echo_new_lines(reader: &mut std::fs::File, pending: &mut String, verbose: bool) {
    let mut bytes = Vec::new();
    if reader.read_to_end(&mut bytes).is_err() {
        return;
    }
    pending.push_str(&String::from_utf8_lossy(&bytes));
    while let Some(end) = pending.find('\n') {
        let line: String = pending.drain(..=end).collect();
        let line = line.trim_end_matches(['\n', '\r']);
        let kernel_message = line.starts_with('[')
            && line[1..]
                .split(']')
                .next()
                .is_some_and(|stamp| stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.'));
        if verbose || !kernel_message {
            println!("{line}");
        }
    }
}

/// `dir` in front of this process's PATH (virtme-ng runs its own helpers
/// by name).
fn path_with(dir: &Path) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs).unwrap_or(path)
}

/// The `vng` command of virtme-ng, installed from PyPI into a virtual
/// environment of Debian's python3 under the cache if missing.
fn virtme_ng() -> Result<PathBuf, String> {
    let venv = deps::cache_dir()?.join(format!("virtme-ng-{VIRTME_NG_VERSION}"));
    let vng = venv.join("bin").join("vng");
    if vng.is_file() {
        return Ok(vng);
    }
    eprintln!(
        "xtask: installing virtme-ng {VIRTME_NG_VERSION} into {}",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    // Debian's interpreter, whatever python3 comes first on PATH: its venv
    // module is the python3-venv package.
    deps::run(
        Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv),
    )?;
    deps::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
    )?;
    if vng.is_file() {
        Ok(vng)
    } else {
        Err(format!("virtme-ng installed no {}", vng.display()))
    }
}

/// Makes sure `kernel` is unpacked in the cache; returns its release (as
/// `uname -r` says it) and the path of its image.
fn fetch_kernel(kernel: &Kernel) -> Result<(String, PathBuf), String> {
    let kernels = deps::cache_dir()?.join("kernels");
    let arch = kernel.arch.debian();
    let apt_dir = match kernel.arch {
        VmArch::Amd64 => kernels.join(format!("apt-{}", kernel.suite)),
        VmArch::Arm64 => kernels.join(format!("apt-{}-{arch}", kernel.suite)),
    };
    let apt = Apt::new(&apt_dir, kernel.suite, arch)?;
    let meta = format!("linux-image-{arch}");
    apt.update_if_old()?;
    // The meta-package depends on the current image package,
    // linux-image-RELEASE.
    let depends = deps::output(apt.command("apt-cache").args(["depends", &meta]))?;
    let package = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("{}'s {meta} depends on no image", kernel.suite))?
        .to_string();
    let release = package.trim_start_matches("linux-image-").to_string();
    let dir = kernels.join(&release);
    let image = dir.join("boot").join(format!("vmlinuz-{release}"));
    if image.is_file() {
        return Ok((release, image));
    }
    // The unsigned package: the same kernel and modules, without the
    // signed-image dependency chain.
    let unsigned = format!("{package}-unsigned");
    eprintln!("xtask: downloading {unsigned} ({})", kernel.suite);
    let debs = kernels.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    deps::run(
        apt.command("apt-get")
            .args(["download", "-qq", &unsigned])
            .current_dir(&debs),
    )?;
    let deb = std::fs::read_dir(&debs)
        .map_err(|e| format!("cannot read {}: {e}", debs.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{unsigned}_")))
        })
        .ok_or_else(|| format!("apt-get download left no {unsigned} package"))?;
    let partial = kernels.join(format!("{release}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    deps::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &dir)
        .map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    let _ = std::fs::remove_file(&deb);
    if image.is_file() {
        Ok((release, image))
    } else {
        Err(format!("{unsigned} holds no {}", image.display()))
    }
}

/// apt with its own package lists, for one Debian release: the machine's
/// sources, lists and preferences stay as they are.
struct Apt {
    dir: PathBuf,
    options: Vec<String>,
}

impl Apt {
    /// Sets up `dir` for release `suite` of the Debian mirror this machine
    /// uses, architecture `arch` (Debian's name).
    fn new(dir: &Path, suite: &str, arch: &str) -> Result<Apt, String> {
        for sub in ["state/lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        let sources = dir.join("sources.list");
        let line = format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {suite} main\n",
            debian_mirror()
        );
        std::fs::write(&sources, line)
            .map_err(|e| format!("cannot write {}: {e}", sources.display()))?;
        let options = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "Dir::Etc::Preferences=/dev/null".into(),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            format!("Dir::State={}", dir.join("state").display()),
            "Dir::State::status=/dev/null".into(),
            format!("Dir::Cache={}", dir.join("cache").display()),
            format!("APT::Architecture={arch}"),
            // Root owns the cache: apt's unprivileged download user could
            // not write to it.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect();
        Ok(Apt {
            dir: dir.to_path_buf(),
            options,
        })
    }

    /// Fetches the package lists unless they are recent.
    fn update_if_old(&self) -> Result<(), String> {
        let lists = self.dir.join("state").join("lists");
        let newest = std::fs::read_dir(&lists)
            .map_err(|e| format!("cannot read {}: {e}", lists.display()))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().contains("_Packages"))
            .filter_map(|entry| entry.metadata().ok()?.modified().ok())
            .max();
        let fresh = newest.is_some_and(|time| {
            SystemTime::now()
                .duration_since(time)
                .is_ok_and(|age| age < LISTS_MAX_AGE)
        });
        if fresh {
            return Ok(());
        }
        deps::run(self.command("apt-get").args(["update", "-qq"]))
    }

    /// `program` (apt-get or apt-cache) with this configuration.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.options);
        cmd
    }
}

/// The Debian mirror this machine's apt uses (its first source whose
/// address ends in `/debian`), or the default one.
fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(text);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if let Ok(text) = std::fs::read_to_string(path) {
                texts.push(text);
            }
        }
    }
    texts
        .iter()
        .flat_map(|text| text.lines())
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace())
        .map(|word| word.trim_end_matches('/'))
        .find(|word| word.contains("://") && word.ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

/// Prints a table of the runs; an error if any failed.
fn report(outcomes: &[Outcome]) -> Result<(), String> {
    println!();
    println!("vm-test summary");
    for outcome in outcomes {
        let verdict = if outcome.failure.is_none() {
            "ok"
        } else {
            "FAILED"
        };
        println!(
            "  {:<28} {:<7} {:>7.1} s",
            outcome.kernel, verdict, outcome.seconds
        );
        for result in &outcome.tests {
            let status = if result.code == 0 {
                "ok".to_string()
            } else {
                format!("exit {}", result.code)
            };
            println!(
                "      {:<24} {status:<7} {:>7.1} s",
                result.name, result.seconds
            );
            for (module, passed, failed, ignored) in &result.modules {
                let mut line = format!("        {module:<26} {passed:>3} passed");
                if *failed > 0 {
                    let _ = write!(line, ", {failed} FAILED");
                }
                if *ignored > 0 {
                    let _ = write!(line, ", {ignored} ignored");
                }
                println!("{line}");
            }
            for test in &result.failed {
                println!("        FAILED {test}");
            }
        }
        if let Some(why) = &outcome.failure {
            println!("      {why}");
        }
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failure.is_some())
        .map(|o| o.kernel.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("vm-test failed on {}", failed.join(", ")))
    }
}
