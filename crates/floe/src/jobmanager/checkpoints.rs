//! The effects side of the checkpoint coordinator: every file a checkpoint or savepoint
//! creates or deletes, driven by the coordinator's [`Action`]s — creating `chk-<n>` and
//! `savepoint-*`, writing `_metadata`, deleting aborted, subsumed and (per retention)
//! terminal checkpoints — and the replies to savepoint requests.

use super::client::{SavepointError, SavepointReply};
use super::events;
use super::info::JobInfo;
use super::lifecycle::{Event, StopKind, TaskFailure};
use super::{now_ms, savepoint_dir_name};
use crate::checkpoint::config::CheckpointConfig;
use crate::checkpoint::coordinator::{
    AbortReason, Action, CheckpointCoordinator, CheckpointId, SnapshotType,
    TOLERABLE_FAILURES_EXCEEDED,
};
use crate::checkpoint::metadata::{
    checkpoint_dir_name, write_metadata, CheckpointMetadata, LoadedSnapshot, OperatorState,
    SnapshotKind, StateHandle, SubtaskState, TaskId,
};
use crate::job::JobStatus;
use crate::runtime::plan::Plan;
use crate::runtime::protocol::{TaskExecutor, ToExecutor};
use crate::storage::Location;
use crate::sync::LockExt;
use crate::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A completed checkpoint or savepoint this job can restore from.
#[derive(Clone, Debug)]
struct Completed {
    id: CheckpointId,
    dir: Location,
    timestamp_ms: u64,
    snapshot: Arc<LoadedSnapshot>,
}

/// One job's checkpoints and savepoints on disk, and the coordinator deciding them.
pub(crate) struct Checkpoints {
    job_id: String,
    plan: Arc<Plan>,
    config: CheckpointConfig,
    savepoint_dir: Option<Location>,
    /// The snapshot the job started from (`-s`).
    initial: Option<Arc<LoadedSnapshot>>,
    /// `<checkpoint-dir>/<job-id>`, when checkpoints are stored.
    pub(crate) job_dir: Option<Location>,
    pub(crate) coordinator: CheckpointCoordinator,
    /// The job's own completed checkpoints (restore points), by id.
    completed: BTreeMap<CheckpointId, Completed>,
    /// Savepoints this job took while running; they are the user's, but output they name
    /// must survive a failover so that they stay restorable.
    pub(crate) savepoints: Vec<Location>,
    /// Directory and trigger time of every snapshot in progress.
    dirs: BTreeMap<CheckpointId, (Location, u64)>,
    /// Who waits for each savepoint in progress.
    requests: BTreeMap<CheckpointId, SavepointReply>,
    /// Durations of the completed checkpoints.
    pub(crate) durations: Vec<Duration>,
    info: Arc<Mutex<JobInfo>>,
}

impl Checkpoints {
    pub(crate) fn new(
        job_id: &str,
        plan: Arc<Plan>,
        config: CheckpointConfig,
        savepoint_dir: Option<Location>,
        initial: Option<Arc<LoadedSnapshot>>,
        info: Arc<Mutex<JobInfo>>,
    ) -> Self {
        let first_id = initial
            .as_ref()
            .map(|s| s.metadata.checkpoint_id + 1)
            .unwrap_or(1);
        Checkpoints {
            job_id: job_id.into(),
            plan,
            coordinator: CheckpointCoordinator::new(config.clone(), first_id),
            config,
            savepoint_dir,
            initial,
            job_dir: None,
            completed: BTreeMap::new(),
            savepoints: Vec::new(),
            dirs: BTreeMap::new(),
            requests: BTreeMap::new(),
            durations: Vec::new(),
            info,
        }
    }

    fn info(&self) -> std::sync::MutexGuard<'_, JobInfo> {
        self.info.lock_ok()
    }

    /// Where a failover restores from: the job's newest completed checkpoint, else the
    /// snapshot the job started from — never a savepoint taken while it ran. A savepoint is
    /// the user's (it may be disposed at any time) and commits nothing, so restoring the
    /// last checkpoint replays exactly what was not committed (Flink 1.15+).
    pub(crate) fn latest_restore_point(&self) -> Option<Arc<LoadedSnapshot>> {
        self.completed
            .values()
            .next_back()
            .map(|c| Arc::clone(&c.snapshot))
            .or(self.initial.clone())
    }

    fn chk_dir(&self, id: CheckpointId) -> Option<Location> {
        self.job_dir
            .as_ref()
            .map(|d| d.join(&checkpoint_dir_name(id.get())))
    }

    /// Triggers a savepoint (with `stop`, one after which the job ends) into `target` or
    /// the default savepoint directory; `status` is the job's, for the refusal message.
    pub(crate) fn start_savepoint(
        &mut self,
        target: Option<PathBuf>,
        stop: Option<StopKind>,
        status: JobStatus,
        exec: &dyn TaskExecutor,
    ) -> std::result::Result<CheckpointId, SavepointError> {
        let target = match target.as_deref().map(Location::from_path).transpose() {
            Ok(t) => t,
            Err(e) => {
                return Err(SavepointError::CreateDirectory {
                    dir: target.unwrap_or_default(),
                    error: format!("{e:#}"),
                })
            }
        };
        let Some(base) = target.or_else(|| self.savepoint_dir.clone()) else {
            return Err(SavepointError::NoDirectory);
        };
        let kind = if stop.is_some() {
            SnapshotType::StopWithSavepoint
        } else {
            SnapshotType::Savepoint
        };
        let Some(id) = self.coordinator.trigger_savepoint(Instant::now(), kind) else {
            return Err(SavepointError::NotRunning {
                job_id: self.job_id.clone(),
                status,
            });
        };
        let dir = base.join(&savepoint_dir_name(&self.job_id));
        let created = match (&base, &dir) {
            (Location::Local(b), Location::Local(d)) => {
                std::fs::create_dir_all(b).and_then(|_| std::fs::create_dir(d))
            }
            // An object store has no directories: the savepoint's keys make it.
            _ => Ok(()),
        };
        if let Err(e) = created {
            self.coordinator
                .decline(id, AbortReason::SavepointDirectoryNotCreated);
            return Err(SavepointError::CreateDirectory {
                dir: as_path(&dir),
                error: e.to_string(),
            });
        }
        events::triggering_savepoint(id, stop.is_some(), &self.job_id, &dir);
        self.dirs.insert(id, (dir.clone(), now_ms()));
        self.info().triggered(id.get(), true, now_ms());
        if stop.is_some() {
            exec.send(ToExecutor::StopSourcesAfter { id: id.get() });
        }
        exec.send(ToExecutor::TriggerCheckpoint { id: id.get(), dir });
        Ok(id)
    }

    /// Who waits for savepoint `id`.
    pub(crate) fn await_savepoint(&mut self, id: CheckpointId, reply: SavepointReply) {
        self.requests.insert(id, reply);
    }

    /// Carries out the coordinator's decisions; returns what they mean for the lifecycle
    /// (aborted snapshots; the job failing when too many checkpoints failed).
    pub(crate) fn perform(
        &mut self,
        actions: Vec<Action>,
        exec: Option<&dyn TaskExecutor>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Trigger { id } | Action::TriggerFinal { id } => {
                    let last = matches!(a, Action::TriggerFinal { .. });
                    let Some(dir) = self.chk_dir(id) else {
                        queue.extend(self.coordinator.decline(id, AbortReason::NoDirectory));
                        continue;
                    };
                    let ts = now_ms();
                    events::triggering_checkpoint(id, ts, &self.job_id);
                    let created = match &dir {
                        Location::Local(d) => std::fs::create_dir(d),
                        // No directories in an object store; chk-<n> is its keys.
                        Location::Object(_) => Ok(()),
                    };
                    match created {
                        Ok(()) => {
                            self.dirs.insert(id, (dir.clone(), ts));
                            self.info().triggered(id.get(), false, ts);
                            if let Some(e) = exec {
                                if last {
                                    e.send(ToExecutor::FinalCheckpoint { id: id.get() });
                                }
                                e.send(ToExecutor::TriggerCheckpoint { id: id.get(), dir });
                            }
                        }
                        Err(err) => {
                            let reason = AbortReason::DirectoryNotCreated {
                                dir,
                                error: err.to_string(),
                            };
                            // Triggered and failed: it counts in the statistics like any
                            // other failed checkpoint.
                            self.info().triggered(id.get(), false, ts);
                            queue.extend(self.coordinator.decline(id, reason));
                        }
                    }
                }
                Action::Finalize {
                    id,
                    acks,
                    duration,
                    kind,
                } => {
                    let fin = Instant::now();
                    match self.finalize(id, acks, kind) {
                        Ok(done) => {
                            let ms = duration.as_millis() + fin.elapsed().as_millis();
                            let size = done.size;
                            let path = done.dir.display().to_string();
                            self.info().completed(id.get(), size, &path, now_ms());
                            if kind.is_savepoint() {
                                events::completed_savepoint(id, &self.job_id, size, ms, &done.dir);
                                if let Some(r) = self.requests.remove(&id) {
                                    let _ = r.send(Ok(as_path(&done.dir)));
                                }
                            } else {
                                events::completed_checkpoint(
                                    id,
                                    &self.job_id,
                                    size,
                                    ms,
                                    fin.elapsed().as_millis(),
                                );
                                self.durations.push(duration + fin.elapsed());
                            }
                            if kind == SnapshotType::Savepoint {
                                self.savepoints.push(done.dir.clone());
                            }
                            if let Some(c) = done.checkpoint {
                                if kind == SnapshotType::StopWithSavepoint {
                                    events::stop_savepoint_is_checkpoint(id, &self.job_id, &c.dir);
                                }
                                self.completed.insert(id, c);
                            }
                            self.dirs.remove(&id);
                            if let Some(e) = exec {
                                e.send(if kind.commits_output() {
                                    ToExecutor::CheckpointComplete { id: id.get() }
                                } else {
                                    ToExecutor::SavepointComplete { id: id.get() }
                                });
                            }
                            queue.extend(self.coordinator.finalized(id, Instant::now()));
                        }
                        Err(err) => {
                            queue.extend(self.coordinator.finalize_failed(id, format!("{err:#}")));
                        }
                    }
                }
                Action::Abort { id, reason } => {
                    let savepoint = self.requests.contains_key(&id);
                    events::aborted(savepoint, id, &self.job_id, &reason);
                    if let Some((dir, _)) = self.dirs.remove(&id) {
                        remove_checkpoint(&dir);
                    }
                    self.info().failed(id.get(), &reason.to_string(), now_ms());
                    if let Some(r) = self.requests.remove(&id) {
                        let _ = r.send(Err(SavepointError::Aborted(reason)));
                    }
                    out.push(Event::SnapshotAborted(id));
                    if let Some(e) = exec {
                        e.send(ToExecutor::CheckpointAborted { id: id.get() });
                    }
                }
                Action::Discard { id } => {
                    if let Some(c) = self.completed.remove(&id) {
                        remove_checkpoint(&c.dir);
                    }
                }
                Action::FailJob => {
                    out.push(Event::TaskFailed(TaskFailure {
                        task: "Checkpoint Coordinator".into(),
                        error: TOLERABLE_FAILURES_EXCEEDED.into(),
                        unrecoverable: None,
                    }));
                    return out;
                }
            }
        }
        out
    }

    /// Writes `_metadata` of snapshot `id`. A stop-with-savepoint is also stored as the
    /// job's checkpoint `chk-<id>` (see [`SnapshotType::StopWithSavepoint`]).
    fn finalize(
        &self,
        id: CheckpointId,
        acks: BTreeMap<TaskId, StateHandle>,
        kind: SnapshotType,
    ) -> Result<Finalized> {
        let (dir, ts) = self
            .dirs
            .get(&id)
            .cloned()
            .ok_or_else(|| crate::anyhow!("no directory for checkpoint {id}"))?;
        let id = id.get();
        let plan = &self.plan;
        let mut ops: Vec<OperatorState> = Vec::new();
        for (o, kind) in plan
            .operators
            .iter()
            .filter_map(|o| o.state.map(|k| (o, k)))
        {
            let subtasks: Vec<SubtaskState> = acks
                .iter()
                .filter(|(t, _)| t.uid == o.uid)
                .map(|(t, h)| SubtaskState {
                    subtask: t.subtask,
                    handle: h.clone(),
                })
                .collect();
            ops.push(OperatorState {
                uid: o.uid.clone(),
                name: o.name.clone(),
                kind,
                parallelism: o.parallelism,
                max_parallelism: plan.max_parallelism,
                subtasks,
            });
        }
        let snapshot_kind = if kind.is_savepoint() {
            SnapshotKind::Savepoint
        } else {
            SnapshotKind::Checkpoint
        };
        let meta = CheckpointMetadata::new(
            &self.job_id,
            &plan.job_name,
            id,
            snapshot_kind,
            ts,
            plan.max_parallelism,
            ops,
        );
        let checkpoint = match kind {
            SnapshotType::Savepoint => None,
            SnapshotType::Checkpoint => Some(dir.clone()),
            // Without a checkpoint directory the job has no restore points of its own.
            SnapshotType::StopWithSavepoint => self.chk_dir(CheckpointId(id)),
        };
        let mut size = meta.state_size();
        if kind == SnapshotType::StopWithSavepoint {
            if let Some(chk) = &checkpoint {
                // First the job's copy: the savepoint only counts once failover can restore
                // its committed output without it.
                let mut as_checkpoint = meta.clone();
                as_checkpoint.kind = SnapshotKind::Checkpoint;
                if let Err(e) = link_snapshot(&dir, chk, &as_checkpoint) {
                    remove_checkpoint(chk);
                    return Err(e);
                }
            }
        }
        match write_metadata(&dir, &meta) {
            Ok(n) => size += n,
            Err(e) => {
                if kind == SnapshotType::StopWithSavepoint {
                    if let Some(chk) = &checkpoint {
                        remove_checkpoint(chk);
                    }
                }
                return Err(e);
            }
        }
        let checkpoint = checkpoint.map(|chk| {
            let mut metadata = meta.clone();
            metadata.kind = SnapshotKind::Checkpoint;
            Completed {
                id: CheckpointId(id),
                dir: chk.clone(),
                timestamp_ms: ts,
                snapshot: Arc::new(LoadedSnapshot { dir: chk, metadata }),
            }
        });
        Ok(Finalized {
            size,
            dir,
            checkpoint,
        })
    }

    /// Deletes or keeps this job's checkpoints for a terminal state, per retention. Savepoints
    /// and the snapshot the job was started from are never deleted: they belong to the user.
    /// A job that FAILED keeps its latest checkpoint whatever the retention says: it is the
    /// only state left to resume from (`floe run -s <checkpoint-dir>/<job-id>`).
    pub(crate) fn apply_retention(&mut self, status: JobStatus) {
        let keep = self.config.retention.keeps_on(status);
        if !keep && status == JobStatus::Failed {
            if let Some((&id, last)) = self.completed.iter().next_back() {
                let last_dir = last.dir.clone();
                events::retaining_last_of_failed(
                    id,
                    &last_dir,
                    &self.job_id,
                    self.config.retention.as_str(),
                );
                for c in std::mem::take(&mut self.completed).into_values() {
                    if c.id != id {
                        remove_checkpoint(&c.dir);
                    }
                }
                return;
            }
        }
        if keep {
            for c in self.completed.values() {
                events::retaining(
                    c.id,
                    &c.dir,
                    c.timestamp_ms,
                    &self.job_id,
                    status,
                    self.config.retention.as_str(),
                );
            }
            return;
        }
        for c in std::mem::take(&mut self.completed).into_values() {
            remove_checkpoint(&c.dir);
        }
        if let Some(Location::Local(d)) = &self.job_dir {
            // Only an empty job directory is removed: nothing else is ever deleted.
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// What finalizing a snapshot wrote.
struct Finalized {
    /// Bytes of state and metadata.
    size: u64,
    /// Where `_metadata` was written (the savepoint's directory for savepoints).
    dir: Location,
    /// The job's checkpoint it completed (for a stop-with-savepoint, its `chk-<n>` copy).
    checkpoint: Option<Completed>,
}

/// Stores the snapshot in `from` (state files written, `_metadata` not yet) also as the
/// checkpoint `to`: its state files hard-linked (copied across file systems; copied
/// server-side in an object store), then its own `_metadata`. Each directory stays
/// self-contained, so disposing the savepoint leaves the checkpoint intact and vice versa.
fn link_snapshot(from: &Location, to: &Location, meta: &CheckpointMetadata) -> Result<()> {
    if let Location::Local(to) = to {
        std::fs::create_dir(to).map_err(|e| {
            crate::anyhow!("cannot create checkpoint directory {}: {e}", to.display())
        })?;
    }
    for op in &meta.operators {
        for st in &op.subtasks {
            if let StateHandle::KeyedFile { file, .. } = &st.handle {
                let (src, dst) = (from.join(file), to.join(file));
                match (&src, &dst) {
                    (Location::Local(src), Location::Local(dst)) => link_file(src, dst)?,
                    (Location::Object(_), Location::Object(_)) => crate::storage::copy(&src, &dst)?,
                    // Checkpoints and savepoints in different kinds of storage.
                    _ => copy_across(&src, &dst)?,
                }
            }
        }
    }
    write_metadata(to, meta)?;
    Ok(())
}

/// Hard-links `src` to `dst`, or copies and syncs it when they are on different file systems.
fn link_file(src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(|e| {
            crate::anyhow!("cannot copy {} to {}: {e}", src.display(), dst.display())
        })?;
        std::fs::File::open(dst)
            .and_then(|f| f.sync_all())
            .map_err(|e| crate::anyhow!("cannot sync {}: {e}", dst.display()))?;
    }
    Ok(())
}

/// Copies a state file between a local directory and an object store.
fn copy_across(src: &Location, dst: &Location) -> Result<()> {
    let bytes = match src {
        Location::Local(p) => {
            std::fs::read(p).map_err(|e| crate::anyhow!("cannot read {}: {e}", p.display()))?
        }
        o => crate::storage::read(o)?,
    };
    match dst {
        Location::Local(p) => std::fs::write(p, &bytes)
            .and_then(|_| std::fs::File::open(p)?.sync_all())
            .map_err(|e| crate::anyhow!("cannot write {}: {e}", p.display())),
        o => crate::storage::write(o, bytes),
    }
}

/// Deletes a checkpoint's directory, or every object under its prefix.
fn remove_checkpoint(dir: &Location) {
    match dir {
        Location::Local(p) => {
            if let Err(e) = std::fs::remove_dir_all(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    events::discard_failed(dir, &e);
                }
            }
        }
        o => {
            if let Err(e) = crate::storage::delete_all(o) {
                events::discard_failed(dir, &format!("{e:#}"));
            }
        }
    }
}

/// A location as the path the job client API returns: the local path, or the URL.
fn as_path(l: &Location) -> PathBuf {
    match l {
        Location::Local(p) => p.clone(),
        o => PathBuf::from(o.to_string()),
    }
}

/// Creates `<root>/<job-id>` for a job's checkpoints and checks that it is writable (a
/// probe file written and removed), so that a wrong directory or wrong object-store
/// credentials fail the job at its start with one line naming the location, not every
/// checkpoint later.
pub(crate) fn prepare_job_dir(root: &Location, job_id: &str) -> Result<Location> {
    let dir = crate::checkpoint::layout::job_checkpoint_dir(root, job_id);
    let probe = dir.join(crate::checkpoint::layout::WRITE_PROBE_FILE);
    match (&dir, &probe) {
        (Location::Local(d), Location::Local(p)) => {
            std::fs::create_dir_all(d).map_err(|e| {
                crate::anyhow!("cannot create checkpoint directory {}: {e}", d.display())
            })?;
            std::fs::write(p, b"").map_err(|e| {
                crate::anyhow!("checkpoint directory {} is not writable: {e}", d.display())
            })?;
            let _ = std::fs::remove_file(p);
        }
        _ => {
            crate::storage::write(&probe, Vec::new())
                .map_err(|e| crate::anyhow!("checkpoint directory {dir} is not writable: {e:#}"))?;
            let _ = crate::storage::delete_all(&probe);
        }
    }
    Ok(dir)
}
