//! Running an attempt in a worker process, so that no user code ever runs in the job
//! manager: a panic, `abort()`, stack overflow, OOM kill or `kill -9` of the worker is a
//! task failure the job manager survives and handles with the restart strategy.
//!
//! The job manager starts the job binary again (`current_exe()`, the same arguments) with
//! `FLOE_WORKER=<host:port>` and the attempt's parameters in the environment. The worker
//! builds the same job graph, connects back, runs the attempt on in-process worker threads
//! ([`LocalExecutor`]) and relays the [`ToExecutor`]/[`FromExecutor`] messages as
//! length-prefixed JSON frames over that loopback connection (control messages are small;
//! records never cross it). It sends a heartbeat with
//! every worker thread's loop counter; the job manager fails the attempt when heartbeats
//! stop (SIGSTOP, a hung process) or a thread's counter stops moving (a deadlock or an
//! endless loop in user code), and kills the process.

use super::executor::LocalExecutor;
use super::plan::Plan;
use super::protocol::{AttemptSpec, FromExecutor, TaskExecutor, ToExecutor};
use crate::checkpoint::metadata::load_snapshot;
use crate::sync::LockExt;
use crate::wire::{read_frame, write_frame};
use crate::Result;
use crossbeam_channel::Sender;
use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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

/// Heartbeat timing of worker processes.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    /// How often a worker reports.
    pub interval: Duration,
    /// How long without a report, or without progress of a worker thread, fails the attempt.
    pub timeout: Duration,
}

/// An attempt running in a worker process (job-manager side).
pub struct ProcessExecutor {
    attempt: u32,
    child: Arc<Mutex<Child>>,
    pid: u32,
    writer: Arc<Mutex<Option<BufWriter<TcpStream>>>>,
    done: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ProcessExecutor {
    /// Starts the attempt `spec` describes in a new worker process running this binary with
    /// its arguments. Events (and a `Failed` for a lost worker) go to `events`.
    pub fn start(
        spec: &AttemptSpec,
        heartbeat: Heartbeat,
        events: Sender<FromExecutor>,
    ) -> Result<Self> {
        let attempt = spec.attempt;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let exe = std::env::current_exe()
            .map_err(|e| crate::anyhow!("cannot find the job binary: {e}"))?;
        let mut cmd = Command::new(&exe);
        cmd.args(std::env::args_os().skip(1))
            .env(WORKER_ENV, addr.to_string())
            .env(ATTEMPT_ENV, attempt.to_string())
            .env(EPOCH_ENV, spec.start_epoch.to_string())
            .env(JOB_ID_ENV, &spec.job_id)
            .env(SAVEPOINTS_ENV, serde_json::to_string(&spec.savepoints)?)
            .env(HEARTBEAT_ENV, heartbeat.interval.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        match &spec.restore {
            Some(s) => cmd.env(RESTORE_ENV, s.dir.to_string()),
            None => cmd.env_remove(RESTORE_ENV),
        };
        let child = cmd
            .spawn()
            .map_err(|e| crate::anyhow!("cannot start worker process {}: {e}", exe.display()))?;
        let pid = child.id();
        tracing::info!("Started worker process {pid} for attempt #{attempt}.");
        let child = Arc::new(Mutex::new(child));
        // Wait for the worker to connect, or to die trying.
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(st) = child.lock_ok().try_wait()? {
                        crate::bail!("worker process {pid} exited before connecting ({st})");
                    }
                    if Instant::now() > deadline {
                        let _ = child.lock_ok().kill();
                        crate::bail!("worker process {pid} did not connect within 60 s");
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let writer = Arc::new(Mutex::new(Some(BufWriter::new(stream.try_clone()?))));
        let done = Arc::new(AtomicBool::new(false));
        let last_beat = Arc::new(Mutex::new((
            Instant::now(),
            Vec::<u64>::new(),
            Vec::<Instant>::new(),
        )));

        let mut threads = Vec::new();
        // Reader: relays events; a closed connection without a terminal event is a failure.
        {
            let (events, done, child, last_beat) = (
                events.clone(),
                Arc::clone(&done),
                Arc::clone(&child),
                Arc::clone(&last_beat),
            );
            threads.push(std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut terminal = false;
                // Why the connection ended when it did not just close.
                let mut broken: Option<std::io::Error> = None;
                loop {
                    match read_frame::<FromExecutor>(&mut r) {
                        Ok(FromExecutor::Heartbeat { progress, .. }) => {
                            let now = Instant::now();
                            let mut lb = last_beat.lock_ok();
                            if lb.2.len() != progress.len() {
                                lb.2 = vec![now; progress.len()];
                            } else {
                                for (i, p) in progress.iter().enumerate() {
                                    if lb.1.get(i) != Some(p) {
                                        lb.2[i] = now;
                                    }
                                }
                            }
                            lb.0 = now;
                            lb.1 = progress;
                        }
                        Ok(ev) => {
                            terminal |= matches!(
                                ev,
                                FromExecutor::Finished { .. }
                                    | FromExecutor::Failed { .. }
                                    | FromExecutor::Cancelled { .. }
                            );
                            if events.send(ev).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                                broken = Some(e);
                            }
                            break;
                        }
                    }
                }
                if !terminal && !done.load(Ordering::SeqCst) {
                    let error = match broken {
                        Some(e) => format!("bad control message from worker process {pid}: {e}"),
                        None => {
                            let status = wait_exit(&child, Duration::from_secs(2));
                            format!("worker process {pid} was lost ({status})")
                        }
                    };
                    let _ = events.send(FromExecutor::Failed {
                        attempt,
                        task: format!("worker process {pid}"),
                        error: crate::runtime::protocol::bounded_message(error),
                        unrecoverable: None,
                    });
                }
            }));
        }
        // Watchdog: no heartbeat, or a worker thread without progress, fails the attempt.
        {
            let (events, done, child) = (events, Arc::clone(&done), Arc::clone(&child));
            threads.push(std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    let (last, stalled) = {
                        let lb = last_beat.lock_ok();
                        let stalled = lb.2.iter().position(|t| t.elapsed() > heartbeat.timeout);
                        (lb.0, stalled)
                    };
                    let reason = if last.elapsed() > heartbeat.timeout {
                        Some(format!("no heartbeat from worker process {pid} for {} ms", heartbeat.timeout.as_millis()))
                    } else {
                        stalled.map(|i| {
                            format!(
                                "worker thread {i} of process {pid} made no progress for {} ms (stuck in user code?)",
                                heartbeat.timeout.as_millis()
                            )
                        })
                    };
                    if let Some(error) = reason {
                        if done.swap(true, Ordering::SeqCst) {
                            return;
                        }
                        let _ = child.lock_ok().kill();
                        let _ = events.send(FromExecutor::Failed { attempt, task: format!("worker process {pid}"), error, unrecoverable: None });
                        return;
                    }
                }
            }));
        }
        Ok(ProcessExecutor {
            attempt,
            child,
            pid,
            writer,
            done,
            threads,
        })
    }
}

fn wait_exit(child: &Arc<Mutex<Child>>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(st)) = child.lock_ok().try_wait() {
            return describe(st);
        }
        if Instant::now() > deadline {
            return "still running".into();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn describe(st: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = st.signal() {
            return format!("killed by signal {sig}");
        }
    }
    st.to_string()
}

impl TaskExecutor for ProcessExecutor {
    fn send(&self, cmd: ToExecutor) {
        let mut w = self.writer.lock_ok();
        if let Some(s) = w.as_mut() {
            if write_frame(s, &cmd).is_err() {
                *w = None; // the reader thread reports the lost worker
            }
        }
    }

    fn shutdown(mut self: Box<Self>) {
        self.done.store(true, Ordering::SeqCst);
        self.send(ToExecutor::Cancel);
        // A worker that does not stop within a few seconds (stopped, hung) is killed.
        if wait_exit(&self.child, Duration::from_secs(5)) == "still running" {
            tracing::warn!(
                "Killing worker process {} of attempt #{}.",
                self.pid,
                self.attempt
            );
            let _ = self.child.lock_ok().kill();
        }
        let _ = self.child.lock_ok().wait();
        self.writer.lock_ok().take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// True when this process was started as a worker by a job manager.
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
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
    let stream = TcpStream::connect(&addr)
        .map_err(|e| crate::anyhow!("cannot connect to the job manager at {addr}: {e}"))?;
    stream.set_nodelay(true)?;
    let writer = Arc::new(Mutex::new(BufWriter::new(stream.try_clone()?)));
    // Connected first, so that a snapshot that cannot be read is the attempt's failure
    // cause at the job manager, not a line in this process's stderr.
    let restore = match std::env::var_os(RESTORE_ENV) {
        Some(p) => match crate::storage::Location::from_path(std::path::Path::new(&p))
            .and_then(load_snapshot)
        {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                let failed = FromExecutor::Failed {
                    attempt,
                    task: "worker process".into(),
                    error: format!("cannot restore the attempt: {e:#}"),
                    unrecoverable: None,
                }
                .bounded();
                write_frame(&mut *writer.lock_ok(), &failed)?;
                return Err(e);
            }
        },
        None => None,
    };
    let spec = AttemptSpec {
        job_id,
        attempt,
        restore,
        start_epoch,
        savepoints,
    };
    let (tx, rx) = crossbeam_channel::unbounded::<FromExecutor>();
    let exec = Arc::new(Mutex::new(Some(LocalExecutor::start(plan, spec, tx))));
    let shared = exec.lock_ok().as_ref().expect("started").attempt();

    // Commands from the job manager; a lost job manager ends the worker.
    {
        let exec = Arc::clone(&exec);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            loop {
                match read_frame::<ToExecutor>(&mut r) {
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
            }
        });
    }
    // Heartbeats with every worker thread's progress.
    {
        let writer = Arc::clone(&writer);
        std::thread::spawn(move || loop {
            let hb = FromExecutor::Heartbeat {
                attempt,
                progress: shared.control.progress(),
            };
            if write_frame(&mut *writer.lock_ok(), &hb).is_err() {
                return;
            }
            std::thread::sleep(beat);
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
