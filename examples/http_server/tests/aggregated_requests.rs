//! In-kernel aggregations of the server's probes through the tracer
//! library: requests counted by status and by path, a histogram of the
//! bytes written and the latency from request start to done, compared with
//! what the client sent and received; and an interval's counts are only
//! that interval's requests.

use crate::support::{Server, request};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use usdt_tracer::{
    AggregateReport, AggregateResult, Aggregation, Log2Histogram, TraceConfig, Tracer, Value,
};

/// The (key, count) pairs of hits result `index`, keys as text.
fn counts(report: &AggregateReport, index: usize) -> BTreeMap<String, u64> {
    match &report.results[index] {
        AggregateResult::Hits { counts, .. } => counts
            .iter()
            .map(|c| {
                let key = match &c.key {
                    Some(Value::Str { text, .. }) => text.clone(),
                    Some(other) => other.to_string(),
                    None => format!("{}:{}", c.probe.provider, c.probe.name),
                };
                (key, c.count)
            })
            .collect(),
        other => panic!("not hits: {other:?}"),
    }
}

/// The histogram of result `index` (the first probe's for an argument).
fn histogram(report: &AggregateReport, index: usize) -> Log2Histogram {
    match &report.results[index] {
        AggregateResult::Histogram { histograms, .. } => histograms[0].1.clone(),
        AggregateResult::Latency { histogram, .. } => (**histogram).clone(),
        other => panic!("not a histogram: {other:?}"),
    }
}

/// The bucket of a non-negative value, computed here: 0 and 1 in bucket 1,
/// then one bucket per bit length.
fn bucket(value: u64) -> usize {
    if value <= 1 {
        1
    } else {
        (64 - value.leading_zeros()) as usize
    }
}

/// Polls `tracer` until `done` holds for its aggregates (the server fires
/// request_done after the client has its response) or 10 s pass.
fn wait_for(tracer: &Tracer, done: impl Fn(&AggregateReport) -> bool) -> AggregateReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = tracer.aggregates().expect("read aggregates");
        if done(&report) || Instant::now() > deadline {
            return report;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn aggregates_match_the_requests_sent() {
    if !usdt_interop_tests::require_bpf("aggregates_match_the_requests_sent") {
        return;
    }
    let server = Server::start();
    let config = TraceConfig::new()
        .pid(server.pid())
        .aggregate(Aggregation::hits(&["http:request_done"], Some("status")).unwrap())
        .aggregate(Aggregation::hits(&["http:request_start"], Some("path")).unwrap())
        .aggregate(Aggregation::histogram(&["http:request_done"], "bytes").unwrap())
        .aggregate(
            Aggregation::latency("http:request_start", "http:request_done", "request_id").unwrap(),
        )
        .aggregate(Aggregation::hits(&["http:conn_*"], None).unwrap());
    let attached = Tracer::attach(&config);
    // Without BPF cookies (before 5.15) a site traced for two purposes at
    // once is refused: http:request_done is counted, in a histogram and
    // ends a latency.
    if !usdt_interop_tests::trace::cookies_or_refused_attach(&attached, "http:request_done in ") {
        return;
    }
    let tracer = attached.expect("attach to the server");
    assert!(tracer.aggregates().unwrap().results.len() == 5);

    let requests = [
        ("GET", "/", 200),
        ("GET", "/hello/usdt", 200),
        ("GET", "/bytes/5000", 200),
        ("GET", "/bytes/5000", 200),
        ("GET", "/status/503", 503),
        ("GET", "/no/such/page", 404),
        ("POST", "/hello/usdt", 405),
        // 150 ms: the one latency in 131,072-262,143 us.
        ("GET", "/sleep/150", 200),
    ];
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let mut sizes = Log2Histogram::default();
    for (method, path, status) in requests {
        let response = request(&server.address, method, path);
        assert_eq!(response.status, status, "{method} {path}");
        *statuses.entry(status.to_string()).or_default() += 1;
        *paths.entry(path.to_owned()).or_default() += 1;
        sizes.buckets[bucket(response.bytes as u64)] += 1;
        // The kernel keeps the sum of the values beside the buckets.
        sizes.sum += response.bytes as u64;
    }
    let total = requests.len() as u64;
    let report = wait_for(&tracer, |r| {
        counts(r, 0).values().sum::<u64>() == total
            && histogram(r, 3).total() == total
            && counts(r, 4).values().sum::<u64>() == 2 * total
    });
    assert_eq!(counts(&report, 0), statuses);
    assert_eq!(counts(&report, 1), paths);
    // Bytes on the wire: the server's count is what the client received.
    assert_eq!(histogram(&report, 2), sizes);
    let latency = histogram(&report, 3);
    assert_eq!(latency.total(), total);
    assert_eq!(latency.buckets[18], 1, "{}", latency.render("usecs"));
    assert_eq!(latency.buckets[19..].iter().sum::<u64>(), 0);
    // One connection per request, each accepted and closed.
    assert_eq!(
        counts(&report, 4),
        BTreeMap::from([
            ("http:conn_accept".to_owned(), total),
            ("http:conn_close".to_owned(), total)
        ])
    );
    assert_eq!(report.losses, Default::default());
    assert_eq!(report.pending_starts, 0);

    // The next interval holds only the next requests.
    for _ in 0..3 {
        assert_eq!(request(&server.address, "GET", "/status/201").status, 201);
    }
    let later = wait_for(&tracer, |r| {
        counts(r, 0).values().sum::<u64>() == total + 3 && histogram(r, 3).total() == total + 3
    });
    let interval = later.since(&report);
    assert_eq!(
        counts(&interval, 0),
        BTreeMap::from([("201".to_owned(), 3)])
    );
    assert_eq!(
        counts(&interval, 1),
        BTreeMap::from([("/status/201".to_owned(), 3)])
    );
    assert_eq!(histogram(&interval, 3).total(), 3);
    assert_eq!(histogram(&interval, 3).buckets[18], 0);
}
