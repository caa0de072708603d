//! uprobe_multi links (one per file: every site, semaphore offset and
//! cookie of the file in one system call), and the feature probes that say
//! what the kernel's uprobe programs can do.
//!
//! Detaching perf-event uprobes costs the kernel an RCU grace period per
//! site under a global lock (about 0.1 s each: a minute for a library with
//! 600 sites); a uprobe_multi link removes all its uprobes with one grace
//! period. aya 0.16 loads programs declared `#[uprobe(multi)]` (section
//! `uprobe.multi`) and links them, but passes no semaphore offsets
//! (`ref_ctr_offsets`), so the links are made here, for a program aya
//! loaded.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `bpf()` commands.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PROG_TYPE_KPROBE`: uprobes are kprobe-type programs.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
/// `BPF_TRACE_UPROBE_MULTI` attach type.
const BPF_TRACE_UPROBE_MULTI: u32 = 48;
/// `BPF_F_UPROBE_MULTI_RETURN` link flag: uretprobes.
const BPF_F_UPROBE_MULTI_RETURN: u32 = 1;
/// `BPF_F_SLEEPABLE` program flag.
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// Size of one BPF instruction.
pub const INSN: usize = 8;

/// Whether the kernel has uprobe_multi links (6.6+), probed as libbpf
/// does, with a two-instruction program: before 6.6 the kernel loads a
/// kprobe program whatever its attach type says, but refuses the link
/// (EINVAL), while a kernel with such links looks the path up and finds
/// the directory `/` no file to probe (EBADF). A kernel whose links filter
/// by thread instead of by process (the feature's first release) counts as
/// having none: asked for pid -1 it looks the path up too instead of
/// refusing the pid (EINVAL).
pub fn kernel_has_links() -> bool {
    let Ok(program) = probe_program(&[RETURN_0, EXIT], 0, BPF_TRACE_UPROBE_MULTI) else {
        return false;
    };
    use std::os::fd::AsFd;
    let refused = |pid| {
        link(
            program.as_fd(),
            Path::new("/"),
            &[0],
            &[0],
            &[0],
            pid,
            false,
        )
        .err()
        .and_then(|e| e.raw_os_error())
    };
    refused(None) == Some(libc::EBADF) && refused(Some(u32::MAX)) == Some(libc::EINVAL)
}

/// One BPF instruction: `opcode`, registers `regs` (source in the high
/// nibble, destination in the low one) and immediate `imm`.
pub const fn insn(opcode: u8, regs: u8, imm: i32) -> [u8; INSN] {
    let imm = imm.to_le_bytes();
    [opcode, regs, 0, 0, imm[0], imm[1], imm[2], imm[3]]
}

/// `r0 = 0`.
pub const RETURN_0: [u8; INSN] = insn(0xb7, 0, 0);
/// `exit`.
pub const EXIT: [u8; INSN] = insn(0x95, 0, 0);

/// Whether the kernel loads `insns` as a uprobe (kprobe-type) program with
/// `prog_flags`: a feature probe. The verifier refuses what it does not
/// know with EINVAL; any other refusal (no privilege, the locked-memory
/// limit) is for the trace itself to report.
pub fn kernel_loads(insns: &[[u8; INSN]], prog_flags: u32) -> bool {
    match probe_program(insns, prog_flags, 0) {
        Ok(_) => true,
        Err(error) => error.raw_os_error() != Some(libc::EINVAL),
    }
}

/// Loads `insns` as a kprobe-type program with `prog_flags` and
/// `expected_attach_type`.
fn probe_program(
    insns: &[[u8; INSN]],
    prog_flags: u32,
    expected_attach_type: u32,
) -> io::Result<OwnedFd> {
    let license = CString::new("GPL").expect("no NUL");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_flags,
        expected_attach_type,
        ..ProgLoadAttr::default()
    };
    bpf_prog_load(&attr)
}

/// Attaches `program` at `offsets` of `path` (with `ref_ctr_offsets`, 0 for
/// none, and `cookies`, one per site) for process `pid` or every process;
/// as uretprobes (at the return of the functions starting at `offsets`)
/// when `ret`.
pub fn link(
    program: BorrowedFd<'_>,
    path: &Path,
    offsets: &[u64],
    ref_ctr_offsets: &[u64],
    cookies: &[u64],
    pid: Option<u32>,
    ret: bool,
) -> io::Result<OwnedFd> {
    assert!(offsets.len() == ref_ctr_offsets.len() && offsets.len() == cookies.len());
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let attr = UprobeMultiLinkAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: BPF_TRACE_UPROBE_MULTI,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        ref_ctr_offsets: ref_ctr_offsets.as_ptr() as u64,
        cookies: cookies.as_ptr() as u64,
        cnt: offsets.len() as u32,
        multi_flags: if ret { BPF_F_UPROBE_MULTI_RETURN } else { 0 },
        pid: pid.unwrap_or(0),
        ..UprobeMultiLinkAttr::default()
    };
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the size passed;
    // its pointers reference buffers that outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const UprobeMultiLinkAttr,
            std::mem::size_of::<UprobeMultiLinkAttr>() as libc::c_uint,
        )
    };
    into_fd(fd)
}

/// The `prog_load` member of the kernel's `union bpf_attr`, up to
/// `expected_attach_type`, padded with zeros.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, prog_name) == 48);
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type) == 68);

/// The `link_create` member of `union bpf_attr` for uprobe_multi.
#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    reserved: [u32; 3],
}

const _: () = assert!(std::mem::offset_of!(UprobeMultiLinkAttr, path) == 16);
const _: () = assert!(std::mem::offset_of!(UprobeMultiLinkAttr, pid) == 56);

/// Loads a feature probe's program (a few instructions: a signal cannot
/// make the verifier give up on it).
fn bpf_prog_load(attr: &ProgLoadAttr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the size passed;
    // its pointers reference buffers that outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as libc::c_uint,
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
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}
