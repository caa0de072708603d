//! A whole ELF image: headers, notes, type records, symbols and probes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usdt_reader::ElfFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ElfFile::parse(data.to_vec()) else {
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
