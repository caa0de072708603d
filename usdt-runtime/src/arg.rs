//! Probe argument types: [`ArgKind`], the kind code recorded for each
//! argument, and [`ProbeArg`], the conversion of a Rust value into the
//! machine words a tracer reads.

use core::ffi::CStr;
use core::fmt;

/// How one Rust-level probe argument is encoded, and its code in the
/// `.usdt.types` section.
///
/// One-slot kinds occupy one note argument (one register holding the value,
/// widened to 64 bits). Two-slot kinds occupy two note arguments, both read
/// through one register that points at a 16-byte pair on the stack: (pointer,
/// length in bytes) for strings, bytes and JSON, (low 64 bits, high 64 bits)
/// for 128-bit integers.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArgKind {
    /// `u8`: `1@REG`.
    U8 = 1,
    /// `u16`: `2@REG`.
    U16 = 2,
    /// `u32`: `4@REG`.
    U32 = 3,
    /// `u64`: `8@REG`.
    U64 = 4,
    /// `usize`: unsigned, pointer-sized.
    Usize = 5,
    /// `i8`: `-1@REG`.
    I8 = 6,
    /// `i16`: `-2@REG`.
    I16 = 7,
    /// `i32`: `-4@REG`.
    I32 = 8,
    /// `i64`: `-8@REG`.
    I64 = 9,
    /// `isize`: signed, pointer-sized.
    Isize = 10,
    /// `u128`: two slots, low then high 64 bits, both unsigned.
    U128 = 11,
    /// `i128`: two slots, low 64 bits unsigned, high 64 bits signed.
    I128 = 12,
    /// `bool`: `1@REG`, 0 or 1.
    Bool = 13,
    /// `char`: `4@REG`, the Unicode scalar value.
    Char = 14,
    /// `f32`: `4@REG`, the IEEE 754 bits.
    F32 = 15,
    /// `f64`: `8@REG`, the IEEE 754 bits.
    F64 = 16,
    /// A raw pointer: unsigned, pointer-sized, the address.
    Ptr = 17,
    /// `&CStr`: one slot, a pointer to a NUL-terminated string.
    CStr = 18,
    /// `&str`: two slots, pointer and length in bytes of UTF-8 text.
    Str = 19,
    /// `&[u8]`: two slots, pointer and length in bytes.
    Bytes = 20,
    /// JSON text produced while the probe is enabled: two slots, pointer and
    /// length in bytes of UTF-8 text.
    Json = 21,
}

/// The signed size of a pointer-sized note argument on this target.
const POINTER_SIZE: i8 = core::mem::size_of::<usize>() as i8;

impl ArgKind {
    /// Every kind, in code order.
    pub const ALL: [ArgKind; 21] = [
        ArgKind::U8,
        ArgKind::U16,
        ArgKind::U32,
        ArgKind::U64,
        ArgKind::Usize,
        ArgKind::I8,
        ArgKind::I16,
        ArgKind::I32,
        ArgKind::I64,
        ArgKind::Isize,
        ArgKind::U128,
        ArgKind::I128,
        ArgKind::Bool,
        ArgKind::Char,
        ArgKind::F32,
        ArgKind::F64,
        ArgKind::Ptr,
        ArgKind::CStr,
        ArgKind::Str,
        ArgKind::Bytes,
        ArgKind::Json,
    ];

    /// The kind's code in the `.usdt.types` section.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind with the given `.usdt.types` code, if there is one.
    pub const fn from_code(code: u8) -> Option<ArgKind> {
        if code >= 1 && code as usize <= Self::ALL.len() {
            Some(Self::ALL[code as usize - 1])
        } else {
            None
        }
    }

    /// The name a signature shows for the kind: `u64`, `&str`, `json`, ...
    pub const fn name(self) -> &'static str {
        match self {
            ArgKind::U8 => "u8",
            ArgKind::U16 => "u16",
            ArgKind::U32 => "u32",
            ArgKind::U64 => "u64",
            ArgKind::Usize => "usize",
            ArgKind::I8 => "i8",
            ArgKind::I16 => "i16",
            ArgKind::I32 => "i32",
            ArgKind::I64 => "i64",
            ArgKind::Isize => "isize",
            ArgKind::U128 => "u128",
            ArgKind::I128 => "i128",
            ArgKind::Bool => "bool",
            ArgKind::Char => "char",
            ArgKind::F32 => "f32",
            ArgKind::F64 => "f64",
            ArgKind::Ptr => "ptr",
            ArgKind::CStr => "&CStr",
            ArgKind::Str => "&str",
            ArgKind::Bytes => "&[u8]",
            ArgKind::Json => "json",
        }
    }

    /// How many note arguments the kind occupies: 1, or 2 for strings,
    /// bytes, JSON and 128-bit integers.
    pub const fn slots(self) -> u8 {
        match self {
            ArgKind::U128 | ArgKind::I128 | ArgKind::Str | ArgKind::Bytes | ArgKind::Json => 2,
            _ => 1,
        }
    }

    /// The signed sizes written in the note's argument string for each slot
    /// (`-4` for `i32`, `8` for a pointer, ...); the second is 0 for
    /// one-slot kinds.
    pub const fn note_sizes(self) -> [i8; 2] {
        match self {
            ArgKind::U8 | ArgKind::Bool => [1, 0],
            ArgKind::U16 => [2, 0],
            ArgKind::U32 | ArgKind::Char | ArgKind::F32 => [4, 0],
            ArgKind::U64 | ArgKind::F64 => [8, 0],
            ArgKind::Usize | ArgKind::Ptr | ArgKind::CStr => [POINTER_SIZE, 0],
            ArgKind::I8 => [-1, 0],
            ArgKind::I16 => [-2, 0],
            ArgKind::I32 => [-4, 0],
            ArgKind::I64 => [-8, 0],
            ArgKind::Isize => [-POINTER_SIZE, 0],
            ArgKind::U128 | ArgKind::Str | ArgKind::Bytes | ArgKind::Json => [8, 8],
            ArgKind::I128 => [8, -8],
        }
    }

    /// The one size the site's assembly needs: the slot size of a one-slot
    /// kind, the second slot's size of a two-slot kind (the first is always
    /// `8`).
    #[doc(hidden)]
    pub const fn site_size(self) -> i8 {
        let sizes = self.note_sizes();
        if self.slots() == 2 {
            sizes[1]
        } else {
            sizes[0]
        }
    }
}

impl fmt::Display for ArgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value that can be passed to a probe.
///
/// Implemented for every integer type, `bool`, `char`, `f32`, `f64`, raw
/// pointers, [`CStr`], `str`, `[u8]` (and `[u8; N]`), `String`, `Vec<u8>`,
/// `CString`, and for references, boxes and `Cow`s of those. Implement it for
/// your own type (a newtype identifier, say) by delegating to one of these.
///
/// The words returned by [`to_words`](ProbeArg::to_words) must follow
/// [`KIND`](ProbeArg::KIND): for a one-slot kind the value widened to 64
/// bits in the first word (sign-extended for signed kinds); for a two-slot
/// kind the pair (pointer, length) or (low, high).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a USDT probe argument",
    label = "`{Self}` does not implement `usdt_runtime::ProbeArg`",
    note = "probe arguments are integers, bool, char, f32, f64, raw pointers, &CStr, &str or String, \
            &[u8] or Vec<u8>; typed providers also take any serde::Serialize value marked #[json]"
)]
pub trait ProbeArg {
    /// The kind recorded for this type in the `.usdt.types` section, which
    /// also fixes its note argument sizes.
    const KIND: ArgKind;

    /// The words a tracer reads for this value.
    fn to_words(&self) -> [u64; 2];

    /// The value itself. The macros pass every argument through this call so
    /// that an unsupported type is reported once, at the argument, without
    /// the notes a bound of a generic function adds.
    #[doc(hidden)]
    #[inline(always)]
    fn __usdt_arg(&self) -> &Self {
        self
    }
}

// Every impl below is `#[diagnostic::do_not_recommend]`: an unsupported
// argument is then reported as `T cannot be a USDT probe argument` with the
// trait's note listing the supported types, instead of a list of eight of
// the 40-odd impls and "and 33 others".

macro_rules! unsigned_arg {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        #[diagnostic::do_not_recommend]
        impl ProbeArg for $ty {
            const KIND: ArgKind = ArgKind::$kind;
            #[inline(always)]
            fn to_words(&self) -> [u64; 2] {
                [*self as u64, 0]
            }
        }
    )*};
}

macro_rules! signed_arg {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        #[diagnostic::do_not_recommend]
        impl ProbeArg for $ty {
            const KIND: ArgKind = ArgKind::$kind;
            #[inline(always)]
            fn to_words(&self) -> [u64; 2] {
                // Sign-extend to 64 bits, then reinterpret.
                [*self as i64 as u64, 0]
            }
        }
    )*};
}

unsigned_arg!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, usize => Usize);
signed_arg!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, isize => Isize);

#[diagnostic::do_not_recommend]
impl ProbeArg for u128 {
    const KIND: ArgKind = ArgKind::U128;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [*self as u64, (*self >> 64) as u64]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for i128 {
    const KIND: ArgKind = ArgKind::I128;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [*self as u64, (*self >> 64) as i64 as u64]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for bool {
    const KIND: ArgKind = ArgKind::Bool;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [*self as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for char {
    const KIND: ArgKind = ArgKind::Char;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [*self as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for f32 {
    const KIND: ArgKind = ArgKind::F32;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.to_bits() as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for f64 {
    const KIND: ArgKind = ArgKind::F64;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.to_bits(), 0]
    }
}

#[diagnostic::do_not_recommend]
impl<T: ?Sized> ProbeArg for *const T {
    const KIND: ArgKind = ArgKind::Ptr;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.cast::<()>().expose_provenance() as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl<T: ?Sized> ProbeArg for *mut T {
    const KIND: ArgKind = ArgKind::Ptr;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.cast::<()>().expose_provenance() as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for CStr {
    const KIND: ArgKind = ArgKind::CStr;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.as_ptr().expose_provenance() as u64, 0]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for str {
    const KIND: ArgKind = ArgKind::Str;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.as_ptr().expose_provenance() as u64, self.len() as u64]
    }
}

#[diagnostic::do_not_recommend]
impl ProbeArg for [u8] {
    const KIND: ArgKind = ArgKind::Bytes;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        [self.as_ptr().expose_provenance() as u64, self.len() as u64]
    }
}

#[diagnostic::do_not_recommend]
impl<const N: usize> ProbeArg for [u8; N] {
    const KIND: ArgKind = ArgKind::Bytes;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        self.as_slice().to_words()
    }
}

#[diagnostic::do_not_recommend]
impl<T: ProbeArg + ?Sized> ProbeArg for &T {
    const KIND: ArgKind = T::KIND;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        (**self).to_words()
    }
}

#[diagnostic::do_not_recommend]
impl<T: ProbeArg + ?Sized> ProbeArg for &mut T {
    const KIND: ArgKind = T::KIND;
    #[inline(always)]
    fn to_words(&self) -> [u64; 2] {
        (**self).to_words()
    }
}

macro_rules! nonzero_arg {
    ($($ty:ty),* $(,)?) => {$(
        #[diagnostic::do_not_recommend]
        impl ProbeArg for core::num::NonZero<$ty> {
            const KIND: ArgKind = <$ty as ProbeArg>::KIND;
            #[inline(always)]
            fn to_words(&self) -> [u64; 2] {
                self.get().to_words()
            }
        }
    )*};
}

nonzero_arg!(
    u8, u16, u32, u64, usize, u128, i8, i16, i32, i64, isize, i128
);

mod alloc_impls {
    use super::{ArgKind, ProbeArg};
    use alloc::borrow::{Cow, ToOwned};
    use alloc::boxed::Box;
    use alloc::ffi::CString;
    use alloc::string::String;
    use alloc::vec::Vec;

    #[diagnostic::do_not_recommend]
    impl ProbeArg for String {
        const KIND: ArgKind = ArgKind::Str;
        #[inline(always)]
        fn to_words(&self) -> [u64; 2] {
            self.as_str().to_words()
        }
    }

    #[diagnostic::do_not_recommend]
    impl ProbeArg for Vec<u8> {
        const KIND: ArgKind = ArgKind::Bytes;
        #[inline(always)]
        fn to_words(&self) -> [u64; 2] {
            self.as_slice().to_words()
        }
    }

    #[diagnostic::do_not_recommend]
    impl ProbeArg for CString {
        const KIND: ArgKind = ArgKind::CStr;
        #[inline(always)]
        fn to_words(&self) -> [u64; 2] {
            self.as_c_str().to_words()
        }
    }

    #[diagnostic::do_not_recommend]
    impl<T: ProbeArg + ?Sized> ProbeArg for Box<T> {
        const KIND: ArgKind = T::KIND;
        #[inline(always)]
        fn to_words(&self) -> [u64; 2] {
            (**self).to_words()
        }
    }

    #[diagnostic::do_not_recommend]
    impl<T: ProbeArg + ToOwned + ?Sized> ProbeArg for Cow<'_, T> {
        const KIND: ArgKind = T::KIND;
        #[inline(always)]
        fn to_words(&self) -> [u64; 2] {
            (**self).to_words()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_follow_the_contract() {
        for (i, kind) in ArgKind::ALL.iter().enumerate() {
            assert_eq!(kind.code() as usize, i + 1);
            assert_eq!(ArgKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(ArgKind::from_code(0), None);
        assert_eq!(ArgKind::from_code(22), None);
        assert_eq!(ArgKind::Str.code(), 19);
        assert_eq!(ArgKind::Json.code(), 21);
        assert_eq!(ArgKind::I128.note_sizes(), [8, -8]);
        assert_eq!(ArgKind::I32.note_sizes(), [-4, 0]);
        assert_eq!(ArgKind::Ptr.note_sizes(), [8, 0]);
    }

    #[test]
    fn words_are_widened_by_sign() {
        assert_eq!((-1i8).to_words(), [u64::MAX, 0]);
        assert_eq!(u8::MAX.to_words(), [255, 0]);
        assert_eq!(i32::MIN.to_words()[0] as i64, i32::MIN as i64);
        assert_eq!(i128::MIN.to_words(), [0, 1 << 63]);
        assert_eq!((-2i128).to_words(), [u64::MAX - 1, u64::MAX]);
        assert_eq!(u128::MAX.to_words(), [u64::MAX, u64::MAX]);
        assert_eq!('é'.to_words(), [0xe9, 0]);
        assert_eq!((1.5f32).to_words(), [1.5f32.to_bits() as u64, 0]);
        let s = "hello";
        assert_eq!(s.to_words(), [s.as_ptr() as u64, 5]);
        assert_eq!((&&s).to_words(), s.to_words());
    }
}
