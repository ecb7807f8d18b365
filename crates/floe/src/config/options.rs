//! The option table: every key Floe accepts, what it means and how it is checked, and the
//! Flink keys Floe lets through without acting on them.
//!
//! A Flink `config.yaml` carries three kinds of keys, and Floe treats each differently:
//!
//! - keys Floe honours are options in [`OPTIONS`] (with Flink's deprecated names as
//!   aliases); a value Floe cannot honour (`state.backend.type: rocksdb`,
//!   `execution.checkpointing.incremental: true`) is refused with the reason, see
//!   [`UNHONOURED_VALUES`];
//! - keys that configure what a native engine does not have (the JVM, its memory model,
//!   Flink's actor system, the BLOB server's settings, class loading) are accepted whatever
//!   their value and reported in one warning, see [`IGNORED_FLINK_KEYS`];
//! - every other key is refused as unknown, with the closest known key as a suggestion, so
//!   a misspelling never passes silently.

use super::{keys, ConfigOption, ValueKind};

pub(super) const CHECKPOINTING_MODES: &[&str] = &["EXACTLY_ONCE", "AT_LEAST_ONCE"];
const RETENTIONS: &[&str] = &[
    "NO_EXTERNALIZED_CHECKPOINTS",
    "DELETE_ON_CANCELLATION",
    "RETAIN_ON_CANCELLATION",
];
const RESTART_STRATEGY_TYPES: &[&str] =
    &["none", "fixed-delay", "failure-rate", "exponential-delay"];

/// Extra spellings Flink accepts for enum values: (option key, lowercase spelling, canonical value).
/// Kept out of [`ValueKind::Enum`] so the canonical list stays what error messages show first.
pub(super) const ENUM_VALUE_ALIASES: &[(&str, &str, &str)] = &[
    (keys::RESTART_STRATEGY_TYPE.name(), "disable", "none"),
    (keys::RESTART_STRATEGY_TYPE.name(), "off", "none"),
    (
        keys::RESTART_STRATEGY_TYPE.name(),
        "fixeddelay",
        "fixed-delay",
    ),
    (
        keys::RESTART_STRATEGY_TYPE.name(),
        "failurerate",
        "failure-rate",
    ),
    (
        keys::RESTART_STRATEGY_TYPE.name(),
        "exponentialdelay",
        "exponential-delay",
    ),
];

/// Every option Floe understands, with Flink's key names and defaults.
///
/// ```
/// use floe::config::OPTIONS;
/// let dir = OPTIONS.iter().find(|o| o.key == "execution.checkpointing.dir").unwrap();
/// assert!(dir.aliases.contains(&"state.checkpoints.dir"));
/// ```
pub static OPTIONS: &[ConfigOption] = &[
    // --- checkpointing -------------------------------------------------------------------
    ConfigOption {
        key: keys::CHECKPOINTING_INTERVAL.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: None,
        description: "Interval between checkpoint triggers; checkpointing is disabled when unset.",
    },
    ConfigOption {
        key: keys::CHECKPOINTING_MODE.name(),
        aliases: &[],
        kind: ValueKind::Enum(CHECKPOINTING_MODES),
        default: Some("EXACTLY_ONCE"),
        description: "Checkpointing guarantee: EXACTLY_ONCE aligns barriers, AT_LEAST_ONCE may skip alignment.",
    },
    ConfigOption {
        key: keys::CHECKPOINTING_TIMEOUT.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("10 min"),
        description: "A checkpoint that has not completed within this time is aborted.",
    },
    ConfigOption {
        key: keys::CHECKPOINTING_MIN_PAUSE.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("0 ms"),
        description: "Minimal pause between the end of one checkpoint and the start of the next.",
    },
    ConfigOption {
        key: keys::MAX_CONCURRENT_CHECKPOINTS.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Maximum number of checkpoints in flight at the same time (at least 1).",
    },
    ConfigOption {
        key: keys::TOLERABLE_FAILED_CHECKPOINTS.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("0"),
        description: "Number of consecutive checkpoint failures tolerated before the job fails.",
    },
    ConfigOption {
        key: keys::EXTERNALIZED_CHECKPOINT_RETENTION.name(),
        aliases: &[],
        kind: ValueKind::Enum(RETENTIONS),
        default: Some("NO_EXTERNALIZED_CHECKPOINTS"),
        description: "Whether completed checkpoints are kept when the job is cancelled or fails.",
    },
    ConfigOption {
        key: keys::NUM_RETAINED_CHECKPOINTS.name(),
        aliases: &["state.checkpoints.num-retained"],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Number of completed checkpoints to keep (at least 1).",
    },
    ConfigOption {
        key: keys::CHECKPOINTS_DIRECTORY.name(),
        aliases: &["state.checkpoints.dir", "state.backend.fs.checkpointdir"],
        kind: ValueKind::String,
        default: None,
        description: "Directory (path or URL) where checkpoint data and metadata are written.",
    },
    ConfigOption {
        key: keys::SAVEPOINT_DIRECTORY.name(),
        aliases: &["state.savepoints.dir"],
        kind: ValueKind::String,
        default: None,
        description: "Default directory for savepoints when none is given on the command line.",
    },
    ConfigOption {
        key: keys::S3_ENDPOINT.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Endpoint of the S3 service for s3:// locations (http:// allowed); else AWS_ENDPOINT_URL or AWS.",
    },
    ConfigOption {
        key: keys::S3_ACCESS_KEY.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "S3 access key id; else AWS_ACCESS_KEY_ID.",
    },
    ConfigOption {
        key: keys::S3_SECRET_KEY.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "S3 secret access key; else AWS_SECRET_ACCESS_KEY.",
    },
    ConfigOption {
        key: keys::S3_PATH_STYLE_ACCESS.name(),
        aliases: &["s3.path-style-access"],
        kind: ValueKind::Bool,
        default: Some("false"),
        description: "Path-style S3 requests (endpoint/bucket/key), as MinIO and other S3-compatible stores need.",
    },
    ConfigOption {
        key: keys::S3_REGION.name(),
        aliases: &["s3.region"],
        kind: ValueKind::String,
        default: None,
        description: "S3 region; else AWS_REGION, else us-east-1.",
    },
    ConfigOption {
        key: keys::STATE_RECOVERY_PATH.name(),
        aliases: &["execution.savepoint.path"],
        kind: ValueKind::String,
        default: None,
        description: "Checkpoint or savepoint to restore the job from.",
    },
    ConfigOption {
        key: keys::IGNORE_UNCLAIMED_STATE.name(),
        aliases: &["execution.savepoint.ignore-unclaimed-state"],
        kind: ValueKind::Bool,
        default: Some("false"),
        description: "Allow restoring when some state in the snapshot maps to no operator.",
    },
    ConfigOption {
        key: keys::CHECKPOINT_STORAGE.name(),
        aliases: &["state.checkpoint-storage"],
        kind: ValueKind::Enum(&["filesystem"]),
        default: Some("filesystem"),
        description: "Where checkpoints are kept: Floe writes them to files (execution.checkpointing.dir); Flink's jobmanager storage is refused.",
    },
    ConfigOption {
        key: keys::INCREMENTAL_CHECKPOINTS.name(),
        aliases: &["state.backend.incremental"],
        kind: ValueKind::Bool,
        default: Some("false"),
        description: "Incremental checkpoints; Floe's hashmap state backend takes full checkpoints, so only false.",
    },
    ConfigOption {
        key: keys::UNALIGNED_CHECKPOINTS.name(),
        aliases: &["execution.checkpointing.unaligned"],
        kind: ValueKind::Bool,
        default: Some("false"),
        description: "Unaligned checkpoints; Floe aligns checkpoint barriers, so only false.",
    },
    ConfigOption {
        key: keys::STATE_BACKEND_TYPE.name(),
        aliases: &["state.backend"],
        kind: ValueKind::Enum(&["hashmap"]),
        default: Some("hashmap"),
        description: "The state backend: Floe keeps keyed state on the heap (hashmap); rocksdb and forst are refused.",
    },
    // --- restart strategies --------------------------------------------------------------
    ConfigOption {
        key: keys::RESTART_STRATEGY_TYPE.name(),
        aliases: &["restart-strategy"],
        kind: ValueKind::Enum(RESTART_STRATEGY_TYPES),
        default: None,
        description: "Restart strategy: none, fixed-delay, failure-rate or exponential-delay; \
                      when unset, exponential-delay with checkpointing and none without.",
    },
    ConfigOption {
        key: keys::FIXED_DELAY_ATTEMPTS.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Number of restarts before the job is declared failed (fixed-delay).",
    },
    ConfigOption {
        key: keys::FIXED_DELAY_DELAY.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 s"),
        description: "Delay between two consecutive restart attempts (fixed-delay).",
    },
    ConfigOption {
        key: keys::FAILURE_RATE_MAX_FAILURES.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Maximum number of restarts within the interval before the job fails (failure-rate).",
    },
    ConfigOption {
        key: keys::FAILURE_RATE_INTERVAL.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 min"),
        description: "Time window over which failures are counted (failure-rate).",
    },
    ConfigOption {
        key: keys::FAILURE_RATE_DELAY.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 s"),
        description: "Delay between two consecutive restart attempts (failure-rate).",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_INITIAL_BACKOFF.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 s"),
        description: "Backoff before the first restart (exponential-delay).",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_MAX_BACKOFF.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 min"),
        description: "Upper bound of the backoff between restarts (exponential-delay).",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_MULTIPLIER.name(),
        aliases: &[],
        kind: ValueKind::F64,
        default: Some("1.5"),
        description: "Factor the backoff grows by after every failure (exponential-delay, at least 1.0).",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_RESET_THRESHOLD.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 h"),
        description: "Failure-free running time after which the backoff returns to its initial value.",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_JITTER.name(),
        aliases: &[],
        kind: ValueKind::F64,
        default: Some("0.1"),
        description: "Portion of the backoff added or subtracted at random (exponential-delay, 0.0 to 1.0).",
    },
    ConfigOption {
        key: keys::EXPONENTIAL_DELAY_ATTEMPTS.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: None,
        description: "Restarts allowed before the backoff resets; unlimited when unset (exponential-delay).",
    },
    ConfigOption {
        key: keys::FAILOVER_STRATEGY.name(),
        aliases: &[],
        kind: ValueKind::Enum(&["full", "region"]),
        default: Some("region"),
        description: "Which tasks restart after a failure. Floe restarts every task of the job: \
                      Flink's full strategy, and region's too for a job whose tasks form one \
                      pipelined region (every connected streaming job); restarting more \
                      than a region keeps exactly-once, so both values are honoured.",
    },
    ConfigOption {
        key: keys::HIGH_AVAILABILITY_TYPE.name(),
        aliases: &["high-availability"],
        kind: ValueKind::Enum(&["NONE"]),
        default: Some("NONE"),
        description: "High availability services: only NONE. Floe's job manager high availability needs no services (no leader election): set high-availability.storageDir and a restarted job manager takes its jobs back.",
    },
    // --- pipeline ------------------------------------------------------------------------
    ConfigOption {
        key: keys::PARALLELISM_DEFAULT.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Default parallelism of operators (at least 1).",
    },
    ConfigOption {
        key: keys::MAX_PARALLELISM.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("128"),
        description: "Number of key groups, the upper bound for rescaling keyed state (1 to 32768).",
    },
    ConfigOption {
        key: keys::PIPELINE_NAME.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Job name shown by the CLI and REST API.",
    },
    ConfigOption {
        key: keys::AUTO_WATERMARK_INTERVAL.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("200 ms"),
        description: "Interval of periodic watermark emission (0 turns it off).",
    },
    // --- Worker processes ----------------------------------------------------------------
    ConfigOption {
        key: keys::HEARTBEAT_INTERVAL.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("1 s"),
        description: "How often a worker process reports to the job manager.",
    },
    ConfigOption {
        key: keys::HEARTBEAT_TIMEOUT.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("10 s"),
        description: "A worker process silent this long, or a worker thread without progress this long, fails the attempt (at least heartbeat.interval).",
    },
    ConfigOption {
        key: keys::MINICLUSTER_TASK_MANAGERS.name(),
        aliases: &["local.number-taskmanager"],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Worker processes of a job binary run without a cluster (Flink's mini cluster task managers); parallelism.default must be a multiple of it. The processes form one timely cluster over loopback sockets.",
    },
    // --- Cluster -------------------------------------------------------------------------
    ConfigOption {
        key: keys::JOBMANAGER_RPC_ADDRESS.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: Some("localhost"),
        description: "Host task managers and worker processes reach the job manager (the cluster daemon) at.",
    },
    ConfigOption {
        key: keys::JOBMANAGER_RPC_PORT.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("6123"),
        description: "Port of the job manager's RPC endpoint, where task managers register and heartbeat.",
    },
    ConfigOption {
        key: keys::JOBMANAGER_BIND_HOST.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Address the job manager's RPC endpoint binds to (default: jobmanager.rpc.address).",
    },
    ConfigOption {
        key: keys::TASKMANAGER_HOST.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Address a task manager advertises to the job manager and to other hosts' workers (default: the local address it reaches the job manager from).",
    },
    ConfigOption {
        key: keys::TASKMANAGER_BIND_HOST.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Address a task manager and its worker processes bind to (default: taskmanager.host).",
    },
    ConfigOption {
        key: keys::TASKMANAGER_RPC_PORT.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("0"),
        description: "Port of a task manager's RPC endpoint; 0 picks a free port, which it advertises when it registers.",
    },
    ConfigOption {
        key: keys::TASKMANAGER_NUM_TASK_SLOTS.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("1"),
        description: "Task slots a task manager offers; one slot runs one subtask of every operator of a job (slot sharing).",
    },
    ConfigOption {
        key: keys::TASKMANAGER_RESOURCE_ID.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "A task manager's id, shown by floe cluster status and /taskmanagers (default: host:port and a random suffix).",
    },
    ConfigOption {
        key: keys::TASKMANAGER_NETWORK_TIMEOUT.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("5 s"),
        description: "Silence after which a connection between hosts counts as lost (TCP_USER_TIMEOUT and keepalive on every socket between the processes of an attempt): bounds how long an unreachable host stalls a job.",
    },
    ConfigOption {
        key: keys::SLOT_REQUEST_TIMEOUT.name(),
        aliases: &[],
        kind: ValueKind::Duration,
        default: Some("5 min"),
        description: "How long a job waits for enough free task slots before it fails (NoResourceAvailableException).",
    },
    ConfigOption {
        key: keys::BLOB_STORAGE_DIRECTORY.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Where a task manager caches the job binaries it received from the job manager (default: blobs/ in its working directory).",
    },
    ConfigOption {
        key: keys::HIGH_AVAILABILITY_STORAGE_DIR.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Where the job manager records every submitted job and its latest completed checkpoint (a path, file:// or s3:// URL): a restarted job manager takes its jobs back from there.",
    },
    ConfigOption {
        key: keys::HIGH_AVAILABILITY_CLUSTER_ID.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: Some("/default"),
        description: "Namespace of this cluster's records under high-availability.storageDir.",
    },
    // --- Web -----------------------------------------------------------------------------
    ConfigOption {
        key: keys::EXCEPTION_HISTORY_SIZE.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("16"),
        description: "How many task failures the job keeps for the REST API's exception history (the latest ones).",
    },
    // --- REST ----------------------------------------------------------------------------
    ConfigOption {
        key: keys::REST_ADDRESS.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: Some("127.0.0.1"),
        description: "Address clients use to reach the job manager's REST endpoint.",
    },
    ConfigOption {
        key: keys::REST_PORT.name(),
        aliases: &[],
        kind: ValueKind::U32,
        default: Some("8081"),
        description: "Port of the job manager's REST endpoint (1 to 65535).",
    },
    ConfigOption {
        key: keys::REST_BIND_ADDRESS.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: Some("127.0.0.1"),
        description: "Address the REST server binds to; anything but loopback needs rest.auth.token.",
    },
    ConfigOption {
        key: keys::REST_AUTH_TOKEN.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "When set, every REST request must carry 'Authorization: Bearer <token>'.",
    },
    ConfigOption {
        key: keys::REST_SAVEPOINT_ALLOWED_ROOTS.name(),
        aliases: &[],
        kind: ValueKind::String,
        default: None,
        description: "Absolute directories (separated by ',' or ';') that savepoint targets given over REST must lie in.",
    },
];

/// Values of honoured options that Floe cannot act on: (option key, value in lower case, why).
/// Refused with the reason, so a Flink configuration never runs with a guarantee it did not
/// ask for.
pub static UNHONOURED_VALUES: &[(&str, &str, &str)] = &[
    (
        keys::STATE_BACKEND_TYPE.name(),
        "rocksdb",
        "Floe has no RocksDB state backend; use hashmap",
    ),
    (
        keys::STATE_BACKEND_TYPE.name(),
        "forst",
        "Floe has no ForSt state backend; use hashmap",
    ),
    (
        keys::CHECKPOINT_STORAGE.name(),
        "jobmanager",
        "Floe writes checkpoints to files (execution.checkpointing.dir), not into the job manager's memory; use filesystem",
    ),
    (
        keys::INCREMENTAL_CHECKPOINTS.name(),
        "true",
        "Floe takes full checkpoints (its hashmap state backend has no incremental ones); use false",
    ),
    (
        keys::UNALIGNED_CHECKPOINTS.name(),
        "true",
        "Floe aligns checkpoint barriers and has no unaligned checkpoints; use false",
    ),
    (
        keys::HIGH_AVAILABILITY_TYPE.name(),
        "zookeeper",
        "Floe's job manager high availability needs no leader election: keep NONE and set high-availability.storageDir",
    ),
    (
        keys::HIGH_AVAILABILITY_TYPE.name(),
        "kubernetes",
        "Floe's job manager high availability needs no leader election: keep NONE and set high-availability.storageDir",
    ),
];

/// Flink keys that configure what a native engine does not have, accepted with any value and
/// reported in one warning: a whole key, or a prefix when it ends with `.`.
///
/// The rule: a key is here when it sets up a part of Flink's JVM deployment that Floe
/// replaces by something with no setting of that name (a job binary instead of a JVM and its
/// jars, worker threads instead of task slots, a local socket instead of Flink's RPC). Keys
/// of features Floe has but configures differently, or lacks and a job could depend on
/// (metrics reporters, high availability, file systems), are not here: those are refused.
pub static IGNORED_FLINK_KEYS: &[&str] = &[
    // Flink's launcher scripts: JVM options, Java home, log and pid directories.
    "env.",
    // The JVM memory model of Flink's processes.
    "jobmanager.memory.",
    "taskmanager.memory.",
    // Flink's actor system (Floe's RPC is its own framed TCP protocol).
    "pekko.",
    "akka.",
    // The BLOB server's own settings (Floe ships the job binary over the REST endpoint).
    "blob.server.",
    "blob.fetch.",
    "blob.service.",
    "blob.client.",
    // Java class loading.
    "classloader.",
];

/// Whether `key` is one of the [`IGNORED_FLINK_KEYS`].
pub fn is_ignored_flink_key(key: &str) -> bool {
    IGNORED_FLINK_KEYS.iter().any(|k| {
        if k.ends_with('.') {
            key.len() > k.len() && key.starts_with(k)
        } else {
            key == *k
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{find_option, ConfigError, Configuration};

    #[test]
    fn every_key_constant_names_an_option_of_its_type_and_every_option_has_one() {
        let declared = keys::declared();
        for (name, fits) in &declared {
            let opt = find_option(name).unwrap_or_else(|| panic!("{name} is not an option"));
            assert_eq!(opt.key, *name, "{name} is an alias, not the canonical key");
            assert!(
                fits(opt.kind),
                "{name}: the key's type does not fit {:?}",
                opt.kind
            );
        }
        for opt in OPTIONS {
            assert!(
                declared.iter().any(|(n, _)| *n == opt.key),
                "{} has no key constant",
                opt.key
            );
        }
        for (key, value, _) in UNHONOURED_VALUES {
            assert!(find_option(key).is_some(), "{key}");
            assert_eq!(*value, value.to_ascii_lowercase());
        }
    }

    #[test]
    fn flink_values_floe_honours_are_accepted() {
        let mut c = Configuration::new();
        for (k, v) in [
            ("state.backend", "hashmap"),
            ("state.backend.type", "HashMap"),
            ("execution.checkpointing.storage", "filesystem"),
            ("state.checkpoint-storage", "filesystem"),
            ("execution.checkpointing.incremental", "false"),
            ("state.backend.incremental", "false"),
            ("execution.checkpointing.unaligned", "false"),
            ("execution.checkpointing.unaligned.enabled", "false"),
            ("jobmanager.execution.failover-strategy", "region"),
            ("jobmanager.execution.failover-strategy", "full"),
            ("high-availability", "NONE"),
            ("high-availability.type", "none"),
        ] {
            c.set(k, v).unwrap_or_else(|e| panic!("{k}: {v}: {e}"));
        }
        assert_eq!(
            c.get(keys::STATE_BACKEND_TYPE).unwrap().as_deref(),
            Some("hashmap")
        );
        assert_eq!(c.get(keys::INCREMENTAL_CHECKPOINTS).unwrap(), Some(false));
        assert!(c.ignored_keys().next().is_none());
    }

    #[test]
    fn flink_values_floe_cannot_honour_are_refused_with_the_reason() {
        for (k, v, canonical, why) in [
            (
                "state.backend.type",
                "rocksdb",
                "state.backend.type",
                "Floe has no RocksDB state backend; use hashmap",
            ),
            (
                "state.backend",
                "RocksDB",
                "state.backend.type",
                "Floe has no RocksDB state backend; use hashmap",
            ),
            (
                "state.backend.type",
                "forst",
                "state.backend.type",
                "Floe has no ForSt state backend; use hashmap",
            ),
            (
                "execution.checkpointing.storage",
                "jobmanager",
                "execution.checkpointing.storage",
                "not into the job manager's memory; use filesystem",
            ),
            (
                "execution.checkpointing.incremental",
                "true",
                "execution.checkpointing.incremental",
                "Floe takes full checkpoints",
            ),
            (
                "state.backend.incremental",
                "TRUE",
                "execution.checkpointing.incremental",
                "use false",
            ),
            (
                "execution.checkpointing.unaligned.enabled",
                "true",
                "execution.checkpointing.unaligned.enabled",
                "no unaligned checkpoints",
            ),
            (
                "high-availability.type",
                "zookeeper",
                "high-availability.type",
                "needs no leader election: keep NONE and set high-availability.storageDir",
            ),
        ] {
            let e = Configuration::new().set(k, v).unwrap_err();
            let ConfigError::Unsupported { key, reason, .. } = &e else {
                panic!("{k}: {v}: {e:?}");
            };
            assert_eq!(key, canonical);
            assert!(reason.contains(why), "{k}: {v}: {e}");
            assert!(
                e.to_string().starts_with(&format!(
                    "unsupported value '{v}' for configuration key '{canonical}': "
                )),
                "{e}"
            );
        }
        // A value that is neither honoured nor a known Flink one is invalid as before.
        let e = Configuration::new()
            .set("state.backend.type", "heap")
            .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e:?}");
    }

    #[test]
    fn flink_keys_of_the_jvm_deployment_are_ignored_and_misspellings_still_refused() {
        let mut c = Configuration::new();
        for k in [
            "env.java.opts.all",
            "env.java.opts.taskmanager",
            "jobmanager.memory.process.size",
            "taskmanager.memory.network.fraction",
            "pekko.ask.timeout",
            "blob.server.port",
            "classloader.resolve-order",
        ] {
            c.set(k, "anything at all")
                .unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        assert_eq!(c.ignored_keys().count(), 7);
        // Ignored keys hold no value anyone could read.
        assert!(c.iter().next().is_none());
        for k in [
            "env",
            "taskmanager.numberOfTaskSlotz",
            "taskmanager.memory",
            "jobmanager.rpc",
            "metrics.reporter.prom.factory.class",
        ] {
            let e = Configuration::new().set(k, "1").unwrap_err();
            assert!(matches!(e, ConfigError::UnknownKey { .. }), "{k}: {e:?}");
        }
        let e = Configuration::new()
            .set("state.backend.typ", "hashmap")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown configuration key 'state.backend.typ'; did you mean 'state.backend.type'?"
        );
        // Merging keeps what was ignored, so the loader can report it.
        let mut m = Configuration::new();
        m.merge(&c);
        assert_eq!(m.ignored_keys().count(), 7);
    }
}
