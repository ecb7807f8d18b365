//! Checkpoint configuration, with Flink's names and defaults.

pub use crate::config::keys::{CheckpointingMode, ExternalizedCheckpointRetention};
use crate::config::{keys, ConfigError, Configuration, Key, OptionValue};
use std::time::Duration;

impl ExternalizedCheckpointRetention {
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
        if conf.is_set(keys::CHECKPOINTING_INTERVAL) {
            self.interval = conf.get(keys::CHECKPOINTING_INTERVAL)?;
        }
        // Only keys set in `conf` override: an unset key's default must not undo a value
        // an earlier layer set.
        fn set<T: OptionValue>(
            conf: &Configuration,
            key: Key<T>,
            field: &mut T,
        ) -> Result<(), ConfigError> {
            if conf.is_set(key) {
                if let Some(v) = conf.get(key)? {
                    *field = v;
                }
            }
            Ok(())
        }
        set(conf, keys::CHECKPOINTING_MODE, &mut self.mode)?;
        set(conf, keys::CHECKPOINTING_TIMEOUT, &mut self.timeout)?;
        set(conf, keys::CHECKPOINTING_MIN_PAUSE, &mut self.min_pause)?;
        set(
            conf,
            keys::MAX_CONCURRENT_CHECKPOINTS,
            &mut self.max_concurrent,
        )?;
        set(
            conf,
            keys::TOLERABLE_FAILED_CHECKPOINTS,
            &mut self.tolerable_failures,
        )?;
        set(
            conf,
            keys::EXTERNALIZED_CHECKPOINT_RETENTION,
            &mut self.retention,
        )?;
        set(conf, keys::NUM_RETAINED_CHECKPOINTS, &mut self.num_retained)?;
        Ok(())
    }
}
