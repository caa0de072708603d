//! Attach time through usdt-aya (as root): `cargo bench -p custom-tracer
//! --bench attach [-- LIBRARY] [ROUNDS]`.
//!
//! Each round loads the example's object, attaches its uprobe_multi program
//! to every probe site of LIBRARY (default: temurin 25's `libjvm.so`),
//! system-wide, and detaches; then, interleaved, the tracer library
//! (`usdt-tracer`) attaches its own program to the same sites (the peer).
//! Printed per step, the median and the range over ROUNDS (11) rounds:
//!
//! - `load`: `usdt_aya::loader().load` and `Usdt::new` (maps created);
//! - `verify`: loading the program (the kernel's verifier);
//! - `attach`: `Usdt::attach` with the program loaded: reading the notes,
//!   specs, the spec map, the uprobe_multi link;
//! - of which `notes`: reading the file's notes alone (`usdt-reader`);
//! - `total`: load + verify + attach, the figure the targets name;
//! - `detach`: dropping the links;
//! - the tracer's `Tracer::attach` and `detach`.

use custom_tracer_common::PROGRAM_MULTI;
use std::path::PathBuf;
use std::time::Instant;
use usdt_aya::aya::programs::UProbe;
use usdt_aya::{Target, Usdt};
use usdt_tracer::{TraceConfig, Tracer};

static OBJECT: &[u8] = include_bytes!("../bpf/custom-tracer.bpf.o");

/// temurin 25's `libjvm.so`, where Debian's package installs it.
const LIBJVM: &str = "/usr/lib/jvm/temurin-25-jdk-amd64/lib/server/libjvm.so";

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let library = PathBuf::from(args.next().unwrap_or_else(|| LIBJVM.into()));
    let rounds: usize = args
        .next()
        .map_or(11, |a| a.parse().expect("ROUNDS: a number"));
    let steps = [
        "load",
        "verify",
        "attach",
        "notes",
        "total",
        "detach",
        "tracer attach",
        "tracer detach",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    let mut sites = 0;
    let mut verified = None;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut ebpf = usdt_aya::loader().load(OBJECT).expect("load the object");
        let mut usdt = Usdt::new(&mut ebpf).expect("the object links usdt-aya-ebpf");
        let load = ms(start);
        let start = Instant::now();
        let program: &mut UProbe = ebpf
            .program_mut(PROGRAM_MULTI)
            .expect("the uprobe_multi program")
            .try_into()
            .expect("a uprobe");
        program.load().expect("verify the program");
        let verify = ms(start);
        if verified.is_none() {
            verified = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count());
        }
        let start = Instant::now();
        let links = usdt
            .attach(
                &mut ebpf,
                PROGRAM_MULTI,
                &Target::Path(library.clone()),
                "*:*",
                0,
            )
            .expect("attach");
        let attach = ms(start);
        assert!(links.is_multi(), "uprobe_multi links");
        sites = links.sites().len();
        let start = Instant::now();
        drop(links);
        let detach = ms(start);
        drop(ebpf);
        let start = Instant::now();
        let notes = usdt_reader::ElfFile::open(&library)
            .and_then(|f| f.probes())
            .expect("read the notes")
            .len();
        let notes_ms = ms(start);
        assert_eq!(notes, sites);

        let config = TraceConfig::new()
            .probe(&format!("{}:*:*", library.display()))
            .expect("the tracer's probe");
        let start = Instant::now();
        let mut tracer = Tracer::attach(&config).expect("the tracer attaches");
        let tracer_attach = ms(start);
        assert_eq!(tracer.attached_sites(), sites);
        let start = Instant::now();
        tracer.detach();
        let tracer_detach = ms(start);

        let round = [
            load,
            verify,
            attach,
            notes_ms,
            load + verify + attach,
            detach,
            tracer_attach,
            tracer_detach,
        ];
        for (list, value) in times.iter_mut().zip(round) {
            list.push(value);
        }
    }
    println!("{}: {sites} sites, {rounds} rounds", library.display());
    if let Some(count) = verified {
        println!("{PROGRAM_MULTI}: {count} instructions verified");
    }
    println!("| step | median ms | min-max ms |");
    println!("| --- | --- | --- |");
    for (step, list) in steps.iter().zip(&mut times) {
        list.sort_by(f64::total_cmp);
        println!(
            "| {step} | {:.1} | {:.1}-{:.1} |",
            list[list.len() / 2],
            list[0],
            list[list.len() - 1]
        );
    }
}

/// Milliseconds since `start`.
fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
