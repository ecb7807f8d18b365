//! What the job manager knows about a job, kept current for the REST API and the CLI:
//! status with the time of every transition, checkpoint statistics and history, and the
//! exceptions that failed tasks.

use crate::checkpoint::config::CheckpointConfig;
use crate::job::JobStatus;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// How many checkpoints the history keeps (Flink's `web.checkpoints.history` default).
pub const HISTORY: usize = 10;

/// How many task failures the exception history keeps by default (Flink's
/// `web.exception-history-size`).
pub const EXCEPTION_HISTORY: usize = 16;

/// One checkpoint or savepoint, as Flink's REST API reports it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointRecord {
    /// Checkpoint id.
    pub id: u64,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub status: &'static str,
    /// True for savepoints.
    pub is_savepoint: bool,
    /// Trigger time, ms since the Unix epoch.
    pub trigger_timestamp: u64,
    /// Completion or failure time, ms since the Unix epoch.
    pub latest_ack_timestamp: u64,
    /// Trigger to completion, ms.
    pub end_to_end_duration: u64,
    /// Bytes of state (completed only).
    pub state_size: u64,
    /// Where it is (completed only).
    pub external_path: String,
    /// Why it failed (failed only).
    pub failure_message: Option<String>,
}

/// The snapshot the job's current attempt restored, as Flink's REST API reports it
/// (`latest.restored` of `/jobs/:id/checkpoints`).
#[derive(Clone, Debug, Serialize)]
pub struct RestoredRecord {
    /// Checkpoint id of the snapshot.
    pub id: u64,
    /// When it was restored, ms since the Unix epoch.
    pub restore_timestamp: u64,
    /// True when it is a savepoint.
    pub is_savepoint: bool,
    /// Where it is, as a `file:` URI.
    pub external_path: String,
}

/// One task failure.
#[derive(Clone, Debug, Serialize)]
pub struct ExceptionRecord {
    /// When it happened, ms since the Unix epoch.
    pub timestamp: u64,
    /// The failing task, e.g. `Map (1/1)`.
    pub task: String,
    /// The error or panic message.
    pub message: String,
}

/// The job's state as the job manager sees it.
#[derive(Clone, Debug)]
pub struct JobInfo {
    /// 32 lowercase hex characters.
    pub job_id: String,
    /// Job name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// Time of the latest transition into every status reached, ms since the Unix epoch.
    pub timestamps: BTreeMap<&'static str, u64>,
    /// When the job was submitted.
    pub start_time: u64,
    /// When it reached a terminal state.
    pub end_time: Option<u64>,
    /// Parallelism.
    pub parallelism: u32,
    /// Checkpoint settings.
    pub checkpoint_config: CheckpointConfig,
    /// Recent checkpoints and savepoints, newest last.
    pub history: VecDeque<CheckpointRecord>,
    /// Completed checkpoints and savepoints.
    pub completed: u64,
    /// Failed checkpoints and savepoints.
    pub failed: u64,
    /// Restores from a checkpoint or savepoint.
    pub restored: u64,
    /// The latest restore.
    pub latest_restored: Option<RestoredRecord>,
    /// Latest completed checkpoint.
    pub latest_completed: Option<CheckpointRecord>,
    /// Latest completed savepoint.
    pub latest_savepoint: Option<CheckpointRecord>,
    /// Latest failed checkpoint or savepoint.
    pub latest_failed: Option<CheckpointRecord>,
    /// The latest task failures, oldest first, at most `exception_history_size`.
    pub exceptions: Vec<ExceptionRecord>,
    /// How many task failures [`JobInfo::exceptions`] keeps.
    pub exception_history_size: usize,
}

impl JobInfo {
    /// A new job, CREATED now.
    pub fn new(
        job_id: &str,
        name: &str,
        parallelism: u32,
        checkpoint_config: CheckpointConfig,
        now_ms: u64,
    ) -> Self {
        let mut timestamps = BTreeMap::new();
        timestamps.insert(JobStatus::Created.as_str(), now_ms);
        JobInfo {
            job_id: job_id.into(),
            name: name.into(),
            status: JobStatus::Created,
            timestamps,
            start_time: now_ms,
            end_time: None,
            parallelism,
            checkpoint_config,
            history: VecDeque::new(),
            completed: 0,
            failed: 0,
            restored: 0,
            latest_restored: None,
            latest_completed: None,
            latest_savepoint: None,
            latest_failed: None,
            exceptions: Vec::new(),
            exception_history_size: EXCEPTION_HISTORY,
        }
    }

    /// Keeps the latest `n` task failures instead of [`EXCEPTION_HISTORY`].
    pub fn with_exception_history_size(mut self, n: usize) -> Self {
        self.exception_history_size = n;
        self
    }

    /// Records a task failure; the oldest is dropped beyond the history size, and a huge
    /// message is cut, so a job failing over and over keeps bounded memory.
    pub fn add_exception(&mut self, now_ms: u64, task: &str, message: &str) {
        self.exceptions.push(ExceptionRecord {
            timestamp: now_ms,
            task: crate::runtime::protocol::bounded_message(task.to_string()),
            message: crate::runtime::protocol::bounded_message(message.to_string()),
        });
        let excess = self
            .exceptions
            .len()
            .saturating_sub(self.exception_history_size);
        self.exceptions.drain(..excess);
    }

    /// Records a status transition.
    pub fn transition(&mut self, to: JobStatus, now_ms: u64) {
        self.status = to;
        self.timestamps.insert(to.as_str(), now_ms);
        if matches!(
            to,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        ) {
            self.end_time = Some(now_ms);
        }
    }

    /// Number of checkpoints in progress.
    pub fn in_progress(&self) -> u64 {
        self.history
            .iter()
            .filter(|c| c.status == "IN_PROGRESS")
            .count() as u64
    }

    /// A checkpoint or savepoint was triggered.
    pub fn triggered(&mut self, id: u64, is_savepoint: bool, now_ms: u64) {
        self.history.push_back(CheckpointRecord {
            id,
            status: "IN_PROGRESS",
            is_savepoint,
            trigger_timestamp: now_ms,
            latest_ack_timestamp: 0,
            end_to_end_duration: 0,
            state_size: 0,
            external_path: String::new(),
            failure_message: None,
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    fn record(&mut self, id: u64) -> Option<&mut CheckpointRecord> {
        self.history.iter_mut().rev().find(|c| c.id == id)
    }

    /// A checkpoint or savepoint completed.
    pub fn completed(&mut self, id: u64, size: u64, path: &str, now_ms: u64) {
        let Some(c) = self.record(id) else { return };
        c.status = "COMPLETED";
        c.latest_ack_timestamp = now_ms;
        c.end_to_end_duration = now_ms.saturating_sub(c.trigger_timestamp);
        c.state_size = size;
        c.external_path = path.into();
        let c = c.clone();
        self.completed += 1;
        if c.is_savepoint {
            self.latest_savepoint = Some(c);
        } else {
            self.latest_completed = Some(c);
        }
    }

    /// A checkpoint or savepoint failed or was aborted.
    pub fn failed(&mut self, id: u64, reason: &str, now_ms: u64) {
        let Some(c) = self.record(id) else { return };
        if c.status != "IN_PROGRESS" {
            return;
        }
        c.status = "FAILED";
        c.latest_ack_timestamp = now_ms;
        c.end_to_end_duration = now_ms.saturating_sub(c.trigger_timestamp);
        c.failure_message = Some(reason.into());
        let c = c.clone();
        self.failed += 1;
        self.latest_failed = Some(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exception_history_keeps_the_latest_failures_with_cut_messages() {
        let mut i = JobInfo::new("j", "n", 1, CheckpointConfig::default(), 0)
            .with_exception_history_size(3);
        for n in 0..5u64 {
            i.add_exception(n, "Map (1/1)", &format!("{n}{}", "x".repeat(1 << 20)));
        }
        let kept: Vec<u64> = i.exceptions.iter().map(|e| e.timestamp).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert!(i.exceptions.iter().all(|e| e.message.len() <= 4096));
    }
}
