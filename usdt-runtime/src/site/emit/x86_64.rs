//! The x86-64 pieces of a probe site: the 5-byte `nopl 0(%rax,%rax,1)`
//! that the kernel can turn into a call to its uprobe trampoline, and AT&T
//! operand spellings (`%rax`, `8@0(%rax)`), as sys/sdt.h writes them.

/// The site's no-op instruction, as bytes: the kernel optimizes uprobes on
/// exactly this encoding.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_nop {
    () => {
        ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00"
    };
}

/// A one-slot argument, `SIZE@%REG` (`$s` and `$r` name asm operands).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_register_operand {
    ($s:ident, $r:ident) => {
        ::core::concat!(
            "{",
            ::core::stringify!($s),
            "}@%{",
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
            "8@0(%{",
            ::core::stringify!($r),
            "}) {",
            ::core::stringify!($s),
            "}@8(%{",
            ::core::stringify!($r),
            "})"
        )
    };
}

/// The largest page size of the architecture.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_page_size {
    () => {
        "4096"
    };
}
