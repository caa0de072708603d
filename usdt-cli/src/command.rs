//! Command-line front end: argument definitions and dispatch.
//!
//! Exit status: 0 on success, 2 for bad usage or bad input (including a
//! pattern that matches no probe), 1 for any other failure; every failure
//! prints one line on stderr.

use crate::{list, trace};
use clap::{Parser, Subcommand};
use std::fmt;

/// List and trace USDT (sys/sdt.h) probes in ELF files and running processes.
#[derive(Debug, Parser)]
#[command(name = "usdt", version)]
pub struct Command {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the probes of ELF files or of a running process.
    List(list::ListArgs),
    /// Attach to probes and print their events.
    Trace(trace::TraceArgs),
}

/// Runs one parsed command line.
pub fn run(command: Command) -> Result<(), CliError> {
    match command.action {
        Action::List(args) => list::run(args),
        Action::Trace(args) => trace::run(args),
    }
}

/// A failure of a command, with the exit status it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Bad usage or bad input: exit status 2.
    Input(String),
    /// Any other failure: exit status 1.
    Failure(String),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
        }
    }
}

impl From<usdt_reader::Error> for CliError {
    /// A missing, unreadable or malformed file and a pid that does not exist
    /// are bad input (2); anything else is a failure (1).
    fn from(error: usdt_reader::Error) -> CliError {
        if error.is_bad_input() {
            CliError::Input(error.to_string())
        } else {
            CliError::Failure(error.to_string())
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (CliError::Input(message) | CliError::Failure(message)) = self;
        // One line, whatever the underlying error printed.
        f.write_str(&message.replace('\n', "; "))
    }
}
