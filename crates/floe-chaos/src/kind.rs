//! The jobs the harness runs: the exactly-once word count, and two event-time jobs with
//! the same answer (tumbling-window counts per word) over out-of-order input.

use crate::input::{self, EventTime};
use crate::verify::Answer;
use std::path::Path;

/// The job under test (`--kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum JobKind {
    /// `exactly_once_word_count`: every updated `(word,count)`; the answer is `(word,n)` for
    /// `n = 1..=count`.
    WordCount,
    /// `window_word_count`: tumbling event-time windows (Flink's window operator); the answer
    /// is one `(word,<start>,<end>,<count>)` per word and window.
    Window,
    /// `timer_word_count`: the same counts per tumbling bucket from a keyed process function
    /// with event-time timers; the same answer as `window`.
    Timers,
}

impl JobKind {
    /// The job binary's name (next to the harness by default).
    pub fn binary(self) -> &'static str {
        match self {
            JobKind::WordCount => "exactly_once_word_count",
            JobKind::Window => "window_word_count",
            JobKind::Timers => "timer_word_count",
        }
    }

    /// The name in the summary line.
    pub fn key(self) -> &'static str {
        match self {
            JobKind::WordCount => "word-count",
            JobKind::Window => "window",
            JobKind::Timers => "timers",
        }
    }

    /// Records (words, or event lines) per round unless `--words-per-round` says otherwise:
    /// about a second of work for the release build's job, process start included.
    pub fn default_records(self) -> u64 {
        match self {
            JobKind::WordCount => 6_000_000,
            JobKind::Window | JobKind::Timers => 2_000_000,
        }
    }

    /// True for the event-time jobs.
    pub fn is_event_time(self) -> bool {
        self != JobKind::WordCount
    }

    /// The job's arguments besides `--input`, `--output` and `--fail-when-exists`.
    pub fn job_args(self, time: EventTime, lateness: i64) -> Vec<String> {
        if !self.is_event_time() {
            return Vec::new();
        }
        vec![
            "--window-ms".into(),
            time.window.to_string(),
            "--out-of-orderness-ms".into(),
            time.bound.to_string(),
            "--lateness-ms".into(),
            lateness.to_string(),
        ]
    }

    /// Writes a round's input (`records` over `files` files, a vocabulary of `vocabulary`
    /// words named `<prefix>0000`, ...) into `dir` from `seed` and returns its answer.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        self,
        dir: &Path,
        seed: u64,
        records: u64,
        files: u32,
        vocabulary: usize,
        prefix: &str,
        time: EventTime,
    ) -> anyhow::Result<Answer> {
        Ok(match self {
            JobKind::WordCount => Answer::Counts(input::generate(
                dir, seed, records, files, vocabulary, prefix,
            )?),
            JobKind::Window | JobKind::Timers => Answer::Windows(input::generate_events(
                dir, seed, records, files, vocabulary, prefix, time,
            )?),
        })
    }
}
