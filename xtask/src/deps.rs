//! Installing what the tests and tools need: Debian packages and rustup
//! components.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of the xtask crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The directory where xtask keeps what it downloads and builds for
/// itself: `~/.cache/usdt-sdk`.
pub(crate) fn cache_dir() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/usdt-sdk"))
}

/// Debian packages the test suite uses, with a file each one installs (to
/// tell whether it is already present).
pub(crate) const TEST_PACKAGES: &[(&str, &str)] = &[
    ("binutils", "/usr/bin/readelf"),
    ("gcc", "/usr/bin/gcc"),
    ("gdb", "/usr/bin/gdb"),
    (
        "systemtap-sdt-dev",
        "/usr/include/x86_64-linux-gnu/sys/sdt.h",
    ),
    ("bpftrace", "/usr/bin/bpftrace"),
    ("bpfcc-tools", "/usr/sbin/tplist-bpfcc"),
    // Scrapes `usdt serve` in the serve_prometheus tests (with promtool).
    ("prometheus", "/usr/bin/prometheus"),
    ("gcc-aarch64-linux-gnu", "/usr/bin/aarch64-linux-gnu-gcc"),
    // The aarch64 C library headers: only recommended by the cross compiler,
    // and apt-get runs with --no-install-recommends.
    (
        "libc6-dev-arm64-cross",
        "/usr/aarch64-linux-gnu/include/stdio.h",
    ),
    (
        "binutils-aarch64-linux-gnu",
        "/usr/bin/aarch64-linux-gnu-readelf",
    ),
    // Cross compilers for the reader's fixtures of other architectures
    // (riscv64, s390x, ppc64le, 32-bit arm, i386), each with its C library
    // headers, only recommended by the compiler (i386's also gives the
    // static libc its fixture is linked with). Their readelf comes with the
    // compiler's binutils.
    ("gcc-riscv64-linux-gnu", "/usr/bin/riscv64-linux-gnu-gcc"),
    (
        "libc6-dev-riscv64-cross",
        "/usr/riscv64-linux-gnu/include/stdio.h",
    ),
    ("gcc-s390x-linux-gnu", "/usr/bin/s390x-linux-gnu-gcc"),
    (
        "libc6-dev-s390x-cross",
        "/usr/s390x-linux-gnu/include/stdio.h",
    ),
    (
        "gcc-powerpc64le-linux-gnu",
        "/usr/bin/powerpc64le-linux-gnu-gcc",
    ),
    (
        "libc6-dev-ppc64el-cross",
        "/usr/powerpc64le-linux-gnu/include/stdio.h",
    ),
    (
        "gcc-arm-linux-gnueabihf",
        "/usr/bin/arm-linux-gnueabihf-gcc",
    ),
    (
        "libc6-dev-armhf-cross",
        "/usr/arm-linux-gnueabihf/include/stdio.h",
    ),
    ("gcc-i686-linux-gnu", "/usr/bin/i686-linux-gnu-gcc"),
    ("libc6-dev-i386-cross", "/usr/i686-linux-gnu/lib/libc.a"),
    // Real software with USDT probes (python:function__entry), traced by pid.
    ("python3.11-minimal", "/usr/bin/python3.11"),
    // `script`: a pseudo-terminal for an interactive bash, whose readline()
    // the uprobe tests trace.
    ("bsdutils", "/usr/bin/script"),
    // `setpriv`: runs usdt with only the capabilities it documents, and as
    // another user.
    ("util-linux", "/usr/bin/setpriv"),
    // `setcap` and `getcap`: capabilities granted to a copy of usdt
    // (restricted mode).
    ("libcap2-bin", "/usr/sbin/setcap"),
    // `useradd`: the unprivileged user of the restricted-mode tests.
    ("passwd", "/usr/sbin/useradd"),
];

/// Debian packages `cargo xtask soak` runs: the load generator.
pub(crate) const SOAK_PACKAGES: &[(&str, &str)] = &[("wrk", "/usr/bin/wrk")];

/// Debian packages `cargo xtask bench-http` runs: the load generator and
/// the peer tracer.
pub(crate) const BENCH_HTTP_PACKAGES: &[(&str, &str)] =
    &[("wrk", "/usr/bin/wrk"), ("bpftrace", "/usr/bin/bpftrace")];

/// Installs the missing packages among `packages` with apt-get.
pub(crate) fn apt_install(packages: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The nightly toolchain that builds the BPF program and the freestanding
/// test programs (`-Z build-std`): named as installed, not as a dated
/// channel, so rustup does not download a second one.
pub(crate) const NIGHTLY: &str = "nightly";

/// Makes sure the nightly toolchain is installed with `rust-src` (the
/// source of `core`, which `-Z build-std` compiles).
pub(crate) fn nightly_rust_src() -> Result<(), String> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains
        .lines()
        .any(|line| line.starts_with(&format!("{NIGHTLY}-")))
    {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))?;
    if components.lines().any(|line| line.trim() == "rust-src") {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// Adds the standard library for `target` to the stable toolchain.
pub(crate) fn rustup_target(target: &str) -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", target]))
}

/// Runs `cmd`, turning a failure into a one-line error.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs `cmd` and returns its standard output.
pub(crate) fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{} printed non-UTF-8", describe(cmd)))
}

fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    format!("`{}`", words.join(" "))
}
