//! The operator of a [`TwoPhaseCommitSink`]: stages records, turns them into committables
//! exactly at each checkpoint's cut, stores them in the checkpoint, and commits them when
//! the job manager reports the checkpoint complete.
//!
//! Alignment is the [`aligned`](super::aligned) driver's: when the frontier passes epoch
//! `n`, every record of checkpoint `n` has been written and none after it, so
//! `prepare_commit` there yields exactly checkpoint `n`'s output. The checkpoint stores
//! every committable not yet committed (older checkpoints may have been aborted), so a
//! restore from any completed checkpoint finds all of its output.
//!
//! Commits run on the executor's control thread when `CheckpointComplete` arrives — never
//! before the checkpoint that names them is durable — holding the queue's lock, so a cut
//! taken meanwhile sees each committable either still pending or committed.

use super::aligned::{build_aligned, Aligned};
use super::{Checkpointed, SnapshotState};
use crate::api::data::Data;
use crate::api::functions::Collector;
use crate::checkpoint::metadata::{load_snapshot, OperatorKind};
use crate::checkpoint::restore::{OperatorRestore, RestoreView};
use crate::connectors::{PreCommitWriter, SinkContext, TwoPhaseCommitSink};
use crate::runtime::attempt::{AttemptControl, Committer};
use crate::runtime::failure;
use crate::runtime::plan::BuildCx;
use crate::runtime::Time;
use crate::sync::LockExt;
use crate::Result;
use anyhow::Context as _;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Probe;
use timely::dataflow::StreamVec;

/// One sink subtask's committables, by the first checkpoint that holds them.
struct CommitQueue<T, S: TwoPhaseCommitSink<T>> {
    sink: Arc<S>,
    task: String,
    pending: Mutex<BTreeMap<u64, Vec<S::Committable>>>,
    _t: std::marker::PhantomData<fn(&T)>,
}

impl<T: 'static, S: TwoPhaseCommitSink<T>> Committer for CommitQueue<T, S> {
    fn commit_upto(&self, id: u64) -> Result<()> {
        let mut pending = self.pending.lock_ok();
        let later = match id.checked_add(1) {
            Some(n) => pending.split_off(&n),
            None => BTreeMap::new(),
        };
        let due: Vec<S::Committable> = pending.values().flatten().cloned().collect();
        // On failure the committables stay queued, so every later cut still names them.
        self.sink
            .commit(&due)
            .with_context(|| format!("committing the output of checkpoint {id} failed"))?;
        *pending = later;
        Ok(())
    }
    fn task(&self) -> &str {
        &self.task
    }
}

/// Every subtask's committables in the sink's part of a snapshot, in subtask order.
fn committables<C: DeserializeOwned>(from: &OperatorRestore<'_>) -> Result<Vec<(u32, Vec<C>)>> {
    let mut out = Vec::new();
    for (subtask, data) in from.inline()? {
        let c: Vec<C> = serde_json::from_slice(data).map_err(|e| {
            crate::anyhow!(
                "corrupt snapshot {}: pending output of sink '{}' subtask {subtask} does not decode: {e}",
                from.dir().display(),
                from.state().uid,
            )
        })?;
        out.push((subtask, c));
    }
    Ok(out)
}

/// One subtask of a two-phase-commit sink.
struct TwoPhaseSink<T, S: TwoPhaseCommitSink<T>> {
    queue: Arc<CommitQueue<T, S>>,
    /// Created once restore has committed and recovered what earlier attempts left.
    writer: Option<S::Writer>,
    ctx: SinkContext,
    max_parallelism: u32,
    /// This job's savepoints (see [`crate::runtime::protocol::AttemptSpec::savepoints`]).
    savepoints: Vec<crate::storage::Location>,
}

impl<T: Data, S: TwoPhaseCommitSink<T>> TwoPhaseSink<T, S> {
    /// What recovery must keep besides the restored checkpoint's output: the output named
    /// by this job's savepoints, which the user may still restore. A savepoint that is gone
    /// (disposed) protects nothing any more.
    fn savepoint_committables(&self) -> Vec<S::Committable> {
        let mut keep = Vec::new();
        for dir in &self.savepoints {
            let found = load_snapshot(dir).and_then(|s| {
                match RestoreView::new(&s, self.max_parallelism)
                    .operator(&self.ctx.operator_uid, OperatorKind::Sink)?
                {
                    Some(from) => committables::<S::Committable>(&from),
                    None => Ok(Vec::new()),
                }
            });
            match found {
                Ok(c) => keep.extend(c.into_iter().flat_map(|(_, c)| c)),
                Err(e) => tracing::debug!("Savepoint {} protects no output: {e:#}", dir.display()),
            }
        }
        keep
    }

    fn writer(&mut self) -> &mut S::Writer {
        self.writer
            .as_mut()
            .expect("the writer is created at build")
    }
}

impl<T: Data, S: TwoPhaseCommitSink<T>> Checkpointed for TwoPhaseSink<T, S> {
    const KIND: OperatorKind = OperatorKind::Sink;

    /// The restored snapshot is complete: its committables are committed (again) by the
    /// subtask that inherits them. After a failover, one subtask discards what this job's
    /// earlier attempts staged that no snapshot the job or its user can restore names.
    fn restore(&mut self, from: Option<OperatorRestore<'_>>) -> Result<()> {
        let restored = match &from {
            Some(from) => committables::<S::Committable>(from)?,
            None => Vec::new(),
        };
        let (worker, peers) = (self.ctx.subtask, self.ctx.parallelism);
        let mine: Vec<S::Committable> = restored
            .iter()
            .filter(|(s, _)| s % peers == worker)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        let sink = &self.queue.sink;
        sink.commit(&mine)
            .context("committing the output of the restored snapshot failed")?;
        if worker == 0 && self.ctx.attempt > 0 {
            let mut keep: Vec<S::Committable> = restored.into_iter().flat_map(|(_, c)| c).collect();
            keep.extend(self.savepoint_committables());
            self.queue.sink.recover(&self.ctx, &keep)?;
        }
        Ok(())
    }

    /// Stages the committables and acknowledges with everything not yet committed.
    fn snapshot(&mut self, first: u64) -> Result<Option<SnapshotState>> {
        let staged = self.writer().prepare_commit(first)?;
        let mut pending = self.queue.pending.lock_ok();
        if !staged.is_empty() {
            pending.entry(first).or_default().extend(staged);
        }
        let all: Vec<&S::Committable> = pending.values().flatten().collect();
        Ok(Some(SnapshotState::Inline(serde_json::to_vec(&all)?)))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(self.queue.clone())
    }

    /// No checkpoint follows. With checkpointing, the final checkpoint has committed
    /// everything already; without it, the output is committed now.
    fn end_of_input(&mut self) -> Result<()> {
        let rest = self.writer().prepare_commit(u64::MAX)?;
        self.queue.sink.commit(&rest)?;
        self.queue.commit_upto(u64::MAX)
    }
}

impl<T: Data, S: TwoPhaseCommitSink<T>> Aligned for TwoPhaseSink<T, S> {
    type In = T;
    type Out = ();

    #[inline]
    fn process(
        &mut self,
        batch: &mut Vec<T>,
        _out: &mut Collector<()>,
        _control: &AttemptControl,
    ) -> Result<()> {
        self.writer().write_batch(batch)
    }
}

/// Instantiates a two-phase-commit sink on this worker and attaches the probe after it.
pub(crate) fn build_committing_sink<T: Data, S: TwoPhaseCommitSink<T>>(
    cx: &mut BuildCx<'_, '_>,
    op: usize,
    input: StreamVec<'_, Time, T>,
    sink: &Arc<S>,
) -> Result<()> {
    let display = cx.task_display(op);
    failure::set_current_task(&display);
    let uid = cx.plan.operators[op].uid.clone();
    let ctx = SinkContext {
        subtask: cx.worker,
        parallelism: cx.peers,
        attempt: cx.attempt_number,
        job_id: cx.attempt.job_id.clone(),
        operator_uid: uid,
        task_info: cx.task_info(op),
        first_checkpoint: cx.start_epoch,
        restored_checkpoint: cx.restore.map(|s| s.metadata.checkpoint_id),
    };
    let mut o = TwoPhaseSink::<T, S> {
        queue: Arc::new(CommitQueue {
            sink: Arc::clone(sink),
            task: display,
            pending: Mutex::new(BTreeMap::new()),
            _t: std::marker::PhantomData,
        }),
        writer: None,
        ctx,
        max_parallelism: cx.plan.max_parallelism,
        savepoints: cx.savepoints.to_vec(),
    };
    super::restore(cx, op, &mut o)?;
    o.writer = Some(sink.create_writer(&o.ctx)?);
    let probe = cx.probe.clone();
    build_aligned(cx, op, input, Pipeline, o).probe_with(&probe);
    Ok(())
}
