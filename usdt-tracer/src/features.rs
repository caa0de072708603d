//! What the running kernel's BPF can do, probed once per process as libbpf
//! probes it: with tiny programs and maps the kernel either accepts or
//! refuses, never by its version number (distributions backport).
//!
//! | feature | since | without it |
//! |---|---|---|
//! | BPF ring buffer | 5.8 | no trace at all |
//! | BPF cookies | 5.15 | sites found by address: see [`KernelFeatures::cookies`] |
//! | sleepable uprobe programs | 6.0 | memory on pages the process never touched reads as unreadable |
//! | uprobe_multi links | 6.6 | one perf-event uprobe per site (slower to attach and detach) |
//! | run-time allocated hash maps in uprobe programs | 6.1 | hash maps preallocated: see [`KernelFeatures::runtime_allocation`] |

use std::sync::OnceLock;
use usdt_aya::multi;

/// The running kernel's BPF features the tracer adapts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFeatures {
    /// BPF ring buffer maps (5.8): the event stream needs them.
    pub ring_buffer: bool,
    /// BPF cookies (`bpf_get_attach_cookie` and BPF links to perf events,
    /// 5.15). Without them the program finds a site by its runtime address,
    /// which user space must know when it attaches: in the traced process
    /// (`--pid`, or a `-c` command's executable once exec'd), or in every
    /// process for a file loaded at fixed addresses (a non-PIE
    /// executable). A shared library or a PIE executable traced by path, a
    /// return probe or a site traced for two purposes at once is refused.
    pub cookies: bool,
    /// Sleepable uprobe programs (6.0), which can fault in the pages of a
    /// string literal or a global the process never touched.
    pub sleepable: bool,
    /// uprobe_multi links (6.6) whose pid filter is the process's.
    pub multi_links: bool,
    /// Hash maps whose entries are allocated as keys appear
    /// (`BPF_F_NO_PREALLOC`) in uprobe programs, which the BPF memory
    /// allocator of 6.1 made safe. From 5.7 to 6.0 the verifier takes such
    /// a map in a uprobe program but prints a kernel warning with a stack
    /// trace (`trace type BPF program uses run-time allocation`; a machine
    /// booted with `panic_on_warn` stops there), and refuses it in a
    /// sleepable one. Without this feature the tracer preallocates its hash
    /// maps, so their entries take their memory when the trace starts.
    ///
    /// Asking the kernel directly would print the warning; the probe
    /// creates a user ring buffer map instead, a map type of the same
    /// release.
    pub runtime_allocation: bool,
}

impl KernelFeatures {
    /// The running kernel's features (probed on the first call).
    /// Probing needs the privileges tracing needs (CAP_BPF, or root): a
    /// feature the kernel refuses to this process counts as missing.
    ///
    /// The environment variable [`DISABLE_FEATURES_ENV`] turns features
    /// off, to try an older kernel's way on a newer one.
    pub fn get() -> KernelFeatures {
        static FEATURES: OnceLock<KernelFeatures> = OnceLock::new();
        *FEATURES.get_or_init(|| {
            // Kernels before 5.11 charge the probes' programs and maps to
            // the locked-memory limit; a probe refused for it (EPERM)
            // would count as a feature present, for the whole process.
            usdt_aya::uprobe::raise_memlock_limit();
            let disabled = std::env::var(DISABLE_FEATURES_ENV).unwrap_or_default();
            let enabled = |name: &str| !disabled.split(',').any(|d| d.trim() == name);
            KernelFeatures {
                ring_buffer: knows_map_type(BPF_MAP_TYPE_RINGBUF),
                cookies: enabled("cookies") && has_cookies(),
                sleepable: enabled("sleepable") && has_sleepable_uprobes(),
                multi_links: enabled("multi") && multi::kernel_has_links(),
                runtime_allocation: enabled("allocation")
                    && knows_map_type(BPF_MAP_TYPE_USER_RINGBUF),
            }
        })
    }
}

/// The environment variable naming features to leave unused although the
/// kernel has them, separated by commas: `cookies`, `sleepable`, `multi`
/// (uprobe_multi links), `allocation` (run-time allocated hash maps).
/// `USDT_DISABLE_FEATURES=cookies,sleepable,multi,allocation` traces as on
/// 5.10.
pub const DISABLE_FEATURES_ENV: &str = "USDT_DISABLE_FEATURES";

/// `BPF_MAP_CREATE` command.
const BPF_MAP_CREATE: libc::c_long = 0;
/// `BPF_MAP_TYPE_RINGBUF` (5.8).
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
/// `BPF_MAP_TYPE_USER_RINGBUF` (6.1).
const BPF_MAP_TYPE_USER_RINGBUF: u32 = 31;
/// `BPF_FUNC_get_attach_cookie`, the helper number.
const BPF_FUNC_GET_ATTACH_COOKIE: i32 = 174;

/// Whether the kernel knows ring buffer maps of `map_type` (kernel or user
/// ring buffers): it refuses to create one of one page with EINVAL if not.
/// Any other refusal (no privilege, the locked-memory limit) is for the
/// trace itself to report.
fn knows_map_type(map_type: u32) -> bool {
    /// The `map_create` member of `union bpf_attr`, padded with zeros.
    #[repr(C)]
    #[derive(Default)]
    struct MapCreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        reserved: [u64; 8],
    }
    let attr = MapCreateAttr {
        map_type,
        max_entries: 4096,
        ..MapCreateAttr::default()
    };
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreateAttr,
            std::mem::size_of::<MapCreateAttr>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL);
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    true
}

/// Whether a uprobe program may call `bpf_get_attach_cookie`: the verifier
/// refuses a helper it does not know.
fn has_cookies() -> bool {
    let call = multi::insn(0x85, 0, BPF_FUNC_GET_ATTACH_COOKIE);
    multi::kernel_loads(&[call, multi::EXIT], 0)
}

/// Whether a uprobe program may be sleepable: before 6.0 only tracing and
/// LSM programs could.
fn has_sleepable_uprobes() -> bool {
    multi::kernel_loads(&[multi::RETURN_0, multi::EXIT], multi::BPF_F_SLEEPABLE)
}
