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
use crate::api::functions::{Collector, RuntimeContext};
use crate::api::window::{
    OnMergeContext, ProcessWindowContext, SideOutputs, Trigger, TriggerContext, TriggerResult,
    Window, WindowAssigner, WindowAssignerContext, WindowScopedState,
};
use crate::state::{KeyedContext, ValueState, ValueStateDescriptor};
use crate::Result;
use std::marker::PhantomData;

/// What the window logic needs from the timed operator for the current key.
pub(crate) trait Host<K, U, W> {
    fn keyed(&mut self) -> &mut KeyedContext<K>;
    fn watermark(&self) -> i64;
    fn processing_time(&self) -> i64;
    fn register_event_time_timer(&mut self, window: &W, time: i64) -> Result<()>;
    fn register_processing_time_timer(&mut self, window: &W, time: i64) -> Result<()>;
    fn delete_event_time_timer(&mut self, window: &W, time: i64) -> Result<()>;
    fn delete_processing_time_timer(&mut self, window: &W, time: i64) -> Result<()>;
    fn emit(&mut self, timestamp: i64, value: U);
    fn emit_side_outputs(&mut self, side: &mut SideOutputs) -> Result<()>;
    fn emit_late(&mut self, timestamp: i64) -> Result<()>;
}

/// The settings of a window operator that do not depend on the functions.
#[derive(Clone)]
pub(crate) struct WindowSettings<T> {
    pub allowed_lateness: i64,
    pub late_tag: Option<OutputTag<T>>,
}

/// The window operator: assigner `A`, trigger `Tr`, contents `C` and function `F`.
pub(crate) struct WindowLogic<T, R, A: WindowAssigner<T>, Tr: Trigger<T, A::W>, C: Contents<T>, F> {
    pub assigner: A,
    pub core: Core<T, R, A::W, Tr, C, F>,
    windows: Vec<A::W>,
}

/// Everything but the assigner, so a merge callback can borrow it while the assigner
/// merges windows.
pub(crate) struct Core<T, R, W, Tr: Trigger<T, W>, C: Contents<T>, F> {
    trigger: Tr,
    contents: C,
    function: F,
    event_time: bool,
    merging: bool,
    allowed_lateness: i64,
    contents_state: ValueState<WindowMap<W, C::Acc>>,
    trigger_state: ValueState<WindowMap<W, Tr::State>>,
    merging_state: ValueState<MergingWindowSet<W>>,
    out: Collector<R>,
    side: SideOutputs,
    _t: PhantomData<fn(T)>,
}
