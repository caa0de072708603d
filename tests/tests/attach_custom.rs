//! usdt-aya and usdt-aya-ebpf as a user's own program uses them: the
//! custom-tracer example's BPF program attached through `usdt-aya` to the C
//! fixtures (every width and sign, stack slots, rip-relative globals,
//! constants, strings, a semaphore-guarded probe) at -O0 and -O2, by path
//! to a process started after attaching, and to this SDK's typed probes
//! by pid; detaching; and the errors.

use custom_tracer_common::{CSTR_SHIFT, PROGRAM, PROGRAM_MULTI, PROGRAM_PLAIN};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use usdt_aya::{Target, Usdt, UsdtError, aya};
use usdt_interop_tests::custom::{Session, arg_text, string};
use usdt_interop_tests::trace::{
    FIRING_ORDER, build_c, build_c_at_o0_and_o2, expected_sdt_args, read_u16, semaphore_address,
    tracing_in_process,
};
use usdt_interop_tests::{Guard, require_bpf};

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
    // programs sleepable (the string literal is on a page sdt_args never
    // touches).
    for (binary, program) in binaries.iter().zip([PROGRAM, PROGRAM_MULTI]) {
        let _tracing = tracing_in_process();
        let mut session = Session::new();
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
        for (index, hit) in hits.iter().enumerate() {
            let iteration = (index / FIRING_ORDER.len()) as u64;
            let slot = index % FIRING_ORDER.len();
            let probe = FIRING_ORDER[slot];
            assert_eq!(hit.cookie & 0xffff_ffff, cookie(slot), "{probe}: cookie");
            let expected = &expected_sdt_args(iteration)[probe];
            assert_eq!(hit.arg_count as usize, expected.len(), "{probe}");
            assert_eq!(hit.faults, 0, "{probe}: unreadable arguments");
            let values: Vec<String> = expected
                .iter()
                .enumerate()
                .map(|(n, text)| match string(hit, n) {
                    Some(string) => string,
                    None => arg_text(hit, n, text),
                })
                .collect();
            assert_eq!(&values, expected, "{}: {probe}", binary.display());
        }
    }
}

#[test]
fn typed_rust_probes_by_pid_read_strings_in_one_call() {
    if !require_bpf("typed_rust_probes_by_pid_read_strings_in_one_call") {
        return;
    }
    let mut catalog = Guard::spawn(Command::new(crate::CATALOG).args(["--loop", "30", "--wait"]));
    let mut stdout = BufReader::new(catalog.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready line");
    assert!(line.starts_with("ready "), "{line}");
    let pid = catalog.pid();
    let _tracing = tracing_in_process();
    let mut session = Session::new();
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
    assert_eq!(hit.cookie, 77);
    assert_eq!(hit.arg_count, 4);
    assert_eq!(hit.faults, 0);
    assert_eq!(hit.args[0], 42);
    assert_eq!(string(hit, 1).as_deref(), Some("Ada Lovelace"));
    assert_eq!(hit.args[2], "Ada Lovelace".len() as i64);
    assert_eq!(hit.args[3], -1999);
    // SAFETY: sends a signal to the child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
}

#[test]
fn detaching_stops_hits_and_lowers_the_semaphore() {
    if !require_bpf("detaching_stops_hits_and_lowers_the_semaphore") {
        return;
    }
    let binary = build_c("attach_custom_detach", "sdt_args.c", &["-O2"]);
    let child = Guard::spawn(Command::new(&binary).args(["100000", "5"]));
    let pid = child.pid();
    usdt_interop_tests::wait_for_mapping(pid, "sdt_args");
    let _tracing = tracing_in_process();
    let mut session = Session::new();
    let links = session
        .attach(PROGRAM, &Target::Pid(pid), "sdt_args:guarded", 9)
        .unwrap();
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let semaphore = semaphore_address(pid, &name, "sdt_args", "guarded");
    assert_eq!(read_u16(pid, semaphore), 1, "raised while attached");
    let hits = session.collect(pid, Duration::from_secs(10), |h| h.len() >= 3);
    assert!(hits.len() >= 3, "guarded hits while attached");
    assert!(hits.iter().all(|h| h.cookie == 9 && h.args[1] == -424242));
    drop(links);
    assert_eq!(read_u16(pid, semaphore), 0, "lowered on detach");
    // What was recorded before the drop, then nothing.
    session.collect(pid, Duration::from_millis(100), |_| false);
    let late = session.collect(pid, Duration::from_millis(300), |_| false);
    assert!(late.is_empty(), "{} hits after detaching", late.len());
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
