//! `usdt` in restricted mode: capabilities granted to the `usdt` file
//! (`setcap cap_bpf,cap_perfmon+ep`, or a setuid-root `usdt`) serve only the
//! invoking user's own processes. Copies of `usdt` with file capabilities
//! run as an unprivileged user made for these tests, next to processes root
//! runs, with real BPF: system-wide probes and other users' processes are
//! refused, the user's own command and process are traced with exact
//! values, and nothing of root's copy of the same program is seen or
//! switched on.

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, compile_c, require_bpf, require_tool, run, scaled};
use usdt_tracer::launch::StoppedCommand;
use usdt_tracer::{TraceConfig, Tracer, Value};

/// The unprivileged user the tests create.
const USER: &str = "usdt-restricted-test";

/// What the tests share: the user, and a directory the user can execute
/// from holding the copies of `usdt` and the fixtures.
struct Setup {
    uid: u32,
    gid: u32,
    /// `usdt` with `cap_bpf,cap_perfmon+ep`: what the README warns about.
    usdt: PathBuf,
    /// `usdt` granted CAP_SYS_PTRACE, CAP_DAC_OVERRIDE and
    /// CAP_DAC_READ_SEARCH as well, which restricted mode must drop.
    usdt_more: PathBuf,
    /// `usdt` setuid root.
    usdt_setuid: PathBuf,
    /// `usdt` without capabilities.
    usdt_plain: PathBuf,
    /// The sdt_args fixture.
    sdt_args: PathBuf,
    /// The sdt_args fixture, setuid root.
    sdt_args_setuid: PathBuf,
    /// The sdt_args fixture, readable by root only.
    root_only: PathBuf,
    /// sdt_lib_main, with libsdt_lib.so next to it.
    lib_main: PathBuf,
}

impl Setup {
    /// The three copies that run in restricted mode.
    fn restricted(&self) -> [&Path; 3] {
        [&self.usdt, &self.usdt_more, &self.usdt_setuid]
    }
}

/// The shared setup, made once; `None` (after skipping `test`) without
/// root, BPF or the tools.
fn setup(test: &str) -> Option<&'static Setup> {
    if !require_bpf(test)
        || !["setcap", "getcap", "setpriv", "useradd"]
            .iter()
            .all(|tool| require_tool(test, tool))
    {
        return None;
    }
    static SETUP: OnceLock<Setup> = OnceLock::new();
    Some(SETUP.get_or_init(make_setup))
}

fn make_setup() -> Setup {
    let (uid, gid) = test_user();
    let dir = user_dir();
    let usdt = PathBuf::from(usdt().get_program());
    // The privileged copies (capabilities, setuid) may be run by root and
    // the test user's group alone: they outlive the run until the next
    // one removes them. Owner and group first: a change of owner clears
    // the setuid bit and the capabilities.
    let copy_from = |from: &Path, name: &str, mode: u32| {
        let to = dir.join(name);
        std::fs::copy(from, &to).expect("copy");
        std::os::unix::fs::chown(&to, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
        to
    };
    let copy = |name: &str, mode: u32| copy_from(&usdt, name, mode);
    let setup_caps = |file: &Path, caps: &str, expected: &[&str]| {
        run(Command::new("setcap").arg(caps).arg(file));
        // The capabilities are really on the file: without them the tests
        // below would pass for the wrong reason (or fail as "missing").
        let shown = run(Command::new("getcap").arg(file));
        for cap in expected {
            assert!(shown.contains(cap), "getcap shows {shown:?}");
        }
        assert!(shown.trim_end().ends_with("=ep"), "getcap shows {shown:?}");
    };
    let restricted = copy("usdt", 0o750);
    setup_caps(
        &restricted,
        "cap_bpf,cap_perfmon+ep",
        &["cap_bpf", "cap_perfmon"],
    );
    let more = copy("usdt-more", 0o750);
    setup_caps(
        &more,
        "cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_override,cap_dac_read_search+ep",
        &[
            "cap_bpf",
            "cap_perfmon",
            "cap_sys_ptrace",
            "cap_dac_override",
            "cap_dac_read_search",
        ],
    );
    let setuid = copy("usdt-setuid", 0o4750);
    let mode = std::fs::metadata(&setuid).unwrap().permissions().mode();
    assert_eq!(mode & 0o4000, 0o4000, "the setuid bit did not stick");
    let plain = copy("usdt-plain", 0o755);

    let sdt_args = compile_c("cc", "sdt_args.c", &["-O2"], &dir);
    let sdt_args_setuid = copy_from(&sdt_args, "sdt_args_setuid", 0o4750);
    let root_only = dir.join("root_only");
    std::fs::copy(&sdt_args, &root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (main, library) = build_shared_fixture("trace_restricted_lib", "-O2");
    let lib_main = dir.join("sdt_lib_main");
    std::fs::copy(&main, &lib_main).unwrap();
    std::fs::copy(&library, dir.join("libsdt_lib.so")).unwrap();
    Setup {
        uid,
        gid,
        usdt: restricted,
        usdt_more: more,
        usdt_setuid: setuid,
        usdt_plain: plain,
        sdt_args,
        sdt_args_setuid,
        root_only,
        lib_main,
    }
}

/// The test user's uid and gid, creating the user if needed.
fn test_user() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", USER])
            .status()
            .expect("run useradd");
        // 9: created meanwhile by another test binary.
        assert!(
            status.success() || status.code() == Some(9),
            "useradd failed: {status}"
        );
    }
    let (uid, gid) = (id("-u").expect("uid"), id("-g").expect("gid"));
    assert_ne!(uid, 0);
    (uid, gid)
}

/// A directory of this test run that the test user can reach and execute
/// from (the temporary directory; the target directory may sit under a
/// home the user cannot enter). Directories of earlier runs are removed.
fn user_dir() -> PathBuf {
    const PREFIX: &str = "usdt-restricted-tests-";
    let temp = std::env::temp_dir();
    for entry in std::fs::read_dir(&temp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(PREFIX)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = temp.join(format!("{PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `program ARGS` run as the test user, with its own groups only and no
/// capability of root's.
fn as_user(setup: &Setup, program: &Path, args: &[&str]) -> Command {
    as_user_with(setup, &[], program, args)
}

/// `program ARGS` run as the test user, with setpriv's `options` too
/// (capabilities to give the user).
fn as_user_with(setup: &Setup, options: &[&str], program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={}", setup.uid))
        .arg(format!("--regid={}", setup.gid))
        .arg("--clear-groups")
        .args(options)
        .arg("--")
        .arg(program)
        .args(args);
    command
}

/// Runs `usdt ARGS` (one of the copies) as the test user.
fn usdt_as_user(setup: &Setup, usdt: &Path, args: &[&str]) -> Output {
    as_user(setup, usdt, args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// Starts `binary ARGS` as root and lets it map its libraries.
fn start_as_root(binary: &Path, args: &[&str]) -> Guard {
    started(Command::new(binary).args(args))
}

/// Starts `binary ARGS` as the test user and lets it map its libraries.
fn start_as_user(setup: &Setup, binary: &Path, args: &[&str]) -> Guard {
    started(&mut as_user(setup, binary, args))
}

fn started(command: &mut Command) -> Guard {
    let guard = Guard::spawn(command);
    // Longer in an emulated machine, where loading a program takes longer.
    std::thread::sleep(scaled(Duration::from_millis(200)));
    guard
}

/// The C library this test links, as the traced programs map it.
fn libc_path() -> PathBuf {
    let modules = usdt_reader::Process::open(std::process::id())
        .and_then(|p| p.modules())
        .expect("read this process");
    modules
        .into_iter()
        .find(|m| m.path.file_name().is_some_and(|f| f == "libc.so.6"))
        .expect("this process maps libc.so.6")
        .path
}

#[test]
fn system_wide_probes_are_refused() {
    let Some(setup) = setup("system_wide_probes_are_refused") else {
        return;
    };
    // A copy of its own: a trace by path sees every process running the
    // file, and the other tests run `setup.sdt_args` at the same time.
    let binary = setup.sdt_args.with_file_name("sdt_args_system_wide");
    std::fs::copy(&setup.sdt_args, &binary).expect("copy sdt_args");
    let root = start_as_root(&binary, &["100000", "10"]);
    let by_path = format!("{}:sdt_args:iteration", binary.display());
    let write = format!("uprobe:{}:write(int, str, u64)", libc_path().display());

    // Root's own trace sees root's process: it does fire the probe (where
    // the kernel has BPF cookies, which tracing a PIE by path needs).
    let root_trace = ["--json", "--count", "2", by_path.as_str()];
    if cookies_or_refused(&root_trace, "sdt_args:iteration in ") {
        let output = run_usdt(&[&["trace"][..], &root_trace].concat());
        assert_success(&output);
        let seen = json_events(&output);
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|e| e["pid"] == root.pid()), "{seen:?}");
    }

    for usdt in setup.restricted() {
        for args in [
            &["trace", "--json", "--duration", "1", by_path.as_str()][..],
            &["trace", "--hits", "--duration", "1", by_path.as_str()],
            &["trace", "--json", "--duration", "1", write.as_str()],
            &[
                "trace",
                "--hits",
                "--by",
                "pid",
                "--duration",
                "1",
                write.as_str(),
            ],
        ] {
            let output = usdt_as_user(setup, usdt, args);
            // One line, exit status 2, and not one event on stdout.
            let line = assert_failure(&output, 2, "usdt: restricted mode refuses `");
            assert!(
                line.contains("traces every process that runs the file"),
                "{line}"
            );
        }
    }
}

#[test]
fn processes_and_files_the_user_may_not_read_are_refused() {
    let Some(setup) = setup("processes_and_files_the_user_may_not_read_are_refused") else {
        return;
    };
    let root = start_as_root(&setup.sdt_args, &["100000", "10"]);
    let root_pid = root.pid().to_string();
    // A setuid program the user runs belongs to the user no more.
    let setuid = start_as_user(setup, &setup.sdt_args_setuid, &["100000", "10"]);
    let setuid_pid = setuid.pid().to_string();
    // Root reads root's process, so the refusals below are the mode's.
    assert_success(&run_usdt(&["list", "--pid", &root_pid]));

    for usdt in setup.restricted() {
        for pid in [root_pid.as_str(), setuid_pid.as_str()] {
            let refused = format!("usdt: restricted mode refuses process {pid}: ");
            for args in [
                &[
                    "trace",
                    "--json",
                    "--duration",
                    "1",
                    "--pid",
                    pid,
                    "sdt_args:iteration",
                ][..],
                &[
                    "trace",
                    "--json",
                    "--duration",
                    "1",
                    "--pid",
                    pid,
                    "uprobe:libc:nanosleep(ptr, ptr)",
                ],
                &["list", "--pid", pid],
            ] {
                let output = usdt_as_user(setup, usdt, args);
                let line = assert_failure(&output, 2, &refused);
                assert!(line.contains("may not read its memory"), "{line}");
            }
        }
        // Files are read with the user's rights only.
        let output = usdt_as_user(setup, usdt, &["list", setup.root_only.to_str().unwrap()]);
        assert_failure(&output, 2, "Permission denied");
        let output = usdt_as_user(
            setup,
            usdt,
            &[
                "list",
                setup.sdt_args.to_str().unwrap(),
                "sdt_args:iteration",
            ],
        );
        let listed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_success(&output);
        assert!(listed.contains("sdt_args  iteration"), "{listed}");
    }
}

/// The lines of /proc/self/status as the traced command printed them.
fn status_field<'a>(stdout: &'a str, field: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} line in {stdout}"))
        .trim()
}

#[test]
fn commands_run_as_the_user_without_capabilities_and_are_traced() {
    let test = "commands_run_as_the_user_without_capabilities_and_are_traced";
    let Some(setup) = setup(test) else {
        return;
    };
    let command = format!("{} 3", setup.sdt_args.display());
    let write = format!(
        "uprobe:{}:write(fd: int, buf: str, len: u64)",
        libc_path().display()
    );
    for usdt in setup.restricted() {
        let output = usdt_as_user(
            setup,
            usdt,
            &[
                "trace",
                "--json",
                "-c",
                &command,
                "sdt_args:iteration",
                "sdt_args:small_values",
                "sdt_args:guarded",
            ],
        );
        if refused_without_multi_links(&output) {
            continue;
        }
        let stderr = assert_success(&output);
        assert!(stderr.contains("command exited with status 0"), "{stderr}");
        let events = json_events(&output);
        let pid = &events[0]["pid"];
        assert!(events.iter().all(|e| e["pid"] == *pid), "{events:?}");
        let args = |name| -> Vec<Vec<String>> {
            named(&events, name).into_iter().map(arg_texts).collect()
        };
        assert_eq!(args("sdt_args:iteration"), [["0"], ["1"], ["2"]]);
        let small = ["-1", "-2", "-3", "-4", "5", "6", "7", "8"];
        assert_eq!(args("sdt_args:small_values"), [small, small, small]);
        // Its semaphore was raised in the command.
        assert_eq!(
            args("sdt_args:guarded"),
            [["0", "-424242"], ["1", "-424242"], ["2", "-424242"]]
        );

        // The command runs as the user, without any capability, even when
        // the user passes inheritable ones to `usdt` (they would survive
        // the command's exec).
        let output = as_user_with(
            setup,
            &["--inh-caps=+bpf,+perfmon"],
            usdt,
            &["trace", "--json", "-c", "cat /proc/self/status", &write],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
        assert_success(&output);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let uid = setup.uid.to_string();
        let gid = setup.gid.to_string();
        assert_eq!(
            status_field(&stdout, "Uid:")
                .split_whitespace()
                .collect::<Vec<_>>(),
            [&uid; 4]
        );
        assert_eq!(
            status_field(&stdout, "Gid:")
                .split_whitespace()
                .collect::<Vec<_>>(),
            [&gid; 4]
        );
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(status_field(&stdout, set), "0000000000000000", "{set}");
        }
        assert_eq!(status_field(&stdout, "NoNewPrivs:"), "1");
        let writes = named(&json_events(&output), "uprobe:write")
            .into_iter()
            .map(arg_texts)
            .collect::<Vec<_>>();
        assert!(
            writes
                .iter()
                .any(|w| w[0] == "1" && w[1].starts_with("Name:\tcat\n")),
            "{writes:?}"
        );
    }
}

#[test]
fn the_users_own_process_is_traced_alone() {
    let Some(setup) = setup("the_users_own_process_is_traced_alone") else {
        return;
    };
    // Root's copy and the user's copy of the same program and library.
    let root = start_as_root(&setup.lib_main, &["100000", "5"]);
    let own = start_as_user(setup, &setup.lib_main, &["100000", "5"]);
    let (root_pid, own_pid) = (root.pid(), own.pid());
    let semaphore = |pid| semaphore_address(pid, "libsdt_lib.so", "sdt_lib", "guarded");
    let evaluations =
        |pid| runtime_symbol_address(pid, "libsdt_lib.so", "sdt_lib_guarded_evaluations");
    let (root_semaphore, own_semaphore) = (semaphore(root_pid), semaphore(own_pid));
    let root_evaluations = evaluations(root_pid);
    assert_eq!(read_u16(root_pid, root_semaphore), 0);
    assert_eq!(read_u16(own_pid, own_semaphore), 0);

    let pid = own_pid.to_string();
    for usdt in [&setup.usdt, &setup.usdt_setuid] {
        if !usdt_tracer::KernelFeatures::get().multi_links {
            let output = usdt_as_user(setup, usdt, &["trace", "--pid", &pid, "sdt_lib:call"]);
            assert!(refused_without_multi_links(&output));
            continue;
        }
        // Ended by SIGINT once checked, so it is surely running meanwhile.
        let mut trace = Guard::spawn(&mut as_user(
            setup,
            usdt,
            &[
                "trace",
                "--json",
                "--pid",
                &pid,
                "--str",
                "sdt_lib:call:2",
                "sdt_lib:call",
                "sdt_lib:guarded",
                "uprobe:libc:nanosleep(ptr, ptr)",
            ],
        ));
        let stdout = trace.0.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
        let mut stderr = BufReader::new(trace.0.stderr.take().unwrap());
        read_until(&mut stderr, Duration::from_secs(60), |line| {
            line.starts_with("usdt: tracing ")
        });
        std::thread::sleep(Duration::from_millis(300));
        // Switched on in the user's process, and in that one alone.
        assert_eq!(read_u16(own_pid, own_semaphore), 1);
        assert_eq!(read_u16(root_pid, root_semaphore), 0);
        std::thread::sleep(Duration::from_millis(1200));
        run(Command::new("kill").args(["-INT", &trace.pid().to_string()]));
        let status = trace.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(read_u16(own_pid, own_semaphore), 0);
        let output = Output {
            status,
            stdout: stdout.join().unwrap().into_bytes(),
            stderr: Vec::new(),
        };

        let events = json_events(&output);
        // Nothing of root's copy, though the probes and the library
        // function are the same files' and run all along.
        assert!(
            events.iter().all(|e| e["pid"] == own_pid),
            "events of other processes: {:?}",
            events
                .iter()
                .filter(|e| e["pid"] != own_pid)
                .collect::<Vec<_>>()
        );
        let calls: Vec<Vec<String>> = named(&events, "sdt_lib:call")
            .into_iter()
            .map(arg_texts)
            .collect();
        assert!(calls.len() >= 20, "{} calls", calls.len());
        let first: u64 = calls[0][0].parse().unwrap();
        for (n, call) in calls.iter().enumerate() {
            let expected = [
                (first + n as u64).to_string(),
                "-7777".to_owned(),
                "from the library".to_owned(),
            ];
            assert_eq!(call, &expected);
        }
        let guarded = named(&events, "sdt_lib:guarded");
        assert!(guarded.len() >= 20, "{} guarded hits", guarded.len());
        assert!(guarded.iter().all(|e| arg_texts(e)[1] == "4277009102"));
        assert!(named(&events, "uprobe:nanosleep").len() >= 20);
    }
    // Root's copy never evaluated its guarded probe's arguments.
    assert_eq!(read_u16(root_pid, root_semaphore), 0);
    assert_eq!(read_u64(root_pid, root_evaluations), 0);
    // The user's copy did, where it was traced.
    if usdt_tracer::KernelFeatures::get().multi_links {
        assert!(read_u64(own_pid, evaluations(own_pid)) > 0);
    }
}

#[test]
fn capabilities_held_in_the_users_own_right_are_not_restricted() {
    let test = "capabilities_held_in_the_users_own_right_are_not_restricted";
    let Some(setup) = setup(test) else {
        return;
    };
    // A copy of its own: a trace by path sees every process running the
    // file, and the other tests run `setup.sdt_args` at the same time.
    let binary = setup.sdt_args.with_file_name("sdt_args_system_wide");
    std::fs::copy(&setup.sdt_args, &binary).expect("copy sdt_args");
    let root = start_as_root(&binary, &["100000", "10"]);
    let by_path = format!("{}:sdt_args:iteration", binary.display());
    // Ambient capabilities: no AT_SECURE, so a system-wide probe is
    // traced, root's process included, as before.
    let output = as_user_with(
        setup,
        &["--inh-caps=+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon"],
        &setup.usdt_plain,
        &["trace", "--json", "--count", "2", &by_path],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    // Without BPF cookies (before 5.15) a PIE traced by path is refused
    // first.
    if !has_cookies() {
        assert_failure(&output, 1, NEEDS_COOKIES);
        return;
    }
    if refused_without_multi_links(&output) {
        return;
    }
    assert_success(&output);
    let events = json_events(&output);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["pid"] == root.pid()), "{events:?}");
}

/// Whether `output` is the refusal a user holding CAP_BPF and CAP_PERFMON
/// (and not CAP_SYS_ADMIN, which restricted mode drops: then before
/// anything is read) gets on a kernel without uprobe_multi links (before
/// 6.6), whose uprobes are perf events the kernel opens only for
/// CAP_SYS_ADMIN: one line naming the feature, exit status 1. On other
/// kernels, `false` whatever `output` is.
fn refused_without_multi_links(output: &Output) -> bool {
    if usdt_tracer::KernelFeatures::get().multi_links {
        return false;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().last().is_some_and(|line| line.contains(
            "this kernel has no uprobe_multi links (Linux 6.6), and opens uprobe perf events only for CAP_SYS_ADMIN"
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "events printed");
    true
}

#[test]
fn the_bpf_program_drops_hits_of_other_processes() {
    let test = "the_bpf_program_drops_hits_of_other_processes";
    if !require_bpf(test) || !require_tool(test, "bpftrace") {
        return;
    }
    let dir = usdt_interop_tests::scratch_dir(test);
    let binary = compile_c("cc", "clone_vm.c", &["-O2"], &dir);
    const ROUNDS: usize = 20;
    let rounds = ROUNDS.to_string();

    // The premise: the kernel's pid filter of a perf-event uprobe admits a
    // second process sharing the traced one's memory (bpftrace attaches
    // that way, and filters nothing itself).
    let command = format!("{} {rounds}", binary.display());
    let script = format!("uprobe:{}:tick {{ @[pid] = count(); }}", binary.display());
    let out = run(Command::new("bpftrace").args(["-c", &command, "-e", &script]));
    let counts: Vec<&str> = out.lines().filter(|l| l.starts_with("@[")).collect();
    assert_eq!(counts.len(), 2, "bpftrace printed:\n{out}");
    assert!(
        counts.iter().all(|l| l.ends_with(&format!(": {ROUNDS}"))),
        "{out}"
    );

    // The tracer, attached the same way (one perf event per site, the
    // traced pid as filter), reports the traced process alone.
    let mut command = StoppedCommand::spawn(&[binary.display().to_string(), rounds]).unwrap();
    let mut config = TraceConfig::new().probe("clone_vm:tick").unwrap();
    config.pid = Some(command.pid());
    config.executable = Some(command.program().to_path_buf());
    config.perf_event_links = true;
    let mut tracer = Tracer::attach(&config).expect("attach");
    command
        .resume_with(|pid| tracer.raise_after_exec(pid))
        .expect("resume");
    assert_eq!(command.wait().expect("wait"), 0);
    tracer.detach();
    let mut seen = Vec::new();
    tracer.drain(|event| {
        seen.push((event.pid, event.args));
        true
    });
    let traced = command.pid();
    assert_eq!(seen.len(), ROUNDS, "{seen:?}");
    for (round, (pid, args)) in seen.iter().enumerate() {
        assert_eq!(*pid, traced);
        assert_eq!(
            args,
            &[
                Value::Signed(i64::from(traced)),
                Value::Signed(round as i64)
            ]
        );
    }
}
