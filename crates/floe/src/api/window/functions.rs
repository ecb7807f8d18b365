//! The functions a window applies to its contents.

use super::Window;
use crate::api::data::{Data, Key};
use crate::api::functions::{Collector, RuntimeContext};
use crate::api::time::OutputTag;
use crate::runtime::operator::timed::TimedCx;
use serde::Serialize;
use crate::runtime::operator::window::contents::WindowMap;
use crate::state::KeyedContext;
use crate::Result;
use std::marker::PhantomData;

/// An incremental aggregation (Flink's `AggregateFunction`): each window keeps one
/// accumulator, every element is added to it as it arrives, and a firing emits
/// `get_result` of it. `merge` combines the accumulators of merged (session) windows.
///
/// ```
/// use floe::api::window::AggregateFunction;
///
/// /// The average of the second field.
/// #[derive(Clone)]
/// struct Average;
/// impl AggregateFunction<(String, i64), (i64, i64), f64> for Average {
///     fn create_accumulator(&self) -> (i64, i64) { (0, 0) }
///     fn add(&self, value: (String, i64), acc: &mut (i64, i64)) { acc.0 += value.1; acc.1 += 1; }
///     fn get_result(&self, acc: &(i64, i64)) -> f64 { acc.0 as f64 / acc.1 as f64 }
///     fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) { (a.0 + b.0, a.1 + b.1) }
/// }
/// let avg = Average;
/// let mut acc = avg.create_accumulator();
/// avg.add(("a".into(), 1), &mut acc);
/// avg.add(("a".into(), 4), &mut acc);
/// assert_eq!(avg.get_result(&acc), 2.5);
/// ```
pub trait AggregateFunction<T, ACC, R>: Clone + Send + Sync + 'static {
    /// A new, empty accumulator (one per key and window).
    fn create_accumulator(&self) -> ACC;
    /// Adds one element to the accumulator.
    fn add(&self, value: T, accumulator: &mut ACC);
    /// The result of the accumulator (called on every firing; the accumulator stays).
    fn get_result(&self, accumulator: &ACC) -> R;
    /// Combines two accumulators (when session windows merge).
    fn merge(&self, a: ACC, b: ACC) -> ACC;
}

/// Evaluates a window with all its elements and its metadata (Flink's
/// `ProcessWindowFunction`): called on every firing with the window's key, a
/// [`ProcessWindowContext`] (the window, the time, per-window and per-key state) and the
/// window's elements — all of them for `process`, the one reduced or aggregated value
/// for `reduce_with`/`aggregate_with`.
///
/// ```
/// use floe::prelude::*;
/// use floe::api::window::{ProcessWindowContext, ProcessWindowFunction, TimeWindow};
///
/// /// `(key, window start, window end, count)` per firing.
/// #[derive(Clone)]
/// struct CountPerWindow;
/// impl ProcessWindowFunction<(String, i64), (String, i64, i64, usize), String, TimeWindow> for CountPerWindow {
///     fn process(
///         &mut self,
///         key: &String,
///         ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (String, i64, i64, usize)>,
///         elements: &[(String, i64)],
///         out: &mut Collector<(String, i64, i64, usize)>,
///     ) -> Result<()> {
///         let w = ctx.window();
///         out.collect((key.clone(), w.start, w.end, elements.len()));
///         Ok(())
///     }
/// }
/// ```
pub trait ProcessWindowFunction<T, R, K, W: Window>: Clone + Send + Sync + 'static {
    /// Called once per parallel instance before the first firing; register per-key
    /// ([`ValueStateDescriptor`](crate::state::ValueStateDescriptor)) and per-window
    /// ([`WindowValueStateDescriptor`]) state here.
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Evaluates the window: emits results through `out`; they carry the timestamp
    /// `window.max_timestamp()`.
    fn process(
        &mut self,
        key: &K,
        context: &mut ProcessWindowContext<'_, '_, K, W, R>,
        elements: &[T],
        out: &mut Collector<R>,
    ) -> Result<()>;

    /// Called when the window is removed (after the allowed lateness): clear the per-window
    /// state used in `process`.
    fn clear(&mut self, _context: &mut ProcessWindowContext<'_, '_, K, W, R>) -> Result<()> {
        Ok(())
    }
}

/// What a [`ProcessWindowFunction`] sees besides the elements (Flink's
/// `ProcessWindowFunction.Context`).
pub struct ProcessWindowContext<'a, 'b, K, W, R> {
    pub(crate) cx: &'a mut TimedCx<'b, K, R, W>,
    pub(crate) window: &'a W,
    pub(crate) merging: bool,
}

impl<K: Key, W: Window, R: Data> ProcessWindowContext<'_, '_, K, W, R> {
    /// The window being evaluated.
    pub fn window(&self) -> &W {
        self.window
    }
    /// The current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.cx.current_watermark()
    }
    /// The current processing time (epoch milliseconds).
    pub fn current_processing_time(&self) -> i64 {
        self.cx.current_processing_time()
    }
    /// State scoped to the key and this window (Flink's `windowState()`), used with
    /// [`WindowValueState`] and [`WindowListState`] handles. Not available with merging
    /// (session) windows, as in Flink.
    pub fn window_state(&mut self) -> WindowScopedState<'_, K, W> {
        WindowScopedState {
            keyed: self.cx.state(),
            window: self.window,
            merging: self.merging,
        }
    }
    /// State scoped to the key across all its windows (Flink's `globalState()`), used with
    /// the ordinary keyed state handles.
    pub fn global_state(&mut self) -> &mut KeyedContext<K> {
        self.cx.state()
    }
    /// Emits `value` to the side output `tag` (Flink's `context.output(tag, value)`), with
    /// the window's timestamp `max_timestamp()`.
    pub fn output<V: Serialize>(&mut self, tag: &OutputTag<V>, value: V) -> Result<()> {
        self.cx.emit_side(tag, self.window.max_timestamp(), &value)
    }
}

/// The keyed state of one key, scoped to one window: see
/// [`ProcessWindowContext::window_state`].
pub struct WindowScopedState<'a, K, W> {
    pub(crate) keyed: &'a mut KeyedContext<K>,
    pub(crate) window: &'a W,
    pub(crate) merging: bool,
}

impl<K, W> WindowScopedState<'_, K, W> {
    fn check(&self) -> Result<()> {
        if self.merging {
            crate::bail!("Per-window state is not allowed when using merging windows.");
        }
        Ok(())
    }
}

/// Describes a [`WindowValueState`]: a value per key and window.
///
/// ```
/// use floe::api::window::{TimeWindow, WindowValueState, WindowValueStateDescriptor};
/// # use floe::prelude::*;
/// # fn open(ctx: &mut RuntimeContext<'_>) -> Result<()> {
/// let firings: WindowValueState<TimeWindow, u32> = WindowValueStateDescriptor::new("firings").register(ctx)?;
/// # Ok(()) }
/// ```
pub struct WindowValueStateDescriptor<V> {
    name: String,
    _p: PhantomData<V>,
}

impl<V: Data> WindowValueStateDescriptor<V> {
    /// A per-window value state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        WindowValueStateDescriptor {
            name: name.into(),
            _p: PhantomData,
        }
    }
    /// Registers the state (call from `open()`).
    pub fn register<W: Window>(self, ctx: &mut RuntimeContext<'_>) -> Result<WindowValueState<W, V>> {
        let id = ctx
            .registry()?
            .register::<WindowMap<W, V>>(&self.name, "window value", None, None)?;
        Ok(WindowValueState {
            id,
            _p: PhantomData,
        })
    }
}

/// A value per key and window (Flink's `ValueState` from `context.windowState()`).
///
/// ```
/// use floe::prelude::*;
/// use floe::api::window::*;
///
/// /// Emits `(count, n-th firing of this window)`: late firings count up.
/// #[derive(Clone, Default)]
/// struct Firings { n: WindowValueState<TimeWindow, u32> }
/// impl ProcessWindowFunction<i64, (usize, u32), (), TimeWindow> for Firings {
///     fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
///         self.n = WindowValueStateDescriptor::new("firings").register(ctx)?;
///         Ok(())
///     }
///     fn process(&mut self, _k: &(), ctx: &mut ProcessWindowContext<'_, '_, (), TimeWindow, (usize, u32)>, e: &[i64], out: &mut Collector<(usize, u32)>) -> Result<()> {
///         let n = self.n.value(&ctx.window_state())?.unwrap_or(0) + 1;
///         self.n.update(&mut ctx.window_state(), n)?;
///         out.collect((e.len(), n));
///         Ok(())
///     }
///     fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, '_, (), TimeWindow, (usize, u32)>) -> Result<()> {
///         self.n.clear(&mut ctx.window_state())
///     }
/// }
/// ```
pub struct WindowValueState<W, V> {
    id: u32,
    _p: PhantomData<fn() -> (W, V)>,
}

impl<W, V> Clone for WindowValueState<W, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W, V> Copy for WindowValueState<W, V> {}
impl<W, V> Default for WindowValueState<W, V> {
    /// An unbound handle; using it before `register` is an error, not a panic.
    fn default() -> Self {
        WindowValueState {
            id: u32::MAX,
            _p: PhantomData,
        }
    }
}

impl<W: Window, V: Data> WindowValueState<W, V> {
    /// The value of the current key and window, or `None`.
    pub fn value<K>(&self, s: &WindowScopedState<'_, K, W>) -> Result<Option<V>> {
        s.check()?;
        Ok(s
            .keyed
            .registry
            .table::<WindowMap<W, V>>(self.id)?
            .get(s.keyed.current)
            .and_then(|m| m.get(s.window))
            .cloned())
    }
    /// Sets the value of the current key and window.
    pub fn update<K>(&self, s: &mut WindowScopedState<'_, K, W>, value: V) -> Result<()> {
        s.check()?;
        let slot = s.keyed.current;
        s.keyed
            .registry
            .table_mut::<WindowMap<W, V>>(self.id, slot)?
            .get_or_insert_with(slot, WindowMap::default)
            .insert(s.window.clone(), value);
        Ok(())
    }
    /// Removes the value of the current key and window.
    pub fn clear<K>(&self, s: &mut WindowScopedState<'_, K, W>) -> Result<()> {
        s.check()?;
        remove_window::<W, V, K>(self.id, s)
    }
}

fn remove_window<W: Window, S: Data, K>(id: u32, s: &mut WindowScopedState<'_, K, W>) -> Result<()> {
    let slot = s.keyed.current;
    let t = s.keyed.registry.table_mut::<WindowMap<W, S>>(id, slot)?;
    if let Some(m) = t.get_mut(slot) {
        m.remove(s.window);
        if m.is_empty() {
            t.set(slot, None);
        }
    }
    Ok(())
}

/// Describes a [`WindowListState`]: a list per key and window.
pub struct WindowListStateDescriptor<V> {
    name: String,
    _p: PhantomData<V>,
}

impl<V: Data> WindowListStateDescriptor<V> {
    /// A per-window list state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        WindowListStateDescriptor {
            name: name.into(),
            _p: PhantomData,
        }
    }
    /// Registers the state (call from `open()`).
    pub fn register<W: Window>(self, ctx: &mut RuntimeContext<'_>) -> Result<WindowListState<W, V>> {
        let id = ctx
            .registry()?
            .register::<WindowMap<W, Vec<V>>>(&self.name, "window list", None, None)?;
        Ok(WindowListState {
            id,
            _p: PhantomData,
        })
    }
}

/// A list per key and window (Flink's `ListState` from `context.windowState()`).
pub struct WindowListState<W, V> {
    id: u32,
    _p: PhantomData<fn() -> (W, V)>,
}

impl<W, V> Clone for WindowListState<W, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W, V> Copy for WindowListState<W, V> {}
impl<W, V> Default for WindowListState<W, V> {
    /// An unbound handle; using it before `register` is an error, not a panic.
    fn default() -> Self {
        WindowListState {
            id: u32::MAX,
            _p: PhantomData,
        }
    }
}

impl<W: Window, V: Data> WindowListState<W, V> {
    /// Appends a value to the list of the current key and window.
    pub fn add<K>(&self, s: &mut WindowScopedState<'_, K, W>, value: V) -> Result<()> {
        s.check()?;
        let slot = s.keyed.current;
        s.keyed
            .registry
            .table_mut::<WindowMap<W, Vec<V>>>(self.id, slot)?
            .get_or_insert_with(slot, WindowMap::default)
            .get_or_insert_with(s.window, Vec::new)
            .push(value);
        Ok(())
    }
    /// The list of the current key and window (empty when none).
    pub fn get<K>(&self, s: &WindowScopedState<'_, K, W>) -> Result<Vec<V>> {
        s.check()?;
        Ok(s
            .keyed
            .registry
            .table::<WindowMap<W, Vec<V>>>(self.id)?
            .get(s.keyed.current)
            .and_then(|m| m.get(s.window))
            .cloned()
            .unwrap_or_default())
    }
    /// Removes the list of the current key and window.
    pub fn clear<K>(&self, s: &mut WindowScopedState<'_, K, W>) -> Result<()> {
        s.check()?;
        remove_window::<W, Vec<V>, K>(self.id, s)
    }
}
