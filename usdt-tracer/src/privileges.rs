//! The capabilities tracing needs, checked before touching the kernel so a
//! missing one is reported by name.
//!
//! Loading the BPF program, creating its maps and opening uprobes (perf
//! events or `uprobe_multi` links) need CAP_BPF and CAP_PERFMON; the map
//! descriptors come from the loader, so CAP_SYS_ADMIN (which covers both)
//! is not needed. Tracing a running process (`--pid`) also reads its
//! memory maps and files through `/proc/PID` and may write its semaphores
//! through `/proc/PID/mem`: the kernel allows that to a process of the same
//! user holding every capability the target holds (and, where Yama's
//! `ptrace_scope` is 1 or more, only to its ancestors), and to any process
//! with CAP_SYS_PTRACE otherwise. A command started with `-c` is the tracer's own
//! child and needs nothing more. With capabilities granted to the program
//! file, the same check is made with the invoking user's own rights and
//! decides alone (see [`crate::restricted`]).

use crate::error::TraceError;
use crate::features::KernelFeatures;
use crate::restricted;
use rustix::thread::{self, CapabilitySet, CapabilitySets};
use std::io;

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What tracing needs, as the messages say it.
const NEEDED: &str = "tracing needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN";

/// Checks that this process may load BPF tracing programs (CAP_BPF) and
/// open uprobe perf events (CAP_PERFMON), or has CAP_SYS_ADMIN, which
/// covers both on any kernel.
pub(crate) fn check() -> Result<(), TraceError> {
    missing(effective()?).map_or(Ok(()), |reason| Err(TraceError::Privileges { reason }))
}

/// Checks that process `pid` exists and that this process may read and
/// write its memory (what `--pid` does), naming CAP_SYS_PTRACE when the
/// kernel refuses for want of it, or refusing the process in restricted
/// mode (the kernel's ptrace access check with the invoking user's own
/// rights, see [`crate::restricted`]).
pub(crate) fn check_process(pid: u32) -> Result<(), TraceError> {
    // Through a running thread when the main thread has exited.
    let process = match usdt_reader::Process::open(pid) {
        Ok(process) => process,
        Err(usdt_reader::Error::NoSuchProcess { .. }) => {
            return Err(TraceError::NoSuchProcess { pid });
        }
        Err(error) => return Err(error.into()),
    };
    match std::fs::File::open(process.dir().join("mem")) {
        Ok(_) => Ok(()),
        // ESRCH: it has exited and waits to be reaped.
        Err(error)
            if error.kind() == io::ErrorKind::NotFound
                || error.raw_os_error() == Some(libc::ESRCH) =>
        {
            Err(TraceError::NoSuchProcess { pid })
        }
        Err(error) if matches!(error.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            if restricted::enter()? {
                // This process has no capability left that could help.
                return Err(restricted::refuse_process(pid));
            }
            let has_ptrace = effective()? & (1 << CAP_SYS_PTRACE) != 0;
            let reason = if has_ptrace {
                format!("cannot read the memory of process {pid}: {error}")
            } else {
                format!(
                    "missing capability CAP_SYS_PTRACE: reading the memory of process {pid} needs it (the process belongs to another user, holds capabilities this one lacks, or Yama's ptrace_scope{} forbids it)",
                    yama_scope()
                        .map(|scope| format!(" = {scope}"))
                        .unwrap_or_default()
                )
            };
            Err(TraceError::Privileges { reason })
        }
        Err(source) => Err(TraceError::Io {
            context: format!("cannot read the memory of process {pid}"),
            source,
        }),
    }
}

/// Yama's `ptrace_scope`, where the kernel has Yama: 1 and above restrict
/// reading another process's memory to its ancestors or CAP_SYS_PTRACE.
fn yama_scope() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The effective capability set of this process.
fn effective() -> Result<u64, TraceError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| TraceError::Io {
        context: "cannot read /proc/self/status".into(),
        source,
    })?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0))
}

/// The message for an effective capability set that cannot trace, or
/// `None` when it can.
fn missing(effective: u64) -> Option<String> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let lacking: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(format!(
        "missing capability {} ({NEEDED}): run as root or grant them",
        lacking.join(" and ")
    ))
}

/// Drops every capability this process holds except those attaching
/// probes again needs, and returns the names of those it kept (those of
/// CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH and, on a kernel without
/// uprobe_multi links, CAP_SYS_ADMIN that it held).
///
/// For a long-running tracer that attaches again later (`usdt serve`
/// reloads its configuration and follows replaced files), called once the
/// first attach is done: the memory-lock limit is raised by then, so
/// CAP_SYS_RESOURCE can go. CAP_DAC_READ_SEARCH reads the target files and
/// the directories above them whoever owns them; CAP_SYS_ADMIN is the only
/// capability the kernel accepts for a uprobe perf event. Everything else
/// (CAP_DAC_OVERRIDE, CAP_SYS_PTRACE, CAP_NET_ADMIN, CAP_SETUID, ...) goes
/// from the effective, permitted, inheritable and ambient sets, and from
/// the bounding set where this process may change it, so no thread can
/// take it back. Capabilities are per thread: call it before starting
/// threads. A process running as root still owns root's files.
pub fn retain_tracing_capabilities() -> Result<Vec<&'static str>, TraceError> {
    let mut kept = CapabilitySet::BPF | CapabilitySet::PERFMON | CapabilitySet::DAC_READ_SEARCH;
    if !KernelFeatures::get().multi_links {
        kept |= CapabilitySet::SYS_ADMIN;
    }
    let now = keep_only(kept).map_err(|source| TraceError::Io {
        context: "cannot drop capabilities".into(),
        source,
    })?;
    Ok([
        (CapabilitySet::BPF, "CAP_BPF"),
        (CapabilitySet::PERFMON, "CAP_PERFMON"),
        (CapabilitySet::DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        (CapabilitySet::SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(cap, _)| now.contains(*cap))
    .map(|(_, name)| name)
    .collect())
}

/// Leaves this thread with the capabilities of `kept` it has permitted,
/// effective and permitted, and no other anywhere: the inheritable and
/// ambient sets are emptied, and the bounding set loses every other
/// capability when CAP_SETPCAP is permitted. Returns the permitted set
/// after the change, checked rather than trusted.
pub(crate) fn keep_only(kept: CapabilitySet) -> io::Result<CapabilitySet> {
    let caps = thread::capabilities(None)?;
    if caps.permitted.contains(CapabilitySet::SETPCAP) {
        // Changing the bounding set takes CAP_SETPCAP in the effective set
        // (after a setuid program's change of ids, only in the permitted).
        thread::set_capabilities(
            None,
            CapabilitySets {
                effective: caps.permitted,
                ..caps
            },
        )?;
        for bit in 0..64 {
            let cap = CapabilitySet::from_bits_retain(1 << bit);
            if !kept.contains(cap) {
                // EINVAL: past the kernel's last capability.
                let _ = thread::remove_capability_from_bounding_set(cap);
            }
        }
    }
    let kept = caps.permitted & kept;
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    thread::clear_ambient_capability_set()?;
    let now = thread::capabilities(None)?;
    if !kept.contains(now.permitted | now.effective) || !now.inheritable.is_empty() {
        return Err(io::Error::other("capabilities remain after dropping them"));
    }
    Ok(now.permitted)
}

/// The end of a message for a uprobe the kernel refused.
pub(crate) fn needed() -> &'static str {
    NEEDED
}

/// The end of a message for a uprobe perf event the kernel refused: where
/// this process lacks CAP_SYS_ADMIN, that is why. The kernel opens uprobe
/// perf events only for CAP_SYS_ADMIN (CAP_PERFMON is not enough, on 6.18
/// as on 6.1); uprobe_multi links (6.6+) need only CAP_BPF and CAP_PERFMON.
pub(crate) fn needed_for_perf_events() -> Result<&'static str, TraceError> {
    Ok(if effective()? & (1 << CAP_SYS_ADMIN) == 0 {
        "this kernel has no uprobe_multi links (Linux 6.6), and opens uprobe perf events only for CAP_SYS_ADMIN"
    } else {
        NEEDED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_capabilities() {
        assert_eq!(missing(1 << CAP_SYS_ADMIN), None);
        assert_eq!(missing((1 << CAP_BPF) | (1 << CAP_PERFMON)), None);
        let none = missing(0).unwrap();
        assert!(
            none.starts_with("missing capability CAP_BPF and CAP_PERFMON "),
            "{none}"
        );
        let no_perfmon = missing(1 << CAP_BPF).unwrap();
        assert!(
            no_perfmon.starts_with("missing capability CAP_PERFMON "),
            "{no_perfmon}"
        );
    }

    #[test]
    fn a_missing_process_is_named() {
        let mut pid = 4_000_000;
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            pid += 1;
        }
        let error = check_process(pid).unwrap_err();
        assert_eq!(error.to_string(), format!("process {pid} does not exist"));
        assert!(error.is_input());
        check_process(std::process::id()).unwrap();
    }
}
