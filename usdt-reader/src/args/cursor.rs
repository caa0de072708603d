//! A cursor over an operand's text, with the lexical pieces every
//! architecture's syntax shares: numbers, identifiers, punctuation.

use super::{ArgErrorKind, Expr, Relocation};

/// A position in an operand's text.
#[derive(Debug, Clone)]
pub(super) struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, position: 0 }
    }

    /// The text not yet consumed.
    pub(super) fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.text.as_bytes().get(self.position + ahead).copied()
    }

    pub(super) fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.position += 1;
        }
    }

    /// Consumes `byte` if it is next.
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `prefix` if the text continues with it.
    pub(super) fn eat_str(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.position += prefix.len();
            true
        } else {
            false
        }
    }

    /// An error saying `expected` was wanted here.
    pub(super) fn syntax(&self, expected: &'static str) -> ArgErrorKind {
        ArgErrorKind::Syntax {
            expected,
            rest: self.rest().to_string(),
        }
    }

    /// Consumes `byte` or fails saying `expected`.
    pub(super) fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ArgErrorKind> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// Fails unless everything was consumed.
    pub(super) fn expect_end(&self) -> Result<(), ArgErrorKind> {
        if self.position == self.text.len() {
            Ok(())
        } else {
            Err(self.syntax("the end of the operand"))
        }
    }

    /// Consumes a run of ASCII letters and digits (a register name).
    pub(super) fn word(&mut self) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric()) {
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    /// Whether a number (optionally signed) starts here.
    pub(super) fn at_number(&self) -> bool {
        match self.peek() {
            Some(b'-' | b'+') => self.peek_at(1).is_some_and(|b| b.is_ascii_digit()),
            Some(b) => b.is_ascii_digit(),
            None => false,
        }
    }

    /// Whether an identifier (a symbol) starts here.
    pub(super) fn at_identifier(&self) -> bool {
        self.peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'.')
    }

    /// Consumes a symbol name: a letter, `_` or `.`, then letters, digits,
    /// `_`, `.` and `$`.
    pub(super) fn identifier(&mut self) -> Option<&'a str> {
        if !self.at_identifier() {
            return None;
        }
        let start = self.position;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
        {
            self.position += 1;
        }
        Some(&self.text[start..self.position])
    }

    /// Consumes an optionally signed integer: decimal, `0x` hexadecimal, or
    /// `0`-prefixed octal as the GNU assembler reads them. Values up to
    /// 2^64-1 are accepted and wrap to `i64` (two's complement), as the
    /// assembler stores them.
    pub(super) fn number(&mut self) -> Result<i64, ArgErrorKind> {
        let start = self.position;
        let negative = if self.eat(b'-') {
            true
        } else {
            self.eat(b'+');
            false
        };
        let digits_start = self.position;
        let radix = if self.eat_str("0x") || self.eat_str("0X") {
            16
        } else if self.peek() == Some(b'0') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            8
        } else {
            10
        };
        let body_start = self.position;
        while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
            self.position += 1;
        }
        let body = &self.text[body_start..self.position];
        let text = &self.text[start..self.position];
        if body.is_empty() && radix != 8 {
            return Err(if digits_start == self.position {
                self.syntax("a number")
            } else {
                ArgErrorKind::BadNumber(text.to_string())
            });
        }
        let magnitude = u64::from_str_radix(body, radix)
            .map_err(|_| ArgErrorKind::BadNumber(text.to_string()))?;
        if negative {
            if magnitude > 1u64 << 63 {
                return Err(ArgErrorKind::BadNumber(text.to_string()));
            }
            Ok((magnitude as i64).wrapping_neg())
        } else {
            Ok(magnitude as i64)
        }
    }

    /// Consumes a displacement expression: numbers and at most one symbol
    /// joined by `+` and `-`, with an optional leading sign (`-16`, `sym`,
    /// `sym+8`, `56+sym`, `sym-4`), the symbol optionally followed by
    /// `@GOTOFF`.
    pub(super) fn expression(&mut self) -> Result<Expr<'a>, ArgErrorKind> {
        let mut expr = Expr::default();
        let mut negate = if self.eat(b'-') {
            true
        } else {
            self.eat(b'+');
            false
        };
        loop {
            if self.at_identifier() {
                if expr.symbol.is_some() {
                    return Err(ArgErrorKind::Unsupported("an expression with two symbols"));
                }
                if negate {
                    return Err(ArgErrorKind::Unsupported("a negated symbol"));
                }
                expr.symbol = self.identifier();
                if self.eat(b'@') {
                    match self.word() {
                        "GOTOFF" => expr.relocation = Relocation::GotOffset,
                        _ => {
                            return Err(ArgErrorKind::Unsupported(
                                "a relocation operator other than @GOTOFF",
                            ));
                        }
                    }
                }
            } else if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                let start = self.rest();
                let value = self.number()?;
                if negate && value < 0 && value != i64::MIN {
                    // A magnitude above 2^63 cannot be negated.
                    let len = start.len() - self.rest().len();
                    return Err(ArgErrorKind::BadNumber(format!("-{}", &start[..len])));
                }
                expr.offset = if negate {
                    expr.offset.wrapping_sub(value)
                } else {
                    expr.offset.wrapping_add(value)
                };
            } else {
                return Err(self.syntax("a number or a symbol"));
            }
            if self.eat(b'+') {
                negate = false;
            } else if self.eat(b'-') {
                negate = true;
            } else {
                return Ok(expr);
            }
        }
    }
}
