//! Two-input operators: connected streams (keyed co-process functions, co-map and
//! co-flat-map) and the interval join (Flink's `KeyedCoProcessOperator`,
//! `CoStreamMap`/`CoStreamFlatMap` and `IntervalJoinOperator`).
//!
//! Both inputs become one stream of [`Either`] elements. A keyed two-input operator is a
//! timed keyed operator ([`super::timed`]) over that stream with two logical inputs: the
//! marks of input `i` are re-stamped with the channel `i * peers + worker` before the two
//! streams are concatenated, so the operator's watermark is the minimum over both inputs'
//! channels, as Flink's two-input operators combine theirs. Records of both inputs are
//! exchanged by the key's hash, so both sides of a key meet in one subtask.

use super::keyed::KeyedRecord;
use super::timed::{TimedCx, TimedLogic};
use super::timers::Timer;
use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext};
use crate::api::join::{
    JoinContext, KeyedCoProcessFunction, ProcessJoinFunction, INTERVAL_JOIN_NO_TIMESTAMP,
};
use crate::api::process::Context;
use crate::api::time::{OutputTag, MIN_WATERMARK, NO_TIMESTAMP};
use crate::checkpoint::metadata::LoadedSnapshot;
use crate::runtime::event::{records, Combined, Ev, Mark, SideRec, WatermarkTracker};
use crate::runtime::operators::{build_stateless, BatchFn};
use crate::runtime::plan::{BuildCx, Node, Plan, StateCheck};
use crate::runtime::Time;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

/// An element of one of two connected inputs (Flink's `TaggedUnion` of a window join).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Either<A, B> {
    /// From the first input.
    Left(A),
    /// From the second input.
    Right(B),
}

/// Maps the elements of one input into the connected stream: records through `f`, marks
/// re-stamped with `channel(from)`; side records are dropped (they never leave the
/// operator that emitted them).
fn tag_input<'s, X: Data, Y: Data>(
    input: StreamVec<'s, Time, Ev<X>>,
    name: &str,
    f: impl Fn(X) -> Y + 'static,
    channel: impl Fn(u32) -> u32 + 'static,
) -> StreamVec<'s, Time, Ev<Y>> {
    input.unary(Pipeline, name, move |_, _| {
        let mut out = Vec::new();
        move |input, output| {
            input.for_each(|cap, data| {
                out.reserve(data.len());
                for e in data.drain(..) {
                    match e {
                        Ev::Rec(ts, v) => out.push(Ev::Rec(ts, f(v))),
                        Ev::Mark(m) => out.push(Ev::Mark(Mark {
                            from: channel(m.from),
                            ..m
                        })),
                        Ev::Side(_) => {}
                    }
                }
                if !out.is_empty() {
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                }
            });
        }
    })
}

/// Two keyed streams as one keyed event-time stream of [`Either`] (the input of a keyed
/// two-input operator). Both sides were keyed as input 0 (channels `worker`); the second
/// side's marks move to channels `peers + worker`.
pub(crate) struct ConnectKeyedNode<K, A, B> {
    pub first: Arc<dyn Node<KeyedRecord<K, A>>>,
    pub second: Arc<dyn Node<KeyedRecord<K, B>>>,
}

impl<K: Key, A: Data, B: Data> Node<Ev<KeyedRecord<K, Either<A, B>>>>
    for ConnectKeyedNode<K, A, B>
{
    fn build<'s>(
        &self,
        cx: &mut BuildCx<'s, '_>,
    ) -> Result<StreamVec<'s, Time, Ev<KeyedRecord<K, Either<A, B>>>>> {
        let peers = cx.peers;
        let first = self.first.build_timed(cx)?;
        let second = self.second.build_timed(cx)?;
        let first = tag_input(
            first,
            "Connect",
            |r: KeyedRecord<K, A>| KeyedRecord {
                hash: r.hash,
                key: r.key,
                value: Either::Left(r.value),
            },
            move |from| from % peers,
        );
        let second = tag_input(
            second,
            "Connect",
            |r: KeyedRecord<K, B>| KeyedRecord {
                hash: r.hash,
                key: r.key,
                value: Either::Right(r.value),
            },
            move |from| peers + from % peers,
        );
        Ok(first.concat(second))
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.first.check(plan, snap, out)?;
        self.second.check(plan, snap, out)
    }
}

/// Two streams as one, for a non-keyed two-input operator: marks of input `i` arrive on
/// channel `i` (each input is one pipeline channel here).
struct ConnectNode<A, B> {
    first: Arc<dyn Node<A>>,
    second: Arc<dyn Node<B>>,
}

impl<A: Data, B: Data> ConnectNode<A, B> {
    fn build_timed<'s>(
        &self,
        cx: &mut BuildCx<'s, '_>,
    ) -> Result<StreamVec<'s, Time, Ev<Either<A, B>>>> {
        let first = self.first.build_timed(cx)?;
        let second = self.second.build_timed(cx)?;
        let first = tag_input(first, "Connect", Either::Left, |_| 0);
        let second = tag_input(second, "Connect", Either::Right, |_| 1);
        Ok(first.concat(second))
    }

    fn build_plain<'s>(
        &self,
        cx: &mut BuildCx<'s, '_>,
    ) -> Result<StreamVec<'s, Time, Either<A, B>>> {
        fn wrap<'s, X: Data, Y: Data>(
            s: StreamVec<'s, Time, X>,
            f: impl Fn(X) -> Y + 'static,
        ) -> StreamVec<'s, Time, Y> {
            s.unary(Pipeline, "Connect", move |_, _| {
                let mut out = Vec::new();
                move |input, output| {
                    input.for_each(|cap, data| {
                        out.extend(data.drain(..).map(&f));
                        if !out.is_empty() {
                            output.session(&cap).give_container(&mut out);
                            out.clear();
                        }
                    });
                }
            })
        }
        let first = wrap(self.first.build(cx)?, Either::Left);
        let second = wrap(self.second.build(cx)?, Either::Right);
        Ok(first.concat(second))
    }
}

/// The two functions of a co-flat-map (a co-map is one with one output per record).
pub(crate) trait CoFlatMap<A, B, U>: Clone + Send + Sync + 'static {
    fn flat_map1(&mut self, value: A, out: &mut Collector<U>);
    fn flat_map2(&mut self, value: B, out: &mut Collector<U>);
}

/// Closures of a co-map.
#[derive(Clone)]
pub(crate) struct CoMapFns<F1, F2>(pub F1, pub F2);

impl<A, B, U, F1, F2> CoFlatMap<A, B, U> for CoMapFns<F1, F2>
where
    F1: FnMut(A) -> U + Clone + Send + Sync + 'static,
    F2: FnMut(B) -> U + Clone + Send + Sync + 'static,
{
    #[inline]
    fn flat_map1(&mut self, value: A, out: &mut Collector<U>) {
        out.collect((self.0)(value))
    }
    #[inline]
    fn flat_map2(&mut self, value: B, out: &mut Collector<U>) {
        out.collect((self.1)(value))
    }
}

/// Closures of a co-flat-map.
#[derive(Clone)]
pub(crate) struct CoFlatMapFns<F1, F2>(pub F1, pub F2);

impl<A, B, U, F1, F2> CoFlatMap<A, B, U> for CoFlatMapFns<F1, F2>
where
    F1: FnMut(A, &mut Collector<U>) + Clone + Send + Sync + 'static,
    F2: FnMut(B, &mut Collector<U>) + Clone + Send + Sync + 'static,
{
    #[inline]
    fn flat_map1(&mut self, value: A, out: &mut Collector<U>) {
        (self.0)(value, out)
    }
    #[inline]
    fn flat_map2(&mut self, value: B, out: &mut Collector<U>) {
        (self.1)(value, out)
    }
}

/// A co-flat-map over plain records.
struct CoFlatMapBatch<F, U>(F, Collector<U>);

impl<A, B, U: 'static, F: CoFlatMap<A, B, U>> BatchFn<Either<A, B>, U> for CoFlatMapBatch<F, U> {
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Either<A, B>>, out: &mut Vec<U>) -> Result<()> {
        std::mem::swap(&mut self.1.buf, out);
        for e in input.drain(..) {
            match e {
                Either::Left(a) => self.0.flat_map1(a, &mut self.1),
                Either::Right(b) => self.0.flat_map2(b, &mut self.1),
            }
        }
        std::mem::swap(&mut self.1.buf, out);
        Ok(())
    }
}

/// A co-flat-map over event-time elements: each output keeps its input's timestamp, and
/// the watermark is the minimum over both inputs (Flink's two-input watermark valve).
struct TimedCoFlatMapBatch<F, U> {
    f: F,
    collector: Collector<U>,
    tracker: WatermarkTracker,
}

impl<A, B, U: 'static, F: CoFlatMap<A, B, U>> BatchFn<Ev<Either<A, B>>, Ev<U>>
    for TimedCoFlatMapBatch<F, U>
{
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Ev<Either<A, B>>>, out: &mut Vec<Ev<U>>) -> Result<()> {
        for e in input.drain(..) {
            match e {
                Ev::Rec(ts, Either::Left(a)) => {
                    self.f.flat_map1(a, &mut self.collector);
                    out.extend(self.collector.buf.drain(..).map(|u| Ev::Rec(ts, u)));
                }
                Ev::Rec(ts, Either::Right(b)) => {
                    self.f.flat_map2(b, &mut self.collector);
                    out.extend(self.collector.buf.drain(..).map(|u| Ev::Rec(ts, u)));
                }
                Ev::Mark(m) => match self.tracker.on_mark(&m) {
                    Some(Combined::Advanced(wm)) => out.push(Ev::Mark(Mark::watermark(wm))),
                    Some(Combined::Idle) => out.push(Ev::Mark(Mark::idle(self.tracker.current()))),
                    Some(Combined::Active) => {
                        out.push(Ev::Mark(Mark::watermark(self.tracker.current())))
                    }
                    None => {}
                },
                Ev::Side(_) => {}
            }
        }
        Ok(())
    }
}

/// A co-map or co-flat-map of two streams: an event-time stream when either input is one.
pub(crate) struct CoFlatMapNode<A, B, F> {
    connect: ConnectNode<A, B>,
    op: usize,
    f: F,
}

impl<A: Data, B: Data, F> CoFlatMapNode<A, B, F> {
    pub fn new(first: Arc<dyn Node<A>>, second: Arc<dyn Node<B>>, op: usize, f: F) -> Self {
        CoFlatMapNode {
            connect: ConnectNode { first, second },
            op,
            f,
        }
    }
}

impl<A: Data, B: Data, U: Data, F: CoFlatMap<A, B, U>> Node<U> for CoFlatMapNode<A, B, F> {
    fn build<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, U>> {
        if self.timed() {
            return Ok(records(self.build_timed(cx)?));
        }
        let input = self.connect.build_plain(cx)?;
        build_stateless(
            cx,
            self.op,
            input,
            CoFlatMapBatch(self.f.clone(), Collector::default()),
        )
    }
    fn build_timed<'s>(&self, cx: &mut BuildCx<'s, '_>) -> Result<StreamVec<'s, Time, Ev<U>>> {
        if !self.timed() {
            return Ok(crate::runtime::event::untimed(self.build(cx)?));
        }
        let input = self.connect.build_timed(cx)?;
        build_stateless(
            cx,
            self.op,
            input,
            TimedCoFlatMapBatch {
                f: self.f.clone(),
                collector: Collector::default(),
                tracker: WatermarkTracker::new(2),
            },
        )
    }
    fn timed(&self) -> bool {
        self.connect.first.timed() || self.connect.second.timed()
    }
    fn check(&self, plan: &Plan, snap: &LoadedSnapshot, out: &mut Vec<StateCheck>) -> Result<()> {
        self.connect.first.check(plan, snap, out)?;
        self.connect.second.check(plan, snap, out)
    }
}

/// Runs a [`KeyedCoProcessFunction`] as a timed keyed operator over the connected inputs.
#[derive(Clone)]
pub(crate) struct CoProcessLogic<F>(pub F);

impl<K: Key, A: Data, B: Data, U: Data, F: KeyedCoProcessFunction<K, A, B, U>>
    TimedLogic<K, Either<A, B>, U> for CoProcessLogic<F>
{
    type Namespace = ();

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }

    #[inline]
    fn on_record(
        &mut self,
        _ts: i64,
        value: Either<A, B>,
        cx: &mut TimedCx<'_, K, U, ()>,
    ) -> Result<()> {
        let mut out = cx.take_collector();
        let r = match value {
            Either::Left(a) => self
                .0
                .process_element1(a, &mut Context::new(cx, None), &mut out),
            Either::Right(b) => self
                .0
                .process_element2(b, &mut Context::new(cx, None), &mut out),
        };
        cx.emit_collected(out);
        r
    }

    fn on_timer(&mut self, timer: Timer<()>, cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        let mut out = cx.take_collector();
        let r = self.0.on_timer(
            timer.timestamp,
            &mut Context::new(cx, Some(timer.domain)),
            &mut out,
        );
        cx.emit_collected(out);
        r
    }
}

/// The hidden state names of an interval join's buffers.
pub(crate) const LEFT_BUFFER: &str = "_left-buffer";
pub(crate) const RIGHT_BUFFER: &str = "_right-buffer";

/// One side's buffered records of a key, by timestamp (Flink's `MapState<Long,
/// List<BufferEntry>>`; ordered, so a record finds its partners with one range scan).
type Buffer<T> = BTreeMap<i64, Vec<T>>;

/// Which buffer a cleanup timer empties (the timer's namespace, as Flink's
/// `CLEANUP_LEFT`/`CLEANUP_RIGHT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum JoinSide {
    /// The left (first) input's buffer.
    Left,
    /// The right (second) input's buffer.
    Right,
}

/// Flink's `IntervalJoinOperator`: every record is buffered under its key and timestamp
/// and joined with the other side's buffered records whose timestamps lie in its
/// interval; a cleanup timer drops a bucket once the watermark passed the last timestamp
/// it can still join with. Records behind the watermark are late: dropped, or sent to
/// the side's late-data output.
#[derive(Clone)]
pub(crate) struct IntervalJoinLogic<A, B, F> {
    /// Inclusive bounds relative to the left record's timestamp (exclusive ones already
    /// moved by one millisecond, as Flink does).
    pub lower: i64,
    pub upper: i64,
    pub left_late: Option<OutputTag<A>>,
    pub right_late: Option<OutputTag<B>>,
    pub f: F,
    pub left: u32,
    pub right: u32,
    /// Side outputs of the user function for the pair being joined.
    pub side: Vec<SideRec>,
}

impl<A, B, F> IntervalJoinLogic<A, B, F> {
    pub fn new(
        lower: i64,
        upper: i64,
        left_late: Option<OutputTag<A>>,
        right_late: Option<OutputTag<B>>,
        f: F,
    ) -> Self {
        IntervalJoinLogic {
            lower,
            upper,
            left_late,
            right_late,
            f,
            left: u32::MAX,
            right: u32::MAX,
            side: Vec::new(),
        }
    }
}

/// Joins `ours` (a record of one side at `ts`) with the `other` side's buckets in
/// `[ts + lower, ts + upper]`, calling `call(bucket timestamp, other record)` per pair.
#[inline]
fn for_partners<T>(
    other: &Buffer<T>,
    ts: i64,
    lower: i64,
    upper: i64,
    mut call: impl FnMut(i64, &T) -> Result<()>,
) -> Result<()> {
    let lo = ts.saturating_add(lower);
    let hi = ts.saturating_add(upper);
    if lo > hi {
        return Ok(());
    }
    for (t, bucket) in other.range(lo..=hi) {
        for v in bucket {
            call(*t, v)?;
        }
    }
    Ok(())
}

impl<A: Data, B: Data, F> IntervalJoinLogic<A, B, F> {
    /// Calls the user function for one pair and emits its output at the pair's timestamp.
    #[inline]
    fn join<K: Key, U: Data>(
        f: &mut F,
        side: &mut Vec<SideRec>,
        cx: &mut TimedCx<'_, K, U, JoinSide>,
        out: &mut Collector<U>,
        (left, lts): (&A, i64),
        (right, rts): (&B, i64),
    ) -> Result<()>
    where
        F: ProcessJoinFunction<A, B, U>,
    {
        let ts = lts.max(rts);
        let mut ctx = JoinContext {
            left_timestamp: lts,
            right_timestamp: rts,
            timestamp: ts,
            side,
        };
        f.process_element(left, right, &mut ctx, out)?;
        for u in out.buf.drain(..) {
            cx.emit_at(ts, u);
        }
        for s in side.drain(..) {
            cx.emit_element(Ev::Side(s));
        }
        Ok(())
    }
}

impl<K: Key, A: Data, B: Data, U: Data, F: ProcessJoinFunction<A, B, U>>
    TimedLogic<K, Either<A, B>, U> for IntervalJoinLogic<A, B, F>
{
    type Namespace = JoinSide;

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        let reg = ctx.registry()?;
        self.left = reg.register::<Buffer<A>>(LEFT_BUFFER, "map", None, None)?;
        self.right = reg.register::<Buffer<B>>(RIGHT_BUFFER, "map", None, None)?;
        self.f.open(ctx)
    }

    fn on_record(
        &mut self,
        ts: i64,
        value: Either<A, B>,
        cx: &mut TimedCx<'_, K, U, JoinSide>,
    ) -> Result<()> {
        if ts == NO_TIMESTAMP {
            crate::bail!("{INTERVAL_JOIN_NO_TIMESTAMP}");
        }
        let wm = cx.current_watermark();
        let late = wm != MIN_WATERMARK && ts < wm;
        let slot = cx.state().current;
        let (lower, upper) = (self.lower, self.upper);
        match value {
            Either::Left(a) => {
                if late {
                    if let Some(tag) = &self.left_late {
                        cx.emit_side(tag, ts, &a)?;
                    }
                    return Ok(());
                }
                let mut out = cx.take_collector();
                // The other side's buffer leaves its table while the user function runs
                // (moving a map is free), so the pairs are borrowed, never cloned.
                let reg = &mut cx.state().registry;
                let other = reg
                    .table_mut::<Buffer<B>>(self.right, slot)?
                    .get_mut(slot)
                    .map(std::mem::take);
                if let Some(other) = other {
                    let (f, side) = (&mut self.f, &mut self.side);
                    let r = for_partners(&other, ts, lower, upper, |rts, b| {
                        Self::join(f, side, cx, &mut out, (&a, ts), (b, rts))
                    });
                    cx.state()
                        .registry
                        .table_mut::<Buffer<B>>(self.right, slot)?
                        .set(slot, Some(other));
                    r?;
                }
                cx.state()
                    .registry
                    .table_mut::<Buffer<A>>(self.left, slot)?
                    .get_or_insert_with(slot, BTreeMap::new)
                    .entry(ts)
                    .or_default()
                    .push(a);
                let cleanup = if upper > 0 {
                    ts.saturating_add(upper)
                } else {
                    ts
                };
                cx.emit_collected(out);
                cx.register_event_time_timer(cleanup, JoinSide::Left)?;
            }
            Either::Right(b) => {
                if late {
                    if let Some(tag) = &self.right_late {
                        cx.emit_side(tag, ts, &b)?;
                    }
                    return Ok(());
                }
                let mut out = cx.take_collector();
                let reg = &mut cx.state().registry;
                let other = reg
                    .table_mut::<Buffer<A>>(self.left, slot)?
                    .get_mut(slot)
                    .map(std::mem::take);
                if let Some(other) = other {
                    let (f, side) = (&mut self.f, &mut self.side);
                    // Seen from the right record, the left partners are in [ts - upper, ts - lower].
                    let r = for_partners(
                        &other,
                        ts,
                        upper.saturating_neg(),
                        lower.saturating_neg(),
                        |lts, a| Self::join(f, side, cx, &mut out, (a, lts), (&b, ts)),
                    );
                    cx.state()
                        .registry
                        .table_mut::<Buffer<A>>(self.left, slot)?
                        .set(slot, Some(other));
                    r?;
                }
                cx.state()
                    .registry
                    .table_mut::<Buffer<B>>(self.right, slot)?
                    .get_or_insert_with(slot, BTreeMap::new)
                    .entry(ts)
                    .or_default()
                    .push(b);
                let relative_upper = lower.saturating_neg();
                let cleanup = if relative_upper > 0 {
                    ts.saturating_add(relative_upper)
                } else {
                    ts
                };
                cx.emit_collected(out);
                cx.register_event_time_timer(cleanup, JoinSide::Right)?;
            }
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        timer: Timer<JoinSide>,
        cx: &mut TimedCx<'_, K, U, JoinSide>,
    ) -> Result<()> {
        let t = timer.timestamp;
        let slot = cx.state().current;
        let reg = &mut cx.state().registry;
        // The bucket whose last partner timestamp the watermark passed (inverting how its
        // cleanup time was computed).
        match timer.namespace {
            JoinSide::Left => {
                let ts = if self.upper <= 0 {
                    t
                } else {
                    t.saturating_sub(self.upper)
                };
                remove_bucket(reg.table_mut::<Buffer<A>>(self.left, slot)?, slot, ts);
            }
            JoinSide::Right => {
                let ts = if self.lower <= 0 {
                    t.saturating_add(self.lower)
                } else {
                    t
                };
                remove_bucket(reg.table_mut::<Buffer<B>>(self.right, slot)?, slot, ts);
            }
        }
        Ok(())
    }
}

/// Removes bucket `ts` of key `slot`'s buffer; an empty buffer is no state at all.
fn remove_bucket<T>(table: &mut crate::state::backend::Table<Buffer<T>>, slot: u32, ts: i64) {
    let empty = match table.get_mut(slot) {
        Some(buf) => {
            buf.remove(&ts);
            buf.is_empty()
        }
        None => false,
    };
    if empty {
        table.set(slot, None);
    }
}
