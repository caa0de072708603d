//! The aggregation maps' size: bounded by what the maps would cost
//! (`--map-entries`), refused before anything is allocated; and allocated
//! as keys appear, so a large limit costs little until it is used.

use crate::CATALOG;
use std::time::{Duration, Instant};
use usdt_interop_tests::cli::{assert_failure, run_usdt, usdt};
use usdt_interop_tests::trace::{cookies_or_refused_attach, tracing_in_process};
use usdt_interop_tests::{require_bpf, scaled};
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
        // Nothing was allocated: a map that size takes seconds to create
        // (longer bounds in an emulated machine, where everything is slow).
        assert!(start.elapsed() < scaled(Duration::from_secs(5)), "{line}");
    }
    let output = run_usdt(&["trace", "--hits", "--map-entries", "33554432", &probe]);
    let line = String::from_utf8_lossy(&output.stderr);
    assert!(line.contains("would take up to 13.5 GiB"), "{line}");
}

/// A BPF hash map this process holds, from /proc/self/fdinfo.
#[derive(Debug)]
struct HashMapInfo {
    max_entries: u64,
    key_size: u64,
    value_size: u64,
    /// The kernel's accounting of its memory.
    memlock: u64,
}

impl HashMapInfo {
    /// Whether `memlock` is what every entry would take, not what the map
    /// holds: kernels before 6.4 report that footprint, whatever the map
    /// allocated.
    fn memlock_is_footprint(&self) -> bool {
        let entry = (self.key_size + self.value_size).next_multiple_of(8);
        self.memlock == (self.max_entries * entry).next_multiple_of(4096)
    }
}

/// The BPF hash maps this process holds.
fn hash_maps() -> Vec<HashMapInfo> {
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
            && let (Some(max_entries), Some(key_size), Some(value_size), Some(memlock)) = (
                field("max_entries:"),
                field("key_size:"),
                field("value_size:"),
                field("memlock:"),
            )
        {
            maps.push(HashMapInfo {
                max_entries,
                key_size,
                value_size,
                memlock,
            });
        }
    }
    maps
}

/// The kernel's vmalloc memory in use, in bytes (/proc/meminfo).
fn vmalloc_used() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("VmallocUsed:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmallocUsed in /proc/meminfo");
    kib << 10
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
    let before = vmalloc_used();
    let attached = Tracer::attach(&config);
    if !cookies_or_refused_attach(&attached, "store:order_placed in ") {
        return;
    }
    let tracer = attached.unwrap();
    let grown = vmalloc_used().saturating_sub(before);
    let maps = hash_maps();
    drop(tracer);
    eprintln!("hash maps: {maps:?}; vmalloc grew by {grown} bytes");
    // The counters: a million entries, in 16 MiB of buckets and no
    // element yet (allocated up front, they take 72 MiB more).
    let counters: Vec<&HashMapInfo> = maps.iter().filter(|m| m.max_entries == 1 << 20).collect();
    assert_eq!(counters.len(), 1, "{maps:?}");
    if !usdt_tracer::KernelFeatures::get().runtime_allocation {
        // Before 6.1 the hash maps are preallocated: all of it up front.
        let taken = counters[0].memlock.max(grown);
        assert!(taken >= 80 << 20, "{maps:?}; vmalloc grew by {grown} bytes");
    } else if counters[0].memlock_is_footprint() {
        // The kernel's accounting says nothing of what was allocated: its
        // large allocations (buckets, preallocated entries) are vmalloc'ed.
        // Other tests' tracers take some too, far less than 88 MiB.
        assert!(grown < 64 << 20, "vmalloc grew by {grown} bytes");
    } else {
        assert!(counters[0].memlock < 24 << 20, "{maps:?}");
    }
    // No latency: the map of pending starts has one entry.
    assert!(maps.iter().any(|m| m.max_entries == 1), "{maps:?}");
}
