//! `filter_shop`: fires the typed probe `shop:request(id: u64, delta: i32,
//! path: &str)` once for each row of [`REQUESTS`], in order, then exits.
//! The values span both signs and the ends of their types, so a filter's
//! kept events can be checked exactly.

use std::hint::black_box;

#[usdt_runtime::provider]
mod shop {
    /// One request.
    pub fn request(id: u64, delta: i32, path: &str);
}

/// The requests fired, in order.
const REQUESTS: [(u64, i32, &str); 7] = [
    (1, -5, "/api/users"),
    (2, 3, "/api/orders"),
    (3, 0, "/static/app.js"),
    (u64::MAX, -1, "/api"),
    (5, i32::MIN, "/apiary"),
    (6, i32::MAX, ""),
    (1 << 63, 7, "/api/"),
];

fn main() {
    for (id, delta, path) in REQUESTS {
        let path = black_box(String::from(path));
        shop::request(|| (black_box(id), black_box(delta), path.as_str()));
    }
}
