//! The binary contract of the probe macros, restated independently of
//! usdt-runtime's own tables: what the `probe_catalog` fixture program fires
//! (every site, argument kind and value) and the note arguments that must
//! carry it; gdb reading those values back; the `macros_variants` fixture
//! workspace; and the x86-64 red zone check.

use crate::run;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

// ---------------------------------------------------------------------------
// The binary contract, restated.

/// An argument kind of the contract: display name, `.usdt.types` code and
/// the signed size of each note slot on a 64-bit target.
pub struct Kind {
    /// The kind as a Rust type (`u8`, `&str`, ...) or `ptr`, `json`.
    pub name: &'static str,
    /// Its code in `.usdt.types`.
    pub code: u8,
    /// The signed size of each of its note slots.
    pub sizes: &'static [i8],
}

/// Every kind of the contract.
const KINDS: &[Kind] = &[
    Kind {
        name: "u8",
        code: 1,
        sizes: &[1],
    },
    Kind {
        name: "u16",
        code: 2,
        sizes: &[2],
    },
    Kind {
        name: "u32",
        code: 3,
        sizes: &[4],
    },
    Kind {
        name: "u64",
        code: 4,
        sizes: &[8],
    },
    Kind {
        name: "usize",
        code: 5,
        sizes: &[8],
    },
    Kind {
        name: "i8",
        code: 6,
        sizes: &[-1],
    },
    Kind {
        name: "i16",
        code: 7,
        sizes: &[-2],
    },
    Kind {
        name: "i32",
        code: 8,
        sizes: &[-4],
    },
    Kind {
        name: "i64",
        code: 9,
        sizes: &[-8],
    },
    Kind {
        name: "isize",
        code: 10,
        sizes: &[-8],
    },
    Kind {
        name: "u128",
        code: 11,
        sizes: &[8, 8],
    },
    Kind {
        name: "i128",
        code: 12,
        sizes: &[8, -8],
    },
    Kind {
        name: "bool",
        code: 13,
        sizes: &[1],
    },
    Kind {
        name: "char",
        code: 14,
        sizes: &[4],
    },
    Kind {
        name: "f32",
        code: 15,
        sizes: &[4],
    },
    Kind {
        name: "f64",
        code: 16,
        sizes: &[8],
    },
    Kind {
        name: "ptr",
        code: 17,
        sizes: &[8],
    },
    Kind {
        name: "&CStr",
        code: 18,
        sizes: &[8],
    },
    Kind {
        name: "&str",
        code: 19,
        sizes: &[8, 8],
    },
    Kind {
        name: "&[u8]",
        code: 20,
        sizes: &[8, 8],
    },
    Kind {
        name: "json",
        code: 21,
        sizes: &[8, 8],
    },
];

/// The kind named `name`.
pub fn kind(name: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("no kind {name}"))
}

/// What a tracer must read for one Rust argument.
#[derive(Clone, Debug)]
pub enum Value {
    /// A one-slot integer (integers, bool, char, float bits).
    Int(i128),
    /// A two-slot pair of integers (128-bit halves: low, high).
    Pair(i128, i128),
    /// A two-slot (pointer, length) pair: the bytes it points at.
    Bytes(Vec<u8>),
    /// A one-slot pointer to these bytes followed by a NUL.
    CStr(Vec<u8>),
    /// A one-slot pointer to this 8-byte value.
    PtrTo(u64),
}

/// One Rust argument of one site: name, kind, value.
#[derive(Clone, Debug)]
pub struct Arg {
    /// The declared name (`arg0`, `arg1`, ... for plain probes).
    pub name: String,
    /// The name of its [`Kind`].
    pub kind: &'static str,
    /// The value fired.
    pub value: Value,
}

/// One expected site.
#[derive(Clone, Debug)]
pub struct Site {
    /// The provider name.
    pub provider: &'static str,
    /// The probe name.
    pub name: &'static str,
    /// Typed provider probe: a semaphore in the note, flag bit 0 in
    /// `.usdt.types`.
    pub guarded: bool,
    /// The Rust arguments, in order.
    pub args: Vec<Arg>,
}

impl Site {
    /// `provider:name`.
    pub fn probe(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }
}

/// A plain `catalog` probe site with arguments `arg0`, `arg1`, ...
fn plain(name: &'static str, args: &[(&'static str, Value)]) -> Site {
    plain_site("catalog", name, args)
}

/// A plain probe site with arguments `arg0`, `arg1`, ...
pub fn plain_site(
    provider: &'static str,
    name: &'static str,
    args: &[(&'static str, Value)],
) -> Site {
    Site {
        provider,
        name,
        guarded: false,
        args: args
            .iter()
            .enumerate()
            .map(|(i, (kind, value))| Arg {
                name: format!("arg{i}"),
                kind,
                value: value.clone(),
            })
            .collect(),
    }
}

/// A typed `store` probe site.
fn typed(name: &'static str, args: &[(&'static str, &'static str, Value)]) -> Site {
    typed_site("store", name, args)
}

/// A typed probe site: named arguments, semaphore-guarded.
pub fn typed_site(
    provider: &'static str,
    name: &'static str,
    args: &[(&'static str, &'static str, Value)],
) -> Site {
    Site {
        provider,
        name,
        guarded: true,
        args: args
            .iter()
            .map(|(arg_name, kind, value)| Arg {
                name: arg_name.to_string(),
                kind,
                value: value.clone(),
            })
            .collect(),
    }
}

/// A one-slot integer value.
pub fn i(v: impl Into<i128>) -> Value {
    Value::Int(v.into())
}

fn split128(v: u128, signed_high: bool) -> Value {
    let low = v as u64 as i128;
    let high = if signed_high {
        (v >> 64) as u64 as i64 as i128
    } else {
        (v >> 64) as u64 as i128
    };
    Value::Pair(low, high)
}

/// Every site of `probe_catalog`, in the order it fires them.
pub fn catalog_sites() -> Vec<Site> {
    use Value::*;
    vec![
        plain("no_args", &[]),
        plain(
            "unsigned_max",
            &[
                ("u8", i(u8::MAX)),
                ("u16", i(u16::MAX)),
                ("u32", i(u32::MAX)),
                ("u64", i(u64::MAX)),
                ("usize", i(usize::MAX as u64)),
            ],
        ),
        plain(
            "unsigned_min",
            &[
                ("u8", i(0)),
                ("u16", i(0)),
                ("u32", i(0)),
                ("u64", i(0)),
                ("usize", i(0)),
            ],
        ),
        plain(
            "signed_min",
            &[
                ("i8", i(i8::MIN)),
                ("i16", i(i16::MIN)),
                ("i32", i(i32::MIN)),
                ("i64", i(i64::MIN)),
                ("isize", i(isize::MIN as i64)),
            ],
        ),
        plain(
            "signed_max",
            &[
                ("i8", i(i8::MAX)),
                ("i16", i(i16::MAX)),
                ("i32", i(i32::MAX)),
                ("i64", i(i64::MAX)),
                ("isize", i(isize::MAX as i64)),
            ],
        ),
        plain(
            "negative",
            &[
                ("i8", i(-1)),
                ("i16", i(-2)),
                ("i32", i(-3)),
                ("i64", i(-4)),
                ("isize", i(-5)),
            ],
        ),
        plain(
            "wide",
            &[
                ("u128", split128(u128::MAX, false)),
                ("i128", split128(i128::MIN as u128, true)),
                (
                    "u128",
                    split128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210, false),
                ),
                ("i128", split128(-2i128 as u128, true)),
            ],
        ),
        plain(
            "scalars",
            &[
                ("bool", i(1)),
                ("bool", i(0)),
                ("char", i('A' as u32)),
                ("char", i('\u{10FFFF}' as u32)),
                ("f32", i(1.5f32.to_bits())),
                ("f64", i((-2.25f64).to_bits())),
                ("ptr", PtrTo(0x5eed_cafe_f00d_beef)),
            ],
        ),
        plain(
            "floats",
            &[
                ("f32", i(f32::MAX.to_bits())),
                ("f32", i(f32::MIN_POSITIVE.to_bits())),
                ("f64", i(f64::MIN.to_bits())),
                ("f64", i(f64::NEG_INFINITY.to_bits())),
            ],
        ),
        plain(
            "text",
            &[
                ("&str", Bytes(b"hello, probe".to_vec())),
                ("&str", Bytes("owned \u{2603} text".as_bytes().to_vec())),
                ("&[u8]", Bytes(vec![0x00, 0x01, 0xfe, 0xff])),
                ("&CStr", CStr(b"c string".to_vec())),
            ],
        ),
        plain(
            "empty_text",
            &[("&str", Bytes(vec![])), ("&[u8]", Bytes(vec![]))],
        ),
        plain(
            "twelve",
            &[
                ("u8", i(1)),
                ("i16", i(-2)),
                ("u32", i(3)),
                ("i64", i(-4)),
                ("usize", i(5)),
                ("isize", i(-6)),
                ("u16", i(7)),
                ("i8", i(-8)),
                ("u64", i(9)),
                ("i32", i(-10)),
                ("bool", i(1)),
                ("char", i('z' as u32)),
            ],
        ),
        plain(
            "owned",
            &[
                ("&[u8]", Bytes(vec![9, 8, 7])),
                ("&[u8]", Bytes(vec![1, 2, 3, 4])),
                ("&CStr", CStr(b"owned c".to_vec())),
                ("u32", i(5)),
                ("&str", Bytes(b"cow".to_vec())),
                ("u16", i(9)),
                ("ptr", PtrTo(0x5eed_cafe_f00d_beef)),
            ],
        ),
        plain("generic", &[("u8", i(200))]),
        plain("generic", &[("i64", i(-300_000))]),
        plain("inlined", &[("u32", i(1))]),
        plain("inlined", &[("u32", i(2))]),
        typed(
            "order_placed",
            &[
                ("order_id", "u64", i(42)),
                ("customer", "&str", Bytes(b"Ada Lovelace".to_vec())),
                ("total_cents", "i64", i(-1999)),
            ],
        ),
        typed(
            "order_json",
            &[
                ("order_id", "u64", i(42)),
                (
                    "order",
                    "json",
                    Bytes(br#"{"id":42,"items":["tea","scones"],"total_cents":1999}"#.to_vec()),
                ),
            ],
        ),
        typed(
            "item_scanned",
            &[
                ("sku", "u32", i(7_000_001)),
                ("weight_kg", "f64", i(2.5f64.to_bits())),
                ("fragile", "bool", i(1)),
                ("grade", "char", i('B' as u32)),
                ("tag", "&[u8]", Bytes(vec![1, 2, 3])),
                ("label", "&CStr", CStr(b"FRAGILE".to_vec())),
                ("serial", "u128", split128(u128::MAX - 1, false)),
                ("delta", "i128", split128((i128::MIN + 1) as u128, true)),
            ],
        ),
        typed("tick", &[]),
        typed_site(
            "shelf",
            "restocked",
            &[
                ("count", "u8", i(u8::MAX)),
                ("shelf", "u16", i(u16::MAX)),
                ("aisle_delta", "i8", i(i8::MIN)),
                ("temp_delta", "i16", i(i16::MIN)),
                ("balance", "i32", i(i32::MIN)),
                ("offset", "isize", i(isize::MIN as i64)),
                ("capacity", "usize", i(usize::MAX as u64)),
                ("ratio", "f32", i((-0.5f32).to_bits())),
                ("stock", "ptr", PtrTo(0x5eed_cafe_f00d_beef)),
            ],
        ),
        typed_site(
            "shelf",
            "relabelled",
            &[
                ("label", "&str", Bytes(b"aisle 7".to_vec())),
                ("raw", "&[u8]", Bytes(vec![0xca, 0xfe])),
            ],
        ),
    ]
}

/// The argument string a site's note must have on x86-64, with every
/// register written `%REG`.
pub fn expected_x86_args(site: &Site) -> String {
    expected_args(
        site,
        |size| format!("{size}@%REG"),
        |high| format!("8@0(%REG) {high}@8(%REG)"),
    )
}

/// The argument string a site's note must have on aarch64, with every
/// register written `xN`.
pub fn expected_aarch64_args(site: &Site) -> String {
    expected_args(
        site,
        |size| format!("{size}@xN"),
        |high| format!("8@[xN] {high}@[xN, 8]"),
    )
}

fn expected_args(site: &Site, one: impl Fn(i8) -> String, two: impl Fn(i8) -> String) -> String {
    site.args
        .iter()
        .map(|arg| {
            let k = kind(arg.kind);
            match k.sizes {
                [size] => one(*size),
                [low, high] => {
                    assert_eq!(*low, 8);
                    two(*high)
                }
                _ => unreachable!(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 64-bit general-purpose registers of x86-64, as `%name`.
const X86_64_REGS: &[&str] = &[
    "%rax", "%rbx", "%rcx", "%rdx", "%rsi", "%rdi", "%rbp", "%rsp", "%r8", "%r9", "%r10", "%r11",
    "%r12", "%r13", "%r14", "%r15",
];

/// `args` with every x86-64 register replaced by `%REG`, after checking
/// each is a full 64-bit register and each two-slot pair reads through one
/// register.
pub fn normalize_x86_args(args: &str) -> String {
    normalize_args(args, |word| {
        let mut out = String::new();
        let mut rest = word;
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            let reg_len = rest[pos + 1..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len() - pos - 1);
            let reg = &rest[pos..pos + 1 + reg_len];
            assert!(
                X86_64_REGS.contains(&reg),
                "`{reg}` in `{args}` is not a 64-bit register"
            );
            out.push_str("%REG");
            rest = &rest[pos + 1 + reg_len..];
        }
        out.push_str(rest);
        out
    })
}

/// `args` with every aarch64 register replaced by `xN`, after checking each
/// is a 64-bit `x` register and each two-slot pair reads through one.
pub fn normalize_aarch64_args(args: &str) -> String {
    normalize_args(args, |word| {
        let chars: Vec<char> = word.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let token_start = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
            if token_start
                && (c == 'x' || c == 'w')
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
            {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                let n: u32 = chars[i + 1..j].iter().collect::<String>().parse().unwrap();
                assert!(
                    c == 'x' && n <= 30,
                    "`{}` in `{args}` is not a 64-bit register",
                    chars[i..j].iter().collect::<String>()
                );
                out.push_str("xN");
                i = j;
            } else {
                out.push(c);
                i += 1;
            }
        }
        out
    })
}

/// Applies `word` to each note argument, checking that consecutive
/// memory operands through one register (a two-slot pair) use the same one.
fn normalize_args(args: &str, word: impl Fn(&str) -> String) -> String {
    if args.is_empty() {
        return String::new();
    }
    // Split on spaces that separate arguments (aarch64's `[x0, 8]` holds one).
    let mut parts: Vec<String> = Vec::new();
    for piece in args.split(' ') {
        match parts.last_mut() {
            Some(last) if last.contains('[') && !last.contains(']') => {
                last.push(' ');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_string()),
        }
    }
    for pair in parts.windows(2) {
        let base = |s: &str| -> Option<String> {
            let open = s.find(['(', '['])?;
            Some(
                s[open + 1..]
                    .trim_end_matches([')', ']'])
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        };
        if pair[0].contains("@0(") || pair[0].contains("@[x") && !pair[0].contains(',') {
            assert_eq!(
                base(&pair[0]),
                base(&pair[1]),
                "two-slot pair `{} {}` reads through two registers",
                pair[0],
                pair[1]
            );
        }
    }
    parts.iter().map(|p| word(p)).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// gdb

/// The values gdb prints for each hit of each probe: for every hit of a
/// breakpoint on `provider:name`, the list of `print` results, in order.
/// `commands` maps a probe to the gdb expressions printed at each hit.
pub fn gdb_hits(
    binary: &Path,
    args: &[&str],
    commands: &[(String, Vec<String>)],
) -> HashMap<String, Vec<Vec<String>>> {
    let mut script = String::from(
        "set pagination off\nset confirm off\nset breakpoint pending on\nset language c\n\
         set print elements 0\nset print repeats unlimited\nset width 0\n",
    );
    for (probe, exprs) in commands {
        script.push_str(&format!("break -probe-stap {probe}\ncommands\nsilent\n"));
        script.push_str(&format!("echo @@hit {probe}\\n\n"));
        for expr in exprs {
            script.push_str(&format!("{expr}\n"));
        }
        script.push_str("echo @@end\\n\ncontinue\nend\n");
    }
    script.push_str("run\n");
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = crate::scratch_dir(&format!(
        "gdb-{}-{}-{}",
        binary.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let script_path = dir.join("probes.gdb");
    std::fs::write(&script_path, script).unwrap();
    let out = run(Command::new("gdb")
        .args(["-batch", "-nx", "-x"])
        .arg(&script_path)
        .arg("--args")
        .arg(binary)
        .args(args));
    let mut hits: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in out.lines() {
        if let Some(probe) = line.strip_prefix("@@hit ") {
            current = Some((probe.to_string(), Vec::new()));
        } else if line == "@@end" {
            let (probe, values) = current.take().expect("@@end without @@hit");
            hits.entry(probe).or_default().push(values);
        } else if let Some((_, values)) = current.as_mut() {
            if let Some((_, value)) = line.split_once(" = ") {
                values.push(value.to_string());
            } else {
                values.push(line.to_string());
            }
        }
    }
    assert!(current.is_none(), "gdb output ended inside a hit:\n{out}");
    hits
}

/// The gdb expressions that read each argument of `site`, with the value
/// each must print.
fn gdb_reads(site: &Site) -> Vec<(String, String)> {
    let mut reads = Vec::new();
    let mut slot = 0;
    for arg in &site.args {
        match &arg.value {
            Value::Int(v) => {
                reads.push((format!("print $_probe_arg{slot}"), v.to_string()));
                slot += 1;
            }
            Value::Pair(low, high) => {
                reads.push((format!("print $_probe_arg{slot}"), low.to_string()));
                reads.push((format!("print $_probe_arg{}", slot + 1), high.to_string()));
                slot += 2;
            }
            Value::Bytes(bytes) => {
                reads.push((
                    format!("print $_probe_arg{}", slot + 1),
                    bytes.len().to_string(),
                ));
                if !bytes.is_empty() {
                    reads.push((
                        format!(
                            "print/x *(unsigned char*)$_probe_arg{slot}@$_probe_arg{}",
                            slot + 1
                        ),
                        gdb_hex_array(bytes),
                    ));
                }
                slot += 2;
            }
            Value::CStr(bytes) => {
                let mut with_nul = bytes.clone();
                with_nul.push(0);
                reads.push((
                    format!(
                        "print/x *(unsigned char*)$_probe_arg{slot}@{}",
                        with_nul.len()
                    ),
                    gdb_hex_array(&with_nul),
                ));
                slot += 1;
            }
            Value::PtrTo(v) => {
                reads.push((
                    format!("print/x *(unsigned long*)$_probe_arg{slot}"),
                    format!("{v:#x}"),
                ));
                slot += 1;
            }
        }
    }
    reads
}

/// Runs `binary` under gdb with a breakpoint on every probe of `sites` and
/// checks that each probe is hit once per expected site, in order, and that
/// gdb reads each expected value. Sites of one probe must read the same
/// argument slots.
pub fn assert_gdb_reads_sites(binary: &Path, args: &[&str], sites: &[Site]) {
    let mut per_probe: std::collections::BTreeMap<String, Vec<&Site>> = Default::default();
    for site in sites {
        per_probe.entry(site.probe()).or_default().push(site);
    }
    let commands: Vec<(String, Vec<String>)> = per_probe
        .iter()
        .map(|(probe, sites)| {
            let mut exprs = vec!["print $_probe_argc".to_string()];
            exprs.extend(gdb_reads(sites[0]).into_iter().map(|(expr, _)| expr));
            (probe.clone(), exprs)
        })
        .collect();
    let hits = gdb_hits(binary, args, &commands);
    for (probe, sites) in &per_probe {
        let probe_hits = hits
            .get(probe)
            .unwrap_or_else(|| panic!("{}: gdb never stopped at {probe}", binary.display()));
        assert_eq!(
            probe_hits.len(),
            sites.len(),
            "{}: hits of {probe}",
            binary.display()
        );
        for (site, hit) in sites.iter().zip(probe_hits) {
            let slots: usize = site.args.iter().map(|a| kind(a.kind).sizes.len()).sum();
            let mut expected = vec![slots.to_string()];
            expected.extend(gdb_reads(site).into_iter().map(|(_, value)| value));
            assert_eq!(
                hit,
                &expected,
                "{}: values gdb read at {probe}",
                binary.display()
            );
        }
    }
}

/// How gdb prints a byte array with `print/x`.
fn gdb_hex_array(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    format!("{{{}}}", items.join(", "))
}

// ---------------------------------------------------------------------------
// The fixture workspace

/// This build's cargo (`$CARGO`, or `cargo` from `PATH`).
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The `macros_variants` fixture workspace, held by one test at a time: the
/// tests that build it share its directory and target directories.
pub struct FixtureWorkspace {
    /// The workspace's directory.
    dir: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl FixtureWorkspace {
    /// Waits until no other test holds the workspace, then copies it to a
    /// directory under the target directory, each `Cargo.toml.in` written
    /// as `Cargo.toml` pointing at this checkout's usdt-runtime and tests,
    /// with this workspace's lock file so the same dependency versions are
    /// used offline.
    pub fn lock() -> FixtureWorkspace {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = crate::target_dir().join("macros-variants").join("src");
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        let checkout = tests.parent().unwrap();
        copy_template(
            &crate::fixtures_dir().join("macros_variants"),
            &dir,
            &checkout.join("usdt-runtime"),
            tests,
        );
        std::fs::copy(checkout.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        FixtureWorkspace { dir, _lock: lock }
    }

    /// The target directory called `name` of the workspace's builds (kept
    /// between runs, beside the workspace).
    pub fn target_dir(&self, name: &str) -> PathBuf {
        self.dir.parent().unwrap().join(name)
    }

    /// `cargo build --release --quiet` in the workspace, by `cargo` (see
    /// [`cargo`], or another toolchain's), into `target_dir`, without the
    /// environment's `RUSTFLAGS`; the caller adds the build's arguments.
    pub fn build(&self, mut cargo: Command, target_dir: &Path) -> Command {
        cargo
            .current_dir(&self.dir)
            .args(["build", "--release", "--quiet"])
            .env("CARGO_TARGET_DIR", target_dir)
            .env_remove("RUSTFLAGS");
        cargo
    }
}

fn copy_template(from: &Path, to: &Path, runtime: &Path, tests: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            copy_template(&path, &to.join(&name), runtime, tests);
        } else if let Some(stem) = name.strip_suffix(".in") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text
                .replace("@USDT_RUNTIME@", &runtime.display().to_string())
                .replace("@TESTS@", &tests.display().to_string());
            write_if_changed(&to.join(stem), &text);
        } else {
            write_if_changed(&to.join(&name), &std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Writes `text` unless the file already holds it (keeps cargo's
/// fingerprints fresh between runs).
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Red zone

/// Checks with `objdump -d` that no function holding one of `pcs` addresses
/// memory below the stack pointer (x86-64's red zone): the kernel's
/// optimized uprobe trampoline writes there when a probe fires.
pub fn assert_no_red_zone_use(path: &Path, pcs: &[u64]) {
    let out = run(Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(path));
    let mut function = String::new();
    let mut lines: Vec<&str> = Vec::new();
    let mut holds_site = false;
    let check = |function: &str, lines: &[&str], holds_site: bool| {
        if !holds_site {
            return;
        }
        for line in lines {
            let below = line.contains("(%rsp)")
                && line
                    .split([' ', ',', '\t'])
                    .any(|operand| operand.starts_with("-0x") && operand.ends_with("(%rsp)"));
            assert!(
                !below,
                "{}: {function} uses the red zone: {line}",
                path.display()
            );
        }
    };
    for line in out.lines() {
        if line.ends_with(">:") {
            check(&function, &lines, holds_site);
            function = line.to_string();
            lines.clear();
            holds_site = false;
            continue;
        }
        if let Some((address, _)) = line.trim_start().split_once(':')
            && let Ok(address) = u64::from_str_radix(address, 16)
        {
            holds_site |= pcs.contains(&address);
            lines.push(line);
        }
    }
    check(&function, &lines, holds_site);
}
