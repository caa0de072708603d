//! The cross-crate and interoperability tests, in one test binary with a
//! module per subject: the probe macros' output against the binary
//! contract, sys/sdt.h, readelf, gdb and bpftrace (`macros_*`); usdt-reader
//! against readelf and gdb on C programs of every architecture and on
//! running processes (`reader_*`); the `usdt` command (`list_cli`,
//! `trace_*`, `aggregate_known`, `uprobe_functions`), and `usdt serve`
//! scraped by a real Prometheus (`serve_prometheus`). Their shared code is
//! the `usdt_interop_tests` library.

use std::path::Path;

mod aggregate_known;
mod aggregate_limits;
mod attach_custom;
mod list_cli;
mod list_hostile_names;
mod list_skipped_notes;
mod macros_bpftrace;
mod macros_cross;
mod macros_gdb;
mod macros_notes;
mod macros_sdt_compare;
mod macros_semaphore_page;
mod macros_variants;
mod reader_catalog;
mod reader_discarded;
mod reader_fuzz_regressions;
mod reader_gdb;
mod reader_process;
mod reader_readelf;
mod reader_snapshots;
mod reader_sweep;
mod readme_project;
mod serve_prometheus;
mod trace_c_programs;
mod trace_capabilities;
mod trace_consistency;
mod trace_errors;
mod trace_exits;
mod trace_expressions;
mod trace_filters;
mod trace_follow;
mod trace_killed;
mod trace_macros;
mod trace_peers;
mod trace_restricted;
mod trace_scale;
mod trace_signals;
mod trace_stacks;
mod trace_verifier;
mod uprobe_functions;

/// The `probe_catalog` fixture program (tests/src/bin/probe_catalog.rs),
/// built with this package: a probe of every argument kind.
const CATALOG: &str = env!("CARGO_BIN_EXE_probe_catalog");

/// The `trace_peer_probes` fixture program (tests/src/bin/), built with
/// this package: probes of the `probe` and `usdt` crates.
const PEERS: &str = env!("CARGO_BIN_EXE_trace_peer_probes");

/// [`CATALOG`] as a path.
fn catalog() -> &'static Path {
    Path::new(CATALOG)
}
