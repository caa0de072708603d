//! usdt-reader on running processes: the modules of a process (its
//! executable and the shared library it links), their load biases, and the
//! runtime addresses of their probes, checked by reading the process's
//! memory: each runtime address holds the probe's nop, and each runtime
//! semaphore address holds a zero counter. Also a deleted library, a
//! chrooted process, and a process in a mount namespace of its own (as in a
//! container), whose files only `/proc/PID/root` reaches.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use usdt_interop_tests::reader::{fixture, fixtures, start_looping};
use usdt_interop_tests::{Guard, read_memory, require_tool, wait_for_mapping};
use usdt_reader::{Error, Module, Process};

const TEST: &str = "reader_process";

fn module<'a>(modules: &'a [Module], name: &str) -> &'a Module {
    modules
        .iter()
        .find(|m| m.path.file_name().is_some_and(|f| f == name))
        .unwrap_or_else(|| {
            panic!(
                "no module {name} among {:?}",
                modules.iter().map(|m| &m.path).collect::<Vec<_>>()
            )
        })
}

fn check_runtime_addresses(pid: u32, module: &Module) {
    assert!(!module.probes.is_empty(), "{}", module.path.display());
    for probe in &module.probes {
        let runtime = module.runtime_address(probe);
        assert_eq!(
            read_memory(pid, runtime, 1),
            [0x90],
            "{}: {} at {runtime:#x}",
            module.path.display(),
            probe.qualified_name()
        );
        if let Some(semaphore) = module.runtime_semaphore(probe) {
            assert_eq!(read_memory(pid, semaphore, 2), [0, 0]);
        }
    }
}

#[test]
fn modules_biases_and_runtime_addresses() {
    if !require_tool(TEST, "gcc") || !require_tool(TEST, "aarch64-linux-gnu-gcc") {
        return;
    }
    let fixtures = fixtures();
    let main = &fixture(fixtures, "x86_64_lib_main_O2").path;
    let running = start_looping(main, "libsdt_lib.so");
    let pid = running.pid();
    let process = Process::open(pid).unwrap();
    assert_eq!(process.pid(), pid);
    let modules = process.modules().unwrap();

    // Each file once: the executable, the library, libc, the loader.
    let mut paths: Vec<&PathBuf> = modules.iter().map(|m| &m.path).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), modules.len());
    let exe = module(&modules, "sdt_lib_main");
    let lib = module(&modules, "libsdt_lib.so");
    assert_eq!(exe.path, *main);
    assert_eq!(
        exe.host_path,
        Path::new(&format!("/proc/{pid}/root")).join(main.strip_prefix("/").unwrap())
    );
    assert_eq!(exe.probes.len(), 1);
    assert_eq!(lib.probes.len(), 3);
    // Position-independent: both are loaded away from their link-time
    // addresses, at page-aligned biases.
    assert!(exe.bias != 0 && exe.bias.is_multiple_of(4096));
    assert!(lib.bias != 0 && lib.bias.is_multiple_of(4096));
    check_runtime_addresses(pid, exe);
    check_runtime_addresses(pid, lib);
    assert!(
        lib.probes.iter().any(|p| p.semaphore.is_some()),
        "the library's guarded probe has a semaphore"
    );

    // The bias agrees with /proc/PID/maps: the library's first mapping
    // starts at bias + the first segment's page.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let first = maps
        .lines()
        .find(|line| line.ends_with("libsdt_lib.so"))
        .unwrap();
    let start = u64::from_str_radix(first.split('-').next().unwrap(), 16).unwrap();
    assert_eq!(
        start, lib.bias,
        "the library's first segment is linked at 0"
    );
}

#[test]
fn a_deleted_library_is_read_through_map_files() {
    if !require_tool(TEST, "gcc") || !require_tool(TEST, "aarch64-linux-gnu-gcc") {
        return;
    }
    let fixtures = fixtures();
    // A private copy of the program and its library, then the library is
    // removed while the process runs.
    let dir = usdt_interop_tests::scratch_dir("reader_process_deleted");
    let main = dir.join("sdt_lib_main");
    let lib = dir.join("libsdt_lib.so");
    std::fs::copy(&fixture(fixtures, "x86_64_lib_main_O2").path, &main).unwrap();
    std::fs::copy(&fixture(fixtures, "x86_64_lib_O2").path, &lib).unwrap();
    let running = start_looping(&main, "libsdt_lib.so");
    std::fs::remove_file(&lib).unwrap();
    let pid = running.pid();
    let modules = Process::open(pid).unwrap().modules().unwrap();
    let deleted = module(&modules, "libsdt_lib.so");
    assert_eq!(deleted.path, lib, "the path as the process saw it");
    assert!(
        deleted
            .host_path
            .starts_with(format!("/proc/{pid}/map_files")),
        "{}",
        deleted.host_path.display()
    );
    assert_eq!(deleted.probes.len(), 3);
    check_runtime_addresses(pid, deleted);
}

#[test]
fn a_chrooted_process_is_read_from_its_root() {
    if !can_isolate("chroot", "chroot needs root") {
        return;
    }
    let root = make_root("reader_process_root");

    let child = Command::new("chroot")
        .arg(&root)
        .args(["/app/sdt_lib_main", "100000", "10"])
        // $ORIGIN needs /proc inside the root to resolve; say it plainly.
        .env("LD_LIBRARY_PATH", "/app")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let running = Guard(child);
    // chroot execs the program in the same process.
    let pid = running.pid();
    wait_for_mapping(pid, "/app/libsdt_lib.so");
    let modules = Process::open(pid).unwrap().modules().unwrap();
    let exe = module(&modules, "sdt_lib_main");
    let lib = module(&modules, "libsdt_lib.so");
    assert_eq!(exe.path, Path::new("/app/sdt_lib_main"));
    // The kernel prints a chrooted process's paths from our root, so the
    // file is reachable as printed; the process's own view drops the root.
    let root = std::fs::canonicalize(&root).unwrap();
    assert_eq!(exe.host_path, root.join("app/sdt_lib_main"));
    assert_eq!(lib.path, Path::new("/app/libsdt_lib.so"));
    assert_eq!((exe.probes.len(), lib.probes.len()), (1, 3));
    check_runtime_addresses(pid, exe);
    check_runtime_addresses(pid, lib);
}

/// Whether the container tests can run: the compilers, `tool`, and root
/// (`root_reason` says why it is needed). Otherwise skips (see
/// [`usdt_interop_tests::skip`]).
fn can_isolate(tool: &str, root_reason: &str) -> bool {
    if !require_tool(TEST, "gcc")
        || !require_tool(TEST, "aarch64-linux-gnu-gcc")
        || !require_tool(TEST, tool)
    {
        return false;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return usdt_interop_tests::skip(TEST, root_reason);
    }
    true
}

/// A root directory holding the program and its library under /app, which
/// does not exist outside it, plus the dynamic loader and libc.
fn make_root(name: &str) -> PathBuf {
    let fixtures = fixtures();
    let root = usdt_interop_tests::scratch_dir(name);
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        &fixture(fixtures, "x86_64_lib_main_O2").path,
        app.join("sdt_lib_main"),
    )
    .unwrap();
    std::fs::copy(
        &fixture(fixtures, "x86_64_lib_O2").path,
        app.join("libsdt_lib.so"),
    )
    .unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped = |needle: &str| {
        maps.lines()
            .find_map(|l| {
                l.split_whitespace()
                    .nth(5)
                    .filter(|p| p.contains(needle))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("this test binary maps no {needle}"))
    };
    for (file, inside) in [
        (mapped("/libc.so"), mapped("/libc.so")),
        // The loader under the name the program asks for.
        (
            mapped("/ld-linux"),
            "/lib64/ld-linux-x86-64.so.2".to_string(),
        ),
    ] {
        let inside = root.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(&file, &inside).unwrap();
    }
    assert!(!Path::new("/app/sdt_lib_main").exists());
    root
}

#[test]
fn files_are_read_through_another_mount_namespace() {
    if !can_isolate("unshare", "mount namespaces need root") {
        return;
    }
    // A container: a private mount namespace whose root is the directory,
    // so the kernel prints its files as the container sees them and only
    // /proc/PID/root reaches them.
    let root = make_root("reader_process_namespace");
    let script = format!(
        "mount --bind {root} {root} && cd {root} && mkdir -p .old && pivot_root . .old \
         && exec /app/sdt_lib_main 100000 10",
        root = root.display()
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("LD_LIBRARY_PATH", "/app")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let running = Guard(child);
    let pid = running.pid();
    wait_for_mapping(pid, "/app/libsdt_lib.so");
    let modules = Process::open(pid).unwrap().modules().unwrap();
    let exe = module(&modules, "sdt_lib_main");
    let lib = module(&modules, "libsdt_lib.so");
    assert_eq!(exe.path, Path::new("/app/sdt_lib_main"));
    assert_eq!(
        exe.host_path,
        Path::new(&format!("/proc/{pid}/root/app/sdt_lib_main"))
    );
    assert_eq!(
        lib.host_path,
        Path::new(&format!("/proc/{pid}/root/app/libsdt_lib.so"))
    );
    assert_eq!((exe.probes.len(), lib.probes.len()), (1, 3));
    check_runtime_addresses(pid, exe);
    check_runtime_addresses(pid, lib);
}

#[test]
fn missing_and_exited_processes_are_errors() {
    let error = Process::open(u32::MAX).unwrap_err();
    assert!(matches!(error, Error::NoSuchProcess { pid: u32::MAX }));
    assert!(error.is_bad_input());
    // A process that has exited between open and modules (killed, so that
    // it cannot have ended before it was opened).
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let process = Process::open(child.id()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    match process.modules() {
        Err(Error::NoSuchProcess { .. }) => {}
        other => panic!("{other:?}"),
    }
}
