//! Read USDT probes from ELF files and running processes.
//!
//! USDT probes — the `DTRACE_PROBEn` / `STAP_PROBEn` macros of C's
//! `<sys/sdt.h>`, and this SDK's Rust macros — leave one
//! `.note.stapsdt` ELF note per probe site. This crate reads them from any
//! ELF file (32- or 64-bit, either byte order, executables, shared
//! libraries, stripped or not) and from every module a running process
//! maps:
//!
//! ```no_run
//! use usdt_reader::{ElfFile, ProbePattern};
//!
//! let file = ElfFile::open("/usr/bin/python3")?;
//! let pattern = ProbePattern::parse("python:function__*")?;
//! for probe in file.probes()? {
//!     if pattern.matches(&probe.provider, &probe.name) {
//!         println!("{} at {:#x} (file offset {:#x}): {}",
//!             probe.qualified_name(), probe.address, probe.file_offset, probe.args);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For each site it gives the address (after the `.stapsdt.base`
//! adjustment), the file offset a uprobe is placed at, the semaphore's
//! address and file offset (the kernel's `ref_ctr_offset`), the raw
//! argument string, the arguments parsed into [`ArgSpec`]s (size, sign and
//! [`ArgLocation`]: register, memory, fixed address or constant) for
//! x86-64, i386, aarch64, arm, riscv64, s390x and powerpc64, and the typed
//! [`Signature`] that this SDK's macros record in `.usdt.types`.
//!
//! [`Process`] finds every ELF module of a running process through
//! `/proc/PID/maps` and `/proc/PID/root` (so processes in containers work),
//! with the load bias that turns link-time addresses into runtime ones.
//! [`snapshot`] gives applications a stable form of their own probes for
//! snapshot tests.
//!
//! The parsers borrow from their input and never panic on malformed bytes:
//! [`note::Notes`] walks note sections, [`types::TypeRecords`] walks type
//! records and [`parse_args`] parses argument strings, each with typed
//! errors.

#![deny(missing_docs)]

mod arch;
mod args;
mod bytes;
mod elf;
mod error;
mod escape;
pub mod note;
mod pattern;
mod probe;
mod process;
mod register;
pub mod snapshot;
pub mod types;

pub use arch::Arch;
pub use args::{
    ArgError, ArgErrorKind, ArgLocation, ArgSpec, Index, IndexExtend, NoSymbols, SymbolError,
    SymbolResolver, parse_arg, parse_args, split_args,
};
pub use bytes::{Endian, Layout};
pub use elf::{ElfFile, FunctionSymbol, Partial, Segment};
pub use error::Error;
pub use escape::escape_controls;
pub use note::is_valid_name;
pub use pattern::{PatternError, ProbePattern};
pub use probe::Probe;
pub use process::{Mapping, Module, Process};
pub use register::Register;
pub use types::{ArgKind, Signature, TypedArg};
