//! aarch64 and 32-bit Arm operands: `x0`, `w1`, `sp`, `r0`, `fp`,
//! `[sp]`, `[x29, -8]`, `[fp, #-8]`, `[x0, #:lo12:sym]`, `[x0, x1]`,
//! `[x0, x1, lsl #3]`, `[sp, w0, sxtw]`, `[x2, w1, uxtw #2]`, constants
//! `5`, `#5`, `#-1`; aarch64's zero registers `xzr`/`wzr` read as the
//! constant 0.

use super::cursor::Cursor;
use super::{ArgErrorKind, Expr, Index, IndexExtend, Operand, Relocation};
use crate::arch::Arch;
use crate::register::Register;

/// Parses one operand of `arch` (AArch64 or Arm).
pub(super) fn parse<'a>(arch: Arch, c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    if c.eat(b'[') {
        return memory(arch, c);
    }
    if c.eat(b'#') || c.at_number() {
        return Ok(Operand::Constant(Expr {
            offset: c.number()?,
            ..Expr::default()
        }));
    }
    let name = c.word();
    if arch == Arch::AArch64 && (name == "xzr" || name == "wzr") {
        return Ok(Operand::Constant(Expr::default()));
    }
    register_named(arch, name, c).map(Operand::Register)
}

fn register_named(arch: Arch, name: &str, c: &Cursor<'_>) -> Result<Register, ArgErrorKind> {
    if name.is_empty() {
        return Err(c.syntax("a register, a constant or `[`"));
    }
    Register::from_name(arch, name).ok_or_else(|| ArgErrorKind::UnknownRegister(name.to_string()))
}

/// Parses the rest of `[base]`, `[base, offset]` or `[base, index...]`.
fn memory<'a>(arch: Arch, c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    c.skip_spaces();
    let name = c.word();
    let base = register_named(arch, name, c)?;
    c.skip_spaces();
    let mut displacement = Expr::default();
    let mut index = None;
    if c.eat(b',') {
        c.skip_spaces();
        if c.eat(b'#') {
            if c.eat_str(":lo12:") {
                displacement = Expr {
                    symbol: Some(c.identifier().ok_or_else(|| c.syntax("a symbol"))?),
                    relocation: Relocation::Low12,
                    offset: 0,
                };
                if c.at_number() {
                    displacement.offset = c.number()?;
                }
            } else {
                displacement.offset = c.number()?;
            }
        } else if c.at_number() {
            displacement.offset = c.number()?;
        } else {
            index = Some(index_register(arch, c)?);
        }
        c.skip_spaces();
    }
    c.expect(b']', "`]`")?;
    Ok(Operand::Memory {
        base: Some(base),
        index,
        displacement,
    })
}

/// Parses the index of `[base, index...]`: a 64-bit register used whole
/// (`x1`, `x1, lsl #3`, `x1, sxtx`), or on aarch64 a 32-bit one extended
/// as the assembler requires it to say (`w0, sxtw`, `w1, uxtw #2`); the
/// shift, 0 to 3, is the scale's logarithm.
fn index_register(arch: Arch, c: &mut Cursor<'_>) -> Result<Index, ArgErrorKind> {
    let name = c.word();
    let register = register_named(arch, name, c)?;
    if arch == Arch::AArch64 && register.dwarf == 31 {
        // Register 31 in an index is the zero register, never sp.
        return Err(ArgErrorKind::Unsupported("`sp` as an index register"));
    }
    let narrow = arch == Arch::AArch64 && register.width == 32;
    c.skip_spaces();
    if !c.eat(b',') {
        if narrow {
            return Err(c.syntax("`, sxtw` or `, uxtw` after a 32-bit index"));
        }
        return Ok(Index::whole(register, 1));
    }
    c.skip_spaces();
    let at = c.clone();
    let operator = c.word();
    let extend = match (arch, narrow, operator) {
        (Arch::AArch64, false, "lsl" | "sxtx") | (Arch::Arm, _, "lsl") => IndexExtend::Whole,
        (Arch::AArch64, true, "sxtw") => IndexExtend::SignExtend32,
        (Arch::AArch64, true, "uxtw") => IndexExtend::ZeroExtend32,
        (Arch::AArch64, true, _) => {
            return Err(at.syntax("`sxtw` or `uxtw` after a 32-bit index"));
        }
        (Arch::AArch64, false, _) => {
            return Err(at.syntax("`lsl` or `sxtx` after a 64-bit index"));
        }
        _ => return Err(at.syntax("`lsl`")),
    };
    c.skip_spaces();
    // `lsl` always names its shift; the extensions may leave it out (0).
    let shift = if c.eat(b'#') || c.at_number() || operator == "lsl" {
        c.number()?
    } else {
        0
    };
    let scale = match shift {
        0..=3 => 1u8 << shift,
        other => return Err(ArgErrorKind::BadScale(format!("{operator} #{other}"))),
    };
    Ok(Index {
        register,
        extend,
        scale,
    })
}
