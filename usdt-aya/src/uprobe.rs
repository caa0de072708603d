//! Uprobe perf events and BPF perf-event links, through raw system calls.
//!
//! aya 0.16 attaches uprobes with cookies but cannot pass a semaphore
//! offset (`ref_ctr_offset`), so sites are attached here: `perf_event_open`
//! on the uprobe PMU with the reference counter offset in `config`, then
//! `bpf(BPF_LINK_CREATE)` linking the program aya loaded with the site's
//! cookie. The kernel raises the semaphore in every process the event
//! covers (including processes started later) and lowers it when the link
//! is closed.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the kernel describes the uprobe PMU.
const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";

/// `bpf()` command creating a link.
const BPF_LINK_CREATE: libc::c_long = 28;
/// `link_create.attach_type` for a perf event.
const BPF_PERF_EVENT: u32 = 41;
/// `PERF_EVENT_IOC_SET_BPF`, `_IOW('$', 8, __u32)`: runs a BPF program
/// on the event's hits.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `perf_event_open` flag: close the descriptor on exec.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// How to open uprobe events on this kernel, read from sysfs.
#[derive(Debug, Clone, Copy)]
pub struct UprobePmu {
    /// `perf_event_attr.type` of the uprobe PMU.
    kind: u32,
    /// Bit position of the semaphore offset field in `config`, if the
    /// kernel supports `ref_ctr_offset`.
    ref_ctr_shift: Option<u32>,
    /// Bit of `config` that makes the uprobe a uretprobe.
    retprobe_bit: Option<u32>,
}

impl UprobePmu {
    /// Reads the uprobe PMU's type and `config` layout from sysfs.
    pub fn detect() -> io::Result<UprobePmu> {
        let kind = read_trimmed(&format!("{UPROBE_PMU}/type"))?
            .parse::<u32>()
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{UPROBE_PMU}/type: {e}"),
                )
            })?;
        // "config:32-63": the low bit of the field is its shift.
        let ref_ctr_shift = read_trimmed(&format!("{UPROBE_PMU}/format/ref_ctr_offset"))
            .ok()
            .and_then(|format| parse_config_field(&format));
        // "config:0".
        let retprobe_bit = read_trimmed(&format!("{UPROBE_PMU}/format/retprobe"))
            .ok()
            .and_then(|format| parse_config_field(&format));
        Ok(UprobePmu {
            kind,
            ref_ctr_shift,
            retprobe_bit,
        })
    }

    /// Whether the kernel can raise semaphores itself.
    pub fn supports_semaphores(&self) -> bool {
        self.ref_ctr_shift.is_some()
    }

    /// Opens a uprobe perf event on `path` at `file_offset`, raising the
    /// semaphore at `ref_ctr_offset` (a file offset) if given, for process
    /// `pid` or for every process when `pid` is `None`; a uretprobe (at the
    /// return of the function starting there) when `ret`.
    pub fn open(
        &self,
        path: &Path,
        file_offset: u64,
        ref_ctr_offset: Option<u64>,
        pid: Option<u32>,
        ret: bool,
    ) -> io::Result<OwnedFd> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut config = 0u64;
        if ret {
            match self.retprobe_bit {
                Some(bit) if bit < 64 => config |= 1 << bit,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "this kernel's uprobe PMU has no retprobe flag",
                    ));
                }
            }
        }
        if let Some(offset) = ref_ctr_offset {
            let shift = self.ref_ctr_shift.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this kernel cannot raise USDT semaphores (no uprobe ref_ctr_offset)",
                )
            })?;
            if shift >= 64 || offset >= 1u64 << (64 - shift) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "semaphore offset too large",
                ));
            }
            config |= offset << shift;
        }
        let mut attr = PerfEventAttr::zeroed();
        attr.kind = self.kind;
        attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
        attr.config = config;
        attr.config1 = path.as_ptr() as u64;
        attr.config2 = file_offset;
        let (pid, cpu) = match pid {
            Some(pid) => (pid as libc::pid_t, -1),
            // A system-wide uprobe needs one CPU; the BPF program still runs
            // on every CPU.
            None => (-1, 0),
        };
        perf_event_open(&attr, pid, cpu)
    }
}

/// Links BPF program `program` to perf event `event` with `cookie`.
pub fn link_perf_event(
    program: BorrowedFd<'_>,
    event: &OwnedFd,
    cookie: u64,
) -> io::Result<OwnedFd> {
    let attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_fd: event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        bpf_cookie: cookie,
        ..LinkCreateAttr::default()
    };
    bpf_link_create(&attr)
}

/// Attaches BPF program `program` to perf event `event` the way kernels
/// without BPF links to perf events (before 5.15) allow, with no cookie;
/// returns the event, whose closing detaches the program.
pub fn attach_perf_event_without_link(
    program: BorrowedFd<'_>,
    event: OwnedFd,
) -> io::Result<OwnedFd> {
    // SAFETY: the ioctl takes the program's descriptor as its argument and
    // writes nothing.
    let r = unsafe {
        libc::ioctl(
            event.as_raw_fd(),
            PERF_EVENT_IOC_SET_BPF as _,
            program.as_raw_fd(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(event)
}

/// Lifts this process's limit on locked memory, as libbpf does: kernels
/// before 5.11 charge BPF maps to it (the limit of the user, shared by all
/// their processes), and its default (8 MiB at most) does not hold a ring
/// buffer and the aggregation maps. Kernels since then charge the memory
/// cgroup instead. Without CAP_SYS_RESOURCE the soft limit rises to the
/// hard one.
pub fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit);
        }
    }
}

/// Raises this process's limit on open files (each site attached through
/// a perf event holds one descriptor): with CAP_SYS_RESOURCE both limits
/// to the kernel's ceiling (`fs.nr_open`, as bpftrace does), otherwise the
/// soft limit to the hard one.
pub fn raise_fd_limit() {
    if let Some(ceiling) = read_trimmed("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.parse::<libc::rlim_t>().ok())
    {
        let raised = libc::rlimit {
            rlim_cur: ceiling,
            rlim_max: ceiling,
        };
        // SAFETY: setrlimit reads the struct we own. It fails, changing
        // nothing, when raising the hard limit needs a privilege we lack.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return;
        }
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur < limit.rlim_max
    {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

fn read_trimmed(path: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// Parses a PMU format such as `config:32-63` into the field's low bit.
fn parse_config_field(format: &str) -> Option<u32> {
    let bits = format.strip_prefix("config:")?;
    let low = bits.split('-').next()?;
    low.parse().ok()
}

/// The leading part of the kernel's `struct perf_event_attr` (the
/// `PERF_ATTR_SIZE_VER5` layout, 112 bytes); later kernels accept it.
#[repr(C)]
#[derive(Clone, Copy)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 112);

impl PerfEventAttr {
    fn zeroed() -> PerfEventAttr {
        PerfEventAttr {
            kind: 0,
            size: 0,
            config: 0,
            sample_period: 0,
            sample_type: 0,
            read_format: 0,
            flags: 0,
            wakeup_events: 0,
            bp_type: 0,
            config1: 0,
            config2: 0,
            branch_sample_type: 0,
            sample_regs_user: 0,
            sample_stack_user: 0,
            clockid: 0,
            sample_regs_intr: 0,
            aux_watermark: 0,
            sample_max_stack: 0,
            reserved: 0,
        }
    }
}

/// The `link_create` member of the kernel's `union bpf_attr`, for perf
/// events, padded to cover every field the kernel may check for zero.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
    reserved: [u64; 6],
}

const _: () = assert!(std::mem::size_of::<LinkCreateAttr>() == 72);

fn perf_event_open(
    attr: &PerfEventAttr,
    pid: libc::pid_t,
    cpu: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid perf_event_attr whose `size` says how much
    // the kernel may read; `config1` points to a NUL-terminated path that
    // outlives the call (it is owned by the caller's frame).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const PerfEventAttr,
            pid,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    into_fd(fd)
}

fn bpf_link_create(attr: &LinkCreateAttr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            attr as *const LinkCreateAttr,
            std::mem::size_of::<LinkCreateAttr>() as libc::c_uint,
        )
    };
    into_fd(fd)
}

fn into_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the system call returned a new descriptor that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_field_positions() {
        assert_eq!(parse_config_field("config:32-63"), Some(32));
        assert_eq!(parse_config_field("config:0"), Some(0));
        assert_eq!(parse_config_field("config1:0-63"), None);
        assert_eq!(parse_config_field("junk"), None);
    }
}
