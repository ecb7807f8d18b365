//! One attempt as several worker processes forming one timely cluster
//! (`minicluster.number-of-taskmanagers`): the keyed word count at parallelism 4 over 2
//! processes × 2 threads is exact, a `kill -9` of one process tears the whole attempt down
//! and recovers exactly once, and a checkpoint of 2 processes restores into 1 process at
//! another parallelism.

mod common;

use common::{checkpoints, Job, T};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `words` words over 4 files; returns each word's count.
fn write_input(dir: &Path, words: usize, seed: u64) -> HashMap<String, u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut exact = HashMap::new();
    for f in 0..4 {
        let mut text = String::new();
        for i in 0..words / 4 {
            let w = format!("w{}", rng.random_range(0..200));
            text.push_str(&w);
            text.push(if i % 10 == 9 { '\n' } else { ' ' });
            *exact.entry(w).or_insert(0) += 1;
        }
        text.push('\n');
        std::fs::write(dir.join(format!("words-{f}.txt")), text).unwrap();
    }
    exact
}

/// Missing and extra `(word,n)` lines in the committed files of `out`.
fn check(out: &Path, exact: &HashMap<String, u64>) -> (u64, u64) {
    let mut seen: HashMap<(String, u64), u64> = HashMap::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("part-") {
            continue;
        }
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            let (w, n) = l
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_once(',')
                .unwrap_or_else(|| panic!("bad line {l:?} in {name}"));
            *seen.entry((w.to_string(), n.parse().unwrap())).or_default() += 1;
        }
    }
    let (mut lost, mut extra) = (0, 0);
    for (w, &c) in exact {
        for n in 1..=c {
            let got = seen.remove(&(w.clone(), n)).unwrap_or(0);
            lost += 1u64.saturating_sub(got);
            extra += got.saturating_sub(1);
        }
    }
    extra += seen.values().sum::<u64>();
    (lost, extra)
}

struct Dirs {
    _tmp: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    ck: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = tmp.path().join(n);
        std::fs::create_dir(&p).unwrap();
        p
    };
    Dirs {
        input: d("in"),
        out: d("out"),
        ck: d("ck"),
        _tmp: tmp,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `exactly_once_word_count` at parallelism `p` over `processes` worker processes.
fn start(d: &Dirs, p: &str, processes: &str, extra: &[&str]) -> Job {
    let ckdir = format!("execution.checkpointing.dir={}", s(&d.ck));
    let tms = format!("minicluster.number-of-taskmanagers={processes}");
    let mut args = vec![
        "-p",
        p,
        "-D",
        &tms,
        "-D",
        &ckdir,
        "-D",
        "execution.checkpointing.interval=100ms",
        "-D",
        "restart-strategy.type=fixed-delay",
        "-D",
        "restart-strategy.fixed-delay.delay=100ms",
        "-D",
        "heartbeat.interval=100ms",
        "-D",
        "heartbeat.timeout=3s",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--input", s(&d.input), "--output", s(&d.out)]);
    Job::start("exactly_once_word_count", &args)
}

/// The pids of the worker processes of `attempt`, by process index, from the job
/// manager's log ("Started worker process <pid> for attempt #a (process i of n on h).").
fn worker_pids(job: &Job, attempt: u32, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + T;
    loop {
        let mut pids = vec![0u32; n];
        let tag = format!(" for attempt #{attempt} (process ");
        for l in job.stderr() {
            let Some(rest) = l.split("Started worker process ").nth(1) else {
                continue;
            };
            let Some((pid, tail)) = rest.split_once(&tag) else {
                continue;
            };
            let i: usize = tail.split(' ').next().unwrap().parse().unwrap();
            assert!(tail.contains(&format!(" of {n} on ")), "{l}");
            pids[i] = pid.parse().unwrap();
        }
        if pids.iter().all(|p| *p != 0) {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "workers of attempt #{attempt} not started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True once `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.contains(") Z "),
    }
}

fn completed_checkpoints(job: &Job) -> usize {
    job.stderr()
        .iter()
        .filter(|l| l.contains("Completed checkpoint "))
        .count()
}

#[test]
fn parallelism_4_over_2_processes_counts_exactly_with_checkpoints_of_all_4_subtasks() {
    let d = dirs();
    let exact = write_input(&d.input, 40_000, 11);
    let mut job = start(&d, "4", "2", &["--words-per-second", "8000"]);
    let pids = worker_pids(&job, 0, 2);
    assert_ne!(pids[0], pids[1]);
    // Every subtask of both operators runs, across both processes.
    for i in 1..=4 {
        job.wait_stderr(
            &format!("Keyed Aggregation -> Sink: FileSink ({i}/4)"),
            0,
            T,
        );
    }
    let st = job.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "FINISHED: {st}");
    // A checkpoint completes only with the acknowledgements of every task the attempt
    // reported running: those of both processes.
    assert!(completed_checkpoints(&job) >= 2, "checkpoints completed");
    assert_eq!(check(&d.out, &exact), (0, 0), "(lost, duplicated) lines");
    for p in pids {
        assert!(gone(p), "worker process {p} exited");
    }
}

#[test]
fn kill_9_of_one_process_tears_down_the_attempt_and_recovers_exactly_once() {
    let d = dirs();
    let exact = write_input(&d.input, 60_000, 12);
    let mut job = start(&d, "4", "2", &["--words-per-second", "2500"]);
    let old = worker_pids(&job, 0, 2);
    job.wait_stderr("Completed checkpoint 2 ", 0, T);
    let mark = job.stderr_len();
    common::signal(old[1], "9");
    job.wait_stderr("switched from RUNNING to FAILED", mark, T);
    let new = worker_pids(&job, 1, 2);
    // The whole old attempt is gone before the new one started: no process of it is left.
    for p in &old {
        assert!(gone(*p), "worker process {p} of attempt #0 is gone");
    }
    assert!(new.iter().all(|p| !old.contains(p)));
    let st = job.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "FINISHED after the restart: {st}");
    assert_eq!(check(&d.out, &exact), (0, 0), "(lost, duplicated) lines");
    let i = job.wait_stderr("Restoring job", mark, T);
    assert!(
        job.stderr()[i].contains("from Checkpoint"),
        "{}",
        job.stderr()[i]
    );
}

#[test]
fn a_checkpoint_of_2_processes_at_parallelism_4_restores_into_1_process_at_parallelism_2() {
    let d = dirs();
    let exact = write_input(&d.input, 60_000, 13);
    let mut job = start(
        &d,
        "4",
        "2",
        &[
            "-D",
            "execution.checkpointing.externalized-checkpoint-retention=RETAIN_ON_CANCELLATION",
            "--words-per-second",
            "2500",
        ],
    );
    worker_pids(&job, 0, 2);
    job.wait_stderr("Completed checkpoint 3 ", 0, T);
    let id = job.job_id();
    assert!(!job.terminate().success(), "cancelled");
    let chk = checkpoints(&d.ck, &id)
        .pop()
        .expect("a retained checkpoint")
        .1;
    // Every one of the 4 subtasks (2 per process) acknowledged it with its keyed state.
    let files: Vec<String> = std::fs::read_dir(&chk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for subtask in 0..4 {
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("counts-") && f.ends_with(&format!("-{subtask}.state"))),
            "state of counts subtask {subtask} in {files:?}"
        );
    }
    // Rescaled: 1 process with 2 threads restores the state of 4 subtasks.
    let mut job = start(&d, "2", "1", &["-s", s(&chk)]);
    worker_pids(&job, 0, 1);
    let st = job.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "FINISHED: {st}");
    assert_eq!(check(&d.out, &exact), (0, 0), "(lost, duplicated) lines");
}

#[test]
fn a_task_panicking_in_one_process_restarts_every_process_and_counts_exactly() {
    let d = dirs();
    let exact = write_input(&d.input, 40_000, 14);
    let trigger = d.input.parent().unwrap().join("fail-now");
    let mut job = start(
        &d,
        "4",
        "2",
        &[
            "--words-per-second",
            "4000",
            "--fail-when-exists",
            s(&trigger),
        ],
    );
    let old = worker_pids(&job, 0, 2);
    job.wait_stderr("Completed checkpoint 1 ", 0, T);
    let mark = job.stderr_len();
    std::fs::write(&trigger, "").unwrap();
    let i = job.wait_stderr("switched from RUNNING to FAILED", mark, T);
    assert!(
        job.stderr()[i].contains("injected failure"),
        "the user's panic is the cause: {}",
        job.stderr()[i]
    );
    worker_pids(&job, 1, 2);
    for p in &old {
        assert!(gone(*p), "worker process {p} of attempt #0 is gone");
    }
    let st = job.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "FINISHED after the restart: {st}");
    assert_eq!(check(&d.out, &exact), (0, 0), "(lost, duplicated) lines");
}
