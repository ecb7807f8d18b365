//! What the world outside the job manager sends it: [`JobCommand`]s (from a [`JobClient`] or
//! the REST API) and the typed replies to savepoint requests.

use super::info::JobInfo;
use super::lifecycle::StopKind;
use super::rest;
use crate::checkpoint::coordinator::AbortReason;
use crate::job::{JobExecutionResult, JobStatus};
use crate::sync::LockExt;
use crate::Result;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a savepoint was not taken. `Display` is the message the REST API and the CLI show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavepointError {
    /// A stop- or cancel-with-savepoint is already under way.
    #[error("a stop-with-savepoint is already in progress")]
    StopInProgress,
    /// Neither the request nor `execution.checkpointing.savepoint-dir` names a directory.
    #[error("No savepoint directory configured. You can either specify a directory when triggering the savepoint or configure a cluster-wide default via key 'execution.checkpointing.savepoint-dir'.")]
    NoDirectory,
    /// The savepoint's directory could not be created.
    #[error("cannot create savepoint directory {}: {error}", dir.display())]
    CreateDirectory {
        /// The `savepoint-*` directory.
        dir: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// The job is between attempts: no tasks can take a savepoint.
    #[error("job {job_id} is RESTARTING; no tasks are running")]
    Restarting {
        /// The job.
        job_id: String,
    },
    /// The job's tasks are not running.
    #[error("job {job_id} is {status}; its tasks are not running")]
    NotRunning {
        /// The job.
        job_id: String,
        /// Its status.
        status: JobStatus,
    },
    /// Requested while the tasks were deploying, and the attempt ended before they ran.
    #[error("the job's tasks stopped before they were all running")]
    TasksStopped,
    /// The savepoint was triggered and then aborted.
    #[error("{0}")]
    Aborted(AbortReason),
}

/// The reply to a savepoint request: the savepoint's directory, or why there is none.
pub type SavepointReply = Sender<std::result::Result<PathBuf, SavepointError>>;

/// A request to the job manager of a running job.
pub enum JobCommand {
    /// Take a savepoint into `target` (or the configured default directory); with `stop`,
    /// end the job after it completes.
    TriggerSavepoint {
        /// Directory the `savepoint-*` directory is created in.
        target: Option<PathBuf>,
        /// End the job once the savepoint is complete: FINISHED (`flink stop`) or CANCELED
        /// (`flink cancel -s`, REST `cancel-job: true`).
        stop: Option<StopKind>,
        /// The savepoint path, or why it failed.
        reply: SavepointReply,
    },
    /// Take a checkpoint now (`flink checkpoint`); replies with its id once triggered.
    TriggerCheckpoint {
        /// The checkpoint id, or why none was triggered.
        reply: CheckpointReply,
    },
    /// Cancel the job (CANCELED; retention applies).
    Cancel,
}

/// Why a manual checkpoint (`flink checkpoint`) was not triggered. `Display` is the message
/// the REST API shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The job has no checkpoint directory, so a checkpoint has nowhere to go.
    #[error("no checkpoint directory is configured (execution.checkpointing.dir)")]
    NoDirectory,
    /// A stop- or cancel-with-savepoint is under way: nothing may follow it.
    #[error("a stop-with-savepoint is in progress")]
    StopInProgress,
    /// The job's tasks are not running (between attempts, deploying, or ended).
    #[error("job {job_id} is {status}; its tasks are not running")]
    NotRunning {
        /// The job.
        job_id: String,
        /// Its status.
        status: JobStatus,
    },
}

/// The reply to a manual checkpoint request: the id of the triggered checkpoint.
pub type CheckpointReply = Sender<std::result::Result<u64, CheckpointError>>;

/// Asks a job manager to cancel its job from anywhere, also from a thread that watches for
/// signals: setting it is one atomic store. The job manager polls it with its loop.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Requests the cancel (CANCELED, retention applies), like `flink cancel`.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a cancel was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A handle on a job started with [`crate::StreamEnv::execute_async`], like Flink's
/// `JobClient`: its id and status, savepoints, stop and cancel, and its result.
pub struct JobClient {
    pub(super) job_id: String,
    pub(super) commands: Sender<JobCommand>,
    pub(super) status: Arc<Mutex<JobStatus>>,
    pub(super) info: Arc<Mutex<JobInfo>>,
    pub(super) cancel: CancelFlag,
    pub(super) handle: Option<std::thread::JoinHandle<Result<JobExecutionResult>>>,
    pub(super) rest: Option<rest::RestServer>,
}

impl JobClient {
    /// The job id (32 lowercase hex characters).
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// A snapshot of what the job manager knows about the job.
    pub fn info(&self) -> JobInfo {
        self.info.lock_ok().clone()
    }

    /// Where the job's REST API listens, when `rest.port` is configured.
    pub fn rest_address(&self) -> Option<std::net::SocketAddr> {
        self.rest.as_ref().map(|r| r.local_addr())
    }

    /// The job's current status.
    pub fn status(&self) -> JobStatus {
        *self.status.lock_ok()
    }

    fn savepoint(&self, target: Option<&Path>, stop: Option<StopKind>) -> Result<PathBuf> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let cmd = JobCommand::TriggerSavepoint {
            target: target.map(Path::to_path_buf),
            stop,
            reply: tx,
        };
        self.commands
            .send(cmd)
            .map_err(|_| crate::anyhow!("job {} is no longer running", self.job_id))?;
        match rx.recv() {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(crate::anyhow!(
                "Triggering a savepoint for the job {} failed: {e}",
                self.job_id
            )),
            Err(_) => Err(crate::anyhow!(
                "job {} ended before the savepoint completed",
                self.job_id
            )),
        }
    }

    /// Takes a savepoint into `target` (or `execution.checkpointing.savepoint-dir`) and waits
    /// for it; returns its directory. The job keeps running.
    pub fn trigger_savepoint(&self, target: Option<&Path>) -> Result<PathBuf> {
        self.savepoint(target, None)
    }

    /// Takes a savepoint, after which the sources stop and the job ends FINISHED (`flink
    /// stop`). No record after the savepoint is processed, so a job restored from it
    /// continues exactly where this one stopped. If the savepoint fails, the job goes on.
    pub fn stop_with_savepoint(&self, target: Option<&Path>) -> Result<PathBuf> {
        self.savepoint(target, Some(StopKind::Stop))
    }

    /// Takes a savepoint like [`JobClient::stop_with_savepoint`], after which the job ends
    /// CANCELED and CANCELED's retention applies (`flink cancel -s`).
    pub fn cancel_with_savepoint(&self, target: Option<&Path>) -> Result<PathBuf> {
        self.savepoint(target, Some(StopKind::Cancel))
    }

    /// Cancels the job.
    pub fn cancel(&self) {
        let _ = self.commands.send(JobCommand::Cancel);
    }

    /// A handle that cancels the job with one atomic store (for a signal watcher).
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Waits for the job to end.
    pub fn wait(mut self) -> Result<JobExecutionResult> {
        let r = match self.handle.take().expect("waited once").join() {
            Ok(r) => r,
            Err(_) => Err(crate::anyhow!(
                "the job manager of job {} panicked",
                self.job_id
            )),
        };
        if let Some(rest) = &self.rest {
            rest.linger(Duration::from_secs(5));
        }
        r
    }
}
