//! A self-contained stateful job for a first run: counts the words of Flink's
//! `ThroughputWordCount` input (or of a text file), with exactly-once checkpoints every
//! second into a local directory, and prints `(word,count)` when a word's count reaches
//! `--print-at` (with 20M generated words each word occurs about 2,000 times).
//!
//! ```text
//! word_count [--words 20000000] [--print-at 2100] [--input FILE_OR_DIR] [--checkpoint-dir /tmp/floe-checkpoints]
//! ```

use floe::prelude::*;
use std::process::ExitCode;
use std::time::Duration;

fn job() -> Result<()> {
    let env = StreamEnv::from_args()?;
    let params = env.params();
    let dir = params
        .get_or("checkpoint-dir", "/tmp/floe-checkpoints")
        .to_string();
    env.enable_checkpointing(Duration::from_secs(1));
    env.set_checkpoint_storage(&dir);
    let print_at: u64 = params.get_parsed("print-at")?.unwrap_or(2100);
    let lines = match params.get("input") {
        Some(path) => env.read_text_file(path),
        None => env.generate_word_lines(params.get_parsed("words")?.unwrap_or(20_000_000)),
    };
    lines
        .uid("lines")
        .flat_map(|line: String, out: &mut Collector<Str>| {
            line.split(' ')
                .filter(|w| !w.is_empty())
                .for_each(|w| out.collect(Str::from(w)))
        })
        .map(|w| (w, 1u64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("counts")
        .filter(move |t| t.1 == print_at)
        .print();
    let r = env.execute("word count")?;
    eprintln!(
        "job {} {} in {:.2} s: {} checkpoints into {dir}, {} restarts",
        r.job_id,
        r.status,
        r.net_runtime.as_secs_f64(),
        r.checkpoints,
        r.restarts
    );
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
