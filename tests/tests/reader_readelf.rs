//! usdt-reader against `readelf`: C programs built with <sys/sdt.h> for
//! x86-64 (-O0, -O2, a shared library, stripped copies), aarch64 (the same,
//! cross-compiled), i386 (PIE and not), aarch64 big-endian and aarch64
//! ILP32: every note's provider, name, location, base, semaphore and
//! argument string equals readelf's; file offsets land on the probe's nop;
//! semaphores and symbol operands land on the symbols readelf lists.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use usdt_interop_tests::elf::{ReadelfNote, edit_notes, readelf_notes, readelf_section};
use usdt_interop_tests::reader::{
    Fixture, cross_fixtures, cross_tools_present, fixture, fixtures, with_two_bad_notes,
};
use usdt_interop_tests::{require_tool, run};
use usdt_reader::{
    ArgErrorKind, ArgLocation, ArgSpec, ElfFile, Error, IndexExtend, Probe, note, split_args,
};

const TEST: &str = "reader_readelf";

fn tools_present(test: &str) -> bool {
    [
        "gcc",
        "readelf",
        "strip",
        "aarch64-linux-gnu-gcc",
        "aarch64-linux-gnu-readelf",
        "aarch64-linux-gnu-strip",
    ]
    .iter()
    .all(|tool| require_tool(test, tool))
}

/// Defined symbols by name, from `readelf -sW` (both tables).
fn readelf_symbols(readelf: &str, path: &Path) -> HashMap<String, Vec<u64>> {
    let text = run(Command::new(readelf).arg("-sW").arg(path));
    let mut symbols: HashMap<String, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Num: Value Size Type Bind Vis Ndx Name
        if fields.len() < 8 || !fields[0].ends_with(':') || fields[6] == "UND" {
            continue;
        }
        let Ok(value) = u64::from_str_radix(fields[1], 16) else {
            continue;
        };
        // Versioned dynamic names read `name@VERSION`.
        let name = fields[7].split('@').next().unwrap().to_string();
        let values = symbols.entry(name).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }
    symbols
}

fn check_fixture(f: &Fixture) {
    let expected = readelf_notes(f.readelf, &f.path);
    assert!(!expected.is_empty(), "{}: readelf found no notes", f.name);
    let file = ElfFile::open(&f.path).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    let notes = file.notes().unwrap();
    let ours: Vec<ReadelfNote> = notes.iter().map(ReadelfNote::from).collect();
    assert_eq!(ours, expected, "{}: notes differ from readelf's", f.name);

    let probes = file.probes().unwrap();
    assert_eq!(probes.len(), expected.len());
    // The address of `.stapsdt.base`, from `readelf -SW`.
    let base = readelf_section(f.readelf, &f.path, ".stapsdt.base")
        .expect(".stapsdt.base section")
        .address;
    let symbols = readelf_symbols(f.readelf, &f.path);
    let data = std::fs::read(&f.path).unwrap();
    for (probe, note) in probes.iter().zip(&expected) {
        let what = format!("{} {}:{}", f.name, note.provider, note.name);
        assert_eq!(
            (&*probe.provider, &*probe.name),
            (&*note.provider, &*note.name)
        );
        assert_eq!(probe.args, note.args, "{what}");
        // The prelink adjustment, computed from readelf's section table.
        assert_eq!(
            probe.address,
            note.location.wrapping_add(base.wrapping_sub(note.base)),
            "{what}"
        );
        // The file offset holds the probe's nop.
        let at = probe.file_offset as usize;
        assert_eq!(
            &data[at..at + f.nop.len()],
            f.nop,
            "{what}: no nop at file offset {at:#x}"
        );
        // Semaphores: the note's address, the sys/sdt.h symbol, a zero u16
        // at the file offset.
        match probe.semaphore {
            None => assert_eq!(note.semaphore, 0, "{what}"),
            Some(address) => {
                assert_eq!(address, note.semaphore, "{what}");
                if !f.stripped {
                    let symbol = format!("{}_{}_semaphore", note.provider, note.name);
                    assert_eq!(
                        symbols.get(&symbol),
                        Some(&vec![address]),
                        "{what}: {symbol}"
                    );
                }
                let offset = probe.semaphore_offset.expect("semaphore offset") as usize;
                assert_eq!(
                    &data[offset..offset + 2],
                    &[0, 0],
                    "{what}: semaphore bytes"
                );
            }
        }
        // Arguments: each word's size and sign; symbol operands resolve to
        // readelf's symbol values (unstripped) or fail by name (stripped).
        let words = split_args(&probe.args);
        match &probe.arg_specs {
            Ok(specs) => {
                assert_eq!(specs.len(), words.len(), "{what}");
                for (spec, word) in specs.iter().zip(&words) {
                    let prefix = word.split('@').next().unwrap();
                    let signed = prefix.starts_with('-');
                    let size: u8 = prefix
                        .trim_start_matches('-')
                        .trim_end_matches('f')
                        .parse()
                        .unwrap();
                    assert_eq!((spec.size, spec.signed), (size, signed), "{what} {word}");
                    if let ArgLocation::Address {
                        address,
                        symbol: Some(symbol),
                        ..
                    } = &spec.location
                    {
                        let offset = address.wrapping_sub(symbols[symbol][0]);
                        assert!(offset < 128, "{what} {word}: {address:#x} is not {symbol}");
                        assert_eq!(symbols[symbol].len(), 1, "{what}: {symbol} is ambiguous");
                    }
                    if let Some(at) = word.find(":lo12:") {
                        let name = word[at + 6..].trim_end_matches(']');
                        let ArgLocation::Memory { offset, .. } = spec.location else {
                            panic!("{what} {word}: {:?}", spec.location)
                        };
                        assert_eq!(offset as u64, symbols[name][0] & 0xfff, "{what} {word}");
                    }
                    if word.contains("@GOTOFF") {
                        let name = word.split('@').nth(1).unwrap();
                        let got = symbols["_GLOBAL_OFFSET_TABLE_"][0];
                        let ArgLocation::Memory { offset, .. } = spec.location else {
                            panic!("{what} {word}: {:?}", spec.location)
                        };
                        assert_eq!(
                            offset as u64,
                            symbols[name][0].wrapping_sub(got),
                            "{what} {word}"
                        );
                    }
                }
            }
            Err(error) => {
                // Two causes only: a stripped symbol, or gcc's aarch64
                // section anchors (local labels no symbol table keeps).
                match &error.kind {
                    ArgErrorKind::UnresolvedSymbol(_) => assert!(f.stripped, "{what}: {error}"),
                    ArgErrorKind::LocalLabel(label) => {
                        assert!(f.name.starts_with("aarch64"), "{what}: {error}");
                        assert!(label.starts_with(".LANCHOR"), "{what}: {error}");
                        assert!(error.operand.contains(":lo12:"), "{what}: {error}");
                    }
                    _ => panic!("{what}: {error}"),
                }
                assert_eq!(
                    error.probe.as_deref(),
                    Some(&*format!("{}:{}", note.provider, note.name))
                );
                assert_eq!(error.operand, words[error.index]);
            }
        }
    }
}

#[test]
fn every_fixture_agrees_with_readelf() {
    if !tools_present(TEST) {
        return;
    }
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20);
    for f in fixtures {
        check_fixture(f);
    }
}

#[test]
fn layouts_and_architectures() {
    if !tools_present(TEST) {
        return;
    }
    let fixtures = fixtures();
    let open = |name: &str| ElfFile::open(&fixture(fixtures, name).path).unwrap();
    use usdt_reader::{Arch, Endian};
    for (name, arch, is_64, endian) in [
        ("x86_64_args_O2", Arch::X86_64, true, Endian::Little),
        ("aarch64_args_O2", Arch::AArch64, true, Endian::Little),
        ("i386_bare_pie", Arch::X86, false, Endian::Little),
        ("aarch64_be_bare", Arch::AArch64, true, Endian::Big),
        ("aarch64_ilp32_be_bare", Arch::AArch64, false, Endian::Big),
        ("aarch64_ilp32_bare", Arch::AArch64, false, Endian::Little),
    ] {
        let file = open(name);
        assert_eq!(file.arch(), arch, "{name}");
        assert_eq!(
            (file.layout().is_64, file.layout().endian),
            (is_64, endian),
            "{name}"
        );
        // Every probe of every layout parses.
        for probe in file.probes().unwrap() {
            assert!(probe.arg_specs.is_ok(), "{name}: {:?}", probe.arg_specs);
        }
    }
    // The i386 program without PIE names globals by absolute address.
    let nopie = open("i386_bare_nopie").probes().unwrap();
    let args = nopie.iter().find(|p| p.name == "args").unwrap();
    assert!(
        matches!(&args.arg_specs.as_ref().unwrap()[2].location,
            ArgLocation::Address { symbol: Some(s), .. } if s == "g"),
        "{:?}",
        args.arg_specs
    );
}

#[test]
fn stripped_files_keep_their_probes() {
    if !tools_present(TEST) {
        return;
    }
    let fixtures = fixtures();
    for arch in ["x86_64", "aarch64"] {
        for name in ["args", "lib"] {
            let full = ElfFile::open(&fixture(fixtures, &format!("{arch}_{name}_O2")).path)
                .unwrap()
                .probes()
                .unwrap();
            let stripped =
                ElfFile::open(&fixture(fixtures, &format!("{arch}_{name}_O2_stripped")).path)
                    .unwrap()
                    .probes()
                    .unwrap();
            assert_eq!(full.len(), stripped.len());
            for (a, b) in full.iter().zip(&stripped) {
                assert_eq!(
                    (
                        &a.provider,
                        &a.name,
                        a.address,
                        a.file_offset,
                        a.semaphore,
                        &a.args
                    ),
                    (
                        &b.provider,
                        &b.name,
                        b.address,
                        b.file_offset,
                        b.semaphore,
                        &b.args
                    )
                );
                // Operands without symbols parse the same; the others fail
                // for that probe alone, naming the symbol.
                if b.arg_specs.is_ok() {
                    assert_eq!(a.arg_specs, b.arg_specs);
                }
            }
        }
    }
    // On x86-64 -O2 the static `counter` of the library is RIP-relative:
    // stripping loses its symbol, and only sdt_lib:counter fails.
    let stripped = ElfFile::open(&fixture(fixtures, "x86_64_lib_O2_stripped").path)
        .unwrap()
        .probes()
        .unwrap();
    let failed: Vec<_> = stripped.iter().filter(|p| p.arg_specs.is_err()).collect();
    assert_eq!(failed.len(), 1);
    let error = failed[0].arg_specs.as_ref().unwrap_err();
    assert_eq!(
        error.to_string(),
        "probe sdt_lib:counter: argument 0 `-4@counter(%rip)`: symbol `counter` is not in the file's symbol tables"
    );
}

#[test]
fn a_moved_stapsdt_base_adjusts_addresses() {
    if !tools_present(TEST) {
        return;
    }
    let f = fixture(fixtures(), "x86_64_args_O2");
    let file = ElfFile::open(&f.path).unwrap();
    let probes = file.probes().unwrap();
    // Rewrite every note's base (after its pc) as if the file had been
    // written before the sections moved 0x10 bytes down: sites and
    // semaphores move alike.
    let bytes = edit_notes(&f.path, |note, descriptor| {
        descriptor[8..16].copy_from_slice(&(note.base + 0x10).to_le_bytes())
    });
    let moved = ElfFile::parse(bytes).unwrap().probes().unwrap();
    for (before, after) in probes.iter().zip(&moved) {
        assert_eq!(after.address, before.address - 0x10);
        assert_eq!(after.file_offset, before.file_offset - 0x10);
        assert_eq!(after.semaphore, before.semaphore.map(|s| s - 0x10));
    }
}

#[test]
fn files_without_probes_and_bad_files() {
    // A file without notes is an empty list; a non-ELF file, a directory
    // and a missing file are errors naming the path.
    let exe = std::env::current_exe().unwrap();
    let own = ElfFile::open(&exe).unwrap();
    let _ = own.probes().unwrap();
    let ls = ElfFile::open("/bin/ls").unwrap();
    assert!(ls.probes().unwrap().is_empty());
    let text = std::env::temp_dir().join(format!("usdt-reader-text-{}", std::process::id()));
    std::fs::write(&text, "not an ELF file\n").unwrap();
    assert!(matches!(ElfFile::open(&text), Err(Error::NotElf { .. })));
    let _ = std::fs::remove_file(&text);
    assert!(matches!(
        ElfFile::open("/"),
        Err(Error::NotRegularFile { .. })
    ));
    let missing = ElfFile::open("/nonexistent/file").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "/nonexistent/file: No such file or directory (os error 2)"
    );
    assert!(missing.is_bad_input());
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    if !tools_present(TEST) {
        return;
    }
    let f = fixture(fixtures(), "x86_64_args_O2");
    let bytes = std::fs::read(&f.path).unwrap();
    // Every prefix length up to the headers, and a spread beyond.
    let lengths = (0..256).chain((256..bytes.len()).step_by(997));
    for len in lengths {
        let result = ElfFile::parse(bytes[..len].to_vec()).and_then(|file| file.probes());
        if let Err(error) = result {
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(message.starts_with("<memory>"), "{message}");
        }
    }
    // Flipping bytes of the note section gives errors or other notes.
    let notes_at = bytes.windows(8).position(|w| w == b"stapsdt\0").unwrap();
    for i in 0..64 {
        let mut copy = bytes.clone();
        copy[notes_at - 12 + i] ^= 0xff;
        let _ = ElfFile::parse(copy).and_then(|file| file.probes());
    }
}

#[test]
fn cross_compiled_fixtures_agree_with_readelf() {
    // riscv64, s390x (big-endian ELF64), ppc64le, arm (ELF32, Thumb) and
    // i386 without PIE, each at -O0 and -O2 plus a shared library: every
    // note as readelf reads it, and every operand parses.
    if !cross_tools_present(TEST) {
        return;
    }
    let fixtures = cross_fixtures();
    assert_eq!(fixtures.len(), 15);
    for f in fixtures {
        check_fixture(f);
        let probes = ElfFile::open(&f.path).unwrap().probes().unwrap();
        for probe in &probes {
            assert!(probe.arg_specs.is_ok(), "{}: {:?}", f.name, probe.arg_specs);
        }
    }
}

fn specs<'a>(probes: &'a [Probe], name: &str) -> &'a [ArgSpec] {
    let probe = probes.iter().find(|p| p.name == name).unwrap();
    probe.arg_specs.as_ref().unwrap()
}

fn register_name(location: &ArgLocation) -> &'static str {
    match location {
        ArgLocation::Register(reg) => reg.name(),
        ArgLocation::Memory { base, .. } => base.name(),
        other => panic!("{other:?} has no register"),
    }
}

#[test]
fn cross_compiled_operands_have_the_expected_structure() {
    if !cross_tools_present(TEST) {
        return;
    }
    use usdt_reader::{Arch, Endian};
    let fixtures = cross_fixtures();
    // Architecture, ELF class and byte order, the frame register -O0 keeps
    // `iteration`'s stack slot at, and the register -O2 passes it in.
    for (arch, expected_arch, is_64, endian, frame, passed) in [
        ("riscv64", Arch::Riscv64, true, Endian::Little, "s0", "a0"),
        ("s390x", Arch::S390x, true, Endian::Big, "r11", "r2"),
        ("ppc64le", Arch::PowerPc64, true, Endian::Little, "r9", "r3"),
        ("arm", Arch::Arm, false, Endian::Little, "r7", "r0"),
        ("i386", Arch::X86, false, Endian::Little, "ebp", "eax"),
    ] {
        let open = |level: &str| {
            let f = fixture(fixtures, &format!("{arch}_args_{level}"));
            let file = ElfFile::open(&f.path).unwrap();
            assert_eq!(file.arch(), expected_arch, "{arch}");
            assert_eq!(
                (file.layout().is_64, file.layout().endian),
                (is_64, endian),
                "{arch}"
            );
            let probes = file.probes().unwrap();
            (file, probes)
        };
        let (_, o0) = open("O0");
        let (o2_file, o2) = open("O2");
        // A stack slot at -O0: memory at the frame register.
        let slot = &specs(&o0, "iteration")[0];
        assert!(
            matches!(slot.location, ArgLocation::Memory { .. }),
            "{arch}: {slot:?}"
        );
        assert_eq!(register_name(&slot.location), frame, "{arch}");
        assert_eq!((slot.size, slot.signed), (4, false), "{arch}");
        // A register at -O2.
        let reg = &specs(&o2, "iteration")[0];
        assert!(matches!(reg.location, ArgLocation::Register(_)), "{arch}");
        assert_eq!(register_name(&reg.location), passed, "{arch}");
        // Constants, at both levels: the values and sizes of sdt_args.c.
        for probes in [&o0, &o2] {
            let constants = specs(probes, "constants");
            let values: Vec<(u8, bool, i64)> = constants
                .iter()
                .map(|spec| match spec.location {
                    ArgLocation::Constant(value) => (spec.size, spec.signed, value),
                    ref other => panic!("{arch}: {other:?}"),
                })
                .collect();
            assert_eq!(
                values,
                [
                    (4, true, 0),
                    (4, true, -1),
                    (4, true, 42),
                    (8, true, i64::MIN),
                    (8, false, -1),
                    (1, true, 120)
                ],
                "{arch}"
            );
        }
        // Globals at -O2: i386 names them (absolute addresses); the others
        // reach them from one register holding an anchor, at offsets that
        // differ as the symbols' addresses do (powerpc loads each address
        // into its own register, at offset 0).
        let globals = specs(&o2, "globals");
        let symbols = ["g_i32", "g_u64", "g_i16", "g_u8"];
        let address = |name: &str| o2_file.symbol(name).unwrap() as i64;
        match arch {
            "i386" => {
                for (spec, symbol) in globals.iter().zip(symbols) {
                    assert_eq!(
                        spec.location,
                        ArgLocation::Address {
                            address: address(symbol) as u64,
                            symbol: Some(symbol.into()),
                            index: None,
                        },
                        "{arch}"
                    );
                }
                // Indexed globals: the symbol plus the index register.
                for (spec, (symbol, scale)) in specs(&o2, "indexed")
                    .iter()
                    .zip([("g_array32", 4), ("g_array64", 8)])
                {
                    let ArgLocation::Address {
                        address: at,
                        symbol: Some(named),
                        index: Some(index),
                    } = &spec.location
                    else {
                        panic!("{arch}: {spec:?}")
                    };
                    assert_eq!(index.extend, IndexExtend::Whole, "{arch}");
                    assert_eq!(
                        (
                            *at as i64,
                            named.as_str(),
                            index.register.name(),
                            index.scale
                        ),
                        (address(symbol), symbol, "eax", scale)
                    );
                }
            }
            "ppc64le" => {
                for spec in globals {
                    assert!(
                        matches!(spec.location, ArgLocation::Memory { offset: 0, .. }),
                        "{arch}: {spec:?}"
                    );
                }
            }
            _ => {
                let offsets: Vec<i64> = globals
                    .iter()
                    .map(|spec| match spec.location {
                        ArgLocation::Memory {
                            offset,
                            index: None,
                            ..
                        } => offset,
                        ref other => panic!("{arch}: {other:?}"),
                    })
                    .collect();
                let bases: Vec<&str> = globals.iter().map(|s| register_name(&s.location)).collect();
                assert!(bases.iter().all(|b| *b == bases[0]), "{arch}: {bases:?}");
                for (offset, symbol) in offsets.iter().zip(symbols) {
                    assert_eq!(
                        offset - offsets[0],
                        address(symbol) - address("g_i32"),
                        "{arch} {symbol}"
                    );
                }
            }
        }
        let sizes: Vec<(u8, bool)> = globals.iter().map(|s| (s.size, s.signed)).collect();
        assert_eq!(
            sizes,
            [(4, true), (8, false), (2, true), (1, false)],
            "{arch}"
        );
    }
}

#[test]
fn bad_notes_are_skipped_and_reported() {
    if !tools_present(TEST) {
        return;
    }
    let f = fixture(fixtures(), "x86_64_args_O2");
    let good = ElfFile::open(&f.path).unwrap().probes().unwrap();
    let file = ElfFile::parse(with_two_bad_notes(f)).unwrap();
    // The strict calls fail on the first bad note.
    assert!(matches!(
        file.probes(),
        Err(Error::Note {
            source: note::NoteError::NotUtf8 {
                field: "provider",
                ..
            },
            ..
        })
    ));
    assert!(file.notes().is_err());
    let notes = file.notes_partial().unwrap();
    assert_eq!(notes.found.len(), good.len() - 1);
    assert_eq!(notes.skipped.len(), 1);
    // The lenient one keeps every other probe, unchanged.
    let partial = file.probes_partial().unwrap();
    let expected: Vec<&Probe> = good
        .iter()
        .filter(|p| p.name != "stack" && p.name != "guarded")
        .collect();
    assert_eq!(partial.found.iter().collect::<Vec<_>>(), expected);
    let messages: Vec<String> = partial.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("<memory>: .note.stapsdt at file offset ")
            && messages[0].ends_with(": the provider string is not UTF-8"),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[1],
        "<memory>: the semaphore of probe sdt_args:guarded at 0xdead0000 is outside every loadable segment"
    );
}
