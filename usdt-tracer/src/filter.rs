//! Filters evaluated in the kernel ([`Filter`]): the expression language,
//! its parser, the per-site type check and the compilation into a
//! [`SiteOptions`] program.
//!
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" expr ")" | operand (op operand)?
//! op      := "==" | "!=" | "<" | "<=" | ">" | ">=" | "=~"
//! operand := NAME | "pid" | "tid" | INTEGER | STRING
//! ```
//!
//! A NAME is a declared argument name or `argN` (counting from 0); `pid`
//! and `tid` are the process and thread ids (a declared argument called
//! `pid` or `tid` is reachable as `argN`). Integers are decimal or `0x`
//! hexadecimal, optionally negative, from -2^63 to 2^64 - 1. Strings are
//! double-quoted with `\"`, `\\`, `\n`, `\t` and `\0` escapes, at most
//! [`FILTER_STRING_CAP`]` - 1` bytes.
//!
//! Integers compare as mathematical integers, each argument read with its
//! declared size and sign (so `-1` is below every unsigned value and
//! `0xffffffffffffffff` equals an unsigned argument holding `u64::MAX`, not
//! a signed one holding -1). A lone integer operand is true when not zero.
//! Strings (declared string arguments, or C strings asked for with `--str`)
//! compare with a string literal by `==` and `!=`, or by prefix with
//! `=~ "prefix*"` (a `*` only at the end; without one `=~` is equality).

use crate::decode::{Decoder, SiteDecoding};
use crate::error::TraceError;
use crate::role;
use std::fmt;
use std::str::FromStr;
use usdt_tracer_common::{
    CMP_EQ, CMP_GE, CMP_GT, CMP_LE, CMP_LT, CMP_NE, FILTER_AND, FILTER_COMPARE, FILTER_MAX_INSNS,
    FILTER_MAX_STRINGS, FILTER_NOT, FILTER_OR, FILTER_STRING, FILTER_STRING_CAP, FilterInsn,
    FilterOperand, FilterString, NO_LENGTH, OPERAND_ARG, OPERAND_CONSTANT, OPERAND_PID,
    OPERAND_TID, SiteOptions, SitePlan,
};

/// A filter expression, parsed (see the module documentation for the
/// language). Each traced site compiles it for its own arguments; a site
/// lacking a name the filter uses, or whose argument has another type than
/// the filter compares it as, is refused before anything is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    expr: Expr,
}

impl Filter {
    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Checks the filter against a site's arguments and compiles it into
    /// `options`; the error says what does not fit and where in the text.
    pub(crate) fn compile(
        &self,
        plan: &SitePlan,
        decoding: &SiteDecoding,
        options: &mut SiteOptions,
    ) -> Result<(), TraceError> {
        let mut compiler = Compiler {
            plan,
            decoding,
            insns: Vec::new(),
            strings: Vec::new(),
        };
        compiler
            .expr(&self.expr)
            .map_err(|(column, reason)| self.error(column, reason))?;
        if compiler.insns.len() > FILTER_MAX_INSNS {
            return Err(self.error(
                1,
                format!(
                    "{} steps, at most {FILTER_MAX_INSNS} (comparisons and operators)",
                    compiler.insns.len()
                ),
            ));
        }
        if compiler.strings.len() > FILTER_MAX_STRINGS {
            return Err(self.error(
                1,
                format!(
                    "{} string comparisons, at most {FILTER_MAX_STRINGS}",
                    compiler.strings.len()
                ),
            ));
        }
        options.insn_count = compiler.insns.len() as u8;
        options.string_count = compiler.strings.len() as u8;
        options.insns[..compiler.insns.len()].copy_from_slice(&compiler.insns);
        options.strings[..compiler.strings.len()].copy_from_slice(&compiler.strings);
        Ok(())
    }

    fn error(&self, column: usize, reason: String) -> TraceError {
        TraceError::BadFilter {
            filter: self.text.clone(),
            column,
            reason,
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Filter {
    type Err = TraceError;

    fn from_str(text: &str) -> Result<Filter, TraceError> {
        let error = |(column, reason): (usize, String)| TraceError::BadFilter {
            filter: text.to_owned(),
            column,
            reason,
        };
        let tokens = tokenize(text).map_err(error)?;
        let mut parser = Parser {
            tokens: &tokens,
            next: 0,
            end: text.chars().count() + 1,
        };
        let expr = parser.or().map_err(error)?;
        if let Some(token) = parser.peek() {
            return Err(error((
                token.column,
                format!("unexpected {}", token.kind.describe()),
            )));
        }
        Ok(Filter {
            text: text.to_owned(),
            expr,
        })
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare {
        lhs: Operand,
        op: Op,
        column: usize,
        rhs: Operand,
    },
    /// A lone operand: true when not zero.
    Truth(Operand),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`: prefix (trailing `*`) or equality.
    Match,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Match => "=~",
        }
    }

    /// The comparison code, with the operands swapped when `swap`.
    fn code(self, swap: bool) -> u8 {
        match (self, swap) {
            (Op::Eq | Op::Match, _) => CMP_EQ,
            (Op::Ne, _) => CMP_NE,
            (Op::Lt, false) | (Op::Gt, true) => CMP_LT,
            (Op::Le, false) | (Op::Ge, true) => CMP_LE,
            (Op::Gt, false) | (Op::Lt, true) => CMP_GT,
            (Op::Ge, false) | (Op::Le, true) => CMP_GE,
        }
    }
}

/// One side of a comparison and where it starts (1-based column).
#[derive(Debug, Clone, PartialEq)]
struct Operand {
    kind: OperandKind,
    column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum OperandKind {
    Name(String),
    Pid,
    Tid,
    Int(i128),
    Str(Vec<u8>),
}

/// A token and its 1-based column.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: TokenKind,
    column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Name(String),
    Int(i128),
    Str(Vec<u8>),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl TokenKind {
    fn describe(&self) -> String {
        match self {
            TokenKind::Name(name) => format!("`{name}`"),
            TokenKind::Int(value) => format!("`{value}`"),
            TokenKind::Str(_) => "a string".into(),
            TokenKind::Op(op) => format!("`{}`", op.text()),
            TokenKind::And => "`&&`".into(),
            TokenKind::Or => "`||`".into(),
            TokenKind::Not => "`!`".into(),
            TokenKind::Open => "`(`".into(),
            TokenKind::Close => "`)`".into(),
        }
    }
}

/// Where and why a filter is wrong.
type Problem = (usize, String);

/// The smallest and largest integer literal.
const INT_RANGE: std::ops::RangeInclusive<i128> = (i64::MIN as i128)..=(u64::MAX as i128);

fn tokenize(text: &str) -> Result<Vec<Token>, Problem> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let (kind, len) = match two.as_str() {
            "==" => (TokenKind::Op(Op::Eq), 2),
            "!=" => (TokenKind::Op(Op::Ne), 2),
            "<=" => (TokenKind::Op(Op::Le), 2),
            ">=" => (TokenKind::Op(Op::Ge), 2),
            "=~" => (TokenKind::Op(Op::Match), 2),
            "&&" => (TokenKind::And, 2),
            "||" => (TokenKind::Or, 2),
            _ => match c {
                '<' => (TokenKind::Op(Op::Lt), 1),
                '>' => (TokenKind::Op(Op::Gt), 1),
                '!' => (TokenKind::Not, 1),
                '(' => (TokenKind::Open, 1),
                ')' => (TokenKind::Close, 1),
                '"' => {
                    let (bytes, len) = string_literal(&chars[i..], column)?;
                    (TokenKind::Str(bytes), len)
                }
                '-' | '0'..='9' => {
                    let (value, len) = integer_literal(&chars[i..], column)?;
                    (TokenKind::Int(value), len)
                }
                c if c == '_' || c.is_ascii_alphabetic() => {
                    let len = chars[i..]
                        .iter()
                        .take_while(|c| **c == '_' || c.is_ascii_alphanumeric())
                        .count();
                    (TokenKind::Name(chars[i..i + len].iter().collect()), len)
                }
                '=' => {
                    return Err((column, "`=` alone: compare with `==`".into()));
                }
                '&' | '|' => {
                    return Err((column, format!("`{c}` alone: use `{c}{c}`")));
                }
                c => return Err((column, format!("unexpected character {c:?}"))),
            },
        };
        tokens.push(Token { kind, column });
        i += len;
    }
    Ok(tokens)
}

/// A string literal at the start of `chars` (its opening quote): its bytes
/// and how many characters it spans.
fn string_literal(chars: &[char], column: usize) -> Result<(Vec<u8>, usize), Problem> {
    let mut text = String::new();
    let mut i = 1;
    loop {
        match chars.get(i) {
            None => return Err((column, "string without its closing `\"`".into())),
            Some('"') => break,
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('0') => '\0',
                    other => {
                        return Err((
                            column + i,
                            format!(
                                "unknown escape `\\{}` (known: \\\" \\\\ \\n \\t \\0)",
                                other.map(|c| c.to_string()).unwrap_or_default()
                            ),
                        ));
                    }
                };
                text.push(escaped);
                i += 2;
            }
            Some(c) => {
                text.push(*c);
                i += 1;
            }
        }
    }
    let bytes = text.into_bytes();
    if bytes.len() >= FILTER_STRING_CAP {
        return Err((
            column,
            format!(
                "a string of {} bytes; at most {}",
                bytes.len(),
                FILTER_STRING_CAP - 1
            ),
        ));
    }
    Ok((bytes, i + 1))
}

/// An integer literal at the start of `chars`: its value and how many
/// characters it spans.
fn integer_literal(chars: &[char], column: usize) -> Result<(i128, usize), Problem> {
    let negative = chars[0] == '-';
    let start = usize::from(negative);
    let len = chars[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    let digits: String = chars[start..start + len].iter().collect();
    if digits.is_empty() {
        return Err((column, "`-` without a number after it".into()));
    }
    let parsed = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u128::from_str_radix(hex, 16),
        None => digits.parse::<u128>(),
    };
    let magnitude = parsed.map_err(|_| (column, format!("bad integer `{digits}`")))?;
    let value = i128::try_from(magnitude)
        .ok()
        .map(|v| if negative { -v } else { v })
        .filter(|v| INT_RANGE.contains(v))
        .ok_or_else(|| {
            (
                column,
                format!(
                    "integer `{}{digits}` out of range ({} to {})",
                    if negative { "-" } else { "" },
                    i64::MIN,
                    u64::MAX
                ),
            )
        })?;
    Ok((value, start + len))
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    /// The column just after the text, for errors at its end.
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn take(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.peek().is_some_and(|t| &t.kind == kind) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, Problem> {
        let mut expr = self.and()?;
        while self.eat(&TokenKind::Or) {
            expr = Expr::Or(Box::new(expr), Box::new(self.and()?));
        }
        Ok(expr)
    }

    fn and(&mut self) -> Result<Expr, Problem> {
        let mut expr = self.unary()?;
        while self.eat(&TokenKind::And) {
            expr = Expr::And(Box::new(expr), Box::new(self.unary()?));
        }
        Ok(expr)
    }

    fn unary(&mut self) -> Result<Expr, Problem> {
        let Some(token) = self.take() else {
            return Err((self.end, "the expression ends too early".into()));
        };
        match token.kind {
            TokenKind::Not => Ok(Expr::Not(Box::new(self.unary()?))),
            TokenKind::Open => {
                let expr = self.or()?;
                if !self.eat(&TokenKind::Close) {
                    let column = self.peek().map_or(self.end, |t| t.column);
                    return Err((
                        column,
                        format!("missing `)` for the `(` at column {}", token.column),
                    ));
                }
                Ok(expr)
            }
            _ => {
                self.next -= 1;
                let lhs = self.operand()?;
                let op = match self.peek() {
                    Some(Token {
                        kind: TokenKind::Op(op),
                        column,
                    }) => (*op, *column),
                    _ => return Ok(Expr::Truth(lhs)),
                };
                self.next += 1;
                let rhs = self.operand()?;
                Ok(Expr::Compare {
                    lhs,
                    op: op.0,
                    column: op.1,
                    rhs,
                })
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, Problem> {
        let Some(token) = self.take() else {
            return Err((self.end, "the expression ends too early".into()));
        };
        let kind = match token.kind {
            TokenKind::Name(name) if name == "pid" => OperandKind::Pid,
            TokenKind::Name(name) if name == "tid" => OperandKind::Tid,
            TokenKind::Name(name) => OperandKind::Name(name),
            TokenKind::Int(value) => OperandKind::Int(value),
            TokenKind::Str(bytes) => OperandKind::Str(bytes),
            other => {
                return Err((
                    token.column,
                    format!(
                        "expected an argument, pid, tid or a literal, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Operand {
            kind,
            column: token.column,
        })
    }
}

/// Compiles an expression for one site.
struct Compiler<'a> {
    plan: &'a SitePlan,
    decoding: &'a SiteDecoding,
    insns: Vec<FilterInsn>,
    strings: Vec<FilterString>,
}

/// What an operand is at a site.
enum Typed {
    Int(FilterOperand),
    /// A string argument: the slot of its pointer and of its length (or
    /// [`NO_LENGTH`]).
    Str {
        arg: u8,
        length_arg: u8,
    },
    Literal(Vec<u8>),
}

impl Compiler<'_> {
    fn push(&mut self, op: u8) {
        self.insns.push(FilterInsn {
            op,
            ..FilterInsn::default()
        });
    }

    fn expr(&mut self, expr: &Expr) -> Result<(), Problem> {
        match expr {
            Expr::Or(a, b) | Expr::And(a, b) => {
                self.expr(a)?;
                self.expr(b)?;
                self.push(if matches!(expr, Expr::Or(..)) {
                    FILTER_OR
                } else {
                    FILTER_AND
                });
            }
            Expr::Not(inner) => {
                self.expr(inner)?;
                self.push(FILTER_NOT);
            }
            Expr::Truth(operand) => match self.operand(operand)? {
                Typed::Int(lhs) => self.insns.push(FilterInsn {
                    op: FILTER_COMPARE,
                    cmp: CMP_NE,
                    lhs,
                    rhs: constant(0),
                    ..FilterInsn::default()
                }),
                _ => {
                    return Err((
                        operand.column,
                        "a string alone is no condition: compare it with `==`, `!=` or `=~`".into(),
                    ));
                }
            },
            Expr::Compare {
                lhs,
                op,
                column,
                rhs,
            } => self.compare(lhs, *op, *column, rhs)?,
        }
        Ok(())
    }

    fn compare(
        &mut self,
        lhs: &Operand,
        op: Op,
        column: usize,
        rhs: &Operand,
    ) -> Result<(), Problem> {
        let (left, right) = (self.operand(lhs)?, self.operand(rhs)?);
        match (left, right) {
            (Typed::Int(l), Typed::Int(r)) if op != Op::Match => {
                self.insns.push(FilterInsn {
                    op: FILTER_COMPARE,
                    cmp: op.code(false),
                    lhs: l,
                    rhs: r,
                    ..FilterInsn::default()
                });
                Ok(())
            }
            (Typed::Int(_), Typed::Int(_)) => Err((
                column,
                "`=~` matches a string argument with a string".into(),
            )),
            (Typed::Str { arg, length_arg }, Typed::Literal(bytes)) => {
                self.string_test(arg, length_arg, op, column, bytes, rhs.column)
            }
            (Typed::Literal(bytes), Typed::Str { arg, length_arg }) if op != Op::Match => {
                self.string_test(arg, length_arg, op, column, bytes, lhs.column)
            }
            (Typed::Literal(_), Typed::Str { .. }) => Err((
                column,
                "`=~` takes the string argument on its left and the pattern on its right".into(),
            )),
            (Typed::Str { .. }, Typed::Str { .. }) => Err((
                column,
                "two string arguments cannot be compared; compare each with a string".into(),
            )),
            (Typed::Literal(_), Typed::Literal(_)) => {
                Err((column, "two string literals: nothing to compare".into()))
            }
            (Typed::Str { .. } | Typed::Literal(_), Typed::Int(_))
            | (Typed::Int(_), Typed::Str { .. } | Typed::Literal(_)) => {
                Err((column, "compares a string with an integer".into()))
            }
        }
    }

    fn string_test(
        &mut self,
        arg: u8,
        length_arg: u8,
        op: Op,
        column: usize,
        literal: Vec<u8>,
        literal_column: usize,
    ) -> Result<(), Problem> {
        let (bytes, prefix) = match op {
            Op::Eq | Op::Ne => (literal, false),
            Op::Match => {
                let star = literal.iter().position(|b| *b == b'*');
                match star {
                    Some(at) if at + 1 == literal.len() => (literal[..at].to_vec(), true),
                    Some(_) => {
                        return Err((
                            literal_column,
                            "a pattern has one `*`, at its end (a prefix)".into(),
                        ));
                    }
                    None => (literal, false),
                }
            }
            _ => {
                return Err((
                    column,
                    format!("strings compare by `==`, `!=` or `=~`, not `{}`", op.text()),
                ));
            }
        };
        let mut test = FilterString {
            arg,
            length_arg,
            prefix: prefix as u8,
            len: bytes.len() as u8,
            ..FilterString::default()
        };
        test.bytes[..bytes.len()].copy_from_slice(&bytes);
        let index = self.strings.len() as u8;
        self.strings.push(test);
        self.insns.push(FilterInsn {
            op: FILTER_STRING,
            string: index,
            ..FilterInsn::default()
        });
        if op == Op::Ne {
            self.push(FILTER_NOT);
        }
        Ok(())
    }

    fn operand(&self, operand: &Operand) -> Result<Typed, Problem> {
        let special = |kind| FilterOperand {
            kind,
            ..FilterOperand::default()
        };
        Ok(match &operand.kind {
            OperandKind::Pid => Typed::Int(special(OPERAND_PID)),
            OperandKind::Tid => Typed::Int(special(OPERAND_TID)),
            OperandKind::Int(value) => Typed::Int(FilterOperand {
                value: *value as u64,
                kind: OPERAND_CONSTANT,
                signed: (*value < 0) as u8,
                ..FilterOperand::default()
            }),
            OperandKind::Str(bytes) => Typed::Literal(bytes.clone()),
            OperandKind::Name(name) => {
                let decoder = role::find_arg(self.decoding, name)
                    .map_err(|reason| (operand.column, reason))?;
                let slot_operand = |slot: usize| FilterOperand {
                    kind: OPERAND_ARG,
                    slot: slot as u8,
                    signed: self.plan.args[slot].signed,
                    ..FilterOperand::default()
                };
                match decoder {
                    Decoder::Int { slot, .. }
                    | Decoder::Bool(slot)
                    | Decoder::Char(slot)
                    | Decoder::Pointer(slot) => Typed::Int(slot_operand(slot)),
                    Decoder::Str { slot, pair: false } => Typed::Str {
                        arg: slot as u8,
                        length_arg: NO_LENGTH,
                    },
                    Decoder::Str { slot, pair: true }
                    | Decoder::Bytes(slot)
                    | Decoder::Json(slot) => Typed::Str {
                        arg: slot as u8,
                        length_arg: slot as u8 + 1,
                    },
                    Decoder::Wide { .. } => {
                        return Err((
                            operand.column,
                            format!(
                                "argument `{name}` is a 128-bit integer, which filters cannot compare"
                            ),
                        ));
                    }
                    Decoder::F32(_) | Decoder::F64(_) => {
                        return Err((
                            operand.column,
                            format!("argument `{name}` is a float, which filters cannot compare"),
                        ));
                    }
                }
            }
        })
    }
}

/// A constant operand.
fn constant(value: u64) -> FilterOperand {
    FilterOperand {
        value,
        kind: OPERAND_CONSTANT,
        ..FilterOperand::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::tests::typed;
    use usdt_tracer_common::SiteOptions;

    fn problem(text: &str) -> (usize, String) {
        match text.parse::<Filter>() {
            Err(TraceError::BadFilter { column, reason, .. }) => (column, reason),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn compile(text: &str) -> Result<SiteOptions, (usize, String)> {
        let (plan, decoding) = typed();
        let mut options = SiteOptions::default();
        match text
            .parse::<Filter>()
            .unwrap()
            .compile(&plan, &decoding, &mut options)
        {
            Ok(()) => Ok(options),
            Err(TraceError::BadFilter { column, reason, .. }) => Err((column, reason)),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn syntax_errors_name_their_column() {
        assert_eq!(problem("arg0 > ").0, 8);
        assert_eq!(
            problem("arg0 = 1"),
            (6, "`=` alone: compare with `==`".into())
        );
        assert_eq!(problem("(arg0 > 1").0, 10);
        assert!(problem("(arg0 > 1").1.contains("column 1"));
        assert_eq!(problem("arg0 > 1 )").0, 10);
        assert_eq!(problem("arg0 & 1").0, 6);
        assert_eq!(problem("arg0 == \"abc").0, 9);
        assert_eq!(problem("arg0 == 18446744073709551616").0, 9);
        assert_eq!(problem("arg0 == -9223372036854775809").0, 9);
        assert_eq!(problem("arg0 == 0xz").0, 9);
        assert_eq!(problem("&& arg0").0, 1);
        assert_eq!(problem("\"é\" == arg0 $").0, 13);
        let long = format!("arg0 == \"{}\"", "x".repeat(FILTER_STRING_CAP));
        assert_eq!(problem(&long).0, 9);
    }

    #[test]
    fn literals_cover_both_signs_of_64_bits() {
        let options =
            compile("id == 18446744073709551615 && delta > -9223372036854775808").unwrap();
        assert_eq!(options.insn_count, 3);
        let first = options.insns[0];
        assert_eq!((first.op, first.cmp), (FILTER_COMPARE, CMP_EQ));
        assert_eq!(
            (first.lhs.kind, first.lhs.slot, first.lhs.signed),
            (OPERAND_ARG, 0, 0)
        );
        assert_eq!((first.rhs.value, first.rhs.signed), (u64::MAX, 0));
        let second = options.insns[1];
        assert_eq!((second.lhs.slot, second.lhs.signed), (1, 1));
        assert_eq!((second.rhs.value, second.rhs.signed), (i64::MIN as u64, 1));
        assert_eq!(options.insns[2].op, FILTER_AND);
        let hex = compile("0x10 <= arg0").unwrap().insns[0];
        assert_eq!(
            (hex.lhs.value, hex.cmp, hex.rhs.kind),
            (16, CMP_LE, OPERAND_ARG)
        );
    }

    #[test]
    fn postfix_order_and_precedence() {
        let options = compile("!(pid == 1) || tid != 2 && id").unwrap();
        let ops: Vec<(u8, u8)> = options.insns[..options.insn_count as usize]
            .iter()
            .map(|i| (i.op, i.cmp))
            .collect();
        assert_eq!(
            ops,
            [
                (FILTER_COMPARE, CMP_EQ),
                (FILTER_NOT, 0),
                (FILTER_COMPARE, CMP_NE),
                (FILTER_COMPARE, CMP_NE),
                (FILTER_AND, 0),
                (FILTER_OR, 0),
            ]
        );
        assert_eq!(options.insns[0].lhs.kind, OPERAND_PID);
        assert_eq!(options.insns[2].lhs.kind, OPERAND_TID);
        assert_eq!(
            (options.insns[3].lhs.slot, options.insns[3].rhs.value),
            (0, 0)
        );
    }

    #[test]
    fn strings_compare_by_equality_and_prefix() {
        let options = compile("path =~ \"/api/*\" && \"/x\" != path").unwrap();
        assert_eq!(options.string_count, 2);
        let prefix = options.strings[0];
        assert_eq!(
            (prefix.arg, prefix.length_arg, prefix.prefix, prefix.len),
            (2, 3, 1, 5)
        );
        assert_eq!(&prefix.bytes[..5], b"/api/");
        let exact = options.strings[1];
        assert_eq!((exact.prefix, exact.len), (0, 2));
        let ops: Vec<u8> = options.insns[..options.insn_count as usize]
            .iter()
            .map(|i| i.op)
            .collect();
        assert_eq!(ops, [FILTER_STRING, FILTER_STRING, FILTER_NOT, FILTER_AND]);
        assert_eq!(options.insns[1].string, 1);
        assert_eq!(compile("path =~ \"/a\"").unwrap().strings[0].prefix, 0);
    }

    #[test]
    fn type_errors_name_the_operand() {
        let (column, reason) = compile("id > 1 && size < 2").unwrap_err();
        assert_eq!(column, 11);
        assert!(reason.contains("id, delta, path, ratio"), "{reason}");
        assert_eq!(
            compile("path == 3").unwrap_err(),
            (6, "compares a string with an integer".into())
        );
        assert_eq!(compile("id == \"x\"").unwrap_err().0, 4);
        assert!(compile("ratio > 1").unwrap_err().1.contains("float"));
        assert!(compile("path < \"b\"").unwrap_err().1.contains("`<`"));
        assert_eq!(compile("path =~ \"a*b\"").unwrap_err().0, 9);
        assert_eq!(compile("path").unwrap_err().0, 1);
        assert!(compile("id =~ 3").is_err());
        let many = ["id == 1"; 17].join(" || ");
        assert!(compile(&many).unwrap_err().1.contains("at most 32"));
        let strings = ["path == \"a\""; 5].join(" || ");
        assert!(compile(&strings).unwrap_err().1.contains("at most 4"));
    }
}
