//! Probe patterns: `provider:name` with `*` and `?` globs.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A pattern selecting probes by provider and name: `provider:name` with
/// `*` (any run of characters) and `?` (any one character) in either part;
/// a bare `name` means `*:name`.
///
/// ```
/// use usdt_reader::ProbePattern;
/// let pattern = ProbePattern::parse("http:request_*").unwrap();
/// assert!(pattern.matches("http", "request_start"));
/// assert!(!pattern.matches("db", "request_start"));
/// assert!(ProbePattern::parse("function__entry").unwrap().matches("python", "function__entry"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbePattern {
    provider: String,
    name: String,
}

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("empty probe pattern")]
    Empty,
    /// More than one `:`.
    #[error("probe pattern `{0}` has more than one `:`; expected provider:name")]
    TooManyParts(String),
    /// An empty provider or name part.
    #[error("probe pattern `{0}` has an empty provider or name; use `*` to match any")]
    EmptyPart(String),
    /// A character no provider or name contains.
    #[error("probe pattern `{0}` contains whitespace")]
    Whitespace(String),
}

impl ProbePattern {
    /// The pattern that matches every probe (`*:*`).
    pub fn all() -> ProbePattern {
        ProbePattern {
            provider: "*".into(),
            name: "*".into(),
        }
    }

    /// Parses `provider:name` or `name`.
    pub fn parse(text: &str) -> Result<ProbePattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(PatternError::Whitespace(text.to_string()));
        }
        let mut parts = text.split(':');
        let (provider, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, _) => ("*", name),
            (Some(provider), Some(name), None) => (provider, name),
            _ => return Err(PatternError::TooManyParts(text.to_string())),
        };
        if provider.is_empty() || name.is_empty() {
            return Err(PatternError::EmptyPart(text.to_string()));
        }
        Ok(ProbePattern {
            provider: provider.to_string(),
            name: name.to_string(),
        })
    }

    /// Whether a probe `provider:name` matches.
    pub fn matches(&self, provider: &str, name: &str) -> bool {
        glob(self.provider.as_bytes(), provider.as_bytes())
            && glob(self.name.as_bytes(), name.as_bytes())
    }

    /// The provider part.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for ProbePattern {
    type Err = PatternError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ProbePattern::parse(text)
    }
}

impl fmt::Display for ProbePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.name)
    }
}

/// Matches `text` against `pattern` (`*` and `?` wildcards), in time
/// proportional to their lengths' product at worst.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it now covers up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*", b""));
        assert!(glob(b"*", b"abc"));
        assert!(glob(b"a*c", b"abc"));
        assert!(glob(b"a*c", b"ac"));
        assert!(glob(b"a*c", b"abcbc"));
        assert!(!glob(b"a*c", b"abcb"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*_*_*", b"request_start_x"));
        assert!(!glob(b"abc", b"abcd"));
        assert!(glob(b"**a", b"bba"));
        assert!(glob(b"", b""));
        assert!(!glob(b"", b"a"));
    }

    #[test]
    fn parts() {
        let p = ProbePattern::parse("http:request_*").unwrap();
        assert_eq!((p.provider(), p.name()), ("http", "request_*"));
        assert!(p.matches("http", "request_done"));
        assert!(!p.matches("https", "request_done"));
        let bare = ProbePattern::parse("*entry").unwrap();
        assert_eq!(bare.to_string(), "*:*entry");
        assert!(bare.matches("python", "function__entry"));
        assert!(ProbePattern::all().matches("a", "b"));
        assert_eq!(ProbePattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            ProbePattern::parse("a:b:c"),
            Err(PatternError::TooManyParts(_))
        ));
        assert!(matches!(
            ProbePattern::parse(":b"),
            Err(PatternError::EmptyPart(_))
        ));
        assert!(matches!(
            ProbePattern::parse("a:"),
            Err(PatternError::EmptyPart(_))
        ));
        assert!(matches!(
            ProbePattern::parse("a b"),
            Err(PatternError::Whitespace(_))
        ));
        assert_eq!(
            "p:n".parse::<ProbePattern>().unwrap(),
            ProbePattern::parse("p:n").unwrap()
        );
    }
}
