//! The session cluster: a long-running job manager daemon with a REST endpoint that jobs are
//! submitted to (`floe cluster start|stop|status`, `floe run` when a cluster answers).
//!
//! Each submitted job binary runs as its own per-job job manager process (which runs the
//! job's user code in worker processes) with a REST endpoint on a free loopback port. The
//! daemon chooses the job id (passed on in [`floe::jobmanager::JOB_ID_ENV`]), names the job's
//! stdout and log `<dir>/jobs/<jobid>.out|.log` after it, learns the job's endpoint from its
//! log, answers `/overview`, `/jobs` and `/jobs/overview` for all jobs, and forwards
//! `/jobs/:jobid/...` to the job's own endpoint.
//!
//! The registry of jobs lives on disk, one [`JobRecord`] per job in `<dir>/jobs/<jobid>.json`,
//! so a daemon that was killed and started again takes back the jobs that still run (same
//! pid and process start time) and knows how the others ended. A job manager process that
//! ends without a terminal state in its log was lost (`kill -9`, OOM kill): its job is
//! recorded FAILED with that cause, and the daemon answers for it from its record.

use anyhow::{anyhow, bail, Context as _, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use floe::sync::LockExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write as _};
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
    fn as_str(self) -> &'static str {
        match self {
            TerminalState::Finished => "FINISHED",
            TerminalState::Canceled => "CANCELED",
            TerminalState::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Option<TerminalState> {
        match s {
            "FINISHED" => Some(TerminalState::Finished),
            "CANCELED" => Some(TerminalState::Canceled),
            "FAILED" => Some(TerminalState::Failed),
            _ => None,
        }
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
}

/// A job the daemon keeps track of.
struct Tracked {
    record: JobRecord,
    /// The job manager process when this daemon started it (and reaps it); `None` for a job
    /// taken back after a restart, which is not our child and is watched by pid.
    child: Option<Child>,
    /// The last overview entry its job manager served.
    last: Option<Value>,
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
                self.record.end = Some(job_end(&self.record, status));
                if let Err(e) = c.save(&self.record) {
                    eprintln!("warning: {e:#}");
                }
            }
            // A job taken back while its job manager was still starting: its endpoint
            // shows up in its log.
            Process::Running if self.record.rest.is_none() => {
                let (_, name, rest) = log_facts(&self.record.log);
                if rest.is_some() {
                    self.record.rest = rest;
                    self.record.name = self.record.name.take().or(name);
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

/// How the job of an ended job manager process ended: the last state in its log when that is
/// terminal, else FAILED because its job manager was lost.
fn job_end(r: &JobRecord, status: Option<ExitStatus>) -> JobEnd {
    let logged = final_state(&r.log)
        .as_deref()
        .and_then(TerminalState::parse);
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
    fn load(dir: PathBuf) -> Result<Cluster> {
        let c = Cluster {
            dir,
            jobs: Mutex::new(Vec::new()),
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
                    let (_, name, rest) = log_facts(&record.log);
                    record.rest = record.rest.or(rest);
                    record.name = record.name.or(name);
                    c.save(&record)?;
                    eprintln!(
                        "Took back job {} (job manager process {}) from the registry.",
                        record.id, record.pid
                    );
                } else {
                    let end = job_end(&record, None);
                    eprintln!(
                        "Job {} ended while no cluster watched it: {}{}",
                        record.id,
                        end.state.as_str(),
                        end.cause
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    );
                    record.end = Some(end);
                    c.save(&record)?;
                }
            }
            c.lock().push(Tracked {
                record,
                child: None,
                last: None,
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
        .get_string("rest.address")?
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = conf.get_u32("rest.port")?.unwrap_or(8081);
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
pub fn start(dir: &FsPath, dynamic: &[String]) -> Result<()> {
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
    println!(
        "Cluster started: REST endpoint http://{addr}, directory {}",
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
    rest.post("/floe/shutdown", json!({}))?;
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
pub fn daemon(dir: PathBuf, dynamic: &[String]) -> Result<()> {
    let addr: SocketAddr = configured_address(dynamic)?
        .parse()
        .map_err(|e| anyhow!("invalid rest.address: {e}"))?;
    // The daemon runs binaries on request: never open to the network without a token.
    let security = security(dynamic)?;
    security.check_bind(&addr)?;
    std::fs::create_dir_all(dir.join("jobs"))?;
    let _lock = lock_dir(&dir)?;
    let cluster = Arc::new(Cluster::load(dir)?);
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
        let api = routes();
        let app = security
            .protect(Router::new().nest("/v1", routes()).merge(api).route(
                "/floe/shutdown",
                post(move |State(c): State<Shared>| {
                    let tx = Arc::clone(&tx);
                    async move {
                        let _ = tokio::task::spawn_blocking(move || cancel_all(&c)).await;
                        if let Some(tx) = tx.lock_ok().take() {
                            let _ = tx.send(());
                        }
                        Json(json!({}))
                    }
                }),
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
        .route("/floe/cluster", get(|State(c): State<Shared>| async move { Json(json!({ "floe-cluster": true, "dir": c.dir })) }))
        .route("/floe/jobs", post(submit))
        .route("/floe/jobs/{jobid}/logs", get(logs))
        .route("/overview", get(overview))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{jobid}", any(forward))
        .route("/jobs/{jobid}/{*rest}", any(forward))
        .route("/config", get(|| async { Json(json!({ "flink-version": concat!("floe-", env!("CARGO_PKG_VERSION")), "features": {} })) }))
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "errors": [msg.into()] }))).into_response()
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

/// The last job-status transition in a job manager log (`... switched from state X to Y.`).
fn final_state(log: &FsPath) -> Option<String> {
    let f = std::fs::File::open(log).ok()?;
    let mut state = None;
    for line in BufReader::new(f).lines().map_while(std::result::Result::ok) {
        if let Some(rest) = line.split(") switched from state ").nth(1) {
            if let Some(to) = rest.split(" to ").nth(1) {
                state = Some(to.trim_end_matches('.').to_string());
            }
        }
    }
    state
}

fn http_get(addr: &str, path: &str) -> Option<Value> {
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

/// The overview entry of an ended job: the last one its job manager served, or one from its
/// record, with the final state.
fn ended_entry(r: &JobRecord, end: &JobEnd, last: Option<&Value>) -> Value {
    let mut v = last.cloned().unwrap_or_else(|| {
        json!({
            "jid": r.id, "name": r.name.clone().unwrap_or_default(), "start-time": r.submitted,
            "job-type": "STREAMING", "tasks": {},
        })
    });
    let start = v["start-time"].as_u64().unwrap_or(r.submitted);
    v["state"] = json!(end.state.as_str());
    v["end-time"] = json!(end.time);
    v["duration"] = json!(end.time.saturating_sub(start));
    v["last-modification"] = json!(end.time);
    v
}

/// Every job's overview entry: running ones from their job manager, ended ones from their
/// record.
fn overviews(c: &Cluster) -> Vec<Value> {
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
            http_get(rest, "/jobs/overview")
                .and_then(|v| v["jobs"].as_array().and_then(|a| a.first().cloned()))
        });
        let mut jobs = c.lock();
        let Some(t) = jobs.iter_mut().find(|t| t.record.id == id) else {
            continue;
        };
        // A job manager that did not answer may just have ended.
        t.refresh(c);
        if let Some(end) = t.ended() {
            out.push(ended_entry(&t.record, end, t.last.as_ref()));
            continue;
        }
        let entry = match live {
            Some(v) => {
                let name = v["name"].as_str().map(str::to_string);
                if name.is_some() && name != t.record.name {
                    t.record.name = name;
                    if let Err(e) = c.save(&t.record) {
                        eprintln!("warning: {e:#}");
                    }
                }
                t.last = Some(v.clone());
                v
            }
            // Running, but its endpoint did not answer this time.
            None => t.last.clone().unwrap_or_else(|| {
                json!({
                    "jid": id, "name": t.record.name.clone().unwrap_or_default(),
                    "state": "RUNNING", "start-time": t.record.submitted, "end-time": -1,
                    "job-type": "STREAMING", "tasks": {},
                })
            }),
        };
        out.push(entry);
    }
    out
}

async fn overview(State(c): State<Shared>) -> Json<Value> {
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    let count = |s: &str| all.iter().filter(|j| j["state"] == s).count();
    let running = all
        .iter()
        .filter(|j| {
            !matches!(
                j["state"].as_str(),
                Some("FINISHED" | "CANCELED" | "FAILED")
            )
        })
        .count();
    Json(json!({
        "taskmanagers": running, "slots-total": running, "slots-available": 0,
        "jobs-running": running, "jobs-finished": count("FINISHED"),
        "jobs-cancelled": count("CANCELED"), "jobs-failed": count("FAILED"),
        "flink-version": concat!("floe-", env!("CARGO_PKG_VERSION")), "flink-commit": "",
    }))
}

async fn jobs(State(c): State<Shared>) -> Json<Value> {
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    Json(
        json!({ "jobs": all.iter().map(|j| json!({ "id": j["jid"], "status": j["state"] })).collect::<Vec<_>>() }),
    )
}

async fn jobs_overview(State(c): State<Shared>) -> Json<Value> {
    let all = tokio::task::spawn_blocking(move || overviews(&c))
        .await
        .unwrap_or_default();
    Json(json!({ "jobs": all }))
}

async fn logs(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let jobs = c.lock();
    match jobs.iter().find(|t| t.record.id.to_string() == id) {
        Some(t) => Json(json!({ "out": t.record.out, "log": t.record.log })).into_response(),
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
    /// The job ended: answer from its record (its end, the last overview entry served).
    Ended(Box<(JobRecord, JobEnd, Option<Value>)>),
}

fn target(c: &Cluster, id: &str) -> Option<Target> {
    let mut jobs = c.lock();
    let t = jobs.iter_mut().find(|t| t.record.id.to_string() == id)?;
    t.refresh(c);
    Some(match (t.ended(), &t.record.rest) {
        (Some(end), _) => Target::Ended(Box::new((t.record.clone(), end.clone(), t.last.clone()))),
        (None, Some(rest)) => Target::Endpoint(rest.clone()),
        (None, None) => Target::NoEndpoint,
    })
}

/// The answer for an ended job, from its record: `GET /jobs/:jobid` and
/// `/jobs/:jobid/exceptions` as Flink shapes them, a conflict for anything else.
fn answer_ended(
    method: &Method,
    sub: &str,
    r: &JobRecord,
    end: &JobEnd,
    last: Option<&Value>,
) -> Response {
    let state = end.state.as_str();
    match (method.as_str(), sub) {
        ("GET", "") => {
            let mut v = ended_entry(r, end, last);
            let summary = v.as_object_mut().expect("an overview entry is an object");
            summary.remove("tasks");
            summary.remove("last-modification");
            summary.insert("isStoppable".into(), json!(false));
            summary.insert("maxParallelism".into(), json!(-1));
            summary.insert("now".into(), json!(now_ms()));
            summary.insert("timestamps".into(), json!({ state: end.time }));
            summary.insert("vertices".into(), json!([]));
            summary.insert("status-counts".into(), json!({}));
            Json(v).into_response()
        }
        ("GET", "/exceptions") => {
            let entries: Vec<Value> = end
                .cause
                .iter()
                .map(|cause| {
                    json!({
                        "exceptionName": "org.apache.flink.util.FlinkException",
                        "stacktrace": cause, "timestamp": end.time, "taskName": null,
                        "endpoint": null, "taskManagerId": null, "failureLabels": {},
                        "concurrentExceptions": [],
                    })
                })
                .collect();
            Json(json!({
                "root-exception": end.cause, "timestamp": end.cause.as_ref().map(|_| end.time),
                "all-exceptions": [], "truncated": false,
                "exceptionHistory": { "entries": entries, "truncated": false },
            }))
            .into_response()
        }
        ("PATCH", "") => error(
            StatusCode::CONFLICT,
            format!(
                "Cancelling job {} failed because the job has already reached another terminal state ({state}).",
                r.id
            ),
        ),
        _ => error(
            StatusCode::CONFLICT,
            format!("Job {} is not running: it has reached the terminal state {state}.", r.id),
        ),
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
            return {
                let (r, end, last) = *ended;
                answer_ended(&method, &sub, &r, &end, last.as_ref())
            }
        }
        Some(Target::NoEndpoint) => {
            if method == Method::PATCH && sub.is_empty() {
                if let Some(t) = c.lock().iter_mut().find(|t| t.record.id.to_string() == id) {
                    t.terminate();
                }
                return (StatusCode::ACCEPTED, Json(json!({}))).into_response();
            }
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Job {id} has no REST endpoint yet"),
            );
        }
        Some(Target::Endpoint(rest)) => rest,
    };
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
                    return {
                        let (r, end, last) = *ended;
                        answer_ended(&method, &sub, &r, &end, last.as_ref())
                    };
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
async fn submit(State(c): State<Shared>, Json(req): Json<Value>) -> Response {
    match tokio::task::spawn_blocking(move || start_job(&c, &req)).await {
        Ok(Ok(id)) => (StatusCode::ACCEPTED, Json(json!({ "jobid": id }))).into_response(),
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

fn start_job(c: &Cluster, req: &Value) -> Result<String> {
    let binary = req["binary"]
        .as_str()
        .ok_or_else(|| anyhow!("'binary' is required"))?;
    let mut id = JobId::random();
    let out = c.jobs_dir().join(format!("{id}.out"));
    let log = c.jobs_dir().join(format!("{id}.log"));
    let mut cmd = Command::new(binary);
    if let Some(s) = req["savepoint"].as_str() {
        cmd.arg("-s").arg(s);
    }
    if req["allow_non_restored_state"].as_bool() == Some(true) {
        cmd.arg("-n");
    }
    if let Some(p) = req["parallelism"].as_u64() {
        cmd.arg("-p").arg(p.to_string());
    }
    for d in req["dynamic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        cmd.arg("-D").arg(d);
    }
    // The job's own endpoint: a free loopback port the cluster forwards to.
    cmd.args(["-D", "rest.port=0", "-D", "rest.bind-address=127.0.0.1"]);
    for a in req["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        cmd.arg(a);
    }
    let mut child = cmd
        .env(floe::jobmanager::JOB_ID_ENV, id.to_string())
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
    };
    // On disk before anything else: a daemon killed from here on finds the job again.
    if let Err(e) = c.save(&record) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let (reported, rest) = match wait_until_running(&mut child, binary, &record.log, true) {
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
    record.name = log_facts(&record.log).1;
    c.save(&record)?;
    c.lock().push(Tracked {
        record,
        child: Some(child),
        last: None,
    });
    Ok(id.to_string())
}

/// The job id, job name and REST endpoint a job manager's log names, as far as it does.
fn log_facts(log: &FsPath) -> (Option<String>, Option<String>, Option<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // "Submitting job <name> (<id>)."
    let submitted = text.lines().find_map(|l| {
        let r = l
            .split("Submitting job ")
            .nth(1)?
            .trim()
            .strip_suffix(").")?;
        let (name, id) = r.rsplit_once(" (")?;
        Some((name.to_string(), id.to_string()))
    });
    let (name, id) = submitted.unzip();
    let rest = text
        .lines()
        .find_map(|l| l.split("Rest endpoint listening at ").nth(1))
        .map(|s| s.trim().to_string());
    (id, name, rest)
}

/// Waits until the job binary `child` (its log at `log`) has submitted its job — and, with
/// `need_rest`, opened its REST endpoint — and returns the job id and the endpoint. A
/// binary that exits first, or is not running within 60 s (then it is killed), is an error
/// naming it, with its last `error:` line.
pub(crate) fn wait_until_running(
    child: &mut Child,
    binary: &str,
    log: &FsPath,
    need_rest: bool,
) -> Result<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (id, _, rest) = log_facts(log);
        if let Some(id) = id {
            if rest.is_some() || !need_rest {
                return Ok((id, rest));
            }
        }
        if let Some(st) = child.try_wait()? {
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
        assert!(serde_json::from_value::<JobId>(json!("job-1")).is_err());
    }

    #[test]
    fn this_process_has_a_stable_start_time() {
        let (state, start) = proc_stat(std::process::id()).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(same_process(std::process::id(), start));
        assert!(!same_process(std::process::id(), start + 1));
    }

    #[test]
    fn a_log_names_the_job_and_its_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("j.log");
        std::fs::write(
            &log,
            "2026-12-01T22:00:00Z INFO floe::jobmanager: Submitting job my job (x) (0123456789abcdef0123456789abcdef).\n\
             2026-12-01T22:00:00Z INFO floe::jobmanager: Rest endpoint listening at 127.0.0.1:4711\n",
        )
        .unwrap();
        assert_eq!(
            log_facts(&log),
            (
                Some("0123456789abcdef0123456789abcdef".into()),
                Some("my job (x)".into()),
                Some("127.0.0.1:4711".into())
            )
        );
    }
}
