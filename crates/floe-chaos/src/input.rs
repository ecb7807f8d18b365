//! The generated input of one round and its exact answer: words for the word count, or
//! `<epoch-millis> <word>` lines with out-of-order timestamps for the window jobs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::Path;

/// What the job must end with: the count of every word.
pub struct Expected {
    /// The vocabulary, `w0000`, `w0001`, ...
    pub words: Vec<String>,
    /// Occurrences of `words[i]` in the input.
    pub counts: Vec<u64>,
}

impl Expected {
    /// Total words in the input (= lines the job must commit).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds the answer of another job writing into the same directory (its vocabulary
    /// must be disjoint from this one's).
    pub fn merge(&mut self, other: Expected) {
        self.words.extend(other.words);
        self.counts.extend(other.counts);
    }
}

/// Writes `words` words over `files` text files into `dir` (lines of 1..=16 words, a
/// skewed vocabulary of `vocabulary` words, `<prefix>0000`, `<prefix>0001`, ...) from
/// `seed`, and returns the exact counts.
pub fn generate(
    dir: &Path,
    seed: u64,
    words: u64,
    files: u32,
    vocabulary: usize,
    prefix: &str,
) -> anyhow::Result<Expected> {
    std::fs::create_dir_all(dir)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab: Vec<String> = (0..vocabulary).map(|i| format!("{prefix}{i:04}")).collect();
    let mut counts = vec![0u64; vocabulary];
    let per_file = words.div_ceil(files as u64);
    let mut left = words;
    for f in 0..files {
        let mut out = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("input-{f:03}.txt")),
        )?);
        let mut in_file = per_file.min(left);
        left -= in_file;
        while in_file > 0 {
            let n = rng.random_range(1..=16u64).min(in_file);
            for i in 0..n {
                // Squaring a uniform draw skews the counts: a few hot words, a long tail.
                let u: f64 = rng.random();
                let w = ((u * u) * vocabulary as f64) as usize;
                let w = w.min(vocabulary - 1);
                counts[w] += 1;
                if i > 0 {
                    out.write_all(b" ")?;
                }
                out.write_all(vocab[w].as_bytes())?;
            }
            out.write_all(b"\n")?;
            in_file -= n;
        }
        out.flush()?;
    }
    Ok(Expected {
        words: vocab,
        counts,
    })
}

/// The event time of a window job's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTime {
    /// The size of the tumbling windows, in milliseconds.
    pub window: i64,
    /// The out-of-orderness bound, in milliseconds: no record is more than this behind the
    /// largest timestamp before it in its file.
    pub bound: i64,
}

/// Windows of event time each input file covers: its timestamps advance through
/// `WINDOWS_PER_FILE` windows, and the next file starts where it ends.
pub const WINDOWS_PER_FILE: i64 = 30;

/// What a window job must commit: one `(word,<start>,<end>,<count>)` per word and window
/// that has records, the output of an uninterrupted run.
pub struct Windows {
    /// The vocabulary.
    pub words: Vec<String>,
    /// The window size the counts are per.
    pub window: i64,
    /// `(word index, window start)` to the word's records in that window.
    pub counts: hashbrown::HashMap<(u32, i64), u64>,
    /// Records (lines) in the input.
    pub records: u64,
}

impl Windows {
    /// Window results the job must commit.
    pub fn results(&self) -> u64 {
        self.counts.len() as u64
    }

    /// Adds the answer of another job writing into the same directory (its vocabulary
    /// must be disjoint from this one's, its window size the same).
    pub fn merge(&mut self, other: Windows) {
        let offset = self.words.len() as u32;
        self.words.extend(other.words);
        self.records += other.records;
        self.counts.extend(
            other
                .counts
                .into_iter()
                .map(|((w, start), n)| ((w + offset, start), n)),
        );
    }
}

/// Writes `records` lines `<epoch-millis> <word>` over `files` text files into `dir` (a
/// skewed vocabulary of `vocabulary` words, `<prefix>0000`, ...) from `seed`, and returns
/// the window counts an uninterrupted run commits.
///
/// Event time: file `f` (files are read in name order) covers [`WINDOWS_PER_FILE`] windows
/// from `base + f * span`; its clock advances evenly over its records and every other
/// record lags it by up to `time.bound` (uniform, the bound itself included), so no record
/// is more than the bound behind the largest timestamp before it in its file, and every
/// record of a later file is at most the bound behind the largest of an earlier one. A
/// subtask reads its files one after the other in name order, whatever the parallelism:
/// no record is ever behind its subtask's watermark (the largest timestamp minus the bound
/// minus 1 ms), so none is late in any interleaving and the windows' counts do not depend
/// on timing.
pub fn generate_events(
    dir: &Path,
    seed: u64,
    records: u64,
    files: u32,
    vocabulary: usize,
    prefix: &str,
    time: EventTime,
) -> anyhow::Result<Windows> {
    anyhow::ensure!(
        time.window > 0 && time.bound >= 0,
        "bad event time {time:?}"
    );
    std::fs::create_dir_all(dir)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab: Vec<String> = (0..vocabulary).map(|i| format!("{prefix}{i:04}")).collect();
    let mut counts = hashbrown::HashMap::new();
    // Late 2023, shifted by part of a window so that window ends fall anywhere in a file.
    let base = 1_700_000_000_000 + rng.random_range(0..time.window);
    let span = WINDOWS_PER_FILE * time.window;
    let per_file = records.div_ceil(files as u64);
    let mut left = records;
    let mut line = String::new();
    for f in 0..files {
        let mut out = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("input-{f:03}.txt")),
        )?);
        let n = per_file.min(left);
        left -= n;
        let start = base + f as i64 * span;
        for i in 0..n {
            let clock = start + (i as i128 * span as i128 / n as i128) as i64;
            let lag = if rng.random_bool(0.5) {
                rng.random_range(0..=time.bound)
            } else {
                0
            };
            let ts = clock - lag;
            let u: f64 = rng.random();
            let w = (((u * u) * vocabulary as f64) as usize).min(vocabulary - 1);
            *counts
                .entry((w as u32, ts - ts.rem_euclid(time.window)))
                .or_insert(0) += 1;
            line.clear();
            use std::fmt::Write as _;
            let _ = writeln!(line, "{ts} {}", vocab[w]);
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
    }
    Ok(Windows {
        words: vocab,
        window: time.window,
        counts,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_lag_at_most_the_bound_within_files_and_across_them() {
        let d = tempfile::tempdir().unwrap();
        let time = EventTime {
            window: 1000,
            bound: 300,
        };
        let exp = generate_events(d.path(), 3, 9_001, 4, 20, "w", time).unwrap();
        assert_eq!(exp.records, 9_001);
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4);
        let mut counts = hashbrown::HashMap::new();
        let mut lags = hashbrown::HashSet::new();
        // The largest timestamp of each file so far, and of all earlier files.
        let mut earlier = i64::MIN;
        for p in &names {
            let mut max = i64::MIN;
            for l in std::fs::read_to_string(p).unwrap().lines() {
                let (ts, w) = l.split_once(' ').unwrap();
                let ts: i64 = ts.parse().unwrap();
                let w: u32 = w[1..].parse().unwrap();
                // On time for this file's watermark and for every earlier file's.
                assert!(ts >= max.max(earlier).saturating_sub(time.bound), "{l}");
                lags.insert(max.saturating_sub(ts).max(0));
                max = max.max(ts);
                *counts.entry((w, ts - ts.rem_euclid(1000))).or_insert(0u64) += 1;
            }
            earlier = earlier.max(max);
        }
        assert_eq!(counts, exp.counts);
        // Disordered for real: some records lag by nearly the whole bound.
        let most = lags.iter().copied().max().unwrap();
        assert!(most > time.bound * 9 / 10 && most <= time.bound, "{most}");
        assert!(
            exp.results() > 4 * WINDOWS_PER_FILE as u64,
            "{}",
            exp.results()
        );
        let again = tempfile::tempdir().unwrap();
        let exp2 = generate_events(again.path(), 3, 9_001, 4, 20, "w", time).unwrap();
        assert_eq!(exp2.counts, exp.counts);
    }

    #[test]
    fn the_answer_matches_the_files_and_the_seed_fixes_both() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ea = generate(a.path(), 7, 10_000, 3, 50, "w").unwrap();
        let eb = generate(b.path(), 7, 10_000, 3, 50, "w").unwrap();
        assert_eq!(ea.counts, eb.counts);
        assert_eq!(ea.total(), 10_000);
        let mut seen = vec![0u64; 50];
        for f in std::fs::read_dir(a.path()).unwrap() {
            for w in std::fs::read_to_string(f.unwrap().path())
                .unwrap()
                .split_ascii_whitespace()
            {
                seen[w[1..].parse::<usize>().unwrap()] += 1;
            }
        }
        assert_eq!(seen, ea.counts);
    }
}
