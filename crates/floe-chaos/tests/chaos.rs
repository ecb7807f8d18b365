//! The chaos harness end to end: the real jobs under faults (the word count under a few
//! dozen, the event-time job under kills for several seeds), and the checker against
//! independent (awk) output that is right, then duplicated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the `floe` CLI and the job binaries next to `floe-chaos` (same profile).
fn build_binaries() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-q", "-p", "floe-cli", "--bin", "floe"])
            .args(["-p", "floe-examples", "--bin", "exactly_once_word_count"])
            .args(["--bin", "timer_word_count", "--bin", "window_word_count"])
            .status()
            .unwrap();
        assert!(st.success(), "building floe and the job binaries failed");
    });
    PathBuf::from(env!("CARGO_BIN_EXE_floe-chaos"))
}

/// Runs floe-chaos; returns its exit code, output, and the summary line's fields.
fn chaos(args: &[&str]) -> (i32, String, HashMap<String, String>) {
    let exe = build_binaries();
    let o = Command::new(exe).args(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let last = out.lines().last().unwrap_or_default().to_string();
    let fields = last
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        o.status.code().unwrap_or(-1),
        format!("{out}{}", String::from_utf8_lossy(&o.stderr)),
        fields,
    )
}

fn num(f: &HashMap<String, String>, k: &str) -> u64 {
    f.get(k)
        .unwrap_or_else(|| panic!("no {k}= in the summary"))
        .parse()
        .unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn the_job_under_two_dozen_faults_commits_every_line_once() {
    let (code, out, f) = chaos(&[
        "--faults",
        "27",
        "--seed",
        "42",
        "--words-per-round",
        "400000",
        "--min-gap-ms",
        "50",
        "--max-gap-ms",
        "300",
        "--timeout-secs",
        "900",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(num(&f, "faults"), 27, "{out}");
    for k in ["lost", "duplicated", "wrong", "leftover", "failed_rounds"] {
        assert_eq!(num(&f, k), 0, "{k}: {out}");
    }
    assert_eq!(num(&f, "lines"), num(&f, "words"), "{out}");
    // Every kind comes once per block of nine (storage faults need root to mount a tmpfs).
    let mut kinds = vec![
        "kill9",
        "stop",
        "panic",
        "checkpoint_timeout",
        "savepoint_kill_jm",
        "second_job",
        "daemon_kill",
    ];
    if is_root() {
        kinds.extend(["storage_ro", "storage_full"]);
    }
    for k in kinds {
        assert!(num(&f, k) >= 3, "{k}: {out}");
    }
    // Kills, stops and panics each cost a restart; timeouts and storage faults fail
    // checkpoints.
    assert!(num(&f, "restarts") >= 9, "{out}");
    assert!(num(&f, "checkpoints_failed") >= 3, "{out}");
    assert!(num(&f, "checkpoints_completed") > 0, "{out}");
}

/// Exactly-once of event-time results under failure: for several seeds, the event-time
/// job over out-of-order input with its worker processes killed (and its job manager, and
/// the cluster daemon) commits exactly the window results of an uninterrupted run.
#[test]
fn the_event_time_job_under_kills_commits_every_window_result_once() {
    // Both event-time jobs: the window operator and the keyed process function's timers.
    for (kind, seed) in [("window", "1"), ("timers", "2"), ("window", "3")] {
        let (code, out, f) = chaos(&[
            "--kind",
            kind,
            "--seed",
            seed,
            "--faults",
            "5",
            "--only",
            "kill9,savepoint_kill_jm,daemon_kill",
            "--words-per-round",
            "120000",
            "--min-gap-ms",
            "50",
            "--max-gap-ms",
            "300",
            "--no-storage-faults",
            "--timeout-secs",
            "300",
        ]);
        assert_eq!(code, 0, "{kind} seed {seed}: {out}");
        assert_eq!(num(&f, "faults"), 5, "{kind} seed {seed}: {out}");
        for k in ["lost", "duplicated", "wrong", "leftover", "failed_rounds"] {
            assert_eq!(num(&f, k), 0, "{kind} seed {seed}: {k}: {out}");
        }
        // Every window result of every round, and nothing else.
        assert_eq!(
            num(&f, "lines"),
            num(&f, "results"),
            "{kind} seed {seed}: {out}"
        );
        assert!(num(&f, "results") > 0, "{kind} seed {seed}: {out}");
        assert!(num(&f, "kill9") >= 2, "{kind} seed {seed}: {out}");
        assert_eq!(
            num(&f, "stop") + num(&f, "panic"),
            0,
            "{kind} seed {seed}: {out}"
        );
        assert!(num(&f, "restarts") >= 1, "{kind} seed {seed}: {out}");
    }
}

/// A job script: `pipeline` (shell, `$2` the input and `$4` the output directory, `$8` the
/// window size) writes `$4/part-awk-0-0`; with `dup` its first five lines are committed
/// twice. It reports to `floe run` as a Floe job does (floe::exit), which refuses binaries
/// that do not.
fn script_job(dir: &Path, name: &str, pipeline: &str, dup: bool) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n# --input DIR --output DIR --fail-when-exists PATH [--window-ms MS ...]\nmkdir -p \"$4\"\n{pipeline} > \"$4/part-awk-0-0\"\n{}printf 'submitted 0123456789abcdef0123456789abcdef\\nended FINISHED\\n' >> \"$FLOE_CLI_REPORT\"\n",
            if dup { "head -n 5 \"$4/part-awk-0-0\" > \"$4/part-awk-1-0\"\n" } else { "" }
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Runs `kind` once without faults with the job `exact`, then with `dup`; returns both
/// summaries after checking the exit codes (0, then 1).
fn exact_then_duplicated(
    dir: &Path,
    kind: &str,
    exact: &Path,
    dup: &Path,
) -> (HashMap<String, String>, HashMap<String, String>) {
    // Inside the test's temporary directory: a failing round is kept there, not in /tmp.
    let work = dir.join(format!("work-{kind}"));
    let run = |job: &Path| {
        chaos(&[
            "--kind",
            kind,
            "--faults",
            "0",
            "--words-per-round",
            "20000",
            "--no-storage-faults",
            "--work-dir",
            work.to_str().unwrap(),
            "--job",
            job.to_str().unwrap(),
        ])
    };
    let (code, out, exact) = run(exact);
    assert_eq!(code, 0, "{out}");
    let (code, out, dup) = run(dup);
    assert_eq!(code, 1, "{out}");
    (exact, dup)
}

#[test]
fn the_checker_accepts_exact_output_and_counts_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    // An independent word count: awk numbers each word's occurrences.
    let count =
        "cat \"$2\"/* | tr ' ' '\\n' | awk 'NF { c[$1]++; print \"(\" $1 \",\" c[$1] \")\" }'";
    let exact = script_job(dir.path(), "exact.sh", count, false);
    let dup = script_job(dir.path(), "dup.sh", count, true);
    let (exact, dup) = exact_then_duplicated(dir.path(), "word-count", &exact, &dup);
    assert_eq!((num(&exact, "lines"), num(&exact, "lost")), (20000, 0));
    assert_eq!((num(&dup, "duplicated"), num(&dup, "lost")), (5, 0));
}

#[test]
fn the_window_checker_accepts_an_independent_window_count_and_counts_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    // An independent tumbling-window count of the generated `<epoch-millis> <word>` lines:
    // awk counts per word and window start (the timestamps are positive, below 2^53).
    let count = "cat \"$2\"/* | awk -v W=\"$8\" '{ s = $1 - $1 % W; c[$2 \",\" sprintf(\"%.0f,%.0f\", s, s + W)]++ } END { for (k in c) print \"(\" k \",\" c[k] \")\" }'";
    let exact = script_job(dir.path(), "exact.sh", count, false);
    let dup = script_job(dir.path(), "dup.sh", count, true);
    let (exact, dup) = exact_then_duplicated(dir.path(), "timers", &exact, &dup);
    assert_eq!(num(&exact, "words"), 20000);
    let results = num(&exact, "results");
    // 4 files of 30 windows each, every window with more than one word.
    assert!(results > 4 * 30 * 10, "{results}");
    assert_eq!(
        (
            num(&exact, "lines"),
            num(&exact, "lost"),
            num(&exact, "wrong")
        ),
        (results, 0, 0)
    );
    assert_eq!(
        (
            num(&dup, "duplicated"),
            num(&dup, "lost"),
            num(&dup, "wrong")
        ),
        (5, 0, 0)
    );
}

/// Builds the multi-host layout for real (network namespaces: needs root, iproute2 and
/// s3s-fs from scripts/test-tools.sh) and runs every host fault twice on it.
#[test]
fn the_multi_host_cluster_under_host_faults_commits_every_line_once() {
    let (code, out, f) = chaos(&[
        "--multi-host",
        "--faults",
        "30",
        "--seed",
        "43",
        "--words-per-round",
        "400000",
        "--min-gap-ms",
        "50",
        "--max-gap-ms",
        "300",
        "--timeout-secs",
        "1200",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(num(&f, "faults"), 30, "{out}");
    for k in [
        "lost",
        "duplicated",
        "wrong",
        "failed_rounds",
        "stray_workers",
        "tm_orphans_alive",
        "tm_not_reregistered",
        "tm_found_dead",
    ] {
        assert_eq!(num(&f, k), 0, "{k}: {out}");
    }
    assert_eq!(num(&f, "lines"), num(&f, "words"), "{out}");
    assert_eq!(num(&f, "hosts"), 3, "{out}");
    // Fifteen kinds, each once per block: every kind twice.
    for k in [
        "kill9",
        "stop",
        "panic",
        "checkpoint_timeout",
        "savepoint_kill_jm",
        "second_job",
        "daemon_kill",
        "storage_ro",
        "storage_full",
        "tm_host_kill9",
        "tm_daemon_kill9",
        "tm_link_down",
        "tm_host_freeze",
        "jm_host_kill9",
        "s3_stop",
    ] {
        assert_eq!(num(&f, k), 2, "{k}: {out}");
    }
    // Most faults fail the attempt over (some end with their round first, some are absorbed:
    // a short link-down, an S3 pause within the tolerable checkpoint failures).
    assert!(num(&f, "restarts") >= 5, "{out}");
    assert!(num(&f, "checkpoints_completed") > 0, "{out}");
    assert!(out.contains("recovery_ms kind="), "{out}");
}
