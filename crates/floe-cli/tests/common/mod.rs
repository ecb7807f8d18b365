//! What the `floe` CLI tests share: the `floe` binary, the example job binary, a runner of
//! `floe` and a free loopback port.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// The `floe` binary of this package.
pub fn floe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_floe"))
}

/// The example job binary next to `floe`, brought up to date first (a no-op when it is),
/// so a run of this package's tests alone never uses a stale job binary.
pub fn job_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "floe-examples",
                "--bin",
                "count_window_average",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "building the example job binary failed");
    });
    floe().with_file_name("count_window_average")
}

/// Runs `floe args...` without FLOE_CONF_DIR; returns exit code, stdout and stderr.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(floe())
        .args(args)
        .env_remove("FLOE_CONF_DIR")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A loopback port free right now (the listener is closed again).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A request of `method path` (with a JSON `body`) at `addr`: status code and JSON body
/// (`Value::Null` when the body is not JSON, e.g. empty).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((len, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
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
    (
        code,
        serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    )
}

/// Waits up to 60 s until `f` holds; panics naming `what` otherwise.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// True while `pid` is a process that has not ended (a zombie has ended).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A session cluster of a test, on its own directory and port. Dropped, it stops the daemon
/// (cancelling its jobs) and kills, by pid, a daemon that did not stop.
pub struct SessionCluster {
    /// The cluster directory.
    pub dir: tempfile::TempDir,
    /// Its REST address, `127.0.0.1:<port>`.
    pub addr: String,
    /// Its RPC port, kept across daemon restarts so task managers and job managers
    /// reconnect to the new daemon.
    pub rpc_port: u16,
}

impl SessionCluster {
    /// Starts one.
    pub fn start() -> SessionCluster {
        let c = SessionCluster {
            dir: tempfile::tempdir().unwrap(),
            addr: format!("127.0.0.1:{}", free_port()),
            rpc_port: free_port(),
        };
        c.start_daemon();
        c
    }

    /// Starts its daemon (again).
    pub fn start_daemon(&self) {
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

    /// The daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("jobmanager.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Kills the daemon with SIGKILL and waits until it is gone; its jobs run on.
    pub fn kill_daemon(&self) {
        let pid = self.daemon_pid();
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        wait_until("the killed daemon is gone", || !alive(pid));
    }

    /// Submits the example job binary detached, reading `127.0.0.1:<port>`, with `extra`
    /// options of `floe run` before the binary; returns its job id.
    pub fn submit(&self, port: u16, checkpoint_dir: &std::path::Path, extra: &[&str]) -> String {
        let port = port.to_string();
        let mut args = vec!["run", "-m", &self.addr, "-d"];
        args.extend_from_slice(extra);
        let job = job_binary();
        args.extend([
            job.to_str().unwrap(),
            "--port",
            &port,
            "--checkpoint-dir",
            checkpoint_dir.to_str().unwrap(),
        ]);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 0, "{out}{err}");
        out.trim()
            .strip_prefix("Job has been submitted with JobID ")
            .unwrap_or_else(|| panic!("no job id in: {out}"))
            .to_string()
    }

    /// The job's state as `GET /jobs/:jobid` gives it.
    pub fn state(&self, id: &str) -> String {
        http(&self.addr, "GET", &format!("/jobs/{id}"), None).1["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the job is in `state`.
    pub fn wait_for_state(&self, id: &str, state: &str) {
        wait_until(&format!("job {id} is {state}"), || self.state(id) == state);
    }
}

impl Drop for SessionCluster {
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
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// A socket source on a free port: every connection gets `payload` and stays open.
pub fn source(payload: &'static [u8]) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for mut c in l.incoming().map_while(Result::ok) {
            let _ = std::io::Write::write_all(&mut c, payload);
            open.push(c);
        }
    });
    port
}
