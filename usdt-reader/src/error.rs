//! The errors of reading files and processes.

use crate::note::NoteError;
use crate::types::TypesError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why a file or process could not be read. Every variant names the file
/// (or process) and, where it applies, the offset or probe at fault; the
/// message is one line. `Debug` prints the same line, so that `unwrap()` in
/// a test and `main() -> Result<(), Error>` show it.
#[derive(Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The path names a directory, device or other non-regular file.
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The file does not start with the ELF magic number.
    #[error("{}: not an ELF file", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// The ELF headers are inconsistent or point past the end of the file.
    #[error("{}: malformed ELF file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with offsets where known.
        reason: String,
    },
    /// A relocatable object (`.o`): its probe addresses are not final.
    #[error("{}: relocatable object file: probe addresses are final only after linking", path.display())]
    Relocatable {
        /// The file.
        path: PathBuf,
    },
    /// A stapsdt note is malformed.
    #[error("{}: .note.stapsdt at file offset {section_offset:#x}: {source}", path.display())]
    Note {
        /// The file.
        path: PathBuf,
        /// File offset of the `.note.stapsdt` section (note offsets in
        /// `source` are relative to it).
        section_offset: u64,
        /// What is wrong with the note.
        #[source]
        source: NoteError,
    },
    /// A `.usdt.types` record is malformed.
    #[error("{}: .usdt.types at file offset {section_offset:#x}: {source}", path.display())]
    Types {
        /// The file.
        path: PathBuf,
        /// File offset of the `.usdt.types` section.
        section_offset: u64,
        /// What is wrong with the record.
        #[source]
        source: TypesError,
    },
    /// A probe site or semaphore lies outside every loadable segment, so no
    /// file offset exists for it.
    #[error("{}: the {what} of probe {probe} at {address:#x} is outside every loadable segment", path.display())]
    OutsideSegments {
        /// The file.
        path: PathBuf,
        /// `provider:name`.
        probe: String,
        /// `site` or `semaphore`.
        what: &'static str,
        /// The address.
        address: u64,
    },
    /// A probe site lies in no executable segment, past the start of the
    /// file's code (a note the linker left for discarded code lies before
    /// it, and is left out silently): there is no instruction to probe.
    #[error("{}: the site of probe {probe} at {address:#x} is in no executable segment", path.display())]
    NotCode {
        /// The file.
        path: PathBuf,
        /// `provider:name`.
        probe: String,
        /// The site's address.
        address: u64,
    },
    /// A `.usdt.types` record disagrees with its note about the number of
    /// note arguments.
    #[error("{}: probe {probe} at {pc:#x}: its type record takes {slots} note arguments but the note has {args}", path.display())]
    SignatureMismatch {
        /// The file.
        path: PathBuf,
        /// `provider:name`.
        probe: String,
        /// The site's link-time pc.
        pc: u64,
        /// Note arguments the signature needs.
        slots: usize,
        /// Note arguments the note has.
        args: usize,
    },
    /// The running executable has no probes: in a binary crate, the test
    /// binary that asked does not link `main` or the probes it reaches.
    #[error(
        "{}: this executable has no USDT probes; in a binary crate, tests do not link `main` and the probes it reaches: snapshot the program itself with `usdt_reader::snapshot::of_file(env!(\"CARGO_BIN_EXE_<name>\"))` in an integration test (tests/*.rs)",
        path.display()
    )]
    NoProbesInExecutable {
        /// The executable.
        path: PathBuf,
    },
    /// No process has this pid.
    #[error("process {pid} does not exist")]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
    /// A file of `/proc/PID` could not be read.
    #[error("process {pid}: cannot read {}: {source}", path.display())]
    Process {
        /// The pid.
        pid: u32,
        /// The file under `/proc/PID`.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A line of `/proc/PID/maps` does not parse.
    #[error("process {pid}: unexpected line in /proc/{pid}/maps: `{line}`")]
    BadMaps {
        /// The pid.
        pid: u32,
        /// The line.
        line: String,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// Whether the error is about the input itself (a missing, unreadable,
    /// non-ELF or malformed file, a path that can name no file: a loop of
    /// symbolic links, a file taken for a directory, a name too long; a
    /// pid that does not exist) rather than a failure of the system while
    /// reading good input. Command lines map the first to exit status 2
    /// and the rest to 1.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                matches!(
                    source.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::InvalidInput
                        | io::ErrorKind::NotADirectory
                        | io::ErrorKind::InvalidFilename
                ) || source.raw_os_error() == Some(libc::ELOOP)
            }
            Error::Process { .. } => false,
            _ => true,
        }
    }
}
