//! Windowed word count in event time: lines `<epoch-millis> <word>` from a socket or from a
//! directory of text files, bounded-out-of-orderness watermarks, tumbling event-time windows
//! with allowed lateness, one `(word,<window-start>,<window-end>,<count>)` per firing, and
//! records later than the allowed lateness on a side output printed as
//! `late> <epoch-millis> <word>`.
//!
//! ```text
//! window_word_count (--host HOST --port PORT | --input DIR) [--output DIR]
//!     [--out-of-orderness-ms 2000] [--window-ms 10000] [--lateness-ms 0] [--lines-per-second N]
//!     [--fail-when-exists PATH]
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
//! The windows are Flink's `TumblingEventTimeWindows` with the `EventTimeTrigger` and an
//! incremental count (`aggregate(AggregateFunction, ProcessWindowFunction)`): a window
//! `[start, end)` fires when the watermark reaches `end - 1`; a record for a window that
//! already fired but whose `end - 1 + lateness` the watermark has not reached yet fires it
//! again with the updated count (a late firing); a record whose window is past its lateness
//! is late and goes to the side output. Checkpointing, restart strategy and storage come
//! from the configuration (`floe.yaml`, `-D`); without an interval it checkpoints every
//! second. `--lines-per-second N` paces every subtask to about N lines a second, so that a
//! small input runs long enough for periodic watermarks (and failures) to happen while it runs.
//! `--fail-when-exists PATH` is the failure hook `floe-chaos` uses: the task that first
//! sees PATH deletes it and panics.

use floe::api::window::{
    AggregateFunction, ProcessWindowContext, ProcessWindowFunction, TimeWindow,
    TumblingEventTimeWindows,
};
use floe::connectors::file::TextFileSource;
use floe::connectors::file_sink::FileSink;
use floe::connectors::socket::SocketTextSource;
use floe::prelude::*;
use std::path::PathBuf;
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

/// [`parse`] as a map function, with the failure hook `--fail-when-exists PATH`: the task
/// that first sees PATH deletes it and panics (`floe-chaos` uses it for its `panic` fault).
#[derive(Clone)]
struct Parse {
    fail_when_exists: Option<PathBuf>,
    seen: u64,
}

impl MapFunction<String, (i64, Str)> for Parse {
    #[inline]
    fn map(&mut self, line: String) -> Result<(i64, Str)> {
        self.seen += 1;
        // Once per 1024 records keeps the hook off the profile.
        if self.seen.is_multiple_of(1024) {
            if let Some(p) = &self.fail_when_exists {
                if std::fs::remove_file(p).is_ok() {
                    panic!("injected failure: {} appeared", p.display());
                }
            }
        }
        parse(line)
    }
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

/// Counts the records of a window incrementally: the window keeps one `u64`, not its
/// records.
#[derive(Clone)]
struct Count;

impl AggregateFunction<(i64, Str), u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, _: (i64, Str), n: &mut u64) {
        *n += 1;
    }
    fn get_result(&self, n: &u64) -> u64 {
        *n
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// Puts the word and the window's bounds next to the count on every firing.
#[derive(Clone)]
struct WithWindow;

impl ProcessWindowFunction<u64, WindowCount, Str, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        word: &Str,
        ctx: &mut ProcessWindowContext<'_, '_, Str, TimeWindow, WindowCount>,
        counts: &[u64],
        out: &mut Collector<WindowCount>,
    ) -> Result<()> {
        let w = ctx.window();
        for &n in counts {
            out.collect((word.clone(), w.start, w.end, n));
        }
        Ok(())
    }
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args_with_usage(
        "(--host HOST --port PORT | --input DIR) [--output DIR] [--out-of-orderness-ms 2000] [--window-ms 10000] [--lateness-ms 0] [--lines-per-second N] [--fail-when-exists PATH]\nlines \"<epoch-millis> <word>\"; counts per word in tumbling event-time windows",
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
        .map_function(Parse {
            fail_when_exists: params.get("fail-when-exists").map(PathBuf::from),
            seen: 0,
        })
        .key_by(|r: &(i64, Str)| r.1.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            size as u64,
        )))
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .side_output_late_data(&late)
        .aggregate_with(Count, WithWindow)
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
