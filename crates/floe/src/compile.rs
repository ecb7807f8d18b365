//! Job compilation: what a [`StreamEnv`](crate::StreamEnv) declared (operators, sinks,
//! settings, the snapshot to start from) checked and frozen into the [`JobSpec`] a job
//! manager runs.
//!
//! Dependencies point one way: `api` declares, this module validates and resolves (keys,
//! directories, the restore snapshot), `jobmanager` and `runtime` run what it produced.

use crate::checkpoint::config::CheckpointConfig;
use crate::checkpoint::metadata::load_snapshot;
use crate::checkpoint::metadata::OperatorKind;
use crate::config::{keys, Configuration};
use crate::jobmanager::restart::RestartStrategy;
use crate::jobmanager::JobSpec;
use crate::runtime::plan::{OperatorDecl, Plan, Terminal};
use crate::state::keygroup::{DEFAULT_MAX_PARALLELISM, UPPER_BOUND_MAX_PARALLELISM};
use crate::storage::Location;
use crate::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What job code declared, as the environment holds it.
pub(crate) struct Declared<'a> {
    /// The job's name.
    pub job_name: &'a str,
    /// Operators in declaration order.
    pub operators: &'a [OperatorDecl],
    /// Sinks and other terminals.
    pub terminals: &'a [Arc<dyn Terminal>],
    /// Graph errors recorded while declaring (reported at `execute`).
    pub errors: &'a [String],
    /// The snapshot `-s` named, if any.
    pub restore: Option<&'a Path>,
    /// `-n`: skip snapshot state without an operator.
    pub allow_non_restored: bool,
    /// Run attempts in worker processes (job binaries).
    pub worker_processes: bool,
}

/// Validates the graph and configuration and freezes them into a job spec.
pub(crate) fn job_spec(d: Declared<'_>, conf: &Configuration) -> Result<JobSpec> {
    if let Some(e) = d.errors.first() {
        crate::bail!("invalid job graph: {e}");
    }
    if d.terminals.is_empty() {
        crate::bail!("no sinks defined in the job: add print(), sink_to(..) or another sink before execute()");
    }
    let parallelism = conf.get_or(keys::PARALLELISM_DEFAULT, 1)?.max(1);
    let max_parallelism = conf.get_or(keys::MAX_PARALLELISM, DEFAULT_MAX_PARALLELISM)?;
    if max_parallelism == 0 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
        crate::bail!(
            "max parallelism {max_parallelism} is out of range 1..={UPPER_BOUND_MAX_PARALLELISM}"
        );
    }
    if parallelism > max_parallelism {
        crate::bail!(
            "parallelism {parallelism} is greater than the max parallelism {max_parallelism}"
        );
    }
    let mut operators = d.operators.to_vec();
    for o in &mut operators {
        o.parallelism = if o.parallelism == 0 {
            parallelism
        } else {
            o.parallelism.min(parallelism)
        };
        if !o.explicit_uid && o.state.is_some() {
            tracing::warn!(
                "operator '{}' has no uid; its state is stored under the generated uid '{}', which changes when the job graph changes. Set .uid(\"...\") on stateful operators to keep savepoints compatible.",
                o.name,
                o.uid
            );
        }
    }
    let checkpoint = CheckpointConfig::from_config(conf)?;
    let restart = RestartStrategy::from_config(conf, checkpoint.interval.is_some())?;
    // Object stores of checkpoint and savepoint locations are built from this configuration.
    crate::storage::configure(conf)?;
    let checkpoint_dir = match conf.get(keys::CHECKPOINTS_DIRECTORY)? {
        Some(d) => Some(Location::parse(&d)?),
        None if checkpoint.interval.is_some() => Some(Location::Local(
            crate::checkpoint::layout::default_checkpoint_dir(),
        )),
        None => None,
    };
    // `-s file:/…` is the form a savepoint's path is printed in: one parser for both.
    let restore_path = match (d.restore, conf.get(keys::STATE_RECOVERY_PATH)?) {
        (Some(p), _) => Some(Location::from_path(p)?),
        (None, Some(p)) => Some(Location::parse(&p)?),
        (None, None) => None,
    };
    let restore = match restore_path {
        Some(p) => Some(Arc::new(load_snapshot(p)?)),
        None => None,
    };
    let allow_non_restored =
        d.allow_non_restored || conf.get_or(keys::IGNORE_UNCLAIMED_STATE, false)?;
    let final_checkpoint = checkpoint.interval.is_some()
        && operators
            .iter()
            .any(|o| o.state == Some(OperatorKind::Sink));
    let plan = Plan {
        job_name: d.job_name.to_string(),
        parallelism,
        max_parallelism,
        final_checkpoint,
        operators,
        terminals: d.terminals.to_vec(),
    };
    if let Some(snap) = &restore {
        crate::jobmanager::validate_restore(&plan, snap, allow_non_restored)?;
    }
    let savepoint_dir = match conf.get(keys::SAVEPOINT_DIRECTORY)? {
        Some(d) => Some(Location::parse(&d)?),
        None => None,
    };
    let heartbeat = crate::runtime::process::Heartbeat {
        interval: conf.get_or(keys::HEARTBEAT_INTERVAL, Duration::from_secs(1))?,
        timeout: conf.get_or(keys::HEARTBEAT_TIMEOUT, Duration::from_secs(10))?,
    };
    // As Flink's HeartbeatServices: a timeout shorter than the interval would fail every
    // attempt between two heartbeats.
    if heartbeat.timeout < heartbeat.interval {
        crate::bail!(
            "{} ({:?}) must not be smaller than {} ({:?}): the heartbeat timeout should be larger or equal than the heartbeat interval",
            keys::HEARTBEAT_TIMEOUT,
            heartbeat.timeout,
            keys::HEARTBEAT_INTERVAL,
            heartbeat.interval
        );
    }
    let worker_processes = if d.worker_processes {
        Some(crate::runtime::process::WorkerSettings {
            heartbeat,
            launcher: launcher(conf)?,
            config: conf.clone(),
            network_timeout: conf
                .get_or(keys::TASKMANAGER_NETWORK_TIMEOUT, Duration::from_secs(5))?,
            slot_request_timeout: conf
                .get_or(keys::SLOT_REQUEST_TIMEOUT, Duration::from_secs(300))?,
        })
    } else {
        None
    };
    let exception_history_size = conf.get_or(
        keys::EXCEPTION_HISTORY_SIZE,
        crate::jobmanager::info::EXCEPTION_HISTORY as u32,
    )? as usize;
    Ok(JobSpec {
        cli_output: false,
        plan: Arc::new(plan),
        checkpoint,
        restart,
        checkpoint_dir,
        restore,
        savepoint_dir,
        worker_processes,
        exception_history_size,
    })
}

/// Where the job's worker processes run: in task slots of the cluster's task managers when
/// a session cluster started this job manager (it sets `FLOE_CLUSTER_RPC`), otherwise on
/// this host, as children of the job manager (Flink's mini cluster,
/// `minicluster.number-of-taskmanagers` processes).
fn launcher(conf: &Configuration) -> Result<Arc<dyn crate::runtime::workers::WorkerLauncher>> {
    if let Some(remote) = crate::cluster::RemoteLauncher::from_env(conf)? {
        return Ok(Arc::new(remote));
    }
    let processes = conf.get_or(keys::MINICLUSTER_TASK_MANAGERS, 1)?;
    if processes == 0 {
        crate::bail!("{} must be at least 1", keys::MINICLUSTER_TASK_MANAGERS);
    }
    let parallelism = conf.get_or(keys::PARALLELISM_DEFAULT, 1)?.max(1);
    if !parallelism.is_multiple_of(processes) {
        crate::bail!(
            "parallelism {parallelism} cannot be split evenly over {processes} worker processes ({})",
            keys::MINICLUSTER_TASK_MANAGERS
        );
    }
    Ok(Arc::new(
        crate::runtime::workers::LocalLauncher::with_processes(processes),
    ))
}
