//! `probe!` takes any expression a function call takes: the
//! `probe_expressions` fixture (the compile-pass case
//! `tests/ui/pass_probe_expressions.rs`) fires one probe per kind of
//! expression, and `usdt trace -c` reads back what each evaluated to.

use serde_json::{Value, json};
use usdt_interop_tests::cli::*;
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::*;

const FIXTURE: &str = env!("CARGO_BIN_EXE_probe_expressions");

#[test]
fn every_expression_form_passes_its_value() {
    if !require_bpf("every_expression_form_passes_its_value") {
        return;
    }
    let output = run_usdt(&["trace", "--json", "-c", FIXTURE, "expr:*"]);
    assert_success(&output);
    let events = json_events(&output);
    // x = 7, flag = true, name = "probe", bytes = [1, 2, 3],
    // pair = (40, -2), counter = 5, a closure doubling its argument.
    let expected: [(&str, Value); 14] = [
        ("cast", json!([7, -7, 3.5, 8])),
        ("arith", json!([8, 19, 28, 3, 3])),
        ("unary", json!([-7, false, -7, 255, 7])),
        ("method", json!([5, "probe", "PROBE", 49])),
        ("call", json!([14, 7, 40, "called"])),
        ("block", json!([71, 1])),
        ("control", json!(["seven", 6])),
        ("macros", json!(["x=7", "ab", "x"])),
        ("reference", json!([7, "probe", [2, 3], 5, true])),
        ("index", json!([1, 40, -2, [9, 8, 7], [1, 2, 3]])),
        ("logic", json!([true, false, true])),
        ("literal", json!([-1, 2.5, "c", "lit", [114, 97, 119], 16])),
        ("question", json!([42, true])),
        ("after", json!([6])),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (name, args) in expected {
        let hits = named(&events, &format!("expr:{name}"));
        assert_eq!(hits.len(), 1, "expr:{name}: {hits:?}");
        assert_eq!(hits[0]["args"], args, "expr:{name}");
    }
}
