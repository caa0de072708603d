//! The `usdt` command: list and trace USDT probes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = cli::Command::parse();
    match cli::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("usdt: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
