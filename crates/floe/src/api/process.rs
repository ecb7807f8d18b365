//! Process functions: per-record logic with timestamps, the watermark and side outputs;
//! on a keyed stream also with keyed state and timers (Flink's `KeyedProcessFunction`),
//! on any stream without them ([`ProcessFunction`]).
//!
//! ```
//! use floe::prelude::*;
//!
//! /// Emits `(key, count)` one second (event time) after a key's last record.
//! #[derive(Clone, Default)]
//! struct CountWithTimeout { count: ValueState<u64, WithDefault>, last: ValueState<i64> }
//!
//! impl KeyedProcessFunction<String, (i64, String), (String, u64)> for CountWithTimeout {
//!     fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
//!         self.count = ValueStateDescriptor::new("count").with_default(0u64).register(ctx)?;
//!         self.last = ValueStateDescriptor::new("last").register(ctx)?;
//!         Ok(())
//!     }
//!     fn process_element(&mut self, _v: (i64, String), ctx: &mut Context<'_, '_, String, (String, u64)>,
//!                        _out: &mut Collector<(String, u64)>) -> Result<()> {
//!         let n = self.count.value(ctx)? + 1;
//!         self.count.update(ctx, n)?;
//!         let ts = ctx.timestamp().unwrap_or(0);
//!         self.last.update(ctx, ts)?;
//!         ctx.timer_service().register_event_time_timer(ts + 1000)
//!     }
//!     fn on_timer(&mut self, ts: i64, ctx: &mut Context<'_, '_, String, (String, u64)>,
//!                 out: &mut Collector<(String, u64)>) -> Result<()> {
//!         if self.last.value(ctx)? == Some(ts - 1000) {
//!             out.collect((ctx.current_key().clone(), self.count.value(ctx)?));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::new();
//! let out = env
//!     .from_collection(vec![(1_000i64, "a".to_string()), (1_500, "a".to_string()), (9_000, "b".to_string())])
//!     .assign_timestamps_and_watermarks(
//!         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(i64, String), _| e.0),
//!     )
//!     .key_by(|e| e.1.clone())
//!     .process(CountWithTimeout::default())
//!     .collect();
//! env.execute("timeouts").unwrap();
//! let mut got = out.take();
//! got.sort();
//! assert_eq!(got, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
//! ```

use super::data::{Data, Key};
use super::functions::{Collector, RuntimeContext};
use super::stream::DataStream;
use super::time::{processing_time_now, OutputTag, TimeDomain, MIN_WATERMARK, NO_TIMESTAMP};
use crate::runtime::event::{Ev, SideRec};
use crate::runtime::nodes::{AsEv, StatelessNode};
use crate::runtime::operator::timed::{TimedCx, TimedLogic};
use crate::runtime::operator::timers::Timer;
use crate::runtime::operators::BatchFn;
use crate::state::KeyedContext;
use crate::Result;
use serde::Serialize;
use std::sync::Arc;

/// A function on a keyed stream with keyed state, timers and side outputs, like Flink's
/// `KeyedProcessFunction`. State handles are used with the [`Context`], which is scoped to
/// the current key (it dereferences to the key's [`KeyedContext`]).
pub trait KeyedProcessFunction<K, T, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record; register state here.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Processes one record of the current key. What `out` collects gets the record's
    /// timestamp.
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut Context<'_, '_, K, U>,
        out: &mut Collector<U>,
    ) -> Result<()>;
    /// A timer of the current key fired at `timestamp` ([`Context::time_domain`] says which
    /// clock). What `out` collects gets the timer's timestamp for event-time timers and no
    /// timestamp for processing-time timers.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut Context<'_, '_, K, U>,
        _out: &mut Collector<U>,
    ) -> Result<()> {
        Ok(())
    }
}

/// What a [`KeyedProcessFunction`] sees: the current key and its state, the record's or
/// timer's timestamp, the timer service and side outputs.
pub struct Context<'a, 'b, K, U> {
    cx: &'a mut TimedCx<'b, K, U, ()>,
    domain: Option<TimeDomain>,
}

impl<'a, 'b, K: Key, U: Data> Context<'a, 'b, K, U> {
    /// The context of a record (`domain: None`) or of a timer of that clock.
    pub(crate) fn new(cx: &'a mut TimedCx<'b, K, U, ()>, domain: Option<TimeDomain>) -> Self {
        Context { cx, domain }
    }
    /// The timestamp of the record being processed, or of the timer that fired; `None`
    /// for a record without one and for processing-time timers.
    pub fn timestamp(&self) -> Option<i64> {
        let ts = self.cx.timestamp();
        (ts != NO_TIMESTAMP).then_some(ts)
    }
    /// The current key.
    pub fn current_key(&self) -> &K {
        self.cx.key()
    }
    /// In `on_timer`: which clock the timer follows; `None` in `process_element`.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }
    /// Timers and time of the current key.
    pub fn timer_service(&mut self) -> TimerService<'_, 'b, K, U> {
        TimerService { cx: self.cx }
    }
    /// Emits `value` into the side output `tag`, with the current timestamp.
    pub fn output<V: Serialize>(&mut self, tag: &OutputTag<V>, value: V) -> Result<()> {
        let ts = self.cx.timestamp();
        self.cx.emit_side(tag, ts, &value)
    }
    /// The current key's state (what state handles take; the context also dereferences
    /// to it).
    pub fn state(&mut self) -> &mut KeyedContext<K> {
        self.cx.state()
    }
}

impl<K: Key, U: Data> std::ops::Deref for Context<'_, '_, K, U> {
    type Target = KeyedContext<K>;
    fn deref(&self) -> &KeyedContext<K> {
        self.cx.state_ref()
    }
}

impl<K: Key, U: Data> std::ops::DerefMut for Context<'_, '_, K, U> {
    fn deref_mut(&mut self) -> &mut KeyedContext<K> {
        self.cx.state()
    }
}

/// The timers and clocks of the current key (Flink's `TimerService`). A timer exists once
/// per key and timestamp: registering it again changes nothing.
pub struct TimerService<'a, 'b, K, U> {
    cx: &'a mut TimedCx<'b, K, U, ()>,
}

impl<K: Key, U: Data> TimerService<'_, '_, K, U> {
    /// The operator's current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.cx.current_watermark()
    }
    /// The wall clock, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.cx.current_processing_time()
    }
    /// Fires `on_timer` once the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.register_event_time_timer(time, ())
    }
    /// Fires `on_timer` once the wall clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.register_processing_time_timer(time, ())
    }
    /// Deletes the event-time timer at `time` (nothing when there is none).
    pub fn delete_event_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.delete_event_time_timer(time, &())
    }
    /// Deletes the processing-time timer at `time`.
    pub fn delete_processing_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.delete_processing_time_timer(time, &())
    }
}

/// Runs a [`KeyedProcessFunction`] as a timed keyed operator.
#[derive(Clone)]
pub(crate) struct ProcessLogic<F>(pub F);

impl<K: Key, T: Data, U: Data, F: KeyedProcessFunction<K, T, U>> TimedLogic<K, T, U>
    for ProcessLogic<F>
{
    type Namespace = ();

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }

    #[inline]
    fn on_record(&mut self, _ts: i64, value: T, cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        let mut out = cx.take_collector();
        let r = self
            .0
            .process_element(value, &mut Context::new(cx, None), &mut out);
        cx.emit_collected(out);
        r
    }

    fn on_timer(&mut self, timer: Timer<()>, cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        let mut out = cx.take_collector();
        let domain = Some(timer.domain);
        let r = self
            .0
            .on_timer(timer.timestamp, &mut Context::new(cx, domain), &mut out);
        cx.emit_collected(out);
        r
    }
}

/// Flink's message when a function on a non-keyed stream sets a timer.
pub(crate) const UNSUPPORTED_REGISTER_TIMER_MSG: &str =
    "Setting timers is only supported on a keyed streams.";
/// Flink's message when a function on a non-keyed stream deletes a timer.
pub(crate) const UNSUPPORTED_DELETE_TIMER_MSG: &str =
    "Deleting timers is only supported on a keyed streams.";

/// A function on a non-keyed stream that sees each record's timestamp, the current
/// watermark and side outputs (Flink's `ProcessFunction`). Timers and keyed state need a
/// keyed stream: use [`KeyedProcessFunction`] after `key_by`.
///
/// ```
/// use floe::prelude::*;
///
/// /// Passes records on; negative ones go to a side output.
/// #[derive(Clone)]
/// struct SplitNegative(OutputTag<i64>);
/// impl ProcessFunction<i64, i64> for SplitNegative {
///     fn process_element(&mut self, v: i64, ctx: &mut ProcessContext<'_>, out: &mut Collector<i64>) -> Result<()> {
///         if v < 0 { ctx.output(&self.0, v) } else { out.collect(v); Ok(()) }
///     }
/// }
///
/// let env = StreamEnv::new();
/// let negative = OutputTag::<i64>::new("negative");
/// let all = env.from_collection(vec![1i64, -2, 3]).process(SplitNegative(negative.clone()));
/// let neg = all.get_side_output(&negative).collect();
/// let pos = all.collect();
/// env.execute("split").unwrap();
/// assert_eq!((pos.take(), neg.take()), (vec![1, 3], vec![-2]));
/// ```
pub trait ProcessFunction<T, U>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first record.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Processes one record; what `out` collects gets the record's timestamp.
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<U>,
    ) -> Result<()>;
}

/// What a [`ProcessFunction`] sees: the record's timestamp, the watermark, side outputs.
pub struct ProcessContext<'a> {
    timestamp: i64,
    watermark: i64,
    side: &'a mut Vec<SideRec>,
}

impl ProcessContext<'_> {
    /// The timestamp of the record being processed; `None` when it has none.
    pub fn timestamp(&self) -> Option<i64> {
        (self.timestamp != NO_TIMESTAMP).then_some(self.timestamp)
    }
    /// The clocks; registering timers fails on a non-keyed stream, as in Flink.
    pub fn timer_service(&mut self) -> ProcessTimerService {
        ProcessTimerService {
            watermark: self.watermark,
        }
    }
    /// Emits `value` into the side output `tag`, with the record's timestamp.
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

/// The clocks of a [`ProcessFunction`] (Flink's `TimerService` of a non-keyed stream):
/// time is readable, but timers need a keyed stream.
pub struct ProcessTimerService {
    watermark: i64,
}

impl ProcessTimerService {
    /// The latest watermark this operator received.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
    /// The wall clock, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
    }
    /// Always fails: "Setting timers is only supported on a keyed streams." (Flink's
    /// `UnsupportedOperationException`).
    pub fn register_event_time_timer(&mut self, _time: i64) -> Result<()> {
        crate::bail!("{UNSUPPORTED_REGISTER_TIMER_MSG}")
    }
    /// Always fails, as [`register_event_time_timer`](Self::register_event_time_timer).
    pub fn register_processing_time_timer(&mut self, _time: i64) -> Result<()> {
        crate::bail!("{UNSUPPORTED_REGISTER_TIMER_MSG}")
    }
    /// Always fails: "Deleting timers is only supported on a keyed streams."
    pub fn delete_event_time_timer(&mut self, _time: i64) -> Result<()> {
        crate::bail!("{UNSUPPORTED_DELETE_TIMER_MSG}")
    }
    /// Always fails, as [`delete_event_time_timer`](Self::delete_event_time_timer).
    pub fn delete_processing_time_timer(&mut self, _time: i64) -> Result<()> {
        crate::bail!("{UNSUPPORTED_DELETE_TIMER_MSG}")
    }
}

/// Runs a [`ProcessFunction`] over event-time elements: outputs keep the record's
/// timestamp, watermarks pass and are what `current_watermark()` reads.
pub(crate) struct ProcessBatch<F, U> {
    f: F,
    collector: Collector<U>,
    side: Vec<SideRec>,
    watermark: i64,
}

impl<F, U> ProcessBatch<F, U> {
    pub fn new(f: F) -> Self {
        ProcessBatch {
            f,
            collector: Collector::default(),
            side: Vec::new(),
            watermark: MIN_WATERMARK,
        }
    }
}

impl<T: 'static, U: 'static, F: ProcessFunction<T, U>> BatchFn<Ev<T>, Ev<U>>
    for ProcessBatch<F, U>
{
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.f.open(ctx)
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<Ev<T>>, out: &mut Vec<Ev<U>>) -> Result<()> {
        for e in input.drain(..) {
            match e {
                Ev::Rec(ts, v) => {
                    let mut ctx = ProcessContext {
                        timestamp: ts,
                        watermark: self.watermark,
                        side: &mut self.side,
                    };
                    let r = self.f.process_element(v, &mut ctx, &mut self.collector);
                    out.extend(self.side.drain(..).map(Ev::Side));
                    out.extend(self.collector.buf.drain(..).map(|u| Ev::Rec(ts, u)));
                    r?;
                }
                Ev::Mark(m) => {
                    if !m.idle {
                        self.watermark = self.watermark.max(m.wm);
                    }
                    out.push(Ev::Mark(m));
                }
                Ev::Side(_) => {}
            }
        }
        Ok(())
    }
}

impl<T: Data> DataStream<T> {
    /// Applies a [`ProcessFunction`] to every record (Flink's `process` on a
    /// `DataStream`); its side outputs are read with
    /// [`get_side_output`](DataStream::get_side_output).
    pub fn process<U: Data, F: ProcessFunction<T, U>>(self, f: F) -> DataStream<U> {
        let op = self.env.add_operator("Process", None, Some(self.chain));
        let node = StatelessNode {
            up: Arc::new(AsEv(Arc::clone(&self.node))),
            op,
            make: move || ProcessBatch::new(f.clone()),
        };
        DataStream::with_side_outputs(self.env.clone(), Arc::new(node), op, self.chain)
    }
}
