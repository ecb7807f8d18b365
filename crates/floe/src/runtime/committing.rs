//! The operator of a [`TwoPhaseCommitSink`]: stages records, turns them into committables
//! exactly at each checkpoint's cut, stores them in the checkpoint, and commits them when
//! the job manager reports the checkpoint complete.
//!
//! Alignment works as in the keyed operator: a record of epoch `e` is written once the
//! input frontier has reached `e`; later epochs are held back. When the frontier passes
//! epoch `n`, every record of checkpoint `n` has been written and none after it, so
//! `prepare_commit` there yields exactly checkpoint `n`'s output. The checkpoint stores
//! every committable not yet committed (older checkpoints may have been aborted), so a
//! restore from any completed checkpoint finds all of its output.
//!
//! Commits run on the executor's control thread when `CheckpointComplete` arrives — never
//! before the checkpoint that names them is durable — holding the queue's lock, so a cut
//! taken meanwhile sees each committable either still pending or committed.

use super::align::{frontier_epoch, Aligner};
use super::executor::ExecShared;
use super::failure;
use super::plan::BuildCx;
use super::{epoch_of, Time};
use crate::api::data::Data;
use crate::checkpoint::metadata::{
    load_snapshot, LoadedSnapshot, OperatorKind, StateHandle, TaskId,
};
use crate::connectors::{PreCommitWriter, SinkContext, TwoPhaseCommitSink};
use crate::runtime::protocol::FromExecutor;
use crate::sync::LockExt;
use crate::Result;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::StreamVec;

/// Something to commit when a checkpoint completes (Flink's `notifyCheckpointComplete`).
pub(crate) trait CommitOnComplete: Send + Sync {
    /// Checkpoint `id` completed: commit everything staged for checkpoints `<= id`.
    fn commit_upto(&self, id: u64) -> Result<()>;
    /// The task, as Flink names it, for failures.
    fn task(&self) -> &str;
}

/// One sink subtask's committables, by the first checkpoint that holds them.
struct CommitQueue<T, S: TwoPhaseCommitSink<T>> {
    sink: Arc<S>,
    task: String,
    pending: Mutex<BTreeMap<u64, Vec<S::Committable>>>,
    _t: std::marker::PhantomData<fn(&T)>,
}

impl<T: 'static, S: TwoPhaseCommitSink<T>> CommitOnComplete for CommitQueue<T, S> {
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

/// Every subtask's committables of sink operator `op` in `snap`, in subtask order.
fn committables_in<C: serde::de::DeserializeOwned>(
    cx: &BuildCx<'_, '_>,
    op: usize,
    snap: &LoadedSnapshot,
) -> Result<Vec<(u32, Vec<C>)>> {
    let decl = &cx.plan.operators[op];
    let Some(os) = snap.metadata.operator(&decl.uid) else {
        return Ok(Vec::new());
    };
    if os.kind != OperatorKind::Sink {
        crate::bail!(
            "state of operator '{}' in {} is not sink state",
            decl.uid,
            snap.dir.display()
        );
    }
    let mut out = Vec::with_capacity(os.subtasks.len());
    for st in &os.subtasks {
        let StateHandle::Inline { data } = &st.handle else {
            crate::bail!(
                "corrupt snapshot {}: sink '{}' subtask {} has no inline state",
                snap.dir.display(),
                decl.uid,
                st.subtask
            );
        };
        let c: Vec<C> = serde_json::from_slice(data).map_err(|e| {
            crate::anyhow!(
                "corrupt snapshot {}: pending output of sink '{}' subtask {} does not decode: {e}",
                snap.dir.display(),
                decl.uid,
                st.subtask
            )
        })?;
        out.push((st.subtask, c));
    }
    out.sort_by_key(|(s, _)| *s);
    Ok(out)
}

/// What recovery must keep besides the restored checkpoint's output: the output named by
/// this job's savepoints, which the user may still restore. A savepoint that is gone
/// (disposed) protects nothing any more.
fn savepoint_committables<C: serde::de::DeserializeOwned>(
    cx: &BuildCx<'_, '_>,
    op: usize,
) -> Vec<C> {
    let mut keep = Vec::new();
    for dir in cx.savepoints {
        let found = load_snapshot(dir).and_then(|s| committables_in::<C>(cx, op, &s));
        match found {
            Ok(c) => keep.extend(c.into_iter().flat_map(|(_, c)| c)),
            Err(e) => tracing::debug!("Savepoint {} protects no output: {e:#}", dir.display()),
        }
    }
    keep
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
    let task = TaskId {
        uid: uid.clone(),
        subtask: cx.worker,
    };
    let ctx = SinkContext {
        subtask: cx.worker,
        parallelism: cx.peers,
        attempt: cx.attempt,
        job_id: cx.shared.job_id().to_string(),
        operator_uid: uid.clone(),
        task_info: cx.task_info(op),
    };
    // The restored snapshot is complete: its committables are committed (again) by the
    // subtask that inherits them. After a failover, one subtask discards what this job's
    // earlier attempts staged that no snapshot the job or its user can restore names.
    let restored = match cx.restore {
        Some(snap) => committables_in::<S::Committable>(cx, op, snap)?,
        None => Vec::new(),
    };
    let mine: Vec<S::Committable> = restored
        .iter()
        .filter(|(s, _)| s % cx.peers == cx.worker)
        .flat_map(|(_, c)| c.iter().cloned())
        .collect();
    sink.commit(&mine)
        .context("committing the output of the restored snapshot failed")?;
    if cx.worker == 0 && cx.attempt > 0 {
        let mut keep: Vec<S::Committable> = restored.into_iter().flat_map(|(_, c)| c).collect();
        keep.extend(savepoint_committables::<S::Committable>(cx, op));
        sink.recover(&ctx, &keep)?;
    }
    let mut writer = sink.create_writer(&ctx)?;
    let queue = Arc::new(CommitQueue::<T, S> {
        sink: Arc::clone(sink),
        task: display.clone(),
        pending: Mutex::new(BTreeMap::new()),
        _t: std::marker::PhantomData,
    });
    cx.shared.add_committer(queue.clone());
    let shared: Arc<ExecShared> = Arc::clone(cx.shared);
    let start_epoch = cx.start_epoch;
    let name = cx.plan.operators[op].name.clone();
    let probe = cx.probe.clone();
    input
        .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            &name,
            move |_cap, _info| {
                let mut align: Aligner<Vec<T>> = Aligner::new(start_epoch);
                let mut failed = false;
                let mut ended = false;
                move |(input, frontier), _output| {
                    if failed || shared.aborted() {
                        failed = true;
                        align.clear();
                        input.for_each(|_, d| d.clear());
                        return;
                    }
                    failure::set_current_task(&display);
                    let reached = frontier_epoch(&frontier.frontier());
                    let mut result: Result<()> = Ok(());
                    while let Some((lo, hi, batches)) = align.next_cut(reached) {
                        result = cut(&shared, &task, &mut writer, &queue, lo, hi);
                        for mut data in batches {
                            if result.is_ok() {
                                result = writer.write_batch(&mut data);
                            }
                        }
                        if result.is_err() {
                            break;
                        }
                    }
                    input.for_each(|cap, data| {
                        if result.is_err() {
                            data.clear();
                            return;
                        }
                        let Some(t) = cap.least() else {
                            data.clear();
                            return;
                        };
                        let e = epoch_of(*t);
                        if align.ready(e) {
                            result = writer.write_batch(data);
                        } else {
                            align.hold(e, std::mem::take(data));
                        }
                    });
                    if result.is_ok() && reached == u64::MAX && !ended {
                        // The input ended: no checkpoint follows. With checkpointing, the
                        // final checkpoint has committed everything already; without it, the
                        // output is committed now.
                        ended = true;
                        result = writer
                            .prepare_commit()
                            .and_then(|rest| queue.sink.commit(&rest))
                            .and_then(|_| queue.commit_upto(u64::MAX));
                    }
                    if let Err(e) = result {
                        failed = true;
                        align.clear();
                        shared.fail(&display, format!("{e:#}"));
                    }
                }
            },
        )
        .probe_with(&probe);
    Ok(())
}

/// Checkpoints `lo..=hi` that are pending have their cut here: stage the committables and
/// acknowledge with everything not yet committed.
fn cut<T: 'static, S: TwoPhaseCommitSink<T>>(
    shared: &ExecShared,
    task: &TaskId,
    writer: &mut S::Writer,
    queue: &CommitQueue<T, S>,
    lo: u64,
    hi: u64,
) -> Result<()> {
    let hi = hi.min(shared.triggered());
    let targets = shared.pending_in(lo, hi);
    let Some(&(first, _)) = targets.first() else {
        return Ok(());
    };
    let staged = writer.prepare_commit()?;
    let data = {
        let mut pending = queue.pending.lock_ok();
        if !staged.is_empty() {
            pending.entry(first).or_default().extend(staged);
        }
        let all: Vec<&S::Committable> = pending.values().flatten().collect();
        serde_json::to_vec(&all)?
    };
    for (id, _) in targets {
        shared.send(FromExecutor::Ack {
            attempt: shared.attempt,
            checkpoint_id: id,
            task: task.clone(),
            state: StateHandle::Inline { data: data.clone() },
        });
    }
    Ok(())
}
