//! How a job binary's process ends: the exit-code contract, the same whether the binary is
//! run directly or by `floe run`, and the report through which the `floe` CLI learns that
//! the binary is a Floe job and how its job ended.
//!
//! | job status | exit code |
//! |---|---|
//! | FINISHED | 0 ([`FINISHED`]) |
//! | FAILED (or an error before the job ran) | 1 ([`FAILED`]) |
//! | CANCELED | 2 ([`CANCELED`]) |
//!
//! The report is a file the CLI names in [`REPORT_ENV`]; the job binary appends one line
//! per event: `submitted <job-id>`, `ended <STATUS>`, `check restores`, `check incompatible`,
//! `error`. A binary that writes none of them is not a Floe job.

use crate::job::JobStatus;
use crate::JobId;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// Exit code of a FINISHED job.
pub const FINISHED: u8 = 0;
/// Exit code of a FAILED job, and of a job binary that failed before its job ran.
pub const FAILED: u8 = 1;
/// Exit code of a CANCELED job.
pub const CANCELED: u8 = 2;

/// Environment variable naming the report file a job binary appends its events to.
pub const REPORT_ENV: &str = "FLOE_CLI_REPORT";

/// The exit code of a job that ended in `status` (non-terminal states count as FAILED).
pub fn code(status: JobStatus) -> u8 {
    match status {
        JobStatus::Finished => FINISHED,
        JobStatus::Canceled => CANCELED,
        _ => FAILED,
    }
}

/// Exit code of the job that ended last in this process ([`FINISHED`] when none did).
static LAST_JOB: AtomicU8 = AtomicU8::new(FINISHED);

/// The exit code for the job that ended last in this process: what
/// [`crate::exit_on_error`] returns for `Ok`.
pub fn last_job_code() -> u8 {
    LAST_JOB.load(Ordering::SeqCst)
}

/// One event of a job binary, as the CLI reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The job was submitted to its job manager.
    Submitted(JobId),
    /// The job reached a terminal state.
    Ended(JobStatus),
    /// Check mode: whether the snapshot restores into the job.
    Checked {
        /// True when it would restore.
        restores: bool,
    },
    /// The binary failed with an error it printed (before or instead of a job).
    Error,
    /// The binary printed its usage (`--help`) and ran nothing.
    Usage,
}

impl Event {
    fn line(&self) -> String {
        match self {
            Event::Submitted(id) => format!("submitted {id}"),
            Event::Ended(s) => format!("ended {s}"),
            Event::Checked { restores: true } => "check restores".into(),
            Event::Checked { restores: false } => "check incompatible".into(),
            Event::Error => "error".into(),
            Event::Usage => "usage".into(),
        }
    }

    fn parse(line: &str) -> Option<Event> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some(match (word, rest) {
            ("submitted", id) => Event::Submitted(id.parse().ok()?),
            ("ended", s) => Event::Ended(
                [JobStatus::Finished, JobStatus::Failed, JobStatus::Canceled]
                    .into_iter()
                    .find(|t| t.as_str() == s)?,
            ),
            ("check", "restores") => Event::Checked { restores: true },
            ("check", "incompatible") => Event::Checked { restores: false },
            ("error", "") => Event::Error,
            ("usage", "") => Event::Usage,
            _ => return None,
        })
    }
}

/// Appends `event` to the report, when this process was started by the CLI. Called by the
/// job manager and by [`crate::launch`], which leaves it out in a worker process.
pub(crate) fn report(event: Event) {
    if let Event::Ended(s) = event {
        LAST_JOB.store(code(s), Ordering::SeqCst);
    }
    let Some(path) = std::env::var_os(REPORT_ENV) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{}", event.line()));
    if let Err(e) = written {
        tracing::warn!(
            "cannot write to the report file {} of the floe CLI: {e}",
            Path::new(&path).display()
        );
    }
}

/// The events in a report file, oldest first; a missing file has none. Lines that are not
/// events are skipped: the file is the CLI's own.
pub fn read_report(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(Event::parse)
        .collect()
}

/// Writes `line` and a line break to standard output and flushes, never panicking: a
/// closed stdout (`floe run job | head`) must not bring the job manager down, so a
/// failed write is reported as `false` and otherwise ignored.
pub(crate) fn stdout_line(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        for e in [
            Event::Submitted(JobId::random()),
            Event::Ended(JobStatus::Canceled),
            Event::Ended(JobStatus::Finished),
            Event::Checked { restores: true },
            Event::Checked { restores: false },
            Event::Error,
        ] {
            assert_eq!(Event::parse(&e.line()), Some(e));
        }
        assert_eq!(Event::parse("ended RUNNING"), None);
        assert_eq!(Event::parse("submitted nope"), None);
    }

    #[test]
    fn the_contract() {
        assert_eq!(code(JobStatus::Finished), 0);
        assert_eq!(code(JobStatus::Failed), 1);
        assert_eq!(code(JobStatus::Canceled), 2);
    }
}
