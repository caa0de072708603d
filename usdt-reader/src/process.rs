//! Running processes: the ELF modules they map, their load biases and the
//! runtime addresses of their probes.

use crate::elf::{ElfFile, Partial};
use crate::error::Error;
use crate::probe::Probe;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A running process, read through `/proc/PID` (or, once its main thread
/// has exited while other threads run, through `/proc/TID` of one of
/// those: the kernel keeps the main thread's entry, whose memory files
/// are then empty, until the last thread exits).
#[derive(Debug, Clone)]
pub struct Process {
    pid: u32,
    proc_dir: PathBuf,
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// Device, `major:minor` in hexadecimal.
    pub dev: String,
    /// Inode (0 for anonymous mappings).
    pub inode: u64,
    /// The mapped path as the process sees it (`[heap]`, `[vdso]` and the
    /// like for special mappings; a ` (deleted)` suffix when the file was
    /// removed), or `None` for anonymous memory.
    pub path: Option<String>,
}

/// An ELF file mapped by a process, with its probes.
#[derive(Debug, Clone)]
pub struct Module {
    /// The path as the process sees it (from `/proc/PID/maps`, without the
    /// prefix of a chroot).
    pub path: PathBuf,
    /// The same file reachable from here: under `/proc/PID/root` (so files
    /// inside containers are found), the path itself for a chrooted
    /// process, or the kernel's link to the mapping
    /// (`/proc/PID/map_files/START-END`) when no path names the mapped file
    /// (deleted, replaced, or seen through another mount namespace).
    pub host_path: PathBuf,
    /// The load bias: runtime address = link-time address + bias.
    pub bias: u64,
    /// The module's probes, with link-time addresses.
    pub probes: Vec<Probe>,
}

impl Module {
    /// The runtime address of `probe`'s site in this process.
    pub fn runtime_address(&self, probe: &Probe) -> u64 {
        probe.address.wrapping_add(self.bias)
    }

    /// The runtime address of `probe`'s semaphore in this process.
    pub fn runtime_semaphore(&self, probe: &Probe) -> Option<u64> {
        probe.semaphore.map(|s| s.wrapping_add(self.bias))
    }
}

const DELETED: &str = " (deleted)";

impl Process {
    /// The process `pid`; an error when it does not exist, or has exited
    /// and waits to be reaped (every thread has exited).
    pub fn open(pid: u32) -> Result<Process, Error> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == 0 {
            return Err(Error::NoSuchProcess { pid });
        }
        match std::fs::metadata(&proc_dir) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoSuchProcess { pid });
            }
            Err(source) => {
                return Err(Error::Process {
                    pid,
                    path: proc_dir,
                    source,
                });
            }
        }
        if has_exited(&proc_dir) {
            // The main thread has exited: another may still run.
            let live = std::fs::read_dir(proc_dir.join("task"))
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&tid| tid != pid)
                .map(|tid| PathBuf::from(format!("/proc/{tid}")))
                .find(|dir| !has_exited(dir));
            return match live {
                Some(proc_dir) => Ok(Process { pid, proc_dir }),
                None => Err(Error::NoSuchProcess { pid }),
            };
        }
        Ok(Process { pid, proc_dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The directory the process is read through: `/proc/PID`, or
    /// `/proc/TID` of a running thread when the main thread has exited
    /// (its `maps`, `mem`, `root` and `map_files` are the process's).
    pub fn dir(&self) -> &Path {
        &self.proc_dir
    }

    /// A thread of the process that has not exited: the process id, or a
    /// thread's id when the main thread has exited. Interfaces that take a
    /// thread and look at its memory (a perf event's target) need one that
    /// still has its memory.
    pub fn live_thread(&self) -> u32 {
        self.proc_dir
            .file_name()
            .and_then(|name| name.to_str()?.parse().ok())
            .unwrap_or(self.pid)
    }

    /// `/proc/PID/root`: the process's view of the file system.
    pub fn root(&self) -> PathBuf {
        self.proc_dir.join("root")
    }

    /// The process's memory mappings, from `/proc/PID/maps`.
    pub fn mappings(&self) -> Result<Vec<Mapping>, Error> {
        let path = self.proc_dir.join("maps");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error)
                if error.kind() == io::ErrorKind::NotFound
                    || error.raw_os_error() == Some(ESRCH) =>
            {
                return Err(Error::NoSuchProcess { pid: self.pid });
            }
            Err(source) => {
                return Err(Error::Process {
                    pid: self.pid,
                    path,
                    source,
                });
            }
        };
        text.lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                parse_maps_line(line).ok_or_else(|| Error::BadMaps {
                    pid: self.pid,
                    line: line.to_string(),
                })
            })
            .collect()
    }

    /// Every ELF file the process maps (its executable and shared
    /// libraries, each once), with its load bias and probes. Mapped files
    /// that are not ELF (locale archives, fonts, ...) are left out. The
    /// first module that cannot be read, or bad note in one, fails the
    /// call; [`modules_partial`](Process::modules_partial) skips them.
    pub fn modules(&self) -> Result<Vec<Module>, Error> {
        self.modules_partial()?.into_result()
    }

    /// Every ELF module that can be read, as [`modules`](Process::modules)
    /// gives them, each with the probes [`ElfFile::probes_partial`] finds;
    /// `skipped` holds one error per module that cannot be read and per
    /// note left out of a module. Fails as a whole only when the process's
    /// maps cannot be read.
    pub fn modules_partial(&self) -> Result<Partial<Module>, Error> {
        self.modules_partial_where(|_| true)
    }

    /// The modules of [`modules_partial`](Process::modules_partial) whose
    /// mappings `keep` accepts (called with the first mapping of each
    /// file): the others are not opened, so looking at the files a process
    /// has mapped since a known set costs only the new ones.
    pub fn modules_partial_where(
        &self,
        keep: impl Fn(&Mapping) -> bool,
    ) -> Result<Partial<Module>, Error> {
        let mappings = self.mappings()?;
        // Group the mappings of each file, in order of first appearance.
        let mut order: Vec<(String, u64, String)> = Vec::new();
        let mut groups: HashMap<(String, u64, String), Vec<&Mapping>> = HashMap::new();
        for mapping in &mappings {
            let Some(path) = &mapping.path else { continue };
            if !path.starts_with('/') || !keep(mapping) {
                continue;
            }
            let key = if mapping.inode != 0 {
                (mapping.dev.clone(), mapping.inode, String::new())
            } else {
                (String::new(), 0, path.clone())
            };
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(mapping);
        }
        // A chrooted process's maps show paths from our root (its files are
        // reachable from here); its own view strips its root's prefix.
        let root_link = std::fs::read_link(self.root()).ok();
        let mut modules = Vec::new();
        let mut skipped = Vec::new();
        for key in order {
            let group = &groups[&key];
            let Some(first) = group.iter().min_by_key(|m| m.offset) else {
                continue;
            };
            let Some(path) = first.path.as_deref() else {
                continue;
            };
            let map_file = self
                .proc_dir
                .join("map_files")
                .join(format!("{:x}-{:x}", first.start, first.end));
            let (seen_path, candidate) = match path.strip_suffix(DELETED) {
                Some(original) => (PathBuf::from(original), None),
                None => match root_link
                    .as_deref()
                    .filter(|root| *root != Path::new("/"))
                    .and_then(|root| Path::new(path).strip_prefix(root).ok())
                {
                    Some(inside) => (Path::new("/").join(inside), Some(PathBuf::from(path))),
                    None => (
                        PathBuf::from(path),
                        Some(self.root().join(path.trim_start_matches('/'))),
                    ),
                },
            };
            // The path through the process's root when it names the mapped
            // file itself (same device and inode); otherwise (another mount
            // namespace's view, an overlay, a replaced file) the kernel's
            // link to the mapping.
            let host_path = candidate
                .filter(|candidate| same_file(candidate, first))
                .unwrap_or(map_file);
            let file = match ElfFile::open(&host_path) {
                Ok(file) => file,
                Err(Error::NotElf { .. } | Error::NotRegularFile { .. }) => continue,
                // The mapping went away between reading the maps and now.
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue;
                }
                Err(error) => {
                    skipped.push(error);
                    continue;
                }
            };
            let Some(bias) = load_bias(&file, first) else {
                continue;
            };
            let probes = match file.probes_partial() {
                Ok(probes) => probes,
                Err(error) => {
                    skipped.push(error);
                    continue;
                }
            };
            skipped.extend(probes.skipped);
            modules.push(Module {
                path: seen_path,
                probes: probes.found,
                host_path,
                bias,
            });
        }
        Ok(Partial {
            found: modules,
            skipped,
        })
    }
}

/// Whether `path` is the file `mapping` maps: the same device (maps print
/// `major:minor` in hexadecimal) and inode.
fn same_file(path: &Path, mapping: &Mapping) -> bool {
    let Ok(metadata) = std::fs::metadata(path) else {
        return false;
    };
    let Some((major, minor)) = mapping.dev.split_once(':') else {
        return false;
    };
    let (Ok(major), Ok(minor)) = (
        u64::from_str_radix(major, 16),
        u64::from_str_radix(minor, 16),
    ) else {
        return false;
    };
    // glibc's makedev.
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff);
    metadata.dev() == dev && metadata.ino() == mapping.inode
}

/// Whether the task of `/proc/ID` (`dir`) has exited, is exiting, or is
/// gone: in `stat` (after the parenthesized command, which may hold
/// anything) its state is `Z` (zombie) or `X` (dead), or its flags have
/// `PF_EXITING`, which the kernel sets as the task begins to exit, before
/// it lets go of its memory (its `maps` are then empty while the state
/// still says running).
fn has_exited(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return true;
    };
    let mut fields = stat
        .rfind(')')
        .map(|end| stat[end + 1..].split_whitespace())
        .into_iter()
        .flatten();
    let state = fields.next();
    // Then ppid, pgrp, session, tty_nr, tpgid, and the flags.
    let flags = fields.nth(5).and_then(|flags| flags.parse::<u64>().ok());
    matches!(state, Some("Z" | "X") | None) || flags.is_none_or(|flags| flags & PF_EXITING != 0)
}

/// The task flag the kernel sets when a task begins to exit
/// (`include/linux/sched.h`).
const PF_EXITING: u64 = 0x4;

/// ESRCH: what reading `/proc/PID/maps` of a process that just exited gives.
const ESRCH: i32 = 3;

/// The load bias of `file` mapped by `mapping` (its lowest-offset mapping):
/// the kernel maps a segment's file page at `offset` to the page of
/// `p_vaddr + bias`, so bias = start - p_vaddr + (p_offset - offset) for the
/// segment that mapping begins.
fn load_bias(file: &ElfFile, mapping: &Mapping) -> Option<u64> {
    let segment = file
        .load_segments()
        .iter()
        .filter(|s| s.offset >= mapping.offset)
        .min_by_key(|s| s.offset - mapping.offset)?;
    Some(
        mapping
            .start
            .wrapping_sub(segment.vaddr)
            .wrapping_add(segment.offset - mapping.offset),
    )
}

/// Parses `start-end perms offset dev inode [path]`.
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (word, tail) = trimmed.split_at(end);
        rest = tail;
        (!word.is_empty()).then_some(word)
    };
    let range = field()?;
    let perms = field()?.to_string();
    let offset = u64::from_str_radix(field()?, 16).ok()?;
    let dev = field()?.to_string();
    let inode = field()?.parse().ok()?;
    let path = rest.trim_start();
    let (start, end) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms,
        offset,
        dev,
        inode,
        path: (!path.is_empty()).then(|| path.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            "7f1c2a400000-7f1c2a428000 r--p 00000000 fe:01 1316021                    /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .unwrap();
        assert_eq!(m.start, 0x7f1c2a400000);
        assert_eq!(m.end, 0x7f1c2a428000);
        assert_eq!(m.perms, "r--p");
        assert_eq!(m.offset, 0);
        assert_eq!(m.dev, "fe:01");
        assert_eq!(m.inode, 1316021);
        assert_eq!(
            m.path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        let anon = parse_maps_line("7ffd1c7d1000-7ffd1c7d3000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(anon.path, None);
        let spaced =
            parse_maps_line("1000-2000 r-xp 00001000 08:02 42 /tmp/a dir/lib x.so (deleted)")
                .unwrap();
        assert_eq!(
            spaced.path.as_deref(),
            Some("/tmp/a dir/lib x.so (deleted)")
        );
        assert_eq!(spaced.offset, 0x1000);
        assert!(parse_maps_line("garbage").is_none());
        assert!(parse_maps_line("1000-zz r-xp 0 08:02 42 /x").is_none());
    }

    #[test]
    fn missing_processes() {
        // Pids above the kernel's pid_max (at most 2^22) never exist.
        assert!(matches!(
            Process::open(u32::MAX),
            Err(Error::NoSuchProcess { pid: u32::MAX })
        ));
        assert!(matches!(
            Process::open(0),
            Err(Error::NoSuchProcess { pid: 0 })
        ));
        assert_eq!(
            Process::open(u32::MAX).unwrap_err().to_string(),
            "process 4294967295 does not exist"
        );
    }

    #[test]
    fn the_current_process_maps_its_executable() {
        let process = Process::open(std::process::id()).unwrap();
        let modules = process.modules().unwrap();
        let exe = std::env::current_exe().unwrap();
        let module = modules.iter().find(|m| m.path == exe).unwrap_or_else(|| {
            panic!(
                "{} not among {:?}",
                exe.display(),
                modules.iter().map(|m| &m.path).collect::<Vec<_>>()
            )
        });
        // The bias maps a known function's link-time address to its runtime one.
        let file = ElfFile::open(&module.host_path).unwrap();
        let runtime = the_current_process_maps_its_executable as *const () as u64;
        let segment = file
            .load_segments()
            .iter()
            .find(|s| runtime.wrapping_sub(module.bias).wrapping_sub(s.vaddr) < s.memsz);
        assert!(
            segment.is_some(),
            "bias {:#x} puts {runtime:#x} outside every segment",
            module.bias
        );
    }
}
