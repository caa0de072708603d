//! `probe_catalog [--loop SECONDS [--wait]]`: fires one probe of every supported
//! argument type, with extreme values, through both the plain `probe!`
//! macro (provider `catalog`) and typed providers (providers `store` and
//! `shelf`).
//!
//! Without arguments it fires everything once and prints how many times the
//! typed probes' argument closures ran (`lazy evaluations: N`), which is 0
//! unless a tracer had a probe enabled. With `--loop SECONDS` it fires
//! everything every 10 ms for up to SECONDS, printing `enabled: PROVIDER:NAME`
//! the first time it sees each typed probe enabled. With `--wait` it
//! first prints `ready PID` and waits for a line on standard input (so a
//! tracer can attach before the first probe fires). SIGUSR1 ends the loop
//! early (a test that is done with the process, however long its traces
//! took to attach).
//!
//! The values are fixed (see each call) so tests can compare what a tracer
//! reads with what was passed.

use serde::Serialize;
use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::hint::black_box;
use std::io::Write;
use std::num::NonZero;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use usdt_runtime::{ProbeArg, probe};

/// A value a `ptr` argument points at, so a tracer can check the pointer by
/// reading through it.
static MARKER: u64 = 0x5eed_cafe_f00d_beef;

/// How many times a typed probe's argument closure ran.
static LAZY_EVALUATIONS: AtomicU64 = AtomicU64::new(0);

/// An order, passed to `store:order_json` as JSON.
#[derive(Serialize)]
pub struct Order {
    /// The order's identifier.
    pub id: u64,
    /// Items bought.
    pub items: Vec<&'static str>,
    /// Total in cents.
    pub total_cents: i64,
}

/// The typed provider: every probe is semaphore-guarded.
#[usdt_runtime::provider]
pub mod store {
    /// An order was placed.
    pub fn order_placed(order_id: u64, customer: &str, total_cents: i64);
    /// The order, as JSON.
    pub fn order_json(order_id: u64, #[json] order: &Order);
    /// An item was scanned: one argument of most kinds.
    pub fn item_scanned(
        sku: u32,
        weight_kg: f64,
        fragile: bool,
        grade: char,
        tag: &[u8],
        label: &CStr,
        serial: u128,
        delta: i128,
    );
    /// A clock tick, no arguments.
    pub fn tick();
}

/// A second typed provider: the parameter types `store` leaves out.
#[usdt_runtime::provider]
pub mod shelf {
    /// A shelf was restocked: the other integer widths, `f32` and a
    /// pointer.
    pub fn restocked(
        count: u8,
        shelf: u16,
        aisle_delta: i8,
        temp_delta: i16,
        balance: i32,
        offset: isize,
        capacity: usize,
        ratio: f32,
        stock: *const u64,
    );
    /// A shelf was relabelled: owned text and bytes, built in the closure.
    pub fn relabelled(label: String, raw: Vec<u8>);
}

/// Counts one evaluation of a typed probe's arguments.
fn lazy<T>(value: T) -> T {
    LAZY_EVALUATIONS.fetch_add(1, Ordering::Relaxed);
    value
}

/// A probe inside a generic function: one site per instantiation.
#[inline(never)]
fn generic_value<T: ProbeArg>(value: T) {
    probe!(catalog, generic, value);
}

/// A probe inside a function inlined into each caller: one site per copy.
#[inline(always)]
fn inlined(call_site: u32) {
    probe!(catalog, inlined, call_site);
}

/// Fires every plain probe once.
fn fire_plain() {
    probe!(catalog, no_args);
    probe!(
        catalog,
        unsigned_max,
        black_box(u8::MAX),
        black_box(u16::MAX),
        black_box(u32::MAX),
        black_box(u64::MAX),
        black_box(usize::MAX)
    );
    probe!(
        catalog,
        unsigned_min,
        black_box(0u8),
        black_box(0u16),
        black_box(0u32),
        black_box(0u64),
        black_box(0usize)
    );
    probe!(
        catalog,
        signed_min,
        black_box(i8::MIN),
        black_box(i16::MIN),
        black_box(i32::MIN),
        black_box(i64::MIN),
        black_box(isize::MIN)
    );
    probe!(
        catalog,
        signed_max,
        black_box(i8::MAX),
        black_box(i16::MAX),
        black_box(i32::MAX),
        black_box(i64::MAX),
        black_box(isize::MAX)
    );
    probe!(
        catalog,
        negative,
        black_box(-1i8),
        black_box(-2i16),
        black_box(-3i32),
        black_box(-4i64),
        black_box(-5isize)
    );
    probe!(
        catalog,
        wide,
        black_box(u128::MAX),
        black_box(i128::MIN),
        black_box(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128),
        black_box(-2i128)
    );
    probe!(
        catalog,
        scalars,
        black_box(true),
        black_box(false),
        black_box('A'),
        black_box('\u{10FFFF}'),
        black_box(1.5f32),
        black_box(-2.25f64),
        black_box(&MARKER as *const u64)
    );
    probe!(
        catalog,
        floats,
        black_box(f32::MAX),
        black_box(f32::MIN_POSITIVE),
        black_box(f64::MIN),
        black_box(f64::NEG_INFINITY)
    );
    let owned = black_box(String::from("owned \u{2603} text"));
    probe!(
        catalog,
        text,
        black_box("hello, probe"),
        owned,
        black_box(&[0x00u8, 0x01, 0xfe, 0xff][..]),
        black_box(c"c string")
    );
    probe!(catalog, empty_text, black_box(""), black_box(&[] as &[u8]));
    probe!(
        catalog,
        twelve,
        black_box(1u8),
        black_box(-2i16),
        black_box(3u32),
        black_box(-4i64),
        black_box(5usize),
        black_box(-6isize),
        black_box(7u16),
        black_box(-8i8),
        black_box(9u64),
        black_box(-10i32),
        black_box(true),
        black_box('z')
    );
    // Owned and wrapped values: each passes as what it holds or points at.
    let mut marker = black_box(MARKER);
    probe!(
        catalog,
        owned,
        black_box(vec![9u8, 8, 7]),
        black_box([1u8, 2, 3, 4]),
        black_box(CString::new("owned c").unwrap()),
        black_box(Box::new(5u32)),
        black_box(Cow::Borrowed("cow")),
        black_box(NonZero::new(9u16).unwrap()),
        &raw mut marker
    );
    generic_value(black_box(200u8));
    generic_value(black_box(-300_000i64));
    inlined(black_box(1));
    inlined(black_box(2));
}

/// Fires every typed probe once (each fires only while enabled).
fn fire_typed() {
    let customer = black_box(String::from("Ada Lovelace"));
    store::order_placed(|| lazy((42, customer.as_str(), -1999)));
    let order = Order {
        id: 42,
        items: vec!["tea", "scones"],
        total_cents: 1999,
    };
    store::order_json(|| lazy((42, &order)));
    let label: &CStr = c"FRAGILE";
    store::item_scanned(|| {
        lazy((
            7_000_001,
            2.5,
            true,
            'B',
            b"\x01\x02\x03",
            label,
            u128::MAX - 1,
            i128::MIN + 1,
        ))
    });
    store::tick();
    shelf::restocked(|| {
        lazy((
            u8::MAX,
            u16::MAX,
            i8::MIN,
            i16::MIN,
            i32::MIN,
            isize::MIN,
            usize::MAX,
            -0.5f32,
            &MARKER as *const u64,
        ))
    });
    shelf::relabelled(|| lazy((format!("aisle {}", 7), vec![0xca, 0xfe])));
}

/// Whether each typed probe is enabled, by name.
fn typed_enabled() -> [(&'static str, bool); 6] {
    [
        ("store:order_placed", store::order_placed::enabled()),
        ("store:order_json", store::order_json::enabled()),
        ("store:item_scanned", store::item_scanned::enabled()),
        ("store:tick", store::tick::enabled()),
        ("shelf:restocked", shelf::restocked::enabled()),
        ("shelf:relabelled", shelf::relabelled::enabled()),
    ]
}

/// Prints the usage and exits with status 2.
fn usage() -> ! {
    eprintln!("usage: probe_catalog [--loop SECONDS [--wait]]");
    std::process::exit(2);
}

/// Set by SIGUSR1: ends `--loop`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGUSR1 set [`STOP`].
fn stop_on_sigusr1() {
    let handler: extern "C" fn(libc::c_int) = on_sigusr1;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (duration, wait) = match args.as_slice() {
        [] => (None, false),
        [flag, secs, rest @ ..] if flag == "--loop" && rest.len() <= 1 => {
            let wait = match rest {
                [] => false,
                [w] if w == "--wait" => true,
                _ => usage(),
            };
            match secs.parse::<u64>() {
                Ok(secs) => (Some(Duration::from_secs(secs)), wait),
                Err(_) => {
                    eprintln!("probe_catalog: --loop takes a number of seconds, not `{secs}`");
                    std::process::exit(2);
                }
            }
        }
        _ => usage(),
    };
    let mut out = std::io::stdout().lock();
    match duration {
        None => {
            fire_plain();
            fire_typed();
        }
        Some(duration) => {
            let _ = writeln!(out, "ready {}", std::process::id());
            let _ = out.flush();
            if wait {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            }
            stop_on_sigusr1();
            let start = Instant::now();
            let mut seen = [false; 6];
            while start.elapsed() < duration && !STOP.load(Ordering::Relaxed) {
                fire_plain();
                fire_typed();
                for (i, (name, enabled)) in typed_enabled().into_iter().enumerate() {
                    if enabled && !seen[i] {
                        seen[i] = true;
                        let _ = writeln!(out, "enabled: {name}");
                        let _ = out.flush();
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let _ = writeln!(
        out,
        "lazy evaluations: {}",
        LAZY_EVALUATIONS.load(Ordering::Relaxed)
    );
}
