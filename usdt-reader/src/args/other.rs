//! Operands of riscv64 (`a0`, `-24(s0)`, `5`), s390x (`%r2`, `160(%r15)`,
//! `8(%r1,%r2)`, `5`) and powerpc64 (`%r3`/`r3`/`3`, `-8(31)`, `3,4`,
//! `i5`).

use super::cursor::Cursor;
use super::{ArgErrorKind, Expr, Index, Operand};
use crate::arch::Arch;
use crate::register::Register;

fn constant<'a>(offset: i64) -> Operand<'a> {
    Operand::Constant(Expr {
        offset,
        ..Expr::default()
    })
}

fn memory<'a>(base: Register, index: Option<Index>, offset: i64) -> Operand<'a> {
    Operand::Memory {
        base: Some(base),
        index,
        displacement: Expr {
            offset,
            ..Expr::default()
        },
    }
}

/// riscv64: a register by ABI or `x` name, `offset(reg)`, `(reg)`, or a
/// constant.
pub(super) fn parse_riscv<'a>(c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    let register = |c: &mut Cursor<'a>| {
        let name = c.word();
        if name.is_empty() {
            return Err(c.syntax("a register"));
        }
        Register::from_name(Arch::Riscv64, name)
            .ok_or_else(|| ArgErrorKind::UnknownRegister(name.to_string()))
    };
    if c.at_number() || c.peek() == Some(b'(') {
        let offset = if c.at_number() { c.number()? } else { 0 };
        if !c.eat(b'(') {
            return Ok(constant(offset));
        }
        let base = register(c)?;
        c.expect(b')', "`)`")?;
        return Ok(memory(base, None, offset));
    }
    register(c).map(Operand::Register)
}

/// s390x: `%rN`, `D(%rB)`, `D(%rX,%rB)` (index, then base), `(%rB)`, or a
/// constant.
pub(super) fn parse_s390x<'a>(c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    let register = |c: &mut Cursor<'a>| {
        c.expect(b'%', "`%` and a register")?;
        let name = c.word();
        Register::from_name(Arch::S390x, name)
            .ok_or_else(|| ArgErrorKind::UnknownRegister(format!("%{name}")))
    };
    if c.peek() == Some(b'%') {
        return register(c).map(Operand::Register);
    }
    let offset = if c.at_number() {
        c.number()?
    } else if c.peek() == Some(b'(') {
        0
    } else {
        return Err(c.syntax("a register, a number or `(`"));
    };
    if !c.eat(b'(') {
        return Ok(constant(offset));
    }
    let first = register(c)?;
    let operand = if c.eat(b',') {
        let base = register(c)?;
        memory(base, Some(Index::whole(first, 1)), offset)
    } else {
        memory(first, None, offset)
    };
    c.expect(b')', "`)`")?;
    Ok(operand)
}

/// powerpc64: a register as `%rN`, `rN` or a bare `N`; `D(reg)`; `rA,rB`
/// (indexed); `iN` constants.
pub(super) fn parse_powerpc<'a>(c: &mut Cursor<'a>) -> Result<Operand<'a>, ArgErrorKind> {
    fn register(c: &mut Cursor<'_>) -> Result<Register, ArgErrorKind> {
        let had_percent = c.eat(b'%');
        let name = c.word();
        let number = name
            .strip_prefix('r')
            .unwrap_or(if had_percent { "" } else { name });
        let valid = !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && (number.len() == 1 || !number.starts_with('0'));
        let register = valid
            .then(|| Register::from_name(Arch::PowerPc64, &format!("r{number}")))
            .flatten();
        register.ok_or_else(|| {
            if name.is_empty() {
                c.syntax("a register")
            } else {
                ArgErrorKind::UnknownRegister(format!(
                    "{}{name}",
                    if had_percent { "%" } else { "" }
                ))
            }
        })
    }
    if c.eat(b'i') {
        return Ok(constant(c.number()?));
    }
    if c.at_number() && matches!(c.peek(), Some(b'-' | b'+')) || is_displacement(c) {
        // `D(reg)`: a number directly followed by `(`.
        let offset = c.number()?;
        c.expect(b'(', "`(`")?;
        let base = register(c)?;
        c.expect(b')', "`)`")?;
        return Ok(memory(base, None, offset));
    }
    if c.eat(b'(') {
        let base = register(c)?;
        c.expect(b')', "`)`")?;
        return Ok(memory(base, None, 0));
    }
    let first = register(c)?;
    if c.eat(b',') {
        let index = register(c)?;
        return Ok(memory(first, Some(Index::whole(index, 1)), 0));
    }
    Ok(Operand::Register(first))
}

/// Whether the text is digits directly followed by `(` (a powerpc
/// displacement rather than a bare register number).
fn is_displacement(c: &Cursor<'_>) -> bool {
    let rest = c.rest().as_bytes();
    let digits = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    digits > 0 && rest[0].is_ascii_digit() && rest.get(digits) == Some(&b'(')
}
