//! The tracer: loads the embedded BPF program, attaches it to the selected
//! sites with their plans, and delivers decoded events.

use crate::aggregate::{self, Aggregation, DEFAULT_MAP_ENTRIES, KeyDecoder, Role};
use crate::error::TraceError;
use crate::multi::{self, LoadError, MultiProgram};
use crate::plan::{self, SiteDecoding};
use crate::privileges;
use crate::report::{
    self, AggregateLosses, AggregateReport, AggregateResult, HitCount, Log2Histogram,
};
use crate::select::{self, ProbeSpec, SelectedSite, SemaphoreMode, StringRequest};
use crate::semaphore::ManualSemaphore;
use crate::uprobe::{self, UprobePmu};
use crate::value::Value;
use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, RingBuf};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usdt_reader::Signature;
use usdt_tracer_common::{
    AGG_ERR_FAULT, AGG_ERR_FULL, AGG_ERR_STARTS_FULL, AGG_ERR_UNMATCHED, AGG_ERRORS_MAP,
    AGGREGATES_MAP, AggKey, CONTROL_MAP, Control, DROPS_MAP, EVENT_FIXED_SIZE, EVENT_HEADER_SIZE,
    EVENTS_MAP, EventHeader, HISTOGRAM_BUCKETS, PROGRAM_NAME, PROGRAM_SECTION, SITES_MAP,
    STARTS_MAP, SitePlan, StartKey,
};

/// The BPF object built from `tracer-ebpf` (`cargo xtask build-ebpf`).
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/usdt-tracer.bpf.o");

/// Default size of the event ring buffer.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// The longest the reader sleeps before looking at the ring buffer again
/// (the BPF program wakes it only when much data is waiting).
const POLL_SLICE: Duration = Duration::from_millis(10);

/// What to trace and how.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The probes to attach to.
    pub probes: Vec<ProbeSpec>,
    /// Trace only this process (and search its modules for probes given
    /// without a path). `None`: every process running the files.
    pub pid: Option<u32>,
    /// Where probes without a path are searched when the process has not
    /// started yet (the program `-c` runs).
    pub executable: Option<PathBuf>,
    /// Arguments to copy as C strings.
    pub strings: Vec<StringRequest>,
    /// Size of the event ring buffer in bytes (a power of two, at least one
    /// page).
    pub ring_bytes: u32,
    /// Attach through one perf-event uprobe per site even where the kernel
    /// has uprobe_multi links (6.6+), which attach a whole file at once and
    /// detach much faster. Older kernels always use perf events.
    pub perf_event_links: bool,
    /// Aggregations computed in the kernel (their probes are not streamed
    /// unless `probes` names them too); read them with
    /// [`Tracer::aggregates`].
    pub aggregations: Vec<Aggregation>,
    /// Entry limit of the aggregation counter map (all aggregations share
    /// it) and of the map of pending latency starts. A full map is counted
    /// in [`AggregateLosses`], never silently ignored.
    pub map_entries: u32,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig::new()
    }
}

impl TraceConfig {
    /// An empty configuration: no probes, every process, default buffer.
    pub fn new() -> TraceConfig {
        TraceConfig {
            probes: Vec::new(),
            pid: None,
            executable: None,
            strings: Vec::new(),
            ring_bytes: DEFAULT_RING_BYTES,
            perf_event_links: false,
            aggregations: Vec::new(),
            map_entries: DEFAULT_MAP_ENTRIES,
        }
    }

    /// Adds an in-kernel aggregation (see [`Aggregation`]).
    pub fn aggregate(mut self, aggregation: Aggregation) -> TraceConfig {
        self.aggregations.push(aggregation);
        self
    }

    /// Adds a probe specification (see [`ProbeSpec`]).
    pub fn probe(mut self, spec: &str) -> Result<TraceConfig, TraceError> {
        self.probes.push(spec.parse()?);
        Ok(self)
    }

    /// Traces only process `pid`.
    pub fn pid(mut self, pid: u32) -> TraceConfig {
        self.pid = Some(pid);
        self
    }

    /// Adds a string request (see [`StringRequest`]).
    pub fn strings(mut self, request: &str) -> Result<TraceConfig, TraceError> {
        self.strings.push(request.parse()?);
        Ok(self)
    }
}

/// A traced probe: one provider:name in one module (all its sites).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// The provider.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// The module holding the probe, as the user or the process names it.
    pub path: PathBuf,
    /// Typed metadata of the first site, when the module carries it.
    pub signature: Option<Signature>,
    /// Number of attached sites.
    pub sites: usize,
    /// Whether the probe has a semaphore the tracer raised.
    pub semaphore: bool,
}

/// One probe hit.
#[derive(Debug, Clone)]
pub struct Event {
    /// The probe that fired.
    pub probe: Arc<ProbeInfo>,
    /// Link-time address of the site that fired.
    pub address: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// CPU that ran the probe.
    pub cpu: u32,
    /// CLOCK_MONOTONIC time of the hit, in nanoseconds.
    pub timestamp_ns: u64,
    /// Decoded arguments: one per declared argument for sites with typed
    /// metadata, else one per note argument.
    pub args: Vec<Value>,
    /// Declared argument names (typed sites), else empty.
    pub arg_names: Arc<[String]>,
}

impl Event {
    /// The name of argument `index`: the declared name, or `argN`.
    pub fn arg_name(&self, index: usize) -> String {
        self.arg_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("arg{index}"))
    }
}

/// What user space keeps per attached site.
struct SiteState {
    probe: usize,
    address: u64,
    decoding: SiteDecoding,
}

/// The maps of the in-kernel aggregations and how to read them.
struct Aggregates {
    counters: BpfHashMap<MapData, AggKey, u64>,
    starts: BpfHashMap<MapData, StartKey, u64>,
    errors: Array<MapData, u64>,
    /// Per aggregation: its configuration and, per probe id it covers, how
    /// to show its keys.
    specs: Vec<(Aggregation, Vec<(u32, KeyDecoder)>)>,
}

/// Attached probes and the stream of their events. Dropping the tracer
/// detaches everything (and the kernel lowers the semaphores it raised).
pub struct Tracer {
    /// The links (one per file, or one per site on kernels without
    /// uprobe_multi); closing a link removes its uprobes.
    links: Vec<OwnedFd>,
    ring: RingBuf<MapData>,
    drops: Array<MapData, u64>,
    probes: Vec<Arc<ProbeInfo>>,
    sites: Vec<SiteState>,
    /// Distinct sites attached (a site can be attached for several uses).
    site_count: usize,
    aggregates: Option<Aggregates>,
    delivered: u64,
    /// Semaphores raised by writing process memory, lowered on detach.
    manual: Vec<ManualSemaphore>,
    /// Link-time addresses of the executable's semaphores to raise once the
    /// command (`-c`) has been exec'd, and the executable.
    after_exec: Vec<u64>,
    executable: Option<PathBuf>,
    warnings: Vec<String>,
    _ebpf: Ebpf,
}

impl Tracer {
    /// Selects the sites `config` names, loads the BPF program and attaches
    /// it to every site. On error nothing stays attached.
    pub fn attach(config: &TraceConfig) -> Result<Tracer, TraceError> {
        if config.probes.is_empty() && config.aggregations.is_empty() {
            return Err(TraceError::BadSpec {
                spec: String::new(),
                reason: "no probe given".into(),
            });
        }
        if config.map_entries == 0 {
            return Err(TraceError::BadSpec {
                spec: "0".into(),
                reason: "the aggregation maps need at least one entry".into(),
            });
        }
        // Privileges first: without them nothing else matters.
        privileges::check()?;
        if let (Some(pid), None) = (config.pid, &config.executable) {
            privileges::check_process(pid)?;
        }
        let Selection {
            sites: mut selected,
            roles,
            mut warnings,
        } = select_all(config)?;
        select::check_string_requests(&config.strings, &selected)?;
        warnings.extend(select::plan_semaphores(
            &mut selected,
            config.pid,
            config.executable.as_deref(),
        )?);
        let planned = plan_all(
            &selected,
            &roles,
            &config.strings,
            config.aggregations.len(),
        )?;
        let plans = planned.plans;
        let probes = planned.probes;
        let sites = planned.sites;
        let mut distinct: Vec<(&Path, u64, bool)> = selected
            .iter()
            .map(|s| (s.attach_path.as_path(), s.probe.file_offset, s.ret))
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        let site_count = distinct.len();
        uprobe::raise_fd_limit();

        // The aggregation maps are allocated up front by the kernel: one
        // entry each when nothing is aggregated.
        let aggregating = !config.aggregations.is_empty();
        let map_entries = if aggregating { config.map_entries } else { 1 };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(SITES_MAP, plans.len().max(1) as u32)
            .map_max_entries(EVENTS_MAP, config.ring_bytes)
            .map_max_entries(AGGREGATES_MAP, map_entries)
            .map_max_entries(STARTS_MAP, map_entries)
            .load(BPF_OBJECT)
            .map_err(|e| bpf_error("cannot load the BPF object", &e))?;
        {
            let mut map: Array<&mut MapData, SitePlan> = ebpf
                .map_mut(SITES_MAP)
                .ok_or_else(|| TraceError::Bpf(format!("the BPF object has no map {SITES_MAP}")))?
                .try_into()
                .map_err(|e| bpf_error(SITES_MAP, &e))?;
            for (index, plan) in plans.iter().enumerate() {
                map.set(index as u32, *plan, 0)
                    .map_err(|e| bpf_error("cannot store a site plan", &e))?;
            }
        }
        // uprobe_multi links where the kernel has them (one per file, fast
        // to attach and to detach); perf-event uprobes, one per site,
        // otherwise.
        let multi_program = if config.perf_event_links {
            None
        } else {
            load_multi_program(&ebpf)?
        };
        let links = match multi_program {
            Some(program) => attach_multi(&program, &selected, config.pid)?,
            None => attach_perf_events(&mut ebpf, &selected, config.pid)?,
        };
        let ring: RingBuf<MapData> = take_map(&mut ebpf, EVENTS_MAP)?;
        let drops: Array<MapData, u64> = take_map(&mut ebpf, DROPS_MAP)?;
        let aggregates = if aggregating {
            Some(Aggregates {
                counters: take_map(&mut ebpf, AGGREGATES_MAP)?,
                starts: take_map(&mut ebpf, STARTS_MAP)?,
                errors: take_map(&mut ebpf, AGG_ERRORS_MAP)?,
                specs: config
                    .aggregations
                    .iter()
                    .cloned()
                    .zip(planned.keys)
                    .collect(),
            })
        } else {
            None
        };
        // Arm the program: every site starts reporting at this instant.
        {
            let cpus = aya::util::nr_cpus().map_or(1, |n| n as u32);
            let settings = Control {
                armed: 1,
                wake_bytes: usdt_tracer_common::wake_bytes(config.ring_bytes, cpus),
            };
            let mut control: Array<&mut MapData, Control> = ebpf
                .map_mut(CONTROL_MAP)
                .ok_or_else(|| TraceError::Bpf(format!("the BPF object has no map {CONTROL_MAP}")))?
                .try_into()
                .map_err(|e| bpf_error(CONTROL_MAP, &e))?;
            control
                .set(0, settings, 0)
                .map_err(|e| bpf_error("cannot arm the BPF program", &e))?;
        }
        let mut tracer = Tracer {
            links,
            ring,
            drops,
            probes,
            sites,
            site_count,
            aggregates,
            delivered: 0,
            manual: Vec::new(),
            after_exec: Vec::new(),
            executable: config.executable.clone(),
            warnings,
            _ebpf: ebpf,
        };
        // Semaphores the kernel cannot raise: after the uprobes are in place,
        // so the first guarded hit is seen.
        for site in &selected {
            match site.semaphore {
                SemaphoreMode::Kernel => {}
                SemaphoreMode::Manual { address } => {
                    if let Some(pid) = config.pid
                        && !tracer.manual.iter().any(|m| m.address() == address)
                    {
                        tracer.manual.push(ManualSemaphore::raise(pid, address)?);
                    }
                }
                SemaphoreMode::AfterExec { vaddr } => {
                    if !tracer.after_exec.contains(&vaddr) {
                        tracer.after_exec.push(vaddr);
                    }
                }
            }
        }
        Ok(tracer)
    }

    /// The traced probes.
    pub fn probes(&self) -> &[Arc<ProbeInfo>] {
        &self.probes
    }

    /// Number of attached sites (0 after [`Tracer::detach`]); a site
    /// streamed and aggregated counts once.
    pub fn attached_sites(&self) -> usize {
        if self.links.is_empty() {
            0
        } else {
            self.site_count
        }
    }

    /// What the in-kernel aggregations hold now: every configured
    /// aggregation's counts or histograms (cumulative since attaching; see
    /// [`AggregateReport::since`] for intervals), and the hits that could
    /// not be aggregated. Readable after [`Tracer::detach`] too. Empty when
    /// the configuration has no aggregation.
    pub fn aggregates(&self) -> Result<AggregateReport, TraceError> {
        let Some(aggregates) = &self.aggregates else {
            return Ok(AggregateReport::default());
        };
        let error = |index: u32| {
            aggregates
                .errors
                .get(&index, 0)
                .map_err(|e| bpf_error("cannot read the aggregation error counters", &e))
        };
        let losses = AggregateLosses {
            map_full: error(AGG_ERR_FULL)?,
            starts_full: error(AGG_ERR_STARTS_FULL)?,
            unmatched_ends: error(AGG_ERR_UNMATCHED)?,
            faults: error(AGG_ERR_FAULT)?,
        };
        let pending_starts = aggregates.starts.keys().filter(Result::is_ok).count() as u64;

        let mut results: Vec<AggregateResult> = aggregates
            .specs
            .iter()
            .map(|(spec, keys)| match spec {
                Aggregation::Hits { by, .. } => AggregateResult::Hits {
                    by: by.as_ref().map(ToString::to_string),
                    // Every probe shows, with no hit too, when not keyed.
                    counts: if by.is_none() {
                        keys.iter()
                            .map(|(probe, _)| HitCount {
                                probe: self.probes[*probe as usize].clone(),
                                key: None,
                                count: 0,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                },
                Aggregation::Histogram { arg, .. } => AggregateResult::Histogram {
                    arg: arg.clone(),
                    histograms: keys
                        .iter()
                        .map(|(probe, _)| {
                            (
                                self.probes[*probe as usize].clone(),
                                Log2Histogram::default(),
                            )
                        })
                        .collect(),
                },
                Aggregation::Latency {
                    start,
                    end,
                    start_key,
                    end_key,
                } => AggregateResult::Latency {
                    start: start.to_string(),
                    end: end.to_string(),
                    key: if start_key == end_key {
                        start_key.to_string()
                    } else {
                        format!("{start_key},{end_key}")
                    },
                    histogram: Box::default(),
                },
            })
            .collect();
        for entry in aggregates.counters.iter() {
            let (key, count) =
                entry.map_err(|e| bpf_error("cannot read the aggregation counters", &e))?;
            let Some(result) = results.get_mut(key.aggregation as usize) else {
                continue;
            };
            let bucket = key.value as usize;
            match result {
                AggregateResult::Hits { counts, .. } => {
                    let Some(decoder) = aggregates.specs[key.aggregation as usize]
                        .1
                        .iter()
                        .find(|(probe, _)| *probe == key.probe_id)
                        .map(|(_, decoder)| *decoder)
                    else {
                        continue;
                    };
                    let value = decoder.decode(&key);
                    let probe = &self.probes[key.probe_id as usize];
                    // Each map entry is its own row, except the per-probe
                    // counters without a key, listed beforehand.
                    let listed = value.is_none().then(|| {
                        counts
                            .iter_mut()
                            .find(|row| Arc::ptr_eq(&row.probe, probe) && row.key.is_none())
                    });
                    match listed.flatten() {
                        Some(row) => row.count += count,
                        None => counts.push(HitCount {
                            probe: probe.clone(),
                            key: value,
                            count,
                        }),
                    }
                }
                AggregateResult::Histogram { histograms, .. } => {
                    let probe = self.probes.get(key.probe_id as usize);
                    if let Some((_, histogram)) = histograms
                        .iter_mut()
                        .find(|(p, _)| probe.is_some_and(|probe| Arc::ptr_eq(p, probe)))
                        && bucket < HISTOGRAM_BUCKETS
                    {
                        histogram.buckets[bucket] += count;
                    }
                }
                AggregateResult::Latency { histogram, .. } => {
                    if bucket < HISTOGRAM_BUCKETS {
                        histogram.buckets[bucket] += count;
                    }
                }
            }
        }
        for result in &mut results {
            if let AggregateResult::Hits { counts, .. } = result {
                report::sort_counts(counts);
            }
        }
        Ok(AggregateReport {
            results,
            losses,
            pending_starts,
        })
    }

    /// Events delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Events lost because the ring buffer was full.
    pub fn drops(&self) -> Result<u64, TraceError> {
        self.drops
            .get(&0, 0)
            .map_err(|e| bpf_error("cannot read the drop counter", &e))
    }

    /// The ring buffer's descriptor, readable when the BPF program asks for
    /// a wake-up (it does only when much data waits: poll it with a short
    /// timeout and call [`Tracer::drain`] either way).
    pub fn ring_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Delivers every event waiting in the ring buffer to `f`; returns how
    /// many. Stops early (leaving the rest waiting) when `f` returns `false`.
    pub fn drain(&mut self, mut f: impl FnMut(Event) -> bool) -> usize {
        let mut count = 0;
        while let Some(item) = self.ring.next() {
            let event = decode_record(&item, &self.sites, &self.probes);
            drop(item);
            let Some(event) = event else { continue };
            count += 1;
            self.delivered += 1;
            if !f(event) {
                break;
            }
        }
        count
    }

    /// Waits up to `timeout` for events and delivers those that arrived
    /// (see [`Tracer::drain`]); returns how many.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(Event) -> bool,
    ) -> Result<usize, TraceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut stop = false;
            let count = self.drain(|event| {
                let more = f(event);
                stop = !more;
                more
            });
            if count > 0 || stop {
                return Ok(count);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            wait_readable(self.ring.as_raw_fd(), (deadline - now).min(POLL_SLICE))?;
        }
    }

    /// Things the user should know about the attachment, such as
    /// semaphores that processes started later will not see raised.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Raises the semaphores the kernel cannot raise at exec time, in
    /// process `pid` that has just exec'd the configured executable (a
    /// command started with [`crate::launch::StoppedCommand`]); call it
    /// before the process runs. Nothing to do for most binaries.
    pub fn raise_after_exec(&mut self, pid: u32) -> Result<(), TraceError> {
        if self.after_exec.is_empty() {
            return Ok(());
        }
        let executable = self.executable.clone().unwrap_or_default();
        let module = usdt_reader::Process::open(pid)?
            .modules_partial()?
            .found
            .into_iter()
            .find(|m| same_file(&m.host_path, &executable))
            .ok_or_else(|| TraceError::Process {
                pid,
                reason: format!("does not map {}", executable.display()),
            })?;
        for vaddr in std::mem::take(&mut self.after_exec) {
            let semaphore = ManualSemaphore::raise(pid, vaddr.wrapping_add(module.bias))?;
            self.manual.push(semaphore);
        }
        Ok(())
    }

    /// Removes every uprobe and lowers the semaphores, but keeps the events
    /// already in the ring buffer for [`Tracer::drain`].
    pub fn detach(&mut self) {
        for semaphore in self.manual.drain(..) {
            semaphore.lower();
        }
        self.links.clear();
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // Links first, so no event arrives in half-released maps.
        self.detach();
    }
}

/// Whether two paths name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Selects the sites of the streamed probes and of every aggregation, in
/// cookie order, with what each does. A site used twice is selected twice.
/// The sites of every probe a configuration names.
struct Selection {
    /// The sites, in order.
    sites: Vec<SelectedSite>,
    /// The role of each site.
    roles: Vec<Role>,
    /// Notes or modules the reader left out.
    warnings: Vec<String>,
}

/// The sites of every probe the configuration names, the role of each, and
/// warnings about notes or modules the reader left out.
fn select_all(config: &TraceConfig) -> Result<Selection, TraceError> {
    let mut warnings = Vec::new();
    let mut select = |specs: &[ProbeSpec]| {
        select::select_sites(
            specs,
            config.pid,
            config.executable.as_deref(),
            &mut warnings,
        )
    };
    let mut selected = Vec::new();
    let mut roles = Vec::new();
    let mut add = |sites: Vec<SelectedSite>, role: Role| {
        roles.extend(std::iter::repeat_n(role, sites.len()));
        selected.extend(sites);
    };
    if !config.probes.is_empty() {
        add(select(&config.probes)?, Role::Stream);
    }
    for (index, aggregation) in config.aggregations.iter().enumerate() {
        let index = index as u32;
        match aggregation {
            Aggregation::Hits { probes, by } => add(
                select(probes)?,
                Role::Count {
                    index,
                    by: by.clone(),
                },
            ),
            Aggregation::Histogram { probes, arg } => add(
                select(probes)?,
                Role::Histogram {
                    index,
                    arg: arg.clone(),
                },
            ),
            Aggregation::Latency {
                start,
                end,
                start_key,
                end_key,
            } => {
                add(
                    select(std::slice::from_ref(start.as_ref()))?,
                    Role::LatencyStart {
                        index,
                        key: start_key.clone(),
                    },
                );
                add(
                    select(std::slice::from_ref(end.as_ref()))?,
                    Role::LatencyEnd {
                        index,
                        key: end_key.clone(),
                    },
                );
            }
        }
    }
    Ok(Selection {
        sites: selected,
        roles,
        warnings,
    })
}

/// The plans of the selected sites (in cookie order), the probes they
/// belong to, what user space keeps per site, and per aggregation the probe
/// ids it covers with how to show their keys.
struct Planned {
    plans: Vec<SitePlan>,
    probes: Vec<Arc<ProbeInfo>>,
    sites: Vec<SiteState>,
    keys: Vec<Vec<(u32, KeyDecoder)>>,
}

/// Plans every site for its role; groups sites into probes by (module,
/// provider, name).
fn plan_all(
    selected: &[SelectedSite],
    roles: &[Role],
    strings: &[StringRequest],
    aggregations: usize,
) -> Result<Planned, TraceError> {
    let mut probe_index: HashMap<(PathBuf, String, String), usize> = HashMap::new();
    let mut counted: std::collections::HashSet<(PathBuf, u64, bool)> = Default::default();
    let mut infos: Vec<ProbeInfo> = Vec::new();
    let mut plans = Vec::with_capacity(selected.len());
    let mut sites = Vec::with_capacity(selected.len());
    let mut keys: Vec<Vec<(u32, KeyDecoder)>> = vec![Vec::new(); aggregations];
    for (site, role) in selected.iter().zip(roles) {
        let probe = &site.probe;
        let key = (
            site.display_path.clone(),
            probe.provider.clone(),
            probe.name.clone(),
        );
        let id = *probe_index.entry(key).or_insert_with(|| {
            infos.push(ProbeInfo {
                provider: probe.provider.clone(),
                name: probe.name.clone(),
                path: site.display_path.clone(),
                signature: probe.signature.clone(),
                sites: 0,
                semaphore: probe.semaphore_offset.is_some(),
            });
            infos.len() - 1
        });
        if counted.insert((site.attach_path.clone(), probe.file_offset, site.ret)) {
            infos[id].sites += 1;
        }
        let unsupported = |reason: String| TraceError::Unsupported {
            path: site.display_path.clone(),
            provider: probe.provider.clone(),
            name: probe.name.clone(),
            address: probe.address,
            reason,
        };
        let cstr = StringRequest::args_for(strings, &probe.provider, &probe.name);
        let (mut plan, decoding) =
            plan::plan_site(site.arch, probe, id as u32, &cstr).map_err(|e| unsupported(e.0))?;
        let shown = aggregate::apply_role(&mut plan, &decoding, role).map_err(unsupported)?;
        let aggregation = match role {
            Role::Stream => None,
            Role::Count { index, .. }
            | Role::Histogram { index, .. }
            | Role::LatencyStart { index, .. }
            | Role::LatencyEnd { index, .. } => Some(*index as usize),
        };
        if let Some(covered) = aggregation.and_then(|index| keys.get_mut(index))
            && !matches!(role, Role::LatencyStart { .. } | Role::LatencyEnd { .. })
            && !covered.iter().any(|(probe, _)| *probe == id as u32)
        {
            covered.push((id as u32, shown));
        }
        plans.push(plan);
        sites.push(SiteState {
            probe: id,
            address: probe.address,
            decoding,
        });
    }
    Ok(Planned {
        plans,
        probes: infos.into_iter().map(Arc::new).collect(),
        sites,
        keys,
    })
}

/// Loads the program for uprobe_multi links, or `None` when the kernel has
/// no such links (then perf-event uprobes serve).
fn load_multi_program(ebpf: &Ebpf) -> Result<Option<MultiProgram>, TraceError> {
    // The descriptors aya holds for the maps it created: asking the kernel
    // for a map by id (BPF_MAP_GET_FD_BY_ID) would need CAP_SYS_ADMIN.
    let mut fds: Vec<(&str, BorrowedFd<'_>)> = Vec::new();
    for (name, map) in ebpf.maps() {
        let data = match map {
            Map::Array(data) | Map::PerCpuArray(data) | Map::RingBuf(data) | Map::HashMap(data) => {
                data
            }
            _ => return Err(TraceError::Bpf(format!("unexpected map {name}"))),
        };
        fds.push((name, data.fd().as_fd()));
    }
    let map_fd = |symbol: &str| {
        fds.iter()
            .find(|(name, _)| *name == symbol)
            .map(|(_, fd)| fd.as_raw_fd())
    };
    // Kernels before 6.6 would load the program (and spend the verifier's
    // time on it) but make no links for it.
    if !multi::kernel_has_links() {
        return Ok(None);
    }
    match MultiProgram::load(BPF_OBJECT, PROGRAM_SECTION, PROGRAM_NAME, map_fd) {
        Ok(program) => Ok(Some(program)),
        Err(LoadError::Object(what)) => Err(TraceError::Bpf(format!("bad BPF object: {what}"))),
        // Kernels before 6.6 have no uprobe_multi.
        Err(LoadError::Kernel(error, _))
            if matches!(error.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) =>
        {
            Ok(None)
        }
        Err(LoadError::Kernel(error, log)) => Err(TraceError::Bpf(format!(
            "the kernel rejected the BPF program: {error}: {log}"
        ))),
    }
}

/// uprobe_multi links: one per file and kind of uprobe (entry or return)
/// with every selected site of it; the cookie of a site is its index. A
/// site selected for several uses goes into as many links, one offset per
/// link.
fn attach_multi(
    program: &MultiProgram,
    selected: &[SelectedSite],
    pid: Option<u32>,
) -> Result<Vec<OwnedFd>, TraceError> {
    let mut groups: Vec<(&Path, bool, std::collections::HashSet<u64>, Vec<usize>)> = Vec::new();
    for (index, site) in selected.iter().enumerate() {
        let offset = site.probe.file_offset;
        let group = groups.iter_mut().find(|(file, ret, offsets, _)| {
            *file == site.attach_path.as_path() && *ret == site.ret && !offsets.contains(&offset)
        });
        match group {
            Some((_, _, offsets, members)) => {
                offsets.insert(offset);
                members.push(index);
            }
            None => groups.push((
                &site.attach_path,
                site.ret,
                std::iter::once(offset).collect(),
                vec![index],
            )),
        }
    }
    let mut links = Vec::with_capacity(groups.len());
    for (file, ret, _, members) in groups {
        let group: Vec<(usize, &SelectedSite)> = members
            .iter()
            .map(|&index| (index, &selected[index]))
            .collect();
        let offsets: Vec<u64> = group.iter().map(|(_, s)| s.probe.file_offset).collect();
        let ref_ctrs: Vec<u64> = group.iter().map(|(_, s)| ref_ctr(s).unwrap_or(0)).collect();
        let cookies: Vec<u64> = group.iter().map(|(index, _)| *index as u64).collect();
        match multi::link(program.fd(), file, &offsets, &ref_ctrs, &cookies, pid, ret) {
            Ok(link) => links.push(link),
            Err(error) => {
                // Find the site the kernel refuses, to name it.
                for (index, site) in &group {
                    let one = multi::link(
                        program.fd(),
                        file,
                        &[site.probe.file_offset],
                        &[ref_ctr(site).unwrap_or(0)],
                        &[*index as u64],
                        pid,
                        ret,
                    );
                    if let Err(error) = one {
                        return Err(classify_attach_error(error, pid, site));
                    }
                }
                return Err(classify_attach_error(error, pid, group[0].1));
            }
        }
    }
    Ok(links)
}

/// One perf-event uprobe per site, linked to the program aya loads.
fn attach_perf_events(
    ebpf: &mut Ebpf,
    selected: &[SelectedSite],
    pid: Option<u32>,
) -> Result<Vec<OwnedFd>, TraceError> {
    let pmu = UprobePmu::detect().map_err(|source| TraceError::Io {
        context: "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe)".into(),
        source,
    })?;
    if !pmu.supports_semaphores() && selected.iter().any(|s| ref_ctr(s).is_some()) {
        return Err(TraceError::Bpf(
            "this kernel cannot raise USDT semaphores (no uprobe ref_ctr_offset)".into(),
        ));
    }
    let program: &mut UProbe = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or_else(|| TraceError::Bpf(format!("the BPF object has no program {PROGRAM_NAME}")))?
        .try_into()
        .map_err(|e| bpf_error("unexpected program type", &e))?;
    program
        .load()
        .map_err(|e| bpf_error("the kernel rejected the BPF program", &e))?;
    let program_fd = program
        .fd()
        .map_err(|e| bpf_error("program not loaded", &e))?;
    let mut links = Vec::with_capacity(selected.len());
    for (index, site) in selected.iter().enumerate() {
        let fail = |error: io::Error| match error.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => match privileges::needed_for_perf_events() {
                Ok(why) => TraceError::Privileges(format!(
                    "the kernel refused a uprobe on {} ({error}): {why}",
                    site.attach_path.display()
                )),
                Err(e) => e,
            },
            _ => classify_attach_error(error, pid, site),
        };
        let event = pmu
            .open(
                &site.attach_path,
                site.probe.file_offset,
                ref_ctr(site),
                pid,
                site.ret,
            )
            .map_err(fail)?;
        links
            .push(uprobe::link_perf_event(program_fd.as_fd(), &event, index as u64).map_err(fail)?);
        // `event` closes here; the link keeps the perf event alive.
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

fn classify_attach_error(source: io::Error, pid: Option<u32>, site: &SelectedSite) -> TraceError {
    match (source.raw_os_error(), pid) {
        (Some(libc::ESRCH), Some(pid)) => TraceError::Process {
            pid,
            reason: "exited while the tracer was attaching".into(),
        },
        (Some(libc::EACCES | libc::EPERM), _) => TraceError::Privileges(format!(
            "the kernel refused a uprobe on {} ({source}): {}",
            site.attach_path.display(),
            privileges::needed()
        )),
        _ => TraceError::Attach {
            path: site.display_path.clone(),
            provider: site.probe.provider.clone(),
            name: site.probe.name.clone(),
            offset: site.probe.file_offset,
            source,
        },
    }
}

/// Decodes one ring buffer record; `None` for a record too short or of an
/// unknown site (which the BPF program never writes).
fn decode_record(bytes: &[u8], sites: &[SiteState], probes: &[Arc<ProbeInfo>]) -> Option<Event> {
    if bytes.len() < EVENT_FIXED_SIZE {
        return None;
    }
    // A short record (a site without strings) carries the fixed part and
    // its arguments; the rest of the header stays zero.
    let mut header = EventHeader::default();
    let size = bytes.len().min(EVENT_HEADER_SIZE);
    // SAFETY: copies `size` bytes, no more than either side holds, into a
    // plain-old-data struct valid for any bit pattern.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (&mut header as *mut EventHeader).cast::<u8>(),
            size,
        )
    };
    let site = sites.get(header.site as usize)?;
    let strings = bytes.get(EVENT_HEADER_SIZE..).unwrap_or(&[]);
    let strings = &strings[..(header.string_bytes as usize).min(strings.len())];
    Some(Event {
        probe: probes[site.probe].clone(),
        address: site.address,
        pid: header.pid,
        tid: header.tid,
        cpu: header.cpu,
        timestamp_ns: header.timestamp_ns,
        args: plan::decode(&header, strings, &site.decoding),
        arg_names: site.decoding.names.clone(),
    })
}

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, TraceError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| TraceError::Bpf(format!("the BPF object has no map {name}")))?;
    T::try_from(map).map_err(|e| bpf_error(name, &e))
}

/// A one-line BPF error with the error's whole source chain.
fn bpf_error(context: &str, error: &dyn std::error::Error) -> TraceError {
    let mut message = format!("{context}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    TraceError::Bpf(message.replace('\n', " "))
}

/// Waits until `fd` is readable or `timeout` passes.
pub(crate) fn wait_readable(fd: i32, timeout: Duration) -> Result<(), TraceError> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe {
        libc::poll(
            &mut pollfd,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if r < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(TraceError::Io {
                context: "poll".into(),
                source: error,
            });
        }
    }
    Ok(())
}
