//! The binary format of USDT probes, defined once for every crate of the
//! SDK that writes or reads it.
//!
//! usdt-runtime and usdt-macros write probes with these values; usdt-reader
//! reads them back; the tracer (usdt-tracer-common, its BPF program and
//! usdt-tracer) sizes its plans and records by [`MAX_ARGS`]. Each value is
//! a constant here and nowhere else. Where a value has to appear as literal
//! text (an `asm!` template, a `#[link_section]`, a `compile_error!`
//! message), [`literal!`] gives the very tokens the constant is defined
//! from.
//!
//! The crate has no dependencies and needs no allocator, so it costs the
//! programs that carry probes next to nothing to build.
//!
//! # stapsdt notes
//!
//! Each probe site has an ELF note in the section [`STAPSDT_NOTE_SECTION`]
//! (`.note.stapsdt`, type `SHT_NOTE`, not allocated), as C's `<sys/sdt.h>`
//! writes it: owner [`STAPSDT_NOTE_NAME`] (`stapsdt`), type [`NT_STAPSDT`]
//! (3), and a descriptor of three addresses of the ELF class's width (the
//! site's pc, the link-time address of the symbol `_.stapsdt.base`, the
//! semaphore's address or 0) followed by three NUL-terminated strings:
//! provider, name and the argument string. The argument string is
//! space-separated `[-]SIZE@OPERAND`, SIZE one of 1, 2, 4, 8, `-` for a
//! signed value, at most [`MAX_ARGS`] of them; OPERAND is in the target's
//! assembler syntax (`%rdi`, `8@-16(%rbp)`, `x0`, `[sp, 16]`, ...).
//!
//! [`STAPSDT_BASE_SECTION`] (`.stapsdt.base`) is a one-byte allocated
//! section holding `_.stapsdt.base`: when the file was moved after linking
//! (prelink), a site's actual pc is its note's pc plus the section's address
//! minus the note's base.
//!
//! A semaphore is a `u16` in the writable section [`PROBES_SECTION`]
//! (`.probes`), conventionally named `<provider>_<name>_semaphore`, one per
//! probe shared by all its sites. Tracers raise it while they trace the
//! probe; the code behind the probe runs only while it is non-zero.
//!
//! # `.usdt.types` records
//!
//! Next to every note, usdt-runtime writes a record in the section
//! [`TYPES_SECTION`] (`.usdt.types`, `SHT_PROGBITS`, not allocated) so that
//! a reader can show a probe's Rust signature, `http:request_start(id: u64,
//! method: &str, path: &str)`, and a tracer can decode strings and floats.
//! Records follow each other with no padding or alignment:
//!
//! | offset | field | size | content |
//! | --- | --- | --- | --- |
//! | [`TYPES_MAGIC_OFFSET`] | magic | 1 | [`TYPES_MAGIC`], `0x55` (`U`) |
//! | [`TYPES_VERSION_OFFSET`] | version | 1 | [`TYPES_VERSION`], 1 |
//! | [`TYPES_ARG_COUNT_OFFSET`] | arg count N | 1 | Rust-level arguments, 0 to [`MAX_ARGS`] (not note arguments) |
//! | [`TYPES_FLAGS_OFFSET`] | flags | 1 | [`TYPES_FLAG_GUARDED`]: the site is guarded by a semaphore (a typed provider's probe); other bits 0 |
//! | [`TYPES_PC_OFFSET`] | pc | the ELF class's address width, the file's byte order | the same link-time value as the `pc` of the site's note |
//! | | provider | NUL-terminated | |
//! | | name | NUL-terminated | |
//! | | N times: kind | 1 | an [`ArgKind`] code |
//! | | N times: arg name | NUL-terminated | the declared parameter name; `arg0`, `arg1`, ... for plain probes |
//!
//! A record belongs to the note with the same (pc, provider, name); its
//! kinds' [`slots`](ArgKind::slots) add up to the note's number of
//! arguments. Sites without a record (C programs, other crates' probes) have
//! no signature. A reader stops at a record of another version (its length
//! is unknown) and rejects a wrong magic, an unknown kind or more than
//! [`MAX_ARGS`] arguments.
//!
//! # Argument kinds
//!
//! | code | kind | slots | code | kind | slots | code | kind | slots |
//! | --- | --- | --- | --- | --- | --- | --- | --- | --- |
//! | 1 | `u8` | 1 | 8 | `i32` | 1 | 15 | `f32` | 1 |
//! | 2 | `u16` | 1 | 9 | `i64` | 1 | 16 | `f64` | 1 |
//! | 3 | `u32` | 1 | 10 | `isize` | 1 | 17 | `ptr` | 1 |
//! | 4 | `u64` | 1 | 11 | `u128` | 2 | 18 | `&CStr` | 1 |
//! | 5 | `usize` | 1 | 12 | `i128` | 2 | 19 | `&str` | 2 |
//! | 6 | `i8` | 1 | 13 | `bool` | 1 | 20 | `&[u8]` | 2 |
//! | 7 | `i16` | 1 | 14 | `char` | 1 | 21 | `json` | 2 |
//!
//! A one-slot kind is one note argument holding the value, widened to 64
//! bits (sign-extended for signed kinds). A two-slot kind is two note
//! arguments, which read a pair of 64-bit words: (pointer, length in bytes)
//! for strings, bytes and JSON, (low, high 64 bits) for 128-bit integers.
//! [`ArgKind::note_sizes`] gives the sizes the note writes for each.
#![no_std]
#![deny(missing_docs)]

use core::fmt;

/// The literal tokens of a constant of this crate, by the constant's name,
/// for places that take only literals: `concat!` in an `asm!` template,
/// `#[link_section]`, `compile_error!`.
///
/// Each constant listed here is defined as `literal!` of its own name, so
/// the literal and the constant cannot disagree.
///
/// ```
/// const SECTION: &str = concat!(".pushsection ", usdt_format::literal!(TYPES_SECTION));
/// assert_eq!(SECTION, ".pushsection .usdt.types");
/// assert_eq!(usdt_format::literal!(MAX_ARGS), usdt_format::MAX_ARGS);
/// ```
#[macro_export]
macro_rules! literal {
    (MAX_ARGS) => {
        12
    };
    (STAPSDT_NOTE_NAME) => {
        "stapsdt"
    };
    (STAPSDT_NOTE_SECTION) => {
        ".note.stapsdt"
    };
    (STAPSDT_BASE_SECTION) => {
        ".stapsdt.base"
    };
    (PROBES_SECTION) => {
        ".probes"
    };
    (TYPES_SECTION) => {
        ".usdt.types"
    };
}

/// The most arguments a probe site's note has (sys/sdt.h's limit), and so
/// the most Rust-level arguments a `.usdt.types` record describes (a
/// two-slot argument counts twice against the note's limit).
pub const MAX_ARGS: usize = literal!(MAX_ARGS);

/// The owner name of a stapsdt note (without its NUL).
pub const STAPSDT_NOTE_NAME: &str = literal!(STAPSDT_NOTE_NAME);

/// The note type of a stapsdt note (sys/sdt.h's `_SDT_NOTE_TYPE`).
pub const NT_STAPSDT: u32 = 3;

/// The section holding the stapsdt notes.
pub const STAPSDT_NOTE_SECTION: &str = literal!(STAPSDT_NOTE_SECTION);

/// The one-byte section holding `_.stapsdt.base`, whose address the notes
/// record to detect a file moved after linking.
pub const STAPSDT_BASE_SECTION: &str = literal!(STAPSDT_BASE_SECTION);

/// The writable section holding the probes' `u16` semaphores.
pub const PROBES_SECTION: &str = literal!(PROBES_SECTION);

/// The section holding the `.usdt.types` records.
pub const TYPES_SECTION: &str = literal!(TYPES_SECTION);

/// The first byte of every `.usdt.types` record: `U`.
pub const TYPES_MAGIC: u8 = 0x55;

/// The `.usdt.types` record version described here.
pub const TYPES_VERSION: u8 = 1;

/// Offset of [`TYPES_MAGIC`] in a record (one byte).
pub const TYPES_MAGIC_OFFSET: usize = 0;

/// Offset of the version in a record (one byte).
pub const TYPES_VERSION_OFFSET: usize = 1;

/// Offset of the number of Rust-level arguments in a record (one byte, at
/// most [`MAX_ARGS`]).
pub const TYPES_ARG_COUNT_OFFSET: usize = 2;

/// Offset of the flags in a record (one byte, [`TYPES_FLAG_GUARDED`]).
pub const TYPES_FLAGS_OFFSET: usize = 3;

/// Offset of the site's pc in a record: an address of the ELF class's width
/// in the file's byte order. The provider, the name and the arguments
/// follow it.
pub const TYPES_PC_OFFSET: usize = 4;

/// Record flag: the site is guarded by a semaphore.
pub const TYPES_FLAG_GUARDED: u8 = 1;

/// The longest provider or probe name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid provider or probe name: ASCII letters, digits
/// and `_`, not starting with a digit, 1 to [`MAX_NAME_LEN`] bytes. Such
/// names pass unchanged through every sys/sdt.h tool (readelf, gdb,
/// bpftrace, bcc, systemtap) and make valid semaphore symbols.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN || bytes[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

/// The Rust type of one probe argument: its code in a `.usdt.types` record,
/// and how it is written in the note.
///
/// One-slot kinds occupy one note argument, the value widened to 64 bits.
/// Two-slot kinds occupy two note arguments, both read through one register
/// that points at a pair of 64-bit words: (pointer, length in bytes) for
/// strings, bytes and JSON, (low 64 bits, high 64 bits) for 128-bit
/// integers.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArgKind {
    /// `u8`: `1@REG`.
    U8 = 1,
    /// `u16`: `2@REG`.
    U16 = 2,
    /// `u32`: `4@REG`.
    U32 = 3,
    /// `u64`: `8@REG`.
    U64 = 4,
    /// `usize`: unsigned, pointer-sized.
    Usize = 5,
    /// `i8`: `-1@REG`.
    I8 = 6,
    /// `i16`: `-2@REG`.
    I16 = 7,
    /// `i32`: `-4@REG`.
    I32 = 8,
    /// `i64`: `-8@REG`.
    I64 = 9,
    /// `isize`: signed, pointer-sized.
    Isize = 10,
    /// `u128`: two slots, low then high 64 bits, both unsigned.
    U128 = 11,
    /// `i128`: two slots, low 64 bits unsigned, high 64 bits signed.
    I128 = 12,
    /// `bool`: `1@REG`, 0 or 1.
    Bool = 13,
    /// `char`: `4@REG`, the Unicode scalar value.
    Char = 14,
    /// `f32`: `4@REG`, the IEEE 754 bits.
    F32 = 15,
    /// `f64`: `8@REG`, the IEEE 754 bits.
    F64 = 16,
    /// A raw pointer: unsigned, pointer-sized, the address.
    Ptr = 17,
    /// `&CStr` / `CString`: one slot, a pointer to a NUL-terminated string.
    CStr = 18,
    /// `&str` / `String`: two slots, pointer and length in bytes of UTF-8
    /// text.
    Str = 19,
    /// `&[u8]` / `Vec<u8>`: two slots, pointer and length in bytes.
    Bytes = 20,
    /// A value serialized as JSON text while the probe is enabled: two
    /// slots, pointer and length in bytes of UTF-8 text.
    Json = 21,
}

impl ArgKind {
    /// Every kind, in code order.
    pub const ALL: [ArgKind; 21] = [
        ArgKind::U8,
        ArgKind::U16,
        ArgKind::U32,
        ArgKind::U64,
        ArgKind::Usize,
        ArgKind::I8,
        ArgKind::I16,
        ArgKind::I32,
        ArgKind::I64,
        ArgKind::Isize,
        ArgKind::U128,
        ArgKind::I128,
        ArgKind::Bool,
        ArgKind::Char,
        ArgKind::F32,
        ArgKind::F64,
        ArgKind::Ptr,
        ArgKind::CStr,
        ArgKind::Str,
        ArgKind::Bytes,
        ArgKind::Json,
    ];

    /// The kind's code in a `.usdt.types` record (1 for `u8` ... 21 for
    /// JSON).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind with the `.usdt.types` code `code`, if there is one.
    pub const fn from_code(code: u8) -> Option<ArgKind> {
        if code >= 1 && code as usize <= Self::ALL.len() {
            Some(Self::ALL[code as usize - 1])
        } else {
            None
        }
    }

    /// The name a signature shows for the kind: `u64`, `&str`, `&CStr`,
    /// `&[u8]`, `json`, ...
    pub const fn name(self) -> &'static str {
        match self {
            ArgKind::U8 => "u8",
            ArgKind::U16 => "u16",
            ArgKind::U32 => "u32",
            ArgKind::U64 => "u64",
            ArgKind::Usize => "usize",
            ArgKind::I8 => "i8",
            ArgKind::I16 => "i16",
            ArgKind::I32 => "i32",
            ArgKind::I64 => "i64",
            ArgKind::Isize => "isize",
            ArgKind::U128 => "u128",
            ArgKind::I128 => "i128",
            ArgKind::Bool => "bool",
            ArgKind::Char => "char",
            ArgKind::F32 => "f32",
            ArgKind::F64 => "f64",
            ArgKind::Ptr => "ptr",
            ArgKind::CStr => "&CStr",
            ArgKind::Str => "&str",
            ArgKind::Bytes => "&[u8]",
            ArgKind::Json => "json",
        }
    }

    /// How many note arguments the kind occupies: 2 for 128-bit integers,
    /// strings, bytes and JSON, else 1.
    pub const fn slots(self) -> usize {
        match self {
            ArgKind::U128 | ArgKind::I128 | ArgKind::Str | ArgKind::Bytes | ArgKind::Json => 2,
            _ => 1,
        }
    }

    /// The signed sizes the note's argument string gives each slot (`-4` for
    /// `i32`, `8` for a pointer on a 64-bit target, ...) on a target whose
    /// pointers are `pointer_size` bytes; the second is 0 for one-slot
    /// kinds.
    pub const fn note_sizes(self, pointer_size: i8) -> [i8; 2] {
        match self {
            ArgKind::U8 | ArgKind::Bool => [1, 0],
            ArgKind::U16 => [2, 0],
            ArgKind::U32 | ArgKind::Char | ArgKind::F32 => [4, 0],
            ArgKind::U64 | ArgKind::F64 => [8, 0],
            ArgKind::Usize | ArgKind::Ptr | ArgKind::CStr => [pointer_size, 0],
            ArgKind::I8 => [-1, 0],
            ArgKind::I16 => [-2, 0],
            ArgKind::I32 => [-4, 0],
            ArgKind::I64 => [-8, 0],
            ArgKind::Isize => [-pointer_size, 0],
            ArgKind::U128 | ArgKind::Str | ArgKind::Bytes | ArgKind::Json => [8, 8],
            ArgKind::I128 => [8, -8],
        }
    }
}

impl fmt::Display for ArgKind {
    /// The kind's [`name`](ArgKind::name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ArgKind> for u8 {
    /// The kind's [`code`](ArgKind::code).
    fn from(kind: ArgKind) -> u8 {
        kind.code()
    }
}

impl TryFrom<u8> for ArgKind {
    /// The code, which names no kind.
    type Error = u8;

    /// The kind with this [`code`](ArgKind::code).
    fn try_from(code: u8) -> Result<ArgKind, u8> {
        ArgKind::from_code(code).ok_or(code)
    }
}

// A record's argument count is one byte.
const _: () = assert!(MAX_ARGS <= u8::MAX as usize);
// The header's one-byte fields come first, in this order, then the pc.
const _: () = assert!(
    TYPES_MAGIC_OFFSET == 0
        && TYPES_VERSION_OFFSET == TYPES_MAGIC_OFFSET + 1
        && TYPES_ARG_COUNT_OFFSET == TYPES_VERSION_OFFSET + 1
        && TYPES_FLAGS_OFFSET == TYPES_ARG_COUNT_OFFSET + 1
        && TYPES_PC_OFFSET == TYPES_FLAGS_OFFSET + 1
);

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    #[test]
    fn names() {
        assert!(is_valid_name("http"));
        assert!(is_valid_name("_request_start2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("2fast"));
        assert!(!is_valid_name("has-dash"));
        assert!(!is_valid_name("r#type"));
        assert!(!is_valid_name("café"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
    }

    #[test]
    fn codes_round_trip() {
        for (i, kind) in ArgKind::ALL.iter().enumerate() {
            assert_eq!(usize::from(kind.code()), i + 1);
            assert_eq!(ArgKind::from_code(kind.code()), Some(*kind));
            assert_eq!(ArgKind::try_from(u8::from(*kind)), Ok(*kind));
        }
        assert_eq!(ArgKind::from_code(0), None);
        assert_eq!(ArgKind::try_from(22), Err(22));
        assert_eq!(ArgKind::CStr.code(), 18);
        assert_eq!(ArgKind::Str.code(), 19);
        assert_eq!(ArgKind::Json.code(), 21);
    }

    #[test]
    fn slots_agree_with_note_sizes() {
        for kind in ArgKind::ALL {
            let [first, second] = kind.note_sizes(8);
            assert_ne!(first, 0, "{kind}");
            assert_eq!(kind.slots(), if second == 0 { 1 } else { 2 }, "{kind}");
        }
        assert_eq!(ArgKind::I128.note_sizes(8), [8, -8]);
        assert_eq!(ArgKind::I32.note_sizes(8), [-4, 0]);
        assert_eq!(ArgKind::Isize.note_sizes(4), [-4, 0]);
        assert_eq!(ArgKind::Ptr.note_sizes(8), [8, 0]);
    }

    #[test]
    fn names_are_distinct_and_displayed() {
        for (i, a) in ArgKind::ALL.iter().enumerate() {
            assert_eq!(a.to_string(), a.name());
            for b in &ArgKind::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
        assert_eq!(ArgKind::Bytes.to_string(), "&[u8]");
    }
}
