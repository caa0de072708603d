//! Text from files and processes made safe to print: their names, argument
//! strings and paths may hold anything, and a control character printed as
//! it is moves the cursor, clears the screen or ends a line (one line per
//! probe or event no longer holds).

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL and C1: what
/// [`char::is_control`] says) escaped: `\n`, `\r`, `\t`, `\e` for ESC,
/// `\xHH` for other ASCII and `\u{HHHH}` for the rest. Everything else
/// stays, backslashes included (so JSON text keeps its escapes): text
/// without control characters is returned as it is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\x1b' => escaped.push_str("\\e"),
            c if c.is_control() && c.is_ascii() => {
                let _ = write!(escaped, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// The longest part of an untrusted name an error message quotes.
const QUOTED_CHARS: usize = 64;

/// `text` in double quotes for a message: control characters escaped (see
/// [`escape_controls`]), cut after 64 characters (`...` after the quote).
pub(crate) fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(QUOTED_CHARS).collect();
    let more = if cut.len() < text.len() { "..." } else { "" };
    format!("\"{}\"{more}", escape_controls(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(
            escape_controls("plain /path: ünïcode \\"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_controls("a\nb\r\tc\x1b[2J\x07\x7f\u{85}\u{9b}\\"),
            "a\\nb\\r\\tc\\e[2J\\x07\\x7f\\u{85}\\u{9b}\\"
        );
        assert_eq!(quoted("p\n"), "\"p\\n\"");
        assert_eq!(
            quoted(&"x".repeat(70)),
            format!("\"{}\"...", "x".repeat(64))
        );
    }
}
