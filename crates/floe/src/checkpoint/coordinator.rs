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
use std::time::{Duration, Instant};

/// What the job manager must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `chk-<id>` and tell every task to snapshot for checkpoint `id`.
    Trigger {
        /// Checkpoint id.
        id: u64,
    },
    /// The final checkpoint: the input ended everywhere; create `chk-<id>`, tell sources to
    /// finish once it completes, and tell every task to snapshot for it.
    TriggerFinal {
        /// Checkpoint id.
        id: u64,
    },
    /// All tasks acknowledged: write `_metadata`, then report back with
    /// [`CheckpointCoordinator::finalized`] or [`CheckpointCoordinator::finalize_failed`].
    Finalize {
        /// Checkpoint id.
        id: u64,
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
        id: u64,
        /// Why, in Flink's words.
        reason: String,
    },
    /// A completed checkpoint is subsumed (beyond `num-retained`): delete it.
    Discard {
        /// Checkpoint id.
        id: u64,
    },
    /// Too many consecutive failures: fail the job (the restart strategy decides what follows).
    FailJob {
        /// Flink's message.
        reason: String,
    },
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
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    /// Checkpoints whose `_metadata` is being written, and what each is.
    finalizing: BTreeMap<u64, SnapshotType>,
    completed: VecDeque<u64>,
    tasks: BTreeSet<TaskId>,
    running: bool,
    last_trigger: Option<Instant>,
    last_completion: Option<Instant>,
    started: Option<Instant>,
    consecutive_failures: u32,
    /// The input ended: take a final checkpoint (and retry it until one completes).
    final_requested: bool,
    final_pending: Option<u64>,
}

impl CheckpointCoordinator {
    /// A coordinator whose first checkpoint id is `first_id` (1 for a fresh job, n+1 after
    /// restoring checkpoint n).
    pub fn new(config: CheckpointConfig, first_id: u64) -> Self {
        CheckpointCoordinator {
            config,
            next_id: first_id.max(1),
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
        let id = self.next_id;
        self.next_id += 1;
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
    fn ended(&mut self, id: u64) {
        if self.final_pending == Some(id) {
            self.final_pending = None;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The id the next checkpoint will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Completed checkpoints this job owns, oldest first.
    pub fn completed(&self) -> impl Iterator<Item = u64> + '_ {
        self.completed.iter().copied()
    }

    /// The newest completed checkpoint this job owns.
    pub fn latest_completed(&self) -> Option<u64> {
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
    /// it is a stop-with-savepoint (see [`SnapshotType::StopWithSavepoint`]).
    pub fn trigger_savepoint(&mut self, now: Instant, stop: bool) -> Option<u64> {
        if !self.running {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                kind: if stop {
                    SnapshotType::StopWithSavepoint
                } else {
                    SnapshotType::Savepoint
                },
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
    pub fn trigger_checkpoint(&mut self, now: Instant) -> Option<u64> {
        if !self.running || self.final_requested {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
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
    pub fn stop(&mut self, reason: &str) -> Vec<Action> {
        self.running = false;
        self.final_requested = false;
        self.final_pending = None;
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        self.pending.clear();
        ids.into_iter()
            .map(|id| Action::Abort {
                id,
                reason: reason.to_string(),
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
        let expired: Vec<u64> = self
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
                reason: "Checkpoint expired before completing.".into(),
            });
            if p.kind == SnapshotType::Checkpoint {
                self.count_failure(&mut actions);
            }
        }
        if actions.iter().any(|a| matches!(a, Action::FailJob { .. })) {
            return actions; // the job fails over: nothing new starts in this attempt
        }
        if self.final_requested {
            if self.next_trigger_time().is_some_and(|t| now >= t) {
                actions.extend(self.trigger_final(now));
            }
        } else if let Some(t) = self.next_trigger_time() {
            if now >= t {
                let id = self.next_id;
                self.next_id += 1;
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
        id: u64,
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
    pub fn decline(&mut self, id: u64, reason: &str) -> Vec<Action> {
        let Some(p) = self.pending.remove(&id) else {
            return Vec::new();
        };
        self.ended(id);
        let mut actions = vec![Action::Abort {
            id,
            reason: reason.to_string(),
        }];
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
    pub fn finalized(&mut self, id: u64, now: Instant) -> Vec<Action> {
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
        let subsumed: Vec<u64> = self
            .pending
            .range(..id)
            .filter(|(_, p)| p.kind == SnapshotType::Checkpoint)
            .map(|(k, _)| *k)
            .collect();
        for old in subsumed {
            self.pending.remove(&old);
            actions.push(Action::Abort {
                id: old,
                reason: "Checkpoint has been subsumed.".into(),
            });
        }
        actions
    }

    /// Writing `_metadata` of checkpoint `id` failed.
    pub fn finalize_failed(&mut self, id: u64, reason: &str) -> Vec<Action> {
        let Some(kind) = self.finalizing.remove(&id) else {
            return Vec::new();
        };
        self.ended(id);
        let mut actions = vec![Action::Abort {
            id,
            reason: reason.to_string(),
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
            actions.push(Action::FailJob {
                reason: "Exceeded checkpoint tolerable failure threshold.".into(),
            });
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

    #[test]
    fn triggers_after_interval_and_completes_on_all_acks() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        assert!(c.tick(t0).is_empty(), "not running yet");
        c.start([t("src", 0), t("sum", 0)], t0);
        assert!(c.tick(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: 1 }]
        );
        // max concurrent 1: no second trigger while 1 is pending
        assert!(c.tick(t0 + Duration::from_millis(250)).is_empty());
        assert!(c.acknowledge(1, t("src", 0), h(), t0).is_empty());
        assert!(
            c.acknowledge(1, t("src", 0), h(), t0).is_empty(),
            "duplicate ack ignored"
        );
        let a = c.acknowledge(1, t("sum", 0), h(), t0 + Duration::from_millis(260));
        assert!(matches!(&a[..], [Action::Finalize { id: 1, .. }]));
        assert!(c.finalized(1, t0 + Duration::from_millis(270)).is_empty());
        assert_eq!(c.latest_completed(), Some(1));
        assert_eq!(
            c.tick(t0 + Duration::from_millis(350)),
            vec![Action::Trigger { id: 2 }]
        );
    }

    #[test]
    fn a_manual_checkpoint_starts_at_once_and_is_a_restore_point() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        assert_eq!(c.trigger_checkpoint(t0), None, "not running yet");
        c.start([t("src", 0)], t0);
        assert_eq!(c.trigger_checkpoint(t0), Some(1));
        let a = c.acknowledge(1, t("src", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                id: 1,
                kind: SnapshotType::Checkpoint,
                ..
            }]
        ));
        c.finalized(1, t0);
        assert_eq!(c.latest_completed(), Some(1));
        // The next periodic one counts from the manual one.
        assert!(c.tick(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: 2 }]
        );
    }

    #[test]
    fn only_restore_points_commit_a_savepoint_is_not_one_a_stop_with_savepoint_is() {
        let t0 = Instant::now();
        let mut c = CheckpointCoordinator::new(cfg(), 1);
        c.start([t("src", 0)], t0);
        assert_eq!(
            c.tick(t0 + Duration::from_millis(100)),
            vec![Action::Trigger { id: 1 }]
        );
        c.acknowledge(1, t("src", 0), h(), t0);
        c.finalized(1, t0);
        // A savepoint while the job runs: finalized, but not the job's restore point and
        // it subsumes nothing.
        let sp = c.trigger_savepoint(t0, false).unwrap();
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
            Some(1),
            "failover still restores chk-1"
        );
        // A stop-with-savepoint commits, so it is the job's newest restore point: with one
        // retained, chk-1 is discarded.
        let stop = c.trigger_savepoint(t0, true).unwrap();
        let a = c.acknowledge(stop, t("src", 0), h(), t0);
        assert!(matches!(
            &a[..],
            [Action::Finalize {
                kind: SnapshotType::StopWithSavepoint,
                ..
            }]
        ));
        assert_eq!(c.finalized(stop, t0), vec![Action::Discard { id: 1 }]);
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
            vec![Action::Trigger { id: 1 }]
        );
        // The input ends while checkpoint 1 is pending: the final one starts right away.
        let now = t0 + Duration::from_millis(110);
        assert_eq!(c.end_of_input(now), vec![Action::TriggerFinal { id: 2 }]);
        assert!(c.end_of_input(now).is_empty(), "requested once");
        // It fails: retried one interval after the last trigger, never periodically.
        let a = c.decline(2, "disk full");
        assert!(matches!(&a[..], [Action::Abort { id: 2, .. }]), "{a:?}");
        assert!(c.tick(now + Duration::from_millis(50)).is_empty());
        assert_eq!(
            c.next_deadline()
                .map(|d| d >= now + Duration::from_millis(100)),
            Some(true)
        );
        let a = c.tick(now + Duration::from_millis(100));
        assert!(a.contains(&Action::TriggerFinal { id: 3 }), "{a:?}");
        // A second failure in a row exceeds tolerable=1, as for any checkpoint.
        let a = c.decline(3, "disk full");
        assert!(
            a.iter().any(|a| matches!(a, Action::FailJob { .. })),
            "{a:?}"
        );
        // After a failover the new attempt reports the end of input again.
        c.stop("failover");
        c.start([t("src", 0), t("sink", 0)], t0);
        assert_eq!(c.end_of_input(t0), vec![Action::TriggerFinal { id: 4 }]);
        c.acknowledge(4, t("src", 0), h(), t0);
        let a = c.acknowledge(4, t("sink", 0), h(), t0);
        assert!(matches!(&a[..], [Action::Finalize { id: 4, .. }]));
        assert!(c.finalized(4, t0).is_empty());
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
        for id in 5..9 {
            now += Duration::from_millis(100);
            assert_eq!(c.tick(now), vec![Action::Trigger { id }]);
            c.acknowledge(id, t("a", 0), h(), now);
            for a in c.finalized(id, now) {
                if let Action::Discard { id } = a {
                    discarded.push(id)
                }
            }
        }
        assert_eq!(discarded, vec![5, 6]);
        assert_eq!(c.completed().collect::<Vec<_>>(), vec![7, 8]);
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
            assert!(a.contains(&Action::Trigger { id: round + 1 }), "{a:?}");
            now += Duration::from_millis(30);
            let a = c.tick(now);
            assert!(a
                .iter()
                .any(|x| matches!(x, Action::Abort { reason, .. } if reason.contains("expired"))));
            fails += a
                .iter()
                .filter(|x| matches!(x, Action::FailJob { .. }))
                .count();
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
            c.decline(1, "io"),
            vec![Action::Abort {
                id: 1,
                reason: "io".into()
            }]
        );
        let n = n + Duration::from_millis(100);
        c.tick(n);
        c.acknowledge(2, t("a", 0), h(), n);
        c.finalized(2, n);
        let n = n + Duration::from_millis(100);
        c.tick(n);
        assert!(!c
            .decline(3, "io")
            .iter()
            .any(|a| matches!(a, Action::FailJob { .. })));
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
        c.acknowledge(1, t("a", 0), h(), n);
        c.finalized(1, n);
        assert!(c.tick(n + Duration::from_millis(200)).is_empty());
        assert_eq!(
            c.tick(n + Duration::from_millis(500)),
            vec![Action::Trigger { id: 2 }]
        );
        assert_eq!(
            c.stop("failover"),
            vec![Action::Abort {
                id: 2,
                reason: "failover".into()
            }]
        );
        assert!(c.tick(n + Duration::from_secs(5)).is_empty());
    }
}
