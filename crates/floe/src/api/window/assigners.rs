//! Window assigners: which windows an element belongs to (Flink's
//! `org.apache.flink.streaming.api.windowing.assigners`).

use super::triggers::{EndOfStreamTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger};
use super::{GlobalWindow, TimeWindow, Trigger, Window};
use crate::Result;
use std::time::Duration;

/// Flink's message for an element without a timestamp reaching an event-time assigner.
pub(crate) const NO_TIMESTAMP_MESSAGE: &str = "Record has Long.MIN_VALUE timestamp (= no timestamp marker). Is the time characteristic set to 'ProcessingTime', or did you forget to call 'DataStream.assignTimestampsAndWatermarks(...)'?";

/// What an assigner can read while assigning (Flink's `WindowAssignerContext`).
#[derive(Clone, Copy, Debug)]
pub struct WindowAssignerContext {
    pub(crate) processing_time: i64,
}

impl WindowAssignerContext {
    /// A context at processing time `now` (epoch milliseconds).
    pub const fn new(now: i64) -> Self {
        WindowAssignerContext {
            processing_time: now,
        }
    }

    /// The current processing time (epoch milliseconds).
    pub const fn current_processing_time(&self) -> i64 {
        self.processing_time
    }
}

/// Puts every element into zero or more windows (Flink's `WindowAssigner`), and knows the
/// trigger its windows fire with unless the job sets another.
///
/// Assigners are built with plain constructors (`TumblingEventTimeWindows::of(size)`);
/// their parameters are checked by [`validate`](WindowAssigner::validate) when the job is
/// built, so a bad size fails the job with Flink's message before it runs.
pub trait WindowAssigner<T>: Clone + Send + Sync + 'static {
    /// The windows it assigns.
    type W: Window;
    /// The trigger its windows fire with by default.
    type DefaultTrigger: Trigger<T, Self::W>;

    /// Appends the windows of `element` (with event timestamp `timestamp`) to `out`.
    fn assign_windows(
        &self,
        element: &T,
        timestamp: i64,
        ctx: &WindowAssignerContext,
        out: &mut Vec<Self::W>,
    ) -> Result<()>;

    /// The default trigger.
    fn default_trigger(&self) -> Self::DefaultTrigger;

    /// True when its windows are in event time: the watermark ends them, late elements are
    /// dropped, and the allowed lateness applies.
    fn is_event_time(&self) -> bool;

    /// Checks the parameters (called when the job is built): `Err` is Flink's message.
    fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// True for assigners whose windows merge (sessions, Flink's `MergingWindowAssigner`).
    fn is_merging(&self) -> bool {
        false
    }

    /// Calls `merge(merged_windows, result)` for every group of `windows` that merges into
    /// one (only called when [`is_merging`](WindowAssigner::is_merging)).
    fn merge_windows(&self, _windows: &[Self::W], _merge: impl FnMut(Vec<Self::W>, Self::W)) {}
}

/// Whole milliseconds of `d` (as Flink's `Duration.toMillis()`), saturating at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn event_time(timestamp: i64) -> Result<i64> {
    if timestamp == i64::MIN {
        crate::bail!("{NO_TIMESTAMP_MESSAGE}");
    }
    Ok(timestamp)
}

fn tumbling(ts: i64, size: i64, offset: i64, out: &mut Vec<TimeWindow>) {
    let start = TimeWindow::get_window_start_with_offset(ts, offset, size);
    out.push(TimeWindow::new(start, start.saturating_add(size)));
}

fn sliding(ts: i64, size: i64, slide: i64, offset: i64, out: &mut Vec<TimeWindow>) {
    // Every window [start, start + size) with start = offset + k * slide containing ts,
    // latest first (Flink's order).
    let mut start = TimeWindow::get_window_start_with_offset(ts, offset, slide) as i128;
    let first = ts as i128 - size as i128;
    while start > first && start >= i64::MIN as i128 {
        let s = start as i64;
        out.push(TimeWindow::new(s, s.saturating_add(size)));
        start -= slide as i128;
    }
}

fn check_tumbling(name: &str, size: i64, offset: i64) -> std::result::Result<(), String> {
    if offset.unsigned_abs() >= size.unsigned_abs() || size <= 0 {
        return Err(format!("{name} parameters must satisfy abs(offset) < size"));
    }
    Ok(())
}

fn check_sliding(
    name: &str,
    size: i64,
    slide: i64,
    offset: i64,
) -> std::result::Result<(), String> {
    if offset.unsigned_abs() >= slide.unsigned_abs() || slide <= 0 || size <= 0 {
        return Err(format!(
            "{name} parameters must satisfy abs(offset) < slide and size > 0"
        ));
    }
    Ok(())
}

/// Tumbling (fixed-size, non-overlapping) event-time windows (Flink's
/// `TumblingEventTimeWindows`): element at `t` goes to `[start, start + size)` with
/// `start = offset + k * size <= t`.
///
/// ```
/// use floe::api::window::{TimeWindow, TumblingEventTimeWindows, WindowAssigner, WindowAssignerContext};
/// use std::time::Duration;
///
/// // Daily windows in UTC+8 (Flink's `of(Duration.ofDays(1), Duration.ofHours(-8))`).
/// let daily = TumblingEventTimeWindows::of(Duration::from_secs(86_400)).with_offset_millis(-8 * 3_600_000);
/// let mut out = Vec::new();
/// daily.assign_windows(&"x", 0, &WindowAssignerContext::new(0), &mut out).unwrap();
/// assert_eq!(out, vec![TimeWindow::new(-28_800_000, 57_600_000)]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TumblingEventTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size` aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        TumblingEventTimeWindows {
            size: millis(size),
            offset: 0,
        }
    }

    /// Shifts the windows by `offset` (Flink's `of(size, offset)`); `offset < size`.
    pub fn with_offset(self, offset: Duration) -> Self {
        self.with_offset_millis(millis(offset))
    }

    /// Shifts the windows by `offset` milliseconds, which may be negative (time zones
    /// east of UTC); `|offset| < size`.
    pub fn with_offset_millis(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }

    /// The window size in milliseconds.
    pub fn size(&self) -> i64 {
        self.size
    }
}

impl<T> WindowAssigner<T> for TumblingEventTimeWindows {
    type W = TimeWindow;
    type DefaultTrigger = EventTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        timestamp: i64,
        _ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        tumbling(event_time(timestamp)?, self.size, self.offset, out);
        Ok(())
    }
    fn default_trigger(&self) -> EventTimeTrigger {
        EventTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn validate(&self) -> std::result::Result<(), String> {
        check_tumbling("TumblingEventTimeWindows", self.size, self.offset)
    }
}

/// Tumbling processing-time windows (Flink's `TumblingProcessingTimeWindows`): an element
/// goes to the window containing the processing time at which it arrives.
///
/// ```
/// use floe::api::window::TumblingProcessingTimeWindows;
/// use std::time::Duration;
/// let w = TumblingProcessingTimeWindows::of(Duration::from_millis(500));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TumblingProcessingTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingProcessingTimeWindows {
    /// Windows of `size` aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        TumblingProcessingTimeWindows {
            size: millis(size),
            offset: 0,
        }
    }
    /// Shifts the windows by `offset`; `offset < size`.
    pub fn with_offset(self, offset: Duration) -> Self {
        self.with_offset_millis(millis(offset))
    }
    /// Shifts the windows by `offset` milliseconds, which may be negative; `|offset| < size`.
    pub fn with_offset_millis(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T> WindowAssigner<T> for TumblingProcessingTimeWindows {
    type W = TimeWindow;
    type DefaultTrigger = ProcessingTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        _timestamp: i64,
        ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        tumbling(ctx.current_processing_time(), self.size, self.offset, out);
        Ok(())
    }
    fn default_trigger(&self) -> ProcessingTimeTrigger {
        ProcessingTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn validate(&self) -> std::result::Result<(), String> {
        check_tumbling("TumblingProcessingTimeWindows", self.size, self.offset)
    }
}

/// Sliding (overlapping) event-time windows of `size`, one starting every `slide`
/// (Flink's `SlidingEventTimeWindows`): an element is in `size / slide` windows.
///
/// ```
/// use floe::api::window::{SlidingEventTimeWindows, TimeWindow, WindowAssigner, WindowAssignerContext};
/// use std::time::Duration;
/// let w = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
/// let mut out = Vec::new();
/// w.assign_windows(&(), 7, &WindowAssignerContext::new(0), &mut out).unwrap();
/// assert_eq!(out, vec![TimeWindow::new(5, 15), TimeWindow::new(0, 10)]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SlidingEventTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size`, a new one every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingEventTimeWindows {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
        }
    }
    /// Shifts the windows by `offset`; `offset < slide`.
    pub fn with_offset(self, offset: Duration) -> Self {
        self.with_offset_millis(millis(offset))
    }
    /// Shifts the windows by `offset` milliseconds, which may be negative; `|offset| < slide`.
    pub fn with_offset_millis(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T> WindowAssigner<T> for SlidingEventTimeWindows {
    type W = TimeWindow;
    type DefaultTrigger = EventTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        timestamp: i64,
        _ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        sliding(
            event_time(timestamp)?,
            self.size,
            self.slide,
            self.offset,
            out,
        );
        Ok(())
    }
    fn default_trigger(&self) -> EventTimeTrigger {
        EventTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn validate(&self) -> std::result::Result<(), String> {
        check_sliding(
            "SlidingEventTimeWindows",
            self.size,
            self.slide,
            self.offset,
        )
    }
}

/// Sliding processing-time windows (Flink's `SlidingProcessingTimeWindows`).
#[derive(Clone, Copy, Debug)]
pub struct SlidingProcessingTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingProcessingTimeWindows {
    /// Windows of `size`, a new one every `slide`.
    ///
    /// ```
    /// use floe::api::window::SlidingProcessingTimeWindows;
    /// use std::time::Duration;
    /// let w = SlidingProcessingTimeWindows::of(Duration::from_secs(1), Duration::from_millis(250));
    /// ```
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingProcessingTimeWindows {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
        }
    }
    /// Shifts the windows by `offset`; `offset < slide`.
    pub fn with_offset(self, offset: Duration) -> Self {
        self.with_offset_millis(millis(offset))
    }
    /// Shifts the windows by `offset` milliseconds, which may be negative; `|offset| < slide`.
    pub fn with_offset_millis(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T> WindowAssigner<T> for SlidingProcessingTimeWindows {
    type W = TimeWindow;
    type DefaultTrigger = ProcessingTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        _timestamp: i64,
        ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        sliding(
            ctx.current_processing_time(),
            self.size,
            self.slide,
            self.offset,
            out,
        );
        Ok(())
    }
    fn default_trigger(&self) -> ProcessingTimeTrigger {
        ProcessingTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn validate(&self) -> std::result::Result<(), String> {
        check_sliding(
            "SlidingProcessingTimeWindows",
            self.size,
            self.slide,
            self.offset,
        )
    }
}

fn session(start: i64, gap: i64, out: &mut Vec<TimeWindow>) {
    out.push(TimeWindow::new(start, start.saturating_add(gap)));
}

fn dynamic_gap(gap: Duration) -> Result<i64> {
    let gap = millis(gap);
    if gap <= 0 {
        crate::bail!("Dynamic session time gap must satisfy 0 < gap");
    }
    Ok(gap)
}

/// Event-time session windows (Flink's `EventTimeSessionWindows`): an element at `t`
/// opens the window `[t, t + gap)`, and windows of a key that overlap or touch merge, so a
/// session ends after `gap` without elements.
///
/// ```
/// use floe::api::window::EventTimeSessionWindows;
/// use std::time::Duration;
/// let sessions = EventTimeSessionWindows::with_gap(Duration::from_secs(30));
/// // A gap per element: (user, gap in ms).
/// let dynamic = EventTimeSessionWindows::with_dynamic_gap(|e: &(String, u64)| Duration::from_millis(e.1));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct EventTimeSessionWindows {
    gap: i64,
}

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` without elements.
    pub fn with_gap(gap: Duration) -> Self {
        EventTimeSessionWindows { gap: millis(gap) }
    }

    /// Sessions whose gap each element decides (Flink's `withDynamicGap`); a gap of zero
    /// fails the task with Flink's message.
    pub fn with_dynamic_gap<T, F>(gap: F) -> DynamicEventTimeSessionWindows<F>
    where
        F: Fn(&T) -> Duration + Clone + Send + Sync + 'static,
    {
        DynamicEventTimeSessionWindows { gap }
    }
}

impl<T> WindowAssigner<T> for EventTimeSessionWindows {
    type W = TimeWindow;
    type DefaultTrigger = EventTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        timestamp: i64,
        _ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        session(event_time(timestamp)?, self.gap, out);
        Ok(())
    }
    fn default_trigger(&self) -> EventTimeTrigger {
        EventTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn validate(&self) -> std::result::Result<(), String> {
        if self.gap <= 0 {
            return Err("EventTimeSessionWindows parameters must satisfy 0 < size".into());
        }
        Ok(())
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(
        &self,
        windows: &[TimeWindow],
        merge: impl FnMut(Vec<TimeWindow>, TimeWindow),
    ) {
        TimeWindow::merge_windows(windows, merge)
    }
}

/// Event-time sessions with a gap per element (Flink's `DynamicEventTimeSessionWindows`),
/// built by [`EventTimeSessionWindows::with_dynamic_gap`].
#[derive(Clone, Copy)]
pub struct DynamicEventTimeSessionWindows<F> {
    gap: F,
}

impl<T, F> WindowAssigner<T> for DynamicEventTimeSessionWindows<F>
where
    T: 'static,
    F: Fn(&T) -> Duration + Clone + Send + Sync + 'static,
{
    type W = TimeWindow;
    type DefaultTrigger = EventTimeTrigger;

    fn assign_windows(
        &self,
        element: &T,
        timestamp: i64,
        _ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        let ts = event_time(timestamp)?;
        session(ts, dynamic_gap((self.gap)(element))?, out);
        Ok(())
    }
    fn default_trigger(&self) -> EventTimeTrigger {
        EventTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(
        &self,
        windows: &[TimeWindow],
        merge: impl FnMut(Vec<TimeWindow>, TimeWindow),
    ) {
        TimeWindow::merge_windows(windows, merge)
    }
}

/// Processing-time session windows (Flink's `ProcessingTimeSessionWindows`): a session of
/// a key ends after `gap` of processing time without elements.
///
/// ```
/// use floe::api::window::ProcessingTimeSessionWindows;
/// use std::time::Duration;
/// let w = ProcessingTimeSessionWindows::with_gap(Duration::from_millis(200));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ProcessingTimeSessionWindows {
    gap: i64,
}

impl ProcessingTimeSessionWindows {
    /// Sessions that end after `gap` without elements.
    pub fn with_gap(gap: Duration) -> Self {
        ProcessingTimeSessionWindows { gap: millis(gap) }
    }

    /// Sessions whose gap each element decides (Flink's `withDynamicGap`).
    pub fn with_dynamic_gap<T, F>(gap: F) -> DynamicProcessingTimeSessionWindows<F>
    where
        F: Fn(&T) -> Duration + Clone + Send + Sync + 'static,
    {
        DynamicProcessingTimeSessionWindows { gap }
    }
}

impl<T> WindowAssigner<T> for ProcessingTimeSessionWindows {
    type W = TimeWindow;
    type DefaultTrigger = ProcessingTimeTrigger;

    fn assign_windows(
        &self,
        _element: &T,
        _timestamp: i64,
        ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        session(ctx.current_processing_time(), self.gap, out);
        Ok(())
    }
    fn default_trigger(&self) -> ProcessingTimeTrigger {
        ProcessingTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn validate(&self) -> std::result::Result<(), String> {
        if self.gap <= 0 {
            return Err("ProcessingTimeSessionWindows parameters must satisfy 0 < size".into());
        }
        Ok(())
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(
        &self,
        windows: &[TimeWindow],
        merge: impl FnMut(Vec<TimeWindow>, TimeWindow),
    ) {
        TimeWindow::merge_windows(windows, merge)
    }
}

/// Processing-time sessions with a gap per element (Flink's
/// `DynamicProcessingTimeSessionWindows`).
#[derive(Clone, Copy)]
pub struct DynamicProcessingTimeSessionWindows<F> {
    gap: F,
}

impl<T, F> WindowAssigner<T> for DynamicProcessingTimeSessionWindows<F>
where
    T: 'static,
    F: Fn(&T) -> Duration + Clone + Send + Sync + 'static,
{
    type W = TimeWindow;
    type DefaultTrigger = ProcessingTimeTrigger;

    fn assign_windows(
        &self,
        element: &T,
        _timestamp: i64,
        ctx: &WindowAssignerContext,
        out: &mut Vec<TimeWindow>,
    ) -> Result<()> {
        session(
            ctx.current_processing_time(),
            dynamic_gap((self.gap)(element))?,
            out,
        );
        Ok(())
    }
    fn default_trigger(&self) -> ProcessingTimeTrigger {
        ProcessingTimeTrigger
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(
        &self,
        windows: &[TimeWindow],
        merge: impl FnMut(Vec<TimeWindow>, TimeWindow),
    ) {
        TimeWindow::merge_windows(windows, merge)
    }
}

/// One window per key holding all its elements (Flink's `GlobalWindows`). Its default
/// trigger never fires, so it is used with a trigger of its own — `count_window` is
/// `GlobalWindows` with a [`CountTrigger`](super::CountTrigger).
///
/// ```
/// use floe::api::window::{CountTrigger, GlobalWindows};
/// let every_ten = GlobalWindows::create();
/// let at_the_end = GlobalWindows::create_with_end_of_stream_trigger();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalWindows<Tr = NeverTrigger> {
    trigger: Tr,
}

impl GlobalWindows<NeverTrigger> {
    /// Global windows whose default trigger never fires.
    pub const fn create() -> Self {
        GlobalWindows {
            trigger: NeverTrigger,
        }
    }

    /// Global windows that fire once, at the end of the input (Flink's
    /// `createWithEndOfStreamTrigger`).
    pub const fn create_with_end_of_stream_trigger() -> GlobalWindows<EndOfStreamTrigger> {
        GlobalWindows {
            trigger: EndOfStreamTrigger,
        }
    }
}

impl<T, Tr: Trigger<T, GlobalWindow>> WindowAssigner<T> for GlobalWindows<Tr> {
    type W = GlobalWindow;
    type DefaultTrigger = Tr;

    fn assign_windows(
        &self,
        _element: &T,
        _timestamp: i64,
        _ctx: &WindowAssignerContext,
        out: &mut Vec<GlobalWindow>,
    ) -> Result<()> {
        out.push(GlobalWindow);
        Ok(())
    }
    fn default_trigger(&self) -> Tr {
        self.trigger.clone()
    }
    fn is_event_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign<A: WindowAssigner<u8>>(a: &A, ts: i64, now: i64) -> Result<Vec<A::W>> {
        let mut out = Vec::new();
        a.assign_windows(&0, ts, &WindowAssignerContext::new(now), &mut out)?;
        Ok(out)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tw(s: i64, e: i64) -> TimeWindow {
        TimeWindow::new(s, e)
    }

    fn check<A: WindowAssigner<u8>>(a: A) -> std::result::Result<(), String> {
        a.validate()
    }

    #[test]
    fn tumbling_windows_follow_flink_boundaries() {
        let a = TumblingEventTimeWindows::of(ms(5000));
        assert_eq!(assign(&a, 0, 0).unwrap(), vec![tw(0, 5000)]);
        assert_eq!(assign(&a, 4999, 0).unwrap(), vec![tw(0, 5000)]);
        assert_eq!(assign(&a, 5000, 0).unwrap(), vec![tw(5000, 10000)]);
        assert_eq!(assign(&a, -1, 0).unwrap(), vec![tw(-5000, 0)]);
        assert_eq!(assign(&a, -5000, 0).unwrap(), vec![tw(-5000, 0)]);
        assert_eq!(assign(&a, -5001, 0).unwrap(), vec![tw(-10000, -5000)]);
        let o = TumblingEventTimeWindows::of(ms(5000)).with_offset(ms(100));
        assert_eq!(assign(&o, 100, 0).unwrap(), vec![tw(100, 5100)]);
        assert_eq!(assign(&o, 99, 0).unwrap(), vec![tw(-4900, 100)]);
        let n = TumblingEventTimeWindows::of(ms(5000)).with_offset_millis(-100);
        assert_eq!(assign(&n, 0, 0).unwrap(), vec![tw(-100, 4900)]);
        assert_eq!(assign(&n, 4900, 0).unwrap(), vec![tw(4900, 9900)]);
    }

    #[test]
    fn event_time_assigners_refuse_records_without_timestamp() {
        let msg = NO_TIMESTAMP_MESSAGE;
        let e = assign(&TumblingEventTimeWindows::of(ms(10)), i64::MIN, 0).unwrap_err();
        assert_eq!(e.to_string(), msg);
        let e = assign(&SlidingEventTimeWindows::of(ms(10), ms(5)), i64::MIN, 0).unwrap_err();
        assert_eq!(e.to_string(), msg);
        let e = assign(&EventTimeSessionWindows::with_gap(ms(10)), i64::MIN, 0).unwrap_err();
        assert_eq!(e.to_string(), msg);
        // Processing-time assigners ignore the event timestamp.
        let p = TumblingProcessingTimeWindows::of(ms(10));
        assert_eq!(assign(&p, i64::MIN, 17).unwrap(), vec![tw(10, 20)]);
    }

    #[test]
    fn sliding_windows_follow_flink_boundaries() {
        // Flink's SlidingEventTimeWindowsTest#testWindowAssignment (size 5000, slide 1000).
        let a = SlidingEventTimeWindows::of(ms(5000), ms(1000));
        assert_eq!(
            assign(&a, 0, 0).unwrap(),
            vec![
                tw(0, 5000),
                tw(-1000, 4000),
                tw(-2000, 3000),
                tw(-3000, 2000),
                tw(-4000, 1000)
            ]
        );
        assert_eq!(
            assign(&a, 4999, 0).unwrap(),
            vec![
                tw(4000, 9000),
                tw(3000, 8000),
                tw(2000, 7000),
                tw(1000, 6000),
                tw(0, 5000)
            ]
        );
        assert_eq!(
            assign(&a, 5000, 0).unwrap(),
            vec![
                tw(5000, 10000),
                tw(4000, 9000),
                tw(3000, 8000),
                tw(2000, 7000),
                tw(1000, 6000)
            ]
        );
        // With offset 100 (Flink's testWindowAssignmentWithOffset).
        let o = SlidingEventTimeWindows::of(ms(5000), ms(1000)).with_offset(ms(100));
        assert_eq!(
            assign(&o, 100, 0).unwrap(),
            vec![
                tw(100, 5100),
                tw(-900, 4100),
                tw(-1900, 3100),
                tw(-2900, 2100),
                tw(-3900, 1100)
            ]
        );
        // A slide that does not divide the size.
        let u = SlidingEventTimeWindows::of(ms(10), ms(3));
        assert_eq!(
            assign(&u, 10, 0).unwrap(),
            vec![tw(9, 19), tw(6, 16), tw(3, 13)]
        );
        // Negative timestamps.
        assert_eq!(
            assign(&u, -1, 0).unwrap(),
            vec![tw(-3, 7), tw(-6, 4), tw(-9, 1)]
        );
        // A slide larger than the size leaves gaps: 7 is in no window of size 2, slide 5.
        let g = SlidingEventTimeWindows::of(ms(2), ms(5));
        assert_eq!(assign(&g, 7, 0).unwrap(), vec![]);
        assert_eq!(assign(&g, 6, 0).unwrap(), vec![tw(5, 7)]);
    }

    #[test]
    fn sessions_open_a_window_of_the_gap() {
        let a = EventTimeSessionWindows::with_gap(ms(3000));
        assert_eq!(assign(&a, 5000, 0).unwrap(), vec![tw(5000, 8000)]);
        assert!(WindowAssigner::<u8>::is_merging(&a));
        let d = EventTimeSessionWindows::with_dynamic_gap(|e: &u8| ms(*e as u64 * 10));
        let mut out = Vec::new();
        d.assign_windows(&3, 100, &WindowAssignerContext::new(0), &mut out)
            .unwrap();
        assert_eq!(out, vec![tw(100, 130)]);
        let e = d
            .assign_windows(&0, 100, &WindowAssignerContext::new(0), &mut out)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dynamic session time gap must satisfy 0 < gap"
        );
        let p = ProcessingTimeSessionWindows::with_gap(ms(50));
        assert_eq!(assign(&p, 0, 1000).unwrap(), vec![tw(1000, 1050)]);
    }

    #[test]
    fn processing_time_windows_use_the_processing_time() {
        let a = SlidingProcessingTimeWindows::of(ms(10), ms(5));
        assert_eq!(assign(&a, 0, 12).unwrap(), vec![tw(10, 20), tw(5, 15)]);
        assert!(!WindowAssigner::<u8>::is_event_time(&a));
        assert!(WindowAssigner::<u8>::is_event_time(
            &SlidingEventTimeWindows::of(ms(10), ms(5))
        ));
    }

    #[test]
    fn global_windows_put_everything_in_one_window() {
        let g = GlobalWindows::create();
        assert_eq!(assign(&g, 5, 0).unwrap(), vec![GlobalWindow]);
        assert!(!WindowAssigner::<u8>::is_event_time(&g));
    }

    #[test]
    fn bad_parameters_are_refused_with_flink_messages() {
        let tumbling = "TumblingEventTimeWindows parameters must satisfy abs(offset) < size";
        assert_eq!(
            check(TumblingEventTimeWindows::of(ms(0))).unwrap_err(),
            tumbling
        );
        assert_eq!(
            check(TumblingEventTimeWindows::of(Duration::from_micros(999))).unwrap_err(),
            tumbling
        );
        assert_eq!(
            check(TumblingEventTimeWindows::of(ms(10)).with_offset(ms(10))).unwrap_err(),
            tumbling
        );
        assert_eq!(
            check(TumblingEventTimeWindows::of(ms(10)).with_offset_millis(-10)).unwrap_err(),
            tumbling
        );
        assert_eq!(
            check(TumblingEventTimeWindows::of(ms(10)).with_offset_millis(i64::MIN)).unwrap_err(),
            tumbling
        );
        assert!(check(TumblingEventTimeWindows::of(ms(10)).with_offset_millis(-9)).is_ok());
        assert_eq!(
            check(TumblingProcessingTimeWindows::of(ms(0))).unwrap_err(),
            "TumblingProcessingTimeWindows parameters must satisfy abs(offset) < size"
        );
        let sliding =
            "SlidingEventTimeWindows parameters must satisfy abs(offset) < slide and size > 0";
        assert_eq!(
            check(SlidingEventTimeWindows::of(ms(10), ms(0))).unwrap_err(),
            sliding
        );
        assert_eq!(
            check(SlidingEventTimeWindows::of(ms(0), ms(5))).unwrap_err(),
            sliding
        );
        assert_eq!(
            check(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset(ms(5))).unwrap_err(),
            sliding
        );
        assert_eq!(
            check(SlidingProcessingTimeWindows::of(ms(10), ms(0))).unwrap_err(),
            "SlidingProcessingTimeWindows parameters must satisfy abs(offset) < slide and size > 0"
        );
        assert_eq!(
            check(EventTimeSessionWindows::with_gap(ms(0))).unwrap_err(),
            "EventTimeSessionWindows parameters must satisfy 0 < size"
        );
        assert_eq!(
            check(ProcessingTimeSessionWindows::with_gap(ms(0))).unwrap_err(),
            "ProcessingTimeSessionWindows parameters must satisfy 0 < size"
        );
    }

    #[test]
    fn windows_at_the_end_of_time_do_not_overflow() {
        let a = TumblingEventTimeWindows::of(ms(1000));
        let w = assign(&a, i64::MAX, 0).unwrap();
        assert_eq!(w[0].end, i64::MAX);
        assert!(w[0].start <= i64::MAX && w[0].max_timestamp() == i64::MAX - 1);
        let s = SlidingEventTimeWindows::of(ms(1000), ms(500));
        assert_eq!(
            assign(&s, i64::MIN + 1, 0).unwrap(),
            vec![tw(i64::MIN, i64::MIN + 1000)]
        );
        let g = EventTimeSessionWindows::with_gap(ms(1000));
        assert_eq!(
            assign(&g, i64::MAX - 1, 0).unwrap(),
            vec![tw(i64::MAX - 1, i64::MAX)]
        );
    }
}
