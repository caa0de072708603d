//! Decoded argument values and how they print.

use std::fmt::{self, Write as _};

/// One decoded probe argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unsigned integer (note argument without `-`, or a typed unsigned
    /// Rust integer).
    Unsigned(u64),
    /// A signed integer.
    Signed(i64),
    /// A typed `u128` (two note arguments: low half, high half).
    U128(u128),
    /// A typed `i128`.
    I128(i128),
    /// A typed `bool`.
    Bool(bool),
    /// A typed `char`, as its scalar value (not every `u32` is a `char`).
    Char(u32),
    /// A typed `f32`.
    F32(f32),
    /// A typed `f64`.
    F64(f64),
    /// A typed raw pointer.
    Pointer(u64),
    /// A string: Rust `&str`, `&CStr`, or a C string asked for on the
    /// command line. Bytes that are not UTF-8 are replaced.
    Str {
        /// The text copied from the traced process.
        text: String,
        /// Whether the string was longer than the copy bound.
        truncated: bool,
    },
    /// A typed `&[u8]`.
    Bytes {
        /// The bytes copied from the traced process.
        bytes: Vec<u8>,
        /// Whether the slice was longer than the copy bound.
        truncated: bool,
    },
    /// A typed JSON argument: the JSON text the program produced.
    Json {
        /// The text copied from the traced process.
        text: String,
        /// Whether the text was longer than the copy bound.
        truncated: bool,
    },
    /// The argument could not be read (unmapped memory).
    Fault,
}

impl Value {
    /// Whether the value is a string, byte string or JSON text that was cut
    /// at the copy bound.
    pub fn is_truncated(&self) -> bool {
        matches!(
            self,
            Value::Str {
                truncated: true,
                ..
            } | Value::Bytes {
                truncated: true,
                ..
            } | Value::Json {
                truncated: true,
                ..
            }
        )
    }

    /// Appends the value as JSON: integers exactly (any width), floats as
    /// the shortest number that reads back to the same value (non-finite
    /// ones as the strings `NaN`, `inf`, `-inf`), strings as strings, bytes as an
    /// array of numbers, JSON arguments verbatim when they are complete and
    /// valid, `null` for a fault.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Unsigned(v) | Value::Pointer(v) => write!(out, "{v}").unwrap(),
            Value::Signed(v) => write!(out, "{v}").unwrap(),
            Value::U128(v) => write!(out, "{v}").unwrap(),
            Value::I128(v) => write!(out, "{v}").unwrap(),
            Value::Bool(v) => write!(out, "{v}").unwrap(),
            Value::Char(v) => match char::from_u32(*v) {
                Some(c) => write_json_string(out, c.encode_utf8(&mut [0; 4])),
                None => write!(out, "{v}").unwrap(),
            },
            Value::F32(v) if v.is_finite() => write!(out, "{v:?}").unwrap(),
            Value::F64(v) if v.is_finite() => write!(out, "{v:?}").unwrap(),
            Value::F32(v) => write_json_string(out, &format!("{v:?}")),
            Value::F64(v) => write_json_string(out, &format!("{v:?}")),
            Value::Str { text, .. } => write_json_string(out, text),
            Value::Bytes { bytes, .. } => {
                out.push('[');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write!(out, "{b}").unwrap();
                }
                out.push(']');
            }
            Value::Json { text, truncated } => {
                let valid = !truncated
                    && !text.contains(['\n', '\r'])
                    && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
                if valid {
                    out.push_str(text.trim());
                } else {
                    write_json_string(out, text);
                }
            }
            Value::Fault => out.push_str("null"),
        }
    }
}

/// Readable form: integers in decimal, pointers in hex, strings quoted and
/// escaped (`...` after the quote when truncated), `<fault>` for a value
/// that could not be read.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
            Value::U128(v) => write!(f, "{v}"),
            Value::I128(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Char(v) => match char::from_u32(*v) {
                Some(c) => write!(f, "{c:?}"),
                None => write!(f, "<invalid char {v:#x}>"),
            },
            // Shortest text that reads back to the same value, with an
            // exponent for very large or small magnitudes.
            Value::F32(v) => write!(f, "{v:?}"),
            Value::F64(v) => write!(f, "{v:?}"),
            Value::Pointer(v) => write!(f, "{v:#x}"),
            Value::Str { text, truncated } => {
                write!(f, "{text:?}")?;
                if *truncated {
                    f.write_str("...")
                } else {
                    Ok(())
                }
            }
            Value::Bytes { bytes, truncated } => {
                write!(f, "b\"{}\"", bytes.escape_ascii())?;
                if *truncated {
                    f.write_str("...")
                } else {
                    Ok(())
                }
            }
            Value::Json { text, truncated } => {
                f.write_str(text)?;
                if *truncated {
                    f.write_str("...")
                } else {
                    Ok(())
                }
            }
            Value::Fault => f.write_str("<fault>"),
        }
    }
}

/// Appends `text` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut String, text: &str) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Serializing a &str cannot fail.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    } else {
        // Nothing to escape (every other character stands for itself).
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &Value) -> String {
        let mut out = String::new();
        value.write_json(&mut out);
        out
    }

    #[test]
    fn json_strings_escape_what_json_needs() {
        for text in [
            "plain",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "ünï €",
            "\u{7f}",
        ] {
            let mut out = String::new();
            write_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
        }
    }

    #[test]
    fn integers_are_exact_in_json() {
        assert_eq!(json(&Value::Unsigned(u64::MAX)), "18446744073709551615");
        assert_eq!(json(&Value::Signed(i64::MIN)), "-9223372036854775808");
        assert_eq!(
            json(&Value::U128(u128::MAX)),
            "340282366920938463463374607431768211455"
        );
        assert_eq!(
            json(&Value::I128(i128::MIN)),
            "-170141183460469231731687303715884105728"
        );
    }

    #[test]
    fn floats_strings_and_faults() {
        assert_eq!(json(&Value::F64(-2.5)), "-2.5");
        assert_eq!(json(&Value::F32(f32::MAX)), "3.4028235e38");
        assert_eq!(json(&Value::F64(1.0)), "1.0");
        assert_eq!(json(&Value::F64(f64::NEG_INFINITY)), "\"-inf\"");
        assert_eq!(json(&Value::F32(f32::NAN)), "\"NaN\"");
        assert_eq!(
            json(&Value::Str {
                text: "a\"b\n".into(),
                truncated: false
            }),
            r#""a\"b\n""#
        );
        assert_eq!(
            json(&Value::Bytes {
                bytes: vec![0, 255],
                truncated: false
            }),
            "[0,255]"
        );
        assert_eq!(json(&Value::Fault), "null");
        assert_eq!(json(&Value::Char('é' as u32)), "\"é\"");
        assert_eq!(json(&Value::Char(0xD800)), "55296");
    }

    #[test]
    fn json_arguments_are_embedded_only_when_valid() {
        let ok = Value::Json {
            text: r#"{"a":[1,2]}"#.into(),
            truncated: false,
        };
        assert_eq!(json(&ok), r#"{"a":[1,2]}"#);
        let cut = Value::Json {
            text: r#"{"a":[1,"#.into(),
            truncated: true,
        };
        assert_eq!(json(&cut), r#""{\"a\":[1,""#);
        let bad = Value::Json {
            text: "nope".into(),
            truncated: false,
        };
        assert_eq!(json(&bad), r#""nope""#);
    }

    #[test]
    fn readable_forms() {
        assert_eq!(Value::Pointer(0x1000).to_string(), "0x1000");
        assert_eq!(
            Value::Str {
                text: "x".into(),
                truncated: true
            }
            .to_string(),
            "\"x\"..."
        );
        assert_eq!(
            Value::Bytes {
                bytes: b"a\0".to_vec(),
                truncated: false
            }
            .to_string(),
            "b\"a\\x00\""
        );
        assert_eq!(Value::Char('z' as u32).to_string(), "'z'");
        assert_eq!(Value::Fault.to_string(), "<fault>");
    }
}
