//! The REST contract: every request and response body of Floe's REST API as a serde type,
//! with Flink's REST v1 field names, shared by the job manager (which serves them), the
//! session cluster (which serves and forwards them) and the `floe` CLI (which reads them).
//!
//! A field Flink's own tools read is spelled as Flink spells it (`jid`, `start-time`,
//! `request-id`, `failure-cause`, ...), so Flink's CLI and dashboard can drive Floe. A field
//! Floe has no value for is still present with Flink's neutral value (`-1`, `0`, `[]`),
//! because Flink's Jackson mapper refuses `null` for its primitive fields.
//!
//! ```
//! use floe::jobmanager::rest::model::{ErrorResponse, TriggerResponse};
//! let e = ErrorResponse::new("Not found: /nope");
//! assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"errors":["Not found: /nope"]}"#);
//! let t: TriggerResponse = serde_json::from_str(r#"{"request-id":"ab"}"#).unwrap();
//! assert_eq!(t.request_id, "ab");
//! ```

use crate::job::JobStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Floe's version as the `flink-version` field reports it.
pub const VERSION: &str = concat!("floe-", env!("CARGO_PKG_VERSION"));

/// Every error answer: `{"errors": [...]}`, as Flink's `ErrorResponseBody`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The messages, most important first.
    pub errors: Vec<String>,
}

impl ErrorResponse {
    /// One message.
    pub fn new(msg: impl Into<String>) -> Self {
        ErrorResponse {
            errors: vec![msg.into()],
        }
    }
}

/// An empty object (`{}`), the answer of a cancel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `GET /overview`: Flink's `ClusterOverviewWithVersion`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterOverview {
    /// Task managers (Floe: one per running job's workers).
    pub taskmanagers: u32,
    /// Slots in use by running jobs.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Free slots (always 0: Floe starts workers per job).
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
    /// Jobs not in a terminal state.
    #[serde(rename = "jobs-running")]
    pub jobs_running: u32,
    /// FINISHED jobs.
    #[serde(rename = "jobs-finished")]
    pub jobs_finished: u32,
    /// CANCELED jobs.
    #[serde(rename = "jobs-cancelled")]
    pub jobs_cancelled: u32,
    /// FAILED jobs.
    #[serde(rename = "jobs-failed")]
    pub jobs_failed: u32,
    /// [`VERSION`].
    #[serde(rename = "flink-version")]
    pub flink_version: String,
    /// Empty.
    #[serde(rename = "flink-commit", default)]
    pub flink_commit: String,
}

impl ClusterOverview {
    /// The overview of these jobs.
    pub fn of<'a>(jobs: impl IntoIterator<Item = &'a JobOverview>) -> Self {
        let mut o = ClusterOverview {
            taskmanagers: 0,
            slots_total: 0,
            slots_available: 0,
            jobs_running: 0,
            jobs_finished: 0,
            jobs_cancelled: 0,
            jobs_failed: 0,
            flink_version: VERSION.into(),
            flink_commit: String::new(),
        };
        for j in jobs {
            match j.state {
                JobStatus::Finished => o.jobs_finished += 1,
                JobStatus::Canceled => o.jobs_cancelled += 1,
                JobStatus::Failed => o.jobs_failed += 1,
                _ => {
                    o.jobs_running += 1;
                    o.taskmanagers += 1;
                    o.slots_total += j.tasks.total;
                }
            }
        }
        o
    }
}

/// `GET /jobs`: ids and states (Flink's `JobIdsWithStatusOverview`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdsWithStatus {
    /// One per job.
    pub jobs: Vec<JobIdWithStatus>,
}

/// One job of [`JobIdsWithStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdWithStatus {
    /// Job id.
    pub id: String,
    /// Its state.
    pub status: JobStatus,
}

/// `GET /jobs/overview`: Flink's `MultipleJobsDetails`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsOverview {
    /// One per job.
    pub jobs: Vec<JobOverview>,
}

/// One job of [`JobsOverview`], Flink's `JobDetails` (what `flink list` reads: every field
/// is required there, `end-time` is `-1` while the job runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOverview {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Its state.
    pub state: JobStatus,
    /// Submission time, ms since the epoch.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// Time it reached a terminal state, ms since the epoch; `-1` while it runs.
    #[serde(rename = "end-time")]
    pub end_time: i64,
    /// Start to end (or now), ms.
    pub duration: i64,
    /// Time of the latest state change, ms since the epoch.
    #[serde(rename = "last-modification")]
    pub last_modification: i64,
    /// `STREAMING`.
    #[serde(rename = "job-type", default = "streaming")]
    pub job_type: String,
    /// Operators not yet deployed (always 0).
    #[serde(rename = "pending-operators", default)]
    pub pending_operators: u32,
    /// Tasks per execution state.
    pub tasks: TaskCounts,
}

fn streaming() -> String {
    "STREAMING".into()
}

/// Tasks per execution state, every state present (Flink's `JobDetails` tasks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TaskCounts {
    pub total: u32,
    pub created: u32,
    pub scheduled: u32,
    pub deploying: u32,
    pub running: u32,
    pub finished: u32,
    pub canceling: u32,
    pub canceled: u32,
    pub failed: u32,
    pub reconciling: u32,
    pub initializing: u32,
}

impl TaskCounts {
    /// `total` tasks, all in the execution state a job in `state` has them in.
    pub fn all_in(state: JobStatus, total: u32) -> Self {
        let mut t = TaskCounts {
            total,
            ..TaskCounts::default()
        };
        let slot = match state {
            JobStatus::Created => &mut t.created,
            JobStatus::Running => &mut t.running,
            JobStatus::Restarting | JobStatus::Failing => &mut t.canceling,
            JobStatus::Cancelling => &mut t.canceling,
            JobStatus::Finished => &mut t.finished,
            JobStatus::Canceled => &mut t.canceled,
            JobStatus::Failed => &mut t.failed,
        };
        *slot = total;
        t
    }
}

/// `GET /jobs/:jobid`: Flink's `JobDetailsInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetails {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Whether `flink stop` applies (Floe stops through a savepoint only).
    #[serde(rename = "isStoppable")]
    pub is_stoppable: bool,
    /// Its state.
    pub state: JobStatus,
    /// `STREAMING`.
    #[serde(rename = "job-type")]
    pub job_type: String,
    /// Submission time, ms since the epoch.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// Terminal time, `-1` while it runs.
    #[serde(rename = "end-time")]
    pub end_time: i64,
    /// Start to end (or now), ms.
    pub duration: i64,
    /// `-1`: not reported.
    #[serde(rename = "maxParallelism")]
    pub max_parallelism: i64,
    /// When this answer was made, ms since the epoch.
    pub now: i64,
    /// The latest transition into every state reached, ms since the epoch.
    pub timestamps: BTreeMap<String, u64>,
    /// Job vertices (Floe does not report them yet).
    pub vertices: Vec<JobVertex>,
    /// Tasks per execution state.
    #[serde(rename = "status-counts")]
    pub status_counts: BTreeMap<String, u32>,
    /// The job graph.
    pub plan: JobPlan,
}

/// One job vertex of [`JobDetails`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct JobVertex {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    pub status: String,
}

/// The job graph of [`JobDetails`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// `STREAMING`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its nodes (not reported yet).
    pub nodes: Vec<JobVertex>,
}

/// `GET /jobs/:jobid/exceptions`: Flink's `JobExceptionsInfoWithHistory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobExceptions {
    /// The latest failure's message.
    #[serde(rename = "root-exception")]
    pub root_exception: Option<String>,
    /// Its time, ms since the epoch.
    pub timestamp: Option<u64>,
    /// Always empty (the history below has them).
    #[serde(rename = "all-exceptions")]
    pub all_exceptions: Vec<ExceptionEntry>,
    /// Always false.
    pub truncated: bool,
    /// The latest failures, newest first.
    #[serde(rename = "exceptionHistory")]
    pub exception_history: ExceptionHistory,
}

/// The bounded exception history of [`JobExceptions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionHistory {
    /// Newest first.
    pub entries: Vec<ExceptionEntry>,
    /// True when older failures were dropped.
    pub truncated: bool,
}

/// One failure of the exception history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    /// The Java class Flink would name.
    #[serde(rename = "exceptionName")]
    pub exception_name: String,
    /// The message.
    pub stacktrace: String,
    /// When, ms since the epoch.
    pub timestamp: u64,
    /// The failing task, e.g. `Map (1/1)`.
    #[serde(rename = "taskName")]
    pub task_name: Option<String>,
    /// Not reported.
    pub endpoint: Option<String>,
    /// Not reported.
    #[serde(rename = "taskManagerId")]
    pub task_manager_id: Option<String>,
    /// Not reported.
    #[serde(rename = "failureLabels", default)]
    pub failure_labels: BTreeMap<String, String>,
    /// Not reported.
    #[serde(rename = "concurrentExceptions", default)]
    pub concurrent_exceptions: Vec<ExceptionEntry>,
}

impl ExceptionEntry {
    /// A failure of `task` (or of the job as a whole) at `timestamp`.
    pub fn new(exception_name: &str, message: &str, timestamp: u64, task: Option<String>) -> Self {
        ExceptionEntry {
            exception_name: exception_name.into(),
            stacktrace: message.into(),
            timestamp,
            task_name: task,
            endpoint: None,
            task_manager_id: None,
            failure_labels: BTreeMap::new(),
            concurrent_exceptions: Vec::new(),
        }
    }
}

impl JobExceptions {
    /// The answer for these failures, newest first.
    pub fn of(entries: Vec<ExceptionEntry>) -> Self {
        JobExceptions {
            root_exception: entries.first().map(|e| e.stacktrace.clone()),
            timestamp: entries.first().map(|e| e.timestamp),
            all_exceptions: Vec::new(),
            truncated: false,
            exception_history: ExceptionHistory {
                entries,
                truncated: false,
            },
        }
    }
}

/// The status of a checkpoint in the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointStatus {
    /// Triggered, not all tasks acknowledged yet.
    InProgress,
    /// Its `_metadata` is written.
    Completed,
    /// Declined, expired or aborted.
    Failed,
}

impl CheckpointStatus {
    /// Flink's spelling, e.g. `IN_PROGRESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

/// `GET /jobs/:jobid/checkpoints`: Flink's `CheckpointingStatistics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointingStatistics {
    /// Counts.
    pub counts: CheckpointCounts,
    /// Min/avg/max of the completed ones.
    pub summary: CheckpointSummary,
    /// The latest of each kind.
    pub latest: LatestCheckpoints,
    /// Recent checkpoints and savepoints, newest first.
    pub history: Vec<CheckpointStatistics>,
}

/// The counts of [`CheckpointingStatistics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CheckpointCounts {
    pub restored: u64,
    pub total: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub failed: u64,
}

/// The summary of [`CheckpointingStatistics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CheckpointSummary {
    pub checkpointed_size: MinMaxAvg,
    pub state_size: MinMaxAvg,
    pub end_to_end_duration: MinMaxAvg,
}

/// Minimum, maximum and average of some values (all 0 without values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MinMaxAvg {
    pub min: u64,
    pub max: u64,
    pub avg: u64,
}

impl MinMaxAvg {
    /// Of `values`.
    pub fn of(values: impl IntoIterator<Item = u64>) -> Self {
        let (mut n, mut sum, mut min, mut max) = (0u64, 0u64, u64::MAX, 0u64);
        for v in values {
            n += 1;
            sum = sum.saturating_add(v);
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return MinMaxAvg::default();
        }
        MinMaxAvg {
            min,
            max,
            avg: sum / n,
        }
    }
}

/// The latest checkpoints of [`CheckpointingStatistics`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestCheckpoints {
    /// The latest completed checkpoint.
    pub completed: Option<CheckpointStatistics>,
    /// The latest completed savepoint.
    pub savepoint: Option<CheckpointStatistics>,
    /// The latest failed checkpoint or savepoint.
    pub failed: Option<CheckpointStatistics>,
    /// What the latest (re)start restored.
    pub restored: Option<RestoredCheckpoint>,
}

/// What a job (re)started from: Flink's `RestoredCheckpointStatistics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredCheckpoint {
    /// The checkpoint id of the snapshot.
    pub id: u64,
    /// When it was restored, ms since the epoch.
    pub restore_timestamp: u64,
    /// True for a savepoint.
    pub is_savepoint: bool,
    /// Where it is, a `file:` URL.
    pub external_path: String,
}

/// One checkpoint or savepoint: Flink's `CheckpointStatistics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CheckpointStatistics {
    /// `.CompletedCheckpointStatistics`, `.FailedCheckpointStatistics` or
    /// `.PendingCheckpointStatistics`: Flink's type tag.
    #[serde(rename = "className")]
    pub class_name: String,
    pub id: u64,
    pub status: CheckpointStatus,
    pub is_savepoint: bool,
    /// `CANONICAL` for savepoints.
    #[serde(rename = "savepointFormat")]
    pub savepoint_format: Option<SavepointFormat>,
    pub trigger_timestamp: u64,
    pub latest_ack_timestamp: u64,
    pub checkpointed_size: u64,
    pub state_size: u64,
    pub end_to_end_duration: u64,
    pub alignment_buffered: u64,
    pub processed_data: u64,
    pub persisted_data: u64,
    pub num_subtasks: u32,
    pub num_acknowledged_subtasks: u32,
    /// `CHECKPOINT` or `SAVEPOINT`.
    pub checkpoint_type: String,
    /// Where it is, a `file:` URL (completed only; empty otherwise).
    pub external_path: String,
    pub discarded: bool,
    /// Why it failed (failed only).
    pub failure_message: Option<String>,
}

/// `GET /jobs/:jobid/checkpoints/config`: Flink's `CheckpointConfigInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CheckpointConfigInfo {
    /// `exactly_once` or `at_least_once`.
    pub mode: String,
    pub interval: u64,
    pub timeout: u64,
    pub min_pause: u64,
    pub max_concurrent: u32,
    pub externalization: Externalization,
    pub state_backend: String,
    pub checkpoint_storage: String,
    pub unaligned_checkpoints: bool,
    pub tolerable_failed_checkpoints: u32,
    pub aligned_checkpoint_timeout: u64,
    pub checkpoints_after_tasks_finish: bool,
    pub state_changelog_enabled: bool,
    pub changelog_periodic_materialization_interval: u64,
    pub changelog_storage: String,
}

/// Retention of [`CheckpointConfigInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Externalization {
    pub enabled: bool,
    pub delete_on_cancellation: bool,
}

/// `GET /config`: the dashboard configuration, with the job's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DashboardConfig {
    #[serde(rename = "refresh-interval")]
    pub refresh_interval: u64,
    #[serde(rename = "timezone-name")]
    pub timezone_name: String,
    #[serde(rename = "timezone-offset")]
    pub timezone_offset: i64,
    #[serde(rename = "flink-version")]
    pub flink_version: String,
    #[serde(rename = "flink-revision")]
    pub flink_revision: String,
    pub features: Features,
    /// The configuration entries (secrets masked); absent on the session cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configuration: Vec<ConfigEntry>,
}

/// The dashboard features of [`DashboardConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Features {
    #[serde(rename = "web-submit")]
    pub web_submit: bool,
    #[serde(rename = "web-cancel")]
    pub web_cancel: bool,
    #[serde(rename = "web-rescale")]
    pub web_rescale: bool,
    #[serde(rename = "web-history")]
    pub web_history: bool,
}

/// One configuration entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
}

/// A savepoint's format (`formatType`, `-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SavepointFormat {
    /// The state backend independent format, the only one Floe writes.
    #[default]
    Canonical,
    /// The state backend's own format (Flink: RocksDB files); Floe has no such format.
    Native,
}

/// `POST /jobs/:jobid/savepoints`: Flink's `SavepointTriggerRequestBody`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavepointTriggerRequest {
    /// Where the `savepoint-*` directory goes; the configured default when absent.
    #[serde(rename = "target-directory")]
    pub target_directory: Option<String>,
    /// End the job after the savepoint (`flink cancel -s`).
    #[serde(rename = "cancel-job")]
    pub cancel_job: bool,
    /// The savepoint format.
    #[serde(rename = "formatType")]
    pub format_type: SavepointFormat,
    /// A trigger id chosen by the client (idempotent retries); Floe picks its own.
    #[serde(rename = "triggerId")]
    pub trigger_id: Option<String>,
}

/// `POST /jobs/:jobid/stop`: Flink's `StopWithSavepointRequestBody`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopWithSavepointRequest {
    /// Where the `savepoint-*` directory goes; the configured default when absent.
    #[serde(rename = "targetDirectory")]
    pub target_directory: Option<String>,
    /// Emit MAX_WATERMARK before the savepoint (`flink stop --drain`).
    pub drain: bool,
    /// The savepoint format.
    #[serde(rename = "formatType")]
    pub format_type: SavepointFormat,
    /// A trigger id chosen by the client; Floe picks its own.
    #[serde(rename = "triggerId")]
    pub trigger_id: Option<String>,
}

/// The kind of a manual checkpoint (`flink checkpoint [-full]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckpointType {
    /// As configured (Floe: full).
    #[default]
    #[serde(alias = "DEFAULT")]
    Configured,
    /// A full checkpoint.
    Full,
    /// An incremental checkpoint (Floe's checkpoints are always full).
    Incremental,
}

/// `POST /jobs/:jobid/checkpoints`: Flink's `CheckpointTriggerRequestBody`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckpointTriggerRequest {
    /// The kind of checkpoint.
    #[serde(rename = "checkpointType")]
    pub checkpoint_type: CheckpointType,
    /// A trigger id chosen by the client; Floe picks its own.
    #[serde(rename = "triggerId")]
    pub trigger_id: Option<String>,
}

/// `POST /savepoint-disposal`: Flink's `SavepointDisposalRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointDisposalRequest {
    /// The savepoint directory (or its `_metadata`), a path or `file:` URL.
    #[serde(rename = "savepoint-path")]
    pub savepoint_path: String,
}

/// The answer of every asynchronous trigger: Flink's `TriggerResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerResponse {
    /// The trigger id to poll.
    #[serde(rename = "request-id")]
    pub request_id: String,
}

/// Whether an asynchronous operation is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueueStatus {
    /// Still running.
    InProgress,
    /// Done: the operation says how it went.
    Completed,
}

/// The `status` of an [`AsyncOperation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStatus {
    /// In progress or completed.
    pub id: QueueStatus,
}

/// The answer of polling a trigger: Flink's `AsynchronousOperationResult`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncOperation<T> {
    /// In progress or completed.
    pub status: OperationStatus,
    /// How it went, once completed.
    pub operation: Option<T>,
}

impl<T> AsyncOperation<T> {
    /// Not done yet.
    pub fn in_progress() -> Self {
        AsyncOperation {
            status: OperationStatus {
                id: QueueStatus::InProgress,
            },
            operation: None,
        }
    }

    /// Done, with `op`.
    pub fn completed(op: T) -> Self {
        AsyncOperation {
            status: OperationStatus {
                id: QueueStatus::Completed,
            },
            operation: Some(op),
        }
    }
}

/// A failure as Flink serializes a `Throwable` (`SerializedThrowable`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCause {
    /// The Java class Flink would name.
    pub class: String,
    /// The message.
    #[serde(rename = "stack-trace")]
    pub stack_trace: String,
    /// Flink's Java-serialized throwable; Floe has none.
    #[serde(rename = "serialized-throwable")]
    pub serialized_throwable: Option<String>,
}

impl FailureCause {
    /// A `FlinkException` with `msg`.
    pub fn new(msg: impl Into<String>) -> Self {
        FailureCause {
            class: "org.apache.flink.util.FlinkException".into(),
            stack_trace: msg.into(),
            serialized_throwable: None,
        }
    }
}

/// The operation of a completed savepoint trigger: Flink's `SavepointInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointInfo {
    /// The savepoint, a `file:` URL, when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed.
    #[serde(
        rename = "failure-cause",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_cause: Option<FailureCause>,
}

/// The operation of a completed manual checkpoint: Flink's `CheckpointInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The checkpoint's id, when it completed.
    #[serde(
        rename = "checkpointId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub checkpoint_id: Option<u64>,
    /// Why it failed.
    #[serde(
        rename = "failure-cause",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_cause: Option<FailureCause>,
}

/// The operation of a completed savepoint disposal: Flink's `AsynchronousOperationInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisposalInfo {
    /// Why it failed; absent when the savepoint is gone.
    #[serde(
        rename = "failure-cause",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_cause: Option<FailureCause>,
}

/// `location` as Flink reports a file path: `file:/abs/path`, made absolute against this
/// process's working directory (the one a relative path was used against).
///
/// ```
/// use floe::jobmanager::rest::model::file_url;
/// assert_eq!(file_url(std::path::Path::new("/tmp/sp")), "file:/tmp/sp");
/// assert!(file_url(std::path::Path::new("sp")).starts_with("file:/"));
/// ```
pub fn file_url(path: &std::path::Path) -> String {
    // A savepoint in an object store is already a URL.
    if let Ok(l @ crate::storage::Location::Object(_)) = crate::storage::Location::from_path(path) {
        return l.to_string();
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file:{}", abs.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overview_entry_has_every_field_flink_requires() {
        let j = JobOverview {
            jid: "ab".into(),
            name: "n".into(),
            state: JobStatus::Failed,
            start_time: 1,
            end_time: 5,
            duration: 4,
            last_modification: 5,
            job_type: streaming(),
            pending_operators: 0,
            tasks: TaskCounts::all_in(JobStatus::Failed, 2),
        };
        let v = serde_json::to_value(&j).unwrap();
        for k in [
            "jid",
            "name",
            "state",
            "start-time",
            "end-time",
            "duration",
            "last-modification",
            "pending-operators",
        ] {
            assert!(!v[k].is_null(), "{k} in {v}");
        }
        assert_eq!(v["state"], "FAILED");
        assert_eq!(
            (
                v["tasks"]["failed"].as_u64(),
                v["tasks"]["running"].as_u64()
            ),
            (Some(2), Some(0))
        );
        assert_eq!(serde_json::from_value::<JobOverview>(v).unwrap(), j);
    }

    #[test]
    fn request_bodies_take_flink_spellings_and_defaults() {
        let r: SavepointTriggerRequest = serde_json::from_str(
            r#"{"target-directory":"/x","cancel-job":true,"formatType":"NATIVE"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.target_directory.as_deref(), r.cancel_job, r.format_type),
            (Some("/x"), true, SavepointFormat::Native)
        );
        let r: StopWithSavepointRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (r.drain, r.format_type),
            (false, SavepointFormat::Canonical)
        );
        let r: CheckpointTriggerRequest =
            serde_json::from_str(r#"{"checkpointType":"DEFAULT"}"#).unwrap();
        assert_eq!(r.checkpoint_type, CheckpointType::Configured);
        assert!(
            serde_json::from_str::<CheckpointTriggerRequest>(r#"{"checkpointType":"X"}"#).is_err()
        );
    }

    #[test]
    fn a_completed_operation_has_its_status_and_operation() {
        let v = serde_json::to_value(AsyncOperation::completed(CheckpointInfo {
            checkpoint_id: Some(7),
            failure_cause: None,
        }))
        .unwrap();
        assert_eq!(v["status"]["id"], "COMPLETED");
        assert_eq!(v["operation"]["checkpointId"], 7);
        let v = serde_json::to_value(AsyncOperation::<DisposalInfo>::in_progress()).unwrap();
        assert_eq!(v["status"]["id"], "IN_PROGRESS");
    }
}
