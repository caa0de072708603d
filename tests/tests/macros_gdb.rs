//! gdb reads back, through each probe's note, exactly the values
//! `probe_catalog` passed: every integer width at its extremes and
//! negative, 128-bit halves, bools, chars, float bits, a pointer, strings
//! and bytes through their pointers, JSON, for plain and typed probes.
//! gdb raises the typed probes' semaphores, so their closures run.

use crate::catalog;
use usdt_interop_tests::macros::*;
use usdt_interop_tests::require_tool;

#[test]
fn gdb_reads_every_argument_value() {
    if !require_tool("gdb_reads_every_argument_value", "gdb") {
        return;
    }
    assert_gdb_reads_sites(catalog(), &[], &catalog_sites());
}

#[test]
fn typed_closures_run_only_while_a_tracer_listens() {
    if !require_tool("typed_closures_run_only_while_a_tracer_listens", "gdb") {
        return;
    }
    // Without a tracer: no closure runs.
    let out = usdt_interop_tests::run(&mut std::process::Command::new(catalog()));
    assert_eq!(out.trim(), "lazy evaluations: 0");

    // gdb on one typed probe raises its semaphore: exactly that closure runs.
    let commands = vec![(
        "store:order_placed".to_string(),
        vec!["print $_probe_arg0".to_string()],
    )];
    let hits = gdb_hits(catalog(), &[], &commands);
    assert_eq!(hits["store:order_placed"], vec![vec!["42".to_string()]]);
}
