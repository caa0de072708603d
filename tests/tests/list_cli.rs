//! `usdt list`: the table, JSON lines, patterns, `--pid`, and the exit
//! status and one-line error of every kind of bad input, on the C fixtures
//! and the `probe_catalog` example.

use crate::CATALOG;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::{run_usdt, usdt};
use usdt_interop_tests::elf::edit_notes;
use usdt_interop_tests::reader::{fixture, fixtures, start_looping, with_two_bad_notes};
use usdt_interop_tests::require_tool;
use usdt_reader::{ElfFile, Process};

const TEST: &str = "list_cli";

fn tools() -> bool {
    ["gcc", "aarch64-linux-gnu-gcc"]
        .iter()
        .all(|tool| require_tool(TEST, tool))
}

/// Runs `usdt list ARGS`.
fn list(args: &[&str]) -> Output {
    let mut full = vec!["list"];
    full.extend_from_slice(args);
    run_usdt(&full)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Runs `usdt list ARGS`, requiring success.
fn ok(args: &[&str]) -> String {
    let output = list(args);
    assert!(
        output.status.success(),
        "usdt list {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// Runs `usdt list ARGS`, requiring exit status `code`, no output and one
/// line on stderr; returns that line.
fn fails(args: &[&str], code: i32) -> String {
    let output = list(args);
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "usdt list {args:?}: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "usdt list {args:?} printed {}",
        stdout(&output)
    );
    if code == 2 && stderr.starts_with("error:") {
        // clap's usage errors.
        return stderr;
    }
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("usdt: "), "{stderr}");
    stderr.trim_end().to_string()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn table_is_aligned_and_complete() {
    if !tools() {
        return;
    }
    let path = &fixture(fixtures(), "x86_64_args_O2").path;
    let text = ok(&[path.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    let probes = ElfFile::open(path).unwrap().probes().unwrap();
    assert_eq!(lines.len(), probes.len() + 1);
    let header = lines[0];
    let columns = ["PATH", "PROVIDER", "NAME", "ADDRESS", "SEMAPHORE", "ARGS"];
    let starts: Vec<usize> = columns.iter().map(|c| header.find(c).unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{header}");
    for (line, probe) in lines[1..].iter().zip(&probes) {
        // Every cell starts under its heading.
        let cell = |i: usize| {
            let rest = &line[starts[i]..];
            rest.split("  ").next().unwrap().trim().to_string()
        };
        assert_eq!(cell(0), path.display().to_string());
        assert_eq!(cell(1), probe.provider);
        assert_eq!(cell(2), probe.name);
        assert_eq!(cell(3), format!("{:#x}", probe.address));
        match probe.semaphore {
            Some(s) => assert_eq!(cell(4), format!("{s:#x}")),
            None => assert_eq!(cell(4), "-"),
        }
        assert_eq!(line.get(starts[5]..).unwrap_or("").trim_end(), probe.args);
    }
}

#[test]
fn json_lines_carry_every_field() {
    if !tools() {
        return;
    }
    let path = &fixture(fixtures(), "x86_64_lib_O2").path;
    let lines = json_lines(&ok(&["--json", path.to_str().unwrap()]));
    let probes = ElfFile::open(path).unwrap().probes().unwrap();
    assert_eq!(lines.len(), probes.len());
    for (line, probe) in lines.iter().zip(&probes) {
        assert_eq!(line["path"], path.to_str().unwrap());
        assert_eq!(line["provider"], probe.provider.as_str());
        assert_eq!(line["name"], probe.name.as_str());
        assert_eq!(line["address"], probe.address);
        assert_eq!(line["file_offset"], probe.file_offset);
        assert_eq!(
            line["semaphore"],
            serde_json::to_value(probe.semaphore).unwrap()
        );
        assert_eq!(
            line["semaphore_offset"],
            serde_json::to_value(probe.semaphore_offset).unwrap()
        );
        assert_eq!(line["args"], probe.args.as_str());
        assert_eq!(
            line["arg_specs"],
            serde_json::to_value(probe.arg_specs.as_ref().unwrap()).unwrap()
        );
        assert_eq!(line["arg_error"], Value::Null);
        assert_eq!(line["signature"], Value::Null);
        assert!(line.get("pid").is_none());
        // Every spec is {size, signed, float, location}.
        for spec in line["arg_specs"].as_array().unwrap() {
            assert!(spec["size"].is_u64() && spec["signed"].is_boolean());
            assert!(spec["location"].is_object());
        }
    }
    // The guarded probe's semaphore and its file offset.
    let guarded = lines.iter().find(|l| l["name"] == "guarded").unwrap();
    assert!(guarded["semaphore"].is_u64() && guarded["semaphore_offset"].is_u64());
}

#[test]
fn unparseable_operands_are_listed_with_their_error() {
    if !tools() {
        return;
    }
    let path = &fixture(fixtures(), "x86_64_lib_O2_stripped").path;
    let lines = json_lines(&ok(&["--json", path.to_str().unwrap()]));
    let counter = lines.iter().find(|l| l["name"] == "counter").unwrap();
    assert_eq!(counter["arg_specs"], Value::Null);
    assert_eq!(
        counter["arg_error"],
        "probe sdt_lib:counter: argument 0 `-4@counter(%rip)`: symbol `counter` is not in the file's symbol tables"
    );
    let call = lines.iter().find(|l| l["name"] == "call").unwrap();
    assert!(call["arg_specs"].is_array());
}

#[test]
fn patterns_select_probes() {
    if !tools() {
        return;
    }
    let fixtures = fixtures();
    let args = fixture(fixtures, "x86_64_args_O0")
        .path
        .to_str()
        .unwrap()
        .to_string();
    let lib = fixture(fixtures, "x86_64_lib_O0")
        .path
        .to_str()
        .unwrap()
        .to_string();
    let names = |args: &[&str]| -> Vec<String> {
        json_lines(&ok(args))
            .iter()
            .map(usdt_interop_tests::json_probe_name)
            .collect()
    };
    let mut values = names(&["--json", &args, "sdt_args:*_values"]);
    values.sort();
    assert_eq!(
        values,
        [
            "sdt_args:max_values",
            "sdt_args:min_values",
            "sdt_args:small_values"
        ]
    );
    // A bare name matches in any provider, across several files.
    let mut guarded = names(&["--json", &args, &lib, "guarded"]);
    guarded.sort();
    assert_eq!(guarded, ["sdt_args:guarded", "sdt_lib:guarded"]);
    assert_eq!(names(&["--json", "sdt_lib:c?ll", &lib]), ["sdt_lib:call"]);
    assert_eq!(names(&["--json", &args, "*:no_*"]), ["sdt_args:no_args"]);
    // Every probe of both files without a pattern.
    assert_eq!(names(&["--json", &args, &lib]).len(), 12 + 3);
}

#[test]
fn typed_signatures_show_in_the_table() {
    let text = ok(&[CATALOG, "store:*"]);
    assert!(
        text.lines().any(|line| line.contains("order_placed")
            && line.ends_with("(order_id: u64, customer: &str, total_cents: i64)")),
        "{text}"
    );
    let lines = json_lines(&ok(&["--json", CATALOG, "store:order_json"]));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["signature_text"], "(order_id: u64, order: json)");
    assert_eq!(lines[0]["signature"]["guarded"], true);
    assert_eq!(lines[0]["signature"]["args"][1]["kind"], "json");
    assert_eq!(lines[0]["signature"]["args"][1]["name"], "order");
}

#[test]
fn pid_lists_every_module_with_runtime_addresses() {
    if !tools() {
        return;
    }
    let main = &fixture(fixtures(), "x86_64_lib_main_O2").path;
    let child = start_looping(main, "libsdt_lib.so");
    let pid = child.pid();
    let pid_text = pid.to_string();
    let json = ok(&["--pid", &pid_text, "--json"]);
    let table = ok(&["-p", &pid_text, "sdt_lib:*"]);
    let modules = Process::open(pid).unwrap().modules().unwrap();
    drop(child);

    let lines = json_lines(&json);
    let expected: usize = modules.iter().map(|m| m.probes.len()).sum();
    assert_eq!(lines.len(), expected);
    assert!(lines.len() >= 4);
    for line in &lines {
        let module = modules
            .iter()
            .find(|m| m.path == Path::new(line["path"].as_str().unwrap()))
            .unwrap();
        assert_eq!(line["pid"], pid);
        assert_eq!(line["bias"], module.bias);
        let address = line["address"].as_u64().unwrap();
        assert_eq!(line["runtime_address"], address.wrapping_add(module.bias));
    }
    let header = table.lines().next().unwrap();
    assert!(header.contains("RUNTIME"), "{header}");
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
    // The semaphore column shows the runtime address, as RUNTIME does.
    let sem_column = header.find("RUNTIME_SEMAPHORE").expect(header);
    let library = modules
        .iter()
        .find(|m| {
            m.probes
                .iter()
                .any(|p| p.name == "guarded" && p.provider == "sdt_lib")
        })
        .unwrap();
    let guarded = library.probes.iter().find(|p| p.name == "guarded").unwrap();
    let row = table.lines().find(|l| l.contains(" guarded ")).unwrap();
    let cell = row[sem_column..].split_whitespace().next().unwrap();
    assert_eq!(
        cell,
        format!("{:#x}", library.runtime_semaphore(guarded).unwrap())
    );
    assert_ne!(library.bias, 0);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    if !tools() {
        return;
    }
    let args = fixture(fixtures(), "x86_64_args_O2")
        .path
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fails(&["/nonexistent/file"], 2),
        "usdt: /nonexistent/file: No such file or directory (os error 2)"
    );
    let text = std::env::temp_dir().join(format!("usdt-list-text-{}", std::process::id()));
    std::fs::write(&text, "not an ELF file\n").unwrap();
    let text_arg = text.to_str().unwrap();
    assert_eq!(
        fails(&[text_arg], 2),
        format!("usdt: {text_arg}: not an ELF file")
    );
    let _ = std::fs::remove_file(&text);
    assert_eq!(fails(&["/"], 2), "usdt: /: not a regular file");
    assert_eq!(
        fails(&[&args, "nothing:here*"], 2),
        format!("usdt: no probe matches `nothing:here*` in {args}")
    );
    assert!(fails(&[&args, "a:b:c"], 2).contains("more than one `:`"));
    assert!(fails(&[&args, "one", "two"], 2).contains("only one PATTERN"));
    assert_eq!(
        fails(&[], 2),
        "usdt: nothing to list: give one or more PATHs or --pid PID"
    );
    assert!(fails(&["missing_file"], 2).contains("`missing_file` is not a file"));
    assert_eq!(
        fails(&["--pid", "4294967295"], 2),
        "usdt: process 4294967295 does not exist"
    );
    assert!(fails(&["--pid", "1", &args], 2).contains("not both"));
    // Usage errors come from the argument parser, with status 2 too.
    assert!(fails(&["--no-such-flag"], 2).contains("--no-such-flag"));
    assert!(fails(&["--pid", "x"], 2).contains("invalid value"));
    // A file without probes lists nothing, successfully: no JSON lines, and
    // in text no table header alone but a note on stderr.
    assert_eq!(ok(&["--json", "/bin/ls"]), "");
    let text = list(&["/bin/ls"]);
    assert!(text.status.success(), "{text:?}");
    assert!(text.stdout.is_empty(), "{}", stdout(&text));
    assert_eq!(
        String::from_utf8_lossy(&text.stderr),
        "usdt: no probes in /bin/ls\n"
    );
}

#[test]
fn a_closed_pipe_is_not_a_failure() {
    let mut child = usdt()
        .args(["list", "--json", CATALOG])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn unparseable_operands_are_marked_in_the_table() {
    if !tools() {
        return;
    }
    let path = fixture(fixtures(), "x86_64_lib_O2_stripped")
        .path
        .to_str()
        .unwrap()
        .to_string();
    let output = list(&[&path]);
    assert!(output.status.success(), "{output:?}");
    let table = stdout(&output);
    let row = table.lines().find(|l| l.contains(" counter ")).unwrap();
    assert!(row.ends_with("-4@counter(%rip) (unparsed)"), "{row}");
    let call = table.lines().find(|l| l.contains(" call ")).unwrap();
    assert!(!call.contains("unparsed"), "{call}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "usdt: warning: {path}: probe sdt_lib:counter: argument 0 `-4@counter(%rip)`: symbol `counter` is not in the file's symbol tables\n"
        )
    );
}

#[test]
fn bad_notes_are_skipped_with_a_warning() {
    if !tools() {
        return;
    }
    let f = fixture(fixtures(), "x86_64_args_O2");
    let dir = usdt_interop_tests::scratch_dir("list_cli_bad_notes");
    let bad = dir.join("two_bad_notes");
    std::fs::write(&bad, with_two_bad_notes(f)).unwrap();
    let bad = bad.to_str().unwrap();
    let output = list(&["--json", bad]);
    assert!(output.status.success(), "{output:?}");
    let names: Vec<String> = json_lines(&stdout(&output))
        .iter()
        .map(usdt_interop_tests::json_probe_name)
        .collect();
    assert_eq!(names.len(), 12 - 2, "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "sdt_args:stack" || n == "sdt_args:guarded")
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "usdt: warning: skipped: {bad}: .note.stapsdt at file offset "
        )) && warnings[0].ends_with("the provider string is not UTF-8"),
        "{stderr}"
    );
    assert_eq!(
        warnings[1],
        format!(
            "usdt: warning: skipped: {bad}: the semaphore of probe sdt_args:guarded at 0xdead0000 is outside every loadable segment"
        )
    );
    // A file whose every note is bad is bad input: the error names the
    // first bad note, a warning each of the others.
    let bytes = edit_notes(&f.path, |_, descriptor| descriptor[24] = 0xff);
    let all_bad = dir.join("all_bad_notes");
    std::fs::write(&all_bad, bytes).unwrap();
    let all_bad = all_bad.to_str().unwrap();
    let output = list(&[all_bad]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    let (error, warnings) = stderr
        .lines()
        .collect::<Vec<_>>()
        .split_last()
        .map(|(e, w)| (e.to_string(), w.len()))
        .unwrap();
    assert_eq!(warnings, 12 - 1, "{stderr}");
    assert!(
        error.starts_with(&format!("usdt: {all_bad}: "))
            && error.ends_with("the provider string is not UTF-8"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("the provider string is not UTF-8").count(),
        12,
        "{stderr}"
    );
}

#[test]
fn a_fifo_is_an_error_not_a_hang() {
    if !require_tool(TEST, "mkfifo") {
        return;
    }
    let dir = usdt_interop_tests::scratch_dir("list_cli_fifo");
    let fifo = dir.join("fifo");
    usdt_interop_tests::run(Command::new("mkfifo").arg(&fifo));
    let mut child = usdt()
        .arg("list")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("usdt list on a FIFO did not return");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("usdt: {}: not a regular file\n", fifo.display())
    );
}
