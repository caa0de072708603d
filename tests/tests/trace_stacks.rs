//! `usdt trace --stack`: the user stack of each hit, walked by the kernel
//! and symbolized in user space, on a C program whose call chain is known
//! (tests/fixtures/stack_chain.c: main -> outer -> middle -> inner, the
//! probe in inner). The innermost frame is always the probe site, with its
//! function, file and line; built with frame pointers the chain is exact,
//! built without them it is not whole. `usdt trace --hits --by stack`
//! counts hits per stack on tests/fixtures/stack_tree.c (three chains
//! fired 3, 2 and 1 times), and writes them folded and as a flame graph.
//! The same chain in Rust (the `stack_chain` crate of the macros_variants
//! fixture workspace, firing this SDK's `probe!`) is checked the same way,
//! its frames named by their demangled Rust paths.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::macros::{FixtureWorkspace, cargo};
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{fixtures_dir, require_bpf, run};

/// The 1-based line of the probe in the C fixture's source.
fn probe_line() -> u64 {
    marked_line(&fixtures_dir().join("stack_chain.c"))
}

/// The 1-based line of `source` marked as the probe's line.
fn marked_line(source: &Path) -> u64 {
    let text = std::fs::read_to_string(source).unwrap();
    let index = text
        .lines()
        .position(|line| line.contains("the probe's line"))
        .expect("the probe's line is marked");
    index as u64 + 1
}

/// The JSON events of `usdt trace --json --stack -c BINARY chain:inner`.
fn traced(binary: &Path) -> Vec<serde_json::Value> {
    traced_probe(binary, "chain:inner")
}

/// The JSON events of `usdt trace --json --stack -c BINARY PROBE`: three
/// hits.
fn traced_probe(binary: &Path, probe: &str) -> Vec<serde_json::Value> {
    let command = binary.display().to_string();
    let output = run_usdt(&["trace", "--json", "--stack", "-c", &command, probe]);
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
    check_innermost_in(event, "inner", "stack_chain.c", line);
}

/// Checks the innermost frame: the probe site in function `symbol`, in a
/// file whose path ends with `file`, at `line`.
fn check_innermost_in(event: &serde_json::Value, symbol: &str, file: &str, line: u64) {
    let frame = &event["stack"][0];
    assert_eq!(frame["symbol"], symbol, "{event}");
    assert!(frame["file"].as_str().unwrap().ends_with(file), "{event}");
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

/// The Rust chain's `stack_chain` binary built with frame pointers and
/// without them, once per test run (both in one target directory: the
/// build with them names the host's target, so that the build scripts and
/// proc macros, which are built without those flags, serve both).
fn rust_chains() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let workspace = FixtureWorkspace::lock();
        let target_dir = workspace.target_dir("stack-chain");
        let host = run(Command::new("rustc").arg("-vV"))
            .lines()
            .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc's host");
        let out = usdt_interop_tests::scratch_dir("stack_rust");
        let build = |target: Option<&str>, rustflags: &str, name: &str| {
            let mut cmd = workspace.build(cargo(), &target_dir);
            cmd.args(["--offline", "-p", "stack_chain"])
                .args(["--config", "profile.release.debug=\"limited\""])
                .args(["--config", &format!("build.rustflags={rustflags}")]);
            if let Some(target) = target {
                cmd.args(["--target", target]);
            }
            run(&mut cmd);
            let built = match target {
                Some(target) => target_dir.join(target),
                None => target_dir.clone(),
            };
            let binary = out.join(name);
            std::fs::copy(built.join("release").join("stack_chain"), &binary).unwrap();
            binary
        };
        (
            build(
                Some(&host),
                r#"["-C", "force-frame-pointers=yes"]"#,
                "stack_chain_fp",
            ),
            build(None, "[]", "stack_chain_no_fp"),
        )
    })
}

/// The three events of the Rust chain's `binary` traced with `--stack`,
/// each checked: its argument and its innermost frame, the probe site in
/// `stack_chain::inner` at its line.
fn rust_events(binary: &Path) -> Vec<serde_json::Value> {
    let line = marked_line(&fixtures_dir().join(RUST_SOURCE));
    let events = traced_probe(binary, "rust_chain:inner");
    for (n, event) in events.iter().enumerate() {
        assert_eq!(arg_texts(event), [n.to_string()]);
        check_innermost_in(event, "stack_chain::inner", RUST_FILE, line);
    }
    events
}

/// The Rust chain's source, under the fixtures, and the end of its path
/// as its debug information gives it.
const RUST_SOURCE: &str = "macros_variants/stack_chain/src/main.rs";
const RUST_FILE: &str = "stack_chain/src/main.rs";

#[test]
fn rust_frame_pointers_give_the_whole_chain() {
    if !require_bpf("rust_frame_pointers_give_the_whole_chain") {
        return;
    }
    for event in &rust_events(&rust_chains().0) {
        assert_eq!(
            symbols(event)[..4],
            [
                "stack_chain::inner",
                "stack_chain::middle",
                "stack_chain::outer",
                "stack_chain::main"
            ],
            "{event}"
        );
        // Each caller's frame is in the chain's source, at a line.
        for frame in &event["stack"].as_array().unwrap()[1..4] {
            assert!(
                frame["file"]
                    .as_str()
                    .is_some_and(|file| file.ends_with(RUST_FILE)),
                "{frame}"
            );
            assert!(frame["line"].as_u64().is_some(), "{frame}");
        }
    }
}

#[test]
fn rust_without_frame_pointers_the_innermost_frame_is_exact() {
    if !require_bpf("rust_without_frame_pointers_the_innermost_frame_is_exact") {
        return;
    }
    // The innermost frame alone is sure: rust_events checks it.
    rust_events(&rust_chains().1);
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

/// `usdt trace --hits --by stack` on tests/fixtures/stack_tree.c (built
/// with frame pointers): `tree:leaf` fires from main -> left -> leaf three
/// times, main -> right -> leaf twice and main -> leaf once.
fn counted(dir: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let binary = build_c(dir, "stack_tree.c", &["-O0", "-g"]);
    let command = binary.display().to_string();
    let mut args = vec!["trace", "--hits", "--by", "stack"];
    args.extend_from_slice(extra);
    args.extend(["-c", &command, "tree:leaf"]);
    let output = run_usdt(&args);
    let stderr = assert_success(&output);
    assert!(stderr.contains("no hit lost"), "{stderr}");
    (output, binary)
}

/// The known chains, innermost first, and their counts.
const CHAINS: [(&[&str], u64); 3] = [
    (&["leaf", "left", "main"], 3),
    (&["leaf", "right", "main"], 2),
    (&["leaf", "main"], 1),
];

#[test]
fn hits_are_counted_per_stack() {
    if !require_bpf("hits_are_counted_per_stack") {
        return;
    }
    let (output, _) = counted("stack_count_json", &["--json"]);
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert_eq!(
        (&report["by"], &report["name"]),
        (&"stack".into(), &"leaf".into())
    );
    let counts = report["counts"].as_array().unwrap();
    // One row per chain, highest first, each with its count exactly; the
    // frames past main are the C library's.
    assert_eq!(counts.len(), CHAINS.len(), "{report}");
    for (row, (chain, count)) in counts.iter().zip(CHAINS) {
        assert_eq!(row["count"], count, "{row}");
        assert!(row.get("key").is_none(), "{row}");
        let symbols = symbols(row);
        assert_eq!(symbols[..chain.len()], *chain, "{row}");
        let leaf = &row["stack"][0];
        assert!(
            leaf["file"].as_str().unwrap().ends_with("stack_tree.c"),
            "{row}"
        );
    }
    // Every chain meets the probe at one site.
    let sites: std::collections::HashSet<u64> = counts
        .iter()
        .map(|row| row["stack"][0]["address"].as_u64().unwrap())
        .collect();
    assert_eq!(sites.len(), 1, "{report}");

    let (output, _) = counted("stack_count_text", &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        ["tree:leaf hits by stack", "HITS  STACK"],
        "{text}"
    );
    let rows: Vec<&&str> = lines.iter().filter(|l| !l.starts_with("     ")).collect();
    assert!(
        rows[2].starts_with("   3  #0  0x") && rows[2].contains(" leaf ("),
        "{text}"
    );
    assert!(rows[3].starts_with("   2  #0  0x"), "{text}");
    assert!(rows[4].starts_with("   1  #0  0x"), "{text}");
    assert!(
        lines[3].trim_start().starts_with("#1  0x") && lines[3].contains(" left ("),
        "{text}"
    );
}

#[test]
fn counted_stacks_fold_and_draw_a_flame_graph() {
    if !require_bpf("counted_stacks_fold_and_draw_a_flame_graph") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("usdt-folded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let folded = dir.join("stacks.folded");
    let svg = dir.join("stacks.svg");
    let (folded_arg, svg_arg) = (folded.display().to_string(), svg.display().to_string());
    counted(
        "stack_count_folded",
        &["--folded", &folded_arg, "--flamegraph", &svg_arg],
    );

    // Outermost first: whatever the C library shows above main, then the
    // chain; each line once, with its count.
    let text = std::fs::read_to_string(&folded).unwrap();
    let mut found: Vec<(String, u64)> = text
        .lines()
        .map(|line| {
            let (stack, count) = line.rsplit_once(' ').expect("STACK COUNT");
            let frames: Vec<&str> = stack.split(';').collect();
            let main = frames.iter().position(|f| *f == "main").expect("main");
            (frames[main..].join(";"), count.parse().unwrap())
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("main;leaf".to_owned(), 1),
            ("main;left;leaf".to_owned(), 3),
            ("main;right;leaf".to_owned(), 2),
        ],
        "{text}"
    );

    // The flame graph: well-formed XML, an <svg> root, a frame per
    // function with its hits.
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let mut reader = quick_xml::Reader::from_str(&drawn);
    let (mut root, mut titles, mut in_title) = (None, Vec::new(), false);
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}"))
        {
            quick_xml::events::Event::Start(tag) => {
                let name = String::from_utf8(tag.name().as_ref().to_vec()).unwrap();
                in_title = name == "title";
                root.get_or_insert(name);
            }
            quick_xml::events::Event::Text(text) if in_title => {
                titles.push(text.decode().unwrap().into_owned());
            }
            quick_xml::events::Event::End(_) => in_title = false,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    for expected in [
        "main (6 hits, 100.00%)",
        "left (3 hits, 50.00%)",
        "right (2 hits, 33.33%)",
        "leaf (1 hits, 16.67%)",
    ] {
        assert!(
            titles.iter().any(|t| t == expected),
            "{expected}: {titles:?}"
        );
    }
    // Nothing but the two files is left beside them.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["stacks.folded", "stacks.svg"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folded_files_are_for_counted_stacks() {
    assert_trace_usage_error(
        &["--hits", "--by", "pid", "--folded", "f", "/bin/true:p:n"],
        "--folded and --flamegraph write the stacks that --hits --by stack counts",
    );
}
