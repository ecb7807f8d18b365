//! Watermark semantics against Flink's rules, on real jobs: the bounded-out-of-orderness
//! watermark is the largest timestamp seen minus the bound minus 1 ms; periodic emission
//! follows `pipeline.auto-watermark-interval` (0 turns it off); watermarks are generated per
//! file of a directory and combined as the minimum over splits and over parallel channels;
//! idle inputs no longer hold the watermark back; the end of a bounded input fires every
//! pending timer; user functions see the operator's watermark.
//!
//! Every job records what a keyed process function saw: each record with the watermark when
//! it arrived, and each event-time timer with the watermark when it fired. Jobs that must
//! observe the watermark while they still run read from a socket or from a source that stays
//! open until the test closes it; timings are only ever bounded waits.

use floe::connectors::file::TextFileSource;
use floe::connectors::socket::SocketTextSource;
use floe::connectors::{Source, SourceContext, SourceReader, SourceStatus};
use floe::prelude::*;
use floe::JobClient;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the probe saw: `("rec", key, record timestamp, watermark on arrival)` or
/// `("timer", key, timer timestamp, watermark when it fired)`.
type Seen = (String, String, i64, i64);

/// Registers an event-time timer at `timestamp + offset` for every offset, for every record;
/// reports every record and every timer with the operator's current watermark.
#[derive(Clone)]
struct Probe {
    offsets: Vec<i64>,
}

impl KeyedProcessFunction<String, (i64, String), Seen> for Probe {
    fn process_element(
        &mut self,
        v: (i64, String),
        ctx: &mut Context<'_, '_, String, Seen>,
        out: &mut Collector<Seen>,
    ) -> Result<()> {
        let ts = ctx.timestamp().expect("every record has a timestamp");
        assert_eq!(ts, v.0, "the record's timestamp is the one assigned");
        let wm = ctx.timer_service().current_watermark();
        out.collect(("rec".into(), v.1, ts, wm));
        for off in &self.offsets {
            ctx.timer_service().register_event_time_timer(ts + off)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, String, Seen>,
        out: &mut Collector<Seen>,
    ) -> Result<()> {
        let wm = ctx.timer_service().current_watermark();
        out.collect(("timer".into(), ctx.current_key().clone(), ts, wm));
        Ok(())
    }
}

/// `<epoch-millis> <key>`.
fn parse(line: String) -> (i64, String) {
    let (ts, key) = line.split_once(' ').expect("'<ts> <key>'");
    (ts.parse().expect("a timestamp"), key.to_string())
}

/// The timestamp assigner of `<ts> <key>` lines (it is given the record, a `String`).
#[allow(clippy::ptr_arg)]
fn line_ts(line: &String, _: i64) -> i64 {
    line.split(' ').next().unwrap().parse().unwrap()
}

fn rec(key: &str, ts: i64, wm: i64) -> Seen {
    ("rec".into(), key.into(), ts, wm)
}

fn timer(key: &str, ts: i64, wm: i64) -> Seen {
    ("timer".into(), key.into(), ts, wm)
}

fn sorted(mut v: Vec<Seen>) -> Vec<Seen> {
    v.sort();
    v
}

/// Waits (up to 30 s) until `out` holds something `f` accepts.
fn wait_for(out: &CollectHandle<Seen>, what: &str, f: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = out.snapshot();
        if f(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that `f` stays false for `d` (the job keeps running meanwhile).
fn stays_false(out: &CollectHandle<Seen>, d: Duration, what: &str, f: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        let got = out.snapshot();
        assert!(!f(&got), "{what}: {got:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn has(v: &[Seen], s: &Seen) -> bool {
    v.contains(s)
}

fn fired(v: &[Seen], key: &str, ts: i64) -> bool {
    v.iter().any(|s| s.0 == "timer" && s.1 == key && s.2 == ts)
}

/// A line server the socket source connects to (like `nc -lk`): one connection.
struct LineServer {
    listener: TcpListener,
    conn: Option<TcpStream>,
}

impl LineServer {
    fn start() -> Self {
        LineServer {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            conn: None,
        }
    }
    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
    /// Sends a line to the job (accepting its connection first).
    fn send(&mut self, line: &str) {
        if self.conn.is_none() {
            self.listener.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let s = loop {
                match self.listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) => {
                        assert!(Instant::now() < deadline, "the job did not connect");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            };
            s.set_nonblocking(false).unwrap();
            self.conn = Some(s);
        }
        let c = self.conn.as_mut().unwrap();
        c.write_all(format!("{line}\n").as_bytes()).unwrap();
        c.flush().unwrap();
    }
    /// Closes the connection: the socket source ends.
    fn close(&mut self) {
        self.conn = None;
    }
}

/// A socket job at parallelism `p`: lines `<ts> <key>` with watermarks from `strategy`,
/// keyed by key, into a [`Probe`].
fn socket_job<G: WatermarkGenerator>(
    env: &StreamEnv,
    server: &LineServer,
    strategy: WatermarkStrategy<G>,
    offsets: Vec<i64>,
) -> CollectHandle<Seen> {
    env.from_source(
        SocketTextSource::new("127.0.0.1", server.port()),
        strategy.with_timestamp_assigner(line_ts),
        "socket",
    )
    .map(parse)
    .key_by(|e: &(i64, String)| e.1.clone())
    .process(Probe { offsets })
    .collect()
}

/// Flink's `BoundedOutOfOrdernessWatermarks` (and the monotonous strategy, bound 0): a
/// record with timestamp `t` moves the watermark to exactly `t - bound - 1`, so a timer at
/// that time fires and one at `t - bound` waits for a later record.
fn watermark_trails_the_largest_timestamp<G: WatermarkGenerator>(
    strategy: WatermarkStrategy<G>,
    bound: i64,
) {
    let mut server = LineServer::start();
    let env = StreamEnv::new();
    env.set_config("pipeline.auto-watermark-interval", "20 ms")
        .unwrap();
    let out = socket_job(&env, &server, strategy, vec![-bound - 1, -bound]);
    let job = env.execute_async("bounded").unwrap();
    let w = 10_000 - bound - 1;
    server.send("10000 a");
    wait_for(&out, "a's timer at the watermark", |v| {
        has(v, &timer("a", w, w))
    });
    stays_false(
        &out,
        Duration::from_millis(500),
        "a timer 1 ms after the watermark fired",
        |v| fired(v, "a", w + 1),
    );
    // A later record: the watermark moves by 1 ms; the function sees the watermark the
    // record arrived at.
    server.send("10001 b");
    wait_for(&out, "the timers at the next watermark", |v| {
        has(v, &timer("a", w + 1, w + 1)) && has(v, &timer("b", w + 1, w + 1))
    });
    stays_false(
        &out,
        Duration::from_millis(300),
        "b's later timer fired early",
        |v| fired(v, "b", w + 2),
    );
    server.close();
    job.wait().unwrap();
    assert_eq!(
        sorted(out.take()),
        sorted(vec![
            rec("a", 10_000, MIN_WATERMARK),
            timer("a", w, w),
            rec("b", 10_001, w),
            timer("a", w + 1, w + 1),
            timer("b", w + 1, w + 1),
            // The end of the input moves the watermark to the end of time.
            timer("b", w + 2, MAX_WATERMARK),
        ])
    );
}

#[test]
fn bounded_out_of_orderness_watermark_is_max_timestamp_minus_bound_minus_one() {
    watermark_trails_the_largest_timestamp(
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(2000)),
        2000,
    );
}

#[test]
fn monotonous_watermark_is_max_timestamp_minus_one() {
    watermark_trails_the_largest_timestamp(WatermarkStrategy::for_monotonous_timestamps(), 0);
}

/// Emits a watermark on every event (the record's timestamp minus 1) and nothing
/// periodically: a punctuated generator.
#[derive(Clone)]
struct Punctuated;

impl WatermarkGenerator for Punctuated {
    fn on_event(&mut self, ts: i64, out: &mut WatermarkOutput) {
        out.emit_watermark(ts - 1);
    }
    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
}

#[test]
fn auto_watermark_interval_zero_turns_periodic_emission_off() {
    let mut server = LineServer::start();
    let env = StreamEnv::new();
    env.set_config("pipeline.auto-watermark-interval", "0")
        .unwrap();
    let out = socket_job(
        &env,
        &server,
        WatermarkStrategy::for_monotonous_timestamps(),
        vec![-1],
    );
    let job = env.execute_async("no periodic").unwrap();
    server.send("1000 a");
    wait_for(&out, "the record", |v| !v.is_empty());
    // Several default intervals pass without a watermark.
    stays_false(
        &out,
        Duration::from_millis(1000),
        "a timer fired without periodic watermarks",
        |v| fired(v, "a", 999),
    );
    server.close();
    job.wait().unwrap();
    assert_eq!(
        sorted(out.take()),
        vec![
            rec("a", 1000, MIN_WATERMARK),
            timer("a", 999, MAX_WATERMARK)
        ]
    );
}

#[test]
fn periodic_emission_runs_at_the_configured_interval_and_by_default() {
    for interval in [Some("50 ms"), None] {
        let mut server = LineServer::start();
        let env = StreamEnv::new();
        if let Some(i) = interval {
            env.set_config("pipeline.auto-watermark-interval", i)
                .unwrap();
        }
        let out = socket_job(
            &env,
            &server,
            WatermarkStrategy::for_monotonous_timestamps(),
            vec![-1],
        );
        let job = env.execute_async("periodic").unwrap();
        server.send("1000 a");
        wait_for(&out, "the timer at the periodic watermark", |v| {
            has(v, &timer("a", 999, 999))
        });
        server.close();
        job.wait().unwrap();
    }
}

#[test]
fn a_punctuated_generator_emits_without_periodic_emission() {
    let mut server = LineServer::start();
    let env = StreamEnv::new();
    env.set_config("pipeline.auto-watermark-interval", "0")
        .unwrap();
    let out = socket_job(
        &env,
        &server,
        WatermarkStrategy::for_generator(Punctuated),
        vec![-1, 0],
    );
    let job = env.execute_async("punctuated").unwrap();
    server.send("1000 a");
    wait_for(&out, "the timer at the punctuated watermark", |v| {
        has(v, &timer("a", 999, 999))
    });
    server.send("2000 b");
    wait_for(&out, "the next punctuated watermark", |v| {
        has(v, &timer("a", 1000, 1999)) && has(v, &timer("b", 1999, 1999))
    });
    server.close();
    job.wait().unwrap();
    assert_eq!(
        sorted(out.take()),
        sorted(vec![
            rec("a", 1000, MIN_WATERMARK),
            timer("a", 999, 999),
            rec("b", 2000, 999),
            timer("a", 1000, 1999),
            timer("b", 1999, 1999),
            timer("b", 2000, MAX_WATERMARK),
        ])
    );
}

#[test]
fn an_invalid_auto_watermark_interval_is_a_clear_error() {
    let env = StreamEnv::new();
    let e = env
        .set_config("pipeline.auto-watermark-interval", "soon")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'pipeline.auto-watermark-interval'") && !e.contains('\n'),
        "{e}"
    );
}

/// Writes `name` with one line `<ts> k<i % keys>` per timestamp.
fn write_file(dir: &Path, name: &str, ts: impl Iterator<Item = i64>, keys: i64) -> usize {
    let mut text = String::new();
    let mut n = 0;
    for (i, t) in ts.enumerate() {
        text.push_str(&format!("{t} k{}\n", i as i64 % keys));
        n += 1;
    }
    std::fs::write(dir.join(name), text).unwrap();
    n
}

/// The files of `dir` with per-file watermarks (bound 100 ms), paced so that periodic
/// watermarks (every 20 ms) are emitted while they are read; every record registers a
/// timer at its timestamp.
fn files_job(env: &StreamEnv, dir: &Path) -> CollectHandle<Seen> {
    files_job_with_idleness(env, dir, None)
}

/// [`files_job`] with an idleness timeout.
fn files_job_with_idleness(
    env: &StreamEnv,
    dir: &Path,
    idleness: Option<Duration>,
) -> CollectHandle<Seen> {
    env.set_config("pipeline.auto-watermark-interval", "20 ms")
        .unwrap();
    let mut strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100))
        .with_timestamp_assigner(line_ts);
    if let Some(t) = idleness {
        strategy = strategy.with_idleness(t);
    }
    env.from_source(TextFileSource::new(dir), strategy, "files")
        .map(|l: String| {
            std::thread::sleep(Duration::from_micros(500));
            parse(l)
        })
        .key_by(|e: &(i64, String)| e.1.clone())
        .process(Probe { offsets: vec![0] })
        .collect()
}

/// No record arrived at or behind the watermark, and every record's timer fired once.
fn assert_none_late_and_all_fired(seen: &[Seen], records: usize) {
    let recs: Vec<_> = seen.iter().filter(|s| s.0 == "rec").collect();
    assert_eq!(recs.len(), records);
    let late: Vec<_> = recs.iter().filter(|s| s.2 <= s.3).collect();
    assert!(
        late.is_empty(),
        "{} late records, e.g. {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
    let mut timers: Vec<(String, i64)> = seen
        .iter()
        .filter(|s| s.0 == "timer")
        .map(|s| (s.1.clone(), s.2))
        .collect();
    timers.sort();
    let mut want: Vec<(String, i64)> = recs.iter().map(|s| (s.1.clone(), s.2)).collect();
    want.sort();
    want.dedup();
    assert_eq!(timers, want, "every timer fired exactly once");
    for s in seen.iter().filter(|s| s.0 == "timer") {
        assert!(
            s.3 >= s.2,
            "a timer fired before the watermark reached it: {s:?}"
        );
    }
}

#[test]
fn a_file_far_ahead_does_not_make_records_of_another_file_late() {
    let dir = tempfile::tempdir().unwrap();
    // Read in name order by one subtask: the file far ahead first.
    let a = write_file(
        dir.path(),
        "a-ahead.txt",
        (0..400).map(|i| 1_000_000 + i * 10),
        5,
    );
    let b = write_file(dir.path(), "b-behind.txt", (0..400).map(|i| i * 10), 5);
    // A file not read yet is not idle either: a short idleness timeout changes nothing.
    for idleness in [None, Some(Duration::from_millis(20))] {
        let env = StreamEnv::new();
        let out = files_job_with_idleness(&env, dir.path(), idleness);
        env.execute("ahead").unwrap();
        assert_none_late_and_all_fired(&out.take(), a + b);
    }
}

#[test]
fn a_finished_file_no_longer_holds_back_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    // A short early file, then a long later one: once the early file is done, the later
    // file's watermark alone decides, so its timers fire while it is still being read.
    let a = write_file(dir.path(), "a-early.txt", (0..10).map(|i| i * 10), 3);
    let b = write_file(
        dir.path(),
        "b-later.txt",
        (0..1000).map(|i| 100_000 + i * 10),
        3,
    );
    let env = StreamEnv::new();
    let out = files_job(&env, dir.path());
    env.execute("finished file").unwrap();
    let seen = out.take();
    assert_none_late_and_all_fired(&seen, a + b);
    let early = seen
        .iter()
        .filter(|s| s.0 == "timer" && s.2 >= 100_000 && s.3 < MAX_WATERMARK)
        .count();
    assert!(
        early > 0,
        "no timer of the later file fired before the end of the input"
    );
}

/// At parallelism `p`, subtask `i` reads file `i`: one far ahead of the others. Records of
/// every file reach every keyed subtask, which must combine the sources' watermarks as their
/// minimum: none of the records behind is late, and timers still fire while the input runs.
fn minimum_over_channels(p: u32, files: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut n = write_file(dir.path(), "f0", (0..600).map(|i| 5_000_000 + i * 10), 16);
    for f in 1..files {
        let base = f as i64 * 1000;
        n += write_file(
            dir.path(),
            &format!("f{f}"),
            (0..600).map(|i| base + i * 10),
            16,
        );
    }
    let env = StreamEnv::new();
    env.set_parallelism(p);
    let out = files_job(&env, dir.path());
    env.execute("channels").unwrap();
    let seen = out.take();
    assert_none_late_and_all_fired(&seen, n);
    let early = seen
        .iter()
        .filter(|s| s.0 == "timer" && s.3 < MAX_WATERMARK)
        .count();
    assert!(
        early > 0,
        "p={p}: no timer fired before the end of the input"
    );
}

#[test]
fn watermark_is_the_minimum_over_parallel_channels_at_parallelism_2() {
    minimum_over_channels(2, 2);
}

#[test]
fn watermark_is_the_minimum_over_parallel_channels_at_parallelism_3() {
    minimum_over_channels(3, 3);
}

#[test]
fn a_source_subtask_without_files_does_not_hold_back_the_watermark() {
    // Parallelism 3, two files: the third subtask has nothing to read and is done at once.
    minimum_over_channels(3, 2);
}

/// A source of fixed lines per subtask that stays open without data until `open` is
/// cleared: subtask `i` emits `lines[i]`, then waits. Its position is the number of lines
/// emitted.
#[derive(Clone)]
struct Gated {
    lines: Arc<Vec<Vec<String>>>,
    open: Arc<AtomicBool>,
}

struct GatedReader {
    lines: Vec<String>,
    next: usize,
    open: Arc<AtomicBool>,
}

impl Source<String> for Gated {
    fn name(&self) -> String {
        "Gated".into()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<String>>> {
        Ok(Box::new(GatedReader {
            lines: self
                .lines
                .get(ctx.subtask as usize)
                .cloned()
                .unwrap_or_default(),
            next: 0,
            open: Arc::clone(&self.open),
        }))
    }
}

impl SourceReader<String> for GatedReader {
    fn poll_next(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourceStatus> {
        let end = (self.next + max).min(self.lines.len());
        out.extend_from_slice(&self.lines[self.next..end]);
        self.next = end;
        if !out.is_empty() {
            return Ok(SourceStatus::Ready);
        }
        if self.open.load(Ordering::SeqCst) {
            Ok(SourceStatus::Idle)
        } else {
            Ok(SourceStatus::Finished)
        }
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok((self.next as u64).to_le_bytes().to_vec())
    }
}

/// Parallelism 2: subtask 0 has records 1000..=10000 (every 1000 ms), subtask 1 none and
/// stays open. Returns the output and the gate that ends both.
fn one_subtask_silent(
    idleness: Option<Duration>,
) -> (CollectHandle<Seen>, Arc<AtomicBool>, JobClient) {
    let lines: Vec<String> = (1..=10)
        .map(|i| format!("{} k{}", i * 1000, i % 3))
        .collect();
    let open = Arc::new(AtomicBool::new(true));
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.set_config("pipeline.auto-watermark-interval", "20 ms")
        .unwrap();
    let mut strategy =
        WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(line_ts);
    if let Some(t) = idleness {
        strategy = strategy.with_idleness(t);
    }
    let out = env
        .from_source(
            Gated {
                lines: Arc::new(vec![lines, Vec::new()]),
                open: Arc::clone(&open),
            },
            strategy,
            "gated",
        )
        .map(parse)
        .key_by(|e: &(i64, String)| e.1.clone())
        .process(Probe { offsets: vec![0] })
        .collect();
    let job = env.execute_async("silent subtask").unwrap();
    (out, open, job)
}

fn timers_before_end(v: &[Seen]) -> Vec<i64> {
    let mut t: Vec<i64> = v
        .iter()
        .filter(|s| s.0 == "timer" && s.3 < MAX_WATERMARK)
        .map(|s| s.2)
        .collect();
    t.sort();
    t
}

#[test]
fn an_idle_source_subtask_does_not_hold_back_timers() {
    let (out, open, job) = one_subtask_silent(Some(Duration::from_millis(100)));
    // Subtask 1 is marked idle after 100 ms without records: subtask 0's watermark (9999)
    // alone decides while the job still runs.
    wait_for(&out, "the timers up to the watermark", |v| {
        timers_before_end(v) == (1..=9).map(|i| i * 1000).collect::<Vec<_>>()
    });
    open.store(false, Ordering::SeqCst);
    job.wait().unwrap();
    let seen = out.take();
    assert!(fired(&seen, &format!("k{}", 10 % 3), 10_000));
    assert_eq!(seen.iter().filter(|s| s.0 == "timer").count(), 10);
}

#[test]
fn without_idleness_a_silent_source_subtask_holds_back_timers() {
    let (out, open, job) = one_subtask_silent(None);
    wait_for(&out, "every record", |v| {
        v.iter().filter(|s| s.0 == "rec").count() == 10
    });
    stays_false(
        &out,
        Duration::from_millis(1000),
        "a timer fired while a subtask without records held the watermark at its start",
        |v| !timers_before_end(v).is_empty(),
    );
    open.store(false, Ordering::SeqCst);
    job.wait().unwrap();
    // Once the silent subtask ends, the other one alone decides: every timer fires.
    let seen = out.take();
    assert_eq!(seen.iter().filter(|s| s.0 == "timer").count(), 10);
}

#[test]
fn an_idle_socket_source_holds_the_watermark_where_it_was() {
    // The socket source runs as one subtask of a parallelism-2 job. When it goes idle the
    // keyed operator has no active input: its watermark stays (Flink), it does not jump to
    // the end of time, and later records are not late.
    let mut server = LineServer::start();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.set_config("pipeline.auto-watermark-interval", "20 ms")
        .unwrap();
    let out = socket_job(
        &env,
        &server,
        WatermarkStrategy::for_monotonous_timestamps().with_idleness(Duration::from_millis(100)),
        vec![10, 1_000_000],
    );
    let job = env.execute_async("idle socket").unwrap();
    server.send("1000 a");
    server.send("5000 b");
    wait_for(&out, "a's first timer", |v| has(v, &timer("a", 1010, 4999)));
    stays_false(
        &out,
        Duration::from_millis(1000),
        "the idle socket moved the watermark to the end of time",
        |v| v.iter().any(|s| s.0 == "timer" && s.2 > 5010),
    );
    server.send("6000 c");
    wait_for(&out, "b's first timer", |v| has(v, &timer("b", 5010, 5999)));
    server.close();
    job.wait().unwrap();
    let seen = out.take();
    assert!(has(&seen, &rec("c", 6000, 4999)), "{seen:?}");
    let mut late_timers: Vec<_> = seen
        .iter()
        .filter(|s| s.0 == "timer" && s.3 == MAX_WATERMARK)
        .map(|s| (s.1.clone(), s.2))
        .collect();
    late_timers.sort();
    assert_eq!(
        late_timers,
        vec![
            ("a".to_string(), 1_001_000),
            ("b".to_string(), 1_005_000),
            ("c".to_string(), 6010),
            ("c".to_string(), 1_006_000)
        ]
    );
}

#[test]
fn the_end_of_a_bounded_input_fires_every_pending_timer() {
    // Timers far beyond any watermark the input reaches, with watermarks per split and per
    // subtask, at parallelism 1 and 3: all fire once, at the end of time.
    for p in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        for f in 0..3 {
            n += write_file(dir.path(), &format!("f{f}"), (0..50).map(|i| i * 7 + f), 4);
        }
        let env = StreamEnv::new();
        env.set_parallelism(p);
        let strategy = || {
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(5))
                .with_timestamp_assigner(line_ts)
        };
        let offsets = vec![1_000_000_000];
        let per_split = env
            .from_source(TextFileSource::new(dir.path()), strategy(), "files")
            .map(parse)
            .key_by(|e: &(i64, String)| e.1.clone())
            .process(Probe {
                offsets: offsets.clone(),
            })
            .collect();
        let per_subtask = env
            .read_text_file(dir.path())
            .assign_timestamps_and_watermarks(strategy())
            .map(parse)
            .key_by(|e: &(i64, String)| e.1.clone())
            .process(Probe { offsets })
            .collect();
        env.execute("end of input").unwrap();
        for (what, out) in [("per split", per_split), ("per subtask", per_subtask)] {
            let seen = out.take();
            let mut timers: Vec<(String, i64, i64)> = seen
                .iter()
                .filter(|s| s.0 == "timer")
                .map(|s| (s.1.clone(), s.2, s.3))
                .collect();
            timers.sort();
            let mut want: Vec<(String, i64, i64)> = seen
                .iter()
                .filter(|s| s.0 == "rec")
                .map(|s| (s.1.clone(), s.2 + 1_000_000_000, MAX_WATERMARK))
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(want.len(), n, "p={p} {what}: distinct key and timestamp");
            assert_eq!(timers, want, "p={p} {what}");
        }
    }
}
