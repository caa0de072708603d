//! Semaphores of typed providers sit on a file page of their own, so the
//! kernel's uprobe reference counter raises them in processes started after
//! a tracer attached to the binary.
//!
//! lld lays the RELRO segment and the writable data segment back to back in
//! the file; the kernel raises a semaphore in the first writable mapping of
//! its file page, which for a semaphore in that shared page is the RELRO
//! segment's copy. usdt-runtime starts `.probes` on a page boundary so that
//! never happens.

use crate::CATALOG;
use goblin::elf::Elf;
use std::path::Path;
use std::process::Command;
use usdt_interop_tests::cli::usdt;
use usdt_interop_tests::elf::{read, section};
use usdt_interop_tests::trace::{cookies_or_refused, json_events, start_trace};
use usdt_interop_tests::{require_bpf, run};
use usdt_reader::ElfFile;

const TICK: &str = env!("CARGO_BIN_EXE_guarded_tick");
const PAGE: u64 = 4096;
const PF_W: u32 = 2;

/// Checks that `.probes` starts on a page boundary, in memory and in the
/// file, and that no writable segment but the semaphore's own maps the file
/// page of any semaphore. (Whether the page would otherwise be shared
/// depends on where the linker happened to put things; the alignment is
/// what makes it never happen.)
fn assert_semaphores_on_own_page(path: &str) {
    let file = ElfFile::open(path).expect("open the binary");
    let bytes = read(Path::new(path));
    let elf = Elf::parse(&bytes).expect("parse the binary");
    let probes_section =
        section(&elf, &bytes, ".probes").unwrap_or_else(|| panic!("{path} has no .probes section"));
    assert_eq!(
        probes_section.addr % PAGE,
        0,
        "{path}: .probes address {:#x}",
        probes_section.addr
    );
    assert_eq!(
        probes_section.offset % PAGE,
        0,
        "{path}: .probes offset {:#x}",
        probes_section.offset
    );

    let segments = file.load_segments();
    let semaphores: Vec<(u64, u64)> = file
        .probes()
        .expect("probes")
        .iter()
        .filter_map(|p| Some((p.semaphore?, p.semaphore_offset?)))
        .collect();
    assert!(!semaphores.is_empty(), "{path} has guarded probes");
    for (vaddr, offset) in semaphores {
        let page = offset / PAGE;
        let holders: Vec<_> = segments
            .iter()
            .filter(|s| s.flags & PF_W != 0 && s.filesz > 0)
            .filter(|s| s.offset / PAGE <= page && page < (s.offset + s.filesz).div_ceil(PAGE))
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "{path}: the semaphore at {vaddr:#x} (file offset {offset:#x}) shares its page: {holders:?}"
        );
        assert!(holders[0].vaddr <= vaddr && vaddr < holders[0].vaddr + holders[0].memsz);
    }
}

#[test]
fn semaphores_sit_on_a_page_no_other_segment_maps() {
    assert_semaphores_on_own_page(TICK);
    assert_semaphores_on_own_page(CATALOG);
}

#[test]
fn a_guarded_probe_fires_in_a_process_started_after_attaching() {
    if !require_bpf("a_guarded_probe_fires_in_a_process_started_after_attaching") {
        return;
    }
    usdt(); // Built before the trace starts.
    let spec = format!("{TICK}:tick:tick");
    let args = ["--json", "--count", "3", "--duration", "30", &spec];
    // Without BPF cookies (before 5.15) a PIE traced by path is refused.
    if !cookies_or_refused(&args, "tick:tick in ") {
        return;
    }
    let (trace, stderr) = start_trace(&args);
    // Started after the tracer attached: the kernel raises the semaphore as
    // the binary is mapped, so the probe is enabled from the start.
    let output = run(Command::new(TICK).arg("1"));
    assert!(
        output.starts_with("enabled\n"),
        "the program did not see its probe enabled from the start:\n{output}"
    );
    let traced = trace.finish();
    drop(stderr);
    let stderr_text = String::from_utf8_lossy(&traced.stderr);
    assert!(traced.status.success(), "{traced:?}");
    assert!(!stderr_text.contains("RELRO"), "{stderr_text}");
    let events = json_events(&traced);
    assert_eq!(events.len(), 3, "{events:?}");
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["args"], serde_json::json!([n]));
    }
}
