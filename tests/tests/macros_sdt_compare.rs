//! The notes of `probe_catalog` have the structure of a C program's built
//! with `<sys/sdt.h>`: note section, owner and type, descriptor layout,
//! `.stapsdt.base` and the semaphores in `.probes`. Both binaries are
//! checked against the same invariants, and their shapes compared.

use crate::catalog;
use goblin::elf::Elf;
use goblin::elf::program_header::{PF_X, PT_LOAD};
use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE};
use std::path::Path;
use std::process::Command;
use usdt_interop_tests::elf::{read, readelf_notes, section};
use usdt_interop_tests::{fixtures_dir, require_tool, run, scratch_dir};

/// One note decoded from the raw section bytes.
#[derive(Debug)]
struct RawNote {
    owner: String,
    note_type: u32,
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

/// Decodes `.note.stapsdt` (ELF64, little endian), checking the layout:
/// 4-byte aligned records, `stapsdt\0` owner, a descriptor of exactly three
/// addresses and three NUL-terminated strings.
fn raw_notes(mut data: &[u8]) -> Vec<RawNote> {
    fn u32_at(d: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
    }
    fn u64_at(d: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
    }
    let align4 = |n: usize| (n + 3) & !3;
    let mut notes = Vec::new();
    while !data.is_empty() {
        let namesz = u32_at(data, 0) as usize;
        let descsz = u32_at(data, 4) as usize;
        let note_type = u32_at(data, 8);
        let name = &data[12..12 + namesz];
        let desc_start = 12 + align4(namesz);
        let desc = &data[desc_start..desc_start + descsz];
        assert_eq!(name.last(), Some(&0), "owner not NUL-terminated");
        let owner = String::from_utf8(name[..namesz - 1].to_vec()).unwrap();
        let mut strings = desc[24..].split(|&b| b == 0);
        let mut next = || String::from_utf8(strings.next().unwrap().to_vec()).unwrap();
        let (provider, probe, args) = (next(), next(), next());
        assert_eq!(
            24 + provider.len() + probe.len() + args.len() + 3,
            descsz,
            "descriptor of {provider}:{probe} is not three addresses and three strings"
        );
        notes.push(RawNote {
            owner,
            note_type,
            pc: u64_at(desc, 0),
            base: u64_at(desc, 8),
            semaphore: u64_at(desc, 16),
            provider,
            name: probe,
            args,
        });
        data = &data[(desc_start + align4(descsz)).min(data.len())..];
    }
    notes
}

/// What must be the same between a sys/sdt.h binary and ours.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    /// `.note.stapsdt`: type, allocated, alignment.
    note_section: (u32, bool, u64),
    /// The (owner, type) of every note.
    note_kinds: Vec<(String, u32)>,
    /// `.stapsdt.base`: type, allocated, writable, executable, size.
    base_section: (u32, bool, bool, bool, u64),
    /// `.probes`: type, allocated, writable, executable.
    probes_section: (u32, bool, bool, bool),
    /// Each semaphore: its size.
    semaphore_sizes: Vec<u64>,
}

/// Checks the invariants of sys/sdt.h's format on `path` and returns its
/// shape.
fn shape(path: &Path) -> Shape {
    let bytes = read(path);
    let elf = Elf::parse(&bytes).unwrap();
    let flags = |f: u64| {
        (
            f & SHF_ALLOC as u64 != 0,
            f & SHF_WRITE as u64 != 0,
            f & SHF_EXECINSTR as u64 != 0,
        )
    };
    let note_section = section(&elf, &bytes, ".note.stapsdt").expect(".note.stapsdt");
    let base = section(&elf, &bytes, ".stapsdt.base").expect(".stapsdt.base");
    let probes = section(&elf, &bytes, ".probes").expect(".probes");
    let notes = raw_notes(note_section.data);

    // The raw decoding agrees with readelf.
    let listed = readelf_notes("readelf", path);
    assert_eq!(listed.len(), notes.len());
    for (raw, listed) in notes.iter().zip(&listed) {
        assert_eq!(
            (
                &raw.provider,
                &raw.name,
                raw.pc,
                raw.base,
                raw.semaphore,
                &raw.args
            ),
            (
                &listed.provider,
                &listed.name,
                listed.location,
                listed.base,
                listed.semaphore,
                &listed.args
            )
        );
    }

    let mut semaphore_sizes = Vec::new();
    for note in &notes {
        let probe = format!("{}:{}", note.provider, note.name);
        assert!(
            elf.program_headers.iter().any(|ph| ph.p_type == PT_LOAD
                && ph.p_flags & PF_X != 0
                && ph.p_vaddr <= note.pc
                && note.pc < ph.p_vaddr + ph.p_memsz),
            "{probe}: pc {:#x} not in an executable segment",
            note.pc
        );
        assert_eq!(note.base, base.addr, "{probe}: base");
        if note.semaphore != 0 {
            assert!(
                probes.addr <= note.semaphore && note.semaphore + 2 <= probes.addr + probes.size,
                "{probe}: semaphore outside .probes"
            );
            let symbol = format!("{}_{}_semaphore", note.provider, note.name);
            let sym = elf
                .syms
                .iter()
                .find(|s| elf.strtab.get_at(s.st_name) == Some(symbol.as_str()))
                .unwrap_or_else(|| panic!("{probe}: no symbol {symbol}"));
            assert_eq!(sym.st_value, note.semaphore, "{probe}: {symbol}");
            semaphore_sizes.push(sym.st_size);
        }
    }
    assert!(
        !semaphore_sizes.is_empty(),
        "{}: no semaphore",
        path.display()
    );
    semaphore_sizes.dedup();

    let mut note_kinds: Vec<(String, u32)> = notes
        .iter()
        .map(|n| (n.owner.clone(), n.note_type))
        .collect();
    note_kinds.dedup();
    let (b_alloc, b_write, b_exec) = flags(base.flags);
    let (p_alloc, p_write, p_exec) = flags(probes.flags);
    Shape {
        note_section: (
            note_section.sh_type,
            flags(note_section.flags).0,
            note_section.align,
        ),
        note_kinds,
        base_section: (base.sh_type, b_alloc, b_write, b_exec, base.size),
        probes_section: (probes.sh_type, p_alloc, p_write, p_exec),
        semaphore_sizes,
    }
}

#[test]
fn notes_have_the_structure_of_sys_sdt_h() {
    let test = "notes_have_the_structure_of_sys_sdt_h";
    if !require_tool(test, "cc") || !require_tool(test, "readelf") {
        return;
    }
    let dir = scratch_dir(test);
    let c_binary = dir.join("macros_sdt");
    run(Command::new("cc")
        .arg("-O2")
        .arg(fixtures_dir().join("macros_sdt.c"))
        .arg(fixtures_dir().join("macros_sdt_guarded.c"))
        .arg("-o")
        .arg(&c_binary));

    let c_shape = shape(&c_binary);
    let rust_shape = shape(catalog());
    assert_eq!(c_shape.note_kinds, vec![("stapsdt".to_string(), 3)]);
    assert_eq!(c_shape.semaphore_sizes, vec![2]);
    assert_eq!(rust_shape, c_shape);

    // The same probe names and argument sizes for the probes both have.
    let c_notes = readelf_notes("readelf", &c_binary);
    let rust_notes = readelf_notes("readelf", catalog());
    for c in &c_notes {
        let rust = rust_notes
            .iter()
            .find(|r| r.provider == c.provider && r.name == c.name)
            .unwrap_or_else(|| panic!("no {} in probe_catalog", c.probe()));
        let sizes = |args: &str| -> Vec<String> {
            args.split_whitespace()
                .filter(|a| a.contains('@'))
                .map(|a| a.split('@').next().unwrap().to_string())
                .collect()
        };
        // Our strings take two slots where C passes a pointer.
        let c_sizes = sizes(&c.args);
        let rust_sizes = sizes(&rust.args);
        if c.name == "order_placed" {
            assert_eq!(c_sizes, ["8", "8", "-8"]);
            assert_eq!(rust_sizes, ["8", "8", "8", "-8"]);
        } else if c.name == "negative" {
            assert_eq!(c_sizes, ["-1", "-2", "-4", "-8"]);
            assert_eq!(&rust_sizes[..4], ["-1", "-2", "-4", "-8"]);
        } else {
            assert_eq!(c_sizes, rust_sizes, "{}", c.probe());
        }
        assert_eq!(c.semaphore == 0, rust.semaphore == 0, "{}", c.probe());
    }
}
