//! The REST requests Flink 2.3's CLI makes (`flink checkpoint`, `savepoint -d`, `stop`,
//! `cancel -s`, ...) against a Floe session cluster, through the real `floe` binary and a
//! real job binary, without Flink (bench/flink/flink-cli-check.sh runs Flink's CLI itself):
//! Flink's error bodies for unknown routes and methods, manual checkpoints, savepoint
//! disposal that deletes savepoints and nothing else, options Floe cannot honour refused
//! with a reason, and snapshot paths as absolute `file:` URLs.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{cli, http, job_binary, source, wait_until, SessionCluster};

/// Polls `path` at `addr` until its operation completed; returns the operation.
fn poll(addr: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, v) = http(addr, "GET", path, None);
        assert_eq!(code, 200, "{path}: {v}");
        if v["status"]["id"] == "COMPLETED" {
            return v["operation"].clone();
        }
        assert_eq!(v["status"]["id"], "IN_PROGRESS", "{v}");
        assert!(Instant::now() < deadline, "{path} did not complete");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Triggers `POST path` with `body`; returns the trigger id.
fn trigger(addr: &str, path: &str, body: Value) -> String {
    let (code, v) = http(addr, "POST", path, Some(&body.to_string()));
    assert_eq!(code, 202, "{path}: {v}");
    v["request-id"].as_str().unwrap().to_string()
}

fn first_error(v: &Value) -> &str {
    v["errors"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no errors in {v}"))
}

/// Disposes `path` over REST; returns the failure cause, `None` when it was disposed.
fn dispose(addr: &str, path: &str) -> Option<String> {
    let tid = trigger(
        addr,
        "/savepoint-disposal",
        json!({ "savepoint-path": path }),
    );
    let op = poll(addr, &format!("/savepoint-disposal/{tid}"));
    op["failure-cause"]["stack-trace"]
        .as_str()
        .map(str::to_string)
}

fn running_with_a_checkpoint(c: &SessionCluster, ck: &Path) -> String {
    let id = c.submit(source(b"1 2\n1 4\n"), ck, &[]);
    wait_until("a checkpoint completes", || {
        let (_, v) = http(&c.addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
        v["counts"]["completed"].as_u64().unwrap_or(0) >= 1
    });
    id
}

#[test]
fn unknown_routes_and_methods_answer_with_flink_error_bodies() {
    let c = SessionCluster::start();
    let ck = tempfile::tempdir().unwrap();
    let id = running_with_a_checkpoint(&c, ck.path());
    for path in ["/nope", "/v1/nope", &format!("/jobs/{id}/nope")] {
        let (code, v) = http(&c.addr, "GET", path, None);
        assert_eq!(code, 404, "{path}: {v}");
        assert!(first_error(&v).starts_with("Not found: "), "{v}");
    }
    for (method, path) in [
        ("DELETE", "/jobs/overview".to_string()),
        ("PUT", format!("/jobs/{id}/checkpoints")),
        ("POST", format!("/jobs/{id}/exceptions")),
    ] {
        let (code, v) = http(&c.addr, method, &path, Some("{}"));
        assert_eq!(code, 405, "{method} {path}: {v}");
        assert!(first_error(&v).starts_with("Method not allowed"), "{v}");
    }
}

#[test]
fn manual_checkpoints_and_refused_options() {
    let c = SessionCluster::start();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let id = running_with_a_checkpoint(&c, ck.path());

    // flink checkpoint -full
    let tid = trigger(
        &c.addr,
        &format!("/v1/jobs/{id}/checkpoints"),
        json!({ "checkpointType": "FULL" }),
    );
    let op = poll(&c.addr, &format!("/v1/jobs/{id}/checkpoints/{tid}"));
    let n = op["checkpointId"]
        .as_u64()
        .unwrap_or_else(|| panic!("{op}"));
    let (_, cks) = http(&c.addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
    let h = cks["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == n)
        .unwrap_or_else(|| panic!("checkpoint {n} in {cks}"));
    assert_eq!(h["status"], "COMPLETED", "{h}");
    assert_eq!(h["is_savepoint"], false, "{h}");
    let path = h["external_path"].as_str().unwrap();
    assert!(
        path.starts_with(&format!("file:{}/", ck.path().display())),
        "{h}"
    );
    // The floe verb.
    let (code, out, err) = cli(&["checkpoint", "-m", &c.addr, &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("Checkpoint ")
                && l.ends_with(&format!(" for job {id} completed."))),
        "{out}"
    );
    let (code, v) = http(
        &c.addr,
        "POST",
        &format!("/jobs/{id}/checkpoints"),
        Some(r#"{"checkpointType":"INCREMENTAL"}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        first_error(&v).contains("Incremental checkpoints are not supported"),
        "{v}"
    );

    // What Floe cannot do is refused with the reason, never ignored.
    let target = sp.path().display().to_string();
    let (code, v) = http(
        &c.addr,
        "POST",
        &format!("/jobs/{id}/savepoints"),
        Some(&json!({ "target-directory": target, "formatType": "NATIVE" }).to_string()),
    );
    assert_eq!(code, 400, "{v}");
    assert!(first_error(&v).contains("NATIVE is not supported"), "{v}");
    let (code, v) = http(
        &c.addr,
        "POST",
        &format!("/jobs/{id}/stop"),
        Some(&json!({ "targetDirectory": target, "drain": true }).to_string()),
    );
    assert_eq!(code, 400, "{v}");
    assert!(first_error(&v).contains("drain is not supported"), "{v}");
    let (code, _, err) = cli(&["stop", "--drain", "-p", &target, "-m", &c.addr, &id]);
    assert_eq!(code, 1);
    assert!(err.contains("no event time"), "{err}");
    assert_eq!(c.state(&id), "RUNNING");
    assert_eq!(
        std::fs::read_dir(sp.path()).unwrap().count(),
        0,
        "nothing was written"
    );

    // flink stop -p
    let tid = trigger(
        &c.addr,
        &format!("/jobs/{id}/stop"),
        json!({ "targetDirectory": target, "drain": false }),
    );
    let op = poll(&c.addr, &format!("/jobs/{id}/savepoints/{tid}"));
    let location = op["location"].as_str().unwrap_or_else(|| panic!("{op}"));
    assert!(
        location.starts_with(&format!("file:{target}/savepoint-")),
        "{op}"
    );
    c.wait_for_state(&id, "FINISHED");

    // A job started from that savepoint says so in `latest.restored`.
    let resumed = c.submit(source(b"1 2\n"), ck.path(), &["-s", location]);
    let mut cks = Value::Null;
    wait_until("the resumed job reports what it restored", || {
        cks = http(
            &c.addr,
            "GET",
            &format!("/jobs/{resumed}/checkpoints"),
            None,
        )
        .1;
        cks["latest"]["restored"].is_object()
    });
    let restored = &cks["latest"]["restored"];
    assert_eq!(restored["external_path"].as_str(), Some(location), "{cks}");
    assert_eq!(restored["is_savepoint"], true, "{cks}");
    assert_eq!(cks["counts"]["restored"], 1, "{cks}");
}

#[test]
fn savepoint_disposal_deletes_savepoints_and_nothing_else() {
    let c = SessionCluster::start();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let id = running_with_a_checkpoint(&c, ck.path());
    let (code, out, err) = cli(&["savepoint", "-m", &c.addr, &id, sp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let location = out
        .lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let dir = PathBuf::from(location.strip_prefix("file:").unwrap());
    assert!(dir.join("_metadata").is_file());

    // Not savepoints: a plain directory, one with a _metadata that does not parse, a
    // checkpoint. Each stays as it was.
    let plain = sp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("keep"), b"x").unwrap();
    let garbage = sp.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("_metadata"), b"not metadata").unwrap();
    let (_, cks) = http(&c.addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
    let chk = PathBuf::from(
        cks["latest"]["completed"]["external_path"]
            .as_str()
            .unwrap()
            .strip_prefix("file:")
            .unwrap(),
    );
    for (what, p) in [
        ("plain", &plain),
        ("garbage", &garbage),
        ("checkpoint", &chk),
    ] {
        let cause = dispose(&c.addr, &p.display().to_string())
            .unwrap_or_else(|| panic!("the {what} directory was disposed"));
        assert!(cause.contains("refusing"), "{what}: {cause}");
        assert!(p.is_dir(), "{what} directory {} is gone", p.display());
    }
    assert!(plain.join("keep").is_file());
    let (code, v) = http(
        &c.addr,
        "POST",
        "/savepoint-disposal",
        Some(r#"{"savepoint-path": "relative/sp"}"#),
    );
    assert_eq!(code, 400, "{v}");

    // The savepoint, by the path Floe printed.
    assert_eq!(dispose(&c.addr, &location), None);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(sp.path().is_dir());
}

#[test]
fn a_relative_savepoint_directory_comes_back_absolute_as_a_file_url() {
    // A job binary on its own (per-job mode), its working directory a fresh one, with a
    // relative default savepoint directory and checkpoint directory.
    let cwd = tempfile::tempdir().unwrap();
    let status = cwd.path().join("job.status.json");
    let port = source(b"1 2\n").to_string();
    let mut job = Command::new(job_binary())
        .current_dir(cwd.path())
        .env(floe::jobmanager::announce::STATUS_FILE_ENV, &status)
        .env_remove("FLOE_CONF_DIR")
        .args([
            "-D",
            "rest.port=0",
            "-D",
            "execution.checkpointing.savepoint-dir=sps",
        ])
        .args(["--port", &port, "--checkpoint-dir", "ck"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rest = String::new();
    let mut id = String::new();
    wait_until("the job announces its endpoint", || {
        let a: Option<Value> = std::fs::read(&status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match a {
            Some(a) if a["rest"].is_string() && a["status"] == "RUNNING" => {
                rest = a["rest"].as_str().unwrap().to_string();
                id = a["job_id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    let cwd_abs = cwd.path().canonicalize().unwrap();
    let tid = trigger(&rest, &format!("/jobs/{id}/savepoints"), json!({}));
    let op = poll(&rest, &format!("/jobs/{id}/savepoints/{tid}"));
    let location = op["location"].as_str().unwrap_or_else(|| panic!("{op}"));
    assert!(
        location.starts_with(&format!("file:{}/sps/savepoint-", cwd_abs.display())),
        "{location}"
    );
    assert!(Path::new(location.strip_prefix("file:").unwrap())
        .join("_metadata")
        .is_file());
    wait_until("a checkpoint completes", || {
        let (_, v) = http(&rest, "GET", &format!("/jobs/{id}/checkpoints"), None);
        v["latest"]["completed"]["external_path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("file:{}/ck/{id}/chk-", cwd_abs.display())))
    });
    let (_, v) = http(&rest, "GET", &format!("/jobs/{id}/checkpoints"), None);
    assert_eq!(
        v["latest"]["savepoint"]["external_path"].as_str(),
        Some(location),
        "{v}"
    );
    let _ = job.kill();
    let _ = job.wait();
}
