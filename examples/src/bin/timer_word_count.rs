//! Event-time word count with timers: lines `<epoch-millis> <word>` from a directory of text
//! files (one watermark generator per file, bounded out-of-orderness), counted per word and
//! tumbling event-time bucket by a [`KeyedProcessFunction`] that keeps one count per bucket
//! in a `MapState` and fires an event-time timer at the bucket's end — the result a tumbling
//! event-time window with a count would give, `(word,<start>,<end>,<count>)` per firing,
//! written through the exactly-once [`FileSink`].
//!
//! ```text
//! floe run target/release/timer_word_count --input DIR --output DIR \
//!     [--window-ms 10000] [--lateness-ms 0] [--out-of-orderness-ms 2000] \
//!     [--fail-when-exists PATH]
//! ```
//!
//! As Flink's window operator with an `EventTimeTrigger`: a bucket fires once when the
//! watermark passes its end; a record for a bucket that already fired but is within the
//! allowed lateness updates the count and fires it again at once; a record later than that
//! is printed as `late> <epoch-millis> <word>` and not counted; a bucket's count is dropped
//! once the watermark passes its end plus the lateness. A line that does not parse fails
//! the task with an error naming the line. `--fail-when-exists PATH` is the failure hook
//! `floe-chaos` uses: the task that first sees PATH deletes it and panics.

use floe::connectors::file::TextFileSource;
use floe::connectors::file_sink::FileSink;
use floe::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The word's count per bucket start; a timer at each bucket's last millisecond fires it,
/// one at its last millisecond plus the lateness drops it.
#[derive(Clone)]
struct BucketCount {
    size: i64,
    lateness: i64,
    counts: MapState<i64, u64>,
    late: OutputTag<(i64, Str)>,
}

/// `(word, start, end, count)`.
type Fired = (Str, i64, i64, u64);

impl BucketCount {
    /// The start of the bucket `ts` falls in (buckets are aligned to the epoch, as
    /// `TumblingEventTimeWindows` without offset).
    fn start(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.size)
    }
}

impl KeyedProcessFunction<Str, Str, Fired> for BucketCount {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.counts = MapStateDescriptor::new("bucket-counts").register(ctx)?;
        Ok(())
    }

    fn process_element(
        &mut self,
        word: Str,
        ctx: &mut Context<'_, '_, Str, Fired>,
        out: &mut Collector<Fired>,
    ) -> Result<()> {
        let Some(ts) = ctx.timestamp() else {
            bail!("record '{word}' has no timestamp");
        };
        let start = self.start(ts);
        let max_timestamp = start + self.size - 1;
        let watermark = ctx.timer_service().current_watermark();
        if max_timestamp.saturating_add(self.lateness) <= watermark {
            return ctx.output(&self.late, (ts, word));
        }
        let count = self.counts.get(ctx, &start)?.unwrap_or(0) + 1;
        self.counts.put(ctx, start, count)?;
        if max_timestamp <= watermark {
            // Fired already, within the lateness: a late firing with the updated count.
            out.collect((word, start, start + self.size, count));
            return Ok(());
        }
        let timers = &mut ctx.timer_service();
        timers.register_event_time_timer(max_timestamp)?;
        if self.lateness > 0 {
            timers.register_event_time_timer(max_timestamp.saturating_add(self.lateness))?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut Context<'_, '_, Str, Fired>,
        out: &mut Collector<Fired>,
    ) -> Result<()> {
        // One timer may be a bucket's firing and an older bucket's cleanup at once (when the
        // lateness is a multiple of the size).
        let fires = ts + 1 - self.size;
        if fires.rem_euclid(self.size) == 0 {
            if let Some(count) = self.counts.get(ctx, &fires)? {
                let word = ctx.current_key().clone();
                out.collect((word, fires, fires + self.size, count));
            }
        }
        let cleans = fires - self.lateness;
        if cleans.rem_euclid(self.size) == 0 {
            self.counts.remove(ctx, &cleans)?;
        }
        Ok(())
    }
}

/// Parses `<epoch-millis> <word>` into the word (the timestamp assigner read the time), and
/// panics once per appearance of the failure hook's file.
#[derive(Clone)]
struct Parse {
    fail_when_exists: Option<PathBuf>,
    seen: u64,
}

/// The timestamp of a line, `None` when it has none.
fn timestamp(line: &str) -> Option<i64> {
    line.split_once(' ')?.0.parse().ok()
}

impl MapFunction<String, Str> for Parse {
    #[inline]
    fn map(&mut self, line: String) -> Result<Str> {
        self.seen += 1;
        // Once per 1024 records keeps the hook off the profile.
        if self.seen.is_multiple_of(1024) {
            if let Some(p) = &self.fail_when_exists {
                if std::fs::remove_file(p).is_ok() {
                    panic!("injected failure: {} appeared", p.display());
                }
            }
        }
        match (timestamp(&line), line.split_once(' ')) {
            (Some(_), Some((_, word))) if !word.is_empty() && !word.contains(' ') => {
                Ok(Str::from(word))
            }
            _ => bail!("invalid record '{line}': expected \"<epoch-millis> <word>\""),
        }
    }
}

/// A positive number of milliseconds from `--name`, or `default`.
fn millis(params: &JobParams, name: &str, default: i64) -> Result<i64> {
    let v: i64 = params.get_parsed(name)?.unwrap_or(default);
    if v < 0 || (v == 0 && name == "window-ms") {
        bail!(
            "--{name} {v}: must be {}",
            if name == "window-ms" {
                "positive"
            } else {
                "zero or positive"
            }
        );
    }
    Ok(v)
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args_with_usage(
        "--input DIR --output DIR [--window-ms 10000] [--lateness-ms 0] [--out-of-orderness-ms 2000] [--fail-when-exists PATH]\ncounts lines \"<epoch-millis> <word>\" per word and tumbling event-time bucket",
    )?;
    let params = env.params();
    let input = params.required("input")?.to_string();
    let output = params.required("output")?.to_string();
    let size = millis(&params, "window-ms", 10_000)?;
    let lateness = millis(&params, "lateness-ms", 0)?;
    let bound = millis(&params, "out-of-orderness-ms", 2_000)?;
    let parse = Parse {
        fail_when_exists: params.get("fail-when-exists").map(PathBuf::from),
        seen: 0,
    };
    if env
        .configuration()
        .get_duration("execution.checkpointing.interval")?
        .is_none()
    {
        env.enable_checkpointing(Duration::from_secs(1));
    }
    let strategy =
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(bound as u64))
            .with_timestamp_assigner(|line: &String, _| timestamp(line).unwrap_or(NO_TIMESTAMP));
    let late = OutputTag::<(i64, Str)>::new("late");
    let counts = env
        .from_source(TextFileSource::new(&input), strategy, "events")
        .uid("files")
        .map_function(parse)
        .key_by(|w: &Str| w.clone())
        .process(BucketCount {
            size,
            lateness,
            counts: MapState::default(),
            late: late.clone(),
        })
        .uid("bucket-counts");
    counts
        .get_side_output(&late)
        .map(|(ts, w): (i64, Str)| format!("late> {ts} {w}"))
        .print();
    counts
        .sink_exactly_once(FileSink::for_row_format(&output))
        .uid("counts-out");
    env.execute("timer word count")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
