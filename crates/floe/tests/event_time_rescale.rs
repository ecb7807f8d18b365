//! Pending event-time timers in a savepoint taken at parallelism 2, restored at 1 and at 3:
//! timers are keyed state and move with their key groups. Every timer fires exactly once —
//! the ones the watermark had passed before the savepoint in the first run, all the others
//! after the restore and none before — and sees its key's restored state.

use floe::connectors::{Source, SourceContext, SourceReader, SourceStatus};
use floe::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: u64 = 30;
const N: usize = 3000;
/// Records up to here are read before the savepoint.
const CUT: usize = 1500;
const BOUND: i64 = 100;

/// Record `i`: timestamp `10 i` plus a jitter within the bound (out of order, never late).
fn record(i: usize) -> (i64, u64) {
    let jitter = ((i * 37) % 5) as i64 * 10;
    (i as i64 * 10 + jitter, (i as u64 * 7) % KEYS)
}

/// The timer a record registers: the end of its second plus 500 ms (many records share it).
fn deadline(ts: i64) -> i64 {
    (ts / 1000 + 1) * 1000 + 500
}

/// `(key, timer, records that registered it, records of the key fired so far)`.
type Fired = (u64, i64, u64, u64);

/// Counts records per timer in a map state; on the timer emits that count and the key's
/// running total of fired records (a value state).
#[derive(Clone, Default)]
struct Deadlines {
    pending: MapState<i64, u64>,
    total: ValueState<u64, WithDefault>,
}

impl KeyedProcessFunction<u64, (i64, u64), Fired> for Deadlines {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.pending = MapStateDescriptor::new("pending").register(ctx)?;
        self.total = ValueStateDescriptor::new("total")
            .with_default(0u64)
            .register(ctx)?;
        Ok(())
    }
    fn process_element(
        &mut self,
        v: (i64, u64),
        ctx: &mut Context<'_, '_, u64, Fired>,
        _out: &mut Collector<Fired>,
    ) -> Result<()> {
        let d = deadline(v.0);
        let n = self.pending.get(ctx, &d)?.unwrap_or(0);
        self.pending.put(ctx, d, n + 1)?;
        ctx.timer_service().register_event_time_timer(d)
    }
    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, u64, Fired>,
        out: &mut Collector<Fired>,
    ) -> Result<()> {
        let n = self
            .pending
            .remove(ctx, &ts)?
            .ok_or_else(|| anyhow!("timer {ts} of key {} has no records", ctx.current_key()))?;
        let total = self.total.value(ctx)? + n;
        self.total.update(ctx, total)?;
        out.collect((*ctx.current_key(), ts, n, total));
        Ok(())
    }
}

/// A replayable source (parallelism 1) of [`record`]s `0..N` that emits only up to `limit`
/// and then waits (while `open`); its position is the number of records emitted.
#[derive(Clone)]
struct Records {
    limit: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
}

struct RecordsReader {
    next: usize,
    limit: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
}

impl Source<(i64, u64)> for Records {
    fn name(&self) -> String {
        "Records".into()
    }
    fn max_parallelism(&self) -> Option<u32> {
        Some(1)
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<(i64, u64)>>> {
        let next = match ctx.restored.as_ref().and_then(|all| all.first()) {
            Some(b) => u64::from_le_bytes(b[..8].try_into()?) as usize,
            None => 0,
        };
        Ok(Box::new(RecordsReader {
            next,
            limit: Arc::clone(&self.limit),
            open: Arc::clone(&self.open),
        }))
    }
}

impl SourceReader<(i64, u64)> for RecordsReader {
    fn poll_next(&mut self, out: &mut Vec<(i64, u64)>, max: usize) -> Result<SourceStatus> {
        let end = self
            .limit
            .load(Ordering::SeqCst)
            .min(N)
            .min(self.next + max);
        out.extend((self.next..end).map(record));
        self.next = end;
        if !out.is_empty() {
            Ok(SourceStatus::Ready)
        } else if self.next < N || self.open.load(Ordering::SeqCst) {
            Ok(SourceStatus::Idle)
        } else {
            Ok(SourceStatus::Finished)
        }
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok((self.next as u64).to_le_bytes().to_vec())
    }
}

fn job(env: &StreamEnv, limit: usize, open: bool) -> (CollectHandle<Fired>, Arc<AtomicBool>) {
    env.enable_checkpointing(Duration::from_millis(100));
    env.set_config("pipeline.auto-watermark-interval", "20 ms")
        .unwrap();
    let open = Arc::new(AtomicBool::new(open));
    let out = env
        .from_source(
            Records {
                limit: Arc::new(AtomicUsize::new(limit)),
                open: Arc::clone(&open),
            },
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(BOUND as u64))
                .with_timestamp_assigner(|r: &(i64, u64), _| r.0),
            "records",
        )
        .uid("records")
        .key_by(|r: &(i64, u64)| r.1)
        .process(Deadlines::default())
        .uid("deadlines")
        .collect();
    (out, open)
}

/// What an uninterrupted run fires, per (key, timer): (records, running total).
fn expected() -> BTreeMap<(u64, i64), (u64, u64)> {
    let mut per: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for i in 0..N {
        let (ts, k) = record(i);
        *per.entry((k, deadline(ts))).or_default() += 1;
    }
    let mut totals: BTreeMap<u64, u64> = BTreeMap::new();
    per.into_iter()
        .map(|((k, d), n)| {
            let t = totals.entry(k).or_default();
            *t += n;
            ((k, d), (n, *t))
        })
        .collect()
}

fn as_map(v: &[Fired]) -> BTreeMap<(u64, i64), (u64, u64)> {
    let mut m = BTreeMap::new();
    for &(k, d, n, t) in v {
        assert!(
            m.insert((k, d), (n, t)).is_none(),
            "timer ({k}, {d}) fired twice"
        );
    }
    m
}

#[test]
fn pending_timers_fire_exactly_once_after_restoring_at_parallelism_1_and_3() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let expected = expected();
    // The watermark the first run reaches: the largest timestamp read, minus the bound, minus 1.
    let wm = (0..CUT).map(|i| record(i).0).max().unwrap() - BOUND - 1;
    let before: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, d), _)| *d <= wm)
        .map(|(k, v)| (*k, *v))
        .collect();
    assert!(!before.is_empty() && before.len() < expected.len());

    // Parallelism 2, the first CUT records; wait until every timer the watermark passed fired.
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let (out1, _open) = job(&env, CUT, true);
    let client = env.execute_async("before").unwrap();
    let deadline_at = Instant::now() + Duration::from_secs(60);
    while out1.snapshot().len() < before.len() {
        assert!(Instant::now() < deadline_at, "{:?}", out1.snapshot().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = client.trigger_savepoint(Some(sp.path())).unwrap();
    client.cancel();
    assert_eq!(client.wait().unwrap().status, JobStatus::Canceled);
    let first = as_map(&out1.take());
    assert_eq!(
        first, before,
        "the first run fired exactly the timers its watermark passed"
    );

    for p in [1, 3] {
        let env = StreamEnv::from_arg_list(["-s", savepoint.to_str().unwrap()]).unwrap();
        env.set_parallelism(p);
        env.set_checkpoint_storage(ck.path().to_str().unwrap());
        let (out2, _open) = job(&env, N, false);
        env.execute(&format!("restored at {p}")).unwrap();
        let second = as_map(&out2.take());
        let again: Vec<_> = second.keys().filter(|k| first.contains_key(k)).collect();
        assert!(
            again.is_empty(),
            "p={p}: fired again after the restore: {again:?}"
        );
        let mut all = first.clone();
        all.extend(second);
        assert_eq!(
            all, expected,
            "p={p}: every timer once, with its key's restored state"
        );
    }
}

#[test]
fn stop_with_savepoint_leaves_pending_timers_to_the_restored_job() {
    // Flink's stop-with-savepoint without --drain: the watermark does not move to the end of
    // time when the job stops, so timers still pending fire only in the restored job.
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let expected = expected();
    let wm = (0..CUT).map(|i| record(i).0).max().unwrap() - BOUND - 1;
    let before: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, d), _)| *d <= wm)
        .map(|(k, v)| (*k, *v))
        .collect();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let (out1, _open) = job(&env, CUT, true);
    let client = env.execute_async("before stop").unwrap();
    let deadline_at = Instant::now() + Duration::from_secs(60);
    while out1.snapshot().len() < before.len() {
        assert!(Instant::now() < deadline_at, "{:?}", out1.snapshot().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    let savepoint = client.stop_with_savepoint(Some(sp.path())).unwrap();
    assert_eq!(client.wait().unwrap().status, JobStatus::Finished);
    let first = as_map(&out1.take());
    assert_eq!(first, before, "stopping fired no pending timer");

    let env = StreamEnv::from_arg_list(["-s", savepoint.to_str().unwrap()]).unwrap();
    env.set_parallelism(3);
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let (out2, _open) = job(&env, N, false);
    env.execute("after stop").unwrap();
    let mut all = first.clone();
    for (k, v) in as_map(&out2.take()) {
        assert!(all.insert(k, v).is_none(), "{k:?} fired in both runs");
    }
    assert_eq!(all, expected);
}
