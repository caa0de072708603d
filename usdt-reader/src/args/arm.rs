//! aarch64 and 32-bit Arm operands: `x0`, `w1`, `sp`, `r0`, `fp`,
//! `[sp]`, `[x29, -8]`, `[fp, #-8]`, `[x0, #:lo12:sym]`, `[x0, x1]`,
//! `[x0, x1, lsl #3]`, constants `5`, `#5`, `#-1`; aarch64's zero
//! registers `xzr`/`wzr` read as the constant 0.

use super::cursor::Cursor;
use super::{ArgErrorKind, Expr, Operand, Relocation};
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

/// Parses the rest of `[base]`, `[base, offset]` or `[base, index(, lsl #n)]`.
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
            let name = c.word();
            let reg = register_named(arch, name, c)?;
            c.skip_spaces();
            let mut scale = 1u8;
            if c.eat(b',') {
                c.skip_spaces();
                if !c.eat_str("lsl") {
                    return Err(c.syntax("`lsl`"));
                }
                c.skip_spaces();
                c.eat(b'#');
                scale = match c.number()? {
                    0 => 1,
                    1 => 2,
                    2 => 4,
                    3 => 8,
                    other => return Err(ArgErrorKind::BadScale(format!("lsl #{other}"))),
                };
            }
            index = Some((reg, scale));
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
