//! Declare USDT probes in Rust code.
