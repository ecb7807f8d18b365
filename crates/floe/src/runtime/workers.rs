//! Where the worker processes of an attempt run: on this host, for a job binary run
//! directly (Flink's mini cluster), or in the task slots of a cluster's task managers
//! (`crate::cluster`), possibly on several hosts.
//!
//! The job manager asks a [`WorkerLauncher`] to place an attempt's subtasks
//! ([`WorkerLauncher::place`]) and to start one worker process per [`ProcessSlot`]; the
//! processes of one attempt then form one timely cluster among themselves. The launcher
//! decides nothing about checkpoints or restarts: a process it cannot start, or one that
//! exits, is an attempt failure the job manager handles with the restart strategy.

use std::ffi::OsString;
use std::sync::atomic::AtomicBool;
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
    ) -> crate::Result<Box<dyn WorkerHandle>>;
    /// Frees the slots of `attempt` once its processes are gone.
    fn release(&self, attempt: u32);
}
