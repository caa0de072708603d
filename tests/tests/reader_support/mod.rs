//! Shared by the `reader_*` and `list_*` tests: building the C fixtures
//! (sdt_args.c, sdt_lib.c, sdt_lib_main.c, sdt_bare.c) for every target this
//! machine can compile for, reading `readelf -n`, and finding the `usdt`
//! binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use usdt_interop_tests::{fixtures_dir, run, target_dir};

/// One built fixture: a file with probes and how to check it.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A short unique name: `x86_64_args_O2`, `aarch64_be_bare`, ...
    pub name: String,
    /// The built file.
    pub path: PathBuf,
    /// The readelf that understands it.
    pub readelf: &'static str,
    /// The probe site instruction at each probe's file offset.
    pub nop: &'static [u8],
    /// Whether it was stripped (`strip --strip-all`).
    pub stripped: bool,
}

/// The x86 one-byte `nop` that sys/sdt.h emits.
pub const X86_NOP: &[u8] = &[0x90];
/// The aarch64 `nop` (0xd503201f), little-endian.
pub const AARCH64_NOP_LE: &[u8] = &[0x1f, 0x20, 0x03, 0xd5];
/// The aarch64 `nop`, big-endian data (instructions stay little-endian on
/// aarch64_be, so the same bytes).
pub const AARCH64_NOP_BE: &[u8] = &[0x1f, 0x20, 0x03, 0xd5];

/// The riscv64 compressed `c.nop` that `nop` assembles to with the C
/// extension (rv64gc), little-endian.
pub const RISCV_NOP: &[u8] = &[0x01, 0x00];
/// The s390x `nop` (`bc 0,0`), big-endian.
pub const S390X_NOP: &[u8] = &[0x47, 0x00, 0x00, 0x00];
/// The powerpc `nop` (`ori 0,0,0`, 0x60000000), little-endian.
pub const PPC64LE_NOP: &[u8] = &[0x00, 0x00, 0x00, 0x60];
/// The Thumb-2 `nop` (0xbf00) that armhf code (Thumb by default) has.
pub const THUMB_NOP: &[u8] = &[0x00, 0xbf];

/// A cross target: fixture name prefix, compiler, readelf, nop, flags.
pub type CrossTarget = (
    &'static str,
    &'static str,
    &'static str,
    &'static [u8],
    &'static [&'static str],
);

/// The cross targets of [`cross_fixtures`]: fixture name prefix, compiler,
/// readelf, the probe site's nop, and extra flags. i386 is linked static
/// and without PIE so that it runs here (under gdb) and addresses globals
/// absolutely (`g_i32`, `g_array32(,%eax,4)`).
pub const CROSS_TARGETS: [CrossTarget; 5] = [
    (
        "riscv64",
        "riscv64-linux-gnu-gcc",
        "riscv64-linux-gnu-readelf",
        RISCV_NOP,
        &[],
    ),
    (
        "s390x",
        "s390x-linux-gnu-gcc",
        "s390x-linux-gnu-readelf",
        S390X_NOP,
        &[],
    ),
    (
        "ppc64le",
        "powerpc64le-linux-gnu-gcc",
        "powerpc64le-linux-gnu-readelf",
        PPC64LE_NOP,
        &[],
    ),
    (
        "arm",
        "arm-linux-gnueabihf-gcc",
        "arm-linux-gnueabihf-readelf",
        THUMB_NOP,
        &[],
    ),
    (
        "i386",
        "i686-linux-gnu-gcc",
        "i686-linux-gnu-readelf",
        X86_NOP,
        &["-static", "-no-pie", "-fno-pie"],
    ),
];

/// Whether every cross compiler and readelf of [`CROSS_TARGETS`] is
/// installed (each missing one is reported through `require_tool`).
pub fn cross_tools_present(test: &str) -> bool {
    CROSS_TARGETS
        .iter()
        .flat_map(|(_, compiler, readelf, _, _)| [*compiler, *readelf])
        // Every tool is checked, so each missing one is reported.
        .filter(|tool| !usdt_interop_tests::require_tool(test, tool))
        .count()
        == 0
}

/// Builds sdt_args at -O0 and -O2 (`{arch}_args_{level}`) and the shared
/// library sdt_lib at -O2 (`{arch}_lib_O2`) for every cross target.
pub fn build_cross_fixtures(dir: &Path) -> Vec<Fixture> {
    let include = sdt_include_dir(dir);
    let inc = format!("-I{}", include.display());
    let src = |name: &str| fixtures_dir().join(name);
    let mut fixtures = Vec::new();
    for (arch, compiler, readelf, nop, extra) in CROSS_TARGETS {
        for opt in ["-O0", "-O2"] {
            let name = format!("{arch}_args_{}", &opt[1..]);
            let path = dir.join(&name);
            let mut flags = vec![opt, inc.as_str()];
            flags.extend_from_slice(extra);
            cc(compiler, &flags, &[&src("sdt_args.c")], &path);
            fixtures.push(Fixture {
                name,
                path,
                readelf,
                nop,
                stripped: false,
            });
        }
        let name = format!("{arch}_lib_O2");
        let path = dir.join(format!("lib{name}.so"));
        cc(
            compiler,
            &["-O2", &inc, "-shared", "-fPIC"],
            &[&src("sdt_lib.c")],
            &path,
        );
        fixtures.push(Fixture {
            name,
            path,
            readelf,
            nop,
            stripped: false,
        });
    }
    fixtures
}

/// The cross fixtures, built once per test binary into a scratch
/// directory of their own (`{test}_cross`).
pub fn cross_fixtures(test: &str) -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        build_cross_fixtures(&usdt_interop_tests::scratch_dir(&format!("{test}_cross")))
    })
}

/// A directory holding `sys/sdt.h` and `sys/sdt-config.h` alone, for cross
/// compilers (the header is installed only in the host's multiarch
/// include directory).
fn sdt_include_dir(out: &Path) -> PathBuf {
    let candidates = [
        "/usr/include/sys",
        "/usr/include/x86_64-linux-gnu/sys",
        "/usr/include/aarch64-linux-gnu/sys",
    ];
    let source = candidates
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("sdt.h").is_file())
        .expect("sys/sdt.h (systemtap-sdt-dev) is installed");
    let include = out.join("include");
    std::fs::create_dir_all(include.join("sys")).unwrap();
    for header in ["sdt.h", "sdt-config.h"] {
        std::fs::copy(source.join(header), include.join("sys").join(header)).unwrap();
    }
    include
}

fn cc(compiler: &str, flags: &[&str], inputs: &[&Path], out: &Path) {
    run(Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .args(flags)
        .args(inputs)
        .arg("-o")
        .arg(out));
}

/// Builds every fixture variant into `dir`: sdt_args at -O0 and -O2 (and
/// for x86-64 without PIE too), the
/// shared library at -O0 and -O2 and its program, stripped copies, the
/// same for aarch64, and sdt_bare for i386 (PIE and not), aarch64
/// big-endian, and aarch64 ILP32 (both byte orders). Needs gcc and
/// gcc-aarch64-linux-gnu.
pub fn build_fixtures(dir: &Path) -> Vec<Fixture> {
    let include = sdt_include_dir(dir);
    let inc = format!("-I{}", include.display());
    let src = |name: &str| fixtures_dir().join(name);
    let mut fixtures = Vec::new();
    let mut add = |name: &str, path: PathBuf, readelf, nop, stripped| {
        fixtures.push(Fixture {
            name: name.to_string(),
            path,
            readelf,
            nop,
            stripped,
        })
    };

    for (arch, compiler, readelf, strip, nop) in [
        ("x86_64", "gcc", "readelf", "strip", X86_NOP),
        (
            "aarch64",
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-readelf",
            "aarch64-linux-gnu-strip",
            AARCH64_NOP_LE,
        ),
    ] {
        for opt in ["-O0", "-O2"] {
            let level = &opt[1..];
            let args = dir.join(format!("{arch}_args_{level}"));
            cc(compiler, &[opt, &inc], &[&src("sdt_args.c")], &args);
            add(
                &format!("{arch}_args_{level}"),
                args.clone(),
                readelf,
                nop,
                false,
            );

            let lib_dir = dir.join(format!("{arch}_lib_{level}"));
            std::fs::create_dir_all(&lib_dir).unwrap();
            let lib = lib_dir.join("libsdt_lib.so");
            cc(
                compiler,
                &[opt, &inc, "-shared", "-fPIC"],
                &[&src("sdt_lib.c")],
                &lib,
            );
            add(
                &format!("{arch}_lib_{level}"),
                lib.clone(),
                readelf,
                nop,
                false,
            );
            let main = lib_dir.join("sdt_lib_main");
            let lib_flag = format!("-L{}", lib_dir.display());
            // The library comes after the source so the linker resolves it.
            run(Command::new(compiler)
                .args(["-Wall", "-Wextra", "-Werror", "-g", opt, &inc])
                .arg(src("sdt_lib_main.c"))
                .arg(&lib_flag)
                .args(["-lsdt_lib", "-Wl,-rpath,$ORIGIN", "-o"])
                .arg(&main));
            add(
                &format!("{arch}_lib_main_{level}"),
                main,
                readelf,
                nop,
                false,
            );

            if arch == "x86_64" {
                // Without PIE, globals are absolute: `g_i32(%rip)` at -O2
                // still, but an indexed global has no base register
                // (`g_array32(,%rax,4)`).
                let name = format!("{arch}_args_nopie_{level}");
                let nopie = dir.join(&name);
                cc(
                    compiler,
                    &[opt, &inc, "-no-pie", "-fno-pie"],
                    &[&src("sdt_args.c")],
                    &nopie,
                );
                add(&name, nopie, readelf, nop, false);
            }
            if level == "O2" && arch == "aarch64" {
                // Without section anchors, globals are addressed through
                // their own symbols (`[x0, #:lo12:g_i32]`) rather than
                // assembler-local anchors (`[x0, #:lo12:.LANCHOR0]`).
                let flags = [opt, &inc, "-fno-section-anchors"];
                let args = dir.join(format!("{arch}_args_{level}_noanchors"));
                cc(compiler, &flags, &[&src("sdt_args.c")], &args);
                add(
                    &format!("{arch}_args_{level}_noanchors"),
                    args,
                    readelf,
                    nop,
                    false,
                );
                let lib = dir.join(format!("{arch}_libsdt_lib_{level}_noanchors.so"));
                cc(
                    compiler,
                    &[opt, &inc, "-fno-section-anchors", "-shared", "-fPIC"],
                    &[&src("sdt_lib.c")],
                    &lib,
                );
                add(
                    &format!("{arch}_lib_{level}_noanchors"),
                    lib,
                    readelf,
                    nop,
                    false,
                );
            }
            if level == "O2" {
                for (name, file) in [("args", &args), ("lib", &lib)] {
                    let stripped = dir.join(format!("{arch}_{name}_{level}_stripped"));
                    run(Command::new(strip)
                        .arg("--strip-all")
                        .arg(file)
                        .arg("-o")
                        .arg(&stripped));
                    add(
                        &format!("{arch}_{name}_{level}_stripped"),
                        stripped,
                        readelf,
                        nop,
                        true,
                    );
                }
            }
        }
    }

    let bare = src("sdt_bare.c");
    let bare_flags = ["-ffreestanding", "-nostdlib", "-static", "-O2"];
    for (name, compiler, extra, readelf, nop) in [
        ("i386_bare_pie", "gcc", &["-m32"][..], "readelf", X86_NOP),
        (
            "i386_bare_nopie",
            "gcc",
            &["-m32", "-fno-pie", "-no-pie"][..],
            "readelf",
            X86_NOP,
        ),
        (
            "aarch64_be_bare",
            "aarch64-linux-gnu-gcc",
            &["-mbig-endian"][..],
            "aarch64-linux-gnu-readelf",
            AARCH64_NOP_BE,
        ),
        (
            "aarch64_ilp32_be_bare",
            "aarch64-linux-gnu-gcc",
            &["-mabi=ilp32", "-mbig-endian"][..],
            "aarch64-linux-gnu-readelf",
            AARCH64_NOP_BE,
        ),
        (
            "aarch64_ilp32_bare",
            "aarch64-linux-gnu-gcc",
            &["-mabi=ilp32"][..],
            "aarch64-linux-gnu-readelf",
            AARCH64_NOP_LE,
        ),
    ] {
        let out = dir.join(name);
        let mut flags: Vec<&str> = bare_flags.to_vec();
        flags.extend_from_slice(extra);
        flags.push(&inc);
        cc(compiler, &flags, &[&bare], &out);
        add(name, out, readelf, nop, false);
    }
    fixtures
}

/// The fixtures, built once per test binary into `test`'s scratch
/// directory.
pub fn fixtures(test: &str) -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| build_fixtures(&usdt_interop_tests::scratch_dir(test)))
}

/// The fixture called `name`.
pub fn fixture<'a>(fixtures: &'a [Fixture], name: &str) -> &'a Fixture {
    fixtures
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// One stapsdt note as `readelf -n` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadelfNote {
    pub provider: String,
    pub name: String,
    pub location: u64,
    pub base: u64,
    pub semaphore: u64,
    pub args: String,
}

/// The stapsdt notes of `path`, by running `readelf` (or a cross readelf)
/// with `-n` and reading its `Provider:`, `Name:`, `Location:` and
/// `Arguments:` lines.
pub fn readelf_notes(readelf: &str, path: &Path) -> Vec<ReadelfNote> {
    let text = run(Command::new(readelf).arg("-n").arg("-W").arg(path));
    parse_readelf_notes(&text)
}

/// Parses the stapsdt part of `readelf -n` output.
pub fn parse_readelf_notes(text: &str) -> Vec<ReadelfNote> {
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
    let mut notes = Vec::new();
    let mut current: Option<ReadelfNote> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        // With -W the provider shares the line of the note's header.
        if let Some(at) = line.find("Provider: ") {
            let provider = &line[at + "Provider: ".len()..];
            current = Some(ReadelfNote {
                provider: provider.to_string(),
                name: String::new(),
                location: 0,
                base: 0,
                semaphore: 0,
                args: String::new(),
            });
        } else if let (Some(name), Some(note)) = (trimmed.strip_prefix("Name: "), current.as_mut())
        {
            note.name = name.to_string();
        } else if let (Some(rest), Some(note)) =
            (trimmed.strip_prefix("Location: "), current.as_mut())
        {
            // `Location: 0x..., Base: 0x..., Semaphore: 0x...`
            let fields: Vec<&str> = rest.split(", ").collect();
            note.location = hex(fields[0]);
            note.base = hex(fields[1].trim_start_matches("Base: "));
            note.semaphore = hex(fields[2].trim_start_matches("Semaphore: "));
        } else if trimmed.starts_with("Arguments:") {
            let mut note = current.take().expect("Arguments: after Provider:");
            note.args = trimmed
                .strip_prefix("Arguments:")
                .unwrap()
                .trim_start_matches(' ')
                .to_string();
            notes.push(note);
        }
    }
    notes
}

/// The `usdt` binary, built from the current sources.
///
/// `cargo test` does not build other packages' binaries, and a nested
/// cargo on the same target directory would wait for the lock the outer
/// one holds, so this builds `usdt` into a target directory of its own
/// (cargo's own freshness check makes later calls quick).
pub fn usdt_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("USDT_BIN") {
            return PathBuf::from(path);
        }
        let target = target_dir().join("usdt-cli-build");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        run(Command::new(env!("CARGO"))
            .args([
                "build", "--quiet", "--locked", "-p", "usdt-cli", "--bin", "usdt",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR"));
        target.join("debug").join("usdt")
    })
}

/// The file offset of `section` in `path`, from `readelf -SW`.
pub fn section_offset(readelf: &str, path: &Path, section: &str) -> usize {
    let text = run(Command::new(readelf).arg("-SW").arg(path));
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{section} ")))
        .unwrap_or_else(|| panic!("{}: no section {section}", path.display()));
    let rest = &line[line.find(section).unwrap()..];
    // NAME TYPE ADDRESS OFFSET SIZE ...
    let fields: Vec<&str> = rest.split_whitespace().collect();
    usize::from_str_radix(fields[3], 16).unwrap()
}

/// The bytes of `f` (a little-endian 64-bit fixture built from sdt_args.c)
/// with two bad notes: `sdt_args:stack`'s provider made non-UTF-8, and
/// `sdt_args:guarded`'s semaphore moved outside every segment. The other
/// notes are intact.
pub fn with_two_bad_notes(f: &Fixture) -> Vec<u8> {
    let file = usdt_reader::ElfFile::open(&f.path).unwrap();
    let section = section_offset(f.readelf, &f.path, ".note.stapsdt");
    let mut bytes = std::fs::read(&f.path).unwrap();
    for note in file.notes().unwrap() {
        // namesz/descsz/type (12) + "stapsdt\0" (8), then pc, base,
        // semaphore (8 bytes each) and the provider.
        let desc = section + note.offset + 12 + 8;
        match note.name {
            "stack" => bytes[desc + 24] = 0xff,
            "guarded" => bytes[desc + 16..desc + 24].copy_from_slice(&0xdead_0000u64.to_le_bytes()),
            _ => {}
        }
    }
    bytes
}
