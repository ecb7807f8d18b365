//! An exactly-once file sink, Flink's `FileSink` in row format.
//!
//! Every parallel instance writes one line per record into a hidden in-progress part file,
//! `.part-<sink>-<job>-<attempt>-<subtask>-<n>.inprogress` (`<sink>`: 8 hex digits of the
//! sink's operator uid; `<job>`: the first 16 hex digits of the job id). A part file is
//! rolled (closed and a new one started) when it reaches the configured size and at every
//! checkpoint. A rolled file is *pending*: it is fsynced and named in the checkpoint. When
//! the job manager reports the checkpoint complete, pending files are committed by an
//! atomic rename to `part-<sink>-<job>-<attempt>-<subtask>-<n>` — a reader never sees a
//! half-written committed file.
//!
//! After a failure the job restores its last completed checkpoint: the pending files named
//! in it are committed (again: a file already renamed counts as committed), and every other
//! in-progress file that *this job's* earlier attempts wrote is deleted — its records are
//! replayed from the restored source positions and written again — unless one of the
//! job's savepoints names it. Files of other jobs (another run writing to the same
//! directory, or the job whose snapshot this one restored) are never touched. A pending
//! file the restored checkpoint names that is gone fails the job without restarting
//! ([`CommittableLost`]).
//!
//! ```no_run
//! use floe::prelude::*;
//! use floe::connectors::file_sink::FileSink;
//!
//! let env = StreamEnv::new();
//! env.enable_checkpointing(std::time::Duration::from_secs(1));
//! env.from_collection(vec![("spark".to_string(), 1i64)])
//!     .sink_exactly_once(FileSink::for_row_format("/tmp/counts").with_max_part_size(64 << 20));
//! // /tmp/counts/part-<sink>-<token>-0-0 then holds the line `(spark,1)`.
//! ```

use super::format::SerializationSchema;
use super::{CommittableLost, PreCommitWriter, SinkContext, TwoPhaseCommitSink};
use crate::api::print::PrintFormat;
use crate::Result;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Turns a record into the bytes of its line (Flink's `Encoder`). Every sink writer has
/// its own clone, so an encoder may keep buffers between records.
pub trait Encoder<T>: Clone + Send + Sync + 'static {
    /// Appends the record, including its line terminator, to `out`; an error (a record
    /// the format cannot represent) fails the task.
    fn encode(&mut self, value: &T, out: &mut String) -> Result<()>;
}

/// Writes a record as Flink's `print()` shows it, one per line: `(spark,3)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimpleStringEncoder;

impl<T: PrintFormat> Encoder<T> for SimpleStringEncoder {
    #[inline]
    fn encode(&mut self, value: &T, out: &mut String) -> Result<()> {
        value.print_to(out);
        out.push('\n');
        Ok(())
    }
}

/// Writes every record with a [`SerializationSchema`], one per line: JSON Lines with
/// [`Json`](super::format::Json), CSV with [`Csv`](super::format::Csv).
///
/// ```no_run
/// use floe::connectors::file_sink::{FileSink, SchemaEncoder};
/// use floe::connectors::format::Json;
/// let sink = FileSink::for_row_format("/data/out")
///     .with_encoder(SchemaEncoder::new(Json::<(String, i64)>::new()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SchemaEncoder<S> {
    schema: S,
    /// The record's bytes, checked to be text before they join the part file's buffer.
    scratch: Vec<u8>,
}

impl<S> SchemaEncoder<S> {
    /// Encodes records with `schema`.
    pub fn new(schema: S) -> Self {
        SchemaEncoder {
            schema,
            scratch: Vec::new(),
        }
    }
}

impl<T, S: SerializationSchema<T>> Encoder<T> for SchemaEncoder<S> {
    fn encode(&mut self, value: &T, out: &mut String) -> Result<()> {
        self.scratch.clear();
        self.schema
            .serialize(value, &mut self.scratch)
            .map_err(|e| crate::anyhow!("cannot encode a record for the file sink: {e}"))?;
        let text = std::str::from_utf8(&self.scratch)
            .map_err(|e| crate::anyhow!("a record encodes to bytes that are not UTF-8: {e}"))?;
        out.push_str(text);
        out.push('\n');
        Ok(())
    }
}

/// Part files roll at this size by default (Flink's default rolling policy: 128 MiB).
pub const DEFAULT_MAX_PART_SIZE: u64 = 128 << 20;
/// Encoded records are buffered up to this many bytes before a `write`.
const WRITE_BUFFER: usize = 256 << 10;
const IN_PROGRESS_PREFIX: &str = ".part-";
const IN_PROGRESS_SUFFIX: &str = ".inprogress";

/// An exactly-once row-format file sink writing into one directory. See the module docs.
#[derive(Clone, Debug)]
pub struct FileSink<E = SimpleStringEncoder> {
    dir: PathBuf,
    encoder: E,
    max_part_size: u64,
}

impl FileSink<SimpleStringEncoder> {
    /// A sink writing each record's `print()` text as one line into files under `dir`
    /// (created when missing).
    pub fn for_row_format(dir: impl Into<PathBuf>) -> Self {
        FileSink {
            dir: dir.into(),
            encoder: SimpleStringEncoder,
            max_part_size: DEFAULT_MAX_PART_SIZE,
        }
    }
}

impl<E> FileSink<E> {
    /// Encodes records with `encoder` instead.
    pub fn with_encoder<E2>(self, encoder: E2) -> FileSink<E2> {
        FileSink {
            dir: self.dir,
            encoder,
            max_part_size: self.max_part_size,
        }
    }

    /// Rolls a part file once it holds at least `bytes` (it also rolls at every checkpoint).
    pub fn with_max_part_size(mut self, bytes: u64) -> Self {
        self.max_part_size = bytes.max(1);
        self
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A rolled part file waiting for its checkpoint to complete (names relative to the
/// sink's directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    /// The hidden in-progress name it was written under.
    pub in_progress: String,
    /// The visible name it gets when committed.
    pub committed: String,
}

/// The sink's part of every file name: 8 hex digits of its operator uid.
fn sink_tag(ctx: &SinkContext) -> String {
    format!(
        "{:08x}",
        xxhash_rust::xxh3::xxh3_64(ctx.operator_uid.as_bytes()) as u32
    )
}

/// The job token and attempt in an in-progress file name, if the name is one of sink
/// `tag`'s.
fn in_progress_owner<'a>(name: &'a str, tag: &str) -> Option<(&'a str, u32)> {
    let rest = name
        .strip_prefix(IN_PROGRESS_PREFIX)?
        .strip_suffix(IN_PROGRESS_SUFFIX)?
        .strip_prefix(tag)?
        .strip_prefix('-')?;
    let mut parts = rest.split('-');
    let job = parts.next()?;
    let attempt = parts.next()?.parse().ok()?;
    Some((job, attempt))
}

/// Starts writing `len` bytes at `offset` back to disk without waiting, so that the fsync
/// at the next checkpoint finds little left to do (RocksDB's `bytes_per_sync`). Only a
/// hint: durability still comes from that fsync.
fn start_writeback(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads the descriptor and the range.
        unsafe {
            libc::sync_file_range(
                f.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

impl<T: 'static, E: Encoder<T>> TwoPhaseCommitSink<T> for FileSink<E> {
    type Committable = PendingFile;
    type Writer = FileSinkWriter<T, E>;

    fn name(&self) -> String {
        "FileSink".into()
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<Self::Writer> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create output directory {}", self.dir.display()))?;
        Ok(FileSinkWriter {
            dir: self.dir.clone(),
            encoder: self.encoder.clone(),
            max_part_size: self.max_part_size,
            prefix: format!("{}-{}-{}", sink_tag(ctx), ctx.attempt_token(), ctx.subtask),
            counter: 0,
            current: None,
            // Small parts flush sooner, so that they roll close to their size.
            flush_at: WRITE_BUFFER.min(self.max_part_size as usize),
            buf: String::with_capacity(WRITE_BUFFER + 4096),
            rolled: Vec::new(),
            _t: PhantomData,
        })
    }

    fn commit(&self, committables: &[PendingFile]) -> Result<()> {
        if committables.is_empty() {
            return Ok(());
        }
        for p in committables {
            let from = self.dir.join(&p.in_progress);
            let to = self.dir.join(&p.committed);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                // Committed before (by an earlier attempt, or before a failure).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CommittableLost(format!(
                        "cannot commit pending file {}: it is gone and {} does not exist (its records are lost)",
                        from.display(),
                        to.display()
                    ))
                    .into())
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot commit {} to {}", from.display(), to.display())
                    })
                }
            }
        }
        sync_dir(&self.dir)
    }

    fn recover(&self, ctx: &SinkContext, keep: &[PendingFile]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create output directory {}", self.dir.display()))?;
        let tag = sink_tag(ctx);
        let keep: HashSet<&str> = keep.iter().map(|p| p.in_progress.as_str()).collect();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list output directory {}", self.dir.display()))?;
        let mut discarded = 0u64;
        for entry in entries {
            let entry = entry
                .with_context(|| format!("cannot list output directory {}", self.dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Only this job's earlier attempts' files: never another job's, never this
            // attempt's own.
            let Some((job, attempt)) = in_progress_owner(name, &tag) else {
                continue;
            };
            if job != ctx.job_token() || attempt >= ctx.attempt || keep.contains(name) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => discarded += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot discard in-progress file {}", entry.path().display())
                    })
                }
            }
        }
        if discarded > 0 {
            tracing::info!(
                "Discarded {discarded} in-progress part files of earlier attempts in {}.",
                self.dir.display()
            );
        }
        Ok(())
    }
}

/// One subtask's writer of a [`FileSink`].
pub struct FileSinkWriter<T, E> {
    dir: PathBuf,
    encoder: E,
    max_part_size: u64,
    /// `<sink>-<attempt token>-<subtask>`.
    prefix: String,
    counter: u64,
    /// The open part file, its in-progress name and the bytes written to it.
    current: Option<(File, String, u64)>,
    flush_at: usize,
    buf: String,
    /// Files rolled by size since the last checkpoint (already synced).
    rolled: Vec<PendingFile>,
    _t: PhantomData<fn(&T)>,
}

impl<T, E> FileSinkWriter<T, E> {
    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            let name = format!(
                "{IN_PROGRESS_PREFIX}{}-{}{IN_PROGRESS_SUFFIX}",
                self.prefix, self.counter
            );
            let path = self.dir.join(&name);
            let f = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("cannot create part file {}", path.display()))?;
            self.current = Some((f, name, 0));
        }
        let (f, name, size) = self.current.as_mut().expect("open part file");
        f.write_all(self.buf.as_bytes()).with_context(|| {
            format!("cannot write part file {}", self.dir.join(&*name).display())
        })?;
        start_writeback(f, *size, self.buf.len() as u64);
        *size += self.buf.len() as u64;
        self.buf.clear();
        if *size >= self.max_part_size {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the open part file (durably) and makes it pending.
    fn roll(&mut self) -> Result<()> {
        if let Some((f, name, _)) = self.current.take() {
            f.sync_all().with_context(|| {
                format!("cannot sync part file {}", self.dir.join(&name).display())
            })?;
            self.rolled.push(PendingFile {
                in_progress: name,
                committed: format!("part-{}-{}", self.prefix, self.counter),
            });
            self.counter += 1;
        }
        Ok(())
    }
}

impl<T, E: Encoder<T>> PreCommitWriter<T, PendingFile> for FileSinkWriter<T, E> {
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()> {
        for v in batch.drain(..) {
            self.encoder.encode(&v, &mut self.buf)?;
            if self.buf.len() >= self.flush_at {
                self.flush_buf()?;
            }
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _checkpoint_id: u64) -> Result<Vec<PendingFile>> {
        self.flush_buf()?;
        self.roll()?;
        if !self.rolled.is_empty() {
            // The files' directory entries must survive a power loss too: the checkpoint
            // is about to name them.
            sync_dir(&self.dir)?;
        }
        Ok(std::mem::take(&mut self.rolled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::functions::TaskInfo;

    fn ctx(job: &str, attempt: u32, subtask: u32) -> SinkContext {
        SinkContext {
            subtask,
            parallelism: 2,
            attempt,
            job_id: job.into(),
            operator_uid: "out".into(),
            task_info: TaskInfo {
                task_name: "FileSink".into(),
                subtask_index: subtask,
                parallelism: 2,
                attempt_number: attempt,
                max_parallelism: 128,
            },
            first_checkpoint: 1,
            restored_checkpoint: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn staged_lines_become_visible_only_when_committed_and_commits_are_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(tmp.path());
        let mut w =
            TwoPhaseCommitSink::<(String, i64)>::create_writer(&sink, &ctx("aa", 0, 0)).unwrap();
        w.write_batch(&mut vec![("a".to_string(), 1i64), ("b".to_string(), 2)])
            .unwrap();
        let pending = w.prepare_commit(1).unwrap();
        assert_eq!(pending.len(), 1);
        let tag = sink_tag(&ctx("aa", 0, 0));
        assert_eq!(
            names(tmp.path()),
            vec![format!(".part-{tag}-aa-0-0-0.inprogress")]
        );
        TwoPhaseCommitSink::<(String, i64)>::commit(&sink, &pending).unwrap();
        TwoPhaseCommitSink::<(String, i64)>::commit(&sink, &pending).unwrap();
        assert_eq!(names(tmp.path()), vec![format!("part-{tag}-aa-0-0-0")]);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(format!("part-{tag}-aa-0-0-0"))).unwrap(),
            "(a,1)\n(b,2)\n"
        );
        // Nothing written since: no empty part file.
        assert!(w.prepare_commit(1).unwrap().is_empty());
    }

    #[test]
    fn rolls_by_size_and_recover_keeps_only_restored_and_current_attempt_files() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(tmp.path()).with_max_part_size(100_000);
        let mut w = TwoPhaseCommitSink::<i64>::create_writer(&sink, &ctx("job", 0, 1)).unwrap();
        let mut big: Vec<i64> = (0..60_000).collect();
        w.write_batch(&mut big).unwrap();
        let first = w.prepare_commit(1).unwrap();
        assert!(first.len() >= 3, "{first:?}");
        w.write_batch(&mut vec![7]).unwrap();
        let second = w.prepare_commit(1).unwrap();
        assert_eq!(second.len(), 1);
        // The job's next attempt restores a checkpoint that holds only `first`.
        let mut now = TwoPhaseCommitSink::<i64>::create_writer(&sink, &ctx("job", 1, 0)).unwrap();
        now.write_batch(&mut vec![1]).unwrap();
        now.prepare_commit(1).unwrap();
        TwoPhaseCommitSink::<i64>::recover(&sink, &ctx("job", 1, 0), &first).unwrap();
        let left = names(tmp.path());
        for p in &first {
            assert!(left.contains(&p.in_progress), "{left:?}");
        }
        assert!(!left.contains(&second[0].in_progress), "{left:?}");
        let tag = sink_tag(&ctx("job", 1, 0));
        assert!(left.contains(&format!(".part-{tag}-job-1-0-0.inprogress")));
        TwoPhaseCommitSink::<i64>::commit(&sink, &first).unwrap();
        let total: usize = first
            .iter()
            .map(|p| {
                std::fs::read_to_string(tmp.path().join(&p.committed))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(total, 60_000);
    }

    #[test]
    fn recover_never_touches_another_sinks_or_another_jobs_files_in_the_same_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(tmp.path());
        let mut other_sink = ctx("job", 0, 0);
        other_sink.operator_uid = "other".into();
        let mut theirs = Vec::new();
        // Another sink of this job, and the same sink uid in another job (a second run of
        // the binary writing here, or the job whose checkpoint this one restored).
        for c in [other_sink, ctx("otherjob", 0, 0), ctx("otherjob", 7, 1)] {
            let mut w = TwoPhaseCommitSink::<i64>::create_writer(&sink, &c).unwrap();
            w.write_batch(&mut vec![1]).unwrap();
            theirs.extend(
                w.prepare_commit(1)
                    .unwrap()
                    .into_iter()
                    .map(|p| p.in_progress),
            );
        }
        TwoPhaseCommitSink::<i64>::recover(&sink, &ctx("job", 3, 0), &[]).unwrap();
        theirs.sort();
        assert_eq!(names(tmp.path()), theirs);
    }

    #[test]
    fn a_pending_file_that_vanished_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(tmp.path());
        let gone = PendingFile {
            in_progress: ".part-x-0-0.inprogress".into(),
            committed: "part-x-0-0".into(),
        };
        let err = TwoPhaseCommitSink::<i64>::commit(&sink, &[gone]).unwrap_err();
        assert!(err.is::<CommittableLost>(), "{err:#}");
        let err = err.to_string();
        assert!(
            err.contains(".part-x-0-0.inprogress") && err.contains("lost"),
            "{err}"
        );
    }
}
