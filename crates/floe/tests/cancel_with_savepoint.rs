//! Cancel with a savepoint through the job manager's REST API (`POST /jobs/:id/savepoints`
//! with `cancel-job: true`, what `flink cancel -s` sends) ends the job CANCELED, and
//! CANCELED's retention applies; `flink stop` still ends it FINISHED. A job started from a
//! savepoint reports it as `latest.restored`.

mod common;

use common::http;
use floe::prelude::*;
use floe::JobClient;
use std::path::Path;
use std::time::{Duration, Instant};

/// A job that runs for a while (a few seconds), with checkpoints every 30 ms.
fn start(ck: &Path, retention: &str, restore: Option<&str>) -> JobClient {
    let mut args = vec![
        "-D".to_string(),
        "rest.port=0".to_string(),
        "-D".to_string(),
        format!("execution.checkpointing.externalized-checkpoint-retention={retention}"),
    ];
    if let Some(s) = restore {
        args.extend(["-s".to_string(), s.to_string()]);
    }
    let env = StreamEnv::from_arg_list(args).unwrap();
    env.set_checkpoint_storage(ck.to_str().unwrap());
    env.enable_checkpointing(Duration::from_millis(30));
    let _out = env
        .from_collection((0..8000u64).collect())
        .uid("numbers")
        .map(|v| {
            std::thread::sleep(Duration::from_micros(500));
            (v % 5, v)
        })
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .uid("sums")
        .collect();
    env.execute_async("cancel with savepoint").unwrap()
}

/// Waits until the job completed a checkpoint, then triggers a savepoint through REST and
/// waits for its location.
fn savepoint(job: &JobClient, sp: &Path, cancel: bool) -> String {
    let addr = job.rest_address().unwrap();
    let id = job.job_id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while job.info().latest_completed.is_none() {
        assert!(Instant::now() < deadline, "no checkpoint completed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let body = format!(
        r#"{{"target-directory": "{}", "cancel-job": {cancel}}}"#,
        sp.display()
    );
    let (code, v) = http(addr, "POST", &format!("/jobs/{id}/savepoints"), Some(&body));
    assert_eq!(code, 202, "{v}");
    let trigger = v["request-id"].as_str().unwrap().to_string();
    loop {
        let (_, v) = http(
            addr,
            "GET",
            &format!("/jobs/{id}/savepoints/{trigger}"),
            None,
        );
        if v["status"]["id"] == "COMPLETED" {
            return v["operation"]["location"]
                .as_str()
                .unwrap_or_else(|| panic!("a location, not a failure: {v}"))
                .to_string();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn checkpoints_of(ck: &Path, job_id: &str) -> Vec<String> {
    std::fs::read_dir(ck.join(job_id))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("chk-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cancel_job_true_ends_canceled_and_retain_on_cancellation_keeps_the_checkpoints() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let job = start(ck.path(), "RETAIN_ON_CANCELLATION", None);
    let id = job.job_id().to_string();
    let location = savepoint(&job, sp.path(), true);
    let dir = location.strip_prefix("file:").unwrap().to_string();
    assert!(Path::new(&dir).join("_metadata").is_file());
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Canceled, "cancel-job: true cancels");
    assert!(
        !checkpoints_of(ck.path(), &id).is_empty(),
        "RETAIN_ON_CANCELLATION keeps the job's checkpoints"
    );

    // A job started from that savepoint reports what it restored.
    let ck2 = tempfile::tempdir().unwrap();
    let job = start(ck2.path(), "RETAIN_ON_CANCELLATION", Some(&dir));
    let addr = job.rest_address().unwrap();
    let id = job.job_id().to_string();
    // The job manager records the restore when it deploys the tasks.
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v) = http(addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
        if v["counts"]["restored"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let restored = &v["latest"]["restored"];
    assert_eq!(restored["is_savepoint"], true, "{v}");
    assert_eq!(restored["external_path"], location.as_str(), "{v}");
    assert!(restored["id"].as_u64().unwrap() >= 1, "{v}");
    assert!(restored["restore_timestamp"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["counts"]["restored"], 1, "{v}");
    job.cancel();
    assert_eq!(job.wait().unwrap().status, JobStatus::Canceled);
}

#[test]
fn cancel_job_true_with_delete_on_cancellation_deletes_the_checkpoints() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let job = start(ck.path(), "DELETE_ON_CANCELLATION", None);
    let id = job.job_id().to_string();
    let location = savepoint(&job, sp.path(), true);
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Canceled);
    assert!(
        checkpoints_of(ck.path(), &id).is_empty(),
        "deleted on cancellation"
    );
    let dir = location.strip_prefix("file:").unwrap();
    assert!(
        Path::new(dir).join("_metadata").is_file(),
        "the savepoint is the user's"
    );
}

#[test]
fn stop_with_savepoint_still_ends_finished() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let job = start(ck.path(), "RETAIN_ON_CANCELLATION", None);
    let id = job.job_id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while job.info().latest_completed.is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let path = job.stop_with_savepoint(Some(sp.path())).unwrap();
    assert!(path.join("_metadata").is_file());
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    assert!(
        checkpoints_of(ck.path(), &id).is_empty(),
        "FINISHED deletes under RETAIN_ON_CANCELLATION"
    );
}
