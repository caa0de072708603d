//! Choosing probe sites: probe specifications (`PATH:provider:name`,
//! `provider:name` with a pid, `uprobe:FILE:FUNCTION`), string requests, and
//! their resolution to the sites to attach through usdt-reader.

use crate::cancel::Cancel;
use crate::error::TraceError;
use crate::function::{self, FunctionProbe};
use crate::semaphore;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use usdt_aya::regs;
use usdt_reader::{Arch, ElfFile, Probe, ProbePattern, Process};

/// What to trace: a probe pattern, optionally in one file, or a function's
/// entry or return.
///
/// Parsed from `PATH:provider:name`, `usdt:PATH:provider:name`,
/// `provider:name` or `name` (globs `*` and `?` in the provider and the
/// name). The path is everything up to the first `:` after its last `/`,
/// or, without a `/`, before the first of two `:` (`app:p:n` is the file
/// `app` of the current directory); `PATH` alone, which must contain a
/// `/`, means every probe of the file.
///
/// `uprobe:FILE:FUNCTION(TYPES)` and `uretprobe:FILE:FUNCTION(TYPE)` probe a
/// function's entry or return instead (see [`FunctionProbe`]); their events
/// have the provider `uprobe` or `uretprobe` and the function's name.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// The file holding the probes, if given.
    pub path: Option<PathBuf>,
    /// The pattern text (`provider:name`, `*:*` when only a path is given;
    /// `uprobe:FUNCTION` for a function probe).
    pub pattern_text: String,
    /// The parsed pattern.
    pub pattern: ProbePattern,
    /// For `uprobe:` and `uretprobe:` specifications, the function.
    pub function: Option<FunctionProbe>,
    text: String,
}

impl ProbeSpec {
    /// The specification as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ProbeSpec {
    type Err = TraceError;

    fn from_str(text: &str) -> Result<ProbeSpec, TraceError> {
        let bad = |reason: String| TraceError::BadSpec {
            spec: text.to_owned(),
            reason,
        };
        for (prefix, ret) in [("uprobe:", false), ("uretprobe:", true)] {
            // `uprobe:name` alone is a USDT pattern (provider `uprobe`).
            if let Some(rest) = text.strip_prefix(prefix)
                && rest.contains(':')
            {
                let (file, function) = function::parse(ret, rest).map_err(bad)?;
                let pattern_text = format!("{}:{}", function.provider(), function.function);
                let pattern = ProbePattern::parse(&pattern_text).map_err(|e| bad(e.to_string()))?;
                return Ok(ProbeSpec {
                    path: function.module.is_none().then(|| PathBuf::from(file)),
                    pattern_text,
                    pattern,
                    function: Some(function),
                    text: text.to_owned(),
                });
            }
        }
        let rest = text.strip_prefix("usdt:").unwrap_or(text);
        if rest.is_empty() {
            return Err(bad("empty".into()));
        }
        let (path, pattern_text) = match rest.rfind('/') {
            Some(slash) => match rest[slash..].find(':') {
                Some(colon) => (Some(&rest[..slash + colon]), &rest[slash + colon + 1..]),
                None => (Some(rest), ""),
            },
            // `app:provider:name`: a file in the current directory (a
            // pattern has at most one `:`).
            None => match rest.split_once(':') {
                Some((file, pattern)) if pattern.contains(':') => (Some(file), pattern),
                _ => (None, rest),
            },
        };
        let pattern_text = if pattern_text.is_empty() {
            "*:*"
        } else {
            pattern_text
        };
        let pattern = ProbePattern::parse(pattern_text).map_err(|e| bad(e.to_string()))?;
        Ok(ProbeSpec {
            path: path.map(PathBuf::from),
            pattern_text: pattern_text.to_owned(),
            pattern,
            function: None,
            text: text.to_owned(),
        })
    }
}

/// Arguments to read as NUL-terminated strings, for the probes matching a
/// pattern (all probes without one).
///
/// Parsed from `N[,N...]` or `PATTERN:N[,N...]`, where N counts arguments
/// from 0 (`arg0`): note arguments for sites without typed metadata, declared
/// raw-pointer arguments for typed sites.
#[derive(Debug, Clone)]
pub struct StringRequest {
    /// The probes the request applies to; `None` for all.
    pub pattern: Option<ProbePattern>,
    /// Argument indices.
    pub args: Vec<usize>,
    text: String,
}

impl fmt::Display for StringRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for StringRequest {
    type Err = TraceError;

    fn from_str(text: &str) -> Result<StringRequest, TraceError> {
        let bad = |reason: &str| TraceError::BadSpec {
            spec: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (pattern, list) = match text.rfind(':') {
            Some(colon) => (Some(&text[..colon]), &text[colon + 1..]),
            None => (None, text),
        };
        let args = list
            .split(',')
            .map(|n| n.trim().trim_start_matches("arg").parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("expected argument numbers such as `0` or `1,2` (optionally after `provider:name:`)"))?;
        if let Some(&n) = args.iter().find(|&&n| n >= usdt_tracer_common::MAX_ARGS) {
            return Err(TraceError::BadSpec {
                spec: text.to_owned(),
                reason: format!(
                    "argument {n} does not exist (at most {} arguments)",
                    usdt_tracer_common::MAX_ARGS
                ),
            });
        }
        let pattern = pattern
            .map(|p| {
                ProbePattern::parse(p).map_err(|e| TraceError::BadSpec {
                    spec: text.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(StringRequest {
            pattern,
            args,
            text: text.to_owned(),
        })
    }
}

impl StringRequest {
    /// The argument indices requested for probe `provider:name` by any of
    /// `requests`.
    pub(crate) fn args_for(requests: &[StringRequest], provider: &str, name: &str) -> Vec<usize> {
        let mut args: Vec<usize> = requests
            .iter()
            .filter(|r| r.pattern.as_ref().is_none_or(|p| p.matches(provider, name)))
            .flat_map(|r| r.args.iter().copied())
            .collect();
        args.sort_unstable();
        args.dedup();
        args
    }
}

/// Checks that every request names a traced probe and, for each of its
/// argument numbers, one such probe with that argument: a request that
/// would read nothing is a mistake, never ignored.
pub(crate) fn check_string_requests(
    requests: &[StringRequest],
    sites: &[SelectedSite],
    follow: bool,
) -> Result<(), TraceError> {
    for request in requests {
        let bad = |reason: String| TraceError::UselessStrings {
            request: request.to_string(),
            reason,
        };
        let counts: Vec<Option<usize>> = sites
            .iter()
            .filter(|site| {
                request
                    .pattern
                    .as_ref()
                    .is_none_or(|p| p.matches(&site.probe.provider, &site.probe.name))
            })
            .map(|site| argument_count(&site.probe))
            .collect();
        // A library loaded later may have the probe it names.
        if counts.is_empty() && follow {
            continue;
        }
        if counts.is_empty() {
            return Err(bad("no traced probe matches it".into()));
        }
        for &n in &request.args {
            if !counts.iter().any(|count| count.is_none_or(|c| n < c)) {
                let most = counts.iter().flatten().max().copied().unwrap_or(0);
                return Err(bad(format!(
                    "argument {n} does not exist: the probes it matches have at most {most} argument{}",
                    if most == 1 { "" } else { "s" }
                )));
            }
        }
    }
    Ok(())
}

/// How many arguments string requests count on `probe`: its declared ones
/// when its typed metadata fits its note, else its note's; `None` when the
/// note cannot be read (planning the site reports that).
fn argument_count(probe: &Probe) -> Option<usize> {
    let specs = probe.arg_specs.as_ref().ok()?;
    Some(match &probe.signature {
        Some(signature) if signature.slots() == specs.len() => signature.args.len(),
        _ => specs.len(),
    })
}

/// The sites of `module` (a library the traced process has mapped since
/// the trace started) that `specs` without a path select.
pub(crate) fn module_sites(
    specs: &[ProbeSpec],
    module: &usdt_reader::Module,
) -> Result<Vec<SelectedSite>, TraceError> {
    let host = regs::host_arch().ok_or(TraceError::UnsupportedHost)?;
    let mut sites = SiteList::default();
    for spec in specs
        .iter()
        .filter(|spec| spec.path.is_none() && spec.function.is_none())
    {
        for probe in module
            .probes
            .iter()
            .filter(|p| spec.pattern.matches(&p.provider, &p.name))
        {
            sites.push(SelectedSite {
                attach_path: module.host_path.clone(),
                display_path: module.path.clone(),
                arch: host,
                probe: probe.clone(),
                semaphore: SemaphoreMode::Kernel,
                ret: false,
            });
        }
    }
    Ok(sites.sites)
}

/// One probe site chosen for attaching.
#[derive(Debug, Clone)]
pub(crate) struct SelectedSite {
    /// The file to open the uprobe on (reachable from this process).
    pub attach_path: PathBuf,
    /// The file as the user or the traced process names it.
    pub display_path: PathBuf,
    /// The module's architecture.
    pub arch: Arch,
    /// The site.
    pub probe: Probe,
    /// How its semaphore (if any) is raised; set by [`plan_semaphores`].
    pub semaphore: SemaphoreMode,
    /// Whether the uprobe fires at the function's return (a uretprobe).
    pub ret: bool,
}

/// How a site's semaphore is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SemaphoreMode {
    /// No semaphore, or the kernel raises it (`ref_ctr_offset`).
    Kernel,
    /// The tracer writes the running process's memory at this address.
    Manual { address: u64 },
    /// The tracer writes it once the command started with `-c` has been
    /// exec'd: at this link-time address plus the executable's load bias.
    AfterExec { vaddr: u64 },
}

/// Finds the sites `specs` select. Specs with a path read that file; specs
/// without one search the modules of process `pid`, or `executable` (the
/// program `-c` starts, before it runs). When `follow`ing the libraries
/// the process loads later, a pattern without a path that matches nothing
/// yet is a warning, not an error. Gives up when `cancel` is set.
pub(crate) fn select_sites(
    specs: &[ProbeSpec],
    pid: Option<u32>,
    executable: Option<&Path>,
    follow: bool,
    warnings: &mut Vec<String>,
    cancel: Cancel<'_>,
) -> Result<Vec<SelectedSite>, TraceError> {
    let mut sites = SiteList::default();
    let mut process_modules: Option<Vec<(PathBuf, PathBuf, Vec<Probe>)>> = None;
    for spec in specs {
        cancel.check()?;
        if let Some(function) = &spec.function {
            let (attach_path, display_path) = function_file(
                spec,
                function,
                pid,
                executable,
                &mut process_modules,
                warnings,
            )?;
            let file = ElfFile::open(&attach_path)?;
            let host = host_file(&file, &display_path, spec)?;
            let probe = function.site(&file)?;
            sites.push(SelectedSite {
                attach_path,
                display_path,
                arch: host,
                probe,
                semaphore: SemaphoreMode::Kernel,
                ret: function.ret,
            });
            continue;
        }
        let before = sites.len();
        let scope;
        if let Some(path) = &spec.path {
            scope = path.display().to_string();
            add_file_sites(&mut sites, path, path, spec, warnings)?;
        } else if let Some(executable) = executable {
            scope = executable.display().to_string();
            add_file_sites(&mut sites, executable, executable, spec, warnings)?;
        } else if let Some(pid) = pid {
            scope = format!("process {pid}");
            if process_modules.is_none() {
                process_modules = Some(read_process(pid, warnings)?);
            }
            let host = regs::host_arch().ok_or(TraceError::UnsupportedHost)?;
            for (path, host_path, probes) in process_modules.iter().flatten() {
                cancel.check()?;
                for probe in probes
                    .iter()
                    .filter(|p| spec.pattern.matches(&p.provider, &p.name))
                {
                    sites.push(SelectedSite {
                        attach_path: host_path.clone(),
                        display_path: path.clone(),
                        arch: host,
                        probe: probe.clone(),
                        semaphore: SemaphoreMode::Kernel,
                        ret: false,
                    });
                }
            }
        } else {
            return Err(TraceError::BadSpec {
                spec: spec.to_string(),
                reason: "no file given: write PATH:provider:name, or use --pid to search a process"
                    .into(),
            });
        }
        if sites.len() == before && !spec_matched_duplicates(&sites.sites, spec) {
            if follow && spec.path.is_none() {
                let warning = format!(
                    "no probe matches `{}` in {scope} yet: following the libraries the process loads",
                    spec.pattern_text
                );
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
                continue;
            }
            return Err(TraceError::NoMatch {
                pattern: spec.pattern_text.clone(),
                scope,
                skipped: skipped_reasons(warnings),
            });
        }
    }
    Ok(sites.sites)
}

/// Decides how each selected site's semaphore is raised (see
/// [`crate::semaphore`]) and returns warnings for semaphores that processes
/// mapping the file later will not see raised. `pid` with no `executable`
/// is a running process; with `executable`, a command about to exec it.
pub(crate) fn plan_semaphores(
    sites: &mut [SelectedSite],
    pid: Option<u32>,
    executable: Option<&Path>,
) -> Result<Vec<String>, TraceError> {
    let mut warnings = Vec::new();
    let mut warned = HashSet::new();
    let mut files: HashMap<PathBuf, ElfFile> = HashMap::new();
    // Per file: its inode and the module of the running process that maps
    // it (looked up once per file, not once per site).
    let mut modules_of: HashMap<PathBuf, Option<(u64, u64)>> = HashMap::new();
    let running = match (pid, executable) {
        (Some(pid), None) if sites.iter().any(|s| s.probe.semaphore.is_some()) => {
            let process = Process::open(pid)?;
            let modules = process.modules_partial()?.found;
            let mappings = process.mappings()?;
            Some((modules, mappings))
        }
        _ => None,
    };
    for site in sites.iter_mut() {
        let (Some(vaddr), Some(offset)) = (site.probe.semaphore, site.probe.semaphore_offset)
        else {
            continue;
        };
        if !files.contains_key(&site.attach_path) {
            let file = ElfFile::open(&site.attach_path)?;
            files.insert(site.attach_path.clone(), file);
        }
        let hazard = files[&site.attach_path].semaphore_page_is_shared(vaddr, offset);
        let mut warn = hazard;
        if let Some(executable) = executable {
            if hazard && site.attach_path == executable {
                site.semaphore = SemaphoreMode::AfterExec { vaddr };
                warn = false;
            }
        } else if let Some((modules, mappings)) = &running {
            let module = *modules_of
                .entry(site.attach_path.clone())
                .or_insert_with(|| {
                    let inode = inode_of(&site.attach_path)?;
                    let module = modules
                        .iter()
                        .find(|m| inode_of(&m.host_path) == Some(inode))?;
                    Some((inode, module.bias))
                });
            if let Some((inode, bias)) = module {
                let address = vaddr.wrapping_add(bias);
                if semaphore::kernel_target(mappings, inode, offset) != Some(address) {
                    site.semaphore = SemaphoreMode::Manual { address };
                }
                warn = false;
            }
        }
        if !warn {
            continue;
        }
        let warning = format!(
            "the semaphore of {}:{} in {} shares a file page with a RELRO segment: the kernel cannot raise it in processes that map the file after attaching (trace those with --pid)",
            site.probe.provider,
            site.probe.name,
            site.display_path.display()
        );
        if warned.insert(warning.clone()) {
            warnings.push(warning);
        }
    }
    Ok(warnings)
}

fn inode_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Whether `spec` matches a site another spec already selected (so it is
/// not a pattern matching nothing).
fn spec_matched_duplicates(sites: &[SelectedSite], spec: &ProbeSpec) -> bool {
    sites.iter().any(|site| {
        spec.pattern.matches(&site.probe.provider, &site.probe.name)
            && spec
                .path
                .as_ref()
                .is_none_or(|path| *path == site.display_path)
    })
}

fn add_file_sites(
    sites: &mut SiteList,
    path: &Path,
    display: &Path,
    spec: &ProbeSpec,
    warnings: &mut Vec<String>,
) -> Result<(), TraceError> {
    let file = ElfFile::open(path)?;
    let arch = host_file(&file, display, spec)?;
    let probes = file.probes_partial()?;
    warn_skipped(warnings, &probes.skipped);
    for probe in probes.found {
        if spec.pattern.matches(&probe.provider, &probe.name) {
            sites.push(SelectedSite {
                attach_path: path.to_path_buf(),
                display_path: display.to_path_buf(),
                arch,
                probe,
                semaphore: SemaphoreMode::Kernel,
                ret: false,
            });
        }
    }
    Ok(())
}

/// The file holding a function probe's function: (the file to attach to,
/// the file as named). A module named without a path is found among the
/// modules of process `pid`, or is the executable `-c` runs.
fn function_file(
    spec: &ProbeSpec,
    function: &FunctionProbe,
    pid: Option<u32>,
    executable: Option<&Path>,
    process_modules: &mut Option<Vec<ModuleProbes>>,
    warnings: &mut Vec<String>,
) -> Result<(PathBuf, PathBuf), TraceError> {
    let Some(name) = &function.module else {
        let path = spec.path.clone().unwrap_or_default();
        return Ok((path.clone(), path));
    };
    let bad = |reason: String| TraceError::BadSpec {
        spec: spec.to_string(),
        reason,
    };
    if let Some(executable) = executable {
        if module_name_matches(executable, name) {
            return Ok((executable.to_path_buf(), executable.to_path_buf()));
        }
        return Err(bad(format!(
            "`{name}` is not the command's executable ({}); give the library's path",
            executable.display()
        )));
    }
    let Some(pid) = pid else {
        return Err(bad(format!(
            "`{name}` is not a path (no `/`): give the file's path, or use --pid to find a module of a process by name"
        )));
    };
    if process_modules.is_none() {
        *process_modules = Some(read_process(pid, warnings)?);
    }
    let mut matches: Vec<&(PathBuf, PathBuf, Vec<Probe>)> = Vec::new();
    for module in process_modules.iter().flatten() {
        if module_name_matches(&module.0, name) && !matches.iter().any(|m| m.0 == module.0) {
            matches.push(module);
        }
    }
    match matches.as_slice() {
        [(path, host_path, _)] => Ok((host_path.clone(), path.clone())),
        [] => Err(TraceError::NoMatch {
            pattern: name.clone(),
            scope: format!("the modules of process {pid}"),
            skipped: skipped_reasons(warnings),
        }),
        many => Err(bad(format!(
            "`{name}` names {} modules of process {pid} ({}); give a path",
            many.len(),
            many.iter()
                .map(|m| m.0.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Whether the module at `path` is the one called `name`: its file name,
/// or its file name's stem before `.so` with or without `lib` (`libc`
/// and `c` both name `libc.so.6`).
fn module_name_matches(path: &Path, name: &str) -> bool {
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        return false;
    };
    file == name
        || file
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(".so"))
        || file
            .strip_prefix("lib")
            .and_then(|f| f.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with(".so"))
}

/// The sites selected so far, each file offset of each file once per kind
/// of uprobe (entry or return). Looking a site up costs the same however
/// many are selected, so selecting is linear in the sites.
#[derive(Default)]
struct SiteList {
    sites: Vec<SelectedSite>,
    seen: HashSet<(PathBuf, u64, bool)>,
}

impl SiteList {
    /// Adds `site` unless the same file offset of the same file is selected
    /// for the same kind of uprobe.
    fn push(&mut self, site: SelectedSite) {
        let key = (site.attach_path.clone(), site.probe.file_offset, site.ret);
        if self.seen.insert(key) {
            self.sites.push(site);
        }
    }

    fn len(&self) -> usize {
        self.sites.len()
    }
}

type ModuleProbes = (PathBuf, PathBuf, Vec<Probe>);

/// The modules of process `pid` and their probes; a module or note that
/// cannot be read is left out with a warning.
fn read_process(pid: u32, warnings: &mut Vec<String>) -> Result<Vec<ModuleProbes>, TraceError> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(TraceError::NoSuchProcess { pid });
    }
    let modules = Process::open(pid)?.modules_partial()?;
    warn_skipped(warnings, &modules.skipped);
    Ok(modules
        .found
        .into_iter()
        .map(|m| (m.path, m.host_path, m.probes))
        .collect())
}

/// What every warning about a note or module left out starts with.
const SKIPPED: &str = "skipped: ";

/// Adds a warning for each note or module the reader left out (once, as
/// selection reads a file once per aggregation).
fn warn_skipped(warnings: &mut Vec<String>, skipped: &[usdt_reader::Error]) {
    for error in skipped {
        let warning = format!("{SKIPPED}{error}");
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
}

/// Why each note or module in `warnings` was left out.
fn skipped_reasons(warnings: &[String]) -> Vec<String> {
    warnings
        .iter()
        .filter_map(|warning| warning.strip_prefix(SKIPPED))
        .map(str::to_owned)
        .collect()
}

/// The host's architecture, if `file` (named `display`) is of it: a uprobe
/// on a file of another architecture would never fire.
fn host_file(file: &ElfFile, display: &Path, spec: &ProbeSpec) -> Result<Arch, TraceError> {
    let host = regs::host_arch().ok_or(TraceError::UnsupportedHost)?;
    if file.arch() != host {
        return Err(TraceError::BadSpec {
            spec: spec.to_string(),
            reason: format!(
                "{} is an {} file; this machine runs {host} code",
                display.display(),
                file.arch()
            ),
        });
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ProbeSpec {
        text.parse().unwrap()
    }

    #[test]
    fn probe_specs_split_path_and_pattern() {
        let s = spec("/usr/bin/python3.11:python:function__entry");
        assert_eq!(s.path.as_deref(), Some(Path::new("/usr/bin/python3.11")));
        assert_eq!(s.pattern_text, "python:function__entry");
        assert!(s.pattern.matches("python", "function__entry"));

        let s = spec("usdt:./a.out:p*:n?");
        assert_eq!(s.path.as_deref(), Some(Path::new("./a.out")));
        assert!(s.pattern.matches("prov", "n1"));
        assert!(!s.pattern.matches("prov", "n12"));

        let s = spec("http:request_*");
        assert_eq!(s.path, None);
        assert!(s.pattern.matches("http", "request_start"));

        let s = spec("/lib/libfoo.so");
        assert_eq!(s.path.as_deref(), Some(Path::new("/lib/libfoo.so")));
        assert!(s.pattern.matches("any", "thing"));

        // A colon in a directory name stays in the path.
        let s = spec("/tmp/a:b/prog:p:n");
        assert_eq!(s.path.as_deref(), Some(Path::new("/tmp/a:b/prog")));
        assert_eq!(s.pattern_text, "p:n");

        // A file of the current directory, named without a `/`.
        let s = spec("app:p:n*");
        assert_eq!(s.path.as_deref(), Some(Path::new("app")));
        assert_eq!(s.pattern_text, "p:n*");
        let s = spec("usdt:app:p:n");
        assert_eq!(s.path.as_deref(), Some(Path::new("app")));
        let s = spec("usdt:p:n");
        assert_eq!((s.path, s.pattern_text.as_str()), (None, "p:n"));

        assert!("".parse::<ProbeSpec>().is_err());
        assert!("usdt:".parse::<ProbeSpec>().is_err());
    }

    #[test]
    fn function_probe_specs() {
        let s = spec("uprobe:/usr/bin/bash:readline");
        assert_eq!(s.path.as_deref(), Some(Path::new("/usr/bin/bash")));
        assert_eq!(s.pattern_text, "uprobe:readline");
        let function = s.function.unwrap();
        assert!(!function.ret);
        assert!(function.args.is_empty());

        let s = spec("uretprobe:libc:getenv(value: str)");
        assert_eq!(s.path, None);
        let function = s.function.unwrap();
        assert!(function.ret);
        assert_eq!(function.module.as_deref(), Some("libc"));
        assert_eq!(function.args[0].name, "value");

        // A USDT provider called `uprobe` stays a pattern.
        let s = spec("uprobe:fired");
        assert!(s.function.is_none());
        assert!(s.pattern.matches("uprobe", "fired"));

        assert!("uprobe:/bin/true:f(float)".parse::<ProbeSpec>().is_err());
    }

    #[test]
    fn module_names() {
        let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(module_name_matches(libc, "libc"));
        assert!(module_name_matches(libc, "c"));
        assert!(module_name_matches(libc, "libc.so.6"));
        assert!(!module_name_matches(
            Path::new("/usr/lib/libcrypto.so.3"),
            "libc"
        ));
        assert!(module_name_matches(Path::new("/usr/bin/bash"), "bash"));
        assert!(!module_name_matches(Path::new("/usr/bin/bash"), "ba"));
    }

    #[test]
    fn string_requests() {
        let r: StringRequest = "1".parse().unwrap();
        assert!(r.pattern.is_none());
        assert_eq!(r.args, vec![1]);
        let r: StringRequest = "python:function__*:0,arg1".parse().unwrap();
        assert_eq!(r.args, vec![0, 1]);
        assert!(r.pattern.unwrap().matches("python", "function__entry"));
        assert!("x".parse::<StringRequest>().is_err());
        assert!("12".parse::<StringRequest>().is_err());

        let requests: Vec<StringRequest> = vec!["2".parse().unwrap(), "p:n:0,2".parse().unwrap()];
        assert_eq!(StringRequest::args_for(&requests, "p", "n"), vec![0, 2]);
        assert_eq!(StringRequest::args_for(&requests, "q", "n"), vec![2]);
    }
}
