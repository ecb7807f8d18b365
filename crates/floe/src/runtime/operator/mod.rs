//! Stateful operators: one contract, [`Checkpointed`], and one driver for operators whose
//! input is aligned at checkpoint cuts ([`aligned`]).
//!
//! | file | operator | kind of state |
//! |---|---|---|
//! | [`source`] | a source subtask, driven by the worker's source loop | source positions |
//! | [`keyed`] | a keyed operator (aggregations, keyed flat map) | keyed state |
//! | [`two_phase_sink`] | a two-phase-commit sink | staged output |
//! | [`timed`] | a keyed operator with timers and watermarks (process functions, windows, joins) | keyed state, timers ([`timers`]), watermark |
//! | [`join`] | two-input operators: keyed co-process, co-map, interval join (timed logics) | as [`timed`], plus the join's buffers |
//!
//! A new stateful operator (a window, a timer service, a Kafka source) is one new file
//! here: a type implementing [`Checkpointed`] (and [`aligned::Aligned`] when its input is
//! aligned by epochs, which gives it the cut loop of [`aligned::build_aligned`]), plus the
//! line that declares it with its [`OperatorKind`] in the job graph. The snapshot, restore
//! validation, `_metadata` and `floe savepoint check` follow from that kind.
//!
//! Only restore, the cut, commit and the end of input go through the trait; records are
//! processed by the operator's own, monomorphised code.

pub(crate) mod align;
pub(crate) mod aligned;
pub(crate) mod join;
pub(crate) mod keyed;
pub(crate) mod source;
pub(crate) mod timed;
pub(crate) mod timers;
pub(crate) mod two_phase_sink;
pub(crate) mod window;

use super::attempt::{Attempt, Committer};
use super::plan::BuildCx;
use super::snapshot::SnapshotJob;
use crate::checkpoint::metadata::{OperatorKind, StateHandle, TaskId};
use crate::checkpoint::restore::OperatorRestore;
use crate::state::backend::DeltaEntry;
use crate::Result;
use std::sync::Arc;

/// What one subtask of a stateful operator contributes to a checkpoint at its cut.
pub(crate) enum SnapshotState {
    /// Small state stored inside `_metadata` (source positions, a sink's committables).
    Inline(Vec<u8>),
    /// The keys changed since the last snapshot: the snapshot writer merges them into the
    /// subtask's image and writes a state file.
    KeyedDelta {
        /// State names, in the order of the delta's values.
        names: Vec<String>,
        /// The changed keys.
        delta: Vec<DeltaEntry>,
    },
}

/// The contract of a stateful operator's subtask with checkpoints (the shape of Flink's
/// `CheckpointedFunction`/`CheckpointListener`, Arroyo's operator hooks and DBSP's
/// `checkpoint`/`restore`).
pub(crate) trait Checkpointed {
    /// The kind of state it stores: what restore and `_metadata` know it by.
    const KIND: OperatorKind;

    /// Restores from the operator's part of the snapshot the attempt starts from (`None`:
    /// it starts empty). Called once, before any record.
    fn restore(&mut self, from: Option<OperatorRestore<'_>>) -> Result<()>;

    /// The cut of checkpoints from `first` on: this subtask's state at it (`None`: it has
    /// nothing to acknowledge).
    fn snapshot(&mut self, first: u64) -> Result<Option<SnapshotState>>;

    /// What to notify when a checkpoint completes (Flink's `notifyCheckpointComplete`).
    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }

    /// The input ended: no checkpoint follows.
    fn end_of_input(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Restores `o`, the subtask of operator `op` on this worker, from the attempt's snapshot.
pub(crate) fn restore<O: Checkpointed>(cx: &BuildCx<'_, '_>, op: usize, o: &mut O) -> Result<()> {
    let from = match cx.restore_view() {
        Some(view) => view.operator(&cx.plan.operators[op].uid, O::KIND)?,
        None => None,
    };
    o.restore(from)
}

/// Checkpoints `lo..=hi` that are triggered and pending have their cut here: takes `o`'s
/// state and acknowledges each of them for `task` (keyed state once written).
pub(crate) fn checkpoint<O: Checkpointed>(
    o: &mut O,
    attempt: &Attempt,
    task: &TaskId,
    lo: u64,
    hi: u64,
) -> Result<()> {
    let hi = hi.min(attempt.signals.triggered());
    let targets = attempt.signals.pending_in(lo, hi);
    let Some(&(first, _)) = targets.first() else {
        return Ok(());
    };
    match o.snapshot(first)? {
        None => {}
        Some(SnapshotState::Inline(data)) => {
            for (id, _) in targets {
                attempt
                    .outbox
                    .ack(id, task, StateHandle::Inline { data: data.clone() });
            }
        }
        Some(SnapshotState::KeyedDelta { names, delta }) => attempt.outbox.snapshot(SnapshotJob {
            task: task.clone(),
            names,
            delta,
            targets,
        }),
    }
    Ok(())
}
