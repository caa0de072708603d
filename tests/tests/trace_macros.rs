//! Tracing our own probe macros (the `probe_catalog` fixture): every
//! supported argument type round-trips exactly through the tracer, strings
//! and floats decoded from the typed metadata; a semaphore-guarded probe
//! does not evaluate its arguments untraced, fires when traced, and its
//! semaphore is back to 0 after the tracer exits (also after Ctrl-C).

use crate::CATALOG;
use std::io::{BufReader, Read};
use std::process::Command;
use std::time::Duration;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, require_bpf, run};
use usdt_tracer::launch::StoppedCommand;
use usdt_tracer::{Event, TraceConfig, Tracer, Value};

fn s(text: &str) -> Value {
    Value::Str {
        text: text.into(),
        truncated: false,
    }
}

fn bytes(bytes: &[u8]) -> Value {
    Value::Bytes {
        bytes: bytes.to_vec(),
        truncated: false,
    }
}

/// Runs probe_catalog once under the library API, from its first
/// instruction, and returns every event; `perf_event_links` attaches one
/// perf-event uprobe per site instead of uprobe_multi links.
fn trace_catalog_once(perf_event_links: bool) -> Vec<Event> {
    let _tracing = tracing_in_process();
    let mut command = StoppedCommand::spawn(&[CATALOG.to_owned()]).expect("spawn probe_catalog");
    let mut config = TraceConfig::new()
        .probe("catalog:*")
        .unwrap()
        .probe("store:*")
        .unwrap()
        .probe("shelf:*")
        .unwrap();
    config.pid = Some(command.pid());
    config.executable = Some(command.program().to_path_buf());
    config.perf_event_links = perf_event_links;
    let mut tracer = Tracer::attach(&config).expect("attach");
    assert!(tracer.attached_sites() >= 20);
    command
        .resume_with(|pid| tracer.raise_after_exec(pid))
        .expect("resume");
    let status = command.wait().expect("wait");
    assert_eq!(status, 0);
    tracer.detach();
    let mut events = Vec::new();
    tracer.drain(|event| {
        events.push(event);
        true
    });
    assert_eq!(tracer.drops().unwrap(), 0);
    events
}

#[test]
fn every_supported_type_round_trips() {
    if !require_bpf("every_supported_type_round_trips") {
        return;
    }
    check_round_trip(&trace_catalog_once(false));
}

#[test]
fn every_supported_type_round_trips_through_perf_event_links() {
    if !require_bpf("every_supported_type_round_trips_through_perf_event_links") {
        return;
    }
    check_round_trip(&trace_catalog_once(true));
}

fn check_round_trip(events: &[Event]) {
    let find = |provider: &str, name: &str| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.probe.provider == provider && e.probe.name == name)
            .collect()
    };
    let one = |provider: &str, name: &str| -> &Event {
        let found = find(provider, name);
        assert_eq!(found.len(), 1, "{provider}:{name}: {found:?}");
        found[0]
    };
    use Value::{Bool, Char, F32, F64, I128, Signed as I, U128, Unsigned as U};
    let expect = |name: &str, values: Vec<Value>| {
        assert_eq!(one("catalog", name).args, values, "catalog:{name}");
    };
    expect("no_args", vec![]);
    expect(
        "unsigned_max",
        vec![
            U(255),
            U(65535),
            U(4294967295),
            U(u64::MAX),
            U(usize::MAX as u64),
        ],
    );
    expect("unsigned_min", vec![U(0), U(0), U(0), U(0), U(0)]);
    expect(
        "signed_min",
        vec![
            I(-128),
            I(-32768),
            I(i32::MIN as i64),
            I(i64::MIN),
            I(isize::MIN as i64),
        ],
    );
    expect(
        "signed_max",
        vec![
            I(127),
            I(32767),
            I(i32::MAX as i64),
            I(i64::MAX),
            I(isize::MAX as i64),
        ],
    );
    expect("negative", vec![I(-1), I(-2), I(-3), I(-4), I(-5)]);
    expect(
        "wide",
        vec![
            U128(u128::MAX),
            I128(i128::MIN),
            U128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            I128(-2),
        ],
    );
    let scalars = &one("catalog", "scalars").args;
    assert_eq!(
        scalars[..6],
        [
            Bool(true),
            Bool(false),
            Char('A' as u32),
            Char(0x10FFFF),
            F32(1.5),
            F64(-2.25)
        ]
    );
    assert!(
        matches!(scalars[6], Value::Pointer(p) if p != 0),
        "{scalars:?}"
    );
    expect(
        "floats",
        vec![
            F32(f32::MAX),
            F32(f32::MIN_POSITIVE),
            F64(f64::MIN),
            F64(f64::NEG_INFINITY),
        ],
    );
    expect(
        "text",
        vec![
            s("hello, probe"),
            s("owned \u{2603} text"),
            bytes(&[0x00, 0x01, 0xfe, 0xff]),
            s("c string"),
        ],
    );
    expect("empty_text", vec![s(""), bytes(&[])]);
    // Owned and wrapped values pass as what they hold: Vec<u8>, [u8; 4],
    // CString, Box<u32>, Cow<str>, NonZero<u16>, *mut u64.
    let owned = &one("catalog", "owned").args;
    assert_eq!(
        owned[..6],
        [
            bytes(&[9, 8, 7]),
            bytes(&[1, 2, 3, 4]),
            s("owned c"),
            U(5),
            s("cow"),
            U(9)
        ]
    );
    assert!(matches!(owned[6], Value::Pointer(p) if p != 0), "{owned:?}");
    expect(
        "twelve",
        vec![
            U(1),
            I(-2),
            U(3),
            I(-4),
            U(5),
            I(-6),
            U(7),
            I(-8),
            U(9),
            I(-10),
            Bool(true),
            Char('z' as u32),
        ],
    );
    // One site per instantiation of a generic function, each with its own
    // argument type.
    let generic: Vec<_> = find("catalog", "generic")
        .iter()
        .map(|e| e.args.clone())
        .collect();
    assert_eq!(generic, [vec![U(200)], vec![I(-300_000)]]);
    let inlined: Vec<_> = find("catalog", "inlined")
        .iter()
        .map(|e| e.args.clone())
        .collect();
    assert_eq!(inlined, [vec![U(1)], vec![U(2)]]);

    let placed = one("store", "order_placed");
    assert_eq!(
        placed.args,
        [U(42), s("Ada Lovelace"), I(-1999)],
        "store:order_placed"
    );
    assert_eq!(&*placed.arg_names, ["order_id", "customer", "total_cents"]);
    let json = one("store", "order_json");
    assert_eq!(
        json.args,
        [
            U(42),
            Value::Json {
                text: r#"{"id":42,"items":["tea","scones"],"total_cents":1999}"#.into(),
                truncated: false
            }
        ]
    );
    assert_eq!(
        one("store", "item_scanned").args,
        [
            U(7_000_001),
            F64(2.5),
            Bool(true),
            Char('B' as u32),
            bytes(&[1, 2, 3]),
            s("FRAGILE"),
            U128(u128::MAX - 1),
            I128(i128::MIN + 1),
        ]
    );
    assert_eq!(one("store", "tick").args, []);
    let restocked = one("shelf", "restocked");
    assert_eq!(
        restocked.args,
        [
            U(u8::MAX.into()),
            U(u16::MAX.into()),
            I(i8::MIN.into()),
            I(i16::MIN.into()),
            I(i32::MIN.into()),
            I(isize::MIN as i64),
            U(usize::MAX as u64),
            F32(-0.5),
            // The same static as catalog:scalars' pointer.
            scalars[6].clone(),
        ],
        "shelf:restocked"
    );
    assert_eq!(
        &*restocked.arg_names,
        [
            "count",
            "shelf",
            "aisle_delta",
            "temp_delta",
            "balance",
            "offset",
            "capacity",
            "ratio",
            "stock"
        ]
    );
    assert_eq!(
        one("shelf", "relabelled").args,
        [s("aisle 7"), bytes(&[0xca, 0xfe])]
    );
    // Every event comes from the one process, in firing order.
    assert!(
        events
            .windows(2)
            .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns)
    );
    assert!(events.iter().all(|e| e.pid == events[0].pid));
}

#[test]
fn json_lines_carry_exact_values_and_names() {
    if !require_bpf("json_lines_carry_exact_values_and_names") {
        return;
    }
    let output = run_usdt(&["trace", "--json", "-c", CATALOG, "catalog:wide", "store:*"]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("usdt: 5 events, 0 dropped"), "{stderr}");
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    // 128-bit integers are written exactly (as JSON numbers).
    assert!(
        text.contains(r#""args":[340282366920938463463374607431768211455,-170141183460469231731687303715884105728,1512366075204170947332355369683137040,-2]"#),
        "{text}"
    );
    let events = json_events(&output);
    let placed = named(&events, "store:order_placed");
    assert_eq!(placed.len(), 1);
    assert_eq!(
        placed[0]["args"],
        serde_json::json!([42, "Ada Lovelace", -1999])
    );
    assert_eq!(
        placed[0]["arg_names"],
        serde_json::json!(["order_id", "customer", "total_cents"])
    );
    for key in [
        "provider",
        "name",
        "path",
        "pid",
        "tid",
        "cpu",
        "timestamp_ns",
    ] {
        assert!(!placed[0][key].is_null(), "{key} missing: {}", placed[0]);
    }
    // A JSON argument is embedded as JSON.
    let order = named(&events, "store:order_json");
    assert_eq!(
        order[0]["args"][1]["items"],
        serde_json::json!(["tea", "scones"])
    );
    let item = named(&events, "store:item_scanned");
    assert_eq!(item[0]["args"][1], 2.5);
    assert_eq!(item[0]["args"][4], serde_json::json!([1, 2, 3]));
    assert_eq!(item[0]["args"][5], "FRAGILE");
}

#[test]
fn readable_lines_show_names_and_decoded_values() {
    if !require_bpf("readable_lines_show_names_and_decoded_values") {
        return;
    }
    let output = run_usdt(&["trace", "-c", CATALOG, "store:order_placed", "catalog:text"]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    // The catalog's own output shares the standard output.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("lazy evaluations"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with(
            r#" catalog:text arg0="hello, probe" arg1="owned ☃ text" arg2=b"\x00\x01\xfe\xff" arg3="c string""#
        ),
        "{text}"
    );
    assert!(
        lines[1].ends_with(
            r#" store:order_placed order_id=42 customer="Ada Lovelace" total_cents=-1999"#
        ),
        "{text}"
    );
    // time, pid, tid columns.
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(fields[0].parse::<f64>().is_ok(), "{}", lines[1]);
    assert_eq!(fields[1], fields[2]);
}

#[test]
fn guarded_probes_are_lazy_and_semaphores_return_to_zero() {
    if !require_bpf("guarded_probes_are_lazy_and_semaphores_return_to_zero") {
        return;
    }
    // Untraced, the typed probes' argument closures never run.
    assert_eq!(run(&mut Command::new(CATALOG)), "lazy evaluations: 0\n");

    usdt(); // Built before the catalog's clock starts.
    // Looping until told (SIGUSR1) or for 10 minutes: the traces below
    // take seconds each to attach on a slow (emulated) machine.
    let mut catalog = Guard::spawn(Command::new(CATALOG).args(["--loop", "600"]));
    let mut catalog_out = BufReader::new(catalog.0.stdout.take().unwrap());
    let ready = read_until(&mut catalog_out, Duration::from_secs(10), |l| {
        l.starts_with("ready ")
    });
    let pid = catalog.pid();
    assert_eq!(ready.last().unwrap(), &format!("ready {pid}"));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe_name = exe.file_name().unwrap().to_string_lossy().into_owned();
    let placed = semaphore_address(pid, &exe_name, "store", "order_placed");
    let tick = semaphore_address(pid, &exe_name, "store", "tick");
    assert_eq!(read_u16(pid, placed), 0);

    let pid_text = pid.to_string();
    let (trace, _stderr) = start_trace(&[
        "--pid",
        &pid_text,
        "--json",
        "--count",
        "4",
        "store:order_placed",
    ]);
    // Attached: the kernel raised the semaphore.
    assert_eq!(read_u16(pid, placed), 1);
    let output = trace.finish();
    assert!(output.status.success(), "{output:?}");
    let events = json_events(&output);
    assert_eq!(events.len(), 4);
    for event in &events {
        assert_eq!(
            event["args"],
            serde_json::json!([42, "Ada Lovelace", -1999])
        );
        assert_eq!(event["pid"].as_u64(), Some(pid as u64));
    }
    assert_eq!(read_u16(pid, placed), 0, "semaphore left raised");

    // A raw pointer argument points where the program said: read through it.
    let output = run_usdt(&[
        "trace",
        "--pid",
        &pid_text,
        "--json",
        "--count",
        "1",
        "catalog:scalars",
    ]);
    assert_success(&output);
    let pointer = json_events(&output)[0]["args"][6].as_u64().unwrap();
    assert_eq!(read_u64(pid, pointer), 0x5eed_cafe_f00d_beef);

    // Ctrl-C detaches cleanly and prints the summary.
    let (trace, mut trace_err) = start_trace(&["--pid", &pid_text, "store:tick"]);
    assert_eq!(read_u16(pid, tick), 1);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: sends SIGINT to our own child.
    unsafe { libc::kill(trace.pid() as i32, libc::SIGINT) };
    let output = trace.finish();
    assert!(output.status.success(), "{output:?}");
    let mut summary = String::new();
    trace_err.read_to_string(&mut summary).unwrap();
    assert!(
        summary.trim_end().ends_with(" dropped (SIGINT received)"),
        "{summary}"
    );
    let ticks = String::from_utf8(output.stdout).unwrap();
    assert!(ticks.lines().count() >= 5, "{ticks}");
    assert!(ticks.lines().all(|l| l.ends_with(" store:tick")), "{ticks}");
    assert_eq!(read_u16(pid, tick), 0, "semaphore left raised after SIGINT");

    // The catalog saw the probe enabled only while traced, and evaluated its
    // arguments only then.
    // SAFETY: sends SIGUSR1 to our own child, which ends its loop.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let rest = read_until(&mut catalog_out, Duration::from_secs(30), |l| {
        l.starts_with("lazy evaluations: ")
    });
    assert!(
        rest.contains(&"enabled: store:order_placed".to_owned()),
        "{rest:?}"
    );
    let evaluations: u64 = rest
        .last()
        .unwrap()
        .trim_start_matches("lazy evaluations: ")
        .parse()
        .unwrap();
    assert!(
        (4..100).contains(&evaluations),
        "evaluated {evaluations} times"
    );
}
