//! Helpers shared by the engine's integration tests: reading Flink's checkpoint layout
//! (`<root>/<job-id>/chk-<n>/_metadata`), waiting for a condition with a deadline, and plain
//! HTTP requests to a job manager's REST API.
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The names of every entry in every job directory under a checkpoint root, sorted
/// (`chk-3`, `shared`, `taskowned`, ...).
pub fn chk_dirs(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for job in std::fs::read_dir(root).unwrap().flatten() {
        if job.path().is_dir() {
            for c in std::fs::read_dir(job.path()).unwrap().flatten() {
                v.push(c.file_name().to_string_lossy().into_owned());
            }
        }
    }
    v.sort();
    v
}

/// Every `chk-<n>` directory under a checkpoint root with its number, lowest first.
pub fn checkpoints(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut v = Vec::new();
    for job in std::fs::read_dir(root).unwrap().flatten() {
        if !job.path().is_dir() {
            continue;
        }
        for c in std::fs::read_dir(job.path()).unwrap().flatten() {
            let name = c.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("chk-") {
                v.push((id.parse::<u64>().unwrap(), c.path()));
            }
        }
    }
    v.sort();
    v
}

/// The highest-numbered retained checkpoint under a checkpoint root.
pub fn latest_checkpoint(root: &Path) -> PathBuf {
    checkpoints(root).pop().expect("a retained checkpoint").1
}

/// The one job directory under a checkpoint root.
pub fn only_job_dir(root: &Path) -> PathBuf {
    std::fs::read_dir(root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Polls `done` every few milliseconds; panics naming `what` if it is not true within `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One HTTP/1.1 request over a fresh connection: the status and the JSON body (`Null` when
/// the body is not JSON), with chunked framing decoded.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code: u16 = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap();
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Decode chunked framing.
        let mut out = String::new();
        let mut r = rest;
        loop {
            let (len, tail) = r.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            r = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (code, serde_json::from_str(&payload).unwrap_or(Value::Null))
}
