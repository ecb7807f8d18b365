//! The cluster daemon's RPC endpoint: Flink's resource manager (task managers register and
//! heartbeat; per-job job managers ask for slots) and blob server (task managers fetch job
//! binaries) on one listener, `jobmanager.rpc.address:jobmanager.rpc.port`.
//!
//! A task manager silent for `heartbeat.timeout`, or whose connection closes, is lost: its
//! slots are gone. A job's grant lives as long as its connection: when its job manager ends
//! (or is killed) its slots are free again.

use super::protocol::*;
use crate::config::{keys, Configuration};
use crate::sync::LockExt;
use crate::JobId;
use crate::Result;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct TaskManagerEntry {
    registration: Registration,
    /// Tells this registration from a later one of the same id.
    generation: u64,
    last_heartbeat: Instant,
    last_heartbeat_ms: u64,
    /// To end its connection when it is declared lost.
    stream: Option<TcpStream>,
}

struct Grant {
    connection: u64,
    attempt: u32,
    slots: Vec<(TaskManagerId, u32)>,
}

#[derive(Default)]
struct State {
    /// In registration order.
    task_managers: Vec<TaskManagerEntry>,
    grants: HashMap<JobId, Grant>,
    /// Jobs with an open connection.
    connected: HashMap<JobId, u64>,
    /// Working directories of every task manager that registered, also lost ones: where
    /// worker output stays after a task manager went away.
    dirs: Vec<PathBuf>,
    next: u64,
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Slots of `tm` in use, not counting `except`'s grant: granted ones, and those of
    /// workers it still runs for a job no job manager holds a grant for (they ran before a
    /// restart of this daemon).
    fn used(&self, tm: &TaskManagerEntry, except: Option<JobId>) -> u32 {
        let granted: u32 = self
            .grants
            .iter()
            .filter(|(j, _)| Some(**j) != except)
            .flat_map(|(_, g)| g.slots.iter())
            .filter(|(id, _)| *id == tm.registration.id)
            .map(|(_, n)| n)
            .sum();
        let orphans: u32 = tm
            .registration
            .running
            .iter()
            .filter(|w| Some(w.job) != except && !self.grants.contains_key(&w.job))
            .map(|w| w.slots)
            .sum();
        (granted + orphans).min(tm.registration.slots)
    }

    fn free(&self, except: Option<JobId>) -> Vec<u32> {
        self.task_managers
            .iter()
            .map(|t| t.registration.slots - self.used(t, except))
            .collect()
    }
}

/// A registered task manager as `/taskmanagers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerStatus {
    /// What it registered with (its workers as of its last heartbeat).
    pub registration: Registration,
    /// When it last heartbeated, ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// Its free slots.
    pub free_slots: u32,
    /// Slots granted on it, per job.
    pub allocated: Vec<(JobId, u32)>,
}

/// The resource manager and blob server of a cluster daemon.
pub struct ResourceManager {
    state: Mutex<State>,
    blob_dir: PathBuf,
    token: Option<String>,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    network_timeout: Duration,
}

impl ResourceManager {
    /// A resource manager with `conf`'s heartbeat and token settings, storing blobs in
    /// `blob_dir`.
    pub fn new(conf: &Configuration, blob_dir: PathBuf) -> Result<Arc<ResourceManager>> {
        let heartbeat_interval = conf.get_or(keys::HEARTBEAT_INTERVAL, Duration::from_secs(1))?;
        let heartbeat_timeout = conf
            .get_or(keys::HEARTBEAT_TIMEOUT, Duration::from_secs(10))?
            .max(heartbeat_interval);
        Ok(Arc::new(ResourceManager {
            state: Mutex::new(State::default()),
            blob_dir,
            token: conf.get(keys::REST_AUTH_TOKEN)?.filter(|t| !t.is_empty()),
            heartbeat_interval,
            heartbeat_timeout,
            network_timeout: conf
                .get_or(keys::TASKMANAGER_NETWORK_TIMEOUT, Duration::from_secs(5))?,
        }))
    }

    /// Where it stores blobs.
    pub fn blob_dir(&self) -> &std::path::Path {
        &self.blob_dir
    }

    /// Stores the job binary at `binary` as a blob; its key.
    pub fn put_blob(&self, binary: &std::path::Path) -> Result<BlobKey> {
        super::blob::store(&self.blob_dir, binary)
    }

    /// The working directories of every task manager that registered since this resource
    /// manager started, in registration order.
    pub fn task_manager_dirs(&self) -> Vec<PathBuf> {
        self.state.lock_ok().dirs.clone()
    }

    /// The registered task managers, in registration order.
    pub fn task_managers(&self) -> Vec<TaskManagerStatus> {
        let s = self.state.lock_ok();
        s.task_managers
            .iter()
            .map(|t| TaskManagerStatus {
                registration: t.registration.clone(),
                last_heartbeat_ms: t.last_heartbeat_ms,
                free_slots: t.registration.slots - s.used(t, None),
                allocated: s
                    .grants
                    .iter()
                    .filter_map(|(j, g)| {
                        g.slots
                            .iter()
                            .find(|(id, _)| *id == t.registration.id)
                            .map(|(_, n)| (*j, *n))
                    })
                    .collect(),
            })
            .collect()
    }

    /// Serves RPC connections on `listener` from a background thread.
    pub fn serve(self: &Arc<Self>, listener: TcpListener) -> Result<()> {
        let rm = Arc::clone(self);
        // Silence longer than the heartbeat timeout loses a task manager even when its
        // connection hangs without an error (a stopped process, a cut link).
        let reaper = Arc::clone(self);
        std::thread::Builder::new()
            .name("floe-rm-heartbeats".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                reaper.reap();
            })?;
        std::thread::Builder::new()
            .name("floe-rm-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let rm = Arc::clone(&rm);
                    let _ = std::thread::Builder::new()
                        .name("floe-rm-conn".into())
                        .spawn(move || rm.connection(conn));
                }
            })?;
        Ok(())
    }

    fn reap(&self) {
        let mut s = self.state.lock_ok();
        let timeout = self.heartbeat_timeout;
        s.task_managers.retain(|t| {
            let alive = t.last_heartbeat.elapsed() <= timeout;
            if !alive {
                eprintln!(
                    "The heartbeat of task manager {} ({}) timed out after {} ms: it is lost, with its {} slot(s).",
                    t.registration.id,
                    t.registration.host,
                    timeout.as_millis(),
                    t.registration.slots
                );
                if let Some(s) = &t.stream {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
            alive
        });
    }

    fn connection(&self, mut conn: TcpStream) {
        let (Ok(local), Ok(peer)) = (conn.local_addr(), conn.peer_addr()) else {
            return;
        };
        let _ = crate::wire::configure_socket(&conn, self.network_timeout);
        let _ = conn.set_read_timeout(Some(self.network_timeout.max(Duration::from_secs(1))));
        let Ok(hello) = crate::wire::read_frame::<RpcHello>(&mut conn) else {
            return;
        };
        let _ = conn.set_read_timeout(None);
        let token = match &hello {
            RpcHello::TaskManager { token, .. }
            | RpcHello::Job { token, .. }
            | RpcHello::Blob { token, .. } => token.clone(),
        };
        let authorized = token_ok(self.token.as_deref(), token.as_deref(), local, peer);
        match hello {
            RpcHello::TaskManager { registration, .. } => {
                self.task_manager(conn, peer, registration, authorized)
            }
            RpcHello::Job { job, .. } => self.job(conn, job, authorized),
            RpcHello::Blob { key, .. } => {
                if !authorized {
                    let _ = crate::wire::write_frame(
                        &mut conn,
                        &BlobReply::Refused {
                            reason: RefusalReason::BadToken,
                        },
                    );
                    return;
                }
                let _ = super::blob::serve(&self.blob_dir, &key, &mut conn);
            }
        }
    }

    fn task_manager(
        &self,
        mut conn: TcpStream,
        peer: SocketAddr,
        registration: Registration,
        authorized: bool,
    ) {
        let refuse = |conn: &mut TcpStream, reason: RefusalReason| {
            eprintln!(
                "Refused the registration of task manager {} from {peer}: {reason}",
                registration.id
            );
            let _ = crate::wire::write_frame(conn, &RegistrationReply::Refused { reason });
        };
        if !authorized {
            return refuse(&mut conn, RefusalReason::BadToken);
        }
        if registration.slots == 0 {
            return refuse(&mut conn, RefusalReason::NoSlots);
        }
        let id = registration.id.clone();
        let generation = {
            let mut s = self.state.lock_ok();
            let generation = s.next_id();
            if let Some(d) = &registration.dir {
                if !s.dirs.contains(d) {
                    s.dirs.push(d.clone());
                }
            }
            let entry = TaskManagerEntry {
                registration: registration.clone(),
                generation,
                last_heartbeat: Instant::now(),
                last_heartbeat_ms: now_ms(),
                stream: conn.try_clone().ok(),
            };
            // A task manager registering again (it reconnected) keeps its place.
            match s.task_managers.iter_mut().find(|t| t.registration.id == id) {
                Some(t) => {
                    if let Some(old) = &t.stream {
                        let _ = old.shutdown(std::net::Shutdown::Both);
                    }
                    *t = entry
                }
                None => s.task_managers.push(entry),
            }
            generation
        };
        eprintln!(
            "Registering task manager {} at {} ({} slot(s), {} running worker(s)) under {peer}.",
            id,
            registration.rpc,
            registration.slots,
            registration.running.len()
        );
        let reply = RegistrationReply::Registered {
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
        };
        let why = (|| -> std::io::Result<()> {
            crate::wire::write_frame(&mut conn, &reply)?;
            conn.set_read_timeout(Some(self.heartbeat_timeout))?;
            loop {
                let TaskManagerReport::Heartbeat { running } = crate::wire::read_frame(&mut conn)?;
                {
                    let mut s = self.state.lock_ok();
                    let Some(t) = s
                        .task_managers
                        .iter_mut()
                        .find(|t| t.generation == generation)
                    else {
                        return Err(std::io::Error::other("it was declared lost"));
                    };
                    t.last_heartbeat = Instant::now();
                    t.last_heartbeat_ms = now_ms();
                    t.registration.running = running;
                }
                crate::wire::write_frame(&mut conn, &ResourceManagerReply::HeartbeatAck)?;
            }
        })()
        .unwrap_err();
        let mut s = self.state.lock_ok();
        if let Some(pos) = s
            .task_managers
            .iter()
            .position(|t| t.generation == generation)
        {
            s.task_managers.remove(pos);
            eprintln!(
                "Task manager {id} ({}) is lost: {why}. Its {} slot(s) are gone.",
                registration.host, registration.slots
            );
        }
    }

    fn job(&self, mut conn: TcpStream, job: JobId, authorized: bool) {
        if !authorized {
            let _ = crate::wire::write_frame(
                &mut conn,
                &JobReply::Refused {
                    reason: RefusalReason::BadToken,
                },
            );
            return;
        }
        let connection = {
            let mut s = self.state.lock_ok();
            let c = s.next_id();
            s.connected.insert(job, c);
            c
        };
        while let Ok(req) = crate::wire::read_frame::<JobRequest>(&mut conn) {
            let reply = self.handle(job, connection, req);
            if crate::wire::write_frame(&mut conn, &reply).is_err() {
                break;
            }
        }
        let mut s = self.state.lock_ok();
        if s.grants.get(&job).map(|g| g.connection) == Some(connection) {
            let g = s.grants.remove(&job).expect("checked");
            let n: u32 = g.slots.iter().map(|(_, n)| n).sum();
            eprintln!("Released {n} slot(s) of job {job}: its job manager disconnected.");
        }
        if s.connected.get(&job) == Some(&connection) {
            s.connected.remove(&job);
        }
    }

    fn handle(&self, job: JobId, connection: u64, req: JobRequest) -> JobReply {
        let mut s = self.state.lock_ok();
        match req {
            JobRequest::RequestSlots { attempt, slots } => {
                let free = s.free(Some(job));
                match super::slots::pack(&free, slots) {
                    None => JobReply::NotEnough {
                        available: free.iter().sum(),
                    },
                    Some(taken) => {
                        let grants: Vec<SlotGrant> = taken
                            .iter()
                            .map(|&(i, n)| {
                                let r = &s.task_managers[i].registration;
                                SlotGrant {
                                    task_manager: r.id.clone(),
                                    host: r.host.clone(),
                                    bind_host: r.bind_host.clone(),
                                    rpc: r.rpc.clone(),
                                    slots: n,
                                }
                            })
                            .collect();
                        eprintln!(
                            "Granted {slots} slot(s) to attempt {attempt} of job {job}: {}",
                            grants
                                .iter()
                                .map(|g| format!("{} on {}", g.slots, g.task_manager))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        s.grants.insert(
                            job,
                            Grant {
                                connection,
                                attempt,
                                slots: grants
                                    .iter()
                                    .map(|g| (g.task_manager.clone(), g.slots))
                                    .collect(),
                            },
                        );
                        JobReply::Granted { grants }
                    }
                }
            }
            JobRequest::Release { attempt } => {
                if s.grants.get(&job).map(|g| g.attempt) == Some(attempt) {
                    s.grants.remove(&job);
                }
                JobReply::Released
            }
        }
    }
}

/// The address the RPC endpoint binds to: `jobmanager.bind-host` (else
/// `jobmanager.rpc.address`) and `jobmanager.rpc.port`.
pub fn bind_address(conf: &Configuration) -> Result<String> {
    let host = match conf.get(keys::JOBMANAGER_BIND_HOST)? {
        Some(h) => h,
        None => conf
            .get(keys::JOBMANAGER_RPC_ADDRESS)?
            .unwrap_or_else(|| "localhost".into()),
    };
    let port = conf.get_or(keys::JOBMANAGER_RPC_PORT, 6123)?;
    Ok(super::join_host_port(&host, port))
}
