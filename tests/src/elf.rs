//! ELF files read independently of usdt-reader, to check it and the probe
//! macros against: sections, symbols and segments through goblin, the
//! `.usdt.types` records decoded from the format, the notes and sections
//! `readelf` lists, and copies of files with edited notes.

use crate::run;
use goblin::elf::Elf;
use std::path::Path;
use std::process::Command;
use usdt_reader::note::StapsdtNote;

/// A file's bytes.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// Sections, symbols and segments (goblin)

/// What the tests look at in a section header, and the section's contents.
#[derive(Debug)]
pub struct SectionInfo<'a> {
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_offset`: where the contents start in the file.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// The contents (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
}

/// The section named `name` of `elf`, parsed from `bytes`.
pub fn section<'a>(elf: &Elf, bytes: &'a [u8], name: &str) -> Option<SectionInfo<'a>> {
    elf.section_headers.iter().find_map(|sh| {
        if elf.shdr_strtab.get_at(sh.sh_name) != Some(name) {
            return None;
        }
        let data = if sh.sh_type == goblin::elf::section_header::SHT_NOBITS {
            &[][..]
        } else {
            &bytes[sh.sh_offset as usize..(sh.sh_offset + sh.sh_size) as usize]
        };
        Some(SectionInfo {
            sh_type: sh.sh_type,
            flags: sh.sh_flags,
            addr: sh.sh_addr,
            offset: sh.sh_offset,
            size: sh.sh_size,
            align: sh.sh_addralign,
            data,
        })
    })
}

/// The address of the ELF symbol `name`, if the symbol table has it.
pub fn symbol_address(elf: &Elf, name: &str) -> Option<u64> {
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .map(|s| s.st_value)
}

/// The bytes of the file mapped at virtual address `addr` (through the
/// PT_LOAD segment that contains it).
pub fn bytes_at<'a>(elf: &Elf, bytes: &'a [u8], addr: u64, len: usize) -> &'a [u8] {
    let ph = elf
        .program_headers
        .iter()
        .find(|ph| {
            ph.p_type == goblin::elf::program_header::PT_LOAD
                && ph.p_vaddr <= addr
                && addr + len as u64 <= ph.p_vaddr + ph.p_filesz
        })
        .unwrap_or_else(|| panic!("no PT_LOAD segment holds {addr:#x}"));
    let offset = (addr - ph.p_vaddr + ph.p_offset) as usize;
    &bytes[offset..offset + len]
}

// ---------------------------------------------------------------------------
// The `.usdt.types` records

/// One record of `.usdt.types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRecord {
    /// The flags byte (bit 0: the probe is semaphore-guarded).
    pub flags: u8,
    /// The probe site's address.
    pub pc: u64,
    /// The provider name.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// Each argument's kind code and name.
    pub args: Vec<(u8, String)>,
}

/// Parses a little-endian 64-bit `.usdt.types` section, panicking on any
/// deviation from the format.
pub fn parse_type_records(mut data: &[u8]) -> Vec<TypeRecord> {
    use usdt_format::{MAX_ARGS, TYPES_MAGIC, TYPES_VERSION};
    fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
        assert!(data.len() >= n, "truncated .usdt.types record");
        let (head, tail) = data.split_at(n);
        *data = tail;
        head
    }
    fn cstr(data: &mut &[u8]) -> String {
        let end = data
            .iter()
            .position(|&b| b == 0)
            .expect("unterminated string in .usdt.types");
        let s = String::from_utf8(data[..end].to_vec()).expect("UTF-8 in .usdt.types");
        *data = &data[end + 1..];
        s
    }
    let mut records = Vec::new();
    while !data.is_empty() {
        let head = take(&mut data, 4);
        assert_eq!(head[0], TYPES_MAGIC, "bad magic in .usdt.types");
        assert_eq!(head[1], TYPES_VERSION, "bad version in .usdt.types");
        let count = head[2];
        assert!(
            usize::from(count) <= MAX_ARGS,
            "too many arguments in .usdt.types"
        );
        let flags = head[3];
        let pc = u64::from_le_bytes(take(&mut data, 8).try_into().unwrap());
        let provider = cstr(&mut data);
        let name = cstr(&mut data);
        let args = (0..count)
            .map(|_| {
                let kind = take(&mut data, 1)[0];
                (kind, cstr(&mut data))
            })
            .collect();
        records.push(TypeRecord {
            flags,
            pc,
            provider,
            name,
            args,
        });
    }
    records
}

// ---------------------------------------------------------------------------
// readelf

/// One stapsdt note as `readelf -n` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadelfNote {
    /// The provider name.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// The probe site's address (`Location:`).
    pub location: u64,
    /// The address of `.stapsdt.base` when the note was written (`Base:`).
    pub base: u64,
    /// The semaphore's address, 0 for none (`Semaphore:`).
    pub semaphore: u64,
    /// The argument string (`Arguments:`).
    pub args: String,
}

impl ReadelfNote {
    /// `provider:name`.
    pub fn probe(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }
}

impl From<&StapsdtNote<'_>> for ReadelfNote {
    /// The fields of a note as usdt-reader decoded it, to compare with
    /// readelf's.
    fn from(note: &StapsdtNote<'_>) -> ReadelfNote {
        ReadelfNote {
            provider: note.provider.to_string(),
            name: note.name.to_string(),
            location: note.pc,
            base: note.base,
            semaphore: note.semaphore,
            args: note.args.to_string(),
        }
    }
}

/// The stapsdt notes of `path`, by running `readelf` (or a cross readelf)
/// with `-n` and reading its `Provider:`, `Name:`, `Location:` and
/// `Arguments:` lines.
pub fn readelf_notes(readelf: &str, path: &Path) -> Vec<ReadelfNote> {
    let text = run(Command::new(readelf).arg("-n").arg("-W").arg(path));
    parse_readelf_notes(&text)
}

/// Parses the stapsdt part of `readelf -n` output.
fn parse_readelf_notes(text: &str) -> Vec<ReadelfNote> {
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
    let mut notes = Vec::new();
    let mut current: Option<ReadelfNote> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        // With -W the provider shares the line of the note's header.
        if let Some(at) = line.find("Provider: ") {
            let provider = &line[at + "Provider: ".len()..];
            current = Some(ReadelfNote {
                provider: provider.to_string(),
                name: String::new(),
                location: 0,
                base: 0,
                semaphore: 0,
                args: String::new(),
            });
        } else if let (Some(name), Some(note)) = (trimmed.strip_prefix("Name: "), current.as_mut())
        {
            note.name = name.to_string();
        } else if let (Some(rest), Some(note)) =
            (trimmed.strip_prefix("Location: "), current.as_mut())
        {
            // `Location: 0x..., Base: 0x..., Semaphore: 0x...`
            let fields: Vec<&str> = rest.split(", ").collect();
            note.location = hex(fields[0]);
            note.base = hex(fields[1].trim_start_matches("Base: "));
            note.semaphore = hex(fields[2].trim_start_matches("Semaphore: "));
        } else if trimmed.starts_with("Arguments:") {
            let mut note = current.take().expect("Arguments: after Provider:");
            note.args = trimmed
                .strip_prefix("Arguments:")
                .unwrap()
                .trim_start_matches(' ')
                .to_string();
            notes.push(note);
        }
    }
    notes
}

/// A section as `readelf -SW` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadelfSection {
    /// Its address.
    pub address: u64,
    /// Its offset in the file.
    pub offset: usize,
    /// Its size.
    pub size: usize,
}

/// The section named `name` of `path`, from `readelf -SW` (or a cross
/// readelf); `None` when readelf lists no such section.
pub fn readelf_section(readelf: &str, path: &Path, name: &str) -> Option<ReadelfSection> {
    let text = run(Command::new(readelf).arg("-SW").arg(path));
    let named = format!(" {name} ");
    let line = text.lines().find(|l| l.contains(&named))?;
    // NAME TYPE ADDRESS OFFSET SIZE ...
    let fields: Vec<&str> = line[line.find(&named).unwrap()..]
        .split_whitespace()
        .collect();
    let hex = |field: &str| {
        u64::from_str_radix(field, 16)
            .unwrap_or_else(|_| panic!("{}: bad section line `{line}`", path.display()))
    };
    Some(ReadelfSection {
        address: hex(fields[2]),
        offset: hex(fields[3]) as usize,
        size: hex(fields[4]) as usize,
    })
}

// ---------------------------------------------------------------------------
// Edited notes

/// The bytes of the little-endian ELF file at `path` with `edit` applied
/// to the descriptor of each stapsdt note (as usdt-reader finds them):
/// `edit` gets the note and its descriptor's bytes, which are the pc, base
/// and semaphore (8 bytes each), then the provider, name and argument
/// strings, each ending in a NUL.
pub fn edit_notes(path: &Path, mut edit: impl FnMut(&StapsdtNote, &mut [u8])) -> Vec<u8> {
    let mut bytes = read(path);
    let section = {
        let elf = Elf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        section(&elf, &bytes, ".note.stapsdt")
            .unwrap_or_else(|| panic!("{}: no .note.stapsdt", path.display()))
            .offset as usize
    };
    let file = usdt_reader::ElfFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    for note in file.notes().unwrap_or_else(|e| panic!("{e}")) {
        // namesz/descsz/type (12) and the owner "stapsdt\0" (8).
        let start = section + note.offset + 12 + 8;
        let len = 24 + note.provider.len() + note.name.len() + note.args.len() + 3;
        edit(&note, &mut bytes[start..start + len]);
    }
    bytes
}

/// Writes `bytes` as an executable next to `like`, named `name`.
pub fn write_copy(like: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = like.with_file_name(name);
    std::fs::write(&copy, bytes).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}
