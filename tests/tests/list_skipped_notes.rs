//! Bad notes never vanish silently: a note whose site lies outside the
//! file's code is left out with a warning by `usdt list` and `usdt trace`,
//! and when every note of a file is bad, both say why rather than only that
//! nothing matches. (A note the linker left for discarded code, before the
//! code, is left out silently: see `reader_discarded`.)

use std::path::PathBuf;
use std::process::Output;
use usdt_interop_tests::cli::{assert_success, run_usdt};
use usdt_interop_tests::elf::{edit_notes, write_copy};
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::build_c;

/// A pc past every segment of sdt_args.
const FAR: u64 = 0xdead_0000;

/// sdt_args, built in scratch directory `test`, with the pc of each note
/// `bad` picks moved to [`FAR`]; returns the copy and how many notes moved.
fn with_far_sites(test: &str, bad: impl Fn(&str) -> bool) -> (PathBuf, usize) {
    let binary = build_c(test, "sdt_args.c", &["-O2"]);
    let mut moved = 0;
    let bytes = edit_notes(&binary, |note, descriptor| {
        if bad(note.name) {
            descriptor[..8].copy_from_slice(&FAR.to_le_bytes());
            moved += 1;
        }
    });
    (write_copy(&binary, "far_sites", &bytes), moved)
}

/// Asserts exit status 2, nothing on standard output, and warnings on
/// stderr before one error line containing `text`; returns stderr.
fn assert_refused(output: &Output, text: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "output despite the error");
    let (last, warnings) = stderr
        .lines()
        .collect::<Vec<_>>()
        .split_last()
        .map(|(l, w)| (*l, w.to_vec()))
        .unwrap();
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("usdt: warning: skipped: ")),
        "{stderr}"
    );
    assert!(
        last.starts_with("usdt: ") && !last.starts_with("usdt: warning"),
        "{stderr}"
    );
    assert!(last.contains(text), "expected `{text}` in: {stderr}");
    stderr
}

/// The message about a site at [`FAR`], for probe `name`.
fn far(name: &str) -> String {
    format!("the site of probe sdt_args:{name} at {FAR:#x} is in no executable segment")
}

#[test]
fn a_site_outside_the_code_is_skipped_with_a_warning() {
    let (copy, moved) = with_far_sites("list_skipped_far_site", |name| name == "iteration");
    assert_eq!(moved, 1);
    let path = copy.display().to_string();
    let output = run_usdt(&["list", &path]);
    let stderr = assert_success(&output);
    assert_eq!(
        stderr,
        format!("usdt: warning: skipped: {path}: {}\n", far("iteration"))
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains(" string "), "{listing}");
    assert!(!listing.contains("iteration"), "{listing}");

    // Naming only the bad probe: the reason comes with the refusal.
    let output = run_usdt(&["list", &path, "sdt_args:iteration"]);
    let stderr = assert_refused(&output, "no probe matches `sdt_args:iteration`");
    assert!(stderr.contains(&far("iteration")), "{stderr}");
    let spec = format!("{path}:sdt_args:iteration");
    let output = run_usdt(&["trace", &spec]);
    let stderr = assert_refused(&output, "no probe matches `sdt_args:iteration`");
    assert!(stderr.contains(&far("iteration")), "{stderr}");
}

#[test]
fn a_file_whose_every_note_is_bad_says_why_in_both_commands() {
    let (copy, moved) = with_far_sites("list_skipped_every_note", |_| true);
    assert!(moved > 2, "sdt_args has {moved} notes");
    let path = copy.display().to_string();
    let every = |stderr: &str| {
        // Each note is named once, as the error or as a warning.
        for name in ["iteration", "string", "guarded"] {
            assert_eq!(stderr.matches(&far(name)).count(), 1, "{name}: {stderr}");
        }
        assert_eq!(
            stderr.matches("is in no executable segment").count(),
            moved,
            "{stderr}"
        );
    };
    let output = run_usdt(&["list", &path]);
    let stderr = assert_refused(&output, "is in no executable segment");
    every(&stderr);
    assert!(output.stdout.is_empty());

    let output = run_usdt(&["trace", &path]);
    let stderr = assert_refused(&output, "no probe matches `*:*`");
    every(&stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("; skipped: {path}: the site of probe ")),
        "{stderr}"
    );
}

#[test]
fn a_trace_warns_of_a_site_outside_the_code() {
    if !require_bpf("a_trace_warns_of_a_site_outside_the_code") {
        return;
    }
    let (copy, _) = with_far_sites("trace_skipped_far_site", |name| name == "iteration");
    let path = copy.display().to_string();
    let command = format!("{path} 2");
    let output = run_usdt(&["trace", "-c", &command, "sdt_args:*"]);
    let stderr = assert_success(&output);
    assert!(
        stderr.starts_with(&format!(
            "usdt: warning: skipped: {path}: {}\n",
            far("iteration")
        )),
        "{stderr}"
    );
    let events = String::from_utf8_lossy(&output.stdout);
    assert_eq!(events.matches(" sdt_args:string ").count(), 2, "{events}");
    assert!(!events.contains("sdt_args:iteration"), "{events}");
}
