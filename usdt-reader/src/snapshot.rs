//! Probe metadata in a stable form for an application's own snapshot tests.
//!
//! Addresses, registers and stack offsets change with every build; what an
//! application means to keep stable is which probes it has, their argument
//! sizes and types, and whether they are guarded. [`current_exe`] returns
//! exactly that, sorted and deduplicated (one entry per distinct probe
//! shape, however many call sites share it), ready for
//! `insta::assert_yaml_snapshot!`:
//!
//! ```no_run
//! // A library crate's unit test: its test binary is built from the code
//! // that holds the probes.
//! #[test]
//! fn probe_metadata() {
//!     let probes = usdt_reader::snapshot::current_exe().unwrap();
//!     insta::assert_yaml_snapshot!(probes);
//! }
//! ```
//!
//! A binary crate's tests do not link `main` or the probes it reaches (so
//! [`current_exe`] fails there, saying so); an integration test
//! (`tests/probes.rs`) reads the built program instead, whose path cargo
//! gives as `CARGO_BIN_EXE_<name>`:
//!
//! ```ignore
//! #[test]
//! fn probe_metadata() {
//!     let probes = usdt_reader::snapshot::of_file(env!("CARGO_BIN_EXE_my-app")).unwrap();
//!     insta::assert_yaml_snapshot!(probes);
//! }
//! ```
//!
//! which records entries such as the one below, where `args` lists the
//! five note arguments of the three Rust ones: `id`, then each `&str` as a
//! (pointer, length) pair:
//!
//! ```yaml
//! - provider: http
//!   name: request_start
//!   semaphore: true
//!   args: [u64, u64, u64, u64, u64]
//!   signature: "(id: u64, method: &str, path: &str)"
//! ```

use crate::args::split_args;
use crate::elf::ElfFile;
use crate::error::Error;
use crate::probe::Probe;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// One probe as a snapshot records it: no addresses, no registers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ProbeSnapshot {
    /// The provider name.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// Whether the probe has a semaphore.
    pub semaphore: bool,
    /// Each note argument's size and sign as a type name: `u8`..`u64`,
    /// `i8`..`i64`, `f32`/`f64` for floating point, `?` when unreadable.
    pub args: Vec<String>,
    /// The typed signature (`(id: u64, method: &str)`), when the site has
    /// one.
    pub signature: Option<String>,
}

impl ProbeSnapshot {
    /// The snapshot form of `probe`.
    pub fn of(probe: &Probe) -> ProbeSnapshot {
        ProbeSnapshot {
            provider: probe.provider.clone(),
            name: probe.name.clone(),
            semaphore: probe.semaphore.is_some(),
            args: split_args(&probe.args)
                .into_iter()
                .map(type_of_word)
                .collect(),
            signature: probe.signature.as_ref().map(ToString::to_string),
        }
    }
}

/// `-4@...` → `i32`, `8@...` → `u64`, `8f@...` → `f64`.
fn type_of_word(word: &str) -> String {
    let Some((size, _)) = word.split_once('@') else {
        return "?".into();
    };
    let (signed, size) = match size.strip_prefix('-') {
        Some(size) => (true, size),
        None => (false, size),
    };
    let (float, size) = match size.strip_suffix('f') {
        Some(size) => (true, size),
        None => (false, size),
    };
    let bits = match size {
        "1" => 8,
        "2" => 16,
        "4" => 32,
        "8" => 64,
        _ => return "?".into(),
    };
    let letter = if float {
        'f'
    } else if signed {
        'i'
    } else {
        'u'
    };
    format!("{letter}{bits}")
}

/// The sorted, deduplicated snapshot entries of `probes`.
pub fn of_probes(probes: &[Probe]) -> Vec<ProbeSnapshot> {
    probes
        .iter()
        .map(ProbeSnapshot::of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The snapshot entries of the ELF file at `path`.
pub fn of_file(path: impl AsRef<Path>) -> Result<Vec<ProbeSnapshot>, Error> {
    Ok(of_probes(&ElfFile::open(path)?.probes()?))
}

/// The snapshot entries of the running executable (a test binary, when
/// called from a test): one call for `insta::assert_yaml_snapshot!`. For a
/// library crate's unit tests, built from the code that holds its probes.
///
/// An executable without probes is an error
/// ([`Error::NoProbesInExecutable`]), not an empty snapshot: the tests of a
/// binary crate do not link `main` or the probes it reaches, so there the
/// program itself is the file to read, with [`of_file`] and the path cargo
/// gives integration tests, `env!("CARGO_BIN_EXE_<name>")`.
pub fn current_exe() -> Result<Vec<ProbeSnapshot>, Error> {
    let path = std::env::current_exe().map_err(|source| Error::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let probes = of_file(&path)?;
    if probes.is_empty() {
        return Err(Error::NoProbesInExecutable { path });
    }
    Ok(probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executable_without_probes_is_an_error() {
        // This test binary has no probes, as a binary crate's tests have
        // none when the probes are only reachable from `main`.
        let error = current_exe().unwrap_err();
        assert!(
            matches!(error, Error::NoProbesInExecutable { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("of_file(env!(\"CARGO_BIN_EXE_<name>\"))"),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }

    #[test]
    fn types_of_words() {
        assert_eq!(type_of_word("-4@%edi"), "i32");
        assert_eq!(type_of_word("8@-8(%rbp)"), "u64");
        assert_eq!(type_of_word("1@$1"), "u8");
        assert_eq!(type_of_word("-2@x0"), "i16");
        assert_eq!(type_of_word("8f@%xmm0"), "f64");
        assert_eq!(type_of_word("4f@[sp, 8]"), "f32");
        assert_eq!(type_of_word("%eax"), "?");
        assert_eq!(type_of_word("3@%eax"), "?");
    }
}
