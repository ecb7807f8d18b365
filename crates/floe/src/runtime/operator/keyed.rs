//! The keyed operator: records arrive partitioned by key group, are applied in epoch
//! order by the [`aligned`](super::aligned) driver, and the keys that changed since the
//! previous snapshot are handed to the snapshot writer at each checkpoint's cut.

use super::aligned::{build_aligned, Aligned};
use super::{Checkpointed, SnapshotState};
use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext, TaskInfo};
use crate::checkpoint::metadata::{LoadedSnapshot, OperatorKind};
use crate::checkpoint::restore::{OperatorRestore, RestoreView, StateCheck};
use crate::runtime::attempt::AttemptControl;
use crate::runtime::failure;
use crate::runtime::plan::{BuildCx, Plan};
use crate::runtime::Time;
use crate::state::keygroup::{
    key_group_for_hash, key_group_range_for_subtask, subtask_for_key_group, KeyEncoder,
    KeyGroupRange,
};
use crate::state::KeyedContext;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
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

/// The per-record logic of a keyed operator.
pub(crate) trait KeyedLogic<K: Key, T, U>: Clone + Send + Sync + 'static {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()>;
    fn process(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
    ) -> Result<()>;

    /// Processes a batch; stops early (without error) once the attempt is aborted.
    fn process_batch(
        &mut self,
        batch: &mut Vec<KeyedRecord<K, T>>,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
        control: &AttemptControl,
    ) -> Result<()> {
        for r in batch.drain(..) {
            // Stop promptly when another task failed: a slow function must not hold up the
            // teardown for the rest of its batch.
            if control.aborted() {
                return Ok(());
            }
            ctx.set_current(r.hash, r.key);
            self.process(r.value, ctx, out)?;
        }
        Ok(())
    }
}

pub(crate) use crate::state::file::OPERATOR_ENTRY_KEY;

/// Loads the key groups `key_groups` from every state file of the operator into `ctx`;
/// operator entries ([`OPERATOR_ENTRY_KEY`]) go to `operator_entry` instead.
pub(crate) fn restore_keyed<K: Key>(
    ctx: &mut KeyedContext<K>,
    from: Option<OperatorRestore<'_>>,
    key_groups: KeyGroupRange,
    uid: &str,
    mut operator_entry: impl FnMut(&[String], &[Option<Vec<u8>>]) -> Result<()>,
) -> Result<()> {
    let Some(from) = from else {
        return Ok(());
    };
    for file in from.keyed_files(key_groups) {
        let mut file = file?;
        let names = file.reader.header.state_names.clone();
        for e in &file.blocks {
            for (key, values) in file.reader.read_block(e)? {
                let restored = if key == OPERATOR_ENTRY_KEY {
                    operator_entry(&names, &values)
                } else {
                    ctx.restore_entry(&names, &key, &values)
                };
                restored.map_err(|err| {
                    crate::state::IncompatibleState(format!(
                        "cannot restore operator '{uid}' from {}: {err}",
                        file.path.display()
                    ))
                })?;
            }
        }
    }
    Ok(())
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

/// One subtask of a keyed operator: its logic and its key groups' state.
struct KeyedOperator<K: Key, T, U, L> {
    logic: L,
    ctx: KeyedContext<K>,
    key_groups: KeyGroupRange,
    uid: String,
    _io: PhantomData<fn(T) -> U>,
}

impl<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>> Checkpointed for KeyedOperator<K, T, U, L> {
    const KIND: OperatorKind = OperatorKind::Keyed;

    /// Loads the key groups this subtask owns from every state file of the operator.
    fn restore(&mut self, from: Option<OperatorRestore<'_>>) -> Result<()> {
        restore_keyed(&mut self.ctx, from, self.key_groups, &self.uid, |_, _| {
            Ok(())
        })
    }

    fn snapshot(&mut self, _first: u64) -> Result<Option<SnapshotState>> {
        let delta = self.ctx.take_delta()?;
        Ok(Some(SnapshotState::KeyedDelta {
            names: self.ctx.registry.names(),
            delta,
        }))
    }
}

impl<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>> Aligned for KeyedOperator<K, T, U, L> {
    type In = KeyedRecord<K, T>;
    type Out = U;

    #[inline]
    fn process(
        &mut self,
        batch: &mut Vec<KeyedRecord<K, T>>,
        out: &mut Collector<U>,
        control: &AttemptControl,
    ) -> Result<()> {
        self.logic.process_batch(batch, &mut self.ctx, out, control)
    }
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
    let decl = &cx.plan.operators[op];
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
    let mut keyed = KeyedOperator {
        logic,
        ctx,
        key_groups: key_group_range_for_subtask(max_p, decl.parallelism, cx.worker),
        uid: decl.uid.clone(),
        _io: PhantomData,
    };
    super::restore(cx, op, &mut keyed)?;
    let pact = Exchange::new(move |r: &KeyedRecord<K, T>| {
        subtask_for_key_group(key_group_for_hash(r.hash, max_p), max_p, peers) as u64
    });
    Ok(build_aligned(cx, op, input, pact, keyed))
}

/// Decodes every entry of operator `op`'s snapshot state into the job's state types
/// (registered by the operator's `open()`), reporting per state instead of failing.
pub(crate) fn check_keyed<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>>(
    plan: &Plan,
    op: usize,
    snap: &LoadedSnapshot,
    mut logic: L,
) -> Result<Vec<StateCheck>> {
    check_keyed_with::<K>(plan, op, snap, |rc| logic.open(rc))
}

/// [`check_keyed`] for any keyed operator: `open` registers its states.
pub(crate) fn check_keyed_with<K: Key>(
    plan: &Plan,
    op: usize,
    snap: &LoadedSnapshot,
    open: impl FnOnce(&mut RuntimeContext<'_>) -> Result<()>,
) -> Result<Vec<StateCheck>> {
    let decl = &plan.operators[op];
    let view = RestoreView::new(snap, plan.max_parallelism);
    let Some(from) = view.operator_if(&decl.uid, OperatorKind::Keyed) else {
        return Ok(Vec::new());
    };
    let mut ctx = KeyedContext::<K>::new(plan.max_parallelism);
    let info = TaskInfo {
        task_name: decl.name.clone(),
        subtask_index: 0,
        parallelism: decl.parallelism,
        attempt_number: 0,
        max_parallelism: plan.max_parallelism,
    };
    open(&mut RuntimeContext {
        info: &info,
        registry: Some(&mut ctx.registry),
    })?;
    let all = KeyGroupRange {
        start: 0,
        end: u32::MAX,
    };
    let mut tally = BTreeMap::new();
    for file in from.keyed_files(all) {
        let mut file = file?;
        let names = file.reader.header.state_names.clone();
        for e in &file.blocks {
            for (key, values) in file.reader.read_block(e)? {
                if key == OPERATOR_ENTRY_KEY {
                    continue;
                }
                ctx.check_entry(&names, &key, &values, &mut tally);
            }
        }
    }
    Ok(tally
        .into_iter()
        .map(|(state, (entries, registered, error))| StateCheck {
            uid: decl.uid.clone(),
            state,
            entries,
            registered,
            error,
        })
        .collect())
}
