//! The checkpoint coordinator: decides when a checkpoint is triggered, completed, expired or
//! failed, and when the job must fail because too many checkpoints failed in a row.
//!
//! This is pure decision logic: it takes events (time passing, acknowledgements, declines,
//! the outcome of writing `_metadata`) and returns [`Action`]s; the job manager performs
//! the I/O (creating and deleting directories, writing `_metadata`, messaging tasks). That
//! keeps every rule here testable without processes, threads or disks.

use super::config::CheckpointConfig;
use super::metadata::{StateHandle, TaskId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// A checkpoint's id: checkpoints and savepoints of a job share one increasing sequence
/// (Flink's checkpoint id). Displayed as the bare number, as in `chk-<n>` and Flink's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id as a number (the wire protocol and `chk-<n>` use numbers).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for CheckpointId {
    fn from(id: u64) -> Self {
        CheckpointId(id)
    }
}

/// Why a pending checkpoint or savepoint was given up. `Display` is Flink's wording, used
/// in the job manager's log and the REST API's `failure_message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// Not every task acknowledged within `execution.checkpointing.timeout`.
    Expired,
    /// A task could not take its part (writing its state failed, ...).
    Declined {
        /// The declining task, when a task declined (not the job manager).
        task: Option<TaskId>,
        /// The task's reason.
        reason: String,
    },
    /// A newer checkpoint completed first.
    Subsumed,
    /// The attempt's tasks stopped (failover or the end of the job).
    Failover,
    /// Writing `_metadata` failed.
    FinalizeFailed(String),
    /// No checkpoint directory is configured, so checkpoints cannot be stored.
    NoDirectory,
    /// The job manager could not create the checkpoint's directory.
    DirectoryNotCreated {
        /// The directory.
        dir: crate::storage::Location,
        /// The I/O error.
        error: String,
    },
    /// The job manager could not create the savepoint's directory.
    SavepointDirectoryNotCreated,
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Expired => f.write_str("Checkpoint expired before completing."),
            AbortReason::Declined { reason, .. } => f.write_str(reason),
            AbortReason::Subsumed => f.write_str("Checkpoint has been subsumed."),
            AbortReason::Failover => {
                f.write_str("Checkpoint was aborted due to a job failover or the end of the job.")
            }
            AbortReason::FinalizeFailed(e) => write!(f, "Failure to finalize checkpoint: {e}"),
            AbortReason::NoDirectory => f.write_str("no checkpoint directory configured"),
            AbortReason::DirectoryNotCreated { dir, error } => write!(
                f,
                "cannot create checkpoint directory {}: {error}",
                dir.display()
            ),
            AbortReason::SavepointDirectoryNotCreated => {
                f.write_str("cannot create the savepoint directory")
            }
        }
    }
}

/// Flink's message when the job fails because too many checkpoints failed in a row.
pub const TOLERABLE_FAILURES_EXCEEDED: &str = "Exceeded checkpoint tolerable failure threshold.";

/// What the job manager must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `chk-<id>` and tell every task to snapshot for checkpoint `id`.
    Trigger {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// The final checkpoint: the input ended everywhere; create `chk-<id>`, tell sources to
    /// finish once it completes, and tell every task to snapshot for it.
    TriggerFinal {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// All tasks acknowledged: write `_metadata`, then report back with
    /// [`CheckpointCoordinator::finalized`] or [`CheckpointCoordinator::finalize_failed`].
    Finalize {
        /// Checkpoint id.
        id: CheckpointId,
        /// Every task's state handle.
        acks: BTreeMap<TaskId, StateHandle>,
        /// Time from trigger to last acknowledgement.
        duration: Duration,
        /// Checkpoint, savepoint or stop-with-savepoint.
        kind: SnapshotType,
    },
    /// Give up on a pending checkpoint: remove its directory, tell the tasks.
    Abort {
        /// Checkpoint id.
        id: CheckpointId,
        /// Why.
        reason: AbortReason,
    },
    /// A completed checkpoint is subsumed (beyond `num-retained`): delete it.
    Discard {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Too many consecutive failures: fail the job (the restart strategy decides what
    /// follows) with [`TOLERABLE_FAILURES_EXCEEDED`].
    FailJob,
}

/// What a snapshot is for; that decides what completing it does.
///
/// The rule that keeps every restore path exactly-once: **a snapshot commits two-phase-commit
/// output exactly when it is a restore point of the job itself** (what failover and
/// `-s <checkpoint-dir>/<job-id>` restore from). Output committed by a snapshot that recovery
/// does not restore would be written again by the replay after it.
///
/// ```
/// use floe::checkpoint::coordinator::SnapshotType;
/// assert!(SnapshotType::Checkpoint.commits_output());
/// assert!(!SnapshotType::Savepoint.commits_output()); // the job goes on: a later checkpoint commits
/// assert!(SnapshotType::StopWithSavepoint.is_job_restore_point());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotType {
    /// A periodic (or the final) checkpoint, owned by the job.
    Checkpoint,
    /// A savepoint taken while the job keeps running, owned by the user. It commits
    /// nothing: its staged output stays pending and is committed by the next checkpoint
    /// (every checkpoint names all output not yet committed), as in Flink 1.15+.
    Savepoint,
    /// A stop-with-savepoint: the job ends after it, so no later checkpoint would commit
    /// its output — it commits. It therefore also becomes a checkpoint of the job
    /// (`chk-<n>`, sharing the savepoint's state files), so that failover and a resume from
    /// the job's checkpoint directory never replay what it committed and never depend on
    /// the user's savepoint.
    StopWithSavepoint,
}

impl SnapshotType {
    /// A savepoint of either kind (its directory is the user's).
    pub fn is_savepoint(self) -> bool {
        !matches!(self, SnapshotType::Checkpoint)
    }

    /// Completing it commits two-phase-commit output (Flink's `notifyCheckpointComplete`).
    pub fn commits_output(self) -> bool {
        self.is_job_restore_point()
    }

    /// Completing it makes it the job's own restore point: failover restores from it,
    /// retention counts it, it subsumes older checkpoints.
    pub fn is_job_restore_point(self) -> bool {
        !matches!(self, SnapshotType::Savepoint)
    }
}

#[derive(Debug)]
struct Pending {
    kind: SnapshotType,
    triggered: Instant,
    awaiting: BTreeSet<TaskId>,
    acks: BTreeMap<TaskId, StateHandle>,
}

/// Decides checkpoints for one job. Lives on the job-manager side.
#[derive(Debug)]
pub struct CheckpointCoordinator {
    config: CheckpointConfig,
    next_id: CheckpointId,
    pending: BTreeMap<CheckpointId, Pending>,
    /// Checkpoints whose `_metadata` is being written, and what each is.
    finalizing: BTreeMap<CheckpointId, SnapshotType>,
    completed: VecDeque<CheckpointId>,
    tasks: BTreeSet<TaskId>,
    running: bool,
    last_trigger: Option<Instant>,
    last_completion: Option<Instant>,
    started: Option<Instant>,
    consecutive_failures: u32,
    /// The input ended: take a final checkpoint (and retry it until one completes).
    final_requested: bool,
    final_pending: Option<CheckpointId>,
}

impl CheckpointCoordinator {
    /// A coordinator whose first checkpoint id is `first_id` (1 for a fresh job, n+1 after
    /// restoring checkpoint n).
    pub fn new(config: CheckpointConfig, first_id: u64) -> Self {
        CheckpointCoordinator {
            config,
            next_id: CheckpointId(first_id.max(1)),
            pending: BTreeMap::new(),
            finalizing: BTreeMap::new(),
            completed: VecDeque::new(),
            tasks: BTreeSet::new(),
            running: false,
            last_trigger: None,
            last_completion: None,
            started: None,
            consecutive_failures: 0,
            final_requested: false,
            final_pending: None,
        }
    }

    /// Every source read all of its input: trigger the final checkpoint now (periodic
    /// checkpoints stop). If it fails, it is retried one interval after the last trigger,
    /// under the usual failure accounting. No-op without checkpointing.
    pub fn end_of_input(&mut self, now: Instant) -> Vec<Action> {
        if self.config.interval.is_none() || self.final_requested {
            return Vec::new();
        }
        self.final_requested = true;
        self.trigger_final(now)
    }

    fn trigger_final(&mut self, now: Instant) -> Vec<Action> {
        if !self.running || self.final_pending.is_some() {
            return Vec::new();
        }
        let id = self.take_id();
        self.last_trigger = Some(now);
        self.final_pending = Some(id);
        self.pending.insert(
            id,
            Pending {
                kind: SnapshotType::Checkpoint,
                triggered: now,
                awaiting: self.tasks.clone(),
                acks: BTreeMap::new(),
            },
        );
        vec![Action::TriggerFinal { id }]
    }

    /// A checkpoint ended without completing: a failed final checkpoint is retried.
    fn take_id(&mut self) -> CheckpointId {
        let id = self.next_id;
        self.next_id = CheckpointId(id.0 + 1);
        id
    }

    fn ended(&mut self, id: CheckpointId) {
        if self.final_pending == Some(id) {
            self.final_pending = None;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The id the next checkpoint will get.
    pub fn next_id(&self) -> CheckpointId {
        self.next_id
    }

    /// Completed checkpoints this job owns, oldest first.
    pub fn completed(&self) -> impl Iterator<Item = CheckpointId> + '_ {
        self.completed.iter().copied()
    }

    /// The newest completed checkpoint this job owns.
    pub fn latest_completed(&self) -> Option<CheckpointId> {
        self.completed.back().copied()
    }

    /// Number of periodic checkpoints in progress (savepoints are not counted: they are
    /// triggered on demand, next to the periodic ones, as in Flink).
    pub fn pending_count(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.kind == SnapshotType::Checkpoint)
            .count()
            + self
                .finalizing
                .values()
                .filter(|k| **k == SnapshotType::Checkpoint)
                .count()
    }

    /// True while tasks are running, so a savepoint can be taken.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Starts a savepoint now, next to any periodic checkpoint in progress. Returns its id
    /// (savepoints share the checkpoint id sequence), or `None` when no tasks are running.
    /// Its failure never counts toward the tolerable checkpoint failures, and a completed
    /// savepoint is never discarded by `num-retained`: it belongs to the user. With `stop`
    /// `kind` is [`SnapshotType::Savepoint`] or [`SnapshotType::StopWithSavepoint`]; a
    /// [`SnapshotType::Checkpoint`] is refused (periodic checkpoints are the coordinator's).
    pub fn trigger_savepoint(&mut self, now: Instant, kind: SnapshotType) -> Option<CheckpointId> {
        if !self.running || !kind.is_savepoint() {
            return None;
        }
        let id = self.take_id();
        self.pending.insert(
            id,
            Pending {
                kind,
                triggered: now,
                awaiting: self.tasks.clone(),
                acks: BTreeMap::new(),
            },
        );
        Some(id)
    }

    /// Starts a checkpoint now, whatever the interval (`flink checkpoint`). It is a checkpoint
    /// like a periodic one (retention, subsumption, tolerable failures). Returns its id, or
    /// `None` when no tasks are running or the final checkpoint is under way.
    pub fn trigger_checkpoint(&mut self, now: Instant) -> Option<CheckpointId> {
        if !self.running || self.final_requested {
            return None;
        }
        let id = self.take_id();
        self.last_trigger = Some(now);
        let awaiting = self.tasks.clone();
        let p = Pending {
            kind: SnapshotType::Checkpoint,
            triggered: now,
            awaiting,
            acks: BTreeMap::new(),
        };
        self.pending.insert(id, p);
        Some(id)
    }

    /// All tasks are running: checkpoints may be triggered. `tasks` is every task that must
    /// acknowledge a checkpoint. The first trigger comes one interval later.
    pub fn start(&mut self, tasks: impl IntoIterator<Item = TaskId>, now: Instant) {
        self.tasks = tasks.into_iter().collect();
        self.running = true;
        self.started = Some(now);
        self.last_trigger = None;
    }

    /// The tasks stopped (failover or a terminal state): every pending checkpoint is aborted.
    /// These aborts do not count as checkpoint failures, as in Flink.
    pub fn stop(&mut self) -> Vec<Action> {
        self.running = false;
        self.final_requested = false;
        self.final_pending = None;
        let ids: Vec<CheckpointId> = self.pending.keys().copied().collect();
        self.pending.clear();
        ids.into_iter()
            .map(|id| Action::Abort {
                id,
                reason: AbortReason::Failover,
            })
            .collect()
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let expiry = self
            .pending
            .values()
            .map(|p| p.triggered + self.config.timeout)
            .min();
        let trigger = self.next_trigger_time();
        match (expiry, trigger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_trigger_time(&self) -> Option<Instant> {
        let interval = self.config.interval?;
        if self.final_requested {
            // Only the final checkpoint is retried, one interval after the last trigger.
            if !self.running || self.final_pending.is_some() {
                return None;
            }
            return Some(self.last_trigger.or(self.started)? + interval);
        }
        if !self.running || self.pending_count() >= self.config.max_concurrent as usize {
            return None;
        }
        if !self.config.min_pause.is_zero() && self.pending_count() > 0 {
            return None; // a min pause implies one checkpoint at a time
        }
        let base = self.last_trigger.or(self.started)?;
        let mut t = base + interval;
        if let Some(done) = self.last_completion {
            t = t.max(done + self.config.min_pause);
        }
        Some(t)
    }

    /// Expires overdue checkpoints and triggers a new one when it is due.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let expired: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.triggered + self.config.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let p = self.pending.remove(&id).expect("present");
            self.ended(id);
            actions.push(Action::Abort {
                id,
                reason: AbortReason::Expired,
            });
            if p.kind == SnapshotType::Checkpoint {
                self.count_failure(&mut actions);
            }
        }
        if actions.contains(&Action::FailJob) {
            return actions; // the job fails over: nothing new starts in this attempt
        }
        if self.final_requested {
            if self.next_trigger_time().is_some_and(|t| now >= t) {
                actions.extend(self.trigger_final(now));
            }
        } else if let Some(t) = self.next_trigger_time() {
            if now >= t {
                let id = self.take_id();
                self.last_trigger = Some(now);
                let p = Pending {
                    kind: SnapshotType::Checkpoint,
                    triggered: now,
                    awaiting: self.tasks.clone(),
                    acks: BTreeMap::new(),
                };
                self.pending.insert(id, p);
                actions.push(Action::Trigger { id });
            }
        }
        actions
    }

    /// A task acknowledged checkpoint `id` with its state. Unknown or late acks are ignored.
    pub fn acknowledge(
        &mut self,
        id: CheckpointId,
        task: TaskId,
        handle: StateHandle,
        now: Instant,
    ) -> Vec<Action> {
        let Some(p) = self.pending.get_mut(&id) else {
            return Vec::new();
        };
        if !p.awaiting.remove(&task) {
            return Vec::new();
        }
        p.acks.insert(task, handle);
        if !p.awaiting.is_empty() {
            return Vec::new();
        }
        let p = self.pending.remove(&id).expect("present");
        self.finalizing.insert(id, p.kind);
        vec![Action::Finalize {
            id,
            acks: p.acks,
            duration: now.saturating_duration_since(p.triggered),
            kind: p.kind,
        }]
    }

    /// A task could not take its part of checkpoint `id` (e.g. writing its state failed).
    /// Also used by the job manager when it cannot prepare a checkpoint's directory.
    pub fn decline(&mut self, id: CheckpointId, reason: AbortReason) -> Vec<Action> {
        let Some(p) = self.pending.remove(&id) else {
            return Vec::new();
        };
        self.ended(id);
        let mut actions = vec![Action::Abort { id, reason }];
        if p.kind == SnapshotType::Checkpoint {
            self.count_failure(&mut actions);
        }
        actions
    }

    /// `_metadata` of checkpoint `id` was written: it is complete. Older checkpoints beyond
    /// `num-retained` are discarded, and older pending ones are subsumed. A savepoint is
    /// owned by the user: it is never discarded and subsumes nothing; a stop-with-savepoint
    /// also completed the job's checkpoint `id` (its copy in `chk-<id>`), which counts
    /// like any other.
    pub fn finalized(&mut self, id: CheckpointId, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.finalizing.remove(&id) {
            Some(k) if k.is_job_restore_point() => {}
            _ => return actions,
        }
        self.consecutive_failures = 0;
        self.last_completion = Some(now);
        self.completed.push_back(id);
        while self.completed.len() > self.config.num_retained.max(1) as usize {
            let old = self.completed.pop_front().expect("non-empty");
            actions.push(Action::Discard { id: old });
        }
        let subsumed: Vec<CheckpointId> = self
            .pending
            .range(..id)
            .filter(|(_, p)| p.kind == SnapshotType::Checkpoint)
            .map(|(k, _)| *k)
            .collect();
        for old in subsumed {
            self.pending.remove(&old);
            actions.push(Action::Abort {
                id: old,
                reason: AbortReason::Subsumed,
            });
        }
        actions
    }

    /// Writing `_metadata` of checkpoint `id` failed (`error`, with its causes).
    pub fn finalize_failed(&mut self, id: CheckpointId, error: String) -> Vec<Action> {
        let Some(kind) = self.finalizing.remove(&id) else {
            return Vec::new();
        };
        self.ended(id);
        let mut actions = vec![Action::Abort {
            id,
            reason: AbortReason::FinalizeFailed(error),
        }];
        if kind == SnapshotType::Checkpoint {
            self.count_failure(&mut actions);
        }
        actions
    }

    fn count_failure(&mut self, actions: &mut Vec<Action>) {
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.config.tolerable_failures {
            self.consecutive_failures = 0;
            actions.push(Action::FailJob);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CheckpointConfig {
        CheckpointConfig {
            interval: Some(Duration::from_millis(100)),
            ..Default::default()
        }
    }
    fn t(uid: &str, s: u32) -> TaskId {
        TaskId {
            uid: uid.into(),
            subtask: s,
        }
    }
    fn h() -> StateHandle {
        StateHandle::Inline { data: vec![] }
    }
    #[allow(non_snake_case)]
    fn C(n: u64) -> CheckpointId {
        CheckpointId(n)
    }
    fn declined(reason: &str) -> AbortReason {
        AbortReason::Declined {
            task: Some(t("a", 0)),
            reason: reason.into(),
        }
    }

    #[test]
    fn triggers_after_interval_and_completes_on_all_acks() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        assert!(c.tick(t0).is_empty(), "not running yet");
        c.start([t("src", 0), t("sum", 0)], t0);
        assert!(c.tick(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: C(1) }]
        );
        // max concurrent 1: no second trigger while 1 is pending
        assert!(c.tick(t0 + Duration::from_millis(250)).is_empty());
        assert!(c.acknowledge(C(1), t("src", 0), h(), t0).is_empty());
        assert!(
            c.acknowledge(C(1), t("src", 0), h(), t0).is_empty(),
            "duplicate ack ignored"
        );
        let a = c.acknowledge(C(1), t("sum", 0), h(), t0 + Duration::from_millis(260));
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                id: CheckpointId(1),
                ..
            }]
        ));
        assert!(c
            .finalized(C(1), t0 + Duration::from_millis(270))
            .is_empty());
        assert_eq!(c.latest_completed(), Some(C(1)));
        assert_eq!(
            c.tick(t0 + Duration::from_millis(350)),
            vec![Action::Trigger { id: C(2) }]
        );
    }

    #[test]
    fn a_manual_checkpoint_starts_at_once_and_is_a_restore_point() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        assert_eq!(c.trigger_checkpoint(t0), None, "not running yet");
        c.start([t("src", 0)], t0);
        assert_eq!(c.trigger_checkpoint(t0), Some(CheckpointId(1)));
        let a = c.acknowledge(CheckpointId(1), t("src", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                id: CheckpointId(1),
                kind: SnapshotType::Checkpoint,
                ..
            }]
        ));
        c.finalized(CheckpointId(1), t0);
        assert_eq!(c.latest_completed(), Some(CheckpointId(1)));
        // The next periodic one counts from the manual one.
        assert!(c.tick(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger {
                id: CheckpointId(2)
            }]
        );
    }

    #[test]
    fn only_restore_points_commit_a_savepoint_is_not_one_a_stop_with_savepoint_is() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        c.start([t("src", 0)], t0);
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: C(1) }]
        );
        c.acknowledge(C(1), t("src", 0), h(), t0);
        c.finalized(C(1), t0);
        // A savepoint while the job runs: finalized, but not the job's restore point and
        // it subsumes nothing.
        let sp = c.trigger_savepoint(t0, SnapshotType::Savepoint).unwrap();
        let a = c.acknowledge(sp, t("src", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                kind: SnapshotType::Savepoint,
                ..
            }]
        ));
        assert!(!SnapshotType::Savepoint.commits_output());
        assert!(c.finalized(sp, t0).is_empty());
        assert_eq!(
            c.latest_completed(),
            Some(C(1)),
            "failover still restores chk-1"
        );
        // A stop-with-savepoint commits, so it is the job's newest restore point: with one
        // retained, chk-1 is discarded.
        let stop = c
            .trigger_savepoint(t0, SnapshotType::StopWithSavepoint)
            .unwrap();
        let a = c.acknowledge(stop, t("src", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                kind: SnapshotType::StopWithSavepoint,
                ..
            }]
        ));
        assert_eq!(c.finalized(stop, t0), vec![Action::Discard { id: C(1) }]);
        assert_eq!(c.latest_completed(), Some(stop));
    }

    #[test]
    fn end_of_input_triggers_a_final_checkpoint_at_once_and_retries_it_after_failure() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                tolerable_failures: 1,
                ..cfg()
            },
            1,
        );
        c.start([t("src", 0), t("sink", 0)], t0);
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: C(1) }]
        );
        // The input ends while checkpoint 1 is pending: the final one starts right away.
        let now = t0 + Duration::from_millis(110);
        assert_eq!(c.end_of_input(now), vec![Action::TriggerFinal { id: C(2) }]);
        assert!(c.end_of_input(now).is_empty(), "requested once");
        // It fails: retried one interval after the last trigger, never periodically.
        let a = c.decline(C(2), declined("disk full"));
        assert!(
            matches!(
                &a[..],
                [Action::Abort {
                    id: CheckpointId(2),
                    ..
                }]
            ),
            "{a:?}"
        );
        assert!(c.tick(now + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.next_deadline()
                .map(|d| d >= now + Duration::from_millis(100)),
            Some(true)
        );
        let a = c.tick(now + Duration::from_millis(100));
        assert!(a.contains(&Action::TriggerFinal { id: C(3) }), "{a:?}");
        // A second failure in a row exceeds tolerable=1, as for any checkpoint.
        let a = c.decline(C(3), declined("disk full"));
        assert!(a.iter().any(|a| matches!(a, Action::FailJob)), "{a:?}");
        // After a failover the new attempt reports the end of input again.
        c.stop();
        c.start([t("src", 0), t("sink", 0)], t0);
        assert_eq!(c.end_of_input(t0), vec![Action::TriggerFinal { id: C(4) }]);
        c.acknowledge(C(4), t("src", 0), h(), t0);
        let a = c.acknowledge(C(4), t("sink", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                id: CheckpointId(4),
                ..
            }]
        ));
        assert!(c.finalized(C(4), t0).is_empty());
        assert!(
            c.tick(t0 + Duration::from_secs(10)).is_empty(),
            "nothing after the final one"
        );
    }

    #[test]
    fn num_retained_discards_oldest() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                num_retained: 2,
                ..cfg()
            },
            5,
        );
        c.start([t("a", 0)], t0);
        let mut now = t0;
        let mut discarded = vec![];
        for id in (5..9).map(C) {
            now += Duration::from_millis(100);
            assert_eq!(c.tick(now), vec![Action::Trigger { id }]);
            c.acknowledge(id, t("a", 0), h(), now);
            for a in c.finalized(id, now) {
                if let Action::Discard { id } = a {
                    discarded.push(id)
                }
            }
        }
        assert_eq!(discarded, vec![C(5), C(6)]);
        assert_eq!(c.completed().collect::<Vec<_>>(), vec![C(7), C(8)]);
    }

    #[test]
    fn expiry_counts_as_failure_and_tolerance_boundary() {
        let t0 = Instant::now();
        let conf = CheckpointConfig {
            timeout: Duration::from_millis(30),
            tolerable_failures: 2,
            ..cfg()
        };
        let mut c = CheckpointCoordinator::new(conf, 1);
        c.start([t("a", 0)], t0);
        let mut now = t0;
        let mut fails = 0;
        for round in 0..3 {
            now += Duration::from_millis(100);
            let a = c.tick(now);
            assert!(a.contains(&Action::Trigger { id: C(round + 1) }), "{a:?}");
            now += Duration::from_millis(30);
            let a = c.tick(now);
            assert!(a.iter().any(|x| matches!(
                x,
                Action::Abort {
                    reason: AbortReason::Expired,
                    ..
                }
            )));
            fails += a.iter().filter(|x| matches!(x, Action::FailJob)).count();
            if round < 2 {
                assert_eq!(fails, 0, "failures 1..=2 are tolerated");
            }
        }
        assert_eq!(fails, 1, "the third consecutive failure fails the job");
    }

    #[test]
    fn success_resets_consecutive_failures() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                tolerable_failures: 1,
                ..cfg()
            },
            1,
        );
        c.start([t("a", 0)], t0);
        let n = t0 + Duration::from_millis(100);
        c.tick(n);
        assert_eq!(
            c.decline(C(1), declined("io")),
            vec![Action::Abort {
                id: C(1),
                reason: declined("io")
            }]
        );
        let n = n + Duration::from_millis(100);
        c.tick(n);
        c.acknowledge(C(2), t("a", 0), h(), n);
        c.finalized(C(2), n);
        let n = n + Duration::from_millis(100);
        c.tick(n);
        assert!(!c
            .decline(C(3), declined("io"))
            .iter()
            .any(|a| matches!(a, Action::FailJob)));
    }

    #[test]
    fn min_pause_delays_next_trigger_and_stop_aborts() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                min_pause: Duration::from_millis(500),
                ..cfg()
            },
            1,
        );
        c.start([t("a", 0)], t0);
        let n = t0 + Duration::from_millis(100);
        c.tick(n);
        c.acknowledge(C(1), t("a", 0), h(), n);
        c.finalized(C(1), n);
        assert!(c.tick(n + Duration::from_millis(200)).is_empty());
        assert_eq!(
            c.tick(n + Duration::from_millis(500)),
            vec![Action::Trigger { id: C(2) }]
        );
        assert_eq!(
            c.stop(),
            vec![Action::Abort {
                id: C(2),
                reason: AbortReason::Failover
            }]
        );
        assert!(c.tick(n + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn savepoints_never_count_as_checkpoint_failures_nor_get_discarded() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        assert_eq!(
            c.trigger_savepoint(t0, SnapshotType::Savepoint),
            None,
            "not running"
        );
        c.start([t("a", 0)], t0);
        assert_eq!(c.trigger_savepoint(t0, SnapshotType::Checkpoint), None);
        let sp = c.trigger_savepoint(t0, SnapshotType::Savepoint).unwrap();
        assert_eq!(
            c.pending_count(),
            0,
            "savepoints run next to the periodic ones"
        );
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: C(2) }]
        );
        // Declined savepoints are aborted without touching the failure count (tolerable 0).
        assert_eq!(
            c.decline(sp, declined("disk full")),
            vec![Action::Abort {
                id: sp,
                reason: declined("disk full")
            }]
        );
        // Expired savepoints too.
        let sp = c.trigger_savepoint(t0, SnapshotType::Savepoint).unwrap();
        let a = c.tick(t0 + Duration::from_secs(3600));
        assert!(a.contains(&Action::Abort {
            id: sp,
            reason: AbortReason::Expired
        }));
        assert!(
            a.contains(&Action::FailJob),
            "the expired checkpoint 2 counts: {a:?}"
        );
    }

    #[test]
    fn a_decline_of_an_unknown_or_finished_checkpoint_is_ignored() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        c.start([t("a", 0), t("b", 0)], t0);
        assert!(c.decline(C(9), declined("late")).is_empty());
        c.tick(t0 + Duration::from_millis(100));
        c.acknowledge(C(1), t("a", 0), h(), t0);
        assert!(
            c.acknowledge(C(1), t("z", 0), h(), t0).is_empty(),
            "unknown task"
        );
        c.acknowledge(C(1), t("b", 0), h(), t0);
        assert!(
            c.decline(C(1), declined("late")).is_empty(),
            "already finalizing"
        );
        assert!(c.finalized(C(1), t0).is_empty());
    }

    #[test]
    fn with_max_concurrent_two_a_completed_checkpoint_subsumes_older_pending_ones() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                max_concurrent: 2,
                num_retained: 3,
                ..cfg()
            },
            1,
        );
        c.start([t("a", 0)], t0);
        let sp = c.trigger_savepoint(t0, SnapshotType::Savepoint).unwrap();
        assert_eq!(sp, C(1));
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: C(2) }]
        );
        assert_eq!(
            c.tick(t0 + Duration::from_millis(200)),
            vec![Action::Trigger { id: C(3) }]
        );
        assert_eq!(c.pending_count(), 2);
        assert!(
            c.tick(t0 + Duration::from_millis(300)).is_empty(),
            "at most two"
        );
        assert_eq!(
            c.next_deadline(),
            Some(t0 + c.config().timeout),
            "only the savepoint's expiry is due"
        );
        // 3 completes before 2: 2 is subsumed, the older savepoint is not (it is the user's).
        let a = c.acknowledge(C(3), t("a", 0), h(), t0 + Duration::from_millis(250));
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                id: CheckpointId(3),
                kind: SnapshotType::Checkpoint,
                ..
            }]
        ));
        assert_eq!(
            c.finalized(C(3), t0 + Duration::from_millis(260)),
            vec![Action::Abort {
                id: C(2),
                reason: AbortReason::Subsumed
            }]
        );
        assert!(c.acknowledge(C(2), t("a", 0), h(), t0).is_empty(), "gone");
        let a = c.acknowledge(sp, t("a", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                kind: SnapshotType::Savepoint,
                ..
            }]
        ));
        assert_eq!(c.completed().collect::<Vec<_>>(), vec![C(3)]);
    }

    #[test]
    fn a_failed_finalize_aborts_and_counts_and_a_stop_with_savepoint_one_does_not() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(
            CheckpointConfig {
                tolerable_failures: 1,
                ..cfg()
            },
            1,
        );
        c.start([t("a", 0)], t0);
        let stop = c
            .trigger_savepoint(t0, SnapshotType::StopWithSavepoint)
            .unwrap();
        c.acknowledge(stop, t("a", 0), h(), t0);
        assert_eq!(
            c.finalize_failed(stop, "disk full".into()),
            vec![Action::Abort {
                id: stop,
                reason: AbortReason::FinalizeFailed("disk full".into())
            }]
        );
        assert_eq!(
            AbortReason::FinalizeFailed("disk full".into()).to_string(),
            "Failure to finalize checkpoint: disk full"
        );
        assert!(c.finalize_failed(stop, "again".into()).is_empty(), "once");
        for (n, id) in [(0, C(2)), (1, C(3))] {
            let now = t0 + Duration::from_millis(100 * (n + 1));
            assert_eq!(c.tick(now), vec![Action::Trigger { id }]);
            c.acknowledge(id, t("a", 0), h(), now);
            let a = c.finalize_failed(id, "disk full".into());
            assert_eq!(a.contains(&Action::FailJob), n == 1, "{a:?}");
        }
        assert_eq!(c.latest_completed(), None);
    }

    #[test]
    fn abort_reasons_read_as_flinks_messages() {
        assert_eq!(
            AbortReason::Expired.to_string(),
            "Checkpoint expired before completing."
        );
        assert_eq!(
            AbortReason::Subsumed.to_string(),
            "Checkpoint has been subsumed."
        );
        assert_eq!(
            AbortReason::Failover.to_string(),
            "Checkpoint was aborted due to a job failover or the end of the job."
        );
        assert_eq!(declined("io").to_string(), "io");
        assert_eq!(C(42).to_string(), "42");
    }
}
