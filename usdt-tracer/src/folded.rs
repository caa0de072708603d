//! Hit counts by stack as folded stacks (`root;...;leaf COUNT`, one line a
//! stack, the format flamegraph.pl and inferno read) and as a flame graph
//! drawn by inferno. Files are written whole or not at all: into a
//! temporary file beside the target, renamed over it once complete.

use crate::report::{AggregateReport, AggregateResult};
use crate::stack::StackFrame;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The folded stacks of every count by stack in `report`, every probe's
/// together: frames outermost first, each its symbol (`0x...` when
/// unknown), then the count; stacks that fold to the same line are added
/// up. Lines are sorted.
pub fn folded_lines(report: &AggregateReport) -> Vec<String> {
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    for result in &report.results {
        let AggregateResult::Hits { counts, .. } = result else {
            continue;
        };
        for row in counts {
            if let Some(stack) = &row.stack
                && row.count > 0
            {
                *folded.entry(fold(stack)).or_default() += row.count;
            }
        }
    }
    folded
        .into_iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}

/// A stack's frames, outermost first, joined by `;`.
fn fold(stack: &[StackFrame]) -> String {
    if stack.is_empty() {
        return "[stack lost]".to_owned();
    }
    let names: Vec<String> = stack
        .iter()
        .rev()
        .map(|frame| match &frame.symbol {
            // `;` separates frames and a line break ends the stack.
            Some(symbol) => symbol.replace([';', '\n', '\r'], "_"),
            None => format!("{:#x}", frame.address),
        })
        .collect();
    names.join(";")
}

/// Writes the folded stacks of `report` ([`folded_lines`]) to `path`.
pub fn write_folded(report: &AggregateReport, path: &Path) -> io::Result<()> {
    write_whole(path, |out| {
        for line in folded_lines(report) {
            writeln!(out, "{line}")?;
        }
        Ok(())
    })
}

/// Draws the flame graph of the folded stacks of `report` with inferno,
/// titled `title`, as an SVG file at `path`; nothing is written when no
/// stack was counted (an error says so).
pub fn write_flamegraph(report: &AggregateReport, path: &Path, title: &str) -> io::Result<()> {
    let lines = folded_lines(report);
    if lines.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no stack was counted",
        ));
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "hits".to_owned();
    write_whole(path, |out| {
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
            .map_err(io::Error::other)
    })
}

/// Writes `path` through `write`: into a temporary file in its directory,
/// renamed to `path` once whole, removed on failure.
fn write_whole(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut temporary = name.to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let result = (|| {
        let mut out = BufWriter::new(std::fs::File::create(&temporary)?);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
