//! Decoded argument values and how they print.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

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
}

/// Serializes as JSON wants it: integers exactly (any width: 128-bit values
/// never pass through a float), floats as the shortest number that reads
/// back to the same value (non-finite ones as the strings `NaN`, `inf`,
/// `-inf`), a `char` as a one-character string (a value that is no `char`
/// as its number), strings as strings, bytes as an array of numbers, JSON
/// arguments verbatim when they are complete and valid (else as a string),
/// `null` for a fault.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Unsigned(v) | Value::Pointer(v) => serializer.serialize_u64(*v),
            Value::Signed(v) => serializer.serialize_i64(*v),
            Value::U128(v) => serializer.serialize_u128(*v),
            Value::I128(v) => serializer.serialize_i128(*v),
            Value::Bool(v) => serializer.serialize_bool(*v),
            Value::Char(v) => match char::from_u32(*v) {
                Some(c) => serializer.serialize_char(c),
                None => serializer.serialize_u32(*v),
            },
            Value::F32(v) if v.is_finite() => serializer.serialize_f32(*v),
            Value::F64(v) if v.is_finite() => serializer.serialize_f64(*v),
            Value::F32(v) => serializer.serialize_str(&format!("{v:?}")),
            Value::F64(v) => serializer.serialize_str(&format!("{v:?}")),
            Value::Str { text, .. } => serializer.serialize_str(text),
            Value::Bytes { bytes, .. } => serializer.collect_seq(bytes),
            // Embedded as it is only when that keeps the output on one
            // line and valid.
            Value::Json { text, truncated } if !truncated && !text.contains(['\n', '\r']) => {
                match RawValue::from_string(text.trim().to_owned()) {
                    Ok(raw) => raw.serialize(serializer),
                    Err(_) => serializer.serialize_str(text),
                }
            }
            Value::Json { text, .. } => serializer.serialize_str(text),
            Value::Fault => serializer.serialize_none(),
        }
    }
}

/// Readable form: integers in decimal, pointers in hex, strings quoted and
/// escaped (`...` after the quote when truncated), JSON as written with its
/// control characters escaped, `<fault>` for a value that could not be
/// read. It holds no control character, whatever the traced program sent.
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
                // As the program wrote it, but on one line and with no
                // control character (valid JSON has none in its strings).
                f.write_str(&usdt_reader::escape_controls(text))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &Value) -> String {
        serde_json::to_string(value).unwrap()
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
        assert_eq!(json(&Value::F32(f32::MAX)).parse::<f32>(), Ok(f32::MAX));
        assert_eq!(json(&Value::F64(1e-300)).parse::<f64>(), Ok(1e-300));
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
        let lines = Value::Json {
            text: "{\"a\":\n1}".into(),
            truncated: false,
        };
        assert_eq!(json(&lines), r#""{\"a\":\n1}""#);
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
