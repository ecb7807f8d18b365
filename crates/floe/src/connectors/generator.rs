//! The deterministic word-line generator of Flink's `ThroughputWordCount` benchmark, so that
//! both engines read exactly the same input.
//!
//! Line `i` (0-based) of `ceil(N/10)` lines holds `min(10, N - 10 i)` words separated by a
//! space; word `k` of line `i` is `VOCAB[splitmix64(42 + 10 i + k) mod 10000]`, where
//! `VOCAB[j]` has length `3 + h mod 8` and letters `'a' + (h >> 5m) mod 26` with
//! `h = splitmix64(j)`. The word "error" never occurs.

use super::{Source, SourceContext, SourceReader, SourceStatus};
use crate::Result;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const SEED: u64 = 42;
const VOCAB_SIZE: u64 = 10_000;
const WORDS_PER_LINE: u64 = 10;

/// SplitMix64's finalizer applied to `x + 0x9E3779B97F4A7C15`, as in the Java peer.
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The vocabulary in one buffer: word `j` is `bytes[offsets[j]..offsets[j + 1]]`. One
/// contiguous allocation keeps every lookup of the generator's hot loop in cache.
struct Vocab {
    bytes: String,
    offsets: Vec<u32>,
}

fn vocab_table() -> &'static Vocab {
    static V: OnceLock<Vocab> = OnceLock::new();
    V.get_or_init(|| {
        let mut bytes = String::new();
        let mut offsets = vec![0u32];
        for j in 0..VOCAB_SIZE {
            let h = splitmix64(j);
            let len = 3 + (h % 8) as usize;
            bytes.extend((0..len).map(|m| (b'a' + ((h >> (5 * m)) % 26) as u8) as char));
            offsets.push(bytes.len() as u32);
        }
        Vocab { bytes, offsets }
    })
}

/// The 10,000-word vocabulary.
pub fn vocab() -> Vec<&'static str> {
    let v = vocab_table();
    v.offsets
        .windows(2)
        .map(|w| &v.bytes[w[0] as usize..w[1] as usize])
        .collect()
}

/// Line `i` of an input of `total_words` words, appended to `out`.
#[inline]
pub fn write_line(i: u64, total_words: u64, out: &mut String) {
    let v = vocab_table();
    let base = i * WORDS_PER_LINE;
    let n = WORDS_PER_LINE.min(total_words - base);
    for k in 0..n {
        if k > 0 {
            out.push(' ');
        }
        let j = (splitmix64(SEED + base + k) % VOCAB_SIZE) as usize;
        out.push_str(&v.bytes[v.offsets[j] as usize..v.offsets[j + 1] as usize]);
    }
}

/// A bounded source of the benchmark's lines.
///
/// The lines are cut into a fixed number of splits (`max(128, parallelism)` at the first
/// start, then kept in the checkpointed position), each a contiguous range of line indices;
/// instance `i` of `p` reads the splits `j` with `j % p == i`. The position is the next line
/// of every split, so a snapshot restores at any parallelism without skipping or repeating
/// a line.
///
/// ```
/// use floe::connectors::generator::write_line;
/// let mut l = String::new();
/// write_line(0, 25, &mut l);
/// assert_eq!(l.split(' ').count(), 10);
/// ```
#[derive(Clone, Debug)]
pub struct WordLineGenerator {
    total_words: u64,
}

impl WordLineGenerator {
    /// A generator of `total_words` words in `ceil(total_words / 10)` lines.
    pub fn new(total_words: u64) -> Self {
        WordLineGenerator { total_words }
    }

    /// Number of lines.
    pub fn lines(&self) -> u64 {
        self.total_words.div_ceil(WORDS_PER_LINE)
    }
}

/// Checkpointed position: the split count and the next line of each split this instance read.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct GeneratorPosition {
    splits: u32,
    next: Vec<(u32, u64)>,
}

/// The [`WordLineGenerator`]'s lines with their 0-based line index: `(i, line i)`. Word
/// `k` of line `i` is word number `10 i + k` of the whole input, which is what a job needs
/// to derive a per-word quantity (such as a synthetic event time) that does not depend on
/// how the lines were split among the readers. Same splits and positions as the plain
/// generator.
///
/// ```
/// use floe::connectors::generator::{IndexedWordLineGenerator, WordLineGenerator};
/// let g = IndexedWordLineGenerator(WordLineGenerator::new(25));
/// assert_eq!(g.0.lines(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct IndexedWordLineGenerator(pub WordLineGenerator);

/// What a generator reader emits for line `i`.
trait LineRecord: Sized + Send + 'static {
    fn make(i: u64, total_words: u64) -> Self;
}

impl LineRecord for String {
    #[inline]
    fn make(i: u64, total_words: u64) -> Self {
        let mut line = String::with_capacity(112);
        write_line(i, total_words, &mut line);
        line
    }
}

impl LineRecord for (u64, String) {
    #[inline]
    fn make(i: u64, total_words: u64) -> Self {
        (i, String::make(i, total_words))
    }
}

impl Source<String> for WordLineGenerator {
    fn name(&self) -> String {
        "generator".into()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<String>>> {
        Ok(Box::new(self.reader::<String>(ctx)?))
    }
}

impl Source<(u64, String)> for IndexedWordLineGenerator {
    fn name(&self) -> String {
        "generator".into()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<(u64, String)>>> {
        Ok(Box::new(self.0.reader::<(u64, String)>(ctx)?))
    }
}

impl WordLineGenerator {
    fn reader<T: LineRecord>(&self, ctx: SourceContext) -> Result<GeneratorReader<T>> {
        let lines = self.lines();
        let mut restored: BTreeMap<u32, u64> = BTreeMap::new();
        let mut splits = 128.max(ctx.parallelism);
        if let Some(all) = &ctx.restored {
            let mut seen = None;
            for b in all.iter().filter(|b| !b.is_empty()) {
                let p: GeneratorPosition = bincode::deserialize(b)
                    .map_err(|e| crate::anyhow!("corrupt generator position: {e}"))?;
                if seen.is_some_and(|s| s != p.splits) {
                    crate::bail!(
                        "corrupt generator position: instances disagree on the number of splits"
                    );
                }
                seen = Some(p.splits);
                restored.extend(p.next);
            }
            if let Some(s) = seen {
                splits = s;
            }
        }
        let range = |j: u32| {
            (
                j as u64 * lines / splits as u64,
                (j as u64 + 1) * lines / splits as u64,
            )
        };
        let mut own = Vec::new();
        for j in (0..splits).filter(|j| j % ctx.parallelism == ctx.subtask) {
            let (start, end) = range(j);
            let next = restored.get(&j).copied().unwrap_or(start);
            if next < start || next > end {
                crate::bail!(
                    "corrupt generator position: line {next} is outside split {j} ({start}..{end})"
                );
            }
            own.push((j, next, end));
        }
        Ok(GeneratorReader {
            splits,
            own,
            current: 0,
            total_words: self.total_words,
            _records: std::marker::PhantomData,
        })
    }
}

struct GeneratorReader<T> {
    splits: u32,
    /// (split, next line, end) of every split this instance owns.
    own: Vec<(u32, u64, u64)>,
    current: usize,
    total_words: u64,
    _records: std::marker::PhantomData<fn() -> T>,
}

impl<T: LineRecord> SourceReader<T> for GeneratorReader<T> {
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus> {
        let mut budget = max as u64;
        while budget > 0 {
            let Some((_, next, end)) = self.own.get_mut(self.current) else {
                break;
            };
            let stop = (*next + budget).min(*end);
            while *next < stop {
                out.push(T::make(*next, self.total_words));
                *next += 1;
                budget -= 1;
            }
            if *next == *end {
                self.current += 1;
            }
        }
        Ok(if self.current >= self.own.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        let p = GeneratorPosition {
            splits: self.splits,
            next: self.own.iter().map(|(j, n, _)| (*j, *n)).collect(),
        };
        Ok(bincode::serialize(&p)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a over the first 100,000 lines (newline-terminated) of a 999,995-word input, as
    /// computed from `peer.ThroughputWordCount$LineGenerator` of the Flink peer (Java): both
    /// engines read exactly the same words, including the short last line.
    #[test]
    fn lines_are_byte_identical_to_the_java_peer() {
        let mut all = String::new();
        for i in 0..100_000u64 {
            write_line(i, 999_995, &mut all);
            all.push('\n');
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in all.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!((h, all.len()), (0x49b8_957e_9f8f_ed6c, 7_540_667));
    }

    #[test]
    fn vocabulary_matches_the_java_definition() {
        // splitmix64(0) = 0xE220A8397B1DCDAF: the standard SplitMix64 first output for seed 0.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        let v = vocab();
        assert_eq!(v.len(), 10_000);
        assert!(v
            .iter()
            .all(|w| (3..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())));
        assert!(!v.contains(&"error"));
        let mut l = String::new();
        write_line(2, 25, &mut l);
        assert_eq!(l.split(' ').count(), 5);
    }

    /// The indexed reader emits the plain reader's lines, each with its line index.
    #[test]
    fn indexed_lines_are_the_plain_lines_with_their_index() {
        let reader = |own| GeneratorReader::<(u64, String)> {
            splits: 2,
            own,
            current: 0,
            total_words: 25,
            _records: std::marker::PhantomData,
        };
        let mut r = reader(vec![(1, 1, 3)]);
        let mut out = Vec::new();
        assert!(matches!(
            r.poll_next(&mut out, 10),
            Ok(SourceStatus::Finished)
        ));
        let (mut l1, mut l2) = (String::new(), String::new());
        write_line(1, 25, &mut l1);
        write_line(2, 25, &mut l2);
        assert_eq!(out, vec![(1, l1), (2, l2)]);
    }
}
