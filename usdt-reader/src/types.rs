//! Typed probe metadata: the `.usdt.types` section written by this SDK's
//! macros next to every probe site.
//!
//! The section is a non-allocated PROGBITS section of back-to-back records,
//! without padding, laid out as [`usdt_format`] defines them: a header
//! (magic, version, argument count, flags), the site's pc (4 or 8 bytes by
//! ELF class, in the file's byte order), provider and name, then one kind
//! code and name per argument.
//!
//! A record belongs to the stapsdt note with the same (pc, provider, name).
//! A record of an unknown version ends the walk (its length is unknown)
//! without an error; a bad magic number, an unknown kind or a truncated
//! record is a [`TypesError`] that ends it too, and a record whose names
//! are not names ([`TypesError::BadName`]) one that leaves the record out.

use crate::bytes::{Layout, cstr_at};
use serde::Serialize;
use std::fmt;
use thiserror::Error;

pub use usdt_format::TYPES_MAGIC as MAGIC;
pub use usdt_format::TYPES_VERSION as VERSION;
pub use usdt_format::{ArgKind, TYPES_SECTION};
use usdt_format::{
    TYPES_ARG_COUNT_OFFSET, TYPES_FLAG_GUARDED, TYPES_FLAGS_OFFSET, TYPES_MAGIC_OFFSET,
    TYPES_PC_OFFSET, TYPES_VERSION_OFFSET,
};

/// The most Rust-level arguments a record may describe (the format's limit,
/// which fits the record's one-byte count).
pub const MAX_ARGS: u8 = usdt_format::MAX_ARGS as u8;

/// Serializes a kind as its display name (`u64`, `&str`, ...).
fn serialize_kind<S: serde::Serializer>(kind: &ArgKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

/// One declared argument of a typed probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TypedArg {
    /// The declared parameter name (`arg0`, `arg1`, ... for plain probes).
    pub name: String,
    /// Its type, serialized as its name (`u64`, `&str`, ...).
    #[serde(serialize_with = "serialize_kind")]
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
    /// The record does not start with [`MAGIC`].
    #[error("type record at offset {offset:#x} has magic {found:#04x}, not {MAGIC:#04x}")]
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
    /// More than [`MAX_ARGS`] arguments.
    #[error("type record at offset {offset:#x} declares {count} arguments, more than {MAX_ARGS}")]
    TooManyArgs {
        /// Offset of the record.
        offset: usize,
        /// The declared count.
        count: u8,
    },
    /// An argument kind code that names no [`ArgKind`].
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
    /// A provider or probe name that is no probe name (see
    /// [`is_valid_name`](crate::is_valid_name)), or an argument name that
    /// is no Rust identifier (letters, digits and `_`, not starting with a
    /// digit). The walk goes on with the next record.
    #[error(
        "type record at offset {offset:#x}: the {field} {} is not a name the macros write",
        crate::escape::quoted(name)
    )]
    BadName {
        /// Offset of the record.
        offset: usize,
        /// `provider`, `name` or `argument name`.
        field: &'static str,
        /// The name as recorded.
        name: String,
    },
}

/// Whether `name` is an argument name the macros can write: a Rust
/// identifier without `r#` (letters, digits and `_`, not starting with a
/// digit).
fn is_argument_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
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
        let header = data
            .get(offset..offset + TYPES_PC_OFFSET)
            .ok_or(truncated("header"))?;
        if header[TYPES_MAGIC_OFFSET] != MAGIC {
            return Err(TypesError::BadMagic {
                offset,
                found: header[TYPES_MAGIC_OFFSET],
            });
        }
        if header[TYPES_VERSION_OFFSET] != VERSION {
            return Ok(None);
        }
        let count = header[TYPES_ARG_COUNT_OFFSET];
        if count > MAX_ARGS {
            return Err(TypesError::TooManyArgs { offset, count });
        }
        let guarded = header[TYPES_FLAGS_OFFSET] & TYPES_FLAG_GUARDED != 0;
        let mut position = offset + TYPES_PC_OFFSET;
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
        // The record's end is known: a bad name leaves this record out and
        // the walk goes on.
        self.position = position;
        let bad_name = [("provider", provider), ("name", name)]
            .into_iter()
            .find(|(_, text)| !crate::note::is_valid_name(text))
            .or_else(|| {
                args.iter()
                    .find(|arg| !is_argument_name(&arg.name))
                    .map(|arg| ("argument name", arg.name.as_str()))
            });
        if let Some((field, name)) = bad_name {
            return Err(TypesError::BadName {
                offset,
                field,
                name: name.to_owned(),
            });
        }
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
            Err(error @ TypesError::BadName { .. }) => Some(Err(error)),
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
        let error = TypeRecords::new(&bad_magic, layout).next();
        assert_eq!(
            error,
            Some(Err(TypesError::BadMagic {
                offset: 0,
                found: 0x54
            }))
        );
        assert_eq!(
            error.unwrap().unwrap_err().to_string(),
            "type record at offset 0x0 has magic 0x54, not 0x55"
        );
        let mut bad_kind = good.clone();
        bad_kind[TYPES_PC_OFFSET + 8 + 4] = 99;
        assert_eq!(
            TypeRecords::new(&bad_kind, layout).next(),
            Some(Err(TypesError::BadKind {
                offset: 0,
                index: 0,
                code: 99
            }))
        );
        let mut many = good.clone();
        many[TYPES_ARG_COUNT_OFFSET] = MAX_ARGS + 1;
        assert_eq!(
            TypeRecords::new(&many, layout).next(),
            Some(Err(TypesError::TooManyArgs {
                offset: 0,
                count: MAX_ARGS + 1
            }))
        );
        assert_eq!(
            TypesError::TooManyArgs {
                offset: 0,
                count: 13
            }
            .to_string(),
            "type record at offset 0x0 declares 13 arguments, more than 12"
        );
        for cut in 1..good.len() {
            let result = TypeRecords::new(&good[..cut], layout).next();
            assert!(
                matches!(result, Some(Err(TypesError::Truncated { offset: 0, .. }))),
                "cut at {cut}: {result:?}"
            );
        }
        let mut not_utf8 = good.clone();
        not_utf8[TYPES_PC_OFFSET + 8] = 0xff;
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
    fn bad_names_leave_their_record_out() {
        let layout = Layout::LE64;
        for (provider, name, arg, field) in [
            ("p\x1b", "n", "a", "provider"),
            ("p", "", "a", "name"),
            ("p", "n", "a\nb", "argument name"),
            ("p", "n", "2x", "argument name"),
            ("p", "n", "", "argument name"),
        ] {
            let mut data = record(layout, 0x10, provider, name, 0, &[(1, arg)]);
            data.extend(record(layout, 0x20, "p", "next", 0, &[(1, "café")]));
            let all: Vec<_> = TypeRecords::new(&data, layout).collect();
            assert_eq!(all.len(), 2, "{provider:?} {name:?} {arg:?}");
            let error = all[0].as_ref().unwrap_err();
            assert!(
                matches!(error, TypesError::BadName { field: f, .. } if *f == field),
                "{error}"
            );
            assert!(!error.to_string().contains(['\n', '\x1b']), "{error}");
            assert_eq!(all[1].as_ref().unwrap().name, "next");
        }
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
