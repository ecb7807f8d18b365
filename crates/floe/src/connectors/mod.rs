//! Sources and sinks.
//!
//! A source is a [`Source`] factory that creates one [`SourceReader`] per parallel
//! instance. Readers never block: they fill a batch with what is available and say whether
//! more may come. Their position is snapshotted at every checkpoint and handed back on
//! restore, which is what makes a source replayable.

pub mod collect;
pub mod collection;
pub mod discard;
pub mod file;
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
