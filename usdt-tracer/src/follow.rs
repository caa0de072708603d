//! Following the libraries a traced process maps after the trace started.
//!
//! The program is also attached to the dynamic linker's debugger hook,
//! `_dl_debug_state` (the function `r_debug.r_brk` names), which the
//! linker calls around every change of its list of loaded objects: on
//! `dlopen` once the new objects are mapped (and before their
//! constructors run), on `dlclose` once they are unmapped. A hit of the
//! hook makes user space compare the process's mappings with the files it
//! knows: the probes of a new file are selected, planned into spare plan
//! slots and attached; a file no longer mapped has its links closed.
//!
//! A process the tracer's user started ([`TraceConfig::stop_on_load`]) is
//! stopped by the program at each hit of the hook (SIGSTOP) and continued
//! here (SIGCONT) once the rescan is done, so every hit of a new library
//! is seen, its constructors' included: glibc calls the hook with
//! `RT_CONSISTENT` once the objects are mapped, before it relocates them
//! and runs their constructors. Any other process runs on meanwhile (a
//! stop would be job control to its parent, such as a shell), so the hits
//! of a new library between its mapping and the attach are not seen.

use crate::addresses;
use crate::attach;
use crate::cancel::Cancel;
use crate::config::TraceConfig;
use crate::decode::SiteState;
use crate::error::TraceError;
use crate::features::KernelFeatures;
use crate::function::{FunctionName, FunctionProbe};
use crate::plan::{self, ProbeTable};
use crate::restricted::{self, Target};
use crate::role;
use crate::select::{self, SelectedSite, SemaphoreMode};
use crate::semaphore::ManualSemaphore;
use aya::Ebpf;
use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use rustix::process::{Pid, Signal};
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use usdt_reader::{ElfFile, Module, Process};
use usdt_tracer_common::{
    SITE_IPS_MAP, SITE_OPTIONS_MAP, SITES_MAP, SiteIpKey, SiteOptions, SitePlan,
};

/// Plan slots kept free for the sites of libraries loaded later (a site
/// plan takes about 200 bytes of kernel memory).
pub(crate) const SPARE_SLOTS: u32 = 4096;

/// The dynamic linker's debugger hook.
const HOOK: &str = "_dl_debug_state";

/// The site of the dynamic linker's debugger hook in the process `config`
/// traces, or `None` when its executable names no dynamic linker
/// (statically linked).
pub(crate) fn hook_site(config: &TraceConfig) -> Result<Option<SelectedSite>, TraceError> {
    let Some(pid) = config.pid else {
        return Ok(None);
    };
    let (executable, root) = match &config.executable {
        Some(executable) => (executable.clone(), PathBuf::from("/")),
        None => {
            // Through a running thread when the main thread has exited.
            let dir = restricted::open_process(pid)?.dir().to_path_buf();
            (dir.join("exe"), dir.join("root"))
        }
    };
    let Some(interpreter) = interpreter(&executable)? else {
        return Ok(None);
    };
    let attach_path = root.join(interpreter.trim_start_matches('/'));
    // Read, not mapped: a file this process maps would look like a module
    // it loaded to a trace of this process (see `mapped_inodes`).
    let io = |source| TraceError::Io {
        context: format!("cannot read {}", attach_path.display()),
        source,
    };
    let linker = ElfFile::parse(std::fs::read(&attach_path).map_err(io)?)?;
    let hook = FunctionProbe {
        ret: false,
        module: None,
        function: FunctionName::Symbol(HOOK.into()),
        args: Vec::new(),
    };
    Ok(Some(SelectedSite {
        probe: hook.site(&linker)?,
        attach_path,
        display_path: PathBuf::from(interpreter),
        arch: linker.arch(),
        semaphore: SemaphoreMode::Kernel,
        ret: false,
    }))
}

/// The dynamic linker `executable` names (its `PT_INTERP`), if any: read
/// from its first bytes, without mapping or reading the whole file.
fn interpreter(executable: &Path) -> Result<Option<String>, TraceError> {
    use goblin::container::{Container, Ctx};
    use goblin::elf::program_header::{PT_INTERP, ProgramHeader};
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let io = |source| TraceError::Io {
        context: format!("cannot read {}", executable.display()),
        source,
    };
    let file = std::fs::File::open(executable).map_err(io)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let malformed = |reason: String| TraceError::Io {
        context: format!("cannot find the dynamic linker of {}", executable.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    };
    let header =
        goblin::elf::Elf::parse_header(&head).map_err(|error| malformed(error.to_string()))?;
    let container =
        if header.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64 {
            Container::Big
        } else {
            Container::Little
        };
    let endian = header
        .endianness()
        .map_err(|error| malformed(error.to_string()))?;
    let headers = ProgramHeader::parse(
        &head,
        header.e_phoff as usize,
        header.e_phnum as usize,
        Ctx::new(container, endian),
    )
    .map_err(|error| malformed(error.to_string()))?;
    let Some(interp) = headers.iter().find(|h| h.p_type == PT_INTERP) else {
        return Ok(None);
    };
    let mut path = vec![0; (interp.p_filesz as usize).min(4096)];
    file.read_exact_at(&mut path, interp.p_offset).map_err(io)?;
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Ok(Some(String::from_utf8_lossy(&path[..end]).into_owned()))
}

/// Bytes read from the start of an executable to find its program
/// headers.
const HEAD_BYTES: usize = 64 * 1024;

/// The inodes of the files process `pid` maps code of. A file mapped
/// without execute permission is data (an ELF file a reader maps to parse
/// it, as usdt-reader does), not a loaded library.
fn mapped_inodes(process: &Process) -> Result<HashSet<u64>, TraceError> {
    Ok(process
        .mappings()?
        .into_iter()
        .filter(|m| {
            m.inode != 0
                && m.perms.contains('x')
                && m.path.as_deref().is_some_and(|p| p.starts_with('/'))
        })
        .map(|m| m.inode)
        .collect())
}

fn inode_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// A library followed: what was attached for it.
struct Followed {
    path: PathBuf,
    links: Vec<OwnedFd>,
    ip_keys: Vec<SiteIpKey>,
    manual: Vec<ManualSemaphore>,
}

/// What following needs while the trace runs.
pub(crate) struct Follower {
    config: TraceConfig,
    pid: u32,
    /// The plan slot (cookie) of the hook site.
    pub(crate) hook: u32,
    /// The probes so far.
    pub(crate) table: ProbeTable,
    /// Plan slots in the maps, and the first never used.
    capacity: u32,
    next: u32,
    /// Inodes of the files looked at (mapped at the start, or since).
    known: HashSet<u64>,
    /// The libraries attached since the start, by inode.
    followed: HashMap<u64, Followed>,
    /// The slots each library had (a library loaded again reuses them).
    slots: HashMap<u64, (u32, u32)>,
    /// In restricted mode, the process checked at the start.
    target: Option<Target>,
    /// Whether the program stops the process at each hit of the hook
    /// ([`TraceConfig::stop_on_load`]).
    stops: bool,
    /// Set once the tracer detached: hits of the hook only continue the
    /// process then.
    ended: bool,
    notices: Vec<String>,
}

impl Follower {
    /// The follower of `config`'s process, whose files at the start are
    /// `known`, with the hook at slot `hook` and `capacity` slots of which
    /// `used` are taken.
    pub(crate) fn new(
        config: &TraceConfig,
        known: HashSet<u64>,
        table: ProbeTable,
        (hook, used, capacity): (u32, u32, u32),
        target: Option<Target>,
        stops: bool,
    ) -> Follower {
        Follower {
            config: config.clone(),
            pid: config.pid.unwrap_or(0),
            hook,
            table,
            capacity,
            next: used,
            known,
            followed: HashMap::new(),
            slots: HashMap::new(),
            target,
            stops,
            ended: false,
            notices: Vec::new(),
        }
    }

    /// Handles the hits of the hook read in one drain: rescans (unless the
    /// tracer detached), then continues the process, which each of those
    /// hits stopped, with one SIGCONT, whatever the rescan found.
    pub(crate) fn hook_hit(&mut self, ebpf: &mut Ebpf, sites: &mut Vec<SiteState>) {
        if !self.ended {
            self.rescan(ebpf, sites);
        }
        self.continue_process();
    }

    /// Sends SIGCONT to a process the program stops at each hit of the
    /// hook. A stop still pending is discarded by it, so the process runs
    /// on whether or not it had stopped yet.
    pub(crate) fn continue_process(&mut self) {
        if !self.stops {
            return;
        }
        let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        // A process that exited (or a zombie) needs nothing.
        if let Err(error) = rustix::process::kill_process(pid, Signal::CONT)
            && error != rustix::io::Errno::SRCH
        {
            self.notices.push(format!(
                "cannot continue process {}, stopped while its libraries were attached: {error}",
                self.pid
            ));
        }
    }

    /// Whether the program stops the process at each hit of the hook.
    pub(crate) fn stops(&self) -> bool {
        self.stops
    }

    /// The inodes of the files that are known at the start: every file
    /// process `pid` maps now, or for a command not yet started
    /// (`executable`) that file alone.
    pub(crate) fn known_at_start(config: &TraceConfig) -> Result<HashSet<u64>, TraceError> {
        match (&config.executable, config.pid) {
            (Some(executable), _) => Ok(inode_of(executable).into_iter().collect()),
            (None, Some(pid)) => mapped_inodes(&restricted::open_process(pid)?),
            (None, None) => Ok(HashSet::new()),
        }
    }

    /// Adds the files of `sites` to the known ones.
    pub(crate) fn know(&mut self, sites: &[SelectedSite]) {
        self.known
            .extend(sites.iter().filter_map(|s| inode_of(&s.attach_path)));
    }

    /// Messages for the user since the last call: libraries attached and
    /// detached, and libraries that could not be followed.
    pub(crate) fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// Compares the process's mappings with the known files: attaches the
    /// sites of new ones and detaches those of files no longer mapped.
    /// `sites` is the tracer's per-slot state.
    pub(crate) fn rescan(&mut self, ebpf: &mut Ebpf, sites: &mut Vec<SiteState>) {
        // A process that exited has nothing more to follow.
        let Ok(process) = restricted::open_process(self.pid) else {
            return;
        };
        let Ok(mapped) = mapped_inodes(&process) else {
            return;
        };
        let gone: Vec<u64> = self
            .known
            .iter()
            .filter(|inode| !mapped.contains(inode))
            .copied()
            .collect();
        for inode in gone {
            self.known.remove(&inode);
            if let Some(followed) = self.followed.remove(&inode) {
                self.detach(ebpf, followed);
            }
        }
        if mapped.iter().all(|inode| self.known.contains(inode)) {
            return;
        }
        if let Some(target) = &self.target
            && target.still_running().is_err()
        {
            return;
        }
        let new =
            |m: &usdt_reader::Mapping| mapped.contains(&m.inode) && !self.known.contains(&m.inode);
        let Ok(modules) = process.modules_partial_where(new) else {
            return;
        };
        for module in modules.found {
            let Some(inode) = inode_of(&module.host_path) else {
                continue;
            };
            if !self.known.insert(inode) {
                continue;
            }
            let started = Instant::now();
            match self.add(ebpf, sites, &module, inode) {
                Ok(0) => {}
                Ok(count) => self.notices.push(format!(
                    "following {}: {count} site{} attached in {:.1} ms",
                    module.path.display(),
                    if count == 1 { "" } else { "s" },
                    started.elapsed().as_secs_f64() * 1e3
                )),
                Err(error) => self
                    .notices
                    .push(format!("cannot follow {}: {error}", module.path.display())),
            }
        }
        self.known.extend(mapped);
    }

    /// Selects, plans and attaches the sites of `module` (a file of inode
    /// `inode`); returns how many sites it attached.
    fn add(
        &mut self,
        ebpf: &mut Ebpf,
        sites: &mut Vec<SiteState>,
        module: &Module,
        inode: u64,
    ) -> Result<usize, TraceError> {
        let selection =
            role::select_with(&self.config, |specs| select::module_sites(specs, module))?;
        let (mut selected, roles) = (selection.sites, selection.roles);
        if selected.is_empty() {
            return Ok(0);
        }
        let notices = select::plan_semaphores(&mut selected, Some(self.pid), None)?;
        self.notices.extend(notices);
        let never = AtomicBool::new(false);
        let cancel = Cancel::new(&never);
        let (plans, options, states) = plan::plan_sites(
            &mut self.table,
            &selected,
            &roles,
            &self.config.strings,
            self.config.filter.as_ref(),
            self.config.stack,
            cancel,
        )?;
        let count = plans.len() as u32;
        let first = match self.slots.get(&inode) {
            Some(&(first, len)) if len == count => first,
            _ if self.next + count > self.capacity => {
                return Err(TraceError::BadSpec {
                    spec: module.path.display().to_string(),
                    reason: format!(
                        "no room for its {count} sites: {} of {} site slots are taken",
                        self.next, self.capacity
                    ),
                });
            }
            _ => {
                let first = self.next;
                self.next += count;
                self.slots.insert(inode, (first, count));
                first
            }
        };
        store_plans(ebpf, first, &plans, &options)?;
        for (index, state) in states.into_iter().enumerate() {
            let slot = first as usize + index;
            if slot < sites.len() {
                sites[slot] = state;
            } else {
                sites.push(state);
            }
        }
        let features = KernelFeatures::get();
        let mut ip_keys = Vec::new();
        if !features.cookies {
            let config = TraceConfig {
                executable: None,
                ..self.config.clone()
            };
            let found = addresses::site_addresses(&selected, &config)?;
            let keys: Vec<(SiteIpKey, u32)> = found
                .known
                .into_iter()
                .map(|(key, index)| (key, index + first))
                .collect();
            crate::tracer::store_addresses(ebpf, &keys)?;
            ip_keys = keys.into_iter().map(|(key, _)| key).collect();
        }
        if !features.sleepable {
            addresses::fault_in_files(self.pid, std::iter::once(module.host_path.as_path()));
        }
        let config = TraceConfig {
            executable: None,
            ..self.config.clone()
        };
        let links = attach::attach_sites(ebpf, &selected, first, &config, features, cancel)?;
        let mut manual = Vec::new();
        for site in &selected {
            if let SemaphoreMode::Manual { address } = site.semaphore
                && !manual
                    .iter()
                    .any(|m: &ManualSemaphore| m.address() == address)
            {
                manual.push(ManualSemaphore::raise(self.pid, address)?);
            }
        }
        let mut distinct: Vec<(u64, bool)> = selected
            .iter()
            .map(|s| (s.probe.file_offset, s.ret))
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        self.followed.insert(
            inode,
            Followed {
                path: module.path.clone(),
                links,
                ip_keys,
                manual,
            },
        );
        Ok(distinct.len())
    }

    /// Detaches a library no longer mapped. Its semaphores went with its
    /// memory; its plan slots stay reserved for it.
    fn detach(&mut self, ebpf: &mut Ebpf, followed: Followed) {
        if !followed.ip_keys.is_empty()
            && let Some(Ok(mut map)) = ebpf
                .map_mut(SITE_IPS_MAP)
                .map(BpfHashMap::<&mut MapData, SiteIpKey, u32>::try_from)
        {
            for key in &followed.ip_keys {
                let _ = map.remove(key);
            }
        }
        drop(followed.links);
        self.notices.push(format!(
            "{} unmapped: its sites detached",
            followed.path.display()
        ));
    }

    /// Detaches every followed library and lowers the semaphores raised in
    /// them.
    pub(crate) fn detach_all(&mut self) {
        self.ended = true;
        for (_, followed) in self.followed.drain() {
            drop(followed.links);
            for semaphore in followed.manual {
                semaphore.lower();
            }
        }
    }
}

/// Stores `plans` and `options` at slots from `first` on.
fn store_plans(
    ebpf: &mut Ebpf,
    first: u32,
    plans: &[SitePlan],
    options: &[SiteOptions],
) -> Result<(), TraceError> {
    let mut map: Array<&mut MapData, SitePlan> = crate::tracer::map_mut(ebpf, SITES_MAP)?;
    for (index, plan) in plans.iter().enumerate() {
        map.set(first + index as u32, plan, 0)
            .map_err(|source| crate::tracer::map_error(SITES_MAP, "store a site plan", source))?;
    }
    let mut map: Array<&mut MapData, SiteOptions> = crate::tracer::map_mut(ebpf, SITE_OPTIONS_MAP)?;
    for (index, site) in options.iter().enumerate() {
        map.set(first + index as u32, site, 0).map_err(|source| {
            crate::tracer::map_error(SITE_OPTIONS_MAP, "store a site's options", source)
        })?;
    }
    Ok(())
}
