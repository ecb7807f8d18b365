//! The nodes of a job graph: what the API records for each operator, and how a worker
//! builds it on timely. The API only declares ([`crate::api::stream`]); everything that
//! touches the dataflow is here and in the operator modules.

use super::event::{records, replicate_marks, Ev};
use super::operator::keyed::{build_keyed, check_keyed, key_records, KeyedLogic, KeyedRecord};
use super::operator::source::build_source;
use super::operator::timed::{build_timed_keyed, check_timed_keyed, TimedLogic};
use super::operator::two_phase_sink::build_committing_sink;
use super::operators::{build_filter, build_sink, build_stateless, BatchFn};
use super::plan::{node_key, BuildCx, Node, Plan, StateCheck, Terminal};
use super::watermarks::{build_assigner, Assign};
use super::Time;
use crate::api::data::{Data, Key, Str};
use crate::api::functions::RuntimeContext;
use crate::api::time::{TimestampAssigner, WatermarkGenerator, WatermarkStrategy};
use crate::checkpoint::metadata::LoadedSnapshot;
use crate::connectors::{
    Sink, Source, SourceContext, SourceReader, SourceStatus, TwoPhaseCommitSink,
};
use crate::state::keygroup::KeyEncoder;
use crate::Result;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
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
    fn without_reader(&self) -> Vec<U> {
        let mut input = self.inner.without_reader();
        let mut f = (self.make)();
        let mut out = Vec::new();
        // Only marks come from a source without a reader; a chained function passes them.
        if f.apply(&mut input, &mut out).is_err() {
            out.clear();
        }
        f.end(&mut out);
        out
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
        if status == SourceStatus::Finished {
            self.f.end(out);
        }
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

/// An event-time stream of `T`: a node of [`Ev`] elements seen as a stream of `T`.
pub(crate) struct TimedView<T>(pub Arc<dyn Node<Ev<T>>>);

impl<T: Data> Node<T> for TimedView<T> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, T>> {
        Ok(records(self.0.build(cx)?))
    }
    fn build_timed<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<T>>> {
        self.0.build(cx)
    }
    fn timed(&self) -> bool {
        true
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.0.check(plan, snap, out)
    }
}

/// A stream's event-time elements as a node of their own (the input of a timed operator).
pub(crate) struct AsEv<T>(pub Arc<dyn Node<T>>);

impl<T: Data> Node<Ev<T>> for AsEv<T> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<T>>> {
        self.0.build_timed(cx)
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.0.check(plan, snap, out)
    }
}

/// A node built once per worker however many consumers read it: an operator's output that
/// its main stream and its side outputs share.
pub(crate) struct Shared<T>(pub Arc<dyn Node<Ev<T>>>);

impl<T: Data> Node<Ev<T>> for Shared<T> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<T>>> {
        let key = node_key(self);
        if let Some(s) = cx.built.get::<Ev<T>>(key) {
            return Ok(s);
        }
        let s = self.0.build(cx)?;
        cx.built.put(key, &s);
        Ok(s)
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        // Checked once, through the main output (side outputs add nothing).
        self.0.check(plan, snap, out)
    }
}

/// The side output `tag` of an operator: its side records, decoded, with the operator's
/// watermarks.
pub(crate) struct SideOutputNode<U, V> {
    /// The operator's output (a [`Shared`] node, also read by its main stream).
    pub up: Arc<dyn Node<Ev<U>>>,
    pub op: usize,
    pub tag: Str,
    pub _v: std::marker::PhantomData<fn() -> V>,
}

impl<U: Data, V: Data> Node<Ev<V>> for SideOutputNode<U, V> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<V>>> {
        let input = self.up.build(cx)?;
        let tag = self.tag.clone();
        let display = cx.task_display(self.op);
        let attempt = Arc::clone(cx.attempt);
        Ok(input.unary(Pipeline, "Side Output", move |_, _| {
            let mut out = Vec::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    for e in data.drain(..) {
                        match e {
                            Ev::Side(s) if s.tag == tag => match bincode::deserialize::<V>(&s.bytes) {
                                Ok(v) => out.push(Ev::Rec(s.ts, v)),
                                Err(e) => attempt.control.fail(
                                    &display,
                                    format!(
                                        "side output '{tag}' holds records of another type than {} (two output tags share the name?): {e}",
                                        std::any::type_name::<V>()
                                    ),
                                    crate::runtime::attempt::FailureCause::User,
                                ),
                            },
                            Ev::Mark(m) => out.push(Ev::Mark(m)),
                            Ev::Rec(..) | Ev::Side(_) => {}
                        }
                    }
                    if !out.is_empty() {
                        output.session(&cap).give_container(&mut out);
                        out.clear();
                    }
                });
            }
        }))
    }
    fn check(
        &self,
        _plan: &Plan,
        _snap: &LoadedSnapshot,
        _out: &mut Vec<StateCheck>,
    ) -> Result<()> {
        // The operator is checked through its main output.
        Ok(())
    }
}

/// Keys an event-time stream: records get their key and its hash, marks are replicated to
/// every subtask of the keyed operator as channel `input * peers + worker`.
pub(crate) struct TimedKeyByNode<T, F> {
    pub up: Arc<dyn Node<T>>,
    pub f: F,
    /// Which input of the keyed operator this is (0, or 1 for the second connected stream).
    pub input: u32,
}

impl<K: Key, T: Data, F: Fn(&T) -> K + Clone + Send + Sync + 'static> Node<Ev<KeyedRecord<K, T>>>
    for TimedKeyByNode<T, F>
{
    fn build<'s>(
        &self,
        cx: &mut BuildCx<'s, '_>,
    ) -> Result<StreamVec<'s, Time, Ev<KeyedRecord<K, T>>>> {
        let input = self.up.build_timed(cx)?;
        let f = self.f.clone();
        let channel = self.input * cx.peers + cx.worker;
        let peers = cx.peers;
        Ok(input.unary(Pipeline, "Key By", move |_, _| {
            let mut enc = KeyEncoder::default();
            let mut keyed = Vec::new();
            let mut out = Vec::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    for e in data.drain(..) {
                        keyed.push(match e {
                            Ev::Rec(ts, value) => {
                                let key = f(&value);
                                let hash = enc.hash(&key);
                                Ev::Rec(ts, KeyedRecord { hash, key, value })
                            }
                            Ev::Mark(m) => Ev::Mark(m),
                            Ev::Side(s) => Ev::Side(s),
                        });
                    }
                    replicate_marks(&mut keyed, &mut out, channel, peers);
                    if !out.is_empty() {
                        output.session(&cap).give_container(&mut out);
                        out.clear();
                    }
                });
            }
        }))
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

/// `assign_timestamps_and_watermarks` after an operator (not chained into a source).
pub(crate) struct AssignNode<T, G, A> {
    pub up: Arc<dyn Node<T>>,
    pub op: usize,
    pub strategy: WatermarkStrategy<G, A>,
    pub interval: std::time::Duration,
}

impl<T: Data, G: WatermarkGenerator, A: TimestampAssigner<T>> Node<Ev<T>> for AssignNode<T, G, A> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<T>>> {
        let input = self.up.build_timed(cx)?;
        Ok(build_assigner(
            cx,
            self.op,
            input,
            Assign::new(&self.strategy, self.interval),
        ))
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)
    }
}

/// A timed keyed operator (process functions, windows, joins) running `logic`.
pub(crate) struct TimedKeyedNode<K, T, L> {
    pub up: Arc<dyn Node<KeyedRecord<K, T>>>,
    pub op: usize,
    pub logic: L,
    /// Logical inputs whose watermarks combine (2 for connected streams).
    pub inputs: u32,
}

impl<K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>> Node<Ev<U>> for TimedKeyedNode<K, T, L> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<U>>> {
        let input = self.up.build_timed(cx)?;
        build_timed_keyed(cx, self.op, input, self.inputs, self.logic.clone())
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.up.check(plan, snap, out)?;
        out.extend(check_timed_keyed::<K, T, U, L>(
            plan,
            self.op,
            snap,
            self.logic.clone(),
        )?);
        Ok(())
    }
}
