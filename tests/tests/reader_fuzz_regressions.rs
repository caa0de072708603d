//! Inputs that once made the reader panic, found by fuzzing (`cargo xtask
//! fuzz`) and kept in fuzz/regressions/TARGET/: each goes through what its
//! fuzz target does, and must come back as a value or an error.

use std::path::Path;
use usdt_reader::ElfFile;

/// The kept inputs of fuzz target `target`.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    inputs
}

#[test]
fn whole_elf_images_that_once_panicked() {
    for (name, bytes) in inputs("elf") {
        // What fuzz/fuzz_targets/elf.rs does; a panic names the input.
        let outcome = std::panic::catch_unwind(|| {
            let Ok(file) = ElfFile::parse(bytes) else {
                return;
            };
            let _ = file.notes();
            let _ = file.type_records();
            let _ = file.symbol("counter");
            if let Ok(probes) = file.probes() {
                for probe in probes {
                    let _ = file.file_offset(probe.address);
                }
            }
        });
        assert!(outcome.is_ok(), "{name} panics the reader");
    }
}
