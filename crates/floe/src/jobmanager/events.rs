//! Every Flink-style log line of the job manager, worded as Flink's own job manager words
//! it: users (and the seed tests) grep for these, so each is formatted here and nowhere
//! else. The target stays `floe::jobmanager`, the module that logged them before.

use crate::checkpoint::coordinator::{AbortReason, CheckpointId};
use crate::job::JobStatus;
use crate::storage::Location;
use tracing::{error, info, warn};

const TARGET: &str = "floe::jobmanager";

/// `Job <name> (<id>) switched from state <from> to <to>.`
pub(crate) fn job_transition(name: &str, job_id: &str, from: JobStatus, to: JobStatus) {
    info!(target: TARGET, "Job {name} ({job_id}) switched from state {from} to {to}.");
}

pub(crate) fn rest_listening(addr: std::net::SocketAddr) {
    info!(target: TARGET, "Rest endpoint listening at {addr}");
}

pub(crate) fn submitting(name: &str, job_id: &str) {
    info!(target: TARGET, "Submitting job {name} ({job_id}).");
}

pub(crate) fn starting_from(job_id: &str, dir: &Location, savepoint: bool, next_id: u64) {
    info!(
        target: TARGET,
        "Starting job {job_id} from savepoint {} ({})",
        dir.display(),
        if savepoint {
            "savepoint"
        } else {
            "retained checkpoint"
        }
    );
    info!(target: TARGET, "Reset the checkpoint ID of job {job_id} to {next_id}.");
}

pub(crate) fn restart_strategy(strategy: &dyn std::fmt::Display, name: &str, job_id: &str) {
    info!(
        target: TARGET,
        "Using restart back off time strategy {strategy} for {name} ({job_id})."
    );
}

pub(crate) fn restoring(job_id: &str, id: u64, timestamp_ms: u64, from_job: &str, dir: &Location) {
    info!(
        target: TARGET,
        "Restoring job {job_id} from Checkpoint {id} @ {timestamp_ms} for {from_job} located at {}.",
        dir.display()
    );
}

pub(crate) fn no_checkpoint_found() {
    info!(target: TARGET, "No checkpoint found during restore.");
}

/// A subtask of a job vertex is running.
pub(crate) fn task_running(vertex: &str, subtask: u32, parallelism: u32, attempt: u32) {
    info!(
        target: TARGET,
        "{vertex} ({subtask}/{parallelism}) (attempt #{attempt}) switched from INITIALIZING to RUNNING."
    );
}

/// A task failed; `from` is the task state it failed in (`RUNNING`, or `INITIALIZING` when
/// its restored state did not fit).
pub(crate) fn task_failed(task: &str, attempt: u32, from: &str, error: &str) {
    warn!(
        target: TARGET,
        "{task} (attempt #{attempt}) switched from {from} to FAILED with failure cause: {error}"
    );
}

pub(crate) fn job_exception(error: &str) {
    error!(target: TARGET, "org.apache.flink.runtime.JobException: {error}");
}

pub(crate) fn triggering_checkpoint(id: CheckpointId, timestamp_ms: u64, job_id: &str) {
    info!(
        target: TARGET,
        "Triggering checkpoint {id} (type=CheckpointType{{name='Checkpoint', sharingFilesStrategy=FORWARD_BACKWARD}}) @ {timestamp_ms} for job {job_id}."
    );
}

pub(crate) fn triggering_savepoint(id: CheckpointId, stop: bool, job_id: &str, dir: &Location) {
    info!(
        target: TARGET,
        "Triggering {}savepoint {id} for job {job_id} into {}.",
        if stop { "stop-with-" } else { "" },
        dir.display()
    );
}

pub(crate) fn completed_savepoint(
    id: CheckpointId,
    job_id: &str,
    size: u64,
    ms: u128,
    dir: &Location,
) {
    info!(
        target: TARGET,
        "Completed savepoint {id} for job {job_id} ({size} bytes, checkpointDuration={ms} ms) stored in {}.",
        dir.display()
    );
}

pub(crate) fn completed_checkpoint(
    id: CheckpointId,
    job_id: &str,
    size: u64,
    ms: u128,
    finalization_ms: u128,
) {
    info!(
        target: TARGET,
        "Completed checkpoint {id} for job {job_id} ({size} bytes, checkpointDuration={ms} ms, finalizationTime={finalization_ms} ms)."
    );
}

pub(crate) fn stop_savepoint_is_checkpoint(id: CheckpointId, job_id: &str, chk: &Location) {
    info!(
        target: TARGET,
        "Stored stop-with-savepoint {id} of job {job_id} also as its checkpoint {}: its output is committed, so failover and a resume from the job's checkpoint directory restore it.",
        chk.display()
    );
}

/// A checkpoint (or, with `savepoint`, a savepoint) was aborted.
pub(crate) fn aborted(savepoint: bool, id: CheckpointId, job_id: &str, reason: &AbortReason) {
    let what = if savepoint { "Savepoint" } else { "Checkpoint" };
    if *reason == AbortReason::Expired {
        warn!(target: TARGET, "{what} {id} of job {job_id} expired before completing.");
    } else {
        warn!(target: TARGET, "{what} {id} of job {job_id} failed: {reason}");
    }
}

pub(crate) fn declined(id: u64, task: &impl std::fmt::Display, job_id: &str, reason: &str) {
    warn!(
        target: TARGET,
        "Decline checkpoint {id} by task {task} of job {job_id}: {reason}"
    );
}

pub(crate) fn end_of_input(job_id: &str) {
    info!(
        target: TARGET,
        "All sources of job {job_id} reached the end of their input; triggering the final checkpoint."
    );
}

pub(crate) fn retaining_last_of_failed(
    id: CheckpointId,
    dir: &Location,
    job_id: &str,
    retention: &str,
) {
    info!(
        target: TARGET,
        "Retaining checkpoint {id} ({}) of job {job_id} (FAILED) although retention is {retention}: it is the job's last restorable state.",
        dir.display()
    );
}

pub(crate) fn retaining(
    id: CheckpointId,
    dir: &Location,
    timestamp_ms: u64,
    job_id: &str,
    status: JobStatus,
    retention: &str,
) {
    info!(
        target: TARGET,
        "Retaining checkpoint {id} ({} @ {timestamp_ms}) of job {job_id} ({status}): {retention}",
        dir.display()
    );
}

pub(crate) fn discard_failed(dir: &Location, e: &dyn std::fmt::Display) {
    warn!(target: TARGET, "Could not discard checkpoint {}: {e}", dir.display());
}

pub(crate) fn ignoring_job_id_env(var: &str, e: &dyn std::fmt::Display) {
    warn!(target: TARGET, "ignoring {var}: {e}");
}

/// The job was submitted: `floe run` prints it on standard output as Flink's CLI does, and
/// the exit report ([`crate::exit`]) learns the job id.
pub(crate) fn submitted(job_id: &str, cli_output: bool) {
    if cli_output {
        // A closed stdout (`floe run job | head`) only loses the line.
        crate::exit::stdout_line(&format!("Job has been submitted with JobID {job_id}"));
    }
    if let Ok(id) = job_id.parse() {
        crate::exit::report(crate::exit::Event::Submitted(id));
    }
}

/// The job ends in `status`: Flink's CLI line for `floe run`, and the exit report.
pub(crate) fn ended(job_id: &str, status: JobStatus, cli_output: bool) {
    if cli_output {
        let end = match status {
            JobStatus::Finished => "finished",
            JobStatus::Canceled => "been canceled",
            _ => "failed",
        };
        crate::exit::stdout_line(&format!("Job with JobID {job_id} has {end}."));
    }
    crate::exit::report(crate::exit::Event::Ended(status));
}
