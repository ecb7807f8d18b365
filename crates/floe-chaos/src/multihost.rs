//! The multi-host mode's cluster: three network-namespace hosts (`floe_testkit::netns`) on
//! one bridge, laid out as `docs/deployment.md` and `scripts/netns-cluster.sh` describe.
//!
//! - host 1 (index 0): the S3 server (`s3s-fs`, bucket `floe`) and the job manager
//!   (`floe cluster start --taskmanagers 0`, REST on [`REST_PORT`], RPC on [`RPC_PORT`]);
//! - hosts 2 and 3 (indices 1, 2): one task manager each (`floe taskmanager start`).
//!
//! Checkpoints and savepoints go to `s3://floe/…`; the namespaces share the machine's file
//! system, so the round's input and output directories, the cluster directory and the S3
//! server's data (a plain directory per bucket) are ordinary paths the harness reads.
//! Only the network is separate: the harness reaches the hosts through processes it
//! starts on them and through sockets it opens inside host 1's namespace.

use crate::faults::{alive, is_worker, signal};
use anyhow::{bail, Context as _};
use floe_testkit::netns::{Host, Hosts};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The job manager's REST port on host 1.
pub const REST_PORT: u16 = 8081;
/// The job manager's RPC port on host 1 (fixed: task managers find a restarted daemon there).
pub const RPC_PORT: u16 = 6123;
/// The S3 server's port on host 1.
pub const S3_PORT: u16 = 8014;
/// The bucket checkpoints, savepoints and HA records go to.
pub const BUCKET: &str = "floe";
/// Index of the job manager host.
pub const JM_HOST: usize = 0;
/// Indices of the task manager hosts.
pub const TM_HOSTS: [usize; 2] = [1, 2];

/// How long faults that hold something last in multi-host mode, and the settings they are
/// measured against.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `execution.checkpointing.timeout`.
    pub checkpoint_timeout: Duration,
    /// `heartbeat.timeout`.
    pub heartbeat_timeout: Duration,
    /// `taskmanager.network.tcp-user-timeout`.
    pub network_timeout: Duration,
}

/// What [`Net::start`] builds.
pub struct Layout<'a> {
    /// The harness's directory for the hosts.
    pub dir: &'a Path,
    /// The S3 server's data (bucket `floe` is a directory in it).
    pub s3_root: &'a Path,
    /// The `floe` CLI.
    pub floe: &'a Path,
    /// Slots of each task manager.
    pub slots: u32,
    /// Timeouts.
    pub timing: Timing,
    /// Settings every job shares (checkpoint interval, restarts, parallelism).
    pub jobs: &'a str,
    /// `execution.checkpointing.dir` (`s3://floe/ck`, or a path on the shared file system).
    pub checkpoints: &'a str,
    /// `execution.checkpointing.savepoint-dir`.
    pub savepoints: &'a str,
    /// Whether `high-availability.storageDir` is set (a shared path).
    pub ha: bool,
}

/// The three hosts and what runs on them besides the jobs.
pub struct Net {
    /// The namespaces (dropped last: killing everything on them).
    pub hosts: Hosts,
    /// The harness's directory for the hosts (confs, task manager directories, S3 data).
    pub dir: PathBuf,
    /// `FLOE_CONF_DIR` of host 1 (job manager, jobs, the CLI).
    pub jm_conf: PathBuf,
    /// `FLOE_CONF_DIR` of jobs run in per-job mode on host 1.
    pub per_job_conf: PathBuf,
    /// `FLOE_CONF_DIR` of the task manager hosts.
    pub tm_conf: PathBuf,
    /// Root of the S3 server's data: bucket `floe` is `<s3_root>/floe`.
    pub s3_root: PathBuf,
    /// `rest.auth.token` of the cluster.
    pub token: String,
    floe: PathBuf,
    s3: std::sync::Mutex<Child>,
}

fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Net {
    /// Builds the hosts, starts the S3 server on host 1 with its data under
    /// `layout.s3_root`, and writes the hosts' `floe.yaml` files. The job manager and the
    /// task managers are started by the caller ([`Net::start_task_manager`]).
    pub fn start(layout: &Layout<'_>) -> anyhow::Result<Net> {
        let Layout {
            dir,
            s3_root,
            floe,
            slots,
            timing,
            jobs,
            checkpoints,
            savepoints,
            ha,
        } = *layout;
        let s3s = floe_testkit::s3::binary()?;
        let hosts = Hosts::create(3).context("building the three hosts")?;
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all(s3_root.join(BUCKET))?;
        let token = random_hex(16);
        let secret = random_hex(16);
        let jm_ip = hosts.host(JM_HOST).ip();
        let common = format!(
            "jobmanager.rpc.address: {jm_ip}\n\
             jobmanager.rpc.port: {RPC_PORT}\n\
             rest.address: {jm_ip}\n\
             rest.port: {REST_PORT}\n\
             rest.auth.token: {token}\n\
             heartbeat.interval: 200ms\n\
             heartbeat.timeout: {}ms\n\
             taskmanager.network.tcp-user-timeout: {}ms\n",
            timing.heartbeat_timeout.as_millis(),
            timing.network_timeout.as_millis(),
        );
        let jm_conf = dir.join("conf-h1");
        std::fs::create_dir_all(&jm_conf)?;
        let mut jm = format!(
            "{common}rest.bind-address: {jm_ip}\n\
             slot.request.timeout: 120s\n\
             execution.checkpointing.dir: {checkpoints}\n\
             execution.checkpointing.savepoint-dir: {savepoints}\n\
             {jobs}"
        );
        if checkpoints.starts_with("s3://") || ha {
            jm.push_str(&format!(
                "s3.endpoint: http://{jm_ip}:{S3_PORT}\n\
                 s3.access-key: floe\n\
                 s3.secret-key: {secret}\n\
                 s3.path.style.access: true\n\
                 s3.endpoint.region: us-east-1\n"
            ));
        }
        if ha {
            // A path every job manager host reaches (the hosts share this file system); the
            // HA directory cannot be on S3 yet.
            jm.push_str(&format!(
                "high-availability.storageDir: file://{}\n",
                dir.join("ha").display()
            ));
        }
        // Jobs run in per-job mode on host 1 (second jobs) must not find the cluster at the
        // configured REST address, or `floe run` would submit them to it.
        let per_job_conf = dir.join("conf-h1-per-job");
        std::fs::create_dir_all(&per_job_conf)?;
        let per_job: String = jm
            .lines()
            .filter(|l| !l.starts_with("rest.address:") && !l.starts_with("rest.port:"))
            .filter(|l| !l.starts_with("rest.bind-address:"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            per_job_conf.join("floe.yaml"),
            format!("{per_job}rest.address: 127.0.0.1\nrest.port: 0\n"),
        )?;
        std::fs::write(jm_conf.join("floe.yaml"), jm)?;
        let tm_conf = dir.join("conf-tm");
        std::fs::create_dir_all(&tm_conf)?;
        std::fs::write(
            tm_conf.join("floe.yaml"),
            format!("{common}taskmanager.numberOfTaskSlots: {slots}\n"),
        )?;
        let log = std::fs::File::create(dir.join("s3s-fs.log"))?;
        let host = hosts.host(JM_HOST);
        let child = host
            .spawn(
                host.command(&s3s)
                    .args(["--host", &jm_ip.to_string()])
                    .args(["--port", &S3_PORT.to_string()])
                    .args(["--access-key", "floe", "--secret-key", &secret])
                    .arg(s3_root)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log),
            )
            .context("starting the S3 server")?;
        let net = Net {
            hosts,
            dir: dir.to_path_buf(),
            jm_conf,
            per_job_conf,
            tm_conf,
            s3_root: s3_root.to_path_buf(),
            token,
            floe: floe.to_path_buf(),
            s3: std::sync::Mutex::new(child),
        };
        let s3 = SocketAddr::new(jm_ip.into(), S3_PORT);
        let until = Instant::now() + Duration::from_secs(15);
        while !net.on_jm(|| TcpStream::connect_timeout(&s3, Duration::from_millis(200)).is_ok())? {
            anyhow::ensure!(
                Instant::now() < until,
                "the S3 server did not listen on {s3} within 15 s; see {}",
                net.dir.join("s3s-fs.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(net)
    }

    /// The job manager host.
    pub fn jm(&self) -> &Host {
        self.hosts.host(JM_HOST)
    }

    /// Runs `f` inside host 1's network namespace (REST calls to the cluster).
    pub fn on_jm<R: Send>(&self, f: impl FnOnce() -> R + Send) -> anyhow::Result<R> {
        self.jm().run(f)
    }

    /// `http://<host 1>:<REST_PORT>` without the scheme.
    pub fn rest_addr(&self) -> String {
        format!("{}:{REST_PORT}", self.jm().ip())
    }

    /// The S3 server's pid.
    fn s3_pid(&self) -> u32 {
        self.s3.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// SIGSTOPs (`true`) or SIGCONTs the S3 server.
    pub fn pause_s3(&self, stop: bool) -> bool {
        signal(
            self.s3_pid(),
            if stop { libc::SIGSTOP } else { libc::SIGCONT },
        )
    }

    /// Whether the S3 server still runs.
    pub fn s3_alive(&self) -> bool {
        let mut c = self.s3.lock().unwrap_or_else(|e| e.into_inner());
        matches!(c.try_wait(), Ok(None))
    }

    /// The task manager directory of host `i`.
    pub fn tm_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{}", i + 1)).join("taskmanager")
    }

    /// `floe taskmanager start` on host `i` (a replacement reuses the directory; its
    /// predecessor's lock died with it).
    pub fn start_task_manager(&self, i: usize) -> anyhow::Result<()> {
        let host = self.hosts.host(i);
        let dir = self.tm_dir(i);
        let o = host
            .command(&self.floe)
            .env("FLOE_CONF_DIR", &self.tm_conf)
            .args(["taskmanager", "start", "--dir"])
            .arg(&dir)
            .args(["-D", &format!("taskmanager.host={}", host.ip())])
            .stdin(Stdio::null())
            .output()
            .context("running floe taskmanager start")?;
        if !o.status.success() {
            bail!(
                "floe taskmanager start on host {} failed: {}{}",
                i + 1,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    }

    /// The task manager daemon of host `i`, from its pid file, while it runs.
    pub fn tm_pid(&self, i: usize) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.tm_dir(i).join("taskmanager.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// Worker processes (of any job) running on host `i`.
    pub fn workers_on(&self, i: usize) -> Vec<u32> {
        self.hosts
            .host(i)
            .pids()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p as u32)
            .filter(|&p| is_worker(p))
            .collect()
    }

    /// The task manager host running process `pid`, if one does.
    pub fn tm_host_of(&self, pid: u32) -> Option<usize> {
        TM_HOSTS.into_iter().find(|&i| {
            self.hosts
                .host(i)
                .pids()
                .unwrap_or_default()
                .contains(&(pid as i32))
        })
    }

    /// Waits up to `within` until the cluster lists a task manager of host `i`; the time it
    /// took, or `None`.
    pub fn wait_registered(&self, i: usize, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let ip = self.hosts.host(i).ip().to_string();
        while start.elapsed() < within {
            let listed = crate::round::get_json(self, &self.rest_addr(), "/taskmanagers")
                .and_then(|v| {
                    let tms = v.get("taskmanagers")?.as_array()?.clone();
                    Some(tms.iter().any(|t| {
                        t.get("host").and_then(|h| h.as_str()) == Some(ip.as_str())
                            || t.get("path")
                                .and_then(|h| h.as_str())
                                .is_some_and(|p| p.contains(&format!("{ip}:")))
                    }))
                })
                .unwrap_or(false);
            if listed {
                return Some(start.elapsed());
            }
            crate::nap(Duration::from_millis(100));
            if crate::interrupted() {
                return None;
            }
        }
        None
    }
}

/// A command for the `floe` CLI on the job manager host with its configuration.
pub fn floe_on_jm(net: &Net, floe: &Path) -> Command {
    let mut c = net.jm().command(floe);
    c.env("FLOE_CONF_DIR", &net.jm_conf).stdin(Stdio::null());
    c
}
