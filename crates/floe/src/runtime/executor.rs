//! One execution attempt of a job: timely worker threads in this process.
//!
//! The executor is the task side of the job-manager/task protocol. It never decides
//! anything about checkpoints or restarts; it runs tasks, forwards triggers to them and
//! reports acknowledgements, failures and the end of input as [`FromExecutor`] messages.
//!
//! Teardown follows the trap measured in `timely-design.md`: a worker that fails sets a
//! shared abort flag and unparks its peers; every worker then drops all of its dataflows
//! before returning, so `timely::execute`'s trailing loop ends and no thread is left
//! spinning or parked.

use super::committing::CommitOnComplete;
use super::failure;
use super::plan::{BuildCx, Plan, Polled};
use super::protocol::{AttemptSpec, FromExecutor, ToExecutor, Unrecoverable};
use super::snapshot::{SnapshotJob, SnapshotWriter};
use crate::checkpoint::metadata::TaskId;
use crate::sync::LockExt;
use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;
use timely::dataflow::ProbeHandle;

/// What the workers of an attempt have reported about themselves.
#[derive(Default)]
struct Registration {
    workers: u32,
    tasks: Vec<TaskId>,
    /// Source drivers over all workers, and how many of them reached the end of input.
    sources: u32,
    sources_ended: u32,
    end_reported: bool,
}

/// State shared by the executor and all its worker threads for one attempt.
pub struct ExecShared {
    pub(crate) attempt: u32,
    abort: AtomicBool,
    failure: Mutex<Option<(String, String, Option<Unrecoverable>)>>,
    trigger: AtomicU64,
    pending: Mutex<BTreeMap<u64, PathBuf>>,
    pub(crate) events: Sender<FromExecutor>,
    threads: Mutex<Vec<Thread>>,
    registered: Mutex<Registration>,
    peers: u32,
    job_id: String,
    final_checkpoint: bool,
    committers: Mutex<Vec<Arc<dyn CommitOnComplete>>>,
    pub(crate) snapshots: Mutex<Option<Sender<SnapshotJob>>>,
    stop_at: AtomicU64,
    /// The final checkpoint (0: none): sources finish once it, or a later one, completes.
    final_at: AtomicU64,
    finish_sources: AtomicBool,
    progress: Vec<AtomicU64>,
}

impl ExecShared {
    /// True once any task failed or the attempt was cancelled.
    #[inline]
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Records the first failure and stops every worker.
    pub fn fail(&self, task: &str, error: String) {
        self.fail_with(task, error, None);
    }

    /// Records a failure that retrying cannot fix (see [`FromExecutor::Failed`]).
    pub fn fail_unrecoverable(&self, task: &str, error: String, why: Unrecoverable) {
        self.fail_with(task, error, Some(why));
    }

    fn fail_with(&self, task: &str, error: String, unrecoverable: Option<Unrecoverable>) {
        {
            let mut f = self.failure.lock_ok();
            if f.is_none() {
                *f = Some((task.to_string(), error, unrecoverable));
            }
        }
        self.cancel();
    }

    fn cancel(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub(crate) fn wake_all(&self) {
        for t in self.threads.lock_ok().iter() {
            t.unpark();
        }
    }

    /// The stop-with-savepoint id sources pause after (0: none).
    #[inline]
    pub(crate) fn stop_at(&self) -> u64 {
        self.stop_at.load(Ordering::Acquire)
    }

    /// True once a stop-with-savepoint completed: sources finish.
    #[inline]
    pub(crate) fn finish_sources(&self) -> bool {
        self.finish_sources.load(Ordering::Acquire)
    }

    /// Loop iterations of every worker thread: a counter that stops moving is a thread
    /// stuck in user code.
    pub fn progress(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }

    /// Highest checkpoint id triggered in this attempt.
    #[inline]
    pub fn triggered(&self) -> u64 {
        self.trigger.load(Ordering::Acquire)
    }

    /// Triggered checkpoints in `lo..=hi` that are still pending, with their directories.
    pub(crate) fn pending_in(&self, lo: u64, hi: u64) -> Vec<(u64, PathBuf)> {
        if lo > hi {
            return Vec::new();
        }
        self.pending
            .lock_ok()
            .range(lo..=hi)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    pub(crate) fn send(&self, ev: FromExecutor) {
        let _ = self.events.send(ev);
    }

    pub(crate) fn snapshot(&self, job: SnapshotJob) {
        if let Some(tx) = self.snapshots.lock_ok().as_ref() {
            let _ = tx.send(job);
        }
    }

    fn register(&self, tasks: Vec<TaskId>, sources: usize) {
        let mut r = self.registered.lock_ok();
        r.workers += 1;
        r.tasks.extend(tasks);
        r.sources += sources as u32;
        if r.workers == self.peers {
            let mut all = std::mem::take(&mut r.tasks);
            all.sort();
            all.dedup();
            self.send(FromExecutor::Running {
                attempt: self.attempt,
                tasks: all,
            });
            self.report_end_of_input(&mut r);
        }
    }

    /// A source instance read all of its input. With a final checkpoint, it keeps its place
    /// in the dataflow until that checkpoint completes.
    pub(crate) fn source_ended(&self) {
        let mut r = self.registered.lock_ok();
        r.sources_ended += 1;
        self.report_end_of_input(&mut r);
    }

    fn report_end_of_input(&self, r: &mut Registration) {
        if self.final_checkpoint
            && !r.end_reported
            && r.workers == self.peers
            && r.sources_ended >= r.sources
        {
            r.end_reported = true;
            self.send(FromExecutor::EndOfInput {
                attempt: self.attempt,
            });
        }
    }

    /// True when sources wait for a final checkpoint after their input ends, so that
    /// two-phase-commit sinks commit everything before the job finishes.
    #[inline]
    pub(crate) fn final_checkpoint(&self) -> bool {
        self.final_checkpoint
    }

    /// The job's id: what the attempt writes is named after it (with the attempt number).
    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    pub(crate) fn add_committer(&self, c: Arc<dyn CommitOnComplete>) {
        self.committers.lock_ok().push(c);
    }

    /// Checkpoint `id` completed: every two-phase-commit sink commits what it holds for it.
    fn commit_upto(&self, id: u64) {
        let committers = self.committers.lock_ok().clone();
        for c in committers {
            // A sink's commit is user code: a panic fails its task, not the caller (in
            // per-job mode without worker processes, the job manager's thread).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.commit_upto(id)));
            let err = match r {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => failure::take_panic_message()
                    .unwrap_or_else(|| "panicked while committing".to_string()),
            };
            self.fail(c.task(), err);
            return;
        }
    }
}

/// A running attempt. Dropping it without [`LocalExecutor::shutdown`] detaches the threads.
pub struct LocalExecutor {
    shared: Arc<ExecShared>,
    thread: Option<JoinHandle<()>>,
}

impl LocalExecutor {
    /// Starts the attempt `spec` describes: restoring from its snapshot when given, records
    /// of the first epoch belonging to checkpoint `spec.start_epoch`.
    pub fn start(plan: Arc<Plan>, spec: AttemptSpec, events: Sender<FromExecutor>) -> Self {
        failure::install_panic_hook();
        let attempt = spec.attempt;
        let (writer, snap_tx) =
            SnapshotWriter::spawn(attempt, events.clone(), plan.max_parallelism);
        let shared = Arc::new(ExecShared {
            attempt,
            abort: AtomicBool::new(false),
            failure: Mutex::new(None),
            trigger: AtomicU64::new(spec.start_epoch.saturating_sub(1)),
            pending: Mutex::new(BTreeMap::new()),
            events,
            threads: Mutex::new(Vec::new()),
            registered: Mutex::new(Registration::default()),
            peers: plan.parallelism,
            job_id: spec.job_id.clone(),
            final_checkpoint: plan.final_checkpoint,
            committers: Mutex::new(Vec::new()),
            snapshots: Mutex::new(Some(snap_tx)),
            stop_at: AtomicU64::new(0),
            final_at: AtomicU64::new(0),
            finish_sources: AtomicBool::new(false),
            progress: (0..plan.parallelism).map(|_| AtomicU64::new(0)).collect(),
        });
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("floe-executor-{attempt}"))
            .spawn(move || {
                let peers = plan.parallelism as usize;
                let sh2 = Arc::clone(&sh);
                let config = timely::Config::process(peers);
                let result = timely::execute(config, move |worker| {
                    run_worker(worker, &plan, &sh2, &spec);
                });
                match result {
                    Ok(guards) => {
                        for r in guards.join() {
                            if let Err(e) = r {
                                sh.fail("worker", e);
                            }
                        }
                    }
                    Err(e) => sh.fail("executor", format!("cannot start workers: {e}")),
                }
                // Workers are gone: stop the snapshot writer after it drained its queue.
                sh.snapshots.lock_ok().take();
                writer.join();
                let failure = sh.failure.lock_ok().take();
                match failure {
                    // A cancelled attempt also ends with Failed, so a worker process knows
                    // it is done; the job manager has stopped listening to it by then.
                    Some((task, error, unrecoverable)) => {
                        let error = if task == "cancel" {
                            "cancelled".to_string()
                        } else {
                            error
                        };
                        sh.send(FromExecutor::Failed {
                            attempt: sh.attempt,
                            task,
                            error,
                            unrecoverable,
                        })
                    }
                    None => sh.send(FromExecutor::Finished {
                        attempt: sh.attempt,
                    }),
                }
            })
            .expect("spawn executor thread");
        LocalExecutor {
            shared,
            thread: Some(thread),
        }
    }

    /// The state shared with the worker threads.
    pub fn shared(&self) -> &Arc<ExecShared> {
        &self.shared
    }

    /// Delivers a job-manager command.
    pub fn send(&self, cmd: ToExecutor) {
        match cmd {
            ToExecutor::TriggerCheckpoint { id, dir } => {
                self.shared.pending.lock_ok().insert(id, dir);
                self.shared.trigger.fetch_max(id, Ordering::AcqRel);
                self.shared.wake_all();
            }
            ToExecutor::CheckpointComplete { id } => {
                self.shared.pending.lock_ok().remove(&id);
                // Before sources may finish: the job must not end with output uncommitted.
                self.shared.commit_upto(id);
                let final_at = self.shared.final_at.load(Ordering::Acquire);
                if self.shared.stop_at() == id || (final_at != 0 && id >= final_at) {
                    self.shared.finish_sources.store(true, Ordering::Release);
                    self.shared.wake_all();
                }
            }
            ToExecutor::SavepointComplete { id } => {
                // Nothing is committed: the committables stay queued and the next
                // checkpoint names and commits them.
                self.shared.pending.lock_ok().remove(&id);
            }
            ToExecutor::CheckpointAborted { id } => {
                self.shared.pending.lock_ok().remove(&id);
                if self.shared.stop_at() == id {
                    self.shared.stop_at.store(0, Ordering::Release);
                    self.shared.wake_all();
                }
                let _ = self.shared.final_at.compare_exchange(
                    id,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            ToExecutor::FinalCheckpoint { id } => {
                self.shared.final_at.store(id, Ordering::Release);
            }
            ToExecutor::StopSourcesAfter { id } => {
                self.shared.stop_at.store(id, Ordering::Release);
            }
            ToExecutor::Cancel => self.shared.fail("cancel", String::new()),
        }
    }

    /// Cancels every task and waits until all worker threads have exited.
    pub fn shutdown(mut self) {
        self.send(ToExecutor::Cancel);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Exit {
    Finished,
    Aborted,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    plan: &Plan,
    shared: &Arc<ExecShared>,
    spec: &AttemptSpec,
) {
    failure::enter_task_thread();
    shared.threads.lock_ok().push(std::thread::current());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        worker_loop(worker, plan, shared, spec)
    }));
    match outcome {
        Ok(Ok(Exit::Finished)) | Ok(Ok(Exit::Aborted)) => {}
        Ok(Err(e)) if e.chain().any(|c| c.is::<crate::state::IncompatibleState>()) => shared
            .fail_unrecoverable(
                &failure::current_task(),
                format!("{e:#}"),
                Unrecoverable::IncompatibleState,
            ),
        Ok(Err(e))
            if e.chain()
                .any(|c| c.is::<crate::connectors::CommittableLost>()) =>
        {
            shared.fail_unrecoverable(
                &failure::current_task(),
                format!("{e:#}"),
                Unrecoverable::OutputLost,
            )
        }
        Ok(Err(e)) => shared.fail(&failure::current_task(), format!("{e:#}")),
        Err(_) => {
            let msg = failure::take_panic_message().unwrap_or_else(|| "panicked".to_string());
            shared.fail(&failure::current_task(), msg);
        }
    }
    // Drop every dataflow so timely's trailing `step_or_park(None)` loop ends; a panic while
    // dropping state poisoned by the first panic is contained here.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
    }));
}

/// How long an idle worker parks before re-checking for triggers it might have missed.
const PARK: Duration = Duration::from_millis(200);

fn worker_loop(
    worker: &mut timely::worker::Worker,
    plan: &Plan,
    shared: &Arc<ExecShared>,
    spec: &AttemptSpec,
) -> crate::Result<Exit> {
    let start_epoch = spec.start_epoch;
    let index = worker.index() as u32;
    let peers = worker.peers() as u32;
    let probe = ProbeHandle::new();
    let mut drivers = Vec::new();
    worker.dataflow::<super::Time, _, _>(|scope| -> crate::Result<()> {
        let mut cx = BuildCx {
            scope,
            plan,
            worker: index,
            peers,
            attempt: shared.attempt,
            shared,
            restore: spec.restore.as_deref(),
            savepoints: &spec.savepoints,
            start_epoch,
            probe: &probe,
            drivers: &mut drivers,
        };
        for t in &plan.terminals {
            t.build(&mut cx)?;
        }
        Ok(())
    })?;
    let tasks: Vec<TaskId> = plan
        .checkpointed_tasks()
        .into_iter()
        .filter(|t| t.subtask % peers == index)
        .collect();
    shared.register(tasks, drivers.len());

    let mut last_trigger = start_epoch.saturating_sub(1);
    loop {
        if shared.aborted() {
            return Ok(Exit::Aborted);
        }
        if let Some(p) = shared.progress.get(index as usize) {
            p.fetch_add(1, Ordering::Relaxed);
        }
        let trig = shared.triggered();
        if trig > last_trigger {
            for d in drivers.iter_mut() {
                failure::set_current_task(d.task_name());
                d.on_trigger(trig, shared)?;
            }
            last_trigger = trig;
        }
        let mut busy = false;
        let mut all_done = true;
        for d in drivers.iter_mut() {
            failure::set_current_task(d.task_name());
            match d.poll(&probe, shared)? {
                Polled::Emitted => {
                    busy = true;
                    all_done = false;
                }
                Polled::Blocked => all_done = false,
                Polled::Idle => all_done = false,
                Polled::Finished => {}
            }
        }
        if all_done && probe.done() {
            return Ok(Exit::Finished);
        }
        if shared.aborted() {
            return Ok(Exit::Aborted);
        }
        // Blocked sources wait for progress messages, which unpark the worker; the short
        // timeout only bounds how late a new wall-clock tick is noticed.
        let blocked = !busy && drivers.iter().any(|d| d.blocked());
        worker.step_or_park(if busy {
            Some(Duration::ZERO)
        } else if blocked {
            Some(Duration::from_millis(1))
        } else {
            Some(PARK)
        });
    }
}

impl super::protocol::TaskExecutor for LocalExecutor {
    fn send(&self, cmd: ToExecutor) {
        LocalExecutor::send(self, cmd)
    }
    fn shutdown(self: Box<Self>) {
        LocalExecutor::shutdown(*self)
    }
}
