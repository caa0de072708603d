//! The aggregation maps' size: bounded by what the maps would cost
//! (`--map-entries`), refused before anything is allocated; and allocated
//! as keys appear, so a large limit costs little until it is used.

use crate::CATALOG;
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::{assert_failure, run_usdt, usdt};
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::tracing_in_process;
use usdt_tracer::{Aggregation, MAX_MAP_ENTRIES, TraceConfig, Tracer};

#[test]
fn impossible_map_sizes_are_refused_with_their_cost() {
    let probe = format!("{CATALOG}:store:order_placed");
    usdt();
    for entries in [u32::MAX, MAX_MAP_ENTRIES + 1, 33_554_432] {
        let entries = entries.to_string();
        let start = Instant::now();
        let output = run_usdt(&["trace", "--hits", "--map-entries", &entries, &probe]);
        let line = assert_failure(
            &output,
            2,
            &format!("--map-entries {entries}: the aggregation maps would take up to "),
        );
        assert!(
            line.contains(&format!(
                " of kernel memory when full; at most {MAX_MAP_ENTRIES} entries ("
            )),
            "{line}"
        );
        // Nothing was allocated: a map that size takes seconds to create.
        assert!(start.elapsed() < Duration::from_secs(5), "{line}");
    }
    let output = run_usdt(&["trace", "--hits", "--map-entries", "33554432", &probe]);
    let line = String::from_utf8_lossy(&output.stderr);
    assert!(line.contains("would take up to 10.0 GiB"), "{line}");
}

/// The BPF hash maps this process holds: (max_entries, memlock bytes) of
/// each, from the kernel's accounting in /proc/self/fdinfo.
fn hash_maps() -> Vec<(u64, u64)> {
    let mut maps = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        if field("map_type:") == Some(1)
            && let (Some(entries), Some(memlock)) = (field("max_entries:"), field("memlock:"))
        {
            maps.push((entries, memlock));
        }
    }
    maps
}

#[test]
fn large_maps_take_memory_as_keys_appear() {
    if !require_bpf("large_maps_take_memory_as_keys_appear") {
        return;
    }
    let probe = format!("{CATALOG}:store:order_placed");
    let mut config = TraceConfig::new()
        .aggregate(Aggregation::hits(&[probe.as_str()], Some("order_id")).unwrap());
    config.map_entries = 1 << 20;
    let _in_process = tracing_in_process();
    let tracer = Tracer::attach(&config).unwrap();
    let maps = hash_maps();
    drop(tracer);
    eprintln!("hash maps (entries, memlock bytes): {maps:?}");
    // The counters: a million entries, in 16 MiB of buckets and no
    // element yet (allocated up front, they took 136 MiB).
    let counters: Vec<&(u64, u64)> = maps.iter().filter(|(n, _)| *n == 1 << 20).collect();
    assert_eq!(counters.len(), 1, "{maps:?}");
    assert!(counters[0].1 < 24 << 20, "{maps:?}");
    // No latency: the map of pending starts has one entry.
    assert!(maps.iter().any(|(n, _)| *n == 1), "{maps:?}");
}
