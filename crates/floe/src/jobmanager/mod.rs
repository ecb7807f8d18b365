//! The job manager: owns one job's lifecycle, its checkpoint coordinator and its restart
//! strategy, and talks to the task executor of the current attempt only through
//! [`ToExecutor`]/[`FromExecutor`] messages. It never runs user code.
//!
//! All file-system effects of checkpointing happen here, driven by the coordinator's
//! [`Action`]s: creating `chk-<n>`, writing `_metadata`, deleting aborted, subsumed and
//! (per retention) terminal checkpoints.

pub mod announce;
pub mod info;
pub mod rest;
pub mod restart;
pub mod security;

use crate::checkpoint::config::CheckpointConfig;
use crate::checkpoint::coordinator::{Action, CheckpointCoordinator, SnapshotType};
use crate::checkpoint::metadata::{
    checkpoint_dir_name, write_metadata, CheckpointMetadata, LoadedSnapshot, OperatorKind,
    OperatorState, SnapshotKind, StateHandle, SubtaskState, TaskId,
};
use crate::job::{JobExecutionResult, JobStatus};
use crate::runtime::executor::LocalExecutor;
use crate::runtime::plan::{Plan, StateKind};
use crate::runtime::process::ProcessExecutor;
use crate::runtime::protocol::{
    AttemptSpec, FromExecutor, TaskExecutor, ToExecutor, Unrecoverable,
};
use crate::sync::LockExt;
use crate::Result;
use crossbeam_channel::{Receiver, Sender};
use restart::RestartStrategy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// Everything needed to run a job.
pub struct JobSpec {
    /// The job graph.
    pub plan: Arc<Plan>,
    /// Checkpoint settings.
    pub checkpoint: CheckpointConfig,
    /// Restart strategy.
    pub restart: RestartStrategy,
    /// Root checkpoint directory (the job's `<job-id>` directory is created inside).
    pub checkpoint_dir: Option<PathBuf>,
    /// Snapshot to start from (`-s`).
    pub restore: Option<Arc<LoadedSnapshot>>,
    /// Default target of savepoints (`execution.checkpointing.savepoint-dir`).
    pub savepoint_dir: Option<PathBuf>,
    /// Run every attempt in a worker process (job binaries) with this heartbeat, or on
    /// threads of this process (`None`: tests and embedded use).
    pub worker_processes: Option<crate::runtime::process::Heartbeat>,
    /// How many task failures the exception history keeps (`web.exception-history-size`).
    pub exception_history_size: usize,
}

/// A new job id: 32 lowercase hex characters, as Flink's `JobID`.
pub fn new_job_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Environment variable with the job id a session cluster chose for the job it starts, so
/// it can name the job's files and its registry record before the process runs.
pub const JOB_ID_ENV: &str = "FLOE_JOB_ID";

/// The id of this process's first job: [`JOB_ID_ENV`] when it holds a valid job id, else a
/// new one. Later jobs of the same process always get new ids, so
/// two jobs never share one.
fn first_job_id() -> String {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return new_job_id();
    }
    match std::env::var(JOB_ID_ENV) {
        Ok(id) => match id.parse::<crate::JobId>() {
            Ok(id) => id.to_string(),
            Err(e) => {
                warn!("ignoring {JOB_ID_ENV}: {e}");
                new_job_id()
            }
        },
        Err(_) => new_job_id(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks that a snapshot can be restored into `plan` before anything runs: same max
/// parallelism, and no state left without an operator unless `allow_non_restored`.
pub fn validate_restore(
    plan: &Plan,
    snap: &LoadedSnapshot,
    allow_non_restored: bool,
) -> Result<()> {
    let m = &snap.metadata;
    for os in &m.operators {
        match plan.operators.iter().find(|o| o.uid == os.uid) {
            None if allow_non_restored => {
                info!("Skipping state of operator '{}' ({}): it is not in the job (--allowNonRestoredState).", os.uid, os.name)
            }
            None => crate::bail!(
                "Failed to rollback to checkpoint/savepoint {}. Cannot map checkpoint/savepoint state for operator '{}' ({}{}) to the new program, because the operator is not available in the new program. If you want to allow to skip this, you can set the --allowNonRestoredState option on the CLI.",
                snap.dir.display(),
                os.uid,
                os.name,
                state_names_of(snap, os)
            ),
            Some(decl) => {
                let kind_ok = decl.state.snapshot_kind() == Some(os.kind);
                if !kind_ok {
                    crate::bail!(
                        "cannot restore {}: state of operator '{}' is {:?} state but the operator with that uid in the job is '{}'",
                        snap.dir.display(),
                        os.uid,
                        os.kind,
                        decl.name
                    );
                }
                if os.kind == OperatorKind::Keyed && os.max_parallelism != plan.max_parallelism {
                    crate::bail!(
                        "cannot restore {}: operator '{}' was checkpointed with max parallelism {}, but the job's max parallelism is {}; keyed state cannot change its max parallelism",
                        snap.dir.display(),
                        os.uid,
                        os.max_parallelism,
                        plan.max_parallelism
                    );
                }
            }
        }
    }
    Ok(())
}

/// `, states 'a', 'b'` for a keyed operator in a snapshot (read from its state file
/// headers), `, source positions` for a source.
pub(crate) fn state_names_of(snap: &LoadedSnapshot, os: &OperatorState) -> String {
    match os.kind {
        OperatorKind::Source => return ", source positions".into(),
        OperatorKind::Sink => return ", pending output".into(),
        OperatorKind::Keyed => {}
    }
    let mut names: Vec<String> = Vec::new();
    for st in &os.subtasks {
        if let StateHandle::KeyedFile { file, .. } = &st.handle {
            if let Ok(r) = crate::state::file::StateFileReader::open(&snap.file_path(file)) {
                for n in r.header.state_names {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
    }
    if names.is_empty() {
        String::new()
    } else {
        format!(
            ", states {}",
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A completed checkpoint or savepoint this job can restore from.
#[derive(Clone, Debug)]
struct Completed {
    id: u64,
    dir: PathBuf,
    timestamp_ms: u64,
    snapshot: Arc<LoadedSnapshot>,
}

enum Outcome {
    Finished,
    Failed {
        task: String,
        error: String,
    },
    /// A failure retrying cannot fix (restored state that does not fit the job, output the
    /// restored checkpoint names that is gone).
    Unrecoverable {
        task: String,
        error: String,
        why: Unrecoverable,
    },
    Canceled,
}

/// A request to the job manager of a running job.
pub enum JobCommand {
    /// Take a savepoint into `target` (or the configured default directory); with `stop`,
    /// finish the job after it completes.
    TriggerSavepoint {
        /// Directory the `savepoint-*` directory is created in.
        target: Option<PathBuf>,
        /// Finish the job once the savepoint is complete (`flink stop`).
        stop: bool,
        /// The savepoint path, or why it failed.
        reply: Sender<std::result::Result<PathBuf, String>>,
    },
    /// Take a checkpoint now (`flink checkpoint`); replies with its id once triggered.
    TriggerCheckpoint {
        /// The checkpoint id, or why none was triggered.
        reply: Sender<std::result::Result<u64, String>>,
    },
    /// Cancel the job (CANCELED; retention applies).
    Cancel,
}

struct SavepointRequest {
    reply: Sender<std::result::Result<PathBuf, String>>,
}

static CANCEL_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    CANCEL_REQUESTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SIGINT/SIGTERM cancel the job (CANCELED, retention applies), like `flink cancel`.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Flink's savepoint directory name: `savepoint-<first 6 hex of the job id>-<12 random hex>`.
pub fn savepoint_dir_name(job_id: &str) -> String {
    format!(
        "savepoint-{}-{:012x}",
        &job_id[..6.min(job_id.len())],
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

/// A handle on a job started with [`crate::StreamEnv::execute_async`], like Flink's
/// `JobClient`: its id and status, savepoints, stop and cancel, and its result.
pub struct JobClient {
    job_id: String,
    commands: Sender<JobCommand>,
    status: Arc<Mutex<JobStatus>>,
    info: Arc<Mutex<info::JobInfo>>,
    handle: Option<std::thread::JoinHandle<Result<JobExecutionResult>>>,
    rest: Option<rest::RestServer>,
}

impl JobClient {
    /// The job id (32 lowercase hex characters).
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// A snapshot of what the job manager knows about the job.
    pub fn info(&self) -> info::JobInfo {
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

    fn savepoint(&self, target: Option<&Path>, stop: bool) -> Result<PathBuf> {
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
        self.savepoint(target, false)
    }

    /// Takes a savepoint, after which the sources stop and the job ends FINISHED (`flink
    /// stop`). No record after the savepoint is processed, so a job restored from it
    /// continues exactly where this one stopped. If the savepoint fails, the job goes on.
    pub fn stop_with_savepoint(&self, target: Option<&Path>) -> Result<PathBuf> {
        self.savepoint(target, true)
    }

    /// Cancels the job.
    pub fn cancel(&self) {
        let _ = self.commands.send(JobCommand::Cancel);
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

/// Runs one job to a terminal state.
pub struct JobManager {
    spec: JobSpec,
    job_id: String,
    job_dir: Option<PathBuf>,
    coordinator: CheckpointCoordinator,
    /// The job's own completed checkpoints (restore points), by id.
    completed: BTreeMap<u64, Completed>,
    /// Savepoints this job took while running; they are the user's, but output they name
    /// must survive a failover so that they stay restorable.
    savepoints: Vec<PathBuf>,
    dirs: BTreeMap<u64, (PathBuf, u64)>,
    requests: BTreeMap<u64, SavepointRequest>,
    stopping: Option<u64>,
    durations: Vec<Duration>,
    restore_point: Option<Arc<LoadedSnapshot>>,
    status: Arc<Mutex<JobStatus>>,
    commands: Receiver<JobCommand>,
    commands_tx: Sender<JobCommand>,
    info: Arc<Mutex<info::JobInfo>>,
    /// Savepoint requests that arrived while the tasks were still deploying.
    deferred: Vec<DeferredSavepoint>,
}

type DeferredSavepoint = (
    Option<PathBuf>,
    bool,
    Sender<std::result::Result<PathBuf, String>>,
);

impl JobManager {
    /// Prepares a job manager for `spec` with a fresh job id (the first job of a process
    /// takes the one a session cluster chose, see [`JOB_ID_ENV`]).
    pub fn new(spec: JobSpec) -> Self {
        let first_id = spec
            .restore
            .as_ref()
            .map(|s| s.metadata.checkpoint_id + 1)
            .unwrap_or(1);
        let coordinator = CheckpointCoordinator::new(spec.checkpoint.clone(), first_id);
        let restore_point = spec.restore.clone();
        let (commands_tx, commands) = crossbeam_channel::unbounded();
        let job_id = first_job_id();
        let info = info::JobInfo::new(
            &job_id,
            &spec.plan.job_name,
            spec.plan.parallelism,
            spec.checkpoint.clone(),
            now_ms(),
        )
        .with_exception_history_size(spec.exception_history_size);
        JobManager {
            spec,
            job_id,
            job_dir: None,
            coordinator,
            completed: BTreeMap::new(),
            savepoints: Vec::new(),
            dirs: BTreeMap::new(),
            requests: BTreeMap::new(),
            stopping: None,
            durations: Vec::new(),
            restore_point,
            status: Arc::new(Mutex::new(JobStatus::Created)),
            commands,
            commands_tx,
            info: Arc::new(Mutex::new(info)),
            deferred: Vec::new(),
        }
    }

    fn info(&self) -> std::sync::MutexGuard<'_, info::JobInfo> {
        self.info.lock_ok()
    }

    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Runs the job on a thread of its own and returns a client for it; with `rest`, the
    /// job is also served by a REST API at that address.
    pub fn spawn(
        self,
        rest: Option<(std::net::SocketAddr, crate::config::Configuration)>,
    ) -> Result<JobClient> {
        let job_id = self.job_id.clone();
        let commands = self.commands_tx.clone();
        let status = Arc::clone(&self.status);
        let info = Arc::clone(&self.info);
        let rest = match rest {
            Some((addr, conf)) => {
                let registry = rest::Registry::new(conf)?;
                registry.add(&job_id, Arc::clone(&info), commands.clone());
                let server = rest::RestServer::start(addr, registry)?;
                info!("Rest endpoint listening at {}", server.local_addr());
                Some(server)
            }
            None => None,
        };
        announce::attach(&info, rest.as_ref().map(|r| r.local_addr()));
        let handle = std::thread::Builder::new()
            .name("floe-jobmanager".into())
            .spawn(move || self.run())
            .map_err(|e| crate::anyhow!("cannot start the job manager thread: {e}"))?;
        Ok(JobClient {
            job_id,
            commands,
            status,
            info,
            handle: Some(handle),
            rest,
        })
    }

    fn name(&self) -> &str {
        &self.spec.plan.job_name
    }

    fn current(&self) -> JobStatus {
        *self.status.lock_ok()
    }

    fn transition(&mut self, to: JobStatus) {
        let from = self.current();
        info!(
            "Job {} ({}) switched from state {} to {}.",
            self.name(),
            self.job_id,
            from,
            to
        );
        *self.status.lock_ok() = to;
        self.info().transition(to, now_ms());
    }

    /// Runs the job: deploys attempts, coordinates checkpoints and savepoints, restarts on
    /// failures as the restart strategy allows, and applies retention at the end.
    pub fn run(mut self) -> Result<JobExecutionResult> {
        let started = Instant::now();
        install_signal_handlers();
        let plan = Arc::clone(&self.spec.plan);
        info!("Submitting job {} ({}).", self.name(), self.job_id);
        // Started by `floe run`: report like Flink's CLI does, on standard output.
        let cli = std::env::var_os("FLOE_CLI_RUN").is_some();
        if cli {
            // A closed stdout (`floe run job | head`) only loses the line.
            crate::api::print::stdout_line(&format!(
                "Job has been submitted with JobID {}",
                self.job_id
            ));
        }
        if let Ok(id) = self.job_id.parse() {
            crate::exit::report(crate::exit::Event::Submitted(id));
        }
        if let Some(root) = &self.spec.checkpoint_dir {
            let dir = root.join(&self.job_id);
            std::fs::create_dir_all(&dir).map_err(|e| {
                crate::anyhow!("cannot create checkpoint directory {}: {e}", dir.display())
            })?;
            let probe = dir.join(".floe-write-test");
            std::fs::write(&probe, b"").map_err(|e| {
                crate::anyhow!(
                    "checkpoint directory {} is not writable: {e}",
                    dir.display()
                )
            })?;
            let _ = std::fs::remove_file(&probe);
            self.job_dir = Some(dir);
        }
        if let Some(s) = &self.spec.restore {
            info!(
                "Starting job {} from savepoint {} ({})",
                self.job_id,
                s.dir.display(),
                if s.metadata.kind == SnapshotKind::Savepoint {
                    "savepoint"
                } else {
                    "retained checkpoint"
                }
            );
            info!(
                "Reset the checkpoint ID of job {} to {}.",
                self.job_id,
                s.metadata.checkpoint_id + 1
            );
        }
        info!(
            "Using restart back off time strategy {} for {} ({}).",
            self.spec.restart,
            self.name(),
            self.job_id
        );
        let mut backoff = self.spec.restart.backoff();
        let mut attempt: u32 = 0;
        let (tx, rx) = crossbeam_channel::unbounded::<FromExecutor>();
        self.transition(JobStatus::Running);
        let final_outcome = loop {
            if let Some(snap) = &self.restore_point {
                let savepoint = snap.metadata.kind == SnapshotKind::Savepoint;
                let (id, dir) = (snap.metadata.checkpoint_id, &snap.dir);
                self.info().restored_from(id, dir, savepoint, now_ms());
                info!(
                    "Restoring job {} from Checkpoint {} @ {} for {} located at {}.",
                    self.job_id,
                    snap.metadata.checkpoint_id,
                    snap.metadata.timestamp_ms,
                    snap.metadata.job_id,
                    snap.dir.display()
                );
            } else if attempt > 0 {
                info!("No checkpoint found during restore.");
            }
            let spec = AttemptSpec {
                job_id: self.job_id.clone(),
                attempt,
                restore: self.restore_point.clone(),
                start_epoch: self.coordinator.next_id(),
                savepoints: self.savepoints.clone(),
            };
            let (exec, outcome): (Option<Box<dyn TaskExecutor>>, Option<Outcome>) =
                match self.spec.worker_processes {
                    Some(hb) => match ProcessExecutor::start(&spec, hb, tx.clone()) {
                        Ok(e) => (Some(Box::new(e)), None),
                        Err(e) => (
                            None,
                            Some(Outcome::Failed {
                                task: "worker process".into(),
                                error: format!("{e:#}"),
                            }),
                        ),
                    },
                    None => (
                        Some(Box::new(LocalExecutor::start(
                            Arc::clone(&plan),
                            spec,
                            tx.clone(),
                        ))),
                        None,
                    ),
                };
            let outcome = match (exec, outcome) {
                (Some(exec), _) => {
                    let o = self.supervise(exec.as_ref(), &rx, attempt);
                    exec.shutdown();
                    o
                }
                (None, Some(o)) => o,
                (None, None) => unreachable!("an executor or an outcome"),
            };
            let aborts = self
                .coordinator
                .stop("Checkpoint was aborted due to a job failover or the end of the job.");
            self.perform(aborts, None);
            self.stopping = None;
            for (_, _, reply) in std::mem::take(&mut self.deferred) {
                let _ = reply.send(Err(
                    "the job's tasks stopped before they were all running".into()
                ));
            }
            match outcome {
                Outcome::Unrecoverable { task, error, why } => {
                    let error = crate::runtime::protocol::bounded_message(error);
                    warn!("{task} (attempt #{attempt}) switched from INITIALIZING to FAILED with failure cause: {error}");
                    self.info().add_exception(now_ms(), &task, &error);
                    break Outcome::Failed {
                        task,
                        error: format!("{error} (not restarted: {why})"),
                    };
                }
                Outcome::Failed { task, error } => {
                    let error = crate::runtime::protocol::bounded_message(error);
                    warn!("{task} (attempt #{attempt}) switched from RUNNING to FAILED with failure cause: {error}");
                    self.info().add_exception(now_ms(), &task, &error);
                    backoff.notify_failure(Instant::now());
                    if backoff.can_restart() && !CANCEL_REQUESTED.load(Ordering::SeqCst) {
                        self.transition(JobStatus::Restarting);
                        let delay = backoff.backoff_time();
                        if self.sleep_unless_cancelled(delay) {
                            break Outcome::Canceled;
                        }
                        self.restore_point = self.latest_restore_point();
                        // A disposed savepoint protects no output any more.
                        self.savepoints.retain(|p| {
                            p.join(crate::checkpoint::metadata::METADATA_FILE).is_file()
                        });
                        attempt += 1;
                        self.transition(JobStatus::Running);
                        continue;
                    }
                    if CANCEL_REQUESTED.load(Ordering::SeqCst) {
                        break Outcome::Canceled;
                    }
                    break Outcome::Failed {
                        task,
                        error: format!(
                            "Recovery is suppressed by {backoff}; last failure: {error}"
                        ),
                    };
                }
                other => break other,
            }
        };
        let restarts = attempt;
        if cli {
            let end = match final_outcome {
                Outcome::Finished => "finished",
                Outcome::Canceled => "been canceled",
                Outcome::Failed { .. } | Outcome::Unrecoverable { .. } => "failed",
            };
            crate::api::print::stdout_line(&format!("Job with JobID {} has {end}.", self.job_id));
        }
        crate::exit::report(crate::exit::Event::Ended(match final_outcome {
            Outcome::Finished => JobStatus::Finished,
            Outcome::Canceled => JobStatus::Canceled,
            Outcome::Failed { .. } | Outcome::Unrecoverable { .. } => JobStatus::Failed,
        }));
        match final_outcome {
            Outcome::Finished => {
                self.transition(JobStatus::Finished);
                self.apply_retention(JobStatus::Finished);
                Ok(self.result(JobStatus::Finished, started, restarts))
            }
            Outcome::Canceled => {
                self.transition(JobStatus::Cancelling);
                self.transition(JobStatus::Canceled);
                self.apply_retention(JobStatus::Canceled);
                Ok(self.result(JobStatus::Canceled, started, restarts))
            }
            Outcome::Failed { error: err, .. } | Outcome::Unrecoverable { error: err, .. } => {
                error!("org.apache.flink.runtime.JobException: {err}");
                self.transition(JobStatus::Failing);
                self.transition(JobStatus::Failed);
                self.apply_retention(JobStatus::Failed);
                Err(crate::anyhow!(
                    "Job {} ({}) FAILED: {err}",
                    self.name(),
                    self.job_id
                ))
            }
        }
    }

    /// Where a failover restores from: the job's newest completed checkpoint, else the
    /// snapshot the job started from — never a savepoint taken while it ran. A savepoint is
    /// the user's (it may be disposed at any time) and commits nothing, so restoring the
    /// last checkpoint replays exactly what was not committed (Flink 1.15+).
    fn latest_restore_point(&self) -> Option<Arc<LoadedSnapshot>> {
        self.completed
            .values()
            .next_back()
            .map(|c| Arc::clone(&c.snapshot))
            .or(self.spec.restore.clone())
    }

    fn result(&self, status: JobStatus, started: Instant, restarts: u32) -> JobExecutionResult {
        JobExecutionResult {
            job_id: self.job_id.clone(),
            status,
            net_runtime: started.elapsed(),
            restarts,
            checkpoints: self.durations.len() as u64,
            checkpoint_durations: self.durations.clone(),
        }
    }

    /// Sleeps for the restart delay; true when a cancel arrived meanwhile. Savepoint requests
    /// arriving now are refused: there are no tasks to take one.
    fn sleep_unless_cancelled(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if CANCEL_REQUESTED.load(Ordering::SeqCst) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            match self
                .commands
                .recv_timeout((end - now).min(Duration::from_millis(50)))
            {
                Ok(JobCommand::Cancel) => return true,
                Ok(JobCommand::TriggerSavepoint { reply, .. }) => {
                    let _ = reply.send(Err(format!(
                        "job {} is RESTARTING; no tasks are running",
                        self.job_id
                    )));
                }
                Ok(JobCommand::TriggerCheckpoint { reply }) => {
                    let _ = reply.send(Err(format!("job {} is RESTARTING", self.job_id)));
                }
                Err(_) => {}
            }
        }
    }

    fn supervise(
        &mut self,
        exec: &dyn TaskExecutor,
        rx: &Receiver<FromExecutor>,
        attempt: u32,
    ) -> Outcome {
        loop {
            if CANCEL_REQUESTED.load(Ordering::SeqCst) {
                return Outcome::Canceled;
            }
            let actions = self.coordinator.tick(Instant::now());
            if let Some(o) = self.perform(actions, Some(exec)) {
                return o;
            }
            let wait = self
                .coordinator
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            let commands = self.commands.clone();
            // Events first: a command must see every event the executor already sent (a
            // savepoint right after the tasks reported RUNNING).
            crossbeam_channel::select_biased! {
                recv(rx) -> ev => {
                    let Ok(ev) = ev else {
                        return Outcome::Failed { task: "executor".into(), error: "executor channel closed".into() };
                    };
                    if let Some(o) = self.on_event(ev, exec, attempt) {
                        return o;
                    }
                }
                recv(commands) -> cmd => {
                    if let Ok(cmd) = cmd {
                        if let Some(o) = self.on_command(cmd, exec) {
                            return o;
                        }
                    }
                }
                default(wait) => {}
            }
        }
    }

    fn on_event(
        &mut self,
        ev: FromExecutor,
        exec: &dyn TaskExecutor,
        attempt: u32,
    ) -> Option<Outcome> {
        if ev.attempt() != attempt {
            return None; // fenced: a message from an earlier attempt
        }
        let actions = match ev {
            FromExecutor::Running { tasks, .. } => {
                self.log_tasks_running(attempt);
                self.coordinator.start(tasks, Instant::now());
                // Savepoints requested while the tasks were deploying start now.
                for (target, stop, reply) in std::mem::take(&mut self.deferred) {
                    self.savepoint_command(target, stop, reply, exec);
                }
                Vec::new()
            }
            FromExecutor::Ack {
                checkpoint_id,
                task,
                state,
                ..
            } => self
                .coordinator
                .acknowledge(checkpoint_id, task, state, Instant::now()),
            FromExecutor::Decline {
                checkpoint_id,
                task,
                reason,
                ..
            } => {
                warn!(
                    "Decline checkpoint {checkpoint_id} by task {task} of job {}: {reason}",
                    self.job_id
                );
                self.coordinator.decline(checkpoint_id, &reason)
            }
            FromExecutor::Failed {
                task,
                error,
                unrecoverable: Some(why),
                ..
            } => return Some(Outcome::Unrecoverable { task, error, why }),
            FromExecutor::Failed { task, error, .. } => {
                return Some(Outcome::Failed { task, error })
            }
            FromExecutor::Finished { .. } => return Some(Outcome::Finished),
            FromExecutor::EndOfInput { .. } => {
                info!(
                    "All sources of job {} reached the end of their input; triggering the final checkpoint.",
                    self.job_id
                );
                self.coordinator.end_of_input(Instant::now())
            }
            FromExecutor::Heartbeat { .. } => Vec::new(),
        };
        self.perform(actions, Some(exec))
    }

    fn on_command(&mut self, cmd: JobCommand, exec: &dyn TaskExecutor) -> Option<Outcome> {
        match cmd {
            JobCommand::Cancel => Some(Outcome::Canceled),
            JobCommand::TriggerSavepoint {
                target,
                stop,
                reply,
            } => {
                if self.coordinator.is_running() {
                    self.savepoint_command(target, stop, reply, exec);
                } else {
                    self.deferred.push((target, stop, reply));
                }
                None
            }
            JobCommand::TriggerCheckpoint { reply } => self.manual_checkpoint(reply, exec),
        }
    }

    /// Triggers a checkpoint now, as the coordinator would at its interval.
    fn manual_checkpoint(
        &mut self,
        reply: Sender<std::result::Result<u64, String>>,
        exec: &dyn TaskExecutor,
    ) -> Option<Outcome> {
        // No directory, no checkpoint: checked first, so none is left pending to expire.
        let id = if self.job_dir.is_none() {
            Err("no checkpoint directory is configured (execution.checkpointing.dir)".into())
        } else if self.stopping.is_some() {
            Err("a stop-with-savepoint is in progress".into())
        } else {
            let state = self.current();
            self.coordinator
                .trigger_checkpoint(Instant::now())
                .ok_or_else(|| format!("job {} is {state}; its tasks are not running", self.job_id))
        };
        let _ = reply.send(id.clone());
        self.perform(vec![Action::Trigger { id: id.ok()? }], Some(exec))
    }

    fn savepoint_command(
        &mut self,
        target: Option<PathBuf>,
        stop: bool,
        reply: Sender<std::result::Result<PathBuf, String>>,
        exec: &dyn TaskExecutor,
    ) {
        match self.start_savepoint(target, stop, exec) {
            Ok(id) => {
                self.requests.insert(id, SavepointRequest { reply });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn start_savepoint(
        &mut self,
        target: Option<PathBuf>,
        stop: bool,
        exec: &dyn TaskExecutor,
    ) -> std::result::Result<u64, String> {
        if self.stopping.is_some() {
            return Err("a stop-with-savepoint is already in progress".into());
        }
        let Some(base) = target.or_else(|| self.spec.savepoint_dir.clone()) else {
            return Err("No savepoint directory configured. You can either specify a directory when triggering the savepoint or configure a cluster-wide default via key 'execution.checkpointing.savepoint-dir'.".into());
        };
        let Some(id) = self.coordinator.trigger_savepoint(Instant::now(), stop) else {
            return Err(format!(
                "job {} is {}; its tasks are not running",
                self.job_id,
                self.current()
            ));
        };
        let dir = base.join(savepoint_dir_name(&self.job_id));
        if let Err(e) = std::fs::create_dir_all(&base).and_then(|_| std::fs::create_dir(&dir)) {
            self.coordinator
                .decline(id, "cannot create the savepoint directory");
            return Err(format!(
                "cannot create savepoint directory {}: {e}",
                dir.display()
            ));
        }
        info!(
            "Triggering {}savepoint {id} for job {} into {}.",
            if stop { "stop-with-" } else { "" },
            self.job_id,
            dir.display()
        );
        self.dirs.insert(id, (dir.clone(), now_ms()));
        self.info().triggered(id, true, now_ms());
        if stop {
            self.stopping = Some(id);
            exec.send(ToExecutor::StopSourcesAfter { id });
        }
        exec.send(ToExecutor::TriggerCheckpoint { id, dir });
        Ok(id)
    }

    /// Flink's task transition lines, one per subtask of every chain (job vertex).
    fn log_tasks_running(&self, attempt: u32) {
        let plan = &self.spec.plan;
        let mut seen = std::collections::BTreeSet::new();
        for (i, o) in plan.operators.iter().enumerate() {
            if seen.insert(o.chain) {
                for s in 0..o.parallelism {
                    info!(
                        "{} ({}/{}) (attempt #{attempt}) switched from INITIALIZING to RUNNING.",
                        plan.vertex_name(i),
                        s + 1,
                        o.parallelism
                    );
                }
            }
        }
    }

    fn chk_dir(&self, id: u64) -> Option<PathBuf> {
        self.job_dir
            .as_ref()
            .map(|d| d.join(checkpoint_dir_name(id)))
    }

    /// Carries out the coordinator's decisions. Returns an outcome when one ends the attempt.
    fn perform(
        &mut self,
        actions: Vec<Action>,
        exec: Option<&dyn TaskExecutor>,
    ) -> Option<Outcome> {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Trigger { id } | Action::TriggerFinal { id } => {
                    let last = matches!(a, Action::TriggerFinal { .. });
                    let Some(dir) = self.chk_dir(id) else {
                        queue.extend(
                            self.coordinator
                                .decline(id, "no checkpoint directory configured"),
                        );
                        continue;
                    };
                    let ts = now_ms();
                    info!("Triggering checkpoint {id} (type=CheckpointType{{name='Checkpoint', sharingFilesStrategy=FORWARD_BACKWARD}}) @ {ts} for job {}.", self.job_id);
                    match std::fs::create_dir(&dir) {
                        Ok(()) => {
                            self.dirs.insert(id, (dir.clone(), ts));
                            self.info().triggered(id, false, ts);
                            if let Some(e) = exec {
                                if last {
                                    e.send(ToExecutor::FinalCheckpoint { id });
                                }
                                e.send(ToExecutor::TriggerCheckpoint { id, dir });
                            }
                        }
                        Err(err) => {
                            let reason = format!(
                                "cannot create checkpoint directory {}: {err}",
                                dir.display()
                            );
                            // Triggered and failed: it counts in the statistics like any
                            // other failed checkpoint.
                            self.info().triggered(id, false, ts);
                            queue.extend(self.coordinator.decline(id, &reason));
                        }
                    }
                }
                Action::Finalize {
                    id,
                    acks,
                    duration,
                    kind,
                } => {
                    let fin = Instant::now();
                    match self.finalize(id, acks, kind) {
                        Ok(done) => {
                            let ms = duration.as_millis() + fin.elapsed().as_millis();
                            let size = done.size;
                            let path = done.dir.display().to_string();
                            self.info().completed(id, size, &path, now_ms());
                            if kind.is_savepoint() {
                                info!(
                                    "Completed savepoint {id} for job {} ({size} bytes, checkpointDuration={ms} ms) stored in {}.",
                                    self.job_id,
                                    done.dir.display()
                                );
                                if let Some(r) = self.requests.remove(&id) {
                                    let _ = r.reply.send(Ok(done.dir.clone()));
                                }
                            } else {
                                info!(
                                    "Completed checkpoint {id} for job {} ({size} bytes, checkpointDuration={ms} ms, finalizationTime={} ms).",
                                    self.job_id,
                                    fin.elapsed().as_millis()
                                );
                                self.durations.push(duration + fin.elapsed());
                            }
                            if kind == SnapshotType::Savepoint {
                                self.savepoints.push(done.dir.clone());
                            }
                            if let Some(c) = done.checkpoint {
                                if kind == SnapshotType::StopWithSavepoint {
                                    info!(
                                        "Stored stop-with-savepoint {id} of job {} also as its checkpoint {}: its output is committed, so failover and a resume from the job's checkpoint directory restore it.",
                                        self.job_id,
                                        c.dir.display()
                                    );
                                }
                                self.completed.insert(id, c);
                            }
                            self.dirs.remove(&id);
                            if let Some(e) = exec {
                                e.send(if kind.commits_output() {
                                    ToExecutor::CheckpointComplete { id }
                                } else {
                                    ToExecutor::SavepointComplete { id }
                                });
                            }
                            queue.extend(self.coordinator.finalized(id, Instant::now()));
                        }
                        Err(err) => {
                            let reason = format!("Failure to finalize checkpoint: {err:#}");
                            queue.extend(self.coordinator.finalize_failed(id, &reason));
                        }
                    }
                }
                Action::Abort { id, reason } => {
                    let what = if self.requests.contains_key(&id) {
                        "Savepoint"
                    } else {
                        "Checkpoint"
                    };
                    if reason.contains("expired") {
                        warn!(
                            "{what} {id} of job {} expired before completing.",
                            self.job_id
                        );
                    } else {
                        warn!("{what} {id} of job {} failed: {reason}", self.job_id);
                    }
                    if let Some((dir, _)) = self.dirs.remove(&id) {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    self.info().failed(id, &reason, now_ms());
                    if let Some(r) = self.requests.remove(&id) {
                        let _ = r.reply.send(Err(reason.clone()));
                    }
                    if self.stopping == Some(id) {
                        self.stopping = None; // the sources resume: the job goes on
                    }
                    if let Some(e) = exec {
                        e.send(ToExecutor::CheckpointAborted { id });
                    }
                }
                Action::Discard { id } => {
                    if let Some(c) = self.completed.remove(&id) {
                        remove_checkpoint(&c.dir);
                    }
                }
                Action::FailJob { reason } => {
                    return Some(Outcome::Failed {
                        task: "Checkpoint Coordinator".into(),
                        error: reason,
                    });
                }
            }
        }
        None
    }

    /// Writes `_metadata` of snapshot `id`. A stop-with-savepoint is also stored as the
    /// job's checkpoint `chk-<id>` (see [`SnapshotType::StopWithSavepoint`]).
    fn finalize(
        &self,
        id: u64,
        acks: BTreeMap<TaskId, StateHandle>,
        kind: SnapshotType,
    ) -> Result<Finalized> {
        let (dir, ts) = self
            .dirs
            .get(&id)
            .cloned()
            .ok_or_else(|| crate::anyhow!("no directory for checkpoint {id}"))?;
        let plan = &self.spec.plan;
        let mut ops: Vec<OperatorState> = Vec::new();
        for o in plan
            .operators
            .iter()
            .filter(|o| o.state != StateKind::Stateless)
        {
            let subtasks: Vec<SubtaskState> = acks
                .iter()
                .filter(|(t, _)| t.uid == o.uid)
                .map(|(t, h)| SubtaskState {
                    subtask: t.subtask,
                    handle: h.clone(),
                })
                .collect();
            ops.push(OperatorState {
                uid: o.uid.clone(),
                name: o.name.clone(),
                kind: o.state.snapshot_kind().unwrap_or(OperatorKind::Keyed),
                parallelism: o.parallelism,
                max_parallelism: plan.max_parallelism,
                subtasks,
            });
        }
        let snapshot_kind = if kind.is_savepoint() {
            SnapshotKind::Savepoint
        } else {
            SnapshotKind::Checkpoint
        };
        let meta = CheckpointMetadata::new(
            &self.job_id,
            &plan.job_name,
            id,
            snapshot_kind,
            ts,
            plan.max_parallelism,
            ops,
        );
        let checkpoint = match kind {
            SnapshotType::Savepoint => None,
            SnapshotType::Checkpoint => Some(dir.clone()),
            // Without a checkpoint directory the job has no restore points of its own.
            SnapshotType::StopWithSavepoint => self.chk_dir(id),
        };
        let mut size = meta.state_size();
        if kind == SnapshotType::StopWithSavepoint {
            if let Some(chk) = &checkpoint {
                // First the job's copy: the savepoint only counts once failover can restore
                // its committed output without it.
                let mut as_checkpoint = meta.clone();
                as_checkpoint.kind = SnapshotKind::Checkpoint;
                if let Err(e) = link_snapshot(&dir, chk, &as_checkpoint) {
                    let _ = std::fs::remove_dir_all(chk);
                    return Err(e);
                }
            }
        }
        match write_metadata(&dir, &meta) {
            Ok(n) => size += n,
            Err(e) => {
                if kind == SnapshotType::StopWithSavepoint {
                    if let Some(chk) = &checkpoint {
                        let _ = std::fs::remove_dir_all(chk);
                    }
                }
                return Err(e);
            }
        }
        let checkpoint = checkpoint.map(|chk| {
            let mut metadata = meta.clone();
            metadata.kind = SnapshotKind::Checkpoint;
            Completed {
                id,
                dir: chk.clone(),
                timestamp_ms: ts,
                snapshot: Arc::new(LoadedSnapshot { dir: chk, metadata }),
            }
        });
        Ok(Finalized {
            size,
            dir,
            checkpoint,
        })
    }

    /// Deletes or keeps this job's checkpoints for a terminal state, per retention. Savepoints
    /// and the snapshot the job was started from are never deleted: they belong to the user.
    /// A job that FAILED keeps its latest checkpoint whatever the retention says: it is the
    /// only state left to resume from (`floe run -s <checkpoint-dir>/<job-id>`).
    fn apply_retention(&mut self, status: JobStatus) {
        let keep = self.spec.checkpoint.retention.keeps_on(status);
        if !keep && status == JobStatus::Failed {
            if let Some((&id, last)) = self.completed.iter().next_back() {
                let last_dir = last.dir.clone();
                info!(
                    "Retaining checkpoint {id} ({}) of job {} (FAILED) although retention is {}: it is the job's last restorable state.",
                    last_dir.display(),
                    self.job_id,
                    self.spec.checkpoint.retention.as_str()
                );
                for c in std::mem::take(&mut self.completed).into_values() {
                    if c.id != id {
                        remove_checkpoint(&c.dir);
                    }
                }
                return;
            }
        }
        if keep {
            for c in self.completed.values() {
                info!(
                    "Retaining checkpoint {} ({} @ {}) of job {} ({}): {}",
                    c.id,
                    c.dir.display(),
                    c.timestamp_ms,
                    self.job_id,
                    status,
                    self.spec.checkpoint.retention.as_str()
                );
            }
            return;
        }
        for c in std::mem::take(&mut self.completed).into_values() {
            remove_checkpoint(&c.dir);
        }
        if let Some(d) = &self.job_dir {
            // Only an empty job directory is removed: nothing else is ever deleted.
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// What finalizing a snapshot wrote.
struct Finalized {
    /// Bytes of state and metadata.
    size: u64,
    /// Where `_metadata` was written (the savepoint's directory for savepoints).
    dir: PathBuf,
    /// The job's checkpoint it completed (for a stop-with-savepoint, its `chk-<n>` copy).
    checkpoint: Option<Completed>,
}

/// Stores the snapshot in `from` (state files written, `_metadata` not yet) also as the
/// checkpoint `to`: its state files hard-linked (copied across file systems), then its own
/// `_metadata`. Each directory stays self-contained, so disposing the savepoint leaves the
/// checkpoint intact and vice versa.
fn link_snapshot(from: &Path, to: &Path, meta: &CheckpointMetadata) -> Result<()> {
    std::fs::create_dir(to)
        .map_err(|e| crate::anyhow!("cannot create checkpoint directory {}: {e}", to.display()))?;
    for op in &meta.operators {
        for st in &op.subtasks {
            if let StateHandle::KeyedFile { file, .. } = &st.handle {
                let (src, dst) = (from.join(file), to.join(file));
                if std::fs::hard_link(&src, &dst).is_err() {
                    std::fs::copy(&src, &dst).map_err(|e| {
                        crate::anyhow!("cannot copy {} to {}: {e}", src.display(), dst.display())
                    })?;
                    std::fs::File::open(&dst)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| crate::anyhow!("cannot sync {}: {e}", dst.display()))?;
                }
            }
        }
    }
    write_metadata(to, meta)?;
    Ok(())
}

fn remove_checkpoint(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!("Could not discard checkpoint {}: {e}", dir.display());
        }
    }
}
