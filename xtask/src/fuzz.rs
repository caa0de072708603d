//! `cargo xtask fuzz [SECONDS]`: runs each cargo-fuzz target of usdt-reader
//! (fuzz/) for a bounded time and reports the executions and the outcome.
//!
//! Installs cargo-fuzz if missing (it needs the nightly toolchain, which
//! must be installed), seeds each target's corpus from real probe data
//! (notes and argument strings of the C fixtures built with gcc, records of
//! the `.usdt.types` contract, small ELF files), then runs libFuzzer with
//! `-max_total_time`. A crash, a timeout (a hang) or a leak fails the
//! command, naming the target and the artifact libFuzzer saved.

use crate::deps;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The targets, with the longest input each is given.
const TARGETS: &[(&str, usize)] = &[
    ("notes", 4096),
    ("args", 512),
    ("types", 4096),
    ("elf", 65536),
];

/// Default seconds per target.
const DEFAULT_SECONDS: u64 = 60;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs every target for `SECONDS` (default 60) each.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => DEFAULT_SECONDS,
        [s] => s
            .parse()
            .map_err(|_| format!("fuzz: `{s}` is not a number of seconds"))?,
        _ => return Err("usage: cargo xtask fuzz [SECONDS]".into()),
    };
    let toolchains = deps::output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        return Err(
            "fuzz: cargo-fuzz needs the nightly toolchain (`rustup toolchain install nightly`)"
                .into(),
        );
    }
    let installed = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("xtask: installing cargo-fuzz");
        deps::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_dir = workspace_root().join("fuzz");
    seed(&fuzz_dir.join("corpus"))?;

    let mut report = Vec::new();
    for &(target, max_len) in TARGETS {
        eprintln!("xtask: fuzzing `{target}` for {seconds} s");
        let corpus = fuzz_dir.join("corpus").join(target);
        let output = Command::new("cargo")
            .current_dir(&fuzz_dir)
            .env_remove("CARGO_TARGET_DIR")
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-max_len={max_len}"))
            // An input that takes longer than this is reported as a hang.
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .output()
            .map_err(|e| format!("fuzz: cannot run cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let artifact = log
                .lines()
                .find(|l| l.contains("Test unit written to"))
                .unwrap_or("no artifact written");
            let reason = log
                .lines()
                .find(|l| l.contains("ERROR: libFuzzer") || l.contains("panicked at"))
                .unwrap_or("see the log above");
            eprintln!("{log}");
            return Err(format!(
                "fuzz: target `{target}` failed: {reason}; {artifact}"
            ));
        }
        // libFuzzer ends with `Done N runs in S second(s)`.
        let runs = log
            .lines()
            .rev()
            .find_map(|l| {
                l.strip_prefix("Done ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| format!("fuzz: no run count in the output of `{target}`"))?;
        let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        report.push((target, runs, corpus_size));
    }
    println!("| target | seconds | executions | corpus entries | result |");
    println!("| --- | --- | --- | --- | --- |");
    for (target, runs, corpus) in report {
        println!("| `{target}` | {seconds} | {runs} | {corpus} | no crash, no hang, no leak |");
    }
    Ok(())
}

/// Writes seed inputs into `corpus/<target>/`. Missing compilers only mean
/// fewer seeds.
fn seed(corpus: &Path) -> Result<(), String> {
    for &(target, _) in TARGETS {
        std::fs::create_dir_all(corpus.join(target))
            .map_err(|e| format!("fuzz: cannot create {}: {e}", corpus.display()))?;
    }
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let _ = std::fs::write(corpus.join(target).join(name), bytes);
    };
    // Inputs that once failed (fuzz/regressions/TARGET/, also run by the
    // test suite's reader_fuzz_regressions) start every run.
    let regressions = corpus.with_file_name("regressions");
    for &(target, _) in TARGETS {
        for entry in std::fs::read_dir(regressions.join(target))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                write(target, &entry.file_name().to_string_lossy(), &bytes);
            }
        }
    }

    // Argument strings of every architecture's syntax; the first byte picks
    // the architecture as the `args` target reads it.
    let args: &[(u8, &str)] = &[
        (
            0,
            "-4@%edi 8@-16(%rbp) -4@$5 8@56+v_small(%rip) -4@(%rdx,%rax,4) 1@%ah",
        ),
        (
            1,
            "-4@%eax 4@g@GOTOFF(%ecx) -8@-96(%ebp,%esi,8) 4@counter+4",
        ),
        (
            2,
            "-4@x0 8@[sp, 16] -8@[x29, -8] 4@[x0, #:lo12:sym] 8@[x0, x1, lsl #3] -4@5 8f@xzr",
        ),
        (3, "-4@r0 -4@[fp, #-8] 4@#5 4@lr"),
        (4, "-8@-24(s0) -4@a0 4@5 8@(sp)"),
        (5, "-8@%r0 -2@-28(%r15) 4@8(%r1,%r2) 4@71"),
        (6, "-4@3 8@%r31 -4@-8(31) 4@3,4 4@i-5"),
    ];
    for (i, (arch, text)) in args.iter().enumerate() {
        let mut bytes = vec![*arch];
        bytes.extend_from_slice(text.as_bytes());
        write("args", &format!("seed-{i}"), &bytes);
    }

    // Type records per the contract, 64-bit little-endian (selector 2).
    let mut records = vec![2u8];
    for (pc, provider, name, flags, args) in [
        (
            0x1130u64,
            "http",
            "request_start",
            1u8,
            &[(4u8, "id"), (19, "method")][..],
        ),
        (0x1200, "app", "tick", 0, &[][..]),
    ] {
        records.extend_from_slice(&[0x55, 1, args.len() as u8, flags]);
        records.extend_from_slice(&pc.to_le_bytes());
        for s in [provider, name] {
            records.extend_from_slice(s.as_bytes());
            records.push(0);
        }
        for (kind, arg) in args {
            records.push(*kind);
            records.extend_from_slice(arg.as_bytes());
            records.push(0);
        }
    }
    write("types", "seed-records", &records);

    // Small ELF files with probes (freestanding builds of sdt_bare.c) and
    // their note sections.
    let scratch = std::env::temp_dir().join(format!("usdt-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("fuzz: {e}"))?;
    let source = workspace_root().join("tests/fixtures/sdt_bare.c");
    // sys/sdt.h sits in the host's multiarch include directory, which cross
    // compilers do not search: give them a copy.
    let include = scratch.join("include");
    let _ = std::fs::create_dir_all(include.join("sys"));
    for dir in ["/usr/include/sys", "/usr/include/x86_64-linux-gnu/sys"] {
        for header in ["sdt.h", "sdt-config.h"] {
            let _ = std::fs::copy(
                Path::new(dir).join(header),
                include.join("sys").join(header),
            );
        }
    }
    for (name, compiler, objcopy, flags, selector) in [
        ("x86_64", "gcc", "objcopy", &[][..], 2u8),
        ("i386", "gcc", "objcopy", &["-m32"][..], 0),
        (
            "aarch64_be",
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-objcopy",
            &["-mbig-endian"][..],
            3,
        ),
    ] {
        let out = scratch.join(name);
        let built = Command::new(compiler)
            .args(["-O2", "-ffreestanding", "-nostdlib", "-static"])
            .arg(format!("-I{}", include.display()))
            .args(flags)
            .arg(&source)
            .arg("-o")
            .arg(&out)
            .output()
            .is_ok_and(|o| o.status.success());
        if !built {
            eprintln!("xtask: could not build the {name} seed with {compiler}");
            continue;
        }
        if let Ok(bytes) = std::fs::read(&out) {
            write("elf", &format!("seed-{name}"), &bytes);
        }
        let notes = scratch.join(format!("{name}.notes"));
        let extracted = Command::new(objcopy)
            .arg("--dump-section")
            .arg(format!(".note.stapsdt={}", notes.display()))
            .arg(&out)
            .arg(scratch.join(format!("{name}.copy")))
            .output()
            .is_ok_and(|o| o.status.success());
        if let (true, Ok(section)) = (extracted, std::fs::read(&notes)) {
            let mut bytes = vec![selector];
            bytes.extend_from_slice(&section);
            write("notes", &format!("seed-{name}"), &bytes);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
