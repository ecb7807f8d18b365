//! The messages between the cluster's processes, each a JSON frame
//! ([`crate::wire::write_frame`]):
//!
//! - task manager ↔ job manager (the cluster daemon's resource manager): [`RpcHello::TaskManager`],
//!   then [`RegistrationReply`], then [`TaskManagerReport::Heartbeat`] ↔ [`ResourceManagerReply::HeartbeatAck`];
//! - per-job job manager ↔ resource manager: [`RpcHello::Job`], then [`JobRequest`] → [`JobReply`];
//! - task manager → blob server: [`RpcHello::Blob`] → [`BlobReply`] and the raw bytes;
//! - per-job job manager ↔ task manager: [`ToTaskManager`] → [`FromTaskManager`].
//!
//! Every connection's first frame names its kind, so one listener serves all of them.

use crate::JobId;
use serde::{Deserialize, Serialize};

/// A task manager's id (`taskmanager.resource-id`, else `<host>:<rpc port>-<random>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskManagerId(pub String);

impl std::fmt::Display for TaskManagerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob's key: the sha256 of its content, 64 lowercase hex digits. Only a valid key ever
/// becomes a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

impl BlobKey {
    /// The key of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobKey {
        use sha2::Digest;
        BlobKey::from_digest(&sha2::Sha256::digest(bytes))
    }

    /// The key of a finished sha256 digest.
    pub fn from_digest(digest: &[u8]) -> BlobKey {
        BlobKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for BlobKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(BlobKey(s.to_string()))
        } else {
            Err(format!(
                "invalid blob key '{s}': expected a sha256 as 64 lowercase hexadecimal digits"
            ))
        }
    }
}

impl TryFrom<String> for BlobKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<BlobKey> for String {
    fn from(k: BlobKey) -> String {
        k.0
    }
}

/// A worker process a task manager runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningWorker {
    /// Its job.
    pub job: JobId,
    /// Its attempt.
    pub attempt: u32,
    /// Its timely process index.
    pub index: u32,
    /// Task slots it occupies (its worker threads).
    pub slots: u32,
    /// Its process id on the task manager's host.
    pub pid: u32,
}

/// What a task manager offers when it registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Its id.
    pub id: TaskManagerId,
    /// The host it advertises (`taskmanager.host`).
    pub host: String,
    /// The address its worker processes' data sockets bind to (`taskmanager.bind-host`).
    pub bind_host: String,
    /// Its RPC endpoint, `host:port`, where job managers start workers.
    pub rpc: String,
    /// Task slots it offers.
    pub slots: u32,
    /// Workers it still runs (from before a job manager restart or a reconnect).
    pub running: Vec<RunningWorker>,
    /// Its host's hardware, for `/taskmanagers`.
    pub hardware: Hardware,
    /// Its working directory (absolute): worker output is under `workers/<job>/`, where
    /// `floe logs` finds it when the directory is readable from the job manager's host.
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
}

/// A host's hardware as a task manager reports it (Flink's `HardwareDescription`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    /// CPU cores.
    pub cpu_cores: u32,
    /// Physical memory in bytes.
    pub physical_memory: u64,
    /// Free memory in bytes when it registered.
    pub free_memory: u64,
}

/// The first frame on a connection to the job manager's RPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcHello {
    /// A task manager registers; heartbeats follow.
    TaskManager {
        /// `rest.auth.token`; required when either end is off loopback.
        token: Option<String>,
        /// What it offers.
        registration: Registration,
    },
    /// A per-job job manager asks for slots; [`JobRequest`]s follow.
    Job {
        /// `rest.auth.token`.
        token: Option<String>,
        /// Its job.
        job: JobId,
    },
    /// A task manager fetches a blob; [`BlobReply`] answers.
    Blob {
        /// `rest.auth.token`.
        token: Option<String>,
        /// The blob.
        key: BlobKey,
    },
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RefusalReason {
    /// The token did not match `rest.auth.token` (or none was sent to a peer off loopback).
    #[error("the authentication token does not match rest.auth.token")]
    BadToken,
    /// A task manager offered no slots.
    #[error("a task manager must offer at least one task slot")]
    NoSlots,
    /// The blob server holds no such blob.
    #[error("no blob {0}")]
    UnknownBlob(BlobKey),
    /// A request that makes no sense in this state.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The resource manager's answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationReply {
    /// Registered: heartbeat every `heartbeat_interval_ms`.
    Registered {
        /// How often to heartbeat.
        heartbeat_interval_ms: u64,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

/// A registered task manager's messages to the resource manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskManagerReport {
    /// It is alive; the workers it runs now.
    Heartbeat {
        /// Its workers.
        running: Vec<RunningWorker>,
    },
}

/// The resource manager's messages to a registered task manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceManagerReply {
    /// The heartbeat arrived.
    HeartbeatAck,
}

/// A per-job job manager's requests to the resource manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobRequest {
    /// `slots` slots for `attempt`; replaces the job's earlier grant.
    RequestSlots {
        /// The attempt.
        attempt: u32,
        /// Slots it needs (its parallelism).
        slots: u32,
    },
    /// Frees the slots of `attempt`.
    Release {
        /// The attempt.
        attempt: u32,
    },
}

/// Slots granted on one task manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotGrant {
    /// The task manager.
    pub task_manager: TaskManagerId,
    /// Its advertised host.
    pub host: String,
    /// Where its workers' data sockets bind.
    pub bind_host: String,
    /// Its RPC endpoint.
    pub rpc: String,
    /// Slots granted on it.
    pub slots: u32,
}

/// The resource manager's answers to [`JobRequest`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobReply {
    /// The slots, per task manager in registration order.
    Granted {
        /// One entry per task manager used.
        grants: Vec<SlotGrant>,
    },
    /// Not enough free slots now.
    NotEnough {
        /// Free slots now (the job's own earlier grant counted as free).
        available: u32,
    },
    /// The slots were freed.
    Released,
    /// Refused.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

/// The blob server's answer; with `Follows`, `size` raw bytes follow the frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobReply {
    /// The blob's bytes follow.
    Follows {
        /// How many.
        size: u64,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

/// A per-job job manager's requests to a task manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToTaskManager {
    /// Start a worker process of the job binary `blob`.
    StartWorker(StartWorker),
    /// SIGKILL the process groups of every worker of `attempt` started on this connection.
    KillAttempt {
        /// The attempt.
        attempt: u32,
    },
}

/// How to start a worker process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartWorker {
    /// `rest.auth.token`.
    pub token: Option<String>,
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: u32,
    /// The process index.
    pub index: u32,
    /// Its worker threads (slots).
    pub slots: u32,
    /// The job binary, fetched from the job manager's blob server.
    pub blob: BlobKey,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment on top of the task manager's.
    pub env: Vec<(String, String)>,
}

/// Why a task manager could not start a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StartFailure {
    /// Refused.
    #[error("{0}")]
    Refused(RefusalReason),
    /// The job binary could not be fetched.
    #[error("cannot fetch the job binary: {0}")]
    Blob(String),
    /// The process could not be started.
    #[error("cannot start the worker process: {0}")]
    Spawn(String),
}

/// A task manager's messages to a per-job job manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromTaskManager {
    /// Worker `index` runs as `pid`.
    Started {
        /// Its index.
        index: u32,
        /// Its pid.
        pid: u32,
    },
    /// Worker `index` did not start.
    StartFailed {
        /// Its index.
        index: u32,
        /// Why.
        reason: StartFailure,
    },
    /// Worker `pid` ended.
    Exited {
        /// Its pid.
        pid: u32,
        /// How (`"exit status: 1"`, `"killed by signal 9"`).
        status: String,
    },
}

/// Whether `token` is acceptable from a peer at `peer` to an endpoint at `local`, which
/// expects `expected`: with a token configured it must match; without one, only loopback
/// peers are served (the same rule as the REST endpoint).
pub fn token_ok(
    expected: Option<&str>,
    token: Option<&str>,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> bool {
    match expected {
        Some(e) => token == Some(e),
        None => local.ip().is_loopback() && peer.ip().is_loopback(),
    }
}

/// How a process ended, as the protocol reports it.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status: {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let mut buf = Vec::new();
        crate::wire::write_frame(&mut buf, &v).unwrap();
        let back: T = crate::wire::read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn messages_round_trip() {
        let key = BlobKey::of(b"job");
        let job = JobId::random();
        round_trip(RpcHello::TaskManager {
            token: Some("t".into()),
            registration: Registration {
                id: TaskManagerId("tm-1".into()),
                host: "10.0.0.2".into(),
                bind_host: "0.0.0.0".into(),
                rpc: "10.0.0.2:4000".into(),
                slots: 2,
                running: vec![RunningWorker {
                    job,
                    attempt: 3,
                    index: 1,
                    slots: 2,
                    pid: 77,
                }],
                hardware: Hardware::default(),
                dir: None,
            },
        });
        round_trip(RpcHello::Blob {
            token: None,
            key: key.clone(),
        });
        round_trip(JobReply::NotEnough { available: 1 });
        round_trip(JobReply::Refused {
            reason: RefusalReason::UnknownBlob(key.clone()),
        });
        round_trip(ToTaskManager::StartWorker(StartWorker {
            token: None,
            job,
            attempt: 1,
            index: 0,
            slots: 2,
            blob: key,
            args: vec!["--port".into(), "1".into()],
            env: vec![("FLOE_WORKER".into(), "h:1".into())],
        }));
        round_trip(FromTaskManager::StartFailed {
            index: 0,
            reason: StartFailure::Refused(RefusalReason::BadToken),
        });
        round_trip(FromTaskManager::Exited {
            pid: 5,
            status: "killed by signal 9".into(),
        });
    }

    #[test]
    fn blob_keys_are_sha256_hex_only() {
        let k = BlobKey::of(b"abc");
        assert_eq!(
            k.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(serde_json::from_str::<BlobKey>("\"../../etc/passwd\"").is_err());
        assert!("A".repeat(64).parse::<BlobKey>().is_err());
    }

    #[test]
    fn tokens_are_needed_off_loopback() {
        let lo: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let far: std::net::SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert!(token_ok(None, None, lo, lo));
        assert!(!token_ok(None, None, far, far));
        assert!(!token_ok(None, None, lo, far));
        assert!(token_ok(Some("s"), Some("s"), far, far));
        assert!(!token_ok(Some("s"), None, lo, lo));
        assert!(!token_ok(Some("s"), Some("x"), far, far));
    }
}
