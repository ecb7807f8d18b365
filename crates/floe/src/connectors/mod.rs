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
pub mod generator;
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

/// One parallel instance of a source.
pub trait SourceReader<T> {
    /// Appends up to `max` records to `out`. Must not block.
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus>;
    /// The position after the last record returned, as bytes for the checkpoint.
    fn snapshot(&mut self) -> Result<Vec<u8>>;
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
    /// Unique to this execution attempt (16 hex digits): names written by this attempt never
    /// collide with names of another attempt or job, so recovery can tell them apart.
    pub attempt_token: String,
    /// The sink operator's uid: a sink names what it writes after it, so that two sinks
    /// sharing a directory never touch each other's files.
    pub operator_uid: String,
    /// The sink task's information.
    pub task_info: TaskInfo,
}

/// The writer of one parallel instance of a [`TwoPhaseCommitSink`].
pub trait PreCommitWriter<T, C> {
    /// Writes a batch (and leaves `batch` empty). Nothing written is visible yet.
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()>;
    /// At a checkpoint's cut (every record before it was written): makes everything written
    /// since the previous call durable and returns it as committables. They are committed
    /// once the checkpoint completes.
    fn prepare_commit(&mut self) -> Result<Vec<C>>;
}

/// A sink with exactly-once output, Flink's two-phase commit (`TwoPhaseCommittingSink`):
/// writers stage records; at every checkpoint the staged data becomes committables that
/// are stored in the checkpoint; when the job manager reports the checkpoint complete they
/// are committed. A restore commits the committables of the restored checkpoint again
/// (commits must be idempotent) and [`recover`](Self::recover) discards anything staged
/// after it.
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
    /// committable may be committed again.
    fn commit(&self, committables: &[Self::Committable]) -> Result<()>;
    /// Called once per attempt that restarts or restores, before anything is written:
    /// discards what earlier attempts staged that is not in `restored` (every committable
    /// of the restored checkpoint, all subtasks).
    fn recover(&self, ctx: &SinkContext, restored: &[Self::Committable]) -> Result<()>;
}
