//! `floe taskmanager start|stop`: the task manager daemon of one host (Flink's task
//! executor).
//!
//! It offers `taskmanager.numberOfTaskSlots` slots to the job manager at
//! `jobmanager.rpc.address:jobmanager.rpc.port`: it registers there and heartbeats, and when
//! the job manager is gone it reconnects every second, forever, registering again with the
//! workers it still runs. Per-job job managers connect to its RPC endpoint
//! (`taskmanager.rpc.port`, 0 = any free port, advertised at registration) and ask it to
//! start worker processes of their job binary, which it fetches from the job manager's blob
//! server by sha256 into its blob cache. Each worker runs in a process group of its own;
//! when the job manager that asked for it disconnects, or asks so, the group is killed.
//!
//! Its directory (`--dir`) holds `taskmanager.pid`, `taskmanager.lock` (held while it runs),
//! `taskmanager.json` (its id and addresses), `taskmanager.log`, `blobs/` and the workers'
//! output under `workers/`.

use anyhow::{anyhow, bail, Context as _, Result};
use floe::cluster::protocol::*;
use floe::config::{keys, Configuration};
use floe::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a running task manager writes to `taskmanager.json` once it listens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TaskManagerFile {
    /// Its process.
    pub pid: u32,
    /// Its id.
    pub id: String,
    /// Its RPC endpoint.
    pub rpc: String,
    /// The job manager it registers with.
    pub jobmanager: String,
    /// Its slots.
    pub slots: u32,
    /// Its blob cache.
    pub blob_dir: PathBuf,
}

/// The default task manager directory: `$FLOE_TASKMANAGER_DIR`, else `<tmp>/floe-taskmanager`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("FLOE_TASKMANAGER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("floe-taskmanager"))
}

fn configuration(dynamic: &[String]) -> Result<Configuration> {
    let mut conf = floe::config::file::load_from_env()?;
    for d in dynamic {
        conf.set_dynamic(d)?;
    }
    Ok(conf)
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("taskmanager.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the directory's lock is held (a task manager runs there).
fn locked(dir: &Path) -> bool {
    match try_lock(dir) {
        Ok(Some(_)) => false,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The directory's lock, or `None` when another process holds it.
fn try_lock(dir: &Path) -> Result<Option<std::fs::File>> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("taskmanager.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on an open file descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(None);
    }
    Ok(Some(f))
}

/// `floe taskmanager start`: starts the daemon in the background and waits until it listens.
pub fn start(dir: &Path, dynamic: &[String]) -> Result<()> {
    // Bad settings fail here, where the user sees them.
    configuration(dynamic)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create task manager directory {}", dir.display()))?;
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    if locked(dir) {
        bail!(
            "a task manager is already running in {} (pid {})",
            dir.display(),
            read_pid(dir).map(|p| p.to_string()).unwrap_or("?".into())
        );
    }
    let log_path = dir.join("taskmanager.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let _ = std::fs::remove_file(dir.join("taskmanager.json"));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["taskmanager", "daemon", "--dir"]).arg(dir);
    for d in dynamic {
        cmd.arg("-D").arg(d);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // A session of its own: the daemon outlives the terminal (or cluster) that started it.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .context("cannot start the task manager daemon")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let file = loop {
        if let Ok(f) = read_file(dir) {
            if f.pid == child.id() {
                break f;
            }
        }
        if let Some(st) = child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            bail!(
                "the task manager daemon exited ({st}){why}; see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the task manager daemon did not start within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::write(dir.join("taskmanager.pid"), child.id().to_string())?;
    println!(
        "Task manager {} started: {} slot(s), RPC endpoint {}, registering at {}, directory {}",
        file.id,
        file.slots,
        file.rpc,
        file.jobmanager,
        dir.display()
    );
    Ok(())
}

/// The task manager running in `dir`, if one does.
pub(crate) fn running(dir: &Path) -> Option<TaskManagerFile> {
    if locked(dir) {
        read_file(dir).ok()
    } else {
        None
    }
}

/// The running task manager's `taskmanager.json`.
pub(crate) fn read_file(dir: &Path) -> Result<TaskManagerFile> {
    let path = dir.join("taskmanager.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))
}

/// `floe taskmanager stop`: SIGTERM to the daemon of `dir` (it kills its workers), then
/// waits until it is gone.
pub fn stop(dir: &Path) -> Result<()> {
    let pid = match read_pid(dir) {
        Some(pid) if locked(dir) => pid,
        _ => bail!("no task manager is running in {}", dir.display()),
    };
    // SAFETY: a signal to the pid the daemon's start recorded, while it holds its lock.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while locked(dir) {
        if Instant::now() > deadline {
            bail!(
                "the task manager in {} (pid {pid}) did not stop within 15 s",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(dir.join("taskmanager.pid"));
    println!("Task manager in {} (pid {pid}) stopped.", dir.display());
    Ok(())
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// A worker process this task manager started.
#[derive(Clone, Debug)]
struct Worker {
    info: RunningWorker,
    /// The job manager connection that asked for it.
    connection: u64,
}

struct TaskManager {
    dir: PathBuf,
    id: TaskManagerId,
    host: String,
    bind_host: String,
    rpc: String,
    slots: u32,
    jobmanager: String,
    token: Option<String>,
    blob_dir: PathBuf,
    network_timeout: Duration,
    heartbeat_timeout: Duration,
    workers: Mutex<Vec<Worker>>,
    next_connection: Mutex<u64>,
}

fn kill_group(pid: u32) {
    // SAFETY: a signal to the process group the worker leads (its pgid is its pid).
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn hardware() -> Hardware {
    Hardware {
        cpu_cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        physical_memory: meminfo("MemTotal:"),
        free_memory: meminfo("MemAvailable:"),
    }
}

/// The local address this host reaches `target` from (no packet is sent).
fn local_address_towards(target: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let addr = target.to_socket_addrs().ok()?.next()?;
    let any = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(addr).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// `floe taskmanager daemon`: runs until SIGTERM.
pub fn daemon(dir: PathBuf, dynamic: &[String]) -> Result<()> {
    let conf = configuration(dynamic)?;
    std::fs::create_dir_all(&dir)?;
    let _lock = try_lock(&dir)?
        .ok_or_else(|| anyhow!("a task manager is already running in {}", dir.display()))?;
    let jm_host = conf
        .get(keys::JOBMANAGER_RPC_ADDRESS)?
        .unwrap_or_else(|| "localhost".into());
    let jm_port = conf.get_or(keys::JOBMANAGER_RPC_PORT, 6123)?;
    let jobmanager = floe::cluster::join_host_port(&jm_host, jm_port);
    let host = match conf.get(keys::TASKMANAGER_HOST)? {
        Some(h) => h,
        None => local_address_towards(&jobmanager)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
    };
    let bind_host = conf
        .get(keys::TASKMANAGER_BIND_HOST)?
        .unwrap_or(host.clone());
    let token = conf.get(keys::REST_AUTH_TOKEN)?.filter(|t| !t.is_empty());
    let port = conf.get_or(keys::TASKMANAGER_RPC_PORT, 0)?;
    let listener = TcpListener::bind(floe::cluster::join_host_port(&bind_host, port))
        .with_context(|| {
            format!("cannot bind the task manager's RPC endpoint {bind_host}:{port}")
        })?;
    let local = listener.local_addr()?;
    // It starts processes on request: never open to the network without a token.
    if !local.ip().is_loopback() && token.is_none() {
        bail!("refusing to serve the task manager's RPC endpoint on {local}: it is not a loopback address and rest.auth.token is not set");
    }
    let rpc = floe::cluster::join_host_port(&host, u32::from(local.port()));
    let id = match conf.get(keys::TASKMANAGER_RESOURCE_ID)? {
        Some(id) => id,
        None => format!("{rpc}-{:06x}", rand::random::<u32>() & 0xff_ffff),
    };
    let slots = conf.get_or(keys::TASKMANAGER_NUM_TASK_SLOTS, 1)?;
    if slots == 0 {
        bail!("taskmanager.numberOfTaskSlots must be at least 1");
    }
    let blob_dir = match conf.get(keys::BLOB_STORAGE_DIRECTORY)? {
        Some(d) => PathBuf::from(d),
        None => dir.join("blobs"),
    };
    let tm = Arc::new(TaskManager {
        dir: dir.clone(),
        id: TaskManagerId(id.clone()),
        host,
        bind_host,
        rpc: rpc.clone(),
        slots,
        jobmanager: jobmanager.clone(),
        token,
        blob_dir: blob_dir.clone(),
        network_timeout: conf.get_or(keys::TASKMANAGER_NETWORK_TIMEOUT, Duration::from_secs(5))?,
        heartbeat_timeout: conf.get_or(keys::HEARTBEAT_TIMEOUT, Duration::from_secs(10))?,
        workers: Mutex::new(Vec::new()),
        next_connection: Mutex::new(0),
    });
    // SAFETY: sets signal dispositions before the daemon starts its threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(
            libc::SIGTERM,
            on_terminate as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_terminate as *const () as libc::sighandler_t,
        );
    }
    eprintln!(
        "Starting task manager {id} with {slots} task slot(s); RPC endpoint {rpc} (bound to {local}), blob cache {}.",
        blob_dir.display()
    );
    {
        let tm = Arc::clone(&tm);
        std::thread::Builder::new()
            .name("floe-tm-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let tm = Arc::clone(&tm);
                    let _ = std::thread::Builder::new()
                        .name("floe-tm-jm".into())
                        .spawn(move || tm.job_manager_connection(conn));
                }
            })?;
    }
    {
        let tm = Arc::clone(&tm);
        std::thread::Builder::new()
            .name("floe-tm-register".into())
            .spawn(move || tm.register_forever())?;
    }
    let file = TaskManagerFile {
        pid: std::process::id(),
        id,
        rpc,
        jobmanager,
        slots,
        blob_dir,
    };
    let tmp = dir.join(".taskmanager.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(&tmp, dir.join("taskmanager.json"))?;
    while !TERMINATE.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        // Its directory removed (`rm -r`, a test's temporary directory): nothing could
        // find or stop it any more, so it stops itself.
        if !dir.join("taskmanager.lock").exists() {
            eprintln!(
                "The task manager directory {} is gone: stopping.",
                dir.display()
            );
            break;
        }
    }
    let workers = std::mem::take(&mut *tm.workers.lock_ok());
    for w in &workers {
        kill_group(w.info.pid);
    }
    eprintln!(
        "Task manager {} stopped; killed {} worker process(es).",
        tm.id,
        workers.len()
    );
    let _ = std::fs::remove_file(dir.join("taskmanager.json"));
    Ok(())
}

impl TaskManager {
    fn running(&self) -> Vec<RunningWorker> {
        self.workers
            .lock_ok()
            .iter()
            .map(|w| w.info.clone())
            .collect()
    }

    /// Registers with the resource manager and heartbeats; on any failure, again 1 s
    /// later, forever. Each line of the log says what changed, not every retry.
    fn register_forever(&self) {
        let mut last_error = String::new();
        loop {
            let e = match self.session() {
                Ok(()) => anyhow!("the session ended"),
                Err(e) => e,
            };
            let e = format!("{e:#}");
            if e != last_error {
                eprintln!(
                    "Could not reach the resource manager at {}: {e}. Retrying every 1 s.",
                    self.jobmanager
                );
                last_error = e;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// One registration and its heartbeats, until the connection fails.
    fn session(&self) -> Result<()> {
        let mut conn = floe::cluster::connect(&self.jobmanager, self.network_timeout)?;
        floe::wire::write_frame(
            &mut conn,
            &RpcHello::TaskManager {
                token: self.token.clone(),
                registration: Registration {
                    id: self.id.clone(),
                    host: self.host.clone(),
                    bind_host: self.bind_host.clone(),
                    rpc: self.rpc.clone(),
                    slots: self.slots,
                    running: self.running(),
                    hardware: hardware(),
                    dir: std::path::absolute(&self.dir).ok(),
                },
            },
        )?;
        conn.set_read_timeout(Some(self.heartbeat_timeout.max(Duration::from_secs(1))))?;
        let interval = match floe::wire::read_frame::<RegistrationReply>(&mut conn)? {
            RegistrationReply::Registered {
                heartbeat_interval_ms,
            } => Duration::from_millis(heartbeat_interval_ms.max(10)),
            RegistrationReply::Refused { reason } => {
                bail!("it refused the registration: {reason}")
            }
        };
        eprintln!(
            "Successful registration at resource manager {} under task manager id {} ({} slot(s), {} running worker(s)).",
            self.jobmanager,
            self.id,
            self.slots,
            self.running().len()
        );
        loop {
            std::thread::sleep(interval);
            floe::wire::write_frame(
                &mut conn,
                &TaskManagerReport::Heartbeat {
                    running: self.running(),
                },
            )
            .context("the connection was lost")?;
            let ResourceManagerReply::HeartbeatAck = floe::wire::read_frame(&mut conn)
                .context("the connection was lost (no heartbeat answer)")?;
        }
    }

    /// Serves one per-job job manager: starts and kills its workers; kills them all when
    /// it disconnects.
    fn job_manager_connection(self: Arc<Self>, conn: TcpStream) {
        let (Ok(local), Ok(peer)) = (conn.local_addr(), conn.peer_addr()) else {
            return;
        };
        let _ = floe::wire::configure_socket(&conn, self.network_timeout);
        let connection = {
            let mut n = self.next_connection.lock_ok();
            *n += 1;
            *n
        };
        let Ok(mut reader) = conn.try_clone() else {
            return;
        };
        let writer = Arc::new(Mutex::new(conn));
        let why = loop {
            match floe::wire::read_frame::<ToTaskManager>(&mut reader) {
                Ok(ToTaskManager::StartWorker(req)) => {
                    let index = req.index;
                    let reply = match self.start_worker(&req, connection, local, peer, &writer) {
                        Ok(pid) => FromTaskManager::Started { index, pid },
                        Err(reason) => {
                            eprintln!(
                                "Could not start worker process {index} of attempt {} of job {}: {reason}",
                                req.attempt, req.job
                            );
                            FromTaskManager::StartFailed { index, reason }
                        }
                    };
                    if let Err(e) = floe::wire::write_frame(&mut *writer.lock_ok(), &reply) {
                        break e;
                    }
                }
                Ok(ToTaskManager::KillAttempt { attempt }) => {
                    let killed: Vec<u32> = self
                        .workers
                        .lock_ok()
                        .iter()
                        .filter(|w| w.connection == connection && w.info.attempt == attempt)
                        .map(|w| w.info.pid)
                        .collect();
                    for &pid in &killed {
                        kill_group(pid);
                    }
                    eprintln!(
                        "Killing attempt {attempt} on request of the job manager at {peer}: {} worker process(es).",
                        killed.len()
                    );
                }
                Err(e) => break e,
            }
        };
        let orphans: Vec<Worker> = self
            .workers
            .lock_ok()
            .iter()
            .filter(|w| w.connection == connection)
            .cloned()
            .collect();
        if !orphans.is_empty() {
            eprintln!(
                "The job manager at {peer} disconnected ({why}): killing its {} worker process(es).",
                orphans.len()
            );
        }
        for w in orphans {
            kill_group(w.info.pid);
        }
    }

    fn start_worker(
        self: &Arc<Self>,
        req: &StartWorker,
        connection: u64,
        local: SocketAddr,
        peer: SocketAddr,
        writer: &Arc<Mutex<TcpStream>>,
    ) -> std::result::Result<u32, StartFailure> {
        if !token_ok(self.token.as_deref(), req.token.as_deref(), local, peer) {
            return Err(StartFailure::Refused(RefusalReason::BadToken));
        }
        eprintln!(
            "Received task: worker process {} of attempt {} of job {} ({} slot(s)), job binary {}.",
            req.index, req.attempt, req.job, req.slots, req.blob
        );
        let binary = floe::cluster::blob::fetch(
            &self.jobmanager,
            &req.blob,
            self.token.as_deref(),
            &self.blob_dir,
            self.network_timeout,
        )
        .map_err(|e| StartFailure::Blob(format!("{e:#}")))?;
        let logs = self.dir.join("workers").join(req.job.to_string());
        std::fs::create_dir_all(&logs).map_err(|e| StartFailure::Spawn(e.to_string()))?;
        let name = format!("attempt-{}-process-{}", req.attempt, req.index);
        let open = |ext: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join(format!("{name}.{ext}")))
                .map_err(|e| StartFailure::Spawn(e.to_string()))
        };
        let mut cmd = Command::new(&binary);
        cmd.args(&req.args)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(open("out")?)
            .stderr(open("log")?);
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: one signal kills it with everything it started.
            cmd.process_group(0);
            // A worker dies with the thread that serves its job manager's connection, i.e.
            // when this task manager dies (`kill -9`) or that connection ends (which kills
            // the job's workers anyway): no worker outlives its task manager waiting for its
            // job manager to notice.
            #[cfg(target_os = "linux")]
            {
                let parent = std::process::id() as libc::pid_t;
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        // The task manager died before the call: do not run orphaned.
                        if libc::getppid() != parent {
                            return Err(std::io::Error::other("the task manager is gone"));
                        }
                        Ok(())
                    });
                }
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| StartFailure::Spawn(format!("{}: {e}", binary.display())))?;
        let pid = child.id();
        eprintln!(
            "Started worker process {} of attempt {} of job {} as pid {pid}; its output goes to {}.out and .log.",
            req.index,
            req.attempt,
            req.job,
            logs.join(&name).display()
        );
        self.workers.lock_ok().push(Worker {
            info: RunningWorker {
                job: req.job,
                attempt: req.attempt,
                index: req.index,
                slots: req.slots,
                pid,
            },
            connection,
        });
        let tm = Arc::clone(self);
        let writer = Arc::clone(writer);
        let (job, attempt, index) = (req.job, req.attempt, req.index);
        let _ = std::thread::Builder::new()
            .name(format!("floe-worker-{pid}"))
            .spawn(move || {
                let status = match child.wait() {
                    Ok(st) => describe_exit(st),
                    Err(e) => format!("unknown ({e})"),
                };
                tm.workers.lock_ok().retain(|w| w.info.pid != pid);
                eprintln!(
                    "Worker process {index} of attempt {attempt} of job {job} (pid {pid}) ended: {status}."
                );
                let mut w = writer.lock_ok();
                let _ = floe::wire::write_frame(&mut *w, &FromTaskManager::Exited { pid, status });
                let _ = w.flush();
            });
        Ok(pid)
    }
}
