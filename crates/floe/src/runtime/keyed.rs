//! The keyed operator: records arrive partitioned by key group, are applied in epoch
//! order, and the operator's keyed state is snapshotted exactly at each checkpoint's cut.
//!
//! Alignment is done by the frontier. A record of epoch `e` may be applied once the input
//! frontier has reached `e` (all earlier epochs are complete); records of later epochs are
//! held back with their capabilities. When the frontier passes epoch `n`, every record of
//! every epoch `<= n` has been applied and none later: that is checkpoint `n`'s cut, and
//! the keys that changed since the previous snapshot are copied to the snapshot writer.

use super::align::{frontier_epoch, Aligner};
use super::executor::ExecShared;
use super::failure;
use super::plan::BuildCx;
use super::snapshot::SnapshotJob;
use super::{epoch_of, Time};
use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext};
use crate::checkpoint::metadata::{OperatorKind, StateHandle, TaskId};
use crate::state::file::StateFileReader;
use crate::state::keygroup::{key_group_range_for_subtask, subtask_for_key_group, KeyEncoder};
use crate::state::KeyedContext;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// A record on its way to the subtask that owns its key group. The key's stable hash is
/// computed once, before the exchange, and reused for routing and the state lookup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyedRecord<K, T> {
    /// Stable hash of the key's canonical bytes.
    pub hash: u64,
    /// The key.
    pub key: K,
    /// The record.
    pub value: T,
}

/// Batches of a later epoch held back until the frontier reaches it, with their capabilities.
type HeldBatch<K, T> = (Capability<Time>, Vec<KeyedRecord<K, T>>);

/// The per-record logic of a keyed operator.
pub(crate) trait KeyedLogic<K: Key, T, U>: Clone + Send + Sync + 'static {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()>;
    fn process(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
    ) -> Result<()>;

    /// Processes a batch; stops early (without error) once `aborted()` is true.
    fn process_batch(
        &mut self,
        batch: &mut Vec<KeyedRecord<K, T>>,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
        aborted: &dyn Fn() -> bool,
    ) -> Result<()> {
        for r in batch.drain(..) {
            // Stop promptly when another task failed: a slow function must not hold up the
            // teardown for the rest of its batch.
            if aborted() {
                return Ok(());
            }
            ctx.set_current(r.hash, r.key);
            self.process(r.value, ctx, out)?;
        }
        Ok(())
    }
}

/// Adds the key to each record, computing its stable hash (chained after the upstream).
pub(crate) fn key_records<'s, K: Key, T: Data, KF>(
    input: StreamVec<'s, Time, T>,
    key_fn: KF,
    name: &str,
) -> StreamVec<'s, Time, KeyedRecord<K, T>>
where
    KF: Fn(&T) -> K + Clone + Send + Sync + 'static,
{
    input.unary(Pipeline, name, move |_, _| {
        let mut enc = KeyEncoder::default();
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                for value in data.drain(..) {
                    let key = key_fn(&value);
                    let hash = enc.hash(&key);
                    session.give(KeyedRecord { hash, key, value });
                }
            });
        }
    })
}

/// Instantiates a keyed operator with `logic` on this worker.
pub(crate) fn build_keyed<'s, K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>>(
    cx: &mut BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, KeyedRecord<K, T>>,
    mut logic: L,
) -> Result<StreamVec<'s, Time, U>> {
    let max_p = cx.plan.max_parallelism;
    let peers = cx.peers;
    let uid = cx.plan.operators[op].uid.clone();
    let task = TaskId {
        uid: uid.clone(),
        subtask: cx.worker,
    };
    let display = cx.task_display(op);
    let info = cx.task_info(op);
    let mut ctx = KeyedContext::<K>::new(max_p);
    {
        let mut rc = RuntimeContext {
            info: &info,
            registry: Some(&mut ctx.registry),
        };
        failure::set_current_task(&display);
        logic
            .open(&mut rc)
            .map_err(|e| e.context(format!("open() of {display} failed")))?;
    }
    restore_keyed(cx, op, &mut ctx)?;
    let shared: Arc<ExecShared> = Arc::clone(cx.shared);
    let start_epoch = cx.start_epoch;
    let name = cx.plan.operators[op].name.clone();
    let pact = Exchange::new(move |r: &KeyedRecord<K, T>| {
        subtask_for_key_group(
            crate::state::keygroup::key_group_for_hash(r.hash, max_p),
            max_p,
            peers,
        ) as u64
    });
    Ok(input.unary_frontier(pact, &name, move |_cap, _info| {
        let mut align: Aligner<HeldBatch<K, T>> = Aligner::new(start_epoch);
        let mut out = Collector::default();
        let mut failed = false;
        let shared_abort = Arc::clone(&shared);
        move |(input, frontier), output| {
            if failed || shared.aborted() {
                failed = true;
                input.for_each(|_, d| d.clear());
                return;
            }
            failure::set_current_task(&display);
            let reached = frontier_epoch(&frontier.frontier());
            let mut apply =
                |batch: &mut Vec<KeyedRecord<K, T>>,
                 cap: &Capability<Time>,
                 ctx: &mut KeyedContext<K>,
                 output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
                    '_,
                    Time,
                    timely::container::CapacityContainerBuilder<Vec<U>>,
                >|
                 -> Result<()> {
                    logic.process_batch(batch, ctx, &mut out, &|| shared_abort.aborted())?;
                    if !out.buf.is_empty() {
                        output.session(cap).give_container(&mut out.buf);
                        out.buf.clear();
                    }
                    Ok(())
                };
            let mut result: Result<()> = Ok(());
            // Cross every epoch boundary the frontier passed, snapshotting at each cut.
            while let Some((lo, hi, batches)) = align.next_cut(reached) {
                result = snapshot(&shared, &task, &mut ctx, lo, hi);
                for (cap, mut data) in batches {
                    if result.is_ok() {
                        result = apply(&mut data, &cap, &mut ctx, output);
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
                // Messages without a time make no progress claim; timely never sends them here.
                let Some(c) = cap.retain_least(output.output_index()) else {
                    data.clear();
                    return;
                };
                let e = epoch_of(*c.time());
                if align.ready(e) {
                    result = apply(data, &c, &mut ctx, output);
                } else {
                    align.hold(e, (c, std::mem::take(data)));
                }
            });
            if let Err(e) = result {
                failed = true;
                align.clear();
                shared.fail(&display, format!("{e:#}"));
            }
        }
    }))
}

/// Hands the keys changed since the last snapshot to the writer for every pending
/// checkpoint whose cut is here (`lo..=hi`).
fn snapshot<K: Key>(
    shared: &ExecShared,
    task: &TaskId,
    ctx: &mut KeyedContext<K>,
    lo: u64,
    hi: u64,
) -> Result<()> {
    let hi = hi.min(shared.triggered());
    let targets = shared.pending_in(lo, hi);
    if targets.is_empty() {
        return Ok(());
    }
    let delta = ctx.take_delta()?;
    shared.snapshot(SnapshotJob {
        task: task.clone(),
        names: ctx.registry.names(),
        delta,
        targets,
    });
    Ok(())
}

/// Loads the key groups this subtask owns from every state file of the operator.
fn restore_keyed<K: Key>(cx: &BuildCx<'_, '_>, op: usize, ctx: &mut KeyedContext<K>) -> Result<()> {
    let Some(snap) = cx.restore else {
        return Ok(());
    };
    let decl = &cx.plan.operators[op];
    let Some(os) = snap.metadata.operator(&decl.uid) else {
        return Ok(());
    };
    if os.kind != OperatorKind::Keyed {
        crate::bail!(
            "state of operator '{}' in {} is not keyed state",
            decl.uid,
            snap.dir.display()
        );
    }
    if os.max_parallelism != cx.plan.max_parallelism {
        crate::bail!(
            "cannot restore operator '{}' from {}: it was checkpointed with max parallelism {}, the job has {}",
            decl.uid,
            snap.dir.display(),
            os.max_parallelism,
            cx.plan.max_parallelism
        );
    }
    let range = key_group_range_for_subtask(cx.plan.max_parallelism, decl.parallelism, cx.worker);
    for st in &os.subtasks {
        let StateHandle::KeyedFile { file, .. } = &st.handle else {
            continue;
        };
        let path = snap.file_path(file);
        let mut reader = StateFileReader::open(&path)?;
        let names = reader.header.state_names.clone();
        let index: Vec<_> = reader
            .index
            .iter()
            .filter(|e| range.contains(e.key_group))
            .cloned()
            .collect();
        for e in index {
            for (key, values) in reader.read_block(&e)? {
                ctx.restore_entry(&names, &key, &values).map_err(|err| {
                    crate::state::IncompatibleState(format!(
                        "cannot restore operator '{}' from {}: {err}",
                        decl.uid,
                        path.display()
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// Decodes every entry of operator `op`'s snapshot state into the job's state types
/// (registered by the operator's `open()`), reporting per state instead of failing.
pub(crate) fn check_keyed<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>>(
    plan: &crate::runtime::plan::Plan,
    op: usize,
    snap: &crate::checkpoint::metadata::LoadedSnapshot,
    mut logic: L,
) -> Result<Vec<crate::runtime::plan::StateCheck>> {
    let decl = &plan.operators[op];
    let Some(os) = snap.metadata.operator(&decl.uid) else {
        return Ok(Vec::new());
    };
    if os.kind != OperatorKind::Keyed {
        return Ok(Vec::new());
    }
    let mut ctx = KeyedContext::<K>::new(plan.max_parallelism);
    let info = crate::api::functions::TaskInfo {
        task_name: decl.name.clone(),
        subtask_index: 0,
        parallelism: decl.parallelism,
        attempt_number: 0,
        max_parallelism: plan.max_parallelism,
    };
    logic.open(&mut RuntimeContext {
        info: &info,
        registry: Some(&mut ctx.registry),
    })?;
    let mut tally = BTreeMap::new();
    for st in &os.subtasks {
        let StateHandle::KeyedFile { file, .. } = &st.handle else {
            continue;
        };
        let mut reader = StateFileReader::open(&snap.file_path(file))?;
        let names = reader.header.state_names.clone();
        for e in reader.index.clone() {
            for (key, values) in reader.read_block(&e)? {
                ctx.check_entry(&names, &key, &values, &mut tally);
            }
        }
    }
    Ok(tally
        .into_iter()
        .map(
            |(state, (entries, registered, error))| crate::runtime::plan::StateCheck {
                uid: decl.uid.clone(),
                state,
                entries,
                registered,
                error,
            },
        )
        .collect())
}
