//! Starting a command stopped before its first instruction, so probes can
//! be attached to it before it runs (`usdt trace -c CMD`).
//!
//! The child is forked and waits on a pipe; once the tracer has attached
//! (with the child's pid as filter), [`StoppedCommand::resume`] lets it
//! exec the program. Uprobes filtered by pid follow the process through
//! exec, so every probe of the new program fires from its first
//! instruction. The child also stops (as a ptrace tracee) right after the
//! exec, so [`StoppedCommand::resume_with`] can finish setting up, such as
//! raising semaphores the kernel cannot raise at exec time, before it runs.
//!
//! In restricted mode (see [`crate::restricted`]) the child drops every
//! capability, ambient and inheritable ones included, and the right to
//! gain any through exec (no_new_privs), before it waits: the command runs
//! with the invoking user's own rights, and the tracer checks and attaches
//! to it as to any process of that user.

use crate::error::TraceError;
use crate::restricted;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A forked child waiting to exec a program.
///
/// The child, and the program it runs, is killed (SIGKILL) when the thread
/// that spawned it exits, or its whole process, however that happens
/// (`PR_SET_PDEATHSIG`): semaphores the tracer raised by writing its memory
/// never outlive the tracer. The kernel forgets
/// that request when the program is set-user-ID, set-group-ID or has file
/// capabilities, so such a program outlives a killed tracer.
#[derive(Debug)]
pub struct StoppedCommand {
    pid: u32,
    program: PathBuf,
    /// Write end of the pipe the child waits on.
    go: Option<OwnedFd>,
    /// Read end of the pipe where the child reports a failed exec.
    exec_status: Option<OwnedFd>,
    reaped: bool,
    /// The exit status, once reaped.
    status: Option<i32>,
}

impl StoppedCommand {
    /// Forks a child that will run `argv` (the program is looked up on
    /// `PATH` unless it contains a `/`) once resumed; in restricted mode
    /// the child has dropped every capability when this returns.
    pub fn spawn(argv: &[String]) -> Result<StoppedCommand, TraceError> {
        let bad = |reason: String| TraceError::BadCommand {
            command: argv.join(" "),
            reason,
        };
        let restricted = restricted::enter()?;
        let first = argv.first().ok_or_else(|| bad("empty command".into()))?;
        // PATH (the user's environment) picks the program even in restricted
        // mode: the command runs as the user, without capabilities, so it
        // can be nothing the user could not run anyway.
        let program = find_program(first).ok_or_else(|| bad("command not found".into()))?;
        let c_program = CString::new(program.as_os_str().as_bytes())
            .map_err(|_| bad("NUL byte in the program path".into()))?;
        let c_args = argv
            .iter()
            .map(|arg| CString::new(arg.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("NUL byte in an argument".into()))?;
        let mut arg_ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());

        let (go_read, go_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: fork has no preconditions; the child below only calls
        // async-signal-safe functions on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(TraceError::Io {
                context: "fork".into(),
                source: io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            // SAFETY: in the child: only async-signal-safe calls, then exec
            // or _exit; the pointers were built before the fork.
            unsafe {
                child_exec(
                    Pipes {
                        go: go_read.as_raw_fd(),
                        ready: ready_write.as_raw_fd(),
                        status: status_write.as_raw_fd(),
                    },
                    restricted,
                    parent,
                    c_program.as_ptr(),
                    arg_ptrs.as_ptr(),
                )
            }
        }
        drop(go_read);
        drop(status_write);
        drop(ready_write);
        // Dropped unresumed on error: killed and reaped.
        let command = StoppedCommand {
            pid: pid as u32,
            program,
            go: Some(go_write),
            exec_status: Some(status_read),
            reaped: false,
            status: None,
        };
        // The child says when it is ready, or why it cannot be.
        if read_full(&ready_read, &mut [0u8])? == 0 {
            let mut errno = [0u8; 4];
            let source = match command
                .exec_status
                .as_ref()
                .map(|fd| read_full(fd, &mut errno))
            {
                Some(Ok(4)) => io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
                _ => io::Error::other("it exited"),
            };
            let context = if restricted {
                "cannot start the command without capabilities"
            } else {
                "cannot start the command"
            };
            return Err(TraceError::Io {
                context: context.into(),
                source,
            });
        }
        Ok(command)
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program the child will run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Lets the child exec its program and run; fails if the exec fails.
    pub fn resume(&mut self) -> Result<(), TraceError> {
        self.resume_with(|_| Ok(()))
    }

    /// Lets the child exec its program, calls `after_exec` with its pid
    /// while it is stopped right after the exec (its program and dynamic
    /// loader mapped, not one instruction run), then lets it run.
    pub fn resume_with(
        &mut self,
        after_exec: impl FnOnce(u32) -> Result<(), TraceError>,
    ) -> Result<(), TraceError> {
        let (Some(go), Some(exec_status)) = (self.go.take(), self.exec_status.take()) else {
            return Ok(());
        };
        write_byte(&go)?;
        // The child stops with SIGTRAP after a successful exec (it asked to
        // be traced); it exits if the exec failed.
        loop {
            let status = self.wait()?;
            if libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP {
                break;
            }
            if libc::WIFSTOPPED(status) {
                // Another signal arrived first: deliver it and go on.
                ptrace(libc::PTRACE_CONT, self.pid, libc::WSTOPSIG(status))?;
                continue;
            }
            let mut errno = [0u8; 4];
            let n = read_full(&exec_status, &mut errno)?;
            let reason = if n == 4 {
                io::Error::from_raw_os_error(i32::from_ne_bytes(errno)).to_string()
            } else {
                format!("it {} before running", describe_status(status))
            };
            return Err(TraceError::BadCommand {
                command: self.program.display().to_string(),
                reason,
            });
        }
        if let Err(error) = after_exec(self.pid) {
            // Never let it run half set up.
            // SAFETY: kills our own stopped child.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
            let _ = ptrace(libc::PTRACE_DETACH, self.pid, 0);
            let _ = self.wait();
            return Err(error);
        }
        ptrace(libc::PTRACE_DETACH, self.pid, 0)
    }

    /// Waits for the child to exit (or, while it is traced, to stop);
    /// returns its `waitpid` status.
    pub fn wait(&mut self) -> Result<i32, TraceError> {
        if let (true, Some(status)) = (self.reaped, self.status) {
            return Ok(status);
        }
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is ours to write.
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, 0) };
            if r >= 0 {
                self.reaped = libc::WIFEXITED(status) || libc::WIFSIGNALED(status);
                if self.reaped {
                    self.status = Some(status);
                }
                return Ok(status);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(TraceError::Io {
                    context: format!("waitpid {}", self.pid),
                    source: error,
                });
            }
        }
    }
}

/// How [`StoppedCommand::terminate`] ended a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It had already exited.
    Exited,
    /// It ended after SIGTERM.
    Terminated,
    /// It was still running after the grace period and was sent SIGKILL.
    Killed,
}

impl StoppedCommand {
    /// Ends the running command: nothing if it has exited, else SIGTERM
    /// followed by SIGCONT (a stopped command acts on it then, as
    /// `timeout` and shells' `kill` do), and SIGKILL if it is still
    /// running `grace` later. Returns its
    /// `waitpid` status and what it took. A command never resumed has not
    /// run its program: it gets SIGKILL at once.
    pub fn terminate(&mut self, grace: Duration) -> Result<(i32, Termination), TraceError> {
        if let Some(status) = self.try_wait()? {
            return Ok((status, Termination::Exited));
        }
        if self.go.is_some() {
            self.signal(libc::SIGKILL);
            return Ok((self.wait()?, Termination::Killed));
        }
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            if let Some(status) = self.try_wait()? {
                return Ok((status, Termination::Terminated));
            }
        }
        self.signal(libc::SIGKILL);
        Ok((self.wait()?, Termination::Killed))
    }

    /// The child's exit status if it has exited, without waiting.
    fn try_wait(&mut self) -> Result<Option<i32>, TraceError> {
        if self.reaped {
            return Ok(self.status);
        }
        let mut status = 0;
        // SAFETY: polls our own child; `status` is ours to write.
        let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r < 0 {
            return Err(TraceError::Io {
                context: format!("waitpid {}", self.pid),
                source: io::Error::last_os_error(),
            });
        }
        if r == 0 || !(libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
            return Ok(None);
        }
        self.reaped = true;
        self.status = Some(status);
        Ok(Some(status))
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signals our own child, not yet reaped (so its pid is
        // still ours).
        unsafe { libc::kill(self.pid as libc::pid_t, signal) };
    }
}

impl Drop for StoppedCommand {
    /// A child never resumed is killed and reaped.
    fn drop(&mut self) {
        if self.go.is_some() && !self.reaped {
            // SAFETY: signals and reaps our own child.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(self.pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Describes a `waitpid` status: "exited with status N" or "was killed by
/// signal N".
pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended with wait status {status:#x}")
    }
}

/// The child's ends of the pipes it shares with the tracer.
struct Pipes {
    /// Read: one byte when the child may exec.
    go: i32,
    /// Written: one byte when the child is ready to wait.
    ready: i32,
    /// Written: the errno of a failed exec or capability drop.
    status: i32,
}

/// The child's side: drop capabilities in restricted mode, ask to be
/// killed with the thread that forked it (process `parent`), say it is
/// ready, wait for the go byte, exec, report a failed exec.
///
/// # Safety
/// Must run in a freshly forked child; the pointers must be valid.
unsafe fn child_exec(
    pipes: Pipes,
    restricted: bool,
    parent: libc::pid_t,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
) -> ! {
    let report = |errno: i32| {
        let bytes = errno.to_ne_bytes();
        // SAFETY: writes a local to a descriptor we own, then exits
        // without running anything of the parent's.
        unsafe {
            libc::write(pipes.status, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        }
    };
    if restricted && let Err(errno) = drop_all_capabilities() {
        report(errno.raw_os_error());
    }
    // SAFETY: async-signal-safe calls on valid descriptors and pointers.
    unsafe {
        // Killed with the tracer, however it ends: a semaphore the tracer
        // raised by writing the command's memory must not outlive it (a
        // SIGKILL gives the tracer no chance to lower it). Past a parent
        // that died before this call, the command never runs.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            report(*libc::__errno_location());
        }
        if libc::getppid() != parent {
            libc::_exit(127);
        }
        // Undo what the tracer's runtime set up: ignored SIGPIPE and any
        // blocked signals would be inherited by the program.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if libc::write(pipes.ready, [1u8].as_ptr().cast(), 1) != 1 {
            libc::_exit(127);
        }
        let mut byte = 0u8;
        if libc::read(pipes.go, (&mut byte as *mut u8).cast(), 1) != 1 {
            libc::_exit(127);
        }
        // Stop right after the exec, so the tracer can finish attaching
        // before the first instruction runs.
        if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
            report(*libc::__errno_location());
        }
        libc::execv(program, argv);
        report(*libc::__errno_location())
    }
}

/// In the child of a restricted tracer: no capability, ambient or
/// inheritable ones included, reaches the command, which runs with the
/// user's own rights, and no exec can grant it any (no_new_privs: a
/// setuid program it runs would otherwise stay traced, as uprobe links
/// follow a process through exec). It becomes dumpable again (it
/// inherited the tracer's protection from the user), so the tracer's
/// access check, which is the kernel's ptrace check, admits it like any
/// process of the user.
fn drop_all_capabilities() -> rustix::io::Result<()> {
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: rustix::thread::CapabilitySet::empty(),
            permitted: rustix::thread::CapabilitySet::empty(),
            inheritable: rustix::thread::CapabilitySet::empty(),
        },
    )?;
    rustix::thread::clear_ambient_capability_set()?;
    rustix::thread::set_no_new_privs(true)?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
}

/// Finds `name` on PATH (or takes it as a path if it contains `/`).
fn find_program(name: &str) -> Option<PathBuf> {
    let executable = |path: &Path| {
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable(candidate))
}

/// Splits a command line into words: blanks separate words, single quotes
/// keep text literally, double quotes keep text with `\"`, `\\`, `\$` and
/// `` \` `` escapes, a backslash outside quotes escapes the next character.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

/// A ptrace request on our stopped child.
fn ptrace(request: libc::c_uint, pid: u32, signal: i32) -> Result<(), TraceError> {
    // SAFETY: the requests used (CONT, DETACH) take no pointers; `pid` is
    // our own traced child.
    let r = unsafe { libc::ptrace(request, pid as libc::pid_t, 0, signal as libc::c_long) };
    if r == 0 {
        Ok(())
    } else {
        Err(TraceError::Io {
            context: format!("ptrace of process {pid}"),
            source: io::Error::last_os_error(),
        })
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), TraceError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TraceError::Io {
            context: "pipe".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_byte(fd: &OwnedFd) -> Result<(), TraceError> {
    // SAFETY: writes one byte from a local to a descriptor we own.
    let r = unsafe { libc::write(fd.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    if r == 1 {
        Ok(())
    } else {
        Err(TraceError::Io {
            context: "cannot resume the command".into(),
            source: io::Error::last_os_error(),
        })
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, TraceError> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: reads into the unfilled tail of a buffer we own.
        let r = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[filled..].as_mut_ptr().cast(),
                buf.len() - filled,
            )
        };
        if r == 0 {
            break;
        }
        if r < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(TraceError::Io {
                context: "cannot read the command's exec status".into(),
                source: error,
            });
        }
        filled += r as usize;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split_command("ls -l  /tmp").unwrap(), ["ls", "-l", "/tmp"]);
        assert_eq!(
            split_command(r#"echo 'a b' "c \"d\"" e\ f"#).unwrap(),
            ["echo", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(split_command("x ''").unwrap(), ["x", ""]);
        assert!(split_command("'open").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn stopped_command_runs_only_when_resumed() {
        let dir = std::env::temp_dir().join(format!("usdt-launch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("ran");
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!("echo hi > {}", marker.display()),
        ];
        let mut command = StoppedCommand::spawn(&argv).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!marker.exists(), "the command ran before it was resumed");
        command.resume().unwrap();
        let status = command.wait().unwrap();
        assert_eq!(describe_status(status), "exited with status 0");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "hi\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn terminate_sends_sigterm_then_sigkill() {
        let mut sleeper = StoppedCommand::spawn(&["sleep".into(), "10".into()]).unwrap();
        sleeper.resume().unwrap();
        let start = Instant::now();
        let (status, how) = sleeper.terminate(Duration::from_secs(5)).unwrap();
        assert_eq!(how, Termination::Terminated);
        assert_eq!(describe_status(status), "was killed by signal 15");
        assert!(start.elapsed() < Duration::from_secs(2));
        // Ending it again reports the same status without signalling.
        assert_eq!(
            sleeper.terminate(Duration::ZERO).unwrap(),
            (status, Termination::Exited)
        );

        let argv: Vec<String> = ["sh", "-c", "trap '' TERM; exec sleep 10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut stubborn = StoppedCommand::spawn(&argv).unwrap();
        stubborn.resume().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (status, how) = stubborn.terminate(Duration::from_millis(200)).unwrap();
        assert_eq!(how, Termination::Killed);
        assert_eq!(describe_status(status), "was killed by signal 9");

        let mut quick = StoppedCommand::spawn(&["true".into()]).unwrap();
        quick.resume().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (status, how) = quick.terminate(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (describe_status(status).as_str(), how),
            ("exited with status 0", Termination::Exited)
        );
    }

    #[test]
    fn missing_programs_are_input_errors() {
        let error = StoppedCommand::spawn(&["no-such-program-xyz".into()]).unwrap_err();
        assert!(error.is_input());
        assert!(error.to_string().contains("command not found"), "{error}");
    }
}
