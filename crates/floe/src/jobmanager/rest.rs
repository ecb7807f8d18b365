//! The job manager's REST API: Flink's REST v1 paths and field names for the subset Floe
//! serves, so Flink's tooling and the `floe` CLI can drive a job.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /overview`, `GET /config` | cluster overview, configuration |
//! | `GET /jobs`, `GET /jobs/overview` | jobs with their status |
//! | `GET /jobs/:jobid`, `GET /jobs/:jobid/exceptions` | one job, its task failures |
//! | `GET /jobs/:jobid/checkpoints`, `GET /jobs/:jobid/checkpoints/config` | checkpoint statistics and settings |
//! | `POST /jobs/:jobid/savepoints`, `GET /jobs/:jobid/savepoints/:triggerid` | trigger a savepoint, poll it |
//! | `POST /jobs/:jobid/stop` | stop with a savepoint |
//! | `PATCH /jobs/:jobid?mode=cancel` | cancel |
//!
//! It binds to loopback unless `rest.bind-address` says otherwise; what it enforces on every
//! request (token, body size, savepoint roots) is in [`super::security`].

use super::info::{CheckpointRecord, JobInfo};
use super::security::RestSecurity;
use super::{JobCommand, StopKind};
use crate::config::{keys, Configuration};
use crate::job::JobStatus;
use crate::sync::LockExt;
use crate::Result;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossbeam_channel::Sender;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

struct Job {
    info: Arc<Mutex<JobInfo>>,
    commands: Sender<JobCommand>,
}

enum Trigger {
    InProgress,
    Completed(String),
    Failed(String),
    /// The result (this response body) was fetched by a client at least once.
    Reported(Value),
}

/// The jobs a REST server answers for.
#[derive(Clone)]
pub struct Registry {
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
    triggers: Arc<Mutex<HashMap<String, Trigger>>>,
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

    /// Savepoint results no client has fetched yet.
    fn unreported(&self) -> usize {
        let t = self.triggers.lock_ok();
        t.values()
            .filter(|t| !matches!(t, Trigger::Reported(_)))
            .count()
    }

    fn commands(&self, id: &str) -> Option<Sender<JobCommand>> {
        self.jobs.lock_ok().get(id).map(|j| j.commands.clone())
    }
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
    let api = routes();
    let security = registry.security.clone();
    security
        .protect(Router::new().nest("/v1", routes()).merge(api))
        .with_state(registry)
}

fn routes() -> Router<Registry> {
    Router::new()
        .route("/overview", get(overview))
        .route("/config", get(config))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{jobid}", get(job).patch(job_patch))
        .route("/jobs/{jobid}/exceptions", get(exceptions))
        .route("/jobs/{jobid}/checkpoints", get(checkpoints))
        .route("/jobs/{jobid}/checkpoints/config", get(checkpoints_config))
        .route("/jobs/{jobid}/savepoints", post(savepoint))
        .route(
            "/jobs/{jobid}/savepoints/{triggerid}",
            get(savepoint_status),
        )
        .route("/jobs/{jobid}/stop", post(stop))
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "errors": [msg.into()] }))).into_response()
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

fn duration(i: &JobInfo) -> u64 {
    i.end_time
        .unwrap_or_else(now_ms)
        .saturating_sub(i.start_time)
}

async fn overview(State(r): State<Registry>) -> Json<Value> {
    let all = r.all();
    let count = |s: JobStatus| all.iter().filter(|i| i.status == s).count();
    let running = all.iter().filter(|i| !i.status.is_terminal()).count();
    let slots: u32 = all
        .iter()
        .filter(|i| !i.status.is_terminal())
        .map(|i| i.parallelism)
        .sum();
    Json(json!({
        "taskmanagers": 1,
        "slots-total": slots,
        "slots-available": 0,
        "jobs-running": running,
        "jobs-finished": count(JobStatus::Finished),
        "jobs-cancelled": count(JobStatus::Canceled),
        "jobs-failed": count(JobStatus::Failed),
        "flink-version": concat!("floe-", env!("CARGO_PKG_VERSION")),
        "flink-commit": "",
    }))
}

async fn config(State(r): State<Registry>) -> Json<Value> {
    let entries: Vec<Value> = r
        .conf
        .iter()
        .map(|(k, v)| {
            let v = if k == keys::REST_AUTH_TOKEN.name() {
                "******"
            } else {
                v
            };
            json!({ "key": k, "value": v })
        })
        .collect();
    Json(json!({
        "refresh-interval": 3000,
        "timezone-name": "UTC",
        "timezone-offset": 0,
        "flink-version": concat!("floe-", env!("CARGO_PKG_VERSION")),
        "flink-revision": "",
        "features": { "web-submit": false, "web-cancel": true, "web-rescale": false, "web-history": false },
        "configuration": entries,
    }))
}

async fn jobs(State(r): State<Registry>) -> Json<Value> {
    let jobs: Vec<Value> = r
        .all()
        .iter()
        .map(|i| json!({ "id": i.job_id, "status": i.status.as_str() }))
        .collect();
    Json(json!({ "jobs": jobs }))
}

fn job_summary(i: &JobInfo) -> Value {
    json!({
        "jid": i.job_id,
        "name": i.name,
        "state": i.status.as_str(),
        "start-time": i.start_time,
        "end-time": i.end_time.map(|t| t as i64).unwrap_or(-1),
        "duration": duration(i),
        "last-modification": i.timestamps.values().max().copied().unwrap_or(i.start_time),
        "job-type": "STREAMING",
        "pending-operators": 0,
        "tasks": {
            "total": i.parallelism, "created": 0, "scheduled": 0, "deploying": 0,
            "running": if i.status == JobStatus::Running { i.parallelism } else { 0 },
            "finished": if i.status == JobStatus::Finished { i.parallelism } else { 0 },
            "canceling": 0,
            "canceled": if i.status == JobStatus::Canceled { i.parallelism } else { 0 },
            "failed": if i.status == JobStatus::Failed { i.parallelism } else { 0 },
            "reconciling": 0, "initializing": 0,
        },
    })
}

async fn jobs_overview(State(r): State<Registry>) -> Json<Value> {
    let jobs: Vec<Value> = r.all().iter().map(job_summary).collect();
    Json(json!({ "jobs": jobs }))
}

async fn job(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    let Some(i) = r.info(&id) else {
        return not_found(&id);
    };
    let timestamps: serde_json::Map<String, Value> = i
        .timestamps
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Json(json!({
        "jid": i.job_id,
        "name": i.name,
        "isStoppable": false,
        "state": i.status.as_str(),
        "job-type": "STREAMING",
        "start-time": i.start_time,
        "end-time": i.end_time.map(|t| t as i64).unwrap_or(-1),
        "duration": duration(&i),
        "maxParallelism": -1,
        "now": now_ms(),
        "timestamps": timestamps,
        "vertices": [],
        "status-counts": {},
        "plan": { "jid": i.job_id, "name": i.name, "type": "STREAMING", "nodes": [] },
    }))
    .into_response()
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
            (StatusCode::ACCEPTED, Json(json!({}))).into_response()
        }
        Some(m) => error(
            StatusCode::BAD_REQUEST,
            format!("unsupported mode '{m}': only 'cancel' is supported"),
        ),
    }
}

async fn exceptions(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    let Some(i) = r.info(&id) else {
        return not_found(&id);
    };
    let entries: Vec<Value> = i
        .exceptions
        .iter()
        .rev()
        .map(|e| {
            json!({
                "exceptionName": "org.apache.flink.runtime.JobException",
                "stacktrace": e.message,
                "timestamp": e.timestamp,
                "taskName": e.task,
                "endpoint": null,
                "taskManagerId": null,
                "failureLabels": {},
                "concurrentExceptions": [],
            })
        })
        .collect();
    let root = i.exceptions.last();
    Json(json!({
        "root-exception": root.map(|e| e.message.clone()),
        "timestamp": root.map(|e| e.timestamp),
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": { "entries": entries, "truncated": false },
    }))
    .into_response()
}

fn checkpoint_json(c: &CheckpointRecord) -> Value {
    json!({
        "className": if c.status == "COMPLETED" { ".CompletedCheckpointStatistics" } else if c.status == "FAILED" { ".FailedCheckpointStatistics" } else { ".PendingCheckpointStatistics" },
        "id": c.id,
        "status": c.status,
        "is_savepoint": c.is_savepoint,
        "savepointFormat": if c.is_savepoint { Value::from("CANONICAL") } else { Value::Null },
        "trigger_timestamp": c.trigger_timestamp,
        "latest_ack_timestamp": c.latest_ack_timestamp,
        "checkpointed_size": c.state_size,
        "state_size": c.state_size,
        "end_to_end_duration": c.end_to_end_duration,
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": 0,
        "num_subtasks": 0,
        "num_acknowledged_subtasks": 0,
        "checkpoint_type": if c.is_savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
        "external_path": c.external_path,
        "discarded": false,
        "failure_message": c.failure_message,
    })
}

async fn checkpoints(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    let Some(i) = r.info(&id) else {
        return not_found(&id);
    };
    let done: Vec<&CheckpointRecord> = i
        .history
        .iter()
        .filter(|c| c.status == "COMPLETED")
        .collect();
    let stat = |f: &dyn Fn(&CheckpointRecord) -> u64| -> Value {
        if done.is_empty() {
            return json!({ "min": 0, "max": 0, "avg": 0 });
        }
        let v: Vec<u64> = done.iter().map(|c| f(c)).collect();
        json!({ "min": v.iter().min(), "max": v.iter().max(), "avg": v.iter().sum::<u64>() / v.len() as u64 })
    };
    let history: Vec<Value> = i.history.iter().rev().map(checkpoint_json).collect();
    Json(json!({
        "counts": {
            "restored": i.restored,
            "total": i.completed + i.failed + i.in_progress(),
            "in_progress": i.in_progress(),
            "completed": i.completed,
            "failed": i.failed,
        },
        "summary": {
            "checkpointed_size": stat(&|c| c.state_size),
            "state_size": stat(&|c| c.state_size),
            "end_to_end_duration": stat(&|c| c.end_to_end_duration),
        },
        "latest": {
            "completed": i.latest_completed.as_ref().map(checkpoint_json),
            "savepoint": i.latest_savepoint.as_ref().map(checkpoint_json),
            "failed": i.latest_failed.as_ref().map(checkpoint_json),
            "restored": i.latest_restored,
        },
        "history": history,
    }))
    .into_response()
}

async fn checkpoints_config(State(r): State<Registry>, Path(id): Path<String>) -> Response {
    let Some(i) = r.info(&id) else {
        return not_found(&id);
    };
    let c = &i.checkpoint_config;
    let Some(interval) = c.interval else {
        return error(
            StatusCode::NOT_FOUND,
            "Checkpointing is not enabled for this job",
        );
    };
    use crate::checkpoint::config::ExternalizedCheckpointRetention as R;
    Json(json!({
        "mode": c.mode.as_str().to_ascii_lowercase(),
        "interval": interval.as_millis() as u64,
        "timeout": c.timeout.as_millis() as u64,
        "min_pause": c.min_pause.as_millis() as u64,
        "max_concurrent": c.max_concurrent,
        "externalization": {
            "enabled": c.retention != R::NoExternalizedCheckpoints,
            "delete_on_cancellation": c.retention != R::RetainOnCancellation,
        },
        "state_backend": "HashMapStateBackend",
        "checkpoint_storage": "FileSystemCheckpointStorage",
        "unaligned_checkpoints": false,
        "tolerable_failed_checkpoints": c.tolerable_failures,
        "aligned_checkpoint_timeout": 0,
        "checkpoints_after_tasks_finish": true,
        "state_changelog_enabled": false,
        "changelog_periodic_materialization_interval": 0,
        "changelog_storage": "",
    }))
    .into_response()
}

fn start_trigger(
    r: &Registry,
    id: &str,
    target: Option<String>,
    stop: Option<StopKind>,
) -> Response {
    let Some(tx) = r.commands(id) else {
        return not_found(id);
    };
    let trigger_id = format!("{:032x}", rand::random::<u128>());
    let (reply, rx) = crossbeam_channel::bounded(1);
    let cmd = JobCommand::TriggerSavepoint {
        target: target.map(std::path::PathBuf::from),
        stop,
        reply,
    };
    if tx.send(cmd).is_err() {
        return error(
            StatusCode::CONFLICT,
            format!("Job {id} is no longer running"),
        );
    }
    r.triggers
        .lock_ok()
        .insert(trigger_id.clone(), Trigger::InProgress);
    let triggers = Arc::clone(&r.triggers);
    let tid = trigger_id.clone();
    std::thread::spawn(move || {
        let t = match rx.recv() {
            Ok(Ok(p)) => Trigger::Completed(format!("file:{}", p.display())),
            Ok(Err(e)) => Trigger::Failed(e.to_string()),
            Err(_) => Trigger::Failed("the job ended before the savepoint completed".into()),
        };
        triggers.lock_ok().insert(tid, t);
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "request-id": trigger_id })),
    )
        .into_response()
}

/// The savepoint target from a request: `None` uses the configured default. Errors are
/// messages for a 400 response.
fn target_of(r: &Registry, body: &Value, key: &str) -> std::result::Result<Option<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(r.security.check_target(s)?.display().to_string())),
        Some(_) => Err(format!("'{key}' must be a string")),
    }
}

fn body_json(body: &str) -> std::result::Result<Value, String> {
    if body.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(body).map_err(|e| format!("Request body is not valid JSON: {e}"))
}

/// Parses a savepoint or stop request: the target directory under `key`, required when no
/// default savepoint directory is configured.
fn savepoint_request(
    r: &Registry,
    body: &str,
    key: &str,
) -> std::result::Result<(Value, Option<String>), String> {
    let body = body_json(body)?;
    let target = target_of(r, &body, key)?;
    if target.is_none() && !r.conf.is_set(keys::SAVEPOINT_DIRECTORY) {
        return Err(format!(
            "Config key [{}] is not set. Property [{key}] must be provided.",
            keys::SAVEPOINT_DIRECTORY
        ));
    }
    Ok((body, target))
}

async fn savepoint(State(r): State<Registry>, Path(id): Path<String>, body: String) -> Response {
    match savepoint_request(&r, &body, "target-directory") {
        Ok((body, target)) => {
            let cancel = body
                .get("cancel-job")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            start_trigger(&r, &id, target, cancel.then_some(StopKind::Cancel))
        }
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

async fn stop(State(r): State<Registry>, Path(id): Path<String>, body: String) -> Response {
    match savepoint_request(&r, &body, "targetDirectory") {
        Ok((_, target)) => start_trigger(&r, &id, target, Some(StopKind::Stop)),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

async fn savepoint_status(
    State(r): State<Registry>,
    Path((id, tid)): Path<(String, String)>,
) -> Response {
    if r.info(&id).is_none() {
        return not_found(&id);
    }
    let mut triggers = r.triggers.lock_ok();
    let body = match triggers.get(&tid) {
        None => {
            return error(
                StatusCode::NOT_FOUND,
                format!("There is no savepoint operation with triggerId={tid} for job {id}."),
            )
        }
        Some(Trigger::InProgress) => {
            return Json(json!({ "status": { "id": "IN_PROGRESS" }, "operation": null }))
                .into_response()
        }
        Some(Trigger::Completed(loc)) => {
            json!({ "status": { "id": "COMPLETED" }, "operation": { "location": loc } })
        }
        Some(Trigger::Failed(msg)) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "failure-cause": { "class": "org.apache.flink.util.FlinkException", "stack-trace": msg, "serialized-throwable": null } },
        }),
        Some(Trigger::Reported(v)) => v.clone(),
    };
    triggers.insert(tid, Trigger::Reported(body.clone()));
    Json(body).into_response()
}
