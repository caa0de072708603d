//! An HTTP/1.1 server instrumented with USDT probes.
fn main() {}
