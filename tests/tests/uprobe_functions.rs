//! Plain uprobes and uretprobes: `usdt trace uprobe:FILE:FUNCTION(TYPES)`
//! and `uretprobe:FILE:FUNCTION(TYPE)` on a C program with known functions
//! (tests/fixtures/uprobe_target.c) at -O0 and -O2, on libc found by name in
//! a process, and on bash's `readline`; the values read are the arguments
//! passed (registers and stack slots) and the values returned. Function
//! lookup (`ElfFile::functions`) is checked against readelf.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, require_bpf, require_tool, run};
use usdt_reader::ElfFile;
use usdt_tracer::{TraceConfig, Tracer, Value};

/// The entry probe of compute() with every argument typed and named.
const COMPUTE_TYPES: &str =
    "(a: int, b: long, label: str, c: u8, d: i16, e: long, f: long, g: int)";

/// uprobe_target at -O0 and -O2.
fn fixtures(test: &str) -> Vec<PathBuf> {
    build_c_at_o0_and_o2(test, "uprobe_target.c")
}

/// What compute() returns in iteration `i` (see the fixture).
fn compute_result(i: i64) -> i64 {
    (i - 7) * 1000 + (1 << 40) + 5 + 200 - 300 - 5 + 6 + 77 + i
}

/// The libc the fixture runs with.
fn libc_path() -> PathBuf {
    let out = run(Command::new("cc").arg("-print-file-name=libc.so.6"));
    std::fs::canonicalize(out.trim()).expect("libc.so.6")
}

#[test]
fn entry_arguments_and_return_values_at_o0_and_o2() {
    if !require_bpf("entry_arguments_and_return_values_at_o0_and_o2") {
        return;
    }
    for binary in fixtures("uprobe_entry_and_return") {
        let path = binary.display().to_string();
        let command = format!("{path} 3");
        let entry = format!("uprobe:{path}:compute{COMPUTE_TYPES}");
        let compute_return = format!("uretprobe:{path}:compute");
        let describe_return = format!("uretprobe:{path}:describe(name: str)");
        let args = [
            "--json",
            "-c",
            &command,
            &entry,
            &compute_return,
            &describe_return,
        ];
        // Return probes need BPF cookies (5.15).
        if !cookies_or_refused(&args, "the return probe uretprobe:compute in ") {
            return;
        }
        let output = run_usdt(&[&["trace"][..], &args].concat());
        let stderr = assert_success(&output);
        assert!(stderr.contains("usdt: 9 events, 0 dropped"), "{stderr}");
        let events = json_events(&output);
        let entries = named(&events, "uprobe:compute");
        let returns = named(&events, "uretprobe:compute");
        let names = named(&events, "uretprobe:describe");
        assert_eq!((entries.len(), returns.len(), names.len()), (3, 3, 3));
        for i in 0..3i64 {
            // Six arguments in registers, the last two on the stack.
            assert_eq!(
                arg_texts(entries[i as usize]),
                [
                    (i - 7).to_string(),
                    (1i64 << 40).to_string(),
                    "label".into(),
                    "200".into(),
                    "-300".into(),
                    "-5".into(),
                    "6".into(),
                    (77 + i).to_string(),
                ],
                "{path}"
            );
            assert_eq!(
                arg_texts(returns[i as usize]),
                [compute_result(i).to_string()],
                "{path}"
            );
            assert_eq!(
                arg_texts(names[i as usize]),
                [["zero", "one", "two"][i as usize]],
                "{path}"
            );
        }
        assert_eq!(entries[0]["arg_names"][2], "label");
        assert_eq!(returns[0]["arg_names"][0], "ret");
        assert_eq!(names[0]["arg_names"][0], "name");
        assert_eq!(entries[0]["path"], path.as_str());
        // Entry, return and the next function, in order, on one thread.
        let order: Vec<String> = events
            .iter()
            .map(usdt_interop_tests::json_probe_name)
            .collect();
        assert_eq!(
            order[..3],
            ["uprobe:compute", "uretprobe:compute", "uretprobe:describe"]
        );
    }
}

#[test]
fn text_lines_show_function_probes() {
    if !require_bpf("text_lines_show_function_probes") {
        return;
    }
    let binary = &fixtures("uprobe_text")[1];
    let path = binary.display().to_string();
    let command = format!("{path} 1");
    let (entry, ret, compute) = (
        format!("uprobe:{path}:describe(int)"),
        format!("uretprobe:{path}:describe(str)"),
        format!("uprobe:{path}:compute"),
    );
    let args = ["-c", &command, &entry, &ret, &compute];
    // Return probes need BPF cookies (5.15).
    if !cookies_or_refused(&args, "the return probe uretprobe:describe in ") {
        return;
    }
    let output = run_usdt(&[&["trace"][..], &args].concat());
    assert_success(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("probe:")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    // A probe without types reads nothing.
    assert!(lines[0].ends_with(" uprobe:compute"), "{text}");
    assert!(lines[1].ends_with(" uprobe:describe arg0=0"), "{text}");
    assert!(
        lines[2].ends_with(" uretprobe:describe ret=\"zero\""),
        "{text}"
    );
}

#[test]
fn library_functions_found_by_name_in_a_process() {
    if !require_bpf("library_functions_found_by_name_in_a_process") {
        return;
    }
    let binary = &fixtures("uprobe_library_by_name")[1];
    usdt();
    let mut target = Guard::spawn(Command::new(binary).arg("wait"));
    let mut stdout = BufReader::new(target.0.stdout.take().expect("stdout"));
    read_until(&mut stdout, Duration::from_secs(10), |l| l == "ready");
    let pid = target.pid().to_string();
    let args = [
        "--json",
        "--pid",
        &pid,
        // libc by its stem, the executable by its file name.
        "uprobe:libc:strtol(text: str, end: ptr, base: int)",
        "uretprobe:libc:strtol(long)",
        "uretprobe:uprobe_target_O2:describe(str)",
    ];
    // Return probes need BPF cookies (5.15).
    if !cookies_or_refused(&args, "the return probe uretprobe:strtol in ") {
        return;
    }
    let (trace, mut stderr) = start_trace(&args);
    let mut stdin = target.0.stdin.take().expect("stdin");
    writeln!(stdin, "12345").unwrap();
    writeln!(stdin, "-2").unwrap();
    read_until(&mut stdout, Duration::from_secs(10), |l| l == "-2 one");
    drop(stdin);
    let output = trace.finish();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(output.status.success(), "{rest}");
    assert!(rest.contains(&format!("process {pid} exited")), "{rest}");
    let events = json_events(&output);
    let calls: Vec<Vec<String>> = named(&events, "uprobe:strtol")
        .iter()
        .map(|e| arg_texts(e))
        .collect();
    assert_eq!(calls.len(), 2, "{events:?}");
    assert_eq!(calls[0][0], "12345\n");
    assert_eq!(calls[0][2], "10");
    assert_eq!(calls[1][0], "-2\n");
    let returned: Vec<String> = named(&events, "uretprobe:strtol")
        .iter()
        .map(|e| arg_texts(e)[0].clone())
        .collect();
    assert_eq!(returned, ["12345", "-2"]);
    let names: Vec<String> = named(&events, "uretprobe:describe")
        .iter()
        .map(|e| arg_texts(e)[0].clone())
        .collect();
    assert_eq!(names, ["zero", "one"]);
    // The probes' file is libc itself, as the process maps it.
    let strtol = named(&events, "uprobe:strtol")[0];
    let mapped = Path::new(strtol["path"].as_str().unwrap());
    assert_eq!(
        std::fs::canonicalize(mapped).unwrap(),
        libc_path(),
        "{mapped:?}"
    );
}

#[test]
fn bash_readline_returns_the_line_typed() {
    if !require_bpf("bash_readline_returns_the_line_typed")
        || !require_tool("bash_readline_returns_the_line_typed", "script")
        || !require_tool("bash_readline_returns_the_line_typed", "bash")
    {
        return;
    }
    let bash = std::fs::canonicalize(usdt_interop_tests::find_in_path("bash").unwrap()).unwrap();
    let bash = bash.display().to_string();
    usdt();
    let (entry, ret) = (
        format!("uprobe:{bash}:readline(prompt: str)"),
        format!("uretprobe:{bash}:readline(str)"),
    );
    let args = ["--json", "--duration", "30", &entry, &ret];
    // bash, a PIE, traced by path needs BPF cookies (5.15).
    if !cookies_or_refused(&args, "uprobe:readline in ") {
        return;
    }
    let (trace, mut stderr) = start_trace(&args);
    // An interactive bash on a pseudo-terminal reads its input with
    // readline; `script` gives it one.
    let mut shell = Command::new("script")
        .args(["-q", "-c"])
        .arg(format!("{bash} --norc --noprofile -i"))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start script");
    let mut input = shell.stdin.take().unwrap();
    input
        .write_all(b"PS1='usdt-test$ '\necho usdt-readline-test\nexit\n")
        .unwrap();
    drop(input);
    assert!(shell.wait().unwrap().success());
    // SAFETY: kill sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(trace.pid() as i32, libc::SIGINT) }, 0);
    let output = trace.finish();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(output.status.success(), "{rest}");
    let events = json_events(&output);
    // Other shells on the machine may read lines too: find ours.
    let returned: Vec<&serde_json::Value> = named(&events, "uretprobe:readline")
        .into_iter()
        .filter(|e| arg_texts(e)[0] == "echo usdt-readline-test")
        .collect();
    assert_eq!(returned.len(), 1, "{events:?}");
    let pid = &returned[0]["pid"];
    let lines: Vec<String> = named(&events, "uretprobe:readline")
        .iter()
        .filter(|e| &e["pid"] == pid)
        .map(|e| arg_texts(e)[0].clone())
        .collect();
    assert_eq!(
        lines,
        ["PS1='usdt-test$ '", "echo usdt-readline-test", "exit"]
    );
    let prompts: Vec<String> = named(&events, "uprobe:readline")
        .iter()
        .filter(|e| &e["pid"] == pid)
        .map(|e| arg_texts(e)[0].clone())
        .collect();
    // The first prompt is bash's default; the others the one set.
    assert_eq!(prompts.len(), 3, "{prompts:?}");
    assert_eq!(prompts[1..], ["usdt-test$ ", "usdt-test$ "]);
}

#[test]
fn return_probes_through_perf_event_links() {
    if !require_bpf("return_probes_through_perf_event_links") {
        return;
    }
    let _tracing = tracing_in_process();
    let binary = &fixtures("uprobe_perf_event_links")[0];
    let path = binary.display().to_string();
    let mut config = TraceConfig::new()
        .probe(&format!("uprobe:{path}:compute{COMPUTE_TYPES}"))
        .and_then(|c| c.probe(&format!("uretprobe:{path}:compute")))
        .expect("probe specs");
    config.perf_event_links = true;
    let attached = Tracer::attach(&config);
    // A PIE traced by path needs BPF cookies (5.15), as return probes do.
    if !cookies_or_refused_attach(&attached, "uprobe:compute in ") {
        return;
    }
    let mut tracer = attached.expect("attach");
    assert_eq!(tracer.attached_sites(), 2);
    let out = run(Command::new(binary).arg("2"));
    assert!(out.contains("compute 1099511621760"), "{out}");
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while events.len() < 4 && std::time::Instant::now() < deadline {
        tracer
            .poll(Duration::from_millis(100), |event| {
                events.push(event);
                true
            })
            .unwrap();
    }
    let returns: Vec<&Value> = events
        .iter()
        .filter(|e| e.probe.provider == "uretprobe")
        .map(|e| &e.args[0])
        .collect();
    assert_eq!(
        returns,
        [
            &Value::Signed(compute_result(0)),
            &Value::Signed(compute_result(1))
        ]
    );
    let firsts: Vec<&Value> = events
        .iter()
        .filter(|e| e.probe.provider == "uprobe")
        .map(|e| &e.args[7])
        .collect();
    assert_eq!(firsts, [&Value::Signed(77), &Value::Signed(78)]);
}

#[test]
fn function_lookup_agrees_with_readelf() {
    let binary = &fixtures("uprobe_function_lookup")[1];
    let file = ElfFile::open(binary).unwrap();
    let symbols = run(Command::new("readelf").args(["-sW"]).arg(binary));
    for name in ["compute", "describe", "main"] {
        let address = symbols
            .lines()
            .find(|l| l.split_whitespace().nth(7) == Some(name) && l.contains(" FUNC "))
            .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .unwrap_or_else(|| panic!("readelf shows no {name}"));
        let found = file.functions(name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].address, address, "{name}");
        assert!(found[0].size > 0 && !found[0].indirect);
    }
    assert!(file.functions("no_such_function").is_empty());

    // libc: strlen is an IFUNC; memcpy has two versions at two addresses.
    let libc = ElfFile::open(libc_path()).unwrap();
    let dynsyms = run(Command::new("readelf")
        .args(["--dyn-syms", "-W"])
        .arg(libc_path()));
    let strlen = libc.functions("strlen");
    assert_eq!(strlen.len(), 1);
    assert!(strlen[0].indirect);
    assert!(dynsyms.contains(&format!("{:016x}", strlen[0].address)));
    let memcpy = libc.functions("memcpy");
    let readelf_memcpy = dynsyms
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(7)
                .is_some_and(|n| n.split('@').next() == Some("memcpy"))
        })
        .count();
    assert_eq!(memcpy.len(), readelf_memcpy, "{memcpy:?}");
}

#[test]
fn function_probe_errors_exit_with_status_2() {
    let binary = &fixtures("uprobe_errors")[1];
    let path = binary.display().to_string();
    let check = assert_trace_usage_error;
    check(
        &[&format!("uprobe:{path}:compute(float)")],
        "unknown type `float`",
    );
    check(
        &[&format!("uretprobe:{path}:compute(int, int)")],
        "one return value",
    );
    if !require_bpf("function_probe_errors_exit_with_status_2") {
        return;
    }
    check(&["uprobe:libc:malloc"], "is not a path (no `/`)");
    check(
        &[&format!("uprobe:{path}:no_such_function")],
        "function `no_such_function` in",
    );
    let libc = libc_path().display().to_string();
    check(
        &[&format!("uprobe:{libc}:strlen")],
        "is an indirect function (IFUNC)",
    );
    check(
        &[&format!("uprobe:{libc}:memcpy")],
        "give the address instead of the name",
    );
    check(
        &[&format!("uprobe:{path}:0x1")],
        "0x1 is not in an executable segment",
    );
    let command = format!("{path} 1");
    check(
        &["-c", &command, "uprobe:libc:strtol"],
        "is not the command's executable",
    );
}
