//! What the job manager knows about a job, kept current for the REST API and the CLI:
//! status with the time of every transition, checkpoint statistics and history, and the
//! exceptions that failed tasks — and the same in the REST contract's shape
//! ([`super::rest::model`]), which the REST API serves and the job's status file keeps.

use super::rest::model;
use crate::checkpoint::config::CheckpointConfig;
use crate::job::JobStatus;
pub use model::CheckpointStatus;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

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
    /// In progress, completed or failed.
    pub status: CheckpointStatus,
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
    /// What the latest (re)start restored.
    pub latest_restored: Option<model::RestoredCheckpoint>,
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
    /// Where the job announces its status changes, if a supervisor asked for it.
    pub announcer: Option<super::announce::Announcer>,
    /// Where the subtasks of the current attempt run, once its worker processes started
    /// (`None` while deploying, and for attempts on threads of this process).
    pub placement: Option<crate::runtime::workers::Placement>,
}

/// Where one subtask runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtaskLocation {
    /// The worker process's index in the attempt.
    pub process: u32,
    /// The host it runs on.
    pub host: String,
    /// The task manager it runs on (`None`: a child of the job manager's process).
    pub task_manager: Option<String>,
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
            announcer: None,
            placement: None,
        }
    }

    /// The current attempt's worker processes started where `placement` says.
    pub fn deployed(&mut self, placement: &crate::runtime::workers::Placement) {
        self.placement = Some(placement.clone());
    }

    /// Where subtask `subtask` (0-based) of every operator runs in the current attempt:
    /// worker thread `subtask` lives in process `subtask / threads`.
    pub fn subtask_location(&self, subtask: u32) -> Option<SubtaskLocation> {
        let p = self.placement.as_ref()?;
        let threads = p.processes.first()?.threads.max(1);
        let slot = p.processes.iter().find(|s| s.index == subtask / threads)?;
        Some(SubtaskLocation {
            process: slot.index,
            host: slot.host.clone(),
            task_manager: slot.task_manager.clone(),
        })
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
        self.announce();
    }

    fn announce(&self) {
        if let Some(a) = &self.announcer {
            a.announce(self);
        }
    }

    /// Number of checkpoints in progress.
    pub fn in_progress(&self) -> u64 {
        self.history
            .iter()
            .filter(|c| c.status == CheckpointStatus::InProgress)
            .count() as u64
    }

    /// A checkpoint or savepoint was triggered.
    pub fn triggered(&mut self, id: u64, is_savepoint: bool, now_ms: u64) {
        self.history.push_back(CheckpointRecord {
            id,
            status: CheckpointStatus::InProgress,
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
        c.status = CheckpointStatus::Completed;
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
        // The retained checkpoints are what a user resumes from after a lost job manager.
        self.announce();
    }

    /// A checkpoint or savepoint failed or was aborted.
    pub fn failed(&mut self, id: u64, reason: &str, now_ms: u64) {
        let Some(c) = self.record(id) else { return };
        if c.status != CheckpointStatus::InProgress {
            return;
        }
        c.status = CheckpointStatus::Failed;
        c.latest_ack_timestamp = now_ms;
        c.end_to_end_duration = now_ms.saturating_sub(c.trigger_timestamp);
        c.failure_message = Some(reason.into());
        let c = c.clone();
        self.failed += 1;
        self.latest_failed = Some(c);
    }

    /// An attempt (re)starts from snapshot `id` at `dir`.
    pub fn restored_from(
        &mut self,
        id: u64,
        dir: &crate::storage::Location,
        is_savepoint: bool,
        now_ms: u64,
    ) {
        self.restored += 1;
        self.latest_restored = Some(model::RestoredCheckpoint {
            id,
            restore_timestamp: now_ms,
            is_savepoint,
            external_path: dir.url(),
        });
    }

    /// How a checkpoint or savepoint `id` of the recent history went, if the history still
    /// has it.
    pub fn checkpoint_status(&self, id: u64) -> Option<&CheckpointRecord> {
        self.history
            .iter()
            .chain(&self.latest_completed)
            .chain(&self.latest_savepoint)
            .chain(&self.latest_failed)
            .find(|c| c.id == id)
    }

    fn duration(&self, now_ms: u64) -> i64 {
        self.end_time
            .unwrap_or(now_ms)
            .saturating_sub(self.start_time) as i64
    }

    fn end_time_or_running(&self) -> i64 {
        self.end_time.map(|t| t as i64).unwrap_or(-1)
    }

    /// The job's entry of `GET /jobs/overview`.
    pub fn overview(&self, now_ms: u64) -> model::JobOverview {
        model::JobOverview {
            jid: self.job_id.clone(),
            name: self.name.clone(),
            state: self.status,
            start_time: self.start_time as i64,
            end_time: self.end_time_or_running(),
            duration: self.duration(now_ms),
            last_modification: self
                .timestamps
                .values()
                .max()
                .copied()
                .unwrap_or(self.start_time) as i64,
            job_type: "STREAMING".into(),
            pending_operators: 0,
            tasks: model::TaskCounts::all_in(self.status, self.parallelism),
        }
    }

    /// `GET /jobs/:jobid`.
    pub fn details(&self, now_ms: u64) -> model::JobDetails {
        model::JobDetails {
            jid: self.job_id.clone(),
            name: self.name.clone(),
            is_stoppable: false,
            state: self.status,
            job_type: "STREAMING".into(),
            start_time: self.start_time as i64,
            end_time: self.end_time_or_running(),
            duration: self.duration(now_ms),
            max_parallelism: -1,
            now: now_ms as i64,
            timestamps: self
                .timestamps
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            vertices: Vec::new(),
            status_counts: BTreeMap::new(),
            plan: model::JobPlan {
                jid: self.job_id.clone(),
                name: self.name.clone(),
                kind: "STREAMING".into(),
                nodes: Vec::new(),
            },
        }
    }

    /// `GET /jobs/:jobid/exceptions`: the history, newest first.
    pub fn exceptions_info(&self) -> model::JobExceptions {
        model::JobExceptions::of(
            self.exceptions
                .iter()
                .rev()
                .map(|e| {
                    model::ExceptionEntry::new(
                        "org.apache.flink.runtime.JobException",
                        &e.message,
                        e.timestamp,
                        Some(e.task.clone()),
                    )
                })
                .collect(),
        )
    }

    /// `GET /jobs/:jobid/checkpoints/config`; `None` when checkpointing is disabled.
    pub fn checkpoint_config_info(&self) -> Option<model::CheckpointConfigInfo> {
        use crate::checkpoint::config::ExternalizedCheckpointRetention as R;
        let c = &self.checkpoint_config;
        let interval = c.interval?;
        Some(model::CheckpointConfigInfo {
            mode: c.mode.as_str().to_ascii_lowercase(),
            interval: interval.as_millis() as u64,
            timeout: c.timeout.as_millis() as u64,
            min_pause: c.min_pause.as_millis() as u64,
            max_concurrent: c.max_concurrent,
            externalization: model::Externalization {
                enabled: c.retention != R::NoExternalizedCheckpoints,
                delete_on_cancellation: c.retention != R::RetainOnCancellation,
            },
            state_backend: "HashMapStateBackend".into(),
            checkpoint_storage: "FileSystemCheckpointStorage".into(),
            unaligned_checkpoints: false,
            tolerable_failed_checkpoints: c.tolerable_failures,
            aligned_checkpoint_timeout: 0,
            checkpoints_after_tasks_finish: true,
            state_changelog_enabled: false,
            changelog_periodic_materialization_interval: 0,
            changelog_storage: String::new(),
        })
    }

    /// `GET /jobs/:jobid/checkpoints`.
    pub fn checkpoint_statistics(&self) -> model::CheckpointingStatistics {
        let done = || {
            self.history
                .iter()
                .filter(|c| c.status == CheckpointStatus::Completed)
        };
        model::CheckpointingStatistics {
            counts: model::CheckpointCounts {
                restored: self.restored,
                total: self.completed + self.failed + self.in_progress(),
                in_progress: self.in_progress(),
                completed: self.completed,
                failed: self.failed,
            },
            summary: model::CheckpointSummary {
                checkpointed_size: model::MinMaxAvg::of(done().map(|c| c.state_size)),
                state_size: model::MinMaxAvg::of(done().map(|c| c.state_size)),
                end_to_end_duration: model::MinMaxAvg::of(done().map(|c| c.end_to_end_duration)),
            },
            latest: model::LatestCheckpoints {
                completed: self
                    .latest_completed
                    .as_ref()
                    .map(CheckpointRecord::statistics),
                savepoint: self
                    .latest_savepoint
                    .as_ref()
                    .map(CheckpointRecord::statistics),
                failed: self
                    .latest_failed
                    .as_ref()
                    .map(CheckpointRecord::statistics),
                restored: self.latest_restored.clone(),
            },
            history: self
                .history
                .iter()
                .rev()
                .map(CheckpointRecord::statistics)
                .collect(),
        }
    }
}

impl CheckpointRecord {
    /// As Flink's REST API reports it.
    pub fn statistics(&self) -> model::CheckpointStatistics {
        model::CheckpointStatistics {
            class_name: match self.status {
                CheckpointStatus::Completed => ".CompletedCheckpointStatistics",
                CheckpointStatus::Failed => ".FailedCheckpointStatistics",
                CheckpointStatus::InProgress => ".PendingCheckpointStatistics",
            }
            .into(),
            id: self.id,
            status: self.status,
            is_savepoint: self.is_savepoint,
            savepoint_format: self
                .is_savepoint
                .then_some(model::SavepointFormat::Canonical),
            trigger_timestamp: self.trigger_timestamp,
            latest_ack_timestamp: self.latest_ack_timestamp,
            checkpointed_size: self.state_size,
            state_size: self.state_size,
            end_to_end_duration: self.end_to_end_duration,
            alignment_buffered: 0,
            processed_data: 0,
            persisted_data: 0,
            num_subtasks: 0,
            num_acknowledged_subtasks: 0,
            checkpoint_type: if self.is_savepoint {
                "SAVEPOINT"
            } else {
                "CHECKPOINT"
            }
            .into(),
            external_path: if self.external_path.is_empty() {
                String::new()
            } else {
                model::file_url(Path::new(&self.external_path))
            },
            discarded: false,
            failure_message: self.failure_message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placement_tells_where_each_subtask_runs() {
        use crate::runtime::workers::{Placement, ProcessSlot};
        let mut i = JobInfo::new("j", "n", 4, CheckpointConfig::default(), 0);
        assert_eq!(i.subtask_location(0), None, "nothing deployed yet");
        let slot = |index: u32, host: &str, tm: &str| ProcessSlot {
            index,
            threads: 2,
            host: host.into(),
            bind: host.into(),
            task_manager: Some(tm.into()),
        };
        i.deployed(&Placement {
            processes: vec![slot(0, "h1", "tm-1"), slot(1, "h2", "tm-2")],
        });
        let at = |s| {
            i.subtask_location(s)
                .map(|l| (l.process, l.host, l.task_manager))
        };
        assert_eq!(at(1), Some((0, "h1".into(), Some("tm-1".into()))));
        assert_eq!(at(2), Some((1, "h2".into(), Some("tm-2".into()))));
        assert_eq!(at(4), None, "no such subtask");
    }

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
