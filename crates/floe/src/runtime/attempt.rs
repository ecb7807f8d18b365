//! What the executor and the worker threads of one attempt share, in named parts:
//!
//! - [`AttemptControl`]: abort, the first [`TaskFailure`] with its [`FailureCause`], waking
//!   parked workers, and each worker's progress counter;
//! - [`CheckpointSignals`]: the checkpoints triggered and pending, and what sources do
//!   about stopping ([`SourceStop`]);
//! - [`Registration`]: which tasks and sources the workers deployed, and when every source
//!   reached the end of its input;
//! - [`Committers`]: the two-phase-commit sinks to commit when a checkpoint completes;
//! - [`Outbox`]: messages to the job manager and snapshot jobs to the writer thread.

use super::failure;
use super::protocol::{FromExecutor, Unrecoverable};
use super::snapshot::SnapshotJob;
use crate::checkpoint::metadata::{StateHandle, TaskId};
use crate::sync::LockExt;
use crate::Result;
use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

/// Why a task failed, as the executor reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureCause {
    /// User code returned an error (or the runtime did, on its behalf).
    User,
    /// User code panicked.
    Panic,
    /// Restored state does not fit the job's state types: restarting cannot help.
    IncompatibleState,
    /// Output the restored checkpoint names is gone: restarting cannot help.
    OutputLost,
    /// The job manager cancelled the attempt; no task failed.
    Cancelled,
}

impl FailureCause {
    /// Set when retrying cannot fix the failure (see [`FromExecutor::Failed`]).
    pub(crate) fn unrecoverable(self) -> Option<Unrecoverable> {
        match self {
            FailureCause::IncompatibleState => Some(Unrecoverable::IncompatibleState),
            FailureCause::OutputLost => Some(Unrecoverable::OutputLost),
            FailureCause::User | FailureCause::Panic | FailureCause::Cancelled => None,
        }
    }

    /// The cause of an error returned by a task: typed errors say what retrying can do.
    pub(crate) fn of(e: &anyhow::Error) -> FailureCause {
        if e.chain().any(|c| c.is::<crate::state::IncompatibleState>()) {
            FailureCause::IncompatibleState
        } else if e
            .chain()
            .any(|c| c.is::<crate::connectors::CommittableLost>())
        {
            FailureCause::OutputLost
        } else {
            FailureCause::User
        }
    }
}

/// The first failure of an attempt.
#[derive(Clone, Debug)]
pub(crate) struct TaskFailure {
    /// The failing task, as Flink names it, e.g. `Map (1/1)`.
    pub task: String,
    /// The error or panic message.
    pub error: String,
    /// Why it failed.
    pub cause: FailureCause,
}

impl TaskFailure {
    /// The message the executor sends when the attempt ends with this failure; a cancelled
    /// attempt ends with `Cancelled`.
    pub(crate) fn into_message(self, attempt: u32) -> FromExecutor {
        if self.cause == FailureCause::Cancelled {
            return FromExecutor::Cancelled { attempt };
        }
        FromExecutor::Failed {
            attempt,
            task: self.task,
            error: self.error,
            unrecoverable: self.cause.unrecoverable(),
        }
    }
}

/// Abort, failure and wake-ups of one attempt's worker threads.
pub(crate) struct AttemptControl {
    /// The attempt number.
    pub attempt: u32,
    abort: AtomicBool,
    failure: Mutex<Option<TaskFailure>>,
    threads: Mutex<Vec<Thread>>,
    progress: Vec<AtomicU64>,
    /// Worker threads of this process that returned, and a wake-up for who waits on them.
    ended: Mutex<u32>,
    ended_cv: std::sync::Condvar,
}

impl AttemptControl {
    pub(crate) fn new(attempt: u32, workers: u32) -> Self {
        AttemptControl {
            attempt,
            abort: AtomicBool::new(false),
            failure: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            progress: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ended: Mutex::new(0),
            ended_cv: std::sync::Condvar::new(),
        }
    }

    /// True once any task failed or the attempt was cancelled.
    #[inline]
    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Records the first failure and stops every worker.
    pub(crate) fn fail(&self, task: &str, error: String, cause: FailureCause) {
        {
            let mut f = self.failure.lock_ok();
            if f.is_none() {
                *f = Some(TaskFailure {
                    task: task.to_string(),
                    error,
                    cause,
                });
            }
        }
        self.abort.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// A task's error: its cause follows from the error's type.
    pub(crate) fn fail_with_error(&self, task: &str, e: &anyhow::Error) {
        self.fail(task, format!("{e:#}"), FailureCause::of(e));
    }

    /// The job manager cancelled the attempt.
    pub(crate) fn cancel(&self) {
        self.fail("", String::new(), FailureCause::Cancelled);
    }

    /// The failure the attempt ended with, if any.
    pub(crate) fn take_failure(&self) -> Option<TaskFailure> {
        self.failure.lock_ok().take()
    }

    /// Makes the calling worker thread one that [`wake_all`](Self::wake_all) unparks.
    pub(crate) fn register_thread(&self) {
        self.threads.lock_ok().push(std::thread::current());
    }

    /// A worker thread of this process is done (its dataflows are dropped).
    pub(crate) fn worker_ended(&self) {
        *self.ended.lock_ok() += 1;
        self.ended_cv.notify_all();
    }

    /// Waits until `workers` worker threads of this process are done.
    pub(crate) fn wait_workers_ended(&self, workers: u32) {
        let mut ended = self.ended.lock_ok();
        while *ended < workers {
            ended = self.ended_cv.wait(ended).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Unparks every worker thread.
    pub(crate) fn wake_all(&self) {
        for t in self.threads.lock_ok().iter() {
            t.unpark();
        }
    }

    /// Counts one loop iteration of worker `index`.
    #[inline]
    pub(crate) fn tick(&self, index: u32) {
        if let Some(p) = self.progress.get(index as usize) {
            p.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Loop iterations of every worker thread: a counter that stops moving is a thread
    /// stuck in user code.
    pub(crate) fn progress(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

/// What sources do about stopping, as the source loop reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceStop {
    /// Keep going.
    None,
    /// Stop-with-savepoint `id`: emit nothing after its barrier; finish once it completes,
    /// resume if it is aborted.
    AfterSavepoint(u64),
    /// The stop-with-savepoint or final checkpoint completed: finish.
    Finish,
}

/// The stop requests of an attempt, apart from how the source loop reads them: a
/// stop-with-savepoint and a final checkpoint may both be pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StopRequests {
    /// The stop-with-savepoint's id.
    savepoint: Option<u64>,
    /// The final checkpoint's id: sources finish once it, or a later one, completes.
    final_checkpoint: Option<u64>,
    finish: bool,
}

impl StopRequests {
    /// Sources stop emitting after savepoint `id` and finish when it completes.
    pub(crate) fn stop_after(&mut self, id: u64) {
        self.savepoint = Some(id);
    }

    /// Checkpoint `id` is the final one.
    pub(crate) fn final_checkpoint(&mut self, id: u64) {
        self.final_checkpoint = Some(id);
    }

    /// Checkpoint `id` completed.
    pub(crate) fn completed(&mut self, id: u64) {
        if self.savepoint == Some(id) || self.final_checkpoint.is_some_and(|f| id >= f) {
            self.finish = true;
        }
    }

    /// Checkpoint `id` was aborted: a stop waiting for it resumes the sources (a final
    /// checkpoint waits for the next one).
    pub(crate) fn aborted(&mut self, id: u64) {
        if self.savepoint == Some(id) {
            self.savepoint = None;
        }
        if self.final_checkpoint == Some(id) {
            self.final_checkpoint = None;
        }
    }

    /// What the source loop does now.
    pub(crate) fn source_stop(&self) -> SourceStop {
        match (self.finish, self.savepoint) {
            (true, _) => SourceStop::Finish,
            (false, Some(id)) => SourceStop::AfterSavepoint(id),
            (false, None) => SourceStop::None,
        }
    }
}

/// [`SourceStop`] in one atomic word, so a source's poll reads it with one load.
struct PublishedStop(AtomicU64);

impl PublishedStop {
    const NONE: u64 = 0;
    const FINISH: u64 = u64::MAX;

    fn store(&self, s: SourceStop) {
        let v = match s {
            SourceStop::None => Self::NONE,
            SourceStop::AfterSavepoint(id) => id,
            SourceStop::Finish => Self::FINISH,
        };
        self.0.store(v, Ordering::Release);
    }

    #[inline]
    fn load(&self) -> SourceStop {
        match self.0.load(Ordering::Acquire) {
            Self::NONE => SourceStop::None,
            Self::FINISH => SourceStop::Finish,
            id => SourceStop::AfterSavepoint(id),
        }
    }
}

/// Checkpoints as the workers of an attempt see them.
pub(crate) struct CheckpointSignals {
    trigger: AtomicU64,
    pending: Mutex<BTreeMap<u64, crate::storage::Location>>,
    stop: Mutex<StopRequests>,
    published: PublishedStop,
}

impl CheckpointSignals {
    /// Nothing triggered yet; the first checkpoint of the attempt is `start_epoch`.
    pub(crate) fn new(start_epoch: u64) -> Self {
        CheckpointSignals {
            trigger: AtomicU64::new(start_epoch.saturating_sub(1)),
            pending: Mutex::new(BTreeMap::new()),
            stop: Mutex::new(StopRequests::default()),
            published: PublishedStop(AtomicU64::new(PublishedStop::NONE)),
        }
    }

    /// Highest checkpoint id triggered in this attempt.
    #[inline]
    pub(crate) fn triggered(&self) -> u64 {
        self.trigger.load(Ordering::Acquire)
    }

    /// Checkpoint `id` was triggered; its files go into `dir`.
    pub(crate) fn trigger(&self, id: u64, dir: crate::storage::Location) {
        self.pending.lock_ok().insert(id, dir);
        self.trigger.fetch_max(id, Ordering::AcqRel);
    }

    /// Checkpoint `id` is no longer pending (completed or aborted).
    pub(crate) fn settled(&self, id: u64) {
        self.pending.lock_ok().remove(&id);
    }

    /// Triggered checkpoints in `lo..=hi` that are still pending, with their directories.
    pub(crate) fn pending_in(&self, lo: u64, hi: u64) -> Vec<(u64, crate::storage::Location)> {
        if lo > hi {
            return Vec::new();
        }
        self.pending
            .lock_ok()
            .range(lo..=hi)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// What sources do about stopping now.
    #[inline]
    pub(crate) fn source_stop(&self) -> SourceStop {
        self.published.load()
    }

    /// The sources finished because a stop-with-savepoint completed, not because their
    /// input ended: the watermark must not move to the end of time (Flink's stop without
    /// `--drain`), so pending timers and windows stay in the savepoint.
    pub(crate) fn stopped_with_savepoint(&self) -> bool {
        let s = self.stop.lock_ok();
        s.finish && s.savepoint.is_some()
    }

    /// Applies `f` to the stop requests; true when what sources do changed.
    pub(crate) fn update_stop(&self, f: impl FnOnce(&mut StopRequests)) -> bool {
        let mut s = self.stop.lock_ok();
        let before = s.source_stop();
        f(&mut s);
        let after = s.source_stop();
        self.published.store(after);
        before != after
    }
}

#[derive(Default)]
struct Registered {
    workers: u32,
    tasks: Vec<TaskId>,
    /// Source drivers over all workers, and how many of them reached the end of input.
    sources: u32,
    sources_ended: u32,
    end_reported: bool,
}

/// What the workers of an attempt have reported about themselves.
pub(crate) struct Registration {
    peers: u32,
    final_checkpoint: bool,
    state: Mutex<Registered>,
}

impl Registration {
    pub(crate) fn new(peers: u32, final_checkpoint: bool) -> Self {
        Registration {
            peers,
            final_checkpoint,
            state: Mutex::new(Registered::default()),
        }
    }

    /// True when sources wait for a final checkpoint after their input ends, so that
    /// two-phase-commit sinks commit everything before the job finishes.
    #[inline]
    pub(crate) fn final_checkpoint(&self) -> bool {
        self.final_checkpoint
    }

    /// A worker deployed `tasks` and `sources` source drivers; once every worker did, the
    /// attempt is running.
    pub(crate) fn register(&self, tasks: Vec<TaskId>, sources: usize, out: &Outbox) {
        let mut r = self.state.lock_ok();
        r.workers += 1;
        r.tasks.extend(tasks);
        r.sources += sources as u32;
        if r.workers == self.peers {
            let mut all = std::mem::take(&mut r.tasks);
            all.sort();
            all.dedup();
            out.send(FromExecutor::Running {
                attempt: out.attempt,
                tasks: all,
            });
            self.report_end_of_input(&mut r, out);
        }
    }

    /// A source instance read all of its input. With a final checkpoint, it keeps its place
    /// in the dataflow until that checkpoint completes.
    pub(crate) fn source_ended(&self, out: &Outbox) {
        let mut r = self.state.lock_ok();
        r.sources_ended += 1;
        self.report_end_of_input(&mut r, out);
    }

    fn report_end_of_input(&self, r: &mut Registered, out: &Outbox) {
        if self.final_checkpoint
            && !r.end_reported
            && r.workers == self.peers
            && r.sources_ended >= r.sources
        {
            r.end_reported = true;
            out.send(FromExecutor::EndOfInput {
                attempt: out.attempt,
            });
        }
    }
}

/// Something to commit when a checkpoint completes (Flink's `notifyCheckpointComplete`).
pub(crate) trait Committer: Send + Sync {
    /// Checkpoint `id` completed: commit everything staged for checkpoints `<= id`.
    fn commit_upto(&self, id: u64) -> Result<()>;
    /// The task, as Flink names it, for failures.
    fn task(&self) -> &str;
}

/// The committers of an attempt's two-phase-commit sinks.
#[derive(Default)]
pub(crate) struct Committers(Mutex<Vec<Arc<dyn Committer>>>);

impl Committers {
    pub(crate) fn add(&self, c: Arc<dyn Committer>) {
        self.0.lock_ok().push(c);
    }

    /// Checkpoint `id` completed: every two-phase-commit sink commits what it holds for it.
    pub(crate) fn commit_upto(&self, id: u64, control: &AttemptControl) {
        let committers = self.0.lock_ok().clone();
        for c in committers {
            // A sink's commit is user code: a panic fails its task, not the caller (in
            // per-job mode without worker processes, the job manager's thread).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.commit_upto(id)));
            match r {
                Ok(Ok(())) => continue,
                // Recoverable whatever its type: a restart commits it again.
                Ok(Err(e)) => control.fail(c.task(), format!("{e:#}"), FailureCause::User),
                Err(_) => control.fail(
                    c.task(),
                    failure::take_panic_message()
                        .unwrap_or_else(|| "panicked while committing".to_string()),
                    FailureCause::Panic,
                ),
            }
            return;
        }
    }
}

/// Messages of an attempt to the job manager and to its snapshot writer.
pub(crate) struct Outbox {
    /// The attempt number every message carries.
    pub attempt: u32,
    events: Sender<FromExecutor>,
    snapshots: Mutex<Option<Sender<SnapshotJob>>>,
}

impl Outbox {
    pub(crate) fn new(
        attempt: u32,
        events: Sender<FromExecutor>,
        snapshots: Sender<SnapshotJob>,
    ) -> Self {
        Outbox {
            attempt,
            events,
            snapshots: Mutex::new(Some(snapshots)),
        }
    }

    pub(crate) fn send(&self, ev: FromExecutor) {
        let _ = self.events.send(ev);
    }

    /// `task` acknowledges checkpoint `id` with `state`.
    pub(crate) fn ack(&self, id: u64, task: &TaskId, state: StateHandle) {
        self.send(FromExecutor::Ack {
            attempt: self.attempt,
            checkpoint_id: id,
            task: task.clone(),
            state,
        });
    }

    /// Hands keyed state to the snapshot writer, which acknowledges once it is written.
    pub(crate) fn snapshot(&self, job: SnapshotJob) {
        if let Some(tx) = self.snapshots.lock_ok().as_ref() {
            let _ = tx.send(job);
        }
    }

    /// No more snapshot jobs: the writer ends after it drained its queue.
    pub(crate) fn close_snapshots(&self) {
        self.snapshots.lock_ok().take();
    }
}

/// Everything one attempt's executor and worker threads share.
pub(crate) struct Attempt {
    /// The job's id: what the attempt writes is named after it (with the attempt number).
    pub job_id: String,
    /// Abort, failure, wake-ups.
    pub control: AttemptControl,
    /// Checkpoints triggered and pending; source stops.
    pub signals: CheckpointSignals,
    /// What the workers deployed.
    pub registration: Registration,
    /// Two-phase-commit sinks.
    pub committers: Committers,
    /// Messages out.
    pub outbox: Outbox,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_with_savepoint_pauses_then_finishes_or_resumes() {
        let mut s = StopRequests::default();
        assert_eq!(s.source_stop(), SourceStop::None);
        s.stop_after(5);
        assert_eq!(s.source_stop(), SourceStop::AfterSavepoint(5));
        s.completed(4);
        assert_eq!(s.source_stop(), SourceStop::AfterSavepoint(5));
        s.aborted(5);
        assert_eq!(
            s.source_stop(),
            SourceStop::None,
            "an aborted savepoint resumes"
        );
        s.stop_after(6);
        s.completed(6);
        assert_eq!(s.source_stop(), SourceStop::Finish);
        s.aborted(6);
        assert_eq!(s.source_stop(), SourceStop::Finish, "finishing is final");
    }

    #[test]
    fn a_final_checkpoint_finishes_with_it_or_a_later_one_and_survives_a_stop() {
        let mut s = StopRequests::default();
        s.final_checkpoint(3);
        s.stop_after(4);
        // The stop-with-savepoint is aborted: the final checkpoint still counts.
        s.aborted(4);
        s.completed(2);
        assert_eq!(s.source_stop(), SourceStop::None);
        s.aborted(3);
        s.completed(3);
        assert_eq!(
            s.source_stop(),
            SourceStop::None,
            "an aborted final checkpoint waits"
        );
        s.final_checkpoint(7);
        s.completed(8);
        assert_eq!(s.source_stop(), SourceStop::Finish);
    }

    #[test]
    fn the_published_stop_round_trips() {
        let p = PublishedStop(AtomicU64::new(0));
        for s in [
            SourceStop::AfterSavepoint(1),
            SourceStop::Finish,
            SourceStop::None,
            SourceStop::AfterSavepoint(u64::MAX - 1),
        ] {
            p.store(s);
            assert_eq!(p.load(), s);
        }
    }

    #[test]
    fn the_first_failure_wins_and_a_cancel_is_typed() {
        let c = AttemptControl::new(0, 1);
        c.cancel();
        c.fail("Map (1/1)", "boom".into(), FailureCause::User);
        assert!(c.aborted());
        let f = c.take_failure().unwrap();
        assert_eq!(f.cause, FailureCause::Cancelled);
        match f.into_message(0) {
            FromExecutor::Cancelled { attempt } => assert_eq!(attempt, 0),
            other => panic!("{other:?}"),
        }
        let e = anyhow::Error::new(crate::state::IncompatibleState("x".into())).context("open");
        assert_eq!(FailureCause::of(&e), FailureCause::IncompatibleState);
    }
}
