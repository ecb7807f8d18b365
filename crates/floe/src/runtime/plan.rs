//! The job graph built by the API and how it is instantiated on a timely worker.

use super::executor::ExecShared;
use super::Time;
use crate::api::data::Data;
use crate::api::functions::TaskInfo;
use crate::checkpoint::metadata::{LoadedSnapshot, OperatorKind, StateHandle, TaskId};
use crate::Result;
use std::sync::Arc;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// What kind of state an operator has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// No state.
    Stateless,
    /// Source positions.
    Source,
    /// Keyed state.
    Keyed,
    /// Output staged by a two-phase-commit sink, not yet committed.
    Sink,
}

impl StateKind {
    /// How this operator's state is stored in a snapshot (`None`: it has none).
    pub fn snapshot_kind(self) -> Option<OperatorKind> {
        match self {
            StateKind::Stateless => None,
            StateKind::Source => Some(OperatorKind::Source),
            StateKind::Keyed => Some(OperatorKind::Keyed),
            StateKind::Sink => Some(OperatorKind::Sink),
        }
    }
}

/// One operator of the job graph.
#[derive(Clone, Debug)]
pub struct OperatorDecl {
    /// Stable id used to map state on restore.
    pub uid: String,
    /// True when the uid was set with `.uid(..)`, not derived.
    pub explicit_uid: bool,
    /// Display name, e.g. `Map`, `Keyed Aggregation`, `Source: Socket Stream`.
    pub name: String,
    /// State kind.
    pub state: StateKind,
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

    /// Every `(uid, subtask)` that acknowledges checkpoints.
    pub fn checkpointed_tasks(&self) -> Vec<TaskId> {
        let mut v = Vec::new();
        for o in &self.operators {
            if o.state != StateKind::Stateless {
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
}

/// A node producing a stream of `T`.
pub(crate) trait Node<T: Data>: Send + Sync {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, T>>;
    /// Checks whether the snapshot's state decodes into this node's (and its upstream's)
    /// state types, without running anything.
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()>;
}

/// A sink: the end of a pipeline.
pub(crate) trait Terminal: Send + Sync {
    fn build(&self, cx: &mut BuildCx<'_, '_>) -> Result<()>;
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()>;
}

/// How one state of a snapshot fits the job (`floe savepoint check`).
#[derive(Clone, Debug)]
pub struct StateCheck {
    /// Operator uid.
    pub uid: String,
    /// State name.
    pub state: String,
    /// Entries in the snapshot.
    pub entries: u64,
    /// False when the job's `open()` does not register this state (it would be kept as is).
    pub registered: bool,
    /// The first entry that does not decode into the job's type, if any.
    pub error: Option<String>,
}

/// What a worker's source loop drives, once per source operator.
pub(crate) trait SourceDriver {
    /// Emits at most one batch. Never blocks.
    fn poll(&mut self, probe: &ProbeHandle<Time>, shared: &ExecShared) -> Result<Polled>;
    /// Checkpoints up to `upto` were triggered: record the position and move to the next epoch.
    fn on_trigger(&mut self, upto: u64, shared: &ExecShared) -> Result<()>;
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
    pub attempt: u32,
    pub shared: &'a Arc<ExecShared>,
    pub restore: Option<&'a LoadedSnapshot>,
    /// Savepoints this job took (see [`super::protocol::AttemptSpec::savepoints`]).
    pub savepoints: &'a [std::path::PathBuf],
    pub start_epoch: u64,
    pub probe: &'a ProbeHandle<Time>,
    pub drivers: &'a mut Vec<Box<dyn SourceDriver>>,
}

impl BuildCx<'_, '_> {
    /// Task information for operator `op` on this worker.
    pub fn task_info(&self, op: usize) -> TaskInfo {
        TaskInfo {
            task_name: self.plan.operators[op].name.clone(),
            subtask_index: self.worker,
            parallelism: self.plan.operators[op].parallelism,
            attempt_number: self.attempt,
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

    /// The restored positions of every subtask of source operator `op`, in subtask order
    /// (the snapshot may have another parallelism than the job now has).
    pub fn restored_source_state(&self, op: usize) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(snap) = self.restore else {
            return Ok(None);
        };
        let decl = &self.plan.operators[op];
        let Some(os) = snap.metadata.operator(&decl.uid) else {
            return Ok(None);
        };
        if os.kind != OperatorKind::Source {
            crate::bail!(
                "state of operator '{}' in {} is not source state",
                decl.uid,
                snap.dir.display()
            );
        }
        let mut subtasks: Vec<_> = os.subtasks.iter().collect();
        subtasks.sort_by_key(|s| s.subtask);
        let mut out = Vec::with_capacity(subtasks.len());
        for st in subtasks {
            match &st.handle {
                StateHandle::Inline { data } => out.push(data.clone()),
                _ => crate::bail!(
                    "corrupt snapshot {}: source '{}' subtask {} has no inline position",
                    snap.dir.display(),
                    decl.uid,
                    st.subtask
                ),
            }
        }
        Ok(Some(out))
    }
}
