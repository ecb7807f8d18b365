//! The job manager's only process-wide concerns, kept together until `crate::launch` takes
//! them (it is to be the one module that installs signal handlers, writes the CLI's
//! standard output and reports how the process ends):
//!
//! - SIGINT/SIGTERM cancel every job of the process, like `flink cancel`: the handler only
//!   sets a static flag, and a watcher thread forwards it to each job manager's
//!   [`CancelFlag`]. The job manager itself knows only its own flag.
//! - `floe run` (`FLOE_CLI_RUN`) expects Flink's CLI lines on standard output, and the exit
//!   report ([`crate::exit`]) learns the job id and final status.

use super::client::CancelFlag;
use crate::job::JobStatus;
use crate::sync::LockExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

static CANCEL_REQUESTED: AtomicBool = AtomicBool::new(false);
static WATCHED: Mutex<Vec<CancelFlag>> = Mutex::new(Vec::new());

extern "C" fn on_signal(_sig: libc::c_int) {
    CANCEL_REQUESTED.store(true, Ordering::SeqCst);
}

/// Cancels `flag` when the process gets SIGINT or SIGTERM (also one that came before).
pub(crate) fn cancel_on_signal(flag: CancelFlag) {
    static INSTALL: Once = Once::new();
    WATCHED.lock_ok().push(flag);
    INSTALL.call_once(|| {
        // SIGINT/SIGTERM cancel the job (CANCELED, retention applies), like `flink cancel`.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        let _ = std::thread::Builder::new()
            .name("floe-signals".into())
            .spawn(|| loop {
                if CANCEL_REQUESTED.load(Ordering::SeqCst) {
                    for f in WATCHED.lock_ok().iter() {
                        f.cancel();
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            });
    });
}

fn cli() -> bool {
    std::env::var_os("FLOE_CLI_RUN").is_some()
}

/// The job was submitted: `floe run` prints it as Flink's CLI does.
pub(crate) fn submitted(job_id: &str) {
    if cli() {
        // A closed stdout (`floe run job | head`) only loses the line.
        crate::api::print::stdout_line(&format!("Job has been submitted with JobID {job_id}"));
    }
    if let Ok(id) = job_id.parse() {
        crate::exit::report(crate::exit::Event::Submitted(id));
    }
}

/// The job ends in `status`.
pub(crate) fn ended(job_id: &str, status: JobStatus) {
    if cli() {
        let end = match status {
            JobStatus::Finished => "finished",
            JobStatus::Canceled => "been canceled",
            _ => "failed",
        };
        crate::api::print::stdout_line(&format!("Job with JobID {job_id} has {end}."));
    }
    crate::exit::report(crate::exit::Event::Ended(status));
}
