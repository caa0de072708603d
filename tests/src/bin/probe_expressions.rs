//! `probe_expressions`: fires `probe!` with an argument of every kind of
//! expression (provider `expr`), the compile-pass case
//! `tests/ui/pass_probe_expressions.rs` itself, so that the tests check what
//! a tracer reads against what each expression evaluates to.

include!("../../ui/pass_probe_expressions.rs");
