//! `DataStream` and `KeyedStream`: the typed, fluent job graph.
//!
//! Building a stream only records the graph; nothing runs until
//! [`StreamEnv::execute`](crate::StreamEnv::execute), which instantiates the graph on every
//! worker thread, and again on every restart.

use super::data::{Data, Key};
use super::env::StreamEnv;
use super::functions::{Collector, FlatMapFunction, KeyedFlatMapFunction, MapFunction};
use super::print::{PrintFormat, PrintSink};
use super::process::{KeyedProcessFunction, ProcessLogic};
use super::time::{OutputTag, TimestampAssigner, WatermarkGenerator, WatermarkStrategy};
use super::tuple::Fields;
use crate::checkpoint::metadata::OperatorKind;
use crate::connectors::collect::{CollectHandle, CollectSink};
use crate::connectors::discard::{CountHandle, DiscardSink};
use crate::connectors::{Sink, Source, TwoPhaseCommitSink};
use crate::runtime::event::Ev;
pub(crate) use crate::runtime::nodes::SourceNode;
use crate::runtime::nodes::{
    AsEv, AssignNode, ChainedSource, CommittingSinkTerminal, FilterBatch, FilterNode, KeyByBatch,
    KeyByNode, KeyedNode, Shared, SideOutputNode, SinkTerminal, StatelessNode, TimedKeyByNode,
    TimedKeyedNode, TimedView,
};
use crate::runtime::operator::keyed::{KeyedLogic, KeyedRecord};
use crate::runtime::operator::timed::TimedLogic;
use crate::runtime::operators::{
    BatchFn, FlatMapBatch, KeyedAsTimed, MapBatch, ReduceLogic, SumLogic, TimedFilter,
    TimedFlatMap, TimedMap, UserKeyed,
};
use crate::runtime::plan::Node;
use crate::runtime::watermarks::Assign;
use crate::state::keygroup::KeyEncoder;
use crate::Result;
use std::sync::Arc;

/// A stream of records of type `T`.
///
/// ```
/// use floe::prelude::*;
/// let env = StreamEnv::new();
/// let out = env
///     .from_collection(vec!["a b".to_string(), "b".to_string()])
///     .flat_map(|line: String, out: &mut Collector<String>| line.split(' ').for_each(|w| out.collect(w.to_string())))
///     .map(|w| (w, 1i64))
///     .key_by(|t| t.0.clone())
///     .sum(1)
///     .collect();
/// env.execute("doc").unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, vec![("a".to_string(), 1), ("b".to_string(), 1), ("b".to_string(), 2)]);
/// ```
pub struct DataStream<T: Data> {
    pub(crate) env: StreamEnv,
    pub(crate) node: Arc<dyn Node<T>>,
    pub(crate) op: usize,
    pub(crate) chain: usize,
    /// Set while the stream is a source followed only by stateless operators: further
    /// stateless operators (and the key extraction of `key_by`) are chained into the
    /// source and run in its batch loop, before any exchange (Flink's operator chaining).
    pub(crate) source: Option<SourceChain<T>>,
    /// The output of an operator with side outputs (built once, read by the main stream
    /// and by [`get_side_output`](DataStream::get_side_output)).
    pub(crate) outputs: Option<Arc<dyn Node<Ev<T>>>>,
}

/// A source with the stateless operators chained to it.
pub(crate) struct SourceChain<T> {
    pub op: usize,
    pub source: Arc<dyn Source<T>>,
}

impl<T> Clone for SourceChain<T> {
    fn clone(&self) -> Self {
        SourceChain {
            op: self.op,
            source: Arc::clone(&self.source),
        }
    }
}

/// A stream partitioned by key: every record of a key goes to the subtask that owns the
/// key's key group, and operators on it have keyed state.
pub struct KeyedStream<K: Key, T: Data> {
    pub(crate) env: StreamEnv,
    pub(crate) node: Arc<dyn Node<KeyedRecord<K, T>>>,
}

impl<T: Data> DataStream<T> {
    fn then<U: Data>(&self, node: Arc<dyn Node<U>>, op: usize, chain: usize) -> DataStream<U> {
        DataStream {
            env: self.env.clone(),
            node,
            op,
            chain,
            source: None,
            outputs: None,
        }
    }

    /// Adds a stateless operator: chained into the source when the stream is still a
    /// source chain, otherwise as its own operator.
    fn stateless<U: Data, B, M>(self, name: &str, make: M) -> DataStream<U>
    where
        B: BatchFn<T, U>,
        M: Fn() -> B + Send + Sync + 'static,
    {
        let op = self.env.add_operator(name, None, Some(self.chain));
        let chain = self.chain;
        match &self.source {
            Some(sc) => {
                let source: Arc<dyn Source<U>> = Arc::new(ChainedSource {
                    inner: Arc::clone(&sc.source),
                    make,
                });
                let node = Arc::new(SourceNode {
                    op: sc.op,
                    source: Arc::clone(&source),
                });
                DataStream {
                    env: self.env.clone(),
                    node,
                    op,
                    chain,
                    source: Some(SourceChain { op: sc.op, source }),
                    outputs: None,
                }
            }
            None => {
                let node = Arc::new(StatelessNode {
                    up: Arc::clone(&self.node),
                    op,
                    make,
                });
                self.then(node, op, chain)
            }
        }
    }

    /// Adds a stateless operator on an event-time stream (its own operator, not chained).
    fn stateless_timed<U: Data, B, M>(self, name: &str, make: M) -> DataStream<U>
    where
        B: BatchFn<Ev<T>, Ev<U>>,
        M: Fn() -> B + Send + Sync + 'static,
    {
        let op = self.env.add_operator(name, None, Some(self.chain));
        let node = StatelessNode {
            up: Arc::new(AsEv(Arc::clone(&self.node))),
            op,
            make,
        };
        self.then(Arc::new(TimedView(Arc::new(node))), op, self.chain)
    }

    /// Gives every record its event timestamp and generates watermarks, one generator per
    /// subtask (Flink's `assignTimestampsAndWatermarks`). Chained into the source when it
    /// directly follows one. Watermarks the stream already had are replaced, except the end
    /// of the input. For watermarks per source split use
    /// [`StreamEnv::from_source`](crate::StreamEnv::from_source).
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let env = StreamEnv::new();
    /// let timed = env
    ///     .from_collection(vec![(1_000i64, 1u32)])
    ///     .assign_timestamps_and_watermarks(
    ///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(i64, u32), _| e.0),
    ///     );
    /// ```
    pub fn assign_timestamps_and_watermarks<G, A>(
        self,
        strategy: WatermarkStrategy<G, A>,
    ) -> DataStream<T>
    where
        G: WatermarkGenerator,
        A: TimestampAssigner<T>,
    {
        let interval = self.env.auto_watermark_interval();
        let name = "Timestamps/Watermarks";
        let op = self.env.add_operator(name, None, Some(self.chain));
        let chain = self.chain;
        if let (Some(sc), false) = (&self.source, self.node.timed()) {
            let source: Arc<dyn Source<Ev<T>>> = Arc::new(ChainedSource {
                inner: Arc::clone(&sc.source),
                make: move || Assign::new(&strategy, interval),
            });
            let node = Arc::new(SourceNode { op: sc.op, source });
            return self.then(Arc::new(TimedView(node)), op, chain);
        }
        let node = AssignNode {
            up: Arc::clone(&self.node),
            op,
            strategy,
            interval,
        };
        self.then(Arc::new(TimedView(Arc::new(node))), op, chain)
    }

    /// The side output `tag` of the operator that produced this stream (a process
    /// function or a window), with the operator's timestamps and watermarks (Flink's
    /// `getSideOutput`).
    pub fn get_side_output<V: Data>(&self, tag: &OutputTag<V>) -> DataStream<V> {
        let Some(outputs) = &self.outputs else {
            self.env.record_error(format!(
                "get_side_output('{}'): this stream is not the output of a process function or a window",
                tag.id
            ));
            return self.then(
                Arc::new(TimedView(Arc::new(SideOutputNode::<T, V> {
                    up: Arc::new(AsEv(Arc::clone(&self.node))),
                    op: self.op,
                    tag: tag.id.clone(),
                    _v: std::marker::PhantomData,
                }))),
                self.op,
                self.chain,
            );
        };
        let node = SideOutputNode::<T, V> {
            up: Arc::clone(outputs),
            op: self.op,
            tag: tag.id.clone(),
            _v: std::marker::PhantomData,
        };
        self.then(Arc::new(TimedView(Arc::new(node))), self.op, self.chain)
    }

    /// The stream of an event-time operator whose output is shared with its side outputs.
    pub(crate) fn with_side_outputs(
        env: StreamEnv,
        out: Arc<dyn Node<Ev<T>>>,
        op: usize,
        chain: usize,
    ) -> DataStream<T> {
        let shared: Arc<dyn Node<Ev<T>>> = Arc::new(Shared(out));
        DataStream {
            env,
            node: Arc::new(TimedView(Arc::clone(&shared))),
            op,
            chain,
            source: None,
            outputs: Some(shared),
        }
    }

    /// Sets the uid of the last operator: the stable id its state is stored under, so a
    /// savepoint still maps after the job's code changes. Set it on every stateful operator.
    pub fn uid(self, uid: &str) -> Self {
        self.env.set_uid(self.op, uid);
        self
    }

    /// Sets the display name of the last operator.
    pub fn name(self, name: &str) -> Self {
        self.env.set_name(self.op, name);
        self
    }

    /// Applies `f` to every record.
    pub fn map<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> U + Clone + Send + Sync + 'static,
    {
        self.map_function(FnMap(f))
    }

    /// Applies a fallible `f`; an `Err` fails the task.
    pub fn try_map<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> Result<U> + Clone + Send + Sync + 'static,
    {
        self.map_function(TryFnMap(f))
    }

    /// Applies a [`MapFunction`] (a rich function with `open()`).
    pub fn map_function<U: Data, F: MapFunction<T, U>>(self, f: F) -> DataStream<U> {
        if self.node.timed() {
            return self.stateless_timed("Map", move || TimedMap(f.clone()));
        }
        self.stateless("Map", move || MapBatch(f.clone()))
    }

    /// Emits zero or more records per input through a [`Collector`].
    pub fn flat_map<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T, &mut Collector<U>) + Clone + Send + Sync + 'static,
    {
        self.flat_map_function(FnFlatMap(f))
    }

    /// Emits every item of the iterator `f` returns.
    pub fn flat_map_iter<U: Data, I, F>(self, f: F) -> DataStream<U>
    where
        I: IntoIterator<Item = U>,
        F: FnMut(T) -> I + Clone + Send + Sync + 'static,
    {
        self.flat_map_function(FnFlatMapIter(f))
    }

    /// Applies a [`FlatMapFunction`] (a rich function with `open()`).
    pub fn flat_map_function<U: Data, F: FlatMapFunction<T, U>>(self, f: F) -> DataStream<U> {
        if self.node.timed() {
            return self.stateless_timed("Flat Map", move || {
                TimedFlatMap(f.clone(), Collector::default())
            });
        }
        self.stateless("Flat Map", move || {
            FlatMapBatch(f.clone(), Collector::default())
        })
    }

    /// Keeps the records for which `f` returns true.
    pub fn filter<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        if self.node.timed() {
            return self.stateless_timed("Filter", move || TimedFilter(f.clone()));
        }
        if self.source.is_some() {
            return self.stateless("Filter", move || FilterBatch(f.clone()));
        }
        let op = self.env.add_operator("Filter", None, Some(self.chain));
        let chain = self.chain;
        let node = Arc::new(FilterNode {
            up: Arc::clone(&self.node),
            op,
            f,
        });
        self.then(node, op, chain)
    }

    /// Partitions the stream by the key `f` extracts.
    pub fn key_by<K: Key, F>(self, f: F) -> KeyedStream<K, T>
    where
        F: Fn(&T) -> K + Clone + Send + Sync + 'static,
    {
        self.key_by_input(f, 0)
    }

    /// `key_by` as input `input` of a keyed operator (connected streams have two).
    pub(crate) fn key_by_input<K: Key, F>(self, f: F, input: u32) -> KeyedStream<K, T>
    where
        F: Fn(&T) -> K + Clone + Send + Sync + 'static,
    {
        if self.node.timed() {
            let keyed = TimedKeyByNode {
                up: Arc::clone(&self.node),
                f,
                input,
            };
            return KeyedStream {
                env: self.env.clone(),
                node: Arc::new(TimedView(Arc::new(keyed))),
            };
        }
        let node: Arc<dyn Node<KeyedRecord<K, T>>> = match &self.source {
            Some(sc) => {
                let source: Arc<dyn Source<KeyedRecord<K, T>>> = Arc::new(ChainedSource {
                    inner: Arc::clone(&sc.source),
                    make: move || KeyByBatch {
                        f: f.clone(),
                        enc: KeyEncoder::default(),
                    },
                });
                Arc::new(SourceNode { op: sc.op, source })
            }
            None => Arc::new(KeyByNode {
                up: Arc::clone(&self.node),
                f,
            }),
        };
        KeyedStream {
            env: self.env.clone(),
            node,
        }
    }

    /// Writes every record to standard output in Flink's format: `(spark,1)`, prefixed by
    /// `N> ` (the 1-based subtask) when the parallelism is greater than 1.
    pub fn print(self)
    where
        T: PrintFormat,
    {
        self.sink_named("Sink: Print to Std. Out", Arc::new(PrintSink));
    }

    /// Writes every record to a [`Sink`].
    pub fn sink_to<S: Sink<T>>(self, sink: S) {
        let name = format!("Sink: {}", sink.name());
        self.sink_named(&name, Arc::new(sink));
    }

    /// Counts and drops every record; the handle reads the count after the job.
    pub fn discard(self) -> CountHandle {
        let h = CountHandle::default();
        self.sink_named("Sink: Discard", Arc::new(DiscardSink(h.clone())));
        h
    }

    /// Collects every record in memory (for tests); the handle reads them after the job.
    pub fn collect(self) -> CollectHandle<T> {
        let h = CollectHandle::default();
        self.sink_named("Sink: Collect", Arc::new(CollectSink(h.clone())));
        h
    }

    /// Writes every record through a two-phase-commit sink: output becomes visible only
    /// when the checkpoint covering it completes, and a failure never duplicates or loses
    /// a record (Flink's `sinkTo` with an exactly-once sink such as `FileSink`). With
    /// checkpointing, the job takes a final checkpoint when its input ends so that all
    /// output is committed before it finishes. Without checkpointing there is no
    /// exactly-once: each subtask commits when its input ends, and a failure at that moment
    /// can repeat output after a restart.
    ///
    /// ```no_run
    /// use floe::prelude::*;
    /// use floe::connectors::file_sink::FileSink;
    ///
    /// let env = StreamEnv::new();
    /// env.enable_checkpointing(std::time::Duration::from_secs(1));
    /// env.from_collection(vec![1i64, 2, 3])
    ///     .sink_exactly_once(FileSink::for_row_format("/tmp/numbers"))
    ///     .uid("numbers-out");
    /// ```
    pub fn sink_exactly_once<S: TwoPhaseCommitSink<T>>(self, sink: S) -> SinkHandle {
        let name = format!("Sink: {}", sink.name());
        let op = self
            .env
            .add_operator(&name, Some(OperatorKind::Sink), Some(self.chain));
        self.env.add_terminal(Arc::new(CommittingSinkTerminal {
            up: self.node,
            op,
            sink: Arc::new(sink),
        }));
        SinkHandle { env: self.env, op }
    }

    fn sink_named(self, name: &str, sink: Arc<dyn Sink<T>>) {
        let op = self.env.add_operator(name, None, Some(self.chain));
        self.env.add_terminal(Arc::new(SinkTerminal {
            up: self.node,
            op,
            sink,
        }));
    }
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    fn keyed<U: Data, L: KeyedLogic<K, T, U>>(self, name: &str, logic: L) -> DataStream<U> {
        if self.node.timed() {
            // Keeps timestamps and watermarks; the plain path below stays as fast as it was.
            return self.timed_keyed(name, KeyedAsTimed(logic), 1);
        }
        let chain = self.env.new_chain();
        let op = self
            .env
            .add_operator(name, Some(OperatorKind::Keyed), Some(chain));
        let node = Arc::new(KeyedNode {
            up: self.node,
            op,
            logic,
        });
        DataStream {
            env: self.env,
            node,
            op,
            chain,
            source: None,
            outputs: None,
        }
    }

    /// Adds a timed keyed operator (process function, window, join) running `logic`;
    /// `inputs` logical inputs combine their watermarks.
    pub(crate) fn timed_keyed<U: Data, L: TimedLogic<K, T, U>>(
        self,
        name: &str,
        logic: L,
        inputs: u32,
    ) -> DataStream<U> {
        let chain = self.env.new_chain();
        let op = self
            .env
            .add_operator(name, Some(OperatorKind::Keyed), Some(chain));
        let node = Arc::new(TimedKeyedNode {
            up: self.node,
            op,
            logic,
            inputs,
        });
        DataStream::with_side_outputs(self.env, node, op, chain)
    }

    /// Flink's `sum(field)`: per key, adds field `field` of every record to a running
    /// tuple and emits the updated tuple. The field must exist and be numeric.
    pub fn sum(self, field: usize) -> DataStream<T>
    where
        T: Fields,
    {
        if !T::is_numeric(field) {
            self.env.record_error(format!(
                "sum({field}) on a keyed stream of {}: field {field} does not exist or is not numeric",
                std::any::type_name::<T>()
            ));
        }
        self.keyed(
            "Keyed Aggregation",
            SumLogic {
                field,
                state: Default::default(),
            },
        )
    }

    /// Flink's `reduce`: per key, combines every record with the previous result and emits it.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.keyed(
            "Keyed Reduce",
            ReduceLogic {
                f,
                state: Default::default(),
            },
        )
    }

    /// Applies a [`KeyedProcessFunction`]: keyed state, event-time and processing-time
    /// timers, side outputs (Flink's `process` on a `KeyedStream`).
    pub fn process<U: Data, F: KeyedProcessFunction<K, T, U>>(self, f: F) -> DataStream<U> {
        self.timed_keyed("KeyedProcess", ProcessLogic(f), 1)
    }

    /// Applies a [`KeyedFlatMapFunction`] with keyed state.
    pub fn flat_map<U: Data, F: KeyedFlatMapFunction<K, T, U>>(self, f: F) -> DataStream<U> {
        self.keyed("Flat Map", UserKeyed(f))
    }
}

#[derive(Clone)]
struct FnMap<F>(F);
impl<T, U, F: FnMut(T) -> U + Clone + Send + Sync + 'static> MapFunction<T, U> for FnMap<F> {
    #[inline]
    fn map(&mut self, value: T) -> Result<U> {
        Ok((self.0)(value))
    }
}

#[derive(Clone)]
struct TryFnMap<F>(F);
impl<T, U, F: FnMut(T) -> Result<U> + Clone + Send + Sync + 'static> MapFunction<T, U>
    for TryFnMap<F>
{
    #[inline]
    fn map(&mut self, value: T) -> Result<U> {
        (self.0)(value)
    }
}

#[derive(Clone)]
struct FnFlatMap<F>(F);
impl<T, U, F: FnMut(T, &mut Collector<U>) + Clone + Send + Sync + 'static> FlatMapFunction<T, U>
    for FnFlatMap<F>
{
    #[inline]
    fn flat_map(&mut self, value: T, out: &mut Collector<U>) -> Result<()> {
        (self.0)(value, out);
        Ok(())
    }
}

#[derive(Clone)]
struct FnFlatMapIter<F>(F);
impl<T, U, I: IntoIterator<Item = U>, F: FnMut(T) -> I + Clone + Send + Sync + 'static>
    FlatMapFunction<T, U> for FnFlatMapIter<F>
{
    #[inline]
    fn flat_map(&mut self, value: T, out: &mut Collector<U>) -> Result<()> {
        out.buf.extend((self.0)(value));
        Ok(())
    }
}

/// A stateful sink in the job graph: give it a uid so its pending output maps to it when
/// the job graph changes.
pub struct SinkHandle {
    env: StreamEnv,
    op: usize,
}

impl SinkHandle {
    /// Sets the sink's operator uid (see [`DataStream::uid`]).
    pub fn uid(self, uid: &str) -> Self {
        self.env.set_uid(self.op, uid);
        self
    }
}
