//! Insta snapshots of the probe metadata usdt-reader finds in the test
//! programs, per architecture: the C fixtures (x86-64, aarch64, i386,
//! aarch64 big-endian) with their parsed argument locations, and the
//! `probe_catalog` example built from this SDK's macros (through the
//! snapshot helper applications use). Addresses are left out.

use crate::CATALOG;
use serde::Serialize;
use usdt_interop_tests::reader::{cross_fixtures, cross_tools_present, fixture, fixtures};
use usdt_interop_tests::require_tool;
use usdt_reader::{ArgLocation, ArgSpec, ElfFile, Probe};

const TEST: &str = "reader_snapshots";

/// One probe as the snapshots show it.
#[derive(Serialize)]
struct Entry {
    probe: String,
    semaphore: bool,
    args: String,
    /// Each argument as `TYPE LOCATION`: `i32 %edi`, `u64 [%rbp-16]`,
    /// `i32 [%rdx+%rax*4]`, `u8 [g_u8]` (a fixed address, by symbol),
    /// `i64 $-1`; or the parse error.
    specs: Vec<String>,
}

fn describe(file: &ElfFile, spec: &ArgSpec) -> String {
    let kind = format!(
        "{}{}",
        if spec.float {
            'f'
        } else if spec.signed {
            'i'
        } else {
            'u'
        },
        u32::from(spec.size) * 8
    );
    let location = match &spec.location {
        // The link-time address changes with the layout; the symbol and
        // the offset from it do not.
        ArgLocation::Address {
            symbol: Some(symbol),
            address,
            index,
        } => {
            let index = match index {
                Some(index) => format!("+{index}"),
                None => String::new(),
            };
            match address.wrapping_sub(file.symbol(symbol).unwrap()) {
                0 => format!("[{symbol}{index}]"),
                offset => format!("[{symbol}+{offset}{index}]"),
            }
        }
        ArgLocation::Address { symbol: None, .. } => "[absolute]".into(),
        other => other.to_string(),
    };
    format!("{kind} {location}")
}

fn entries(file: &ElfFile, probes: &[Probe]) -> Vec<Entry> {
    probes
        .iter()
        .map(|p| Entry {
            probe: p.qualified_name(),
            semaphore: p.semaphore.is_some(),
            args: p.args.clone(),
            specs: match &p.arg_specs {
                Ok(specs) => specs.iter().map(|spec| describe(file, spec)).collect(),
                Err(error) => vec![format!("error: {}", error.kind)],
            },
        })
        .collect()
}

fn snapshot(name: &str, value: impl Serialize) {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_yaml_snapshot!(name, value);
    });
}

#[test]
fn c_fixtures_per_architecture() {
    if !["gcc", "aarch64-linux-gnu-gcc"]
        .iter()
        .all(|tool| require_tool(TEST, tool))
    {
        return;
    }
    let fixtures = fixtures();
    for name in [
        "x86_64_args_O0",
        "x86_64_args_O2",
        "x86_64_lib_O2",
        "x86_64_args_nopie_O0",
        "x86_64_args_nopie_O2",
        "aarch64_args_O0",
        "aarch64_args_O2",
        "aarch64_args_O2_noanchors",
        "aarch64_index_O2",
        "aarch64_lib_O2",
        "i386_bare_pie",
        "i386_bare_nopie",
        "aarch64_be_bare",
    ] {
        let file = ElfFile::open(&fixture(fixtures, name).path).unwrap();
        let probes = file.probes().unwrap();
        snapshot(&format!("reader_{name}"), entries(&file, &probes));
    }
}

#[test]
fn cross_compiled_fixtures_per_architecture() {
    if !cross_tools_present(TEST) {
        return;
    }
    let fixtures = cross_fixtures();
    for arch in ["riscv64", "s390x", "ppc64le", "arm", "i386"] {
        for name in ["args_O0", "args_O2", "lib_O2"] {
            let name = format!("{arch}_{name}");
            let file = ElfFile::open(&fixture(fixtures, &name).path).unwrap();
            let probes = file.probes().unwrap();
            snapshot(&format!("reader_{name}"), entries(&file, &probes));
        }
    }
}

#[test]
fn probe_catalog_metadata() {
    // The helper applications call from their own tests, on the example
    // built from this SDK's macros: sorted, no addresses or registers.
    let probes = usdt_reader::snapshot::of_file(CATALOG).unwrap();
    snapshot("reader_probe_catalog", probes);
}
