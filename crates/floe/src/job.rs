//! What identifies a job and where it stands: its id (32 hexadecimal characters, as Flink's
//! `JobID`), its status with Flink's names, and what a finished job reports. A leaf module:
//! `checkpoint/`, `jobmanager/` and `api/` all depend on it, it depends on none of them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Terminal and non-terminal states of a job, with Flink's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Being set up.
    Created,
    /// Tasks are running.
    Running,
    /// A failure is being handled; the restart strategy allowed a restart.
    Restarting,
    /// The restart strategy gave up.
    Failing,
    /// Terminal: failed.
    Failed,
    /// Being cancelled.
    Cancelling,
    /// Terminal: cancelled.
    Canceled,
    /// Terminal: all input processed.
    Finished,
}

impl JobStatus {
    /// True for the globally terminal states FINISHED, CANCELED and FAILED (Flink's
    /// `JobStatus.isGloballyTerminalState`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        )
    }

    /// Flink's spelling, e.g. `RUNNING`.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Failing => "FAILING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobExecutionResult {
    /// The job id (32 lowercase hex).
    pub job_id: String,
    /// Final status (FINISHED or CANCELED; FAILED is returned as an error).
    pub status: JobStatus,
    /// Wall time from submission to the terminal state.
    pub net_runtime: Duration,
    /// Number of restarts.
    pub restarts: u32,
    /// Number of completed checkpoints.
    pub checkpoints: u64,
    /// Durations of completed checkpoints, trigger to `_metadata`, in completion order.
    pub checkpoint_durations: Vec<Duration>,
}

/// A job id. Printed as 32 lowercase hex characters; parsed from 32 hex characters of either
/// case, as Flink's `JobID.fromHexString`.
///
/// ```
/// use floe::JobId;
/// let id: JobId = "FD72014D4C864993A2E5A9287B4A9C5D".parse().unwrap();
/// assert_eq!(id.to_string(), "fd72014d4c864993a2e5a9287b4a9c5d");
/// let err = "bad/../id".parse::<JobId>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid job id 'bad/../id': expected 32 hexadecimal characters, e.g. fd72014d4c864993a2e5a9287b4a9c5d");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u128);

impl JobId {
    /// A new random job id.
    pub fn random() -> Self {
        JobId(rand::random())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a string is not a job id; renders as one line that quotes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidJobId(String);

impl fmt::Display for InvalidJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escaped and capped: the input may be anything a user or a URL carried.
        let shown: String = self.0.chars().take(80).collect();
        let more = if self.0.chars().count() > 80 {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "invalid job id '{}{more}': expected 32 hexadecimal characters, e.g. fd72014d4c864993a2e5a9287b4a9c5d",
            shown.escape_debug()
        )
    }
}

impl std::error::Error for InvalidJobId {}

impl FromStr for JobId {
    type Err = InvalidJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidJobId(s.to_string()));
        }
        u128::from_str_radix(s, 16)
            .map(JobId)
            .map_err(|_| InvalidJobId(s.to_string()))
    }
}

/// A job id is a string in JSON (REST bodies, registries): its 32 lowercase hex characters.
impl serde::Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_one_line_errors() {
        let id = JobId::random();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!(id.to_string().len(), 32);
        for bad in [
            "",
            "abc",
            "+0000000000000000000000000000000",
            "g".repeat(32).as_str(),
            "a\nb",
        ] {
            let e = bad.parse::<JobId>().unwrap_err().to_string();
            assert!(
                e.starts_with("invalid job id '") && !e.contains('\n'),
                "{e}"
            );
        }
        let long = "x".repeat(10_000).parse::<JobId>().unwrap_err().to_string();
        assert!(long.len() < 200, "{long}");
    }
}

/// Environment variable with the job id a session cluster chose for the job it starts, so
/// it can name the job's files and its registry record before the process runs.
pub const JOB_ID_ENV: &str = "FLOE_JOB_ID";
