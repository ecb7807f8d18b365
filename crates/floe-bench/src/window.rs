//! `floe-bench window`: the windowed word count of `bench/flink/src/peer/WindowWordCount.java`
//! on Floe, and the check of its results against an engine-free computation of them.

use super::{checkpoint_summary, load1, rusage, work_dir, WindowArgs, WindowImpl};
use anyhow::{bail, Context as _};
use floe::api::window::{
    ProcessWindowContext, ProcessWindowFunction, TimeWindow, TumblingEventTimeWindows,
};
use floe::connectors::generator::{splitmix64, write_line};
use floe::connectors::{Sink, SinkWriter};
use floe::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Event time of word 0 (epoch ms), as in the Java job.
const BASE_MS: i64 = 1_700_000_000_000;
/// Words per event-time millisecond: a 1 s window holds about a million words.
const WORDS_PER_MS: u64 = 1000;
/// The largest amount a word's event time is behind the newest one before it, and the
/// watermarks' bounded out-of-orderness: no word is ever late.
const DISORDER_MS: u64 = 200;
/// Tumbling window size.
const WINDOW_MS: i64 = 1000;
const WORDS_PER_LINE: u64 = 10;

/// The event time of word number `seq` (`10 * line + k`), the Java job's `eventTime`.
#[inline]
pub(crate) fn event_time(seq: u64) -> i64 {
    BASE_MS + (seq / WORDS_PER_MS) as i64 - (splitmix64(!seq) % DISORDER_MS) as i64
}

/// FNV-1a (64 bit) of the word's bytes.
#[inline]
fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One window result's share of the order-independent digest (summed, wrapping).
#[inline]
fn result_digest(word: &str, window_end: i64, count: i64) -> u64 {
    splitmix64(splitmix64(fnv1a64(word) ^ window_end as u64) ^ count as u64)
}

/// The figures both engines print, which depend on the input only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Figures {
    pub window_results: u64,
    pub windows: u64,
    pub count_sum: u64,
    pub digest: u64,
}

/// Figures computed by bench/window_reference.py (and matched by the Flink job).
const KNOWN: [(u64, Figures); 2] = [
    (
        10_000_000,
        Figures {
            window_results: 107_490,
            windows: 11,
            count_sum: 10_000_000,
            digest: 0x98ff_2237_e8b4_6d03,
        },
    ),
    (
        50_000_000,
        Figures {
            window_results: 498_370,
            windows: 51,
            count_sum: 50_000_000,
            digest: 0x9166_d0b1_f41a_d145,
        },
    ),
];

/// The expected figures of an input of `words` words, computed without an engine: every
/// word into its window, one count per (word, window).
pub(crate) fn reference(words: u64) -> Figures {
    // Words are interned (10,000 of them), so the loop allocates nothing per word.
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut counts: HashMap<(u32, i64), i64> = HashMap::new();
    let mut line = String::new();
    for i in 0..words.div_ceil(WORDS_PER_LINE) {
        line.clear();
        write_line(i, words, &mut line);
        for (k, w) in line.split(' ').enumerate() {
            let next = ids.len() as u32;
            let id = match ids.get(w) {
                Some(id) => *id,
                None => *ids.entry(w.to_string()).or_insert(next),
            };
            let ts = event_time(i * WORDS_PER_LINE + k as u64);
            let end = ts - ts.rem_euclid(WINDOW_MS) + WINDOW_MS;
            *counts.entry((id, end)).or_insert(0) += 1;
        }
    }
    let mut names = vec![""; ids.len()];
    for (w, id) in &ids {
        names[*id as usize] = w;
    }
    let mut f = Figures {
        window_results: counts.len() as u64,
        ..Figures::default()
    };
    let mut ends = BTreeSet::new();
    for ((id, end), c) in counts {
        ends.insert(end);
        f.count_sum += c as u64;
        f.digest = f
            .digest
            .wrapping_add(result_digest(names[id as usize], end, c));
    }
    f.windows = ends.len() as u64;
    f
}

/// A window result: the word, its window's (exclusive) end and its count.
type WindowCount = (Str, i64, i64);

/// 1 s tumbling event-time windows counting per word, by hand: one count per window in map
/// state (window end -> count) and an event-time timer at the window's last millisecond,
/// which emits and clears it, as Flink's window operator does with its window state and
/// trigger timers.
#[derive(Clone, Default)]
struct TumblingCount {
    counts: MapState<i64, i64>,
}

impl KeyedProcessFunction<Str, (Str, i64), WindowCount> for TumblingCount {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.counts = MapStateDescriptor::new("window-counts").register(ctx)?;
        Ok(())
    }
    fn process_element(
        &mut self,
        value: (Str, i64),
        ctx: &mut Context<'_, '_, Str, WindowCount>,
        _out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        let Some(ts) = ctx.timestamp() else {
            floe::bail!("word '{}' has no timestamp", value.0);
        };
        let end = ts - ts.rem_euclid(WINDOW_MS) + WINDOW_MS;
        match self.counts.get(ctx, &end)? {
            Some(c) => self.counts.put(ctx, end, c + value.1)?,
            None => {
                self.counts.put(ctx, end, value.1)?;
                ctx.timer_service().register_event_time_timer(end - 1)?;
            }
        }
        Ok(())
    }
    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut Context<'_, '_, Str, WindowCount>,
        out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        let end = timestamp + 1;
        if let Some(c) = self.counts.remove(ctx, &end)? {
            out.collect((ctx.current_key().clone(), end, c));
        }
        Ok(())
    }
}

/// Hands on a window's reduced `(word, count)` with the window's end (Flink's job reads it
/// from the result's timestamp; Floe's sinks see records only).
#[derive(Clone, Default)]
struct WithWindowEnd;

impl ProcessWindowFunction<(Str, i64), WindowCount, Str, TimeWindow> for WithWindowEnd {
    fn process(
        &mut self,
        _key: &Str,
        context: &mut ProcessWindowContext<'_, '_, Str, TimeWindow, WindowCount>,
        elements: &[(Str, i64)],
        out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        let end = context.window().end;
        for (w, c) in elements {
            out.collect((w.clone(), end, *c));
        }
        Ok(())
    }
}

/// What every instance of the counting sink added up.
#[derive(Default)]
struct Totals {
    results: AtomicU64,
    count_sum: AtomicU64,
    digest: AtomicU64,
    windows: Mutex<BTreeSet<i64>>,
}

/// Discards the window results after adding them to [`Totals`] (once per batch).
#[derive(Clone, Default)]
struct CountingSink(Arc<Totals>);

impl Sink<WindowCount> for CountingSink {
    fn name(&self) -> String {
        "CountingDiscard".into()
    }
    fn create(&self, _info: &TaskInfo) -> Result<Box<dyn SinkWriter<WindowCount>>> {
        Ok(Box::new(self.clone()))
    }
}

impl SinkWriter<WindowCount> for CountingSink {
    fn write_batch(&mut self, batch: &mut Vec<WindowCount>) -> Result<()> {
        let (mut sum, mut digest, mut last_end) = (0u64, 0u64, None);
        for (w, end, c) in batch.iter() {
            sum += *c as u64;
            digest = digest.wrapping_add(result_digest(w, *end, *c));
            // Results arrive window by window: the set is touched once per window change.
            if last_end != Some(*end) {
                last_end = Some(*end);
                self.0
                    .windows
                    .lock()
                    .map_err(|_| floe::anyhow!("window set poisoned"))?
                    .insert(*end);
            }
        }
        self.0
            .results
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.0.count_sum.fetch_add(sum, Ordering::Relaxed);
        self.0.digest.fetch_add(digest, Ordering::Relaxed);
        batch.clear();
        Ok(())
    }
}

pub(crate) fn run(a: WindowArgs) -> anyhow::Result<()> {
    let load1_before = load1();
    let (ckpt_dir, _cleanup) = work_dir(&a.checkpoint_dir, "checkpoint")?;
    let ckpt_str = ckpt_dir
        .to_str()
        .context("checkpoint directory is not valid UTF-8")?;

    // The job, as a user writes it (same pipeline as peer.WindowWordCount).
    let env = StreamEnv::new();
    env.set_parallelism(a.parallelism);
    env.enable_checkpointing(Duration::from_millis(a.interval_ms));
    env.set_checkpoint_storage(ckpt_str);
    let words = env
        .generate_indexed_word_lines(a.words)
        .uid("generator")
        .flat_map(
            |(i, line): (u64, String), out: &mut Collector<(Str, i64)>| {
                // Word k of line i is word number 10 i + k of the input.
                for (seq, w) in (i * WORDS_PER_LINE..).zip(line.split(' ')) {
                    if !w.is_empty() {
                        out.collect((Str::from(w), event_time(seq)));
                    }
                }
            },
        )
        .try_map(|e: (Str, i64)| {
            if e.0 == "error" {
                floe::bail!("poison word 'error'");
            }
            Ok(e)
        })
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(DISORDER_MS))
                .with_timestamp_assigner(|e: &(Str, i64), _| e.1),
        )
        .map(|e: (Str, i64)| (e.0, 1i64))
        .key_by(|t: &(Str, i64)| t.0.clone());
    let results = match a.operator {
        WindowImpl::Window => words
            .window(TumblingEventTimeWindows::of(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .reduce_with(
                |a: (Str, i64), b: (Str, i64)| (a.0, a.1 + b.1),
                WithWindowEnd,
            )
            .uid("window-counts"),
        WindowImpl::Process => words.process(TumblingCount::default()).uid("window-counts"),
    };
    let totals = CountingSink::default();
    results.sink_to(totals.clone());

    let operator = match a.operator {
        WindowImpl::Window => "window",
        WindowImpl::Process => "process",
    };
    println!(
        "floe window: words={} parallelism={} checkpoint_interval_ms={} checkpoint_dir={} operator={operator}",
        a.words,
        a.parallelism,
        a.interval_ms,
        ckpt_dir.display()
    );
    let t0 = Instant::now();
    let result = env.execute("WindowWordCount").context("job failed")?;
    let elapsed = t0.elapsed().as_secs_f64();
    // Before the reference is computed, which is not part of the run.
    let usage = rusage();
    let cpu_s = usage.cpu_s;
    let (median, max) = checkpoint_summary(&result);
    let t = &totals.0;
    let got = Figures {
        window_results: t.results.load(Ordering::Relaxed),
        windows: t
            .windows
            .lock()
            .map_err(|_| anyhow::anyhow!("window set poisoned"))?
            .len() as u64,
        count_sum: t.count_sum.load(Ordering::Relaxed),
        digest: t.digest.load(Ordering::Relaxed),
    };
    let words_per_s = a.words as f64 / elapsed;
    let net_s = result.net_runtime.as_secs_f64();
    let words_per_cpu_s = a.words as f64 / cpu_s.max(1e-9);
    println!(
        "job {} {} in {elapsed:.3} s (net runtime {net_s:.3} s), {} restarts",
        result.job_id, result.status, result.restarts
    );
    println!("throughput: {words_per_s:.0} words/s wall, {words_per_cpu_s:.0} words per CPU-second ({cpu_s:.2} CPU-s)");
    println!(
        "checkpoints: {} completed, duration median {median} ms, max {max} ms; peak RSS {:.1} MiB",
        result.checkpoints, usage.peak_rss_mb
    );
    let expected = KNOWN
        .iter()
        .find(|(n, _)| *n == a.words)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| reference(a.words));
    let check = if got == expected { "ok" } else { "MISMATCH" };
    println!(
        "engine=floe job=window words={} lines={} parallelism={} elapsed_s={elapsed:.3} words_per_s={words_per_s:.0} \
         net_runtime_s={net_s:.3} net_words_per_s={:.0} cpu_s={cpu_s:.2} words_per_cpu_s={words_per_cpu_s:.0} \
         peak_rss_mb={:.1} checkpoints={} ckpt_ms_median={median} ckpt_ms_max={max} restarts={} \
         window_results={} windows={} count_sum={} digest={:016x} reference={check} load1_before={load1_before} \
         operator={operator}",
        a.words,
        a.words.div_ceil(WORDS_PER_LINE),
        a.parallelism,
        a.words as f64 / net_s.max(1e-9),
        usage.peak_rss_mb,
        result.checkpoints,
        result.restarts,
        got.window_results,
        got.windows,
        got.count_sum,
        got.digest,
    );
    if got.count_sum != a.words {
        bail!(
            "sum of window counts {} != input words {}: the job lost or duplicated words",
            got.count_sum,
            a.words
        );
    }
    if got != expected {
        bail!("window results {got:?} differ from the reference {expected:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine-free computation agrees with bench/window_reference.py's figures for 10M
    /// words (which the Flink job reproduces).
    #[test]
    fn reference_matches_the_python_reference_for_10m_words() {
        assert_eq!(reference(10_000_000), KNOWN[0].1);
    }

    /// No word is late: a word's event time is never more than 199 ms behind the newest
    /// event time before it, so a 200 ms bounded out-of-orderness never drops one.
    #[test]
    fn event_time_disorder_is_below_the_bound() {
        let mut newest = event_time(0);
        for seq in 0..2_000_000u64 {
            let ts = event_time(seq);
            assert!(newest - ts < DISORDER_MS as i64, "seq {seq}");
            newest = newest.max(ts);
        }
        assert_eq!(event_time(0), BASE_MS - (splitmix64(!0) % 200) as i64);
    }

    #[test]
    fn digest_of_one_result_is_fixed() {
        // fnv1a64("a") is FNV-1a's published value for "a".
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            result_digest("a", 1000, 1),
            splitmix64(splitmix64(0xaf63_dc4c_8601_ec8c ^ 1000) ^ 1)
        );
    }
}
