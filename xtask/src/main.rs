//! Project automation, run as `cargo xtask <command>`.
//!
//! Every command installs what it needs (Debian packages, toolchain
//! components) before doing its work, so each one works on a fresh machine.

mod bench_build;
mod bench_http;
mod bench_probes;
mod bench_reader;
mod demo;
mod deps;
mod ebpf;
mod fuzz;
mod http;
mod soak;
mod test;
mod vm_test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo        build the example HTTP server and `usdt`, start the server, list
              its probes and trace it while sending it requests (as root)
  test        install test dependencies, then run the whole test suite
  vm-test [KERNEL...] [-- FILTER...]
              run the tracing tests as root on other kernels (6.1, 5.10: Debian's,
              each in a QEMU virtual machine; host: the running one), with
              the test executables built once here (see vm-test --help)
  build-ebpf  build the tracer's BPF object into usdt-tracer/bpf/ (--check: fail if
              the committed object differs from a fresh build)
  fuzz [SECONDS]
              run each cargo-fuzz target of usdt-reader for SECONDS (60)
  bench-reader [RUNS]
              time `usdt list` against `readelf -n` on the largest library
              with probes
  bench-probes [ROUNDS]
              untraced cost per probe hit: usdt-runtime against the probe
              and usdt crates, loops aligned to cache lines
  bench-build [ROUNDS] [--against REV]
              clean debug build of a fresh application crate depending on
              usdt-runtime, default features and `serde` (against REV too)
  bench-http [SECONDS] [--rounds N]
              requests/s of the example server under wrk load: untraced,
              traced streaming, traced aggregating in the kernel, usdt
              serve, bpftrace aggregating; the server's CPU per request;
              then the cost of a scrape (as root; --rounds 0: only the
              scrapes)
  soak [--minutes N]
              trace the example server under wrk load for N minutes (10),
              streaming then aggregating, sampling the tracer's memory,
              descriptors and events every 10 s (as root)
  help        show this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "vm-test" => vm_test::run(rest),
        "build-ebpf" => ebpf::run(rest),
        "fuzz" => fuzz::run(rest),
        "bench-reader" => bench_reader::run(rest),
        "bench-probes" => bench_probes::run(rest),
        "bench-build" => bench_build::run(rest),
        "bench-http" => bench_http::run(rest),
        "soak" => soak::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
