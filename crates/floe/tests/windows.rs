//! Windows end to end (Flink's `WindowOperator` semantics): real jobs from a collection,
//! with timestamps and a punctuated watermark, asserting exact window results.

use floe::api::window::*;
use floe::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A punctuated watermark: after every record, the largest timestamp seen minus `lag`
/// minus 1 ms (Flink's bounded out-of-orderness rule, emitted per record so a test
/// decides exactly when the watermark passes a window).
#[derive(Clone)]
struct Lag {
    max: i64,
    lag: i64,
}

impl WatermarkGenerator for Lag {
    fn on_event(&mut self, ts: i64, out: &mut WatermarkOutput) {
        self.max = self.max.max(ts);
        out.emit_watermark(self.max.saturating_sub(self.lag).saturating_sub(1));
    }
    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
}

type Ev = (i64, String);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `(ts, key)` records with timestamps and the punctuated watermark, keyed by key.
fn keyed(env: &StreamEnv, input: Vec<Ev>, lag: i64) -> KeyedStream<String, Ev> {
    env.from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(Lag { max: i64::MIN, lag })
                .with_timestamp_assigner(|e: &Ev, _| e.0),
        )
        .key_by(|e: &Ev| e.1.clone())
}

fn evs(v: &[(i64, &str)]) -> Vec<Ev> {
    v.iter().map(|(t, k)| (*t, k.to_string())).collect()
}

/// `(key, start, end, count, watermark at firing)` per firing.
#[derive(Clone)]
struct Describe;
impl ProcessWindowFunction<Ev, (String, i64, i64, usize, i64), String, TimeWindow> for Describe {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (String, i64, i64, usize, i64)>,
        elements: &[Ev],
        out: &mut Collector<(String, i64, i64, usize, i64)>,
    ) -> Result<()> {
        let w = *ctx.window();
        out.collect((key.clone(), w.start, w.end, elements.len(), ctx.current_watermark()));
        Ok(())
    }
}

/// Counts elements (an incremental aggregate).
#[derive(Clone)]
struct Count;
impl AggregateFunction<Ev, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _v: Ev, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// `(key, start, end, n)` from an aggregate's result.
#[derive(Clone)]
struct WithWindow;
impl ProcessWindowFunction<u64, (String, i64, i64, u64), String, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (String, i64, i64, u64)>,
        elements: &[u64],
        out: &mut Collector<(String, i64, i64, u64)>,
    ) -> Result<()> {
        let w = *ctx.window();
        out.collect((key.clone(), w.start, w.end, elements[0]));
        Ok(())
    }
}

fn counts_per_window(
    env: &StreamEnv,
    input: Vec<Ev>,
    assigner: impl WindowAssigner<Ev, W = TimeWindow>,
) -> CollectHandle<(String, i64, i64, u64)> {
    keyed(env, input, 0)
        .window(assigner)
        .aggregate_with(Count, WithWindow)
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn tumbling_windows_follow_flink_boundaries_including_negative_timestamps_and_offsets() {
    let env = StreamEnv::new();
    let input = evs(&[(-5001, "a"), (-5000, "a"), (-1, "a"), (0, "a"), (4999, "a"), (5000, "a")]);
    let plain = counts_per_window(&env, input.clone(), TumblingEventTimeWindows::of(ms(5000)));
    let offset = counts_per_window(
        &env,
        input.clone(),
        TumblingEventTimeWindows::of(ms(5000)).with_offset(ms(1000)),
    );
    let negative = counts_per_window(
        &env,
        input,
        TumblingEventTimeWindows::of(ms(5000)).with_offset_millis(-1),
    );
    env.execute("tumbling").unwrap();
    let a = |s, e, n| ("a".to_string(), s, e, n);
    assert_eq!(
        sorted(plain.take()),
        vec![a(-10000, -5000, 1), a(-5000, 0, 2), a(0, 5000, 2), a(5000, 10000, 1)]
    );
    assert_eq!(
        sorted(offset.take()),
        vec![a(-9000, -4000, 2), a(-4000, 1000, 2), a(1000, 6000, 2)]
    );
    assert_eq!(
        sorted(negative.take()),
        vec![a(-10001, -5001, 1), a(-5001, -1, 2), a(-1, 4999, 2), a(4999, 9999, 1)]
    );
}

#[test]
fn bad_window_parameters_fail_the_job_with_flink_messages() {
    let env = StreamEnv::new();
    let _ = counts_per_window(&env, evs(&[(0, "a")]), TumblingEventTimeWindows::of(ms(0)));
    let e = env.execute("bad").unwrap_err();
    assert!(
        format!("{e:#}").contains("TumblingEventTimeWindows parameters must satisfy abs(offset) < size"),
        "{e:#}"
    );
    let env = StreamEnv::new();
    let _ = keyed(&env, evs(&[(0, "a")]), 0)
        .window(EventTimeSessionWindows::with_gap(ms(10)))
        .trigger(EndOfStreamTrigger)
        .reduce(|a, _| a)
        .collect();
    // EndOfStreamTrigger is for global windows only; a session needs a merging trigger.
    let e = env.execute("bad").unwrap_err();
    assert!(
        format!("{e:#}").contains("A merging window assigner cannot be used with a trigger that does not support merging."),
        "{e:#}"
    );
}

#[test]
fn sliding_windows_count_every_element_in_size_over_slide_windows() {
    let env = StreamEnv::new();
    let input = evs(&[(0, "a"), (3, "a"), (5, "a"), (9, "a"), (10, "b")]);
    let out = counts_per_window(&env, input, SlidingEventTimeWindows::of(ms(10), ms(5)));
    env.execute("sliding").unwrap();
    let w = |k: &str, s, e, n| (k.to_string(), s, e, n);
    assert_eq!(
        sorted(out.take()),
        vec![w("a", -5, 5, 2), w("a", 0, 10, 4), w("a", 5, 15, 2), w("b", 5, 15, 1), w("b", 10, 20, 1)]
    );
}

#[test]
fn a_window_fires_when_the_watermark_reaches_its_max_timestamp() {
    let env = StreamEnv::new();
    // Watermark = max timestamp - 1 after each record.
    let input = evs(&[(1000, "a"), (4999, "a"), (5000, "a"), (9000, "a")]);
    let out = keyed(&env, input, 0)
        .window(TumblingEventTimeWindows::of(ms(5000)))
        .process(Describe)
        .collect();
    env.execute("watermark rule").unwrap();
    assert_eq!(
        out.take(),
        vec![
            // 4999 alone made the watermark 4998: not yet; 5000 made it 4999 = max_timestamp.
            ("a".to_string(), 0, 5000, 2, 4999),
            // The rest fires at the end of the input (watermark i64::MAX).
            ("a".to_string(), 5000, 10000, 2, i64::MAX),
        ]
    );
}

#[test]
fn late_elements_within_the_allowed_lateness_fire_again_and_later_ones_go_to_the_side_output() {
    let env = StreamEnv::new();
    let late = OutputTag::<Ev>::new("late");
    let input = evs(&[
        (1000, "a"),
        (6000, "a"), // watermark 5999: [0, 5000) fires with 1
        (2000, "a"), // late, within 2 s: fires again with 2
        (3000, "a"), // again with 3
        (7500, "a"), // watermark 7499 >= 4999 + 2000: [0, 5000) is cleaned up
        (4000, "a"), // beyond the allowed lateness: side output
        (100, "b"),  // a new key, but its window is gone too: side output
    ]);
    let windows = keyed(&env, input, 0)
        .window(TumblingEventTimeWindows::of(ms(5000)))
        .allowed_lateness(ms(2000))
        .side_output_late_data(&late)
        .process(Describe);
    let late_out = windows.get_side_output(&late).collect();
    let out = windows.collect();
    env.execute("lateness").unwrap();
    let d = |s, e, n, wm| ("a".to_string(), s, e, n, wm);
    assert_eq!(
        out.take(),
        vec![
            d(0, 5000, 1, 5999),
            d(0, 5000, 2, 5999),
            d(0, 5000, 3, 5999),
            d(5000, 10000, 2, i64::MAX)
        ]
    );
    assert_eq!(late_out.take(), evs(&[(4000, "a"), (100, "b")]));
}

#[test]
fn without_a_side_output_late_elements_are_dropped() {
    let env = StreamEnv::new();
    let input = evs(&[(1000, "a"), (6000, "a"), (2000, "a")]);
    let out = counts_per_window(&env, input, TumblingEventTimeWindows::of(ms(5000)));
    env.execute("dropped").unwrap();
    let a = |s, e, n| ("a".to_string(), s, e, n);
    assert_eq!(sorted(out.take()), vec![a(0, 5000, 1), a(5000, 10000, 1)]);
}

#[test]
fn sessions_merge_and_a_late_element_bridges_two_sessions() {
    let env = StreamEnv::new();
    let input = evs(&[
        (0, "a"),    // [0, 1000)
        (1500, "a"), // [1500, 2500); watermark 1499 fires [0, 1000) with 1
        (800, "a"),  // late within 5 s: [800, 1800) bridges both into [0, 2500)
        (5000, "b"),
        (5400, "b"), // merges into [5000, 6400)
    ]);
    let out = keyed(&env, input, 0)
        .window(EventTimeSessionWindows::with_gap(ms(1000)))
        .allowed_lateness(ms(5000))
        .aggregate_with(Count, WithWindow)
        .collect();
    env.execute("sessions").unwrap();
    let w = |k: &str, s, e, n| (k.to_string(), s, e, n);
    assert_eq!(
        out.take(),
        vec![w("a", 0, 1000, 1), w("a", 0, 2500, 3), w("b", 5000, 6400, 2)]
    );
}

#[test]
fn session_contents_listed_for_process_are_merged_not_lost() {
    let env = StreamEnv::new();
    let input = evs(&[(0, "a"), (500, "a"), (1200, "a"), (5000, "a")]);
    let out = keyed(&env, input, 10_000)
        .window(EventTimeSessionWindows::with_dynamic_gap(|_: &Ev| ms(1000)))
        .process(Describe)
        .collect();
    env.execute("process sessions").unwrap();
    let d = |s, e, n| ("a".to_string(), s, e, n, i64::MAX);
    assert_eq!(sorted(out.take()), vec![d(0, 2200, 3), d(5000, 6000, 1)]);
}

#[test]
fn count_windows_fire_every_n_elements_and_sliding_ones_every_slide() {
    let env = StreamEnv::new();
    let input: Vec<(String, i64)> = (1..=7).map(|i| ("a".to_string(), i)).collect();
    let tumbling = env
        .from_collection(input.clone())
        .key_by(|e: &(String, i64)| e.0.clone())
        .count_window(3)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect();
    let sliding = env
        .from_collection(input.clone())
        .key_by(|e: &(String, i64)| e.0.clone())
        .count_window_sliding(3, 2)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect();
    let all = env
        .from_collection(input)
        .map(|e: (String, i64)| e.1)
        .count_window_all(2)
        .reduce(|a, b| a + b)
        .collect();
    env.execute("count windows").unwrap();
    let a = |n| ("a".to_string(), n);
    // 1+2+3, 4+5+6; the 7th waits for two more (as in Flink).
    assert_eq!(tumbling.take(), vec![a(6), a(15)]);
    // Every 2 elements, the last 3: [1,2], [2,3,4], [4,5,6].
    assert_eq!(sliding.take(), vec![a(3), a(9), a(15)]);
    assert_eq!(all.take(), vec![3, 7, 11]);
}

/// Fires (and purges) when an element's key ends with `!`, and at the end of the window.
#[derive(Clone)]
struct Bang;
impl Trigger<Ev, TimeWindow> for Bang {
    type State = u32;
    fn on_element<C: TriggerContext<u32>>(
        &self,
        e: &Ev,
        _ts: i64,
        w: &TimeWindow,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        *ctx.state()? += 1;
        ctx.register_event_time_timer(w.max_timestamp())?;
        Ok(if e.1.ends_with('!') {
            TriggerResult::FireAndPurge
        } else {
            TriggerResult::Continue
        })
    }
    fn on_event_time<C: TriggerContext<u32>>(
        &self,
        t: i64,
        w: &TimeWindow,
        ctx: &mut C,
    ) -> Result<TriggerResult> {
        // State is per window: it counted this window's elements only.
        assert!(*ctx.state()? > 0);
        Ok(if t == w.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        })
    }
    fn on_processing_time<C: TriggerContext<u32>>(
        &self,
        _t: i64,
        _w: &TimeWindow,
        _ctx: &mut C,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }
    fn clear<C: TriggerContext<u32>>(&self, w: &TimeWindow, ctx: &mut C) -> Result<()> {
        ctx.clear_state()?;
        ctx.delete_event_time_timer(w.max_timestamp())
    }
}

#[test]
fn a_custom_trigger_decides_when_windows_fire() {
    let env = StreamEnv::new();
    let input = evs(&[(1, "x"), (2, "x"), (3, "x!"), (4, "x"), (12, "x")]);
    let out = env
        .from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(Lag { max: i64::MIN, lag: 0 })
                .with_timestamp_assigner(|e: &Ev, _| e.0),
        )
        .window_all(TumblingEventTimeWindows::of(ms(10)))
        .trigger(Bang)
        .aggregate(CountAll)
        .collect();
    env.execute("custom trigger").unwrap();
    // 3 elements fired and purged by "x!", then the rest of [0,10) and [10,20) at the end.
    assert_eq!(out.take(), vec![3, 1, 1]);
}

#[derive(Clone)]
struct CountAll;
impl AggregateFunction<Ev, u64, u64> for CountAll {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _v: Ev, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// `(key, window end, n-th firing of this window)` with per-window and per-key state.
#[derive(Clone, Default)]
struct Firings {
    n: WindowValueState<TimeWindow, u32>,
    total: ValueState<u32, WithDefault>,
}
impl ProcessWindowFunction<Ev, (String, i64, u32, u32), String, TimeWindow> for Firings {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.n = WindowValueStateDescriptor::new("firings").register(ctx)?;
        self.total = ValueStateDescriptor::new("total").with_default(0).register(ctx)?;
        Ok(())
    }
    fn process(
        &mut self,
        key: &String,
        ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (String, i64, u32, u32)>,
        _e: &[Ev],
        out: &mut Collector<(String, i64, u32, u32)>,
    ) -> Result<()> {
        let n = self.n.value(&ctx.window_state())?.unwrap_or(0) + 1;
        self.n.update(&mut ctx.window_state(), n)?;
        let total = self.total.value(ctx.global_state())? + 1;
        self.total.update(ctx.global_state(), total)?;
        out.collect((key.clone(), ctx.window().end, n, total));
        Ok(())
    }
    fn clear(
        &mut self,
        ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (String, i64, u32, u32)>,
    ) -> Result<()> {
        self.n.clear(&mut ctx.window_state())
    }
}

#[test]
fn reduce_aggregate_and_process_see_the_same_windows_with_window_and_key_state() {
    let env = StreamEnv::new();
    let input = evs(&[(1, "a"), (2, "a"), (12, "a"), (5, "a"), (30, "a")]);
    let reduced = keyed(&env, input.clone(), 0)
        .window(TumblingEventTimeWindows::of(ms(10)))
        .allowed_lateness(ms(100))
        .reduce(|a, b| (a.0.max(b.0), a.1))
        .collect();
    let firings = keyed(&env, input.clone(), 0)
        .window(TumblingEventTimeWindows::of(ms(10)))
        .allowed_lateness(ms(100))
        .process(Firings::default())
        .collect();
    let reduce_with = keyed(&env, input, 0)
        .window(TumblingEventTimeWindows::of(ms(10)))
        .reduce_with(|a: Ev, b: Ev| (a.0 + b.0, a.1), DescribeReduced)
        .collect();
    env.execute("functions").unwrap();
    // [0,10) fires at watermark 11 with max 2, then late with 5; [10,20), [30,40) at the end.
    let r = |t| (t, "a".to_string());
    assert_eq!(reduced.take(), vec![r(2), r(5), r(12), r(30)]);
    let f = |end, n, total| ("a".to_string(), end, n, total);
    assert_eq!(firings.take(), vec![f(10, 1, 1), f(10, 2, 2), f(20, 1, 3), f(40, 1, 4)]);
    // Without lateness the late 5 is dropped: [0,10) sums 1+2.
    assert_eq!(reduce_with.take(), vec![(0, 3), (10, 12), (30, 30)]);
}

#[derive(Clone)]
struct DescribeReduced;
impl ProcessWindowFunction<Ev, (i64, i64), String, TimeWindow> for DescribeReduced {
    fn process(
        &mut self,
        _key: &String,
        ctx: &mut ProcessWindowContext<'_, '_, String, TimeWindow, (i64, i64)>,
        e: &[Ev],
        out: &mut Collector<(i64, i64)>,
    ) -> Result<()> {
        assert_eq!(e.len(), 1);
        out.collect((ctx.window().start, e[0].0));
        Ok(())
    }
}

#[test]
fn window_results_carry_the_window_max_timestamp() {
    let env = StreamEnv::new();
    let input = evs(&[(3, "a"), (14, "b")]);
    // A second window over the results: a result at 9 lands in [0, 10) again.
    let out = keyed(&env, input, 0)
        .window(TumblingEventTimeWindows::of(ms(10)))
        .aggregate(Count)
        .window_all(TumblingEventTimeWindows::of(ms(5)))
        .process(AllDescribe)
        .collect();
    env.execute("timestamps").unwrap();
    assert_eq!(out.take(), vec![(5, 10, 1), (15, 20, 1)]);
}

#[derive(Clone)]
struct AllDescribe;
impl ProcessWindowFunction<u64, (i64, i64, u64), (), TimeWindow> for AllDescribe {
    fn process(
        &mut self,
        _key: &(),
        ctx: &mut ProcessWindowContext<'_, '_, (), TimeWindow, (i64, i64, u64)>,
        e: &[u64],
        out: &mut Collector<(i64, i64, u64)>,
    ) -> Result<()> {
        out.collect((ctx.window().start, ctx.window().end, e.iter().sum()));
        Ok(())
    }
}

#[test]
fn window_all_and_parallel_keyed_windows_see_every_element_once() {
    let env = StreamEnv::new();
    env.set_parallelism(3);
    let input: Vec<Ev> = (0..3000i64).map(|i| (i, format!("k{}", i % 17))).collect();
    let per_key = env
        .from_collection(input.clone())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(ms(50))
                .with_timestamp_assigner(|e: &Ev, _| e.0),
        )
        .key_by(|e: &Ev| e.1.clone())
        .window(TumblingEventTimeWindows::of(ms(100)))
        .aggregate_with(Count, WithWindow)
        .collect();
    let all = env
        .from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(ms(5000))
                .with_timestamp_assigner(|e: &Ev, _| e.0),
        )
        .window_all(TumblingEventTimeWindows::of(ms(1000)))
        .aggregate(CountAll)
        .collect();
    env.execute("parallel").unwrap();
    let per_key = per_key.take();
    // 30 windows of 100 ms, each holding 100 elements spread over the 17 keys.
    assert_eq!(per_key.iter().map(|r| r.3).sum::<u64>(), 3000);
    let mut seen = std::collections::BTreeSet::new();
    for (k, s, e, _) in &per_key {
        assert!(seen.insert((k.clone(), *s)), "({k}, {s}) fired twice");
        assert_eq!(e - s, 100);
    }
    assert_eq!(sorted(all.take()), vec![1000, 1000, 1000]);
}

static SLOW: AtomicUsize = AtomicUsize::new(0);

#[test]
fn processing_time_windows_count_every_element() {
    let env = StreamEnv::new();
    let mut input: Vec<(String, u64)> = (0..200).map(|i| (format!("k{}", i % 3), 1)).collect();
    input.push(("end".to_string(), 0));
    let out = env
        .from_collection(input)
        .map(|e: (String, u64)| {
            // 200 elements over ~400 ms; the last one waits so every window before it
            // fires (processing-time windows still open when the input ends do not).
            if e.0 == "end" {
                std::thread::sleep(ms(300));
            } else {
                SLOW.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(ms(2));
            }
            e
        })
        .key_by(|e: &(String, u64)| e.0.clone())
        .window(TumblingProcessingTimeWindows::of(ms(50)))
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect();
    let sliding = env
        .from_collection((0..100).map(|i| (i % 2) as u64).collect::<Vec<u64>>())
        .window_all(ProcessingTimeSessionWindows::with_gap(ms(20)))
        .reduce(|a, b| a + b);
    let _ = sliding.collect();
    env.execute("processing time").unwrap();
    let got = out.take();
    let total: u64 = got.iter().filter(|r| r.0 != "end").map(|r| r.1).sum();
    assert_eq!(total, 200);
    assert!(got.len() >= 3 * 2, "several windows fired: {got:?}");
}

/// Lines `<ts> <key>`, every key in every 100 ms window.
fn write_input(dir: &std::path::Path) -> std::collections::BTreeMap<(String, i64), u64> {
    let mut exact = std::collections::BTreeMap::new();
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..1000i64 {
            let key = format!("f{f}k{}", i % 7);
            text.push_str(&format!("{i} {key}\n"));
            *exact.entry((key, i / 100 * 100)).or_insert(0) += 1;
        }
        std::fs::write(dir.join(format!("part-{f}.txt")), text).unwrap();
    }
    exact
}

static READ: AtomicUsize = AtomicUsize::new(0);

fn window_job(env: &StreamEnv, dir: &std::path::Path) -> CollectHandle<(String, i64, i64, u64)> {
    env.read_text_file(dir)
        .uid("lines")
        .map(|l: String| {
            READ.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(300));
            let (ts, key) = l.split_once(' ').unwrap();
            (ts.parse::<i64>().unwrap(), key.to_string())
        })
        // No watermarks until the input ends: every window is pending at the savepoint.
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::no_watermarks().with_timestamp_assigner(|e: &Ev, _| e.0),
        )
        .key_by(|e: &Ev| e.1.clone())
        .window(TumblingEventTimeWindows::of(ms(100)))
        .aggregate_with(Count, WithWindow)
        .uid("windows")
        .collect()
}

fn savepoint_and_restore_at(p2: u32) {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let exact = write_input(dir.path());
    READ.store(0, Ordering::Relaxed);
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.enable_checkpointing(ms(50));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out1 = window_job(&env, dir.path());
    let job = env.execute_async("before").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while READ.load(Ordering::Relaxed) < 1000 && job.status() == JobStatus::Running {
        assert!(Instant::now() < deadline);
        std::thread::sleep(ms(2));
    }
    let path = job.stop_with_savepoint(Some(sp.path())).unwrap();
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    let mut got: Vec<(String, i64, i64, u64)> = out1.take();
    let env = StreamEnv::from_arg_list(["-s", path.to_str().unwrap()]).unwrap();
    env.set_parallelism(p2);
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out2 = window_job(&env, dir.path());
    env.execute("after").unwrap();
    got.extend(out2.take());
    let mut fired = std::collections::BTreeMap::new();
    for (k, s, _, n) in got {
        assert!(fired.insert((k.clone(), s), n).is_none(), "({k}, {s}) fired twice");
    }
    assert_eq!(fired, exact, "restored at parallelism {p2}");
}

#[test]
fn pending_windows_in_a_savepoint_fire_exactly_once_restored_at_parallelism_1() {
    savepoint_and_restore_at(1);
}

#[test]
fn pending_windows_in_a_savepoint_fire_exactly_once_restored_at_parallelism_3() {
    savepoint_and_restore_at(3);
}
