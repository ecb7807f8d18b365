//! The `_metadata` file of a checkpoint or savepoint (the names around it are in
//! [`super::layout`]): its presence means the snapshot is complete.
//!
//! `_metadata` is JSON (human-readable and diffable; it is small because state bytes live in
//! the state files or, for tiny source positions, inline). File references are relative to
//! the directory holding `_metadata`.

use crate::storage::{Location, StorageError};
use crate::Result;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::layout::{checkpoint_dir_name, parse_checkpoint_dir_name, METADATA_FILE};
const FORMAT: &str = "floe-snapshot";
const VERSION: u32 = 1;

/// One parallel instance of an operator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The operator's uid.
    pub uid: String,
    /// 0-based subtask index.
    pub subtask: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.uid, self.subtask)
    }
}

/// Where a subtask's state is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StateHandle {
    /// Small state (source positions) stored inside `_metadata`.
    Inline {
        /// The state bytes.
        data: Vec<u8>,
    },
    /// A keyed state file next to `_metadata`.
    KeyedFile {
        /// File name relative to the snapshot directory.
        file: String,
        /// Size in bytes; a file of another size is treated as missing.
        size: u64,
        /// Number of keys.
        entries: u64,
    },
}

impl StateHandle {
    /// Bytes this handle accounts for.
    pub fn size(&self) -> u64 {
        match self {
            StateHandle::Inline { data } => data.len() as u64,
            StateHandle::KeyedFile { size, .. } => *size,
        }
    }
}

/// The kind of operator state.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Source positions (operator state).
    Source,
    /// Keyed state, partitioned by key group.
    Keyed,
    /// A two-phase-commit sink's staged output, not yet committed (operator state).
    Sink,
}

/// What each kind of state is called in messages: the only place a kind is matched on
/// outside the operator that stores it.
impl OperatorKind {
    /// `source`, `keyed` or `sink`, as in "is not keyed state".
    pub fn noun(self) -> &'static str {
        match self {
            OperatorKind::Source => "source",
            OperatorKind::Keyed => "keyed",
            OperatorKind::Sink => "sink",
        }
    }

    /// What one subtask's inline handle holds: a source's `position`, otherwise `state`.
    pub fn inline_noun(self) -> &'static str {
        match self {
            OperatorKind::Source => "position",
            OperatorKind::Keyed | OperatorKind::Sink => "state",
        }
    }

    /// What a snapshot holds for an operator of this kind, for reports; `None` for keyed
    /// state, which is described by its state names.
    pub fn holds(self) -> Option<&'static str> {
        match self {
            OperatorKind::Source => Some("source positions"),
            OperatorKind::Sink => Some("pending output"),
            OperatorKind::Keyed => None,
        }
    }

    /// True when the state is partitioned by key group, so restoring it needs the same
    /// max parallelism.
    pub fn is_keyed(self) -> bool {
        self == OperatorKind::Keyed
    }
}

/// One subtask's state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubtaskState {
    /// 0-based subtask index.
    pub subtask: u32,
    /// Where the bytes are.
    pub handle: StateHandle,
}

/// One operator's state across its subtasks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OperatorState {
    /// Stable operator id used to map state on restore.
    pub uid: String,
    /// Human-readable name.
    pub name: String,
    /// Source or keyed.
    pub kind: OperatorKind,
    /// Parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// Max parallelism when the snapshot was taken.
    pub max_parallelism: u32,
    /// Per subtask, sorted by index.
    pub subtasks: Vec<SubtaskState>,
}

/// Checkpoint or savepoint.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Periodic, owned by the job.
    Checkpoint,
    /// Triggered by the user, owned by the user.
    Savepoint,
}

/// Contents of `_metadata`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMetadata {
    /// Always `floe-snapshot`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Job that took the snapshot (32 lowercase hex).
    pub job_id: String,
    /// Job name.
    pub job_name: String,
    /// Checkpoint id; numbering continues from it on restore.
    pub checkpoint_id: u64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Trigger time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Max parallelism of keyed state.
    pub max_parallelism: u32,
    /// Per operator.
    pub operators: Vec<OperatorState>,
    /// xxh3 (hex) of this document serialized with `checksum` unset: a corrupted
    /// `_metadata` that still parses as JSON is detected too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl CheckpointMetadata {
    fn content_checksum(&self) -> Result<String> {
        let mut unsummed = self.clone();
        unsummed.checksum = None;
        Ok(format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&unsummed)?)
        ))
    }
}

impl CheckpointMetadata {
    /// Builds metadata for a snapshot.
    pub fn new(
        job_id: &str,
        job_name: &str,
        checkpoint_id: u64,
        kind: SnapshotKind,
        timestamp_ms: u64,
        max_parallelism: u32,
        operators: Vec<OperatorState>,
    ) -> Self {
        CheckpointMetadata {
            format: FORMAT.into(),
            version: VERSION,
            job_id: job_id.into(),
            job_name: job_name.into(),
            checkpoint_id,
            kind,
            timestamp_ms,
            max_parallelism,
            operators,
            checksum: None,
        }
    }

    /// Total bytes of state referenced.
    pub fn state_size(&self) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .map(|s| s.handle.size())
            .sum()
    }

    /// The operator with `uid`.
    pub fn operator(&self, uid: &str) -> Option<&OperatorState> {
        self.operators.iter().find(|o| o.uid == uid)
    }
}

/// Writes `_metadata` into `dir`, create-only: a second writer of the same snapshot's
/// `_metadata` gets [`StorageError::AlreadyExists`] (inside the error; the snapshot fails,
/// nothing is overwritten). Locally a temporary file is written and synced, then linked to
/// the final name (a link never replaces a file) and the directory synced; on an object
/// store it is one `PutMode::Create` put. Readers therefore see either no `_metadata` or a
/// complete one. Returns the size written.
pub fn write_metadata(dir: impl Into<Location>, meta: &CheckpointMetadata) -> Result<u64> {
    let dir = dir.into();
    let mut meta = meta.clone();
    meta.checksum = Some(meta.content_checksum()?);
    let bytes = serde_json::to_vec_pretty(&meta)?;
    let n = bytes.len() as u64;
    let dir = match dir {
        Location::Local(d) => d,
        remote => {
            crate::storage::write_new(&remote.join(METADATA_FILE), bytes)?;
            return Ok(n);
        }
    };
    let tmp = dir.join(super::layout::metadata_temp_file());
    let fin = dir.join(METADATA_FILE);
    let res = (|| -> Result<()> {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        match fs::hard_link(&tmp, &fin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StorageError::AlreadyExists(Location::Local(fin.clone())).into())
            }
            Err(e) => {
                return Err(crate::anyhow!(
                    "cannot link {} to {}: {e}",
                    tmp.display(),
                    fin.display()
                ))
            }
        }
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    res.map(|_| n)
}

/// A snapshot found at a restore path, validated: `_metadata` parses and every state file
/// it references exists with the recorded size.
#[derive(Clone, Debug)]
pub struct LoadedSnapshot {
    /// Directory (or object prefix) holding `_metadata` and the state files.
    pub dir: Location,
    /// The parsed metadata.
    pub metadata: CheckpointMetadata,
}

impl LoadedSnapshot {
    /// Location of a state file referenced by the metadata.
    pub fn file_path(&self, file: &str) -> Location {
        self.dir.join(file)
    }
}

/// Resolves a restore path as Flink's `-s` does: a `chk-<n>` or savepoint directory, or the
/// `_metadata` file inside one, or a job's checkpoint directory (its latest complete
/// checkpoint). Errors name the path and what is wrong with it.
pub fn resolve_snapshot_dir(path: impl Into<Location>) -> Result<Location> {
    let loc = path.into();
    let path = match &loc {
        Location::Local(p) => p.clone(),
        Location::Object(_) => return resolve_object_snapshot_dir(loc),
    };
    let path = path.as_path();
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            crate::anyhow!("restore path {} does not exist", path.display())
        }
        _ => crate::anyhow!("cannot read restore path {}: {e}", path.display()),
    })?;
    if meta.is_file() {
        if path.file_name().and_then(|n| n.to_str()) != Some(METADATA_FILE) {
            crate::bail!(
                "restore path {} is not a checkpoint or savepoint: expected a directory or its {METADATA_FILE} file",
                path.display()
            );
        }
        return Ok(Location::Local(
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        ));
    }
    if !path.join(METADATA_FILE).is_file() {
        // A job's checkpoint directory (`<dir>/<job-id>`) means its latest complete checkpoint.
        if let Some(latest) = latest_complete_checkpoint(path) {
            return Ok(latest);
        }
        crate::bail!(
            "restore path {} is not a checkpoint or savepoint: it has no {METADATA_FILE} file (an incomplete checkpoint is never restored)",
            path.display()
        );
    }
    Ok(loc)
}

/// [`resolve_snapshot_dir`] in an object store, where a "directory" is a key prefix.
fn resolve_object_snapshot_dir(loc: Location) -> Result<Location> {
    if loc.file_name() == Some(METADATA_FILE) && crate::storage::size(&loc)?.is_some() {
        return Ok(loc.parent().unwrap_or(loc));
    }
    if crate::storage::size(&loc.join(METADATA_FILE))?.is_some() {
        return Ok(loc);
    }
    if let Some(latest) = latest_complete_checkpoint(&loc) {
        return Ok(latest);
    }
    let any = crate::storage::any_under(&loc)?;
    if !any {
        crate::bail!("restore path {loc} does not exist");
    }
    crate::bail!(
        "restore path {loc} is not a checkpoint or savepoint: it has no {METADATA_FILE} file (an incomplete checkpoint is never restored)"
    )
}

/// The newest `chk-<n>` under `job_dir` that has a `_metadata` file, if any.
pub fn latest_complete_checkpoint(job_dir: impl Into<Location>) -> Option<Location> {
    let job_dir = job_dir.into();
    let mut ids: Vec<u64> = match &job_dir {
        Location::Local(p) => fs::read_dir(p)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_checkpoint_dir_name(e.file_name().to_str()?))
            .collect(),
        Location::Object(_) => crate::storage::list_dirs(&job_dir)
            .ok()?
            .iter()
            .filter_map(|n| parse_checkpoint_dir_name(n))
            .collect(),
    };
    ids.sort_unstable();
    ids.into_iter().rev().find_map(|n| {
        let chk = job_dir.join(&checkpoint_dir_name(n));
        let complete = match &chk {
            Location::Local(p) => p.join(METADATA_FILE).is_file(),
            o => matches!(crate::storage::size(&o.join(METADATA_FILE)), Ok(Some(_))),
        };
        complete.then_some(chk)
    })
}

/// Reads and validates the snapshot at `path` (directory or `_metadata`, local or in an
/// object store).
pub fn load_snapshot(path: impl Into<Location>) -> Result<LoadedSnapshot> {
    let dir = resolve_snapshot_dir(path)?;
    let mpath = dir.join(METADATA_FILE);
    let bytes = match &mpath {
        Location::Local(p) => {
            fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        o => crate::storage::read(o)?,
    };
    let metadata: CheckpointMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| crate::anyhow!("corrupt metadata file {mpath}: {e}"))?;
    if metadata.format != FORMAT {
        crate::bail!(
            "corrupt metadata file {mpath}: unknown format '{}'",
            metadata.format
        );
    }
    if metadata.version > VERSION {
        crate::bail!(
            "metadata file {mpath} has format version {}, newer than this Floe supports ({VERSION})",
            metadata.version
        );
    }
    match &metadata.checksum {
        Some(sum) if *sum == metadata.content_checksum()? => {}
        Some(_) => crate::bail!("corrupt metadata file {mpath}: checksum mismatch"),
        None => crate::bail!("corrupt metadata file {mpath}: no checksum"),
    }
    for op in &metadata.operators {
        for st in &op.subtasks {
            if let StateHandle::KeyedFile { file, size, .. } = &st.handle {
                if file.contains("..") || file.contains('/') || file.contains('\\') {
                    crate::bail!("corrupt metadata file {mpath}: state file name '{file}' is not a plain file name");
                }
                let fp = dir.join(file);
                let found = match &fp {
                    Location::Local(p) => fs::metadata(p).ok().map(|m| m.len()),
                    o => crate::storage::size(o)?,
                };
                match found {
                    Some(n) if n == *size => {}
                    Some(n) => crate::bail!(
                        "snapshot {dir} is incomplete: state file {fp} has {n} bytes, expected {size}"
                    ),
                    None => crate::bail!("snapshot {dir} is incomplete: state file {fp} is missing"),
                }
            }
        }
    }
    Ok(LoadedSnapshot { dir, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CheckpointMetadata {
        CheckpointMetadata::new(
            "0123456789abcdef0123456789abcdef",
            "j",
            7,
            SnapshotKind::Checkpoint,
            1,
            128,
            vec![],
        )
    }

    #[test]
    fn write_and_load_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let chk = d.path().join("chk-7");
        fs::create_dir(&chk).unwrap();
        assert!(load_snapshot(&chk)
            .unwrap_err()
            .to_string()
            .contains("has no _metadata"));
        write_metadata(&chk, &meta()).unwrap();
        assert!(!chk.join("_metadata.inprogress").exists());
        assert_eq!(load_snapshot(&chk).unwrap().metadata.checkpoint_id, 7);
        assert_eq!(
            load_snapshot(chk.join("_metadata")).unwrap().dir,
            Location::Local(chk.clone())
        );
        let missing = d.path().join("nope");
        assert!(load_snapshot(&missing)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        fs::write(chk.join("_metadata"), b"{garbage").unwrap();
        assert!(load_snapshot(&chk)
            .unwrap_err()
            .to_string()
            .starts_with("corrupt metadata file"));
        let other = d.path().join("x.txt");
        fs::write(&other, b"").unwrap();
        assert!(load_snapshot(&other)
            .unwrap_err()
            .to_string()
            .contains("is not a checkpoint or savepoint"));
    }

    #[test]
    fn a_job_directory_means_its_latest_complete_checkpoint() {
        let d = tempfile::tempdir().unwrap();
        for n in [3u64, 7, 12] {
            let c = d.path().join(checkpoint_dir_name(n));
            fs::create_dir(&c).unwrap();
            if n != 12 {
                let mut m = meta();
                m.checkpoint_id = n;
                write_metadata(&c, &m).unwrap();
            }
        }
        // chk-12 has no _metadata (incomplete): chk-7 is the latest complete one.
        let s = load_snapshot(d.path()).unwrap();
        assert_eq!(s.metadata.checkpoint_id, 7);
        assert_eq!(s.dir, Location::Local(d.path().join("chk-7")));
    }

    #[test]
    fn missing_state_file_is_incomplete() {
        let d = tempfile::tempdir().unwrap();
        let mut m = meta();
        m.operators.push(OperatorState {
            uid: "sum".into(),
            name: "Keyed Aggregation".into(),
            kind: OperatorKind::Keyed,
            parallelism: 1,
            max_parallelism: 128,
            subtasks: vec![SubtaskState {
                subtask: 0,
                handle: StateHandle::KeyedFile {
                    file: "sum-0.state".into(),
                    size: 3,
                    entries: 1,
                },
            }],
        });
        write_metadata(d.path(), &m).unwrap();
        assert!(load_snapshot(d.path())
            .unwrap_err()
            .to_string()
            .contains("is missing"));
        fs::write(d.path().join("sum-0.state"), b"ab").unwrap();
        assert!(load_snapshot(d.path())
            .unwrap_err()
            .to_string()
            .contains("expected 3"));
        fs::write(d.path().join("sum-0.state"), b"abc").unwrap();
        assert!(load_snapshot(d.path()).is_ok());
    }
}
