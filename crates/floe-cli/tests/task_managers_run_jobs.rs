//! Jobs of a session cluster running their worker processes in task managers' slots,
//! with the real binaries.
//!
//! IGNORED until the lead wires `floe::cluster::RemoteLauncher::from_env` into compile.rs
//! (after helper C's multi-process executor is merged): until then a job's workers run on
//! the job manager's host whatever the cluster offers. Enable with `--include-ignored`.

mod common;

use common::{alive, cli, free_port, http, job_binary, wait_until};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

struct Setup {
    dir: tempfile::TempDir,
    rest: String,
    rpc_port: u16,
    tms: Vec<PathBuf>,
}

impl Setup {
    fn start() -> Setup {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
            rest: format!("127.0.0.1:{}", free_port()),
            rpc_port: free_port(),
            tms: Vec::new(),
        };
        let rest = format!("rest.port={}", s.rest.rsplit(':').next().unwrap());
        let rpc = format!("jobmanager.rpc.port={}", s.rpc_port);
        let (code, out, err) = cli(&[
            "cluster",
            "start",
            "--taskmanagers",
            "0",
            "--dir",
            s.dir.path().to_str().unwrap(),
            "-D",
            &rest,
            "-D",
            &rpc,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        s
    }

    fn task_manager(&mut self, id: &str, slots: u32) -> PathBuf {
        let dir = self.dir.path().join(format!("tm-{id}"));
        let (code, out, err) = cli(&[
            "taskmanager",
            "start",
            "--dir",
            dir.to_str().unwrap(),
            "-D",
            &format!("jobmanager.rpc.port={}", self.rpc_port),
            "-D",
            &format!("taskmanager.numberOfTaskSlots={slots}"),
            "-D",
            &format!("taskmanager.resource-id={id}"),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        self.tms.push(dir.clone());
        dir
    }

    fn free_slots(&self) -> Vec<u64> {
        let (_, v) = http(&self.rest, "GET", "/taskmanagers", None);
        v["taskmanagers"]
            .as_array()
            .map(|a| a.iter().map(|t| t["freeSlots"].as_u64().unwrap()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = cli(&["cluster", "stop", "-m", &self.rest]);
        for d in &self.tms {
            let _ = cli(&["taskmanager", "stop", "--dir", d.to_str().unwrap()]);
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("jobmanager.pid")) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                if alive(pid) {
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Everything the workers of `job` printed on task manager `tm`.
fn worker_output(tm: &Path, job: &str) -> String {
    let dir = tm.join("workers").join(job);
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "out") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn a_job_runs_in_the_slots_of_two_task_managers() {
    let mut s = Setup::start();
    let a = s.task_manager("tm-a", 2);
    let b = s.task_manager("tm-b", 2);
    wait_until("both registered", || s.free_slots() == [2, 2]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let ck = tempfile::tempdir().unwrap();
    let (code, out, err) = cli(&[
        "run",
        "-m",
        &s.rest,
        "-d",
        "-p",
        "4",
        job_binary().to_str().unwrap(),
        "--port",
        &port,
        "--checkpoint-dir",
        ck.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let id = out
        .trim()
        .strip_prefix("Job has been submitted with JobID ")
        .unwrap()
        .to_string();
    wait_until("the job holds every slot", || s.free_slots() == [0, 0]);
    wait_until("floe list shows where its subtasks run", || {
        cli(&["list", "-m", &s.rest])
            .1
            .contains("subtasks 0,1 on tm-a (127.0.0.1), 2,3 on tm-b (127.0.0.1)")
    });
    let (mut conn, _) = listener.accept().unwrap();
    for k in 1..=8u64 {
        writeln!(conn, "{k} 1").unwrap();
        writeln!(conn, "{k} 3").unwrap();
    }
    wait_until(
        "every key's average is printed on the task managers",
        || {
            let all = worker_output(&a, &id) + &worker_output(&b, &id);
            (1..=8u64).all(|k| all.contains(&format!("({k},2)")))
        },
    );
    let (code, _, err) = cli(&["cancel", "-m", &s.rest, &id]);
    assert_eq!(code, 0, "{err}");
    wait_until("its slots are free again", || s.free_slots() == [2, 2]);
    wait_until("no worker runs on tm-a", || {
        http(&s.rest, "GET", "/taskmanagers/tm-a", None).1["workers"]
            .as_array()
            .is_some_and(|w| w.is_empty())
    });
    drop(conn);
}

#[test]
fn a_job_waits_for_slots_then_fails_naming_them() {
    let mut s = Setup::start();
    s.task_manager("tm-a", 1);
    wait_until("registered", || s.free_slots() == [1]);
    let (code, out, err) = cli(&[
        "run",
        "-m",
        &s.rest,
        "-p",
        "2",
        "-D",
        "slot.request.timeout=2s",
        "-D",
        "restart-strategy=none",
        job_binary().to_str().unwrap(),
        "--port",
        &free_port().to_string(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "Could not acquire the minimum required resources: 2 slot(s) required, 1 available"
        ),
        "{out}{err}"
    );
}
