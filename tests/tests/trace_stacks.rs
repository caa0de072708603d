//! `usdt trace --stack`: the user stack of each hit, walked by the kernel
//! and symbolized in user space, on a C program whose call chain is known
//! (tests/fixtures/stack_chain.c: main -> outer -> middle -> inner, the
//! probe in inner). The innermost frame is always the probe site, with its
//! function, file and line; built with frame pointers the chain is exact,
//! built without them it is not whole.

use std::path::Path;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{fixtures_dir, require_bpf};

/// The 1-based line of the probe in the fixture's source.
fn probe_line() -> u64 {
    let source = std::fs::read_to_string(fixtures_dir().join("stack_chain.c")).unwrap();
    let index = source
        .lines()
        .position(|line| line.contains("/* the probe's line */"))
        .expect("the probe's line is marked");
    index as u64 + 1
}

/// The JSON events of `usdt trace --json --stack -c BINARY chain:inner`.
fn traced(binary: &Path) -> Vec<serde_json::Value> {
    let command = binary.display().to_string();
    let output = run_usdt(&["trace", "--json", "--stack", "-c", &command, "chain:inner"]);
    let stderr = assert_success(&output);
    assert!(stderr.contains("command exited with status 0"), "{stderr}");
    let events = json_events(&output);
    assert_eq!(events.len(), 3, "{stderr}");
    events
}

/// The symbols of an event's stack, innermost first (`?` where unknown).
fn symbols(event: &serde_json::Value) -> Vec<String> {
    event["stack"]
        .as_array()
        .expect("a stack")
        .iter()
        .map(|frame| frame["symbol"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Checks the innermost frame: the probe site in `inner`, at its line.
fn check_innermost(event: &serde_json::Value, line: u64) {
    let frame = &event["stack"][0];
    assert_eq!(frame["symbol"], "inner", "{event}");
    assert!(
        frame["file"].as_str().unwrap().ends_with("stack_chain.c"),
        "{event}"
    );
    assert_eq!(frame["line"], line, "{event}");
    // The runtime address of the site: its link-time address plus a
    // page-aligned load bias.
    let runtime = frame["address"].as_u64().unwrap();
    let link = event["address"].as_u64().unwrap();
    assert_eq!(runtime & 0xfff, link & 0xfff, "{event}");
}

#[test]
fn frame_pointers_give_the_whole_chain() {
    if !require_bpf("frame_pointers_give_the_whole_chain") {
        return;
    }
    let line = probe_line();
    let dir_flags: [(&str, &[&str]); 2] = [
        ("stack_fp_o0", &["-O0", "-g"]),
        ("stack_fp_o2", &["-O2", "-g", "-fno-omit-frame-pointer"]),
    ];
    for (dir, flags) in dir_flags {
        let binary = build_c(dir, "stack_chain.c", flags);
        for (n, event) in traced(&binary).iter().enumerate() {
            assert_eq!(arg_texts(event), [n.to_string()]);
            check_innermost(event, line);
            let symbols = symbols(event);
            assert_eq!(
                symbols[..4],
                ["inner", "middle", "outer", "main"],
                "{flags:?}: {event}"
            );
            // Each caller's frame is at the line of its call.
            for frame in &event["stack"].as_array().unwrap()[1..4] {
                assert!(frame["line"].as_u64().is_some(), "{frame}");
            }
        }
    }
}

#[test]
fn without_frame_pointers_only_the_innermost_frame_is_sure() {
    if !require_bpf("without_frame_pointers_only_the_innermost_frame_is_sure") {
        return;
    }
    let line = probe_line();
    let binary = build_c(
        "stack_no_fp",
        "stack_chain.c",
        &["-O2", "-g", "-fomit-frame-pointer"],
    );
    for event in traced(&binary) {
        check_innermost(&event, line);
        let symbols = symbols(&event);
        assert_ne!(
            symbols.get(..4),
            Some(&["inner", "middle", "outer", "main"].map(String::from)[..]),
            "{event}"
        );
    }
}

#[test]
fn text_events_carry_their_frames_under_them() {
    if !require_bpf("text_events_carry_their_frames_under_them") {
        return;
    }
    let binary = build_c("stack_text", "stack_chain.c", &["-O0", "-g"]);
    let command = binary.display().to_string();
    let output = run_usdt(&["trace", "--stack", "-c", &command, "chain:inner"]);
    assert_success(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains("chain:inner arg0=0"))
        .unwrap_or_else(|| panic!("{text}"));
    let line = probe_line();
    assert!(lines[first + 1].starts_with("    #0  0x"), "{text}");
    assert!(
        lines[first + 1].ends_with(&format!(
            " inner ({}:{line})",
            fixtures_dir().join("stack_chain.c").display()
        )),
        "{text}"
    );
    assert!(lines[first + 2].contains(" middle ("), "{text}");
    assert!(lines[first + 3].contains(" outer ("), "{text}");
    assert!(lines[first + 4].contains(" main ("), "{text}");
}

#[test]
fn stacks_are_for_streamed_hits() {
    assert_trace_usage_error(
        &["--stack", "--hits", "/bin/true:p:n"],
        "--stack prints the stack of each streamed hit",
    );
}
