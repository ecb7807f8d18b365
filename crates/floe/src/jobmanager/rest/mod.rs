//! The job manager's REST API: Flink's REST v1 paths and field names for the subset Floe
//! serves, so Flink's tooling and the `floe` CLI can drive a job. Every body is a type of
//! [`model`], the contract the `floe` CLI and the session cluster read back.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /overview`, `GET /config` | cluster overview, configuration |
//! | `GET /jobs`, `GET /jobs/overview` | jobs with their status |
//! | `GET /jobs/:jobid`, `GET /jobs/:jobid/exceptions` | one job, its task failures |
//! | `GET /jobs/:jobid/checkpoints`, `GET /jobs/:jobid/checkpoints/config` | checkpoint statistics and settings |
//! | `POST /jobs/:jobid/checkpoints`, `GET /jobs/:jobid/checkpoints/:triggerid` | trigger a checkpoint, poll it |
//! | `POST /jobs/:jobid/savepoints`, `GET /jobs/:jobid/savepoints/:triggerid` | trigger a savepoint, poll it |
//! | `POST /jobs/:jobid/stop` | stop with a savepoint |
//! | `POST /savepoint-disposal`, `GET /savepoint-disposal/:triggerid` | dispose a savepoint, poll it |
//! | `PATCH /jobs/:jobid?mode=cancel` | cancel |
//!
//! Anything else is answered as Flink does: `404 {"errors": ["Not found: <path>"]}`, or
//! `405` for a known path with another method — never an empty body, which Flink's CLI
//! cannot read.
//!
//! It binds to loopback unless `rest.bind-address` says otherwise; what it enforces on every
//! request (token, body size, savepoint roots) is in [`super::security`].

pub mod model;
pub mod taskmanagers;

use super::info::{CheckpointStatus, JobInfo};
use super::security::RestSecurity;
use super::{JobCommand, StopKind};
use crate::checkpoint::metadata::{load_snapshot, SnapshotKind};
use crate::config::{keys, Configuration};
use crate::sync::LockExt;
use crate::Result;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossbeam_channel::Sender;
use model::{
    AsyncOperation, CheckpointInfo, CheckpointTriggerRequest, CheckpointType, ClusterOverview,
    DisposalInfo, ErrorResponse, FailureCause, JobIdWithStatus, JobIdsWithStatus, JobsOverview,
    SavepointDisposalRequest, SavepointFormat, SavepointInfo, SavepointTriggerRequest,
    StopWithSavepointRequest, TriggerResponse,
};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

struct Job {
    info: Arc<Mutex<JobInfo>>,
    commands: Sender<JobCommand>,
}

/// An asynchronous operation a client polls by its trigger id.
enum Trigger {
    /// A savepoint of job `job`: its `file:` location, or why it failed.
    Savepoint {
        job: String,
        result: Option<std::result::Result<String, String>>,
    },
    /// A manual checkpoint of job `job`: its id once the job manager triggered it (then the
    /// job's checkpoint statistics say how it went), or why it was not triggered.
    Checkpoint {
        job: String,
        id: Option<std::result::Result<u64, String>>,
    },
    /// A savepoint disposal: done, or why not.
    Disposal {
        result: Option<std::result::Result<(), String>>,
    },
}

struct TriggerEntry {
    trigger: Trigger,
    /// Its result was fetched by a client at least once.
    reported: bool,
}

type Triggers = Arc<Mutex<HashMap<String, TriggerEntry>>>;

/// The jobs a REST server answers for.
#[derive(Clone)]
pub struct Registry {
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
    triggers: Triggers,
    conf: Arc<Configuration>,
    security: RestSecurity,
}

impl Registry {
    /// An empty registry serving `conf` on `GET /config`, secured as `conf` says
    /// (`rest.auth.token`, `rest.savepoint.allowed-roots`).
    pub fn new(conf: Configuration) -> Result<Self> {
        Ok(Registry {
            jobs: Arc::default(),
            triggers: Arc::default(),
            security: RestSecurity::from_config(&conf)?,
            conf: Arc::new(conf),
        })
    }

    /// Adds a job.
    pub fn add(&self, job_id: &str, info: Arc<Mutex<JobInfo>>, commands: Sender<JobCommand>) {
        self.jobs
            .lock_ok()
            .insert(job_id.to_string(), Job { info, commands });
    }

    fn info(&self, id: &str) -> Option<JobInfo> {
        let jobs = self.jobs.lock_ok();
        jobs.get(id).map(|j| j.info.lock_ok().clone())
    }

    fn all(&self) -> Vec<JobInfo> {
        let jobs = self.jobs.lock_ok();
        jobs.values().map(|j| j.info.lock_ok().clone()).collect()
    }

    /// Savepoint and disposal results no client has fetched yet.
    fn unreported(&self) -> usize {
        let t = self.triggers.lock_ok();
        t.values()
            .filter(|t| !t.reported && !matches!(t.trigger, Trigger::Checkpoint { .. }))
            .count()
    }

    fn commands(&self, id: &str) -> Option<Sender<JobCommand>> {
        self.jobs.lock_ok().get(id).map(|j| j.commands.clone())
    }

    fn insert_trigger(&self, trigger: Trigger) -> String {
        let id = new_trigger_id();
        self.triggers.lock_ok().insert(
            id.clone(),
            TriggerEntry {
                trigger,
                reported: false,
            },
        );
        id
    }
}

fn new_trigger_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A running REST server; stops when dropped.
pub struct RestServer {
    addr: SocketAddr,
    registry: Registry,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RestServer {
    /// Binds `addr` and serves `registry` on a thread of its own.
    pub fn start(addr: SocketAddr, registry: Registry) -> Result<Self> {
        registry.security.check_bind(&addr)?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| crate::anyhow!("cannot bind the REST endpoint to {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = registry.clone();
        let thread = std::thread::Builder::new()
            .name("floe-rest".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start the REST runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = router(served);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })?;
        Ok(RestServer {
            addr: local,
            registry,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Keeps serving until every savepoint result was fetched once, for at most `max`: a
    /// job stopped with a savepoint ends right away, and the client polling for the
    /// savepoint's path must still get it (Flink keeps results until they are retrieved).
    pub fn linger(&self, max: std::time::Duration) {
        let deadline = std::time::Instant::now() + max;
        while self.registry.unreported() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(registry: Registry) -> Router {
    // Flink's REST client calls the versioned paths (`/v1/...`); browsers and curl the bare ones.
    let security = registry.security.clone();
    security
        .protect(with_flink_fallbacks(
            Router::new().nest("/v1", routes()).merge(routes()),
        ))
        .with_state(registry)
}

/// `router` answering unknown paths (404) and methods (405) with Flink's error body.
pub fn with_flink_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|uri: Uri| async move {
            error(StatusCode::NOT_FOUND, format!("Not found: {}", uri.path()))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Method not allowed: {method} {}", uri.path()),
            )
        })
}

fn routes() -> Router<Registry> {
    Router::new()
        .route("/overview", get(overview))
        .route("/config", get(config))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{jobid}", get(job).patch(job_patch))
        .route("/jobs/{jobid}/exceptions", get(exceptions))
        .route(
            "/jobs/{jobid}/checkpoints",
            get(checkpoints).post(checkpoint_trigger),
        )
        .route("/jobs/{jobid}/checkpoints/config", get(checkpoints_config))
        .route(
            "/jobs/{jobid}/checkpoints/{triggerid}",
            get(checkpoint_status),
        )
        .route("/jobs/{jobid}/savepoints", post(savepoint))
        .route(
            "/jobs/{jobid}/savepoints/{triggerid}",
            get(savepoint_status),
        )
        .route("/jobs/{jobid}/stop", post(stop))
        .route("/savepoint-disposal", post(disposal))
        .route("/savepoint-disposal/{triggerid}", get(disposal_status))
}

/// Flink's error answer, `{"errors": [msg]}` with `code`.
pub fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ErrorResponse::new(msg))).into_response()
}

/// The answer for a job id no job has: 400 when it is not a job id at all, as Flink's
/// `JobIDPathParameter` refuses it, else 404.
fn not_found(id: &str) -> Response {
    match id.parse::<crate::JobId>() {
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(_) => error(StatusCode::NOT_FOUND, format!("Job {id} not found")),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn overview(State(r): State<Registry>) -> Json<ClusterOverview> {
    let now = now_ms();
    let all: Vec<_> = r.all().iter().map(|i| i.overview(now)).collect();
    Json(ClusterOverview::of(&all))
}

async fn config(State(r): State<Registry>) -> Json<model::DashboardConfig> {
    let configuration = r
        .conf
        .iter()
        .map(|(k, v)| model::ConfigEntry {
            key: k.to_string(),
            value: if k == keys::REST_AUTH_TOKEN.name() {
                "******"
            } else {
                v
            }
            .to_string(),
        })
        .collect();
    Json(dashboard_config(configuration))
}

/// The dashboard configuration with `configuration`'s entries.
pub fn dashboard_config(configuration: Vec<model::ConfigEntry>) -> model::DashboardConfig {
    model::DashboardConfig {
        refresh_interval: 3000,
        timezone_name: "UTC".into(),
        timezone_offset: 0,
        flink_version: model::VERSION.into(),
        flink_revision: String::new(),
        features: model::Features {
            web_submit: false,
            web_cancel: true,
            web_rescale: false,
            web_history: false,
        },
        configuration,
    }
}

async fn jobs(State(r): State<Registry>) -> Json<JobIdsWithStatus> {
    Json(JobIdsWithStatus {
        jobs: r
            .all()
            .iter()
            .map(|i| JobIdWithStatus {
                id: i.job_id.clone(),
                status: i.status,
            })
            .collect(),
    })
}

async fn jobs_overview(State(r): State<Registry>) -> Json<JobsOverview> {
    let now = now_ms();
    Json(JobsOverview {
        jobs: r.all().iter().map(|i| i.overview(now)).collect(),
    })
}

async fn job(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    match r.info(&id) {
        Some(i) => Json(i.details(now_ms())).into_response(),
        None => not_found(&id),
    }
}

#[derive(serde::Deserialize)]
struct PatchQuery {
    mode: Option<String>,
}

async fn job_patch(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query<PatchQuery>,
) -> Response {
    let Some(tx) = r.commands(&id) else {
        return not_found(&id);
    };
    match q.mode.as_deref() {
        None | Some("cancel") => {
            let _ = tx.send(JobCommand::Cancel);
            (StatusCode::ACCEPTED, Json(model::Empty {})).into_response()
        }
        Some(m) => error(
            StatusCode::BAD_REQUEST,
            format!("unsupported mode '{m}': only 'cancel' is supported"),
        ),
    }
}

async fn exceptions(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    match r.info(&id) {
        Some(i) => Json(i.exceptions_info()).into_response(),
        None => not_found(&id),
    }
}

async fn checkpoints(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    match r.info(&id) {
        Some(i) => Json(i.checkpoint_statistics()).into_response(),
        None => not_found(&id),
    }
}

async fn checkpoints_config(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    let Some(i) = r.info(&id) else {
        return not_found(&id);
    };
    match i.checkpoint_config_info() {
        Some(c) => Json(c).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "Checkpointing is not enabled for this job",
        ),
    }
}

/// A request body of type `T`; an empty body is `T`'s default. Errors are messages for a
/// 400 response.
fn body_of<T: DeserializeOwned + Default>(body: &str) -> std::result::Result<T, String> {
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(body).map_err(|e| format!("Request body is not valid JSON: {e}"))
}

fn accepted(request_id: String) -> Response {
    (StatusCode::ACCEPTED, Json(TriggerResponse { request_id })).into_response()
}

fn start_savepoint(
    r: &Registry,
    id: &str,
    target: Option<PathBuf>,
    stop: Option<StopKind>,
) -> Response {
    let Some(tx) = r.commands(id) else {
        return not_found(id);
    };
    let (reply, rx) = crossbeam_channel::bounded(1);
    let cmd = JobCommand::TriggerSavepoint {
        target,
        stop,
        reply,
    };
    if tx.send(cmd).is_err() {
        return error(
            StatusCode::CONFLICT,
            format!("Job {id} is no longer running"),
        );
    }
    let trigger_id = r.insert_trigger(Trigger::Savepoint {
        job: id.to_string(),
        result: None,
    });
    let triggers = Arc::clone(&r.triggers);
    let tid = trigger_id.clone();
    std::thread::spawn(move || {
        let result = match rx.recv() {
            Ok(Ok(p)) => Ok(model::file_url(&p)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the job ended before the savepoint completed".into()),
        };
        if let Some(TriggerEntry {
            trigger: Trigger::Savepoint { result: r, .. },
            ..
        }) = triggers.lock_ok().get_mut(&tid)
        {
            *r = Some(result);
        }
    });
    accepted(trigger_id)
}

/// The savepoint target of a request: `None` uses the configured default, required when
/// no default savepoint directory is configured. Errors are messages for a 400 response.
fn savepoint_target(
    r: &Registry,
    target: Option<&str>,
    key: &str,
    format: SavepointFormat,
) -> std::result::Result<Option<PathBuf>, String> {
    if format == SavepointFormat::Native {
        return Err("Savepoint format NATIVE is not supported: Floe writes only canonical savepoints (its state backend has no native format). Use formatType CANONICAL (flink savepoint -type canonical).".into());
    }
    let target = target.map(|t| r.security.check_target(t)).transpose()?;
    if target.is_none() && !r.conf.is_set(keys::SAVEPOINT_DIRECTORY) {
        return Err(format!(
            "Config key [{}] is not set. Property [{key}] must be provided.",
            keys::SAVEPOINT_DIRECTORY
        ));
    }
    Ok(target)
}

async fn savepoint(State(r): State<Registry>, Path(id): Path<String>, body: String) -> Response {
    let req = match body_of::<SavepointTriggerRequest>(&body) {
        Ok(req) => req,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match savepoint_target(
        &r,
        req.target_directory.as_deref(),
        "target-directory",
        req.format_type,
    ) {
        Ok(target) => start_savepoint(&r, &id, target, req.cancel_job.then_some(StopKind::Cancel)),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

async fn stop(State(r): State<Registry>, Path(id): Path<String>, body: String) -> Response {
    let req = match body_of::<StopWithSavepointRequest>(&body) {
        Ok(req) => req,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if req.drain {
        return error(
            StatusCode::BAD_REQUEST,
            "Stop with drain is not supported: draining sends MAX_WATERMARK to fire every event-time timer and window before the savepoint, and Floe has no event time yet. Stop without --drain.",
        );
    }
    match savepoint_target(
        &r,
        req.target_directory.as_deref(),
        "targetDirectory",
        req.format_type,
    ) {
        Ok(target) => start_savepoint(&r, &id, target, Some(StopKind::Stop)),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

/// The poll answer of a trigger that is not there (or not of this kind, or not this job's).
fn no_trigger(what: &str, tid: &str, job: Option<&str>) -> Response {
    let of = job.map(|j| format!(" for job {j}")).unwrap_or_default();
    error(
        StatusCode::NOT_FOUND,
        format!("There is no {what} operation with triggerId={tid}{of}."),
    )
}

async fn savepoint_status(
    State(r): State<Registry>,
    Path((id, tid)): Path<(String, String)>,
) -> Response {
    if r.info(&id).is_none() {
        return not_found(&id);
    }
    let mut triggers = r.triggers.lock_ok();
    let Some(entry) = triggers.get_mut(&tid) else {
        return no_trigger("savepoint", &tid, Some(&id));
    };
    let Trigger::Savepoint { job, result } = &entry.trigger else {
        return no_trigger("savepoint", &tid, Some(&id));
    };
    if *job != id {
        return no_trigger("savepoint", &tid, Some(&id));
    }
    let Some(result) = result else {
        return Json(AsyncOperation::<SavepointInfo>::in_progress()).into_response();
    };
    entry.reported = true;
    Json(AsyncOperation::completed(match result {
        Ok(location) => SavepointInfo {
            location: Some(location.clone()),
            failure_cause: None,
        },
        Err(msg) => SavepointInfo {
            location: None,
            failure_cause: Some(FailureCause::new(msg.clone())),
        },
    }))
    .into_response()
}

async fn checkpoint_trigger(
    State(r): State<Registry>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let req = match body_of::<CheckpointTriggerRequest>(&body) {
        Ok(req) => req,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if req.checkpoint_type == CheckpointType::Incremental {
        return error(
            StatusCode::BAD_REQUEST,
            "Incremental checkpoints are not supported: Floe's state backend takes full checkpoints only. Use checkpointType CONFIGURED or FULL.",
        );
    }
    let Some(tx) = r.commands(&id) else {
        return not_found(&id);
    };
    let (reply, rx) = crossbeam_channel::bounded(1);
    if tx.send(JobCommand::TriggerCheckpoint { reply }).is_err() {
        return error(
            StatusCode::CONFLICT,
            format!("Job {id} is no longer running"),
        );
    }
    let trigger_id = r.insert_trigger(Trigger::Checkpoint {
        job: id.clone(),
        id: None,
    });
    let triggers = Arc::clone(&r.triggers);
    let tid = trigger_id.clone();
    std::thread::spawn(move || {
        let triggered = match rx.recv() {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the job ended before the checkpoint was triggered".into()),
        };
        if let Some(e) = triggers.lock_ok().get_mut(&tid) {
            if let Trigger::Checkpoint { id, .. } = &mut e.trigger {
                *id = Some(triggered);
            }
        }
    });
    accepted(trigger_id)
}

async fn checkpoint_status(
    State(r): State<Registry>,
    Path((id, tid)): Path<(String, String)>,
) -> Response {
    let Some(info) = r.info(&id) else {
        return not_found(&id);
    };
    let triggered = {
        let mut triggers = r.triggers.lock_ok();
        match triggers.get_mut(&tid) {
            Some(TriggerEntry {
                trigger: Trigger::Checkpoint { job, id: triggered },
                reported,
            }) if *job == id => {
                *reported = true;
                triggered.clone()
            }
            _ => return no_trigger("checkpoint", &tid, Some(&id)),
        }
    };
    let failed = |msg: String| {
        Json(AsyncOperation::completed(CheckpointInfo {
            checkpoint_id: None,
            failure_cause: Some(FailureCause::new(msg)),
        }))
        .into_response()
    };
    let checkpoint = match triggered {
        None => return Json(AsyncOperation::<CheckpointInfo>::in_progress()).into_response(),
        Some(Err(msg)) => return failed(msg),
        Some(Ok(checkpoint)) => checkpoint,
    };
    match info.checkpoint_status(checkpoint).map(|c| c.status) {
        Some(CheckpointStatus::Completed) => Json(AsyncOperation::completed(CheckpointInfo {
            checkpoint_id: Some(checkpoint),
            failure_cause: None,
        }))
        .into_response(),
        Some(CheckpointStatus::Failed) => failed(format!(
            "Checkpoint {checkpoint} failed: {}",
            info.checkpoint_status(checkpoint)
                .and_then(|c| c.failure_message.clone())
                .unwrap_or_default()
        )),
        Some(CheckpointStatus::InProgress) if !info.status.is_terminal() => {
            Json(AsyncOperation::<CheckpointInfo>::in_progress()).into_response()
        }
        _ => failed(format!(
            "Checkpoint {checkpoint} did not complete (the job is {})",
            info.status
        )),
    }
}

/// Why a savepoint cannot be disposed.
#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    /// The path is not a snapshot Floe can read (no `_metadata`, or one that does not parse).
    #[error("'{path}' is not a savepoint: {cause}; refusing to delete it")]
    NotASnapshot {
        /// What was given.
        path: String,
        /// Why it is not one.
        cause: String,
    },
    /// A checkpoint belongs to its job and its retention, not to the user.
    #[error("'{path}' is a checkpoint, not a savepoint: checkpoints are owned by their job; refusing to dispose it")]
    Checkpoint {
        /// What was given.
        path: String,
    },
    /// Deleting it failed.
    #[error("cannot dispose savepoint {}: {source}", dir.display())]
    Remove {
        /// The savepoint directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Disposes the savepoint at `path` (its directory or its `_metadata`): deletes the
/// directory, but only when it is a savepoint, i.e. has a `_metadata` that parses and says
/// so — never any other directory. Returns the directory deleted.
pub fn dispose_savepoint(path: &std::path::Path) -> std::result::Result<PathBuf, DisposeError> {
    let shown = path.display().to_string();
    let snap = crate::storage::Location::from_path(path)
        .and_then(load_snapshot)
        .map_err(|e| DisposeError::NotASnapshot {
            path: shown.clone(),
            cause: format!("{e:#}"),
        })?;
    if snap.metadata.kind != SnapshotKind::Savepoint {
        return Err(DisposeError::Checkpoint { path: shown });
    }
    match &snap.dir {
        crate::storage::Location::Local(d) => {
            std::fs::remove_dir_all(d).map_err(|source| DisposeError::Remove {
                dir: d.clone(),
                source,
            })?;
            Ok(d.clone())
        }
        o => {
            // Every object under the savepoint's prefix.
            crate::storage::delete_all(o).map_err(|e| DisposeError::Remove {
                dir: PathBuf::from(o.to_string()),
                source: std::io::Error::other(format!("{e:#}")),
            })?;
            Ok(PathBuf::from(o.to_string()))
        }
    }
}

/// Starts disposing the savepoint a `POST /savepoint-disposal` names, checked against the
/// endpoint's `security` like a savepoint target; returns the answer and the trigger to
/// record. Shared by the job manager and the session cluster.
fn start_disposal(security: &RestSecurity, body: &str, triggers: &Triggers) -> Response {
    let req: SavepointDisposalRequest = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Request body must be {{\"savepoint-path\": \"<path>\"}}: {e}"),
            )
        }
    };
    let path = match security.check_target(&req.savepoint_path) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, format!("savepoint-path: {m}")),
    };
    let tid = new_trigger_id();
    triggers.lock_ok().insert(
        tid.clone(),
        TriggerEntry {
            trigger: Trigger::Disposal { result: None },
            reported: false,
        },
    );
    let triggers = Arc::clone(triggers);
    let t = tid.clone();
    std::thread::spawn(move || {
        let result = dispose_savepoint(&path)
            .map(|dir| tracing::info!("Disposed savepoint {}.", dir.display()))
            .map_err(|e| e.to_string());
        if let Some(e) = triggers.lock_ok().get_mut(&t) {
            e.trigger = Trigger::Disposal {
                result: Some(result),
            };
        }
    });
    accepted(tid)
}

fn disposal_answer(triggers: &Triggers, tid: &str) -> Response {
    let mut triggers = triggers.lock_ok();
    let Some(entry) = triggers.get_mut(tid) else {
        return no_trigger("savepoint disposal", tid, None);
    };
    let Trigger::Disposal { result } = &entry.trigger else {
        return no_trigger("savepoint disposal", tid, None);
    };
    let Some(result) = result else {
        return Json(AsyncOperation::<DisposalInfo>::in_progress()).into_response();
    };
    entry.reported = true;
    Json(AsyncOperation::completed(DisposalInfo {
        failure_cause: result.clone().err().map(FailureCause::new),
    }))
    .into_response()
}

async fn disposal(State(r): State<Registry>, body: String) -> Response {
    start_disposal(&r.security, &body, &r.triggers)
}

async fn disposal_status(State(r): State<Registry>, Path(tid): Path<String>) -> Response {
    disposal_answer(&r.triggers, &tid)
}

/// Savepoint disposal for an endpoint that runs no job (the session cluster):
/// `POST /savepoint-disposal` and `GET /savepoint-disposal/:triggerid`, as a job manager
/// serves them.
#[derive(Clone)]
pub struct Disposals {
    security: RestSecurity,
    triggers: Triggers,
}

impl Disposals {
    /// Disposals checked against `security`.
    pub fn new(security: RestSecurity) -> Self {
        Disposals {
            security,
            triggers: Arc::default(),
        }
    }

    /// The two routes, for any router state.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let (post_to, get_from) = (self.clone(), self.clone());
        Router::new()
            .route(
                "/savepoint-disposal",
                post(move |body: String| async move {
                    start_disposal(&post_to.security, &body, &post_to.triggers)
                }),
            )
            .route(
                "/savepoint-disposal/{triggerid}",
                get(move |Path(tid): Path<String>| async move {
                    disposal_answer(&get_from.triggers, &tid)
                }),
            )
    }
}
