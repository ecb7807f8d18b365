//! The job graph built by the API and how it is instantiated on a timely worker.

use super::attempt::Attempt;
use super::event::Ev;
use super::Time;
use crate::api::data::Data;
use crate::api::functions::TaskInfo;
use crate::checkpoint::metadata::{LoadedSnapshot, OperatorKind, TaskId};
pub use crate::checkpoint::restore::StateCheck;
use crate::checkpoint::restore::{compatibility, DeclaredOperator, JobShape, Report, RestoreView};
use crate::Result;
use std::sync::Arc;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// One operator of the job graph.
#[derive(Clone, Debug)]
pub struct OperatorDecl {
    /// Stable id used to map state on restore.
    pub uid: String,
    /// True when the uid was set with `.uid(..)`, not derived.
    pub explicit_uid: bool,
    /// Display name, e.g. `Map`, `Keyed Aggregation`, `Source: Socket Stream`.
    pub name: String,
    /// The kind of state it stores in snapshots (`None`: stateless). Everything that
    /// depends on an operator's state (acknowledged tasks, `_metadata`, restore
    /// validation, `floe savepoint check`) reads it from here.
    pub state: Option<OperatorKind>,
    /// Parallelism of this operator (sources may be limited to 1).
    pub parallelism: u32,
    /// Index of the chain (Flink's job vertex) this operator belongs to.
    pub chain: usize,
}

/// An immutable, shareable description of the job, instantiated by every worker of every
/// attempt.
pub struct Plan {
    /// Job name.
    pub job_name: String,
    /// Parallelism (number of worker threads).
    pub parallelism: u32,
    /// Max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// Operators by id.
    pub operators: Vec<OperatorDecl>,
    /// Sources wait for a final checkpoint when their input ends, so that two-phase-commit
    /// sinks commit all output before the job finishes (Flink's final checkpoint).
    pub final_checkpoint: bool,
    /// The sinks; building them builds everything upstream.
    pub(crate) terminals: Vec<Arc<dyn Terminal>>,
}

impl Plan {
    /// Flink's name of a task: the chain's operator names joined by ` -> `.
    pub fn vertex_name(&self, op: usize) -> String {
        let chain = self.operators[op].chain;
        self.operators
            .iter()
            .filter(|o| o.chain == chain)
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// The job's vertices (Flink's job vertices: chains of operators), in graph order:
    /// `(name, parallelism)`.
    pub fn vertices(&self) -> Vec<(String, u32)> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (i, o) in self.operators.iter().enumerate() {
            if !seen.contains(&o.chain) {
                seen.push(o.chain);
                let parallelism = self
                    .operators
                    .iter()
                    .filter(|x| x.chain == o.chain)
                    .map(|x| x.parallelism)
                    .max()
                    .unwrap_or(o.parallelism);
                out.push((self.vertex_name(i), parallelism));
            }
        }
        out
    }

    /// Every `(uid, subtask)` that acknowledges checkpoints.
    pub fn checkpointed_tasks(&self) -> Vec<TaskId> {
        let mut v = Vec::new();
        for o in &self.operators {
            if o.state.is_some() {
                for s in 0..o.parallelism {
                    v.push(TaskId {
                        uid: o.uid.clone(),
                        subtask: s,
                    });
                }
            }
        }
        v
    }

    /// The job as restore sees it.
    pub fn shape(&self) -> JobShape<'_> {
        JobShape {
            name: &self.job_name,
            max_parallelism: self.max_parallelism,
            operators: self
                .operators
                .iter()
                .map(|o| DeclaredOperator {
                    uid: &o.uid,
                    name: &o.name,
                    state: o.state,
                    parallelism: o.parallelism,
                })
                .collect(),
        }
    }

    /// Whether `snap` restores into this job, with how every state decodes into the job's
    /// state types: what `floe savepoint check` prints.
    pub(crate) fn check_restore(
        &self,
        snap: &LoadedSnapshot,
        allow_non_restored: bool,
    ) -> Result<Report> {
        let mut checks = Vec::new();
        for t in &self.terminals {
            t.check(self, snap, &mut checks)?;
        }
        Ok(compatibility(&self.shape(), snap, allow_non_restored).with_state_checks(checks))
    }
}

/// A node producing a stream of `T`.
///
/// A node on an event-time stream ([`timed`](Self::timed)) produces [`Ev`] elements —
/// records with their timestamps, watermarks and side outputs — through
/// [`build_timed`](Self::build_timed); [`build`](Self::build) then gives the bare records.
/// A plain node gives records without timestamps to an event-time consumer.
pub(crate) trait Node<T: Data>: Send + Sync {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, T>>;
    /// The stream as event-time elements.
    fn build_timed<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<T>>> {
        Ok(super::event::untimed(self.build(cx)?))
    }
    /// True when the stream carries timestamps and watermarks.
    fn timed(&self) -> bool {
        false
    }
    /// Checks whether the snapshot's state decodes into this node's (and its upstream's)
    /// state types, without running anything.
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()>;
}

/// A sink: the end of a pipeline.
pub(crate) trait Terminal: Send + Sync {
    fn build(&self, cx: &mut BuildCx<'_, '_>) -> Result<()>;
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()>;
}

/// What a worker's source loop drives, once per source operator.
pub(crate) trait SourceDriver {
    /// Emits at most one batch. Never blocks.
    fn poll(&mut self, probe: &ProbeHandle<Time>, attempt: &Attempt) -> Result<Polled>;
    /// Checkpoints up to `upto` were triggered: record the position and move to the next epoch.
    fn on_trigger(&mut self, upto: u64, attempt: &Attempt) -> Result<()>;
    /// The source's task name.
    fn task_name(&self) -> &str;
    /// True while the source waits for its batches in flight to clear.
    fn blocked(&self) -> bool;
}

/// Outcome of [`SourceDriver::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polled {
    /// A batch was emitted; there may be more.
    Emitted,
    /// Nothing available right now.
    Idle,
    /// Too much data in flight; wait for the dataflow to catch up.
    Blocked,
    /// The source ended.
    Finished,
}

/// Everything an operator needs while being instantiated on one worker.
pub(crate) struct BuildCx<'s, 'a> {
    pub scope: Scope<'s, Time>,
    pub plan: &'a Plan,
    pub worker: u32,
    pub peers: u32,
    /// The attempt number.
    pub attempt_number: u32,
    /// What the attempt's workers share.
    pub attempt: &'a Arc<Attempt>,
    pub restore: Option<&'a LoadedSnapshot>,
    /// Savepoints this job took (see [`super::protocol::AttemptSpec::savepoints`]).
    pub savepoints: &'a [crate::storage::Location],
    pub start_epoch: u64,
    pub probe: &'a ProbeHandle<Time>,
    pub drivers: &'a mut Vec<Box<dyn SourceDriver>>,
    /// Streams built once and read by several consumers (an operator's main output and
    /// its side outputs).
    pub built: Built<'s>,
}

/// Streams already built on this worker, by the address of the node that built them.
pub(crate) struct Built<'s> {
    streams: std::collections::HashMap<usize, Box<dyn std::any::Any>>,
    _scope: std::marker::PhantomData<Scope<'s, Time>>,
}

impl<'s> Built<'s> {
    pub fn new() -> Self {
        Built {
            streams: Default::default(),
            _scope: std::marker::PhantomData,
        }
    }

    /// The stream node `key` built earlier, if it did.
    pub fn get<D: Clone + 'static>(&self, key: usize) -> Option<StreamVec<'s, Time, D>> {
        let s = self.streams.get(&key)?;
        let s: &StreamVec<'static, Time, D> = s.downcast_ref()?;
        // Shortening 'static to 's is plain covariance.
        Some(s.clone())
    }

    /// Remembers the stream node `key` built.
    pub fn put<D: Clone + 'static>(&mut self, key: usize, stream: &StreamVec<'s, Time, D>) {
        // SAFETY: a stream's lifetime is that of its scope, which outlives this map (the map
        // lives in the `BuildCx` of that scope and is dropped with it). The 'static copy is
        // never handed out: `get` gives it back as `'s`. `Stream` is covariant in its
        // lifetime, so only the lifetime changes, never the layout.
        let stream: StreamVec<'static, Time, D> =
            unsafe { std::mem::transmute::<StreamVec<'s, Time, D>, _>(stream.clone()) };
        self.streams.insert(key, Box::new(stream));
    }
}

/// The key a node memoizes its stream under: its address.
pub(crate) fn node_key<N: ?Sized>(node: &N) -> usize {
    node as *const N as *const () as usize
}

impl<'a> BuildCx<'_, 'a> {
    /// Task information for operator `op` on this worker.
    pub fn task_info(&self, op: usize) -> TaskInfo {
        TaskInfo {
            task_name: self.plan.operators[op].name.clone(),
            subtask_index: self.worker,
            parallelism: self.plan.operators[op].parallelism,
            attempt_number: self.attempt_number,
            max_parallelism: self.plan.max_parallelism,
        }
    }

    /// Flink's task name with subtask, e.g. `Map -> Sink: Print to Std. Out (1/2)`.
    pub fn task_display(&self, op: usize) -> String {
        format!(
            "{} ({}/{})",
            self.plan.vertex_name(op),
            self.worker + 1,
            self.plan.operators[op].parallelism
        )
    }

    /// The snapshot the attempt restores from, as operators read it.
    pub fn restore_view(&self) -> Option<RestoreView<'a>> {
        self.restore
            .map(|snap| RestoreView::new(snap, self.plan.max_parallelism))
    }
}
