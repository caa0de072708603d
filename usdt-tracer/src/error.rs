//! Errors of the tracing library.

use std::io;
use std::path::PathBuf;

/// Why tracing could not start or continue.
///
/// Each message is one line naming what failed and where; the underlying
/// failure, where there is one, is the error's [`source`], so a caller
/// prints the whole chain (`message: source: source...`) or matches on the
/// variant and its source (a verifier rejection, a missing map and a
/// kernel refusal are different variants).
///
/// [`source`]: std::error::Error::source
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A filter expression does not parse, or does not fit a traced
    /// probe's arguments.
    #[error("bad filter `{filter}` at column {column}: {reason}")]
    BadFilter {
        /// The expression as given.
        filter: String,
        /// Where the problem is (1-based, in characters).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The entry limit of the aggregation maps is out of range (see
    /// [`MAX_MAP_ENTRIES`](crate::MAX_MAP_ENTRIES)).
    #[error("aggregation maps of {entries} entries {reason}")]
    MapEntries {
        /// The limit given.
        entries: u32,
        /// What is wrong with it, after the maps as subject ("need at
        /// least one entry").
        reason: String,
    },
    /// A probe pattern matched no probe site; the notes, records or
    /// modules left out as unreadable may be why.
    #[error("no probe matches `{pattern}` in {scope}{}", skipped_suffix(skipped))]
    NoMatch {
        /// The pattern as given.
        pattern: String,
        /// Where it was looked for (a path, or a process).
        scope: String,
        /// Why each note, record or module read so far was left out.
        skipped: Vec<String>,
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
    /// The tracer runs only on hosts whose registers it knows.
    #[error("the tracer supports x86-64 and aarch64 hosts only")]
    UnsupportedHost,
    /// The running kernel lacks something tracing needs.
    #[error("this kernel {missing}")]
    KernelFeature {
        /// What it lacks, as a phrase ("has no uprobe PMU").
        missing: String,
    },
    /// The process lacks a capability tracing needs.
    #[error("{reason}")]
    Privileges {
        /// Which capability is missing and what for.
        reason: String,
    },
    /// Restricted mode (capabilities granted to the program file, see
    /// [`crate::restricted`]) refuses what would reach beyond the invoking
    /// user's own processes.
    #[error("restricted mode refuses {refused}: {reason}")]
    Restricted {
        /// What is refused: a probe, a process.
        refused: String,
        /// Why, and the rule.
        reason: String,
    },
    /// The process to trace does not exist (or has exited and waits to be
    /// reaped).
    #[error("process {pid} does not exist")]
    NoSuchProcess {
        /// The process id.
        pid: u32,
    },
    /// The attach was given up: the flag passed to
    /// [`Tracer::attach_until`](crate::Tracer::attach_until) was set.
    /// Nothing stays attached.
    #[error("attaching was cancelled")]
    Cancelled,
    /// The traced process exited while the tracer was attaching.
    #[error("process {pid} exited while the tracer was attaching")]
    ProcessExited {
        /// The process id.
        pid: u32,
    },
    /// The traced process does not map a file the tracer expected in it.
    #[error("process {pid} does not map {path}", path = path.display())]
    NotMapped {
        /// The process id.
        pid: u32,
        /// The file.
        path: PathBuf,
    },
    /// The kernel refused a uprobe or link for a site.
    #[error("cannot attach {provider}:{name} in {path} at file offset {offset:#x}", path = path.display())]
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
        #[source]
        source: io::Error,
    },
    /// The embedded BPF object could not be loaded (its maps created).
    #[error("cannot load the BPF object")]
    Load(#[source] aya::EbpfError),
    /// The BPF object is not what `tracer-ebpf` builds.
    #[error("bad BPF object: {reason}")]
    BadObject {
        /// What is wrong with it.
        reason: String,
    },
    /// The BPF object lacks a map or program the tracer uses.
    #[error("the BPF object has no {what} `{name}`")]
    Missing {
        /// `map` or `program`.
        what: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The kernel's verifier rejected the BPF program.
    #[error("the kernel rejected the BPF program: {reason}")]
    Rejected {
        /// The verifier's verdict: the rejected instruction and the
        /// messages after it, on one line.
        reason: String,
        /// The whole verifier log.
        log: String,
        /// The system call's error.
        #[source]
        source: io::Error,
    },
    /// The BPF program could not be loaded or used for another reason.
    #[error("BPF program `{program}`")]
    Program {
        /// The program's name.
        program: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A BPF map could not be opened, read or written.
    #[error("BPF map `{map}`: cannot {action}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What was being done ("store a site plan").
        action: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Any other system failure.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl TraceError {
    /// Whether the error is the user's input (bad usage, a missing file or
    /// process, a pattern matching nothing, an unsupported operand, what
    /// restricted mode refuses) rather than a failure of the system.
    pub fn is_input(&self) -> bool {
        match self {
            TraceError::BadSpec { .. }
            | TraceError::UselessStrings { .. }
            | TraceError::BadCommand { .. }
            | TraceError::BadKey { .. }
            | TraceError::BadFilter { .. }
            | TraceError::MapEntries { .. }
            | TraceError::NoMatch { .. }
            | TraceError::NoFunction { .. }
            | TraceError::Unsupported { .. }
            | TraceError::Restricted { .. }
            | TraceError::NoSuchProcess { .. } => true,
            TraceError::Reader(error) => error.is_bad_input(),
            _ => false,
        }
    }

    /// Whether a process that exits while the tracer attaches can cause
    /// the error: its files under `/proc/PID` vanish (reading them fails,
    /// its modules and so its probes are no longer found, uprobes on them
    /// are refused, its memory cannot be written).
    pub(crate) fn may_come_from_an_exit(&self) -> bool {
        matches!(
            self,
            TraceError::Reader(_)
                | TraceError::NoMatch { .. }
                | TraceError::NoFunction { .. }
                | TraceError::NoSuchProcess { .. }
                | TraceError::NotMapped { .. }
                | TraceError::Attach { .. }
                | TraceError::Io { .. }
        )
    }

    /// A [`TraceError::Rejected`] from the kernel's answer to a program
    /// load and the verifier's log.
    pub(crate) fn rejected(source: io::Error, log: String) -> TraceError {
        TraceError::Rejected {
            reason: verifier_reason(&log),
            log,
            source,
        }
    }

    /// The error for a failed program load: a verifier rejection keeps the
    /// log; anything else keeps aya's error.
    pub(crate) fn program(
        program: &'static str,
        source: aya::programs::ProgramError,
    ) -> TraceError {
        match source {
            aya::programs::ProgramError::LoadError {
                io_error,
                verifier_log,
            } => TraceError::rejected(io_error, verifier_log.to_string()),
            source => TraceError::Program { program, source },
        }
    }
}

/// Why the verifier refused a program, from its log: the rejected
/// instruction and the messages after it (the lines before the final
/// `processed N insns` statistics), on one line.
fn verifier_reason(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let end = lines
        .iter()
        .rposition(|l| l.starts_with("processed "))
        .unwrap_or(lines.len());
    lines[end.saturating_sub(3)..end].join("; ")
}

/// The end of [`TraceError::NoMatch`]'s message: the first thing left out
/// and how many more were.
fn skipped_suffix(skipped: &[String]) -> String {
    match skipped {
        [] => String::new(),
        [first] => format!("; skipped: {first}"),
        [first, rest @ ..] => format!("; skipped: {first} (and {} more)", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::verifier_reason;

    #[test]
    fn verifier_reasons_name_the_instruction_and_the_message() {
        let log = "0: R1=ctx() R10=fp0
4026: (71) r1 = *(u8 *)(r0 +32)
invalid access to map value, value_size=304 off=312 size=1
R0 max value is outside of the allowed memory range
processed 227 insns (limit 1000000) max_states_per_insn 0 total_states 20 peak_states 20 mark_read 0
";
        assert_eq!(
            verifier_reason(log),
            "4026: (71) r1 = *(u8 *)(r0 +32); invalid access to map value, value_size=304 off=312 size=1; R0 max value is outside of the allowed memory range"
        );
        assert_eq!(verifier_reason(""), "");
        assert_eq!(verifier_reason("one line"), "one line");
    }
}
