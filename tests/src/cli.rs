//! The `usdt` command: built from this checkout on first use, run with
//! arguments, its exit status and one-line messages checked.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The environment variable naming an already built `usdt` command, which
/// the tests then use instead of building it (`cargo xtask vm-test` builds
/// it first: inside a virtual machine cargo takes minutes to find it
/// fresh).
pub const USDT_BINARY_ENV: &str = "USDT_TEST_BINARY";

/// The `usdt` command, built once per test binary (it belongs to another
/// package, so cargo does not hand its path to these tests) with
/// `cargo build --package usdt-cli --bin usdt`, or the one
/// [`USDT_BINARY_ENV`] names.
pub fn usdt() -> Command {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    let path = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os(USDT_BINARY_ENV) {
            return PathBuf::from(path);
        }
        let out = Command::new(env!("CARGO"))
            .args(["build", "--package", "usdt-cli", "--bin", "usdt"])
            .args(["--message-format", "json-render-diagnostics"])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "building the usdt binary failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["name"] == "usdt")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the usdt executable")
    });
    Command::new(path)
}

/// Runs `usdt` with `args` and returns its output (stdin closed).
pub fn run_usdt(args: &[&str]) -> Output {
    usdt()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run usdt")
}

/// Asserts a successful run and returns its standard error.
pub fn assert_success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "usdt failed with {}: {stderr}",
        output.status
    );
    stderr
}

/// Asserts exit status `code` and one line on stderr starting with
/// `usdt: ` and containing `text`; returns that line.
pub fn assert_failure(output: &Output, code: i32, text: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("usdt: "), "{stderr}");
    assert!(stderr.contains(text), "expected `{text}` in: {stderr}");
    assert!(output.stdout.is_empty(), "output despite the error");
    stderr
}
