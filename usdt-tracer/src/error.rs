//! Errors of the tracing library.

use std::io;
use std::path::PathBuf;

/// Why tracing could not start or continue. Every message is one line that
/// names what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A probe specification or string request could not be parsed.
    #[error("bad probe `{spec}`: {reason}")]
    BadSpec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string request (`--str`) would read nothing: it matches no traced
    /// probe, or names an argument none of them has.
    #[error("--str {request}: {reason}")]
    UselessStrings {
        /// The request as given.
        request: String,
        /// What it misses.
        reason: String,
    },
    /// The command to run (`-c`) cannot be run as given.
    #[error("cannot run `{command}`: {reason}")]
    BadCommand {
        /// The command as given.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or process could not be read (missing, not ELF, bad notes).
    #[error(transparent)]
    Reader(#[from] usdt_reader::Error),
    /// An aggregation key or argument name could not be parsed.
    #[error("bad key or argument `{text}`: {reason}")]
    BadKey {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A probe pattern matched no probe site.
    #[error("no probe matches `{pattern}` in {scope}")]
    NoMatch {
        /// The pattern as given.
        pattern: String,
        /// Where it was looked for (a path, or a process).
        scope: String,
    },
    /// A function probe names a function the file does not define (or not
    /// as one traceable address).
    #[error("function `{function}` in {path}: {reason}", path = path.display())]
    NoFunction {
        /// The function as given (a symbol or an address).
        function: String,
        /// The file searched.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A site has an argument the tracer cannot read.
    #[error("{provider}:{name} at {address:#x} in {path}: {reason}", path = path.display())]
    Unsupported {
        /// The module holding the site.
        path: PathBuf,
        /// The probe's provider.
        provider: String,
        /// The probe's name.
        name: String,
        /// The site's link-time address.
        address: u64,
        /// What cannot be done.
        reason: String,
    },
    /// The process lacks a capability tracing needs.
    #[error("{0}")]
    Privileges(String),
    /// The traced process does not exist, or exited while the tracer was
    /// attaching.
    #[error("process {pid} {reason}")]
    Process {
        /// The process id.
        pid: u32,
        /// What happened.
        reason: String,
    },
    /// The kernel refused a uprobe or link for a site.
    #[error("cannot attach {provider}:{name} in {path} at file offset {offset:#x}: {source}", path = path.display())]
    Attach {
        /// The module holding the site.
        path: PathBuf,
        /// The probe's provider.
        provider: String,
        /// The probe's name.
        name: String,
        /// The site's file offset.
        offset: u64,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The BPF program or its maps could not be loaded or used.
    #[error("BPF: {0}")]
    Bpf(String),
    /// Any other system failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: io::Error,
    },
}

impl TraceError {
    /// Whether the error is the user's input (bad usage, a missing file or
    /// process, a pattern matching nothing, an unsupported operand) rather
    /// than a failure of the system.
    pub fn is_input(&self) -> bool {
        match self {
            TraceError::BadSpec { .. }
            | TraceError::UselessStrings { .. }
            | TraceError::BadCommand { .. }
            | TraceError::BadKey { .. }
            | TraceError::NoMatch { .. }
            | TraceError::NoFunction { .. }
            | TraceError::Unsupported { .. } => true,
            TraceError::Reader(error) => error.is_bad_input(),
            TraceError::Process { reason, .. } => reason == NO_SUCH_PROCESS,
            _ => false,
        }
    }
}

/// [`TraceError::Process`] reason for a pid that does not exist.
pub(crate) const NO_SUCH_PROCESS: &str = "does not exist";
