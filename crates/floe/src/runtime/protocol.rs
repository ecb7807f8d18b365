//! Messages between the job manager and a task executor.
//!
//! The job manager never runs user code; it talks to the executor of the current attempt
//! only through these messages. Every message from an executor carries its attempt number,
//! and the job manager drops messages of any other attempt, so a task of an old attempt can
//! never complete or commit a checkpoint of a new one.

use crate::checkpoint::metadata::{LoadedSnapshot, StateHandle, TaskId};
use std::sync::Arc;

/// What one execution attempt starts from; the job manager decides it, the executor runs it.
#[derive(Clone, Debug)]
pub struct AttemptSpec {
    /// The job's id (32 lowercase hex): what the attempt writes is named after it, so that
    /// recovery only ever touches this job's own files.
    pub job_id: String,
    /// Attempt number (0 for the first).
    pub attempt: u32,
    /// The snapshot to restore (the latest checkpoint, or the `-s` path).
    pub restore: Option<Arc<LoadedSnapshot>>,
    /// Records of the first epoch belong to this checkpoint id.
    pub start_epoch: u64,
    /// Savepoints this job took while running: the user may still restore them, so output
    /// they name is never discarded by recovery (a savepoint commits nothing itself).
    pub savepoints: Vec<crate::storage::Location>,
}

/// Why a failure cannot be fixed by restarting: the job fails without consulting the
/// restart strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unrecoverable {
    /// Restored state does not fit the job's state types.
    IncompatibleState,
    /// Output that the restored checkpoint names (a two-phase-commit sink's committable)
    /// no longer exists; every restore of that checkpoint would fail the same way.
    OutputLost,
}

impl std::fmt::Display for Unrecoverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unrecoverable::IncompatibleState => "the snapshot's state does not fit the job",
            Unrecoverable::OutputLost => "output the restored snapshot names is gone",
        })
    }
}

/// Job manager → executor.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ToExecutor {
    /// Take checkpoint `id`; state files go into `dir` (`chk-<id>`, created by the job manager).
    TriggerCheckpoint {
        /// Checkpoint id.
        id: u64,
        /// Directory (or object prefix) for this checkpoint's files.
        dir: crate::storage::Location,
    },
    /// Checkpoint `id` (or a stop-with-savepoint) is complete (its `_metadata` is written):
    /// two-phase-commit sinks commit everything staged up to it.
    CheckpointComplete {
        /// Checkpoint id.
        id: u64,
    },
    /// Savepoint `id` (taken while the job goes on) is complete. Nothing is committed: its
    /// output stays pending until a later checkpoint completes.
    SavepointComplete {
        /// The savepoint's checkpoint id.
        id: u64,
    },
    /// Checkpoint `id` was aborted; its directory is gone.
    CheckpointAborted {
        /// Checkpoint id.
        id: u64,
    },
    /// Sources stop emitting once checkpoint `id` is triggered, and finish when it completes
    /// (stop-with-savepoint); if it is aborted they resume.
    StopSourcesAfter {
        /// The savepoint's checkpoint id.
        id: u64,
    },
    /// Checkpoint `id` is the final one (every source's input ended): sources finish once
    /// it or a later checkpoint completes; if it is aborted they wait for the next one.
    FinalCheckpoint {
        /// The final checkpoint's id.
        id: u64,
    },
    /// Stop all tasks.
    Cancel,
}

/// Executor → job manager.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum FromExecutor {
    /// Every task of the attempt is deployed and running.
    Running {
        /// Attempt number.
        attempt: u32,
        /// Every task that acknowledges checkpoints.
        tasks: Vec<TaskId>,
    },
    /// A task completed its part of checkpoint `checkpoint_id`.
    Ack {
        /// Attempt number.
        attempt: u32,
        /// Checkpoint id.
        checkpoint_id: u64,
        /// The task.
        task: TaskId,
        /// Where its state is.
        state: StateHandle,
    },
    /// A task could not complete its part of a checkpoint.
    Decline {
        /// Attempt number.
        attempt: u32,
        /// Checkpoint id.
        checkpoint_id: u64,
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// A task failed: the attempt is over.
    Failed {
        /// Attempt number.
        attempt: u32,
        /// The failing task, as Flink names it, e.g. `Map (1/1)`.
        task: String,
        /// The error or panic message.
        error: String,
        /// Set when retrying cannot help: the job fails without consulting the restart
        /// strategy.
        #[serde(default)]
        unrecoverable: Option<Unrecoverable>,
    },
    /// The attempt ended because the job manager cancelled it. Sent so a worker process
    /// knows it is done; the job manager decided it and needs nothing from it.
    Cancelled {
        /// Attempt number.
        attempt: u32,
    },
    /// Every source read all of its input and waits for a final checkpoint (only when the
    /// job has a two-phase-commit sink and checkpointing): the job manager triggers it with
    /// [`ToExecutor::FinalCheckpoint`], so the job finishes once it completes.
    EndOfInput {
        /// Attempt number.
        attempt: u32,
    },
    /// All sources reached their end and all records were processed.
    Finished {
        /// Attempt number.
        attempt: u32,
    },
    /// Every worker process of the attempt started and connected to the job manager:
    /// where its subtasks run. Sent by a multi-process executor before `Running`.
    Deployed {
        /// Attempt number.
        attempt: u32,
        /// The attempt's processes: process `i` runs subtasks `i * threads .. (i + 1) *
        /// threads` of every operator.
        placement: crate::runtime::workers::Placement,
    },
    /// A worker process is alive; `progress` holds each worker thread's loop counter, so a
    /// thread stuck in user code shows as a counter that stopped moving.
    Heartbeat {
        /// Attempt number.
        attempt: u32,
        /// Loop iterations per worker thread.
        progress: Vec<u64>,
    },
}

impl FromExecutor {
    /// The attempt that sent the message.
    pub fn attempt(&self) -> u32 {
        match self {
            FromExecutor::Running { attempt, .. }
            | FromExecutor::Ack { attempt, .. }
            | FromExecutor::Decline { attempt, .. }
            | FromExecutor::Failed { attempt, .. }
            | FromExecutor::Finished { attempt }
            | FromExecutor::Cancelled { attempt }
            | FromExecutor::EndOfInput { attempt }
            | FromExecutor::Deployed { attempt, .. }
            | FromExecutor::Heartbeat { attempt, .. } => *attempt,
        }
    }

    /// The message with its failure or decline reason cut to [`MAX_MESSAGE`] bytes, so a
    /// record quoted in an error can never outgrow a control frame or the exception history.
    pub fn bounded(self) -> Self {
        match self {
            FromExecutor::Failed {
                attempt,
                task,
                error,
                unrecoverable,
            } => FromExecutor::Failed {
                attempt,
                task: bounded_message(task),
                error: bounded_message(error),
                unrecoverable,
            },
            FromExecutor::Decline {
                attempt,
                checkpoint_id,
                task,
                reason,
            } => FromExecutor::Decline {
                attempt,
                checkpoint_id,
                task,
                reason: bounded_message(reason),
            },
            other => other,
        }
    }
}

/// Longest failure message kept, in bytes: enough for any error chain, while a bad record
/// quoted in a message (megabytes) is cut.
pub const MAX_MESSAGE: usize = 4096;

/// `msg` cut to at most [`MAX_MESSAGE`] bytes (at a character boundary), ending in
/// `… (N bytes cut)` when something was cut.
pub fn bounded_message(msg: String) -> String {
    if msg.len() <= MAX_MESSAGE {
        return msg;
    }
    let mut end = MAX_MESSAGE - 32;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &msg[..end], msg.len() - end)
}

/// One execution attempt as the job manager sees it: in-process worker threads
/// ([`super::executor::LocalExecutor`]) or a worker process ([`super::process::ProcessExecutor`]).
pub trait TaskExecutor: Send {
    /// Delivers a job-manager command.
    fn send(&self, cmd: ToExecutor);
    /// Cancels every task and waits until they are gone.
    fn shutdown(self: Box<Self>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_message("short".into()), "short");
        let m = bounded_message("é".repeat(10_000));
        assert!(m.len() <= MAX_MESSAGE, "{}", m.len());
        assert!(m.ends_with(" bytes cut)"), "{m}");
        let cut: usize = m
            .rsplit('(')
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(m.split('…').next().unwrap().len() + cut, 20_000);
    }
}
