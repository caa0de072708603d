//! The `usdt` command: list and trace USDT probes.

mod command;
mod list;
mod trace;

use command as cli;

use clap::Parser;
use clap::error::ErrorKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::Command::try_parse() {
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
                first_line(&error.to_string())
            );
            return ExitCode::from(2);
        }
    };
    match cli::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("usdt: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The first paragraph of a clap error on one line, without its `error: `
/// prefix (the rest is usage and tips).
fn first_line(message: &str) -> String {
    let paragraph: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = paragraph.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}
