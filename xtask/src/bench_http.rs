//! `cargo xtask bench-http [SECONDS] [--rounds N]`: what tracing costs the example
//! server under load.
//!
//! Builds `http_server` and `usdt` (release), starts the server on loopback
//! (a thread per connection), and loads it with wrk (2 threads, 8 keep-alive
//! connections, `GET /hello/bench`) for SECONDS (10) per run, after a
//! warm-up, in N (3) rounds. Each traced configuration is paired with
//! an untraced run next to it (in alternating order), and the table shows
//! the median of those ratios: untraced against traced with
//! streaming (`usdt trace --pid PID 'http:*'`, every event of every probe
//! delivered to user space and printed to /dev/null); and traced with
//! in-kernel aggregation (responses counted by status, a histogram of their
//! sizes and the request latency paired by request id, nothing streamed).
//! A fourth configuration runs `usdt serve` exporting those three
//! aggregations while a client scrapes `/metrics` every second, and a fifth
//! runs bpftrace keeping the same three aggregations (the peer, one program
//! per probe). Prints requests per second and the ratios to the untraced
//! runs, with the events and drops the streaming trace reported, and the
//! server's own CPU time per request (its `utime` and `stime`), untraced
//! and what tracing adds to it. Then the cost of a scrape of
//! 10,000 series: `usdt serve` counting requests by request id (a series
//! each) under load, then 20 scrapes timed, each with what `usdt serve`'s
//! main thread spent on a CPU and waiting for one meanwhile (its
//! schedstat), the first, median and slowest shown. `--rounds 0` measures
//! only the scrapes. Needs root.

use crate::deps;
use crate::http::{self, Server};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The aggregating trace's options and probe: responses counted by status,
/// a histogram of their sizes, the latency paired by request id.
pub(crate) const AGGREGATIONS: &[&str] = &[
    "--hits",
    "--by",
    "status",
    "--hist",
    "bytes",
    "--latency",
    "http:request_start",
    "http:request_done",
    "--key",
    "request_id",
    "http:request_done",
];

/// wrk connections and threads.
const CONNECTIONS: usize = 8;
const WRK_THREADS: usize = 2;

/// Runs `cargo xtask bench-http [SECONDS] [--rounds N]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    const USAGE: &str = "usage: cargo xtask bench-http [SECONDS] [--rounds N]";
    let mut seconds: u32 = 10;
    let mut rounds: usize = 3;
    let mut rest = args.iter();
    let number = |n: &str, what: &str| {
        n.parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("bench-http: `{n}` is not a number of {what}"))
    };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--rounds" => {
                // 0: only the cost of a scrape.
                let n = rest.next().ok_or(USAGE)?;
                rounds = n
                    .parse()
                    .map_err(|_| format!("bench-http: `{n}` is not a number of rounds"))?;
            }
            n if !n.starts_with('-') => seconds = number(n, "seconds")?,
            _ => return Err(USAGE.into()),
        }
    }
    http::require_root("bench-http")?;
    deps::apt_install(deps::BENCH_HTTP_PACKAGES)?;
    let binaries = http::build()?;
    let server = Server::start(&binaries.server)?;
    let pid = server.pid().to_string();
    let url = format!("http://{}/hello/bench", server.address);

    eprintln!("xtask: warming up for 2 s");
    wrk(&url, 2)?;
    let streaming: Vec<&str> = vec!["trace", "--pid", &pid, "http:*"];
    let mut aggregating: Vec<&str> = vec!["trace", "--pid", &pid];
    aggregating.extend_from_slice(AGGREGATIONS);
    let dir = std::env::temp_dir().join(format!("usdt-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("export.toml");
    std::fs::write(&config, serve_config(&binaries.server, None))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let listen = http::free_address()?;
    let config_arg = config.display().to_string();
    let serving: Vec<&str> = vec!["serve", "--config", &config_arg, "--listen", &listen];
    let script = bpftrace_script(&binaries.server);
    let traced: [(&str, Tool); 4] = [
        ("traced, streaming every event", Tool::Usdt(&streaming)),
        (
            "traced, aggregating in the kernel",
            Tool::Usdt(&aggregating),
        ),
        (
            "usdt serve, the same aggregations, scraped every second",
            Tool::Usdt(&serving),
        ),
        (
            "bpftrace, the same aggregations",
            Tool::Bpftrace(&pid, &script),
        ),
    ];
    // Each traced run is paired with an untraced run next to it, in
    // alternating order: the ratio of a pair cancels what the machine was
    // doing then (the same 2 cores run wrk, the server and the tracer).
    let mut untraced = Vec::new();
    let mut untraced_cpu = Vec::new();
    let mut rows: Vec<Row> = traced.iter().map(|_| Row::default()).collect();
    for round in 0..rounds {
        for (k, (name, tool)) in traced.iter().enumerate() {
            let traced_first = (round + k) % 2 == 1;
            let mut pair = [None, None];
            for traced_now in [traced_first, !traced_first] {
                let tool = traced_now.then_some(tool);
                let shown = if traced_now { name } else { "untraced" };
                eprintln!(
                    "xtask: round {}/{rounds}: {shown}: {seconds} s of load",
                    round + 1
                );
                pair[usize::from(traced_now)] = Some(measure(
                    &binaries.usdt,
                    &url,
                    &listen,
                    server.pid(),
                    tool,
                    seconds,
                )?);
            }
            let [Some(base), Some(run)] = pair else {
                unreachable!("both runs of a pair are measured")
            };
            rows[k].ratios.push(run.rate / base.rate);
            rows[k].rates.push(run.rate);
            rows[k].cpu.push(run.server_cpu);
            rows[k].added.push(run.server_cpu - base.server_cpu);
            rows[k].last = Some(run);
            untraced.push(base.rate);
            untraced_cpu.push(base.server_cpu);
        }
    }

    // A scrape of 10,000 series: requests counted by request id.
    let series = 10_000;
    std::fs::write(&config, serve_config(&binaries.server, Some(series)))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    eprintln!("xtask: usdt serve with {series} series: 3 s of load, then 20 scrapes");
    let tracer = Tracer::start(&binaries.usdt, &serving)?;
    let loaded = wrk(&url, 3);
    let mut scrapes = Vec::new();
    let mut size = 0;
    let mut exposed = 0;
    for _ in 0..20 {
        let before = schedstat(tracer.pid())?;
        let start = Instant::now();
        let body = http::scrape(&listen)?;
        let wall = start.elapsed().as_secs_f64();
        let after = schedstat(tracer.pid())?;
        // The part usdt serve spent reading the maps, as it says itself.
        let read = body
            .lines()
            .find_map(|l| {
                l.strip_prefix("usdt_serve_scrape_read_seconds ")
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(f64::NAN);
        scrapes.push(Scrape {
            wall,
            read,
            cpu: after.0.saturating_sub(before.0) as f64 / 1e9,
            waiting: after.1.saturating_sub(before.1) as f64 / 1e9,
        });
        size = body.len();
        exposed = body
            .lines()
            .filter(|l| l.starts_with("http_requests_by_id_total{"))
            .count();
    }
    let summary = tracer.stop()?;
    loaded?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);

    if rounds > 0 {
        println!(
            "wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{seconds}s {}, a server thread per connection; \
             {rounds} rounds, each traced run paired with an untraced one next to it:\n",
            url.replace(&server_address(&url), "127.0.0.1:PORT")
        );
        println!(
            "| configuration | requests/s (median) | vs untraced (median of pairs) | pairs, lowest to highest | server CPU per request (median) | added by tracing (median of pairs) | mean latency (last) | tracer (last run) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        println!(
            "| untraced | {:.0} | 1.000 | | {:.2} µs | | | |",
            median(&mut untraced),
            median(&mut untraced_cpu)
        );
        for ((name, tool), row) in traced.iter().zip(&mut rows) {
            let shown = match tool {
                Tool::Usdt(args) => http::shown(args)
                    .replace(&pid, "PID")
                    .replace(&config_arg, "export.toml")
                    .replace(&listen, "127.0.0.1:PORT"),
                Tool::Bpftrace(..) => "bpftrace -p PID -e SCRIPT".to_owned(),
            };
            let rate = median(&mut row.rates);
            let ratio = median(&mut row.ratios);
            let pairs: Vec<String> = row.ratios.iter().map(|r| format!("{r:.3}")).collect();
            let last = row.last.as_ref().expect("at least one round");
            println!(
                "| {name} | {rate:.0} | {ratio:.3} | {} | {:.2} µs | {:.2} µs | {} | `{shown}`; {} |",
                pairs.join(", "),
                median(&mut row.cpu),
                median(&mut row.added),
                last.latency,
                last.summary.trim_start_matches("usdt: ")
            );
        }
        println!(
            "\nSCRIPT: `{}`",
            script.replace(&binaries.server.display().to_string(), "SERVER")
        );
        println!();
    }
    println!(
        "Scrapes of usdt serve exposing {exposed} series of requests by id ({size} bytes), 20 in a row \
         ({}); the main thread's CPU time and its wait for a CPU from its schedstat:\n",
        summary.trim_start_matches("usdt: ")
    );
    println!("| | first | median | slowest |");
    println!("| --- | --- | --- | --- |");
    for (name, mut values) in [
        ("scrape (client's wall time)", column(&scrapes, |s| s.wall)),
        (
            "reading the maps (serve's wall time)",
            column(&scrapes, |s| s.read),
        ),
        ("serve's main thread on a CPU", column(&scrapes, |s| s.cpu)),
        (
            "serve's main thread waiting for a CPU",
            column(&scrapes, |s| s.waiting),
        ),
    ] {
        let first = values[0];
        let middle = median(&mut values);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            first * 1e3,
            middle * 1e3,
            values[values.len() - 1] * 1e3
        );
    }
    let in_order: Vec<String> = scrapes
        .iter()
        .map(|s| format!("{:.1}", s.wall * 1e3))
        .collect();
    println!("\nin order (ms): {}", in_order.join(", "));
    Ok(())
}

/// One timed scrape, in seconds.
struct Scrape {
    /// From connecting to the end of the response, at the client.
    wall: f64,
    /// Reading the maps, as `usdt serve` reports it.
    read: f64,
    /// `usdt serve`'s main thread on a CPU meanwhile.
    cpu: f64,
    /// `usdt serve`'s main thread runnable but waiting for a CPU meanwhile.
    waiting: f64,
}

/// One measure of every scrape, in order.
fn column(scrapes: &[Scrape], measure: fn(&Scrape) -> f64) -> Vec<f64> {
    scrapes.iter().map(measure).collect()
}

/// The nanoseconds thread `pid` (a process's main thread) has run on a CPU
/// and waited for one (the first two fields of its schedstat).
fn schedstat(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/task/{pid}/schedstat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(on_cpu)), Some(Ok(waiting))) => Ok((on_cpu, waiting)),
        _ => Err(format!("{path}: unexpected {text:?}")),
    }
}

/// One traced configuration's runs.
#[derive(Default)]
struct Row {
    /// Traced requests per second over untraced, one per pair.
    ratios: Vec<f64>,
    /// Traced requests per second, one per run.
    rates: Vec<f64>,
    /// The server's CPU time per traced request, in µs, one per run.
    cpu: Vec<f64>,
    /// What tracing added to it, in µs: traced minus untraced, one per
    /// pair.
    added: Vec<f64>,
    /// The last run.
    last: Option<Run>,
}

/// One run under wrk.
struct Run {
    rate: f64,
    latency: String,
    /// The server's CPU time (user and system) per request, in µs.
    server_cpu: f64,
    /// What the tracer said when stopped (with the scrapes, for serve).
    summary: String,
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What traces the server in a configuration.
enum Tool<'a> {
    /// `usdt` with these arguments.
    Usdt(&'a [&'a str]),
    /// bpftrace attached to this pid, running this script.
    Bpftrace(&'a str, &'a str),
}

/// The bpftrace script keeping [`AGGREGATIONS`]' three aggregations on
/// the example `server`: responses counted by status (`request_done`'s
/// arg1), a histogram of their sizes (arg2) and the latency paired by
/// request id (arg0 of both probes), in microseconds.
fn bpftrace_script(server: &Path) -> String {
    let server = server.display();
    format!(
        "usdt:{server}:http:request_start {{ @start[arg0] = nsecs; }} \
         usdt:{server}:http:request_done {{ @status[arg1] = count(); @bytes = hist(arg2); \
         $start = @start[arg0]; if ($start != 0) {{ @latency_us = hist((nsecs - $start) / 1000); \
         delete(@start[arg0]); }} }}"
    )
}

/// Loads the server (`server_pid`) at `url` for `seconds` with wrk, traced
/// by `tool` unless `None`; `usdt serve` is scraped at `listen` every
/// second meanwhile, as Prometheus would.
fn measure(
    usdt: &Path,
    url: &str,
    listen: &str,
    server_pid: u32,
    tool: Option<&Tool>,
    seconds: u32,
) -> Result<Run, String> {
    let tracer = match tool {
        Some(Tool::Usdt(args)) => Some(Tracer::start(usdt, args)?),
        Some(Tool::Bpftrace(pid, script)) => Some(Tracer::bpftrace(pid, script)?),
        None => None,
    };
    let usdt_args = match tool {
        Some(Tool::Usdt(args)) => Some(*args),
        _ => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = (usdt_args.and_then(|a| a.first()) == Some(&"serve")).then(|| {
        let stop = Arc::clone(&stop);
        let listen = listen.to_owned();
        std::thread::spawn(move || {
            let mut scrapes = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if http::scrape(&listen).is_ok() {
                    scrapes += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        })
    });
    let cpu_before = cpu_ticks(server_pid)?;
    let result = wrk(url, seconds);
    let cpu_after = cpu_ticks(server_pid)?;
    stop.store(true, Ordering::SeqCst);
    let scrapes = scraper.map(|thread| thread.join().unwrap_or(0));
    let mut summary = match tracer {
        Some(tracer) => tracer.stop()?,
        None => String::new(),
    };
    if let Some(scrapes) = scrapes {
        summary = format!("{scrapes} scrapes; {summary}");
    }
    let (rate, latency) = result?;
    let requests = rate * f64::from(seconds);
    Ok(Run {
        rate,
        latency,
        server_cpu: (cpu_after - cpu_before) as f64 * 1e6 / USER_HZ / requests,
        summary,
    })
}

/// The CPU time process `pid` has used, user and system, in clock ticks
/// (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces: count from its `)`.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    match (fields.get(11), fields.get(12)) {
        (Some(utime), Some(stime)) => match (utime.parse::<u64>(), stime.parse::<u64>()) {
            (Ok(u), Ok(s)) => Ok(u + s),
            _ => Err(format!("{path}: unexpected {text:?}")),
        },
        _ => Err(format!("{path}: unexpected {text:?}")),
    }
}

/// Clock ticks per second, the unit of [`cpu_ticks`]: `USER_HZ`, 100 in
/// the `/proc` interface of every architecture the project runs on.
const USER_HZ: f64 = 100.0;

/// The configuration `usdt serve` runs with on the example `server`:
/// requests by status, a histogram of response sizes and the latency; or,
/// with `by_id`, requests counted by request id with up to that many
/// series.
fn serve_config(server: &Path, by_id: Option<usize>) -> String {
    let server = server.display();
    match by_id {
        Some(series) => format!(
            "map_entries = {}\n\n[[metric]]\nname = \"http_requests_by_id\"\nkind = \"count\"\n\
             probe = \"{server}:http:request_done\"\nby = [\"request_id\"]\nmax_series = {series}\n",
            series * 2
        ),
        None => format!(
            "[[metric]]\nname = \"http_requests\"\nkind = \"count\"\nprobe = \"{server}:http:request_done\"\n\
             by = [\"status\"]\n\n[[metric]]\nname = \"http_response_bytes\"\nkind = \"histogram\"\n\
             probe = \"{server}:http:request_done\"\nvalue = \"bytes\"\n\n[[metric]]\n\
             name = \"http_request_duration\"\nkind = \"latency\"\nstart = \"{server}:http:request_start\"\n\
             end = \"{server}:http:request_done\"\nkey = \"request_id\"\n"
        ),
    }
}

/// `127.0.0.1:PORT` of a URL.
fn server_address(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Runs wrk against `url` for `seconds`; returns requests per second and
/// the mean latency as wrk prints it.
fn wrk(url: &str, seconds: u32) -> Result<(f64, String), String> {
    let out = deps::output(&mut wrk_command(url, &format!("{seconds}s")))?;
    let rate = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{out}"))?;
    let latency = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Latency"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    if out.contains("Non-2xx") || out.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{out}"));
    }
    Ok((rate, latency))
}

/// The wrk command loading `url` for `duration` (`10s`, `5m`) with this
/// benchmark's threads and connections.
pub(crate) fn wrk_command(url: &str, duration: &str) -> Command {
    let mut command = Command::new("wrk");
    command.args([
        "-t",
        &WRK_THREADS.to_string(),
        "-c",
        &CONNECTIONS.to_string(),
        "-d",
        duration,
        url,
    ]);
    command
}

/// Reads lines from `reader` until one is `started`; false at the end of
/// its output.
fn read_until(reader: &mut impl BufRead, started: impl Fn(&str) -> bool) -> Result<bool, String> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(false);
        }
        if started(&line) {
            return Ok(true);
        }
    }
}

/// A tracer (`usdt trace`, `usdt serve` or bpftrace) running in the
/// background.
pub(crate) struct Tracer {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// bpftrace's standard output after it attached, read to its end (the
    /// maps it prints on exit).
    output: Option<std::thread::JoinHandle<String>>,
}

impl Tracer {
    /// Starts `usdt ARGS` (a trace, or serve) and waits until it has
    /// attached.
    fn start(usdt: &Path, args: &[&str]) -> Result<Tracer, String> {
        Tracer::start_with_output(usdt, args, Stdio::null())
    }

    /// Starts `usdt ARGS` with standard output `stdout` and waits until it
    /// has attached.
    pub(crate) fn start_with_output(
        usdt: &Path,
        args: &[&str],
        stdout: Stdio,
    ) -> Result<Tracer, String> {
        let mut child = Command::new(usdt)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", usdt.display()))?;
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let started =
            |line: &str| line.starts_with("usdt: tracing ") || line.starts_with("usdt: serving ");
        if !read_until(&mut stderr, started)? {
            let _ = child.wait();
            return Err(format!("`{}` did not start", http::shown(args)));
        }
        Ok(Tracer {
            child,
            stderr,
            output: None,
        })
    }

    /// Starts bpftrace running `script` on process `pid` and waits until
    /// it says it is attaching, then one second more for the uprobes.
    fn bpftrace(pid: &str, script: &str) -> Result<Tracer, String> {
        let mut child = Command::new("bpftrace")
            .args(["-p", pid, "-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run bpftrace: {e}"))?;
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        if !read_until(&mut stdout, |line| line.starts_with("Attaching "))? {
            let _ = child.wait();
            return Err("bpftrace did not start".into());
        }
        let output = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
            rest
        });
        std::thread::sleep(Duration::from_secs(1));
        Ok(Tracer {
            child,
            stderr,
            output: Some(output),
        })
    }

    /// The tracer's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tracer's standard output, if piped.
    pub(crate) fn take_stdout(&mut self) -> Box<dyn std::io::Read + Send> {
        match self.child.stdout.take() {
            Some(stdout) => Box::new(stdout),
            None => Box::new(std::io::empty()),
        }
    }

    /// Stops the trace with SIGINT and returns its summary line.
    pub(crate) fn stop(mut self) -> Result<String, String> {
        deps::run(Command::new("kill").args(["-INT", &self.child.id().to_string()]))?;
        let mut summary = String::new();
        let mut line = String::new();
        while self
            .stderr
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            > 0
        {
            if line.starts_with("usdt: ") && !line.starts_with("usdt: warning") {
                summary = line.trim_end().to_owned();
            }
            line.clear();
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the tracer failed ({status}): {summary}"));
        }
        if let Some(output) = self.output {
            // bpftrace prints its maps on exit: `@status[200]: 123`.
            let output = output.join().unwrap_or_default();
            let counted: u64 = output
                .lines()
                .filter(|l| l.starts_with("@status["))
                .filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
                .sum();
            summary = format!("bpftrace counted {counted} responses");
        }
        Ok(summary)
    }
}
