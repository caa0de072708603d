//! The `usdt` command: list and trace USDT probes, and export in-kernel
//! aggregations to Prometheus.
//!
//! Exit status: 0 on success, 2 for bad usage or bad input (including a
//! pattern that matches no probe), 1 for any other failure; every failure
//! prints one line on stderr. A trace with `-c` that ends because its
//! command exited gives the command's status instead of 0.

mod error;
mod events;
mod list;
mod report;
mod serve;
mod signals;
mod trace;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// List and trace USDT (sys/sdt.h) probes in ELF files and running processes.
#[derive(Debug, Parser)]
#[command(name = "usdt", version)]
struct Command {
    #[command(subcommand)]
    action: Action,
}

// Parsed once per run: the size of the trace options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Action {
    /// List the probes of ELF files or of a running process.
    List(list::ListArgs),
    /// Attach to probes and print their events.
    Trace(trace::TraceArgs),
    /// Aggregate probe hits in the kernel and export them to Prometheus.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    // First, before any thread or file: with capabilities granted to the
    // `usdt` file, keep only what tracing the user's own processes needs
    // (see usdt_tracer::restricted).
    if let Err(error) = usdt_tracer::restricted::enter() {
        let error = error::CliError::from(error);
        eprintln!("usdt: {error}");
        return ExitCode::from(error.exit_code());
    }
    let command = match Command::try_parse() {
        Ok(command) => command,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // Bad usage: one line, status 2 (clap's own message spans
            // several lines with usage and tips).
            eprintln!(
                "usdt: {}; see `usdt --help`",
                usdt_reader::escape_controls(&first_paragraph(&error.to_string()))
            );
            return ExitCode::from(2);
        }
    };
    let result = match command.action {
        Action::List(args) => list::run(args).map(|()| 0),
        Action::Trace(args) => trace::run(args),
        Action::Serve(args) => serve::run(args).map(|()| 0),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("usdt: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The first paragraph of a clap error on one line, without its `error: `
/// prefix (the rest is usage and tips).
fn first_paragraph(message: &str) -> String {
    let paragraph: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = paragraph.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}
