//! Attaching the loaded program to the selected sites: uprobe_multi links
//! (one per file) where the kernel has them, one perf-event uprobe per site
//! otherwise (with a BPF link carrying the site's cookie, or on kernels
//! without cookies the program set on the event).

use crate::cancel::Cancel;
use crate::config::TraceConfig;
use crate::error::TraceError;
use crate::features::KernelFeatures;
use crate::privileges;
use crate::select::{SelectedSite, SemaphoreMode};
use aya::Ebpf;
use aya::programs::{ProgramError, UProbe};
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use usdt_aya::multi;
use usdt_aya::uprobe::{self, UprobePmu};
use usdt_tracer_common::{PROGRAM_NAME, PROGRAM_NAME_MULTI, PROGRAM_NAME_NOSLEEP};

/// Attaches the program of `ebpf` to every selected site (the cookie of a
/// site is `first` plus its index): through uprobe_multi links where the kernel has
/// them (one per file, fast to attach and to detach) unless `config` asks
/// for perf events, else one perf-event uprobe per site. The kernel's
/// `features` choose the program and how it is linked; a program loaded
/// once serves the sites attached later. Gives up when `cancel` is set (the
/// links made so far close).
pub(crate) fn attach_sites(
    ebpf: &mut Ebpf,
    selected: &[SelectedSite],
    first: u32,
    config: &TraceConfig,
    features: KernelFeatures,
    cancel: Cancel<'_>,
) -> Result<Vec<OwnedFd>, TraceError> {
    // A process whose main thread has exited while others run: a
    // uprobe_multi link's pid filter looks at the main thread's memory,
    // which is gone, and would never fire; a perf event's looks at the
    // memory of its target thread, which can be one still running.
    let running_thread = config.pid.and_then(|pid| {
        let thread = usdt_reader::Process::open(pid).ok()?.live_thread();
        (thread != pid).then_some(thread)
    });
    // Kernels before 6.6 would load the program (and spend the verifier's
    // time on it) but make no links for it.
    let wants_multi = !(config.perf_event_links
        || running_thread.is_some()
        || !features.multi_links
        || !features.sleepable);
    if wants_multi && load_program(ebpf, PROGRAM_NAME_MULTI, cancel, true)? {
        let program = program_fd(ebpf, PROGRAM_NAME_MULTI)?;
        return attach_multi(program, selected, first, config.pid, cancel);
    }
    attach_perf_events(
        ebpf,
        selected,
        first,
        config.pid,
        running_thread.or(config.pid),
        features,
        cancel,
    )
}

/// Loads program `name` of `ebpf` unless it is loaded: aya loads its
/// section as the section says (a uprobe_multi program for
/// `uprobe.multi.s`). With `optional`, a kernel's refusal of the kind of
/// program (a kernel whose probe passed but that refuses it) is `false`
/// rather than an error.
fn load_program(
    ebpf: &mut Ebpf,
    name: &'static str,
    cancel: Cancel<'_>,
    optional: bool,
) -> Result<bool, TraceError> {
    let program = uprobe_program(ebpf, name)?;
    if program.fd().is_ok() {
        return Ok(true);
    }
    let loaded = program.load();
    // A load interrupted by the signal that cancels is no failure.
    cancel.check()?;
    match loaded {
        Ok(()) => Ok(true),
        Err(ProgramError::LoadError { io_error, .. })
            if optional
                && matches!(
                    io_error.raw_os_error(),
                    Some(libc::EINVAL | libc::EOPNOTSUPP)
                ) =>
        {
            Ok(false)
        }
        Err(source) => Err(TraceError::program(name, source)),
    }
}

/// The uprobe program `name` of `ebpf`.
fn uprobe_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut UProbe, TraceError> {
    ebpf.program_mut(name)
        .ok_or(TraceError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| TraceError::program(name, source))
}

/// The descriptor of the loaded program `name` of `ebpf`.
fn program_fd<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<BorrowedFd<'a>, TraceError> {
    let program: &UProbe = ebpf
        .program(name)
        .ok_or(TraceError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| TraceError::program(name, source))?;
    program
        .fd()
        .map(|fd| fd.as_fd())
        .map_err(|source| TraceError::program(name, source))
}

/// uprobe_multi links: one per file and kind of uprobe (entry or return)
/// with every selected site of it; the cookie of a site is `first` plus
/// its index. A
/// site selected for several uses goes into as many links, one offset per
/// link.
fn attach_multi(
    program: BorrowedFd<'_>,
    selected: &[SelectedSite],
    first: u32,
    pid: Option<u32>,
    cancel: Cancel<'_>,
) -> Result<Vec<OwnedFd>, TraceError> {
    let mut groups: Vec<(&Path, bool, HashSet<u64>, Vec<usize>)> = Vec::new();
    // The groups of each file and kind, found without a scan of them all.
    let mut by_file: HashMap<(&Path, bool), Vec<usize>> = HashMap::new();
    for (index, site) in selected.iter().enumerate() {
        let offset = site.probe.file_offset;
        let candidates = by_file
            .entry((site.attach_path.as_path(), site.ret))
            .or_default();
        let group = candidates
            .iter()
            .copied()
            .find(|&g| !groups[g].2.contains(&offset));
        match group {
            Some(g) => {
                groups[g].2.insert(offset);
                groups[g].3.push(index);
            }
            None => {
                candidates.push(groups.len());
                groups.push((
                    &site.attach_path,
                    site.ret,
                    std::iter::once(offset).collect(),
                    vec![index],
                ));
            }
        }
    }
    let mut links = Vec::with_capacity(groups.len());
    for (file, ret, _, members) in groups {
        cancel.check()?;
        let group: Vec<(usize, &SelectedSite)> = members
            .iter()
            .map(|&index| (index, &selected[index]))
            .collect();
        let offsets: Vec<u64> = group.iter().map(|(_, s)| s.probe.file_offset).collect();
        let ref_ctrs: Vec<u64> = group.iter().map(|(_, s)| ref_ctr(s).unwrap_or(0)).collect();
        let cookie = |index: usize| u64::from(first) + index as u64;
        let cookies: Vec<u64> = group.iter().map(|(index, _)| cookie(*index)).collect();
        match multi::link(program, file, &offsets, &ref_ctrs, &cookies, pid, ret) {
            Ok(link) => links.push(link),
            Err(error) => {
                // Find the site the kernel refuses, to name it.
                for (index, site) in &group {
                    let one = multi::link(
                        program,
                        file,
                        &[site.probe.file_offset],
                        &[ref_ctr(site).unwrap_or(0)],
                        &[cookie(*index)],
                        pid,
                        ret,
                    );
                    if let Err(error) = one {
                        return Err(classify_attach_error(
                            error,
                            pid,
                            site,
                            privileges::needed(),
                        ));
                    }
                }
                return Err(classify_attach_error(
                    error,
                    pid,
                    group[0].1,
                    privileges::needed(),
                ));
            }
        }
    }
    Ok(links)
}

/// One perf-event uprobe per site, linked to the program aya loads (the
/// sleepable one where `features` allow): for process `pid`, through its
/// thread `target` (every thread of the process fires), or for every
/// process; the cookie of a site is `first` plus its index.
fn attach_perf_events(
    ebpf: &mut Ebpf,
    selected: &[SelectedSite],
    first: u32,
    pid: Option<u32>,
    target: Option<u32>,
    features: KernelFeatures,
    cancel: Cancel<'_>,
) -> Result<Vec<OwnedFd>, TraceError> {
    let pmu = UprobePmu::detect().map_err(|source| TraceError::Io {
        context: "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe)".into(),
        source,
    })?;
    if !pmu.supports_semaphores() && selected.iter().any(|s| ref_ctr(s).is_some()) {
        return Err(TraceError::KernelFeature {
            missing: "cannot raise USDT semaphores (no uprobe ref_ctr_offset)".into(),
        });
    }
    let name = if features.sleepable {
        PROGRAM_NAME
    } else {
        PROGRAM_NAME_NOSLEEP
    };
    load_program(ebpf, name, cancel, false)?;
    let program_fd = program_fd(ebpf, name)?;
    let needed = privileges::needed_for_perf_events()?;
    let mut links = Vec::with_capacity(selected.len());
    for (index, site) in selected.iter().enumerate() {
        // One uprobe per site is slow enough to look at the flag each time.
        cancel.check()?;
        let fail = |error| classify_attach_error(error, pid, site, needed);
        let event = pmu
            .open(
                &site.attach_path,
                site.probe.file_offset,
                ref_ctr(site),
                target,
                site.ret,
            )
            .map_err(fail)?;
        let link = if features.cookies {
            // `event` closes here; the link keeps the perf event alive.
            uprobe::link_perf_event(program_fd.as_fd(), &event, u64::from(first) + index as u64)
        } else {
            uprobe::attach_perf_event_without_link(program_fd.as_fd(), event)
        };
        links.push(link.map_err(fail)?);
    }
    Ok(links)
}

/// The semaphore file offset to hand the kernel for `site`: none when the
/// tracer raises the semaphore itself.
fn ref_ctr(site: &SelectedSite) -> Option<u64> {
    match site.semaphore {
        SemaphoreMode::Kernel => site.probe.semaphore_offset,
        SemaphoreMode::Manual { .. } | SemaphoreMode::AfterExec { .. } => None,
    }
}

/// The error for the kernel's refusal of a uprobe or link at `site`;
/// `needed` says what privileges the refused kind of uprobe takes.
fn classify_attach_error(
    source: io::Error,
    pid: Option<u32>,
    site: &SelectedSite,
    needed: &str,
) -> TraceError {
    match (source.raw_os_error(), pid) {
        (Some(libc::ESRCH), Some(pid)) => TraceError::ProcessExited { pid },
        (Some(libc::EACCES | libc::EPERM), _) => TraceError::Privileges {
            reason: format!(
                "the kernel refused a uprobe on {} ({source}): {}",
                site.attach_path.display(),
                needed
            ),
        },
        _ => TraceError::Attach {
            path: site.display_path.clone(),
            provider: site.probe.provider.clone(),
            name: site.probe.name.clone(),
            offset: site.probe.file_offset,
            source,
        },
    }
}
