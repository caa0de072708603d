//! ELF files: memory-mapped, with only the headers parsed up front; notes,
//! type records and symbol tables are read when asked for.

use crate::arch::Arch;
use crate::args::{SymbolError, SymbolResolver, parse_args, split_args};
use crate::bytes::{Endian, Layout, cstr_at};
use crate::error::Error;
use crate::note::{Notes, STAPSDT_BASE_SECTION, STAPSDT_SECTION, StapsdtNote};
use crate::probe::Probe;
use crate::types::{Signature, TYPES_SECTION, TypeRecord, TypeRecords};
use goblin::container::{Container, Ctx};
use goblin::elf::program_header::{PF_W, PF_X};
use goblin::elf::{Elf, ProgramHeader, SectionHeader, Sym, Symtab};
use memmap2::Mmap;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

const ET_REL: u16 = 1;
const PT_LOAD: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_NOBITS: u32 = 8;
const SHT_DYNSYM: u32 = 11;
const SHF_COMPRESSED: u64 = 0x800;
const SHN_UNDEF: usize = 0;
const SHN_XINDEX: u16 = 0xffff;
const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;
const STT_FILE: u8 = 4;
const STT_GNU_IFUNC: u8 = 10;

/// Files smaller than this are read rather than mapped.
const MAP_THRESHOLD: u64 = 16 * 1024;

/// The bytes of a file: mapped, or owned.
enum Data {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mapped(map) => map,
            Data::Owned(bytes) => bytes,
        }
    }
}

/// A loadable segment (`PT_LOAD`): where a range of the file is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Link-time virtual address of the segment's start.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// File offset of the segment's start.
    pub offset: u64,
    /// Size in the file.
    pub filesz: u64,
    /// `PF_X` (1), `PF_W` (2), `PF_R` (4).
    pub flags: u32,
}

impl Segment {
    /// The file offset of link-time address `vaddr` when it lies in the
    /// segment's first `len` bytes; `None` also when the offset would not
    /// fit in 64 bits (a hostile `p_offset`).
    fn offset_of(&self, vaddr: u64, len: u64) -> Option<u64> {
        let delta = vaddr.checked_sub(self.vaddr)?;
        if delta < len {
            self.offset.checked_add(delta)
        } else {
            None
        }
    }
}

/// A function defined in an ELF file's symbol tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// Link-time address of the function's first instruction.
    pub address: u64,
    /// Size in bytes, as the symbol table gives it (0 when unknown).
    pub size: u64,
    /// Whether the symbol is an indirect function (`STT_GNU_IFUNC`): its
    /// address is a resolver that picks the implementation at load time,
    /// not the implementation.
    pub indirect: bool,
}

/// An ELF file opened for reading. The file is memory-mapped and only its
/// headers are parsed by [`open`](ElfFile::open); the probe notes, type
/// records and symbol tables are read when [`probes`](ElfFile::probes)
/// needs them.
pub struct ElfFile {
    path: PathBuf,
    data: Data,
    layout: Layout,
    arch: Arch,
    e_type: u16,
    sections: Vec<SectionHeader>,
    /// Index of the section-name string table, if valid.
    shstrndx: Option<usize>,
    segments: Vec<Segment>,
}

impl std::fmt::Debug for ElfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfFile")
            .field("path", &self.path)
            .field("size", &self.data.len())
            .field("arch", &self.arch)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl ElfFile {
    /// Opens and maps the ELF file at `path` and parses its headers.
    pub fn open(path: impl AsRef<Path>) -> Result<ElfFile, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // The type first: opening a FIFO would wait for a writer, and a
        // device may act on being opened.
        if !std::fs::metadata(path).map_err(io)?.is_file() {
            return Err(Error::NotRegularFile {
                path: path.to_path_buf(),
            });
        }
        let file = File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        // The path may have been replaced in between.
        if !metadata.is_file() {
            return Err(Error::NotRegularFile {
                path: path.to_path_buf(),
            });
        }
        let data = if metadata.len() < MAP_THRESHOLD {
            Data::Owned(std::fs::read(path).map_err(io)?)
        } else {
            // SAFETY: the mapping is private and read-only. Its contents may
            // still change if another process writes the file meanwhile, as
            // for any reader of a mapped file; every read below is
            // bounds-checked against the mapping's length and treats the
            // bytes as untrusted, so changed bytes are handled like any
            // malformed input.
            Data::Mapped(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        ElfFile::from_data(path.to_path_buf(), data)
    }

    /// Parses an ELF image held in memory (for tests and fuzzing); errors
    /// name the file `<memory>`.
    pub fn parse(bytes: Vec<u8>) -> Result<ElfFile, Error> {
        ElfFile::from_data(PathBuf::from("<memory>"), Data::Owned(bytes))
    }

    fn from_data(path: PathBuf, data: Data) -> Result<ElfFile, Error> {
        let malformed = |reason: String| Error::Malformed {
            path: path.clone(),
            reason,
        };
        if data.len() < 16 || &data[..4] != b"\x7fELF" {
            return Err(Error::NotElf { path });
        }
        let is_64 = match data[4] {
            1 => false,
            2 => true,
            class => return Err(malformed(format!("unknown ELF class {class}"))),
        };
        let endian = match data[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            other => return Err(malformed(format!("unknown ELF data encoding {other}"))),
        };
        let layout = Layout { endian, is_64 };
        let header = Elf::parse_header(&data).map_err(|e| malformed(format!("ELF header: {e}")))?;
        let ctx = Ctx::new(
            if is_64 {
                Container::Big
            } else {
                Container::Little
            },
            match endian {
                Endian::Little => goblin::container::Endian::Little,
                Endian::Big => goblin::container::Endian::Big,
            },
        );
        let section_entry = if is_64 { 64 } else { 40 };
        let sections = if header.e_shoff == 0 {
            Vec::new()
        } else {
            if header.e_shentsize != section_entry {
                return Err(malformed(format!(
                    "section header entries are {} bytes, expected {section_entry}",
                    header.e_shentsize
                )));
            }
            let offset = usize::try_from(header.e_shoff)
                .map_err(|_| malformed("section header offset out of range".into()))?;
            SectionHeader::parse(&data, offset, usize::from(header.e_shnum), ctx)
                .map_err(|e| malformed(format!("section headers at offset {offset:#x}: {e}")))?
        };
        let shstrndx = if header.e_shstrndx == SHN_XINDEX {
            sections.first().map(|s| s.sh_link as usize)
        } else {
            Some(usize::from(header.e_shstrndx))
        }
        .filter(|&i| i != 0 && i < sections.len());
        let segment_entry = if is_64 { 56 } else { 32 };
        let segments = if header.e_phoff == 0 || header.e_phnum == 0 {
            Vec::new()
        } else {
            if header.e_phentsize != segment_entry {
                return Err(malformed(format!(
                    "program header entries are {} bytes, expected {segment_entry}",
                    header.e_phentsize
                )));
            }
            let offset = usize::try_from(header.e_phoff)
                .map_err(|_| malformed("program header offset out of range".into()))?;
            ProgramHeader::parse(&data, offset, usize::from(header.e_phnum), ctx)
                .map_err(|e| malformed(format!("program headers at offset {offset:#x}: {e}")))?
                .into_iter()
                .filter(|ph| ph.p_type == PT_LOAD)
                .map(|ph| Segment {
                    vaddr: ph.p_vaddr,
                    memsz: ph.p_memsz,
                    offset: ph.p_offset,
                    filesz: ph.p_filesz,
                    flags: ph.p_flags,
                })
                .collect()
        };
        Ok(ElfFile {
            path,
            data,
            layout,
            arch: Arch::from_elf(header.e_machine, is_64),
            e_type: header.e_type,
            sections,
            shstrndx,
            segments,
        })
    }

    /// The path the file was opened from (`<memory>` for [`parse`](ElfFile::parse)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The architecture, from the ELF machine and class.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Byte order and address width.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The ELF file type (`e_type`: 1 relocatable, 2 executable, 3 shared
    /// object or position-independent executable, 4 core).
    pub fn elf_type(&self) -> u16 {
        self.e_type
    }

    /// The file's loadable segments.
    pub fn load_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The whole file's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The file offset at which the byte at link-time address `vaddr` is
    /// stored, if a loadable segment holds it in the file.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|s| s.offset_of(vaddr, s.filesz))
    }

    /// Whether the kernel raises the semaphore at link-time address
    /// `semaphore_vaddr` (file offset `semaphore_offset`) in the wrong copy
    /// in processes that map this file after a uprobe with that reference
    /// counter was made.
    ///
    /// The kernel raises a semaphore in the first writable private mapping
    /// of the file, in address order, that maps its offset. Linkers such as
    /// lld place the RELRO segment and the data segment back to back in the
    /// file, so one file page is mapped by both: a semaphore in that page is
    /// raised in the RELRO copy (which the loader then makes read-only)
    /// while the process maps the file. True when a writable segment below
    /// the semaphore's own maps its page. In a running process whose RELRO
    /// segment is already read-only the kernel finds the right copy.
    pub fn semaphore_page_is_shared(&self, semaphore_vaddr: u64, semaphore_offset: u64) -> bool {
        semaphore_page_is_shared(&self.segments, semaphore_vaddr, semaphore_offset)
    }

    /// The file offset of `vaddr` when it lies in an executable segment: the
    /// only place a probe site can be.
    fn code_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.flags & PF_X != 0)
            .find_map(|s| s.offset_of(vaddr, s.filesz))
    }

    /// Like [`file_offset`](ElfFile::file_offset) but accepting addresses in
    /// a segment's zero-filled tail (`.bss`), whose offset the kernel still
    /// maps consistently.
    fn memory_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|s| s.offset_of(vaddr, s.memsz.max(s.filesz)))
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Malformed {
            path: self.path.clone(),
            reason,
        }
    }

    /// The name of section `header`, as bytes.
    fn section_name(&self, header: &SectionHeader) -> Option<&[u8]> {
        let strtab = &self.sections[self.shstrndx?];
        let table = self.section_bytes(strtab).ok()?;
        cstr_at(table, header.sh_name)
    }

    /// The first section called `name`.
    fn section(&self, name: &str) -> Option<&SectionHeader> {
        self.sections
            .iter()
            .find(|s| self.section_name(s) == Some(name.as_bytes()))
    }

    /// The bytes of a section (empty for `SHT_NOBITS`).
    fn section_bytes(&self, header: &SectionHeader) -> Result<&[u8], Error> {
        if header.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        let start = usize::try_from(header.sh_offset).ok();
        let end = start.and_then(|s| s.checked_add(usize::try_from(header.sh_size).ok()?));
        match (start, end) {
            (Some(start), Some(end)) if end <= self.data.len() => Ok(&self.data[start..end]),
            _ => Err(self.malformed(format!(
                "section at offset {:#x} with size {:#x} extends past the end of the file ({:#x} bytes)",
                header.sh_offset,
                header.sh_size,
                self.data.len()
            ))),
        }
    }

    /// The bytes of the named section, checked not to be compressed.
    fn named_section_bytes(&self, name: &str) -> Result<Option<(&SectionHeader, &[u8])>, Error> {
        let Some(header) = self.section(name) else {
            return Ok(None);
        };
        if header.sh_flags & SHF_COMPRESSED != 0 {
            return Err(self.malformed(format!("section {name} is compressed")));
        }
        Ok(Some((header, self.section_bytes(header)?)))
    }

    /// The raw stapsdt notes, as recorded (addresses not adjusted); empty
    /// when the file has no `.note.stapsdt` section. The first malformed
    /// note fails the call; [`notes_partial`](ElfFile::notes_partial) skips
    /// such notes instead.
    pub fn notes(&self) -> Result<Vec<StapsdtNote<'_>>, Error> {
        self.notes_partial()?.into_result()
    }

    /// The stapsdt notes that can be read, and one [`Error::Note`] per note
    /// that cannot (a string that is not UTF-8 or lacks its NUL, a short
    /// descriptor). A note whose sizes run past the section's end ends the
    /// walk, as nothing after it can be located. Fails as a whole only when
    /// the section itself cannot be read.
    pub fn notes_partial(&self) -> Result<Partial<StapsdtNote<'_>>, Error> {
        let mut partial = Partial::default();
        let Some((header, bytes)) = self.named_section_bytes(STAPSDT_SECTION)? else {
            return Ok(partial);
        };
        for note in Notes::new(bytes, self.layout, header.sh_addralign) {
            match note {
                Ok(note) => partial.found.push(note),
                Err(source) => partial.skipped.push(Error::Note {
                    path: self.path.clone(),
                    section_offset: header.sh_offset,
                    source,
                }),
            }
        }
        Ok(partial)
    }

    /// The raw `.usdt.types` records; empty when the file has none.
    pub fn type_records(&self) -> Result<Vec<TypeRecord<'_>>, Error> {
        self.type_records_partial()?.into_result()
    }

    /// The `.usdt.types` records before the first malformed one, and that
    /// one's [`Error::Types`] (a record's length is only known by reading
    /// it, so the walk ends there).
    fn type_records_partial(&self) -> Result<Partial<TypeRecord<'_>>, Error> {
        let mut partial = Partial::default();
        let Some((header, bytes)) = self.named_section_bytes(TYPES_SECTION)? else {
            return Ok(partial);
        };
        for record in TypeRecords::new(bytes, self.layout) {
            match record {
                Ok(record) => partial.found.push(record),
                Err(source) => partial.skipped.push(Error::Types {
                    path: self.path.clone(),
                    section_offset: header.sh_offset,
                    source,
                }),
            }
        }
        Ok(partial)
    }

    /// The link-time address of the symbol `name` from `.symtab` or
    /// `.dynsym`, when exactly one address is defined under that name.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        SymbolTables::new(self).resolve(name).ok()
    }

    /// Every distinct definition of the function `name`: the `STT_FUNC` and
    /// `STT_GNU_IFUNC` symbols of `.symtab` and `.dynsym` with that name, one
    /// per address, in table order. Symbol versions are not part of the
    /// name, so a library defining two versions of a function returns both.
    /// Empty when no table defines it (a stripped file without the symbol
    /// in `.dynsym`).
    pub fn functions(&self, name: &str) -> Vec<FunctionSymbol> {
        let mut found: Vec<FunctionSymbol> = Vec::new();
        for sym in defined_symbols(self, name) {
            let kind = sym.st_type();
            if (kind == STT_FUNC || kind == STT_GNU_IFUNC)
                && !found.iter().any(|f| f.address == sym.st_value)
            {
                found.push(FunctionSymbol {
                    address: sym.st_value,
                    size: sym.st_size,
                    indirect: kind == STT_GNU_IFUNC,
                });
            }
        }
        found
    }

    /// Every probe site of the file, in note order; empty when the file has
    /// none. Addresses are adjusted for a moved `.stapsdt.base` section (as
    /// prelink did); each probe's operands are parsed on their own, so one
    /// bad operand does not hide the others.
    ///
    /// Notes whose site lies before every executable segment are left out:
    /// they belong to functions the linker discarded (lld's `--gc-sections`
    /// keeps such notes with a pc of 0), so there is no code to probe.
    /// `readelf -n` still lists them; [`notes`](ElfFile::notes) returns
    /// every note. A site elsewhere outside the code is a bad note
    /// ([`Error::NotCode`]).
    ///
    /// The first bad note or record fails the call;
    /// [`probes_partial`](ElfFile::probes_partial) skips them instead.
    pub fn probes(&self) -> Result<Vec<Probe>, Error> {
        self.probes_partial()?.into_result()
    }

    /// Every probe site that can be read, as [`probes`](ElfFile::probes)
    /// gives them, and one error per note left out: a malformed note
    /// ([`Error::Note`]), a site outside the code ([`Error::NotCode`]),
    /// a semaphore outside every loadable segment
    /// ([`Error::OutsideSegments`]), a type record that disagrees with its
    /// note ([`Error::SignatureMismatch`]); a malformed `.usdt.types`
    /// record ([`Error::Types`]) leaves the sites after it untyped. Fails
    /// as a whole only when the file cannot be read for probes at all (a
    /// relocatable object, an unreadable or compressed section).
    pub fn probes_partial(&self) -> Result<Partial<Probe>, Error> {
        let Partial {
            found: notes,
            mut skipped,
        } = self.notes_partial()?;
        if notes.is_empty() {
            return Ok(Partial {
                found: Vec::new(),
                skipped,
            });
        }
        if self.e_type == ET_REL {
            return Err(Error::Relocatable {
                path: self.path.clone(),
            });
        }
        let base_section = self.section(STAPSDT_BASE_SECTION).map(|s| s.sh_addr);
        let records = self.type_records_partial()?;
        skipped.extend(records.skipped);
        let records = records.found;
        let mut signatures: HashMap<(u64, &str, &str), &Signature> = HashMap::new();
        for record in &records {
            signatures
                .entry((record.pc, record.provider, record.name))
                .or_insert(&record.signature);
        }
        let symbols = SymbolTables::new(self);
        let code_start = self
            .segments
            .iter()
            .filter(|s| s.flags & PF_X != 0)
            .map(|s| s.vaddr)
            .min();
        let mut probes = Vec::with_capacity(notes.len());
        for note in &notes {
            let adjust = match base_section {
                Some(actual) if note.base != 0 => actual.wrapping_sub(note.base),
                _ => 0,
            };
            let qualified = || format!("{}:{}", note.provider, note.name);
            let address = note.pc.wrapping_add(adjust);
            // A note whose function the linker garbage-collected keeps a
            // relocated pc of 0 (plus the label's offset), before the
            // file's code: no code is there, and nothing is wrong. Any
            // other pc outside the code is a bad note.
            let Some(file_offset) = self.code_offset(address) else {
                if code_start.is_some_and(|start| address >= start) {
                    skipped.push(Error::NotCode {
                        path: self.path.clone(),
                        probe: qualified(),
                        address,
                    });
                }
                continue;
            };
            let semaphore = (note.semaphore != 0).then(|| note.semaphore.wrapping_add(adjust));
            let semaphore_offset = match semaphore {
                Some(address) => match self.memory_offset(address) {
                    Some(offset) => Some(offset),
                    None => {
                        skipped.push(Error::OutsideSegments {
                            path: self.path.clone(),
                            probe: qualified(),
                            what: "semaphore",
                            address,
                        });
                        continue;
                    }
                },
                None => None,
            };
            let arg_specs = parse_args(self.arch, note.args, &symbols).map_err(|mut error| {
                error.probe = Some(qualified());
                error
            });
            let signature = signatures
                .get(&(note.pc, note.provider, note.name))
                .map(|&signature| signature.clone());
            if let Some(signature) = &signature {
                let args = split_args(note.args).len();
                if signature.slots() != args {
                    skipped.push(Error::SignatureMismatch {
                        path: self.path.clone(),
                        probe: qualified(),
                        pc: note.pc,
                        slots: signature.slots(),
                        args,
                    });
                    continue;
                }
            }
            probes.push(Probe {
                provider: note.provider.to_string(),
                name: note.name.to_string(),
                address,
                file_offset,
                semaphore,
                semaphore_offset,
                args: note.args.to_string(),
                arg_specs,
                signature,
            });
        }
        Ok(Partial {
            found: probes,
            skipped,
        })
    }
}

/// What a lenient read found: the items that could be read, and why each
/// bad one was left out.
#[derive(Debug)]
pub struct Partial<T> {
    /// The items read, in file order.
    pub found: Vec<T>,
    /// One error per note, record or module left out, naming the file and
    /// the note's offset or the probe.
    pub skipped: Vec<Error>,
}

impl<T> Default for Partial<T> {
    fn default() -> Partial<T> {
        Partial {
            found: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

impl<T> Partial<T> {
    /// The items when nothing was skipped, else the first error.
    pub fn into_result(self) -> Result<Vec<T>, Error> {
        match self.skipped.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(self.found),
        }
    }
}

/// Looks symbols up in `.symtab` and `.dynsym`, scanning the tables only
/// for names operands actually use, and remembering the answers.
struct SymbolTables<'a> {
    file: &'a ElfFile,
    cache: RefCell<HashMap<String, Result<u64, SymbolError>>>,
}

impl<'a> SymbolTables<'a> {
    fn new(file: &'a ElfFile) -> SymbolTables<'a> {
        SymbolTables {
            file,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Every distinct address defined under `name` in both tables.
    fn addresses(&self, name: &str) -> Vec<u64> {
        let mut found = Vec::new();
        for sym in defined_symbols(self.file, name) {
            if !found.contains(&sym.st_value) {
                found.push(sym.st_value);
            }
        }
        found
    }
}

/// Every defined symbol named `name` in `.symtab` and `.dynsym` (section
/// and file symbols left out), in table order.
fn defined_symbols(file: &ElfFile, name: &str) -> Vec<Sym> {
    let ctx = Ctx::new(
        if file.layout.is_64 {
            Container::Big
        } else {
            Container::Little
        },
        match file.layout.endian {
            Endian::Little => goblin::container::Endian::Little,
            Endian::Big => goblin::container::Endian::Big,
        },
    );
    let entry = if file.layout.is_64 { 24 } else { 16 };
    let mut found = Vec::new();
    for table in file
        .sections
        .iter()
        .filter(|s| s.sh_type == SHT_SYMTAB || s.sh_type == SHT_DYNSYM)
    {
        let Some(strings) = file
            .sections
            .get(table.sh_link as usize)
            .and_then(|s| file.section_bytes(s).ok())
        else {
            continue;
        };
        let (Ok(offset), Ok(size)) = (
            usize::try_from(table.sh_offset),
            usize::try_from(table.sh_size),
        ) else {
            continue;
        };
        let Ok(symbols) = Symtab::parse(&file.data, offset, size / entry, ctx) else {
            continue;
        };
        for index in 1..symbols.len() {
            let Some(sym): Option<Sym> = symbols.get(index) else {
                break;
            };
            if sym.st_shndx == SHN_UNDEF || matches!(sym.st_type(), STT_SECTION | STT_FILE) {
                continue;
            }
            if cstr_at(strings, sym.st_name) == Some(name.as_bytes()) {
                found.push(sym);
            }
        }
    }
    found
}

impl SymbolResolver for SymbolTables<'_> {
    fn resolve(&self, name: &str) -> Result<u64, SymbolError> {
        if let Some(answer) = self.cache.borrow().get(name) {
            return *answer;
        }
        let addresses = self.addresses(name);
        let answer = match addresses.as_slice() {
            [] => Err(SymbolError::NotFound),
            [address] => Ok(*address),
            many => Err(SymbolError::Ambiguous(many.len())),
        };
        self.cache.borrow_mut().insert(name.to_string(), answer);
        answer
    }
}

/// Page size assumed for file mappings.
const PAGE: u64 = 4096;

/// [`ElfFile::semaphore_page_is_shared`] over the file's `segments`.
fn semaphore_page_is_shared(
    segments: &[Segment],
    semaphore_vaddr: u64,
    semaphore_offset: u64,
) -> bool {
    let page = semaphore_offset & !(PAGE - 1);
    let Some(own) = segments
        .iter()
        .find(|s| s.vaddr <= semaphore_vaddr && semaphore_vaddr < s.vaddr.saturating_add(s.memsz))
    else {
        return false;
    };
    segments.iter().any(|other| {
        if std::ptr::eq(other, own) || other.flags & PF_W == 0 || other.vaddr >= own.vaddr {
            return false;
        }
        // The kernel maps the file pages covering [offset, offset + filesz).
        let first = other.offset & !(PAGE - 1);
        let end = other
            .offset
            .saturating_add(other.filesz)
            .div_ceil(PAGE)
            .saturating_mul(PAGE);
        other.filesz > 0 && first <= page && page < end
    })
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
        assert!(semaphore_page_is_shared(&segments, 0x8bfe0, 0x88fe0));
        // A later page of the data segment is mapped once.
        let mut bigger = segments.clone();
        bigger[3].filesz = 0x3000;
        bigger[3].memsz = 0x3000;
        assert!(!semaphore_page_is_shared(&bigger, 0x8d010, 0x8a010));
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
        assert!(!semaphore_page_is_shared(&segments, 0x4150, 0x3150));
        // Not inside any segment: nothing to say.
        assert!(!semaphore_page_is_shared(&segments, 0x9000, 0x9000));
    }

    #[test]
    fn hostile_sizes_do_not_overflow() {
        let segments = vec![
            segment(0, 0x1000, u64::MAX, 0x100, 6),
            segment(u64::MAX - 0x10, 0x1000, 0x10, u64::MAX, 6),
            segment(0x10000, 0x10000, 0x10, 0x10, 6),
        ];
        assert!(semaphore_page_is_shared(&segments, 0x10008, 0x10008));
        assert!(semaphore_page_is_shared(&segments, u64::MAX - 1, 0x1008));
    }
}
