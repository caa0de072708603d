//! A command's failure and the exit status it maps to.

use std::error::Error;
use std::fmt;
use usdt_reader::escape_controls;
use usdt_tracer::TraceError;

/// A failure of a command: its one-line message and whether it is the
/// user's input.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad usage or bad input: exit status 2.
    Input(String),
    /// Any other failure: exit status 1.
    Failure(String),
}

impl CliError {
    /// The process exit status for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
        }
    }
}

/// `error` and its sources on one line: `message: source: source...`.
pub(crate) fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // A message may already end with what its source says.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

impl From<usdt_reader::Error> for CliError {
    /// A missing, unreadable or malformed file and a pid that does not exist
    /// are bad input (2); anything else is a failure (1).
    fn from(error: usdt_reader::Error) -> CliError {
        if error.is_bad_input() {
            CliError::Input(one_line(&error))
        } else {
            CliError::Failure(one_line(&error))
        }
    }
}

impl From<TraceError> for CliError {
    /// The user's input is exit status 2; the system's failures 1.
    fn from(error: TraceError) -> CliError {
        if error.is_input() {
            CliError::Input(one_line(&error))
        } else {
            CliError::Failure(one_line(&error))
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (CliError::Input(message) | CliError::Failure(message)) = self;
        // One line, whatever the underlying error printed, and no control
        // character from a file's names or a path.
        f.write_str(&escape_controls(&message.replace('\n', "; ")))
    }
}

/// Prints `usdt: warning: MESSAGE` on stderr, one line: the message may
/// quote a file's names or paths, so its control characters are escaped.
pub(crate) fn warn(message: &str) {
    eprintln!("usdt: warning: {}", escape_controls(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn messages_carry_their_sources_on_one_line() {
        let error = TraceError::Io {
            context: "cannot read the memory of process 7".into(),
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        let cli = CliError::from(error);
        assert_eq!(cli.exit_code(), 1);
        assert_eq!(
            cli.to_string(),
            "cannot read the memory of process 7: Input/output error (os error 5)"
        );
        let cli = CliError::from(TraceError::NoSuchProcess { pid: 9 });
        assert_eq!(
            (cli.exit_code(), cli.to_string().as_str()),
            (2, "process 9 does not exist")
        );
    }
}
