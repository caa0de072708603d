//! The library example of the workspace README's "Aggregate in the kernel"
//! section: requests of the example server counted by status and their
//! latency, aggregated in the kernel for ten seconds. Run it as root with
//! the server's pid.

use std::time::Duration;
use usdt_tracer::{Aggregation, TraceConfig, Tracer};

fn main() -> Result<(), usdt_tracer::TraceError> {
    let pid: u32 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(pid)) => pid,
        _ => panic!("usage: aggregate PID"),
    };
    let config = TraceConfig::new()
        .pid(pid)
        .aggregate(Aggregation::hits(&["http:request_done"], Some("status"))?)
        .aggregate(Aggregation::latency(
            "http:request_start",
            "http:request_done",
            "request_id",
        )?);
    let tracer = Tracer::attach(&config)?;
    std::thread::sleep(Duration::from_secs(10));
    let report = tracer.aggregates()?;
    print!("{}", report.render_text());
    Ok(())
}
