//! The committed BPF object (`usdt-tracer/bpf/usdt-tracer.bpf.o`, built from
//! `tracer-ebpf`) against this crate's contract, without loading it: its maps
//! are exactly the ones the `*_MAP` constants name, with the types and the
//! key and value sizes of the shared types, and its programs are
//! `PROGRAM_NAME` in section `PROGRAM_SECTION`, its uprobe_multi twin
//! `PROGRAM_NAME_MULTI` in `PROGRAM_SECTION_MULTI` and its non-sleepable twin
//! `PROGRAM_NAME_NOSLEEP` in `PROGRAM_SECTION_NOSLEEP`.

use aya::maps::MapType;
use goblin::elf::sym::STT_FUNC;
use goblin::elf::{Elf, SectionHeader};
use std::collections::BTreeMap;
use std::mem::size_of;
use usdt_tracer_common::CountedStack;
use usdt_tracer_common::{
    AGG_ERR_COUNT, AGG_ERRORS_MAP, AGGREGATES_MAP, AggKey, CONTROL_MAP, Control, CounterKey,
    DROPS_MAP, EVENTS_MAP, PENDING_MAP, PROGRAM_NAME, PROGRAM_NAME_MULTI, PROGRAM_NAME_NOSLEEP,
    PROGRAM_SECTION, PROGRAM_SECTION_MULTI, PROGRAM_SECTION_NOSLEEP, SITE_IPS_MAP,
    SITE_OPTIONS_MAP, SITES_MAP, STACK_SCRATCH_MAP, STACKS_MAP, STARTS_MAP, SiteIpKey, SiteOptions,
    SitePlan, StackScratch, StartKey, TEXT_AGGREGATES_MAP,
};

const OBJECT: &[u8] = include_bytes!("../../usdt-tracer/bpf/usdt-tracer.bpf.o");

/// The section aya-ebpf places map definitions in.
const MAPS_SECTION: &str = "maps";

/// A map definition as aya-ebpf writes it (`struct bpf_map_def`): `u32`
/// fields in the target's byte order, little endian for `bpfel`.
#[derive(Debug, PartialEq, Eq)]
struct MapDef {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    /// `None` where user space sets the size at load time.
    max_entries: Option<u32>,
}

/// What this crate promises for each map.
fn expected_maps() -> BTreeMap<&'static str, MapDef> {
    let array_of = |value_size: usize, max_entries: Option<u32>| MapDef {
        map_type: MapType::Array as u32,
        key_size: size_of::<u32>() as u32,
        value_size: value_size as u32,
        max_entries,
    };
    let hash_of = |key_size: usize| MapDef {
        map_type: MapType::Hash as u32,
        key_size: key_size as u32,
        value_size: size_of::<u64>() as u32,
        max_entries: None,
    };
    BTreeMap::from([
        (SITES_MAP, array_of(size_of::<SitePlan>(), None)),
        (SITE_OPTIONS_MAP, array_of(size_of::<SiteOptions>(), None)),
        (
            SITE_IPS_MAP,
            MapDef {
                value_size: size_of::<u32>() as u32,
                ..hash_of(size_of::<SiteIpKey>())
            },
        ),
        (
            EVENTS_MAP,
            MapDef {
                map_type: MapType::RingBuf as u32,
                key_size: 0,
                value_size: 0,
                max_entries: None,
            },
        ),
        (DROPS_MAP, array_of(size_of::<u64>(), Some(1))),
        (
            PENDING_MAP,
            MapDef {
                map_type: MapType::PerCpuArray as u32,
                ..array_of(size_of::<u64>(), Some(1))
            },
        ),
        (CONTROL_MAP, array_of(size_of::<Control>(), Some(1))),
        (AGGREGATES_MAP, hash_of(size_of::<CounterKey>())),
        (TEXT_AGGREGATES_MAP, hash_of(size_of::<AggKey>())),
        (STARTS_MAP, hash_of(size_of::<StartKey>())),
        (
            STACKS_MAP,
            MapDef {
                value_size: size_of::<CountedStack>() as u32,
                ..hash_of(size_of::<u64>())
            },
        ),
        (
            STACK_SCRATCH_MAP,
            MapDef {
                map_type: MapType::PerCpuArray as u32,
                ..array_of(size_of::<StackScratch>(), Some(1))
            },
        ),
        (
            AGG_ERRORS_MAP,
            array_of(size_of::<u64>(), Some(AGG_ERR_COUNT)),
        ),
    ])
}

fn section_name<'a>(elf: &'a Elf, header: &SectionHeader) -> &'a str {
    elf.shdr_strtab.get_at(header.sh_name).unwrap_or("")
}

fn u32_at(data: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(data[offset..offset + 4].try_into().unwrap())
}

#[test]
fn maps_are_the_shared_ones() {
    let elf = Elf::parse(OBJECT).expect("the BPF object parses");
    let (maps_index, maps) = elf
        .section_headers
        .iter()
        .enumerate()
        .find(|(_, header)| section_name(&elf, header) == MAPS_SECTION)
        .expect("the BPF object has a maps section");
    let data = &OBJECT[maps.file_range().expect("the maps section has data")];
    let expected = expected_maps();
    let mut found = BTreeMap::new();
    for sym in elf.syms.iter().filter(|sym| sym.st_shndx == maps_index) {
        let name = elf.strtab.get_at(sym.st_name).expect("a map symbol's name");
        let offset = sym.st_value as usize;
        assert!(
            sym.st_size >= 16 && offset + sym.st_size as usize <= data.len(),
            "{name}: a {}-byte definition at {offset:#x} of a {}-byte section",
            sym.st_size,
            data.len()
        );
        let def = MapDef {
            map_type: u32_at(data, offset),
            key_size: u32_at(data, offset + 4),
            value_size: u32_at(data, offset + 8),
            max_entries: Some(u32_at(data, offset + 12)),
        };
        assert!(found.insert(name, def).is_none(), "{name} is defined twice");
    }
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the object's maps are not the ones usdt-tracer-common names"
    );
    for (name, def) in &expected {
        let mut actual = found.remove(name).unwrap();
        if def.max_entries.is_none() {
            // A placeholder the loader replaces: not part of the contract.
            actual.max_entries = None;
        }
        assert_eq!(&actual, def, "map {name}");
    }
}

#[test]
fn the_program_is_the_shared_one() {
    let elf = Elf::parse(OBJECT).expect("the BPF object parses");
    // Every function outside `.text` (where the compiler's memcpy and its
    // kin live) is a program, named after its symbol, of its section's type.
    let programs: Vec<(&str, &str)> = elf
        .syms
        .iter()
        .filter(|sym| sym.st_type() == STT_FUNC)
        .filter_map(|sym| {
            let section = section_name(&elf, elf.section_headers.get(sym.st_shndx)?);
            let name = elf.strtab.get_at(sym.st_name)?;
            (section != ".text").then_some((name, section))
        })
        .collect();
    assert_eq!(
        programs,
        [
            (PROGRAM_NAME, PROGRAM_SECTION),
            (PROGRAM_NAME_MULTI, PROGRAM_SECTION_MULTI),
            (PROGRAM_NAME_NOSLEEP, PROGRAM_SECTION_NOSLEEP),
        ]
    );
}
