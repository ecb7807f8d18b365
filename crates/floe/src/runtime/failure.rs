//! Turning panics in user code into task failures with their message.
//!
//! A panic hook records the message of a panic raised on a worker thread (instead of
//! printing it) so the executor can report it like any `Err` from a user function; panics
//! elsewhere keep the default hook's behaviour.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the hook once per process.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(|c| c.get()) {
                let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = info.payload().downcast_ref::<String>() {
                    s.clone()
                } else {
                    "panic with a non-string payload".to_string()
                };
                let loc = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| {
                    let mut p = p.borrow_mut();
                    // Keep the first panic: later ones come from tearing down after it.
                    if p.is_none() {
                        *p = Some(format!("panicked: {msg}{loc}"));
                    }
                });
            } else {
                default(info);
            }
        }));
    });
}

/// Marks the current thread as running tasks (panics are captured, not printed).
pub(crate) fn enter_task_thread() {
    IN_TASK.with(|c| c.set(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
}

/// The message of the first panic on this thread since [`enter_task_thread`].
pub(crate) fn take_panic_message() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}

thread_local! {
    static CURRENT_TASK: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Names the task whose code runs next on this thread (for failure messages).
#[inline]
pub(crate) fn set_current_task(name: &str) {
    CURRENT_TASK.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_str() != name {
            c.clear();
            c.push_str(name);
        }
    });
}

/// The task that ran last on this thread.
pub(crate) fn current_task() -> String {
    CURRENT_TASK.with(|c| c.borrow().clone())
}
