//! Giving up an attach under way: a flag, set from anywhere (a signal
//! handler, another thread), looked at between the steps of the attach and
//! every [`CHECK_EVERY`] sites within them.

use crate::error::TraceError;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many sites are planned, stored or attached between two looks at
/// the flag: a look costs an atomic load, a thousand sites a few
/// milliseconds.
pub(crate) const CHECK_EVERY: usize = 1024;

/// The flag that ends an attach under way.
#[derive(Clone, Copy)]
pub(crate) struct Cancel<'a>(&'a AtomicBool);

impl<'a> Cancel<'a> {
    /// Watches `flag`.
    pub(crate) fn new(flag: &'a AtomicBool) -> Cancel<'a> {
        Cancel(flag)
    }

    /// Whether the flag is set.
    pub(crate) fn is_set(self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`TraceError::Cancelled`] once the flag is set.
    pub(crate) fn check(self) -> Result<(), TraceError> {
        if self.is_set() {
            Err(TraceError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Like [`check`](Cancel::check), for the `index`th site of a loop:
    /// looks at the flag every [`CHECK_EVERY`] sites.
    pub(crate) fn check_at(self, index: usize) -> Result<(), TraceError> {
        if index.is_multiple_of(CHECK_EVERY) {
            self.check()
        } else {
            Ok(())
        }
    }
}
