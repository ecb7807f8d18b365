//! Where the worker processes of an attempt run: on this host, for a job binary run
//! directly (Flink's mini cluster), or in the task slots of a cluster's task managers
//! (`crate::cluster`), possibly on several hosts.
//!
//! The job manager asks a [`WorkerLauncher`] to place an attempt's subtasks
//! ([`WorkerLauncher::place`]) and to start one worker process per [`ProcessSlot`]; the
//! processes of one attempt then form one timely cluster among themselves. The launcher
//! decides nothing about checkpoints or restarts: a process it cannot start, or one that
//! exits, is an attempt failure the job manager handles with the restart strategy.

use crate::sync::LockExt;
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

/// One worker process of an attempt, as placed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSlot {
    /// Timely process index (from 0): the process runs the worker threads — and so the
    /// subtasks — `index * threads .. (index + 1) * threads`.
    pub index: u32,
    /// Worker threads (task slots) in the process; the same for every process of an
    /// attempt, as timely requires.
    pub threads: u32,
    /// The host it runs on, as its task manager advertises it (`taskmanager.host`).
    pub host: String,
    /// The address its data socket (the timely exchange between processes) binds to.
    pub bind: String,
    /// The task manager it runs on; `None` for a job binary run directly.
    pub task_manager: Option<String>,
}

/// The processes of an attempt, ordered by index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// One entry per worker process.
    pub processes: Vec<ProcessSlot>,
}

/// How to start a worker process; the binary is the job's own (its blob on a task manager).
#[derive(Clone, Debug, Default)]
pub struct WorkerCommand {
    /// The job binary's arguments.
    pub args: Vec<OsString>,
    /// The worker's environment on top of the launcher's.
    pub env: Vec<(String, String)>,
}

/// Why an attempt could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// Not enough free task slots within `slot.request.timeout` (Flink's
    /// `NoResourceAvailableException`).
    #[error("Could not acquire the minimum required resources: {required} slot(s) required, {available} available after waiting {} ms (slot.request.timeout).", .waited.as_millis())]
    NotEnoughSlots {
        /// Slots the attempt needs (its parallelism).
        required: u32,
        /// Free slots when the wait ended.
        available: u32,
        /// How long it waited.
        waited: Duration,
    },
    /// The job was cancelled while it waited for slots.
    #[error("cancelled while waiting for task slots")]
    Cancelled,
    /// The resource manager could not be reached or refused the request.
    #[error("{0}")]
    Unavailable(String),
    /// The parallelism cannot be split evenly over the launcher's processes (timely runs
    /// the same number of worker threads in every process of a cluster).
    #[error("parallelism {parallelism} cannot be split evenly over {processes} worker processes")]
    Indivisible {
        /// The attempt's parallelism.
        parallelism: u32,
        /// The processes the launcher was asked to use.
        processes: u32,
    },
}

/// Why a worker process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The task manager of the slot could not be reached (it died or left the network
    /// while the attempt was being placed). Not an attempt failure: the job manager
    /// releases the placement, places the attempt again and retries until
    /// `slot.request.timeout`.
    #[error("task manager {task_manager} is unreachable: {reason}")]
    Unreachable {
        /// The task manager's id.
        task_manager: String,
        /// What went wrong.
        reason: String,
    },
    /// The process could not be started (binary missing, the task manager refused): an
    /// attempt failure, handled by the restart strategy.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A started worker process.
pub trait WorkerHandle: Send + Sync {
    /// Its process id on its host.
    fn pid(&self) -> u32;
    /// Kills it (its whole process group) without waiting.
    fn kill(&self);
    /// How it ended (`"killed by signal 9"`, `"exit status: 1"`, `"task manager tm-2 was
    /// lost"`), or `None` while it runs.
    fn exit_status(&self) -> Option<String>;
}

/// Places attempts and starts their worker processes.
pub trait WorkerLauncher: Send + Sync {
    /// The address the job manager's control listener binds to; every worker process
    /// connects back to it.
    fn control_bind(&self) -> String;
    /// The address worker processes connect to, given where the control listener was
    /// bound (e.g. the job manager's advertised host with the bound port when it binds a
    /// wildcard address). By default the bound address itself.
    fn control_address(&self, bound: std::net::SocketAddr) -> String {
        bound.to_string()
    }
    /// Places `parallelism` subtasks of `attempt`, waiting for free slots up to the slot
    /// request timeout; gives up with [`PlacementError::Cancelled`] once `cancel` is set.
    fn place(
        &self,
        attempt: u32,
        parallelism: u32,
        cancel: &AtomicBool,
    ) -> Result<Placement, PlacementError>;
    /// Starts the worker process of `slot` for `attempt`.
    fn spawn(
        &self,
        attempt: u32,
        slot: &ProcessSlot,
        command: &WorkerCommand,
    ) -> Result<Box<dyn WorkerHandle>, SpawnError>;
    /// Frees the slots of `attempt` once its processes are gone.
    fn release(&self, attempt: u32);
}

/// Runs the worker processes of every attempt on this host, as children of the job
/// manager: Flink's mini cluster. By default one process runs all `parallelism` worker
/// threads; [`with_processes`](Self::with_processes) splits them over several processes
/// that form one timely cluster over loopback sockets (tests, benchmarks, and the
/// `execution.worker-processes` option).
#[derive(Clone, Debug)]
pub struct LocalLauncher {
    processes: u32,
}

impl Default for LocalLauncher {
    fn default() -> Self {
        LocalLauncher { processes: 1 }
    }
}

impl LocalLauncher {
    /// One worker process per attempt.
    pub fn new() -> Self {
        Self::default()
    }

    /// `processes` worker processes per attempt (at least 1), each with `parallelism /
    /// processes` threads; placing a parallelism they do not divide fails.
    pub fn with_processes(processes: u32) -> Self {
        LocalLauncher {
            processes: processes.max(1),
        }
    }
}

impl WorkerLauncher for LocalLauncher {
    fn control_bind(&self) -> String {
        "127.0.0.1".into()
    }

    fn place(
        &self,
        _attempt: u32,
        parallelism: u32,
        _cancel: &AtomicBool,
    ) -> Result<Placement, PlacementError> {
        let n = self.processes;
        if parallelism == 0 || !parallelism.is_multiple_of(n) {
            return Err(PlacementError::Indivisible {
                parallelism,
                processes: n,
            });
        }
        Ok(Placement {
            processes: (0..n)
                .map(|index| ProcessSlot {
                    index,
                    threads: parallelism / n,
                    host: "127.0.0.1".into(),
                    bind: "127.0.0.1".into(),
                    task_manager: None,
                })
                .collect(),
        })
    }

    fn spawn(
        &self,
        _attempt: u32,
        _slot: &ProcessSlot,
        command: &WorkerCommand,
    ) -> Result<Box<dyn WorkerHandle>, SpawnError> {
        let exe = std::env::current_exe()
            .map_err(|e| crate::anyhow!("cannot find the job binary: {e}"))?;
        let mut cmd = Command::new(&exe);
        cmd.args(&command.args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (k, v) in &command.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        {
            // Its own process group: killing the attempt kills whatever the worker started.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| crate::anyhow!("cannot start worker process {}: {e}", exe.display()))?;
        Ok(Box::new(LocalWorker {
            pid: child.id(),
            child: Mutex::new(child),
            status: Mutex::new(None),
        }))
    }

    fn release(&self, _attempt: u32) {}
}

/// A worker process that is a child of this process.
struct LocalWorker {
    pid: u32,
    child: Mutex<Child>,
    status: Mutex<Option<String>>,
}

impl WorkerHandle for LocalWorker {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn kill(&self) {
        // Only while it has not been reaped: afterwards the pid may belong to someone else.
        if self.exit_status().is_some() {
            return;
        }
        #[cfg(unix)]
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
        }
        #[cfg(not(unix))]
        let _ = self.child.lock_ok().kill();
    }

    fn exit_status(&self) -> Option<String> {
        let mut status = self.status.lock_ok();
        if status.is_none() {
            if let Ok(Some(st)) = self.child.lock_ok().try_wait() {
                *status = Some(describe_exit(st));
            }
        }
        status.clone()
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        // Never leave a zombie: a dropped handle's process is killed and reaped.
        if self.exit_status().is_none() {
            self.kill();
            let _ = self.child.lock_ok().wait();
        }
    }
}

/// How a process ended, in the words the job manager's failure messages use.
pub fn describe_exit(st: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = st.signal() {
            return format!("killed by signal {sig}");
        }
    }
    st.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_launcher_splits_the_parallelism_evenly_or_refuses() {
        let no = AtomicBool::new(false);
        let one = LocalLauncher::new().place(0, 4, &no).unwrap();
        assert_eq!(one.processes.len(), 1);
        assert_eq!(one.processes[0].threads, 4);
        let two = LocalLauncher::with_processes(2).place(0, 4, &no).unwrap();
        assert_eq!(
            two.processes
                .iter()
                .map(|p| (p.index, p.threads))
                .collect::<Vec<_>>(),
            vec![(0, 2), (1, 2)]
        );
        let err = LocalLauncher::with_processes(3)
            .place(0, 4, &no)
            .unwrap_err();
        assert!(matches!(
            err,
            PlacementError::Indivisible {
                parallelism: 4,
                processes: 3
            }
        ));
    }
}
