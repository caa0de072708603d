//! Sites by runtime address, for kernels without BPF cookies (before
//! 5.15): the program cannot tell which link fired, so it looks the
//! instruction pointer up in `USDT_SITE_IPS` (as libbpf's USDT support
//! does there), which this module fills.
//!
//! The address of a site is known where its file's load bias is: in the
//! traced process (`--pid`), in the executable a `-c` command runs once it
//! has been exec'd, and in every process for a file loaded where it was
//! linked (a non-PIE executable). Elsewhere (a shared library or PIE
//! executable traced by path, a library a `-c` command has yet to load)
//! the trace is refused, as are return probes (their hits are at the return
//! address) and a site traced for two purposes at once (one address, one
//! plan).

use crate::config::TraceConfig;
use crate::error::TraceError;
use crate::restricted;
use crate::select::SelectedSite;
use crate::tracer::same_file;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use usdt_reader::ElfFile;
use usdt_tracer_common::SiteIpKey;

/// `e_type` of an executable loaded at its link-time addresses.
const ET_EXEC: u16 = 2;

/// The addresses of the selected sites.
#[derive(Debug, Default)]
pub(crate) struct SiteAddresses {
    /// (key, site index) to store before arming.
    pub known: Vec<(SiteIpKey, u32)>,
    /// (site index, link-time address) in the executable of a `-c`
    /// command, to store once its load bias is known.
    pub after_exec: Vec<(u32, u64)>,
    /// The process the keys of `after_exec` name (0 for every process).
    pub tgid: u32,
}

/// The refusal of a trace that needs BPF cookies: `what` needs them.
fn needs_cookies(what: String) -> TraceError {
    TraceError::KernelFeature {
        missing: format!("has no BPF cookies (Linux 5.15), needed for {what}"),
    }
}

/// Where each of `sites` is (its index in `sites` is its plan's), or why
/// that cannot be known before the trace starts.
pub(crate) fn site_addresses(
    sites: &[SelectedSite],
    config: &TraceConfig,
) -> Result<SiteAddresses, TraceError> {
    // Keys name the process as the program sees it: the initial pid
    // namespace's number, else every process (the kernel's pid filter
    // alone applies then).
    let tgid = match config.pid {
        Some(pid) if restricted::initial_pid_namespace() => pid,
        _ => 0,
    };
    let mut addresses = SiteAddresses {
        tgid,
        ..SiteAddresses::default()
    };
    let mut seen: HashMap<(&Path, u64), &SelectedSite> = HashMap::new();
    let mut fixed: HashMap<&Path, bool> = HashMap::new();
    let mut modules: Option<Vec<(PathBuf, u64)>> = None;
    for (index, site) in sites.iter().enumerate() {
        let name = || {
            format!(
                "{}:{} in {}",
                site.probe.provider,
                site.probe.name,
                site.display_path.display()
            )
        };
        if site.ret {
            return Err(needs_cookies(format!("the return probe {}", name())));
        }
        if seen
            .insert((site.attach_path.as_path(), site.probe.file_offset), site)
            .is_some()
        {
            return Err(needs_cookies(format!(
                "tracing {} for two purposes at once",
                name()
            )));
        }
        let index = index as u32;
        let is_fixed = match fixed.get(site.attach_path.as_path()) {
            Some(&is_fixed) => is_fixed,
            None => {
                let is_fixed = ElfFile::open(&site.attach_path)?.elf_type() == ET_EXEC;
                fixed.insert(&site.attach_path, is_fixed);
                is_fixed
            }
        };
        let link_time = SiteIpKey {
            tgid,
            _pad: 0,
            ip: site.probe.address,
        };
        match (config.pid, &config.executable) {
            (_, _) if is_fixed => addresses.known.push((link_time, index)),
            (Some(_), Some(executable)) if same_file(&site.attach_path, executable) => {
                addresses.after_exec.push((index, site.probe.address));
            }
            (Some(pid), None) => {
                if modules.is_none() {
                    let found = usdt_reader::Process::open(pid)?.modules_partial()?.found;
                    modules = Some(found.into_iter().map(|m| (m.host_path, m.bias)).collect());
                }
                let (_, bias) = modules
                    .iter()
                    .flatten()
                    .find(|(path, _)| same_file(path, &site.attach_path))
                    .ok_or_else(|| TraceError::NotMapped {
                        pid,
                        path: site.display_path.clone(),
                    })?;
                let key = SiteIpKey {
                    ip: site.probe.address.wrapping_add(*bias),
                    ..link_time
                };
                addresses.known.push((key, index));
            }
            (Some(_), Some(_)) => {
                return Err(needs_cookies(format!(
                    "{} (in a library the command has yet to load: attach with --pid once it runs)",
                    name()
                )));
            }
            (None, _) => {
                return Err(needs_cookies(format!(
                    "{} by path (a PIE or shared object: trace a running process with --pid)",
                    name()
                )));
            }
        }
    }
    Ok(addresses)
}

/// Faults in, in process `pid`, every page it maps of `files`, for a program that cannot fault pages in itself (kernels
/// before 6.0): reading a page through `/proc/PID/mem` maps it into the
/// process, so a string literal or global the process has yet to touch
/// reads as it is instead of as unreadable. Best effort: a page that
/// cannot be read stays as it was.
pub(crate) fn fault_in_files<'a>(pid: u32, files: impl Iterator<Item = &'a Path>) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let inodes: Vec<u64> = files
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|m| m.ino())
        .collect();
    let Ok(process) = usdt_reader::Process::open(pid) else {
        return;
    };
    let Ok(mappings) = process.mappings() else {
        return;
    };
    let Ok(memory) = std::fs::File::open(process.dir().join("mem")) else {
        return;
    };
    let mut buffer = vec![0u8; 1 << 16];
    for mapping in mappings {
        if !inodes.contains(&mapping.inode) {
            continue;
        }
        let mut address = mapping.start;
        while address < mapping.end {
            let len = (mapping.end - address).min(buffer.len() as u64) as usize;
            if memory.read_at(&mut buffer[..len], address).is_err() {
                break;
            }
            address += len as u64;
        }
    }
}
