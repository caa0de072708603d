//! `usdt trace --filter`: the hits a filter keeps, decided in the kernel,
//! are exactly those for which the expression holds, checked against the
//! same predicate evaluated here on the values each fixture fires by
//! construction: integers of both signs and every width, unsigned 64-bit
//! values past `i64::MAX`, C strings and Rust `&str`, combined with `&&`,
//! `||` and `!`; in streaming and in every aggregation; and filters that do
//! not parse or do not fit a probe are refused before anything runs.

use crate::aggregate_known::{aggregation_lines, buckets, keyed_counts, probe_counts};
use std::collections::BTreeMap;
use std::path::Path;
use usdt_interop_tests::cli::*;
use usdt_interop_tests::require_bpf;
use usdt_interop_tests::trace::*;

/// The typed Rust fixture.
const SHOP: &str = env!("CARGO_BIN_EXE_filter_shop");

/// What `filter_shop` fires, in order: (id, delta, path).
const REQUESTS: [(u64, i32, &str); 7] = [
    (1, -5, "/api/users"),
    (2, 3, "/api/orders"),
    (3, 0, "/static/app.js"),
    (u64::MAX, -1, "/api"),
    (5, i32::MIN, "/apiary"),
    (6, i32::MAX, ""),
    (1 << 63, 7, "/api/"),
];

/// Predicates written in Rust, beside the filters they mirror.
type Pair = fn(i64, i64) -> bool;
/// See [`Pair`].
type Single = fn(i64) -> bool;
/// See [`Pair`].
type Text = fn(&str) -> bool;
/// See [`Pair`].
type Request = fn(u64, i32, &str) -> bool;

/// The `args` of every event `usdt trace --json -c BINARY --filter FILTER
/// ARGS...` prints, as text.
fn kept(binary: &Path, filter: &str, args: &[&str]) -> Vec<Vec<String>> {
    let command = binary.display().to_string();
    let mut full = vec!["trace", "--json", "-c", &command, "--filter", filter];
    full.extend_from_slice(args);
    let output = run_usdt(&full);
    let stderr = assert_success(&output);
    assert!(stderr.contains("command exited with status 0"), "{stderr}");
    json_events(&output).iter().map(arg_texts).collect()
}

/// Rows as the text `arg_texts` gives.
fn texts<const N: usize>(rows: impl IntoIterator<Item = [String; N]>) -> Vec<Vec<String>> {
    rows.into_iter().map(|row| row.to_vec()).collect()
}

#[test]
fn integer_predicates_keep_exact_events_on_c_fixtures() {
    if !require_bpf("integer_predicates_keep_exact_events_on_c_fixtures") {
        return;
    }
    for binary in build_c_at_o0_and_o2("filter_integers", "agg_known.c") {
        // agg:event(kind, i): kind 1 three times, 2 five times, 7 eleven.
        let events: Vec<(i64, i64)> = [(1, 3), (2, 5), (7, 11)]
            .into_iter()
            .flat_map(|(kind, n)| (0..n).map(move |i| (kind, i)))
            .collect();
        let cases: [(&str, Pair); 4] = [
            ("arg0 == 2 || arg1 > 9", |k, i| k == 2 || i > 9),
            ("!(arg0 != 7) && arg1 <= 0x3", |k, i| k == 7 && i <= 3),
            ("(arg0 >= 2 || arg1 == 0) && !(arg1 < 2)", |k, i| {
                (k >= 2 || i == 0) && i >= 2
            }),
            ("arg1 > -1 && arg0 < 2", |k, i| i > -1 && k < 2),
        ];
        for (filter, predicate) in cases {
            let expected = texts(
                events
                    .iter()
                    .filter(|(k, i)| predicate(*k, *i))
                    .map(|(k, i)| [k.to_string(), i.to_string()]),
            );
            assert_eq!(
                kept(&binary, filter, &["agg:event"]),
                expected,
                "{filter} on {}",
                binary.display()
            );
        }
        // agg:size(int64): signed comparisons with negative literals.
        let sizes = crate::aggregate_known::SIZES;
        let cases: [(&str, Single); 3] = [
            ("arg0 < 0", |v| v < 0),
            (
                "arg0 >= -1 && arg0 <= 3 || arg0 == 9223372036854775807",
                |v| (-1..=3).contains(&v) || v == i64::MAX,
            ),
            ("arg0 > -1000 && arg0 != 65536 && arg0 >= 1000", |v| {
                v > -1000 && v != 65536 && v >= 1000
            }),
        ];
        for (filter, predicate) in cases {
            let expected = texts(
                sizes
                    .iter()
                    .filter(|v| predicate(**v))
                    .map(|v| [v.to_string()]),
            );
            assert_eq!(kept(&binary, filter, &["agg:size"]), expected, "{filter}");
        }
    }
}

#[test]
fn widths_and_signs_follow_each_argument() {
    if !require_bpf("widths_and_signs_follow_each_argument") {
        return;
    }
    for binary in build_c_at_o0_and_o2("filter_widths", "sdt_args.c") {
        // min_values, max_values, small_values: int8 int16 int32 int64
        // uint8 uint16 uint32 uint64 each.
        let probes = [
            "sdt_args:min_values",
            "sdt_args:max_values",
            "sdt_args:small_values",
        ];
        let names = |filter: &str| -> Vec<String> {
            let command = binary.display().to_string();
            let mut full = vec!["trace", "--json", "-c", &command, "--filter", filter];
            full.extend_from_slice(&probes);
            let output = run_usdt(&full);
            assert_success(&output);
            json_events(&output)
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        // A u64 past i64::MAX is above every signed value and equal only to
        // itself; an int64 of -4 is below an unsigned 0.
        assert_eq!(names("arg7 == 0xffffffffffffffff"), ["max_values"]);
        assert_eq!(names("arg7 > 9223372036854775807"), ["max_values"]);
        assert_eq!(names("arg7 == -1"), Vec::<String>::new());
        assert_eq!(
            names("arg3 < arg7"),
            ["min_values", "max_values", "small_values"]
        );
        assert_eq!(names("arg0 < 0 && arg4 == 0"), ["min_values"]);
        // Narrow arguments are read at their size: int8 -1, uint8 255.
        assert_eq!(
            names("arg0 == -1 || arg4 == 255"),
            ["max_values", "small_values"]
        );
        assert_eq!(names("arg2 == -2147483648 && arg6 == 0"), ["min_values"]);
        assert_eq!(names("arg6 == 4294967295"), ["max_values"]);
    }
}

#[test]
fn c_strings_compare_by_equality_and_prefix() {
    if !require_bpf("c_strings_compare_by_equality_and_prefix") {
        return;
    }
    let paths = ["/a", "/b", "/b", "/c", "/c", "/c"];
    let long = format!("/{}", "x".repeat(99));
    let all: Vec<&str> = paths.iter().copied().chain([long.as_str()]).collect();
    for binary in build_c_at_o0_and_o2("filter_c_strings", "agg_known.c") {
        let cases: [(&str, Text); 5] = [
            ("arg0 == \"/b\"", |p| p == "/b"),
            ("arg0 =~ \"/c*\"", |p| p.starts_with("/c")),
            ("arg0 =~ \"/*\" && arg0 != \"/a\"", |p| p != "/a"),
            ("\"/a\" == arg0 || arg0 =~ \"/xxxxxxxx*\"", |p| {
                p == "/a" || p.starts_with("/xxxxxxxx")
            }),
            // The 100-byte path is longer than the bytes a test copies: it
            // equals no literal, but its prefix is seen.
            ("arg0 == \"/x\" || arg0 == \"\"", |_| false),
        ];
        for (filter, predicate) in cases {
            let expected = texts(all.iter().filter(|p| predicate(p)).map(|p| [p.to_string()]));
            assert_eq!(
                kept(&binary, filter, &["-s", "0", "agg:path"]),
                expected,
                "{filter} on {}",
                binary.display()
            );
        }
    }
}

#[test]
fn typed_probes_filter_by_declared_names() {
    if !require_bpf("typed_probes_filter_by_declared_names") {
        return;
    }
    let cases: [(&str, Request); 6] = [
        ("path =~ \"/api/*\"", |_, _, p| p.starts_with("/api/")),
        ("path =~ \"/api*\" && delta < 0", |_, d, p| {
            p.starts_with("/api") && d < 0
        }),
        (
            "id == 18446744073709551615 || id == 0x8000000000000000",
            |i, _, _| i == u64::MAX || i == 1 << 63,
        ),
        (
            "id > 9223372036854775807 || delta == -2147483648",
            |i, d, _| i > i64::MAX as u64 || d == i32::MIN,
        ),
        (
            "path == \"\" || !(delta >= -1) && path != \"/apiary\"",
            |_, d, p| p.is_empty() || (d < -1 && p != "/apiary"),
        ),
        ("arg1 > arg0 || pid == 0", |i, d, _| {
            (d as i64 as i128) > i as i128
        }),
    ];
    for (filter, predicate) in cases {
        let expected = texts(
            REQUESTS
                .iter()
                .filter(|(i, d, p)| predicate(*i, *d, p))
                .map(|(i, d, p)| [i.to_string(), d.to_string(), p.to_string()]),
        );
        assert_eq!(
            kept(Path::new(SHOP), filter, &["shop:request"]),
            expected,
            "{filter}"
        );
    }
}

#[test]
fn every_aggregation_counts_only_kept_hits() {
    if !require_bpf("every_aggregation_counts_only_kept_hits") {
        return;
    }
    for binary in build_c_at_o0_and_o2("filter_aggregations", "agg_known.c") {
        let command = binary.display().to_string();
        let aggregate = |args: &[&str]| {
            let mut full = vec!["trace", "--json", "-c", &command];
            full.extend_from_slice(args);
            let output = run_usdt(&full);
            let stderr = assert_success(&output);
            (aggregation_lines(&output), stderr)
        };
        let (lines, _) = aggregate(&[
            "--hits",
            "--by",
            "arg0",
            "--filter",
            "arg1 >= 2",
            "agg:event",
        ]);
        assert_eq!(
            keyed_counts(&lines[0]),
            BTreeMap::from([("1".into(), 1), ("2".into(), 3), ("7".into(), 9)])
        );
        // Every probe of a pattern has arg0: each filtered by its own.
        let (lines, _) = aggregate(&["--hits", "--filter", "arg0 == 1", "agg:event", "agg:unique"]);
        let counts = probe_counts(&lines);
        assert_eq!(
            counts,
            BTreeMap::from([("event".into(), 3), ("unique".into(), 1)])
        );

        let (lines, _) = aggregate(&[
            "--hist",
            "arg0",
            "--filter",
            "arg0 < 8 && arg0 > -2",
            "agg:size",
        ]);
        assert_eq!(lines[0]["total"], 7);
        assert_eq!(
            buckets(&lines[0]),
            [(-1, -1, 1), (0, 1, 2), (2, 3, 2), (4, 7, 2)]
        );

        // Starts and ends are filtered alike: id 2 neither starts nor ends,
        // so only id 1 is paired and nothing else is pending.
        let (lines, stderr) = aggregate(&[
            "--latency",
            "agg:begin",
            "agg:end",
            "--key",
            "arg0",
            "--filter",
            "arg0 != 2 && arg0 != 3",
        ]);
        assert_eq!(buckets(&lines[0]), [(16384, 32767, 1)], "{stderr}");
        assert!(!stderr.contains("had no end"), "{stderr}");
        assert!(stderr.contains("1 latency end had no start"), "{stderr}");
    }
}

#[test]
fn bad_filters_are_refused_before_tracing() {
    let binary = build_c("filter_errors", "agg_known.c", &["-O2"]);
    let command = binary.display().to_string();
    let refused = |filter: &str, probes: &[&str], text: &str| {
        let mut args = vec!["-c", &command, "--filter", filter];
        args.extend_from_slice(probes);
        assert_trace_usage_error(&args, text);
    };
    refused(
        "arg0 >",
        &["agg:event"],
        "bad filter `arg0 >` at column 7: the expression ends too early",
    );
    refused("arg0 = 1", &["agg:event"], "at column 6: `=` alone");
    refused("(arg0 == 1", &["agg:event"], "at column 11: missing `)`");
    refused(
        "arg0 == 99999999999999999999",
        &["agg:event"],
        "at column 9: integer",
    );
    if !require_bpf("bad_filters_are_refused_before_tracing") {
        return;
    }
    refused(
        "arg0 > 1 && size < 3",
        &["agg:event"],
        "at column 13: no argument `size` (its arguments: arg0, arg1), in probe agg:event",
    );
    refused(
        "arg0 == \"/a\"",
        &["agg:event"],
        "at column 6: compares a string with an integer",
    );
    refused(
        "arg0 == 1",
        &["-s", "0", "agg:path"],
        "at column 6: compares a string with an integer",
    );
    // With several probes, each must have every name the filter uses.
    refused(
        "arg1 == 1",
        &["agg:event", "agg:path"],
        "no argument `arg1` (its arguments: arg0), in probe agg:path",
    );
    refused(
        "delta == \"x\"",
        &[&format!("{SHOP}:shop:request")],
        "at column 7: compares a string",
    );
    refused(
        "id < 1.5",
        &[&format!("{SHOP}:shop:request")],
        "at column 7: unexpected character '.'",
    );
}
