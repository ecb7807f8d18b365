//! Job manager high availability, the cluster daemon's side (Flink's job graph store):
//! with `high-availability.storageDir` set, the daemon records every job it starts there,
//! and a daemon started again after its host died — on the same host or another one, with
//! the same storage directory and `high-availability.cluster-id` — takes back every job
//! that had not reached a globally terminal state: it starts the job again with the same
//! job id, from its latest completed checkpoint. There is no leader election and no
//! standby: whoever restarts the daemon (an operator, a supervisor) makes it take its jobs
//! back.
//!
//! Layout under `<storageDir>/<cluster-id>/`:
//! - `jobs/<jobid>/submission.json`: the [`Submission`] (written by the daemon before the
//!   job's job manager starts);
//! - `jobs/<jobid>/state.json`: the job's [`JobHaState`] (written by its job manager, see
//!   [`floe::jobmanager::ha`]): attempt high-water mark, checkpoint directory, latest
//!   completed checkpoint, savepoints, terminal state;
//! - `blobs/<sha256>`: a copy of each job binary, content-addressed, so that a daemon on
//!   another host can run it.
//!
//! A job's record is removed once the job is globally terminal (FINISHED, CANCELED, FAILED
//! as its job manager announced it), as Flink removes its job graph; a job whose job
//! manager was lost (killed, its host gone) keeps its record: that is what it is for.

use crate::cluster::SubmitRequest;
use anyhow::{bail, Context as _, Result};
use floe::checkpoint::layout::parse_checkpoint_dir_name;
use floe::checkpoint::metadata::latest_complete_checkpoint;
use floe::config::{keys, Configuration};
use floe::jobmanager::ha::{is_complete, write_atomic, JobHaState, STATE_FILE};
use floe::JobId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const SUBMISSION_FILE: &str = "submission.json";

/// What the daemon records of a submitted job: enough to start it again, anywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Submission {
    /// The job's id: the job keeps it when it is taken back.
    pub job_id: JobId,
    /// The sha256 of the job binary; its copy is `blobs/<sha256>`.
    pub binary_sha256: String,
    /// Where the binary was submitted from (for messages).
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// `-s` of the submission.
    pub savepoint: Option<PathBuf>,
    /// `-n`.
    pub allow_non_restored_state: bool,
    /// `-p`.
    pub parallelism: Option<u32>,
    /// `-D` settings.
    pub dynamic: Vec<String>,
    /// When it was submitted, ms since the epoch.
    pub submitted: u64,
}

/// What this daemon's registry knows of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// Its job manager still runs (taken back from the registry).
    Running,
    /// It ended; `lost` when its job manager died without announcing a terminal state.
    Ended {
        /// The job manager was lost (not a terminal state of the job).
        lost: bool,
    },
}

/// What to do with one recorded job at daemon start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Its job manager runs: nothing to do.
    Leave,
    /// It reached a globally terminal state: its record goes.
    Remove,
    /// Start it again, from `savepoint` (its latest completed checkpoint, else the snapshot
    /// it was submitted with, else nothing).
    Resume {
        /// `-s` of the job manager taking it back.
        savepoint: Option<PathBuf>,
    },
}

/// Decides what happens to a recorded job (pure): `known` is what the local registry says
/// of it, `state` what its job manager recorded, `latest_in_dir` the newest complete
/// `chk-<n>` in its checkpoint directory (id and location), which may be newer than the
/// recorded one when its job manager died between completing a checkpoint and recording it.
pub(crate) fn decide(
    sub: &Submission,
    state: Option<&JobHaState>,
    known: Option<Known>,
    latest_in_dir: Option<(u64, PathBuf)>,
    recorded_is_complete: bool,
) -> Result<Decision> {
    match known {
        Some(Known::Running) => return Ok(Decision::Leave),
        Some(Known::Ended { lost: false }) => return Ok(Decision::Remove),
        _ => {}
    }
    if state.is_some_and(|s| s.terminal.is_some()) {
        return Ok(Decision::Remove);
    }
    let recorded = state.and_then(|s| s.latest_checkpoint.as_ref());
    let recorded_ok = recorded
        .filter(|_| recorded_is_complete)
        .map(|c| (c.id, c.location.clone()));
    let newest = [recorded_ok, latest_in_dir]
        .into_iter()
        .flatten()
        .max_by_key(|(id, _)| *id);
    match (newest, recorded) {
        (Some((_, location)), _) => Ok(Decision::Resume {
            savepoint: Some(location),
        }),
        // Its output up to that checkpoint may be committed: replaying from an older
        // snapshot would write it twice.
        (None, Some(c)) => bail!(
            "job {}: its latest completed checkpoint {} (id {}) is gone or incomplete; not taken back",
            sub.job_id,
            c.location.display(),
            c.id
        ),
        (None, None) => Ok(Decision::Resume {
            savepoint: sub.savepoint.clone(),
        }),
    }
}

/// A job to start again: the request and the job's id.
#[derive(Clone, Debug)]
pub(crate) struct Resume {
    /// The job's id.
    pub id: JobId,
    /// How to start it (its binary: the copy in the HA storage).
    pub request: SubmitRequest,
}

/// The cluster's high-availability storage directory (`<storageDir>/<cluster-id>`).
pub(crate) struct HaStore {
    root: PathBuf,
    /// Recording and removing a job, so that a blob is never removed while a new record
    /// starts to reference it.
    lock: Mutex<()>,
}

static STORE: OnceLock<Option<HaStore>> = OnceLock::new();

/// Sets up this daemon's HA storage from its configuration (once, at start).
pub(crate) fn init(conf: &Configuration) -> Result<()> {
    let store = HaStore::from_config(conf)?;
    if let Some(s) = &store {
        std::fs::create_dir_all(s.root.join("jobs"))
            .and_then(|_| std::fs::create_dir_all(s.root.join("blobs")))
            .with_context(|| {
                format!(
                    "cannot create high-availability storage {}",
                    s.root.display()
                )
            })?;
        eprintln!("High availability: recording jobs in {}", s.root.display());
    }
    let _ = STORE.set(store);
    Ok(())
}

/// This daemon's HA storage, when `high-availability.storageDir` is set.
pub(crate) fn store() -> Option<&'static HaStore> {
    STORE.get().and_then(Option::as_ref)
}

/// A job's job manager ended: its record goes when the job is globally terminal.
pub(crate) fn job_ended(id: JobId, lost: bool) {
    if let (Some(store), false) = (store(), lost) {
        if let Err(e) = store.remove(id) {
            eprintln!("warning: {e:#}");
        }
    }
}

/// The hex sha256 of the file at `path`.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

impl HaStore {
    /// The store `high-availability.storageDir` names (a path or `file://` URL), under
    /// `high-availability.cluster-id`; `None` without a storage directory.
    pub(crate) fn from_config(conf: &Configuration) -> Result<Option<HaStore>> {
        let Some(dir) = conf.get(keys::HIGH_AVAILABILITY_STORAGE_DIR)? else {
            return Ok(None);
        };
        let key = keys::HIGH_AVAILABILITY_STORAGE_DIR.name();
        let path = match dir.split_once("://") {
            None => PathBuf::from(&dir),
            Some(("file", p)) => PathBuf::from(p),
            Some((scheme, _)) => bail!(
                "{key}: '{dir}': {scheme}:// is not supported for high availability yet (use a path or file:// on a shared file system)"
            ),
        };
        if !path.is_absolute() {
            bail!("{key}: '{dir}' must be an absolute path");
        }
        let id = conf
            .get(keys::HIGH_AVAILABILITY_CLUSTER_ID)?
            .unwrap_or_else(|| "/default".into());
        let id = id.trim_matches('/');
        if id.is_empty() || id.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            bail!(
                "{}: '{id}' is not a valid cluster id (path segments, no '.' or '..')",
                keys::HIGH_AVAILABILITY_CLUSTER_ID.name()
            );
        }
        Ok(Some(HaStore {
            root: path.join(id),
            lock: Mutex::new(()),
        }))
    }

    /// The HA directory of job `id`, which its job manager gets in
    /// [`floe::jobmanager::ha::HA_DIR_ENV`].
    pub(crate) fn job_dir(&self, id: JobId) -> PathBuf {
        self.root.join("jobs").join(id.to_string())
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    /// Records the submission of job `id` (its binary copied into the store) before its job
    /// manager starts.
    pub(crate) fn record(&self, id: JobId, req: &SubmitRequest, submitted: u64) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let sha = sha256_file(&req.binary)?;
        let blob = self.blob(&sha);
        if !blob.is_file() {
            let tmp = self.root.join("blobs").join(format!(".{sha}.tmp"));
            std::fs::copy(&req.binary, &tmp)
                .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|_| std::fs::rename(&tmp, &blob))
                .with_context(|| {
                    format!(
                        "cannot copy job binary {} to {}",
                        req.binary.display(),
                        blob.display()
                    )
                })?;
        }
        let sub = Submission {
            job_id: id,
            binary_sha256: sha,
            binary: req.binary.clone(),
            args: req.args.clone(),
            savepoint: req.savepoint.clone(),
            allow_non_restored_state: req.allow_non_restored_state,
            parallelism: req.parallelism,
            dynamic: req.dynamic.clone(),
            submitted,
        };
        let dir = self.job_dir(id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(
            &dir.join(SUBMISSION_FILE),
            &serde_json::to_vec_pretty(&sub)?,
        )
    }

    /// Removes job `id`'s record, and its binary's copy when no other job uses it.
    pub(crate) fn remove(&self, id: JobId) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.job_dir(id);
        let sub = read_submission(&dir.join(SUBMISSION_FILE)).ok();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove HA record {}", dir.display()))
            }
        }
        if let Some(sub) = sub {
            let used = self
                .submissions()
                .iter()
                .any(|(_, s)| matches!(s, Ok(s) if s.binary_sha256 == sub.binary_sha256));
            if !used {
                let _ = std::fs::remove_file(self.blob(&sub.binary_sha256));
            }
        }
        Ok(())
    }

    /// Every recorded submission, by file (in submission order; unreadable ones as errors
    /// naming their file).
    fn submissions(&self) -> Vec<(PathBuf, Result<Submission>)> {
        let jobs = self.root.join("jobs");
        let mut out: Vec<(PathBuf, Result<Submission>)> = std::fs::read_dir(&jobs)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.parse::<JobId>().ok().filter(|id| id.to_string() == n))
                    .is_some()
            })
            .map(|e| {
                let file = e.path().join(SUBMISSION_FILE);
                let sub = read_submission(&file).and_then(|s| {
                    if Some(s.job_id.to_string().as_str()) != e.file_name().to_str() {
                        bail!(
                            "HA record {} is of job {}, not of the job its directory names",
                            file.display(),
                            s.job_id
                        );
                    }
                    Ok(s)
                });
                (file, sub)
            })
            .collect();
        out.sort_by_key(|(_, s)| s.as_ref().map(|s| s.submitted).unwrap_or(0));
        out
    }

    /// The jobs to take back at daemon start, each decided by [`decide`] with what the
    /// registry knows (`known`); records of globally terminal jobs are removed on the way.
    /// A record that cannot be read is an error naming its file; the others go on.
    pub(crate) fn to_take_back(
        &self,
        known: impl Fn(JobId) -> Option<Known>,
    ) -> Vec<Result<Resume>> {
        let mut out = Vec::new();
        for (file, sub) in self.submissions() {
            let one = sub.and_then(|sub| {
                let dir = self.job_dir(sub.job_id);
                let state = JobHaState::read(&dir.join(STATE_FILE))?;
                let in_dir = state
                    .as_ref()
                    .and_then(|s| s.checkpoint_dir.as_deref()?.to_str())
                    // A path, or the URL of a checkpoint directory in an object store.
                    .and_then(|d| floe::storage::Location::parse(d).ok())
                    .and_then(latest_complete_checkpoint)
                    .and_then(|l| {
                        let id = parse_checkpoint_dir_name(l.file_name()?)?;
                        let p = match l {
                            floe::storage::Location::Local(p) => p,
                            o => PathBuf::from(o.to_string()),
                        };
                        Some((id, p))
                    });
                let recorded_complete = state
                    .as_ref()
                    .and_then(|s| s.latest_checkpoint.as_ref())
                    .is_some_and(|c| is_complete(&c.location));
                let decision = decide(
                    &sub,
                    state.as_ref(),
                    known(sub.job_id),
                    in_dir,
                    recorded_complete,
                )?;
                Ok((sub, decision))
            });
            match one {
                Ok((_, Decision::Leave)) => {}
                Ok((sub, Decision::Remove)) => {
                    if let Err(e) = self.remove(sub.job_id) {
                        out.push(Err(e));
                    }
                }
                Ok((sub, Decision::Resume { savepoint })) => out.push(self.resume(sub, savepoint)),
                Err(e) => out.push(Err(e).with_context(|| {
                    format!("cannot take back the job recorded in {}", file.display())
                })),
            }
        }
        out
    }

    /// The request starting `sub` again from `savepoint`, running its binary's copy (whose
    /// content is checked first).
    fn resume(&self, sub: Submission, savepoint: Option<PathBuf>) -> Result<Resume> {
        let blob = self.blob(&sub.binary_sha256);
        let actual = sha256_file(&blob)?;
        if actual != sub.binary_sha256 {
            bail!(
                "job {}: its binary's copy {} is corrupt (sha256 {actual}); not taken back",
                sub.job_id,
                blob.display()
            );
        }
        ensure_executable(&blob)?;
        Ok(Resume {
            id: sub.job_id,
            request: SubmitRequest {
                binary: blob,
                args: sub.args,
                savepoint,
                allow_non_restored_state: sub.allow_non_restored_state,
                parallelism: sub.parallelism,
                dynamic: sub.dynamic,
            },
        })
    }
}

fn ensure_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o111 != 0o111 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

fn read_submission(file: &Path) -> Result<Submission> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("corrupt HA record {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe::jobmanager::ha::CheckpointPointer;
    use floe::JobStatus;

    fn sub() -> Submission {
        Submission {
            job_id: JobId::random(),
            binary_sha256: "00".into(),
            binary: "/bin/job".into(),
            args: vec![],
            savepoint: Some("/sp/savepoint-1".into()),
            allow_non_restored_state: false,
            parallelism: None,
            dynamic: vec![],
            submitted: 1,
        }
    }

    fn state(latest: Option<u64>, terminal: Option<JobStatus>) -> JobHaState {
        JobHaState {
            job_id: String::new(),
            attempt: Some(1),
            checkpoint_dir: Some("/c/j".into()),
            latest_checkpoint: latest.map(|id| CheckpointPointer {
                id,
                location: format!("/c/j/chk-{id}").into(),
            }),
            savepoints: vec![],
            terminal,
        }
    }

    fn resume(at: &str) -> Decision {
        Decision::Resume {
            savepoint: Some(at.into()),
        }
    }

    #[test]
    fn running_jobs_are_left_and_terminal_ones_removed() {
        let s = sub();
        let st = state(Some(3), None);
        assert_eq!(
            decide(&s, Some(&st), Some(Known::Running), None, true).unwrap(),
            Decision::Leave
        );
        // It announced its end while no daemon watched it.
        assert_eq!(
            decide(
                &s,
                Some(&st),
                Some(Known::Ended { lost: false }),
                None,
                true
            )
            .unwrap(),
            Decision::Remove
        );
        // Another host: no registry, but its job manager recorded FINISHED.
        for t in [JobStatus::Finished, JobStatus::Canceled, JobStatus::Failed] {
            let st = state(Some(3), Some(t));
            assert_eq!(
                decide(&s, Some(&st), None, None, true).unwrap(),
                Decision::Remove
            );
        }
    }

    #[test]
    fn a_lost_job_resumes_from_its_newest_complete_checkpoint() {
        let s = sub();
        let st = state(Some(3), None);
        let lost = Some(Known::Ended { lost: true });
        assert_eq!(
            decide(&s, Some(&st), lost, Some((3, "/c/j/chk-3".into())), true).unwrap(),
            resume("/c/j/chk-3")
        );
        // Completed but not yet recorded when its job manager died.
        assert_eq!(
            decide(&s, Some(&st), None, Some((4, "/c/j/chk-4".into())), true).unwrap(),
            resume("/c/j/chk-4")
        );
        // Never checkpointed: from what it was submitted with.
        let st0 = state(None, None);
        assert_eq!(
            decide(&s, Some(&st0), lost, None, false).unwrap(),
            resume("/sp/savepoint-1")
        );
        assert_eq!(
            decide(&s, None, None, None, false).unwrap(),
            resume("/sp/savepoint-1")
        );
        // Its recorded checkpoint is gone and nothing replaces it: never an older snapshot.
        let e = decide(&s, Some(&st), lost, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/c/j/chk-3") && e.contains("not taken back"),
            "{e}"
        );
    }

    #[test]
    fn the_store_records_removes_and_shares_binaries() {
        let d = tempfile::tempdir().unwrap();
        let mut conf = Configuration::new();
        conf.set(
            keys::HIGH_AVAILABILITY_STORAGE_DIR.name(),
            &format!("file://{}", d.path().display()),
        )
        .unwrap();
        conf.set(keys::HIGH_AVAILABILITY_CLUSTER_ID.name(), "/c1")
            .unwrap();
        let store = HaStore::from_config(&conf).unwrap().unwrap();
        assert_eq!(store.root, d.path().join("c1"));
        std::fs::create_dir_all(store.root.join("blobs")).unwrap();
        let bin = d.path().join("job");
        std::fs::write(&bin, b"#!/bin/sh\n").unwrap();
        let req = SubmitRequest {
            binary: bin.clone(),
            args: vec!["--x".into()],
            savepoint: None,
            allow_non_restored_state: false,
            parallelism: Some(2),
            dynamic: vec!["a=b".into()],
        };
        let (a, b) = (JobId::random(), JobId::random());
        store.record(a, &req, 1).unwrap();
        store.record(b, &req, 2).unwrap();
        let taken = store.to_take_back(|_| None);
        assert_eq!(taken.len(), 2);
        let r = taken[0].as_ref().unwrap();
        assert_eq!(r.id, a);
        assert_eq!(r.request.args, vec!["--x".to_string()]);
        assert_eq!(r.request.parallelism, Some(2));
        let blob = r.request.binary.clone();
        assert_eq!(std::fs::read(&blob).unwrap(), b"#!/bin/sh\n");
        // One job ended: the shared binary stays until the last one goes.
        store.remove(a).unwrap();
        assert!(blob.is_file());
        store.remove(b).unwrap();
        assert!(!blob.exists());
        assert!(store.to_take_back(|_| None).is_empty());
        // A corrupt record is one error naming its file; the other job is still taken back.
        store.record(a, &req, 1).unwrap();
        store.record(b, &req, 2).unwrap();
        let file = store.job_dir(a).join(SUBMISSION_FILE);
        std::fs::write(&file, b"{").unwrap();
        let taken = store.to_take_back(|_| None);
        assert_eq!(taken.len(), 2);
        let e = format!("{:#}", taken[0].as_ref().unwrap_err());
        assert!(
            e.contains(&file.display().to_string()) && !e.contains('\n'),
            "{e}"
        );
        assert_eq!(taken[1].as_ref().unwrap().id, b);
        for bad in ["s3://b/p", "relative/dir"] {
            let mut c = Configuration::new();
            c.set(keys::HIGH_AVAILABILITY_STORAGE_DIR.name(), bad)
                .unwrap();
            let e = HaStore::from_config(&c).err().unwrap().to_string();
            assert!(e.contains("high-availability.storageDir"), "{e}");
        }
    }
}
