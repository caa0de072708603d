//! `custom-tracer`: attaches the example's own BPF program (built from
//! `../custom-tracer-ebpf`, embedded below) to USDT probes with `usdt-aya`
//! and prints every hit's cookie, arguments and strings.
//!
//! ```console
//! # custom-tracer --pid 1234 'http:request_*'
//! # custom-tracer --path ./fixture --cstr 2 'fixture:*'
//! ```

use clap::Parser;
use custom_tracer_common::{CSTR_SHIFT, HITS_MAP, Hit, PROGRAM, PROGRAM_MULTI};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use usdt_aya::aya::maps::RingBuf;
use usdt_aya::{Target, Usdt};

/// The BPF object, as `cargo xtask build-ebpf` builds it.
static OBJECT: &[u8] = include_bytes!("../bpf/custom-tracer.bpf.o");

/// Prints the arguments of USDT probes with the example's own BPF program.
#[derive(Parser)]
struct Args {
    /// Attach in every module of this process.
    #[arg(long, conflicts_with = "path")]
    pid: Option<u32>,
    /// Attach to this file, in every process running it, now and later.
    #[arg(long, required_unless_present = "pid")]
    path: Option<PathBuf>,
    /// Read argument N (from 0) of the probes as a C string.
    #[arg(long = "cstr", value_name = "N")]
    cstr: Vec<u32>,
    /// Use the uprobe_multi program (one link per file, kernels 6.6+).
    #[arg(long)]
    multi: bool,
    /// Stop after this many hits.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Probes as `provider:name`, `*` globs allowed; each is attached with
    /// its position as cookie.
    #[arg(required = true)]
    probes: Vec<String>,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("custom-tracer: {error}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let target = match (args.pid, args.path) {
        (Some(pid), _) => Target::Pid(pid),
        (None, Some(path)) => Target::Path(path),
        (None, None) => unreachable!("clap requires one"),
    };
    let cstr_bits = args.cstr.iter().fold(0u64, |bits, n| bits | 1 << n);
    let program = if args.multi { PROGRAM_MULTI } else { PROGRAM };

    let mut ebpf = usdt_aya::loader().load(OBJECT)?;
    let mut usdt = Usdt::new(&mut ebpf)?;
    let mut links = Vec::new();
    for (index, probe) in args.probes.iter().enumerate() {
        let cookie = (cstr_bits << CSTR_SHIFT) | index as u64;
        let attached = usdt.attach(&mut ebpf, program, &target, probe, cookie)?;
        eprintln!(
            "custom-tracer: {probe}: {} sites attached ({})",
            attached.sites().len(),
            if attached.is_multi() {
                "uprobe_multi"
            } else {
                "perf events"
            }
        );
        for warning in attached.warnings() {
            eprintln!("custom-tracer: warning: {warning}");
        }
        links.push(attached);
    }

    let mut hits = RingBuf::try_from(ebpf.take_map(HITS_MAP).ok_or("no HITS map")?)?;
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    loop {
        while let Some(record) = hits.next() {
            // SAFETY: the program submits whole `Hit` records.
            let hit: Hit = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
            println!("{}", describe(&hit, &args.probes));
            seen += 1;
            if args.count.is_some_and(|count| seen >= count) {
                return Ok(());
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One line per hit: the probe pattern, the pid, the arguments and the
/// strings.
fn describe(hit: &Hit, probes: &[String]) -> String {
    let probe = probes
        .get((hit.cookie & 0xffff_ffff) as usize)
        .map_or("?", String::as_str);
    let count = (hit.arg_count as usize).min(hit.args.len());
    let values: Vec<String> = hit.args[..count]
        .iter()
        .enumerate()
        .map(|(n, value)| {
            if hit.faults & (1 << n) != 0 {
                "?".to_owned()
            } else {
                value.to_string()
            }
        })
        .collect();
    let mut line = format!("{probe} pid={} args=[{}]", hit.pid, values.join(", "));
    for text in &hit.strings[..(hit.string_count as usize).min(hit.strings.len())] {
        let copied = (text.len as usize).min(text.bytes.len());
        line += &format!(
            " arg{}={:?}",
            text.arg,
            String::from_utf8_lossy(&text.bytes[..copied])
        );
    }
    line
}
