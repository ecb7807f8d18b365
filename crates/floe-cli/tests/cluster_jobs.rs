//! The session cluster keeps track of its jobs through the real `floe` binary and a real job
//! binary: a job whose job manager process is killed ends FAILED (and everyone following it
//! returns), a daemon killed and started again takes its running jobs back, and a restarted
//! daemon never touches the files of earlier jobs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

mod common;
use common::{cli, floe, free_port, job_binary};

/// True while `pid` is a process that has not ended (a zombie has ended).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && alive(child) {
            out.push(child);
        }
    }
    out
}

fn kill9(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET of `path` at `addr`: status code and JSON body.
fn http_get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or_default())
}

/// A session cluster of this test: its own directory and port. Dropping it stops the
/// daemon and kills, by pid, every process the test noted, also when the test fails.
struct Cluster {
    dir: tempfile::TempDir,
    addr: String,
    /// Kept across daemon restarts, so task managers and job managers reconnect.
    rpc_port: u16,
    pids: Vec<u32>,
}

impl Cluster {
    fn start() -> Cluster {
        let c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            addr: format!("127.0.0.1:{}", free_port()),
            rpc_port: free_port(),
            pids: Vec::new(),
        };
        c.start_daemon();
        c
    }

    fn start_daemon(&self) {
        let port = self.addr.rsplit(':').next().unwrap().to_string();
        let (code, out, err) = cli(&[
            "cluster",
            "start",
            "--dir",
            self.dir.path().to_str().unwrap(),
            // A free RPC port (tests run side by side), slots for -p 2 jobs.
            "-D",
            &format!("jobmanager.rpc.port={}", self.rpc_port),
            "-D",
            "taskmanager.numberOfTaskSlots=4",
            "-D",
            &format!("rest.port={port}"),
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }

    fn daemon_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("jobmanager.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The job manager processes the daemon runs.
    fn job_managers(&mut self) -> Vec<u32> {
        let pids = children_of(self.daemon_pid());
        self.pids.extend(&pids);
        pids
    }

    fn submit_detached(&self, port: &str) -> String {
        let (code, out, err) = cli(&[
            "run",
            "-m",
            &self.addr,
            "-d",
            job_binary().to_str().unwrap(),
            "--port",
            port,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        out.trim()
            .strip_prefix("Job has been submitted with JobID ")
            .unwrap_or_else(|| panic!("no job id in: {out}"))
            .to_string()
    }

    /// The state `floe list -a` shows for `id`, if it lists it.
    fn listed_state(&self, id: &str) -> Option<String> {
        let (code, out, err) = cli(&["list", "-a", "-m", &self.addr]);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .find(|l| l.contains(&format!(" : {id} : ")))
            .and_then(|l| l.rsplit_once('('))
            .map(|(_, s)| s.trim_end_matches(')').to_string())
    }

    /// Every file under the cluster's `jobs` directory with its bytes.
    fn job_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(self.dir.path().join("jobs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("out" | "log")))
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(floe())
            .args(["cluster", "stop", "-m", &self.addr])
            .env_remove("FLOE_CONF_DIR")
            .output();
        // The local task manager of a daemon that was killed outlives it.
        let _ = Command::new(floe())
            .args(["taskmanager", "stop", "--dir"])
            .arg(self.dir.path().join("taskmanager-0"))
            .output();
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("jobmanager.pid")) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                if alive(pid) {
                    kill9(pid);
                }
            }
        }
        for &pid in &self.pids {
            if alive(pid) {
                kill9(pid);
            }
        }
    }
}

/// Runs `floe` with `args` in the background, its stdout lines on a channel.
struct Running {
    child: Child,
    out: Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(floe())
            .args(args)
            .env_remove("FLOE_CONF_DIR")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[floe] {l}");
                let _ = tx.send(l);
            }
        });
        Running { child, out }
    }

    /// The exit code, once it exits within 30 s (else it is killed and the test fails).
    fn exit_code(&mut self, what: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{what} did not return within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Running {
    /// The lines it printed that were not read yet, up to its end of output.
    fn rest_of_output(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.out.recv_timeout(Duration::from_secs(10)) {
            lines.push(l);
        }
        lines
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_job_manager_fails_its_job_and_ends_every_follower() {
    let bin = job_binary();
    let bin = bin.to_str().unwrap();
    let mut cluster = Cluster::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let m = cluster.addr.clone();
    let mut attached = Running::start(&["run", "-m", &m, bin, "--port", &lport]);
    let first = attached.out.recv_timeout(Duration::from_secs(60)).unwrap();
    let id = first
        .strip_prefix("Job has been submitted with JobID ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "1 3").unwrap();
    writeln!(conn, "1 5").unwrap();
    wait_until("the attached run prints (1,4)", || {
        attached.out.try_iter().any(|l| l == "(1,4)")
    });
    assert_eq!(cluster.listed_state(&id).as_deref(), Some("RUNNING"));
    let mut follower = Running::start(&["logs", "-f", "-m", &m, &id]);
    let jms = cluster.job_managers();
    assert_eq!(jms.len(), 1, "one job manager process: {jms:?}");

    kill9(jms[0]);

    assert_eq!(
        attached.exit_code("the attached floe run"),
        1,
        "an attached run of a FAILED job exits 1"
    );
    let said = attached.rest_of_output();
    assert!(
        said.contains(&format!("Job with JobID {id} has failed.")),
        "{said:?}"
    );
    assert_eq!(follower.exit_code("floe logs -f"), 0);
    assert_eq!(cluster.listed_state(&id).as_deref(), Some("FAILED"));
    let (code, job) = http_get(&m, &format!("/jobs/{id}"));
    assert_eq!(
        (code, job["state"].as_str()),
        (200, Some("FAILED")),
        "{job}"
    );
    let (code, overview) = http_get(&m, "/jobs/overview");
    assert_eq!(code, 200);
    let entry = overview["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["jid"] == id.as_str())
        .unwrap_or_else(|| panic!("{overview}"))
        .clone();
    assert_eq!(entry["state"], "FAILED", "{entry}");
    assert_eq!(entry["name"], "s5", "{entry}");
    let (_, cluster_overview) = http_get(&m, "/overview");
    assert_eq!(
        (
            cluster_overview["jobs-running"].as_u64(),
            cluster_overview["jobs-failed"].as_u64()
        ),
        (Some(0), Some(1)),
        "{cluster_overview}"
    );
    let (code, ex) = http_get(&m, &format!("/jobs/{id}/exceptions"));
    assert_eq!(code, 200);
    let cause = ex["root-exception"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        cause.contains("job manager") && cause.contains("lost"),
        "the failure cause names the lost job manager: {ex}"
    );

    let (code, out, err) = cli(&["cancel", "-m", &m, &id]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains(&id) && err.contains("already reached another terminal state (FAILED)"),
        "a clear message: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    drop(conn);
}

#[test]
fn a_restarted_daemon_takes_back_its_running_jobs() {
    let mut cluster = Cluster::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let id = cluster.submit_detached(&lport);
    let (mut conn, _) = listener.accept().unwrap();
    let jms = cluster.job_managers();
    assert_eq!(jms.len(), 1, "{jms:?}");
    let daemon = cluster.daemon_pid();

    kill9(daemon);
    wait_until("the daemon has ended", || !alive(daemon));
    assert!(alive(jms[0]), "the job runs on without its daemon");
    cluster.start_daemon();
    assert_ne!(cluster.daemon_pid(), daemon);

    let (code, out, _) = cli(&["list", "-m", &cluster.addr]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{id} : s5 (RUNNING)")), "{out}");
    // The adopted job is served: its output and its own REST endpoint.
    writeln!(conn, "4 2").unwrap();
    writeln!(conn, "4 6").unwrap();
    wait_until("floe logs shows (4,4)", || {
        cli(&["logs", "-m", &cluster.addr, &id]).1.contains("(4,4)")
    });
    let (code, checkpoints) = http_get(&cluster.addr, &format!("/jobs/{id}/checkpoints"));
    assert_eq!(code, 200, "{checkpoints}");

    let (code, out, err) = cli(&["cancel", "-m", &cluster.addr, &id]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("the job manager process has ended", || !alive(jms[0]));
    wait_until("floe list shows the job CANCELED", || {
        cluster.listed_state(&id).as_deref() == Some("CANCELED")
    });
    drop(conn);
}

#[test]
fn a_restarted_daemon_leaves_earlier_job_files_alone() {
    let mut cluster = Cluster::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let first = cluster.submit_detached(&lport);
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "3 1").unwrap();
    writeln!(conn, "3 3").unwrap();
    wait_until("the first job printed (3,2)", || {
        cli(&["logs", "-m", &cluster.addr, &first])
            .1
            .contains("(3,2)")
    });
    drop(conn); // the socket source ends: the job FINISHES
    wait_until("the first job FINISHED", || {
        cluster.listed_state(&first).as_deref() == Some("FINISHED")
    });
    wait_until("its job manager process has ended", || {
        cluster.job_managers().is_empty()
    });
    let before = cluster.job_files();
    assert_eq!(before.len(), 2, "the first job's .out and .log: {before:?}");

    let (code, out, err) = cli(&["cluster", "stop", "-m", &cluster.addr]);
    assert_eq!(code, 0, "{out}{err}");
    cluster.start_daemon();

    let second = cluster.submit_detached(&lport);
    assert_ne!(second, first);
    let (mut conn, _) = listener.accept().unwrap();
    cluster.job_managers();
    writeln!(conn, "8 10").unwrap();
    writeln!(conn, "8 20").unwrap();
    wait_until("the second job printed (8,15)", || {
        cli(&["logs", "-m", &cluster.addr, &second])
            .1
            .contains("(8,15)")
    });
    let after = cluster.job_files();
    for (p, bytes) in &before {
        let now = std::fs::read(p).unwrap();
        assert!(now == *bytes, "{} changed after the restart", p.display());
    }
    assert_eq!(
        cluster.listed_state(&first).as_deref(),
        Some("FINISHED"),
        "the registry outlives the daemon"
    );
    let (_, out, _) = cli(&["logs", "-m", &cluster.addr, &first]);
    assert!(
        out.contains("(3,2)") && !out.contains("(8,15)"),
        "the first job's output is its own: {out}"
    );
    let new: Vec<&Path> = after
        .iter()
        .map(|(p, _)| p.as_path())
        .filter(|p| !before.iter().any(|(b, _)| b == p))
        .collect();
    assert_eq!(new.len(), 2, "the second job has files of its own: {new:?}");
    for (p, _) in &before {
        assert!(
            p.file_name().unwrap().to_str().unwrap().contains(&first),
            "job files are named by job id: {}",
            p.display()
        );
    }
    assert!(
        new.iter()
            .all(|p| p.file_name().unwrap().to_str().unwrap().contains(&second)),
        "{new:?}"
    );
    drop(conn);
}

#[test]
fn a_second_daemon_on_one_directory_is_refused() {
    let cluster = Cluster::start();
    let other = free_port();
    let (code, _, err) = cli(&[
        "cluster",
        "start",
        "--dir",
        cluster.dir.path().to_str().unwrap(),
        // Any free RPC port (tests run side by side), slots for -p 2 jobs.
        "-D",
        "jobmanager.rpc.port=0",
        "-D",
        "taskmanager.numberOfTaskSlots=4",
        "-D",
        &format!("rest.port={other}"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is in use by another Floe cluster daemon"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The first daemon is untouched.
    let (code, out, _) = cli(&["cluster", "status", "-m", &cluster.addr]);
    assert_eq!(code, 0, "{out}");
}
