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
/// [`Semaphore`](crate::Semaphore) static, NAME is a string literal or `_`
/// (named `argN` after its position) and EXPR borrows the argument, checked
/// (`ProbeArg::__usdt_arg(&(x))`, written by the caller with the argument's
/// spans so that a type error is reported once, at the argument).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_site {
    (
        provider: [$($provider:tt)+], name: [$($name:tt)+], semaphore: [$($sem:tt)*],
        args: [$($argname:tt = $arg:expr),* $(,)?]
    ) => {
        $crate::__usdt_site!(@pool
            [@zip [provider: [$($provider)+], name: [$($name)+], semaphore: [$($sem)*]]]
            [[$($argname = $arg),*] []]
        )
    };
    // The identifiers of one argument (type parameter, parameter, register
    // operand, slot count, size and kind operands, separator, default name),
    // one set per argument a probe may have: `usdt_format::MAX_ARGS` sets
    // (checked below). Expands to `__usdt_site!(BEFORE [POOL] AFTER)`.
    (@pool [$($before:tt)*] [$($after:tt)*]) => {
        $crate::__usdt_site!($($before)*
            [
                [A0 a0 r0 n0 s0 k0 "" "arg0"] [A1 a1 r1 n1 s1 k1 " " "arg1"]
                [A2 a2 r2 n2 s2 k2 " " "arg2"] [A3 a3 r3 n3 s3 k3 " " "arg3"]
                [A4 a4 r4 n4 s4 k4 " " "arg4"] [A5 a5 r5 n5 s5 k5 " " "arg5"]
                [A6 a6 r6 n6 s6 k6 " " "arg6"] [A7 a7 r7 n7 s7 k7 " " "arg7"]
                [A8 a8 r8 n8 s8 k8 " " "arg8"] [A9 a9 r9 n9 s9 k9 " " "arg9"]
                [A10 a10 r10 n10 s10 k10 " " "arg10"] [A11 a11 r11 n11 s11 k11 " " "arg11"]
            ]
            $($after)*
        )
    };
    // The number of sets in the pool.
    (@count [$($set:tt)*]) => {
        0usize $(+ $crate::__usdt_site!(@one $set))*
    };
    (@one $set:tt) => {
        1usize
    };
    // Pair each argument with the next set of identifiers from the pool.
    (@zip $hdr:tt [$next:tt $($pool:tt)*] [$argname:tt = $arg:expr $(, $($rest:tt)*)?] [$($acc:tt)*]) => {
        $crate::__usdt_site!(@zip $hdr [$($pool)*] [$($($rest)*)?] [$($acc)* [$next $argname $arg]])
    };
    (@zip $hdr:tt [] [$($rest:tt)+] $acc:tt) => {
        ::core::compile_error!(::core::concat!(
            "a USDT probe takes at most ",
            $crate::__private::format::literal!(MAX_ARGS),
            " arguments"
        ))
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
                    0 $(+ <$A as $crate::ProbeArg>::KIND.slots())* <= $crate::__private::format::MAX_ARGS,
                    ::core::concat!(
                        "a USDT probe takes at most ",
                        $crate::__private::format::literal!(MAX_ARGS),
                        " note arguments (&str, &[u8], u128, i128 and #[json] arguments take two each)"
                    )
                )
            };
            $crate::__usdt_asm!(
                [$($provider)+] [$($name)+] [$($sem)?]
                [$([$A $a $r $n $s $k $sep [$argname] [$default]])*]
            );
        }
        $crate::__usdt_call!(__usdt_site($($arg),*))
    }};
}

// The pool has one set of identifiers per argument a probe may have.
const _: () = assert!(__usdt_site!(@pool [@count] []) == usdt_format::MAX_ARGS);

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod emit;

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod unsupported;
