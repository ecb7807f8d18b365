//! The job's status file: what a process supervising a job manager (the session cluster,
//! `floe run -d`) needs to know about its job, written by the job manager as a structured
//! document instead of being scraped from log lines.
//!
//! The supervisor names the file in [`STATUS_FILE_ENV`]; the first job of the process then
//! writes a [`JobAnnouncement`] there when its REST endpoint listens, on every status
//! transition (terminal ones included) and on every completed checkpoint. Each write is
//! atomic (a temporary file renamed over the old one), so a reader sees the previous
//! announcement or the new one, never a part. The last announcement of an ended job holds
//! its final details as its REST API served them, so the job can still be inspected after
//! its job manager is gone (Flink's archived execution graph).
//!
//! The Flink-style log lines stay as they are for people; nothing machine-reads them.

use super::info::JobInfo;
use super::rest::model;
use crate::job::JobStatus;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable naming the status file a supervisor wants.
pub const STATUS_FILE_ENV: &str = "FLOE_STATUS_FILE";

/// What a job manager announces about its job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAnnouncement {
    /// The job id (32 lowercase hex characters).
    pub job_id: String,
    /// The job's name.
    pub name: String,
    /// The job manager's process id.
    pub pid: u32,
    /// The job's own REST endpoint (`host:port`), when it serves one.
    pub rest: Option<String>,
    /// The job's status now.
    pub status: JobStatus,
    /// The job's details as its REST API answers them now.
    pub snapshot: JobSnapshot,
}

/// A job's REST answers at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSnapshot {
    /// `GET /jobs/overview` (its entry).
    pub overview: model::JobOverview,
    /// `GET /jobs/:jobid`.
    pub details: model::JobDetails,
    /// `GET /jobs/:jobid/exceptions`.
    pub exceptions: model::JobExceptions,
    /// `GET /jobs/:jobid/checkpoints`.
    pub checkpoints: model::CheckpointingStatistics,
    /// `GET /jobs/:jobid/checkpoints/config`, when checkpointing is enabled.
    pub checkpoint_config: Option<model::CheckpointConfigInfo>,
}

impl JobSnapshot {
    /// The snapshot of `info` at `now_ms`.
    pub fn of(info: &JobInfo, now_ms: u64) -> Self {
        JobSnapshot {
            overview: info.overview(now_ms),
            details: info.details(now_ms),
            exceptions: info.exceptions_info(),
            checkpoints: info.checkpoint_statistics(),
            checkpoint_config: info.checkpoint_config_info(),
        }
    }
}

impl JobAnnouncement {
    /// Reads the announcement at `path`: `Ok(None)` while there is none yet.
    pub fn read(path: &Path) -> std::io::Result<Option<JobAnnouncement>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes it to `path` atomically; a terminal one is also synced, so the final state
    /// survives a crash of the machine.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self)?)?;
        if self.status.is_terminal() {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}

/// Where and what a job manager announces.
#[derive(Clone, Debug)]
pub struct Announcer {
    path: PathBuf,
    rest: Option<String>,
}

impl Announcer {
    /// Announces `info` now. A failed write is logged, never fatal: the job runs on, its
    /// supervisor then sees an older status.
    pub fn announce(&self, info: &JobInfo) {
        let a = JobAnnouncement {
            job_id: info.job_id.clone(),
            name: info.name.clone(),
            pid: std::process::id(),
            rest: self.rest.clone(),
            status: info.status,
            snapshot: JobSnapshot::of(info, now_ms()),
        };
        if let Err(e) = a.write(&self.path) {
            tracing::warn!(
                "cannot write the job status file {}: {e}",
                self.path.display()
            );
        }
    }
}

static ATTACHED: AtomicBool = AtomicBool::new(false);

/// Makes the job of `info` announce itself to the file [`STATUS_FILE_ENV`] names, with its
/// REST endpoint `rest`, and announces it right away. Only the first job of a process
/// announces (a supervisor started the process for one job); without the variable nothing
/// is written.
pub fn attach(info: &std::sync::Mutex<JobInfo>, rest: Option<SocketAddr>) {
    use crate::sync::LockExt;
    let Some(path) = std::env::var_os(STATUS_FILE_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    if ATTACHED.swap(true, Ordering::SeqCst) {
        return;
    }
    let announcer = Announcer {
        path: PathBuf::from(path),
        rest: rest.map(|a| a.to_string()),
    };
    let mut info = info.lock_ok();
    announcer.announce(&info);
    info.announcer = Some(announcer);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::config::CheckpointConfig;

    #[test]
    fn an_announcement_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status.json");
        assert_eq!(JobAnnouncement::read(&path).unwrap(), None);
        let mut info = JobInfo::new("ab", "job", 2, CheckpointConfig::default(), 10);
        info.announcer = Some(Announcer {
            path: path.clone(),
            rest: Some("127.0.0.1:1".into()),
        });
        info.add_exception(11, "Map (1/2)", "boom");
        info.transition(JobStatus::Failed, 12);
        let a = JobAnnouncement::read(&path).unwrap().unwrap();
        assert_eq!(
            (a.status, a.rest.as_deref()),
            (JobStatus::Failed, Some("127.0.0.1:1"))
        );
        assert_eq!(a.snapshot.overview.end_time, 12);
        assert_eq!(a.snapshot.overview.tasks.failed, 2);
        assert_eq!(
            a.snapshot.exceptions.root_exception.as_deref(),
            Some("boom")
        );
        assert!(!dir.path().join("job.status.json.tmp").exists());
    }
}
