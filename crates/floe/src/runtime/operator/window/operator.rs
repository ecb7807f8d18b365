//! The window operator's logic (Flink's `WindowOperator.processElement`, `onEventTime`,
//! `onProcessingTime`), as the [`TimedLogic`] of a timed keyed operator whose timer
//! namespace is the window.
//!
//! Its keyed state, all namespaced by window inside one entry per key:
//! - `_window-contents`: the accumulator per (state) window ([`WindowMap`]);
//! - `_window-trigger`: the trigger's state per window;
//! - `_merging-windows`: the in-flight windows of merging assigners ([`MergingWindowSet`]);
//! - the timers (trigger timers and the cleanup timer at `max_timestamp + allowed
//!   lateness`) in the timed operator's `_timers`.

use super::contents::{Contents, WindowMap};
use super::functions::WindowFn;
use super::merge::{Merge, MergingWindowSet};
use crate::api::data::{Data, Key};
use crate::api::functions::RuntimeContext;
use crate::api::time::{OutputTag, TimeDomain};
use crate::api::window::{
    OnMergeContext, ProcessWindowContext, Trigger, TriggerContext, TriggerResult, Window,
    WindowAssigner, WindowAssignerContext,
};
use crate::runtime::operator::timed::{TimedCx, TimedLogic};
use crate::runtime::operator::timers::Timer;
use crate::state::{ValueState, ValueStateDescriptor};
use crate::Result;
use std::marker::PhantomData;

/// The window operator: assigner `A`, trigger `Tr`, contents `C` and function `F`.
pub(crate) struct WindowLogic<T, R, A: WindowAssigner<T>, Tr: Trigger<T, A::W>, C: Contents<T>, F> {
    pub assigner: A,
    pub core: Core<T, R, A::W, Tr, C, F>,
    windows: Vec<A::W>,
}

impl<T, R, A, Tr, C, F> Clone for WindowLogic<T, R, A, Tr, C, F>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    C: Contents<T>,
    F: Clone,
{
    fn clone(&self) -> Self {
        WindowLogic {
            assigner: self.assigner.clone(),
            core: self.core.clone(),
            windows: Vec::new(),
        }
    }
}

/// Everything but the assigner, so a merge callback can use it while the assigner merges.
pub(crate) struct Core<T, R, W: Window, Tr: Trigger<T, W>, C: Contents<T>, F> {
    trigger: Tr,
    contents: C,
    function: F,
    event_time: bool,
    merging: bool,
    allowed_lateness: i64,
    late_tag: Option<OutputTag<T>>,
    contents_state: ValueState<WindowMap<W, C::Acc>>,
    trigger_state: ValueState<WindowMap<W, Tr::State>>,
    merging_state: ValueState<MergingWindowSet<W>>,
    _p: PhantomData<fn(T) -> R>,
}

impl<T, R, W: Window, Tr: Trigger<T, W>, C: Contents<T>, F: Clone> Clone
    for Core<T, R, W, Tr, C, F>
{
    fn clone(&self) -> Self {
        Core {
            trigger: self.trigger.clone(),
            contents: self.contents.clone(),
            function: self.function.clone(),
            event_time: self.event_time,
            merging: self.merging,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag.clone(),
            contents_state: self.contents_state,
            trigger_state: self.trigger_state,
            merging_state: self.merging_state,
            _p: PhantomData,
        }
    }
}

impl<T, R, A, Tr, C, F> WindowLogic<T, R, A, Tr, C, F>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    C: Contents<T>,
{
    pub(crate) fn new(
        assigner: A,
        trigger: Tr,
        contents: C,
        function: F,
        allowed_lateness: i64,
        late_tag: Option<OutputTag<T>>,
    ) -> Self {
        let event_time = assigner.is_event_time();
        let merging = assigner.is_merging();
        WindowLogic {
            assigner,
            core: Core {
                trigger,
                contents,
                function,
                event_time,
                merging,
                allowed_lateness,
                late_tag,
                contents_state: ValueState::default(),
                trigger_state: ValueState::default(),
                merging_state: ValueState::default(),
                _p: PhantomData,
            },
            windows: Vec::new(),
        }
    }
}

/// The trigger's view of one window of the current key.
struct TriggerCx<'a, 'b, K, R, W, S> {
    cx: &'a mut TimedCx<'b, K, R, W>,
    window: &'a W,
    state: ValueState<WindowMap<W, S>>,
    /// For `on_merge`: the windows merged into `window`.
    merged: &'a [W],
}

impl<K: Key, R: Data, W: Window, S: Data + Default> TriggerContext<S>
    for TriggerCx<'_, '_, K, R, W, S>
{
    fn current_watermark(&self) -> i64 {
        self.cx.current_watermark()
    }
    fn current_processing_time(&self) -> i64 {
        self.cx.current_processing_time()
    }
    fn register_event_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.register_event_time_timer(time, self.window.clone())
    }
    fn register_processing_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx
            .register_processing_time_timer(time, self.window.clone())
    }
    fn delete_event_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.delete_event_time_timer(time, self.window)
    }
    fn delete_processing_time_timer(&mut self, time: i64) -> Result<()> {
        self.cx.delete_processing_time_timer(time, self.window)
    }
    fn state(&mut self) -> Result<&mut S> {
        let keyed = self.cx.state();
        let slot = keyed.current;
        Ok(keyed
            .registry
            .table_mut::<WindowMap<W, S>>(self.state.id, slot)?
            .get_or_insert_with(slot, WindowMap::default)
            .get_or_insert_with(self.window, S::default))
    }
    fn clear_state(&mut self) -> Result<()> {
        remove_entry(self.cx, self.state, self.window).map(|_| ())
    }
}

impl<K: Key, R: Data, W: Window, S: Data + Default> OnMergeContext<S>
    for TriggerCx<'_, '_, K, R, W, S>
{
    fn merge_state(&mut self, mut merge: impl FnMut(&mut S, S)) -> Result<()> {
        for m in self.merged {
            if let Some(s) = remove_entry(self.cx, self.state, m)? {
                let target = TriggerContext::state(self)?;
                merge(target, s);
            }
        }
        Ok(())
    }
}

/// Removes the entry of `window` from the current key's window map `state`.
fn remove_entry<K: Key, R: Data, W: Window, V: Data>(
    cx: &mut TimedCx<'_, K, R, W>,
    state: ValueState<WindowMap<W, V>>,
    window: &W,
) -> Result<Option<V>> {
    let keyed = cx.state();
    let slot = keyed.current;
    let t = keyed
        .registry
        .table_mut::<WindowMap<W, V>>(state.id, slot)?;
    let Some(m) = t.get_mut(slot) else {
        return Ok(None);
    };
    let v = m.remove(window);
    if m.is_empty() {
        t.set(slot, None);
    }
    Ok(v)
}

impl<T, R, W, Tr, C, F> Core<T, R, W, Tr, C, F>
where
    T: Data,
    R: Data,
    W: Window,
    Tr: Trigger<T, W>,
    C: Contents<T>,
{
    fn cleanup_time(&self, w: &W) -> i64 {
        if self.event_time {
            w.max_timestamp().saturating_add(self.allowed_lateness)
        } else {
            w.max_timestamp()
        }
    }

    fn is_window_late(&self, w: &W, watermark: i64) -> bool {
        self.event_time && self.cleanup_time(w) <= watermark
    }

    fn register_cleanup_timer<K: Key>(&self, w: &W, cx: &mut TimedCx<'_, K, R, W>) -> Result<()> {
        let t = self.cleanup_time(w);
        if t == i64::MAX {
            // No cleanup timer for the end of time (global windows).
            return Ok(());
        }
        if self.event_time {
            cx.register_event_time_timer(t, w.clone())
        } else {
            cx.register_processing_time_timer(t, w.clone())
        }
    }

    fn delete_cleanup_timer<K: Key>(&self, w: &W, cx: &mut TimedCx<'_, K, R, W>) -> Result<()> {
        let t = self.cleanup_time(w);
        if t == i64::MAX {
            return Ok(());
        }
        if self.event_time {
            cx.delete_event_time_timer(t, w)
        } else {
            cx.delete_processing_time_timer(t, w)
        }
    }

    fn tcx<'a, 'b, K>(
        &self,
        cx: &'a mut TimedCx<'b, K, R, W>,
        window: &'a W,
        merged: &'a [W],
    ) -> TriggerCx<'a, 'b, K, R, W, Tr::State> {
        TriggerCx {
            cx,
            window,
            state: self.trigger_state,
            merged,
        }
    }

    /// Flink's merge function of `processElement`: moves trigger state and timers to the
    /// merged window and merges the merged state windows' contents into its state window.
    fn on_merge<K: Key>(&mut self, m: Merge<'_, W>, cx: &mut TimedCx<'_, K, R, W>) -> Result<()> {
        if self.event_time {
            let wm = cx.current_watermark();
            if self.cleanup_time(m.result) <= wm {
                crate::bail!(
                    "The end timestamp of an event-time window cannot become earlier than the current watermark by merging. Current watermark: {wm} window: {}",
                    m.result
                );
            }
        } else {
            let now = cx.current_processing_time();
            if m.result.max_timestamp() <= now {
                crate::bail!(
                    "The end timestamp of a processing-time window cannot become earlier than the current processing time by merging. Current processing time: {now} window: {}",
                    m.result
                );
            }
        }
        self.trigger
            .on_merge(m.result, &mut self.tcx(cx, m.result, m.merged))?;
        for w in m.merged {
            self.trigger.clear(w, &mut self.tcx(cx, w, &[]))?;
            self.delete_cleanup_timer(w, cx)?;
        }
        for sw in m.merged_state_windows {
            if let Some(acc) = remove_entry(cx, self.contents_state, sw)? {
                let keyed = cx.state();
                let slot = keyed.current;
                let contents = &mut self.contents;
                keyed
                    .registry
                    .table_mut::<WindowMap<W, C::Acc>>(self.contents_state.id, slot)?
                    .get_or_insert_with(slot, WindowMap::default)
                    .update(m.state_window, |into| contents.merge(into, acc));
            }
        }
        Ok(())
    }
}

impl<T, R, W, Tr, C, F> Core<T, R, W, Tr, C, F>
where
    T: Data,
    R: Data,
    W: Window,
    Tr: Trigger<T, W>,
    C: Contents<T>,
{
    /// One element into `window` (contents under `state_window`).
    fn element<K: Key>(
        &mut self,
        window: &W,
        state_window: &W,
        ts: i64,
        value: T,
        cx: &mut TimedCx<'_, K, R, W>,
    ) -> Result<()>
    where
        F: WindowFn<K, W, C::Acc, R>,
    {
        // A further element of a window that already has contents, before the watermark
        // reaches its end: without allowed lateness a window's contents live exactly as
        // long as its timer at `max_timestamp` (trigger and cleanup timer in one; firing
        // it clears them, and they are snapshotted and moved together), so a trigger whose
        // repeats change nothing is skipped. With allowed lateness the contents outlive a
        // firing, and a job restored at a lower watermark (the minimum over the key groups
        // of merged subtasks) must let the trigger register the timer again.
        if self.event_time
            && !self.merging
            && self.allowed_lateness == 0
            && window.max_timestamp() > cx.current_watermark()
            && self.trigger.repeat_elements_change_nothing()
        {
            let keyed = cx.state();
            let slot = keyed.current;
            let table = keyed
                .registry
                .table_mut::<WindowMap<W, C::Acc>>(self.contents_state.id, slot)?;
            if let Some(acc) = table
                .get_mut(slot)
                .and_then(|m| m.existing_mut(state_window))
            {
                self.contents.add(acc, ts, value);
                return Ok(());
            }
        }
        // The trigger runs before the element is added: it cannot see the contents, and
        // the element moves into them (Flink adds first; the outcome is the same).
        let result = self
            .trigger
            .on_element(&value, ts, window, &mut self.tcx(cx, window, &[]))?;
        {
            let keyed = cx.state();
            let slot = keyed.current;
            let contents = &mut self.contents;
            keyed
                .registry
                .table_mut::<WindowMap<W, C::Acc>>(self.contents_state.id, slot)?
                .get_or_insert_with(slot, WindowMap::default)
                .update(state_window, |acc| contents.add(acc, ts, value));
        }
        self.apply(result, window, state_window, cx)?;
        self.register_cleanup_timer(window, cx)
    }

    fn apply<K: Key>(
        &mut self,
        result: TriggerResult,
        window: &W,
        state_window: &W,
        cx: &mut TimedCx<'_, K, R, W>,
    ) -> Result<()>
    where
        F: WindowFn<K, W, C::Acc, R>,
    {
        if result.is_fire() {
            self.fire(window, state_window, result.is_purge(), cx)
        } else if result.is_purge() {
            remove_entry(cx, self.contents_state, state_window).map(|_| ())
        } else {
            Ok(())
        }
    }

    /// Evaluates `window`; its results carry `window.max_timestamp()`.
    fn fire<K: Key>(
        &mut self,
        window: &W,
        state_window: &W,
        purge: bool,
        cx: &mut TimedCx<'_, K, R, W>,
    ) -> Result<()>
    where
        F: WindowFn<K, W, C::Acc, R>,
    {
        // Taken out while the function runs, which may use the key's state itself.
        let Some(mut acc) = remove_entry(cx, self.contents_state, state_window)? else {
            return Ok(());
        };
        let key = cx.key().clone();
        let mut out = cx.take_collector();
        let r = self.function.process(
            &key,
            &mut acc,
            &mut ProcessWindowContext {
                cx: &mut *cx,
                window,
                merging: self.merging,
            },
            &mut out,
        );
        let ts = window.max_timestamp();
        for v in out.buf.drain(..) {
            cx.emit_at(ts, v);
        }
        // Gives the (now empty) buffer back for the next firing.
        cx.emit_collected(out);
        r?;
        if !purge {
            let keyed = cx.state();
            let slot = keyed.current;
            keyed
                .registry
                .table_mut::<WindowMap<W, C::Acc>>(self.contents_state.id, slot)?
                .get_or_insert_with(slot, WindowMap::default)
                .insert(state_window.clone(), acc);
        }
        Ok(())
    }

    fn clear_all_state<K: Key>(
        &mut self,
        window: &W,
        state_window: &W,
        set: Option<&mut MergingWindowSet<W>>,
        cx: &mut TimedCx<'_, K, R, W>,
    ) -> Result<()>
    where
        F: WindowFn<K, W, C::Acc, R>,
    {
        remove_entry(cx, self.contents_state, state_window)?;
        self.trigger.clear(window, &mut self.tcx(cx, window, &[]))?;
        self.function.clear(&mut ProcessWindowContext {
            cx: &mut *cx,
            window,
            merging: self.merging,
        })?;
        if let Some(set) = set {
            set.retire_window(window)?;
        }
        Ok(())
    }

    fn take_set<K: Key>(&self, cx: &mut TimedCx<'_, K, R, W>) -> Result<MergingWindowSet<W>> {
        let keyed = cx.state();
        let slot = keyed.current;
        Ok(keyed
            .registry
            .table_mut::<MergingWindowSet<W>>(self.merging_state.id, slot)?
            .get_mut(slot)
            .map(std::mem::take)
            .unwrap_or_default())
    }

    fn put_set<K: Key>(
        &self,
        set: MergingWindowSet<W>,
        cx: &mut TimedCx<'_, K, R, W>,
    ) -> Result<()> {
        let keyed = cx.state();
        let slot = keyed.current;
        let v = (!set.is_empty()).then_some(set);
        keyed
            .registry
            .table_mut::<MergingWindowSet<W>>(self.merging_state.id, slot)?
            .set(slot, v);
        Ok(())
    }
}

impl<K, T, R, A, Tr, C, F> TimedLogic<K, T, R> for WindowLogic<T, R, A, Tr, C, F>
where
    K: Key,
    T: Data,
    R: Data,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    C: Contents<T>,
    F: WindowFn<K, A::W, C::Acc, R>,
{
    type Namespace = A::W;

    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        let c = &mut self.core;
        c.contents_state = ValueStateDescriptor::new("_window-contents").register(ctx)?;
        c.trigger_state = ValueStateDescriptor::new("_window-trigger").register(ctx)?;
        if c.merging {
            c.merging_state = ValueStateDescriptor::new("_merging-windows").register(ctx)?;
        }
        c.function.open(ctx)
    }

    fn on_record(&mut self, ts: i64, value: T, cx: &mut TimedCx<'_, K, R, A::W>) -> Result<()> {
        let wm = cx.current_watermark();
        let actx = WindowAssignerContext::new(cx.current_processing_time());
        let mut windows = std::mem::take(&mut self.windows);
        windows.clear();
        self.assigner
            .assign_windows(&value, ts, &actx, &mut windows)?;
        let n = windows.len();
        let mut value = Some(value);
        let mut skipped = true;
        if self.core.merging {
            let mut set = self.core.take_set(cx)?;
            for (i, window) in windows.drain(..).enumerate() {
                let assigner = &self.assigner;
                let core = &mut self.core;
                let actual = set.add_window(
                    window,
                    |ws, merge| assigner.merge_windows(ws, merge),
                    |m| core.on_merge(m, cx),
                )?;
                if self.core.is_window_late(&actual, wm) {
                    set.retire_window(&actual)?;
                    continue;
                }
                skipped = false;
                let Some(state_window) = set.state_window(&actual).cloned() else {
                    crate::bail!("Window {actual} is not in in-flight window set.");
                };
                let v = if i + 1 == n {
                    value.take()
                } else {
                    value.clone()
                };
                if let Some(v) = v {
                    self.core.element(&actual, &state_window, ts, v, cx)?;
                }
            }
            self.core.put_set(set, cx)?;
        } else {
            for (i, window) in windows.drain(..).enumerate() {
                if self.core.is_window_late(&window, wm) {
                    continue;
                }
                skipped = false;
                let v = if i + 1 == n {
                    value.take()
                } else {
                    value.clone()
                };
                if let Some(v) = v {
                    self.core.element(&window, &window, ts, v, cx)?;
                }
            }
        }
        self.windows = windows;
        let c = &self.core;
        if skipped && c.event_time && ts.saturating_add(c.allowed_lateness) <= wm {
            if let (Some(tag), Some(v)) = (&c.late_tag, &value) {
                cx.emit_side(tag, ts, v)?;
            }
        }
        Ok(())
    }

    fn hot_state(&self) -> Option<u32> {
        Some(self.core.contents_state.id)
    }

    fn on_timer(&mut self, timer: Timer<A::W>, cx: &mut TimedCx<'_, K, R, A::W>) -> Result<()> {
        let c = &mut self.core;
        let window = timer.namespace;
        let mut set = None;
        let state_window = if c.merging {
            let s = c.take_set(cx)?;
            let Some(sw) = s.state_window(&window).cloned() else {
                // A timer of a window that is gone (a trigger that did not delete it).
                return c.put_set(s, cx);
            };
            set = Some(s);
            sw
        } else {
            window.clone()
        };
        let result = match timer.domain {
            TimeDomain::EventTime => {
                c.trigger
                    .on_event_time(timer.timestamp, &window, &mut c.tcx(cx, &window, &[]))?
            }
            TimeDomain::ProcessingTime => c.trigger.on_processing_time(
                timer.timestamp,
                &window,
                &mut c.tcx(cx, &window, &[]),
            )?,
        };
        c.apply(result, &window, &state_window, cx)?;
        let cleanup_domain = (timer.domain == TimeDomain::EventTime) == c.event_time;
        if cleanup_domain && timer.timestamp == c.cleanup_time(&window) {
            c.clear_all_state(&window, &state_window, set.as_mut(), cx)?;
        }
        if let Some(s) = set {
            c.put_set(s, cx)?;
        }
        Ok(())
    }
}
