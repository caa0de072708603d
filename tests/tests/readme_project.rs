//! The README's "Use it in your project" section, followed as a new user
//! follows it: a fresh application crate outside the workspace, made of the
//! section's `Cargo.toml`, `src/main.rs` and `tests/probes.rs` verbatim,
//! beside a checkout (`../usdt-sdk`, here a link to this one); built, its
//! probes listed with the `usdt` command, its snapshot test run both ways
//! (the binary-crate recipe records its probes; `current_exe()` in its test
//! binary, which has none, is an error naming the fix), and traced with
//! `usdt trace -c`.
//!
//! The application's cargo runs share one target directory across runs of
//! this test and use the local registry cache only (`--offline`).

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use usdt_interop_tests::cli::*;
use usdt_interop_tests::trace::*;
use usdt_interop_tests::{require_bpf, target_dir};

/// The checkout: the workspace this test belongs to.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

/// The fenced code blocks of `text` as (info string, body), in order, each
/// with the paragraph before it.
fn blocks(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("\n```") {
        let before = rest[..open].trim_end();
        let paragraph = before[before.rfind("\n\n").map_or(0, |i| i + 2)..].to_owned();
        let after = &rest[open + 4..];
        let info_end = after.find('\n').expect("a code block's first line");
        let info = after[..info_end].to_owned();
        let body = &after[info_end + 1..];
        let close = body.find("```").expect("a closed code block");
        found.push((paragraph, info, body[..close].to_owned()));
        rest = &body[close + 3..];
    }
    found
}

/// The application's files: each block introduced by a paragraph that
/// starts with the file's path in backquotes and ends with `:`.
fn application_files(section: &str) -> Vec<(String, String)> {
    blocks(section)
        .into_iter()
        .filter_map(|(paragraph, _, body)| {
            let path = paragraph.strip_prefix('`')?.split('`').next()?.to_owned();
            (paragraph.ends_with(':') && (path.contains('.') || path.contains('/')))
                .then_some((path, body))
        })
        .collect()
}

/// The `repository` of the workspace's Cargo.toml.
fn repository() -> String {
    let manifest = std::fs::read_to_string(checkout().join("Cargo.toml")).expect("Cargo.toml");
    let line = manifest
        .lines()
        .find(|line| line.starts_with("repository = "))
        .expect("a repository in the workspace's Cargo.toml");
    line["repository = ".len()..].trim_matches('"').to_owned()
}

/// `cargo ARGS` in `dir` as the application's user runs it, with the
/// shared target directory and without this test's own cargo environment.
fn cargo(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") || key.starts_with("INSTA_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir().join("readme-project"))
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"))
}

/// `cargo ARGS` as [`cargo`] runs it, which must succeed.
fn cargo_ok(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let output = cargo(dir, args, envs);
    assert!(
        output.status.success(),
        "cargo {args:?}:\n{}",
        text(&output)
    );
    output
}

/// Standard output then standard error, as text.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_dependency_lines_name_real_crates() {
    let section = section_of("## Use it in your project");
    let repository = repository();
    for krate in ["usdt-runtime", "usdt-reader", "usdt-tracer"] {
        let git = format!("{krate} = {{ git = \"{repository}\" }}");
        let path = format!("{krate} = {{ path = \"../usdt-sdk/{krate}\" }}");
        assert!(section.contains(&git), "no `{git}` in the section");
        assert!(section.contains(&path), "no `{path}` in the section");
        let manifest = std::fs::read_to_string(checkout().join(krate).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{krate}/Cargo.toml: {e}"));
        assert!(manifest.contains(&format!("name = \"{krate}\"")), "{krate}");
    }
    assert!(section.contains(&format!("cargo install --git {repository} usdt-cli")));
    assert!(section.contains("cargo install --path ../usdt-sdk/usdt-cli"));
    let cli = std::fs::read_to_string(checkout().join("usdt-cli/Cargo.toml")).expect("usdt-cli");
    assert!(
        cli.contains("name = \"usdt\""),
        "usdt-cli builds the usdt binary"
    );
}

#[test]
fn a_new_application_follows_the_readme() {
    let section = section_of("## Use it in your project");
    let files = application_files(&section);
    let names: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(names, ["Cargo.toml", "src/main.rs", "tests/probes.rs"]);

    // A directory outside the workspace, holding the application and a
    // checkout beside it.
    let root = std::env::temp_dir().join(format!("usdt-readme-project-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let app = root.join("my-app");
    std::fs::create_dir_all(&app).expect("create the application's directory");
    std::os::unix::fs::symlink(checkout(), root.join("usdt-sdk")).expect("link the checkout");
    for (path, body) in &files {
        let path = app.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
    }

    let build = cargo_ok(
        &app,
        &["build", "--message-format", "json-render-diagnostics"],
        &[],
    );
    let program = String::from_utf8_lossy(&build.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "my-app")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the my-app executable");

    // `usdt list`: the three probes, the typed ones with their signatures.
    let list = run_usdt(&["list", program.to_str().unwrap()]);
    let listing = assert_success(&list);
    let listing = format!("{}{listing}", String::from_utf8_lossy(&list.stdout));
    for (name, args) in [
        ("job_start", "(id: u64, name: &str)"),
        ("tick", "()"),
        ("job_done", "(arg0: u64, arg1: u32)"),
    ] {
        let line = listing
            .lines()
            .find(|line| line.split_whitespace().nth(2) == Some(name))
            .unwrap_or_else(|| panic!("no app:{name} in\n{listing}"));
        assert!(line.ends_with(args), "app:{name} shows `{line}`");
    }

    // The binary-crate recipe records the program's probes.
    let snapshots = app.join("tests/snapshots");
    cargo_ok(
        &app,
        &["test", "--test", "probes"],
        &[("INSTA_UPDATE", "always")],
    );
    let snapshot = std::fs::read_to_string(snapshots.join("probes__probe_metadata.snap"))
        .expect("the snapshot was written");
    for name in ["job_start", "job_done", "tick"] {
        assert!(snapshot.contains(&format!("name: {name}")), "{snapshot}");
    }
    // Kept: the next run compares against it and passes.
    cargo_ok(
        &app,
        &["test", "--test", "probes"],
        &[("INSTA_UPDATE", "no")],
    );

    // The library recipe, in this binary crate's test binary, which has no
    // probes: an error that names the binary-crate recipe, no snapshot.
    let library_recipe = blocks(&section_of("### From Rust"))
        .into_iter()
        .map(|(_, _, body)| body)
        .find(|body| body.contains("current_exe()"))
        .expect("the README's current_exe() recipe");
    std::fs::write(app.join("tests/library_recipe.rs"), library_recipe).unwrap();
    let refused = cargo(
        &app,
        &["test", "--test", "library_recipe"],
        &[("INSTA_UPDATE", "always")],
    );
    let output = text(&refused);
    assert!(!refused.status.success(), "current_exe() passed:\n{output}");
    assert!(
        output.contains("this executable has no USDT probes"),
        "{output}"
    );
    assert!(output.contains("CARGO_BIN_EXE_<name>"), "{output}");
    assert!(
        !snapshots
            .join("library_recipe__probe_metadata.snap")
            .exists(),
        "an empty snapshot was recorded"
    );

    // `usdt trace -c`: every hit with its values.
    if require_bpf("a_new_application_follows_the_readme") {
        let traced = run_usdt(&["trace", "--json", "-c", program.to_str().unwrap(), "app:*"]);
        assert_success(&traced);
        let events = json_events(&traced);
        assert_eq!(events.len(), 9, "{events:#?}");
        for (i, id) in (1..=3u64).enumerate() {
            let name = format!("job-{id}");
            assert_eq!(
                named(&events, "app:job_start")[i]["args"],
                json!([id, name])
            );
            assert_eq!(named(&events, "app:job_done")[i]["args"], json!([id, 50]));
            assert_eq!(named(&events, "app:tick")[i]["args"], json!([]));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The README section that starts with the heading line `heading`.
fn section_of(heading: &str) -> String {
    let readme = std::fs::read_to_string(checkout().join("README.md")).expect("README.md");
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("a `{heading}` section"));
    let rest = &readme[start + 1..];
    rest[..rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3)].to_owned()
}
