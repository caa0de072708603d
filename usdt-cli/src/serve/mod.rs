//! `usdt serve`: a daemon that aggregates probe hits in the kernel and
//! exports them to Prometheus, reading the maps on each scrape.
//!
//! The main thread owns the tracer: it answers the scrapes the HTTP threads
//! pass it, reloads the configuration on SIGHUP (keeping the old one when
//! the new one is bad), attaches again when a target file is replaced (a
//! new inode at its path), and detaches on SIGTERM or SIGINT. Once the
//! first attach is done, it drops every capability but those attaching
//! again needs ([`usdt_tracer::retain_tracing_capabilities`]).

mod config;
mod exposition;
mod http;

use crate::error::{CliError, warn};
use config::ServeConfig;
use exposition::{Admitted, SelfState, Snapshot};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use usdt_tracer::Tracer;

/// The address served unless another is given.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:9436";

/// How often the target files are looked at for a replacement.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `usdt serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (its help text is given apart: rustdoc
    /// would read its brackets as a link).
    #[arg(
        long,
        value_name = "FILE",
        help = "The configuration: a TOML file of [[metric]] tables (name, kind = count | histogram | latency, probe, by, value, start, end, key, help, max_series)"
    )]
    config: PathBuf,
    /// The address to serve /metrics on [default: the file's `listen`, or
    /// 127.0.0.1:9436].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Check the configuration and print what would be exported (metrics,
    /// probes, sites), without attaching anything.
    #[arg(long)]
    check: bool,
}

/// Runs `usdt serve`.
pub(crate) fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = config::load(&args.config).map_err(|error| CliError::Input(error.0))?;
    if args.check {
        return check(&config);
    }
    let listen = args
        .listen
        .clone()
        .or_else(|| config.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listener = TcpListener::bind(&listen)
        .map_err(|error| CliError::Failure(format!("cannot listen on {listen}: {error}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|error| CliError::Failure(format!("cannot catch signals: {error}")))?;
    }
    signal_hook::flag::register(SIGHUP, Arc::clone(&reload))
        .map_err(|error| CliError::Failure(format!("cannot catch signals: {error}")))?;

    let mut daemon = Daemon::attach(config, &stop)?;
    // Before the HTTP threads start: they begin with what is left.
    match usdt_tracer::retain_tracing_capabilities() {
        Ok(kept) if kept.is_empty() => {}
        Ok(kept) => eprintln!("usdt: capabilities kept: {}", kept.join(", ")),
        Err(error) => warn(&error.to_string()),
    }
    let scrapes = http::serve(listener);
    eprintln!(
        "usdt: serving {} metric{} from {} site{} on http://{listen}/metrics",
        daemon.config.metrics.len(),
        crate::trace::plural(daemon.config.metrics.len()),
        daemon.tracer.attached_sites(),
        crate::trace::plural(daemon.tracer.attached_sites()),
    );
    let mut last_watch = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match scrapes.recv_timeout(Duration::from_millis(200)) {
            Ok(scrape) => {
                let answer = daemon.scrape(scrape.openmetrics);
                let _ = scrape.reply.send(answer);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(CliError::Failure("the HTTP server stopped".into()));
            }
        }
        if reload.swap(false, Ordering::SeqCst) {
            daemon.reload(&args.config, &stop);
        }
        if last_watch.elapsed() >= WATCH_INTERVAL {
            last_watch = Instant::now();
            daemon.watch(&stop);
        }
    }
    drop(daemon);
    eprintln!("usdt: detached, stopping");
    Ok(())
}

/// `--check`: what the configuration would export, found without attaching.
fn check(config: &ServeConfig) -> Result<(), CliError> {
    let sites = Tracer::dry_run(&config.trace)?;
    for (metric, sites) in config.metrics.iter().zip(&sites) {
        let label = metric
            .label
            .as_deref()
            .map(|label| format!(" by {label}"))
            .unwrap_or_default();
        println!(
            "{} ({}{label}): {}; {} site{} of {}",
            metric.family,
            metric.kind,
            metric.sample_names().join(", "),
            sites.sites,
            crate::trace::plural(sites.sites),
            sites.probes.join(", "),
        );
    }
    println!(
        "{} metric{} checked",
        config.metrics.len(),
        crate::trace::plural(config.metrics.len())
    );
    Ok(())
}

/// The running daemon: its configuration, tracer and counters.
struct Daemon {
    config: ServeConfig,
    tracer: Tracer,
    /// The inode of each target file when it was attached.
    files: Vec<(PathBuf, Option<(u64, u64)>)>,
    admitted: Admitted,
    reloads: (u64, u64),
    reattached: u64,
}

impl Daemon {
    /// Attaches `config`; gives up when `stop` is set.
    fn attach(config: ServeConfig, stop: &AtomicBool) -> Result<Daemon, CliError> {
        let files = identities(&config);
        let tracer = Tracer::attach_until(&config.trace, stop)?;
        for warning in tracer.warnings() {
            warn(warning);
        }
        Ok(Daemon {
            config,
            tracer,
            files,
            admitted: Admitted::default(),
            reloads: (0, 0),
            reattached: 0,
        })
    }

    /// The exposition now, and its content type.
    fn scrape(&mut self, openmetrics: bool) -> (String, &'static str) {
        let started = Instant::now();
        let report = match self.tracer.aggregates() {
            Ok(report) => report,
            Err(error) => {
                warn(&format!("cannot read the aggregations: {error}"));
                Default::default()
            }
        };
        let state = SelfState {
            sites: self
                .tracer
                .aggregation_sites()
                .iter()
                .map(|a| a.sites)
                .collect(),
            losses: report.losses,
            read_seconds: started.elapsed().as_secs_f64(),
            reloads: self.reloads,
            reattached: self.reattached,
        };
        Snapshot::new(&self.config.metrics, &report, &state, &mut self.admitted).encode(openmetrics)
    }

    /// Replaces the configuration with the file's (SIGHUP); a bad new one
    /// keeps the old, and says so.
    fn reload(&mut self, path: &std::path::Path, stop: &AtomicBool) {
        let attached = config::load(path)
            .map_err(|error| error.0)
            .and_then(|config| {
                if config.listen.is_some() && config.listen != self.config.listen {
                    warn("the new `listen` applies at the next start, not on reload");
                }
                Daemon::attach(config, stop).map_err(|error| error.to_string())
            });
        match attached {
            Ok(new) => {
                self.config = new.config;
                self.tracer = new.tracer;
                self.files = new.files;
                self.admitted = Admitted::default();
                self.reloads.0 += 1;
                eprintln!(
                    "usdt: reloaded {}: {} metric{} from {} site{}",
                    path.display(),
                    self.config.metrics.len(),
                    crate::trace::plural(self.config.metrics.len()),
                    self.tracer.attached_sites(),
                    crate::trace::plural(self.tracer.attached_sites()),
                );
            }
            Err(error) => {
                self.reloads.1 += 1;
                warn(&format!(
                    "reload failed, keeping the old configuration: {error}"
                ));
            }
        }
    }

    /// Attaches again when a target file was replaced (a deploy: a new
    /// inode at its path); the counters start again from zero then.
    fn watch(&mut self, stop: &AtomicBool) {
        let now = identities(&self.config);
        let replaced = now
            .iter()
            .zip(&self.files)
            .find(|((_, new), (_, old))| new.is_some() && new != old);
        let Some(((path, _), _)) = replaced else {
            return;
        };
        let path = path.clone();
        match Daemon::attach(self.config.clone(), stop) {
            Ok(new) => {
                self.tracer = new.tracer;
                self.files = new.files;
                self.admitted = Admitted::default();
                self.reattached += 1;
                eprintln!(
                    "usdt: {} was replaced; attached again to {} site{}",
                    path.display(),
                    self.tracer.attached_sites(),
                    crate::trace::plural(self.tracer.attached_sites()),
                );
            }
            Err(error) => {
                // Not tried again until the file changes again.
                self.files = now;
                warn(&format!(
                    "{} was replaced, but attaching to it failed: {error}",
                    path.display()
                ));
            }
        }
    }
}

/// Each target file of `config` with its device and inode, if it exists.
fn identities(config: &ServeConfig) -> Vec<(PathBuf, Option<(u64, u64)>)> {
    config::files(&config.trace)
        .into_iter()
        .map(|path| {
            let identity = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
            (path, identity)
        })
        .collect()
}
