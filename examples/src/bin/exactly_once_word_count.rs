//! Exactly-once word count: counts the words of a directory of text files (replayable:
//! file offsets are checkpointed) and writes every updated `(word,count)` through the
//! exactly-once [`FileSink`]. Whatever fails — a worker killed, a task panicking, checkpoint
//! storage full — the committed part files hold each `(word,n)` line exactly once, for
//! `n = 1..=count`.
//!
//! ```text
//! floe run target/release/exactly_once_word_count --input DIR --output DIR \
//!     [--part-size BYTES] [--fail-when-exists PATH]
//! ```
//!
//! Checkpointing, restart strategy and storage come from the configuration (`floe.yaml`,
//! `-D`); without an interval it checkpoints every second. `--fail-when-exists PATH` is the
//! failure hook `floe-chaos` uses: the task that first sees PATH deletes it and panics.

use floe::connectors::file_sink::FileSink;
use floe::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Panics once per appearance of a trigger file: a failure in user code at a random time.
#[derive(Clone)]
struct FailWhenExists {
    path: Option<PathBuf>,
    seen: u32,
}

impl MapFunction<Str, Str> for FailWhenExists {
    #[inline]
    fn map(&mut self, w: Str) -> Result<Str> {
        if let Some(p) = &self.path {
            self.seen += 1;
            // A stat per 1024 words keeps the hook off the profile.
            if self.seen.is_multiple_of(1024) && std::fs::remove_file(p).is_ok() {
                panic!("injected failure: {} appeared", p.display());
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
    let fail = FailWhenExists {
        path: params.get("fail-when-exists").map(PathBuf::from),
        seen: 0,
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
        .map_function(fail)
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
