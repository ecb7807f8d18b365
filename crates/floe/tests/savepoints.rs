//! Savepoints through `JobClient`: taken on demand while the job runs, owned by the user,
//! self-contained and relocatable; stop-with-savepoint ends the job FINISHED with nothing
//! processed after the savepoint.

mod common;

use floe::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const N: u64 = 3000;

/// numbers 0..N, slowly, summed per key (v % 10).
fn job(env: &StreamEnv) -> CollectHandle<(u64, u64)> {
    env.enable_checkpointing(Duration::from_millis(50));
    env.from_collection((0..N).collect())
        .uid("numbers")
        .map(|v| {
            std::thread::sleep(Duration::from_micros(300));
            (v % 10, v)
        })
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .uid("sums")
        .collect()
}

fn exact() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for v in 0..N {
        *m.entry(v % 10).or_insert(0) += v;
    }
    m
}

fn wait_for_output(out: &CollectHandle<(u64, u64)>, n: usize) {
    common::wait_until(Duration::from_secs(30), "no output", || {
        out.snapshot().len() >= n
    });
}

fn is_savepoint_name(p: &Path, job_id: &str) -> bool {
    let name = p.file_name().unwrap().to_str().unwrap();
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3
        && parts[0] == "savepoint"
        && parts[1] == &job_id[..6]
        && parts[2].len() == 12
        && parts[2]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

#[test]
fn savepoint_while_running_then_cancel_then_restore_a_moved_copy() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out = job(&env);
    let client = env.execute_async("savepoint").unwrap();
    wait_for_output(&out, 300);
    assert_eq!(client.status(), JobStatus::Running);
    let path = client.trigger_savepoint(Some(sp.path())).unwrap();
    assert!(
        is_savepoint_name(&path, client.job_id()),
        "{}",
        path.display()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("_metadata")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "savepoint");
    client.cancel();
    let r = client.wait().unwrap();
    assert_eq!(r.status, JobStatus::Canceled);
    // NO_EXTERNALIZED_CHECKPOINTS deleted the checkpoints, never the savepoint.
    assert!(path.join("_metadata").is_file());

    // Savepoints are relocatable: move it, then restore the copy.
    let moved = tempfile::tempdir().unwrap();
    let target = moved.path().join("moved-savepoint");
    std::fs::rename(&path, &target).unwrap();
    let env = StreamEnv::from_arg_list(["-s", target.to_str().unwrap()]).unwrap();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out2 = job(&env);
    env.execute("restored").unwrap();
    let mut last = HashMap::new();
    for (k, s) in out2.take() {
        last.insert(k, s);
    }
    assert_eq!(
        last,
        exact(),
        "state from the savepoint plus the rest of the input"
    );
}

#[test]
fn stop_with_savepoint_finishes_and_nothing_after_it_is_processed() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.set_config(
        "execution.checkpointing.savepoint-dir",
        sp.path().to_str().unwrap(),
    )
    .unwrap();
    let out = job(&env);
    let client = env.execute_async("stop").unwrap();
    wait_for_output(&out, 300);
    let path = client.stop_with_savepoint(None).unwrap();
    assert!(
        path.starts_with(sp.path()),
        "the configured savepoint directory is the default"
    );
    let r = client.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    let first = out.take();
    assert!(
        first.len() < N as usize,
        "stopped before the end of the input"
    );

    let env = StreamEnv::from_arg_list(["-s", path.to_str().unwrap()]).unwrap();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out2 = job(&env);
    env.execute("after stop").unwrap();
    let second = out2.take();
    // Every record updated its key exactly once across the two runs.
    assert_eq!(first.len() + second.len(), N as usize);
    let mut last = HashMap::new();
    for (k, s) in first.into_iter().chain(second) {
        last.insert(k, s);
    }
    assert_eq!(last, exact());
}

#[test]
fn savepoint_without_a_directory_is_refused_and_the_job_goes_on() {
    let env = StreamEnv::new();
    env.set_checkpoint_storage(
        tempfile::tempdir()
            .unwrap()
            .path()
            .join("ck")
            .to_str()
            .unwrap(),
    );
    let out = job(&env);
    let client = env.execute_async("no dir").unwrap();
    wait_for_output(&out, 10);
    let e = client.trigger_savepoint(None).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "Triggering a savepoint for the job {} failed",
            client.job_id()
        )),
        "{e}"
    );
    assert!(
        e.contains("No savepoint directory configured")
            && e.contains("execution.checkpointing.savepoint-dir"),
        "{e}"
    );
    assert_eq!(client.status(), JobStatus::Running);
    let r = client.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    let mut last = HashMap::new();
    for (k, s) in out.take() {
        last.insert(k, s);
    }
    assert_eq!(last, exact());
}
