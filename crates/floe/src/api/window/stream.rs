//! `KeyedStream::window` and `WindowedStream` (Flink's `WindowedStream`).

use super::{
    AggregateFunction, CountEvictor, CountTrigger, Evictor, GlobalWindows, ProcessWindowFunction,
    PurgingTrigger, Trigger, WindowAssigner,
};
use crate::api::data::{Data, Key};
use crate::api::stream::{DataStream, KeyedStream};
use crate::api::time::OutputTag;
use crate::runtime::operator::window::contents::{
    AggregateContents, Contents, ListContents, ReduceContents, TimestampedContents,
};
use crate::runtime::operator::window::functions::{
    Aggregated, Emit, Evicting, FoldAggregate, FoldReduce, Listed, Process, Reduced, WindowFn,
};
use crate::runtime::operator::window::operator::WindowLogic;
use std::marker::PhantomData;
use std::time::Duration;

use super::assigners::millis;

impl<K: Key, T: Data> KeyedStream<K, T> {
    /// Groups the elements of every key into windows (Flink's `window(assigner)`); evaluate
    /// them with `reduce`, `aggregate` or `process`.
    ///
    /// ```
    /// use floe::prelude::*;
    /// use floe::api::window::TumblingEventTimeWindows;
    /// use std::time::Duration;
    ///
    /// let env = StreamEnv::new();
    /// let out = env
    ///     .from_collection(vec![(1_000i64, "a".to_string()), (1_500, "a".into()), (12_000, "a".into())])
    ///     .assign_timestamps_and_watermarks(
    ///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(i64, String), _| e.0),
    ///     )
    ///     .map(|(_, w)| (w, 1u64))
    ///     .key_by(|t| t.0.clone())
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
    ///     .reduce(|a, b| (a.0, a.1 + b.1))
    ///     .collect();
    /// env.execute("windows").unwrap();
    /// assert_eq!(out.take(), vec![("a".to_string(), 2), ("a".to_string(), 1)]);
    /// ```
    pub fn window<A: WindowAssigner<T>>(
        self,
        assigner: A,
    ) -> WindowedStream<K, T, A, A::DefaultTrigger> {
        if let Err(e) = assigner.validate() {
            self.env.record_error(e);
        }
        let trigger = assigner.default_trigger();
        WindowedStream {
            input: self,
            assigner,
            trigger,
            allowed_lateness: 0,
            late_tag: None,
            inputs: 1,
        }
    }

    /// Windows of `size` elements per key, fired and purged when full (Flink's
    /// `countWindow(size)`: global windows with a purging count trigger).
    pub fn count_window(
        self,
        size: u64,
    ) -> WindowedStream<K, T, GlobalWindows, PurgingTrigger<CountTrigger>> {
        if size == 0 {
            self.env
                .record_error("count_window(0): the window size must be positive".into());
        }
        self.window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// The last `size` elements per key, evaluated every `slide` elements (Flink's
    /// `countWindow(size, slide)`: global windows, a count evictor and a count trigger).
    pub fn count_window_sliding(
        self,
        size: u64,
        slide: u64,
    ) -> EvictingWindowedStream<K, T, GlobalWindows, CountTrigger, CountEvictor> {
        if size == 0 || slide == 0 {
            self.env.record_error(format!(
                "count_window_sliding({size}, {slide}): the window size and slide must be positive"
            ));
        }
        self.window(GlobalWindows::create())
            .evictor(CountEvictor::of(size))
            .trigger(CountTrigger::of(slide))
    }
}

impl<T: Data> DataStream<T> {
    /// Windows over the whole stream, evaluated by one subtask (Flink's `windowAll`).
    pub fn window_all<A: WindowAssigner<T>>(
        self,
        assigner: A,
    ) -> WindowedStream<(), T, A, A::DefaultTrigger> {
        self.key_by(|_| ()).window(assigner)
    }

    /// Windows of `size` elements of the whole stream (Flink's `countWindowAll(size)`).
    pub fn count_window_all(
        self,
        size: u64,
    ) -> WindowedStream<(), T, GlobalWindows, PurgingTrigger<CountTrigger>> {
        self.key_by(|_| ()).count_window(size)
    }

    /// The last `size` elements of the whole stream every `slide` elements (Flink's
    /// `countWindowAll(size, slide)`).
    pub fn count_window_all_sliding(
        self,
        size: u64,
        slide: u64,
    ) -> EvictingWindowedStream<(), T, GlobalWindows, CountTrigger, CountEvictor> {
        self.key_by(|_| ()).count_window_sliding(size, slide)
    }
}

/// A keyed stream grouped into windows (Flink's `WindowedStream`): set the trigger, the
/// allowed lateness and the late-data side output, then evaluate the windows.
pub struct WindowedStream<K: Key, T: Data, A: WindowAssigner<T>, Tr: Trigger<T, A::W>> {
    input: KeyedStream<K, T>,
    assigner: A,
    trigger: Tr,
    allowed_lateness: i64,
    late_tag: Option<OutputTag<T>>,
    /// Logical inputs whose watermarks combine (2 for a window join's tagged union).
    pub(crate) inputs: u32,
}

fn check_trigger<K: Key, T: Data, A: WindowAssigner<T>, Tr2: Trigger<T, A::W>>(
    input: &KeyedStream<K, T>,
    assigner: &A,
    trigger: &Tr2,
) {
    if assigner.is_merging() && !trigger.can_merge() {
        input.env.record_error(
            "A merging window assigner cannot be used with a trigger that does not support merging."
                .into(),
        );
    }
}

impl<K: Key, T: Data, A: WindowAssigner<T>, Tr: Trigger<T, A::W>> WindowedStream<K, T, A, Tr> {
    /// Replaces the assigner's default trigger.
    pub fn trigger<Tr2: Trigger<T, A::W>>(self, trigger: Tr2) -> WindowedStream<K, T, A, Tr2> {
        check_trigger(&self.input, &self.assigner, &trigger);
        WindowedStream {
            input: self.input,
            assigner: self.assigner,
            trigger,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            inputs: self.inputs,
        }
    }

    /// Removes elements before or after each evaluation (Flink's `evictor`). The window
    /// then keeps all its elements, even for `reduce` and `aggregate`.
    pub fn evictor<E: Evictor<T, A::W>>(
        self,
        evictor: E,
    ) -> EvictingWindowedStream<K, T, A, Tr, E> {
        EvictingWindowedStream {
            inner: self,
            evictor,
        }
    }

    /// Keeps event-time windows for `lateness` after the watermark passed their end:
    /// elements arriving meanwhile are added and fire the window again with the updated
    /// result (Flink's `allowedLateness`). Processing-time windows ignore it.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = millis(lateness);
        self
    }

    /// Sends elements that arrive after their windows' allowed lateness to the side output
    /// `tag` instead of dropping them (Flink's `sideOutputLateData`); read it with
    /// `get_side_output(&tag)` on the result.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.clone());
        self
    }

    fn build<C: Contents<T>, R: Data, F: WindowFn<K, A::W, C::Acc, R>>(
        self,
        contents: C,
        function: F,
    ) -> DataStream<R> {
        let logic = WindowLogic::new(
            self.assigner,
            self.trigger,
            contents,
            function,
            self.allowed_lateness,
            self.late_tag,
        );
        self.input.timed_keyed("Window", logic, self.inputs)
    }

    /// Reduces the elements of each window, incrementally: each window keeps one value.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.build(ReduceContents(f), Reduced(Emit))
    }

    /// Aggregates the elements of each window with an [`AggregateFunction`],
    /// incrementally: each window keeps one accumulator.
    pub fn aggregate<ACC: Data, R: Data, G: AggregateFunction<T, ACC, R>>(
        self,
        agg: G,
    ) -> DataStream<R> {
        self.build(
            AggregateContents {
                agg: agg.clone(),
                _p: PhantomData,
            },
            Aggregated {
                agg,
                then: Emit,
                _p: PhantomData,
            },
        )
    }

    /// Evaluates each window with all its elements and its metadata.
    pub fn process<R: Data, P: ProcessWindowFunction<T, R, K, A::W>>(self, f: P) -> DataStream<R> {
        self.build(ListContents, Listed(Process(f)))
    }

    /// Reduces incrementally and hands the one reduced value to `f` with the window's
    /// metadata (Flink's `reduce(ReduceFunction, ProcessWindowFunction)`).
    pub fn reduce_with<F, R: Data, P: ProcessWindowFunction<T, R, K, A::W>>(
        self,
        reduce: F,
        f: P,
    ) -> DataStream<R>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.build(ReduceContents(reduce), Reduced(Process(f)))
    }

    /// Aggregates incrementally and hands the result to `f` with the window's metadata
    /// (Flink's `aggregate(AggregateFunction, ProcessWindowFunction)`).
    pub fn aggregate_with<ACC: Data, V: Data, R: Data, G, P>(self, agg: G, f: P) -> DataStream<R>
    where
        G: AggregateFunction<T, ACC, V>,
        P: ProcessWindowFunction<V, R, K, A::W>,
    {
        self.build(
            AggregateContents {
                agg: agg.clone(),
                _p: PhantomData,
            },
            Aggregated {
                agg,
                then: Process(f),
                _p: PhantomData,
            },
        )
    }
}

/// A [`WindowedStream`] with an evictor (Flink's `EvictingWindowOperator`): windows keep
/// all their elements with their timestamps.
pub struct EvictingWindowedStream<K: Key, T: Data, A: WindowAssigner<T>, Tr: Trigger<T, A::W>, E> {
    inner: WindowedStream<K, T, A, Tr>,
    evictor: E,
}

impl<K, T, A, Tr, E> EvictingWindowedStream<K, T, A, Tr, E>
where
    K: Key,
    T: Data,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    E: Evictor<T, A::W>,
{
    /// Replaces the trigger.
    pub fn trigger<Tr2: Trigger<T, A::W>>(
        self,
        trigger: Tr2,
    ) -> EvictingWindowedStream<K, T, A, Tr2, E> {
        EvictingWindowedStream {
            inner: self.inner.trigger(trigger),
            evictor: self.evictor,
        }
    }
    /// See [`WindowedStream::allowed_lateness`].
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.inner = self.inner.allowed_lateness(lateness);
        self
    }
    /// See [`WindowedStream::side_output_late_data`].
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.inner = self.inner.side_output_late_data(tag);
        self
    }
    /// Reduces the remaining elements at each evaluation.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        let then = FoldReduce { f, then: Emit };
        self.inner.build(
            TimestampedContents,
            Evicting {
                evictor: self.evictor,
                then,
            },
        )
    }
    /// Aggregates the remaining elements at each evaluation.
    pub fn aggregate<ACC: Data, R: Data, G: AggregateFunction<T, ACC, R>>(
        self,
        agg: G,
    ) -> DataStream<R> {
        let then = FoldAggregate {
            agg,
            then: Emit,
            _p: PhantomData,
        };
        self.inner.build(
            TimestampedContents,
            Evicting {
                evictor: self.evictor,
                then,
            },
        )
    }
    /// Evaluates the remaining elements with a [`ProcessWindowFunction`].
    pub fn process<R: Data, P: ProcessWindowFunction<T, R, K, A::W>>(self, f: P) -> DataStream<R> {
        self.inner.build(
            TimestampedContents,
            Evicting {
                evictor: self.evictor,
                then: Process(f),
            },
        )
    }
    /// Reduces the remaining elements and hands the result to `f`.
    pub fn reduce_with<F, R: Data, P: ProcessWindowFunction<T, R, K, A::W>>(
        self,
        reduce: F,
        f: P,
    ) -> DataStream<R>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        let then = FoldReduce {
            f: reduce,
            then: Process(f),
        };
        self.inner.build(
            TimestampedContents,
            Evicting {
                evictor: self.evictor,
                then,
            },
        )
    }
    /// Aggregates the remaining elements and hands the result to `f`.
    pub fn aggregate_with<ACC: Data, V: Data, R: Data, G, P>(self, agg: G, f: P) -> DataStream<R>
    where
        G: AggregateFunction<T, ACC, V>,
        P: ProcessWindowFunction<V, R, K, A::W>,
    {
        let then = FoldAggregate {
            agg,
            then: Process(f),
            _p: PhantomData,
        };
        self.inner.build(
            TimestampedContents,
            Evicting {
                evictor: self.evictor,
                then,
            },
        )
    }
}
