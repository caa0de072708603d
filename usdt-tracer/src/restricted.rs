//! Restricted mode: what the tracer does with capabilities granted to its
//! program file rather than to the user running it.
//!
//! CAP_BPF and CAP_PERFMON let their holder read the memory of every
//! process through uprobes, whoever owns it. When a program gets them from
//! its file (`setcap cap_bpf,cap_perfmon+ep`, or a setuid-root program)
//! and a user other than root runs it, the kernel marks the process
//! `AT_SECURE`; the tracer then serves that user alone:
//!
//! - at the first call of [`enter`] (the `usdt` command makes it first
//!   thing; every entry point of the library makes it too), the process
//!   takes the real user's ids back (a setuid program), and keeps CAP_BPF
//!   and CAP_PERFMON only: every other capability goes from every set it
//!   can leave (CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH granted to the file
//!   give nothing), so every file is read and every process checked with
//!   the user's own rights;
//! - only one process is traced, and the user must be allowed to read its
//!   memory: the kernel's ptrace access check, made by opening
//!   `/proc/PID/mem` with those rights, as `perf_event_open` checks
//!   (`ptrace_may_access` with the real credentials); a command started
//!   with [`crate::launch::StoppedCommand`] runs without any capability;
//! - a probe with no process (`PATH:provider:name`, `uprobe:FILE:...`
//!   without a pid) traces every process that runs the file and is refused,
//!   as is listing the probes of a process the user may not read
//!   ([`open_process`]);
//! - the kernel's uprobe pid filter is backed by the BPF program, which
//!   drops the hits of every other process first, and the kernel raises
//!   semaphores only in the processes the filter admits.
//!
//! Refusals are [`TraceError::Restricted`]. Capabilities the user holds in
//! their own right (root, `setpriv`, systemd's `AmbientCapabilities`) leave
//! the process without `AT_SECURE`: nothing is restricted then.
//!
//! The environment is the user's: nothing read from it changes what is
//! attached. The dynamic loader ignores its `LD_*` variables for an
//! `AT_SECURE` process; the one variable the tracer reads is `PATH`, to
//! find the program `-c` runs, which runs as the user without capabilities
//! (the `usdt` command's argument parser reads the terminal's width, for
//! help text only). Paths are the user's to name and are read with the
//! user's rights, relative ones from the user's working directory.

use crate::aggregate::Aggregation;
use crate::config::TraceConfig;
use crate::error::TraceError;
use crate::privileges;
use crate::select::ProbeSpec;
use rustix::thread::{self, CapabilitySet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;
use usdt_reader::{ElfFile, Process};

/// The capabilities restricted mode keeps: loading the BPF program and
/// opening uprobes.
const KEPT: CapabilitySet = CapabilitySet::BPF.union(CapabilitySet::PERFMON);

/// The inode number of the initial pid namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// What a refusal says after its reason.
const RULE: &str = "with capabilities granted to its program file, the tracer serves only the invoking user's own processes";

/// Whether this process runs with privileges granted by its program file
/// to a user other than root (see the module documentation).
fn privileged_by_file() -> bool {
    // SAFETY: getauxval has no preconditions; it reads the auxiliary
    // vector the kernel passed at exec.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    secure && !rustix::process::getuid().is_root()
}

/// Enters restricted mode if this process runs with privileges granted by
/// its program file to a user other than root, once per process; returns
/// whether it is restricted.
///
/// Entering takes the real user's ids back and drops every capability
/// except CAP_BPF and CAP_PERFMON from the effective, permitted and
/// inheritable sets (and the ambient set, and the bounding set where the
/// process may change it). Capabilities are per thread: call it before
/// starting threads (the `usdt` command calls it first thing). An error
/// (the privileges could not be dropped) is returned by every later call
/// too, so nothing runs half restricted.
pub fn enter() -> Result<bool, TraceError> {
    static STATE: OnceLock<Result<bool, String>> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        if !privileged_by_file() {
            return Ok(false);
        }
        drop_privileges().map(|()| true).map_err(|error| {
            format!("restricted mode: cannot drop the privileges of the program file: {error}")
        })
    });
    state
        .clone()
        .map_err(|reason| TraceError::Privileges { reason })
}

/// Takes the real user's ids back and keeps only [`KEPT`].
fn drop_privileges() -> io::Result<()> {
    // A setuid program: the real ids. Leaving uid 0 clears every
    // effective capability unless the permitted ones are kept across the
    // change; `keep_only` then drops all but `KEPT` from every set.
    let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
    thread::set_keep_capabilities(true)?;
    // SAFETY: setresgid and setresuid take plain ids; glibc applies them
    // to every thread of the process.
    let changed = unsafe {
        libc::setresgid(gid.as_raw(), gid.as_raw(), gid.as_raw()) == 0
            && libc::setresuid(uid.as_raw(), uid.as_raw(), uid.as_raw()) == 0
    };
    let changed = if changed {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    thread::set_keep_capabilities(false)?;
    changed?;
    privileges::keep_only(KEPT)?;
    // Check rather than trust.
    if !real_ids_everywhere(uid.as_raw(), gid.as_raw())? {
        return Err(io::Error::other("ids remain after dropping them"));
    }
    Ok(())
}

/// Whether every user id of this thread is `uid` and every group id `gid`
/// (real, effective, saved and file system ones, from /proc/thread-self).
fn real_ids_everywhere(uid: u32, gid: u32) -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    let all = |prefix: &str, id: u32| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .is_some_and(|ids| ids.split_whitespace().all(|n| n == id.to_string()))
    };
    Ok(all("Uid:", uid) && all("Gid:", gid))
}

/// A refusal of `refused` for `reason`.
pub(crate) fn refusal(refused: String, reason: &str) -> TraceError {
    TraceError::Restricted {
        refused,
        reason: format!("{reason}; {RULE}"),
    }
}

/// The refusal of a probe that has no process to trace: it would trace
/// every process that runs (or maps) its file.
fn refuse_system_wide(spec: &str) -> TraceError {
    refusal(
        format!("`{spec}`"),
        "without a process (--pid PID or -c CMD) it traces every process that runs the file",
    )
}

/// What a restricted tracer may attach for `config`: one process the
/// invoking user may read, held until the links are made; a configuration
/// without a process (every process running a file) is refused, and on a
/// kernel without uprobe_multi links so is every other (its uprobes are
/// perf events, which need the CAP_SYS_ADMIN restricted mode drops).
pub(crate) fn check_config(config: &TraceConfig) -> Result<Target, TraceError> {
    let Some(pid) = config.pid else {
        let first = config
            .probes
            .iter()
            .chain(config.aggregations.iter().flat_map(Aggregation::specs))
            .next()
            .map_or(String::new(), ProbeSpec::to_string);
        return Err(refuse_system_wide(&first));
    };
    let target = Target::check(pid)?;
    if !crate::KernelFeatures::get().multi_links {
        return Err(TraceError::KernelFeature {
            missing: "has no uprobe_multi links (Linux 6.6), and opens uprobe perf events only \
                      for CAP_SYS_ADMIN, which restricted mode drops"
                .into(),
        });
    }
    Ok(target)
}

/// The refusal of process `pid`, whose memory the invoking user may not
/// read.
pub(crate) fn refuse_process(pid: u32) -> TraceError {
    refusal(
        format!("process {pid}"),
        &format!(
            "user {} may not read its memory (it belongs to another user, holds capabilities, or is not dumpable)",
            rustix::process::getuid().as_raw()
        ),
    )
}

/// Opens process `pid` for reading its modules and probes, as the tracer
/// would: in restricted mode, only a process the invoking user may read
/// ([`TraceError::Restricted`] otherwise).
pub fn open_process(pid: u32) -> Result<Process, TraceError> {
    if enter()? {
        privileges::check_process(pid)?;
    }
    Ok(Process::open(pid)?)
}

/// Opens the ELF file at `path`, in restricted mode with the invoking
/// user's rights only (the program file's capabilities are dropped).
pub fn open_file(path: impl AsRef<Path>) -> Result<ElfFile, TraceError> {
    enter()?;
    Ok(ElfFile::open(path)?)
}

/// The process a restricted tracer attaches to, held from before its
/// access check until every link is made: while it has not exited, its pid
/// names it and no other (a pid is reused only once its process is gone
/// and reaped).
#[derive(Debug)]
pub(crate) struct Target {
    pid: u32,
    pidfd: OwnedFd,
}

impl Target {
    /// Holds process `pid` and checks that the invoking user may read its
    /// memory.
    pub(crate) fn check(pid: u32) -> Result<Target, TraceError> {
        if !initial_pid_namespace() {
            return Err(refusal(
                format!("process {pid}"),
                "the tracer runs in a pid namespace other than the initial one, so the BPF program could not tell the process by its pid",
            ));
        }
        let raw = rustix::process::Pid::from_raw(pid as i32)
            .filter(|_| pid <= i32::MAX as u32)
            .ok_or(TraceError::NoSuchProcess { pid })?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .map_err(|errno| match errno {
                rustix::io::Errno::SRCH => TraceError::NoSuchProcess { pid },
                errno => TraceError::Io {
                    context: format!("cannot open process {pid} (pidfd_open)"),
                    source: errno.into(),
                },
            })?;
        privileges::check_process(pid)?;
        Ok(Target { pid, pidfd })
    }

    /// Fails if the process has exited since [`Target::check`]: its pid
    /// may name another process now.
    pub(crate) fn still_running(&self) -> Result<(), TraceError> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&now)) {
            Ok(0) => Ok(()),
            Ok(_) => Err(TraceError::ProcessExited { pid: self.pid }),
            Err(errno) => Err(TraceError::Io {
                context: format!("cannot watch process {}", self.pid),
                source: errno.into(),
            }),
        }
    }
}

/// Whether this process runs in the initial pid namespace, whose pids the
/// BPF program sees.
pub(crate) fn initial_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == INITIAL_PID_NAMESPACE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_run_is_not_restricted() {
        // Test binaries carry no file capabilities.
        assert!(!enter().unwrap());
        open_process(std::process::id()).unwrap();
    }

    #[test]
    fn refusals_name_the_mode_on_one_line() {
        let config = TraceConfig::new().probe("/bin/true:p:n").unwrap();
        let error = check_config(&config).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("restricted mode refuses `/bin/true:p:n`: "),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert!(error.is_input());
    }

    #[test]
    fn a_held_target_notices_its_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let target = Target::check(child.id()).unwrap();
        target.still_running().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(
            target.still_running(),
            Err(TraceError::ProcessExited { .. })
        ));
    }
}
