//! The `.note.stapsdt` section: one ELF note per probe site.
//!
//! Each note has the owner `stapsdt` and type 3; its descriptor holds three
//! addresses of the file's class width (the probe's pc, the link-time
//! address of `_.stapsdt.base`, the semaphore's address or 0) followed by
//! three NUL-terminated strings: provider, name and argument string.
//!
//! [`Notes`] walks a section's bytes without copying: every string borrows
//! from the input, and malformed bytes give a [`NoteError`], never a panic.

use crate::bytes::{Layout, cstr_at};
use thiserror::Error;

pub use usdt_format::STAPSDT_NOTE_SECTION as STAPSDT_SECTION;
pub use usdt_format::{NT_STAPSDT, STAPSDT_BASE_SECTION};

/// The owner name of a SystemTap probe note, as the note's bytes hold it
/// (without the NUL).
pub const STAPSDT_OWNER: &[u8] = usdt_format::STAPSDT_NOTE_NAME.as_bytes();

/// One probe site as the note records it, borrowing its strings from the
/// section data. Addresses are the raw link-time values of the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StapsdtNote<'data> {
    /// Offset of the note (its header) within the section.
    pub offset: usize,
    /// The probe site's address as recorded.
    pub pc: u64,
    /// The address of `_.stapsdt.base` when the note was written.
    pub base: u64,
    /// The semaphore's address, or 0 when the probe has none.
    pub semaphore: u64,
    /// The provider name.
    pub provider: &'data str,
    /// The probe name.
    pub name: &'data str,
    /// The argument string, e.g. `-4@%edi 8@-16(%rbp)`; empty for none.
    pub args: &'data str,
}

/// A malformed note; `offset` is that of the note within its section.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoteError {
    /// Fewer than 12 bytes remain for a note header.
    #[error(
        "note at offset {offset:#x} is truncated: its 12-byte header needs more than the {available} bytes left"
    )]
    TruncatedHeader {
        /// Offset of the note.
        offset: usize,
        /// Bytes left in the section.
        available: usize,
    },
    /// The owner name runs past the end of the section.
    #[error(
        "note at offset {offset:#x} has a name size of {namesz} bytes, more than the section holds"
    )]
    BadNameSize {
        /// Offset of the note.
        offset: usize,
        /// The `namesz` field.
        namesz: u32,
    },
    /// The descriptor runs past the end of the section.
    #[error(
        "note at offset {offset:#x} has a descriptor size of {descsz} bytes, more than the section holds"
    )]
    BadDescSize {
        /// Offset of the note.
        offset: usize,
        /// The `descsz` field.
        descsz: u32,
    },
    /// A stapsdt descriptor too short for its three addresses.
    #[error(
        "stapsdt note at offset {offset:#x} has a {descsz}-byte descriptor, too short for three {address_size}-byte addresses"
    )]
    ShortDescriptor {
        /// Offset of the note.
        offset: usize,
        /// The `descsz` field.
        descsz: u32,
        /// The file's address size.
        address_size: usize,
    },
    /// A string of the descriptor has no terminating NUL.
    #[error("stapsdt note at offset {offset:#x}: the {field} string has no terminating NUL")]
    MissingNul {
        /// Offset of the note.
        offset: usize,
        /// `provider`, `name` or `arguments`.
        field: &'static str,
    },
    /// A string of the descriptor is not UTF-8.
    #[error("stapsdt note at offset {offset:#x}: the {field} string is not UTF-8")]
    NotUtf8 {
        /// Offset of the note.
        offset: usize,
        /// `provider`, `name` or `arguments`.
        field: &'static str,
    },
    /// The provider or probe name is not one sys/sdt.h can produce (see
    /// [`is_valid_name`]).
    #[error(
        "stapsdt note at offset {offset:#x}: the {field} {} is not a probe name (ASCII letters, digits and `_`)",
        crate::escape::quoted(name)
    )]
    BadName {
        /// Offset of the note.
        offset: usize,
        /// `provider` or `name`.
        field: &'static str,
        /// The name as recorded.
        name: String,
    },
}

/// Whether `name` is a provider or probe name sys/sdt.h can produce: one or
/// more ASCII letters, digits and `_`. Its macros turn the C identifiers
/// they are given into the note's strings, and every tool that names probes
/// (bpftrace, bcc, systemtap, gdb, this crate's patterns) expects such
/// names; anything else in a note (a control character, a space, a `:`) is
/// hostile or corrupt.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An iterator over the stapsdt notes of a note section's data, skipping
/// notes of other owners or types. It stops after a note whose framing is
/// broken (sizes past the end), since nothing after it can be located.
#[derive(Debug, Clone)]
pub struct Notes<'data> {
    data: &'data [u8],
    layout: Layout,
    align: usize,
    position: usize,
    done: bool,
}

impl<'data> Notes<'data> {
    /// Walks `data`, the contents of a note section in a file of `layout`,
    /// whose entries are aligned to `align` bytes (the section's
    /// `sh_addralign`; anything other than 8 means 4, as for every stapsdt
    /// section).
    pub fn new(data: &'data [u8], layout: Layout, align: u64) -> Notes<'data> {
        Notes {
            data,
            layout,
            align: if align == 8 { 8 } else { 4 },
            position: 0,
            done: false,
        }
    }

    fn fail(&mut self, error: NoteError) -> Option<Result<StapsdtNote<'data>, NoteError>> {
        self.done = true;
        Some(Err(error))
    }
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

impl<'data> Iterator for Notes<'data> {
    type Item = Result<StapsdtNote<'data>, NoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let offset = self.position;
            let available = self.data.len().saturating_sub(offset);
            if available == 0 {
                self.done = true;
                return None;
            }
            let header = (
                self.layout.u32(self.data, offset),
                self.layout.u32(self.data, offset + 4),
                self.layout.u32(self.data, offset + 8),
            );
            let (Some(namesz), Some(descsz), Some(note_type)) = header else {
                return self.fail(NoteError::TruncatedHeader { offset, available });
            };
            let name_start = offset + 12;
            let name_end = match name_start.checked_add(namesz as usize) {
                Some(end) if end <= self.data.len() => end,
                _ => return self.fail(NoteError::BadNameSize { offset, namesz }),
            };
            let desc_start = match align_up(name_end, self.align) {
                Some(start) => start,
                None => return self.fail(NoteError::BadNameSize { offset, namesz }),
            };
            let desc_end = match desc_start.checked_add(descsz as usize) {
                Some(end) if end <= self.data.len() => end,
                _ => return self.fail(NoteError::BadDescSize { offset, descsz }),
            };
            // The next note starts at the aligned end of this descriptor; a
            // section may end without the final padding.
            self.position = align_up(desc_end, self.align)
                .unwrap_or(usize::MAX)
                .min(self.data.len());

            let owner = &self.data[name_start..name_end];
            let owner = owner.strip_suffix(&[0]).unwrap_or(owner);
            if owner != STAPSDT_OWNER || note_type != NT_STAPSDT {
                continue;
            }
            return Some(parse_descriptor(
                &self.data[desc_start..desc_end],
                self.layout,
                offset,
                descsz,
            ));
        }
        None
    }
}

/// Decodes one stapsdt descriptor (`desc`, the bytes after the owner name).
fn parse_descriptor<'data>(
    desc: &'data [u8],
    layout: Layout,
    offset: usize,
    descsz: u32,
) -> Result<StapsdtNote<'data>, NoteError> {
    let size = layout.address_size();
    let short = NoteError::ShortDescriptor {
        offset,
        descsz,
        address_size: size,
    };
    let pc = layout.address(desc, 0).ok_or(short.clone())?;
    let base = layout.address(desc, size).ok_or(short.clone())?;
    let semaphore = layout.address(desc, 2 * size).ok_or(short)?;
    let mut position = 3 * size;
    let mut field = |field: &'static str| -> Result<&'data str, NoteError> {
        let bytes = cstr_at(desc, position).ok_or(NoteError::MissingNul { offset, field })?;
        position += bytes.len() + 1;
        std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8 { offset, field })
    };
    let provider = field("provider")?;
    let name = field("name")?;
    let args = field("arguments")?;
    for (field, text) in [("provider", provider), ("name", name)] {
        if !is_valid_name(text) {
            return Err(NoteError::BadName {
                offset,
                field,
                name: text.to_owned(),
            });
        }
    }
    Ok(StapsdtNote {
        offset,
        pc,
        base,
        semaphore,
        provider,
        name,
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Endian;

    /// Builds one note the way the assembler lays it out.
    fn note(layout: Layout, owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let put32 = |out: &mut Vec<u8>, v: u32| match layout.endian {
            Endian::Little => out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => out.extend_from_slice(&v.to_be_bytes()),
        };
        put32(&mut out, owner.len() as u32 + 1);
        put32(&mut out, desc.len() as u32);
        put32(&mut out, kind);
        out.extend_from_slice(owner);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn descriptor(layout: Layout, addrs: [u64; 3], strings: [&str; 3]) -> Vec<u8> {
        let mut desc = Vec::new();
        for a in addrs {
            match (layout.is_64, layout.endian) {
                (true, Endian::Little) => desc.extend_from_slice(&a.to_le_bytes()),
                (true, Endian::Big) => desc.extend_from_slice(&a.to_be_bytes()),
                (false, Endian::Little) => desc.extend_from_slice(&(a as u32).to_le_bytes()),
                (false, Endian::Big) => desc.extend_from_slice(&(a as u32).to_be_bytes()),
            }
        }
        for s in strings {
            desc.extend_from_slice(s.as_bytes());
            desc.push(0);
        }
        desc
    }

    #[test]
    fn every_layout() {
        for endian in [Endian::Little, Endian::Big] {
            for is_64 in [false, true] {
                let layout = Layout { endian, is_64 };
                let mut data = note(
                    layout,
                    b"stapsdt",
                    3,
                    &descriptor(layout, [0x1130, 0x2011, 0x400c], ["lib", "call", "4@%edi"]),
                );
                // A note of another owner in between is skipped.
                data.extend(note(layout, b"GNU", 3, &[1, 2, 3, 4]));
                data.extend(note(
                    layout,
                    b"stapsdt",
                    3,
                    &descriptor(layout, [0x1200, 0x2011, 0], ["lib", "empty", ""]),
                ));
                let notes: Vec<_> = Notes::new(&data, layout, 4)
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(notes.len(), 2);
                assert_eq!(notes[0].offset, 0);
                assert_eq!(
                    (notes[0].pc, notes[0].base, notes[0].semaphore),
                    (0x1130, 0x2011, 0x400c)
                );
                assert_eq!(
                    (notes[0].provider, notes[0].name, notes[0].args),
                    ("lib", "call", "4@%edi")
                );
                assert_eq!(
                    (notes[1].name, notes[1].args, notes[1].semaphore),
                    ("empty", "", 0)
                );
            }
        }
    }

    #[test]
    fn an_empty_section_has_no_notes() {
        assert_eq!(Notes::new(&[], Layout::LE64, 4).count(), 0);
    }

    #[test]
    fn truncated_and_oversized_notes_are_errors() {
        let layout = Layout::LE64;
        let good = note(
            layout,
            b"stapsdt",
            3,
            &descriptor(layout, [1, 2, 0], ["p", "n", ""]),
        );
        // Header cut short.
        let errors: Vec<_> = Notes::new(&good[..7], layout, 4).collect();
        assert_eq!(
            errors,
            vec![Err(NoteError::TruncatedHeader {
                offset: 0,
                available: 7
            })]
        );
        // Descriptor cut short.
        let cut = &good[..good.len() - 8];
        assert!(matches!(
            Notes::new(cut, layout, 4).next(),
            Some(Err(NoteError::BadDescSize { offset: 0, .. }))
        ));
        // A name size past the end.
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Notes::new(&huge, layout, 4).next(),
            Some(Err(NoteError::BadNameSize {
                namesz: u32::MAX,
                ..
            }))
        ));
        // Iteration stops after a framing error.
        let mut twice = huge.clone();
        twice.extend_from_slice(&good);
        assert_eq!(Notes::new(&twice, layout, 4).count(), 1);
    }

    #[test]
    fn bad_descriptors_are_errors() {
        let layout = Layout::LE64;
        let short = note(layout, b"stapsdt", 3, &[0; 20]);
        assert!(matches!(
            Notes::new(&short, layout, 4).next(),
            Some(Err(NoteError::ShortDescriptor { descsz: 20, .. }))
        ));
        let mut desc = descriptor(layout, [1, 2, 0], ["p", "n", "x"]);
        desc.pop(); // the final NUL
        let no_nul = note(layout, b"stapsdt", 3, &desc);
        assert_eq!(
            Notes::new(&no_nul, layout, 4).next(),
            Some(Err(NoteError::MissingNul {
                offset: 0,
                field: "arguments"
            }))
        );
        let mut desc = descriptor(layout, [1, 2, 0], ["p", "n", "x"]);
        desc[24] = 0xff; // first byte of the provider
        let bad = note(layout, b"stapsdt", 3, &desc);
        assert_eq!(
            Notes::new(&bad, layout, 4).next(),
            Some(Err(NoteError::NotUtf8 {
                offset: 0,
                field: "provider"
            }))
        );
        // Names sys/sdt.h cannot produce: control characters, spaces.
        for (provider, name, field) in [
            ("p\n", "n", "provider"),
            ("p", "n\x1b[2J", "name"),
            ("p", "a b", "name"),
            ("", "n", "provider"),
            ("p", "p:n", "name"),
        ] {
            let desc = descriptor(layout, [1, 2, 0], [provider, name, ""]);
            let bad = note(layout, b"stapsdt", 3, &desc);
            let error = Notes::new(&bad, layout, 4).next().unwrap().unwrap_err();
            assert!(
                matches!(&error, NoteError::BadName { field: f, .. } if *f == field),
                "{error}"
            );
            // Shown escaped, on one line.
            assert!(!error.to_string().contains(['\n', '\x1b']), "{error}");
        }
        // A content error does not stop the walk: the next note is read.
        let mut both = bad.clone();
        both.extend(note(
            layout,
            b"stapsdt",
            3,
            &descriptor(layout, [5, 2, 0], ["p", "ok", ""]),
        ));
        let all: Vec<_> = Notes::new(&both, layout, 4).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].as_ref().unwrap().name, "ok");
    }
}
