//! The tracer's setup (select, plan, load, attach, arm) and the running
//! [`Tracer`]: events delivered from the ring buffer, aggregations read
//! from the maps, detaching.

use crate::addresses::{self, SiteAddresses};
use crate::aggregate::KeySource;
use crate::aggregate::{Aggregation, KeyDecoder};
use crate::attach;
use crate::batch;
use crate::cancel::Cancel;
use crate::config::TraceConfig;
use crate::decode::{self, SiteState};
use crate::error::TraceError;
use crate::event::{Event, ProbeInfo};
use crate::features::KernelFeatures;
use crate::follow::{self, Follower};
use crate::plan::{self, Planned};
use crate::prealloc;
use crate::privileges;
use crate::report::{AggregateLosses, AggregateReport};
use crate::restricted;
use crate::role;
use crate::select::{self, SemaphoreMode};
use crate::semaphore::ManualSemaphore;
use crate::stack::{StackFrame, StackSymbolizer, written_addresses};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError, RingBuf};
use aya::{Ebpf, EbpfLoader};
use rustix::event::{PollFd, PollFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use usdt_aya::uprobe;
use usdt_tracer_common::{
    ACTION_COUNT, ACTION_HISTOGRAM, ACTION_LATENCY_END, ACTION_LATENCY_START, ACTION_STREAM,
    ACTIONS_GLOBAL, KEY_STRING, MAX_ARGS, STRING_CLASS_GLOBAL, action_bit, string_class,
};
use usdt_tracer_common::{
    AGG_ERR_FAULT, AGG_ERR_FULL, AGG_ERR_STARTS_FULL, AGG_ERR_UNMATCHED, AGG_ERRORS_MAP,
    AGGREGATES_MAP, AggKey, CONTROL_MAP, COOKIES_GLOBAL, Control, CounterKey, DROPS_MAP,
    EVENTS_MAP, OPTIONS_GLOBAL, SITE_IPS_MAP, SITE_OPTIONS_MAP, SITES_MAP, SLEEPABLE_GLOBAL,
    STACK_COUNTS_GLOBAL, STARTS_MAP, SiteIpKey, SiteOptions, SitePlan, StartKey,
    TEXT_AGGREGATES_MAP,
};
use usdt_tracer_common::{CountedStack, MAX_COUNTED_STACKS, NO_SITE, STACKS_MAP};

/// Why a command's libraries are not followed on kernels without BPF
/// cookies.
const NO_FOLLOW_WITHOUT_COOKIES: &str = "libraries loaded later are not followed: this kernel has no BPF cookies (Linux 5.15), which following a command's libraries needs (trace it with --pid once it runs)";

/// The BPF object built from `tracer-ebpf` (`cargo xtask build-ebpf`).
pub(crate) static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/usdt-tracer.bpf.o");

/// The longest a reader should wait before looking at the ring buffer
/// again: the BPF program wakes the reader only when much data is waiting
/// (a wake-up interrupts the traced thread's CPU), so events that trickle
/// in are found by polling at least this often.
pub const POLL_SLICE: Duration = Duration::from_millis(10);

/// The maps of the in-kernel aggregations and how to read them.
struct Aggregates {
    counters: BpfHashMap<MapData, CounterKey, u64>,
    text_counters: BpfHashMap<MapData, AggKey, u64>,
    starts: BpfHashMap<MapData, StartKey, u64>,
    errors: Array<MapData, u64>,
    /// The stacks hits are counted by, when an aggregation counts by stack
    /// (looked at by [`Tracer::aggregates`], which takes `&self`).
    stacks: Option<Mutex<CountedStacks>>,
    /// Per aggregation: its configuration and, per probe id it covers, how
    /// to show its keys.
    specs: Vec<(Aggregation, Vec<(u32, KeyDecoder)>)>,
}

/// The probes and sites one aggregation covers (see
/// [`Tracer::aggregation_sites`] and [`Tracer::dry_run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregationSites {
    /// The probes, as `provider:name`, sorted, each once.
    pub probes: Vec<String>,
    /// Distinct sites (a file offset in a file, entry or return).
    pub sites: usize,
}

/// Per aggregation of `count`, the probes and distinct sites `selection`
/// gives it.
fn sites_per_aggregation(selection: &role::Selection, count: usize) -> Vec<AggregationSites> {
    let mut probes = vec![std::collections::BTreeSet::new(); count];
    let mut sites = vec![std::collections::HashSet::new(); count];
    for (site, role) in selection.sites.iter().zip(&selection.roles) {
        let Some(index) = role.aggregation() else {
            continue;
        };
        let index = index as usize;
        probes[index].insert(format!("{}:{}", site.probe.provider, site.probe.name));
        sites[index].insert((site.attach_path.clone(), site.probe.file_offset, site.ret));
    }
    probes
        .into_iter()
        .zip(sites)
        .map(|(probes, sites)| AggregationSites {
            probes: probes.into_iter().collect(),
            sites: sites.len(),
        })
        .collect()
}

/// The plans of the sites `selection` holds for `config`; gives up when
/// `cancel` is set.
fn plan_selection(
    config: &TraceConfig,
    selection: &role::Selection,
    cancel: Cancel<'_>,
) -> Result<Planned, TraceError> {
    plan::plan_all(
        &selection.sites,
        &selection.roles,
        &config.strings,
        config.aggregations.len(),
        config.filter.as_ref(),
        config.stack,
        cancel,
    )
}

/// The stacks that hits are counted by, symbolized as they appear: the
/// process that hit them may be gone by the time the counts are read.
struct CountedStacks {
    map: BpfHashMap<MapData, u64, CountedStack>,
    symbolizer: StackSymbolizer,
    /// Each stack's frames by its hash.
    frames: HashMap<u64, Vec<StackFrame>>,
    /// When the map was last looked at.
    scanned: Instant,
}

/// How often the map of counted stacks is looked at for new ones.
const STACK_SCAN: Duration = Duration::from_millis(50);

impl CountedStacks {
    /// Symbolizes the stacks of the map not seen before.
    fn scan(&mut self) {
        self.scanned = Instant::now();
        let new: Vec<u64> = self
            .map
            .keys()
            .filter_map(Result::ok)
            .filter(|hash| !self.frames.contains_key(hash))
            .collect();
        for hash in new {
            let Ok(stack) = self.map.get(&hash, 0) else {
                continue;
            };
            let addresses = written_addresses(stack.area.bytes, &stack.area.ips);
            let frames = self.symbolizer.frames(stack.tgid, &addresses);
            self.frames.insert(hash, frames);
        }
    }
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
    /// Sites of that executable to find by address once it has been
    /// exec'd, on kernels without BPF cookies: (site index, link-time
    /// address), and the process the keys name.
    addresses_after_exec: (Vec<(u32, u64)>, u32),
    /// The traced process, if there is one.
    pid: Option<u32>,
    /// Per aggregation, its probes and sites.
    aggregation_sites: Vec<AggregationSites>,
    warnings: Vec<String>,
    /// CLOCK_MONOTONIC when the program was armed.
    armed_ns: u64,
    /// Symbolizes the stacks of events, when the trace has them.
    symbolizer: Option<StackSymbolizer>,
    /// Follows the libraries the process loads later, when it does.
    follow: Option<Follower>,
    ebpf: Ebpf,
}

impl Tracer {
    /// Selects the sites `config` names, plans them, loads the BPF program
    /// and attaches it to every site, then arms it so that every site
    /// starts reporting at one instant. On error nothing stays attached.
    pub fn attach(config: &TraceConfig) -> Result<Tracer, TraceError> {
        Tracer::attach_until(config, &AtomicBool::new(false))
    }

    /// Like [`Tracer::attach`], but gives up with
    /// [`TraceError::Cancelled`] as soon as `cancel` is set (by a signal
    /// handler, or another thread): the flag is looked at between the steps
    /// and every thousand sites or so within them, so attaching tens of
    /// thousands of sites stops within milliseconds. Whatever was attached
    /// is detached again, and the program never reports a hit.
    ///
    /// A traced process (`pid`) that exits while the tracer attaches makes
    /// paths under `/proc/PID` vanish and the kernel refuse its uprobes:
    /// whatever fails then is [`TraceError::ProcessExited`].
    pub fn attach_until(config: &TraceConfig, cancel: &AtomicBool) -> Result<Tracer, TraceError> {
        let cancel = Cancel::new(cancel);
        config.validate()?;
        // Restricted mode first: it drops the capabilities the checks below
        // must not count on. Then privileges: without them nothing else
        // matters.
        let restricted = restricted::enter()?;
        privileges::check()?;
        let target = if restricted {
            // A command started with `-c` too: nothing in the configuration
            // proves that the pid is that command.
            Some(restricted::check_config(config)?)
        } else {
            if let (Some(pid), None) = (config.pid, &config.executable) {
                privileges::check_process(pid)?;
            }
            None
        };
        Tracer::set_up(config, target, cancel).map_err(|error| match config.pid {
            Some(pid)
                if error.may_come_from_an_exit()
                    && matches!(
                        usdt_reader::Process::open(pid),
                        Err(usdt_reader::Error::NoSuchProcess { .. })
                    ) =>
            {
                TraceError::ProcessExited { pid }
            }
            _ => error,
        })
    }

    /// The attach once the configuration and privileges are checked;
    /// `target` is the process restricted mode checked, if any.
    fn set_up(
        config: &TraceConfig,
        target: Option<restricted::Target>,
        cancel: Cancel<'_>,
    ) -> Result<Tracer, TraceError> {
        cancel.check()?;
        // The files mapped before selecting: a library mapped since is
        // looked at again once the trace runs.
        let known = if config.follows() {
            Follower::known_at_start(config)?
        } else {
            Default::default()
        };
        let mut selection = role::select_all(config, cancel).map_err(|error| match error {
            // A probe of a library the command has yet to load: say why
            // it is not waited for.
            TraceError::NoMatch {
                pattern,
                scope,
                skipped,
            } if config.follow_refused() => TraceError::NoMatch {
                pattern,
                scope: format!("{scope}; {NO_FOLLOW_WITHOUT_COOKIES}"),
                skipped,
            },
            error => error,
        })?;
        select::check_string_requests(&config.strings, &selection.sites, config.follows())?;
        let semaphore_warnings = select::plan_semaphores(
            &mut selection.sites,
            config.pid,
            config.executable.as_deref(),
        )?;
        selection.warnings.extend(semaphore_warnings);
        let aggregation_sites = sites_per_aggregation(&selection, config.aggregations.len());
        let Planned {
            mut plans,
            mut options,
            probes,
            mut sites,
            keys,
            table,
        } = plan_selection(config, &selection, cancel)?;
        let mut distinct: Vec<(&Path, u64, bool)> = selection
            .sites
            .iter()
            .map(|s| (s.attach_path.as_path(), s.probe.file_offset, s.ret))
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        let site_count = distinct.len();
        uprobe::raise_fd_limit();
        uprobe::raise_memlock_limit();

        let features = KernelFeatures::get();
        if !features.ring_buffer {
            return Err(TraceError::KernelFeature {
                missing: "has no BPF ring buffers (Linux 5.8)".into(),
            });
        }
        // The dynamic linker's hook goes last, after the sites the
        // aggregations and site counts know.
        let hook = if config.follow_refused() {
            selection.warnings.push(NO_FOLLOW_WITHOUT_COOKIES.into());
            None
        } else if !config.follows() {
            None
        } else {
            let hook = follow::hook_site(config);
            let reason = match &hook {
                Ok(Some(_)) => None,
                Ok(None) => Some("the program is statically linked (no dynamic linker)".into()),
                Err(error) => Some(error.to_string()),
            };
            if let Some(reason) = reason {
                selection
                    .warnings
                    .push(format!("libraries loaded later are not followed: {reason}"));
            }
            hook.ok().flatten()
        };
        let hook_slot = plans.len() as u32;
        if let Some(hook) = hook {
            let (plan, decoding) =
                plan::plan_site(hook.arch, &hook.probe, u32::MAX, &[]).map_err(|error| {
                    TraceError::Unsupported {
                        path: hook.display_path.clone(),
                        provider: hook.probe.provider.clone(),
                        name: hook.probe.name.clone(),
                        address: hook.probe.address,
                        reason: error.0,
                    }
                })?;
            plans.push(plan);
            options.push(SiteOptions::default());
            sites.push(SiteState {
                probe: usize::MAX,
                address: hook.probe.address,
                decoding,
                stack_area: false,
                stack: false,
            });
            selection.sites.push(hook);
        }
        let following = plans.len() as u32 > hook_slot;
        let slots = if following {
            plans.len() as u32 + follow::SPARE_SLOTS
        } else {
            plans.len().max(1) as u32
        };
        // Without cookies, where each site is must be known now: a trace
        // that cannot be is refused before the verifier's work.
        let addresses = if features.cookies {
            SiteAddresses::default()
        } else {
            addresses::site_addresses(&selection.sites, config)?
        };
        let mut ebpf = load(config, &plans, &options, features, slots, following, cancel)?;
        let links = attach::attach_sites(&mut ebpf, &selection.sites, 0, config, features, cancel)?;
        store_addresses(&mut ebpf, &addresses.known)?;
        if let (false, Some(pid), None) = (features.sleepable, config.pid, &config.executable) {
            let files = selection.sites.iter().map(|s| s.attach_path.as_path());
            addresses::fault_in_files(pid, files);
        }
        if let Some(target) = &target {
            // The links name the process by its pid: it must still be the
            // one checked (dropping the links undoes them otherwise).
            target.still_running()?;
        }
        let ring: RingBuf<MapData> = take_map(&mut ebpf, EVENTS_MAP)?;
        let drops: Array<MapData, u64> = take_map(&mut ebpf, DROPS_MAP)?;
        let aggregates = if config.aggregations.is_empty() {
            None
        } else {
            Some(Aggregates {
                counters: take_map(&mut ebpf, AGGREGATES_MAP)?,
                text_counters: take_map(&mut ebpf, TEXT_AGGREGATES_MAP)?,
                starts: take_map(&mut ebpf, STARTS_MAP)?,
                errors: take_map(&mut ebpf, AGG_ERRORS_MAP)?,
                stacks: if counts_stacks(config) {
                    Some(Mutex::new(CountedStacks {
                        map: take_map(&mut ebpf, STACKS_MAP)?,
                        symbolizer: StackSymbolizer::new(),
                        frames: HashMap::new(),
                        scanned: Instant::now(),
                    }))
                } else {
                    None
                },
                specs: config.aggregations.iter().cloned().zip(keys).collect(),
            })
        };
        // The last look: once armed, the trace has begun.
        cancel.check()?;
        // No hit is reported before this instant: event times count from it.
        let armed_ns = monotonic_ns();
        let stops = following && config.stop_on_load;
        arm(
            &mut ebpf,
            config,
            if following { hook_slot } else { NO_SITE },
            stops,
        )?;
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
            addresses_after_exec: (addresses.after_exec, addresses.tgid),
            pid: config.pid,
            aggregation_sites,
            warnings: selection.warnings,
            armed_ns,
            symbolizer: config.stack.then(StackSymbolizer::new),
            follow: None,
            ebpf,
        };
        if following {
            let mut follower = Follower::new(
                config,
                known,
                table,
                (hook_slot, plans.len() as u32, slots),
                target,
                stops,
            );
            follower.know(&selection.sites);
            tracer.follow = Some(follower);
            // Libraries mapped since the files were listed, before the
            // hook was armed (a command has yet to start: nothing then).
            if config.executable.is_none() {
                tracer.follow_now();
            }
        }
        // Semaphores the kernel cannot raise: after the uprobes are in place,
        // so the first guarded hit is seen.
        for site in &selection.sites {
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

    /// When the trace began: the CLOCK_MONOTONIC time (the clock of
    /// [`Event::timestamp_ns`]), in nanoseconds, just before the program
    /// was armed. Every event is later: its time since the trace began is
    /// `event.timestamp_ns - tracer.armed_ns()`.
    pub fn armed_ns(&self) -> u64 {
        self.armed_ns
    }

    /// What attaching `config` would attach for each of its aggregations,
    /// found without loading or attaching anything (and without
    /// privileges, when the files are readable): the probes its patterns
    /// select and their sites, once the arguments each aggregation names
    /// are checked against the probes' types. Errors are those
    /// [`Tracer::attach`] would return for the same reasons.
    pub fn dry_run(config: &TraceConfig) -> Result<Vec<AggregationSites>, TraceError> {
        config.validate()?;
        let never = AtomicBool::new(false);
        let cancel = Cancel::new(&never);
        let selection = role::select_all(config, cancel)?;
        select::check_string_requests(&config.strings, &selection.sites, config.follows())?;
        plan_selection(config, &selection, cancel)?;
        Ok(sites_per_aggregation(&selection, config.aggregations.len()))
    }

    /// Per configured aggregation, in order: the probes and distinct sites
    /// attached for it.
    pub fn aggregation_sites(&self) -> &[AggregationSites] {
        &self.aggregation_sites
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
            aggregates.errors.get(&index, 0).map_err(|source| {
                map_error(
                    AGG_ERRORS_MAP,
                    "read the aggregation error counters",
                    source,
                )
            })
        };
        let losses = AggregateLosses {
            map_full: error(AGG_ERR_FULL)?,
            starts_full: error(AGG_ERR_STARTS_FULL)?,
            unmatched_ends: error(AGG_ERR_UNMATCHED)?,
            faults: error(AGG_ERR_FAULT)?,
        };
        // Batched: both are hash maps, which every kernel the tracer runs
        // on (5.10 and later) reads in batches.
        let read_error = |map: &str, source| TraceError::Io {
            context: format!("cannot read the map {map}"),
            source,
        };
        let pending_starts = batch::entries(&aggregates.starts)
            .map_err(|error| read_error(STARTS_MAP, error))?
            .len() as u64;
        let counters = batch::entries(&aggregates.counters)
            .map_err(|error| read_error(AGGREGATES_MAP, error))?;
        let text_counters = batch::entries(&aggregates.text_counters)
            .map_err(|error| read_error(TEXT_AGGREGATES_MAP, error))?;
        let entries = counters
            .into_iter()
            .map(|(key, count)| (AggKey::from(key), count))
            .chain(text_counters);
        let mut report = AggregateReport::from_entries(
            &aggregates.specs,
            &self.probes,
            entries,
            losses,
            pending_starts,
        );
        if let Some(stacks) = &aggregates.stacks {
            let mut stacks = stacks.lock().unwrap_or_else(PoisonError::into_inner);
            stacks.scan();
            report.attach_stacks(&stacks.frames);
        }
        Ok(report)
    }

    /// Events delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Events lost because the ring buffer was full.
    pub fn drops(&self) -> Result<u64, TraceError> {
        self.drops
            .get(&0, 0)
            .map_err(|source| map_error(DROPS_MAP, "read the drop counter", source))
    }

    /// The ring buffer's descriptor, readable when the BPF program asks for
    /// a wake-up. It does so only when much data waits, so poll it with a
    /// timeout of at most [`POLL_SLICE`] and call [`Tracer::drain`] either
    /// way.
    pub fn ring_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Delivers every event waiting in the ring buffer to `f`; returns how
    /// many. Stops early (leaving the rest waiting) when `f` returns `false`.
    pub fn drain(&mut self, mut f: impl FnMut(Event) -> bool) -> usize {
        if let Some(stacks) = self.aggregates.as_mut().and_then(|a| a.stacks.as_mut()) {
            let stacks = stacks.get_mut().unwrap_or_else(PoisonError::into_inner);
            if stacks.scanned.elapsed() >= STACK_SCAN {
                stacks.scan();
            }
        }
        let mut count = 0;
        let mut rescan = false;
        let hook = self.follow.as_ref().map(|follow| follow.hook);
        while let Some(item) = self.ring.next() {
            if hook.is_some() && decode::record_site(&item) == hook {
                rescan = true;
                continue;
            }
            let event = decode::decode_record(&item, &self.sites, &self.probes);
            drop(item);
            let Some(mut event) = event else { continue };
            if let (Some(stack), Some(symbolizer)) = (&mut event.stack, &mut self.symbolizer) {
                let addresses: Vec<u64> = stack.iter().map(|frame| frame.address).collect();
                *stack = symbolizer.frames(event.pid, &addresses);
            }
            count += 1;
            self.delivered += 1;
            if !f(event) {
                break;
            }
        }
        if rescan {
            self.follow_now();
        }
        count
    }

    /// Attaches the sites of libraries the process has mapped since the
    /// last look and detaches those of libraries it unmapped; then
    /// continues the process if the program stopped it.
    fn follow_now(&mut self) {
        let Some(follow) = self.follow.as_mut() else {
            return;
        };
        follow.hook_hit(&mut self.ebpf, &mut self.sites);
        if follow.table.infos.len() != self.probes.len() {
            self.probes = follow.table.infos.iter().cloned().map(Arc::new).collect();
        }
        if let Some(aggregates) = &mut self.aggregates {
            for ((_, shown), keys) in aggregates.specs.iter_mut().zip(&follow.table.keys) {
                let have = shown.len();
                shown.extend_from_slice(&keys[have..]);
            }
        }
    }

    /// What following libraries loaded later did since the last call, one
    /// line each: a library's sites attached (and how long that took), a
    /// library unmapped and its sites detached, a library that could not
    /// be followed and why. Empty when nothing is followed (see
    /// [`TraceConfig::follow`]).
    pub fn take_follow_notices(&mut self) -> Vec<String> {
        self.follow
            .as_mut()
            .map(Follower::take_notices)
            .unwrap_or_default()
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
            wait_readable(self.ring.as_fd(), (deadline - now).min(POLL_SLICE))?;
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
    /// before the process runs (`resume_with`). Nothing to do for most
    /// binaries on recent kernels; before 5.15 (no BPF cookies) it also
    /// tells the program where the executable's sites are, and before 6.0
    /// (no sleepable uprobes) maps its pages in (see [`KernelFeatures`]).
    /// In restricted mode `pid` must be the traced process.
    pub fn raise_after_exec(&mut self, pid: u32) -> Result<(), TraceError> {
        if restricted::enter()? && self.pid != Some(pid) {
            return Err(restricted::refusal(
                format!("process {pid}"),
                "it is not the traced process",
            ));
        }
        let sleepable = KernelFeatures::get().sleepable;
        if self.after_exec.is_empty() && self.addresses_after_exec.0.is_empty() && sleepable {
            return Ok(());
        }
        let Some(executable) = self.executable.clone() else {
            return Ok(());
        };
        let module = usdt_reader::Process::open(pid)?
            .modules_partial()?
            .found
            .into_iter()
            .find(|m| same_file(&m.host_path, &executable))
            .ok_or_else(|| TraceError::NotMapped {
                pid,
                path: executable.clone(),
            })?;
        let (sites, tgid) = std::mem::take(&mut self.addresses_after_exec);
        let keys: Vec<(SiteIpKey, u32)> = sites
            .into_iter()
            .map(|(index, vaddr)| {
                let ip = vaddr.wrapping_add(module.bias);
                (SiteIpKey { tgid, _pad: 0, ip }, index)
            })
            .collect();
        store_addresses(&mut self.ebpf, &keys)?;
        if !sleepable {
            addresses::fault_in_files(pid, std::iter::once(module.host_path.as_path()));
        }
        for vaddr in std::mem::take(&mut self.after_exec) {
            let semaphore = ManualSemaphore::raise(pid, vaddr.wrapping_add(module.bias))?;
            self.manual.push(semaphore);
        }
        Ok(())
    }

    /// Removes every uprobe and lowers the semaphores, but keeps the events
    /// already in the ring buffer for [`Tracer::drain`]. A process stopped
    /// at a library load ([`TraceConfig::stop_on_load`]) is continued when
    /// the hook's record is drained, or when the tracer is dropped.
    pub fn detach(&mut self) {
        if self.follow.as_ref().is_some_and(Follower::stops) {
            // No stop from here on: only those already sent have records
            // still to read.
            let _ = set_stops(&mut self.ebpf, false);
        }
        for semaphore in self.manual.drain(..) {
            semaphore.lower();
        }
        if let Some(follow) = &mut self.follow {
            follow.detach_all();
        }
        self.links.clear();
    }

    /// Continues the process once more if the ring buffer still holds a
    /// record of the hook, whose hit stopped it; the other records are
    /// dropped.
    fn continue_after_unread_stops(&mut self) {
        let Some(follow) = self.follow.as_mut().filter(|follow| follow.stops()) else {
            return;
        };
        let mut stopped = false;
        while let Some(item) = self.ring.next() {
            stopped |= decode::record_site(&item) == Some(follow.hook);
        }
        if stopped {
            follow.continue_process();
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // Links first, so no event arrives in half-released maps.
        self.detach();
        self.continue_after_unread_stops();
    }
}

/// Loads the BPF object with maps sized for `config`, set for the kernel's
/// `features`, and stores the site `plans` and `options` (indexed by
/// cookie); gives up when `cancel` is set. When `following`, sites of
/// libraries loaded later may come.
fn load(
    config: &TraceConfig,
    plans: &[SitePlan],
    options: &[SiteOptions],
    features: KernelFeatures,
    slots: u32,
    following: bool,
    cancel: Cancel<'_>,
) -> Result<Ebpf, TraceError> {
    // A site followed later may need any string class.
    let string_class = if following {
        string_class(MAX_ARGS)
    } else {
        plans
            .iter()
            .map(|plan| string_class(plan.string_count as usize))
            .max()
            .unwrap_or(0)
    };
    // The aggregation maps allocate their entries as keys appear, but
    // their buckets up front: one entry each when nothing uses them.
    let used = |yes: bool| if yes { config.map_entries } else { 1 };
    let latency = config
        .aggregations
        .iter()
        .any(|aggregation| matches!(aggregation, Aggregation::Latency { .. }));
    // Before 6.1 the hash maps are preallocated (see
    // `KernelFeatures::runtime_allocation`).
    let preallocated;
    let object = if features.runtime_allocation {
        BPF_OBJECT
    } else {
        preallocated = prealloc::preallocated(
            BPF_OBJECT,
            &[AGGREGATES_MAP, TEXT_AGGREGATES_MAP, STARTS_MAP, STACKS_MAP],
        )?;
        preallocated.bytes()
    };
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(SITES_MAP, slots)
        .map_max_entries(SITE_OPTIONS_MAP, slots)
        .map_max_entries(EVENTS_MAP, config.ring_bytes)
        .map_max_entries(AGGREGATES_MAP, used(!config.aggregations.is_empty()))
        .map_max_entries(
            TEXT_AGGREGATES_MAP,
            used(!config.aggregations.is_empty() && (following || keys_by_text(plans))),
        )
        .map_max_entries(STARTS_MAP, used(latency))
        .map_max_entries(
            STACKS_MAP,
            if counts_stacks(config) {
                config.map_entries.min(MAX_COUNTED_STACKS)
            } else {
                1
            },
        )
        .map_max_entries(SITE_IPS_MAP, if features.cookies { 1 } else { slots })
        .override_global(SLEEPABLE_GLOBAL, &u8::from(features.sleepable), true)
        .override_global(COOKIES_GLOBAL, &u8::from(features.cookies), true)
        .override_global(
            OPTIONS_GLOBAL,
            &u8::from(plan::has_options(config.filter.as_ref(), config.stack)),
            true,
        )
        .override_global(STACK_COUNTS_GLOBAL, &u8::from(counts_stacks(config)), true)
        .override_global(ACTIONS_GLOBAL, &actions(config), true)
        .override_global(STRING_CLASS_GLOBAL, &string_class, true)
        .load(object)
        .map_err(TraceError::Load)?;
    let mut map: Array<&mut MapData, SitePlan> = map_mut(&mut ebpf, SITES_MAP)?;
    for (index, plan) in plans.iter().enumerate() {
        cancel.check_at(index)?;
        map.set(index as u32, plan, 0)
            .map_err(|source| map_error(SITES_MAP, "store a site plan", source))?;
    }
    // Entries start zeroed: no filter, no stack. Only sites with options
    // are written.
    let mut map: Array<&mut MapData, SiteOptions> = map_mut(&mut ebpf, SITE_OPTIONS_MAP)?;
    for (index, site) in options.iter().enumerate() {
        cancel.check_at(index)?;
        if *site != SiteOptions::default() {
            map.set(index as u32, site, 0)
                .map_err(|source| map_error(SITE_OPTIONS_MAP, "store a site's options", source))?;
        }
    }
    Ok(ebpf)
}

/// The bits of the actions (`ACTION_*`) the sites of `config` may take,
/// sites of libraries followed later included: the program's other
/// actions need not be verified.
fn actions(config: &TraceConfig) -> u8 {
    let mut bits = if config.probes.is_empty() {
        0
    } else {
        action_bit(ACTION_STREAM)
    };
    for aggregation in &config.aggregations {
        bits |= match aggregation {
            Aggregation::Hits { .. } => action_bit(ACTION_COUNT),
            Aggregation::Histogram { .. } => action_bit(ACTION_HISTOGRAM),
            Aggregation::Latency { .. } => {
                action_bit(ACTION_LATENCY_START) | action_bit(ACTION_LATENCY_END)
            }
        };
    }
    bits
}

/// Whether a site counts hits by a string key (the counters of
/// `TEXT_AGGREGATES_MAP`).
fn keys_by_text(plans: &[SitePlan]) -> bool {
    plans
        .iter()
        .any(|plan| plan.action == ACTION_COUNT && plan.key == KEY_STRING)
}

/// Whether an aggregation of `config` counts hits by stack.
fn counts_stacks(config: &TraceConfig) -> bool {
    config.aggregations.iter().any(|aggregation| {
        matches!(
            aggregation,
            Aggregation::Hits {
                by: Some(KeySource::Stack),
                ..
            }
        )
    })
}

/// Stores sites' addresses (kernels without BPF cookies).
pub(crate) fn store_addresses(
    ebpf: &mut Ebpf,
    keys: &[(SiteIpKey, u32)],
) -> Result<(), TraceError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut map: BpfHashMap<&mut MapData, SiteIpKey, u32> = map_mut(ebpf, SITE_IPS_MAP)?;
    for (key, index) in keys {
        map.insert(key, index, 0)
            .map_err(|source| map_error(SITE_IPS_MAP, "store a site's address", source))?;
    }
    Ok(())
}

/// Arms the program: every site starts reporting at this instant, for the
/// traced process alone when there is one; each hit of `notify_site`
/// wakes the reader at once, and with `stops` stops the process.
fn arm(
    ebpf: &mut Ebpf,
    config: &TraceConfig,
    notify_site: u32,
    stops: bool,
) -> Result<(), TraceError> {
    let cpus = aya::util::nr_cpus().map_or(1, u32::from);
    // The program sees pids as the initial pid namespace numbers them;
    // elsewhere the kernel's pid filter alone applies (restricted mode
    // refuses to trace from there).
    let tgid = match config.pid {
        Some(pid) if restricted::initial_pid_namespace() => pid,
        _ => 0,
    };
    let settings = Control {
        armed: 1,
        wake_bytes: usdt_tracer_common::wake_bytes(config.ring_bytes, cpus),
        tgid,
        ip_offset: usdt_aya::regs::host_arch()
            .and_then(usdt_aya::regs::ip_offset)
            .map_or(0, u32::from),
        notify_site,
        stop_on_hook: u32::from(stops),
    };
    let mut control: Array<&mut MapData, Control> = map_mut(ebpf, CONTROL_MAP)?;
    control
        .set(0, &settings, 0)
        .map_err(|source| map_error(CONTROL_MAP, "arm the BPF program", source))
}

/// Switches the stops at the dynamic linker's hook on or off (the program
/// only reads the settings, so they are rewritten whole).
fn set_stops(ebpf: &mut Ebpf, stops: bool) -> Result<(), TraceError> {
    let mut control: Array<&mut MapData, Control> = map_mut(ebpf, CONTROL_MAP)?;
    let mut settings = control
        .get(&0, 0)
        .map_err(|source| map_error(CONTROL_MAP, "read the settings", source))?;
    settings.stop_on_hook = u32::from(stops);
    control
        .set(0, &settings, 0)
        .map_err(|source| map_error(CONTROL_MAP, "change the settings", source))
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of event timestamps
/// (`bpf_ktime_get_ns`).
fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Whether two paths name the same file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Map `name` of `ebpf`, borrowed, as a `T`.
pub(crate) fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, TraceError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .map_mut(name)
        .ok_or(TraceError::Missing { what: "map", name })?;
    T::try_from(map).map_err(|source| map_error(name, "open the map", source))
}

/// Map `name` taken out of `ebpf`, as a `T`.
fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, TraceError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(TraceError::Missing { what: "map", name })?;
    T::try_from(map).map_err(|source| map_error(name, "open the map", source))
}

pub(crate) fn map_error(map: &'static str, action: &'static str, source: MapError) -> TraceError {
    TraceError::Map {
        map,
        action,
        source,
    }
}

/// Waits until `fd` is readable or `timeout` passes (a signal ends the wait
/// early).
fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<(), TraceError> {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(errno) => Err(TraceError::Io {
            context: "cannot wait for events".into(),
            source: errno.into(),
        }),
    }
}
