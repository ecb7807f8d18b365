//! Event time on the dataflow: the elements of an event-time stream and how an operator
//! combines the watermarks of its input channels.
//!
//! Timely's timestamps stay checkpoint epochs (see [`super`]); event time travels in-band,
//! as in Flink. The elements of an event-time ("timed") stream are [`Ev`]: a record with its
//! timestamp, a watermark [`Mark`] of one input channel, or a side-output record. Marks are
//! replicated once per target worker before an exchange and routed by their `to`, so every
//! subtask of the next operator sees every sender's watermarks, in order with its records
//! (timely keeps each sender-to-receiver channel in order).
//!
//! An operator that consumes watermarks numbers its input channels
//! `input * peers + sending worker` and combines them with a [`WatermarkTracker`]: the
//! minimum over the active channels, never going back, idle when every channel is idle
//! (Flink's `StatusWatermarkValve`).

use super::Time;
use crate::api::data::{Data, Str};
use crate::api::time::{MAX_WATERMARK, MIN_WATERMARK, NO_TIMESTAMP};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// One element of an event-time stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Ev<T> {
    /// A record and its event timestamp ([`crate::api::time::NO_TIMESTAMP`] when it has none).
    Rec(i64, T),
    /// The watermark (or idleness) of one input channel.
    Mark(Mark),
    /// A record of a side output of the operator that emitted it. Only that operator's
    /// output carries it; every other operator drops it.
    Side(SideRec),
}

/// A watermark or idleness change of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    /// The channel it arrives on (`input * peers + worker`), set where it is replicated
    /// before an exchange.
    pub from: u32,
    /// The worker it is routed to through an exchange.
    pub to: u32,
    /// The watermark: no later record of this channel has a timestamp `<=` it (unless late).
    pub wm: i64,
    /// The channel is idle (Flink's `WatermarkStatus.IDLE`): it is left out of the minimum
    /// until it sends an active mark again.
    pub idle: bool,
}

impl Mark {
    /// An active watermark.
    pub fn watermark(wm: i64) -> Self {
        Mark {
            from: 0,
            to: 0,
            wm,
            idle: false,
        }
    }
    /// The channel went idle (its last watermark stays `wm`).
    pub fn idle(wm: i64) -> Self {
        Mark {
            from: 0,
            to: 0,
            wm,
            idle: true,
        }
    }
}

/// A side-output record: the tag's name, the record's timestamp and its bincode bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SideRec {
    pub tag: Str,
    pub ts: i64,
    pub bytes: Vec<u8>,
}

impl<T> Ev<T> {
    /// The record, when this is one.
    #[inline]
    pub fn into_record(self) -> Option<(i64, T)> {
        match self {
            Ev::Rec(ts, v) => Some((ts, v)),
            _ => None,
        }
    }
}

/// A plain stream as event-time elements: records without timestamps, no watermarks (the
/// watermark of such a stream moves only at the end of its input).
pub(crate) fn untimed<'s, T: Data>(input: StreamVec<'s, Time, T>) -> StreamVec<'s, Time, Ev<T>> {
    input.unary(Pipeline, "Untimed", |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                for v in data.drain(..) {
                    session.give(Ev::Rec(NO_TIMESTAMP, v));
                }
            });
        }
    })
}

/// The records of an event-time stream, without timestamps, watermarks or side outputs.
pub(crate) fn records<'s, T: Data>(input: StreamVec<'s, Time, Ev<T>>) -> StreamVec<'s, Time, T> {
    input.unary(Pipeline, "Records", |_, _| {
        let mut out = Vec::new();
        move |input, output| {
            input.for_each(|cap, data| {
                out.extend(data.drain(..).filter_map(Ev::into_record).map(|(_, v)| v));
                if !out.is_empty() {
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                }
            });
        }
    })
}

/// Replicates marks for an exchange into `peers` workers: each mark becomes one copy per
/// target, stamped with the channel `channel_base + worker`; records pass; side records
/// are dropped (they never leave the operator that emitted them).
#[inline]
pub(crate) fn replicate_marks<T>(
    input: &mut Vec<Ev<T>>,
    out: &mut Vec<Ev<T>>,
    channel: u32,
    peers: u32,
) {
    for e in input.drain(..) {
        match e {
            Ev::Rec(..) => out.push(e),
            Ev::Mark(m) => {
                for to in 0..peers {
                    out.push(Ev::Mark(Mark {
                        from: channel,
                        to,
                        ..m
                    }));
                }
            }
            Ev::Side(_) => {}
        }
    }
}

/// What changed in a tracker's combined output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Combined {
    /// The combined watermark advanced to this value.
    Advanced(i64),
    /// Every channel is idle now.
    Idle,
    /// A channel became active again after all were idle (the watermark is unchanged).
    Active,
}

#[derive(Clone, Copy, Debug)]
struct Channel {
    wm: i64,
    idle: bool,
}

/// Combines the watermarks of an operator's input channels (pure logic).
///
/// ```ignore
/// let mut t = WatermarkTracker::new(2);
/// assert_eq!(t.on_mark(&Mark { from: 0, ..Mark::watermark(10) }), None); // channel 1 is at MIN
/// assert_eq!(t.on_mark(&Mark { from: 1, ..Mark::watermark(5) }), Some(Combined::Advanced(5)));
/// ```
#[derive(Clone, Debug)]
pub(crate) struct WatermarkTracker {
    channels: Vec<Channel>,
    current: i64,
    idle: bool,
}

impl WatermarkTracker {
    /// A tracker of `channels` channels, all active at [`MIN_WATERMARK`].
    pub fn new(channels: usize) -> Self {
        WatermarkTracker {
            channels: vec![
                Channel {
                    wm: MIN_WATERMARK,
                    idle: false,
                };
                channels.max(1)
            ],
            current: MIN_WATERMARK,
            idle: false,
        }
    }

    /// Starts from the watermark a restored snapshot recorded: the combined watermark never
    /// falls below it, so a replayed record the cut's watermark had passed stays late.
    pub fn restore_floor(&mut self, floor: i64) {
        if floor > self.current {
            self.current = floor;
        }
    }

    /// The combined watermark.
    #[inline]
    pub fn current(&self) -> i64 {
        self.current
    }

    /// True while every channel is idle.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Applies one channel's mark; returns what changed in the combined output. A mark of a
    /// channel the tracker does not have is ignored.
    pub fn on_mark(&mut self, m: &Mark) -> Option<Combined> {
        let c = self.channels.get_mut(m.from as usize)?;
        // A channel's watermark never goes back.
        c.wm = c.wm.max(m.wm);
        let was_idle = c.idle;
        c.idle = m.idle;
        let all_idle = self.channels.iter().all(|c| c.idle);
        if all_idle {
            if !self.idle {
                self.idle = true;
                // Flink: when the last channel goes idle, the others' maximum is emitted first.
                let max = self
                    .channels
                    .iter()
                    .map(|c| c.wm)
                    .max()
                    .unwrap_or(MIN_WATERMARK);
                if max > self.current {
                    self.current = max;
                    return Some(Combined::Advanced(max));
                }
                return Some(Combined::Idle);
            }
            return None;
        }
        let was_all_idle = self.idle;
        self.idle = false;
        let min = self
            .channels
            .iter()
            .filter(|c| !c.idle)
            .map(|c| c.wm)
            .min()
            .unwrap_or(MAX_WATERMARK);
        if min > self.current {
            self.current = min;
            return Some(Combined::Advanced(min));
        }
        if was_all_idle && was_idle {
            return Some(Combined::Active);
        }
        None
    }

    /// The input ended on every channel: the watermark moves to the end of time.
    pub fn end_of_input(&mut self) -> Option<Combined> {
        for c in &mut self.channels {
            c.wm = MAX_WATERMARK;
            c.idle = false;
        }
        self.idle = false;
        if self.current < MAX_WATERMARK {
            self.current = MAX_WATERMARK;
            return Some(Combined::Advanced(MAX_WATERMARK));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(from: u32, wm: i64) -> Mark {
        Mark {
            from,
            ..Mark::watermark(wm)
        }
    }
    fn idle(from: u32) -> Mark {
        Mark {
            from,
            ..Mark::idle(MIN_WATERMARK)
        }
    }

    #[test]
    fn combined_is_the_minimum_over_channels_and_never_goes_back() {
        let mut t = WatermarkTracker::new(3);
        assert_eq!(t.on_mark(&mark(0, 10)), None);
        assert_eq!(t.on_mark(&mark(1, 20)), None);
        assert_eq!(t.on_mark(&mark(2, 5)), Some(Combined::Advanced(5)));
        assert_eq!(t.on_mark(&mark(2, 30)), Some(Combined::Advanced(10)));
        // A channel going back changes nothing.
        assert_eq!(t.on_mark(&mark(0, 1)), None);
        assert_eq!(t.current(), 10);
        assert_eq!(t.on_mark(&mark(0, 25)), Some(Combined::Advanced(20)));
    }

    #[test]
    fn idle_channels_are_left_out_and_all_idle_is_idle() {
        let mut t = WatermarkTracker::new(2);
        assert_eq!(t.on_mark(&mark(0, 100)), None);
        // Channel 1 never sent anything and goes idle: channel 0 alone decides.
        assert_eq!(t.on_mark(&idle(1)), Some(Combined::Advanced(100)));
        assert_eq!(t.on_mark(&mark(0, 150)), Some(Combined::Advanced(150)));
        assert_eq!(
            t.on_mark(&Mark {
                from: 0,
                ..Mark::idle(150)
            }),
            Some(Combined::Idle)
        );
        assert!(t.is_idle());
        // Channel 1 comes back behind the current watermark: it holds the output, which
        // does not go back.
        assert_eq!(t.on_mark(&mark(1, 120)), Some(Combined::Active));
        assert_eq!(t.current(), 150);
        assert_eq!(t.on_mark(&mark(1, 200)), Some(Combined::Advanced(200)));
    }

    #[test]
    fn floor_and_end_of_input() {
        let mut t = WatermarkTracker::new(2);
        t.restore_floor(50);
        assert_eq!(t.on_mark(&mark(0, 10)), None);
        assert_eq!(t.on_mark(&mark(1, 40)), None);
        assert_eq!(t.current(), 50);
        assert_eq!(t.on_mark(&mark(0, 60)), None);
        assert_eq!(t.on_mark(&mark(1, 70)), Some(Combined::Advanced(60)));
        assert_eq!(t.end_of_input(), Some(Combined::Advanced(MAX_WATERMARK)));
        assert_eq!(t.end_of_input(), None);
        // Unknown channels are ignored.
        assert_eq!(t.on_mark(&mark(9, 1)), None);
    }

    #[test]
    fn replication_stamps_channel_and_target_and_drops_side_records() {
        let mut input = vec![
            Ev::Rec(1, "a"),
            Ev::Mark(Mark::watermark(7)),
            Ev::Side(SideRec {
                tag: "late".into(),
                ts: 0,
                bytes: vec![],
            }),
        ];
        let mut out = Vec::new();
        replicate_marks(&mut input, &mut out, 3, 2);
        assert_eq!(
            out,
            vec![
                Ev::Rec(1, "a"),
                Ev::Mark(Mark {
                    from: 3,
                    to: 0,
                    wm: 7,
                    idle: false
                }),
                Ev::Mark(Mark {
                    from: 3,
                    to: 1,
                    wm: 7,
                    idle: false
                }),
            ]
        );
    }
}
