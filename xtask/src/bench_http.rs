//! `cargo xtask bench-http [SECONDS]`: what tracing costs the example
//! server under load.
//!
//! Builds `http_server` and `usdt` (release), starts the server on loopback
//! (a thread per connection), and loads it with wrk (2 threads, 8 keep-alive
//! connections, `GET /hello/bench`) for SECONDS (10) in each of three
//! configurations, one run each after a warm-up: untraced; traced with
//! streaming (`usdt trace --pid PID 'http:*'`, every event of every probe
//! delivered to user space and printed to /dev/null); and traced with
//! in-kernel aggregation (responses counted by status, a histogram of their
//! sizes and the request latency paired by request id, nothing streamed).
//! Prints requests per second and the ratio to the untraced run, with the
//! events and drops the streaming trace reported. Needs root.

use crate::deps;
use crate::http::{self, Server};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

/// The aggregating trace's options and probe: responses counted by status,
/// a histogram of their sizes, the latency paired by request id.
pub const AGGREGATIONS: &[&str] = &[
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

/// Runs `cargo xtask bench-http [SECONDS]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let seconds: u32 = match args {
        [] => 10,
        [n] => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("bench-http: `{n}` is not a number of seconds"))?,
        _ => return Err("usage: cargo xtask bench-http [SECONDS]".into()),
    };
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
    let configurations: [(&str, Option<&[&str]>); 3] = [
        ("untraced", None),
        ("traced, streaming every event", Some(&streaming)),
        ("traced, aggregating in the kernel", Some(&aggregating)),
    ];
    let mut rows = Vec::new();
    for (name, usdt_args) in configurations {
        eprintln!("xtask: {name}: {seconds} s of load");
        let tracer = match usdt_args {
            Some(args) => Some(Tracer::start(&binaries.usdt, args)?),
            None => None,
        };
        let result = wrk(&url, seconds);
        let summary = match tracer {
            Some(tracer) => tracer.stop()?,
            None => String::new(),
        };
        let (rate, latency) = result?;
        rows.push((name, usdt_args, rate, latency, summary));
    }
    drop(server);

    let base = rows[0].2;
    println!(
        "wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{seconds}s {}, a server thread per connection, one run each:\n",
        url.replace(&server_address(&url), "127.0.0.1:PORT")
    );
    println!("| configuration | requests/s | vs untraced | mean latency | tracer |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, args, rate, latency, summary) in &rows {
        let command = args.map_or(String::new(), |a| {
            format!("`{}`; ", http::shown(a).replace(&pid, "PID"))
        });
        println!(
            "| {name} | {rate:.0} | {:.3} | {latency} | {command}{} |",
            rate / base,
            summary.trim_start_matches("usdt: ")
        );
    }
    Ok(())
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
pub fn wrk_command(url: &str, duration: &str) -> Command {
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

/// A `usdt trace` running in the background.
pub struct Tracer {
    child: Child,
    stderr: BufReader<ChildStderr>,
}

impl Tracer {
    /// Starts `usdt ARGS`, its events to /dev/null, and waits until it has
    /// attached.
    fn start(usdt: &Path, args: &[&str]) -> Result<Tracer, String> {
        Tracer::start_with_output(usdt, args, Stdio::null())
    }

    /// Starts `usdt ARGS` with standard output `stdout` and waits until it
    /// has attached.
    pub fn start_with_output(usdt: &Path, args: &[&str], stdout: Stdio) -> Result<Tracer, String> {
        let mut child = Command::new(usdt)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", usdt.display()))?;
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                let _ = child.wait();
                return Err(format!("`{}` did not start", http::shown(args)));
            }
            if line.starts_with("usdt: tracing ") {
                return Ok(Tracer { child, stderr });
            }
        }
    }

    /// The tracer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tracer's standard output, if piped.
    pub fn take_stdout(&mut self) -> Box<dyn std::io::Read + Send> {
        match self.child.stdout.take() {
            Some(stdout) => Box::new(stdout),
            None => Box::new(std::io::empty()),
        }
    }

    /// Stops the trace with SIGINT and returns its summary line.
    pub fn stop(mut self) -> Result<String, String> {
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
            return Err(format!("usdt trace failed ({status}): {summary}"));
        }
        Ok(summary)
    }
}
