//! The timed keyed operator: keyed state, timers and watermarks (Flink's
//! `KeyedProcessOperator`/`WindowOperator` base). Process functions, windows and joins are
//! [`TimedLogic`]s run by it.
//!
//! Its input is an event-time stream of keyed records ([`Ev`]), exchanged by key group with
//! every mark replicated to every subtask. Per element, in channel order:
//! - a record makes its key current and goes to [`TimedLogic::on_record`] with its timestamp;
//! - a mark updates the [`WatermarkTracker`]; when the combined watermark advances, every
//!   event-time timer at or before it fires ([`TimedLogic::on_timer`]), then the watermark
//!   goes downstream.
//!
//! Processing-time timers fire on activation when the wall clock reached them (the
//! operator asks to be activated at the next one). When the input ends the watermark moves
//! to the end of time, so every event-time timer fires.
//!
//! Everything it holds is keyed state of the operator: the logic's states, the timers
//! (`_timers`) and the combined watermark, one `_watermark` entry per key group it owns
//! (restored as the tracker's floor: the minimum of what the new subtask's key groups hold).
//! Built on [`super::aligned`], so its snapshot is taken at the checkpoint's cut.

use super::aligned::{build_aligned, Aligned};
use super::keyed::{check_keyed_with, restore_keyed, KeyedRecord, OPERATOR_ENTRY_KEY};
use super::timers::{Timer, TimerService};
use super::{Checkpointed, SnapshotState};
use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext};
use crate::api::time::{processing_time_now, OutputTag, TimeDomain, NO_TIMESTAMP};
use crate::checkpoint::metadata::{LoadedSnapshot, OperatorKind};
use crate::checkpoint::restore::{OperatorRestore, StateCheck};
use crate::runtime::attempt::AttemptControl;
use crate::runtime::event::{Combined, Ev, Mark, SideRec, WatermarkTracker};
use crate::runtime::failure;
use crate::runtime::plan::{BuildCx, Plan};
use crate::runtime::Time;
use crate::state::backend::DeltaEntry;
use crate::state::keygroup::{
    key_group_for_hash, key_group_range_for_subtask, subtask_for_key_group, KeyGroupRange,
};
use crate::state::{decode_value, encode_value, KeyedContext};
use crate::Result;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::StreamVec;

pub(crate) use crate::state::file::WATERMARK_STATE;

/// What a timed keyed operator does with records and timers of the current key.
pub(crate) trait TimedLogic<K: Key, T: Data, U: Data>:
    Clone + Send + Sync + 'static
{
    /// What timers are scoped to besides the key: `()` for process functions, the window
    /// for windows.
    type Namespace: Data + Ord;

    /// Registers the logic's states (called once per subtask, before restore).
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()>;

    /// One record of the current key with its timestamp ([`NO_TIMESTAMP`] when none).
    fn on_record(
        &mut self,
        ts: i64,
        value: T,
        cx: &mut TimedCx<'_, K, U, Self::Namespace>,
    ) -> Result<()>;

    /// The keyed state (an id from its registration) that nearly every record reads, which
    /// the operator prefetches a few records ahead.
    fn hot_state(&self) -> Option<u32> {
        None
    }

    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        timer: Timer<Self::Namespace>,
        cx: &mut TimedCx<'_, K, U, Self::Namespace>,
    ) -> Result<()>;
}

/// What a [`TimedLogic`] sees while it handles a record or a timer: the current key's
/// state, the timers, the watermark and the output.
pub(crate) struct TimedCx<'a, K, U, N> {
    state: &'a mut KeyedContext<K>,
    timers: &'a mut TimerService<N>,
    out: &'a mut Vec<Ev<U>>,
    collector: &'a mut Collector<U>,
    timestamp: i64,
    watermark: i64,
    /// The wall clock, read once per batch (a clock read per record costs as much as the
    /// rest of a window's bookkeeping).
    now: i64,
}

impl<K: Key, U: Data, N: Data + Ord> TimedCx<'_, K, U, N> {
    /// The current key's state (for state handles).
    #[inline]
    pub fn state(&mut self) -> &mut KeyedContext<K> {
        self.state
    }
    /// The current key's state, read-only.
    #[inline]
    pub fn state_ref(&self) -> &KeyedContext<K> {
        self.state
    }
    /// The current key.
    #[inline]
    pub fn key(&self) -> &K {
        self.state.current_key()
    }
    /// The timestamp of the record or the timer being handled ([`NO_TIMESTAMP`] for a
    /// record without one and for processing-time timers).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The operator's current event-time watermark.
    #[inline]
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
    /// The wall clock in milliseconds since the epoch (read when the batch began).
    pub fn current_processing_time(&self) -> i64 {
        self.now
    }
    /// Registers an event-time timer of the current key (once per timestamp and namespace).
    pub fn register_event_time_timer(&mut self, ts: i64, ns: N) -> Result<()> {
        let slot = self.state.current;
        self.timers.register(
            &mut self.state.registry,
            slot,
            TimeDomain::EventTime,
            ts,
            ns,
        )
    }
    /// Registers a processing-time timer of the current key.
    pub fn register_processing_time_timer(&mut self, ts: i64, ns: N) -> Result<()> {
        let slot = self.state.current;
        self.timers.register(
            &mut self.state.registry,
            slot,
            TimeDomain::ProcessingTime,
            ts,
            ns,
        )
    }
    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, ts: i64, ns: &N) -> Result<()> {
        let slot = self.state.current;
        self.timers.delete(
            &mut self.state.registry,
            slot,
            TimeDomain::EventTime,
            ts,
            ns,
        )
    }
    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, ts: i64, ns: &N) -> Result<()> {
        let slot = self.state.current;
        self.timers.delete(
            &mut self.state.registry,
            slot,
            TimeDomain::ProcessingTime,
            ts,
            ns,
        )
    }
    /// A collector to hand a user function, reused for every call: take it with
    /// `std::mem::take`, then give it back with [`emit_collected`](Self::emit_collected).
    #[inline]
    pub fn take_collector(&mut self) -> Collector<U> {
        std::mem::take(self.collector)
    }
    /// Emits what `out` collected with the current timestamp and keeps its buffer.
    #[inline]
    pub fn emit_collected(&mut self, mut out: Collector<U>) {
        let ts = self.timestamp;
        self.out.extend(out.buf.drain(..).map(|u| Ev::Rec(ts, u)));
        *self.collector = out;
    }
    /// Emits `value` with the timestamp of what is being handled.
    #[inline]
    #[allow(dead_code)] // for the window and join logics
    pub fn emit(&mut self, value: U) {
        self.out.push(Ev::Rec(self.timestamp, value));
    }
    /// Emits `value` with timestamp `ts`.
    #[inline]
    #[allow(dead_code)] // for the window and join logics
    pub fn emit_at(&mut self, ts: i64, value: U) {
        self.out.push(Ev::Rec(ts, value));
    }
    /// Emits an element as it is: a side record encoded while the state was borrowed
    /// (the interval join's pairs).
    #[inline]
    pub fn emit_element(&mut self, e: Ev<U>) {
        self.out.push(e);
    }
    /// Emits `value` into the side output `tag` with timestamp `ts`.
    pub fn emit_side<V: Serialize>(
        &mut self,
        tag: &OutputTag<V>,
        ts: i64,
        value: &V,
    ) -> Result<()> {
        let bytes = bincode::serialize(value).map_err(|e| {
            crate::anyhow!("cannot encode a record of side output '{}': {e}", tag.id)
        })?;
        self.out.push(Ev::Side(SideRec {
            tag: tag.id.clone(),
            ts,
            bytes,
        }));
        Ok(())
    }
}

/// One subtask of a timed keyed operator.
struct TimedOperator<K: Key, T, U, L: TimedLogic<K, T, U>>
where
    T: Data,
    U: Data,
{
    logic: L,
    ctx: KeyedContext<K>,
    timers: TimerService<L::Namespace>,
    tracker: WatermarkTracker,
    collector: Collector<U>,
    key_groups: KeyGroupRange,
    uid: String,
    /// The watermark the last snapshot recorded.
    snapshotted_watermark: i64,
    /// Processing time at the start of the batch being applied.
    now: i64,
    /// The key slots of the batch being handled, in record order.
    slots: Vec<u32>,
    _io: PhantomData<fn(T) -> U>,
}

impl<K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>> TimedOperator<K, T, U, L> {
    fn fire_event_timers(&mut self, out: &mut Vec<Ev<U>>) -> Result<()> {
        let wm = self.tracker.current();
        while let Some((slot, timer)) =
            self.timers
                .pop_due(&mut self.ctx.registry, TimeDomain::EventTime, wm)?
        {
            self.ctx.current = slot;
            let mut cx = TimedCx {
                timestamp: timer.timestamp,
                watermark: wm,
                now: self.now,
                state: &mut self.ctx,
                timers: &mut self.timers,
                out: &mut *out,
                collector: &mut self.collector,
            };
            self.logic.on_timer(timer, &mut cx)?;
        }
        Ok(())
    }

    fn on_combined(&mut self, c: Combined, out: &mut Vec<Ev<U>>) -> Result<()> {
        match c {
            Combined::Advanced(wm) => {
                self.fire_event_timers(out)?;
                out.push(Ev::Mark(Mark::watermark(wm)));
            }
            Combined::Idle => out.push(Ev::Mark(Mark::idle(self.tracker.current()))),
            Combined::Active => out.push(Ev::Mark(Mark::watermark(self.tracker.current()))),
        }
        Ok(())
    }
}

impl<K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>> Checkpointed for TimedOperator<K, T, U, L> {
    const KIND: OperatorKind = OperatorKind::Keyed;

    fn restore(&mut self, from: Option<OperatorRestore<'_>>) -> Result<()> {
        let mut floor: Option<i64> = None;
        restore_keyed(
            &mut self.ctx,
            from,
            self.key_groups,
            &self.uid,
            |names, values| {
                let Some(i) = names.iter().position(|n| n == WATERMARK_STATE) else {
                    return Ok(());
                };
                if let Some(Some(bytes)) = values.get(i) {
                    let wm: i64 = decode_value(bytes)?;
                    floor = Some(floor.map_or(wm, |f| f.min(wm)));
                }
                Ok(())
            },
        )?;
        if let Some(f) = floor {
            self.tracker.restore_floor(f);
            self.snapshotted_watermark = f;
        }
        self.timers.restored(&self.ctx.registry)
    }

    fn snapshot(&mut self, _first: u64) -> Result<Option<SnapshotState>> {
        let mut delta = self.ctx.take_delta()?;
        let names = self.ctx.registry.names();
        let wm = self.tracker.current();
        if wm != self.snapshotted_watermark {
            self.snapshotted_watermark = wm;
            let mut bytes = Vec::new();
            encode_value(&wm, &mut bytes)?;
            let width = names.len();
            let column = names
                .iter()
                .position(|n| n == WATERMARK_STATE)
                .expect("registered at build");
            for kg in self.key_groups.start..=self.key_groups.end {
                let mut values = vec![None; width];
                values[column] = Some(bytes.clone());
                delta.push(DeltaEntry {
                    key_group: kg,
                    key: OPERATOR_ENTRY_KEY.to_vec(),
                    values,
                });
            }
        }
        Ok(Some(SnapshotState::KeyedDelta { names, delta }))
    }
}

impl<K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>> Aligned for TimedOperator<K, T, U, L> {
    type In = Ev<KeyedRecord<K, T>>;
    type Out = Ev<U>;

    const EMITS_WITHOUT_INPUT: bool = true;

    fn process(
        &mut self,
        batch: &mut Vec<Self::In>,
        out: &mut Collector<Self::Out>,
        control: &AttemptControl,
    ) -> Result<()> {
        self.now = processing_time_now();
        // The keys are looked up first, in a pass whose records do not wait on each other,
        // so their hash-table misses overlap; the hot state of the record `AHEAD` places
        // on is then prefetched while one is handled.
        const AHEAD: usize = 8;
        self.slots.clear();
        for e in batch.iter() {
            if let Ev::Rec(_, r) = e {
                self.slots.push(self.ctx.index.slot_of(r.hash, &r.key));
            }
        }
        let hot = self.logic.hot_state().map(|id| {
            let keys = self.ctx.index.keys.len();
            self.ctx.registry.slots_view(id, keys)
        });
        let mut next = 0;
        for e in batch.drain(..) {
            if control.aborted() {
                return Ok(());
            }
            match e {
                Ev::Rec(ts, r) => {
                    if let (Some(view), Some(&ahead)) = (&hot, self.slots.get(next + AHEAD)) {
                        view.prefetch(ahead);
                    }
                    self.ctx.set_slot(self.slots[next]);
                    next += 1;
                    let mut cx = TimedCx {
                        timestamp: ts,
                        watermark: self.tracker.current(),
                        now: self.now,
                        state: &mut self.ctx,
                        timers: &mut self.timers,
                        out: &mut out.buf,
                        collector: &mut self.collector,
                    };
                    self.logic.on_record(ts, r.value, &mut cx)?;
                }
                Ev::Mark(m) => {
                    if let Some(c) = self.tracker.on_mark(&m) {
                        self.on_combined(c, &mut out.buf)?;
                    }
                }
                Ev::Side(_) => {}
            }
        }
        Ok(())
    }

    fn on_activation(
        &mut self,
        out: &mut Collector<Self::Out>,
        _control: &AttemptControl,
    ) -> Result<Option<Duration>> {
        let Some(next) = self.timers.next_processing_time() else {
            return Ok(None);
        };
        let now = processing_time_now();
        if next <= now {
            let wm = self.tracker.current();
            while let Some((slot, timer)) =
                self.timers
                    .pop_due(&mut self.ctx.registry, TimeDomain::ProcessingTime, now)?
            {
                self.ctx.current = slot;
                let mut cx = TimedCx {
                    timestamp: NO_TIMESTAMP,
                    watermark: wm,
                    now,
                    state: &mut self.ctx,
                    timers: &mut self.timers,
                    out: &mut out.buf,
                    collector: &mut self.collector,
                };
                self.logic.on_timer(timer, &mut cx)?;
            }
        }
        let now = processing_time_now();
        Ok(self
            .timers
            .next_processing_time()
            .map(|t| Duration::from_millis(t.saturating_sub(now).max(1) as u64)))
    }

    fn flush(&mut self, out: &mut Collector<Self::Out>) -> Result<()> {
        self.now = processing_time_now();
        if let Some(c) = self.tracker.end_of_input() {
            self.on_combined(c, &mut out.buf)?;
        }
        Ok(())
    }
}

/// Instantiates a timed keyed operator with `logic` on this worker. `inputs` is the number
/// of logical inputs whose channels the watermark combines (2 for connected streams; their
/// marks carry channels `input * peers + worker`).
pub(crate) fn build_timed_keyed<'s, K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>>(
    cx: &mut BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, Ev<KeyedRecord<K, T>>>,
    inputs: u32,
    mut logic: L,
) -> Result<StreamVec<'s, Time, Ev<U>>> {
    let max_p = cx.plan.max_parallelism;
    let peers = cx.peers;
    let decl = &cx.plan.operators[op];
    let display = cx.task_display(op);
    let info = cx.task_info(op);
    let mut ctx = KeyedContext::<K>::new(max_p);
    let timers = {
        let mut rc = RuntimeContext {
            info: &info,
            registry: Some(&mut ctx.registry),
        };
        failure::set_current_task(&display);
        let timers = TimerService::open(&mut rc)?;
        register_watermark_state(&mut rc)?;
        logic
            .open(&mut rc)
            .map_err(|e| e.context(format!("open() of {display} failed")))?;
        timers
    };
    let mut o = TimedOperator {
        logic,
        ctx,
        timers,
        tracker: WatermarkTracker::new((inputs.max(1) * peers) as usize),
        collector: Collector::default(),
        key_groups: key_group_range_for_subtask(max_p, decl.parallelism, cx.worker),
        uid: decl.uid.clone(),
        snapshotted_watermark: crate::api::time::MIN_WATERMARK,
        now: processing_time_now(),
        slots: Vec::new(),
        _io: PhantomData,
    };
    super::restore(cx, op, &mut o)?;
    let pact = Exchange::new(move |e: &Ev<KeyedRecord<K, T>>| match e {
        Ev::Rec(_, r) => {
            subtask_for_key_group(key_group_for_hash(r.hash, max_p), max_p, peers) as u64
        }
        Ev::Mark(m) => m.to as u64,
        Ev::Side(_) => 0,
    });
    Ok(build_aligned(cx, op, input, pact, o))
}

/// The column of the operator's watermark entries (no key ever has a value in it).
fn register_watermark_state(rc: &mut RuntimeContext<'_>) -> Result<()> {
    rc.registry()?
        .register::<i64>(WATERMARK_STATE, "watermark", None, None)?;
    Ok(())
}

/// `floe savepoint check` for a timed keyed operator: decodes its snapshot state into the
/// logic's state types and the timer type.
pub(crate) fn check_timed_keyed<K: Key, T: Data, U: Data, L: TimedLogic<K, T, U>>(
    plan: &Plan,
    op: usize,
    snap: &LoadedSnapshot,
    mut logic: L,
) -> Result<Vec<StateCheck>> {
    check_keyed_with::<K>(plan, op, snap, |rc| {
        TimerService::<L::Namespace>::open(rc)?;
        register_watermark_state(rc)?;
        logic.open(rc)
    })
}
