//! `cargo xtask bench-probes [ROUNDS]`: the untraced cost per probe hit of
//! usdt-runtime's probes against the `probe` and `usdt` crates' probes, in
//! the same run (`benches/probe-cost`).
//!
//! Runs `cargo bench -p usdt-bench --bench untraced` with every loop aligned
//! to a 64-byte boundary (`-C llvm-args=-align-loops=64`): the measured
//! loops take about one cycle per iteration, and where the linker happens
//! to place them (across a cache-line boundary or not) otherwise changes a
//! loop's speed by up to twice, which would measure placement luck instead
//! of the probes. The build goes to its own target directory, since the
//! flag changes every crate's code.

use crate::deps;
use std::path::Path;
use std::process::Command;

/// Runs the benchmark; `args` may hold the number of rounds.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask lives inside the workspace")?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root)
        .args(["bench", "-p", "usdt-bench", "--bench", "untraced"])
        .env("RUSTFLAGS", "-C llvm-args=-align-loops=64")
        .env("CARGO_TARGET_DIR", root.join("target").join("bench-probes"));
    match args {
        [] => {}
        [rounds] => {
            let rounds: u32 = rounds
                .parse()
                .map_err(|_| format!("bench-probes: ROUNDS must be a number, not `{rounds}`"))?;
            cmd.env("ROUNDS", rounds.to_string());
        }
        _ => return Err("usage: cargo xtask bench-probes [ROUNDS]".to_string()),
    }
    deps::run(&mut cmd)
}
