//! `cargo xtask bench-build [ROUNDS] [--against REV]`: what depending on
//! usdt-runtime costs an application's build. Each round makes fresh
//! application crates (`cargo new`) in a temporary directory, with a
//! `usdt-runtime` path dependency on this checkout, and times a clean debug
//! build of each (`cargo build --offline`, from the local registry cache,
//! into its own target directory): default features and one `probe!`; the
//! `serde` feature and a `#[json]` argument; the same with serde's `derive`
//! in the application too. With `--against REV`, the same builds against
//! that commit (exported with `git archive`) run interleaved with this
//! checkout's, so both see the same machine.
//!
//! It prints, per checkout and features, the median wall-clock time, the
//! median CPU time (user + system of cargo and everything it ran) and the
//! crates compiled. On a busy machine the wall-clock time mostly measures
//! waiting for a CPU; the CPU time does not.

use crate::bench_reader::{children_cpu_ticks, clock_ticks_per_second};
use crate::deps;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask bench-build [ROUNDS] [--against REV]";

/// What the application asks for.
#[derive(Clone, Copy, PartialEq)]
enum Config {
    /// usdt-runtime with its default features, one `probe!`.
    Default,
    /// usdt-runtime with `serde`.
    Serde,
    /// usdt-runtime with `serde`, and serde's `derive` for a struct of its
    /// own passed as `#[json]`.
    SerdeDerive,
}

/// One build: wall-clock and CPU seconds, and the crates cargo compiled.
struct Build {
    wall: f64,
    cpu: f64,
    crates: Vec<String>,
}

/// Runs the benchmark.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut rounds = 3;
    let mut against = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--against" => against = Some(args.next().ok_or(USAGE)?.clone()),
            n => rounds = n.parse().map_err(|_| format!("bench-build: {USAGE}"))?,
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask lives inside the workspace")?
        .to_path_buf();
    let scratch = std::env::temp_dir().join(format!("usdt-bench-build-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut checkouts = vec![("this checkout".to_string(), root.clone())];
    if let Some(rev) = &against {
        let dir = scratch.join("against");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        deps::run(Command::new("sh").current_dir(&root).args([
            "-c",
            &format!(
                "git archive --format=tar {rev} | tar -x -C '{}'",
                dir.display()
            ),
        ]))?;
        checkouts.push((rev.clone(), dir));
    }
    let configs = [
        ("default features", Config::Default),
        ("features = [\"serde\"]", Config::Serde),
        (
            "`serde`, and the application derives `Serialize`",
            Config::SerdeDerive,
        ),
    ];

    let mut results: Vec<Vec<Build>> = Vec::new();
    results.resize_with(checkouts.len() * configs.len(), Vec::new);
    for round in 0..rounds {
        for (c, (_, config)) in configs.iter().enumerate() {
            for (k, (name, checkout)) in checkouts.iter().enumerate() {
                let app = scratch.join(format!("app-{round}-{c}-{k}"));
                let build = build_app(&app, checkout, *config)?;
                eprintln!(
                    "round {}: {name}, {}: {:.1} s wall, {:.1} s CPU, {} crates",
                    round + 1,
                    configs[c].0,
                    build.wall,
                    build.cpu,
                    build.crates.len()
                );
                let _ = std::fs::remove_dir_all(&app);
                results[c * checkouts.len() + k].push(build);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    println!("rounds: {rounds}, interleaved; clean debug build of a fresh application crate");
    println!("| checkout | usdt-runtime | median wall time | median CPU time | crates compiled |");
    println!("| --- | --- | ---: | ---: | --- |");
    for (c, (features, _)) in configs.iter().enumerate() {
        for (k, (name, _)) in checkouts.iter().enumerate() {
            let builds = &results[c * checkouts.len() + k];
            let median = |f: fn(&Build) -> f64| {
                let mut v: Vec<f64> = builds.iter().map(f).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let crates = &builds[0].crates;
            println!(
                "| {name} | {features} | {:.1} s | {:.1} s | {} ({}) |",
                median(|b| b.wall),
                median(|b| b.cpu),
                crates.len(),
                crates.join(", ")
            );
        }
    }
    Ok(())
}

/// Makes the application crate `app` depending on `checkout`'s
/// usdt-runtime as `config` says and times its clean build.
fn build_app(app: &Path, checkout: &Path, config: Config) -> Result<Build, String> {
    let parent = app.parent().ok_or("bench-build: no parent directory")?;
    let name = app.file_name().ok_or("bench-build: no name")?;
    deps::run(
        Command::new(env!("CARGO"))
            .current_dir(parent)
            .args(["new", "--quiet", "--bin", "--vcs", "none", "--name", "app"])
            .arg(name),
    )?;
    let runtime = checkout.join("usdt-runtime").display().to_string();
    let (dependencies, main) = match config {
        Config::Default => (
            format!("usdt-runtime = {{ path = \"{runtime}\" }}\n"),
            "fn main() {\n    let x = std::hint::black_box(3u32);\n    \
             usdt_runtime::probe!(app, start, x);\n}\n",
        ),
        Config::Serde => (
            format!("usdt-runtime = {{ path = \"{runtime}\", features = [\"serde\"] }}\n"),
            "#[usdt_runtime::provider]\nmod app {\n    pub fn tags(#[json] tags: &[&str]);\n}\n\n\
             fn main() {\n    app::tags(|| [\"a\", \"b\"].as_slice());\n}\n",
        ),
        Config::SerdeDerive => (
            format!(
                "usdt-runtime = {{ path = \"{runtime}\", features = [\"serde\"] }}\n\
                 serde = {{ version = \"1\", features = [\"derive\"] }}\n"
            ),
            "#[derive(serde::Serialize)]\npub struct Order {\n    pub id: u64,\n}\n\n\
             #[usdt_runtime::provider]\nmod app {\n    pub fn order(#[json] order: &Order);\n}\n\n\
             fn main() {\n    app::order(|| Order { id: 1 });\n}\n",
        ),
    };
    let manifest = app.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).map_err(|e| format!("{e}"))?;
    text.push_str(&dependencies);
    std::fs::write(&manifest, text).map_err(|e| format!("{e}"))?;
    std::fs::write(app.join("src/main.rs"), main).map_err(|e| format!("{e}"))?;
    deps::run(Command::new(env!("CARGO")).current_dir(app).args([
        "generate-lockfile",
        "--quiet",
        "--offline",
    ]))?;

    let ticks = children_cpu_ticks()?;
    let start = Instant::now();
    let out = Command::new(env!("CARGO"))
        .current_dir(app)
        .args(["build", "--offline"])
        .env("CARGO_TARGET_DIR", app.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|e| format!("bench-build: cannot run cargo build: {e}"))?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = (children_cpu_ticks()? - ticks) as f64 / clock_ticks_per_second() as f64;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "bench-build: cargo build failed in {}:\n{stderr}",
            app.display()
        ));
    }
    let crates = stderr
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
        .map(|rest| rest.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    Ok(Build { wall, cpu, crates })
}
