//! Parsed argument specs against gdb and against the values the C fixtures
//! pass by construction.
//!
//! For every probe of sdt_args and of sdt_lib (through sdt_lib_main), built
//! at -O0 and -O2, gdb stops at the probe (`break -probe-stap`) and prints
//! both its own reading of each argument (`$_probe_argN`) and the raw value
//! at the location usdt-reader parsed: the register, the memory at
//! base + index*scale + offset, or the memory at the link-time address plus
//! the load bias (`$pc` minus the probe's link-time address). The test then
//! applies the parsed size and sign and requires all three to agree: our
//! value, gdb's, and the value the fixture's comment documents.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use usdt_interop_tests::reader::{cross_fixtures, cross_tools_present, fixture, fixtures};
use usdt_interop_tests::{require_tool, run};
use usdt_reader::{ArgLocation, ArgSpec, ElfFile, Index, IndexExtend, Probe, Register};

const TEST: &str = "reader_gdb";

/// The values each probe passes in its first iteration (iteration 0), as
/// documented at the top of sdt_args.c, sdt_lib.c and sdt_lib_main.c.
/// `None` for pointers, whose value is only known at run time.
fn expected(probe: &str) -> Vec<Option<i128>> {
    let v: Vec<i128> = match probe {
        "sdt_args:iteration" => vec![0],
        "sdt_args:min_values" => vec![
            i8::MIN.into(),
            i16::MIN.into(),
            i32::MIN.into(),
            i64::MIN.into(),
            0,
            0,
            0,
            0,
        ],
        "sdt_args:max_values" => vec![
            i8::MAX.into(),
            i16::MAX.into(),
            i32::MAX.into(),
            i64::MAX.into(),
            u8::MAX.into(),
            u16::MAX.into(),
            u32::MAX.into(),
            u64::MAX.into(),
        ],
        "sdt_args:small_values" => vec![-1, -2, -3, -4, 5, 6, 7, 8],
        "sdt_args:stack" => vec![-100, -200, 300, -4],
        "sdt_args:globals" => vec![-12345, 0x1122334455667788, -32000, 200],
        "sdt_args:indexed" => vec![-3003, -4004],
        "sdt_args:constants" => vec![0, -1, 42, i64::MIN.into(), u64::MAX.into(), 120],
        "sdt_args:string" => return vec![None, Some(11)],
        "sdt_args:twelve" => vec![-1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12],
        "sdt_args:no_args" => vec![],
        "sdt_args:guarded" => vec![0, -424242],
        "sdt_lib:call" => return vec![Some(0), Some(-7777), None],
        "sdt_lib:counter" => vec![-5150],
        "sdt_lib:guarded" => vec![0, 0xfeedface],
        "sdt_lib_main:start" => vec![1],
        other => panic!("no expected values for {other}"),
    };
    v.into_iter().map(Some).collect()
}

/// `value` as gdb prints `(unsigned long long)` of a value of `spec`'s type:
/// truncated to the size, then sign- or zero-extended to 64 bits.
fn normalize(spec: &ArgSpec, value: u64) -> u64 {
    let bits = u32::from(spec.size) * 8;
    if bits == 64 {
        return value;
    }
    let truncated = value & ((1u64 << bits) - 1);
    if spec.signed && truncated >> (bits - 1) == 1 {
        truncated | !((1u64 << bits) - 1)
    } else {
        truncated
    }
}

/// A gdb expression for the full 64-bit register holding `reg`.
fn gdb_register(reg: &Register) -> String {
    format!("(unsigned long long)${}", reg.full().name())
}

/// A gdb expression for the part of the register the operand names.
fn gdb_register_part(reg: &Register) -> String {
    let mask = if reg.width >= 64 {
        u64::MAX
    } else {
        (1u64 << reg.width) - 1
    };
    format!("(({} >> {}) & {mask:#x})", gdb_register(reg), reg.bit_shift)
}

/// A gdb expression for the offset an index adds: its register (the low
/// 32 bits sign-extended for aarch64's `sxtw`) times its scale.
fn gdb_index(index: &Index) -> String {
    let part = gdb_register_part(&index.register);
    match index.extend {
        IndexExtend::SignExtend32 => format!("(long long)(int){part} * {}", index.scale),
        IndexExtend::Whole | IndexExtend::ZeroExtend32 => format!("{part} * {}", index.scale),
    }
}

/// A gdb expression for the raw value at `spec`'s location in the probe
/// `probe` (stopped at its site), or `None` for constants.
fn gdb_expression(spec: &ArgSpec, probe: &Probe) -> Option<String> {
    let pointee = match spec.size {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        _ => "unsigned long long",
    };
    Some(match &spec.location {
        ArgLocation::Constant(_) => return None,
        ArgLocation::Register(reg) => gdb_register_part(reg),
        ArgLocation::Memory {
            base,
            index,
            offset,
        } => {
            let mut address = format!("{} + ({offset})", gdb_register_part(base));
            if let Some(index) = index {
                write!(address, " + {}", gdb_index(index)).unwrap();
            }
            format!("*({pointee} *)({address})")
        }
        ArgLocation::Address { address, index, .. } => {
            // The load bias is $pc minus the site's link-time address.
            let mut at = format!(
                "(unsigned long long)$pc - {:#x} + {address:#x}",
                probe.address
            );
            if let Some(index) = index {
                write!(at, " + {}", gdb_index(index)).unwrap();
            }
            format!("*({pointee} *)({at})")
        }
    })
}

/// What gdb printed at one probe: its `$_probe_argN` values, the raw values
/// at our locations, and the string behind the first argument.
#[derive(Debug, Default)]
struct Hit {
    /// Whether gdb failed to evaluate some `$_probe_argN` of the probe
    /// (its parser rejects symbol operands such as `8@g_u64(%rip)`, and
    /// then misnumbers the rest).
    gdb_failed: bool,
    gdb: HashMap<usize, u64>,
    ours: HashMap<usize, u64>,
    string: Option<String>,
}

/// A Python string literal.
fn py(text: &str) -> String {
    format!("{text:?}")
}

/// Runs `path` (with one iteration) under gdb, stopping at every probe of
/// `probes`, and checks what it reads. Returns how many probes fired and
/// the names of those whose arguments gdb itself could not evaluate.
fn check_program(path: &std::path::Path, probes: &[Probe]) -> (usize, Vec<String>) {
    // A gdb Python script: a breakpoint per probe whose stop hook prints
    // gdb's `$_probe_argN` and the raw value at each parsed location.
    let mut script = String::from(
        "import gdb\n\
         MASK = (1 << 64) - 1\n\
         def show(kind, i, expression):\n    \
             try:\n        \
                 print('%s %d %x' % (kind, i, int(gdb.parse_and_eval('(unsigned long long) (%s)' % expression)) & MASK))\n    \
             except gdb.error as error:\n        \
                 print('%sERR %d %s' % (kind, i, error))\n\
         class Probe(gdb.Breakpoint):\n    \
             def __init__(self, name, args, string):\n        \
                 super().__init__('-probe-stap ' + name)\n        \
                 self.probe, self.args, self.text = name, args, string\n    \
             def stop(self):\n        \
                 print('HIT ' + self.probe)\n        \
                 for i, expression in self.args:\n            \
                     show('G', i, '$_probe_arg%d' % i)\n            \
                     if expression is not None:\n                \
                         show('V', i, expression)\n        \
                 if self.text is not None:\n            \
                     print('S ' + gdb.parse_and_eval('(char *) (%s)' % self.text).string())\n        \
                 return False\n\
         gdb.execute('set pagination off')\n\
         gdb.execute('set breakpoint pending on')\n",
    );
    for probe in probes {
        let name = probe.qualified_name();
        assert_eq!(
            probes.iter().filter(|p| p.qualified_name() == name).count(),
            1,
            "{name} has one site"
        );
        let specs = probe.arg_specs.as_ref().unwrap_or_else(|e| panic!("{e}"));
        let args: Vec<String> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| match gdb_expression(spec, probe) {
                Some(expression) => format!("({i}, {})", py(&expression)),
                None => format!("({i}, None)"),
            })
            .collect();
        let string = match name.as_str() {
            "sdt_args:string" => py(&gdb_expression(&specs[0], probe).unwrap()),
            "sdt_lib:call" => py(&gdb_expression(&specs[2], probe).unwrap()),
            _ => "None".into(),
        };
        writeln!(
            script,
            "Probe({}, [{}], {string})",
            py(&name),
            args.join(", ")
        )
        .unwrap();
    }
    script.push_str("gdb.execute('run')\n");
    let script_path = path.with_extension("py");
    std::fs::write(&script_path, &script).unwrap();
    let output = run(Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&script_path)
        .arg("--args")
        .arg(path)
        .arg("1"));

    let mut hits: HashMap<String, Hit> = HashMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("HIT ") {
            assert!(!hits.contains_key(name), "{name} hit twice:\n{output}");
            hits.insert(name.to_string(), Hit::default());
            current = Some(name.to_string());
            continue;
        }
        let Some(hit) = current.as_ref().and_then(|name| hits.get_mut(name)) else {
            continue;
        };
        if let Some(text) = line.strip_prefix("S ") {
            hit.string = Some(text.to_string());
            continue;
        }
        if line.starts_with("GERR ") {
            hit.gdb_failed = true;
            continue;
        }
        assert!(
            !line.starts_with("VERR "),
            "{}: gdb cannot read our location: {line}",
            path.display()
        );
        let fields: Vec<&str> = line.split(' ').collect();
        if let [kind @ ("G" | "V"), index, value] = fields[..] {
            let index: usize = index.parse().unwrap();
            let value = u64::from_str_radix(value, 16).unwrap();
            let map = if kind == "G" {
                &mut hit.gdb
            } else {
                &mut hit.ours
            };
            map.insert(index, value);
        }
    }

    for probe in probes {
        let name = probe.qualified_name();
        let hit = hits.get(&name).unwrap_or_else(|| {
            panic!("{}: gdb never stopped at {name}:\n{output}", path.display())
        });
        let specs = probe.arg_specs.as_ref().unwrap();
        let expected = expected(&name);
        assert_eq!(specs.len(), expected.len(), "{name}");
        for (i, spec) in specs.iter().enumerate() {
            let what = format!("{} {name} argument {i} ({})", path.display(), spec.location);
            let ours = match spec.location {
                ArgLocation::Constant(value) => value as u64,
                _ => hit.ours[&i],
            };
            let ours = normalize(spec, ours);
            if !hit.gdb_failed {
                assert_eq!(ours, hit.gdb[&i], "{what}: ours vs gdb");
            }
            if let Some(value) = expected[i] {
                assert_eq!(ours, value as u64, "{what}: ours vs the fixture");
            }
        }
        match name.as_str() {
            "sdt_args:string" => assert_eq!(hit.string.as_deref(), Some("hello, usdt")),
            "sdt_lib:call" => assert_eq!(hit.string.as_deref(), Some("from the library")),
            _ => {}
        }
    }
    let gdb_failed = hits
        .iter()
        .filter(|(_, hit)| hit.gdb_failed)
        .map(|(name, _)| name.clone())
        .collect();
    (hits.len(), gdb_failed)
}

#[test]
fn parsed_locations_read_the_values_gdb_reads() {
    if !["gcc", "aarch64-linux-gnu-gcc", "gdb"]
        .iter()
        .all(|tool| require_tool(TEST, tool))
    {
        return;
    }
    let fixtures = fixtures();
    let mut compared_with_gdb = 0;
    for level in ["O0", "O2"] {
        let args = &fixture(fixtures, &format!("x86_64_args_{level}")).path;
        let probes = ElfFile::open(args).unwrap().probes().unwrap();
        let (hits, gdb_failed) = check_program(args, &probes);
        assert_eq!(hits, 12, "{level}");
        if !gdb_failed.is_empty() {
            eprintln!(
                "{level}: gdb could not evaluate {gdb_failed:?}; checked against the fixture's values only"
            );
        }
        // gdb 13's stap parser rejects symbol operands (`g_i32(%rip)`,
        // `56+v_small(%rip)`) and then misnumbers the other arguments: those
        // probes are checked against the fixture's values alone; every
        // other probe against gdb too.
        for name in &gdb_failed {
            let probe = probes.iter().find(|p| &p.qualified_name() == name).unwrap();
            assert!(
                probe.args.contains("(%rip)"),
                "gdb failed on {name} at {level}"
            );
        }
        compared_with_gdb += hits - gdb_failed.len();

        // The program and its shared library: gdb stops in both.
        let main = &fixture(fixtures, &format!("x86_64_lib_main_{level}")).path;
        let lib = &fixture(fixtures, &format!("x86_64_lib_{level}")).path;
        let mut probes = ElfFile::open(main).unwrap().probes().unwrap();
        probes.extend(ElfFile::open(lib).unwrap().probes().unwrap());
        let (hits, gdb_failed) = check_program(main, &probes);
        assert_eq!(hits, 4, "{level}");
        check_gdb_failures(&probes, &gdb_failed, level);
        compared_with_gdb += hits - gdb_failed.len();
    }
    assert!(compared_with_gdb >= 24, "{compared_with_gdb}");
}

/// gdb 13's stap parser rejects symbol operands (`g_i32(%rip)`,
/// `56+v_small(%rip)`, `g_array32(,%rax,4)`) and then misnumbers the other
/// arguments: those probes are checked against the fixture's values only,
/// every other probe against gdb too.
fn check_gdb_failures(probes: &[Probe], gdb_failed: &[String], level: &str) {
    for name in gdb_failed {
        let probe = probes.iter().find(|p| &p.qualified_name() == name).unwrap();
        let names_a_symbol = usdt_reader::split_args(&probe.args).iter().any(|word| {
            let operand = word.split_once('@').map_or("", |(_, operand)| operand);
            operand.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        });
        assert!(names_a_symbol, "gdb failed on {name} at {level}");
    }
}

#[test]
fn i386_globals_without_pie_read_the_values_gdb_reads() {
    // A static i386 program without PIE runs here: its globals are
    // absolute (`g_i32`) and indexed without a base (`g_array32(,%eax,4)`).
    // At -O2 (-O0 loads them into registers first). Only the probes whose
    // 8-byte values fit their operand are compared: sys/sdt.h names one
    // 32-bit register for a 64-bit value.
    if !(cross_tools_present(TEST) && require_tool(TEST, "gdb")) {
        return;
    }
    {
        let level = "O2";
        let path = &fixture(cross_fixtures(), &format!("i386_args_{level}")).path;
        let probes: Vec<Probe> = ElfFile::open(path)
            .unwrap()
            .probes()
            .unwrap()
            .into_iter()
            .filter(|p| ["globals", "indexed", "iteration"].contains(&&*p.name))
            .collect();
        let (hits, gdb_failed) = check_program(path, &probes);
        assert_eq!(hits, 3, "{level}");
        check_gdb_failures(&probes, &gdb_failed, level);
    }
}
