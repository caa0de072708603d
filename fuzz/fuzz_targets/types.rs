//! The `.usdt.types` record parser on arbitrary section bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usdt_reader::types::TypeRecords;
use usdt_reader::{Endian, Layout};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, section)) = data.split_first() else {
        return;
    };
    let layout = Layout {
        endian: if selector & 1 == 0 {
            Endian::Little
        } else {
            Endian::Big
        },
        is_64: selector & 2 != 0,
    };
    for record in TypeRecords::new(section, layout).flatten() {
        assert!(record.signature.args.len() <= 12);
        let _ = record.signature.to_string();
    }
});
