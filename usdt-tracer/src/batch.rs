//! Reading a whole BPF hash map in a few system calls
//! (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6).
//!
//! aya 0.16 iterates a map with two system calls per entry (the next key,
//! then its value): 40,000 for the 20,000 counters a scrape of `usdt
//! serve` may read. aya has no batch operations, so this module makes the
//! one call itself, on the map's descriptor: a few calls for the whole
//! map. Every kernel the tracer runs on (5.10 and later) has it for hash
//! maps.

use aya::Pod;
use aya::maps::IterableMap;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// `BPF_MAP_LOOKUP_BATCH`, the `bpf` command.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Entries asked for per call. A call returns whole hash buckets: when one
/// bucket alone does not fit, it is asked again with twice the room.
const FIRST_ROOM: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of the hash map `map`, read in batches.
pub(crate) fn entries<M, K, V>(map: &M) -> io::Result<Vec<(K, V)>>
where
    M: IterableMap<K, V>,
    K: Pod,
    V: Pod,
{
    let fd = map.map().fd().as_fd();
    let mut entries = Vec::new();
    let mut room = FIRST_ROOM;
    // Where the next call starts (None: at the beginning) and where the
    // kernel says the following one starts. For a hash map the position is
    // a bucket index; 8 bytes leave room.
    let mut start: Option<u64> = None;
    let mut next = 0u64;
    // One pair of buffers for every call (fresh ones per call would be
    // faulted in again by each call's copy).
    let mut keys = vec![0u8; room * size_of::<K>()];
    let mut values = vec![0u8; room * size_of::<V>()];
    loop {
        let (copied, result) = lookup_batch(
            fd,
            start.as_ref(),
            &mut next,
            (&mut keys, size_of::<K>()),
            (&mut values, size_of::<V>()),
        );
        let done = match result {
            Ok(()) => false,
            // The end; the last entries were copied all the same.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => true,
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) && copied == 0 => {
                room *= 2;
                keys.resize(room * size_of::<K>(), 0);
                values.resize(room * size_of::<V>(), 0);
                continue;
            }
            Err(error) => return Err(error),
        };
        entries.extend((0..copied).map(|i| (read::<K>(&keys, i), read::<V>(&values, i))));
        if done {
            return Ok(entries);
        }
        start = Some(next);
    }
}

/// One `BPF_MAP_LOOKUP_BATCH` from `start` (None: the beginning) into
/// `keys` and `values`, entries of `key_size` and `value_size` bytes, as
/// many as both hold: how many entries it copied, and the kernel's answer.
/// The kernel writes where the next call starts into `next`.
fn lookup_batch(
    fd: BorrowedFd<'_>,
    start: Option<&u64>,
    next: &mut u64,
    (keys, key_size): (&mut [u8], usize),
    (values, value_size): (&mut [u8], usize),
) -> (usize, io::Result<()>) {
    let room = (keys.len() / key_size).min(values.len() / value_size);
    let mut attr = BatchAttr {
        in_batch: start.map_or(0, |start| std::ptr::from_ref(start) as u64),
        out_batch: std::ptr::from_mut(next) as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count: u32::try_from(room).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: the kernel reads 4 bytes at `in_batch` and writes 4 at
    // `out_batch` (a hash map's bucket index; both point to 8 bytes we
    // borrow), and writes at most `count` keys and values of the map's
    // sizes into the buffers we borrow mutably, which hold `room` of each:
    // `key_size` and `value_size` are the map's (aya checked the map
    // against the types when it opened it). It updates `count` in the
    // attribute we own.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_BATCH,
            &raw mut attr,
            size_of::<BatchAttr>(),
        )
    };
    let answer = if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    ((attr.count as usize).min(room), answer)
}

/// The `index`th value of type `T` in `bytes`.
fn read<T: Pod>(bytes: &[u8], index: usize) -> T {
    let bytes = &bytes[index * size_of::<T>()..][..size_of::<T>()];
    // SAFETY: `bytes` holds size_of::<T>() bytes (the slicing checked it),
    // and a `Pod` type is valid for any bit pattern; the read is unaligned.
    unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
}
