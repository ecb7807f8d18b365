//! Running an attempt in worker processes, so that no user code ever runs in the job
//! manager: a panic, `abort()`, stack overflow, OOM kill or `kill -9` of a worker is a
//! task failure the job manager survives and handles with the restart strategy.
//!
//! The job manager asks its [`WorkerLauncher`] to place the attempt (one or more
//! processes, each with the same number of worker threads) and to start the job binary in
//! every slot with `FLOE_WORKER=<host:port>` and the attempt's parameters in the
//! environment, its own effective configuration among them ([`CONFIG_ENV`]). Each worker
//! builds the same job graph, binds a data listener, connects back and says hello (its
//! attempt, process index and data address); once every process did, the job manager sends
//! all of them the peer list and a fresh random nonce. The processes then connect to each
//! other ([`super::network`]) and run the attempt as one timely cluster; with one process
//! the worker threads simply share the process.
//!
//! Control messages ([`ToExecutor`]/[`FromExecutor`]) travel as length-prefixed JSON
//! frames over the control connections (they are small; records never cross them). The
//! job manager merges what the processes report: acknowledgements and failures pass
//! through, `Running`, `EndOfInput`, `Finished` and `Cancelled` count once every process
//! reported them. Each process sends a heartbeat with every worker thread's loop counter;
//! the job manager fails the attempt when heartbeats stop (SIGSTOP, a hung process, a lost
//! host) or a thread's counter stops moving (a deadlock or an endless loop in user code).
//! Any failure fails the whole attempt: timely cannot replace a process of a running
//! cluster, so the job manager tears every process down and restarts them all.

use super::executor::{Comm, LocalExecutor};
use super::network::{connect_mesh, MeshId};
use super::plan::Plan;
use super::protocol::{bounded_message, AttemptSpec, FromExecutor, TaskExecutor, ToExecutor};
use super::workers::{
    PlacementError, ProcessSlot, SpawnError, WorkerCommand, WorkerHandle, WorkerLauncher,
};
use crate::checkpoint::metadata::{load_snapshot, TaskId};
use crate::config::{keys, Configuration};
use crate::sync::LockExt;
use crate::wire::{configure_socket, read_frame, write_frame};
use crate::Result;
use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable that makes a job binary a worker of the given job manager.
pub const WORKER_ENV: &str = "FLOE_WORKER";
const ATTEMPT_ENV: &str = "FLOE_WORKER_ATTEMPT";
const EPOCH_ENV: &str = "FLOE_WORKER_START_EPOCH";
const RESTORE_ENV: &str = "FLOE_WORKER_RESTORE";
const JOB_ID_ENV: &str = "FLOE_WORKER_JOB_ID";
/// The job's savepoints, as a JSON array of paths.
const SAVEPOINTS_ENV: &str = "FLOE_WORKER_SAVEPOINTS";
const HEARTBEAT_ENV: &str = "FLOE_WORKER_HEARTBEAT_MS";
/// The process's index in its attempt.
const PROCESS_ENV: &str = "FLOE_WORKER_PROCESS";
/// How many processes the attempt has.
const PROCESSES_ENV: &str = "FLOE_WORKER_PROCESSES";
/// Worker threads per process.
const THREADS_ENV: &str = "FLOE_WORKER_THREADS";
/// The host the process's data address is advertised as.
const HOST_ENV: &str = "FLOE_WORKER_HOST";
/// The address the process's data listener binds to.
const BIND_ENV: &str = "FLOE_WORKER_BIND";
/// The job manager's effective configuration as a JSON object of key → value: a worker
/// uses it instead of configuration files (a task manager's host has none of the job's).
pub const CONFIG_ENV: &str = "FLOE_WORKER_CONFIG";

/// Exit code of a worker process whose connection to another process of its attempt broke
/// (a peer died or its host vanished): the attempt is doomed, the job manager restarts it.
pub const PEER_LOST_EXIT: i32 = 3;

/// How long the job manager waits for every started process to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a cancelled process may take to exit before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Heartbeat timing of worker processes.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    /// How often a worker reports.
    pub interval: Duration,
    /// How long without a report, or without progress of a worker thread, fails the attempt.
    pub timeout: Duration,
}

/// How a job manager runs its attempts in worker processes.
#[derive(Clone)]
pub struct WorkerSettings {
    /// Heartbeat timing.
    pub heartbeat: Heartbeat,
    /// Where the processes run.
    pub launcher: Arc<dyn WorkerLauncher>,
    /// The job manager's effective configuration, handed to every worker.
    pub config: Configuration,
    /// `taskmanager.network.tcp-user-timeout`.
    pub network_timeout: Duration,
    /// `slot.request.timeout`: how long unreachable task managers are retried while placing.
    pub slot_request_timeout: Duration,
}

/// The first frame of a worker on its control connection.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Hello {
    attempt: u32,
    process: u32,
    /// Where the other processes reach its data listener (empty for a single process).
    data: String,
}

/// The job manager's answer once every process said hello.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MeshStart {
    nonce: u64,
    peers: Vec<String>,
}

/// One started worker process (job-manager side).
struct Proc {
    slot: ProcessSlot,
    handle: Box<dyn WorkerHandle>,
    writer: Option<BufWriter<TcpStream>>,
    stream: Option<TcpStream>,
}

impl Proc {
    fn name(&self) -> String {
        format!(
            "worker process {} (pid {}, host {})",
            self.slot.index,
            self.handle.pid(),
            self.slot.host
        )
    }
}

/// What the processes reported, merged into what the job manager sees.
#[derive(Default)]
struct Merge {
    running: Vec<bool>,
    tasks: Vec<TaskId>,
    end_of_input: Vec<bool>,
    finished: Vec<bool>,
    cancelled: Vec<bool>,
    failed: bool,
}

/// Heartbeats of one process.
struct Beats {
    last: Instant,
    progress: Vec<u64>,
    moved: Vec<Instant>,
}

struct Shared {
    attempt: u32,
    parallelism: u32,
    settings: WorkerSettings,
    events: Sender<FromExecutor>,
    /// Stop placing and starting processes.
    cancel: AtomicBool,
    /// Shutting down: lost processes are expected, not failures.
    done: AtomicBool,
    procs: Mutex<Vec<Proc>>,
    /// Commands that arrived before every process was connected (`None` afterwards).
    pending: Mutex<Option<Vec<ToExecutor>>>,
    merge: Mutex<Merge>,
    beats: Mutex<Vec<Beats>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Why processes could not be started.
enum StartError {
    /// A task manager could not be reached: place again.
    Unreachable(SpawnError),
    /// Anything else fails the attempt.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Other(e.into())
    }
}

impl Shared {
    /// Reports the attempt's first failure (none while shutting down).
    fn fail(&self, task: &str, error: String) {
        self.fail_with(FromExecutor::Failed {
            attempt: self.attempt,
            task: task.to_string(),
            error: bounded_message(error),
            unrecoverable: None,
        });
    }

    fn fail_with(&self, failed: FromExecutor) {
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut m = self.merge.lock_ok();
            if m.failed {
                return;
            }
            m.failed = true;
        }
        let _ = self.events.send(failed);
    }

    fn kill_all(&self) {
        for p in self.procs.lock_ok().iter() {
            p.handle.kill();
        }
    }

    /// Places the attempt and starts its processes, placing again while task managers
    /// cannot be reached, up to `slot.request.timeout`.
    fn establish(self: &Arc<Self>, spec: &AttemptSpec) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let launcher = &self.settings.launcher;
            let placement = match launcher.place(self.attempt, self.parallelism, &self.cancel) {
                Ok(p) => p,
                Err(PlacementError::Cancelled) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            match self.start_processes(spec, &placement) {
                Ok(()) => return Ok(()),
                Err(StartError::Unreachable(e))
                    if started.elapsed() < self.settings.slot_request_timeout =>
                {
                    tracing::warn!("Placing attempt #{} again: {e}.", self.attempt);
                    self.kill_all();
                    self.procs.lock_ok().clear();
                    launcher.release(self.attempt);
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(StartError::Unreachable(e)) => {
                    crate::bail!(
                        "{e} (gave up after {} ms, slot.request.timeout)",
                        started.elapsed().as_millis()
                    )
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
    }

    fn start_processes(
        self: &Arc<Self>,
        spec: &AttemptSpec,
        placement: &super::workers::Placement,
    ) -> std::result::Result<(), StartError> {
        let attempt = self.attempt;
        let launcher = &self.settings.launcher;
        let bind = launcher.control_bind();
        let listener = TcpListener::bind((bind.as_str(), 0))
            .map_err(|e| crate::anyhow!("cannot bind the control listener on {bind}: {e}"))?;
        let control = launcher.control_address(listener.local_addr()?);
        let mut env = vec![
            (WORKER_ENV.to_string(), control),
            (ATTEMPT_ENV.to_string(), attempt.to_string()),
            (EPOCH_ENV.to_string(), spec.start_epoch.to_string()),
            (JOB_ID_ENV.to_string(), spec.job_id.clone()),
            (
                SAVEPOINTS_ENV.to_string(),
                serde_json::to_string(&spec.savepoints).map_err(anyhow::Error::from)?,
            ),
            (
                HEARTBEAT_ENV.to_string(),
                self.settings.heartbeat.interval.as_millis().to_string(),
            ),
            (
                PROCESSES_ENV.to_string(),
                placement.processes.len().to_string(),
            ),
            (
                CONFIG_ENV.to_string(),
                config_to_json(&self.settings.config)?,
            ),
        ];
        if let Some(s) = &spec.restore {
            env.push((RESTORE_ENV.to_string(), s.dir.to_string()));
        }
        let args = std::env::args_os().skip(1).collect::<Vec<_>>();
        let n = placement.processes.len();
        for slot in &placement.processes {
            let mut command = WorkerCommand {
                args: args.clone(),
                env: env.clone(),
            };
            command.env.extend([
                (PROCESS_ENV.to_string(), slot.index.to_string()),
                (THREADS_ENV.to_string(), slot.threads.to_string()),
                (HOST_ENV.to_string(), slot.host.clone()),
                (BIND_ENV.to_string(), slot.bind.clone()),
            ]);
            let handle = match launcher.spawn(attempt, slot, &command) {
                Ok(h) => h,
                Err(e @ SpawnError::Unreachable { .. }) => return Err(StartError::Unreachable(e)),
                Err(SpawnError::Failed(e)) => return Err(StartError::Other(e)),
            };
            tracing::info!(
                "Started worker process {} for attempt #{attempt} (process {} of {n} on {}).",
                handle.pid(),
                slot.index,
                slot.host
            );
            self.procs.lock_ok().push(Proc {
                slot: slot.clone(),
                handle,
                writer: None,
                stream: None,
            });
        }
        // Every process connects back and says hello, or dies trying.
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + HELLO_TIMEOUT;
        let mut hellos: Vec<Option<(Hello, TcpStream)>> = (0..n).map(|_| None).collect();
        while hellos.iter().any(Option::is_none) {
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            match listener.accept() {
                Ok((stream, from)) => match self.read_hello(&stream, n) {
                    Ok(h) if hellos[h.process as usize].is_none() => {
                        let i = h.process as usize;
                        hellos[i] = Some((h, stream));
                    }
                    Ok(h) => tracing::warn!(
                        "Refused a second control connection of worker process {} from {from}.",
                        h.process
                    ),
                    Err(e) => tracing::warn!("Refused a control connection from {from}: {e}."),
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    for p in self.procs.lock_ok().iter() {
                        if hellos[p.slot.index as usize].is_some() {
                            continue;
                        }
                        if let Some(st) = p.handle.exit_status() {
                            return Err(crate::anyhow!(
                                "{} exited before connecting ({st})",
                                p.name()
                            )
                            .into());
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(crate::anyhow!(
                            "worker processes of attempt #{attempt} did not connect within {} s",
                            HELLO_TIMEOUT.as_secs()
                        )
                        .into());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let _ = self.events.send(FromExecutor::Deployed {
            attempt,
            placement: placement.clone(),
        });
        let nonce = rand::random::<u64>();
        let peers: Vec<String> = hellos
            .iter()
            .map(|h| h.as_ref().map(|(h, _)| h.data.clone()).unwrap_or_default())
            .collect();
        let now = Instant::now();
        *self.beats.lock_ok() = (0..n)
            .map(|_| Beats {
                last: now,
                progress: Vec::new(),
                moved: Vec::new(),
            })
            .collect();
        {
            let mut m = self.merge.lock_ok();
            m.running = vec![false; n];
            m.end_of_input = vec![false; n];
            m.finished = vec![false; n];
            m.cancelled = vec![false; n];
        }
        let mut pending = self.pending.lock_ok();
        let mut procs = self.procs.lock_ok();
        for (i, h) in hellos.into_iter().enumerate() {
            let (_, stream) = h.expect("every process said hello");
            let mut writer = BufWriter::new(stream.try_clone()?);
            write_frame(
                &mut writer,
                &MeshStart {
                    nonce,
                    peers: peers.clone(),
                },
            )?;
            let p = procs
                .iter_mut()
                .find(|p| p.slot.index as usize == i)
                .ok_or_else(|| crate::anyhow!("no process {i} was placed"))?;
            p.writer = Some(writer);
            p.stream = Some(stream.try_clone()?);
            let name = p.name();
            let sh = Arc::clone(self);
            let reader = std::thread::Builder::new()
                .name(format!("floe-control-{i}"))
                .spawn(move || sh.relay(i, name, stream))?;
            self.threads.lock_ok().push(reader);
        }
        for cmd in pending.take().unwrap_or_default() {
            send_to(&mut procs, &cmd);
        }
        drop(procs);
        drop(pending);
        let sh = Arc::clone(self);
        let watchdog = std::thread::Builder::new()
            .name(format!("floe-watchdog-{attempt}"))
            .spawn(move || sh.watch())?;
        self.threads.lock_ok().push(watchdog);
        Ok(())
    }

    fn read_hello(&self, stream: &TcpStream, n: usize) -> Result<Hello> {
        stream.set_nonblocking(false)?;
        configure_socket(stream, self.settings.network_timeout)?;
        // A connection that says nothing must not hold up the others.
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let hello: Hello = read_frame(&mut BufReader::new(stream))?;
        stream.set_read_timeout(None)?;
        if hello.attempt != self.attempt {
            crate::bail!("it belongs to attempt #{}", hello.attempt);
        }
        if hello.process as usize >= n {
            crate::bail!("it claims process {} of {n}", hello.process);
        }
        Ok(hello)
    }

    /// Relays the events of process `i` until its connection closes.
    fn relay(&self, i: usize, name: String, stream: TcpStream) {
        let attempt = self.attempt;
        // The hello was read unbuffered, so nothing of this stream is lost here.
        let mut r = BufReader::new(stream);
        let mut terminal = false;
        let mut broken: Option<std::io::Error> = None;
        loop {
            let ev = match read_frame::<FromExecutor>(&mut r) {
                Ok(ev) => ev,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        broken = Some(e);
                    }
                    break;
                }
            };
            if ev.attempt() != attempt {
                continue;
            }
            let all = |v: &mut Vec<bool>| {
                if let Some(b) = v.get_mut(i) {
                    *b = true;
                }
                v.iter().all(|b| *b)
            };
            let forward = match ev {
                FromExecutor::Heartbeat { progress, .. } => {
                    let now = Instant::now();
                    if let Some(b) = self.beats.lock_ok().get_mut(i) {
                        if b.moved.len() != progress.len() {
                            b.moved = vec![now; progress.len()];
                        } else {
                            for (t, p) in progress.iter().enumerate() {
                                if b.progress.get(t) != Some(p) {
                                    b.moved[t] = now;
                                }
                            }
                        }
                        b.last = now;
                        b.progress = progress;
                    }
                    None
                }
                FromExecutor::Running { tasks, .. } => {
                    let mut m = self.merge.lock_ok();
                    m.tasks.extend(tasks);
                    if all(&mut m.running) {
                        let mut tasks = std::mem::take(&mut m.tasks);
                        tasks.sort();
                        tasks.dedup();
                        Some(FromExecutor::Running { attempt, tasks })
                    } else {
                        None
                    }
                }
                FromExecutor::EndOfInput { .. } => {
                    all(&mut self.merge.lock_ok().end_of_input).then_some(ev)
                }
                FromExecutor::Finished { .. } => {
                    terminal = true;
                    all(&mut self.merge.lock_ok().finished).then_some(ev)
                }
                FromExecutor::Cancelled { .. } => {
                    terminal = true;
                    all(&mut self.merge.lock_ok().cancelled).then_some(ev)
                }
                FromExecutor::Failed { .. } => {
                    terminal = true;
                    self.fail_with(ev);
                    None
                }
                other => Some(other),
            };
            if let Some(ev) = forward {
                if self.events.send(ev).is_err() {
                    return;
                }
            }
            if terminal {
                // What a finished process says while its peers wind down (a broken
                // socket to one that exited first) is no failure of the attempt.
                return;
            }
        }
        if terminal || self.done.load(Ordering::SeqCst) {
            return;
        }
        let error = match broken {
            Some(e) => format!("bad control message from {name}: {e}"),
            None => format!(
                "{name} was lost ({})",
                self.wait_exit(i, Duration::from_secs(2))
            ),
        };
        self.fail(&format!("worker process {i}"), error);
        // The others cannot go on without it.
        self.kill_all();
    }

    /// How process `i` ended, waiting up to `within`.
    fn wait_exit(&self, i: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let st = self
                .procs
                .lock_ok()
                .iter()
                .find(|p| p.slot.index as usize == i)
                .and_then(|p| p.handle.exit_status());
            if let Some(st) = st {
                return st;
            }
            if Instant::now() > deadline {
                return "still running".into();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// No heartbeat from a process, or a worker thread without progress, fails the attempt.
    fn watch(&self) {
        let timeout = self.settings.heartbeat.timeout;
        while !self.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            let reason = {
                let beats = self.beats.lock_ok();
                beats.iter().enumerate().find_map(|(i, b)| {
                    if b.last.elapsed() > timeout {
                        Some((i, None))
                    } else {
                        b.moved
                            .iter()
                            .position(|t| t.elapsed() > timeout)
                            .map(|t| (i, Some(t)))
                    }
                })
            };
            let Some((i, thread)) = reason else { continue };
            let name = self
                .procs
                .lock_ok()
                .iter()
                .find(|p| p.slot.index as usize == i)
                .map(Proc::name)
                .unwrap_or_else(|| format!("worker process {i}"));
            let error = match thread {
                None => format!("no heartbeat from {name} for {} ms", timeout.as_millis()),
                Some(t) => format!(
                    "worker thread {t} of {name} made no progress for {} ms (stuck in user code?)",
                    timeout.as_millis()
                ),
            };
            self.kill_all();
            self.fail(&format!("worker process {i}"), error);
            return;
        }
    }
}

fn send_to(procs: &mut [Proc], cmd: &ToExecutor) {
    for p in procs.iter_mut() {
        if let Some(w) = p.writer.as_mut() {
            if write_frame(w, cmd).is_err() {
                p.writer = None; // its reader reports the lost process
            }
        }
    }
}

/// An attempt running in worker processes (job-manager side).
pub struct ProcessExecutor {
    shared: Arc<Shared>,
    starter: Option<JoinHandle<()>>,
}

impl ProcessExecutor {
    /// Starts the attempt `spec` describes in worker processes placed by the settings'
    /// launcher, on a background thread: the job manager's loop stays responsive while
    /// slots are awaited and processes start. Events (and a `Failed` for a process that
    /// cannot start or is lost) go to `events`.
    pub fn start(
        spec: &AttemptSpec,
        parallelism: u32,
        settings: WorkerSettings,
        events: Sender<FromExecutor>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            attempt: spec.attempt,
            parallelism,
            settings,
            events,
            cancel: AtomicBool::new(false),
            done: AtomicBool::new(false),
            procs: Mutex::new(Vec::new()),
            pending: Mutex::new(Some(Vec::new())),
            merge: Mutex::new(Merge::default()),
            beats: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let sh = Arc::clone(&shared);
        let spec = spec.clone();
        let starter = std::thread::Builder::new()
            .name(format!("floe-deploy-{}", spec.attempt))
            .spawn(move || {
                if let Err(e) = sh.establish(&spec) {
                    sh.fail("worker processes", format!("{e:#}"));
                }
            })?;
        Ok(ProcessExecutor {
            shared,
            starter: Some(starter),
        })
    }
}

impl TaskExecutor for ProcessExecutor {
    fn send(&self, cmd: ToExecutor) {
        let mut pending = self.shared.pending.lock_ok();
        if let Some(p) = pending.as_mut() {
            if matches!(cmd, ToExecutor::Cancel) {
                self.shared.cancel.store(true, Ordering::SeqCst);
            }
            p.push(cmd);
            return;
        }
        send_to(&mut self.shared.procs.lock_ok(), &cmd);
    }

    fn shutdown(mut self: Box<Self>) {
        let sh = Arc::clone(&self.shared);
        sh.done.store(true, Ordering::SeqCst);
        sh.cancel.store(true, Ordering::SeqCst);
        if let Some(t) = self.starter.take() {
            let _ = t.join();
        }
        // Connected processes stop themselves; unconnected ones have nothing to stop.
        self.send(ToExecutor::Cancel);
        let connected = sh.pending.lock_ok().is_none();
        if !connected {
            sh.kill_all();
        }
        // A process that does not stop within a few seconds (stopped, hung, on a host
        // that is gone) is killed; an unreachable host is not waited for beyond that.
        let deadline = Instant::now() + CANCEL_GRACE;
        let mut killed = !connected;
        loop {
            let running: Vec<String> = sh
                .procs
                .lock_ok()
                .iter()
                .filter(|p| p.handle.exit_status().is_none())
                .map(Proc::name)
                .collect();
            if running.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                if killed {
                    tracing::warn!(
                        "Gave up waiting for {} of attempt #{}.",
                        running.join(", "),
                        sh.attempt
                    );
                    break;
                }
                tracing::warn!("Killing {} of attempt #{}.", running.join(", "), sh.attempt);
                sh.kill_all();
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in sh.procs.lock_ok().iter_mut() {
            p.writer = None;
            if let Some(s) = p.stream.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        let threads = std::mem::take(&mut *sh.threads.lock_ok());
        for t in threads {
            let _ = t.join();
        }
        sh.procs.lock_ok().clear();
        sh.settings.launcher.release(sh.attempt);
    }
}

/// True when this process was started as a worker by a job manager.
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// The configuration the job manager handed this worker process ([`CONFIG_ENV`]), if any.
pub fn worker_config() -> Result<Option<Configuration>> {
    match std::env::var(CONFIG_ENV) {
        Ok(json) => config_from_json(&json).map(Some),
        Err(_) => Ok(None),
    }
}

/// A configuration as [`CONFIG_ENV`] carries it: a JSON object of key → value.
fn config_to_json(conf: &Configuration) -> Result<String> {
    let map: BTreeMap<&str, &str> = conf.iter().collect();
    Ok(serde_json::to_string(&map)?)
}

fn config_from_json(json: &str) -> Result<Configuration> {
    let map: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| crate::anyhow!("worker environment variable {CONFIG_ENV} is invalid: {e}"))?;
    let mut conf = Configuration::new();
    for (k, v) in &map {
        conf.set(k, v)
            .map_err(|e| crate::anyhow!("worker environment variable {CONFIG_ENV}: {e}"))?;
    }
    Ok(conf)
}

/// The worker side: runs the attempt the job manager asked for and relays messages until
/// the attempt ends; returns the process's exit code (`crate::launch` exits with it). A job
/// manager that goes away ends the process at once.
pub fn run_worker(plan: Arc<Plan>, exit: fn(i32) -> !) -> i32 {
    match worker_main(plan, exit) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: worker: {e:#}");
            1
        }
    }
}

fn env_u64(name: &str) -> Result<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| crate::anyhow!("worker environment variable {name} is missing or invalid"))
}

/// What the timely-communication panic hook needs to tell the job manager.
struct PeerLoss {
    attempt: u32,
    process: u32,
    peers: Vec<String>,
    writer: Arc<Mutex<BufWriter<TcpStream>>>,
    exit: fn(i32) -> !,
}

static PEER_LOSS: OnceLock<PeerLoss> = OnceLock::new();

/// Turns timely's "timely communication error" panics (a peer process died, its host
/// vanished) into one clear failure at the job manager and an exit with
/// [`PEER_LOST_EXIT`], as Materialize's `halt_on_timely_communication_panic` does: without
/// it the panic cascades through poisoned queues into misleading worker panics.
fn install_peer_loss_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        super::failure::install_panic_hook();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                String::new()
            };
            if msg.starts_with("timely communication error") {
                if let Some(p) = PEER_LOSS.get() {
                    peer_lost(p, &msg);
                }
            }
            previous(info)
        }));
    });
}

fn peer_lost(p: &PeerLoss, msg: &str) -> ! {
    // timely names its network threads `timely:send-<peer>` / `timely:recv-<peer>`.
    let peer = std::thread::current()
        .name()
        .and_then(|n| n.rsplit('-').next())
        .and_then(|i| i.parse::<usize>().ok());
    let error = match peer {
        Some(j) => format!(
            "connection to worker process {j} ({}) lost: {msg}",
            p.peers.get(j).map(String::as_str).unwrap_or("?")
        ),
        None => format!("connection to another worker process lost: {msg}"),
    };
    let failed = FromExecutor::Failed {
        attempt: p.attempt,
        task: format!("worker process {}", p.process),
        error: bounded_message(error),
        unrecoverable: None,
    };
    let _ = std::io::stdout().flush();
    if let Ok(mut w) = p.writer.lock() {
        let _ = write_frame(&mut *w, &failed);
    }
    (p.exit)(PEER_LOST_EXIT)
}

fn worker_main(plan: Arc<Plan>, exit: fn(i32) -> !) -> Result<()> {
    let addr = std::env::var(WORKER_ENV)?;
    let attempt = env_u64(ATTEMPT_ENV)? as u32;
    let start_epoch = env_u64(EPOCH_ENV)?;
    let beat = Duration::from_millis(env_u64(HEARTBEAT_ENV).unwrap_or(1000).max(10));
    let job_id = std::env::var(JOB_ID_ENV)
        .map_err(|_| crate::anyhow!("worker environment variable {JOB_ID_ENV} is missing"))?;
    let savepoints: Vec<crate::storage::Location> = match std::env::var(SAVEPOINTS_ENV) {
        Ok(v) => serde_json::from_str(&v).map_err(|e| {
            crate::anyhow!("worker environment variable {SAVEPOINTS_ENV} is invalid: {e}")
        })?,
        Err(_) => Vec::new(),
    };
    let process = env_u64(PROCESS_ENV).unwrap_or(0) as u32;
    let processes = env_u64(PROCESSES_ENV).unwrap_or(1).max(1) as u32;
    let threads = env_u64(THREADS_ENV).unwrap_or(plan.parallelism as u64) as u32;
    let host = std::env::var(HOST_ENV).unwrap_or_else(|_| "127.0.0.1".into());
    let bind = std::env::var(BIND_ENV).unwrap_or_else(|_| host.clone());
    let conf = worker_config()?.unwrap_or_default();
    let timeout = conf.get_or(keys::TASKMANAGER_NETWORK_TIMEOUT, Duration::from_secs(5))?;

    // The data listener exists before the hello names it.
    let data = if processes > 1 {
        let l = TcpListener::bind((bind.as_str(), 0))
            .map_err(|e| crate::anyhow!("cannot bind the data listener on {bind}: {e}"))?;
        Some(l)
    } else {
        None
    };
    let data_addr = match &data {
        Some(l) => {
            let port = l.local_addr()?.port();
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        None => String::new(),
    };
    let stream = TcpStream::connect(&addr)
        .map_err(|e| crate::anyhow!("cannot connect to the job manager at {addr}: {e}"))?;
    configure_socket(&stream, timeout)?;
    let writer = Arc::new(Mutex::new(BufWriter::new(stream.try_clone()?)));
    write_frame(
        &mut *writer.lock_ok(),
        &Hello {
            attempt,
            process,
            data: data_addr,
        },
    )?;
    let mut reader = BufReader::new(stream);
    let start: MeshStart = read_frame(&mut reader)
        .map_err(|e| crate::anyhow!("no peer list from the job manager: {e}"))?;
    let send_failed = |error: String| -> Result<()> {
        let failed = FromExecutor::Failed {
            attempt,
            task: format!("worker process {process}"),
            error,
            unrecoverable: None,
        }
        .bounded();
        write_frame(&mut *writer.lock_ok(), &failed)?;
        Ok(())
    };
    if threads * processes != plan.parallelism {
        let e = format!(
            "the attempt has {processes} processes × {threads} threads, the job's parallelism is {}",
            plan.parallelism
        );
        send_failed(e.clone())?;
        crate::bail!("{e}");
    }
    let _ = PEER_LOSS.set(PeerLoss {
        attempt,
        process,
        peers: start.peers.clone(),
        writer: Arc::clone(&writer),
        exit,
    });
    install_peer_loss_hook();

    // Heartbeats from now on, so a process stuck connecting to its peers is noticed too;
    // thread progress once the worker threads exist.
    let shared: Arc<OnceLock<Arc<super::attempt::Attempt>>> = Arc::new(OnceLock::new());
    {
        let writer = Arc::clone(&writer);
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || loop {
            let hb = FromExecutor::Heartbeat {
                attempt,
                progress: shared
                    .get()
                    .map(|a| a.control.progress())
                    .unwrap_or_default(),
            };
            if write_frame(&mut *writer.lock_ok(), &hb).is_err() {
                return;
            }
            std::thread::sleep(beat);
        });
    }
    // Connected first, so that a snapshot that cannot be read is the attempt's failure
    // cause at the job manager, not a line in this process's stderr.
    let restore = match std::env::var_os(RESTORE_ENV) {
        Some(p) => match crate::storage::Location::from_path(std::path::Path::new(&p))
            .and_then(load_snapshot)
        {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                send_failed(format!("cannot restore the attempt: {e:#}"))?;
                return Err(e);
            }
        },
        None => None,
    };
    let comm = match data {
        Some(listener) => {
            let id = MeshId::new(&job_id, attempt, start.nonce)?;
            let deadline = Instant::now() + (timeout * 6).max(Duration::from_secs(30));
            match connect_mesh(
                id,
                process as usize,
                &start.peers,
                listener,
                timeout,
                deadline,
            ) {
                Ok(sockets) => Comm::Cluster {
                    process: process as usize,
                    threads: threads as usize,
                    sockets,
                },
                Err(e) => {
                    send_failed(format!(
                        "cannot connect the attempt's worker processes: {e:#}"
                    ))?;
                    return Err(e);
                }
            }
        }
        None => Comm::Process,
    };
    let spec = AttemptSpec {
        job_id,
        attempt,
        restore,
        start_epoch,
        savepoints,
    };
    let (tx, rx) = crossbeam_channel::unbounded::<FromExecutor>();
    let exec = Arc::new(Mutex::new(Some(LocalExecutor::start_with(
        plan, spec, tx, comm,
    ))));
    let _ = shared.set(exec.lock_ok().as_ref().expect("started").attempt());

    // Commands from the job manager; a lost job manager ends the worker.
    {
        let exec = Arc::clone(&exec);
        std::thread::spawn(move || loop {
            match read_frame::<ToExecutor>(&mut reader) {
                Ok(cmd) => {
                    if let Some(e) = exec.lock_ok().as_ref() {
                        e.send(cmd);
                    }
                }
                Err(_) => {
                    // The job manager is gone: no one can use this attempt's results.
                    exit(2);
                }
            }
        });
    }
    // Events until the attempt ends.
    for ev in rx {
        let terminal = matches!(
            ev,
            FromExecutor::Finished { .. }
                | FromExecutor::Failed { .. }
                | FromExecutor::Cancelled { .. }
        );
        if terminal {
            // Print sinks write to stdout: flush before the job manager sees the end.
            let _ = std::io::stdout().flush();
        }
        let ev = ev.bounded();
        let mut w = writer.lock_ok();
        if let Err(e) = write_frame(&mut *w, &ev) {
            // The job manager must learn why, not see a lost worker.
            let failed = FromExecutor::Failed {
                attempt,
                task: "worker process".into(),
                error: format!("cannot send a control message to the job manager: {e}"),
                unrecoverable: None,
            };
            write_frame(&mut *w, &failed)?;
            break;
        }
        if terminal {
            break;
        }
    }
    if let Some(e) = exec.lock_ok().take() {
        e.shutdown();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::workers::Placement;
    use std::sync::atomic::AtomicU32;

    /// A launcher whose "worker processes" are threads of the test speaking the control
    /// protocol, so the job manager's side (placement retries, hellos, merging) runs for
    /// real over loopback sockets.
    #[derive(Default)]
    struct Threads {
        places: AtomicU32,
        releases: AtomicU32,
        /// Wait in `place` until cancelled.
        block: bool,
        /// `spawn` errors of the first placements, then success.
        unreachable_first: u32,
        /// Every spawn fails with this (after the unreachable ones).
        fail: Option<&'static str>,
        nonces: Mutex<Vec<u64>>,
    }

    struct ThreadWorker(Arc<AtomicBool>);

    impl WorkerHandle for ThreadWorker {
        fn pid(&self) -> u32 {
            1
        }
        fn kill(&self) {}
        fn exit_status(&self) -> Option<String> {
            self.0
                .load(Ordering::SeqCst)
                .then(|| "exit status: 0".to_string())
        }
    }

    impl WorkerLauncher for Arc<Threads> {
        fn control_bind(&self) -> String {
            "127.0.0.1".into()
        }
        fn place(
            &self,
            _attempt: u32,
            parallelism: u32,
            cancel: &AtomicBool,
        ) -> std::result::Result<Placement, PlacementError> {
            self.places.fetch_add(1, Ordering::SeqCst);
            if self.block {
                while !cancel.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Err(PlacementError::Cancelled);
            }
            super::super::workers::LocalLauncher::with_processes(2).place(0, parallelism, cancel)
        }
        fn spawn(
            &self,
            attempt: u32,
            slot: &ProcessSlot,
            command: &WorkerCommand,
        ) -> std::result::Result<Box<dyn WorkerHandle>, SpawnError> {
            if self.places.load(Ordering::SeqCst) <= self.unreachable_first {
                return Err(SpawnError::Unreachable {
                    task_manager: "tm-1".into(),
                    reason: "connection refused".into(),
                });
            }
            if let Some(e) = self.fail {
                return Err(SpawnError::Failed(crate::anyhow!("{e}")));
            }
            let env: BTreeMap<String, String> = command.env.iter().cloned().collect();
            let addr = env[WORKER_ENV].clone();
            let index = slot.index;
            let exited = Arc::new(AtomicBool::new(false));
            let done = Arc::clone(&exited);
            let me = Arc::clone(self);
            std::thread::spawn(move || {
                // A stale worker of another attempt is refused first.
                let mut stale = TcpStream::connect(&addr).unwrap();
                let hello = Hello {
                    attempt: attempt + 7,
                    process: index,
                    data: "stale".into(),
                };
                write_frame(&mut stale, &hello).unwrap();
                let s = TcpStream::connect(&addr).unwrap();
                let mut w = BufWriter::new(s.try_clone().unwrap());
                let hello = Hello {
                    attempt,
                    process: index,
                    data: format!("data-{index}"),
                };
                write_frame(&mut w, &hello).unwrap();
                let mut r = BufReader::new(s);
                let start: MeshStart = read_frame(&mut r).unwrap();
                assert_eq!(start.peers, vec!["data-0", "data-1"]);
                me.nonces.lock_ok().push(start.nonce);
                let task = TaskId {
                    uid: "counts".into(),
                    subtask: index,
                };
                for ev in [
                    FromExecutor::Running {
                        attempt,
                        tasks: vec![task],
                    },
                    FromExecutor::Finished { attempt },
                ] {
                    write_frame(&mut w, &ev).unwrap();
                }
                // Stale connections never got a peer list.
                let mut b = [0u8; 1];
                assert_eq!(std::io::Read::read(&mut stale, &mut b).unwrap_or(0), 0);
                done.store(true, Ordering::SeqCst);
            });
            Ok(Box::new(ThreadWorker(exited)))
        }
        fn release(&self, _attempt: u32) {
            self.releases.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn settings(l: &Arc<Threads>, slot_timeout: Duration) -> WorkerSettings {
        WorkerSettings {
            heartbeat: Heartbeat {
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(10),
            },
            launcher: Arc::new(Arc::clone(l)),
            config: Configuration::new(),
            network_timeout: Duration::from_secs(1),
            slot_request_timeout: slot_timeout,
        }
    }

    fn spec() -> AttemptSpec {
        AttemptSpec {
            job_id: "0123456789abcdef0123456789abcdef".into(),
            attempt: 3,
            restore: None,
            start_epoch: 1,
            savepoints: Vec::new(),
        }
    }

    fn next(rx: &crossbeam_channel::Receiver<FromExecutor>) -> FromExecutor {
        rx.recv_timeout(Duration::from_secs(20)).expect("an event")
    }

    #[test]
    fn the_job_managers_configuration_reaches_the_worker_whole() {
        let mut conf = Configuration::new();
        conf.set("execution.checkpointing.interval", "250 ms")
            .unwrap();
        conf.set("taskmanager.network.tcp-user-timeout", "2 s")
            .unwrap();
        conf.set("pipeline.name", "a \"quoted\" name").unwrap();
        let back = config_from_json(&config_to_json(&conf).unwrap()).unwrap();
        assert_eq!(back, conf);
        let err = config_from_json(r#"{"no.such.key": "1"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("worker environment variable FLOE_WORKER_CONFIG: "),
            "{err}"
        );
    }

    #[test]
    fn processes_say_hello_get_peers_and_one_nonce_and_their_events_are_merged() {
        let l = Arc::new(Threads {
            unreachable_first: 1,
            ..Default::default()
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let exec =
            ProcessExecutor::start(&spec(), 4, settings(&l, Duration::from_secs(30)), tx).unwrap();
        match next(&rx) {
            FromExecutor::Deployed { attempt, placement } => {
                assert_eq!(attempt, 3);
                assert_eq!(placement.processes.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        match next(&rx) {
            FromExecutor::Running { attempt, tasks } => {
                assert_eq!(attempt, 3);
                let subtasks: Vec<u32> = tasks.iter().map(|t| t.subtask).collect();
                assert_eq!(subtasks, vec![0, 1], "the union of both processes' tasks");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(next(&rx), FromExecutor::Finished { attempt: 3 }));
        Box::new(exec).shutdown();
        // The unreachable task manager: released and placed again.
        assert_eq!(l.places.load(Ordering::SeqCst), 2);
        assert!(l.releases.load(Ordering::SeqCst) >= 2);
        let nonces = l.nonces.lock_ok().clone();
        assert_eq!(nonces.len(), 2);
        assert_eq!(nonces[0], nonces[1], "one nonce for the whole attempt");
        assert!(rx.try_recv().is_err(), "Finished once, nothing after it");
    }

    #[test]
    fn a_cancel_while_waiting_for_slots_ends_at_once_without_a_failure() {
        let l = Arc::new(Threads {
            block: true,
            ..Default::default()
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let exec =
            ProcessExecutor::start(&spec(), 4, settings(&l, Duration::from_secs(30)), tx).unwrap();
        while l.places.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = Instant::now();
        Box::new(exec).shutdown();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(rx.try_recv().is_err(), "no failure for a cancel");
    }

    #[test]
    fn unreachable_task_managers_past_the_slot_request_timeout_and_spawn_errors_fail() {
        let l = Arc::new(Threads {
            unreachable_first: u32::MAX,
            ..Default::default()
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let exec = ProcessExecutor::start(&spec(), 4, settings(&l, Duration::ZERO), tx).unwrap();
        match next(&rx) {
            FromExecutor::Failed { error, .. } => assert!(
                error.starts_with(
                    "task manager tm-1 is unreachable: connection refused (gave up after"
                ),
                "{error}"
            ),
            other => panic!("{other:?}"),
        }
        Box::new(exec).shutdown();
        let l = Arc::new(Threads {
            fail: Some("no such binary"),
            ..Default::default()
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let exec =
            ProcessExecutor::start(&spec(), 4, settings(&l, Duration::from_secs(30)), tx).unwrap();
        match next(&rx) {
            FromExecutor::Failed { error, .. } => assert_eq!(error, "no such binary"),
            other => panic!("{other:?}"),
        }
        Box::new(exec).shutdown();
        assert_eq!(l.places.load(Ordering::SeqCst), 1, "not placed again");
    }
}
