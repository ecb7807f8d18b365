//! Ended jobs in a session cluster, through the real `floe` binary and a real job binary:
//! a job that fails before anyone lists it has a complete overview entry (Flink's `flink
//! list` requires every field of `JobDetails`), and ended jobs stay inspectable — details,
//! exceptions, checkpoints — also after the daemon is killed and started again.

use serde_json::Value;
use std::path::Path;

mod common;
use common::{cli, http, source, wait_until, SessionCluster};

/// True once the daemon's registry on disk records the job as ended.
fn recorded_ended(c: &SessionCluster, id: &str) -> bool {
    std::fs::read(c.dir.path().join("jobs").join(format!("{id}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|r| !r["end"].is_null())
}

fn entry<'a>(overview: &'a Value, id: &str) -> &'a Value {
    overview["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["jid"] == id)
        .unwrap_or_else(|| panic!("no entry for {id} in {overview}"))
}

/// What a Flink user sees of the failed and the cancelled job.
fn check_ended_jobs(c: &SessionCluster, failed: &str, cancelled: &str) {
    let (code, overview) = http(&c.addr, "GET", "/jobs/overview", None);
    assert_eq!(code, 200, "{overview}");
    for (id, state, tasks) in [
        (failed, "FAILED", "failed"),
        (cancelled, "CANCELED", "canceled"),
    ] {
        let j = entry(&overview, id);
        assert_eq!(j["state"], state, "{j}");
        assert_eq!(j["name"], "s5", "{j}");
        for field in [
            "start-time",
            "end-time",
            "duration",
            "last-modification",
            "pending-operators",
        ] {
            assert!(j[field].is_i64() || j[field].is_u64(), "{field} of {j}");
        }
        let (start, end) = (
            j["start-time"].as_i64().unwrap(),
            j["end-time"].as_i64().unwrap(),
        );
        assert!(start > 0 && end >= start, "{j}");
        assert_eq!(j["duration"].as_i64(), Some(end - start), "{j}");
        assert_eq!(j["tasks"][tasks], j["tasks"]["total"], "{j}");
        assert!(j["tasks"]["total"].as_u64().unwrap() >= 1, "{j}");
        assert_eq!(j["tasks"]["running"], 0, "{j}");
    }
    let (code, out, err) = cli(&["list", "-a", "-m", &c.addr]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains(failed))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.ends_with(&format!(" : {failed} : s5 (FAILED)")) && !line.starts_with("01.01.1970"),
        "{out}"
    );

    // Why it failed, and its details.
    let (code, ex) = http(&c.addr, "GET", &format!("/jobs/{failed}/exceptions"), None);
    assert_eq!(code, 200, "{ex}");
    assert!(
        ex["root-exception"]
            .as_str()
            .unwrap()
            .contains("not a number"),
        "{ex}"
    );
    assert!(
        !ex["exceptionHistory"]["entries"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{ex}"
    );
    let (code, job) = http(&c.addr, "GET", &format!("/jobs/{failed}"), None);
    assert_eq!(code, 200, "{job}");
    assert_eq!(
        (job["name"].as_str(), job["state"].as_str()),
        (Some("s5"), Some("FAILED"))
    );
    assert!(job["end-time"].as_i64().unwrap() > 0, "{job}");
    assert!(job["timestamps"]["FAILED"].as_u64().is_some(), "{job}");
    let (code, cks) = http(&c.addr, "GET", &format!("/jobs/{failed}/checkpoints"), None);
    assert_eq!(code, 200, "{cks}");

    // Which retained checkpoint to resume the cancelled job from.
    let (code, cks) = http(
        &c.addr,
        "GET",
        &format!("/jobs/{cancelled}/checkpoints"),
        None,
    );
    assert_eq!(code, 200, "{cks}");
    assert!(cks["counts"]["completed"].as_u64().unwrap() >= 1, "{cks}");
    let path = cks["latest"]["completed"]["external_path"]
        .as_str()
        .unwrap();
    let dir = path
        .strip_prefix("file:")
        .unwrap_or_else(|| panic!("{path}"));
    assert!(
        dir.contains("/chk-") && Path::new(dir).join("_metadata").is_file(),
        "{cks}"
    );
    let (code, conf) = http(
        &c.addr,
        "GET",
        &format!("/jobs/{cancelled}/checkpoints/config"),
        None,
    );
    assert_eq!(
        (code, conf["interval"].as_u64()),
        (200, Some(1000)),
        "{conf}"
    );
    let (code, out, err) = cli(&["checkpoints", "-m", &c.addr, cancelled]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("file:{dir}")), "{out}");
}

#[test]
fn ended_jobs_have_complete_entries_and_stay_inspectable_across_a_daemon_restart() {
    let c = SessionCluster::start();
    let ck = tempfile::tempdir().unwrap();
    let failed = c.submit(
        source(b"1 2\nnot a number\n"),
        ck.path(),
        &["-D", "restart-strategy.type=none"],
    );
    let cancelled = c.submit(source(b"1 2\n1 4\n"), ck.path(), &[]);
    // Nobody lists anything while the first job fails.
    wait_until("the daemon records the failed job's end", || {
        recorded_ended(&c, &failed)
    });
    wait_until("the other job completes a checkpoint", || {
        let (_, v) = http(
            &c.addr,
            "GET",
            &format!("/jobs/{cancelled}/checkpoints"),
            None,
        );
        v["counts"]["completed"].as_u64().unwrap_or(0) >= 1
    });
    let (code, out, err) = cli(&["cancel", "-m", &c.addr, &cancelled]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("the daemon records the cancelled job's end", || {
        recorded_ended(&c, &cancelled)
    });
    check_ended_jobs(&c, &failed, &cancelled);

    // A daemon killed and started again answers from its registry on disk.
    c.kill_daemon();
    c.start_daemon();
    check_ended_jobs(&c, &failed, &cancelled);
}
