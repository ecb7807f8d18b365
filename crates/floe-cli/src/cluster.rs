//! The session cluster: a long-running job manager daemon with a REST endpoint that jobs are
//! submitted to (`floe cluster start|stop|status`, `floe run` when a cluster answers).
//!
//! Each submitted job binary runs as its own per-job job manager process (which runs the
//! job's user code in worker processes) with a REST endpoint on a free loopback port. The
//! daemon chooses the job id (passed on in [`floe::jobmanager::JOB_ID_ENV`]), names the job's
//! stdout, log and status file `<dir>/jobs/<jobid>.out|.log|.status.json` after it, learns
//! the job's endpoint, name and state from the status file the job manager writes
//! ([`floe::jobmanager::announce`]; no log line is read), answers `/overview`, `/jobs`,
//! `/jobs/overview` and `/savepoint-disposal` itself, and forwards `/jobs/:jobid/...` to the
//! job's own endpoint.
//!
//! The registry of jobs lives on disk, one [`JobRecord`] per job in `<dir>/jobs/<jobid>.json`,
//! so a daemon that was killed and started again takes back the jobs that still run (same
//! pid and process start time) and knows how the others ended. An ended job's record keeps
//! its final REST answers (details, exceptions, checkpoints), so it can be inspected as in
//! Flink, after a daemon restart too. A job manager process that ends without announcing a
//! terminal state was lost (`kill -9`, OOM kill): its job is recorded FAILED with that cause
//! and its last announced details.
//!
//! The daemon is also the cluster's resource manager and blob server
//! ([`floe::cluster::resource_manager`]): an RPC endpoint bound to `jobmanager.bind-host`
//! (else `jobmanager.rpc.address`) on `jobmanager.rpc.port` (default 6123; 0 takes a free
//! port), reached at `jobmanager.rpc.address` and the port actually bound — written to
//! `<dir>/jobmanager.rpc` and shown by `/floe/cluster` (`rpc`), so port 0 works for a
//! daemon's own task managers and for tests. Task managers register there; each submitted
//! binary is stored in `<dir>/blobs/<sha256>` and its job manager gets
//! `FLOE_CLUSTER_RPC` and `FLOE_JOB_BLOB`, so it can ask for slots and have task managers
//! fetch the binary. `floe cluster start` starts `--taskmanagers N` (default 1) task
//! managers on this host in `<dir>/taskmanager-<i>` (Flink's `start-cluster.sh`), and
//! `floe cluster stop` stops them. A task manager on another host is started with `floe
//! taskmanager start -D jobmanager.rpc.address=<this host>` and a fixed RPC port.

use anyhow::{anyhow, bail, Context as _, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use floe::cluster::resource_manager::ResourceManager;
use floe::config::keys;
use floe::jobmanager::announce::{JobAnnouncement, JobSnapshot, STATUS_FILE_ENV};
use floe::jobmanager::rest::model::{
    ClusterOverview, Empty, ExceptionEntry, JobExceptions, JobIdWithStatus, JobIdsWithStatus,
    JobOverview, JobsOverview, TaskCounts,
};
use floe::jobmanager::rest::taskmanagers::{
    TaskManagerDetailsInfo, TaskManagerInfo, TaskManagersInfo,
};
use floe::jobmanager::rest::{error, with_flink_fallbacks, Disposals};
use floe::sync::LockExt;
use floe::JobStatus;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floe::JobId;

/// `s` as a job id, only in its canonical form (32 lowercase hex): a job id names the job's
/// files, so only a canonical one ever becomes part of a path.
fn parse_id(s: &str) -> Option<JobId> {
    s.parse::<JobId>().ok().filter(|id| id.to_string() == s)
}

/// A job status a job does not leave again.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum TerminalState {
    Finished,
    Canceled,
    Failed,
}

impl TerminalState {
    fn status(self) -> JobStatus {
        match self {
            TerminalState::Finished => JobStatus::Finished,
            TerminalState::Canceled => JobStatus::Canceled,
            TerminalState::Failed => JobStatus::Failed,
        }
    }

    fn of(s: JobStatus) -> Option<TerminalState> {
        match s {
            JobStatus::Finished => Some(TerminalState::Finished),
            JobStatus::Canceled => Some(TerminalState::Canceled),
            JobStatus::Failed => Some(TerminalState::Failed),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        self.status().as_str()
    }
}

/// How a job ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct JobEnd {
    state: TerminalState,
    /// Why it failed when its job manager could not tell (it was lost).
    cause: Option<String>,
    /// When the cluster saw the job end, ms since the epoch.
    time: u64,
}

/// A job in the cluster's registry, `<dir>/jobs/<jobid>.json`: enough to find its job
/// manager process again after a daemon restart, and to answer for the job once it ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct JobRecord {
    id: JobId,
    /// The job manager process.
    pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22, clock ticks since boot), so a
    /// pid reused by another process is not taken for the job.
    start_time: u64,
    /// The job's own REST endpoint, once it listens.
    rest: Option<String>,
    /// The job's stdout.
    out: PathBuf,
    /// The job manager's log (its stderr).
    log: PathBuf,
    /// When the job was submitted, ms since the epoch.
    submitted: u64,
    /// The job's name, once its job manager said it.
    name: Option<String>,
    /// How it ended; `None` while it runs.
    end: Option<JobEnd>,
    /// The status file its job manager writes (`None` in records of daemons before it).
    #[serde(default)]
    status_file: Option<PathBuf>,
    /// Once it ended: its final REST answers, which the daemon serves from then on.
    #[serde(default)]
    last: Option<Box<JobSnapshot>>,
}

/// `POST /floe/jobs`: run a job binary on the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SubmitRequest {
    /// The job binary, an absolute path.
    pub binary: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Snapshot to start from (`-s`), an absolute path.
    #[serde(default)]
    pub savepoint: Option<PathBuf>,
    /// `-n`.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// `-p`.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// `-D` settings.
    #[serde(default)]
    pub dynamic: Vec<String>,
}

/// The answer of `POST /floe/jobs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Submitted {
    /// The job's id.
    pub jobid: String,
}

/// `GET /floe/jobs/:jobid/logs`: where a job's output and log are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JobFiles {
    /// Its stdout.
    pub out: PathBuf,
    /// Its job manager's log.
    pub log: PathBuf,
    /// The stdout of its worker processes on task managers whose directories this host
    /// can read (`<tm dir>/workers/<job>/attempt-<a>-process-<i>.out`), in attempt order.
    #[serde(default)]
    pub workers: Vec<PathBuf>,
}

/// The `.out` files of job `id`'s worker processes under the task manager directories
/// `dirs`, by attempt and process.
fn worker_outputs(dirs: &[PathBuf], id: &str) -> Vec<PathBuf> {
    let mut files: Vec<((u32, u32), PathBuf)> = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d.join("workers").join(id)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".out") else {
                continue;
            };
            // attempt-<a>-process-<i>
            let mut parts = stem.split('-');
            let order = match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("attempt"), Some(a), Some("process"), Some(i)) => {
                    (a.parse().unwrap_or(u32::MAX), i.parse().unwrap_or(u32::MAX))
                }
                _ => continue,
            };
            files.push((order, e.path()));
        }
    }
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// `GET /floe/cluster`: this is a Floe session cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClusterInfo {
    #[serde(rename = "floe-cluster")]
    floe_cluster: bool,
    /// The cluster directory.
    pub dir: PathBuf,
    /// Its RPC endpoint as task managers reach it (`None` from a daemon before it had one).
    #[serde(default)]
    pub rpc: Option<String>,
}

/// A job the daemon keeps track of.
struct Tracked {
    record: JobRecord,
    /// The job manager process when this daemon started it (and reaps it); `None` for a job
    /// taken back after a restart, which is not our child and is watched by pid.
    child: Option<Child>,
}

/// Whether a job manager process still runs.
enum Process {
    Running,
    /// It ended, with this status when it was our child.
    Ended(Option<ExitStatus>),
}

struct Cluster {
    dir: PathBuf,
    /// In submission order.
    jobs: Mutex<Vec<Tracked>>,
    /// The resource manager and blob server behind the RPC endpoint.
    rm: Arc<ResourceManager>,
    /// The RPC endpoint as task managers and job managers reach it.
    rpc: String,
    /// Directories of the task managers this daemon started on its host.
    local_task_managers: Mutex<Vec<PathBuf>>,
}

type Shared = Arc<Cluster>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// State and start time of process `pid` (`/proc/<pid>/stat` fields 3 and 22).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// True while `pid` is the process that started at `start_time` and has not ended (a
/// zombie has ended: an adopted job manager's new parent may never reap it).
fn same_process(pid: u32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((state, start)) if start == start_time && !matches!(state, 'Z' | 'X'))
}

impl Tracked {
    fn process(&mut self) -> Process {
        if let Some(child) = &mut self.child {
            if let Ok(status) = child.try_wait() {
                return match status {
                    None => Process::Running,
                    Some(st) => Process::Ended(Some(st)),
                };
            }
        }
        if same_process(self.record.pid, self.record.start_time) {
            Process::Running
        } else {
            Process::Ended(None)
        }
    }

    /// Sees whether the job manager ended and, if so, records how the job ended.
    fn refresh(&mut self, c: &Cluster) {
        if self.record.end.is_some() {
            return;
        }
        match self.process() {
            Process::Ended(status) => {
                self.record.end_with(status);
                if let Err(e) = c.save(&self.record) {
                    eprintln!("warning: {e:#}");
                }
            }
            // A job taken back while its job manager was still starting: its endpoint
            // shows up in its status file.
            Process::Running if self.record.rest.is_none() => {
                if self.record.take_endpoint() {
                    if let Err(e) = c.save(&self.record) {
                        eprintln!("warning: {e:#}");
                    }
                }
            }
            Process::Running => {}
        }
    }

    /// Asks the job manager to cancel the job (SIGTERM: it cancels, applying retention).
    fn terminate(&mut self) {
        if let Process::Running = self.process() {
            unsafe {
                libc::kill(self.record.pid as i32, libc::SIGTERM);
            }
        }
    }

    fn ended(&self) -> Option<&JobEnd> {
        self.record.end.as_ref()
    }
}

impl JobRecord {
    /// What its job manager announced last, if anything.
    fn announcement(&self) -> Option<JobAnnouncement> {
        let path = self.status_file.as_ref()?;
        match JobAnnouncement::read(path) {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "warning: cannot read job status file {}: {e}",
                    path.display()
                );
                None
            }
        }
    }

    /// Takes the job's endpoint and name from its status file; true when it has an endpoint.
    fn take_endpoint(&mut self) -> bool {
        match self.announcement() {
            Some(a) if a.rest.is_some() => {
                self.rest = a.rest;
                self.name = Some(a.name);
                true
            }
            _ => false,
        }
    }

    /// Records that its job manager process ended (with `status` when it was our child):
    /// how the job ended and its final details.
    fn end_with(&mut self, status: Option<ExitStatus>) {
        let announced = self.announcement();
        let end = job_end(self, announced.as_ref().map(|a| a.status), status);
        self.last = Some(Box::new(final_snapshot(
            self,
            announced.map(|a| a.snapshot),
            &end,
        )));
        self.end = Some(end);
    }

    /// Its final REST answers (a record of a daemon before they were kept has none).
    fn final_details(&self, end: &JobEnd) -> JobSnapshot {
        self.last
            .as_deref()
            .cloned()
            .unwrap_or_else(|| final_snapshot(self, None, end))
    }
}

/// An ended job's REST answers: its job manager's last ones when it announced its terminal
/// state itself; else (its job manager was lost) the last ones it announced, or what the
/// record knows, with the end and its cause recorded as Flink reports a job: every task in
/// the final state, `end-time` set, the cause first in the exception history.
fn final_snapshot(r: &JobRecord, last: Option<JobSnapshot>, end: &JobEnd) -> JobSnapshot {
    let state = end.state.status();
    if let Some(s) = last.as_ref().filter(|s| s.overview.state == state) {
        return s.clone();
    }
    let mut s = last.unwrap_or_else(|| {
        let info = floe::jobmanager::info::JobInfo::new(
            &r.id.to_string(),
            r.name.as_deref().unwrap_or_default(),
            0,
            Default::default(),
            r.submitted,
        );
        JobSnapshot::of(&info, end.time)
    });
    let end_time = end.time as i64;
    let o = &mut s.overview;
    o.state = state;
    o.end_time = end_time;
    o.duration = end_time.saturating_sub(o.start_time).max(0);
    o.last_modification = end_time;
    o.tasks = TaskCounts::all_in(state, o.tasks.total);
    let d = &mut s.details;
    d.state = state;
    d.end_time = end_time;
    d.duration = end_time.saturating_sub(d.start_time).max(0);
    d.now = end_time;
    d.timestamps.insert(state.as_str().to_string(), end.time);
    if let Some(cause) = &end.cause {
        let mut entries = std::mem::take(&mut s.exceptions.exception_history.entries);
        entries.insert(
            0,
            ExceptionEntry::new(
                "org.apache.flink.util.FlinkException",
                cause,
                end.time,
                None,
            ),
        );
        s.exceptions = JobExceptions::of(entries);
    }
    s
}

/// How the job of an ended job manager process ended: the state it announced last when
/// that is terminal, else FAILED because its job manager was lost.
fn job_end(r: &JobRecord, announced: Option<JobStatus>, status: Option<ExitStatus>) -> JobEnd {
    let logged = announced.and_then(TerminalState::of);
    let cause = match logged {
        Some(_) => None,
        None => {
            let how = match status {
                Some(st) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (st.code(), st.signal()) {
                        (Some(code), _) => format!("exited with code {code}"),
                        (None, Some(sig)) => {
                            format!("was killed by signal {sig}{}", signal_name(sig))
                        }
                        _ => format!("ended ({st})"),
                    }
                }
                None => "ended".to_string(),
            };
            Some(format!(
                "The job manager of job {} was lost: its process {} {how} before the job reached a terminal state; see {}",
                r.id,
                r.pid,
                r.log.display()
            ))
        }
    };
    JobEnd {
        state: logged.unwrap_or(TerminalState::Failed),
        cause,
        time: now_ms(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

impl Cluster {
    fn jobs_dir(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tracked>> {
        self.jobs.lock_ok()
    }

    /// Writes `r` to the registry atomically: a crash leaves the old record or the new one.
    fn save(&self, r: &JobRecord) -> Result<()> {
        let path = self.jobs_dir().join(format!("{}.json", r.id));
        let tmp = self.jobs_dir().join(format!(".{}.json.tmp", r.id));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(r)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().with_context(|| format!("cannot write job record {}", path.display()))
    }

    /// The registry at `dir`: every job recorded there, those whose job manager still runs
    /// taken back, those whose job manager ended while no daemon watched recorded as ended.
    fn load(dir: PathBuf, rm: Arc<ResourceManager>, rpc: String) -> Result<Cluster> {
        let c = Cluster {
            dir,
            jobs: Mutex::new(Vec::new()),
            rm,
            rpc,
            local_task_managers: Mutex::new(Vec::new()),
        };
        let jobs_dir = c.jobs_dir();
        let entries = std::fs::read_dir(&jobs_dir)
            .with_context(|| format!("cannot read {}", jobs_dir.display()))?;
        let mut records = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if parse_id(stem).is_none() {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<JobRecord>(&b)?));
            match read {
                Ok(r) if r.id.to_string() == stem => records.push(r),
                Ok(r) => eprintln!(
                    "warning: ignoring job record {}: it is for job {}",
                    path.display(),
                    r.id
                ),
                // Kept as it is, for whoever wants to look at it.
                Err(e) => eprintln!(
                    "warning: ignoring job record {}: {}",
                    path.display(),
                    format!("{e:#}").replace('\n', " ")
                ),
            }
        }
        records.sort_by_key(|r| r.submitted);
        for mut record in records {
            if record.end.is_none() {
                if same_process(record.pid, record.start_time) {
                    if record.rest.is_none() {
                        record.take_endpoint();
                    }
                    c.save(&record)?;
                    eprintln!(
                        "Took back job {} (job manager process {}) from the registry.",
                        record.id, record.pid
                    );
                } else {
                    record.end_with(None);
                    let end = record.end.clone().expect("just recorded");
                    eprintln!(
                        "Job {} ended while no cluster watched it: {}{}",
                        record.id,
                        end.state.as_str(),
                        end.cause
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    );
                    c.save(&record)?;
                }
            }
            c.lock().push(Tracked {
                record,
                child: None,
            });
        }
        Ok(c)
    }

    /// Records every job whose job manager ended since the last look.
    fn refresh_all(&self) {
        for t in self.lock().iter_mut() {
            t.refresh(self);
        }
    }
}

/// The default cluster directory: logs, job output and the daemon's pid file.
pub fn default_dir() -> PathBuf {
    std::env::var_os("FLOE_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("floe-cluster"))
}

/// The REST address configured for the cluster (`rest.address`/`rest.port`, `-D` over
/// `floe.yaml`), default 127.0.0.1:8081.
pub fn configured_address(dynamic: &[String]) -> Result<String> {
    let conf = configuration(dynamic)?;
    let host = conf
        .get(keys::REST_ADDRESS)?
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = conf.get(keys::REST_PORT)?.unwrap_or(8081);
    Ok(format!("{host}:{port}"))
}

/// `floe.yaml` with the `-D` entries over it.
fn configuration(dynamic: &[String]) -> Result<floe::config::Configuration> {
    let mut conf = floe::config::file::load_from_env()?;
    for d in dynamic {
        conf.set_dynamic(d)?;
    }
    Ok(conf)
}

fn security(dynamic: &[String]) -> Result<floe::jobmanager::security::RestSecurity> {
    floe::jobmanager::security::RestSecurity::from_config(&configuration(dynamic)?)
}

/// `floe cluster start`: starts the daemon in the background and waits until it answers.
pub fn start(dir: &FsPath, dynamic: &[String], task_managers: u32) -> Result<()> {
    let addr = configured_address(dynamic)?;
    // Refuse here too, so the user sees why rather than a daemon that exited.
    security(dynamic)?.check_bind(
        &addr
            .parse()
            .map_err(|e| anyhow!("invalid rest.address: {e}"))?,
    )?;
    if crate::rest::Rest::new(Some(&addr))?.is_cluster() {
        bail!("a Floe cluster is already running at {addr}");
    }
    std::fs::create_dir_all(dir.join("jobs"))
        .with_context(|| format!("cannot create cluster directory {}", dir.display()))?;
    // Job records hold file paths that `floe logs` opens from wherever it runs.
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot resolve cluster directory {}", dir.display()))?;
    // Appended to: the log of an earlier daemon tells what happened before a restart.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("jobmanager.log"))
        .with_context(|| format!("cannot write {}", dir.join("jobmanager.log").display()))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["cluster", "daemon", "--dir"]).arg(dir);
    cmd.arg("--taskmanagers").arg(task_managers.to_string());
    for d in dynamic {
        cmd.arg("-D").arg(d);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // A session of its own: the daemon outlives the terminal that started it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().context("cannot start the cluster daemon")?;
    println!("Starting cluster.");
    let deadline = Instant::now() + Duration::from_secs(15);
    let rest = crate::rest::Rest::new(Some(&addr))?;
    while !rest.is_cluster() {
        if let Some(st) = child.try_wait()? {
            let text = std::fs::read_to_string(dir.join("jobmanager.log")).unwrap_or_default();
            let why = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            bail!(
                "the cluster daemon exited ({st}){why}; see {}",
                dir.join("jobmanager.log").display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the cluster daemon did not answer at {addr} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(dir.join("jobmanager.pid"), child.id().to_string())?;
    let rpc = std::fs::read_to_string(dir.join("jobmanager.rpc")).unwrap_or_default();
    println!(
        "Cluster started: REST endpoint http://{addr}, RPC endpoint {rpc}, {task_managers} local task manager(s), directory {}",
        dir.display()
    );
    Ok(())
}

/// `floe cluster stop`: asks the daemon to cancel its jobs and exit.
pub fn stop(addr: &str) -> Result<()> {
    let rest = crate::rest::Rest::new(Some(addr))?;
    if !rest.is_cluster() {
        bail!("no Floe cluster is running at {addr}");
    }
    rest.post::<_, Empty>("/floe/shutdown", &Empty {})?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rest.is_cluster() {
        if Instant::now() > deadline {
            bail!("the cluster at {addr} did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("Cluster at {addr} stopped.");
    Ok(())
}

/// `floe cluster daemon`: serves until shut down.
pub fn daemon(dir: PathBuf, dynamic: &[String], task_managers: u32) -> Result<()> {
    let addr: SocketAddr = configured_address(dynamic)?
        .parse()
        .map_err(|e| anyhow!("invalid rest.address: {e}"))?;
    // The daemon runs binaries on request: never open to the network without a token.
    let security = security(dynamic)?;
    security.check_bind(&addr)?;
    std::fs::create_dir_all(dir.join("jobs"))?;
    let _lock = lock_dir(&dir)?;
    let conf = configuration(dynamic)?;
    let (rm, rpc) = rpc_endpoint(&conf, &dir, security.token().is_some())?;
    let cluster = Arc::new(Cluster::load(dir, rm, rpc)?);
    start_local_task_managers(&cluster, dynamic, task_managers);
    // Job managers end on their own (or are killed): watch them, so every job that ended
    // is recorded even when no one asks.
    {
        let cluster = Arc::clone(&cluster);
        std::thread::Builder::new()
            .name("floe-cluster-watch".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(200));
                cluster.refresh_all();
            })?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr}"))?;
        eprintln!("Floe cluster REST endpoint listening at {addr}");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let disposals = Disposals::new(security.clone());
        let api = routes().merge(disposals.routes());
        let app = security
            .protect(with_flink_fallbacks(
                Router::new().nest("/v1", api.clone()).merge(api).route(
                    "/floe/shutdown",
                    post(move |State(c): State<Shared>| {
                        let tx = Arc::clone(&tx);
                        async move {
                            let _ = tokio::task::spawn_blocking(move || {
                                cancel_all(&c);
                                stop_local_task_managers(&c);
                            })
                            .await;
                            if let Some(tx) = tx.lock_ok().take() {
                                let _ = tx.send(());
                            }
                            Json(Empty {})
                        }
                    }),
                ),
            ))
            .with_state(Arc::clone(&cluster));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    eprintln!("Floe cluster stopped.");
    Ok(())
}

/// Holds the cluster directory for this daemon while the returned file is open: two daemons
/// on one registry would both take back, and both write, the same jobs.
fn lock_dir(dir: &FsPath) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("jobmanager.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "the cluster directory {} is in use by another Floe cluster daemon",
            dir.display()
        );
    }
    Ok(f)
}

fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/floe/cluster",
            get(|State(c): State<Shared>| async move {
                Json(ClusterInfo {
                    floe_cluster: true,
                    dir: c.dir.clone(),
                    rpc: Some(c.rpc.clone()),
                })
            }),
        )
        .route("/floe/jobs", post(submit))
        .route("/floe/jobs/{jobid}/logs", get(logs))
        .route("/overview", get(overview))
        .route("/taskmanagers", get(task_managers))
        .route("/taskmanagers/{id}", get(task_manager))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{jobid}", any(forward))
        .route("/jobs/{jobid}/{*rest}", any(forward))
        .route(
            "/config",
            get(|| async { Json(floe::jobmanager::rest::dashboard_config(Vec::new())) }),
        )
}

/// Cancels every running job and waits until their job managers have ended.
fn cancel_all(c: &Cluster) {
    for t in c.lock().iter_mut() {
        t.refresh(c);
        if t.ended().is_none() {
            t.terminate();
        }
    }
    while c.lock().iter_mut().any(|t| {
        t.refresh(c);
        t.ended().is_none()
    }) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> Option<T> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

/// The overview entry of a running job whose endpoint did not answer: what its job manager
/// announced last, else what the record knows.
fn running_entry(r: &JobRecord) -> JobOverview {
    if let Some(a) = r.announcement() {
        return a.snapshot.overview;
    }
    let info = floe::jobmanager::info::JobInfo::new(
        &r.id.to_string(),
        r.name.as_deref().unwrap_or_default(),
        0,
        Default::default(),
        r.submitted,
    );
    info.overview(now_ms())
}

/// Every job's overview entry: running ones from their job manager, ended ones from their
/// record.
fn overviews(c: &Cluster) -> Vec<JobOverview> {
    let snapshot: Vec<(JobId, Option<String>)> = {
        let mut jobs = c.lock();
        jobs.iter_mut()
            .map(|t| {
                t.refresh(c);
                (t.record.id, t.record.rest.clone())
            })
            .collect()
    };
    let mut out = Vec::new();
    for (id, rest) in snapshot {
        let live = rest.as_deref().and_then(|rest| {
            http_get::<JobsOverview>(rest, "/jobs/overview").and_then(|v| v.jobs.into_iter().next())
        });
        let mut jobs = c.lock();
        let Some(t) = jobs.iter_mut().find(|t| t.record.id == id) else {
            continue;
        };
        // A job manager that did not answer may just have ended.
        t.refresh(c);
        if let Some(end) = t.ended() {
            out.push(t.record.final_details(end).overview);
            continue;
        }
        let entry = match live {
            Some(v) => {
                if Some(&v.name) != t.record.name.as_ref() {
                    t.record.name = Some(v.name.clone());
                    if let Err(e) = c.save(&t.record) {
                        eprintln!("warning: {e:#}");
                    }
                }
                v
            }
            // Running, but its endpoint did not answer this time.
            None => running_entry(&t.record),
        };
        out.push(entry);
    }
    out
}

async fn overview(State(c): State<Shared>) -> Json<ClusterOverview> {
    let rm = Arc::clone(&c.rm);
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    let mut o = ClusterOverview::of(&all);
    // The cluster's own task managers and slots, as Flink counts them.
    let tms = rm.task_managers();
    o.taskmanagers = tms.len() as u32;
    o.slots_total = tms.iter().map(|t| t.registration.slots).sum();
    o.slots_available = tms.iter().map(|t| t.free_slots).sum();
    Json(o)
}

async fn task_managers(State(c): State<Shared>) -> Json<TaskManagersInfo> {
    Json(TaskManagersInfo {
        taskmanagers: c
            .rm
            .task_managers()
            .iter()
            .map(TaskManagerInfo::of)
            .collect(),
    })
}

async fn task_manager(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    match c
        .rm
        .task_managers()
        .iter()
        .find(|t| t.registration.id.0 == id)
    {
        Some(t) => Json(TaskManagerDetailsInfo::of(t)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Could not find TaskExecutor {id}."),
        ),
    }
}

/// Binds the RPC endpoint (`jobmanager.bind-host`, else `jobmanager.rpc.address`, port
/// `jobmanager.rpc.port`; port 0 takes a free one) and starts the resource manager on it.
/// Returns it and the address task managers reach it at — `jobmanager.rpc.address` with
/// the port actually bound, also written to `<dir>/jobmanager.rpc` and `/floe/cluster`.
fn rpc_endpoint(
    conf: &floe::config::Configuration,
    dir: &FsPath,
    has_token: bool,
) -> Result<(Arc<ResourceManager>, String)> {
    let bind = floe::cluster::resource_manager::bind_address(conf)?;
    let listener = std::net::TcpListener::bind(&bind)
        .with_context(|| format!("cannot bind the job manager's RPC endpoint {bind}"))?;
    let local = listener.local_addr()?;
    // Task managers run whatever binary it names: never open to the network without a token.
    if !local.ip().is_loopback() && !has_token {
        bail!("refusing to serve the job manager's RPC endpoint on {local}: it is not a loopback address and rest.auth.token is not set");
    }
    let host = conf
        .get(keys::JOBMANAGER_RPC_ADDRESS)?
        .unwrap_or_else(|| "localhost".into());
    let rpc = floe::cluster::join_host_port(&host, u32::from(local.port()));
    let rm = ResourceManager::new(conf, dir.join("blobs"))?;
    rm.serve(listener)?;
    std::fs::write(dir.join("jobmanager.rpc"), &rpc)?;
    eprintln!("Floe cluster RPC endpoint (resource manager, blob server) listening at {local}, reached at {rpc}");
    Ok((rm, rpc))
}

/// Starts `n` task managers on this host (`<dir>/taskmanager-<i>`), registering with this
/// daemon, as Flink's `start-cluster.sh` does for `conf/workers`. One still running there
/// for this endpoint (a daemon restart) is kept; one for another endpoint is replaced.
fn start_local_task_managers(c: &Cluster, dynamic: &[String], n: u32) {
    let host = floe::cluster::host_of(&c.rpc).to_string();
    let port = c.rpc.rsplit(':').next().unwrap_or("6123").to_string();
    for i in 0..n {
        let dir = c.dir.join(format!("taskmanager-{i}"));
        if let Some(f) = crate::taskmanager::running(&dir) {
            if f.jobmanager == c.rpc {
                eprintln!(
                    "Task manager {} in {} is still running.",
                    f.id,
                    dir.display()
                );
                c.local_task_managers.lock_ok().push(dir);
                continue;
            }
            if let Err(e) = crate::taskmanager::stop(&dir) {
                eprintln!("warning: {e:#}");
            }
        }
        let mut args: Vec<String> = dynamic.to_vec();
        args.push(format!("jobmanager.rpc.address={host}"));
        args.push(format!("jobmanager.rpc.port={port}"));
        // Through `floe taskmanager start`, which returns once it runs: the task manager is
        // then no child of this daemon (job managers are), and outlives it as a daemon should.
        let mut cmd = match std::env::current_exe() {
            Ok(exe) => Command::new(exe),
            Err(e) => {
                eprintln!("warning: cannot start local task manager {i}: {e}");
                continue;
            }
        };
        cmd.args(["taskmanager", "start", "--dir"]).arg(&dir);
        for a in &args {
            cmd.arg("-D").arg(a);
        }
        match cmd.stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => {
                eprint!("{}", String::from_utf8_lossy(&o.stdout));
                c.local_task_managers.lock_ok().push(dir)
            }
            Ok(o) => eprintln!(
                "warning: cannot start local task manager {i}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot start local task manager {i}: {e}"),
        }
    }
}

/// Stops the task managers this daemon started.
fn stop_local_task_managers(c: &Cluster) {
    for dir in std::mem::take(&mut *c.local_task_managers.lock_ok()) {
        if let Err(e) = crate::taskmanager::stop(&dir) {
            eprintln!("warning: {e:#}");
        }
    }
}

async fn jobs(State(c): State<Shared>) -> Json<JobIdsWithStatus> {
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    Json(JobIdsWithStatus {
        jobs: all
            .into_iter()
            .map(|j| JobIdWithStatus {
                id: j.jid,
                status: j.state,
            })
            .collect(),
    })
}

async fn jobs_overview(State(c): State<Shared>) -> Json<JobsOverview> {
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    Json(JobsOverview { jobs: all })
}

async fn logs(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let jobs = c.lock();
    match jobs.iter().find(|t| t.record.id.to_string() == id) {
        Some(t) => Json(JobFiles {
            out: t.record.out.clone(),
            log: t.record.log.clone(),
            workers: worker_outputs(&c.rm.task_manager_dirs(), &id),
        })
        .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("Job {id} not found")),
    }
}

/// What `forward` does for a job.
enum Target {
    /// Forward to the job's own endpoint.
    Endpoint(String),
    /// Running, but its endpoint is not known (a job manager still starting when a daemon
    /// was killed): only cancelling is possible, by signal.
    NoEndpoint,
    /// The job ended: answer from its record (its end, its final details).
    Ended(Box<(JobRecord, JobEnd)>),
}

fn target(c: &Cluster, id: &str) -> Option<Target> {
    let mut jobs = c.lock();
    let t = jobs.iter_mut().find(|t| t.record.id.to_string() == id)?;
    t.refresh(c);
    Some(match (t.ended(), &t.record.rest) {
        (Some(end), _) => Target::Ended(Box::new((t.record.clone(), end.clone()))),
        (None, Some(rest)) => Target::Endpoint(rest.clone()),
        (None, None) => Target::NoEndpoint,
    })
}

/// The answer for an ended job, from its record: its details, exceptions, checkpoint
/// statistics and settings as its job manager last served them (Flink's archived execution
/// graph); a conflict for anything that needs a running job.
fn answer_ended(method: &Method, sub: &str, r: &JobRecord, end: &JobEnd) -> Response {
    let state = end.state.as_str();
    let conflict = || {
        error(
            StatusCode::CONFLICT,
            format!(
                "Job {} is not running: it has reached the terminal state {state}.",
                r.id
            ),
        )
    };
    match (method.as_str(), sub) {
        ("GET", "") => Json(r.final_details(end).details).into_response(),
        ("GET", "/exceptions") => Json(r.final_details(end).exceptions).into_response(),
        ("GET", "/checkpoints") => Json(r.final_details(end).checkpoints).into_response(),
        ("GET", "/checkpoints/config") => match r.final_details(end).checkpoint_config {
            Some(c) => Json(c).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                "Checkpointing is not enabled for this job",
            ),
        },
        ("PATCH", "") => error(
            StatusCode::CONFLICT,
            format!(
                "Cancelling job {} failed because the job has already reached another terminal state ({state}).",
                r.id
            ),
        ),
        _ => conflict(),
    }
}

/// Forwards `/jobs/:jobid/...` to the job's own job manager, or answers for an ended job.
async fn forward(
    State(c): State<Shared>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // The job's own endpoint reads the same floe.yaml, so the caller's token is its token too.
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = path.strip_prefix("/v1").unwrap_or(&path).to_string();
    let plain = uri.path();
    let plain = plain.strip_prefix("/v1").unwrap_or(plain);
    let after = plain.trim_start_matches("/jobs/");
    let (id, sub) = after.split_at(after.find('/').unwrap_or(after.len()));
    let (id, sub) = (id.to_string(), sub.to_string());
    let not_found = || error(StatusCode::NOT_FOUND, format!("Job {id} not found"));
    let rest = match target(&c, &id) {
        None => return not_found(),
        Some(Target::Ended(ended)) => {
            let (r, end) = *ended;
            return answer_ended(&method, &sub, &r, &end);
        }
        Some(Target::NoEndpoint) => {
            if method == Method::PATCH && sub.is_empty() {
                if let Some(t) = c.lock().iter_mut().find(|t| t.record.id.to_string() == id) {
                    t.terminate();
                }
                return (StatusCode::ACCEPTED, Json(Empty {})).into_response();
            }
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Job {id} has no REST endpoint yet"),
            );
        }
        Some(Target::Endpoint(rest)) => rest,
    };
    if !matches!(method, Method::GET | Method::POST | Method::PATCH) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method not allowed: {method} {plain}"),
        );
    }
    let m = method.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<(u16, Vec<u8>)> {
        let method = m;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("http://{rest}{path}");
        let auth = auth.as_deref().unwrap_or("");
        let mut resp = match method.as_str() {
            "GET" => agent.get(&url).header("Authorization", auth).call()?,
            "POST" => agent
                .post(&url)
                .header("Authorization", auth)
                .content_type("application/json")
                .send(&body[..])?,
            "PATCH" => agent
                .patch(&url)
                .header("Authorization", auth)
                .content_type("application/json")
                .send(&body[..])?,
            m => bail!("method {m} is not supported"),
        };
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    })
    .await;
    match res {
        Ok(Ok((code, bytes))) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => {
            // Its job manager may have ended meanwhile: then the record answers.
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                if let Some(Target::Ended(ended)) = target(&c, &id) {
                    let (r, end) = *ended;
                    return answer_ended(&method, &sub, &r, &end);
                }
                if Instant::now() > deadline {
                    return error(StatusCode::BAD_GATEWAY, format!("job {id}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /floe/jobs`: starts a job binary; answers with its job id once it runs.
async fn submit(State(c): State<Shared>, Json(req): Json<SubmitRequest>) -> Response {
    match tokio::task::spawn_blocking(move || start_job(&c, &req)).await {
        Ok(Ok(jobid)) => (StatusCode::ACCEPTED, Json(Submitted { jobid })).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A new file for a job; never one that exists, so no job's files are ever overwritten.
fn create_new(path: &FsPath) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn start_job(c: &Cluster, req: &SubmitRequest) -> Result<String> {
    let binary = req.binary.display().to_string();
    let mut id = JobId::random();
    let out = c.jobs_dir().join(format!("{id}.out"));
    let log = c.jobs_dir().join(format!("{id}.log"));
    let status_file = c.jobs_dir().join(format!("{id}.status.json"));
    let mut cmd = Command::new(&req.binary);
    if let Some(s) = &req.savepoint {
        cmd.arg("-s").arg(s);
    }
    if req.allow_non_restored_state {
        cmd.arg("-n");
    }
    if let Some(p) = req.parallelism {
        cmd.arg("-p").arg(p.to_string());
    }
    for d in &req.dynamic {
        cmd.arg("-D").arg(d);
    }
    // The job's own endpoint: a free loopback port the cluster forwards to.
    cmd.args(["-D", "rest.port=0", "-D", "rest.bind-address=127.0.0.1"]);
    cmd.args(&req.args);
    // Task managers fetch the job binary by its hash from the blob store.
    let blob =
        c.rm.put_blob(&req.binary)
            .with_context(|| format!("cannot store job binary '{binary}' in the blob store"))?;
    let mut child = cmd
        .env(floe::cluster::RPC_ENV, &c.rpc)
        .env(floe::cluster::BLOB_ENV, blob.as_str())
        .env(floe::jobmanager::JOB_ID_ENV, id.to_string())
        .env(STATUS_FILE_ENV, &status_file)
        .stdin(Stdio::null())
        .stdout(create_new(&out)?)
        .stderr(create_new(&log)?)
        .spawn()
        .with_context(|| format!("cannot start job binary '{binary}'"))?;
    let mut record = JobRecord {
        id,
        pid: child.id(),
        start_time: proc_stat(child.id()).map(|(_, start)| start).unwrap_or(0),
        rest: None,
        out,
        log,
        submitted: now_ms(),
        name: None,
        end: None,
        status_file: Some(status_file),
        last: None,
    };
    // On disk before anything else: a daemon killed from here on finds the job again.
    if let Err(e) = c.save(&record) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let status_file = record.status_file.clone().expect("set above");
    let (reported, rest) =
        match wait_until_running(&mut child, &binary, &record.log, &status_file, true) {
            Ok(running) => running,
            Err(e) => {
                // It never ran: no job to keep a record of (its output and log stay).
                let _ = std::fs::remove_file(c.jobs_dir().join(format!("{id}.json")));
                return Err(e);
            }
        };
    // A job binary built before the cluster chose ids picks its own: the record follows it.
    if let Some(reported) = parse_id(&reported).filter(|r| *r != id) {
        let _ = std::fs::remove_file(c.jobs_dir().join(format!("{id}.json")));
        id = reported;
        record.id = id;
    }
    record.rest = rest;
    record.name = record.announcement().map(|a| a.name);
    c.save(&record)?;
    c.lock().push(Tracked {
        record,
        child: Some(child),
    });
    Ok(id.to_string())
}

/// Waits until the job binary `child` (its log at `log`) has announced its job in
/// `status_file` — and, with `need_rest`, its REST endpoint — and returns the job id and the
/// endpoint. A binary that exits first, or is not running within 60 s (then it is killed),
/// is an error naming it, with its last `error:` line.
pub(crate) fn wait_until_running(
    child: &mut Child,
    binary: &str,
    log: &FsPath,
    status_file: &FsPath,
    need_rest: bool,
) -> Result<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A status file being replaced is read again on the next round.
        if let Ok(Some(a)) = JobAnnouncement::read(status_file) {
            if a.rest.is_some() || !need_rest {
                return Ok((a.job_id, a.rest));
            }
        }
        if let Some(st) = child.try_wait()? {
            // For the user: the binary's own error message, as it printed it.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error: "))
                .unwrap_or("")
                .to_string();
            bail!("job binary '{binary}' exited ({st}) before it was running: {last}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "job binary '{binary}' did not start within 60 s; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_32_lowercase_hex() {
        let id = JobId::random();
        assert_eq!(parse_id(&id.to_string()), Some(id));
        assert_eq!(parse_id("../../etc/passwd"), None);
        assert_eq!(parse_id(&"A".repeat(32)), None);
        assert!(serde_json::from_str::<JobId>("\"job-1\"").is_err());
    }

    #[test]
    fn this_process_has_a_stable_start_time() {
        let (state, start) = proc_stat(std::process::id()).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(same_process(std::process::id(), start));
        assert!(!same_process(std::process::id(), start + 1));
    }

    fn record(name: Option<&str>) -> JobRecord {
        JobRecord {
            id: JobId::random(),
            pid: 1,
            start_time: 0,
            rest: None,
            out: "o".into(),
            log: "l".into(),
            submitted: 1_000,
            name: name.map(str::to_string),
            end: None,
            status_file: None,
            last: None,
        }
    }

    #[test]
    fn a_lost_job_manager_leaves_a_complete_failed_entry() {
        let r = record(Some("wc"));
        let end = JobEnd {
            state: TerminalState::Failed,
            cause: Some("The job manager was lost".into()),
            time: 5_000,
        };
        let s = final_snapshot(&r, None, &end);
        assert_eq!(s.overview.state, JobStatus::Failed);
        assert_eq!(
            (s.overview.name.as_str(), s.overview.end_time),
            ("wc", 5_000)
        );
        assert_eq!((s.overview.start_time, s.overview.duration), (1_000, 4_000));
        assert_eq!(s.details.end_time, 5_000);
        assert_eq!(
            s.exceptions.root_exception.as_deref(),
            Some("The job manager was lost")
        );
        // A last announcement while it ran: its tasks end FAILED with it.
        let mut info = floe::jobmanager::info::JobInfo::new(
            &r.id.to_string(),
            "wc",
            2,
            Default::default(),
            1_000,
        );
        info.transition(JobStatus::Running, 1_100);
        let running = JobSnapshot::of(&info, 2_000);
        let s = final_snapshot(&r, Some(running), &end);
        assert_eq!((s.overview.tasks.failed, s.overview.tasks.running), (2, 0));
        assert_eq!(s.overview.end_time, 5_000);
    }

    #[test]
    fn a_job_manager_that_announced_its_end_is_taken_at_its_word() {
        let r = record(None);
        let mut info = floe::jobmanager::info::JobInfo::new(
            &r.id.to_string(),
            "wc",
            1,
            Default::default(),
            1_000,
        );
        info.transition(JobStatus::Canceled, 3_000);
        let own = JobSnapshot::of(&info, 3_000);
        let end = job_end(&r, Some(JobStatus::Canceled), None);
        assert_eq!(
            (end.state, end.cause.as_deref()),
            (TerminalState::Canceled, None)
        );
        assert_eq!(final_snapshot(&r, Some(own.clone()), &end), own);
        let lost = job_end(&r, Some(JobStatus::Running), None);
        assert_eq!(lost.state, TerminalState::Failed);
        assert!(lost.cause.unwrap().contains("was lost"));
    }
}
