//! Bad input and failure paths of a job binary, through real processes: huge bad records,
//! the bounded exception history, invalid UTF-8 on a socket, heartbeat settings refused at
//! start, a worker's restore error, the exit code of a cancelled job and the restore line.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Restarts quickly and (almost) without limit, so a test can fail a job many times.
const FAST_RESTARTS: [&str; 6] = [
    "-D",
    "restart-strategy.type=fixed-delay",
    "-D",
    "restart-strategy.fixed-delay.attempts=1000",
    "-D",
    "restart-strategy.fixed-delay.delay=10 ms",
];

fn args<'a>(port: &'a str, ckp: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--checkpoint-dir",
        ckp,
    ];
    v.extend_from_slice(extra);
    v
}

/// The failure causes of the job manager's log, in order.
fn failure_causes(job: &Job) -> Vec<String> {
    job.stderr()
        .iter()
        .filter_map(|l| {
            l.split(" to FAILED with failure cause: ")
                .nth(1)
                .map(str::to_string)
        })
        .collect()
}

/// `GET path` on the job's REST endpoint, as JSON.
fn rest_get(job: &Job, path: &str) -> (u16, serde_json::Value) {
    let i = job.wait_stderr("Rest endpoint listening at ", 0, T);
    let addr = job.stderr()[i]
        .split("Rest endpoint listening at ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn a_40_mb_bad_record_reaches_the_job_manager_as_its_cause_cut_short() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let job = Job::start("count_window_average", &args(&port, &ckp, &FAST_RESTARTS));
    server.wait_connections(1, T);
    // No blank in it: the parse error quotes the record twice (80 MB of message).
    server.send(&"x".repeat(40 << 20));
    job.wait_stderr(
        " to FAILED with failure cause: ",
        0,
        Duration::from_secs(60),
    );
    let cause = failure_causes(&job).remove(0);
    assert!(
        cause.contains("invalid record 'xxxx") && cause.contains("bytes cut)"),
        "the parse error, cut short: {}",
        &cause[..cause.len().min(300)]
    );
    assert!(!cause.contains("was lost"), "not a lost worker: {cause}");
    assert!(
        cause.len() < 16 << 10,
        "cut to a few KiB: {} bytes",
        cause.len()
    );
    // And the job goes on: the next attempt connects again.
    server.wait_connections(2, T);
}

#[test]
fn the_exception_history_keeps_the_latest_16_failures_with_cut_messages() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut extra = FAST_RESTARTS.to_vec();
    extra.extend_from_slice(&["-D", "rest.port=0"]);
    let job = Job::start("count_window_average", &args(&port, &ckp, &extra));
    let job_id = job.job_id();
    for i in 1..=20 {
        server.wait_connections(i, T);
        server.send(&format!("{i} {}", "9".repeat(1 << 20)));
    }
    server.wait_connections(21, Duration::from_secs(60));
    let (status, v) = rest_get(&job, &format!("/jobs/{job_id}/exceptions"));
    assert_eq!(status, 200);
    let entries = v["exceptionHistory"]["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        16,
        "web.exception-history-size defaults to 16"
    );
    for e in entries {
        let m = e["stacktrace"].as_str().unwrap();
        assert!(m.len() < 16 << 10, "a cut message: {} bytes", m.len());
        assert!(m.contains("bytes cut)"), "{}", &m[..m.len().min(200)]);
    }
    // Newest first, the latest 16 of the 20: records 20 down to 5.
    let first = entries[0]["stacktrace"].as_str().unwrap();
    let last = entries[15]["stacktrace"].as_str().unwrap();
    assert!(
        first.contains("invalid record '20 9999"),
        "{}",
        &first[..200]
    );
    assert!(last.contains("invalid record '5 9999"), "{}", &last[..200]);
}

#[test]
fn invalid_utf8_on_a_socket_fails_the_source_naming_the_connection_and_byte_offset() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let _job = {
        let job = Job::start("count_window_average", &args(&port, &ckp, &FAST_RESTARTS));
        let (mut s, _) = listener.accept().unwrap();
        // The byte at offset 10 of the connection is not UTF-8.
        s.write_all(b"1 2\n3 4\n5 \xff6\n").unwrap();
        s.flush().unwrap();
        job.wait_stderr(" to FAILED with failure cause: ", 0, T);
        let cause = failure_causes(&job).remove(0);
        assert!(
            cause.contains(&format!("127.0.0.1:{port}"))
                && cause.contains("invalid UTF-8")
                && cause.contains("byte offset 10"),
            "{cause}"
        );
        (job, s)
    };
}

#[test]
fn a_heartbeat_timeout_below_the_interval_is_refused_at_start() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start(
        "count_window_average",
        &args(
            &port,
            &ckp,
            &[
                "-D",
                "heartbeat.interval=2 s",
                "-D",
                "heartbeat.timeout=500 ms",
            ],
        ),
    );
    let st = job.wait_exit(Duration::from_secs(20));
    assert_eq!(st.code(), Some(1));
    let err = job.stderr().join("\n");
    assert!(
        err.contains("heartbeat.timeout") && err.contains("heartbeat.interval"),
        "{err}"
    );
    assert!(
        !err.contains("Submitting job"),
        "refused before the job runs"
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_workers_restore_error_is_the_cause_of_the_failure() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let job = Job::start("count_window_average", &args(&port, &ckp, &FAST_RESTARTS));
    let job_id = job.job_id();
    server.wait_connections(1, T);
    server.send("1 2");
    let n = job.wait_next_checkpoint(T);
    // The checkpoint the next attempt restores from goes bad on disk; the job manager
    // still holds it as its latest.
    let meta = ck
        .path()
        .join(&job_id)
        .join(format!("chk-{n}"))
        .join("_metadata");
    std::fs::write(&meta, b"not json").unwrap();
    server.send("bad");
    let i = job.wait_stderr("(attempt #1) switched from RUNNING to FAILED", 0, T);
    let line = &job.stderr()[i];
    assert!(
        line.contains("corrupt metadata file") && line.contains(&format!("chk-{n}")),
        "{line}"
    );
    assert!(!line.contains("exited before connecting"), "{line}");
}

#[test]
fn a_cancelled_job_exits_2_when_the_binary_is_run_directly() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start("count_window_average", &args(&port, &ckp, &[]));
    server.wait_connections(1, T);
    job.wait_stderr("switched from INITIALIZING to RUNNING", 0, T);
    let st = job.terminate();
    assert_eq!(st.code(), Some(2), "CANCELED exits 2, as under floe run");
    assert!(job.stderr().join("\n").contains("to CANCELED"));
}

#[test]
fn the_restore_line_names_the_job_of_the_snapshot() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start("count_window_average", &args(&port, &ckp, &[]));
    let old_id = job.job_id();
    server.wait_connections(1, T);
    server.send("1 2");
    let n = job.wait_next_checkpoint(T);
    job.terminate();
    let chk = ck.path().join(&old_id).join(format!("chk-{n}"));
    let chk = chk.to_str().unwrap();
    let job2 = Job::start("count_window_average", &args(&port, &ckp, &["-s", chk]));
    let new_id = job2.job_id();
    let i = job2.wait_stderr("Restoring job ", 0, T);
    let line = &job2.stderr()[i];
    assert!(
        line.contains(&format!("Restoring job {new_id} from Checkpoint {n} @ "))
            && line.contains(&format!(" for {old_id} located at {chk}")),
        "{line}"
    );
}
