//! Trace USDT probes with BPF.
//!
//! [`Tracer::attach`] puts one generic BPF uprobe program on every probe
//! site a [`TraceConfig`] selects: sites of a file in every process that
//! runs it (including processes started later), or sites in every module of
//! one process. Semaphore-guarded probes are switched on through the
//! kernel's uprobe reference counter, so they fire in every traced process
//! and fall back to off when the tracer detaches.
//!
//! For each site, user space plans where each argument lives (a constant, a
//! register, memory at a register plus offset, or memory at a link-time
//! address) and stores the plan in a BPF map selected by the attach cookie,
//! as libbpf's USDT support does. The program reads the arguments, copies
//! strings known from the binary's typed metadata (or asked for), and streams
//! records through a ring buffer; records that do not fit are counted as
//! drops, never silently lost.
//!
//! ```no_run
//! use std::time::Duration;
//! use usdt_tracer::{TraceConfig, Tracer};
//!
//! # fn main() -> Result<(), usdt_tracer::TraceError> {
//! let config = TraceConfig::new().pid(1234).probe("http:request_*")?;
//! let mut tracer = Tracer::attach(&config)?;
//! tracer.poll(Duration::from_secs(1), |event| {
//!     println!("{}:{} {:?}", event.probe.provider, event.probe.name, event.args);
//!     true
//! })?;
//! println!("{} dropped", tracer.drops()?);
//! # Ok(())
//! # }
//! ```
//!
//! Instead of streaming, hits can be aggregated in the kernel
//! ([`Aggregation`]): counted per probe or per key (pid, tid, an integer or
//! string argument), bucketed into a log2 histogram of an argument, or
//! paired start to end by a key into a latency histogram. The counters live
//! in fixed-size BPF maps; [`Tracer::aggregates`] reads them into an
//! [`AggregateReport`], and updates that find a map full are counted in it.
//!
//! Besides USDT probes, a [`ProbeSpec`] can name a function's entry or
//! return in any ELF file (`uprobe:FILE:FUNCTION(TYPES)`,
//! `uretprobe:FILE:FUNCTION(TYPE)`, see [`FunctionProbe`]): its arguments
//! are read from the calling convention's registers and its return value
//! from the return register, with the same plans.
//!
//! Runs on every kernel from 5.10 on; what older kernels lack
//! ([`KernelFeatures`]) is done without or refused with a reason naming it.
//!
//! Needs CAP_BPF and CAP_PERFMON (or root), and CAP_SYS_PTRACE to trace a
//! process of another user, or one holding more capabilities. A program
//! that gets them from its file (file capabilities, setuid root) runs in
//! [`restricted`] mode: it traces only the invoking user's own processes.

#![deny(missing_docs)]

mod addresses;
mod aggregate;
mod attach;
mod batch;
mod cancel;
mod config;
mod decode;
mod error;
mod event;
mod features;
mod filter;
mod folded;
mod follow;
mod function;
pub mod launch;
mod plan;
mod prealloc;
mod privileges;
mod report;
pub mod restricted;
mod role;
mod select;
mod semaphore;
mod stack;
mod tracer;
mod value;

pub use aggregate::{
    Aggregation, DEFAULT_MAP_ENTRIES, KeySource, MAP_MEMORY_LIMIT, MAX_MAP_ENTRIES,
    check_map_entries, map_memory,
};
pub use config::{DEFAULT_RING_BYTES, TraceConfig};
pub use error::TraceError;
pub use event::{Event, ProbeInfo};
pub use features::{DISABLE_FEATURES_ENV, KernelFeatures};
pub use filter::Filter;
pub use folded::{folded_lines, write_flamegraph, write_folded};
pub use function::{FunctionArg, FunctionName, FunctionProbe, ValueType};
pub use privileges::retain_tracing_capabilities;
pub use report::{
    AggregateLosses, AggregateReport, AggregateResult, HistogramBucket, HitCount, Log2Histogram,
};
pub use select::{ProbeSpec, StringRequest};
pub use stack::StackFrame;
pub use tracer::{AggregationSites, POLL_SLICE, Tracer};
pub use value::Value;
