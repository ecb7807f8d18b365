//! Windowed word count in event time: lines `<epoch-millis> <word>` from a socket or from a
//! directory of text files, bounded-out-of-orderness watermarks, tumbling event-time windows
//! with allowed lateness, one `(word,<window-start>,<window-end>,<count>)` per firing, and
//! records later than the allowed lateness on a side output printed as
//! `late> <epoch-millis> <word>`.
//!
//! ```text
//! window_word_count (--host HOST --port PORT | --input DIR) [--output DIR]
//!     [--out-of-orderness-ms 2000] [--window-ms 10000] [--lateness-ms 0] [--lines-per-second N]
//! ```
//!
//! With `--input DIR` every file gets its own watermark generator (a file not read yet
//! holds the watermark back, so a file far ahead in time never makes another file's records
//! late) and the job ends when every file is read: the watermark moves to the end of time
//! and every window still open fires. `--output DIR` writes the window results through the
//! exactly-once [`FileSink`] instead of printing them: after a failure the committed part
//! files still hold each firing exactly once. A line that does not parse fails the task
//! with an error naming the line.
//!
//! Windows follow Flink's `TumblingEventTimeWindows` with the `EventTimeTrigger`: a window
//! `[start, end)` fires when the watermark reaches `end - 1`; a record for a window that
//! already fired but whose `end - 1 + lateness` the watermark has not reached yet fires it
//! again with the updated count (a late firing); a record whose window is past its lateness
//! is late and goes to the side output. Checkpointing, restart strategy and storage come
//! from the configuration (`floe.yaml`, `-D`); without an interval it checkpoints every
//! second. `--lines-per-second N` paces every subtask to about N lines a second, so that a
//! small input runs long enough for periodic watermarks (and failures) to happen while it runs.

use floe::connectors::file::TextFileSource;
use floe::connectors::file_sink::FileSink;
use floe::connectors::socket::SocketTextSource;
use floe::prelude::*;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `(word, window start, window end, count)`: one window firing.
type WindowCount = (Str, i64, i64, u64);

/// Parses `<epoch-millis> <word>`; the error names the line.
fn parse(line: String) -> Result<(i64, Str)> {
    let bad =
        |why: &str| anyhow!("invalid record '{line}': {why} (expected \"<epoch-millis> <word>\")");
    let mut it = line.split_ascii_whitespace();
    let (Some(ts), Some(word), None) = (it.next(), it.next(), it.next()) else {
        return Err(bad("not two fields"));
    };
    let ts: i64 = ts
        .parse()
        .map_err(|_| bad(&format!("timestamp '{ts}' is not an integer")))?;
    Ok((ts, Str::from(word)))
}

/// The timestamp of a line for the watermark generator; a line that does not parse gets
/// none here and fails the task right after, in [`parse`].
fn line_timestamp(line: &str) -> i64 {
    line.split_ascii_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(NO_TIMESTAMP)
}

/// Paces lines to about `rate` a second (per subtask).
#[derive(Clone)]
struct Pace {
    rate: u64,
    seen: u64,
    started: Option<Instant>,
}

impl MapFunction<String, String> for Pace {
    fn map(&mut self, line: String) -> Result<String> {
        self.seen += 1;
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = Duration::from_secs_f64(self.seen as f64 / self.rate.max(1) as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
        Ok(line)
    }
}

/// Tumbling event-time windows of `size` ms with `lateness` ms of allowed lateness, counting
/// the records of each word per window (Flink's `WindowOperator` with `EventTimeTrigger`).
/// Per word: the count of every window not yet purged, a timer at each window's last
/// millisecond (the firing) and one at that plus the lateness (the purge).
#[derive(Clone)]
struct TumblingCount {
    size: i64,
    lateness: i64,
    late: OutputTag<(i64, Str)>,
    counts: MapState<i64, u64>,
}

impl TumblingCount {
    /// Flink's `TimeWindow.getWindowStartWithOffset` with offset 0 (also for negative times).
    fn start(&self, ts: i64) -> i64 {
        ts - (ts + self.size).rem_euclid(self.size)
    }
    fn fire(
        &self,
        ctx: &mut Context<'_, '_, Str, WindowCount>,
        out: &mut Collector<WindowCount>,
        start: i64,
    ) -> Result<()> {
        if let Some(n) = self.counts.get(ctx, &start)? {
            out.collect((ctx.current_key().clone(), start, start + self.size, n));
        }
        Ok(())
    }
}

impl KeyedProcessFunction<Str, (i64, Str), WindowCount> for TumblingCount {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.counts = MapStateDescriptor::new("window-counts").register(ctx)?;
        Ok(())
    }

    fn process_element(
        &mut self,
        value: (i64, Str),
        ctx: &mut Context<'_, '_, Str, WindowCount>,
        out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        let ts = value.0;
        let start = self.start(ts);
        let max_ts = start + self.size - 1;
        let wm = ctx.timer_service().current_watermark();
        if max_ts.saturating_add(self.lateness) <= wm {
            // The window was purged: the record is late.
            return ctx.output(&self.late, value);
        }
        let n = self.counts.get(ctx, &start)?.unwrap_or(0) + 1;
        self.counts.put(ctx, start, n)?;
        if max_ts <= wm {
            // Within the lateness, after the window fired: fire again with the new count.
            return self.fire(ctx, out, start);
        }
        ctx.timer_service().register_event_time_timer(max_ts)?;
        ctx.timer_service()
            .register_event_time_timer(max_ts.saturating_add(self.lateness))
    }

    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, Str, WindowCount>,
        out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        // `ts` is the last millisecond of the window that fires, the purge time of the one
        // whose lateness ends, or both.
        let firing = ts + 1 - self.size;
        if self.counts.contains(ctx, &firing)? {
            self.fire(ctx, out, firing)?;
        }
        let purged = ts.saturating_sub(self.lateness) + 1 - self.size;
        if self.counts.contains(ctx, &purged)? {
            self.counts.remove(ctx, &purged)?;
        }
        Ok(())
    }
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args_with_usage(
        "(--host HOST --port PORT | --input DIR) [--output DIR] [--out-of-orderness-ms 2000] [--window-ms 10000] [--lateness-ms 0] [--lines-per-second N]\nlines \"<epoch-millis> <word>\"; counts per word in tumbling event-time windows",
    )?;
    let params = env.params();
    let bound: u64 = params.get_parsed("out-of-orderness-ms")?.unwrap_or(2000);
    let size: i64 = params.get_parsed("window-ms")?.unwrap_or(10_000);
    let lateness: i64 = params.get_parsed("lateness-ms")?.unwrap_or(0);
    let rate: Option<u64> = params.get_parsed("lines-per-second")?;
    if size <= 0 {
        bail!("--window-ms must be positive, got {size}");
    }
    if lateness < 0 {
        bail!("--lateness-ms must not be negative, got {lateness}");
    }
    if env
        .configuration()
        .get_duration("execution.checkpointing.interval")?
        .is_none()
    {
        env.enable_checkpointing(Duration::from_secs(1));
    }
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(bound))
        .with_timestamp_assigner(|line: &String, _| line_timestamp(line));
    let lines = match (params.get("input"), params.get("port")) {
        (Some(dir), None) => env.from_source(TextFileSource::new(dir), strategy, "files"),
        (None, Some(_)) => {
            let host = params.get_or("host", "127.0.0.1").to_string();
            let port: u16 = params.required("port")?.parse().map_err(|_| {
                anyhow!(
                    "--port must be a port number, got '{}'",
                    params.get_or("port", "")
                )
            })?;
            env.from_source(SocketTextSource::new(host, port), strategy, "socket")
        }
        _ => bail!("give either --input DIR or --host HOST --port PORT"),
    };
    let mut lines = lines.uid("lines");
    if let Some(rate) = rate {
        lines = lines.map_function(Pace {
            rate,
            seen: 0,
            started: None,
        });
    }
    let late = OutputTag::<(i64, Str)>::new("late-data");
    let counts = lines
        .try_map(parse)
        .key_by(|r: &(i64, Str)| r.1.clone())
        .process(TumblingCount {
            size,
            lateness,
            late: late.clone(),
            counts: MapState::default(),
        })
        .uid("window-counts");
    counts
        .get_side_output(&late)
        .map(|(ts, word): (i64, Str)| format!("late> {ts} {word}"))
        .print();
    match params.get("output") {
        Some(dir) => {
            counts
                .sink_exactly_once(FileSink::for_row_format(dir))
                .uid("window-counts-out");
        }
        None => counts.print(),
    }
    env.execute("window word count")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
