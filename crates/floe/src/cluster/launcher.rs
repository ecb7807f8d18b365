//! [`RemoteLauncher`]: how a per-job job manager started by a session cluster runs its
//! worker processes in task managers' slots.
//!
//! It asks the cluster's resource manager (`FLOE_CLUSTER_RPC`) for slots, retrying while
//! there are not enough until `slot.request.timeout`; it starts each worker process with a
//! `StartWorker` on one connection per task manager and attempt, and learns from that
//! connection when a worker exits — or that the task manager was lost. Closing that
//! connection makes the task manager kill the attempt's workers, so a job manager that dies
//! leaves no workers behind.

use super::protocol::*;
use crate::config::{keys, Configuration};
use crate::runtime::workers::{
    Placement, PlacementError, ProcessSlot, SpawnError, WorkerCommand, WorkerHandle, WorkerLauncher,
};
use crate::sync::LockExt;
use crate::{JobId, Result};
use anyhow::anyhow;
use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The cluster daemon's RPC address, set for the job binaries it starts.
pub const RPC_ENV: &str = "FLOE_CLUSTER_RPC";
/// The sha256 of the job binary in the cluster's blob store, set with [`RPC_ENV`].
pub const BLOB_ENV: &str = "FLOE_JOB_BLOB";

/// A task manager could not be reached, or was lost, while a worker was being started on
/// it: not a failure of the job — [`WorkerLauncher::spawn`] turns it into
/// [`SpawnError::Unreachable`], and the executor places the attempt again.
#[derive(Debug, thiserror::Error)]
#[error("task manager {task_manager} ({address}) is unreachable: {cause}")]
pub struct TaskManagerUnreachable {
    /// The task manager.
    pub task_manager: TaskManagerId,
    /// Its RPC address.
    pub address: String,
    /// What went wrong.
    pub cause: String,
}

type ExitCell = Arc<Mutex<Option<String>>>;

#[derive(Default)]
struct ConnState {
    /// Workers being started, by index.
    pending: HashMap<u32, mpsc::Sender<std::result::Result<u32, String>>>,
    /// How each started worker ended, by pid.
    exits: HashMap<u32, ExitCell>,
    /// Why the connection ended.
    lost: Option<String>,
}

/// One connection to a task manager for one attempt.
struct TmConnection {
    id: TaskManagerId,
    address: String,
    writer: Mutex<TcpStream>,
    state: Arc<Mutex<ConnState>>,
}

impl TmConnection {
    fn open(id: TaskManagerId, address: String, timeout: Duration) -> std::io::Result<Self> {
        let stream = super::connect(&address, timeout)?;
        let mut reader = stream.try_clone()?;
        let state = Arc::new(Mutex::new(ConnState::default()));
        let shared = Arc::clone(&state);
        let (tm, host) = (id.clone(), address.clone());
        std::thread::Builder::new()
            .name(format!("floe-tm-{id}"))
            .spawn(move || {
                let why = loop {
                    match crate::wire::read_frame::<FromTaskManager>(&mut reader) {
                        Ok(FromTaskManager::Started { index, pid }) => {
                            let mut s = shared.lock_ok();
                            s.exits.entry(pid).or_default();
                            if let Some(tx) = s.pending.remove(&index) {
                                let _ = tx.send(Ok(pid));
                            }
                        }
                        Ok(FromTaskManager::StartFailed { index, reason }) => {
                            if let Some(tx) = shared.lock_ok().pending.remove(&index) {
                                let _ = tx.send(Err(reason.to_string()));
                            }
                        }
                        Ok(FromTaskManager::Exited { pid, status }) => {
                            let cell = Arc::clone(shared.lock_ok().exits.entry(pid).or_default());
                            *cell.lock_ok() = Some(status);
                        }
                        Err(e) => break e,
                    }
                };
                let lost = format!("task manager {tm} ({host}) was lost: {why}");
                let mut s = shared.lock_ok();
                for cell in s.exits.values() {
                    let mut c = cell.lock_ok();
                    if c.is_none() {
                        *c = Some(lost.clone());
                    }
                }
                for (_, tx) in s.pending.drain() {
                    let _ = tx.send(Err(lost.clone()));
                }
                s.lost = Some(lost);
            })?;
        Ok(TmConnection {
            id,
            address,
            writer: Mutex::new(stream),
            state,
        })
    }

    fn send(&self, msg: &ToTaskManager) -> std::io::Result<()> {
        crate::wire::write_frame(&mut *self.writer.lock_ok(), msg)
    }

    fn close(&self) {
        let _ = self.writer.lock_ok().shutdown(std::net::Shutdown::Both);
    }

    fn unreachable(&self, cause: impl std::fmt::Display) -> anyhow::Error {
        TaskManagerUnreachable {
            task_manager: self.id.clone(),
            address: self.address.clone(),
            cause: cause.to_string(),
        }
        .into()
    }
}

/// A worker process on a task manager.
struct RemoteWorker {
    pid: u32,
    attempt: u32,
    exit: ExitCell,
    conn: Arc<TmConnection>,
}

impl WorkerHandle for RemoteWorker {
    fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills every worker of the attempt on its task manager (an attempt fails as a whole).
    fn kill(&self) {
        let _ = self.conn.send(&ToTaskManager::KillAttempt {
            attempt: self.attempt,
        });
    }

    fn exit_status(&self) -> Option<String> {
        self.exit.lock_ok().clone()
    }
}

/// Runs an attempt's worker processes in the slots of a session cluster's task managers.
pub struct RemoteLauncher {
    rpc: String,
    job: JobId,
    blob: BlobKey,
    token: Option<String>,
    network_timeout: Duration,
    slot_timeout: Duration,
    resource_manager: Mutex<Option<TcpStream>>,
    grants: Mutex<HashMap<u32, Vec<SlotGrant>>>,
    connections: Mutex<HashMap<(u32, TaskManagerId), Arc<TmConnection>>>,
}

impl RemoteLauncher {
    /// A launcher for job `job`, whose binary is blob `blob`, in the cluster whose RPC
    /// endpoint is `rpc`, with `conf`'s token and timeouts.
    pub fn new(conf: &Configuration, rpc: String, job: JobId, blob: BlobKey) -> Result<Self> {
        Ok(RemoteLauncher {
            rpc,
            job,
            blob,
            token: conf.get(keys::REST_AUTH_TOKEN)?.filter(|t| !t.is_empty()),
            network_timeout: conf
                .get_or(keys::TASKMANAGER_NETWORK_TIMEOUT, Duration::from_secs(5))?,
            slot_timeout: conf.get_or(keys::SLOT_REQUEST_TIMEOUT, Duration::from_secs(300))?,
            resource_manager: Mutex::new(None),
            grants: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// The launcher of a job binary started by a session cluster ([`RPC_ENV`], [`BLOB_ENV`]
    /// and the job id in its environment); `None` for one run directly.
    pub fn from_env(conf: &Configuration) -> Result<Option<Self>> {
        let Ok(rpc) = std::env::var(RPC_ENV) else {
            return Ok(None);
        };
        let blob: BlobKey = std::env::var(BLOB_ENV)
            .map_err(|_| anyhow!("{RPC_ENV} is set but {BLOB_ENV} is not"))?
            .parse()
            .map_err(|e| anyhow!("{BLOB_ENV}: {e}"))?;
        let job: JobId = std::env::var(crate::job::JOB_ID_ENV)
            .map_err(|_| {
                anyhow!(
                    "{RPC_ENV} is set but {} is not",
                    crate::job::JOB_ID_ENV
                )
            })?
            .parse()?;
        Ok(Some(RemoteLauncher::new(conf, rpc, job, blob)?))
    }

    /// One request to the resource manager, on its connection (opened when needed; a
    /// broken one is dropped, so the next request opens a new one).
    fn ask(&self, req: &JobRequest) -> std::io::Result<JobReply> {
        let mut rm = self.resource_manager.lock_ok();
        if rm.is_none() {
            let mut s = super::connect(&self.rpc, self.network_timeout)?;
            crate::wire::write_frame(
                &mut s,
                &RpcHello::Job {
                    token: self.token.clone(),
                    job: self.job,
                },
            )?;
            *rm = Some(s);
        }
        let s = rm.as_mut().expect("just set");
        let reply = crate::wire::write_frame(s, req).and_then(|_| crate::wire::read_frame(s));
        if reply.is_err() {
            *rm = None;
        }
        reply
    }

    fn connection(&self, attempt: u32, slot: &ProcessSlot) -> Result<Arc<TmConnection>> {
        let id =
            TaskManagerId(slot.task_manager.clone().ok_or_else(|| {
                anyhow!("process {} was not placed on a task manager", slot.index)
            })?);
        let mut conns = self.connections.lock_ok();
        if let Some(c) = conns.get(&(attempt, id.clone())) {
            if c.state.lock_ok().lost.is_none() {
                return Ok(Arc::clone(c));
            }
        }
        let address = self
            .grants
            .lock_ok()
            .get(&attempt)
            .and_then(|g| g.iter().find(|g| g.task_manager == id))
            .map(|g| g.rpc.clone())
            .ok_or_else(|| anyhow!("attempt {attempt} holds no slots on task manager {id}"))?;
        let conn =
            TmConnection::open(id.clone(), address.clone(), self.network_timeout).map_err(|e| {
                TaskManagerUnreachable {
                    task_manager: id.clone(),
                    address,
                    cause: e.to_string(),
                }
            })?;
        let conn = Arc::new(conn);
        conns.insert((attempt, id), Arc::clone(&conn));
        Ok(conn)
    }
}

impl WorkerLauncher for RemoteLauncher {
    fn control_bind(&self) -> String {
        // Task managers reach this host at the address they reach the daemon at.
        super::host_of(&self.rpc).to_string()
    }

    fn control_address(&self, bound: std::net::SocketAddr) -> String {
        super::join_host_port(super::host_of(&self.rpc), u32::from(bound.port()))
    }

    fn place(
        &self,
        attempt: u32,
        parallelism: u32,
        cancel: &AtomicBool,
    ) -> std::result::Result<Placement, PlacementError> {
        let start = Instant::now();
        let mut available = 0;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(PlacementError::Cancelled);
            }
            let mut unavailable = None;
            match self.ask(&JobRequest::RequestSlots {
                attempt,
                slots: parallelism,
            }) {
                Ok(JobReply::Granted { grants }) => {
                    let placement = super::slots::processes(&grants);
                    self.grants.lock_ok().insert(attempt, grants);
                    return Ok(placement);
                }
                Ok(JobReply::NotEnough { available: a }) => {
                    available = a;
                }
                Ok(JobReply::Refused { reason }) => {
                    return Err(PlacementError::Unavailable(format!(
                        "the resource manager at {} refused the slot request: {reason}",
                        self.rpc
                    )))
                }
                Ok(other) => {
                    return Err(PlacementError::Unavailable(format!(
                        "the resource manager at {} answered a slot request with {other:?}",
                        self.rpc
                    )))
                }
                Err(e) => unavailable = Some(e.to_string()),
            }
            if start.elapsed() >= self.slot_timeout {
                return Err(match unavailable {
                    Some(e) => PlacementError::Unavailable(format!(
                        "cannot reach the resource manager at {}: {e}",
                        self.rpc
                    )),
                    None => PlacementError::NotEnoughSlots {
                        required: parallelism,
                        available,
                        waited: start.elapsed(),
                    },
                });
            }
            // Retry about every 200 ms, noticing a cancel sooner.
            for _ in 0..4 {
                if cancel.load(Ordering::SeqCst) {
                    return Err(PlacementError::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn spawn(
        &self,
        attempt: u32,
        slot: &ProcessSlot,
        command: &WorkerCommand,
    ) -> std::result::Result<Box<dyn WorkerHandle>, SpawnError> {
        self.start_worker(attempt, slot, command).map_err(|e| {
            match e.downcast::<TaskManagerUnreachable>() {
                Ok(u) => SpawnError::Unreachable {
                    task_manager: u.task_manager.0,
                    reason: format!("{} ({})", u.cause, u.address),
                },
                Err(e) => SpawnError::Failed(e),
            }
        })
    }

    fn release(&self, attempt: u32) {
        self.release_attempt(attempt)
    }
}

impl RemoteLauncher {
    /// Starts a worker on the slot's task manager; a task manager that cannot be reached
    /// is a [`TaskManagerUnreachable`] error.
    fn start_worker(
        &self,
        attempt: u32,
        slot: &ProcessSlot,
        command: &WorkerCommand,
    ) -> Result<Box<dyn WorkerHandle>> {
        let conn = self.connection(attempt, slot)?;
        let args = command
            .args
            .iter()
            .map(|a| {
                a.clone()
                    .into_string()
                    .map_err(|a| anyhow!("argument {a:?} of the job binary is not UTF-8"))
            })
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel();
        conn.state.lock_ok().pending.insert(slot.index, tx);
        let start = ToTaskManager::StartWorker(StartWorker {
            token: self.token.clone(),
            job: self.job,
            attempt,
            index: slot.index,
            slots: slot.threads,
            blob: self.blob.clone(),
            args,
            env: command.env.clone(),
        });
        if let Err(e) = conn.send(&start) {
            conn.close();
            return Err(conn.unreachable(e));
        }
        // The task manager may first fetch the job binary: allow for a large one.
        let pid = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok(pid)) => pid,
            Ok(Err(why)) if conn.state.lock_ok().lost.is_some() => {
                return Err(conn.unreachable(why))
            }
            Ok(Err(why)) => {
                return Err(anyhow!(
                    "task manager {} ({}) could not start worker process {} of attempt {attempt}: {why}",
                    conn.id,
                    conn.address,
                    slot.index
                ))
            }
            Err(_) => {
                conn.close();
                return Err(conn.unreachable("it did not start the worker within 300 s"));
            }
        };
        let exit = Arc::clone(conn.state.lock_ok().exits.entry(pid).or_default());
        Ok(Box::new(RemoteWorker {
            pid,
            attempt,
            exit,
            conn,
        }))
    }

    fn release_attempt(&self, attempt: u32) {
        let conns: Vec<Arc<TmConnection>> = {
            let mut c = self.connections.lock_ok();
            let keys: Vec<_> = c.keys().filter(|(a, _)| *a == attempt).cloned().collect();
            keys.into_iter().filter_map(|k| c.remove(&k)).collect()
        };
        for c in conns {
            c.close();
        }
        self.grants.lock_ok().remove(&attempt);
        if let Err(e) = self.ask(&JobRequest::Release { attempt }) {
            // Its slots are freed when this connection closes anyway.
            tracing::warn!(
                "cannot release the slots of attempt {attempt} at {}: {e}",
                self.rpc
            );
        }
    }
}

impl std::fmt::Debug for RemoteLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLauncher")
            .field("rpc", &self.rpc)
            .field("job", &self.job)
            .field("blob", &self.blob)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launcher_is_shared_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<RemoteLauncher>();
    }
}
