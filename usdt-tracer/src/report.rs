//! What the in-kernel aggregations hold, and how it prints: tables of
//! counts, and log2 histograms in the style of bcc's `print_log2_hist`.

use crate::aggregate::{Aggregation, KeyDecoder};
use crate::event::{ProbeInfo, ProbeName};
use crate::stack::StackFrame;
use crate::value::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use usdt_tracer_common::{AggKey, HISTOGRAM_BUCKETS, HISTOGRAM_SUM, NEGATIVE_SLOTS};

/// Width of the widest bar of a histogram, in characters (as bcc's).
const BAR_WIDTH: u64 = 40;

/// The aggregations of a tracer at one moment (see
/// [`crate::Tracer::aggregates`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateReport {
    /// One result per configured aggregation, in configuration order.
    pub results: Vec<AggregateResult>,
    /// Hits that could not be aggregated, by reason.
    pub losses: AggregateLosses,
    /// Latency starts still waiting for their end.
    pub pending_starts: u64,
}

/// The result of one aggregation.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregateResult {
    /// Hit counts, highest first (every counted probe appears when there is
    /// no key, even with no hit).
    Hits {
        /// The key counted by (`pid`, `tid`, an argument), if any.
        by: Option<String>,
        /// The counts.
        counts: Vec<HitCount>,
    },
    /// One log2 histogram of an argument per probe.
    Histogram {
        /// The argument.
        arg: String,
        /// Each probe's histogram.
        histograms: Vec<(Arc<ProbeInfo>, Log2Histogram)>,
    },
    /// A latency histogram in microseconds.
    Latency {
        /// The start probe as given.
        start: String,
        /// The end probe as given.
        end: String,
        /// The key pairing starts and ends.
        key: String,
        /// Microseconds from start to end.
        histogram: Box<Log2Histogram>,
    },
}

/// One counter of a hit count.
#[derive(Debug, Clone, PartialEq)]
pub struct HitCount {
    /// The probe.
    pub probe: Arc<ProbeInfo>,
    /// The key value, when counting by a key (for a stack, its hash).
    pub key: Option<Value>,
    /// When counting by stack: the stack's frames, innermost first (empty
    /// when the stack was lost).
    pub stack: Option<Vec<StackFrame>>,
    /// Hits.
    pub count: u64,
}

/// Hits that could not be aggregated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateLosses {
    /// Hits lost because the counter map was full (a new key found no
    /// room).
    pub map_full: u64,
    /// Latency starts lost because the pending-start map was full.
    pub starts_full: u64,
    /// Latency ends whose start was not seen (it came before the trace, or
    /// was lost).
    pub unmatched_ends: u64,
    /// Hits whose key (an argument or the user stack) or value could not be
    /// read.
    pub faults: u64,
}

impl AggregateLosses {
    fn minus(self, earlier: AggregateLosses) -> AggregateLosses {
        AggregateLosses {
            map_full: self.map_full.saturating_sub(earlier.map_full),
            starts_full: self.starts_full.saturating_sub(earlier.starts_full),
            unmatched_ends: self.unmatched_ends.saturating_sub(earlier.unmatched_ends),
            faults: self.faults.saturating_sub(earlier.faults),
        }
    }
}

/// A histogram of power-of-two buckets, kept in the kernel with the sum of
/// its values: non-negative bucket `b` (1 to 64) counts the values from
/// `2^(b-1)` to `2^b - 1`, with 0 in bucket 1 (see
/// `usdt_tracer_common::log2_bucket`), and negative bucket `b` its mirror
/// image, the values from `-(2^b - 1)` to `-2^(b-1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log2Histogram {
    /// Counts per non-negative bucket (index 0 is unused and stays 0).
    pub buckets: [u64; HISTOGRAM_BUCKETS],
    /// Counts per negative bucket (index 0 is unused and stays 0).
    pub negative: [u64; HISTOGRAM_BUCKETS],
    /// The sum of the values counted as the kernel keeps it, wrapping at 64
    /// bits: for a latency, of the elapsed nanoseconds (the buckets count
    /// microseconds). See [`Log2Histogram::sum_value`].
    pub sum: u64,
    /// Whether the values are of a signed argument: the sum then reads as an
    /// `i64` (negative values were added as their two's complement).
    pub signed: bool,
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram {
            buckets: [0; HISTOGRAM_BUCKETS],
            negative: [0; HISTOGRAM_BUCKETS],
            sum: 0,
            signed: false,
        }
    }
}

/// One bucket of a [`Log2Histogram`]: its lowest and highest value, and
/// its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramBucket {
    /// The lowest value the bucket holds.
    pub low: i128,
    /// The highest value the bucket holds.
    pub high: i128,
    /// Values counted in it.
    pub count: u64,
}

impl Log2Histogram {
    /// Values counted.
    pub fn total(&self) -> u64 {
        self.buckets.iter().chain(&self.negative).sum()
    }

    /// [`Log2Histogram::sum`] as a number: signed or not, as the values are.
    pub fn sum_value(&self) -> i128 {
        if self.signed {
            i128::from(self.sum as i64)
        } else {
            i128::from(self.sum)
        }
    }

    /// The lowest and highest value of bucket `bucket` (1 to 64).
    pub fn bounds(bucket: usize) -> (u64, u64) {
        match bucket {
            0 | 1 => (0, 1),
            64.. => (1 << 63, u64::MAX),
            b => (1 << (b - 1), (1 << b) - 1),
        }
    }

    /// The lowest and highest value of negative bucket `bucket` (1 to 64):
    /// the mirror image of [`Log2Histogram::bounds`] without 0 (`-1` to
    /// `-1` for bucket 1).
    pub fn negative_bounds(bucket: usize) -> (i128, i128) {
        let bucket = bucket.clamp(1, 64);
        (-((1i128 << bucket) - 1), -(1i128 << (bucket - 1)))
    }

    /// The buckets from the lowest non-empty one (or the non-negative bucket
    /// 1 when no value is negative) up to the highest non-empty one, empty
    /// ones between included, in ascending order of values: the rows bcc
    /// prints, and the bounds a cumulative histogram needs. Empty when
    /// nothing was counted.
    pub fn rows(&self) -> Vec<HistogramBucket> {
        let negative = (1..HISTOGRAM_BUCKETS).rev().map(|b| {
            let (low, high) = Log2Histogram::negative_bounds(b);
            HistogramBucket {
                low,
                high,
                count: self.negative[b],
            }
        });
        let positive = (1..HISTOGRAM_BUCKETS).map(|b| {
            let (low, high) = Log2Histogram::bounds(b);
            HistogramBucket {
                low: low.into(),
                high: high.into(),
                count: self.buckets[b],
            }
        });
        let all: Vec<HistogramBucket> = negative.chain(positive).collect();
        let Some(last) = all.iter().rposition(|b| b.count > 0) else {
            return Vec::new();
        };
        let first = all
            .iter()
            .position(|b| b.count > 0)
            .unwrap_or(0)
            .min(HISTOGRAM_BUCKETS - 1);
        all[first..=last].to_vec()
    }

    /// Adds the counter map entry of key value `slot` (a bucket, or the
    /// sum) holding `count`; other slots are left out.
    fn add_entry(&mut self, slot: u64, count: u64) {
        if slot == HISTOGRAM_SUM {
            self.sum = self.sum.wrapping_add(count);
        } else if slot > NEGATIVE_SLOTS {
            if let Some(bucket) = self.negative.get_mut((slot - NEGATIVE_SLOTS) as usize) {
                *bucket += count;
            }
        } else if slot > 0 {
            self.buckets[slot as usize] += count;
        }
    }

    fn minus(&self, earlier: &Log2Histogram) -> Log2Histogram {
        let mut out = self.clone();
        for (bucket, old) in out.buckets.iter_mut().zip(earlier.buckets) {
            *bucket = bucket.saturating_sub(old);
        }
        for (bucket, old) in out.negative.iter_mut().zip(earlier.negative) {
            *bucket = bucket.saturating_sub(old);
        }
        out.sum = self.sum.wrapping_sub(earlier.sum);
        out
    }

    /// The histogram as bcc's `print_log2_hist` prints it: a header naming
    /// the `unit`, then one row per bucket of [`Log2Histogram::rows`] (from
    /// the lowest non-empty negative bucket, or else from 0, up to the
    /// highest non-empty one), with a bar of up to 40 stars scaled to the
    /// largest count. Empty when nothing was counted.
    ///
    /// ```text
    ///      usecs               : count     distribution
    ///          0 -> 1          : 0        |                                        |
    ///          2 -> 3          : 4        |****************************************|
    /// ```
    pub fn render(&self, unit: &str) -> String {
        let rows = self.rows();
        if rows.is_empty() {
            return String::new();
        }
        let max = rows.iter().map(|r| r.count).max().unwrap_or(0).max(1);
        let labels: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.low.to_string(), r.high.to_string()))
            .collect();
        // Wide values need wider columns (bcc's past bucket 32); bcc halves
        // the bar then.
        let wide = rows.last().is_some_and(|r| r.high > (1i128 << 32) - 1)
            || labels
                .iter()
                .any(|(low, high)| low.len().max(high.len()) > 10);
        let width = if wide { BAR_WIDTH / 2 } else { BAR_WIDTH };
        let mut out = String::new();
        if wide {
            writeln!(out, "               {unit:<29} : count     distribution").unwrap();
        } else {
            writeln!(out, "     {unit:<19} : count     distribution").unwrap();
        }
        for (row, (low, high)) in rows.iter().zip(labels) {
            let stars = (u128::from(width) * u128::from(row.count) / u128::from(max)) as usize;
            let bar = format!(
                "|{}{}|",
                "*".repeat(stars),
                " ".repeat(width as usize - stars)
            );
            let count = row.count;
            if wide {
                writeln!(out, "{low:>20} -> {high:<20} : {count:<8} {bar}").unwrap();
            } else {
                writeln!(out, "{low:>10} -> {high:<10} : {count:<8} {bar}").unwrap();
            }
        }
        out
    }
}

impl AggregateReport {
    /// The report of the counter map's `entries` (key and count), for the
    /// aggregations `specs` of a tracer whose probes are `probes`, with the
    /// hits it could not count. Entries of an aggregation, probe or bucket
    /// the tracer does not know (none, unless the map was written by
    /// something else) are left out.
    pub(crate) fn from_entries(
        specs: &[(Aggregation, Vec<(u32, KeyDecoder)>)],
        probes: &[Arc<ProbeInfo>],
        entries: impl IntoIterator<Item = (AggKey, u64)>,
        losses: AggregateLosses,
        pending_starts: u64,
    ) -> AggregateReport {
        let mut results: Vec<AggregateResult> = specs
            .iter()
            .map(|(spec, keys)| match spec {
                Aggregation::Hits { by, .. } => AggregateResult::Hits {
                    by: by.as_ref().map(ToString::to_string),
                    // Every probe shows, with no hit too, when not keyed.
                    counts: if by.is_none() {
                        keys.iter()
                            .map(|(probe, _)| HitCount {
                                probe: probes[*probe as usize].clone(),
                                key: None,
                                stack: None,
                                count: 0,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                },
                Aggregation::Histogram { arg, .. } => AggregateResult::Histogram {
                    arg: arg.clone(),
                    // Histograms' decoders say whether the values are
                    // signed.
                    histograms: keys
                        .iter()
                        .map(|(probe, decoder)| {
                            let histogram = Log2Histogram {
                                signed: *decoder == KeyDecoder::Signed,
                                ..Log2Histogram::default()
                            };
                            (probes[*probe as usize].clone(), histogram)
                        })
                        .collect(),
                },
                Aggregation::Latency {
                    start,
                    end,
                    start_key,
                    end_key,
                } => AggregateResult::Latency {
                    start: start.to_string(),
                    end: end.to_string(),
                    key: if start_key == end_key {
                        start_key.to_string()
                    } else {
                        format!("{start_key},{end_key}")
                    },
                    histogram: Box::default(),
                },
            })
            .collect();
        for (key, count) in entries {
            let Some(result) = results.get_mut(key.aggregation as usize) else {
                continue;
            };
            match result {
                AggregateResult::Hits { counts, .. } => {
                    let Some(decoder) = specs
                        .get(key.aggregation as usize)
                        .into_iter()
                        .flat_map(|(_, keys)| keys)
                        .find(|(probe, _)| *probe == key.probe_id)
                        .map(|(_, decoder)| *decoder)
                    else {
                        continue;
                    };
                    let Some(probe) = probes.get(key.probe_id as usize) else {
                        continue;
                    };
                    let value = decoder.decode(&key);
                    // Each map entry is its own row, except the per-probe
                    // counters without a key, listed beforehand.
                    let listed = value.is_none().then(|| {
                        counts
                            .iter_mut()
                            .find(|row| Arc::ptr_eq(&row.probe, probe) && row.key.is_none())
                    });
                    match listed.flatten() {
                        Some(row) => row.count += count,
                        None => counts.push(HitCount {
                            probe: probe.clone(),
                            key: value,
                            stack: None,
                            count,
                        }),
                    }
                }
                AggregateResult::Histogram { histograms, .. } => {
                    let probe = probes.get(key.probe_id as usize);
                    if let Some((_, histogram)) = histograms
                        .iter_mut()
                        .find(|(p, _)| probe.is_some_and(|probe| Arc::ptr_eq(p, probe)))
                    {
                        histogram.add_entry(key.value, count);
                    }
                }
                AggregateResult::Latency { histogram, .. } => histogram.add_entry(key.value, count),
            }
        }
        for result in &mut results {
            if let AggregateResult::Hits { counts, .. } = result {
                sort_counts(counts);
            }
        }
        AggregateReport {
            results,
            losses,
            pending_starts,
        }
    }

    /// What was added since `earlier` (an older report of the same tracer):
    /// counts and buckets minus the earlier ones, rows that did not change
    /// left out (except per-probe counts without a key).
    pub fn since(&self, earlier: &AggregateReport) -> AggregateReport {
        let results = self
            .results
            .iter()
            .enumerate()
            .map(|(index, result)| {
                let old = earlier.results.get(index);
                match (result, old) {
                    (
                        AggregateResult::Hits { by, counts },
                        Some(AggregateResult::Hits { counts: old, .. }),
                    ) => {
                        // Rows by probe and key (keys are never floats, so
                        // their debug text identifies them).
                        let row_id = |row: &HitCount| {
                            (Arc::as_ptr(&row.probe) as usize, format!("{:?}", row.key))
                        };
                        let before: HashMap<(usize, String), u64> =
                            old.iter().map(|o| (row_id(o), o.count)).collect();
                        let counts = counts
                            .iter()
                            .filter_map(|row| {
                                let before = before.get(&row_id(row)).copied().unwrap_or(0);
                                let count = row.count.saturating_sub(before);
                                (count > 0 || row.key.is_none()).then(|| HitCount {
                                    count,
                                    ..row.clone()
                                })
                            })
                            .collect();
                        let mut counts: Vec<HitCount> = counts;
                        sort_counts(&mut counts);
                        AggregateResult::Hits {
                            by: by.clone(),
                            counts,
                        }
                    }
                    (
                        AggregateResult::Histogram { arg, histograms },
                        Some(AggregateResult::Histogram {
                            histograms: old, ..
                        }),
                    ) => AggregateResult::Histogram {
                        arg: arg.clone(),
                        histograms: histograms
                            .iter()
                            .map(|(probe, histogram)| {
                                let before = old.iter().find(|(p, _)| Arc::ptr_eq(p, probe));
                                let histogram = match before {
                                    Some((_, before)) => histogram.minus(before),
                                    None => histogram.clone(),
                                };
                                (probe.clone(), histogram)
                            })
                            .collect(),
                    },
                    (
                        AggregateResult::Latency {
                            start,
                            end,
                            key,
                            histogram,
                        },
                        Some(AggregateResult::Latency { histogram: old, .. }),
                    ) => AggregateResult::Latency {
                        start: start.clone(),
                        end: end.clone(),
                        key: key.clone(),
                        histogram: Box::new(histogram.minus(old)),
                    },
                    (result, _) => result.clone(),
                }
            })
            .collect();
        AggregateReport {
            results,
            losses: self.losses.minus(earlier.losses),
            pending_starts: self.pending_starts,
        }
    }

    /// Puts each stack-keyed row's frames beside it (`frames` by stack
    /// hash); a stack not there shows empty.
    pub(crate) fn attach_stacks(&mut self, frames: &HashMap<u64, Vec<StackFrame>>) {
        for result in &mut self.results {
            if let AggregateResult::Hits {
                by: Some(by),
                counts,
            } = result
                && by == "stack"
            {
                for row in counts {
                    if let Some(Value::Unsigned(hash)) = row.key {
                        row.stack = Some(frames.get(&hash).cloned().unwrap_or_default());
                    }
                }
            }
        }
    }

    /// The report as text: per aggregation, a table of counts or the
    /// histograms, separated by blank lines.
    pub fn render_text(&self) -> String {
        let mut blocks: Vec<String> = Vec::new();
        for result in &self.results {
            match result {
                AggregateResult::Hits { by: None, counts } => {
                    let mut out = String::new();
                    let width = count_width(counts);
                    writeln!(out, "{:>width$}  PROBE", "HITS").unwrap();
                    for row in counts {
                        writeln!(out, "{:>width$}  {}", row.count, probe_name(&row.probe)).unwrap();
                    }
                    blocks.push(out);
                }
                AggregateResult::Hits {
                    by: Some(by),
                    counts,
                } => {
                    let groups = rows_by_probe(counts);
                    if groups.is_empty() {
                        blocks.push(format!("hits by {by}: none\n"));
                    }
                    for (probe, rows) in groups {
                        let width = rows
                            .iter()
                            .map(|r| r.count.to_string().len())
                            .max()
                            .unwrap_or(0)
                            .max(4);
                        let mut out = format!("{} hits by {by}\n", probe_name(probe));
                        writeln!(out, "{:>width$}  {}", "HITS", by.to_uppercase()).unwrap();
                        for row in rows {
                            if let Some(stack) = &row.stack {
                                write!(out, "{:>width$}", row.count).unwrap();
                                write_frames(&mut out, stack, width + 2);
                                continue;
                            }
                            let key = row.key.as_ref().map(Value::to_string).unwrap_or_default();
                            writeln!(out, "{:>width$}  {key}", row.count).unwrap();
                        }
                        blocks.push(out);
                    }
                }
                AggregateResult::Histogram { arg, histograms } => {
                    for (probe, histogram) in histograms {
                        let mut out = format!(
                            "{} {arg}: {} value{}\n",
                            probe_name(probe),
                            histogram.total(),
                            if histogram.total() == 1 { "" } else { "s" }
                        );
                        out.push_str(&histogram.render(arg));
                        blocks.push(out);
                    }
                }
                AggregateResult::Latency {
                    start,
                    end,
                    key,
                    histogram,
                } => {
                    let mut out = format!(
                        "latency {start} -> {end} by {key}: {} pair{}\n",
                        histogram.total(),
                        if histogram.total() == 1 { "" } else { "s" }
                    );
                    out.push_str(&histogram.render("usecs"));
                    blocks.push(out);
                }
            }
        }
        blocks.join("\n")
    }

    /// The report as JSON lines, one object per table:
    ///
    /// - `{"aggregation":"hits","provider","name","path","count"}` per probe
    ///   without a key; with a key, `"by"` and `"counts":[{"key","count"}]`
    ///   (and `"truncated":true` on a string key cut at the key bound);
    /// - `{"aggregation":"histogram","provider","name","path","arg","total",
    ///   "sum","buckets":[{"low","high","count"}]}` (non-empty buckets,
    ///   ascending; negative ones have negative bounds);
    /// - `{"aggregation":"latency","start","end","key","unit":"usecs",
    ///   "total","sum_nsecs","buckets":[...]}` (the sum of the latencies
    ///   in nanoseconds).
    ///
    /// With `report` (the number of a report printed every interval), each
    /// object also has `"report": N`.
    pub fn json_lines(&self, report: Option<u64>) -> Vec<String> {
        let mut lines = Vec::new();
        for result in &self.results {
            match result {
                AggregateResult::Hits { by: None, counts } => {
                    for row in counts {
                        lines.push(json::line(&json::Hits {
                            report,
                            aggregation: "hits",
                            probe: ProbeName::of(&row.probe),
                            count: row.count,
                        }));
                    }
                }
                AggregateResult::Hits {
                    by: Some(by),
                    counts,
                } => {
                    for (probe, rows) in rows_by_probe(counts) {
                        lines.push(json::line(&json::KeyedHits {
                            report,
                            aggregation: "hits",
                            probe: ProbeName::of(probe),
                            by,
                            counts: rows
                                .into_iter()
                                .map(|row| json::KeyCount {
                                    key: row.key.as_ref().filter(|_| row.stack.is_none()),
                                    stack: row.stack.as_deref(),
                                    truncated: row.key.as_ref().is_some_and(Value::is_truncated),
                                    count: row.count,
                                })
                                .collect(),
                        }));
                    }
                }
                AggregateResult::Histogram { arg, histograms } => {
                    for (probe, histogram) in histograms {
                        lines.push(json::line(&json::Histogram {
                            report,
                            aggregation: "histogram",
                            probe: ProbeName::of(probe),
                            arg,
                            total: histogram.total(),
                            sum: histogram.sum_value(),
                            buckets: json::Buckets(histogram),
                        }));
                    }
                }
                AggregateResult::Latency {
                    start,
                    end,
                    key,
                    histogram,
                } => lines.push(json::line(&json::Latency {
                    report,
                    aggregation: "latency",
                    start,
                    end,
                    key,
                    unit: "usecs",
                    total: histogram.total(),
                    sum_nsecs: histogram.sum,
                    buckets: json::Buckets(histogram),
                })),
            }
        }
        lines
    }
}

/// Writes a stack's frames, one a line (`#N  ADDRESS SYMBOL (FILE:LINE)`,
/// innermost first), the first after what the line holds and the others
/// indented by `indent`.
fn write_frames(out: &mut String, stack: &[StackFrame], indent: usize) {
    if stack.is_empty() {
        out.push_str("  [stack lost]\n");
    }
    for (index, frame) in stack.iter().enumerate() {
        if index > 0 {
            write!(out, "{:indent$}", "").unwrap();
        } else {
            out.push_str("  ");
        }
        writeln!(out, "#{index:<2} {frame}").unwrap();
    }
}

/// Sorts counts highest first, then by probe and key (integers by value,
/// others by text).
fn sort_counts(counts: &mut [HitCount]) {
    // Each probe's place in name order, found once: a scrape sorts tens of
    // thousands of rows of a few probes.
    let mut name_of = HashMap::new();
    for row in counts.iter() {
        name_of
            .entry(Arc::as_ptr(&row.probe))
            .or_insert_with(|| probe_name(&row.probe));
    }
    let mut names: Vec<&String> = name_of.values().collect();
    names.sort();
    // Probes of the same name (in different files) rank the same.
    let rank: HashMap<*const ProbeInfo, usize> = name_of
        .iter()
        .map(|(probe, name)| (*probe, names.partition_point(|other| *other < name)))
        .collect();
    counts.sort_by_cached_key(|row| {
        let number = match row.key {
            Some(Value::Unsigned(n)) => Some(i128::from(n)),
            Some(Value::Signed(n)) => Some(i128::from(n)),
            _ => None,
        };
        // The text only where there is no number to order by.
        let text = match number {
            Some(_) => None,
            None => row.key.as_ref().map(Value::to_string),
        };
        (
            std::cmp::Reverse(row.count),
            rank[&Arc::as_ptr(&row.probe)],
            number,
            text,
        )
    });
}

/// Keyed hit counts grouped by probe, probes in the order they first
/// appear, each probe's rows in their order.
fn rows_by_probe(counts: &[HitCount]) -> Vec<(&Arc<ProbeInfo>, Vec<&HitCount>)> {
    let mut groups: Vec<(&Arc<ProbeInfo>, Vec<&HitCount>)> = Vec::new();
    for row in counts {
        match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &row.probe)) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((&row.probe, vec![row])),
        }
    }
    groups
}

fn probe_name(probe: &ProbeInfo) -> String {
    format!("{}:{}", probe.provider, probe.name)
}

fn count_width(counts: &[HitCount]) -> usize {
    counts
        .iter()
        .map(|r| r.count.to_string().len())
        .max()
        .unwrap_or(0)
        .max(4)
}

/// The shapes of [`AggregateReport::json_lines`].
mod json {
    use super::Log2Histogram;
    use crate::event::ProbeName;
    use crate::value::Value;
    use serde::Serialize;
    use serde::ser::{SerializeSeq, Serializer};

    /// One line of JSON. The shapes below hold strings, integers and
    /// [`Value`]s, none of which can fail to serialize.
    pub(super) fn line(shape: &impl Serialize) -> String {
        serde_json::to_string(shape).expect("report lines always serialize")
    }

    /// Hits of one probe, without a key.
    #[derive(Serialize)]
    pub(super) struct Hits<'a> {
        pub aggregation: &'static str,
        #[serde(flatten)]
        pub probe: ProbeName<'a>,
        pub count: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub report: Option<u64>,
    }

    /// Hits of one probe per key.
    #[derive(Serialize)]
    pub(super) struct KeyedHits<'a> {
        pub aggregation: &'static str,
        #[serde(flatten)]
        pub probe: ProbeName<'a>,
        pub by: &'a str,
        pub counts: Vec<KeyCount<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub report: Option<u64>,
    }

    /// One key's hits.
    #[derive(Serialize)]
    pub(super) struct KeyCount<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stack: Option<&'a [crate::stack::StackFrame]>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub truncated: bool,
        pub count: u64,
    }

    /// One probe's histogram of an argument.
    #[derive(Serialize)]
    pub(super) struct Histogram<'a> {
        pub aggregation: &'static str,
        #[serde(flatten)]
        pub probe: ProbeName<'a>,
        pub arg: &'a str,
        pub total: u64,
        pub sum: i128,
        pub buckets: Buckets<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub report: Option<u64>,
    }

    /// A latency histogram.
    #[derive(Serialize)]
    pub(super) struct Latency<'a> {
        pub aggregation: &'static str,
        pub start: &'a str,
        pub end: &'a str,
        pub key: &'a str,
        pub unit: &'static str,
        pub total: u64,
        pub sum_nsecs: u64,
        pub buckets: Buckets<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub report: Option<u64>,
    }

    /// The non-empty buckets of a histogram as `{"low", "high", "count"}`,
    /// in ascending order.
    pub(super) struct Buckets<'a>(pub &'a Log2Histogram);

    impl Serialize for Buckets<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Bucket {
                low: i128,
                high: i128,
                count: u64,
            }
            let mut seq = serializer.serialize_seq(None)?;
            for row in self.0.rows() {
                if row.count > 0 {
                    seq.serialize_element(&Bucket {
                        low: row.low,
                        high: row.high,
                        count: row.count,
                    })?;
                }
            }
            seq.end()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str) -> Arc<ProbeInfo> {
        Arc::new(ProbeInfo {
            provider: "http".into(),
            name: name.into(),
            path: "/srv/app".into(),
            signature: None,
            sites: 1,
            semaphore: false,
        })
    }

    #[test]
    fn histograms_print_like_bcc() {
        let mut histogram = Log2Histogram::default();
        histogram.buckets[3] = 12; // 4 -> 7
        histogram.buckets[5] = 3; // 16 -> 31
        let text = histogram.render("usecs");
        let expected = "     usecs               : count     distribution
         0 -> 1          : 0        |                                        |
         2 -> 3          : 0        |                                        |
         4 -> 7          : 12       |****************************************|
         8 -> 15         : 0        |                                        |
        16 -> 31         : 3        |**********                              |
";
        assert_eq!(text, expected);
        assert_eq!(Log2Histogram::default().render("x"), "");
    }

    #[test]
    fn wide_histograms_and_negative_values() {
        let mut histogram = Log2Histogram::default();
        histogram.negative[3] = 1;
        histogram.negative[1] = 2;
        histogram.buckets[64] = 2;
        let text = histogram.render("bytes");
        let lines: Vec<&str> = text.lines().collect();
        // Negative buckets 3 down to 1, then every non-negative bucket.
        assert_eq!(lines.len(), 1 + 3 + 64);
        assert!(lines[0].starts_with("               bytes "));
        assert_eq!(
            lines[1],
            "                  -7 -> -4                   : 1        |**********          |"
        );
        assert_eq!(
            lines[2],
            "                  -3 -> -2                   : 0        |                    |"
        );
        assert_eq!(
            lines[3],
            "                  -1 -> -1                   : 2        |********************|"
        );
        assert_eq!(
            lines[4],
            "                   0 -> 1                    : 0        |                    |"
        );
        assert_eq!(
            lines[67],
            " 9223372036854775808 -> 18446744073709551615 : 2        |********************|"
        );
        assert_eq!(Log2Histogram::bounds(1), (0, 1));
        assert_eq!(Log2Histogram::bounds(11), (1024, 2047));
        assert_eq!(Log2Histogram::negative_bounds(1), (-1, -1));
        assert_eq!(Log2Histogram::negative_bounds(11), (-2047, -1024));
        assert_eq!(
            Log2Histogram::negative_bounds(64),
            (-i128::from(u64::MAX), i128::from(i64::MIN))
        );

        // Only negative values: the rows stop at the highest non-empty one.
        let mut histogram = Log2Histogram::default();
        histogram.negative[2] = 4;
        histogram.negative[4] = 1;
        let rows: Vec<(i128, i128, u64)> = histogram
            .rows()
            .iter()
            .map(|r| (r.low, r.high, r.count))
            .collect();
        assert_eq!(rows, [(-15, -8, 1), (-7, -4, 0), (-3, -2, 4)]);
        assert_eq!(histogram.total(), 5);
        let text = histogram.render("v");
        assert_eq!(
            text.lines().nth(1),
            Some("       -15 -> -8         : 1        |**********                              |")
        );
    }

    #[test]
    fn deltas_and_json() {
        let done = probe("request_done");
        let count = |key: u64, count: u64| HitCount {
            probe: done.clone(),
            key: Some(Value::Unsigned(key)),
            stack: None,
            count,
        };
        let mut histogram = Log2Histogram::default();
        histogram.buckets[2] = 5;
        let earlier = AggregateReport {
            results: vec![
                AggregateResult::Hits {
                    by: Some("status".into()),
                    counts: vec![count(200, 5), count(404, 1)],
                },
                AggregateResult::Latency {
                    start: "a".into(),
                    end: "b".into(),
                    key: "id".into(),
                    histogram: Box::new(histogram.clone()),
                },
            ],
            losses: AggregateLosses {
                unmatched_ends: 1,
                ..AggregateLosses::default()
            },
            pending_starts: 2,
        };
        histogram.buckets[2] = 7;
        let later = AggregateReport {
            results: vec![
                AggregateResult::Hits {
                    by: Some("status".into()),
                    counts: vec![count(200, 9), count(404, 1), count(500, 2)],
                },
                AggregateResult::Latency {
                    start: "a".into(),
                    end: "b".into(),
                    key: "id".into(),
                    histogram: Box::new(histogram),
                },
            ],
            losses: AggregateLosses {
                unmatched_ends: 3,
                ..AggregateLosses::default()
            },
            pending_starts: 0,
        };
        let delta = later.since(&earlier);
        match &delta.results[0] {
            AggregateResult::Hits { counts, .. } => {
                let rows: Vec<(String, u64)> = counts
                    .iter()
                    .map(|r| (r.key.as_ref().unwrap().to_string(), r.count))
                    .collect();
                assert_eq!(rows, [("200".into(), 4), ("500".into(), 2)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(delta.losses.unmatched_ends, 2);

        let lines = delta.json_lines(None);
        let hits: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(hits["aggregation"], "hits");
        assert_eq!(hits["by"], "status");
        assert_eq!(hits["counts"][0]["key"], 200);
        assert_eq!(hits["counts"][0]["count"], 4);
        let latency: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(latency["buckets"][0]["low"], 2);
        assert_eq!(latency["buckets"][0]["high"], 3);
        assert_eq!(latency["buckets"][0]["count"], 2);
        assert!(hits.get("report").is_none());
        for line in delta.json_lines(Some(3)) {
            let object: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(object["report"], 3, "{line}");
        }

        let text = delta.render_text();
        assert!(
            text.contains("http:request_done hits by status\nHITS  STATUS\n   4  200\n   2  500\n"),
            "{text}"
        );
    }

    fn key(aggregation: u32, probe_id: u32, value: u64) -> AggKey {
        AggKey {
            aggregation,
            probe_id,
            value,
            ..AggKey::default()
        }
    }

    #[test]
    fn map_entries_become_results() {
        let start = probe("request_start");
        let done = probe("request_done");
        let probes = vec![start.clone(), done.clone()];
        let specs = vec![
            (
                Aggregation::hits(&["http:*"], None).unwrap(),
                vec![(0, KeyDecoder::Nothing), (1, KeyDecoder::Nothing)],
            ),
            (
                Aggregation::hits(&["http:request_done"], Some("status")).unwrap(),
                vec![(1, KeyDecoder::Unsigned)],
            ),
            (
                Aggregation::histogram(&["http:request_done"], "bytes").unwrap(),
                vec![(1, KeyDecoder::Signed)],
            ),
            (
                Aggregation::latency("http:request_start", "http:request_done", "id").unwrap(),
                Vec::new(),
            ),
        ];
        let entries = vec![
            (key(0, 1, 0), 3),
            (key(1, 1, 200), 2),
            (key(1, 1, 404), 1),
            (key(2, 1, 11), 4),
            (key(2, 1, 12), 1),
            (key(2, 1, NEGATIVE_SLOTS + 2), 3),
            (key(3, 0, 5), 2),
            // The sums beside the buckets: -3 (signed) and 41,000 ns.
            (key(2, 1, HISTOGRAM_SUM), -3i64 as u64),
            (key(3, 0, HISTOGRAM_SUM), 41_000),
            // Unknown aggregation, probe and slot: left out.
            (key(9, 0, 0), 1),
            (key(1, 7, 200), 1),
            (key(2, 1, HISTOGRAM_SUM + 1), 1),
            (key(2, 1, 0), 1),
        ];
        let losses = AggregateLosses {
            map_full: 1,
            ..AggregateLosses::default()
        };
        let report = AggregateReport::from_entries(&specs, &probes, entries, losses, 2);
        assert_eq!(report.losses, losses);
        assert_eq!(report.pending_starts, 2);
        match &report.results[0] {
            AggregateResult::Hits { by: None, counts } => {
                // Highest first; a probe without hits is still listed.
                let rows: Vec<(&str, u64)> = counts
                    .iter()
                    .map(|r| (r.probe.name.as_str(), r.count))
                    .collect();
                assert_eq!(rows, [("request_done", 3), ("request_start", 0)]);
            }
            other => panic!("{other:?}"),
        }
        match &report.results[1] {
            AggregateResult::Hits {
                by: Some(by),
                counts,
            } => {
                assert_eq!(by, "status");
                let rows: Vec<(Option<Value>, u64)> =
                    counts.iter().map(|r| (r.key.clone(), r.count)).collect();
                assert_eq!(
                    rows,
                    [
                        (Some(Value::Unsigned(200)), 2),
                        (Some(Value::Unsigned(404)), 1)
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match &report.results[2] {
            AggregateResult::Histogram { arg, histograms } => {
                assert_eq!(arg, "bytes");
                assert!(Arc::ptr_eq(&histograms[0].0, &done));
                assert_eq!(histograms[0].1.buckets[11], 4);
                assert_eq!(histograms[0].1.buckets[12], 1);
                assert_eq!(histograms[0].1.negative[2], 3);
                assert_eq!(histograms[0].1.total(), 8);
                assert_eq!(histograms[0].1.sum_value(), -3);
            }
            other => panic!("{other:?}"),
        }
        match &report.results[3] {
            AggregateResult::Latency { key, histogram, .. } => {
                assert_eq!(key, "id");
                assert_eq!(histogram.buckets[5], 2);
                assert_eq!(histogram.total(), 2);
                assert_eq!((histogram.sum, histogram.signed), (41_000, false));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_sort_by_count_then_probe_name_then_key() {
        let row = |probe: &Arc<ProbeInfo>, key: Option<Value>, count: u64| HitCount {
            probe: probe.clone(),
            key,
            stack: None,
            count,
        };
        let text = |text: &str| {
            Some(Value::Str {
                text: text.into(),
                truncated: false,
            })
        };
        let (start, done) = (probe("request_start"), probe("request_done"));
        // Another file's probe of the same name ranks with it.
        let other_done = Arc::new(ProbeInfo {
            path: "/srv/other".into(),
            ..(*done).clone()
        });
        let mut counts = vec![
            row(&start, Some(Value::Unsigned(10)), 5),
            row(&done, Some(Value::Unsigned(10)), 5),
            row(&other_done, Some(Value::Unsigned(2)), 5),
            row(&done, Some(Value::Unsigned(9)), 5),
            row(&start, Some(Value::Signed(-3)), 5),
            row(&done, text("b"), 5),
            row(&done, text("a"), 5),
            row(&start, None, 7),
        ];
        sort_counts(&mut counts);
        let shown: Vec<(String, String, u64)> = counts
            .iter()
            .map(|r| {
                let key = r.key.as_ref().map_or("-".into(), Value::to_string);
                (
                    format!("{}{}", r.probe.path.display(), r.probe.name),
                    key,
                    r.count,
                )
            })
            .collect();
        let expected = [
            ("/srv/apprequest_start", "-", 7),
            ("/srv/apprequest_done", "\"a\"", 5),
            ("/srv/apprequest_done", "\"b\"", 5),
            ("/srv/otherrequest_done", "2", 5),
            ("/srv/apprequest_done", "9", 5),
            ("/srv/apprequest_done", "10", 5),
            ("/srv/apprequest_start", "-3", 5),
            ("/srv/apprequest_start", "10", 5),
        ];
        let expected: Vec<(String, String, u64)> = expected
            .iter()
            .map(|(p, k, c)| (p.to_string(), k.to_string(), *c))
            .collect();
        assert_eq!(shown, expected);
    }
}
