//! The aarch64 pieces of a probe site: `nop`, and operand spellings `x0`
//! and `[x0, 8]`, as sys/sdt.h writes them.

/// The site's no-op instruction.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_nop {
    () => {
        "nop"
    };
}

/// A one-slot argument, `SIZE@xN` (`$s` and `$r` name asm operands).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_register_operand {
    ($s:ident, $r:ident) => {
        ::core::concat!(
            "{",
            ::core::stringify!($s),
            "}@{",
            ::core::stringify!($r),
            "}"
        )
    };
}

/// A two-slot argument: the two words at the address in the register.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_pair_operands {
    ($s:ident, $r:ident) => {
        ::core::concat!(
            "8@[{",
            ::core::stringify!($r),
            "}] {",
            ::core::stringify!($s),
            "}@[{",
            ::core::stringify!($r),
            "}, 8]"
        )
    };
}

/// The largest page size of the architecture (kernels with 64 KiB pages
/// exist).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_page_size {
    () => {
        "65536"
    };
}
