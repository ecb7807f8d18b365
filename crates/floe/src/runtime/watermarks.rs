//! Where watermarks come from: a [`WatermarkStrategy`] run per source split
//! ([`TimedSource`], Flink's `fromSource(source, strategy, name)`) or per subtask
//! ([`Assign`], Flink's `assignTimestampsAndWatermarks`).
//!
//! A generator sees every record's timestamp and is asked for a watermark every
//! `pipeline.auto-watermark-interval` (checked once per batch, never per record). An input
//! without records for the strategy's idleness timeout is marked idle. Per split, the
//! subtask's watermark is the minimum over its active splits; a split that ended no longer
//! counts, and when the whole input ends the watermark is [`MAX_WATERMARK`].

use super::event::{Ev, Mark};
use super::operators::BatchFn;
use super::plan::BuildCx;
use super::Time;
use crate::api::data::Data;
use crate::api::functions::RuntimeContext;
use crate::api::time::{
    TimestampAssigner, WatermarkGenerator, WatermarkOutput, WatermarkStrategy, MAX_WATERMARK,
    MIN_WATERMARK, NO_TIMESTAMP,
};
use crate::connectors::{Source, SourceContext, SourceReader, SourceStatus};
use crate::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// One generator: its output, idleness and the last watermark it gave.
struct Emitter<G> {
    generator: G,
    out: WatermarkOutput,
    idleness: Option<Duration>,
    events: u64,
    last_active: Instant,
    idle: bool,
    watermark: i64,
}

impl<G: WatermarkGenerator> Emitter<G> {
    fn new(generator: G, idleness: Option<Duration>) -> Self {
        Emitter {
            generator,
            out: WatermarkOutput::default(),
            idleness,
            events: 0,
            last_active: Instant::now(),
            idle: false,
            watermark: MIN_WATERMARK,
        }
    }

    /// A record's timestamp; true when the generator emitted something (punctuated).
    #[inline]
    fn on_event(&mut self, ts: i64) -> bool {
        self.events += 1;
        self.generator.on_event(ts, &mut self.out);
        if self.idle {
            self.out.mark_active();
        }
        self.out.watermark.is_some() || self.out.idle || self.out.active
    }

    fn on_periodic(&mut self, now: Instant) {
        if self.events > 0 {
            self.events = 0;
            self.last_active = now;
        }
        // As Flink's `WatermarksWithIdleness`: an input silent for the timeout is idle and
        // its generator is not asked.
        match self.idleness {
            Some(t) if now.duration_since(self.last_active) >= t => self.out.mark_idle(),
            _ => self.generator.on_periodic_emit(&mut self.out),
        }
    }

    /// Applies what the generator emitted; true when the watermark or idleness changed.
    fn take(&mut self) -> bool {
        let out = std::mem::take(&mut self.out);
        let mut changed = false;
        if let Some(w) = out.watermark {
            if w > self.watermark {
                self.watermark = w;
                changed = true;
            }
        }
        let idle = out.idle;
        if idle != self.idle && (idle || out.active || out.watermark.is_some()) {
            self.idle = idle;
            changed = true;
        }
        changed
    }
}

/// Combines the watermarks of a subtask's generators into the marks it emits: the minimum
/// over the active ones, never going back; idle when all are idle.
#[derive(Debug)]
struct Combiner {
    emitted: i64,
    idle: bool,
    interval: Option<Duration>,
    next: Instant,
}

impl Combiner {
    fn new(interval: Duration) -> Self {
        Combiner {
            emitted: MIN_WATERMARK,
            idle: false,
            interval: (!interval.is_zero()).then_some(interval),
            next: Instant::now() + interval,
        }
    }

    /// True when the periodic emission is due (and schedules the next).
    fn due(&mut self, now: Instant) -> bool {
        match self.interval {
            Some(i) if now >= self.next => {
                self.next = now + i;
                true
            }
            _ => false,
        }
    }

    fn combine<'a, G: 'a>(
        &mut self,
        emitters: impl Iterator<Item = &'a Emitter<G>>,
        out: &mut Vec<impl From<Mark>>,
    ) {
        let mut any = false;
        let mut min = MAX_WATERMARK;
        for e in emitters {
            any = true;
            if !e.idle {
                min = min.min(e.watermark);
            }
        }
        if !any {
            return;
        }
        let all_idle = min == MAX_WATERMARK;
        if all_idle {
            if !self.idle {
                self.idle = true;
                out.push(Mark::idle(self.emitted).into());
            }
            return;
        }
        if self.idle {
            self.idle = false;
            if min <= self.emitted {
                out.push(Mark::watermark(self.emitted).into());
            }
        }
        if min > self.emitted {
            self.emitted = min;
            out.push(Mark::watermark(min).into());
        }
    }

    fn end(&mut self, out: &mut Vec<impl From<Mark>>) {
        if self.emitted < MAX_WATERMARK {
            self.emitted = MAX_WATERMARK;
            self.idle = false;
            out.push(Mark::watermark(MAX_WATERMARK).into());
        }
    }
}

impl<T> From<Mark> for Ev<T> {
    fn from(m: Mark) -> Self {
        Ev::Mark(m)
    }
}

/// `assign_timestamps_and_watermarks`: one generator per subtask. Upstream watermarks are
/// replaced by the generator's, except the end of the input (as Flink's
/// `TimestampsAndWatermarksOperator`).
pub(crate) struct Assign<G, A> {
    emitter: Emitter<G>,
    assigner: A,
    combiner: Combiner,
}

impl<G: WatermarkGenerator, A> Assign<G, A> {
    pub fn new(strategy: &WatermarkStrategy<G, A>, interval: Duration) -> Self
    where
        A: Clone,
    {
        Assign {
            emitter: Emitter::new(strategy.generator.clone(), strategy.idleness),
            assigner: strategy.assigner.clone(),
            combiner: Combiner::new(interval),
        }
    }

    #[inline]
    fn record<T>(&mut self, ts: i64, v: T, out: &mut Vec<Ev<T>>)
    where
        A: TimestampAssigner<T>,
    {
        let ts = self.assigner.extract_timestamp(&v, ts);
        let emitted = self.emitter.on_event(ts);
        out.push(Ev::Rec(ts, v));
        if emitted && self.emitter.take() {
            self.combiner.combine(std::iter::once(&self.emitter), out);
        }
    }

    fn periodic<T>(&mut self, out: &mut Vec<Ev<T>>) {
        let now = Instant::now();
        if self.combiner.due(now) {
            self.emitter.on_periodic(now);
            self.emitter.take();
            self.combiner.combine(std::iter::once(&self.emitter), out);
        }
    }

    /// How soon the next periodic emission is due.
    fn next_due(&self) -> Option<Duration> {
        self.combiner
            .interval
            .map(|_| self.combiner.next.saturating_duration_since(Instant::now()))
    }
}

/// Chained into a plain source: records get their timestamps here.
impl<T: 'static, G: WatermarkGenerator, A: TimestampAssigner<T>> BatchFn<T, Ev<T>>
    for Assign<G, A>
{
    fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn apply(&mut self, input: &mut Vec<T>, out: &mut Vec<Ev<T>>) -> Result<()> {
        out.reserve(input.len());
        for v in input.drain(..) {
            self.record(NO_TIMESTAMP, v, out);
        }
        self.periodic(out);
        Ok(())
    }
    fn end(&mut self, out: &mut Vec<Ev<T>>) {
        self.combiner.end(out);
    }
}

/// After another operator: an operator of its own, activated for the periodic emission.
pub(crate) fn build_assigner<'s, T: Data, G: WatermarkGenerator, A: TimestampAssigner<T>>(
    cx: &BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, Ev<T>>,
    mut assign: Assign<G, A>,
) -> StreamVec<'s, Time, Ev<T>> {
    let name = cx.plan.operators[op].name.clone();
    let scope = cx.scope;
    input.unary_frontier(Pipeline, &name, move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut held = Some(cap);
        let mut out = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                for e in data.drain(..) {
                    match e {
                        Ev::Rec(ts, v) => assign.record(ts, v, &mut out),
                        Ev::Mark(m) if m.wm == MAX_WATERMARK && !m.idle => {
                            assign.combiner.end(&mut out)
                        }
                        Ev::Mark(_) | Ev::Side(_) => {}
                    }
                }
                if !out.is_empty() {
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                }
            });
            let f = frontier.frontier();
            match f.first() {
                Some(t) => {
                    let cap = held.as_mut().expect("held until the input ends");
                    if t > cap.time() {
                        cap.downgrade(t);
                    }
                    assign.periodic(&mut out);
                    if !out.is_empty() {
                        output.session(&*cap).give_container(&mut out);
                        out.clear();
                    }
                    if let Some(d) = assign.next_due() {
                        activator.activate_after(d.max(Duration::from_millis(1)));
                    }
                }
                None => {
                    if let Some(cap) = held.take() {
                        assign.combiner.end(&mut out);
                        output.session(&cap).give_container(&mut out);
                        out.clear();
                    }
                }
            }
        }
    })
}

/// A source with a watermark strategy applied per split (Flink's
/// `env.fromSource(source, strategy, name)`).
pub(crate) struct TimedSource<T, G, A> {
    pub inner: Arc<dyn Source<T>>,
    pub strategy: WatermarkStrategy<G, A>,
    pub interval: Duration,
}

impl<T: Data, G: WatermarkGenerator, A: TimestampAssigner<T>> Source<Ev<T>>
    for TimedSource<T, G, A>
{
    fn name(&self) -> String {
        self.inner.name()
    }
    fn max_parallelism(&self) -> Option<u32> {
        self.inner.max_parallelism()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<Ev<T>>>> {
        Ok(Box::new(TimedReader {
            inner: self.inner.create(ctx)?,
            buf: Vec::new(),
            splits: Vec::new(),
            prototype: self.strategy.generator.clone(),
            idleness: self.strategy.idleness,
            assigner: self.strategy.assigner.clone(),
            combiner: Combiner::new(self.interval),
            ended: false,
        }))
    }
    fn without_reader(&self) -> Vec<Ev<T>> {
        vec![Ev::Mark(Mark::watermark(MAX_WATERMARK))]
    }
}

struct TimedReader<T, G, A> {
    inner: Box<dyn SourceReader<T>>,
    buf: Vec<T>,
    /// The generator of every split seen and not finished, by the reader's split number.
    splits: Vec<(u32, Emitter<G>)>,
    prototype: G,
    idleness: Option<Duration>,
    assigner: A,
    combiner: Combiner,
    ended: bool,
}

impl<T, G: WatermarkGenerator, A: TimestampAssigner<T>> TimedReader<T, G, A> {
    fn emitter(&mut self, split: u32) -> usize {
        match self.splits.iter().position(|(s, _)| *s == split) {
            Some(i) => i,
            None => {
                self.splits
                    .push((split, Emitter::new(self.prototype.clone(), self.idleness)));
                self.splits.len() - 1
            }
        }
    }

    fn run(&mut self, split: u32, records: usize, out: &mut Vec<Ev<T>>) {
        let i = self.emitter(split);
        let mut changed = false;
        for v in self.buf.drain(..records) {
            let ts = self.assigner.extract_timestamp(&v, NO_TIMESTAMP);
            let e = &mut self.splits[i].1;
            if e.on_event(ts) {
                changed |= e.take();
            }
            out.push(Ev::Rec(ts, v));
        }
        if changed {
            self.combiner
                .combine(self.splits.iter().map(|(_, e)| e), out);
        }
    }
}

impl<T, G: WatermarkGenerator, A: TimestampAssigner<T>> SourceReader<Ev<T>>
    for TimedReader<T, G, A>
{
    fn poll_next(&mut self, out: &mut Vec<Ev<T>>, max: usize) -> Result<SourceStatus> {
        if self.ended {
            return Ok(SourceStatus::Finished);
        }
        let status = self.inner.poll_next(&mut self.buf, max)?;
        out.reserve(self.buf.len());
        match self.inner.last_poll_splits().map(<[_]>::to_vec) {
            None => {
                let n = self.buf.len();
                self.run(0, n, out);
            }
            Some(runs) => {
                for r in runs {
                    self.run(r.split, r.records, out);
                    if r.finished {
                        self.splits.retain(|(s, _)| *s != r.split);
                        self.combiner
                            .combine(self.splits.iter().map(|(_, e)| e), out);
                    }
                }
                // Records the reader did not account for belong to no split we know.
                let n = self.buf.len();
                if n > 0 {
                    self.run(u32::MAX, n, out);
                }
            }
        }
        let now = Instant::now();
        if self.combiner.due(now) {
            for (_, e) in &mut self.splits {
                e.on_periodic(now);
                e.take();
            }
            self.combiner
                .combine(self.splits.iter().map(|(_, e)| e), out);
        }
        if status == SourceStatus::Finished {
            self.ended = true;
            self.combiner.end(out);
        }
        Ok(status)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.inner.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::time::BoundedOutOfOrderness;

    fn marks<T>(v: &[Ev<T>]) -> Vec<(i64, bool)> {
        v.iter()
            .filter_map(|e| match e {
                Ev::Mark(m) => Some((m.wm, m.idle)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn periodic_watermark_trails_the_largest_timestamp() {
        let strategy = WatermarkStrategy::for_generator(BoundedOutOfOrderness::new(
            Duration::from_millis(100),
        ))
        .with_timestamp_assigner(|v: &i64, _| *v);
        let mut a = Assign::new(&strategy, Duration::from_millis(1));
        let mut out = Vec::new();
        std::thread::sleep(Duration::from_millis(2));
        BatchFn::<i64, Ev<i64>>::apply(&mut a, &mut vec![1000, 3000, 2000], &mut out).unwrap();
        assert_eq!(marks(&out), vec![(3000 - 100 - 1, false)]);
        out.clear();
        BatchFn::<i64, Ev<i64>>::end(&mut a, &mut out);
        assert_eq!(marks(&out), vec![(MAX_WATERMARK, false)]);
    }

    #[test]
    fn an_idle_input_is_marked_idle_and_active_again_with_records() {
        let strategy = WatermarkStrategy::for_generator(BoundedOutOfOrderness::new(Duration::ZERO))
            .with_timestamp_assigner(|v: &i64, _| *v)
            .with_idleness(Duration::from_millis(5));
        let mut a = Assign::new(&strategy, Duration::from_millis(1));
        let mut out = Vec::new();
        std::thread::sleep(Duration::from_millis(2));
        BatchFn::<i64, Ev<i64>>::apply(&mut a, &mut vec![10], &mut out).unwrap();
        assert_eq!(marks(&out), vec![(9, false)]);
        out.clear();
        std::thread::sleep(Duration::from_millis(10));
        BatchFn::<i64, Ev<i64>>::apply(&mut a, &mut vec![], &mut out).unwrap();
        assert_eq!(marks(&out), vec![(9, true)]);
        out.clear();
        std::thread::sleep(Duration::from_millis(2));
        BatchFn::<i64, Ev<i64>>::apply(&mut a, &mut vec![20], &mut out).unwrap();
        assert_eq!(marks(&out), vec![(9, false), (19, false)]);
    }
}
