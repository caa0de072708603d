//! Other targets. aarch64: the `probe_catalog` example cross-compiled for
//! aarch64-unknown-linux-gnu has the notes the contract prescribes, checked
//! with the cross readelf. A target without USDT support
//! (x86_64-unknown-none, built with the nightly toolchain's `build-std`):
//! the probes compile to nothing and a program run there shows their
//! arguments are not evaluated; the same program built for Linux, as a
//! control, evaluates them and has notes. The same library also builds for
//! x86_64-apple-darwin, whose Mach-O objects have no ELF sections.

use goblin::elf::Elf;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use usdt_interop_tests::elf::*;
use usdt_interop_tests::macros::*;
use usdt_interop_tests::{require_tool, run, skip};

const AARCH64: &str = "aarch64-unknown-linux-gnu";

/// Builds `packages` of the fixture workspace for `target` with the stable
/// toolchain into the target directory the variants share.
fn cross_build(workspace: &FixtureWorkspace, target: &str, packages: &[&str]) -> PathBuf {
    let build_dir = workspace.target_dir("target");
    let mut cmd = workspace.build(cargo(), &build_dir);
    cmd.args(["--offline", "--target", target]).env(
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
        "aarch64-linux-gnu-gcc",
    );
    for package in packages {
        cmd.args(["-p", package]);
    }
    run(&mut cmd);
    build_dir.join(target).join("release")
}

/// Whether the stable toolchain has the standard library for `target`.
fn has_std(target: &str) -> bool {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output();
    let Ok(out) = out else { return false };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

#[test]
fn aarch64_notes_follow_the_contract() {
    let test = "aarch64_notes_follow_the_contract";
    if !require_tool(test, "aarch64-linux-gnu-gcc")
        || !require_tool(test, "aarch64-linux-gnu-readelf")
    {
        return;
    }
    if !has_std(AARCH64)
        && !skip(
            test,
            "the aarch64-unknown-linux-gnu standard library is not installed (cargo xtask test adds it)",
        )
    {
        return;
    }
    let workspace = FixtureWorkspace::lock();
    let dir = cross_build(&workspace, AARCH64, &["catalog"]);
    let binary = dir.join("probe_catalog");
    let notes = readelf_notes("aarch64-linux-gnu-readelf", &binary);

    // Every probe with the argument formats of the contract.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for site in catalog_sites() {
        expected
            .entry(site.probe())
            .or_default()
            .push(expected_aarch64_args(&site));
    }
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for note in &notes {
        actual
            .entry(note.probe())
            .or_default()
            .push(normalize_aarch64_args(&note.args));
    }
    for list in expected.values_mut().chain(actual.values_mut()) {
        list.sort();
    }
    assert_eq!(actual, expected);
    let text = notes.iter().find(|n| n.name == "text").unwrap();
    assert!(text.args.starts_with("8@[x"), "{}", text.args);

    // Sites are `nop`, the base and semaphores as on x86-64.
    let bytes = read(&binary);
    let elf = Elf::parse(&bytes).unwrap();
    assert_eq!(elf.header.e_machine, goblin::elf::header::EM_AARCH64);
    let base = section(&elf, &bytes, ".stapsdt.base").expect(".stapsdt.base");
    let probes = section(&elf, &bytes, ".probes").expect(".probes");
    for note in &notes {
        assert_eq!(note.base, base.addr);
        assert_eq!(
            bytes_at(&elf, &bytes, note.location, 4),
            [0x1f, 0x20, 0x03, 0xd5],
            "{}: not a nop",
            note.probe()
        );
        if note.provider != "catalog" {
            assert!(probes.addr <= note.semaphore && note.semaphore < probes.addr + probes.size);
            let symbol = format!("{}_{}_semaphore", note.provider, note.name);
            assert_eq!(symbol_address(&elf, &symbol), Some(note.semaphore));
        } else {
            assert_eq!(note.semaphore, 0);
        }
    }

    // The typed records, one per note.
    let types = section(&elf, &bytes, ".usdt.types").expect(".usdt.types");
    let records = parse_type_records(types.data);
    assert_eq!(records.len(), notes.len());
    for note in &notes {
        let record = records
            .iter()
            .find(|r| r.pc == note.location && r.provider == note.provider && r.name == note.name)
            .unwrap_or_else(|| panic!("no record for {}", note.probe()));
        let site = catalog_sites()
            .into_iter()
            .find(|s| {
                s.probe() == note.probe()
                    && expected_aarch64_args(s) == normalize_aarch64_args(&note.args)
            })
            .unwrap();
        let kinds: Vec<(u8, String)> = site
            .args
            .iter()
            .map(|a| (kind(a.kind).code, a.name.clone()))
            .collect();
        assert_eq!(record.args, kinds, "{}", note.probe());
        assert_eq!(record.flags, u8::from(site.guarded));
    }
}

/// Builds the `unsupported_target` fixture for `target` with extra rustflags
/// for that target: with the nightly toolchain and `build-std` for a target
/// whose standard library is not installed, with the stable one otherwise.
/// `lib_only` builds just its library (an rlib, through code generation).
fn build_freestanding(
    workspace: &FixtureWorkspace,
    target: &str,
    rustflags: &str,
    lib_only: bool,
) -> PathBuf {
    let build_dir = workspace.target_dir("target-freestanding");
    let flags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        target.to_uppercase().replace('-', "_")
    );
    let nightly = !has_std(target);
    let cargo = if nightly {
        let mut cmd = Command::new("rustup");
        cmd.args(["run", "nightly", "cargo"])
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO");
        cmd
    } else {
        cargo()
    };
    let mut cmd = workspace.build(cargo, &build_dir);
    if nightly {
        cmd.args(["-Z", "build-std=core,alloc"]);
    }
    cmd.args(["-p", "unsupported_target", "--target", target])
        .args(if lib_only { &["--lib"][..] } else { &[] })
        .args(["--config", "profile.release.panic=\"abort\""])
        .env(flags_var, rustflags);
    run(&mut cmd);
    build_dir
        .join(target)
        .join("release")
        .join("unsupported_target")
}

/// Whether the nightly toolchain with `rust-src` is there.
fn has_nightly_with_src() -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib/src/rust/library")
            .is_dir()
}

fn has_section(path: &Path, name: &str) -> bool {
    let bytes = read(path);
    let elf = Elf::parse(&bytes).unwrap();
    section(&elf, &bytes, name).is_some()
}

#[test]
fn unsupported_target_compiles_probes_to_nothing() {
    let test = "unsupported_target_compiles_probes_to_nothing";
    if !require_tool(test, "rustup") {
        return;
    }
    if !has_nightly_with_src()
        && !skip(test, "the nightly toolchain with rust-src is not installed")
    {
        return;
    }
    // x86_64-unknown-none: no USDT support. The program runs on Linux with
    // raw system calls and exits 0 when nothing was evaluated or enabled.
    let workspace = FixtureWorkspace::lock();
    let freestanding = build_freestanding(
        &workspace,
        "x86_64-unknown-none",
        "-C relocation-model=static",
        false,
    );
    for name in [".note.stapsdt", ".usdt.types", ".stapsdt.base", ".probes"] {
        assert!(
            !has_section(&freestanding, name),
            "{name} on a target without USDT"
        );
    }
    let status = Command::new(&freestanding).status().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "see unsupported_target/src/main.rs for the codes"
    );

    // Control: the same program for x86_64 Linux has the probe and evaluates
    // the plain probe's argument (exit code 1).
    let linux = build_freestanding(
        &workspace,
        "x86_64-unknown-linux-gnu",
        "-C link-arg=-nostartfiles",
        false,
    );
    assert!(has_section(&linux, ".note.stapsdt"));
    let notes = readelf_notes("readelf", &linux);
    let probes: Vec<String> = notes.iter().map(ReadelfNote::probe).collect();
    assert_eq!(probes, ["other:plain", "lazy:fired", "lazy:empty"]);
    let status = Command::new(&linux).status().unwrap();
    assert_eq!(status.code(), Some(1));

    // A Mach-O target: code generation must not ask for ELF sections.
    let dir = build_freestanding(&workspace, "x86_64-apple-darwin", "", true)
        .parent()
        .unwrap()
        .to_path_buf();
    let rlib = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("deps")).unwrap())
        .filter_map(Result::ok)
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("libunsupported_target") && name.ends_with(".rlib")
        });
    assert!(rlib, "no rlib for x86_64-apple-darwin in {}", dir.display());
}
