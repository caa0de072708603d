//! The `usdt` command: `usdt list` and `usdt trace`.
fn main() {}
