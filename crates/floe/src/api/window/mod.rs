//! Windows: Flink's `org.apache.flink.streaming.api.windowing` — windows, window
//! assigners, triggers, evictors and the window functions.
//!
//! A window groups the elements of one key (or of the whole stream for `window_all`) that
//! a window function sees together. A [`WindowAssigner`] puts every element into zero or
//! more windows; a [`Trigger`] decides when a window is evaluated (fired) and when its
//! contents are dropped (purged); an optional [`Evictor`] removes elements before or after
//! the function sees them. Event-time windows are evaluated when the watermark passes their
//! end (`window.max_timestamp() <= watermark`), and their results carry the timestamp
//! `window.max_timestamp()`.
//!
//! ```
//! use floe::api::window::{TimeWindow, TumblingEventTimeWindows, WindowAssigner};
//! use std::time::Duration;
//!
//! // Element at 12_345 ms falls into the 10 s window [10_000, 20_000).
//! let w = TimeWindow::new(TimeWindow::get_window_start_with_offset(12_345, 0, 10_000), 20_000);
//! assert_eq!(w, TimeWindow::new(10_000, 20_000));
//! assert_eq!(w.max_timestamp(), 19_999);
//! let tumbling = TumblingEventTimeWindows::of(Duration::from_secs(10));
//! assert!(WindowAssigner::<String>::is_event_time(&tumbling));
//! ```

mod assigners;
mod evictors;
mod functions;
mod stream;
mod triggers;

pub use assigners::{
    DynamicEventTimeSessionWindows, DynamicProcessingTimeSessionWindows, EventTimeSessionWindows,
    GlobalWindows, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
    WindowAssigner, WindowAssignerContext,
};
pub use stream::{EvictingWindowedStream, WindowedStream};
pub use evictors::{CountEvictor, Evictor, EvictorContext, TimeEvictor, TimestampedValues};
pub use functions::{
    AggregateFunction, ProcessWindowContext, ProcessWindowFunction, WindowListState,
    WindowListStateDescriptor, WindowScopedState, WindowValueState, WindowValueStateDescriptor,
};
pub use triggers::{
    CountTrigger, EndOfStreamTrigger, EventTimeTrigger, NeverTrigger, OnMergeContext,
    ProcessingTimeTrigger, PurgingTrigger, Trigger, TriggerContext, TriggerResult,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::Hash;

/// A window (Flink's `Window`): a group of elements evaluated together. Windows are the
/// namespace of the window operator's state and timers, so they are keys of their own:
/// comparable, hashable and serializable.
pub trait Window: crate::api::data::Key + Ord + Hash + fmt::Debug + fmt::Display + Sync {
    /// The largest timestamp that still belongs to this window. An event-time window fires
    /// once the watermark reaches it, and its results carry it as their timestamp.
    fn max_timestamp(&self) -> i64;
}

/// A window covering the time interval `[start, end)` (Flink's `TimeWindow`): `start` is
/// inclusive, `end` exclusive, both in milliseconds.
///
/// ```
/// use floe::api::window::{TimeWindow, Window};
/// let a = TimeWindow::new(0, 10);
/// let b = TimeWindow::new(10, 15);
/// assert_eq!(a.max_timestamp(), 9);
/// assert!(a.intersects(&b)); // touching windows merge (as in Flink)
/// assert_eq!(a.cover(&b), TimeWindow::new(0, 15));
/// assert_eq!(a.to_string(), "TimeWindow{start=0, end=10}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First timestamp of the window (inclusive).
    pub start: i64,
    /// End of the window (exclusive).
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub const fn new(start: i64, end: i64) -> Self {
        TimeWindow { start, end }
    }

    /// First timestamp of the window (inclusive).
    pub const fn start(&self) -> i64 {
        self.start
    }

    /// End of the window (exclusive).
    pub const fn end(&self) -> i64 {
        self.end
    }

    /// `end - 1`: the largest timestamp in the window.
    pub const fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// True when the two windows overlap or touch (`[0, 10)` and `[10, 20)` intersect), the
    /// condition under which session windows merge (Flink's `intersects`).
    pub const fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The start of the window of `size` ms, shifted by `offset` ms, that contains
    /// `timestamp` (Flink's `getWindowStartWithOffset`): windows start at
    /// `offset + k * size` for every integer `k`, negative timestamps included.
    ///
    /// ```
    /// use floe::api::window::TimeWindow;
    /// assert_eq!(TimeWindow::get_window_start_with_offset(7, 0, 5), 5);
    /// assert_eq!(TimeWindow::get_window_start_with_offset(-1, 0, 5), -5);
    /// assert_eq!(TimeWindow::get_window_start_with_offset(7, 3, 5), 3);
    /// assert_eq!(TimeWindow::get_window_start_with_offset(2, 3, 5), -2);
    /// ```
    ///
    /// `size` must be positive; a start before `i64::MIN` is clamped to it.
    pub fn get_window_start_with_offset(timestamp: i64, offset: i64, size: i64) -> i64 {
        // Computed in i128 so extreme timestamps neither overflow nor wrap (Java's long
        // wraps there, producing windows that end before they start).
        let (ts, offset, size) = (timestamp as i128, offset as i128, size.max(1) as i128);
        let start = ts - (ts - offset).rem_euclid(size);
        start.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Merges overlapping windows (Flink's `TimeWindow.mergeWindows`): sorts `windows` by
    /// start and calls `merge(merged_windows, result)` for every group of more than one
    /// window that intersect transitively, with the window covering the group. Equal
    /// windows count once.
    pub fn merge_windows(
        windows: &[TimeWindow],
        mut merge: impl FnMut(Vec<TimeWindow>, TimeWindow),
    ) {
        let mut sorted = windows.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut current: Option<(TimeWindow, Vec<TimeWindow>)> = None;
        for candidate in sorted {
            match &mut current {
                Some((cover, group)) if cover.intersects(&candidate) => {
                    *cover = cover.cover(&candidate);
                    group.push(candidate);
                }
                _ => {
                    if let Some((cover, group)) = current.take() {
                        if group.len() > 1 {
                            merge(group, cover);
                        }
                    }
                    current = Some((candidate, vec![candidate]));
                }
            }
        }
        if let Some((cover, group)) = current {
            if group.len() > 1 {
                merge(group, cover);
            }
        }
    }
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        TimeWindow::max_timestamp(self)
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeWindow{{start={}, end={}}}", self.start, self.end)
    }
}

/// The one window of [`GlobalWindows`]: every element of a key is in it (Flink's
/// `GlobalWindow`). It never ends: its `max_timestamp()` is `i64::MAX`, so it fires only
/// through its trigger (e.g. [`CountTrigger`]) and its state is never cleaned up by time.
///
/// ```
/// use floe::api::window::{GlobalWindow, Window};
/// assert_eq!(GlobalWindow.max_timestamp(), i64::MAX);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct GlobalWindow;

impl GlobalWindow {
    /// The global window (Flink's `GlobalWindow.get()`).
    pub const fn get() -> Self {
        GlobalWindow
    }
}

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

impl fmt::Display for GlobalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GlobalWindow")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_with_offset_follows_flink() {
        // Flink's TimeWindowTest#testGetWindowStartWithOffset.
        assert_eq!(TimeWindow::get_window_start_with_offset(1, 0, 7), 0);
        assert_eq!(TimeWindow::get_window_start_with_offset(7, 0, 7), 7);
        assert_eq!(TimeWindow::get_window_start_with_offset(8, 0, 7), 7);
        assert_eq!(TimeWindow::get_window_start_with_offset(1, 2, 7), -5);
        assert_eq!(TimeWindow::get_window_start_with_offset(2, 2, 7), 2);
        assert_eq!(TimeWindow::get_window_start_with_offset(8, 2, 7), 2);
        assert_eq!(TimeWindow::get_window_start_with_offset(9, 2, 7), 9);
        assert_eq!(TimeWindow::get_window_start_with_offset(1, -2, 7), -2);
        assert_eq!(TimeWindow::get_window_start_with_offset(5, -2, 7), 5);
        assert_eq!(TimeWindow::get_window_start_with_offset(6, -2, 7), 5);
        // Negative timestamps.
        assert_eq!(TimeWindow::get_window_start_with_offset(-1, 0, 7), -7);
        assert_eq!(TimeWindow::get_window_start_with_offset(-7, 0, 7), -7);
        assert_eq!(TimeWindow::get_window_start_with_offset(-8, 0, 7), -14);
        assert_eq!(TimeWindow::get_window_start_with_offset(-4, -2, 7), -9);
        assert_eq!(TimeWindow::get_window_start_with_offset(-3, 2, 7), -5);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        assert_eq!(
            TimeWindow::get_window_start_with_offset(i64::MIN, 0, 1000),
            i64::MIN
        );
        let s = TimeWindow::get_window_start_with_offset(i64::MIN + 1, 0, 1000);
        assert_eq!(s, i64::MIN);
        let s = TimeWindow::get_window_start_with_offset(i64::MAX, 0, 1000);
        assert_eq!(s, i64::MAX - i64::MAX.rem_euclid(1000));
        assert_eq!(
            TimeWindow::new(i64::MIN, i64::MIN).max_timestamp(),
            i64::MIN
        );
    }

    #[test]
    fn intersects_and_cover() {
        let a = TimeWindow::new(0, 10);
        assert!(a.intersects(&TimeWindow::new(10, 20)));
        assert!(a.intersects(&TimeWindow::new(-5, 0)));
        assert!(a.intersects(&TimeWindow::new(2, 3)));
        assert!(!a.intersects(&TimeWindow::new(11, 20)));
        assert!(!a.intersects(&TimeWindow::new(-5, -1)));
        assert_eq!(a.cover(&TimeWindow::new(-5, 3)), TimeWindow::new(-5, 10));
    }

    #[test]
    fn merge_windows_groups_transitively_overlapping_windows() {
        let ws = [
            TimeWindow::new(20, 25),
            TimeWindow::new(0, 5),
            TimeWindow::new(4, 8),
            TimeWindow::new(8, 12),
            TimeWindow::new(30, 35),
            TimeWindow::new(22, 28),
            TimeWindow::new(0, 5),
        ];
        let mut merges = Vec::new();
        TimeWindow::merge_windows(&ws, |group, cover| merges.push((group, cover)));
        assert_eq!(
            merges,
            vec![
                (
                    vec![
                        TimeWindow::new(0, 5),
                        TimeWindow::new(4, 8),
                        TimeWindow::new(8, 12)
                    ],
                    TimeWindow::new(0, 12)
                ),
                (
                    vec![TimeWindow::new(20, 25), TimeWindow::new(22, 28)],
                    TimeWindow::new(20, 28)
                ),
            ]
        );
    }
}
