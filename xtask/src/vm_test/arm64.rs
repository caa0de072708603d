//! The arm64 virtual machine: Debian's arm64 kernel, emulated by
//! `qemu-system-aarch64`, over an arm64 Debian root file system built with
//! debootstrap (its second stage run by `qemu-user-static`) and cached in
//! `~/.cache/usdt-sdk/arm64-root-SUITE`. The tests and `usdt` are
//! cross-compiled here; the guest's own gcc compiles the C fixtures the
//! tests build, so they are aarch64 code with aarch64 operands.

use crate::deps;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target the arm64 guest runs.
pub(super) const RUST_TARGET: &str = "aarch64-unknown-linux-gnu";

/// The C cross compiler that links the tests for [`RUST_TARGET`].
pub(super) const CC: &str = "aarch64-linux-gnu-gcc";

/// PATH in the guest: its own programs only (this machine's are x86-64).
pub(super) const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The tests an arm64 run runs when none are named: emulating aarch64 on
/// x86-64 is slow, so a few that cover what differs on aarch64. Every
/// operand form gcc gives sdt_args at -O0 (`[sp, 8]`) and -O2 (registers,
/// `[x0, 144]`), with a semaphore-guarded probe; globals by `:lo12:`
/// relocation and locals off the frame pointer (`[x29, -8]`); array
/// elements by an extended 32-bit index register (`[x3, w0, sxtw]`,
/// `[x2, w1, uxtw]`), read by the tracer and by a program on usdt-aya-ebpf;
/// this SDK's typed probes, and their semaphores raised and lowered by pid.
pub(super) const TESTS: &[&str] = &[
    "trace_c_programs::every_width_sign_and_operand_form_at_o0_and_o2",
    "trace_c_programs::globals_by_low_12_bits_and_locals_off_the_frame_pointer",
    "trace_c_programs::elements_by_32_bit_indices_below_and_above_zero",
    "attach_custom::elements_by_32_bit_indices_below_and_above_zero",
    "trace_macros::json_lines_carry_exact_values_and_names",
    "trace_macros::guarded_probes_are_lazy_and_semaphores_return_to_zero",
];

/// Debian packages the arm64 runs need here, with a file each installs.
const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
    // Runs debootstrap's second stage (arm64 programs) through binfmt_misc.
    ("qemu-user-static", "/usr/bin/qemu-aarch64-static"),
    ("binfmt-support", "/usr/sbin/update-binfmts"),
    ("debootstrap", "/usr/sbin/debootstrap"),
    (CC, "/usr/bin/aarch64-linux-gnu-gcc"),
    (
        "libc6-dev-arm64-cross",
        "/usr/aarch64-linux-gnu/include/stdio.h",
    ),
];

/// The packages the guest's root file system holds besides Debian's
/// minimal base: the C compiler and `<sys/sdt.h>` for the fixtures, the
/// static busybox virtme-ng builds its initramfs around (and whose
/// `poweroff` ends the run), kmod for the kernel's modules, procps.
const GUEST_PACKAGES: &str = "gcc,libc6-dev,systemtap-sdt-dev,busybox-static,kmod,procps";

/// Installs what cross-compiling and emulating arm64 needs.
pub(super) fn install_cross_tools() -> Result<(), String> {
    deps::apt_install(PACKAGES)
}

/// The arm64 root file system of Debian release `suite`, from `mirror`:
/// built with debootstrap the first time, then kept.
pub(super) fn root_file_system(suite: &str, mirror: &str) -> Result<PathBuf, String> {
    let cache = deps::cache_dir()?;
    let root = cache.join(format!("arm64-root-{suite}"));
    if root.join("usr/bin/gcc").exists() {
        return Ok(root);
    }
    enable_binfmt()?;
    let partial = cache.join(format!("arm64-root-{suite}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!(
        "xtask: building an arm64 {suite} root file system in {} (emulated, several minutes)",
        root.display()
    );
    deps::run(
        Command::new("debootstrap")
            .args(["--arch=arm64", "--variant=minbase"])
            .arg(format!("--include={GUEST_PACKAGES}"))
            .arg(suite)
            .arg(&partial)
            .arg(mirror),
    )?;
    // virtme-ng's init ends the run with `poweroff -f`, which minbase
    // lacks (systemd's or sysvinit's); busybox's needs no init.
    let poweroff = partial.join("usr/sbin/poweroff");
    if !poweroff.exists() {
        std::os::unix::fs::symlink("/bin/busybox", &poweroff)
            .map_err(|e| format!("cannot create {}: {e}", poweroff.display()))?;
    }
    std::fs::rename(&partial, &root)
        .map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    Ok(root)
}

/// Makes sure this machine runs arm64 programs through qemu-user-static
/// (binfmt_misc), as debootstrap's second stage needs.
fn enable_binfmt() -> Result<(), String> {
    let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if !entry.exists() {
        let _ = Command::new("update-binfmts")
            .args(["--enable", "qemu-aarch64"])
            .status();
    }
    if entry.exists() {
        Ok(())
    } else {
        Err(format!(
            "cannot run arm64 programs: {} is missing (binfmt_misc with qemu-user-static)",
            entry.display()
        ))
    }
}

/// Copies the kernel `release` (its `image`, unpacked with its modules in
/// the kernel cache) into `root`, where virtme-ng looks for its modules;
/// returns the image's path there.
pub(super) fn install_kernel(root: &Path, release: &str, image: &Path) -> Result<PathBuf, String> {
    let all_modules = root.join("usr/lib/modules");
    let modules = all_modules.join(release);
    if !modules.is_dir() {
        // boot/vmlinuz-RELEASE in the unpacked package, beside lib/.
        let unpacked = image
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in an unpacked package", image.display()))?;
        let partial = all_modules.join(format!("{release}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&all_modules)
            .map_err(|e| format!("cannot create {}: {e}", all_modules.display()))?;
        deps::run(
            Command::new("cp")
                .arg("-a")
                .arg(unpacked.join("lib/modules").join(release))
                .arg(&partial),
        )?;
        std::fs::rename(&partial, &modules)
            .map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    }
    let installed = root.join("boot").join(format!("vmlinuz-{release}"));
    if !installed.is_file() {
        std::fs::copy(image, &installed).map_err(|e| {
            format!(
                "cannot copy {} into {}: {e}",
                image.display(),
                root.display()
            )
        })?;
    }
    Ok(installed)
}

/// Creates the directory in `root` where the guest mounts this machine's
/// `dir` (the guest's root is read-only).
pub(super) fn mount_point(root: &Path, dir: &Path) -> Result<(), String> {
    let point = root.join(dir.strip_prefix("/").unwrap_or(dir));
    std::fs::create_dir_all(&point).map_err(|e| format!("cannot create {}: {e}", point.display()))
}
