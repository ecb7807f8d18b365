//! How this process was started, and the only place in the library that installs signal
//! handlers or exits the process.
//!
//! The [`Mode`] is decided once, from the environment a launcher left: a job manager
//! starting a worker process, `floe savepoint check`, `floe run`, or nobody (a job binary
//! run directly, a test, a program embedding Floe). [`execute`] then does what the mode
//! asks with the job a [`StreamEnv`](crate::StreamEnv) compiled:
//!
//! | mode | set by | what `execute` does |
//! |---|---|---|
//! | [`Mode::Worker`] | a job manager (`FLOE_WORKER`) | runs one attempt of the plan, exits |
//! | [`Mode::CheckSnapshot`] | `floe savepoint check` (`FLOE_CHECK_SNAPSHOT`) | prints whether the snapshot restores, exits 0 or 1 |
//! | [`Mode::CliRun`] | `floe run` (`FLOE_CLI_RUN`) | runs the job, with Flink's CLI lines on stdout |
//! | [`Mode::Direct`] | nobody | runs the job |
//!
//! A running job is cancelled (CANCELED, retention applies) by SIGINT or SIGTERM, as `flink
//! cancel` would; [`exit_on_error`] turns `main`'s result into [`crate::exit`]'s exit codes.

use crate::config::{keys, Configuration};
use crate::exit::Event;
use crate::jobmanager::{CancelFlag, JobClient, JobManager, JobSpec};
use crate::sync::LockExt;
use crate::Result;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

/// Environment variable `floe savepoint check` sets to the snapshot to check.
pub const CHECK_SNAPSHOT_ENV: &str = "FLOE_CHECK_SNAPSHOT";
/// Environment variable `floe run` sets on the job binaries it starts.
pub const CLI_RUN_ENV: &str = "FLOE_CLI_RUN";

/// How this process was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// By a user, a test or an embedding program: jobs run as declared.
    Direct,
    /// By `floe run`: jobs run, and the job manager prints Flink's CLI lines on stdout.
    CliRun,
    /// By a job manager, as the worker process of one attempt.
    Worker,
    /// By `floe savepoint check`: report whether the snapshot restores into the job, run
    /// nothing.
    CheckSnapshot(PathBuf),
}

impl Mode {
    /// The mode the environment variables `var` describe. A worker inherits its job
    /// manager's environment (`FLOE_CLI_RUN` among it), so being a worker wins.
    pub fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Mode {
        if var(crate::runtime::process::WORKER_ENV).is_some() {
            Mode::Worker
        } else if let Some(p) = var(CHECK_SNAPSHOT_ENV) {
            Mode::CheckSnapshot(PathBuf::from(p))
        } else if var(CLI_RUN_ENV).is_some() {
            Mode::CliRun
        } else {
            Mode::Direct
        }
    }

    /// This process's mode, decided at the first call.
    pub fn current() -> &'static Mode {
        static MODE: OnceLock<Mode> = OnceLock::new();
        MODE.get_or_init(|| Mode::from_env(|k| std::env::var_os(k)))
    }
}

/// Runs the job `compile` freezes as this process's [`Mode`] says. `compile(false)` leaves
/// out the snapshot to restore (the check loads it itself).
pub(crate) fn execute(
    conf: &Configuration,
    allow_non_restored: bool,
    compile: impl Fn(bool) -> Result<JobSpec>,
) -> Result<JobClient> {
    match Mode::current() {
        Mode::CheckSnapshot(path) => check_and_exit(path, allow_non_restored, || compile(false)),
        Mode::Worker => {
            let spec = compile(true)?;
            exit(crate::runtime::process::run_worker(spec.plan, exit))
        }
        Mode::Direct | Mode::CliRun => {
            let rest = rest_endpoint(conf)?;
            let mut spec = compile(true)?;
            spec.cli_output = *Mode::current() == Mode::CliRun;
            let jm = JobManager::new(spec);
            cancel_on_signal(jm.cancel_flag());
            jm.spawn(rest)
        }
    }
}

/// Where the job's REST API is served: only when `rest.port` is configured (0 picks a free
/// port).
fn rest_endpoint(conf: &Configuration) -> Result<Option<(std::net::SocketAddr, Configuration)>> {
    if !conf.is_set(keys::REST_PORT) {
        return Ok(None);
    }
    let host = conf.get_or(keys::REST_BIND_ADDRESS, "127.0.0.1".into())?;
    let port = conf.get_or(keys::REST_PORT, 8081)?;
    let addr = format!("{host}:{port}")
        .parse::<std::net::SocketAddr>()
        .map_err(|e| crate::anyhow!("invalid {} '{host}': {e}", keys::REST_BIND_ADDRESS))?;
    Ok(Some((addr, conf.clone())))
}

/// `floe savepoint check`: prints the report, tells the CLI, exits 0 when the snapshot
/// restores and 1 otherwise.
fn check_and_exit(
    path: &Path,
    allow_non_restored: bool,
    compile: impl FnOnce() -> Result<JobSpec>,
) -> ! {
    // A report for a terminal or a pipe: `| head` ends it quietly, as any Unix tool.
    #[cfg(unix)]
    // SAFETY: only the disposition changes; no handler of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = match check_snapshot(path, allow_non_restored, compile) {
        Ok(restores) => {
            report(Event::Checked { restores });
            if restores {
                0
            } else {
                1
            }
        }
        Err(e) => {
            report(Event::Error);
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    };
    exit(code)
}

/// Prints whether the snapshot at `path` would restore into this job: matched, unmatched
/// and new operators, and how every state decodes into the job's types. True when it
/// would restore (with `-n`, skipping state without an operator).
fn check_snapshot(
    path: &std::path::Path,
    allow_non_restored: bool,
    compile: impl FnOnce() -> Result<JobSpec>,
) -> Result<bool> {
    use crate::checkpoint::metadata::load_snapshot;
    let loc = crate::storage::Location::from_path(path)?;
    let (snap, spec) = if loc.is_local() {
        let snap = load_snapshot(loc)?;
        (snap, compile()?)
    } else {
        // Compiling the job configures the object stores (its `s3.*` settings).
        let spec = compile()?;
        (load_snapshot(loc)?, spec)
    };
    let report = spec.plan.check_restore(&snap, allow_non_restored)?;
    print!("{report}");
    Ok(report.restores())
}

/// `--help`: prints `text` (a closed stdout, as in `job --help | head`, only loses it),
/// tells the CLI, exits 0.
pub(crate) fn exit_with_help(text: &str) -> ! {
    crate::exit::stdout_line(text);
    report(Event::Usage);
    exit(0)
}

/// Ends the process with `code`, flushing stdout first (the exit skips destructors).
pub(crate) fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Set by SIGINT/SIGTERM: every job of this process cancels.
static CANCEL_SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The cancel flags of this process's jobs, which the watcher thread sets on a signal.
static WATCHED: Mutex<Vec<CancelFlag>> = Mutex::new(Vec::new());

extern "C" fn on_cancel_signal(_sig: libc::c_int) {
    // Only an atomic store: nothing else is async-signal-safe here.
    CANCEL_SIGNALLED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM cancel the job behind `flag` (CANCELED, retention applies), like
/// `flink cancel` — also a signal that came before. The handler only sets a static; a watcher
/// thread forwards it to every registered job, so the job manager knows only its own flag.
fn cancel_on_signal(flag: CancelFlag) {
    static INSTALL: Once = Once::new();
    if CANCEL_SIGNALLED.load(Ordering::SeqCst) {
        flag.cancel();
    }
    WATCHED.lock_ok().push(flag);
    INSTALL.call_once(|| {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                libc::SIGINT,
                on_cancel_signal as *const () as libc::sighandler_t,
            );
            libc::signal(
                libc::SIGTERM,
                on_cancel_signal as *const () as libc::sighandler_t,
            );
        }
        let _ = std::thread::Builder::new()
            .name("floe-signals".into())
            .spawn(|| loop {
                if CANCEL_SIGNALLED.load(Ordering::SeqCst) {
                    for f in WATCHED.lock_ok().iter() {
                        f.cancel();
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            });
    });
}

/// Appends `event` to the CLI's report; a worker process never reports (its job manager
/// does).
fn report(event: Event) {
    if *Mode::current() != Mode::Worker {
        crate::exit::report(event);
    }
}

/// Turns a job binary's result into its exit code by [`crate::exit`]'s contract, printing
/// an error on one line: `Ok` exits with the code of the job that ended last in this
/// process (0 FINISHED, 1 FAILED, 2 CANCELED; 0 when none ran); an error (a FAILED job, bad
/// options) exits 1.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     floe::exit_on_error(Ok::<(), floe::Error>(()))
/// }
/// ```
pub fn exit_on_error<T>(r: Result<T>) -> std::process::ExitCode {
    match r {
        Ok(_) => std::process::ExitCode::from(crate::exit::last_job_code()),
        Err(e) => {
            report(Event::Error);
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(crate::exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(vars: &[(&str, &str)]) -> Mode {
        Mode::from_env(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_mode_comes_from_the_launchers_variables_and_a_worker_is_a_worker() {
        assert_eq!(mode(&[]), Mode::Direct);
        assert_eq!(mode(&[(CLI_RUN_ENV, "1")]), Mode::CliRun);
        assert_eq!(
            mode(&[(CHECK_SNAPSHOT_ENV, "/s/chk-3"), (CLI_RUN_ENV, "1")]),
            Mode::CheckSnapshot(PathBuf::from("/s/chk-3"))
        );
        // Workers inherit the job manager's environment.
        assert_eq!(
            mode(&[
                (crate::runtime::process::WORKER_ENV, "127.0.0.1:1"),
                (CLI_RUN_ENV, "1")
            ]),
            Mode::Worker
        );
    }

    #[test]
    fn rest_is_served_only_with_a_port() {
        let mut conf = Configuration::new();
        assert!(rest_endpoint(&conf).unwrap().is_none());
        conf.put(keys::REST_PORT, &0).unwrap();
        let (addr, _) = rest_endpoint(&conf).unwrap().unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:0");
        conf.put(keys::REST_BIND_ADDRESS, &"no host".to_string())
            .unwrap();
        let e = rest_endpoint(&conf).unwrap_err().to_string();
        assert!(e.starts_with("invalid rest.bind-address 'no host'"), "{e}");
    }
}
