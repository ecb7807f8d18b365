//! One round's jobs as an operator runs them: the job through `floe run` in per-job mode or
//! submitted to a session cluster, a resume from the job's checkpoint directory after its
//! job manager was killed, and second jobs writing into the same output directory.

use crate::faults::{alive, job_manager_of, signal, workers_of};
use crate::nap;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What every job of the run shares.
pub struct Setup {
    /// The `floe` CLI.
    pub floe: PathBuf,
    /// The job binary.
    pub job: PathBuf,
    /// `FLOE_CONF_DIR` of every job (its `floe.yaml`).
    pub conf: PathBuf,
    /// Root checkpoint directory (`execution.checkpointing.dir`).
    pub checkpoints: PathBuf,
    /// `rest.port` of a per-job job manager.
    pub rest_port: u16,
}

impl Setup {
    fn floe(&self) -> Command {
        let mut c = Command::new(&self.floe);
        c.env("FLOE_CONF_DIR", &self.conf).stdin(Stdio::null());
        c
    }
}

/// A session cluster (`floe cluster start`) the cluster rounds submit to.
pub struct Cluster {
    /// Its directory: registry, job logs, the daemon's pid file.
    pub dir: PathBuf,
    port: u16,
}

fn get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

impl Cluster {
    /// Starts the daemon on 127.0.0.1:`port` with its directory `dir`.
    pub fn start(setup: &Setup, dir: &Path, port: u16) -> anyhow::Result<Cluster> {
        let c = Cluster {
            dir: dir.to_path_buf(),
            port,
        };
        c.start_daemon(setup)?;
        Ok(c)
    }

    fn start_daemon(&self, setup: &Setup) -> anyhow::Result<()> {
        let o = setup
            .floe()
            .args(["cluster", "start", "--dir"])
            .arg(&self.dir)
            .args(["-D", &format!("rest.port={}", self.port)])
            .output()?;
        anyhow::ensure!(
            o.status.success(),
            "floe cluster start failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(())
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn daemon_pid(&self) -> Option<u32> {
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

    /// The job manager pid of job `id`, from the cluster's registry.
    fn job_pid(&self, id: &str) -> Option<u32> {
        let text =
            std::fs::read_to_string(self.dir.join("jobs").join(format!("{id}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("pid")?.as_u64().map(|p| p as u32)
    }

    /// The state of job `id` as the cluster reports it (`None` while it cannot answer).
    fn state(&self, id: &str) -> Option<String> {
        get_json(&self.addr(), &format!("/jobs/{id}"))?
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
    seconds: Vec<(Child, PathBuf)>,
}

impl Round {
    /// Starts the round's job, in per-job mode or (with `cluster`) on the cluster.
    pub fn start(
        setup: &Setup,
        cluster: Option<&Cluster>,
        dir: &Path,
        input: &Path,
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
            seconds: Vec::new(),
        };
        r.main = r.launch(setup, cluster, None)?;
        Ok(r)
    }

    fn job_args(&self, input: &Path) -> Vec<std::ffi::OsString> {
        vec![
            "--input".into(),
            input.into(),
            "--output".into(),
            self.output.clone().into(),
            "--fail-when-exists".into(),
            self.trigger.clone().into(),
        ]
    }

    fn launch(
        &mut self,
        setup: &Setup,
        cluster: Option<&Cluster>,
        restore: Option<&Path>,
    ) -> anyhow::Result<Main> {
        self.generation += 1;
        let mut cmd = setup.floe();
        cmd.arg("run");
        if let Some(c) = cluster {
            cmd.args(["-d", "-m", &c.addr()]);
        }
        if let Some(p) = restore {
            cmd.arg("-s").arg(p);
        }
        cmd.arg(&setup.job).args(self.job_args(&self.input));
        match cluster {
            None => {
                let out = self.dir.join(format!("job-{}.out", self.generation));
                let log = self.dir.join(format!("job-{}.log", self.generation));
                let child = cmd
                    .stdout(std::fs::File::create(&out)?)
                    .stderr(std::fs::File::create(&log)?)
                    .spawn()
                    .with_context(|| format!("cannot start {}", setup.floe.display()))?;
                self.logs.push(log);
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
                self.logs.push(c.dir.join("jobs").join(format!("{id}.log")));
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
            .arg(self.dir.join("savepoints"))
            .output()?;
        if !o.status.success() {
            return Ok(false); // restarting, or finishing
        }
        nap(pause);
        let workers = workers_of(jm);
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
        self.killed.push(id.clone());
        let job_dir = setup.checkpoints.join(&id);
        let has_checkpoint = std::fs::read_dir(&job_dir)
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("chk-")
                        && e.path().join("_metadata").is_file()
                })
            })
            .unwrap_or(false);
        let log = std::fs::read_to_string(self.logs.last().expect("a log")).unwrap_or_default();
        self.main = if has_checkpoint {
            self.launch(setup, cluster, Some(&job_dir))?
        } else if log.contains("switched from state RUNNING to FINISHED") {
            // Killed after it finished: its checkpoints are gone with FINISHED, and
            // everything is committed.
            Main::Finished
        } else {
            // No checkpoint completed, so nothing was committed: start afresh.
            self.launch(setup, cluster, None)?
        };
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
            .floe()
            .args(["run", "-D", "rest.port=0"])
            .arg(&setup.job)
            .args(self.job_args(input))
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
