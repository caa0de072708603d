//! `cargo xtask bench-reader [RUNS]`: how fast `usdt list` lists every
//! probe of the largest probe-carrying library on this machine, against
//! `readelf -n` on the same file, in the same run.
//!
//! Builds `usdt` in release mode, finds the largest shared library under
//! /usr/lib, /usr/lib64 and /lib with a `.note.stapsdt` section, then times
//! `usdt list FILE`, `usdt list --json FILE` and `readelf -n FILE`
//! (each writing to /dev/null) in interleaved rounds so that all three see
//! the same machine state. It prints, per command, the median wall-clock
//! time and the mean CPU time (user + system, from the children's times in
//! /proc/self/stat), each with its ratio to readelf's; on a busy machine
//! the wall-clock times mostly measure waiting for a CPU, the CPU times do
//! not.

use crate::deps;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_RUNS: usize = 300;
const ROOTS: &[&str] = &["/usr/lib", "/usr/lib64", "/lib"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Shared libraries (`*.so`, `*.so.N...`) under `dir`, without following
/// symbolic links.
fn libraries(dir: &Path, out: &mut Vec<(u64, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let path = entry.path();
        if metadata.is_dir() {
            libraries(&path, out);
        } else if metadata.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".so") || name.contains(".so.") {
                out.push((metadata.len(), path));
            }
        }
    }
}

/// Runs `usdt list`, `usdt list --json` and `readelf -n` on the largest
/// probe-carrying library `RUNS` times each (default 300).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let runs = match args {
        [] => DEFAULT_RUNS,
        [n] => n
            .parse()
            .map_err(|_| format!("bench-reader: `{n}` is not a number of runs"))?,
        _ => return Err("usage: cargo xtask bench-reader [RUNS]".into()),
    };
    deps::apt_install(&[("binutils", "/usr/bin/readelf")])?;
    let root = workspace_root();
    deps::run(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "usdt-cli",
        "--bin",
        "usdt",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let usdt = target.join("release/usdt");

    // The largest library whose listing is not empty.
    let mut candidates = Vec::new();
    for dir in ROOTS {
        libraries(Path::new(dir), &mut candidates);
    }
    candidates.sort_by(|a, b| b.cmp(a));
    candidates.dedup_by(|a, b| a.1 == b.1);
    let (size, library, probes) = candidates
        .iter()
        .find_map(|(size, path)| {
            let out = Command::new(&usdt)
                .arg("list")
                .arg("--json")
                .arg(path)
                .output()
                .ok()?;
            let probes = String::from_utf8_lossy(&out.stdout).lines().count();
            (out.status.success() && probes > 0).then(|| (*size, path.clone(), probes))
        })
        .ok_or("bench-reader: no shared library with probes under /usr/lib")?;
    let readelf_notes = deps::output(Command::new("readelf").arg("-n").arg(&library))?
        .matches("NT_STAPSDT")
        .count();
    if readelf_notes != probes {
        return Err(format!(
            "bench-reader: readelf lists {readelf_notes} probes in {}, usdt {probes}",
            library.display()
        ));
    }
    println!(
        "library: {} ({:.1} MiB, {probes} probes)",
        library.display(),
        size as f64 / (1 << 20) as f64
    );

    let commands: [(&str, Command); 3] = [
        ("usdt list", {
            let mut c = Command::new(&usdt);
            c.arg("list").arg(&library);
            c
        }),
        ("usdt list --json", {
            let mut c = Command::new(&usdt);
            c.args(["list", "--json"]).arg(&library);
            c
        }),
        ("readelf -n", {
            let mut c = Command::new("readelf");
            c.arg("-n").arg(&library);
            c
        }),
    ];
    let mut commands = commands;
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); commands.len()];
    let mut cpu_ticks = vec![0u64; commands.len()];
    let warmup = 10;
    for round in 0..warmup + runs {
        for (i, (name, command)) in commands.iter_mut().enumerate() {
            let ticks_before = children_cpu_ticks()?;
            let start = Instant::now();
            let status = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("bench-reader: cannot run {name}: {e}"))?;
            let elapsed = start.elapsed();
            if !status.success() {
                return Err(format!("bench-reader: {name} failed ({status})"));
            }
            if round >= warmup {
                times[i].push(elapsed);
                cpu_ticks[i] += children_cpu_ticks()? - ticks_before;
            }
        }
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let medians: Vec<Duration> = times.iter_mut().map(median).collect();
    let tick_ms = 1000.0 / clock_ticks_per_second() as f64;
    let cpu: Vec<f64> = cpu_ticks
        .iter()
        .map(|&t| t as f64 * tick_ms / runs as f64)
        .collect();
    let (readelf_wall, readelf_cpu) = (medians[2], cpu[2]);
    println!("runs: {runs} each, interleaved, after {warmup} warm-up rounds");
    println!("| command | median wall time | readelf / this | mean CPU time | readelf / this |");
    println!("| --- | --- | --- | --- | --- |");
    for (((name, _), median), cpu) in commands.iter().zip(&medians).zip(&cpu) {
        println!(
            "| `{name}` | {:.2} ms | {:.2} | {cpu:.2} ms | {:.2} |",
            median.as_secs_f64() * 1e3,
            readelf_wall.as_secs_f64() / median.as_secs_f64(),
            readelf_cpu / cpu,
        );
    }
    Ok(())
}

/// User plus system time of this process's waited-for children, in clock
/// ticks (fields 16 and 17 of /proc/self/stat). The kernel sums exact
/// times and truncates the total, so per-run differences average out
/// without bias over many runs.
pub(crate) fn children_cpu_ticks() -> Result<u64, String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').ok_or("bad /proc/self/stat")? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): cutime is field 16, cstime 17.
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| "bad /proc/self/stat".to_string())
    };
    Ok(field(16)? + field(17)?)
}

/// The kernel's USER_HZ, from `getconf CLK_TCK` (100 on Linux).
pub(crate) fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}
