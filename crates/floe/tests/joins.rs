//! Joining streams end to end: connected streams with a keyed co-process function and its
//! timers, co-map, the interval join (bounds, exclusive bounds, late data, restore at
//! another parallelism), timestamps through the keyed aggregations, and the non-keyed
//! process function.

mod common;

use floe::connectors::{Source, SourceContext, SourceReader, SourceStatus};
use floe::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Emits a watermark right after every record: its timestamp minus one. Marks then travel
/// with the records, so what an operator downstream has seen is decided by the order of
/// its input channels, not by a clock.
#[derive(Clone, Default)]
struct Punctuated;

impl WatermarkGenerator for Punctuated {
    fn on_event(&mut self, ts: i64, out: &mut WatermarkOutput) {
        out.emit_watermark(ts - 1)
    }
    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
}

type Event = (i64, u32);

/// `items` as an event-time stream whose timestamp is the first field, punctuated.
fn events(env: &StreamEnv, items: Vec<Event>) -> DataStream<Event> {
    env.from_collection(items).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_generator(Punctuated).with_timestamp_assigner(|e: &Event, _| e.0),
    )
}

/// Pairs every record with the timestamp it carries.
#[derive(Clone)]
struct WithTimestamp;

impl<T: Data> ProcessFunction<T, (T, i64)> for WithTimestamp {
    fn process_element(
        &mut self,
        v: T,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<(T, i64)>,
    ) -> Result<()> {
        out.collect((v, ctx.timestamp().unwrap_or(NO_TIMESTAMP)));
        Ok(())
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// Connected streams
// ---------------------------------------------------------------------------------------

/// Orders (input 1) wait 500 ms of event time for their payment (input 2): matched pairs
/// go to the main output, orders whose timer fires unpaid to the `timeouts` side output.
#[derive(Clone)]
struct OrderTimeout {
    timeouts: OutputTag<u32>,
    order: ValueState<i64>,
    paid: ValueState<bool>,
}

impl KeyedCoProcessFunction<u32, Event, Event, String> for OrderTimeout {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.order = ValueStateDescriptor::new("order").register(ctx)?;
        self.paid = ValueStateDescriptor::new("paid").register(ctx)?;
        Ok(())
    }
    fn process_element1(
        &mut self,
        (ts, id): Event,
        ctx: &mut Context<'_, '_, u32, String>,
        out: &mut Collector<String>,
    ) -> Result<()> {
        assert_eq!(ctx.timestamp(), Some(ts));
        if self.paid.value(ctx)?.is_some() {
            self.paid.clear(ctx)?;
            out.collect(format!("paid {id}"));
        } else {
            self.order.update(ctx, ts)?;
            ctx.timer_service().register_event_time_timer(ts + 500)?;
        }
        Ok(())
    }
    fn process_element2(
        &mut self,
        (_, id): Event,
        ctx: &mut Context<'_, '_, u32, String>,
        out: &mut Collector<String>,
    ) -> Result<()> {
        if self.order.value(ctx)?.is_some() {
            self.order.clear(ctx)?;
            out.collect(format!("paid {id}"));
        } else {
            self.paid.update(ctx, true)?;
        }
        Ok(())
    }
    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, u32, String>,
        _out: &mut Collector<String>,
    ) -> Result<()> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::EventTime));
        assert!(ctx.timer_service().current_watermark() >= ts);
        if self.order.value(ctx)? == Some(ts - 500) {
            self.order.clear(ctx)?;
            let id = *ctx.current_key();
            ctx.output(&self.timeouts, id)?;
        }
        Ok(())
    }
}

#[test]
fn keyed_co_process_timers_follow_the_slower_input() {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    // Orders 0..40 at 100 ms steps (and order 99 late in time); payments for the even
    // orders 50 ms after them, paid 99 first. The payments trickle in one by one while
    // the orders' watermark is at 3999 at once: were the watermark not the minimum of
    // both inputs, the even orders' timers would fire before their payments arrived.
    let mut orders: Vec<Event> = (0..40).map(|id| (i64::from(id) * 100, id)).collect();
    orders.push((4_000, 99));
    let mut payments: Vec<Event> = vec![(50, 99)];
    payments.extend((0..40).step_by(2).map(|id| (i64::from(id) * 100 + 50, id)));
    payments.push((100_000, 1000));
    let timeouts = OutputTag::<u32>::new("timeouts");
    let payments = trickle(&env, payments, Duration::from_millis(3));
    let matched = events(&env, orders)
        .connect(payments)
        .key_by(|o| o.1, |p| p.1)
        .process(OrderTimeout {
            timeouts: timeouts.clone(),
            order: Default::default(),
            paid: Default::default(),
        });
    let timed_out = matched
        .get_side_output(&timeouts)
        .process(WithTimestamp)
        .collect();
    let matched = matched.collect();
    env.execute("orders and payments").unwrap();

    let mut want: Vec<String> = (0..40).step_by(2).map(|id| format!("paid {id}")).collect();
    want.push("paid 99".into());
    assert_eq!(sorted(matched.take()), sorted(want));
    // Each odd order timed out once, with its timer's timestamp.
    let want: Vec<(u32, i64)> = (1..40)
        .step_by(2)
        .map(|id| (id, i64::from(id) * 100 + 500))
        .collect();
    assert_eq!(sorted(timed_out.take()), want);
}

#[test]
fn co_map_keeps_timestamps_and_its_watermark_waits_for_both_inputs() {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    let fast = events(&env, (0..200).map(|i| (i * 10, 0)).collect());
    let slow = events(&env, vec![(5, 1), (7, 1)]).map(|e| {
        std::thread::sleep(Duration::from_millis(50));
        e
    });

    /// `(value, timestamp, watermark when it arrived)`.
    #[derive(Clone)]
    struct Seen;
    impl ProcessFunction<String, (String, i64, i64)> for Seen {
        fn process_element(
            &mut self,
            v: String,
            ctx: &mut ProcessContext<'_>,
            out: &mut Collector<(String, i64, i64)>,
        ) -> Result<()> {
            let wm = ctx.timer_service().current_watermark();
            out.collect((v, ctx.timestamp().unwrap(), wm));
            Ok(())
        }
    }

    let out = fast
        .connect(slow)
        .map(|f| format!("fast {}", f.0), |s| format!("slow {}", s.0))
        .process(Seen)
        .collect();
    env.execute("co-map").unwrap();
    let got = out.take();
    assert_eq!(got.len(), 202);
    for (v, ts, wm) in &got {
        let n: i64 = v.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(*ts, n, "{v} keeps its timestamp");
        // The slow input's watermark before its second record is 4: the co-map's
        // watermark can never be past it, however far the fast input ran ahead.
        if v == "slow 5" {
            assert_eq!(*wm, MIN_WATERMARK, "{v}");
        }
        if v == "slow 7" {
            assert!(*wm <= 4, "{v}: {wm}");
        }
    }

    // A plain co-flat-map (no event time): every output of both inputs.
    let env = StreamEnv::new();
    let words = env.from_collection(vec!["a b".to_string(), "c".to_string()]);
    let numbers = env.from_collection(vec![3u32]);
    let out = words
        .connect(numbers)
        .flat_map(
            |l: String, out: &mut Collector<String>| {
                l.split(' ').for_each(|w| out.collect(w.to_string()))
            },
            |n: u32, out: &mut Collector<String>| (0..n).for_each(|i| out.collect(i.to_string())),
        )
        .collect();
    env.execute("co-flat-map").unwrap();
    assert_eq!(sorted(out.take()), ["0", "1", "2", "a", "b", "c"]);
}

// ---------------------------------------------------------------------------------------
// Interval join
// ---------------------------------------------------------------------------------------

type Pair = (Event, Event, i64, i64, i64);

/// `(left, right, left ts, right ts, pair ts)` of every joined pair.
fn pair_fn(
    l: &Event,
    r: &Event,
    ctx: &mut JoinContext<'_>,
    out: &mut Collector<Pair>,
) -> Result<()> {
    out.collect((
        *l,
        *r,
        ctx.left_timestamp(),
        ctx.right_timestamp(),
        ctx.timestamp(),
    ));
    Ok(())
}

/// Every pair of equal keys with `r.ts` in `[l.ts + lower, l.ts + upper]`, with its
/// timestamp (the larger one).
fn brute_force(left: &[Event], right: &[Event], lower: i64, upper: i64) -> Vec<(Pair, i64)> {
    let mut v = Vec::new();
    for l in left {
        for r in right {
            if l.1 == r.1 && r.0 >= l.0 + lower && r.0 <= l.0 + upper {
                let ts = l.0.max(r.0);
                v.push(((*l, *r, l.0, r.0, ts), ts));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn interval_join_pairs_exactly_the_records_within_the_bounds() {
    // Sorted by time on both sides, so nothing is late and every pair meets.
    let left: Vec<Event> = (0..100).map(|i| (i * 3, (i % 3) as u32)).collect();
    let right: Vec<Event> = (0..60).map(|i| (i * 5 + 1, (i % 4) as u32)).collect();
    // (lower, upper, lower exclusive, upper exclusive)
    let cases = [
        (-10, 5, false, false),
        (-10, 5, true, false),
        (-10, 5, false, true),
        (-10, 5, true, true),
        (2, 12, false, false),
        (-12, -2, false, true),
        (0, 0, false, false),
        (0, 0, true, true),
    ];
    for (lower, upper, lo_ex, hi_ex) in cases {
        let env = StreamEnv::new();
        env.set_parallelism(2);
        let joined = events(&env, left.clone())
            .key_by(|e| e.1)
            .interval_join(events(&env, right.clone()).key_by(|e| e.1))
            .between(lower, upper);
        let joined = match (lo_ex, hi_ex) {
            (false, false) => joined,
            (true, false) => joined.lower_bound_exclusive(),
            (false, true) => joined.upper_bound_exclusive(),
            (true, true) => joined.lower_bound_exclusive().upper_bound_exclusive(),
        };
        let out = joined.process(pair_fn).process(WithTimestamp).collect();
        env.execute("interval join").unwrap();
        let (lo, hi) = (lower + i64::from(lo_ex), upper - i64::from(hi_ex));
        let want = brute_force(&left, &right, lo, hi);
        let case = format!("between({lower}, {upper}) exclusive ({lo_ex}, {hi_ex})");
        if (lower, upper) != (0, 0) || !lo_ex {
            assert!(!want.is_empty(), "{case}: the case joins something");
        }
        assert_eq!(sorted(out.take()), want, "{case}");
    }
}

/// A source of parallelism 1 that emits one record per poll, `every` apart in wall-clock
/// time, so the dataflow handles each before the next is read.
struct Trickle {
    items: Vec<Event>,
    every: Duration,
}

impl Source<Event> for Trickle {
    fn name(&self) -> String {
        "Trickle".into()
    }
    fn max_parallelism(&self) -> Option<u32> {
        Some(1)
    }
    fn create(&self, _ctx: SourceContext) -> Result<Box<dyn SourceReader<Event>>> {
        Ok(Box::new(TrickleReader {
            items: self.items.iter().rev().copied().collect(),
            every: self.every,
            last: Instant::now(),
        }))
    }
}

struct TrickleReader {
    /// Reversed: the next record is the last.
    items: Vec<Event>,
    every: Duration,
    last: Instant,
}

impl SourceReader<Event> for TrickleReader {
    fn poll_next(&mut self, out: &mut Vec<Event>, _max: usize) -> Result<SourceStatus> {
        if self.last.elapsed() < self.every {
            // Ready, not Idle: the worker polls again right away instead of parking.
            return Ok(SourceStatus::Ready);
        }
        self.last = Instant::now();
        out.extend(self.items.pop());
        Ok(if self.items.is_empty() {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

fn trickle(env: &StreamEnv, items: Vec<Event>, every: Duration) -> DataStream<Event> {
    env.add_source(Trickle { items, every })
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(Punctuated)
                .with_timestamp_assigner(|e: &Event, _| e.0),
        )
}

/// A source of parallelism 1 that emits `before`, then nothing until `gate` opens (or 30 s
/// passed, so that a test whose gate never opens fails instead of hanging), then `after`.
struct Gated {
    before: Vec<Event>,
    after: Vec<Event>,
    gate: Arc<AtomicBool>,
}

impl Source<Event> for Gated {
    fn name(&self) -> String {
        "Gated".into()
    }
    fn max_parallelism(&self) -> Option<u32> {
        Some(1)
    }
    fn create(&self, _ctx: SourceContext) -> Result<Box<dyn SourceReader<Event>>> {
        Ok(Box::new(GatedReader {
            before: self.before.clone(),
            after: self.after.clone(),
            gate: Arc::clone(&self.gate),
            opened: false,
            deadline: Instant::now() + Duration::from_secs(30),
        }))
    }
}

struct GatedReader {
    before: Vec<Event>,
    after: Vec<Event>,
    gate: Arc<AtomicBool>,
    opened: bool,
    deadline: Instant,
}

impl SourceReader<Event> for GatedReader {
    fn poll_next(&mut self, out: &mut Vec<Event>, _max: usize) -> Result<SourceStatus> {
        if !self.before.is_empty() {
            out.append(&mut self.before);
            return Ok(SourceStatus::Ready);
        }
        if !self.opened && !self.gate.load(Ordering::SeqCst) && Instant::now() < self.deadline {
            // The worker polls again within its park timeout.
            return Ok(SourceStatus::Idle);
        }
        self.opened = true;
        out.append(&mut self.after);
        Ok(SourceStatus::Finished)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// Passes records on and opens `gate` once its watermark reached `at` (an event-time
/// timer, registered with the first record).
#[derive(Clone)]
struct OpenGateAt {
    gate: Arc<AtomicBool>,
    at: i64,
}

impl<T: Data> KeyedProcessFunction<u8, T, T> for OpenGateAt {
    fn process_element(
        &mut self,
        v: T,
        ctx: &mut Context<'_, '_, u8, T>,
        out: &mut Collector<T>,
    ) -> Result<()> {
        ctx.timer_service().register_event_time_timer(self.at)?;
        out.collect(v);
        Ok(())
    }
    fn on_timer(
        &mut self,
        _ts: i64,
        _ctx: &mut Context<'_, '_, u8, T>,
        _out: &mut Collector<T>,
    ) -> Result<()> {
        self.gate.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn gated(
    env: &StreamEnv,
    before: Vec<Event>,
    after: Vec<Event>,
    gate: &Arc<AtomicBool>,
) -> DataStream<Event> {
    env.add_source(Gated {
        before,
        after,
        gate: Arc::clone(gate),
    })
    .assign_timestamps_and_watermarks(
        WatermarkStrategy::for_generator(Punctuated).with_timestamp_assigner(|e: &Event, _| e.0),
    )
}

#[test]
fn interval_join_drops_late_records_or_sends_them_to_the_late_outputs() {
    for with_late_outputs in [true, false] {
        let env = StreamEnv::new();
        env.set_parallelism(2);
        let gate = Arc::new(AtomicBool::new(false));
        // Until the gate opens the join's watermark reaches min(49, 99) = 49; then the left
        // record at 30 and the right one at 20 are late, the left one at 95 is not.
        let left = gated(&env, vec![(10, 1), (50, 1)], vec![(30, 1), (95, 1)], &gate);
        let right = gated(&env, vec![(55, 1), (100, 1)], vec![(20, 1)], &gate);
        let left_late = OutputTag::<Event>::new("left-late");
        let right_late = OutputTag::<Event>::new("right-late");
        let mut joined = left
            .key_by(|e| e.1)
            .interval_join(right.key_by(|e| e.1))
            .between(0, 10);
        if with_late_outputs {
            joined = joined
                .side_output_left_late_data(&left_late)
                .side_output_right_late_data(&right_late);
        }
        let joined = joined.process(pair_fn);
        let late_l = joined
            .get_side_output(&left_late)
            .process(WithTimestamp)
            .collect();
        let late_r = joined
            .get_side_output(&right_late)
            .process(WithTimestamp)
            .collect();
        // The join's watermark opens the gate: (50, 55) is joined before, so a record
        // carries the downstream operator's timer.
        let pairs = joined
            .key_by(|_| 0u8)
            .process(OpenGateAt {
                gate: Arc::clone(&gate),
                at: 49,
            })
            .collect();
        env.execute("late interval join").unwrap();
        assert!(
            gate.load(Ordering::SeqCst),
            "the join's watermark reached 49 before the late records were read"
        );
        assert_eq!(
            sorted(pairs.take()),
            vec![
                ((50, 1), (55, 1), 50, 55, 55),
                ((95, 1), (100, 1), 95, 100, 100)
            ]
        );
        if with_late_outputs {
            assert_eq!(late_l.take(), vec![((30, 1), 30)]);
            assert_eq!(late_r.take(), vec![((20, 1), 20)]);
        } else {
            assert!(late_l.take().is_empty() && late_r.take().is_empty());
        }
    }
}

#[test]
fn interval_join_needs_timestamps_and_ordered_bounds() {
    // Records without timestamps fail the job with Flink's message.
    let env = StreamEnv::new();
    let left = env.from_collection(vec![(1i64, 1u32)]);
    let right = env.from_collection(vec![(1i64, 1u32)]);
    let _ = left
        .key_by(|e| e.1)
        .interval_join(right.key_by(|e| e.1))
        .between(-1, 1)
        .process(pair_fn)
        .collect();
    let err = format!("{:#}", env.execute("no timestamps").unwrap_err());
    assert!(
        err.contains("Long.MIN_VALUE timestamp: Elements used in interval stream joins need to have timestamps meaningful timestamps."),
        "{err}"
    );

    // lower > upper is refused before anything runs.
    let env = StreamEnv::new();
    let left = events(&env, vec![(1, 1)]);
    let right = events(&env, vec![(1, 1)]);
    let out = left
        .key_by(|e| e.1)
        .interval_join(right.key_by(|e| e.1))
        .between(Duration::from_millis(5), Duration::from_millis(2))
        .process(pair_fn)
        .collect();
    let err = env.execute("bad bounds").unwrap_err().to_string();
    assert!(
        err.contains("between(5, 2): lowerBound <= upperBound must be fulfilled"),
        "{err}"
    );
    assert!(out.take().is_empty());
}

// ---------------------------------------------------------------------------------------
// Interval join state across a savepoint and a new parallelism
// ---------------------------------------------------------------------------------------

fn rescale_inputs() -> (Vec<Event>, Vec<Event>) {
    let left = (0..1500).map(|i| (i * 2, (i % 7) as u32)).collect();
    let right = (0..1000).map(|i| (i * 3, (i % 5) as u32)).collect();
    (left, right)
}

fn rescale_job(env: &StreamEnv, ck: &std::path::Path) -> CollectHandle<Pair> {
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_checkpoint_storage(ck.to_str().unwrap());
    let (left, right) = rescale_inputs();
    let slow = |e: Event| {
        std::thread::sleep(Duration::from_micros(300));
        e
    };
    let left = env.from_collection(left).uid("left").map(slow);
    let right = env.from_collection(right).uid("right").map(slow);
    let strategy =
        || WatermarkStrategy::for_generator(Punctuated).with_timestamp_assigner(|e: &Event, _| e.0);
    left.assign_timestamps_and_watermarks(strategy())
        .key_by(|e| e.1)
        .interval_join(
            right
                .assign_timestamps_and_watermarks(strategy())
                .key_by(|e| e.1),
        )
        .between(-15, 10)
        .process(pair_fn)
        .uid("join")
        .collect()
}

#[test]
fn interval_join_buffers_and_timers_restore_at_another_parallelism() {
    let (left, right) = rescale_inputs();
    let want: Vec<Pair> = brute_force(&left, &right, -15, 10)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();

    let env = StreamEnv::new();
    env.set_parallelism(2);
    let first = rescale_job(&env, ck.path());
    let job = env.execute_async("join at 2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.snapshot().len() < want.len() / 4 {
        assert!(Instant::now() < deadline, "no output");
        assert!(!job.status().is_terminal(), "{:?}", job.status());
        std::thread::sleep(Duration::from_millis(2));
    }
    let savepoint = job.stop_with_savepoint(Some(sp.path())).unwrap();
    assert_eq!(job.wait().unwrap().status, JobStatus::Finished);
    let first = first.take();
    assert!(first.len() < want.len(), "stopped before the end");

    // The savepoint holds the join's buffers and cleanup timers as keyed state of each
    // subtask, and its watermark as operator entries.
    let snap = floe::checkpoint::metadata::load_snapshot(savepoint.as_path()).unwrap();
    let join = snap.metadata.operator("join").expect("the join's state");
    assert_eq!(join.subtasks.len(), 2);
    let mut entries: HashMap<String, usize> = HashMap::new();
    for st in &join.subtasks {
        let floe::checkpoint::metadata::StateHandle::KeyedFile { file, .. } = &st.handle else {
            panic!("keyed state in a state file: {:?}", st.handle)
        };
        let mut r =
            floe::state::file::StateFileReader::open_location(&snap.file_path(file)).unwrap();
        let names = r.header.state_names.clone();
        for e in r.index.clone() {
            for (_, values) in r.read_block(&e).unwrap() {
                for (name, v) in names.iter().zip(&values) {
                    *entries.entry(name.clone()).or_default() += usize::from(v.is_some());
                }
            }
        }
    }
    for state in ["_left-buffer", "_right-buffer", "_timers", "_watermark"] {
        assert!(
            entries.get(state).is_some_and(|n| *n > 0),
            "{state}: {entries:?}"
        );
    }

    for p in [3, 1] {
        let env = StreamEnv::from_arg_list(["-s", savepoint.to_str().unwrap()]).unwrap();
        env.set_parallelism(p);
        let second = rescale_job(&env, ck.path());
        env.execute("join restored").unwrap();
        let mut all = first.clone();
        all.extend(second.take());
        // Every pair exactly once: pairs of a record buffered before the savepoint and one
        // read after it come from the restored buffers.
        assert_eq!(sorted(all), want, "restored at parallelism {p}");
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps through the keyed aggregations
// ---------------------------------------------------------------------------------------

type Counted = (i64, u32, u64);

/// Counts per key with keyed state (a keyed flat map).
#[derive(Clone, Default)]
struct CountPerKey {
    n: ValueState<u64, WithDefault>,
}

impl KeyedFlatMapFunction<u32, Counted, (u32, u64)> for CountPerKey {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.n = ValueStateDescriptor::new("n")
            .with_default(0u64)
            .register(ctx)?;
        Ok(())
    }
    fn flat_map(
        &mut self,
        v: Counted,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<(u32, u64)>,
    ) -> Result<()> {
        let n = self.n.value(ctx)? + 1;
        self.n.update(ctx, n)?;
        out.collect((v.1, n));
        Ok(())
    }
}

/// On every record registers a timer 1 ms later; emits `(timer, watermark at firing)`.
#[derive(Clone)]
struct FireAfter;

impl<T: Data> KeyedProcessFunction<u32, T, (i64, i64)> for FireAfter {
    fn process_element(
        &mut self,
        _v: T,
        ctx: &mut Context<'_, '_, u32, (i64, i64)>,
        _out: &mut Collector<(i64, i64)>,
    ) -> Result<()> {
        let ts = ctx.timestamp().expect("the aggregation kept the timestamp");
        ctx.timer_service().register_event_time_timer(ts + 1)
    }
    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, u32, (i64, i64)>,
        out: &mut Collector<(i64, i64)>,
    ) -> Result<()> {
        out.collect((ts, ctx.timer_service().current_watermark()));
        Ok(())
    }
}

#[test]
fn sum_reduce_and_keyed_flat_map_keep_timestamps_and_forward_watermarks() {
    let input: Vec<Counted> = (0..300).map(|i| (i * 10, (i % 3) as u32, 1)).collect();
    let timed = |env: &StreamEnv| {
        env.from_collection(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(Punctuated)
                    .with_timestamp_assigner(|e: &Counted, _| e.0),
            )
    };
    let env = StreamEnv::new();
    env.set_parallelism(2);
    let sums = timed(&env).key_by(|e| e.1).sum(2);
    let fired = sums.key_by(|e| e.1).process(FireAfter).collect();
    let env2 = StreamEnv::new();
    env2.set_parallelism(2);
    let sums2 = timed(&env2)
        .key_by(|e| e.1)
        .sum(2)
        .process(WithTimestamp)
        .collect();
    let reduced = timed(&env2)
        .key_by(|e| e.1)
        .reduce(|a, b| (b.0, b.1, a.2 + b.2))
        .process(WithTimestamp)
        .collect();
    let counted = timed(&env2)
        .key_by(|e| e.1)
        .flat_map(CountPerKey::default())
        .process(WithTimestamp)
        .collect();
    env.execute("sum with timers").unwrap();
    env2.execute("aggregations").unwrap();

    let mut want_sum = Vec::new();
    let mut want_reduce = Vec::new();
    let mut want_count = Vec::new();
    let mut running: HashMap<u32, (i64, u64)> = HashMap::new();
    for &(ts, k, n) in &input {
        let e = running.entry(k).or_insert((ts, 0));
        e.1 += n;
        // sum keeps the key's first record's other fields; every output has its input's
        // timestamp.
        want_sum.push(((e.0, k, e.1), ts));
        want_reduce.push(((ts, k, e.1), ts));
        want_count.push(((k, e.1), ts));
    }
    assert_eq!(sorted(sums2.take()), sorted(want_sum));
    assert_eq!(sorted(reduced.take()), sorted(want_reduce));
    assert_eq!(sorted(counted.take()), sorted(want_count));

    let fired = fired.take();
    assert_eq!(fired.len(), 300, "one timer per record");
    assert!(fired.iter().all(|(ts, wm)| wm >= ts));
    assert!(
        fired.iter().any(|(_, wm)| *wm < MAX_WATERMARK),
        "watermarks passed the aggregation before the end of the input: {:?}",
        &fired[..5]
    );
}

// ---------------------------------------------------------------------------------------
// Non-keyed process functions
// ---------------------------------------------------------------------------------------

/// `(timestamp, watermark before the record)`; timestamps below 100 also go to `small`.
#[derive(Clone)]
struct Observe {
    small: OutputTag<i64>,
}

impl ProcessFunction<Event, (i64, i64)> for Observe {
    fn process_element(
        &mut self,
        e: Event,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<(i64, i64)>,
    ) -> Result<()> {
        let ts = ctx.timestamp().unwrap();
        assert_eq!(ts, e.0);
        if ts < 100 {
            ctx.output(&self.small, ts)?;
        }
        out.collect((ts, ctx.timer_service().current_watermark()));
        Ok(())
    }
}

#[test]
fn process_function_sees_timestamps_watermarks_and_side_outputs_but_no_timers() {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    let small = OutputTag::<i64>::new("small");
    let seen = events(&env, (0..50).map(|i| (i * 10, 0)).collect()).process(Observe {
        small: small.clone(),
    });
    let small_out = seen
        .get_side_output(&small)
        .process(WithTimestamp)
        .collect();
    let seen = seen.process(WithTimestamp).collect();
    env.execute("process").unwrap();
    // Chained to its source: each record's watermark is the one emitted after the
    // previous record (its timestamp minus one).
    let want: Vec<((i64, i64), i64)> = (0..50)
        .map(|i| {
            let wm = if i == 0 {
                MIN_WATERMARK
            } else {
                (i - 1) * 10 - 1
            };
            ((i * 10, wm), i * 10)
        })
        .collect();
    assert_eq!(sorted(seen.take()), want);
    assert_eq!(
        sorted(small_out.take()),
        (0..10).map(|i| (i * 10, i * 10)).collect::<Vec<_>>()
    );

    // Timers need a keyed stream: registering one fails the task with Flink's message.
    #[derive(Clone)]
    struct SetsTimer;
    impl ProcessFunction<Event, Event> for SetsTimer {
        fn process_element(
            &mut self,
            e: Event,
            ctx: &mut ProcessContext<'_>,
            _out: &mut Collector<Event>,
        ) -> Result<()> {
            ctx.timer_service().register_event_time_timer(e.0 + 1)
        }
    }
    let env = StreamEnv::new();
    let _ = events(&env, vec![(1, 1)]).process(SetsTimer).collect();
    let err = format!("{:#}", env.execute("timer").unwrap_err());
    assert!(
        err.contains("Setting timers is only supported on a keyed streams."),
        "{err}"
    );
}

/// Window join and co-group at parallelism 2: pairs per key and 10 s tumbling window,
/// checked against a brute force over both inputs; the co-group also sees keys one side lacks.
#[test]
fn window_join_and_co_group_pair_the_elements_of_each_key_and_window() {
    use floe::api::window::TumblingEventTimeWindows;
    let left: Vec<(i64, String)> = (0..200i64)
        .map(|i| (i * 137 % 40_000, format!("k{}", i % 5)))
        .collect();
    let right: Vec<(i64, String)> = (0..150i64)
        .map(|i| (i * 211 % 40_000, format!("k{}", i % 7)))
        .collect();
    let window = |ts: i64| ts - ts.rem_euclid(10_000);
    let mut expected: Vec<(String, i64, i64)> = Vec::new();
    for l in &left {
        for r in &right {
            if l.1 == r.1 && window(l.0) == window(r.0) {
                expected.push((l.1.clone(), l.0, r.0));
            }
        }
    }
    expected.sort();
    let run = |co_group: bool| {
        let env = StreamEnv::new();
        env.set_parallelism(2);
        let strategy = || {
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(40))
                .with_timestamp_assigner(|e: &(i64, String), _| e.0)
        };
        let a = env
            .from_collection(left.clone())
            .assign_timestamps_and_watermarks(strategy());
        let b = env
            .from_collection(right.clone())
            .assign_timestamps_and_watermarks(strategy());
        let windowed = a
            .join(b)
            .where_(|e| e.1.clone())
            .equal_to(|e| e.1.clone())
            .window(TumblingEventTimeWindows::of(Duration::from_secs(10)));
        let out = if co_group {
            windowed
                .co_group(
                    |k: &String,
                     l: &[(i64, String)],
                     r: &[(i64, String)],
                     out: &mut Collector<(String, i64, i64)>| {
                        if r.is_empty() {
                            out.collect((format!("{k} alone"), l.len() as i64, 0));
                        }
                        for x in l {
                            for y in r {
                                out.collect((k.clone(), x.0, y.0));
                            }
                        }
                    },
                )
                .collect()
        } else {
            windowed
                .apply(|l: &(i64, String), r: &(i64, String)| (l.1.clone(), l.0, r.0))
                .collect()
        };
        env.execute("window join").unwrap();
        let mut got = out.take();
        got.sort();
        got
    };
    assert_eq!(run(false), expected);
    let grouped = run(true);
    let pairs: Vec<_> = grouped
        .iter()
        .filter(|e| !e.0.ends_with("alone"))
        .cloned()
        .collect();
    assert_eq!(pairs, expected);
    // k5 and k6 only come from the right side, k0..k4 from both: no left-only groups of
    // keys the right side lacks, but the co-group runs for right-only keys too (no output).
    assert!(grouped
        .iter()
        .all(|e| !e.0.starts_with("k5") && !e.0.starts_with("k6")));
}
