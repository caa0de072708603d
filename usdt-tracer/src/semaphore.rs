//! Raising USDT semaphores: through the kernel's uprobe reference counter
//! where it finds the right memory, by writing the process's memory where
//! it does not.
//!
//! The kernel raises a semaphore (`ref_ctr_offset`, a file offset) in the
//! first writable private mapping of the file, in address order, that maps
//! that offset. Linkers such as lld place a RELRO segment and the following
//! writable segment back to back in the file, so one file page is mapped by
//! both; a semaphore in that page is then also "found" in the RELRO
//! segment's copy until the dynamic loader makes it read-only. So for a
//! process mapped while the tracer is attached (an exec, a `dlopen`) the
//! kernel updates the wrong copy, which the ELF loader then zeroes, and the
//! real semaphore stays 0. In a running process whose RELRO segment is
//! read-only the kernel finds the right copy.
//!
//! The tracer therefore checks each semaphore: statically, against the
//! file's segments (`ElfFile::semaphore_page_is_shared`), and in a
//! running process, against its mappings ([`kernel_target`]). Where the
//! kernel would miss, it raises the semaphore itself through
//! `/proc/PID/mem` ([`ManualSemaphore`]) and lowers it when detaching.

use crate::error::TraceError;
use std::os::unix::fs::FileExt;
use usdt_reader::Mapping;

/// The address the kernel would update for a semaphore at file offset
/// `offset` of the file with `inode`, in a process with `mappings`: the
/// first writable private mapping of the file, in address order, holding
/// that offset.
pub(crate) fn kernel_target(mappings: &[Mapping], inode: u64, offset: u64) -> Option<u64> {
    let mut candidates: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| m.inode == inode && m.perms.starts_with("rw") && m.perms.ends_with('p'))
        .filter(|m| m.offset <= offset && offset < m.offset + (m.end - m.start))
        .collect();
    candidates.sort_by_key(|m| m.start);
    candidates.first().map(|m| m.start + (offset - m.offset))
}

/// A semaphore the tracer raised itself by writing process memory; lowered
/// again by [`ManualSemaphore::lower`].
#[derive(Debug)]
pub(crate) struct ManualSemaphore {
    pid: u32,
    address: u64,
}

impl ManualSemaphore {
    /// Adds one to the `u16` semaphore at `address` of process `pid`.
    pub(crate) fn raise(pid: u32, address: u64) -> Result<ManualSemaphore, TraceError> {
        update(pid, address, 1)?;
        Ok(ManualSemaphore { pid, address })
    }

    /// The semaphore's runtime address.
    pub(crate) fn address(&self) -> u64 {
        self.address
    }

    /// Subtracts the one added, if the process is still there.
    pub(crate) fn lower(self) {
        let _ = update(self.pid, self.address, -1);
    }
}

/// Adds `delta` to the `u16` at `address` of process `pid` (saturating).
fn update(pid: u32, address: u64, delta: i32) -> Result<(), TraceError> {
    // Through a running thread when the main thread has exited.
    let path = usdt_reader::Process::open(pid)?.dir().join("mem");
    let fail = |source| TraceError::Io {
        context: format!("cannot update the semaphore at {address:#x} of process {pid}"),
        source,
    };
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(fail)?;
    let mut bytes = [0u8; 2];
    mem.read_exact_at(&mut bytes, address).map_err(fail)?;
    let value = u16::from_ne_bytes(bytes) as i32 + delta;
    let value = value.clamp(0, u16::MAX as i32) as u16;
    mem.write_all_at(&value.to_ne_bytes(), address)
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(start: u64, end: u64, perms: &str, offset: u64, inode: u64) -> Mapping {
        Mapping {
            start,
            end,
            perms: perms.into(),
            offset,
            dev: "fe:00".into(),
            inode,
            path: Some("/app".into()),
        }
    }

    #[test]
    fn the_kernel_takes_the_first_writable_private_mapping() {
        let bias = 0x5555_0000_0000;
        // At exec: the RELRO segment's last page is still writable.
        let at_exec = vec![
            mapping(bias + 0x86000, bias + 0x8b000, "rw-p", 0x84000, 7),
            mapping(bias + 0x8b000, bias + 0x8c000, "rw-p", 0x88000, 7),
        ];
        assert_eq!(kernel_target(&at_exec, 7, 0x88fe0), Some(bias + 0x8afe0));
        // After the loader made RELRO read-only: the right copy.
        let running = vec![
            mapping(bias + 0x86000, bias + 0x8b000, "r--p", 0x84000, 7),
            mapping(bias + 0x8b000, bias + 0x8c000, "rw-p", 0x88000, 7),
        ];
        assert_eq!(kernel_target(&running, 7, 0x88fe0), Some(bias + 0x8bfe0));
        assert_eq!(kernel_target(&running, 8, 0x88fe0), None);
    }
}
