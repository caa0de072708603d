//! The argument-string parser of every architecture on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usdt_reader::{Arch, parse_args};

const ARCHES: [Arch; 8] = [
    Arch::X86_64,
    Arch::X86,
    Arch::AArch64,
    Arch::Arm,
    Arch::Riscv64,
    Arch::S390x,
    Arch::PowerPc64,
    Arch::Other(0),
];

/// Resolves a few names, so symbol arithmetic is exercised too.
fn symbols(name: &str) -> Option<u64> {
    match name.len() % 3 {
        0 => Some(u64::MAX - name.len() as u64),
        1 => Some(0x4010),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let arch = ARCHES[usize::from(selector) % ARCHES.len()];
    if let Ok(specs) = parse_args(arch, text, &symbols) {
        for spec in specs {
            assert!(matches!(spec.size, 1 | 2 | 4 | 8));
            let _ = spec.location.to_string();
        }
    }
});
