//! The aarch64 probe site: `nop`, operands `x0` and `[x0, 8]`.

/// The asm block of one site (see `__usdt_site!`).
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
        // stack below the stack pointer (no `nostack`), as a tracer
        // may.
        unsafe {
            ::core::arch::asm!(
                ::core::concat!(
                    "990: nop\n",
                    $crate::__usdt_note_head!(),
                    ".8byte ", $crate::__usdt_semaphore_field!($($sem)?), "\n",
                    ".asciz \"", $($provider)+, "\"\n",
                    ".asciz \"", $($name)+, "\"\n",
                    $(
                        ".if {", ::core::stringify!($n), "} == 2\n",
                        ".ascii \"", $sep, "8@[{", ::core::stringify!($r), "}] {",
                        ::core::stringify!($s), "}@[{", ::core::stringify!($r), "}, 8]\"\n",
                        ".else\n",
                        ".ascii \"", $sep, "{", ::core::stringify!($s), "}@{", ::core::stringify!($r), "}\"\n",
                        ".endif\n",
                    )*
                    $crate::__usdt_note_tail!(),
                    $crate::__usdt_semaphore_page!("65536" $($sem)?),
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

/// Calls the site function: arguments are always evaluated.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_call {
    ($($call:tt)*) => {
        $($call)*
    };
}
