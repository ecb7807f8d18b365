//! Seed 000 end to end, through `floe run`: the socket word count through a task failure,
//! automatic recovery, terminal failure after three restarts, and `floe run -s` from the
//! retained checkpoint.

mod common;
use common::*;

#[test]
fn state_word_count_full_story() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--checkpoint-dir",
        &ckp,
    ];
    let mut job = Job::start_via_floe_run("state_word_count", &args);
    let job_id = job.job_id();
    server.wait_connections(1, T);
    for w in ["spark", "spark", "flink", "flink"] {
        server.send(w);
    }
    job.expect_stdout(&["(spark,1)", "(spark,2)", "(flink,1)", "(flink,2)"], T);
    // A checkpoint triggered after the output was printed includes it.
    job.wait_next_checkpoint(T);

    // "error" fails the task; the fixed-delay strategy restarts it from the checkpoint.
    let mark = job.stderr_len();
    server.send("error");
    job.wait_stderr(
        "switched from RUNNING to FAILED with failure cause: error message",
        mark,
        T,
    );
    job.wait_stderr("switched from state RUNNING to RESTARTING", mark, T);
    job.wait_stderr("Restoring job", mark, T);
    server.wait_connections(2, T);
    server.send("flink");
    job.expect_stdout(
        &[
            "(spark,1)",
            "(spark,2)",
            "(flink,1)",
            "(flink,2)",
            "(flink,3)",
        ],
        T,
    );
    let retained = job.wait_next_checkpoint(T);

    // Three more failures: restarts 2 and 3, then the fourth failure is terminal.
    server.send("error");
    server.wait_connections(3, T);
    server.send("error");
    server.wait_connections(4, T);
    server.send("error");
    let status = job.wait_exit(T);
    assert!(!status.success(), "a FAILED job exits non-zero");
    let raw = job.raw_stdout();
    assert_eq!(
        raw.first().map(String::as_str),
        Some(format!("Job has been submitted with JobID {job_id}").as_str())
    );
    assert_eq!(
        raw.last().map(String::as_str),
        Some(format!("Job with JobID {job_id} has failed.").as_str())
    );
    let log = job.stderr().join("\n");
    assert!(log.contains(
        "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=2000)"
    ));
    assert!(log.contains("switched from state FAILING to FAILED"));
    assert_eq!(
        log.matches("switched from state RUNNING to RESTARTING")
            .count(),
        3
    );

    // RETAIN_ON_CANCELLATION keeps the checkpoint of a FAILED job, complete.
    let chks = checkpoints(ck.path(), &job_id);
    assert_eq!(chks.len(), 1, "num-retained = 1: {chks:?}");
    let (n, chk) = chks[0].clone();
    assert!(n >= retained);
    assert!(chk.join("_metadata").is_file());
    assert!(!chk.join("_metadata.inprogress").exists());

    // Bring it back with -s: a new job id, numbering continues at n+1, counts continue.
    let chk_s = chk.to_str().unwrap().to_string();
    let mut args2 = vec!["-s", &chk_s];
    args2.extend_from_slice(&args);
    let mut job2 = Job::start_via_floe_run("state_word_count", &args2);
    let job2_id = job2.job_id();
    assert_ne!(job2_id, job_id);
    job2.wait_stderr(
        &format!("Reset the checkpoint ID of job {job2_id} to {}", n + 1),
        0,
        T,
    );
    server.wait_connections(5, T);
    server.send("flink");
    server.send("spark");
    job2.expect_stdout(&["(flink,4)", "(spark,3)"], T);
    let next = job2.wait_next_checkpoint(T);
    assert_eq!(
        next,
        n + 1,
        "checkpoint numbering continues after the restored checkpoint"
    );
    assert!(ck
        .path()
        .join(&job2_id)
        .join(format!("chk-{}", n + 1))
        .join("_metadata")
        .is_file());

    // Cancel (SIGTERM): RETAIN_ON_CANCELLATION keeps it; the restored checkpoint is untouched.
    let st = job2.terminate();
    assert_eq!(st.code(), Some(2), "floe run exits 2 for a CANCELED job");
    assert_eq!(
        job2.raw_stdout().last().map(String::as_str),
        Some(format!("Job with JobID {job2_id} has been canceled.").as_str())
    );
    assert!(job2
        .stderr()
        .join("\n")
        .contains("switched from state CANCELLING to CANCELED"));
    assert!(
        chk.join("_metadata").is_file(),
        "the checkpoint we restored from is never deleted"
    );
    assert_eq!(checkpoints(ck.path(), &job2_id).len(), 1);
}

#[test]
fn restore_path_errors_are_one_line_and_delete_nothing() {
    let ck = tempfile::tempdir().unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            ck.path().join("missing").display().to_string(),
            "does not exist",
        ),
        (ck.path().display().to_string(), "has no _metadata"),
    ];
    for (path, msg) in cases {
        let mut job = Job::start("state_word_count", &["-s", &path, "--port", "1"]);
        let st = job.wait_exit(T);
        assert_eq!(st.code(), Some(1));
        let err = job.stderr();
        let line = err
            .iter()
            .find(|l| l.starts_with("error: "))
            .expect("an error line");
        assert!(line.contains(msg) && line.contains(&path), "{line}");
    }
    // A corrupt _metadata is reported, and left on disk.
    let bad = ck.path().join("chk-3");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("_metadata"), b"{not json").unwrap();
    let mut job = Job::start(
        "state_word_count",
        &["-s", bad.to_str().unwrap(), "--port", "1"],
    );
    assert_eq!(job.wait_exit(T).code(), Some(1));
    assert!(job
        .stderr()
        .iter()
        .any(|l| l.starts_with("error: corrupt metadata file")));
    assert!(bad.join("_metadata").is_file());
    // Bad options.
    let mut job = Job::start("state_word_count", &["-p", "zero"]);
    assert_eq!(job.wait_exit(T).code(), Some(1));
    assert!(job
        .stderr()
        .iter()
        .any(|l| l.contains("invalid parallelism 'zero'")));
    let mut job = Job::start(
        "state_word_count",
        &["-D", "execution.checkpointing.intervall=1s"],
    );
    assert_eq!(job.wait_exit(T).code(), Some(1));
    assert!(job
        .stderr()
        .iter()
        .any(|l| l.contains("unknown configuration key 'execution.checkpointing.intervall'")));
}

#[test]
fn unwritable_checkpoint_directory_is_a_clear_error() {
    let ck = tempfile::tempdir().unwrap();
    let file = ck.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let server = LineServer::start();
    let port = server.port.to_string();
    let dir = file.join("sub");
    let mut job = Job::start(
        "state_word_count",
        &["--port", &port, "--checkpoint-dir", dir.to_str().unwrap()],
    );
    assert_eq!(job.wait_exit(T).code(), Some(1));
    let line = job
        .stderr()
        .into_iter()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    assert!(
        line.contains("cannot create checkpoint directory") && line.contains("a-file"),
        "{line}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn unreachable_socket_fails_each_attempt_then_the_job() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let ck = tempfile::tempdir().unwrap();
    let mut job = Job::start(
        "state_word_count",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--checkpoint-dir",
            ck.path().to_str().unwrap(),
        ],
    );
    let st = job.wait_exit(std::time::Duration::from_secs(60));
    assert_eq!(st.code(), Some(1));
    let log = job.stderr().join("\n");
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("switched from RUNNING to FAILED"))
        .collect();
    assert_eq!(failures.len(), 4, "{log}");
    for l in failures {
        assert!(
            l.contains("Source: Socket Stream -> Flat Map -> Map -> Map (1/1) (attempt #"),
            "{l}"
        );
        assert!(
            l.contains(&format!("cannot connect to socket source 127.0.0.1:{port}")),
            "{l}"
        );
    }
    assert!(log.contains("Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy"));
}
