//! Issue 11 end to end: a Floe cluster on three "hosts" (network namespaces on one bridge,
//! `floe_testkit::netns`), with the real binaries only.
//!
//! Layout (as `docs/deployment.md` and `scripts/netns-cluster.sh` describe it):
//! - host 1: the S3 server (`s3s-fs`, bucket `floe`) and the job manager (`floe cluster start
//!   --taskmanagers 0`, REST :8081 and RPC :6123 on host 1's address, a token);
//! - hosts 2 and 3: one task manager each (`floe taskmanager start`), 2 slots unless a test
//!   says otherwise.
//!
//! The job is the examples' `exactly_once_word_count` at parallelism 4 (2 worker processes of
//! 2 threads, one per task manager host), checkpointing every 200 ms into
//! `s3://floe/ck`, reading generated words paced per subtask so that it runs for several
//! seconds. The hosts share the machine's filesystem, so input and output are plain
//! directories every host sees; every test checks the committed output line by line: each
//! `(word,n)` for `n = 1..=count` exactly once.
//!
//! Faults: a task manager host crashing (every process `kill -9`), a host cut off the network
//! (its switch port down: no reset, packets vanish), the job manager host's Floe processes
//! `kill -9` (with `high-availability.storageDir` on a shared path, checkpoints on S3), and a rescale through a savepoint
//! on S3 onto one task manager host. Needs root, iproute2 and `s3s-fs`
//! (`scripts/test-tools.sh`); run with `--test-threads=1` (each test builds its own hosts,
//! but they share two cores).

use anyhow::{bail, Context as _, Result};
use floe_testkit::netns::Hosts;
use floe_testkit::s3::{ACCESS_KEY, BUCKET, SECRET_KEY};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `floe` binary of this package.
fn floe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_floe"))
}

/// The example job binary next to `floe`, built first (a no-op when it is up to date), so
/// that a run of this test alone never uses a stale job binary.
fn job_binary() -> PathBuf {
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
                "exactly_once_word_count",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "building exactly_once_word_count failed");
    });
    floe().with_file_name("exactly_once_word_count")
}

// Ports: every test has hosts of its own, so the documented defaults never collide.
const REST_PORT: u16 = 8081;
const RPC_PORT: u16 = 6123;
const S3_PORT: u16 = 8014;
const TOKEN: &str = "multi-host-test-token-4f1c9a";

/// Failure detection of these tests: a connection to an unplugged host fails after
/// [`TCP_USER_TIMEOUT`], a silent task manager is dropped after `heartbeat.timeout`.
const TCP_USER_TIMEOUT: &str = "2s";
const HEARTBEAT_INTERVAL: &str = "500ms";
const HEARTBEAT_TIMEOUT: &str = "3s";
/// From unplugging a host to the next completed checkpoint of the restarted job: the user
/// timeout (2 s) fails the attempt, the daemon drops the silent task manager after the
/// heartbeat timeout (3 s) so the next placement avoids it, then deploying the new attempt,
/// restoring from S3 and one checkpoint interval (200 ms), with room for a debug build on a
/// shared machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

/// Words per second each subtask reads (the job's `--words-per-second`): 8 files of 30 000
/// words at parallelism 4 take about 6 s, enough to fail a running job after its first
/// checkpoints.
const PACE: &str = "10000";
const FILES: usize = 8;
const WORDS_PER_FILE: usize = 30_000;

/// The URL of `name` (a directory) in the S3 bucket.
fn store(name: &str) -> String {
    format!("s3://{BUCKET}/{name}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until `f` gives a value, up to `limit`; panics naming `what` otherwise.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes [`FILES`] files of [`WORDS_PER_FILE`] words (300 distinct) into `dir`; returns
/// each word's count. A fixed xorshift generator: the same input on every run.
fn write_input(dir: &Path, seed: u64) -> HashMap<String, u64> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut exact = HashMap::new();
    for f in 0..FILES {
        let mut text = String::new();
        for i in 0..WORDS_PER_FILE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = format!("w{}", x % 300);
            text.push_str(&w);
            text.push(if i % 10 == 9 { '\n' } else { ' ' });
            *exact.entry(w).or_insert(0) += 1;
        }
        text.push('\n');
        std::fs::write(dir.join(format!("words-{f}.txt")), text).unwrap();
    }
    exact
}

/// Missing and extra `(word,n)` lines in the committed `part-*` files of `out`.
fn check(out: &Path, exact: &HashMap<String, u64>) -> (u64, u64) {
    let mut seen: HashMap<(String, u64), u64> = HashMap::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("part-") {
            continue;
        }
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            let (w, n) = l
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_once(',')
                .unwrap_or_else(|| panic!("bad line {l:?} in {name}"));
            *seen.entry((w.to_string(), n.parse().unwrap())).or_default() += 1;
        }
    }
    let (mut lost, mut extra) = (0, 0);
    for (w, &c) in exact {
        for n in 1..=c {
            let got = seen.remove(&(w.clone(), n)).unwrap_or(0);
            lost += 1u64.saturating_sub(got);
            extra += got.saturating_sub(1);
        }
    }
    extra += seen.values().sum::<u64>();
    (lost, extra)
}

/// A GET of `path` at `addr` with the cluster's token: status and JSON body (`Null` when
/// the body is not JSON); status 0 when the endpoint does not answer.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let attempt = || -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let resp = String::from_utf8_lossy(&raw).into_owned();
        let code = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            let mut out = String::new();
            let mut r = rest;
            while let Some((len, tail)) = r.split_once("\r\n") {
                let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
                if n == 0 || tail.len() < n {
                    break;
                }
                out.push_str(&tail[..n]);
                r = tail[n..].trim_start_matches("\r\n");
            }
            out
        } else {
            rest.to_string()
        };
        Ok((code, serde_json::from_str(&body).unwrap_or(Value::Null)))
    };
    attempt().unwrap_or((0, Value::Null))
}

/// Kills a process by pid with SIGKILL (no-op when it is gone).
fn kill9(pid: i32) {
    // SAFETY: kill has no memory preconditions.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// True while `pid` runs (a zombie has ended).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The environment of process `pid` (empty when it is gone).
fn environ(pid: i32) -> BTreeMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The command line of process `pid`, arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// A worker process of a job: its pid and attempt (`FLOE_WORKER_ATTEMPT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Worker {
    pid: i32,
    attempt: u32,
}

/// A task manager this test started: where it runs and its directory.
struct TaskManager {
    host: usize,
    dir: PathBuf,
    id: String,
}

/// Three hosts with the S3 server and the job manager on host 1 (index 0) and task
/// managers started by [`Cluster::task_manager`]. Dropped, it kills every process it started
/// by pid (the S3 server, the daemons from their pid files, every worker), then the hosts
/// are deleted (which kills anything left in them).
struct Cluster {
    /// Everything on disk: per-host configuration, the cluster and task manager
    /// directories, the S3 data, input and output (the hosts share the filesystem).
    root: tempfile::TempDir,
    s3: Option<Child>,
    tms: Vec<TaskManager>,
    /// `-D` settings of every `floe cluster start`.
    daemon_settings: Vec<String>,
    /// Last so that the namespaces outlive the processes killed above.
    hosts: Hosts,
}

impl Cluster {
    /// Builds three hosts, starts the S3 server and the job manager on host 1 (with the
    /// extra `-D` settings `daemon`); no task managers yet.
    fn start(daemon: &[&str]) -> Result<Cluster> {
        // Built before anything runs: the job binary is submitted by path.
        job_binary();
        let hosts = Hosts::create(3)?;
        let root = tempfile::tempdir()?;
        let mut c = Cluster {
            root,
            s3: None,
            tms: Vec::new(),
            daemon_settings: daemon.iter().map(|s| s.to_string()).collect(),
            hosts,
        };
        for d in ["in", "out", "s3", "cluster"] {
            std::fs::create_dir_all(c.root.path().join(d))?;
        }
        std::fs::create_dir_all(c.root.path().join("s3").join(BUCKET))?;
        for h in 0..3 {
            c.write_conf(h)?;
        }
        c.start_s3()?;
        c.start_daemon()?;
        Ok(c)
    }

    fn ip(&self, host: usize) -> String {
        self.hosts.host(host).ip().to_string()
    }

    fn rest(&self) -> SocketAddr {
        self.hosts.host(0).addr(REST_PORT)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Where the S3 server keeps `name` of [`store`] on disk (s3s-fs: one file per object).
    fn stored(&self, name: &str) -> PathBuf {
        self.path("s3").join(BUCKET).join(name)
    }

    /// Waits until a completed checkpoint of the job is on S3 (its `_metadata` object).
    fn wait_checkpoint_on_s3(&self, id: &str) {
        let dir = self.stored("ck").join(id);
        wait_for(
            &format!("a chk-<n>/_metadata of job {id} is in {}", dir.display()),
            Duration::from_secs(30),
            || {
                std::fs::read_dir(&dir)
                    .ok()?
                    .flatten()
                    .find(|e| {
                        e.file_name().to_string_lossy().starts_with("chk-")
                            && e.path().join("_metadata").is_file()
                    })
                    .map(|_| ())
            },
        );
    }

    fn conf_dir(&self, host: usize) -> PathBuf {
        self.path(&format!("h{}", host + 1)).join("conf")
    }

    /// `floe.yaml` of a host, as in docs/deployment.md: the job manager's addresses and
    /// token everywhere; S3 only on host 1 (a job's workers get the job's configuration
    /// from its job manager, not from their host).
    fn write_conf(&self, host: usize) -> Result<()> {
        let h1 = self.ip(0);
        let mut yaml = format!(
            "jobmanager.rpc.address: {h1}\n\
             jobmanager.rpc.port: {RPC_PORT}\n\
             rest.address: {h1}\n\
             rest.port: {REST_PORT}\n\
             rest.auth.token: {TOKEN}\n\
             heartbeat.interval: {HEARTBEAT_INTERVAL}\n\
             heartbeat.timeout: {HEARTBEAT_TIMEOUT}\n\
             taskmanager.network.tcp-user-timeout: {TCP_USER_TIMEOUT}\n"
        );
        if host == 0 {
            yaml.push_str(&format!(
                "rest.bind-address: {h1}\n\
                 s3.endpoint: http://{h1}:{S3_PORT}\n\
                 s3.access-key: {ACCESS_KEY}\n\
                 s3.secret-key: {SECRET_KEY}\n\
                 s3.path.style.access: true\n\
                 s3.endpoint.region: us-east-1\n"
            ));
        } else {
            yaml.push_str(&format!("taskmanager.host: {}\n", self.ip(host)));
        }
        let dir = self.conf_dir(host);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("floe.yaml"), yaml)?;
        Ok(())
    }

    /// `floe args…` on `host` with that host's `floe.yaml`: exit code, stdout, stderr.
    fn floe_on(&self, host: usize, args: &[&str]) -> (i32, String, String) {
        let o = self
            .hosts
            .host(host)
            .command(floe())
            .args(args)
            .env("FLOE_CONF_DIR", self.conf_dir(host))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Starts `s3s-fs` on host 1 (`floe_testkit::s3`'s binary, arguments and keys) and
    /// waits until it listens, checked from host 1 (the test's own namespace has no route
    /// to the hosts, so `S3Server::start_with` cannot see it come up).
    fn start_s3(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.path("s3.log"))?;
        let mut cmd = self.hosts.host(0).command(floe_testkit::s3::binary()?);
        cmd.args(floe_testkit::s3::args(
            self.hosts.host(0).ip().into(),
            S3_PORT,
            &self.path("s3"),
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        self.s3 = Some(self.hosts.host(0).spawn(&mut cmd)?);
        let addr = self.hosts.host(0).addr(S3_PORT);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self.hosts.host(0).run(move || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })?;
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "s3s-fs did not listen on {addr} within 20 s: {}",
                    std::fs::read_to_string(self.path("s3.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the S3 server.
    fn s3_pid(&self) -> i32 {
        self.s3.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// `floe cluster start --taskmanagers 0` on host 1 (again, after a crash).
    fn start_daemon(&self) -> Result<()> {
        let dir = self.path("cluster");
        let mut args = vec![
            "cluster".to_string(),
            "start".into(),
            "--taskmanagers".into(),
            "0".into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
        ];
        for d in &self.daemon_settings {
            args.extend(["-D".to_string(), d.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = self.floe_on(0, &args);
        if code != 0 {
            bail!("floe cluster start on host 1 exited with {code}: {out}{err}");
        }
        let rest = self.rest();
        wait_for(
            "the cluster's REST endpoint answers",
            Duration::from_secs(30),
            || (self.get_at(rest, "/overview").0 == 200).then_some(()),
        );
        Ok(())
    }

    /// GET `path` at `addr` from host 1.
    fn get_at(&self, addr: SocketAddr, path: &str) -> (u16, Value) {
        let path = path.to_string();
        self.hosts
            .host(0)
            .run(move || http_get(addr, &path))
            .expect("entering host 1")
    }

    /// GET `path` of the cluster's REST endpoint (from host 1).
    fn get(&self, path: &str) -> (u16, Value) {
        self.get_at(self.rest(), path)
    }

    /// Starts a task manager `id` on `host` with `slots` slots in a directory of its own
    /// and waits until it is registered.
    fn task_manager(&mut self, host: usize, id: &str, slots: u32) -> Result<()> {
        let dir = self.path(&format!("tm-{id}"));
        let slots = format!("taskmanager.numberOfTaskSlots={slots}");
        let rid = format!("taskmanager.resource-id={id}");
        let dir_s = dir.to_string_lossy().into_owned();
        let (code, out, err) = self.floe_on(
            host,
            &[
                "taskmanager",
                "start",
                "--dir",
                &dir_s,
                "-D",
                &slots,
                "-D",
                &rid,
            ],
        );
        if code != 0 {
            bail!(
                "floe taskmanager start on host {} exited with {code}: {out}{err}",
                host + 1
            );
        }
        self.tms.push(TaskManager {
            host,
            dir,
            id: id.to_string(),
        });
        wait_for(
            &format!("task manager {id} is registered"),
            Duration::from_secs(30),
            || self.task_managers().iter().any(|t| t.0 == id).then_some(()),
        );
        Ok(())
    }

    /// `/taskmanagers`: (id, host, slotsNumber, freeSlots) in the order given.
    fn task_managers(&self) -> Vec<(String, String, u64, u64)> {
        let (code, v) = self.get("/taskmanagers");
        if code != 200 {
            return Vec::new();
        }
        v["taskmanagers"]
            .as_array()
            .map(|tms| {
                tms.iter()
                    .map(|t| {
                        (
                            t["id"].as_str().unwrap_or_default().to_string(),
                            t["host"].as_str().unwrap_or_default().to_string(),
                            t["slotsNumber"].as_u64().unwrap_or(0),
                            t["freeSlots"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pid a task manager recorded in its directory.
    fn tm_pid(&self, id: &str) -> Option<i32> {
        let tm = self.tms.iter().find(|t| t.id == id)?;
        std::fs::read_to_string(tm.dir.join("taskmanager.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Submits `exactly_once_word_count` from host 1, detached, at `parallelism` (with
    /// `-s from` when given), checkpointing every 200 ms into `s3://floe/ck`; returns the
    /// job id.
    fn submit(&self, parallelism: u32, from: Option<&str>, extra: &[&str]) -> String {
        self.submit_paced(parallelism, from, extra, PACE)
    }

    /// [`Cluster::submit`] with its sources reading `pace` words per second.
    fn submit_paced(
        &self,
        parallelism: u32,
        from: Option<&str>,
        extra: &[&str],
        pace: &str,
    ) -> String {
        let job = job_binary();
        let input = self.path("in");
        let output = self.path("out");
        let p = parallelism.to_string();
        let ck = format!("execution.checkpointing.dir={}", store("ck"));
        let mut args = vec!["run", "-d", "-p", &p];
        if let Some(from) = from {
            args.extend(["-s", from]);
        }
        args.extend([
            "-D",
            &ck,
            "-D",
            "execution.checkpointing.interval=200ms",
            "-D",
            "restart-strategy.type=fixed-delay",
            "-D",
            "restart-strategy.fixed-delay.attempts=10",
            "-D",
            "restart-strategy.fixed-delay.delay=200ms",
            "-D",
            "slot.request.timeout=60s",
        ]);
        args.extend_from_slice(extra);
        args.extend([
            job.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--words-per-second",
            pace,
        ]);
        let (code, out, err) = self.floe_on(0, &args);
        assert_eq!(code, 0, "floe run on host 1: {out}{err}");
        out.lines()
            .find_map(|l| l.strip_prefix("Job has been submitted with JobID "))
            .unwrap_or_else(|| panic!("no job id in: {out}{err}"))
            .trim()
            .to_string()
    }

    /// The job's state from `/jobs/:id` ("" when it does not answer).
    fn state(&self, id: &str) -> String {
        self.get(&format!("/jobs/{id}")).1["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the job is in `state`, failing at once when it ended otherwise.
    fn wait_state(&self, id: &str, state: &str, limit: Duration) {
        wait_for(&format!("job {id} is {state}"), limit, || {
            let s = self.state(id);
            if s != state && ["FINISHED", "FAILED", "CANCELED"].contains(&s.as_str()) {
                panic!(
                    "job {id} ended {s}, not {state}: {}\n{}",
                    self.get(&format!("/jobs/{id}/exceptions")).1,
                    self.job_log(id)
                );
            }
            (s == state).then_some(())
        })
    }

    /// The job manager's log of a job (`<cluster dir>/jobs/<id>.log`).
    fn job_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.path("cluster").join("jobs").join(format!("{id}.log")))
            .unwrap_or_default()
    }

    /// `/jobs/:id/checkpoints`.
    fn checkpoints(&self, id: &str) -> Value {
        self.get(&format!("/jobs/{id}/checkpoints")).1
    }

    /// The latest completed checkpoint: (id, trigger time in ms since the epoch).
    fn latest_checkpoint(&self, id: &str) -> Option<(u64, u64)> {
        let c = self.checkpoints(id);
        let l = &c["latest"]["completed"];
        Some((l["id"].as_u64()?, l["trigger_timestamp"].as_u64()?))
    }

    /// Waits for a completed checkpoint triggered at or after `since` (ms since the epoch);
    /// returns its id.
    fn wait_checkpoint_since(&self, id: &str, since: u64, limit: Duration) -> u64 {
        wait_for(
            &format!("a checkpoint of job {id} triggered after {since} completes"),
            limit,
            || {
                self.latest_checkpoint(id)
                    .filter(|&(_, t)| t >= since)
                    .map(|(n, _)| n)
            },
        )
    }

    /// The worker processes of any job running on `host` now.
    fn workers(&self, host: usize) -> Vec<Worker> {
        let mut v: Vec<Worker> = self
            .hosts
            .host(host)
            .pids()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| {
                let env = environ(pid);
                env.get("FLOE_WORKER")?;
                let attempt = env.get("FLOE_WORKER_ATTEMPT")?.parse().ok()?;
                alive(pid).then_some(Worker { pid, attempt })
            })
            .collect();
        v.sort();
        v
    }

    /// Waits until both task manager hosts run a worker process of the job (the p=4 job is
    /// deployed on both) and a checkpoint of it completed; returns the workers.
    fn wait_running_on_both(&self, id: &str) -> (Vec<Worker>, Vec<Worker>) {
        self.wait_state(id, "RUNNING", Duration::from_secs(60));
        let workers = wait_for(
            "worker processes run on hosts 2 and 3",
            Duration::from_secs(60),
            || {
                let (a, b) = (self.workers(1), self.workers(2));
                (!a.is_empty() && !b.is_empty()).then_some((a, b))
            },
        );
        self.wait_checkpoint_since(id, 0, Duration::from_secs(60));
        workers
    }

    /// Asserts the job FINISHED and its committed output holds every `(word,n)` once.
    fn assert_exactly_once(&self, exact: &HashMap<String, u64>) {
        assert_eq!(
            check(&self.path("out"), exact),
            (0, 0),
            "(lost, duplicated) (word,n) lines in {}",
            self.path("out").display()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Everything by pid: the daemons from their pid files, the per-job job managers from
        // the registry, every worker on the task manager hosts; the namespaces' deletion
        // (Hosts::drop, after this) kills what is left.
        let mut pids: Vec<i32> = Vec::new();
        if let Ok(p) = std::fs::read_to_string(self.path("cluster").join("jobmanager.pid")) {
            pids.extend(p.trim().parse::<i32>());
        }
        for tm in &self.tms {
            if let Ok(p) = std::fs::read_to_string(tm.dir.join("taskmanager.pid")) {
                pids.extend(p.trim().parse::<i32>());
            }
        }
        if let Ok(jobs) = std::fs::read_dir(self.path("cluster").join("jobs")) {
            for e in jobs.flatten() {
                if e.path().extension().is_some_and(|x| x == "json") {
                    if let Ok(v) = std::fs::read_to_string(e.path())
                        .map(|t| serde_json::from_str::<Value>(&t).unwrap_or(Value::Null))
                    {
                        pids.extend(v["pid"].as_i64().map(|p| p as i32));
                    }
                }
            }
        }
        for h in 1..self.hosts.len() {
            pids.extend(self.workers(h).iter().map(|w| w.pid));
        }
        for pid in pids {
            // Only processes still in one of this test's namespaces: a pid from a file may
            // have been reused by then.
            if self
                .hosts
                .hosts()
                .iter()
                .any(|h| h.pids().unwrap_or_default().contains(&pid))
            {
                kill9(pid);
            }
        }
        if let Some(mut s3) = self.s3.take() {
            let _ = s3.kill();
            let _ = s3.wait();
        }
        // Print the logs of a failed test: the daemons' and the jobs'.
        if std::thread::panicking() {
            for (name, path) in self.logs() {
                eprintln!(
                    "===== {name} =====\n{}",
                    std::fs::read_to_string(&path).unwrap_or_default()
                );
            }
        }
    }
}

impl Cluster {
    /// The log files worth reading when a test fails.
    fn logs(&self) -> Vec<(String, PathBuf)> {
        let mut v = Vec::new();
        let cluster = self.path("cluster");
        if let Ok(rd) = std::fs::read_dir(&cluster) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    v.push((
                        format!("host 1 {}", e.file_name().to_string_lossy()),
                        e.path(),
                    ));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(cluster.join("jobs")) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    v.push((format!("job {}", e.file_name().to_string_lossy()), e.path()));
                }
            }
        }
        for tm in &self.tms {
            v.push((
                format!("task manager {} on host {}", tm.id, tm.host + 1),
                tm.dir.join("taskmanager.log"),
            ));
            // The workers' output, `workers/<job>/attempt-<a>-process-<i>.out|.err`.
            if let Ok(jobs) = std::fs::read_dir(tm.dir.join("workers")) {
                for j in jobs.flatten() {
                    if let Ok(files) = std::fs::read_dir(j.path()) {
                        for f in files.flatten() {
                            v.push((
                                format!("{} {}", tm.id, f.file_name().to_string_lossy()),
                                f.path(),
                            ));
                        }
                    }
                }
            }
        }
        v
    }
}

/// Every string value of a `"host"` key anywhere in `v`, without a `:port` suffix.
fn hosts_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "host" {
                    if let Some(h) = x.as_str() {
                        let h = h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h);
                        out.insert(h.to_string());
                    }
                }
                hosts_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| hosts_in(x, out)),
        _ => {}
    }
}

/// The hosts REST reports subtasks of the job on: `/jobs/:id` and every
/// `/jobs/:id/vertices/:vid` (Flink's per-subtask `host`).
fn subtask_hosts(c: &Cluster, id: &str) -> BTreeSet<String> {
    let (_, job) = c.get(&format!("/jobs/{id}"));
    let mut hosts = BTreeSet::new();
    hosts_in(&job, &mut hosts);
    for v in job["vertices"].as_array().cloned().unwrap_or_default() {
        if let Some(vid) = v["id"].as_str() {
            let (_, d) = c.get(&format!("/jobs/{id}/vertices/{vid}"));
            hosts_in(&d, &mut hosts);
        }
    }
    hosts
}

/// Evidence that a job restarted, from REST: its `RESTARTING` timestamp, its exception
/// history and the restores its checkpoint statistics count.
fn restarts(c: &Cluster, id: &str) -> (bool, usize, u64) {
    let (_, job) = c.get(&format!("/jobs/{id}"));
    let (_, exc) = c.get(&format!("/jobs/{id}/exceptions"));
    let ck = c.checkpoints(id);
    (
        job["timestamps"].get("RESTARTING").is_some(),
        exc["exceptionHistory"]["entries"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        ck["counts"]["restored"].as_u64().unwrap_or(0),
    )
}

/// Two task managers, 2 slots each: `tm-h2` on host 2 (registered first), `tm-h3` on host 3.
fn two_task_managers(c: &mut Cluster) -> Result<()> {
    c.task_manager(1, "tm-h2", 2)?;
    c.task_manager(2, "tm-h3", 2)?;
    Ok(())
}

#[test]
fn status_and_rest_show_both_task_managers_and_where_subtasks_run() -> Result<()> {
    let mut c = Cluster::start(&[])?;
    two_task_managers(&mut c)?;
    let (h2, h3) = (c.ip(1), c.ip(2));
    write_input(&c.path("in"), 5);
    let id = c.submit(4, None, &[]);
    c.wait_running_on_both(&id);

    let tms = c.task_managers();
    assert_eq!(
        tms,
        [
            ("tm-h2".to_string(), h2.clone(), 2, 0),
            ("tm-h3".to_string(), h3.clone(), 2, 0)
        ],
        "/taskmanagers while the p=4 job runs"
    );
    let (code, out, err) = c.floe_on(0, &["cluster", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Task managers: 2 with 4 slot(s), 0 free"),
        "{out}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first().is_some_and(|w| w.starts_with("tm-")))
        .collect();
    assert_eq!(
        rows,
        [
            ["tm-h2", h2.as_str(), "2", "0"],
            ["tm-h3", h3.as_str(), "2", "0"]
        ],
        "{out}"
    );
    assert!(out.contains(&format!("Job {id} ")), "{out}");
    // A task manager host sees the same (its floe.yaml names the job manager).
    let (code, out3, err) = c.floe_on(2, &["cluster", "status"]);
    assert_eq!(code, 0, "{out3}{err}");
    assert!(out3.contains("Task managers: 2 with 4 slot(s)"), "{out3}");

    // `floe list` tells where the subtasks run (packed in registration order), as the task
    // managers' heartbeats report their workers.
    let expected = format!("    subtasks 0,1 on tm-h2 ({h2}), 2,3 on tm-h3 ({h3})");
    wait_for(
        "floe list shows both hosts",
        Duration::from_secs(30),
        || {
            let (code, out, _) = c.floe_on(0, &["list"]);
            (code == 0 && out.contains(&expected)).then_some(())
        },
    );
    // REST `/jobs/:id` (and its vertices) shows the subtasks' hosts too.
    assert_eq!(
        subtask_hosts(&c, &id),
        BTreeSet::from([h2.clone(), h3.clone()]),
        "REST shows the p=4 job's subtasks on hosts 2 and 3: {}",
        c.get(&format!("/jobs/{id}")).1
    );
    let (code, out, err) = c.floe_on(0, &["cancel", &id]);
    assert_eq!(code, 0, "{out}{err}");
    c.wait_state(&id, "CANCELED", Duration::from_secs(60));
    wait_for(
        "the cancelled job's workers are gone and its slots free",
        Duration::from_secs(30),
        || {
            (c.workers(1).is_empty()
                && c.workers(2).is_empty()
                && c.task_managers().iter().all(|t| t.3 == 2))
            .then_some(())
        },
    );
    Ok(())
}

#[test]
fn a_crashed_task_manager_host_is_replaced_and_the_job_finishes_exactly_once() -> Result<()> {
    let mut c = Cluster::start(&[])?;
    two_task_managers(&mut c)?;
    let exact = write_input(&c.path("in"), 1);
    let id = c.submit(4, None, &[]);
    let (_, on_h3) = c.wait_running_on_both(&id);
    c.wait_checkpoint_on_s3(&id);
    let old_attempts: BTreeSet<u32> = on_h3.iter().map(|w| w.attempt).collect();

    // Host 2 crashes: its task manager and worker process die at once.
    let killed = c.hosts.kill_all(1)?;
    assert!(killed >= 2, "killed {killed} processes on host 2");
    let crashed = now_ms();
    // A new task manager process on host 2 (Flink gives a restarted one a new resource id).
    c.task_manager(1, "tm-h2-new", 2)?;
    wait_for(
        "the crashed tm-h2 is no longer registered",
        Duration::from_secs(30),
        || (!c.task_managers().iter().any(|t| t.0 == "tm-h2")).then_some(()),
    );
    c.wait_checkpoint_since(&id, crashed, Duration::from_secs(60));
    // Nothing of the failed attempt is left on host 3: the job manager killed it there.
    let left: Vec<Worker> = c
        .workers(2)
        .into_iter()
        .filter(|w| old_attempts.contains(&w.attempt))
        .collect();
    assert!(
        left.is_empty(),
        "workers of attempt(s) {old_attempts:?} still run on host 3: {left:?} ({})",
        left.iter()
            .map(|w| cmdline(w.pid))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // The new attempt runs on the new task manager and on host 3.
    let (on_h2, on_h3) = (c.workers(1), c.workers(2));
    assert!(
        !on_h2.is_empty() && !on_h3.is_empty(),
        "the restarted job runs on hosts 2 and 3: {on_h2:?} {on_h3:?}"
    );
    assert!(
        on_h2
            .iter()
            .chain(&on_h3)
            .all(|w| !old_attempts.contains(&w.attempt)),
        "{on_h2:?} {on_h3:?} after attempt(s) {old_attempts:?}"
    );

    c.wait_state(&id, "FINISHED", Duration::from_secs(120));
    let (restarting, failures, restored) = restarts(&c, &id);
    assert!(
        restarting && failures >= 1 && restored >= 1,
        "the job restarted at least once: RESTARTING seen {restarting}, {failures} failure(s), {restored} restore(s)"
    );
    c.assert_exactly_once(&exact);
    Ok(())
}

#[test]
fn a_host_cut_off_the_network_is_failed_over_within_the_bound_and_cleans_up_by_itself() -> Result<()>
{
    let mut c = Cluster::start(&[])?;
    // Host 3 registers first (2 slots), host 2 second with 4: the p=4 job packs onto
    // 2 + 2, and after host 3 is gone it fits on host 2's 4 slots alone.
    c.task_manager(2, "tm-h3", 2)?;
    c.task_manager(1, "tm-h2", 4)?;
    let exact = write_input(&c.path("in"), 2);
    let id = c.submit(4, None, &[]);
    c.wait_running_on_both(&id);

    let tm_h3 = c.tm_pid("tm-h3").context("tm-h3's pid")?;
    c.hosts.link_down(2)?;
    let down = Instant::now();
    let down_ms = now_ms();
    // The job continues on host 2: a checkpoint triggered after the link went down
    // completes within the bound.
    let n = c.wait_checkpoint_since(&id, down_ms, RECOVERY_BOUND);
    let recovered = down.elapsed();
    eprintln!("checkpoint {n} completed {recovered:?} after host 3 was unplugged");
    assert!(recovered < RECOVERY_BOUND, "{recovered:?}");
    assert!(!c.workers(1).is_empty(), "the job runs on host 2");
    // Host 3's workers lose their job manager connection and end by themselves; its task
    // manager lives on (it waits for the job manager).
    let deadline = down + RECOVERY_BOUND;
    wait_for(
        "the isolated host's worker processes exit by themselves",
        deadline.saturating_duration_since(Instant::now()),
        || c.workers(2).is_empty().then_some(()),
    );
    eprintln!(
        "host 3's workers were gone {:?} after it was unplugged",
        down.elapsed()
    );
    assert!(alive(tm_h3), "host 3's task manager keeps running");

    c.hosts.link_up(2)?;
    c.wait_state(&id, "FINISHED", Duration::from_secs(120));
    let (restarting, failures, restored) = restarts(&c, &id);
    assert!(
        restarting && failures >= 1 && restored >= 1,
        "RESTARTING seen {restarting}, {failures} failure(s), {restored} restore(s)"
    );
    c.assert_exactly_once(&exact);
    // Back on the network, host 3's task manager registers again, with nothing running.
    wait_for("tm-h3 registered again", Duration::from_secs(30), || {
        c.task_managers()
            .iter()
            .any(|t| t.0 == "tm-h3")
            .then_some(())
    });
    assert!(c.workers(2).is_empty());
    Ok(())
}

#[test]
fn a_killed_job_manager_host_comes_back_with_the_same_job_from_s3() -> Result<()> {
    // The HA directory is a path every host reaches (the hosts share this file system, as
    // hosts would share NFS); the checkpoints the job resumes from are on S3.
    let ha_dir = tempfile::tempdir()?;
    let ha = format!(
        "high-availability.storageDir=file://{}",
        ha_dir.path().display()
    );
    let mut c = Cluster::start(&[&ha])?;
    two_task_managers(&mut c)?;
    let exact = write_input(&c.path("in"), 3);
    let id = c.submit(4, None, &[]);
    c.wait_running_on_both(&id);

    // Every Floe process on host 1 dies (the daemon and the job's own job manager); the S3
    // server is another machine's service in real life and stays.
    let s3 = c.s3_pid();
    let victims: Vec<i32> = c
        .hosts
        .host(0)
        .pids()?
        .into_iter()
        .filter(|&p| p != s3)
        .collect();
    assert!(
        victims.len() >= 2,
        "the daemon and the job's job manager run on host 1: {:?}",
        victims.iter().map(|&p| cmdline(p)).collect::<Vec<_>>()
    );
    for &p in &victims {
        kill9(p);
    }
    wait_for(
        "host 1's Floe processes are gone",
        Duration::from_secs(10),
        || victims.iter().all(|&p| !alive(p)).then_some(()),
    );
    // The task managers kill the job's workers when their job manager connection closes.
    wait_for(
        "the orphaned workers are gone",
        Duration::from_secs(30),
        || (c.workers(1).is_empty() && c.workers(2).is_empty()).then_some(()),
    );

    c.start_daemon()?;
    wait_for(
        "both task managers registered with the new job manager",
        Duration::from_secs(30),
        || (c.task_managers().len() == 2).then_some(()),
    );
    c.wait_state(&id, "FINISHED", Duration::from_secs(120));
    // Resubmitted once, under its id: no second job.
    let (_, jobs) = c.get("/jobs/overview");
    let ids: Vec<&str> = jobs["jobs"]
        .as_array()
        .map(|a| a.iter().filter_map(|j| j["jid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [id.as_str()], "{jobs}");
    let ck = c.checkpoints(&id);
    let restored = ck["latest"]["restored"]["external_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        restored.starts_with(&format!("{}/{id}/chk-", store("ck"))),
        "the job resumed from its latest checkpoint on S3: {ck}"
    );
    c.assert_exactly_once(&exact);
    Ok(())
}

#[test]
fn a_savepoint_on_s3_of_a_two_host_job_restores_at_parallelism_2_on_one_host() -> Result<()> {
    let mut c = Cluster::start(&[])?;
    two_task_managers(&mut c)?;
    let exact = write_input(&c.path("in"), 4);
    // Slower than the other tests' jobs: it must still be reading when it is stopped, also
    // on a loaded machine.
    let id = c.submit_paced(4, None, &[], "2500");
    c.wait_running_on_both(&id);

    let sp_dir = store("sp");
    let (code, out, err) = c.floe_on(0, &["stop", "-p", &sp_dir, &id]);
    assert_eq!(code, 0, "floe stop -p {sp_dir}: {out}{err}");
    let savepoint = out
        .lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("no savepoint path in {out}{err}"))
        .trim()
        .to_string();
    assert!(
        savepoint.starts_with(&format!("{sp_dir}/savepoint-")),
        "{savepoint}"
    );
    let name = savepoint.rsplit('/').next().unwrap_or_default();
    assert!(
        c.stored("sp").join(name).join("_metadata").is_file(),
        "the savepoint is on S3: {}",
        c.stored("sp").join(name).display()
    );
    c.wait_state(&id, "FINISHED", Duration::from_secs(60));
    // The stopped job did not read everything: the restored one has work left.
    let (lost, extra) = check(&c.path("out"), &exact);
    assert!(lost > 0, "the job was stopped before the end of its input");
    assert_eq!(extra, 0);

    // Host 3's task manager goes: one host with 2 slots is left.
    let dir = c.tms[1].dir.to_string_lossy().into_owned();
    let (code, out, err) = c.floe_on(2, &["taskmanager", "stop", "--dir", &dir]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for("only tm-h2 is registered", Duration::from_secs(30), || {
        (c.task_managers().len() == 1).then_some(())
    });
    let id2 = c.submit(2, Some(&savepoint), &[]);
    c.wait_state(&id2, "FINISHED", Duration::from_secs(120));
    let ck = c.checkpoints(&id2);
    assert_eq!(
        ck["latest"]["restored"]["external_path"].as_str(),
        Some(savepoint.as_str()),
        "{ck}"
    );
    c.assert_exactly_once(&exact);
    Ok(())
}
