//! `usdt list`: the probes of ELF files or of a running process.

use crate::error::{CliError, warn};
use serde::Serialize;
use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;
use usdt_reader::{ArgSpec, Probe, ProbePattern, Signature, escape_controls};

/// Arguments of `usdt list`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each OPERAND that names an existing file, or contains a `/`, is a PATH; \
at most one other OPERAND is the PATTERN: `provider:name` with `*` and `?` \
globs in either part, or a bare `name` meaning `*:name`. Without a PATTERN \
every probe is listed; a PATTERN that matches nothing is an error.

Examples:
  usdt list /usr/bin/python3
  usdt list /usr/bin/python3 'python:function__*'
  usdt list --pid 1234 --json")]
pub(crate) struct ListArgs {
    /// List the probes of every ELF module (executable and shared
    /// libraries) that process PID maps, with their runtime addresses.
    #[arg(short = 'p', long, value_name = "PID")]
    pid: Option<u32>,
    /// Print one JSON object per probe site per line.
    #[arg(long)]
    json: bool,
    /// ELF files (PATH...) and an optional probe PATTERN; see below.
    #[arg(value_name = "OPERAND")]
    operands: Vec<String>,
}

/// One probe site to print: the probe and where it was found.
struct Row<'a> {
    path: &'a Path,
    probe: &'a Probe,
    /// With `--pid`: the pid and the module's load bias.
    process: Option<(u32, u64)>,
}

/// Runs `usdt list`.
pub(crate) fn run(args: ListArgs) -> Result<(), CliError> {
    let (paths, pattern) = split_operands(&args.operands)?;
    let pattern_text = pattern.as_ref().map(ToString::to_string);
    let pattern = match &pattern {
        Some(text) => ProbePattern::parse(text).map_err(|e| CliError::Input(e.to_string()))?,
        None => ProbePattern::all(),
    };

    // Read everything before printing anything, so an error leaves no
    // half-written output.
    let mut files = Vec::new();
    let mut modules = Vec::new();
    // Notes (and, with --pid, modules) that could not be read: a warning
    // each, without hiding the rest.
    let mut skipped = Vec::new();
    let scope;
    match args.pid {
        Some(_) if !paths.is_empty() => {
            return Err(CliError::Input(
                "give either PATHs or --pid, not both".into(),
            ));
        }
        Some(pid) => {
            let found = usdt_tracer::restricted::open_process(pid)?.modules_partial()?;
            modules = found.found;
            skipped = found.skipped;
            scope = format!("process {pid}");
        }
        None if paths.is_empty() => {
            return Err(CliError::Input(match &pattern_text {
                Some(text) => format!(
                    "nothing to list: `{text}` is not a file; give one or more PATHs or --pid PID"
                ),
                None => "nothing to list: give one or more PATHs or --pid PID".into(),
            }));
        }
        None => {
            for path in &paths {
                let file = usdt_tracer::restricted::open_file(path)?;
                let probes = file.probes_partial()?;
                let mut errors = probes.skipped.into_iter();
                if probes.found.is_empty() {
                    // Nothing readable: the file is bad as a whole. The
                    // error names the first bad note, warnings the others.
                    if let Some(error) = errors.next() {
                        for other in errors {
                            warn(&format!("skipped: {other}"));
                        }
                        return Err(error.into());
                    }
                }
                skipped.extend(errors);
                files.push((path.as_str(), probes.found));
            }
            scope = paths.join(", ");
        }
    }

    let mut rows = Vec::new();
    for (path, probes) in &files {
        for probe in probes {
            rows.push(Row {
                path: Path::new(path),
                probe,
                process: None,
            });
        }
    }
    for module in &modules {
        for probe in &module.probes {
            rows.push(Row {
                path: &module.path,
                probe,
                process: args.pid.map(|pid| (pid, module.bias)),
            });
        }
    }
    rows.retain(|row| pattern.matches(&row.probe.provider, &row.probe.name));
    for error in &skipped {
        warn(&format!("skipped: {error}"));
    }
    if !args.json {
        // JSON carries the reason in `arg_error`; the table shows the raw
        // operands, so say which ones could not be parsed.
        for row in &rows {
            if let Err(error) = &row.probe.arg_specs {
                warn(&format!("{}: {error}", row.path.display()));
            }
        }
    }
    if let (Some(text), true) = (&pattern_text, rows.is_empty()) {
        return Err(CliError::Input(format!(
            "no probe matches `{text}` in {scope}"
        )));
    }

    if rows.is_empty() {
        // Not an error: a file without probes has an empty list. Say so
        // rather than print a table header alone.
        if !args.json {
            eprintln!("usdt: no probes in {}", escape_controls(&scope));
        }
        return Ok(());
    }

    let output = if args.json {
        json_lines(&rows)?
    } else {
        table(&rows, args.pid.is_some())
    };
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // A reader that stopped early (`usdt list | head`) is not a failure.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(CliError::Failure(format!(
            "cannot write the listing: {error}"
        ))),
    }
}

/// Splits operands into PATHs and at most one PATTERN.
fn split_operands(operands: &[String]) -> Result<(Vec<String>, Option<String>), CliError> {
    let mut paths = Vec::new();
    let mut pattern: Option<String> = None;
    for operand in operands {
        if operand.contains('/') || Path::new(operand).exists() {
            paths.push(operand.clone());
        } else if let Some(first) = &pattern {
            return Err(CliError::Input(format!(
                "`{first}` and `{operand}` are not files, and only one PATTERN may be given"
            )));
        } else {
            pattern = Some(operand.clone());
        }
    }
    Ok((paths, pattern))
}

/// One JSON object per line.
fn json_lines(rows: &[Row<'_>]) -> Result<String, CliError> {
    /// The fields of one line; `pid`, `runtime_address`, `runtime_semaphore`
    /// and `bias` only with `--pid`.
    #[derive(Serialize)]
    struct Line<'a> {
        path: &'a Path,
        provider: &'a str,
        name: &'a str,
        address: u64,
        file_offset: u64,
        semaphore: Option<u64>,
        semaphore_offset: Option<u64>,
        args: &'a str,
        arg_specs: Option<&'a [ArgSpec]>,
        arg_error: Option<String>,
        signature: Option<&'a Signature>,
        signature_text: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        runtime_address: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        runtime_semaphore: Option<Option<u64>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bias: Option<u64>,
    }
    let mut out = Vec::with_capacity(rows.len() * 512);
    for row in rows {
        let probe = row.probe;
        let line = Line {
            path: row.path,
            provider: &probe.provider,
            name: &probe.name,
            address: probe.address,
            file_offset: probe.file_offset,
            semaphore: probe.semaphore,
            semaphore_offset: probe.semaphore_offset,
            args: &probe.args,
            arg_specs: probe.arg_specs.as_deref().ok(),
            arg_error: probe.arg_specs.as_ref().err().map(ToString::to_string),
            signature: probe.signature.as_ref(),
            signature_text: probe.signature.as_ref().map(ToString::to_string),
            pid: row.process.map(|(pid, _)| pid),
            runtime_address: row
                .process
                .map(|(_, bias)| probe.address.wrapping_add(bias)),
            runtime_semaphore: row
                .process
                .map(|(_, bias)| probe.semaphore.map(|s| s.wrapping_add(bias))),
            bias: row.process.map(|(_, bias)| bias),
        };
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| CliError::Failure(format!("cannot encode JSON: {e}")))?;
        out.push(b'\n');
    }
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|e| CliError::Failure(format!("cannot encode JSON: {e}")))
}

/// An aligned table with a header line.
fn table(rows: &[Row<'_>], with_runtime: bool) -> String {
    // With --pid the semaphore is shown at its runtime address too, as
    // RUNTIME shows the site's.
    let mut header = vec!["PATH", "PROVIDER", "NAME", "ADDRESS"];
    if with_runtime {
        header.extend(["RUNTIME", "RUNTIME_SEMAPHORE"]);
    } else {
        header.push("SEMAPHORE");
    }
    header.push("ARGS");
    let columns = header.len();
    // Cells row by row, flattened, borrowing what they can.
    let mut cells: Vec<Cow<'_, str>> = header.iter().map(|h| Cow::Borrowed(*h)).collect();
    for row in rows {
        let probe = row.probe;
        cells.push(row.path.to_string_lossy());
        cells.push(Cow::Borrowed(&probe.provider));
        cells.push(Cow::Borrowed(&probe.name));
        cells.push(Cow::Owned(format!("{:#x}", probe.address)));
        let bias = row.process.map_or(0, |(_, bias)| bias);
        if row.process.is_some() {
            cells.push(Cow::Owned(format!(
                "{:#x}",
                probe.address.wrapping_add(bias)
            )));
        }
        cells.push(match probe.semaphore {
            Some(address) => Cow::Owned(format!("{:#x}", address.wrapping_add(bias))),
            None => Cow::Borrowed("-"),
        });
        cells.push(match (&probe.signature, &probe.arg_specs) {
            (Some(signature), _) => Cow::Owned(signature.to_string()),
            // The raw operands, marked: the warning on stderr says why.
            (None, Err(_)) => Cow::Owned(format!("{} (unparsed)", probe.args)),
            (None, Ok(_)) => Cow::Borrowed(&probe.args),
        });
    }
    // Names, operands and paths come from the files: print no control
    // character of theirs.
    let cells: Vec<Cow<'_, str>> = cells
        .into_iter()
        .map(|cell| match escape_controls(&cell) {
            Cow::Borrowed(_) => cell,
            Cow::Owned(escaped) => Cow::Owned(escaped),
        })
        .collect();
    let width = |cell: &str| {
        if cell.is_ascii() {
            cell.len()
        } else {
            cell.chars().count()
        }
    };
    let mut widths = vec![0; columns];
    for (i, cell) in cells.iter().enumerate() {
        widths[i % columns] = widths[i % columns].max(width(cell));
    }
    let line_width: usize = widths.iter().map(|w| w + 2).sum();
    let mut out = String::with_capacity(line_width * (rows.len() + 1));
    for line in cells.chunks(columns) {
        let start = out.len();
        for (c, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < columns {
                let pad = widths[c] - width(cell) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        // No trailing spaces when the last cells are empty.
        let trimmed = out[start..].trim_end().len();
        out.truncate(start + trimmed);
        out.push('\n');
    }
    out
}
