//! One round's jobs as an operator runs them: the job through `floe run` in per-job mode or
//! submitted to a session cluster, a resume from the job's checkpoint directory after its
//! job manager was killed, and second jobs writing into the same output directory.

use crate::faults::{alive, job_manager_of, signal, workers_of, workers_of_job};
use crate::multihost::Net;
use crate::nap;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every job of the run shares.
pub struct Setup {
    /// The `floe` CLI.
    pub floe: PathBuf,
    /// The job binary.
    pub job: PathBuf,
    /// Arguments of every job besides `--input`, `--output` and `--fail-when-exists` (the
    /// event-time jobs' window, bound and lateness).
    pub job_args: Vec<String>,
    /// `FLOE_CONF_DIR` of every job (its `floe.yaml`).
    pub conf: PathBuf,
    /// Where the checkpoints of `execution.checkpointing.dir` are on this machine's file
    /// system (in multi-host mode: inside the S3 server's bucket directory).
    pub checkpoints: PathBuf,
    /// `execution.checkpointing.dir` as the jobs know it (a path, or `s3://floe/ck`).
    pub checkpoints_url: String,
    /// `rest.port` of a per-job job manager.
    pub rest_port: u16,
    /// The hosts, in multi-host mode: every `floe` command runs on the job manager host.
    pub net: Option<Arc<Net>>,
}

impl Setup {
    pub(crate) fn floe(&self) -> Command {
        if let Some(net) = &self.net {
            return crate::multihost::floe_on_jm(net, &self.floe);
        }
        let mut c = Command::new(&self.floe);
        c.env("FLOE_CONF_DIR", &self.conf).stdin(Stdio::null());
        c
    }

    /// The `floe` CLI for a job run in per-job mode (in multi-host mode on host 1, with a
    /// configuration that does not point at the cluster).
    fn floe_per_job(&self) -> Command {
        let mut c = self.floe();
        if let Some(net) = &self.net {
            c.env("FLOE_CONF_DIR", &net.per_job_conf);
        }
        c
    }

    /// The savepoint target of a round whose directory is `round_dir`.
    fn savepoints(&self, round_dir: &Path) -> std::ffi::OsString {
        match &self.net {
            Some(_) if self.checkpoints_url.starts_with("s3://") => format!(
                "s3://{}/savepoints/{}",
                crate::multihost::BUCKET,
                round_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
            .into(),
            _ => round_dir.join("savepoints").into(),
        }
    }
}

/// A session cluster (`floe cluster start`) the cluster rounds submit to.
pub struct Cluster {
    /// Its directory: registry, job logs, the daemon's pid file.
    pub dir: PathBuf,
    port: u16,
    /// The hosts, in multi-host mode (the daemon runs on host 1, task managers elsewhere).
    net: Option<Arc<Net>>,
}

fn get_json_here(addr: &str, path: &str, token: Option<&str>) -> Option<serde_json::Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    let mut req = agent.get(&format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    req.call().ok()?.body_mut().read_json().ok()
}

/// `GET http://<addr><path>` from inside the job manager host's namespace, with the
/// cluster's token.
pub(crate) fn get_json(net: &Net, addr: &str, path: &str) -> Option<serde_json::Value> {
    net.on_jm(|| get_json_here(addr, path, Some(&net.token)))
        .ok()
        .flatten()
}

impl Cluster {
    /// Starts the daemon on 127.0.0.1:`port` with its directory `dir` (in multi-host mode:
    /// on host 1, with no task manager of its own, at the REST port of its configuration).
    pub fn start(setup: &Setup, dir: &Path, port: u16) -> anyhow::Result<Cluster> {
        let net = setup.net.clone();
        let c = Cluster {
            dir: dir.to_path_buf(),
            port: if net.is_some() {
                crate::multihost::REST_PORT
            } else {
                port
            },
            net,
        };
        c.start_daemon(setup)?;
        Ok(c)
    }

    pub(crate) fn start_daemon(&self, setup: &Setup) -> anyhow::Result<()> {
        let mut cmd = setup.floe();
        cmd.args(["cluster", "start", "--dir"])
            .arg(&self.dir)
            .args(["-D", &format!("rest.port={}", self.port)]);
        if self.net.is_some() {
            cmd.args(["--taskmanagers", "0"]);
        }
        let o = cmd.output()?;
        anyhow::ensure!(
            o.status.success(),
            "floe cluster start failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(())
    }

    /// `127.0.0.1:<port>` (in multi-host mode host 1's address).
    pub fn addr(&self) -> String {
        match &self.net {
            Some(n) => n.rest_addr(),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// `GET <path>` of the cluster's REST API (`None` while it cannot answer).
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        match &self.net {
            Some(n) => get_json(n, &self.addr(), path),
            None => get_json_here(&self.addr(), path, None),
        }
    }

    pub(crate) fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("jobmanager.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `kill -9` of the daemon, then `floe cluster start` again: the new daemon must take
    /// back the jobs that still run. False when no daemon was running.
    pub fn kill_and_restart(&self, setup: &Setup) -> anyhow::Result<bool> {
        let Some(pid) = self.daemon_pid() else {
            return Ok(false);
        };
        if !signal(pid, libc::SIGKILL) {
            return Ok(false);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.start_daemon(setup)?;
        Ok(true)
    }

    /// The job manager pids of every job in the cluster's registry that still run.
    pub(crate) fn job_pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("jobs")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.job_pid(name.strip_suffix(".json")?)
            })
            .filter(|p| alive(*p))
            .collect()
    }

    /// The job manager pid of job `id`, from the cluster's registry.
    fn job_pid(&self, id: &str) -> Option<u32> {
        let text =
            std::fs::read_to_string(self.dir.join("jobs").join(format!("{id}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("pid")?.as_u64().map(|p| p as u32)
    }

    /// The state of job `id` as the cluster reports it (`None` while it cannot answer).
    fn state(&self, id: &str) -> Option<String> {
        self.get(&format!("/jobs/{id}"))?
            .get("state")?
            .as_str()
            .map(str::to_string)
    }

    /// Stops the daemon (its jobs are cancelled).
    pub fn stop(&self, setup: &Setup) {
        let _ = setup
            .floe()
            .args(["cluster", "stop", "-m", &self.addr()])
            .output();
    }
}

/// The round's main job: the one faults hit.
enum Main {
    /// `floe run` in the foreground: the process is the job manager.
    PerJob { child: Child, out: PathBuf },
    /// Submitted to the cluster with `floe run -d`.
    Submitted { id: String },
    /// Its job manager was killed after the job had FINISHED.
    Finished,
}

/// One round's jobs.
pub struct Round {
    pub input: PathBuf,
    pub output: PathBuf,
    pub trigger: PathBuf,
    dir: PathBuf,
    main: Main,
    generation: u32,
    /// Job ids whose job manager the harness killed.
    pub killed: Vec<String>,
    /// Every job manager log of the round.
    pub logs: Vec<PathBuf>,
    /// The log of the current main job.
    pub main_log: Option<PathBuf>,
    /// `-p` of the round's jobs (`None`: `parallelism.default`).
    parallelism: Option<u32>,
    /// The checkpoint directory the current main job was resumed from (`-s`).
    restored_from: Option<String>,
    seconds: Vec<(Child, PathBuf)>,
}

impl Round {
    /// Starts the round's job, in per-job mode or (with `cluster`) on the cluster.
    pub fn start(
        setup: &Setup,
        cluster: Option<&Cluster>,
        dir: &Path,
        input: &Path,
        parallelism: Option<u32>,
    ) -> anyhow::Result<Round> {
        let mut r = Round {
            input: input.to_path_buf(),
            output: dir.join("out"),
            trigger: dir.join("fail-now"),
            dir: dir.to_path_buf(),
            main: Main::Submitted { id: String::new() },
            generation: 0,
            killed: Vec::new(),
            logs: Vec::new(),
            main_log: None,
            parallelism,
            restored_from: None,
            seconds: Vec::new(),
        };
        r.main = r.launch(setup, cluster, None)?;
        Ok(r)
    }

    fn job_args(&self, setup: &Setup, input: &Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--input".into(),
            input.into(),
            "--output".into(),
            self.output.clone().into(),
            "--fail-when-exists".into(),
            self.trigger.clone().into(),
        ];
        args.extend(setup.job_args.iter().map(Into::into));
        args
    }

    fn launch(
        &mut self,
        setup: &Setup,
        cluster: Option<&Cluster>,
        restore: Option<&str>,
    ) -> anyhow::Result<Main> {
        self.generation += 1;
        self.restored_from = restore.map(str::to_string);
        let mut cmd = setup.floe();
        cmd.arg("run");
        if let Some(c) = cluster {
            cmd.args(["-d", "-m", &c.addr()]);
        }
        if let Some(p) = self.parallelism {
            cmd.args(["-p", &p.to_string()]);
        }
        if let Some(p) = restore {
            cmd.args(["-s", p]);
        }
        cmd.arg(&setup.job).args(self.job_args(setup, &self.input));
        match cluster {
            None => {
                let out = self.dir.join(format!("job-{}.out", self.generation));
                let log = self.dir.join(format!("job-{}.log", self.generation));
                let child = cmd
                    .stdout(std::fs::File::create(&out)?)
                    .stderr(std::fs::File::create(&log)?)
                    .spawn()
                    .with_context(|| format!("cannot start {}", setup.floe.display()))?;
                self.logs.push(log.clone());
                self.main_log = Some(log);
                Ok(Main::PerJob { child, out })
            }
            Some(c) => {
                let o = cmd.output()?;
                let out = String::from_utf8_lossy(&o.stdout);
                let id = submitted_id(&out).with_context(|| {
                    format!(
                        "floe run -d printed no job id: {out}{}",
                        String::from_utf8_lossy(&o.stderr)
                    )
                })?;
                let log = c.dir.join("jobs").join(format!("{id}.log"));
                self.logs.push(log.clone());
                self.main_log = Some(log);
                Ok(Main::Submitted { id })
            }
        }
    }

    /// The main job's id, once known.
    pub fn job_id(&self) -> Option<String> {
        match &self.main {
            Main::PerJob { out, .. } => submitted_id(&std::fs::read_to_string(out).ok()?),
            Main::Submitted { id } => Some(id.clone()),
            Main::Finished => None,
        }
    }

    /// The main job's job manager process.
    pub fn job_manager(&self, cluster: Option<&Cluster>) -> Option<u32> {
        match &self.main {
            Main::PerJob { child, .. } => job_manager_of(child.id()),
            Main::Submitted { id } => cluster?.job_pid(id),
            Main::Finished => None,
        }
    }

    /// The main job's worker processes: those of its job id (wherever they run), else the
    /// job manager's children.
    pub fn workers(&self, cluster: Option<&Cluster>) -> Vec<u32> {
        if let Some(id) = self.job_id() {
            let w = workers_of_job(&id);
            if !w.is_empty() {
                return w;
            }
        }
        self.job_manager(cluster)
            .map(workers_of)
            .unwrap_or_default()
    }

    /// `Some(true)` once the main job FINISHED, `Some(false)` when it ended otherwise.
    pub fn main_ended(&mut self, cluster: Option<&Cluster>) -> anyhow::Result<Option<bool>> {
        match &mut self.main {
            Main::PerJob { child, .. } => Ok(child.try_wait()?.map(|s| s.success())),
            Main::Submitted { id } => {
                let state = cluster.and_then(|c| c.state(id));
                Ok(match state.as_deref() {
                    Some("FINISHED") => Some(true),
                    Some("FAILED" | "CANCELED") => Some(false),
                    _ => None,
                })
            }
            Main::Finished => Ok(Some(true)),
        }
    }

    /// `floe savepoint` of the running job, then `kill -9` of its job manager after a random
    /// pause, then a resume from its checkpoint directory (or from scratch when it has no
    /// complete checkpoint yet). False when no savepoint could be taken right now.
    pub fn savepoint_then_kill(
        &mut self,
        setup: &Setup,
        cluster: Option<&Cluster>,
        pause: Duration,
    ) -> anyhow::Result<bool> {
        let (Some(id), Some(jm)) = (self.job_id(), self.job_manager(cluster)) else {
            return Ok(false);
        };
        let addr = match cluster {
            Some(c) => c.addr(),
            None => format!("127.0.0.1:{}", setup.rest_port),
        };
        let o = setup
            .floe()
            .args(["savepoint", "-m", &addr, &id])
            .arg(setup.savepoints(&self.dir))
            .output()?;
        if !o.status.success() {
            return Ok(false); // restarting, or finishing
        }
        nap(pause);
        let workers = self.workers(cluster);
        signal(jm, libc::SIGKILL);
        if let Main::PerJob { child, .. } = &mut self.main {
            let _ = child.wait();
        }
        // Its workers notice the lost job manager and exit; any that does not is killed.
        let until = Instant::now() + Duration::from_secs(3);
        while workers.iter().any(|w| alive(*w)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        for w in workers {
            signal(w, libc::SIGKILL);
        }
        self.resume_after_kill(setup, cluster, &id)?;
        Ok(true)
    }

    /// After the job manager of job `id` was killed: the documented resume from its
    /// checkpoint directory (or from scratch when it has no complete checkpoint yet, or
    /// nothing when it had FINISHED).
    fn resume_after_kill(
        &mut self,
        setup: &Setup,
        cluster: Option<&Cluster>,
        id: &str,
    ) -> anyhow::Result<()> {
        self.killed.push(id.to_string());
        let job_dir = setup.checkpoints.join(id);
        let has_checkpoint = std::fs::read_dir(&job_dir)
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("chk-")
                        && e.path().join("_metadata").is_file()
                })
            })
            .unwrap_or(false);
        let log = self
            .main_log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default();
        self.main = if has_checkpoint {
            let url = format!("{}/{id}", setup.checkpoints_url);
            self.launch(setup, cluster, Some(&url))?
        } else if log.contains("switched from state RUNNING to FINISHED") {
            // Killed after it finished: its checkpoints are gone with FINISHED, and
            // everything is committed.
            Main::Finished
        } else if let Some(from) = self.restored_from.clone() {
            // It was itself resumed and completed no checkpoint of its own, so it committed
            // nothing since: resume from where it was resumed from, not from scratch
            // (that would repeat what the earlier job committed).
            self.launch(setup, cluster, Some(&from))?
        } else {
            // No checkpoint completed, so nothing was committed: start afresh.
            self.launch(setup, cluster, None)?
        };
        Ok(())
    }

    /// `kill -9` of the job manager host's Floe processes (the cluster daemon and every
    /// per-job job manager), then `floe cluster start` again. With `ha` the new daemon must
    /// take the job back under its id; without, the operator's resume follows (as after
    /// `savepoint_kill_jm`). False when the job has no job manager right now.
    pub fn kill_job_manager_host(
        &mut self,
        setup: &Setup,
        cluster: &Cluster,
        ha: bool,
    ) -> anyhow::Result<bool> {
        let (Some(id), Some(_)) = (self.job_id(), self.job_manager(Some(cluster))) else {
            return Ok(false);
        };
        let mut pids = cluster.job_pids();
        pids.extend(cluster.daemon_pid());
        for &p in &pids {
            signal(p, libc::SIGKILL);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        cluster.start_daemon(setup)?;
        if !ha {
            self.resume_after_kill(setup, Some(cluster), &id)?;
        }
        Ok(true)
    }

    /// Starts a second job (per-job mode, its own REST port) over `input` into this round's
    /// output directory. False while an earlier second job still runs.
    pub fn start_second(&mut self, setup: &Setup, input: &Path) -> anyhow::Result<bool> {
        for (c, _) in self.seconds.iter_mut() {
            if c.try_wait()?.is_none() {
                return Ok(false);
            }
        }
        let n = self.seconds.len() + 1;
        let log = self.dir.join(format!("second-{n}.log"));
        let child = setup
            .floe_per_job()
            .args(["run", "-D", "rest.port=0"])
            .arg(&setup.job)
            .args(self.job_args(setup, input))
            .stdout(std::fs::File::create(
                self.dir.join(format!("second-{n}.out")),
            )?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        self.logs.push(log.clone());
        self.seconds.push((child, log));
        Ok(true)
    }

    /// Waits for the second jobs to end (killing them after `within`); true when all
    /// FINISHED.
    pub fn wait_seconds(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        let mut ok = true;
        for (c, log) in self.seconds.iter_mut() {
            loop {
                match c.try_wait() {
                    Ok(Some(st)) => {
                        if !st.success() {
                            println!("second job failed ({st}): see {}", log.display());
                            ok = false;
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        kill_with_workers(c);
                        ok = false;
                        break;
                    }
                }
            }
        }
        ok
    }

    /// Stops everything the round still runs (at the deadline or when interrupted).
    pub fn kill(&mut self, setup: &Setup, cluster: Option<&Cluster>) {
        match &mut self.main {
            Main::PerJob { child, .. } => kill_with_workers(child),
            Main::Submitted { id } => {
                if let Some(c) = cluster {
                    let _ = setup.floe().args(["cancel", "-m", &c.addr(), id]).output();
                }
            }
            Main::Finished => {}
        }
        for (c, _) in self.seconds.iter_mut() {
            kill_with_workers(c);
        }
    }
}

fn kill_with_workers(c: &mut Child) {
    for w in workers_of(c.id()) {
        signal(w, libc::SIGKILL);
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// The id in `Job has been submitted with JobID <id>`.
fn submitted_id(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("Job has been submitted with JobID "))
        .map(|id| id.trim().to_string())
}
