//! Checks a round's committed output against the exact answer.

use crate::input::{Expected, Windows};
use std::path::Path;

/// What the committed output holds, compared with the answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Committed lines read.
    pub lines: u64,
    /// `(word,n)` lines missing from `1..=count(word)`.
    pub lost: u64,
    /// Extra copies of a `(word,n)` line.
    pub duplicated: u64,
    /// Lines that are not `(word,n)` for a known word and `1 <= n <= count(word)`.
    pub wrong: u64,
    /// Hidden in-progress part files left in the directory by the jobs that finished.
    pub leftover: u64,
    /// Hidden part files of jobs whose job manager was killed: no later job deletes them
    /// (they are another job's, as in Flink), and they are never output.
    pub orphaned: u64,
}

impl Verdict {
    /// Adds another round's verdict.
    pub fn add(&mut self, o: &Verdict) {
        self.lines += o.lines;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.wrong += o.wrong;
        self.leftover += o.leftover;
        self.orphaned += o.orphaned;
    }
}

/// The job part of a hidden part file's name, `.part-<sink>-<job>-<attempt>-...`.
fn job_token(name: &str) -> Option<&str> {
    name.strip_prefix(".part-")?.split('-').nth(1)
}

/// The answer a round's committed output is checked against.
pub enum Answer {
    /// The word count's: `(word,n)` for `n = 1..=count(word)`.
    Counts(Expected),
    /// A window job's: one `(word,<start>,<end>,<count>)` per word and window.
    Windows(Windows),
}

impl Answer {
    /// Records of the input (words, or event lines).
    pub fn records(&self) -> u64 {
        match self {
            Answer::Counts(e) => e.total(),
            Answer::Windows(w) => w.records,
        }
    }

    /// Lines the job must commit.
    pub fn lines(&self) -> u64 {
        match self {
            Answer::Counts(e) => e.total(),
            Answer::Windows(w) => w.results(),
        }
    }

    /// Adds the answer of a second job writing into the same directory (the same kind,
    /// a disjoint vocabulary).
    pub fn merge(&mut self, other: Answer) -> anyhow::Result<()> {
        match (self, other) {
            (Answer::Counts(a), Answer::Counts(b)) => a.merge(b),
            (Answer::Windows(a), Answer::Windows(b)) => a.merge(b),
            _ => anyhow::bail!("a second job's answer is of another kind"),
        }
        Ok(())
    }
}

/// Reads every committed part file (`part-*`) under `dir` and checks its lines against
/// `answer`. Hidden files of a job in `killed` (job ids) count as orphaned, all others as
/// leftover.
pub fn verify(dir: &Path, answer: &Answer, killed: &[String]) -> anyhow::Result<Verdict> {
    match answer {
        Answer::Counts(e) => verify_counts(dir, e, killed),
        Answer::Windows(w) => verify_windows(dir, w, killed),
    }
}

/// Calls `line` with every line of every committed part file under `dir`; counts the
/// hidden files into `v`.
fn committed_lines(
    dir: &Path,
    killed: &[String],
    v: &mut Verdict,
    mut line: impl FnMut(&str),
) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e.collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("cannot list output directory {}: {e}", dir.display()),
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".part-") {
            let token = job_token(&name).unwrap_or_default();
            if killed.iter().any(|k| k.get(..16) == Some(token)) {
                v.orphaned += 1;
            } else {
                v.leftover += 1;
            }
            continue;
        }
        if !name.starts_with("part-") {
            continue;
        }
        let text = std::fs::read_to_string(e.path())
            .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", e.path().display()))?;
        for l in text.lines() {
            v.lines += 1;
            line(l);
        }
    }
    Ok(())
}

/// The word count: each `(word,n)` line for `n = 1..=count(word)` exactly once.
fn verify_counts(dir: &Path, expected: &Expected, killed: &[String]) -> anyhow::Result<Verdict> {
    let index: hashbrown::HashMap<&str, usize> = expected
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    // seen[word][n - 1]: how often `(word,n)` was committed.
    let mut seen: Vec<Vec<u32>> = expected
        .counts
        .iter()
        .map(|&c| vec![0u32; c as usize])
        .collect();
    let mut v = Verdict::default();
    let mut wrong = 0;
    committed_lines(dir, killed, &mut v, |line| {
        let parsed = line
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| l.split_once(','))
            .and_then(|(w, n)| Some((*index.get(w)?, n.parse::<usize>().ok()?)));
        match parsed {
            Some((w, n)) if n >= 1 && n <= seen[w].len() => seen[w][n - 1] += 1,
            _ => wrong += 1,
        }
    })?;
    v.wrong = wrong;
    for counts in &seen {
        for &c in counts {
            match c {
                0 => v.lost += 1,
                1 => {}
                more => v.duplicated += (more - 1) as u64,
            }
        }
    }
    Ok(v)
}

/// A window job: each `(word,<start>,<end>,<count>)` of the answer exactly once, and
/// nothing else (a result with another count is wrong, and its right one lost).
fn verify_windows(dir: &Path, expected: &Windows, killed: &[String]) -> anyhow::Result<Verdict> {
    let index: hashbrown::HashMap<&str, u32> = expected
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as u32))
        .collect();
    // How often each result of the answer was committed.
    let mut seen: hashbrown::HashMap<(u32, i64), u32> =
        expected.counts.keys().map(|k| (*k, 0)).collect();
    let mut v = Verdict::default();
    let mut wrong = 0;
    committed_lines(dir, killed, &mut v, |line| {
        let parsed = line
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| {
                // The word holds no comma; the three numbers follow it.
                let mut f = l.rsplitn(4, ',');
                let count: u64 = f.next()?.parse().ok()?;
                let end: i64 = f.next()?.parse().ok()?;
                let start: i64 = f.next()?.parse().ok()?;
                let word = *index.get(f.next()?)?;
                Some(((word, start), end, count))
            });
        match parsed {
            Some((key, end, count))
                if end == key.1 + expected.window && expected.counts.get(&key) == Some(&count) =>
            {
                *seen.get_mut(&key).expect("every answer key is in seen") += 1
            }
            _ => wrong += 1,
        }
    })?;
    v.wrong = wrong;
    for &c in seen.values() {
        match c {
            0 => v.lost += 1,
            1 => {}
            more => v.duplicated += (more - 1) as u64,
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_wrong_and_leftover_lines() {
        let d = tempfile::tempdir().unwrap();
        let exp = Expected {
            words: vec!["a".into(), "b".into()],
            counts: vec![3, 1],
        };
        std::fs::write(d.path().join("part-x-0-0"), "(a,1)\n(a,2)\n(b,1)\n").unwrap();
        std::fs::write(d.path().join("part-x-1-0"), "(a,2)\n(c,1)\n(a,9)\n").unwrap();
        std::fs::write(d.path().join(".part-y-0-0.inprogress"), "(a,3)\n").unwrap();
        std::fs::write(
            d.path().join(".part-y-0123456789abcdef-0-0-0.inprogress"),
            "(a,3)\n",
        )
        .unwrap();
        let exp = Answer::Counts(exp);
        let v = verify(
            d.path(),
            &exp,
            &["0123456789abcdef0123456789abcdef".to_string()],
        )
        .unwrap();
        assert_eq!(
            v,
            Verdict {
                lines: 6,
                lost: 1,       // (a,3) is only in an uncommitted file
                duplicated: 1, // (a,2) twice
                wrong: 2,      // unknown word, n beyond the count
                leftover: 1,
                orphaned: 1, // a killed job's
            }
        );
        std::fs::write(d.path().join("part-x-2-0"), "(a,3)\n").unwrap();
        std::fs::remove_file(d.path().join("part-x-1-0")).unwrap();
        std::fs::remove_file(d.path().join(".part-y-0-0.inprogress")).unwrap();
        std::fs::remove_file(d.path().join(".part-y-0123456789abcdef-0-0-0.inprogress")).unwrap();
        assert_eq!(
            verify(d.path(), &exp, &[]).unwrap(),
            Verdict {
                lines: 4,
                ..Verdict::default()
            }
        );
    }

    #[test]
    fn window_results_count_once_and_a_wrong_count_is_wrong_and_lost() {
        let d = tempfile::tempdir().unwrap();
        let mut counts = hashbrown::HashMap::new();
        counts.insert((0, 0), 3);
        counts.insert((0, 10), 1);
        counts.insert((1, -10), 2);
        let exp = Answer::Windows(Windows {
            words: vec!["a".into(), "b".into()],
            window: 10,
            counts,
            records: 6,
        });
        std::fs::write(d.path().join("part-x-0-0"), "(a,0,10,3)\n(b,-10,0,2)\n").unwrap();
        std::fs::write(d.path().join("part-x-1-0"), "(a,10,20,1)\n").unwrap();
        assert_eq!(
            verify(d.path(), &exp, &[]).unwrap(),
            Verdict {
                lines: 3,
                ..Verdict::default()
            }
        );
        // A duplicate, a firing with another count (instead of the right one), a wrong
        // end, an unknown word, a line that does not parse.
        std::fs::write(
            d.path().join("part-x-1-0"),
            "(a,10,20,2)\n(a,0,10,3)\n(a,0,20,3)\n(c,0,10,1)\n(a,0,10)\n",
        )
        .unwrap();
        assert_eq!(
            verify(d.path(), &exp, &[]).unwrap(),
            Verdict {
                lines: 7,
                lost: 1,
                duplicated: 1,
                wrong: 4,
                ..Verdict::default()
            }
        );
    }
}
