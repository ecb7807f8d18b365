//! Stateless operators, sinks, and the built-in keyed aggregations.
//!
//! Every operator works a whole batch at a time: user functions are called directly in a
//! loop over the batch (no dynamic dispatch per record) and the results are handed
//! downstream as one container.

use super::attempt::{AttemptControl, FailureCause};
use super::event::Ev;
use super::failure;
use super::operator::keyed::{KeyedLogic, KeyedRecord};
use super::operator::timed::{TimedCx, TimedLogic};
use super::operator::timers::Timer;
use super::plan::BuildCx;
use super::Time;
use crate::api::data::{Data, Key};
use crate::api::functions::{
    Collector, FlatMapFunction, KeyedFlatMapFunction, MapFunction, RuntimeContext,
};
use crate::api::tuple::Fields;
use crate::connectors::Sink;
use crate::state::{KeyedContext, ValueState, ValueStateDescriptor};
use crate::Result;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::StreamVec;

/// A stateless batch transformation: `input` in, results appended to `out`.
pub(crate) trait BatchFn<T, U>: 'static {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()>;
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<U>) -> Result<()>;
    /// The input ended (chained into a source): the last output, e.g. the final watermark.
    fn end(&mut self, _out: &mut Vec<U>) {}
    /// Chained into a source that has no subtask on this worker: what it emits instead of
    /// its input (nothing, or a watermark generator's absent channel).
    fn without_input(&mut self, out: &mut Vec<U>) {
        self.end(out);
    }
}

pub(crate) struct MapBatch<F>(pub F);
impl<T, U, F: MapFunction<T, U>> BatchFn<T, U> for MapBatch<F> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<U>) -> Result<()> {
        out.reserve(input.len());
        for v in input.drain(..) {
            out.push(self.0.map(v)?);
        }
        Ok(())
    }
}

pub(crate) struct FlatMapBatch<F, U>(pub F, pub Collector<U>);
impl<T, U: 'static, F: FlatMapFunction<T, U>> BatchFn<T, U> for FlatMapBatch<F, U> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<U>) -> Result<()> {
        std::mem::swap(&mut self.1.buf, out);
        let mut r = Ok(());
        for v in input.drain(..) {
            if let Err(e) = self.0.flat_map(v, &mut self.1) {
                r = Err(e);
                break;
            }
        }
        std::mem::swap(&mut self.1.buf, out);
        r
    }
}

/// Instantiates a stateless operator on this worker. `open` runs first, on the worker.
pub(crate) fn build_stateless<'s, T: Data, U: Data, B: BatchFn<T, U>>(
    cx: &mut BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, T>,
    mut f: B,
) -> Result<StreamVec<'s, Time, U>> {
    let display = cx.task_display(op);
    let info = cx.task_info(op);
    failure::set_current_task(&display);
    f.open(&mut RuntimeContext {
        info: &info,
        registry: None,
    })
    .map_err(|e| e.context(format!("open() of {display} failed")))?;
    let attempt = Arc::clone(cx.attempt);
    let name = cx.plan.operators[op].name.clone();
    Ok(input.unary(Pipeline, &name, move |_, _| {
        let mut failed = false;
        let mut out: Vec<U> = Vec::new();
        move |input, output| {
            if failed {
                input.for_each(|_, d| d.clear());
                return;
            }
            failure::set_current_task(&display);
            input.for_each(|cap, data| {
                if failed {
                    data.clear();
                    return;
                }
                if let Err(e) = f.apply(data, &mut out) {
                    failed = true;
                    data.clear();
                    out.clear();
                    attempt
                        .control
                        .fail(&display, format!("{e:#}"), FailureCause::User);
                    return;
                }
                if !out.is_empty() {
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                }
            });
        }
    }))
}

/// Keeps the records for which `pred` is true, in place.
pub(crate) fn build_filter<'s, T: Data, P>(
    cx: &mut BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, T>,
    mut pred: P,
) -> StreamVec<'s, Time, T>
where
    P: FnMut(&T) -> bool + 'static,
{
    let name = cx.plan.operators[op].name.clone();
    let display = cx.task_display(op);
    input.unary(Pipeline, &name, move |_, _| {
        move |input, output| {
            failure::set_current_task(&display);
            input.for_each(|cap, data| {
                data.retain(&mut pred);
                if !data.is_empty() {
                    output.session(&cap).give_container(data);
                }
            });
        }
    })
}

/// Instantiates a sink and attaches the worker's probe after it.
pub(crate) fn build_sink<T: Data>(
    cx: &mut BuildCx<'_, '_>,
    op: usize,
    input: StreamVec<'_, Time, T>,
    sink: &Arc<dyn Sink<T>>,
) -> Result<()> {
    let display = cx.task_display(op);
    let info = cx.task_info(op);
    failure::set_current_task(&display);
    let mut writer = sink.create(&info)?;
    let attempt = Arc::clone(cx.attempt);
    let name = cx.plan.operators[op].name.clone();
    let probe = cx.probe.clone();
    input
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, &name, move |_, _| {
            let mut failed = false;
            move |input, _output| {
                failure::set_current_task(&display);
                input.for_each(|_cap, data| {
                    if failed {
                        data.clear();
                        return;
                    }
                    if let Err(e) = writer.write_batch(data) {
                        failed = true;
                        attempt
                            .control
                            .fail(&display, format!("{e:#}"), FailureCause::User);
                    }
                    data.clear();
                });
            }
        })
        .probe_with(&probe);
    Ok(())
}

/// Flink's `sum(field)`: keeps the running tuple per key (the first record's other fields)
/// and emits it after every update.
#[derive(Clone)]
pub(crate) struct SumLogic<T> {
    pub field: usize,
    pub state: ValueState<T>,
}

impl<K: Key, T: Data + Fields> KeyedLogic<K, T, T> for SumLogic<T> {
    /// Resolves the state table once per batch: the aggregation's hot loop is a key lookup
    /// and an add.
    fn process_batch(
        &mut self,
        batch: &mut Vec<KeyedRecord<K, T>>,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<T>,
        _control: &AttemptControl,
    ) -> Result<()> {
        let field = self.field;
        out.buf.reserve(batch.len());
        let buf = &mut out.buf;
        ctx.for_each_in_table::<T, T>(
            self.state.id,
            batch.drain(..).map(|r| (r.hash, r.key, r.value)),
            |slot, t, value| match t.get_mut(slot) {
                Some(acc) => {
                    acc.add_field(field, &value);
                    buf.push(acc.clone());
                }
                None => {
                    buf.push(value.clone());
                    t.set(slot, Some(value));
                }
            },
        )
    }

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.state = ValueStateDescriptor::<T>::new("aggregate").register(ctx)?;
        Ok(())
    }

    #[inline]
    fn process(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<T>,
    ) -> Result<()> {
        let slot = ctx.current;
        let t = ctx.registry.table_mut::<T>(self.state.id, slot)?;
        match t.get_mut(slot) {
            Some(acc) => {
                acc.add_field(self.field, &value);
                out.collect(acc.clone());
            }
            None => {
                t.set(slot, Some(value.clone()));
                out.collect(value);
            }
        }
        Ok(())
    }
}

/// Flink's `reduce`: folds every record of a key into the previous result and emits it.
#[derive(Clone)]
pub(crate) struct ReduceLogic<T, F> {
    pub f: F,
    pub state: ValueState<T>,
}

impl<K: Key, T: Data, F> KeyedLogic<K, T, T> for ReduceLogic<T, F>
where
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.state = ValueStateDescriptor::<T>::new("reduce").register(ctx)?;
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<KeyedRecord<K, T>>,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<T>,
        _control: &AttemptControl,
    ) -> Result<()> {
        let f = &mut self.f;
        out.buf.reserve(batch.len());
        let buf = &mut out.buf;
        ctx.for_each_in_table::<T, T>(
            self.state.id,
            batch.drain(..).map(|r| (r.hash, r.key, r.value)),
            |slot, t, value| {
                let next = match t.get_mut(slot) {
                    Some(acc) => f(acc.clone(), value),
                    None => value,
                };
                buf.push(next.clone());
                t.set(slot, Some(next));
            },
        )
    }

    #[inline]
    fn process(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<T>,
    ) -> Result<()> {
        let slot = ctx.current;
        let t = ctx.registry.table_mut::<T>(self.state.id, slot)?;
        let next = match t.get_mut(slot) {
            Some(acc) => (self.f)(acc.clone(), value),
            None => value,
        };
        out.collect(next.clone());
        t.set(slot, Some(next));
        Ok(())
    }
}

/// A user's [`KeyedFlatMapFunction`].
#[derive(Clone)]
pub(crate) struct UserKeyed<F>(pub F);

impl<K: Key, T: Data, U: Data, F: KeyedFlatMapFunction<K, T, U>> KeyedLogic<K, T, U>
    for UserKeyed<F>
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn process(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<U>,
    ) -> Result<()> {
        self.0.flat_map(value, ctx, out)
    }
}

/// A [`MapFunction`] on an event-time stream: each result keeps its input's timestamp;
/// watermarks pass.
pub(crate) struct TimedMap<F>(pub F);
impl<T: 'static, U: 'static, F: MapFunction<T, U>> BatchFn<Ev<T>, Ev<U>> for TimedMap<F> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Ev<T>>, out: &mut Vec<Ev<U>>) -> Result<()> {
        out.reserve(input.len());
        for e in input.drain(..) {
            match e {
                Ev::Rec(ts, v) => out.push(Ev::Rec(ts, self.0.map(v)?)),
                Ev::Mark(m) => out.push(Ev::Mark(m)),
                Ev::Side(_) => {}
            }
        }
        Ok(())
    }
}

/// A [`FlatMapFunction`] on an event-time stream: every output keeps its input's timestamp.
pub(crate) struct TimedFlatMap<F, U>(pub F, pub Collector<U>);
impl<T: 'static, U: 'static, F: FlatMapFunction<T, U>> BatchFn<Ev<T>, Ev<U>>
    for TimedFlatMap<F, U>
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Ev<T>>, out: &mut Vec<Ev<U>>) -> Result<()> {
        for e in input.drain(..) {
            match e {
                Ev::Rec(ts, v) => {
                    self.0.flat_map(v, &mut self.1)?;
                    out.extend(self.1.buf.drain(..).map(|u| Ev::Rec(ts, u)));
                }
                Ev::Mark(m) => out.push(Ev::Mark(m)),
                Ev::Side(_) => {}
            }
        }
        Ok(())
    }
}

/// A filter on an event-time stream.
pub(crate) struct TimedFilter<F>(pub F);
impl<T: 'static, F: FnMut(&T) -> bool + 'static> BatchFn<Ev<T>, Ev<T>> for TimedFilter<F> {
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Ev<T>>, out: &mut Vec<Ev<T>>) -> Result<()> {
        let f = &mut self.0;
        input.retain(|e| match e {
            Ev::Rec(_, v) => f(v),
            Ev::Mark(_) => true,
            Ev::Side(_) => false,
        });
        out.append(input);
        Ok(())
    }
}

/// A keyed operator's logic (`sum`, `reduce`, keyed `flat_map`) on an event-time stream:
/// run by the timed keyed operator so that every output keeps its input record's
/// timestamp and watermarks pass on. Plain streams keep the plain keyed operator and its
/// batch loop.
#[derive(Clone)]
pub(crate) struct KeyedAsTimed<L>(pub L);

impl<K: Key, T: Data, U: Data, L: KeyedLogic<K, T, U>> TimedLogic<K, T, U> for KeyedAsTimed<L> {
    type Namespace = ();

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }

    #[inline]
    fn on_record(&mut self, _ts: i64, value: T, cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        let mut out = cx.take_collector();
        let r = self.0.process(value, cx.state(), &mut out);
        cx.emit_collected(out);
        r
    }

    fn on_timer(&mut self, _timer: Timer<()>, _cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        // The logic registers no timers.
        Ok(())
    }
}
