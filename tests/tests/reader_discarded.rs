//! Notes of functions the linker discarded: lld's `--gc-sections` drops an
//! unused function but keeps its stapsdt note, relocated to pc 0. readelf
//! lists such a note; the reader must not offer it as a probe site (a uprobe
//! there would land in the ELF header).

use std::process::Command;
use usdt_interop_tests::{compile_c, lld_flag, require_tool, run, scratch_dir};
use usdt_reader::ElfFile;

#[test]
fn notes_of_discarded_functions_are_not_probe_sites() {
    let test = "notes_of_discarded_functions_are_not_probe_sites";
    if !require_tool(test, "gcc") {
        return;
    }
    let Some(lld) = lld_flag(test) else {
        return;
    };
    let out = scratch_dir("reader_discarded");
    let binary = compile_c(
        "gcc",
        "sdt_discarded.c",
        &[
            "-O2",
            "-ffunction-sections",
            "-fuse-ld=lld",
            &lld,
            "-Wl,--gc-sections",
        ],
        &out,
    );

    // The premise: the linker kept the discarded function's note at pc 0.
    let readelf = run(Command::new("readelf").arg("-n").arg(&binary));
    let gone = readelf
        .split("Provider: discarded")
        .find(|note| note.contains("Name: gone"))
        .expect("readelf lists the discarded function's note");
    assert!(
        gone.contains("Location: 0x0000000000000000"),
        "expected pc 0 for the discarded note:\n{gone}"
    );

    let file = ElfFile::open(&binary).expect("open the fixture");
    assert_eq!(file.notes().expect("notes").len(), 2);
    let probes = file.probes().expect("probes");
    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kept"]);

    // The site that remains is real code: sys/sdt.h's one-byte nop.
    let bytes = std::fs::read(&binary).expect("read the fixture");
    assert_eq!(bytes[probes[0].file_offset as usize], 0x90);
}
