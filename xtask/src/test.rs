//! `cargo xtask test`: the whole test suite, after installing what it needs.

use crate::deps;
use std::process::Command;

/// Installs the test dependencies and runs every test in the workspace.
/// Extra arguments are passed to `cargo test`.
pub(crate) fn run(extra: &[String]) -> Result<(), String> {
    deps::apt_install(deps::TEST_PACKAGES)?;
    deps::rustup_target("aarch64-unknown-linux-gnu")?;
    // Programs for targets without USDT support are built with -Z build-std.
    deps::nightly_rust_src()?;
    deps::run(
        Command::new(env!("CARGO"))
            .args(["test", "--workspace", "--locked"])
            .args(extra),
    )?;
    // usdt-aya-ebpf, a library for BPF crates, is a workspace of its own;
    // its documentation's example program compiles here too.
    let manifest = deps::workspace_root().join("usdt-aya-ebpf/Cargo.toml");
    deps::run(
        Command::new(env!("CARGO"))
            .args(["test", "--doc", "--locked", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(deps::workspace_root().join("target/usdt-aya-ebpf")),
    )
}
