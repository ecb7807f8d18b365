//! The faults: what breaks, and how it is broken for real (signals to processes, a tmpfs
//! remounted read-only or filled up).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `kill -9` of a worker process: the job manager restarts from the last checkpoint.
    Kill,
    /// `kill -STOP` of a worker for longer than `heartbeat.timeout`: declared dead.
    Stop,
    /// A panic in user code (the job's failure hook).
    Panic,
    /// Checkpoint storage remounted read-only for a while.
    ReadOnly,
    /// Checkpoint storage full for a while.
    DiskFull,
    /// A worker paused past `execution.checkpointing.timeout` but within the heartbeat
    /// timeout: the pending checkpoint expires, the job goes on.
    CheckpointTimeout,
    /// `floe savepoint` while the job runs, then `kill -9` of its job manager soon after,
    /// then a resume the documented way: `floe run -s <checkpoint-dir>/<job-id>`.
    SavepointKillJobManager,
    /// A second job (the same binary, another vocabulary) writing into the same output
    /// directory while the first one fails and restarts.
    SecondJob,
    /// `kill -9` of the session cluster's daemon while its job runs, then `floe cluster
    /// start` again, which must take the job back (cluster rounds only).
    DaemonKill,
    /// (multi-host) `kill -9` of every process of a task manager host (its task manager
    /// and workers: a crashed host), then a replacement task manager started on it.
    TmHostKill,
    /// (multi-host) `kill -9` of just a task manager daemon, its workers left running,
    /// then a replacement started: the job managers' connections to it close.
    TmDaemonKill,
    /// (multi-host) a task manager host unplugged for 1–6 s (packets vanish, no reset),
    /// then plugged back in: its task manager must register again.
    TmLinkDown,
    /// (multi-host) every process of a task manager host stopped past the heartbeat
    /// timeout (a hung host), then continued.
    TmHostFreeze,
    /// (multi-host) `kill -9` of the job manager host's Floe processes (the daemon and
    /// every per-job job manager; not the S3 server), then `floe cluster start` again:
    /// with HA the daemon takes the job back, without it the operator resumes it from its
    /// checkpoint directory.
    JmHostKill,
    /// (multi-host) the S3 server stopped for 0.5–4 s: checkpoints fail or expire.
    S3Stop,
}

impl Fault {
    /// Every kind, in summary order.
    pub const ALL: [Fault; 15] = [
        Fault::Kill,
        Fault::Stop,
        Fault::Panic,
        Fault::ReadOnly,
        Fault::DiskFull,
        Fault::CheckpointTimeout,
        Fault::SavepointKillJobManager,
        Fault::SecondJob,
        Fault::DaemonKill,
        Fault::TmHostKill,
        Fault::TmDaemonKill,
        Fault::TmLinkDown,
        Fault::TmHostFreeze,
        Fault::JmHostKill,
        Fault::S3Stop,
    ];

    /// The key in the summary line.
    pub fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill9",
            Fault::Stop => "stop",
            Fault::Panic => "panic",
            Fault::ReadOnly => "storage_ro",
            Fault::DiskFull => "storage_full",
            Fault::CheckpointTimeout => "checkpoint_timeout",
            Fault::SavepointKillJobManager => "savepoint_kill_jm",
            Fault::SecondJob => "second_job",
            Fault::DaemonKill => "daemon_kill",
            Fault::TmHostKill => "tm_host_kill9",
            Fault::TmDaemonKill => "tm_daemon_kill9",
            Fault::TmLinkDown => "tm_link_down",
            Fault::TmHostFreeze => "tm_host_freeze",
            Fault::JmHostKill => "jm_host_kill9",
            Fault::S3Stop => "s3_stop",
        }
    }

    /// True for the faults of hosts, which only the multi-host mode has.
    pub fn is_multi_host(self) -> bool {
        matches!(
            self,
            Fault::TmHostKill
                | Fault::TmDaemonKill
                | Fault::TmLinkDown
                | Fault::TmHostFreeze
                | Fault::JmHostKill
                | Fault::S3Stop
        )
    }

    /// True for the faults that need a session cluster round.
    pub fn needs_cluster(self) -> bool {
        self == Fault::DaemonKill || self.is_multi_host()
    }

    /// True for faults of the checkpoint storage (they need the harness's own tmpfs).
    pub fn is_storage(self) -> bool {
        matches!(self, Fault::ReadOnly | Fault::DiskFull)
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// A kind by its key in the summary line (`kill9`, `stop`, ...).
    fn from_str(s: &str) -> Result<Fault, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.key() == s)
            .ok_or_else(|| {
                let keys: Vec<&str> = Fault::ALL.iter().map(|f| f.key()).collect();
                format!("unknown fault kind '{s}' (one of {})", keys.join(", "))
            })
    }
}

/// Sends `sig` to `pid`; false when the process is gone.
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// State and parent of process `pid` (`/proc/<pid>/stat`).
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces, so parse after the last ')'.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

/// True while `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((s, _)) if !matches!(s, 'Z' | 'X'))
}

/// `(pid, parent)` of every live process.
fn processes() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| match stat(pid)? {
            ('Z' | 'X', _) => None,
            (_, ppid) => Some((pid, ppid)),
        })
        .collect()
}

/// True for a Floe worker process (started with `FLOE_WORKER`).
pub fn is_worker(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .any(|kv| kv.starts_with(b"FLOE_WORKER="))
}

/// Worker processes of job `id` (their `FLOE_WORKER_JOB_ID`), wherever they were started.
pub fn workers_of_job(id: &str) -> Vec<u32> {
    let want = format!("FLOE_WORKER_JOB_ID={id}");
    processes()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|kv| kv == want.as_bytes())
        })
        .collect()
}

/// Worker processes of the job manager `jm`: its children that run as workers. `jm` may
/// also be the `floe run` that started the job binary: its grandchildren count too.
pub fn workers_of(jm: u32) -> Vec<u32> {
    let procs = processes();
    let parents: Vec<u32> = std::iter::once(jm)
        .chain(procs.iter().filter(|(_, pp)| *pp == jm).map(|(p, _)| *p))
        .collect();
    procs
        .iter()
        .filter(|(p, pp)| parents.contains(pp) && is_worker(*p))
        .map(|(p, _)| *p)
        .collect()
}

/// The job manager process of a per-job `floe run` with pid `cli`: the job binary it
/// started (its child that is not a worker).
pub fn job_manager_of(cli: u32) -> Option<u32> {
    processes()
        .into_iter()
        .find(|(p, pp)| *pp == cli && !is_worker(*p))
        .map(|(p, _)| p)
}

/// A tmpfs mounted for the checkpoint storage; unmounted when dropped.
pub struct Storage {
    pub dir: PathBuf,
    filler: PathBuf,
}

impl Storage {
    /// Mounts a tmpfs of `size_mib` MiB at `dir`. Fails without the right to mount (root).
    pub fn mount(dir: &Path, size_mib: u32) -> anyhow::Result<Storage> {
        std::fs::create_dir_all(dir)?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run mount: {e}"))?;
        if !o.status.success() {
            anyhow::bail!(
                "cannot mount a tmpfs at {}: {}",
                dir.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(Storage {
            dir: dir.to_path_buf(),
            filler: dir.join(".chaos-filler"),
        })
    }

    /// Remounts read-only (`ro`) or read-write. A remount to read-only fails while a file
    /// is open for writing; it is retried for a while.
    pub fn remount(&self, ro: bool) -> anyhow::Result<()> {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        let mut last = String::new();
        for _ in 0..100 {
            let o = Command::new("mount")
                .args(["-o", opt])
                .arg(&self.dir)
                .output()?;
            if o.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&o.stderr).trim().to_string();
            std::thread::sleep(Duration::from_millis(10));
        }
        anyhow::bail!("mount -o {opt} {}: {last}", self.dir.display())
    }

    /// Fills the file system until a write fails with "no space left".
    pub fn fill(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&self.filler)?;
        let chunk = vec![0u8; 1 << 20];
        loop {
            match f.write(&chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Fill the last partial page too.
        let _ = f.write_all(&chunk[..4096]);
        let _ = f.flush();
        Ok(())
    }

    /// Frees the space taken by [`fill`](Self::fill).
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.free();
        let _ = self.remount(false);
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
