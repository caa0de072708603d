//! What to trace and how: [`TraceConfig`].

use crate::aggregate::{Aggregation, DEFAULT_MAP_ENTRIES};
use crate::error::TraceError;
use crate::features::KernelFeatures;
use crate::filter::Filter;
use crate::select::{ProbeSpec, StringRequest};
use std::path::PathBuf;

/// Default size of the event ring buffer.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

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
    /// [`Tracer::aggregates`](crate::Tracer::aggregates).
    pub aggregations: Vec<Aggregation>,
    /// Entry limit of the aggregation counter map (all aggregations share
    /// it) and of the map of pending latency starts, 1 to
    /// [`MAX_MAP_ENTRIES`](crate::MAX_MAP_ENTRIES). The maps take memory as
    /// keys appear (before Linux 6.1, all of it when the trace starts: see
    /// [`KernelFeatures::runtime_allocation`](crate::KernelFeatures::runtime_allocation)),
    /// up to [`map_memory`](crate::map_memory) when full. A full map is
    /// counted in [`AggregateLosses`](crate::AggregateLosses), never
    /// silently ignored.
    pub map_entries: u32,
    /// Hits to keep, decided in the kernel before a hit is streamed or
    /// aggregated (every probe and every aggregation); `None` keeps all.
    pub filter: Option<Filter>,
    /// Whether each streamed hit carries the user stack (see
    /// [`Event::stack`](crate::Event::stack)).
    pub stack: bool,
    /// With a process (`pid`), also search the libraries it maps after the
    /// trace started (`dlopen`) for the probes given without a path, and
    /// attach their sites as they appear (and detach them when the
    /// library is unmapped); then a pattern that matches nothing yet is
    /// not an error. On by default. Following happens while the tracer is
    /// drained ([`Tracer::drain`](crate::Tracer::drain),
    /// [`Tracer::poll`](crate::Tracer::poll)).
    pub follow: bool,
    /// While following a command the caller started and waits for as its
    /// parent (`executable` set, `usdt trace -c`): stop the process
    /// (SIGSTOP, sent by the BPF program) at each call of the dynamic
    /// linker's debugger hook, and continue it (SIGCONT) once the
    /// libraries it mapped are attached, so that no hit of a library
    /// loaded later is missed, its constructors' included. Each stop is
    /// continued once its record is read ([`Tracer::drain`](crate::Tracer::drain),
    /// before or after [`Tracer::detach`](crate::Tracer::detach), which
    /// ends the stops), or when the tracer is dropped with it unread. Its parent
    /// sees each stop (a `waitpid` with `WUNTRACED`, `SIGCHLD`), so a
    /// process some shell waits for should not be traced this way. Off by
    /// default; ignored without cookies (5.15), where a command's libraries
    /// are not followed.
    pub stop_on_load: bool,
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
            filter: None,
            stack: false,
            follow: true,
            stop_on_load: false,
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

    /// Whether libraries the traced process maps later are followed: a
    /// process is traced and [`TraceConfig::follow`] is set, and for a
    /// command the tracer starts, the kernel has BPF cookies (see
    /// [`TraceConfig::follow_refused`]).
    pub(crate) fn follows(&self) -> bool {
        self.follow && self.pid.is_some() && !self.follow_refused()
    }

    /// Whether following is asked for a command the tracer starts, on a
    /// kernel without BPF cookies (before 5.15), which following a
    /// command's libraries needs: it is then not done, and said so.
    pub(crate) fn follow_refused(&self) -> bool {
        self.follow && self.executable.is_some() && !KernelFeatures::get().cookies
    }

    /// Checks what the tracer cannot do with this configuration before
    /// anything else happens.
    pub(crate) fn validate(&self) -> Result<(), TraceError> {
        if self.probes.is_empty() && self.aggregations.is_empty() {
            return Err(TraceError::BadSpec {
                spec: String::new(),
                reason: "no probe given".into(),
            });
        }
        if self.stop_on_load && self.executable.is_none() {
            return Err(TraceError::BadSpec {
                spec: String::new(),
                reason: "stopping the process at each library load needs a command the tracer's user started (`executable`)".into(),
            });
        }
        crate::aggregate::check_map_entries(self.map_entries)
    }

    /// Adds a string request (see [`StringRequest`]).
    pub fn strings(mut self, request: &str) -> Result<TraceConfig, TraceError> {
        self.strings.push(request.parse()?);
        Ok(self)
    }
}
