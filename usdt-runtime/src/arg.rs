//! [`ProbeArg`]: the conversion of a Rust value into the machine words a
//! tracer reads, and the [`ArgKind`] recorded for it.

use core::ffi::CStr;
use usdt_format::ArgKind;

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
    fn kinds_follow_the_words() {
        assert_eq!(<&str as ProbeArg>::KIND, ArgKind::Str);
        assert_eq!(<u128 as ProbeArg>::KIND.slots(), 2);
        assert_eq!(<core::num::NonZero<i32> as ProbeArg>::KIND, ArgKind::I32);
        assert_eq!(crate::__private::site_size(ArgKind::I32), -4);
        assert_eq!(crate::__private::site_size(ArgKind::I128), -8);
        assert_eq!(crate::__private::site_size(ArgKind::Ptr), 8);
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
