//! The probe site: the `asm!` block that places the no-op instruction, the
//! stapsdt note, the `.stapsdt.base` anchor and the `.usdt.types` record.
//!
//! Everything here is reached through `probe!` and typed providers; the
//! macros are hidden from the docs.
//!
//! A site expands to a nested generic function with one type parameter per
//! argument, so the note text can depend on the argument types through
//! `const` operands (`ProbeArg::KIND`), and one `in(reg)` operand per
//! argument. The function is `#[inline(always)]`: after inlining the site is
//! the no-op instruction in the caller, with the arguments in registers.
//!
//! The asm block does not claim `nostack`: the kernel's optimized uprobe
//! trampoline on x86-64 writes below the stack pointer, so the compiler must
//! keep the red zone free at the site.

/// Emits one probe site. Arguments: `provider: [STR]`, `name: [STR]`,
/// `semaphore: [PATH?]`, `args: [NAME = EXPR, ...]` where STR is a string
/// literal or a macro call expanding to one, PATH names a
/// [`Semaphore`](crate::Semaphore) static, and NAME is a string literal or
/// `_` (named `argN` after its position).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_site {
    (
        provider: [$($provider:tt)+], name: [$($name:tt)+], semaphore: [$($sem:tt)*],
        args: [$($argname:tt = $arg:expr),* $(,)?]
    ) => {
        $crate::__usdt_site!(@zip
            [provider: [$($provider)+], name: [$($name)+], semaphore: [$($sem)*]]
            [
                [A0 a0 r0 n0 s0 k0 "" "arg0"] [A1 a1 r1 n1 s1 k1 " " "arg1"]
                [A2 a2 r2 n2 s2 k2 " " "arg2"] [A3 a3 r3 n3 s3 k3 " " "arg3"]
                [A4 a4 r4 n4 s4 k4 " " "arg4"] [A5 a5 r5 n5 s5 k5 " " "arg5"]
                [A6 a6 r6 n6 s6 k6 " " "arg6"] [A7 a7 r7 n7 s7 k7 " " "arg7"]
                [A8 a8 r8 n8 s8 k8 " " "arg8"] [A9 a9 r9 n9 s9 k9 " " "arg9"]
                [A10 a10 r10 n10 s10 k10 " " "arg10"] [A11 a11 r11 n11 s11 k11 " " "arg11"]
            ]
            [$($argname = $arg),*]
            []
        )
    };
    // Pair each argument with the next set of identifiers from the pool.
    (@zip $hdr:tt [$next:tt $($pool:tt)*] [$argname:tt = $arg:expr $(, $($rest:tt)*)?] [$($acc:tt)*]) => {
        $crate::__usdt_site!(@zip $hdr [$($pool)*] [$($($rest)*)?] [$($acc)* [$next $argname $arg]])
    };
    (@zip $hdr:tt [] [$($rest:tt)+] $acc:tt) => {
        ::core::compile_error!("a USDT probe takes at most 12 arguments")
    };
    (@zip $hdr:tt $pool:tt [] $acc:tt) => {
        $crate::__usdt_site!(@emit $hdr $acc)
    };
    (@emit
        [provider: [$($provider:tt)+], name: [$($name:tt)+], semaphore: [$($sem:path)?]]
        [$([[$A:ident $a:ident $r:ident $n:ident $s:ident $k:ident $sep:literal $default:literal] $argname:tt $arg:expr])*]
    ) => {{
        #[inline(always)]
        #[allow(clippy::too_many_arguments, non_snake_case, unused_unsafe)]
        fn __usdt_site<$($A: $crate::ProbeArg + ?::core::marker::Sized),*>($($a: &$A),*) {
            const {
                ::core::assert!(
                    0 $(+ <$A as $crate::ProbeArg>::KIND.slots() as usize)* <= 12,
                    "a USDT probe takes at most 12 note arguments (&str, &[u8], u128, i128 and #[json] arguments take two each)"
                )
            };
            $crate::__usdt_asm!(
                [$($provider)+] [$($name)+] [$($sem)?]
                [$([$A $a $r $n $s $k $sep [$argname] [$default]])*]
            );
        }
        $crate::__usdt_call!(__usdt_site($(&$arg),*))
    }};
}

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_arch = "x86_64"
))]
mod x86_64;

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_arch = "aarch64"
))]
mod aarch64;

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod unsupported;

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
/// The asm block of one site (see `__usdt_site!`). Registers appear only
/// inside the note's argument text, never as instruction operands, so the
/// template is the same on every architecture but for the pieces the
/// architecture's module supplies: the no-op instruction, the operand
/// spellings and the page size.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_asm {
    (
        [$($provider:tt)+] [$($name:tt)+] [$($sem:path)?]
        [$([$A:ident $a:ident $r:ident $n:ident $s:ident $k:ident $sep:literal [$argname:tt] [$default:literal]])*]
    ) => {
        $(
            let $a: [u64; 2] = <$A as $crate::ProbeArg>::to_words($a);
            let $r: u64 = if <$A as $crate::ProbeArg>::KIND.slots() == 2 {
                $crate::__private::words_address(&$a)
            } else {
                $a[0]
            };
        )*
        // SAFETY: the block only emits a no-op instruction and data in
        // non-executable sections; it reads its register operands, writes no
        // register or memory and leaves the flags alone. It may use the
        // stack below the stack pointer (no `nostack`), as the kernel's
        // uprobe trampoline does on x86-64.
        unsafe {
            ::core::arch::asm!(
                ::core::concat!(
                    "990: ", $crate::__usdt_nop!(), "\n",
                    $crate::__usdt_note_head!(),
                    ".8byte ", $crate::__usdt_semaphore_field!($($sem)?), "\n",
                    ".asciz \"", $($provider)+, "\"\n",
                    ".asciz \"", $($name)+, "\"\n",
                    $(
                        ".if {", ::core::stringify!($n), "} == 2\n",
                        ".ascii \"", $sep, $crate::__usdt_pair_operands!($s, $r), "\"\n",
                        ".else\n",
                        ".ascii \"", $sep, $crate::__usdt_register_operand!($s, $r), "\"\n",
                        ".endif\n",
                    )*
                    $crate::__usdt_note_tail!(),
                    $crate::__usdt_semaphore_page!($($sem)?),
                    $crate::__usdt_types_head!(),
                    ".byte 0x55, 1, {nargs}, ", $crate::__usdt_flags!($($sem)?), "\n",
                    ".8byte 990b\n",
                    ".asciz \"", $($provider)+, "\"\n",
                    ".asciz \"", $($name)+, "\"\n",
                    $(
                        ".byte {", ::core::stringify!($k), "}\n",
                        ".asciz \"", $crate::__usdt_argname!($argname, $default), "\"\n",
                    )*
                    ".popsection\n",
                ),
                $(
                    $r = in(reg) $r,
                    $n = const <$A as $crate::ProbeArg>::KIND.slots(),
                    $s = const <$A as $crate::ProbeArg>::KIND.site_size(),
                    $k = const <$A as $crate::ProbeArg>::KIND.code(),
                )*
                $(sem = sym $sem,)?
                nargs = const 0u8 $(+ { let _ = $default; 1u8 })*,
                options(readonly, preserves_flags),
            )
        }
    };
}

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
/// Calls the site function: arguments are always evaluated.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_call {
    ($($call:tt)*) => {
        $($call)*
    };
}

/// The name recorded for an argument: its declared name, or `argN`.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_argname {
    (_, $default:literal) => {
        $default
    };
    ($name:literal, $default:literal) => {
        $name
    };
}

/// The note's semaphore field: the semaphore's address, or 0.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore_field {
    () => {
        "0"
    };
    ($sem:path) => {
        "{sem}"
    };
}

/// For a site with a semaphore: starts this object's `.probes` on a page
/// boundary (once per object file; the linker keeps one copy of the comdat
/// group, and `R` keeps it through garbage collection). The output section
/// then starts on a page of its own, which no earlier segment maps: lld
/// places the RELRO segment and the writable data segment back to back in
/// the file, and the kernel raises a semaphore (`ref_ctr_offset`) in the
/// first writable mapping of its file page, which would otherwise be the
/// RELRO segment's copy in every process started while a tracer is
/// attached. The alignment is the largest page size of the architecture.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore_page {
    () => {
        ""
    };
    ($sem:path) => {
        ::core::concat!(
            ".ifndef _.usdt.probes.page\n",
            ".pushsection .probes,\"awGR\",\"progbits\",_.usdt.probes.page,comdat\n",
            ".balign ",
            $crate::__usdt_page_size!(),
            "\n",
            ".weak _.usdt.probes.page\n",
            ".hidden _.usdt.probes.page\n",
            "_.usdt.probes.page:\n",
            ".popsection\n",
            ".endif\n",
        )
    };
}

/// The `.usdt.types` flags byte: bit 0 set when the site is guarded by a
/// semaphore.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_flags {
    () => {
        "0"
    };
    ($sem:path) => {
        "1"
    };
}

/// The start of a stapsdt note, up to and including its base field: what
/// sys/sdt.h emits. The note's pc is label `990`.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_note_head {
    () => {
        ::core::concat!(
            ".pushsection .note.stapsdt,\"?\",\"note\"\n",
            ".balign 4\n",
            ".4byte 992f-991f, 994f-993f, 3\n",
            "991: .asciz \"stapsdt\"\n",
            "992: .balign 4\n",
            "993: .8byte 990b\n",
            ".8byte _.stapsdt.base\n",
        )
    };
}

/// The end of a stapsdt note (after the argument string's text), then the
/// `.stapsdt.base` anchor, defined once per object file. The `R` (retain)
/// flag keeps the linker's section garbage collection from dropping it.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_note_tail {
    () => {
        ::core::concat!(
            ".byte 0\n",
            "994: .balign 4\n",
            ".popsection\n",
            ".ifndef _.stapsdt.base\n",
            ".pushsection .stapsdt.base,\"aGR\",\"progbits\",.stapsdt.base,comdat\n",
            ".weak _.stapsdt.base\n",
            ".hidden _.stapsdt.base\n",
            "_.stapsdt.base: .space 1\n",
            ".size _.stapsdt.base, 1\n",
            ".popsection\n",
            ".endif\n",
        )
    };
}

/// Opens this site's `.usdt.types` record. The section is not allocated but
/// flagged `R` (retain), which makes it a root of the linker's garbage
/// collection: its reference to the site (label `990`) keeps the function
/// holding the site, so the site's note never outlives its code (lld would
/// otherwise drop an unused function and keep its note), and a `NONE`
/// relocation keeps `.stapsdt.base` (whichever object's copy the linker
/// picks). The notes themselves keep sys/sdt.h's flags, so they can share
/// `.note.stapsdt` with other emitters' notes in one object file.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_types_head {
    () => {
        ::core::concat!(
            ".pushsection .usdt.types,\"?R\",\"progbits\"\n",
            ".reloc ., BFD_RELOC_NONE, _.stapsdt.base\n",
        )
    };
}

/// Declares a probe's semaphore static: in section `.probes`, exported under
/// the sys/sdt.h symbol name `<provider>_<name>_semaphore`.
#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore {
    ($(#[$meta:meta])* $vis:vis static $ident:ident = $symbol:literal;) => {
        $(#[$meta])*
        #[unsafe(export_name = $symbol)]
        #[unsafe(link_section = ".probes")]
        $vis static $ident: $crate::Semaphore = $crate::Semaphore::new();
    };
}

/// Declares a probe's semaphore static on a target without probes: an
/// ordinary static (object formats such as Mach-O have no `.probes`).
#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore {
    ($(#[$meta:meta])* $vis:vis static $ident:ident = $symbol:literal;) => {
        $(#[$meta])*
        $vis static $ident: $crate::Semaphore = $crate::Semaphore::new();
    };
}
