//! Tracing cost, in one run: `cargo bench -p usdt-tracer --bench trace_cost`
//! (as root).
//!
//! Sections can be chosen: `cargo bench -p usdt-tracer --bench trace_cost --
//! cost filter stack rate attach` (all five by default).
//!
//! 1. Cost per traced hit of one probe with one argument: a child process
//!    fires the probe N times in a tight loop and times itself (CPU time of
//!    the firing thread, which includes the kernel's uprobe and BPF work
//!    done on its behalf but not time lost to other processes), untraced,
//!    traced by this tracer streaming it (every event delivered to user
//!    space and decoded), traced by this tracer counting it in the kernel
//!    (as `usdt trace --hits`), and traced by bpftrace counting it in the
//!    kernel (`@hits = count()`) and printing every hit's timestamp and
//!    argument (`printf("%llu %llu\n", nsecs, arg0)`). Runs alternate;
//!    medians are reported, with ratios of the extra cost per hit over the
//!    untraced loop.
//!    Two probes: this SDK's `probe!` (5-byte nop, which the kernel turns
//!    into a call) and a `<sys/sdt.h>` probe in C (1-byte nop, a trap).
//! 2. Cost per hit of a filter and of stacks, counting in the kernel: no
//!    filter, a filter every hit fails (`arg0 > N`, N above every value) and
//!    one every hit passes, against bpftrace counting with the same
//!    predicate; hits counted per user stack (`--hits --by stack`) against
//!    bpftrace's `@[ustack] = count()`. Every count is checked.
//! 3. Cost per hit of a streamed user stack (`usdt trace --stack`: every
//!    hit sent to user space with its stack, symbolized there) against
//!    bpftrace printing each hit's argument and user stack
//!    (`printf("%llu\n%s\n", arg0, ustack)`: the stack is read in the
//!    kernel into a stack map, the event sent through a perf buffer and
//!    symbolized by bpftrace), on the same probes, so the same chains
//!    (the two above, and the C one fired 16 calls below main, built with
//!    frame pointers);
//!    every hit is delivered or counted dropped by usdt; bpftrace reports
//!    the hits it lost, and leaves some unread when its command exits,
//!    which are counted too (each ran its program all the same).
//! 4. Sustained event rate: the traced single-thread rate above with the
//!    drop count, and the same with one firing thread per CPU.
//! 5. Attach time for every probe site of a large library: the largest
//!    probe-carrying library found on the machine, and a generated library
//!    with 10,000 sites; attach and detach, uprobe_multi links and one
//!    perf-event uprobe per site. Then the generated library in 1, 2 and 4
//!    copies (10,000, 20,000 and 40,000 sites), each attach's time against
//!    the one copy's: attaching is linear in the sites when 4 copies take
//!    less than 4.5 times as long as one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use usdt_tracer::launch::StoppedCommand;
use usdt_tracer::{AggregateResult, Aggregation, TraceConfig, Tracer};

/// Hits per timed run.
const HITS: u64 = 2_000_000;
/// Timed runs per configuration.
const RUNS: usize = 7;
/// Sites of the generated library.
const GENERATED_SITES: usize = 10_000;
/// Hits per timed run with a streamed stack. Each sends over a kilobyte to
/// user space, which symbolizes it, slower than they come: the run's
/// records fit in the 64 MiB ring buffer, so none is dropped (a dropped
/// hit skips the stack walk, and would cost less).
const STACK_HITS: u64 = 40_000;
/// Calls between `main` and the probe in the deep C target.
const STACK_DEPTH: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--fire") {
        let threads: usize = args[i + 1].parse().expect("threads");
        let hits: u64 = args[i + 2].parse().expect("hits");
        fire(threads, hits);
        return;
    }
    let sections: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| ["cost", "filter", "stack", "rate", "attach"].contains(a))
        .collect();
    let wants = |section: &str| sections.is_empty() || sections.contains(&section);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("trace_cost: needs root (CAP_BPF, CAP_PERFMON); skipped");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("usdt-trace-cost-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let exe = std::env::current_exe().unwrap();
    let c_target = build_c_target(&scratch, "c_target", &[]);
    let bpftrace = which("bpftrace");
    if bpftrace.is_none() {
        eprintln!("trace_cost: bpftrace is not installed: its column is left out");
    }

    if wants("cost") {
        println!(
            "## Cost per traced hit ({HITS} hits per run, median of {RUNS} runs, CPU time of the firing thread)\n"
        );
        println!(
            "| probe | untraced ns/hit | usdt streaming ns/hit | usdt counting ns/hit | bpftrace counting ns/hit | bpftrace printing ns/hit | usdt streaming / bpftrace counting | usdt counting / bpftrace counting | usdt streaming / bpftrace printing | usdt events delivered | usdt drops |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let [rust, c] = probe_targets(&exe, &c_target, HITS);
        let mut single_rate = Vec::new();
        for target in [&rust, &c] {
            let mut untraced = Vec::new();
            let mut ours = Vec::new();
            let mut ours_wall = Vec::new();
            let mut counting = Vec::new();
            let mut theirs = Vec::new();
            let mut theirs_printing = Vec::new();
            let mut delivered = 0;
            let mut drops = 0;
            for _ in 0..RUNS {
                untraced.push(target.run_untraced());
                let run = target.run_ours(false);
                ours.push(run.ns_per_hit);
                ours_wall.push(run.wall_ns);
                delivered += run.events;
                drops += run.drops;
                counting.push(target.run_ours(true).ns_per_hit);
                if let Some(bpftrace) = &bpftrace {
                    theirs.push(target.run_bpftrace(bpftrace, false));
                    theirs_printing.push(target.run_bpftrace(bpftrace, true));
                }
            }
            let base = median(&untraced);
            let ours_ns = median(&ours);
            let counting_ns = median(&counting);
            // Ratios of the extra cost per hit over the untraced loop.
            let ratio = |ours: f64, theirs: &[f64]| {
                if theirs.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.2}", (ours - base) / (median(theirs) - base))
                }
            };
            let ns = |values: &[f64]| {
                if values.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.1}", median(values))
                }
            };
            println!(
                "| {} | {base:.1} | {ours_ns:.1} | {counting_ns:.1} | {} | {} | {} | {} | {} | {delivered} of {} | {drops} |",
                target.label,
                ns(&theirs),
                ns(&theirs_printing),
                ratio(ours_ns, &theirs),
                ratio(counting_ns, &theirs),
                ratio(ours_ns, &theirs_printing),
                HITS * RUNS as u64,
            );
            single_rate.push((
                target.label,
                delivered as f64 / ours_wall.iter().sum::<f64>() * 1e9,
                drops,
            ));
        }
    }

    if wants("filter") {
        filter_and_stack_costs(&exe, &c_target, bpftrace.as_deref());
    }

    if wants("stack") {
        let deep = build_c_target(
            &scratch,
            "c_target_deep",
            &[&format!("-DDEPTH={STACK_DEPTH}"), "-fno-omit-frame-pointer"],
        );
        streamed_stack_costs(&exe, &c_target, &deep, bpftrace.as_deref());
    }

    if wants("rate") {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        println!(
            "\n## Sustained event rate (SDK probe!, every event delivered to user space and decoded)\n"
        );
        println!("| firing threads | events/s | events | drops |");
        println!("|---|---|---|---|");
        let one = Target {
            label: "",
            program: exe.clone(),
            args: vec!["--fire".into(), "1".into(), HITS.to_string()],
            probe: "bench:hit",
        };
        let run = one.run_ours(false);
        println!(
            "| 1 (tight loop) | {:.0} | {} | {} |",
            (run.events + run.drops) as f64 / run.wall_ns * 1e9,
            run.events,
            run.drops
        );
        let threads = Target {
            label: "",
            program: exe.clone(),
            args: vec!["--fire".into(), cpus.to_string(), HITS.to_string()],
            probe: "bench:hit",
        };
        let run = threads.run_ours(false);
        println!(
            "| {cpus} (one per CPU) | {:.0} | {} | {} |",
            (run.events + run.drops) as f64 / run.wall_ns * 1e9,
            run.events,
            run.drops
        );
    }

    if wants("attach") {
        println!("\n## Attach and detach, every probe site of a library\n");
        println!("| library | sites | links | attach ms | detach ms |");
        println!("|---|---|---|---|---|");
        if let Some(library) = largest_probe_library() {
            attach_row(&library, false);
            attach_row(&library, true);
        }
        let generated = build_generated_library(&scratch);
        attach_row(&generated, false);

        println!("\n## Attach time by number of sites (copies of the generated library)\n");
        println!(
            "| files | sites | attach ms (median of {RUNS}) | detach ms | attach / one file's |"
        );
        println!("|---|---|---|---|---|");
        let mut files = vec![generated.clone()];
        for copy in 1..4 {
            let path = scratch.join(format!("libgenerated{copy}.so"));
            std::fs::copy(&generated, &path).unwrap();
            files.push(path);
        }
        let counts = [1, 2, 4];
        let mut times: Vec<Vec<(f64, f64)>> = vec![Vec::new(); counts.len()];
        // Interleaved rounds, so load from elsewhere affects every size alike.
        for _ in 0..RUNS {
            for (i, &n) in counts.iter().enumerate() {
                times[i].push(attach_files(&files[..n], false).1);
            }
        }
        let attach_ms = |i: usize| median(&times[i].iter().map(|t| t.0).collect::<Vec<_>>());
        for (i, &n) in counts.iter().enumerate() {
            let detach = median(&times[i].iter().map(|t| t.1).collect::<Vec<_>>());
            println!(
                "| {n} | {} | {:.0} | {detach:.0} | {:.2} |",
                n * GENERATED_SITES,
                attach_ms(i),
                attach_ms(i) / attach_ms(0)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The two probes measured: this SDK's `probe!` in this program (`--fire`)
/// and a `<sys/sdt.h>` probe in [`C_TARGET`] built as `c_target`, each
/// fired `hits` times from one thread.
fn probe_targets(exe: &Path, c_target: &Path, hits: u64) -> [Target; 2] {
    [
        Target {
            label: "SDK probe! (5-byte nop)",
            program: exe.to_path_buf(),
            args: vec!["--fire".into(), "1".into(), hits.to_string()],
            probe: "bench:hit",
        },
        Target {
            label: "sys/sdt.h STAP_PROBE1 (1-byte nop)",
            program: c_target.to_path_buf(),
            args: vec![hits.to_string()],
            probe: "bench:hit",
        },
    ]
}

/// A program that fires `probe` and prints the nanoseconds its loop took.
struct Target {
    label: &'static str,
    program: PathBuf,
    args: Vec<String>,
    probe: &'static str,
}

impl Target {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null());
        command
    }

    /// Nanoseconds per hit, untraced.
    fn run_untraced(&self) -> f64 {
        let out = self.command().output().unwrap();
        assert!(out.status.success());
        per_hit(&String::from_utf8_lossy(&out.stdout))
    }

    /// One run traced by this tracer from the first instruction.
    /// `counting`: the hits are counted in the kernel (as `usdt trace
    /// --hits`) instead of streamed, and the count is checked.
    fn run_ours(&self, counting: bool) -> Run {
        let config = if counting {
            TraceConfig::new().aggregate(Aggregation::hits(&[self.probe], None).unwrap())
        } else {
            TraceConfig::new().probe(self.probe).unwrap()
        };
        self.run_config(config, counting.then_some(Kept::All))
    }

    /// [`Target::run_ours`] with `config`, which counts in the kernel when
    /// `counted` says which hits its counts must add up to.
    fn run_config(&self, mut config: TraceConfig, counted: Option<Kept>) -> Run {
        let mut argv = vec![self.program.display().to_string()];
        argv.extend(self.args.iter().cloned());
        let output = self.program.with_extension("out");
        let mut command = StoppedCommand::spawn(&argv_with_output(&argv, &output)).unwrap();
        config.pid = Some(command.pid());
        config.executable = Some(self.program.clone());
        config.ring_bytes = 64 << 20;
        let mut tracer = Tracer::attach(&config).unwrap();
        command
            .resume_with(|pid| tracer.raise_after_exec(pid))
            .unwrap();
        let mut events = 0u64;
        let mut frames = 0usize;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let status = command.wait().unwrap();
                assert_eq!(status, 0);
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let n = tracer
                    .poll(Duration::from_millis(10), |event| {
                        std::hint::black_box(&event.args);
                        frames = frames.max(event.stack.as_ref().map_or(0, Vec::len));
                        true
                    })
                    .unwrap();
                events += n as u64;
            }
        });
        tracer.detach();
        events += tracer.drain(|_| true) as u64;
        let drops = tracer.drops().unwrap();
        let text = std::fs::read_to_string(&output).unwrap();
        if let Some(kept) = counted {
            let report = tracer.aggregates().unwrap();
            let Some(AggregateResult::Hits { counts, .. }) = report.results.first() else {
                panic!("no hit counts: {report:?}");
            };
            let hits: u64 = counts.iter().map(|c| c.count).sum();
            assert_eq!(
                hits,
                kept.of(fired(&text)),
                "the kernel counted every hit kept"
            );
        }
        Run {
            ns_per_hit: per_hit(&text),
            wall_ns: wall_ns(&text),
            events,
            drops,
            fired: fired(&text),
            frames,
        }
    }

    /// CPU nanoseconds per hit under bpftrace: counting the probe in the
    /// kernel, or (`printing`) printing every hit's timestamp and argument.
    /// Either way every hit must be accounted for (printed or reported
    /// lost).
    fn run_bpftrace(&self, bpftrace: &Path, printing: bool) -> f64 {
        let run = if printing {
            self.run_bpftrace_script(bpftrace, "", r#"printf("%llu %llu\n", nsecs, arg0);"#, None)
        } else {
            self.run_bpftrace_script(bpftrace, "", "@hits = count();", Some(Kept::All))
        };
        let run = run.expect("bpftrace failed");
        if printing {
            assert_eq!(
                run.printed + run.lost,
                run.fired,
                "bpftrace printed or reported lost every hit"
            );
        }
        run.ns_per_hit
    }

    /// CPU nanoseconds per hit under bpftrace running `action` on the
    /// probe under `predicate` (`/.../`, or empty). `counted`: the action
    /// counts into a map, whose counts must add up to the hits kept;
    /// otherwise it prints a line starting with a digit per hit (and any
    /// lines not starting with one), counted with the hits bpftrace
    /// reports lost. `None` when bpftrace failed.
    fn run_bpftrace_script(
        &self,
        bpftrace: &Path,
        predicate: &str,
        action: &str,
        counted: Option<Kept>,
    ) -> Option<BpftraceRun> {
        let output = self.program.with_extension("bpftrace.out");
        let printed = self.program.with_extension("bpftrace.lines");
        let mut argv = vec![self.program.display().to_string()];
        argv.extend(self.args.iter().cloned());
        let shell = argv_with_output(&argv, &output).join(" ");
        let script = format!(
            "usdt:{}:{} {predicate} {{ {action} }}",
            self.program.display(),
            self.probe
        );
        let out = Command::new(bpftrace)
            .args(["-e", &script, "-c", &shell])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&printed).unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if !out.success() {
            return None;
        }
        let stdout = std::fs::read_to_string(&printed).unwrap();
        let _ = std::fs::remove_file(&printed);
        let lost: u64 = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Lost "))
            .map(|rest| rest.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        // Printed hits; what bpftrace reports as lost ("Lost N events")
        // it did not print but still paid for.
        let printed = stdout
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count() as u64;
        let text = std::fs::read_to_string(&output).unwrap();
        let fired = fired(&text);
        if let Some(kept) = counted {
            // `@hits: N`, or `@[STACK]: N` per stack; nothing when no hit
            // was counted.
            let hits: u64 = stdout
                .lines()
                .filter_map(|l| l.strip_prefix("@hits: ").or_else(|| l.strip_prefix("]: ")))
                .map(|n| n.trim().parse::<u64>().unwrap())
                .sum();
            assert_eq!(hits, kept.of(fired), "bpftrace counted every hit kept");
        } else {
            assert!(printed + lost <= fired, "more printed than fired: {stdout}");
        }
        Some(BpftraceRun {
            ns_per_hit: per_hit(&text),
            fired,
            printed,
            lost,
        })
    }
}

/// What one run under bpftrace measured.
struct BpftraceRun {
    /// CPU nanoseconds per hit of the firing thread.
    ns_per_hit: f64,
    /// Hits the program fired.
    fired: u64,
    /// Hits printed, and reported lost, when the script prints a line each.
    printed: u64,
    lost: u64,
}

/// What one run traced by this tracer measured.
struct Run {
    /// CPU nanoseconds per hit of the firing thread.
    ns_per_hit: f64,
    /// Wall-clock nanoseconds of the firing loop.
    wall_ns: f64,
    /// Events delivered to user space and dropped (the ring buffer full).
    events: u64,
    drops: u64,
    /// Hits the program fired.
    fired: u64,
    /// The most frames an event's stack had.
    frames: usize,
}

/// Which hits a count must add up to.
#[derive(Clone, Copy)]
enum Kept {
    All,
    None,
}

impl Kept {
    /// The count expected of `fired` hits.
    fn of(self, fired: u64) -> u64 {
        match self {
            Kept::All => fired,
            Kept::None => 0,
        }
    }
}

/// Section 2: the cost per hit of filters and stack counts, against
/// counting without them and against bpftrace doing the same.
fn filter_and_stack_costs(exe: &Path, c_target: &Path, bpftrace: Option<&Path>) {
    // The probe's argument counts from 0 to HITS - 1.
    let fail = format!("arg0 > {}", HITS * 10);
    let pass = format!("arg0 < {}", HITS * 10);
    println!(
        "\n## Filters and stacks, counting in the kernel ({HITS} hits per run, median of {RUNS} runs, ns per hit)\n"
    );
    println!(
        "filters: `{fail}` (every hit fails it) and `{pass}` (every hit passes); bpftrace: the same predicates, and `@[ustack] = count()`\n"
    );
    println!(
        "| probe | untraced | count | count, filter failed | count, filter passed | count by stack | bpftrace count | bpftrace, filter failed | bpftrace, filter passed | bpftrace by ustack | failed / count | passed / count | failed / bpftrace's | passed / bpftrace's | by stack / bpftrace's |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for target in probe_targets(exe, c_target, HITS) {
        let counting = || Aggregation::hits(&[target.probe], None).unwrap();
        let filtered = |text: &str| {
            let mut config = TraceConfig::new().aggregate(counting());
            config.filter = Some(text.parse().unwrap());
            config
        };
        let by_stack = || {
            TraceConfig::new().aggregate(Aggregation::hits(&[target.probe], Some("stack")).unwrap())
        };
        // One list per column, runs interleaved.
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); 9];
        for _ in 0..RUNS {
            columns[0].push(target.run_untraced());
            let ours = [
                (TraceConfig::new().aggregate(counting()), Kept::All),
                (filtered(&fail), Kept::None),
                (filtered(&pass), Kept::All),
                (by_stack(), Kept::All),
            ];
            for (i, (config, kept)) in ours.into_iter().enumerate() {
                columns[1 + i].push(target.run_config(config, Some(kept)).ns_per_hit);
            }
            if let Some(bpftrace) = bpftrace {
                let theirs = [
                    ("".to_string(), "@hits = count();", Kept::All),
                    (format!("/{fail}/"), "@hits = count();", Kept::None),
                    (format!("/{pass}/"), "@hits = count();", Kept::All),
                    ("".to_string(), "@[ustack] = count();", Kept::All),
                ];
                for (i, (predicate, action, kept)) in theirs.into_iter().enumerate() {
                    let run = target.run_bpftrace_script(bpftrace, &predicate, action, Some(kept));
                    columns[5 + i].push(run.expect("bpftrace failed").ns_per_hit);
                }
            }
        }
        let base = median(&columns[0]);
        let ns = |column: &[f64]| {
            if column.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}", median(column))
            }
        };
        // Ratios of the extra cost per hit over the untraced loop.
        let ratio = |ours: &[f64], theirs: &[f64]| {
            if theirs.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", (median(ours) - base) / (median(theirs) - base))
            }
        };
        println!(
            "| {} | {base:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.label,
            ns(&columns[1]),
            ns(&columns[2]),
            ns(&columns[3]),
            ns(&columns[4]),
            ns(&columns[5]),
            ns(&columns[6]),
            ns(&columns[7]),
            ns(&columns[8]),
            ratio(&columns[2], &columns[1]),
            ratio(&columns[3], &columns[1]),
            ratio(&columns[2], &columns[6]),
            ratio(&columns[3], &columns[7]),
            ratio(&columns[4], &columns[8]),
        );
    }
}

/// Section 3: the cost per hit of streaming each hit with its user stack,
/// against bpftrace printing each hit's argument and user stack.
fn streamed_stack_costs(exe: &Path, c_target: &Path, deep: &Path, bpftrace: Option<&Path>) {
    println!(
        "\n## Streamed user stacks ({STACK_HITS} hits per run, median of {RUNS} runs, ns per hit)\n"
    );
    println!(
        "usdt: `--stack`, each hit streamed with its stack and symbolized; bpftrace: `printf(\"%llu\\n%s\\n\", arg0, ustack)`\n"
    );
    println!(
        "| probe | frames | untraced | usdt --stack | bpftrace ustack | usdt / bpftrace (extra cost per hit) | usdt delivered, dropped | bpftrace printed, lost, left unread at its exit | bpftrace runs failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let [rust, c] = probe_targets(exe, c_target, STACK_HITS);
    for target in [
        rust,
        c,
        Target {
            label: "sys/sdt.h, 16 calls below main, frame pointers",
            program: deep.to_path_buf(),
            args: vec![STACK_HITS.to_string()],
            probe: "bench:hit",
        },
    ] {
        let (mut untraced, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut delivered, mut dropped, mut frames) = (0, 0, 0);
        let (mut printed, mut lost, mut unread, mut failed) = (0, 0, 0, 0);
        for _ in 0..RUNS {
            untraced.push(target.run_untraced());
            let mut config = TraceConfig::new().probe(target.probe).unwrap();
            config.stack = true;
            let run = target.run_config(config, None);
            assert_eq!(
                run.events + run.drops,
                run.fired,
                "every hit delivered or dropped"
            );
            ours.push(run.ns_per_hit);
            (delivered, dropped) = (delivered + run.events, dropped + run.drops);
            frames = frames.max(run.frames);
            let Some(bpftrace) = bpftrace else { continue };
            // bpftrace 0.17 aborts when it symbolizes a stack after its
            // command exited (`read_symlink: No such file or directory
            // [/proc/PID/exe]`), once the timed loop is over: such a run is
            // counted and done again (up to ten tries).
            let action = r#"printf("%llu\n%s\n", arg0, ustack);"#;
            let run = (0..10)
                .find_map(|_| {
                    let run = target.run_bpftrace_script(bpftrace, "", action, None);
                    failed += u32::from(run.is_none());
                    run
                })
                .expect("bpftrace failed ten times");
            theirs.push(run.ns_per_hit);
            (printed, lost) = (printed + run.printed, lost + run.lost);
            unread += run.fired - run.printed - run.lost;
        }
        let base = median(&untraced);
        let (theirs_ns, ratio) = if theirs.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.1}", median(&theirs)),
                format!("{:.2}", (median(&ours) - base) / (median(&theirs) - base)),
            )
        };
        println!(
            "| {} | {frames} | {base:.1} | {:.1} | {theirs_ns} | {ratio} | {delivered}, {dropped} | {printed}, {lost}, {unread} | {failed} |",
            target.label,
            median(&ours),
        );
    }
}

/// The command line running `argv` with its report written to `output`
/// (a shell for the redirection would add a process to trace around).
fn argv_with_output(argv: &[String], output: &Path) -> Vec<String> {
    let mut argv = argv.to_vec();
    argv.push("--report".into());
    argv.push(output.display().to_string());
    argv
}

/// `wall_ns cpu_ns hits` -> CPU nanoseconds per hit.
fn per_hit(report: &str) -> f64 {
    let words: Vec<f64> = report
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    words[1] / words[2]
}

/// `wall_ns cpu_ns hits` -> wall-clock nanoseconds of the loop.
fn wall_ns(report: &str) -> f64 {
    report.split_whitespace().next().unwrap().parse().unwrap()
}

/// The hits a firing program's report says it fired.
fn fired(report: &str) -> u64 {
    report.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The firing mode of this binary: `--fire THREADS HITS [--report FILE]`.
fn fire(threads: usize, hits: u64) {
    let args: Vec<String> = std::env::args().collect();
    let report = args
        .iter()
        .position(|a| a == "--report")
        .map(|i| args[i + 1].clone());
    let start = Instant::now();
    let cpu_ns: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let before = thread_cpu_ns();
                    for i in 0..hits {
                        usdt_runtime::probe!(bench, hit, std::hint::black_box(i));
                    }
                    thread_cpu_ns() - before
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let text = format!(
        "{} {cpu_ns} {}\n",
        start.elapsed().as_nanos(),
        hits * threads as u64
    );
    match report {
        Some(path) => std::fs::write(path, text).unwrap(),
        None => print!("{text}"),
    }
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The same loop in C with `<sys/sdt.h>`.
const C_TARGET: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/sdt.h>

#ifdef DEPTH
/* Built with -DDEPTH=N (and frame pointers): the probe fires N calls
 * below main, at the end of a chain of N + 1 frames of descend. */
__attribute__((noipa)) static uint64_t descend(int depth, uint64_t i)
{
	if (depth == 0) {
		STAP_PROBE1(bench, hit, i);
		return i;
	}
	uint64_t r = descend(depth - 1, i);
	/* Keeps the call a call: no tail call, no loop made of the
	 * recursion. */
	__asm__ __volatile__("" : "+r"(r));
	return r + 1;
}
#define FIRE(i) descend(DEPTH, i)
#else
#define FIRE(i) STAP_PROBE1(bench, hit, i)
#endif

int main(int argc, char **argv)
{
	uint64_t hits = strtoull(argv[1], NULL, 10);
	struct timespec a, b, ca, cb;
	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
	for (uint64_t i = 0; i < hits; i++) {
		__asm__ __volatile__("" : : "r"(i));
		FIRE(i);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
	FILE *out = stdout;
	if (argc > 3 && strcmp(argv[2], "--report") == 0)
		out = fopen(argv[3], "w");
	fprintf(out, "%lld %lld %llu\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
		(long long)(cb.tv_sec - ca.tv_sec) * 1000000000LL + (cb.tv_nsec - ca.tv_nsec),
		(unsigned long long)hits);
	return 0;
}
"#;

/// Builds [`C_TARGET`] at -O2 with `flags` into `dir` as `name`.
fn build_c_target(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let source = dir.join("c_target.c");
    std::fs::write(&source, C_TARGET).unwrap();
    let program = dir.join(name);
    let status = Command::new("cc")
        .arg("-O2")
        .args(flags)
        .arg(&source)
        .arg("-o")
        .arg(&program)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed");
    program
}

/// A shared library with `GENERATED_SITES` probe sites (100 functions of
/// 100 sites, two arguments each, one probe per function).
fn build_generated_library(dir: &Path) -> PathBuf {
    let mut source = String::from("#include <sys/sdt.h>\n");
    for f in 0..GENERATED_SITES / 100 {
        source.push_str(&format!("void generated_{f}(long x) {{\n"));
        for s in 0..100 {
            source.push_str(&format!("\tSTAP_PROBE2(generated, probe_{f}, x, {s});\n"));
        }
        source.push_str("}\n");
    }
    let path = dir.join("generated.c");
    std::fs::write(&path, source).unwrap();
    let library = dir.join("libgenerated.so");
    let status = Command::new("cc")
        .args(["-O1", "-shared", "-fPIC"])
        .arg(&path)
        .arg("-o")
        .arg(&library)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed");
    library
}

/// The library with the most probe sites among well-known places.
fn largest_probe_library() -> Option<PathBuf> {
    let mut best: Option<(usize, PathBuf)> = None;
    let roots = [
        "/usr/lib/jvm",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
    ];
    let mut stack: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.to_string_lossy().contains(".so") {
                let sites = usdt_reader::ElfFile::open(&path)
                    .and_then(|f| f.probes())
                    .map_or(0, |p| p.len());
                if sites > best.as_ref().map_or(0, |b| b.0) {
                    best = Some((sites, path));
                }
            }
        }
    }
    best.map(|(_, path)| path)
}

/// Attaches to every site of `library` (system-wide) and detaches,
/// printing the times.
fn attach_row(library: &Path, perf_event_links: bool) {
    let (sites, (attach, detach)) = attach_files(&[library.to_path_buf()], perf_event_links);
    let links = if perf_event_links {
        "perf event per site"
    } else {
        "uprobe_multi"
    };
    println!(
        "| {} | {sites} | {links} | {attach:.0} | {detach:.0} |",
        library.display(),
    );
}

/// Attaches to every site of `files` (system-wide) and detaches; returns
/// the sites and the milliseconds each took.
fn attach_files(files: &[PathBuf], perf_event_links: bool) -> (usize, (f64, f64)) {
    let mut config = TraceConfig::new();
    for file in files {
        config = config.probe(&format!("{}:*:*", file.display())).unwrap();
    }
    config.perf_event_links = perf_event_links;
    let start = Instant::now();
    let mut tracer = Tracer::attach(&config).unwrap();
    let attach = start.elapsed();
    let sites = tracer.attached_sites();
    let start = Instant::now();
    tracer.detach();
    let detach = start.elapsed();
    (
        sites,
        (attach.as_secs_f64() * 1e3, detach.as_secs_f64() * 1e3),
    )
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
