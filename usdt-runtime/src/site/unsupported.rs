//! Targets without USDT support: sites compile to nothing. Arguments are
//! type-checked but not evaluated.

/// The asm block of one site: nothing here.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_asm {
    ($provider:tt $name:tt $sem:tt [$([$A:ident $a:ident $($rest:tt)*])*]) => {
        $(let _ = $a;)*
    };
}

/// Calls the site function: never, so arguments are not evaluated.
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_call {
    ($($call:tt)*) => {
        if false {
            $($call)*
        }
    };
}

/// Declares a probe's semaphore static on a target without probes: an
/// ordinary static (object formats such as Mach-O have no `.probes`).
#[doc(hidden)]
#[macro_export]
macro_rules! __usdt_semaphore {
    ($(#[$meta:meta])* $vis:vis static $ident:ident = $symbol:literal;) => {
        $(#[$meta])*
        $vis static $ident: $crate::Semaphore = $crate::Semaphore::new();
    };
}
