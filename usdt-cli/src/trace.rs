//! `usdt trace`.

use crate::error::{CliError, warn};
use crate::events::{EventOutput, write_stack_lines, write_text_line};
use crate::report::{loss_warnings, print_report};
use crate::signals::{self, ProcessExit, Signals};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use usdt_tracer::launch::{StoppedCommand, Termination, describe_status, split_command};
use usdt_tracer::{
    AggregateReport, Aggregation, KeySource, POLL_SLICE, ProbeSpec, StringRequest, TraceConfig,
    TraceError, Tracer,
};

/// How long a command (`-c`) the trace outlived has to exit after SIGTERM
/// before it is sent SIGKILL.
const COMMAND_GRACE: Duration = Duration::from_secs(1);

/// Arguments of `usdt trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct TraceArgs {
    /// Trace only this process; probes given as `provider:name` are searched
    /// in every module it maps, and in the libraries it loads later.
    #[arg(short = 'p', long, value_name = "PID", conflicts_with = "command")]
    pid: Option<u32>,
    /// Run CMD and trace it from its first instruction; stop when it exits.
    /// Probes given as `provider:name` are searched in its executable, and
    /// in the libraries it loads: CMD is stopped at each library load until
    /// their sites are attached, so none of their hits is missed.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<String>,
    /// With --pid or -c: do not follow the libraries the process loads
    /// later. Following (the default) searches each library the process
    /// maps (dlopen) for the `provider:name` probes, attaches their sites
    /// and detaches them when it is unmapped (dlclose); a pattern that
    /// matches nothing yet is then a warning, not an error. A command (-c)
    /// waits stopped while a library's sites are attached; a --pid process
    /// runs on, and its hits in the few milliseconds after the library is
    /// mapped are not seen. Processes the traced one forks are not traced.
    #[arg(long)]
    no_follow: bool,
    /// Print one JSON object per event per line.
    #[arg(long)]
    pub json: bool,
    /// Stop after N events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after SECS seconds (fractions allowed).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Read arguments as NUL-terminated strings: `N[,N...]` for every probe,
    /// or `provider:name:N[,N...]` (globs allowed); N counts from 0. Probes
    /// with typed metadata decode their strings without it.
    #[arg(short = 's', long = "str", value_name = "[PROBE:]N,...")]
    strings: Vec<String>,
    /// Keep only the hits for which EXPR holds, decided in the kernel
    /// before a hit is printed or aggregated: `argN` or declared argument
    /// names, `pid`, `tid`, integers (decimal, `0x` hex, negative), strings
    /// (`==`, `!=`, `=~ "prefix*"`), `== != < <= > >=`, `&&`, `||`, `!`,
    /// parentheses. Every traced probe must have the names it uses.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Print the user stack of each hit under its event (JSON: `"stack"`,
    /// innermost frame first). Callers show only in code built with frame
    /// pointers.
    #[arg(long)]
    stack: bool,
    /// Size of the event ring buffer in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    buffer_mib: u32,
    /// Count the PROBEs' hits in the kernel instead of printing each one;
    /// the counts print at the end (or every --interval).
    #[arg(long, help_heading = "Aggregating in the kernel")]
    hits: bool,
    /// With --hits: count per KEY, one of `pid`, `tid`, `stack` (the user
    /// stack of each hit, symbolized; callers show only in code built with
    /// frame pointers) or an argument (its declared name, or `argN`
    /// counting from 0; strings too).
    #[arg(
        long,
        value_name = "KEY",
        requires = "hits",
        help_heading = "Aggregating in the kernel"
    )]
    by: Option<String>,
    /// With --by stack: write the counted stacks to FILE at the end, folded
    /// (`outermost;...;innermost COUNT` a line, as flamegraph.pl and
    /// inferno read them).
    #[arg(
        long,
        value_name = "FILE",
        requires = "by",
        help_heading = "Aggregating in the kernel"
    )]
    folded: Option<PathBuf>,
    /// With --by stack: draw the counted stacks as a flame graph, an SVG
    /// file at FILE, at the end.
    #[arg(
        long,
        value_name = "FILE",
        requires = "by",
        help_heading = "Aggregating in the kernel"
    )]
    flamegraph: Option<PathBuf>,
    /// A log2 histogram of the PROBEs' integer argument ARG (a declared name
    /// or `argN`), per probe, printed as bcc's print_log2_hist does.
    #[arg(long, value_name = "ARG", help_heading = "Aggregating in the kernel")]
    hist: Vec<String>,
    /// Latency from a hit of START to the next hit of END with the same
    /// --key in the same process, as a log2 histogram in microseconds.
    #[arg(
        long,
        num_args = 2,
        value_names = ["START", "END"],
        requires = "key",
        help_heading = "Aggregating in the kernel"
    )]
    latency: Option<Vec<String>>,
    /// With --latency: what pairs a start with its end: an integer argument
    /// (declared name or `argN`; `START_ARG,END_ARG` when they differ), `tid`
    /// or `pid`.
    #[arg(
        long,
        value_name = "KEY",
        requires = "latency",
        help_heading = "Aggregating in the kernel"
    )]
    key: Option<String>,
    /// Print the aggregations every SECS seconds (the counts of that
    /// interval), not only at the end.
    #[arg(long, value_name = "SECS", help_heading = "Aggregating in the kernel")]
    pub interval: Option<f64>,
    /// Entry limit of the aggregation maps (distinct keys and buckets, and
    /// pending latency starts); updates that find a map full are reported.
    /// The maps take kernel memory as keys appear (about 100 bytes a key,
    /// 200 for a string, 100 a pending start);
    /// at most as many entries as take 1 GiB when full.
    #[arg(
        long,
        value_name = "N",
        default_value_t = usdt_tracer::DEFAULT_MAP_ENTRIES,
        help_heading = "Aggregating in the kernel"
    )]
    pub map_entries: u32,
    /// Probes: `PATH:provider:name` (every process running PATH, including
    /// later ones), `usdt:PATH:provider:name`, or `provider:name` with
    /// `--pid`/`-c`; `*` and `?` globs in provider and name. Functions:
    /// `uprobe:FILE:FUNCTION(TYPES)` at entry, `uretprobe:FILE:FUNCTION(TYPE)`
    /// at return, TYPES such as `int, str, u64` or `name: str` (FILE a path,
    /// or a module name with --pid).
    #[arg(required_unless_present = "latency", value_name = "PROBE")]
    probes: Vec<String>,
}

impl TraceArgs {
    /// Whether any in-kernel aggregation is asked for.
    pub(crate) fn aggregating(&self) -> bool {
        self.hits || !self.hist.is_empty() || self.latency.is_some()
    }
}

/// Runs `usdt trace`; returns the exit status: 0, or with `-c` the
/// command's own status when it ended the trace by exiting (see
/// [`command_status`]).
pub(crate) fn run(args: TraceArgs) -> Result<u8, CliError> {
    let mut config = configure(&args)?;
    let duration = args
        .duration
        .map(|secs| seconds("--duration", secs))
        .transpose()?;
    let interval = args
        .interval
        .map(|secs| seconds("--interval", secs))
        .transpose()?;

    // Signals are caught from here on, so one arriving while attaching ends
    // the trace cleanly as soon as it starts.
    let signals =
        Signals::catch().map_err(|e| CliError::Failure(format!("cannot catch signals: {e}")))?;
    // The guard ends the command however this function returns; a dropped,
    // never-resumed command is killed, so an attach error leaves nothing
    // behind.
    let mut command = CommandGuard(match &args.command {
        Some(line) => {
            let argv = split_command(line)
                .map_err(|reason| CliError::Input(format!("-c {line:?}: {reason}")))?;
            let command = StoppedCommand::spawn(&argv)?;
            config.pid = Some(command.pid());
            config.executable = Some(command.program().to_path_buf());
            // usdt is its parent: it alone sees the stops that let no hit
            // of a library loaded later go untraced.
            config.stop_on_load = true;
            Some(command)
        }
        None => {
            config.pid = args.pid;
            None
        }
    });

    // A signal while attaching gives the attach up, and a process that
    // exits while it attaches ends the trace as if it had exited during
    // it: either way nothing was traced.
    let mut tracer = match Tracer::attach_until(&config, signals.flag()) {
        Ok(tracer) => tracer,
        Err(error @ (TraceError::Cancelled | TraceError::ProcessExited { .. })) => {
            let reason = match error {
                TraceError::ProcessExited { pid } => format!("process {pid} exited"),
                _ => format!("{} received", signals.received().unwrap_or("a signal")),
            };
            let summary = Summary {
                end_reason: Some(reason),
                ..Summary::new(&args)
            };
            eprintln!("{}", summary.line());
            return Ok(0);
        }
        Err(error) => {
            // The error names the first note or module left out; the
            // others are warnings, as when the trace goes on.
            if let TraceError::NoMatch { skipped, .. } = &error {
                for reason in skipped.iter().skip(1) {
                    warn(&format!("skipped: {reason}"));
                }
            }
            return Err(error.into());
        }
    };
    // Event times count from the arming: no event is earlier.
    let start_ns = tracer.armed_ns();
    let sites = tracer.attached_sites();
    let probes = tracer.probes().len();
    for warning in tracer.warnings() {
        warn(warning);
    }
    eprintln!(
        "usdt: tracing {probes} probe{} at {sites} site{}; Ctrl-C to stop",
        plural(probes),
        plural(sites)
    );
    // A signal while attaching (Ctrl-C reaches a command in the same
    // process group too) ends the trace before the command runs.
    if let (Some(command), None) = (&mut command.0, signals.received()) {
        let resumed = command.resume_with(|pid| tracer.raise_after_exec(pid));
        if signals.received().is_none() {
            resumed?;
        }
    }
    // A process gone before its exit could be watched ends the trace at
    // once, as if it had exited during it.
    let target = config.pid.map(|pid| (pid, ProcessExit::watch(pid).ok()));
    let mut end_reason: Option<String> = None;
    let mut target_exited = false;
    if let Some((pid, None)) = &target {
        end_reason = Some(format!("process {pid} exited"));
        target_exited = true;
    }

    let deadline = duration.and_then(|d| Instant::now().checked_add(d));
    let mut next_report = interval.and_then(|i| Instant::now().checked_add(i));
    let mut last_report = AggregateReport::default();
    let mut reports: u64 = 0;
    let mut out = EventOutput::new(io::stdout().lock());
    let mut stop = target_exited;
    while !stop {
        if let Some(signal) = signals.received() {
            end_reason = Some(format!("{signal} received"));
            break;
        }
        let mut timeout = POLL_SLICE;
        if let Some(deadline) = deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(next) = next_report {
            timeout = timeout.min(next.saturating_duration_since(Instant::now()));
        }
        let exit = target.as_ref().and_then(|(_, exit)| exit.as_ref());
        let woken = signals::wait(tracer.ring_fd(), exit, timeout);

        emit(&mut tracer, &args, start_ns, &mut out);
        for notice in tracer.take_follow_notices() {
            eprintln!("usdt: {notice}");
        }
        if out.error.is_some() || args.count.is_some_and(|n| out.accepted >= n) {
            stop = true;
        }
        if let Some(signal) = signals.received() {
            end_reason = Some(format!("{signal} received"));
            stop = true;
        }
        if woken.exited {
            if let Some((pid, _)) = &target {
                end_reason = Some(format!("process {pid} exited"));
            }
            target_exited = true;
            stop = true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop = true;
        }
        if let (Some(next), Some(interval), false) = (next_report, interval, stop)
            && Instant::now() >= next
            && out.error.is_none()
        {
            next_report = next.checked_add(interval);
            let report = tracer.aggregates()?;
            reports += 1;
            if let Err(e) = print_report(&mut out, &report.since(&last_report), &args, reports) {
                out.error = Some(e);
            }
            last_report = report;
        }
    }

    // Detach first, then deliver what the probes wrote before it.
    tracer.detach();
    if out.error.is_none() && args.count.is_none_or(|n| out.accepted < n) {
        emit(&mut tracer, &args, start_ns, &mut out);
    }
    out.flush_events();
    let report = if args.aggregating() {
        Some(tracer.aggregates()?)
    } else {
        None
    };
    if let Some(report) = &report
        && out.error.is_none()
    {
        let shown = if interval.is_some() {
            report.since(&last_report)
        } else {
            report.clone()
        };
        if let Err(e) = print_report(&mut out, &shown, &args, reports + 1) {
            out.error = Some(e);
        }
        out.flush_events();
    }
    let file_error = report
        .as_ref()
        .and_then(|report| write_stack_files(report, &args).err());
    let delivered = out.delivered();
    let write_error = out.error.take();
    drop(out);
    let drops = tracer.drops()?;
    drop(tracer);

    // A command the trace outlived is ended: SIGTERM, then SIGKILL.
    let command_end = match &mut command.0 {
        Some(command) if target_exited => command.wait().ok().map(|s| (s, Termination::Exited)),
        Some(command) => command.terminate(COMMAND_GRACE).ok(),
        None => None,
    };

    if let Some(report) = &report {
        for warning in loss_warnings(report, args.map_entries) {
            warn(&warning);
        }
    }
    let summary = Summary {
        lost: report.as_ref().map_or(0, |report| {
            report.losses.map_full + report.losses.starts_full + report.losses.faults
        }),
        delivered,
        drops,
        broken_pipe: write_error
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe),
        end_reason,
        command_end,
        ..Summary::new(&args)
    };
    eprintln!("{}", summary.line());
    let status = command_status(summary.command_end);
    match write_error {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(status),
        Some(e) => Err(CliError::Failure(format!("cannot write events: {e}"))),
        None => file_error.map_or(Ok(status), Err),
    }
}

/// Writes the files of stacks asked for (`--folded`, `--flamegraph`).
fn write_stack_files(report: &AggregateReport, args: &TraceArgs) -> Result<(), CliError> {
    let failed = |path: &Path, e: io::Error| {
        CliError::Failure(format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &args.folded {
        usdt_tracer::write_folded(report, path).map_err(|e| failed(path, e))?;
    }
    if let Some(path) = &args.flamegraph {
        let title = format!("{} hits by stack", args.probes.join(" "));
        usdt_tracer::write_flamegraph(report, path, &title).map_err(|e| failed(path, e))?;
    }
    Ok(())
}

/// The exit status of a trace that went well, as `time` and `timeout` give
/// their command's: the status of a command (`-c`) that exited by itself,
/// 128 + N for one a signal N killed, 0 for one usdt ended (the trace ended
/// first, as asked) and for a trace without a command.
fn command_status(command_end: Option<(i32, Termination)>) -> u8 {
    match command_end {
        Some((status, Termination::Exited)) if libc::WIFEXITED(status) => {
            libc::WEXITSTATUS(status) as u8
        }
        Some((status, Termination::Exited)) if libc::WIFSIGNALED(status) => {
            128u8.wrapping_add(libc::WTERMSIG(status) as u8)
        }
        _ => 0,
    }
}

/// What the last line on stderr says about a trace.
struct Summary {
    /// Hits aggregated in the kernel (rather than streamed).
    aggregating: bool,
    /// Hits the aggregations lost.
    lost: u64,
    /// Events the output took.
    delivered: u64,
    /// Events the ring buffer dropped.
    drops: u64,
    /// Whether the reader of the output went away.
    broken_pipe: bool,
    /// Why the trace ended, if not by itself (`--count`, `--duration`).
    end_reason: Option<String>,
    /// How the command (`-c`) ended, if it ran.
    command_end: Option<(i32, Termination)>,
}

impl Summary {
    /// The summary of a trace that delivered nothing.
    fn new(args: &TraceArgs) -> Summary {
        Summary {
            aggregating: args.aggregating(),
            lost: 0,
            delivered: 0,
            drops: 0,
            broken_pipe: false,
            end_reason: None,
            command_end: None,
        }
    }

    /// The line, `usdt: ...`.
    fn line(&self) -> String {
        let delivered = self.delivered;
        let mut line = if self.aggregating {
            let lost = self.lost;
            let mut line = if lost == 0 {
                "usdt: aggregated in the kernel, no hit lost".to_owned()
            } else {
                format!(
                    "usdt: aggregated in the kernel, {lost} hit{} lost",
                    plural(lost as usize)
                )
            };
            if self.broken_pipe {
                line.push_str(", output closed");
            }
            line
        } else if self.broken_pipe {
            format!(
                "usdt: output closed after {delivered} event{}, {} dropped",
                plural(delivered as usize),
                self.drops
            )
        } else {
            format!(
                "usdt: {delivered} event{}, {} dropped",
                plural(delivered as usize),
                self.drops
            )
        };
        if let Some(reason) = &self.end_reason {
            line.push_str(&format!(" ({reason})"));
        }
        if let Some((status, how)) = self.command_end {
            line.push_str(&format!("; command {}", describe_status(status)));
            match how {
                Termination::Exited => {}
                Termination::Terminated => line.push_str(" (usdt sent it SIGTERM)"),
                Termination::Killed => line.push_str(&format!(
                    " (usdt sent it SIGTERM, then SIGKILL {} s later)",
                    COMMAND_GRACE.as_secs()
                )),
            }
        }
        line
    }
}

/// The tracer configuration the options ask for (all but the target).
fn configure(args: &TraceArgs) -> Result<TraceConfig, CliError> {
    let mut config = TraceConfig::new();
    let specs = args
        .probes
        .iter()
        .map(|probe| probe.parse::<ProbeSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    if args.aggregating() {
        add_aggregations(args, specs, &mut config)?;
    } else {
        if args.interval.is_some() {
            return Err(CliError::Input(
                "--interval prints aggregations: add --hits, --hist or --latency".into(),
            ));
        }
        config.probes = specs;
    }
    for request in &args.strings {
        config.strings.push(request.parse::<StringRequest>()?);
    }
    config.filter = args.filter.as_deref().map(str::parse).transpose()?;
    if args.stack && args.aggregating() {
        return Err(CliError::Input(
            "--stack prints the stack of each streamed hit; to count stacks use --hits --by stack"
                .into(),
        ));
    }
    config.stack = args.stack;
    config.follow = !args.no_follow;
    if !args.buffer_mib.is_power_of_two() || args.buffer_mib > 1024 {
        return Err(CliError::Input(format!(
            "--buffer-mib {}: expected a power of two up to 1024",
            args.buffer_mib
        )));
    }
    config.ring_bytes = args.buffer_mib << 20;
    if args.count == Some(0) {
        return Err(CliError::Input("--count 0: expected at least 1".into()));
    }
    Ok(config)
}

/// The value of option `option`, a positive number of seconds no longer
/// than a `Duration` holds.
fn seconds(option: &str, secs: f64) -> Result<Duration, CliError> {
    let bad = || {
        CliError::Input(format!(
            "{option} {secs:?}: expected a positive number of seconds"
        ))
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| {
        CliError::Input(format!(
            "{option} {secs:?}: too long (at most {} seconds)",
            Duration::MAX.as_secs()
        ))
    })
}

/// Turns the probes and the aggregation options into aggregations.
fn add_aggregations(
    args: &TraceArgs,
    specs: Vec<ProbeSpec>,
    config: &mut TraceConfig,
) -> Result<(), CliError> {
    if args.count.is_some() {
        return Err(CliError::Input(
            "--count stops after N printed events; aggregations print no events (use --duration)"
                .into(),
        ));
    }
    if !args.hits && args.hist.is_empty() && !specs.is_empty() {
        return Err(CliError::Input(
            "PROBE arguments are aggregated by --hits or --hist; --latency names its own probes"
                .into(),
        ));
    }
    if (args.hits || !args.hist.is_empty()) && specs.is_empty() {
        return Err(CliError::Input(
            "--hits and --hist need PROBE arguments to aggregate".into(),
        ));
    }
    // Checked before anything is allocated; the error says what the maps
    // would cost.
    usdt_tracer::check_map_entries(args.map_entries).map_err(|error| match error {
        TraceError::MapEntries { entries, reason } => CliError::Input(format!(
            "--map-entries {entries}: the aggregation maps {reason}"
        )),
        other => other.into(),
    })?;
    config.map_entries = args.map_entries;
    if (args.folded.is_some() || args.flamegraph.is_some()) && args.by.as_deref() != Some("stack") {
        return Err(CliError::Input(
            "--folded and --flamegraph write the stacks that --hits --by stack counts".into(),
        ));
    }
    if args.hits {
        let by = args
            .by
            .as_deref()
            .map(str::parse::<KeySource>)
            .transpose()?;
        config.aggregations.push(Aggregation::Hits {
            probes: specs.clone(),
            by,
        });
    }
    for arg in &args.hist {
        let probes: Vec<&str> = specs.iter().map(ProbeSpec::as_str).collect();
        config
            .aggregations
            .push(Aggregation::histogram(&probes, arg)?);
    }
    if let (Some(pair), Some(key)) = (&args.latency, &args.key) {
        let [start, end] = pair.as_slice() else {
            return Err(CliError::Input("--latency takes START and END".into()));
        };
        config
            .aggregations
            .push(Aggregation::latency(start, end, key)?);
    }
    Ok(())
}

/// Writes every waiting event (up to `--count`).
fn emit(tracer: &mut Tracer, args: &TraceArgs, start_ns: u64, out: &mut EventOutput<'_>) {
    let mut line = String::with_capacity(256);
    tracer.drain(|event| {
        line.clear();
        if args.json {
            // Events hold strings and integers only: they always serialize.
            let json = serde_json::to_string(&event).expect("events always serialize");
            line.push_str(&json);
        } else {
            write_text_line(&mut line, &event, start_ns);
            write_stack_lines(&mut line, &event);
        }
        line.push('\n');
        if !out.write_event(line.as_bytes()) {
            return false;
        }
        args.count.is_none_or(|n| out.accepted < n)
    });
    out.flush_events();
}

/// `""` for one, `"s"` for other counts.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A started command (`-c`), ended (SIGTERM, then SIGKILL) when the trace
/// returns, even through an error; ending one that has exited only reaps
/// it.
struct CommandGuard(Option<StoppedCommand>);

impl Drop for CommandGuard {
    fn drop(&mut self) {
        if let Some(command) = &mut self.0 {
            let _ = command.terminate(COMMAND_GRACE);
        }
    }
}
