//! Every configuration key Floe reads, as a typed constant.
//!
//! A key is declared once here, with the type its value is read as; [`super::OPTIONS`]
//! describes it (default, aliases, range) under the same constant, and code reads it
//! through [`Configuration::get`](super::Configuration::get) and writes it through
//! [`Configuration::put`](super::Configuration::put), so no key is spelled twice.
//!
//! ```
//! use floe::config::{keys, Configuration};
//! use std::time::Duration;
//! let mut conf = Configuration::new();
//! conf.put(keys::CHECKPOINTING_INTERVAL, &Duration::from_secs(5)).unwrap();
//! assert_eq!(conf.get(keys::CHECKPOINTING_INTERVAL).unwrap(), Some(Duration::from_secs(5)));
//! assert_eq!(conf.get_or(keys::PARALLELISM_DEFAULT, 4).unwrap(), 1); // the option's default
//! ```
//!
//! To add an option: declare its key here, describe it in `options.rs` (the unit tests
//! check that both agree), and read it with `conf.get(keys::NEW_KEY)`.

use super::{ConfigError, Configuration, ValueKind};
use std::marker::PhantomData;
use std::time::Duration;

/// A configuration key whose value is read as `T`.
pub struct Key<T> {
    name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key named `name` (Flink's canonical spelling).
    pub const fn new(name: &'static str) -> Self {
        Key {
            name,
            value: PhantomData,
        }
    }

    /// The key as written in a configuration file or `-D`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> std::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl<T> std::fmt::Display for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A type an option's value is read as and written from.
pub trait OptionValue: Sized {
    /// The value set for `key` in `conf`, else the option's default.
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError>;
    /// The value as a user would write it (it parses back to an equal value).
    fn write(&self) -> String;
    /// Whether an option of `kind` holds values of this type.
    fn fits(kind: ValueKind) -> bool;
}

impl OptionValue for Duration {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_duration(key)
    }
    fn write(&self) -> String {
        super::format_duration(*self)
    }
    fn fits(kind: ValueKind) -> bool {
        kind == ValueKind::Duration
    }
}

impl OptionValue for u32 {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_u32(key)
    }
    fn write(&self) -> String {
        self.to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        kind == ValueKind::U32
    }
}

impl OptionValue for u64 {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_u64(key)
    }
    fn write(&self) -> String {
        self.to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        matches!(kind, ValueKind::U64 | ValueKind::U32)
    }
}

impl OptionValue for f64 {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_f64(key)
    }
    fn write(&self) -> String {
        // Rust's shortest round-trip formatting parses back to the same f64.
        self.to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        kind == ValueKind::F64
    }
}

impl OptionValue for bool {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_bool(key)
    }
    fn write(&self) -> String {
        self.to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        kind == ValueKind::Bool
    }
}

impl OptionValue for String {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        conf.get_string(key)
    }
    fn write(&self) -> String {
        self.clone()
    }
    fn fits(kind: ValueKind) -> bool {
        matches!(kind, ValueKind::String | ValueKind::Enum(_))
    }
}

/// Reads an enum option whose canonical spellings are `variants`.
fn read_enum<T: Copy>(
    conf: &Configuration,
    key: &str,
    variants: &[(&str, T)],
) -> Result<Option<T>, ConfigError> {
    let Some(s) = conf.get_string(key)? else {
        return Ok(None);
    };
    match variants.iter().find(|(name, _)| *name == s) {
        Some((_, v)) => Ok(Some(*v)),
        // Only listed values are stored; still an error rather than a panic.
        None => Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: s,
            reason: format!(
                "expected one of {}",
                variants
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

// The checkpoint settings' values are declared here, with their keys, so `config` stays
// below `checkpoint`; what they mean for retention is in `checkpoint::config`.

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
}

impl OptionValue for CheckpointingMode {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        let all = [Self::ExactlyOnce, Self::AtLeastOnce];
        read_enum(conf, key, &all.map(|m| (m.as_str(), m)))
    }
    fn write(&self) -> String {
        self.as_str().to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        matches!(kind, ValueKind::Enum(_))
    }
}

impl OptionValue for ExternalizedCheckpointRetention {
    fn read(conf: &Configuration, key: &str) -> Result<Option<Self>, ConfigError> {
        let all = [
            Self::NoExternalizedCheckpoints,
            Self::DeleteOnCancellation,
            Self::RetainOnCancellation,
        ];
        read_enum(conf, key, &all.map(|r| (r.as_str(), r)))
    }
    fn write(&self) -> String {
        self.as_str().to_string()
    }
    fn fits(kind: ValueKind) -> bool {
        matches!(kind, ValueKind::Enum(_))
    }
}

macro_rules! keys {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty = $key:literal; )*) => {
        $( $(#[$doc])* pub const $name: Key<$ty> = Key::new($key); )*

        /// Every declared key with a check of its type against an option's kind.
        #[cfg(test)]
        pub(super) fn declared() -> Vec<(&'static str, fn(ValueKind) -> bool)> {
            vec![$( ($key, <$ty as OptionValue>::fits as fn(ValueKind) -> bool) ),*]
        }
    };
}

keys! {
    // --- checkpointing -------------------------------------------------------------------
    /// Interval between checkpoint triggers; checkpointing is off when unset.
    CHECKPOINTING_INTERVAL: Duration = "execution.checkpointing.interval";
    /// Exactly-once or at-least-once.
    CHECKPOINTING_MODE: CheckpointingMode = "execution.checkpointing.mode";
    /// A checkpoint not complete within this time is aborted.
    CHECKPOINTING_TIMEOUT: Duration = "execution.checkpointing.timeout";
    /// Minimal pause between two checkpoints.
    CHECKPOINTING_MIN_PAUSE: Duration = "execution.checkpointing.min-pause";
    /// Checkpoints in flight at once.
    MAX_CONCURRENT_CHECKPOINTS: u32 = "execution.checkpointing.max-concurrent-checkpoints";
    /// Consecutive checkpoint failures tolerated.
    TOLERABLE_FAILED_CHECKPOINTS: u32 = "execution.checkpointing.tolerable-failed-checkpoints";
    /// Whether checkpoints outlive a cancelled or failed job.
    EXTERNALIZED_CHECKPOINT_RETENTION: ExternalizedCheckpointRetention =
        "execution.checkpointing.externalized-checkpoint-retention";
    /// Completed checkpoints kept.
    NUM_RETAINED_CHECKPOINTS: u32 = "execution.checkpointing.num-retained";
    /// Where checkpoints are written (a path or `file://` URL).
    CHECKPOINTS_DIRECTORY: String = "execution.checkpointing.dir";
    /// Default target directory of savepoints.
    SAVEPOINT_DIRECTORY: String = "execution.checkpointing.savepoint-dir";
    // --- S3 checkpoint storage (Flink's s3 file system keys) ------------------------------
    /// Endpoint of the S3 service (`http://host:port` allowed), for `s3://` locations.
    S3_ENDPOINT: String = "s3.endpoint";
    /// S3 access key id.
    S3_ACCESS_KEY: String = "s3.access-key";
    /// S3 secret access key.
    S3_SECRET_KEY: String = "s3.secret-key";
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted buckets.
    S3_PATH_STYLE_ACCESS: bool = "s3.path.style.access";
    /// S3 region.
    S3_REGION: String = "s3.endpoint.region";
    /// Where checkpoints are kept: only `filesystem` (Flink's `jobmanager` is refused).
    CHECKPOINT_STORAGE: String = "execution.checkpointing.storage";
    /// Incremental checkpoints: only `false`.
    INCREMENTAL_CHECKPOINTS: bool = "execution.checkpointing.incremental";
    /// Unaligned checkpoints: only `false`.
    UNALIGNED_CHECKPOINTS: bool = "execution.checkpointing.unaligned.enabled";
    /// The state backend: only `hashmap`.
    STATE_BACKEND_TYPE: String = "state.backend.type";
    /// The snapshot a job starts from (what `-s` sets).
    STATE_RECOVERY_PATH: String = "execution.state-recovery.path";
    /// Restore even when snapshot state maps to no operator (what `-n` sets).
    IGNORE_UNCLAIMED_STATE: bool = "execution.state-recovery.ignore-unclaimed-state";
    // --- restart strategies --------------------------------------------------------------
    /// none, fixed-delay, failure-rate or exponential-delay.
    RESTART_STRATEGY_TYPE: String = "restart-strategy.type";
    /// fixed-delay: restarts before the job fails.
    FIXED_DELAY_ATTEMPTS: u32 = "restart-strategy.fixed-delay.attempts";
    /// fixed-delay: delay between restarts.
    FIXED_DELAY_DELAY: Duration = "restart-strategy.fixed-delay.delay";
    /// failure-rate: restarts allowed within the interval.
    FAILURE_RATE_MAX_FAILURES: u32 = "restart-strategy.failure-rate.max-failures-per-interval";
    /// failure-rate: the interval failures are counted over.
    FAILURE_RATE_INTERVAL: Duration = "restart-strategy.failure-rate.failure-rate-interval";
    /// failure-rate: delay between restarts.
    FAILURE_RATE_DELAY: Duration = "restart-strategy.failure-rate.delay";
    /// exponential-delay: the first backoff.
    EXPONENTIAL_DELAY_INITIAL_BACKOFF: Duration =
        "restart-strategy.exponential-delay.initial-backoff";
    /// exponential-delay: the largest backoff.
    EXPONENTIAL_DELAY_MAX_BACKOFF: Duration = "restart-strategy.exponential-delay.max-backoff";
    /// exponential-delay: the factor the backoff grows by.
    EXPONENTIAL_DELAY_MULTIPLIER: f64 = "restart-strategy.exponential-delay.backoff-multiplier";
    /// exponential-delay: failure-free time after which the backoff resets.
    EXPONENTIAL_DELAY_RESET_THRESHOLD: Duration =
        "restart-strategy.exponential-delay.reset-backoff-threshold";
    /// exponential-delay: random part of the backoff.
    EXPONENTIAL_DELAY_JITTER: f64 = "restart-strategy.exponential-delay.jitter-factor";
    /// exponential-delay: restarts before the backoff resets.
    EXPONENTIAL_DELAY_ATTEMPTS: u32 =
        "restart-strategy.exponential-delay.attempts-before-reset-backoff";
    /// full or region: which tasks restart after a failure.
    FAILOVER_STRATEGY: String = "jobmanager.execution.failover-strategy";
    /// High availability: only `NONE`.
    HIGH_AVAILABILITY_TYPE: String = "high-availability.type";
    // --- pipeline ------------------------------------------------------------------------
    /// Default parallelism of operators.
    PARALLELISM_DEFAULT: u32 = "parallelism.default";
    /// Number of key groups.
    MAX_PARALLELISM: u32 = "pipeline.max-parallelism";
    /// The job's name.
    PIPELINE_NAME: String = "pipeline.name";
    /// How often watermark generators are asked for a watermark (0: never, only
    /// generators that emit on events advance it).
    AUTO_WATERMARK_INTERVAL: Duration = "pipeline.auto-watermark-interval";
    // --- worker processes ----------------------------------------------------------------
    /// How often a worker process reports to its job manager.
    HEARTBEAT_INTERVAL: Duration = "heartbeat.interval";
    /// Silence after which a worker process fails its attempt.
    HEARTBEAT_TIMEOUT: Duration = "heartbeat.timeout";
    /// Worker processes of a job binary run without a cluster (Flink's mini cluster task
    /// managers): the parallelism is split evenly over them.
    MINICLUSTER_TASK_MANAGERS: u32 = "minicluster.number-of-taskmanagers";
    // --- cluster: job manager, task managers, slots ---------------------------------------
    /// Host the job manager (the cluster daemon) is reached at by task managers and workers.
    JOBMANAGER_RPC_ADDRESS: String = "jobmanager.rpc.address";
    /// Port of the job manager's RPC endpoint, where task managers register.
    JOBMANAGER_RPC_PORT: u32 = "jobmanager.rpc.port";
    /// Address the job manager's RPC endpoint binds to (default: `jobmanager.rpc.address`).
    JOBMANAGER_BIND_HOST: String = "jobmanager.bind-host";
    /// Address a task manager advertises: where the job manager and the other hosts'
    /// workers reach it and its worker processes.
    TASKMANAGER_HOST: String = "taskmanager.host";
    /// Address a task manager and its workers bind to (default: `taskmanager.host`).
    TASKMANAGER_BIND_HOST: String = "taskmanager.bind-host";
    /// Port of a task manager's RPC endpoint (0: any free port, advertised at registration).
    TASKMANAGER_RPC_PORT: u32 = "taskmanager.rpc.port";
    /// Task slots a task manager offers; one slot runs one subtask of every operator.
    TASKMANAGER_NUM_TASK_SLOTS: u32 = "taskmanager.numberOfTaskSlots";
    /// A task manager's id (default: `<host>:<rpc port>-<random>`).
    TASKMANAGER_RESOURCE_ID: String = "taskmanager.resource-id";
    /// Silence on a connection between hosts after which the peer counts as lost
    /// (`TCP_USER_TIMEOUT` and keepalive on every socket between processes of an attempt).
    TASKMANAGER_NETWORK_TIMEOUT: Duration = "taskmanager.network.tcp-user-timeout";
    /// How long a job waits for enough free slots before it fails.
    SLOT_REQUEST_TIMEOUT: Duration = "slot.request.timeout";
    /// Where a task manager caches job binaries it received from the job manager.
    BLOB_STORAGE_DIRECTORY: String = "blob.storage.directory";
    /// Where the job manager records submitted jobs and their latest checkpoints, so a
    /// restarted job manager takes them back (a path, `file://` or `s3://` URL).
    HIGH_AVAILABILITY_STORAGE_DIR: String = "high-availability.storageDir";
    /// Namespace of this cluster's records in the high-availability storage directory.
    HIGH_AVAILABILITY_CLUSTER_ID: String = "high-availability.cluster-id";
    // --- web and REST --------------------------------------------------------------------
    /// Task failures kept for the REST API's exception history.
    EXCEPTION_HISTORY_SIZE: u32 = "web.exception-history-size";
    /// Address clients reach the REST endpoint at.
    REST_ADDRESS: String = "rest.address";
    /// Port of the REST endpoint; when set, the job is served over REST.
    REST_PORT: u32 = "rest.port";
    /// Address the REST server binds to.
    REST_BIND_ADDRESS: String = "rest.bind-address";
    /// Bearer token every REST request must carry.
    REST_AUTH_TOKEN: String = "rest.auth.token";
    /// Directories savepoint targets given over REST must lie in.
    REST_SAVEPOINT_ALLOWED_ROOTS: String = "rest.savepoint.allowed-roots";
}
