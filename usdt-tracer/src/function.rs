//! Plain uprobes and uretprobes: a function's entry or return in any ELF
//! file, with arguments read from the calling convention's registers (and
//! stack slots) and the return value from the return register.
//!
//! A function probe is written `uprobe:FILE:FUNCTION(TYPES)` or
//! `uretprobe:FILE:FUNCTION(TYPE)`. FILE is a path (it contains a `/`) or,
//! with a process to search, a module's file name or its stem (`libc`
//! finds `libc.so.6`, `bash` the executable). FUNCTION is a symbol name or
//! a link-time address (`0x1139`). TYPES, optional, list the arguments in
//! order, each `TYPE` or `NAME: TYPE`, where TYPE is `i8`..`i64`, `u8`..`u64`,
//! `int` (`i32`), `uint` (`u32`), `long` (`i64`), `ulong` (`u64`), `ptr` or
//! `str` (a pointer to a NUL-terminated string, copied). A uretprobe's one
//! type is the return value's (`i64` when omitted); an entry probe without
//! types reads no arguments.
//!
//! Each function probe becomes a probe site like a USDT one: its operands
//! are written in sys/sdt.h's argument syntax (`-4@%rdi 8@8(%rsp)`,
//! `8@x0`) and its types as a signature, so planning and decoding are the
//! USDT code paths. The provider is `uprobe` or `uretprobe`, the name the
//! function's.

use crate::error::TraceError;
use std::fmt;
use usdt_reader::{
    Arch, ArgKind, ElfFile, NoSymbols, Probe, Segment, Signature, TypedArg, parse_args,
};

/// Executable segment flag (`PF_X`).
const PF_X: u32 = 1;

/// A function entry or return to probe, as parsed from its specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionProbe {
    /// `true` for a uretprobe (the function's return), `false` for its entry.
    pub ret: bool,
    /// The module named without a path (`libc`), to find in a process;
    /// `None` when the probe specification names a path.
    pub module: Option<String>,
    /// Which function.
    pub function: FunctionName,
    /// The arguments to read (for a uretprobe: the return value).
    pub args: Vec<FunctionArg>,
}

/// How a function is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionName {
    /// A symbol of `.symtab` or `.dynsym`.
    Symbol(String),
    /// A link-time address.
    Address(u64),
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionName::Symbol(name) => f.write_str(name),
            FunctionName::Address(address) => write!(f, "{address:#x}"),
        }
    }
}

/// One argument (or the return value) of a function probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArg {
    /// Its name in the output (`arg0`, ... or `ret` unless given).
    pub name: String,
    /// How to read it.
    pub kind: ValueType,
}

/// The type of a function probe's argument or return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// An integer of this many bytes (1, 2, 4 or 8), signed or not.
    Int {
        /// Size in bytes.
        size: u8,
        /// Whether it is sign-extended.
        signed: bool,
    },
    /// A pointer, shown in hex.
    Ptr,
    /// A pointer to a NUL-terminated string, whose bytes are copied.
    Str,
}

impl ValueType {
    /// Parses a type name (see the module documentation).
    fn parse(text: &str) -> Option<ValueType> {
        let int = |size, signed| Some(ValueType::Int { size, signed });
        match text {
            "i8" => int(1, true),
            "i16" => int(2, true),
            "i32" | "int" => int(4, true),
            "i64" | "long" | "isize" => int(8, true),
            "u8" => int(1, false),
            "u16" => int(2, false),
            "u32" | "uint" => int(4, false),
            "u64" | "ulong" | "usize" => int(8, false),
            "ptr" => Some(ValueType::Ptr),
            "str" | "cstr" => Some(ValueType::Str),
            _ => None,
        }
    }

    /// The typed-metadata kind that decodes the value.
    fn kind(self) -> ArgKind {
        match self {
            ValueType::Int { size: 1, signed } => pick(signed, ArgKind::I8, ArgKind::U8),
            ValueType::Int { size: 2, signed } => pick(signed, ArgKind::I16, ArgKind::U16),
            ValueType::Int { size: 4, signed } => pick(signed, ArgKind::I32, ArgKind::U32),
            ValueType::Int { signed, .. } => pick(signed, ArgKind::I64, ArgKind::U64),
            ValueType::Ptr => ArgKind::Ptr,
            ValueType::Str => ArgKind::CStr,
        }
    }

    /// The size and sign prefix of its operand (`-4`, `8`).
    fn operand_size(self) -> String {
        match self {
            ValueType::Int { size, signed: true } => format!("-{size}"),
            ValueType::Int {
                size,
                signed: false,
            } => size.to_string(),
            ValueType::Ptr | ValueType::Str => "8".into(),
        }
    }
}

fn pick(signed: bool, yes: ArgKind, no: ArgKind) -> ArgKind {
    if signed { yes } else { no }
}

/// Parses the part of a function probe after `uprobe:` or `uretprobe:`:
/// `FILE:FUNCTION[(TYPES)]`. Returns the file as written and the probe.
pub(crate) fn parse(ret: bool, rest: &str) -> Result<(String, FunctionProbe), String> {
    // The types come last, in parentheses; they may hold `:` (`n: int`).
    let (head, types) = match rest.find('(') {
        Some(open) => {
            let inner = rest[open + 1..]
                .strip_suffix(')')
                .ok_or("the argument types must end with `)`")?;
            (&rest[..open], Some(inner))
        }
        None => (rest, None),
    };
    let (file, function) = head
        .rsplit_once(':')
        .ok_or("expected FILE:FUNCTION after the probe kind")?;
    if file.is_empty() {
        return Err("no file before the function".into());
    }
    if function.is_empty() {
        return Err("no function after the file".into());
    }
    if function.chars().any(char::is_whitespace) {
        return Err(format!("function `{function}` contains whitespace"));
    }
    let function = match function.strip_prefix("0x") {
        Some(hex) => FunctionName::Address(
            u64::from_str_radix(hex, 16).map_err(|_| format!("bad address `{function}`"))?,
        ),
        None => FunctionName::Symbol(function.to_owned()),
    };
    let mut args = Vec::new();
    if let Some(types) = types {
        for (index, item) in types.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() && types.trim().is_empty() {
                break;
            }
            let (name, kind) = match item.split_once(':') {
                Some((name, kind)) => (name.trim().to_owned(), kind.trim()),
                None if ret => ("ret".to_owned(), item),
                None => (format!("arg{index}"), item),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("bad argument name `{name}`"));
            }
            let kind = ValueType::parse(kind).ok_or_else(|| {
                format!(
                    "unknown type `{kind}`: expected i8..i64, u8..u64, int, uint, long, ulong, ptr or str"
                )
            })?;
            args.push(FunctionArg { name, kind });
        }
    }
    if ret {
        match args.len() {
            0 => args.push(FunctionArg {
                name: "ret".into(),
                kind: ValueType::Int {
                    size: 8,
                    signed: true,
                },
            }),
            1 => {}
            n => return Err(format!("a uretprobe has one return value, not {n} types")),
        }
    }
    let module = (!file.contains('/')).then(|| file.to_owned());
    Ok((
        file.to_owned(),
        FunctionProbe {
            ret,
            module,
            function,
            args,
        },
    ))
}

impl FunctionProbe {
    /// `uprobe` or `uretprobe`: the provider of its events.
    pub fn provider(&self) -> &'static str {
        if self.ret { "uretprobe" } else { "uprobe" }
    }

    /// The probe site of this function in `file`: its address and file
    /// offset, its operands and its signature.
    pub(crate) fn site(&self, file: &ElfFile) -> Result<Probe, TraceError> {
        let fail = |reason: String| TraceError::NoFunction {
            function: self.function.to_string(),
            path: file.path().to_path_buf(),
            reason,
        };
        let address = match &self.function {
            FunctionName::Address(address) => *address,
            FunctionName::Symbol(name) => {
                let found = file.functions(name);
                match found.as_slice() {
                    [] => return Err(fail("no such function in its symbol tables".into())),
                    [one] if one.indirect => {
                        return Err(fail(
                            "is an indirect function (IFUNC): its address is the resolver that picks an implementation at load time; probe the implementation (its own symbol) or an address".into(),
                        ));
                    }
                    [one] => one.address,
                    many => {
                        let addresses: Vec<String> =
                            many.iter().map(|f| format!("{:#x}", f.address)).collect();
                        return Err(fail(format!(
                            "defined at {} addresses ({}, symbol versions or local functions); give the address instead of the name",
                            many.len(),
                            addresses.join(", ")
                        )));
                    }
                }
            }
        };
        let file_offset = code_offset(file.load_segments(), address)
            .ok_or_else(|| fail(format!("{address:#x} is not in an executable segment")))?;
        let arch = file.arch();
        let mut operands = Vec::with_capacity(self.args.len());
        for (index, arg) in self.args.iter().enumerate() {
            let location = if self.ret {
                return_register(arch)
            } else {
                argument_location(arch, index)
            }
            .ok_or_else(|| {
                fail(format!(
                    "cannot read the arguments of {arch:?} functions (x86-64 and aarch64 only)"
                ))
            })?;
            operands.push(format!("{}@{location}", arg.kind.operand_size()));
        }
        let args = operands.join(" ");
        let arg_specs = parse_args(arch, &args, &NoSymbols);
        Ok(Probe {
            provider: self.provider().into(),
            name: self.function.to_string(),
            address,
            file_offset,
            semaphore: None,
            semaphore_offset: None,
            args,
            arg_specs,
            signature: Some(Signature {
                guarded: false,
                args: self
                    .args
                    .iter()
                    .map(|arg| TypedArg {
                        name: arg.name.clone(),
                        kind: arg.kind.kind(),
                    })
                    .collect(),
            }),
        })
    }
}

/// The file offset of `address` if an executable segment holds it.
fn code_offset(segments: &[Segment], address: u64) -> Option<u64> {
    segments
        .iter()
        .filter(|s| s.flags & PF_X != 0)
        .find(|s| address >= s.vaddr && address - s.vaddr < s.filesz)
        .map(|s| address - s.vaddr + s.offset)
}

/// Where integer argument `index` is at a function's first instruction, as
/// an operand: the calling convention's argument registers, then the stack
/// above the return address (x86-64 System V) or from the stack pointer
/// (AAPCS64).
fn argument_location(arch: Arch, index: usize) -> Option<String> {
    const X86_64: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];
    match arch {
        Arch::X86_64 => Some(match X86_64.get(index) {
            Some(register) => format!("%{register}"),
            // 0(%rsp) is the return address.
            None => format!("{}(%rsp)", 8 * (index - X86_64.len() + 1)),
        }),
        Arch::AArch64 => Some(if index < 8 {
            format!("x{index}")
        } else {
            format!("[sp, {}]", 8 * (index - 8))
        }),
        _ => None,
    }
}

/// The register holding a function's integer return value.
fn return_register(arch: Arch) -> Option<String> {
    match arch {
        Arch::X86_64 => Some("%rax".into()),
        Arch::AArch64 => Some("x0".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_probes_with_types_and_names() {
        let (file, probe) = parse(false, "/usr/bin/app:compute(int, label: str, u8)").unwrap();
        assert_eq!(file, "/usr/bin/app");
        assert_eq!(probe.module, None);
        assert_eq!(probe.function, FunctionName::Symbol("compute".into()));
        let names: Vec<&str> = probe.args.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["arg0", "label", "arg2"]);
        assert_eq!(
            probe.args[0].kind,
            ValueType::Int {
                size: 4,
                signed: true
            }
        );
        assert_eq!(probe.args[1].kind, ValueType::Str);
        assert_eq!(probe.provider(), "uprobe");

        let (_, bare) = parse(false, "libc:malloc").unwrap();
        assert_eq!(bare.module.as_deref(), Some("libc"));
        assert!(bare.args.is_empty());

        let (_, empty) = parse(false, "./a:f()").unwrap();
        assert!(empty.args.is_empty());
    }

    #[test]
    fn return_probes_have_one_value() {
        let (_, probe) = parse(true, "/bin/bash:readline(str)").unwrap();
        assert_eq!(
            probe.args,
            vec![FunctionArg {
                name: "ret".into(),
                kind: ValueType::Str
            }]
        );
        let (_, default) = parse(true, "./a:0x1139").unwrap();
        assert_eq!(default.function, FunctionName::Address(0x1139));
        assert_eq!(
            default.args[0].kind,
            ValueType::Int {
                size: 8,
                signed: true
            }
        );
        assert!(parse(true, "./a:f(int, int)").is_err());
    }

    #[test]
    fn bad_specifications() {
        for bad in [
            "./a",
            ":f",
            "./a:",
            "./a:f(int",
            "./a:f(float)",
            "./a:f(x y: int)",
            "./a:0xzz",
        ] {
            assert!(parse(false, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calling_convention_locations() {
        let x86: Vec<String> = (0..8)
            .map(|i| argument_location(Arch::X86_64, i).unwrap())
            .collect();
        assert_eq!(
            x86,
            [
                "%rdi", "%rsi", "%rdx", "%rcx", "%r8", "%r9", "8(%rsp)", "16(%rsp)"
            ]
        );
        assert_eq!(argument_location(Arch::AArch64, 7).unwrap(), "x7");
        assert_eq!(argument_location(Arch::AArch64, 9).unwrap(), "[sp, 8]");
        assert_eq!(return_register(Arch::AArch64).unwrap(), "x0");
        // Every operand parses as sys/sdt.h would write it.
        for arch in [Arch::X86_64, Arch::AArch64] {
            let text: Vec<String> = (0..10)
                .map(|i| format!("-4@{}", argument_location(arch, i).unwrap()))
                .chain([format!("8@{}", return_register(arch).unwrap())])
                .collect();
            let specs = parse_args(arch, &text.join(" "), &NoSymbols).unwrap();
            assert_eq!(specs.len(), 11);
        }
    }
}
