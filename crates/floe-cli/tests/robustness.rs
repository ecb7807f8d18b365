//! The CLI refuses what is not a Floe job and malformed job ids, with one-line errors and
//! non-zero exits; a job's REST API answers a malformed job id with 400.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{cli, free_port, job_binary};

/// A loopback address nothing listens on (no session cluster answers there).
fn nowhere() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[test]
fn floe_run_of_a_binary_that_is_not_a_floe_job_is_an_error() {
    let m = nowhere();
    let (code, _, err) = cli(&["run", "-m", &m, "/bin/true"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        error_lines(&err),
        ["error: /bin/true is not a Floe job (it exited with exit status: 0 without submitting a job)"],
        "{err}"
    );
    // A Floe job that refuses its settings is not called "not a Floe job": its own error
    // is the one line.
    let job = job_binary();
    let (code, _, err) = cli(&[
        "run",
        "-m",
        &m,
        job.to_str().unwrap(),
        "-D",
        "heartbeat.timeout=soon",
    ]);
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("heartbeat.timeout"), "{err}");
}

#[test]
fn savepoint_check_with_a_binary_that_is_not_a_floe_job_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().to_str().unwrap();
    let (code, _, err) = cli(&["savepoint", "check", sp, "/bin/true"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        error_lines(&err),
        ["error: /bin/true is not a Floe job (it exited with exit status: 0 without checking the snapshot)"],
        "{err}"
    );
}

#[test]
fn malformed_job_ids_are_refused_by_the_cli() {
    let m = nowhere();
    for args in [
        vec!["cancel", "-m", &m, "bad/../id"],
        vec!["stop", "-m", &m, "bad/../id"],
        vec!["savepoint", "-m", &m, "bad/../id", "/tmp/sp"],
        vec!["checkpoints", "-m", &m, "bad/../id"],
    ] {
        let (code, out, err) = cli(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(
            error_lines(&err),
            ["error: invalid job id 'bad/../id': expected 32 hexadecimal characters, e.g. fd72014d4c864993a2e5a9287b4a9c5d"],
            "{args:?}"
        );
        assert!(
            !out.contains("bad/../id"),
            "{args:?}: refused before anything: {out}"
        );
    }
}

#[test]
fn a_malformed_job_id_is_a_bad_request_over_rest() {
    // A socket for the job's source, so it runs.
    let source = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = source.local_addr().unwrap().port().to_string();
    let ck = tempfile::tempdir().unwrap();
    let mut child = Command::new(job_binary())
        .args(["--port", &port, "--checkpoint-dir"])
        .arg(ck.path())
        .args(["-D", "rest.port=0"])
        .env_remove("FLOE_CONF_DIR")
        .env("FLOE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut text = String::new();
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                return;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(a) = text
                .lines()
                .find_map(|l| l.split("Rest endpoint listening at ").nth(1))
            {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let get = |path: &str| -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect(&addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{addr}: {e}"),
            }
        };
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        (
            head.split(' ').nth(1).unwrap().parse().unwrap(),
            body.to_string(),
        )
    };
    let (status, body) = get("/jobs/not-a-job-id");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid job id 'not-a-job-id'"), "{body}");
    let (status, body) = get("/jobs/not-a-job-id/checkpoints");
    assert_eq!(status, 400, "{body}");
    // A well-formed id of no job is still 404.
    let (status, body) = get("/jobs/00000000000000000000000000000000");
    assert_eq!(status, 404, "{body}");
    let _ = child.kill();
    let _ = child.wait();
}
