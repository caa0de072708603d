//! The tracer's program in its dearest configurations, where the
//! verifier follows the most instructions: a trace that streams a probe of
//! seven strings (the largest string class) while it counts, histograms
//! and times other probes, once without options and once with a filter,
//! user stacks and hits counted by stack. Older verifiers (6.1's, 5.10's)
//! stop at 1,000,000 instructions, and the count swings with code
//! generation: run on those kernels, these traces catch a program grown
//! past them. The values are checked too: sdt_strings fires `one` with
//! lengths 0, 1, 255, 256, 257, 5000 and 0 (the last a NULL pointer), each
//! followed by `length` and between `begin` and `end`, then `all` with the
//! six strings and a NULL. Each probe has one role, as kernels without BPF
//! cookies (before 5.15) need.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::*;
use usdt_tracer::{AggregateResult, Aggregation, TraceConfig, Tracer, Value};

/// The lengths `one` fires, in order.
const LENGTHS: [u64; 7] = [0, 1, 255, 256, 257, 5000, 0];

#[test]
fn the_dearest_traces_load_and_count_exactly() {
    if !require_bpf("the_dearest_traces_load_and_count_exactly") {
        return;
    }
    let _tracing = tracing_in_process();
    // Not a PIE: without BPF cookies (before 5.15) the tracer finds the
    // sites of a path by their addresses, fixed only in such a file.
    let binary = build_c("trace_verifier", "sdt_strings.c", &["-O2", "-no-pie"]);
    let path = binary.display().to_string();
    let probe = |name: &str| format!("{path}:sdt_strings:{name}");
    let [begin, one, length, end, all] = ["begin", "one", "length", "end", "all"].map(probe);
    for options in [false, true] {
        // With options, `one` is counted by its user stack, not its length.
        let counted_by = if options { "stack" } else { "arg1" };
        let mut config = TraceConfig::new()
            .probe(&all)
            .unwrap()
            .strings("sdt_strings:all:0,1,2,3,4,5,6")
            .unwrap()
            .aggregate(Aggregation::hits(&[&one], Some(counted_by)).unwrap())
            .aggregate(Aggregation::histogram(&[&length], "arg0").unwrap())
            .aggregate(Aggregation::latency(&begin, &end, "arg0").unwrap());
        if options {
            config.filter = Some("pid > 0".parse().unwrap());
            config.stack = true;
        }
        let mut tracer = Tracer::attach(&config)
            .unwrap_or_else(|e| panic!("options {options}: the program is refused: {e}"));
        usdt_interop_tests::run(&mut Command::new(&binary));

        let mut streamed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while streamed.is_empty() && Instant::now() < deadline {
            tracer
                .poll(Duration::from_millis(100), |event| {
                    streamed.push(event.args.clone());
                    true
                })
                .unwrap();
        }
        assert_eq!(streamed.len(), 1, "options {options}: {streamed:?}");
        let lengths: Vec<usize> = streamed[0]
            .iter()
            .take(6)
            .map(|value| match value {
                Value::Str { text, .. } => text.len(),
                other => panic!("options {options}: {other:?}"),
            })
            .collect();
        // Strings are copied up to 255 bytes.
        assert_eq!(lengths, [0, 1, 255, 255, 255, 255], "options {options}");

        let report = tracer.aggregates().unwrap();
        let AggregateResult::Hits { counts, .. } = &report.results[0] else {
            panic!("{report:?}");
        };
        if options {
            let hits: u64 = counts.iter().map(|c| c.count).sum();
            assert_eq!(hits, LENGTHS.len() as u64, "{counts:?}");
        } else {
            let by_length: BTreeMap<u64, u64> = counts
                .iter()
                .map(|c| match c.key {
                    Some(Value::Unsigned(length)) => (length, c.count),
                    ref other => panic!("{other:?}"),
                })
                .collect();
            let mut expected = BTreeMap::new();
            for length in LENGTHS {
                *expected.entry(length).or_insert(0u64) += 1;
            }
            assert_eq!(by_length, expected);
        }
        let AggregateResult::Histogram { histograms, .. } = &report.results[1] else {
            panic!("{report:?}");
        };
        let histogram = &histograms[0].1;
        assert_eq!(histogram.buckets.iter().sum::<u64>(), LENGTHS.len() as u64);
        assert_eq!(
            histogram.sum,
            LENGTHS.iter().sum::<u64>(),
            "options {options}"
        );
        let AggregateResult::Latency { histogram, .. } = &report.results[2] else {
            panic!("{report:?}");
        };
        // Every `begin` paired with its `end` by index.
        assert_eq!(
            histogram.buckets.iter().sum::<u64>(),
            LENGTHS.len() as u64,
            "options {options}"
        );
        assert_eq!(report.losses, Default::default(), "options {options}");
    }
}
