//! Triggers: when a window is evaluated and when its contents are dropped (Flink's
//! `org.apache.flink.streaming.api.windowing.triggers`).

use super::{GlobalWindow, Window};
use crate::api::data::Data;
use crate::Result;

/// What a trigger decides for its window (Flink's `TriggerResult`).
///
/// ```
/// use floe::api::window::TriggerResult;
/// assert!(TriggerResult::FireAndPurge.is_fire() && TriggerResult::FireAndPurge.is_purge());
/// assert!(!TriggerResult::Continue.is_fire());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window function is evaluated and emits its result; the contents stay.
    Fire,
    /// The window's contents are dropped (its metadata and timers stay until cleanup).
    Purge,
    /// The window function is evaluated, then the contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// True for `Fire` and `FireAndPurge`.
    pub const fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }
    /// True for `Purge` and `FireAndPurge`.
    pub const fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// What a trigger can do for the window it is called for (Flink's `Trigger.TriggerContext`):
/// read the time, register and delete timers of the current key and window, and keep
/// per-window state `S` (the trigger's [`Trigger::State`], Flink's partitioned trigger
/// state). Timers and state are part of checkpoints.
pub trait TriggerContext<S> {
    /// The current event-time watermark of the window operator.
    fn current_watermark(&self) -> i64;
    /// The current processing time (epoch milliseconds).
    fn current_processing_time(&self) -> i64;
    /// Calls the trigger's `on_event_time` for this window once the watermark reaches
    /// `time`. Registering the same time twice registers one timer.
    fn register_event_time_timer(&mut self, time: i64) -> Result<()>;
    /// Calls the trigger's `on_processing_time` for this window once the processing time
    /// reaches `time`.
    fn register_processing_time_timer(&mut self, time: i64) -> Result<()>;
    /// Deletes an event-time timer of this window (nothing happens when there is none).
    fn delete_event_time_timer(&mut self, time: i64) -> Result<()>;
    /// Deletes a processing-time timer of this window.
    fn delete_processing_time_timer(&mut self, time: i64) -> Result<()>;
    /// This window's trigger state, created with `S::default()` when it has none.
    fn state(&mut self) -> Result<&mut S>;
    /// Removes this window's trigger state.
    fn clear_state(&mut self) -> Result<()>;
}

/// The context of [`Trigger::on_merge`] (Flink's `OnMergeContext`): the window is the
/// result of merging other windows, whose trigger state can be merged into it.
pub trait OnMergeContext<S>: TriggerContext<S> {
    /// Calls `merge(target, merged)` with the merged window's state (created from the
    /// default when absent) for the state of every window merged into it that has one
    /// (Flink's `mergePartitionedState`). The merged windows' states are cleared afterwards
    /// by the trigger's `clear`.
    fn merge_state(&mut self, merge: impl FnMut(&mut S, S)) -> Result<()>;
}

/// Decides when a window fires and when it is purged (Flink's `Trigger`).
///
/// A trigger is called for every element added to a window and for every timer it
/// registered. It must not keep mutable fields of its own (methods take `&self`): what it
/// remembers per window lives in its [`State`](Trigger::State), through the context, so it
/// is checkpointed and moves with the key when the job is rescaled.
///
/// ```
/// use floe::api::window::{Trigger, TriggerContext, TriggerResult, Window};
/// use floe::Result;
///
/// /// Fires when an element is "flush", and at the end of the window.
/// #[derive(Clone)]
/// struct FlushTrigger;
/// impl<W: Window> Trigger<String, W> for FlushTrigger {
///     type State = ();
///     fn on_element<C: TriggerContext<()>>(&self, e: &String, _ts: i64, w: &W, ctx: &mut C) -> Result<TriggerResult> {
///         ctx.register_event_time_timer(w.max_timestamp())?;
///         Ok(if e == "flush" { TriggerResult::Fire } else { TriggerResult::Continue })
///     }
///     fn on_event_time<C: TriggerContext<()>>(&self, t: i64, w: &W, _ctx: &mut C) -> Result<TriggerResult> {
///         Ok(if t == w.max_timestamp() { TriggerResult::Fire } else { TriggerResult::Continue })
///     }
///     fn on_processing_time<C: TriggerContext<()>>(&self, _t: i64, _w: &W, _ctx: &mut C) -> Result<TriggerResult> {
///         Ok(TriggerResult::Continue)
///     }
///     fn clear<C: TriggerContext<()>>(&self, w: &W, ctx: &mut C) -> Result<()> {
///         ctx.delete_event_time_timer(w.max_timestamp())
///     }
/// }
/// ```
pub trait Trigger<T, W: Window>: Clone + Send + Sync + 'static {
    /// Per-window state of the trigger (`()` when it needs none).
    type State: Data + Default;

    /// Called for every element added to `window`, with the element's timestamp.
    fn on_element<C: TriggerContext<Self::State>>(
        &self,
        element: &T,
        timestamp: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult>;

    /// Called when an event-time timer of `window` fires (also for the window operator's
    /// cleanup timer, at `max_timestamp + allowed lateness`).
    fn on_event_time<C: TriggerContext<Self::State>>(
        &self,
        time: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult>;

    /// Called when a processing-time timer of `window` fires.
    fn on_processing_time<C: TriggerContext<Self::State>>(
        &self,
        time: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult>;

    /// True when the trigger supports merging windows (required by session windows).
    fn can_merge(&self) -> bool {
        false
    }

    /// True when `on_element` for a further element of an event-time window that already
    /// holds elements, while the watermark has not reached the window's `max_timestamp`,
    /// does nothing but register again the timers it registered for the window's first
    /// element, and returns [`TriggerResult::Continue`]. The window operator then skips the
    /// call for such elements (and its own cleanup-timer registration), which spares the
    /// timer lookup per element. The default, `false`, is always correct.
    fn repeat_elements_change_nothing(&self) -> bool {
        false
    }

    /// Called when windows were merged into `window` (session windows): merge their state
    /// and register the timers the merged window needs.
    fn on_merge<C: OnMergeContext<Self::State>>(&self, _window: &W, _ctx: &mut C) -> Result<()> {
        crate::bail!("This trigger does not support merging.")
    }

    /// Called when `window` is removed: delete its timers and state.
    fn clear<C: TriggerContext<Self::State>>(&self, window: &W, ctx: &mut C) -> Result<()>;
}

/// Fires once the watermark passes the end of the window (Flink's `EventTimeTrigger`), the
/// default trigger of event-time windows. An element added to a window the watermark has
/// already passed (a late element within the allowed lateness) fires the window at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventTimeTrigger;

impl EventTimeTrigger {
    /// The event-time trigger.
    pub const fn create() -> Self {
        EventTimeTrigger
    }
}

impl<T, W: Window> Trigger<T, W> for EventTimeTrigger {
    type State = ();

    fn repeat_elements_change_nothing(&self) -> bool {
        // Before the watermark passes the window's end, every element registers the same
        // timer at `max_timestamp` and continues.
        true
    }

    fn on_element<C: TriggerContext<()>>(
        &self,
        _element: &T,
        _timestamp: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        if window.max_timestamp() <= ctx.current_watermark() {
            // The watermark is already past the window: fire now (a late firing).
            Ok(TriggerResult::Fire)
        } else {
            ctx.register_event_time_timer(window.max_timestamp())?;
            Ok(TriggerResult::Continue)
        }
    }

    fn on_event_time<C: TriggerContext<()>>(
        &self,
        time: i64,
        window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        })
    }

    fn on_processing_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<C: OnMergeContext<()>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        // Only when the watermark is not yet past the merged window, as in on_element: if
        // it is, on_element fires, and a timer here would fire the window a second time.
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp())?;
        }
        Ok(())
    }

    fn clear<C: TriggerContext<()>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        ctx.delete_event_time_timer(window.max_timestamp())
    }
}

/// Fires once the processing time passes the end of the window (Flink's
/// `ProcessingTimeTrigger`), the default trigger of processing-time windows.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessingTimeTrigger;

impl ProcessingTimeTrigger {
    /// The processing-time trigger.
    pub const fn create() -> Self {
        ProcessingTimeTrigger
    }
}

impl<T, W: Window> Trigger<T, W> for ProcessingTimeTrigger {
    type State = ();

    fn on_element<C: TriggerContext<()>>(
        &self,
        _element: &T,
        _timestamp: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        ctx.register_processing_time_timer(window.max_timestamp())?;
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Fire)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<C: OnMergeContext<()>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        if window.max_timestamp() > ctx.current_processing_time() {
            ctx.register_processing_time_timer(window.max_timestamp())?;
        }
        Ok(())
    }

    fn clear<C: TriggerContext<()>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        ctx.delete_processing_time_timer(window.max_timestamp())
    }
}

/// Fires when a window holds `max_count` elements since it last fired (Flink's
/// `CountTrigger`). The count is per-window trigger state; merged windows add their counts.
///
/// ```
/// use floe::api::window::{CountTrigger, PurgingTrigger};
/// // Flink's countWindow(100): fire and purge every 100 elements.
/// let t = PurgingTrigger::of(CountTrigger::of(100));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CountTrigger {
    max_count: u64,
}

impl CountTrigger {
    /// Fires every `max_count` elements.
    pub const fn of(max_count: u64) -> Self {
        CountTrigger { max_count }
    }
}

impl<T, W: Window> Trigger<T, W> for CountTrigger {
    type State = u64;

    fn on_element<C: TriggerContext<u64>>(
        &self,
        _element: &T,
        _timestamp: i64,
        _window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        let count = ctx.state()?;
        *count += 1;
        if *count >= self.max_count {
            ctx.clear_state()?;
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<C: TriggerContext<u64>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time<C: TriggerContext<u64>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<C: OnMergeContext<u64>>(&self, _window: &W, ctx: &mut C) -> Result<()> {
        ctx.merge_state(|target, merged| *target += merged)
    }

    fn clear<C: TriggerContext<u64>>(&self, _window: &W, ctx: &mut C) -> Result<()> {
        ctx.clear_state()
    }
}

/// Turns every `Fire` of the trigger it wraps into `FireAndPurge` (Flink's `PurgingTrigger`).
#[derive(Clone, Copy, Debug)]
pub struct PurgingTrigger<Tr> {
    nested: Tr,
}

impl<Tr> PurgingTrigger<Tr> {
    /// Wraps `nested`.
    pub const fn of(nested: Tr) -> Self {
        PurgingTrigger { nested }
    }
}

fn purging(r: TriggerResult) -> TriggerResult {
    if r.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        r
    }
}

impl<T, W: Window, Tr: Trigger<T, W>> Trigger<T, W> for PurgingTrigger<Tr> {
    type State = Tr::State;

    fn on_element<C: TriggerContext<Self::State>>(
        &self,
        element: &T,
        timestamp: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        self.nested
            .on_element(element, timestamp, window, ctx)
            .map(purging)
    }

    fn on_event_time<C: TriggerContext<Self::State>>(
        &self,
        time: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        self.nested.on_event_time(time, window, ctx).map(purging)
    }

    fn on_processing_time<C: TriggerContext<Self::State>>(
        &self,
        time: i64,
        window: &W,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        self.nested
            .on_processing_time(time, window, ctx)
            .map(purging)
    }

    fn can_merge(&self) -> bool {
        self.nested.can_merge()
    }

    fn repeat_elements_change_nothing(&self) -> bool {
        // Purging changes only what a firing does; a repeat never fires.
        self.nested.repeat_elements_change_nothing()
    }

    fn on_merge<C: OnMergeContext<Self::State>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        self.nested.on_merge(window, ctx)
    }

    fn clear<C: TriggerContext<Self::State>>(&self, window: &W, ctx: &mut C) -> Result<()> {
        self.nested.clear(window, ctx)
    }
}

/// Never fires (Flink's `GlobalWindows.NeverTrigger`), the default trigger of
/// [`GlobalWindows`](super::GlobalWindows): a global window needs a trigger of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverTrigger;

impl<T, W: Window> Trigger<T, W> for NeverTrigger {
    type State = ();

    fn on_element<C: TriggerContext<()>>(
        &self,
        _element: &T,
        _timestamp: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &W,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_merge<C: OnMergeContext<()>>(&self, _window: &W, _ctx: &mut C) -> Result<()> {
        Ok(())
    }

    fn clear<C: TriggerContext<()>>(&self, _window: &W, _ctx: &mut C) -> Result<()> {
        Ok(())
    }
}

/// Fires the global window once, at the end of the input, when the watermark reaches
/// `i64::MAX` (Flink's `GlobalWindows.EndOfStreamTrigger`, the trigger of
/// [`GlobalWindows::create_with_end_of_stream_trigger`](super::GlobalWindows::create_with_end_of_stream_trigger)).
#[derive(Clone, Copy, Debug, Default)]
pub struct EndOfStreamTrigger;

impl<T> Trigger<T, GlobalWindow> for EndOfStreamTrigger {
    type State = ();

    fn on_element<C: TriggerContext<()>>(
        &self,
        _element: &T,
        _timestamp: i64,
        window: &GlobalWindow,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        ctx.register_event_time_timer(window.max_timestamp())?;
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<C: TriggerContext<()>>(
        &self,
        time: i64,
        window: &GlobalWindow,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        })
    }

    fn on_processing_time<C: TriggerContext<()>>(
        &self,
        _time: i64,
        _window: &GlobalWindow,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn clear<C: TriggerContext<()>>(&self, _window: &GlobalWindow, _ctx: &mut C) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::TimeWindow;
    use super::*;
    use std::collections::BTreeSet;

    /// A plain in-memory trigger context: timers are a set, state an `Option`, and the
    /// states of merged windows a list, so the built-in triggers can be checked alone.
    #[derive(Default)]
    pub(crate) struct Cx<S> {
        pub watermark: i64,
        pub now: i64,
        pub event: BTreeSet<i64>,
        pub processing: BTreeSet<i64>,
        pub state: Option<S>,
        pub merged: Vec<S>,
    }

    impl<S: Default> TriggerContext<S> for Cx<S> {
        fn current_watermark(&self) -> i64 {
            self.watermark
        }
        fn current_processing_time(&self) -> i64 {
            self.now
        }
        fn register_event_time_timer(&mut self, time: i64) -> Result<()> {
            self.event.insert(time);
            Ok(())
        }
        fn register_processing_time_timer(&mut self, time: i64) -> Result<()> {
            self.processing.insert(time);
            Ok(())
        }
        fn delete_event_time_timer(&mut self, time: i64) -> Result<()> {
            self.event.remove(&time);
            Ok(())
        }
        fn delete_processing_time_timer(&mut self, time: i64) -> Result<()> {
            self.processing.remove(&time);
            Ok(())
        }
        fn state(&mut self) -> Result<&mut S> {
            Ok(self.state.get_or_insert_with(S::default))
        }
        fn clear_state(&mut self) -> Result<()> {
            self.state = None;
            Ok(())
        }
    }

    impl<S: Default> OnMergeContext<S> for Cx<S> {
        fn merge_state(&mut self, mut merge: impl FnMut(&mut S, S)) -> Result<()> {
            for s in std::mem::take(&mut self.merged) {
                merge(self.state.get_or_insert_with(S::default), s);
            }
            Ok(())
        }
    }

    fn cx<S: Default>(watermark: i64) -> Cx<S> {
        Cx {
            watermark,
            now: 0,
            ..Default::default()
        }
    }

    const W: TimeWindow = TimeWindow::new(0, 10);

    #[test]
    fn event_time_trigger_fires_at_the_end_of_the_window_and_late_at_once() {
        let t = EventTimeTrigger::create();
        let mut c = cx::<()>(i64::MIN);
        let r = Trigger::<&str, _>::on_element(&t, &"a", 3, &W, &mut c).unwrap();
        assert_eq!(r, TriggerResult::Continue);
        assert_eq!(c.event, BTreeSet::from([9]));
        assert_eq!(
            Trigger::<&str, _>::on_event_time(&t, 9, &W, &mut c).unwrap(),
            TriggerResult::Fire
        );
        // A cleanup timer at max_timestamp + lateness is not a firing.
        assert_eq!(
            Trigger::<&str, _>::on_event_time(&t, 19, &W, &mut c).unwrap(),
            TriggerResult::Continue
        );
        c.watermark = 9;
        assert_eq!(
            Trigger::<&str, _>::on_element(&t, &"late", 4, &W, &mut c).unwrap(),
            TriggerResult::Fire
        );
        Trigger::<&str, _>::clear(&t, &W, &mut c).unwrap();
        assert!(c.event.is_empty());
    }

    #[test]
    fn event_time_trigger_registers_on_merge_only_before_the_watermark() {
        let t = EventTimeTrigger::create();
        let mut c = cx::<()>(5);
        Trigger::<&str, _>::on_merge(&t, &W, &mut c).unwrap();
        assert_eq!(c.event, BTreeSet::from([9]));
        let mut c = cx::<()>(9);
        Trigger::<&str, _>::on_merge(&t, &W, &mut c).unwrap();
        assert!(c.event.is_empty());
    }

    #[test]
    fn processing_time_trigger_fires_on_its_timer() {
        let t = ProcessingTimeTrigger::create();
        let mut c = cx::<()>(i64::MIN);
        c.now = 2;
        assert_eq!(
            Trigger::<&str, _>::on_element(&t, &"a", 0, &W, &mut c).unwrap(),
            TriggerResult::Continue
        );
        assert_eq!(c.processing, BTreeSet::from([9]));
        assert_eq!(
            Trigger::<&str, _>::on_processing_time(&t, 9, &W, &mut c).unwrap(),
            TriggerResult::Fire
        );
        c.now = 9;
        c.processing.clear();
        Trigger::<&str, _>::on_merge(&t, &W, &mut c).unwrap();
        assert!(c.processing.is_empty());
        c.now = 8;
        Trigger::<&str, _>::on_merge(&t, &W, &mut c).unwrap();
        assert_eq!(c.processing, BTreeSet::from([9]));
        Trigger::<&str, _>::clear(&t, &W, &mut c).unwrap();
        assert!(c.processing.is_empty());
    }

    #[test]
    fn count_trigger_fires_every_n_and_merges_counts() {
        let t = CountTrigger::of(3);
        let mut c = cx::<u64>(0);
        let mut got = Vec::new();
        for _ in 0..7 {
            got.push(Trigger::<u8, _>::on_element(&t, &0, 0, &GlobalWindow, &mut c).unwrap());
        }
        use TriggerResult::{Continue as C, Fire as F};
        assert_eq!(got, vec![C, C, F, C, C, F, C]);
        assert_eq!(c.state, Some(1));
        c.merged = vec![1, 0];
        Trigger::<u8, _>::on_merge(&t, &GlobalWindow, &mut c).unwrap();
        assert_eq!(c.state, Some(2));
        assert_eq!(
            Trigger::<u8, _>::on_element(&t, &0, 0, &GlobalWindow, &mut c).unwrap(),
            F
        );
        Trigger::<u8, _>::clear(&t, &GlobalWindow, &mut c).unwrap();
        assert_eq!(c.state, None);
    }

    #[test]
    fn purging_trigger_turns_fires_into_fire_and_purge() {
        let t = PurgingTrigger::of(CountTrigger::of(2));
        let mut c = cx::<u64>(0);
        let r1 = Trigger::<u8, _>::on_element(&t, &0, 0, &W, &mut c).unwrap();
        let r2 = Trigger::<u8, _>::on_element(&t, &0, 0, &W, &mut c).unwrap();
        assert_eq!(
            (r1, r2),
            (TriggerResult::Continue, TriggerResult::FireAndPurge)
        );
        assert!(Trigger::<u8, TimeWindow>::can_merge(&t));
        let p = PurgingTrigger::of(EventTimeTrigger::create());
        let mut c = cx::<()>(0);
        assert_eq!(
            Trigger::<u8, _>::on_event_time(&p, 9, &W, &mut c).unwrap(),
            TriggerResult::FireAndPurge
        );
    }

    #[test]
    fn triggers_that_cannot_merge_say_so() {
        let mut c = cx::<()>(0);
        assert!(!Trigger::<u8, GlobalWindow>::can_merge(&EndOfStreamTrigger));
        let e = Trigger::<u8, GlobalWindow>::on_merge(&EndOfStreamTrigger, &GlobalWindow, &mut c)
            .unwrap_err();
        assert_eq!(e.to_string(), "This trigger does not support merging.");
    }

    #[test]
    fn end_of_stream_trigger_fires_at_the_maximum_watermark() {
        let mut c = cx::<()>(0);
        let t = EndOfStreamTrigger;
        assert_eq!(
            Trigger::<u8, _>::on_element(&t, &0, 5, &GlobalWindow, &mut c).unwrap(),
            TriggerResult::Continue
        );
        assert_eq!(c.event, BTreeSet::from([i64::MAX]));
        assert_eq!(
            Trigger::<u8, _>::on_event_time(&t, i64::MAX, &GlobalWindow, &mut c).unwrap(),
            TriggerResult::Fire
        );
    }
}
