//! The tracer's hash maps preallocated, for kernels before 6.1 (see
//! [`KernelFeatures::runtime_allocation`](crate::KernelFeatures::runtime_allocation)).
//!
//! The aggregation, latency-start and stack maps are declared with
//! `BPF_F_NO_PREALLOC`, so that a large `--map-entries` costs only the
//! entries used. aya 0.16 creates a map with the flags its object declares
//! and has no way to change them, so [`preallocated`] clears the flag in a
//! copy of the object, in each map's definition (`bpf_map_def` of the
//! `maps` section, which aya-ebpf writes).

use crate::error::TraceError;
use goblin::elf::Elf;

/// `BPF_F_NO_PREALLOC`.
const BPF_F_NO_PREALLOC: u32 = 1;
/// Where `map_flags` is in a `bpf_map_def` (after its type, key size,
/// value size and most entries, each a `u32`).
const MAP_FLAGS_OFFSET: usize = 16;

/// A copy of the BPF object `object` in which the hash maps named `maps`,
/// declared with `BPF_F_NO_PREALLOC`, are not: the kernel allocates their
/// entries when it creates them. The copy is 8-byte aligned, as aya needs.
pub(crate) fn preallocated(
    object: &[u8],
    maps: &[&'static str],
) -> Result<AlignedObject, TraceError> {
    let bad = |reason: String| TraceError::BadObject { reason };
    let elf = Elf::parse(object).map_err(|e| bad(format!("not an ELF object: {e}")))?;
    let mut copy = AlignedObject::new(object);
    for &map in maps {
        let symbol = elf
            .syms
            .iter()
            .find(|symbol| elf.strtab.get_at(symbol.st_name) == Some(map))
            .ok_or_else(|| TraceError::Missing {
                what: "map",
                name: map,
            })?;
        let at = elf
            .section_headers
            .get(symbol.st_shndx)
            .and_then(|section| section.sh_offset.checked_add(symbol.st_value))
            .and_then(|start| usize::try_from(start).ok()?.checked_add(MAP_FLAGS_OFFSET))
            .filter(|at| at.checked_add(4).is_some_and(|end| end <= object.len()))
            .ok_or_else(|| bad(format!("map `{map}` has no definition in the file")))?;
        let flags = &mut copy.bytes_mut()[at..at + 4];
        if u32::from_le_bytes(flags.try_into().expect("four bytes")) != BPF_F_NO_PREALLOC {
            return Err(bad(format!(
                "map `{map}` is not declared with BPF_F_NO_PREALLOC alone"
            )));
        }
        flags.copy_from_slice(&0u32.to_le_bytes());
    }
    Ok(copy)
}

/// An object's bytes in 8-byte aligned memory, as aya reads them.
pub(crate) struct AlignedObject {
    words: Vec<u64>,
    len: usize,
}

impl AlignedObject {
    /// A copy of `bytes`.
    fn new(bytes: &[u8]) -> AlignedObject {
        let mut copy = AlignedObject {
            words: vec![0; bytes.len().div_ceil(8)],
            len: bytes.len(),
        };
        copy.bytes_mut().copy_from_slice(bytes);
        copy
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialized bytes, any byte
        // is a valid `u8`, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, to change.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably from `self`.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::BPF_OBJECT;
    use usdt_tracer_common::{AGGREGATES_MAP, STACKS_MAP, STARTS_MAP};

    /// The flags aya reads for map `name` of `object`.
    fn flags(object: &[u8], name: &str) -> u32 {
        let object = aya_obj::Object::parse(object).expect("parse");
        object.maps[name].map_flags()
    }

    #[test]
    fn the_hash_maps_lose_no_prealloc_and_nothing_else_changes() {
        let maps = [AGGREGATES_MAP, STARTS_MAP, STACKS_MAP];
        let copy = preallocated(BPF_OBJECT, &maps).unwrap();
        assert_eq!(copy.bytes().as_ptr() as usize % 8, 0);
        for map in maps {
            assert_eq!(flags(BPF_OBJECT, map), BPF_F_NO_PREALLOC, "{map}");
            assert_eq!(flags(copy.bytes(), map), 0, "{map}");
        }
        let changed = BPF_OBJECT
            .iter()
            .zip(copy.bytes())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, maps.len());
    }

    #[test]
    fn a_map_without_the_flag_or_absent_is_an_error() {
        let error = preallocated(BPF_OBJECT, &["USDT_EVENTS"]).err().unwrap();
        assert!(
            error
                .to_string()
                .contains("not declared with BPF_F_NO_PREALLOC"),
            "{error}"
        );
        let error = preallocated(BPF_OBJECT, &["NO_SUCH_MAP"]).err().unwrap();
        assert!(matches!(error, TraceError::Missing { .. }), "{error}");
        let error = preallocated(b"not an object", &[STARTS_MAP]).err().unwrap();
        assert!(
            error
                .to_string()
                .starts_with("bad BPF object: not an ELF object"),
            "{error}"
        );
    }
}
