//! Prints how many instructions the running kernel's verifier follows to
//! check the tracer's program (the committed object), with the options
//! (`--filter`, `--stack`) switched off and on, for a trace that only
//! streams probes without strings and for one that may take every action
//! (stream, count, histogram, latency) with every string class:
//! `usdt_site` (sleepable,
//! with BPF cookies), or with `--nosleep` `usdt_site_nosleep` without
//! either, as kernels before 6.0 load it (hits not counted by stack).
//! Each verifier stops at 1,000,000 instructions.
//! Kernels before 5.16 do not report the count: the line then says only
//! that the program loaded. A rejection prints the end of the verifier's
//! log. As root:
//!
//! ```console
//! $ cargo run -p usdt-tracer --example verifier_insns [-- --nosleep]
//! ```

use aya::programs::UProbe;
use aya::{EbpfLoader, include_bytes_aligned};
use usdt_tracer_common::{
    ACTION_STREAM, ACTIONS_GLOBAL, COOKIES_GLOBAL, MAX_ARGS, OPTIONS_GLOBAL, PROGRAM_NAME,
    PROGRAM_NAME_NOSLEEP, SLEEPABLE_GLOBAL, STACK_COUNTS_GLOBAL, STRING_CLASS_GLOBAL, action_bit,
    string_class,
};

/// The tracer's BPF object, as `usdt` embeds it.
static OBJECT: &[u8] = include_bytes_aligned!("../bpf/usdt-tracer.bpf.o");

fn main() {
    let nosleep = std::env::args().any(|arg| arg == "--nosleep");
    let (program, features) = if nosleep {
        (PROGRAM_NAME_NOSLEEP, 0u8)
    } else {
        (PROGRAM_NAME, 1u8)
    };
    let traces = [
        ("streaming without strings", action_bit(ACTION_STREAM), 0u8),
        ("every action", u8::MAX, string_class(MAX_ARGS)),
    ];
    for (options, (what, actions, class)) in [0u8, 1]
        .into_iter()
        .flat_map(|options| traces.map(|trace| (options, trace)))
    {
        let mut ebpf = EbpfLoader::new()
            .override_global(ACTIONS_GLOBAL, &actions, true)
            .override_global(STRING_CLASS_GLOBAL, &class, true)
            .override_global(SLEEPABLE_GLOBAL, &features, true)
            .override_global(COOKIES_GLOBAL, &features, true)
            .override_global(OPTIONS_GLOBAL, &options, true)
            .override_global(STACK_COUNTS_GLOBAL, &0u8, true)
            .load(OBJECT)
            .expect("the object loads");
        let uprobe: &mut UProbe = ebpf
            .program_mut(program)
            .expect("the object has the program")
            .try_into()
            .expect("a uprobe program");
        let switch = if options == 0 { "off" } else { "on" };
        match uprobe.load() {
            Ok(()) => match uprobe
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count())
            {
                Some(count) => {
                    println!("{program}, {what}, options {switch}: {count} instructions")
                }
                None => {
                    println!("{program}, {what}, options {switch}: loaded (no count before 5.16)")
                }
            },
            Err(error) => {
                let log = error.to_string();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                println!(
                    "{program}, {what}, options {switch}: rejected: {}",
                    tail.join(" | ")
                );
            }
        }
    }
}
