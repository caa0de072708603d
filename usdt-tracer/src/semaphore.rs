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
//! file's segments ([`shares_page_with_earlier_writable_segment`]), and in a
//! running process, against its mappings ([`kernel_target`]). Where the
//! kernel would miss, it raises the semaphore itself through
//! `/proc/PID/mem` ([`ManualSemaphore`]) and lowers it when detaching.

use crate::error::TraceError;
use std::os::unix::fs::FileExt;
use usdt_reader::{Mapping, Segment};

/// Page size assumed for file mappings.
const PAGE: u64 = 4096;

/// ELF segment flag: writable.
const PF_W: u32 = 2;

/// Whether a writable `PT_LOAD` segment at a lower address than the
/// semaphore's own also maps the file page holding it (see the module
/// documentation): then the kernel raises the wrong copy in processes mapped
/// after attaching.
pub(crate) fn shares_page_with_earlier_writable_segment(
    segments: &[Segment],
    semaphore_vaddr: u64,
    semaphore_offset: u64,
) -> bool {
    let page = semaphore_offset & !(PAGE - 1);
    let Some(own) = segments
        .iter()
        .find(|s| s.vaddr <= semaphore_vaddr && semaphore_vaddr < s.vaddr + s.memsz)
    else {
        return false;
    };
    segments.iter().any(|other| {
        if std::ptr::eq(other, own) || other.flags & PF_W == 0 || other.vaddr >= own.vaddr {
            return false;
        }
        // The kernel maps the file pages covering [offset, offset + filesz).
        let first = other.offset & !(PAGE - 1);
        let end = (other.offset + other.filesz).div_ceil(PAGE) * PAGE;
        other.filesz > 0 && first <= page && page < end
    })
}

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

    fn segment(vaddr: u64, offset: u64, filesz: u64, memsz: u64, flags: u32) -> Segment {
        Segment {
            vaddr,
            memsz,
            offset,
            filesz,
            flags,
        }
    }

    /// lld's layout: RELRO segment and data segment share file page 0x88000.
    fn lld_layout() -> Vec<Segment> {
        vec![
            segment(0, 0, 0x3d318, 0x3d318, 4),
            segment(0x3e320, 0x3d320, 0x47af0, 0x47af0, 5),
            segment(0x86e10, 0x84e10, 0x3810, 0x41f0, 6),
            segment(0x8b620, 0x88620, 0x9c6, 0xa9a, 6),
        ]
    }

    #[test]
    fn a_semaphore_in_the_shared_page_is_a_hazard() {
        let segments = lld_layout();
        assert!(shares_page_with_earlier_writable_segment(
            &segments, 0x8bfe0, 0x88fe0
        ));
        // A later page of the data segment is mapped once.
        let mut bigger = segments.clone();
        bigger[3].filesz = 0x3000;
        bigger[3].memsz = 0x3000;
        assert!(!shares_page_with_earlier_writable_segment(
            &bigger, 0x8d010, 0x8a010
        ));
    }

    #[test]
    fn one_writable_segment_is_no_hazard() {
        // GNU ld: one RW segment holds RELRO data, .data, .probes and .bss.
        let segments = vec![
            segment(0, 0, 0x658, 0x658, 4),
            segment(0x1000, 0x1000, 0x3c1, 0x3c1, 5),
            segment(0x2000, 0x2000, 0x270, 0x270, 4),
            segment(0x3dd0, 0x2dd0, 0x382, 0x3a8, 6),
        ];
        assert!(!shares_page_with_earlier_writable_segment(
            &segments, 0x4150, 0x3150
        ));
        // Not inside any segment: nothing to say.
        assert!(!shares_page_with_earlier_writable_segment(
            &segments, 0x9000, 0x9000
        ));
    }

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
