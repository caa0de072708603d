//! Compile-time errors of the probe macros, with the messages and spans a
//! user sees (the workspace's `tests/ui/*.stderr`), and one program using
//! every supported form that must compile cleanly and run. The passing
//! program makes trybuild build (not only check) every case, so errors found
//! after monomorphization, such as too many note arguments in `probe!`, show
//! too. Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn macro_errors_point_at_the_mistake() {
    let cases = trybuild::TestCases::new();
    cases.pass("../tests/ui/pass_*.rs");
    cases.compile_fail("../tests/ui/probe_*.rs");
    cases.compile_fail("../tests/ui/provider_*.rs");
}
