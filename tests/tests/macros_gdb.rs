//! gdb reads back, through each probe's note, exactly the values
//! `probe_catalog` passed: every integer width at its extremes and
//! negative, 128-bit halves, bools, chars, float bits, a pointer, strings
//! and bytes through their pointers, JSON, for plain and typed probes.
//! gdb raises the typed probes' semaphores, so their closures run.

mod macros_support;

use macros_support::*;
use std::collections::BTreeMap;
use usdt_interop_tests::require_tool;

#[test]
fn gdb_reads_every_argument_value() {
    if !require_tool("gdb_reads_every_argument_value", "gdb") {
        return;
    }
    let sites = catalog_sites();
    // Sites of one probe are hit in firing order; they read the same
    // argument slots (their values may differ).
    let mut per_probe: BTreeMap<String, Vec<&Site>> = BTreeMap::new();
    for site in &sites {
        per_probe.entry(site.probe()).or_default().push(site);
    }
    let commands: Vec<(String, Vec<String>)> = per_probe
        .iter()
        .map(|(probe, sites)| {
            let mut exprs = vec!["print $_probe_argc".to_string()];
            exprs.extend(gdb_reads(sites[0]).into_iter().map(|(expr, _)| expr));
            (probe.clone(), exprs)
        })
        .collect();
    let hits = gdb_hits(&catalog(), &[], &commands);

    for (probe, sites) in &per_probe {
        let probe_hits = hits
            .get(probe)
            .unwrap_or_else(|| panic!("gdb never stopped at {probe}"));
        assert_eq!(probe_hits.len(), sites.len(), "{probe}: hits");
        for (site, hit) in sites.iter().zip(probe_hits) {
            let slots: usize = site.args.iter().map(|a| kind(a.kind).sizes.len()).sum();
            let mut expected = vec![slots.to_string()];
            expected.extend(gdb_reads(site).into_iter().map(|(_, value)| value));
            assert_eq!(hit, &expected, "{probe}: values read by gdb");
        }
    }
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
    let hits = gdb_hits(&catalog(), &[], &commands);
    assert_eq!(hits["store:order_placed"], vec![vec!["42".to_string()]]);
}
