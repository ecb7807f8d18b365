//! A replayable text-file source: the lines of a file, or of every file in a directory.
//!
//! Files are the splits: parallel instance `i` reads the files whose index (sorted by name)
//! is `i mod parallelism`. The position is the byte offset reached in each file, so a
//! restore resumes exactly after the last line included in the checkpoint.

use super::{Source, SourceContext, SourceReader, SourceStatus, SplitRun};
use crate::Result;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads lines (without the trailing `\n` or `\r\n`) of a file or a directory of files.
#[derive(Clone, Debug)]
pub struct TextFileSource {
    path: PathBuf,
}

impl TextFileSource {
    /// A source over `path` (a file or a directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFileSource { path: path.into() }
    }

    fn files(&self) -> Result<Vec<PathBuf>> {
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot read input path {}", self.path.display()))?;
        if meta.is_file() {
            return Ok(vec![self.path.clone()]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .with_context(|| format!("cannot list input directory {}", self.path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Position {
    /// (file name, byte offset) of every split of this instance.
    splits: Vec<(String, u64)>,
}

impl Source<String> for TextFileSource {
    fn name(&self) -> String {
        format!("File Source {}", self.path.display())
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<String>>> {
        let files = self.files()?;
        // Every old instance's (file, offset) pairs: this instance takes its files' offsets,
        // whichever instance read them before.
        let restored: Option<Position> = match &ctx.restored {
            Some(all) => {
                let mut merged = Position::default();
                for b in all.iter().filter(|b| !b.is_empty()) {
                    let p: Position = bincode::deserialize(b)
                        .map_err(|e| crate::anyhow!("corrupt file source position: {e}"))?;
                    merged.splits.extend(p.splits);
                }
                Some(merged)
            }
            None => None,
        };
        let mut splits = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if i as u32 % ctx.parallelism != ctx.subtask {
                continue;
            }
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let offset = restored
                .as_ref()
                .and_then(|p| p.splits.iter().find(|(n, _)| *n == name).map(|(_, o)| *o))
                .unwrap_or(0);
            splits.push(Split {
                path: f.clone(),
                name,
                offset,
                reader: None,
            });
        }
        Ok(Box::new(FileReader {
            splits,
            current: 0,
            line: String::new(),
            runs: Vec::new(),
        }))
    }
}

struct Split {
    path: PathBuf,
    name: String,
    offset: u64,
    reader: Option<BufReader<File>>,
}

impl Split {
    fn open(&mut self) -> Result<&mut BufReader<File>> {
        if self.reader.is_none() {
            let mut f = File::open(&self.path)
                .with_context(|| format!("cannot open input file {}", self.path.display()))?;
            let len = f.metadata()?.len();
            if self.offset > len {
                crate::bail!(
                    "input file {} is shorter ({len} bytes) than the checkpointed offset {}",
                    self.path.display(),
                    self.offset
                );
            }
            f.seek(SeekFrom::Start(self.offset))?;
            self.reader = Some(BufReader::with_capacity(1 << 16, f));
        }
        Ok(self.reader.as_mut().expect("opened"))
    }
}

struct FileReader {
    splits: Vec<Split>,
    current: usize,
    line: String,
    /// The files the last poll read from (event-time sources watermark per file).
    runs: Vec<SplitRun>,
}

fn strip_newline(s: &mut String) {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
}

impl SourceReader<String> for FileReader {
    fn poll_next(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourceStatus> {
        self.runs.clear();
        let mut n = 0;
        while n < max {
            let Some(split) = self.splits.get_mut(self.current) else {
                return Ok(SourceStatus::Finished);
            };
            let index = self.current as u32;
            let offset = split.offset;
            let path: &Path = &split.path.clone();
            let r = split.open()?;
            self.line.clear();
            let read = r.read_line(&mut self.line).map_err(|e| {
                crate::anyhow!(
                    "cannot read input file {} at byte {offset}: {e}",
                    path.display()
                )
            })?;
            if read == 0 {
                split.reader = None;
                self.current += 1;
                match self.runs.last_mut() {
                    Some(r) if r.split == index => r.finished = true,
                    _ => self.runs.push(SplitRun {
                        split: index,
                        records: 0,
                        finished: true,
                    }),
                }
                continue;
            }
            split.offset += read as u64;
            let mut l = std::mem::take(&mut self.line);
            strip_newline(&mut l);
            out.push(l);
            n += 1;
            match self.runs.last_mut() {
                Some(r) if r.split == index => r.records += 1,
                _ => self.runs.push(SplitRun {
                    split: index,
                    records: 1,
                    finished: false,
                }),
            }
        }
        Ok(if self.current >= self.splits.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }

    fn snapshot(&mut self) -> Result<Vec<u8>> {
        let p = Position {
            splits: self
                .splits
                .iter()
                .map(|s| (s.name.clone(), s.offset))
                .collect(),
        };
        Ok(bincode::serialize(&p)?)
    }

    fn last_poll_splits(&self) -> Option<&[SplitRun]> {
        Some(&self.runs)
    }
}
