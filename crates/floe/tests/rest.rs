//! The job manager's REST API over real HTTP on 127.0.0.1, with Flink's paths and fields.

mod common;

use common::http;
use floe::prelude::*;
use std::time::{Duration, Instant};

fn slow_job(env: &StreamEnv) -> CollectHandle<(u64, u64)> {
    env.enable_checkpointing(Duration::from_millis(30));
    env.from_collection((0..4000u64).collect())
        .uid("numbers")
        .map(|v| {
            std::thread::sleep(Duration::from_micros(500));
            (v % 5, v)
        })
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .uid("sums")
        .collect()
}

#[test]
fn flink_rest_paths_for_status_checkpoints_savepoints_and_cancel() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let env = StreamEnv::from_arg_list(["-D", "rest.port=0"]).unwrap();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let _out = slow_job(&env);
    let job = env.execute_async("rest job").unwrap();
    let addr = job
        .rest_address()
        .expect("REST is served when rest.port is set");
    assert!(addr.ip().is_loopback(), "loopback by default");
    let id = job.job_id().to_string();

    let (code, v) = http(addr, "GET", "/jobs", None);
    assert_eq!(code, 200);
    assert_eq!(v["jobs"][0]["id"], id.as_str());
    let (_, v) = http(addr, "GET", "/jobs/overview", None);
    assert_eq!(v["jobs"][0]["name"], "rest job");
    let (_, v) = http(addr, "GET", "/overview", None);
    assert_eq!(v["jobs-running"], 1);
    let (_, v) = http(addr, "GET", &format!("/jobs/{id}"), None);
    assert_eq!(v["state"], "RUNNING");
    assert!(v["timestamps"]["RUNNING"].as_u64().unwrap() > 0);
    let (_, v) = http(addr, "GET", &format!("/jobs/{id}/checkpoints/config"), None);
    assert_eq!(
        (v["mode"].as_str(), v["interval"].as_u64()),
        (Some("exactly_once"), Some(30))
    );
    let (code, _) = http(addr, "GET", "/jobs/00000000000000000000000000000000", None);
    assert_eq!(code, 404);

    // Wait for completed checkpoints in the statistics.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = http(addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
        if v["counts"]["completed"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(v["latest"]["completed"]["status"], "COMPLETED");
            assert!(v["latest"]["completed"]["external_path"]
                .as_str()
                .unwrap()
                .contains("/chk-"));
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }

    // A savepoint without a target and no default directory is refused up front, as in Flink.
    let (code, v) = http(addr, "POST", &format!("/jobs/{id}/savepoints"), Some("{}"));
    assert_eq!(code, 400);
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .contains("Property [target-directory] must be provided"));
    let (code, v) = http(
        addr,
        "POST",
        &format!("/jobs/{id}/savepoints"),
        Some(r#"{"target-directory": "/x/../etc"}"#),
    );
    assert_eq!(code, 400, "{v}");
    let (code, _) = http(
        addr,
        "POST",
        &format!("/jobs/{id}/savepoints"),
        Some("{not json"),
    );
    assert_eq!(code, 400);

    // Trigger and poll a savepoint.
    let body = format!(
        r#"{{"target-directory": "{}", "cancel-job": false}}"#,
        sp.path().display()
    );
    let (code, v) = http(addr, "POST", &format!("/jobs/{id}/savepoints"), Some(&body));
    assert_eq!(code, 202);
    let trigger = v["request-id"].as_str().unwrap().to_string();
    let location = loop {
        let (_, v) = http(
            addr,
            "GET",
            &format!("/jobs/{id}/savepoints/{trigger}"),
            None,
        );
        if v["status"]["id"] == "COMPLETED" {
            break v["operation"]["location"]
                .as_str()
                .expect("a location, not a failure")
                .to_string();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    };
    let dir = location.strip_prefix("file:").unwrap();
    assert!(std::path::Path::new(dir).join("_metadata").is_file());
    let (_, v) = http(addr, "GET", &format!("/jobs/{id}/checkpoints"), None);
    // Flink reports snapshot paths as `file:` URLs, the very form the savepoint status gave
    // (issue 10 item 6: the plain path this asserted before was the defect).
    assert_eq!(v["latest"]["savepoint"]["external_path"], location.as_str());

    // Cancel.
    let (code, _) = http(addr, "PATCH", &format!("/jobs/{id}?mode=cancel"), None);
    assert_eq!(code, 202);
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Canceled);
}
