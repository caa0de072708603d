//! The sweep: every ELF file under /usr/bin, /usr/lib and /usr/lib64 of
//! this machine. usdt-reader must open every one; for each file with a
//! `.note.stapsdt` section its notes must equal `readelf -n`'s, and every
//! probe's arguments must parse (zero parse errors).

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use usdt_interop_tests::elf::{ReadelfNote, readelf_notes};
use usdt_interop_tests::require_tool;
use usdt_reader::ElfFile;

const ROOTS: &[&str] = &["/usr/bin", "/usr/lib", "/usr/lib64"];

/// Every regular file under `root`, without following symbolic links, each
/// (device, inode) once.
fn walk(root: &Path, seen: &mut HashSet<(u64, u64)>, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            walk(&entry.path(), seen, out);
        } else if metadata.is_file() && seen.insert((metadata.dev(), metadata.ino())) {
            out.push(entry.path());
        }
    }
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

#[test]
fn every_elf_file_under_usr_agrees_with_readelf() {
    if !require_tool("reader_sweep", "readelf") {
        return;
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for root in ROOTS {
        walk(Path::new(root), &mut seen, &mut files);
    }
    let elf_files: Vec<&PathBuf> = files.iter().filter(|f| is_elf(f)).collect();
    let mut open_errors = Vec::new();
    let mut with_notes = Vec::new();
    for path in &elf_files {
        match ElfFile::open(path).and_then(|file| Ok(!file.notes()?.is_empty())) {
            Ok(true) => with_notes.push(*path),
            Ok(false) => {}
            Err(error) => open_errors.push(error.to_string()),
        }
    }
    assert!(
        open_errors.is_empty(),
        "usdt-reader failed on:\n{}",
        open_errors.join("\n")
    );
    assert!(
        !with_notes.is_empty(),
        "no ELF file with probes under {ROOTS:?} (python3 and libstdc++ have some)"
    );

    let mut parse_errors = Vec::new();
    let mut probes = 0;
    for path in &with_notes {
        // readelf of the machine's own architecture; files of others
        // (cross toolchains' target libraries) through their readelf.
        let file = ElfFile::open(path).unwrap();
        let readelf = match file.arch() {
            usdt_reader::Arch::AArch64 => "aarch64-linux-gnu-readelf",
            _ => "readelf",
        };
        let expected = readelf_notes(readelf, path);
        let ours: Vec<ReadelfNote> = file
            .notes()
            .unwrap()
            .iter()
            .map(ReadelfNote::from)
            .collect();
        assert_eq!(ours, expected, "{}", path.display());
        let listed = file
            .probes()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for probe in &listed {
            if let Err(error) = &probe.arg_specs {
                parse_errors.push(format!("{}: {error}", path.display()));
            }
        }
        probes += listed.len();
    }
    eprintln!(
        "sweep: {} files, {} ELF, {} with probes, {probes} probes, {} parse errors",
        files.len(),
        elf_files.len(),
        with_notes.len(),
        parse_errors.len()
    );
    assert!(parse_errors.is_empty(), "{}", parse_errors.join("\n"));
}
