//! Sources and sinks.
//!
//! A source is a [`Source`] factory that creates one [`SourceReader`] per parallel
//! instance. Readers never block: they fill a batch with what is available and say whether
//! more may come. Their position is snapshotted at every checkpoint and handed back on
//! restore, which is what makes a source replayable.
//!
//! A [`Sink`] writes what it receives. A [`TwoPhaseCommitSink`] gives exactly-once output:
//! what it writes stays invisible until the checkpoint that covers it is complete.

pub mod collect;
pub mod collection;
pub mod discard;
pub mod file;
pub mod file_sink;
pub mod format;
pub mod generator;
pub mod kafka;
pub mod socket;

use crate::api::functions::TaskInfo;
use crate::Result;

/// What a [`SourceReader::poll_next`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// Records were added (or may be added right away); call again.
    Ready,
    /// Nothing available now; the reader will call [`SourceWaker::wake`] when there is.
    Idle,
    /// The input ended. Records added in this call are still emitted.
    Finished,
}

/// Wakes the worker that owns a source reader (from an I/O thread).
#[derive(Clone, Debug)]
pub struct SourceWaker(pub(crate) std::thread::Thread);

impl SourceWaker {
    /// Schedules the owning worker to poll its sources.
    pub fn wake(&self) {
        self.0.unpark();
    }
}

/// What a source instance is told when it is created.
#[derive(Debug)]
pub struct SourceContext {
    /// This instance's index.
    pub subtask: u32,
    /// Number of instances.
    pub parallelism: u32,
    /// Execution attempt (0 for the first).
    pub attempt: u32,
    /// When restoring: the positions of *every* instance of this source in the snapshot
    /// (in subtask order), which may have run at another parallelism. Each instance takes
    /// the positions of the splits (files, partitions) it owns now, so that after
    /// rescaling no input is skipped or read twice.
    pub restored: Option<Vec<Vec<u8>>>,
    /// Wakes the worker when an I/O thread has data.
    pub waker: SourceWaker,
    /// The source task's information (for `open()` of operators chained to the source).
    pub task_info: TaskInfo,
}

/// Consecutive records of one poll that came from one split (file, partition): what an
/// event-time source generates watermarks per split from (Flink's split-local watermarks).
///
/// A run of no records that did not finish announces a split the reader owns but has not
/// started reading: it holds back the watermark from then on, and is not idle before its
/// first record (a reader that reads its splits one after another has not got to it yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitRun {
    /// The split, as the reader numbers its splits.
    pub split: u32,
    /// How many of the poll's records, in order, came from it.
    pub records: usize,
    /// The split ended with these records: it no longer holds back the watermark.
    pub finished: bool,
}

/// One parallel instance of a source.
pub trait SourceReader<T> {
    /// Appends up to `max` records to `out`. Must not block.
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus>;
    /// The position after the last record returned, as bytes for the checkpoint.
    fn snapshot(&mut self) -> Result<Vec<u8>>;
    /// The splits the records of the last [`poll_next`](Self::poll_next) came from, in
    /// order. `None` (the default): the reader is one split.
    fn last_poll_splits(&self) -> Option<&[SplitRun]> {
        None
    }
}

/// A source: creates readers.
pub trait Source<T>: Send + Sync + 'static {
    /// Flink-style display name, e.g. `Socket Stream`.
    fn name(&self) -> String;
    /// A source that cannot run in parallel returns `Some(1)`.
    fn max_parallelism(&self) -> Option<u32> {
        None
    }
    /// Creates the reader of one parallel instance.
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<T>>>;
    /// What a worker that runs no instance of this source (see
    /// [`max_parallelism`](Self::max_parallelism)) emits once: nothing for a plain source,
    /// for an event-time one a channel that is idle for good, so that it neither holds back
    /// the watermark downstream nor moves it when the instances that run go idle.
    fn without_reader(&self) -> Vec<T> {
        Vec::new()
    }
}

/// One parallel instance of a sink.
pub trait SinkWriter<T> {
    /// Writes a batch (and leaves `batch` empty).
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()>;
}

/// A sink: creates writers.
pub trait Sink<T>: Send + Sync + 'static {
    /// Flink-style display name, e.g. `Print to Std. Out`.
    fn name(&self) -> String;
    /// Creates the writer of one parallel instance.
    fn create(&self, info: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>>;
}

/// What a parallel instance of a [`TwoPhaseCommitSink`] is told when it is created.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// This instance's index.
    pub subtask: u32,
    /// Number of instances.
    pub parallelism: u32,
    /// Execution attempt (0 for the first).
    pub attempt: u32,
    /// The job's id (32 lowercase hex). A sink names what it stages after the job and the
    /// attempt ([`SinkContext::attempt_token`]), so that recovery can tell this job's
    /// files from another job's writing into the same place, and never touches those.
    pub job_id: String,
    /// The sink operator's uid: a sink names what it writes after it, so that two sinks
    /// sharing a directory never touch each other's files.
    pub operator_uid: String,
    /// The sink task's information.
    pub task_info: TaskInfo,
    /// The id of the checkpoint the first records of this attempt belong to. Checkpoint ids
    /// only grow, also across restarts, so a sink can name what it stages after them.
    pub first_checkpoint: u64,
    /// The id of the checkpoint or savepoint this attempt restored, if any.
    pub restored_checkpoint: Option<u64>,
}

impl SinkContext {
    /// `<first 16 hex digits of the job id>-<attempt>`: unique to this attempt of this job
    /// (job ids are random), and the job's part of it says whose a staged file is.
    ///
    /// ```
    /// # use floe::connectors::SinkContext;
    /// # use floe::api::functions::TaskInfo;
    /// # let task_info = TaskInfo { task_name: "FileSink".into(), subtask_index: 0, parallelism: 1, attempt_number: 3, max_parallelism: 128 };
    /// let ctx = SinkContext { subtask: 0, parallelism: 1, attempt: 3, job_id: "85a62e15d185d3b469493321f9d8a8c4".into(), operator_uid: "out".into(), task_info, first_checkpoint: 1, restored_checkpoint: None };
    /// assert_eq!(ctx.attempt_token(), "85a62e15d185d3b4-3");
    /// ```
    pub fn attempt_token(&self) -> String {
        format!("{}-{}", self.job_token(), self.attempt)
    }

    /// The job's part of [`attempt_token`](Self::attempt_token).
    pub fn job_token(&self) -> &str {
        self.job_id.get(..16).unwrap_or(&self.job_id)
    }
}

/// A committable that a completed checkpoint names no longer exists (e.g. a pending part
/// file deleted by hand). Restarting cannot bring it back — every restore of that checkpoint
/// would fail the same way — so the job fails without restarting, naming what is gone.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommittableLost(pub String);

/// The writer of one parallel instance of a [`TwoPhaseCommitSink`].
pub trait PreCommitWriter<T, C> {
    /// Writes a batch (and leaves `batch` empty). Nothing written is visible yet.
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()>;
    /// At the cut of checkpoint `checkpoint_id` (every record before it was written): makes
    /// everything written since the previous call durable and returns it as committables.
    /// They are committed once the checkpoint completes. The records after the cut belong
    /// to a later checkpoint (at the end of the input, `u64::MAX`: none follows).
    fn prepare_commit(&mut self, checkpoint_id: u64) -> Result<Vec<C>>;
}

/// A sink with exactly-once output, Flink's two-phase commit (`TwoPhaseCommittingSink`):
/// writers stage records; at every checkpoint the staged data becomes committables that
/// are stored in the checkpoint; when the job manager reports the checkpoint complete they
/// are committed. A restore commits the committables of the restored checkpoint again
/// (commits must be idempotent) and, after a failover, [`recover`](Self::recover) discards
/// what this job's earlier attempts staged that no restorable snapshot names. A commit that
/// finds a committable gone returns [`CommittableLost`].
///
/// ```no_run
/// use floe::prelude::*;
/// use floe::connectors::file_sink::FileSink;
///
/// let env = StreamEnv::new();
/// env.enable_checkpointing(std::time::Duration::from_secs(1));
/// env.from_collection(vec![("a".to_string(), 1i64)])
///     .sink_exactly_once(FileSink::for_row_format("/tmp/out"));
/// ```
pub trait TwoPhaseCommitSink<T>: Send + Sync + 'static {
    /// What a checkpoint stores and a commit makes visible (e.g. a pending file).
    type Committable: serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + 'static;
    /// The per-instance writer.
    type Writer: PreCommitWriter<T, Self::Committable> + 'static;
    /// Flink-style display name, e.g. `FileSink`.
    fn name(&self) -> String;
    /// Creates the writer of one parallel instance.
    fn create_writer(&self, ctx: &SinkContext) -> Result<Self::Writer>;
    /// Makes `committables` visible. Must be idempotent: after a failure the same
    /// committable may be committed again. A committable that is neither staged nor
    /// committed any more is a [`CommittableLost`] error.
    fn commit(&self, committables: &[Self::Committable]) -> Result<()>;
    /// Called once by one subtask when an attempt of a job restarts after a failure (not
    /// when a new job restores a snapshot), before anything is written: discards what
    /// *this job's earlier attempts* staged that is not in `keep` (every committable of the
    /// restored checkpoint and of the job's savepoints, all subtasks). Anything staged by
    /// another job — another run writing to the same place, or the job whose snapshot this
    /// one restored — is never touched: Flink's rule that a sink never deletes what its
    /// state does not know.
    fn recover(&self, ctx: &SinkContext, keep: &[Self::Committable]) -> Result<()>;
}
