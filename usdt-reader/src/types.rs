//! Typed probe metadata: the `.usdt.types` section written by this SDK's
//! macros next to every probe site.
//!
//! The section is a non-allocated PROGBITS section of back-to-back records,
//! without padding:
//!
//! ```text
//! u8    magic       0x55 ('U')
//! u8    version     1
//! u8    arg count N (Rust-level arguments, 0..=12)
//! u8    flags       bit 0: the site is guarded by a semaphore
//! addr  pc          4 or 8 bytes by ELF class, in the file's byte order:
//!                   the same link-time value as the site's stapsdt pc
//! cstr  provider
//! cstr  name
//! N times: u8 kind (an ArgKind code), cstr argument name
//! ```
//!
//! A record belongs to the stapsdt note with the same (pc, provider, name).
//! A record of an unknown version ends the walk (its length is unknown)
//! without an error; a bad magic number, an unknown kind or a truncated
//! record is a [`TypesError`].

use crate::bytes::{Layout, cstr_at};
use serde::Serialize;
use std::fmt;
use thiserror::Error;

/// The name of the section holding the records.
pub const TYPES_SECTION: &str = ".usdt.types";
/// The first byte of every record.
pub const MAGIC: u8 = 0x55;
/// The record version this reader understands.
pub const VERSION: u8 = 1;
/// The most Rust-level arguments a record may describe.
pub const MAX_ARGS: u8 = 12;

/// The Rust type of one probe argument, as recorded by the macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArgKind {
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `usize`.
    Usize,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `isize`.
    Isize,
    /// `u128`: two note arguments (low, high 64 bits).
    U128,
    /// `i128`: two note arguments (low, signed high 64 bits).
    I128,
    /// `bool` (`1@`).
    Bool,
    /// `char` (`4@`, a Unicode scalar value).
    Char,
    /// `f32` (`4@`, IEEE bits).
    F32,
    /// `f64` (`8@`, IEEE bits).
    F64,
    /// A raw pointer.
    Ptr,
    /// `&CStr`: a pointer to a NUL-terminated string.
    CStr,
    /// `&str` / `String`: two note arguments (pointer, length in bytes).
    Str,
    /// `&[u8]` / `Vec<u8>`: two note arguments (pointer, length).
    Bytes,
    /// A value serialized as JSON text: two note arguments (pointer, length).
    Json,
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

    /// The kind's code in a record (1 for `u8` ... 21 for JSON).
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The kind with record code `code`, if any.
    pub fn from_code(code: u8) -> Option<ArgKind> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// How many note arguments the kind takes: 2 for 128-bit integers,
    /// strings, byte slices and JSON, else 1.
    pub fn slots(self) -> usize {
        match self {
            ArgKind::U128 | ArgKind::I128 | ArgKind::Str | ArgKind::Bytes | ArgKind::Json => 2,
            _ => 1,
        }
    }

    /// The name shown in signatures: `u64`, `&str`, `&CStr`, `&[u8]`,
    /// `json`, ...
    pub fn name(self) -> &'static str {
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
}

impl Serialize for ArgKind {
    /// The kind's display name (`u64`, `&str`, ...).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for ArgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One declared argument of a typed probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TypedArg {
    /// The declared parameter name (`arg0`, `arg1`, ... for plain probes).
    pub name: String,
    /// Its type.
    pub kind: ArgKind,
}

/// The typed metadata of one probe site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Signature {
    /// Whether the site is guarded by a semaphore.
    pub guarded: bool,
    /// The declared arguments, in order.
    pub args: Vec<TypedArg>,
}

impl Signature {
    /// How many note arguments the signature takes (2-slot kinds count twice).
    pub fn slots(&self) -> usize {
        self.args.iter().map(|arg| arg.kind.slots()).sum()
    }
}

impl fmt::Display for Signature {
    /// `(id: u64, method: &str, path: &str)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", arg.name, arg.kind)?;
        }
        f.write_str(")")
    }
}

/// One record of `.usdt.types`, borrowing its names from the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRecord<'data> {
    /// Offset of the record within the section.
    pub offset: usize,
    /// The site's link-time pc, as in its stapsdt note.
    pub pc: u64,
    /// The provider name.
    pub provider: &'data str,
    /// The probe name.
    pub name: &'data str,
    /// The recorded signature.
    pub signature: Signature,
}

/// A malformed `.usdt.types` record; `offset` is that of the record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TypesError {
    /// The record does not start with 0x55.
    #[error("type record at offset {offset:#x} has magic {found:#04x}, not 0x55")]
    BadMagic {
        /// Offset of the record.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// The record ends before its last field.
    #[error("type record at offset {offset:#x} is truncated in its {field}")]
    Truncated {
        /// Offset of the record.
        offset: usize,
        /// The field that runs past the end.
        field: &'static str,
    },
    /// More than 12 arguments.
    #[error("type record at offset {offset:#x} declares {count} arguments, more than 12")]
    TooManyArgs {
        /// Offset of the record.
        offset: usize,
        /// The declared count.
        count: u8,
    },
    /// An argument kind code outside 1..=21.
    #[error("type record at offset {offset:#x}: argument {index} has unknown kind {code}")]
    BadKind {
        /// Offset of the record.
        offset: usize,
        /// The argument's position.
        index: usize,
        /// The code found.
        code: u8,
    },
    /// A name that is not UTF-8.
    #[error("type record at offset {offset:#x}: the {field} is not UTF-8")]
    NotUtf8 {
        /// Offset of the record.
        offset: usize,
        /// The field.
        field: &'static str,
    },
}

/// An iterator over the records of a `.usdt.types` section. It ends after
/// an error or at a record of an unknown version.
#[derive(Debug, Clone)]
pub struct TypeRecords<'data> {
    data: &'data [u8],
    layout: Layout,
    position: usize,
    done: bool,
}

impl<'data> TypeRecords<'data> {
    /// Walks `data`, the contents of a `.usdt.types` section in a file of
    /// `layout`.
    pub fn new(data: &'data [u8], layout: Layout) -> TypeRecords<'data> {
        TypeRecords {
            data,
            layout,
            position: 0,
            done: false,
        }
    }

    fn record(&mut self) -> Result<Option<TypeRecord<'data>>, TypesError> {
        let offset = self.position;
        let data = self.data;
        let truncated = |field| TypesError::Truncated { offset, field };
        let header = data.get(offset..offset + 4).ok_or(truncated("header"))?;
        if header[0] != MAGIC {
            return Err(TypesError::BadMagic {
                offset,
                found: header[0],
            });
        }
        if header[1] != VERSION {
            return Ok(None);
        }
        let count = header[2];
        if count > MAX_ARGS {
            return Err(TypesError::TooManyArgs { offset, count });
        }
        let guarded = header[3] & 1 != 0;
        let mut position = offset + 4;
        let pc = self.layout.address(data, position).ok_or(truncated("pc"))?;
        position += self.layout.address_size();
        let mut string = |field: &'static str| -> Result<&'data str, TypesError> {
            let bytes = cstr_at(data, position).ok_or(truncated(field))?;
            position += bytes.len() + 1;
            std::str::from_utf8(bytes).map_err(|_| TypesError::NotUtf8 { offset, field })
        };
        let provider = string("provider")?;
        let name = string("name")?;
        let mut args = Vec::with_capacity(usize::from(count));
        for index in 0..usize::from(count) {
            let code = *data.get(position).ok_or(truncated("argument kind"))?;
            let kind = ArgKind::from_code(code).ok_or(TypesError::BadKind {
                offset,
                index,
                code,
            })?;
            position += 1;
            let bytes = cstr_at(data, position).ok_or(truncated("argument name"))?;
            position += bytes.len() + 1;
            let arg_name = std::str::from_utf8(bytes).map_err(|_| TypesError::NotUtf8 {
                offset,
                field: "argument name",
            })?;
            args.push(TypedArg {
                name: arg_name.to_string(),
                kind,
            });
        }
        self.position = position;
        Ok(Some(TypeRecord {
            offset,
            pc,
            provider,
            name,
            signature: Signature { guarded, args },
        }))
    }
}

impl<'data> Iterator for TypeRecords<'data> {
    type Item = Result<TypeRecord<'data>, TypesError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.data.len() {
            return None;
        }
        match self.record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Endian;

    /// Encodes a record as the macros do.
    fn record(
        layout: Layout,
        pc: u64,
        provider: &str,
        name: &str,
        flags: u8,
        args: &[(u8, &str)],
    ) -> Vec<u8> {
        let mut out = vec![MAGIC, VERSION, args.len() as u8, flags];
        match (layout.is_64, layout.endian) {
            (true, Endian::Little) => out.extend_from_slice(&pc.to_le_bytes()),
            (true, Endian::Big) => out.extend_from_slice(&pc.to_be_bytes()),
            (false, Endian::Little) => out.extend_from_slice(&(pc as u32).to_le_bytes()),
            (false, Endian::Big) => out.extend_from_slice(&(pc as u32).to_be_bytes()),
        }
        for s in [provider, name] {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        for (code, arg) in args {
            out.push(*code);
            out.extend_from_slice(arg.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn kinds_round_trip() {
        for (i, kind) in ArgKind::ALL.iter().enumerate() {
            assert_eq!(kind.code() as usize, i + 1);
            assert_eq!(ArgKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(ArgKind::from_code(0), None);
        assert_eq!(ArgKind::from_code(22), None);
        assert_eq!(ArgKind::Str.slots(), 2);
        assert_eq!(ArgKind::I128.slots(), 2);
        assert_eq!(ArgKind::Char.slots(), 1);
        assert_eq!(ArgKind::Bytes.name(), "&[u8]");
        assert_eq!(ArgKind::CStr.code(), 18);
        assert_eq!(ArgKind::Json.code(), 21);
    }

    #[test]
    fn records_in_every_layout() {
        for endian in [Endian::Little, Endian::Big] {
            for is_64 in [false, true] {
                let layout = Layout { endian, is_64 };
                let mut data = record(
                    layout,
                    0x1130,
                    "http",
                    "request_start",
                    1,
                    &[(4, "id"), (19, "method"), (19, "path")],
                );
                data.extend(record(layout, 0x1200, "app", "tick", 0, &[]));
                let records: Vec<_> = TypeRecords::new(&data, layout)
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(records.len(), 2);
                let r = &records[0];
                assert_eq!(
                    (r.offset, r.pc, r.provider, r.name),
                    (0, 0x1130, "http", "request_start")
                );
                assert!(r.signature.guarded);
                assert_eq!(
                    r.signature.to_string(),
                    "(id: u64, method: &str, path: &str)"
                );
                assert_eq!(r.signature.slots(), 5);
                assert_eq!(records[1].signature.to_string(), "()");
                assert!(!records[1].signature.guarded);
            }
        }
    }

    #[test]
    fn bad_records_are_errors() {
        let layout = Layout::LE64;
        let good = record(layout, 0x10, "p", "n", 0, &[(1, "a")]);
        let mut bad_magic = good.clone();
        bad_magic[0] = 0x54;
        assert_eq!(
            TypeRecords::new(&bad_magic, layout).next(),
            Some(Err(TypesError::BadMagic {
                offset: 0,
                found: 0x54
            }))
        );
        let mut bad_kind = good.clone();
        bad_kind[4 + 8 + 4] = 99;
        assert_eq!(
            TypeRecords::new(&bad_kind, layout).next(),
            Some(Err(TypesError::BadKind {
                offset: 0,
                index: 0,
                code: 99
            }))
        );
        let mut many = good.clone();
        many[2] = 13;
        assert_eq!(
            TypeRecords::new(&many, layout).next(),
            Some(Err(TypesError::TooManyArgs {
                offset: 0,
                count: 13
            }))
        );
        for cut in 1..good.len() {
            let result = TypeRecords::new(&good[..cut], layout).next();
            assert!(
                matches!(result, Some(Err(TypesError::Truncated { offset: 0, .. }))),
                "cut at {cut}: {result:?}"
            );
        }
        let mut not_utf8 = good.clone();
        not_utf8[12] = 0xff;
        assert!(matches!(
            TypeRecords::new(&not_utf8, layout).next(),
            Some(Err(TypesError::NotUtf8 {
                field: "provider",
                ..
            }))
        ));
        // The second record's offset is reported.
        let mut two = good.clone();
        two.extend_from_slice(&bad_magic);
        let all: Vec<_> = TypeRecords::new(&two, layout).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1],
            Err(TypesError::BadMagic {
                offset: good.len(),
                found: 0x54
            })
        );
    }

    #[test]
    fn an_unknown_version_ends_the_walk_quietly() {
        let layout = Layout::LE64;
        let mut data = record(layout, 0x10, "p", "n", 0, &[]);
        let mut future = record(layout, 0x20, "p", "m", 0, &[]);
        future[1] = 2;
        data.extend(future);
        data.extend(record(layout, 0x30, "p", "o", 0, &[]));
        let records: Vec<_> = TypeRecords::new(&data, layout)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].name, "n");
    }
}
