//! usdt-reader on the `probe_catalog` example built from this SDK's macros:
//! every site's `.usdt.types` record is decoded into the declared
//! signature, and the note arguments follow the binary contract for each
//! argument kind (sizes, signs, one full register per 1-slot kind, a
//! pointer to a 16-byte pair for 2-slot kinds). Corrupt records are typed
//! errors; an unknown record version is skipped.

use crate::CATALOG;
use std::collections::BTreeMap;
use std::path::Path;
use usdt_interop_tests::elf::readelf_section;
use usdt_reader::types::TypesError;
use usdt_reader::{ArgKind, ArgLocation, ElfFile, Error, Probe};

fn catalog() -> ElfFile {
    ElfFile::open(CATALOG).unwrap()
}

/// The note slots of each kind on a 64-bit target, restated from the
/// contract: (size, signed) per slot.
fn slots(kind: ArgKind) -> &'static [(u8, bool)] {
    use ArgKind::*;
    match kind {
        U8 | Bool => &[(1, false)],
        U16 => &[(2, false)],
        U32 | Char | F32 => &[(4, false)],
        U64 | Usize | F64 | Ptr | CStr => &[(8, false)],
        I8 => &[(1, true)],
        I16 => &[(2, true)],
        I32 => &[(4, true)],
        I64 | Isize => &[(8, true)],
        U128 | Str | Bytes | Json => &[(8, false), (8, false)],
        I128 => &[(8, false), (8, true)],
    }
}

#[test]
fn signatures_are_decoded_for_every_site() {
    let probes = catalog().probes().unwrap();
    assert!(probes.len() >= 20, "{}", probes.len());
    let mut kinds_seen = std::collections::BTreeSet::new();
    for probe in &probes {
        let what = probe.qualified_name();
        let signature = probe
            .signature
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no signature"));
        assert_eq!(signature.guarded, probe.semaphore.is_some(), "{what}");
        // The typed providers (store, shelf) are guarded, catalog's plain probes not.
        assert_eq!(signature.guarded, probe.provider != "catalog", "{what}");
        let specs = probe.arg_specs.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signature.slots(), specs.len(), "{what}");
        let mut next = specs.iter();
        for arg in &signature.args {
            kinds_seen.insert(arg.kind);
            let pair: Vec<_> = next.by_ref().take(arg.kind.slots()).collect();
            let sizes: Vec<(u8, bool)> = pair.iter().map(|s| (s.size, s.signed)).collect();
            assert_eq!(
                sizes,
                slots(arg.kind),
                "{what} {}: {}",
                arg.name,
                probe.args
            );
            match pair[..] {
                // One full 64-bit register.
                [one] => match &one.location {
                    ArgLocation::Register(reg) => assert_eq!(reg.width, 64, "{what}"),
                    other => panic!("{what} {}: {other:?}", arg.name),
                },
                // A pointer to the pair: 0(%reg) and 8(%reg).
                [low, high] => match (&low.location, &high.location) {
                    (
                        ArgLocation::Memory {
                            base: a,
                            index: None,
                            offset: 0,
                        },
                        ArgLocation::Memory {
                            base: b,
                            index: None,
                            offset: 8,
                        },
                    ) => {
                        assert_eq!(a, b, "{what}");
                        assert_eq!(a.width, 64, "{what}");
                    }
                    other => panic!("{what} {}: {other:?}", arg.name),
                },
                _ => unreachable!(),
            }
        }
        // Semaphores are the sys/sdt.h-named statics.
        if let Some(address) = probe.semaphore {
            let symbol = format!("{}_{}_semaphore", probe.provider, probe.name);
            assert_eq!(catalog().symbol(&symbol), Some(address), "{what}");
        }
    }
    // The catalog uses every kind of the contract.
    assert_eq!(kinds_seen.len(), ArgKind::ALL.len(), "{kinds_seen:?}");
}

#[test]
fn typed_provider_signatures_read_as_declared() {
    let probes = catalog().probes().unwrap();
    let by_name: BTreeMap<String, &Probe> =
        probes.iter().map(|p| (p.qualified_name(), p)).collect();
    let show = |name: &str| by_name[name].display_signature();
    assert_eq!(
        show("store:order_placed"),
        "store:order_placed(order_id: u64, customer: &str, total_cents: i64)"
    );
    assert_eq!(
        show("store:order_json"),
        "store:order_json(order_id: u64, order: json)"
    );
    assert_eq!(
        show("store:item_scanned"),
        "store:item_scanned(sku: u32, weight_kg: f64, fragile: bool, grade: char, tag: &[u8], label: &CStr, serial: u128, delta: i128)"
    );
    assert_eq!(show("store:tick"), "store:tick()");
    assert_eq!(
        show("catalog:text"),
        "catalog:text(arg0: &str, arg1: &str, arg2: &[u8], arg3: &CStr)"
    );
}

#[test]
fn bad_records_are_typed_errors_and_new_versions_are_skipped() {
    if !usdt_interop_tests::require_tool("reader_catalog", "readelf") {
        return;
    }
    let bytes = std::fs::read(CATALOG).unwrap();
    // The file offset and size of `.usdt.types`, from readelf.
    let types = readelf_section("readelf", Path::new(CATALOG), ".usdt.types").expect(".usdt.types");
    let (offset, size) = (types.offset, types.size);
    assert!(size > 0);
    assert_eq!(bytes[offset], 0x55, "records start with the magic number");

    let mut bad_magic = bytes.clone();
    bad_magic[offset] = 0x56;
    match ElfFile::parse(bad_magic).unwrap().probes() {
        Err(Error::Types {
            section_offset,
            source:
                TypesError::BadMagic {
                    offset: 0,
                    found: 0x56,
                },
            ..
        }) => assert_eq!(section_offset, offset as u64),
        other => panic!("{other:?}"),
    }

    let mut bad_kind = bytes.clone();
    // The first record's first argument kind, after magic, version, count,
    // flags, an 8-byte pc and two names.
    let names_start = offset + 4 + 8;
    let provider_end = names_start + bytes[names_start..].iter().position(|&b| b == 0).unwrap();
    let name_end = provider_end
        + 1
        + bytes[provider_end + 1..]
            .iter()
            .position(|&b| b == 0)
            .unwrap();
    if bytes[offset + 2] > 0 {
        bad_kind[name_end + 1] = 0;
        let error = ElfFile::parse(bad_kind).unwrap().probes().unwrap_err();
        assert!(
            matches!(
                error,
                Error::Types {
                    source: TypesError::BadKind { code: 0, .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("<memory>: .usdt.types at file offset")
        );
    }

    // A record of a later version ends the walk quietly: the probes are
    // listed, without signatures from that record on.
    let mut future = bytes.clone();
    future[offset + 1] = 2;
    let probes = ElfFile::parse(future).unwrap().probes().unwrap();
    assert_eq!(probes.len(), catalog().probes().unwrap().len());
    assert!(probes.iter().all(|p| p.signature.is_none()));

    // A truncated section (the last record cut short) is an error.
    let mut cut = bytes.clone();
    let end = offset + size;
    cut[end - 1] = b'x'; // the last argument name loses its NUL
    let error = ElfFile::parse(cut).unwrap().probes().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Types {
                source: TypesError::Truncated { .. },
                ..
            }
        ),
        "{error}"
    );
}
