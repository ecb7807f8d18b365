//! Evictors: remove elements from a window before or after its function runs (Flink's
//! `org.apache.flink.streaming.api.windowing.evictors`).

use super::assigners::millis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The elements of a window with their timestamps, in arrival order: what an
/// [`Evictor`] sees and what a window with an evictor keeps (it cannot aggregate
/// incrementally, since an evictor may remove any element).
///
/// ```
/// use floe::api::window::TimestampedValues;
/// let mut v = TimestampedValues::default();
/// v.push(10, "a");
/// v.push(20, "b");
/// v.push(30, "c");
/// v.retain(|ts, _| ts > 10);
/// assert_eq!(v.values(), &["b", "c"]);
/// assert_eq!(v.timestamps(), &[20, 30]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampedValues<T> {
    timestamps: Vec<i64>,
    values: Vec<T>,
}

impl<T> Default for TimestampedValues<T> {
    fn default() -> Self {
        TimestampedValues {
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T> TimestampedValues<T> {
    /// Appends an element with its timestamp.
    pub fn push(&mut self, timestamp: i64, value: T) {
        self.timestamps.push(timestamp);
        self.values.push(value);
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The elements, in arrival order.
    pub fn values(&self) -> &[T] {
        &self.values
    }
    pub(crate) fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }
    /// Their timestamps (`i64::MIN` for an element without one).
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }
    /// `(timestamp, element)` pairs in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &T)> + '_ {
        self.timestamps.iter().copied().zip(self.values.iter())
    }
    /// Keeps the elements for which `keep(timestamp, element)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(i64, &T) -> bool) {
        let mut w = 0;
        for r in 0..self.values.len() {
            if keep(self.timestamps[r], &self.values[r]) {
                self.timestamps.swap(w, r);
                self.values.swap(w, r);
                w += 1;
            }
        }
        self.timestamps.truncate(w);
        self.values.truncate(w);
    }
    /// Removes the `n` oldest elements (all when fewer).
    pub fn remove_first(&mut self, n: usize) {
        let n = n.min(self.values.len());
        self.timestamps.drain(..n);
        self.values.drain(..n);
    }
    /// Appends all elements of `other` (merging two windows' contents).
    pub fn append(&mut self, other: &mut TimestampedValues<T>) {
        self.timestamps.append(&mut other.timestamps);
        self.values.append(&mut other.values);
    }
}

/// What an evictor can read (Flink's `Evictor.EvictorContext`).
#[derive(Clone, Copy, Debug)]
pub struct EvictorContext {
    pub(crate) processing_time: i64,
    pub(crate) watermark: i64,
}

impl EvictorContext {
    /// A context at processing time `now` and watermark `watermark`.
    pub const fn new(now: i64, watermark: i64) -> Self {
        EvictorContext {
            processing_time: now,
            watermark,
        }
    }
    /// The current processing time (epoch milliseconds).
    pub const fn current_processing_time(&self) -> i64 {
        self.processing_time
    }
    /// The current event-time watermark.
    pub const fn current_watermark(&self) -> i64 {
        self.watermark
    }
}

/// Removes elements from a window when it fires (Flink's `Evictor`): `evict_before` runs
/// before the window function, `evict_after` after it; what remains stays in the window
/// for its next firing.
///
/// ```
/// use floe::api::window::{CountEvictor, Evictor, EvictorContext, GlobalWindow, TimestampedValues};
/// let mut v = TimestampedValues::default();
/// for i in 0..5 { v.push(i, i); }
/// CountEvictor::of(2).evict_before(&mut v, &GlobalWindow, &EvictorContext::new(0, 0));
/// assert_eq!(v.values(), &[3, 4]);
/// ```
pub trait Evictor<T, W>: Clone + Send + Sync + 'static {
    /// Removes elements before the window function sees them.
    fn evict_before(&self, elements: &mut TimestampedValues<T>, window: &W, ctx: &EvictorContext);
    /// Removes elements after the window function ran.
    fn evict_after(&self, elements: &mut TimestampedValues<T>, window: &W, ctx: &EvictorContext);
}

/// Keeps the latest `max_count` elements (Flink's `CountEvictor`), by default before the
/// window function runs. `count_window(size, slide)` uses it.
#[derive(Clone, Copy, Debug)]
pub struct CountEvictor {
    max_count: u64,
    after: bool,
}

impl CountEvictor {
    /// Keeps the latest `max_count` elements, evicting before the function.
    pub const fn of(max_count: u64) -> Self {
        CountEvictor {
            max_count,
            after: false,
        }
    }
    /// Evicts after the window function instead (Flink's `of(maxCount, true)`).
    pub const fn do_evict_after(mut self) -> Self {
        self.after = true;
        self
    }
    fn evict<T>(&self, elements: &mut TimestampedValues<T>) {
        let len = elements.len() as u64;
        if len > self.max_count {
            elements.remove_first((len - self.max_count) as usize);
        }
    }
}

impl<T, W> Evictor<T, W> for CountEvictor {
    fn evict_before(&self, elements: &mut TimestampedValues<T>, _w: &W, _ctx: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }
    fn evict_after(&self, elements: &mut TimestampedValues<T>, _w: &W, _ctx: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

/// Keeps the elements within `window_size` of the newest element's timestamp (Flink's
/// `TimeEvictor`): removes every element with `timestamp <= max_timestamp - window_size`.
/// Elements without timestamps are kept.
///
/// ```
/// use floe::api::window::{Evictor, EvictorContext, GlobalWindow, TimeEvictor, TimestampedValues};
/// use std::time::Duration;
/// let mut v = TimestampedValues::default();
/// for ts in [100, 150, 200, 250] { v.push(ts, ts); }
/// TimeEvictor::of(Duration::from_millis(100)).evict_before(&mut v, &GlobalWindow, &EvictorContext::new(0, 0));
/// assert_eq!(v.values(), &[200, 250]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TimeEvictor {
    window_size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Keeps `window_size` of time, evicting before the function.
    pub fn of(window_size: Duration) -> Self {
        TimeEvictor {
            window_size: millis(window_size),
            after: false,
        }
    }
    /// Evicts after the window function instead (Flink's `of(windowSize, true)`).
    pub const fn do_evict_after(mut self) -> Self {
        self.after = true;
        self
    }
    fn evict<T>(&self, elements: &mut TimestampedValues<T>) {
        // As Flink: only when the elements have timestamps (judged by the first).
        match elements.timestamps().first() {
            None | Some(&i64::MIN) => return,
            Some(_) => {}
        }
        let newest = elements
            .timestamps()
            .iter()
            .copied()
            .max()
            .unwrap_or(i64::MIN);
        let cutoff = newest.saturating_sub(self.window_size);
        elements.retain(|ts, _| ts > cutoff);
    }
}

impl<T, W> Evictor<T, W> for TimeEvictor {
    fn evict_before(&self, elements: &mut TimestampedValues<T>, _w: &W, _ctx: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }
    fn evict_after(&self, elements: &mut TimestampedValues<T>, _w: &W, _ctx: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::GlobalWindow;
    use super::*;

    fn values(n: i64) -> TimestampedValues<i64> {
        let mut v = TimestampedValues::default();
        for i in 0..n {
            v.push(i * 10, i);
        }
        v
    }

    const CX: EvictorContext = EvictorContext::new(0, 0);

    #[test]
    fn count_evictor_keeps_the_latest_before_or_after() {
        let mut v = values(5);
        let e = CountEvictor::of(3);
        Evictor::<i64, _>::evict_after(&e, &mut v, &GlobalWindow, &CX);
        assert_eq!(v.len(), 5);
        Evictor::<i64, _>::evict_before(&e, &mut v, &GlobalWindow, &CX);
        assert_eq!(v.values(), &[2, 3, 4]);
        assert_eq!(v.timestamps(), &[20, 30, 40]);
        let a = CountEvictor::of(1).do_evict_after();
        Evictor::<i64, _>::evict_before(&a, &mut v, &GlobalWindow, &CX);
        assert_eq!(v.len(), 3);
        Evictor::<i64, _>::evict_after(&a, &mut v, &GlobalWindow, &CX);
        assert_eq!(v.values(), &[4]);
        let mut small = values(2);
        Evictor::<i64, _>::evict_before(&CountEvictor::of(3), &mut small, &GlobalWindow, &CX);
        assert_eq!(small.len(), 2);
    }

    #[test]
    fn time_evictor_keeps_the_newest_window_size() {
        let mut v = values(5); // timestamps 0..=40
        let e = TimeEvictor::of(Duration::from_millis(20));
        Evictor::<i64, _>::evict_before(&e, &mut v, &GlobalWindow, &CX);
        assert_eq!(v.values(), &[3, 4]);
        let mut untimed = TimestampedValues::default();
        untimed.push(i64::MIN, 1);
        untimed.push(i64::MIN, 2);
        Evictor::<i64, _>::evict_before(&e, &mut untimed, &GlobalWindow, &CX);
        assert_eq!(untimed.len(), 2);
    }

    #[test]
    fn timestamped_values_append_and_retain_in_order() {
        let mut a = values(3);
        let mut b = values(2);
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(a.values(), &[0, 1, 2, 0, 1]);
        a.retain(|_, v| *v != 1);
        assert_eq!(a.values(), &[0, 2, 0]);
        assert_eq!(a.timestamps(), &[0, 20, 0]);
        a.remove_first(10);
        assert!(a.is_empty());
    }
}
