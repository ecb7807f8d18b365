//! The generated input of one round and its exact answer.

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

#[cfg(test)]
mod tests {
    use super::*;

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
