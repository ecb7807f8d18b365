//! Exactly-once word count: counts the words of a directory of text files (replayable:
//! file offsets are checkpointed) and writes every updated `(word,count)` through the
//! exactly-once [`FileSink`]. Whatever fails — a worker killed, a task panicking, checkpoint
//! storage full — the committed part files hold each `(word,n)` line exactly once, for
//! `n = 1..=count`.
//!
//! ```text
//! floe run target/release/exactly_once_word_count --input DIR --output DIR \
//!     [--part-size BYTES] [--fail-when-exists PATH] [--words-per-second N]
//! ```
//!
//! Checkpointing, restart strategy and storage come from the configuration (`floe.yaml`,
//! `-D`); without an interval it checkpoints every second. `--fail-when-exists PATH` is the
//! failure hook `floe-chaos` uses: the task that first sees PATH deletes it and panics.
//! `--words-per-second N` paces every subtask to about N words a second, so that a small
//! input runs long enough to be operated on (savepoints, cancels, kills) while it runs.

use floe::connectors::file_sink::FileSink;
use floe::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Panics once per appearance of a trigger file (a failure in user code at a random time),
/// and paces the words when asked to.
#[derive(Clone)]
struct Hooks {
    fail_when_exists: Option<PathBuf>,
    words_per_second: Option<u64>,
    seen: u64,
    started: Option<Instant>,
}

impl MapFunction<Str, Str> for Hooks {
    #[inline]
    fn map(&mut self, w: Str) -> Result<Str> {
        self.seen += 1;
        // Once per 1024 words keeps the hooks off the profile.
        if self.seen.is_multiple_of(1024) {
            if let Some(p) = &self.fail_when_exists {
                if std::fs::remove_file(p).is_ok() {
                    panic!("injected failure: {} appeared", p.display());
                }
            }
            if let Some(rate) = self.words_per_second {
                let started = *self.started.get_or_insert_with(Instant::now);
                let due = Duration::from_secs_f64(self.seen as f64 / rate.max(1) as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        Ok(w)
    }
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args()?;
    let params = env.params();
    let input = params.required("input")?.to_string();
    let output = params.required("output")?.to_string();
    let part_size: Option<u64> = params.get_parsed("part-size")?;
    let hooks = Hooks {
        fail_when_exists: params.get("fail-when-exists").map(PathBuf::from),
        words_per_second: params.get_parsed("words-per-second")?,
        seen: 0,
        started: None,
    };
    if env
        .configuration()
        .get_duration("execution.checkpointing.interval")?
        .is_none()
    {
        env.enable_checkpointing(Duration::from_secs(1));
    }
    let mut sink = FileSink::for_row_format(&output);
    if let Some(bytes) = part_size {
        sink = sink.with_max_part_size(bytes);
    }
    env.read_text_file(&input)
        .uid("files")
        .flat_map(|line: String, out: &mut Collector<Str>| {
            line.split_ascii_whitespace()
                .for_each(|w| out.collect(Str::from(w)))
        })
        .map_function(hooks)
        .map(|w| (w, 1u64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("counts")
        .sink_exactly_once(sink)
        .uid("counts-out");
    env.execute("exactly-once word count")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
