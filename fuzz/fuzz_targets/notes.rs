//! The stapsdt note parser on arbitrary section bytes, in every layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usdt_reader::note::Notes;
use usdt_reader::{Endian, Layout};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the byte order, the class and the alignment.
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
    let align = if selector & 4 != 0 { 8 } else { 4 };
    for note in Notes::new(section, layout, align) {
        if let Ok(note) = note {
            assert!(note.offset < section.len());
            // Everything borrowed lies inside the section.
            for text in [note.provider, note.name, note.args] {
                let start = text.as_ptr() as usize - section.as_ptr() as usize;
                assert!(start + text.len() <= section.len());
            }
        }
    }
});
