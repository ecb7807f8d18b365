//! The job manager: owns one job's lifecycle, its checkpoint coordinator and its restart
//! strategy, and talks to the task executor of the current attempt only through
//! [`ToExecutor`]/[`FromExecutor`] messages. It never runs user code.
//!
//! What lives where: [`lifecycle`] decides (phases, events, effects: pure and unit-tested),
//! [`checkpoints`] performs the checkpoint coordinator's decisions on disk, [`client`] is
//! what the outside sends (commands, typed savepoint replies), [`events`] words every
//! Flink-style log line, and this module's run loop turns executor messages and commands
//! into lifecycle events and carries out the effects.

pub mod announce;
pub mod checkpoints;
pub mod client;
pub(crate) mod events;
pub mod info;
pub mod lifecycle;
pub mod rest;
pub mod restart;
pub mod security;
#[cfg(test)]
mod tests;

pub use client::{
    CancelFlag, CheckpointError, CheckpointReply, JobClient, JobCommand, SavepointError,
    SavepointReply,
};
pub use lifecycle::StopKind;

use crate::checkpoint::config::CheckpointConfig;
use crate::checkpoint::metadata::{LoadedSnapshot, SnapshotKind, TaskId};
use crate::job::{JobExecutionResult, JobStatus};
use crate::runtime::executor::LocalExecutor;
use crate::runtime::plan::Plan;
use crate::runtime::process::ProcessExecutor;
use crate::runtime::protocol::{AttemptSpec, FromExecutor, TaskExecutor};
use crate::sync::LockExt;
use crate::Result;
use checkpoints::Checkpoints;
use crossbeam_channel::{Receiver, Sender};
use lifecycle::{Admission, Effect, Event, Lifecycle, Phase, TaskFailure};
use restart::RestartStrategy;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything needed to run a job.
pub struct JobSpec {
    /// The job graph.
    pub plan: Arc<Plan>,
    /// Checkpoint settings.
    pub checkpoint: CheckpointConfig,
    /// Restart strategy.
    pub restart: RestartStrategy,
    /// Root checkpoint directory (the job's `<job-id>` directory is created inside).
    pub checkpoint_dir: Option<crate::storage::Location>,
    /// Snapshot to start from (`-s`).
    pub restore: Option<Arc<LoadedSnapshot>>,
    /// Default target of savepoints (`execution.checkpointing.savepoint-dir`).
    pub savepoint_dir: Option<crate::storage::Location>,
    /// Run every attempt in worker processes (job binaries) placed and started as these
    /// settings say, or on threads of this process (`None`: tests and embedded use).
    pub worker_processes: Option<crate::runtime::process::WorkerSettings>,
    /// How many task failures the exception history keeps (`web.exception-history-size`).
    pub exception_history_size: usize,
    /// Started by `floe run`: print Flink's CLI lines ("Job has been submitted with JobID
    /// …") on standard output. [`crate::launch`] decides it.
    pub cli_output: bool,
}

/// A new job id: 32 lowercase hex characters, as Flink's `JobID`.
pub fn new_job_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub use crate::job::JOB_ID_ENV;

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
                events::ignoring_job_id_env(JOB_ID_ENV, &e);
                new_job_id()
            }
        },
        Err(_) => new_job_id(),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks that a snapshot can be restored into `plan` before anything runs: same max
/// parallelism, and no state left without an operator unless `allow_non_restored`
/// (decided by [`crate::checkpoint::restore`]).
pub fn validate_restore(
    plan: &Plan,
    snap: &LoadedSnapshot,
    allow_non_restored: bool,
) -> Result<()> {
    crate::checkpoint::restore::compatibility(&plan.shape(), snap, allow_non_restored).into_result()
}

pub use crate::checkpoint::layout::savepoint_dir_name;

/// How the tasks of an attempt run.
enum Workers {
    /// On threads of this process (tests and embedded use).
    Threads,
    /// In worker processes (job binaries).
    Processes(crate::runtime::process::WorkerSettings),
    /// A scripted executor (the job manager's unit tests).
    #[cfg(test)]
    Scripted(Box<tests::Deployer>),
}

/// Runs one job to a terminal state.
pub struct JobManager {
    spec: JobSpec,
    job_id: String,
    checkpoints: Checkpoints,
    workers: Workers,
    restore_point: Option<Arc<LoadedSnapshot>>,
    status: Arc<Mutex<JobStatus>>,
    commands: Receiver<JobCommand>,
    commands_tx: Sender<JobCommand>,
    cancel: CancelFlag,
    info: Arc<Mutex<info::JobInfo>>,
    /// The tasks of the attempt that reported running, until checkpointing starts.
    tasks: Vec<TaskId>,
    /// Savepoint requests that arrived while the tasks were still deploying.
    deferred: Vec<(Option<PathBuf>, Option<StopKind>, SavepointReply)>,
}

impl JobManager {
    /// Prepares a job manager for `spec` with a fresh job id (the first job of a process
    /// takes the one a session cluster chose, see [`JOB_ID_ENV`]).
    pub fn new(spec: JobSpec) -> Self {
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
        let info = Arc::new(Mutex::new(info));
        let checkpoints = Checkpoints::new(
            &job_id,
            Arc::clone(&spec.plan),
            spec.checkpoint.clone(),
            spec.savepoint_dir.clone(),
            spec.restore.clone(),
            Arc::clone(&info),
        );
        let workers = match spec.worker_processes.clone() {
            Some(settings) => Workers::Processes(settings),
            None => Workers::Threads,
        };
        JobManager {
            restore_point: spec.restore.clone(),
            spec,
            job_id,
            checkpoints,
            workers,
            status: Arc::new(Mutex::new(JobStatus::Created)),
            commands,
            commands_tx,
            cancel: CancelFlag::default(),
            info,
            tasks: Vec::new(),
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

    /// Cancels the job when set: for a signal watcher (one atomic store).
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
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
        let cancel = self.cancel.clone();
        let rest = match rest {
            Some((addr, conf)) => {
                let registry = rest::Registry::new(conf)?;
                registry.add(&job_id, Arc::clone(&info), commands.clone());
                let server = rest::RestServer::start(addr, registry)?;
                events::rest_listening(server.local_addr());
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
            cancel,
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
        events::job_transition(self.name(), &self.job_id, self.current(), to);
        *self.status.lock_ok() = to;
        self.info().transition(to, now_ms());
    }

    /// Runs the job: deploys attempts, coordinates checkpoints and savepoints, restarts on
    /// failures as the restart strategy allows, and applies retention at the end.
    pub fn run(mut self) -> Result<JobExecutionResult> {
        let started = Instant::now();
        events::submitting(self.name(), &self.job_id);
        events::submitted(&self.job_id, self.spec.cli_output);
        if let Some(root) = &self.spec.checkpoint_dir {
            let dir = checkpoints::prepare_job_dir(root, &self.job_id)?;
            self.checkpoints.job_dir = Some(dir);
        }
        if let Some(s) = &self.spec.restore {
            let savepoint = s.metadata.kind == SnapshotKind::Savepoint;
            let next = s.metadata.checkpoint_id + 1;
            events::starting_from(&self.job_id, &s.dir, savepoint, next);
        }
        events::restart_strategy(&self.spec.restart, self.name(), &self.job_id);
        let mut life = Lifecycle::new(self.spec.restart.backoff());
        let (tx, rx) = crossbeam_channel::unbounded::<FromExecutor>();
        let mut exec: Option<Box<dyn TaskExecutor>> = None;
        let mut queue: VecDeque<Event> = VecDeque::new();
        let mut effects: VecDeque<Effect> = life.start().into();
        loop {
            while let Some(effect) = effects.pop_front() {
                self.perform(effect, &mut life, &mut exec, &tx, &mut queue);
            }
            if life.is_terminal() {
                break;
            }
            if queue.is_empty() {
                self.wait(&mut life, exec.as_deref(), &rx, &mut queue);
            }
            if let Some(event) = queue.pop_front() {
                effects.extend(life.on(event, Instant::now()));
            }
        }
        let restarts = life.attempt();
        match life.phase().clone() {
            Phase::Terminal {
                status: JobStatus::Failed,
                error,
            } => Err(crate::anyhow!(
                "Job {} ({}) FAILED: {}",
                self.name(),
                self.job_id,
                error.unwrap_or_default()
            )),
            Phase::Terminal { status, .. } => Ok(self.result(status, started, restarts)),
            p => unreachable!("the loop ends in a terminal phase, not {p:?}"),
        }
    }

    /// Carries out one effect of the lifecycle; events it causes go to `queue`.
    fn perform(
        &mut self,
        effect: Effect,
        life: &mut Lifecycle,
        exec: &mut Option<Box<dyn TaskExecutor>>,
        tx: &Sender<FromExecutor>,
        queue: &mut VecDeque<Event>,
    ) {
        match effect {
            Effect::Transition(to) => self.transition(to),
            Effect::Deploy { attempt } => match self.deploy(attempt, tx) {
                Ok(e) => *exec = Some(e),
                Err(e) => queue.push_back(Event::TaskFailed(TaskFailure {
                    task: "worker process".into(),
                    error: format!("{e:#}"),
                    unrecoverable: None,
                })),
            },
            Effect::StartCheckpointing => {
                self.log_tasks_running(life.attempt());
                let tasks = std::mem::take(&mut self.tasks);
                self.checkpoints.coordinator.start(tasks, Instant::now());
                // Savepoints requested while the tasks were deploying start now.
                if let Some(e) = exec.as_deref() {
                    for (target, stop, reply) in std::mem::take(&mut self.deferred) {
                        self.savepoint_request(life, target, stop, reply, e);
                    }
                }
            }
            Effect::TriggerFinalCheckpoint => {
                events::end_of_input(&self.job_id);
                let actions = self.checkpoints.coordinator.end_of_input(Instant::now());
                queue.extend(self.checkpoints.perform(actions, exec.as_deref()));
            }
            Effect::StopTasks => {
                if let Some(e) = exec.take() {
                    e.shutdown();
                }
                let aborts = self.checkpoints.coordinator.stop();
                queue.extend(self.checkpoints.perform(aborts, None));
                for (_, _, reply) in std::mem::take(&mut self.deferred) {
                    let _ = reply.send(Err(SavepointError::TasksStopped));
                }
            }
            Effect::ReportFailure {
                task,
                attempt,
                from,
                error,
            } => {
                events::task_failed(&task, attempt, from, &error);
                self.info().add_exception(now_ms(), &task, &error);
            }
            Effect::Announce(status) => events::ended(&self.job_id, status, self.spec.cli_output),
            Effect::JobException(error) => events::job_exception(&error),
            Effect::ApplyRetention(status) => self.checkpoints.apply_retention(status),
        }
    }

    /// Starts the tasks of `attempt`, from the `-s` snapshot (attempt 0) or the job's
    /// latest restore point.
    fn deploy(&mut self, attempt: u32, tx: &Sender<FromExecutor>) -> Result<Box<dyn TaskExecutor>> {
        if attempt > 0 {
            self.restore_point = self.checkpoints.latest_restore_point();
            // A disposed savepoint protects no output any more.
            self.checkpoints
                .savepoints
                .retain(|p| p.join(crate::checkpoint::metadata::METADATA_FILE).is_file());
        }
        if let Some(snap) = &self.restore_point {
            let m = &snap.metadata;
            events::restoring(
                &self.job_id,
                m.checkpoint_id,
                m.timestamp_ms,
                &m.job_id,
                &snap.dir,
            );
            let savepoint = m.kind == SnapshotKind::Savepoint;
            self.info
                .lock_ok()
                .restored_from(m.checkpoint_id, &snap.dir, savepoint, now_ms());
        } else if attempt > 0 {
            events::no_checkpoint_found();
        }
        let spec = AttemptSpec {
            job_id: self.job_id.clone(),
            attempt,
            restore: self.restore_point.clone(),
            start_epoch: self.checkpoints.coordinator.next_id().get(),
            savepoints: self.checkpoints.savepoints.clone(),
        };
        Ok(match &mut self.workers {
            Workers::Processes(settings) => Box::new(ProcessExecutor::start(
                &spec,
                self.spec.plan.parallelism,
                settings.clone(),
                tx.clone(),
            )?),
            Workers::Threads => Box::new(LocalExecutor::start(
                Arc::clone(&self.spec.plan),
                spec,
                tx.clone(),
            )),
            #[cfg(test)]
            Workers::Scripted(deploy) => deploy(&spec, tx.clone()),
        })
    }

    fn result(&self, status: JobStatus, started: Instant, restarts: u32) -> JobExecutionResult {
        let durations = &self.checkpoints.durations;
        JobExecutionResult {
            job_id: self.job_id.clone(),
            status,
            net_runtime: started.elapsed(),
            restarts,
            checkpoints: durations.len() as u64,
            checkpoint_durations: durations.clone(),
        }
    }

    /// Waits until something happens and puts it in `queue`: the restart delay ending or
    /// a cancel while restarting; otherwise checkpoints falling due, executor messages and
    /// commands. Executor messages of other attempts are dropped (fencing).
    fn wait(
        &mut self,
        life: &mut Lifecycle,
        exec: Option<&dyn TaskExecutor>,
        rx: &Receiver<FromExecutor>,
        queue: &mut VecDeque<Event>,
    ) {
        while queue.is_empty() {
            if self.cancel.is_cancelled() {
                queue.push_back(Event::Cancel);
                return;
            }
            let (Some(exec), true) = (exec, life.is_live()) else {
                self.wait_restart(life, queue);
                continue;
            };
            let actions = self.checkpoints.coordinator.tick(Instant::now());
            queue.extend(self.checkpoints.perform(actions, Some(exec)));
            if !queue.is_empty() {
                return;
            }
            let wait = self
                .checkpoints
                .coordinator
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            let commands = self.commands.clone();
            // Events first: a command must see every event the executor already sent (a
            // savepoint right after the tasks reported RUNNING).
            crossbeam_channel::select_biased! {
                recv(rx) -> ev => match ev {
                    Ok(ev) if ev.attempt() == life.attempt() => self.on_message(ev, exec, queue),
                    Ok(_) => {} // fenced: a message from an earlier attempt
                    Err(_) => queue.push_back(Event::TaskFailed(TaskFailure {
                        task: "executor".into(),
                        error: "executor channel closed".into(),
                        unrecoverable: None,
                    })),
                },
                recv(commands) -> cmd => match cmd {
                    Ok(JobCommand::Cancel) => queue.push_back(Event::Cancel),
                    Ok(JobCommand::TriggerSavepoint { target, stop, reply }) => {
                        self.savepoint_request(life, target, stop, reply, exec)
                    }
                    Ok(JobCommand::TriggerCheckpoint { reply }) => {
                        self.manual_checkpoint(life, reply, exec, queue)
                    }
                    Err(_) => {}
                },
                default(wait) => {}
            }
        }
    }

    /// Between attempts: the delay runs out, or a cancel ends the job. Savepoint requests
    /// are refused: there are no tasks to take one.
    fn wait_restart(&mut self, life: &Lifecycle, queue: &mut VecDeque<Event>) {
        let Phase::Restarting { until } = *life.phase() else {
            // Deploying failed before an executor existed: its failure is queued already.
            return;
        };
        let now = Instant::now();
        if now >= until {
            queue.push_back(Event::RestartDelayElapsed);
            return;
        }
        match self
            .commands
            .recv_timeout((until - now).min(Duration::from_millis(50)))
        {
            Ok(JobCommand::Cancel) => queue.push_back(Event::Cancel),
            Ok(JobCommand::TriggerSavepoint { reply, .. }) => {
                let _ = reply.send(Err(SavepointError::Restarting {
                    job_id: self.job_id.clone(),
                }));
            }
            Ok(JobCommand::TriggerCheckpoint { reply }) => {
                let _ = reply.send(Err(CheckpointError::NotRunning {
                    job_id: self.job_id.clone(),
                    status: JobStatus::Restarting,
                }));
            }
            Err(_) => {}
        }
    }

    /// One message of the current attempt's executor.
    fn on_message(
        &mut self,
        ev: FromExecutor,
        exec: &dyn TaskExecutor,
        queue: &mut VecDeque<Event>,
    ) {
        let now = Instant::now();
        let actions = match ev {
            FromExecutor::Running { tasks, .. } => {
                self.tasks = tasks;
                queue.push_back(Event::TasksRunning);
                return;
            }
            FromExecutor::Ack {
                checkpoint_id,
                task,
                state,
                ..
            } => self
                .checkpoints
                .coordinator
                .acknowledge(checkpoint_id.into(), task, state, now),
            FromExecutor::Decline {
                checkpoint_id,
                task,
                reason,
                ..
            } => {
                events::declined(checkpoint_id, &task, &self.job_id, &reason);
                let reason = crate::checkpoint::coordinator::AbortReason::Declined {
                    task: Some(task),
                    reason,
                };
                self.checkpoints
                    .coordinator
                    .decline(checkpoint_id.into(), reason)
            }
            FromExecutor::Failed {
                task,
                error,
                unrecoverable,
                ..
            } => {
                queue.push_back(Event::TaskFailed(TaskFailure {
                    task,
                    error,
                    unrecoverable,
                }));
                return;
            }
            FromExecutor::Finished { .. } => {
                queue.push_back(Event::TasksFinished);
                return;
            }
            FromExecutor::EndOfInput { .. } => {
                queue.push_back(Event::EndOfInput);
                return;
            }
            FromExecutor::Deployed { placement, .. } => {
                self.info().deployed(&placement);
                return;
            }
            // The job manager cancelled the attempt itself: nothing follows from it.
            FromExecutor::Heartbeat { .. } | FromExecutor::Cancelled { .. } => return,
        };
        queue.extend(self.checkpoints.perform(actions, Some(exec)));
    }

    /// A manual checkpoint (`flink checkpoint`): triggered now, as the coordinator would at
    /// its interval, or refused.
    fn manual_checkpoint(
        &mut self,
        life: &Lifecycle,
        reply: CheckpointReply,
        exec: &dyn TaskExecutor,
        queue: &mut VecDeque<Event>,
    ) {
        // No directory, no checkpoint: checked first, so none is left pending to expire.
        let id = if self.checkpoints.job_dir.is_none() {
            Err(CheckpointError::NoDirectory)
        } else if life.admit_savepoint() == Admission::StopInProgress {
            Err(CheckpointError::StopInProgress)
        } else {
            self.checkpoints
                .coordinator
                .trigger_checkpoint(Instant::now())
                .ok_or_else(|| CheckpointError::NotRunning {
                    job_id: self.job_id.clone(),
                    status: self.current(),
                })
        };
        let _ = reply.send(id.clone().map(|id| id.get()));
        if let Ok(id) = id {
            let actions = vec![crate::checkpoint::coordinator::Action::Trigger { id }];
            queue.extend(self.checkpoints.perform(actions, Some(exec)));
        }
    }

    /// A savepoint request: started now, deferred until the tasks run, or refused.
    fn savepoint_request(
        &mut self,
        life: &mut Lifecycle,
        target: Option<PathBuf>,
        stop: Option<StopKind>,
        reply: SavepointReply,
        exec: &dyn TaskExecutor,
    ) {
        let refusal = match life.admit_savepoint() {
            Admission::Defer => {
                self.deferred.push((target, stop, reply));
                return;
            }
            Admission::StopInProgress => SavepointError::StopInProgress,
            Admission::Restarting => SavepointError::Restarting {
                job_id: self.job_id.clone(),
            },
            Admission::Ended => SavepointError::NotRunning {
                job_id: self.job_id.clone(),
                status: self.current(),
            },
            Admission::Start => {
                let status = self.current();
                match self.checkpoints.start_savepoint(target, stop, status, exec) {
                    Ok(id) => {
                        self.checkpoints.await_savepoint(id, reply);
                        if let Some(kind) = stop {
                            let event = Event::StopTriggered {
                                savepoint: id,
                                kind,
                            };
                            let effects = life.on(event, Instant::now());
                            debug_assert!(effects.is_empty(), "{effects:?}");
                        }
                        return;
                    }
                    Err(e) => e,
                }
            }
        };
        let _ = reply.send(Err(refusal));
    }

    /// Flink's task transition lines, one per subtask of every chain (job vertex).
    fn log_tasks_running(&self, attempt: u32) {
        let plan = &self.spec.plan;
        let mut seen = std::collections::BTreeSet::new();
        for (i, o) in plan.operators.iter().enumerate() {
            if seen.insert(o.chain) {
                for s in 0..o.parallelism {
                    events::task_running(&plan.vertex_name(i), s + 1, o.parallelism, attempt);
                }
            }
        }
    }
}
