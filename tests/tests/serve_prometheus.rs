//! `usdt serve` exporting in-kernel aggregations of a C program whose
//! requests are known by construction (tests/fixtures/serve_requests.c) to
//! a real Prometheus (Debian's `prometheus`), which scrapes it every second:
//! its query API returns exact counts per label, the exact histogram count
//! and sum, every cumulative bucket, the latency pairs and quantiles in the
//! expected buckets, and `promtool check metrics` accepts the exposition.
//! Then what must not work does not: bad configurations, other requests
//! than `GET /metrics`, a bad reload; and what must keep working does: a
//! good reload, a replaced target file (attached again with the few
//! capabilities the daemon keeps), a full map counted, SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use usdt_interop_tests::cli::{assert_failure, run_usdt};
use usdt_interop_tests::serve::{
    Prometheus, Serve, cookies_or_refused, http_get, http_raw, sample,
};
use usdt_interop_tests::trace::{build_c, has_cookies};
use usdt_interop_tests::{require_bpf, require_tool, run, scratch_dir};

/// (status, bytes, delay in ms) of each request serve_requests makes.
const REQUESTS: [(u32, i64, f64); 12] = [
    (200, 0, 17.0),
    (200, 1, 17.0),
    (200, 100, 17.0),
    (200, 100, 17.0),
    (200, 1000, 17.0),
    (200, 65536, 135.0),
    (200, -1, 17.0),
    (404, 1000, 17.0),
    (404, 1000, 17.0),
    (404, -5, 17.0),
    (500, -300, 135.0),
    (500, 5000, 17.0),
];

/// The configuration exporting the fixture `binary`'s requests: by status,
/// by status with at most two series, sizes, latency.
fn config(binary: &Path) -> String {
    let binary = binary.display();
    format!(
        r#"
[[metric]]
name = "srv_requests"
help = "Requests by status"
kind = "count"
probe = "{binary}:srv:request_done"
by = ["arg1"]

[[metric]]
name = "srv_requests_limited"
kind = "count"
probe = "{binary}:srv:request_done"
by = ["arg1"]
max_series = 2

[[metric]]
name = "srv_response_bytes"
kind = "histogram"
probe = "{binary}:srv:request_done"
value = "arg2"

[[metric]]
name = "srv_request_duration"
kind = "latency"
start = "{binary}:srv:request_start"
end = "{binary}:srv:request_done"
key = "arg0"
"#
    )
}

/// The capabilities `usdt serve` keeps once attached, run as root: CAP_BPF,
/// CAP_PERFMON, CAP_DAC_READ_SEARCH, and CAP_SYS_ADMIN where uprobes are
/// perf events (no uprobe_multi links).
fn capabilities_kept() -> u64 {
    const CAP_DAC_READ_SEARCH: u32 = 2;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let mut kept = [CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH]
        .iter()
        .fold(0, |set, cap| set | 1u64 << cap);
    if !usdt_tracer::KernelFeatures::get().multi_links {
        kept |= 1 << CAP_SYS_ADMIN;
    }
    kept
}

/// Runs the fixture `binary` once, to the end.
fn fire(binary: &Path) {
    let out = run(&mut Command::new(binary));
    assert_eq!(out, "done\n");
}

/// The fixture, built in a scratch directory of its own: a PIE, or where
/// the kernel has no BPF cookies (before 5.15), a fixed-address executable,
/// whose sites' addresses in processes started later are known.
fn fixture(test: &str) -> PathBuf {
    if has_cookies() {
        build_c(test, "serve_requests.c", &["-O2"])
    } else {
        build_c(test, "serve_requests.c", &["-O2", "-no-pie"])
    }
}

/// Requests per status, `times` runs of the fixture.
fn per_status(times: u32) -> Vec<(String, f64)> {
    let mut counts: Vec<(String, f64)> = Vec::new();
    for (status, _, _) in REQUESTS {
        let labels = format!("arg1={status}");
        match counts.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, count)) => *count += f64::from(times),
            None => counts.push((labels, f64::from(times))),
        }
    }
    counts
}

/// The cumulative buckets of the sizes: every log2 bucket from the lowest
/// value's to the highest's (`le` the highest value each holds, negative
/// buckets the mirror image of positive ones), then +Inf.
fn expected_size_buckets() -> Vec<(String, f64)> {
    let values: Vec<i64> = REQUESTS.iter().map(|(_, bytes, _)| *bytes).collect();
    // The highest value of the bucket of each value.
    let high = |v: i64| -> i128 {
        let magnitude = v.unsigned_abs();
        let bits = if magnitude <= 1 {
            1
        } else {
            64 - magnitude.leading_zeros()
        };
        if v < 0 {
            -(1i128 << (bits - 1))
        } else {
            (1i128 << bits) - 1
        }
    };
    let lowest = values.iter().map(|v| high(*v)).min().unwrap();
    let highest = values.iter().map(|v| high(*v)).max().unwrap();
    let mut bounds: Vec<i128> = Vec::new();
    let mut bound = lowest;
    while bound < 0 {
        bounds.push(bound);
        bound /= 2;
    }
    let mut bound = 1i128;
    while bound <= highest {
        bounds.push(bound);
        bound = bound * 2 + 1;
    }
    let mut buckets: Vec<(String, f64)> = bounds
        .iter()
        .map(|b| {
            let count = values.iter().filter(|v| i128::from(**v) <= *b).count();
            // OpenMetrics writes the bounds as floats, which Prometheus
            // keeps as written.
            (format!("le={b}.0"), count as f64)
        })
        .collect();
    buckets.push(("le=+Inf".into(), values.len() as f64));
    // As the query answer sorts them: by label text.
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    buckets
}

#[test]
fn prometheus_reads_exact_counts_buckets_and_latencies() {
    if !require_bpf("prometheus_reads_exact_counts_buckets_and_latencies")
        || !require_tool(
            "prometheus_reads_exact_counts_buckets_and_latencies",
            "prometheus",
        )
        || !require_tool(
            "prometheus_reads_exact_counts_buckets_and_latencies",
            "promtool",
        )
    {
        return;
    }
    let binary = fixture("serve_prometheus");
    let dir = scratch_dir("serve_prometheus_run");
    let config_path = dir.join("export.toml");
    std::fs::write(&config_path, config(&binary)).unwrap();
    // Without BPF cookies a site serves one purpose: `request_done` here
    // serves four metrics.
    if !cookies_or_refused(&config_path, "srv:request_done") {
        return;
    }
    let serve = Serve::start(&config_path);
    let prometheus = Prometheus::start(&dir, &serve.address);

    // A process started after the daemon: the path covers it.
    fire(&binary);
    let expected = per_status(1);
    let expected: Vec<(&str, f64)> = expected.iter().map(|(l, c)| (l.as_str(), *c)).collect();
    let answer = prometheus.wait_for("srv_requests_total", &expected);
    let as_pairs = |answer: &[(String, f64)]| -> Vec<(String, f64)> { answer.to_vec() };
    assert_eq!(as_pairs(&answer), per_status(1), "{}", prometheus.log());

    // The histogram: exact count and sum (kept in the kernel), every
    // cumulative bucket.
    let sum: i64 = REQUESTS.iter().map(|(_, bytes, _)| bytes).sum();
    assert_eq!(
        prometheus.query("srv_response_bytes_count"),
        [(String::new(), 12.0)]
    );
    assert_eq!(
        prometheus.query("srv_response_bytes_sum"),
        [(String::new(), sum as f64)]
    );
    assert_eq!(
        prometheus.query("srv_response_bytes_bucket"),
        expected_size_buckets()
    );

    // Latencies: every pair, the sum of at least the delays slept, the
    // median among the 17 ms ones and the 99th percentile among the 135 ms
    // ones (log2 buckets of microseconds, in seconds).
    assert_eq!(
        prometheus.query("srv_request_duration_seconds_count"),
        [(String::new(), 12.0)]
    );
    let slept: f64 = REQUESTS.iter().map(|(_, _, ms)| ms / 1000.0).sum();
    let latency_sum = prometheus.query("srv_request_duration_seconds_sum")[0].1;
    assert!(
        (slept..slept + 0.5).contains(&latency_sum),
        "{latency_sum} s for {slept} s slept"
    );
    let quantile = |q: f64| {
        prometheus.query(&format!(
            "histogram_quantile({q}, srv_request_duration_seconds_bucket)"
        ))[0]
            .1
    };
    let median = quantile(0.5);
    assert!(median > 0.016384 && median <= 0.032768, "median {median}");
    let p99 = quantile(0.99);
    assert!(p99 > 0.131072 && p99 <= 0.262144, "p99 {p99}");

    // max_series 2: two statuses keep their series, the third is `other`,
    // and the self metric says one label value was folded.
    let limited = prometheus.query("srv_requests_limited_total");
    assert_eq!(limited.len(), 3, "{limited:?}");
    assert!(
        limited.iter().any(|(l, _)| l == "arg1=other"),
        "{limited:?}"
    );
    assert_eq!(limited.iter().map(|(_, v)| v).sum::<f64>(), 12.0);
    assert_eq!(
        prometheus.query("usdt_serve_overflow_series{metric=\"srv_requests_limited\"}"),
        [("metric=srv_requests_limited".to_owned(), 1.0)]
    );
    assert_eq!(
        prometheus.query("usdt_serve_sites"),
        [
            ("metric=srv_request_duration_seconds".to_owned(), 2.0),
            ("metric=srv_requests".to_owned(), 1.0),
            ("metric=srv_requests_limited".to_owned(), 1.0),
            ("metric=srv_response_bytes".to_owned(), 1.0),
        ]
    );
    assert_eq!(
        prometheus.query("sum(usdt_serve_lost_hits_total)"),
        [(String::new(), 0.0)]
    );

    // The target process runs again: the counts go on.
    fire(&binary);
    let expected = per_status(2);
    let expected: Vec<(&str, f64)> = expected.iter().map(|(l, c)| (l.as_str(), *c)).collect();
    assert_eq!(
        prometheus.wait_for("srv_requests_total", &expected),
        per_status(2)
    );

    // promtool accepts the text format; OpenMetrics when asked for.
    let exposition = serve.metrics();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let (status, openmetrics) = http_get(
        &serve.address,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(
        openmetrics.contains("# TYPE srv_requests counter\n"),
        "{openmetrics}"
    );

    let stderr_before = serve.stderr();
    let status = serve.terminate();
    assert!(status.success(), "{status}: {stderr_before:?}");
}

/// Writes `text` to `path` and returns the one-line error of `usdt serve`
/// (exit 2) on it, checked with and without `--check`.
fn refused(path: &Path, text: &str, expected: &str) {
    std::fs::write(path, text).unwrap();
    let path = path.to_str().unwrap();
    assert_failure(
        &run_usdt(&["serve", "--check", "--config", path]),
        2,
        expected,
    );
    assert_failure(&run_usdt(&["serve", "--config", path]), 2, expected);
}

#[test]
fn bad_configs_requests_and_reloads() {
    if !require_bpf("bad_configs_requests_and_reloads") {
        return;
    }
    let dir = scratch_dir("serve_reloads");
    // A copy of the fixture, to be replaced later.
    let built = fixture("serve_reloads_build");
    let binary = dir.join("serve_requests");
    std::fs::copy(&built, &binary).unwrap();
    let path = dir.join("export.toml");

    // Bad configurations: one line naming the metric and field, exit 2,
    // nothing attached.
    let good = config(&binary);
    refused(
        &path,
        &good.replacen("name = \"srv_requests\"", "name = \"srv requests\"", 1),
        "metric `srv requests`: field `name`: `srv requests` is no Prometheus metric name",
    );
    refused(
        &path,
        &good.replacen("by = [\"arg1\"]", "by = [\"le\"]", 1),
        "metric `srv_requests`: field `by`: `le` is the label of histogram buckets",
    );
    refused(
        &path,
        &good.replacen("kind = \"histogram\"", "kind = \"summary\"", 1),
        "metric `srv_response_bytes`: field `kind`: `summary`: expected count, histogram or latency",
    );
    refused(&path, "[[metric]\n", "export.toml: line 1: ");
    // An argument the probe does not have: found by selecting the sites.
    std::fs::write(
        &path,
        good.replacen("value = \"arg2\"", "value = \"arg7\"", 1),
    )
    .unwrap();
    let output = run_usdt(&["serve", "--check", "--config", path.to_str().unwrap()]);
    assert_failure(&output, 2, "arg7");

    // --check: what would be exported, nothing attached.
    std::fs::write(&path, &good).unwrap();
    let output = run_usdt(&["serve", "--check", "--config", path.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            "srv_requests (count by arg1): srv_requests_total; 1 site of srv:request_done",
            "srv_requests_limited (count by arg1): srv_requests_limited_total; 1 site of srv:request_done",
            "srv_response_bytes (histogram): srv_response_bytes_bucket, srv_response_bytes_sum, srv_response_bytes_count; 1 site of srv:request_done",
            "srv_request_duration_seconds (latency): srv_request_duration_seconds_bucket, srv_request_duration_seconds_sum, srv_request_duration_seconds_count; 2 sites of srv:request_done, srv:request_start",
            "4 metrics checked",
        ]
    );

    // Only GET /metrics is served.
    let count_only = good
        .split("\n[[metric]]\nname = \"srv_requests_limited\"")
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(&path, &count_only).unwrap();
    let serve = Serve::start(&path);
    let address = serve.address.as_str();

    // Attached, it keeps only what attaching again needs, in every thread
    // and every set; the reload and the replaced file below attach again
    // with that.
    let kept = capabilities_kept();
    serve.wait_for_stderr("usdt: capabilities kept: ", Duration::from_secs(10));
    let tasks = std::fs::read_dir(format!("/proc/{}/task", serve.pid())).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let set = |name: &str| {
            let hex = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {status}"));
            u64::from_str_radix(hex.trim(), 16).unwrap()
        };
        assert_eq!(set("CapEff:"), kept, "{status}");
        assert_eq!(set("CapPrm:"), kept, "{status}");
        assert_eq!(set("CapBnd:"), kept, "{status}");
        assert_eq!(set("CapInh:"), 0, "{status}");
        assert_eq!(set("CapAmb:"), 0, "{status}");
        threads += 1;
    }
    // The main thread and the HTTP server's.
    assert!(threads >= 2, "{threads} threads");

    for request in [
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "DELETE /metrics HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET /metricsx HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(http_raw(address, request.as_bytes()).0, 404, "{request:?}");
    }
    assert_eq!(http_raw(address, b"NOT HTTP\r\n\r\n").0, 400);
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "x".repeat(10_000)
    );
    assert_eq!(http_raw(address, huge.as_bytes()).0, 431);
    assert_eq!(http_get(address, "/metrics?debug=1", None).0, 200);

    fire(&binary);
    assert_eq!(
        sample(&serve.metrics(), "srv_requests_total{arg1=\"200\"}"),
        Some(7.0)
    );

    // A bad new configuration keeps the old one, and says so.
    std::fs::write(&path, "[[metric]]\nname = 7\n").unwrap();
    serve.signal(libc::SIGHUP);
    serve.wait_for_stderr(
        "usdt: warning: reload failed, keeping the old configuration: ",
        Duration::from_secs(30),
    );
    let metrics = serve.metrics();
    assert_eq!(
        sample(&metrics, "srv_requests_total{arg1=\"200\"}"),
        Some(7.0)
    );
    assert_eq!(
        sample(&metrics, "usdt_serve_reloads_total{result=\"failed\"}"),
        Some(1.0)
    );

    // A good one replaces it (the counts start again). Without BPF cookies
    // (before 5.15) a site serves one purpose: the sizes alone there.
    let reloaded = if has_cookies() {
        good.clone()
    } else {
        good.split("\n[[metric]]\n")
            .find(|metric| metric.starts_with("name = \"srv_response_bytes\""))
            .map(|metric| format!("[[metric]]\n{metric}"))
            .unwrap()
    };
    std::fs::write(&path, &reloaded).unwrap();
    serve.signal(libc::SIGHUP);
    serve.wait_for_stderr("usdt: reloaded ", Duration::from_secs(60));
    fire(&binary);
    let metrics = serve.metrics();
    assert_eq!(
        sample(&metrics, "srv_requests_total{arg1=\"200\"}"),
        has_cookies().then_some(7.0)
    );
    assert_eq!(sample(&metrics, "srv_response_bytes_count"), Some(12.0));
    assert_eq!(
        sample(&metrics, "usdt_serve_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    // A deploy replaces the file (a new inode at the path): attached again.
    let fresh = dir.join("serve_requests.new");
    std::fs::copy(&built, &fresh).unwrap();
    std::fs::rename(&fresh, &binary).unwrap();
    serve.wait_for_stderr("was replaced; attached again", Duration::from_secs(60));
    fire(&binary);
    let metrics = serve.metrics();
    assert_eq!(
        sample(&metrics, "srv_requests_total{arg1=\"404\"}"),
        has_cookies().then_some(3.0)
    );
    assert_eq!(sample(&metrics, "srv_response_bytes_count"), Some(12.0));
    assert_eq!(sample(&metrics, "usdt_serve_reattached_total"), Some(1.0));

    let stderr = serve.stderr();
    let status = serve.terminate();
    assert!(status.success(), "{status}: {stderr:?}");
}

#[test]
fn a_full_map_is_counted() {
    if !require_bpf("a_full_map_is_counted") {
        return;
    }
    let binary = fixture("serve_map_full");
    let dir = scratch_dir("serve_map_full_run");
    let path = dir.join("export.toml");
    // Three counters fit: of twelve request ids, nine find the map full.
    std::fs::write(
        &path,
        format!(
            "map_entries = 3\n\n[[metric]]\nname = \"srv_by_id\"\nkind = \"count\"\nprobe = \"{}:srv:request_done\"\nby = [\"arg0\"]\n",
            binary.display()
        ),
    )
    .unwrap();
    let serve = Serve::start(&path);
    fire(&binary);
    let metrics = serve.metrics();
    assert_eq!(
        sample(&metrics, "usdt_serve_lost_hits_total{reason=\"map_full\"}"),
        Some(9.0),
        "{metrics}"
    );
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("srv_by_id_total{"))
        .count();
    assert_eq!(counted, 3, "{metrics}");
    assert!(serve.terminate().success());
}
