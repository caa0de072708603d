//! Every operand form of every architecture, against expected structures.

use super::*;

fn reg(arch: Arch, name: &str) -> Register {
    Register::from_name(arch, name).unwrap_or_else(|| panic!("{arch} has no register {name}"))
}

fn symbols(name: &str) -> Option<u64> {
    match name {
        "counter" => Some(0x4010),
        "v_small" => Some(0x4020),
        "CheckpointStats" => Some(0x9f0000),
        "_GLOBAL_OFFSET_TABLE_" => Some(0x3ff4),
        "table" => Some(0x12345),
        "counter.0" => Some(0x4100),
        _ => None,
    }
}

fn one(arch: Arch, word: &str) -> ArgSpec {
    parse_arg(arch, word, &symbols).unwrap_or_else(|e| panic!("{arch} `{word}`: {e}"))
}

fn spec(size: u8, signed: bool, location: ArgLocation) -> ArgSpec {
    ArgSpec {
        size,
        signed,
        float: false,
        location,
    }
}

fn mem(base: Register, index: Option<(Register, u8)>, offset: i64) -> ArgLocation {
    ArgLocation::Memory {
        base,
        index: index.map(|(register, scale)| Index::whole(register, scale)),
        offset,
    }
}

/// `[base, index, EXTEND #shift]` on aarch64.
fn extended(base: &str, index: &str, extend: IndexExtend, scale: u8) -> ArgLocation {
    let a = Arch::AArch64;
    ArgLocation::Memory {
        base: reg(a, base),
        index: Some(Index {
            register: reg(a, index),
            extend,
            scale,
        }),
        offset: 0,
    }
}

fn addr(address: u64, symbol: &str) -> ArgLocation {
    ArgLocation::Address {
        address,
        symbol: Some(symbol.to_string()),
        index: None,
    }
}

fn error(arch: Arch, word: &str) -> ArgErrorKind {
    match parse_arg(arch, word, &symbols) {
        Ok(spec) => panic!("{arch} `{word}` parsed as {spec:?}"),
        Err(kind) => kind,
    }
}

#[test]
fn sizes_and_signs() {
    let x = Arch::X86_64;
    let rax = ArgLocation::Register(reg(x, "rax"));
    assert_eq!(one(x, "1@%rax"), spec(1, false, rax.clone()));
    assert_eq!(one(x, "-1@%rax"), spec(1, true, rax.clone()));
    assert_eq!(one(x, "2@%rax"), spec(2, false, rax.clone()));
    assert_eq!(one(x, "-2@%rax"), spec(2, true, rax.clone()));
    assert_eq!(one(x, "4@%rax"), spec(4, false, rax.clone()));
    assert_eq!(one(x, "-4@%rax"), spec(4, true, rax.clone()));
    assert_eq!(one(x, "8@%rax"), spec(8, false, rax.clone()));
    assert_eq!(one(x, "-8@%rax"), spec(8, true, rax.clone()));
    let float = one(x, "8f@%xmm0");
    assert!(float.float && !float.signed && float.size == 8);
    assert_eq!(float.location, ArgLocation::Register(reg(x, "xmm0")));
    assert!(one(x, "-4f@-12(%rbp)").float);
    for bad in [
        "3@%rax",
        "16@%rax",
        "0@%rax",
        "-@%rax",
        "x@%rax",
        "-16f@%rax",
    ] {
        assert!(matches!(error(x, bad), ArgErrorKind::BadSize(_)), "{bad}");
    }
}

#[test]
fn unsized_operands_take_the_register_width() {
    let x = Arch::X86_64;
    assert_eq!(
        one(x, "%eax"),
        spec(4, true, ArgLocation::Register(reg(x, "eax")))
    );
    assert_eq!(one(x, "%r8b").size, 1);
    assert_eq!(one(x, "-8(%rbp)").size, 8);
    assert_eq!(one(Arch::X86, "-8(%ebp)").size, 4);
}

#[test]
fn x86_64_registers_of_every_width() {
    let x = Arch::X86_64;
    let cases: &[(&str, u16, u8, u8)] = &[
        ("%rax", 0, 64, 0),
        ("%eax", 0, 32, 0),
        ("%ax", 0, 16, 0),
        ("%al", 0, 8, 0),
        ("%ah", 0, 8, 8),
        ("%bh", 3, 8, 8),
        ("%ch", 2, 8, 8),
        ("%dh", 1, 8, 8),
        ("%rdx", 1, 64, 0),
        ("%rcx", 2, 64, 0),
        ("%rbx", 3, 64, 0),
        ("%rsi", 4, 64, 0),
        ("%sil", 4, 8, 0),
        ("%rdi", 5, 64, 0),
        ("%edi", 5, 32, 0),
        ("%di", 5, 16, 0),
        ("%dil", 5, 8, 0),
        ("%rbp", 6, 64, 0),
        ("%bpl", 6, 8, 0),
        ("%rsp", 7, 64, 0),
        ("%spl", 7, 8, 0),
        ("%r8", 8, 64, 0),
        ("%r8d", 8, 32, 0),
        ("%r8w", 8, 16, 0),
        ("%r8b", 8, 8, 0),
        ("%r9w", 9, 16, 0),
        ("%r11d", 11, 32, 0),
        ("%r12d", 12, 32, 0),
        ("%r15", 15, 64, 0),
        ("%r15b", 15, 8, 0),
        ("%rip", 16, 64, 0),
    ];
    for &(text, dwarf, width, shift) in cases {
        let spec = one(x, &format!("-4@{text}"));
        let ArgLocation::Register(r) = spec.location else {
            panic!("{text}: {spec:?}")
        };
        assert_eq!(
            (r.dwarf, r.width, r.bit_shift),
            (dwarf, width, shift),
            "{text}"
        );
        assert_eq!(format!("{r}"), text);
    }
    assert_eq!(
        error(x, "8@%r16"),
        ArgErrorKind::UnknownRegister("%r16".into())
    );
    assert_eq!(
        error(x, "8@%"),
        ArgErrorKind::Syntax {
            expected: "a register name",
            rest: String::new()
        }
    );
}

#[test]
fn x86_64_memory_forms() {
    let x = Arch::X86_64;
    let rbp = reg(x, "rbp");
    let rdx = reg(x, "rdx");
    let rax = reg(x, "rax");
    assert_eq!(one(x, "-4@-20(%rbp)").location, mem(rbp, None, -20));
    assert_eq!(one(x, "8@(%rdi)").location, mem(reg(x, "rdi"), None, 0));
    assert_eq!(one(x, "8@16(%rsp)").location, mem(reg(x, "rsp"), None, 16));
    assert_eq!(
        one(x, "8@0x10(%rsp)").location,
        mem(reg(x, "rsp"), None, 16)
    );
    assert_eq!(one(x, "8@-0x10(%rbp)").location, mem(rbp, None, -16));
    assert_eq!(
        one(x, "-4@(%rdx,%rax,4)").location,
        mem(rdx, Some((rax, 4)), 0)
    );
    assert_eq!(
        one(x, "-8@-96(%rbp,%rax,8)").location,
        mem(rbp, Some((rax, 8)), -96)
    );
    assert_eq!(
        one(x, "1@(%rbp,%rax)").location,
        mem(rbp, Some((rax, 1)), 0)
    );
    assert_eq!(
        one(x, "2@-8(%rbp,%r12d,2)").location,
        mem(rbp, Some((reg(x, "r12d"), 2)), -8)
    );
    // A symbolic displacement on an ordinary base (non-PIE code).
    assert_eq!(one(x, "4@table(%rax)").location, mem(rax, None, 0x12345));
    // No base register: a global array indexed in non-PIE code, at the
    // symbol's address + index*scale.
    assert_eq!(
        one(x, "4@table+8(,%rax,4)").location,
        ArgLocation::Address {
            address: 0x12345 + 8,
            symbol: Some("table".into()),
            index: Some(Index::whole(rax, 4)),
        }
    );
    assert_eq!(
        one(x, "8@0x601040(,%r12)").location,
        ArgLocation::Address {
            address: 0x601040,
            symbol: None,
            index: Some(Index::whole(reg(x, "r12"), 1)),
        }
    );
    assert_eq!(
        one(x, "4@table+8(,%rax,4)").location.to_string(),
        "[0x1234d table+%rax*4]"
    );
    assert!(matches!(
        error(x, "4@g_array32(,%rax,4)"),
        ArgErrorKind::UnresolvedSymbol(s) if s == "g_array32"
    ));
    assert!(matches!(
        error(x, "4@table(,)"),
        ArgErrorKind::Syntax { .. }
    ));
    assert!(matches!(
        error(x, "4@(%rax,%rdx,3)"),
        ArgErrorKind::BadScale(s) if s == "3"
    ));
    assert!(matches!(error(x, "4@-8(%rbp"), ArgErrorKind::Syntax { .. }));
    assert!(matches!(
        error(x, "4@-8(%rbp))"),
        ArgErrorKind::Syntax { .. }
    ));
    assert!(matches!(error(x, "4@()"), ArgErrorKind::Syntax { .. }));
    assert!(matches!(error(x, "4@%fs:8"), ArgErrorKind::Unsupported(_)));
}

#[test]
fn x86_64_rip_relative_symbols() {
    let x = Arch::X86_64;
    assert_eq!(
        one(x, "-4@counter(%rip)"),
        spec(4, true, addr(0x4010, "counter"))
    );
    assert_eq!(
        one(x, "8@56+v_small(%rip)").location,
        addr(0x4058, "v_small")
    );
    assert_eq!(
        one(x, "8@v_small+56(%rip)").location,
        addr(0x4058, "v_small")
    );
    assert_eq!(
        one(x, "8@v_small-8(%rip)").location,
        addr(0x4018, "v_small")
    );
    assert_eq!(
        one(x, "-4@4+CheckpointStats(%rip)").location,
        addr(0x9f0004, "CheckpointStats")
    );
    assert_eq!(
        one(x, "4@counter.0(%rip)").location,
        addr(0x4100, "counter.0")
    );
    assert_eq!(
        error(x, "4@missing(%rip)"),
        ArgErrorKind::UnresolvedSymbol("missing".into())
    );
    assert!(matches!(
        error(x, "4@8(%rip)"),
        ArgErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error(x, "4@counter(%rip,%rax,2)"),
        ArgErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error(x, "4@counter@GOTPCREL(%rip)"),
        ArgErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error(x, "4@-counter(%rip)"),
        ArgErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error(x, "4@counter+table(%rip)"),
        ArgErrorKind::Unsupported(_)
    ));
    // An ambiguous symbol is reported as such.
    struct Twice;
    impl SymbolResolver for Twice {
        fn resolve(&self, _: &str) -> Result<u64, SymbolError> {
            Err(SymbolError::Ambiguous(2))
        }
    }
    assert_eq!(
        parse_arg(x, "4@counter.0(%rip)", &Twice),
        Err(ArgErrorKind::AmbiguousSymbol("counter.0".into(), 2))
    );
}

#[test]
fn x86_64_constants_and_absolute_addresses() {
    let x = Arch::X86_64;
    assert_eq!(one(x, "-4@$-1").location, ArgLocation::Constant(-1));
    assert_eq!(one(x, "4@$42").location, ArgLocation::Constant(42));
    assert_eq!(one(x, "4@$0x2a").location, ArgLocation::Constant(42));
    assert_eq!(one(x, "4@$010").location, ArgLocation::Constant(8));
    assert_eq!(
        one(x, "-8@$-9223372036854775808").location,
        ArgLocation::Constant(i64::MIN)
    );
    assert_eq!(
        one(x, "8@$18446744073709551615").location,
        ArgLocation::Constant(-1)
    );
    assert_eq!(one(x, "8@$counter").location, ArgLocation::Constant(0x4010));
    assert_eq!(
        one(x, "8@$counter+4").location,
        ArgLocation::Constant(0x4014)
    );
    assert!(matches!(
        error(x, "8@$18446744073709551616"),
        ArgErrorKind::BadNumber(_)
    ));
    assert!(matches!(
        error(x, "8@$-9223372036854775809"),
        ArgErrorKind::BadNumber(_)
    ));
    assert!(matches!(error(x, "8@$"), ArgErrorKind::Syntax { .. }));
    assert!(matches!(error(x, "8@$09"), ArgErrorKind::BadNumber(_)));
    assert_eq!(one(x, "4@counter").location, addr(0x4010, "counter"));
    assert_eq!(
        one(x, "4@4096").location,
        ArgLocation::Address {
            address: 4096,
            symbol: None,
            index: None,
        }
    );
}

#[test]
fn i386_forms() {
    let i = Arch::X86;
    assert_eq!(
        one(i, "-4@%eax").location,
        ArgLocation::Register(reg(i, "eax"))
    );
    let ecx = one(i, "4@%ecx").location;
    assert_eq!(ecx, ArgLocation::Register(reg(i, "ecx")));
    let ArgLocation::Register(r) = ecx else {
        unreachable!()
    };
    assert_eq!(r.dwarf, 1);
    assert_eq!(
        one(i, "-1@%dh").location,
        ArgLocation::Register(reg(i, "dh"))
    );
    assert_eq!(one(i, "-4@8(%ebp)").location, mem(reg(i, "ebp"), None, 8));
    assert_eq!(
        one(i, "4@(%esp,%esi,4)").location,
        mem(reg(i, "esp"), Some((reg(i, "esi"), 4)), 0)
    );
    assert_eq!(one(i, "4@counter").location, addr(0x4010, "counter"));
    assert_eq!(one(i, "4@counter+4").location, addr(0x4014, "counter"));
    // Non-PIE i386 indexes a global array without a base register.
    assert_eq!(
        one(i, "-8@counter(,%eax,8)").location,
        ArgLocation::Address {
            address: 0x4010,
            symbol: Some("counter".into()),
            index: Some(Index::whole(reg(i, "eax"), 8)),
        }
    );
    // PIC code addresses globals relative to the GOT held in %ebx.
    assert_eq!(
        one(i, "4@counter@GOTOFF(%ebx)").location,
        mem(reg(i, "ebx"), None, 0x4010 - 0x3ff4)
    );
    assert_eq!(
        one(i, "4@counter@GOTOFF+8(%ebx)").location,
        mem(reg(i, "ebx"), None, 0x4010 - 0x3ff4 + 8)
    );
    assert_eq!(one(i, "-4@$-5").location, ArgLocation::Constant(-5));
    assert!(matches!(
        error(i, "8@%rax"),
        ArgErrorKind::UnknownRegister(_)
    ));
    assert!(matches!(
        error(i, "4@%r8d"),
        ArgErrorKind::UnknownRegister(_)
    ));
}

#[test]
fn aarch64_forms() {
    let a = Arch::AArch64;
    assert_eq!(
        one(a, "-4@x0").location,
        ArgLocation::Register(reg(a, "x0"))
    );
    assert_eq!(one(a, "4@w1").location, ArgLocation::Register(reg(a, "w1")));
    assert_eq!(
        one(a, "8@x30").location,
        ArgLocation::Register(reg(a, "x30"))
    );
    assert_eq!(one(a, "8@sp").location, ArgLocation::Register(reg(a, "sp")));
    assert_eq!(one(a, "8@[sp]").location, mem(reg(a, "sp"), None, 0));
    assert_eq!(
        one(a, "-8@[x29, -8]").location,
        mem(reg(a, "x29"), None, -8)
    );
    assert_eq!(one(a, "4@[sp, 16]").location, mem(reg(a, "sp"), None, 16));
    assert_eq!(one(a, "4@[sp,16]").location, mem(reg(a, "sp"), None, 16));
    assert_eq!(one(a, "4@[x1, #24]").location, mem(reg(a, "x1"), None, 24));
    assert_eq!(
        one(a, "8f@[x0, #:lo12:counter]").location,
        mem(reg(a, "x0"), None, 0x010)
    );
    assert_eq!(
        one(a, "8@[x0, #:lo12:table+8]").location,
        mem(reg(a, "x0"), None, 0x345 + 8)
    );
    assert_eq!(
        error(a, "8f@[x0, #:lo12:.LANCHOR0]"),
        ArgErrorKind::LocalLabel(".LANCHOR0".into())
    );
    assert_eq!(
        one(a, "-1@[x0, x1]").location,
        mem(reg(a, "x0"), Some((reg(a, "x1"), 1)), 0)
    );
    assert_eq!(
        one(a, "8@[x0, x1, lsl #3]").location,
        mem(reg(a, "x0"), Some((reg(a, "x1"), 8)), 0)
    );
    assert_eq!(one(a, "-4@5").location, ArgLocation::Constant(5));
    assert_eq!(one(a, "-4@-1").location, ArgLocation::Constant(-1));
    assert_eq!(one(a, "4@#7").location, ArgLocation::Constant(7));
    assert_eq!(
        one(a, "-8@-9223372036854775808").location,
        ArgLocation::Constant(i64::MIN)
    );
    assert_eq!(one(a, "8@xzr").location, ArgLocation::Constant(0));
    assert_eq!(one(a, "4@wzr").location, ArgLocation::Constant(0));
    assert!(matches!(
        error(a, "8@x31"),
        ArgErrorKind::UnknownRegister(_)
    ));
    assert!(matches!(error(a, "8@[x0, 8"), ArgErrorKind::Syntax { .. }));
    assert!(matches!(
        error(a, "8@[x0, x1, lsl #5]"),
        ArgErrorKind::BadScale(_)
    ));
    assert!(matches!(error(a, "8@%rax"), ArgErrorKind::Syntax { .. }));
}

#[test]
fn aarch64_extended_index_registers() {
    use IndexExtend::{SignExtend32, Whole, ZeroExtend32};
    let a = Arch::AArch64;
    // As gcc 12 writes them at -O2 and -Os: an `int` index into a
    // variable-length array at sp, an `int` and an `unsigned` index into
    // byte arrays, a `long` one.
    for (operand, base, index, extension, scale) in [
        ("1@[sp, w0, sxtw]", "sp", "w0", SignExtend32, 1),
        ("-1@[x3, w0, sxtw]", "x3", "w0", SignExtend32, 1),
        ("1@[x2, w1, uxtw]", "x2", "w1", ZeroExtend32, 1),
        ("-1@[x3, x7]", "x3", "x7", Whole, 1),
        // The assembler's other spellings: a shift after the extension, `sxtx`
        // for a whole 64-bit register, no spaces.
        ("-4@[x1, w2, sxtw #2]", "x1", "w2", SignExtend32, 4),
        ("8@[x1, w2, uxtw 3]", "x1", "w2", ZeroExtend32, 8),
        ("2@[x1,w2,sxtw #1]", "x1", "w2", SignExtend32, 2),
        ("-8@[x1, x2, sxtx #3]", "x1", "x2", Whole, 8),
        ("1@[x1, w2, sxtw #0]", "x1", "w2", SignExtend32, 1),
    ] {
        assert_eq!(
            one(a, operand).location,
            extended(base, index, extension, scale),
            "{operand}"
        );
    }
    // What the assembler refuses: a 32-bit index without its extension or
    // with a 64-bit one, an extension of a 64-bit index, shifts above 3,
    // sp as an index, an unknown operator.
    for (word, expected) in [
        ("1@[x0, w1]", "`, sxtw` or `, uxtw` after a 32-bit index"),
        (
            "1@[x0, w1, lsl #2]",
            "`sxtw` or `uxtw` after a 32-bit index",
        ),
        ("1@[x0, w1, sxtx]", "`sxtw` or `uxtw` after a 32-bit index"),
        ("1@[x0, x1, sxtw]", "`lsl` or `sxtx` after a 64-bit index"),
        (
            "1@[x0, x1, uxtw #2]",
            "`lsl` or `sxtx` after a 64-bit index",
        ),
        (
            "1@[x0, w1, ror #2]",
            "`sxtw` or `uxtw` after a 32-bit index",
        ),
        ("1@[x0, w1, ]", "`sxtw` or `uxtw` after a 32-bit index"),
    ] {
        match error(a, word) {
            ArgErrorKind::Syntax { expected: e, .. } => assert_eq!(e, expected, "{word}"),
            other => panic!("`{word}`: {other:?}"),
        }
    }
    assert_eq!(
        error(a, "1@[x0, w1, sxtw #4]"),
        ArgErrorKind::BadScale("sxtw #4".into())
    );
    assert_eq!(
        error(a, "1@[x0, w1, uxtw #-1]"),
        ArgErrorKind::BadScale("uxtw #-1".into())
    );
    assert!(matches!(
        error(a, "1@[x0, sp]"),
        ArgErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        error(a, "1@[x0, w1, sxtw"),
        ArgErrorKind::Syntax { .. }
    ));
    assert!(matches!(
        error(a, "1@[x0, w1, sxtw #]"),
        ArgErrorKind::Syntax { .. }
    ));
    assert!(matches!(
        error(a, "1@[x0, w99, sxtw]"),
        ArgErrorKind::UnknownRegister(_)
    ));
    // 32-bit Arm has no extensions: its registers are the index whole.
    assert_eq!(
        error(Arch::Arm, "4@[r0, r1, sxtw]"),
        ArgErrorKind::Syntax {
            expected: "`lsl`",
            rest: "sxtw]".into()
        }
    );
    // Shown and serialized with the extension.
    let located = one(a, "-1@[x3, w0, sxtw]").location;
    assert_eq!(located.to_string(), "[x3+sxtw(w0)*1]");
    assert_eq!(
        serde_json::to_string(&located).unwrap(),
        r#"{"memory":{"base":{"name":"x3","dwarf":3,"width":64,"bit_shift":0},"index":{"name":"w0","dwarf":0,"width":32,"bit_shift":0},"extend":"sxtw","scale":1,"offset":0}}"#
    );
    assert_eq!(
        one(a, "8@[x1, w2, uxtw #3]").location.to_string(),
        "[x1+uxtw(w2)*8]"
    );
}

#[test]
fn arm_forms() {
    let a = Arch::Arm;
    assert_eq!(
        one(a, "-4@r0").location,
        ArgLocation::Register(reg(a, "r0"))
    );
    assert_eq!(
        one(a, "4@fp").location,
        ArgLocation::Register(reg(a, "r11"))
    );
    assert_eq!(
        one(a, "4@ip").location,
        ArgLocation::Register(reg(a, "r12"))
    );
    assert_eq!(
        one(a, "4@lr").location,
        ArgLocation::Register(reg(a, "r14"))
    );
    assert_eq!(one(a, "4@[sp]").location, mem(reg(a, "sp"), None, 0));
    assert_eq!(one(a, "-4@[fp, #-8]").location, mem(reg(a, "fp"), None, -8));
    assert_eq!(one(a, "4@[r3, #96]").location, mem(reg(a, "r3"), None, 96));
    assert_eq!(one(a, "4@#5").location, ArgLocation::Constant(5));
    assert_eq!(one(a, "-4@#-5").location, ArgLocation::Constant(-5));
    assert!(matches!(error(a, "4@x0"), ArgErrorKind::UnknownRegister(_)));
    assert!(matches!(
        error(a, "4@xzr"),
        ArgErrorKind::UnknownRegister(_)
    ));
}

#[test]
fn riscv64_forms() {
    let r = Arch::Riscv64;
    assert_eq!(
        one(r, "-4@a0").location,
        ArgLocation::Register(reg(r, "a0"))
    );
    assert_eq!(
        one(r, "8@s11").location,
        ArgLocation::Register(reg(r, "s11"))
    );
    assert_eq!(one(r, "8@t6").location, ArgLocation::Register(reg(r, "t6")));
    assert_eq!(one(r, "8@ra").location, ArgLocation::Register(reg(r, "ra")));
    assert_eq!(
        one(r, "8@x10").location,
        ArgLocation::Register(reg(r, "a0"))
    );
    assert_eq!(one(r, "-8@-24(s0)").location, mem(reg(r, "s0"), None, -24));
    assert_eq!(one(r, "-8@-88(fp)").location, mem(reg(r, "s0"), None, -88));
    assert_eq!(one(r, "8@16(sp)").location, mem(reg(r, "sp"), None, 16));
    assert_eq!(one(r, "8@(a5)").location, mem(reg(r, "a5"), None, 0));
    assert_eq!(one(r, "4@5").location, ArgLocation::Constant(5));
    assert_eq!(one(r, "-4@-1").location, ArgLocation::Constant(-1));
    assert!(matches!(error(r, "4@a8"), ArgErrorKind::UnknownRegister(_)));
    assert!(matches!(error(r, "4@8(a0"), ArgErrorKind::Syntax { .. }));
}

#[test]
fn s390x_forms() {
    let s = Arch::S390x;
    assert_eq!(
        one(s, "-8@%r0").location,
        ArgLocation::Register(reg(s, "r0"))
    );
    assert_eq!(
        one(s, "8@%r15").location,
        ArgLocation::Register(reg(s, "r15"))
    );
    assert_eq!(
        one(s, "-2@-28(%r15)").location,
        mem(reg(s, "r15"), None, -28)
    );
    assert_eq!(
        one(s, "8@160(%r15)").location,
        mem(reg(s, "r15"), None, 160)
    );
    assert_eq!(one(s, "8@(%r2)").location, mem(reg(s, "r2"), None, 0));
    assert_eq!(
        one(s, "4@8(%r1,%r2)").location,
        mem(reg(s, "r2"), Some((reg(s, "r1"), 1)), 8)
    );
    assert_eq!(one(s, "4@71").location, ArgLocation::Constant(71));
    assert_eq!(one(s, "-4@-1").location, ArgLocation::Constant(-1));
    assert!(matches!(
        error(s, "8@%r16"),
        ArgErrorKind::UnknownRegister(_)
    ));
    assert!(matches!(error(s, "8@r1"), ArgErrorKind::Syntax { .. }));
}

#[test]
fn powerpc64_forms() {
    let p = Arch::PowerPc64;
    assert_eq!(one(p, "-4@3").location, ArgLocation::Register(reg(p, "r3")));
    assert_eq!(
        one(p, "8@%r31").location,
        ArgLocation::Register(reg(p, "r31"))
    );
    assert_eq!(one(p, "8@r9").location, ArgLocation::Register(reg(p, "r9")));
    assert_eq!(one(p, "-4@-8(31)").location, mem(reg(p, "r31"), None, -8));
    assert_eq!(one(p, "8@16(%r1)").location, mem(reg(p, "r1"), None, 16));
    assert_eq!(one(p, "8@0(9)").location, mem(reg(p, "r9"), None, 0));
    assert_eq!(
        one(p, "4@3,4").location,
        mem(reg(p, "r3"), Some((reg(p, "r4"), 1)), 0)
    );
    assert_eq!(
        one(p, "4@%r3,%r4").location,
        mem(reg(p, "r3"), Some((reg(p, "r4"), 1)), 0)
    );
    assert_eq!(one(p, "4@i5").location, ArgLocation::Constant(5));
    assert_eq!(one(p, "-4@i-5").location, ArgLocation::Constant(-5));
    assert!(matches!(error(p, "8@32"), ArgErrorKind::UnknownRegister(_)));
    assert!(matches!(
        error(p, "8@%r32"),
        ArgErrorKind::UnknownRegister(_)
    ));
    assert!(matches!(error(p, "8@03"), ArgErrorKind::UnknownRegister(_)));
}

#[test]
fn other_architectures_are_an_error_per_argument() {
    assert_eq!(
        error(Arch::Other(258), "8@$r4"),
        ArgErrorKind::UnsupportedArch(Arch::Other(258))
    );
}

#[test]
fn whole_strings() {
    let x = Arch::X86_64;
    let specs = parse_args(
        x,
        "-1@%dil -2@%ax -4@%r8d -8@%rdx 1@%cl 2@%r9w 4@%esi 8@56+v_small(%rip)",
        &symbols,
    )
    .unwrap();
    assert_eq!(specs.len(), 8);
    assert_eq!(specs[7].location, addr(0x4058, "v_small"));
    assert_eq!(parse_args(x, "", &NoSymbols).unwrap(), vec![]);
    assert_eq!(parse_args(x, "  ", &NoSymbols).unwrap(), vec![]);
    // aarch64 memory operands hold a space.
    let specs = parse_args(Arch::AArch64, "-4@[x29, -8]  8@[sp] 4@x0", &NoSymbols).unwrap();
    assert_eq!(specs.len(), 3);
    // The failing argument is named by position and text.
    let error = parse_args(x, "-4@%edi 8@%bogus 4@$1", &NoSymbols).unwrap_err();
    assert_eq!(error.index, 1);
    assert_eq!(error.operand, "8@%bogus");
    assert_eq!(
        error.to_string(),
        "argument 1 `8@%bogus`: unknown register `%bogus`"
    );
    let named = ArgError {
        probe: Some("p:n".into()),
        ..error
    };
    assert_eq!(
        named.to_string(),
        "probe p:n: argument 1 `8@%bogus`: unknown register `%bogus`"
    );
}

#[test]
fn split_respects_brackets() {
    assert_eq!(
        split_args(" 8@[x29, -8]\t-4@x0  4@[sp , 8] "),
        vec!["8@[x29, -8]", "-4@x0", "4@[sp , 8]"]
    );
    assert_eq!(split_args("]] a b"), vec!["]]", "a", "b"]);
}

#[test]
fn locations_serialize_and_display() {
    let x = Arch::X86_64;
    let json = |word: &str| serde_json::to_string(&one(x, word)).unwrap();
    assert_eq!(
        json("-4@%edi"),
        r#"{"size":4,"signed":true,"float":false,"location":{"register":{"name":"edi","dwarf":5,"width":32,"bit_shift":0}}}"#
    );
    assert_eq!(
        json("8@-16(%rbp,%rax,8)"),
        r#"{"size":8,"signed":false,"float":false,"location":{"memory":{"base":{"name":"rbp","dwarf":6,"width":64,"bit_shift":0},"index":{"name":"rax","dwarf":0,"width":64,"bit_shift":0},"extend":null,"scale":8,"offset":-16}}}"#
    );
    assert_eq!(
        json("4@counter(%rip)"),
        r#"{"size":4,"signed":false,"float":false,"location":{"address":{"address":16400,"symbol":"counter","index":null,"extend":null,"scale":1}}}"#
    );
    assert_eq!(
        json("4@counter(,%rdx,4)"),
        r#"{"size":4,"signed":false,"float":false,"location":{"address":{"address":16400,"symbol":"counter","index":{"name":"rdx","dwarf":1,"width":64,"bit_shift":0},"extend":null,"scale":4}}}"#
    );
    assert_eq!(
        json("-4@$-1"),
        r#"{"size":4,"signed":true,"float":false,"location":{"constant":-1}}"#
    );
    assert_eq!(
        one(x, "8@-16(%rbp,%rax,8)").location.to_string(),
        "[%rbp+%rax*8-16]"
    );
    assert_eq!(one(x, "8@16(%rbp)").location.to_string(), "[%rbp+16]");
    assert_eq!(
        one(x, "8@counter(%rip)").location.to_string(),
        "[0x4010 counter]"
    );
    assert_eq!(one(x, "8@$-3").location.to_string(), "$-3");
    assert_eq!(one(Arch::AArch64, "8@x3").location.to_string(), "x3");
}
