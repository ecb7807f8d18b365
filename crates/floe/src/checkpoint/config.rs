//! Checkpoint configuration, with Flink's names and defaults.

use crate::config::{ConfigError, Configuration};
use std::time::Duration;

/// Consistency guarantee of checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckpointingMode {
    /// Every record affects state exactly once (aligned checkpoints). The default.
    ExactlyOnce,
    /// Records may be applied more than once after a restore.
    AtLeastOnce,
}

impl CheckpointingMode {
    /// Flink's spelling: `EXACTLY_ONCE` / `AT_LEAST_ONCE`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE",
            CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE",
        }
    }
}

/// What happens to retained checkpoints when the job reaches a terminal state
/// (Flink's `ExternalizedCheckpointRetention`).
///
/// | | FINISHED | CANCELED | FAILED |
/// |---|---|---|---|
/// | `NoExternalizedCheckpoints` | deleted | deleted | deleted |
/// | `DeleteOnCancellation` | deleted | deleted | kept |
/// | `RetainOnCancellation` | deleted | kept | kept |
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExternalizedCheckpointRetention {
    /// Checkpoints are deleted on every terminal state. The default.
    NoExternalizedCheckpoints,
    /// Checkpoints are kept only when the job FAILED.
    DeleteOnCancellation,
    /// Checkpoints are kept when the job FAILED or was CANCELED.
    RetainOnCancellation,
}

impl ExternalizedCheckpointRetention {
    /// Flink's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoExternalizedCheckpoints => "NO_EXTERNALIZED_CHECKPOINTS",
            Self::DeleteOnCancellation => "DELETE_ON_CANCELLATION",
            Self::RetainOnCancellation => "RETAIN_ON_CANCELLATION",
        }
    }

    /// Whether checkpoints survive the job ending in `status`.
    pub fn keeps_on(&self, status: crate::job::JobStatus) -> bool {
        use crate::job::JobStatus::*;
        match (self, status) {
            (_, Finished) => false,
            (Self::NoExternalizedCheckpoints, _) => false,
            (Self::DeleteOnCancellation, Failed) => true,
            (Self::DeleteOnCancellation, _) => false,
            (Self::RetainOnCancellation, Failed | Canceled) => true,
            (Self::RetainOnCancellation, _) => false,
        }
    }
}

/// Everything that decides when checkpoints are taken and kept.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// Interval between checkpoint triggers; `None` disables checkpointing.
    pub interval: Option<Duration>,
    /// Exactly-once or at-least-once.
    pub mode: CheckpointingMode,
    /// A checkpoint not complete within this time is aborted and its files removed.
    pub timeout: Duration,
    /// Minimum time between the end of one checkpoint and the trigger of the next.
    pub min_pause: Duration,
    /// How many checkpoints may be in progress at once.
    pub max_concurrent: u32,
    /// Consecutive checkpoint failures tolerated before the job fails.
    pub tolerable_failures: u32,
    /// Retention of checkpoints on terminal job states.
    pub retention: ExternalizedCheckpointRetention,
    /// Number of completed checkpoints kept; older `chk-*` are deleted.
    pub num_retained: u32,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: None,
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failures: 0,
            retention: ExternalizedCheckpointRetention::NoExternalizedCheckpoints,
            num_retained: 1,
        }
    }
}

impl CheckpointConfig {
    /// Reads `execution.checkpointing.*` keys; unset keys keep Flink's defaults.
    pub fn from_config(conf: &Configuration) -> Result<Self, ConfigError> {
        let mut c = CheckpointConfig::default();
        c.apply(conf)?;
        Ok(c)
    }

    /// Overrides the fields whose keys are set in `conf`.
    pub fn apply(&mut self, conf: &Configuration) -> Result<(), ConfigError> {
        if conf.contains("execution.checkpointing.interval") {
            self.interval = conf.get_duration("execution.checkpointing.interval")?;
        }
        if conf.contains("execution.checkpointing.mode") {
            self.mode = match conf.get_string("execution.checkpointing.mode")?.as_deref() {
                Some("AT_LEAST_ONCE") => CheckpointingMode::AtLeastOnce,
                _ => CheckpointingMode::ExactlyOnce,
            };
        }
        if conf.contains("execution.checkpointing.timeout") {
            self.timeout = conf
                .get_duration("execution.checkpointing.timeout")?
                .unwrap_or(self.timeout);
        }
        if conf.contains("execution.checkpointing.min-pause") {
            self.min_pause = conf
                .get_duration("execution.checkpointing.min-pause")?
                .unwrap_or(self.min_pause);
        }
        if conf.contains("execution.checkpointing.max-concurrent-checkpoints") {
            self.max_concurrent = conf
                .get_u32("execution.checkpointing.max-concurrent-checkpoints")?
                .unwrap_or(self.max_concurrent);
        }
        if conf.contains("execution.checkpointing.tolerable-failed-checkpoints") {
            self.tolerable_failures = conf
                .get_u32("execution.checkpointing.tolerable-failed-checkpoints")?
                .unwrap_or(self.tolerable_failures);
        }
        if conf.contains("execution.checkpointing.externalized-checkpoint-retention") {
            self.retention = match conf
                .get_string("execution.checkpointing.externalized-checkpoint-retention")?
                .as_deref()
            {
                Some("DELETE_ON_CANCELLATION") => {
                    ExternalizedCheckpointRetention::DeleteOnCancellation
                }
                Some("RETAIN_ON_CANCELLATION") => {
                    ExternalizedCheckpointRetention::RetainOnCancellation
                }
                _ => ExternalizedCheckpointRetention::NoExternalizedCheckpoints,
            };
        }
        if conf.contains("execution.checkpointing.num-retained") {
            self.num_retained = conf
                .get_u32("execution.checkpointing.num-retained")?
                .unwrap_or(self.num_retained);
        }
        Ok(())
    }
}
