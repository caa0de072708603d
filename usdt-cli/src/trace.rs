//! `usdt trace`.

use crate::command::CliError;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use usdt_tracer::launch::{StoppedCommand, Termination, describe_status, split_command};
use usdt_tracer::{
    AggregateReport, Aggregation, KeySource, ProbeSpec, StringRequest, TraceConfig, TraceError,
    Tracer, write_json_line, write_text_line,
};

/// How often the loop looks at the ring buffer when nothing wakes it.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// How long a command (`-c`) the trace outlived has to exit after SIGTERM
/// before it is sent SIGKILL.
const COMMAND_GRACE: Duration = Duration::from_secs(1);

/// Arguments of `usdt trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Trace only this process; probes given as `provider:name` are searched
    /// in every module it maps.
    #[arg(short = 'p', long, value_name = "PID", conflicts_with = "command")]
    pid: Option<u32>,
    /// Run CMD and trace it from its first instruction; stop when it exits.
    /// Probes given as `provider:name` are searched in its executable.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    command: Option<String>,
    /// Print one JSON object per event per line.
    #[arg(long)]
    json: bool,
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
    /// Size of the event ring buffer in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    buffer_mib: u32,
    /// Count the PROBEs' hits in the kernel instead of printing each one;
    /// the counts print at the end (or every --interval).
    #[arg(long, help_heading = "Aggregating in the kernel")]
    hits: bool,
    /// With --hits: count per KEY, one of `pid`, `tid` or an argument (its
    /// declared name, or `argN` counting from 0; strings too).
    #[arg(
        long,
        value_name = "KEY",
        requires = "hits",
        help_heading = "Aggregating in the kernel"
    )]
    by: Option<String>,
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
    interval: Option<f64>,
    /// Entry limit of the aggregation maps (distinct keys and buckets, and
    /// pending latency starts); updates that find a map full are reported.
    #[arg(
        long,
        value_name = "N",
        default_value_t = usdt_tracer::DEFAULT_MAP_ENTRIES,
        help_heading = "Aggregating in the kernel"
    )]
    map_entries: u32,
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
    fn aggregating(&self) -> bool {
        self.hits || !self.hist.is_empty() || self.latency.is_some()
    }
}

/// Runs `usdt trace`.
pub fn run(args: TraceArgs) -> Result<(), CliError> {
    let mut config = TraceConfig::new();
    let mut specs = Vec::new();
    for probe in &args.probes {
        specs.push(probe.parse::<ProbeSpec>().map_err(trace_error)?);
    }
    if args.aggregating() {
        add_aggregations(&args, specs, &mut config)?;
    } else {
        if args.interval.is_some() {
            return Err(CliError::Input(
                "--interval prints aggregations: add --hits, --hist or --latency".into(),
            ));
        }
        config.probes = specs;
    }
    for request in &args.strings {
        config
            .strings
            .push(request.parse::<StringRequest>().map_err(trace_error)?);
    }
    if !args.buffer_mib.is_power_of_two() || args.buffer_mib > 1024 {
        return Err(CliError::Input(format!(
            "--buffer-mib {}: expected a power of two up to 1024",
            args.buffer_mib
        )));
    }
    config.ring_bytes = args.buffer_mib << 20;
    let duration = args
        .duration
        .map(|secs| seconds("--duration", secs))
        .transpose()?;
    if args.count == Some(0) {
        return Err(CliError::Input("--count 0: expected at least 1".into()));
    }
    let interval = args
        .interval
        .map(|secs| seconds("--interval", secs))
        .transpose()?;

    // Signals wait from here on, so one arriving while attaching ends the
    // trace cleanly as soon as it starts (the command unblocks them).
    let signals =
        SignalFd::new().map_err(|e| CliError::Failure(format!("cannot watch signals: {e}")))?;
    // The guard ends the command however this function returns.
    let mut command = CommandGuard(match &args.command {
        Some(line) => {
            let argv = split_command(line)
                .map_err(|reason| CliError::Input(format!("-c {line:?}: {reason}")))?;
            let command = StoppedCommand::spawn(&argv).map_err(trace_error)?;
            config.pid = Some(command.pid());
            config.executable = Some(command.program().to_path_buf());
            Some(command)
        }
        None => {
            config.pid = args.pid;
            None
        }
    });

    // A dropped, never-resumed command is killed, so an attach error leaves
    // nothing behind.
    let mut tracer = Tracer::attach(&config).map_err(trace_error)?;
    let start_ns = monotonic_ns();
    let sites = tracer.attached_sites();
    let probes = tracer.probes().len();
    for warning in tracer.warnings() {
        eprintln!("usdt: warning: {warning}");
    }
    eprintln!(
        "usdt: tracing {probes} probe{} at {sites} site{}; Ctrl-C to stop",
        plural(probes),
        plural(sites)
    );
    // A signal while attaching (Ctrl-C reaches a command in the same
    // process group too) ends the trace before the command runs.
    let signalled_early = signal_pending(&signals);
    if let (Some(command), false) = (&mut command.0, signalled_early) {
        let resumed = command.resume_with(|pid| tracer.raise_after_exec(pid));
        if !signal_pending(&signals) {
            resumed.map_err(trace_error)?;
        }
    }
    // A process gone before its exit could be watched ends the trace at
    // once, as if it had exited during it.
    let target = config.pid.map(|pid| (pid, PidFd::open(pid).ok()));
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
    if signal_pending(&signals) {
        end_reason = signals.read().map(|name| format!("{name} received"));
        stop = true;
    }
    while !stop {
        let mut timeout = POLL_SLICE;
        if let Some(deadline) = deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(next) = next_report {
            timeout = timeout.min(next.saturating_duration_since(Instant::now()));
        }
        let mut fds = vec![
            libc::pollfd {
                fd: tracer.ring_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Some((_, Some(pidfd))) = &target {
            fds.push(libc::pollfd {
                fd: pidfd.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        poll(&mut fds, timeout);
        let signalled = fds[1].revents != 0;
        let target_ended = fds.get(2).is_some_and(|fd| fd.revents != 0);

        emit(&mut tracer, &args, start_ns, &mut out);
        if out.error.is_some() || args.count.is_some_and(|n| out.accepted >= n) {
            stop = true;
        }
        if signalled {
            end_reason = signals.read().map(|name| format!("{name} received"));
            stop = true;
        }
        if target_ended {
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
            let report = tracer.aggregates().map_err(trace_error)?;
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
        Some(tracer.aggregates().map_err(trace_error)?)
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
    let delivered = out.delivered();
    let write_error = out.error.take();
    drop(out);
    let drops = tracer.drops().map_err(trace_error)?;
    drop(tracer);

    // A command the trace outlived is ended: SIGTERM, then SIGKILL.
    let command_end = match &mut command.0 {
        Some(command) if target_exited => command.wait().ok().map(|s| (s, Termination::Exited)),
        Some(command) => command.terminate(COMMAND_GRACE).ok(),
        None => None,
    };

    if let Some(report) = &report {
        for warning in loss_warnings(report, args.map_entries) {
            eprintln!("usdt: warning: {warning}");
        }
    }
    let broken_pipe = write_error
        .as_ref()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
    let mut summary = if let Some(report) = &report {
        let lost = report.losses.map_full + report.losses.starts_full + report.losses.faults;
        let mut summary = if lost == 0 {
            "usdt: aggregated in the kernel, no hit lost".to_owned()
        } else {
            format!(
                "usdt: aggregated in the kernel, {lost} hit{} lost",
                plural(lost as usize)
            )
        };
        if broken_pipe {
            summary.push_str(", output closed");
        }
        summary
    } else if broken_pipe {
        format!(
            "usdt: output closed after {delivered} event{}, {drops} dropped",
            plural(delivered as usize)
        )
    } else {
        format!(
            "usdt: {delivered} event{}, {drops} dropped",
            plural(delivered as usize)
        )
    };
    if let Some(reason) = end_reason {
        summary.push_str(&format!(" ({reason})"));
    }
    if let Some((status, how)) = command_end {
        summary.push_str(&format!("; command {}", describe_status(status)));
        match how {
            Termination::Exited => {}
            Termination::Terminated => summary.push_str(" (usdt sent it SIGTERM)"),
            Termination::Killed => summary.push_str(&format!(
                " (usdt sent it SIGTERM, then SIGKILL {} s later)",
                COMMAND_GRACE.as_secs()
            )),
        }
    }
    eprintln!("{summary}");
    match write_error {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Some(e) => Err(CliError::Failure(format!("cannot write events: {e}"))),
        None => Ok(()),
    }
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
    if args.map_entries == 0 {
        return Err(CliError::Input(
            "--map-entries 0: expected at least 1".into(),
        ));
    }
    config.map_entries = args.map_entries;
    if args.hits {
        let by = args
            .by
            .as_deref()
            .map(str::parse::<KeySource>)
            .transpose()
            .map_err(trace_error)?;
        config.aggregations.push(Aggregation::Hits {
            probes: specs.clone(),
            by,
        });
    }
    for arg in &args.hist {
        let probes: Vec<&str> = specs.iter().map(ProbeSpec::as_str).collect();
        config
            .aggregations
            .push(Aggregation::histogram(&probes, arg).map_err(trace_error)?);
    }
    if let (Some(pair), Some(key)) = (&args.latency, &args.key) {
        let [start, end] = pair.as_slice() else {
            return Err(CliError::Input("--latency takes START and END".into()));
        };
        config
            .aggregations
            .push(Aggregation::latency(start, end, key).map_err(trace_error)?);
    }
    Ok(())
}

/// Prints one report of the aggregations: text blocks, or JSON lines (with
/// `"report"`, the report's number, when printing every interval). Every
/// interval also states what it could not count: the map keeps the keys of
/// earlier intervals (clearing them would lose the hits that race with it),
/// so once it is full, hits of new keys go uncounted.
fn print_report(
    out: &mut impl Write,
    report: &AggregateReport,
    args: &TraceArgs,
    number: u64,
) -> io::Result<()> {
    let every_interval = args.interval.is_some();
    let losses = report.losses;
    if args.json {
        for line in report.json_lines() {
            match (every_interval, line.strip_suffix('}')) {
                (true, Some(open)) => writeln!(out, "{open},\"report\":{number}}}")?,
                _ => writeln!(out, "{line}")?,
            }
        }
        if every_interval {
            writeln!(
                out,
                "{{\"not_counted\":{{\"map_full\":{},\"starts_full\":{},\"faults\":{}}},\"report\":{number}}}",
                losses.map_full, losses.starts_full, losses.faults
            )?;
        }
    } else {
        if every_interval {
            writeln!(out, "--- {} ---", clock_time())?;
        }
        write!(out, "{}", report.render_text())?;
        if every_interval {
            let entries = args.map_entries;
            for (count, what) in [
                (
                    losses.map_full,
                    format!(
                        "the aggregation map is full at {entries} entries; raise --map-entries"
                    ),
                ),
                (
                    losses.starts_full,
                    format!("latency starts: the start map is full at {entries} entries"),
                ),
                (
                    losses.faults,
                    "the key or value argument could not be read".to_owned(),
                ),
            ] {
                if count > 0 {
                    writeln!(
                        out,
                        "not counted in this interval: {count} hit{} ({what})",
                        plural(count as usize)
                    )?;
                }
            }
            writeln!(out)?;
        }
    }
    out.flush()
}

/// Hits the aggregations could not count, as warnings.
fn loss_warnings(report: &AggregateReport, map_entries: u32) -> Vec<String> {
    let losses = report.losses;
    let mut warnings = Vec::new();
    if losses.map_full > 0 {
        warnings.push(format!(
            "the aggregation map was full ({map_entries} entries): {} hit{} not counted; raise --map-entries",
            losses.map_full,
            plural(losses.map_full as usize)
        ));
    }
    if losses.starts_full > 0 {
        warnings.push(format!(
            "the latency start map was full ({map_entries} entries): {} start{} not recorded; raise --map-entries",
            losses.starts_full,
            plural(losses.starts_full as usize)
        ));
    }
    if losses.unmatched_ends > 0 {
        warnings.push(format!(
            "{} latency end{} had no start (begun before the trace, or not recorded)",
            losses.unmatched_ends,
            plural(losses.unmatched_ends as usize)
        ));
    }
    if report.pending_starts > 0 {
        warnings.push(format!(
            "{} latency start{} had no end yet",
            report.pending_starts,
            plural(report.pending_starts as usize)
        ));
    }
    if losses.faults > 0 {
        warnings.push(format!(
            "{} hit{} skipped: the key or value argument could not be read",
            losses.faults,
            plural(losses.faults as usize)
        ));
    }
    warnings
}

/// The local time of day, `HH:MM:SS`, as bcc's tools head each interval.
fn clock_time() -> String {
    // SAFETY: time(NULL) and localtime_r write only into values we own.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Writes every waiting event (up to `--count`).
fn emit(tracer: &mut Tracer, args: &TraceArgs, start_ns: u64, out: &mut EventOutput<'_>) {
    let mut line = String::with_capacity(256);
    tracer.drain(|event| {
        line.clear();
        if args.json {
            write_json_line(&mut line, &event);
        } else {
            write_text_line(&mut line, &event, start_ns);
        }
        line.push('\n');
        if !out.write_event(line.as_bytes()) {
            return false;
        }
        args.count.is_none_or(|n| out.accepted < n)
    });
    out.flush_events();
}

/// Standard output, buffered, knowing how many event lines reached it (the
/// rest of the buffer is lost when the reader goes away). Every event is
/// one line, and while events stream nothing else is written, so the lines
/// the output took are the newlines it took.
struct EventOutput<'a> {
    buffer: io::BufWriter<LineCounter<io::StdoutLock<'a>>>,
    /// Event lines handed to the buffer.
    accepted: u64,
    /// The first write error.
    error: Option<io::Error>,
}

impl<'a> EventOutput<'a> {
    fn new(stdout: io::StdoutLock<'a>) -> EventOutput<'a> {
        EventOutput {
            buffer: io::BufWriter::with_capacity(
                1 << 16,
                LineCounter {
                    inner: stdout,
                    lines: 0,
                },
            ),
            accepted: 0,
            error: None,
        }
    }

    /// Writes one event line; `false` (and the error kept) if it failed.
    fn write_event(&mut self, line: &[u8]) -> bool {
        if let Err(e) = self.buffer.write_all(line) {
            self.error = Some(e);
            return false;
        }
        self.accepted += 1;
        true
    }

    /// Flushes the buffer, unless writing already failed.
    fn flush_events(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.buffer.flush()
        {
            self.error = Some(e);
        }
    }

    /// The event lines the output took.
    fn delivered(&self) -> u64 {
        self.buffer.get_ref().lines
    }
}

impl Write for EventOutput<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.buffer.flush()
    }
}

/// A writer counting the lines (newlines) its inner writer took.
struct LineCounter<W> {
    inner: W,
    lines: u64,
}

impl<W: Write> Write for LineCounter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.lines += bytes[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn trace_error(error: TraceError) -> CliError {
    if error.is_input() {
        CliError::Input(error.to_string())
    } else {
        CliError::Failure(error.to_string())
    }
}

fn plural(n: usize) -> &'static str {
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

/// Whether a watched signal has arrived (without taking it).
fn signal_pending(signals: &SignalFd) -> bool {
    let mut fds = [libc::pollfd {
        fd: signals.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    poll(&mut fds, Duration::ZERO);
    fds[0].revents != 0
}

fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    // SAFETY: `fds` is a valid array of pollfd for the call's duration.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timeout.as_millis() as libc::c_int,
        )
    };
}

/// CLOCK_MONOTONIC now, the clock of event timestamps.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// SIGINT, SIGTERM and SIGHUP, blocked and delivered through a descriptor
/// so the loop can stop cleanly.
struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    fn new() -> io::Result<SignalFd> {
        // SAFETY: sigset operations on a set we own; sigprocmask changes
        // this thread's mask (the program is single-threaded here).
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, signal);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor nothing else owns.
        Ok(SignalFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The name of the signal that arrived, if one did.
    fn read(&self) -> Option<&'static str> {
        // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads into the struct we own, at most its size.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n as usize != size {
            return None;
        }
        Some(match info.ssi_signo as i32 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "signal",
        })
    }
}

/// A pidfd: readable when the process exits.
struct PidFd(OwnedFd);

impl PidFd {
    fn open(pid: u32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the system call returned a new descriptor nothing else owns.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
}
