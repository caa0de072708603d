//! User stacks: the return addresses the BPF program records with a hit
//! (`bpf_get_stack` with `BPF_F_USER_STACK`, which walks frame pointers),
//! and their symbolization in user space with blazesym (demangled Rust and
//! C++ names; file and line from DWARF when the module has it).
//!
//! The innermost frame is the probe site itself and is always right. Each
//! caller is found through the saved frame pointer of the frame below it,
//! so the chain is whole only through code built with frame pointers
//! (`-C force-frame-pointers=yes`, `-fno-omit-frame-pointer`); code built
//! without them shows a shorter or partly wrong chain above the first such
//! function.

use blazesym::Pid;
use blazesym::symbolize::cache::{self, Cache};
use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use usdt_tracer_common::{STACK_AREA_SIZE, STACK_DEPTH};

/// One frame of a user stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackFrame {
    /// The frame's address in the process: the probe site for the
    /// innermost frame, a return address for the others.
    pub address: u64,
    /// The function holding it, demangled, when known.
    pub symbol: Option<String>,
    /// Its source file, when the module has line information.
    pub file: Option<String>,
    /// Its source line, when the module has line information.
    pub line: Option<u32>,
}

impl std::fmt::Display for StackFrame {
    /// `ADDRESS SYMBOL (FILE:LINE)`, with `?` for an unknown symbol and
    /// without the parenthesis when the file is unknown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:#014x} {}",
            self.address,
            self.symbol.as_deref().unwrap_or("?")
        )?;
        if let Some(file) = &self.file {
            write!(f, " ({file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The return addresses of a record's stack area (innermost first); empty
/// when the kernel could not walk the stack.
pub(crate) fn stack_addresses(area: &[u8]) -> Vec<u64> {
    let Some(area) = area.get(..STACK_AREA_SIZE) else {
        return Vec::new();
    };
    let bytes = i64::from_ne_bytes(area[..8].try_into().expect("8 bytes"));
    let ips: Vec<u64> = area[8..]
        .as_chunks::<8>()
        .0
        .iter()
        .map(|word| u64::from_ne_bytes(*word))
        .collect();
    written_addresses(bytes, &ips)
}

/// The addresses `bpf_get_stack` wrote: `bytes` (its result: bytes
/// written, or a negative error) of `ips`, up to the first zero.
pub(crate) fn written_addresses(bytes: i64, ips: &[u64]) -> Vec<u64> {
    let frames = (bytes.max(0) as usize / 8).min(STACK_DEPTH);
    ips.iter()
        .take(frames)
        .copied()
        .take_while(|address| *address != 0)
        .collect()
}

/// Most frames kept between symbolizations before the cache starts over.
const CACHE_LIMIT: usize = 1 << 16;

/// What is known of one address: its symbol, file and line.
type Found = (Option<String>, Option<String>, Option<u32>);

/// Symbolizes stacks, remembering each (process, address) it resolved.
///
/// blazesym's symbolizer (which keeps every module it parsed) cannot move
/// between threads, and a [`Tracer`](crate::Tracer) can: it lives on a
/// thread of its own, asked for the addresses not yet known; the thread
/// ends when this is dropped.
pub(crate) struct StackSymbolizer {
    requests: mpsc::Sender<(u32, Vec<u64>)>,
    answers: mpsc::Receiver<Vec<Found>>,
    /// (pid, address, innermost) to the frame.
    cache: HashMap<(u32, u64, bool), StackFrame>,
}

impl StackSymbolizer {
    /// A symbolizer with an empty cache.
    pub(crate) fn new() -> StackSymbolizer {
        let (requests, asked) = mpsc::channel::<(u32, Vec<u64>)>();
        let (answer, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let symbolizer = Symbolizer::new();
            let mut cached = HashSet::new();
            for (pid, addresses) in asked {
                let found = symbolize(&symbolizer, &mut cached, pid, &addresses);
                if answer.send(found).is_err() {
                    break;
                }
            }
        });
        StackSymbolizer {
            requests,
            answers,
            cache: HashMap::new(),
        }
    }

    /// The frames of `addresses` (innermost first) in process `pid`. A
    /// caller's frame is looked up one byte before its return address (the
    /// call instruction), so a call that ends a function is shown in it.
    /// Frames that cannot be symbolized (the process has exited, the
    /// module has no symbols) keep their address alone.
    pub(crate) fn frames(&mut self, pid: u32, addresses: &[u64]) -> Vec<StackFrame> {
        let key = |index: usize, address: u64| (pid, address, index == 0);
        let missing: Vec<(usize, u64)> = addresses
            .iter()
            .enumerate()
            .filter(|(index, address)| !self.cache.contains_key(&key(*index, **address)))
            .map(|(index, address)| (index, *address))
            .collect();
        if !missing.is_empty() {
            if self.cache.len() + missing.len() > CACHE_LIMIT {
                self.cache.clear();
            }
            let lookup: Vec<u64> = missing
                .iter()
                .map(|(index, address)| {
                    if *index == 0 {
                        *address
                    } else {
                        address.saturating_sub(1)
                    }
                })
                .collect();
            let found = match self.requests.send((pid, lookup)) {
                Ok(()) => self.answers.recv().unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            for (position, (index, address)) in missing.iter().enumerate() {
                let (symbol, file, line) = found.get(position).cloned().unwrap_or_default();
                let frame = StackFrame {
                    address: *address,
                    symbol,
                    file,
                    line,
                };
                self.cache.insert(key(*index, *address), frame);
            }
        }
        addresses
            .iter()
            .enumerate()
            .map(|(index, address)| self.cache[&key(index, *address)].clone())
            .collect()
    }
}

/// Looks `addresses` up in process `pid`.
///
/// The process's mappings are read and kept the first time it is seen
/// (read again, blazesym 0.2.7 finds no mapping for later lookups), and
/// its modules are opened by path: so the stacks of a process that exits
/// after its first stack was read are still symbolized, as long as its
/// files are in place. A process that exited before its first stack was
/// read, and modules it maps after it, show addresses alone.
fn symbolize(
    symbolizer: &Symbolizer,
    cached: &mut HashSet<u32>,
    pid: u32,
    addresses: &[u64],
) -> Vec<Found> {
    if cached.insert(pid) {
        let _ = symbolizer.cache(&Cache::Process(cache::Process::new(Pid::from(pid))));
    }
    let mut process = Process::new(Pid::from(pid));
    process.map_files = false;
    let source = Source::Process(process.clone());
    let found = |symbolized: Option<Symbolized<'_>>| -> Found {
        match symbolized {
            Some(Symbolized::Sym(sym)) => {
                let code = sym.code_info.as_ref();
                (
                    Some(sym.name.to_string()),
                    code.map(|code| code.to_path().display().to_string()),
                    code.and_then(|code| code.line),
                )
            }
            _ => (None, None, None),
        }
    };
    let mut all: Vec<Found> = lookup(symbolizer, &source, addresses, found);
    // DWARF does not cover every address its unit's ranges hold (a
    // function split across sections); the symbol table may.
    let unknown: Vec<usize> = (0..all.len()).filter(|i| all[*i].0.is_none()).collect();
    if !unknown.is_empty() {
        process.debug_syms = false;
        let source = Source::Process(process);
        let again: Vec<u64> = unknown.iter().map(|i| addresses[*i]).collect();
        for (i, symbol) in unknown
            .into_iter()
            .zip(lookup(symbolizer, &source, &again, found))
        {
            all[i] = symbol;
        }
    }
    all
}

/// Looks `addresses` up in `source`. One module that cannot be read fails
/// a whole lookup: then each address is looked up alone.
fn lookup(
    symbolizer: &Symbolizer,
    source: &Source<'_>,
    addresses: &[u64],
    found: impl Fn(Option<Symbolized<'_>>) -> Found,
) -> Vec<Found> {
    match symbolizer.symbolize(source, Input::AbsAddr(addresses)) {
        Ok(all) => all.into_iter().map(|s| found(Some(s))).collect(),
        Err(_) => addresses
            .iter()
            .map(|address| {
                found(
                    symbolizer
                        .symbolize_single(source, Input::AbsAddr(*address))
                        .ok(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_give_their_written_frames() {
        let mut area = vec![0u8; STACK_AREA_SIZE];
        area[..8].copy_from_slice(&24i64.to_ne_bytes());
        for (i, address) in [0x1000u64, 0x2000, 0x3000, 0x4000].iter().enumerate() {
            area[8 + 8 * i..16 + 8 * i].copy_from_slice(&address.to_ne_bytes());
        }
        assert_eq!(stack_addresses(&area), [0x1000, 0x2000, 0x3000]);
        area[..8].copy_from_slice(&(-14i64).to_ne_bytes());
        assert!(stack_addresses(&area).is_empty());
        assert!(stack_addresses(&area[..100]).is_empty());
    }

    #[test]
    fn this_process_symbolizes_its_own_function() {
        let address = this_process_symbolizes_its_own_function as *const () as u64;
        let mut symbolizer = StackSymbolizer::new();
        let frames = symbolizer.frames(std::process::id(), &[address, 0x10]);
        let symbol = frames[0].symbol.as_deref().unwrap_or_default();
        assert!(
            symbol.ends_with("this_process_symbolizes_its_own_function"),
            "{frames:?}"
        );
        assert!(
            frames[0]
                .file
                .as_deref()
                .unwrap_or_default()
                .ends_with("stack.rs")
        );
        assert_eq!(
            (frames[1].address, frames[1].symbol.as_deref()),
            (0x10, None)
        );
    }
}
