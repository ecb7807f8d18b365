//! Exactly-once under the faults operators cause, through the real job binary and the real
//! `floe` CLI: a savepoint taken while the job runs followed by a killed job manager, a
//! savepoint disposed before a failover, a job that fails for good, two jobs writing into
//! one output directory, and output of a restored checkpoint that is gone.
//!
//! Every test runs `exactly_once_word_count` on generated words with a known answer and
//! checks the committed `part-*` files line by line: each `(word,n)` for `n = 1..=count`
//! exactly once (or exactly twice, for two jobs).

mod common;

use common::{checkpoints, floe, floe_cli, Job, T};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `words` words over 3 files; returns each word's count.
fn write_input(dir: &Path, words: usize, seed: u64) -> HashMap<String, u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut exact = HashMap::new();
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..words / 3 {
            let w = format!("w{}", rng.random_range(0..300));
            text.push_str(&w);
            text.push(if i % 10 == 9 { '\n' } else { ' ' });
            *exact.entry(w).or_insert(0) += 1;
        }
        text.push('\n');
        std::fs::write(dir.join(format!("words-{f}.txt")), text).unwrap();
    }
    exact
}

/// Missing and extra `(word,n)` lines in the committed files of `out`, for `copies` jobs
/// that each wrote the whole answer.
fn check(out: &Path, exact: &HashMap<String, u64>, copies: u64) -> (u64, u64) {
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
            lost += copies.saturating_sub(got);
            extra += got.saturating_sub(copies);
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
    sp: PathBuf,
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
        sp: d("sp"),
        _tmp: tmp,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Starts the job binary (its own job manager) at parallelism 2 with REST on a free port.
fn start(d: &Dirs, extra: &[&str]) -> Job {
    // Build the CLI first: the job must still run when a test operates on it.
    floe_cli();
    let ckdir = format!("execution.checkpointing.dir={}", s(&d.ck));
    let mut args = vec![
        "-p",
        "2",
        "-D",
        "rest.port=0",
        "-D",
        &ckdir,
        "-D",
        "execution.checkpointing.interval=1500ms",
        "--input",
        s(&d.input),
        "--output",
        s(&d.out),
    ];
    args.extend_from_slice(extra);
    Job::start("exactly_once_word_count", &args)
}

/// Starts the job again from `from` (a checkpoint, or a job's checkpoint directory) at
/// parallelism 2 on the same input and output, with `extra` options after `-p`.
fn resume(d: &Dirs, from: &Path, extra: &[&str]) -> Job {
    let mut args = vec!["-s", s(from), "-p", "2"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--input", s(&d.input), "--output", s(&d.out)]);
    Job::start("exactly_once_word_count", &args)
}

fn rest_address(job: &Job) -> String {
    let i = job.wait_stderr("Rest endpoint listening at ", 0, T);
    job.stderr()[i]
        .split("Rest endpoint listening at ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string()
}

/// `floe savepoint -m ADDR JOB DIR`; returns the savepoint's directory.
fn savepoint(addr: &str, job_id: &str, dir: &Path) -> PathBuf {
    let (code, out, err) = floe(&["savepoint", "-m", addr, job_id, s(dir)]);
    assert_eq!(code, 0, "floe savepoint: {out}{err}");
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("no savepoint path in {out}"));
    PathBuf::from(path.trim().trim_start_matches("file:"))
}

fn kill9(pid: u32) {
    common::signal(pid, "KILL");
}

const PACE: &str = "100000";

/// Up to three restarts, 100 ms apart.
const RESTARTS: [&str; 6] = [
    "-D",
    "restart-strategy.type=fixed-delay",
    "-D",
    "restart-strategy.fixed-delay.attempts=3",
    "-D",
    "restart-strategy.fixed-delay.delay=100ms",
];

#[test]
fn a_savepoint_while_running_then_a_killed_job_manager_repeats_nothing() {
    // The savepoint must not commit: the documented resume (`-s <ckdir>/<job-id>`) restores
    // chk-1, and the replay after it would write the savepoint's output a second time.
    let d = dirs();
    let exact = write_input(&d.input, 1_200_000, 1);
    // Checkpoints 3 s apart: the savepoint and the kill fall between two of them.
    let mut job = start(
        &d,
        &[
            "-D",
            "execution.checkpointing.interval=3s",
            "--words-per-second",
            PACE,
        ],
    );
    let addr = rest_address(&job);
    let id = job.job_id();
    job.wait_stderr("Completed checkpoint 1 ", 0, T);
    let sp = savepoint(&addr, &id, &d.sp);
    kill9(job.pid());
    job.wait_exit(T);
    let sp_id = floe::checkpoint::metadata::load_snapshot(&sp)
        .unwrap()
        .metadata
        .checkpoint_id;
    let (latest, _) = checkpoints(&d.ck, &id).pop().unwrap();
    assert!(
        latest < sp_id,
        "the resume restores a checkpoint older than the savepoint ({latest} < {sp_id})"
    );

    let mut resumed = resume(&d, &d.ck.join(&id), &[]);
    assert!(resumed.wait_exit(Duration::from_secs(120)).success());
    assert_eq!(check(&d.out, &exact, 1), (0, 0), "(lost, duplicated)");
}

#[test]
fn failover_after_the_savepoint_was_disposed_restores_the_checkpoint() {
    let d = dirs();
    let exact = write_input(&d.input, 1_200_000, 2);
    let trigger = d.sp.join("fail-now");
    let mut job = start(
        &d,
        &[
            &RESTARTS[..],
            &[
                "--words-per-second",
                PACE,
                "--fail-when-exists",
                s(&trigger),
            ],
        ]
        .concat(),
    );
    let addr = rest_address(&job);
    let id = job.job_id();
    job.wait_stderr("Completed checkpoint 1 ", 0, T);
    let sp = savepoint(&addr, &id, &d.sp);
    let (code, out, err) = floe(&["savepoint", "--dispose", s(&sp)]);
    assert_eq!(code, 0, "dispose: {out}{err}");
    assert!(!sp.exists());
    let mark = job.stderr_len();
    std::fs::write(&trigger, b"").unwrap();
    let i = job.wait_stderr("Restoring job ", mark, T);
    assert!(
        job.stderr()[i].contains(s(&d.ck)),
        "failover restores the job's checkpoint: {}",
        job.stderr()[i]
    );
    assert!(job.wait_exit(Duration::from_secs(120)).success());
    assert_eq!(check(&d.out, &exact, 1), (0, 0), "(lost, duplicated)");
}

#[test]
fn a_job_that_fails_for_good_keeps_its_last_checkpoint_to_resume_from() {
    // Default retention (NO_EXTERNALIZED_CHECKPOINTS) and no restarts: the failure is final.
    let d = dirs();
    let exact = write_input(&d.input, 1_200_000, 3);
    let trigger = d.sp.join("fail-now");
    let mut job = start(
        &d,
        &[
            "-D",
            "restart-strategy.type=none",
            "--words-per-second",
            PACE,
            "--fail-when-exists",
            s(&trigger),
        ],
    );
    let id = job.job_id();
    job.wait_stderr("Completed checkpoint 1 ", 0, T);
    std::fs::write(&trigger, b"").unwrap();
    assert_eq!(job.wait_exit(T).code(), Some(1));
    let left = checkpoints(&d.ck, &id);
    assert_eq!(left.len(), 1, "the last checkpoint survives: {left:?}");
    assert!(left[0].1.join("_metadata").is_file());

    let mut resumed = resume(&d, &d.ck.join(&id), &[]);
    assert!(resumed.wait_exit(Duration::from_secs(120)).success());
    assert_eq!(check(&d.out, &exact, 1), (0, 0), "(lost, duplicated)");
}

#[test]
fn two_jobs_writing_into_one_directory_never_delete_each_others_files() {
    // Both run the same binary (same sink uid) into one directory; the one that restarts
    // must only discard what its own earlier attempts staged.
    let d = dirs();
    let exact = write_input(&d.input, 900_000, 4);
    let trigger = d.sp.join("fail-now");
    let restarts = [&RESTARTS[..], &["--words-per-second", PACE]].concat();
    let mut a = start(
        &d,
        &[&restarts[..], &["--fail-when-exists", s(&trigger)]].concat(),
    );
    let mut b = start(&d, &restarts);
    a.wait_stderr("Completed checkpoint 1 ", 0, T);
    b.wait_stderr("Completed checkpoint 1 ", 0, T);
    std::fs::write(&trigger, b"").unwrap();
    a.wait_stderr("switched from state RUNNING to RESTARTING", 0, T);
    assert!(a.wait_exit(Duration::from_secs(120)).success(), "job a");
    assert!(b.wait_exit(Duration::from_secs(120)).success(), "job b");
    let b_log = b.stderr().join("\n");
    assert!(
        !b_log.contains("RESTARTING"),
        "the other job never fails: {b_log}"
    );
    assert_eq!(check(&d.out, &exact, 2), (0, 0), "(lost, duplicated)");
}

#[test]
fn output_of_the_restored_checkpoint_that_is_gone_fails_the_job_without_restarting() {
    let d = dirs();
    write_input(&d.input, 600_000, 5);
    let mut job = start(
        &d,
        &[
            "-D",
            "execution.checkpointing.externalized-checkpoint-retention=RETAIN_ON_CANCELLATION",
            "--words-per-second",
            PACE,
        ],
    );
    let id = job.job_id();
    job.wait_stderr("Completed checkpoint 1 ", 0, T);
    job.terminate();
    let (_, chk) = checkpoints(&d.ck, &id).pop().expect("retained checkpoint");
    // Delete one part file the checkpoint names — committed, or still pending if the
    // cancel came before the commit: its records are gone for good.
    let snap = floe::checkpoint::metadata::load_snapshot(&chk).unwrap();
    let mut named: Vec<floe::connectors::file_sink::PendingFile> = Vec::new();
    for st in &snap
        .metadata
        .operator("counts-out")
        .expect("sink state")
        .subtasks
    {
        let floe::checkpoint::metadata::StateHandle::Inline { data } = &st.handle else {
            panic!("sink state is inline")
        };
        let files: Vec<floe::connectors::file_sink::PendingFile> =
            serde_json::from_slice(data).unwrap();
        named.extend(files);
    }
    let lost = named.first().expect("chk names part files");
    let removed = [&lost.committed, &lost.in_progress]
        .iter()
        .filter(|n| std::fs::remove_file(d.out.join(n)).is_ok())
        .count();
    assert_eq!(removed, 1, "{lost:?} was there");

    let mut restored = resume(
        &d,
        &chk,
        &[
            "-D",
            "restart-strategy.type=fixed-delay",
            "-D",
            "restart-strategy.fixed-delay.attempts=5",
            "-D",
            "restart-strategy.fixed-delay.delay=100ms",
        ],
    );
    assert_eq!(restored.wait_exit(T).code(), Some(1));
    let log = restored.stderr().join("\n");
    assert!(!log.contains("RESTARTING"), "no restart loop: {log}");
    assert!(
        log.contains(&lost.committed) && log.contains("not restarted"),
        "the failure names the lost file: {log}"
    );
}
