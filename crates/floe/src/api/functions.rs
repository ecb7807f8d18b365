//! User function types. Closures cover the common case; these named traits are Flink's
//! "rich functions": types with an `open()` hook that can fail and can obtain state.

use crate::state::{KeyedContext, StateRegistry};
use crate::Result;

/// Where a function instance runs: which subtask of how many, and which attempt.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// The operator's name, e.g. `Map`.
    pub task_name: String,
    /// 0-based index of this parallel instance.
    pub subtask_index: u32,
    /// Number of parallel instances.
    pub parallelism: u32,
    /// 0 for the first execution, incremented on every restart.
    pub attempt_number: u32,
    /// The job's maximum parallelism (number of key groups).
    pub max_parallelism: u32,
}

#[cfg(test)]
impl TaskInfo {
    /// Subtask 0 of 1, first attempt, 128 key groups: what unit tests run as.
    pub(crate) fn single(task_name: &str) -> Self {
        TaskInfo {
            task_name: task_name.into(),
            subtask_index: 0,
            parallelism: 1,
            attempt_number: 0,
            max_parallelism: 128,
        }
    }
}

/// Collects the outputs of a flat-map style function.
///
/// ```
/// use floe::prelude::Collector;
/// let mut out = Collector::default();
/// out.collect(1);
/// out.collect(2);
/// assert_eq!(out.len(), 2);
/// ```
#[derive(Debug)]
pub struct Collector<U> {
    pub(crate) buf: Vec<U>,
}

impl<U> Default for Collector<U> {
    fn default() -> Self {
        Collector { buf: Vec::new() }
    }
}

impl<U> Collector<U> {
    /// Emits one record downstream.
    #[inline]
    pub fn collect(&mut self, record: U) {
        self.buf.push(record);
    }
    /// Number of records collected and not yet handed downstream.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing has been collected.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// What a keyed function's `open()` sees: task information and the keyed state registry.
pub struct RuntimeContext<'a> {
    pub(crate) info: &'a TaskInfo,
    pub(crate) registry: Option<&'a mut StateRegistry>,
}

impl<'a> RuntimeContext<'a> {
    /// Information about the running task.
    pub fn task_info(&self) -> &TaskInfo {
        self.info
    }

    pub(crate) fn registry(&mut self) -> Result<&mut StateRegistry> {
        match self.registry.as_deref_mut() {
            Some(r) => Ok(r),
            None => Err(crate::anyhow!(
                "keyed state is only available on a keyed stream (call key_by first) in task '{}'",
                self.info.task_name
            )),
        }
    }
}

/// A one-to-one transformation with an `open()` hook, like Flink's `RichMapFunction`.
///
/// Returning `Err` (or panicking) fails the task; the restart strategy decides what follows.
///
/// ```
/// use floe::prelude::*;
/// #[derive(Clone)]
/// struct FailOnError;
/// impl MapFunction<String, String> for FailOnError {
///     fn map(&mut self, word: String) -> Result<String> {
///         if word == "error" { bail!("error message") }
///         Ok(word)
///     }
/// }
/// ```
pub trait MapFunction<T, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Transforms one record.
    fn map(&mut self, value: T) -> Result<U>;
}

/// A one-to-many transformation with an `open()` hook, like Flink's `RichFlatMapFunction`.
pub trait FlatMapFunction<T, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Emits zero or more records for one input.
    fn flat_map(&mut self, value: T, out: &mut Collector<U>) -> Result<()>;
}

/// A flat-map on a keyed stream with access to keyed state, like Flink's
/// `RichFlatMapFunction` after `keyBy`. State handles are obtained in `open()` from
/// named descriptors and used with the [`KeyedContext`] passed to every call, which is
/// scoped to the key of the current record.
///
/// ```
/// use floe::prelude::*;
/// #[derive(Clone, Default)]
/// struct CountPerKey { count: ValueState<u64, WithDefault> }
/// impl KeyedFlatMapFunction<String, String, (String, u64)> for CountPerKey {
///     fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
///         self.count = ValueStateDescriptor::new("count").with_default(0u64).register(ctx)?;
///         Ok(())
///     }
///     fn flat_map(&mut self, w: String, ctx: &mut KeyedContext<String>, out: &mut Collector<(String, u64)>) -> Result<()> {
///         let n = self.count.value(ctx)? + 1;
///         self.count.update(ctx, n)?;
///         out.collect((w, n));
///         Ok(())
///     }
/// }
/// ```
pub trait KeyedFlatMapFunction<K, T, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record; register state here.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Processes one record; `ctx` is scoped to the record's key.
    fn flat_map(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
    ) -> Result<()>;
}
