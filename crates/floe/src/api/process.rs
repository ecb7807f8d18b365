//! Keyed process functions: per-record logic with keyed state, timers and side outputs
//! (Flink's `KeyedProcessFunction`).
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
use super::time::{OutputTag, TimeDomain, NO_TIMESTAMP};
use crate::runtime::operator::timed::{TimedCx, TimedLogic};
use crate::runtime::operator::timers::Timer;
use crate::state::KeyedContext;
use crate::Result;
use serde::Serialize;

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

impl<'b, K: Key, U: Data> Context<'_, 'b, K, U> {
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
            .process_element(value, &mut Context { cx, domain: None }, &mut out);
        cx.emit_collected(out);
        r
    }

    fn on_timer(&mut self, timer: Timer<()>, cx: &mut TimedCx<'_, K, U, ()>) -> Result<()> {
        let mut out = cx.take_collector();
        let domain = Some(timer.domain);
        let r = self
            .0
            .on_timer(timer.timestamp, &mut Context { cx, domain }, &mut out);
        cx.emit_collected(out);
        r
    }
}
