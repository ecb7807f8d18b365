//! The one lock idiom: a poisoned mutex is still used.
//!
//! A task that panics while holding a lock poisons it. Floe turns task panics into task
//! failures and keeps running (the attempt is torn down, the job manager decides), so the data
//! behind the lock is read as it is rather than panicking a second thread.

use std::sync::{Mutex, MutexGuard};

/// `lock()` that ignores poisoning.
///
/// ```
/// use floe::sync::LockExt;
/// let m = std::sync::Mutex::new(1);
/// *m.lock_ok() += 1;
/// assert_eq!(*m.lock_ok(), 2);
/// ```
pub trait LockExt<T: ?Sized> {
    /// Lock, taking the data of a poisoned lock as it is.
    fn lock_ok(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_ok(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}
