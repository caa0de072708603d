//! usdt-aya and usdt-aya-ebpf as a user's own program uses them: the
//! custom-tracer example's BPF program attached through `usdt-aya` to the C
//! fixtures (every width and sign, stack slots, rip-relative globals,
//! constants, strings, a semaphore-guarded probe) at -O0 and -O2 by path to
//! a process started after attaching, array elements by 32-bit indices
//! (aarch64's `[x3, w0, sxtw]`) likewise, to the `probe` and `usdt` crates'
//! probes likewise, to this SDK's typed probes and python3.11's
//! `function__entry` by pid, and by pid with specs found by address (as on
//! kernels without BPF cookies); detaching; a semaphore the kernel cannot
//! raise in processes started later, which is a warning; and the errors.

use crate::PEERS;
use custom_tracer_common::{
    CSTR_SHIFT, Hit, PROGRAM, PROGRAM_MULTI, PROGRAM_PLAIN, PROGRAM_RETURN, STRING_CAP,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use usdt_aya::{IP_MAP, SpecLookup, Target, Usdt, UsdtError, aya};

use usdt_interop_tests::custom::{Session, arg_text, cookies_or_refused, string, usable};
use usdt_interop_tests::trace::{
    FIRING_ORDER, FUNCTION_LINE, build_c, build_c_at_o0_and_o2,
    build_sdt_args_with_shared_semaphore_page, expected_sdt_args, expected_sdt_index, read_u16,
    semaphore_address, start_python, tracing_in_process,
};
use usdt_interop_tests::{Guard, read_memory, require_bpf, scratch_dir};

/// The cookie of probe `index` of [`FIRING_ORDER`].
fn cookie(index: usize) -> u64 {
    0x5eed_0000 + index as u64
}

#[test]
fn c_fixture_values_are_exact_at_o0_and_o2() {
    if !require_bpf("c_fixture_values_are_exact_at_o0_and_o2") {
        return;
    }
    let binaries = build_c_at_o0_and_o2("attach_custom_values", "sdt_args.c");
    // -O0 through perf-event uprobes, -O2 through uprobe_multi links; both
    // programs sleepable where the kernel allows (the string literal is on
    // a page sdt_args never touches, which only they can fault in).
    for (binary, program) in binaries.iter().zip([PROGRAM, PROGRAM_MULTI]) {
        let _tracing = tracing_in_process();
        let mut session = Session::new();
        if !cookies_or_refused(&mut session, PROGRAM_PLAIN, binary, "sdt_args:*") {
            return;
        }
        let program = usable(program);
        let target = Target::Path(binary.clone());
        let mut links = Vec::new();
        for (index, name) in FIRING_ORDER.iter().enumerate() {
            let mut cookie = cookie(index);
            if *name == "string" {
                cookie |= 1 << CSTR_SHIFT;
            }
            let probe = format!("sdt_args:{name}");
            links.push(session.attach(program, &target, &probe, cookie).unwrap());
        }
        assert_eq!(links[0].is_multi(), program == PROGRAM_MULTI, "{program}");
        // Started after attaching: the kernel places the uprobes and raises
        // the guarded probe's semaphore in the new process.
        let child = Command::new(binary)
            .arg("3")
            .spawn()
            .expect("start sdt_args");
        let pid = child.id();
        let output = child.wait_with_output().expect("sdt_args runs");
        assert!(output.status.success());
        let wanted = 3 * FIRING_ORDER.len();
        let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= wanted);
        assert_eq!(hits.len(), wanted, "{}: hits", binary.display());
        let plain = program == PROGRAM_PLAIN;
        assert_sdt_args_hits(&hits, 0, pid, &binary.display().to_string(), plain);
    }
}

#[test]
fn elements_by_32_bit_indices_below_and_above_zero() {
    // sdt_index at -O2: on aarch64 `[x3, w0, sxtw]` and `[x2, w1, uxtw]`,
    // index registers whose high halves are not zero.
    if !require_bpf("elements_by_32_bit_indices_below_and_above_zero") {
        return;
    }
    let binary = build_c("attach_custom_index", "sdt_index.c", &["-O2"]);
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    if !cookies_or_refused(&mut session, PROGRAM_PLAIN, &binary, "sdt_index:element") {
        return;
    }
    let target = Target::Path(binary.clone());
    let _link = session
        .attach(usable(PROGRAM_MULTI), &target, "sdt_index:element", 7)
        .unwrap();
    let child = Command::new(&binary).spawn().expect("start sdt_index");
    let pid = child.id();
    let output = child.wait_with_output().expect("sdt_index runs");
    assert!(output.status.success());
    let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= 7);
    let args: Vec<&[i64]> = hits
        .iter()
        .map(|hit| {
            assert_eq!((hit.cookie, hit.faults), (7, 0));
            &hit.args[..hit.arg_count as usize]
        })
        .collect();
    let expected = expected_sdt_index();
    assert_eq!(args, expected.iter().map(|a| &a[..]).collect::<Vec<_>>());
}

/// sdt_args at -O2, built in scratch directory `dir`, started to fire an
/// iteration every 5 ms, once it has mapped its executable.
fn running_sdt_args(dir: &str) -> (PathBuf, Guard) {
    let binary = build_c(dir, "sdt_args.c", &["-O2"]);
    let child = Guard::spawn(Command::new(&binary).args(["100000", "5"]));
    usdt_interop_tests::wait_for_mapping(child.pid(), "sdt_args");
    (binary, child)
}

/// Checks that the semaphore at `address` of process `pid` goes down to 0
/// once the links are dropped: at once, or within a second when another
/// test's child, forked but not yet executed, briefly held the links'
/// descriptors (they close with their last holder).
fn assert_lowered(pid: u32, address: u64) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while read_u16(pid, address) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(read_u16(pid, address), 0, "lowered on detach");
}

/// Checks hits of whole iterations of sdt_args (from `first_iteration` on,
/// in [`FIRING_ORDER`], each probe attached with its [`cookie`]) against
/// the values the fixture fires. A C string argument the program did not
/// copy is checked in process `pid`: its pointer must point at the string.
/// With `untouched_unreadable`, for a program that is not sleepable (kernels
/// before 6.0), the string literal on a page the process never touched
/// must instead read as a fault, never as something else.
fn assert_sdt_args_hits(
    hits: &[Hit],
    first_iteration: u64,
    pid: u32,
    what: &str,
    untouched_unreadable: bool,
) {
    for (index, hit) in hits.iter().enumerate() {
        let iteration = first_iteration + (index / FIRING_ORDER.len()) as u64;
        let slot = index % FIRING_ORDER.len();
        let probe = FIRING_ORDER[slot];
        assert_eq!(hit.cookie & 0xffff_ffff, cookie(slot), "{probe}: cookie");
        let expected = &expected_sdt_args(iteration)[probe];
        assert_eq!(hit.arg_count as usize, expected.len(), "{probe}");
        if untouched_unreadable && probe == "string" {
            assert_eq!(hit.faults, 1, "{probe}: the literal read as a fault");
            let read = string(hit, 0);
            assert!(
                read.as_deref().is_none_or(str::is_empty),
                "{probe}: {read:?} read"
            );
            continue;
        }
        assert_eq!(hit.faults, 0, "{probe}: unreadable arguments");
        let values: Vec<String> = expected
            .iter()
            .enumerate()
            .map(|(n, text)| match string(hit, n) {
                Some(string) => string,
                None if probe == "string" && n == 0 => {
                    let bytes = read_memory(pid, hit.args[0] as u64, text.len());
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                None => arg_text(hit, n, text),
            })
            .collect();
        assert_eq!(&values, expected, "{what}: {probe}");
    }
}

#[test]
fn typed_rust_probes_by_pid_read_strings_in_one_call() {
    if !require_bpf("typed_rust_probes_by_pid_read_strings_in_one_call") {
        return;
    }
    // By cookie, and by address as on kernels without cookies (this SDK's
    // sites are 5-byte nops, which this kernel may turn into calls).
    for lookup in [SpecLookup::detect(), SpecLookup::InstructionPointer] {
        let mut catalog =
            Guard::spawn(Command::new(crate::CATALOG).args(["--loop", "30", "--wait"]));
        let mut stdout = BufReader::new(catalog.0.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        assert!(line.starts_with("ready "), "{line}");
        let pid = catalog.pid();
        let _tracing = tracing_in_process();
        let mut session = Session::with_lookup(lookup);
        let links = session
            .attach(PROGRAM_PLAIN, &Target::Pid(pid), "store:order_placed", 77)
            .unwrap();
        // order_placed(order_id: u64, customer: &str, total_cents: i64).
        assert_eq!(links.arg_slot("customer"), Some(1));
        assert_eq!(links.arg_slot("total_cents"), Some(3));
        assert_eq!(links.arg_slot("nothing"), None);
        let stdin = catalog.0.stdin.as_mut().expect("stdin");
        writeln!(stdin).expect("start the catalog");
        let hits = session.collect(pid, Duration::from_secs(10), |h| !h.is_empty());
        let hit = hits.first().expect("a hit of store:order_placed");
        assert_eq!(hit.cookie, 77, "{lookup:?}");
        assert_eq!(hit.arg_count, 4);
        assert_eq!(hit.faults, 0);
        assert_eq!(hit.args[0], 42);
        assert_eq!(string(hit, 1).as_deref(), Some("Ada Lovelace"));
        assert_eq!(hit.args[2], "Ada Lovelace".len() as i64);
        assert_eq!(hit.args[3], -1999);
        // SAFETY: sends a signal to the child this test started.
        unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    }
}

#[test]
fn detaching_stops_hits_and_lowers_the_semaphore() {
    if !require_bpf("detaching_stops_hits_and_lowers_the_semaphore") {
        return;
    }
    let (binary, child) = running_sdt_args("attach_custom_detach");
    let pid = child.pid();
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    let links = session
        .attach(PROGRAM_PLAIN, &Target::Pid(pid), "sdt_args:guarded", 9)
        .unwrap();
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let semaphore = semaphore_address(pid, &name, "sdt_args", "guarded");
    assert_eq!(read_u16(pid, semaphore), 1, "raised while attached");
    let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= 3);
    assert!(hits.len() >= 3, "guarded hits while attached");
    assert!(hits.iter().all(|h| h.cookie == 9 && h.args[1] == -424242));
    drop(links);
    assert_lowered(pid, semaphore);
    // What was recorded before the drop, then nothing.
    session.collect(pid, Duration::from_millis(100), |_| false);
    let late = session.collect(pid, Duration::from_millis(300), |_| false);
    assert!(late.is_empty(), "{} hits after detaching", late.len());
}

#[test]
fn probe_and_usdt_crate_probes_by_path_in_a_process_started_later() {
    if !require_bpf("probe_and_usdt_crate_probes_by_path_in_a_process_started_later") {
        return;
    }
    // A copy of its own: attaching by path reaches every process running
    // the file, and other tests run trace_peer_probes untraced.
    let peers = scratch_dir("attach_custom_peers").join("trace_peer_probes");
    std::fs::copy(PEERS, &peers).expect("copy trace_peer_probes");
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    if !cookies_or_refused(&mut session, PROGRAM_PLAIN, &peers, "peer_probe:*") {
        return;
    }
    let program = usable(PROGRAM_MULTI);
    let target = Target::Path(peers.clone());
    // The probes in the order trace_peer_probes fires them, each with its
    // cookie; `peer_usdt:text`'s message is a C string (the `usdt` crate
    // passes a pointer to a NUL-terminated copy).
    let probes = [
        ("peer_probe:numbers", 1),
        ("peer_probe:lazy", 2),
        ("peer_usdt:numbers", 3),
        ("peer_usdt:text", 4 | 1 << (CSTR_SHIFT + 1)),
    ];
    let _links: Vec<_> = probes
        .iter()
        .map(|(probe, cookie)| session.attach(program, &target, probe, *cookie).unwrap())
        .collect();
    let child = Command::new(&peers)
        .arg("3")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start trace_peer_probes");
    let pid = child.id();
    let output = child.wait_with_output().expect("trace_peer_probes runs");
    assert!(output.status.success());
    // The kernel raised probe_lazy!'s semaphore in the new process.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "lazy evaluations: 3\n"
    );
    let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= 12);
    assert_eq!(hits.len(), 12);
    for (index, hit) in hits.iter().enumerate() {
        let i = (index / 4) as i64;
        let (probe, cookie) = probes[index % 4];
        assert_eq!(hit.cookie, cookie, "{probe}");
        assert_eq!(hit.faults, 0, "{probe}: unreadable arguments");
        let args = &hit.args[..hit.arg_count as usize];
        match index % 4 {
            0 => assert_eq!(args, [i, -42, 255, -9_000_000_000], "{probe}"),
            1 => assert_eq!(args, [i, -7], "{probe}"),
            2 => assert_eq!(
                args,
                [200, -12345, 4_000_000_000, -9_000_000_000],
                "{probe}"
            ),
            _ => {
                assert_eq!(args[0], i, "{probe}");
                assert_eq!(string(hit, 1).as_deref(), Some("usdt crate text"));
            }
        }
    }
}

#[test]
fn python_function_entry_strings_by_pid() {
    let test = "python_function_entry_strings_by_pid";
    if !require_bpf(test) {
        return;
    }
    let Some((python, script)) = start_python(test, "attach_custom_python") else {
        return;
    };
    let pid = python.pid();
    let semaphore = semaphore_address(pid, "python3.11", "python", "function__entry");
    assert_eq!(read_u16(pid, semaphore), 0);
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    // function__entry(filename, funcname, lineno): two C strings.
    let cookie = 11 | 3 << CSTR_SHIFT;
    let links = session
        .attach(
            PROGRAM_PLAIN,
            &Target::Pid(pid),
            "python:function__entry",
            cookie,
        )
        .unwrap();
    assert_eq!(read_u16(pid, semaphore), 1, "raised while attached");
    let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= 5);
    assert!(hits.len() >= 5, "{} hits", hits.len());
    let script = script.to_string_lossy();
    for hit in &hits {
        assert_eq!(hit.cookie, cookie);
        assert_eq!(hit.arg_count, 3);
        assert_eq!(hit.faults, 0);
        // The path as far as the example copies a C string (its bound
        // holds the NUL too).
        let bound = script.len().min(STRING_CAP - 1);
        assert_eq!(string(hit, 0).as_deref(), Some(&script[..bound]));
        assert_eq!(string(hit, 1).as_deref(), Some("usdt_traced_function"));
        assert_eq!(hit.args[2].to_string(), FUNCTION_LINE);
    }
    drop(links);
    assert_lowered(pid, semaphore);
}

#[test]
fn without_cookies_sites_are_found_by_address() {
    if !require_bpf("without_cookies_sites_are_found_by_address") {
        return;
    }
    let (binary, child) = running_sdt_args("attach_custom_no_cookie");
    let pid = child.pid();
    let _tracing = tracing_in_process();
    // As on kernels before 5.15: the object loaded with USDT_AYA_NO_COOKIE
    // set, the sites attached by address.
    let mut session = Session::with_lookup(SpecLookup::InstructionPointer);
    let error = session
        .attach(
            PROGRAM_PLAIN,
            &Target::Path(binary.clone()),
            "sdt_args:*",
            0,
        )
        .unwrap_err();
    assert!(matches!(error, UsdtError::Kernel { .. }), "{error:?}");
    assert!(error.to_string().contains("no BPF cookies"), "{error}");
    let target = Target::Pid(pid);
    let links: Vec<_> = FIRING_ORDER
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let probe = format!("sdt_args:{name}");
            session
                .attach(PROGRAM_PLAIN, &target, &probe, cookie(index))
                .unwrap()
        })
        .collect();
    assert!(!links[0].is_multi());
    // One spec per address: a second attachment of a site is refused.
    let error = session
        .attach(PROGRAM_PLAIN, &target, "sdt_args:iteration", 0)
        .unwrap_err();
    assert!(error.to_string().contains("attached already"), "{error}");
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let semaphore = semaphore_address(pid, &name, "sdt_args", "guarded");
    assert_eq!(read_u16(pid, semaphore), 1, "raised while attached");
    // Whole iterations from the first `iteration` hit after every probe was
    // attached on (the hits before are dropped).
    session.collect(pid, Duration::ZERO, |_| true);
    let wanted = 2 * FIRING_ORDER.len();
    let hits = session.collect(pid, Duration::from_secs(10), |h| {
        h.iter().skip_while(|h| h.cookie != cookie(0)).count() >= wanted
    });
    let hits: Vec<Hit> = hits
        .into_iter()
        .skip_while(|h| h.cookie != cookie(0))
        .take(wanted)
        .collect();
    assert_eq!(hits.len(), wanted, "hits");
    assert_sdt_args_hits(&hits, hits[0].args[0] as u64, pid, "by address", false);
    drop(links);
    assert_lowered(pid, semaphore);
    let ips: aya::maps::HashMap<_, u64, u32> =
        aya::maps::HashMap::try_from(session.ebpf.map(IP_MAP).expect("the address map")).unwrap();
    assert_eq!(ips.keys().count(), 0, "addresses left after detaching");
}

#[test]
fn errors_say_what_and_where() {
    if !require_bpf("errors_say_what_and_where") {
        return;
    }
    let binary = build_c("attach_custom_errors", "sdt_args.c", &["-O0"]);
    let target = Target::Path(binary.clone());
    let mut session = Session::new();

    let error = session
        .attach(PROGRAM, &target, "sdt_args:nothing*", 0)
        .unwrap_err();
    assert!(matches!(error, UsdtError::NoProbe { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "no probe matches `sdt_args:nothing*` in {}",
            binary.display()
        )
    );

    let error = session
        .attach("no_such_program", &target, "sdt_args:iteration", 0)
        .unwrap_err();
    assert!(
        matches!(error, UsdtError::ProgramNotFound { .. }),
        "{error:?}"
    );

    let error = session
        .attach(PROGRAM_RETURN, &target, "sdt_args:iteration", 0)
        .unwrap_err();
    assert!(matches!(error, UsdtError::Program { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "program `{PROGRAM_RETURN}` cannot be attached to USDT probes: unexpected program type"
        )
    );

    let error = session
        .attach(PROGRAM, &target, "sdt_args:", 0)
        .unwrap_err();
    assert!(matches!(error, UsdtError::Pattern { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("bad probe pattern `sdt_args:`: "),
        "{error}"
    );

    // The kernel refuses a uprobe on a trap instruction, in a process that
    // maps the file.
    let refused = build_c("attach_custom_refused", "sdt_refused.c", &["-O2"]);
    let mut child = Guard::spawn(&mut Command::new(&refused));
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready line");
    for program in [PROGRAM_PLAIN, usable(PROGRAM_MULTI)] {
        let error = session
            .attach(program, &Target::Pid(child.pid()), "sdt_refused:trap", 0)
            .unwrap_err();
        match &error {
            UsdtError::Attach {
                path, name, source, ..
            } => {
                assert_eq!(path, &refused);
                assert_eq!(name, "trap");
                assert_eq!(source.raw_os_error(), Some(524), "ENOTSUPP: {source}");
            }
            other => panic!("{program}: expected the kernel's refusal, got {other:?}"),
        }
    }

    let bad = build_c("attach_custom_bad_operand", "trace_bad_operand.c", &["-O0"]);
    let error = session
        .attach(PROGRAM, &Target::Path(bad), "trace_bad:*", 0)
        .unwrap_err();
    match &error {
        UsdtError::Unsupported { name, reason, .. } => {
            assert_eq!(name, "vector_register");
            assert!(reason.contains("xmm0"), "{reason}");
        }
        other => panic!("expected an unsupported operand, got {other:?}"),
    }

    // The tracer's own object does not link usdt-aya-ebpf.
    let tracer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../usdt-tracer/bpf/usdt-tracer.bpf.o");
    let object = std::fs::read(tracer).expect("the tracer's object");
    let mut ebpf = aya::Ebpf::load(&object).expect("load the tracer's object");
    let error = Usdt::new(&mut ebpf).unwrap_err();
    assert!(
        matches!(error, UsdtError::SpecMapMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("USDT_AYA_SPECS"), "{error}");
}

#[test]
fn by_path_a_semaphore_the_kernel_misses_later_is_a_warning() {
    let test = "by_path_a_semaphore_the_kernel_misses_later_is_a_warning";
    if !require_bpf(test) {
        return;
    }
    // lld lays the RELRO segment and the data segment back to back in the
    // file: the kernel raises the RELRO copy of a semaphore in that shared
    // page in processes mapping the file after attaching.
    let Some(lld) = build_sdt_args_with_shared_semaphore_page(test, "attach_custom_relro") else {
        return;
    };
    let bfd = build_c("attach_custom_relro_bfd", "sdt_args.c", &["-O2"]);
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    if !cookies_or_refused(&mut session, PROGRAM_PLAIN, &lld, "sdt_args:*") {
        return;
    }
    // A process running the file before the attach, its RELRO segment
    // made read-only by the loader (done before main, well within the
    // wait): the kernel raises its semaphore all the same.
    let child = Guard::spawn(Command::new(&lld).args(["100000", "5"]));
    let pid = child.pid();
    usdt_interop_tests::wait_for_mapping(pid, "sdt_args");
    std::thread::sleep(usdt_interop_tests::scaled(Duration::from_millis(300)));
    let links = session
        .attach(PROGRAM_PLAIN, &Target::Path(lld.clone()), "sdt_args:*", 1)
        .unwrap();
    let expected = usdt_aya::AttachWarning::SemaphoreNotRaisedLater {
        path: lld.clone(),
        provider: "sdt_args".into(),
        name: "guarded".into(),
    };
    assert_eq!(links.warnings(), std::slice::from_ref(&expected));
    assert!(
        expected
            .to_string()
            .starts_with("the semaphore of sdt_args:guarded in "),
        "{expected}"
    );
    let name = lld.file_name().unwrap().to_string_lossy().into_owned();
    let semaphore = semaphore_address(pid, &name, "sdt_args", "guarded");
    // Nonzero: each mapping of the probe's file page counts (this small
    // file maps page 0 three times), and the probe tests for nonzero.
    assert_ne!(read_u16(pid, semaphore), 0, "raised in the running process");
    drop(links);
    assert_lowered(pid, semaphore);
    // GNU ld's layout: nothing to say.
    let links = session
        .attach(PROGRAM_PLAIN, &Target::Path(bfd), "sdt_args:*", 1)
        .unwrap();
    assert!(links.warnings().is_empty(), "{:?}", links.warnings());
}
