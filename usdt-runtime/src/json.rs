//! JSON probe arguments: `#[json]` parameters of typed providers.

use crate::{ArgKind, ProbeArg};
use alloc::vec::Vec;

/// A value that a typed provider can pass as a `#[json]` argument: any
/// `serde::Serialize` value when usdt-runtime's `serde` feature is enabled.
///
/// The JSON text is produced only while a tracer has the probe enabled. A
/// value whose serialization fails is passed as `null`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a #[json] probe argument",
    label = "`{Self}` does not implement `usdt_runtime::JsonArg`",
    note = "a #[json] argument must implement serde::Serialize, with usdt-runtime's `serde` feature enabled"
)]
pub trait JsonArg {
    /// The value's JSON text.
    fn to_json(&self) -> Vec<u8>;
}

#[cfg(feature = "serde")]
#[diagnostic::do_not_recommend]
impl<T: serde_core::Serialize + ?Sized> JsonArg for T {
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"null".to_vec())
    }
}

/// JSON text passed to a probe: two slots, pointer and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(Vec<u8>);

impl Json {
    /// JSON text already made (by [`JsonArg::to_json`]).
    pub fn from_text(text: Vec<u8>) -> Json {
        Json(text)
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for Json {
    const KIND: ArgKind = ArgKind::Json;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        self.0.as_slice().to_words()
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::JsonArg;
    use std::collections::BTreeMap;

    #[test]
    fn encodes_json_or_null() {
        assert_eq!(("a", 1).to_json(), br#"["a",1]"#);
        let mut bad = BTreeMap::new();
        bad.insert((1, 2), 3);
        assert_eq!(bad.to_json(), b"null");
    }
}
