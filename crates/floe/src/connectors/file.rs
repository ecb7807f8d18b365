//! A replayable text-file source: the lines of a file, or of every file in a directory.
//!
//! Files are the splits: parallel instance `i` reads the files whose index (sorted by name)
//! is `i mod parallelism`. The position is the byte offset reached in each file, so a
//! restore resumes exactly after the last line included in the checkpoint.
//!
//! An instance reads its files one after another. With watermarks per split
//! ([`crate::StreamEnv::from_source`]) every file it will read is a split from the start, so a
//! file not read yet holds the watermark back until it has been read to its end: a file far
//! ahead in event time never makes the records of a file read after it late.
//!
//! [`TextFileSource::with_format`] decodes every record with a
//! [`DeserializationSchema`] (JSON Lines, CSV): a record that cannot be decoded fails the
//! task with the file and line it is on, unless the source was told to
//! [`ignore_parse_errors`](FormatFileSource::ignore_parse_errors) (Flink's
//! `ignore-parse-errors`), which skips it and counts it.
//!
//! ```no_run
//! use floe::connectors::file::TextFileSource;
//! use floe::connectors::format::Json;
//! # use floe::prelude::*;
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct Bid { auction: u64, price: u64 }
//! let env = StreamEnv::new();
//! let bids = env.add_source(TextFileSource::new("/data/bids").with_format(Json::<Bid>::new()));
//! ```

use super::format::DeserializationSchema;
use super::{Source, SourceContext, SourceReader, SourceStatus, SplitRun};
use crate::api::data::Data;
use crate::Result;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

    /// The same files, every record decoded with `format` (one record per line; a CSV
    /// record continues on the next line while a quoted field is open).
    pub fn with_format<T, F: DeserializationSchema<T>>(self, format: F) -> FormatFileSource<T, F> {
        FormatFileSource {
            files: self,
            format,
            ignore_parse_errors: false,
            skipped: Arc::default(),
            _t: PhantomData,
        }
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
        Ok(Box::new(FileReader::new(self.splits(&ctx)?, Lines)))
    }
}

impl TextFileSource {
    /// This instance's files, each at its restored offset.
    fn splits(&self, ctx: &SourceContext) -> Result<Vec<Split>> {
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
        Ok(splits)
    }
}

/// A [`TextFileSource`] whose records are decoded with a [`DeserializationSchema`]
/// (from [`TextFileSource::with_format`]).
pub struct FormatFileSource<T, F> {
    files: TextFileSource,
    format: F,
    ignore_parse_errors: bool,
    skipped: Arc<AtomicU64>,
    _t: PhantomData<fn() -> T>,
}

impl<T, F: Clone> Clone for FormatFileSource<T, F> {
    fn clone(&self) -> Self {
        FormatFileSource {
            files: self.files.clone(),
            format: self.format.clone(),
            ignore_parse_errors: self.ignore_parse_errors,
            skipped: self.skipped.clone(),
            _t: PhantomData,
        }
    }
}

impl<T, F> FormatFileSource<T, F> {
    /// Skips records that cannot be decoded instead of failing the task (Flink's
    /// `ignore-parse-errors`); [`Self::skipped_records`] counts them.
    pub fn ignore_parse_errors(mut self) -> Self {
        self.ignore_parse_errors = true;
        self
    }

    /// Records skipped so far by every instance of this source in this process (a handle
    /// that stays valid after the source is handed to the job).
    pub fn skipped_records(&self) -> Arc<AtomicU64> {
        self.skipped.clone()
    }
}

impl<T: Data, F: DeserializationSchema<T>> Source<T> for FormatFileSource<T, F> {
    fn name(&self) -> String {
        self.files.name()
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<T>>> {
        let decoder = Formatted {
            format: self.format.clone(),
            ignore_parse_errors: self.ignore_parse_errors,
            skipped: self.skipped.clone(),
        };
        Ok(Box::new(FileReader::new(self.files.splits(&ctx)?, decoder)))
    }
}

/// What a file reader makes of each record's text.
trait Decoder<T>: Send + 'static {
    /// Whether `text` (the lines read so far) is a whole record.
    fn is_complete(&self, text: &str) -> bool;
    /// Whether every file starts with a header record ([`Self::set_header`]).
    fn wants_header(&self) -> bool {
        false
    }
    /// The header record of the file the next records come from.
    fn set_header(&mut self, _text: &str, _path: &Path) -> Result<()> {
        Ok(())
    }
    /// Adds the record's value to `out`, or nothing if it is skipped. `line` gives the
    /// 1-based line the record starts on, for errors (it reads the file, so only then).
    fn decode(
        &mut self,
        text: String,
        line: &mut dyn FnMut() -> String,
        out: &mut Vec<T>,
    ) -> Result<()>;
}

/// Lines as they are.
struct Lines;

impl Decoder<String> for Lines {
    #[inline]
    fn is_complete(&self, _text: &str) -> bool {
        true
    }
    #[inline]
    fn decode(
        &mut self,
        text: String,
        _line: &mut dyn FnMut() -> String,
        out: &mut Vec<String>,
    ) -> Result<()> {
        out.push(text);
        Ok(())
    }
}

struct Formatted<F> {
    format: F,
    ignore_parse_errors: bool,
    skipped: Arc<AtomicU64>,
}

impl<T: Data, F: DeserializationSchema<T>> Decoder<T> for Formatted<F> {
    fn is_complete(&self, text: &str) -> bool {
        self.format.is_complete(text.as_bytes())
    }
    fn wants_header(&self) -> bool {
        self.format.has_header()
    }
    fn set_header(&mut self, text: &str, path: &Path) -> Result<()> {
        self.format
            .set_header(text.trim_end_matches(['\r', '\n']).as_bytes())
            .map_err(|e| crate::anyhow!("cannot decode the header line of {}: {e}", path.display()))
    }
    fn decode(
        &mut self,
        text: String,
        line: &mut dyn FnMut() -> String,
        out: &mut Vec<T>,
    ) -> Result<()> {
        match self.format.deserialize(text.as_bytes()) {
            Ok(v) => out.push(v),
            Err(e) if self.ignore_parse_errors => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("skipped a record that cannot be decoded ({e})");
            }
            Err(e) => crate::bail!("cannot decode the record at {}: {e}", line()),
        }
        Ok(())
    }
}

/// Reads one record into `text` (empty at the end of the file): a line, or more while the
/// format says the record goes on. Returns the offset after it. A poll never ends inside a
/// record, so the checkpointed offset is always a record's start.
fn read_record<T, D: Decoder<T>>(
    r: &mut impl BufRead,
    text: &mut String,
    start: u64,
    path: &Path,
    decoder: &D,
) -> Result<u64> {
    let mut end = start;
    loop {
        let read = r.read_line(text).map_err(|e| {
            crate::anyhow!(
                "cannot read input file {} at byte {end}: {e}",
                path.display()
            )
        })?;
        end += read as u64;
        if read == 0 || decoder.is_complete(text) {
            return Ok(end);
        }
    }
}

/// The 1-based number of the line that starts at byte `offset` of `path`.
fn line_at(path: &Path, offset: u64) -> String {
    let lines = File::open(path).and_then(|f| {
        let mut n = 1u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut r = f.take(offset);
        loop {
            let k = r.read(&mut buf)?;
            if k == 0 {
                return Ok(n);
            }
            n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    });
    match lines {
        Ok(n) => format!("{} line {n}", path.display()),
        Err(_) => format!("{} byte {offset}", path.display()),
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

struct FileReader<D> {
    splits: Vec<Split>,
    current: usize,
    line: String,
    /// The files the last poll read from (event-time sources watermark per file).
    runs: Vec<SplitRun>,
    /// Whether the first poll told about every file yet.
    announced: bool,
    decoder: D,
}

impl<D> FileReader<D> {
    fn new(splits: Vec<Split>, decoder: D) -> Self {
        FileReader {
            splits,
            current: 0,
            line: String::new(),
            runs: Vec::new(),
            announced: false,
            decoder,
        }
    }
}

fn strip_newline(s: &mut String) {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
}

impl<T: Data, D: Decoder<T>> SourceReader<T> for FileReader<D> {
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus> {
        self.runs.clear();
        if !self.announced {
            // Every file of this instance is a split from the first poll on, not from its
            // first line (see the module docs).
            self.announced = true;
            self.runs
                .extend((self.current..self.splits.len()).map(|i| SplitRun {
                    split: i as u32,
                    records: 0,
                    finished: false,
                }));
        }
        let mut n = 0;
        while n < max {
            let Some(split) = self.splits.get_mut(self.current) else {
                return Ok(SourceStatus::Finished);
            };
            let index = self.current as u32;
            let path: &Path = &split.path.clone();
            if split.reader.is_none() && self.decoder.wants_header() {
                // Read from the file's start whatever the position: a restored reader
                // resumes after the header, but needs it.
                let mut header = String::new();
                let mut r = File::open(path)
                    .map(BufReader::new)
                    .with_context(|| format!("cannot open input file {}", path.display()))?;
                let end = read_record(&mut r, &mut header, 0, path, &self.decoder)?;
                if !self.decoder.is_complete(&header) {
                    crate::bail!(
                        "input file {} ends inside its header line (a quoted field is not closed)",
                        path.display()
                    );
                }
                if !header.is_empty() {
                    self.decoder.set_header(&header, path)?;
                }
                split.offset = split.offset.max(end);
            }
            let start = split.offset;
            let r = split.open()?;
            self.line.clear();
            let end = read_record(r, &mut self.line, start, path, &self.decoder)?;
            if self.line.is_empty() {
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
            if !self.decoder.is_complete(&self.line) {
                crate::bail!(
                    "input file {} ends inside the record that starts at {} (a quoted field is not closed)",
                    path.display(),
                    line_at(path, start)
                );
            }
            split.offset = end;
            let mut l = std::mem::take(&mut self.line);
            strip_newline(&mut l);
            let before = out.len();
            self.decoder.decode(l, &mut || line_at(path, start), out)?;
            n += 1;
            let added = out.len() - before;
            match self.runs.last_mut() {
                Some(r) if r.split == index => r.records += added,
                _ => self.runs.push(SplitRun {
                    split: index,
                    records: added,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::functions::TaskInfo;
    use crate::connectors::format::Csv;
    use crate::connectors::SourceWaker;

    fn ctx(restored: Option<Vec<Vec<u8>>>) -> SourceContext {
        SourceContext {
            subtask: 0,
            parallelism: 1,
            attempt: 0,
            restored,
            waker: SourceWaker(std::thread::current()),
            task_info: TaskInfo::single("t"),
        }
    }

    #[test]
    fn a_restore_after_any_poll_resumes_at_the_next_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.csv");
        std::fs::write(&f, "a,1\n\"b\nb\",2\n\"c\"\"\n\nc\",3\nd,4").unwrap();
        let source = TextFileSource::new(&f).with_format(Csv::<(String, u32)>::new());
        let all = vec![
            ("a".to_string(), 1),
            ("b\nb".to_string(), 2),
            ("c\"\n\nc".to_string(), 3),
            ("d".to_string(), 4),
        ];
        // Stop after k records (one per poll), restore from the snapshot, read the rest.
        for k in 0..=all.len() {
            let mut r = source.create(ctx(None)).unwrap();
            let mut got = Vec::new();
            for _ in 0..k {
                r.poll_next(&mut got, 1).unwrap();
            }
            let position = r.snapshot().unwrap();
            let mut r = source.create(ctx(Some(vec![position]))).unwrap();
            while r.poll_next(&mut got, 2).unwrap() != SourceStatus::Finished {}
            assert_eq!(got, all, "restored after {k} records");
        }
    }

    #[test]
    fn each_file_header_names_its_columns_also_after_a_restore() {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Row {
            word: String,
            n: u32,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "n,word\r\n1,x\n2,\"y\ny\"\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "word,n\nz,3\n").unwrap();
        std::fs::write(dir.path().join("c.csv"), "").unwrap();
        let source = TextFileSource::new(dir.path()).with_format(Csv::<Row>::new().with_header());
        let row = |w: &str, n| Row { word: w.into(), n };
        let all = vec![row("x", 1), row("y\ny", 2), row("z", 3)];
        for k in 0..=all.len() {
            let mut r = source.create(ctx(None)).unwrap();
            let mut got = Vec::new();
            while got.len() < k {
                r.poll_next(&mut got, 1).unwrap();
            }
            let position = r.snapshot().unwrap();
            let mut r = source.create(ctx(Some(vec![position]))).unwrap();
            while r.poll_next(&mut got, 2).unwrap() != SourceStatus::Finished {}
            assert_eq!(got, all, "restored after {k} records");
        }
        std::fs::write(dir.path().join("d.csv"), "word,\"n\n").unwrap();
        let mut r = source.create(ctx(None)).unwrap();
        let err = loop {
            match r.poll_next(&mut Vec::new(), 10) {
                Ok(SourceStatus::Finished) => panic!("no error"),
                Ok(_) => {}
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("d.csv ends inside its header line"), "{err}");
    }
}
