//! The nodes of a job graph: what the API records for each operator, and how a worker
//! builds it on timely. The API only declares ([`crate::api::stream`]); everything that
//! touches the dataflow is here and in the operator modules.

use super::operator::keyed::{build_keyed, check_keyed, key_records, KeyedLogic, KeyedRecord};
use super::operator::source::build_source;
use super::operator::two_phase_sink::build_committing_sink;
use super::operators::{build_filter, build_sink, build_stateless, BatchFn};
use super::plan::{BuildCx, Node, Plan, StateCheck, Terminal};
use super::Time;
use crate::api::data::{Data, Key};
use crate::api::functions::RuntimeContext;
use crate::checkpoint::metadata::LoadedSnapshot;
use crate::connectors::{
    Sink, Source, SourceContext, SourceReader, SourceStatus, TwoPhaseCommitSink,
};
use crate::state::keygroup::KeyEncoder;
use crate::Result;
use std::sync::Arc;
use timely::dataflow::StreamVec;

pub(crate) struct SourceNode<T> {
    pub op: usize,
    pub source: Arc<dyn Source<T>>,
}

impl<T: Data> Node<T> for SourceNode<T> {
    fn check(
        &self,
        _plan: &Plan,
        _snap: &LoadedSnapshot,
        _out: &mut Vec<StateCheck>,
    ) -> Result<()> {
        Ok(())
    }

    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, T>> {
        build_source(cx, self.op, &self.source)
    }
}

/// A source whose batches pass through a chained stateless function before they enter
/// the dataflow: one loop over each batch, no channel between the operators.
pub(crate) struct ChainedSource<T, M> {
    pub inner: Arc<dyn Source<T>>,
    pub make: M,
}

impl<T: Data, U: Data, B, M> Source<U> for ChainedSource<T, M>
where
    B: BatchFn<T, U>,
    M: Fn() -> B + Send + Sync + 'static,
{
    fn name(&self) -> String {
        self.inner.name()
    }
    fn max_parallelism(&self) -> Option<u32> {
        self.inner.max_parallelism()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<U>>> {
        let info = ctx.task_info.clone();
        let inner = self.inner.create(ctx)?;
        let mut f = (self.make)();
        f.open(&mut RuntimeContext {
            info: &info,
            registry: None,
        })?;
        Ok(Box::new(ChainedReader {
            inner,
            f,
            buf: Vec::new(),
        }))
    }
}

struct ChainedReader<T, B> {
    inner: Box<dyn SourceReader<T>>,
    f: B,
    buf: Vec<T>,
}

impl<T, U, B: BatchFn<T, U>> SourceReader<U> for ChainedReader<T, B> {
    fn poll_next(&mut self, out: &mut Vec<U>, max: usize) -> Result<SourceStatus> {
        let status = self.inner.poll_next(&mut self.buf, max)?;
        self.f.apply(&mut self.buf, out)?;
        self.buf.clear();
        Ok(status)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.inner.snapshot()
    }
}

/// A filter chained into a source.
pub(crate) struct FilterBatch<F>(pub F);
impl<T: 'static, F: FnMut(&T) -> bool + 'static> BatchFn<T, T> for FilterBatch<F> {
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<T>) -> Result<()> {
        input.retain(&mut self.0);
        out.append(input);
        Ok(())
    }
}

/// Computes each record's key and its stable hash before the exchange.
pub(crate) struct KeyByBatch<F> {
    pub f: F,
    pub enc: KeyEncoder,
}
impl<K: Key, T: 'static, F: Fn(&T) -> K + 'static> BatchFn<T, KeyedRecord<K, T>> for KeyByBatch<F> {
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<KeyedRecord<K, T>>) -> Result<()> {
        out.reserve(input.len());
        for value in input.drain(..) {
            let key = (self.f)(&value);
            let hash = self.enc.hash(&key);
            out.push(KeyedRecord { hash, key, value });
        }
        Ok(())
    }
}

pub(crate) struct StatelessNode<T, M> {
    pub up: Arc<dyn Node<T>>,
    pub op: usize,
    pub make: M,
}

impl<T: Data, U: Data, B, M> Node<U> for StatelessNode<T, M>
where
    B: BatchFn<T, U>,
    M: Fn() -> B + Send + Sync,
{
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, U>> {
        let input = self.up.build(cx)?;
        build_stateless(cx, self.op, input, (self.make)())
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

pub(crate) struct FilterNode<T, F> {
    pub up: Arc<dyn Node<T>>,
    pub op: usize,
    pub f: F,
}

impl<T: Data, F: FnMut(&T) -> bool + Clone + Send + Sync + 'static> Node<T> for FilterNode<T, F> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, T>> {
        let input = self.up.build(cx)?;
        Ok(build_filter(cx, self.op, input, self.f.clone()))
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

pub(crate) struct KeyByNode<T, F> {
    pub up: Arc<dyn Node<T>>,
    pub f: F,
}

impl<K: Key, T: Data, F: Fn(&T) -> K + Clone + Send + Sync + 'static> Node<KeyedRecord<K, T>>
    for KeyByNode<T, F>
{
    fn build<'s>(
        &self,
        cx: &mut BuildCx<'s, '_>,
    ) -> Result<StreamVec<'s, Time, KeyedRecord<K, T>>> {
        let input = self.up.build(cx)?;
        Ok(key_records(input, self.f.clone(), "Key By"))
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

pub(crate) struct KeyedNode<K, T, L> {
    pub up: Arc<dyn Node<KeyedRecord<K, T>>>,
    pub op: usize,
    pub logic: L,
}

impl<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>> Node<U> for KeyedNode<K, T, L> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, U>> {
        let input = self.up.build(cx)?;
        build_keyed(cx, self.op, input, self.logic.clone())
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)?;
        out.extend(check_keyed::<K, T, U, L>(
            plan,
            self.op,
            snap,
            self.logic.clone(),
        )?);
        Ok(())
    }
}

pub(crate) struct CommittingSinkTerminal<T, S> {
    pub up: Arc<dyn Node<T>>,
    pub op: usize,
    pub sink: Arc<S>,
}

impl<T: Data, S: TwoPhaseCommitSink<T>> Terminal for CommittingSinkTerminal<T, S> {
    fn build(&self, cx: &mut BuildCx<'_, '_>) -> Result<()> {
        let input = self.up.build(cx)?;
        build_committing_sink(cx, self.op, input, &self.sink)
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

pub(crate) struct SinkTerminal<T> {
    pub up: Arc<dyn Node<T>>,
    pub op: usize,
    pub sink: Arc<dyn Sink<T>>,
}

impl<T: Data> Terminal for SinkTerminal<T> {
    fn build(&self, cx: &mut BuildCx<'_, '_>) -> Result<()> {
        let input = self.up.build(cx)?;
        build_sink(cx, self.op, input, &self.sink)
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}
