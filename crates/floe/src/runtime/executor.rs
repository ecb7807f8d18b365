//! One execution attempt of a job: timely worker threads in this process.
//!
//! The executor is the task side of the job-manager/task protocol. It never decides
//! anything about checkpoints or restarts; it runs tasks, forwards triggers to them and
//! reports acknowledgements, failures and the end of input as [`FromExecutor`] messages.
//!
//! Teardown avoids a trap of timely (docs/architecture.md, "Failures and restarts"): a
//! worker that fails sets a shared abort flag and unparks its peers; every worker then drops all of its dataflows
//! before returning, so `timely::execute`'s trailing loop ends and no thread is left
//! spinning or parked.

use super::attempt::{
    Attempt, AttemptControl, CheckpointSignals, Committers, FailureCause, Outbox, Registration,
};
use super::failure;
use super::plan::{BuildCx, Plan, Polled};
use super::protocol::{AttemptSpec, FromExecutor, ToExecutor};
use super::snapshot::SnapshotWriter;
use crate::checkpoint::metadata::TaskId;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use timely::dataflow::ProbeHandle;

/// How the worker threads of this process talk to each other and to other processes.
pub(crate) enum Comm {
    /// All `parallelism` worker threads run in this process.
    Process,
    /// This process is one of several of a timely cluster (its sockets to the others are
    /// connected, [`super::network`]): `threads` worker threads with the global indices
    /// `process * threads ..`.
    Cluster {
        /// This process's index.
        process: usize,
        /// Worker threads per process.
        threads: usize,
        /// The sockets to every other process, by index (`None` at `process`).
        sockets: Vec<Option<std::net::TcpStream>>,
    },
}

impl Comm {
    /// Worker threads in this process.
    fn local_threads(&self, parallelism: u32) -> u32 {
        match self {
            Comm::Process => parallelism,
            Comm::Cluster { threads, .. } => *threads as u32,
        }
    }
}

/// A running attempt. Dropping it without [`LocalExecutor::shutdown`] detaches the threads.
pub struct LocalExecutor {
    attempt: Arc<Attempt>,
    thread: Option<JoinHandle<()>>,
}

impl LocalExecutor {
    /// Starts the attempt `spec` describes: restoring from its snapshot when given, records
    /// of the first epoch belonging to checkpoint `spec.start_epoch`.
    pub fn start(plan: Arc<Plan>, spec: AttemptSpec, events: Sender<FromExecutor>) -> Self {
        Self::start_with(plan, spec, events, Comm::Process)
    }

    /// [`start`](Self::start) with the worker threads of this process only: the other
    /// subtasks run in the other processes of `comm`'s cluster.
    pub(crate) fn start_with(
        plan: Arc<Plan>,
        spec: AttemptSpec,
        events: Sender<FromExecutor>,
        comm: Comm,
    ) -> Self {
        failure::install_panic_hook();
        // Progress counters, registrations and wake-ups concern this process's threads.
        let local = comm.local_threads(plan.parallelism);
        let number = spec.attempt;
        let (writer, snap_tx) = SnapshotWriter::spawn(number, events.clone(), plan.max_parallelism);
        let attempt = Arc::new(Attempt {
            job_id: spec.job_id.clone(),
            control: AttemptControl::new(number, local),
            signals: CheckpointSignals::new(spec.start_epoch),
            registration: Registration::new(local, plan.final_checkpoint),
            committers: Committers::default(),
            outbox: Outbox::new(number, events, snap_tx),
        });
        let a = Arc::clone(&attempt);
        let thread = std::thread::Builder::new()
            .name(format!("floe-executor-{number}"))
            .spawn(move || {
                let attempt2 = Arc::clone(&a);
                let work = move |worker: &mut timely::worker::Worker| {
                    run_worker(worker, &plan, &attempt2, &spec, local);
                };
                let clustered = matches!(comm, Comm::Cluster { .. });
                let result = match comm {
                    Comm::Process => timely::execute(timely::Config::process(local as usize), work),
                    Comm::Cluster {
                        process,
                        threads,
                        sockets,
                    } => cluster(process, threads, sockets).and_then(|(builders, guard)| {
                        timely::execute::execute_from(
                            builders,
                            guard,
                            timely::WorkerConfig::default(),
                            work,
                        )
                    }),
                };
                // The guards of a cluster process also join its network threads, which
                // end only once the other processes closed their sockets: the attempt's
                // end is reported as soon as this process's worker threads are done, so
                // a failure here reaches the job manager, which stops the others.
                let mut late = None;
                match result {
                    Ok(guards) if clustered => {
                        a.control.wait_workers_ended(local);
                        late = Some(guards);
                    }
                    Ok(guards) => {
                        for r in guards.join() {
                            if let Err(e) = r {
                                a.control.fail("worker", e, FailureCause::Panic);
                            }
                        }
                    }
                    Err(e) => a.control.fail(
                        "executor",
                        format!("cannot start workers: {e}"),
                        FailureCause::User,
                    ),
                }
                // Workers are gone: stop the snapshot writer after it drained its queue.
                a.outbox.close_snapshots();
                writer.join();
                let end = match a.control.take_failure() {
                    Some(f) => f.into_message(number),
                    None => FromExecutor::Finished { attempt: number },
                };
                a.outbox.send(end);
                if let Some(guards) = late {
                    let _ = guards.join();
                }
            })
            .expect("spawn executor thread");
        LocalExecutor {
            attempt,
            thread: Some(thread),
        }
    }

    /// What the attempt's threads share (a worker process reads their progress from it).
    pub(crate) fn attempt(&self) -> Arc<Attempt> {
        Arc::clone(&self.attempt)
    }

    /// Delivers a job-manager command.
    pub fn send(&self, cmd: ToExecutor) {
        let a = &self.attempt;
        match cmd {
            ToExecutor::TriggerCheckpoint { id, dir } => {
                a.signals.trigger(id, dir);
                a.control.wake_all();
            }
            ToExecutor::CheckpointComplete { id } => {
                a.signals.settled(id);
                // Before sources may finish: the job must not end with output uncommitted.
                a.committers.commit_upto(id, &a.control);
                if a.signals.update_stop(|s| s.completed(id)) {
                    a.control.wake_all();
                }
            }
            ToExecutor::SavepointComplete { id } => {
                // Nothing is committed: the committables stay queued and the next
                // checkpoint names and commits them.
                a.signals.settled(id);
            }
            ToExecutor::CheckpointAborted { id } => {
                a.signals.settled(id);
                if a.signals.update_stop(|s| s.aborted(id)) {
                    a.control.wake_all();
                }
            }
            ToExecutor::FinalCheckpoint { id } => {
                a.signals.update_stop(|s| s.final_checkpoint(id));
            }
            ToExecutor::StopSourcesAfter { id } => {
                a.signals.update_stop(|s| s.stop_after(id));
            }
            ToExecutor::Cancel => a.control.cancel(),
        }
    }

    /// Cancels every task and waits until all worker threads have exited.
    pub fn shutdown(mut self) {
        self.send(ToExecutor::Cancel);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The allocators of this process's worker threads, wired to the other processes.
fn cluster(
    process: usize,
    threads: usize,
    sockets: Vec<Option<std::net::TcpStream>>,
) -> Result<
    (
        Vec<timely::communication::allocator::AllocatorBuilder>,
        Box<dyn std::any::Any + Send>,
    ),
    String,
> {
    use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
    use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
    let hooks = timely::communication::Hooks::default();
    let local =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(local, sockets, process, threads, hooks)
            .map_err(|e| format!("failed to initialize networking: {e}"))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

enum Exit {
    Finished,
    Aborted,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    plan: &Plan,
    attempt: &Arc<Attempt>,
    spec: &AttemptSpec,
    local: u32,
) {
    failure::enter_task_thread();
    attempt.control.register_thread();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        worker_loop(worker, plan, attempt, spec, local)
    }));
    match outcome {
        Ok(Ok(Exit::Finished)) | Ok(Ok(Exit::Aborted)) => {}
        Ok(Err(e)) => attempt
            .control
            .fail_with_error(&failure::current_task(), &e),
        Err(_) => {
            let msg = failure::take_panic_message().unwrap_or_else(|| "panicked".to_string());
            attempt
                .control
                .fail(&failure::current_task(), msg, FailureCause::Panic);
        }
    }
    // Drop every dataflow so timely's trailing `step_or_park(None)` loop ends; a panic while
    // dropping state poisoned by the first panic is contained here.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
    }));
    attempt.control.worker_ended();
}

/// How long an idle worker parks before re-checking for triggers it might have missed.
const PARK: Duration = Duration::from_millis(200);

fn worker_loop(
    worker: &mut timely::worker::Worker,
    plan: &Plan,
    attempt: &Arc<Attempt>,
    spec: &AttemptSpec,
    local: u32,
) -> crate::Result<Exit> {
    let start_epoch = spec.start_epoch;
    let index = worker.index() as u32;
    // Global index = process * threads + local index (timely's numbering).
    let local_index = index % local.max(1);
    let peers = worker.peers() as u32;
    let probe = ProbeHandle::new();
    let mut drivers = Vec::new();
    worker.dataflow::<super::Time, _, _>(|scope| -> crate::Result<()> {
        let mut cx = BuildCx {
            scope,
            plan,
            worker: index,
            peers,
            attempt_number: attempt.control.attempt,
            attempt,
            restore: spec.restore.as_deref(),
            savepoints: &spec.savepoints,
            start_epoch,
            probe: &probe,
            drivers: &mut drivers,
            built: crate::runtime::plan::Built::new(),
        };
        for t in &plan.terminals {
            t.build(&mut cx)?;
        }
        Ok(())
    })?;
    let tasks: Vec<TaskId> = plan
        .checkpointed_tasks()
        .into_iter()
        .filter(|t| t.subtask % peers == index)
        .collect();
    attempt
        .registration
        .register(tasks, drivers.len(), &attempt.outbox);

    let mut last_trigger = start_epoch.saturating_sub(1);
    loop {
        if attempt.control.aborted() {
            return Ok(Exit::Aborted);
        }
        attempt.control.tick(local_index);
        let trig = attempt.signals.triggered();
        if trig > last_trigger {
            for d in drivers.iter_mut() {
                failure::set_current_task(d.task_name());
                d.on_trigger(trig, attempt)?;
            }
            last_trigger = trig;
        }
        let mut busy = false;
        let mut all_done = true;
        for d in drivers.iter_mut() {
            failure::set_current_task(d.task_name());
            match d.poll(&probe, attempt)? {
                Polled::Emitted => {
                    busy = true;
                    all_done = false;
                }
                Polled::Blocked => all_done = false,
                Polled::Idle => all_done = false,
                Polled::Finished => {}
            }
        }
        if all_done && probe.done() {
            return Ok(Exit::Finished);
        }
        if attempt.control.aborted() {
            return Ok(Exit::Aborted);
        }
        // Blocked sources wait for progress messages, which unpark the worker; the short
        // timeout only bounds how late a new wall-clock tick is noticed.
        let blocked = !busy && drivers.iter().any(|d| d.blocked());
        worker.step_or_park(if busy {
            Some(Duration::ZERO)
        } else if blocked {
            Some(Duration::from_millis(1))
        } else {
            Some(PARK)
        });
    }
}

impl super::protocol::TaskExecutor for LocalExecutor {
    fn send(&self, cmd: ToExecutor) {
        LocalExecutor::send(self, cmd)
    }
    fn shutdown(self: Box<Self>) {
        LocalExecutor::shutdown(*self)
    }
}
