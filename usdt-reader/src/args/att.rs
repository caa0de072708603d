//! x86-64 and i386 operands in AT&T syntax: `%reg`, `$imm`, `$sym`,
//! `disp(%base)`, `disp(%base,%index,scale)`, `(%base,%index)`,
//! `sym+off(%rip)`, `sym@GOTOFF(%ebx)` and absolute `sym` / `sym+off`.

use super::cursor::Cursor;
use super::{ArgErrorKind, Index, Operand};
use crate::arch::Arch;
use crate::register::Register;

/// Parses one AT&T operand of `arch` (X86_64 or X86).
pub(super) fn parse<'a>(arch: Arch, c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    if c.peek() == Some(b'%') {
        if c.rest().contains(':') {
            return Err(ArgErrorKind::Unsupported("a segment-relative operand"));
        }
        return register(arch, c).map(Operand::Register);
    }
    if c.eat(b'$') {
        return Ok(Operand::Constant(c.expression()?));
    }
    let displacement = if c.peek() == Some(b'(') {
        Default::default()
    } else {
        c.expression()?
    };
    if !c.eat(b'(') {
        // A bare displacement: an absolute address.
        return Ok(Operand::Memory {
            base: None,
            index: None,
            displacement,
        });
    }
    let base = if c.peek() == Some(b'%') {
        Some(register(arch, c)?)
    } else {
        None
    };
    let index = if c.eat(b',') {
        let index = register(arch, c)?;
        let scale = if c.eat(b',') {
            let start = c.rest();
            match c.number() {
                Ok(scale @ (1 | 2 | 4 | 8)) => scale as u8,
                Ok(_) => {
                    let len = start.len() - c.rest().len();
                    return Err(ArgErrorKind::BadScale(start[..len].to_string()));
                }
                Err(error) => return Err(error),
            }
        } else {
            1
        };
        Some(Index::whole(index, scale))
    } else {
        None
    };
    if base.is_none() && index.is_none() {
        return Err(c.syntax("a register"));
    }
    c.expect(b')', "`)`")?;
    Ok(Operand::Memory {
        base,
        index,
        displacement,
    })
}

/// Parses `%name`.
fn register(arch: Arch, c: &mut Cursor<'_>) -> Result<Register, ArgErrorKind> {
    c.expect(b'%', "`%` and a register")?;
    let name = c.word();
    if name.is_empty() {
        return Err(c.syntax("a register name"));
    }
    Register::from_name(arch, name).ok_or_else(|| ArgErrorKind::UnknownRegister(format!("%{name}")))
}
