//! Event time: timestamps, watermark strategies and output tags (Flink's `WatermarkStrategy`,
//! `WatermarkGenerator`, `TimestampAssigner` and `OutputTag`).
//!
//! Timestamps and watermarks are `i64` milliseconds since the epoch, as Flink's `long`s.
//! A watermark `w` says that no more records with a timestamp `<= w` are expected; records
//! that still come are *late*.
//!
//! ```
//! use floe::prelude::*;
//! use std::time::Duration;
//!
//! let env = StreamEnv::new();
//! let counts = env
//!     .from_collection(vec![(1_000i64, "a".to_string()), (1_500, "b".to_string())])
//!     .assign_timestamps_and_watermarks(
//!         WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(2))
//!             .with_timestamp_assigner(|e: &(i64, String), _| e.0),
//!     )
//!     .collect();
//! env.execute("timestamps").unwrap();
//! assert_eq!(counts.take().len(), 2);
//! ```

use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;
use std::time::Duration;

use super::data::Str;

/// The timestamp of a record that has none (Flink's `Long.MIN_VALUE` marker).
pub const NO_TIMESTAMP: i64 = i64::MIN;
/// The watermark before any was emitted.
pub const MIN_WATERMARK: i64 = i64::MIN;
/// The watermark at the end of a bounded input: every window and timer fires.
pub const MAX_WATERMARK: i64 = i64::MAX;

/// A duration in milliseconds, saturating (watermark arithmetic is in `i64` milliseconds).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What a [`WatermarkGenerator`] emits through: a watermark, or that its input is idle.
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    pub(crate) watermark: Option<i64>,
    pub(crate) idle: bool,
    pub(crate) active: bool,
}

impl WatermarkOutput {
    /// Emits watermark `wm` (ignored when it is not later than the last one).
    pub fn emit_watermark(&mut self, wm: i64) {
        self.watermark = Some(self.watermark.map_or(wm, |w| w.max(wm)));
        self.idle = false;
        self.active = true;
    }
    /// Marks the input idle: it no longer holds back the watermark downstream.
    pub fn mark_idle(&mut self) {
        self.idle = true;
    }
    /// Marks the input active again (implied by [`emit_watermark`](Self::emit_watermark)).
    pub fn mark_active(&mut self) {
        self.idle = false;
        self.active = true;
    }
}

/// Generates watermarks from the timestamps it sees (Flink's `WatermarkGenerator`). One
/// instance runs per source split or per subtask, cloned from the strategy's prototype.
///
/// ```
/// use floe::prelude::*;
/// /// Emits a watermark after every event: the timestamp seen last minus one.
/// #[derive(Clone, Default)]
/// struct Punctuated;
/// impl WatermarkGenerator for Punctuated {
///     fn on_event(&mut self, ts: i64, out: &mut WatermarkOutput) { out.emit_watermark(ts - 1) }
///     fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
/// }
/// let strategy = WatermarkStrategy::for_generator(Punctuated);
/// ```
pub trait WatermarkGenerator: Clone + Send + Sync + 'static {
    /// Called for every record with its timestamp.
    fn on_event(&mut self, timestamp: i64, out: &mut WatermarkOutput);
    /// Called every `pipeline.auto-watermark-interval` (default 200 ms).
    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput);
}

/// Flink's `BoundedOutOfOrdernessWatermarks`: the watermark is the largest timestamp seen
/// minus the bound minus 1 ms, emitted periodically.
#[derive(Clone, Debug)]
pub struct BoundedOutOfOrderness {
    bound: i64,
    max_timestamp: i64,
}

impl BoundedOutOfOrderness {
    /// Records may arrive up to `bound` later than a record with a larger timestamp.
    pub fn new(bound: Duration) -> Self {
        let bound = millis(bound);
        BoundedOutOfOrderness {
            bound,
            // So that the first watermark is MIN_WATERMARK, without underflow (as Flink).
            max_timestamp: MIN_WATERMARK.saturating_add(bound).saturating_add(1),
        }
    }
}

impl WatermarkGenerator for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, timestamp: i64, _out: &mut WatermarkOutput) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }
    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput) {
        out.emit_watermark(
            self.max_timestamp
                .saturating_sub(self.bound)
                .saturating_sub(1),
        );
    }
}

/// Emits no watermarks (Flink's `WatermarkStrategy.noWatermarks()`): event-time windows
/// and timers fire only at the end of a bounded input.
#[derive(Clone, Debug, Default)]
pub struct NoWatermarks;

impl WatermarkGenerator for NoWatermarks {
    fn on_event(&mut self, _timestamp: i64, _out: &mut WatermarkOutput) {}
    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
}

/// Extracts a record's event timestamp (Flink's `TimestampAssigner`). `record_timestamp` is
/// the timestamp the record already has ([`NO_TIMESTAMP`] when none, e.g. Kafka's when set).
/// Implemented for closures `FnMut(&T, i64) -> i64`.
pub trait TimestampAssigner<T>: Clone + Send + Sync + 'static {
    /// The record's timestamp in milliseconds.
    fn extract_timestamp(&mut self, element: &T, record_timestamp: i64) -> i64;
}

impl<T, F: FnMut(&T, i64) -> i64 + Clone + Send + Sync + 'static> TimestampAssigner<T> for F {
    #[inline]
    fn extract_timestamp(&mut self, element: &T, record_timestamp: i64) -> i64 {
        self(element, record_timestamp)
    }
}

/// Keeps the timestamp the record already has.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordTimestamp;

impl<T> TimestampAssigner<T> for RecordTimestamp {
    #[inline]
    fn extract_timestamp(&mut self, _element: &T, record_timestamp: i64) -> i64 {
        record_timestamp
    }
}

/// How a stream gets its timestamps and watermarks (Flink's `WatermarkStrategy`).
///
/// ```
/// use floe::prelude::*;
/// use std::time::Duration;
/// let s = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(2000))
///     .with_timestamp_assigner(|line: &String, _| line.split(' ').next().unwrap().parse().unwrap_or(0))
///     .with_idleness(Duration::from_secs(30));
/// ```
#[derive(Clone, Debug)]
pub struct WatermarkStrategy<G, A = RecordTimestamp> {
    pub(crate) generator: G,
    pub(crate) assigner: A,
    pub(crate) idleness: Option<Duration>,
}

impl WatermarkStrategy<BoundedOutOfOrderness> {
    /// Watermarks that trail the largest timestamp seen by `bound` (and 1 ms).
    pub fn for_bounded_out_of_orderness(bound: Duration) -> Self {
        Self::for_generator(BoundedOutOfOrderness::new(bound))
    }
    /// Timestamps never decrease: the watermark is the largest timestamp seen minus 1 ms.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }
}

impl WatermarkStrategy<NoWatermarks> {
    /// No watermarks at all.
    pub fn no_watermarks() -> Self {
        Self::for_generator(NoWatermarks)
    }
}

impl<G: WatermarkGenerator> WatermarkStrategy<G> {
    /// A custom generator; each split or subtask gets a clone of `generator`.
    pub fn for_generator(generator: G) -> Self {
        WatermarkStrategy {
            generator,
            assigner: RecordTimestamp,
            idleness: None,
        }
    }
}

impl<G: WatermarkGenerator, A> WatermarkStrategy<G, A> {
    /// Takes every record's timestamp from `assigner`.
    pub fn with_timestamp_assigner<T, B: TimestampAssigner<T>>(
        self,
        assigner: B,
    ) -> WatermarkStrategy<G, B> {
        WatermarkStrategy {
            generator: self.generator,
            assigner,
            idleness: self.idleness,
        }
    }
    /// An input without records for `timeout` (processing time) is marked idle, so it no
    /// longer holds back the watermark of the operators it feeds.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

/// Names a side output of type `V` (Flink's `OutputTag`): a process function or a window
/// emits into it with `output(&tag, v)` and the job reads it with `get_side_output(&tag)`.
///
/// ```
/// use floe::prelude::*;
/// let late: OutputTag<(i64, String)> = OutputTag::new("late-data");
/// assert_eq!(late.id(), "late-data");
/// ```
pub struct OutputTag<V> {
    pub(crate) id: Str,
    _p: PhantomData<fn() -> V>,
}

impl<V> Clone for OutputTag<V> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id.clone(),
            _p: PhantomData,
        }
    }
}

impl<V> std::fmt::Debug for OutputTag<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({})", self.id)
    }
}

impl<V: Serialize + DeserializeOwned> OutputTag<V> {
    /// A tag named `id` (unique per operator).
    pub fn new(id: impl AsRef<str>) -> Self {
        OutputTag {
            id: Str::from(id.as_ref()),
            _p: PhantomData,
        }
    }
    /// The tag's name.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Which clock a timer follows (Flink's `TimeDomain`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's timestamp.
    EventTime,
    /// Fires when the wall clock reaches the timer's timestamp.
    ProcessingTime,
}

/// Wall-clock milliseconds since the epoch: processing time.
pub(crate) fn processing_time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_is_max_minus_bound_minus_one() {
        let mut g = BoundedOutOfOrderness::new(Duration::from_millis(2000));
        let mut out = WatermarkOutput::default();
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark, Some(MIN_WATERMARK));
        for ts in [10_000, 12_500, 11_000] {
            g.on_event(ts, &mut out);
        }
        let mut out = WatermarkOutput::default();
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark, Some(12_500 - 2000 - 1));
    }

    #[test]
    fn monotonous_is_max_minus_one() {
        let WatermarkStrategy { mut generator, .. } =
            WatermarkStrategy::for_monotonous_timestamps();
        let mut out = WatermarkOutput::default();
        generator.on_event(5, &mut out);
        generator.on_periodic_emit(&mut out);
        assert_eq!(out.watermark, Some(4));
    }
}
