//! What the argument closure of a typed provider's probe may return for a
//! parameter whose declared type is a reference or an owned string or byte
//! string: one trait per kind of parameter, so that a wrong value is
//! reported with the types the parameter takes.
//!
//! Each trait has one blanket impl, marked `do_not_recommend` so that an
//! error names the trait's message rather than the `AsRef` or `Borrow`
//! bound behind it.

use core::borrow::Borrow;
use core::ffi::CStr;

/// A value for a `&str` or `String` parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed for a `&str` probe argument",
    label = "expected `&str`, `String` or another type that implements `AsRef<str>`"
)]
pub trait StrArg {
    /// The text.
    fn probe_str(&self) -> &str;
}

#[diagnostic::do_not_recommend]
impl<T: AsRef<str> + ?Sized> StrArg for T {
    #[inline(always)]
    fn probe_str(&self) -> &str {
        self.as_ref()
    }
}

/// A value for a `&[u8]` or `Vec<u8>` parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed for a `&[u8]` probe argument",
    label = "expected `&[u8]`, `[u8; N]`, `Vec<u8>` or another type that implements `AsRef<[u8]>`"
)]
pub trait BytesArg {
    /// The bytes.
    fn probe_bytes(&self) -> &[u8];
}

#[diagnostic::do_not_recommend]
impl<T: AsRef<[u8]> + ?Sized> BytesArg for T {
    #[inline(always)]
    fn probe_bytes(&self) -> &[u8] {
        self.as_ref()
    }
}

/// A value for a `&CStr` or `CString` parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed for a `&CStr` probe argument",
    label = "expected `&CStr`, `CString` or another type that implements `AsRef<CStr>`"
)]
pub trait CStrArg {
    /// The NUL-terminated text.
    fn probe_cstr(&self) -> &CStr;
}

#[diagnostic::do_not_recommend]
impl<T: AsRef<CStr> + ?Sized> CStrArg for T {
    #[inline(always)]
    fn probe_cstr(&self) -> &CStr {
        self.as_ref()
    }
}

/// A value for a `&T` parameter (and for a `#[json]` parameter of type `T`
/// or `&T`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed for a `&{T}` probe argument",
    label = "expected `{T}`, `&{T}` or another type that implements `Borrow<{T}>`"
)]
pub trait RefArg<T: ?Sized> {
    /// The value borrowed.
    fn probe_ref(&self) -> &T;
}

#[diagnostic::do_not_recommend]
impl<T: ?Sized, U: Borrow<T> + ?Sized> RefArg<T> for U {
    #[inline(always)]
    fn probe_ref(&self) -> &T {
        self.borrow()
    }
}
