//! `usdt trace` on C programs built with `<sys/sdt.h>`: every argument
//! width and sign, stack slots, globals (RIP-relative at -O2), indexed
//! memory, constants, strings and twelve arguments, at -O0 and -O2. Values
//! are known by construction (tests/fixtures/sdt_args.c) and cross-checked
//! with gdb; probes in a shared library are traced through a pid, and a
//! path traces processes started after the tracer attached. Strings around
//! the copy bound come from tests/fixtures/sdt_strings.c. aarch64's own
//! memory forms, globals by `:lo12:` relocation and locals off the frame
//! pointer, come from sdt_args without section anchors and
//! tests/fixtures/sdt_frame.c; its extended 32-bit index registers
//! (`[x3, w0, sxtw]`, `[x2, w1, uxtw]`) from tests/fixtures/sdt_index.c.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, require_bpf, require_tool, run};

/// Traces three iterations of sdt_args from its first instruction.
fn trace_sdt_args(binary: &std::path::Path) -> Vec<serde_json::Value> {
    let command = format!("{} 3", binary.display());
    let output = run_usdt(&[
        "trace",
        "--json",
        "--str",
        "sdt_args:string:0",
        "-c",
        &command,
        "sdt_args:*",
    ]);
    let stderr = assert_success(&output);
    assert!(
        stderr.contains("usdt: 36 events, 0 dropped"),
        "summary: {stderr}"
    );
    assert!(stderr.contains("command exited with status 0"), "{stderr}");
    json_events(&output)
}

#[test]
fn every_width_sign_and_operand_form_at_o0_and_o2() {
    if !require_bpf("every_width_sign_and_operand_form_at_o0_and_o2") {
        return;
    }
    for opt in ["-O0", "-O2"] {
        let binary = build_c("trace_c_programs_values", "sdt_args.c", &[opt]);
        assert_sdt_args_values(opt, &trace_sdt_args(&binary));
    }
}

/// Checks the 36 events of three sdt_args iterations (built with `what`):
/// in firing order, from one process and thread, every value exact.
fn assert_sdt_args_values(what: &str, events: &[serde_json::Value]) {
    assert_eq!(events.len(), 36, "{what}: {events:?}");
    let pid = &events[0]["pid"];
    for (index, event) in events.iter().enumerate() {
        let iteration = (index / FIRING_ORDER.len()) as u64;
        let probe = FIRING_ORDER[index % FIRING_ORDER.len()];
        assert_eq!(event["provider"], "sdt_args", "{what}: {event}");
        assert_eq!(event["name"], probe, "{what}: events out of order: {event}");
        assert_eq!(&event["pid"], pid);
        assert_eq!(event["tid"], event["pid"]);
        assert!(event["timestamp_ns"].as_u64().unwrap() > 0);
        assert_eq!(
            arg_texts(event),
            expected_sdt_args(iteration)[probe],
            "{what} {probe} iteration {iteration}"
        );
    }
}

/// The operands of probe `name` in `binary`, as its note spells them.
fn note_args(binary: &std::path::Path, name: &str) -> String {
    let probes = usdt_reader::ElfFile::open(binary)
        .unwrap()
        .probes()
        .unwrap();
    let probe = probes.iter().find(|p| p.name == name);
    probe
        .unwrap_or_else(|| panic!("no probe {name}"))
        .args
        .clone()
}

#[test]
fn globals_by_low_12_bits_and_locals_off_the_frame_pointer() {
    // The memory forms aarch64 code adds to the ones above: globals at a
    // register plus the low 12 bits of their symbol (`[x0, #:lo12:g_i32]`,
    // sdt_args at -O2 without section anchors) and locals off the frame
    // pointer (`[x29, 56]`, tests/fixtures/sdt_frame.c at -O0). The same
    // builds give `g_i32(%rip)` and `-40(%rbp)` on x86-64.
    if !require_bpf("globals_by_low_12_bits_and_locals_off_the_frame_pointer") {
        return;
    }
    let (global_form, frame_form) = if cfg!(target_arch = "aarch64") {
        (":lo12:g_i32]", "[x29, ")
    } else {
        ("g_i32(%rip)", "(%rbp)")
    };
    let flags = ["-O2", "-fno-section-anchors"];
    let binary = build_c("trace_c_programs_lo12", "sdt_args.c", &flags);
    let globals = note_args(&binary, "globals");
    assert!(globals.contains(global_form), "sdt_args:globals: {globals}");
    assert_sdt_args_values("-O2 -fno-section-anchors", &trace_sdt_args(&binary));

    let frame = build_c("trace_c_programs_frame", "sdt_frame.c", &["-O0"]);
    let locals = note_args(&frame, "locals");
    assert!(locals.contains(frame_form), "sdt_frame:locals: {locals}");
    let command = format!("{} 3", frame.display());
    let output = run_usdt(&["trace", "--json", "-c", &command, "sdt_frame:locals"]);
    assert_success(&output);
    let events = json_events(&output);
    let texts: Vec<Vec<String>> = events.iter().map(arg_texts).collect();
    let expected: Vec<Vec<String>> = (1..=3i64)
        .map(|n| {
            [-1_234_567_890_123 * n, -42 * n, n]
                .iter()
                .map(|v| v.to_string())
                .collect()
        })
        .collect();
    assert_eq!(texts, expected, "{locals}");
}

#[test]
fn elements_by_32_bit_indices_below_and_above_zero() {
    // aarch64 gcc -O2 addresses an array element by an `int` index as
    // `[x3, w0, sxtw]` and by an `unsigned` one as `[x2, w1, uxtw]`: the
    // low 32 bits of the index register, sign- or zero-extended. The
    // fixture leaves the high halves of those registers non-zero, so only
    // the extended index reads the right byte; indices run from -3 to 3.
    if !require_bpf("elements_by_32_bit_indices_below_and_above_zero") {
        return;
    }
    let binary = build_c("trace_c_programs_index", "sdt_index.c", &["-O2"]);
    let element = note_args(&binary, "element");
    if cfg!(target_arch = "aarch64") {
        assert!(
            element.contains(", sxtw]") && element.contains(", uxtw]"),
            "sdt_index:element: {element}"
        );
    }
    let output = run_usdt(&[
        "trace",
        "--json",
        "-c",
        &binary.display().to_string(),
        "sdt_index:element",
    ]);
    assert_success(&output);
    let texts: Vec<Vec<String>> = json_events(&output).iter().map(arg_texts).collect();
    let expected: Vec<Vec<String>> = expected_sdt_index()
        .iter()
        .map(|args| args.iter().map(i64::to_string).collect())
        .collect();
    assert_eq!(texts, expected, "{element}");
}

#[test]
fn indexed_globals_without_pie() {
    // Non-PIE code addresses an indexed global with no base register
    // (`-4@g_array32(,%rax,4)` at -O2): read at the symbol + index*scale.
    if !require_bpf("indexed_globals_without_pie") {
        return;
    }
    for opt in ["-O0", "-O2"] {
        let flags = [opt, "-no-pie", "-fno-pie"];
        let binary = build_c("trace_c_programs_nopie", "sdt_args.c", &flags);
        if opt == "-O2" {
            // The build has the operand form this test is about.
            let probes = usdt_reader::ElfFile::open(&binary)
                .unwrap()
                .probes()
                .unwrap();
            let indexed = probes
                .iter()
                .filter(|p| p.name == "indexed")
                .flat_map(|p| p.arg_specs.as_ref().unwrap())
                .filter(|spec| {
                    matches!(
                        spec.location,
                        usdt_reader::ArgLocation::Address { index: Some(_), .. }
                    )
                })
                .count();
            assert!(
                indexed > 0,
                "{opt}: no `sym(,%reg,scale)` operand in sdt_args:indexed"
            );
        }
        assert_sdt_args_values(&format!("{opt} -no-pie"), &trace_sdt_args(&binary));
    }
}

/// gdb commands defining `show(name, count, fallbacks)`: prints `PROBE
/// name` and the probe's arguments, tab-separated.
const GDB_HELPER: &str = r#"set pagination off
set confirm off
python
def show(name, count, fallbacks):
    values = []
    for n in range(count):
        try:
            value = gdb.parse_and_eval('$_probe_arg%d' % n)
            if name == 'string' and n == 0:
                values.append(value.cast(gdb.lookup_type('char').pointer()).string())
            else:
                values.append(str(int(value)))
        except gdb.error:
            if fallbacks[n]:
                values.append(str(int(gdb.parse_and_eval(fallbacks[n]))))
            else:
                values.append('UNREADABLE')
    print('PROBE ' + name + ' ' + '\t'.join(values))
end
"#;

/// Reads every probe's arguments at its first hit with gdb
/// (`$_probe_argN`), with the guarded probe's semaphore raised by hand.
///
/// gdb 13's operand parser fails on some RIP-relative operands
/// (`sym(%rip)`, `56+sym(%rip)`) that gcc emits at -O2; for those, gdb
/// evaluates the C expression the fixture passes (the program is built
/// with -g), which reads the same memory.
fn gdb_values(binary: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let args = |list: &[&str]| {
        list.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let probes: [(&str, usize, String); 11] = [
        ("iteration", 1, args(&[""])),
        (
            "min_values",
            8,
            args(&[
                "v_i8_min",
                "v_i16_min",
                "v_i32_min",
                "v_i64_min",
                "v_u8_zero",
                "v_u16_zero",
                "v_u32_zero",
                "v_u64_zero",
            ]),
        ),
        (
            "max_values",
            8,
            args(&[
                "v_i8_max",
                "v_i16_max",
                "v_i32_max",
                "v_i64_max",
                "v_u8_max",
                "v_u16_max",
                "v_u32_max",
                "v_u64_max",
            ]),
        ),
        (
            "small_values",
            8,
            args(&[
                "(signed char)v_small[0]",
                "(short)(v_small[1] - 4)",
                "(int)v_small[2]",
                "v_small[3] - 8",
                "(unsigned char)(v_small[4] + 10)",
                "(unsigned short)v_small[5]",
                "(unsigned int)(v_small[6] + 14)",
                "(unsigned long)v_small[7]",
            ]),
        ),
        ("stack", 4, args(&["", "", "", ""])),
        ("globals", 4, args(&["g_i32", "g_u64", "g_i16", "g_u8"])),
        (
            "indexed",
            2,
            args(&["g_array32[v_index]", "g_array64[v_index]"]),
        ),
        ("constants", 6, args(&["", "", "", "", "", ""])),
        ("string", 2, args(&["", ""])),
        (
            "twelve",
            12,
            args(&[
                "(signed char)v_small[0]",
                "(unsigned char)v_small[1]",
                "(short)v_small[2]",
                "(unsigned short)v_small[3]",
                "(int)v_small[4]",
                "(unsigned int)v_small[5]",
                "v_small[6]",
                "(unsigned long)v_small[7]",
                "(int)v_small[8]",
                "(unsigned int)v_small[9]",
                "v_small[10]",
                "(unsigned long)v_small[11]",
            ]),
        ),
        ("guarded", 2, args(&["", ""])),
    ];
    let mut script = String::from(GDB_HELPER);
    for (probe, count, fallbacks) in &probes {
        script.push_str(&format!(
            "break -probe-stap sdt_args:{probe}\ncommands\nsilent\npython show('{probe}', {count}, [{fallbacks}])\ncontinue\nend\n"
        ));
    }
    script.push_str(
        "starti 1\nset var *(unsigned short *)&sdt_args_guarded_semaphore = 1\ncontinue\n",
    );
    let script_path = binary.parent().unwrap().join("probes.gdb");
    std::fs::write(&script_path, script).unwrap();
    let out = run(Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&script_path)
        .arg(binary));
    out.lines()
        .filter_map(|line| line.strip_prefix("PROBE "))
        .map(|rest| {
            let (name, values) = rest.split_once(' ').unwrap_or((rest, ""));
            let values = if values.is_empty() {
                Vec::new()
            } else {
                values.split('\t').map(str::to_owned).collect()
            };
            (name.to_owned(), values)
        })
        .collect()
}

#[test]
fn traced_values_agree_with_gdb() {
    if !require_bpf("traced_values_agree_with_gdb")
        || !require_tool("traced_values_agree_with_gdb", "gdb")
    {
        return;
    }
    for opt in ["-O0", "-O2"] {
        let binary = build_c("trace_c_programs_gdb", "sdt_args.c", &[opt, "-g"]);
        let from_gdb = gdb_values(&binary);
        let traced = trace_sdt_args(&binary);
        for (probe, values) in &from_gdb {
            let event = traced
                .iter()
                .find(|e| e["name"] == probe.as_str())
                .unwrap_or_else(|| panic!("{opt}: no traced {probe}"));
            assert_eq!(&arg_texts(event), values, "{opt} {probe}: tracer vs gdb");
        }
        assert_eq!(from_gdb.len(), 11, "{opt}: gdb saw {from_gdb:?}");
    }
}

#[test]
fn shared_library_probes_through_the_pid_of_a_process() {
    if !require_bpf("shared_library_probes_through_the_pid_of_a_process") {
        return;
    }
    let (main, _library) = build_shared_fixture("trace_c_programs_shared", "-O2");
    usdt(); // Built before the target starts.
    // Iterations 2 ms apart for up to a minute (killed when done).
    let target = Guard::spawn(Command::new(&main).args(["30000", "2"]));
    let pid = target.pid();
    std::thread::sleep(Duration::from_millis(200));
    let semaphore = semaphore_address(pid, "libsdt_lib.so", "sdt_lib", "guarded");
    let evaluations = runtime_symbol_address(pid, "libsdt_lib.so", "sdt_lib_guarded_evaluations");
    assert_eq!(read_u16(pid, semaphore), 0);
    assert_eq!(
        read_u64(pid, evaluations),
        0,
        "guarded arguments evaluated untraced"
    );

    let pid_text = pid.to_string();
    let output = run_usdt(&[
        "trace",
        "--json",
        "--pid",
        &pid_text,
        "--str",
        "sdt_lib:call:2",
        "--count",
        "30",
        "sdt_lib:*",
    ]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("usdt: 30 events, 0 dropped"), "{stderr}");
    let events = json_events(&output);
    assert_eq!(events.len(), 30);
    for event in &events {
        assert_eq!(event["pid"].as_u64(), Some(pid as u64));
        assert!(
            event["path"].as_str().unwrap().ends_with("libsdt_lib.so"),
            "{event}"
        );
    }
    // Each iteration fires call, counter, guarded; check every complete one.
    let calls = named(&events, "sdt_lib:call");
    assert!(calls.len() >= 9, "{events:?}");
    for call in &calls {
        let args = arg_texts(call);
        let i: i64 = args[0].parse().unwrap();
        assert_eq!(args[1..], ["-7777", "from the library"], "{call}");
        let position = events.iter().position(|e| e == *call).unwrap();
        if let Some(counter) = events.get(position + 1) {
            assert_eq!(counter["name"], "counter");
            // A static of the library, read RIP-relative in a PIC library.
            assert_eq!(arg_texts(counter), [(-5150 + i).to_string()]);
        }
        if let Some(guarded) = events.get(position + 2) {
            assert_eq!(guarded["name"], "guarded");
            assert_eq!(
                arg_texts(guarded),
                [i.to_string(), 0xfeedface_u64.to_string()]
            );
        }
    }
    // The tracer is gone: the kernel lowered the library's semaphore, and the
    // guarded arguments are no longer evaluated.
    assert_eq!(read_u16(pid, semaphore), 0, "semaphore left raised");
    let after = read_u64(pid, evaluations);
    assert!(after > 0);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        read_u64(pid, evaluations),
        after,
        "still evaluated after detach"
    );
    drop(target);
}

#[test]
fn a_path_traces_processes_started_before_and_after_attaching() {
    if !require_bpf("a_path_traces_processes_started_before_and_after_attaching") {
        return;
    }
    let binary = build_c("trace_c_programs_later", "sdt_args.c", &["-O2"]);
    usdt(); // Built before the clock starts.
    // Started before the tracer: iterations 10 ms apart for up to a minute.
    let early = Guard::spawn(Command::new(&binary).args(["6000", "10"]));
    let spec = format!("{}:sdt_args:iteration", binary.display());
    let args = ["--json", "--duration", "2", &spec];
    if !cookies_or_refused(&args, "sdt_args:iteration in ") {
        return;
    }
    let (trace, stderr) = start_trace(&args);
    // Started after the tracer attached.
    let late = run(Command::new(&binary).arg("3"));
    assert_eq!(late, "");
    let output = trace.finish();
    drop(stderr);
    assert!(output.status.success(), "{output:?}");
    let events = json_events(&output);
    let early_pid = early.pid() as u64;
    let early_events: Vec<_> = events
        .iter()
        .filter(|e| e["pid"].as_u64() == Some(early_pid))
        .collect();
    assert!(
        early_events.len() >= 20,
        "the process started first: {early_events:?}"
    );
    let late_iterations: Vec<String> = events
        .iter()
        .filter(|e| e["pid"].as_u64() != Some(early_pid))
        .map(|e| arg_texts(e)[0].clone())
        .collect();
    assert_eq!(
        late_iterations,
        ["0", "1", "2"],
        "the process started after attaching"
    );
    // Consecutive iterations of the early process, none missing.
    let iterations: Vec<u64> = early_events
        .iter()
        .map(|e| arg_texts(e)[0].parse().unwrap())
        .collect();
    assert!(
        iterations.windows(2).all(|w| w[1] == w[0] + 1),
        "{iterations:?}"
    );
}

#[test]
fn semaphores_sharing_a_page_with_relro_are_raised_in_every_mode() {
    let test = "semaphores_sharing_a_page_with_relro_are_raised_in_every_mode";
    if !require_bpf(test) {
        return;
    }
    // lld lays the RELRO segment and the data segment back to back in the
    // file, so the kernel's uprobe reference counter raises the RELRO copy
    // of a semaphore in the shared page at exec time: the tracer raises
    // such semaphores itself.
    let Some(binary) = build_sdt_args_with_shared_semaphore_page(test, "trace_c_programs_relro")
    else {
        return;
    };

    // From the first instruction (-c).
    let command = format!("{} 3", binary.display());
    let output = run_usdt(&["trace", "--json", "-c", &command, "sdt_args:guarded"]);
    assert_success(&output);
    let iterations: Vec<String> = json_events(&output)
        .iter()
        .map(|e| arg_texts(e).join(" "))
        .collect();
    assert_eq!(iterations, ["0 -424242", "1 -424242", "2 -424242"]);

    // A running process (--pid), and the semaphore lowered afterwards.
    usdt();
    let target = Guard::spawn(Command::new(&binary).args(["6000", "10"]));
    let pid = target.pid();
    std::thread::sleep(Duration::from_millis(100));
    let exe = binary.file_name().unwrap().to_string_lossy().into_owned();
    let semaphore = semaphore_address(pid, &exe, "sdt_args", "guarded");
    let pid_text = pid.to_string();
    let output = run_usdt(&[
        "trace",
        "--json",
        "--pid",
        &pid_text,
        "--count",
        "3",
        "sdt_args:guarded",
    ]);
    assert_success(&output);
    assert_eq!(json_events(&output).len(), 3);
    assert_eq!(read_u16(pid, semaphore), 0, "semaphore left raised");

    // Every process running the file: the running one is traced, and the
    // tracer warns that processes started later will not be.
    let spec = format!("{}:sdt_args:guarded", binary.display());
    let args = ["--json", "--count", "2", &spec];
    if !cookies_or_refused(&args, "sdt_args:guarded in ") {
        return;
    }
    let output = run_usdt(&[&["trace"], &args[..]].concat());
    let stderr = assert_success(&output);
    assert!(
        stderr.contains("usdt: warning: the semaphore of sdt_args:guarded in "),
        "{stderr}"
    );
    assert_eq!(json_events(&output).len(), 2);
    drop(target);
}

#[test]
fn a_full_ring_buffer_counts_every_lost_event() {
    if !require_bpf("a_full_ring_buffer_counts_every_lost_event") {
        return;
    }
    let _tracing = tracing_in_process();
    let binary = build_c("trace_c_programs_drops", "sdt_args.c", &["-O2"]);
    // 2000 iterations and a one-page ring buffer nobody reads until the
    // program has exited: most events cannot fit.
    let argv = [binary.display().to_string(), "2000".to_owned()];
    let mut command = usdt_tracer::launch::StoppedCommand::spawn(&argv).unwrap();
    let mut config = usdt_tracer::TraceConfig::new()
        .probe("sdt_args:iteration")
        .unwrap();
    config.pid = Some(command.pid());
    config.executable = Some(binary.clone());
    config.ring_bytes = 4096;
    let mut tracer = usdt_tracer::Tracer::attach(&config).unwrap();
    // Without BPF cookies the program learns where the executable's sites
    // are only once it is exec'd.
    command
        .resume_with(|pid| tracer.raise_after_exec(pid))
        .unwrap();
    assert_eq!(command.wait().unwrap(), 0);
    tracer.detach();
    let mut iterations = Vec::new();
    tracer.drain(|event| {
        iterations.push(event.args[0].clone());
        true
    });
    let drops = tracer.drops().unwrap();
    assert!(drops > 0, "nothing dropped");
    assert!(!iterations.is_empty(), "nothing delivered");
    assert_eq!(
        iterations.len() as u64 + drops,
        2000,
        "delivered + dropped = fired"
    );
    // What arrived is the start of the run, in order.
    let expected: Vec<usdt_tracer::Value> = (0..iterations.len() as u64)
        .map(usdt_tracer::Value::Unsigned)
        .collect();
    assert_eq!(iterations, expected);
}

/// The string of `length` characters sdt_strings passes: character i is
/// 'a' + i % 26.
fn alphabet(length: usize) -> String {
    (0..length)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect()
}

#[test]
fn strings_at_the_copy_bound_are_cut_and_flagged() {
    if !require_bpf("strings_at_the_copy_bound_are_cut_and_flagged") {
        return;
    }
    let binary = build_c("trace_strings_bound", "sdt_strings.c", &["-O2"]);
    let command = binary.display().to_string();
    let lengths = [0usize, 1, 255, 256, 257, 5000];
    // What the tracer keeps of each: at most 255 characters.
    let kept = |length: usize| alphabet(length.min(255));

    let output = run_usdt(&[
        "trace",
        "--json",
        "--str",
        "sdt_strings:one:0",
        "--str",
        "sdt_strings:all:0,1,2,3,4,5,6",
        "-c",
        &command,
        "sdt_strings:*",
    ]);
    assert_success(&output);
    let events = json_events(&output);
    let one = named(&events, "sdt_strings:one");
    assert_eq!(one.len(), lengths.len() + 1, "{one:?}");
    for (event, &length) in one.iter().zip(&lengths) {
        assert_eq!(event["args"][0], kept(length).as_str(), "length {length}");
        assert_eq!(event["args"][1], length as u64);
        let truncated = event.get("truncated").cloned();
        if length > 255 {
            assert_eq!(truncated, Some(serde_json::json!(true)), "length {length}");
        } else {
            assert_eq!(truncated, None, "length {length} flagged truncated");
        }
    }
    // The NULL pointer cannot be read: null, and not truncated.
    let null = one[lengths.len()];
    assert_eq!(null["args"], serde_json::json!([null, 0]));
    assert_eq!(null.get("truncated"), None);

    let all = named(&events, "sdt_strings:all");
    assert_eq!(all.len(), 1);
    let mut expected: Vec<serde_json::Value> = lengths.iter().map(|&l| kept(l).into()).collect();
    expected.push(serde_json::Value::Null);
    assert_eq!(all[0]["args"], serde_json::Value::Array(expected));
    assert_eq!(all[0]["truncated"], true);
    // Which arguments were cut: lengths 256, 257 and 5000.
    assert_eq!(all[0]["truncated_args"], serde_json::json!([3, 4, 5]));

    // Text: a cut string has `...` after its closing quote; the NULL
    // pointer reads as <fault>.
    let output = run_usdt(&[
        "trace",
        "--str",
        "sdt_strings:all:0,1,2,3,4,5,6",
        "-c",
        &command,
        "sdt_strings:all",
    ]);
    assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.contains("sdt_strings:all "))
        .unwrap_or_else(|| panic!("no sdt_strings:all line in {stdout}"));
    let args = line.split_once("sdt_strings:all ").unwrap().1;
    let mut wanted: Vec<String> = lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let cut = if l > 255 { "..." } else { "" };
            format!("arg{i}=\"{}\"{cut}", kept(l))
        })
        .collect();
    wanted.push("arg6=<fault>".into());
    assert_eq!(args, wanted.join(" "));
}
