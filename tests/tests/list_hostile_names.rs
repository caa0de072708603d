//! Hostile names: the provider and probe names of a file's notes and the
//! argument names of its type records come from the file, which may hold a
//! newline or an escape sequence. Such a note or record is left out with a
//! warning (no tool names such probes), the rest is listed and traced, and
//! nothing a file holds reaches the terminal as a control character.

use crate::CATALOG;
use std::path::{Path, PathBuf};
use usdt_interop_tests::cli::{assert_success, run_usdt};
use usdt_interop_tests::elf::{edit_notes, read, section, write_copy};
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::build_c;

/// sdt_args with a newline in the name of its `stack` note and an escape
/// character in the provider of its `globals` note, in a scratch directory
/// named `test`.
fn hostile_sdt_args(test: &str) -> PathBuf {
    let binary = build_c(test, "sdt_args.c", &["-O2"]);
    let mut edited = 0;
    let bytes = edit_notes(&binary, |note, descriptor| {
        let provider = 24;
        let name = provider + note.provider.len() + 1;
        match note.name {
            "stack" => descriptor[name] = b'\n',
            "globals" => descriptor[provider + 3] = 0x1b,
            _ => return,
        }
        edited += 1;
    });
    assert_eq!(edited, 2);
    write_copy(&binary, "hostile_sdt_args", &bytes)
}

/// The probe catalog with a newline in the argument name `customer` of
/// `store:order_placed`'s type record.
fn hostile_catalog(test: &str) -> PathBuf {
    let mut bytes = read(Path::new(CATALOG));
    let (start, end) = {
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        let types = section(&elf, &bytes, ".usdt.types").expect("a .usdt.types section");
        (
            types.offset as usize,
            types.offset as usize + types.data.len(),
        )
    };
    let at = bytes[start..end]
        .windows(9)
        .position(|w| w == b"customer\0")
        .expect("the argument name customer");
    bytes[start + at + 1] = b'\n';
    let dir = usdt_interop_tests::scratch_dir(test);
    write_copy(&dir.join("x"), "hostile_catalog", &bytes)
}

/// Asserts that `text` holds no control character but line ends.
fn assert_no_controls(text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a control character in: {text:?}"
    );
}

/// The `usdt: warning: ` lines of `stderr`.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("usdt: warning: "))
        .collect()
}

#[test]
fn notes_with_hostile_names_are_skipped_and_never_printed() {
    let copy = hostile_sdt_args("list_hostile_notes");
    let path = copy.display().to_string();
    for args in [vec!["list", &path], vec!["list", "--json", &path]] {
        let output = run_usdt(&args);
        let stderr = assert_success(&output);
        assert_no_controls(&output.stdout);
        assert_no_controls(&output.stderr);
        let warnings = warnings(&stderr);
        assert_eq!(warnings.len(), 2, "{stderr}");
        assert!(
            warnings[0].starts_with(&format!("usdt: warning: skipped: {path}: ")),
            "{stderr}"
        );
        let all = warnings.join("\n");
        assert!(
            all.contains(r#"the name "\ntack" is not a probe name"#),
            "{all}"
        );
        assert!(
            all.contains(r#"the provider "sdt\eargs" is not a probe name"#),
            "{all}"
        );
        // The probes, without the file's path (which may hold anything).
        let listing = String::from_utf8_lossy(&output.stdout).replace(path.as_str(), "");
        assert!(listing.contains("iteration"), "{listing}");
        assert!(!listing.contains("tack") && !listing.contains("globals"));
    }
}

#[test]
fn type_records_with_hostile_argument_names_are_skipped() {
    let copy = hostile_catalog("list_hostile_types");
    let output = run_usdt(&["list", &copy.display().to_string(), "store:order_placed"]);
    let stderr = assert_success(&output);
    assert_no_controls(&output.stdout);
    assert_no_controls(&output.stderr);
    let warnings = warnings(&stderr);
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(r#"the argument name "c\nstomer" is not a name the macros write"#),
        "{stderr}"
    );
    // The site is still listed, with its raw operands.
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains("order_placed"), "{listing}");
    assert!(!listing.contains("customer"), "{listing}");
}

#[test]
fn traces_of_hostile_files_print_no_control_character() {
    if !require_bpf("traces_of_hostile_files_print_no_control_character") {
        return;
    }
    let copy = hostile_sdt_args("trace_hostile_notes");
    let command = format!("{} 3", copy.display());
    // Not following libraries: no warning that it cannot (before 5.15).
    let output = run_usdt(&["trace", "--no-follow", "-c", &command, "sdt_args:*"]);
    let stderr = assert_success(&output);
    assert_no_controls(&output.stdout);
    assert_no_controls(&output.stderr);
    assert_eq!(warnings(&stderr).len(), 2, "{stderr}");
    // The program prints nothing: every line is an event, and the summary
    // counts them.
    let events = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(
        events,
        String::from_utf8_lossy(&output.stdout)
            .matches(" sdt_args:")
            .count()
    );
    assert!(
        stderr.contains(&format!("usdt: {events} events, 0 dropped")),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .matches(" sdt_args:iteration ")
            .count(),
        3
    );

    let catalog = hostile_catalog("trace_hostile_types");
    let output = run_usdt(&[
        "trace",
        "--no-follow",
        "-c",
        &catalog.display().to_string(),
        "store:order_placed",
    ]);
    let stderr = assert_success(&output);
    assert_no_controls(&output.stdout);
    assert_no_controls(&output.stderr);
    assert_eq!(warnings(&stderr).len(), 1, "{stderr}");
    let events: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.contains(" store:order_placed "))
        .collect();
    // Untyped: the note's arguments, as integers.
    assert_eq!(events.len(), 1, "{stderr}");
    assert!(events[0].contains(" arg0=42 "), "{}", events[0]);
}
