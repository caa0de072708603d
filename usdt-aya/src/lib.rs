//! Attach aya BPF programs to USDT probes: the user-space half of
//! `usdt-aya-ebpf`, as `bpf_program__attach_usdt()` is for libbpf.
//!
//! A BPF crate that links `usdt-aya-ebpf` reads a probe's arguments with
//! `UsdtContext` (see that crate); [`Usdt::attach`] attaches one of its
//! uprobe programs to every site of the probes a `provider:name` pattern
//! names, in a file or in every module a process maps:
//!
//! ```no_run
//! use std::path::PathBuf;
//! use usdt_aya::{Target, Usdt, aya};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let object: Vec<u8> = Vec::new();
//! # let path = PathBuf::from("/usr/bin/python3.11");
//! # let pid = 1;
//! let mut ebpf = aya::Ebpf::load(&object)?;
//! let mut usdt = Usdt::new(&mut ebpf)?;
//! // Every process running the file, now and later.
//! let a = usdt.attach(&mut ebpf, "on_probe", &Target::Path(path), "provider:name", 1)?;
//! // Every module the process maps.
//! let b = usdt.attach(&mut ebpf, "on_probe", &Target::Pid(pid), "provider:name*", 2)?;
//! drop(a); // detaches: no uprobe left, semaphores lowered
//! # drop(b);
//! # Ok(())
//! # }
//! ```
//!
//! How it works, as libbpf's `usdt.c` does it:
//!
//! - Every probe site gets its own argument spec ([`UsdtSpec`], see
//!   [`spec`]): sites of one probe differ in where their arguments live. The
//!   spec is stored in the BPF crate's `USDT_AYA_SPECS` array under a spec
//!   id, and the spec id is the BPF cookie of the site's link; the cookie
//!   the user passes to [`Usdt::attach`] is kept in the spec, where
//!   `UsdtContext::cookie` reads it.
//! - Semaphore-guarded probes are raised by the kernel (the uprobe's
//!   `ref_ctr_offset`), in processes started later too, and lowered when
//!   the links close. Where the kernel cannot raise a semaphore in
//!   processes started later (a file laid out as lld does, see
//!   [`AttachWarning`]), [`Links::warnings`] says so.
//! - Programs declared `#[uprobe(multi)]` (which aya loads for uprobe_multi
//!   links) get one uprobe_multi link per file and attach on kernels that
//!   have such links (6.6+); plain `#[uprobe]` programs, and every program
//!   on older kernels, get one perf-event uprobe per site.
//! - Kernels without BPF cookies (before 5.15) are served by instruction
//!   pointer instead: load the object with [`loader`], which sets the BPF
//!   crate's `USDT_AYA_NO_COOKIE` global there; only [`Target::Pid`] can be
//!   attached that way (a site's address is known only in a process).
//!   [`loader_for`] and [`Usdt::with_lookup`] choose that way on any kernel
//!   ([`SpecLookup`]), which is how it is tested on newer ones.
#![deny(missing_docs)]

pub mod multi;
pub mod regs;
pub mod spec;
pub mod uprobe;

pub use aya;
pub use usdt_aya_common::{IP_MAP, MAX_ARGS, NO_COOKIE_GLOBAL, SPECS_MAP, UsdtArgSpec, UsdtSpec};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError};
use aya::programs::{ProgramError, UProbe};
use aya::{Ebpf, EbpfLoader};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use usdt_reader::{Arch, ElfFile, Probe, ProbePattern, Process};

/// What to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every process running this file (an executable or a library), now
    /// and later.
    Path(PathBuf),
    /// Every module (executable and libraries) this process maps now; only
    /// this process fires.
    Pid(u32),
}

/// Why attaching failed: one line saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    /// The pattern is not `provider:name` (with `*` globs).
    #[error("bad probe pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// Why it is refused.
        reason: String,
    },
    /// No probe site matches the pattern in the target.
    #[error("no probe matches `{pattern}` in {target}")]
    NoProbe {
        /// The pattern given.
        pattern: String,
        /// The target, described.
        target: String,
    },
    /// The file or process could not be read.
    #[error("cannot read probes of {target}: {source}")]
    Read {
        /// The target, described.
        target: String,
        /// The reader's error.
        source: usdt_reader::Error,
    },
    /// The object has no program of that name.
    #[error("the BPF object has no program `{program}`")]
    ProgramNotFound {
        /// The name asked for.
        program: String,
    },
    /// The program is not a uprobe program (or is a uretprobe), or could not
    /// be loaded.
    #[error("program `{program}` cannot be attached to USDT probes: {source}")]
    Program {
        /// The program's name.
        program: String,
        /// aya's error.
        source: ProgramError,
    },
    /// The object has no spec map: its BPF crate does not use
    /// `usdt-aya-ebpf`'s `UsdtContext`.
    #[error(
        "the BPF object has no `{map}` map: its programs do not read USDT arguments through usdt-aya-ebpf"
    )]
    SpecMapMissing {
        /// The map looked for.
        map: &'static str,
    },
    /// A map of the object could not be read or written.
    #[error("BPF map `{map}`: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// aya's error.
        source: MapError,
    },
    /// A site's arguments cannot be read by a uprobe program (a vector
    /// register, an operand of another architecture, an unknown symbol).
    #[error("{path}: probe {provider}:{name} at {address:#x}: {reason}")]
    Unsupported {
        /// The file holding the site.
        path: PathBuf,
        /// The probe's provider.
        provider: String,
        /// The probe's name.
        name: String,
        /// The site's link-time address.
        address: u64,
        /// Which argument, and why.
        reason: String,
    },
    /// More sites than the spec map holds.
    #[error(
        "{wanted} more probe sites do not fit the {capacity} entries of `{map}` (raise them with EbpfLoader::map_max_entries)"
    )]
    TooManySites {
        /// The map.
        map: &'static str,
        /// Its entries.
        capacity: u32,
        /// Sites asked for.
        wanted: usize,
    },
    /// The kernel refused to attach a site.
    #[error("{path}: cannot attach probe {provider}:{name} at file offset {offset:#x}: {source}")]
    Attach {
        /// The file holding the site.
        path: PathBuf,
        /// The probe's provider.
        provider: String,
        /// The probe's name.
        name: String,
        /// The site's file offset.
        offset: u64,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The kernel lacks something the probe needs.
    #[error("this kernel {missing}")]
    Kernel {
        /// What is missing.
        missing: String,
    },
}

/// How the programs find the argument spec of the site that fired.
///
/// Load the object with [`loader_for`] and attach with [`Usdt::with_lookup`]
/// given the same value; [`loader`] and [`Usdt::new`] both use
/// [`SpecLookup::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecLookup {
    /// By the BPF cookie of the site's link (kernels 5.15 and later):
    /// uprobe_multi links where the program allows, BPF links to perf
    /// events otherwise.
    Cookie,
    /// By the site's runtime address, in the BPF crate's
    /// `USDT_AYA_IP_TO_SPEC` map, as on kernels without BPF cookies (before
    /// 5.15): only [`Target::Pid`] (a site's address is known only in a
    /// process), one perf-event uprobe per site attached without a BPF link
    /// (`PERF_EVENT_IOC_SET_BPF`), and one attachment per address at a
    /// time. Works on every kernel, so a newer one can test this path.
    InstructionPointer,
}

impl SpecLookup {
    /// [`SpecLookup::Cookie`] where the kernel gives uprobe programs their
    /// link's cookie (`bpf_get_attach_cookie` and perf-event links with
    /// cookies came in 5.15), else [`SpecLookup::InstructionPointer`].
    pub fn detect() -> SpecLookup {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|part| part.parse::<u32>().ok());
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (5, 15) {
            SpecLookup::Cookie
        } else {
            SpecLookup::InstructionPointer
        }
    }
}

/// A loader for BPF objects whose programs use `usdt-aya-ebpf`, for the
/// running kernel: [`loader_for`] with [`SpecLookup::detect`]. Load with it
/// instead of `aya::Ebpf::load` to support kernels without BPF cookies
/// (before 5.15).
pub fn loader() -> EbpfLoader<'static> {
    loader_for(SpecLookup::detect())
}

/// A loader for BPF objects whose programs use `usdt-aya-ebpf` that find
/// their specs by `lookup`: it sets the BPF crate's `USDT_AYA_NO_COOKIE`
/// global for [`SpecLookup::InstructionPointer`]. Attach the object's
/// programs with a [`Usdt::with_lookup`] given the same `lookup`.
pub fn loader_for(lookup: SpecLookup) -> EbpfLoader<'static> {
    let mut loader = EbpfLoader::new();
    if lookup == SpecLookup::InstructionPointer {
        loader.override_global(NO_COOKIE_GLOBAL, &1u8, false);
    }
    loader
}

/// The BPF crate's map of spec ids by runtime address.
type AddressMap = BpfHashMap<MapData, u64, u32>;

/// Spec ids in use, shared by [`Usdt`] and the [`Links`] that free them.
#[derive(Debug, Default)]
struct SpecIds {
    free: Vec<u32>,
    next: u32,
}

/// Attaches programs of one loaded object to USDT probes; keeps which spec
/// ids are in use.
#[derive(Debug)]
pub struct Usdt {
    ids: Arc<Mutex<SpecIds>>,
    capacity: u32,
    arch: Arch,
    no_cookie: bool,
    multi_links: bool,
    pmu: Option<uprobe::UprobePmu>,
}

/// The links of one [`Usdt::attach`]: closing them (on drop) detaches every
/// site and lowers the semaphores raised. They borrow nothing, so the maps
/// of the same `Ebpf` stay usable while attached.
#[derive(Debug)]
pub struct Links {
    fds: Vec<OwnedFd>,
    ids: Vec<u32>,
    pool: Arc<Mutex<SpecIds>>,
    sites: Vec<AttachedSite>,
    multi: bool,
    /// Without cookies: the address map and the addresses this attach
    /// entered, removed on drop.
    addresses: Option<(AddressMap, Vec<u64>)>,
    warnings: Vec<AttachWarning>,
}

/// Something an attach could not do everywhere it applies, though its links
/// work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachWarning {
    /// The probe's semaphore shares a file page with the file's RELRO
    /// segment (lld's layout; see `usdt_reader::ElfFile::semaphore_page_is_shared`):
    /// attached by path, the kernel raises it in the processes running
    /// the file now, but not in those that map it later, where the probe
    /// stays disabled. Attach to those by pid ([`Target::Pid`]) once they
    /// run.
    SemaphoreNotRaisedLater {
        /// The file.
        path: PathBuf,
        /// The probe's provider.
        provider: String,
        /// The probe's name.
        name: String,
    },
}

impl fmt::Display for AttachWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachWarning::SemaphoreNotRaisedLater {
                path,
                provider,
                name,
            } => write!(
                f,
                "the semaphore of {provider}:{name} in {} shares a file page with a RELRO segment: the kernel cannot raise it in processes that map the file after attaching (attach to those by pid)",
                path.display()
            ),
        }
    }
}

/// One probe site attached.
#[derive(Debug, Clone)]
pub struct AttachedSite {
    /// The file holding the site, as given or as the process maps it.
    pub path: PathBuf,
    /// The probe site, as read from the file (link-time addresses).
    pub probe: Probe,
    /// The site's spec id (its link's cookie).
    pub spec_id: u32,
}

impl Links {
    /// The sites attached.
    pub fn sites(&self) -> &[AttachedSite] {
        &self.sites
    }

    /// What the attach could not do everywhere (one warning per probe and
    /// file); empty when nothing is amiss.
    pub fn warnings(&self) -> &[AttachWarning] {
        &self.warnings
    }

    /// Whether the sites are attached through uprobe_multi links (else one
    /// perf-event uprobe each).
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// The slot (the index `UsdtContext::arg` takes) of the declared
    /// argument `name` at the attached sites, from this SDK's typed
    /// metadata (see [`spec::arg_slot`]); `None` when no site declares it
    /// or sites disagree.
    pub fn arg_slot(&self, name: &str) -> Option<usize> {
        let mut slots = self.sites.iter().map(|s| spec::arg_slot(&s.probe, name));
        let first = slots.next()??;
        slots.all(|slot| slot == Some(first)).then_some(first)
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        // Close the links first: no hit may find a reused spec id.
        self.fds.clear();
        if let Some((ips, addresses)) = &mut self.addresses {
            for ip in addresses.iter() {
                // A failure leaves an entry no uprobe reaches.
                let _ = ips.remove(ip);
            }
        }
        if let Ok(mut ids) = self.pool.lock() {
            ids.free.append(&mut self.ids);
        }
    }
}

/// A site found for attaching: where to place the uprobe and which spec.
struct Site {
    /// The file as given or as the process maps it.
    path: PathBuf,
    /// The same file reachable from here (the uprobe's path).
    attach_path: PathBuf,
    probe: Probe,
    /// The site's runtime address, for a process.
    runtime_address: Option<u64>,
    spec: UsdtSpec,
}

impl Usdt {
    /// Prepares to attach programs of `ebpf` (loaded with [`loader`] or
    /// `aya::Ebpf::load`): checks that the object has `usdt-aya-ebpf`'s
    /// spec map. Specs are found as [`SpecLookup::detect`] says.
    pub fn new(ebpf: &mut Ebpf) -> Result<Usdt, UsdtError> {
        Usdt::with_lookup(ebpf, SpecLookup::detect())
    }

    /// As [`Usdt::new`], for an object loaded with [`loader_for`]`(lookup)`.
    pub fn with_lookup(ebpf: &mut Ebpf, lookup: SpecLookup) -> Result<Usdt, UsdtError> {
        let capacity = {
            let specs = specs_map(ebpf)?;
            specs.len()
        };
        let arch = regs::host_arch().ok_or_else(|| UsdtError::Kernel {
            missing: "runs on an architecture whose registers usdt-aya cannot read".into(),
        })?;
        Ok(Usdt {
            ids: Arc::default(),
            capacity,
            arch,
            no_cookie: lookup == SpecLookup::InstructionPointer,
            multi_links: lookup == SpecLookup::Cookie && multi::kernel_has_links(),
            pmu: None,
        })
    }

    /// Attaches program `program` of `ebpf` (a uprobe program, loaded here
    /// if it is not yet) to every site of the probes `probe` names
    /// (`provider:name`, `*` globs in both) in `target`; `UsdtContext::cookie`
    /// returns `cookie` at these sites.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        program: &str,
        target: &Target,
        probe: &str,
        cookie: u64,
    ) -> Result<Links, UsdtError> {
        let pattern = ProbePattern::parse(probe).map_err(|e| UsdtError::Pattern {
            pattern: probe.to_owned(),
            reason: e.to_string(),
        })?;
        let (sites, warnings) = self.find_sites(target, probe, &pattern, cookie)?;
        // The program found and loaded before anything is written.
        program_mut(ebpf, program)?;
        if self.no_cookie && matches!(target, Target::Path(_)) {
            return Err(UsdtError::Kernel {
                missing: "has no BPF cookies: attach by pid (Target::Pid), where a site's address is known".into(),
            });
        }
        let ids = self.take_ids(sites.len())?;
        let mut links = Links {
            fds: Vec::new(),
            ids: ids.clone(),
            pool: Arc::clone(&self.ids),
            sites: Vec::with_capacity(sites.len()),
            multi: false,
            addresses: None,
            warnings,
        };
        {
            let mut specs = specs_map(ebpf)?;
            for (site, id) in sites.iter().zip(&ids) {
                specs
                    .set(*id, &site.spec, 0)
                    .map_err(|source| UsdtError::Map {
                        map: SPECS_MAP,
                        source,
                    })?;
            }
        }
        if self.no_cookie {
            links.addresses = Some(enter_addresses(ebpf, &sites, &ids)?);
        }
        let uprobe = program_mut(ebpf, program)?;
        let program_fd = uprobe.fd().map_err(|source| UsdtError::Program {
            program: program.to_owned(),
            source,
        })?;
        let fd = program_fd.as_fd();
        let pid = match target {
            Target::Pid(pid) => Some(*pid),
            Target::Path(_) => None,
        };
        let multi = if self.multi_links {
            attach_multi(fd, &sites, &ids, pid)?
        } else {
            None
        };
        match multi {
            Some(fds) => {
                links.fds = fds;
                links.multi = true;
            }
            None => {
                if self.pmu.is_none() {
                    self.pmu =
                        Some(uprobe::UprobePmu::detect().map_err(|e| UsdtError::Kernel {
                            missing: format!("has no uprobe PMU: {e}"),
                        })?);
                }
                let pmu = self.pmu.as_ref().expect("detected above");
                links.fds = attach_perf_events(pmu, fd, &sites, &ids, pid, !self.no_cookie)?;
            }
        }
        links.sites = sites
            .into_iter()
            .zip(ids)
            .map(|(site, spec_id)| AttachedSite {
                path: site.path,
                probe: site.probe,
                spec_id,
            })
            .collect();
        Ok(links)
    }

    /// The sites of `target` whose probe matches `pattern`, with their
    /// specs, and what attaching them cannot do everywhere.
    fn find_sites(
        &self,
        target: &Target,
        text: &str,
        pattern: &ProbePattern,
        cookie: u64,
    ) -> Result<(Vec<Site>, Vec<AttachWarning>), UsdtError> {
        let described = match target {
            Target::Path(path) => path.display().to_string(),
            Target::Pid(pid) => format!("process {pid}"),
        };
        let read = |source| UsdtError::Read {
            target: described.clone(),
            source,
        };
        let mut sites = Vec::new();
        let mut warnings = Vec::new();
        match target {
            Target::Path(path) => {
                let elf = ElfFile::open(path).map_err(read)?;
                for probe in elf.probes().map_err(read)? {
                    if pattern.matches(&probe.provider, &probe.name) {
                        if let Some(warning) = semaphore_warning(&elf, path, &probe)
                            && !warnings.contains(&warning)
                        {
                            warnings.push(warning);
                        }
                        sites.push(self.site(elf.arch(), path, path, probe, None, cookie)?);
                    }
                }
            }
            Target::Pid(pid) => {
                let process = Process::open(*pid).map_err(read)?;
                for module in process.modules().map_err(read)? {
                    let mut arch = None;
                    for probe in &module.probes {
                        if !pattern.matches(&probe.provider, &probe.name) {
                            continue;
                        }
                        let arch = match arch {
                            Some(arch) => arch,
                            None => {
                                let elf = ElfFile::open(&module.host_path).map_err(read)?;
                                *arch.insert(elf.arch())
                            }
                        };
                        let address = module.runtime_address(probe);
                        sites.push(self.site(
                            arch,
                            &module.path,
                            &module.host_path,
                            probe.clone(),
                            Some(address),
                            cookie,
                        )?);
                    }
                }
            }
        }
        if sites.is_empty() {
            return Err(UsdtError::NoProbe {
                pattern: text.to_owned(),
                target: described,
            });
        }
        Ok((sites, warnings))
    }

    /// One site with its spec.
    fn site(
        &self,
        arch: Arch,
        path: &Path,
        attach_path: &Path,
        probe: Probe,
        runtime_address: Option<u64>,
        cookie: u64,
    ) -> Result<Site, UsdtError> {
        let unsupported = |reason: String| UsdtError::Unsupported {
            path: path.to_owned(),
            provider: probe.provider.clone(),
            name: probe.name.clone(),
            address: probe.address,
            reason,
        };
        if arch != self.arch {
            return Err(unsupported(format!(
                "a {arch:?} file; this machine is {:?}",
                self.arch
            )));
        }
        let spec = spec::site_spec(arch, &probe, cookie).map_err(|e| unsupported(e.0))?;
        Ok(Site {
            path: path.to_owned(),
            attach_path: attach_path.to_owned(),
            probe,
            runtime_address,
            spec,
        })
    }

    /// `count` free spec ids.
    fn take_ids(&self, count: usize) -> Result<Vec<u32>, UsdtError> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let available = ids.free.len() + (self.capacity - ids.next) as usize;
        if count > available {
            return Err(UsdtError::TooManySites {
                map: SPECS_MAP,
                capacity: self.capacity,
                wanted: count,
            });
        }
        let mut taken = Vec::with_capacity(count);
        while taken.len() < count {
            match ids.free.pop() {
                Some(id) => taken.push(id),
                None => {
                    taken.push(ids.next);
                    ids.next += 1;
                }
            }
        }
        Ok(taken)
    }
}

/// The spec map of `ebpf`.
fn specs_map(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, UsdtSpec>, UsdtError> {
    let map = ebpf
        .map_mut(SPECS_MAP)
        .ok_or(UsdtError::SpecMapMissing { map: SPECS_MAP })?;
    Array::try_from(map).map_err(|source| UsdtError::Map {
        map: SPECS_MAP,
        source,
    })
}

/// The uprobe program `name` of `ebpf`, loaded.
fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut UProbe, UsdtError> {
    let fail = |source| UsdtError::Program {
        program: name.to_owned(),
        source,
    };
    let uprobe: &mut UProbe = ebpf
        .program_mut(name)
        .ok_or_else(|| UsdtError::ProgramNotFound {
            program: name.to_owned(),
        })?
        .try_into()
        .map_err(fail)?;
    if !matches!(uprobe.kind(), aya::programs::ProbeKind::Entry) {
        return Err(UsdtError::Program {
            program: name.to_owned(),
            source: ProgramError::UnexpectedProgramType,
        });
    }
    if uprobe.fd().is_err() {
        uprobe.load().map_err(fail)?;
    }
    Ok(uprobe)
}

/// One uprobe_multi link per file (and per repeated offset), or `None` when
/// the program was not loaded for such links (a plain `#[uprobe]`).
fn attach_multi(
    program: BorrowedFd<'_>,
    sites: &[Site],
    ids: &[u32],
    pid: Option<u32>,
) -> Result<Option<Vec<OwnedFd>>, UsdtError> {
    // Groups of sites: one file, each offset once.
    let mut groups: Vec<(&Path, HashSet<u64>, Vec<usize>)> = Vec::new();
    let mut by_file: HashMap<&Path, Vec<usize>> = HashMap::new();
    for (index, site) in sites.iter().enumerate() {
        let offset = site.probe.file_offset;
        let candidates = by_file.entry(site.attach_path.as_path()).or_default();
        match candidates
            .iter()
            .copied()
            .find(|&g| !groups[g].1.contains(&offset))
        {
            Some(g) => {
                groups[g].1.insert(offset);
                groups[g].2.push(index);
            }
            None => {
                candidates.push(groups.len());
                groups.push((&site.attach_path, HashSet::from([offset]), vec![index]));
            }
        }
    }
    let mut fds = Vec::with_capacity(groups.len());
    for (first, (file, _, members)) in groups.into_iter().enumerate() {
        let offsets: Vec<u64> = members
            .iter()
            .map(|&i| sites[i].probe.file_offset)
            .collect();
        let ref_ctrs: Vec<u64> = members
            .iter()
            .map(|&i| sites[i].probe.semaphore_offset.unwrap_or(0))
            .collect();
        let cookies: Vec<u64> = members.iter().map(|&i| u64::from(ids[i])).collect();
        match multi::link(program, file, &offsets, &ref_ctrs, &cookies, pid, false) {
            Ok(fd) => fds.push(fd),
            // The program was not loaded for uprobe_multi links.
            Err(error) if first == 0 && error.raw_os_error() == Some(libc::EINVAL) => {
                return Ok(None);
            }
            Err(error) => {
                // Name the site the kernel refuses.
                let refused = members
                    .iter()
                    .find(|&&i| {
                        let site = &sites[i];
                        multi::link(
                            program,
                            file,
                            &[site.probe.file_offset],
                            &[site.probe.semaphore_offset.unwrap_or(0)],
                            &[u64::from(ids[i])],
                            pid,
                            false,
                        )
                        .is_err()
                    })
                    .copied()
                    .unwrap_or(members[0]);
                return Err(attach_error(&sites[refused], error));
            }
        }
    }
    Ok(Some(fds))
}

/// The warning for `probe` of the file `elf` at `path`, attached by path,
/// if the kernel cannot raise its semaphore in processes that map the file
/// later (a running process has its RELRO segment read-only, and the
/// kernel finds the right copy).
fn semaphore_warning(elf: &ElfFile, path: &Path, probe: &Probe) -> Option<AttachWarning> {
    let (vaddr, offset) = (probe.semaphore?, probe.semaphore_offset?);
    elf.semaphore_page_is_shared(vaddr, offset)
        .then(|| AttachWarning::SemaphoreNotRaisedLater {
            path: path.to_owned(),
            provider: probe.provider.clone(),
            name: probe.name.clone(),
        })
}

/// One perf-event uprobe per site: linked with the site's spec id as its
/// cookie, or without a BPF link or cookie when `cookies` is false.
fn attach_perf_events(
    pmu: &uprobe::UprobePmu,
    program: BorrowedFd<'_>,
    sites: &[Site],
    ids: &[u32],
    pid: Option<u32>,
    cookies: bool,
) -> Result<Vec<OwnedFd>, UsdtError> {
    if !pmu.supports_semaphores() && sites.iter().any(|s| s.probe.semaphore_offset.is_some()) {
        return Err(UsdtError::Kernel {
            missing: "cannot raise USDT semaphores (no uprobe ref_ctr_offset)".into(),
        });
    }
    uprobe::raise_fd_limit();
    let mut fds = Vec::with_capacity(sites.len());
    for (site, id) in sites.iter().zip(ids) {
        let fail = |error| attach_error(site, error);
        let event = pmu
            .open(
                &site.attach_path,
                site.probe.file_offset,
                site.probe.semaphore_offset,
                pid,
                false,
            )
            .map_err(fail)?;
        let fd = if cookies {
            uprobe::link_perf_event(program, &event, u64::from(*id))
        } else {
            uprobe::attach_perf_event_without_link(program, event)
        };
        fds.push(fd.map_err(fail)?);
    }
    Ok(fds)
}

/// Enters each site's runtime address with its spec id in the address map
/// (for programs that find specs without cookies); refuses an address
/// another attachment holds. Returns the map and the addresses entered.
fn enter_addresses(
    ebpf: &Ebpf,
    sites: &[Site],
    ids: &[u32],
) -> Result<(AddressMap, Vec<u64>), UsdtError> {
    let map_error = |source| UsdtError::Map {
        map: IP_MAP,
        source,
    };
    // An own descriptor of the map, for the links to remove their entries.
    let data = match ebpf.map(IP_MAP) {
        Some(aya::maps::Map::HashMap(data)) => {
            let id = data.info().map_err(map_error)?.id();
            MapData::from_id(id).map_err(map_error)?
        }
        Some(_) => return Err(map_error(MapError::InvalidMapType { map_type: 0 })),
        None => return Err(UsdtError::SpecMapMissing { map: IP_MAP }),
    };
    let mut entered = Vec::with_capacity(sites.len());
    let mut ips = AddressMap::try_from(aya::maps::Map::HashMap(data)).map_err(map_error)?;
    for (site, id) in sites.iter().zip(ids) {
        let Some(ip) = site.runtime_address else {
            continue;
        };
        let result = if ips.get(&ip, 0).is_ok() {
            Err(UsdtError::Kernel {
                missing: format!(
                    "has no BPF cookies: {}: probe {}:{} at {ip:#x} is attached already (one spec per address)",
                    site.path.display(),
                    site.probe.provider,
                    site.probe.name
                ),
            })
        } else {
            ips.insert(&ip, id, 0).map_err(map_error)
        };
        if let Err(error) = result {
            for ip in &entered {
                let _ = ips.remove(ip);
            }
            return Err(error);
        }
        entered.push(ip);
    }
    Ok((ips, entered))
}

/// The kernel's refusal to attach `site`.
fn attach_error(site: &Site, source: io::Error) -> UsdtError {
    UsdtError::Attach {
        path: site.path.clone(),
        provider: site.probe.provider.clone(),
        name: site.probe.name.clone(),
        offset: site.probe.file_offset,
        source,
    }
}
