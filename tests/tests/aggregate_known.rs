//! In-kernel aggregations of `usdt trace` (`--hits`, `--hist`,
//! `--latency`) on a C program whose behaviour is known by construction
//! (tests/fixtures/agg_known.c): the counts, bucket placements and latency
//! buckets printed are exactly what the program did, at -O0 and -O2. The
//! delays are far from bucket edges (17 ms in 16,384-32,767 us, 135 ms in
//! 131,072-262,143 us) so a loaded machine cannot move them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{Guard, require_bpf};

/// The values agg_known fires through agg:size, in order.
pub(crate) const SIZES: [i64; 19] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    1000,
    1023,
    1024,
    65535,
    65536,
    i64::MAX,
    -1,
    -2,
    -3,
    -1000,
    -1025,
    i64::MIN,
];

/// agg_known at -O0 and -O2.
fn fixtures(test: &str) -> Vec<PathBuf> {
    build_c_at_o0_and_o2(test, "agg_known.c")
}

/// Runs `usdt trace --json ARGS -c BINARY [ARG]` and returns its aggregation
/// lines (parsed) and its standard error.
fn aggregate(
    binary: &Path,
    fixture_arg: Option<&str>,
    args: &[&str],
) -> (Vec<serde_json::Value>, String) {
    let mut command = binary.display().to_string();
    if let Some(arg) = fixture_arg {
        command = format!("{command} {arg}");
    }
    let mut full = vec!["trace", "--json", "-c", &command];
    full.extend_from_slice(args);
    let output = run_usdt(&full);
    let stderr = assert_success(&output);
    assert!(stderr.contains("command exited with status 0"), "{stderr}");
    (aggregation_lines(&output), stderr)
}

/// The JSON aggregation objects of an output (the fixture's own lines are
/// skipped).
pub(crate) fn aggregation_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("{\"aggregation\":"))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The count of each probe's unkeyed hits line, by probe name.
pub(crate) fn probe_counts(lines: &[serde_json::Value]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `{"key": ..., "count": N}` entries of a keyed hits line, as (key text,
/// count).
pub(crate) fn keyed_counts(line: &serde_json::Value) -> BTreeMap<String, u64> {
    line["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| {
            let key = match &c["key"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key, c["count"].as_u64().expect("count"))
        })
        .collect()
}

/// The (low, high, count) buckets of a histogram line, bounds as
/// [`json_bound`] reads them.
pub(crate) fn buckets(line: &serde_json::Value) -> Vec<(i128, i128, u64)> {
    line["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                json_bound(&b["low"]),
                json_bound(&b["high"]),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The power-of-two bucket of `value` as (low, high), computed here from
/// its bit length, independently of the tracer: negative values in (-1,
/// -1), 0 and 1 in (0, 1), 2 and 3 in (2, 3), 4 to 7 in (4, 7), ...
fn expected_bucket(value: i64) -> (i128, i128) {
    if value < 0 {
        // The mirror image of the magnitude's bucket.
        let (low, high) = expected_bucket_of(value.unsigned_abs());
        return (-high, -low.max(1));
    }
    expected_bucket_of(value as u64)
}

/// A bucket bound as parsed JSON holds it: exact within `i64` and `u64`,
/// through an `f64` below (only `-(2^64 - 1)`, the lowest bound, is; the
/// line's text has it exactly).
fn json_bound(value: &serde_json::Value) -> i128 {
    value
        .as_i64()
        .map(i128::from)
        .or(value.as_u64().map(i128::from))
        .unwrap_or_else(|| value.as_f64().expect("numeric bound") as i128)
}

/// `bound` as [`json_bound`] reads it back.
fn as_read(bound: i128) -> i128 {
    json_bound(&serde_json::from_str(&bound.to_string()).expect("a number"))
}

/// The log2 bucket of a magnitude: 0 and 1 in the first, then powers of two.
fn expected_bucket_of(value: u64) -> (i128, i128) {
    if value <= 1 {
        return (0, 1);
    }
    let bits = 64 - value.leading_zeros();
    (1i128 << (bits - 1), (1i128 << bits) - 1)
}

#[test]
fn every_key_of_a_large_map_is_read_exactly() {
    if !require_bpf("every_key_of_a_large_map_is_read_exactly") {
        return;
    }
    // More keys than one batched read of the map returns: the reads must
    // chain, and lose or repeat no entry.
    const KEYS: u64 = 10_000;
    let binary = &fixtures("aggregate_many_keys")[1];
    let (lines, _) = aggregate(
        binary,
        Some(&format!("keys {KEYS}")),
        &[
            "--hits",
            "--by",
            "arg0",
            "--map-entries",
            "16384",
            "agg:unique",
        ],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    let counts = keyed_counts(&lines[0]);
    let expected: BTreeMap<String, u64> = (0..KEYS).map(|i| (i.to_string(), i % 3 + 1)).collect();
    assert_eq!(counts.len(), expected.len());
    assert_eq!(counts, expected);
}

#[test]
fn hit_counts_per_key_per_probe_and_per_string() {
    if !require_bpf("hit_counts_per_key_per_probe_and_per_string") {
        return;
    }
    for binary in fixtures("aggregate_hit_counts") {
        let (lines, _) = aggregate(&binary, None, &["--hits", "--by", "arg0", "agg:event"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["name"], "event");
        assert_eq!(lines[0]["by"], "arg0");
        let expected: BTreeMap<String, u64> =
            BTreeMap::from([("1".into(), 3), ("2".into(), 5), ("7".into(), 11)]);
        assert_eq!(keyed_counts(&lines[0]), expected, "{}", binary.display());
        // Highest count first.
        assert_eq!(lines[0]["counts"][0]["key"], 7);

        // Per probe, without a key: every probe of the pattern.
        let (lines, _) = aggregate(&binary, None, &["--hits", "agg:*"]);
        let counts = probe_counts(&lines);
        let expected: BTreeMap<String, u64> = BTreeMap::from([
            ("event".into(), 19),
            ("path".into(), 7),
            ("size".into(), SIZES.len() as u64),
            ("begin".into(), 3),
            ("end".into(), 3),
            ("unique".into(), 10),
        ]);
        assert_eq!(counts, expected, "{}", binary.display());

        // By a C string: the 100-byte path is cut to the 63 bytes a key holds
        // (with its NUL) and flagged.
        let (lines, _) = aggregate(
            &binary,
            None,
            &["--str", "agg:path:0", "--hits", "--by", "arg0", "agg:path"],
        );
        let long = format!("/{}", "x".repeat(62));
        let expected: BTreeMap<String, u64> = BTreeMap::from([
            ("/a".into(), 1),
            ("/b".into(), 2),
            ("/c".into(), 3),
            (long.clone(), 1),
        ]);
        assert_eq!(keyed_counts(&lines[0]), expected);
        let cut: Vec<&serde_json::Value> = lines[0]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("truncated").is_some())
            .collect();
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0]["key"], long.as_str());
    }
    // Before 6.1 the hash maps are preallocated: no kernel warning.
    assert_no_runtime_allocation_warning();
}

#[test]
fn hit_counts_by_pid_separate_processes() {
    if !require_bpf("hit_counts_by_pid_separate_processes") {
        return;
    }
    let binary = &fixtures("aggregate_by_pid")[1];
    usdt(); // Built before the trace starts.
    let spec = format!("{}:agg:event", binary.display());
    let args = ["--json", "--hits", "--by", "pid", &spec];
    if !cookies_or_refused(&args, "agg:event in ") {
        return;
    }
    let (trace, mut stderr) = start_trace(&args);
    let printed = usdt_interop_tests::run(Command::new(binary).arg("fork"));
    let pid_of = |role: &str| -> String {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(role))
            .unwrap_or_else(|| panic!("no {role} line in {printed:?}"))
            .trim()
            .to_owned()
    };
    let (parent, child) = (pid_of("parent "), pid_of("child "));
    // SAFETY: kill sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(trace.pid() as i32, libc::SIGINT) }, 0);
    let output = trace.finish();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read stderr");
    assert!(output.status.success(), "{rest}");
    assert!(rest.contains("SIGINT received"), "{rest}");
    let lines = aggregation_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let counts = keyed_counts(&lines[0]);
    // Other processes do not run this fresh binary: exactly the two pids.
    assert_eq!(counts, BTreeMap::from([(parent, 19), (child, 4)]));
}

#[test]
fn histogram_buckets_hold_each_value() {
    if !require_bpf("histogram_buckets_hold_each_value") {
        return;
    }
    let mut expected: BTreeMap<(i128, i128), u64> = BTreeMap::new();
    for value in SIZES {
        let (low, high) = expected_bucket(value);
        *expected.entry((as_read(low), as_read(high))).or_default() += 1;
    }
    for binary in fixtures("aggregate_histogram") {
        let command = binary.display().to_string();
        let output = run_usdt(&[
            "trace", "--json", "-c", &command, "--hist", "arg0", "agg:size",
        ]);
        assert_success(&output);
        // The exact lowest bound is in the line's text (parsed, it goes
        // through an f64).
        let raw = String::from_utf8_lossy(&output.stdout);
        assert!(
            raw.contains(r#"{"low":-18446744073709551615,"high":-9223372036854775808,"count":1}"#),
            "{raw}"
        );
        let lines = aggregation_lines(&output);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["arg"], "arg0");
        assert_eq!(lines[0]["total"], SIZES.len());
        // The sum is kept in the kernel, wrapping at 64 bits as an i64.
        let sum = SIZES.iter().fold(0i64, |sum, v| sum.wrapping_add(*v));
        assert_eq!(lines[0]["sum"], sum, "{}", binary.display());
        let found: BTreeMap<(i128, i128), u64> = buckets(&lines[0])
            .into_iter()
            .map(|(low, high, count)| ((low, high), count))
            .collect();
        assert_eq!(found, expected, "{}", binary.display());
        // Spelled out: each negative value in the mirror image of its
        // magnitude's bucket.
        let negative: Vec<((i128, i128), u64)> =
            found.into_iter().filter(|((low, _), _)| *low < 0).collect();
        assert_eq!(
            negative,
            [
                ((as_read(-(1i128 << 64) + 1), -(1i128 << 63)), 1),
                ((-2047, -1024), 1),
                ((-1023, -512), 1),
                ((-3, -2), 2),
                ((-1, -1), 1),
            ],
            "{}",
            binary.display()
        );
    }

    // The text form: bcc's layout, from i64::MIN's bucket through every
    // negative bucket, then up to i64::MAX's bucket (wide columns).
    let binary = &fixtures("aggregate_histogram_text")[1];
    let command = binary.display().to_string();
    let output = run_usdt(&["trace", "-c", &command, "--hist", "arg0", "agg:size"]);
    assert_success(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("agg:size arg0: 19 values"))
        .collect();
    assert_eq!(table.len(), 2 + 64 + 63, "{text}");
    assert_eq!(
        table[1],
        "               arg0                          : count     distribution"
    );
    assert_eq!(
        table[2],
        "-18446744073709551615 -> -9223372036854775808 : 1        |**********          |"
    );
    assert_eq!(
        table[64],
        "                  -3 -> -2                   : 2        |********************|"
    );
    assert_eq!(
        table[65],
        "                  -1 -> -1                   : 1        |**********          |"
    );
    assert_eq!(
        table[66],
        "                   0 -> 1                    : 2        |********************|"
    );
    assert_eq!(
        table[81],
        "               32768 -> 65535                : 1        |**********          |"
    );
    assert_eq!(
        table[128],
        " 4611686018427387904 -> 9223372036854775807  : 1        |**********          |"
    );
}

#[test]
fn latencies_pair_starts_and_ends_by_key() {
    if !require_bpf("latencies_pair_starts_and_ends_by_key") {
        return;
    }
    for binary in fixtures("aggregate_latency") {
        let (lines, stderr) = aggregate(
            &binary,
            None,
            &["--latency", "agg:begin", "agg:end", "--key", "arg0"],
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["unit"], "usecs");
        assert_eq!(lines[0]["key"], "arg0");
        // id 1 after 17 ms, id 2 after 135 ms; id 3 never ends, id 4 never
        // began.
        assert_eq!(
            buckets(&lines[0]),
            [(16384, 32767, 1), (131072, 262143, 1)],
            "{}",
            binary.display()
        );
        // The sum, kept in nanoseconds: at least the 17 + 135 ms slept.
        let sum = lines[0]["sum_nsecs"].as_u64().expect("sum_nsecs");
        assert!(
            (152_000_000..2_000_000_000).contains(&sum),
            "{sum} ns, {}",
            binary.display()
        );
        assert!(
            stderr.contains("usdt: warning: 1 latency end had no start"),
            "{stderr}"
        );
        assert!(
            stderr.contains("usdt: warning: 1 latency start had no end yet"),
            "{stderr}"
        );

        // A function's duration: its entry to its return on the same thread.
        let entry = format!("uprobe:{}:slow_call", binary.display());
        let exit = format!("uretprobe:{}:slow_call", binary.display());
        let args = ["--latency", &entry, &exit, "--key", "tid"];
        let command = binary.display().to_string();
        if !cookies_or_refused(
            &[&["-c", &command], &args[..]].concat(),
            "uretprobe:slow_call",
        ) {
            continue;
        }
        let (lines, _) = aggregate(&binary, None, &args);
        assert_eq!(buckets(&lines[0]), [(16384, 32767, 1)]);
    }
}

#[test]
fn a_full_map_is_reported_not_silently_truncated() {
    if !require_bpf("a_full_map_is_reported_not_silently_truncated") {
        return;
    }
    let binary = &fixtures("aggregate_full_map")[1];
    let (lines, stderr) = aggregate(
        binary,
        None,
        &["--map-entries", "4", "--hits", "--by", "arg0", "agg:unique"],
    );
    // agg:unique fires 0 to 9 in order: the first four keys fit.
    let expected: BTreeMap<String, u64> = (0..4).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(keyed_counts(&lines[0]), expected);
    assert!(
        stderr.contains(
            "usdt: warning: the aggregation map was full (4 entries): 6 hits not counted"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("6 hits lost"), "{stderr}");
    // The same with room for all ten: nothing lost.
    let (lines, stderr) = aggregate(binary, None, &["--hits", "--by", "arg0", "agg:unique"]);
    assert_eq!(keyed_counts(&lines[0]).len(), 10);
    assert!(stderr.contains("no hit lost"), "{stderr}");
}

#[test]
fn intervals_add_up_to_the_total() {
    if !require_bpf("intervals_add_up_to_the_total") {
        return;
    }
    let binary = build_c("aggregate_intervals", "uprobe_target.c", &["-O2"]);
    usdt();
    let mut target = Guard::spawn(Command::new(&binary).arg("wait"));
    let mut stdout = std::io::BufReader::new(target.0.stdout.take().expect("stdout"));
    read_until(&mut stdout, Duration::from_secs(10), |l| l == "ready");
    let describe = format!("uprobe:{}:describe(n: int)", binary.display());
    let pid = target.pid().to_string();
    let (trace, _stderr) = start_trace(&[
        "--json",
        "--pid",
        &pid,
        "--interval",
        "0.2",
        "--hits",
        "--by",
        "n",
        &describe,
    ]);
    // Forty calls over about a second: several intervals.
    let mut stdin = target.0.stdin.take().expect("stdin");
    for i in 0..40 {
        use std::io::Write;
        writeln!(stdin, "{}", i % 4).expect("write a line");
        read_until(&mut stdout, Duration::from_secs(10), |_| true);
        std::thread::sleep(Duration::from_millis(25));
    }
    drop(stdin); // The target exits, and the trace with it.
    let output = trace.finish();
    assert!(output.status.success());
    let lines = aggregation_lines(&output);
    let reports: Vec<u64> = lines
        .iter()
        .map(|l| l["report"].as_u64().unwrap())
        .collect();
    assert!(reports.len() >= 3, "{lines:?}");
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        for (key, count) in keyed_counts(line) {
            *total.entry(key).or_default() += count;
        }
    }
    let expected: BTreeMap<String, u64> = (0..4).map(|n| (n.to_string(), 10)).collect();
    assert_eq!(total, expected, "{lines:?}");
}

#[test]
fn aggregation_usage_errors_exit_with_status_2() {
    let check = assert_trace_usage_error;
    check(
        &["--hits", "--count", "5", "./x:p:n"],
        "--count stops after N",
    );
    check(&["--latency", "p:a", "p:b", "./x:p:n"], "--key");
    check(
        &["--latency", "p:a", "p:b", "--key", "id", "./x:p:n"],
        "PROBE arguments",
    );
    check(
        &["--interval", "1", "./x:p:n"],
        "--interval prints aggregations",
    );
    check(&["--hits", "--interval", "0", "./x:p:n"], "--interval 0");
    check(
        &["--hits", "--by", "a b", "./x:p:n"],
        "expected `pid`, `tid`",
    );
    check(
        &["--hits", "--map-entries", "0", "./x:p:n"],
        "--map-entries 0",
    );
    check(&["--by", "pid", "./x:p:n"], "--hits");
}

#[test]
fn aggregation_input_errors_name_the_argument() {
    if !require_bpf("aggregation_input_errors_name_the_argument") {
        return;
    }
    let binary = &fixtures("aggregate_input_errors")[0];
    let command = binary.display().to_string();
    let check = |args: &[&str], text: &str| {
        let mut full = vec!["-c", &command];
        full.extend_from_slice(args);
        assert_trace_usage_error(&full, text);
    };
    check(
        &["--hits", "--by", "status", "agg:event"],
        "no argument `status` (its arguments: arg0, arg1)",
    );
    check(
        &["--str", "agg:path:0", "--hist", "arg0", "agg:path"],
        "argument `arg0` is a string; a histogram needs an integer",
    );
    check(
        &[
            "--str",
            "agg:path:0",
            "--latency",
            "agg:path",
            "agg:end",
            "--key",
            "arg0",
        ],
        "cannot be a latency key",
    );
}

#[test]
fn one_probe_streamed_and_aggregated_through_both_kinds_of_links() {
    if !require_bpf("one_probe_streamed_and_aggregated_through_both_kinds_of_links") {
        return;
    }
    use usdt_tracer::{AggregateResult, Aggregation, TraceConfig, Tracer, Value};
    let _tracing = tracing_in_process();
    let binary = &fixtures("aggregate_library")[1];
    let event = format!("{}:agg:event", binary.display());
    for perf_event_links in [false, true] {
        // agg:event streamed, counted by kind and histogrammed: each of its
        // four sites is attached three times.
        let mut config = TraceConfig::new()
            .probe(&event)
            .unwrap()
            .aggregate(Aggregation::hits(&[&event], Some("arg0")).unwrap())
            .aggregate(Aggregation::histogram(&[&event], "arg1").unwrap());
        config.perf_event_links = perf_event_links;
        let attached = Tracer::attach(&config);
        if !cookies_or_refused_attach(&attached, "agg:event in ") {
            return;
        }
        let mut tracer = attached.expect("attach");
        assert_eq!(tracer.attached_sites(), 4);
        assert_eq!(tracer.probes()[0].sites, 4);
        usdt_interop_tests::run(&mut Command::new(binary));
        let mut streamed: BTreeMap<i64, u64> = BTreeMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while streamed.values().sum::<u64>() < 19 && std::time::Instant::now() < deadline {
            tracer
                .poll(Duration::from_millis(100), |e| {
                    match e.args[0] {
                        Value::Signed(kind) => *streamed.entry(kind).or_default() += 1,
                        ref other => panic!("{other:?}"),
                    }
                    true
                })
                .unwrap();
        }
        let expected = BTreeMap::from([(1, 3), (2, 5), (7, 11)]);
        assert_eq!(streamed, expected, "perf_event_links: {perf_event_links}");
        let report = tracer.aggregates().unwrap();
        let AggregateResult::Hits { by, counts } = &report.results[0] else {
            panic!("{report:?}");
        };
        assert_eq!(by.as_deref(), Some("arg0"));
        let counted: BTreeMap<i64, u64> = counts
            .iter()
            .map(|c| match c.key {
                Some(Value::Signed(kind)) => (kind, c.count),
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(counted, expected, "perf_event_links: {perf_event_links}");
        // arg1 runs from 0 to n-1 for each kind fired n times.
        let AggregateResult::Histogram { histograms, .. } = &report.results[1] else {
            panic!("{report:?}");
        };
        let mut expected_buckets = [0u64; 65];
        for n in [3i64, 5, 11] {
            for i in 0..n {
                let (low, _) = expected_bucket(i);
                // Bucket b starts at 2^(b-1); bucket 1 holds 0 and 1.
                expected_buckets[(low.max(1).ilog2() + 1) as usize] += 1;
            }
        }
        assert_eq!(histograms[0].1.buckets, expected_buckets);
        assert_eq!(report.losses, Default::default());
    }
}

#[test]
fn every_interval_states_the_hits_a_full_map_did_not_count() {
    if !require_bpf("every_interval_states_the_hits_a_full_map_did_not_count") {
        return;
    }
    let binary = &fixtures("aggregate_interval_losses")[1];
    usdt();
    let command = binary.display().to_string();
    // agg:event fills the three entries with kinds 1, 2 and 7; the ten
    // keys of agg:unique, fired about 160 ms later, find no room.
    let args = [
        "--map-entries",
        "3",
        "--interval",
        "0.05",
        "--hits",
        "--by",
        "arg0",
        "-c",
        &command,
        "agg:event",
        "agg:unique",
    ];
    let mut json_args = vec!["trace", "--json"];
    json_args.extend_from_slice(&args);
    let output = run_usdt(&json_args);
    let stderr = assert_success(&output);
    assert!(stderr.contains("10 hits not counted"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let not_counted: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"not_counted\":"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One per report, the last report included.
    let numbers: Vec<u64> = not_counted
        .iter()
        .map(|l| l["report"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "{stdout}");
    assert!(numbers.len() >= 2, "{stdout}");
    let lost: u64 = not_counted
        .iter()
        .map(|l| l["not_counted"]["map_full"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 10, "{stdout}");
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for line in aggregation_lines(&output) {
        for (key, count) in keyed_counts(&line) {
            *counted.entry(key).or_default() += count;
        }
    }
    let kinds = BTreeMap::from([("1".into(), 3), ("2".into(), 5), ("7".into(), 11)]);
    assert_eq!(counted, kinds, "{stdout}");

    // Text: the intervals that missed hits say how many.
    let mut text_args = vec!["trace"];
    text_args.extend_from_slice(&args);
    let output = run_usdt(&text_args);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lost: u64 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("not counted in this interval: "))
        .map(|rest| {
            assert!(
                rest.ends_with("(the aggregation map is full at 3 entries; raise --map-entries)"),
                "{rest}"
            );
            rest.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(lost, 10, "{stdout}");
}
