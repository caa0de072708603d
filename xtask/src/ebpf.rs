//! `cargo xtask build-ebpf [--check]`: builds the committed BPF objects and
//! copies them into place: the tracer's program (`tracer-ebpf`) to
//! `usdt-tracer/bpf/usdt-tracer.bpf.o`, the object the `usdt` binary embeds,
//! and the custom-tracer example's (`examples/custom-tracer/custom-tracer-ebpf`,
//! built on `usdt-aya-ebpf`) to `examples/custom-tracer/custom-tracer/bpf/`.
//!
//! The recipe: the `nightly` toolchain with `rust-src` (to build `core` for
//! `bpfel-unknown-none`) and bpf-linker 0.13.0 built against the nightly's
//! own libLLVM. Missing pieces are installed first: `rust-src` through
//! rustup, bpf-linker from crates.io into `~/.cache/usdt-sdk`.
//!
//! With `--check` each object is rebuilt in a temporary directory and
//! compared with the committed copy; a difference is an error. The build is
//! reproducible: the object carries no debug information and no paths.

use crate::deps::{self, NIGHTLY as TOOLCHAIN};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bpf-linker release the recipe uses.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The BPF target.
const TARGET: &str = "bpfel-unknown-none";
/// The committed object of the tracer, relative to the workspace root.
pub(crate) const OBJECT: &str = "usdt-tracer/bpf/usdt-tracer.bpf.o";

/// A BPF crate whose object is committed.
struct BpfCrate {
    /// The crate's directory, relative to the workspace root.
    dir: &'static str,
    /// Its binary target.
    bin: &'static str,
    /// The committed object, relative to the workspace root.
    object: &'static str,
}

/// Every BPF crate whose object is committed.
const CRATES: [BpfCrate; 2] = [
    BpfCrate {
        dir: "tracer-ebpf",
        bin: "usdt-tracer",
        object: OBJECT,
    },
    BpfCrate {
        dir: "examples/custom-tracer/custom-tracer-ebpf",
        bin: "custom-tracer",
        object: "examples/custom-tracer/custom-tracer/bpf/custom-tracer.bpf.o",
    },
];

/// Runs `cargo xtask build-ebpf [--check]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            other => return Err(format!("build-ebpf: unknown option `{other}`")),
        }
    }
    let root = deps::workspace_root();
    let linker_dir = ensure_toolchain()?;
    for bpf in &CRATES {
        let committed = root.join(bpf.object);
        let object = bpf.object;
        if check {
            let temp = TempDir::new("usdt-ebpf-check")?;
            let built = build(&root, bpf, &linker_dir, &temp.path)?;
            let fresh = std::fs::read(&built)
                .map_err(|e| format!("cannot read {}: {e}", built.display()))?;
            let old = std::fs::read(&committed)
                .map_err(|e| format!("cannot read {object}: {e}; run `cargo xtask build-ebpf`"))?;
            if fresh != old {
                return Err(format!(
                    "{object} is stale: it differs from a fresh build of {}; run `cargo xtask build-ebpf` and commit it",
                    bpf.dir
                ));
            }
            eprintln!("xtask: {object} is up to date");
        } else {
            let built = build(&root, bpf, &linker_dir, &root.join(bpf.dir).join("target"))?;
            if let Some(parent) = committed.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::copy(&built, &committed).map_err(|e| format!("cannot write {object}: {e}"))?;
            eprintln!("xtask: wrote {object}");
        }
    }
    Ok(())
}

/// Makes sure the nightly toolchain has `rust-src` and that bpf-linker is
/// installed; returns the directory holding the `bpf-linker` binary.
fn ensure_toolchain() -> Result<PathBuf, String> {
    deps::nightly_rust_src()?;

    let root = deps::cache_dir()?.join(format!("bpf-linker-{BPF_LINKER_VERSION}"));
    let bin = root.join("bin");
    if bin.join("bpf-linker").is_file() {
        return Ok(bin);
    }
    install_bpf_linker(&root)?;
    Ok(bin)
}

/// Builds bpf-linker against the nightly's libLLVM and installs it under
/// `root`.
fn install_bpf_linker(root: &Path) -> Result<(), String> {
    let sysroot = deps::output(
        Command::new("rustc")
            .arg(format!("+{TOOLCHAIN}"))
            .args(["--print", "sysroot"]),
    )?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let entries = std::fs::read_dir(&lib_dir)
        .map_err(|e| format!("cannot read {}: {e}", lib_dir.display()))?;
    let libllvm = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| {
            name.starts_with("libLLVM.so.")
                || (name.starts_with("libLLVM-") && name.ends_with(".so"))
        })
        .ok_or_else(|| format!("no libLLVM shared library in {}", lib_dir.display()))?;
    // libLLVM.so.22.1-rust-1.97.0-nightly -> 22
    let major: String = libllvm
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if major.is_empty() {
        return Err(format!("cannot tell the LLVM version of {libllvm}"));
    }

    // LLVM_PREFIX/lib must hold the library under both names bpf-linker's
    // build looks for.
    let prefix = TempDir::new("usdt-llvm-prefix")?;
    let prefix_lib = prefix.path.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .map_err(|e| format!("cannot create {}: {e}", prefix_lib.display()))?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        std::os::unix::fs::symlink(lib_dir.join(&libllvm), prefix_lib.join(name))
            .map_err(|e| format!("cannot link {name}: {e}"))?;
    }
    eprintln!(
        "xtask: installing bpf-linker {BPF_LINKER_VERSION} (LLVM {major}) into {}",
        root.display()
    );
    deps::run(
        Command::new("cargo")
            .arg(format!("+{TOOLCHAIN}"))
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .arg("--root")
            .arg(root)
            .env("LLVM_PREFIX", &prefix.path)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    )
}

/// Builds `bpf` into `target_dir`; returns the object's path.
fn build(
    root: &Path,
    bpf: &BpfCrate,
    linker_dir: &Path,
    target_dir: &Path,
) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![linker_dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| format!("bad PATH: {e}"))?;
    let crate_dir = root.join(bpf.dir);
    deps::run(
        Command::new("cargo")
            .arg(format!("+{TOOLCHAIN}"))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                TARGET,
                "-Z",
                "build-std=core",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(&crate_dir)
            .env("PATH", path)
            // Nothing from the calling environment may change the object.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("RUSTDOC"),
    )?;
    let object = target_dir.join(TARGET).join("release").join(bpf.bin);
    if !object.is_file() {
        return Err(format!("the build did not produce {}", object.display()));
    }
    Ok(object)
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
