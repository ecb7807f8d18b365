//! Counts the words of a directory of text files (replayable: file offsets are
//! checkpointed) and prints every updated `(word,count)`. Used to show exact recovery from
//! worker crashes and hangs: `--hang-on WORD` makes the first attempt's task hang forever in
//! user code at that word (a stuck task), which the job manager must detect and replace.
//!
//! ```text
//! file_word_count --input DIR [--checkpoint-dir DIR] [--interval-ms 100] [--line-delay-us 0] [--hang-on WORD]
//! ```

use floe::prelude::*;
use std::process::ExitCode;
use std::time::Duration;

/// Hangs forever on `word` in the first attempt: a task stuck in user code.
#[derive(Clone)]
struct HangOnce {
    word: Option<String>,
    first_attempt: bool,
}

impl MapFunction<Str, Str> for HangOnce {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.first_attempt = ctx.task_info().attempt_number == 0;
        Ok(())
    }
    fn map(&mut self, w: Str) -> Result<Str> {
        if self.first_attempt && self.word.as_deref() == Some(w.as_str()) {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(w)
    }
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args()?;
    let params = env.params();
    let input = params.required("input")?.to_string();
    let interval: u64 = params.get_parsed("interval-ms")?.unwrap_or(100);
    let delay: u64 = params.get_parsed("line-delay-us")?.unwrap_or(0);
    let hang = HangOnce {
        word: params.get("hang-on").map(String::from),
        first_attempt: false,
    };
    env.enable_checkpointing(Duration::from_millis(interval));
    env.set_restart_strategy(RestartStrategy::fixed_delay(10, Duration::from_millis(200)));
    if let Some(dir) = params.get("checkpoint-dir") {
        env.set_checkpoint_storage(dir);
    }
    env.read_text_file(&input)
        .uid("files")
        .map(move |line: String| {
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            line
        })
        .flat_map(|line: String, out: &mut Collector<Str>| {
            line.split(' ')
                .filter(|w| !w.is_empty())
                .for_each(|w| out.collect(Str::from(w)))
        })
        .map_function(hang)
        .map(|w| (w, 1u64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("counts")
        .print();
    env.execute("file word count")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
