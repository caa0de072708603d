//! The notes of the `probe_catalog` example as `readelf -n` lists them, and
//! the raw sections behind them: every probe with its provider, name and
//! argument string, the 5-byte nop at each site, `.stapsdt.base`, the
//! semaphores in `.probes`, and the `.usdt.types` records.

use crate::catalog;
use goblin::elf::Elf;
use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOTE, SHT_PROGBITS};
use std::collections::{BTreeMap, HashMap};
use usdt_interop_tests::elf::*;
use usdt_interop_tests::macros::*;
use usdt_interop_tests::require_tool;

/// Sites grouped by probe, as multisets of normalized argument strings.
fn by_probe<T: Ord>(items: impl Iterator<Item = (String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut map: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (probe, item) in items {
        map.entry(probe).or_default().push(item);
    }
    for items in map.values_mut() {
        items.sort();
    }
    map
}

#[test]
fn readelf_lists_every_probe_with_its_argument_formats() {
    if !require_tool(
        "readelf_lists_every_probe_with_its_argument_formats",
        "readelf",
    ) {
        return;
    }
    let notes = readelf_notes("readelf", catalog());
    let expected = by_probe(
        catalog_sites()
            .iter()
            .map(|s| (s.probe(), expected_x86_args(s))),
    );
    let actual = by_probe(
        notes
            .iter()
            .map(|n| (n.probe(), normalize_x86_args(&n.args))),
    );
    assert_eq!(actual, expected);

    // Spot checks of the exact text, registers included in the pattern.
    let text = notes.iter().find(|n| n.name == "text").unwrap();
    assert!(
        text.args.starts_with("8@0(%r") && text.args.contains(" 8@8(%r"),
        "{}",
        text.args
    );
    let wide = notes.iter().find(|n| n.name == "wide").unwrap();
    assert_eq!(
        normalize_x86_args(&wide.args),
        "8@0(%REG) 8@8(%REG) 8@0(%REG) -8@8(%REG) 8@0(%REG) 8@8(%REG) 8@0(%REG) -8@8(%REG)"
    );
    let twelve = notes.iter().find(|n| n.name == "twelve").unwrap();
    assert_eq!(twelve.args.split(' ').count(), 12);
}

#[test]
fn sites_are_five_byte_nops_with_the_base_and_semaphores_of_sys_sdt_h() {
    if !require_tool(
        "sites_are_five_byte_nops_with_the_base_and_semaphores_of_sys_sdt_h",
        "readelf",
    ) {
        return;
    }
    let path = catalog();
    let bytes = read(path);
    let elf = Elf::parse(&bytes).unwrap();
    let notes = readelf_notes("readelf", path);
    assert_eq!(notes.len(), catalog_sites().len());

    let base = section(&elf, &bytes, ".stapsdt.base").expect(".stapsdt.base");
    assert_eq!(base.sh_type, SHT_PROGBITS);
    assert_eq!(base.size, 1);
    assert_ne!(base.flags & SHF_ALLOC as u64, 0);
    let text = section(&elf, &bytes, ".text").expect(".text");
    assert_ne!(text.flags & SHF_EXECINSTR as u64, 0);

    let probes = section(&elf, &bytes, ".probes").expect(".probes");
    assert_eq!(probes.sh_type, SHT_PROGBITS);
    assert_eq!(
        probes.flags & (SHF_ALLOC | SHF_WRITE) as u64,
        (SHF_ALLOC | SHF_WRITE) as u64
    );

    let mut semaphores: HashMap<String, u64> = HashMap::new();
    for note in &notes {
        assert_eq!(note.base, base.addr, "{}: base", note.probe());
        assert!(
            note.location >= text.addr && note.location + 5 <= text.addr + text.size,
            "{}: pc {:#x} outside .text",
            note.probe(),
            note.location
        );
        assert_eq!(
            bytes_at(&elf, &bytes, note.location, 5),
            [0x0f, 0x1f, 0x44, 0x00, 0x00],
            "{}: the site is not the 5-byte nop",
            note.probe()
        );
        if note.provider != "catalog" {
            assert!(
                note.semaphore >= probes.addr && note.semaphore + 2 <= probes.addr + probes.size,
                "{}: semaphore {:#x} outside .probes",
                note.probe(),
                note.semaphore
            );
            let symbol = format!("{}_{}_semaphore", note.provider, note.name);
            assert_eq!(
                symbol_address(&elf, &symbol),
                Some(note.semaphore),
                "{symbol}"
            );
            if let Some(previous) = semaphores.insert(note.probe(), note.semaphore) {
                assert_eq!(previous, note.semaphore, "{}: two semaphores", note.probe());
            }
            // Not raised in the file.
            assert_eq!(bytes_at(&elf, &bytes, note.semaphore, 2), [0, 0]);
        } else {
            assert_eq!(
                note.semaphore,
                0,
                "{}: plain probes have none",
                note.probe()
            );
        }
    }
    // Six typed probes, six distinct semaphores.
    let mut distinct: Vec<u64> = semaphores.values().copied().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn usdt_types_records_name_every_argument() {
    if !require_tool("usdt_types_records_name_every_argument", "readelf") {
        return;
    }
    let path = catalog();
    let bytes = read(path);
    let elf = Elf::parse(&bytes).unwrap();
    let types = section(&elf, &bytes, ".usdt.types").expect(".usdt.types");
    assert_eq!(types.sh_type, SHT_PROGBITS);
    // Not loaded at run time; only the retain flag (0x200000), which keeps
    // linkers from discarding it.
    assert_eq!(
        types.flags & !0x20_0000,
        0,
        ".usdt.types must not be loaded"
    );
    assert_eq!(types.addr, 0);
    let records = parse_type_records(types.data);
    let notes = readelf_notes("readelf", path);
    assert_eq!(records.len(), notes.len(), "one record per note");

    // Each note has exactly one record with its pc, provider and name.
    for note in &notes {
        let matching: Vec<_> = records
            .iter()
            .filter(|r| r.pc == note.location && r.provider == note.provider && r.name == note.name)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "records for {} at {:#x}",
            note.probe(),
            note.location
        );
    }

    // The records carry the declared names, kinds and guard flag.
    let expected = by_probe(catalog_sites().iter().map(|s| {
        (
            s.probe(),
            (
                u8::from(s.guarded),
                s.args
                    .iter()
                    .map(|a| (kind(a.kind).code, a.name.clone()))
                    .collect::<Vec<_>>(),
            ),
        )
    }));
    let actual = by_probe(records.iter().map(|r| {
        (
            format!("{}:{}", r.provider, r.name),
            (r.flags, r.args.clone()),
        )
    }));
    assert_eq!(actual, expected);
}

#[test]
fn note_section_is_a_non_allocated_note() {
    let bytes = read(catalog());
    let elf = Elf::parse(&bytes).unwrap();
    let notes = section(&elf, &bytes, ".note.stapsdt").expect(".note.stapsdt");
    assert_eq!(notes.sh_type, SHT_NOTE);
    assert_eq!(notes.flags & SHF_ALLOC as u64, 0);
    assert_eq!(notes.addr, 0);
}

#[test]
fn functions_with_probe_sites_leave_the_red_zone_alone() {
    let test = "functions_with_probe_sites_leave_the_red_zone_alone";
    if !require_tool(test, "objdump") || !require_tool(test, "readelf") {
        return;
    }
    let pcs: Vec<u64> = readelf_notes("readelf", catalog())
        .iter()
        .map(|n| n.location)
        .collect();
    assert_no_red_zone_use(catalog(), &pcs);
}
