//! What a scrape returns: the aggregations read from the kernel turned into
//! metric families (series beyond a metric's `max_series` folded into one
//! `other` series), with the daemon's own metrics, encoded by
//! prometheus-client in the Prometheus text format or OpenMetrics.

use super::config::Metric;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashSet};
use usdt_tracer::{AggregateLosses, AggregateReport, AggregateResult, Log2Histogram, Value};

/// The label value of the series that holds a metric's hits beyond its
/// `max_series`.
pub(super) const OTHER: &str = "other";

/// The longest label value kept, in characters; longer ones are cut.
pub(super) const LABEL_CAP: usize = 128;

/// The OpenMetrics content type.
pub(super) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Per metric, the label values given series of their own so far (the
/// first `max_series` seen), kept across scrapes so a series never moves
/// to `other` and back.
#[derive(Debug, Default)]
pub(super) struct Admitted {
    per_metric: Vec<HashSet<String>>,
}

impl Admitted {
    /// Whether `value` has (or now gets) a series of its own in metric
    /// `index`, which keeps at most `max`.
    fn admit(&mut self, index: usize, value: &str, max: usize) -> bool {
        if self.per_metric.len() <= index {
            self.per_metric.resize_with(index + 1, HashSet::new);
        }
        let admitted = &mut self.per_metric[index];
        if admitted.contains(value) {
            return true;
        }
        admitted.len() < max && admitted.insert(value.to_owned())
    }
}

/// The daemon's own state at a scrape.
#[derive(Debug, Clone, Default)]
pub(super) struct SelfState {
    /// Per metric, the sites attached for it.
    pub sites: Vec<usize>,
    /// Hits the kernel could not aggregate.
    pub losses: AggregateLosses,
    /// Seconds the maps took to read.
    pub read_seconds: f64,
    /// Configuration reloads that worked and that failed.
    pub reloads: (u64, u64),
    /// Times the probes were attached again (a target file replaced).
    pub reattached: u64,
}

/// One family's samples, as the collector encodes them.
#[derive(Debug)]
enum Samples {
    /// Counter values per label set.
    Counter(Vec<(Vec<(String, String)>, u64)>),
    /// Gauge values per label set.
    Gauge(Vec<(Vec<(String, String)>, f64)>),
    /// A histogram: sum, count and (upper bound, count) per bucket, not
    /// cumulative, ending with +Inf.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric family.
#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    samples: Samples,
}

/// Everything one scrape exposes; a [`Collector`] that writes it.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    families: Vec<Family>,
}

impl Snapshot {
    /// The families of `metrics` from `report` (one result per metric, in
    /// order), with the daemon's own metrics from `state`; `admitted` keeps
    /// the label values with series of their own.
    pub(super) fn new(
        metrics: &[Metric],
        report: &AggregateReport,
        state: &SelfState,
        admitted: &mut Admitted,
    ) -> Snapshot {
        let mut families = Vec::new();
        let mut overflow = Vec::new();
        for (index, (metric, result)) in metrics.iter().zip(&report.results).enumerate() {
            let samples = match result {
                AggregateResult::Hits { counts, .. } => {
                    // By label value (none without a label), sorted.
                    let mut by_value: BTreeMap<Option<String>, u64> = BTreeMap::new();
                    let mut other = 0u64;
                    let mut folded = 0usize;
                    for row in counts {
                        let value = match (&metric.label, &row.key) {
                            (Some(_), Some(key)) => Some(label_value(key)),
                            _ => None,
                        };
                        match value {
                            Some(value) if !admitted.admit(index, &value, metric.max_series) => {
                                other += row.count;
                                folded += 1;
                            }
                            value => *by_value.entry(value).or_default() += row.count,
                        }
                    }
                    if metric.label.is_none() && by_value.is_empty() {
                        by_value.insert(None, 0);
                    }
                    let mut series: Vec<(Vec<(String, String)>, u64)> = by_value
                        .into_iter()
                        .map(|(value, count)| {
                            let labels = match (&metric.label, value) {
                                (Some(label), Some(value)) => vec![(label.clone(), value)],
                                _ => Vec::new(),
                            };
                            (labels, count)
                        })
                        .collect();
                    if let Some(label) = &metric.label
                        && folded > 0
                    {
                        series.push((vec![(label.clone(), OTHER.to_owned())], other));
                    }
                    overflow.push((metric.family.clone(), folded));
                    Samples::Counter(series)
                }
                AggregateResult::Histogram { histograms, .. } => {
                    // Every probe the pattern selects adds to one histogram.
                    let mut merged = Log2Histogram::default();
                    for (_, histogram) in histograms {
                        add_histogram(&mut merged, histogram);
                    }
                    histogram_samples(&merged, false)
                }
                AggregateResult::Latency { histogram, .. } => histogram_samples(histogram, true),
            };
            families.push(Family {
                name: metric.family.clone(),
                help: metric.help.clone(),
                samples,
            });
        }
        let per_metric = |values: Vec<(String, f64)>| {
            values
                .into_iter()
                .map(|(metric, value)| (vec![("metric".to_owned(), metric)], value))
                .collect()
        };
        families.push(Family {
            name: "usdt_serve_sites".into(),
            help: "Probe sites attached per metric".into(),
            samples: Samples::Gauge(per_metric(
                metrics
                    .iter()
                    .zip(&state.sites)
                    .map(|(m, sites)| (m.family.clone(), *sites as f64))
                    .collect(),
            )),
        });
        families.push(Family {
            name: "usdt_serve_overflow_series".into(),
            help: format!(
                "Label values of a metric beyond its max_series, counted in its `{OTHER}` series"
            ),
            samples: Samples::Gauge(per_metric(
                overflow
                    .into_iter()
                    .map(|(family, folded)| (family, folded as f64))
                    .collect(),
            )),
        });
        let losses = state.losses;
        families.push(Family {
            name: "usdt_serve_lost_hits".into(),
            help: "Hits the kernel could not aggregate, by reason".into(),
            samples: Samples::Counter(
                [
                    ("map_full", losses.map_full),
                    ("starts_full", losses.starts_full),
                    ("unmatched_end", losses.unmatched_ends),
                    ("fault", losses.faults),
                ]
                .into_iter()
                .map(|(reason, count)| (vec![("reason".to_owned(), reason.to_owned())], count))
                .collect(),
            ),
        });
        families.push(Family {
            name: "usdt_serve_scrape_read_seconds".into(),
            help: "Seconds this scrape took to read the kernel's maps".into(),
            samples: Samples::Gauge(vec![(Vec::new(), state.read_seconds)]),
        });
        families.push(Family {
            name: "usdt_serve_reloads".into(),
            help: "Configuration reloads (SIGHUP), by result".into(),
            samples: Samples::Counter(vec![
                (vec![("result".into(), "ok".into())], state.reloads.0),
                (vec![("result".into(), "failed".into())], state.reloads.1),
            ]),
        });
        families.push(Family {
            name: "usdt_serve_reattached".into(),
            help: "Times the probes were attached again after a target file was replaced".into(),
            samples: Samples::Counter(vec![(Vec::new(), state.reattached)]),
        });
        families.push(Family {
            name: "usdt_serve_build_info".into(),
            help: "The usdt command serving, by version".into(),
            samples: Samples::Gauge(vec![(
                vec![("version".into(), env!("CARGO_PKG_VERSION").into())],
                1.0,
            )]),
        });
        Snapshot { families }
    }

    /// The exposition: OpenMetrics when `openmetrics`, otherwise the
    /// Prometheus text format 0.0.4; with its content type.
    pub(super) fn encode(self, openmetrics: bool) -> (String, &'static str) {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail.
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
                .expect("encoding to a string");
            (out, OPENMETRICS)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
                .expect("encoding to a string");
            (
                out,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            let metric_type = match family.samples {
                Samples::Counter(_) => MetricType::Counter,
                Samples::Gauge(_) => MetricType::Gauge,
                Samples::Histogram { .. } => MetricType::Histogram,
            };
            let mut metric =
                encoder.encode_descriptor(&family.name, &family.help, None, metric_type)?;
            match &family.samples {
                Samples::Counter(series) => {
                    for (labels, value) in series {
                        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Samples::Gauge(series) => {
                    for (labels, value) in series {
                        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
                    }
                }
                Samples::Histogram {
                    sum,
                    count,
                    buckets,
                } => metric.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
            }
        }
        Ok(())
    }
}

/// A label value: a string key's text (not quoted), cut at [`LABEL_CAP`]
/// characters; other keys as `usdt trace` prints them.
fn label_value(value: &Value) -> String {
    let text = match value {
        Value::Str { text, .. } => text.clone(),
        Value::Bytes { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
        other => other.to_string(),
    };
    text.chars().take(LABEL_CAP).collect()
}

/// Adds `histogram`'s counts and sum to `total`.
fn add_histogram(total: &mut Log2Histogram, histogram: &Log2Histogram) {
    for (sum, add) in total.buckets.iter_mut().zip(histogram.buckets) {
        *sum += add;
    }
    for (sum, add) in total.negative.iter_mut().zip(histogram.negative) {
        *sum += add;
    }
    total.sum = total.sum.wrapping_add(histogram.sum);
    total.signed |= histogram.signed;
}

/// A histogram's samples: each log2 bucket from the lowest non-empty one up
/// to the highest, its `le` the highest value it holds, then `+Inf`. For
/// `seconds` (a latency counted in microseconds, summed in nanoseconds), the
/// bounds are the bucket's end in seconds (bucket `b` holds less than 2^b
/// microseconds) and the sum is in seconds.
fn histogram_samples(histogram: &Log2Histogram, seconds: bool) -> Samples {
    let mut buckets: Vec<(f64, u64)> = histogram
        .rows()
        .iter()
        .map(|row| {
            let bound = if seconds {
                (row.high + 1) as f64 / 1e6
            } else {
                row.high as f64
            };
            (bound, row.count)
        })
        .collect();
    buckets.push((f64::INFINITY, 0));
    let sum = if seconds {
        histogram.sum as f64 / 1e9
    } else {
        histogram.sum_value() as f64
    };
    Samples::Histogram {
        sum,
        count: histogram.total(),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::Kind;
    use super::*;
    use std::sync::Arc;
    use usdt_tracer::{HitCount, ProbeInfo};

    fn metric(family: &str, kind: Kind, label: Option<&str>, max_series: usize) -> Metric {
        Metric {
            family: family.into(),
            help: format!("{family} help"),
            kind,
            label: label.map(Into::into),
            max_series,
            probes: vec!["/srv/app:p:n".into()],
        }
    }

    #[test]
    fn series_beyond_the_limit_go_to_other_and_buckets_are_cumulative() {
        let probe = Arc::new(ProbeInfo {
            provider: "http".into(),
            name: "request_done".into(),
            path: "/srv/app".into(),
            signature: None,
            sites: 1,
            semaphore: false,
        });
        let row = |key: u64, count: u64| HitCount {
            probe: probe.clone(),
            key: Some(Value::Unsigned(key)),
            stack: None,
            count,
        };
        let mut sizes = Log2Histogram {
            signed: true,
            sum: (-5i64 + 100 + 100) as u64,
            ..Log2Histogram::default()
        };
        sizes.negative[3] = 1; // -5
        sizes.buckets[7] = 2; // 100, 100
        let mut latency = Log2Histogram::default();
        latency.buckets[10] = 3; // 512..1023 us
        latency.sum = 2_100_000;
        let report = AggregateReport {
            results: vec![
                AggregateResult::Hits {
                    by: Some("status".into()),
                    counts: vec![row(200, 7), row(404, 2), row(500, 1), row(503, 4)],
                },
                AggregateResult::Histogram {
                    arg: "bytes".into(),
                    histograms: vec![(probe.clone(), sizes)],
                },
                AggregateResult::Latency {
                    start: "a".into(),
                    end: "b".into(),
                    key: "id".into(),
                    histogram: Box::new(latency),
                },
            ],
            ..AggregateReport::default()
        };
        let metrics = [
            metric("requests", Kind::Count, Some("status"), 2),
            metric("sizes", Kind::Histogram, None, 1000),
            metric("latency_seconds", Kind::Latency, None, 1000),
        ];
        let state = SelfState {
            sites: vec![1, 1, 2],
            ..SelfState::default()
        };
        let mut admitted = Admitted::default();
        let (text, content_type) =
            Snapshot::new(&metrics, &report, &state, &mut admitted).encode(false);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE requests_total counter",
            "requests_total{status=\"200\"} 7",
            "requests_total{status=\"404\"} 2",
            "requests_total{status=\"other\"} 5",
            "sizes_sum 195.0",
            "sizes_count 3",
            "sizes_bucket{le=\"-4\"} 1",
            "sizes_bucket{le=\"-2\"} 1",
            "sizes_bucket{le=\"-1\"} 1",
            "sizes_bucket{le=\"1\"} 1",
            "sizes_bucket{le=\"127\"} 3",
            "sizes_bucket{le=\"+Inf\"} 3",
            "latency_seconds_sum 0.0021",
            "latency_seconds_count 3",
            "latency_seconds_bucket{le=\"0.000512\"} 0",
            "latency_seconds_bucket{le=\"0.001024\"} 3",
            "usdt_serve_overflow_series{metric=\"requests\"} 2.0",
            "usdt_serve_sites{metric=\"latency_seconds\"} 2.0",
            "usdt_serve_lost_hits_total{reason=\"map_full\"} 0",
        ] {
            assert!(lines.contains(&expected), "{expected} not in\n{text}");
        }
        // 500 and 503 came after the two admitted: still `other` later,
        // even when an admitted one has no new hit.
        let (text, _) = Snapshot::new(&metrics, &report, &state, &mut admitted).encode(true);
        assert!(
            text.contains("requests_total{status=\"other\"} 5"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
