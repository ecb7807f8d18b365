//! Paths Floe prints are paths Floe accepts: the `file:/…` of "Savepoint completed. Path:"
//! goes back into `-s`, `floe savepoint inspect`, `check` and `--dispose`; `file:///…` works
//! as a checkpoint directory and a REST savepoint target; other schemes and relative REST
//! targets are refused with one clear line.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

/// POSTs `body` to `path` at `addr`; returns the status code and the response body.
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    request(addr, "POST", path, body)
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn printed_path(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("no savepoint path in: {out}"))
        .to_string()
}

#[test]
fn the_printed_savepoint_path_goes_back_into_every_command() {
    let cwd = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let server = LineServer::start();
    let port = server.port.to_string();
    // A checkpoint directory given as file:///abs.
    let ck_url = format!("execution.checkpointing.dir=file://{}", ck.path().display());
    let job = Job::start(
        "count_window_average",
        &["-D", "rest.port=0", "-D", &ck_url, "--port", &port],
    );
    let job_id = job.job_id();
    let i = job.wait_stderr("Rest endpoint listening at ", 0, T);
    let addr = job.stderr()[i].rsplit(' ').next().unwrap().to_string();
    server.wait_connections(1, T);
    server.send("1 3");
    job.wait_next_checkpoint(T);
    assert!(
        !checkpoints(ck.path(), &job_id).is_empty(),
        "checkpoints go to {}",
        ck.path().display()
    );

    // A savepoint into file:///abs: printed as file:/abs/savepoint-…
    let target = format!("file://{}", sp.path().display());
    let (code, out, err) = floe_in(cwd.path(), &["savepoint", "-m", &addr, &job_id, &target]);
    assert_eq!(code, 0, "{err}");
    let printed = printed_path(&out);
    let prefix = format!("file:{}/savepoint-", sp.path().display());
    assert!(printed.starts_with(&prefix), "{printed}");
    let dir = PathBuf::from(printed.strip_prefix("file:").unwrap());
    assert!(dir.join("_metadata").is_file());

    // A relative target of the CLI is relative to where the CLI runs.
    let (code, out, err) = floe_in(cwd.path(), &["savepoint", "-m", &addr, &job_id, "rel"]);
    assert_eq!(code, 0, "{err}");
    let rel = printed_path(&out);
    assert!(
        rel.starts_with(&format!("file:{}/rel/savepoint-", cwd.path().display())),
        "{rel}"
    );
    // Over REST, file:///abs is a target as it is; the location is Flink's file:/abs/….
    let (code, body) = post(
        &addr,
        &format!("/jobs/{job_id}/savepoints"),
        &format!(r#"{{"target-directory": "{target}", "cancel-job": false}}"#),
    );
    assert_eq!(code, 202, "{body}");
    let rid = body
        .split("\"request-id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    let location = loop {
        let (_, body) = request(
            &addr,
            "GET",
            &format!("/jobs/{job_id}/savepoints/{rid}"),
            "",
        );
        if let Some(l) = body.split("\"location\":\"").nth(1) {
            break l.split('"').next().unwrap().to_string();
        }
        assert!(!body.contains("FAILED"), "{body}");
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(location.starts_with(&prefix), "{location}");
    assert!(PathBuf::from(location.strip_prefix("file:").unwrap())
        .join("_metadata")
        .is_file());
    // Over REST, a relative target or another scheme is a 400 saying why.
    let (code, body) = post(
        &addr,
        &format!("/jobs/{job_id}/savepoints"),
        r#"{"target-directory": "rel", "cancel-job": false}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("'rel' is a relative path"), "{body}");
    let (code, body) = post(
        &addr,
        &format!("/jobs/{job_id}/savepoints"),
        r#"{"target-directory": "gs://x/sp", "cancel-job": false}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("storage scheme 'gs' in 'gs://x/sp' is not supported"),
        "{body}"
    );
    let (code, _, err) = floe_in(cwd.path(), &["savepoint", "-m", &addr, &job_id, "gs://x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("storage scheme 'gs' in 'gs://x' is not supported"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    drop(job);

    // The printed path as it is: inspect, check, -s, --dispose.
    let (code, out, err) = floe_in(cwd.path(), &["savepoint", "inspect", &printed]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind:            savepoint"), "{out}");
    let bin_cwa = bin("count_window_average");
    let (code, out, err) = floe_in(
        cwd.path(),
        &[
            "savepoint",
            "check",
            &printed,
            bin_cwa.to_str().unwrap(),
            "--port",
            &port,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Result: the snapshot restores into this job."),
        "{out}"
    );
    let job2 = Job::start(
        "count_window_average",
        &["-s", &printed, "-D", &ck_url, "--port", &port],
    );
    server.wait_connections(2, T);
    server.send("1 5");
    job2.expect_stdout(&["(1,4)"], T);
    drop(job2);
    let (code, out, err) = floe_in(cwd.path(), &["savepoint", "--dispose", &printed]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("disposed"), "{out}");
    assert!(!dir.exists());
    // Nothing was ever taken for a relative directory named "file:".
    assert!(!cwd.path().join("file:").exists());
}

#[test]
fn other_schemes_are_refused_naming_the_location() {
    // A scheme Floe has no store for, and hdfs:// in a build without the `hdfs` feature.
    for (args, says) in [
        (
            vec!["-s", "gs://bucket/sp", "--port", "1"],
            "storage scheme 'gs' in 'gs://bucket/sp' is not supported",
        ),
        (
            vec![
                "-D",
                "execution.checkpointing.dir=hdfs://nn/ck",
                "--port",
                "1",
            ],
            "--features hdfs",
        ),
    ] {
        let mut job = Job::start("state_word_count", &args);
        assert_eq!(job.wait_exit(T).code(), Some(1), "{args:?}");
        let err = job.stderr();
        let line = err
            .iter()
            .find(|l| l.starts_with("error: "))
            .expect("an error line");
        assert!(line.contains(says), "{line}");
    }
    let cwd = tempfile::tempdir().unwrap();
    let (code, _, err) = floe_in(cwd.path(), &["savepoint", "inspect", "gs://bucket/sp"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: storage scheme 'gs' in 'gs://bucket/sp' is not supported"),
        "{err}"
    );
}
