//! Validity of provider and probe names.

/// The longest provider or probe name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid provider or probe name: ASCII letters, digits
/// and `_`, not starting with a digit, 1 to [`MAX_NAME_LEN`] bytes. Such
/// names pass unchanged through every sys/sdt.h tool (readelf, gdb,
/// bpftrace, bcc, systemtap) and make valid semaphore symbols.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN || bytes[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn names() {
        assert!(is_valid_name("http"));
        assert!(is_valid_name("_request_start2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("2fast"));
        assert!(!is_valid_name("has-dash"));
        assert!(!is_valid_name("r#type"));
        assert!(!is_valid_name("café"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
    }
}
