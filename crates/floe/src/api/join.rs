//! Joining streams: connected streams with (keyed) co-functions and the interval join
//! (Flink's `connect`, `KeyedCoProcessFunction`, `CoMap`/`CoFlatMap` and
//! `KeyedStream.intervalJoin`).
//!
//! Connected streams share one operator: a keyed co-process function sees the records of
//! both inputs of a key with the key's state and timers, and its watermark is the minimum
//! of both inputs' watermarks.
//!
//! ```
//! use floe::prelude::*;
//!
//! /// Emits an order once its payment arrived, whichever came first.
//! #[derive(Clone, Default)]
//! struct Match { order: ValueState<String>, paid: ValueState<bool> }
//!
//! impl KeyedCoProcessFunction<u32, (u32, String), u32, String> for Match {
//!     fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
//!         self.order = ValueStateDescriptor::new("order").register(ctx)?;
//!         self.paid = ValueStateDescriptor::new("paid").register(ctx)?;
//!         Ok(())
//!     }
//!     fn process_element1(&mut self, o: (u32, String), ctx: &mut Context<'_, '_, u32, String>,
//!                         out: &mut Collector<String>) -> Result<()> {
//!         if self.paid.value(ctx)?.is_some() { out.collect(o.1) } else { self.order.update(ctx, o.1)? }
//!         Ok(())
//!     }
//!     fn process_element2(&mut self, _id: u32, ctx: &mut Context<'_, '_, u32, String>,
//!                         out: &mut Collector<String>) -> Result<()> {
//!         match self.order.value(ctx)? { Some(o) => out.collect(o), None => self.paid.update(ctx, true)? }
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::new();
//! let orders = env.from_collection(vec![(1u32, "book".to_string()), (2, "pen".to_string())]);
//! let payments = env.from_collection(vec![2u32, 1]);
//! let paid = orders.connect(payments).key_by(|o| o.0, |p| *p).process(Match::default()).collect();
//! env.execute("orders").unwrap();
//! let mut got = paid.take();
//! got.sort();
//! assert_eq!(got, vec!["book".to_string(), "pen".to_string()]);
//! ```

use super::data::{Data, Key};
use super::functions::{Collector, RuntimeContext};
use super::process::Context;
use super::stream::{DataStream, KeyedStream};
use super::time::{millis, OutputTag};
use super::window::{
    ProcessWindowContext, ProcessWindowFunction, Window, WindowAssigner, WindowedStream,
};
use crate::runtime::event::SideRec;
use crate::runtime::nodes::TimedView;
use crate::runtime::operator::join::{
    CoFlatMap, CoFlatMapFns, CoFlatMapNode, CoMapFns, CoProcessLogic, ConnectKeyedNode, Either,
    IntervalJoinLogic,
};
use crate::runtime::operator::keyed::KeyedRecord;
use crate::runtime::plan::Node;
use crate::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Flink's error for a record without timestamp in an interval join.
pub(crate) const INTERVAL_JOIN_NO_TIMESTAMP: &str = "Long.MIN_VALUE timestamp: Elements used in interval stream joins need to have timestamps meaningful timestamps.";

/// Two streams of possibly different types connected for one two-input operator
/// (Flink's `ConnectedStreams`), made by [`DataStream::connect`].
pub struct ConnectedStreams<A: Data, B: Data> {
    first: DataStream<A>,
    second: DataStream<B>,
}

/// Two connected streams keyed by keys of the same type (Flink's keyed
/// `ConnectedStreams`): records of both inputs with equal keys meet in one subtask.
pub struct ConnectedKeyedStreams<K: Key, A: Data, B: Data> {
    first: KeyedStream<K, A>,
    second: KeyedStream<K, B>,
}

impl<T: Data> DataStream<T> {
    /// Connects this stream with `other` for one operator that sees both (Flink's
    /// `connect`): key both with [`ConnectedStreams::key_by`] for a
    /// [`KeyedCoProcessFunction`], or apply [`ConnectedStreams::map`] /
    /// [`ConnectedStreams::flat_map`].
    ///
    /// ```
    /// use floe::prelude::*;
    /// let env = StreamEnv::new();
    /// let words = env.from_collection(vec!["a".to_string()]);
    /// let numbers = env.from_collection(vec![7u32]);
    /// let out = words.connect(numbers).map(|w| w, |n| n.to_string()).collect();
    /// env.execute("co-map").unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!["7".to_string(), "a".to_string()]);
    /// ```
    pub fn connect<B: Data>(self, other: DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams {
            first: self,
            second: other,
        }
    }
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    /// Keys the first input by `key1` and the second by `key2` (Flink's
    /// `connect(..).keyBy(..)`).
    pub fn key_by<K: Key, F1, F2>(self, key1: F1, key2: F2) -> ConnectedKeyedStreams<K, A, B>
    where
        F1: Fn(&A) -> K + Clone + Send + Sync + 'static,
        F2: Fn(&B) -> K + Clone + Send + Sync + 'static,
    {
        ConnectedKeyedStreams {
            first: self.first.key_by(key1),
            second: self.second.key_by(key2),
        }
    }

    /// Applies `f1` to every record of the first input and `f2` to every record of the
    /// second (Flink's `CoMapFunction`); results keep their input's timestamp and the
    /// watermark is the minimum of both inputs'.
    pub fn map<U: Data, F1, F2>(self, f1: F1, f2: F2) -> DataStream<U>
    where
        F1: FnMut(A) -> U + Clone + Send + Sync + 'static,
        F2: FnMut(B) -> U + Clone + Send + Sync + 'static,
    {
        self.co("Co-Map", CoMapFns(f1, f2))
    }

    /// Emits zero or more records per record of either input (Flink's
    /// `CoFlatMapFunction`).
    ///
    /// ```
    /// use floe::prelude::*;
    /// let env = StreamEnv::new();
    /// let lines = env.from_collection(vec!["a b".to_string()]);
    /// let counts = env.from_collection(vec![2u32]);
    /// let out = lines
    ///     .connect(counts)
    ///     .flat_map(
    ///         |l: String, out: &mut Collector<String>| l.split(' ').for_each(|w| out.collect(w.to_string())),
    ///         |n: u32, out: &mut Collector<String>| (0..n).for_each(|i| out.collect(i.to_string())),
    ///     )
    ///     .collect();
    /// env.execute("co-flat-map").unwrap();
    /// assert_eq!(out.take().len(), 4);
    /// ```
    pub fn flat_map<U: Data, F1, F2>(self, f1: F1, f2: F2) -> DataStream<U>
    where
        F1: FnMut(A, &mut Collector<U>) + Clone + Send + Sync + 'static,
        F2: FnMut(B, &mut Collector<U>) + Clone + Send + Sync + 'static,
    {
        self.co("Co-Flat Map", CoFlatMapFns(f1, f2))
    }

    fn co<U: Data, F: CoFlatMap<A, B, U>>(self, name: &str, f: F) -> DataStream<U> {
        let env = self.first.env.clone();
        let chain = env.new_chain();
        let op = env.add_operator(name, None, Some(chain));
        let node: Arc<dyn Node<U>> =
            Arc::new(CoFlatMapNode::new(self.first.node, self.second.node, op, f));
        DataStream {
            env,
            node,
            op,
            chain,
            source: None,
            outputs: None,
        }
    }
}

impl<K: Key, A: Data, B: Data> ConnectedKeyedStreams<K, A, B> {
    /// Applies a [`KeyedCoProcessFunction`]: keyed state shared by both inputs of a key,
    /// event-time and processing-time timers, side outputs (Flink's `process` on keyed
    /// connected streams).
    pub fn process<U: Data, F: KeyedCoProcessFunction<K, A, B, U>>(self, f: F) -> DataStream<U> {
        connected(self.first, self.second).timed_keyed("KeyedCoProcess", CoProcessLogic(f), 2)
    }
}

/// Both keyed inputs as one keyed stream of [`Either`] whose watermark combines both.
fn connected<K: Key, A: Data, B: Data>(
    first: KeyedStream<K, A>,
    second: KeyedStream<K, B>,
) -> KeyedStream<K, Either<A, B>> {
    let node: Arc<dyn Node<KeyedRecord<K, Either<A, B>>>> =
        Arc::new(TimedView(Arc::new(ConnectKeyedNode {
            first: first.node,
            second: second.node,
        })));
    KeyedStream {
        env: first.env,
        node,
    }
}

/// A function over two connected keyed streams (Flink's `KeyedCoProcessFunction`): each
/// input has its own method; both share the key's state and timers through the
/// [`Context`].
pub trait KeyedCoProcessFunction<K, A, B, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record; register state here.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Processes one record of the first input. What `out` collects gets the record's
    /// timestamp.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut Context<'_, '_, K, U>,
        out: &mut Collector<U>,
    ) -> Result<()>;
    /// Processes one record of the second input.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut Context<'_, '_, K, U>,
        out: &mut Collector<U>,
    ) -> Result<()>;
    /// A timer of the current key fired at `timestamp` (see
    /// [`KeyedProcessFunction::on_timer`](super::process::KeyedProcessFunction::on_timer)).
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut Context<'_, '_, K, U>,
        _out: &mut Collector<U>,
    ) -> Result<()> {
        Ok(())
    }
}

/// An offset in event time, in milliseconds: an integer (which may be negative) or a
/// [`Duration`]. The bounds of [`IntervalJoin::between`] are offsets.
pub trait TimeOffset {
    /// The offset in milliseconds.
    fn to_millis(self) -> i64;
}

impl TimeOffset for i64 {
    fn to_millis(self) -> i64 {
        self
    }
}

impl TimeOffset for i32 {
    fn to_millis(self) -> i64 {
        i64::from(self)
    }
}

impl TimeOffset for Duration {
    fn to_millis(self) -> i64 {
        millis(self)
    }
}

impl<K: Key, A: Data> KeyedStream<K, A> {
    /// Joins this stream with `other` by key and event time (Flink's `intervalJoin`):
    /// every pair whose right timestamp lies within bounds around the left timestamp, set
    /// with [`IntervalJoin::between`]. Event time only: records need timestamps.
    ///
    /// ```
    /// use floe::prelude::*;
    /// let env = StreamEnv::new();
    /// let ts = |e: &(i64, u32), _| e.0;
    /// let clicks = env.from_collection(vec![(1_000i64, 1u32), (5_000, 1)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(ts));
    /// let views = env.from_collection(vec![(900i64, 1u32), (4_000, 1)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(ts));
    /// let pairs = clicks
    ///     .key_by(|c| c.1)
    ///     .interval_join(views.key_by(|v| v.1))
    ///     .between(-500, 0) // a view at most 500 ms before the click
    ///     .process(|c: &(i64, u32), v: &(i64, u32), _ctx: &mut JoinContext<'_>, out: &mut Collector<(i64, i64)>| -> Result<()> {
    ///         out.collect((c.0, v.0));
    ///         Ok(())
    ///     })
    ///     .collect();
    /// env.execute("interval join").unwrap();
    /// assert_eq!(pairs.take(), vec![(1_000, 900)]);
    /// ```
    pub fn interval_join<B: Data>(self, other: KeyedStream<K, B>) -> IntervalJoin<K, A, B> {
        IntervalJoin {
            left: self,
            right: other,
        }
    }
}

/// An interval join waiting for its bounds (Flink's `KeyedStream.IntervalJoin`).
pub struct IntervalJoin<K: Key, A: Data, B: Data> {
    left: KeyedStream<K, A>,
    right: KeyedStream<K, B>,
}

impl<K: Key, A: Data, B: Data> IntervalJoin<K, A, B> {
    /// Joins a left record at `t` with the right records in `[t + lower, t + upper]`
    /// (both bounds inclusive unless made exclusive). `lower <= upper` is required.
    pub fn between(
        self,
        lower: impl TimeOffset,
        upper: impl TimeOffset,
    ) -> IntervalJoined<K, A, B> {
        IntervalJoined {
            left: self.left,
            right: self.right,
            lower: lower.to_millis(),
            upper: upper.to_millis(),
            lower_inclusive: true,
            upper_inclusive: true,
            left_late: None,
            right_late: None,
        }
    }
}

/// An interval join with its bounds (Flink's `IntervalJoined`): set exclusive bounds and
/// late-data outputs, then apply a [`ProcessJoinFunction`].
pub struct IntervalJoined<K: Key, A: Data, B: Data> {
    left: KeyedStream<K, A>,
    right: KeyedStream<K, B>,
    lower: i64,
    upper: i64,
    lower_inclusive: bool,
    upper_inclusive: bool,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
}

impl<K: Key, A: Data, B: Data> IntervalJoined<K, A, B> {
    /// The lower bound is exclusive: `t + lower` itself does not join.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower_inclusive = false;
        self
    }
    /// The upper bound is exclusive: `t + upper` itself does not join.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper_inclusive = false;
        self
    }
    /// Left records behind the watermark go to `tag` instead of being dropped (Flink's
    /// `sideOutputLeftLateData`).
    pub fn side_output_left_late_data(mut self, tag: &OutputTag<A>) -> Self {
        self.left_late = Some(tag.clone());
        self
    }
    /// Right records behind the watermark go to `tag` (Flink's `sideOutputRightLateData`).
    pub fn side_output_right_late_data(mut self, tag: &OutputTag<B>) -> Self {
        self.right_late = Some(tag.clone());
        self
    }
    /// Calls `f` for every joined pair; its output gets the larger of the two timestamps.
    /// Late-data outputs are read with [`DataStream::get_side_output`] on the result.
    pub fn process<U: Data, F: ProcessJoinFunction<A, B, U>>(self, f: F) -> DataStream<U> {
        let env = self.left.env.clone();
        if self.lower > self.upper {
            env.record_error(format!(
                "interval join between({}, {}): lowerBound <= upperBound must be fulfilled",
                self.lower, self.upper
            ));
        }
        // As Flink: exclusive bounds move by one millisecond, so the join compares
        // inclusively.
        let lower = if self.lower_inclusive {
            self.lower
        } else {
            self.lower.saturating_add(1)
        };
        let upper = if self.upper_inclusive {
            self.upper
        } else {
            self.upper.saturating_sub(1)
        };
        let logic = IntervalJoinLogic::new(lower, upper, self.left_late, self.right_late, f);
        connected(self.left, self.right).timed_keyed("IntervalJoin", logic, 2)
    }
}

/// The function of an interval join (Flink's `ProcessJoinFunction`): called once per
/// joined pair, with both records borrowed from the join's buffers. Closures
/// `FnMut(&A, &B, &mut JoinContext, &mut Collector<U>) -> Result<()>` implement it.
pub trait ProcessJoinFunction<A, B, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// One joined pair; what `out` collects gets [`JoinContext::timestamp`].
    fn process_element(
        &mut self,
        left: &A,
        right: &B,
        ctx: &mut JoinContext<'_>,
        out: &mut Collector<U>,
    ) -> Result<()>;
}

impl<A, B, U, F> ProcessJoinFunction<A, B, U> for F
where
    F: FnMut(&A, &B, &mut JoinContext<'_>, &mut Collector<U>) -> Result<()>
        + Clone
        + Send
        + Sync
        + 'static,
{
    #[inline]
    fn process_element(
        &mut self,
        left: &A,
        right: &B,
        ctx: &mut JoinContext<'_>,
        out: &mut Collector<U>,
    ) -> Result<()> {
        self(left, right, ctx, out)
    }
}

/// What a [`ProcessJoinFunction`] sees of the pair: both timestamps and side outputs.
pub struct JoinContext<'a> {
    pub(crate) left_timestamp: i64,
    pub(crate) right_timestamp: i64,
    pub(crate) timestamp: i64,
    pub(crate) side: &'a mut Vec<SideRec>,
}

impl JoinContext<'_> {
    /// The left record's timestamp.
    pub fn left_timestamp(&self) -> i64 {
        self.left_timestamp
    }
    /// The right record's timestamp.
    pub fn right_timestamp(&self) -> i64 {
        self.right_timestamp
    }
    /// The pair's timestamp: the larger of the two.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// Emits `value` into the side output `tag` with the pair's timestamp.
    pub fn output<V: Serialize>(&mut self, tag: &OutputTag<V>, value: V) -> Result<()> {
        let bytes = bincode::serialize(&value).map_err(|e| {
            crate::anyhow!("cannot encode a record of side output '{}': {e}", tag.id)
        })?;
        self.side.push(SideRec {
            tag: tag.id.clone(),
            ts: self.timestamp,
            bytes,
        });
        Ok(())
    }
}

/// The tagged union a window join windows: an element of the first or the second input
/// (Flink's `CoGroupedStreams.TaggedUnion`).
pub use crate::runtime::operator::join::Either as TaggedUnion;

impl<A: Data> DataStream<A> {
    /// Joins this stream with `other` per key and window (Flink's window join):
    /// `a.join(b).where_(ka).equal_to(kb).window(assigner).apply(|a, b| ..)` emits one
    /// result per pair of elements of the same key in the same window, when the window
    /// fires. The window's watermark is the minimum over both inputs.
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let env = StreamEnv::new();
    /// let strategy = || WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(i64, String), _| e.0);
    /// let a = env.from_collection(vec![(1_000i64, "x".to_string()), (2_000, "y".to_string())])
    ///     .assign_timestamps_and_watermarks(strategy());
    /// let b = env.from_collection(vec![(1_500i64, "x".to_string()), (12_000, "x".to_string())])
    ///     .assign_timestamps_and_watermarks(strategy());
    /// let out = a.join(b)
    ///     .where_(|e| e.1.clone())
    ///     .equal_to(|e| e.1.clone())
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
    ///     .apply(|l: &(i64, String), r: &(i64, String)| (l.1.clone(), l.0, r.0))
    ///     .collect();
    /// env.execute("join").unwrap();
    /// assert_eq!(out.take(), vec![("x".to_string(), 1_000, 1_500)]);
    /// ```
    pub fn join<B: Data>(self, other: DataStream<B>) -> CoGroupedStreams<A, B> {
        CoGroupedStreams {
            first: self,
            second: other,
        }
    }

    /// Groups this stream and `other` per key and window (Flink's `coGroup`): the
    /// function sees all elements of both inputs of a key and window, also when one side
    /// has none.
    pub fn co_group<B: Data>(self, other: DataStream<B>) -> CoGroupedStreams<A, B> {
        self.join(other)
    }
}

/// Two streams to join or co-group per key and window; set the first input's key with
/// [`where_`](Self::where_).
pub struct CoGroupedStreams<A: Data, B: Data> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Data, B: Data> CoGroupedStreams<A, B> {
    /// The key of the first input.
    pub fn where_<K: Key, F>(self, key: F) -> CoGroupWhere<K, A, B, F>
    where
        F: Fn(&A) -> K + Clone + Send + Sync + 'static,
    {
        CoGroupWhere {
            inner: self,
            key,
            _k: std::marker::PhantomData,
        }
    }
}

/// A join whose first key is set; set the second with [`equal_to`](Self::equal_to).
pub struct CoGroupWhere<K, A: Data, B: Data, F> {
    inner: CoGroupedStreams<A, B>,
    key: F,
    _k: std::marker::PhantomData<fn() -> K>,
}

impl<K: Key, A: Data, B: Data, F> CoGroupWhere<K, A, B, F>
where
    F: Fn(&A) -> K + Clone + Send + Sync + 'static,
{
    /// The key of the second input (of the same type as the first's).
    pub fn equal_to<G>(self, key: G) -> CoGroupKeyed<K, A, B>
    where
        G: Fn(&B) -> K + Clone + Send + Sync + 'static,
    {
        CoGroupKeyed {
            keyed: connected(
                self.inner.first.key_by(self.key),
                self.inner.second.key_by(key),
            ),
        }
    }
}

/// Both inputs keyed; window them with [`window`](Self::window).
pub struct CoGroupKeyed<K: Key, A: Data, B: Data> {
    keyed: KeyedStream<K, Either<A, B>>,
}

impl<K: Key, A: Data, B: Data> CoGroupKeyed<K, A, B> {
    /// The windows both inputs are grouped in.
    pub fn window<W: WindowAssigner<Either<A, B>>>(
        self,
        assigner: W,
    ) -> CoGroupWindowed<K, A, B, W> {
        let mut windowed = self.keyed.window(assigner);
        windowed.inputs = 2;
        CoGroupWindowed { windowed }
    }
}

/// A windowed join or co-group; finish it with [`apply`](Self::apply) (join) or
/// [`co_group`](Self::co_group).
pub struct CoGroupWindowed<K: Key, A: Data, B: Data, W: WindowAssigner<Either<A, B>>> {
    windowed: WindowedStream<K, Either<A, B>, W, W::DefaultTrigger>,
}

impl<K: Key, A: Data, B: Data, W: WindowAssigner<Either<A, B>>> CoGroupWindowed<K, A, B, W> {
    /// Keeps the window's elements for `lateness` after it fired (see
    /// [`WindowedStream::allowed_lateness`]).
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.windowed = self.windowed.allowed_lateness(lateness);
        self
    }

    /// The join: `f` for every pair of elements of the key and window.
    pub fn apply<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: Fn(&A, &B) -> U + Clone + Send + Sync + 'static,
    {
        self.co_group(
            move |_key: &K, left: &[A], right: &[B], out: &mut Collector<U>| {
                for l in left {
                    for r in right {
                        out.collect(f(l, r));
                    }
                }
            },
        )
    }

    /// The co-group: `f` with all elements of each side of the key and window.
    pub fn co_group<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: Fn(&K, &[A], &[B], &mut Collector<U>) + Clone + Send + Sync + 'static,
    {
        self.windowed.process(CoGroupFn {
            f,
            _p: std::marker::PhantomData,
        })
    }
}

/// Splits a window's tagged union into both sides for a co-group function.
struct CoGroupFn<A, B, F> {
    f: F,
    _p: std::marker::PhantomData<fn(A, B)>,
}

impl<A, B, F: Clone> Clone for CoGroupFn<A, B, F> {
    fn clone(&self) -> Self {
        CoGroupFn {
            f: self.f.clone(),
            _p: std::marker::PhantomData,
        }
    }
}

impl<K: Key, A: Data, B: Data, U: Data, W: Window, F> ProcessWindowFunction<Either<A, B>, U, K, W>
    for CoGroupFn<A, B, F>
where
    F: Fn(&K, &[A], &[B], &mut Collector<U>) + Clone + Send + Sync + 'static,
{
    fn process(
        &mut self,
        key: &K,
        _context: &mut ProcessWindowContext<'_, '_, K, W, U>,
        elements: &[Either<A, B>],
        out: &mut Collector<U>,
    ) -> Result<()> {
        let mut left = Vec::new();
        let mut right = Vec::new();
        for e in elements {
            match e {
                Either::Left(a) => left.push(a.clone()),
                Either::Right(b) => right.push(b.clone()),
            }
        }
        (self.f)(key, &left, &right, out);
        Ok(())
    }
}
