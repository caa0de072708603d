//! The C fixtures (sdt_args.c, sdt_lib.c, sdt_lib_main.c, sdt_bare.c)
//! built once per test binary for every target this machine can compile
//! for, each with the readelf that understands it and the nop at its
//! probe sites.

use crate::{Guard, fixtures_dir, run, scratch_dir, sdt_include_dir, wait_for_mapping};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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
const X86_NOP: &[u8] = &[0x90];
/// The aarch64 `nop` (0xd503201f), little-endian.
const AARCH64_NOP_LE: &[u8] = &[0x1f, 0x20, 0x03, 0xd5];
/// The aarch64 `nop`, big-endian data (instructions stay little-endian on
/// aarch64_be, so the same bytes).
const AARCH64_NOP_BE: &[u8] = &[0x1f, 0x20, 0x03, 0xd5];

/// The riscv64 compressed `c.nop` that `nop` assembles to with the C
/// extension (rv64gc), little-endian.
const RISCV_NOP: &[u8] = &[0x01, 0x00];
/// The s390x `nop` (`bc 0,0`), big-endian.
const S390X_NOP: &[u8] = &[0x47, 0x00, 0x00, 0x00];
/// The powerpc `nop` (`ori 0,0,0`, 0x60000000), little-endian.
const PPC64LE_NOP: &[u8] = &[0x00, 0x00, 0x00, 0x60];
/// The Thumb-2 `nop` (0xbf00) that armhf code (Thumb by default) has.
const THUMB_NOP: &[u8] = &[0x00, 0xbf];

/// A cross target: fixture name prefix, compiler, readelf, nop, flags.
type CrossTarget = (
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
const CROSS_TARGETS: [CrossTarget; 5] = [
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

/// Whether the compiler and readelf of every target of [`cross_fixtures`]
/// (riscv64, s390x, ppc64le, armhf, i386) are installed (each missing one
/// is reported through `require_tool`).
pub fn cross_tools_present(test: &str) -> bool {
    CROSS_TARGETS
        .iter()
        .flat_map(|(_, compiler, readelf, _, _)| [*compiler, *readelf])
        // Every tool is checked, so each missing one is reported.
        .filter(|tool| !crate::require_tool(test, tool))
        .count()
        == 0
}

/// Builds sdt_args at -O0 and -O2 (`{arch}_args_{level}`) and the shared
/// library sdt_lib at -O2 (`{arch}_lib_O2`) for every cross target.
fn build_cross_fixtures(dir: &Path) -> Vec<Fixture> {
    let include = sdt_include_dir(dir);
    let inc = format!("-I{}", include.display());
    let src = |name: &str| fixtures_dir().join(name);
    let mut fixtures = Vec::new();
    for (arch, compiler, readelf, nop, extra) in CROSS_TARGETS {
        let mut add = |name: String, path: PathBuf| {
            fixtures.push(Fixture {
                name,
                path,
                readelf,
                nop,
                stripped: false,
            })
        };
        for opt in ["-O0", "-O2"] {
            let name = format!("{arch}_args_{}", &opt[1..]);
            let path = dir.join(&name);
            let mut flags = vec![opt, inc.as_str()];
            flags.extend_from_slice(extra);
            cc(compiler, &flags, &[&src("sdt_args.c")], &path);
            add(name, path);
        }
        let name = format!("{arch}_lib_O2");
        let path = dir.join(format!("lib{name}.so"));
        cc(
            compiler,
            &["-O2", &inc, "-shared", "-fPIC"],
            &[&src("sdt_lib.c")],
            &path,
        );
        add(name, path);
    }
    fixtures
}

/// The cross fixtures, built once per test binary into a scratch
/// directory of their own.
pub fn cross_fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| build_cross_fixtures(&scratch_dir("reader_cross_fixtures")))
}

/// Compiles `inputs` with `compiler` and `flags` into `out`, warnings
/// being errors, with debug information.
fn cc(compiler: &str, flags: &[&str], inputs: &[&Path], out: &Path) {
    run(Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .args(flags)
        .args(inputs)
        .arg("-o")
        .arg(out));
}

/// Builds the shared library sdt_lib.c (`libsdt_lib.so`) and the program
/// sdt_lib_main.c linked against it (found next to it through `$ORIGIN`)
/// into `dir` with `compiler` and `flags`; returns (program, library).
pub(crate) fn build_library_and_main(
    compiler: &str,
    flags: &[&str],
    dir: &Path,
) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let library = dir.join("libsdt_lib.so");
    let mut library_flags = flags.to_vec();
    library_flags.extend(["-shared", "-fPIC"]);
    cc(
        compiler,
        &library_flags,
        &[&fixtures_dir().join("sdt_lib.c")],
        &library,
    );
    let main = dir.join("sdt_lib_main");
    // The library comes after the source so the linker resolves it.
    run(Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .args(flags)
        .arg(fixtures_dir().join("sdt_lib_main.c"))
        .arg(format!("-L{}", dir.display()))
        .args(["-lsdt_lib", "-Wl,-rpath,$ORIGIN", "-o"])
        .arg(&main));
    (main, library)
}

/// Builds every fixture variant into `dir`: sdt_args at -O0 and -O2 (and
/// for x86-64 without PIE too), the
/// shared library at -O0 and -O2 and its program, stripped copies, the
/// same for aarch64 (with sdt_index at -O2), and sdt_bare for i386 (PIE and not), aarch64
/// big-endian, and aarch64 ILP32 (both byte orders). Needs gcc and
/// gcc-aarch64-linux-gnu.
fn build_fixtures(dir: &Path) -> Vec<Fixture> {
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
            let (main, lib) = build_library_and_main(compiler, &[opt, &inc], &lib_dir);
            add(
                &format!("{arch}_lib_{level}"),
                lib.clone(),
                readelf,
                nop,
                false,
            );
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
                // Array elements by an `int` and an `unsigned` index:
                // extended 32-bit index registers (`[x3, w0, sxtw]`).
                let name = format!("{arch}_index_{level}");
                let index = dir.join(&name);
                cc(compiler, &[opt, &inc], &[&src("sdt_index.c")], &index);
                add(&name, index, readelf, nop, false);
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

/// The fixtures: sdt_args at -O0 and -O2 (and for x86-64 without PIE
/// too), the shared library at -O0 and -O2 and its program, stripped
/// copies, the same for aarch64, and sdt_bare for i386 (PIE and not),
/// aarch64 big-endian and aarch64 ILP32 (both byte orders); built once per
/// test binary into a scratch directory of their own. Needs gcc and
/// gcc-aarch64-linux-gnu.
pub fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| build_fixtures(&scratch_dir("reader_fixtures")))
}

/// The fixture called `name`.
pub fn fixture<'a>(fixtures: &'a [Fixture], name: &str) -> &'a Fixture {
    fixtures
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Starts `program` (built from sdt_lib_main.c) looping for a long while
/// and waits until it has mapped `library` (its dynamic loader has run).
pub fn start_looping(program: &Path, library: &str) -> Guard {
    let running = Guard(
        Command::new(program)
            .args(["100000", "10"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
    );
    wait_for_mapping(running.pid(), library);
    running
}

/// The bytes of `f` (a little-endian 64-bit fixture built from sdt_args.c)
/// with two bad notes: `sdt_args:stack`'s provider made non-UTF-8, and
/// `sdt_args:guarded`'s semaphore moved outside every segment. The other
/// notes are intact.
pub fn with_two_bad_notes(f: &Fixture) -> Vec<u8> {
    crate::elf::edit_notes(&f.path, |note, descriptor| match note.name {
        "stack" => descriptor[24] = 0xff,
        "guarded" => descriptor[16..24].copy_from_slice(&0xdead_0000u64.to_le_bytes()),
        _ => {}
    })
}
