//! Declare USDT probes in Rust code.
//!
//! A USDT (user-level statically defined tracing) probe marks a point in a
//! program that a tracer can attach to while the program runs. The compiled
//! program carries the same `.note.stapsdt` records that C's `<sys/sdt.h>`
//! (`DTRACE_PROBEn`, `STAP_PROBEn`) emits, so every existing tool sees the
//! probes: `readelf -n`, gdb (`info probes`, `break -probe-stap`), bpftrace,
//! bcc, perf, systemtap, and this project's own `usdt` command.
//!
//! A probe nobody traces costs one no-op instruction (plus putting its
//! arguments in registers); a probe of a typed provider costs one load and
//! a not-taken branch, and evaluates its arguments only while traced.
//!
//! # Plain probes
//!
//! [`probe!`]`(provider, name, args...)` is the counterpart of
//! `DTRACE_PROBEn`: 0 to 12 arguments, always evaluated, always firing.
//!
//! ```
//! use usdt_runtime::probe;
//!
//! fn checksum(data: &[u8]) -> u32 {
//!     let sum = data.iter().map(|&b| b as u32).sum();
//!     probe!(demo, checksum, data, sum);
//!     sum
//! }
//! # assert_eq!(checksum(b"ab"), 195);
//! ```
//!
//! # Typed providers
//!
//! [`provider`] turns a module of probe signatures into functions with
//! type-checked arguments, guarded by a semaphore: the arguments are a
//! closure that runs only while a tracer has the probe enabled.
//!
//! ```
//! #[usdt_runtime::provider]
//! mod http {
//!     /// A request arrived.
//!     pub fn request_start(id: u64, method: &str, path: &str);
//!     /// A response was sent.
//!     pub fn request_done(id: u64, status: u16, micros: u64);
//!     /// The server is idle.
//!     pub fn idle();
//! }
//!
//! let (id, method, path) = (7u64, String::from("GET"), "/index.html");
//! http::request_start(|| (id, method.as_str(), path));
//! http::request_done(|| (id, 200, 1250));
//! http::idle();
//! if http::request_done::enabled() {
//!     // Compute something expensive only a tracer wants to see.
//! }
//! # assert!(!http::request_start::enabled());
//! ```
//!
//! The provider name is the module's name (`#[provider(name = "...")]`
//! overrides it). Each `fn` declares one probe and generates:
//!
//! - a function of the same name that takes the arguments as a closure
//!   returning a tuple in declaration order (the bare value for one
//!   argument, no closure for none); a `&str` or `String` parameter accepts
//!   anything `AsRef<str>` (a `String` built inside the closure, say), a
//!   `&[u8]` or `Vec<u8>` parameter anything `AsRef<[u8]>`, a `&CStr`
//!   parameter anything `AsRef<CStr>`, any other `&T` parameter anything
//!   `Borrow<T>`; other types must match exactly;
//! - a module of the same name holding the probe's [`Semaphore`]
//!   (`SEMAPHORE`) and `enabled()`.
//!
//! The semaphore is a static named `<provider>_<name>_semaphore` in section
//! `.probes`, as sys/sdt.h names it, so every call site, in every crate,
//! shares it. Its symbol has hidden visibility, as systemtap's `dtrace -G`
//! gives it: a shared library neither exports its semaphores nor reads
//! another object's copy of the same name. Rust visibility follows the
//! declaration. The module body
//! sees the enclosing module's items (`use super::*` is implied; items local
//! to a function body are not in a module, so declare the provider outside
//! functions), and may hold other items, such as `use` declarations, which
//! are kept as they are.
//!
//! With the `serde` feature, a parameter marked `#[json]` takes any
//! `serde::Serialize` value (owned or borrowed); its JSON text is built with
//! `serde_json` only while the probe is enabled, and a value whose
//! serialization fails is passed as `null`:
//!
//! ```
//! # #[cfg(feature = "serde")]
//! # mod example {
//! #[derive(serde::Serialize)]
//! struct Order { items: Vec<String>, total_cents: u64 }
//!
//! #[usdt_runtime::provider]
//! mod shop {
//!     pub fn order_placed(id: u64, #[json] order: &Order);
//! }
//!
//! # pub fn main() {
//! let order = Order { items: vec!["tea".into()], total_cents: 450 };
//! shop::order_placed(|| (1, &order));
//! # }
//! # }
//! # fn main() {
//! # #[cfg(feature = "serde")]
//! # example::main();
//! # }
//! ```
//!
//! # Argument types
//!
//! Every argument implements [`ProbeArg`]:
//!
//! | Rust type | note argument (x86-64) | [`ArgKind`] |
//! | --- | --- | --- |
//! | `u8`, `u16`, `u32`, `u64`, `usize` | `1@%rax`, `2@`, `4@`, `8@`, `8@` | `u8` ... `usize` |
//! | `i8`, `i16`, `i32`, `i64`, `isize` | `-1@%rax`, `-2@`, `-4@`, `-8@`, `-8@` | `i8` ... `isize` |
//! | `u128`, `i128` | `8@0(%rax) 8@8(%rax)`, `8@0(%rax) -8@8(%rax)` | `u128`, `i128` |
//! | `bool` | `1@%rax` (0 or 1) | `bool` |
//! | `char` | `4@%rax` (the Unicode scalar value) | `char` |
//! | `f32`, `f64` | `4@%rax`, `8@%rax` (the IEEE 754 bits) | `f32`, `f64` |
//! | `*const T`, `*mut T` | `8@%rax` | `ptr` |
//! | `&CStr`, `CString` | `8@%rax` (pointer to the NUL-terminated text) | `&CStr` |
//! | `&str`, `String` | `8@0(%rax) 8@8(%rax)` (pointer, length) | `&str` |
//! | `&[u8]`, `[u8; N]`, `Vec<u8>` | `8@0(%rax) 8@8(%rax)` (pointer, length) | `&[u8]` |
//! | `#[json] T` (typed providers, `serde` feature) | `8@0(%rax) 8@8(%rax)` (pointer, length) | `json` |
//!
//! References, `Box`, `Cow` and `NonZero` pass through to the type they
//! hold. Strings and bytes are never copied: the tracer reads them where
//! they are.
//!
//! # Targets
//!
//! Probes are emitted on Linux for x86-64 (the site is the 5-byte
//! `nopl 0(%rax,%rax,1)`, which the kernel can turn into a call to its
//! uprobe trampoline instead of a trap) and aarch64 (`nop`). On every
//! other target the macros compile to nothing: arguments are type-checked
//! but not evaluated, and `enabled()` is always false.
//!
//! The probes work in executables, shared libraries (`cdylib`) and
//! libraries used by other crates, at every optimization level, with LTO and
//! with stripped symbols. A probe in a generic or inlined function gets one
//! site per instantiation or inlined copy; they share the probe's name (and
//! semaphore).
//!
//! # The binary format
//!
//! The stapsdt notes, the `.usdt.types` records and the [`ArgKind`] codes
//! this crate writes are the contract between it and the tools that read
//! probes; [`usdt_format`] defines them (section names, record layout,
//! magic, version, kind codes, the argument limit). How this crate writes
//! them:
//!
//! - Each site's note in `.note.stapsdt` keeps sys/sdt.h's section flags, so
//!   our probes and other crates' can share an object file, and holds three
//!   8-byte addresses. `.stapsdt.base` is sys/sdt.h's one-byte section,
//!   here also flagged `SHF_GNU_RETAIN`.
//! - Typed providers' semaphores are `u16`s in the writable section
//!   `.probes`, which starts on a page boundary (4 KiB on x86-64, 64 KiB on
//!   aarch64): the kernel raises a semaphore in the first writable mapping
//!   of its file page, and with lld's layout the page after the RELRO
//!   segment is mapped twice, so a semaphore there would be raised in the
//!   wrong copy in processes started while a tracer is attached.
//! - Next to every note is a `.usdt.types` record whose section's only flag
//!   is `SHF_GNU_RETAIN` (without it GNU ld drops the section; it is not
//!   loaded at run time). Its arguments are named as declared, `arg0`,
//!   `arg1`, ... for [`probe!`].
//!
//! The linker's section garbage collection (always on for Rust) keeps every
//! function that holds a probe site, and `.stapsdt.base`: both are
//! referenced from `.usdt.types`, which is a root of the collection. Without
//! that, lld drops an unused function and `.stapsdt.base` but keeps the
//! notes, whose addresses then point at whatever lies at the start of the
//! file (C programs built with sys/sdt.h and `--gc-sections` suffer this).
//!
//! Every Rust argument is passed in one general-purpose register, widened to
//! 64 bits (sign-extended for signed types, zero-extended otherwise), so a
//! reader that ignores the size is still right.
//!
//! - A one-slot argument is one note argument `SIZE@REG` with the signed
//!   size of the Rust type and the full register: `-4@%rdi` for an `i32`
//!   on x86-64, `4@x3` for a `u32` on aarch64.
//! - A two-slot argument (`&str`, `&[u8]`, JSON, `u128`, `i128`) is a 16-byte
//!   pair on the stack whose address is in the register, and two note
//!   arguments that read through it: `8@0(%rax) 8@8(%rax)` on x86-64,
//!   `8@[x0] 8@[x0, 8]` on aarch64. Strings, bytes and JSON pass (pointer,
//!   length in bytes); 128-bit integers pass (low 64 bits, high 64 bits), the
//!   high half signed for `i128` (`8@0(%rax) -8@8(%rax)`).
//! - A probe has at most [`usdt_format::MAX_ARGS`] (12) note arguments
//!   (sys/sdt.h's limit), so two-slot arguments count twice.
//!
//! # Names
//!
//! Provider and probe names must be ASCII letters, digits and `_`, not
//! starting with a digit, at most [`MAX_NAME_LEN`] bytes, so that every
//! sys/sdt.h tool accepts them; anything else is a compile-time error.
//!
//! # Features
//!
//! - `serde`: `#[json]` arguments in typed providers.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

mod accept;
mod arg;
mod json;
mod semaphore;
mod site;

pub use arg::ProbeArg;
pub use json::JsonArg;
pub use semaphore::Semaphore;
pub use usdt_format::ArgKind;
pub use usdt_format::{MAX_NAME_LEN, is_valid_name};
pub use usdt_macros::provider;

/// Whether this target emits probes (Linux on x86-64 or aarch64). Elsewhere
/// probes compile to nothing and semaphores always read disabled.
pub const PROBES_SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// Fires a probe: `probe!(provider, name, arg, ...)`, the counterpart of
/// sys/sdt.h's `DTRACE_PROBEn`.
///
/// `provider` and `name` are identifiers (see [the naming
/// rules](crate#names)); the 0 to 12 arguments are any expressions a
/// function call takes (`x as u32`, `len + 1`, `name.as_str()`,
/// `format!(...)`, a block, ...) of types that implement [`ProbeArg`],
/// borrowed, not moved. They are always evaluated on
/// targets that emit probes; the probe itself costs one no-op instruction.
/// Use a [`provider`] to skip evaluating them while no tracer listens.
///
/// ```
/// use std::ffi::CStr;
/// use usdt_runtime::probe;
///
/// let name = String::from("job-1");
/// let tag: &CStr = c"batch";
/// probe!(worker, started);
/// probe!(worker, job, 42u64, -3i32, name, tag, 2.5f64, true);
/// probe!(worker, bytes, b"raw".as_slice(), u128::MAX);
/// probe!(worker, derived, name.len() as u32 + 1, -2.5 * 2.0, format!("{name}!"));
/// # drop(name);
/// ```
#[macro_export]
macro_rules! probe {
    ($($tokens:tt)*) => {
        $crate::__private::probe!($crate; $($tokens)*)
    };
}

/// Support for the macros' expansions; not a stable interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::accept::{BytesArg, CStrArg, RefArg, StrArg};
    pub use crate::json::Json;
    pub use usdt_format as format;
    pub use usdt_macros::__probe as probe;

    /// The one note argument size the site's assembly needs for `kind` on
    /// this target: the size of a one-slot kind, the second slot's size of
    /// a two-slot kind (the first is always `8`).
    pub const fn site_size(kind: crate::ArgKind) -> i8 {
        let sizes = kind.note_sizes(core::mem::size_of::<usize>() as i8);
        if kind.slots() == 2 {
            sizes[1]
        } else {
            sizes[0]
        }
    }

    /// The address of a two-slot argument's pair, exposed so the probe site
    /// (and the tracer) may read through it.
    #[inline(always)]
    pub fn words_address(words: &[u64; 2]) -> u64 {
        (words as *const [u64; 2]).expose_provenance() as u64
    }
}
