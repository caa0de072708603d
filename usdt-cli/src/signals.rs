//! What ends a trace from outside — SIGINT, SIGTERM or SIGHUP, and the
//! traced process's exit — watched together with the ring buffer.

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// SIGINT, SIGTERM and SIGHUP, caught from creation on: a signal that
/// arrives while the tracer attaches gives the attach up (see
/// [`Signals::flag`]) and is kept until the trace loop looks.
pub(crate) struct Signals {
    /// The number of the last signal received, 0 before any.
    received: Arc<AtomicUsize>,
    /// Set by any of the signals.
    any: Arc<AtomicBool>,
}

impl Signals {
    /// Starts catching the signals.
    pub(crate) fn catch() -> io::Result<Signals> {
        let received = Arc::new(AtomicUsize::new(0));
        let any = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)?;
            signal_hook::flag::register(signal, Arc::clone(&any))?;
        }
        Ok(Signals { received, any })
    }

    /// The flag the signals set, for
    /// [`Tracer::attach_until`](usdt_tracer::Tracer::attach_until).
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.any
    }

    /// The name of the signal received, if one was.
    pub(crate) fn received(&self) -> Option<&'static str> {
        match self.received.load(Ordering::SeqCst) as i32 {
            0 => None,
            SIGINT => Some("SIGINT"),
            SIGTERM => Some("SIGTERM"),
            SIGHUP => Some("SIGHUP"),
            _ => Some("a signal"),
        }
    }
}

/// A process whose exit can be waited for (a pidfd).
pub(crate) struct ProcessExit(OwnedFd);

impl ProcessExit {
    /// Watches process `pid`; fails when it is already gone.
    pub(crate) fn watch(pid: u32) -> io::Result<ProcessExit> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(ProcessExit(rustix::process::pidfd_open(
            pid,
            PidfdFlags::empty(),
        )?))
    }
}

/// What [`wait`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Woken {
    /// The process watched has exited.
    pub exited: bool,
}

/// Waits until the ring buffer `ring` has data, the process `exit` watches
/// exits, a signal arrives, or `timeout` passes.
pub(crate) fn wait(ring: BorrowedFd<'_>, exit: Option<&ProcessExit>, timeout: Duration) -> Woken {
    let mut fds = vec![PollFd::new(&ring, PollFlags::IN)];
    if let Some(ProcessExit(pidfd)) = exit {
        fds.push(PollFd::new(pidfd, PollFlags::IN));
    }
    let timeout = Timespec::try_from(timeout).ok();
    // An interrupted wait (EINTR: a signal) ends early, which is the point.
    let _ = rustix::event::poll(&mut fds, timeout.as_ref());
    Woken {
        exited: fds.get(1).is_some_and(|fd| !fd.revents().is_empty()),
    }
}
