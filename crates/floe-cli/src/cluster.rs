//! The session cluster: a long-running job manager daemon with a REST endpoint that jobs are
//! submitted to (`floe cluster start|stop|status`, `floe run` when a cluster answers).
//!
//! Each submitted job binary runs as its own per-job job manager process (which runs the
//! job's user code in worker processes) with a REST endpoint on a free loopback port. The
//! daemon starts it, learns its job id and endpoint from its log, keeps its stdout and log
//! under the cluster directory, answers `/overview`, `/jobs` and `/jobs/overview` for all
//! jobs, and forwards `/jobs/:jobid/...` to the job's own endpoint. A job that ended keeps
//! its last state (read from its log) in the listings.

use anyhow::{anyhow, bail, Context as _, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job the cluster started.
struct ClusterJob {
    id: String,
    rest: String,
    child: Child,
    out: PathBuf,
    log: PathBuf,
    last: Option<Value>,
}

struct Cluster {
    dir: PathBuf,
    jobs: Mutex<Vec<ClusterJob>>,
    submitted: Mutex<u64>,
}

type Shared = Arc<Cluster>;

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
    let log = std::fs::File::create(dir.join("jobmanager.log"))
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
            bail!(
                "the cluster daemon exited ({st}); see {}",
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
    let cluster = Arc::new(Cluster {
        dir,
        jobs: Mutex::new(Vec::new()),
        submitted: Mutex::new(0),
    });
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
                        cancel_all(&c);
                        if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
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

fn cancel_all(c: &Cluster) {
    let mut jobs = c.jobs.lock().unwrap_or_else(|e| e.into_inner());
    for j in jobs.iter_mut() {
        if matches!(j.child.try_wait(), Ok(None)) {
            // SIGTERM: the job manager cancels the job, applying retention.
            unsafe {
                libc::kill(j.child.id() as i32, libc::SIGTERM);
            }
        }
    }
    for j in jobs.iter_mut() {
        let _ = j.child.wait();
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

/// Every job's overview entry: live ones from their job manager, ended ones from the last
/// known entry with the final state from their log.
fn overviews(c: &Cluster) -> Vec<Value> {
    let snapshot: Vec<(String, String, bool, PathBuf, Option<Value>)> = {
        let mut jobs = c.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter_mut()
            .map(|j| {
                (
                    j.id.clone(),
                    j.rest.clone(),
                    matches!(j.child.try_wait(), Ok(None)),
                    j.log.clone(),
                    j.last.clone(),
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    for (id, rest, alive, log, last) in snapshot {
        let live = if alive {
            http_get(&rest, "/jobs/overview")
                .and_then(|v| v["jobs"].as_array().and_then(|a| a.first().cloned()))
        } else {
            None
        };
        let entry = match live {
            Some(v) => {
                if let Some(j) = c
                    .jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter_mut()
                    .find(|j| j.id == id)
                {
                    j.last = Some(v.clone());
                }
                v
            }
            None => {
                let mut v = last.unwrap_or_else(
                    || json!({ "jid": id, "name": "", "start-time": 0, "tasks": {} }),
                );
                if !alive {
                    v["state"] = json!(final_state(&log).unwrap_or_else(|| "FAILED".into()));
                }
                v
            }
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
    let jobs = c.jobs.lock().unwrap_or_else(|e| e.into_inner());
    match jobs.iter().find(|j| j.id == id) {
        Some(j) => Json(json!({ "out": j.out, "log": j.log })).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("Job {id} not found")),
    }
}

/// Forwards `/jobs/:jobid/...` to the job's own job manager.
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
    let id = path
        .trim_start_matches("/jobs/")
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .to_string();
    let target = {
        let mut jobs = c.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter_mut().find(|j| j.id == id).map(|j| {
            (
                j.rest.clone(),
                matches!(j.child.try_wait(), Ok(None)),
                j.log.clone(),
            )
        })
    };
    let Some((rest, alive, log)) = target else {
        return error(StatusCode::NOT_FOUND, format!("Job {id} not found"));
    };
    if !alive {
        if method == Method::GET && path == format!("/jobs/{id}") {
            let state = final_state(&log).unwrap_or_else(|| "FAILED".into());
            return Json(json!({ "jid": id, "state": state })).into_response();
        }
        return error(StatusCode::CONFLICT, format!("Job {id} is not running"));
    }
    let res = tokio::task::spawn_blocking(move || -> Result<(u16, Vec<u8>)> {
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
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, format!("job {id}: {e}")),
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

fn start_job(c: &Cluster, req: &Value) -> Result<String> {
    let binary = req["binary"]
        .as_str()
        .ok_or_else(|| anyhow!("'binary' is required"))?;
    let n = {
        let mut s = c.submitted.lock().unwrap_or_else(|e| e.into_inner());
        *s += 1;
        *s
    };
    let out = c.dir.join("jobs").join(format!("job-{n}.out"));
    let log = c.dir.join("jobs").join(format!("job-{n}.log"));
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
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start job binary '{binary}'"))?;
    let (id, rest) = wait_until_running(&mut child, binary, &log, true)?;
    c.jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ClusterJob {
            id: id.clone(),
            rest: rest.unwrap_or_default(),
            child,
            out,
            log,
            last: None,
        });
    Ok(id)
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
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let id = text
            .lines()
            .find_map(|l| l.split("Submitting job ").nth(1))
            .and_then(|r| r.rsplit('(').next())
            .map(|s| s.trim().trim_end_matches(").").to_string());
        let rest = text
            .lines()
            .find_map(|l| l.split("Rest endpoint listening at ").nth(1))
            .map(|s| s.trim().to_string());
        if let Some(id) = id {
            if rest.is_some() || !need_rest {
                return Ok((id, rest));
            }
        }
        if let Some(st) = child.try_wait()? {
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
