//! Aggregation reports on standard output, and warnings about what the
//! aggregations could not count.

use crate::trace::{TraceArgs, plural};
use serde::Serialize;
use std::io::{self, Write};
use usdt_tracer::AggregateReport;

/// Prints one report of the aggregations: text blocks, or JSON lines (with
/// `"report"`, the report's number, when printing every interval). Every
/// interval also states what it could not count: the map keeps the keys of
/// earlier intervals (clearing them would lose the hits that race with it),
/// so once it is full, hits of new keys go uncounted.
pub(crate) fn print_report(
    out: &mut impl Write,
    report: &AggregateReport,
    args: &TraceArgs,
    number: u64,
) -> io::Result<()> {
    let every_interval = args.interval.is_some();
    let losses = report.losses;
    if args.json {
        let report_number = every_interval.then_some(number);
        for line in report.json_lines(report_number) {
            writeln!(out, "{line}")?;
        }
        if every_interval {
            #[derive(Serialize)]
            struct NotCounted {
                map_full: u64,
                starts_full: u64,
                faults: u64,
            }
            #[derive(Serialize)]
            struct Line {
                not_counted: NotCounted,
                report: u64,
            }
            let line = Line {
                not_counted: NotCounted {
                    map_full: losses.map_full,
                    starts_full: losses.starts_full,
                    faults: losses.faults,
                },
                report: number,
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        }
    } else {
        if every_interval {
            writeln!(out, "--- {} ---", clock_time())?;
        }
        write!(out, "{}", report.render_text())?;
        if every_interval {
            let entries = args.map_entries;
            for (count, what) in [
                (
                    losses.map_full,
                    format!(
                        "the aggregation map is full at {entries} entries; raise --map-entries"
                    ),
                ),
                (
                    losses.starts_full,
                    format!("latency starts: the start map is full at {entries} entries"),
                ),
                (
                    losses.faults,
                    "the key (an argument or the user stack) or the value could not be read"
                        .to_owned(),
                ),
            ] {
                if count > 0 {
                    writeln!(
                        out,
                        "not counted in this interval: {count} hit{} ({what})",
                        plural(count as usize)
                    )?;
                }
            }
            writeln!(out)?;
        }
    }
    out.flush()
}

/// Hits the aggregations could not count, as warnings.
pub(crate) fn loss_warnings(report: &AggregateReport, map_entries: u32) -> Vec<String> {
    let losses = report.losses;
    let mut warnings = Vec::new();
    if losses.map_full > 0 {
        warnings.push(format!(
            "the aggregation map was full ({map_entries} entries): {} hit{} not counted; raise --map-entries",
            losses.map_full,
            plural(losses.map_full as usize)
        ));
    }
    if losses.starts_full > 0 {
        warnings.push(format!(
            "the latency start map was full ({map_entries} entries): {} start{} not recorded; raise --map-entries",
            losses.starts_full,
            plural(losses.starts_full as usize)
        ));
    }
    if losses.unmatched_ends > 0 {
        warnings.push(format!(
            "{} latency end{} had no start (begun before the trace, or not recorded)",
            losses.unmatched_ends,
            plural(losses.unmatched_ends as usize)
        ));
    }
    if report.pending_starts > 0 {
        warnings.push(format!(
            "{} latency start{} had no end yet",
            report.pending_starts,
            plural(report.pending_starts as usize)
        ));
    }
    if losses.faults > 0 {
        warnings.push(format!(
            "{} hit{} skipped: the key (an argument or the user stack) or the value could not be read",
            losses.faults,
            plural(losses.faults as usize)
        ));
    }
    warnings
}

/// The local time of day, `HH:MM:SS`, as bcc's tools head each interval.
fn clock_time() -> String {
    // SAFETY: time(NULL) and localtime_r write only into values we own.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}
