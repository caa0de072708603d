//! Probes keep working however the code is built: the `macros_variants`
//! fixture (a library declaring a typed provider and probes in a generic and
//! an inlined function, a binary using it, a cdylib using it) is built at
//! opt-level 0 to 3, with fat LTO, stripped, and linked by GNU ld instead
//! of lld. For each build, readelf lists every site, the one semaphore is
//! shared across crates, every site is the 5-byte nop with its `.usdt.types`
//! record, a peer crate's probe in the same object file is intact, and gdb
//! reads the right values from the binary, from the cdylib loaded by a C
//! program and from `probe_catalog` (a probe of every argument type).

use goblin::elf::Elf;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use usdt_interop_tests::elf::*;
use usdt_interop_tests::macros::*;
use usdt_interop_tests::{fixtures_dir, require_tool, run};

/// Builds the fixture with the `--config` settings of a variant and returns
/// the directory holding its `app`, `libprobes_cdylib.so` and
/// `probe_catalog`.
fn build(workspace: &FixtureWorkspace, variant: &str, config: &[&str]) -> PathBuf {
    let build_dir = workspace.target_dir("target");
    let mut cmd = workspace.build(cargo(), &build_dir);
    cmd.args([
        "--offline",
        "-p",
        "app",
        "-p",
        "probes_cdylib",
        "-p",
        "catalog",
    ]);
    for setting in config {
        cmd.args(["--config", setting]);
    }
    run(&mut cmd);
    let out = workspace.target_dir(variant);
    std::fs::create_dir_all(&out).unwrap();
    for artifact in ["app", "libprobes_cdylib.so", "probe_catalog"] {
        std::fs::copy(build_dir.join("release").join(artifact), out.join(artifact)).unwrap();
    }
    out
}

/// The sites `app` fires, in order.
fn app_sites() -> Vec<Site> {
    let hit = |site: u32, label: &str| {
        typed_site(
            "variant",
            "hit",
            &[
                ("site", "u32", i(site)),
                ("label", "&str", Value::Bytes(label.as_bytes().to_vec())),
            ],
        )
    };
    vec![
        plain_site(
            "variant",
            "app_plain",
            &[
                ("u16", i(9)),
                ("i64", i(-10)),
                ("&str", Value::Bytes(b"x".to_vec())),
            ],
        ),
        hit(2, "app"),
        plain_site("variant", "generic", &[("u8", i(5))]),
        plain_site("variant", "generic", &[("i32", i(-6))]),
        plain_site("variant", "inlined", &[("u64", i(7))]),
        plain_site("variant", "inlined", &[("u64", i(8))]),
        hit(1, "lib"),
        hit(3, "app2"),
        // The `probe` crate's probe: a 1-byte nop, no `.usdt.types` record.
        plain_site("peer", "mixed", &[("i64", i(11))]),
    ]
}

/// The sites the cdylib fires when the C program calls it.
fn cdylib_sites() -> Vec<Site> {
    vec![
        plain_site("variant", "cdylib", &[("i32", i(-42))]),
        typed_site(
            "variant",
            "hit",
            &[
                ("site", "u32", i(-42i32 as u32)),
                ("label", "&str", Value::Bytes(b"cdylib".to_vec())),
            ],
        ),
    ]
}

/// Normalized argument strings of each probe's notes in `path`.
fn listed(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for note in readelf_notes("readelf", path) {
        map.entry(note.probe())
            .or_default()
            .push(normalize_x86_args(&note.args));
    }
    for args in map.values_mut() {
        args.sort();
    }
    map
}

/// Checks the notes of `path` against `sites`: every probe listed with the
/// right argument formats, at least one site per expected site (inlining
/// may copy a site, never drop one; generic instantiations are one site
/// each), nothing else; the sites are 5-byte nops; one semaphore per typed
/// probe, in `.probes`, named as sys/sdt.h names it unless `stripped`.
fn check_notes(path: &Path, sites: &[Site], stripped: bool) {
    let actual = listed(path);
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for site in sites {
        expected
            .entry(site.probe())
            .or_default()
            .push(expected_x86_args(site));
    }
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{}: probes",
        path.display()
    );
    for (probe, mut formats) in expected {
        let listed = &actual[&probe];
        formats.sort();
        let mut distinct_listed = listed.clone();
        distinct_listed.dedup();
        let mut distinct_expected = formats.clone();
        distinct_expected.dedup();
        assert_eq!(
            distinct_listed,
            distinct_expected,
            "{}: {probe}",
            path.display()
        );
        if probe == "variant:generic" {
            assert_eq!(
                listed.len(),
                2,
                "{}: one site per instantiation",
                path.display()
            );
        } else {
            assert!(
                listed.len() >= formats.len() || probe == "variant:inlined" && !listed.is_empty(),
                "{}: {probe} has {} sites, expected {}",
                path.display(),
                listed.len(),
                formats.len()
            );
        }
    }

    let bytes = read(path);
    let elf = Elf::parse(&bytes).unwrap();
    let base = section(&elf, &bytes, ".stapsdt.base").expect(".stapsdt.base");
    let probes = section(&elf, &bytes, ".probes").expect(".probes");
    let notes = readelf_notes("readelf", path);
    let mut semaphores: BTreeMap<String, u64> = BTreeMap::new();
    for note in &notes {
        assert_eq!(note.base, base.addr, "{}: {}", path.display(), note.probe());
        if note.provider == "peer" {
            assert_eq!(bytes_at(&elf, &bytes, note.location, 1), [0x90]);
            continue;
        }
        assert_eq!(
            bytes_at(&elf, &bytes, note.location, 5),
            [0x0f, 0x1f, 0x44, 0x00, 0x00],
            "{}: {} site",
            path.display(),
            note.probe()
        );
        let guarded = sites
            .iter()
            .find(|s| s.probe() == note.probe())
            .unwrap()
            .guarded;
        if guarded {
            assert!(
                probes.addr <= note.semaphore && note.semaphore < probes.addr + probes.size,
                "{}: {} semaphore outside .probes",
                path.display(),
                note.probe()
            );
            let previous = *semaphores.entry(note.probe()).or_insert(note.semaphore);
            assert_eq!(
                previous,
                note.semaphore,
                "{}: {} has two semaphores",
                path.display(),
                note.probe()
            );
        } else {
            assert_eq!(note.semaphore, 0);
        }
    }
    let types = section(&elf, &bytes, ".usdt.types").expect(".usdt.types");
    let records = parse_type_records(types.data);
    for note in notes.iter().filter(|n| n.provider != "peer") {
        assert!(
            records.iter().any(|r| r.pc == note.location
                && r.provider == note.provider
                && r.name == note.name),
            "{}: no .usdt.types record for {} at {:#x}",
            path.display(),
            note.probe(),
            note.location
        );
    }
    if stripped {
        assert!(elf.syms.is_empty(), "{}: not stripped", path.display());
    } else {
        for (probe, address) in &semaphores {
            let symbol = format!("{}_semaphore", probe.replace(':', "_"));
            let matching: Vec<_> = elf
                .syms
                .iter()
                .filter(|s| elf.strtab.get_at(s.st_name) == Some(symbol.as_str()))
                .collect();
            assert_eq!(matching.len(), 1, "{}: {symbol}", path.display());
            assert_eq!(
                matching[0].st_value,
                *address,
                "{}: {symbol}",
                path.display()
            );
        }
    }
}

/// Builds one variant and checks the binary and the cdylib.
fn check_variant(variant: &str, config: &[&str]) {
    let test = format!("probes_work_{variant}");
    if !require_tool(&test, "readelf") || !require_tool(&test, "gdb") || !require_tool(&test, "cc")
    {
        return;
    }
    let workspace = FixtureWorkspace::lock();
    let dir = build(&workspace, variant, config);
    let stripped = config.iter().any(|c| c.contains(".strip="));

    let app = dir.join("app");
    let pcs: Vec<u64> = readelf_notes("readelf", &app)
        .iter()
        .filter(|n| n.provider == "variant")
        .map(|n| n.location)
        .collect();
    if !stripped {
        // objdump finds function boundaries through the symbols.
        assert_no_red_zone_use(&app, &pcs);
    }
    if config.iter().any(|c| c.contains("linker-features=-lld")) {
        let bytes = read(&app);
        let elf = Elf::parse(&bytes).unwrap();
        let comment = section(&elf, &bytes, ".comment").expect(".comment");
        let comment = String::from_utf8_lossy(comment.data);
        assert!(!comment.contains("LLD"), "linked by lld: {comment}");
    }
    check_notes(&app, &app_sites(), stripped);
    assert_gdb_reads_sites(&app, &[], &app_sites());
    // Every argument type, extremes and all, as this build's optimizer
    // placed it.
    assert_gdb_reads_sites(&dir.join("probe_catalog"), &[], &catalog_sites());

    let cdylib = dir.join("libprobes_cdylib.so");
    check_notes(&cdylib, &cdylib_sites(), stripped);
    assert_semaphores_not_exported(&cdylib);
    // The second driver defines a global named like the library's
    // semaphore: the library's guarded probe must fire all the same.
    for (driver, defines) in [
        ("cdylib_main", None),
        ("cdylib_interposer", Some("-DDEFINE_SEMAPHORE")),
    ] {
        let driver = dir.join(driver);
        run(Command::new("cc")
            .arg(fixtures_dir().join("macros_cdylib_main.c"))
            .args(defines)
            .arg("-o")
            .arg(&driver)
            .arg(format!("-L{}", dir.display()))
            .arg("-lprobes_cdylib")
            .arg(format!("-Wl,-rpath,{}", dir.display())));
        assert_gdb_reads_sites(&driver, &[], &cdylib_sites());
    }
}

/// A shared library's semaphores are hidden: not in its dynamic symbol
/// table, where another object's symbol of the same name could take their
/// place.
fn assert_semaphores_not_exported(library: &Path) {
    let bytes = read(library);
    let elf = Elf::parse(&bytes).unwrap();
    let exported: Vec<&str> = elf
        .dynsyms
        .iter()
        .filter_map(|sym| elf.dynstrtab.get_at(sym.st_name))
        .filter(|name| name.ends_with("_semaphore"))
        .collect();
    assert!(
        exported.is_empty(),
        "{} exports its semaphores: {exported:?}",
        library.display()
    );
}

#[test]
fn probes_work_at_opt_level_0() {
    check_variant("o0", &["profile.release.opt-level=0"]);
}

#[test]
fn probes_work_at_opt_level_1() {
    check_variant("o1", &["profile.release.opt-level=1"]);
}

#[test]
fn probes_work_at_opt_level_2() {
    check_variant("o2", &["profile.release.opt-level=2"]);
}

#[test]
fn probes_work_at_opt_level_3() {
    check_variant("o3", &["profile.release.opt-level=3"]);
}

#[test]
fn probes_work_with_fat_lto() {
    check_variant(
        "lto",
        &[
            "profile.release.opt-level=3",
            "profile.release.lto=\"fat\"",
            "profile.release.codegen-units=1",
        ],
    );
}

#[test]
fn probes_work_stripped() {
    check_variant(
        "strip",
        &[
            "profile.release.opt-level=3",
            "profile.release.strip=\"symbols\"",
        ],
    );
}

#[test]
fn probes_work_linked_by_gnu_ld() {
    // rustc links with lld by default here; GNU ld garbage-collects
    // differently (it drops unreferenced non-note sections such as
    // `.usdt.types` unless they are retained).
    check_variant(
        "gnu-ld",
        &[
            "profile.release.opt-level=2",
            "build.rustflags=[\"-C\", \"linker-features=-lld\"]",
        ],
    );
}
