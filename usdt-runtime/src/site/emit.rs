//! What a probe site emits on targets with USDT support (Linux on x86-64
//! and aarch64): the asm block with the no-op instruction, the stapsdt
//! note, the `.stapsdt.base` anchor and the `.usdt.types` record, and the
//! semaphore statics. The architecture modules supply the few pieces that
//! differ.

#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
mod aarch64;

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
                    ".byte {magic}, {version}, {nargs}, {flags}\n",
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
                    $s = const $crate::__private::site_size(<$A as $crate::ProbeArg>::KIND),
                    $k = const <$A as $crate::ProbeArg>::KIND.code(),
                )*
                $(sem = sym $sem,)?
                note_type = const $crate::__private::format::NT_STAPSDT,
                magic = const $crate::__private::format::TYPES_MAGIC,
                version = const $crate::__private::format::TYPES_VERSION,
                nargs = const 0u8 $(+ { let _ = $default; 1u8 })*,
                flags = const $crate::__usdt_flags!($($sem)?),
                options(readonly, preserves_flags),
            )
        }
    };
}

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
            ".pushsection ",
            $crate::__private::format::literal!(PROBES_SECTION),
            ",\"awGR\",\"progbits\",_.usdt.probes.page,comdat\n",
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

/// The `.usdt.types` flags byte: guarded when the site has a semaphore.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_flags {
    () => {
        0u8
    };
    ($sem:path) => {
        $crate::__private::format::TYPES_FLAG_GUARDED
    };
}

/// The start of a stapsdt note, up to and including its base field: what
/// sys/sdt.h emits. The note's pc is label `990`; its type is the asm
/// operand `note_type`.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_note_head {
    () => {
        ::core::concat!(
            ".pushsection ",
            $crate::__private::format::literal!(STAPSDT_NOTE_SECTION),
            ",\"?\",\"note\"\n",
            ".balign 4\n",
            ".4byte 992f-991f, 994f-993f, {note_type}\n",
            "991: .asciz \"",
            $crate::__private::format::literal!(STAPSDT_NOTE_NAME),
            "\"\n",
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
            ".pushsection ",
            $crate::__private::format::literal!(STAPSDT_BASE_SECTION),
            ",\"aGR\",\"progbits\",",
            $crate::__private::format::literal!(STAPSDT_BASE_SECTION),
            ",comdat\n",
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
            ".pushsection ",
            $crate::__private::format::literal!(TYPES_SECTION),
            ",\"?R\",\"progbits\"\n",
            ".reloc ., BFD_RELOC_NONE, _.stapsdt.base\n",
        )
    };
}

/// Declares a probe's semaphore static: in section `.probes`, under the
/// sys/sdt.h symbol name `<provider>_<name>_semaphore`, with hidden
/// visibility (as systemtap's `dtrace -G` makes it). Every crate linked into
/// one executable or shared library shares the one static, and no other
/// object can interpose on it: a cdylib does not export it, so its code
/// reads its own semaphore, the one its notes name, even when the program
/// that loads it defines a symbol of the same name. The linker gives the
/// symbol the most constraining visibility any object declares, so the
/// `.hidden` directive beside the definition is enough.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore {
    ($(#[$meta:meta])* $vis:vis static $ident:ident = $symbol:literal;) => {
        $(#[$meta])*
        #[unsafe(export_name = $symbol)]
        #[unsafe(link_section = $crate::__private::format::literal!(PROBES_SECTION))]
        $vis static $ident: $crate::Semaphore = $crate::Semaphore::new();

        ::core::arch::global_asm!(".hidden {semaphore}", semaphore = sym $ident);
    };
}
