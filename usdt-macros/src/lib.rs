//! Procedural macros behind `usdt_runtime`; use them through that crate.
