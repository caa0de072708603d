//! The custom-tracer example's BPF program (the committed object, built
//! from `examples/custom-tracer/custom-tracer-ebpf` on `usdt-aya-ebpf`),
//! loaded in the test process and attached through `usdt-aya`, with its
//! hits read from its ring buffer.

use custom_tracer_common::{HITS_MAP, Hit, PROGRAM, PROGRAM_MULTI, PROGRAM_PLAIN};
use std::path::Path;
use std::time::{Duration, Instant};
use usdt_aya::aya::Ebpf;
use usdt_aya::aya::maps::{MapData, RingBuf};
use usdt_aya::{Links, SpecLookup, Target, Usdt, UsdtError};

/// The example's BPF object.
pub const OBJECT: &[u8] =
    include_bytes!("../../examples/custom-tracer/custom-tracer/bpf/custom-tracer.bpf.o");

/// The example's program loaded, with its hits.
pub struct Session {
    /// The loaded object.
    pub ebpf: Ebpf,
    /// Its attacher.
    pub usdt: Usdt,
    hits: RingBuf<MapData>,
}

impl Session {
    /// Loads the example's object as its user program does.
    pub fn new() -> Session {
        Session::with_lookup(SpecLookup::detect())
    }

    /// Loads the example's object for programs that find their specs by
    /// `lookup`.
    pub fn with_lookup(lookup: SpecLookup) -> Session {
        let mut ebpf = usdt_aya::loader_for(lookup)
            .load(OBJECT)
            .expect("load the example");
        let usdt = Usdt::with_lookup(&mut ebpf, lookup).expect("the example links usdt-aya-ebpf");
        let map = ebpf.take_map(HITS_MAP).expect("the HITS map");
        let hits = RingBuf::try_from(map).expect("a ring buffer");
        Session { ebpf, usdt, hits }
    }

    /// Attaches `program` to `probe` in `target` with `cookie`.
    pub fn attach(
        &mut self,
        program: &str,
        target: &Target,
        probe: &str,
        cookie: u64,
    ) -> Result<Links, UsdtError> {
        self.usdt
            .attach(&mut self.ebpf, program, target, probe, cookie)
    }

    /// The hits of process `pid` until `done` says they are enough or
    /// `timeout` passes.
    pub fn collect(
        &mut self,
        pid: u32,
        timeout: Duration,
        done: impl Fn(&[Hit]) -> bool,
    ) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        let mut hits = Vec::new();
        loop {
            while let Some(record) = self.hits.next() {
                // SAFETY: the program submits whole `Hit` records.
                let hit: Hit = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
                if hit.pid == pid {
                    hits.push(hit);
                }
            }
            if done(&hits) || Instant::now() >= deadline {
                return hits;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Default for Session {
    fn default() -> Session {
        Session::new()
    }
}

/// `program` (one of the example's) if this kernel can load and attach it,
/// else the nearest one it can: the uprobe_multi program falls back to the
/// perf-event one (kernels before 6.6), a sleepable one to the plain one
/// (before 6.0).
pub fn usable(program: &'static str) -> &'static str {
    let features = usdt_tracer::KernelFeatures::get();
    let program = if program == PROGRAM_MULTI && !features.multi_links {
        PROGRAM
    } else {
        program
    };
    if program != PROGRAM_PLAIN && !features.sleepable {
        PROGRAM_PLAIN
    } else {
        program
    }
}

/// Whether this kernel has BPF cookies, which attaching by path needs; if
/// not, checks that attaching `program` to `probe` in `path` is refused
/// for want of them (and the test has nothing more to attach).
pub fn cookies_or_refused(session: &mut Session, program: &str, path: &Path, probe: &str) -> bool {
    if SpecLookup::detect() == SpecLookup::Cookie {
        return true;
    }
    let target = Target::Path(path.to_owned());
    let error = session.attach(program, &target, probe, 0).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("this kernel has no BPF cookies"),
        "{error}"
    );
    false
}

/// The hit's argument `n` as text: signed, unless it is above `i64::MAX` as
/// `expected` writes it (an unsigned 64-bit value, its bits preserved).
pub fn arg_text(hit: &Hit, n: usize, expected: &str) -> String {
    let value = hit.args[n];
    if value < 0 && expected.parse::<i64>().is_err() {
        (value as u64).to_string()
    } else {
        value.to_string()
    }
}

/// The string the hit copied for argument `n`, if any.
pub fn string(hit: &Hit, n: usize) -> Option<String> {
    let count = (hit.string_count as usize).min(hit.strings.len());
    hit.strings[..count]
        .iter()
        .find(|text| text.arg as usize == n)
        .map(|text| {
            let copied = (text.len as usize).min(text.bytes.len());
            String::from_utf8_lossy(&text.bytes[..copied]).into_owned()
        })
}
