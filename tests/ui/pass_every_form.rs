//! Every supported argument form compiles without warnings in a crate that
//! forbids unsafe code and requires docs, and runs.
#![forbid(unsafe_code)]
#![deny(missing_docs, warnings)]

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::num::NonZero;
use usdt_runtime::probe;

/// An order, passed as JSON.
#[derive(serde::Serialize)]
pub struct Order {
    /// Identifier.
    pub id: u64,
}

/// Every kind of argument.
#[usdt_runtime::provider]
pub mod every {
    /// Integers.
    pub fn ints(a: u8, b: u16, c: u32, d: u64, e: usize, f: i8, g: i16, h: i32, i: i64, j: isize);
    /// Wide integers.
    pub fn wide(a: u128, b: i128);
    /// Scalars.
    pub fn scalars(a: bool, b: char, c: f32, d: f64, e: *const u8, f: *mut u64);
    /// Text.
    pub fn text(a: &str, b: String, c: &[u8], d: Vec<u8>, e: &CStr);
    /// JSON.
    pub fn json(id: u64, #[json] order: &Order, #[json] tags: Vec<&'static str>);
    /// References and lifetimes.
    pub fn borrowed(a: &u32, b: &'static str, c: NonZero<u32>);
    /// One argument.
    pub fn one(id: u64);
    /// No argument.
    pub fn none();
}

/// A provider named explicitly, with other items kept as they are.
#[usdt_runtime::provider(name = "renamed_provider")]
mod inner {
    use std::collections::HashMap;

    pub(crate) fn visible_in_crate(id: u64);
    pub(crate) fn map_size(len: usize);

    /// Items other than probes stay.
    pub type Map = HashMap<u32, u32>;
}

fn main() {
    let owned = String::from("owned");
    let bytes = vec![1u8, 2, 3];
    let cstring = CString::new("c").unwrap();
    let mut value = 7u64;

    every::ints(|| (1, 2, 3, 4, 5, -6, -7, -8, -9, -10));
    every::wide(|| (u128::MAX, i128::MIN));
    every::scalars(|| (true, 'x', 1.0, 2.0, owned.as_ptr(), &mut value as *mut u64));
    // Owned values where borrowed ones are declared, and the reverse.
    every::text(|| (owned.clone(), "literal", bytes.clone(), &bytes[..1], cstring.clone()));
    every::text(|| (&owned, Cow::Borrowed("cow"), [1u8, 2], b"raw".to_vec(), c"lit"));
    every::json(|| (1, Order { id: 1 }, vec!["a"]));
    every::json(|| (1, &Order { id: 2 }, vec!["b"]));
    every::borrowed(|| (7, "static", NonZero::new(3).unwrap()));
    every::one(|| 42);
    every::none();
    inner::visible_in_crate(|| 1);
    let map = inner::Map::new();
    inner::map_size(|| map.len());
    assert!(!every::ints::enabled() && !inner::visible_in_crate::enabled());
    assert_eq!(every::ints::SEMAPHORE.count(), 0);

    let cstr: &CStr = c"plain";
    probe!(plain, ints, 1u8, 2u16, 3u32, 4u64, 5usize, -1i8, -2i16, -3i32, -4i64, -5isize);
    probe!(plain, text, owned, "lit", &bytes[..], [0u8; 4], cstr, cstring);
    probe!(plain, boxed, Box::new(5u32), Cow::Borrowed("cow"), NonZero::new(1u8).unwrap());
    probe!(plain, scalars, true, 'y', 1.5f32, 2.5f64, owned.as_ptr(), u128::MAX, -1i128);
    probe!(plain, none,);
    // Arguments are borrowed, not moved.
    drop((owned, bytes, cstring));
}
