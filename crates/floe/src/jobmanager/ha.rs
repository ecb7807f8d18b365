//! Job manager high availability, the per-job side: the job's state in the cluster's
//! high-availability storage directory (`high-availability.storageDir`), so that a session
//! cluster started again after its job manager host died resumes the job with the same id
//! from its latest completed checkpoint.
//!
//! A session cluster with HA passes each job it starts the job's HA directory in
//! [`HA_DIR_ENV`]. The job manager then keeps [`JobHaState`] there, in [`STATE_FILE`],
//! replaced atomically (temporary file + rename): at every deploy (the attempt high-water
//! mark, before the attempt's tasks can write anything named after their attempt), after
//! every completed checkpoint or savepoint (before the tasks are told to commit: Flink adds
//! a checkpoint to its completed-checkpoint store before `notifyCheckpointComplete`), and
//! when the job reaches a globally terminal state. A job manager started with a state file
//! present is a resumed one: its first attempt comes after every attempt the dead one
//! deployed, so part files named after attempts never collide and the sinks' recovery
//! discards exactly the dead attempts' uncommitted files; the savepoints the dead one took
//! keep protecting the output they name. The daemon's side (what was submitted, which jobs
//! to take back) is `floe-cli`'s `ha` module.

use crate::checkpoint::layout::{parse_checkpoint_dir_name, METADATA_FILE};
use crate::job::JobStatus;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable with the job's directory in the HA storage, set by a session
/// cluster with `high-availability.storageDir`.
pub const HA_DIR_ENV: &str = "FLOE_HA_JOB_DIR";

/// The job's HA state file inside its HA directory.
pub const STATE_FILE: &str = "state.json";

/// A completed checkpoint, as the HA state names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPointer {
    /// Its id.
    pub id: u64,
    /// Its directory (`<checkpoint-dir>/<job-id>/chk-<id>`).
    pub location: PathBuf,
}

/// What a job manager records about its job for a job manager that takes the job back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHaState {
    /// The job's id.
    pub job_id: String,
    /// The highest attempt number any job manager of this job deployed (`None`: none yet).
    pub attempt: Option<u32>,
    /// The job's checkpoint directory (`<checkpoint-dir>/<job-id>`), when it stores checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// The latest completed checkpoint (a stop-with-savepoint's `chk-<n>` copy included).
    pub latest_checkpoint: Option<CheckpointPointer>,
    /// Savepoints taken while the job ran: the output they name is never discarded.
    pub savepoints: Vec<PathBuf>,
    /// The globally terminal state the job reached, once it did: it is not resumed then.
    pub terminal: Option<JobStatus>,
}

impl JobHaState {
    /// The first attempt a job manager taking the job back deploys: after every attempt
    /// deployed before.
    pub fn next_attempt(&self) -> u32 {
        self.attempt.map_or(0, |a| a.saturating_add(1))
    }

    /// Reads the state file `path`; `None` when there is none. A state file that cannot be
    /// read or parsed is an error naming it.
    pub fn read(path: &Path) -> Result<Option<JobHaState>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => crate::bail!("cannot read HA state {}: {e}", path.display()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::anyhow!("corrupt HA state {}: {e}", path.display()))
    }
}

/// Writes `bytes` to `path` atomically: a crash leaves the old content or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("ha");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| crate::anyhow!("cannot write {}: {e}", path.display()))
}

/// The job's HA state, kept by its job manager.
pub(crate) struct JobHa {
    file: PathBuf,
    state: JobHaState,
}

impl JobHa {
    /// The HA state of job `job_id` in its HA directory `dir` (from [`HA_DIR_ENV`], set when
    /// a session cluster with HA started this process): the state a dead job manager of the
    /// job left, or a new one.
    pub(crate) fn open(dir: Option<PathBuf>, job_id: &str) -> Result<Option<JobHa>> {
        let Some(dir) = dir else {
            return Ok(None);
        };
        let file = dir.join(STATE_FILE);
        let state = match JobHaState::read(&file)? {
            Some(s) if s.job_id != job_id => crate::bail!(
                "HA state {} is of job {}, not of this job {job_id}",
                file.display(),
                s.job_id
            ),
            Some(s) => s,
            None => JobHaState {
                job_id: job_id.into(),
                ..JobHaState::default()
            },
        };
        Ok(Some(JobHa { file, state }))
    }

    /// The state as recorded.
    pub(crate) fn state(&self) -> &JobHaState {
        &self.state
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| crate::anyhow!("cannot encode HA state: {e}"))?;
        write_atomic(&self.file, &bytes)
    }

    /// Attempt `attempt` is about to deploy (checkpoints in `checkpoint_dir`).
    pub(crate) fn deployed(&mut self, attempt: u32, checkpoint_dir: Option<&Path>) -> Result<()> {
        self.state.attempt = Some(self.state.attempt.map_or(attempt, |a| a.max(attempt)));
        self.state.checkpoint_dir = checkpoint_dir.map(Path::to_path_buf);
        self.save()
    }

    /// A snapshot completed: `checkpoint` is the job's latest checkpoint when it was one;
    /// `savepoints` are those the job took so far.
    pub(crate) fn completed(
        &mut self,
        checkpoint: Option<CheckpointPointer>,
        savepoints: &[PathBuf],
    ) -> Result<()> {
        if let Some(c) = checkpoint {
            self.state.latest_checkpoint = Some(c);
        }
        self.state.savepoints = savepoints.to_vec();
        self.save()
    }

    /// The job reached the globally terminal state `status`.
    pub(crate) fn ended(&mut self, status: JobStatus) -> Result<()> {
        self.state.terminal = Some(status);
        self.save()
    }
}

/// The first checkpoint id a job whose checkpoints go to `job_dir` may use when the
/// coordinator would start at `next`: after every `chk-<n>` already there. A job manager
/// that died mid-checkpoint leaves a `chk-<n>` without `_metadata` (never restored: it is
/// incomplete); the job taking its place skips its id rather than failing to create it.
pub fn first_free_checkpoint_id(job_dir: &Path, next: u64) -> u64 {
    let highest = std::fs::read_dir(job_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_checkpoint_dir_name(e.file_name().to_str()?))
        .max();
    match highest {
        Some(h) if h >= next => h + 1,
        _ => next,
    }
}

/// Whether `dir` is a complete snapshot (it has its `_metadata`).
pub fn is_complete(dir: &Path) -> bool {
    // A local directory or an object store's URL (recorded as a path).
    crate::storage::Location::from_path(dir).is_ok_and(|l| l.join(METADATA_FILE).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_job_starts_after_every_attempt_and_checkpoint_of_the_dead_one() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(first_free_checkpoint_id(d.path(), 4), 4);
        std::fs::create_dir(d.path().join("chk-3")).unwrap();
        assert_eq!(first_free_checkpoint_id(d.path(), 4), 4);
        // Left half-written by a job manager that died: skipped, not reused.
        std::fs::create_dir(d.path().join("chk-5")).unwrap();
        std::fs::create_dir(d.path().join("shared")).unwrap();
        assert_eq!(first_free_checkpoint_id(d.path(), 4), 6);
        assert_eq!(first_free_checkpoint_id(&d.path().join("missing"), 2), 2);
        let s = JobHaState::default();
        assert_eq!(s.next_attempt(), 0);
        let s = JobHaState {
            attempt: Some(2),
            ..s
        };
        assert_eq!(s.next_attempt(), 3);
    }

    #[test]
    fn the_state_survives_a_round_trip_and_a_corrupt_one_names_its_file() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(STATE_FILE);
        let mut ha = JobHa {
            file: file.clone(),
            state: JobHaState {
                job_id: "j".into(),
                ..JobHaState::default()
            },
        };
        ha.deployed(0, Some(Path::new("/c/j"))).unwrap();
        ha.deployed(1, Some(Path::new("/c/j"))).unwrap();
        let chk = CheckpointPointer {
            id: 7,
            location: "/c/j/chk-7".into(),
        };
        ha.completed(Some(chk.clone()), &["/s/sp".into()]).unwrap();
        ha.completed(None, &["/s/sp".into(), "/s/sp2".into()])
            .unwrap();
        let read = JobHaState::read(&file).unwrap().unwrap();
        assert_eq!(read.attempt, Some(1));
        assert_eq!(read.latest_checkpoint, Some(chk));
        assert_eq!(read.savepoints.len(), 2);
        assert_eq!(read.terminal, None);
        ha.ended(JobStatus::Finished).unwrap();
        assert_eq!(
            JobHaState::read(&file).unwrap().unwrap().terminal,
            Some(JobStatus::Finished)
        );
        assert_eq!(JobHaState::read(&d.path().join("none")).unwrap(), None);
        std::fs::write(&file, b"{not json").unwrap();
        let e = JobHaState::read(&file).unwrap_err().to_string();
        assert!(e.contains(&file.display().to_string()), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
