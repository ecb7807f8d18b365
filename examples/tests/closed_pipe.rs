//! A closed standard output (`floe run job | head`, `floe savepoint inspect ... | head`)
//! ends the CLI quietly as it ends any Unix tool, and never panics a job manager or a job.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The write end of a pipe whose read end is already closed: the child's first write to it
/// fails (EPIPE), however fast the child is.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 stores two new descriptors into `fds`, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe {
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Collects a child's stderr in the background.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = Arc::clone(&buf);
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut g = b.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    buf
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + T;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            return st;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn floe_run_into_a_closed_pipe_then_cancel_exits_2_without_a_panic() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let ck = tempfile::tempdir().unwrap();
    let mut child = floe_command()
        .arg("run")
        .arg(bin("state_word_count"))
        .args(["--port", &port, "--checkpoint-dir"])
        .arg(ck.path())
        .env("FLOE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    // `| head -1`: read the first line, then the reader goes away.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("Job has been submitted with JobID "),
        "{first}"
    );
    server.wait_connections(1, T);
    // Records printed into the closed pipe: the print sink stops, the job runs on.
    for w in ["spark", "flink", "spark"] {
        server.send(w);
    }
    let deadline = Instant::now() + T;
    while !["Standard output is closed", "panicked"]
        .iter()
        .any(|p| err.lock().unwrap().contains(p))
    {
        assert!(
            Instant::now() < deadline,
            "the records never reached the sink"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Cancel (SIGTERM): the job manager's "has been canceled" line meets the closed pipe.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let st = wait_exit(&mut child);
    let log = err.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(st.code(), Some(2), "CANCELED: {log}");
    assert!(
        log.contains("switched from state CANCELLING to CANCELED"),
        "{log}"
    );
    assert_eq!(
        log.matches("Standard output is closed; the print sink discards its records from now on.")
            .count(),
        1,
        "one warning, then the sink is quiet: {log}"
    );
}

#[test]
fn savepoint_inspect_and_check_into_a_closed_pipe_end_quietly() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let job = Job::start(
        "count_window_average",
        &["--port", &port, "--checkpoint-dir", &ckp],
    );
    let job_id = job.job_id();
    server.wait_connections(1, T);
    for l in ["1 3", "2 4", "4 1"] {
        server.send(l);
    }
    job.wait_next_checkpoint(T);
    job.wait_next_checkpoint(T);
    let (_, chk) = checkpoints(ck.path(), &job_id).pop().unwrap();
    drop(job);
    let chk = chk.to_str().unwrap();
    let job_bin = bin("count_window_average");
    for args in [
        vec!["inspect", chk, "--dump", "count-window-average"],
        vec!["inspect", chk], // the summary
        // The report of the job binary in check mode.
        vec!["check", chk, job_bin.to_str().unwrap(), "--port", &port],
    ] {
        let mut child = floe_command()
            .arg("savepoint")
            .args(&args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = collect_stderr(&mut child);
        let st = wait_exit(&mut child);
        let log = err.lock().unwrap().clone();
        assert!(!log.contains("panicked"), "{args:?}: {log}");
        assert_eq!(log, "", "quietly: {args:?}");
        assert_eq!(
            st.signal(),
            Some(13),
            "ended by SIGPIPE as a Unix tool is: {args:?} {st:?}"
        );
    }
}
