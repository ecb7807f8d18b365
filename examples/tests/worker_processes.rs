//! User code runs in worker processes: `kill -9` and `kill -STOP` of a worker mid-stream are
//! task failures the job manager recovers from, with exact counts from a replayable source.

mod common;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

fn input(dir: &std::path::Path) -> HashMap<String, u64> {
    let mut exact = HashMap::new();
    for f in 0..2 {
        let mut text = String::new();
        for i in 0..1500u64 {
            let words: Vec<String> = (0..4)
                .map(|k| format!("w{}", (i * 7 + k * 13 + f) % 97))
                .collect();
            for w in &words {
                *exact.entry(w.clone()).or_insert(0) += 1;
            }
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("part-{f}")), text).unwrap();
    }
    exact
}

fn final_counts(lines: &[String]) -> HashMap<String, u64> {
    let mut last = HashMap::new();
    for l in lines {
        let (w, n) = l
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split_once(',')
            .unwrap();
        let n: u64 = n.parse().unwrap();
        let e = last.entry(w.to_string()).or_insert(0);
        *e = (*e).max(n);
    }
    last
}

/// `file_word_count` over `input` with a 1.5 s heartbeat timeout, checkpoints every 50 ms
/// and `delay_us` per line, so faults land mid-run.
fn start(input: &std::path::Path, ck: &std::path::Path, delay_us: &str, extra: &[&str]) -> Job {
    let mut args = vec![
        "-D",
        "heartbeat.timeout=1500ms",
        "-D",
        "heartbeat.interval=100ms",
        "--input",
        input.to_str().unwrap(),
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--interval-ms",
        "50",
        "--line-delay-us",
        delay_us,
    ];
    args.extend_from_slice(extra);
    Job::start("file_word_count", &args)
}

fn run_with_fault(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let exact = input(dir.path());
    let mut job = start(dir.path(), ck.path(), "800", &[]);
    let pid = job.worker_pid(0);
    job.wait_stderr("Completed checkpoint 3 ", 0, T);
    let mark = job.stderr_len();
    signal(pid, sig);
    job.wait_stderr("switched from RUNNING to FAILED", mark, T);
    job.wait_stderr("Restoring job", mark, T);
    let new_pid = job.worker_pid(mark);
    assert_ne!(new_pid, pid, "a new worker process for the new attempt");
    let st = job.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "the job FINISHED after recovering");
    assert_eq!(
        final_counts(&job.stdout()),
        exact,
        "exact counts after the {sig} of worker {pid}"
    );
    // The old worker is gone.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    );
}

#[test]
fn kill_9_of_a_worker_is_a_task_failure_with_exact_recovery() {
    run_with_fault("9");
}

#[test]
fn a_stopped_worker_is_found_by_the_heartbeat_and_replaced() {
    run_with_fault("STOP");
}

#[test]
fn a_task_stuck_in_user_code_is_found_by_its_progress_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let exact = input(dir.path());
    let mut job = start(dir.path(), ck.path(), "300", &["--hang-on", "w42"]);
    let i = job.wait_stderr("made no progress for 1500 ms (stuck in user code?)", 0, T);
    job.wait_stderr("switched from state RUNNING to RESTARTING", i, T);
    assert!(job.wait_exit(Duration::from_secs(60)).success());
    assert_eq!(
        final_counts(&job.stdout()),
        exact,
        "exact counts after replacing the stuck worker"
    );
}
