//! `cargo xtask soak [--minutes N]`: a long trace of the example server
//! under load, watched for leaks.
//!
//! Builds `http_server` and `usdt` (release), starts the server on loopback
//! and, for each of two traces in turn, loads it with wrk for N minutes
//! (10; 2 threads, 8 keep-alive connections, `GET /hello/bench`) while
//! `usdt trace --pid PID` runs: streaming every event of `http:*` (its
//! output read and counted here), then aggregating in the kernel (hits by
//! status, a histogram of sizes and the latency by request id, reported
//! every 10 s with `--json --interval 10`). Every 10 s it samples the
//! tracer's resident memory and open descriptors, the events (or hits) so
//! far, the machine's load and the server's semaphores (the highest of
//! them); after each trace, the drops or lost hits its summary reports
//! (both only grow, so 0 at the end means 0 at every sample) and the
//! semaphores once it has exited. Prints one table per trace. Needs root.

use crate::bench_http::{AGGREGATIONS, Tracer, wrk_command};
use crate::deps;
use crate::http::{self, Server};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the tracer is sampled.
const SAMPLE: Duration = Duration::from_secs(10);

/// Runs `cargo xtask soak [--minutes N]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let minutes: u32 = match args {
        [] => 10,
        [flag, n] if flag == "--minutes" => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("soak: `{n}` is not a number of minutes"))?,
        _ => return Err("usage: cargo xtask soak [--minutes N]".into()),
    };
    http::require_root("soak")?;
    deps::apt_install(deps::SOAK_PACKAGES)?;
    let binaries = http::build()?;
    let server = Server::start(&binaries.server)?;
    let pid = server.pid();
    let pid_text = pid.to_string();
    let url = format!("http://{}/hello/bench", server.address);
    let semaphores = semaphores(&binaries.usdt, &pid_text)?;

    let streaming: Vec<&str> = vec!["trace", "--pid", &pid_text, "http:*"];
    let mut aggregating: Vec<&str> =
        vec!["trace", "--pid", &pid_text, "--json", "--interval", "10"];
    aggregating.extend_from_slice(AGGREGATIONS);
    println!(
        "`cargo xtask soak --minutes {minutes}`: wrk -t2 -c8 -d{minutes}m {} against the example server (pid PID), traced by usdt; load average before: {}\n",
        url.replace(&server.address, "127.0.0.1:PORT"),
        load_average()
    );
    for (name, usdt_args, counted) in [
        ("streaming every event", &streaming, Count::Lines),
        ("aggregating in the kernel", &aggregating, Count::Hits),
    ] {
        eprintln!("xtask: {name}: {minutes} min of load");
        let mut tracer = Tracer::start_with_output(&binaries.usdt, usdt_args, Stdio::piped())?;
        let events = Arc::new(AtomicU64::new(0));
        let output = tracer.take_stdout();
        let counter = {
            let events = Arc::clone(&events);
            std::thread::spawn(move || counted.read(output, &events))
        };
        let mut wrk = wrk_command(&url, &format!("{minutes}m"))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        let start = Instant::now();
        let mut rows = Vec::new();
        let mut next = start + SAMPLE;
        loop {
            let done = wrk.try_wait().map_err(|e| e.to_string())?.is_some();
            // The last sample when the load ends, unless one was just taken.
            let fresh = next - Instant::now() > SAMPLE - Duration::from_secs(1);
            if (done && !fresh) || Instant::now() >= next {
                rows.push(Sample::take(start, tracer.pid(), &events, pid, &semaphores));
                next += SAMPLE;
            }
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let summary = tracer.stop()?;
        let _ = counter.join();
        let after = highest_semaphore(pid, &semaphores);
        println!(
            "{name}: `{}`\n",
            http::shown(usdt_args).replace(&pid_text, "PID")
        );
        println!(
            "| time | tracer RSS | tracer fds | {} so far | load average | highest semaphore |",
            counted.unit()
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for row in &rows {
            println!("{}", row.line());
        }
        println!(
            "\nsummary: {}; the {} semaphores after the trace: {}\n",
            summary.trim_start_matches("usdt: "),
            semaphores.len(),
            after.map_or("unreadable".to_owned(), |v| format!("highest {v}")),
        );
    }
    drop(server);
    Ok(())
}

/// What the tracer's output is counted in.
#[derive(Clone, Copy)]
enum Count {
    /// Event lines (streaming).
    Lines,
    /// Hits of the `hits` aggregation's JSON reports (one per interval).
    Hits,
}

impl Count {
    fn unit(self) -> &'static str {
        match self {
            Count::Lines => "events",
            Count::Hits => "hits counted",
        }
    }

    /// Reads `output` to its end, adding what it counts to `total`.
    fn read(self, output: impl Read, total: &AtomicU64) {
        let mut reader = BufReader::with_capacity(1 << 20, output);
        match self {
            Count::Lines => loop {
                let buffer = match reader.fill_buf() {
                    Ok([]) | Err(_) => return,
                    Ok(buffer) => buffer,
                };
                let lines = buffer.iter().filter(|&&b| b == b'\n').count() as u64;
                let len = buffer.len();
                total.fetch_add(lines, Ordering::Relaxed);
                reader.consume(len);
            },
            Count::Hits => {
                for line in reader.lines().map_while(Result::ok) {
                    let Ok(report) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if report["aggregation"] != "hits" {
                        continue;
                    }
                    let hits: u64 = report["counts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["count"].as_u64())
                        .sum();
                    total.fetch_add(hits, Ordering::Relaxed);
                }
            }
        }
    }
}

/// One sample of the tracer and the server.
struct Sample {
    seconds: u64,
    rss_kib: Option<u64>,
    fds: Option<usize>,
    events: u64,
    load: String,
    semaphore: Option<u16>,
}

impl Sample {
    fn take(
        start: Instant,
        tracer: u32,
        events: &AtomicU64,
        server: u32,
        semaphores: &[u64],
    ) -> Sample {
        let rss_kib = std::fs::read_to_string(format!("/proc/{tracer}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            });
        let fds = std::fs::read_dir(format!("/proc/{tracer}/fd"))
            .ok()
            .map(|dir| dir.count());
        Sample {
            seconds: start.elapsed().as_secs(),
            rss_kib,
            fds,
            events: events.load(Ordering::Relaxed),
            load: load_average(),
            semaphore: highest_semaphore(server, semaphores),
        }
    }

    fn line(&self) -> String {
        let or_gone = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "| {} s | {} | {} | {} | {} | {} |",
            self.seconds,
            or_gone(
                self.rss_kib
                    .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            ),
            or_gone(self.fds.map(|n| n.to_string())),
            self.events,
            self.load,
            or_gone(self.semaphore.map(|v| v.to_string())),
        )
    }
}

/// The runtime addresses of the semaphores of process `pid`'s probes, as
/// `usdt list --pid PID --json` gives them.
fn semaphores(usdt: &std::path::Path, pid: &str) -> Result<Vec<u64>, String> {
    let out =
        deps::output(std::process::Command::new(usdt).args(["list", "--pid", pid, "--json"]))?;
    let mut addresses: Vec<u64> = out
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|site| site["runtime_semaphore"].as_u64())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!("process {pid} has no semaphores"));
    }
    Ok(addresses)
}

/// The highest of the `u16` semaphores at `addresses` of process `pid`.
fn highest_semaphore(pid: u32, addresses: &[u64]) -> Option<u16> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    addresses
        .iter()
        .map(|&address| {
            let mut value = [0u8; 2];
            mem.read_exact_at(&mut value, address)
                .ok()
                .map(|()| u16::from_ne_bytes(value))
        })
        .collect::<Option<Vec<u16>>>()?
        .into_iter()
        .max()
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
