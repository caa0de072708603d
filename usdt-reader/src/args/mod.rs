//! Argument specs: the `[-]SIZE[f]@OPERAND` words of a probe's argument
//! string, parsed into where each value lives.
//!
//! Each word gives the value's size in bytes (1, 2, 4 or 8; negative when
//! signed; an `f` suffix, emitted by recent sys/sdt.h, marks floating point)
//! and the operand the compiler chose, in the target's assembler syntax:
//!
//! | arch | register | memory | constant |
//! | --- | --- | --- | --- |
//! | x86-64, i386 | `%edi`, `%r8b`, `%ah` | `-8(%rbp)`, `(%rdx,%rax,4)`, `sym+8(%rip)`, `sym(,%rax,4)`, `sym` | `$-1` |
//! | aarch64 | `x0`, `w1`, `sp` | `[sp]`, `[x29, -8]`, `[x0, #:lo12:sym]`, `[x0, x1]`, `[sp, w0, sxtw]`, `[x2, w1, uxtw #2]` | `5`, `#5` |
//! | arm | `r0`, `fp` | `[fp, #-8]` | `#5` |
//! | riscv64 | `a0`, `s1` | `-24(s0)` | `5` |
//! | s390x | `%r2` | `160(%r15)`, `8(%r1,%r2)` | `5` |
//! | powerpc64 | `%r3`, `r3`, `3` | `-8(31)`, `3,4` | `i5` |
//!
//! Symbols in operands (`sym(%rip)`, `$sym`, `sym@GOTOFF(%ebx)`) are
//! resolved to link-time addresses through a [`SymbolResolver`].

mod arm;
mod att;
mod cursor;
mod other;

use crate::arch::Arch;
use crate::register::Register;
use cursor::Cursor;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use std::fmt;
use thiserror::Error;

/// Where one argument's value is, and how wide and signed it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ArgSpec {
    /// The value's size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Whether the value is signed (a negative size in the note).
    pub signed: bool,
    /// Whether the value is floating point (an `f` after the size).
    pub float: bool,
    /// Where the value is.
    pub location: ArgLocation,
}

/// Where a value is at the probe site.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArgLocation {
    /// The value is in a register (its low `size` bytes, or the part the
    /// register's width and shift name).
    Register(Register),
    /// The value is in memory at base + index*scale + offset, the index
    /// extended as [`Index::extend`] says. When the operand named a symbol
    /// (`sym(%rbx)`, `[x0, #:lo12:sym]`), its link-time value is already
    /// folded into `offset`.
    Memory {
        /// The base register.
        base: Register,
        /// The index register, its extension and its scale, if any.
        index: Option<Index>,
        /// The displacement in bytes.
        offset: i64,
    },
    /// The value is in memory at a fixed link-time address (x86-64
    /// `sym(%rip)` / `sym+off(%rip)` resolved through the symbol tables, or
    /// an absolute `sym` / number), plus index*scale when the operand has
    /// an index register but no base (`sym(,%rax,4)`, as non-PIE x86 code
    /// indexes a global array). A tracer adds the module's load bias.
    Address {
        /// The link-time address.
        address: u64,
        /// The symbol the operand named, if any.
        symbol: Option<String>,
        /// The index register, its extension and its scale, if any.
        index: Option<Index>,
    },
    /// The value is a constant (`$5`, `-4@$-1`, aarch64 `5`).
    Constant(i64),
}

/// The index of a memory operand: a register, extended to 64 bits as the
/// operand says, times a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Index {
    /// The index register as written (`%rax`, `x1`, `w0`).
    pub register: Register,
    /// How the register becomes a 64-bit offset.
    pub extend: IndexExtend,
    /// The scale: 1, 2, 4 or 8 (aarch64 writes it as a shift, `lsl #3`,
    /// `sxtw #2`).
    pub scale: u8,
}

impl Index {
    /// An index that uses its whole register, as every index but
    /// aarch64's extended ones does.
    pub fn whole(register: Register, scale: u8) -> Index {
        Index {
            register,
            extend: IndexExtend::Whole,
            scale,
        }
    }
}

/// How an index register becomes a 64-bit offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexExtend {
    /// The whole register (`%rax`, `x1`, aarch64 `lsl` or `sxtx`).
    Whole,
    /// aarch64 `uxtw`: the low 32 bits (`w1`), zero-extended.
    ZeroExtend32,
    /// aarch64 `sxtw`: the low 32 bits (`w0`), sign-extended.
    SignExtend32,
}

impl IndexExtend {
    /// The assembler's name of the extension (`uxtw`, `sxtw`); `None` for
    /// the whole register.
    pub fn name(self) -> Option<&'static str> {
        match self {
            IndexExtend::Whole => None,
            IndexExtend::ZeroExtend32 => Some("uxtw"),
            IndexExtend::SignExtend32 => Some("sxtw"),
        }
    }
}

impl fmt::Display for Index {
    /// `%rax*4`, or with an extension `sxtw(w0)*1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.extend.name() {
            None => write!(f, "{}*{}", self.register, self.scale),
            Some(extend) => write!(f, "{extend}({})*{}", self.register, self.scale),
        }
    }
}

/// The `index`, `extend` and `scale` fields of a serialized location: the
/// index register or null, the extension's name or null, the scale (1
/// without an index).
fn serialize_index<S: SerializeStruct>(s: &mut S, index: &Option<Index>) -> Result<(), S::Error> {
    s.serialize_field("index", &index.as_ref().map(|index| index.register))?;
    s.serialize_field("extend", &index.and_then(|index| index.extend.name()))?;
    s.serialize_field("scale", &index.as_ref().map_or(1, |index| index.scale))
}

impl Serialize for ArgLocation {
    /// `{"register": {...}}`, `{"memory": {"base", "index", "extend",
    /// "scale", "offset"}}`, `{"address": {"address", "symbol", "index",
    /// "extend", "scale"}}` or `{"constant": N}`; `extend` is `"sxtw"` or
    /// `"uxtw"` for an aarch64 extended index, else null.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Memory<'a> {
            base: &'a Register,
            index: &'a Option<Index>,
            offset: i64,
        }
        impl Serialize for Memory<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("Memory", 5)?;
                s.serialize_field("base", self.base)?;
                serialize_index(&mut s, self.index)?;
                s.serialize_field("offset", &self.offset)?;
                s.end()
            }
        }
        struct Address<'a> {
            address: u64,
            symbol: &'a Option<String>,
            index: &'a Option<Index>,
        }
        impl Serialize for Address<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("Address", 5)?;
                s.serialize_field("address", &self.address)?;
                s.serialize_field("symbol", self.symbol)?;
                serialize_index(&mut s, self.index)?;
                s.end()
            }
        }
        match self {
            ArgLocation::Register(reg) => {
                serializer.serialize_newtype_variant("ArgLocation", 0, "register", reg)
            }
            ArgLocation::Memory {
                base,
                index,
                offset,
            } => serializer.serialize_newtype_variant(
                "ArgLocation",
                1,
                "memory",
                &Memory {
                    base,
                    index,
                    offset: *offset,
                },
            ),
            ArgLocation::Address {
                address,
                symbol,
                index,
            } => serializer.serialize_newtype_variant(
                "ArgLocation",
                2,
                "address",
                &Address {
                    address: *address,
                    symbol,
                    index,
                },
            ),
            ArgLocation::Constant(value) => {
                serializer.serialize_newtype_variant("ArgLocation", 3, "constant", value)
            }
        }
    }
}

impl fmt::Display for ArgLocation {
    /// A short arch-neutral description: `%edi`, `[%rbp-16]`,
    /// `[%rdx+%rax*4]`, `[sp+sxtw(w0)*1]`, `[0x4010 g_i32]`,
    /// `[0x4040 g_array+%rax*4]`, `$-1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgLocation::Register(reg) => write!(f, "{reg}"),
            ArgLocation::Memory {
                base,
                index,
                offset,
            } => {
                write!(f, "[{base}")?;
                if let Some(index) = index {
                    write!(f, "+{index}")?;
                }
                match offset {
                    0 => {}
                    o if *o < 0 => write!(f, "-{}", o.unsigned_abs())?,
                    o => write!(f, "+{o}")?,
                }
                f.write_str("]")
            }
            ArgLocation::Address {
                address,
                symbol,
                index,
            } => {
                write!(f, "[{address:#x}")?;
                if let Some(symbol) = symbol {
                    write!(f, " {symbol}")?;
                }
                if let Some(index) = index {
                    write!(f, "+{index}")?;
                }
                f.write_str("]")
            }
            ArgLocation::Constant(value) => write!(f, "${value}"),
        }
    }
}

/// Why one argument of a probe could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ArgError {
    /// `provider:name` of the probe, when known.
    pub probe: Option<String>,
    /// The argument's position, from 0.
    pub index: usize,
    /// The argument's text, e.g. `-4@%foo`.
    pub operand: String,
    /// What is wrong with it.
    pub kind: ArgErrorKind,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(probe) = &self.probe {
            write!(f, "probe {probe}: ")?;
        }
        write!(
            f,
            "argument {} `{}`: {}",
            self.index, self.operand, self.kind
        )
    }
}

impl Serialize for ArgError {
    /// The error's one-line message.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What is wrong with an argument.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgErrorKind {
    /// The size before `@` is not 1, 2, 4 or 8.
    #[error("the size `{0}` is not 1, 2, 4 or 8 (negative when signed)")]
    BadSize(String),
    /// A register name the architecture does not have.
    #[error("unknown register `{0}`")]
    UnknownRegister(String),
    /// A number that does not parse or fit in 64 bits.
    #[error("bad number `{0}`")]
    BadNumber(String),
    /// An index scale other than 1, 2, 4 or 8.
    #[error("index scale {0} is not 1, 2, 4 or 8")]
    BadScale(String),
    /// Text that does not fit the operand syntax.
    #[error("expected {expected} at `{rest}`")]
    Syntax {
        /// What the parser expected.
        expected: &'static str,
        /// The text from where it failed.
        rest: String,
    },
    /// A symbol that no symbol table defines.
    #[error("symbol `{0}` is not in the file's symbol tables")]
    UnresolvedSymbol(String),
    /// An assembler-local label (`.LANCHOR0`, gcc's section anchors on
    /// aarch64): the assembler keeps no symbol for it, so no reader can
    /// find its address.
    #[error("`{0}` is an assembler-local label, which no symbol table keeps")]
    LocalLabel(String),
    /// A symbol defined at several different addresses.
    #[error("symbol `{0}` is defined at {1} different addresses")]
    AmbiguousSymbol(String, usize),
    /// A well-formed operand this reader cannot turn into a location.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// Operands of this architecture are not understood.
    #[error("operands of {0} are not understood")]
    UnsupportedArch(Arch),
}

/// Why a symbol could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolError {
    /// No symbol table defines the name.
    NotFound,
    /// The name is defined at this many different addresses.
    Ambiguous(usize),
}

/// Looks up symbols named by operands: their link-time addresses.
pub trait SymbolResolver {
    /// The link-time address of `name`.
    fn resolve(&self, name: &str) -> Result<u64, SymbolError>;
}

/// A resolver that knows no symbol: operands naming one fail to parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl SymbolResolver for NoSymbols {
    fn resolve(&self, _name: &str) -> Result<u64, SymbolError> {
        Err(SymbolError::NotFound)
    }
}

impl<F: Fn(&str) -> Option<u64>> SymbolResolver for F {
    fn resolve(&self, name: &str) -> Result<u64, SymbolError> {
        self(name).ok_or(SymbolError::NotFound)
    }
}

/// The words of an argument string: split at whitespace outside brackets
/// and parentheses (aarch64 writes `[x29, -8]` with a space inside).
pub fn split_args(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, c) in text.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c.is_ascii_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

/// Parses a probe's whole argument string for `arch`, resolving symbols
/// through `symbols`. The first argument that fails gives the error.
pub fn parse_args(
    arch: Arch,
    text: &str,
    symbols: &dyn SymbolResolver,
) -> Result<Vec<ArgSpec>, ArgError> {
    split_args(text)
        .into_iter()
        .enumerate()
        .map(|(index, word)| {
            parse_arg(arch, word, symbols).map_err(|kind| ArgError {
                probe: None,
                index,
                operand: word.to_string(),
                kind,
            })
        })
        .collect()
}

/// Parses one `[-]SIZE[f]@OPERAND` word.
pub fn parse_arg(
    arch: Arch,
    word: &str,
    symbols: &dyn SymbolResolver,
) -> Result<ArgSpec, ArgErrorKind> {
    let (size, operand) = split_size(word)?;
    let operand = parse_operand(arch, operand)?;
    let location = operand.lower(symbols)?;
    let (size, signed, float) = match size {
        Some(size) => size,
        // No size (an old note format): the register's width, else an
        // address's; signed, as gdb reads such operands as `long`.
        None => {
            let bytes = match &location {
                ArgLocation::Register(reg) if reg.width <= 64 => reg.width / 8,
                _ => arch.address_size(),
            };
            (bytes, true, false)
        }
    };
    Ok(ArgSpec {
        size,
        signed,
        float,
        location,
    })
}

/// Splits `[-]SIZE[f]@` off a word: `Some((size, signed, float))` and the
/// operand, or `None` when the word has no size prefix.
#[allow(clippy::type_complexity)]
fn split_size(word: &str) -> Result<(Option<(u8, bool, bool)>, &str), ArgErrorKind> {
    let bytes = word.as_bytes();
    let signed = bytes.first() == Some(&b'-');
    let digits_start = usize::from(signed);
    let digits_end = digits_start
        + bytes[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let float = bytes.get(digits_end) == Some(&b'f');
    let at = digits_end + usize::from(float);
    if digits_end == digits_start || bytes.get(at) != Some(&b'@') {
        if word.contains('@') && !word.contains("@GOTOFF") {
            // Something before an `@` that is not a size.
            let prefix = &word[..word.find('@').unwrap_or(0)];
            return Err(ArgErrorKind::BadSize(prefix.to_string()));
        }
        return Ok((None, word));
    }
    let size = match &word[digits_start..digits_end] {
        "1" => 1,
        "2" => 2,
        "4" => 4,
        "8" => 8,
        _ => return Err(ArgErrorKind::BadSize(word[..at].to_string())),
    };
    Ok((Some((size, signed, float)), &word[at + 1..]))
}

/// An operand as written, before symbols are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand<'a> {
    /// A register.
    Register(Register),
    /// An immediate.
    Constant(Expr<'a>),
    /// Memory at base + index*scale + displacement; without a base, an
    /// absolute address; with the x86 `%rip` base, RIP-relative.
    Memory {
        base: Option<Register>,
        index: Option<Index>,
        displacement: Expr<'a>,
    },
}

/// A displacement or immediate: an optional symbol plus a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Expr<'a> {
    symbol: Option<&'a str>,
    /// How the symbol's address is used.
    relocation: Relocation,
    offset: i64,
}

/// How a symbol in an expression contributes its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Relocation {
    /// The symbol's address itself.
    #[default]
    Absolute,
    /// i386 `sym@GOTOFF`: the address minus that of the GOT.
    GotOffset,
    /// aarch64 `:lo12:sym`: the low 12 bits of the address.
    Low12,
}

/// The symbol name i386 code's `@GOTOFF` displacements are relative to.
const GOT_SYMBOL: &str = "_GLOBAL_OFFSET_TABLE_";

fn resolve(symbols: &dyn SymbolResolver, name: &str) -> Result<u64, ArgErrorKind> {
    symbols.resolve(name).map_err(|error| match error {
        SymbolError::NotFound if name.starts_with(".L") => {
            ArgErrorKind::LocalLabel(name.to_string())
        }
        SymbolError::NotFound => ArgErrorKind::UnresolvedSymbol(name.to_string()),
        SymbolError::Ambiguous(n) => ArgErrorKind::AmbiguousSymbol(name.to_string(), n),
    })
}

impl Expr<'_> {
    /// The expression's value with its symbol resolved.
    fn value(&self, symbols: &dyn SymbolResolver) -> Result<i64, ArgErrorKind> {
        let Some(symbol) = self.symbol else {
            return Ok(self.offset);
        };
        let address = resolve(symbols, symbol)?;
        let base = match self.relocation {
            Relocation::Absolute => address,
            Relocation::GotOffset => address.wrapping_sub(resolve(symbols, GOT_SYMBOL)?),
            Relocation::Low12 => address & 0xfff,
        };
        Ok((base as i64).wrapping_add(self.offset))
    }
}

impl Operand<'_> {
    /// Resolves symbols and turns the operand into a location.
    fn lower(&self, symbols: &dyn SymbolResolver) -> Result<ArgLocation, ArgErrorKind> {
        Ok(match *self {
            Operand::Register(reg) => ArgLocation::Register(reg),
            Operand::Constant(expr) => ArgLocation::Constant(expr.value(symbols)?),
            Operand::Memory {
                base: Some(base),
                index,
                displacement,
            } if is_instruction_pointer(base) => {
                if index.is_some() {
                    return Err(ArgErrorKind::Unsupported(
                        "an index register with a RIP-relative operand",
                    ));
                }
                if displacement.symbol.is_none() {
                    return Err(ArgErrorKind::Unsupported(
                        "a RIP-relative operand without a symbol",
                    ));
                }
                ArgLocation::Address {
                    address: displacement.value(symbols)? as u64,
                    symbol: displacement.symbol.map(str::to_string),
                    index: None,
                }
            }
            Operand::Memory {
                base: Some(base),
                index,
                displacement,
            } => ArgLocation::Memory {
                base,
                index,
                offset: displacement.value(symbols)?,
            },
            // No base: an absolute address (`sym`, `0x601040`), indexed
            // when there is an index (`sym(,%rax,4)`).
            Operand::Memory {
                base: None,
                index,
                displacement,
            } => ArgLocation::Address {
                address: displacement.value(symbols)? as u64,
                symbol: displacement.symbol.map(str::to_string),
                index,
            },
        })
    }
}

fn is_instruction_pointer(reg: Register) -> bool {
    matches!((reg.arch, reg.dwarf), (Arch::X86_64, 16) | (Arch::X86, 8))
}

/// Parses an operand (the text after `@`) in `arch`'s syntax.
fn parse_operand(arch: Arch, text: &str) -> Result<Operand<'_>, ArgErrorKind> {
    let mut cursor = Cursor::new(text);
    let operand = match arch {
        Arch::X86_64 | Arch::X86 => att::parse(arch, &mut cursor)?,
        Arch::AArch64 | Arch::Arm => arm::parse(arch, &mut cursor)?,
        Arch::Riscv64 => other::parse_riscv(&mut cursor)?,
        Arch::S390x => other::parse_s390x(&mut cursor)?,
        Arch::PowerPc64 => other::parse_powerpc(&mut cursor)?,
        Arch::Other(_) => return Err(ArgErrorKind::UnsupportedArch(arch)),
    };
    cursor.expect_end()?;
    Ok(operand)
}

#[cfg(test)]
mod tests;
