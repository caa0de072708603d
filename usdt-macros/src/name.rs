//! Validity of provider and probe names: the rule of
//! `usdt_format::is_valid_name`, with the reason a name breaks it.

use usdt_format::MAX_NAME_LEN;

/// Why `name` is not a valid provider or probe name, or `None` if it is:
/// ASCII letters, digits and `_`, not starting with a digit, 1 to
/// [`MAX_NAME_LEN`] bytes.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "`{name}` is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Some(format!("`{name}` starts with a digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Some(format!(
            "`{name}` contains {c:?}; use ASCII letters, digits and `_`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::name_problem;

    #[test]
    fn names_follow_the_runtime_rule() {
        assert_eq!(name_problem("request_start"), None);
        assert_eq!(name_problem("_x9"), None);
        assert!(name_problem("").is_some());
        assert!(
            name_problem("9lives")
                .unwrap()
                .contains("starts with a digit")
        );
        assert!(name_problem("a-b").unwrap().contains("'-'"));
        assert!(name_problem("café").unwrap().contains("'é'"));
        assert_eq!(name_problem(&"x".repeat(64)), None);
        assert!(name_problem(&"x".repeat(65)).unwrap().contains("65 bytes"));
    }
}
